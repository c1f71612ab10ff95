//! Service Switching's flow entries for one VM (paper section IV), as a pure function of where
//! the VM is: [`vm_flows`]. A migration is the difference between the entries before and after
//! ([`diff`]), so moving back home returns every table exactly to its state before, and a
//! switch's whole table ([`switch_plan`]) is the fabric's base pipeline plus every VM's entries
//! for it. See docs/migration.md.
//!
//! For a VM M with home address M (home switch SH) now at foreign switch SF with care-of M*,
//! and its cover C (SF, SH, the edge switches, and the switches added when their hosts
//! talked to M: the switches whose hosts get the optimal path; everything else reaches M
//! through SH, the home agent, whose copies to the controller add their switch to C):
//! - every switch S of C but SF: table 1 `nw_dst=M` -> M* (traffic entering from hosts);
//!   table 3 `nw_src=M*,nw_dst=P` -> M for each subnet P of S (replies, before delivery).
//! - SF: M's host entries (table 0 source, table 1 switching); table 1 `nw_dst=M` -> M* for
//!   its own hosts; table 2 `nw_src=M,nw_dst=P` -> M* for each subnet P of the other cover
//!   switches (only there is the care-of address rewritten back); table 4 delivery of M*
//!   (M* -> M, Ethernet rewrite, output); table 1 copies to the controller for traffic between
//!   M and SF's own subnets, which answers them with ICMP redirects (cases 5 and 6).
//! - SH: table 4 `nw_dst=M` -> a copy to the controller, M* and on toward SF (the home
//!   agent: packets from switches outside the cover arrive here by M's home prefix), with a
//!   twin for packets that arrive on the link toward SF (`output:IN_PORT`).
//!
//! Aggregation and core switches without subnets never carry a per-VM entry: between access
//! and core only M* is seen for cover traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ofp13::{port, Action, FlowMod, MacAddr, Match, Oxm};

use crate::fabric::plan::{
    apply, apply_then, dedup, delete_strict, dhcp_to_server, goto, sort_flows, table_diff, Fabric,
    Flow, HostLoc, HostLoc6, COOKIE_MOBILITY, COOKIE_MOBILITY6, COOKIE_REDIRECT, COOKIE_REDIRECT6,
    GATEWAY_MAC, MULTICAST_BIT, PRIO_AWAY_DHCP, PRIO_AWAY_FLOOD, PRIO_PREFIX_BASE, TABLE_CLASSIFY,
    TABLE_FROM_HOST, TABLE_PUNT, TABLE_ROUTE, TABLE_SOURCE, TABLE_TO_HOST,
};
use crate::fabric::topology::{Prefix, Prefix6};
use crate::packet::{ETH_IPV4, ETH_IPV6};

/// Table 1: destination rewrite M -> M* (above redirect copies of other traffic, below the
/// same-switch switching entries at 500).
const PRIO_DNAT: u16 = 450;
/// Table 1: a copy to the controller of traffic from a local host to M (plus M's rewrite).
const PRIO_REDIRECT_TO_VM: u16 = 460;
/// Table 1: a copy to the controller of traffic from M to a local subnet.
const PRIO_REDIRECT_FROM_VM: u16 = 400;
/// Tables 2 and 3: source rewrites.
const PRIO_SNAT: u16 = 400;

/// A switch's host ports as a plan needs them: all of them (their subnets' flood and DHCP
/// entries), and those that get a meter (none on a switch that implements no meters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPorts {
    pub host: BTreeSet<u32>,
    pub metered: BTreeSet<u32>,
}

/// A VM away from home: where its care-of addresses are and which switches rewrite for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Away {
    /// One care-of address per home address, in the same order as [`Vm::ips`].
    pub care_of: Vec<Ipv4Addr>,
    /// One care-of address per IPv6 home address, in the order of [`Vm::ips6`] (none when
    /// the foreign subnet has no `prefix6`: its IPv6 addresses are then not delivered).
    pub care_of6: Vec<Ipv6Addr>,
    /// The switches that rewrite its addresses (always its location and home switches).
    pub cover: BTreeSet<String>,
    /// (source, destination) pairs between the VM and a host of the foreign subnets whose
    /// ICMP or ICMPv6 redirects are spent (the sender ignores them): their packets (or
    /// their TCP segments only) are no longer copied to the controller, until
    /// [`REDIRECT_QUIET`] has passed.
    pub quiet: BTreeSet<QuietPair>,
}

