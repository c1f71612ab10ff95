//! Hand-written wire vectors for every OpenFlow 1.3.5 message type, every multipart request
//! and reply type, every action type and every OXM value type, in the style of smoltcp's wire
//! tests.
//!
//! Each vector was written field by field from the struct definitions of the OpenFlow 1.3.5
//! specification (section 7 and `openflow.h`), not produced by this crate's encoder. Each is
//! checked four ways by [`check`]:
//! 1. parsing it gives exactly the typed value built by hand;
//! 2. emitting that value gives exactly the vector;
//! 3. emitting after junk bytes appends exactly the vector (every byte, padding included, is
//!    written, and nothing depends on what the buffer held);
//! 4. no proper prefix of the vector parses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use ofp13::oxm::U24;
use ofp13::wire::Reader;
use ofp13::*;

// -------------------------------------------------------------------------------------------
// The checks

const JUNK: u8 = 0xa5;
const JUNK_LEN: usize = 13;

/// Fails with the first differing offset, which is easier to read than two long arrays.
fn same(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{what}: first difference at offset {i}: got {:#04x}, want {:#04x}\n got: {got:02x?}\nwant: {want:02x?}",
            got[i], want[i]
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length differs\n got: {got:02x?}\nwant: {want:02x?}"
    );
}

/// The four checks of one whole-message vector.
fn check(bytes: &[u8], expected: Message) {
    // The hand-written length field covers the whole vector.
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        bytes.len(),
        "ofp_header.length of the vector"
    );
    // 1. parse
    assert_eq!(Message::parse_slice(bytes), Ok(expected.clone()), "parse");
    // 2. emit
    same(&expected.to_bytes(), bytes, "emit");
    // 3. emit after junk
    let mut out = vec![JUNK; JUNK_LEN];
    expected.emit(&mut out);
    assert_eq!(
        out[..JUNK_LEN],
        [JUNK; JUNK_LEN],
        "emit touched bytes before its start"
    );
    same(&out[JUNK_LEN..], bytes, "emit after junk");
    // 4. every proper prefix fails
    for n in 0..bytes.len() {
        assert!(
            Message::parse_slice(&bytes[..n]).is_err(),
            "a {n}-byte prefix of a {}-byte message parsed",
            bytes.len()
        );
    }
}

/// The four checks of one action vector, through `Action::parse` / `Action::emit`.
fn check_action(bytes: &'static [u8], expected: Action) {
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        bytes.len(),
        "action len"
    );
    assert_eq!(bytes.len() % 8, 0, "actions are a multiple of 8 bytes");
    let b = Bytes::from_static(bytes);
    let mut r = Reader::new(&b, "action");
    assert_eq!(Action::parse(&mut r), Ok(expected.clone()), "parse");
    assert!(r.is_empty(), "parse left {} bytes", r.remaining());
    let mut out = Vec::new();
    expected.emit(&mut out);
    same(&out, bytes, "emit");
    let mut out = vec![JUNK; JUNK_LEN];
    expected.emit(&mut out);
    assert_eq!(out[..JUNK_LEN], [JUNK; JUNK_LEN]);
    same(&out[JUNK_LEN..], bytes, "emit after junk");
    for n in 0..bytes.len() {
        let p = Bytes::copy_from_slice(&bytes[..n]);
        assert!(
            Action::parse(&mut Reader::new(&p, "action")).is_err(),
            "{n}-byte prefix parsed"
        );
    }
}

/// The four checks of one `ofp_match` vector (padding included), through `Match::parse`.
fn check_match(bytes: &'static [u8], expected: Match) {
    assert_eq!(bytes.len() % 8, 0, "ofp_match is padded to 8 bytes");
    let b = Bytes::from_static(bytes);
    let mut r = Reader::new(&b, "match");
    assert_eq!(Match::parse(&mut r), Ok(expected.clone()), "parse");
    assert!(r.is_empty(), "parse left {} bytes", r.remaining());
    let mut out = Vec::new();
    expected.emit(&mut out);
    same(&out, bytes, "emit");
    let mut out = vec![JUNK; JUNK_LEN];
    expected.emit(&mut out);
    assert_eq!(out[..JUNK_LEN], [JUNK; JUNK_LEN]);
    same(&out[JUNK_LEN..], bytes, "emit after junk");
    for n in 0..bytes.len() {
        let p = Bytes::copy_from_slice(&bytes[..n]);
        assert!(
            Match::parse(&mut Reader::new(&p, "match")).is_err(),
            "{n}-byte prefix parsed"
        );
    }
}

fn msg(xid: u32, body: Body) -> Message {
    Message::new(xid, body)
}

fn mp_request(body: MultipartRequestBody) -> Message {
    msg(
        0x20,
        Body::MultipartRequest(MultipartRequest { flags: 0, body }),
    )
}

fn mp_reply(body: MultipartReplyBody) -> Message {
    msg(
        0x20,
        Body::MultipartReply(MultipartReply { flags: 0, body }),
    )
}

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// The 60-byte RARP announcement QEMU sends for a migrated VM (`qemu_announce_self`), built
/// field by field: broadcast, ethertype 0x8035, opcode 3 (reverse request), the VM's MAC as
/// both sender and target hardware address, zero protocol addresses, zero padding to 60.
fn qemu_rarp() -> Bytes {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]); // destination: broadcast
    f.extend_from_slice(&VM_MAC.0); // source
    f.extend_from_slice(&[0x80, 0x35]); // ethertype RARP
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]); // htype 1, ptype IPv4, hlen, plen
    f.extend_from_slice(&[0x00, 0x03]); // opcode 3
    f.extend_from_slice(&VM_MAC.0); // sha
    f.extend_from_slice(&[0; 4]); // spa
    f.extend_from_slice(&VM_MAC.0); // tha
    f.extend_from_slice(&[0; 4]); // tpa
    f.resize(60, 0); // minimum frame
    Bytes::from(f)
}

fn output(port: u32, max_len: u16) -> Action {
    Action::Output { port, max_len }
}

// -------------------------------------------------------------------------------------------
// Symmetric messages (section 7.5)

/// OFPT_HELLO with one OFPHET_VERSIONBITMAP element (`ofp_hello_elem_versionbitmap`).
#[rustfmt::skip]
const HELLO: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x00,                                           // type OFPT_HELLO (0)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x01,                         // xid 0x1
    0x00, 0x01,                                     // element type OFPHET_VERSIONBITMAP
    0x00, 0x08,                                     // element length 8 (header + one bitmap word, no padding needed)
    0x00, 0x00, 0x00, 0x12,                         // bitmaps[0] = 0x12: versions 0x01 and 0x04
];

#[test]
fn hello() {
    check(
        HELLO,
        msg(
            1,
            Body::Hello(Hello {
                elements: vec![HelloElem::VersionBitmap {
                    bitmaps: vec![0x12],
                }],
            }),
        ),
    );
}

/// OFPT_HELLO whose version bitmap has two words: element length 12, padded to 16.
#[rustfmt::skip]
const HELLO_PADDED: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x00,                                           // type OFPT_HELLO (0)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x02,                         // xid 0x2
    0x00, 0x01,                                     // element type OFPHET_VERSIONBITMAP
    0x00, 0x0c,                                     // element length 12 (excludes padding)
    0x00, 0x00, 0x00, 0x10,                         // bitmaps[0] = 0x10: version 0x04
    0x00, 0x00, 0x00, 0x01,                         // bitmaps[1] = 0x01: version 0x20
    0x00, 0x00, 0x00, 0x00,                         // element padding to a multiple of 8
];

#[test]
fn hello_padded() {
    check(
        HELLO_PADDED,
        msg(
            2,
            Body::Hello(Hello {
                elements: vec![HelloElem::VersionBitmap {
                    bitmaps: vec![0x10, 0x01],
                }],
            }),
        ),
    );
}

/// OFPT_ERROR OFPET_BAD_REQUEST/OFPBRC_BAD_TYPE; data is the offending request's header.
#[rustfmt::skip]
const ERROR_BAD_TYPE: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x01,                                           // type OFPT_ERROR (1)
    0x00, 0x14,                                     // length 20
    0x00, 0x00, 0x00, 0x2a,                         // xid 0x2a
    0x00, 0x01,                                     // type OFPET_BAD_REQUEST
    0x00, 0x01,                                     // code OFPBRC_BAD_TYPE
    0x04,                                           // data: offending version 0x04
    0x1e,                                           // data: offending type 30 (unknown)
    0x00, 0x08,                                     // data: offending length 8
    0x00, 0x00, 0x00, 0x2a,                         // data: offending xid 0x2a
];

#[test]
fn error_bad_type() {
    let e = ErrorMsg {
        err_type: 1,
        code: 1,
        experimenter: None,
        data: b(&[0x04, 0x1e, 0x00, 0x08, 0x00, 0x00, 0x00, 0x2a]),
    };
    assert_eq!(e.offending_xid(), Some(0x2a));
    check(ERROR_BAD_TYPE, msg(0x2a, Body::Error(e)));
}

/// OFPT_ERROR of type OFPET_EXPERIMENTER (`ofp_error_experimenter_msg`).
#[rustfmt::skip]
const ERROR_EXPERIMENTER: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x01,                                           // type OFPT_ERROR (1)
    0x00, 0x14,                                     // length 20
    0x00, 0x00, 0x00, 0x03,                         // xid 0x3
    0xff, 0xff,                                     // type OFPET_EXPERIMENTER
    0x00, 0x05,                                     // exp_type 5
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320 (Nicira)
    0xde, 0xad, 0xbe, 0xef,                         // data
];

#[test]
fn error_experimenter() {
    check(
        ERROR_EXPERIMENTER,
        msg(
            3,
            Body::Error(ErrorMsg {
                err_type: OFPET_EXPERIMENTER,
                code: 5,
                experimenter: Some(0x2320),
                data: b(&[0xde, 0xad, 0xbe, 0xef]),
            }),
        ),
    );
}

/// OFPT_ECHO_REQUEST with 4 bytes of arbitrary data.
#[rustfmt::skip]
const ECHO_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x02,                                           // type OFPT_ECHO_REQUEST (2)
    0x00, 0x0c,                                     // length 12
    0x00, 0x00, 0x00, 0x04,                         // xid 0x4
    0x70, 0x69, 0x6e, 0x67,                         // data "ping"
];

#[test]
fn echo_request() {
    check(ECHO_REQUEST, msg(4, Body::EchoRequest(b(b"ping"))));
}

/// OFPT_ECHO_REPLY echoing the request's data.
#[rustfmt::skip]
const ECHO_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x03,                                           // type OFPT_ECHO_REPLY (3)
    0x00, 0x0c,                                     // length 12
    0x00, 0x00, 0x00, 0x04,                         // xid 0x4
    0x70, 0x69, 0x6e, 0x67,                         // data "ping"
];

#[test]
fn echo_reply() {
    check(ECHO_REPLY, msg(4, Body::EchoReply(b(b"ping"))));
}

/// OFPT_EXPERIMENTER (`ofp_experimenter_header`).
#[rustfmt::skip]
const EXPERIMENTER: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x04,                                           // type OFPT_EXPERIMENTER (4)
    0x00, 0x14,                                     // length 20
    0x00, 0x00, 0x00, 0x05,                         // xid 0x5
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320 (Nicira)
    0x00, 0x00, 0x00, 0x13,                         // exp_type 19
    0x01, 0x02, 0x03, 0x04,                         // experimenter-defined data
];

