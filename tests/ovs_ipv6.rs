//! IPv6 routing on real Open vSwitch (issue 17, part 2): topologies/dual-stack.toml as
//! userspace bridges, Linux hosts in namespaces with IPv6 on (their declared addresses
//! configured, their default route left to the controller's router advertisements), the real
//! `servswitch run`. Every pair of subnets reaches each other by ping and by TCP, the gateway
//! addresses answer, a hop limit that runs out is reported by the gateway, and an address a
//! host gave itself (SLAAC, from the advertised prefix) works because the controller learned
//! it from the host's duplicate address detection.
//!
//! Needs root and a running Open vSwitch; skips without them, fails instead when CI=true.

mod common;

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, python3, ControllerProcess, OvsFabric};
use common::traffic::{mentioning, Capture, CaptureSet, Pinger, TcpStream};
use servswitch::fabric::topology::Topology;

/// One fabric at a time: the tests share host names (namespaces) and the machine's 2 cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const GATEWAY_LL: &str = "fe80::53:53ff:fe00:1";

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `ping -6` from `host`: (sent, received), and its output.
fn ping6(f: &OvsFabric, host: &str, args: &[&str], to: &str) -> (u32, u32, String) {
    let mut all = vec!["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1"];
    all.extend_from_slice(args);
    all.push(to);
    let out = f
        .command(host, &all)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let (tx, rx) = ovs_fabric::parse_ping(&out);
    (tx, rx, out)
}

fn reaches(f: &OvsFabric, ctl: &ControllerProcess, from: &str, to: &str) {
    let (tx, rx, out) = ping6(f, from, &[], to);
    assert!(
        tx == 3 && rx >= 2,
        "{from} -> {to}: {rx} of {tx}\n{out}\ncontroller log:\n{}",
        ctl.log()
    );
}

