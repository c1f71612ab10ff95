//! The transient-state checker: proves that an update ([`Schedule`]) never lets a host see a
//! care-of address, never loops a packet and never drops traffic of hosts the update does not
//! concern, in *every* state the fabric can pass through while the update is applied; and
//! that the tables it ends in deliver the moved hosts' traffic.
//!
//! **The states.** Switches apply their flow mods one at a time, each switch independently;
//! a batch is sent only once the batches it waits for are acknowledged. So while an update
//! runs, each switch is somewhere in its own sequence of flow mods (a *position*: how many it
//! has applied), and a packet that crosses the fabric meets each switch at some position, the
//! later switches at later times. A packet's path is a chain of visits; the positions of the
//! visits are constrained only by the schedule's order, read forward in time: if a switch met
//! early had started a batch, every batch that batch waits for (transitively) was complete at
//! every switch met later. Nothing else constrains them; in particular a switch met again
//! later may be further on.
//!
//! **The search.** For every probe packet the checker follows the packet from its host
//! through the flow-table engine ([`crate::emu::flowtable`], checked against Open vSwitch), switch
//! by switch. At a switch the update does not touch there is one behaviour; at one it touches,
//! the packet is run through the tables at every position, positions that behave alike are
//! grouped, and the search branches per group. A bad end (a host receiving a care-of address,
//! a loop, an uninvolved packet dropped) is reported only if some assignment of positions to
//! the visits of its path satisfies the order, and it is reported with that assignment.
//!
//! **The packets.** Only packets that can meet a changed entry can behave differently during
//! the update. When every changed entry pins an address or MAC of the moving hosts or one of
//! the care-of addresses the update writes or removes (true of every update servswitch
//! makes), only packets to and from the moving hosts are traced: from each of their possible
//! places (before and after) to one host of every (subnet, switch), to an address of every
//! subnet that no host has, and to their gateways, and from each of those hosts back, with the
//! Ethernet destination a host may have cached (the gateway MAC, or the peer's own MAC: an ARP
//! answer, a stale cache, a redirect), as ICMP and TCP, plus each host's ARP and RARP. Hosts
//! of one subnet on one switch behave alike (the tables never tell them apart but by address
//! and MAC, and neither is changed), so one of them stands for all. When some changed entry
//! pins nothing of the kind, every pair of those hosts is traced instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ofp13::{port, Action, FlowMod, Instruction, MacAddr, Oxm};

use crate::emu::flowtable::{Effect, FlowTables};
use crate::fabric::plan::{Fabric, Flow, GATEWAY_MAC};
use crate::mobility::update::Schedule;
use crate::packet::icmp6::{self, Ipv6};
use crate::packet::{
    self, Arp, Ethernet, Ipv4, ETH_IPV4, ETH_IPV6, ICMP_ECHO_REQUEST, IP_ICMP, IP_TCP,
};

/// A packet that visits more switches than this is taken for a loop.
const MAX_HOPS: usize = 48;

/// A host as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub mac: MacAddr,
    pub ips: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (probed like the IPv4 ones).
    pub ips6: Vec<Ipv6Addr>,
    /// Where it is once the update is done.
    pub at: (String, u32),
    /// Where else it may be while the update runs (a moving host's old place: the hypervisor
    /// may switch over before or after the controller updates the fabric).
    pub also_at: Option<(String, u32)>,
    /// Whether the update is about this host (it moves): its packets may be lost while the
    /// update runs, never shown a care-of address.
    pub moving: bool,
}

/// What to check: the tables before, the update, the tables it must end in, and the hosts.
pub struct Check<'a> {
    pub fabric: &'a Fabric,
    pub before: &'a BTreeMap<String, Vec<Flow>>,
    pub schedule: &'a Schedule,
    pub after: &'a BTreeMap<String, Vec<Flow>>,
    pub endpoints: &'a [Endpoint],
    /// Every address that is a care-of address before or after (no host may ever receive one).
    pub care_of: &'a BTreeSet<IpAddr>,
}

/// What a successful check looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Switches the update changes.
    pub switches: usize,
    /// Positions of those switches (flow mods + 1 each).
    pub positions: usize,
    /// Probe packets traced.
    pub packets: usize,
    /// Times a packet was run through a switch's tables.
    pub lookups: u64,
    /// Whether every pair of hosts was traced (some changed entry pinned no moving host).
    pub all_pairs: bool,
    /// Probes of the moving hosts that some reachable state loses (dropped, or delivered to
    /// a port where the host no longer is): a move costs packets, this counts which can go.
    pub lossy: usize,
    pub elapsed: Duration,
}

