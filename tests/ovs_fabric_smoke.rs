//! The Open vSwitch fabric harness (tests/common/ovs_fabric.rs) against the real thing: the
//! paper testbed built as userspace-datapath bridges, veth links and host namespaces,
//! connected to the real `servswitch run`. Needs root, a running Open vSwitch and `ip netns`;
//! skips without them, fails instead when CI=true.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess, OvsFabric};
use servswitch::fabric::topology::Topology;

/// The tests of this file run one at a time so their timings mean something.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn paper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml")
}

/// The OpenFlow port numbers `ovs-ofctl show` lists for a bridge, LOCAL left out.
fn shown_ports(show: &str) -> BTreeSet<u32> {
    show.lines()
        .filter_map(|l| {
            let (num, _) = l.trim_start().split_once('(')?;
            num.parse().ok()
        })
        .collect()
}

/// The number after `key` in `text` (`n_packets=`, `rx pkts=`).
fn counter(text: &str, key: &str) -> u64 {
    text.split(key)
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn rx_packets(f: &OvsFabric, host: &str) -> u64 {
    f.exec(host, &["cat", "/sys/class/net/eth0/statistics/rx_packets"])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every host's namespace holds what the topology says: MAC, address/prefix, default route via
/// its subnet's gateway, loopback up, transmit checksum offload off.
fn check_hosts(f: &OvsFabric) {
    for h in f.hosts() {
        let link = f
            .exec(&h.name, &["ip", "link", "show", "dev", "eth0"])
            .unwrap();
        assert!(link.contains(&format!("link/ether {}", h.mac)), "{link}");
        assert!(link.contains("state UP"), "{}: {link}", h.name);
        let addr = f
            .exec(&h.name, &["ip", "-4", "addr", "show", "dev", "eth0"])
            .unwrap();
        for (ip, len) in &h.addrs {
            assert!(addr.contains(&format!("inet {ip}/{len} ")), "{addr}");
        }
        let route = f
            .exec(&h.name, &["ip", "route", "show", "default"])
            .unwrap();
        assert!(
            route.contains(&format!("default via {} dev eth0", h.gateway)),
            "{}: {route}",
            h.name
        );
        let lo = f
            .exec(&h.name, &["ip", "link", "show", "dev", "lo"])
            .unwrap();
        assert!(lo.contains(",UP,"), "{}: {lo}", h.name);
        let offload = f.exec(&h.name, &["ethtool", "-k", "eth0"]).unwrap();
        assert!(
            offload.contains("tx-checksumming: off"),
            "{}: {offload}",
            h.name
        );
    }
}

/// Each bridge shows exactly the topology's port numbers: its link ends and its hosts.
fn check_ports(f: &OvsFabric, t: &Topology) {
    for sw in &t.switches {
        let mut want = BTreeSet::new();
        for l in &t.links {
            for e in [&l.a, &l.b] {
                if e.switch == sw.name {
                    want.insert(e.port);
                }
            }
        }
        for h in &t.hosts {
            if h.at.switch == sw.name {
                want.insert(h.at.port);
            }
        }
        let show = f.ofctl("show", &sw.name, &[]).unwrap();
        assert_eq!(shown_ports(&show), want, "{}:\n{show}", sw.name);
        assert!(
            show.contains(&format!("dpid:{:016x}", sw.dpid.0)),
            "{}:\n{show}",
            sw.name
        );
    }
    for h in f.hosts() {
        assert_eq!(f.ofport_of(&h.switch, &h.veth), Some(h.port), "{}", h.name);
    }
}

/// Each link carries packets both ways: with two temporary flows (sender's host
/// port -> link port; peer link port -> receiver's host port), an ARP request the sender's
/// kernel makes for its gateway arrives in the receiver's namespace. ofproto/trace shows the
/// same path in each bridge.
fn check_links(f: &OvsFabric) {
    let mut checked = 0;
    for (i, (a, b)) in f.links().iter().enumerate() {
        for (dir, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
            let host_on = |sw: &str| f.hosts().find(|h| h.switch == sw).cloned();
            let (Some(tx), Some(rx)) = (host_on(&from.switch), host_on(&to.switch)) else {
                continue;
            };
            let cookie = format!("0x5353ff00000{i:03x}{dir}");
            let cookie_match = format!("cookie={cookie}/-1");
            f.ofctl(
                "add-flow",
                &from.switch,
                &[&format!(
                    "cookie={cookie},priority=60000,in_port={},actions=output:{}",
                    tx.port, from.port
                )],
            )
            .unwrap();
            f.ofctl(
                "add-flow",
                &to.switch,
                &[&format!(
                    "cookie={cookie},priority=60000,in_port={},actions=output:{}",
                    to.port, rx.port
                )],
            )
            .unwrap();

            // ofproto/trace stays in one bridge (a veth is a real link): the sender's bridge
            // sends the frame into the link, the receiver's bridge from the link to the host.
            let arp = |in_port: u32| {
                format!(
                    "in_port={in_port},arp,dl_src={},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa={},arp_tpa={}",
                    tx.mac, tx.addrs[0].0, tx.gateway
                )
            };
            for (sw, in_port, out) in [
                (&from.switch, tx.port, from.port),
                (&to.switch, to.port, rx.port),
            ] {
                let trace = f.trace(sw, &arp(in_port)).unwrap();
                assert!(
                    trace.contains(&format!("bridge(\"{}\")", f.bridge(sw)))
                        && trace.contains(&format!("output:{out}"))
                        && !trace.contains("Datapath actions: drop"),
                    "{} -> {}: trace in {sw} does not reach port {out}:\n{trace}",
                    tx.name,
                    rx.name,
                );
            }

            let port_rx = |sw: &str, port: u32| {
                counter(
                    &f.ofctl("dump-ports", sw, &[&port.to_string()]).unwrap(),
                    "rx pkts=",
                )
            };
            let link_before = port_rx(&to.switch, to.port);
            let host_before = rx_packets(f, &rx.name);
            f.exec(&tx.name, &["ip", "neigh", "flush", "dev", "eth0"])
                .unwrap();
            // Nobody answers for the gateway yet: the ping fails, its ARP requests travel.
            let (sent, _) = f.ping(&tx.name, tx.gateway, 1);
            assert_eq!(sent, 1, "{} could not send", tx.name);
            let what = format!("{} -> {} over {}-{}", tx.name, rx.name, from.name, to.name);
            poll(&what, Duration::from_secs(5), || {
                let flows = f.ofctl("dump-flows", &to.switch, &[&cookie_match]).unwrap();
                let n = counter(&flows, "n_packets=");
                let link = port_rx(&to.switch, to.port) - link_before;
                let host = rx_packets(f, &rx.name) - host_before;
                (n > 0 && link > 0 && host > 0).then_some(())
            });
            for sw in [&from.switch, &to.switch] {
                f.ofctl("del-flows", sw, &[&cookie_match]).unwrap();
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no link had hosts on both sides");
}

#[test]
fn paper_testbed_on_open_vswitch() {
    let _serial = serial();
    if !ovs_fabric::available("paper_testbed_on_open_vswitch") {
        return;
    }
    let topo = Topology::load(&paper()).unwrap();
    let ctl = ControllerProcess::start(&paper(), &[]);

    let t0 = Instant::now();
    let fabric = OvsFabric::build(&topo, Some(ctl.of_port)).unwrap();
    let built = t0.elapsed();
    let slot = fabric.slot();
    if let Err(e) = fabric.wait_connected(Instant::now() + Duration::from_secs(15)) {
        panic!("{e}\ncontroller log:\n{}", ctl.log());
    }
    let connected = t0.elapsed();
    assert!(fabric.all_connected());

    // The controller sees the same: every switch of the file connected.
    poll(
        "the API to list every switch connected",
        Duration::from_secs(10),
        || {
            let (status, body) = ctl.api_get("/api/v1/switches").ok()?;
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let up: BTreeSet<String> = v
                .as_array()?
                .iter()
                .filter(|s| s["connected"] == true)
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect();
            (up.len() == topo.switches.len()).then_some(())
        },
    );

    check_ports(&fabric, &topo);
    check_hosts(&fabric);
    check_links(&fabric);

    let t1 = Instant::now();
    fabric.teardown().unwrap();
    let torn = t1.elapsed();
    let (b, l, n) = ovs_fabric::leftovers(slot);
    assert!(
        b.is_empty() && l.is_empty() && n.is_empty(),
        "left behind: {b:?} {l:?} {n:?}"
    );
    println!(
        "paper testbed (3 switches, 2 links, 5 hosts): build {built:?}, all connected after {connected:?}, teardown {torn:?}"
    );
}

/// A generated fabric: one core switch, `access` access switches with one /24 each and
/// `per` hosts on each.
fn generated(access: u32, per: u32) -> String {
    let mut t = String::from("[[switch]]\nname = \"c1\"\ndpid = 100\ntier = \"core\"\n");
    for a in 1..=access {
        t += &format!("[[switch]]\nname = \"a{a}\"\ndpid = {a}\ntier = \"access\"\n");
        t += &format!("[[link]]\na = \"c1:{a}\"\nb = \"a{a}:1\"\n");
        t += &format!(
            "[[subnet]]\nname = \"s{a}\"\nswitch = \"a{a}\"\nprefix = \"10.{a}.0.0/24\"\ngateway = \"10.{a}.0.1\"\n"
        );
        for h in 1..=per {
            t += &format!(
                "[[host]]\nname = \"h{a}x{h}\"\nmac = \"02:00:00:00:{a:02x}:{h:02x}\"\nip = \"10.{a}.0.{}\"\nat = \"a{a}:{}\"\n",
                h + 1,
                h + 1
            );
        }
    }
    t
}

/// Build-up and tear-down times of the paper testbed and of a 20-host fabric, each with the
/// controller connected; also checks that a built fabric's hosts are configured and that
/// teardown leaves nothing behind.
#[test]
fn build_and_teardown_timings() {
    let _serial = serial();
    if !ovs_fabric::available("build_and_teardown_timings") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("fabric-20.toml");
    std::fs::write(&big, generated(4, 5)).unwrap();
    for (label, path) in [("paper testbed", paper()), ("20-host fabric", big)] {
        let topo = Topology::load(&path).unwrap();
        assert!(topo.hosts.len() <= 20);
        let ctl = ControllerProcess::start(&path, &[]);
        let t0 = Instant::now();
        let fabric = OvsFabric::build(&topo, Some(ctl.of_port)).unwrap();
        let built = t0.elapsed();
        if let Err(e) = fabric.wait_connected(Instant::now() + Duration::from_secs(15)) {
            panic!("{e}\ncontroller log:\n{}", ctl.log());
        }
        let connected = t0.elapsed();
        check_ports(&fabric, &topo);
        check_hosts(&fabric);
        let slot = fabric.slot();
        let t1 = Instant::now();
        fabric.teardown().unwrap();
        let torn = t1.elapsed();
        let (b, l, n) = ovs_fabric::leftovers(slot);
        assert!(b.is_empty() && l.is_empty() && n.is_empty());
        println!(
            "{label} ({} switches, {} links, {} hosts): build {built:?}, all connected after {connected:?}, teardown {torn:?}",
            topo.switches.len(),
            topo.links.len(),
            topo.hosts.len()
        );
    }
}

/// move_host keeps the namespace, MAC and address and re-attaches the veth elsewhere under
/// the requested port number; the old switch loses the port.
#[test]
fn move_host_reattaches_the_veth() {
    let _serial = serial();
    if !ovs_fabric::available("move_host_reattaches_the_veth") {
        return;
    }
    let topo = Topology::load(&paper()).unwrap();
    let mut fabric = OvsFabric::build(&topo, None).unwrap();
    let before = fabric.host("vm").clone();
    assert_eq!((before.switch.as_str(), before.port), ("r3", 3));
    fabric.move_host("vm", "r2", 7).unwrap();
    let after = fabric.host("vm").clone();
    assert_eq!((after.switch.as_str(), after.port), ("r2", 7));
    assert_eq!(fabric.ofport_of("r2", &after.veth), Some(7));
    assert_eq!(fabric.ofport_of("r3", &after.veth), None);
    assert!(!shown_ports(&fabric.ofctl("show", "r3", &[]).unwrap()).contains(&3));
    assert!(shown_ports(&fabric.ofctl("show", "r2", &[]).unwrap()).contains(&7));
    check_hosts(&fabric);
    // The moved host still sends and receives through its new port: move vm2 (same subnet)
    // next to it, let a flow pair on r2 forward between the two ports, and ping.
    fabric.move_host("vm2", "r2", 8).unwrap();
    for (i, o) in [(7, 8), (8, 7)] {
        fabric
            .ofctl(
                "add-flow",
                "r2",
                &[&format!("priority=60000,in_port={i},actions=output:{o}")],
            )
            .unwrap();
    }
    let (sent, received) = fabric.ping("vm", "192.168.11.4".parse().unwrap(), 3);
    assert_eq!((sent, received), (3, 3));
    fabric.teardown().unwrap();
}

/// A test that panics with a fabric alive leaves nothing behind (the drop guard runs while
/// unwinding).
#[test]
fn drop_cleans_up_after_a_panic() {
    let _serial = serial();
    if !ovs_fabric::available("drop_cleans_up_after_a_panic") {
        return;
    }
    let topo = Topology::load(&paper()).unwrap();
    let mut slot = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fabric = OvsFabric::build(&topo, None).unwrap();
        slot = Some(fabric.slot());
        let (b, l, n) = ovs_fabric::leftovers(fabric.slot());
        assert_eq!((b.len(), n.len()), (3, 5), "{b:?} {n:?}");
        assert!(l.len() >= 5, "{l:?}");
        // resume_unwind unwinds like a panic but without the panic hook's message.
        std::panic::resume_unwind(Box::new("deliberate"));
    }));
    assert!(result.is_err());
    let (b, l, n) = ovs_fabric::leftovers(slot.unwrap());
    assert!(
        b.is_empty() && l.is_empty() && n.is_empty(),
        "left behind: {b:?} {l:?} {n:?}"
    );
}
