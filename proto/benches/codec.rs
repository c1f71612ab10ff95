//! Codec throughput: decoding a PACKET_IN that carries a 60-byte ARP frame (the controller's
//! hottest input) and encoding a FLOW_MOD with a 5-field match and 3 actions (its hottest
//! output). Run: `cargo bench -p ofp13 --bench codec`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ofp13::{Action, Body, FlowMod, Instruction, MacAddr, Match, Message, Oxm, PacketIn};

/// A gratuitous-ARP-sized request padded to the 60-byte Ethernet minimum.
fn arp_frame() -> Bytes {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]); // dst broadcast
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x11, 0x03]); // src
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // htype, ptype, hlen, plen, request
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x11, 0x03, 192, 168, 11, 3]); // sha, spa
    f.extend_from_slice(&[0; 6]); // tha
    f.extend_from_slice(&[192, 168, 11, 1]); // tpa
    f.resize(60, 0);
    Bytes::from(f)
}

fn packet_in() -> Bytes {
    let m = Message::new(
        0x1234,
        Body::PacketIn(PacketIn {
            buffer_id: ofp13::NO_BUFFER,
            total_len: 60,
            reason: ofp13::OFPR_NO_MATCH,
            table_id: 0,
            cookie: 0,
            match_: Match::new(vec![Oxm::InPort(3, None)]),
            data: arp_frame(),
        }),
    );
    Bytes::from(m.to_bytes())
}

fn flow_mod() -> Message {
    Message::new(
        7,
        Body::FlowMod(FlowMod {
            table_id: 2,
            priority: 100,
            cookie: 0x5353_0000_0000_0001,
            match_: Match::new(vec![
                Oxm::InPort(1, None),
                Oxm::EthType(0x0800, None),
                Oxm::EthSrc(MacAddr([2, 0, 0, 0, 0x11, 3]), None),
                Oxm::Ipv4Src(Ipv4Addr::new(192, 168, 11, 3), None),
                Oxm::Ipv4Dst(
                    Ipv4Addr::new(192, 168, 10, 0),
                    Some(Ipv4Addr::new(255, 255, 255, 0)),
                ),
            ]),
            instructions: vec![Instruction::ApplyActions {
                actions: vec![
                    Action::SetField {
                        field: Oxm::Ipv4Src(Ipv4Addr::new(192, 168, 10, 3), None),
                    },
                    Action::DecNwTtl,
                    Action::output(3),
                ],
            }],
            ..FlowMod::default()
        }),
    )
}

fn bench(c: &mut Criterion) {
    let frame = packet_in();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_packet_in_arp60", |b| {
        b.iter(|| black_box(Message::parse(black_box(&frame))))
    });
    let fm = flow_mod();
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode_flow_mod_5match_3act", |b| {
        b.iter(|| {
            out.clear();
            black_box(&fm).emit(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
