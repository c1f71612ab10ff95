#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Property tests of the `ofp13` codec: wire and JSON round trips of generated messages,
//! truncation, corruption and arbitrary input (never a panic), and stream framing.
//!
//! # What the generators produce: canonical values only
//!
//! A value is canonical when it is what `Message::parse` returns for some byte string, i.e. it
//! survives `parse(emit(v)) == v`. The codec's contract is that emitting computes every length
//! and padding, so some values a caller *can* build are not canonical and are never generated:
//!
//! - fixed-size strings (`Port.name` 16, `TableFeatures.name` 32, `Desc` 256/32 bytes) must be
//!   at most `size - 1` bytes of UTF-8 and contain no NUL: longer ones are cut on emit, and a
//!   NUL ends the string on parse;
//! - `Action::Experimenter` data must be a multiple of 8 bytes and `Action::Unknown` data 4 more
//!   than a multiple of 8 (so the action is a multiple of 8 long); otherwise emit pads it and it
//!   does not come back as built;
//! - `Action::Unknown`, `Instruction::Unknown`, `HelloElem::Unknown`, `MeterBandKind::Unknown`,
//!   `QueueProp::Unknown`, `MultipartRequestBody::Unknown`, `MultipartReplyBody::Unknown` and
//!   `Body::Unknown` must carry a type number this codec does not know (else the bytes parse as
//!   the known type);
//! - `MeterBandKind::Unknown` data must be at least 4 bytes (a band is at least 16 bytes long);
//! - `Oxm::Raw`: `field` at most 0x7f (7 bits on the wire), payload at most 255 bytes (8-bit
//!   length); and with class `OFPXMC_OPENFLOW_BASIC` (0x8000), a known field number must come with
//!   a payload length that does not fit the field's type (else it parses back typed);
//! - typed `Oxm::PbbIsid` values and masks are below 2^24 (3 bytes on the wire);
//! - `OxmId.experimenter` is `Some` exactly when the header's class is `OFPXMC_EXPERIMENTER`;
//! - `TableFeatureProp.body` must be the shape its `prop_type` implies (`Unknown` only for a type
//!   with no known shape);
//! - `ErrorMsg.experimenter` is `Some` exactly when `err_type` is `OFPET_EXPERIMENTER` (0xffff);
//! - a whole message must fit the 16-bit length (the generators stay far below 65,535 bytes);
//!   no unit length may exceed 65,535 either (emit saturates it).
//!
//! Sizes are kept small so that every case is fast in a debug build.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use ofp13::message::OFPT_METER_MOD;
use ofp13::oxm::U24;
use ofp13::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;

// ---------------------------------------------------------------------------------------------
// Small pieces

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> + Clone {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// Bytes whose length is `8k + rem` for some `k <= max_k`.
fn bytes_8k_plus(rem: usize, max_k: usize) -> impl Strategy<Value = Bytes> + Clone {
    (0..=max_k).prop_flat_map(move |k| vec(any::<u8>(), 8 * k + rem).prop_map(Bytes::from))
}

/// A string that fits a NUL-padded field of `size` bytes: at most `size - 1` bytes, no NUL.
fn fixed_string(size: usize) -> impl Strategy<Value = String> + Clone {
    let max = size - 1;
    vec(any::<char>(), 0..=max).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            let c = if c == '\0' { '.' } else { c };
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    })
}

/// Any u16 not in `known`.
fn u16_except(known: &'static [u16]) -> impl Strategy<Value = u16> + Clone {
    any::<u16>().prop_filter("a known type number", move |t| !known.contains(t))
}

fn mac() -> impl Strategy<Value = MacAddr> + Clone {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn union<T: std::fmt::Debug + 'static>(v: Vec<BoxedStrategy<T>>) -> BoxedStrategy<T> {
    Union::new(v).boxed()
}

// ---------------------------------------------------------------------------------------------
// OXM and match

/// A typed basic OXM of field `f`, with or without mask. The match is exhaustive, so a field
/// added to `OxmField` without a strategy here does not compile.
fn typed_oxm(f: OxmField) -> BoxedStrategy<Oxm> {
    use OxmField as F;
    macro_rules! t {
        ($var:ident, $s:expr) => {
            ($s, option::of($s))
                .prop_map(|(v, m)| Oxm::$var(v, m))
                .boxed()
        };
    }
    let v4 = || any::<u32>().prop_map(Ipv4Addr::from);
    let v6 = || any::<u128>().prop_map(Ipv6Addr::from);
    let u24 = || (0u32..1 << 24).prop_map(U24);
    match f {
        F::InPort => t!(InPort, any::<u32>()),
        F::InPhyPort => t!(InPhyPort, any::<u32>()),
        F::Metadata => t!(Metadata, any::<u64>()),
        F::EthDst => t!(EthDst, mac()),
        F::EthSrc => t!(EthSrc, mac()),
        F::EthType => t!(EthType, any::<u16>()),
        F::VlanVid => t!(VlanVid, any::<u16>()),
        F::VlanPcp => t!(VlanPcp, any::<u8>()),
        F::IpDscp => t!(IpDscp, any::<u8>()),
        F::IpEcn => t!(IpEcn, any::<u8>()),
        F::IpProto => t!(IpProto, any::<u8>()),
        F::Ipv4Src => t!(Ipv4Src, v4()),
        F::Ipv4Dst => t!(Ipv4Dst, v4()),
        F::TcpSrc => t!(TcpSrc, any::<u16>()),
        F::TcpDst => t!(TcpDst, any::<u16>()),
        F::UdpSrc => t!(UdpSrc, any::<u16>()),
        F::UdpDst => t!(UdpDst, any::<u16>()),
        F::SctpSrc => t!(SctpSrc, any::<u16>()),
        F::SctpDst => t!(SctpDst, any::<u16>()),
        F::Icmpv4Type => t!(Icmpv4Type, any::<u8>()),
        F::Icmpv4Code => t!(Icmpv4Code, any::<u8>()),
        F::ArpOp => t!(ArpOp, any::<u16>()),
        F::ArpSpa => t!(ArpSpa, v4()),
        F::ArpTpa => t!(ArpTpa, v4()),
        F::ArpSha => t!(ArpSha, mac()),
        F::ArpTha => t!(ArpTha, mac()),
        F::Ipv6Src => t!(Ipv6Src, v6()),
        F::Ipv6Dst => t!(Ipv6Dst, v6()),
        F::Ipv6Flabel => t!(Ipv6Flabel, any::<u32>()),
        F::Icmpv6Type => t!(Icmpv6Type, any::<u8>()),
        F::Icmpv6Code => t!(Icmpv6Code, any::<u8>()),
        F::Ipv6NdTarget => t!(Ipv6NdTarget, v6()),
        F::Ipv6NdSll => t!(Ipv6NdSll, mac()),
        F::Ipv6NdTll => t!(Ipv6NdTll, mac()),
        F::MplsLabel => t!(MplsLabel, any::<u32>()),
        F::MplsTc => t!(MplsTc, any::<u8>()),
        F::MplsBos => t!(MplsBos, any::<u8>()),
        F::PbbIsid => t!(PbbIsid, u24()),
        F::TunnelId => t!(TunnelId, any::<u64>()),
        F::Ipv6Exthdr => t!(Ipv6Exthdr, any::<u16>()),
    }
}

