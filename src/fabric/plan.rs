//! The flow tables servswitch wants on each switch, as pure functions of the topology and the
//! hosts it knows; and the one place that builds the bodies servswitch sends for them
//! (FLOW_MOD adds and strict deletes, PACKET_OUT), with the one key and diff of flow entries
//! (Faucet's rule: flow builders live in one module). See docs/pipeline.md.
//!
//! Pipeline of every switch (six tables):
//! - table 0, classify: ARP and RARP to table 5 (the controller); IPv4 from a link port to
//!   table 3; IPv4 from a known host at its port to table 1; other IPv4 to table 1 with a copy
//!   to the controller through the port's meter (a new host, or a VM that has just moved
//!   here); anything else dropped.
//! - table 1, from hosts: hosts of the switch switched at layer 2; for migrated VMs, the
//!   destination rewrites M -> M* and the redirect copies; the rest to table 2.
//! - table 2, source rewrites into the fabric (M -> M* of a VM away); the rest to table 3.
//! - table 3, source rewrites back before delivery (M* -> M); the rest to table 4.
//! - table 4, route: the switch's gateway addresses to table 5; known local hosts delivered
//!   (Ethernet rewritten, TTL decremented); unknown addresses of a local subnet to table 5 (the
//!   controller resolves them and holds the packet); other subnets by prefix to the next hop on
//!   a shortest path, TTL decremented; longest prefix wins by priority.
//! - table 5, punt: to the controller through the meter of the host port the frame came in on
//!   (one per host port), so that one port cannot starve the others; from any other port
//!   through the switch's controller meter only. Every packet-in of the switch, copies and
//!   expired TTLs included, also passes the switch's `controller` meter (OpenFlow's
//!   `OFPM_CONTROLLER`). See [`PacketInLimits`] and docs/pipeline.md.
//!
//! A VM's own entries (rewrites, home agent, cover) are planned in [`crate::mobility::flows`];
//! this module plans the pipeline, the routes and hosts at home.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ofp13::{port, Action, Body, FlowMod, Instruction, MacAddr, Match, Oxm, PacketOut, NO_BUFFER};

use crate::fabric::topology::{Prefix, SubnetConf, Topology};

/// What a switch may send to the controller, in packets per second (`run --port-pps`,
/// `--switch-pps`; 0: no meter). Each host port has its own meter (id = the port number) on
/// everything its frames send to the controller, so a host flooding the controller loses its
/// own packet-ins and no one else's; every switch's `controller` meter bounds all its
/// packet-ins together (copies of forwarded packets, expired TTLs, link ports), so that no
/// switch can flood the controller either. Bursts are one second's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInLimits {
    pub port_pps: u32,
    pub switch_pps: u32,
}

/// A host sends the controller a few ARP requests, pings of its gateway and first packets a
/// second; 200 leaves room for bursts of new flows (held and resolved by the controller).
pub const DEFAULT_PORT_PPS: u32 = 200;
/// 25 ports' worth at full rate; the controller answers millions a second, so this protects
/// the switch's channel and slow path more than the controller.
pub const DEFAULT_SWITCH_PPS: u32 = 5000;

impl Default for PacketInLimits {
    fn default() -> Self {
        PacketInLimits {
            port_pps: DEFAULT_PORT_PPS,
            switch_pps: DEFAULT_SWITCH_PPS,
        }
    }
}

/// One meter as servswitch plans it: a drop band at `pps` packets per second with a burst of
/// `burst` packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Meter {
    pub id: u32,
    pub pps: u32,
    pub burst: u32,
}

impl Meter {
    /// The meter as the switch reports it (meter-config multipart).
    pub fn config(&self) -> ofp13::MeterConfig {
        ofp13::MeterConfig {
            flags: ofp13::OFPMF_PKTPS | ofp13::OFPMF_BURST | ofp13::OFPMF_STATS,
            meter_id: self.id,
            bands: vec![ofp13::MeterBand {
                rate: self.pps,
                burst_size: self.burst,
                kind: ofp13::MeterBandKind::Drop,
            }],
        }
    }

    /// The METER_MOD that creates it (`OFPMC_ADD`) or changes it (`OFPMC_MODIFY`).
    pub fn meter_mod(&self, command: u16) -> ofp13::MeterMod {
        let c = self.config();
        ofp13::MeterMod {
            command,
            flags: c.flags,
            meter_id: c.meter_id,
            bands: c.bands,
        }
    }

    /// The METER_MOD that deletes meter `id` (and, on the switch, every entry using it).
    pub fn delete(id: u32) -> ofp13::MeterMod {
        ofp13::MeterMod {
            command: ofp13::OFPMC_DELETE,
            flags: 0,
            meter_id: id,
            bands: Vec::new(),
        }
    }

    /// The meter as `ovs-ofctl -O OpenFlow13 dump-meters` prints it, on one line.
    pub fn text(&self) -> String {
        ofp13::text::meter_line(&self.config())
    }
}

/// One group as servswitch plans it, from a switch toward one gateway switch. Each bucket
/// outputs to one port and watches it, so a switch leaves out a bucket whose port is down
/// without waiting for the controller.
///
/// - **Select** over the equal-cost next hops: Open vSwitch picks among the live buckets by
///   a hash of the packet's addresses and ports (a flow keeps its path; flows spread). Its
///   id is the gateway switch's place in the topology file (from 1).
/// - **Fast failover** where there is one next hop but a lateral neighbour could stand in
///   (a loop-free alternate: [`Fabric::route_group`]): the next hop's bucket first, the
///   alternates' after; the switch uses the first live one. Its id is
///   [`FAST_FAILOVER_BASE`] plus the select id.
///
/// Either keeps its id whatever happens to its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u32,
    pub kind: GroupKind,
    /// The buckets' ports: a select group's next hops lowest first; a fast-failover group's
    /// next hop, then its alternates.
    pub ports: Vec<u32>,
}

/// The two kinds of group servswitch plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Select,
    FastFailover,
}

/// Fast-failover groups' ids start above this (select groups' ids are below it).
pub const FAST_FAILOVER_BASE: u32 = 0x1_0000;

impl Group {
    /// The group as the switch reports it (group-desc multipart).
    pub fn desc(&self) -> ofp13::GroupDesc {
        ofp13::GroupDesc {
            group_type: match self.kind {
                GroupKind::Select => ofp13::OFPGT_SELECT,
                GroupKind::FastFailover => ofp13::OFPGT_FF,
            },
            group_id: self.id,
            buckets: self
                .ports
                .iter()
                .map(|&p| ofp13::Bucket {
                    // Only a select group's buckets have weights (Open vSwitch refuses
                    // one on any other kind).
                    weight: u16::from(self.kind == GroupKind::Select),
                    watch_port: p,
                    watch_group: ofp13::group::ANY,
                    actions: vec![Action::output(p)],
                })
                .collect(),
        }
    }

    /// The GROUP_MOD that creates it (`OFPGC_ADD`) or changes it (`OFPGC_MODIFY`).
    pub fn group_mod(&self, command: u16) -> ofp13::GroupMod {
        let d = self.desc();
        ofp13::GroupMod {
            command,
            group_type: d.group_type,
            group_id: d.group_id,
            buckets: d.buckets,
        }
    }

    /// The GROUP_MOD that deletes group `id` (and, on the switch, every entry using it).
    pub fn delete(id: u32) -> ofp13::GroupMod {
        ofp13::GroupMod {
            command: ofp13::OFPGC_DELETE,
            group_type: ofp13::OFPGT_ALL,
            group_id: id,
            buckets: Vec::new(),
        }
    }

    /// The group as `ovs-ofctl -O OpenFlow13 dump-groups` prints it.
    pub fn text(&self) -> String {
        ofp13::text::group_line(&self.desc())
    }
}

/// The one MAC address every gateway of the fabric answers with. A VM that moves keeps a valid
/// gateway entry in its ARP cache (locally administered, "SS").
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0x53, 0x53, 0x00, 0x00, 0x01]);

/// The link-local address of every gateway (the gateway MAC by modified EUI-64): a VM's
/// default IPv6 router stays valid wherever it goes, as its IPv4 gateway's MAC does.
pub const GATEWAY_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x53, 0x53ff, 0xfe00, 1);

pub const TABLE_CLASSIFY: u8 = 0;
/// From hosts: same-switch switching, destination rewrites (M -> M*), redirect copies.
pub const TABLE_FROM_HOST: u8 = 1;
/// Source rewrites of migrated VMs on their way into the fabric (M -> M*).
pub const TABLE_SOURCE: u8 = 2;
/// Source rewrites back to the home address before delivery to hosts (M* -> M).
pub const TABLE_TO_HOST: u8 = 3;
pub const TABLE_ROUTE: u8 = 4;
/// To the controller, through the meter of the host port the frame came in on.
pub const TABLE_PUNT: u8 = 5;

