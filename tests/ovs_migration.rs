//! Service Switching on real Open vSwitch: the paper's testbed as userspace bridges with hosts
//! in network namespaces, the real `servswitch run`, and the VM moved as a hypervisor moves
//! it (its veth goes to another bridge, then it sends QEMU's RARP from inside its namespace;
//! nothing tells the controller). Each of the eight cases of Fig. 3 is its own test: ping
//! both ways, a capture on every host showing the care-of address never reaches a host, and
//! the VM's address, routes and gateway untouched. Then a TCP stream that stays open across
//! the migration, and the outage of a `ping -i 0.01` across it.
//!
//! Needs root and a running Open vSwitch; skips without them, fails instead when CI=true.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess, HostState, OvsFabric};
use common::traffic::{mentioning, Capture, CaptureSet, Pinger, TcpStream};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const VM2: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 4);
const D: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 2);
const B: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 2);
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn testbed() -> (PathBuf, Topology) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let t = Topology::load(&path).unwrap();
    (path, t)
}

/// `servswitch_migrations_total` from /metrics.
fn migrations(ctl: &ControllerProcess) -> u64 {
    ctl.metric("servswitch_migrations_total")
}

/// Whether the API shows every switch connected.
fn all_connected(ctl: &ControllerProcess) -> bool {
    let Ok((200, body)) = ctl.api_get("/api/v1/switches") else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s["connected"] == true))
}

/// The care-of addresses the controller holds now.
fn care_of(ctl: &ControllerProcess) -> Vec<Ipv4Addr> {
    let (_, body) = ctl.api_get("/api/v1/hosts").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["care_of"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Moves `host` to `switch:port` with QEMU's RARPs and waits until the controller has installed
/// the migration (its counter moved).
fn migrate(
    ctl: &ControllerProcess,
    f: &mut OvsFabric,
    host: &str,
    switch: &str,
    port: u32,
) -> Duration {
    let n = migrations(ctl);
    let t0 = Instant::now();
    // QEMU's five announcements, not one: a frame sent the moment the port moves can still
    // enter through the old port (OVS moves it asynchronously), and then one RARP tells
    // nothing (seen in CI: case 8's second move never migrated).
    f.migrate_host_qemu(host, switch, port).unwrap();
    while migrations(ctl) == n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{host} -> {switch}:{port} not migrated\ncontroller log:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

/// Three echo requests, all answered (one retry for a busy 2-core datapath).
fn pings(f: &OvsFabric, ctl: &ControllerProcess, from: &str, to: Ipv4Addr) {
    for attempt in 0..2 {
        let (tx, rx) = f.ping(from, to, 3);
        if tx == 3 && rx == 3 {
            return;
        }
        if attempt == 1 {
            panic!(
                "{from} -> {to}: {rx} of {tx} answered\ncontroller log:\n{}",
                ctl.log()
            );
        }
    }
}

/// The testbed with captures on every host, and C (vm) moved to the foreign switch.
struct Moved {
    ctl: ControllerProcess,
    f: OvsFabric,
    captures: Option<CaptureSet>,
    vm_before: HostState,
}

fn moved(test: &str) -> Option<Moved> {
    if !ovs_fabric::available(test) {
        return None;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    let captures = Capture::start_all(&f).unwrap();
    let vm_before = f.host_state("vm").unwrap();
    // Traffic before the move, so caches hold the old answers.
    pings(&f, &ctl, "e", VM);
    pings(&f, &ctl, "d", VM);
    migrate(&ctl, &mut f, "vm", "r2", 3);
    Some(Moved {
        ctl,
        f,
        captures: Some(captures),
        vm_before,
    })
}

impl Moved {
    /// No host ever received or sent a packet naming a care-of address; the VM's address,
    /// routes and gateway are what they were.
    fn check(mut self, held: &[Ipv4Addr]) {
        assert!(!held.is_empty(), "the VM holds a care-of address");
        let caps = self.captures.take().unwrap().stop().unwrap();
        for co in held {
            let seen = mentioning(&caps, *co);
            assert!(
                seen.is_empty(),
                "care-of {co} reached hosts: {:?}",
                seen.iter().take(3).collect::<Vec<_>>()
            );
        }
        let vm_after = self.f.host_state("vm").unwrap();
        assert_eq!(self.vm_before.addrs, vm_after.addrs, "the VM's address");
        assert_eq!(
            self.vm_before.routes, vm_after.routes,
            "the VM's routes and gateway"
        );
        assert_eq!(self.vm_before.mac, vm_after.mac);
    }
}

#[test]
fn case_1_vm_to_edge_host() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_1_vm_to_edge_host") else {
        return;
    };
    pings(&m.f, &m.ctl, "vm", E);
    let held = care_of(&m.ctl);
    m.check(&held);
}

#[test]
fn case_2_edge_host_to_vm() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_2_edge_host_to_vm") else {
        return;
    };
    pings(&m.f, &m.ctl, "e", VM);
    let held = care_of(&m.ctl);
    m.check(&held);
}

