//! `OFPT_MULTIPART_REQUEST` and `OFPT_MULTIPART_REPLY` of every type (OpenFlow 1.3.5
//! section 7.3.5). One message carries one part; reassembly across `OFPMPF_REPLY_MORE` is the
//! session's job.

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::action::TypeId;
use crate::instruction::{emit_instructions, parse_instructions, Instruction};
use crate::msg::{parse_bands, parse_buckets, Bucket, MeterBand, Port};
use crate::oxm::{Match, OxmId};
use crate::wire::{self, Reader};
use crate::Error;

pub const OFPMP_DESC: u16 = 0;
pub const OFPMP_FLOW: u16 = 1;
pub const OFPMP_AGGREGATE: u16 = 2;
pub const OFPMP_TABLE: u16 = 3;
pub const OFPMP_PORT_STATS: u16 = 4;
pub const OFPMP_QUEUE: u16 = 5;
pub const OFPMP_GROUP: u16 = 6;
pub const OFPMP_GROUP_DESC: u16 = 7;
pub const OFPMP_GROUP_FEATURES: u16 = 8;
pub const OFPMP_METER: u16 = 9;
pub const OFPMP_METER_CONFIG: u16 = 10;
pub const OFPMP_METER_FEATURES: u16 = 11;
pub const OFPMP_TABLE_FEATURES: u16 = 12;
pub const OFPMP_PORT_DESC: u16 = 13;
pub const OFPMP_EXPERIMENTER: u16 = 0xffff;

/// `OFPMPF_REQ_MORE` / `OFPMPF_REPLY_MORE`.
pub const OFPMPF_MORE: u16 = 1;

/// `OFPT_MULTIPART_REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartRequest {
    pub flags: u16,
    pub body: MultipartRequestBody,
}

/// `OFPT_MULTIPART_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartReply {
    pub flags: u16,
    pub body: MultipartReplyBody,
}

