//! Conformance against an independent decoder: the 64 OpenFlow 1.3 messages of Ryu's test data
//! (`shared/conformance/of13/*.packet`) and the field values Ryu read from each
//! (`shared/conformance/of13-json/*.packet.json`, Ryu's `to_jsondict` form).
//!
//! For every file: decode with our codec and re-encode byte for byte; then render our decoded
//! message in Ryu's JSON shape (the adapter below, which takes every value, length included,
//! from our decoded structures and our emitter, never from the expected JSON) and compare it
//! with Ryu's, naming the first field that differs. All failures are collected and reported
//! together.
//!
//! The corpus lives outside the crate; without it the test skips with a message, except under
//! `CI=true`, where its absence is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{json, Map, Number, Value};

use ofp13::oxm::raw_name;
use ofp13::wire::Reader;
use ofp13::{
    Action, Body, Bucket, Desc, ExperimenterMultipart, FlowStats, GroupDesc, GroupStats, Hello,
    HelloElem, Instruction, Match, Message, MeterBand, MeterBandKind, MeterConfig, MeterStats,
    MultipartReply, MultipartReplyBody, MultipartRequest, MultipartRequestBody, Oxm, OxmId,
    PacketQueue, Port, QueueProp, RawOxm, TableFeatureProp, TableFeaturePropBody, TableFeatures,
    TypeId,
};

/// Nicira's experimenter id: Ryu decodes its actions as `NXActionUnknown` (subtype + data).
const NX_EXPERIMENTER: u32 = 0x0000_2320;
/// ONF's experimenter id and the exp_type of its flow monitor request (ONF EXT-187 for 1.3).
const ONF_EXPERIMENTER: u32 = 0x4f4e_4600;
const ONF_FLOW_MONITOR: u32 = 1870;

// ---------------------------------------------------------------------------------------------
// The test

#[test]
fn ryu_conformance_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    let packets = root.join("of13");
    if !packets.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "conformance corpus missing at {} (required when CI=true)",
                packets.display()
            );
        }
        eprintln!(
            "SKIPPED ryu_conformance_corpus: no conformance corpus at {}",
            packets.display()
        );
        return;
    }

    let mut files: Vec<PathBuf> = fs::read_dir(&packets)
        .expect("read of13/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "packet"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.packet files in {}",
        packets.display()
    );

    let mut failures = Vec::new();
    // Every expected-JSON file must have its packet (a lone JSON would otherwise go unchecked).
    for e in fs::read_dir(root.join("of13-json")).expect("read of13-json/") {
        let p = e.expect("dir entry").path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(packet) = name.strip_suffix(".json") {
            if !packets.join(packet).is_file() {
                failures.push(format!("{name}: no packet {packet} for this JSON file"));
            }
        }
    }
    let mut passed = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match check_file(&root, path, &name) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!("ryu conformance: {passed}/{} files pass", files.len());
    assert!(
        failures.is_empty(),
        "{} conformance failures ({passed} of {} packet files pass):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn check_file(root: &Path, path: &Path, name: &str) -> Result<(), String> {
    let input = fs::read(path).map_err(|e| format!("read: {e}"))?;
    let msg = Message::parse_slice(&input).map_err(|e| format!("parse error: {e}"))?;

    let out = msg.to_bytes();
    if out != input {
        let at = out
            .iter()
            .zip(&input)
            .position(|(a, b)| a != b)
            .unwrap_or(out.len().min(input.len()));
        return Err(format!(
            "re-encoding differs at offset {at} (input {} bytes, output {} bytes; input byte {}, output byte {})",
            input.len(),
            out.len(),
            input.get(at).map_or("none".into(), |b| format!("{b:#04x}")),
            out.get(at).map_or("none".into(), |b| format!("{b:#04x}")),
        ));
    }

    let json_path = root.join("of13-json").join(format!("{name}.json"));
    let text =
        fs::read_to_string(&json_path).map_err(|e| format!("read {}: {e}", json_path.display()))?;
    let expected: Value = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
    let actual = ryu(&msg);
    match first_diff("", &expected, &actual) {
        Some(d) => Err(d),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Recursive comparison, naming the first difference as a path.

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn num_eq(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    a.as_f64() == b.as_f64()
}

fn first_diff(path: &str, exp: &Value, got: &Value) -> Option<String> {
    match (exp, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                let p = join(path, k);
                match g.get(k) {
                    None => return Some(format!("{p}: expected {ev}, missing in ours")),
                    Some(gv) => {
                        if let Some(d) = first_diff(&p, ev, gv) {
                            return Some(d);
                        }
                    }
                }
            }
            g.iter()
                .find(|(k, _)| !e.contains_key(*k))
                .map(|(k, gv)| format!("{}: not expected, ours has {gv}", join(path, k)))
        }
        (Value::Array(e), Value::Array(g)) => {
            for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
                if let Some(d) = first_diff(&format!("{path}[{i}]"), ev, gv) {
                    return Some(d);
                }
            }
            (e.len() != g.len())
                .then(|| format!("{path}: expected {} elements, got {}", e.len(), g.len()))
        }
        (Value::Number(e), Value::Number(g)) => {
            (!num_eq(e, g)).then(|| format!("{path}: expected {exp}, got {got}"))
        }
        _ => (exp != got).then(|| format!("{path}: expected {exp}, got {got}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// `{name: body}`, Ryu's `to_jsondict` wrapping of a class instance.
fn class(name: &str, body: Value) -> Value {
    let mut m = Map::new();
    m.insert(name.to_string(), body);
    Value::Object(m)
}

/// Adds `key: value` to a JSON object.
fn with(mut v: Value, key: &str, value: impl Into<Value>) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(key.to_string(), value.into());
    }
    v
}

/// Standard base64 with padding, as Ryu writes bytes.
fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be_number(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x))
}

