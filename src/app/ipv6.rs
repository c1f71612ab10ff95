//! The IPv6 gateway (issue 17, part 2; docs/dualstack.md, "IPv6 routing"): neighbour
//! discovery for the gateway addresses (every subnet's `gateway6` and the one link-local
//! [`GATEWAY_LL`] of the whole fabric, both at [`GATEWAY_MAC`]), router advertisements in
//! answer to solicitations and when a switch's table is in place, echo replies from the
//! gateway addresses, hop limit exceeded, and hosts learned from their neighbour discovery
//! with the anti-spoof rules of ARP: an address is learned only inside the prefix of the
//! subnet at the port it comes from, never a gateway's or a care-of pool's, and a binding
//! never moves to another MAC or port by a claim.

use std::net::Ipv6Addr;

use ofp13::{port, Body, MacAddr};
use tracing::{debug, info};

use crate::app::router::{Origin, Router};
use crate::fabric::plan::{packet_out, HostLoc6, SwitchCtx, GATEWAY_LL, GATEWAY_MAC};
use crate::fabric::topology::SubnetConf;
use crate::packet::icmp6::{self, Ipv6, Nd};
use crate::packet::{Ethernet, IP_ICMPV6};

/// Router advertisements: how long hosts keep the gateway as default router, and the
/// prefix's lifetimes (RFC 4861 defaults: 3 x MaxRtrAdvInterval, 30 days, 7 days).
const ROUTER_LIFETIME_S: u16 = 1800;
const VALID_S: u32 = 2_592_000;
const PREFERRED_S: u32 = 604_800;