fn raw_oxm() -> BoxedStrategy<Oxm> {
    let raw = |class, field, hasmask, payload| {
        Oxm::Raw(RawOxm {
            class,
            field,
            hasmask,
            payload,
        })
    };
    union(vec![
        // Another class (NXM, experimenter, anything).
        (
            any::<u16>().prop_filter("basic", |c| *c != oxm::OFPXMC_OPENFLOW_BASIC),
            0u8..=0x7f,
            any::<bool>(),
            bytes_up_to(24),
        )
            .prop_map(move |(c, f, m, p)| raw(c, f, m, p))
            .boxed(),
        // A basic field number this codec does not know.
        (
            (OxmField::ALL.len() as u8)..=0x7f,
            any::<bool>(),
            bytes_up_to(24),
        )
            .prop_map(move |(f, m, p)| raw(oxm::OFPXMC_OPENFLOW_BASIC, f, m, p))
            .boxed(),
        // A known basic field whose length does not fit its type.
        (
            prop::sample::select(OxmField::ALL),
            any::<bool>(),
            bytes_up_to(40),
        )
            .prop_filter("length fits the type", |(f, m, p)| {
                p.len() != f.value_len() * if *m { 2 } else { 1 }
            })
            .prop_map(move |(f, m, p)| raw(oxm::OFPXMC_OPENFLOW_BASIC, f.number(), m, p))
            .boxed(),
        // The longest payload the 8-bit length allows.
        (any::<u16>(), any::<bool>(), vec(any::<u8>(), 255))
            .prop_filter("basic", |(c, _, _)| *c != oxm::OFPXMC_OPENFLOW_BASIC)
            .prop_map(move |(c, m, p)| raw(c, 1, m, Bytes::from(p)))
            .boxed(),
    ])
}

fn any_oxm() -> BoxedStrategy<Oxm> {
    let mut v: Vec<BoxedStrategy<Oxm>> = OxmField::ALL.iter().map(|f| typed_oxm(*f)).collect();
    // Raw ones about as often as a handful of typed fields.
    for _ in 0..6 {
        v.push(raw_oxm());
    }
    union(v)
}

fn match_() -> impl Strategy<Value = Match> + Clone {
    vec(any_oxm(), 0..6).prop_map(Match::new)
}

// ---------------------------------------------------------------------------------------------
// Actions and instructions

const KNOWN_ACTIONS: &[u16] = &[
    0, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 0xffff,
];

fn action() -> BoxedStrategy<Action> {
    union(vec![
        (any::<u32>(), any::<u16>())
            .prop_map(|(port, max_len)| Action::Output { port, max_len })
            .boxed(),
        Just(Action::CopyTtlOut).boxed(),
        Just(Action::CopyTtlIn).boxed(),
        any::<u8>()
            .prop_map(|mpls_ttl| Action::SetMplsTtl { mpls_ttl })
            .boxed(),
        Just(Action::DecMplsTtl).boxed(),
        any::<u16>()
            .prop_map(|ethertype| Action::PushVlan { ethertype })
            .boxed(),
        Just(Action::PopVlan).boxed(),
        any::<u16>()
            .prop_map(|ethertype| Action::PushMpls { ethertype })
            .boxed(),
        any::<u16>()
            .prop_map(|ethertype| Action::PopMpls { ethertype })
            .boxed(),
        any::<u32>()
            .prop_map(|queue_id| Action::SetQueue { queue_id })
            .boxed(),
        any::<u32>()
            .prop_map(|group_id| Action::Group { group_id })
            .boxed(),
        any::<u8>()
            .prop_map(|nw_ttl| Action::SetNwTtl { nw_ttl })
            .boxed(),
        Just(Action::DecNwTtl).boxed(),
        any_oxm()
            .prop_map(|field| Action::SetField { field })
            .boxed(),
        any::<u16>()
            .prop_map(|ethertype| Action::PushPbb { ethertype })
            .boxed(),
        Just(Action::PopPbb).boxed(),
        (any::<u32>(), bytes_8k_plus(0, 3))
            .prop_map(|(experimenter, data)| Action::Experimenter { experimenter, data })
            .boxed(),
        (u16_except(KNOWN_ACTIONS), bytes_8k_plus(4, 3))
            .prop_map(|(action_type, data)| Action::Unknown { action_type, data })
            .boxed(),
    ])
}