#[test]
fn experimenter() {
    check(
        EXPERIMENTER,
        msg(
            5,
            Body::Experimenter(Experimenter {
                experimenter: 0x2320,
                exp_type: 19,
                data: b(&[1, 2, 3, 4]),
            }),
        ),
    );
}

// -------------------------------------------------------------------------------------------
// Handshake and switch configuration (sections 7.3.1, 7.3.2)

/// OFPT_FEATURES_REQUEST: a header only.
#[rustfmt::skip]
const FEATURES_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x05,                                           // type OFPT_FEATURES_REQUEST (5)
    0x00, 0x08,                                     // length 8
    0x00, 0x00, 0x00, 0x06,                         // xid 0x6
];

#[test]
fn features_request() {
    check(FEATURES_REQUEST, msg(6, Body::FeaturesRequest));
}

/// OFPT_FEATURES_REPLY (`ofp_switch_features`, 32 bytes).
#[rustfmt::skip]
const FEATURES_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x06,                                           // type OFPT_FEATURES_REPLY (6)
    0x00, 0x20,                                     // length 32
    0x00, 0x00, 0x00, 0x06,                         // xid 0x6
    0x00, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // datapath_id 0x0000525400123456
    0x00, 0x00, 0x01, 0x00,                         // n_buffers 256
    0xfe,                                           // n_tables 254
    0x00,                                           // auxiliary_id 0 (main connection)
    0x00, 0x00,                                     // pad[2]
    0x00, 0x00, 0x00, 0x4f,                         // capabilities FLOW_STATS|TABLE_STATS|PORT_STATS|GROUP_STATS|QUEUE_STATS
    0x00, 0x00, 0x00, 0x00,                         // reserved
];

#[test]
fn features_reply() {
    check(
        FEATURES_REPLY,
        msg(
            6,
            Body::FeaturesReply(SwitchFeatures {
                datapath_id: 0x0000_5254_0012_3456,
                n_buffers: 256,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0x4f,
                reserved: 0,
            }),
        ),
    );
}

/// OFPT_GET_CONFIG_REQUEST: a header only.
#[rustfmt::skip]
const GET_CONFIG_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x07,                                           // type OFPT_GET_CONFIG_REQUEST (7)
    0x00, 0x08,                                     // length 8
    0x00, 0x00, 0x00, 0x07,                         // xid 0x7
];

#[test]
fn get_config_request() {
    check(GET_CONFIG_REQUEST, msg(7, Body::GetConfigRequest));
}

/// OFPT_GET_CONFIG_REPLY (`ofp_switch_config`).
#[rustfmt::skip]
const GET_CONFIG_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x08,                                           // type OFPT_GET_CONFIG_REPLY (8)
    0x00, 0x0c,                                     // length 12
    0x00, 0x00, 0x00, 0x07,                         // xid 0x7
    0x00, 0x00,                                     // flags OFPC_FRAG_NORMAL
    0x00, 0x80,                                     // miss_send_len 128
];

#[test]
fn get_config_reply() {
    check(
        GET_CONFIG_REPLY,
        msg(
            7,
            Body::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
        ),
    );
}

/// OFPT_SET_CONFIG (`ofp_switch_config`).
#[rustfmt::skip]
const SET_CONFIG: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x09,                                           // type OFPT_SET_CONFIG (9)
    0x00, 0x0c,                                     // length 12
    0x00, 0x00, 0x00, 0x08,                         // xid 0x8
    0x00, 0x01,                                     // flags OFPC_FRAG_DROP
    0xff, 0xff,                                     // miss_send_len OFPCML_NO_BUFFER
];

#[test]
fn set_config() {
    check(
        SET_CONFIG,
        msg(
            8,
            Body::SetConfig(SwitchConfig {
                flags: 1,
                miss_send_len: 0xffff,
            }),
        ),
    );
}

// -------------------------------------------------------------------------------------------
// Asynchronous messages (section 7.4)

/// OFPT_PACKET_IN of QEMU's RARP announcement from port 1, unbuffered, on a table miss.
#[rustfmt::skip]
const PACKET_IN: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0a,                                           // type OFPT_PACKET_IN (10)
    0x00, 0x66,                                     // length 102
    0x00, 0x00, 0x00, 0x00,                         // xid 0x0
    0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
    0x00, 0x3c,                                     // total_len 60
    0x00,                                           // reason OFPR_NO_MATCH
    0x00,                                           // table_id 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie 0
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x0c,                                     // match length 12 (excludes padding)
    0x80, 0x00, 0x00, 0x04,                         // OXM OPENFLOW_BASIC in_port, no mask, length 4
    0x00, 0x00, 0x00, 0x01,                         // in_port 1
    0x00, 0x00, 0x00, 0x00,                         // match padding to 16
    0x00, 0x00,                                     // pad[2]
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,             // data: eth_dst ff:ff:ff:ff:ff:ff (broadcast)
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: eth_src 52:54:00:12:34:56 (the VM)
    0x80, 0x35,                                     // data: ethertype 0x8035 (RARP)
    0x00, 0x01,                                     // data: htype 1 (Ethernet)
    0x08, 0x00,                                     // data: ptype 0x0800 (IPv4)
    0x06,                                           // data: hlen 6
    0x04,                                           // data: plen 4
    0x00, 0x03,                                     // data: opcode 3 (reverse request)
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: sha 52:54:00:12:34:56
    0x00, 0x00, 0x00, 0x00,                         // data: spa 0.0.0.0
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: tha 52:54:00:12:34:56
    0x00, 0x00, 0x00, 0x00,                         // data: tpa 0.0.0.0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // data: zero padding to the 60-byte minimum frame
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00,
];

#[test]
fn packet_in() {
    let p = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 60,
        reason: OFPR_NO_MATCH,
        table_id: 0,
        cookie: 0,
        match_: Match::new(vec![Oxm::InPort(1, None)]),
        data: qemu_rarp(),
    };
    assert_eq!(p.in_port(), Some(1));
    check(PACKET_IN, msg(0, Body::PacketIn(p)));
}

/// OFPT_FLOW_REMOVED after an idle timeout; the match needs 2 bytes of padding.
#[rustfmt::skip]
const FLOW_REMOVED: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0b,                                           // type OFPT_FLOW_REMOVED (11)
    0x00, 0x48,                                     // length 72
    0x00, 0x00, 0x00, 0x00,                         // xid 0x0
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // cookie 0x1122334455667788
    0x80, 0x00,                                     // priority 0x8000
    0x00,                                           // reason OFPRR_IDLE_TIMEOUT
    0x01,                                           // table_id 1
    0x00, 0x00, 0x00, 0x1e,                         // duration_sec 30
    0x1d, 0xcd, 0x65, 0x00,                         // duration_nsec 500000000
    0x00, 0x0a,                                     // idle_timeout 10
    0x00, 0x00,                                     // hard_timeout 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // packet_count 5
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xea, // byte_count 490
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x16,                                     // match length 22
    0x80, 0x00, 0x00, 0x04,                         // OXM in_port, length 4
    0x00, 0x00, 0x00, 0x02,                         // in_port 2
    0x80, 0x00, 0x06, 0x06,                         // OXM eth_dst (field 3), no mask, length 6
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // eth_dst 52:54:00:12:34:56
    0x00, 0x00,                                     // match padding to 24
];

#[test]
fn flow_removed() {
    check(
        FLOW_REMOVED,
        msg(
            0,
            Body::FlowRemoved(FlowRemoved {
                cookie: 0x1122_3344_5566_7788,
                priority: 0x8000,
                reason: 0,
                table_id: 1,
                duration_sec: 30,
                duration_nsec: 500_000_000,
                idle_timeout: 10,
                hard_timeout: 0,
                packet_count: 5,
                byte_count: 490,
                match_: Match::new(vec![Oxm::InPort(2, None), Oxm::EthDst(VM_MAC, None)]),
            }),
        ),
    );
}

/// OFPT_PORT_STATUS (`ofp_port_status` with a 64-byte `ofp_port`).
#[rustfmt::skip]
const PORT_STATUS: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0c,                                           // type OFPT_PORT_STATUS (12)
    0x00, 0x50,                                     // length 80
    0x00, 0x00, 0x00, 0x00,                         // xid 0x0
    0x02,                                           // reason OFPPR_MODIFY
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       // pad[7]
    0x00, 0x00, 0x00, 0x03,                         // port_no 3
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc,             // hw_addr 52:54:00:aa:bb:cc
    0x00, 0x00,                                     // pad2[2]
    0x74, 0x61, 0x70, 0x33, 0x00, 0x00, 0x00, 0x00, // name "tap3", NUL-padded to 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,                         // config 0
    0x00, 0x00, 0x00, 0x04,                         // state OFPPS_LIVE
    0x00, 0x00, 0x08, 0x40,                         // curr OFPPF_10GB_FD|OFPPF_COPPER
    0x00, 0x00, 0x00, 0x00,                         // advertised 0
    0x00, 0x00, 0x00, 0x00,                         // supported 0
    0x00, 0x00, 0x00, 0x00,                         // peer 0
    0x00, 0x98, 0x96, 0x80,                         // curr_speed 10000000 kbps
    0x00, 0x00, 0x00, 0x00,                         // max_speed 0
];

fn tap3() -> Port {
    Port {
        port_no: 3,
        hw_addr: MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]),
        name: "tap3".into(),
        config: 0,
        state: 4,
        curr: 0x840,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

#[test]
fn port_status() {
    check(
        PORT_STATUS,
        msg(
            0,
            Body::PortStatus(PortStatus {
                reason: OFPPR_MODIFY,
                desc: tap3(),
            }),
        ),
    );
}

// -------------------------------------------------------------------------------------------
// Controller commands (sections 7.3.3, 7.3.4, 7.3.6 to 7.3.10)

/// OFPT_PACKET_OUT flooding QEMU's RARP announcement (`ofp_packet_out`).
#[rustfmt::skip]
const PACKET_OUT: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0d,                                           // type OFPT_PACKET_OUT (13)
    0x00, 0x64,                                     // length 100
    0x00, 0x00, 0x00, 0x10,                         // xid 0x10
    0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
    0xff, 0xff, 0xff, 0xfd,                         // in_port OFPP_CONTROLLER
    0x00, 0x10,                                     // actions_len 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x00,                                     // action type OFPAT_OUTPUT
    0x00, 0x10,                                     // action len 16
    0xff, 0xff, 0xff, 0xfb,                         // port OFPP_FLOOD
    0x00, 0x00,                                     // max_len 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,             // data: eth_dst ff:ff:ff:ff:ff:ff (broadcast)
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: eth_src 52:54:00:12:34:56 (the VM)
    0x80, 0x35,                                     // data: ethertype 0x8035 (RARP)
    0x00, 0x01,                                     // data: htype 1 (Ethernet)
    0x08, 0x00,                                     // data: ptype 0x0800 (IPv4)
    0x06,                                           // data: hlen 6
    0x04,                                           // data: plen 4
    0x00, 0x03,                                     // data: opcode 3 (reverse request)
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: sha 52:54:00:12:34:56
    0x00, 0x00, 0x00, 0x00,                         // data: spa 0.0.0.0
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // data: tha 52:54:00:12:34:56
    0x00, 0x00, 0x00, 0x00,                         // data: tpa 0.0.0.0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // data: zero padding to the 60-byte minimum frame
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00,
];

#[test]
fn packet_out() {
    check(
        PACKET_OUT,
        msg(
            0x10,
            Body::PacketOut(PacketOut {
                buffer_id: NO_BUFFER,
                in_port: port::CONTROLLER,
                actions: vec![output(port::FLOOD, 0)].into(),
                data: qemu_rarp(),
            }),
        ),
    );
}