/// Emits one multipart reply around `body` with our codec; the bytes after the 16-byte
/// multipart header are the item, with every length our emitter computed.
fn emit_reply_item(body: MultipartReplyBody) -> Vec<u8> {
    let bytes = Message::new(0, Body::MultipartReply(MultipartReply { flags: 0, body })).to_bytes();
    bytes[16..].to_vec()
}

// ---------------------------------------------------------------------------------------------
// OXM and match

fn oxm_json_value(v: ofp13::oxm::JsonValue) -> Value {
    serde_json::to_value(v).expect("oxm value to JSON")
}

/// A raw OXM's name, value and mask in Ryu's form.
///
/// Names come from `ofp13::oxm::raw_name`, except for ONF experimenter OXMs (class 0xffff,
/// experimenter 0x4f4e4600, then a 16-bit exp_type before the value: OpenFlow 1.3's EXT-256
/// encoding of `pbb_uca`, the form Ryu and Open vSwitch use in 1.3), which `raw_name` cannot
/// name because it sees only class and field; they are named here from the payload.
/// Values: a dotted quad for the Nicira tunnel addresses, a big-endian number otherwise
/// (base64 when longer than 8 bytes).
fn raw_oxm(r: &RawOxm) -> (String, Value, Value) {
    let (name, payload): (String, &[u8]) = match (r.class, r.payload.get(..4), r.payload.get(4..6))
    {
        (ofp13::oxm::OFPXMC_EXPERIMENTER, Some(exp), Some(t))
            if be_number(exp) == u64::from(ONF_EXPERIMENTER) =>
        {
            let name = match be_number(t) {
                2560 => "pbb_uca".to_string(),
                t => format!("onf_exp_{t}"),
            };
            (name, &r.payload[6..])
        }
        (ofp13::oxm::OFPXMC_EXPERIMENTER, _, _) => (
            raw_name(r.class, r.field),
            r.payload.get(4..).unwrap_or_default(),
        ),
        _ => (raw_name(r.class, r.field), &r.payload),
    };
    let (v, m) = if r.hasmask {
        payload.split_at(payload.len() / 2)
    } else {
        (payload, &[][..])
    };
    let render = |b: &[u8]| -> Value {
        match (name.as_str(), <[u8; 4]>::try_from(b)) {
            ("tun_ipv4_src" | "tun_ipv4_dst", Ok(a)) => json!(Ipv4Addr::from(a).to_string()),
            _ if b.len() <= 8 => json!(be_number(b)),
            _ => json!(b64(b)),
        }
    };
    let mask = if r.hasmask { render(m) } else { Value::Null };
    let value = render(v);
    (name, value, mask)
}

fn oxm_tlv(o: &Oxm) -> Value {
    let (name, value, mask) = match (o.json_value(), o) {
        (Some((v, m)), _) => (
            o.name(),
            oxm_json_value(v),
            m.map_or(Value::Null, oxm_json_value),
        ),
        (None, Oxm::Raw(r)) => raw_oxm(r),
        (None, _) => (o.name(), Value::Null, Value::Null),
    };
    class(
        "OXMTlv",
        json!({"field": name, "mask": mask, "value": value}),
    )
}

