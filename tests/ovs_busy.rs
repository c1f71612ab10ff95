//! Busy VMs on real Open vSwitch (issue 13, item 5): VMs that keep sending while they move.
//! A 7-switch fabric of its own (one core with the outside network, two aggregation
//! switches, four racks); hosts in namespaces; the real `servswitch run`; every move made as
//! a hypervisor makes it (the veth moves to another bridge, then QEMU's RARP from inside).
//!
//! - One VM through 20 consecutive migrations (to a foreign rack, on to another, home,
//!   again), pinging every 2 ms an outside host, a host of its home network and another
//!   rack's host, with a TCP connection it opened itself sending every 2 ms, and a UDP flow:
//!   no host ever captures a care-of address (and no sniffer dropped a frame), the TCP
//!   connections are never reset, and a `ping -i 0.01` from outside loses at most 2 pings per
//!   migration.
//! - Two VMs of one rack talking to each other (pings and TCP both ways) while both move.
//! - A learned VM (not in the controller's topology) whose old port is deleted before it
//!   announces itself at the new one.
//!
//! The fabric has no equal-cost paths, so its links are OVS patch ports (`Links::Patch`): the
//! outage bound (2 pings at 10 ms per migration) was exceeded once (an outage of 3) in CI
//! with veth links, whose extra kernel hop per link costs CPU on this 2-core machine.
//!
//! Needs root and a running Open vSwitch; skips without them, fails instead when CI=true.
//! `SERVSWITCH_BIN=path` runs another build of the controller under the same tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess, Links, OvsFabric};
use common::traffic::{mentioning, Capture, PingReport, Pinger, TcpStream, UdpFlow};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const TOPOLOGY: &str = r#"
# A fabric of the busy-VM tests: one core (the outside network), two aggregation switches,
# four racks.
[[switch]]
name = "c1"
dpid = 1
tier = "core"
[[switch]]
name = "a1"
dpid = 2
tier = "aggregation"
[[switch]]
name = "a2"
dpid = 3
tier = "aggregation"
[[switch]]
name = "t1"
dpid = 4
tier = "access"
[[switch]]
name = "t2"
dpid = 5
tier = "access"
[[switch]]
name = "t3"
dpid = 6
tier = "access"
[[switch]]
name = "t4"
dpid = 7
tier = "access"

[[link]]
a = "c1:1"
b = "a1:1"
[[link]]
a = "c1:2"
b = "a2:1"
[[link]]
a = "a1:2"
b = "t1:1"
[[link]]
a = "a1:3"
b = "t2:1"
[[link]]
a = "a2:2"
b = "t3:1"
[[link]]
a = "a2:3"
b = "t4:1"

[[subnet]]
name = "outside"
switch = "c1"
prefix = "172.20.0.0/24"
gateway = "172.20.0.1"
[[subnet]]
name = "rack1"
switch = "t1"
prefix = "10.61.1.0/24"
gateway = "10.61.1.1"
[[subnet]]
name = "rack2"
switch = "t2"
prefix = "10.61.2.0/24"
gateway = "10.61.2.1"
[[subnet]]
name = "rack3"
switch = "t3"
prefix = "10.61.3.0/24"
gateway = "10.61.3.1"
[[subnet]]
name = "rack4"
switch = "t4"
prefix = "10.61.4.0/24"
gateway = "10.61.4.1"

[[host]]
name = "ext"
mac = "02:61:00:00:00:02"
ip = "172.20.0.2"
at = "c1:5"
[[host]]
name = "vm"
mac = "02:61:00:01:00:10"
ip = "10.61.1.10"
at = "t1:5"
[[host]]
name = "vm2"
mac = "02:61:00:01:00:11"
ip = "10.61.1.11"
at = "t1:6"
[[host]]
name = "d"
mac = "02:61:00:01:00:02"
ip = "10.61.1.2"
at = "t1:7"
[[host]]
name = "x"
mac = "02:61:00:02:00:02"
ip = "10.61.2.2"
at = "t2:5"
[[host]]
name = "y"
mac = "02:61:00:03:00:02"
ip = "10.61.3.2"
at = "t3:5"
[[host]]
name = "z"
mac = "02:61:00:04:00:02"
ip = "10.61.4.2"
at = "t4:5"
"#;

