//! Hosts nobody declared, and several hosts behind one port, on the emulated fabric (issue
//! 13): a learned VM whose port goes away is kept (detached) and can still be moved, in
//! every order a hypervisor and an orchestrator produce the events of a migration; it is
//! forgotten with its entries when its grace ends; hosts behind one port are hosts like any
//! other, and a VM may move to a port where others are.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;
#[path = "common/until.rs"]
mod until;
use until::until;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use servswitch::cli::demo::{Lab, LabOptions};
use servswitch::fabric::topology::{PortRef, Topology};

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const D: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 2);
const SRC: (&str, u32) = ("r3", 3);
const DST: (&str, u32) = ("r2", 7);

/// The paper's testbed with the VM not declared: the controller learns it from a ping.
async fn learned_vm(grace: Option<Duration>) -> Lab {
    let lab = Lab::start_with(
        &topo("paper-testbed.toml"),
        LabOptions {
            learned: vec!["vm".into()],
            detached_grace: grace,
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(lab
        .fabric
        .ping("vm", E, Duration::from_secs(3))
        .await
        .is_some());
    let h = host(&lab, VM).expect("learned from its traffic");
    assert_eq!(h.origin, servswitch::app::router::Origin::Learned);
    assert_eq!(h.location, ("r3".into(), 3));
    lab.wait_planned().await.unwrap();
    lab
}

fn host(lab: &Lab, ip: Ipv4Addr) -> Option<servswitch::app::router::HostState> {
    lab.router
        .host_states()
        .into_iter()
        .find(|h| h.ips.contains(&ip))
}

/// One event of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// The destination port appears (PORT_STATUS ADD) and the VM runs there from now on.
    AddDst,
    /// The source port goes away (PORT_STATUS DELETE).
    DelSrc,
    /// QEMU's RARP from the destination.
    Rarp,
    /// The orchestrator's `POST /api/v1/migrations` (by address: the VM has no name).
    Post,
    /// The RARP and the POST at the same time.
    PostWithRarp,
}

async fn run(lab: &Lab, events: &[Ev]) {
    let port = |sw: &str, no: u32| servswitch::emu::switch::port(lab.fabric.switch(sw).dpid(), no);
    let to = PortRef {
        switch: DST.0.into(),
        port: DST.1,
    };
    for ev in events {
        match ev {
            Ev::AddDst => {
                lab.fabric.switch(DST.0).add_port(port(DST.0, DST.1));
                lab.fabric.reattach("vm", DST.0, DST.1).unwrap();
            }
            Ev::DelSrc => {
                let at_src = host(lab, VM).is_some_and(|h| h.location == ("r3".into(), 3));
                lab.fabric.switch(SRC.0).delete_port(SRC.1);
                if at_src {
                    // Still thought to be there: detached, not forgotten.
                    assert!(
                        until(Duration::from_secs(2), || host(lab, VM)
                            .is_some_and(|h| !h.attached))
                        .await,
                        "{:?}",
                        host(lab, VM)
                    );
                }
            }
            Ev::Rarp => lab.fabric.announce("vm"),
            Ev::Post => {
                lab.router.migrate("192.168.11.3", &to).await.unwrap();
            }
            Ev::PostWithRarp => {
                let post = lab.router.migrate("192.168.11.3", &to);
                lab.fabric.announce("vm");
                post.await.unwrap();
            }
        }
        // Let the controller see each event before the next (the order is the point).
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Every switch's table, as a set of lines.
type Tables = BTreeMap<String, BTreeSet<String>>;

fn tables(lab: &Lab) -> Tables {
    ["r1", "r2", "r3"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                lab.fabric.dump_flows(n).lines().map(String::from).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_vm_moves_in_every_order_of_a_migrations_events_to_the_same_tables() {
    use Ev::*;
    let orders: &[&[Ev]] = &[
        &[AddDst, Rarp, DelSrc],
        &[DelSrc, AddDst, Rarp],
        &[AddDst, DelSrc, Rarp],
        &[Post, AddDst, Rarp, DelSrc],
        &[Post, DelSrc, AddDst, Rarp],
        &[AddDst, DelSrc, Post, Rarp],
        &[DelSrc, AddDst, Post, Rarp],
        &[DelSrc, AddDst, PostWithRarp],
        &[AddDst, PostWithRarp, DelSrc],
    ];
    let mut first: Option<(Vec<Ev>, Tables)> = None;
    for order in orders {
        let lab = learned_vm(None).await;
        run(&lab, order).await;
        let r = &lab.router;
        let there = lab
            .fabric
            .wait_until(Duration::from_secs(5), |_| {
                host(&lab, VM).is_some_and(|h| h.location == ("r2".into(), 7) && h.attached)
                    && !r.migrations_in_progress()
            })
            .await;
        assert!(there, "{order:?}: {:?}", host(&lab, VM));
        lab.wait_planned().await.unwrap();
        // It works where it is, both ways, with its home network too.
        for (from, to) in [("e", VM), ("vm", E), ("d", VM), ("vm", D)] {
            let reply = lab.fabric.ping(from, to, Duration::from_secs(3)).await;
            assert!(reply.is_some(), "{order:?}: {from} -> {to}");
        }
        let co = lab.care_of_addresses();
        assert!(lab.hosts_that_saw(&co).is_empty(), "{order:?}");
        let t = tables(&lab);
        match &first {
            None => first = Some((order.to_vec(), t)),
            Some((o, want)) => assert_eq!(&t, want, "{order:?} ends elsewhere than {o:?}"),
        }
        lab.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_learned_host_is_kept_for_its_grace_then_forgotten_with_its_entries() {
    let lab = learned_vm(Some(Duration::from_millis(800))).await;
    let before_learning = {
        // The tables as they would be had the VM never been learned: the plan without it,
        // and without the entries of its port (the port goes when it is unplugged): its
        // meter's, its subnet flood's, and its place in the other ports' floods.
        let mut t = tables(&lab);
        for (switch, lines) in t.iter_mut() {
            lines.retain(|l| {
                let its_port = switch == "r3"
                    && (l.contains("meter:3,") || l.contains("priority=860,in_port=3,"));
                !(l.contains("c0a80b03") || l.contains("02:00:00:00:11:03") || its_port)
            });
            if switch == "r3" {
                *lines = std::mem::take(lines)
                    .into_iter()
                    .map(|l| match l.contains("priority=860,") {
                        true => l.replace("output:3,", "").replace(",output:3", ""),
                        false => l,
                    })
                    .collect();
            }
        }
        t
    };
    lab.fabric.unplug("vm");
    let r = &lab.router;
    assert!(
        until(Duration::from_secs(2), || host(&lab, VM)
            .is_some_and(|h| !h.attached))
        .await
    );
    let h = host(&lab, VM).unwrap();
    assert_eq!(h.location, ("r3".into(), 3), "its last location");
    // Meanwhile its address is still its own: nobody else can claim it.
    // After the grace: gone, and so are its entries.
    assert!(
        until(Duration::from_secs(5), || host(&lab, VM).is_none()
            && !r.migrations_in_progress())
        .await,
        "{:?}",
        host(&lab, VM)
    );
    lab.wait_planned().await.unwrap();
    assert_eq!(tables(&lab), before_learning);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_comes_back_attaches_its_hosts_again_and_the_grace_timer_does_nothing() {
    let lab = learned_vm(Some(Duration::from_millis(500))).await;
    let port = servswitch::emu::switch::port(lab.fabric.switch("r3").dpid(), 3);
    lab.fabric.switch("r3").delete_port(3);
    assert!(
        until(Duration::from_secs(2), || host(&lab, VM)
            .is_some_and(|h| !h.attached))
        .await
    );
    lab.fabric.switch("r3").add_port(port);
    assert!(
        until(Duration::from_secs(2), || host(&lab, VM)
            .is_some_and(|h| h.attached))
        .await
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(host(&lab, VM).is_some_and(|h| h.attached), "not forgotten");
    assert!(lab
        .fabric
        .ping("e", VM, Duration::from_secs(3))
        .await
        .is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_is_for_learned_hosts_only() {
    let lab = learned_vm(None).await;
    let d = lab.router.find_host("d").unwrap();
    assert_eq!(
        lab.router.forget(d, None).await,
        Err(servswitch::app::migrate::ForgetError::Declared)
    );
    let vm = lab.router.find_host("192.168.11.3").unwrap();
    // Away first: forgetting it removes its entries everywhere, in phases.
    lab.router
        .migrate("192.168.11.3", &"r2:7".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(lab.router.forget(vm, None).await, Ok(()));
    assert!(host(&lab, VM).is_none());
    assert!(lab.care_of_addresses().is_empty());
    lab.wait_planned().await.unwrap();
    for (sw, lines) in tables(&lab) {
        assert!(
            lines.iter().all(|l| !l.contains("c0a80b03")),
            "{sw} keeps an entry of the forgotten VM"
        );
    }
    assert_eq!(
        lab.router.forget(vm, None).await,
        Err(servswitch::app::migrate::ForgetError::Unknown)
    );
    lab.stop().await;
}

/// The testbed with d and vm2 behind one port (r3:2), as behind a hypervisor's bridge.
fn shared_port() -> Topology {
    let mut t = topo("paper-testbed.toml");
    for h in &mut t.hosts {
        if h.name == "vm2" {
            h.at = "r3:2".parse().unwrap();
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_behind_one_port_are_hosts_like_any_other() {
    let lab = Lab::start(&shared_port()).await.unwrap();
    let vm2 = Ipv4Addr::new(192, 168, 11, 4);
    for to in [D, vm2] {
        assert!(
            lab.reaches("e", to, Duration::from_secs(3)).await,
            "e -> {to}"
        );
        assert!(
            lab.reaches("b", to, Duration::from_secs(3)).await,
            "b -> {to}"
        );
    }
    // vm2 moves away: d, behind the same port, is untouched.
    lab.migrate("vm2", "r2", 7).await.unwrap();
    let d = host(&lab, D).unwrap();
    assert_eq!((d.location, d.care_of.len()), (("r3".into(), 2), 0));
    assert!(lab
        .fabric
        .ping("e", D, Duration::from_secs(3))
        .await
        .is_some());
    assert!(lab
        .fabric
        .ping("e", vm2, Duration::from_secs(3))
        .await
        .is_some());
    // vm moves to the port where b is: both work there.
    lab.migrate("vm", "r2", 2).await.unwrap();
    for to in [VM, Ipv4Addr::new(192, 168, 10, 2)] {
        assert!(
            lab.reaches("e", to, Duration::from_secs(3)).await,
            "e -> {to}"
        );
        assert!(
            lab.reaches("d", to, Duration::from_secs(3)).await,
            "d -> {to}"
        );
    }
    let co = lab.care_of_addresses();
    assert!(lab.hosts_that_saw(&co).is_empty());
    // And back: b stays where it is.
    lab.migrate("vm", "r3", 3).await.unwrap();
    assert!(lab
        .fabric
        .ping("e", Ipv4Addr::new(192, 168, 10, 2), Duration::from_secs(3))
        .await
        .is_some());
    lab.stop().await;
}

/// A learned host with IPv6 only (ipv6-only.toml, the VM not declared, learned from the
/// neighbour solicitation its first ping sends) is detached like an IPv4 one when its port
/// goes, and forgotten with its entries when the grace ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_host_with_ipv6_only_is_detached_then_forgotten() {
    let lab = Lab::start_with(
        &topo("ipv6-only.toml"),
        LabOptions {
            learned: vec!["vm".into()],
            detached_grace: Some(Duration::from_millis(800)),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    let vm6: std::net::Ipv6Addr = "fd00:0:0:11::3".parse().unwrap();
    let e6: std::net::Ipv6Addr = "fd00:0:0:a::2".parse().unwrap();
    let host6 = |lab: &Lab| {
        lab.router
            .host_states()
            .into_iter()
            .find(|h| h.ips6.contains(&vm6))
    };
    assert!(lab
        .fabric
        .ping("vm", e6, Duration::from_secs(3))
        .await
        .is_some());
    let h = host6(&lab).expect("learned from its neighbour discovery");
    assert_eq!(h.origin, servswitch::app::router::Origin::Learned);
    assert!(h.attached);
    lab.wait_planned().await.unwrap();
    lab.fabric.unplug("vm");
    assert!(
        until(Duration::from_secs(2), || host6(&lab)
            .is_some_and(|h| !h.attached))
        .await,
        "{:?}",
        host6(&lab)
    );
    assert!(
        until(Duration::from_secs(5), || host6(&lab).is_none()
            && !lab.router.migrations_in_progress())
        .await,
        "{:?}",
        host6(&lab)
    );
    lab.wait_planned().await.unwrap();
    let left: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .flat_map(|s| {
            lab.fabric
                .dump_flows(s)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("02:00:00:00:11:03") || l.contains("fd00:0:0:11::3"))
        .collect();
    assert!(left.is_empty(), "its entries are gone: {left:#?}");
    lab.stop().await;
}
