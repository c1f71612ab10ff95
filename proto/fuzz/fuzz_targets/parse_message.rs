//! Parses the input as one whole message with `Message::parse_slice`. The header's version and
//! length are patched to 0x04 and the input's size, so every input reaches the body parsers
//! instead of failing the header checks. Every message accepted must survive emit → parse
//! unchanged, and the in-place PACKET_IN reader accepts nothing the parser refuses: whatever
//! it reads is the view of the message the parser gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ofp13::{Body, Message, PacketInView, HEADER_LEN, MAX_MESSAGE_LEN, OFP_VERSION};

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN || data.len() > MAX_MESSAGE_LEN {
        // Still must not panic.
        let _ = Message::parse_slice(data);
        return;
    }
    let mut frame = data.to_vec();
    frame[0] = OFP_VERSION;
    frame[2..4].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let parsed = Message::parse_slice(&frame);
    if let Some(view) = PacketInView::parse(&frame) {
        match &parsed {
            Ok(Message {
                body: Body::PacketIn(p),
                ..
            }) => assert_eq!(p.view(), view),
            other => panic!("read in place as {view:?}, parsed as {other:?}"),
        }
    }
    if let Ok(m) = parsed {
        common::check_stable(&m);
    }
});