/// A (source, destination) pair whose redirects are spent, for its TCP segments only or for
/// all its packets. Redirects for TCP and for the rest are counted apart: Linux ignores a
/// redirect that quotes a TCP segment already acknowledged (`TcpExtOutOfWindowIcmps`), as
/// most are by the time the redirect arrives, so a TCP stream spends its pair's redirects
/// at once; its ICMP and UDP packets (a ping) are still redirected, and once the host takes
/// one, all its packets to the destination go direct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuietPair {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub tcp_only: bool,
}

/// How long a (sender, destination) pair whose ICMP redirects are spent is not copied to
/// the controller; then it may be redirected again (a burst of them, then quiet again).
pub const REDIRECT_QUIET: std::time::Duration = std::time::Duration::from_secs(20);

/// A host as the mobility planner sees it: its addresses, where it is now, and (when it is in
/// a subnet that is not its home) its care-of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub mac: MacAddr,
    pub ips: Vec<Ipv4Addr>,
    /// Its IPv6 addresses, ascending (they move with it, see [`Away::care_of6`]).
    pub ips6: Vec<Ipv6Addr>,
    pub switch: String,
    pub port: u32,
    pub away: Option<Away>,
}

impl Vm {
    fn loc(&self, ip: Ipv4Addr) -> HostLoc {
        HostLoc {
            ip,
            mac: self.mac,
            switch: self.switch.clone(),
            port: self.port,
        }
    }

    fn loc6(&self, ip: Ipv6Addr) -> HostLoc6 {
        HostLoc6 {
            ip,
            mac: self.mac,
            switch: self.switch.clone(),
            port: self.port,
        }
    }
}

/// The switches that rewrite for a VM away from its home switch(es) by default: where it is,
/// its home switches, and every edge switch (a non-access switch with subnets of its own,
/// such as the core router carrying the external network).
pub fn default_cover(
    fabric: &Fabric,
    at: &str,
    ips: &[Ipv4Addr],
    ips6: &[Ipv6Addr],
) -> BTreeSet<String> {
    let mut c = BTreeSet::from([at.to_string()]);
    let homes = ips
        .iter()
        .filter_map(|ip| fabric.subnet_of(*ip))
        .chain(ips6.iter().filter_map(|ip| fabric.subnet_of6(*ip)));
    for s in homes {
        c.insert(s.switch.clone());
    }
    c.extend(fabric.edges().iter().cloned());
    c
}

fn prefix_oxm_dst(p: &Prefix) -> Oxm {
    Oxm::Ipv4Dst(p.addr, (p.len < 32).then(|| Ipv4Addr::from(p.mask())))
}

fn prefix_oxm_src(p: &Prefix) -> Oxm {
    Oxm::Ipv4Src(p.addr, (p.len < 32).then(|| Ipv4Addr::from(p.mask())))
}

fn set(field: Oxm) -> Action {
    Action::SetField { field }
}

/// A subnet's prefix in one family, as a match field.
#[derive(Debug, Clone, Copy)]
enum Net {
    V4(Prefix),
    V6(Prefix6),
}

impl Net {
    fn contains(self, a: IpAddr) -> bool {
        match (self, a) {
            (Net::V4(p), IpAddr::V4(a)) => p.contains(a),
            (Net::V6(p), IpAddr::V6(a)) => p.contains(a),
            _ => false,
        }
    }

    fn src(self) -> Oxm {
        match self {
            Net::V4(p) => prefix_oxm_src(&p),
            Net::V6(p) => Oxm::Ipv6Src(p.addr, (p.len < 128).then(|| Ipv6Addr::from(p.mask()))),
        }
    }

    fn dst(self) -> Oxm {
        match self {
            Net::V4(p) => prefix_oxm_dst(&p),
            Net::V6(p) => Oxm::Ipv6Dst(p.addr, (p.len < 128).then(|| Ipv6Addr::from(p.mask()))),
        }
    }
}

/// The prefixes of `switch`'s subnets in the family of `a`.
fn nets(fabric: &Fabric, switch: &str, a: IpAddr) -> Vec<Net> {
    fabric
        .subnets_of(switch)
        .filter_map(|s| match a {
            IpAddr::V4(_) => s.prefix.map(Net::V4),
            IpAddr::V6(_) => s.prefix6.map(Net::V6),
        })
        .collect()
}