/// Waits until `host` has a default IPv6 route through the fabric's link-local gateway
/// (from a router advertisement) and an autoconfigured address in its prefix; that address.
fn autoconfigured(f: &OvsFabric, ctl: &ControllerProcess, host: &str) -> Ipv6Addr {
    let t0 = Instant::now();
    loop {
        let route = f
            .exec(host, &["ip", "-6", "route", "show", "default"])
            .unwrap_or_default();
        let addrs = f
            .exec(
                host,
                &[
                    "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
                ],
            )
            .unwrap_or_default();
        // SLAAC addresses are "dynamic"; the declared ones are not.
        let slaac = addrs
            .lines()
            .filter(|l| l.contains("dynamic") && !l.contains("tentative"))
            .find_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok());
        if let (true, Some(a)) = (route.contains(&format!("via {GATEWAY_LL}")), slaac) {
            return a;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{host}: no default route or SLAAC address from a router advertisement:\n{route}\n{addrs}\ncontroller log:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ipv6_is_routed_between_subnets_with_the_gateways_answering() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("ipv6_is_routed_between_subnets_with_the_gateways_answering") {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dual-stack.toml");
    let t = Topology::load(&path).unwrap();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);
    // Router advertisements: every host gets its default route and an address of its own.
    let mut slaac = Vec::new();
    for h in ["e", "b", "d", "v6only"] {
        let a = autoconfigured(&f, &ctl, h);
        assert!(
            t.subnets
                .iter()
                .any(|s| s.prefix6.is_some_and(|p| p.contains(a))),
            "{h}: {a}"
        );
        slaac.push((h, a));
    }
    // The gateway addresses answer, global and link-local.
    reaches(&f, &ctl, "d", "fd00:0:0:11::1");
    reaches(&f, &ctl, "v6only", &format!("{GATEWAY_LL}%eth0"));
    // Every subnet to every other, both ways, and within one subnet (switched).
    for (from, to) in [
        ("d", "fd00:0:0:10::2"),
        ("b", "fd00:0:0:11::2"),
        ("e", "fd00:0:0:11::5"),
        ("v6only", "fd00:0:0:a::2"),
        ("b", "fd00:0:0:a::2"),
        ("d", "fd00:0:0:11::5"),
        ("e", "fd00:0:0:10::1"),
    ] {
        reaches(&f, &ctl, from, to);
    }
    // An address a host gave itself, learned from its duplicate address detection: used as
    // the source toward another subnet, and reached from there.
    for (h, a) in &slaac {
        let to = if *h == "b" {
            "fd00:0:0:a::2"
        } else {
            "fd00:0:0:10::2"
        };
        let (tx, rx, out) = ping6(&f, h, &["-I", &a.to_string()], to);
        assert!(
            tx == 3 && rx >= 2,
            "{h} from {a} -> {to}: {out}\n{}",
            ctl.log()
        );
    }
    let (_, b_slaac) = slaac.iter().find(|(h, _)| *h == "b").unwrap();
    reaches(&f, &ctl, "d", &b_slaac.to_string());
    // A hop limit that runs out: reported by the gateway of the sender's subnet.
    let (_, rx, out) = ping6(&f, "d", &["-t", "1"], "fd00:0:0:10::2");
    assert_eq!(rx, 0, "{out}");
    assert!(
        out.contains("fd00:0:0:11::1") && out.contains("Time exceeded"),
        "{out}\n{}",
        ctl.log()
    );
    // TCP over IPv6 across two routed hops: 256 KiB echoed back intact.
    tcp6_echo(&f, "b", "d", a6("fd00:0:0:10::2"));
    tcp6_echo(&f, "e", "v6only", a6("fd00:0:0:a::2"));
    // IPv4 is unchanged beside it.
    let (tx, rx) = f.ping("d", "192.168.10.2".parse().unwrap(), 3);
    assert!(tx == 3 && rx >= 2);
    f.teardown().unwrap();
}

/// The VM's IPv6 address (dual stack: 192.168.11.3 too).
const VM6: &str = "fd00:0:0:11::3";

/// Moves `host` to `switch:port` with its RARP and waits until the controller has installed
/// the migration.
fn migrate(ctl: &ControllerProcess, f: &mut OvsFabric, host: &str, switch: &str, port: u32) {
    let n = ctl.metric("servswitch_migrations_total");
    let t0 = Instant::now();
    // QEMU's five announcements (see tests/ovs_migration.rs's `migrate`).
    f.migrate_host_qemu(host, switch, port).unwrap();
    while ctl.metric("servswitch_migrations_total") == n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{host} -> {switch}:{port} not migrated\ncontroller log:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The IPv6 addresses the controller knows of host `name`.
fn ipv6_of(ctl: &ControllerProcess, name: &str) -> Vec<Ipv6Addr> {
    let (_, body) = ctl.api_get("/api/v1/hosts").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == name)
        .flat_map(|h| h["ips"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// The IPv6 care-of addresses the controller holds now.
fn care_of6(ctl: &ControllerProcess) -> Vec<Ipv6Addr> {
    let (_, body) = ctl.api_get("/api/v1/hosts").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["care_of"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Issue 17, part 3 on real Open vSwitch: the dual-stack VM moves to the foreign subnet on
/// one RARP with both its addresses. TCP over IPv6 to it from the edge (case 2), its home
/// network (case 4) and the foreign network (case 6), and ping -6 -i 0.01 from the edge and
/// home, run through the move and back; the VM reaches every host by IPv6 from where it is
/// (cases 1, 3, 5), and ICMPv6 redirects put it and the foreign host on one link (cases 5
/// and 6); no host ever sees its IPv6 care-of address. Then the host with IPv6
/// addresses only moves too, with a TCP connection open.
#[test]
fn a_dual_stack_vm_moves_with_its_ipv6_address_and_keeps_its_connections() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available(
        "a_dual_stack_vm_moves_with_its_ipv6_address_and_keeps_its_connections",
    ) {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dual-stack.toml");
    let t = Topology::load(&path).unwrap();
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    for h in ["e", "b", "d", "vm"] {
        autoconfigured(&f, &ctl, h);
    }
    let vm_before = f.host_state("vm").unwrap();
    let captures = Capture::start_all(&f).unwrap();
    // Caches hold the answers from before the move.
    for h in ["e", "d", "b"] {
        reaches(&f, &ctl, h, VM6);
    }
    let streams: Vec<(&str, TcpStream)> = [("e", 5001), ("d", 5002), ("b", 5003)]
        .into_iter()
        .map(|(h, port)| (h, TcpStream::start(&f, "vm", h, a6(VM6), port).unwrap()))
        .collect();
    let mut from_e = Pinger::start(&f, "e", a6(VM6)).unwrap();
    let mut from_d = Pinger::start(&f, "d", a6(VM6)).unwrap();
    from_e.wait_replies(20, Duration::from_secs(5)).unwrap();
    from_d.wait_replies(20, Duration::from_secs(5)).unwrap();
    migrate(&ctl, &mut f, "vm", "r2", 3);
    // One care-of address per IPv6 address of the VM: its declared one and the one it gave
    // itself from the router advertisement (learned from its duplicate address detection).
    let held = care_of6(&ctl);
    let vm6 = ipv6_of(&ctl, "vm");
    assert!(vm6.contains(&a6(VM6)) && vm6.len() == 2, "{vm6:?}");
    assert_eq!(held.len(), vm6.len(), "{held:?} for {vm6:?}");
    std::thread::sleep(Duration::from_millis(500));
    // From where it is, the VM reaches the edge, its home network and the foreign one.
    for to in [
        "fd00:0:0:a::2",
        "fd00:0:0:11::2",
        "fd00:0:0:10::2",
        "fd00:0:0:11::5",
    ] {
        reaches(&f, &ctl, "vm", to);
    }
    let (tx, rx) = f.ping("vm", "10.0.0.2".parse().unwrap(), 3);
    assert!(tx == 3 && rx >= 2, "IPv4 moved with it");
    // Cases 5 and 6: the VM and b share a link now; ICMPv6 redirects from the link-local
    // gateway make each the other's next hop (no "via" the gateway any more).
    for (from, to) in [("vm", "fd00:0:0:10::2"), ("b", VM6)] {
        reaches(&f, &ctl, from, to);
        reaches(&f, &ctl, from, to);
        let r = f.exec(from, &["ip", "-6", "route", "get", to]).unwrap();
        assert!(
            !r.contains(&format!("via {GATEWAY_LL}")),
            "{from} -> {to} not redirected: {r}\ncontroller log:\n{}",
            ctl.log()
        );
    }
    migrate(&ctl, &mut f, "vm", "r3", 3);
    std::thread::sleep(Duration::from_millis(500));
    assert!(care_of6(&ctl).is_empty(), "given back at home");
    let e = from_e.stop().unwrap();
    let d = from_d.stop().unwrap();
    println!("ping -6 e -> vm: {e:?}\nping -6 d -> vm: {d:?}");
    for l in ctl.log().lines().filter(|l| l.contains("migrated")) {
        println!("{l}");
    }
    for (h, stream) in streams {
        let s = stream.stop().unwrap();
        println!("tcp6 {h} -> vm: {s:?}");
        assert!(s.unbroken(), "{h}: {s:?}\ncontroller log:\n{}", ctl.log());
    }
    // The VM is unreachable from when its port moves (a veth to another bridge) until the
    // RARP is heard and the update's producers are in: a dual-stack move is 38 flow mods in
    // phases with barriers, 4-10 ms here; 1-3 pings at 10 ms intervals measured.
    for (who, p) in [("e", &e), ("d", &d)] {
        assert!(p.transmitted > 50, "{who}: {p:?}");
        assert!(
            p.lost <= 6 && p.longest_loss_run <= 3,
            "{who}: two migrations, at most 3 lost each: {p:?}\ncontroller log:\n{}",
            ctl.log()
        );
    }
    never_seen(captures, &held);
    let vm_after = f.host_state("vm").unwrap();
    assert_eq!(vm_before.addrs, vm_after.addrs, "the VM's addresses");
    // A host with IPv6 addresses only moves the same way, and keeps its TCP.
    autoconfigured(&f, &ctl, "v6only");
    let only = TcpStream::start(&f, "v6only", "e", a6("fd00:0:0:11::5"), 5004).unwrap();
    migrate(&ctl, &mut f, "v6only", "r2", 4);
    let held = care_of6(&ctl);
    assert_eq!(held.len(), ipv6_of(&ctl, "v6only").len(), "{held:?}");
    for (from, to) in [
        ("d", "fd00:0:0:11::5"),
        ("b", "fd00:0:0:11::5"),
        ("v6only", "fd00:0:0:a::2"),
    ] {
        reaches(&f, &ctl, from, to);
    }
    let s = only.stop().unwrap();
    assert!(s.unbroken(), "tcp6 e -> v6only: {s:?}\n{}", ctl.log());
    f.teardown().unwrap();
}

/// A TCP server on `server` at `addr` echoes what a client on `client` sends.
fn tcp6_echo(f: &OvsFabric, server: &str, client: &str, addr: Ipv6Addr) {
    const SERVE: &str = "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_STREAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('::',7777))\ns.listen(1)\nprint('ready',flush=True)\nc,_=s.accept()\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  c.sendall(d)\nc.close()\n";
    const SEND: &str = "import socket,sys,os\nb=os.urandom(262144)\nc=socket.create_connection((sys.argv[1],7777),timeout=10)\nc.sendall(b)\nc.shutdown(socket.SHUT_WR)\nr=b''\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  r+=d\nprint('intact' if r==b else 'broken %d of %d'%(len(r),len(b)))\n";
    let mut srv = f
        .command(server, &[python3(), "-c", SERVE])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(srv.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let out = f.exec(client, &[python3(), "-c", SEND, &addr.to_string()]);
    let _ = srv.kill();
    let _ = srv.wait();
    assert_eq!(
        out.as_deref().map(str::trim),
        Ok("intact"),
        "{client} -> [{addr}]:7777"
    );
}

/// Stops the hosts' captures and checks that none holds a packet from or to one of `held`.
fn never_seen(captures: CaptureSet, held: &[Ipv6Addr]) {
    let caps = captures.stop().unwrap();
    for co in held {
        let seen = mentioning(&caps, *co);
        assert!(
            seen.is_empty(),
            "care-of {co} reached hosts: {:?}",
            seen.iter().take(3).collect::<Vec<_>>()
        );
    }
}

/// Whether `from`'s route to `to` no longer goes through the fabric's link-local gateway
/// (an ICMPv6 redirect made the peer its next hop).
fn direct(f: &OvsFabric, from: &str, to: &str) -> bool {
    let r = f.exec(from, &["ip", "-6", "route", "get", to]).unwrap();
    !r.contains(&format!("via {GATEWAY_LL}"))
}

/// The eight cases of Fig. 3 on a fabric with IPv6 only (topologies/ipv6-only.toml: no
/// IPv4 prefix, no IPv4 address): C (vm) moves to the foreign switch by its RARP with TCP
/// connections open from the edge, its home network and the foreign network, then D* (vm2)
/// to the foreign switch (case 7) and on to the edge's (case 8), then both go home. Every
/// case is pinged both ways; cases 5 to 7 end direct after the redirects; the TCP streams
/// survive both moves of C; no host ever sees a care-of address.
#[test]
fn the_eight_cases_pass_on_a_fabric_with_ipv6_only() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("the_eight_cases_pass_on_a_fabric_with_ipv6_only") {
        return;
    }
    const E: &str = "fd00:0:0:a::2";
    const B: &str = "fd00:0:0:10::2";
    const D: &str = "fd00:0:0:11::2";
    const C: &str = "fd00:0:0:11::3";
    const D_STAR: &str = "fd00:0:0:11::4";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ipv6-only.toml");
    let t = Topology::load(&path).unwrap();
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    for h in ["e", "b", "d", "vm", "vm2"] {
        autoconfigured(&f, &ctl, h);
    }
    let captures = Capture::start_all(&f).unwrap();
    for h in ["e", "d", "b", "vm2"] {
        reaches(&f, &ctl, h, C);
    }
    let streams: Vec<(&str, TcpStream)> = [("e", 5001), ("d", 5002), ("b", 5003)]
        .into_iter()
        .map(|(h, port)| (h, TcpStream::start(&f, "vm", h, a6(C), port).unwrap()))
        .collect();
    migrate(&ctl, &mut f, "vm", "r2", 3);
    let mut held = care_of6(&ctl);
    assert_eq!(held.len(), ipv6_of(&ctl, "vm").len(), "{held:?}");
    // Cases 1 to 6.
    for (from, to) in [
        ("vm", E),
        ("e", C),
        ("vm", D),
        ("d", C),
        ("vm", B),
        ("b", C),
    ] {
        reaches(&f, &ctl, from, to);
    }
    for (from, to) in [("vm", B), ("b", C)] {
        reaches(&f, &ctl, from, to);
        assert!(
            direct(&f, from, to),
            "case 5/6 {from} -> {to} not redirected\n{}",
            ctl.log()
        );
    }
    // Case 7: two VMs of one home network on one foreign network talk directly.
    migrate(&ctl, &mut f, "vm2", "r2", 4);
    held.extend(care_of6(&ctl));
    for (from, to) in [("vm", D_STAR), ("vm2", C)] {
        reaches(&f, &ctl, from, to);
        reaches(&f, &ctl, from, to);
        assert!(direct(&f, from, to), "case 7 {from} -> {to}\n{}", ctl.log());
    }
    // Case 8: D* moves on to the edge's switch.
    migrate(&ctl, &mut f, "vm2", "r1", 4);
    held.extend(care_of6(&ctl));
    for (from, to) in [("vm", D_STAR), ("vm2", C)] {
        reaches(&f, &ctl, from, to);
    }
    migrate(&ctl, &mut f, "vm2", "r3", 4);
    migrate(&ctl, &mut f, "vm", "r3", 3);
    std::thread::sleep(Duration::from_millis(500));
    assert!(care_of6(&ctl).is_empty(), "given back at home");
    for (from, to) in [("vm", E), ("b", C), ("vm2", B)] {
        reaches(&f, &ctl, from, to);
    }
    for (h, stream) in streams {
        let s = stream.stop().unwrap();
        println!("tcp6 {h} -> vm: {s:?}");
        assert!(s.unbroken(), "{h}: {s:?}\ncontroller log:\n{}", ctl.log());
    }
    held.sort();
    held.dedup();
    assert!(!held.is_empty());
    never_seen(captures, &held);
    f.teardown().unwrap();
}