#[test]
fn case_3_vm_to_home_host() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_3_vm_to_home_host") else {
        return;
    };
    pings(&m.f, &m.ctl, "vm", D);
    let held = care_of(&m.ctl);
    m.check(&held);
}

#[test]
fn case_4_home_host_to_vm() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_4_home_host_to_vm") else {
        return;
    };
    pings(&m.f, &m.ctl, "d", VM);
    // D's cache entry for the VM now names the gateway MAC (the home switch answers for it).
    let neigh =
        m.f.exec("d", &["ip", "neigh", "show", &VM.to_string()])
            .unwrap();
    assert!(neigh.contains("02:53:53:00:00:01"), "{neigh}");
    let held = care_of(&m.ctl);
    m.check(&held);
}

/// `ip route get DST` in `host`'s namespace.
fn route_get(f: &OvsFabric, host: &str, dst: Ipv4Addr) -> String {
    f.exec(host, &["ip", "route", "get", &dst.to_string()])
        .unwrap()
}

#[test]
fn case_5_vm_to_foreign_host_redirected() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_5_vm_to_foreign_host_redirected") else {
        return;
    };
    pings(&m.f, &m.ctl, "vm", B);
    pings(&m.f, &m.ctl, "vm", B);
    // Linux took the redirect: B itself is the VM's next hop for B.
    let r = route_get(&m.f, "vm", B);
    assert!(
        r.contains(&format!("via {B}")),
        "{r}\ncontroller log:\n{}",
        m.ctl.log()
    );
    let held = care_of(&m.ctl);
    m.check(&held);
}

#[test]
fn case_6_foreign_host_to_vm_redirected() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = moved("case_6_foreign_host_to_vm_redirected") else {
        return;
    };
    pings(&m.f, &m.ctl, "b", VM);
    pings(&m.f, &m.ctl, "b", VM);
    let r = route_get(&m.f, "b", VM);
    assert!(
        r.contains(&format!("via {VM}")),
        "{r}\ncontroller log:\n{}",
        m.ctl.log()
    );
    let held = care_of(&m.ctl);
    m.check(&held);
}

#[test]
fn case_7_two_vms_on_one_foreign_network() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut m) = moved("case_7_two_vms_on_one_foreign_network") else {
        return;
    };
    migrate(&m.ctl, &mut m.f, "vm2", "r2", 4);
    pings(&m.f, &m.ctl, "vm", VM2);
    pings(&m.f, &m.ctl, "vm2", VM);
    // Directly, no proxying: each holds the other's own MAC.
    let neigh =
        m.f.exec("vm", &["ip", "neigh", "show", &VM2.to_string()])
            .unwrap();
    assert!(neigh.contains("02:00:00:00:11:04"), "{neigh}");
    let held = care_of(&m.ctl);
    assert_eq!(held.len(), 2);
    m.check(&held);
}

#[test]
fn case_8_vm_to_a_vm_that_moved_on() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut m) = moved("case_8_vm_to_a_vm_that_moved_on") else {
        return;
    };
    migrate(&m.ctl, &mut m.f, "vm2", "r2", 4);
    pings(&m.f, &m.ctl, "vm2", VM);
    let mut held = care_of(&m.ctl);
    migrate(&m.ctl, &mut m.f, "vm2", "r1", 4);
    pings(&m.f, &m.ctl, "vm", VM2);
    pings(&m.f, &m.ctl, "vm2", VM);
    held.extend(care_of(&m.ctl));
    m.check(&held);
}

