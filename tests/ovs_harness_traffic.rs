//! Self-tests of the traffic harness (tests/common/traffic.rs) and of
//! `OvsFabric::migrate_host` on the paper's testbed as real Open vSwitch, routed by the real
//! `servswitch run`. Needs root and a running Open vSwitch; skips without them, fails instead
//! when CI=true. The parsers are also checked without root.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, rarp_frame};
use common::traffic::{self, parse_capture_line, parse_ping_run, Capture, Pinger, TcpStream};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const D: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 2);
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn testbed() -> (PathBuf, Topology) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let t = Topology::load(&path).unwrap();
    (path, t)
}

#[test]
fn tcp_stream_and_pinger_across_routers() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("tcp_stream_and_pinger_across_routers") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);

    let mut pinger = Pinger::start(&f, "d", E).unwrap();
    pinger.wait_replies(1, Duration::from_secs(5)).unwrap();
    let stream = TcpStream::start(&f, "e", "d", E, 5001).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let r = stream.stop().unwrap();
    let p = pinger.stop().unwrap();
    println!("tcp d -> e: {r:?}");
    println!("ping d -> e: {p:?}");
    assert!(r.unbroken(), "{r:?}\ncontroller log:\n{}", ctl.log());
    assert!(r.sent >= 50, "one message per 10 ms for 2 s: {r:?}");
    assert!(r.max_gap_ms < 1000.0, "{r:?}");
    assert!(r.server_log.contains("accepted 192.168.11.2:"), "{r:?}");
    assert!(p.transmitted >= 20, "{p:?}");
    assert_eq!(p.lost, 0, "{p:?}");
    assert_eq!(p.longest_loss_run, 0, "{p:?}");
    assert_eq!(p.received + p.in_flight, p.transmitted, "{p:?}");

    // A stream to a port nobody listens on is reported, not retried.
    let err = match TcpStream::start(&f, "e", "d", Ipv4Addr::new(10, 0, 0, 9), 5002) {
        Ok(_) => panic!("a stream to 10.0.0.9 cannot come up"),
        Err(e) => e,
    };
    println!("stream to nowhere: {err}");
}

#[test]
fn capture_sees_sources_and_not_absent_addresses() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("capture_sees_sources_and_not_absent_addresses") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);
    let caps = Capture::start_all(&f).unwrap();
    assert_eq!(caps.hosts().len(), t.hosts.len());

    let (sent, got) = f.ping("d", E, 3);
    assert_eq!((sent, got), (3, 3), "controller log:\n{}", ctl.log());
    // Control for `mentions`: an address carried only in a UDP payload is found too.
    f.exec(
        "d",
        &[
            ovs_fabric::python3(),
            "-c",
            "import socket;socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\
             .sendto(bytes([192,168,11,98]),('10.0.0.2',9))",
        ],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let all = caps.stop().unwrap();

    let e = &all["e"];
    let from_d: Vec<_> = e
        .iter()
        .filter(|p| p.incoming && p.is_ipv4() && p.src == D && p.dst == E)
        .collect();
    assert!(
        from_d.iter().filter(|p| p.proto == 1).count() >= 3,
        "e saw {} packets: {e:#?}",
        e.len()
    );
    assert!(
        from_d.iter().all(|p| p.ttl == 62),
        "routed by r3 and r1: {from_d:?}"
    );
    assert!(
        e.iter().any(|p| !p.incoming && p.src == E && p.dst == D),
        "the replies leave e"
    );
    let absent = Ipv4Addr::new(192, 168, 11, 99);
    let seen = traffic::mentioning(&all, absent);
    assert!(seen.is_empty(), "{absent} seen: {seen:?}");
    let control = traffic::mentioning(&all, Ipv4Addr::new(192, 168, 11, 98));
    assert!(
        control
            .iter()
            .any(|(h, p)| h == "e" && p.incoming && p.proto == 17),
        "the payload address was not found: {control:?}"
    );
    for (h, ps) in &all {
        println!(
            "{h}: {} frames, {} IPv4 in",
            ps.len(),
            ps.iter().filter(|p| p.incoming && p.is_ipv4()).count()
        );
    }
}