/// How a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A reachable state does something wrong.
    Violation(Box<Violation>),
    /// The input does not fit together (the schedule does not lead from `before` to
    /// `after`, a flow mod a switch would refuse, a cycle in the order).
    Inconsistent(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Violation(v) => write!(f, "{v}"),
            Failure::Inconsistent(s) => write!(f, "the update does not fit its tables: {s}"),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationKind {
    /// A host received a packet carrying a care-of address.
    CareOfAtHost {
        host: String,
        src: IpAddr,
        dst: IpAddr,
    },
    /// The packet came back to where it had been, or crossed too many switches.
    Loop,
    /// A packet between hosts the update does not concern was dropped, where it is not
    /// dropped before or after the update.
    UninvolvedDropped { at: String },
    /// A host received, addressed to its own MAC, a packet for an address it does not have.
    Misdelivered { host: String, dst: IpAddr },
    /// Once the update is done, this packet does not arrive where it should.
    FinalUndelivered { expected: String, got: String },
}

/// A violation: the packet, the path it took, and the state of each switch on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub packet: String,
    /// `switch:in_port` per hop.
    pub path: Vec<String>,
    /// Per hop: how far the switch was in the update.
    pub state: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ViolationKind::CareOfAtHost { host, src, dst } => {
                write!(f, "host {host} receives a care-of address ({src} -> {dst})")?
            }
            ViolationKind::Loop => write!(f, "the packet loops")?,
            ViolationKind::UninvolvedDropped { at } => write!(
                f,
                "traffic of hosts the update does not concern is dropped at {at}"
            )?,
            ViolationKind::Misdelivered { host, dst } => {
                write!(f, "host {host} receives a packet for {dst}")?
            }
            ViolationKind::FinalUndelivered { expected, got } => write!(
                f,
                "after the update, the packet should reach {expected} but {got}"
            )?,
        }
        writeln!(f)?;
        writeln!(f, "  packet: {}", self.packet)?;
        writeln!(f, "  path:   {}", self.path.join(" -> "))?;
        for s in &self.state {
            writeln!(f, "  state:  {s}")?;
        }
        Ok(())
    }
}

/// Checks every state `c.schedule` lets the fabric pass through.
pub fn check(c: &Check<'_>) -> Result<Report, Failure> {
    let t0 = Instant::now();
    let model = Model::build(c)?;
    let mut report = Report {
        switches: model.switches.iter().filter(|s| s.tables.len() > 1).count(),
        positions: model
            .switches
            .iter()
            .filter(|s| s.tables.len() > 1)
            .map(|s| s.tables.len())
            .sum(),
        ..Report::default()
    };
    let probes = probes(c, &model, &mut report);
    report.packets = probes.len();
    for p in &probes {
        model.check_probe(p, &mut report)?;
    }
    report.elapsed = t0.elapsed();
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// The fabric's states

/// One switch: its tables at every position, and where its batches start and end.
struct SwitchModel {
    name: String,
    /// `tables[p]`: after `p` of its flow mods (one entry for a switch the update leaves alone).
    tables: Vec<FlowTables>,
    /// Its batches in order: (index in the schedule, first position, last position).
    batches: Vec<(usize, usize, usize)>,
    /// `needs[p]`: for a switch at position `p`, the least position each other switch must
    /// have reached by then (the batches it has started wait for those).
    needs: Vec<BTreeMap<usize, usize>>,
    /// `drained[p]`: the least position each other switch was at for every packet still in
    /// the fabric (the drained batches it has started wait for those, and for the packets
    /// that met the switches before them to leave).
    drained: Vec<BTreeMap<usize, usize>>,
}

struct Model<'a> {
    c: &'a Check<'a>,
    switches: Vec<SwitchModel>,
    index: HashMap<&'a str, usize>,
    /// Every endpoint, by where it may be: (switch index, port) -> endpoint indexes.
    receivers: HashMap<(usize, u32), Vec<usize>>,
}

/// The switch's planned groups (multipath routes), which its entries may name.
fn install_groups(t: &mut FlowTables, fabric: &Fabric, name: &str) -> Result<(), Failure> {
    for g in fabric.groups(name) {
        t.apply_group_mod(&g.group_mod(ofp13::OFPGC_ADD))
            .map_err(|e| Failure::Inconsistent(format!("{name}: refuses {} ({e:?})", g.text())))?;
    }
    Ok(())
}

fn table_count(flows: &[Flow], mods: &[&FlowMod]) -> u8 {
    flows
        .iter()
        .map(|f| f.table_id)
        .chain(mods.iter().map(|m| m.table_id))
        .max()
        .map_or(1, |t| t.saturating_add(1))
}

fn output_ports(instructions: &[Instruction], into: &mut BTreeSet<u32>) {
    for i in instructions {
        if let Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } = i {
            for a in actions {
                if let Action::Output { port: p, .. } = a {
                    if *p <= port::MAX {
                        into.insert(*p);
                    }
                }
            }
        }
    }
}

/// The flow entries of `t` as (table, priority, match) -> (cookie, instructions).
fn entries(t: &FlowTables) -> BTreeMap<crate::fabric::plan::Key, (u64, Vec<Instruction>)> {
    t.dump(ofp13::TABLE_ALL)
        .into_iter()
        .map(|f| {
            (
                crate::fabric::plan::key(f.table_id, f.priority, &f.match_),
                (f.cookie, f.instructions),
            )
        })
        .collect()
}

