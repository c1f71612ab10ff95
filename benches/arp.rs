//! Packet-in -> ARP reply throughput: emulated access switches send PACKET_INs carrying ARP
//! requests for their gateway; the controller (the real runtime and router app, in this
//! process) answers each with a PACKET_OUT carrying the ARP reply. Every reply is checked (ARP
//! reply, gateway MAC, right target), not just counted. The load generator shares the machine's
//! two cores with the controller.
//! Run: `cargo bench --bench arp` (SWITCHES, WINDOW and SECONDS in the environment override
//! the defaults of 16 switches, 64 packet-ins in flight per switch, 3 seconds).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ofp13::{Body, Message, PacketIn, MAX_MESSAGE_LEN};
use servswitch::app::router::Router;
use servswitch::emu::switch::{SwitchCore, SwitchSpec};
use servswitch::fabric::gen::GenSpec;
use servswitch::fabric::plan::{Fabric, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet::{self, Arp, Ethernet};
use servswitch::switch::runtime::RuntimeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one emulated switch sends.
struct Load {
    addr: SocketAddr,
    dpid: u64,
    host_mac: ofp13::MacAddr,
    host_ip: Ipv4Addr,
    gateway: Ipv4Addr,
    window: u64,
}

/// Shared by all switches: the stop flag and the counters.
#[derive(Clone, Default)]
struct Shared {
    stop: Arc<AtomicBool>,
    replies: Arc<AtomicU64>,
    wrong: Arc<AtomicU64>,
}

/// One emulated switch: handshake, then keep `window` ARP packet-ins in flight.
async fn switch(load: Load, shared: Shared) {
    let Load {
        addr,
        dpid,
        host_mac,
        host_ip,
        gateway,
        window,
    } = load;
    let Shared {
        stop,
        replies,
        wrong,
    } = shared;
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut core = SwitchCore::new(SwitchSpec::new(dpid));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let hello = Message::new(1, Body::Hello(ofp13::Hello::of13()));
    sock.write_all(&hello.to_bytes()).await.expect("hello");
    while !core.is_up() {
        if sock.read_buf(&mut buf).await.expect("read") == 0 {
            panic!("controller closed the connection during the handshake");
        }
        while let Some(m) = ofp13::decode_frame(&mut buf, MAX_MESSAGE_LEN).expect("frame") {
            for r in core.handle(m) {
                sock.write_all(&r.to_bytes()).await.expect("write");
            }
        }
    }
    let arp = Arp::request(host_mac, host_ip, gateway).to_frame();
    let pin = Message::new(
        0,
        Body::PacketIn(PacketIn::unbuffered(3, ofp13::OFPR_ACTION, arp)),
    )
    .to_bytes();
    let mut out = Vec::with_capacity(pin.len() * window as usize);
    let mut in_flight = 0u64;
    while !stop.load(Relaxed) {
        out.clear();
        while in_flight < window {
            out.extend_from_slice(&pin);
            in_flight += 1;
        }
        if !out.is_empty() {
            sock.write_all(&out).await.expect("write");
        }
        if sock.read_buf(&mut buf).await.expect("read") == 0 {
            break;
        }
        while let Some(m) = ofp13::decode_frame(&mut buf, MAX_MESSAGE_LEN).expect("frame") {
            match &m.body {
                Body::PacketOut(po) => {
                    in_flight = in_flight.saturating_sub(1);
                    let ok = Ethernet::parse(&po.data)
                        .and_then(|e| Arp::parse(e.payload))
                        .is_some_and(|a| {
                            a.op == packet::ARP_REPLY
                                && a.sha == GATEWAY_MAC
                                && a.spa == gateway
                                && a.tpa == host_ip
                        });
                    if ok {
                        replies.fetch_add(1, Relaxed);
                    } else {
                        wrong.fetch_add(1, Relaxed);
                    }
                }
                _ => {
                    for r in core.handle(m) {
                        sock.write_all(&r.to_bytes()).await.expect("write");
                    }
                }
            }
        }
    }
}

fn main() {
    let switches = env("SWITCHES", 16) as u32;
    let window = env("WINDOW", 64);
    let seconds = env("SECONDS", 3);
    let spec = GenSpec {
        racks: switches,
        hosts_per_rack: 1,
        racks_per_block: switches.max(1),
        ..GenSpec::default()
    };
    let topo = Topology::parse(&spec.toml()).expect("generated topology");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (_, ctl) = Router::new(Fabric::new(&topo)).serve_with(topo.clone(), RuntimeConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let c = ctl.clone();
        tokio::spawn(async move { c.serve(listener, None).await });
        let shared = Shared::default();
        let (stop, replies, wrong) = (
            shared.stop.clone(),
            shared.replies.clone(),
            shared.wrong.clone(),
        );
        let mut tasks = Vec::new();
        for r in 1..=switches {
            let sw = topo
                .switches
                .iter()
                .find(|s| s.name == format!("t{r}"))
                .expect("rack switch");
            let host = topo.hosts.iter().find(|h| h.at.switch == sw.name).expect("host");
            let gw = topo
                .subnets
                .iter()
                .find(|s| s.switch == sw.name)
                .and_then(|s| s.gateway)
                .expect("an IPv4 subnet");
            let load = Load {
                addr,
                dpid: sw.dpid.0,
                host_mac: host.mac,
                host_ip: host.addresses()[0],
                gateway: gw,
                window,
            };
            tasks.push(tokio::spawn(switch(load, shared.clone())));
        }
        // Warm up until every switch is answered, then measure.
        let t0 = Instant::now();
        while ctl.registry.len() < switches as usize && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start_count = replies.load(Relaxed);
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let n = replies.load(Relaxed) - start_count;
        let el = t.elapsed().as_secs_f64();
        stop.store(true, Relaxed);
        println!(
            "{switches} switches, {window} in flight each, {seconds} s: {n} checked ARP replies, {:.0} replies/s, {} wrong",
            n as f64 / el,
            wrong.load(Relaxed)
        );
        ctl.shutdown(Duration::from_secs(2)).await;
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    });
}