/// Cookies say who owns a flow: `0x5353` ("SS") in the top 16 bits, then the kind.
pub const COOKIE_MASK_KIND: u64 = 0xffff_ffff_0000_0000;
pub const COOKIE_PIPELINE: u64 = 0x5353_0001_0000_0000;
pub const COOKIE_ROUTE: u64 = 0x5353_0002_0000_0000;
pub const COOKIE_HOST: u64 = 0x5353_0003_0000_0000;
/// The address rewrites and home-agent route of one migrated VM address (+ the home address).
pub const COOKIE_MOBILITY: u64 = 0x5353_0004_0000_0000;
/// Copies to the controller that make it send ICMP redirects (+ the home address).
pub const COOKIE_REDIRECT: u64 = 0x5353_0005_0000_0000;
/// A host port's entries toward the controller through its meter (+ the port number).
pub const COOKIE_PORT: u64 = 0x5353_0006_0000_0000;
/// A host port's entries of its subnet: broadcast and multicast flooded to the subnet's
/// other host ports, DHCP to the controller (+ the port number).
pub const COOKIE_SUBNET: u64 = 0x5353_0007_0000_0000;
/// A host's IPv6 delivery (+ the low 32 bits of its address), or the switching entry of a host
/// with IPv6 addresses only (+ the low 32 bits of its MAC: one entry per MAC, whichever of its
/// addresses put it there).
pub const COOKIE_HOST6: u64 = 0x5353_0008_0000_0000;
/// The IPv6 rewrites and home-agent route of one migrated VM address (+ the low 32 bits of the
/// home address; a care-of address never has the same low 32 bits as a home address of its VM,
/// so an entry that writes other low bits writes a care-of address).
pub const COOKIE_MOBILITY6: u64 = 0x5353_0009_0000_0000;
/// Copies to the controller that make it send ICMPv6 redirects (+ the low 32 bits of the home
/// address, as [`COOKIE_MOBILITY6`]).
pub const COOKIE_REDIRECT6: u64 = 0x5353_000a_0000_0000;

/// Whether an entry's cookie is servswitch's (kinds `0x5353_00xx`): reconciliation deletes
/// only those; anyone else's entries are left alone (and shown by `verify`).
pub fn is_ours(cookie: u64) -> bool {
    cookie >> 40 == 0x53_5300
}

/// Priorities in the route table: longest prefix first, gateway addresses above all.
pub(crate) const PRIO_GATEWAY: u16 = 2000;
pub(crate) const PRIO_PREFIX_BASE: u16 = 1000;
/// Table 0: a known host's frames from its own port.
pub(crate) const PRIO_SOURCE_KNOWN: u16 = 850;
/// Table 0: IPv4 from a source the switch does not know at that port (a copy to the
/// controller; one above it per metered host port).
pub(crate) const PRIO_UNKNOWN_SOURCE: u16 = 800;
/// Table 0: broadcast and multicast from a host port, flooded to its subnet's host ports
/// (above the IPv4 entries of hosts, below ARP and DHCP).
pub(crate) const PRIO_FLOOD: u16 = 860;
/// Table 0: a VM away from home: its broadcast and multicast go to the controller, which
/// relays them to its home subnet (above the foreign subnet's flood).
pub(crate) const PRIO_AWAY_FLOOD: u16 = 870;
/// Table 0: DHCP from a host port of a subnet whose DHCP the controller answers.
pub(crate) const PRIO_DHCP: u16 = 1000;
/// Table 0: DHCP from a VM away from a home subnet whose DHCP the controller answers.
pub(crate) const PRIO_AWAY_DHCP: u16 = 1001;
/// Table 0: a neighbour solicitation or advertisement to a group address from a host port:
/// flooded in its subnet like other multicast, and a copy to the controller (learning).
pub(crate) const PRIO_ND_FLOOD: u16 = 865;
/// Table 0: a neighbour solicitation from a host unicast to the gateway's MAC (a host whose
/// cache holds the gateway's MAC for a neighbour the controller answers for, checking it is
/// still reachable): to the controller, which answers it as it answers the multicast ones.
/// Below the IPv6 from links (900), above the floods.
pub(crate) const PRIO_ND_GATEWAY: u16 = 880;
/// Table 0: group-addressed neighbour discovery and MLD reports from a port without its
/// own entries yet (below every per-port entry, above IPv6's catch-all at 800).
pub(crate) const PRIO_ND_NEW_PORT: u16 = 805;
/// Group destination addresses: the I/G bit (broadcast and every multicast).
pub const MULTICAST_BIT: MacAddr = MacAddr([0x01, 0, 0, 0, 0, 0]);

/// One flow entry as servswitch plans it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flow {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
    /// Seconds without a packet after which the switch removes it (0: never).
    pub idle_timeout: u16,
    /// Seconds after which the switch removes it (0: never).
    pub hard_timeout: u16,
    /// `OFPFF_*` (servswitch uses `OFPFF_SEND_FLOW_REM` on entries that expire).
    pub flags: u16,
}

impl Flow {
    /// The flow as an `OFPFC_ADD` (which replaces an entry with the same match and priority).
    pub fn add(&self) -> FlowMod {
        FlowMod {
            cookie: self.cookie,
            table_id: self.table_id,
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            match_: self.match_.clone(),
            instructions: self.instructions.clone(),
            ..FlowMod::default()
        }
    }

    /// The flow as `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints it.
    pub fn text(&self) -> String {
        ofp13::text::flow_line(&ofp13::text::FlowLine {
            table_id: self.table_id,
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            priority: self.priority,
            match_: &self.match_,
            instructions: &self.instructions,
            stats: None,
        })
    }
}

/// A flow entry's identity in its table: table, priority, and the match with its fields in a
/// canonical order (OpenFlow's "identical" entries, §6.4; a switch may report the fields in
/// another order than they were sent). The one key of the crate: plans, updates,
/// reconciliation and the transient-state checker all compare entries by it.
pub type Key = (u8, u16, Vec<u8>);

/// The [`Key`] of the entry with this table, priority and match.
pub fn key(table: u8, priority: u16, m: &Match) -> Key {
    let mut fields: Vec<&Oxm> = m.fields.iter().collect();
    fields.sort_by_key(|f| f.header());
    let mut bytes = Vec::with_capacity(48);
    for f in fields {
        f.emit(&mut bytes);
    }
    (table, priority, bytes)
}

/// A flow entry as planned ([`Flow`]) or as read from a switch ([`ofp13::FlowStats`]): what
/// [`table_diff`] compares.
pub trait Entry {
    fn table_id(&self) -> u8;
    fn priority(&self) -> u16;
    fn match_(&self) -> &Match;
    fn cookie(&self) -> u64;
    fn instructions(&self) -> &[Instruction];
    /// (idle timeout, hard timeout, flags).
    fn expiry(&self) -> (u16, u16, u16);
    fn key(&self) -> Key {
        key(self.table_id(), self.priority(), self.match_())
    }
}

/// Both kinds of entry have the same fields under the same names.
macro_rules! entry {
    ($t:ty) => {
        impl Entry for $t {
            fn table_id(&self) -> u8 {
                self.table_id
            }
            fn priority(&self) -> u16 {
                self.priority
            }
            fn match_(&self) -> &Match {
                &self.match_
            }
            fn cookie(&self) -> u64 {
                self.cookie
            }
            fn instructions(&self) -> &[Instruction] {
                &self.instructions
            }
            fn expiry(&self) -> (u16, u16, u16) {
                (self.idle_timeout, self.hard_timeout, self.flags)
            }
        }
    };
}
entry!(Flow);
entry!(ofp13::FlowStats);

/// How a table (live or planned) differs from a plan.
#[derive(Debug)]
pub struct TableDiff<'a, E> {
    /// Planned entries the table lacks (`None`) or holds with another cookie, instructions,
    /// timeouts or flags (the entry it holds), in plan order.
    pub changes: Vec<(&'a Flow, Option<&'a E>)>,
    /// Planned entries the table already holds as planned.
    pub kept: usize,
    /// The table's entries the plan does not have, in key order.
    pub extra: Vec<&'a E>,
}

/// The one diff: `table` against `plan`, entries identified by [`Key`]. An entry is right when
/// its cookie, instructions, timeouts and flags are the planned ones (compared as values, not
/// as text: an audit of a large fabric reads hundreds of thousands of entries).
pub fn table_diff<'a, E: Entry>(table: &'a [E], plan: &'a [Flow]) -> TableDiff<'a, E> {
    let by_key: HashMap<Key, &E> = table.iter().map(|e| (e.key(), e)).collect();
    let mut planned = std::collections::HashSet::with_capacity(plan.len());
    let mut d = TableDiff {
        changes: Vec::new(),
        kept: 0,
        extra: Vec::new(),
    };
    for f in plan {
        let k = Entry::key(f);
        let old = by_key.get(&k).copied();
        planned.insert(k);
        match old {
            Some(e)
                if e.cookie() == f.cookie
                    && e.instructions() == f.instructions.as_slice()
                    && e.expiry() == Entry::expiry(f) =>
            {
                d.kept += 1
            }
            _ => d.changes.push((f, old)),
        }
    }
    let mut extra: Vec<(Key, &E)> = by_key
        .into_iter()
        .filter(|(k, _)| !planned.contains(k))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    d.extra = extra.into_iter().map(|(_, e)| e).collect();
    d
}