impl<'a> Model<'a> {
    fn build(c: &'a Check<'a>) -> Result<Model<'a>, Failure> {
        let topo = &c.fabric.topology;
        let index: HashMap<&str, usize> = topo
            .switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        for b in &c.schedule.batches {
            if !index.contains_key(b.switch.as_str()) {
                return Err(Failure::Inconsistent(format!(
                    "a batch for {:?}, which is not in the topology",
                    b.switch
                )));
            }
        }
        let closure = requirements(c.schedule)?;
        let empty = Vec::new();
        let mut switches = Vec::with_capacity(topo.switches.len());
        for s in &topo.switches {
            let name = s.name.as_str();
            let flows = c.before.get(name).unwrap_or(&empty);
            let mods: Vec<(usize, &FlowMod)> = c
                .schedule
                .batches
                .iter()
                .enumerate()
                .filter(|(_, b)| b.switch == name)
                .flat_map(|(i, b)| b.mods.iter().map(move |m| (i, m)))
                .collect();
            let mut ports: BTreeSet<u32> = c.fabric.link_ports(name);
            for f in flows.iter().chain(c.after.get(name).unwrap_or(&empty)) {
                output_ports(&f.instructions, &mut ports);
            }
            for (_, m) in &mods {
                output_ports(&m.instructions, &mut ports);
            }
            for e in c.endpoints {
                for (sw, p) in std::iter::once(&e.at).chain(e.also_at.as_ref()) {
                    if sw == name {
                        ports.insert(*p);
                    }
                }
            }
            let all_mods: Vec<&FlowMod> = mods.iter().map(|(_, m)| *m).collect();
            let mut t = FlowTables::new(table_count(flows, &all_mods));
            t.set_ports(&ports.iter().copied().collect::<Vec<_>>());
            // Every path a flow may take: a switch picks a select group's bucket by its own
            // hash, so each bucket is followed.
            t.every_bucket(true);
            install_groups(&mut t, c.fabric, name)?;
            for f in flows {
                t.apply_flow_mod(&f.add()).map_err(|e| {
                    Failure::Inconsistent(format!("{name}: refuses {} ({e:?})", f.text()))
                })?;
            }
            let mut tables = vec![t];
            let mut batches: Vec<(usize, usize, usize)> = Vec::new();
            for (pos, (batch, m)) in mods.iter().enumerate() {
                let mut next = tables[pos].clone();
                next.apply_flow_mod(m).map_err(|e| {
                    Failure::Inconsistent(format!(
                        "{name}: refuses {} ({e:?})",
                        crate::mobility::update::mod_text(m)
                    ))
                })?;
                tables.push(next);
                match batches.last_mut() {
                    Some(last) if last.0 == *batch => last.2 = pos + 1,
                    _ => batches.push((*batch, pos, pos + 1)),
                }
            }
            // The end must be the tables planned after the update.
            if let Some(want) = c.after.get(name) {
                let mut w = FlowTables::new(table_count(want, &[]));
                install_groups(&mut w, c.fabric, name)?;
                for f in want {
                    w.apply_flow_mod(&f.add()).map_err(|e| {
                        Failure::Inconsistent(format!("{name}: refuses {} ({e:?})", f.text()))
                    })?;
                }
                let (got, want) = (entries(&tables[tables.len() - 1]), entries(&w));
                if got != want {
                    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
                    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
                    let changed = want
                        .iter()
                        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                        .count();
                    let first = want
                        .keys()
                        .find(|k| !got.contains_key(*k))
                        .or_else(|| got.keys().find(|k| !want.contains_key(*k)))
                        .map(|k| format!(" (first: {k:?})"))
                        .unwrap_or_default();
                    return Err(Failure::Inconsistent(format!(
                        "{name}: the schedule leaves {extra} entries the plan does not have, \
                         lacks {missing} and differs in {changed}{first}"
                    )));
                }
            }
            switches.push(SwitchModel {
                name: name.to_string(),
                tables,
                batches,
                needs: Vec::new(),
                drained: Vec::new(),
            });
        }
        // Where each batch lives: (switch, first position, last position).
        let mut span: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
        for (si, s) in switches.iter().enumerate() {
            for &(b, start, end) in &s.batches {
                span.insert(b, (si, start, end));
            }
        }
        for s in &mut switches {
            let n = s.tables.len();
            let mut needs = vec![BTreeMap::new(); n];
            let mut drained = vec![BTreeMap::new(); n];
            for p in 0..n {
                for &(b, start, _) in &s.batches {
                    if p <= start {
                        continue; // not started
                    }
                    let drain = c.schedule.batches.get(b).is_some_and(|x| x.drain);
                    for r in closure.get(&b).into_iter().flatten() {
                        if let Some(&(sj, _, end)) = span.get(r) {
                            let e = needs[p].entry(sj).or_insert(0);
                            *e = (*e).max(end);
                            if drain {
                                let e = drained[p].entry(sj).or_insert(0);
                                *e = (*e).max(end);
                            }
                        }
                    }
                }
            }
            s.needs = needs;
            s.drained = drained;
        }
        let mut receivers: HashMap<(usize, u32), Vec<usize>> = HashMap::new();
        for (i, e) in c.endpoints.iter().enumerate() {
            for (sw, p) in std::iter::once(&e.at).chain(e.also_at.as_ref()) {
                if let Some(&si) = index.get(sw.as_str()) {
                    let v = receivers.entry((si, *p)).or_default();
                    if !v.contains(&i) {
                        v.push(i);
                    }
                }
            }
        }
        Ok(Model {
            c,
            switches,
            index,
            receivers,
        })
    }
}

