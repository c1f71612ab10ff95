//! The oracle test of `servswitch::emu::flowtable`: the same flows go into a real Open vSwitch bridge
//! (`ovs-ofctl add-flows`) and into the engine (`FlowTables::apply_flow_mod`), then the same
//! frames go through both — `ovs-appctl ofproto/trace BRIDGE in_port=N HEX` and
//! `ofproto/trace-packet-out` on one side, `FlowTables::process` / `packet_out` on the other —
//! and what comes out must agree: the ports a frame leaves by, the packet-ins (reason, cookie,
//! length) and every rewritten header field at each of those points.
//!
//! OVS's side is read from the trace's "Datapath actions:" line: starting from the input frame's
//! fields, `set(eth(..))`, `set(ipv4(..))`, `set(tcp(..))`, ... update them (masked sets too),
//! a number outputs to that datapath port (mapped back to its OpenFlow port with
//! `ovs-appctl dpif/show`), `userspace(..controller(reason=R,..,rule_cookie=C,..,max_len=M))`
//! is a packet-in. Internal reasons are encoded for OpenFlow 1.3 as OVS does (action set, group
//! and packet-out become ACTION; an explicit miss becomes NO_MATCH). The engine's frames are
//! also checked for correct IPv4 and L4 checksums.
//!
//! Bridges are named `ssft<pid><letter>` (datapath_type=netdev, fail-mode=secure, OpenFlow13,
//! internal ports with `ofport_request`, never brought up) and removed on drop; leftovers of
//! dead test processes are removed first. Skipped with a message when not root or without Open
//! vSwitch, unless `CI=true`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ofp13::{
    decode_frame, port, Action, Body, FlowMod, Hello, Instruction, MacAddr, Match, Message, Oxm,
    PacketOut, MAX_MESSAGE_LEN, NO_BUFFER,
};
use servswitch::emu::flowtable::{Effect, FlowTables};
use servswitch::fabric::plan::{Fabric, Flow, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet::{
    self, checksum, Arp, Ethernet, Ipv4, ARP_REQUEST, ETH_ARP, ETH_IPV4, ETH_IPV6, ETH_RARP,
    IP_ICMPV6,
};

// ---------------------------------------------------------------------------------------------
// Environment

fn unavailable_reason() -> Option<String> {
    if !common::env::is_root() {
        return Some("not running as root".into());
    }
    for (cmd, args) in [
        ("ovs-vsctl", &["--timeout=5", "show"][..]),
        ("ovs-ofctl", &["--version"][..]),
        ("ovs-appctl", &["-t", "ovs-vswitchd", "version"][..]),
    ] {
        if let Err(e) = run(cmd, args, None) {
            return Some(format!("Open vSwitch unavailable: {e}"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (the userspace datapath needs it)".into());
    }
    None
}

/// True when the test can run (see `common::env::runnable`).
fn available(test: &str) -> bool {
    common::env::runnable(test, unavailable_reason())
}

/// Runs a command (with `input` on stdin); its stdout, or a message with everything it said.
fn run(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    common::ovs_fabric::run_with_input(cmd, args, input)
}

fn vsctl(args: &[&str]) -> Result<String, String> {
    let mut all = vec!["--timeout=20"];
    all.extend_from_slice(args);
    run("ovs-vsctl", &all, None)
}

// ---------------------------------------------------------------------------------------------
// A bridge of ours

const PREFIX: &str = "ssft";

/// One OVS bridge, deleted on drop.
struct Bridge {
    name: String,
    /// Datapath port number -> OpenFlow port number.
    odp: BTreeMap<u32, u32>,
}

/// Deletes `ssft<pid><letter>` bridges whose process is gone.
fn remove_leftovers() {
    let Ok(list) = vsctl(&["list-br"]) else {
        return;
    };
    for br in list.lines() {
        let Some(rest) = br.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = vsctl(&["--if-exists", "del-br", br]);
        }
    }
}

fn bridge_name(letter: char) -> String {
    format!("{PREFIX}{}{letter}", std::process::id())
}

impl Bridge {
    /// A bridge with internal ports numbered `ports`.
    fn new(letter: char, ports: &BTreeSet<u32>) -> Bridge {
        Bridge::with(letter, ports, None, None)
    }

    /// A bridge whose ports are internal, or patch ports to the same-numbered ports of the
    /// bridge `peer` (which must be created the same way), with an optional controller.
    fn with(
        letter: char,
        ports: &BTreeSet<u32>,
        peer: Option<char>,
        controller: Option<u16>,
    ) -> Bridge {
        let name = bridge_name(letter);
        let mut args: Vec<String> = [
            "--",
            "--if-exists",
            "del-br",
            &name,
            "--",
            "add-br",
            &name,
            "--",
            "set",
            "bridge",
            &name,
            "datapath_type=netdev",
            "fail-mode=secure",
            "protocols=OpenFlow13",
            "other-config:disable-in-band=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in ports {
            let iface = format!("{name}p{p}");
            let kind = match peer {
                None => vec!["type=internal".to_string()],
                Some(peer) => vec![
                    "type=patch".to_string(),
                    format!("options:peer={}p{p}", bridge_name(peer)),
                ],
            };
            args.extend(
                [
                    "--",
                    "add-port",
                    &name,
                    &iface,
                    "--",
                    "set",
                    "interface",
                    &iface,
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            args.extend(kind);
            args.push(format!("ofport_request={p}"));
        }
        if let Some(tcp) = controller {
            args.extend([
                "--".to_string(),
                "set-controller".to_string(),
                name.clone(),
                format!("tcp:127.0.0.1:{tcp}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut br = Bridge {
            name,
            odp: BTreeMap::new(),
        };
        vsctl(&args).unwrap_or_else(|e| panic!("creating bridge {}: {e}", br.name));
        br.odp = br.datapath_ports();
        let have: BTreeSet<u32> = br.port_table().into_iter().map(|(of, _)| of).collect();
        assert!(
            ports.iter().all(|p| have.contains(p)) && have.contains(&port::LOCAL),
            "bridge {} has OpenFlow ports {have:?}, wanted {ports:?} and LOCAL",
            br.name
        );
        br
    }

    /// `ovs-appctl dpif/show`: lines `    NAME OFPORT/ODPPORT: (type)` under `  BRIDGE:`, as
    /// (OpenFlow port, datapath port); patch ports have no datapath port (`none`).
    fn port_table(&self) -> Vec<(u32, Option<u32>)> {
        let text = run("ovs-appctl", &["dpif/show"], None).unwrap_or_else(|e| panic!("{e}"));
        let header = format!("  {}:", self.name);
        let mut table = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if line == header {
                inside = true;
                continue;
            }
            if inside && !line.starts_with("    ") {
                break;
            }
            let Some(nums) = line.split_whitespace().nth(1).filter(|_| inside) else {
                continue;
            };
            let Some((of, odp)) = nums.trim_end_matches(':').split_once('/') else {
                continue;
            };
            let of: u32 = of.parse().unwrap_or_else(|_| panic!("dpif/show: {line}"));
            let of = if of == 65534 { port::LOCAL } else { of };
            table.push((of, odp.parse().ok()));
        }
        assert!(
            !table.is_empty(),
            "no ports of {} in dpif/show:\n{text}",
            self.name
        );
        table
    }

    /// Datapath port -> OpenFlow port.
    fn datapath_ports(&self) -> BTreeMap<u32, u32> {
        self.port_table()
            .into_iter()
            .filter_map(|(of, odp)| Some((odp?, of)))
            .collect()
    }

    fn add_flows(&self, lines: &[String]) {
        // The meters the entries use must exist first (Open vSwitch refuses an entry whose
        // meter does not: OFPMMFC_INVALID_METER); their rate does not matter to a trace.
        let meters: BTreeSet<&str> = lines
            .iter()
            .flat_map(|l| l.split("meter:").skip(1))
            .filter_map(|rest| rest.split(',').next())
            .collect();
        for m in meters {
            let _ = run(
                "ovs-ofctl",
                &[
                    "-O",
                    "OpenFlow13",
                    "del-meter",
                    &self.name,
                    &format!("meter={m}"),
                ],
                None,
            );
            run(
                "ovs-ofctl",
                &[
                    "-O",
                    "OpenFlow13",
                    "add-meter",
                    &self.name,
                    &format!("meter={m},pktps,bands=type=drop,rate=1000000"),
                ],
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        run(
            "ovs-ofctl",
            &["-O", "OpenFlow13", "add-flows", &self.name, "-"],
            Some(&text),
        )
        .unwrap_or_else(|e| panic!("{e}\nflows:\n{text}"));
        let dump = run(
            "ovs-ofctl",
            &["-O", "OpenFlow13", "dump-flows", &self.name],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let n = dump.lines().filter(|l| l.contains("actions=")).count();
        assert_eq!(n, lines.len(), "OVS holds other flows than given:\n{dump}");
    }

    fn trace(&self, in_port: u32, frame: &[u8]) -> Result<String, String> {
        run(
            "ovs-appctl",
            &[
                "ofproto/trace",
                &self.name,
                &format!("in_port={}", port_name(in_port)),
                &hex(frame),
            ],
            None,
        )
    }

    fn trace_packet_out(
        &self,
        in_port: u32,
        frame: &[u8],
        actions: &str,
    ) -> Result<String, String> {
        run(
            "ovs-appctl",
            &[
                "ofproto/trace-packet-out",
                &self.name,
                &format!("in_port={}", port_name(in_port)),
                &hex(frame),
                actions,
            ],
            None,
        )
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Err(e) = vsctl(&["--if-exists", "del-br", &self.name]) {
            eprintln!("removing bridge {}: {e}", self.name);
        }
    }
}

fn port_name(p: u32) -> String {
    match p {
        port::CONTROLLER => "CONTROLLER".into(),
        port::LOCAL => "LOCAL".into(),
        p => p.to_string(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// What a packet looks like, and what happens to it

/// Header fields by their ovs-ofctl names, as integers.
type Fields = BTreeMap<&'static str, u128>;

fn mac_u128(m: MacAddr) -> u128 {
    m.0.iter().fold(0, |a, b| (a << 8) | u128::from(*b))
}

fn fields(frame: &[u8]) -> Fields {
    let mut f = Fields::new();
    let Some(e) = Ethernet::parse(frame) else {
        return f;
    };
    f.insert("dl_dst", mac_u128(e.dst));
    f.insert("dl_src", mac_u128(e.src));
    f.insert("dl_type", e.ethertype.into());
    if e.ethertype == ETH_IPV4 {
        if let Some(ip) = Ipv4::parse(e.payload) {
            f.insert("nw_src", u32::from(ip.src).into());
            f.insert("nw_dst", u32::from(ip.dst).into());
            f.insert("nw_ttl", ip.ttl.into());
            f.insert("nw_proto", ip.protocol.into());
            f.insert("nw_tos", ip.header[1].into());
            let p = ip.payload;
            if p.len() >= 4 {
                let (s, d) = if ip.protocol == packet::IP_ICMP {
                    (p[0].into(), p[1].into())
                } else {
                    (
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    )
                };
                f.insert("tp_src", s.into());
                f.insert("tp_dst", d.into());
            }
        }
    } else if e.ethertype == ETH_IPV6 {
        let p = e.payload;
        let plen = p
            .get(4..6)
            .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        if p.len() >= 40 && plen <= p.len() - 40 {
            let addr = |at: usize| u128::from_be_bytes(p[at..at + 16].try_into().unwrap());
            f.insert("ipv6_src", addr(8));
            f.insert("ipv6_dst", addr(24));
            f.insert("nw_ttl", p[7].into());
            f.insert("nw_proto", p[6].into());
            let l4 = &p[40..40 + plen];
            if l4.len() >= 4 {
                let (s, d) = if p[6] == IP_ICMPV6 {
                    (l4[0].into(), l4[1].into())
                } else {
                    (
                        u16::from_be_bytes([l4[0], l4[1]]),
                        u16::from_be_bytes([l4[2], l4[3]]),
                    )
                };
                f.insert("tp_src", s.into());
                f.insert("tp_dst", d.into());
            }
        }
    } else if e.ethertype == ETH_ARP || e.ethertype == ETH_RARP {
        if let Some(a) = Arp::parse(e.payload) {
            f.insert("arp_op", a.op.into());
            f.insert("arp_spa", u32::from(a.spa).into());
            f.insert("arp_tpa", u32::from(a.tpa).into());
            f.insert("arp_sha", mac_u128(a.sha));
            f.insert("arp_tha", mac_u128(a.tha));
        }
    }
    f
}

/// One thing a switch did with a packet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Out {
        port: u32,
        fields: Fields,
    },
    ToController {
        reason: u8,
        cookie: u64,
        len: usize,
        fields: Fields,
    },
}

/// Flood order is a hash order in OVS: sort each run of outputs of the same packet.
fn canonical(mut v: Vec<Seen>) -> Vec<Seen> {
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len()
            && matches!((&v[i], &v[j]), (Seen::Out { fields: a, .. }, Seen::Out { fields: b, .. }) if a == b)
        {
            j += 1;
        }
        v[i..j].sort();
        i = j;
    }
    v
}

/// IPv4 header and L4 checksums of a frame the engine produced.
fn checksum_problem(frame: &[u8]) -> Option<String> {
    let e = Ethernet::parse(frame)?;
    if e.ethertype == ETH_IPV6 {
        return checksum6_problem(e.payload);
    }
    if e.ethertype != ETH_IPV4 {
        return None;
    }
    let ip = Ipv4::parse(e.payload)?;
    if checksum(ip.header) != 0 {
        return Some("bad IPv4 header checksum".into());
    }
    let residue = match ip.protocol {
        packet::IP_ICMP => checksum(ip.payload),
        6 | 17 => {
            if ip.protocol == 17 && ip.payload.get(6..8) == Some(&[0, 0]) {
                0
            } else {
                let mut v = ip.header[12..20].to_vec();
                v.extend_from_slice(&[0, ip.protocol]);
                v.extend_from_slice(&(ip.payload.len() as u16).to_be_bytes());
                v.extend_from_slice(ip.payload);
                checksum(&v)
            }
        }
        _ => 0,
    };
    (residue != 0).then(|| format!("bad L4 checksum (protocol {})", ip.protocol))
}

/// The TCP, UDP or ICMPv6 checksum of an IPv6 packet without extension headers (a UDP
/// checksum of 0, invalid in IPv6, is left as it came).
fn checksum6_problem(p: &[u8]) -> Option<String> {
    let plen = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
    let next = *p.get(6)?;
    let l4 = p.get(40..40 + plen)?;
    if !matches!(next, 6 | 17 | 58) || (next == 17 && l4.get(6..8) == Some(&[0, 0])) {
        return None;
    }
    let mut v = p[8..40].to_vec();
    v.extend_from_slice(&(plen as u32).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, next]);
    v.extend_from_slice(l4);
    (checksum(&v) != 0).then(|| format!("bad L4 checksum (IPv6, next header {next})"))
}

fn engine_seen(effects: &[Effect]) -> (Vec<Seen>, Vec<String>) {
    let mut problems = Vec::new();
    let seen = effects
        .iter()
        .map(|e| match e {
            Effect::Output { port, frame } => {
                problems.extend(checksum_problem(frame));
                Seen::Out {
                    port: *port,
                    fields: fields(frame),
                }
            }
            Effect::PacketIn {
                reason,
                cookie,
                data,
                total_len,
                ..
            } => {
                if usize::from(*total_len) < data.len() {
                    problems.push("total_len below data length".into());
                }
                Seen::ToController {
                    reason: *reason,
                    cookie: *cookie,
                    len: data.len(),
                    fields: fields(data),
                }
            }
        })
        .collect();
    (canonical(seen), problems)
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect()
}

/// A number, a dotted IPv4 address, a MAC address or an IPv6 address as an integer.
fn value(s: &str) -> u128 {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return u32::from(a).into();
    }
    if let Ok(m) = s.parse::<MacAddr>() {
        return mac_u128(m);
    }
    if let Ok(a) = s.parse::<std::net::Ipv6Addr>() {
        return a.into();
    }
    match s.strip_prefix("0x") {
        Some(h) => u128::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("cannot read value {s:?}"))
}

/// The value of `key=` inside `s`.
fn param<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.split([',', '(', ')'])
        .find_map(|kv| kv.trim().strip_prefix(key)?.strip_prefix('='))
}

/// OVS's internal packet-in reasons as OpenFlow 1.3 encodes them.
fn of13_reason(r: u8) -> u8 {
    match r {
        3..=5 => 1, // action set, group, packet-out
        6 | 7 => 0, // explicit and implicit miss
        r => r,
    }
}

/// What OVS's trace says happens to `input`; `Err` names a datapath port that is not in `odp`.
fn ovs_seen(trace: &str, input: &[u8], odp: &BTreeMap<u32, u32>) -> Result<Vec<Seen>, u32> {
    if trace.contains("Translation failed") {
        return Ok(Vec::new());
    }
    let actions = trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .unwrap_or_else(|| panic!("no datapath actions in:\n{trace}"));
    let mut state = fields(input);
    let mut seen = Vec::new();
    for a in split_top(actions) {
        if a == "drop" {
            continue;
        }
        if let Ok(n) = a.parse::<u32>() {
            let port = *odp.get(&n).ok_or(n)?;
            seen.push(Seen::Out {
                port,
                fields: state.clone(),
            });
        } else if let Some(rest) = a.strip_prefix("userspace(") {
            let c = rest
                .split_once("controller(")
                .unwrap_or_else(|| panic!("unexpected userspace action {a}"))
                .1;
            let len = input
                .len()
                .min(value(param(c, "max_len").unwrap_or("65535")) as usize);
            // A truncated packet-in shows only the headers that fit (no layer changes size).
            let visible = fields(&input[..len]);
            seen.push(Seen::ToController {
                reason: of13_reason(value(param(c, "reason").unwrap_or("0")) as u8),
                cookie: value(param(c, "rule_cookie").unwrap_or("0")) as u64,
                len,
                fields: state
                    .iter()
                    .filter(|(k, _)| visible.contains_key(*k))
                    .map(|(k, v)| (*k, *v))
                    .collect(),
            });
        } else if let Some(inner) = a.strip_prefix("set(").and_then(|s| s.strip_suffix(')')) {
            let (proto, kvs) = inner
                .split_once('(')
                .unwrap_or_else(|| panic!("unexpected set action {a}"));
            for kv in kvs.trim_end_matches(')').split(',') {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("in {a}: {kv}"));
                let name: &'static str = match (proto, k) {
                    ("eth", "src") => "dl_src",
                    ("eth", "dst") => "dl_dst",
                    ("ipv4", "src") => "nw_src",
                    ("ipv4", "dst") => "nw_dst",
                    ("ipv4", "tos") => "nw_tos",
                    ("ipv4", "ttl") => "nw_ttl",
                    ("ipv4", "proto" | "frag") => continue,
                    ("ipv6", "src") => "ipv6_src",
                    ("ipv6", "dst") => "ipv6_dst",
                    ("ipv6", "hlimit") => "nw_ttl",
                    ("ipv6", "proto" | "frag" | "tclass" | "label") => continue,
                    ("icmpv6", "type") => "tp_src",
                    ("icmpv6", "code") => "tp_dst",
                    ("tcp" | "udp", "src") | ("icmp", "type") => "tp_src",
                    ("tcp" | "udp", "dst") | ("icmp", "code") => "tp_dst",
                    ("arp", "sip") => "arp_spa",
                    ("arp", "tip") => "arp_tpa",
                    ("arp", "op") => "arp_op",
                    ("arp", "sha") => "arp_sha",
                    ("arp", "tha") => "arp_tha",
                    _ => panic!("unexpected field {k} in {a}"),
                };
                let (v, mask) = match v.split_once('/') {
                    Some((v, m)) => (value(v), value(m)),
                    None => (value(v), u128::MAX),
                };
                let old = state.get(name).copied().unwrap_or(0);
                state.insert(name, (old & !mask) | (v & mask));
            }
        } else if a.starts_with("meter(") {
            // A meter passes a traced packet on (rates are the datapath's, not the trace's),
            // as the engine does.
            continue;
        } else {
            panic!("unexpected datapath action {a:?} in {actions}");
        }
    }
    Ok(canonical(seen))
}

/// Runs one frame through both and records any difference.
struct Oracle<'a> {
    br: &'a mut Bridge,
    engine: &'a mut FlowTables,
    compared: usize,
    mismatches: Vec<String>,
}

impl Oracle<'_> {
    fn compare(&mut self, label: &str, in_port: u32, frame: &[u8]) {
        let trace = self
            .br
            .trace(in_port, frame)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        self.check_flow_line(label, &trace, frame);
        let want = self.ovs_seen(&trace, frame);
        let effects = self.engine.process(in_port, frame);
        self.record(label, &trace, want, &effects);
    }

    fn compare_packet_out(
        &mut self,
        label: &str,
        in_port: u32,
        frame: &[u8],
        actions: Vec<Action>,
    ) {
        let text: Vec<String> = actions.iter().map(ofp13::text::action_text).collect();
        let ovs = self.br.trace_packet_out(in_port, frame, &text.join(","));
        let engine = self.engine.packet_out(&PacketOut {
            buffer_id: NO_BUFFER,
            in_port,
            actions: actions.into(),
            data: Bytes::copy_from_slice(frame),
        });
        self.compared += 1;
        match (ovs, engine) {
            (Ok(trace), Ok(effects)) => {
                let want = self.ovs_seen(&trace, frame);
                self.compared -= 1;
                self.record(label, &trace, want, &effects);
            }
            (Err(e), Err(code)) => {
                if !e.contains("OFPBAC_MATCH_INCONSISTENT") || code != (2, 10) {
                    self.mismatches.push(format!(
                        "{label}: OVS refused with {e}, the engine with {code:?}"
                    ));
                }
            }
            (ovs, engine) => self
                .mismatches
                .push(format!("{label}: OVS said {ovs:?}, the engine {engine:?}")),
        }
    }

    /// OVS's answer; datapath port numbers are read again if one is unknown (they change
    /// when ovs-vswitchd restarts).
    fn ovs_seen(&mut self, trace: &str, frame: &[u8]) -> Vec<Seen> {
        ovs_seen(trace, frame, &self.br.odp).unwrap_or_else(|_| {
            self.br.odp = self.br.datapath_ports();
            ovs_seen(trace, frame, &self.br.odp).unwrap_or_else(|n| {
                panic!(
                    "datapath port {n} is not one of {:?}:\n{trace}",
                    self.br.odp
                )
            })
        })
    }

    fn record(&mut self, label: &str, trace: &str, want: Vec<Seen>, effects: &[Effect]) {
        self.compared += 1;
        let (got, problems) = engine_seen(effects);
        if got != want || !problems.is_empty() {
            self.mismatches.push(format!(
                "{label}:\n  OVS:    {want:?}\n  engine: {got:?}\n  problems: {problems:?}\n  trace:\n{trace}"
            ));
        }
    }

    /// The trace's "Flow:" line must describe the frame we gave it.
    fn check_flow_line(&mut self, label: &str, trace: &str, frame: &[u8]) {
        let flow = trace
            .lines()
            .find_map(|l| l.strip_prefix("Flow: "))
            .unwrap_or_else(|| panic!("{label}: no Flow: line in\n{trace}"));
        let f = fields(frame);
        for (ovs_name, ours) in [
            ("dl_src", "dl_src"),
            ("dl_dst", "dl_dst"),
            ("nw_src", "nw_src"),
            ("nw_dst", "nw_dst"),
            ("nw_ttl", "nw_ttl"),
            ("arp_tpa", "arp_tpa"),
            ("ipv6_src", "ipv6_src"),
            ("ipv6_dst", "ipv6_dst"),
        ] {
            if let (Some(v), Some(want)) = (param(flow, ovs_name), f.get(ours)) {
                assert_eq!(
                    value(v),
                    *want,
                    "{label}: OVS parsed {ovs_name}={v} from {flow}"
                );
            }
        }
    }

    fn finish(self, what: &str) -> usize {
        assert!(
            self.mismatches.is_empty(),
            "{what}: {} of {} cases differ from Open vSwitch:\n{}",
            self.mismatches.len(),
            self.compared,
            self.mismatches.join("\n")
        );
        self.compared
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    f[22] = ttl;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn icmp_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
) -> Vec<u8> {
    let body = packet::icmp(
        packet::ICMP_ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 1],
        b"servswitch-ping",
    );
    with_ttl(
        packet::ipv4_frame(dst_mac, src_mac, src, dst, packet::IP_ICMP, &body),
        ttl,
    )
}

/// A TCP SYN or UDP segment with its checksum still 0, carrying "hello".
fn segment(proto: u8, ports: (u16, u16)) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&ports.0.to_be_bytes());
    seg.extend_from_slice(&ports.1.to_be_bytes());
    if proto == 6 {
        seg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    } else {
        seg.extend_from_slice(&[0, 13, 0, 0]);
    }
    seg.extend_from_slice(b"hello");
    seg
}

/// TCP (SYN) or UDP with a correct checksum.
fn l4_frame(
    proto: u8,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
) -> Vec<u8> {
    let mut seg = segment(proto, ports);
    let mut v = src.octets().to_vec();
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(&[0, proto]);
    v.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    v.extend_from_slice(&seg);
    let c = checksum(&v);
    let at = if proto == 6 { 16 } else { 6 };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    packet::ipv4_frame(dst_mac, src_mac, src, dst, proto, &seg)
}

fn arp_frame(op: u16, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    Arp {
        op,
        sha,
        spa,
        tha: MacAddr::ZERO,
        tpa,
    }
    .frame(MacAddr::BROADCAST, sha, ETH_ARP)
}

/// An IPv6 packet (no extension headers) around `l4`, whose checksum at `csum_at` (TCP 16, UDP
/// 6, ICMPv6 2) is computed over the pseudo-header.
fn ipv6_frame_with(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    next: u8,
    hlim: u8,
    mut l4: Vec<u8>,
    csum_at: usize,
) -> Vec<u8> {
    let mut v = src.octets().to_vec();
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, next]);
    v.extend_from_slice(&l4);
    let c = checksum(&v);
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, hlim]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&l4);
    packet::eth_frame(dst_mac, src_mac, ETH_IPV6, &ip)
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 address")
}

