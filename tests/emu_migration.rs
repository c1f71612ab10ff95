//! Service Switching on the emulated fabric: the eight cases of the paper's Fig. 3, each its
//! own test, plus the migration machinery (triggers, repeats, care-of pools, return home,
//! several addresses, the REST call). The controller runs in process with emulated switches
//! and Linux-like hosts (`servswitch::cli::demo::Lab`); no root, no Open vSwitch.
//!
//! Every move is made as a hypervisor makes it: the VM's port moves and it sends QEMU's RARP;
//! nothing tells the controller unless a test says so.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use servswitch::cli::demo::{CaseResult, Lab};
use servswitch::fabric::topology::PortRef;

/// The router's metrics about migrations and hosts (not its lock counter, which every
/// learned host moves, nor its packet-in and LLDP counters, which every frame moves).
fn migration_metrics(lab: &Lab) -> String {
    lab.router
        .metrics_text()
        .lines()
        .filter(|l| {
            ![
                "servswitch_state_writes_total",
                "servswitch_packet_ins_total",
                "servswitch_lldp_received_total",
            ]
            .iter()
            .any(|m| l.contains(m))
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);

/// The paper testbed with C (vm) moved to the foreign switch r2 (port 3) by its RARP.
async fn c_moved() -> Lab {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    lab.migrate("vm", "r2", 3).await.unwrap();
    lab
}

/// Asserts a case passed and that no host ever saw a care-of address.
fn passed(lab: &Lab, c: &CaseResult) {
    assert!(c.ok, "case {} {}: {}", c.case, c.title, c.why);
    let co = lab.care_of_addresses();
    assert!(!co.is_empty(), "the VM holds a care-of address");
    let saw = lab.hosts_that_saw(&co);
    assert!(saw.is_empty(), "{saw:?} saw a care-of address {co:?}");
}

/// What a host has: its addresses, gateway and MAC never change with a migration.
fn unchanged(lab: &Lab, host: &str) {
    let h = lab.fabric.host(host);
    let conf = lab
        .fabric
        .topology()
        .hosts
        .iter()
        .find(|c| c.name == host)
        .unwrap();
    assert_eq!(h.mac, conf.mac);
    assert_eq!(
        h.addrs.iter().map(|a| a.0).collect::<Vec<_>>(),
        conf.addresses()
    );
    let sub = lab
        .fabric
        .topology()
        .subnets
        .iter()
        .find(|s| s.contains(conf.addresses()[0]))
        .unwrap();
    assert_eq!(h.gateway, sub.gateway, "{host}'s default gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_vm_to_edge_host() {
    let lab = c_moved().await;
    let c = lab.case(1, "C* -> E", "vm", "e").await;
    passed(&lab, &c);
    assert_eq!(c.peer_saw, [VM], "E sees the VM's home address only");
    unchanged(&lab, "vm");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_edge_host_to_vm() {
    let lab = c_moved().await;
    let c = lab.case(2, "E -> C*", "e", "vm").await;
    passed(&lab, &c);
    assert_eq!(c.reply_from, Some(VM.into()));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_3_vm_to_home_host() {
    let lab = c_moved().await;
    let c = lab.case(3, "C* -> D", "vm", "d").await;
    passed(&lab, &c);
    // The VM still believes D is on its link: the foreign switch answered its ARP for D
    // (and for its gateway) with the fabric's gateway MAC.
    let cache = lab.fabric.arp_cache("vm");
    assert_eq!(
        cache.get(&Ipv4Addr::new(192, 168, 11, 2)),
        Some(&servswitch::fabric::plan::GATEWAY_MAC)
    );
    unchanged(&lab, "vm");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_4_home_host_to_vm() {
    let lab = c_moved().await;
    let c = lab.case(4, "D -> C*", "d", "vm").await;
    passed(&lab, &c);
    // The home switch answers ARP for the VM (proxy), after the gratuitous ARP told D.
    let cache = lab.fabric.arp_cache("d");
    assert_eq!(cache.get(&VM), Some(&servswitch::fabric::plan::GATEWAY_MAC));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_vm_to_foreign_host_then_direct() {
    let lab = c_moved().await;
    let c = lab.case(5, "C* -> B", "vm", "b").await;
    passed(&lab, &c);
    assert_eq!(
        c.path, "direct",
        "the ICMP redirect made the VM send to B directly"
    );
    let b = Ipv4Addr::new(192, 168, 10, 2);
    assert_eq!(lab.fabric.redirects("vm").get(&b), Some(&b));
    unchanged(&lab, "vm");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_foreign_host_to_vm_then_direct() {
    let lab = c_moved().await;
    let c = lab.case(6, "B -> C*", "b", "vm").await;
    passed(&lab, &c);
    assert_eq!(c.path, "direct");
    assert_eq!(lab.fabric.redirects("b").get(&VM), Some(&VM));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_two_vms_of_one_home_on_one_foreign_network() {
    let lab = c_moved().await;
    lab.migrate("vm2", "r2", 4).await.unwrap();
    for (from, to) in [("vm", "vm2"), ("vm2", "vm")] {
        let c = lab.case(7, "C* <-> D*", from, to).await;
        passed(&lab, &c);
        // No proxying between them: straight from the other's MAC, TTL untouched.
        assert_eq!(c.path, "direct", "{from} -> {to}");
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_8_vm_to_a_vm_that_moved_on() {
    let lab = c_moved().await;
    lab.migrate("vm2", "r2", 4).await.unwrap();
    // D* talks to C* on the foreign network, then moves on to the third network.
    passed(&lab, &lab.case(7, "D* -> C*", "vm2", "vm").await);
    lab.migrate("vm2", "r1", 4).await.unwrap();
    for (from, to) in [("vm", "vm2"), ("vm2", "vm")] {
        let c = lab.case(8, "C* <-> D**", from, to).await;
        passed(&lab, &c);
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_passes_and_home_restores_every_table() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    let (cases, failures) = lab.run_all().await.unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(cases.len(), 10);
    assert!(lab.care_of_addresses().is_empty(), "all released at home");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_announcements_make_one_migration() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    lab.migrate("vm", "r2", 3).await.unwrap();
    let before = migration_metrics(&lab);
    // QEMU sends its RARP about five times.
    for _ in 0..4 {
        lab.fabric.announce("vm");
    }
    // A ping through the same switch orders us after those packet-ins.
    assert!(lab
        .fabric
        .ping("vm", Ipv4Addr::new(192, 168, 11, 1), Duration::from_secs(2))
        .await
        .is_some());
    lab.wait_planned().await.unwrap();
    assert_eq!(migration_metrics(&lab), before, "no second migration");
    assert!(
        before.contains("servswitch_migrations_total 1\n"),
        "{before}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gratuitous_arp_and_first_packet_also_trigger() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    // A Xen-style gratuitous ARP from the VM at its new port.
    lab.fabric.move_host("vm", "r2", 3).unwrap();
    let mac = lab.fabric.host("vm").mac;
    let garp = servswitch::packet::Arp::request(mac, VM, VM).to_frame();
    lab.fabric.send_raw("vm", garp);
    let r = &lab.router;
    assert!(
        lab.fabric
            .wait_until(Duration::from_secs(5), |_| r
                .host_states()
                .iter()
                .any(|h| h.mac == mac && h.location == ("r2".into(), 3)))
            .await
    );
    lab.wait_planned().await.unwrap();
    // An ordinary first packet (a ping to E) from the next port.
    lab.fabric.move_host("vm", "r2", 5).unwrap();
    let reply = lab
        .fabric
        .ping("vm", Ipv4Addr::new(10, 0, 0, 2), Duration::from_secs(3))
        .await;
    assert!(
        lab.fabric
            .wait_until(Duration::from_secs(5), |_| r
                .host_states()
                .iter()
                .any(|h| h.mac == mac && h.location == ("r2".into(), 5)))
            .await
    );
    lab.wait_planned().await.unwrap();
    let _ = reply; // the first packet may be lost while the move is installed; the next is not
    let c = lab.case(1, "C* -> E", "vm", "e").await;
    passed(&lab, &c);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_migration_answers_after_the_barriers_and_returns_exactly() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    let names = ["r1", "r2", "r3"];
    let tables = |lab: &Lab| -> Vec<BTreeSet<String>> {
        names
            .iter()
            .map(|n| lab.fabric.dump_flows(n).lines().map(String::from).collect())
            .collect()
    };
    let before = tables(&lab);
    let to = PortRef {
        switch: "r2".into(),
        port: 3,
    };
    let rep = lab.router.migrate("vm", &to).await.unwrap();
    assert_eq!((rep.from.as_str(), rep.to.as_str()), ("r3:3", "r2:3"));
    assert_eq!(rep.care_of, ["192.168.10.192"]);
    // Every switch of the paper's three acknowledged its phases.
    let mut acked = rep.switches.clone();
    acked.sort();
    assert_eq!(acked, ["r1", "r2", "r3"]);
    assert!(rep.pending.is_empty());
    assert!(rep.flow_mods > 0);
    // Answered after the barriers of every phase but the drained last (here there is none:
    // nothing is removed): the tables are already as planned.
    for n in names {
        let live: BTreeSet<String> = lab.fabric.dump_flows(n).lines().map(String::from).collect();
        let plan: BTreeSet<String> = lab.router.switch_plan(n).iter().map(|f| f.text()).collect();
        assert_eq!(live, plan, "{n}");
    }
    // The same again is a no-op; by address and by MAC it is the same host.
    for sel in ["vm", "192.168.11.3", "02:00:00:00:11:03"] {
        let again = lab.router.migrate(sel, &to).await.unwrap();
        assert_eq!(again.flow_mods, 0, "{sel}");
    }
    // Back home: every table exactly as before, the care-of address free again.
    let home = PortRef {
        switch: "r3".into(),
        port: 3,
    };
    let back = lab.router.migrate("vm", &home).await.unwrap();
    assert!(back.care_of.is_empty());
    // The last phase (the foreign switch's delivery of the care-of address, the restores)
    // follows the drain.
    lab.wait_planned().await.unwrap();
    assert_eq!(
        before,
        tables(&lab),
        "tables exactly as before (as sets: order is insertion order)"
    );
    assert!(lab.care_of_addresses().is_empty());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_change_nothing() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    let names = ["r1", "r2", "r3"];
    let before: Vec<String> = names.iter().map(|n| lab.fabric.dump_flows(n)).collect();
    let hosts = lab.router.host_states();
    let cases = [
        ("nobody", "r2:3", 404),
        ("vm", "r9:3", 400),
        ("vm", "r2:1", 400), // a link port
        ("vm", "r2:0", 400), // no such port (PortRef's parser refuses it; the API may not)
    ];
    for (host, to, status) in cases {
        let (switch, port) = to.rsplit_once(':').unwrap();
        let to = PortRef {
            switch: switch.into(),
            port: port.parse().unwrap(),
        };
        let e = lab.router.migrate(host, &to).await.unwrap_err();
        assert_eq!(e.status(), status, "{host} -> {to}: {e}");
    }
    assert_eq!(lab.router.host_states(), hosts);
    let after: Vec<String> = names.iter().map(|n| lab.fabric.dump_flows(n)).collect();
    assert_eq!(before, after);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_a_conflict_with_nothing_half_installed() {
    // A foreign pool of one address (a /32): the second VM cannot move there.
    let mut t = topo("paper-testbed.toml");
    for s in &mut t.subnets {
        if s.name == "foreign" {
            s.care_of_pool = Some("192.168.10.200/32".parse().unwrap());
        }
    }
    let lab = Lab::start(&t).await.unwrap();
    let rep = lab
        .router
        .migrate("vm", &"r2:3".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rep.care_of, ["192.168.10.200"]);
    let names = ["r1", "r2", "r3"];
    let before: Vec<String> = names.iter().map(|n| lab.fabric.dump_flows(n)).collect();
    let e = lab
        .router
        .migrate("vm2", &"r2:4".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.status(), 409);
    assert!(e.to_string().contains("exhausted"), "{e}");
    let after: Vec<String> = names.iter().map(|n| lab.fabric.dump_flows(n)).collect();
    assert_eq!(before, after);
    let vm2 = lab
        .router
        .host_states()
        .into_iter()
        .find(|h| h.ips == [Ipv4Addr::new(192, 168, 11, 4)])
        .unwrap();
    assert_eq!(vm2.location, ("r3".to_string(), 4));
    // When C goes home its address is released and D* can move.
    lab.router
        .migrate("vm", &"r3:3".parse().unwrap())
        .await
        .unwrap();
    let rep = lab
        .router
        .migrate("vm2", &"r2:4".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rep.care_of, ["192.168.10.200"]);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_with_two_addresses_moves_with_both() {
    let mut t = topo("paper-testbed.toml");
    for h in &mut t.hosts {
        if h.name == "vm" {
            h.ip = None;
            h.ips = Some(vec![VM.into(), Ipv4Addr::new(192, 168, 11, 13).into()]);
        }
    }
    let lab = Lab::start(&t).await.unwrap();
    lab.migrate("vm", "r2", 3).await.unwrap();
    let vm = lab
        .router
        .host_states()
        .into_iter()
        .find(|h| h.ips[0] == VM)
        .unwrap();
    assert_eq!(vm.care_of.len(), 2);
    for dst in [VM, Ipv4Addr::new(192, 168, 11, 13)] {
        for from in ["e", "d", "b"] {
            let r = lab.fabric.ping(from, dst, Duration::from_secs(3)).await;
            assert_eq!(r.map(|r| r.from), Some(dst.into()), "{from} -> {dst}");
        }
    }
    let co = lab.care_of_addresses();
    assert_eq!(co.len(), 2);
    assert!(lab.hosts_that_saw(&co).is_empty());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_migrations_inside_and_across_blocks() {
    let t = topo("three-tier.toml");
    let lab = Lab::start(&t).await.unwrap();
    // C: the first host of an access switch.
    let c_name = t
        .hosts
        .iter()
        .find(|h| {
            t.switches.iter().any(|s| {
                s.name == h.at.switch && s.tier == servswitch::fabric::topology::Tier::Access
            })
        })
        .unwrap()
        .name
        .clone();
    // Every host reaches C at its home, after a move into another rack, and after a move
    // across aggregation blocks (hosts outside the cover reach it through its home switch).
    let c_ip = lab.fabric.host(&c_name).addrs[0].0;
    let others: Vec<String> = t
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .filter(|n| *n != c_name)
        .collect();
    let access: Vec<String> = t
        .switches
        .iter()
        .filter(|s| s.tier == servswitch::fabric::topology::Tier::Access)
        .map(|s| s.name.clone())
        .collect();
    let home = lab.fabric.host(&c_name).switch.clone();
    for target in access.iter().filter(|s| **s != home).take(7) {
        let port = servswitch::cli::demo::free_port(&t, target, &[]);
        lab.migrate(&c_name, target, port).await.unwrap();
        for o in &others {
            let r = lab.fabric.ping(o, c_ip, Duration::from_secs(3)).await;
            assert_eq!(
                r.map(|r| r.from),
                Some(c_ip.into()),
                "{o} -> {} at {target}",
                c_name
            );
            let back = lab
                .fabric
                .ping(
                    &c_name,
                    lab.fabric.host(o).addrs[0].0,
                    Duration::from_secs(3),
                )
                .await;
            assert!(back.is_some(), "{} at {target} -> {o}", c_name);
        }
        let co = lab.care_of_addresses();
        assert!(
            lab.hosts_that_saw(&co).is_empty(),
            "care-of seen with C at {target}"
        );
        // Every access switch whose hosts talked to C now rewrites for it (the home agent's
        // copies added them to its cover); switches without subnets carry nothing of C's.
        let dnat = format!("ip,nw_dst={c_ip} actions=set_field:");
        let r = &lab.router;
        let covered = lab
            .fabric
            .wait_until(Duration::from_secs(5), |f| {
                t.switches.iter().all(|s| {
                    let has = f.dump_flows(&s.name).contains(&dnat);
                    let talks = r.fabric.subnets_of(&s.name).next().is_some();
                    has == talks
                })
            })
            .await;
        assert!(
            covered,
            "C at {target}: not every talking switch rewrites, or a switch without subnets does"
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_before_the_switchover_is_not_undone_by_the_vms_last_frames() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    // The orchestrator calls first; the VM still runs at its old port for a while.
    let to = PortRef {
        switch: "r2".into(),
        port: 3,
    };
    let rep = lab.router.migrate("vm", &to).await.unwrap();
    assert_eq!(rep.to, "r2:3");
    // Its ordinary traffic from the old port does not move it back ...
    let _ = lab
        .fabric
        .ping("vm", Ipv4Addr::new(192, 168, 11, 2), Duration::from_secs(1))
        .await;
    assert!(lab
        .fabric
        .ping("d", Ipv4Addr::new(192, 168, 11, 1), Duration::from_secs(2))
        .await
        .is_some());
    let vm = lab
        .router
        .host_states()
        .into_iter()
        .find(|h| h.ips[0] == VM)
        .unwrap();
    assert_eq!(vm.location, ("r2".to_string(), 3));
    // ... and the real switchover (port moves, RARP) finds it already there: no migration.
    let before = migration_metrics(&lab);
    lab.migrate("vm", "r2", 3).await.unwrap();
    assert_eq!(migration_metrics(&lab), before);
    passed(&lab, &lab.case(1, "C* -> E", "vm", "e").await);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_announced_again_while_its_move_installs_ends_where_it_last_was() {
    let lab = Lab::start(&topo("paper-testbed.toml")).await.unwrap();
    let mac = lab.fabric.host("vm").mac;
    // Two moves back to back: the second RARP arrives while the first is being installed
    // (or just after); either way the VM must end at its last port.
    lab.fabric.migrate_host("vm", "r2", 3).unwrap();
    lab.fabric.migrate_host("vm", "r2", 5).unwrap();
    let r = &lab.router;
    assert!(
        lab.fabric
            .wait_until(Duration::from_secs(5), |_| !r.is_migrating(mac)
                && r.host_states()
                    .iter()
                    .any(|h| h.mac == mac && h.location == ("r2".to_string(), 5)))
            .await,
        "{:?}",
        r.host_states()
    );
    lab.wait_planned().await.unwrap();
    passed(&lab, &lab.case(2, "E -> C*", "e", "vm").await);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_moving_back_within_the_drain_takes_its_care_of_address_back_at_once() {
    // A foreign pool of one address: the VM's second stay needs the address its first stay
    // gave back, whose last phase has not run yet (a drain of a minute here). The second
    // move takes that cleanup over instead of waiting for it.
    let mut t = topo("paper-testbed.toml");
    for s in &mut t.subnets {
        if s.name == "foreign" {
            s.care_of_pool = Some("192.168.10.200/32".parse().unwrap());
        }
    }
    let lab = Lab::start_with(
        &t,
        servswitch::cli::demo::LabOptions {
            drain: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (away, home): (PortRef, PortRef) = ("r2:3".parse().unwrap(), "r3:3".parse().unwrap());
    // The orchestrator's way: the port moves, then the API call (no RARP).
    for to in [&away, &home].repeat(5) {
        lab.fabric.move_host("vm", &to.switch, to.port).unwrap();
        // Milliseconds; without the takeover it would wait a minute for the drain.
        let rep = tokio::time::timeout(Duration::from_secs(10), lab.router.migrate("vm", to))
            .await
            .expect("the move waited for a drain")
            .unwrap();
        if to == &away {
            assert_eq!(rep.care_of, ["192.168.10.200"]);
        }
    }
    lab.fabric.move_host("vm", &away.switch, away.port).unwrap();
    lab.router.migrate("vm", &away).await.unwrap();
    lab.wait_planned().await.unwrap();
    passed(&lab, &lab.case(2, "E -> C*", "e", "vm").await);
    lab.stop().await;
}

/// Every host other than `vm` pings `vm` and `vm` pings each of them; the hosts that failed.
async fn unreachable_with(lab: &Lab, vm: &str) -> Vec<String> {
    let vm_ip = lab.fabric.host(vm).addrs[0].0;
    let mut failed = Vec::new();
    for o in lab.fabric.hosts() {
        if o.name == vm {
            continue;
        }
        let there = lab.reaches(&o.name, vm_ip, Duration::from_secs(3)).await;
        let back = lab.reaches(vm, o.addrs[0].0, Duration::from_secs(3)).await;
        if !(there && back) {
            failed.push(format!("{} (to {there}, back {back})", o.name));
        }
    }
    failed
}

/// Sets every link of `switch` down or up (the switch fails or returns: its neighbours'
/// ports go down with its own).
fn set_switch_links(lab: &Lab, switch: &str, up: bool) {
    for l in &lab.fabric.topology().links {
        for end in [&l.a, &l.b] {
            if end.switch == switch {
                lab.fabric.set_link(switch, end.port, up).unwrap();
            }
        }
    }
}

/// Waits until the routes have been planned again `n` times in all.
async fn replanned(lab: &Lab, n: u64) {
    let r = &lab.router;
    assert!(
        lab.fabric
            .wait_until(Duration::from_secs(10), |_| r.replans() >= n)
            .await,
        "{} re-plans, not {n}",
        r.replans()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_while_an_aggregation_switch_is_down_works_and_after_it_returns() {
    let t = topo("three-tier.toml");
    let lab = Lab::start(&t).await.unwrap();
    // a1 fails: t1..t4 keep only their uplinks to a2, the cores theirs to a2..a4.
    set_switch_links(&lab, "a1", false);
    replanned(&lab, 1).await;
    lab.wait_planned().await.unwrap();
    // h1-0 moves from t1 (block a1/a2) to t5 (block a3/a4), and h2-0 within the block to t3.
    let to5 = servswitch::cli::demo::free_port(&t, "t5", &[]);
    lab.migrate("h1-0", "t5", to5).await.unwrap();
    let to3 = servswitch::cli::demo::free_port(&t, "t3", &[]);
    lab.migrate("h2-0", "t3", to3).await.unwrap();
    for vm in ["h1-0", "h2-0"] {
        let failed = unreachable_with(&lab, vm).await;
        assert!(failed.is_empty(), "a1 down, {vm} moved: {failed:?}");
    }
    // a1 comes back: the routes return to the plan, the moved VMs stay reachable.
    let before = lab.router.replans();
    set_switch_links(&lab, "a1", true);
    replanned(&lab, before + 1).await;
    lab.wait_planned().await.unwrap();
    for vm in ["h1-0", "h2-0"] {
        let failed = unreachable_with(&lab, vm).await;
        assert!(failed.is_empty(), "a1 back, {vm} away: {failed:?}");
    }
    let co = lab.care_of_addresses();
    assert_eq!(co.len(), 2, "{co:?}");
    assert!(lab.hosts_that_saw(&co).is_empty());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_fails_while_a_migration_installs_leaves_a_consistent_fabric() {
    let t = topo("three-tier.toml");
    for (cut, moved) in [
        (("t5", 1), "h1-0"),
        (("a1", 3), "h1-0"),
        (("c1", 3), "h2-0"),
    ] {
        let lab = Lab::start(&t).await.unwrap();
        let to = servswitch::cli::demo::free_port(&t, "t5", &[]);
        // The announcement and the cut together: the move installs its phases while the
        // routes are planned again.
        let mac = lab.fabric.host(moved).mac;
        lab.fabric.migrate_host(moved, "t5", to).unwrap();
        lab.fabric.set_link(cut.0, cut.1, false).unwrap();
        let r = &lab.router;
        assert!(
            lab.fabric
                .wait_until(Duration::from_secs(10), |_| {
                    r.replans() >= 1
                        && !r.is_migrating(mac)
                        && r.host_states()
                            .iter()
                            .any(|h| h.mac == mac && h.location == ("t5".to_string(), to))
                })
                .await,
            "{moved} not moved to t5:{to} with {}:{} cut",
            cut.0,
            cut.1
        );
        lab.wait_planned().await.unwrap();
        let failed = unreachable_with(&lab, moved).await;
        assert!(failed.is_empty(), "{}:{} cut: {failed:?}", cut.0, cut.1);
        // Mended while traffic still needs the move's rewrites.
        lab.fabric.set_link(cut.0, cut.1, true).unwrap();
        replanned(&lab, 2).await;
        lab.wait_planned().await.unwrap();
        let failed = unreachable_with(&lab, moved).await;
        assert!(failed.is_empty(), "{}:{} mended: {failed:?}", cut.0, cut.1);
        let co = lab.care_of_addresses();
        assert!(lab.hosts_that_saw(&co).is_empty());
        lab.stop().await;
    }
}