/// For every batch, every batch that must be complete before it starts: those it waits for,
/// the earlier batches of its own switch, and theirs, transitively.
fn requirements(s: &Schedule) -> Result<BTreeMap<usize, BTreeSet<usize>>, Failure> {
    let n = s.batches.len();
    let mut direct: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut last_of: HashMap<&str, usize> = HashMap::new();
    for (i, b) in s.batches.iter().enumerate() {
        for &a in &b.after {
            if a >= n || a == i {
                return Err(Failure::Inconsistent(format!(
                    "batch {i} waits for batch {a}, which does not exist or is itself"
                )));
            }
            direct[i].push(a);
        }
        if let Some(&p) = last_of.get(b.switch.as_str()) {
            direct[i].push(p);
        }
        last_of.insert(&b.switch, i);
    }
    // Depth-first with colours, to find cycles.
    let mut out: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    fn visit(
        i: usize,
        direct: &[Vec<usize>],
        state: &mut [u8],
        out: &mut BTreeMap<usize, BTreeSet<usize>>,
    ) -> Result<(), usize> {
        match state[i] {
            2 => return Ok(()),
            1 => return Err(i),
            _ => {}
        }
        state[i] = 1;
        let mut all = BTreeSet::new();
        for &d in &direct[i] {
            visit(d, direct, state, out)?;
            all.insert(d);
            if let Some(r) = out.get(&d) {
                all.extend(r.iter().copied());
            }
        }
        state[i] = 2;
        out.insert(i, all);
        Ok(())
    }
    for i in 0..n {
        visit(i, &direct, &mut state, &mut out)
            .map_err(|b| Failure::Inconsistent(format!("batch {b} waits for itself")))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Probes

/// Which states a trace may take at touched switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Any state the order allows.
    During,
    /// Before anything was applied.
    Before,
    /// Once everything is applied.
    After,
}

/// What a probe's destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    /// An endpoint's address (index into the endpoints).
    Host(usize),
    /// An address of a subnet that no host has: the gateway switch asks for it.
    Unknown,
    /// The sender's gateway: answered by the controller.
    Gateway,
}

#[derive(Debug, Clone)]
struct Probe {
    /// Where the packet enters.
    at: (usize, u32),
    frame: Vec<u8>,
    dest: Dest,
    /// Whether it is traffic of a moving host (its losses are counted, not violations).
    involved: bool,
    /// Whether the sender is where it is once the update is done (the final state must then
    /// deliver it).
    from_final: bool,
    text: String,
}

fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t
}

/// An address of `prefix` that no endpoint has, is no gateway and no care-of address: the
/// highest such one.
fn unknown_address(c: &Check<'_>, s: &crate::fabric::topology::SubnetConf) -> Option<Ipv4Addr> {
    let taken: BTreeSet<Ipv4Addr> = c
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter().copied())
        .chain(c.care_of.iter().filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        }))
        .collect();
    let prefix = s.prefix?;
    let first = u32::from(prefix.addr);
    let last = first | !prefix.mask();
    (first + 1..last)
        .rev()
        .map(Ipv4Addr::from)
        .find(|a| Some(*a) != s.gateway && !taken.contains(a))
}

/// An IPv6 address of subnet `s`'s prefix6 that no endpoint has, is no gateway and no care-of
/// address: the highest such one.
fn unknown_address6(c: &Check<'_>, s: &crate::fabric::topology::SubnetConf) -> Option<Ipv6Addr> {
    let p = s.prefix6?;
    let taken = |a: Ipv6Addr| {
        Some(a) == s.gateway6
            || c.care_of.contains(&a.into())
            || c.endpoints.iter().any(|e| e.ips6.contains(&a))
    };
    let last = u128::from(p.addr) | !p.mask();
    (1..64u128)
        .map(|k| Ipv6Addr::from(last - k))
        .find(|a| p.contains(*a) && !taken(*a))
}

/// The addresses of an endpoint, IPv4 first.
fn addresses(e: &Endpoint) -> impl Iterator<Item = IpAddr> + '_ {
    e.ips
        .iter()
        .map(|a| IpAddr::from(*a))
        .chain(e.ips6.iter().map(|a| IpAddr::from(*a)))
}

/// The source and destination of the IPv4 or IPv6 packet in a frame.
fn addresses_of(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let eth = Ethernet::parse(frame)?;
    match eth.ethertype {
        ETH_IPV4 => Ipv4::parse(eth.payload).map(|ip| (ip.src.into(), ip.dst.into())),
        ETH_IPV6 => Ipv6::parse(eth.payload).map(|ip| (ip.src.into(), ip.dst.into())),
        _ => None,
    }
}

/// The values that identify the moving hosts' traffic: their addresses and MACs, and the
/// care-of addresses the update writes or matches.
fn involved_values(c: &Check<'_>) -> (BTreeSet<IpAddr>, BTreeSet<MacAddr>) {
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    let mut macs = BTreeSet::new();
    for e in c.endpoints.iter().filter(|e| e.moving) {
        ips.extend(addresses(e));
        macs.insert(e.mac);
    }
    for b in &c.schedule.batches {
        for m in &b.mods {
            for (ip, _) in crate::mobility::update::set_addresses(&m.instructions)
                .chain(crate::mobility::update::matched_addresses(&m.match_))
            {
                if c.care_of.contains(&ip) {
                    ips.insert(ip);
                }
            }
        }
    }
    (ips, macs)
}