/// An IPv6 router solicitation (flooded in its subnet by the plan).
fn ipv6_frame(src: MacAddr) -> Vec<u8> {
    let dst = MacAddr([0x33, 0x33, 0, 0, 0, 2]);
    let l4 = vec![133, 0, 0, 0, 0, 0, 0, 0];
    ipv6_frame_with(
        src,
        dst,
        (ip6("fe80::1"), ip6("ff02::2")),
        IP_ICMPV6,
        255,
        l4,
        2,
    )
}

/// ICMPv6 echo request, or a neighbour solicitation for `target` with a source link-layer
/// option (`target` given).
fn icmp6_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    addrs: (Ipv6Addr, Ipv6Addr),
    hlim: u8,
    target: Option<Ipv6Addr>,
) -> Vec<u8> {
    let l4 = match target {
        None => {
            let mut m = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
            m.extend_from_slice(b"servswitch-ping6");
            m
        }
        Some(t) => {
            let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&t.octets());
            m.extend_from_slice(&[1, 1]);
            m.extend_from_slice(&src_mac.0);
            m
        }
    };
    ipv6_frame_with(src_mac, dst_mac, addrs, IP_ICMPV6, hlim, l4, 2)
}

/// TCP (SYN) or UDP over IPv6 with a correct checksum.
fn l4_frame6(
    proto: u8,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    addrs: (Ipv6Addr, Ipv6Addr),
    ports: (u16, u16),
) -> Vec<u8> {
    let seg = segment(proto, ports);
    let at = if proto == 6 { 16 } else { 6 };
    ipv6_frame_with(src_mac, dst_mac, addrs, proto, 64, seg, at)
}