/// The body of a multipart request, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipartRequestBody {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    PortStats {
        port_no: u32,
    },
    Queue {
        port_no: u32,
        queue_id: u32,
    },
    Group {
        group_id: u32,
    },
    GroupDesc,
    GroupFeatures,
    Meter {
        meter_id: u32,
    },
    MeterConfig {
        meter_id: u32,
    },
    MeterFeatures,
    TableFeatures(Vec<TableFeatures>),
    PortDesc,
    Experimenter(ExperimenterMultipart),
    Unknown {
        mp_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

/// The body of a multipart reply, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipartReplyBody {
    /// Boxed: five fixed-size strings would otherwise make every `Body` 128 bytes.
    Desc(Box<Desc>),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    Queue(Vec<QueueStats>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    GroupFeatures(GroupFeatures),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<MeterConfig>),
    MeterFeatures(MeterFeatures),
    TableFeatures(Vec<TableFeatures>),
    PortDesc(Vec<Port>),
    Experimenter(ExperimenterMultipart),
    Unknown {
        mp_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

/// Parses items until the reader is empty.
fn parse_all<T>(
    r: &mut Reader<'_>,
    f: impl Fn(&mut Reader<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(f(r)?);
    }
    Ok(v)
}

impl MultipartRequest {
    pub fn new(body: MultipartRequestBody) -> Self {
        MultipartRequest { flags: 0, body }
    }

    pub fn mp_type(&self) -> u16 {
        use MultipartRequestBody as B;
        match &self.body {
            B::Desc => OFPMP_DESC,
            B::Flow(_) => OFPMP_FLOW,
            B::Aggregate(_) => OFPMP_AGGREGATE,
            B::Table => OFPMP_TABLE,
            B::PortStats { .. } => OFPMP_PORT_STATS,
            B::Queue { .. } => OFPMP_QUEUE,
            B::Group { .. } => OFPMP_GROUP,
            B::GroupDesc => OFPMP_GROUP_DESC,
            B::GroupFeatures => OFPMP_GROUP_FEATURES,
            B::Meter { .. } => OFPMP_METER,
            B::MeterConfig { .. } => OFPMP_METER_CONFIG,
            B::MeterFeatures => OFPMP_METER_FEATURES,
            B::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            B::PortDesc => OFPMP_PORT_DESC,
            B::Experimenter(_) => OFPMP_EXPERIMENTER,
            B::Unknown { mp_type, .. } => *mp_type,
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        use MultipartRequestBody as B;
        let ty = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match ty {
            OFPMP_DESC => B::Desc,
            OFPMP_FLOW => B::Flow(FlowStatsRequest::parse(r)?),
            OFPMP_AGGREGATE => B::Aggregate(FlowStatsRequest::parse(r)?),
            OFPMP_TABLE => B::Table,
            OFPMP_PORT_STATS => {
                let port_no = r.u32()?;
                r.skip(4)?;
                B::PortStats { port_no }
            }
            OFPMP_QUEUE => B::Queue {
                port_no: r.u32()?,
                queue_id: r.u32()?,
            },
            OFPMP_GROUP => {
                let group_id = r.u32()?;
                r.skip(4)?;
                B::Group { group_id }
            }
            OFPMP_GROUP_DESC => B::GroupDesc,
            OFPMP_GROUP_FEATURES => B::GroupFeatures,
            OFPMP_METER | OFPMP_METER_CONFIG => {
                let meter_id = r.u32()?;
                r.skip(4)?;
                if ty == OFPMP_METER {
                    B::Meter { meter_id }
                } else {
                    B::MeterConfig { meter_id }
                }
            }
            OFPMP_METER_FEATURES => B::MeterFeatures,
            OFPMP_TABLE_FEATURES => B::TableFeatures(parse_all(r, TableFeatures::parse)?),
            OFPMP_PORT_DESC => B::PortDesc,
            OFPMP_EXPERIMENTER => B::Experimenter(ExperimenterMultipart::parse(r)?),
            _ => B::Unknown {
                mp_type: ty,
                data: r.rest(),
            },
        };
        Ok(MultipartRequest { flags, body })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        use MultipartRequestBody as B;
        out.put_u16(self.mp_type());
        out.put_u16(self.flags);
        wire::pad(out, 4);
        match &self.body {
            B::Desc
            | B::Table
            | B::GroupDesc
            | B::GroupFeatures
            | B::MeterFeatures
            | B::PortDesc => {}
            B::Flow(f) | B::Aggregate(f) => f.emit(out),
            B::PortStats { port_no: v } | B::Group { group_id: v } => {
                out.put_u32(*v);
                wire::pad(out, 4);
            }
            B::Meter { meter_id: v } | B::MeterConfig { meter_id: v } => {
                out.put_u32(*v);
                wire::pad(out, 4);
            }
            B::Queue { port_no, queue_id } => {
                out.put_u32(*port_no);
                out.put_u32(*queue_id);
            }
            B::TableFeatures(t) => t.iter().for_each(|t| t.emit(out)),
            B::Experimenter(e) => e.emit(out),
            B::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }
}

impl MultipartReply {
    pub fn mp_type(&self) -> u16 {
        use MultipartReplyBody as B;
        match &self.body {
            B::Desc(_) => OFPMP_DESC,
            B::Flow(_) => OFPMP_FLOW,
            B::Aggregate(_) => OFPMP_AGGREGATE,
            B::Table(_) => OFPMP_TABLE,
            B::PortStats(_) => OFPMP_PORT_STATS,
            B::Queue(_) => OFPMP_QUEUE,
            B::Group(_) => OFPMP_GROUP,
            B::GroupDesc(_) => OFPMP_GROUP_DESC,
            B::GroupFeatures(_) => OFPMP_GROUP_FEATURES,
            B::Meter(_) => OFPMP_METER,
            B::MeterConfig(_) => OFPMP_METER_CONFIG,
            B::MeterFeatures(_) => OFPMP_METER_FEATURES,
            B::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            B::PortDesc(_) => OFPMP_PORT_DESC,
            B::Experimenter(_) => OFPMP_EXPERIMENTER,
            B::Unknown { mp_type, .. } => *mp_type,
        }
    }

    /// Whether more parts of this reply follow (`OFPMPF_REPLY_MORE`).
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_MORE != 0
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        use MultipartReplyBody as B;
        let ty = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match ty {
            OFPMP_DESC => B::Desc(Box::new(Desc::parse(r)?)),
            OFPMP_FLOW => B::Flow(parse_all(r, FlowStats::parse)?),
            OFPMP_AGGREGATE => B::Aggregate(AggregateStats::parse(r)?),
            OFPMP_TABLE => B::Table(parse_all(r, TableStats::parse)?),
            OFPMP_PORT_STATS => B::PortStats(parse_all(r, PortStats::parse)?),
            OFPMP_QUEUE => B::Queue(parse_all(r, QueueStats::parse)?),
            OFPMP_GROUP => B::Group(parse_all(r, GroupStats::parse)?),
            OFPMP_GROUP_DESC => B::GroupDesc(parse_all(r, GroupDesc::parse)?),
            OFPMP_GROUP_FEATURES => B::GroupFeatures(GroupFeatures::parse(r)?),
            OFPMP_METER => B::Meter(parse_all(r, MeterStats::parse)?),
            OFPMP_METER_CONFIG => B::MeterConfig(parse_all(r, MeterConfig::parse)?),
            OFPMP_METER_FEATURES => B::MeterFeatures(MeterFeatures::parse(r)?),
            OFPMP_TABLE_FEATURES => B::TableFeatures(parse_all(r, TableFeatures::parse)?),
            OFPMP_PORT_DESC => B::PortDesc(parse_all(r, Port::parse)?),
            OFPMP_EXPERIMENTER => B::Experimenter(ExperimenterMultipart::parse(r)?),
            _ => B::Unknown {
                mp_type: ty,
                data: r.rest(),
            },
        };
        Ok(MultipartReply { flags, body })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        use MultipartReplyBody as B;
        out.put_u16(self.mp_type());
        out.put_u16(self.flags);
        wire::pad(out, 4);
        match &self.body {
            B::Desc(d) => d.emit(out),
            B::Flow(v) => v.iter().for_each(|x| x.emit(out)),
            B::Aggregate(a) => a.emit(out),
            B::Table(v) => v.iter().for_each(|x| x.emit(out)),
            B::PortStats(v) => v.iter().for_each(|x| x.emit(out)),
            B::Queue(v) => v.iter().for_each(|x| x.emit(out)),
            B::Group(v) => v.iter().for_each(|x| x.emit(out)),
            B::GroupDesc(v) => v.iter().for_each(|x| x.emit(out)),
            B::GroupFeatures(g) => g.emit(out),
            B::Meter(v) => v.iter().for_each(|x| x.emit(out)),
            B::MeterConfig(v) => v.iter().for_each(|x| x.emit(out)),
            B::MeterFeatures(m) => m.emit(out),
            B::TableFeatures(v) => v.iter().for_each(|x| x.emit(out)),
            B::PortDesc(v) => v.iter().for_each(|x| x.emit(out)),
            B::Experimenter(e) => e.emit(out),
            B::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }
}

/// `ofp_experimenter_multipart_header` and the data that follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimenterMultipart {
    pub experimenter: u32,
    pub exp_type: u32,
    #[serde(with = "crate::types::hex_bytes")]
    pub data: Bytes,
}

impl ExperimenterMultipart {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(ExperimenterMultipart {
            experimenter: r.u32()?,
            exp_type: r.u32()?,
            data: r.rest(),
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.experimenter);
        out.put_u32(self.exp_type);
        out.extend_from_slice(&self.data);
    }
}

/// `ofp_flow_stats_request` (also the aggregate request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    #[serde(rename = "match")]
    pub match_: Match,
}

impl FlowStatsRequest {
    /// Every flow of every table.
    pub fn all() -> Self {
        FlowStatsRequest {
            table_id: crate::TABLE_ALL,
            out_port: crate::port::ANY,
            out_group: crate::group::ANY,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::default(),
        }
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie: r.u64()?,
            cookie_mask: r.u64()?,
            match_: Match::parse(r)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        wire::pad(out, 3);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        wire::pad(out, 4);
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        self.match_.emit(out);
    }
}

/// `ofp_desc`: the switch's self-description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

impl Desc {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Desc {
            mfr_desc: r.string(256)?,
            hw_desc: r.string(256)?,
            sw_desc: r.string(256)?,
            serial_num: r.string(32)?,
            dp_desc: r.string(256)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        wire::put_string(out, &self.mfr_desc, 256);
        wire::put_string(out, &self.hw_desc, 256);
        wire::put_string(out, &self.sw_desc, 256);
        wire::put_string(out, &self.serial_num, 32);
        wire::put_string(out, &self.dp_desc, 256);
    }
}

/// `ofp_flow_stats`: one flow entry as read from a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    #[serde(rename = "match")]
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut f = wire::tlv(r, 0, 56, "ofp_flow_stats")?;
        f.skip(2)?;
        let table_id = f.u8()?;
        f.skip(1)?;
        let duration_sec = f.u32()?;
        let duration_nsec = f.u32()?;
        let priority = f.u16()?;
        let idle_timeout = f.u16()?;
        let hard_timeout = f.u16()?;
        let flags = f.u16()?;
        f.skip(4)?;
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie: f.u64()?,
            packet_count: f.u64()?,
            byte_count: f.u64()?,
            match_: Match::parse(&mut f)?,
            instructions: parse_instructions(&mut f)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        wire::pad(out, 1);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.flags);
        wire::pad(out, 4);
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        self.match_.emit(out);
        emit_instructions(&self.instructions, out);
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}