#[test]
fn migrate_host_moves_and_sends_qemu_rarp() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("migrate_host_moves_and_sends_qemu_rarp") {
        return;
    }
    let (path, t) = testbed();
    let (ctl, mut f) = ovs_fabric::start_routed(&t, &path);
    let wire = Capture::start_switch_side(&f, "vm2").unwrap();
    let before = f.host_state("vm2").unwrap();
    assert!(before.tx_checksum_off && before.link_up, "{before:?}");
    assert_eq!(before.addrs, ["192.168.11.4/24"]);
    assert!(
        before
            .routes
            .iter()
            .any(|r| r.starts_with("default via 192.168.11.1 dev eth0")),
        "{before:?}"
    );
    assert!(f.port_rx_packets("r2", 7).is_err(), "r2 has no port 7 yet");

    f.migrate_host("vm2", "r2", 7).unwrap();
    let veth = f.host("vm2").veth.clone();
    assert_eq!(
        (f.host("vm2").switch.as_str(), f.host("vm2").port),
        ("r2", 7)
    );
    assert_eq!(f.ofport_of("r2", &veth), Some(7));
    assert_eq!(f.ofport_of("r3", &veth), None);
    assert_eq!(
        f.host_state("vm2").unwrap(),
        before,
        "the move changed the VM"
    );

    let rx = |f: &ovs_fabric::OvsFabric| f.port_rx_packets("r2", 7).unwrap();
    let wait_rx = |f: &ovs_fabric::OvsFabric, above: u64| {
        let deadline = Instant::now() + Duration::from_secs(3);
        while rx(f) <= above {
            assert!(
                Instant::now() < deadline,
                "r2:7 rx_packets stays at {}",
                rx(f)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        rx(f)
    };
    let n1 = wait_rx(&f, 0);
    f.announce("vm2").unwrap();
    let n2 = wait_rx(&f, n1);
    println!("r2:7 rx_packets: {n1} after the migration, {n2} after one more announce");

    let frames = wire.stop().unwrap();
    let expected = rarp_frame("02:00:00:00:11:04").unwrap();
    let rarps: Vec<_> = frames
        .iter()
        .filter(|p| p.incoming && p.ethertype == 0x8035)
        .collect();
    assert_eq!(rarps.len(), 2, "{frames:#?}");
    for p in rarps {
        assert_eq!(p.frame, expected.to_vec(), "not QEMU's frame");
        assert_eq!(
            (p.src_mac.as_str(), p.dst_mac.as_str()),
            ("02:00:00:00:11:04", "ff:ff:ff:ff:ff:ff")
        );
        assert_eq!(
            (p.src, p.dst, p.proto),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 3)
        );
    }
    let (status, body) = ctl.api_get("/api/v1/switches").unwrap();
    assert_eq!(status, 200, "{body}");
    for l in ctl.log().lines().filter(|l| {
        let l = l.to_lowercase();
        l.contains("rarp") || l.contains("migrat") || l.contains("warn") || l.contains("error")
    }) {
        println!("controller: {l}");
    }
}

#[test]
fn rarp_frame_is_qemus() {
    let f = rarp_frame("52:54:00:12:34:56").unwrap();
    let m = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut want = vec![0xff; 6];
    want.extend(m);
    want.extend([0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3]);
    want.extend(m);
    want.extend([0; 4]);
    want.extend(m);
    want.extend([0; 4]);
    want.resize(60, 0);
    assert_eq!(f.to_vec(), want);
    assert!(rarp_frame("52:54:00:12:34").is_err());
    assert!(rarp_frame("zz:54:00:12:34:56").is_err());
}

#[test]
fn ping_output_is_parsed() {
    let text = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\
        [100.000] 64 bytes from 10.0.0.2: icmp_seq=1 ttl=62 time=1.0 ms\n\
        [100.020] no answer yet for icmp_seq=2\n\
        [100.030] no answer yet for icmp_seq=3\n\
        [100.040] From 192.168.11.1 icmp_seq=4 Destination Host Unreachable\n\
        [100.040] no answer yet for icmp_seq=4\n\
        [100.050] 64 bytes from 10.0.0.2: icmp_seq=5 ttl=62 time=1.0 ms\n\
        [100.051] 64 bytes from 10.0.0.2: icmp_seq=5 ttl=62 time=1.0 ms (DUP!)\n\
        [100.060] no answer yet for icmp_seq=6\n\
        [100.070] 64 bytes from 10.0.0.2: icmp_seq=7 ttl=62 time=1.0 ms\n\
        [100.900] no answer yet for icmp_seq=8\n\
        \n--- 10.0.0.2 ping statistics ---\n\
        9 packets transmitted, 3 received, +1 duplicates, 66% packet loss, time 90ms\n";
    let r = parse_ping_run(text, 101.5, 1.0);
    assert_eq!((r.transmitted, r.received), (9, 3));
    // 8 was unanswered for less than the wait and 9 has no line yet: in flight.
    assert_eq!((r.lost, r.in_flight), (4, 2), "{r:?}");
    assert_eq!(r.lost_seqs, [2, 3, 4, 6]);
    assert_eq!(r.longest_loss_run, 3);
    assert_eq!(r.icmp_errors, 1);
    assert!((r.max_reply_gap_ms - 50.0).abs() < 1e-6, "{r:?}");
    // Stopped much later, 8 is lost too, and the silence after the last reply counts.
    let r = parse_ping_run(text, 110.0, 1.0);
    assert_eq!((r.lost, r.in_flight), (5, 1));
    assert!((r.max_reply_gap_ms - 9930.0).abs() < 1e-6, "{r:?}");
}

#[test]
fn capture_lines_are_parsed() {
    let hex = format!(
        "{}{}0800{}{}",
        "020000000002",
        "025353000001",
        "450000540000400040010000c0a80b020a000002",
        "0800f7ff00000000c0a80b63"
    );
    let line = format!(
        "1700000000.123456 in 0800 02:53:53:00:00:01 02:00:00:00:00:02 192.168.11.2 10.0.0.2 1 64 {hex}"
    );
    let p = parse_capture_line(&line).unwrap();
    assert!(p.incoming && p.is_ipv4());
    assert_eq!((p.src, p.dst, p.proto, p.ttl), (D, E, 1, 64));
    assert_eq!(p.frame.len(), 46);
    assert!(
        p.mentions(Ipv4Addr::new(192, 168, 11, 99)),
        "in the payload"
    );
    assert!(p.mentions(D) && !p.mentions(Ipv4Addr::new(192, 168, 10, 3)));
    assert!(parse_capture_line("garbage").is_none());
}