/// Keeps the first of identical entries (same [`Key`]), in order: a host with several
/// addresses has one switching entry.
pub fn dedup(flows: Vec<Flow>) -> Vec<Flow> {
    let mut seen = std::collections::HashSet::with_capacity(flows.len());
    flows
        .into_iter()
        .filter(|f| seen.insert(Entry::key(f)))
        .collect()
}

/// A strict delete of the entry with this table, priority and match (the only delete
/// servswitch sends: it never removes what it does not name).
pub fn delete_strict<E: Entry>(e: &E) -> FlowMod {
    FlowMod {
        command: ofp13::OFPFC_DELETE_STRICT,
        table_id: e.table_id(),
        priority: e.priority(),
        match_: e.match_().clone(),
        ..FlowMod::default()
    }
}

/// A PACKET_OUT of `frame` from the controller out of each of `ports` (none: the frame is
/// sent nowhere, so callers skip empty lists).
pub fn packet_out(ports: impl IntoIterator<Item = u32>, frame: impl Into<bytes::Bytes>) -> Body {
    Body::PacketOut(PacketOut {
        buffer_id: NO_BUFFER,
        in_port: port::CONTROLLER,
        actions: ports.into_iter().map(Action::output).collect(),
        data: frame.into(),
    })
}

/// [`packet_out`] of a short frame out of one port, held inline (no heap allocation); `None`
/// when the frame is longer than [`ofp13::InlinePacketOut::MAX_FRAME`].
pub fn packet_out_inline(port: u32, frame: &[u8]) -> Option<ofp13::InlinePacketOut> {
    ofp13::InlinePacketOut::new(port::CONTROLLER, port, frame)
}

/// A PACKET_OUT that runs `frame` through the switch's pipeline again, as if it had just
/// arrived on `in_port` (output to `OFPP_TABLE`).
pub fn reinject(in_port: u32, frame: bytes::Bytes) -> Body {
    Body::PacketOut(PacketOut {
        buffer_id: NO_BUFFER,
        in_port,
        actions: std::iter::once(Action::output(port::TABLE)).collect(),
        data: frame,
    })
}

pub(crate) fn apply(actions: Vec<Action>) -> Vec<Instruction> {
    vec![Instruction::ApplyActions { actions }]
}

/// Apply `actions` now, then continue in `table_id`.
/// Table 1: frames to `mac` from hosts of its subnet go straight to its `port` (switched,
/// TTL untouched).
fn switching(mac: MacAddr, port: u32, cookie: u64) -> Flow {
    Flow {
        table_id: TABLE_FROM_HOST,
        priority: 500,
        cookie,
        match_: Match::new(vec![Oxm::EthDst(mac, None)]),
        instructions: apply(vec![Action::output(port)]),
        ..Default::default()
    }
}

/// A routed hop: TTL (hop limit) decremented first (a packet whose TTL runs out reaches the
/// controller as it arrived), the gateway MAC as source, `dst_mac` as destination, then `out`.
pub(crate) fn routed(dst_mac: MacAddr, out: Action) -> Vec<Instruction> {
    apply(vec![
        Action::DecNwTtl,
        Action::SetField {
            field: Oxm::EthSrc(GATEWAY_MAC, None),
        },
        Action::SetField {
            field: Oxm::EthDst(dst_mac, None),
        },
        out,
    ])
}

pub(crate) fn apply_then(actions: Vec<Action>, table_id: u8) -> Vec<Instruction> {
    vec![
        Instruction::ApplyActions { actions },
        Instruction::GotoTable { table_id },
    ]
}

pub(crate) fn goto(table_id: u8) -> Vec<Instruction> {
    vec![Instruction::GotoTable { table_id }]
}

fn to_controller() -> Vec<Instruction> {
    apply(vec![Action::output(port::CONTROLLER)])
}

/// `instructions` behind meter `id` (the meter comes first, as OpenFlow runs it).
fn metered(id: u32, mut instructions: Vec<Instruction>) -> Vec<Instruction> {
    instructions.insert(0, Instruction::Meter { meter_id: id });
    instructions
}

/// `fields` followed by the match of a DHCP message to a server (UDP to port 67).
pub(crate) fn dhcp_to_server(mut fields: Vec<Oxm>) -> Vec<Oxm> {
    fields.extend([
        Oxm::EthType(crate::packet::ETH_IPV4, None),
        Oxm::IpProto(crate::packet::IP_UDP, None),
        Oxm::UdpDst(crate::packet::dhcp::PORT_SERVER, None),
    ]);
    fields
}

pub(crate) fn ip_dst(p: &Prefix) -> Vec<Oxm> {
    let mask = Ipv4Addr::from(p.mask());
    vec![
        Oxm::EthType(crate::packet::ETH_IPV4, None),
        Oxm::Ipv4Dst(p.addr, (p.len < 32).then_some(mask)),
    ]
}

/// Where a host's IPv6 address is: the input for its IPv6 delivery flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoc6 {
    pub ip: Ipv6Addr,
    pub mac: MacAddr,
    pub switch: String,
    pub port: u32,
}

/// The match of IPv6 packets to `addr`/`len`.
pub(crate) fn ip6_dst(addr: Ipv6Addr, len: u8) -> Vec<Oxm> {
    let mask = crate::fabric::topology::Prefix6 { addr, len }.mask();
    vec![
        Oxm::EthType(crate::packet::ETH_IPV6, None),
        Oxm::Ipv6Dst(addr, (len < 128).then(|| Ipv6Addr::from(mask))),
    ]
}

/// The match of ICMPv6 messages of type `ty`, after `fields`.
fn icmp6(mut fields: Vec<Oxm>, ty: u8) -> Vec<Oxm> {
    fields.extend([
        Oxm::EthType(crate::packet::ETH_IPV6, None),
        Oxm::IpProto(crate::packet::IP_ICMPV6, None),
        Oxm::Icmpv6Type(ty, None),
    ]);
    fields
}

/// Where a host is and what it is: the input for host delivery flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoc {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub switch: String,
    pub port: u32,
}

/// A hash map with a fast hasher (foldhash, seeded per process) for the packet-in path's
/// lookups: switch names, addresses, MACs. std's SipHash showed as 12% of the controller's
/// time under ARP load (docs/performance.md).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with the same hasher.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// The fabric's graph and routes, computed once from a topology.
#[derive(Debug, Clone)]
pub struct Fabric {
    pub topology: Topology,
    index: FastMap<String, usize>,
    /// For each switch, its link ports and where they lead: port -> (switch, port).
    links: Vec<BTreeMap<u32, (usize, u32)>>,
    /// The routes over every declared link.
    hops: Hops,
    /// The routes over the links in use, when some are not (see [`Fabric::set_unused`]).
    in_use: InUse,
    /// Which switches may carry others' traffic (all but access switches).
    transit: Vec<bool>,
    /// For each switch, the indexes of the subnets it is the gateway of.
    subnets: Vec<Vec<usize>>,
    /// Switches that are not access switches but carry subnets (the fabric's edge).
    edges: Vec<String>,
    /// Idle timeout (seconds) of the rewrite a VM's cover gets on a switch beyond its
    /// default cover (0: never).
    pub cover_idle: u16,
    /// The meters on controller-bound traffic.
    pub limits: PacketInLimits,
}

/// How long a switch added to a VM's cover keeps rewriting toward it once its hosts stop
/// sending to the VM (`run --cover-idle`).
pub const DEFAULT_COVER_IDLE: u16 = 60;