fn exact_dst(a: IpAddr) -> Oxm {
    match a {
        IpAddr::V4(a) => Oxm::Ipv4Dst(a, None),
        IpAddr::V6(a) => Oxm::Ipv6Dst(a, None),
    }
}

fn exact_src(a: IpAddr) -> Oxm {
    match a {
        IpAddr::V4(a) => Oxm::Ipv4Src(a, None),
        IpAddr::V6(a) => Oxm::Ipv6Src(a, None),
    }
}

fn eth_type(a: IpAddr) -> Oxm {
    Oxm::EthType(if a.is_ipv4() { ETH_IPV4 } else { ETH_IPV6 }, None)
}

/// A match on packets of `a`'s family, then `fields`.
fn family_match(a: IpAddr, fields: Vec<Oxm>) -> Match {
    let mut v = vec![eth_type(a)];
    v.extend(fields);
    Match::new(v)
}

/// The cookie of a VM's entries for home address `a` (see [`COOKIE_MOBILITY6`]).
pub fn mobility_cookie(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => COOKIE_MOBILITY | u64::from(u32::from(a)),
        IpAddr::V6(a) => COOKIE_MOBILITY6 | u64::from(u128::from(a) as u32),
    }
}

/// Table 4's priority for one address (a longest-prefix route of its family's full length).
fn host_route_priority(a: IpAddr) -> u16 {
    PRIO_PREFIX_BASE + if a.is_ipv4() { 32 } else { 128 }
}

/// Every flow entry a VM needs, by switch. At home these are its ordinary host entries.
pub fn vm_flows(fabric: &Fabric, vm: &Vm) -> Vec<(String, Flow)> {
    let mut out = Vec::new();
    let Some(away) = &vm.away else {
        for ip in &vm.ips {
            for f in fabric.host_flows(&vm.loc(*ip)) {
                out.push((vm.switch.clone(), f));
            }
        }
        for &ip in &vm.ips6 {
            let [switching, delivery] = fabric.host_flows6(&vm.loc6(ip));
            // A dual-stack host's switching entry is its IPv4 one (one entry per MAC).
            if vm.ips.is_empty() {
                out.push((vm.switch.clone(), switching));
            }
            out.push((vm.switch.clone(), delivery));
        }
        return out;
    };
    let sf = vm.switch.as_str();
    let default = default_cover(fabric, sf, &vm.ips, &vm.ips6);
    for (i, &ip) in vm.ips.iter().enumerate() {
        let [source, switching, _home_delivery] = fabric.host_flows(&vm.loc(ip));
        out.push((sf.to_string(), source));
        out.push((sf.to_string(), switching));
        let Some(&co) = away.care_of.get(i) else {
            continue;
        };
        rewrites(fabric, vm, away, ip.into(), co.into(), &default, &mut out);
        redirect_copies(fabric, vm, away, ip.into(), co.into(), &mut out);
    }
    // Its IPv6 addresses move with it when the foreign subnet has a prefix6 (a care-of
    // address each); without one they are not delivered while it is away.
    for (i, &ip) in vm.ips6.iter().enumerate() {
        let Some(&co) = away.care_of6.get(i) else {
            continue;
        };
        if vm.ips.is_empty() {
            let [switching, _] = fabric.host_flows6(&vm.loc6(ip));
            out.push((sf.to_string(), switching));
        }
        rewrites(fabric, vm, away, ip.into(), co.into(), &default, &mut out);
        redirect_copies(fabric, vm, away, ip.into(), co.into(), &mut out);
    }
    out.extend(away_subnet_flows(fabric, vm));
    out
}