/// `OFPMatch`: `type` and `length` as our emitter writes them (Ryu's length, like the wire's,
/// excludes the padding to 8).
fn match_json(m: &Match) -> Value {
    let mut b = Vec::new();
    m.emit(&mut b);
    class(
        "OFPMatch",
        json!({
            "length": u16_at(&b, 2),
            "oxm_fields": m.fields.iter().map(oxm_tlv).collect::<Vec<_>>(),
            "type": u16_at(&b, 0),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Actions, instructions, buckets

fn action_json(a: &Action) -> Value {
    let mut b = Vec::new();
    a.emit(&mut b);
    let (name, body) = match a {
        Action::Output { port, max_len } => {
            ("OFPActionOutput", json!({"port": port, "max_len": max_len}))
        }
        Action::CopyTtlOut => ("OFPActionCopyTtlOut", json!({})),
        Action::CopyTtlIn => ("OFPActionCopyTtlIn", json!({})),
        Action::SetMplsTtl { mpls_ttl } => ("OFPActionSetMplsTtl", json!({"mpls_ttl": mpls_ttl})),
        Action::DecMplsTtl => ("OFPActionDecMplsTtl", json!({})),
        Action::PushVlan { ethertype } => ("OFPActionPushVlan", json!({"ethertype": ethertype})),
        Action::PopVlan => ("OFPActionPopVlan", json!({})),
        Action::PushMpls { ethertype } => ("OFPActionPushMpls", json!({"ethertype": ethertype})),
        Action::PopMpls { ethertype } => ("OFPActionPopMpls", json!({"ethertype": ethertype})),
        Action::SetQueue { queue_id } => ("OFPActionSetQueue", json!({"queue_id": queue_id})),
        Action::Group { group_id } => ("OFPActionGroup", json!({"group_id": group_id})),
        Action::SetNwTtl { nw_ttl } => ("OFPActionSetNwTtl", json!({"nw_ttl": nw_ttl})),
        Action::DecNwTtl => ("OFPActionDecNwTtl", json!({})),
        Action::SetField { field } => ("OFPActionSetField", json!({"field": oxm_tlv(field)})),
        Action::PushPbb { ethertype } => ("OFPActionPushPbb", json!({"ethertype": ethertype})),
        Action::PopPbb => ("OFPActionPopPbb", json!({})),
        // Ryu splits Nicira actions into a 16-bit subtype and the rest.
        Action::Experimenter { experimenter, data }
            if *experimenter == NX_EXPERIMENTER && data.len() >= 2 =>
        {
            (
                "NXActionUnknown",
                json!({
                    "experimenter": experimenter,
                    "subtype": u16_at(data, 0),
                    "data": b64(&data[2..]),
                }),
            )
        }
        Action::Experimenter { experimenter, data } => (
            "OFPActionExperimenterUnknown",
            json!({"experimenter": experimenter, "data": b64(data)}),
        ),
        Action::Unknown { data, .. } => ("OFPActionUnknown", json!({"data": b64(data)})),
    };
    let body = with(body, "len", u16_at(&b, 2));
    class(name, with(body, "type", a.action_type()))
}

fn actions_json(actions: &[Action]) -> Value {
    Value::Array(actions.iter().map(action_json).collect())
}

fn instruction_json(i: &Instruction) -> Value {
    let mut b = Vec::new();
    i.emit(&mut b);
    let (name, body) = match i {
        Instruction::GotoTable { table_id } => {
            ("OFPInstructionGotoTable", json!({"table_id": table_id}))
        }
        Instruction::WriteMetadata {
            metadata,
            metadata_mask,
        } => (
            "OFPInstructionWriteMetadata",
            json!({"metadata": metadata, "metadata_mask": metadata_mask}),
        ),
        Instruction::WriteActions { actions } | Instruction::ApplyActions { actions } => (
            "OFPInstructionActions",
            json!({"actions": actions_json(actions)}),
        ),
        // Ryu uses OFPInstructionActions (type 5, no actions) for clear-actions.
        Instruction::ClearActions => ("OFPInstructionActions", json!({"actions": []})),
        Instruction::Meter { meter_id } => ("OFPInstructionMeter", json!({"meter_id": meter_id})),
        Instruction::Experimenter { experimenter, data } => (
            "OFPInstructionExperimenter",
            json!({"experimenter": experimenter, "data": b64(data)}),
        ),
        Instruction::Unknown { data, .. } => ("OFPInstructionUnknown", json!({"data": b64(data)})),
    };
    let body = with(body, "len", u16_at(&b, 2));
    class(name, with(body, "type", i.instruction_type()))
}

fn instructions_json(ins: &[Instruction]) -> Value {
    Value::Array(ins.iter().map(instruction_json).collect())
}

fn bucket_json(bk: &Bucket) -> Value {
    let mut b = Vec::new();
    bk.emit(&mut b);
    class(
        "OFPBucket",
        json!({
            "actions": actions_json(&bk.actions),
            "len": u16_at(&b, 0),
            "watch_group": bk.watch_group,
            "watch_port": bk.watch_port,
            "weight": bk.weight,
        }),
    )
}

fn buckets_json(bs: &[Bucket]) -> Value {
    Value::Array(bs.iter().map(bucket_json).collect())
}

// ---------------------------------------------------------------------------------------------
// Meters, queues, ports

fn band_json(band: &MeterBand) -> Value {
    let mut b = Vec::new();
    band.emit(&mut b);
    let base = json!({
        "burst_size": band.burst_size,
        "len": u16_at(&b, 2),
        "rate": band.rate,
        "type": band.band_type(),
    });
    match &band.kind {
        MeterBandKind::Drop => class("OFPMeterBandDrop", base),
        MeterBandKind::DscpRemark { prec_level } => class(
            "OFPMeterBandDscpRemark",
            with(base, "prec_level", *prec_level),
        ),
        MeterBandKind::Experimenter { experimenter, data } => {
            // Ryu's OFPMeterBandExperimenter has no data attribute; show ours only when there
            // is some, so that a non-empty body is a visible difference.
            let v = with(base, "experimenter", *experimenter);
            let v = if data.is_empty() {
                v
            } else {
                with(v, "data", b64(data))
            };
            class("OFPMeterBandExperimenter", v)
        }
        MeterBandKind::Unknown { data, .. } => {
            class("OFPMeterBandUnknown", with(base, "data", b64(data)))
        }
    }
}

fn bands_json(bands: &[MeterBand]) -> Value {
    Value::Array(bands.iter().map(band_json).collect())
}

fn queue_prop_json(p: &QueueProp) -> Value {
    let mut b = Vec::new();
    p.emit(&mut b);
    let len = u16_at(&b, 2);
    let property = u16_at(&b, 0);
    let (name, body) = match p {
        QueueProp::MinRate { rate } => ("OFPQueuePropMinRate", json!({"rate": rate})),
        QueueProp::MaxRate { rate } => ("OFPQueuePropMaxRate", json!({"rate": rate})),
        // Ryu keeps the experimenter property's data as a list of byte values.
        QueueProp::Experimenter { experimenter, data } => (
            "OFPQueuePropExperimenter",
            json!({"experimenter": experimenter, "data": data.to_vec()}),
        ),
        QueueProp::Unknown { data, .. } => ("OFPQueuePropUnknown", json!({"data": b64(data)})),
    };
    class(name, with(with(body, "len", len), "property", property))
}

fn packet_queue_json(q: &PacketQueue) -> Value {
    let mut b = Vec::new();
    q.emit(&mut b);
    class(
        "OFPPacketQueue",
        json!({
            "len": u16_at(&b, 8),
            "port": q.port,
            "properties": q.properties.iter().map(queue_prop_json).collect::<Vec<_>>(),
            "queue_id": q.queue_id,
        }),
    )
}

fn port_json(p: &Port) -> Value {
    class(
        "OFPPort",
        json!({
            "advertised": p.advertised,
            "config": p.config,
            "curr": p.curr,
            "curr_speed": p.curr_speed,
            "hw_addr": p.hw_addr.to_string(),
            "max_speed": p.max_speed,
            "name": p.name,
            "peer": p.peer,
            "port_no": p.port_no,
            "state": p.state,
            "supported": p.supported,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Multipart

fn flow_stats_json(f: &FlowStats) -> Value {
    let b = emit_reply_item(MultipartReplyBody::Flow(vec![f.clone()]));
    class(
        "OFPFlowStats",
        json!({
            "byte_count": f.byte_count,
            "cookie": f.cookie,
            "duration_nsec": f.duration_nsec,
            "duration_sec": f.duration_sec,
            "flags": f.flags,
            "hard_timeout": f.hard_timeout,
            "idle_timeout": f.idle_timeout,
            "instructions": instructions_json(&f.instructions),
            "length": u16_at(&b, 0),
            "match": match_json(&f.match_),
            "packet_count": f.packet_count,
            "priority": f.priority,
            "table_id": f.table_id,
        }),
    )
}

fn group_stats_json(g: &GroupStats) -> Value {
    let b = emit_reply_item(MultipartReplyBody::Group(vec![g.clone()]));
    class(
        "OFPGroupStats",
        json!({
            "bucket_stats": g.bucket_stats.iter().map(|c| class(
                "OFPBucketCounter",
                json!({"byte_count": c.byte_count, "packet_count": c.packet_count}),
            )).collect::<Vec<_>>(),
            "byte_count": g.byte_count,
            "duration_nsec": g.duration_nsec,
            "duration_sec": g.duration_sec,
            "group_id": g.group_id,
            "length": u16_at(&b, 0),
            "packet_count": g.packet_count,
            "ref_count": g.ref_count,
        }),
    )
}

fn group_desc_json(g: &GroupDesc) -> Value {
    let b = emit_reply_item(MultipartReplyBody::GroupDesc(vec![g.clone()]));
    class(
        "OFPGroupDescStats",
        json!({
            "buckets": buckets_json(&g.buckets),
            "group_id": g.group_id,
            "length": u16_at(&b, 0),
            "type": g.group_type,
        }),
    )
}

fn meter_stats_json(m: &MeterStats) -> Value {
    let b = emit_reply_item(MultipartReplyBody::Meter(vec![m.clone()]));
    class(
        "OFPMeterStats",
        json!({
            "band_stats": m.band_stats.iter().map(|c| class(
                "OFPMeterBandStats",
                json!({"byte_band_count": c.byte_count, "packet_band_count": c.packet_count}),
            )).collect::<Vec<_>>(),
            "byte_in_count": m.byte_in_count,
            "duration_nsec": m.duration_nsec,
            "duration_sec": m.duration_sec,
            "flow_count": m.flow_count,
            "len": u16_at(&b, 4),
            "meter_id": m.meter_id,
            "packet_in_count": m.packet_in_count,
        }),
    )
}

fn meter_config_json(m: &MeterConfig) -> Value {
    let b = emit_reply_item(MultipartReplyBody::MeterConfig(vec![m.clone()]));
    class(
        "OFPMeterConfigStats",
        json!({
            "bands": bands_json(&m.bands),
            "flags": m.flags,
            "length": u16_at(&b, 0),
            "meter_id": m.meter_id,
        }),
    )
}

fn type_ids_json(name: &str, ids: &[TypeId]) -> Value {
    Value::Array(
        ids.iter()
            .map(|t| {
                let mut b = Vec::new();
                t.emit(&mut b);
                class(name, json!({"len": u16_at(&b, 2), "type": t.ty}))
            })
            .collect(),
    )
}

fn oxm_id_json(id: &OxmId) -> Value {
    let (_, _, hasmask, length) = ofp13::oxm::split_header(id.header);
    let v = json!({"hasmask": u8::from(hasmask), "length": length, "type": id.name()});
    class(
        "OFPOxmId",
        match id.experimenter {
            Some(e) => with(v, "exp_id", e),
            None => v,
        },
    )
}

fn table_feature_prop_json(p: &TableFeatureProp) -> Value {
    // Our emitter of the property alone is private: emit a table-features entry holding only
    // this property; the property starts after the 64-byte fixed part.
    let tf = TableFeatures {
        table_id: 0,
        name: String::new(),
        metadata_match: 0,
        metadata_write: 0,
        config: 0,
        max_entries: 0,
        properties: vec![p.clone()],
    };
    let b = emit_reply_item(MultipartReplyBody::TableFeatures(vec![tf]));
    let base = json!({"length": u16_at(&b, 64 + 2), "type": p.prop_type});
    match &p.body {
        TableFeaturePropBody::Instructions(ids) => class(
            "OFPTableFeaturePropInstructions",
            with(
                base,
                "instruction_ids",
                type_ids_json("OFPInstructionId", ids),
            ),
        ),
        TableFeaturePropBody::NextTables(t) => class(
            "OFPTableFeaturePropNextTables",
            with(base, "table_ids", t.clone()),
        ),
        TableFeaturePropBody::Actions(ids) => class(
            "OFPTableFeaturePropActions",
            with(base, "action_ids", type_ids_json("OFPActionId", ids)),
        ),
        TableFeaturePropBody::Oxm(ids) => class(
            "OFPTableFeaturePropOxm",
            with(
                base,
                "oxm_ids",
                ids.iter().map(oxm_id_json).collect::<Vec<_>>(),
            ),
        ),
        TableFeaturePropBody::Experimenter {
            experimenter,
            exp_type,
            data,
        } => class(
            "OFPTableFeaturePropExperimenter",
            with(
                with(
                    with(base, "experimenter", *experimenter),
                    "exp_type",
                    *exp_type,
                ),
                "data",
                data.clone(),
            ),
        ),
        TableFeaturePropBody::Unknown(data) => {
            class("OFPTableFeaturePropUnknown", with(base, "data", b64(data)))
        }
    }
}

fn table_features_json(t: &TableFeatures) -> Value {
    let b = emit_reply_item(MultipartReplyBody::TableFeatures(vec![t.clone()]));
    class(
        "OFPTableFeaturesStats",
        json!({
            "config": t.config,
            "length": u16_at(&b, 0),
            "max_entries": t.max_entries,
            "metadata_match": t.metadata_match,
            "metadata_write": t.metadata_write,
            "name": t.name,
            "properties": t.properties.iter().map(table_feature_prop_json).collect::<Vec<_>>(),
            "table_id": t.table_id,
        }),
    )
}

fn desc_json(d: &Desc) -> Value {
    class(
        "OFPDescStats",
        json!({
            "dp_desc": d.dp_desc,
            "hw_desc": d.hw_desc,
            "mfr_desc": d.mfr_desc,
            "serial_num": d.serial_num,
            "sw_desc": d.sw_desc,
        }),
    )
}

fn experimenter_fields(e: &ExperimenterMultipart) -> Value {
    json!({"data": b64(&e.data), "exp_type": e.exp_type, "experimenter": e.experimenter})
}

/// The ONF flow monitor requests carried in an experimenter multipart request's data
/// (`onf_flow_monitor_request`: id, flags, match_len, out_port, table_id, 3 pad bytes, then
/// `match_len` bytes of OXM fields without an `ofp_match` header, padded to 8). Our codec keeps
/// this data raw; it is decoded here with our OXM parser.
fn onf_flow_monitor_requests(data: &Bytes) -> Result<Value, String> {
    let mut r = Reader::new(data, "onf_flow_monitor_request");
    let mut out = Vec::new();
    while !r.is_empty() {
        let e = |e: ofp13::Error| e.to_string();
        let id = r.u32().map_err(e)?;
        let flags = r.u16().map_err(e)?;
        let wire_match_len = usize::from(r.u16().map_err(e)?);
        let out_port = r.u32().map_err(e)?;
        let table_id = r.u8().map_err(e)?;
        r.skip(3).map_err(e)?;
        let mut m = r.sub(wire_match_len, "onf match").map_err(e)?;
        let mut fields = Vec::new();
        while !m.is_empty() {
            fields.push(Oxm::parse(&mut m).map_err(e)?);
        }
        r.skip((8 - (16 + wire_match_len) % 8) % 8).map_err(e)?;
        let m = Match::new(fields);
        // match_len: the OXM fields' length as our emitter writes them, i.e. the ofp_match
        // length minus its 4-byte header.
        let match_len = m.fields.iter().map(Oxm::wire_len).sum::<usize>();
        out.push(class(
            "ONFFlowMonitorRequest",
            json!({
                "flags": flags,
                "id": id,
                "match": match_json(&m),
                "match_len": match_len,
                "out_port": out_port,
                "table_id": table_id,
            }),
        ));
    }
    Ok(Value::Array(out))
}

fn multipart_request_json(m: &MultipartRequest) -> Value {
    use MultipartRequestBody as B;
    let base = json!({"flags": m.flags, "type": m.mp_type()});
    let flow = |f: &ofp13::FlowStatsRequest, v: Value| {
        let v = with(v, "cookie", f.cookie);
        let v = with(v, "cookie_mask", f.cookie_mask);
        let v = with(v, "match", match_json(&f.match_));
        let v = with(v, "out_group", f.out_group);
        let v = with(v, "out_port", f.out_port);
        with(v, "table_id", f.table_id)
    };
    match &m.body {
        B::Desc => class("OFPDescStatsRequest", base),
        B::Flow(f) => class("OFPFlowStatsRequest", flow(f, base)),
        B::Aggregate(f) => class("OFPAggregateStatsRequest", flow(f, base)),
        B::Table => class("OFPTableStatsRequest", base),
        B::PortStats { port_no } => class("OFPPortStatsRequest", with(base, "port_no", *port_no)),
        B::Queue { port_no, queue_id } => class(
            "OFPQueueStatsRequest",
            with(with(base, "port_no", *port_no), "queue_id", *queue_id),
        ),
        B::Group { group_id } => class("OFPGroupStatsRequest", with(base, "group_id", *group_id)),
        B::GroupDesc => class("OFPGroupDescStatsRequest", base),
        B::GroupFeatures => class("OFPGroupFeaturesStatsRequest", base),
        B::Meter { meter_id } => class("OFPMeterStatsRequest", with(base, "meter_id", *meter_id)),
        B::MeterConfig { meter_id } => class(
            "OFPMeterConfigStatsRequest",
            with(base, "meter_id", *meter_id),
        ),
        B::MeterFeatures => class("OFPMeterFeaturesStatsRequest", base),
        B::TableFeatures(t) => class(
            "OFPTableFeaturesStatsRequest",
            with(
                base,
                "body",
                t.iter().map(table_features_json).collect::<Vec<_>>(),
            ),
        ),
        B::PortDesc => class("OFPPortDescStatsRequest", base),
        B::Experimenter(e)
            if e.experimenter == ONF_EXPERIMENTER && e.exp_type == ONF_FLOW_MONITOR =>
        {
            let body = onf_flow_monitor_requests(&e.data)
                .unwrap_or_else(|err| json!({"adapter decode error": err}));
            let v = with(base, "body", body);
            let v = with(v, "exp_type", e.exp_type);
            class(
                "ONFFlowMonitorStatsRequest",
                with(v, "experimenter", e.experimenter),
            )
        }
        B::Experimenter(e) => {
            let mut v = base;
            if let (Value::Object(a), Value::Object(b)) = (&mut v, experimenter_fields(e)) {
                a.extend(b);
            }
            class("OFPExperimenterStatsRequest", v)
        }
        B::Unknown { data, .. } => {
            class("OFPMultipartRequestUnknown", with(base, "data", b64(data)))
        }
    }
}

fn multipart_reply_json(m: &MultipartReply) -> Value {
    use MultipartReplyBody as B;
    let base = json!({"flags": m.flags, "type": m.mp_type()});
    let list = |v: Vec<Value>| Value::Array(v);
    let (name, body) = match &m.body {
        B::Desc(d) => ("OFPDescStatsReply", desc_json(d)),
        B::Flow(v) => (
            "OFPFlowStatsReply",
            list(v.iter().map(flow_stats_json).collect()),
        ),
        B::Aggregate(a) => (
            "OFPAggregateStatsReply",
            class(
                "OFPAggregateStats",
                json!({
                    "byte_count": a.byte_count,
                    "flow_count": a.flow_count,
                    "packet_count": a.packet_count,
                }),
            ),
        ),
        B::Table(v) => (
            "OFPTableStatsReply",
            list(
                v.iter()
                    .map(|t| {
                        class(
                            "OFPTableStats",
                            json!({
                                "active_count": t.active_count,
                                "lookup_count": t.lookup_count,
                                "matched_count": t.matched_count,
                                "table_id": t.table_id,
                            }),
                        )
                    })
                    .collect(),
            ),
        ),
        B::PortStats(v) => (
            "OFPPortStatsReply",
            list(
                v.iter()
                    .map(|p| {
                        class(
                            "OFPPortStats",
                            json!({
                                "collisions": p.collisions,
                                "duration_nsec": p.duration_nsec,
                                "duration_sec": p.duration_sec,
                                "port_no": p.port_no,
                                "rx_bytes": p.rx_bytes,
                                "rx_crc_err": p.rx_crc_err,
                                "rx_dropped": p.rx_dropped,
                                "rx_errors": p.rx_errors,
                                "rx_frame_err": p.rx_frame_err,
                                "rx_over_err": p.rx_over_err,
                                "rx_packets": p.rx_packets,
                                "tx_bytes": p.tx_bytes,
                                "tx_dropped": p.tx_dropped,
                                "tx_errors": p.tx_errors,
                                "tx_packets": p.tx_packets,
                            }),
                        )
                    })
                    .collect(),
            ),
        ),
        B::Queue(v) => (
            "OFPQueueStatsReply",
            list(
                v.iter()
                    .map(|q| {
                        class(
                            "OFPQueueStats",
                            json!({
                                "duration_nsec": q.duration_nsec,
                                "duration_sec": q.duration_sec,
                                "port_no": q.port_no,
                                "queue_id": q.queue_id,
                                "tx_bytes": q.tx_bytes,
                                "tx_errors": q.tx_errors,
                                "tx_packets": q.tx_packets,
                            }),
                        )
                    })
                    .collect(),
            ),
        ),
        B::Group(v) => (
            "OFPGroupStatsReply",
            list(v.iter().map(group_stats_json).collect()),
        ),
        B::GroupDesc(v) => (
            "OFPGroupDescStatsReply",
            list(v.iter().map(group_desc_json).collect()),
        ),
        B::GroupFeatures(g) => (
            "OFPGroupFeaturesStatsReply",
            class(
                "OFPGroupFeaturesStats",
                json!({
                    "actions": g.actions,
                    "capabilities": g.capabilities,
                    "max_groups": g.max_groups,
                    "types": g.types,
                }),
            ),
        ),
        B::Meter(v) => (
            "OFPMeterStatsReply",
            list(v.iter().map(meter_stats_json).collect()),
        ),
        B::MeterConfig(v) => (
            "OFPMeterConfigStatsReply",
            list(v.iter().map(meter_config_json).collect()),
        ),
        // Ryu shows the (single) meter features body as a one-element list.
        B::MeterFeatures(f) => (
            "OFPMeterFeaturesStatsReply",
            list(vec![class(
                "OFPMeterFeaturesStats",
                json!({
                    "band_types": f.band_types,
                    "capabilities": f.capabilities,
                    "max_bands": f.max_bands,
                    "max_color": f.max_color,
                    "max_meter": f.max_meter,
                }),
            )]),
        ),
        B::TableFeatures(v) => (
            "OFPTableFeaturesStatsReply",
            list(v.iter().map(table_features_json).collect()),
        ),
        B::PortDesc(v) => (
            "OFPPortDescStatsReply",
            list(v.iter().map(port_json).collect()),
        ),
        B::Experimenter(e) => (
            "OFPExperimenterStatsReply",
            class("OFPExperimenterMultipart", experimenter_fields(e)),
        ),
        B::Unknown { data, .. } => ("OFPMultipartReplyUnknown", json!(b64(data))),
    };
    class(name, with(base, "body", body))
}

// ---------------------------------------------------------------------------------------------
// Messages

fn hello_json(h: &Hello) -> Value {
    let elements: Vec<Value> = h
        .elements
        .iter()
        .map(|e| {
            // The element's type and length as our emitter writes them.
            let mut b = Vec::new();
            Hello {
                elements: vec![e.clone()],
            }
            .emit(&mut b);
            let head = json!({"length": u16_at(&b, 2), "type": u16_at(&b, 0)});
            match e {
                HelloElem::VersionBitmap { bitmaps } => {
                    let versions: Vec<usize> = bitmaps
                        .iter()
                        .enumerate()
                        .flat_map(|(w, bits)| {
                            (0..32)
                                .filter(move |i| bits >> i & 1 == 1)
                                .map(move |i| w * 32 + i)
                        })
                        .collect();
                    class(
                        "OFPHelloElemVersionBitmap",
                        with(head, "versions", versions),
                    )
                }
                HelloElem::Unknown { data, .. } => {
                    class("OFPHelloElemUnknown", with(head, "data", b64(data)))
                }
            }
        })
        .collect();
    class("OFPHello", json!({ "elements": elements }))
}

/// Our decoded message in Ryu's `to_jsondict` shape.
fn ryu(msg: &Message) -> Value {
    match &msg.body {
        Body::Hello(h) => hello_json(h),
        Body::Error(e) => match e.experimenter {
            // Ryu shows experimenter errors with `code: null` and the code as `exp_type`.
            Some(exp) => class(
                "OFPErrorMsg",
                json!({
                    "code": null,
                    "data": b64(&e.data),
                    "exp_type": e.code,
                    "experimenter": exp,
                    "type": e.err_type,
                }),
            ),
            None => class(
                "OFPErrorMsg",
                json!({"code": e.code, "data": b64(&e.data), "type": e.err_type}),
            ),
        },
        Body::EchoRequest(d) => class("OFPEchoRequest", json!({"data": b64(d)})),
        Body::EchoReply(d) => class("OFPEchoReply", json!({"data": b64(d)})),
        Body::Experimenter(e) => class(
            "OFPExperimenter",
            json!({"data": b64(&e.data), "exp_type": e.exp_type, "experimenter": e.experimenter}),
        ),
        Body::FeaturesRequest => class("OFPFeaturesRequest", json!({})),
        // Ryu keeps `reserved` as a private attribute that to_jsondict omits.
        Body::FeaturesReply(f) => class(
            "OFPSwitchFeatures",
            json!({
                "auxiliary_id": f.auxiliary_id,
                "capabilities": f.capabilities,
                "datapath_id": f.datapath_id,
                "n_buffers": f.n_buffers,
                "n_tables": f.n_tables,
            }),
        ),
        Body::GetConfigRequest => class("OFPGetConfigRequest", json!({})),
        Body::GetConfigReply(c) => class(
            "OFPGetConfigReply",
            json!({"flags": c.flags, "miss_send_len": c.miss_send_len}),
        ),
        Body::SetConfig(c) => class(
            "OFPSetConfig",
            json!({"flags": c.flags, "miss_send_len": c.miss_send_len}),
        ),
        Body::PacketIn(p) => class(
            "OFPPacketIn",
            json!({
                "buffer_id": p.buffer_id,
                "cookie": p.cookie,
                "data": b64(&p.data),
                "match": match_json(&p.match_),
                "reason": p.reason,
                "table_id": p.table_id,
                "total_len": p.total_len,
            }),
        ),
        Body::FlowRemoved(f) => class(
            "OFPFlowRemoved",
            json!({
                "byte_count": f.byte_count,
                "cookie": f.cookie,
                "duration_nsec": f.duration_nsec,
                "duration_sec": f.duration_sec,
                "hard_timeout": f.hard_timeout,
                "idle_timeout": f.idle_timeout,
                "match": match_json(&f.match_),
                "packet_count": f.packet_count,
                "priority": f.priority,
                "reason": f.reason,
                "table_id": f.table_id,
            }),
        ),
        Body::PortStatus(p) => class(
            "OFPPortStatus",
            json!({"desc": port_json(&p.desc), "reason": p.reason}),
        ),
        Body::PacketOut(p) => {
            let mut b = Vec::new();
            p.actions.iter().for_each(|a| a.emit(&mut b));
            class(
                "OFPPacketOut",
                json!({
                    "actions": actions_json(&p.actions),
                    "actions_len": b.len(),
                    "buffer_id": p.buffer_id,
                    "data": b64(&p.data),
                    "in_port": p.in_port,
                }),
            )
        }
        Body::FlowMod(f) => class(
            "OFPFlowMod",
            json!({
                "buffer_id": f.buffer_id,
                "command": f.command,
                "cookie": f.cookie,
                "cookie_mask": f.cookie_mask,
                "flags": f.flags,
                "hard_timeout": f.hard_timeout,
                "idle_timeout": f.idle_timeout,
                "instructions": instructions_json(&f.instructions),
                "match": match_json(&f.match_),
                "out_group": f.out_group,
                "out_port": f.out_port,
                "priority": f.priority,
                "table_id": f.table_id,
            }),
        ),
        Body::GroupMod(g) => class(
            "OFPGroupMod",
            json!({
                "buckets": buckets_json(&g.buckets),
                "command": g.command,
                "group_id": g.group_id,
                "type": g.group_type,
            }),
        ),
        Body::PortMod(p) => class(
            "OFPPortMod",
            json!({
                "advertise": p.advertise,
                "config": p.config,
                "hw_addr": p.hw_addr.to_string(),
                "mask": p.mask,
                "port_no": p.port_no,
            }),
        ),
        Body::TableMod(t) => class(
            "OFPTableMod",
            json!({"config": t.config, "table_id": t.table_id}),
        ),
        Body::MultipartRequest(m) => multipart_request_json(m),
        Body::MultipartReply(m) => multipart_reply_json(m),
        Body::BarrierRequest => class("OFPBarrierRequest", json!({})),
        Body::BarrierReply => class("OFPBarrierReply", json!({})),
        Body::QueueGetConfigRequest { port } => {
            class("OFPQueueGetConfigRequest", json!({ "port": port }))
        }
        Body::QueueGetConfigReply(q) => class(
            "OFPQueueGetConfigReply",
            json!({
                "port": q.port,
                "queues": q.queues.iter().map(packet_queue_json).collect::<Vec<_>>(),
            }),
        ),
        Body::RoleRequest(r) => class(
            "OFPRoleRequest",
            json!({"generation_id": r.generation_id, "role": r.role}),
        ),
        Body::RoleReply(r) => class(
            "OFPRoleReply",
            json!({"generation_id": r.generation_id, "role": r.role}),
        ),
        Body::GetAsyncRequest => class("OFPGetAsyncRequest", json!({})),
        Body::GetAsyncReply(a) | Body::SetAsync(a) => class(
            if matches!(msg.body, Body::SetAsync(_)) {
                "OFPSetAsync"
            } else {
                "OFPGetAsyncReply"
            },
            json!({
                "flow_removed_mask": a.flow_removed_mask,
                "packet_in_mask": a.packet_in_mask,
                "port_status_mask": a.port_status_mask,
            }),
        ),
        Body::MeterMod(m) => class(
            "OFPMeterMod",
            json!({
                "bands": bands_json(&m.bands),
                "command": m.command,
                "flags": m.flags,
                "meter_id": m.meter_id,
            }),
        ),
        Body::Unknown { msg_type, data } => class(
            "OFPUnknownMessage",
            json!({"msg_type": msg_type, "data": b64(data)}),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The adapter's own pieces, checked on known values.

#[test]
fn base64_encoder() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg==");
    assert_eq!(b64(b"fo"), "Zm8=");
    assert_eq!(b64(b"foo"), "Zm9v");
    assert_eq!(b64(b"hoge"), "aG9nZQ==");
    assert_eq!(b64(&[0, 1, 2, 3, 4, 5, 6, 7]), "AAECAwQFBgc=");
}

#[test]
fn diff_names_the_first_differing_path() {
    let exp = json!({"A": {"x": [1, {"B": {"type": 12}}], "y": 2}});
    let got = json!({"A": {"x": [1, {"B": {"type": 11}}], "y": 3}});
    assert_eq!(
        first_diff("", &exp, &got).as_deref(),
        Some("A.x[1].B.type: expected 12, got 11")
    );
    let got = json!({"A": {"x": [1, {"B": {"type": 12}}], "y": 2, "z": 0}});
    assert_eq!(
        first_diff("", &exp, &got).as_deref(),
        Some("A.z: not expected, ours has 0")
    );
    let got = json!({"A": {"x": [1, {"B": {"type": 12}}]}});
    assert_eq!(
        first_diff("", &exp, &got).as_deref(),
        Some("A.y: expected 2, missing in ours")
    );
    assert_eq!(first_diff("", &json!(1.0), &json!(1)), None);
    assert!(first_diff("", &json!("1"), &json!(1)).is_some());
}
