//! Heap allocations per answered ARP request, counted by a counting global allocator: the
//! work the controller does for one PACKET_IN carrying a host's ARP request for its gateway,
//! from the message's bytes to the PACKET_OUT's bytes, stage by stage:
//! - decode: the PACKET_IN read in place, `ofp13::PacketInView::parse` (what the runtime
//!   does with a packet-in whole in its read buffer);
//! - decide: `Router::packet_in_at` (the switch resolved once, as the driver does), the
//!   application's decision and its answer (the PACKET_OUT with the ARP reply, held inline)
//!   pushed onto a reused list, as the runtime calls it;
//! - encode: the answer encoded into a reused write buffer, as the runtime's
//!   `send_answers` does (`InlinePacketOut::emit`, or `Message::emit` for other answers).
//!
//! The runtime's socket reads and writes reuse their buffers and allocate nothing per
//! message. Every answer is checked (an ARP reply from the gateway MAC to the asker).
//! Run: `cargo bench --bench arp_allocs` (ROUNDS in the environment overrides 100,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use bytes::Bytes;
use ofp13::{Body, Message, PacketIn, PacketInView};
use servswitch::app::router::Router;
use servswitch::fabric::plan::{Fabric, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet::{self, Arp, Ethernet};
use servswitch::switch::runtime::{Answer, Answers};

/// The system allocator, counting every allocation (and reallocation).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count() -> (u64, u64) {
    (ALLOCS.load(Relaxed), BYTES.load(Relaxed))
}

fn main() {
    let rounds: u64 = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let topo = Topology::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/paper-testbed.toml"
    )))
    .expect("paper testbed");
    let router = Router::new(Fabric::new(&topo));
    // b, configured at r2:2, asks for its gateway.
    let (b_mac, b_ip) = (
        ofp13::MacAddr([2, 0, 0, 0, 0x10, 2]),
        Ipv4Addr::new(192, 168, 10, 2),
    );
    let gateway = Ipv4Addr::new(192, 168, 10, 1);
    let arp = Arp::request(b_mac, b_ip, gateway).to_frame();
    let wire: Bytes = Message::new(
        0,
        Body::PacketIn(PacketIn::unbuffered(2, ofp13::OFPR_ACTION, arp)),
    )
    .to_bytes()
    .into();
    let ports = || vec![1, 2, 5];
    let mut wbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut out = Answers::with_capacity(4);
    let r2 = router.fabric.id_of("r2").expect("r2");
    // As the runtime's driver does: a new, empty list per message (no allocation unless an
    // effect is pushed).
    let (mut decode, mut decide, mut encode) = ((0, 0), (0, 0), (0, 0));
    let mut checked = 0u64;
    let t0 = Instant::now();
    // The runtime reads the clock once per socket read, which under load holds many
    // messages: not once per message.
    let now = Instant::now();
    for i in 0..rounds {
        let c0 = count();
        let pi = PacketInView::parse(&wire).expect("packet-in");
        let c1 = count();
        let mut effects = Vec::new();
        let sw = router.fabric.ctx(r2).expect("r2");
        router.packet_in_at(sw, &ports, &pi, &mut out, &mut effects, now);
        let c2 = count();
        assert!(
            effects.is_empty(),
            "an answered ARP request asks for nothing more"
        );
        // The check allocates nothing, and is not counted anyway.
        if let [Answer::PacketOut(po)] = out.as_slice() {
            let ok = po.out_port == 2
                && Ethernet::parse(po.frame())
                    .and_then(|e| Arp::parse(e.payload))
                    .is_some_and(|a| {
                        a.op == packet::ARP_REPLY && a.sha == GATEWAY_MAC && a.tpa == b_ip
                    });
            checked += u64::from(ok);
        }
        let c2_checked = count();
        // As the runtime does: each answer is encoded into the connection's write buffer,
        // which keeps its capacity.
        wbuf.clear();
        for a in out.drain() {
            match a {
                Answer::PacketOut(p) => p.emit(i as u32, &mut wbuf),
                Answer::Message(b) => Message::new(i as u32, b).emit(&mut wbuf),
            }
        }
        let c3 = count();
        decode = (decode.0 + c1.0 - c0.0, decode.1 + c1.1 - c0.1);
        decide = (decide.0 + c2.0 - c1.0, decide.1 + c2.1 - c1.1);
        encode = (
            encode.0 + c3.0 - c2_checked.0,
            encode.1 + c3.1 - c2_checked.1,
        );
    }
    let elapsed = t0.elapsed();
    assert_eq!(checked, rounds, "every answer is a right ARP reply");
    let per = |(n, b): (u64, u64)| (n as f64 / rounds as f64, b as f64 / rounds as f64);
    println!("heap allocations per answered ARP request ({rounds} rounds, all answers checked):");
    for (stage, v) in [("decode", decode), ("decide", decide), ("encode", encode)] {
        let (n, b) = per(v);
        println!("  {stage:<7} {n:5.2} allocations, {b:6.1} bytes");
    }
    let total = (
        decode.0 + decide.0 + encode.0,
        decode.1 + decide.1 + encode.1,
    );
    let (n, b) = per(total);
    println!("  total   {n:5.2} allocations, {b:6.1} bytes");
    println!(
        "  ({:.0} ns per request for the three stages, single thread, counting included)",
        elapsed.as_nanos() as f64 / rounds as f64
    );
}