/// OFPT_FLOW_MOD ADD: a masked ipv4_dst, then meter, apply_actions (set_field eth_dst,
/// output), clear_actions, write_actions (group), write_metadata and goto_table.
#[rustfmt::skip]
const FLOW_MOD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0e,                                           // type OFPT_FLOW_MOD (14)
    0x00, 0xb0,                                     // length 176
    0x00, 0x00, 0x00, 0x11,                         // xid 0x11
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // cookie 42
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask 0
    0x00,                                           // table_id 0
    0x00,                                           // command OFPFC_ADD
    0x00, 0x00,                                     // idle_timeout 0
    0x01, 0x2c,                                     // hard_timeout 300
    0x00, 0x64,                                     // priority 100
    0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
    0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
    0x00, 0x03,                                     // flags OFPFF_SEND_FLOW_REM|OFPFF_CHECK_OVERLAP
    0x00, 0x00,                                     // pad[2]
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x16,                                     // match length 22
    0x80, 0x00, 0x0a, 0x02,                         // OXM eth_type (field 5), length 2
    0x08, 0x00,                                     // eth_type 0x0800
    0x80, 0x00, 0x19, 0x08,                         // OXM ipv4_dst (field 12), HASMASK, length 8
    0x0a, 0x01, 0x00, 0x00,                         // value 10.1.0.0
    0xff, 0xff, 0x00, 0x00,                         // mask 255.255.0.0
    0x00, 0x00,                                     // match padding to 24
    0x00, 0x06,                                     // instruction OFPIT_METER
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x05,                         // meter_id 5
    0x00, 0x04,                                     // instruction OFPIT_APPLY_ACTIONS
    0x00, 0x28,                                     // len 40
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x19,                                     // action OFPAT_SET_FIELD
    0x00, 0x10,                                     // len 16
    0x80, 0x00, 0x06, 0x06,                         // OXM eth_dst (field 3), length 6
    0x02, 0x00, 0x00, 0x00, 0x11, 0x03,             // eth_dst 02:00:00:00:11:03
    0x00, 0x00,                                     // action padding to 16
    0x00, 0x00,                                     // action OFPAT_OUTPUT
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x03,                         // port 3
    0xff, 0xff,                                     // max_len OFPCML_NO_BUFFER
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x05,                                     // instruction OFPIT_CLEAR_ACTIONS
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x03,                                     // instruction OFPIT_WRITE_ACTIONS
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x16,                                     // action OFPAT_GROUP
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x01,                         // group_id 1
    0x00, 0x02,                                     // instruction OFPIT_WRITE_METADATA
    0x00, 0x18,                                     // len 24
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // metadata 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, // metadata_mask 0xff
    0x00, 0x01,                                     // instruction OFPIT_GOTO_TABLE
    0x00, 0x08,                                     // len 8
    0x02,                                           // table_id 2
    0x00, 0x00, 0x00,                               // pad[3]
];

#[test]
fn flow_mod() {
    let fm = FlowMod {
        cookie: 42,
        cookie_mask: 0,
        table_id: 0,
        command: OFPFC_ADD,
        idle_timeout: 0,
        hard_timeout: 300,
        priority: 100,
        buffer_id: NO_BUFFER,
        out_port: port::ANY,
        out_group: group::ANY,
        flags: OFPFF_SEND_FLOW_REM | OFPFF_CHECK_OVERLAP,
        match_: Match::new(vec![
            Oxm::EthType(0x0800, None),
            Oxm::Ipv4Dst(
                Ipv4Addr::new(10, 1, 0, 0),
                Some(Ipv4Addr::new(255, 255, 0, 0)),
            ),
        ]),
        instructions: vec![
            Instruction::Meter { meter_id: 5 },
            Instruction::ApplyActions {
                actions: vec![
                    Action::SetField {
                        field: Oxm::EthDst(MacAddr([2, 0, 0, 0, 0x11, 3]), None),
                    },
                    Action::output(3),
                ],
            },
            Instruction::ClearActions,
            Instruction::WriteActions {
                actions: vec![Action::Group { group_id: 1 }],
            },
            Instruction::WriteMetadata {
                metadata: 1,
                metadata_mask: 0xff,
            },
            Instruction::GotoTable { table_id: 2 },
        ],
    };
    check(FLOW_MOD, msg(0x11, Body::FlowMod(fm)));
}

/// OFPT_FLOW_MOD DELETE of every flow: an empty match is 4 bytes padded to 8.
#[rustfmt::skip]
const FLOW_MOD_DELETE: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0e,                                           // type OFPT_FLOW_MOD (14)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x12,                         // xid 0x12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask 0
    0xff,                                           // table_id OFPTT_ALL
    0x03,                                           // command OFPFC_DELETE
    0x00, 0x00,                                     // idle_timeout 0
    0x00, 0x00,                                     // hard_timeout 0
    0x00, 0x00,                                     // priority 0
    0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
    0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
    0x00, 0x00,                                     // flags 0
    0x00, 0x00,                                     // pad[2]
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x04,                                     // match length 4 (no fields)
    0x00, 0x00, 0x00, 0x00,                         // match padding to 8
];

#[test]
fn flow_mod_delete() {
    let fm = FlowMod {
        table_id: TABLE_ALL,
        command: OFPFC_DELETE,
        priority: 0,
        ..FlowMod::default()
    };
    check(FLOW_MOD_DELETE, msg(0x12, Body::FlowMod(fm)));
}

/// OFPT_GROUP_MOD adding a select group with two buckets (`ofp_group_mod`, `ofp_bucket`);
/// the second pushes a VLAN tag and sets vlan_vid (a 6-byte OXM, so 6 bytes of action padding).
#[rustfmt::skip]
const GROUP_MOD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0f,                                           // type OFPT_GROUP_MOD (15)
    0x00, 0x68,                                     // length 104
    0x00, 0x00, 0x00, 0x13,                         // xid 0x13
    0x00, 0x00,                                     // command OFPGC_ADD
    0x01,                                           // type OFPGT_SELECT
    0x00,                                           // pad
    0x00, 0x00, 0x00, 0x01,                         // group_id 1
    0x00, 0x20,                                     // bucket len 32
    0x00, 0x32,                                     // weight 50
    0xff, 0xff, 0xff, 0xff,                         // watch_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // watch_group OFPG_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00,                                     // action OFPAT_OUTPUT
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x01,                         // port 1
    0x00, 0x00,                                     // max_len 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x38,                                     // bucket len 56
    0x00, 0x32,                                     // weight 50
    0xff, 0xff, 0xff, 0xff,                         // watch_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // watch_group OFPG_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x11,                                     // action OFPAT_PUSH_VLAN
    0x00, 0x08,                                     // len 8
    0x81, 0x00,                                     // ethertype 0x8100
    0x00, 0x00,                                     // pad[2]
    0x00, 0x19,                                     // action OFPAT_SET_FIELD
    0x00, 0x10,                                     // len 16
    0x80, 0x00, 0x0c, 0x02,                         // OXM vlan_vid (field 6), length 2
    0x10, 0x05,                                     // vlan_vid 5 | OFPVID_PRESENT
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // action padding to 16
    0x00, 0x00,                                     // action OFPAT_OUTPUT
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x02,                         // port 2
    0x00, 0x00,                                     // max_len 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
];

#[test]
fn group_mod() {
    let bucket = |actions| Bucket {
        weight: 50,
        watch_port: port::ANY,
        watch_group: group::ANY,
        actions,
    };
    check(
        GROUP_MOD,
        msg(
            0x13,
            Body::GroupMod(GroupMod {
                command: OFPGC_ADD,
                group_type: OFPGT_SELECT,
                group_id: 1,
                buckets: vec![
                    bucket(vec![output(1, 0)]),
                    bucket(vec![
                        Action::PushVlan { ethertype: 0x8100 },
                        Action::SetField {
                            field: Oxm::VlanVid(0x1005, None),
                        },
                        output(2, 0),
                    ]),
                ],
            }),
        ),
    );
}

/// OFPT_PORT_MOD taking port 3 administratively down (`ofp_port_mod`, 40 bytes).
#[rustfmt::skip]
const PORT_MOD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x10,                                           // type OFPT_PORT_MOD (16)
    0x00, 0x28,                                     // length 40
    0x00, 0x00, 0x00, 0x14,                         // xid 0x14
    0x00, 0x00, 0x00, 0x03,                         // port_no 3
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc,             // hw_addr 52:54:00:aa:bb:cc
    0x00, 0x00,                                     // pad2[2]
    0x00, 0x00, 0x00, 0x01,                         // config OFPPC_PORT_DOWN
    0x00, 0x00, 0x00, 0x01,                         // mask OFPPC_PORT_DOWN
    0x00, 0x00, 0x00, 0x00,                         // advertise 0 (unchanged)
    0x00, 0x00, 0x00, 0x00,                         // pad3[4]
];

#[test]
fn port_mod() {
    check(
        PORT_MOD,
        msg(
            0x14,
            Body::PortMod(PortMod {
                port_no: 3,
                hw_addr: MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]),
                config: OFPPC_PORT_DOWN,
                mask: OFPPC_PORT_DOWN,
                advertise: 0,
            }),
        ),
    );
}

/// OFPT_TABLE_MOD (`ofp_table_mod`).
#[rustfmt::skip]
const TABLE_MOD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x11,                                           // type OFPT_TABLE_MOD (17)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x15,                         // xid 0x15
    0x01,                                           // table_id 1
    0x00, 0x00, 0x00,                               // pad[3]
    0x00, 0x00, 0x00, 0x03,                         // config OFPTC_DEPRECATED_MASK
];

#[test]
fn table_mod() {
    check(
        TABLE_MOD,
        msg(
            0x15,
            Body::TableMod(TableMod {
                table_id: 1,
                config: 3,
            }),
        ),
    );
}

/// OFPT_METER_MOD adding meter 5 with a drop band and a dscp_remark band.
#[rustfmt::skip]
const METER_MOD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x1d,                                           // type OFPT_METER_MOD (29)
    0x00, 0x30,                                     // length 48
    0x00, 0x00, 0x00, 0x16,                         // xid 0x16
    0x00, 0x00,                                     // command OFPMC_ADD
    0x00, 0x0d,                                     // flags OFPMF_KBPS|OFPMF_BURST|OFPMF_STATS
    0x00, 0x00, 0x00, 0x05,                         // meter_id 5
    0x00, 0x01,                                     // band type OFPMBT_DROP
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x27, 0x10,                         // rate 10000
    0x00, 0x00, 0x03, 0xe8,                         // burst_size 1000
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x02,                                     // band type OFPMBT_DSCP_REMARK
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x13, 0x88,                         // rate 5000
    0x00, 0x00, 0x01, 0xf4,                         // burst_size 500
    0x01,                                           // prec_level 1
    0x00, 0x00, 0x00,                               // pad[3]
];

fn meter_5_bands() -> Vec<MeterBand> {
    vec![
        MeterBand {
            rate: 10_000,
            burst_size: 1000,
            kind: MeterBandKind::Drop,
        },
        MeterBand {
            rate: 5000,
            burst_size: 500,
            kind: MeterBandKind::DscpRemark { prec_level: 1 },
        },
    ]
}

#[test]
fn meter_mod() {
    check(
        METER_MOD,
        msg(
            0x16,
            Body::MeterMod(MeterMod {
                command: 0,
                flags: 0x0d,
                meter_id: 5,
                bands: meter_5_bands(),
            }),
        ),
    );
}

