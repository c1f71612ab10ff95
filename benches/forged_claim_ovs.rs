//! Forged claims against a live VM on real Open vSwitch 3.1 (userspace datapath): the paper's
//! testbed with an attacker namespace `x` on a fresh port (r2:7), the real `servswitch run`
//! with its default `--announcements verified`, `ping -i 0.01` from E to the VM throughout,
//! and a capture in the attacker. N times: the quarantine is cleared, `x` sends QEMU's RARP
//! with the VM's MAC, and the bench times, from the frame leaving `x`:
//! - refused: until `servswitch_announcements_refused_total` moved;
//! - home: until the API shows the VM at its own port again;
//! - settled: until no update is in progress either (the tentative move's and the move
//!   back's drained last phases, 1 s after each, included);
//!
//! and, over the whole run, how many of E's echo requests reached the attacker and how many
//! pings were lost, per claim (aims of the trust issue: back within 1 s, at most 5 pings to
//! the attacker and at most 5 of 300 lost).
//!
//! Needs root and running OVS daemons (`.ci/run` starts them); prints why and exits 0
//! otherwise. `cargo bench --bench forged_claim_ovs [-- CLAIMS]` (default 30).

#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess};
use common::traffic::{Capture, Pinger};
use ofp13::MacAddr;
use servswitch::fabric::topology::Topology;

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const VM_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 3]);

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn at_home(ctl: &ControllerProcess) -> bool {
    let Ok((_, body)) = ctl.api_get("/api/v1/hosts") else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array().is_some_and(|a| {
        a.iter().any(|h| {
            h["mac"] == VM_MAC.to_string()
                && h["location"]["switch"] == "r3"
                && h["location"]["port"] == 3
        })
    })
}

fn main() {
    let claims: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    if let Some(why) = ovs_fabric::unavailable_reason() {
        println!("forged_claim_ovs: skipped: {why}");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let mut t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
    t.hosts.push(common::shipped::attacker());
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);
    let capture = Capture::start(&f, "x").unwrap_or_else(|e| panic!("{e}"));
    let mut ping = Pinger::start(&f, "e", VM).unwrap_or_else(|e| panic!("{e}"));
    ping.wait_replies(20, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let rarp = servswitch::packet::rarp_announce(VM_MAC);
    let (mut refused, mut home, mut settled) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..claims {
        let _ = ctl.api("DELETE", "/api/v1/quarantine");
        let before = ctl.metric("servswitch_announcements_refused_total");
        let armed = f.armed_frame("x", &rarp).unwrap_or_else(|e| panic!("{e}"));
        let t0 = Instant::now();
        armed.send().unwrap_or_else(|e| panic!("{e}"));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (mut r, mut h) = (None, None);
        loop {
            let el = t0.elapsed();
            if r.is_none() && ctl.metric("servswitch_announcements_refused_total") > before {
                r = Some(el);
            }
            if r.is_some() && h.is_none() && at_home(&ctl) {
                h = Some(t0.elapsed());
            }
            if h.is_some() && ctl.metric("servswitch_updates_in_progress") == 0 {
                settled.push(ms(t0.elapsed()));
                break;
            }
            assert!(
                el < Duration::from_secs(5),
                "claim {i}: refused {r:?}, home {h:?}, not settled after 5 s\n{}",
                ctl.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        refused.push(r.map_or(f64::NAN, ms));
        home.push(h.map_or(f64::NAN, ms));
        std::thread::sleep(Duration::from_millis(300));
    }
    let p = ping.stop().unwrap_or_else(|e| panic!("{e}"));
    let got = capture.stop().unwrap_or_else(|e| panic!("{e}"));
    let stolen = got.iter().filter(|pk| pk.is_echo_request_to(VM)).count();
    println!("forged_claim_ovs: {claims} forged RARPs from a fresh port, ping -i 0.01 throughout");
    for (name, v) in [
        ("refused after (ms)", &mut refused),
        ("VM back home after (ms)", &mut home),
        ("settled after (ms)", &mut settled),
    ] {
        println!(
            "{name:<28} p50={:>6.1}  p95={:>6.1}  max={:>6.1}",
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 1.0)
        );
    }
    println!(
        "echo requests that reached the attacker: {stolen} in {claims} claims ({:.2} per claim)",
        stolen as f64 / claims as f64
    );
    println!(
        "pings: {} sent, {} lost ({:.2} per claim), longest run {}",
        p.transmitted,
        p.lost,
        f64::from(p.lost) / claims as f64,
        p.longest_loss_run
    );
    let _ = f.teardown();
}
