//! Migration convergence on real Open vSwitch 3.1 (userspace datapath): the paper's testbed
//! as bridges and namespaces (the test harness of tests/common), the real `servswitch run`.
//!
//! - API: `POST /api/v1/migrations` moving the VM between r2:3 and r3:3, N times; the
//!   answer's `elapsed_us` (from the call to the last barrier reply of the last switch) and
//!   the HTTP round trip as the client sees it.
//! - RARP: the VM's veth really moves (ovs-vsctl) and it sends QEMU's RARP; the controller's
//!   own `elapsed_us` (logged: from the RARP's packet-in to the last barrier reply).
//!
//! Needs root and running OVS daemons (`.ci/run` starts them); prints why and exits 0
//! otherwise. `cargo bench --bench migration_ovs [-- API_RUNS RARP_RUNS]`.

#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ovs_fabric;
use servswitch::fabric::topology::Topology;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn summary(name: &str, v: &mut [f64]) {
    println!(
        "{name:<44} n={:<5} p50={:>8.0} us  p99={:>8.0} us  max={:>8.0} us",
        v.len(),
        pct(v, 0.5),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let api_runs = args.first().copied().unwrap_or(400);
    let rarp_runs = args.get(1).copied().unwrap_or(20);
    if let Some(why) = ovs_fabric::unavailable_reason() {
        println!("migration_ovs: skipped: {why}");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    let api = format!("http://127.0.0.1:{}", ctl.api_port);

    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    let client = servswitch::cli::client::Api::new(&api, None).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..api_runs {
        let to = if i % 2 == 0 { "r2:3" } else { "r3:3" };
        let body = format!(r#"{{"host":"vm","to":"{to}"}}"#);
        let t0 = Instant::now();
        let (status, text) = client
            .request("POST", "/api/v1/migrations", Some(&body))
            .unwrap_or_else(|e| panic!("{e}"));
        outside.push(t0.elapsed().as_secs_f64() * 1e6);
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        inside.push(v["elapsed_us"].as_f64().unwrap_or(f64::NAN));
    }
    println!("Open vSwitch 3.1, userspace datapath, paper testbed (3 bridges):");
    summary("API migration: elapsed_us (to last barrier)", &mut inside);
    summary("API migration: HTTP round trip", &mut outside);

    // Physical moves announced by RARP; the controller logs each migration's elapsed_us.
    let log_before = ctl.log().len();
    let mut n = 0;
    for i in 0..rarp_runs {
        let (sw, port) = if i % 2 == 0 { ("r2", 3) } else { ("r3", 3) };
        f.migrate_host("vm", sw, port)
            .unwrap_or_else(|e| panic!("{e}"));
        n += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while rarp_elapsed(&ctl.log()[log_before..]).len() < n {
            assert!(
                Instant::now() < deadline,
                "no migration logged:\n{}",
                ctl.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut rarp = rarp_elapsed(&ctl.log()[log_before..]);
    summary("RARP packet-in -> last barrier (controller)", &mut rarp);
}

/// The `elapsed_us` of every "migrated" line in the controller's log.
fn rarp_elapsed(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(" migrated "))
        .filter_map(|l| {
            l.split("elapsed_us=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}
