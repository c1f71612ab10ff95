//! Subnet broadcast and DHCP that survives a move, on real Open vSwitch with a real DHCP
//! client (issue 17, parts 5 and 6): the paper's testbed as userspace bridges, hosts in
//! network namespaces, the home subnet's DHCP served by the controller, busybox `udhcpc` in
//! the VM. The VM gets its lease at home; moved to the foreign subnet (whose DHCP nobody
//! serves) it renews (unicast to its home gateway), and a client started afresh there is
//! offered its home lease; its broadcasts reach its home subnet, not the foreign one.
//!
//! Needs root, a running Open vSwitch and `udhcpc`; skips without them, fails instead when
//! CI=true.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, python3, ControllerProcess, OvsFabric};
use servswitch::fabric::topology::Topology;

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const D: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 2);
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// What the client's script writes for each event: the event and the lease it was given.
const SCRIPT: &str = r#"#!/bin/sh
echo "$1 ip=$ip subnet=$subnet router=$router dns=$dns lease=$lease serverid=$serverid" >> "$SS_DHCP_LOG"
"#;
const LEASE: &str =
    "ip=192.168.11.3 subnet=255.255.255.0 router=192.168.11.1 dns=192.168.11.53 lease=600 serverid=192.168.11.1";

fn available(test: &str) -> bool {
    let missing = ovs_fabric::unavailable_reason().or_else(|| {
        std::process::Command::new("udhcpc")
            .arg("--help")
            .output()
            .err()
            .map(|e| format!("udhcpc (Debian package udhcpc) cannot run: {e}"))
    });
    common::env::runnable(test, missing)
}

