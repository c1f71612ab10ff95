//! Redirect and cover hygiene on the emulated fabric (issue 13, item 6): a host that ignores
//! ICMP redirects stops costing packet-ins once its redirects are spent; hosts redirected to a
//! VM (and the VM to them) still reach each other after it leaves, with their ARP caches
//! going stale too; a switch added to a VM's cover leaves it when its hosts stop talking to the
//! VM, and comes back with their next packet.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use servswitch::cli::demo::{Lab, LabOptions};
use servswitch::emu::fabric::HostConfig;

const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const B: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 2);

/// Packet-ins the router handled, but for the LLDP of its link checks (a steady few a
/// second whatever the hosts do).
fn packet_ins(lab: &Lab) -> u64 {
    lab.router
        .packet_ins()
        .iter()
        .filter(|(kind, _)| *kind != "lldp")
        .map(|(_, n)| n)
        .sum()
}

/// Pings `to` from `from` back to back for `d`; returns how many were answered.
async fn ping_for(lab: &Lab, from: &str, to: Ipv4Addr, d: Duration) -> (u32, u32) {
    let end = Instant::now() + d;
    let (mut sent, mut ok) = (0, 0);
    while Instant::now() < end {
        sent += 1;
        if lab
            .fabric
            .ping(from, to, Duration::from_millis(500))
            .await
            .is_some()
        {
            ok += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (sent, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_redirects_stops_costing_packet_ins_once_they_are_spent() {
    let lab = Lab::start_with(
        &topo("paper-testbed.toml"),
        LabOptions {
            host: Some(HostConfig {
                accept_redirects: false,
                ..HostConfig::default()
            }),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.migrate("vm", "r2", 3).await.unwrap();
    // b and the VM, both on r2, both ignoring redirects: every packet between them goes
    // through the foreign switch's copies at first.
    let (sent, ok) = ping_for(&lab, "b", VM, Duration::from_secs(1)).await;
    assert_eq!(sent, ok, "routed through r2 all along");
    assert!(sent > 20, "{sent}");
    lab.wait_planned().await.unwrap();
    let before = packet_ins(&lab);
    let (sent, ok) = ping_for(&lab, "b", VM, Duration::from_secs(1)).await;
    let after = packet_ins(&lab);
    println!(
        "after the first second: {sent} pings, {} packet-ins",
        after - before
    );
    assert_eq!(sent, ok);
    assert_eq!(
        after - before,
        0,
        "copies of a quiet pair reach the controller"
    );
    // The pairs' entries are in the plan (and on the switch).
    let r2 = lab.fabric.dump_flows("r2");
    assert_eq!(r2.matches("hard_timeout=20").count(), 2, "{r2}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_redirected_to_a_vm_still_reach_it_after_it_leaves_with_stale_arp_caches() {
    // ARP entries live 300 ms here, so the hosts ask again within the test.
    let lab = Lab::start_with(
        &topo("paper-testbed.toml"),
        LabOptions {
            host: Some(HostConfig {
                arp_lifetime: Duration::from_millis(300),
                arp_locktime: Duration::from_millis(100),
                ..HostConfig::default()
            }),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.migrate("vm", "r2", 3).await.unwrap();
    // Redirected both ways: b talks to the VM directly and the VM to b (redirects are at
    // least 20 ms apart per pair, and the first makes the host resolve the new gateway).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3)
        && !(lab.fabric.redirects("b").contains_key(&VM)
            && lab.fabric.redirects("vm").contains_key(&B))
    {
        lab.fabric.ping("b", VM, Duration::from_secs(1)).await;
        lab.fabric.ping("vm", B, Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        lab.fabric.redirects("b").get(&VM),
        Some(&VM),
        "b was redirected"
    );
    assert_eq!(
        lab.fabric.redirects("vm").get(&B),
        Some(&B),
        "vm was redirected"
    );
    // The VM goes home; then on to r1. Each time both reach each other within 1 s, and
    // again after their ARP entries went stale.
    for (sw, port) in [("r3", 3), ("r1", 7)] {
        lab.migrate("vm", sw, port).await.unwrap();
        let t0 = Instant::now();
        let mut both = false;
        while t0.elapsed() < Duration::from_secs(1) {
            let a = lab
                .fabric
                .ping("b", VM, Duration::from_millis(200))
                .await
                .is_some();
            let b = lab
                .fabric
                .ping("vm", B, Duration::from_millis(200))
                .await
                .is_some();
            if a && b {
                both = true;
                break;
            }
        }
        assert!(both, "vm at {sw}: not reachable both ways within 1 s");
        tokio::time::sleep(Duration::from_millis(600)).await;
        for _ in 0..3 {
            assert!(
                lab.reaches("b", VM, Duration::from_secs(2)).await,
                "b -> vm at {sw}, stale cache"
            );
            assert!(
                lab.reaches("vm", B, Duration::from_secs(2)).await,
                "vm at {sw} -> b, stale cache"
            );
        }
    }
    let co = lab.care_of_addresses();
    assert!(lab.hosts_that_saw(&co).is_empty());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cover_switch_whose_hosts_stop_talking_leaves_the_cover_and_comes_back() {
    let t = topo("three-tier.toml");
    let lab = Lab::start_with(
        &t,
        LabOptions {
            cover_idle: Some(1),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    let c = "h1-0";
    let c_ip = lab.fabric.host(c).addrs[0].0;
    let mac = lab.fabric.host(c).mac;
    lab.migrate(c, "t8", 9).await.unwrap();
    // h3-0 (on t3, outside the default cover) talks to C: t3 joins the cover.
    assert!(lab
        .fabric
        .ping("h3-0", c_ip, Duration::from_secs(3))
        .await
        .is_some());
    let r = &lab.router;
    let cover = |r: &servswitch::app::router::Router| r.cover_of(mac).unwrap_or_default();
    let joined = lab
        .fabric
        .wait_until(Duration::from_secs(3), |_| cover(r).contains("t3"))
        .await;
    assert!(joined, "{:?}", cover(r));
    lab.wait_planned().await.unwrap();
    let dnat = format!("ip,nw_dst={c_ip} actions=set_field:");
    assert!(lab.fabric.dump_flows("t3").contains(&dnat));
    // Silence for longer than the idle timeout: t3's rewrite idles out, the controller takes
    // t3 out of the cover, and its entries go (the restore after the drain).
    let t0 = Instant::now();
    let left = loop {
        if !cover(r).contains("t3") && !r.migrations_in_progress() {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(left, "{:?}", cover(r));
    lab.wait_planned().await.unwrap();
    assert!(
        !lab.fabric.dump_flows("t3").contains(&c_ip.to_string()),
        "{}",
        lab.fabric.dump_flows("t3")
    );
    // Its hosts talk again: back in the cover, at once.
    assert!(lab
        .fabric
        .ping("h3-1", c_ip, Duration::from_secs(3))
        .await
        .is_some());
    let back = lab
        .fabric
        .wait_until(Duration::from_secs(3), |_| cover(r).contains("t3"))
        .await;
    assert!(back, "{:?}", cover(r));
    let co = lab.care_of_addresses();
    assert!(lab.hosts_that_saw(&co).is_empty());
    lab.stop().await;
}