/// OFPT_BARRIER_REQUEST: a header only.
#[rustfmt::skip]
const BARRIER_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x14,                                           // type OFPT_BARRIER_REQUEST (20)
    0x00, 0x08,                                     // length 8
    0x00, 0x00, 0x00, 0x17,                         // xid 0x17
];

#[test]
fn barrier_request() {
    check(BARRIER_REQUEST, msg(0x17, Body::BarrierRequest));
}

/// OFPT_BARRIER_REPLY: a header only.
#[rustfmt::skip]
const BARRIER_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x15,                                           // type OFPT_BARRIER_REPLY (21)
    0x00, 0x08,                                     // length 8
    0x00, 0x00, 0x00, 0x17,                         // xid 0x17
];

#[test]
fn barrier_reply() {
    check(BARRIER_REPLY, msg(0x17, Body::BarrierReply));
}

/// OFPT_QUEUE_GET_CONFIG_REQUEST (`ofp_queue_get_config_request`).
#[rustfmt::skip]
const QUEUE_GET_CONFIG_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x16,                                           // type OFPT_QUEUE_GET_CONFIG_REQUEST (22)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x18,                         // xid 0x18
    0x00, 0x00, 0x00, 0x01,                         // port 1
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn queue_get_config_request() {
    check(
        QUEUE_GET_CONFIG_REQUEST,
        msg(0x18, Body::QueueGetConfigRequest { port: 1 }),
    );
}

/// OFPT_QUEUE_GET_CONFIG_REPLY: one `ofp_packet_queue` with a min-rate and a max-rate
/// property (`ofp_queue_prop_min_rate`, `ofp_queue_prop_max_rate`).
#[rustfmt::skip]
const QUEUE_GET_CONFIG_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x17,                                           // type OFPT_QUEUE_GET_CONFIG_REPLY (23)
    0x00, 0x40,                                     // length 64
    0x00, 0x00, 0x00, 0x18,                         // xid 0x18
    0x00, 0x00, 0x00, 0x01,                         // port 1
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x07,                         // queue_id 7
    0x00, 0x00, 0x00, 0x01,                         // port 1
    0x00, 0x30,                                     // len 48
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x01,                                     // property OFPQT_MIN_RATE
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0xc8,                                     // rate 200 (20.0%)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x02,                                     // property OFPQT_MAX_RATE
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x03, 0x20,                                     // rate 800 (80.0%)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
];

#[test]
fn queue_get_config_reply() {
    check(
        QUEUE_GET_CONFIG_REPLY,
        msg(
            0x18,
            Body::QueueGetConfigReply(QueueGetConfigReply {
                port: 1,
                queues: vec![PacketQueue {
                    queue_id: 7,
                    port: 1,
                    properties: vec![
                        QueueProp::MinRate { rate: 200 },
                        QueueProp::MaxRate { rate: 800 },
                    ],
                }],
            }),
        ),
    );
}

/// OFPT_ROLE_REQUEST (`ofp_role_request`).
#[rustfmt::skip]
const ROLE_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x18,                                           // type OFPT_ROLE_REQUEST (24)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x19,                         // xid 0x19
    0x00, 0x00, 0x00, 0x02,                         // role OFPCR_ROLE_MASTER
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // generation_id 3
];

#[test]
fn role_request() {
    check(
        ROLE_REQUEST,
        msg(
            0x19,
            Body::RoleRequest(Role {
                role: OFPCR_ROLE_MASTER,
                generation_id: 3,
            }),
        ),
    );
}

/// OFPT_ROLE_REPLY (`ofp_role_request`).
#[rustfmt::skip]
const ROLE_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x19,                                           // type OFPT_ROLE_REPLY (25)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x19,                         // xid 0x19
    0x00, 0x00, 0x00, 0x03,                         // role OFPCR_ROLE_SLAVE
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // generation_id 4
];

#[test]
fn role_reply() {
    check(
        ROLE_REPLY,
        msg(
            0x19,
            Body::RoleReply(Role {
                role: OFPCR_ROLE_SLAVE,
                generation_id: 4,
            }),
        ),
    );
}

/// OFPT_GET_ASYNC_REQUEST: a header only.
#[rustfmt::skip]
const GET_ASYNC_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x1a,                                           // type OFPT_GET_ASYNC_REQUEST (26)
    0x00, 0x08,                                     // length 8
    0x00, 0x00, 0x00, 0x1a,                         // xid 0x1a
];

#[test]
fn get_async_request() {
    check(GET_ASYNC_REQUEST, msg(0x1a, Body::GetAsyncRequest));
}

/// OFPT_GET_ASYNC_REPLY (`ofp_async_config`): [master/equal, slave] pairs.
#[rustfmt::skip]
const GET_ASYNC_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x1b,                                           // type OFPT_GET_ASYNC_REPLY (27)
    0x00, 0x20,                                     // length 32
    0x00, 0x00, 0x00, 0x1a,                         // xid 0x1a
    0x00, 0x00, 0x00, 0x03,                         // packet_in_mask[0] NO_MATCH|ACTION
    0x00, 0x00, 0x00, 0x00,                         // packet_in_mask[1] none
    0x00, 0x00, 0x00, 0x07,                         // port_status_mask[0] ADD|DELETE|MODIFY
    0x00, 0x00, 0x00, 0x07,                         // port_status_mask[1] ADD|DELETE|MODIFY
    0x00, 0x00, 0x00, 0x0f,                         // flow_removed_mask[0] IDLE|HARD|DELETE|GROUP_DELETE
    0x00, 0x00, 0x00, 0x00,                         // flow_removed_mask[1] none
];

#[test]
fn get_async_reply() {
    check(
        GET_ASYNC_REPLY,
        msg(
            0x1a,
            Body::GetAsyncReply(AsyncConfig {
                packet_in_mask: [3, 0],
                port_status_mask: [7, 7],
                flow_removed_mask: [0xf, 0],
            }),
        ),
    );
}

/// OFPT_SET_ASYNC (`ofp_async_config`).
#[rustfmt::skip]
const SET_ASYNC: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x1c,                                           // type OFPT_SET_ASYNC (28)
    0x00, 0x20,                                     // length 32
    0x00, 0x00, 0x00, 0x1b,                         // xid 0x1b
    0x00, 0x00, 0x00, 0x01,                         // packet_in_mask[0] NO_MATCH
    0x00, 0x00, 0x00, 0x02,                         // packet_in_mask[1] ACTION
    0x00, 0x00, 0x00, 0x07,                         // port_status_mask[0] ADD|DELETE|MODIFY
    0x00, 0x00, 0x00, 0x00,                         // port_status_mask[1] none
    0x00, 0x00, 0x00, 0x03,                         // flow_removed_mask[0] IDLE|HARD
    0x00, 0x00, 0x00, 0x04,                         // flow_removed_mask[1] DELETE
];

#[test]
fn set_async() {
    check(
        SET_ASYNC,
        msg(
            0x1b,
            Body::SetAsync(AsyncConfig {
                packet_in_mask: [1, 2],
                port_status_mask: [7, 0],
                flow_removed_mask: [3, 4],
            }),
        ),
    );
}

// -------------------------------------------------------------------------------------------
// Multipart requests and replies (section 7.3.5)

/// OFPMP_DESC request: no body.
#[rustfmt::skip]
const MP_DESC_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x00,                                     // multipart type OFPMP_DESC (0)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_desc_request() {
    check(MP_DESC_REQUEST, mp_request(MultipartRequestBody::Desc));
}

/// OFPMP_DESC reply (`ofp_desc`, 1056 bytes of NUL-padded strings).
#[rustfmt::skip]
const MP_DESC_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x04, 0x30,                                     // length 1072
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x00,                                     // multipart type OFPMP_DESC (0)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x4e, 0x69, 0x63, 0x69, 0x72, 0x61, 0x2c, 0x20, // mfr_desc "Nicira, Inc.", NUL-padded to DESC_STR_LEN 256
    0x49, 0x6e, 0x63, 0x2e, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x4f, 0x70, 0x65, 0x6e, 0x20, 0x76, 0x53, 0x77, // hw_desc "Open vSwitch", NUL-padded to 256
    0x69, 0x74, 0x63, 0x68, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x32, 0x2e, 0x31, 0x37, 0x2e, 0x39, 0x00, 0x00, // sw_desc "2.17.9", NUL-padded to 256
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x4e, 0x6f, 0x6e, 0x65, 0x00, 0x00, 0x00, 0x00, // serial_num "None", NUL-padded to SERIAL_NUM_LEN 32
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x62, 0x72, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, // dp_desc "br0", NUL-padded to 256
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn mp_desc_reply() {
    check(
        MP_DESC_REPLY,
        mp_reply(MultipartReplyBody::Desc(Box::new(Desc {
            mfr_desc: "Nicira, Inc.".into(),
            hw_desc: "Open vSwitch".into(),
            sw_desc: "2.17.9".into(),
            serial_num: "None".into(),
            dp_desc: "br0".into(),
        }))),
    );
}

/// OFPMP_FLOW request (`ofp_flow_stats_request`).
#[rustfmt::skip]
const MP_FLOW_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x40,                                     // length 64
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x01,                                     // multipart type OFPMP_FLOW (1)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff,                                           // table_id OFPTT_ALL
    0x00, 0x00, 0x00,                               // pad[3]
    0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad2[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // cookie 42
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // cookie_mask: all bits must match
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x0c,                                     // match length 12
    0x80, 0x00, 0x00, 0x04,                         // OXM in_port, length 4
    0x00, 0x00, 0x00, 0x01,                         // in_port 1
    0x00, 0x00, 0x00, 0x00,                         // match padding to 16
];

#[test]
fn mp_flow_request() {
    check(
        MP_FLOW_REQUEST,
        mp_request(MultipartRequestBody::Flow(FlowStatsRequest {
            cookie: 42,
            cookie_mask: u64::MAX,
            match_: Match::new(vec![Oxm::InPort(1, None)]),
            ..FlowStatsRequest::all()
        })),
    );
}

/// OFPMP_FLOW reply with two `ofp_flow_stats` entries.
#[rustfmt::skip]
const MP_FLOW_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0xa0,                                     // length 160
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x01,                                     // multipart type OFPMP_FLOW (1)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x58,                                     // length 88
    0x00,                                           // table_id 0
    0x00,                                           // pad
    0x00, 0x00, 0x01, 0x2c,                         // duration_sec 300
    0x00, 0x00, 0x00, 0x64,                         // duration_nsec 100
    0x00, 0x64,                                     // priority 100
    0x00, 0x00,                                     // idle_timeout 0
    0x00, 0x00,                                     // hard_timeout 0
    0x00, 0x01,                                     // flags OFPFF_SEND_FLOW_REM
    0x00, 0x00, 0x00, 0x00,                         // pad2[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // cookie 42
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // packet_count 7
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xa4, // byte_count 420
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x0a,                                     // match length 10
    0x80, 0x00, 0x0a, 0x02,                         // OXM eth_type, length 2
    0x08, 0x06,                                     // eth_type 0x0806 (ARP)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // match padding to 16
    0x00, 0x04,                                     // instruction OFPIT_APPLY_ACTIONS
    0x00, 0x18,                                     // len 24
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00,                                     // action OFPAT_OUTPUT
    0x00, 0x10,                                     // len 16
    0xff, 0xff, 0xff, 0xfd,                         // port OFPP_CONTROLLER
    0xff, 0xff,                                     // max_len OFPCML_NO_BUFFER
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x38,                                     // length 56 (second entry)
    0x00,                                           // table_id 0
    0x00,                                           // pad
    0x00, 0x00, 0x0e, 0x10,                         // duration_sec 3600
    0x00, 0x00, 0x00, 0x00,                         // duration_nsec 0
    0x00, 0x00,                                     // priority 0
    0x00, 0x00,                                     // idle_timeout 0
    0x00, 0x00,                                     // hard_timeout 0
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad2[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // packet_count 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb4, // byte_count 180
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x04,                                     // match length 4 (no fields)
    0x00, 0x00, 0x00, 0x00,                         // match padding to 8; no instructions (drop)
];