impl Router {
    /// An IPv6 packet-in at `sw`:`in_port` (from a host port when `host_port`).
    pub(crate) fn on_ipv6(
        &self,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        host_port: bool,
        eth: &Ethernet<'_>,
        frame: &[u8],
        now: std::time::Instant,
    ) -> Vec<Body> {
        let Some(ip) = Ipv6::parse(eth.payload) else {
            return Vec::new();
        };
        if ip.next == IP_ICMPV6 {
            if let Some(nd) = Nd::parse(&ip) {
                return self.on_nd(sw, in_port, host_port, eth, &ip, &nd);
            }
            if ip.payload.first() == Some(&icmp6::ECHO_REQUEST) && is_gateway6(sw, ip.dst) {
                let reply = icmp6::icmp6(ip.dst, ip.src, icmp6::ECHO_REPLY, 0, &ip.payload[4..]);
                let f =
                    icmp6::ipv6_frame(eth.src, GATEWAY_MAC, ip.dst, ip.src, IP_ICMPV6, 64, &reply);
                return vec![packet_out([in_port], f)];
            }
        }
        // A local prefix's address nobody has answered for yet: the packet is held (as for
        // IPv4) and the address asked for from the gateway, on the subnet's host ports; its
        // advertisement releases what was held.
        let unknown = !self.read().hosts6.contains_key(&ip.dst);
        match sw
            .subnets()
            .find(|s| s.prefix6.is_some_and(|p| p.contains(ip.dst)))
        {
            Some(s) if unknown && !is_gateway6(sw, ip.dst) => {
                // Copied before the write lock is taken, not under it.
                let held = bytes::Bytes::copy_from_slice(frame);
                let first = self.lock().hold(sw.name, ip.dst.into(), in_port, held, now);
                if first {
                    self.solicit(sw, s, ip.dst)
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn on_nd(
        &self,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        host_port: bool,
        eth: &Ethernet<'_>,
        ip: &Ipv6<'_>,
        nd: &Nd,
    ) -> Vec<Body> {
        if !host_port {
            return Vec::new();
        }
        // A link-layer address option that is not the frame's sender: a claim in another's
        // name, learned from nowhere.
        let honest = nd.lla.is_none_or(|m| m == eth.src);
        let mut out = Vec::new();
        match nd.ty {
            icmp6::ROUTER_SOLICITATION => {
                if let Some(s) = self.fabric.subnet_at(sw.name, in_port) {
                    let to = if ip.src.is_unspecified() {
                        icmp6::ALL_NODES
                    } else {
                        ip.src
                    };
                    out.extend(
                        router_advertisement(s, eth.src, to).map(|f| packet_out([in_port], f)),
                    );
                }
            }
            icmp6::NEIGHBOR_SOLICITATION => {
                if honest {
                    // The sender, or (duplicate address detection) the address it is about
                    // to use.
                    let claimed = if nd.is_dad(ip) { nd.target } else { ip.src };
                    out.extend(self.learn6(sw, in_port, claimed, eth.src));
                }
                let answer = {
                    let st = self.read();
                    self.nd_answer(&st, sw, eth, ip, nd)
                };
                if let Some(mac) = answer {
                    let dad = ip.src.is_unspecified();
                    let (to, to_mac) = if dad {
                        (icmp6::ALL_NODES, icmp6::multicast_mac(icmp6::ALL_NODES))
                    } else {
                        (ip.src, eth.src)
                    };
                    let router = mac == GATEWAY_MAC && is_gateway6(sw, nd.target);
                    let body = icmp6::na_body(nd.target, mac, router, !dad);
                    let f = icmp6::icmp6_frame(
                        to_mac,
                        mac,
                        nd.target,
                        to,
                        icmp6::NEIGHBOR_ADVERTISEMENT,
                        0,
                        &body,
                    );
                    out.push(packet_out([in_port], f));
                }
            }
            icmp6::NEIGHBOR_ADVERTISEMENT if honest => {
                out.extend(self.learn6(sw, in_port, nd.target, eth.src));
            }
            _ => {}
        }
        out
    }

    /// Who answers a neighbour solicitation at `sw` (the roles of ARP's, see
    /// [`Router::arp_answer`]), with the MAC the answer gives:
    /// 1. a gateway address of the switch: the gateway MAC;
    /// 2. a host at this switch, asked unicast at the gateway's MAC (the asker's cache holds
    ///    the gateway for it, from before one of them moved), or asked by a VM away (whose
    ///    multicast only the controller hears): its own MAC (asked by multicast by anyone
    ///    else, it answers itself);
    /// 3. the asker is a VM away from home here, asking for an address of its home prefix
    ///    (its home network, cases 1 and 3): the gateway MAC (proxy);
    /// 4. a care-of address: nobody (no host may learn one);
    /// 5. an address of a VM away from this switch's subnets, asked for by its home network
    ///    (case 4; duplicate address detection included, which this defends): the gateway
    ///    MAC (proxy).
    /// 6. a known host elsewhere, outside the asker's prefix (the asker holds an ICMPv6
    ///    redirect to it from before one of them moved): the gateway MAC, so it is routed.
    fn nd_answer(
        &self,
        st: &crate::app::router::State,
        sw: &SwitchCtx<'_>,
        eth: &Ethernet<'_>,
        ip: &Ipv6<'_>,
        nd: &Nd,
    ) -> Option<MacAddr> {
        if is_gateway6(sw, nd.target) {
            return Some(GATEWAY_MAC);
        }
        let target = st.hosts6.get(&nd.target).map(|(h, _)| h);
        if let Some(h) = target.filter(|h| h.switch == sw.name) {
            // A VM away sends its multicast to the controller only (table 0, 870): nobody
            // else hears its solicitation, so the controller answers it (case 7: two VMs of
            // one home network on one foreign switch).
            let heard_only_here = st.away.contains_key(&eth.src);
            return ((eth.dst == GATEWAY_MAC || heard_only_here) && h.mac != eth.src)
                .then_some(h.mac);
        }
        let asker_away_here = st.away.contains_key(&eth.src)
            && st.location(eth.src).is_some_and(|(s, _)| s == sw.name);
        if asker_away_here {
            let homes = st
                .vm(eth.src)
                .map(|vm| vm.ips6)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| self.fabric.subnet_of6(a).and_then(|s| s.prefix6));
            let home_net = homes
                .chain(self.fabric.subnet_of6(ip.src).and_then(|s| s.prefix6))
                .any(|p| p.contains(nd.target));
            if home_net {
                return Some(GATEWAY_MAC);
            }
        }
        if target.is_none() && st.is_care_of(nd.target, self.now()) {
            return None;
        }
        let local = sw
            .subnets()
            .any(|s| s.prefix6.is_some_and(|p| p.contains(nd.target)));
        match target {
            Some(h) if local && st.away.contains_key(&h.mac) && h.mac != eth.src => {
                Some(GATEWAY_MAC)
            }
            // A known host elsewhere, outside the asker's prefix: the asker holds a redirect
            // to it (cases 5 and 6) that outlived the move of one of them. Routed, it works.
            Some(h) if !local && h.mac != eth.src => {
                let asker = self
                    .fabric
                    .subnet_of6(ip.src)
                    .or_else(|| {
                        st.vm(eth.src)?
                            .ips6
                            .first()
                            .and_then(|a| self.fabric.subnet_of6(*a))
                    })
                    .and_then(|s| s.prefix6);
                asker
                    .is_some_and(|p| !p.contains(nd.target))
                    .then_some(GATEWAY_MAC)
            }
            _ => None,
        }
    }

    /// Learns IPv6 address `ip` of `mac` at `sw`:`in_port` (see the module's rules); the
    /// host's delivery entries for the switch.
    pub(crate) fn learn6(
        &self,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        ip: Ipv6Addr,
        mac: MacAddr,
    ) -> Vec<Body> {
        let Some(s) = self.fabric.subnet_at(sw.name, in_port) else {
            return Vec::new();
        };
        let learnable = s.prefix6.is_some_and(|p| p.contains(ip))
            && s.gateway6 != Some(ip)
            && !s.care_of_pool6.is_some_and(|p| p.contains(ip))
            && !ip.is_multicast()
            && in_port <= port::MAX;
        if !learnable {
            return Vec::new();
        }
        if let Some((h, _)) = self.read().hosts6.get(&ip) {
            if (h.mac, h.port, h.switch.as_str()) != (mac, in_port, sw.name) {
                debug!(%ip, claimed_by = %mac, port = in_port, bound_to = %h.mac,
                    "ignoring a claim for an IPv6 address bound elsewhere");
            }
            return Vec::new();
        }
        let loc = HostLoc6 {
            ip,
            mac,
            switch: sw.name.to_string(),
            port: in_port,
        };
        let [switching, delivery] = self.fabric.host_flows6(&loc);
        let (dual_stack, held) = {
            let mut st = self.lock();
            if !st.bind6(loc, Origin::Learned) {
                return Vec::new(); // bound meanwhile
            }
            (st.has_ipv4(mac), st.release(sw.name, ip.into()))
        };
        info!(switch = sw.name, %ip, %mac, port = in_port, "IPv6 host learned");
        // A host with IPv4 addresses has its switching entry already, with its IPv4 cookie
        // (as the plan has it: one entry per MAC).
        let flows = if dual_stack {
            vec![delivery]
        } else {
            vec![switching, delivery]
        };
        let mut out: Vec<Body> = flows.iter().map(|f| Body::FlowMod(f.add())).collect();
        out.extend(held);
        out
    }

    /// A neighbour solicitation for `target` from the gateway, out of subnet `s`'s host ports.
    fn solicit(&self, sw: &SwitchCtx<'_>, s: &SubnetConf, target: Ipv6Addr) -> Vec<Body> {
        let ports: Vec<u32> = self
            .read()
            .plan_ports(&self.fabric, sw.name)
            .host
            .into_iter()
            .filter(|&p| {
                self.fabric
                    .subnet_at(sw.name, p)
                    .is_some_and(|t| t.name == s.name)
            })
            .collect();
        if ports.is_empty() {
            return Vec::new();
        }
        let group = icmp6::solicited_node(target);
        let f = icmp6::icmp6_frame(
            icmp6::multicast_mac(group),
            GATEWAY_MAC,
            GATEWAY_LL,
            group,
            icmp6::NEIGHBOR_SOLICITATION,
            0,
            &icmp6::ns_body(target, GATEWAY_MAC),
        );
        vec![packet_out(ports, f)]
    }

    /// ICMPv6 time exceeded for an IPv6 packet whose hop limit ran out at `name`, from the
    /// gateway address of the sender's subnet there (or the switch's, or the fabric's).
    pub(crate) fn time_exceeded6(&self, name: &str, in_port: u32, eth: &Ethernet<'_>) -> Vec<Body> {
        let Some(ip) = Ipv6::parse(eth.payload) else {
            return Vec::new();
        };
        if ip.next == IP_ICMPV6 && ip.payload.first().is_some_and(|t| *t < 128) {
            return Vec::new(); // never answer an ICMPv6 error with another
        }
        let from = self
            .fabric
            .subnets_of(name)
            .find(|s| s.prefix6.is_some_and(|p| p.contains(ip.src)))
            .or_else(|| self.fabric.subnets_of(name).find(|s| s.gateway6.is_some()))
            .or_else(|| self.fabric.subnet_of6(ip.src))
            .and_then(|s| s.gateway6);
        let Some(from) = from else {
            return Vec::new();
        };
        let mut body = vec![0; 4];
        body.extend_from_slice(icmp6::quote(ip.packet));
        let m = icmp6::icmp6(from, ip.src, icmp6::TIME_EXCEEDED, 0, &body);
        let dst_mac = if self.fabric.is_link_port(name, in_port) {
            GATEWAY_MAC
        } else {
            eth.src
        };
        let f = icmp6::ipv6_frame(dst_mac, GATEWAY_MAC, from, ip.src, IP_ICMPV6, 64, &m);
        vec![packet_out([in_port], f)]
    }

    /// Unsolicited router advertisements to `name`'s host ports, now (its table is in place:
    /// hosts that solicited before get one) and every `advertise_every`
    /// ([`crate::app::router::DEFAULT_ADVERTISE_EVERY`] unless a test sets it) while its session
    /// lasts, so that no host's default route expires.
    pub(crate) async fn advertise_loop(
        self: std::sync::Arc<Self>,
        h: crate::switch::runtime::SwitchHandle,
        name: String,
    ) {
        if !self.fabric.subnets_of(&name).any(|s| s.prefix6.is_some()) {
            return;
        }
        while !h.is_closed() {
            let ads = self.advertise(&name);
            if !ads.is_empty() && h.send(ads).await.is_err() {
                return;
            }
            tokio::time::sleep(self.advertise_every).await;
        }
    }

    /// Router advertisements out of every host port of `name` whose subnet has an IPv6
    /// prefix.
    pub(crate) fn advertise(&self, name: &str) -> Vec<Body> {
        let ports = self.read().plan_ports(&self.fabric, name).host;
        let mut out = Vec::new();
        for s in self.fabric.subnets_of(name) {
            let mine: Vec<u32> = ports
                .iter()
                .copied()
                .filter(|&p| {
                    self.fabric
                        .subnet_at(name, p)
                        .is_some_and(|t| t.name == s.name)
                })
                .collect();
            let to_mac = icmp6::multicast_mac(icmp6::ALL_NODES);
            if let Some(f) = router_advertisement(s, to_mac, icmp6::ALL_NODES) {
                if !mine.is_empty() {
                    out.push(packet_out(mine, f));
                }
            }
        }
        out
    }
}

/// Whether `a` is one of `sw`'s gateway addresses: a subnet's `gateway6`, or the fabric's
/// link-local gateway (on a switch with an IPv6 subnet).
fn is_gateway6(sw: &SwitchCtx<'_>, a: Ipv6Addr) -> bool {
    let mut v6 = sw.subnets().filter_map(|s| s.gateway6).peekable();
    if a == GATEWAY_LL {
        return v6.peek().is_some();
    }
    v6.any(|g| g == a)
}

/// A router advertisement of subnet `s` (none without an IPv6 prefix) from the link-local
/// gateway to `to` at `to_mac`.
fn router_advertisement(s: &SubnetConf, to_mac: MacAddr, to: Ipv6Addr) -> Option<Vec<u8>> {
    let p = s.prefix6?;
    let ad = icmp6::Advert {
        prefix: p.addr,
        prefix_len: p.len,
        router_lifetime: ROUTER_LIFETIME_S,
        valid_s: VALID_S,
        preferred_s: PREFERRED_S,
        mtu: None,
        mac: GATEWAY_MAC,
    };
    Some(icmp6::icmp6_frame(
        to_mac,
        GATEWAY_MAC,
        GATEWAY_LL,
        to,
        icmp6::ROUTER_ADVERTISEMENT,
        0,
        &icmp6::ra_body(&ad),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::Fabric;
    use crate::fabric::topology::Topology;
    use ofp13::{PacketIn, PacketOut};

    const D: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 2]);
    const VM: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 3]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn router() -> Router {
        let t = Topology::parse(include_str!("../../topologies/dual-stack.toml")).unwrap();
        Router::new(Fabric::new(&t))
    }

    /// The packet-in of `frame` at r3:`in_port` from the punt table: the messages sent back.
    fn at_r3(r: &Router, in_port: u32, frame: Vec<u8>) -> Vec<Body> {
        let mut pi = PacketIn::unbuffered(in_port, ofp13::OFPR_ACTION, frame);
        pi.table_id = crate::fabric::plan::TABLE_PUNT;
        r.packet_in("r3", &|| vec![1, 2, 3, 4, 5], &pi)
    }

    fn outs(v: &[Body]) -> Vec<&PacketOut> {
        v.iter()
            .filter_map(|b| match b {
                Body::PacketOut(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn flow_mods(v: &[Body]) -> usize {
        v.iter().filter(|b| matches!(b, Body::FlowMod(_))).count()
    }

    /// Every FLOW_MOD of `out` adds an entry exactly as r3's plan has it.
    fn planned(r: &Router, out: &[Body]) {
        let plan = r.switch_plan("r3");
        for b in out {
            if let Body::FlowMod(fm) = b {
                assert!(plan.iter().any(|f| f.add() == *fm), "{fm:?} is not planned");
            }
        }
    }

    fn bound(r: &Router, ip: &str) -> Option<(MacAddr, String, u32)> {
        r.read()
            .hosts6
            .get(&a(ip))
            .map(|(h, _)| (h.mac, h.switch.clone(), h.port))
    }

    /// A neighbour solicitation for `target` from `src` (`lla`: its source link-layer option),
    /// in a frame from `mac`, hop limit `hops`.
    fn ns(
        mac: MacAddr,
        src: Ipv6Addr,
        target: Ipv6Addr,
        lla: Option<MacAddr>,
        hops: u8,
    ) -> Vec<u8> {
        let group = icmp6::solicited_node(target);
        let mut body = icmp6::ns_body(target, lla.unwrap_or(mac));
        if lla.is_none() {
            body.truncate(20);
        }
        let m = icmp6::icmp6(src, group, icmp6::NEIGHBOR_SOLICITATION, 0, &body);
        icmp6::ipv6_frame(
            icmp6::multicast_mac(group),
            mac,
            src,
            group,
            IP_ICMPV6,
            hops,
            &m,
        )
    }

    fn na(mac: MacAddr, target: Ipv6Addr, lla: MacAddr) -> Vec<u8> {
        icmp6::icmp6_frame(
            icmp6::multicast_mac(icmp6::ALL_NODES),
            mac,
            target,
            icmp6::ALL_NODES,
            icmp6::NEIGHBOR_ADVERTISEMENT,
            0,
            &icmp6::na_body(target, lla, false, false),
        )
    }

    #[test]
    fn a_solicitation_for_a_gateway_is_answered_and_its_sender_learned() {
        let r = router();
        for gw in [a("fd00:0:0:11::1"), GATEWAY_LL] {
            let src = a("fd00:0:0:11::99");
            let out = at_r3(&r, 2, ns(D, src, gw, Some(D), 255));
            let po = outs(&out);
            assert_eq!(po.len(), 1, "{out:?}");
            let e = Ethernet::parse(&po[0].data).unwrap();
            let ip = Ipv6::parse(e.payload).unwrap();
            let nd = Nd::parse(&ip).unwrap();
            assert_eq!((e.dst, e.src, ip.src, ip.dst), (D, GATEWAY_MAC, gw, src));
            // Router, solicited, override; the gateway MAC.
            assert_eq!(
                (nd.ty, nd.target, nd.lla, nd.flags),
                (136, gw, Some(GATEWAY_MAC), 0b111)
            );
        }
        // Its sender learned once, with its delivery entry (d has IPv4 too: its switching
        // entry is the IPv4 one, as the plan has it).
        assert_eq!(bound(&r, "fd00:0:0:11::99"), Some((D, "r3".into(), 2)));
        let r2 = router();
        let out = at_r3(
            &r2,
            2,
            ns(D, a("fd00:0:0:11::98"), GATEWAY_LL, Some(D), 255),
        );
        assert_eq!(flow_mods(&out), 1);
        planned(&r2, &out);
        // Duplicate address detection of a new address: learned too; the gateway defends its own.
        let out = at_r3(
            &r,
            3,
            ns(VM, Ipv6Addr::UNSPECIFIED, a("fd00:0:0:11::77"), None, 255),
        );
        assert_eq!(flow_mods(&out), 1);
        planned(&r, &out);
        // A host with IPv6 only: its switching entry too, as planned.
        const V6ONLY: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 5]);
        let dad = ns(
            V6ONLY,
            Ipv6Addr::UNSPECIFIED,
            a("fd00:0:0:11::76"),
            None,
            255,
        );
        let out = at_r3(&r, 5, dad);
        assert_eq!(flow_mods(&out), 2);
        planned(&r, &out);
        // Its one switching entry is the same whichever of its addresses put it there (the
        // plan's choice among them must not depend on a hash order).
        let switching: Vec<u64> = r
            .switch_plan("r3")
            .iter()
            .filter(|f| {
                f.table_id == 1 && f.match_.fields.contains(&ofp13::Oxm::EthDst(V6ONLY, None))
            })
            .map(|f| f.cookie)
            .collect();
        assert_eq!(switching, [crate::fabric::plan::COOKIE_HOST6 | 0x0000_1105]);
        assert_eq!(bound(&r, "fd00:0:0:11::77"), Some((VM, "r3".into(), 3)));
        let out = at_r3(
            &r,
            3,
            ns(VM, Ipv6Addr::UNSPECIFIED, a("fd00:0:0:11::1"), None, 255),
        );
        let po = outs(&out);
        assert_eq!(po.len(), 1);
        let e = Ethernet::parse(&po[0].data).unwrap();
        assert_eq!(Ipv6::parse(e.payload).unwrap().dst, icmp6::ALL_NODES);
        assert_eq!(bound(&r, "fd00:0:0:11::1"), None);
    }

    #[test]
    fn neighbour_discovery_never_moves_a_binding_or_learns_what_it_should_not() {
        let r = router();
        let before = r.read().hosts6.len();
        let cases: Vec<(&str, u32, Vec<u8>)> = vec![
            // vm claims d's declared address, by advertisement and by solicitation.
            ("advertised", 3, na(VM, a("fd00:0:0:11::2"), VM)),
            (
                "solicited",
                3,
                ns(VM, a("fd00:0:0:11::2"), a("fd00:0:0:11::1"), Some(VM), 255),
            ),
            // A link-layer option that is not the sender.
            ("other's lla", 3, na(VM, a("fd00:0:0:11::66"), D)),
            (
                "other's sll",
                3,
                ns(VM, a("fd00:0:0:11::65"), a("fd00:0:0:11::1"), Some(D), 255),
            ),
            // Another subnet's prefix, a care-of pool, a gateway, link-local and multicast.
            ("foreign prefix", 3, na(VM, a("fd00:0:0:10::7"), VM)),
            ("care-of pool", 3, na(VM, a("fd00:0:0:11::ff01"), VM)),
            ("gateway", 3, na(VM, a("fd00:0:0:11::1"), VM)),
            ("link-local", 3, na(VM, a("fe80::1"), VM)),
            // From off-link (hop limit not 255), and from a link port.
            (
                "routed",
                3,
                ns(VM, a("fd00:0:0:11::64"), a("fd00:0:0:11::1"), Some(VM), 64),
            ),
            ("link port", 1, na(VM, a("fd00:0:0:11::63"), VM)),
        ];
        for (what, port, frame) in cases {
            let out = at_r3(&r, port, frame);
            assert_eq!(flow_mods(&out), 0, "{what}: {out:?}");
        }
        assert_eq!(r.read().hosts6.len(), before);
        assert_eq!(bound(&r, "fd00:0:0:11::2"), Some((D, "r3".into(), 2)));
        // Malformed IPv6 never panics and answers nothing.
        for n in [14, 20, 54, 60, 70] {
            let f = na(VM, a("fd00:0:0:11::61"), VM);
            assert!(at_r3(&r, 3, f[..n.min(f.len())].to_vec()).is_empty());
        }
    }

    #[test]
    fn solicitations_echoes_and_expired_hop_limits_are_answered_by_the_gateway() {
        let r = router();
        // A router solicitation: the subnet's prefix, from the link-local gateway, to the asker.
        let src = link_local_of(D);
        let rs = icmp6::icmp6_frame(
            icmp6::multicast_mac(a("ff02::2")),
            D,
            src,
            a("ff02::2"),
            icmp6::ROUTER_SOLICITATION,
            0,
            &[0; 4],
        );
        let out = at_r3(&r, 2, rs);
        let po = outs(&out);
        assert_eq!((po.len(), po[0].in_port), (1, ofp13::port::CONTROLLER));
        let e = Ethernet::parse(&po[0].data).unwrap();
        let ip = Ipv6::parse(e.payload).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.payload[0]),
            (GATEWAY_LL, src, icmp6::ROUTER_ADVERTISEMENT)
        );
        // After the source link-layer option: the prefix information, its prefix last.
        assert_eq!(&ip.payload[24..28], &[3, 4, 64, 0xc0]);
        assert_eq!(&ip.payload[40..56], &a("fd00:0:0:11::").octets());
        // An echo to the gateway.
        let ping = icmp6::icmp6(
            a("fd00:0:0:11::2"),
            a("fd00:0:0:11::1"),
            icmp6::ECHO_REQUEST,
            0,
            &[0, 1, 0, 1, 9, 9],
        );
        let f = icmp6::ipv6_frame(
            GATEWAY_MAC,
            D,
            a("fd00:0:0:11::2"),
            a("fd00:0:0:11::1"),
            IP_ICMPV6,
            64,
            &ping,
        );
        let out = at_r3(&r, 2, f.clone());
        let e = Ethernet::parse(&outs(&out)[0].data).unwrap();
        let ip = Ipv6::parse(e.payload).unwrap();
        assert_eq!(
            (ip.src, ip.payload[0], &ip.payload[4..]),
            (
                a("fd00:0:0:11::1"),
                icmp6::ECHO_REPLY,
                &[0, 1, 0, 1, 9, 9][..]
            )
        );
        // Its hop limit ran out (invalid_ttl): time exceeded from the sender's gateway.
        let pi = PacketIn::unbuffered(2, ofp13::OFPR_INVALID_TTL, f);
        let out = r.packet_in("r3", &|| vec![1, 2, 3, 4, 5], &pi);
        let e = Ethernet::parse(&outs(&out)[0].data).unwrap();
        let ip = Ipv6::parse(e.payload).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.payload[0]),
            (
                a("fd00:0:0:11::1"),
                a("fd00:0:0:11::2"),
                icmp6::TIME_EXCEEDED
            )
        );
    }