/// Every switch's next hops toward every other over the links not in `unused` (link ends by
/// switch index and port): a breadth-first search from each destination over reversed edges
/// gives each switch the ports toward a neighbour one step nearer, lowest first.
///
/// Valley-free where it can be: an access switch (`transit[i] == false`) is not crossed on
/// the way to another switch, as in a Clos fabric, where a rack's switch carries no one
/// else's traffic (with a failed link, a path down through another rack and up again can be
/// as short as the one over a core). A destination that some switch reaches only through
/// an access switch (a fabric whose every switch is an access switch, or one cut apart by
/// failures) is routed over every switch, for all switches alike, so that the next hops
/// toward one destination always follow one distance and never loop.
///
/// Where a switch has one next hop toward a destination, its lateral neighbours (as far
/// from the destination as itself, over a usable link, themselves allowed to carry transit)
/// are loop-free alternates: a neighbour's shortest path cannot come back through the
/// switch, which is no nearer (RFC 5286, inequality 1, with the link's cost 1).
fn shortest_next_hops(
    links: &[BTreeMap<u32, (usize, u32)>],
    unused: &BTreeSet<(usize, u32)>,
    transit: &[bool],
) -> Hops {
    let n = links.len();
    let usable =
        |u: usize, p: u32, v: usize, q: u32| !unused.contains(&(u, p)) && !unused.contains(&(v, q));
    let distances = |dst: usize, valley_free: bool| {
        let mut dist = vec![usize::MAX; n];
        dist[dst] = 0;
        let mut q = VecDeque::from([dst]);
        while let Some(u) = q.pop_front() {
            if valley_free && u != dst && !transit.get(u).copied().unwrap_or(true) {
                continue;
            }
            for (&p, &(v, vp)) in &links[u] {
                if dist[v] == usize::MAX && usable(u, p, v, vp) {
                    dist[v] = dist[u] + 1;
                    q.push_back(v);
                }
            }
        }
        dist
    };
    let mut next_hops = vec![vec![Vec::new(); n]; n];
    let mut lateral = BTreeMap::new();
    for dst in 0..n {
        let any = distances(dst, false);
        let free = distances(dst, true);
        let reach = |d: &[usize]| d.iter().filter(|&&x| x != usize::MAX).count();
        let valley_free = reach(&free) == reach(&any);
        let dist = if valley_free { free } else { any };
        for (src, (row, out)) in next_hops.iter_mut().zip(links).enumerate() {
            let d = dist[src];
            if src == dst || d == usize::MAX {
                continue;
            }
            let Some(cell) = row.get_mut(dst) else {
                continue;
            };
            let dist = &dist;
            let usable = &usable;
            let toward = |step: usize| {
                out.iter()
                    .filter(move |(&p, &(v, vp))| {
                        dist[v] != usize::MAX
                            && dist[v] + step == d
                            && usable(src, p, v, vp)
                            && (v == dst || !valley_free || transit.get(v).copied().unwrap_or(true))
                    })
                    .map(|(&p, _)| p)
            };
            *cell = toward(1).collect();
            if cell.len() == 1 {
                let alternates: Vec<u32> = toward(0).collect();
                if !alternates.is_empty() {
                    lateral.insert((src, dst), alternates);
                }
            }
        }
    }
    Hops {
        next: next_hops,
        lateral,
    }
}

/// Every pair's routes over a set of links.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hops {
    /// next[a][b]: the ports of a on a shortest path to b, lowest first (empty for a == b
    /// or unreachable).
    next: Vec<Vec<Vec<u32>>>,
    /// (a, b) -> the ports of a toward its loop-free alternates for b, where next[a][b] has
    /// one port and there are any (lowest first).
    lateral: BTreeMap<(usize, usize), Vec<u32>>,
}

/// The routes over the links in use when some declared link is not.
#[derive(Debug)]
struct Routes {
    unused: BTreeSet<(usize, u32)>,
    hops: Hops,
}

/// Where the fabric keeps its routes over the links in use (none: every declared link is in
/// use). A clone of the fabric starts with the same routes and is changed apart from it.
#[derive(Debug, Default)]
struct InUse(std::sync::RwLock<Option<Arc<Routes>>>);

impl InUse {
    fn routes(&self) -> Option<Arc<Routes>> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    fn set(&self, routes: Option<Arc<Routes>>) {
        match self.0.write() {
            Ok(mut r) => *r = routes,
            Err(e) => *e.into_inner() = routes,
        }
    }
}

impl Clone for InUse {
    fn clone(&self) -> Self {
        InUse(std::sync::RwLock::new(self.routes()))
    }
}

/// A switch of the fabric: its position in the topology's list of switches. Resolved once
/// from a datapath id or a name ([`Fabric::id_of`]), it reaches the fabric's per-switch data
/// by index ([`Fabric::ctx`]), with no hashing or comparing of names per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwitchId(pub u32);

impl SwitchId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a message's handler asks about the switch it came from, resolved once per message
/// ([`Fabric::ctx`]): its name, link ports and subnets, with no lookup by name after.
#[derive(Debug, Clone, Copy)]
pub struct SwitchCtx<'a> {
    pub id: SwitchId,
    pub name: &'a str,
    links: &'a BTreeMap<u32, (usize, u32)>,
    subnets: &'a [usize],
    all_subnets: &'a [SubnetConf],
}

impl<'a> SwitchCtx<'a> {
    /// Whether `port` is a switch-to-switch link.
    pub fn is_link_port(&self, port: u32) -> bool {
        self.links.contains_key(&port)
    }

    /// The subnets this switch is the gateway of.
    pub fn subnets(&self) -> impl Iterator<Item = &'a SubnetConf> + 'a {
        let all = self.all_subnets;
        self.subnets.iter().filter_map(move |&i| all.get(i))
    }

    /// Whether it is the gateway of any subnet (only those switches have hosts).
    pub fn has_subnets(&self) -> bool {
        !self.subnets.is_empty()
    }
}