#[test]
fn tcp_stream_stays_open_and_outage_is_at_most_two_pings() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("tcp_stream_stays_open_and_outage_is_at_most_two_pings") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    let tables_before: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|s| sorted(&f.dump_flows(s).unwrap()))
        .collect();
    // TCP streams to the VM from E, D and B (servers in the VM), and ping -i 0.01 from E
    // and from D.
    let streams: Vec<(&str, TcpStream)> = [("e", 5001), ("d", 5002), ("b", 5003)]
        .into_iter()
        .map(|(h, port)| (h, TcpStream::start(&f, "vm", h, VM, port).unwrap()))
        .collect();
    let mut from_e = Pinger::start(&f, "e", VM).unwrap();
    let mut from_d = Pinger::start(&f, "d", VM).unwrap();
    from_e.wait_replies(20, Duration::from_secs(5)).unwrap();
    from_d.wait_replies(20, Duration::from_secs(5)).unwrap();
    let took = migrate(&ctl, &mut f, "vm", "r2", 3);
    std::thread::sleep(Duration::from_millis(500));
    // And back home while everything keeps running.
    let took_back = migrate(&ctl, &mut f, "vm", "r3", 3);
    std::thread::sleep(Duration::from_millis(500));
    let e = from_e.stop().unwrap();
    let d = from_d.stop().unwrap();
    println!("migration {took:?}, back {took_back:?}");
    println!("ping e -> vm: {e:?}\nping d -> vm: {d:?}");
    for (h, stream) in streams {
        let s = stream.stop().unwrap();
        println!("tcp {h} -> vm: {s:?}");
        assert!(s.unbroken(), "{h}: {s:?}\ncontroller log:\n{}", ctl.log());
    }
    for (who, p) in [("e", &e), ("d", &d)] {
        assert!(p.transmitted > 50, "{who}: {p:?}");
        assert!(
            p.lost <= 4,
            "{who}: two migrations, at most 2 lost each: {p:?}\ncontroller log:\n{}",
            ctl.log()
        );
        assert!(p.longest_loss_run <= 2, "{who}: {p:?}");
    }
    // Home again: every table exactly as before (durations and counters aside), once the
    // drained last phase (the foreign switch's delivery of the care-of address and the
    // restores, 1 s after the answer) is in.
    let tables = || -> Vec<String> {
        ["r1", "r2", "r3"]
            .iter()
            .map(|s| sorted(&f.dump_flows(s).unwrap()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(6);
    while tables() != tables_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tables_before, tables());
}

/// A table's lines, trimmed and sorted (ovs-ofctl indents each line; its order is not ours).
fn sorted(text: &str) -> String {
    let mut v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort_unstable();
    v.join("\n")
}

#[test]
fn api_migration_and_the_cli_client() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("api_migration_and_the_cli_client") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);
    // The controller is told first (the orchestrated case); the VM moves after.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args([
            "migrate",
            "vm",
            "--to",
            "r2:3",
            "--api",
            &format!("http://127.0.0.1:{}", ctl.api_port),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["from"], "r3:3");
    assert_eq!(rep["to"], "r2:3");
    let mut acked: Vec<&str> = rep["switches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    acked.sort();
    assert_eq!(
        acked,
        ["r1", "r2", "r3"],
        "every switch acknowledged its phases"
    );
    assert!(rep["flow_mods"].as_u64().unwrap() > 0);
    // Answered after the barriers: the live tables are already the plan.
    let planned = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args(["plan", "--topology"])
        .arg(&path)
        .args(["--switch", "r2", "--migrate", "vm=r2:3"])
        .output()
        .unwrap();
    let planned = String::from_utf8_lossy(&planned.stdout).into_owned();
    assert_eq!(sorted(&planned), sorted(&f.dump_flows("r2").unwrap()));
    // A bad request is one clear line and exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args([
            "migrate",
            "nobody",
            "--to",
            "r2:3",
            "--api",
            &format!("http://127.0.0.1:{}", ctl.api_port),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404") && err.contains("nobody"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn state_survives_a_controller_kill_and_nothing_changes() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("state_survives_a_controller_kill_and_nothing_changes") {
        return;
    }
    let (path, t) = testbed();
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap().to_string();
    let (mut ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--state", &dir]);
    pings(&f, &ctl, "e", VM);
    migrate(&ctl, &mut f, "vm", "r2", 3);
    let held = care_of(&ctl);
    let saved = std::fs::read_to_string(state.path().join("servswitch-state.json")).unwrap();
    assert!(saved.contains(&held[0].to_string()), "{saved}");
    let tables: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|s| sorted(&f.dump_flows(s).unwrap()))
        .collect();
    let durations_before = durations(&f, "r2");
    // Killed: the switches keep forwarding (fail-mode secure) with the tables they have.
    let mut pinger = Pinger::start(&f, "e", VM).unwrap();
    pinger.wait_replies(10, Duration::from_secs(5)).unwrap();
    ctl.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let ctl = ctl.restart(&path, &["--state", &dir]);
    let t0 = Instant::now();
    while !all_connected(&ctl) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "switches did not come back:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let p = pinger.stop().unwrap();
    assert_eq!(p.lost, 0, "{p:?}\ncontroller log:\n{}", ctl.log());
    // The restarted controller knows the VM is away, with the same care-of address, and
    // wants exactly the tables that are there.
    assert_eq!(care_of(&ctl), held);
    let after: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|s| sorted(&f.dump_flows(s).unwrap()))
        .collect();
    assert_eq!(tables, after);
    // Reconciled, not reinstalled: nothing was sent to any switch, and every entry is the
    // same entry as before (its duration kept growing).
    let log = ctl.log();
    let reconciled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("table reconciled"))
        .collect();
    assert_eq!(reconciled.len(), 3, "{log}");
    for l in &reconciled {
        assert!(
            l.contains("added=0") && l.contains("modified=0") && l.contains("deleted=0"),
            "{l}"
        );
    }
    let durations_after = durations(&f, "r2");
    assert_eq!(durations_before.len(), durations_after.len());
    for (flow, d0) in &durations_before {
        let d1 = durations_after[flow];
        assert!(
            d1 > *d0,
            "{flow}: duration {d0} s before, {d1} s after the restart"
        );
    }
    pings(&f, &ctl, "vm", E);
    pings(&f, &ctl, "d", VM);
}