// ---------------------------------------------------------------------------------------------
// The tests

fn paper_testbed() -> Topology {
    Topology::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/paper-testbed.toml"
    )))
    .expect("topology")
}

/// The OpenFlow ports a flow list names (outputs and in_port matches).
fn ports_in(flows: &[Flow]) -> BTreeSet<u32> {
    let mut ports = BTreeSet::new();
    for f in flows {
        for o in &f.match_.fields {
            if let Oxm::InPort(p, _) = o {
                ports.insert(*p);
            }
        }
        for i in &f.instructions {
            if let Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } = i
            {
                for a in actions {
                    if let Action::Output { port: p, .. } = a {
                        if *p < port::MAX {
                            ports.insert(*p);
                        }
                    }
                }
            }
        }
    }
    ports
}

fn engine_with(flows: &[FlowMod], ports: &BTreeSet<u32>) -> FlowTables {
    let mut t = FlowTables::default();
    let mut all: Vec<u32> = ports.iter().copied().collect();
    all.push(port::LOCAL);
    t.set_ports(&all);
    for f in flows {
        t.apply_flow_mod(f)
            .unwrap_or_else(|e| panic!("the engine refused {f:?}: {e:?}"));
    }
    t
}

#[test]
fn servswitch_plan_forwards_like_open_vswitch() {
    if !available("servswitch_plan_forwards_like_open_vswitch") {
        return;
    }
    remove_leftovers();
    let topo = paper_testbed();
    let fabric = Fabric::new(&topo);
    let hosts = fabric.configured_hosts();
    let plan = fabric.plan(&hosts);
    let mut total = 0;
    for (i, (switch, flows)) in plan.iter().enumerate() {
        let mut ports = ports_in(flows);
        ports.extend(fabric.link_ports(switch));
        ports.extend(hosts.iter().filter(|h| &h.switch == switch).map(|h| h.port));
        let mut br = Bridge::new(char::from(b'a' + i as u8), &ports);
        br.add_flows(&flows.iter().map(Flow::text).collect::<Vec<_>>());
        let mods: Vec<FlowMod> = flows.iter().map(Flow::add).collect();
        let mut engine = engine_with(&mods, &ports);
        let mut oracle = Oracle {
            br: &mut br,
            engine: &mut engine,
            compared: 0,
            mismatches: Vec::new(),
        };

        let local: Vec<_> = hosts.iter().filter(|h| &h.switch == switch).collect();
        let stranger = hosts
            .iter()
            .find(|h| &h.switch != switch)
            .expect("a host elsewhere");
        let mut dests: Vec<(String, Ipv4Addr)> = Vec::new();
        for h in &hosts {
            dests.push((format!("host {}", h.ip), h.ip));
        }
        for (prefix, gateway) in topo.subnets.iter().filter_map(|s| s.prefix.zip(s.gateway)) {
            dests.push((format!("gateway {gateway}"), gateway));
            let unknown = Ipv4Addr::from(u32::from(prefix.addr) + 99);
            dests.push((format!("unknown {unknown}"), unknown));
        }
        dests.push(("no route".into(), ip("8.8.8.8")));

        for &in_port in &ports {
            // The sender: the host on this port, or a host behind the link.
            let (mac, src) = match local.iter().find(|h| h.port == in_port) {
                Some(h) => (h.mac, h.ip),
                None => (stranger.mac, stranger.ip),
            };
            let at = |what: &str| format!("{switch} in_port={in_port} {what}");
            for (what, dst) in &dests {
                for ttl in [64, 2, 1, 0] {
                    let f = icmp_frame(mac, GATEWAY_MAC, src, *dst, ttl);
                    oracle.compare(&at(&format!("icmp to {what} ttl={ttl}")), in_port, &f);
                }
                for proto in [6, 17] {
                    let f = l4_frame(proto, mac, GATEWAY_MAC, src, *dst, (40000, 80));
                    oracle.compare(&at(&format!("proto {proto} to {what}")), in_port, &f);
                }
            }
            for h in &local {
                let f = icmp_frame(mac, h.mac, src, h.ip, 64);
                oracle.compare(&at(&format!("icmp to {} by its MAC", h.ip)), in_port, &f);
            }
            for gateway in topo.subnets.iter().filter_map(|s| s.gateway) {
                let f = arp_frame(ARP_REQUEST, mac, src, gateway);
                oracle.compare(&at(&format!("arp for {gateway}")), in_port, &f);
            }
            oracle.compare(&at("rarp"), in_port, &packet::rarp_announce(mac));
            oracle.compare(&at("ipv6"), in_port, &ipv6_frame(mac));
            let mut lldp = ipv6_frame(mac);
            lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
            oracle.compare(&at("lldp"), in_port, &lldp);
        }
        total += oracle.finish(switch);
    }
    assert!(total > 500, "only {total} cases compared");
    eprintln!("{total} frames: the engine agrees with Open vSwitch");
}