/// `ofp_aggregate_stats_reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

impl AggregateStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let a = AggregateStats {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            flow_count: r.u32()?,
        };
        r.skip(4)?;
        Ok(a)
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.flow_count);
        wire::pad(out, 4);
    }
}

/// `ofp_table_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

impl TableStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(TableStats {
            table_id,
            active_count: r.u32()?,
            lookup_count: r.u64()?,
            matched_count: r.u64()?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        wire::pad(out, 3);
        out.put_u32(self.active_count);
        out.put_u64(self.lookup_count);
        out.put_u64(self.matched_count);
    }
}

/// `ofp_port_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl PortStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let port_no = r.u32()?;
        r.skip(4)?;
        Ok(PortStats {
            port_no,
            rx_packets: r.u64()?,
            tx_packets: r.u64()?,
            rx_bytes: r.u64()?,
            tx_bytes: r.u64()?,
            rx_dropped: r.u64()?,
            tx_dropped: r.u64()?,
            rx_errors: r.u64()?,
            tx_errors: r.u64()?,
            rx_frame_err: r.u64()?,
            rx_over_err: r.u64()?,
            rx_crc_err: r.u64()?,
            collisions: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        wire::pad(out, 4);
        for v in [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ] {
            out.put_u64(v);
        }
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }
}

