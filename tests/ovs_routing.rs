//! L3 routing between racks on real Open vSwitch: both shipped topologies built as userspace
//! bridges and host namespaces (tests/common/ovs_fabric.rs), the real `servswitch run`, and
//! real pings and TCP between every pair of hosts. Needs root and a running Open vSwitch; skips
//! without them, fails instead when CI=true.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::ovs_fabric::{self, ControllerProcess, OvsFabric};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

fn topo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(name)
}

/// The TTL of the first echo reply `ping` printed.
fn reply_ttl(f: &OvsFabric, from: &str, to: Ipv4Addr) -> Option<u8> {
    let out = f
        .exec(from, &["ping", "-c", "1", "-W", "2", &to.to_string()])
        .ok()?;
    out.split("ttl=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every host pings every other host and the gateway of every subnet: all answered.
fn all_pairs(f: &OvsFabric, t: &Topology, ctl: &ControllerProcess) {
    let mut failed = Vec::new();
    let hosts: Vec<(String, Vec<Ipv4Addr>)> = t
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.addresses()))
        .collect();
    let (mut n, mut retried) = (0, 0);
    for (from, _) in &hosts {
        let targets = hosts
            .iter()
            .filter(|(to, _)| to != from)
            .flat_map(|(_, ips)| ips.clone())
            .chain(t.subnets.iter().filter_map(|s| s.gateway));
        for ip in targets {
            n += 1;
            // One echo at a time, up to three: on this 2-core machine a busy userspace
            // datapath can take longer than ping's wait. A pair that never answers fails.
            let tries = (0..3).take_while(|_| f.ping(from, ip, 1).1 == 0).count();
            if tries > 0 {
                retried += 1;
            }
            if tries == 3 {
                failed.push(format!("{from} -> {ip}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} pairs never answered:\n{}\ncontroller log:\n{}",
        failed.len(),
        failed.join("\n"),
        ctl.log()
    );
    println!(
        "{n} host-to-host and host-to-gateway pairs answered ({retried} needed a second echo)"
    );
}

#[test]
fn paper_testbed_routes_every_pair() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("paper_testbed_routes_every_pair") {
        return;
    }
    let path = topo("paper-testbed.toml");
    let t = Topology::load(&path).unwrap();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);

    // What `servswitch plan` prints is what Open vSwitch holds, line for line.
    for s in &t.switches {
        let plan = std::process::Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args([
                "plan",
                "--topology",
                path.to_str().unwrap(),
                "--switch",
                &s.name,
            ])
            .output()
            .unwrap();
        assert!(plan.status.success());
        let sorted = |text: &str| {
            let mut v: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
            v.sort();
            v
        };
        let planned = sorted(&String::from_utf8_lossy(&plan.stdout));
        let live = sorted(&f.dump_flows(&s.name).unwrap());
        assert_eq!(planned, live, "{}: plan and dump-flows differ", s.name);

        // The API reads the same table from the switch; with counters and durations dropped
        // its text is ovs-ofctl's (with statistics) line for line.
        let strip = |text: &str| -> Vec<String> {
            let mut v: Vec<String> = text
                .lines()
                .filter(|l| l.contains("actions="))
                .map(|l| {
                    l.trim()
                        .split(", ")
                        .filter(|p| {
                            !p.starts_with("duration=")
                                && !p.starts_with("n_packets=")
                                && !p.starts_with("n_bytes=")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            v.sort();
            v
        };
        let (status, api_text) = ctl
            .api_get(&format!("/api/v1/flows/{}?format=text", s.name))
            .unwrap();
        assert_eq!(status, 200, "{api_text}");
        let ovs = f.ofctl("dump-flows", &s.name, &[]).unwrap();
        assert_eq!(
            strip(&api_text),
            strip(&ovs),
            "{}: API and ovs-ofctl differ",
            s.name
        );
    }
    let (status, body) = ctl.api_get("/api/v1/flows/r1").unwrap();
    assert_eq!(status, 200);
    let flows: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fabric = servswitch::fabric::plan::Fabric::new(&t);
    let planned = fabric.switch_plan("r1", &fabric.configured_hosts()).len();
    assert_eq!(flows.as_array().unwrap().len(), planned, "{body}");
    let (status, body) = ctl.api_get("/api/v1/flows/nope").unwrap();
    assert_eq!(status, 404, "{body}");

    all_pairs(&f, &t, &ctl);

    // TTL: lowered once per routed hop, untouched between hosts of one subnet.
    let d = Ipv4Addr::new(192, 168, 11, 2);
    assert_eq!(reply_ttl(&f, "vm", d), Some(64), "same subnet: switched");
    assert_eq!(
        reply_ttl(&f, "e", Ipv4Addr::new(192, 168, 11, 3)),
        Some(62),
        "r3, r1"
    );
    assert_eq!(reply_ttl(&f, "b", d), Some(61), "r3, r1, r2");
    assert_eq!(
        reply_ttl(&f, "b", Ipv4Addr::new(192, 168, 10, 1)),
        Some(64),
        "the gateway itself"
    );

    // An expired TTL gets ICMP time exceeded from the first router.
    let out = f
        .exec("b", &["ping", "-c", "1", "-t", "1", "-W", "2", "10.0.0.2"])
        .unwrap_or_else(|e| e);
    assert!(
        out.contains("From 192.168.10.1") && out.contains("Time to live exceeded"),
        "{out}"
    );
    let out = f
        .exec("b", &["ping", "-c", "1", "-t", "2", "-W", "2", "10.0.0.2"])
        .unwrap_or_else(|e| e);
    assert!(out.contains("Time to live exceeded"), "{out}");

    // TCP across two routed hops (checksums survive the userspace datapath).
    let server = f
        .command(
            "vm",
            &[
                "python3",
                "-c",
                "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
                 s.bind(('0.0.0.0',5001));s.listen();s.settimeout(10);c,_=s.accept();\
                 c.sendall(c.recv(100).upper());c.close()",
            ],
        )
        .spawn()
        .unwrap();
    let mut reply = String::new();
    for _ in 0..50 {
        if let Ok(out) = f.exec(
            "e",
            &[
                "python3",
                "-c",
                "import socket;s=socket.create_connection(('192.168.11.3',5001),timeout=3);\
                 s.sendall(b'over tcp');print(s.recv(100).decode())",
            ],
        ) {
            reply = out;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.wait_with_output();
    assert_eq!(reply.trim(), "OVER TCP");
}

#[test]
fn silent_host_gets_the_first_packet_and_spoofs_change_nothing() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("silent_host_gets_the_first_packet_and_spoofs_change_nothing") {
        return;
    }
    // The fabric has a host "x" the controller's topology does not list: it must be resolved.
    let path = topo("paper-testbed.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[host]]\nname = \"x\"\nmac = \"02:00:00:00:10:05\"\nip = \"192.168.10.5\"\nat = \"r2:5\"\n",
    );
    let with_x = Topology::parse(&text).unwrap();
    let (ctl, f) = ovs_fabric::start_routed(&with_x, &path);

    // x has sent nothing; the very first echo request reaches it.
    let (sent, got) = f.ping("e", Ipv4Addr::new(192, 168, 10, 5), 1);
    assert_eq!((sent, got), (1, 1), "controller log:\n{}", ctl.log());
    assert!(ctl.log().contains("host learned"), "{}", ctl.log());
    let (status, body) = ctl.api_get("/api/v1/hosts").unwrap();
    assert_eq!(status, 200);
    let hosts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let x = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["mac"] == "02:00:00:00:10:05")
        .unwrap_or_else(|| panic!("x not in {body}"));
    assert_eq!(x["ips"], serde_json::json!(["192.168.10.5"]));
    assert_eq!(x["origin"], "learned");
    assert_eq!(x["location"]["switch"], "r2");
    assert_eq!(x["location"]["port"], 5);
    assert_eq!(x["home"]["subnet"], "foreign");
    let vm = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "vm")
        .unwrap();
    assert_eq!(vm["home"]["switch"], "r3");
    assert_eq!(vm["care_of"], serde_json::json!([]));

    // Claims for bound addresses, from the same subnet: vm2 says it is d (configured), b says
    // it is x (learned just now), each with a gratuitous ARP and a forged reply. Nothing moves.
    let forge = |host: &str, mac: &str, victim: [u8; 4], gateway: [u8; 4]| {
        let py = format!(
            "import socket,struct\n\
             s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('eth0',0))\n\
             me=bytes.fromhex('{mac}');ip=bytes({victim:?})\n\
             for op,tpa in ((1,ip),(2,bytes({gateway:?}))):\n\
             \x20s.send(b'\\xff'*6+me+b'\\x08\\x06'+struct.pack('!HHBBH',1,0x800,6,4,op)+me+ip+b'\\x00'*6+tpa+b'\\x00'*18)\n"
        );
        f.exec(host, &["python3", "-c", &py]).unwrap();
    };
    forge("vm2", "020000001104", [192, 168, 11, 2], [192, 168, 11, 1]);
    forge("b", "020000001002", [192, 168, 10, 5], [192, 168, 10, 1]);
    std::thread::sleep(Duration::from_millis(300));
    let r3 = f.dump_flows("r3").unwrap();
    assert!(
        r3.contains("nw_dst=192.168.11.2 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:11:02->eth_dst,output:2"),
        "{r3}"
    );
    let r2 = f.dump_flows("r2").unwrap();
    assert!(
        r2.contains("nw_dst=192.168.10.5 actions=dec_ttl,set_field:02:53:53:00:00:01->eth_src,set_field:02:00:00:00:10:05->eth_dst,output:5"),
        "{r2}"
    );
    let (sent, got) = f.ping("e", Ipv4Addr::new(192, 168, 10, 5), 2);
    assert_eq!(got, sent);
    let (sent, got) = f.ping("e", Ipv4Addr::new(192, 168, 11, 2), 2);
    assert_eq!(got, sent);
}

#[test]
fn three_tier_routes_every_pair() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available("three_tier_routes_every_pair") {
        return;
    }
    let path = topo("three-tier.toml");
    let t = Topology::load(&path).unwrap();
    let (ctl, f) = ovs_fabric::start_routed(&t, &path);
    all_pairs(&f, &t, &ctl);
    // Rack 1 to rack 8 crosses blocks: t1, a1, c1, a3, t8 route it.
    let h8 = t
        .hosts
        .iter()
        .find(|h| h.name == "h8-0")
        .unwrap()
        .addresses()[0];
    assert_eq!(reply_ttl(&f, "h1-0", h8), Some(59));
}