    #[test]
    fn packets_for_an_unknown_address_are_held_until_it_answers() {
        let r = router();
        let (from, to) = (a("fd00:0:0:a::2"), a("fd00:0:0:11::88"));
        let ping = |n: u8| {
            let m = icmp6::icmp6(from, to, icmp6::ECHO_REQUEST, 0, &[0, 1, 0, n]);
            icmp6::ipv6_frame(GATEWAY_MAC, GATEWAY_MAC, from, to, IP_ICMPV6, 62, &m)
        };
        // The first, from the link: held, and the address solicited on the subnet's ports.
        let out = at_r3(&r, 1, ping(1));
        let po = outs(&out);
        assert_eq!(po.len(), 1, "{out:?}");
        let ports: Vec<u32> = po[0]
            .actions
            .iter()
            .filter_map(|x| match x {
                ofp13::Action::Output { port, .. } => Some(*port),
                _ => None,
            })
            .collect();
        assert_eq!(ports, [2, 3, 4, 5]);
        let e = Ethernet::parse(&po[0].data).unwrap();
        let ip = Ipv6::parse(e.payload).unwrap();
        let nd = Nd::parse(&ip).unwrap();
        assert_eq!(
            (ip.src, nd.ty, nd.target),
            (GATEWAY_LL, icmp6::NEIGHBOR_SOLICITATION, to)
        );
        // The second: held, not solicited again.
        assert!(at_r3(&r, 1, ping(2)).is_empty());
        // The answer: its delivery, then both packets on through the pipeline from the link.
        let answer = icmp6::icmp6_frame(
            VM,
            VM,
            to,
            GATEWAY_LL,
            icmp6::NEIGHBOR_ADVERTISEMENT,
            0,
            &icmp6::na_body(to, VM, false, true),
        );
        let out = at_r3(&r, 3, answer);
        assert_eq!(flow_mods(&out), 1);
        let again: Vec<_> = outs(&out).into_iter().map(|p| p.in_port).collect();
        assert_eq!(again, [1, 1]);
        assert!(
            matches!(out.first(), Some(Body::FlowMod(_))),
            "the entry first"
        );
    }

