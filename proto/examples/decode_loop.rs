//! Decodes the benchmark's PACKET_IN N times: a fixed workload for `valgrind --tool=callgrind`,
//! whose instruction counts are stable on this noisy VM where wall-clock timings are not.
use bytes::Bytes;
use ofp13::{Body, Match, Message, Oxm, PacketIn};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0x11, 3, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    frame.resize(60, 0);
    let m = Message::new(
        1,
        Body::PacketIn(PacketIn {
            buffer_id: ofp13::NO_BUFFER,
            total_len: 60,
            reason: 0,
            table_id: 0,
            cookie: 0,
            match_: Match::new(vec![Oxm::InPort(3, None)]),
            data: Bytes::from(frame),
        }),
    );
    let bytes = Bytes::from(m.to_bytes());
    let mut ok = 0usize;
    for _ in 0..n {
        if std::hint::black_box(Message::parse(std::hint::black_box(&bytes))).is_ok() {
            ok += 1;
        }
    }
    println!("{ok}");
}