struct Lab {
    ctl: ControllerProcess,
    f: OvsFabric,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
        let mut t = Topology::load(&path).unwrap();
        for s in &mut t.subnets {
            if s.name == "home" {
                s.dhcp = true;
                s.dns = vec![Ipv4Addr::new(192, 168, 11, 53)];
                s.lease_s = Some(600);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let topo = dir.path().join("served.toml");
        std::fs::write(&topo, toml::to_string(&t).unwrap()).unwrap();
        let script = dir.path().join("record.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::process::Command::new("chmod")
            .args(["755", script.to_str().unwrap()])
            .status()
            .unwrap();
        let (ctl, f) = ovs_fabric::start_routed(&t, &topo);
        Lab { ctl, f, dir }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn events(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(name))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// `udhcpc` in `host`'s namespace, its events written to log `name`; `once` quits after
    /// a lease (or after 4 tries a second apart without one).
    fn client(&self, host: &str, name: &str, once: bool) -> Child {
        let script = self.dir.path().join("record.sh");
        let mut args = vec!["udhcpc", "-f", "-i", "eth0", "-s", script.to_str().unwrap()];
        if once {
            args.extend(["-q", "-n", "-t", "4", "-T", "1"]);
        } else {
            // A renewal's unicast request waits 5 s for its answer before the client falls
            // back to a broadcast (REBINDING): an answer within that is the unicast's.
            args.extend(["-t", "4", "-T", "5", "-A", "1"]);
        }
        self.f
            .command(host, &args)
            .env("SS_DHCP_LOG", self.log_path(name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a one-shot client to its end: whether it got a lease, and its events.
    fn lease_once(&self, host: &str, name: &str) -> (bool, Vec<String>) {
        let mut c = self.client(host, name, true);
        let status = c.wait().unwrap();
        (status.success(), self.events(name))
    }

    fn wait_event(&self, name: &str, want: &str, timeout: Duration) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            let ev = self.events(name);
            if ev.iter().any(|e| e == want) {
                return ev;
            }
            assert!(
                t0.elapsed() < timeout,
                "no `{want}` in {ev:?}\ncontroller log:\n{}",
                self.ctl.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves `host` with its RARP and waits until the controller has installed the move.
    fn migrate(&mut self, host: &str, switch: &str, port: u32) {
        let n = self.ctl.metric("servswitch_migrations_total");
        let t0 = Instant::now();
        // QEMU's five announcements (see tests/ovs_migration.rs's `migrate`).
        self.f.migrate_host_qemu(host, switch, port).unwrap();
        while self.ctl.metric("servswitch_migrations_total") == n {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{host} not migrated\n{}",
                self.ctl.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Which of `listeners` receive a UDP broadcast that `from` sends (three times).
    fn broadcast_heard_by(&self, from: &str, listeners: &[&str], tag: &str) -> Vec<String> {
        const RECV: &str = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('',9999))\nprint('ready',flush=True)\ns.settimeout(1.5)\ntry:\n  print(s.recvfrom(200)[0].decode(),flush=True)\nexcept socket.timeout:\n  print('',flush=True)\n";
        const SEND: &str = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\nfor _ in range(3):\n  s.sendto(sys.argv[1].encode(),('255.255.255.255',9999))\n";
        let mut rx: Vec<(String, Child)> = listeners
            .iter()
            .map(|h| {
                let c = self
                    .f
                    .command(h, &[python3(), "-c", RECV])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                (h.to_string(), c)
            })
            .collect();
        let mut outs = Vec::new();
        for (h, c) in &mut rx {
            let mut r = BufReader::new(c.stdout.take().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "{h}");
            outs.push((h.clone(), r));
        }
        self.f.exec(from, &[python3(), "-c", SEND, tag]).unwrap();
        let mut heard = Vec::new();
        for ((h, mut r), (_, mut c)) in outs.into_iter().zip(rx) {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            c.wait().unwrap();
            if line.trim() == tag {
                heard.push(h);
            }
        }
        heard
    }
}

fn pings(lab: &Lab, from: &str, to: Ipv4Addr) {
    let (tx, rx) = lab.f.ping(from, to, 3);
    assert!(
        rx >= 2,
        "{from} -> {to}: {rx} of {tx}\ncontroller log:\n{}",
        lab.ctl.log()
    );
}

#[test]
fn a_real_dhcp_client_keeps_its_home_lease_across_a_migration() {
    if !available("a_real_dhcp_client_keeps_its_home_lease_across_a_migration") {
        return;
    }
    let mut lab = Lab::start();
    // At home: the lease from the topology.
    let (ok, ev) = lab.lease_once("vm", "home-once");
    assert!(ok, "no lease at home: {ev:?}\n{}", lab.ctl.log());
    assert!(ev.contains(&format!("bound {LEASE}")), "{ev:?}");
    // The foreign subnet's DHCP is nobody's: no lease there.
    let (ok, ev) = lab.lease_once("b", "foreign-b");
    assert!(!ok, "b got a lease: {ev:?}");
    assert!(!ev.iter().any(|e| e.starts_with("bound")), "{ev:?}");

    // A client that keeps running: bound at home, then the VM moves and it renews.
    let mut keeper = lab.client("vm", "kept", false);
    lab.wait_event("kept", &format!("bound {LEASE}"), Duration::from_secs(10));
    pings(&lab, "d", VM);
    lab.migrate("vm", "r2", 3);
    pings(&lab, "e", VM);
    // SIGUSR1: renew now (unicast to the server, its home gateway, from the foreign switch).
    std::process::Command::new("kill")
        .args(["-USR1", &keeper.id().to_string()])
        .status()
        .unwrap();
    let ev = lab.wait_event("kept", &format!("renew {LEASE}"), Duration::from_secs(4));
    // Nothing between: no NAK, no lease lost (its start's deconfig is the only one).
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e.split(' ').next()).collect();
    assert_eq!(kinds, ["deconfig", "bound", "renew"], "{ev:?}");
    let _ = keeper.kill();
    let _ = keeper.wait();
    // A client started afresh at the foreign switch is offered its home lease.
    let (ok, ev) = lab.lease_once("vm", "foreign-once");
    assert!(ok, "no lease away from home: {ev:?}\n{}", lab.ctl.log());
    assert!(ev.contains(&format!("bound {LEASE}")), "{ev:?}");
    // Its broadcasts reach its home subnet, never the foreign one; its home subnet's reach
    // each other.
    let heard = lab.broadcast_heard_by("vm", &["d", "vm2", "b", "e"], "from-vm-away");
    assert_eq!(heard, ["d", "vm2"]);
    let heard = lab.broadcast_heard_by("d", &["vm2", "b", "e"], "from-d");
    assert_eq!(heard, ["vm2"]);
    // Still reachable both ways, its address untouched.
    pings(&lab, "d", VM);
    pings(&lab, "vm", E);
    pings(&lab, "vm", D);
    let held = lab.ctl.api_get("/api/v1/hosts").unwrap().1;
    assert!(
        held.contains("192.168.10."),
        "a care-of address is held: {held}"
    );
    lab.f.teardown().unwrap();
}