impl Fabric {
    /// Builds the link graph and all-pairs next hops (a breadth-first search from every switch;
    /// ties go to the lowest port number, so plans are deterministic).
    pub fn new(topology: &Topology) -> Fabric {
        let index: FastMap<String, usize> = topology
            .switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let n = topology.switches.len();
        let mut links = vec![BTreeMap::new(); n];
        for l in &topology.links {
            if let (Some(&a), Some(&b)) = (index.get(&l.a.switch), index.get(&l.b.switch)) {
                links[a].insert(l.a.port, (b, l.b.port));
                links[b].insert(l.b.port, (a, l.a.port));
            }
        }
        let transit: Vec<bool> = topology
            .switches
            .iter()
            .map(|s| s.tier != crate::fabric::topology::Tier::Access)
            .collect();
        let hops = shortest_next_hops(&links, &BTreeSet::new(), &transit);
        let mut subnets = vec![Vec::new(); n];
        for (i, s) in topology.subnets.iter().enumerate() {
            if let Some(&sw) = index.get(&s.switch) {
                subnets[sw].push(i);
            }
        }
        let edges = topology
            .switches
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                s.tier != crate::fabric::topology::Tier::Access && !subnets[*i].is_empty()
            })
            .map(|(_, s)| s.name.clone())
            .collect();
        Fabric {
            topology: topology.clone(),
            index,
            links,
            hops,
            in_use: InUse::default(),
            transit,
            subnets,
            edges,
            cover_idle: DEFAULT_COVER_IDLE,
            limits: PacketInLimits::default(),
        }
    }

    /// Sets the idle timeout of cover entries beyond a VM's default cover (0: never).
    pub fn with_limits(mut self, limits: PacketInLimits) -> Fabric {
        self.limits = limits;
        self
    }

    pub fn with_cover_idle(mut self, secs: u16) -> Fabric {
        self.cover_idle = secs;
        self
    }

    /// The link ports of a switch.
    pub fn link_ports(&self, switch: &str) -> BTreeSet<u32> {
        self.index
            .get(switch)
            .map(|&i| self.links[i].keys().copied().collect())
            .unwrap_or_default()
    }

    /// The switch named `name`, resolved once for a message's handler.
    pub fn switch_ctx<'a>(&'a self, name: &'a str) -> Option<SwitchCtx<'a>> {
        self.ctx(self.id_of(name)?)
    }

    /// The switch named `name`.
    pub fn id_of(&self, name: &str) -> Option<SwitchId> {
        self.index.get(name).map(|&i| SwitchId(i as u32))
    }

    /// The switch whose datapath id is `dpid` (a scan: resolve it once, when it connects).
    pub fn id_by_dpid(&self, dpid: u64) -> Option<SwitchId> {
        let i = self
            .topology
            .switches
            .iter()
            .position(|s| s.dpid.0 == dpid)?;
        Some(SwitchId(i as u32))
    }

    /// Switch `id`'s context, by index.
    pub fn ctx(&self, id: SwitchId) -> Option<SwitchCtx<'_>> {
        let i = id.index();
        Some(SwitchCtx {
            id,
            name: self.topology.switches.get(i)?.name.as_str(),
            links: self.links.get(i)?,
            subnets: self.subnets.get(i).map_or(&[], Vec::as_slice),
            all_subnets: &self.topology.subnets,
        })
    }

    /// Whether `port` of `switch` is a switch-to-switch link.
    pub fn is_link_port(&self, switch: &str, port: u32) -> bool {
        self.switch_ctx(switch)
            .is_some_and(|s| s.is_link_port(port))
    }

    /// Where a link port of `switch` leads: the switch and port at its other end.
    pub fn peer(&self, switch: &str, port: u32) -> Option<(&str, u32)> {
        let &i = self.index.get(switch)?;
        let &(j, p) = self.links.get(i)?.get(&port)?;
        let name = self.topology.switches.get(j)?.name.as_str();
        Some((name, p))
    }

    /// The port of `from` on a shortest path toward `to` over the links in use (of several,
    /// the lowest: the one path of entries that cannot spread, such as the home agent's turn
    /// back).
    pub fn next_hop(&self, from: &str, to: &str) -> Option<u32> {
        self.next_hops(from, to).first().copied()
    }

    /// Every port of `from` on a shortest path toward `to` over the links in use, lowest
    /// first (empty for `from` itself, an unknown switch or one out of reach).
    pub fn next_hops(&self, from: &str, to: &str) -> Vec<u32> {
        let (Some(&a), Some(&b)) = (self.index.get(from), self.index.get(to)) else {
            return Vec::new();
        };
        let hops = |t: &Hops| t.next.get(a).and_then(|v| v.get(b)).cloned();
        match self.in_use.routes() {
            Some(r) => hops(&r.hops),
            None => hops(&self.hops),
        }
        .unwrap_or_default()
    }

    /// The ports of `from` toward its loop-free alternates for `to` over the links in use
    /// (empty unless it has one next hop and such neighbours).
    pub fn alternates(&self, from: &str, to: &str) -> Vec<u32> {
        let (Some(&a), Some(&b)) = (self.index.get(from), self.index.get(to)) else {
            return Vec::new();
        };
        let alt = |t: &Hops| t.lateral.get(&(a, b)).cloned();
        match self.in_use.routes() {
            Some(r) => alt(&r.hops),
            None => alt(&self.hops),
        }
        .unwrap_or_default()
    }

    /// The group a route of `from` toward `to` ends with, if the declared links give it
    /// one (else the route outputs to its one next hop): a select group where they give
    /// several equal-cost next hops, a fast-failover group where they give one and a loop-
    /// free alternate. Its buckets follow the links in use, so that a link out of use
    /// changes the group, not the entries that use it (no buckets: dropped).
    pub fn route_group(&self, from: &str, to: &str) -> Option<Group> {
        let (&a, &b) = (self.index.get(from)?, self.index.get(to)?);
        let declared = self.hops.next.get(a)?.get(b)?;
        let id = u32::try_from(b + 1).ok()?;
        if declared.len() > 1 {
            return Some(Group {
                id,
                kind: GroupKind::Select,
                ports: self.next_hops(from, to),
            });
        }
        if !self.hops.lateral.contains_key(&(a, b)) || id >= FAST_FAILOVER_BASE {
            return None;
        }
        let mut ports = self.next_hops(from, to);
        for p in self.alternates(from, to) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        Some(Group {
            id: FAST_FAILOVER_BASE + id,
            kind: GroupKind::FastFailover,
            ports,
        })
    }

    /// Takes link ends out of use (`(switch, port)`; a link is out of use when either of its
    /// ends is), all others back into use, and computes the routes again. Whether the routes
    /// changed. Every plan made afterwards follows them; the switches learn of it when they
    /// are reconciled. Callers serialize their calls (the router holds its link watch).
    pub fn set_unused(&self, ends: &BTreeSet<(String, u32)>) -> bool {
        !self.set_unused_changes(ends).is_empty()
    }

    /// [`Fabric::set_unused`], returning the switches whose routes changed (by name, in
    /// topology order; empty: none did). A switch's plan changes with the routes only where
    /// its own routes do (its route entries, its groups' buckets, the home agent's next
    /// hop), so a re-plan need reconcile only these: toward some gateway switch their next
    /// hops or loop-free alternates over the links in use differ.
    pub fn set_unused_changes(&self, ends: &BTreeSet<(String, u32)>) -> Vec<String> {
        let unused: BTreeSet<(usize, u32)> = ends
            .iter()
            .filter_map(|(s, p)| {
                let &i = self.index.get(s)?;
                let &(j, q) = self.links.get(i)?.get(p)?;
                Some([(i, *p), (j, q)])
            })
            .flatten()
            .collect();
        let now = self.in_use.routes();
        let same = match &now {
            Some(r) => r.unused == unused,
            None => unused.is_empty(),
        };
        if same {
            return Vec::new();
        }
        let next = (!unused.is_empty()).then(|| {
            Arc::new(Routes {
                hops: shortest_next_hops(&self.links, &unused, &self.transit),
                unused,
            })
        });
        let old = now.as_ref().map_or(&self.hops, |r| &r.hops);
        let new = next.as_ref().map_or(&self.hops, |r| &r.hops);
        let gateways: Vec<usize> = (0..self.subnets.len())
            .filter(|&i| !self.subnets[i].is_empty())
            .collect();
        let changed = self
            .topology
            .switches
            .iter()
            .enumerate()
            .filter(|&(a, _)| {
                gateways.iter().any(|&b| {
                    old.next[a][b] != new.next[a][b]
                        || old.lateral.get(&(a, b)) != new.lateral.get(&(a, b))
                })
            })
            .map(|(_, s)| s.name.clone())
            .collect();
        self.in_use.set(next);
        changed
    }

    /// The link ends out of use now (both ends of each such link), by switch name.
    pub fn unused(&self) -> BTreeSet<(String, u32)> {
        let names =
            |&(i, p): &(usize, u32)| self.topology.switches.get(i).map(|s| (s.name.clone(), p));
        match self.in_use.routes() {
            Some(r) => r.unused.iter().filter_map(names).collect(),
            None => BTreeSet::new(),
        }
    }

    /// The groups a switch needs: one per gateway switch it reaches over several equal-cost
    /// next hops, or over one with loop-free alternates, by id.
    pub fn groups(&self, switch: &str) -> Vec<Group> {
        let mut to: Vec<&str> = self
            .topology
            .subnets
            .iter()
            .map(|s| s.switch.as_str())
            .filter(|&s| s != switch)
            .collect();
        to.sort_unstable();
        to.dedup();
        let mut v: Vec<Group> = to
            .into_iter()
            .filter_map(|t| self.route_group(switch, t))
            .collect();
        v.sort_by_key(|g| g.id);
        v
    }

    /// What a route toward gateway switch `to` ends with: its group, or its one next hop.
    fn route_out(&self, from: &str, to: &str) -> Option<Action> {
        match self.route_group(from, to) {
            Some(g) => Some(Action::Group { group_id: g.id }),
            None => self.next_hop(from, to).map(Action::output),
        }
    }

    /// The subnets a switch is the gateway of (in file order).
    pub fn subnets_of<'a>(&'a self, switch: &'a str) -> impl Iterator<Item = &'a SubnetConf> + 'a {
        self.switch_ctx(switch)
            .into_iter()
            .flat_map(|s| s.subnets())
    }

    /// The edge: switches that are not access switches but are the gateway of a subnet
    /// (the paper's R1 with the external network).
    pub fn edges(&self) -> &[String] {
        &self.edges
    }

    /// A switch's datapath id.
    pub fn dpid_of(&self, switch: &str) -> Option<u64> {
        self.switch(switch).map(|s| s.dpid.0)
    }

    /// A switch's entry in the topology.
    pub fn switch(&self, name: &str) -> Option<&crate::fabric::topology::SwitchConf> {
        let &i = self.index.get(name)?;
        self.topology.switches.get(i)
    }

    /// The subnet an address belongs to.
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<&SubnetConf> {
        self.topology.subnets.iter().find(|s| s.contains(ip))
    }

    /// The pipeline and routes of one switch, without per-host entries.
    pub fn base_flows(&self, switch: &str) -> Vec<Flow> {
        let mut v = Vec::new();
        let pipe = |table_id, priority, fields: Vec<Oxm>, instructions| Flow {
            table_id,
            priority,
            cookie: COOKIE_PIPELINE,
            match_: Match::new(fields),
            instructions,
            ..Default::default()
        };
        v.push(pipe(
            TABLE_CLASSIFY,
            1000,
            vec![Oxm::EthType(crate::packet::ETH_ARP, None)],
            goto(TABLE_PUNT),
        ));
        v.push(pipe(
            TABLE_CLASSIFY,
            1000,
            vec![Oxm::EthType(crate::packet::ETH_RARP, None)],
            goto(TABLE_PUNT),
        ));
        for p in self.link_ports(switch) {
            // The LLDP that checks a link reaches the controller; a host's is dropped below.
            v.push(pipe(
                TABLE_CLASSIFY,
                1000,
                vec![
                    Oxm::InPort(p, None),
                    Oxm::EthType(crate::packet::ETH_LLDP, None),
                ],
                goto(TABLE_PUNT),
            ));
            v.push(pipe(
                TABLE_CLASSIFY,
                900,
                vec![
                    Oxm::InPort(p, None),
                    Oxm::EthType(crate::packet::ETH_IPV4, None),
                ],
                goto(TABLE_TO_HOST),
            ));
        }
        // IPv4 from a host the switch does not know at that port (a new host, or a VM that
        // has just moved here): forwarded, and a copy tells the controller.
        v.push(pipe(
            TABLE_CLASSIFY,
            PRIO_UNKNOWN_SOURCE,
            vec![Oxm::EthType(crate::packet::ETH_IPV4, None)],
            apply_then(vec![Action::output(port::CONTROLLER)], TABLE_FROM_HOST),
        ));
        v.push(pipe(TABLE_CLASSIFY, 0, vec![], vec![]));
        v.push(pipe(TABLE_FROM_HOST, 0, vec![], goto(TABLE_SOURCE)));
        v.push(pipe(TABLE_SOURCE, 0, vec![], goto(TABLE_TO_HOST)));
        v.push(pipe(TABLE_TO_HOST, 0, vec![], goto(TABLE_ROUTE)));
        v.push(pipe(TABLE_ROUTE, 0, vec![], vec![]));
        // From a port without a meter of its own (a link, a port not known yet).
        v.push(pipe(TABLE_PUNT, 0, vec![], to_controller()));

        for s in self.subnets_of(switch) {
            let (Some(prefix), Some(gateway)) = (s.prefix, s.gateway) else {
                continue;
            };
            let gw = Prefix {
                addr: gateway,
                len: 32,
            };
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_GATEWAY,
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip_dst(&gw)),
                instructions: goto(TABLE_PUNT),
                ..Default::default()
            });
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + prefix.len as u16,
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip_dst(&prefix)),
                instructions: goto(TABLE_PUNT),
                ..Default::default()
            });
        }
        for s in &self.topology.subnets {
            let Some(prefix) = s.prefix.filter(|_| s.switch != switch) else {
                continue;
            };
            let Some(out) = self.route_out(switch, &s.switch) else {
                continue;
            };
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + prefix.len as u16,
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip_dst(&prefix)),
                instructions: routed(GATEWAY_MAC, out),
                ..Default::default()
            });
        }
        if self.has_ipv6() {
            v.extend(self.ipv6_flows(switch));
        }
        v
    }

    /// Whether any subnet has an IPv6 prefix: the pipeline then carries IPv6 too.
    pub fn has_ipv6(&self) -> bool {
        self.topology.subnets.iter().any(|s| s.prefix6.is_some())
    }

    /// The subnet whose IPv6 prefix holds `ip`.
    pub fn subnet_of6(&self, ip: Ipv6Addr) -> Option<&SubnetConf> {
        self.topology
            .subnets
            .iter()
            .find(|s| s.prefix6.is_some_and(|p| p.contains(ip)))
    }

    /// The IPv6 pipeline of one switch (docs/dualstack.md, "IPv6 routing"): router
    /// solicitations and solicitations for a gateway address to the controller; IPv6 from a
    /// link routed, from a host port on to the switching table; gateway addresses answered
    /// by the controller; prefixes routed as IPv4's are, a local prefix's unknown hosts
    /// resolved by the controller.
    fn ipv6_flows(&self, switch: &str) -> Vec<Flow> {
        let pipe = |table_id, priority, fields: Vec<Oxm>, instructions| Flow {
            table_id,
            priority,
            cookie: COOKIE_PIPELINE,
            match_: Match::new(fields),
            instructions,
            ..Default::default()
        };
        let ipv6 = || Oxm::EthType(crate::packet::ETH_IPV6, None);
        let mut v = vec![pipe(
            TABLE_CLASSIFY,
            1000,
            icmp6(vec![], crate::packet::icmp6::ROUTER_SOLICITATION),
            goto(TABLE_PUNT),
        )];
        for p in self.link_ports(switch) {
            v.push(pipe(
                TABLE_CLASSIFY,
                900,
                vec![Oxm::InPort(p, None), ipv6()],
                goto(TABLE_TO_HOST),
            ));
        }
        v.push(pipe(
            TABLE_CLASSIFY,
            PRIO_UNKNOWN_SOURCE,
            vec![ipv6()],
            goto(TABLE_FROM_HOST),
        ));
        let mine: Vec<(Ipv6Addr, crate::fabric::topology::Prefix6)> = self
            .subnets_of(switch)
            .filter_map(|s| Some((s.gateway6?, s.prefix6?)))
            .collect();
        let gateways = mine
            .iter()
            .map(|(g, _)| *g)
            .chain((!mine.is_empty()).then_some(GATEWAY_LL));
        if !mine.is_empty() {
            // From a host port whose own entries are not there yet (it has just appeared:
            // a VM arriving), group-addressed neighbour discovery and MLD reports still reach
            // the controller, which learns from them or sees the move (IPv4's counterpart is
            // the copy of IPv4 from a port without a meter).
            for ty in [
                crate::packet::icmp6::NEIGHBOR_SOLICITATION,
                crate::packet::icmp6::NEIGHBOR_ADVERTISEMENT,
                crate::packet::icmp6::MLD_REPORT,
                crate::packet::icmp6::MLD2_REPORT,
            ] {
                v.push(pipe(
                    TABLE_CLASSIFY,
                    PRIO_ND_NEW_PORT,
                    icmp6(vec![Oxm::EthDst(MULTICAST_BIT, Some(MULTICAST_BIT))], ty),
                    goto(TABLE_PUNT),
                ));
            }
            v.push(pipe(
                TABLE_CLASSIFY,
                PRIO_ND_GATEWAY,
                icmp6(
                    vec![Oxm::EthDst(GATEWAY_MAC, None)],
                    crate::packet::icmp6::NEIGHBOR_SOLICITATION,
                ),
                goto(TABLE_PUNT),
            ));
        }
        for g in gateways {
            let mut ns = icmp6(vec![], crate::packet::icmp6::NEIGHBOR_SOLICITATION);
            ns.push(Oxm::Ipv6NdTarget(g, None));
            v.push(pipe(TABLE_CLASSIFY, 1000, ns, goto(TABLE_PUNT)));
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_GATEWAY,
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip6_dst(g, 128)),
                instructions: goto(TABLE_PUNT),
                ..Default::default()
            });
        }
        for (_, p) in &mine {
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + u16::from(p.len),
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip6_dst(p.addr, p.len)),
                instructions: goto(TABLE_PUNT),
                ..Default::default()
            });
        }
        for s in &self.topology.subnets {
            let Some(p) = s.prefix6.filter(|_| s.switch != switch) else {
                continue;
            };
            let Some(out) = self.route_out(switch, &s.switch) else {
                continue;
            };
            v.push(Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + u16::from(p.len),
                cookie: COOKIE_ROUTE,
                match_: Match::new(ip6_dst(p.addr, p.len)),
                instructions: routed(GATEWAY_MAC, out),
                ..Default::default()
            });
        }
        v
    }

    /// IPv6 delivery of one host address at its switch: switching by its MAC (table 1, as
    /// for IPv4) and routed delivery (table 4: hop limit decremented, the gateway's and its
    /// own MAC).
    pub fn host_flows6(&self, h: &HostLoc6) -> [Flow; 2] {
        let cookie = COOKIE_HOST6 | u64::from(u128::from(h.ip) as u32);
        let m = h.mac.0;
        let mac_low = u64::from(u32::from_be_bytes([m[2], m[3], m[4], m[5]]));
        [
            switching(h.mac, h.port, COOKIE_HOST6 | mac_low),
            Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + 128,
                cookie,
                match_: Match::new(ip6_dst(h.ip, 128)),
                instructions: routed(h.mac, Action::output(h.port)),
                ..Default::default()
            },
        ]
    }

    /// The IPv6 addresses the topology file places, one entry per address.
    pub fn configured_hosts6(&self) -> Vec<HostLoc6> {
        self.topology
            .hosts
            .iter()
            .flat_map(|h| {
                h.addresses6().into_iter().map(|ip| HostLoc6 {
                    ip,
                    mac: h.mac,
                    switch: h.at.switch.clone(),
                    port: h.at.port,
                })
            })
            .collect()
    }

    /// The meter of host port `p` of `switch` (its id is the port number), if it gets one:
    /// port meters are on, and `p` is not a link, not a reserved port, a valid meter number.
    /// The one rule for which ports are metered: [`Fabric::port_flows`] and
    /// [`Fabric::meters`] follow it.
    pub fn port_meter(&self, switch: &str, p: u32) -> Option<Meter> {
        let pps = self.limits.port_pps;
        (pps > 0
            && (1..=port::MAX.min(ofp13::meter::MAX)).contains(&p)
            && self.switch_ctx(switch).is_some_and(|s| !s.is_link_port(p)))
        .then_some(Meter {
            id: p,
            pps,
            burst: pps,
        })
    }

    /// One host port's entries toward the controller through its meter: the punt table's,
    /// and table 0's copy of IPv4 from a source the switch does not know at that port (above
    /// the catch-all copy, below known hosts). None for a port without a meter.
    pub fn port_flows(&self, switch: &str, p: u32) -> Vec<Flow> {
        let Some(m) = self.port_meter(switch, p) else {
            return Vec::new();
        };
        vec![
            Flow {
                table_id: TABLE_CLASSIFY,
                priority: PRIO_UNKNOWN_SOURCE + 1,
                cookie: COOKIE_PIPELINE,
                match_: Match::new(vec![
                    Oxm::InPort(p, None),
                    Oxm::EthType(crate::packet::ETH_IPV4, None),
                ]),
                instructions: metered(
                    m.id,
                    apply_then(vec![Action::output(port::CONTROLLER)], TABLE_FROM_HOST),
                ),
                ..Default::default()
            },
            Flow {
                table_id: TABLE_PUNT,
                priority: 100,
                cookie: COOKIE_PORT | u64::from(p),
                match_: Match::new(vec![Oxm::InPort(p, None)]),
                instructions: metered(m.id, to_controller()),
                ..Default::default()
            },
        ]
    }

    /// The meters of `switch` whose host ports are `ports`: one per metered host port in id
    /// order, then the switch's `controller` meter.
    pub fn meters(&self, switch: &str, ports: &BTreeSet<u32>) -> Vec<Meter> {
        let mut v: Vec<Meter> = ports
            .iter()
            .filter_map(|&p| self.port_meter(switch, p))
            .collect();
        if self.limits.switch_pps > 0 {
            v.push(Meter {
                id: ofp13::meter::CONTROLLER,
                pps: self.limits.switch_pps,
                burst: self.limits.switch_pps,
            });
        }
        v
    }

    /// The host ports of `switch` the topology file names (its subnets' `ports`, and where
    /// its `[[host]]`s are attached): what the plan meters on a switch whose ports the
    /// controller has not seen (`plan`, a switch not connected yet). Where hosts move does not
    /// change it: a switch's ports are what it has, not where hosts are.
    pub fn declared_ports(&self, switch: &str) -> BTreeSet<u32> {
        let mut v: BTreeSet<u32> = self
            .subnets_of(switch)
            .flat_map(|s| s.ports.iter().flatten().copied())
            .collect();
        v.extend(
            self.topology
                .hosts
                .iter()
                .filter(|h| h.at.switch == switch)
                .map(|h| h.at.port),
        );
        v
    }

    /// The subnet of `switch` that host port `port` belongs to: the one whose `ports` list
    /// it, else the first of the switch's subnets that lists none.
    pub fn subnet_at<'a>(&'a self, switch: &'a str, port: u32) -> Option<&'a SubnetConf> {
        self.subnets_of(switch)
            .find(|s| s.ports.as_ref().is_some_and(|p| p.contains(&port)))
            .or_else(|| self.subnets_of(switch).find(|s| s.ports.is_none()))
    }

    /// The entries of `switch`'s host ports `ports` that follow from their subnets (table 0):
    /// broadcast and multicast from a port flooded to the other host ports of its subnet
    /// (never to a link, never to another subnet's port), and DHCP from a port of a subnet
    /// with `dhcp` to the controller, which answers it (docs/dualstack.md). Every port's
    /// flood lists its subnet's ports, so a port that comes or goes changes them all.
    pub fn subnet_flows(&self, switch: &str, ports: &BTreeSet<u32>) -> Vec<Flow> {
        let Some(sw) = self.switch_ctx(switch) else {
            return Vec::new();
        };
        let host: Vec<(u32, &SubnetConf)> = ports
            .iter()
            .filter(|&&p| p <= port::MAX && !sw.is_link_port(p))
            .filter_map(|&p| self.subnet_at(switch, p).map(|s| (p, s)))
            .collect();
        let mut v = Vec::new();
        for &(p, s) in &host {
            let cookie = COOKIE_SUBNET | u64::from(p);
            let flood: Vec<Action> = host
                .iter()
                .filter(|(q, t)| *q != p && t.name == s.name)
                .map(|(q, _)| Action::output(*q))
                .collect();
            v.push(Flow {
                table_id: TABLE_CLASSIFY,
                priority: PRIO_FLOOD,
                cookie,
                match_: Match::new(vec![
                    Oxm::InPort(p, None),
                    Oxm::EthDst(MULTICAST_BIT, Some(MULTICAST_BIT)),
                ]),
                instructions: if flood.is_empty() {
                    Vec::new()
                } else {
                    apply(flood.clone())
                },
                ..Default::default()
            });
            if s.prefix6.is_some() {
                // Solicitations and advertisements to a group address: flooded like other
                // multicast, and the controller learns from them (through the port's meter);
                // MLD reports too, which tell it a VM has appeared at a new port.
                for ty in [
                    crate::packet::icmp6::NEIGHBOR_SOLICITATION,
                    crate::packet::icmp6::NEIGHBOR_ADVERTISEMENT,
                    crate::packet::icmp6::MLD_REPORT,
                    crate::packet::icmp6::MLD2_REPORT,
                ] {
                    let at = vec![
                        Oxm::InPort(p, None),
                        Oxm::EthDst(MULTICAST_BIT, Some(MULTICAST_BIT)),
                    ];
                    v.push(Flow {
                        table_id: TABLE_CLASSIFY,
                        priority: PRIO_ND_FLOOD,
                        cookie,
                        match_: Match::new(icmp6(at, ty)),
                        instructions: apply_then(flood.clone(), TABLE_PUNT),
                        ..Default::default()
                    });
                }
            }
            if s.dhcp {
                v.push(Flow {
                    table_id: TABLE_CLASSIFY,
                    priority: PRIO_DHCP,
                    cookie,
                    match_: Match::new(dhcp_to_server(vec![Oxm::InPort(p, None)])),
                    instructions: goto(TABLE_PUNT),
                    ..Default::default()
                });
            }
        }
        v
    }

    /// Delivery of one host at its switch. Table 1: frames from hosts of the same subnet
    /// addressed to its MAC go straight to its port (switched, TTL untouched). Table 2: routed
    /// packets for its address: TTL decremented first (so a packet whose TTL runs out reaches
    /// the controller unmodified, with its sender's MAC), then the gateway's and its own MAC.
    pub fn host_flows(&self, h: &HostLoc) -> [Flow; 3] {
        let cookie = COOKIE_HOST | u32::from(h.ip) as u64;
        [
            Flow {
                table_id: TABLE_CLASSIFY,
                priority: PRIO_SOURCE_KNOWN,
                cookie,
                match_: Match::new(vec![
                    Oxm::InPort(h.port, None),
                    Oxm::EthSrc(h.mac, None),
                    Oxm::EthType(crate::packet::ETH_IPV4, None),
                ]),
                instructions: goto(TABLE_FROM_HOST),
                ..Default::default()
            },
            switching(h.mac, h.port, cookie),
            Flow {
                table_id: TABLE_ROUTE,
                priority: PRIO_PREFIX_BASE + 32,
                cookie,
                match_: Match::new(ip_dst(&Prefix {
                    addr: h.ip,
                    len: 32,
                })),
                instructions: routed(h.mac, Action::output(h.port)),
                ..Default::default()
            },
        ]
    }

    /// The hosts the topology file places, one entry per address.
    pub fn configured_hosts(&self) -> Vec<HostLoc> {
        let mut v = Vec::new();
        for h in &self.topology.hosts {
            for ip in h.addresses() {
                v.push(HostLoc {
                    ip,
                    mac: h.mac,
                    switch: h.at.switch.clone(),
                    port: h.at.port,
                });
            }
        }
        v
    }

    /// One switch's table given the hosts, all at home (those on other switches are
    /// ignored), in the order `plan` prints (see [`sort_flows`]).
    pub fn switch_plan(&self, switch: &str, hosts: &[HostLoc]) -> Vec<Flow> {
        let mut flows = self.base_flows(switch);
        for h in hosts.iter().filter(|h| h.switch == switch) {
            flows.extend(self.host_flows(h));
        }
        for h in self.configured_hosts6() {
            if h.switch == switch {
                flows.extend(self.host_flows6(&h));
            }
        }
        let ports = self.declared_ports(switch);
        for &p in &ports {
            flows.extend(self.port_flows(switch, p));
        }
        flows.extend(self.subnet_flows(switch, &ports));
        let mut flows = dedup(flows);
        sort_flows(&mut flows);
        flows
    }

    /// Every switch's table given these hosts.
    pub fn plan(&self, hosts: &[HostLoc]) -> BTreeMap<String, Vec<Flow>> {
        self.topology
            .switches
            .iter()
            .map(|s| (s.name.clone(), self.switch_plan(&s.name, hosts)))
            .collect()
    }
}

