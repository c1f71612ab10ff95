//! Verified moves on the emulated fabric, whose hosts answer ARP as Linux does: a forged
//! RARP from a fresh port moves the VM tentatively, the probe of its old port is answered,
//! the VM is moved back and the claimant quarantined; a genuine move whose source port stays
//! (the hypervisor deletes it later, or never) is probed, nothing answers, and it stands.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;
#[path = "common/until.rs"]
mod until;
use until::until;

use std::net::Ipv4Addr;
use std::time::Duration;

use ofp13::MacAddr;
use servswitch::cli::demo::{Lab, LabOptions};
use servswitch::fabric::topology::Topology;

const VM_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 3]);
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The paper's testbed with a tenant `x` on r2:7 that the controller is not told of.
async fn lab() -> Lab {
    let mut t: Topology = topo("paper-testbed.toml");
    t.hosts.push(shipped::attacker());
    let lab = Lab::start_with(
        &t,
        LabOptions {
            learned: vec!["x".into()],
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.wait_planned().await.unwrap();
    lab
}

fn vm_at(lab: &Lab) -> Option<(String, u32)> {
    lab.router
        .host_states()
        .into_iter()
        .find(|h| h.mac == VM_MAC)
        .map(|h| h.location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_rarp_is_refused_and_the_vm_moved_back() {
    let lab = lab().await;
    let home = ("r3".to_string(), 3);
    assert_eq!(vm_at(&lab), Some(home.clone()));
    lab.fabric
        .send_raw("x", servswitch::packet::rarp_announce(VM_MAC));
    assert!(
        until(Duration::from_secs(1), || lab
            .router
            .announcements_refused()
            == 1
            && vm_at(&lab) == Some(home.clone())
            && !lab.router.migrations_in_progress())
        .await,
        "refused {}, the VM at {:?}",
        lab.router.announcements_refused(),
        vm_at(&lab)
    );
    let q = lab.router.quarantine_list();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].switch.as_str(), q[0].port), ("r2", 7));
    // Repeats move nothing.
    let moved = lab.router.migrations_done();
    for _ in 0..3 {
        lab.fabric
            .send_raw("x", servswitch::packet::rarp_announce(VM_MAC));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lab.router.migrations_done(), moved);
    assert_eq!(vm_at(&lab), Some(home));
    // The VM works, at home, and the tables are the plan again.
    lab.wait_planned().await.unwrap();
    assert!(lab
        .fabric
        .ping("vm", E, Duration::from_secs(3))
        .await
        .is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_move_whose_source_port_stays_is_verified_and_stands() {
    let lab = lab().await;
    let port = servswitch::emu::switch::port(lab.fabric.switch("r2").dpid(), 9);
    lab.fabric.switch("r2").add_port(port);
    lab.fabric.reattach("vm", "r2", 9).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    lab.fabric.announce("vm");
    let there = ("r2".to_string(), 9);
    assert!(
        until(Duration::from_secs(1), || vm_at(&lab)
            == Some(there.clone()))
        .await
    );
    // Past the probe window: it stands; nobody is refused or quarantined.
    tokio::time::sleep(servswitch::app::trust::PROBE_WINDOW + Duration::from_millis(200)).await;
    assert_eq!(vm_at(&lab), Some(there));
    assert_eq!(lab.router.announcements_refused(), 0);
    assert!(lab.router.quarantine_list().is_empty());
    assert!(lab
        .fabric
        .ping("vm", E, Duration::from_secs(3))
        .await
        .is_some());
    lab.stop().await;
}