#[test]
fn mp_flow_reply() {
    check(
        MP_FLOW_REPLY,
        mp_reply(MultipartReplyBody::Flow(vec![
            FlowStats {
                table_id: 0,
                duration_sec: 300,
                duration_nsec: 100,
                priority: 100,
                idle_timeout: 0,
                hard_timeout: 0,
                flags: OFPFF_SEND_FLOW_REM,
                cookie: 42,
                packet_count: 7,
                byte_count: 420,
                match_: Match::new(vec![Oxm::EthType(0x0806, None)]),
                instructions: vec![Instruction::ApplyActions {
                    actions: vec![Action::output(port::CONTROLLER)],
                }],
            },
            FlowStats {
                table_id: 0,
                duration_sec: 3600,
                duration_nsec: 0,
                priority: 0,
                idle_timeout: 0,
                hard_timeout: 0,
                flags: 0,
                cookie: 0,
                packet_count: 3,
                byte_count: 180,
                match_: Match::default(),
                instructions: vec![],
            },
        ])),
    );
}

/// OFPMP_AGGREGATE request (`ofp_aggregate_stats_request`) over every flow.
#[rustfmt::skip]
const MP_AGGREGATE_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x02,                                     // multipart type OFPMP_AGGREGATE (2)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff,                                           // table_id OFPTT_ALL
    0x00, 0x00, 0x00,                               // pad[3]
    0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad2[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask 0
    0x00, 0x01,                                     // match type OFPMT_OXM
    0x00, 0x04,                                     // match length 4 (no fields)
    0x00, 0x00, 0x00, 0x00,                         // match padding to 8
];

#[test]
fn mp_aggregate_request() {
    check(
        MP_AGGREGATE_REQUEST,
        mp_request(MultipartRequestBody::Aggregate(FlowStatsRequest::all())),
    );
}

/// OFPMP_AGGREGATE reply (`ofp_aggregate_stats_reply`).
#[rustfmt::skip]
const MP_AGGREGATE_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x28,                                     // length 40
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x02,                                     // multipart type OFPMP_AGGREGATE (2)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // packet_count 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x84, // byte_count 900
    0x00, 0x00, 0x00, 0x02,                         // flow_count 2
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_aggregate_reply() {
    check(
        MP_AGGREGATE_REPLY,
        mp_reply(MultipartReplyBody::Aggregate(AggregateStats {
            packet_count: 10,
            byte_count: 900,
            flow_count: 2,
        })),
    );
}

/// OFPMP_TABLE request: no body.
#[rustfmt::skip]
const MP_TABLE_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x03,                                     // multipart type OFPMP_TABLE (3)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_table_request() {
    check(MP_TABLE_REQUEST, mp_request(MultipartRequestBody::Table));
}

/// OFPMP_TABLE reply with two `ofp_table_stats`.
#[rustfmt::skip]
const MP_TABLE_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x40,                                     // length 64
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x03,                                     // multipart type OFPMP_TABLE (3)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00,                                           // table_id 0
    0x00, 0x00, 0x00,                               // pad[3]
    0x00, 0x00, 0x00, 0x02,                         // active_count 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, // lookup_count 100
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5a, // matched_count 90
    0x01,                                           // table_id 1
    0x00, 0x00, 0x00,                               // pad[3]
    0x00, 0x00, 0x00, 0x00,                         // active_count 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // lookup_count 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // matched_count 0
];

#[test]
fn mp_table_reply() {
    check(
        MP_TABLE_REPLY,
        mp_reply(MultipartReplyBody::Table(vec![
            TableStats {
                table_id: 0,
                active_count: 2,
                lookup_count: 100,
                matched_count: 90,
            },
            TableStats {
                table_id: 1,
                active_count: 0,
                lookup_count: 0,
                matched_count: 0,
            },
        ])),
    );
}

/// OFPMP_PORT_STATS request (`ofp_port_stats_request`).
#[rustfmt::skip]
const MP_PORT_STATS_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x04,                                     // multipart type OFPMP_PORT_STATS (4)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff, 0xff, 0xff, 0xff,                         // port_no OFPP_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_port_stats_request() {
    check(
        MP_PORT_STATS_REQUEST,
        mp_request(MultipartRequestBody::PortStats { port_no: port::ANY }),
    );
}

/// OFPMP_PORT_STATS reply (`ofp_port_stats`, 112 bytes); distinct counters catch field swaps.
#[rustfmt::skip]
const MP_PORT_STATS_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x80,                                     // length 128
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x04,                                     // multipart type OFPMP_PORT_STATS (4)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x01,                         // port_no 1
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // rx_packets 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // tx_packets 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // rx_bytes 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // tx_bytes 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // rx_dropped 5
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // tx_dropped 6
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // rx_errors 7
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // tx_errors 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // rx_frame_err 9
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // rx_over_err 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, // rx_crc_err 11
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, // collisions 12
    0x00, 0x00, 0x00, 0x3c,                         // duration_sec 60
    0x00, 0x00, 0x00, 0x0d,                         // duration_nsec 13
];

#[test]
fn mp_port_stats_reply() {
    check(
        MP_PORT_STATS_REPLY,
        mp_reply(MultipartReplyBody::PortStats(vec![PortStats {
            port_no: 1,
            rx_packets: 1,
            tx_packets: 2,
            rx_bytes: 3,
            tx_bytes: 4,
            rx_dropped: 5,
            tx_dropped: 6,
            rx_errors: 7,
            tx_errors: 8,
            rx_frame_err: 9,
            rx_over_err: 10,
            rx_crc_err: 11,
            collisions: 12,
            duration_sec: 60,
            duration_nsec: 13,
        }])),
    );
}

/// OFPMP_QUEUE request (`ofp_queue_stats_request`).
#[rustfmt::skip]
const MP_QUEUE_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x05,                                     // multipart type OFPMP_QUEUE (5)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff, 0xff, 0xff, 0xff,                         // port_no OFPP_ANY
    0xff, 0xff, 0xff, 0xff,                         // queue_id OFPQ_ALL
];

#[test]
fn mp_queue_request() {
    check(
        MP_QUEUE_REQUEST,
        mp_request(MultipartRequestBody::Queue {
            port_no: port::ANY,
            queue_id: 0xffff_ffff,
        }),
    );
}

/// OFPMP_QUEUE reply (`ofp_queue_stats`, 40 bytes).
#[rustfmt::skip]
const MP_QUEUE_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x05,                                     // multipart type OFPMP_QUEUE (5)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x01,                         // port_no 1
    0x00, 0x00, 0x00, 0x07,                         // queue_id 7
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x98, // tx_bytes 15000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // tx_packets 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // tx_errors 1
    0x00, 0x00, 0x00, 0x3c,                         // duration_sec 60
    0x00, 0x00, 0x00, 0x02,                         // duration_nsec 2
];

#[test]
fn mp_queue_reply() {
    check(
        MP_QUEUE_REPLY,
        mp_reply(MultipartReplyBody::Queue(vec![QueueStats {
            port_no: 1,
            queue_id: 7,
            tx_bytes: 15000,
            tx_packets: 10,
            tx_errors: 1,
            duration_sec: 60,
            duration_nsec: 2,
        }])),
    );
}

/// OFPMP_GROUP request (`ofp_group_stats_request`).
#[rustfmt::skip]
const MP_GROUP_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x06,                                     // multipart type OFPMP_GROUP (6)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff, 0xff, 0xff, 0xfc,                         // group_id OFPG_ALL
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_group_request() {
    check(
        MP_GROUP_REQUEST,
        mp_request(MultipartRequestBody::Group {
            group_id: group::ALL,
        }),
    );
}

/// OFPMP_GROUP reply (`ofp_group_stats` with two `ofp_bucket_counter`).
#[rustfmt::skip]
const MP_GROUP_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x58,                                     // length 88
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x06,                                     // multipart type OFPMP_GROUP (6)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x48,                                     // length 72
    0x00, 0x00,                                     // pad[2]
    0x00, 0x00, 0x00, 0x01,                         // group_id 1
    0x00, 0x00, 0x00, 0x01,                         // ref_count 1
    0x00, 0x00, 0x00, 0x00,                         // pad2[4]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // packet_count 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xf0, // byte_count 752
    0x00, 0x00, 0x00, 0x3c,                         // duration_sec 60
    0x00, 0x00, 0x00, 0x09,                         // duration_nsec 9
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // bucket_stats[0].packet_count 5
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xd6, // bucket_stats[0].byte_count 470
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // bucket_stats[1].packet_count 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x1a, // bucket_stats[1].byte_count 282
];

#[test]
fn mp_group_reply() {
    check(
        MP_GROUP_REPLY,
        mp_reply(MultipartReplyBody::Group(vec![GroupStats {
            group_id: 1,
            ref_count: 1,
            packet_count: 8,
            byte_count: 752,
            duration_sec: 60,
            duration_nsec: 9,
            bucket_stats: vec![
                Counter {
                    packet_count: 5,
                    byte_count: 470,
                },
                Counter {
                    packet_count: 3,
                    byte_count: 282,
                },
            ],
        }])),
    );
}

/// OFPMP_GROUP_DESC request: no body.
#[rustfmt::skip]
const MP_GROUP_DESC_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x07,                                     // multipart type OFPMP_GROUP_DESC (7)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_group_desc_request() {
    check(
        MP_GROUP_DESC_REQUEST,
        mp_request(MultipartRequestBody::GroupDesc),
    );
}

/// OFPMP_GROUP_DESC reply (`ofp_group_desc`): a fast-failover group watching port 2.
#[rustfmt::skip]
const MP_GROUP_DESC_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x07,                                     // multipart type OFPMP_GROUP_DESC (7)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x28,                                     // length 40
    0x03,                                           // type OFPGT_FF
    0x00,                                           // pad
    0x00, 0x00, 0x00, 0x02,                         // group_id 2
    0x00, 0x20,                                     // bucket len 32
    0x00, 0x00,                                     // weight 0
    0x00, 0x00, 0x00, 0x02,                         // watch_port 2
    0xff, 0xff, 0xff, 0xff,                         // watch_group OFPG_ANY
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00,                                     // action OFPAT_OUTPUT
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x00, 0x02,                         // port 2
    0x00, 0x00,                                     // max_len 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
];

#[test]
fn mp_group_desc_reply() {
    check(
        MP_GROUP_DESC_REPLY,
        mp_reply(MultipartReplyBody::GroupDesc(vec![GroupDesc {
            group_type: OFPGT_FF,
            group_id: 2,
            buckets: vec![Bucket {
                weight: 0,
                watch_port: 2,
                watch_group: group::ANY,
                actions: vec![output(2, 0)],
            }],
        }])),
    );
}

/// OFPMP_GROUP_FEATURES request: no body.
#[rustfmt::skip]
const MP_GROUP_FEATURES_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x08,                                     // multipart type OFPMP_GROUP_FEATURES (8)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_group_features_request() {
    check(
        MP_GROUP_FEATURES_REQUEST,
        mp_request(MultipartRequestBody::GroupFeatures),
    );
}