fn actions() -> impl Strategy<Value = Vec<Action>> + Clone {
    vec(action(), 0..4)
}

const KNOWN_INSTRUCTIONS: &[u16] = &[1, 2, 3, 4, 5, 6, 0xffff];

fn instruction() -> BoxedStrategy<Instruction> {
    union(vec![
        any::<u8>()
            .prop_map(|table_id| Instruction::GotoTable { table_id })
            .boxed(),
        (any::<u64>(), any::<u64>())
            .prop_map(|(metadata, metadata_mask)| Instruction::WriteMetadata {
                metadata,
                metadata_mask,
            })
            .boxed(),
        actions()
            .prop_map(|actions| Instruction::WriteActions { actions })
            .boxed(),
        actions()
            .prop_map(|actions| Instruction::ApplyActions { actions })
            .boxed(),
        Just(Instruction::ClearActions).boxed(),
        any::<u32>()
            .prop_map(|meter_id| Instruction::Meter { meter_id })
            .boxed(),
        (any::<u32>(), bytes_up_to(20))
            .prop_map(|(experimenter, data)| Instruction::Experimenter { experimenter, data })
            .boxed(),
        (u16_except(KNOWN_INSTRUCTIONS), bytes_up_to(20))
            .prop_map(|(instruction_type, data)| Instruction::Unknown {
                instruction_type,
                data,
            })
            .boxed(),
    ])
}

fn instructions() -> impl Strategy<Value = Vec<Instruction>> + Clone {
    vec(instruction(), 0..4)
}

// ---------------------------------------------------------------------------------------------
// Elements of message bodies

fn hello_elem() -> BoxedStrategy<HelloElem> {
    union(vec![
        vec(any::<u32>(), 0..4)
            .prop_map(|bitmaps| HelloElem::VersionBitmap { bitmaps })
            .boxed(),
        (u16_except(&[OFPHET_VERSIONBITMAP]), bytes_up_to(20))
            .prop_map(|(elem_type, data)| HelloElem::Unknown { elem_type, data })
            .boxed(),
    ])
}

fn error_msg() -> BoxedStrategy<ErrorMsg> {
    union(vec![
        (0..OFPET_EXPERIMENTER, any::<u16>(), bytes_up_to(80))
            .prop_map(|(t, c, d)| ErrorMsg::new(t, c, d))
            .boxed(),
        (any::<u16>(), any::<u32>(), bytes_up_to(80))
            .prop_map(|(code, e, data)| ErrorMsg {
                err_type: OFPET_EXPERIMENTER,
                code,
                experimenter: Some(e),
                data,
            })
            .boxed(),
    ])
}

fn port() -> impl Strategy<Value = Port> + Clone {
    (any::<u32>(), mac(), fixed_string(16), any::<[u32; 8]>()).prop_map(
        |(port_no, hw_addr, name, v)| {
            let [config, state, curr, advertised, supported, peer, curr_speed, max_speed] = v;
            Port {
                port_no,
                hw_addr,
                name,
                config,
                state,
                curr,
                advertised,
                supported,
                peer,
                curr_speed,
                max_speed,
            }
        },
    )
}

fn bucket() -> impl Strategy<Value = Bucket> + Clone {
    (any::<u16>(), any::<u32>(), any::<u32>(), actions()).prop_map(
        |(weight, watch_port, watch_group, actions)| Bucket {
            weight,
            watch_port,
            watch_group,
            actions,
        },
    )
}

fn buckets() -> impl Strategy<Value = Vec<Bucket>> + Clone {
    vec(bucket(), 0..3)
}

fn meter_band() -> impl Strategy<Value = MeterBand> + Clone {
    let kind = union(vec![
        Just(MeterBandKind::Drop).boxed(),
        any::<u8>()
            .prop_map(|prec_level| MeterBandKind::DscpRemark { prec_level })
            .boxed(),
        (any::<u32>(), bytes_up_to(16))
            .prop_map(|(experimenter, data)| MeterBandKind::Experimenter { experimenter, data })
            .boxed(),
        (
            u16_except(&[OFPMBT_DROP, OFPMBT_DSCP_REMARK, OFPMBT_EXPERIMENTER]),
            vec(any::<u8>(), 4..=16),
        )
            .prop_map(|(band_type, data)| MeterBandKind::Unknown {
                band_type,
                data: Bytes::from(data),
            })
            .boxed(),
    ]);
    (any::<u32>(), any::<u32>(), kind).prop_map(|(rate, burst_size, kind)| MeterBand {
        rate,
        burst_size,
        kind,
    })
}

fn bands() -> impl Strategy<Value = Vec<MeterBand>> + Clone {
    vec(meter_band(), 0..3)
}

fn queue_prop() -> BoxedStrategy<QueueProp> {
    union(vec![
        any::<u16>()
            .prop_map(|rate| QueueProp::MinRate { rate })
            .boxed(),
        any::<u16>()
            .prop_map(|rate| QueueProp::MaxRate { rate })
            .boxed(),
        (any::<u32>(), bytes_up_to(16))
            .prop_map(|(experimenter, data)| QueueProp::Experimenter { experimenter, data })
            .boxed(),
        (
            u16_except(&[OFPQT_MIN_RATE, OFPQT_MAX_RATE, OFPQT_EXPERIMENTER]),
            bytes_up_to(16),
        )
            .prop_map(|(property, data)| QueueProp::Unknown { property, data })
            .boxed(),
    ])
}

fn packet_queue() -> impl Strategy<Value = PacketQueue> + Clone {
    (any::<u32>(), any::<u32>(), vec(queue_prop(), 0..3)).prop_map(
        |(queue_id, port, properties)| PacketQueue {
            queue_id,
            port,
            properties,
        },
    )
}

fn type_id() -> impl Strategy<Value = TypeId> + Clone {
    (any::<u16>(), bytes_up_to(8)).prop_map(|(ty, data)| TypeId { ty, data })
}