/// Orders flows as `plan` prints them: by table, then descending priority, then match.
pub fn sort_flows(flows: &mut [Flow]) {
    // Within a priority, by the match's wire bytes: numeric order of addresses, and no text
    // to format (formatting every flow made planning a 500-rack fabric 7 times slower).
    flows.sort_by_cached_key(|f| {
        let mut m = Vec::with_capacity(32);
        f.match_.emit(&mut m);
        (f.table_id, std::cmp::Reverse(f.priority), m, f.cookie)
    });
}

/// The paper testbed's fabric, for unit tests.
#[cfg(test)]
pub(crate) fn paper_fabric() -> Fabric {
    let t = Topology::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/paper-testbed.toml"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    Fabric::new(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> Fabric {
        paper_fabric()
    }

    #[test]
    fn next_hops_follow_links() {
        let f = paper();
        assert_eq!(f.next_hop("r2", "r3"), Some(1));
        assert_eq!(f.next_hop("r1", "r3"), Some(2));
        assert_eq!(f.next_hop("r1", "r2"), Some(1));
        assert_eq!(f.next_hop("r3", "r3"), None);
        assert!(f.is_link_port("r1", 2) && !f.is_link_port("r1", 3));
    }

    #[test]
    fn a_switch_resolved_once_is_reached_by_index() {
        let f = paper();
        for (i, conf) in f.topology.switches.iter().enumerate() {
            let id = f.id_of(&conf.name).unwrap();
            assert_eq!(id, SwitchId(i as u32));
            let by_id = f.ctx(id).unwrap();
            let by_name = f.switch_ctx(&conf.name).unwrap();
            assert_eq!(by_id.name, conf.name);
            assert_eq!(by_id.id, by_name.id);
            let ports: Vec<u32> = (0..8).filter(|&p| by_id.is_link_port(p)).collect();
            assert_eq!(
                ports,
                (0..8)
                    .filter(|&p| by_name.is_link_port(p))
                    .collect::<Vec<_>>()
            );
            assert_eq!(by_id.subnets().count(), by_name.subnets().count());
        }
        assert!(f.id_of("no-such-switch").is_none());
        assert!(f.ctx(SwitchId(f.topology.switches.len() as u32)).is_none());
    }

    /// three-tier with a peer link between a3 and a4 (port 7 of each).
    fn peer_linked() -> Fabric {
        let text = include_str!("../../topologies/three-tier.toml").to_string()
            + "\n[[link]]\na = \"a3:7\"\nb = \"a4:7\"\n";
        Fabric::new(&Topology::parse(&text).unwrap())
    }

    #[test]
    fn a_lone_next_hop_with_a_loop_free_alternate_gets_a_fast_failover_group() {
        let f = peer_linked();
        let t5 = f
            .topology
            .switches
            .iter()
            .position(|s| s.name == "t5")
            .unwrap() as u32
            + 1;
        // a3 reaches t5 over its own link; a4 (over the peer link) is as near: the backup.
        let g = f.route_group("a3", "t5").unwrap();
        assert_eq!(
            (g.id, g.kind, g.ports.as_slice()),
            (
                FAST_FAILOVER_BASE + t5,
                GroupKind::FastFailover,
                &[3, 7][..]
            )
        );
        assert_eq!(
            g.text(),
            format!(
                "group_id={},type=ff,bucket=watch_port:3,actions=output:3,bucket=watch_port:7,actions=output:7",
                FAST_FAILOVER_BASE + t5
            )
        );
        assert!(f.base_flows("a3").iter().any(|fl| fl
            .text()
            .ends_with(&format!("group:{}", FAST_FAILOVER_BASE + t5))));
        // Equal-cost next hops stay a select group; a core has no alternate (it is farther
        // from t5 than a3 and a4 are, and no other core is as near).
        assert_eq!(f.route_group("a3", "t1").unwrap().kind, GroupKind::Select);
        assert_eq!(f.route_group("c1", "t5").unwrap().kind, GroupKind::Select);
        // Without the peer link there is none: an aggregation switch's only way around a
        // lost rack link is a core, which would send half the traffic back.
        let plain = Fabric::new(
            &Topology::parse(include_str!("../../topologies/three-tier.toml")).unwrap(),
        );
        assert_eq!(plain.route_group("a3", "t5"), None);
        assert!(plain
            .groups("a3")
            .iter()
            .all(|g| g.kind == GroupKind::Select));
        // The link to t5 out of use: the group keeps its id; a4 is the next hop now and
        // the cores, as far from t5 as a3 is then, its alternates.
        let ends = BTreeSet::from([("a3".to_string(), 3)]);
        assert!(f.set_unused(&ends));
        let g2 = f.route_group("a3", "t5").unwrap();
        assert_eq!((g2.id, g2.ports.as_slice()), (g.id, &[7, 1, 2][..]));
    }

    #[test]
    fn a_failure_changes_the_routes_of_the_switches_near_it_only() {
        let f = Fabric::new(
            &Topology::parse(include_str!("../../topologies/three-tier.toml")).unwrap(),
        );
        let changed = f.set_unused_changes(&BTreeSet::from([("a3".to_string(), 3)]));
        // a3 and t5 lose the link, the cores and t5's block mates no longer go through a3
        // toward t5; the other block sees nothing of it.
        assert_eq!(changed, ["c1", "c2", "a3", "t5", "t6", "t7", "t8"]);
        // Mended: the same switches return to their first routes; again, none.
        let back = f.set_unused_changes(&BTreeSet::new());
        assert_eq!(back, changed);
        assert!(f.set_unused_changes(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn plan_of_the_home_switch() {
        let f = paper();
        let plan = f.plan(&f.configured_hosts());
        let r3: Vec<String> = plan["r3"].iter().map(Flow::text).collect();
        let want = [
            "cookie=0x5353000100000000, priority=1000,arp actions=goto_table:5",
            "cookie=0x5353000100000000, priority=1000,rarp actions=goto_table:5",
            "cookie=0x5353000100000000, priority=1000,in_port=1,dl_type=0x88cc actions=goto_table:5",
            "cookie=0x5353000100000000, priority=900,ip,in_port=1 actions=goto_table:3",
            "cookie=0x5353000700000002, priority=860,in_port=2,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=output:3,output:4",
            "cookie=0x5353000700000003, priority=860,in_port=3,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=output:2,output:4",
            "cookie=0x5353000700000004, priority=860,in_port=4,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=output:2,output:3",
            "cookie=0x53530003c0a80b02, priority=850,ip,in_port=2,dl_src=02:00:00:00:11:02 actions=goto_table:1",
            "cookie=0x53530003c0a80b03, priority=850,ip,in_port=3,dl_src=02:00:00:00:11:03 actions=goto_table:1",
            "cookie=0x53530003c0a80b04, priority=850,ip,in_port=4,dl_src=02:00:00:00:11:04 actions=goto_table:1",
            "cookie=0x5353000100000000, priority=801,ip,in_port=2 actions=meter:2,CONTROLLER:65535,goto_table:1",
            "cookie=0x5353000100000000, priority=801,ip,in_port=3 actions=meter:3,CONTROLLER:65535,goto_table:1",
            "cookie=0x5353000100000000, priority=801,ip,in_port=4 actions=meter:4,CONTROLLER:65535,goto_table:1",
            "cookie=0x5353000100000000, priority=800,ip actions=CONTROLLER:65535,goto_table:1",
            "cookie=0x5353000100000000, priority=0 actions=drop",
            "cookie=0x53530003c0a80b02, table=1, priority=500,dl_dst=02:00:00:00:11:02 actions=output:2",
            "cookie=0x53530003c0a80b03, table=1, priority=500,dl_dst=02:00:00:00:11:03 actions=output:3",
            "cookie=0x53530003c0a80b04, table=1, priority=500,dl_dst=02:00:00:00:11:04 actions=output:4",
            "cookie=0x5353000100000000, table=1, priority=0 actions=goto_table:2",
            "cookie=0x5353000100000000, table=2, priority=0 actions=goto_table:3",
            "cookie=0x5353000100000000, table=3, priority=0 actions=goto_table:4",
            "cookie=0x5353000200000000, table=4, priority=2000,ip,nw_dst=192.168.11.1 actions=goto_table:5",
            "cookie=0x53530003c0a80b02, table=4, priority=1032,ip,nw_dst=192.168.11.2 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:11:02->eth_dst,output:2",
            "cookie=0x53530003c0a80b03, table=4, priority=1032,ip,nw_dst=192.168.11.3 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:11:03->eth_dst,output:3",
            "cookie=0x53530003c0a80b04, table=4, priority=1032,ip,nw_dst=192.168.11.4 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:11:04->eth_dst,output:4",
            "cookie=0x5353000200000000, table=4, priority=1024,ip,nw_dst=10.0.0.0/24 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:53:53:00:00:01->eth_dst,output:1",
            "cookie=0x5353000200000000, table=4, priority=1024,ip,nw_dst=192.168.10.0/24 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:53:53:00:00:01->eth_dst,output:1",
            "cookie=0x5353000200000000, table=4, priority=1024,ip,nw_dst=192.168.11.0/24 actions=goto_table:5",
            "cookie=0x5353000100000000, table=4, priority=0 actions=drop",
            "cookie=0x5353000600000002, table=5, priority=100,in_port=2 actions=meter:2,CONTROLLER:65535",
            "cookie=0x5353000600000003, table=5, priority=100,in_port=3 actions=meter:3,CONTROLLER:65535",
            "cookie=0x5353000600000004, table=5, priority=100,in_port=4 actions=meter:4,CONTROLLER:65535",
            "cookie=0x5353000100000000, table=5, priority=0 actions=CONTROLLER:65535",
        ];
        assert_eq!(r3, want);
        for flows in plan.values() {
            for fl in flows {
                fl.match_.check().unwrap();
            }
        }
    }
}