/// `ofp_queue_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub port_no: u32,
    pub queue_id: u32,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl QueueStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(QueueStats {
            port_no: r.u32()?,
            queue_id: r.u32()?,
            tx_bytes: r.u64()?,
            tx_packets: r.u64()?,
            tx_errors: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_u32(self.queue_id);
        out.put_u64(self.tx_bytes);
        out.put_u64(self.tx_packets);
        out.put_u64(self.tx_errors);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }
}

/// Packet and byte counters (bucket and meter band statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub packet_count: u64,
    pub byte_count: u64,
}

impl Counter {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Counter {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
    }
}

/// `ofp_group_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub bucket_stats: Vec<Counter>,
}

impl GroupStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut g = wire::tlv(r, 0, 40, "ofp_group_stats")?;
        g.skip(4)?;
        let group_id = g.u32()?;
        let ref_count = g.u32()?;
        g.skip(4)?;
        Ok(GroupStats {
            group_id,
            ref_count,
            packet_count: g.u64()?,
            byte_count: g.u64()?,
            duration_sec: g.u32()?,
            duration_nsec: g.u32()?,
            bucket_stats: parse_all(&mut g, Counter::parse)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        wire::pad(out, 2);
        out.put_u32(self.group_id);
        out.put_u32(self.ref_count);
        wire::pad(out, 4);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        self.bucket_stats.iter().for_each(|c| c.emit(out));
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}

/// `ofp_group_desc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDesc {
    pub group_type: u8,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupDesc {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut g = wire::tlv(r, 0, 8, "ofp_group_desc")?;
        g.skip(2)?;
        let group_type = g.u8()?;
        g.skip(1)?;
        Ok(GroupDesc {
            group_type,
            group_id: g.u32()?,
            buckets: parse_buckets(&mut g)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.group_type);
        wire::pad(out, 1);
        out.put_u32(self.group_id);
        self.buckets.iter().for_each(|b| b.emit(out));
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}

/// `ofp_group_features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFeatures {
    pub types: u32,
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    pub actions: [u32; 4],
}

impl GroupFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(GroupFeatures {
            types: r.u32()?,
            capabilities: r.u32()?,
            max_groups: [r.u32()?, r.u32()?, r.u32()?, r.u32()?],
            actions: [r.u32()?, r.u32()?, r.u32()?, r.u32()?],
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.types);
        out.put_u32(self.capabilities);
        self.max_groups.iter().for_each(|v| out.put_u32(*v));
        self.actions.iter().for_each(|v| out.put_u32(*v));
    }
}