fn oxm_id() -> BoxedStrategy<OxmId> {
    union(vec![
        any::<u32>()
            .prop_filter("experimenter class", |h| {
                (h >> 16) as u16 != oxm::OFPXMC_EXPERIMENTER
            })
            .prop_map(|header| OxmId {
                header,
                experimenter: None,
            })
            .boxed(),
        (any::<u16>(), any::<u32>())
            .prop_map(|(low, e)| OxmId {
                header: (oxm::OFPXMC_EXPERIMENTER as u32) << 16 | low as u32,
                experimenter: Some(e),
            })
            .boxed(),
    ])
}

const KNOWN_TFPT: &[u16] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 14, 15, 0xfffe, 0xffff,
];

fn table_feature_prop() -> BoxedStrategy<TableFeatureProp> {
    use TableFeaturePropBody as B;
    let prop = |prop_type, body| TableFeatureProp { prop_type, body };
    union(vec![
        (
            prop::sample::select(&[OFPTFPT_INSTRUCTIONS, OFPTFPT_INSTRUCTIONS_MISS][..]),
            vec(type_id(), 0..3),
        )
            .prop_map(move |(t, v)| prop(t, B::Instructions(v)))
            .boxed(),
        (
            prop::sample::select(&[OFPTFPT_NEXT_TABLES, OFPTFPT_NEXT_TABLES_MISS][..]),
            vec(any::<u8>(), 0..10),
        )
            .prop_map(move |(t, v)| prop(t, B::NextTables(v)))
            .boxed(),
        (
            prop::sample::select(
                &[
                    OFPTFPT_WRITE_ACTIONS,
                    OFPTFPT_WRITE_ACTIONS_MISS,
                    OFPTFPT_APPLY_ACTIONS,
                    OFPTFPT_APPLY_ACTIONS_MISS,
                ][..],
            ),
            vec(type_id(), 0..3),
        )
            .prop_map(move |(t, v)| prop(t, B::Actions(v)))
            .boxed(),
        (
            prop::sample::select(
                &[
                    OFPTFPT_MATCH,
                    OFPTFPT_WILDCARDS,
                    OFPTFPT_WRITE_SETFIELD,
                    OFPTFPT_WRITE_SETFIELD_MISS,
                    OFPTFPT_APPLY_SETFIELD,
                    OFPTFPT_APPLY_SETFIELD_MISS,
                ][..],
            ),
            vec(oxm_id(), 0..4),
        )
            .prop_map(move |(t, v)| prop(t, B::Oxm(v)))
            .boxed(),
        (
            prop::sample::select(&[OFPTFPT_EXPERIMENTER, OFPTFPT_EXPERIMENTER_MISS][..]),
            any::<u32>(),
            any::<u32>(),
            vec(any::<u32>(), 0..4),
        )
            .prop_map(move |(t, experimenter, exp_type, data)| {
                prop(
                    t,
                    B::Experimenter {
                        experimenter,
                        exp_type,
                        data,
                    },
                )
            })
            .boxed(),
        (u16_except(KNOWN_TFPT), bytes_up_to(20))
            .prop_map(move |(t, b)| prop(t, B::Unknown(b)))
            .boxed(),
    ])
}

fn table_features() -> impl Strategy<Value = TableFeatures> + Clone {
    (
        any::<u8>(),
        fixed_string(32),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        vec(table_feature_prop(), 0..4),
    )
        .prop_map(
            |(table_id, name, metadata_match, metadata_write, config, max_entries, properties)| {
                TableFeatures {
                    table_id,
                    name,
                    metadata_match,
                    metadata_write,
                    config,
                    max_entries,
                    properties,
                }
            },
        )
}

fn flow_stats_request() -> impl Strategy<Value = FlowStatsRequest> + Clone {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        match_(),
    )
        .prop_map(
            |(table_id, out_port, out_group, cookie, cookie_mask, match_)| FlowStatsRequest {
                table_id,
                out_port,
                out_group,
                cookie,
                cookie_mask,
                match_,
            },
        )
}

fn experimenter_multipart() -> impl Strategy<Value = ExperimenterMultipart> + Clone {
    (any::<u32>(), any::<u32>(), bytes_up_to(32)).prop_map(|(experimenter, exp_type, data)| {
        ExperimenterMultipart {
            experimenter,
            exp_type,
            data,
        }
    })
}

const KNOWN_MP: &[u16] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0xffff];

fn multipart_request() -> BoxedStrategy<MultipartRequest> {
    use MultipartRequestBody as B;
    let body = union(vec![
        Just(B::Desc).boxed(),
        flow_stats_request().prop_map(B::Flow).boxed(),
        flow_stats_request().prop_map(B::Aggregate).boxed(),
        Just(B::Table).boxed(),
        any::<u32>()
            .prop_map(|port_no| B::PortStats { port_no })
            .boxed(),
        (any::<u32>(), any::<u32>())
            .prop_map(|(port_no, queue_id)| B::Queue { port_no, queue_id })
            .boxed(),
        any::<u32>()
            .prop_map(|group_id| B::Group { group_id })
            .boxed(),
        Just(B::GroupDesc).boxed(),
        Just(B::GroupFeatures).boxed(),
        any::<u32>()
            .prop_map(|meter_id| B::Meter { meter_id })
            .boxed(),
        any::<u32>()
            .prop_map(|meter_id| B::MeterConfig { meter_id })
            .boxed(),
        Just(B::MeterFeatures).boxed(),
        vec(table_features(), 0..3)
            .prop_map(B::TableFeatures)
            .boxed(),
        Just(B::PortDesc).boxed(),
        experimenter_multipart().prop_map(B::Experimenter).boxed(),
        (u16_except(KNOWN_MP), bytes_up_to(32))
            .prop_map(|(mp_type, data)| B::Unknown { mp_type, data })
            .boxed(),
    ]);
    (any::<u16>(), body)
        .prop_map(|(flags, body)| MultipartRequest { flags, body })
        .boxed()
}

