//! Controller-bound traffic on real Open vSwitch: every entry toward the controller goes
//! through a meter (one per host port, and each switch's `controller` meter), planned,
//! installed, verified and repaired like the flow entries (and left alone when right); and a
//! tenant flooding the controller from its port (ARP for unknown addresses, RARPs and
//! gratuitous ARPs with random MACs, IPv4 to unknown destinations and from unknown sources)
//! loses its own packet-ins and nobody else's: another host of the same switch keeps pinging
//! its gateway (answered by the controller) and resolving it by ARP, a genuine migration onto
//! that switch is detected from its RARP, and the API answers. The figures against the bounds are measured by
//! `benches/flood_ovs.rs`; this test checks what must hold on any machine.
//!
//! Needs root and a running Open vSwitch; skips without them, fails instead when CI=true.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess};
use common::traffic::{Flood, Pinger};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const B_GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);

/// The paper's testbed with the tenant `x` on r2:7, a port of its own that the controller's
/// topology file does not name.
fn testbed() -> (PathBuf, Topology) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let mut fabric = Topology::load(&path).unwrap();
    fabric.hosts.push(common::shipped::attacker());
    (path, fabric)
}

/// Waits until `cond` holds (checking every 5 ms), at most `timeout`.
fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn verify(ctl: &ControllerProcess) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args([
            "verify",
            "--api",
            &format!("http://127.0.0.1:{}", ctl.api_port),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits up to `secs` for `servswitch verify` to pass.
fn verified_within(ctl: &ControllerProcess, secs: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, out) = verify(ctl);
        if code == Some(0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(out);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What meter `meter` of `switch` dropped, as the API reads it.
fn dropped(ctl: &ControllerProcess, switch: &str, meter: &str) -> u64 {
    ctl.meters(switch)
        .into_iter()
        .find(|(m, _, _)| m == meter)
        .map_or_else(|| panic!("{switch} has no meter {meter}"), |(_, _, d)| d)
}

#[test]
fn meters_are_planned_installed_verified_and_repaired() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("meters_are_planned_installed_verified_and_repaired") {
        return;
    }
    let (path, t) = testbed();
    // Audits every 0.1 s: a whole-table round (meters compared field by field) every 1.2 s.
    let (ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "0.1"]);
    verified_within(&ctl, 10).unwrap_or_else(|out| panic!("{out}\n{}", ctl.log()));
    // A table and meters as planned are left alone: no audit finds anything to repair (a
    // meter Open vSwitch reports otherwise than planned would be modified at every round).
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !ctl.log().contains("the table had drifted"),
        "{}",
        ctl.log()
    );
    let (_, out) = verify(&ctl);
    assert!(out.contains("r2: ok ("), "{out}");
    // r2's host ports: b's (2) and the tenant's (7, not in the topology file), each its meter;
    // the switch's controller meter; the same through the API, ovs-ofctl and the plan.
    let (_, planned) = ctl.api_get("/api/v1/plan/r2/meters").unwrap();
    let (_, live) = ctl.api_get("/api/v1/meters/r2?format=text").unwrap();
    assert_eq!(lines(&planned), lines(&live));
    assert_eq!(
        lines(&live),
        lines(
            "meter=2 pktps burst stats bands=type=drop rate=200 burst_size=200\n\
             meter=7 pktps burst stats bands=type=drop rate=200 burst_size=200\n\
             meter=controller pktps burst stats bands=type=drop rate=5000 burst_size=5000"
        )
    );
    let ofctl = f.ofctl("dump-meters", "r2", &[]).unwrap();
    assert!(
        ofctl.contains("meter=7 pktps burst stats bands=\ntype=drop rate=200 burst_size=200"),
        "{ofctl}"
    );
    assert!(ofctl.contains("meter=controller pktps burst stats bands=\ntype=drop rate=5000"));
    let flows = f.dump_flows("r2").unwrap();
    assert!(
        flows.contains("table=5, priority=100,in_port=7 actions=meter:7,CONTROLLER:65535"),
        "{flows}"
    );
    // Behind the controller's back: a meter deleted (Open vSwitch deletes the entries that
    // use it too) and one changed. The audit puts both back. (Nothing is asserted between
    // the change and the repair: the audit runs every 0.1 s and may have repaired already;
    // verify_reports_meters_that_drifted sees the drift itself, with no audit.)
    drift_meters(&f);
    verified_within(&ctl, 20).unwrap_or_else(|out| panic!("not repaired: {out}\n{}", ctl.log()));
    assert!(f.dump_flows("r2").unwrap().contains("meter:2,"));
    assert!(
        ctl.log()
            .contains("audit: the table had drifted from the plan; repaired"),
        "{}",
        ctl.log()
    );
    // The tenant's port goes away: its meter and entries with it; back, and so are they.
    f.unplug("x").unwrap();
    // (Eventually: an audit round that planned before the port went may put them back
    // once, and the next one takes them away again.)
    let gone = until(Duration::from_secs(5), || {
        !ctl.meters("r2").iter().any(|(m, _, _)| m == "7")
            && !f.dump_flows("r2").unwrap_or_default().contains("in_port=7")
    });
    assert!(gone, "{:?}", ctl.meters("r2"));
    verified_within(&ctl, 10).unwrap_or_else(|out| panic!("{out}"));
    f.plug("x", "r2", 7).unwrap();
    let back = until(Duration::from_secs(5), || {
        ctl.meters("r2")
            .iter()
            .any(|(m, r, _)| m == "7" && *r == 200)
    });
    assert!(back, "{:?}", ctl.meters("r2"));
    verified_within(&ctl, 10).unwrap_or_else(|out| panic!("{out}"));
    f.teardown().unwrap();
}