fn fm(
    table_id: u8,
    priority: u16,
    cookie: u64,
    fields: Vec<Oxm>,
    instructions: Vec<Instruction>,
) -> FlowMod {
    FlowMod {
        table_id,
        priority,
        cookie,
        match_: Match::new(fields),
        instructions,
        ..FlowMod::default()
    }
}

fn apply(actions: Vec<Action>) -> Instruction {
    Instruction::ApplyActions { actions }
}

fn write(actions: Vec<Action>) -> Instruction {
    Instruction::WriteActions { actions }
}

fn set(field: Oxm) -> Action {
    Action::SetField { field }
}

#[test]
fn more_features_behave_like_open_vswitch() {
    if !available("more_features_behave_like_open_vswitch") {
        return;
    }
    remove_leftovers();
    let flows = extra_flows();
    let (m1, m2, m9) = (
        MacAddr([2, 0, 0, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        MacAddr([2, 0, 0, 0, 0, 9]),
    );
    let out = Action::output;
    let ports: BTreeSet<u32> = (1..=4).collect();
    let mut br = Bridge::new('x', &ports);
    br.add_flows(&flows.iter().map(flow_text).collect::<Vec<_>>());
    let mut engine = engine_with(&flows, &ports);
    let mut oracle = Oracle {
        br: &mut br,
        engine: &mut engine,
        compared: 0,
        mismatches: Vec::new(),
    };
    let (a, b) = (ip("10.0.0.1"), ip("10.0.1.2"));
    for in_port in [1, 2, 3] {
        let at = |what: &str| format!("in_port={in_port} {what}");
        oracle.compare(
            &at("arp request"),
            in_port,
            &arp_frame(ARP_REQUEST, m1, a, b),
        );
        oracle.compare(&at("arp reply"), in_port, &arp_frame(2, m1, a, b));
        oracle.compare(&at("rarp"), in_port, &packet::rarp_announce(m1));
        for ttl in [64, 2, 1] {
            oracle.compare(
                &at(&format!("icmp ttl={ttl}")),
                in_port,
                &icmp_frame(m1, m2, a, b, ttl),
            );
            for p in [6, 17] {
                let f = with_ttl(l4_frame(p, m1, m2, a, b, (1234, 80)), ttl);
                oracle.compare(&at(&format!("proto {p} ttl={ttl}")), in_port, &f);
            }
        }
        let mut no_csum = l4_frame(17, m1, m2, a, b, (1234, 80));
        no_csum[40..42].copy_from_slice(&[0, 0]);
        oracle.compare(&at("udp without checksum"), in_port, &no_csum);
        oracle.compare(
            &at("tcp to 81"),
            in_port,
            &l4_frame(6, m1, m2, a, b, (1234, 81)),
        );
        oracle.compare(&at("ipv6"), in_port, &ipv6_frame(m1));
        for (what, f) in ipv6_cases(m1, m2) {
            oracle.compare(&at(&what), in_port, &f);
        }
    }
    // Packet-outs, from a port and from the controller.
    let icmp = icmp_frame(m1, m2, a, b, 3);
    let arp = arp_frame(ARP_REQUEST, m1, a, b);
    for in_port in [1, 2, port::CONTROLLER] {
        let at = |what: &str| format!("packet-out in_port={} {what}", port_name(in_port));
        let cases: Vec<(&str, &[u8], Vec<Action>)> = vec![
            ("TABLE", &icmp, vec![out(port::TABLE)]),
            (
                "TABLE twice",
                &icmp,
                vec![out(port::TABLE), out(2), out(port::TABLE), out(3)],
            ),
            (
                "dec_ttl then TABLE",
                &icmp,
                vec![Action::DecNwTtl, out(port::TABLE), out(1)],
            ),
            (
                "controller",
                &icmp,
                vec![
                    Action::Output {
                        port: port::CONTROLLER,
                        max_len: 30,
                    },
                    out(port::TABLE),
                ],
            ),
            (
                "rewrite and ALL",
                &arp,
                vec![
                    set(Oxm::EthSrc(m9, None)),
                    out(port::ALL),
                    out(port::IN_PORT),
                ],
            ),
            ("arp to TABLE", &arp, vec![out(port::TABLE)]),
            (
                "inconsistent",
                &arp,
                vec![set(Oxm::Ipv4Dst(b, None)), out(1)],
            ),
        ];
        for (what, frame, actions) in cases {
            oracle.compare_packet_out(&at(what), in_port, frame, actions);
        }
    }
    let n = oracle.finish("extra flows");
    eprintln!("{n} frames and packet-outs: the engine agrees with Open vSwitch");
}

/// IPv6 frames for [`extra_flows`]: solicitations by target and by source, echo requests
/// through the prefix route (hop limits 64, 2, 1), TCP, UDP (with and without a checksum), and
/// a link-local echo.
fn ipv6_cases(m1: MacAddr, m2: MacAddr) -> Vec<(String, Vec<u8>)> {
    let (a, b) = (ip6("fd00:0:0:1::2"), ip6("fd00:0:0:2::5"));
    let solicited = MacAddr([0x33, 0x33, 0xff, 0, 0, 1]);
    // A solicitation from `mac` for `target` (of the solicited-node group ending in `last`).
    let ns = |mac, last: u16, target: &str| {
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, last);
        icmp6_frame(mac, solicited, (a, group), 255, Some(ip6(target)))
    };
    let mut v = vec![
        ("ns for the gateway".to_string(), ns(m1, 1, "fd00:0:0:1::1")),
        ("ns from m1".into(), ns(m1, 7, "fd00:0:0:1::7")),
        ("ns from m2".into(), ns(m2, 7, "fd00:0:0:1::7")),
        (
            "link-local echo".into(),
            icmp6_frame(
                m1,
                MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                (ip6("fe80::1"), ip6("ff02::1")),
                1,
                None,
            ),
        ),
    ];
    for hlim in [64, 2, 1] {
        v.push((
            format!("echo6 hlim={hlim}"),
            icmp6_frame(m1, m2, (a, b), hlim, None),
        ));
    }
    for p in [6, 17] {
        v.push((
            format!("ipv6 proto {p}"),
            l4_frame6(p, m1, m2, (a, b), (1234, 80)),
        ));
    }
    let mut no_csum = l4_frame6(17, m1, m2, (a, b), (1234, 80));
    no_csum[60..62].copy_from_slice(&[0, 0]);
    v.push(("ipv6 udp without checksum".into(), no_csum));
    v
}

/// Flows beyond servswitch's plan: ARP rewrites with IN_PORT, ALL and FLOOD, rewrites between
/// outputs, TCP/UDP NAT, ICMP type/code, DSCP/ECN, metadata, the action set, a miss in a later
/// table, an explicit miss to the controller, set_nw_ttl.
fn extra_flows() -> Vec<FlowMod> {
    let ipv4 = || Oxm::EthType(ETH_IPV4, None);
    let ipv6 = || Oxm::EthType(ETH_IPV6, None);
    let proto = |p| Oxm::IpProto(p, None);
    let out = Action::output;
    let m1 = MacAddr([2, 0, 0, 0, 0, 1]);
    let m2 = MacAddr([2, 0, 0, 0, 0, 2]);
    let m9 = MacAddr([2, 0, 0, 0, 0, 9]);
    let goto = |t| Instruction::GotoTable { table_id: t };
    vec![
        // ARP requests answered in place; RARP flooded.
        fm(
            0,
            100,
            0x10,
            vec![Oxm::EthType(ETH_ARP, None), Oxm::ArpOp(1, None)],
            vec![apply(vec![
                set(Oxm::ArpOp(2, None)),
                set(Oxm::ArpTha(m1, None)),
                set(Oxm::ArpSha(m9, None)),
                set(Oxm::ArpSpa(ip("10.0.0.99"), None)),
                set(Oxm::EthDst(m1, None)),
                out(port::IN_PORT),
            ])],
        ),
        fm(
            0,
            100,
            0x11,
            vec![Oxm::EthType(ETH_RARP, None)],
            vec![apply(vec![out(port::ALL)])],
        ),
        // UDP: rewrites between outputs, FLOOD, and the input port is skipped.
        fm(
            0,
            90,
            0x12,
            vec![ipv4(), proto(17)],
            vec![apply(vec![
                set(Oxm::UdpSrc(53, None)),
                set(Oxm::IpDscp(46, None)),
                out(3),
                set(Oxm::IpEcn(1, None)),
                set(Oxm::Ipv4Src(ip("172.16.0.1"), None)),
                set(Oxm::UdpDst(5353, None)),
                out(port::FLOOD),
                out(2),
            ])],
        ),
        // TCP to port 80: NAT both ways, TTL, controller with max_len.
        fm(
            0,
            90,
            0x13,
            vec![ipv4(), proto(6), Oxm::TcpDst(80, None)],
            vec![apply(vec![
                set(Oxm::Ipv4Src(ip("192.168.10.3"), None)),
                set(Oxm::Ipv4Dst(ip("192.168.11.3"), None)),
                set(Oxm::TcpSrc(1000, None)),
                set(Oxm::TcpDst(8080, None)),
                Action::DecNwTtl,
                out(2),
                Action::Output {
                    port: port::CONTROLLER,
                    max_len: 40,
                },
            ])],
        ),
        // ICMP from port 1: metadata, action set, on to table 1.
        fm(
            0,
            90,
            0x14,
            vec![Oxm::InPort(1, None), ipv4(), proto(1)],
            vec![
                write(vec![out(4), set(Oxm::EthDst(m2, None))]),
                Instruction::WriteMetadata {
                    metadata: 0x5,
                    metadata_mask: 0xff,
                },
                goto(1),
            ],
        ),
        // Other IPv4: an action set with dec_ttl, then a miss in table 2.
        fm(
            0,
            80,
            0x15,
            vec![ipv4()],
            vec![
                write(vec![Action::DecNwTtl, out(3), set(Oxm::EthSrc(m9, None))]),
                goto(2),
            ],
        ),
        // IPv6: neighbour solicitations by target and by source link-layer address, a prefix
        // route with hop limit and address rewrite, TCP and UDP rewrites, link-local sources.
        fm(
            0,
            95,
            0x17,
            vec![
                ipv6(),
                proto(58),
                Oxm::Icmpv6Type(135, None),
                Oxm::Ipv6NdTarget(ip6("fd00:0:0:1::1"), None),
            ],
            vec![apply(vec![out(port::CONTROLLER)])],
        ),
        fm(
            0,
            94,
            0x18,
            vec![
                ipv6(),
                proto(58),
                Oxm::Icmpv6Type(135, None),
                Oxm::Ipv6NdSll(m1, None),
            ],
            vec![apply(vec![out(3)])],
        ),
        fm(
            0,
            93,
            0x19,
            vec![
                ipv6(),
                proto(58),
                Oxm::Ipv6Dst(ip6("fd00:0:0:2::"), Some(ip6("ffff:ffff:ffff:ffff::"))),
            ],
            vec![apply(vec![
                Action::DecNwTtl,
                set(Oxm::EthSrc(m9, None)),
                set(Oxm::Ipv6Dst(ip6("fd00:0:0:2::99"), None)),
                out(2),
            ])],
        ),
        fm(
            0,
            92,
            0x1a,
            vec![ipv6(), proto(6), Oxm::TcpDst(80, None)],
            vec![apply(vec![
                set(Oxm::Ipv6Src(ip6("fd00:0:0:9::1"), None)),
                set(Oxm::TcpSrc(1000, None)),
                Action::DecNwTtl,
                out(3),
                Action::Output {
                    port: port::CONTROLLER,
                    max_len: 80,
                },
            ])],
        ),
        fm(
            0,
            91,
            0x1b,
            vec![ipv6(), proto(17)],
            vec![apply(vec![
                set(Oxm::Ipv6Dst(ip6("fd00::5"), None)),
                set(Oxm::UdpDst(5353, None)),
                out(4),
            ])],
        ),
        fm(
            0,
            90,
            0x1c,
            vec![ipv6(), Oxm::Ipv6Src(ip6("fe80::"), Some(ip6("ffc0::")))],
            vec![apply(vec![out(1)])],
        ),
        // Everything else: an explicit miss to the controller.
        fm(
            0,
            0,
            0x16,
            vec![],
            vec![apply(vec![Action::Output {
                port: port::CONTROLLER,
                max_len: 64,
            }])],
        ),
        fm(
            1,
            10,
            0x20,
            vec![
                Oxm::Metadata(0x5, Some(0xff)),
                ipv4(),
                proto(1),
                Oxm::Icmpv4Type(8, None),
            ],
            vec![
                apply(vec![
                    set(Oxm::Icmpv4Type(0, None)),
                    set(Oxm::Icmpv4Code(1, None)),
                    Action::DecNwTtl,
                    out(1),
                    out(3),
                ]),
                goto(3),
            ],
        ),
        fm(1, 5, 0x21, vec![], vec![Instruction::ClearActions]),
        fm(
            3,
            1,
            0x30,
            vec![ipv4()],
            vec![apply(vec![
                Action::SetNwTtl { nw_ttl: 5 },
                out(port::CONTROLLER),
            ])],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Byte for byte: real packets through OVS's datapath

/// A minimal OpenFlow 1.3 controller: answers echoes, passes on every packet-in as
/// (in_port, data). The first item is (0, []) once OVS has said hello.
fn controller() -> (u16, mpsc::Receiver<(u32, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let tcp = listener.local_addr().expect("local address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let hello = Message::new(1, Body::Hello(Hello::of13())).to_bytes();
        let features = Message::new(2, Body::FeaturesRequest).to_bytes();
        if s.write_all(&hello)
            .and_then(|()| s.write_all(&features))
            .is_err()
        {
            return;
        }
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(m)) = decode_frame(&mut buf, MAX_MESSAGE_LEN) {
                let item = match m.body {
                    Body::Hello(_) => (0, Vec::new()),
                    Body::EchoRequest(d) => {
                        let _ = s.write_all(&Message::new(m.xid, Body::EchoReply(d)).to_bytes());
                        continue;
                    }
                    Body::PacketIn(p) => (p.in_port().unwrap_or(0), p.data.to_vec()),
                    _ => continue,
                };
                if tx.send(item).is_err() {
                    return;
                }
            }
        }
    });
    (tcp, rx)
}

/// Sends each frame into bridge A (`packet-out in_port=N actions=output:TABLE`) and into the
/// engine holding the same flows, and compares the frames A sends out of its ports byte for
/// byte: A's ports are patch ports to bridge B, whose only flow sends everything to our
/// controller. A marker packet-out on B after each case delimits its packet-ins.
fn compare_bytes(flows: &[FlowMod], cases: &[(String, u32, Vec<u8>)]) -> usize {
    let ports: BTreeSet<u32> = (1..=4).collect();
    let (tcp, rx) = controller();
    let b = Bridge::with('q', &ports, Some('p'), Some(tcp));
    let a = Bridge::with('p', &ports, Some('q'), None);
    b.add_flows(&["priority=0 actions=CONTROLLER:65535".to_string()]);
    a.add_flows(&flows.iter().map(flow_text).collect::<Vec<_>>());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).map(|x| x.0),
        Ok(0),
        "Open vSwitch did not connect to the test controller"
    );
    let mut engine = engine_with(flows, &ports);
    let packet_out = |br: &Bridge, in_port: u32, frame: &[u8], actions: &str| {
        let spec = format!(
            "in_port={} packet={} actions={actions}",
            port_name(in_port),
            hex(frame)
        );
        run(
            "ovs-ofctl",
            &["-O", "OpenFlow13", "packet-out", &br.name, &spec],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    let (mut mismatches, mut sent) = (Vec::new(), 0);
    for (i, (label, in_port, frame)) in cases.iter().enumerate() {
        packet_out(&a, *in_port, frame, "output:TABLE");
        let mut marker = vec![0x02, 0, 0, 0, 0, 0xee, 0x02, 0, 0, 0, 0, 0xee, 0x88, 0xb5];
        marker.extend_from_slice(&(i as u32).to_be_bytes());
        marker.resize(60, 0);
        packet_out(&b, port::CONTROLLER, &marker, "CONTROLLER:65535");
        let mut ovs = Vec::new();
        loop {
            let (p, data) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{label}: no marker from Open vSwitch"));
            if data == marker {
                break;
            }
            ovs.push((p, data));
        }
        let mut ours: Vec<(u32, Vec<u8>)> = engine
            .packet_out(&PacketOut {
                buffer_id: NO_BUFFER,
                in_port: *in_port,
                actions: vec![Action::output(port::TABLE)].into(),
                data: Bytes::copy_from_slice(frame),
            })
            .unwrap_or_else(|e| panic!("{label}: the engine refused the packet-out: {e:?}"))
            .into_iter()
            .filter_map(|e| match e {
                Effect::Output { port, frame } if ports.contains(&port) => Some((port, frame)),
                _ => None,
            })
            .collect();
        ovs.sort();
        ours.sort();
        sent += ovs.len();
        if ovs != ours {
            let show = |v: &[(u32, Vec<u8>)]| {
                v.iter()
                    .map(|(p, f)| format!("\n    port {p}: {}", hex(f)))
                    .collect::<String>()
            };
            mismatches.push(format!(
                "{label}:\n  OVS:{}\n  engine:{}",
                show(&ovs),
                show(&ours)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} frames differ from what Open vSwitch sent:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    assert!(
        sent * 2 >= cases.len(),
        "only {sent} frames came out of {} cases",
        cases.len()
    );
    sent
}

fn flow_text(f: &FlowMod) -> String {
    Flow {
        table_id: f.table_id,
        priority: f.priority,
        cookie: f.cookie,
        match_: f.match_.clone(),
        instructions: f.instructions.clone(),
        ..Default::default()
    }
    .text()
}

#[test]
fn rewritten_frames_are_byte_identical_to_open_vswitch() {
    if !available("rewritten_frames_are_byte_identical_to_open_vswitch") {
        return;
    }
    remove_leftovers();
    let (m1, m2) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
    let (a, b) = (ip("10.0.0.1"), ip("10.0.1.2"));
    let mut cases = Vec::new();
    for in_port in [1, 2, 3] {
        let mut add =
            |what: &str, f: Vec<u8>| cases.push((format!("in_port={in_port} {what}"), in_port, f));
        add("arp", arp_frame(ARP_REQUEST, m1, a, b));
        for ttl in [64, 2] {
            add(&format!("icmp ttl={ttl}"), icmp_frame(m1, m2, a, b, ttl));
            for p in [6, 17] {
                add(
                    &format!("proto {p} ttl={ttl}"),
                    with_ttl(l4_frame(p, m1, m2, a, b, (1234, 80)), ttl),
                );
            }
        }
        let mut no_csum = l4_frame(17, m1, m2, a, b, (1234, 80));
        no_csum[40..42].copy_from_slice(&[0, 0]);
        add("udp without checksum", no_csum);
        // Incremental updates keep a wrong checksum wrong, as they are.
        let mut bad = l4_frame(6, m1, m2, a, b, (1234, 80));
        bad[24] ^= 0x5a;
        bad[50] ^= 0x0f;
        add("tcp with wrong checksums", bad);
        let mut bad = l4_frame(17, m1, m2, a, b, (1234, 80));
        bad[41] ^= 0x33;
        add("udp with a wrong checksum", bad);
        // A UDP checksum that the rewrites turn into 0 is sent as 0xffff: find one.
        let engine = engine_with(&extra_flows(), &(1..=4).collect());
        let zeroed = (1..=0xffffu16).find_map(|c| {
            let mut f = l4_frame(17, m1, m2, a, b, (1234, 80));
            f[40..42].copy_from_slice(&c.to_be_bytes());
            let fx = engine.process(in_port, &f);
            fx.iter()
                .any(|e| matches!(e, Effect::Output { frame, .. } if frame[40..42] == [0xff, 0xff]))
                .then_some(f)
        });
        add(
            "udp whose checksum becomes 0xffff",
            zeroed.expect("such a checksum"),
        );
        for (what, f) in ipv6_cases(m1, m2) {
            add(&what, f);
        }
    }
    let n = compare_bytes(&extra_flows(), &cases);

    // servswitch's own plan, r3 (the home switch): routed and delivered frames.
    let topo = paper_testbed();
    let fabric = Fabric::new(&topo);
    let hosts = fabric.configured_hosts();
    let plan = fabric.plan(&hosts);
    let mods: Vec<FlowMod> = plan["r3"].iter().map(Flow::add).collect();
    let mut cases = Vec::new();
    let d = hosts
        .iter()
        .find(|h| h.ip == ip("192.168.11.2"))
        .expect("host d");
    for h in &hosts {
        for ttl in [64, 2] {
            cases.push((
                format!("r3 icmp to {} ttl={ttl}", h.ip),
                d.port,
                icmp_frame(d.mac, GATEWAY_MAC, d.ip, h.ip, ttl),
            ));
            cases.push((
                format!("r3 tcp to {} from the link ttl={ttl}", h.ip),
                1,
                with_ttl(
                    l4_frame(
                        6,
                        MacAddr([2, 0, 0, 0, 0, 2]),
                        GATEWAY_MAC,
                        ip("10.0.0.2"),
                        h.ip,
                        (5555, 22),
                    ),
                    ttl,
                ),
            ));
        }
    }
    let m = compare_bytes(&mods, &cases);
    eprintln!(
        "{} frames out of OVS's datapath byte-identical to the engine's",
        n + m
    );
}