/// OFPMP_GROUP_FEATURES reply (`ofp_group_features`, 40 bytes).
#[rustfmt::skip]
const MP_GROUP_FEATURES_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x08,                                     // multipart type OFPMP_GROUP_FEATURES (8)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x0f,                         // types ALL|SELECT|INDIRECT|FF
    0x00, 0x00, 0x00, 0x0f,                         // capabilities SELECT_WEIGHT|SELECT_LIVENESS|CHAINING|CHAINING_CHECKS
    0x00, 0x00, 0x10, 0x00,                         // max_groups[ALL] 4096
    0x00, 0x00, 0x04, 0x00,                         // max_groups[SELECT] 1024
    0x00, 0x00, 0x01, 0x00,                         // max_groups[INDIRECT] 256
    0x00, 0x00, 0x00, 0x40,                         // max_groups[FF] 64
    0x02, 0x46, 0x00, 0x01,                         // actions[ALL] OUTPUT|PUSH_VLAN|POP_VLAN|GROUP|SET_FIELD
    0x02, 0x46, 0x00, 0x01,                         // actions[SELECT] the same
    0x02, 0x46, 0x00, 0x01,                         // actions[INDIRECT] the same
    0x00, 0x00, 0x00, 0x01,                         // actions[FF] OUTPUT
];

#[test]
fn mp_group_features_reply() {
    check(
        MP_GROUP_FEATURES_REPLY,
        mp_reply(MultipartReplyBody::GroupFeatures(GroupFeatures {
            types: 0xf,
            capabilities: 0xf,
            max_groups: [4096, 1024, 256, 64],
            actions: [0x0246_0001, 0x0246_0001, 0x0246_0001, 1],
        })),
    );
}

/// OFPMP_METER request (`ofp_meter_multipart_request`).
#[rustfmt::skip]
const MP_METER_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x09,                                     // multipart type OFPMP_METER (9)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0xff, 0xff, 0xff, 0xff,                         // meter_id OFPM_ALL
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_meter_request() {
    check(
        MP_METER_REQUEST,
        mp_request(MultipartRequestBody::Meter {
            meter_id: 0xffff_ffff,
        }),
    );
}

/// OFPMP_METER reply (`ofp_meter_stats`: its length sits at offset 4, not 0).
#[rustfmt::skip]
const MP_METER_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x48,                                     // length 72
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x09,                                     // multipart type OFPMP_METER (9)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x05,                         // meter_id 5
    0x00, 0x38,                                     // len 56
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
    0x00, 0x00, 0x00, 0x01,                         // flow_count 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, // packet_in_count 100
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x27, 0x10, // byte_in_count 10000
    0x00, 0x00, 0x00, 0x3c,                         // duration_sec 60
    0x00, 0x00, 0x00, 0x0b,                         // duration_nsec 11
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // band_stats[0].packet_band_count 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // band_stats[0].byte_band_count 1000
];

#[test]
fn mp_meter_reply() {
    check(
        MP_METER_REPLY,
        mp_reply(MultipartReplyBody::Meter(vec![MeterStats {
            meter_id: 5,
            flow_count: 1,
            packet_in_count: 100,
            byte_in_count: 10_000,
            duration_sec: 60,
            duration_nsec: 11,
            band_stats: vec![Counter {
                packet_count: 10,
                byte_count: 1000,
            }],
        }])),
    );
}

/// OFPMP_METER_CONFIG request (`ofp_meter_multipart_request`).
#[rustfmt::skip]
const MP_METER_CONFIG_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x18,                                     // length 24
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0a,                                     // multipart type OFPMP_METER_CONFIG (10)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x05,                         // meter_id 5
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_meter_config_request() {
    check(
        MP_METER_CONFIG_REQUEST,
        mp_request(MultipartRequestBody::MeterConfig { meter_id: 5 }),
    );
}

/// OFPMP_METER_CONFIG reply (`ofp_meter_config`).
#[rustfmt::skip]
const MP_METER_CONFIG_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x38,                                     // length 56
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0a,                                     // multipart type OFPMP_METER_CONFIG (10)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x28,                                     // length 40
    0x00, 0x0d,                                     // flags OFPMF_KBPS|OFPMF_BURST|OFPMF_STATS
    0x00, 0x00, 0x00, 0x05,                         // meter_id 5
    0x00, 0x01,                                     // band type OFPMBT_DROP
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x27, 0x10,                         // rate 10000
    0x00, 0x00, 0x03, 0xe8,                         // burst_size 1000
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x02,                                     // band type OFPMBT_DSCP_REMARK
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x13, 0x88,                         // rate 5000
    0x00, 0x00, 0x01, 0xf4,                         // burst_size 500
    0x01,                                           // prec_level 1
    0x00, 0x00, 0x00,                               // pad[3]
];

#[test]
fn mp_meter_config_reply() {
    check(
        MP_METER_CONFIG_REPLY,
        mp_reply(MultipartReplyBody::MeterConfig(vec![MeterConfig {
            flags: 0x0d,
            meter_id: 5,
            bands: meter_5_bands(),
        }])),
    );
}

/// OFPMP_METER_FEATURES request: no body.
#[rustfmt::skip]
const MP_METER_FEATURES_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0b,                                     // multipart type OFPMP_METER_FEATURES (11)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_meter_features_request() {
    check(
        MP_METER_FEATURES_REQUEST,
        mp_request(MultipartRequestBody::MeterFeatures),
    );
}

/// OFPMP_METER_FEATURES reply (`ofp_meter_features`, 16 bytes).
#[rustfmt::skip]
const MP_METER_FEATURES_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x20,                                     // length 32
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0b,                                     // multipart type OFPMP_METER_FEATURES (11)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x10, 0x00,                         // max_meter 4096
    0x00, 0x00, 0x00, 0x06,                         // band_types 1<<OFPMBT_DROP | 1<<OFPMBT_DSCP_REMARK
    0x00, 0x00, 0x00, 0x0f,                         // capabilities KBPS|PKTPS|BURST|STATS
    0x08,                                           // max_bands 8
    0x02,                                           // max_color 2
    0x00, 0x00,                                     // pad[2]
];

#[test]
fn mp_meter_features_reply() {
    check(
        MP_METER_FEATURES_REPLY,
        mp_reply(MultipartReplyBody::MeterFeatures(MeterFeatures {
            max_meter: 4096,
            band_types: 6,
            capabilities: 0xf,
            max_bands: 8,
            max_color: 2,
        })),
    );
}

/// OFPMP_TABLE_FEATURES request with an empty body: query, change nothing.
#[rustfmt::skip]
const MP_TABLE_FEATURES_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0c,                                     // multipart type OFPMP_TABLE_FEATURES (12)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_table_features_request() {
    check(
        MP_TABLE_FEATURES_REQUEST,
        mp_request(MultipartRequestBody::TableFeatures(vec![])),
    );
}

/// OFPMP_TABLE_FEATURES reply, one `ofp_table_features` (more parts follow) with instructions,
/// next_tables, apply_actions (including an experimenter action id), match and experimenter
/// properties; each property's length excludes its padding to 8 bytes.
#[rustfmt::skip]
const MP_TABLE_FEATURES_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0xc0,                                     // length 192
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0c,                                     // multipart type OFPMP_TABLE_FEATURES (12)
    0x00, 0x01,                                     // flags OFPMPF_REPLY_MORE
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0xb0,                                     // length 176
    0x00,                                           // table_id 0
    0x00, 0x00, 0x00, 0x00, 0x00,                   // pad[5]
    0x63, 0x6c, 0x61, 0x73, 0x73, 0x69, 0x66, 0x69, // name "classifier", NUL-padded to OFP_MAX_TABLE_NAME_LEN 32
    0x65, 0x72, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // metadata_match: all bits
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // metadata_write: all bits
    0x00, 0x00, 0x00, 0x00,                         // config 0
    0x00, 0x0f, 0x42, 0x40,                         // max_entries 1000000
    0x00, 0x00,                                     // property OFPTFPT_INSTRUCTIONS
    0x00, 0x1c,                                     // length 28 (excludes padding)
    0x00, 0x01, 0x00, 0x04,                         // instruction id GOTO_TABLE, len 4
    0x00, 0x02, 0x00, 0x04,                         // instruction id WRITE_METADATA, len 4
    0x00, 0x03, 0x00, 0x04,                         // instruction id WRITE_ACTIONS, len 4
    0x00, 0x04, 0x00, 0x04,                         // instruction id APPLY_ACTIONS, len 4
    0x00, 0x05, 0x00, 0x04,                         // instruction id CLEAR_ACTIONS, len 4
    0x00, 0x06, 0x00, 0x04,                         // instruction id METER, len 4
    0x00, 0x00, 0x00, 0x00,                         // property padding to 32
    0x00, 0x02,                                     // property OFPTFPT_NEXT_TABLES
    0x00, 0x07,                                     // length 7
    0x01, 0x02, 0x03,                               // next_table_ids 1, 2, 3
    0x00,                                           // property padding to 8
    0x00, 0x06,                                     // property OFPTFPT_APPLY_ACTIONS
    0x00, 0x1c,                                     // length 28
    0x00, 0x00, 0x00, 0x04,                         // action id OUTPUT, len 4
    0x00, 0x11, 0x00, 0x04,                         // action id PUSH_VLAN, len 4
    0x00, 0x16, 0x00, 0x04,                         // action id GROUP, len 4
    0x00, 0x19, 0x00, 0x04,                         // action id SET_FIELD, len 4
    0xff, 0xff, 0x00, 0x08,                         // action id EXPERIMENTER, len 8
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320
    0x00, 0x00, 0x00, 0x00,                         // property padding to 32
    0x00, 0x08,                                     // property OFPTFPT_MATCH
    0x00, 0x14,                                     // length 20
    0x80, 0x00, 0x00, 0x04,                         // oxm id in_port, length 4
    0x80, 0x00, 0x0a, 0x02,                         // oxm id eth_type, length 2
    0x80, 0x00, 0x07, 0x0c,                         // oxm id eth_dst, HASMASK, length 12
    0x80, 0x00, 0x18, 0x04,                         // oxm id ipv4_dst, length 4
    0x00, 0x00, 0x00, 0x00,                         // property padding to 24
    0xff, 0xfe,                                     // property OFPTFPT_EXPERIMENTER
    0x00, 0x10,                                     // length 16 (a multiple of 8: no padding)
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320
    0x00, 0x00, 0x00, 0x01,                         // exp_type 1
    0x00, 0x00, 0x00, 0x2a,                         // experimenter_data[0] 42
];

#[test]
fn mp_table_features_reply() {
    let ids = |v: &[u16]| v.iter().map(|t| TypeId::new(*t)).collect::<Vec<_>>();
    let mut actions = ids(&[0, 17, 22, 25]);
    actions.push(TypeId {
        ty: 0xffff,
        data: b(&[0x00, 0x00, 0x23, 0x20]),
    });
    let oxm = |header| OxmId {
        header,
        experimenter: None,
    };
    let tf = TableFeatures {
        table_id: 0,
        name: "classifier".into(),
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        config: 0,
        max_entries: 1_000_000,
        properties: vec![
            TableFeatureProp {
                prop_type: OFPTFPT_INSTRUCTIONS,
                body: TableFeaturePropBody::Instructions(ids(&[1, 2, 3, 4, 5, 6])),
            },
            TableFeatureProp {
                prop_type: OFPTFPT_NEXT_TABLES,
                body: TableFeaturePropBody::NextTables(vec![1, 2, 3]),
            },
            TableFeatureProp {
                prop_type: OFPTFPT_APPLY_ACTIONS,
                body: TableFeaturePropBody::Actions(actions),
            },
            TableFeatureProp {
                prop_type: OFPTFPT_MATCH,
                body: TableFeaturePropBody::Oxm(vec![
                    oxm(0x8000_0004),
                    oxm(0x8000_0a02),
                    oxm(0x8000_070c),
                    oxm(0x8000_1804),
                ]),
            },
            TableFeatureProp {
                prop_type: OFPTFPT_EXPERIMENTER,
                body: TableFeaturePropBody::Experimenter {
                    experimenter: 0x2320,
                    exp_type: 1,
                    data: vec![42],
                },
            },
        ],
    };
    let m = msg(
        0x20,
        Body::MultipartReply(MultipartReply {
            flags: OFPMPF_MORE,
            body: MultipartReplyBody::TableFeatures(vec![tf]),
        }),
    );
    check(MP_TABLE_FEATURES_REPLY, m);
}