fn flow_stats() -> impl Strategy<Value = FlowStats> + Clone {
    (
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<[u16; 4]>(),
            any::<[u64; 3]>(),
        ),
        match_(),
        instructions(),
    )
        .prop_map(
            |((table_id, duration_sec, duration_nsec, s, c), match_, instructions)| {
                let [priority, idle_timeout, hard_timeout, flags] = s;
                let [cookie, packet_count, byte_count] = c;
                FlowStats {
                    table_id,
                    duration_sec,
                    duration_nsec,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                    cookie,
                    packet_count,
                    byte_count,
                    match_,
                    instructions,
                }
            },
        )
}

fn port_stats() -> impl Strategy<Value = PortStats> + Clone {
    (any::<u32>(), any::<[u64; 12]>(), any::<u32>(), any::<u32>()).prop_map(
        |(port_no, c, duration_sec, duration_nsec)| {
            let [rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors, tx_errors, rx_frame_err, rx_over_err, rx_crc_err, collisions] =
                c;
            PortStats {
                port_no,
                rx_packets,
                tx_packets,
                rx_bytes,
                tx_bytes,
                rx_dropped,
                tx_dropped,
                rx_errors,
                tx_errors,
                rx_frame_err,
                rx_over_err,
                rx_crc_err,
                collisions,
                duration_sec,
                duration_nsec,
            }
        },
    )
}

fn counter() -> impl Strategy<Value = Counter> + Clone {
    (any::<u64>(), any::<u64>()).prop_map(|(packet_count, byte_count)| Counter {
        packet_count,
        byte_count,
    })
}

fn multipart_reply() -> BoxedStrategy<MultipartReply> {
    use MultipartReplyBody as B;
    let desc = (
        fixed_string(256),
        fixed_string(256),
        fixed_string(256),
        fixed_string(32),
        fixed_string(256),
    )
        .prop_map(|(mfr_desc, hw_desc, sw_desc, serial_num, dp_desc)| Desc {
            mfr_desc,
            hw_desc,
            sw_desc,
            serial_num,
            dp_desc,
        });
    let aggregate = (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
        |(packet_count, byte_count, flow_count)| AggregateStats {
            packet_count,
            byte_count,
            flow_count,
        },
    );
    let table = (any::<u8>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
        |(table_id, active_count, lookup_count, matched_count)| TableStats {
            table_id,
            active_count,
            lookup_count,
            matched_count,
        },
    );
    let queue = (
        any::<u32>(),
        any::<u32>(),
        any::<[u64; 3]>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(
                port_no,
                queue_id,
                [tx_bytes, tx_packets, tx_errors],
                duration_sec,
                duration_nsec,
            )| {
                QueueStats {
                    port_no,
                    queue_id,
                    tx_bytes,
                    tx_packets,
                    tx_errors,
                    duration_sec,
                    duration_nsec,
                }
            },
        );
    let group = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        vec(counter(), 0..3),
    )
        .prop_map(
            |(
                group_id,
                ref_count,
                packet_count,
                byte_count,
                duration_sec,
                duration_nsec,
                bucket_stats,
            )| {
                GroupStats {
                    group_id,
                    ref_count,
                    packet_count,
                    byte_count,
                    duration_sec,
                    duration_nsec,
                    bucket_stats,
                }
            },
        );
    let group_desc =
        (any::<u8>(), any::<u32>(), buckets()).prop_map(|(group_type, group_id, buckets)| {
            GroupDesc {
                group_type,
                group_id,
                buckets,
            }
        });
    let group_features = (
        any::<u32>(),
        any::<u32>(),
        any::<[u32; 4]>(),
        any::<[u32; 4]>(),
    )
        .prop_map(|(types, capabilities, max_groups, actions)| GroupFeatures {
            types,
            capabilities,
            max_groups,
            actions,
        });
    let meter = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        vec(counter(), 0..3),
    )
        .prop_map(
            |(
                meter_id,
                flow_count,
                packet_in_count,
                byte_in_count,
                duration_sec,
                duration_nsec,
                band_stats,
            )| {
                MeterStats {
                    meter_id,
                    flow_count,
                    packet_in_count,
                    byte_in_count,
                    duration_sec,
                    duration_nsec,
                    band_stats,
                }
            },
        );
    let meter_config =
        (any::<u16>(), any::<u32>(), bands()).prop_map(|(flags, meter_id, bands)| MeterConfig {
            flags,
            meter_id,
            bands,
        });
    let meter_features = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(
            |(max_meter, band_types, capabilities, max_bands, max_color)| MeterFeatures {
                max_meter,
                band_types,
                capabilities,
                max_bands,
                max_color,
            },
        );
    let body = union(vec![
        desc.prop_map(|d| B::Desc(Box::new(d))).boxed(),
        vec(flow_stats(), 0..3).prop_map(B::Flow).boxed(),
        aggregate.prop_map(B::Aggregate).boxed(),
        vec(table, 0..4).prop_map(B::Table).boxed(),
        vec(port_stats(), 0..3).prop_map(B::PortStats).boxed(),
        vec(queue, 0..3).prop_map(B::Queue).boxed(),
        vec(group, 0..3).prop_map(B::Group).boxed(),
        vec(group_desc, 0..3).prop_map(B::GroupDesc).boxed(),
        group_features.prop_map(B::GroupFeatures).boxed(),
        vec(meter, 0..3).prop_map(B::Meter).boxed(),
        vec(meter_config, 0..3).prop_map(B::MeterConfig).boxed(),
        meter_features.prop_map(B::MeterFeatures).boxed(),
        vec(table_features(), 0..3)
            .prop_map(B::TableFeatures)
            .boxed(),
        vec(port(), 0..3).prop_map(B::PortDesc).boxed(),
        experimenter_multipart().prop_map(B::Experimenter).boxed(),
        (u16_except(KNOWN_MP), bytes_up_to(32))
            .prop_map(|(mp_type, data)| B::Unknown { mp_type, data })
            .boxed(),
    ]);
    (any::<u16>(), body)
        .prop_map(|(flags, body)| MultipartReply { flags, body })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Messages

