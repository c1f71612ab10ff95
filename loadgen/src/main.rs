//! `ofload`: a cbench-like load generator for OpenFlow 1.3 controllers.
//!
//! N emulated switches connect to a controller over real TCP and complete a real handshake
//! (HELLO, FEATURES_REPLY with the topology's datapath id, PORT_DESC, BARRIER), answer what
//! the controller sends afterwards (ECHO, BARRIER, ROLE, GET_CONFIG, GET_ASYNC, flow-stats
//! with an empty table, aggregate stats with flow_count 0, DESC; FLOW_MODs are accepted,
//! counted and otherwise ignored, except that the migration workload keeps the entries naming
//! its VMs to check against), and send PACKET_INs of one workload. Every response is checked
//! (type, output port, addresses); wrong ones are counted apart. See docs/loadgen.md.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use ofp13::{
    Action, AggregateStats, Body, Desc, ErrorMsg, FlowMod, Instruction, MacAddr, Match, Message,
    MultipartReply, MultipartReplyBody, MultipartRequestBody, Oxm, PacketIn, PacketOut, Port,
    SwitchConfig, SwitchFeatures, MAX_MESSAGE_LEN, NO_BUFFER,
};
use servswitch::fabric::plan::{self, FastMap, GATEWAY_MAC};
use servswitch::packet::{self, Arp, Ethernet};
// A flow entry's identity (table, priority, match in canonical order), as the controller's
// reconciliation keys them.
use servswitch::fabric::topology::Topology;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How long servswitch holds packets for an unresolved address (router.rs `HOLD_FOR`, 3 s)
/// plus a margin: an address is asked for again only after this long.
const UNRESOLVED_REUSE: Duration = Duration::from_millis(3200);
/// Bytes of requests made but not yet taken by the socket, beyond which no more are made.
const UNSENT_MAX: usize = 64 * 1024;
/// The controller counts as done with what it was sending after this long without a message.
const QUIET: Duration = Duration::from_millis(100);
/// Latency histogram: 1 µs buckets below this many µs, then 1 ms buckets up to 60 s.
const HIST_US: usize = 1 << 16;
const HIST_LEN: usize = HIST_US + 60_000;

fn bucket(us: u64) -> usize {
    if (us as usize) < HIST_US {
        us as usize
    } else {
        HIST_US + ((us / 1000) as usize).min(HIST_LEN - HIST_US - 1)
    }
}

fn bucket_us(i: usize) -> u64 {
    if i < HIST_US {
        i as u64
    } else {
        (i - HIST_US) as u64 * 1000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// ARP request for the gateway -> PACKET_OUT with the ARP reply (gateway MAC) to the port.
    Arp,
    /// IPv4 to an unknown address of the subnet -> PACKET_OUT with the gateway's ARP request
    /// out of every host port.
    Unresolved,
    /// First packet of a new host to a host of another rack -> its 3 host FLOW_MODs.
    Newflow,
    /// RARP of a known VM at a new port (foreign rack, then home again) -> on the switch that
    /// sent the RARP, a flow entry that delivers the VM out of that port (installed after the
    /// RARP: the switch's table had none at some point since), then a BARRIER_REQUEST.
    Migration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `--window` requests in flight per switch.
    Throughput,
    /// One request in flight per switch.
    Latency,
}

/// A cbench-like OpenFlow 1.3 load generator that checks every response.
#[derive(Parser, Debug)]
#[command(name = "ofload", version)]
struct Args {
    /// The controller's OpenFlow address.
    #[arg(long, default_value = "127.0.0.1:6653")]
    controller: String,
    /// The topology file (the controller's TOML): datapath ids, subnets, gateways, hosts.
    #[arg(long)]
    topology: PathBuf,
    /// How many switches send load: the first N switches (by dpid) owning a subnet and hosts.
    #[arg(long, default_value_t = 16)]
    switches: usize,
    #[arg(long, value_enum, default_value_t = Workload::Arp)]
    workload: Workload,
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Requests in flight per switch in throughput mode; 0: unbounded (as many as the
    /// socket takes, cbench's throughput mode).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before measuring starts (after every switch is up).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Worker threads of the generator (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A request unanswered this long is counted as timed out and its slot freed.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Also connect every other switch of the topology (idle: they only answer). Always on
    /// for `migration`, whose flow mods go to other switches too.
    #[arg(long)]
    all_switches: bool,
    /// Free host ports added to each switch after its highest configured port (for new
    /// hosts and migrated VMs); 0: as many as the largest rack has hosts (at least 4).
    #[arg(long, default_value_t = 0)]
    spare_ports: u32,
}

/// A configured host at a loaded switch.
#[derive(Debug, Clone)]
struct Host {
    mac: MacAddr,
    ip: Ipv4Addr,
    port: u32,
    gateway: Ipv4Addr,
}

/// A VM of the migration workload: home and foreign place.
#[derive(Debug, Clone)]
struct Vm {
    mac: MacAddr,
    ips: Vec<Ipv4Addr>,
    home: (usize, u32),
    foreign: (usize, u32),
}

const HOME_IDLE: u8 = 0;
const MOVING_AWAY: u8 = 1;
const AWAY_IDLE: u8 = 2;
const MOVING_HOME: u8 = 3;

/// One emulated switch as the topology describes it.
#[derive(Debug, Clone)]
struct SwInfo {
    idx: usize,
    name: String,
    dpid: u64,
    nports: u32,
    /// Ports that are not links: where the controller floods an ARP request.
    host_ports: Vec<u32>,
    hosts: Vec<Host>,
    /// (prefix address, mask, gateway) of the switch's first subnet.
    subnet: Option<(u32, u32, Ipv4Addr)>,
    spare_first: u32,
    loaded: bool,
}

struct Ctx {
    addr: SocketAddr,
    workload: Workload,
    window: usize,
    timeout: Duration,
    /// Every switch is up: requests may be sent.
    go: AtomicBool,
    measuring: AtomicBool,
    /// The measured period is over: no new requests; those in flight are answered or time out.
    draining: AtomicBool,
    /// Switches with nothing in flight while draining.
    drained: AtomicUsize,
    /// When any switch last received a message (µs since `t0`): the run ends when the
    /// controller has gone quiet, not in the middle of what it is sending.
    last_rx_us: AtomicU64,
    t0: Instant,
    stop: AtomicBool,
    up: AtomicUsize,
    switches: Vec<SwInfo>,
    vms: Vec<Vm>,
    vm_state: Vec<AtomicU8>,
    /// A host of another rack, per loaded switch (newflow's destination).
    far_host: HashMap<usize, Ipv4Addr>,
    /// Per switch: wakes its task when a VM it may move next became free (migration).
    wake: Vec<tokio::sync::Notify>,
}

impl Ctx {
    /// How long no switch has received anything.
    fn quiet_for(&self) -> Duration {
        let last = self.t0 + Duration::from_micros(self.last_rx_us.load(Relaxed));
        last.elapsed()
    }

    /// Sets VM `k`'s state and wakes both switches that may move it next.
    fn vm_done(&self, k: usize, state: u8) {
        if let (Some(s), Some(vm)) = (self.vm_state.get(k), self.vms.get(k)) {
            s.store(state, Relaxed);
            for i in [vm.home.0, vm.foreign.0] {
                if let Some(w) = self.wake.get(i) {
                    w.notify_one();
                }
            }
        }
    }
}

/// Counters of one switch; merged at the end.
#[derive(Default)]
struct Stats {
    sent: u64,
    ok: u64,
    wrong: u64,
    timeouts: u64,
    flow_mods: u64,
    barriers: u64,
    stats_requests: u64,
    other: u64,
    hist: Vec<u64>,
    max_us: u64,
    /// When the last checked response of the measured period arrived.
    last_ok: Option<Instant>,
    first_wrong: Option<String>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: vec![0; HIST_LEN],
            ..Stats::default()
        }
    }
    fn merge(&mut self, o: &Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.wrong += o.wrong;
        self.timeouts += o.timeouts;
        self.flow_mods += o.flow_mods;
        self.barriers += o.barriers;
        self.stats_requests += o.stats_requests;
        self.other += o.other;
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            *a += b;
        }
        self.max_us = self.max_us.max(o.max_us);
        self.last_ok = self.last_ok.max(o.last_ok);
        if self.first_wrong.is_none() {
            self.first_wrong.clone_from(&o.first_wrong);
        }
    }
    fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, n) in self.hist.iter().enumerate() {
            acc += n;
            if acc >= want {
                return bucket_us(i);
            }
        }
        self.max_us
    }
}

