//! L3 routing between racks on the emulated fabric (`servswitch::emu::fabric`): the real
//! controller in process (`Controller` + `Router`) and emulated switches and hosts over real
//! sockets. The same scenarios as tests/ovs_routing.rs, with no root and no Open vSwitch.
//!
//! Nothing waits on a fixed sleep: the fabric's `wait_until` re-checks a condition whenever a
//! switch or host did some work, and "the controller has handled everything a switch sent" is
//! established by a round trip through the same switch's controller connection (a ping to its
//! gateway, answered by the controller), which is ordered after the earlier packet-ins.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ofp13::MacAddr;
use servswitch::app::router::{Origin, Router};
use servswitch::emu::fabric::{EmuFabric, ProbeOutcome};
use servswitch::fabric::plan::{Fabric, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet::{self, Arp, ARP_REPLY, ARP_REQUEST, ETH_ARP, ICMP_TIME_EXCEEDED};
use servswitch::switch::runtime::{Controller, RuntimeConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const PING: Duration = Duration::from_secs(2);

fn topo_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(name)
}

fn topo(name: &str) -> Topology {
    Topology::load(&topo_path(name)).unwrap()
}

/// The controller in process and the emulated fabric connected to it.
struct Rig {
    ctl: Arc<Controller>,
    router: Arc<Router>,
    fabric: EmuFabric,
    serve: JoinHandle<std::io::Result<()>>,
}

async fn controller(
    t: &Topology,
) -> (
    Arc<Controller>,
    Arc<Router>,
    SocketAddr,
    JoinHandle<std::io::Result<()>>,
) {
    let (router, ctl) = Router::new(Fabric::new(t)).serve_with(t.clone(), RuntimeConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = Arc::clone(&ctl);
    let serve = tokio::spawn(async move { c.serve(listener, None).await });
    (ctl, router, addr, serve)
}

/// The flow entries the controller plans for `switch`, as dump-flows lines.
fn planned(router: &Router, switch: &str) -> BTreeSet<String> {
    router
        .switch_plan(switch)
        .iter()
        .map(|f| f.text())
        .collect()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// Builds `fabric_topology` as an emulated fabric, runs the controller on
/// `controller_topology`, and waits until every switch holds exactly the planned pipeline.
async fn up(fabric_topology: &Topology, controller_topology: &Topology) -> Rig {
    let (ctl, router, addr, serve) = controller(controller_topology).await;
    let fabric = EmuFabric::build(fabric_topology, addr).await.unwrap();
    fabric.wait_connected(WAIT).await.unwrap();
    let names: Vec<String> = fabric_topology
        .switches
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let ok = fabric
        .wait_until(WAIT, |f| {
            names
                .iter()
                .all(|n| lines(&f.dump_flows(n)) == planned(&router, n))
        })
        .await;
    assert!(
        ok,
        "pipelines not installed as planned:\n{}",
        names
            .iter()
            .map(|n| format!("{n}:\n{}", fabric.dump_flows(n)))
            .collect::<String>()
    );
    Rig {
        ctl,
        router,
        fabric,
        serve,
    }
}

impl Rig {
    async fn stop(self) {
        self.fabric.shutdown().await;
        self.ctl.shutdown(Duration::from_secs(5)).await;
        let _ = self.serve.await;
    }
}

/// Every host pings every other host and the gateway of every subnet: all answered at the
/// first echo request.
async fn all_pairs(f: &EmuFabric, t: &Topology) -> usize {
    let mut failed = Vec::new();
    let mut n = 0;
    for from in &t.hosts {
        let targets = t
            .hosts
            .iter()
            .filter(|h| h.name != from.name)
            .flat_map(|h| h.addresses())
            .chain(t.subnets.iter().filter_map(|s| s.gateway));
        for ip in targets {
            n += 1;
            if f.ping(&from.name, ip, PING).await.is_none() {
                failed.push(format!("{} -> {ip}", from.name));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} pairs not answered:\n{}",
        failed.len(),
        failed.join("\n")
    );
    n
}

async fn reply_ttl(f: &EmuFabric, from: &str, to: Ipv4Addr) -> Option<u8> {
    f.ping(from, to, PING).await.map(|r| r.ttl)
}

/// The TTLs of the echo requests `host` received from `src`.
fn request_ttls(f: &EmuFabric, host: &str, src: Ipv4Addr) -> Vec<u8> {
    f.received(host)
        .iter()
        .filter(|r| r.icmp() == Some((packet::ICMP_ECHO_REQUEST, 0)))
        .filter_map(|r| r.ipv4().filter(|ip| ip.src == src).map(|ip| ip.ttl))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_testbed_routes_every_pair() {
    let t0 = Instant::now();
    let t = topo("paper-testbed.toml");
    let rig = up(&t, &t).await;
    let f = &rig.fabric;
    let n = all_pairs(f, &t).await;

    // TTL: lowered once per routed hop, untouched between hosts of one subnet.
    let d = Ipv4Addr::new(192, 168, 11, 2);
    assert_eq!(
        reply_ttl(f, "vm", d).await,
        Some(64),
        "same subnet: switched"
    );
    assert_eq!(
        reply_ttl(f, "e", Ipv4Addr::new(192, 168, 11, 3)).await,
        Some(62),
        "r3, r1"
    );
    assert_eq!(reply_ttl(f, "b", d).await, Some(61), "r3, r1, r2");
    assert_eq!(
        reply_ttl(f, "b", Ipv4Addr::new(192, 168, 10, 1)).await,
        Some(64),
        "the gateway itself"
    );
    // ... and on the way there: what d received from b and from vm.
    let b_ip = Ipv4Addr::new(192, 168, 10, 2);
    let from_b = request_ttls(f, "d", b_ip);
    assert!(
        !from_b.is_empty() && from_b.iter().all(|&t| t == 61),
        "{from_b:?}"
    );
    let from_vm = request_ttls(f, "d", Ipv4Addr::new(192, 168, 11, 3));
    assert!(
        !from_vm.is_empty() && from_vm.iter().all(|&t| t == 64),
        "{from_vm:?}"
    );
    // Every echo reply the hosts received has a correct IPv4 and ICMP checksum.
    for h in &t.hosts {
        for r in f.received(&h.name) {
            if let Some(ip) = r.ipv4() {
                assert_eq!(packet::checksum(ip.header), 0, "{}: {:?}", h.name, r.frame);
                assert_eq!(packet::checksum(ip.payload), 0, "{}: {:?}", h.name, r.frame);
            }
        }
    }
    println!("{n} pairs answered in {:?}", t0.elapsed());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_routes_every_pair() {
    let t0 = Instant::now();
    let t = topo("three-tier.toml");
    let rig = up(&t, &t).await;
    let n = all_pairs(&rig.fabric, &t).await;
    // Rack 1 to rack 8 crosses blocks: t1, a1, c1, a3, t8 route it.
    let h8 = Ipv4Addr::new(10, 0, 8, 10);
    assert_eq!(reply_ttl(&rig.fabric, "h1-0", h8).await, Some(59));
    println!("{n} pairs answered in {:?}", t0.elapsed());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_ttl_gets_time_exceeded_from_the_gateway() {
    let t = topo("paper-testbed.toml");
    let rig = up(&t, &t).await;
    let f = &rig.fabric;
    let e = Ipv4Addr::new(10, 0, 0, 2);
    // TTL 1: the first router, r2, answers from b's gateway.
    assert_eq!(
        f.probe("b", e, 1, PING).await,
        ProbeOutcome::Error {
            from: Ipv4Addr::new(192, 168, 10, 1).into(),
            icmp_type: ICMP_TIME_EXCEEDED,
            code: 0
        }
    );
    // TTL 2: r1 answers from its own (first) gateway; the error crossed r2, so TTL 63.
    assert_eq!(
        f.probe("b", e, 2, PING).await,
        ProbeOutcome::Error {
            from: Ipv4Addr::new(10, 0, 0, 1).into(),
            icmp_type: ICMP_TIME_EXCEEDED,
            code: 0
        }
    );
    let te: Vec<(Ipv4Addr, u8)> = f
        .received("b")
        .iter()
        .filter(|r| r.icmp() == Some((ICMP_TIME_EXCEEDED, 0)))
        .filter_map(|r| r.ipv4().map(|ip| (ip.src, ip.ttl)))
        .collect();
    assert_eq!(
        te,
        [
            (Ipv4Addr::new(192, 168, 10, 1), 64),
            (Ipv4Addr::new(10, 0, 0, 1), 63)
        ]
    );
    // The expired packets never reached e.
    assert!(request_ttls(f, "e", Ipv4Addr::new(192, 168, 10, 2)).is_empty());
    // TTL 1 inside one subnet is switched, not routed: answered.
    let d = Ipv4Addr::new(192, 168, 11, 2);
    assert_eq!(
        f.probe("vm", d, 1, PING).await.reply().map(|r| r.ttl),
        Some(64)
    );
    // From b to d three routers lower the TTL (r2, r1, r3): TTL 3 expires at r3, which answers
    // from its gateway; TTL 4 arrives with TTL 1.
    assert_eq!(
        f.probe("b", d, 3, PING).await,
        ProbeOutcome::Error {
            from: Ipv4Addr::new(192, 168, 11, 1).into(),
            icmp_type: ICMP_TIME_EXCEEDED,
            code: 0
        }
    );
    let b_ip = Ipv4Addr::new(192, 168, 10, 2);
    assert!(request_ttls(f, "d", b_ip).is_empty());
    assert!(f.probe("b", d, 4, PING).await.reply().is_some());
    assert_eq!(request_ttls(f, "d", b_ip), [1]);
    rig.stop().await;
}

/// Polls a condition on state outside the fabric (the controller's) until it holds; fails
/// the test after [`WAIT`].
async fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Ping the gateway from `host`: when the reply is back, the controller has handled every
/// packet-in the host's switch sent before.
async fn sync_with_controller(f: &EmuFabric, host: &str) {
    let gw = f.host(host).gateway.unwrap();
    assert!(f.ping(host, gw, PING).await.is_some(), "{host} -> {gw}");
}

fn arp_frame(op: u16, sha: MacAddr, spa: [u8; 4], tpa: [u8; 4], dst: MacAddr) -> Vec<u8> {
    Arp {
        op,
        sha,
        spa: spa.into(),
        tha: MacAddr::ZERO,
        tpa: tpa.into(),
    }
    .frame(dst, sha, ETH_ARP)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_host_gets_the_first_packet_and_spoofs_change_nothing() {
    // The fabric has a host "x" the controller's topology does not list: it must be resolved.
    let ctl_topo = topo("paper-testbed.toml");
    let mut text = std::fs::read_to_string(topo_path("paper-testbed.toml")).unwrap();
    text.push_str(
        "\n[[host]]\nname = \"x\"\nmac = \"02:00:00:00:10:05\"\nip = \"192.168.10.5\"\nat = \"r2:5\"\n",
    );
    let with_x = Topology::parse(&text).unwrap();
    let rig = up(&with_x, &ctl_topo).await;
    let f = &rig.fabric;
    let x_ip = Ipv4Addr::new(192, 168, 10, 5);
    let x_mac = MacAddr([2, 0, 0, 0, 0x10, 5]);

    // x has sent nothing; the very first echo request reaches it and is answered.
    assert!(f.received("x").is_empty());
    let r = f.ping("e", x_ip, PING).await;
    assert!(r.is_some(), "the first packet to a silent host was lost");
    let got = f.received("x");
    let first_ip = got.iter().find_map(|r| r.ipv4().map(|ip| (ip.src, ip.ttl)));
    assert_eq!(
        first_ip,
        Some((Ipv4Addr::new(10, 0, 0, 2), 62)),
        "held, then delivered"
    );
    let asked = got.iter().find_map(|r| r.arp()).unwrap();
    assert_eq!(
        (asked.op, asked.sha, asked.spa, asked.tpa),
        (
            ARP_REQUEST,
            GATEWAY_MAC,
            Ipv4Addr::new(192, 168, 10, 1),
            x_ip
        ),
        "the gateway asked for x"
    );
    let learned = rig
        .router
        .hosts()
        .into_iter()
        .find(|(h, _)| h.ip == x_ip)
        .expect("x learned");
    assert_eq!(
        (
            learned.0.mac,
            learned.0.switch.as_str(),
            learned.0.port,
            learned.1
        ),
        (x_mac, "r2", 5, Origin::Learned)
    );

    let snapshot = |f: &EmuFabric| {
        (
            rig.router.hosts(),
            ["r1", "r2", "r3"].map(|s| lines(&f.dump_flows(s))),
        )
    };
    let before = snapshot(f);

    // Claims for bound addresses, from the same subnet: vm2 says it is d (configured), b says
    // it is x (learned just now), each with a gratuitous ARP and a forged reply. Nothing moves.
    let vm2 = MacAddr([2, 0, 0, 0, 0x11, 4]);
    let b = MacAddr([2, 0, 0, 0, 0x10, 2]);
    for (host, mac, victim, gw) in [
        ("vm2", vm2, [192, 168, 11, 2], [192, 168, 11, 1]),
        ("b", b, [192, 168, 10, 5], [192, 168, 10, 1]),
    ] {
        f.send_raw(
            host,
            arp_frame(ARP_REQUEST, mac, victim, victim, MacAddr::BROADCAST),
        );
        f.send_raw(host, arp_frame(ARP_REPLY, mac, victim, gw, GATEWAY_MAC));
        sync_with_controller(f, host).await;
    }
    assert_eq!(
        snapshot(f),
        before,
        "a claim for a bound address moved something"
    );
    let r3 = f.dump_flows("r3");
    assert!(
        r3.contains("nw_dst=192.168.11.2 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:11:02->eth_dst,output:2"),
        "{r3}"
    );
    let r2 = f.dump_flows("r2");
    assert!(
        r2.contains("nw_dst=192.168.10.5 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:10:05->eth_dst,output:5"),
        "{r2}"
    );

    // Malformed ARP from b, each claiming a new address of b's subnet: nothing is learned.
    let good = arp_frame(
        ARP_REQUEST,
        b,
        [192, 168, 10, 77],
        [192, 168, 10, 1],
        MacAddr::BROADCAST,
    );
    let mut malformed: Vec<Vec<u8>> = vec![
        good[..14].to_vec(), // no ARP body
        good[..30].to_vec(), // cut in the sender address
        good[..41].to_vec(), // cut in the target address
    ];
    let mut m = good.clone();
    m[14 + 4] = 8; // hardware address length 8
    malformed.push(m);
    let mut m = good.clone();
    m[14 + 1] = 6; // hardware type 6 (IEEE 802)
    malformed.push(m);
    let mut m = good.clone();
    m[14 + 2..14 + 4].copy_from_slice(&0x86ddu16.to_be_bytes()); // protocol IPv6
    malformed.push(m);
    let mut m = good.clone();
    m[14 + 6..14 + 8].copy_from_slice(&[0, 0]); // opcode 0 (none: 1 and 2 are ARP)
    malformed.push(m);
    let mut m = good.clone();
    m[6..12].copy_from_slice(&[2, 0xee, 0, 0, 0, 9]); // Ethernet source is not the sender
    malformed.push(m);
    for m in malformed {
        f.send_raw("b", m);
    }
    sync_with_controller(f, "b").await;
    assert_eq!(snapshot(f), before, "a malformed ARP changed something");
    assert!(rig
        .router
        .hosts()
        .iter()
        .all(|(h, _)| h.ip != Ipv4Addr::new(192, 168, 10, 77)));

    // Everyone is still reachable where they were.
    assert!(f.ping("e", x_ip, PING).await.is_some());
    assert!(f
        .ping("e", Ipv4Addr::new(192, 168, 11, 2), PING)
        .await
        .is_some());
    assert_eq!(f.arp_cache("vm").get(&Ipv4Addr::new(192, 168, 11, 2)), None);
    rig.stop().await;
}

/// Stopping the fabric and the controller leaves no task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_tasks() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let t = topo("paper-testbed.toml");
    let rig = up(&t, &t).await;
    assert!(rig
        .fabric
        .ping("b", Ipv4Addr::new(10, 0, 0, 2), PING)
        .await
        .is_some());
    assert!(tasks() > before);
    let ctl = Arc::clone(&rig.ctl);
    rig.stop().await;
    assert_eq!(ctl.live_connections(), 0);
    // The runtime counts a task alive until its last poll has returned; give it that turn.
    poll("every task to end", || tasks() == before).await;
}

/// A host moved to another switch keeps MAC and address; the switches report the port change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_host_reports_the_ports() {
    let t = topo("paper-testbed.toml");
    let rig = up(&t, &t).await;
    let f = &rig.fabric;
    f.move_host("vm", "r2", 7).unwrap();
    assert!(f.move_host("vm", "r2", 1).is_err(), "a link port");
    let vm = f.host("vm");
    assert_eq!((vm.switch.as_str(), vm.port), ("r2", 7));
    assert_eq!(vm.addrs, [(Ipv4Addr::new(192, 168, 11, 3), 24)]);
    let ports = |dpid: u64| -> Vec<u32> {
        rig.ctl
            .registry
            .get(dpid)
            .map(|h| h.info.ports().iter().map(|p| p.port_no).collect())
            .unwrap_or_default()
    };
    poll("the controller to see the ports change", || {
        ports(2).contains(&7) && !ports(3).contains(&3)
    })
    .await;
    // To d's port: behind it with d (a hub); that port stays, r2:7 goes.
    f.move_host("vm", "r3", 2).unwrap();
    let vm = f.host("vm");
    assert_eq!((vm.switch.as_str(), vm.port, vm.plugged), ("r3", 2, true));
    poll("r2:7 to go", || {
        !ports(2).contains(&7) && ports(3).contains(&2)
    })
    .await;
    rig.stop().await;
}

/// A switch that implements no meters (they are optional in OpenFlow 1.3; Open vSwitch's
/// kernel datapath has none before Linux 4.15) still gets its whole pipeline, planned without
/// meters or per-port entries, and says so once: its hosts are answered by the controller and
/// routed as before, a VM migrates onto it, and the other switches keep their meters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_without_meters_gets_its_pipeline_without_them() {
    use servswitch::cli::demo::{Lab, LabOptions};
    let t = topo("paper-testbed.toml");
    let lab = Lab::start_with(
        &t,
        LabOptions {
            without_meters: ["r2".to_string()].into(),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.wait_planned().await.unwrap();
    let r = &lab.router;
    assert!(r.is_unmetered("r2") && !r.is_unmetered("r3"));
    assert!(r.switch_meters("r2").is_empty());
    let r2 = lab.fabric.dump_flows("r2");
    assert!(!r2.contains("meter:"), "{r2}");
    assert!(
        r2.contains("table=5, priority=0 actions=CONTROLLER:65535"),
        "{r2}"
    );
    assert!(lab.fabric.dump_flows("r3").contains("meter:2,"));
    // b, on r2: its gateway answers (through the punt table) and E is reached.
    let gw: Ipv4Addr = "192.168.10.1".parse().unwrap();
    let e: Ipv4Addr = "10.0.0.2".parse().unwrap();
    assert!(lab.reaches("b", gw, PING).await);
    assert!(lab.reaches("b", e, PING).await);
    // A VM migrates onto it, announced by its RARP, and is reached there.
    lab.fabric.move_host("vm", "r2", 9).unwrap();
    lab.fabric.announce("vm");
    let moved = lab
        .fabric
        .wait_until(WAIT, |_| {
            servswitch::api::handlers::hosts(r)
                .iter()
                .any(|h| h.name == "vm" && h.location.switch == "r2" && h.location.port == 9)
                && !r.migrations_in_progress()
        })
        .await;
    assert!(moved);
    lab.wait_planned().await.unwrap();
    assert!(
        lab.reaches("e", "192.168.11.3".parse::<Ipv4Addr>().unwrap(), PING)
            .await
    );
    assert!(!lab.fabric.dump_flows("r2").contains("meter:"));
    lab.stop().await;
}