/// OFPMP_PORT_DESC request: no body.
#[rustfmt::skip]
const MP_PORT_DESC_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x10,                                     // length 16
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0d,                                     // multipart type OFPMP_PORT_DESC (13)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn mp_port_desc_request() {
    check(
        MP_PORT_DESC_REQUEST,
        mp_request(MultipartRequestBody::PortDesc),
    );
}

/// OFPMP_PORT_DESC reply with two 64-byte `ofp_port`s.
#[rustfmt::skip]
const MP_PORT_DESC_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x90,                                     // length 144
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0x00, 0x0d,                                     // multipart type OFPMP_PORT_DESC (13)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x00, 0x01,                         // port_no 1
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x52, 0x54, 0x00, 0x00, 0x00, 0x01,             // hw_addr 52:54:00:00:00:01
    0x00, 0x00,                                     // pad2[2]
    0x65, 0x74, 0x68, 0x31, 0x00, 0x00, 0x00, 0x00, // name "eth1", NUL-padded to 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,                         // config 0
    0x00, 0x00, 0x00, 0x04,                         // state OFPPS_LIVE
    0x00, 0x00, 0x08, 0x20,                         // curr OFPPF_1GB_FD|OFPPF_COPPER
    0x00, 0x00, 0x00, 0x00,                         // advertised 0
    0x00, 0x00, 0x00, 0x00,                         // supported 0
    0x00, 0x00, 0x00, 0x00,                         // peer 0
    0x00, 0x0f, 0x42, 0x40,                         // curr_speed 1000000 kbps
    0x00, 0x0f, 0x42, 0x40,                         // max_speed 1000000 kbps
    0xff, 0xff, 0xff, 0xfe,                         // port_no OFPP_LOCAL
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x52, 0x54, 0x00, 0x00, 0x00, 0x00,             // hw_addr 52:54:00:00:00:00
    0x00, 0x00,                                     // pad2[2]
    0x62, 0x72, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, // name "br0", NUL-padded to 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01,                         // config OFPPC_PORT_DOWN
    0x00, 0x00, 0x00, 0x01,                         // state OFPPS_LINK_DOWN
    0x00, 0x00, 0x00, 0x00,                         // curr 0
    0x00, 0x00, 0x00, 0x00,                         // advertised 0
    0x00, 0x00, 0x00, 0x00,                         // supported 0
    0x00, 0x00, 0x00, 0x00,                         // peer 0
    0x00, 0x00, 0x00, 0x00,                         // curr_speed 0 kbps
    0x00, 0x00, 0x00, 0x00,                         // max_speed 0 kbps
];

#[test]
fn mp_port_desc_reply() {
    let eth1 = Port {
        port_no: 1,
        hw_addr: MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        name: "eth1".into(),
        config: 0,
        state: 4,
        curr: 0x820,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 1_000_000,
        max_speed: 1_000_000,
    };
    let local = Port {
        port_no: port::LOCAL,
        hw_addr: MacAddr([0x52, 0x54, 0, 0, 0, 0]),
        name: "br0".into(),
        config: OFPPC_PORT_DOWN,
        state: OFPPS_LINK_DOWN,
        ..Port::default()
    };
    assert!(eth1.is_up() && !local.is_up());
    check(
        MP_PORT_DESC_REPLY,
        mp_reply(MultipartReplyBody::PortDesc(vec![eth1, local])),
    );
}

/// OFPMP_EXPERIMENTER request (`ofp_experimenter_multipart_header`).
#[rustfmt::skip]
const MP_EXPERIMENTER_REQUEST: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x12,                                           // type OFPT_MULTIPART_REQUEST (18)
    0x00, 0x1c,                                     // length 28
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0xff, 0xff,                                     // multipart type OFPMP_EXPERIMENTER (65535)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320
    0x00, 0x00, 0x00, 0x01,                         // exp_type 1
    0x0a, 0x0b, 0x0c, 0x0d,                         // experimenter-defined data
];

#[test]
fn mp_experimenter_request() {
    check(
        MP_EXPERIMENTER_REQUEST,
        mp_request(MultipartRequestBody::Experimenter(ExperimenterMultipart {
            experimenter: 0x2320,
            exp_type: 1,
            data: b(&[0x0a, 0x0b, 0x0c, 0x0d]),
        })),
    );
}

/// OFPMP_EXPERIMENTER reply (`ofp_experimenter_multipart_header`).
#[rustfmt::skip]
const MP_EXPERIMENTER_REPLY: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x13,                                           // type OFPT_MULTIPART_REPLY (19)
    0x00, 0x1c,                                     // length 28
    0x00, 0x00, 0x00, 0x20,                         // xid 0x20
    0xff, 0xff,                                     // multipart type OFPMP_EXPERIMENTER (65535)
    0x00, 0x00,                                     // flags 0
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320
    0x00, 0x00, 0x00, 0x01,                         // exp_type 1
    0x0e, 0x0f, 0x10, 0x11,                         // experimenter-defined data
];

#[test]
fn mp_experimenter_reply() {
    check(
        MP_EXPERIMENTER_REPLY,
        mp_reply(MultipartReplyBody::Experimenter(ExperimenterMultipart {
            experimenter: 0x2320,
            exp_type: 1,
            data: b(&[0x0e, 0x0f, 0x10, 0x11]),
        })),
    );
}

// -------------------------------------------------------------------------------------------
// Actions (section 7.2.5), one vector per type, checked through Action::parse

/// `ofp_action_output` to the controller, 128 bytes of each packet.
#[rustfmt::skip]
const ACTION_OUTPUT: &[u8] = &[
    0x00, 0x00,                                     // type OFPAT_OUTPUT (0)
    0x00, 0x10,                                     // len 16
    0xff, 0xff, 0xff, 0xfd,                         // port OFPP_CONTROLLER
    0x00, 0x80,                                     // max_len 128
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
];

#[test]
fn action_output() {
    check_action(ACTION_OUTPUT, output(port::CONTROLLER, 128));
}

/// OFPAT_COPY_TTL_OUT (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_COPY_TTL_OUT: &[u8] = &[
    0x00, 0x0b,                                     // type OFPAT_COPY_TTL_OUT (11)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_copy_ttl_out() {
    check_action(ACTION_COPY_TTL_OUT, Action::CopyTtlOut);
}

/// OFPAT_COPY_TTL_IN (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_COPY_TTL_IN: &[u8] = &[
    0x00, 0x0c,                                     // type OFPAT_COPY_TTL_IN (12)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_copy_ttl_in() {
    check_action(ACTION_COPY_TTL_IN, Action::CopyTtlIn);
}

/// `ofp_action_mpls_ttl`.
#[rustfmt::skip]
const ACTION_SET_MPLS_TTL: &[u8] = &[
    0x00, 0x0f,                                     // type OFPAT_SET_MPLS_TTL (15)
    0x00, 0x08,                                     // len 8
    0x40,                                           // mpls_ttl 64
    0x00, 0x00, 0x00,                               // pad[3]
];

#[test]
fn action_set_mpls_ttl() {
    check_action(ACTION_SET_MPLS_TTL, Action::SetMplsTtl { mpls_ttl: 64 });
}

/// OFPAT_DEC_MPLS_TTL (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_DEC_MPLS_TTL: &[u8] = &[
    0x00, 0x10,                                     // type OFPAT_DEC_MPLS_TTL (16)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_dec_mpls_ttl() {
    check_action(ACTION_DEC_MPLS_TTL, Action::DecMplsTtl);
}

/// OFPAT_PUSH_VLAN (`ofp_action_push`).
#[rustfmt::skip]
const ACTION_PUSH_VLAN: &[u8] = &[
    0x00, 0x11,                                     // type OFPAT_PUSH_VLAN (17)
    0x00, 0x08,                                     // len 8
    0x88, 0xa8,                                     // ethertype 0x88a8 (802.1ad)
    0x00, 0x00,                                     // pad[2]
];

#[test]
fn action_push_vlan() {
    check_action(ACTION_PUSH_VLAN, Action::PushVlan { ethertype: 0x88a8 });
}

/// OFPAT_POP_VLAN (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_POP_VLAN: &[u8] = &[
    0x00, 0x12,                                     // type OFPAT_POP_VLAN (18)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_pop_vlan() {
    check_action(ACTION_POP_VLAN, Action::PopVlan);
}

/// OFPAT_PUSH_MPLS (`ofp_action_push`).
#[rustfmt::skip]
const ACTION_PUSH_MPLS: &[u8] = &[
    0x00, 0x13,                                     // type OFPAT_PUSH_MPLS (19)
    0x00, 0x08,                                     // len 8
    0x88, 0x47,                                     // ethertype 0x8847 (MPLS unicast)
    0x00, 0x00,                                     // pad[2]
];

#[test]
fn action_push_mpls() {
    check_action(ACTION_PUSH_MPLS, Action::PushMpls { ethertype: 0x8847 });
}

/// `ofp_action_pop_mpls`: the ethertype of the payload.
#[rustfmt::skip]
const ACTION_POP_MPLS: &[u8] = &[
    0x00, 0x14,                                     // type OFPAT_POP_MPLS (20)
    0x00, 0x08,                                     // len 8
    0x08, 0x00,                                     // ethertype 0x0800
    0x00, 0x00,                                     // pad[2]
];

#[test]
fn action_pop_mpls() {
    check_action(ACTION_POP_MPLS, Action::PopMpls { ethertype: 0x0800 });
}

/// `ofp_action_set_queue`.
#[rustfmt::skip]
const ACTION_SET_QUEUE: &[u8] = &[
    0x00, 0x15,                                     // type OFPAT_SET_QUEUE (21)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x07,                         // queue_id 7
];

#[test]
fn action_set_queue() {
    check_action(ACTION_SET_QUEUE, Action::SetQueue { queue_id: 7 });
}

/// `ofp_action_group`.
#[rustfmt::skip]
const ACTION_GROUP: &[u8] = &[
    0x00, 0x16,                                     // type OFPAT_GROUP (22)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x01,                         // group_id 1
];

#[test]
fn action_group() {
    check_action(ACTION_GROUP, Action::Group { group_id: 1 });
}

/// `ofp_action_nw_ttl`.
#[rustfmt::skip]
const ACTION_SET_NW_TTL: &[u8] = &[
    0x00, 0x17,                                     // type OFPAT_SET_NW_TTL (23)
    0x00, 0x08,                                     // len 8
    0x3f,                                           // nw_ttl 63
    0x00, 0x00, 0x00,                               // pad[3]
];

#[test]
fn action_set_nw_ttl() {
    check_action(ACTION_SET_NW_TTL, Action::SetNwTtl { nw_ttl: 63 });
}