fn ip_u32(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

fn load_switches(topo: &Topology, n: usize, spare: u32) -> Result<Vec<SwInfo>> {
    let mut maxport: HashMap<&str, u32> = HashMap::new();
    let mut links: HashMap<&str, HashSet<u32>> = HashMap::new();
    for l in &topo.links {
        for e in [&l.a, &l.b] {
            let m = maxport.entry(e.switch.as_str()).or_default();
            *m = (*m).max(e.port);
            links.entry(e.switch.as_str()).or_default().insert(e.port);
        }
    }
    for h in &topo.hosts {
        let m = maxport.entry(h.at.switch.as_str()).or_default();
        *m = (*m).max(h.at.port);
    }
    let largest_rack = topo
        .switches
        .iter()
        .map(|s| topo.hosts.iter().filter(|h| h.at.switch == s.name).count())
        .max()
        .unwrap_or(0) as u32;
    let spare = if spare == 0 {
        largest_rack.max(4)
    } else {
        spare
    };
    let mut sws: Vec<_> = topo.switches.iter().collect();
    sws.sort_by_key(|s| s.dpid.0);
    let mut out = Vec::new();
    let mut loaded = 0;
    for s in sws {
        let name = s.name.as_str();
        let sub = topo.subnets.iter().find(|x| x.switch == name);
        let mut hosts = Vec::new();
        for h in topo.hosts.iter().filter(|h| h.at.switch == name) {
            for ip in h.addresses() {
                if let Some(sn) = topo
                    .subnets
                    .iter()
                    .find(|x| x.switch == name && x.prefix.contains(ip))
                {
                    hosts.push(Host {
                        mac: h.mac,
                        ip,
                        port: h.at.port,
                        gateway: sn.gateway,
                    });
                }
            }
        }
        let max = maxport.get(name).copied().unwrap_or(0);
        let nports = max + spare;
        let lp = links.get(name).cloned().unwrap_or_default();
        let is_loaded = loaded < n && sub.is_some() && !hosts.is_empty();
        if is_loaded {
            loaded += 1;
        }
        out.push(SwInfo {
            idx: out.len(),
            name: name.to_string(),
            dpid: s.dpid.0,
            nports,
            host_ports: (1..=nports).filter(|p| !lp.contains(p)).collect(),
            hosts,
            subnet: sub.map(|x| (ip_u32(x.prefix.addr), x.prefix.mask(), x.gateway)),
            spare_first: max + 1,
            loaded: is_loaded,
        });
    }
    if loaded < n {
        bail!("the topology has only {loaded} switches with a subnet and hosts; --switches {n} asked for more");
    }
    Ok(out)
}

fn packet_in(in_port: u32, frame: Vec<u8>) -> Vec<u8> {
    Message::new(
        0,
        Body::PacketIn(PacketIn {
            buffer_id: NO_BUFFER,
            total_len: frame.len() as u16,
            reason: ofp13::OFPR_NO_MATCH,
            table_id: 0,
            cookie: 0,
            match_: Match::new(vec![Oxm::InPort(in_port, None)]),
            data: Bytes::from(frame),
        }),
    )
    .to_bytes()
}

/// Free addresses of a switch's subnet: not the network, broadcast, gateway or a configured
/// host.
fn free_addresses(sw: &SwInfo, topo_ips: &HashSet<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let Some((net, mask, gw)) = sw.subnet else {
        return Vec::new();
    };
    let size = (!mask).saturating_add(1);
    (1..size.saturating_sub(1))
        .map(|i| Ipv4Addr::from(net + i))
        .filter(|ip| *ip != gw && !topo_ips.contains(ip))
        .collect()
}

/// What a switch sends; keys identify requests in flight.
enum Gen {
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
struct Move {
    /// The VM's port here.
    port: u32,
    /// This switch is the VM's home (the move is back home).
    home: bool,
    /// Since the RARP was sent, an entry delivering the VM at `port` was installed (added or
    /// changed), or the table had none at some point: one that delivers it from now on was
    /// installed for this move (not left over from the VM's previous stay here, such as the
    /// delivery of its previous care-of address, which servswitch removes only after a drain).
    armed: bool,
}

/// One modelled flow entry.
#[derive(Debug, Clone)]
struct Entry {
    vm: usize,
    cookie: u64,
    fields: Vec<Oxm>,
    /// The ports its actions output to.
    outputs: Vec<u32>,
}

/// The entries of one emulated switch's table that name a VM of the migration workload (by
/// its MAC or one of its addresses, in the match or in a set-field action), kept as an
/// OpenFlow 1.3 switch applies FLOW_MODs: ADD replaces an identical entry, MODIFY changes
/// instructions, DELETE_STRICT removes exactly one entry, DELETE every entry it covers.
#[derive(Debug, Default)]
struct VmTable {
    entries: HashMap<plan::Key, Entry>,
}

const TABLE_ALL: u8 = 0xff;

impl VmTable {
    /// Whether an entry delivers VM `vm` out of `port`.
    fn delivers(&self, vm: usize, port: u32) -> bool {
        self.entries
            .values()
            .any(|e| e.vm == vm && e.outputs.contains(&port))
    }

    /// Whether a non-strict FLOW_MOD (its table, cookie and match) covers entry `e`.
    fn covers(fm: &FlowMod, key: &plan::Key, e: &Entry) -> bool {
        (fm.table_id == TABLE_ALL || fm.table_id == key.0)
            && (e.cookie & fm.cookie_mask) == (fm.cookie & fm.cookie_mask)
            && fm.match_.fields.iter().all(|f| e.fields.contains(f))
    }

    /// Whether a delete's out_port filter lets it remove `e`.
    fn out_port_allows(fm: &FlowMod, e: &Entry) -> bool {
        fm.out_port == ofp13::port::ANY || e.outputs.contains(&fm.out_port)
    }

    /// Applies a FLOW_MOD that names `named` (a VM of this switch, if any); returns the VMs
    /// whose entries changed.
    fn apply(&mut self, fm: &FlowMod, named: Option<usize>) -> Vec<usize> {
        let mut changed = Vec::new();
        let key = plan::key(fm.table_id, fm.priority, &fm.match_);
        match fm.command {
            ofp13::OFPFC_ADD => {
                let old = match named {
                    Some(vm) => {
                        changed.push(vm);
                        self.entries.insert(
                            key,
                            Entry {
                                vm,
                                cookie: fm.cookie,
                                fields: fm.match_.fields.clone(),
                                outputs: instruction_outputs(&fm.instructions),
                            },
                        )
                    }
                    // Replaced by an entry that names none of them.
                    None => self.entries.remove(&key),
                };
                changed.extend(old.map(|e| e.vm));
            }
            ofp13::OFPFC_MODIFY_STRICT => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.outputs = instruction_outputs(&fm.instructions);
                    changed.push(e.vm);
                }
            }
            ofp13::OFPFC_MODIFY => {
                for (k, e) in self.entries.iter_mut() {
                    if fm.table_id == k.0 && Self::covers(fm, k, e) {
                        e.outputs = instruction_outputs(&fm.instructions);
                        changed.push(e.vm);
                    }
                }
            }
            ofp13::OFPFC_DELETE_STRICT
                if self
                    .entries
                    .get(&key)
                    .is_some_and(|e| Self::out_port_allows(fm, e)) =>
            {
                changed.extend(self.entries.remove(&key).map(|e| e.vm));
            }
            ofp13::OFPFC_DELETE => {
                self.entries.retain(|k, e| {
                    let gone = Self::covers(fm, k, e) && Self::out_port_allows(fm, e);
                    if gone {
                        changed.push(e.vm);
                    }
                    !gone
                });
            }
            _ => {}
        }
        changed
    }
}