/// Behind the controller's back on r2: b's meter deleted (Open vSwitch deletes the entries
/// that use it too) and the tenant's changed.
fn drift_meters(f: &ovs_fabric::OvsFabric) {
    f.ofctl("del-meter", "r2", &["meter=2"]).unwrap();
    f.ofctl(
        "mod-meter",
        "r2",
        &["meter=7,pktps,burst,stats,bands=type=drop,rate=100000,burst_size=5"],
    )
    .unwrap();
}

#[test]
fn verify_reports_meters_that_drifted() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("verify_reports_meters_that_drifted") {
        return;
    }
    let (path, t) = testbed();
    // No audit: the drift stays for verify to see.
    let (ctl, f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "0"]);
    verified_within(&ctl, 10).unwrap_or_else(|out| panic!("{out}\n{}", ctl.log()));
    let (_, out) = verify(&ctl);
    assert!(
        out.contains("r2: ok (") && out.contains(", 3 meters)"),
        "{out}"
    );
    // b's meter deleted (and with it, by Open vSwitch, the two entries that use it), the
    // tenant's changed.
    drift_meters(&f);
    let (code, out) = verify(&ctl);
    assert_eq!(code, Some(1), "{out}");
    for line in [
        "r2: DRIFT: 4 planned entries missing, 1 entries not planned",
        "  - meter=2 pktps burst stats bands=type=drop rate=200 burst_size=200",
        "  - meter=7 pktps burst stats bands=type=drop rate=200 burst_size=200",
        "  + meter=7 pktps burst stats bands=type=drop rate=100000 burst_size=5",
        "table=5, priority=100,in_port=2 actions=meter:2,CONTROLLER:65535",
        "r1: ok (",
        "r3: ok (",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    f.teardown().unwrap();
}