fn switch_config() -> impl Strategy<Value = SwitchConfig> + Clone {
    (any::<u16>(), any::<u16>()).prop_map(|(flags, miss_send_len)| SwitchConfig {
        flags,
        miss_send_len,
    })
}

fn role() -> impl Strategy<Value = Role> + Clone {
    (any::<u32>(), any::<u64>()).prop_map(|(role, generation_id)| Role {
        role,
        generation_id,
    })
}

fn async_config() -> impl Strategy<Value = AsyncConfig> + Clone {
    any::<[u32; 6]>().prop_map(|[a, b, c, d, e, f]| AsyncConfig {
        packet_in_mask: [a, b],
        port_status_mask: [c, d],
        flow_removed_mask: [e, f],
    })
}

fn flow_mod() -> impl Strategy<Value = FlowMod> + Clone {
    (
        (
            any::<[u64; 2]>(),
            any::<[u8; 2]>(),
            any::<[u16; 4]>(),
            any::<[u32; 3]>(),
        ),
        match_(),
        instructions(),
    )
        .prop_map(|((c, t, s, p), match_, instructions)| {
            let [cookie, cookie_mask] = c;
            let [table_id, command] = t;
            let [idle_timeout, hard_timeout, priority, flags] = s;
            let [buffer_id, out_port, out_group] = p;
            FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command,
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                match_,
                instructions,
            }
        })
}

fn flow_removed() -> impl Strategy<Value = FlowRemoved> + Clone {
    (
        (any::<u64>(), any::<u16>(), any::<u8>(), any::<u8>()),
        (any::<[u32; 2]>(), any::<[u16; 2]>(), any::<[u64; 2]>()),
        match_(),
    )
        .prop_map(
            |((cookie, priority, reason, table_id), (d, t, c), match_)| {
                let [duration_sec, duration_nsec] = d;
                let [idle_timeout, hard_timeout] = t;
                let [packet_count, byte_count] = c;
                FlowRemoved {
                    cookie,
                    priority,
                    reason,
                    table_id,
                    duration_sec,
                    duration_nsec,
                    idle_timeout,
                    hard_timeout,
                    packet_count,
                    byte_count,
                    match_,
                }
            },
        )
}