/// The output ports of a flow entry's actions.
fn instruction_outputs(instructions: &[Instruction]) -> Vec<u32> {
    let mut v = Vec::new();
    for ins in instructions {
        if let Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } = ins {
            for a in actions {
                if let Action::Output { port, .. } = a {
                    v.push(*port);
                }
            }
        }
    }
    v
}

fn new_host_mac(dpid: u64, i: usize) -> MacAddr {
    let d = dpid.to_be_bytes();
    let i = (i as u32).to_be_bytes();
    MacAddr([0x0e, d[6], d[7], i[1], i[2], i[3]])
}

fn make_gen(ctx: &Ctx, sw: &SwInfo, topo_ips: &HashSet<Ipv4Addr>) -> Gen {
    if !sw.loaded {
        return Gen::Idle;
    }
    match ctx.workload {
        Workload::Arp => Gen::Arp {
            pins: sw
                .hosts
                .iter()
                .map(|h| {
                    let f = Arp {
                        op: packet::ARP_REQUEST,
                        sha: h.mac,
                        spa: h.ip,
                        tha: MacAddr::ZERO,
                        tpa: h.gateway,
                    }
                    .frame(MacAddr::BROADCAST, h.mac, packet::ETH_ARP);
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
    fn next(&mut self, ctx: &Ctx, sw: &SwInfo, now: Instant) -> Option<(usize, Cow<'_, [u8]>)> {
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

/// The switch's answers to what the controller sends (other than the workload's responses).
fn answer(sw: &SwInfo, m: &Message, st: &mut Stats, out: &mut Vec<u8>) {
    let reply = |body| Message::new(m.xid, body);
    let r = match &m.body {
        Body::EchoRequest(d) => Some(reply(Body::EchoReply(d.clone()))),
        Body::FeaturesRequest => Some(reply(Body::FeaturesReply(SwitchFeatures {
            datapath_id: sw.dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
            reserved: 0,
        }))),
        Body::GetConfigRequest => Some(reply(Body::GetConfigReply(SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        }))),
        Body::BarrierRequest => {
            st.barriers += 1;
            Some(reply(Body::BarrierReply))
        }
        Body::RoleRequest(r) => Some(reply(Body::RoleReply(*r))),
        Body::GetAsyncRequest => Some(reply(Body::GetAsyncReply(
            servswitch::emu::switch::DEFAULT_ASYNC,
        ))),
        Body::MultipartRequest(req) => {
            let body = match &req.body {
                MultipartRequestBody::PortDesc => Some(MultipartReplyBody::PortDesc(
                    (1..=sw.nports)
                        .map(|p| servswitch::emu::switch::port(sw.dpid, p))
                        .collect::<Vec<Port>>(),
                )),
                MultipartRequestBody::Flow(_) => {
                    st.stats_requests += 1;
                    Some(MultipartReplyBody::Flow(Vec::new()))
                }
                MultipartRequestBody::Aggregate(_) => {
                    st.stats_requests += 1;
                    Some(MultipartReplyBody::Aggregate(AggregateStats {
                        packet_count: 0,
                        byte_count: 0,
                        flow_count: 0,
                    }))
                }
                MultipartRequestBody::Desc => Some(MultipartReplyBody::Desc(Box::new(Desc {
                    mfr_desc: "ofload".into(),
                    hw_desc: "emulated switch".into(),
                    sw_desc: env!("CARGO_PKG_VERSION").into(),
                    serial_num: format!("{:016x}", sw.dpid),
                    dp_desc: sw.name.clone(),
                }))),
                _ => None,
            };
            Some(match body {
                Some(body) => reply(Body::MultipartReply(MultipartReply { flags: 0, body })),
                None => {
                    let bytes = m.to_bytes();
                    let data = Bytes::copy_from_slice(bytes.get(..64).unwrap_or(&bytes));
                    reply(Body::Error(ErrorMsg::new(1, 2, data)))
                }
            })
        }
        Body::FlowMod(_) | Body::GroupMod(_) | Body::MeterMod(_) => {
            st.flow_mods += 1;
            None
        }
        Body::Hello(_) | Body::SetConfig(_) | Body::SetAsync(_) | Body::PacketOut(_) => None,
        _ => {
            st.other += 1;
            None
        }
    };
    if let Some(r) = r {
        r.emit(out);
    }
}

/// The output ports of a PACKET_OUT, in order.
/// The asking host's index when `frame` is a PACKET_OUT that answers it exactly as the
/// `arp` check requires (read straight from the wire: ofp_packet_out, one 16-byte output
/// action to the host's port, then the Ethernet/ARP reply). None: let the full check decide.
fn good_arp_reply(sw: &SwInfo, by_ip: &FastMap<Ipv4Addr, usize>, frame: &[u8]) -> Option<usize> {
    const OFPT_PACKET_OUT: u8 = 13;
    const HEAD: usize = 8 + 16; // ofp_header, buffer_id, in_port, actions_len, pad
    if frame.get(1) != Some(&OFPT_PACKET_OUT) {
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
fn arp_in(frame: &[u8]) -> Option<(MacAddr, MacAddr, Arp)> {
    let eth = Ethernet::parse(frame)?;
    if eth.ethertype != packet::ETH_ARP {
        return None;
    }
    Some((eth.dst, eth.src, Arp::parse(eth.payload)?))
}

/// Whether an ARP frame sent out of `ports` is the gateway's reply to host `h`, as the `arp`
/// workload requires.
fn answers_host(h: &Host, edst: MacAddr, esrc: MacAddr, a: &Arp, ports: &[u32]) -> bool {
    a.op == packet::ARP_REPLY
        && a.sha == GATEWAY_MAC
        && a.spa == h.gateway
        && a.tha == h.mac
        && edst == h.mac
        && esrc == GATEWAY_MAC
        && ports == [h.port]
}

fn outputs(po: &PacketOut) -> Vec<u32> {
    po.actions
        .iter()
        .filter_map(|a| match a {
            Action::Output { port, .. } => Some(*port),
            _ => None,
        })
        .collect()
}

/// Addresses and ports a FLOW_MOD mentions: (MACs, IPv4 addresses, ports).
fn mentions(fm: &FlowMod) -> (Vec<MacAddr>, Vec<Ipv4Addr>, Vec<u32>) {
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
struct InFlight(VecDeque<(usize, Instant)>);

impl InFlight {
    fn take(&mut self, key: usize) -> Option<Instant> {
        let i = self.0.iter().position(|(k, _)| *k == key)?;
        self.0.remove(i).map(|(_, t)| t)
    }
}

fn record(ctx: &Ctx, st: &mut Stats, sent: Instant, now: Instant) {
    if !ctx.measuring.load(Relaxed) {
        return;
    }
    st.ok += 1;
    st.last_ok = Some(now);
    let us = now.duration_since(sent).as_micros() as u64;
    st.max_us = st.max_us.max(us);
    if let Some(b) = st.hist.get_mut(bucket(us)) {
        *b += 1;
    }
}

fn wrong(ctx: &Ctx, st: &mut Stats, why: impl FnOnce() -> String) {
    if ctx.measuring.load(Relaxed) {
        st.wrong += 1;
    }
    if st.first_wrong.is_none() {
        st.first_wrong = Some(why());
    }
}

/// Checks one message against the workload; returns false if it is not a workload response.
fn check(
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

async fn switch(ctx: Arc<Ctx>, idx: usize, mut gen: Gen) -> Result<Stats> {
    let sw = ctx.switches.get(idx).context("switch index")?;
    let mut st = Stats::new();
    let sock = TcpStream::connect(ctx.addr)
        .await
        .with_context(|| format!("connecting to {}", ctx.addr))?;
    sock.set_nodelay(true)?;
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = Vec::with_capacity(64 * 1024);
    // How much of wbuf the socket has taken.
    let mut woff = 0;
    Message::new(1, Body::Hello(ofp13::Hello::of13())).emit(&mut wbuf);
    let mut fl = InFlight(VecDeque::with_capacity(ctx.window.min(4096)));
    let (mut port_desc_done, mut up) = (false, false);
    let mut features_at: Option<Instant> = None;
    let mut drained = false;
    // Wakes the loop at least every 20 ms (time-outs, start, drain) with one timer, not a
    // new timer per turn.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !ctx.stop.load(Relaxed) {
        let now = Instant::now();
        // servswitch ends its handshake with PORT_DESC and a BARRIER; a controller that
        // sends no barrier (os-ken) is taken as up 300 ms after the FEATURES_REPLY.
        if !up && features_at.is_some_and(|t| now.duration_since(t) > Duration::from_millis(300)) {
            up = true;
            ctx.up.fetch_add(1, Relaxed);
        }
        if up {
            while let Some((_, t)) = fl.0.front() {
                if now.duration_since(*t) < ctx.timeout {
                    break;
                }
                if let Some((k, _)) = fl.0.pop_front() {
                    if ctx.measuring.load(Relaxed) || ctx.draining.load(Relaxed) {
                        st.timeouts += 1;
                    }
                    // A migration that timed out is taken as done (it may still complete).
                    if let Some(s) = ctx.vm_state.get(k) {
                        let v = s.load(Relaxed);
                        if v == MOVING_AWAY || v == MOVING_HOME {
                            ctx.vm_done(
                                k,
                                if v == MOVING_AWAY {
                                    AWAY_IDLE
                                } else {
                                    HOME_IDLE
                                },
                            );
                        }
                    }
                }
            }
            let sending = ctx.go.load(Relaxed) && !ctx.draining.load(Relaxed);
            // Unbounded (window 0): requests are made while the socket takes them, so
            // what is in flight is bounded by the kernel's buffers, as in cbench.
            while sending && fl.0.len() < ctx.window && wbuf.len() - woff < UNSENT_MAX {
                let Some((k, bytes)) = gen.next(&ctx, sw, now) else {
                    break;
                };
                wbuf.extend_from_slice(&bytes);
                fl.0.push_back((k, now));
                if ctx.measuring.load(Relaxed) {
                    st.sent += 1;
                }
            }
        }
        // Write what the socket takes now; the rest waits until it is writable, and reading
        // goes on meanwhile (neither side can wedge the other with full buffers).
        while woff < wbuf.len() {
            match sock.try_write(wbuf.get(woff..).unwrap_or_default()) {
                Ok(n) => woff += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if woff == wbuf.len() {
            wbuf.clear();
            woff = 0;
        }
        if !drained && fl.0.is_empty() && ctx.draining.load(Relaxed) {
            drained = true;
            ctx.drained.fetch_add(1, Relaxed);
        }
        let wake = ctx.wake.get(idx).context("wake")?;
        let interest = if woff < wbuf.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let n = tokio::select! {
            r = sock.ready(interest) => {
                if !r?.is_readable() {
                    continue; // writable: the top of the loop writes
                }
                rbuf.reserve(64 * 1024);
                match sock.try_read_buf(&mut rbuf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            _ = wake.notified(), if ctx.workload == Workload::Migration => continue,
            _ = tick.tick() => continue,
        };
        if n == 0 {
            if ctx.stop.load(Relaxed) {
                break;
            }
            bail!("{}: the controller closed the connection", sw.name);
        }
        let now = Instant::now();
        ctx.last_rx_us
            .store(now.duration_since(ctx.t0).as_micros() as u64, Relaxed);
        while let Some(frame) = ofp13::message::split_frame(&mut rbuf, MAX_MESSAGE_LEN)? {
            // The ARP workload's answers are checked on the wire bytes, without decoding
            // them into messages; anything not plainly right takes the full check below.
            if let Gen::Arp { by_ip, .. } = &gen {
                if let Some(k) = good_arp_reply(sw, by_ip, &frame) {
                    match fl.take(k) {
                        Some(t) => record(&ctx, &mut st, t, now),
                        None => wrong(&ctx, &mut st, || {
                            format!("unsolicited ARP reply to host {k}")
                        }),
                    }
                    continue;
                }
            }
            let m = Message::parse(&frame)?;
            if matches!(&m.body, Body::MultipartRequest(r) if matches!(r.body, MultipartRequestBody::PortDesc))
            {
                port_desc_done = true;
            }
            if matches!(m.body, Body::FeaturesRequest) && features_at.is_none() {
                features_at = Some(now);
            }
            if !up && port_desc_done && matches!(m.body, Body::BarrierRequest) {
                up = true;
                ctx.up.fetch_add(1, Relaxed);
            }
            answer(sw, &m, &mut st, &mut wbuf);
            check(&ctx, sw, &mut gen, &mut fl, &m, &mut st, now);
        }
    }
    Ok(st)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let topo = Topology::load(&args.topology)
        .with_context(|| format!("loading {}", args.topology.display()))?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&args.controller)?
        .next()
        .context("controller address")?;
    let switches = load_switches(&topo, args.switches, args.spare_ports)?;
    let topo_ips: HashSet<Ipv4Addr> = topo.hosts.iter().flat_map(|h| h.addresses()).collect();
    let loaded: Vec<usize> = switches
        .iter()
        .filter(|s| s.loaded)
        .map(|s| s.idx)
        .collect();
    let mut vms = Vec::new();
    if args.workload == Workload::Migration {
        let n = loaded.len();
        if n < 2 {
            bail!("migration needs at least 2 loaded switches");
        }
        for (i, &s) in loaded.iter().enumerate() {
            let f = *loaded.get((i + n / 2) % n).context("foreign")?;
            let sw = switches.get(s).context("switch")?;
            let fsw = switches.get(f).context("switch")?;
            let mut seen = HashSet::new();
            for h in &sw.hosts {
                if !seen.insert(h.mac) {
                    continue;
                }
                let k = seen.len() as u32 - 1;
                if fsw.spare_first + k > fsw.nports {
                    break;
                }
                let ips = sw
                    .hosts
                    .iter()
                    .filter(|x| x.mac == h.mac)
                    .map(|x| x.ip)
                    .collect();
                vms.push(Vm {
                    mac: h.mac,
                    ips,
                    home: (s, h.port),
                    foreign: (f, fsw.spare_first + k),
                });
            }
        }
    }
    let mut far_host = HashMap::new();
    for (i, &s) in loaded.iter().enumerate() {
        let other = *loaded.get((i + 1) % loaded.len()).context("rack")?;
        if let Some(h) = switches.get(other).and_then(|x| x.hosts.first()) {
            if other != s {
                far_host.insert(s, h.ip);
            }
        }
    }
    let window = match args.mode {
        Mode::Throughput if args.window == 0 => usize::MAX,
        Mode::Throughput => args.window,
        Mode::Latency => 1,
    };
    let connect_all = args.all_switches || args.workload == Workload::Migration;
    let ctx = Arc::new(Ctx {
        addr,
        workload: args.workload,
        window,
        timeout: Duration::from_millis(args.timeout_ms),
        go: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        drained: AtomicUsize::new(0),
        last_rx_us: AtomicU64::new(0),
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        up: AtomicUsize::new(0),
        vm_state: vms.iter().map(|_| AtomicU8::new(HOME_IDLE)).collect(),
        vms,
        wake: switches
            .iter()
            .map(|_| tokio::sync::Notify::new())
            .collect(),
        switches,
        far_host,
    });
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let stats = rt.block_on(async {
        let mut tasks = Vec::new();
        for sw in ctx.switches.iter().filter(|s| s.loaded || connect_all) {
            let gen = make_gen(&ctx, sw, &topo_ips);
            tasks.push(tokio::spawn(switch(ctx.clone(), sw.idx, gen)));
        }
        let total = tasks.len();
        let t0 = Instant::now();
        while ctx.up.load(Relaxed) < total {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!(
                    "only {} of {total} switches came up in 20 s",
                    ctx.up.load(Relaxed)
                );
            }
            if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
                let _ = t;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Load starts when every switch is up (a migration's flow mods go to other switches)
        // and the controller has installed their tables (it has sent nothing for a while): a
        // migration's check needs the switch's entries from before the RARP (an initial
        // table computed before a move but arriving after the next RARP would otherwise look
        // like that move's entries).
        let settle = Instant::now() + Duration::from_secs(2);
        while Instant::now() < settle && ctx.quiet_for() < QUIET {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ctx.go.store(true, Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
        ctx.measuring.store(true, Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        ctx.draining.store(true, Relaxed);
        ctx.measuring.store(false, Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        // Drain: what is in flight is answered (or times out, counted), then the controller
        // finishes what it was sending (a migration's second step, its barriers) before the
        // switches disconnect, so a run never ends in the middle of the controller's work.
        let give_up = Instant::now() + ctx.timeout + Duration::from_secs(2);
        while Instant::now() < give_up {
            if ctx.drained.load(Relaxed) >= total && ctx.quiet_for() >= QUIET {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ctx.stop.store(true, Relaxed);
        let mut all = Stats::new();
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(2), t).await {
                Ok(Ok(Ok(s))) => all.merge(&s),
                Ok(Ok(Err(e))) => bail!("switch failed: {e:#}"),
                Ok(Err(e)) => bail!("switch task: {e}"),
                Err(_) => bail!("a switch did not stop"),
            }
        }
        // newflow runs out of new addresses: its rate is over the time it had work.
        let elapsed = match (args.workload, all.last_ok) {
            (Workload::Newflow, Some(t)) => t.duration_since(start).as_secs_f64().min(elapsed),
            _ => elapsed,
        };
        Ok((all, elapsed, total))
    })?;
    let (st, elapsed, total) = stats;
    let rate = st.ok as f64 / elapsed;
    println!(
        "ofload: workload {:?}, {:?} mode ({} in flight per switch), {} loaded switches ({} connected), {:.1} s measured after {:.1} s warm-up, controller {}",
        args.workload,
        args.mode,
        if window == usize::MAX { "unbounded".to_string() } else { window.to_string() },
        loaded.len(),
        total,
        elapsed,
        args.warmup,
        addr
    );
    println!(
        "checked responses: {} ({:.0}/s); wrong {}; timed out {}; requests sent {}",
        st.ok, rate, st.wrong, st.timeouts, st.sent
    );
    println!(
        "latency: p50 {} us, p99 {} us, max {} us",
        st.percentile(0.5),
        st.percentile(0.99),
        st.max_us
    );
    println!(
        "also received (whole run): {} flow/group/meter mods, {} barriers, {} flow/aggregate stats requests, {} other",
        st.flow_mods, st.barriers, st.stats_requests, st.other
    );
    if let Some(w) = &st.first_wrong {
        println!("first wrong response: {w}");
    }
    println!(
        "RESULT workload={:?} mode={:?} switches={} responses_per_s={:.0} p50_us={} p99_us={} wrong={} timeouts={}",
        args.workload,
        args.mode,
        loaded.len(),
        rate,
        st.percentile(0.5),
        st.percentile(0.99),
        st.wrong,
        st.timeouts
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM_MAC: MacAddr = MacAddr([2, 0, 0, 1, 0, 0]);
    const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);

    fn sw_info(idx: usize, name: &str) -> SwInfo {
        SwInfo {
            idx,
            name: name.into(),
            dpid: idx as u64 + 1,
            nports: 8,
            // Ports 1 and 2 are links.
            host_ports: (3..=8).collect(),
            hosts: Vec::new(),
            subnet: None,
            spare_first: 5,
            loaded: true,
        }
    }

    #[test]
    fn the_wire_check_of_arp_replies_takes_only_exact_answers() {
        let host = Host {
            ip: Ipv4Addr::new(10, 0, 1, 5),
            mac: MacAddr([2, 0, 0, 1, 0, 5]),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            port: 4,
        };
        let mut sw = sw_info(0, "t1");
        sw.hosts.push(host.clone());
        let by_ip: FastMap<Ipv4Addr, usize> = [(host.ip, 0)].into_iter().collect();
        let reply = |port: u32, sha: MacAddr, extra: Option<Action>| {
            let frame = Arp {
                op: packet::ARP_REPLY,
                sha,
                spa: host.gateway,
                tha: host.mac,
                tpa: host.ip,
            }
            .frame(host.mac, sha, packet::ETH_ARP);
            let mut actions = vec![Action::output(port)];
            actions.extend(extra);
            let mut out = Vec::new();
            Message::new(
                7,
                Body::PacketOut(PacketOut {
                    buffer_id: ofp13::NO_BUFFER,
                    in_port: ofp13::port::CONTROLLER,
                    actions,
                    data: Bytes::from(frame),
                }),
            )
            .emit(&mut out);
            out
        };
        assert_eq!(
            good_arp_reply(&sw, &by_ip, &reply(4, GATEWAY_MAC, None)),
            Some(0)
        );
        // Wrong port, wrong sender: not taken (the full check then counts them wrong).
        assert_eq!(
            good_arp_reply(&sw, &by_ip, &reply(3, GATEWAY_MAC, None)),
            None
        );
        let other = MacAddr([2, 0, 0, 9, 9, 9]);
        assert_eq!(good_arp_reply(&sw, &by_ip, &reply(4, other, None)), None);
        // A second action: left to the full check, which reads every action.
        let two = reply(4, GATEWAY_MAC, Some(Action::output(5)));
        assert_eq!(good_arp_reply(&sw, &by_ip, &two), None);
        // Cut short anywhere before the end of the ARP body: never a panic, never taken
        // (the Ethernet padding after it carries nothing).
        let good = reply(4, GATEWAY_MAC, None);
        for n in 0..24 + 16 + 14 + 28 {
            assert_eq!(good_arp_reply(&sw, &by_ip, good.get(..n).unwrap()), None);
        }
    }

    /// Two switches; one VM at home at port 3 of t1, moving to port 5 of t2.
    fn ctx() -> Ctx {
        let switches = vec![sw_info(0, "t1"), sw_info(1, "t2")];
        Ctx {
            addr: "127.0.0.1:1".parse().unwrap(),
            workload: Workload::Migration,
            window: 8,
            timeout: Duration::from_secs(1),
            go: AtomicBool::new(true),
            measuring: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            drained: AtomicUsize::new(0),
            last_rx_us: AtomicU64::new(0),
            t0: Instant::now(),
            stop: AtomicBool::new(false),
            up: AtomicUsize::new(0),
            vms: vec![Vm {
                mac: VM_MAC,
                ips: vec![VM_IP],
                home: (0, 3),
                foreign: (1, 5),
            }],
            vm_state: vec![AtomicU8::new(HOME_IDLE)],
            far_host: HashMap::new(),
            wake: switches
                .iter()
                .map(|_| tokio::sync::Notify::new())
                .collect(),
            switches,
        }
    }

    /// servswitch's switching entry for the VM at `port` (table 1, eth_dst -> output).
    fn switching(command: u8, port: u32) -> Message {
        Message::new(
            0,
            Body::FlowMod(FlowMod {
                command,
                table_id: 1,
                priority: 500,
                match_: Match::new(vec![Oxm::EthDst(VM_MAC, None)]),
                instructions: vec![Instruction::ApplyActions {
                    actions: vec![Action::output(port)],
                }],
                ..FlowMod::default()
            }),
        )
    }

    /// servswitch's source entry (in_port, eth_src): names the port but delivers nothing.
    fn source(command: u8, port: u32) -> Message {
        Message::new(
            0,
            Body::FlowMod(FlowMod {
                command,
                table_id: 0,
                priority: 100,
                match_: Match::new(vec![Oxm::InPort(port, None), Oxm::EthSrc(VM_MAC, None)]),
                instructions: vec![Instruction::GotoTable { table_id: 1 }],
                ..FlowMod::default()
            }),
        )
    }

    fn barrier() -> Message {
        Message::new(0, Body::BarrierRequest)
    }

    /// Switch `idx` sends the VM's RARP; then it receives `msgs`. Returns its stats, and
    /// whether the move is still in flight.
    fn run(ctx: &Ctx, idx: usize, before: &[Message], msgs: &[Message]) -> (Stats, bool) {
        let sw = &ctx.switches[idx];
        let mut gen = make_gen(ctx, sw, &HashSet::new());
        let mut fl = InFlight(VecDeque::new());
        let mut st = Stats::new();
        let now = Instant::now();
        for m in before {
            check(ctx, sw, &mut gen, &mut fl, m, &mut st, now);
        }
        let (k, _) = gen.next(ctx, sw, now).expect("a RARP to send");
        fl.0.push_back((k, now));
        for m in msgs {
            check(ctx, sw, &mut gen, &mut fl, m, &mut st, now);
        }
        (st, !fl.0.is_empty())
    }

    #[test]
    fn delivery_at_the_new_port_then_a_barrier_completes_the_move() {
        let ctx = ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &[],
            &[
                source(ofp13::OFPFC_ADD, 5),
                switching(ofp13::OFPFC_ADD, 5),
                barrier(),
            ],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        assert_eq!(ctx.vm_state[0].load(Relaxed), AWAY_IDLE);
    }

    #[test]
    fn no_barrier_no_completion_and_deletes_are_no_delivery() {
        let ctx = ctx();
        let (st, pending) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 5)]);
        assert_eq!((st.ok, pending), (0, true));
        // The old rule's false positive: strict deletes naming the port (the VM leaving it).
        let ctx = self::ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &[],
            &[
                source(ofp13::OFPFC_DELETE_STRICT, 5),
                switching(ofp13::OFPFC_DELETE_STRICT, 5),
                barrier(),
            ],
        );
        assert_eq!((st.ok, pending), (0, true));
        // Only a source entry: the port is named, but nothing is delivered there.
        let ctx = self::ctx();
        let (st, pending) = run(&ctx, 1, &[], &[source(ofp13::OFPFC_ADD, 5), barrier()]);
        assert_eq!((st.ok, pending), (0, true));
    }

    #[test]
    fn a_leftover_delivery_counts_only_once_removed_and_installed_again() {
        // Back home: t1 still has the VM's home entries (the previous move's second step,
        // which removes them, is not in yet), and an audit re-sends them.
        let ctx = ctx();
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let home = [switching(ofp13::OFPFC_ADD, 3)];
        let (st, pending) = run(&ctx, 0, &home, &[switching(ofp13::OFPFC_ADD, 3), barrier()]);
        assert_eq!(
            (st.ok, pending),
            (0, true),
            "nothing was installed for this move"
        );
        let ctx = self::ctx();
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let (st, pending) = run(
            &ctx,
            0,
            &home,
            &[
                // The previous move's second step: the VM leaves t1.
                switching(ofp13::OFPFC_DELETE_STRICT, 3),
                barrier(),
                // This move's first step.
                switching(ofp13::OFPFC_ADD, 3),
                barrier(),
            ],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        assert_eq!(ctx.vm_state[0].load(Relaxed), HOME_IDLE);
    }

    #[test]
    fn a_new_delivery_beside_a_leftover_one_completes_the_move() {
        // Back at t2 within the drain of its previous stay there: the delivery of its previous
        // care-of address is still in the table when the RARP comes; the delivery of the new
        // one (another match) is installed for this move.
        let delivery = |care_of: [u8; 4], command: u8| {
            Message::new(
                0,
                Body::FlowMod(FlowMod {
                    command,
                    table_id: 4,
                    priority: 1032,
                    match_: Match::new(vec![
                        Oxm::EthType(0x0800, None),
                        Oxm::Ipv4Dst(care_of.into(), None),
                    ]),
                    instructions: vec![Instruction::ApplyActions {
                        actions: vec![
                            Action::SetField {
                                field: Oxm::EthDst(VM_MAC, None),
                            },
                            Action::output(5),
                        ],
                    }],
                    ..FlowMod::default()
                }),
            )
        };
        let ctx = ctx();
        let leftover = [delivery([10, 0, 2, 2], ofp13::OFPFC_ADD)];
        let (st, pending) = run(
            &ctx,
            1,
            &leftover,
            &[delivery([10, 0, 2, 3], ofp13::OFPFC_ADD), barrier()],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        // The leftover alone, sent again, installs nothing.
        let ctx = self::ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &leftover,
            &[delivery([10, 0, 2, 2], ofp13::OFPFC_ADD), barrier()],
        );
        assert_eq!((st.ok, pending), (0, true));
    }

    #[test]
    fn a_non_strict_delete_removes_what_it_covers() {
        let ctx = ctx();
        let del_all = Message::new(
            0,
            Body::FlowMod(FlowMod {
                command: ofp13::OFPFC_DELETE,
                table_id: TABLE_ALL,
                ..FlowMod::default()
            }),
        );
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let home = [switching(ofp13::OFPFC_ADD, 3)];
        let (st, _) = run(
            &ctx,
            0,
            &home,
            &[del_all, switching(ofp13::OFPFC_ADD, 3), barrier()],
        );
        assert_eq!(st.ok, 1);
    }

    #[test]
    fn delivery_at_another_host_port_is_wrong() {
        let ctx = ctx();
        let (st, pending) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 6), barrier()]);
        assert_eq!((st.ok, st.wrong, pending), (0, 1, true));
        // A link port (the home agent's tunnel toward the VM) is not a host port.
        let ctx = self::ctx();
        let (st, _) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 2)]);
        assert_eq!(st.wrong, 0);
    }
}
