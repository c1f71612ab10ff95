//! The workloads: which PACKET_INs each switch sends (ARP, unresolved, newflow, migration).

use crate::*;

pub(crate) fn packet_in(in_port: u32, frame: Vec<u8>) -> Vec<u8> {
    Message::new(
        0,
        Body::PacketIn(PacketIn::unbuffered(in_port, ofp13::OFPR_NO_MATCH, frame)),
    )
    .to_bytes()
}

/// What a switch sends; keys identify requests in flight.
pub(crate) enum Gen {
    Idle,
    Arp {
        pins: Vec<Vec<u8>>,
        by_ip: FastMap<Ipv4Addr, usize>,
        next: usize,
    },
    Unresolved {
        pool: Vec<Ipv4Addr>,
        by_ip: HashMap<Ipv4Addr, usize>,
        last: Vec<Option<Instant>>,
        next: usize,
    },
    Newflow {
        pool: Vec<Ipv4Addr>,
        by_ip: HashMap<Ipv4Addr, usize>,
        by_mac: HashMap<MacAddr, usize>,
        seen: HashMap<usize, u32>,
        next: usize,
    },
    Migration {
        /// (vm index, this switch is its home)
        cands: Vec<(usize, bool)>,
        by_mac: HashMap<MacAddr, usize>,
        by_ip: HashMap<Ipv4Addr, usize>,
        /// This switch's flow entries that name one of those VMs, as the FLOW_MODs left them.
        table: VmTable,
        /// Moves to this switch in flight, by VM.
        moves: HashMap<usize, Move>,
        next: usize,
    },
}

/// A move of a VM to this switch (its RARP was sent here).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move {
    /// The VM's port here.
    pub(crate) port: u32,
    /// This switch is the VM's home (the move is back home).
    pub(crate) home: bool,
    /// Since the RARP was sent, an entry delivering the VM at `port` was installed (added or
    /// changed), or the table had none at some point: one that delivers it from now on was
    /// installed for this move (not left over from the VM's previous stay here, such as the
    /// delivery of its previous care-of address, which servswitch removes only after a drain).
    pub(crate) armed: bool,
}

pub(crate) fn make_gen(ctx: &Ctx, sw: &SwInfo, topo_ips: &HashSet<Ipv4Addr>) -> Gen {
    if !sw.loaded {
        return Gen::Idle;
    }
    match ctx.workload {
        Workload::Arp => Gen::Arp {
            pins: sw
                .hosts
                .iter()
                .map(|h| {
                    let f = Arp::request(h.mac, h.ip, h.gateway).to_frame();
                    packet_in(h.port, f)
                })
                .collect(),
            by_ip: sw
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.ip, i))
                .collect(),
            next: 0,
        },
        Workload::Unresolved => {
            let pool = free_addresses(sw, topo_ips);
            Gen::Unresolved {
                by_ip: pool.iter().enumerate().map(|(i, ip)| (*ip, i)).collect(),
                last: vec![None; pool.len()],
                pool,
                next: 0,
            }
        }
        Workload::Newflow => {
            let pool = free_addresses(sw, topo_ips);
            Gen::Newflow {
                by_ip: pool.iter().enumerate().map(|(i, ip)| (*ip, i)).collect(),
                by_mac: (0..pool.len())
                    .map(|i| (new_host_mac(sw.dpid, i), i))
                    .collect(),
                pool,
                seen: HashMap::new(),
                next: 0,
            }
        }
        Workload::Migration => {
            let mut cands = Vec::new();
            let mut by_mac = HashMap::new();
            let mut by_ip = HashMap::new();
            for (i, vm) in ctx.vms.iter().enumerate() {
                let home = vm.home.0 == sw.idx;
                if home || vm.foreign.0 == sw.idx {
                    cands.push((i, home));
                    by_mac.insert(vm.mac, i);
                    for ip in &vm.ips {
                        by_ip.insert(*ip, i);
                    }
                }
            }
            Gen::Migration {
                cands,
                by_mac,
                by_ip,
                table: VmTable::default(),
                moves: HashMap::new(),
                next: 0,
            }
        }
    }
}

impl Gen {
    /// The next request: (key, packet-in bytes), or None when none can be sent now. The
    /// ARP workload's packet-ins are built once and lent, not copied.
    pub(crate) fn next(
        &mut self,
        ctx: &Ctx,
        sw: &SwInfo,
        now: Instant,
    ) -> Option<(usize, Cow<'_, [u8]>)> {
        match self {
            Gen::Idle => None,
            Gen::Arp { pins, next, .. } => {
                let k = *next % pins.len();
                *next = next.wrapping_add(1);
                Some((k, Cow::Borrowed(pins.get(k)?.as_slice())))
            }
            Gen::Unresolved {
                pool, last, next, ..
            } => {
                if pool.is_empty() {
                    return None;
                }
                let k = *next % pool.len();
                let slot = last.get_mut(k)?;
                if slot.is_some_and(|t| now.duration_since(t) < UNRESOLVED_REUSE) {
                    return None;
                }
                *slot = Some(now);
                *next += 1;
                let h = sw.hosts.get(k % sw.hosts.len())?;
                let dst = *pool.get(k)?;
                let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"ofload");
                let f = packet::ipv4_frame(GATEWAY_MAC, h.mac, h.ip, dst, packet::IP_ICMP, &icmp);
                Some((k, Cow::Owned(packet_in(h.port, f))))
            }
            Gen::Newflow { pool, next, .. } => {
                let k = *next;
                let ip = *pool.get(k)?;
                *next += 1;
                let dst = *ctx.far_host.get(&sw.idx)?;
                let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"ofload");
                let f = packet::ipv4_frame(
                    GATEWAY_MAC,
                    new_host_mac(sw.dpid, k),
                    ip,
                    dst,
                    packet::IP_ICMP,
                    &icmp,
                );
                Some((k, Cow::Owned(packet_in(sw.spare_first, f))))
            }
            Gen::Migration {
                cands,
                table,
                moves,
                next,
                ..
            } => {
                for _ in 0..cands.len() {
                    let (vi, home) = *cands.get(*next % cands.len())?;
                    *next += 1;
                    let vm = ctx.vms.get(vi)?;
                    let st = ctx.vm_state.get(vi)?;
                    let (from, to, port) = if home {
                        (AWAY_IDLE, MOVING_HOME, vm.home.1)
                    } else {
                        (HOME_IDLE, MOVING_AWAY, vm.foreign.1)
                    };
                    if st.compare_exchange(from, to, Relaxed, Relaxed).is_ok() {
                        moves.insert(
                            vi,
                            Move {
                                port,
                                home,
                                armed: !table.delivers(vi, port),
                            },
                        );
                        return Some((
                            vi,
                            Cow::Owned(packet_in(port, packet::rarp_announce(vm.mac))),
                        ));
                    }
                }
                None
            }
        }
    }
}