    /// The packet-in of `frame` at `switch`:`in_port` from the punt table.
    fn at(r: &Router, switch: &str, in_port: u32, frame: Vec<u8>) -> Vec<Body> {
        let mut pi = PacketIn::unbuffered(in_port, ofp13::OFPR_ACTION, frame);
        pi.table_id = crate::fabric::plan::TABLE_PUNT;
        r.packet_in(switch, &|| vec![1, 2, 3, 4, 5], &pi)
    }

    /// The one neighbour advertisement `out` sends: (Ethernet destination, IPv6
    /// destination, target, its link-layer address, flags).
    fn advertised(out: &[Body]) -> (MacAddr, Ipv6Addr, Ipv6Addr, Option<MacAddr>, u8) {
        let po = outs(out);
        assert_eq!(po.len(), 1, "{out:?}");
        let e = Ethernet::parse(&po[0].data).unwrap();
        let ip = Ipv6::parse(e.payload).unwrap();
        let nd = Nd::parse(&ip).unwrap();
        assert_eq!(
            (nd.ty, e.src),
            (icmp6::NEIGHBOR_ADVERTISEMENT, nd.lla.unwrap())
        );
        (e.dst, ip.dst, nd.target, nd.lla, nd.flags)
    }

    #[test]
    fn neighbour_discovery_is_proxied_for_a_vm_away_and_for_its_home_network() {
        const B: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 2]);
        let r = router();
        let (vm6, d6, b6) = (
            a("fd00:0:0:11::3"),
            a("fd00:0:0:11::2"),
            a("fd00:0:0:10::2"),
        );
        {
            let mut st = r.lock();
            let to = crate::fabric::topology::PortRef {
                switch: "r2".into(),
                port: 3,
            };
            crate::app::migrate::plan_move(&mut st, &r.fabric, VM, "vm", &to, false, r.now())
                .unwrap();
        }
        let co = r.read().away[&VM].away.care_of6[0];
        // Its home network asks for it: the gateway's MAC (not a router), solicited, override.
        let out = at(&r, "r3", 2, ns(D, d6, vm6, Some(D), 255));
        assert_eq!(
            advertised(&out),
            (D, d6, vm6, Some(GATEWAY_MAC), 0b011),
            "{out:?}"
        );
        // The same unicast at the gateway's MAC (a neighbour's cache checking it).
        let mut unicast = ns(D, d6, vm6, Some(D), 255);
        unicast[..6].copy_from_slice(&GATEWAY_MAC.0);
        assert_eq!(advertised(&at(&r, "r3", 2, unicast)).3, Some(GATEWAY_MAC));
        // Duplicate address detection of its address at home: defended, to all nodes.
        let dad = ns(D, Ipv6Addr::UNSPECIFIED, vm6, None, 255);
        let (_, to, target, lla, flags) = advertised(&at(&r, "r3", 2, dad));
        assert_eq!(
            (to, target, lla, flags & 0b010),
            (icmp6::ALL_NODES, vm6, Some(GATEWAY_MAC), 0)
        );
        // The VM, away, asks for a home neighbour: the gateway's MAC.
        let out = at(&r, "r2", 3, ns(VM, vm6, d6, Some(VM), 255));
        assert_eq!(advertised(&out).3, Some(GATEWAY_MAC), "{out:?}");
        // ... from its link-local address too.
        let out = at(&r, "r2", 3, ns(VM, link_local_of(VM), d6, Some(VM), 255));
        assert_eq!(advertised(&out).3, Some(GATEWAY_MAC), "{out:?}");
        // A host of the foreign subnet asking for the VM: it answers itself (the fabric
        // floods the solicitation to it); for a foreign host, nobody but the host.
        assert!(outs(&at(&r, "r2", 2, ns(B, b6, vm6, Some(B), 255))).is_empty());
        // Its care-of address: never answered, whoever asks, wherever.
        for (sw, port, mac, src) in [("r2", 2, B, b6), ("r3", 2, D, d6), ("r2", 3, VM, vm6)] {
            let out = at(&r, sw, port, ns(mac, src, co, Some(mac), 255));
            assert!(outs(&out).is_empty(), "{sw}: {out:?}");
        }
        // The VM does not learn a home address at the foreign port.
        assert_eq!(bound(&r, "fd00:0:0:11::3"), Some((VM, "r2".into(), 3)));
        // Case 7: a second VM of its home network moves to the same foreign switch; their
        // solicitations of each other reach only the controller, which answers each with
        // the other's own MAC.
        const VM2: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 4]);
        let vm2_6 = a("fd00:0:0:11::4");
        {
            let mut st = r.lock();
            let to = crate::fabric::topology::PortRef {
                switch: "r2".into(),
                port: 4,
            };
            crate::app::migrate::plan_move(&mut st, &r.fabric, VM2, "vm2", &to, false, r.now())
                .unwrap();
        }
        let out = at(&r, "r2", 3, ns(VM, vm6, vm2_6, Some(VM), 255));
        assert_eq!(advertised(&out).3, Some(VM2), "{out:?}");
        let out = at(&r, "r2", 4, ns(VM2, vm2_6, vm6, Some(VM2), 255));
        assert_eq!(advertised(&out).3, Some(VM), "{out:?}");
        // Back home, b still holds a redirect to it on its link: asked there, the gateway's
        // MAC, so b's packets are routed to it.
        {
            let mut st = r.lock();
            let home = crate::fabric::topology::PortRef {
                switch: "r3".into(),
                port: 3,
            };
            crate::app::migrate::plan_move(&mut st, &r.fabric, VM, "vm", &home, false, r.now())
                .unwrap();
        }
        let out = at(&r, "r2", 2, ns(B, b6, vm6, Some(B), 255));
        assert_eq!(advertised(&out).3, Some(GATEWAY_MAC), "{out:?}");
    }

    fn link_local_of(m: MacAddr) -> Ipv6Addr {
        icmp6::link_local(m)
    }
}
