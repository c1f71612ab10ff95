//! ofload against a real servswitch (runtime and router, in this process, over loopback TCP):
//! every workload must produce checked responses and nothing wrong or timed out. Speed is not
//! asserted here (benchmarks do that: docs/performance.md); correctness of every answer is.

use std::net::SocketAddr;
use std::process::Command;

use servswitch::app::router::Router;
use servswitch::fabric::gen::GenSpec;
use servswitch::fabric::plan::Fabric;
use servswitch::fabric::topology::Topology;
use servswitch::switch::runtime::RuntimeConfig;

/// A fresh controller for `topo` on an ephemeral port, served by its own runtime.
fn controller(topo: &Topology) -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let (_router, ctl) =
            Router::new(Fabric::new(topo)).serve_with(topo.clone(), RuntimeConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { ctl.serve(listener, None).await });
        addr
    });
    (rt, addr)
}

/// The `RESULT` line's fields.
fn result(stdout: &str) -> std::collections::HashMap<String, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_workload_is_answered_correctly_by_servswitch() {
    let spec = GenSpec {
        racks: 4,
        hosts_per_rack: 4,
        racks_per_block: 4,
        ..GenSpec::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.toml");
    std::fs::write(&path, spec.toml()).unwrap();
    let topo = Topology::load(&path).unwrap();
    // unresolved and newflow use each free address once (per 3 s), so they start measuring
    // at once: a warm-up would spend them.
    for args in [
        &[
            "--workload",
            "arp",
            "--mode",
            "throughput",
            "--window",
            "16",
            "--warmup",
            "0.2",
        ][..],
        &[
            "--workload",
            "arp",
            "--mode",
            "throughput",
            "--window",
            "0",
            "--warmup",
            "0.2",
        ],
        &["--workload", "arp", "--mode", "latency", "--warmup", "0.2"],
        &[
            "--workload",
            "unresolved",
            "--mode",
            "throughput",
            "--warmup",
            "0",
        ],
        &[
            "--workload",
            "newflow",
            "--mode",
            "throughput",
            "--warmup",
            "0",
        ],
        &[
            "--workload",
            "migration",
            "--mode",
            "throughput",
            "--window",
            "4",
            "--warmup",
            "0.2",
        ],
        &[
            "--workload",
            "migration",
            "--mode",
            "latency",
            "--warmup",
            "0.2",
        ],
    ] {
        // A fresh controller each time: learned hosts and moved VMs stay in its state.
        let (rt, addr) = controller(&topo);
        let out = Command::new(env!("CARGO_BIN_EXE_ofload"))
            .args(["--controller", &addr.to_string()])
            .args(["--topology", path.to_str().unwrap()])
            .args(["--switches", "4", "--seconds", "1"])
            .args(["--timeout-ms", "5000"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: ofload failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = result(&stdout);
        let rate: f64 = r["responses_per_s"].parse().unwrap();
        assert!(rate > 0.0, "{args:?}: nothing checked:\n{stdout}");
        assert_eq!(r["wrong"], "0", "{args:?}:\n{stdout}");
        assert_eq!(r["timeouts"], "0", "{args:?}:\n{stdout}");
        rt.shutdown_background();
    }
}