/// The foreign switch's copies to the controller of traffic between home address `ip` (care-of
/// `co`) and its own subnets, which the controller answers with ICMP or ICMPv6 redirects
/// (cases 5 and 6); and the entries of pairs whose redirects are spent: the same without the
/// copy, above it, until [`REDIRECT_QUIET`] has passed.
fn redirect_copies(
    fabric: &Fabric,
    vm: &Vm,
    away: &Away,
    ip: IpAddr,
    co: IpAddr,
    out: &mut Vec<(String, Flow)>,
) {
    let sf = vm.switch.as_str();
    let cookie = redirect_cookie(ip);
    let local = nets(fabric, sf, ip);
    // The entry of a pair at the foreign switch: its actions, then on to the source table.
    let entry = |priority, fields, actions: Vec<Action>| Flow {
        table_id: TABLE_FROM_HOST,
        priority,
        cookie,
        match_: family_match(ip, fields),
        instructions: apply_then(actions, TABLE_SOURCE),
        ..Default::default()
    };
    let copy = |priority, fields, mut actions: Vec<Action>| {
        actions.insert(0, Action::output(port::CONTROLLER));
        entry(priority, fields, actions)
    };
    for net in local.iter().filter(|n| !n.contains(ip)) {
        out.push((
            sf.to_string(),
            copy(
                PRIO_REDIRECT_FROM_VM,
                vec![exact_src(ip), net.dst()],
                Vec::new(),
            ),
        ));
        out.push((
            sf.to_string(),
            copy(
                PRIO_REDIRECT_TO_VM,
                vec![net.src(), exact_dst(ip)],
                vec![set(exact_dst(co))],
            ),
        ));
    }
    for q in &away.quiet {
        let (src, dst) = (q.src, q.dst);
        let (priority, actions) = if dst == ip && local.iter().any(|n| n.contains(src)) {
            (PRIO_REDIRECT_TO_VM, vec![set(exact_dst(co))])
        } else if src == ip && local.iter().any(|n| n.contains(dst)) {
            (PRIO_REDIRECT_FROM_VM, Vec::new())
        } else {
            continue;
        };
        // Above the copy; the whole pair's above its TCP segments'.
        let (priority, mut fields) = if q.tcp_only {
            (
                priority + 5,
                vec![Oxm::IpProto(crate::packet::IP_TCP, None)],
            )
        } else {
            (priority + 10, Vec::new())
        };
        fields.extend([exact_src(src), exact_dst(dst)]);
        out.push((
            sf.to_string(),
            Flow {
                hard_timeout: REDIRECT_QUIET.as_secs() as u16,
                flags: ofp13::OFPFF_SEND_FLOW_REM,
                ..entry(priority, fields, actions)
            },
        ));
    }
}

/// The cookie of a VM's redirect copies for home address `a`.
pub fn redirect_cookie(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => COOKIE_REDIRECT | u64::from(u32::from(a)),
        IpAddr::V6(a) => COOKIE_REDIRECT6 | u64::from(u128::from(a) as u32),
    }
}