fn body() -> BoxedStrategy<Body> {
    // Bodies with nested elements (matches, actions, instructions, multipart items) are
    // weighted up so that each element type turns up often in a few hundred cases.
    Union::new_weighted(vec![
        (
            2,
            vec(hello_elem(), 0..4)
                .prop_map(|elements| Body::Hello(Hello { elements }))
                .boxed(),
        ),
        (1, error_msg().prop_map(Body::Error).boxed()),
        (1, bytes_up_to(64).prop_map(Body::EchoRequest).boxed()),
        (1, bytes_up_to(64).prop_map(Body::EchoReply).boxed()),
        (
            1,
            (any::<u32>(), any::<u32>(), bytes_up_to(64))
                .prop_map(|(experimenter, exp_type, data)| {
                    Body::Experimenter(Experimenter {
                        experimenter,
                        exp_type,
                        data,
                    })
                })
                .boxed(),
        ),
        (1, Just(Body::FeaturesRequest).boxed()),
        (
            1,
            (
                any::<u64>(),
                any::<u32>(),
                any::<[u8; 2]>(),
                any::<[u32; 2]>(),
            )
                .prop_map(
                    |(
                        datapath_id,
                        n_buffers,
                        [n_tables, auxiliary_id],
                        [capabilities, reserved],
                    )| {
                        Body::FeaturesReply(SwitchFeatures {
                            datapath_id,
                            n_buffers,
                            n_tables,
                            auxiliary_id,
                            capabilities,
                            reserved,
                        })
                    },
                )
                .boxed(),
        ),
        (1, Just(Body::GetConfigRequest).boxed()),
        (1, switch_config().prop_map(Body::GetConfigReply).boxed()),
        (1, switch_config().prop_map(Body::SetConfig).boxed()),
        (3, packet_in().prop_map(Body::PacketIn).boxed()),
        (2, flow_removed().prop_map(Body::FlowRemoved).boxed()),
        (
            1,
            (any::<u8>(), port())
                .prop_map(|(reason, desc)| Body::PortStatus(PortStatus { reason, desc }))
                .boxed(),
        ),
        (
            3,
            (any::<u32>(), any::<u32>(), actions(), bytes_up_to(64))
                .prop_map(|(buffer_id, in_port, actions, data)| {
                    Body::PacketOut(PacketOut {
                        buffer_id,
                        in_port,
                        actions: actions.into(),
                        data,
                    })
                })
                .boxed(),
        ),
        (4, flow_mod().prop_map(Body::FlowMod).boxed()),
        (
            3,
            (any::<u16>(), any::<u8>(), any::<u32>(), buckets())
                .prop_map(|(command, group_type, group_id, buckets)| {
                    Body::GroupMod(GroupMod {
                        command,
                        group_type,
                        group_id,
                        buckets,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (any::<u32>(), mac(), any::<[u32; 3]>())
                .prop_map(|(port_no, hw_addr, [config, mask, advertise])| {
                    Body::PortMod(PortMod {
                        port_no,
                        hw_addr,
                        config,
                        mask,
                        advertise,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (any::<u8>(), any::<u32>())
                .prop_map(|(table_id, config)| Body::TableMod(TableMod { table_id, config }))
                .boxed(),
        ),
        (
            8,
            multipart_request().prop_map(Body::MultipartRequest).boxed(),
        ),
        (16, multipart_reply().prop_map(Body::MultipartReply).boxed()),
        (1, Just(Body::BarrierRequest).boxed()),
        (1, Just(Body::BarrierReply).boxed()),
        (
            1,
            any::<u32>()
                .prop_map(|port| Body::QueueGetConfigRequest { port })
                .boxed(),
        ),
        (
            2,
            (any::<u32>(), vec(packet_queue(), 0..3))
                .prop_map(|(port, queues)| {
                    Body::QueueGetConfigReply(QueueGetConfigReply { port, queues })
                })
                .boxed(),
        ),
        (1, role().prop_map(Body::RoleRequest).boxed()),
        (1, role().prop_map(Body::RoleReply).boxed()),
        (1, Just(Body::GetAsyncRequest).boxed()),
        (1, async_config().prop_map(Body::GetAsyncReply).boxed()),
        (1, async_config().prop_map(Body::SetAsync).boxed()),
        (
            2,
            (any::<u16>(), any::<u16>(), any::<u32>(), bands())
                .prop_map(|(command, flags, meter_id, bands)| {
                    Body::MeterMod(MeterMod {
                        command,
                        flags,
                        meter_id,
                        bands,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (OFPT_METER_MOD + 1..=u8::MAX, bytes_up_to(64))
                .prop_map(|(msg_type, data)| Body::Unknown { msg_type, data })
                .boxed(),
        ),
    ])
    .boxed()
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u32>(), body()).prop_map(|(xid, body)| Message::new(xid, body))
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties and the corpus test

/// Every proper prefix of a whole message `b` is incomplete: `parse_slice` fails, and
/// `decode_frame` asks for more without consuming anything.
fn check_raw_prefixes(b: &[u8]) -> Result<(), TestCaseError> {
    for n in 0..b.len() {
        let p = &b[..n];
        prop_assert!(
            Message::parse_slice(p).is_err(),
            "prefix of {} of {} bytes parsed",
            n,
            b.len()
        );
        let mut buf = BytesMut::from(p);
        let got = decode_frame(&mut buf, MAX_MESSAGE_LEN);
        prop_assert_eq!(got, Ok(None), "prefix of {} of {} bytes", n, b.len());
        prop_assert_eq!(&buf[..], p, "decode_frame consumed part of a prefix");
    }
    Ok(())
}

/// Every proper prefix of `b` of at least a header, with the header's length patched to the
/// prefix's, parses without panicking; when it parses, re-emitting does not panic either.
fn check_patched_prefixes(b: &[u8]) {
    for n in HEADER_LEN..b.len() {
        let mut p = b[..n].to_vec();
        p[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        if let Ok(m) = Message::parse_slice(&p) {
            let _ = m.to_bytes();
        }
    }
}

/// Parsing `b` does not panic; when it parses, re-emitting does not either.
fn parse_and_reemit(b: &[u8]) {
    if let Ok(m) = Message::parse_slice(b) {
        let _ = m.to_bytes();
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    // Cheap cases: many of them, so that rare elements (one OXM field among forty, one
    // multipart type among sixteen) each turn up repeatedly.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn wire_round_trip(m in message()) {
        let b = m.to_bytes();
        prop_assert!(b.len() <= MAX_MESSAGE_LEN, "generated message of {} bytes", b.len());
        prop_assert_eq!(Header::peek(&b).map(|h| h.length as usize), Some(b.len()));
        prop_assert_eq!(Message::parse_slice(&b), Ok(m));
    }

    #[test]
    fn json_round_trip(m in message()) {
        let j = serde_json::to_string(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Message = serde_json::from_str(&j)
            .map_err(|e| TestCaseError::fail(format!("{e}: {j}")))?;
        prop_assert_eq!(back, m, "{}", j);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn stream_in_random_chunks(
        msgs in vec(message(), 1..5),
        chunks in vec(prop_oneof![1usize..16, 1usize..256, 1usize..8192], 1..40),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.emit(&mut stream);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            buf.put_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(m) = decode_frame(&mut buf, MAX_MESSAGE_LEN)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
            {
                got.push(m);
            }
        }
        prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
        prop_assert_eq!(got, msgs);
    }
}

proptest! {
    // Each case parses every prefix of a message: quadratic in its length.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn proper_prefixes_are_incomplete(m in message()) {
        let b = m.to_bytes();
        check_raw_prefixes(&b)?;
        let mut buf = BytesMut::from(&b[..]);
        prop_assert_eq!(decode_frame(&mut buf, MAX_MESSAGE_LEN), Ok(Some(m)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn truncated_with_patched_length_never_panics(m in message()) {
        check_patched_prefixes(&m.to_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_frames_never_panic(
        msg_type in 0u8..=35,
        xid in any::<u32>(),
        body in vec(any::<u8>(), 0..256),
    ) {
        let mut b = vec![OFP_VERSION, msg_type];
        b.put_u16((HEADER_LEN + body.len()) as u16);
        b.put_u32(xid);
        b.extend_from_slice(&body);
        parse_and_reemit(&b);
        let mut buf = BytesMut::from(&b[..]);
        if let Ok(Some(m)) = decode_frame(&mut buf, MAX_MESSAGE_LEN) {
            let _ = m.to_bytes();
        }
    }

    #[test]
    fn single_byte_corruption_never_panics(
        m in message(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut b = m.to_bytes();
        let i = at.index(b.len());
        b[i] = byte;
        parse_and_reemit(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic tests

/// The generators reach every message type, multipart type, action, instruction and OXM field
/// (a check that the strategies above cover what they claim to).
#[test]
fn generators_cover_every_variant() {
    let mp_class = |t: u16| if KNOWN_MP.contains(&t) { t } else { 0xfffe };
    let mut runner = TestRunner::deterministic();
    let strat = message();
    let mut msg_types = std::collections::BTreeSet::new();
    let mut req_types = std::collections::BTreeSet::new();
    let mut rep_types = std::collections::BTreeSet::new();
    for _ in 0..1500 {
        let m = strat.new_tree(&mut runner).unwrap().current();
        msg_types.insert(m.body.msg_type().min(OFPT_METER_MOD + 1));
        match &m.body {
            Body::MultipartRequest(r) => {
                req_types.insert(mp_class(r.mp_type()));
            }
            Body::MultipartReply(r) => {
                rep_types.insert(mp_class(r.mp_type()));
            }
            _ => {}
        }
    }
    assert_eq!(msg_types.len(), 31, "{msg_types:?}");
    assert_eq!(req_types.len(), 16, "{req_types:?}");
    assert_eq!(rep_types.len(), 16, "{rep_types:?}");

    let strat = action();
    let mut types = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let a = strat.new_tree(&mut runner).unwrap().current();
        let t = a.action_type();
        types.insert(if KNOWN_ACTIONS.contains(&t) { t } else { 1 });
    }
    assert_eq!(types.len(), KNOWN_ACTIONS.len() + 1, "{types:?}");

    let strat = instruction();
    let mut types = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let i = strat.new_tree(&mut runner).unwrap().current();
        let t = i.instruction_type();
        types.insert(if KNOWN_INSTRUCTIONS.contains(&t) {
            t
        } else {
            0
        });
    }
    assert_eq!(types.len(), KNOWN_INSTRUCTIONS.len() + 1, "{types:?}");

    // Every typed field, with its wire length as the table says.
    for f in OxmField::ALL {
        let strat = typed_oxm(*f);
        for _ in 0..20 {
            let o = strat.new_tree(&mut runner).unwrap().current();
            assert_eq!(o.field(), Some(*f));
            let (_, _, hasmask, len) = oxm::split_header(o.header());
            assert_eq!(len, f.value_len() * if hasmask { 2 } else { 1 }, "{o:?}");
        }
    }
}

/// Both truncation checks on every message of the shared conformance corpus.
#[test]
fn corpus_prefixes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/of13");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("conformance corpus {} is missing in CI", dir.display());
        }
        println!("skipping: conformance corpus {} is absent", dir.display());
        return;
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for f in files {
        let b = std::fs::read(&f).unwrap();
        if let Err(e) = check_raw_prefixes(&b) {
            panic!("{}: {e}", f.display());
        }
        check_patched_prefixes(&b);
    }
}

proptest! {
    /// A PACKET_OUT held inline is on the wire what the equal heap `PacketOut` is, and
    /// decodes back to it; a frame longer than the inline room is refused.
    #[test]
    fn an_inline_packet_out_is_the_packet_out_it_stands_for(
        xid in any::<u32>(),
        in_port in any::<u32>(),
        out_port in any::<u32>(),
        frame in vec(any::<u8>(), 0..=70),
    ) {
        let Some(inline) = InlinePacketOut::new(in_port, out_port, &frame) else {
            prop_assert!(frame.len() > InlinePacketOut::MAX_FRAME);
            return Ok(());
        };
        prop_assert_eq!(inline.frame(), &frame[..]);
        let heap = Message::new(xid, Body::PacketOut(inline.to_packet_out()));
        let mut wire = vec![0xee]; // appended after what the buffer holds
        inline.emit(xid, &mut wire);
        prop_assert_eq!(&wire[1..], &heap.to_bytes()[..]);
        prop_assert_eq!(Message::parse_slice(&wire[1..]).unwrap(), heap);
    }
}

fn packet_in() -> impl Strategy<Value = PacketIn> + Clone {
    (
        any::<u32>(),
        any::<u16>(),
        any::<[u8; 2]>(),
        any::<u64>(),
        match_(),
        bytes_up_to(64),
    )
        .prop_map(
            |(buffer_id, total_len, [reason, table_id], cookie, match_, data)| PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id,
                cookie,
                match_,
                data,
            },
        )
}

proptest! {
    /// A packet-in read in place is the view of the same message parsed: every field, the
    /// packet, and the match's first in_port (whatever else the match holds).
    #[test]
    fn a_packet_in_read_in_place_is_the_parsed_one(xid in any::<u32>(), pi in packet_in()) {
        let wire = Message::new(xid, Body::PacketIn(pi.clone())).to_bytes();
        prop_assert_eq!(PacketInView::parse(&wire), Some(pi.view()));
    }

    /// Whatever bytes it reads, the in-place reader is never more lenient than the general
    /// parser: when it gives a view, `Message::parse` gives a packet-in with that view.
    /// The bytes are packet-ins with some bytes changed, and cut or extended (half the time
    /// with the header's length made right after).
    #[test]
    fn the_in_place_reader_accepts_nothing_the_parser_refuses(
        pi in packet_in(),
        changes in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in 0usize..40,
        extra in vec(any::<u8>(), 0..3),
        fix_length in any::<bool>(),
    ) {
        let mut wire = Message::new(7, Body::PacketIn(pi)).to_bytes();
        for (at, b) in changes {
            let i = at.index(wire.len());
            wire[i] = b;
        }
        wire.truncate(wire.len().saturating_sub(cut));
        wire.extend_from_slice(&extra);
        if fix_length && wire.len() >= 4 && wire.len() <= 0xffff {
            // The header's length made right again, so the changes inside are what counts.
            let len = (wire.len() as u16).to_be_bytes();
            wire[2..4].copy_from_slice(&len);
        }
        if let Some(view) = PacketInView::parse(&wire) {
            let parsed = Message::parse_slice(&wire);
            prop_assert!(matches!(parsed, Ok(Message { body: Body::PacketIn(_), .. })), "{:?}", parsed);
            if let Ok(Message { body: Body::PacketIn(p), .. }) = parsed {
                prop_assert_eq!(view, p.view());
            }
        }
    }
}