#[test]
fn a_flooding_port_loses_its_own_packet_ins_and_nobody_elses() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("a_flooding_port_loses_its_own_packet_ins_and_nobody_elses") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed_with(&t, &path, &["--audit-interval", "1"]);
    // b (r2:2, the tenant's neighbour) pings its gateway, which the controller answers:
    // through b's own meter. e pings the VM across the fabric (no controller involved).
    let mut gw = Pinger::start(&f, "b", B_GATEWAY).unwrap();
    let mut routed = Pinger::start(&f, "e", VM).unwrap();
    gw.wait_replies(20, Duration::from_secs(10)).unwrap();
    routed.wait_replies(20, Duration::from_secs(10)).unwrap();
    let rss_before = ctl.rss_kib();
    let packet_ins_before =
        ctl.metric("servswitch_messages_received_total{type=\"OFPT_PACKET_IN\"}");
    let flood = Flood::start(&f, "x", "arp,rarp,garp,ipv4,ipv4src", 6.0, 7).unwrap();
    let flood_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    // b forgets its gateway's MAC: it must ARP through the controller during the flood.
    f.exec("b", &["ip", "neigh", "flush", "dev", "eth0"])
        .unwrap();
    // The API answers.
    let asked = Instant::now();
    let (status, _) = ctl.api_get("/api/v1/hosts").unwrap();
    let api_latency = asked.elapsed();
    assert_eq!(status, 200);
    // A genuine migration onto the flooded switch: vm2 to r2:9, announced by its RARPs.
    let rarp_at = f.migrate_host_qemu("vm2", "r2", 9).unwrap();
    let moved = until(Duration::from_secs(2), || {
        ctl.host_location("vm2") == Some(("r2".into(), 9))
    });
    let committed_after = rarp_at.elapsed();
    assert!(moved, "vm2 not moved during the flood:\n{}", ctl.log());
    let report = loop {
        if flood_started.elapsed() > Duration::from_secs(7) {
            break flood.stop().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let packet_ins = ctl.metric("servswitch_messages_received_total{type=\"OFPT_PACKET_IN\"}")
        - packet_ins_before;
    std::thread::sleep(Duration::from_millis(500));
    let gw_report = gw.stop().unwrap();
    let routed_report = routed.stop().unwrap();
    let rss_after = ctl.rss_kib();
    eprintln!(
        "flood: {} frames in {:.1} s ({:.0}/s); packet-ins {packet_ins}; b -> gateway lost {} of {}; \
         e -> vm lost {} of {}; vm2 moved {committed_after:?} after its RARP; API {api_latency:?}; \
         RSS {rss_before} -> {rss_after} KiB",
        report.sent,
        report.seconds,
        report.rate(),
        gw_report.lost,
        gw_report.transmitted,
        routed_report.lost,
        routed_report.transmitted,
    );
    // The tenant flooded for real, and its own meter dropped it; b's dropped nothing.
    assert!(report.sent > 20_000, "{report:?}");
    // (Not every frame sent reaches the pipeline: the userspace datapath drops some at the
    // port when it cannot keep up.)
    let x_dropped = dropped(&ctl, "r2", "7");
    assert!(x_dropped > 10_000, "{x_dropped} of {report:?}");
    assert_eq!(dropped(&ctl, "r2", "2"), 0);
    assert!(
        ctl.metric("servswitch_meter_dropped_packets_total{switch=\"r2\",meter=\"7\"}") > 0,
        "{}",
        ctl.api_get("/metrics").unwrap().1
    );
    // What reached the controller: the tenant's 200 a second (its burst, and twice for a
    // packet that passes its meter in table 0 and table 5), b's pings, the migration.
    assert!(packet_ins < 5_000, "{packet_ins} packet-ins for {report:?}");
    // Nobody else noticed (the bounds of the issue are measured by the bench; here the
    // test bounds what any machine keeps: a few pings).
    assert!(gw_report.lost <= 6, "b -> gateway: {gw_report:?}");
    assert!(routed_report.lost <= 6, "e -> vm: {routed_report:?}");
    assert!(api_latency < Duration::from_secs(1), "{api_latency:?}");
    assert!(
        committed_after < Duration::from_secs(1),
        "{committed_after:?}"
    );
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(verify(&ctl).0, Some(0), "{}", verify(&ctl).1);
    f.teardown().unwrap();
}