/// Each entry's duration (seconds), by its --no-stats text.
fn durations(f: &OvsFabric, switch: &str) -> std::collections::BTreeMap<String, f64> {
    let with = f
        .ofctl("dump-flows", switch, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    with.lines()
        .filter_map(|l| {
            let d: f64 = l
                .split("duration=")
                .nth(1)?
                .split('s')
                .next()?
                .parse()
                .ok()?;
            // Drop the statistics to get the entry's identity.
            let key: Vec<&str> = l
                .trim()
                .split(", ")
                .filter(|p| {
                    ![
                        "duration=",
                        "n_packets=",
                        "n_bytes=",
                        "idle_age=",
                        "hard_age=",
                    ]
                    .iter()
                    .any(|s| p.starts_with(s))
                })
                .collect();
            Some((key.join(", "), d))
        })
        .collect()
}

#[test]
fn a_table_changed_behind_the_controller_is_repaired() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_table_changed_behind_the_controller_is_repaired") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "1"]);
    migrate(&ctl, &mut f, "vm", "r2", 3);
    let want = sorted(&f.dump_flows("r2").unwrap());
    // An operator wipes one bridge, and adds a flow of their own on another.
    f.ofctl("del-flows", "r2", &[]).unwrap();
    f.ofctl("add-flow", "r1", &["table=0,priority=5,udp,actions=drop"])
        .unwrap();
    let t0 = Instant::now();
    loop {
        let r2 = sorted(&f.dump_flows("r2").unwrap());
        let r1 = f.dump_flows("r1").unwrap();
        if r2 == want {
            // Theirs is not servswitch's to delete (verify lists it).
            assert!(r1.contains("udp actions=drop"), "{r1}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not repaired:\n{r2}\n{r1}\ncontroller log:\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("repaired in {:?}", t0.elapsed());
    pings(&f, &ctl, "e", VM);
}

#[test]
fn verify_reports_drift_with_a_diff() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("verify_reports_drift_with_a_diff") {
        return;
    }
    let (path, t) = testbed();
    // No audit: the drift stays for verify to see.
    let (ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "0"]);
    migrate(&ctl, &mut f, "vm", "r2", 3);
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let verify = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args(["verify", "--api", &api])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = verify(&[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": ok (")).count(),
        3,
        "{stdout}"
    );
    // Someone deletes the VM's care-of delivery on r2 and adds a flow of their own.
    f.ofctl(
        "del-flows",
        "r2",
        &["--strict", "table=4,priority=1032,ip,nw_dst=192.168.10.192"],
    )
    .unwrap();
    f.ofctl("add-flow", "r2", &["table=0,priority=5,udp,actions=drop"])
        .unwrap();
    let (code, stdout, stderr) = verify(&[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("r2: DRIFT: 1 planned entries missing, 1 entries not planned"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  - cookie=0x53530004c0a80b03, table=4, priority=1032,ip,nw_dst=192.168.10.192"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("  + ") && stdout.contains("udp actions=drop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("r1: ok") && stdout.contains("r3: ok"),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    // One switch only.
    let (code, stdout, _) = verify(&["--switch", "r1"]);
    assert_eq!((code, stdout.lines().count()), (Some(0), 1), "{stdout}");
    let (code, _, stderr) = verify(&["--switch", "r9"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("r9"), "{stderr}");
}

/// Waits until `servswitch verify` passes (every table as planned), or panics after `secs`.
fn wait_verified(ctl: &ControllerProcess, secs: u64) -> Duration {
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args(["verify", "--api", &api])
            .output()
            .unwrap();
        if out.status.success() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "tables never matched the plan:\n{}\ncontroller log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_switch_cut_off_during_a_migration_is_consistent_once_back() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_switch_cut_off_during_a_migration_is_consistent_once_back") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "0"]);
    // The edge switch r1 loses its controller; the VM moves meanwhile.
    f.set_controller_port("r1", None).unwrap();
    let t0 = Instant::now();
    while all_connected(&ctl) {
        assert!(t0.elapsed() < Duration::from_secs(10), "r1 never went away");
        std::thread::sleep(Duration::from_millis(20));
    }
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let (status, body) = servswitch::cli::client::Api::new(&api, None)
        .unwrap()
        .request(
            "POST",
            "/api/v1/migrations",
            Some(r#"{"host":"vm","to":"r2:3"}"#),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let rep: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rep["pending"], serde_json::json!(["r1"]), "{body}");
    f.migrate_host("vm", "r2", 3).unwrap();
    // r1 still forwards with its old table (fail-mode secure) ...
    assert!(!f.dump_flows("r1").unwrap().contains("192.168.10.192"));
    // ... and once back, it is reconciled to the plan, and E reaches the VM.
    f.set_controller_port("r1", Some(ctl.of_port)).unwrap();
    let took = wait_verified(&ctl, 15);
    println!("r1 consistent {took:?} after it was given its controller back");
    pings(&f, &ctl, "e", VM);
    pings(&f, &ctl, "vm", E);
}

#[test]
fn the_state_survives_a_kill_at_any_point_of_a_migration() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("the_state_survives_a_kill_at_any_point_of_a_migration") {
        return;
    }
    let (path, t) = testbed();
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap().to_string();
    let (mut ctl, _f) = ovs_fabric::start_routed_with(&t, &path, &["--state", &dir]);
    // Kill -9 at delays spread over a migration's life on OVS (about 0.5 ms), before,
    // during and after the state write and the flow mods.
    for (i, delay_us) in [0u64, 50, 100, 200, 300, 400, 600, 900, 1500, 3000]
        .into_iter()
        .enumerate()
    {
        let to = if i % 2 == 0 { "r2:3" } else { "r3:3" };
        let api = format!("http://127.0.0.1:{}", ctl.api_port);
        let body = format!(r#"{{"host":"vm","to":"{to}"}}"#);
        let post = std::thread::spawn(move || {
            servswitch::cli::client::Api::new(&api, None)?.request(
                "POST",
                "/api/v1/migrations",
                Some(&body),
            )
        });
        std::thread::sleep(Duration::from_micros(delay_us));
        ctl.kill9();
        let _ = post.join();
        // The state file is whole (old or new), and a restarted controller brings every
        // table to what that state plans.
        let saved =
            std::fs::read_to_string(state.path().join("servswitch-state.json")).unwrap_or_default();
        if !saved.is_empty() {
            serde_json::from_str::<serde_json::Value>(&saved).unwrap_or_else(|e| {
                panic!("state file torn after a kill at {delay_us} us: {e}\n{saved}")
            });
        }
        ctl = ctl.restart(&path, &["--state", &dir]);
        let t0 = Instant::now();
        while !all_connected(&ctl) {
            assert!(t0.elapsed() < Duration::from_secs(20), "{}", ctl.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_verified(&ctl, 15);
        // Where the controller thinks the VM is agrees with its care-of addresses.
        let (_, hosts) = ctl.api_get("/api/v1/hosts").unwrap();
        let v: serde_json::Value = serde_json::from_str(&hosts).unwrap();
        let vm = v
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "vm")
            .unwrap()
            .clone();
        let away = vm["location"]["switch"] != "r3";
        assert_eq!(
            away,
            !vm["care_of"].as_array().unwrap().is_empty(),
            "kill at {delay_us} us: {vm}"
        );
    }
}