/// `ofp_meter_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub band_stats: Vec<Counter>,
}

impl MeterStats {
    /// Packets its bands acted on: for drop bands, the packets the meter dropped.
    pub fn dropped(&self) -> u64 {
        self.band_stats.iter().map(|b| b.packet_count).sum()
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let len = r.peek_u16(4).map_err(|e| e.within("ofp_meter_stats"))? as usize;
        if len < 40 {
            return Err(Error::BadLength {
                what: "ofp_meter_stats",
                len,
                min: 40,
                have: r.remaining(),
            });
        }
        let mut m = r.sub(len, "ofp_meter_stats")?;
        let meter_id = m.u32()?;
        m.skip(8)?;
        Ok(MeterStats {
            meter_id,
            flow_count: m.u32()?,
            packet_in_count: m.u64()?,
            byte_in_count: m.u64()?,
            duration_sec: m.u32()?,
            duration_nsec: m.u32()?,
            band_stats: parse_all(&mut m, Counter::parse)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u32(self.meter_id);
        out.put_u16(0);
        wire::pad(out, 6);
        out.put_u32(self.flow_count);
        out.put_u64(self.packet_in_count);
        out.put_u64(self.byte_in_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        self.band_stats.iter().for_each(|c| c.emit(out));
        let len = out.len() - start;
        wire::patch_u16(out, start + 4, len);
    }
}

/// `ofp_meter_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterConfig {
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterConfig {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut m = wire::tlv(r, 0, 8, "ofp_meter_config")?;
        m.skip(2)?;
        Ok(MeterConfig {
            flags: m.u16()?,
            meter_id: m.u32()?,
            bands: parse_bands(&mut m)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        self.bands.iter().for_each(|b| b.emit(out));
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}

/// `ofp_meter_features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

impl MeterFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let m = MeterFeatures {
            max_meter: r.u32()?,
            band_types: r.u32()?,
            capabilities: r.u32()?,
            max_bands: r.u8()?,
            max_color: r.u8()?,
        };
        r.skip(2)?;
        Ok(m)
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.max_meter);
        out.put_u32(self.band_types);
        out.put_u32(self.capabilities);
        out.put_u8(self.max_bands);
        out.put_u8(self.max_color);
        wire::pad(out, 2);
    }
}

pub const OFPTFPT_INSTRUCTIONS: u16 = 0;
pub const OFPTFPT_INSTRUCTIONS_MISS: u16 = 1;
pub const OFPTFPT_NEXT_TABLES: u16 = 2;
pub const OFPTFPT_NEXT_TABLES_MISS: u16 = 3;
pub const OFPTFPT_WRITE_ACTIONS: u16 = 4;
pub const OFPTFPT_WRITE_ACTIONS_MISS: u16 = 5;
pub const OFPTFPT_APPLY_ACTIONS: u16 = 6;
pub const OFPTFPT_APPLY_ACTIONS_MISS: u16 = 7;
pub const OFPTFPT_MATCH: u16 = 8;
pub const OFPTFPT_WILDCARDS: u16 = 10;
pub const OFPTFPT_WRITE_SETFIELD: u16 = 12;
pub const OFPTFPT_WRITE_SETFIELD_MISS: u16 = 13;
pub const OFPTFPT_APPLY_SETFIELD: u16 = 14;
pub const OFPTFPT_APPLY_SETFIELD_MISS: u16 = 15;
pub const OFPTFPT_EXPERIMENTER: u16 = 0xfffe;
pub const OFPTFPT_EXPERIMENTER_MISS: u16 = 0xffff;

/// `ofp_table_features`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFeatures {
    pub table_id: u8,
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
    pub properties: Vec<TableFeatureProp>,
}

/// One table feature property. The property type says which list it is (e.g.
/// `OFPTFPT_APPLY_ACTIONS_MISS`); the body's shape follows from the type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFeatureProp {
    pub prop_type: u16,
    pub body: TableFeaturePropBody,
}

