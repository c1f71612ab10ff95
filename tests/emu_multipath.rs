//! Multipath and link failures on the emulated fabric (issue 16): the real controller in
//! process, emulated switches and hosts over real sockets, topologies/three-tier.toml (every
//! access switch has two uplinks, every aggregation switch two).
//!
//! - Equal-cost next hops are select groups: flows spread over both uplinks, and one flow
//!   keeps its path.
//! - A link cut (both ends `LINK_DOWN`, as a cable) is routed around: the switch's own group
//!   leaves the dead bucket out at once, the controller plans the routes again and every
//!   switch ends up with the new plan; traffic flows both ways meanwhile and after. Mended,
//!   everything returns to the first plan.
//!
//! - LLDP checks the declared links: every one is verified soon after the switches connect;
//!   a miswired pair and a silent link (its ports up, nothing at the far end) are reported
//!   within 2 s and routed around, and the hosts still reach each other.
//!
//! Nothing waits on a fixed sleep: `wait_until` re-checks whenever a switch or host did work.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use servswitch::app::links;
use servswitch::app::router::Router;
use servswitch::emu::fabric::EmuFabric;
use servswitch::fabric::plan::{Fabric, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet;
use servswitch::switch::runtime::{Controller, RuntimeConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const PING: Duration = Duration::from_secs(2);

struct Rig {
    ctl: Arc<Controller>,
    router: Arc<Router>,
    fabric: EmuFabric,
    serve: JoinHandle<std::io::Result<()>>,
    names: Vec<String>,
}

fn three_tier() -> Topology {
    Topology::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-tier.toml"))
        .unwrap()
}

/// Every switch's flow entries and groups, as text.
fn live(f: &EmuFabric, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let flows = f.dump_flows(name).lines().map(str::to_string).collect();
    let groups = f
        .switch(name)
        .with_core(|c| c.tables().groups())
        .iter()
        .map(ofp13::text::group_line)
        .collect();
    (flows, groups)
}

/// What the router plans for a switch now, as text.
fn planned(r: &Router, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        r.switch_plan(name).iter().map(|f| f.text()).collect(),
        r.switch_groups(name).iter().map(|g| g.text()).collect(),
    )
}

impl Rig {
    async fn up(t: &Topology) -> Rig {
        Rig::wired(t, t).await
    }

    /// The controller runs with the declared topology `t`; the emulated fabric is cabled as
    /// `wired` says (the same switches and ports, maybe not the same links).
    async fn wired(t: &Topology, wired: &Topology) -> Rig {
        Rig::wired_lldp(t, wired, true).await
    }

    /// [`Rig::wired`], the links checked by LLDP or not.
    async fn wired_lldp(t: &Topology, wired: &Topology, lldp: bool) -> Rig {
        let (router, ctl) = Router::new(Fabric::new(t))
            .with_lldp(lldp)
            .serve_with(t.clone(), RuntimeConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Arc::clone(&ctl);
        let serve = tokio::spawn(async move { c.serve(listener, None).await });
        let fabric = EmuFabric::build(wired, addr).await.unwrap();
        fabric.wait_connected(WAIT).await.unwrap();
        let rig = Rig {
            ctl,
            router,
            fabric,
            serve,
            names: t.switches.iter().map(|s| s.name.clone()).collect(),
        };
        rig.converged("at start").await;
        rig
    }

    /// Waits until every switch holds exactly what the router plans for it now.
    async fn converged(&self, when: &str) {
        let ok = self
            .fabric
            .wait_until(WAIT, |f| {
                self.names
                    .iter()
                    .all(|n| live(f, n) == planned(&self.router, n))
            })
            .await;
        let drift: Vec<String> = self
            .names
            .iter()
            .filter(|n| live(&self.fabric, n) != planned(&self.router, n))
            .cloned()
            .collect();
        assert!(ok, "{when}: not as planned on {drift:?}");
    }

    /// The whole fabric as it is now (to compare with later).
    fn snapshot(&self) -> Vec<(BTreeSet<String>, BTreeSet<String>)> {
        self.names.iter().map(|n| live(&self.fabric, n)).collect()
    }

    async fn stop(self) {
        self.fabric.shutdown().await;
        self.ctl.shutdown(Duration::from_secs(5)).await;
        let _ = self.serve.await;
    }
}

/// A TCP segment (a SYN) from `from` (address `src`) to `dst` with source port `sport`.
/// TCP: the select hash leaves UDP ports out, as Open vSwitch's does.
fn tcp(f: &EmuFabric, from: &str, src: Ipv4Addr, dst: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&9u16.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let mac = f.host(from).mac;
    packet::ipv4_frame(GATEWAY_MAC, mac, src, dst, packet::IP_TCP, &seg)
}

fn addr(t: &Topology, host: &str) -> Ipv4Addr {
    t.hosts.iter().find(|h| h.name == host).unwrap().addresses()[0]
}

/// Packets each bucket of `switch`'s group `id` has taken.
fn bucket_packets(f: &EmuFabric, switch: &str, id: u32) -> Vec<u64> {
    f.switch(switch).with_core(|c| {
        c.tables()
            .group_stats(id)
            .first()
            .map(|g| g.bucket_stats.iter().map(|b| b.packet_count).collect())
            .unwrap_or_default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_cost_uplinks_share_the_flows_and_each_flow_keeps_its_path() {
    let t = three_tier();
    let rig = Rig::up(&t).await;
    let f = &rig.fabric;
    // t1 reaches t5 (the other block) over both uplinks: one group, two buckets.
    let g = rig.router.fabric.route_group("t1", "t5").expect("a group");
    assert_eq!(g.ports, vec![1, 2]);
    let (src, dst) = (addr(&t, "h1-0"), addr(&t, "h5-0"));
    // A ping first; then 64 flows, twice each.
    assert!(f.ping("h1-0", dst, PING).await.is_some());
    let before = f.received("h5-0").len();
    for round in 0..2 {
        for sport in 2000..2064 {
            f.send_raw("h1-0", tcp(f, "h1-0", src, dst, sport));
        }
        let want = before + 64 * (round + 1);
        assert!(
            f.wait_until(WAIT, |f| f.received("h5-0").len() >= want)
                .await,
            "only {} of {want} frames reached h5-0",
            f.received("h5-0").len()
        );
    }
    let per_bucket = bucket_packets(f, "t1", g.id);
    println!(
        "t1's group {} toward t5, packets per bucket: {per_bucket:?}",
        g.id
    );
    assert_eq!(per_bucket.iter().sum::<u64>(), 128 + 1, "{per_bucket:?}");
    assert!(
        per_bucket.iter().all(|&n| n >= 16),
        "64 flows over two uplinks: {per_bucket:?}"
    );
    // Each flow took one bucket both times: the counts are even but for the ping.
    assert_eq!(
        per_bucket.iter().filter(|&&n| n % 2 == 1).count(),
        1,
        "{per_bucket:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_is_routed_around_and_a_mended_one_returns_to_the_plan() {
    let t = three_tier();
    let rig = Rig::up(&t).await;
    let f = &rig.fabric;
    let at_start = rig.snapshot();
    let (h1, h5, h2) = (addr(&t, "h1-0"), addr(&t, "h5-0"), addr(&t, "h2-0"));
    for (from, to) in [("h1-0", h5), ("h5-0", h1), ("h2-0", h1)] {
        assert!(f.ping(from, to, PING).await.is_some(), "{from} -> {to}");
    }

    // t1's uplink to a1, and a3's downlink to t5: each end's switch loses one next hop, and
    // a3 can reach t5 only through a core and a4 now.
    f.set_link("t1", 1, false).unwrap();
    f.set_link("t5", 1, false).unwrap();
    let out = rig
        .fabric
        .wait_until(WAIT, |_| rig.router.fabric.unused().len() == 4)
        .await;
    assert!(out, "the controller did not take the links out of use");
    rig.converged("after the cuts").await;
    assert_eq!(rig.router.fabric.next_hops("t1", "t5"), vec![2]);
    assert_eq!(
        rig.router.fabric.route_group("t1", "t5").unwrap().ports,
        vec![2],
        "the group keeps its id and loses the dead bucket"
    );
    assert_eq!(
        rig.router.fabric.next_hops("a3", "t5"),
        vec![1, 2],
        "up, then down"
    );
    for (from, to) in [("h1-0", h5), ("h5-0", h1), ("h2-0", h1), ("h1-0", h2)] {
        assert!(
            f.ping(from, to, PING).await.is_some(),
            "{from} -> {to} with the links cut"
        );
    }
    let states = rig.router.link_states(rig.router.now());
    let down: Vec<String> = states
        .iter()
        .filter(|l| l.unused.is_some())
        .map(|l| format!("{}:{}-{}:{}", l.a.0, l.a.1, l.b.0, l.b.1))
        .collect();
    assert_eq!(down.len(), 2, "{down:?}");

    // Mended: back to the first plan, entry for entry.
    f.set_link("t1", 1, true).unwrap();
    f.set_link("t5", 1, true).unwrap();
    let back = rig
        .fabric
        .wait_until(WAIT, |_| rig.router.fabric.unused().is_empty())
        .await;
    assert!(
        back,
        "the links were not taken back into use: {:?}; out of use: {:?}",
        rig.router.link_states(rig.router.now()),
        rig.router.fabric.unused()
    );
    rig.converged("after the repair").await;
    assert_eq!(rig.snapshot(), at_start, "the fabric is as it was");
    for (from, to) in [("h1-0", h5), ("h5-0", h1)] {
        assert!(
            f.ping(from, to, PING).await.is_some(),
            "{from} -> {to} mended"
        );
    }
    assert!(rig.router.replans() >= 2);
    rig.stop().await;
}

/// The links' states as the API shows them: (a, b, state, lldp).
fn link_states(r: &Router) -> Vec<(String, String, &'static str, &'static str)> {
    r.link_states(r.now())
        .into_iter()
        .map(|l| {
            (
                format!("{}:{}", l.a.0, l.a.1),
                format!("{}:{}", l.b.0, l.b.1),
                l.unused.map_or("up", |u| u.state()),
                l.lldp.text(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lldp_verifies_every_declared_link_soon_after_the_switches_connect() {
    let t = three_tier();
    let start = std::time::Instant::now();
    let rig = Rig::up(&t).await;
    let r = &rig.router;
    let verified = rig
        .fabric
        .wait_until(WAIT, |_| {
            link_states(r)
                .iter()
                .all(|l| l.2 == "up" && l.3 == "verified")
        })
        .await;
    println!(
        "every link verified {:?} after the fabric was built",
        start.elapsed()
    );
    assert!(verified, "{:?}", link_states(r));
    // The checks go on: still verified well after the fast start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        link_states(r)
            .iter()
            .all(|l| l.2 == "up" && l.3 == "verified"),
        "{:?}",
        link_states(r)
    );
    // A link cut and mended once LLDP goes at the slow pace is checked again in time: two
    // re-plans (out, back), never an unverified one in between.
    let before = r.replans();
    let reconciles = r.replan_reconciles();
    rig.fabric.set_link("t1", 1, false).unwrap();
    assert!(
        rig.fabric
            .wait_until(WAIT, |_| r.replans() == before + 1)
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.fabric.set_link("t1", 1, true).unwrap();
    let mended = std::time::Instant::now();
    let back = rig
        .fabric
        .wait_until(WAIT, |_| {
            r.replans() == before + 2
                && link_states(r)
                    .iter()
                    .all(|l| l.2 == "up" && l.3 == "verified")
        })
        .await;
    assert!(
        back,
        "{:?}, {} re-plans",
        link_states(r),
        r.replans() - before
    );
    // Both ends sent at once when the port came up, not at their next second.
    let verified_after = mended.elapsed();
    println!("t1:1 mended, verified again {verified_after:?} after");
    assert!(
        verified_after < Duration::from_millis(600),
        "{verified_after:?}"
    );
    tokio::time::sleep(links::SILENT_AFTER * 2).await;
    assert_eq!(r.replans(), before + 2, "{:?}", link_states(r));
    // Each re-plan reconciled the 7 switches whose routes the link changes (t1, a1, the
    // cores, t1's block mates), not all 14; every table is as planned all the same.
    assert_eq!(r.replan_reconciles() - reconciles, 14);
    rig.converged("after the mend").await;
    rig.stop().await;
}

/// three-tier cabled wrong: a1:3 goes to t2:2 and a2:4 to t1:1 (declared a1:3 - t1:1,
/// a2:4 - t2:2); a4:6 and t8:2 are up but lead to two hosts that say nothing (declared
/// a4:6 - t8:2).
fn miswired() -> Topology {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-tier.toml"),
    )
    .unwrap();
    let swap = text
        .replace("a = \"a1:3\"\nb = \"t1:1\"", "a = \"a1:3\"\nb = \"t2:2\"")
        .replace("a = \"a2:4\"\nb = \"t2:2\"", "a = \"a2:4\"\nb = \"t1:1\"")
        .replace("[[link]]\na = \"a4:6\"\nb = \"t8:2\"\n", "")
        + "\n[[host]]\nname = \"quiet-a\"\nmac = \"02:00:00:99:00:01\"\nip = \"10.0.8.201\"\nat = \"a4:6\"\n\
           \n[[host]]\nname = \"quiet-t\"\nmac = \"02:00:00:99:00:02\"\nip = \"10.0.8.202\"\nat = \"t8:2\"\n";
    let wired = Topology::parse(&swap).unwrap();
    assert_ne!(
        wired.links.len(),
        three_tier().links.len(),
        "the edits took"
    );
    wired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lldp_off_the_declared_links_are_trusted() {
    let t = three_tier();
    let rig = Rig::wired_lldp(&t, &miswired(), false).await;
    // Long enough for a check to have run out, had there been one.
    tokio::time::sleep(links::SILENT_AFTER * 2).await;
    let states = link_states(&rig.router);
    assert!(
        states.iter().all(|l| l.2 == "up" && l.3 == "off"),
        "{states:?}"
    );
    assert_eq!(rig.router.replans(), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miswired_pair_and_a_silent_link_are_reported_within_2_s_and_routed_around() {
    let t = three_tier();
    let wired = miswired();
    let start = std::time::Instant::now();
    let rig = Rig::wired(&t, &wired).await;
    let r = &rig.router;
    let want = |l: &(String, String, &str, &str)| match (l.0.as_str(), l.1.as_str()) {
        ("a1:3", "t1:1") | ("a2:4", "t2:2") => "miswired",
        ("a4:6", "t8:2") => "unverified",
        _ => "up",
    };
    let reported = rig
        .fabric
        .wait_until(WAIT, |_| link_states(r).iter().all(|l| l.2 == want(l)))
        .await;
    let took = start.elapsed();
    println!("miswired and silent links reported {took:?} after the fabric was built");
    assert!(reported, "{:?}", link_states(r));
    assert!(took < Duration::from_secs(2), "reported after {took:?}");
    // Routed around: the tables follow the plan without them, and every rack reaches every
    // other (t1 over a2 only, t2 over a1 only, t8 over a3 only).
    rig.converged("routed around the contradicted links").await;
    let f = &rig.fabric;
    for (from, to) in [
        ("h1-0", "h2-0"),
        ("h2-0", "h1-0"),
        ("h8-0", "h1-0"),
        ("h1-0", "h8-0"),
        ("h5-0", "h2-0"),
    ] {
        let dst = addr(&t, to);
        assert!(
            f.ping(from, dst, PING).await.is_some(),
            "{from} -> {to}: {:?}, {} re-plans",
            link_states(r),
            r.replans()
        );
    }
    // Nothing was sent to the quiet hosts but LLDP; nothing they could send is believed.
    for l in r.link_states(r.now()) {
        if l.unused.is_some() {
            assert!(l.detail.is_some(), "{l:?}");
        }
    }
    rig.stop().await;
}

/// three-tier with a peer link between the aggregation switches a3 and a4 (port 7 each):
/// each then has a loop-free alternate for its racks.
fn peer_linked() -> Topology {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-tier.toml"),
    )
    .unwrap();
    Topology::parse(&(text + "\n[[link]]\na = \"a3:7\"\nb = \"a4:7\"\n")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_heals_in_the_switches_before_the_controller_knows_of_it() {
    for peer_link in [true, false] {
        let t = if peer_link {
            peer_linked()
        } else {
            three_tier()
        };
        let rig = Rig::up(&t).await;
        let f = &rig.fabric;
        let (src, dst) = (addr(&t, "h1-0"), addr(&t, "h5-0"));
        assert!(f.ping("h1-0", dst, PING).await.is_some());
        // a3 loses its link to t5 and t1 its uplink to a1, and neither tells the
        // controller: only the switches' groups can route around them.
        f.set_link_untold("a3", 3, false).unwrap();
        f.set_link_untold("t1", 1, false).unwrap();
        let down = f
            .wait_until(WAIT, |f| {
                f.switch("a3")
                    .with_core(|c| c.ports().iter().any(|p| p.port_no == 3 && !p.is_up()))
            })
            .await;
        assert!(down);
        let before = f.received("h5-0").len();
        for sport in 3000..3064 {
            f.send_raw("h1-0", tcp(f, "h1-0", src, dst, sport));
        }
        let all = f
            .wait_until(Duration::from_secs(2), |f| {
                f.received("h5-0").len() >= before + 64
            })
            .await;
        let arrived = f.received("h5-0").len() - before;
        println!("peer link {peer_link}: {arrived} of 64 flows reached h5-0 before any re-plan");
        assert_eq!(rig.router.replans(), 0, "the controller was told nothing");
        if peer_link {
            // t1's select group leaves the dead uplink out; the cores still send half the
            // flows to a3, whose fast-failover group sends them over the peer link.
            assert!(all, "{arrived} of 64");
        } else {
            // a3 has no alternate that would not send them back: those flows are lost
            // until the re-plan.
            assert!((16..64).contains(&arrived), "{arrived} of 64");
        }
        // LLDP notices what nobody reported: the links go silent and are routed around.
        let r = &rig.router;
        let noticed = f
            .wait_until(links::STALE_AFTER * 2, |_| {
                link_states(r)
                    .iter()
                    .any(|l| l.0 == "a3:3" && l.2 == "unverified")
                    && link_states(r)
                        .iter()
                        .any(|l| l.1 == "t1:1" && l.2 == "unverified")
            })
            .await;
        assert!(noticed, "{:?}", link_states(r));
        rig.converged("around the silent links").await;
        let before = f.received("h5-0").len();
        for sport in 4000..4064 {
            f.send_raw("h1-0", tcp(f, "h1-0", src, dst, sport));
        }
        assert!(
            f.wait_until(WAIT, |f| f.received("h5-0").len() >= before + 64)
                .await,
            "after the re-plan: {} of 64",
            f.received("h5-0").len() - before
        );
        rig.stop().await;
    }
}