const EXT: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 2);
const VM: Ipv4Addr = Ipv4Addr::new(10, 61, 1, 10);
const VM2: Ipv4Addr = Ipv4Addr::new(10, 61, 1, 11);
const D: Ipv4Addr = Ipv4Addr::new(10, 61, 1, 2);
const X: Ipv4Addr = Ipv4Addr::new(10, 61, 2, 2);
const Y: Ipv4Addr = Ipv4Addr::new(10, 61, 3, 2);
const Z: Ipv4Addr = Ipv4Addr::new(10, 61, 4, 2);

/// The topology written to a file (the controller reads a file), without `leave_out`'s
/// hosts (those it learns).
fn topology(leave_out: &[&str]) -> (tempfile::TempDir, PathBuf, Topology) {
    let full = Topology::parse(TOPOLOGY).unwrap();
    let mut told = full.clone();
    told.hosts.retain(|h| !leave_out.contains(&h.name.as_str()));
    let text = if leave_out.is_empty() {
        TOPOLOGY.to_string()
    } else {
        toml::to_string(&told).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path, full)
}

fn migrations(ctl: &ControllerProcess) -> u64 {
    ctl.metric("servswitch_migrations_total")
}

fn hosts(ctl: &ControllerProcess) -> serde_json::Value {
    let (_, body) = ctl.api_get("/api/v1/hosts").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Every care-of address the controller shows now.
fn care_of(ctl: &ControllerProcess) -> BTreeSet<Ipv4Addr> {
    hosts(ctl)
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["care_of"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Moves `host` as a hypervisor does and waits until the controller has installed it.
fn migrate(ctl: &ControllerProcess, f: &mut OvsFabric, host: &str, to: (&str, u32)) {
    let n = migrations(ctl);
    let t0 = Instant::now();
    // QEMU's five announcements (see tests/ovs_migration.rs's `migrate`): the first goes
    // out the moment the port moves, as a single one did, so the outage measured is the same.
    f.migrate_host_qemu(host, to.0, to.1).unwrap();
    while migrations(ctl) == n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{host} -> {}:{} not migrated\ncontroller log:\n{}",
            to.0,
            to.1,
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lost pings grouped into outages (lost sequence numbers less than 10 apart: the moves are
/// more than 30 apart at 10 ms): the size of each.
fn outages(p: &PingReport) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut last: Option<u32> = None;
    for &s in &p.lost_seqs {
        match (last, out.last_mut()) {
            (Some(l), Some(n)) if s - l < 10 => *n += 1,
            _ => out.push(1),
        }
        last = Some(s);
    }
    out
}

/// No host captured any of `addrs`.
fn no_host_saw(
    captures: &std::collections::BTreeMap<String, Vec<common::traffic::Packet>>,
    addrs: &BTreeSet<Ipv4Addr>,
    ctl: &ControllerProcess,
) {
    for a in addrs {
        let seen = mentioning(captures, *a);
        assert!(
            seen.is_empty(),
            "care-of {a} reached a host: {} frames, first: {:?}\ncontroller log:\n{}",
            seen.len(),
            seen.first(),
            ctl.log()
        );
    }
}

#[test]
fn a_busy_vm_through_20_migrations_never_shows_a_care_of_address_nor_loses_a_connection() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_busy_vm_through_20_migrations") {
        return;
    }
    let (_dir, path, t) = topology(&[]);
    let (ctl, mut f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    let captures = Capture::start_all(&f).unwrap();
    // The VM's own traffic: pings every 2 ms to the outside, its home network and another
    // rack; TCP it opened to the outside and to rack 2, a message every 2 ms; UDP to rack 4.
    let mut busy: Vec<(Ipv4Addr, Pinger)> = [EXT, D, Y]
        .into_iter()
        .map(|dst| (dst, Pinger::start_every(&f, "vm", dst, "0.002").unwrap()))
        .collect();
    for (_, p) in &mut busy {
        p.wait_replies(20, Duration::from_secs(10)).unwrap();
    }
    let tcp: Vec<(&str, TcpStream)> = [("ext", EXT, 5301), ("x", X, 5302)]
        .into_iter()
        .map(|(h, dst, port)| {
            (
                h,
                TcpStream::start_every(&f, h, "vm", dst, port, None, 0.002).unwrap(),
            )
        })
        .collect();
    let udp = UdpFlow::start(&f, "vm", "z", Z, 5303, 0.002).unwrap();
    // The outage: ping -i 0.01 from outside to the VM.
    let mut outside = Pinger::start(&f, "ext", VM).unwrap();
    outside.wait_replies(20, Duration::from_secs(10)).unwrap();

    let tour = [("t3", 20), ("t4", 20), ("t1", 5), ("t2", 20), ("t3", 21)];
    let mut seen_care_of = BTreeSet::new();
    let t0 = Instant::now();
    for i in 0..20 {
        let to = tour[i % tour.len()];
        migrate(&ctl, &mut f, "vm", to);
        seen_care_of.extend(care_of(&ctl));
        // Traffic flows at the new place before the next move (QEMU's later RARPs too).
        std::thread::sleep(Duration::from_millis(300));
        f.announce("vm").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("20 migrations in {:?}", t0.elapsed());
    // Home at the end, and a moment for the last phase of the last move.
    std::thread::sleep(Duration::from_millis(1500));
    let out = outside.stop().unwrap();
    let busy: Vec<(Ipv4Addr, PingReport)> = busy
        .into_iter()
        .map(|(d, p)| (d, p.stop().unwrap()))
        .collect();
    let streams: Vec<(&str, common::traffic::StreamReport)> = tcp
        .into_iter()
        .map(|(h, s)| (h, s.stop().unwrap()))
        .collect();
    let udp = udp.stop().unwrap();
    let caps = captures.stop().unwrap();

    println!(
        "ping -i 0.01 ext -> vm: {out:?}\noutages: {:?}",
        outages(&out)
    );
    for (d, p) in &busy {
        println!(
            "ping -i 0.002 vm -> {d}: sent {}, lost {}, outages {:?}",
            p.transmitted,
            p.lost,
            outages(p)
        );
    }
    for (h, s) in &streams {
        println!(
            "tcp vm -> {h}: sent {}, echoed {}, max gap {} ms",
            s.sent, s.echoed, s.max_gap_ms
        );
    }
    println!("udp vm -> z: {udp:?}");
    println!("care-of addresses used: {seen_care_of:?}");

    // Hosts only ever saw home addresses.
    assert!(seen_care_of.len() >= 3, "{seen_care_of:?}");
    no_host_saw(&caps, &seen_care_of, &ctl);
    assert_eq!(udp.sources, [VM.to_string()], "{udp:?}");
    // The VM's own connections survived every move.
    for (h, s) in &streams {
        assert!(
            s.unbroken(),
            "tcp vm -> {h}: {s:?}\ncontroller log:\n{}",
            ctl.log()
        );
    }
    // At most 2 pings lost per migration at 10 ms, on a machine with CPU to spare. When the
    // test's own traffic (five flows every 2 ms beside the datapath and the controller)
    // saturates the machine, one move in the 20 may lose a third: measured the same with the
    // controller of before issue 17 (docs/performance.md, "A busy VM through 20 migrations").
    assert!(out.transmitted > 500, "{out:?}");
    let o = outages(&out);
    let third = o.iter().filter(|n| **n == 3).count();
    let allowed = if common::env::saturated() { 1 } else { 0 };
    assert!(
        o.len() <= 20 && o.iter().all(|n| *n <= 3) && third <= allowed,
        "outages {o:?} ({}): {out:?}\ncontroller log:\n{}",
        common::env::machine_load(),
        ctl.log()
    );
    assert_eq!(out.icmp_errors, 0, "{out:?}");
    for (d, p) in &busy {
        assert_eq!(p.icmp_errors, 0, "vm -> {d}: {p:?}");
    }
    assert!(udp.received > udp.sent * 9 / 10, "{udp:?}");
    f.teardown().unwrap();
}

#[test]
fn two_vms_talking_to_each_other_while_both_move() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("two_vms_talking_to_each_other_while_both_move") {
        return;
    }
    let (_dir, path, t) = topology(&[]);
    let (ctl, mut f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    let captures = Capture::start_all(&f).unwrap();
    let mut pings = [
        Pinger::start_every(&f, "vm", VM2, "0.005").unwrap(),
        Pinger::start_every(&f, "vm2", VM, "0.005").unwrap(),
    ];
    for p in &mut pings {
        p.wait_replies(20, Duration::from_secs(10)).unwrap();
    }
    let tcp = [
        TcpStream::start_every(&f, "vm2", "vm", VM2, 5311, None, 0.005).unwrap(),
        TcpStream::start_every(&f, "vm", "vm2", VM, 5312, None, 0.005).unwrap(),
    ];
    // Both leave home (one after the other), meet on one foreign rack, part, go home.
    let moves = [
        ("vm", ("t3", 20)),
        ("vm2", ("t3", 21)),
        ("vm", ("t4", 20)),
        ("vm2", ("t2", 21)),
        ("vm", ("t2", 20)),
        ("vm2", ("t4", 21)),
        ("vm", ("t1", 5)),
        ("vm2", ("t1", 6)),
    ];
    let mut seen_care_of = BTreeSet::new();
    for (h, to) in moves {
        migrate(&ctl, &mut f, h, to);
        seen_care_of.extend(care_of(&ctl));
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let [a, b] = pings;
    let (a, b) = (a.stop().unwrap(), b.stop().unwrap());
    let [s1, s2] = tcp;
    let (s1, s2) = (s1.stop().unwrap(), s2.stop().unwrap());
    let caps = captures.stop().unwrap();
    println!(
        "vm -> vm2: lost {} outages {:?}; vm2 -> vm: lost {} outages {:?}",
        a.lost,
        outages(&a),
        b.lost,
        outages(&b)
    );
    println!("care-of addresses used: {seen_care_of:?}");
    no_host_saw(&caps, &seen_care_of, &ctl);
    for s in [&s1, &s2] {
        assert!(s.unbroken(), "{s:?}\ncontroller log:\n{}", ctl.log());
    }
    assert_eq!((a.icmp_errors, b.icmp_errors), (0, 0));
    f.teardown().unwrap();
}

#[test]
fn a_learned_vm_whose_old_port_is_deleted_before_it_announces_moves() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_learned_vm_whose_old_port_is_deleted_before_it_announces") {
        return;
    }
    let (_dir, path, t) = topology(&["vm"]);
    let (ctl, mut f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    // Learned from its first packets.
    let (tx, rx) = f.ping("vm", EXT, 3);
    assert!(rx > 0, "{rx} of {tx}");
    let vm = |ctl: &ControllerProcess| {
        hosts(ctl)
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["ips"][0] == VM.to_string())
            .cloned()
    };
    let h = vm(&ctl).expect("learned");
    assert_eq!(
        (h["origin"].as_str(), h["attached"].as_bool()),
        (Some("learned"), Some(true))
    );
    let stream = TcpStream::start_every(&f, "ext", "vm", EXT, 5321, None, 0.005).unwrap();
    let mut outside = Pinger::start(&f, "ext", VM).unwrap();
    outside.wait_replies(20, Duration::from_secs(10)).unwrap();
    let captures = Capture::start_all(&f).unwrap();
    // The hypervisor deletes the source port; the controller keeps the VM, detached.
    f.unplug("vm").unwrap();
    let t0 = Instant::now();
    while vm(&ctl).is_some_and(|h| h["attached"] == true) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "never detached:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let h = vm(&ctl).expect("kept while detached");
    assert_eq!(h["location"]["switch"], "t1");
    // Then the destination port, then QEMU's RARP.
    let n = migrations(&ctl);
    f.plug("vm", "t3", 20).unwrap();
    f.announce("vm").unwrap();
    let t0 = Instant::now();
    while migrations(&ctl) == n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not migrated:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let co = care_of(&ctl);
    std::thread::sleep(Duration::from_millis(1000));
    let h = vm(&ctl).unwrap();
    assert_eq!(
        (h["location"]["switch"].as_str(), h["attached"].as_bool()),
        (Some("t3"), Some(true))
    );
    let out = outside.stop().unwrap();
    let s = stream.stop().unwrap();
    let caps = captures.stop().unwrap();
    println!("ping ext -> vm: {out:?}\ntcp vm -> ext: {s:?}");
    no_host_saw(&caps, &co, &ctl);
    assert!(s.unbroken(), "{s:?}\ncontroller log:\n{}", ctl.log());
    for (from, to) in [("ext", VM), ("vm", D), ("d", VM), ("vm", Z)] {
        let (tx, rx) = f.ping(from, to, 3);
        assert_eq!(rx, tx, "{from} -> {to}");
    }
    f.teardown().unwrap();
}

/// `servswitch_packet_ins_total` by kind, but `lldp` (the controller's link checks, a steady
/// few a second whatever the hosts do).
fn packet_ins(ctl: &ControllerProcess) -> BTreeMap<String, u64> {
    ctl.api_get("/metrics")
        .ok()
        .map(|(_, body)| {
            body.lines()
                .filter_map(|l| l.strip_prefix("servswitch_packet_ins_total{kind=\""))
                .filter_map(|l| {
                    let (kind, rest) = l.split_once('"')?;
                    let n = rest.rsplit_once(' ')?.1.trim().parse::<u64>().ok()?;
                    (kind != "lldp").then(|| (kind.to_string(), n))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hosts_that_ignore_redirects_cost_no_packet_ins_after_a_second() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("hosts_that_ignore_redirects_cost_no_packet_ins_after_a_second") {
        return;
    }
    let (_dir, path, t) = topology(&[]);
    let (ctl, mut f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    // y ignores redirects altogether; the VM takes them, but Linux ignores a redirect that
    // quotes an already acknowledged TCP segment, which on a fast network is most of them.
    for (h, key) in [("y", "all"), ("y", "eth0")] {
        f.exec(
            h,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{key}.accept_redirects=0"),
            ],
        )
        .unwrap();
    }
    migrate(&ctl, &mut f, "vm", ("t3", 20));
    std::thread::sleep(Duration::from_millis(1200)); // the move's last phase
    let mut ping = Pinger::start(&f, "y", VM).unwrap();
    ping.wait_replies(5, Duration::from_secs(5)).unwrap();
    let tcp = TcpStream::start_every(&f, "y", "vm", Y, 5331, None, 0.005).unwrap();
    // The first second: redirect bursts, then quiet.
    std::thread::sleep(Duration::from_secs(1));
    let before = (packet_ins(&ctl), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let after = (packet_ins(&ctl), Instant::now());
    let new: BTreeMap<&str, u64> = after
        .0
        .iter()
        .map(|(k, n)| (k.as_str(), n - before.0.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = new.values().sum();
    let rate = total as f64 / after.1.duration_since(before.1).as_secs_f64();
    let p = ping.stop().unwrap();
    let s = tcp.stop().unwrap();
    println!(
        "after the first second: {rate:.1} packet-ins/s {new:?}; ping {p:?}; tcp sent {} echoed {}",
        s.sent, s.echoed
    );
    assert!(s.unbroken(), "{s:?}");
    assert_eq!(p.lost, 0, "{p:?}");
    // The pair's packets (IPv4) reach the controller no more. The hosts' own neighbour
    // discovery and group reports (ARP, IPv6 NS and MLD, sent at random times by Linux)
    // reach it on purpose, as they show moves: one of those fell into the window in 3 of 25
    // runs (the one whose kind was printed: IPv6), which is not what this test is about; a
    // few are allowed.
    let ipv4 = new.get("ipv4").copied().unwrap_or(0);
    assert!(
        ipv4 == 0 && total - ipv4 <= 2,
        "{rate:.1} packet-ins/s {new:?}\ncontroller log:\n{}",
        ctl.log()
    );
    f.teardown().unwrap();
}

#[test]
fn hosts_redirected_to_a_vm_reach_it_within_a_second_after_it_leaves() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("hosts_redirected_to_a_vm_reach_it_within_a_second_after_it_leaves") {
        return;
    }
    let (_dir, path, t) = topology(&[]);
    let (ctl, mut f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    // Neighbour entries go stale within a second and are probed again soon after (Linux
    // defaults: 30 s and 5 s), so the test sees the ARP the controller must answer for a
    // peer that moved, not only the caches from before.
    for h in ["y", "vm"] {
        for kv in [
            "net.ipv4.neigh.eth0.base_reachable_time_ms=300",
            "net.ipv4.neigh.eth0.delay_first_probe_time=1",
        ] {
            f.exec(h, &["sysctl", "-qw", kv]).unwrap();
        }
    }
    for (i, (to, back)) in [(("t3", 20), ("t4", 20)), (("t3", 21), ("t1", 5))]
        .into_iter()
        .enumerate()
    {
        migrate(&ctl, &mut f, "vm", to);
        // y and the VM redirected to each other: pings both ways until Linux has the route
        // exceptions (`ip route get` shows the peer as its own gateway's replacement).
        let t0 = Instant::now();
        let redirected = |h: &str, dst: Ipv4Addr| {
            f.exec(h, &["ip", "-4", "route", "get", &dst.to_string()])
                .is_ok_and(|o| o.contains(&format!("via {dst}")) || !o.contains(" via "))
        };
        while !(redirected("y", VM) && redirected("vm", Y)) {
            assert!(t0.elapsed() < Duration::from_secs(5), "no redirect took");
            f.ping("y", VM, 2);
            f.ping("vm", Y, 2);
        }
        // The VM leaves: within a second, ICMP, UDP and new TCP connections work both ways.
        migrate(&ctl, &mut f, "vm", back);
        let t0 = Instant::now();
        let (tx, rx) = f.ping("y", VM, 1);
        let (tx2, rx2) = f.ping("vm", Y, 1);
        let udp = UdpFlow::start(&f, "y", "vm", VM, 5340 + i as u16, 0.01).unwrap();
        let tcp_in = TcpStream::start_for(
            &f,
            "vm",
            "y",
            VM,
            5350 + i as u16,
            Some(Duration::from_millis(200)),
        );
        let tcp_out = TcpStream::start_for(
            &f,
            "y",
            "vm",
            Y,
            5360 + i as u16,
            Some(Duration::from_millis(200)),
        );
        let took = t0.elapsed();
        std::thread::sleep(Duration::from_millis(200));
        let udp = udp.stop().unwrap();
        let (tcp_in, tcp_out) = (
            tcp_in.unwrap().stop().unwrap(),
            tcp_out.unwrap().stop().unwrap(),
        );
        println!("vm to {back:?}: ping y->vm {rx}/{tx}, vm->y {rx2}/{tx2}, udp {udp:?}, new tcp both ways in {took:?}");
        assert_eq!((rx, rx2), (tx, tx2), "pings");
        assert!(
            udp.received > 0 && udp.sources == [Y.to_string()],
            "{udp:?}"
        );
        assert!(
            tcp_in.unbroken() && tcp_out.unbroken(),
            "{tcp_in:?} {tcp_out:?}"
        );
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Once their caches have gone stale and been probed: still both ways.
        std::thread::sleep(Duration::from_secs(3));
        for (from, to) in [("y", VM), ("vm", Y)] {
            let (tx, rx) = f.ping(from, to, 3);
            assert_eq!(
                rx,
                tx,
                "{from} -> {to} with stale caches\ncontroller log:\n{}",
                ctl.log()
            );
        }
    }
    f.teardown().unwrap();
}

#[test]
fn a_cover_switch_whose_hosts_go_quiet_leaves_the_cover_on_open_vswitch() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_cover_switch_whose_hosts_go_quiet_leaves_the_cover") {
        return;
    }
    let (_dir, path, t) = topology(&[]);
    let (ctl, mut f) =
        ovs_fabric::start_routed_links(&t, &path, &["--cover-idle", "2"], Links::Patch);
    migrate(&ctl, &mut f, "vm", ("t3", 20));
    // x (rack 2, outside the VM's default cover) talks to it: t2 joins the cover, with a
    // rewrite that idles out.
    let dnat = format!("ip,nw_dst={VM} actions=set_field:");
    let t0 = Instant::now();
    while !f.dump_flows("t2").unwrap().contains(&dnat) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "t2 never joined the cover\n{}",
            ctl.log()
        );
        f.ping("x", VM, 1);
    }
    let line = f
        .dump_flows("t2")
        .unwrap()
        .lines()
        .find(|l| l.contains(&dnat))
        .unwrap()
        .to_string();
    assert!(
        line.contains("idle_timeout=2") && line.contains("send_flow_rem"),
        "{line}"
    );
    // Quiet: Open vSwitch removes it and says so; the controller takes t2 out of the cover
    // (the restore goes after the drain) and the tables are the plan again.
    let t0 = Instant::now();
    while f.dump_flows("t2").unwrap().contains(&VM.to_string()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "t2 still has the VM's entries:\n{}\n{}",
            f.dump_flows("t2").unwrap(),
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ctl.log().contains("cover entry idled out"), "{}", ctl.log());
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args(["verify", "--api", &api])
            .output()
            .unwrap()
    };
    let t0 = Instant::now();
    while !verify().status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{}",
            String::from_utf8_lossy(&verify().stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // x talks again: t2 is back in the cover at once, and x reaches the VM all along.
    let (tx, rx) = f.ping("x", VM, 3);
    assert_eq!(rx, tx);
    let t0 = Instant::now();
    while !f.dump_flows("t2").unwrap().contains(&dnat) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "t2 did not come back\n{}",
            ctl.log()
        );
        f.ping("x", VM, 1);
    }
    f.teardown().unwrap();
}

#[test]
fn deleting_a_host_through_the_api_forgets_learned_ones_only() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("deleting_a_host_through_the_api") {
        return;
    }
    let (_dir, path, t) = topology(&["vm"]);
    let (ctl, f) = ovs_fabric::start_routed_links(&t, &path, &[], Links::Patch);
    let (_, rx) = f.ping("vm", EXT, 3);
    assert!(rx > 0);
    let delete = |host: &str| ctl.api("DELETE", &format!("/api/v1/hosts/{host}")).unwrap();
    assert_eq!(delete("d").0, 409, "a declared host");
    assert_eq!(delete("10.61.9.9").0, 404, "nobody");
    assert_eq!(delete("not-a-host").0, 404);
    let (status, body) = delete(&VM.to_string());
    assert_eq!(status, 204, "{body}");
    let (_, hosts) = ctl.api_get("/api/v1/hosts").unwrap();
    assert!(!hosts.contains(&VM.to_string()), "{hosts}");
    assert!(!f.dump_flows("t1").unwrap().contains(&VM.to_string()));
    // It comes back with its traffic.
    let (_, rx) = f.ping("vm", EXT, 3);
    assert!(rx > 0);
    assert_eq!(ctl.api_get("/healthz").unwrap(), (200, "ok".to_string()));
    f.teardown().unwrap();
}