/// The rewrites of one home address `ip` of a VM away, with care-of address `co` (both of one
/// family), by switch: see the module's header.
fn rewrites(
    fabric: &Fabric,
    vm: &Vm,
    away: &Away,
    ip: IpAddr,
    co: IpAddr,
    default: &BTreeSet<String>,
    out: &mut Vec<(String, Flow)>,
) {
    let sf = vm.switch.as_str();
    let cookie = mobility_cookie(ip);
    let dnat = Flow {
        table_id: TABLE_FROM_HOST,
        priority: PRIO_DNAT,
        cookie,
        match_: family_match(ip, vec![exact_dst(ip)]),
        instructions: apply_then(vec![set(exact_dst(co))], TABLE_SOURCE),
        ..Default::default()
    };
    // The foreign switch: delivery of M* as M, its own hosts' traffic to M rewritten like
    // everywhere else.
    out.push((sf.to_string(), dnat.clone()));
    out.push((
        sf.to_string(),
        Flow {
            table_id: TABLE_ROUTE,
            priority: host_route_priority(ip),
            cookie,
            match_: family_match(ip, vec![exact_dst(co)]),
            instructions: apply(vec![
                Action::DecNwTtl,
                set(exact_dst(ip)),
                set(Oxm::EthSrc(GATEWAY_MAC, None)),
                set(Oxm::EthDst(vm.mac, None)),
                Action::output(vm.port),
            ]),
            ..Default::default()
        },
    ));
    for s in away.cover.iter().filter(|s| s.as_str() != sf) {
        for net in nets(fabric, s, ip) {
            // Leaving the foreign switch toward a cover switch's subnet: M -> M*.
            out.push((
                sf.to_string(),
                Flow {
                    table_id: TABLE_SOURCE,
                    priority: PRIO_SNAT,
                    cookie,
                    match_: family_match(ip, vec![exact_src(ip), net.dst()]),
                    instructions: apply_then(vec![set(exact_src(co))], TABLE_TO_HOST),
                    ..Default::default()
                },
            ));
            // Arriving at that subnet's switch: M* -> M before delivery.
            out.push((
                s.clone(),
                Flow {
                    table_id: TABLE_TO_HOST,
                    priority: PRIO_SNAT,
                    cookie,
                    match_: family_match(ip, vec![exact_src(co), net.dst()]),
                    instructions: apply_then(vec![set(exact_src(ip))], TABLE_ROUTE),
                    ..Default::default()
                },
            ));
        }
        // Beyond the default cover (a switch added because its hosts talked to the VM),
        // the rewrite idles out once they stop; the controller hears of it
        // (FLOW_REMOVED) and takes the switch out of the cover.
        let mut d = dnat.clone();
        if fabric.cover_idle != 0 && !default.contains(s) {
            d.idle_timeout = fabric.cover_idle;
            d.flags = ofp13::OFPFF_SEND_FLOW_REM;
        }
        out.push((s.clone(), d));
    }
    // The home switch: the home agent for traffic from outside the cover.
    let home = match ip {
        IpAddr::V4(a) => fabric.subnet_of(a),
        IpAddr::V6(a) => fabric.subnet_of6(a),
    };
    let Some(home) = home.filter(|h| h.switch != sf) else {
        return;
    };
    let Some(p) = fabric.next_hop(&home.switch, sf) else {
        return;
    };
    let agent = |in_port: Option<u32>| {
        let mut fields = vec![eth_type(ip), exact_dst(ip)];
        let (priority, out) = match in_port {
            // OpenFlow never sends a packet back out of the port it came in on unless told
            // IN_PORT: traffic from the link toward SF turns around here.
            Some(l) => {
                fields.insert(0, Oxm::InPort(l, None));
                (host_route_priority(ip) + 1, port::IN_PORT)
            }
            None => (host_route_priority(ip), p),
        };
        Flow {
            table_id: TABLE_ROUTE,
            priority,
            cookie,
            match_: Match::new(fields),
            // A copy to the controller: the sender's switch is not in the cover yet, and is
            // added (route optimisation).
            instructions: apply(vec![
                Action::output(port::CONTROLLER),
                Action::DecNwTtl,
                set(exact_dst(co)),
                set(Oxm::EthSrc(GATEWAY_MAC, None)),
                set(Oxm::EthDst(GATEWAY_MAC, None)),
                Action::output(out),
            ]),
            ..Default::default()
        }
    };
    out.push((home.switch.clone(), agent(None)));
    out.push((home.switch.clone(), agent(Some(p))));
}

/// The foreign switch's table 0 for a VM away from home: its broadcast and multicast go to
/// the controller, which relays them to its home subnet (they would otherwise flood the
/// foreign subnet), and its DHCP too when the controller serves its home subnet's (it keeps
/// its home lease wherever it renews).
fn away_subnet_flows(fabric: &Fabric, vm: &Vm) -> Vec<(String, Flow)> {
    let Some(first) = vm
        .ips
        .first()
        .map(|a| IpAddr::from(*a))
        .or_else(|| vm.ips6.first().map(|a| IpAddr::from(*a)))
    else {
        return Vec::new();
    };
    let cookie = mobility_cookie(first);
    let here = || vec![Oxm::InPort(vm.port, None), Oxm::EthSrc(vm.mac, None)];
    let mut flood = here();
    flood.push(Oxm::EthDst(MULTICAST_BIT, Some(MULTICAST_BIT)));
    let mut v = vec![(
        vm.switch.clone(),
        Flow {
            table_id: TABLE_CLASSIFY,
            priority: PRIO_AWAY_FLOOD,
            cookie,
            match_: Match::new(flood),
            instructions: goto(TABLE_PUNT),
            ..Default::default()
        },
    )];
    let dhcp = vm
        .ips
        .first()
        .and_then(|a| fabric.subnet_of(*a))
        .is_some_and(|s| s.dhcp);
    if dhcp {
        v.push((
            vm.switch.clone(),
            Flow {
                table_id: TABLE_CLASSIFY,
                priority: PRIO_AWAY_DHCP,
                cookie,
                match_: Match::new(dhcp_to_server(here())),
                instructions: goto(TABLE_PUNT),
                ..Default::default()
            },
        ));
    }
    v
}