/// The content of a table feature property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFeaturePropBody {
    /// `OFPTFPT_INSTRUCTIONS[_MISS]`.
    Instructions(Vec<TypeId>),
    /// `OFPTFPT_NEXT_TABLES[_MISS]`.
    NextTables(Vec<u8>),
    /// `OFPTFPT_{WRITE,APPLY}_ACTIONS[_MISS]`.
    Actions(Vec<TypeId>),
    /// `OFPTFPT_MATCH`, `_WILDCARDS`, `_{WRITE,APPLY}_SETFIELD[_MISS]`.
    Oxm(Vec<OxmId>),
    /// `OFPTFPT_EXPERIMENTER[_MISS]`; `data` is a list of 32-bit words.
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u32>,
    },
    /// A property type this codec does not know.
    Unknown(#[serde(with = "crate::types::hex_bytes")] Bytes),
}

impl TableFeatureProp {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let len = r
            .peek_u16(2)
            .map_err(|e| e.within("table feature property"))? as usize;
        let mut p = wire::tlv(r, 2, 4, "table feature property")?;
        let prop_type = p.u16()?;
        p.skip(2)?;
        let body = match prop_type {
            OFPTFPT_INSTRUCTIONS | OFPTFPT_INSTRUCTIONS_MISS => {
                TableFeaturePropBody::Instructions(parse_all(&mut p, TypeId::parse)?)
            }
            OFPTFPT_NEXT_TABLES | OFPTFPT_NEXT_TABLES_MISS => {
                TableFeaturePropBody::NextTables(parse_all(&mut p, |r| r.u8())?)
            }
            OFPTFPT_WRITE_ACTIONS
            | OFPTFPT_WRITE_ACTIONS_MISS
            | OFPTFPT_APPLY_ACTIONS
            | OFPTFPT_APPLY_ACTIONS_MISS => {
                TableFeaturePropBody::Actions(parse_all(&mut p, TypeId::parse)?)
            }
            OFPTFPT_MATCH
            | OFPTFPT_WILDCARDS
            | OFPTFPT_WRITE_SETFIELD
            | OFPTFPT_WRITE_SETFIELD_MISS
            | OFPTFPT_APPLY_SETFIELD
            | OFPTFPT_APPLY_SETFIELD_MISS => {
                TableFeaturePropBody::Oxm(parse_all(&mut p, OxmId::parse)?)
            }
            OFPTFPT_EXPERIMENTER | OFPTFPT_EXPERIMENTER_MISS => {
                TableFeaturePropBody::Experimenter {
                    experimenter: p.u32()?,
                    exp_type: p.u32()?,
                    data: parse_all(&mut p, |r| r.u32())?,
                }
            }
            _ => TableFeaturePropBody::Unknown(p.rest()),
        };
        r.skip(wire::round8(len) - len)
            .map_err(|e| e.within("table feature property padding"))?;
        Ok(TableFeatureProp { prop_type, body })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(self.prop_type);
        out.put_u16(0);
        match &self.body {
            TableFeaturePropBody::Instructions(ids) | TableFeaturePropBody::Actions(ids) => {
                ids.iter().for_each(|i| i.emit(out))
            }
            TableFeaturePropBody::NextTables(t) => out.extend_from_slice(t),
            TableFeaturePropBody::Oxm(ids) => ids.iter().for_each(|i| i.emit(out)),
            TableFeaturePropBody::Experimenter {
                experimenter,
                exp_type,
                data,
            } => {
                out.put_u32(*experimenter);
                out.put_u32(*exp_type);
                data.iter().for_each(|d| out.put_u32(*d));
            }
            TableFeaturePropBody::Unknown(b) => out.extend_from_slice(b),
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
        wire::pad_to_8(out, start);
    }
}

impl TableFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut t = wire::tlv(r, 0, 64, "ofp_table_features")?;
        t.skip(2)?;
        let table_id = t.u8()?;
        t.skip(5)?;
        Ok(TableFeatures {
            table_id,
            name: t.string(32)?,
            metadata_match: t.u64()?,
            metadata_write: t.u64()?,
            config: t.u32()?,
            max_entries: t.u32()?,
            properties: parse_all(&mut t, TableFeatureProp::parse)?,
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        wire::pad(out, 5);
        wire::put_string(out, &self.name, 32);
        out.put_u64(self.metadata_match);
        out.put_u64(self.metadata_write);
        out.put_u32(self.config);
        out.put_u32(self.max_entries);
        self.properties.iter().for_each(|p| p.emit(out));
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}
