//! Every response checked, not just counted: ARP replies, packet-outs, flow mods of a move.

use crate::*;

/// The asking host's index when `frame` is a PACKET_OUT that answers it exactly as the
/// `arp` check requires (read straight from the wire: ofp_packet_out, one 16-byte output
/// action to the host's port, then the Ethernet/ARP reply). None: let the full check decide.
pub(crate) fn good_arp_reply(
    sw: &SwInfo,
    by_ip: &FastMap<Ipv4Addr, usize>,
    frame: &[u8],
) -> Option<usize> {
    const HEAD: usize = 8 + 16; // ofp_header, buffer_id, in_port, actions_len, pad
    if frame.get(1) != Some(&ofp13::message::OFPT_PACKET_OUT) {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_be_bytes(frame.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_be_bytes(frame.get(i..i + 4)?.try_into().ok()?));
    // actions_len 16: exactly one action, which must be OFPAT_OUTPUT (type 0, length 16).
    if u16_at(16)? != 16 || u16_at(HEAD)? != 0 || u16_at(HEAD + 2)? != 16 {
        return None;
    }
    let port = u32_at(HEAD + 4)?;
    let (edst, esrc, a) = arp_in(frame.get(HEAD + 16..)?)?;
    let k = *by_ip.get(&a.tpa)?;
    let h = sw.hosts.get(k)?;
    answers_host(h, edst, esrc, &a, &[port]).then_some(k)
}

/// The Ethernet destination, source and ARP body of a frame carrying ARP.
pub(crate) fn arp_in(frame: &[u8]) -> Option<(MacAddr, MacAddr, Arp)> {
    let eth = Ethernet::parse(frame)?;
    if eth.ethertype != packet::ETH_ARP {
        return None;
    }
    Some((eth.dst, eth.src, Arp::parse(eth.payload)?))
}

/// Whether an ARP frame sent out of `ports` is the gateway's reply to host `h`, as the `arp`
/// workload requires.
pub(crate) fn answers_host(h: &Host, edst: MacAddr, esrc: MacAddr, a: &Arp, ports: &[u32]) -> bool {
    a.op == packet::ARP_REPLY
        && a.sha == GATEWAY_MAC
        && a.spa == h.gateway
        && a.tha == h.mac
        && edst == h.mac
        && esrc == GATEWAY_MAC
        && ports == [h.port]
}

pub(crate) fn outputs(po: &PacketOut) -> Vec<u32> {
    po.actions
        .iter()
        .filter_map(|a| match a {
            Action::Output { port, .. } => Some(*port),
            _ => None,
        })
        .collect()
}

/// Addresses and ports a FLOW_MOD mentions: (MACs, IPv4 addresses, ports).
pub(crate) fn mentions(fm: &FlowMod) -> (Vec<MacAddr>, Vec<Ipv4Addr>, Vec<u32>) {
    let (mut macs, mut ips, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    let mut oxm = |o: &Oxm| match o {
        Oxm::EthSrc(m, _) | Oxm::EthDst(m, _) => macs.push(*m),
        Oxm::Ipv4Src(ip, _) | Oxm::Ipv4Dst(ip, _) => ips.push(*ip),
        Oxm::InPort(p, _) => ports.push(*p),
        _ => {}
    };
    fm.match_.fields.iter().for_each(&mut oxm);
    let mut out_ports = Vec::new();
    for ins in &fm.instructions {
        if let Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } = ins {
            for a in actions {
                match a {
                    Action::SetField { field } => oxm(field),
                    Action::Output { port, .. } => out_ports.push(*port),
                    _ => {}
                }
            }
        }
    }
    ports.extend(out_ports);
    (macs, ips, ports)
}

/// Requests in flight: (key, sent).
pub(crate) struct InFlight(pub(crate) VecDeque<(usize, Instant)>);

impl InFlight {
    pub(crate) fn take(&mut self, key: usize) -> Option<Instant> {
        let i = self.0.iter().position(|(k, _)| *k == key)?;
        self.0.remove(i).map(|(_, t)| t)
    }
}

pub(crate) fn wrong(ctx: &Ctx, st: &mut Stats, why: impl FnOnce() -> String) {
    if ctx.measuring.load(Relaxed) {
        st.wrong += 1;
    }
    if st.first_wrong.is_none() {
        st.first_wrong = Some(why());
    }
}

/// Checks one message against the workload; returns false if it is not a workload response.
pub(crate) fn check(
    ctx: &Ctx,
    sw: &SwInfo,
    gen: &mut Gen,
    fl: &mut InFlight,
    m: &Message,
    st: &mut Stats,
    now: Instant,
) {
    match (&m.body, gen) {
        (Body::PacketOut(po), Gen::Arp { by_ip, .. }) => {
            let Some((edst, esrc, a)) = arp_in(&po.data) else {
                return wrong(ctx, st, || format!("PACKET_OUT without ARP: {po:?}"));
            };
            let Some(&k) = by_ip.get(&a.tpa) else {
                return wrong(ctx, st, || format!("ARP reply to an unknown host: {a:?}"));
            };
            let Some(h) = sw.hosts.get(k) else { return };
            if !answers_host(h, edst, esrc, &a, &outputs(po)) {
                return wrong(ctx, st, || format!("bad ARP reply for {h:?}: {a:?} {po:?}"));
            }
            match fl.take(k) {
                Some(t) => record(ctx, st, t, now),
                None => wrong(ctx, st, || format!("unsolicited ARP reply {a:?}")),
            }
        }
        (Body::PacketOut(po), Gen::Unresolved { by_ip, .. }) => {
            let Some((edst, esrc, a)) = arp_in(&po.data) else {
                return wrong(ctx, st, || format!("PACKET_OUT without ARP: {po:?}"));
            };
            let Some(&k) = by_ip.get(&a.tpa) else {
                return wrong(ctx, st, || {
                    format!("ARP request for an unexpected address {a:?}")
                });
            };
            let gw = sw.subnet.map(|s| s.2);
            let mut ports = outputs(po);
            ports.sort_unstable();
            let good = a.op == packet::ARP_REQUEST
                && a.sha == GATEWAY_MAC
                && Some(a.spa) == gw
                && edst == MacAddr::BROADCAST
                && esrc == GATEWAY_MAC
                && ports == sw.host_ports;
            if !good {
                return wrong(ctx, st, || format!("bad ARP request: {a:?} {ports:?}"));
            }
            match fl.take(k) {
                Some(t) => record(ctx, st, t, now),
                None => wrong(ctx, st, || format!("unsolicited ARP request {a:?}")),
            }
        }
        (
            Body::FlowMod(fm),
            Gen::Newflow {
                by_ip,
                by_mac,
                seen,
                pool,
                ..
            },
        ) => {
            let (macs, ips, ports) = mentions(fm);
            let key = ips
                .iter()
                .find_map(|ip| by_ip.get(ip))
                .or_else(|| macs.iter().find_map(|m| by_mac.get(m)))
                .copied();
            let Some(k) = key else { return };
            if !fl.0.iter().any(|(x, _)| *x == k) {
                return; // e.g. the audit re-installing a host learned earlier
            }
            let good = fm.command == ofp13::OFPFC_ADD
                && ports.contains(&sw.spare_first)
                && (ips.is_empty() || pool.get(k).is_some_and(|ip| ips.contains(ip)))
                && (macs.is_empty() || macs.contains(&new_host_mac(sw.dpid, k)));
            if !good {
                return wrong(ctx, st, || format!("bad flow mod for a new host: {fm:?}"));
            }
            let n = seen.entry(k).or_default();
            *n += 1;
            if *n == 3 {
                seen.remove(&k);
                if let Some(t) = fl.take(k) {
                    record(ctx, st, t, now);
                }
            }
        }
        (
            Body::FlowMod(fm),
            Gen::Migration {
                by_ip,
                by_mac,
                table,
                moves,
                ..
            },
        ) => {
            let (macs, ips, _) = mentions(fm);
            let named = macs
                .iter()
                .find_map(|m| by_mac.get(m))
                .or_else(|| ips.iter().find_map(|ip| by_ip.get(ip)))
                .copied();
            // An entry for a VM of this switch that outputs to a host port of this switch
            // other than the VM's own: the controller put it somewhere it was never announced.
            if let (Some(k), ofp13::OFPFC_ADD | ofp13::OFPFC_MODIFY | ofp13::OFPFC_MODIFY_STRICT) =
                (named, fm.command)
            {
                if let Some(vm) = ctx.vms.get(k) {
                    let own = if vm.home.0 == sw.idx {
                        vm.home.1
                    } else {
                        vm.foreign.1
                    };
                    let outs = instruction_outputs(&fm.instructions);
                    if outs.iter().any(|p| *p != own && sw.host_ports.contains(p)) {
                        wrong(ctx, st, || {
                            format!(
                                "flow mod delivers VM {} at port {outs:?} of {}, not {own}: {fm:?}",
                                vm.mac, sw.name
                            )
                        });
                    }
                }
            }
            // An ADD that puts in an entry the table did not have as it is (a re-sent
            // identical entry, as from an audit, installs nothing).
            let outs = instruction_outputs(&fm.instructions);
            let installs = fm.command == ofp13::OFPFC_ADD
                && table
                    .entries
                    .get(&plan::key(fm.table_id, fm.priority, &fm.match_))
                    .is_none_or(|e| e.cookie != fm.cookie || e.outputs != outs);
            for k in table.apply(fm, named) {
                if let Some(m) = moves.get_mut(&k) {
                    let installed = installs && named == Some(k) && outs.contains(&m.port);
                    if installed || !table.delivers(k, m.port) {
                        m.armed = true;
                    }
                }
            }
        }
        (Body::BarrierRequest, Gen::Migration { table, moves, .. }) => {
            // The moves whose delivery was installed after the RARP and is in place now.
            let done: Vec<(usize, bool)> = moves
                .iter()
                .filter(|(k, m)| m.armed && table.delivers(**k, m.port))
                .map(|(k, m)| (*k, m.home))
                .collect();
            for (k, home) in done {
                moves.remove(&k);
                // None: it had timed out (and was counted so).
                if let Some(t) = fl.take(k) {
                    record(ctx, st, t, now);
                    ctx.vm_done(k, if home { HOME_IDLE } else { AWAY_IDLE });
                }
            }
        }
        (Body::PacketOut(po), _) => {
            if ctx.measuring.load(Relaxed) {
                st.other += 1;
            }
            let _ = po;
        }
        _ => {}
    }
}