/// The switches with a VM's consumer entries (those that take its care-of addresses out
/// again): where it is, and its cover. None when it is at home.
pub fn consumer_switches(vm: &Vm) -> BTreeSet<String> {
    match &vm.away {
        Some(a) => {
            let mut s = a.cover.clone();
            s.insert(vm.switch.clone());
            s
        }
        None => BTreeSet::new(),
    }
}

/// Groups `(switch, flow)` pairs by switch, deduplicated.
pub fn by_switch(flows: Vec<(String, Flow)>) -> BTreeMap<String, Vec<Flow>> {
    let mut m: BTreeMap<String, Vec<Flow>> = BTreeMap::new();
    for (s, f) in flows {
        m.entry(s).or_default().push(f);
    }
    m.into_iter().map(|(s, v)| (s, dedup(v))).collect()
}

/// What one switch must be sent to go from `before` to `after`: entries that are new or
/// changed (an `OFPFC_ADD` replaces an identical entry in place, so there is no gap), and
/// entries that are gone (strict deletes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchDiff {
    pub adds: Vec<Flow>,
    pub deletes: Vec<Flow>,
}

impl SwitchDiff {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.deletes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.adds.len() + self.deletes.len()
    }

    /// The flow mods: adds first, then deletes.
    pub fn flow_mods(&self) -> Vec<FlowMod> {
        let mut v: Vec<FlowMod> = self.adds.iter().map(Flow::add).collect();
        v.extend(self.deletes.iter().map(delete_strict));
        v
    }
}

/// Per switch, what changes between two sets of entries.
pub fn diff(
    before: &BTreeMap<String, Vec<Flow>>,
    after: &BTreeMap<String, Vec<Flow>>,
) -> BTreeMap<String, SwitchDiff> {
    let empty = Vec::new();
    let mut out = BTreeMap::new();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let b = before.get(name).unwrap_or(&empty);
        let a = after.get(name).unwrap_or(&empty);
        let t = table_diff(b, a);
        let d = SwitchDiff {
            adds: t.changes.into_iter().map(|(f, _)| f.clone()).collect(),
            deletes: t.extra.into_iter().cloned().collect(),
        };
        if !d.is_empty() {
            out.insert(name.clone(), d);
        }
    }
    out
}

/// One switch's whole table: the base pipeline and routes, the entries of its host ports
/// `ports` (their subnets' entries for all of `ports.host`, meters for `ports.metered`), plus
/// every VM's entries there, in the order `plan` prints.
pub fn switch_plan(fabric: &Fabric, switch: &str, vms: &[Vm], ports: &HostPorts) -> Vec<Flow> {
    let mut flows = fabric.base_flows(switch);
    for &p in &ports.metered {
        flows.extend(fabric.port_flows(switch, p));
    }
    flows.extend(fabric.subnet_flows(switch, &ports.host));
    // A VM at home has entries only where it is.
    for vm in vms
        .iter()
        .filter(|v| v.away.is_some() || v.switch == switch)
    {
        flows.extend(
            vm_flows(fabric, vm)
                .into_iter()
                .filter(|(s, _)| s == switch)
                .map(|(_, f)| f),
        );
    }
    let mut flows = dedup(flows);
    sort_flows(&mut flows);
    flows
}