/// Whether every changed entry pins a value of the moving hosts' traffic (then no other
/// packet can meet one).
fn all_pinned(c: &Check<'_>, ips: &BTreeSet<IpAddr>, macs: &BTreeSet<MacAddr>) -> bool {
    c.schedule.batches.iter().flat_map(|b| &b.mods).all(|m| {
        m.match_.fields.iter().any(|f| match f {
            Oxm::Ipv4Src(a, None) | Oxm::Ipv4Dst(a, None) => ips.contains(&(*a).into()),
            Oxm::Ipv6Src(a, None) | Oxm::Ipv6Dst(a, None) => ips.contains(&(*a).into()),
            Oxm::EthSrc(a, None) | Oxm::EthDst(a, None) => macs.contains(a),
            _ => false,
        })
    })
}

fn probes(c: &Check<'_>, model: &Model<'_>, report: &mut Report) -> Vec<Probe> {
    let fabric = c.fabric;
    let (ips, macs) = involved_values(c);
    let pinned = all_pinned(c, &ips, &macs);
    report.all_pairs = !pinned;
    // One endpoint per (subnet, switch, whether it shares a port with a moving host) stands
    // for the rest; moving endpoints all count.
    let moving_places: BTreeSet<(String, u32)> = c
        .endpoints
        .iter()
        .filter(|e| e.moving)
        .flat_map(|e| std::iter::once(e.at.clone()).chain(e.also_at.clone()))
        .collect();
    let mut reps: BTreeMap<(String, String, bool), usize> = BTreeMap::new();
    let mut chosen: Vec<usize> = Vec::new();
    for (i, e) in c.endpoints.iter().enumerate() {
        if e.moving {
            chosen.push(i);
            continue;
        }
        let subnet = e
            .ips
            .first()
            .and_then(|ip| fabric.subnet_of(*ip))
            .or_else(|| e.ips6.first().and_then(|ip| fabric.subnet_of6(*ip)))
            .map_or_else(String::new, |s| s.name.clone());
        let key = (subnet, e.at.0.clone(), moving_places.contains(&e.at));
        reps.entry(key).or_insert(i);
    }
    chosen.extend(reps.values().copied());
    chosen.sort();
    let unknowns: Vec<IpAddr> = fabric
        .topology
        .subnets
        .iter()
        .filter_map(|s| unknown_address(c, s).map(IpAddr::from))
        .chain(
            fabric
                .topology
                .subnets
                .iter()
                .filter_map(|s| unknown_address6(c, s).map(IpAddr::from)),
        )
        .collect();

    let mut out = Vec::new();
    let mut id: u16 = 0;
    let mut push = |out: &mut Vec<Probe>,
                    from: usize,
                    at: &(String, u32),
                    from_final: bool,
                    src: IpAddr,
                    dst: IpAddr,
                    eth_dst: MacAddr,
                    dest: Dest,
                    involved: bool| {
        let Some(&si) = model.index.get(at.0.as_str()) else {
            return;
        };
        let e = &c.endpoints[from];
        for tcp in [false, true] {
            id = id.wrapping_add(1);
            let echo = [0, 1, (id >> 8) as u8, id as u8];
            let syn = tcp_syn(40000 + (id % 20000), 80);
            let frame = match (src, dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) if tcp => {
                    packet::ipv4_frame(eth_dst, e.mac, src, dst, IP_TCP, &syn)
                }
                (IpAddr::V4(src), IpAddr::V4(dst)) => {
                    let icmp = packet::icmp(ICMP_ECHO_REQUEST, 0, echo, b"ss");
                    packet::ipv4_frame(eth_dst, e.mac, src, dst, IP_ICMP, &icmp)
                }
                (IpAddr::V6(src), IpAddr::V6(dst)) if tcp => {
                    icmp6::ipv6_frame(eth_dst, e.mac, src, dst, IP_TCP, 64, &syn)
                }
                (IpAddr::V6(src), IpAddr::V6(dst)) => {
                    let mut body = echo.to_vec();
                    body.extend_from_slice(b"ss");
                    let m = icmp6::icmp6(src, dst, icmp6::ECHO_REQUEST, 0, &body);
                    icmp6::ipv6_frame(eth_dst, e.mac, src, dst, packet::IP_ICMPV6, 64, &m)
                }
                _ => return, // no packet goes from one family to the other
            };
            let text = format!(
                "{} {src} -> {dst} (eth_dst {eth_dst}) from {} at {}:{}",
                match (src.is_ipv4(), tcp) {
                    (true, false) => "ICMP",
                    (false, false) => "ICMPv6",
                    _ => "TCP",
                },
                e.name,
                at.0,
                at.1
            );
            out.push(Probe {
                at: (si, at.1),
                frame,
                dest: dest.clone(),
                involved,
                from_final,
                text,
            });
        }
    };
    for &a in &chosen {
        let ea = &c.endpoints[a];
        let places: Vec<(&(String, u32), bool)> = std::iter::once((&ea.at, true))
            .chain(ea.also_at.as_ref().map(|p| (p, false)))
            .collect();
        for &(at, is_final) in &places {
            // Its ARP requests and announcements always reach the controller.
            if let (Some(&si), Some(&src)) = (model.index.get(at.0.as_str()), ea.ips.first()) {
                let arp = Arp::request(ea.mac, src, src).to_frame();
                for (frame, what) in [(arp, "ARP"), (packet::rarp_announce(ea.mac), "RARP")] {
                    out.push(Probe {
                        at: (si, at.1),
                        frame,
                        dest: Dest::Gateway,
                        involved: ea.moving,
                        from_final: is_final,
                        text: format!("{what} from {} at {}:{}", ea.name, at.0, at.1),
                    });
                }
            }
            for src in addresses(ea) {
                let gw = match src {
                    IpAddr::V4(a) => fabric
                        .subnet_of(a)
                        .and_then(|s| s.gateway)
                        .map(IpAddr::from),
                    IpAddr::V6(a) => fabric
                        .subnet_of6(a)
                        .and_then(|s| s.gateway6)
                        .map(IpAddr::from),
                };
                if let Some(gw) = gw {
                    push(
                        &mut out,
                        a,
                        at,
                        is_final,
                        src,
                        gw,
                        GATEWAY_MAC,
                        Dest::Gateway,
                        ea.moving,
                    );
                }
                for &b in &chosen {
                    if a == b {
                        continue;
                    }
                    let eb = &c.endpoints[b];
                    let involved = ea.moving || eb.moving;
                    if pinned && !involved {
                        continue;
                    }
                    // Hosts behind one port reach each other without the switch.
                    if eb.at == *at || eb.also_at.as_ref() == Some(at) {
                        continue;
                    }
                    for dst in addresses(eb).filter(|d| d.is_ipv4() == src.is_ipv4()) {
                        for eth in [GATEWAY_MAC, eb.mac] {
                            push(
                                &mut out,
                                a,
                                at,
                                is_final,
                                src,
                                dst,
                                eth,
                                Dest::Host(b),
                                involved,
                            );
                        }
                    }
                }
                if ea.moving || !pinned {
                    for &u in unknowns.iter().filter(|u| u.is_ipv4() == src.is_ipv4()) {
                        push(
                            &mut out,
                            a,
                            at,
                            is_final,
                            src,
                            u,
                            GATEWAY_MAC,
                            Dest::Unknown,
                            ea.moving,
                        );
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The search

/// One switch on a packet's path, and the positions it may be at there.
#[derive(Debug, Clone)]
struct Visit {
    switch: usize,
    in_port: u32,
    positions: Vec<usize>,
    /// The packet as it entered, TTL and checksums zeroed.
    frame: Vec<u8>,
}

/// How one branch of a packet's trace ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    /// Output to a host port; the endpoints there (maybe none).
    Port {
        switch: usize,
        port: u32,
        frame: Vec<u8>,
    },
    /// A packet-in; `copy` when the switch also sent the packet on.
    Controller {
        copy: bool,
    },
    Dropped {
        switch: usize,
    },
    Loop,
}

impl<'a> Model<'a> {
    /// Whether position `p` of `sw` fits a visit at position `pe` of the switch of `earlier`,
    /// met before it: a switch only moves forward; what the earlier switch had started
    /// waited for `sw`; and a drained batch `sw` has started waited for every packet to have
    /// left that met the earlier switch before what it waits for was applied.
    fn fits_after(&self, earlier: &Visit, pe: usize, sw: usize, p: usize) -> bool {
        if earlier.switch == sw {
            return p >= pe;
        }
        self.switches[earlier.switch].needs[pe]
            .get(&sw)
            .is_none_or(|&min| p >= min)
            && self.switches[sw].drained[p]
                .get(&earlier.switch)
                .is_none_or(|&min| pe >= min)
    }

    /// An assignment of positions to the visits that the order allows, if there is one.
    fn assignment(&self, chain: &[Visit]) -> Option<Vec<usize>> {
        fn go(m: &Model<'_>, chain: &[Visit], chosen: &mut Vec<usize>) -> bool {
            let j = chosen.len();
            let Some(v) = chain.get(j) else {
                return true;
            };
            for &p in &v.positions {
                let ok = chain[..j]
                    .iter()
                    .zip(chosen.iter())
                    .all(|(e, &pe)| m.fits_after(e, pe, v.switch, p));
                if ok {
                    chosen.push(p);
                    if go(m, chain, chosen) {
                        return true;
                    }
                    chosen.pop();
                }
            }
            false
        }
        let mut chosen = Vec::with_capacity(chain.len());
        go(self, chain, &mut chosen).then_some(chosen)
    }

    /// A switch's position described for people.
    fn describe(&self, sw: usize, p: usize) -> String {
        let s = &self.switches[sw];
        let total = s.tables.len() - 1;
        if total == 0 {
            return format!("{}: not changed by the update", s.name);
        }
        let batch = s
            .batches
            .iter()
            .find(|&&(_, start, end)| p > start && p <= end)
            .or_else(|| s.batches.iter().find(|&&(_, start, _)| p == start));
        match batch {
            Some(&(b, start, end)) => {
                let phase = self.c.schedule.batches.get(b).map_or(0, |x| x.phase);
                format!(
                    "{}: {p} of its {total} flow mods applied (batch {b}, phase {phase}: {} of {})",
                    s.name,
                    p - start,
                    end - start
                )
            }
            None => format!("{}: {p} of its {total} flow mods applied", s.name),
        }
    }

    fn violation(
        &self,
        kind: ViolationKind,
        probe: &Probe,
        chain: &[Visit],
        at: &[usize],
    ) -> Failure {
        Failure::Violation(Box::new(Violation {
            kind,
            packet: probe.text.clone(),
            path: chain
                .iter()
                .map(|v| format!("{}:{}", self.switches[v.switch].name, v.in_port))
                .collect(),
            state: chain
                .iter()
                .zip(at)
                .map(|(v, &p)| self.describe(v.switch, p))
                .collect(),
        }))
    }

    /// Follows `frame` into `sw` at `in_port`, collecting the leaves, each with the chain of
    /// visits that led to it.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        when: When,
        chain: &mut Vec<Visit>,
        sw: usize,
        in_port: u32,
        frame: Vec<u8>,
        leaves: &mut Vec<(Leaf, Vec<Visit>)>,
        lookups: &mut u64,
    ) {
        // The same packet (TTL and checksums aside) into the same switch and port again, or
        // more hops than any path has: a loop.
        let seen = normalized(&frame);
        if chain.len() >= MAX_HOPS
            || chain
                .iter()
                .any(|v| v.switch == sw && v.in_port == in_port && v.frame == seen)
        {
            leaves.push((Leaf::Loop, chain.clone()));
            return;
        }
        let s = &self.switches[sw];
        let last = s.tables.len() - 1;
        let candidates: Vec<usize> = match when {
            When::Before => vec![0],
            When::After => vec![last],
            When::During => (0..=last)
                .filter(|&p| {
                    chain
                        .iter()
                        .all(|v| v.positions.iter().any(|&pe| self.fits_after(v, pe, sw, p)))
                })
                .collect(),
        };
        // Positions that behave alike are one branch.
        let mut groups: Vec<(Vec<Effect>, Vec<usize>)> = Vec::new();
        for p in candidates {
            *lookups += 1;
            let effects = s.tables[p].process(in_port, &frame);
            match groups.iter_mut().find(|(e, _)| *e == effects) {
                Some((_, ps)) => ps.push(p),
                None => groups.push((effects, vec![p])),
            }
        }
        for (effects, positions) in groups {
            chain.push(Visit {
                switch: sw,
                in_port,
                positions,
                frame: seen.clone(),
            });
            if effects.is_empty() {
                leaves.push((Leaf::Dropped { switch: sw }, chain.clone()));
            }
            let copy = effects.iter().any(|e| matches!(e, Effect::Output { .. }));
            for e in effects {
                match e {
                    Effect::PacketIn { .. } => {
                        leaves.push((Leaf::Controller { copy }, chain.clone()))
                    }
                    Effect::Output { port: out, frame } => {
                        let name = self.switches[sw].name.as_str();
                        match self
                            .c
                            .fabric
                            .peer(name, out)
                            .and_then(|(peer, pp)| Some((*self.index.get(peer)?, pp)))
                        {
                            Some((pi, pp)) => {
                                self.walk(when, chain, pi, pp, frame, leaves, lookups)
                            }
                            None => leaves.push((
                                Leaf::Port {
                                    switch: sw,
                                    port: out,
                                    frame,
                                },
                                chain.clone(),
                            )),
                        }
                    }
                }
            }
            chain.pop();
        }
    }

    fn check_probe(&self, probe: &Probe, report: &mut Report) -> Result<(), Failure> {
        let run = |when: When, report: &mut Report| {
            let mut leaves = Vec::new();
            self.walk(
                when,
                &mut Vec::new(),
                probe.at.0,
                probe.at.1,
                probe.frame.clone(),
                &mut leaves,
                &mut report.lookups,
            );
            leaves
        };
        let before = run(When::Before, report);
        let after = run(When::After, report);
        let during = run(When::During, report);
        let dropped = |l: &Leaf| matches!(l, Leaf::Dropped { .. } | Leaf::Loop) || self.lost(l);
        // An uninvolved packet dropped before or after the update (no route, say) may be
        // dropped in between too.
        let strict = !before.iter().chain(&after).any(|(l, _)| dropped(l));
        let mut lossy = false;
        for (leaf, chain) in &during {
            if let Some(kind) = self.judge(probe, leaf, strict) {
                if let Some(at) = self.assignment(chain) {
                    return Err(self.violation(kind, probe, chain, &at));
                }
            } else if probe.involved
                && !lossy
                && !matches!(leaf, Leaf::Controller { copy: true })
                && !self.arrives(probe, leaf)
                && self.assignment(chain).is_some()
            {
                lossy = true;
            }
        }
        if lossy {
            report.lossy += 1;
        }
        if probe.from_final {
            self.check_final(probe, &after)?;
        }
        Ok(())
    }

    /// Whether a leaf is where the probe should end once the update is done: its
    /// destination's final place (with the addresses it was sent with), or the controller for
    /// a probe addressed to it; a copy to the controller is neither.
    fn arrives(&self, probe: &Probe, leaf: &Leaf) -> bool {
        match (&probe.dest, leaf) {
            (
                Dest::Host(b),
                Leaf::Port {
                    switch,
                    port,
                    frame,
                },
            ) => {
                let e = &self.c.endpoints[*b];
                let sent = addresses_of(&probe.frame);
                (self.switches[*switch].name.as_str(), *port) == (e.at.0.as_str(), e.at.1)
                    && Ethernet::parse(frame).is_some_and(|x| x.dst == e.mac)
                    && sent.is_some()
                    && addresses_of(frame) == sent
            }
            (Dest::Host(_), _) => false,
            (_, Leaf::Controller { .. }) => true,
            _ => false,
        }
    }

    /// Whether a leaf is an output to a host port where nobody is.
    fn lost(&self, leaf: &Leaf) -> bool {
        match leaf {
            Leaf::Port { switch, port, .. } => self
                .receivers
                .get(&(*switch, *port))
                .is_none_or(|v| v.is_empty()),
            _ => false,
        }
    }

    /// What is wrong with a leaf, if anything. `strict`: the packet is delivered before and
    /// after, so an uninvolved one must be delivered in between too.
    fn judge(&self, probe: &Probe, leaf: &Leaf, strict: bool) -> Option<ViolationKind> {
        match leaf {
            Leaf::Loop => Some(ViolationKind::Loop),
            Leaf::Dropped { switch } if !probe.involved && strict => {
                Some(ViolationKind::UninvolvedDropped {
                    at: self.switches[*switch].name.clone(),
                })
            }
            Leaf::Port {
                switch,
                port,
                frame,
            } => {
                let eth = Ethernet::parse(frame)?;
                let receivers = self.receivers.get(&(*switch, *port));
                if receivers.is_none_or(|v| v.is_empty()) && !probe.involved && strict {
                    return Some(ViolationKind::UninvolvedDropped {
                        at: format!("{}:{port}", self.switches[*switch].name),
                    });
                }
                let (src, dst) = addresses_of(frame)?;
                for &r in receivers.into_iter().flatten() {
                    let e = &self.c.endpoints[r];
                    if self.c.care_of.contains(&src) || self.c.care_of.contains(&dst) {
                        return Some(ViolationKind::CareOfAtHost {
                            host: e.name.clone(),
                            src,
                            dst,
                        });
                    }
                    if eth.dst == e.mac && !addresses(e).any(|a| a == dst) {
                        return Some(ViolationKind::Misdelivered {
                            host: e.name.clone(),
                            dst,
                        });
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Once the update is done, a probe from a host at its final place arrives: at the
    /// endpoint it is addressed to (at its final place, with the addresses it was sent with),
    /// or at the controller (a gateway's address, an unknown one).
    fn check_final(&self, probe: &Probe, after: &[(Leaf, Vec<Visit>)]) -> Result<(), Failure> {
        let ok = after.iter().any(|(l, _)| self.arrives(probe, l));
        if ok {
            return Ok(());
        }
        let expected = match &probe.dest {
            Dest::Host(b) => {
                let e = &self.c.endpoints[*b];
                format!("{} at {}:{}", e.name, e.at.0, e.at.1)
            }
            _ => "the controller".to_string(),
        };
        let got = after
            .iter()
            .map(|(l, _)| self.leaf_text(l))
            .collect::<Vec<_>>()
            .join(", ");
        let chain = after.first().map(|(_, c)| c.clone()).unwrap_or_default();
        let at: Vec<usize> = chain.iter().map(|v| v.positions[0]).collect();
        Err(self.violation(
            ViolationKind::FinalUndelivered {
                expected,
                got: if got.is_empty() {
                    "it vanishes".into()
                } else {
                    format!("it ends: {got}")
                },
            },
            probe,
            &chain,
            &at,
        ))
    }

    fn leaf_text(&self, l: &Leaf) -> String {
        match l {
            Leaf::Port {
                switch,
                port,
                frame,
            } => {
                let s = &self.switches[*switch].name;
                let addrs = Ethernet::parse(frame)
                    .and_then(|e| {
                        let (src, dst) = addresses_of(frame)?;
                        Some(format!(" as {src} -> {dst} to {}", e.dst))
                    })
                    .unwrap_or_default();
                format!("out of {s}:{port}{addrs}")
            }
            Leaf::Controller { copy: true } => "a copy to the controller".into(),
            Leaf::Controller { copy: false } => "to the controller".into(),
            Leaf::Dropped { switch } => format!("dropped at {}", self.switches[*switch].name),
            Leaf::Loop => "in a loop".into(),
        }
    }
}

/// A frame with its TTL and checksums zeroed, to recognise the same packet on a second pass.
fn normalized(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let ethertype = f.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if ethertype == Some(ETH_IPV4) {
        for i in [14 + 8, 14 + 10, 14 + 11] {
            if let Some(b) = f.get_mut(i) {
                *b = 0;
            }
        }
    } else if ethertype == Some(ETH_IPV6) {
        // The hop limit (IPv6 has no header checksum; the transport checksum follows the
        // addresses, which a second pass compares anyway).
        if let Some(b) = f.get_mut(14 + 7) {
            *b = 0;
        }
    }
    f
}