/// OFPAT_DEC_NW_TTL (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_DEC_NW_TTL: &[u8] = &[
    0x00, 0x18,                                     // type OFPAT_DEC_NW_TTL (24)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_dec_nw_ttl() {
    check_action(ACTION_DEC_NW_TTL, Action::DecNwTtl);
}

/// `ofp_action_set_field` of ipv4_src: 4 + 8 bytes, padded to 16.
#[rustfmt::skip]
const ACTION_SET_FIELD: &[u8] = &[
    0x00, 0x19,                                     // type OFPAT_SET_FIELD (25)
    0x00, 0x10,                                     // len 16
    0x80, 0x00, 0x16, 0x04,                         // OXM ipv4_src (field 11), length 4
    0x0a, 0x00, 0x00, 0x01,                         // ipv4_src 10.0.0.1
    0x00, 0x00, 0x00, 0x00,                         // padding to 16
];

#[test]
fn action_set_field() {
    check_action(
        ACTION_SET_FIELD,
        Action::SetField {
            field: Oxm::Ipv4Src(Ipv4Addr::new(10, 0, 0, 1), None),
        },
    );
}

/// OFPAT_PUSH_PBB (`ofp_action_push`).
#[rustfmt::skip]
const ACTION_PUSH_PBB: &[u8] = &[
    0x00, 0x1a,                                     // type OFPAT_PUSH_PBB (26)
    0x00, 0x08,                                     // len 8
    0x88, 0xe7,                                     // ethertype 0x88e7 (PBB)
    0x00, 0x00,                                     // pad[2]
];

#[test]
fn action_push_pbb() {
    check_action(ACTION_PUSH_PBB, Action::PushPbb { ethertype: 0x88e7 });
}

/// OFPAT_POP_PBB (`ofp_action_generic`).
#[rustfmt::skip]
const ACTION_POP_PBB: &[u8] = &[
    0x00, 0x1b,                                     // type OFPAT_POP_PBB (27)
    0x00, 0x08,                                     // len 8
    0x00, 0x00, 0x00, 0x00,                         // pad[4]
];

#[test]
fn action_pop_pbb() {
    check_action(ACTION_POP_PBB, Action::PopPbb);
}

/// `ofp_action_experimenter_header` carrying Nicira's NXAST_SET_TUNNEL; everything after the
/// experimenter id is the action's data.
#[rustfmt::skip]
const ACTION_EXPERIMENTER: &[u8] = &[
    0xff, 0xff,                                     // type OFPAT_EXPERIMENTER (0xffff)
    0x00, 0x10,                                     // len 16
    0x00, 0x00, 0x23, 0x20,                         // experimenter 0x00002320 (Nicira)
    0x00, 0x02,                                     // data: subtype NXAST_SET_TUNNEL
    0x00, 0x00,                                     // data: pad[2]
    0x00, 0x00, 0x00, 0x64,                         // data: tun_id 100
];

#[test]
fn action_experimenter() {
    check_action(
        ACTION_EXPERIMENTER,
        Action::Experimenter {
            experimenter: 0x2320,
            data: b(&[0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64]),
        },
    );
}

/// The fixed part of an OFPT_PACKET_OUT whose action list is every action vector above, in
/// order (160 bytes), and no data.
#[rustfmt::skip]
const PACKET_OUT_ALL_ACTIONS_HEAD: &[u8] = &[
    0x04,                                           // version 0x04 (OpenFlow 1.3)
    0x0d,                                           // type OFPT_PACKET_OUT (13)
    0x00, 0xb8,                                     // length 184
    0x00, 0x00, 0x00, 0x30,                         // xid 0x30
    0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
    0xff, 0xff, 0xff, 0xfd,                         // in_port OFPP_CONTROLLER
    0x00, 0xa0,                                     // actions_len 160
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // pad[6]
];

/// Every action inside one message: the action vectors are also valid in sequence.
#[test]
fn packet_out_all_actions() {
    let mut bytes = PACKET_OUT_ALL_ACTIONS_HEAD.to_vec();
    for a in [
        ACTION_OUTPUT,
        ACTION_COPY_TTL_OUT,
        ACTION_COPY_TTL_IN,
        ACTION_SET_MPLS_TTL,
        ACTION_DEC_MPLS_TTL,
        ACTION_PUSH_VLAN,
        ACTION_POP_VLAN,
        ACTION_PUSH_MPLS,
        ACTION_POP_MPLS,
        ACTION_SET_QUEUE,
        ACTION_GROUP,
        ACTION_SET_NW_TTL,
        ACTION_DEC_NW_TTL,
        ACTION_SET_FIELD,
        ACTION_PUSH_PBB,
        ACTION_POP_PBB,
        ACTION_EXPERIMENTER,
    ] {
        bytes.extend_from_slice(a);
    }
    let actions = vec![
        output(port::CONTROLLER, 128),
        Action::CopyTtlOut,
        Action::CopyTtlIn,
        Action::SetMplsTtl { mpls_ttl: 64 },
        Action::DecMplsTtl,
        Action::PushVlan { ethertype: 0x88a8 },
        Action::PopVlan,
        Action::PushMpls { ethertype: 0x8847 },
        Action::PopMpls { ethertype: 0x0800 },
        Action::SetQueue { queue_id: 7 },
        Action::Group { group_id: 1 },
        Action::SetNwTtl { nw_ttl: 63 },
        Action::DecNwTtl,
        Action::SetField {
            field: Oxm::Ipv4Src(Ipv4Addr::new(10, 0, 0, 1), None),
        },
        Action::PushPbb { ethertype: 0x88e7 },
        Action::PopPbb,
        Action::Experimenter {
            experimenter: 0x2320,
            data: b(&[0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64]),
        },
    ];
    assert_eq!(
        actions.len(),
        17,
        "16 standard action types and an experimenter action"
    );
    check(
        &bytes,
        msg(
            0x30,
            Body::PacketOut(PacketOut {
                buffer_id: NO_BUFFER,
                in_port: port::CONTROLLER,
                actions: actions.into(),
                data: Bytes::new(),
            }),
        ),
    );
}

// -------------------------------------------------------------------------------------------
// Matches (section 7.2.3), checked through Match::parse

/// `ofp_match` with one OXM of each value type: u32, u64, MAC, u16, u8, IPv4, IPv6 and the
/// 3-byte pbb_isid. 4 + 76 = 80 bytes, already a multiple of 8.
#[rustfmt::skip]
const MATCH_EACH_VALUE_TYPE: &[u8] = &[
    0x00, 0x01,                                     // type OFPMT_OXM
    0x00, 0x50,                                     // length 80
    0x80, 0x00, 0x00, 0x04,                         // OXM in_port (field 0), length 4
    0x00, 0x00, 0x00, 0x01,                         // u32: in_port 1
    0x80, 0x00, 0x04, 0x08,                         // OXM metadata (field 2), length 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // u64: metadata 42
    0x80, 0x00, 0x08, 0x06,                         // OXM eth_src (field 4), length 6
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56,             // MAC: eth_src 52:54:00:12:34:56
    0x80, 0x00, 0x0a, 0x02,                         // OXM eth_type (field 5), length 2
    0x86, 0xdd,                                     // u16: eth_type 0x86dd
    0x80, 0x00, 0x14, 0x01,                         // OXM ip_proto (field 10), length 1
    0x3a,                                           // u8: ip_proto 58 (ICMPv6)
    0x80, 0x00, 0x16, 0x04,                         // OXM ipv4_src (field 11), length 4
    0x0a, 0x00, 0x00, 0x01,                         // IPv4: ipv4_src 10.0.0.1
    0x80, 0x00, 0x36, 0x10,                         // OXM ipv6_dst (field 27), length 16
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // IPv6: ipv6_dst fe80::1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x80, 0x00, 0x4a, 0x03,                         // OXM pbb_isid (field 37), length 3
    0x01, 0x02, 0x03,                               // u24: pbb_isid 0x010203
];

#[test]
fn match_each_value_type() {
    check_match(
        MATCH_EACH_VALUE_TYPE,
        Match::new(vec![
            Oxm::InPort(1, None),
            Oxm::Metadata(42, None),
            Oxm::EthSrc(VM_MAC, None),
            Oxm::EthType(0x86dd, None),
            Oxm::IpProto(58, None),
            Oxm::Ipv4Src(Ipv4Addr::new(10, 0, 0, 1), None),
            Oxm::Ipv6Dst(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), None),
            Oxm::PbbIsid(U24(0x01_0203), None),
        ]),
    );
}

/// `ofp_match` with a masked OXM of each maskable value type (HASMASK set, length doubled):
/// 4 + 114 = 118 bytes, padded to 120.
#[rustfmt::skip]
const MATCH_MASKED: &[u8] = &[
    0x00, 0x01,                                     // type OFPMT_OXM
    0x00, 0x76,                                     // length 118 (excludes padding)
    0x80, 0x00, 0x05, 0x10,                         // OXM metadata (field 2), HASMASK, length 16
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // u64 value 0x100
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, // u64 mask 0xff00
    0x80, 0x00, 0x07, 0x0c,                         // OXM eth_dst (field 3), HASMASK, length 12
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x00,             // MAC value 01:00:5e:00:00:00
    0xff, 0xff, 0xff, 0x80, 0x00, 0x00,             // MAC mask ff:ff:ff:80:00:00
    0x80, 0x00, 0x0d, 0x04,                         // OXM vlan_vid (field 6), HASMASK, length 4
    0x10, 0x00,                                     // u16 value OFPVID_PRESENT
    0x10, 0x00,                                     // u16 mask OFPVID_PRESENT (any tagged frame)
    0x80, 0x00, 0x19, 0x08,                         // OXM ipv4_dst (field 12), HASMASK, length 8
    0xc0, 0xa8, 0x0a, 0x00,                         // IPv4 value 192.168.10.0
    0xff, 0xff, 0xff, 0x00,                         // IPv4 mask 255.255.255.0
    0x80, 0x00, 0x35, 0x20,                         // OXM ipv6_src (field 26), HASMASK, length 32
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // IPv6 value 2001:db8::
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, // IPv6 mask ffff:ffff::
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x00, 0x39, 0x08,                         // OXM ipv6_flabel (field 28), HASMASK, length 8
    0x00, 0x01, 0x23, 0x45,                         // u32 value 0x12345
    0x00, 0x0f, 0xff, 0xff,                         // u32 mask 0xfffff
    0x80, 0x00, 0x4b, 0x06,                         // OXM pbb_isid (field 37), HASMASK, length 6
    0x00, 0x12, 0x00,                               // u24 value 0x001200
    0xff, 0xff, 0x00,                               // u24 mask 0xffff00
    0x00, 0x00,                                     // padding to 120
];

#[test]
fn match_masked() {
    check_match(
        MATCH_MASKED,
        Match::new(vec![
            Oxm::Metadata(0x100, Some(0xff00)),
            Oxm::EthDst(
                MacAddr([1, 0, 0x5e, 0, 0, 0]),
                Some(MacAddr([0xff, 0xff, 0xff, 0x80, 0, 0])),
            ),
            Oxm::VlanVid(0x1000, Some(0x1000)),
            Oxm::Ipv4Dst(
                Ipv4Addr::new(192, 168, 10, 0),
                Some(Ipv4Addr::new(255, 255, 255, 0)),
            ),
            Oxm::Ipv6Src(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
                Some(Ipv6Addr::new(0xffff, 0xffff, 0, 0, 0, 0, 0, 0)),
            ),
            Oxm::Ipv6Flabel(0x12345, Some(0xfffff)),
            Oxm::PbbIsid(U24(0x1200), Some(U24(0xff_ff00))),
        ]),
    );
}