/// Groups per-address host bindings into VMs (one per MAC), addresses in ascending order.
pub fn vms_at_home(hosts: &[HostLoc]) -> Vec<Vm> {
    let mut m: BTreeMap<MacAddr, Vm> = BTreeMap::new();
    for h in hosts {
        let e = m.entry(h.mac).or_insert_with(|| Vm {
            mac: h.mac,
            ips: Vec::new(),
            ips6: Vec::new(),
            switch: h.switch.clone(),
            port: h.port,
            away: None,
        });
        e.ips.push(h.ip);
    }
    let mut v: Vec<Vm> = m.into_values().collect();
    for vm in &mut v {
        vm.ips.sort();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::Entry;
    use crate::fabric::topology::Topology;

    fn paper() -> Fabric {
        crate::fabric::plan::paper_fabric()
    }

    fn vm_home(f: &Fabric) -> Vm {
        vms_at_home(&f.configured_hosts())
            .into_iter()
            .find(|v| v.ips == [Ipv4Addr::new(192, 168, 11, 3)])
            .unwrap()
    }

    fn moved(f: &Fabric, mut vm: Vm, sw: &str, port: u32, co: Ipv4Addr) -> Vm {
        vm.switch = sw.into();
        vm.port = port;
        vm.away = Some(Away {
            care_of: vec![co],
            cover: default_cover(f, sw, &vm.ips, &vm.ips6),
            ..Away::default()
        });
        vm
    }

    #[test]
    fn the_paper_migration_touches_three_switches_and_goes_back_exactly() {
        let f = paper();
        let home = vm_home(&f);
        let away = moved(&f, home.clone(), "r2", 3, Ipv4Addr::new(192, 168, 10, 192));
        let b = by_switch(vm_flows(&f, &home));
        let a = by_switch(vm_flows(&f, &away));
        let d = diff(&b, &a);
        assert_eq!(d.keys().collect::<Vec<_>>(), ["r1", "r2", "r3"]);
        // Going back is the exact inverse.
        let back = diff(&a, &b);
        for (sw, fwd) in &d {
            let rev = &back[sw];
            assert_eq!(
                fwd.adds.len(),
                rev.deletes.len() + changed(fwd, rev),
                "{sw}"
            );
        }
        // Every entry is valid OpenFlow (prerequisites for the rewrites).
        for fl in a.values().flatten() {
            fl.match_.check().unwrap();
        }
        let mut r1 = a["r1"].clone();
        sort_flows(&mut r1);
        let text: Vec<String> = r1.iter().map(Flow::text).collect();
        assert_eq!(
            text,
            [
                "cookie=0x53530004c0a80b03, table=1, priority=450,ip,nw_dst=192.168.11.3 actions=set_field:192.168.10.192->ip_dst,goto_table:2",
                "cookie=0x53530004c0a80b03, table=3, priority=400,ip,nw_src=192.168.10.192,nw_dst=10.0.0.0/24 actions=set_field:192.168.11.3->ip_src,goto_table:4",
            ]
        );
    }

    fn changed(fwd: &SwitchDiff, rev: &SwitchDiff) -> usize {
        // Entries replaced in place (same key) appear as adds both ways.
        fwd.adds
            .iter()
            .filter(|f| rev.adds.iter().any(|g| Entry::key(g) == Entry::key(*f)))
            .count()
    }

    #[test]
    fn home_agent_replaces_the_home_delivery_in_place() {
        let f = paper();
        let home = vm_home(&f);
        let away = moved(&f, home.clone(), "r2", 3, Ipv4Addr::new(192, 168, 10, 192));
        let d = diff(
            &by_switch(vm_flows(&f, &home)),
            &by_switch(vm_flows(&f, &away)),
        );
        let r3 = &d["r3"];
        // The route entry for M is replaced (an ADD over the same match), never deleted.
        assert!(r3.deletes.iter().all(|fl| fl.table_id != TABLE_ROUTE));
        let agent = r3
            .adds
            .iter()
            .find(|fl| fl.table_id == TABLE_ROUTE)
            .unwrap();
        assert_eq!(
            agent.text(),
            "cookie=0x53530004c0a80b03, table=4, priority=1032,ip,nw_dst=192.168.11.3 actions=CONTROLLER:65535,dec_ttl,set_field:192.168.10.192->ip_dst,set_field:02:53:53:00:00:01->eth_src,set_field:02:53:53:00:00:01->eth_dst,output:1"
        );
        // Its switching and source entries at home are deleted.
        assert_eq!(r3.deletes.len(), 2);
    }

    #[test]
    fn aggregation_and_core_without_subnets_carry_nothing() {
        let t = Topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/three-tier.toml"
        )))
        .unwrap();
        let f = Fabric::new(&t);
        let hosts = f.configured_hosts();
        let vm = vms_at_home(&hosts).into_iter().next().unwrap();
        let target = t
            .switches
            .iter()
            .rfind(|s| s.tier == crate::fabric::topology::Tier::Access && s.name != vm.switch)
            .unwrap()
            .name
            .clone();
        let away = moved(&f, vm, &target, 40, Ipv4Addr::new(10, 99, 0, 1));
        for (sw, _) in vm_flows(&f, &away) {
            let conf = t.switches.iter().find(|s| s.name == sw).unwrap();
            assert!(
                f.subnets_of(&sw).next().is_some(),
                "{sw} ({:?}) has a per-VM entry",
                conf.tier
            );
        }
    }
}
