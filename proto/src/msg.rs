//! The message bodies other than multipart: handshake, configuration, asynchronous messages
//! and controller commands (OpenFlow 1.3.5 sections 7.1 to 7.5).
//!
//! Each body has `parse` over a reader positioned after the 8-byte header, and `emit` that
//! appends the body; the header and its length are written by [`crate::Message::emit`].

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::action::{emit_actions, parse_actions, Action};
use crate::instruction::{emit_instructions, parse_instructions, Instruction};
use crate::oxm::Match;
use crate::wire::{self, Reader};
use crate::{Error, MacAddr};

// ---------------------------------------------------------------------------------------------
// HELLO

pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// `OFPT_HELLO`: the version-negotiation elements.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hello {
    pub elements: Vec<HelloElem>,
}

/// One hello element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelloElem {
    /// `OFPHET_VERSIONBITMAP`: bit n of word n/32 set when version n is supported.
    VersionBitmap { bitmaps: Vec<u32> },
    Unknown {
        elem_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl Hello {
    /// The hello servswitch sends: OpenFlow 1.3 only, announced in a version bitmap.
    pub fn of13() -> Hello {
        Hello {
            elements: vec![HelloElem::VersionBitmap {
                bitmaps: vec![1 << 4],
            }],
        }
    }

    /// The versions announced in the bitmap elements, ascending; empty when there is none.
    pub fn versions(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.elements {
            if let HelloElem::VersionBitmap { bitmaps } = e {
                for (w, bits) in bitmaps.iter().enumerate() {
                    for b in 0..32 {
                        if bits & (1 << b) != 0 {
                            if let Ok(ver) = u8::try_from(w * 32 + b) {
                                v.push(ver);
                            }
                        }
                    }
                }
            }
        }
        v
    }

    /// Whether a peer that sent this hello (in a header of `header_version`) speaks 1.3:
    /// with a bitmap, bit 4 must be set; without, the header version must be at least 4
    /// (OpenFlow 1.3.5 section 6.3.1).
    pub fn supports_of13(&self, header_version: u8) -> bool {
        let has_bitmap = self
            .elements
            .iter()
            .any(|e| matches!(e, HelloElem::VersionBitmap { .. }));
        if has_bitmap {
            self.versions().contains(&4)
        } else {
            header_version >= 4
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut elements = Vec::new();
        while !r.is_empty() {
            let len = r.peek_u16(2).map_err(|e| e.within("hello element"))? as usize;
            let mut e = wire::tlv(r, 2, 4, "hello element")?;
            let ty = e.u16()?;
            e.skip(2)?;
            elements.push(if ty == OFPHET_VERSIONBITMAP {
                let mut bitmaps = Vec::new();
                while e.remaining() >= 4 {
                    bitmaps.push(e.u32()?);
                }
                e.finish()?;
                HelloElem::VersionBitmap { bitmaps }
            } else {
                HelloElem::Unknown {
                    elem_type: ty,
                    data: e.rest(),
                }
            });
            // Elements are padded to 8 bytes; the last one's padding may be absent.
            let pad = (wire::round8(len) - len).min(r.remaining());
            r.skip(pad)?;
        }
        Ok(Hello { elements })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        for e in &self.elements {
            let start = out.len();
            match e {
                HelloElem::VersionBitmap { bitmaps } => {
                    out.put_u16(OFPHET_VERSIONBITMAP);
                    out.put_u16(0);
                    for b in bitmaps {
                        out.put_u32(*b);
                    }
                }
                HelloElem::Unknown { elem_type, data } => {
                    out.put_u16(*elem_type);
                    out.put_u16(0);
                    out.extend_from_slice(data);
                }
            }
            let len = out.len() - start;
            wire::patch_u16(out, start + 2, len);
            wire::pad_to_8(out, start);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ERROR

// Error types and the codes servswitch sends or checks (OpenFlow 1.3.5 section 7.4.4); the
// names of all of them are in [`crate::names`], and a test there keeps the two in agreement.
pub const OFPET_HELLO_FAILED: u16 = 0;
pub const OFPHFC_INCOMPATIBLE: u16 = 0;
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPBRC_BAD_TYPE: u16 = 1;
pub const OFPBRC_BAD_MULTIPART: u16 = 2;
pub const OFPBRC_BUFFER_UNKNOWN: u16 = 8;
pub const OFPBRC_IS_SLAVE: u16 = 10;
pub const OFPBRC_BAD_PORT: u16 = 11;
pub const OFPET_BAD_ACTION: u16 = 2;
pub const OFPBAC_BAD_TYPE: u16 = 0;
pub const OFPBAC_BAD_EXPERIMENTER: u16 = 2;
pub const OFPBAC_BAD_OUT_PORT: u16 = 4;
pub const OFPBAC_BAD_OUT_GROUP: u16 = 9;
pub const OFPBAC_MATCH_INCONSISTENT: u16 = 10;
pub const OFPBAC_BAD_SET_TYPE: u16 = 13;
pub const OFPBAC_BAD_SET_ARGUMENT: u16 = 15;
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
pub const OFPBIC_UNKNOWN_INST: u16 = 0;
pub const OFPBIC_UNSUP_INST: u16 = 1;
pub const OFPBIC_BAD_TABLE_ID: u16 = 2;
pub const OFPBIC_BAD_EXPERIMENTER: u16 = 5;
pub const OFPET_BAD_MATCH: u16 = 4;
pub const OFPBMC_BAD_FIELD: u16 = 6;
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
pub const OFPFMFC_BAD_TABLE_ID: u16 = 2;
pub const OFPFMFC_OVERLAP: u16 = 3;
pub const OFPFMFC_BAD_COMMAND: u16 = 6;
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
pub const OFPGMFC_GROUP_EXISTS: u16 = 0;
pub const OFPGMFC_INVALID_GROUP: u16 = 1;
pub const OFPGMFC_CHAINING_UNSUPPORTED: u16 = 5;
pub const OFPGMFC_UNKNOWN_GROUP: u16 = 8;
pub const OFPGMFC_BAD_TYPE: u16 = 10;
pub const OFPGMFC_BAD_COMMAND: u16 = 11;
pub const OFPGMFC_BAD_BUCKET: u16 = 12;
pub const OFPGMFC_BAD_WATCH: u16 = 13;
pub const OFPET_METER_MOD_FAILED: u16 = 12;
pub const OFPMMFC_METER_EXISTS: u16 = 1;
pub const OFPMMFC_INVALID_METER: u16 = 2;
pub const OFPMMFC_UNKNOWN_METER: u16 = 3;
pub const OFPMMFC_BAD_COMMAND: u16 = 4;
pub const OFPMMFC_BAD_FLAGS: u16 = 5;
pub const OFPMMFC_BAD_RATE: u16 = 6;
pub const OFPMMFC_BAD_BAND: u16 = 8;
/// `OFPET_EXPERIMENTER`.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

/// `OFPT_ERROR`. For `OFPET_EXPERIMENTER` errors, `code` carries `exp_type` and `experimenter`
/// is present; `data` is the offending request (or its first 64 bytes), kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimenter: Option<u32>,
    #[serde(with = "crate::types::hex_bytes")]
    pub data: Bytes,
}

impl ErrorMsg {
    pub fn new(err_type: u16, code: u16, data: Bytes) -> Self {
        ErrorMsg {
            err_type,
            code,
            experimenter: None,
            data,
        }
    }
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let err_type = r.u16()?;
        let code = r.u16()?;
        let experimenter = if err_type == OFPET_EXPERIMENTER {
            Some(r.u32()?)
        } else {
            None
        };
        Ok(ErrorMsg {
            err_type,
            code,
            experimenter,
            data: r.rest(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(self.err_type);
        out.put_u16(self.code);
        if self.err_type == OFPET_EXPERIMENTER {
            out.put_u32(self.experimenter.unwrap_or(0));
        }
        out.extend_from_slice(&self.data);
    }
    /// The xid of the offending request, when `data` holds at least its header.
    pub fn offending_xid(&self) -> Option<u32> {
        let b: [u8; 4] = self.data.get(4..8)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }
    /// `OFPET_*` name and `OFP*_*` code name, e.g. ("OFPET_BAD_MATCH", "OFPBMC_BAD_PREREQ").
    pub fn names(&self) -> (&'static str, Option<&'static str>) {
        crate::names::error_names(self.err_type, self.code)
    }
}

// ---------------------------------------------------------------------------------------------
// EXPERIMENTER

/// `OFPT_EXPERIMENTER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experimenter {
    pub experimenter: u32,
    pub exp_type: u32,
    #[serde(with = "crate::types::hex_bytes")]
    pub data: Bytes,
}

impl Experimenter {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Experimenter {
            experimenter: r.u32()?,
            exp_type: r.u32()?,
            data: r.rest(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.experimenter);
        out.put_u32(self.exp_type);
        out.extend_from_slice(&self.data);
    }
}

// ---------------------------------------------------------------------------------------------
// FEATURES, CONFIG

/// `OFPT_FEATURES_REPLY` (`ofp_switch_features`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
    pub reserved: u32,
}

impl SwitchFeatures {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let datapath_id = r.u64()?;
        let n_buffers = r.u32()?;
        let n_tables = r.u8()?;
        let auxiliary_id = r.u8()?;
        r.skip(2)?;
        Ok(SwitchFeatures {
            datapath_id,
            n_buffers,
            n_tables,
            auxiliary_id,
            capabilities: r.u32()?,
            reserved: r.u32()?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64(self.datapath_id);
        out.put_u32(self.n_buffers);
        out.put_u8(self.n_tables);
        out.put_u8(self.auxiliary_id);
        wire::pad(out, 2);
        out.put_u32(self.capabilities);
        out.put_u32(self.reserved);
    }
}

/// `ofp_switch_config` (GET_CONFIG_REPLY, SET_CONFIG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

impl SwitchConfig {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(SwitchConfig {
            flags: r.u16()?,
            miss_send_len: r.u16()?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(self.flags);
        out.put_u16(self.miss_send_len);
    }
}

// ---------------------------------------------------------------------------------------------
// PACKET_IN, PACKET_OUT

pub const OFPR_NO_MATCH: u8 = 0;
pub const OFPR_ACTION: u8 = 1;
pub const OFPR_INVALID_TTL: u8 = 2;

/// `OFPT_PACKET_IN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    #[serde(rename = "match")]
    pub match_: Match,
    #[serde(with = "crate::types::hex_bytes")]
    pub data: Bytes,
}

impl PacketIn {
    /// A whole packet (unbuffered, `total_len` its length) received on `in_port`, sent to
    /// the controller for `reason` from table 0 with cookie 0: what a switch sends for a
    /// table-miss or a plain `output:CONTROLLER`.
    pub fn unbuffered(in_port: u32, reason: u8, data: impl Into<Bytes>) -> PacketIn {
        let data = data.into();
        PacketIn {
            buffer_id: crate::NO_BUFFER,
            total_len: u16::try_from(data.len()).unwrap_or(u16::MAX),
            reason,
            table_id: 0,
            cookie: 0,
            match_: Match::new(vec![crate::Oxm::InPort(in_port, None)]),
            data,
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let buffer_id = r.u32()?;
        let total_len = r.u16()?;
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let match_ = Match::parse(r)?;
        r.skip(2)?;
        Ok(PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id,
            cookie,
            match_,
            data: r.rest(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.buffer_id);
        out.put_u16(self.total_len);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u64(self.cookie);
        self.match_.emit(out);
        wire::pad(out, 2);
        out.extend_from_slice(&self.data);
    }
    /// The ingress port from the match, if present.
    pub fn in_port(&self) -> Option<u32> {
        self.match_.fields.iter().find_map(|f| match f {
            crate::Oxm::InPort(p, _) => Some(*p),
            _ => None,
        })
    }

    /// The view a controller decides on, borrowing this message's packet.
    pub fn view(&self) -> PacketInView<'_> {
        PacketInView {
            buffer_id: self.buffer_id,
            total_len: self.total_len,
            reason: self.reason,
            table_id: self.table_id,
            cookie: self.cookie,
            in_port: self.in_port(),
            data: &self.data,
        }
    }
}

/// A PACKET_IN read in place from its message's bytes: the fields a controller decides on,
/// the packet borrowed (not copied, not reference-counted), the match reduced to its
/// ingress port. The runtime reads the common packet-in this way; [`PacketIn::view`] gives
/// the same view of a parsed message, so one decision serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInView<'a> {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    /// The match's first `in_port`, as [`PacketIn::in_port`] finds it.
    pub in_port: Option<u32>,
    pub data: &'a [u8],
}

impl<'a> PacketInView<'a> {
    /// Reads a whole `OFPT_PACKET_IN` message (header included, `msg` exactly its length).
    /// `None` for anything else, and for anything [`crate::Message::parse`] would refuse:
    /// whenever this gives a view, that parser gives a `PacketIn` whose
    /// [`PacketIn::view`] is equal (a property test holds it to that), so a caller can
    /// fall back to the general parser for whatever this does not read.
    pub fn parse(msg: &'a [u8]) -> Option<PacketInView<'a>> {
        let be16 = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(msg.get(at..at + 2)?.try_into().ok()?))
        };
        let be32 = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(msg.get(at..at + 4)?.try_into().ok()?))
        };
        // ofp_header, then ofp_packet_in's fixed part: buffer_id, total_len, reason,
        // table_id, cookie (8 + 16 bytes), then ofp_match at offset 24.
        const MATCH: usize = crate::header::HEADER_LEN + 16;
        if *msg.first()? != crate::header::OFP_VERSION
            || *msg.get(1)? != crate::header::OFPT_PACKET_IN
            || usize::from(be16(2)?) != msg.len()
            || be16(MATCH)? != crate::oxm::OFPMT_OXM
        {
            return None;
        }
        let match_len = usize::from(be16(MATCH + 2)?);
        if match_len < 4 {
            return None;
        }
        let oxms = msg.get(MATCH + 4..MATCH + match_len)?;
        // After the match: its padding to 8, then 2 bytes of padding, then the packet.
        let data = msg.get(MATCH + wire::round8(match_len) + 2..)?;
        let mut in_port = None;
        let mut rest = oxms;
        while !rest.is_empty() {
            let header = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
            let (class, field, hasmask, len) = crate::oxm::split_header(header);
            let value = rest.get(4..4 + len)?;
            if in_port.is_none()
                && class == crate::oxm::OFPXMC_OPENFLOW_BASIC
                && field == crate::OxmField::InPort.number()
                && len == if hasmask { 8 } else { 4 }
            {
                in_port = Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?));
            }
            rest = rest.get(4 + len..)?;
        }
        Some(PacketInView {
            buffer_id: be32(crate::header::HEADER_LEN)?,
            total_len: be16(crate::header::HEADER_LEN + 4)?,
            reason: *msg.get(crate::header::HEADER_LEN + 6)?,
            table_id: *msg.get(crate::header::HEADER_LEN + 7)?,
            cookie: u64::from_be_bytes(
                msg.get(crate::header::HEADER_LEN + 8..MATCH)?
                    .try_into()
                    .ok()?,
            ),
            in_port,
            data,
        })
    }
}

/// `OFPT_PACKET_OUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: u32,
    /// Inline for one action (the common answer: out of one port), on the heap for more.
    pub actions: smallvec::SmallVec<[Action; 1]>,
    #[serde(with = "crate::types::hex_bytes")]
    pub data: Bytes,
}

impl PacketOut {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let buffer_id = r.u32()?;
        let in_port = r.u32()?;
        let actions_len = r.u16()? as usize;
        r.skip(6)?;
        let mut a = r.sub(actions_len, "packet_out actions")?;
        let actions = smallvec::SmallVec::from_vec(parse_actions(&mut a)?);
        Ok(PacketOut {
            buffer_id,
            in_port,
            actions,
            data: r.rest(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.buffer_id);
        out.put_u32(self.in_port);
        let at = out.len();
        out.put_u16(0);
        wire::pad(out, 6);
        let start = out.len();
        emit_actions(&self.actions, out);
        let len = out.len() - start;
        wire::patch_u16(out, at, len);
        out.extend_from_slice(&self.data);
    }
}

/// A PACKET_OUT of one short frame out of one port, the frame held inline: what a
/// controller answers most packet-ins with (an ARP reply from the gateway), encoded with no
/// heap allocation ([`InlinePacketOut::emit`]). Its bytes on the wire are those of the
/// equal [`PacketOut`] ([`InlinePacketOut::to_packet_out`]) in a [`crate::Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlinePacketOut {
    pub in_port: u32,
    pub out_port: u32,
    len: u8,
    frame: [u8; InlinePacketOut::MAX_FRAME],
}

impl InlinePacketOut {
    /// The longest frame held inline (a minimum Ethernet frame without its checksum: an
    /// ARP packet and its padding fit).
    pub const MAX_FRAME: usize = 60;

    /// `frame` sent out of `out_port`, as if from `in_port` (`OFPP_CONTROLLER` for a frame
    /// of the controller's own); `None` when the frame is longer than [`Self::MAX_FRAME`].
    pub fn new(in_port: u32, out_port: u32, frame: &[u8]) -> Option<InlinePacketOut> {
        let mut inline = [0u8; Self::MAX_FRAME];
        inline.get_mut(..frame.len())?.copy_from_slice(frame);
        Some(InlinePacketOut {
            in_port,
            out_port,
            len: frame.len() as u8,
            frame: inline,
        })
    }

    pub fn frame(&self) -> &[u8] {
        self.frame.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The same message as a [`PacketOut`] (on the heap).
    pub fn to_packet_out(&self) -> PacketOut {
        PacketOut {
            buffer_id: crate::NO_BUFFER,
            in_port: self.in_port,
            actions: smallvec::smallvec![Action::output(self.out_port)],
            data: Bytes::copy_from_slice(self.frame()),
        }
    }

    /// Appends the whole message (header with `xid` included) to `out`.
    pub fn emit(&self, xid: u32, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u8(crate::header::OFP_VERSION);
        out.put_u8(crate::header::OFPT_PACKET_OUT);
        out.put_u16(0);
        out.put_u32(xid);
        out.put_u32(crate::NO_BUFFER);
        out.put_u32(self.in_port);
        let at = out.len();
        out.put_u16(0);
        wire::pad(out, 6);
        let actions = out.len();
        Action::output(self.out_port).emit(out);
        let len = out.len() - actions;
        wire::patch_u16(out, at, len);
        out.extend_from_slice(self.frame());
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }
}

// ---------------------------------------------------------------------------------------------
// FLOW_MOD, FLOW_REMOVED

pub const OFPFC_ADD: u8 = 0;
pub const OFPFC_MODIFY: u8 = 1;
pub const OFPFC_MODIFY_STRICT: u8 = 2;
pub const OFPFC_DELETE: u8 = 3;
pub const OFPFC_DELETE_STRICT: u8 = 4;

pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
pub const OFPFF_RESET_COUNTS: u16 = 1 << 2;
pub const OFPFF_NO_PKT_COUNTS: u16 = 1 << 3;
pub const OFPFF_NO_BYT_COUNTS: u16 = 1 << 4;

/// `OFPT_FLOW_MOD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: u8,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    #[serde(rename = "match")]
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl Default for FlowMod {
    /// An `OFPFC_ADD` into table 0 at priority 0x8000 (the spec's default), no buffer,
    /// out_port and out_group ANY.
    fn default() -> Self {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: OFPFC_ADD,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0x8000,
            buffer_id: crate::NO_BUFFER,
            out_port: crate::port::ANY,
            out_group: crate::group::ANY,
            flags: 0,
            match_: Match::default(),
            instructions: Vec::new(),
        }
    }
}

impl FlowMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = r.u8()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let match_ = Match::parse(r)?;
        let instructions = parse_instructions(r)?;
        Ok(FlowMod {
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
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        out.put_u8(self.table_id);
        out.put_u8(self.command);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u32(self.buffer_id);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_u16(self.flags);
        wire::pad(out, 2);
        self.match_.emit(out);
        emit_instructions(&self.instructions, out);
    }
}

/// `ofp_flow_removed_reason` (OpenFlow 1.3.5 section 7.4.2).
pub const OFPRR_IDLE_TIMEOUT: u8 = 0;
pub const OFPRR_HARD_TIMEOUT: u8 = 1;
pub const OFPRR_DELETE: u8 = 2;
pub const OFPRR_GROUP_DELETE: u8 = 3;

/// `OFPT_FLOW_REMOVED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    #[serde(rename = "match")]
    pub match_: Match,
}

impl FlowRemoved {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(FlowRemoved {
            cookie: r.u64()?,
            priority: r.u16()?,
            reason: r.u8()?,
            table_id: r.u8()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
            idle_timeout: r.u16()?,
            hard_timeout: r.u16()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            match_: Match::parse(r)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64(self.cookie);
        out.put_u16(self.priority);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        self.match_.emit(out);
    }
}

// ---------------------------------------------------------------------------------------------
// PORTS

pub const OFPPR_ADD: u8 = 0;
pub const OFPPR_DELETE: u8 = 1;
pub const OFPPR_MODIFY: u8 = 2;
pub const OFPPC_PORT_DOWN: u32 = 1 << 0;
pub const OFPPS_LINK_DOWN: u32 = 1 << 0;

/// `struct ofp_port` (64 bytes). The default is port 0, up, with no features or speeds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: MacAddr,
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

impl Port {
    pub const LEN: usize = 64;

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut p = r.sub(Self::LEN, "ofp_port")?;
        let port_no = p.u32()?;
        p.skip(4)?;
        let hw_addr = p.mac()?;
        p.skip(2)?;
        Ok(Port {
            port_no,
            hw_addr,
            name: p.string(16)?,
            config: p.u32()?,
            state: p.u32()?,
            curr: p.u32()?,
            advertised: p.u32()?,
            supported: p.u32()?,
            peer: p.u32()?,
            curr_speed: p.u32()?,
            max_speed: p.u32()?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        wire::pad(out, 4);
        out.extend_from_slice(&self.hw_addr.0);
        wire::pad(out, 2);
        wire::put_string(out, &self.name, 16);
        for v in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            out.put_u32(v);
        }
    }
    /// Up: neither administratively down nor link down.
    pub fn is_up(&self) -> bool {
        self.config & OFPPC_PORT_DOWN == 0 && self.state & OFPPS_LINK_DOWN == 0
    }
}

/// `OFPT_PORT_STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub reason: u8,
    pub desc: Port,
}

impl PortStatus {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let reason = r.u8()?;
        r.skip(7)?;
        Ok(PortStatus {
            reason,
            desc: Port::parse(r)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u8(self.reason);
        wire::pad(out, 7);
        self.desc.emit(out);
    }
}

/// `OFPT_PORT_MOD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMod {
    pub port_no: u32,
    pub hw_addr: MacAddr,
    pub config: u32,
    pub mask: u32,
    pub advertise: u32,
}

impl PortMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = r.mac()?;
        r.skip(2)?;
        let pm = PortMod {
            port_no,
            hw_addr,
            config: r.u32()?,
            mask: r.u32()?,
            advertise: r.u32()?,
        };
        r.skip(4)?;
        Ok(pm)
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        wire::pad(out, 4);
        out.extend_from_slice(&self.hw_addr.0);
        wire::pad(out, 2);
        out.put_u32(self.config);
        out.put_u32(self.mask);
        out.put_u32(self.advertise);
        wire::pad(out, 4);
    }
}

/// `OFPT_TABLE_MOD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMod {
    pub table_id: u8,
    pub config: u32,
}

impl TableMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(TableMod {
            table_id,
            config: r.u32()?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        wire::pad(out, 3);
        out.put_u32(self.config);
    }
}

// ---------------------------------------------------------------------------------------------
// GROUPS

pub const OFPGC_ADD: u16 = 0;
pub const OFPGC_MODIFY: u16 = 1;
pub const OFPGC_DELETE: u16 = 2;
pub const OFPGT_ALL: u8 = 0;
pub const OFPGT_SELECT: u8 = 1;
pub const OFPGT_INDIRECT: u8 = 2;
pub const OFPGT_FF: u8 = 3;

/// `struct ofp_bucket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut b = wire::tlv(r, 0, 16, "ofp_bucket")?;
        b.skip(2)?;
        let weight = b.u16()?;
        let watch_port = b.u32()?;
        let watch_group = b.u32()?;
        b.skip(4)?;
        Ok(Bucket {
            weight,
            watch_port,
            watch_group,
            actions: parse_actions(&mut b)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.weight);
        out.put_u32(self.watch_port);
        out.put_u32(self.watch_group);
        wire::pad(out, 4);
        emit_actions(&self.actions, out);
        let len = out.len() - start;
        wire::patch_u16(out, start, len);
    }
}

pub(crate) fn parse_buckets(r: &mut Reader<'_>) -> Result<Vec<Bucket>, Error> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(Bucket::parse(r)?);
    }
    Ok(v)
}

/// `OFPT_GROUP_MOD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMod {
    pub command: u16,
    pub group_type: u8,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let command = r.u16()?;
        let group_type = r.u8()?;
        r.skip(1)?;
        Ok(GroupMod {
            command,
            group_type,
            group_id: r.u32()?,
            buckets: parse_buckets(r)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(self.command);
        out.put_u8(self.group_type);
        wire::pad(out, 1);
        out.put_u32(self.group_id);
        for b in &self.buckets {
            b.emit(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// METERS

/// Meter numbers (`ofp_meter`): 1..=[`meter::MAX`] are the switch's own; the virtual meters
/// follow.
pub mod meter {
    /// The last meter number a controller may create.
    pub const MAX: u32 = 0xffff_0000;
    /// The meter of packets the switch handles in its slow path.
    pub const SLOWPATH: u32 = 0xffff_fffd;
    /// The meter of every packet the switch sends to its controllers (all packet-ins).
    pub const CONTROLLER: u32 = 0xffff_fffe;
    /// Every meter (in requests: stats, config, delete).
    pub const ALL: u32 = 0xffff_ffff;
}

/// `ofp_meter_mod_command`.
pub const OFPMC_ADD: u16 = 0;
pub const OFPMC_MODIFY: u16 = 1;
pub const OFPMC_DELETE: u16 = 2;

/// `ofp_meter_flags`.
pub const OFPMF_KBPS: u16 = 1 << 0;
pub const OFPMF_PKTPS: u16 = 1 << 1;
pub const OFPMF_BURST: u16 = 1 << 2;
pub const OFPMF_STATS: u16 = 1 << 3;

pub const OFPMBT_DROP: u16 = 1;
pub const OFPMBT_DSCP_REMARK: u16 = 2;
pub const OFPMBT_EXPERIMENTER: u16 = 0xffff;

/// A meter band (`ofp_meter_band_*`, 16 bytes, longer for experimenter bands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterBand {
    pub rate: u32,
    pub burst_size: u32,
    pub kind: MeterBandKind,
}

/// What a meter band does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterBandKind {
    Drop,
    DscpRemark {
        prec_level: u8,
    },
    Experimenter {
        experimenter: u32,
        #[serde(default, with = "crate::types::hex_bytes")]
        data: Bytes,
    },
    Unknown {
        band_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl MeterBand {
    pub fn band_type(&self) -> u16 {
        match &self.kind {
            MeterBandKind::Drop => OFPMBT_DROP,
            MeterBandKind::DscpRemark { .. } => OFPMBT_DSCP_REMARK,
            MeterBandKind::Experimenter { .. } => OFPMBT_EXPERIMENTER,
            MeterBandKind::Unknown { band_type, .. } => *band_type,
        }
    }
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut b = wire::tlv(r, 2, 16, "ofp_meter_band")?;
        let ty = b.u16()?;
        b.skip(2)?;
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        let kind = match ty {
            OFPMBT_DROP => {
                b.skip(4)?;
                MeterBandKind::Drop
            }
            OFPMBT_DSCP_REMARK => {
                let prec_level = b.u8()?;
                b.skip(3)?;
                MeterBandKind::DscpRemark { prec_level }
            }
            OFPMBT_EXPERIMENTER => MeterBandKind::Experimenter {
                experimenter: b.u32()?,
                data: b.rest(),
            },
            _ => MeterBandKind::Unknown {
                band_type: ty,
                data: b.rest(),
            },
        };
        b.finish()?;
        Ok(MeterBand {
            rate,
            burst_size,
            kind,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(self.band_type());
        out.put_u16(0);
        out.put_u32(self.rate);
        out.put_u32(self.burst_size);
        match &self.kind {
            MeterBandKind::Drop => wire::pad(out, 4),
            MeterBandKind::DscpRemark { prec_level } => {
                out.put_u8(*prec_level);
                wire::pad(out, 3);
            }
            MeterBandKind::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
            }
            MeterBandKind::Unknown { data, .. } => out.extend_from_slice(data),
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }
}

pub(crate) fn parse_bands(r: &mut Reader<'_>) -> Result<Vec<MeterBand>, Error> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(MeterBand::parse(r)?);
    }
    Ok(v)
}

/// `OFPT_METER_MOD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterMod {
    pub command: u16,
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(MeterMod {
            command: r.u16()?,
            flags: r.u16()?,
            meter_id: r.u32()?,
            bands: parse_bands(r)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(self.command);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        for b in &self.bands {
            b.emit(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// QUEUE CONFIG

pub const OFPQT_MIN_RATE: u16 = 1;
pub const OFPQT_MAX_RATE: u16 = 2;
pub const OFPQT_EXPERIMENTER: u16 = 0xffff;

/// A queue property (`ofp_queue_prop_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueProp {
    MinRate {
        rate: u16,
    },
    MaxRate {
        rate: u16,
    },
    Experimenter {
        experimenter: u32,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
    Unknown {
        property: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl QueueProp {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut p = wire::tlv(r, 2, 8, "ofp_queue_prop")?;
        let ty = p.u16()?;
        p.skip(6)?;
        let prop = match ty {
            OFPQT_MIN_RATE | OFPQT_MAX_RATE => {
                let rate = p.u16()?;
                p.skip(6)?;
                if ty == OFPQT_MIN_RATE {
                    QueueProp::MinRate { rate }
                } else {
                    QueueProp::MaxRate { rate }
                }
            }
            OFPQT_EXPERIMENTER => {
                let experimenter = p.u32()?;
                p.skip(4)?;
                QueueProp::Experimenter {
                    experimenter,
                    data: p.rest(),
                }
            }
            _ => QueueProp::Unknown {
                property: ty,
                data: p.rest(),
            },
        };
        p.finish()?;
        Ok(prop)
    }
    /// Appends the property; the length covers exactly what is written (an experimenter
    /// property's data is not padded, as Ryu and OVS send it).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let ty = match self {
            QueueProp::MinRate { .. } => OFPQT_MIN_RATE,
            QueueProp::MaxRate { .. } => OFPQT_MAX_RATE,
            QueueProp::Experimenter { .. } => OFPQT_EXPERIMENTER,
            QueueProp::Unknown { property, .. } => *property,
        };
        out.put_u16(ty);
        out.put_u16(0);
        wire::pad(out, 4);
        match self {
            QueueProp::MinRate { rate } | QueueProp::MaxRate { rate } => {
                out.put_u16(*rate);
                wire::pad(out, 6);
            }
            QueueProp::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                wire::pad(out, 4);
                out.extend_from_slice(data);
            }
            QueueProp::Unknown { data, .. } => out.extend_from_slice(data),
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }
}

/// `struct ofp_packet_queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketQueue {
    pub queue_id: u32,
    pub port: u32,
    pub properties: Vec<QueueProp>,
}

impl PacketQueue {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut q = wire::tlv(r, 8, 16, "ofp_packet_queue")?;
        let queue_id = q.u32()?;
        let port = q.u32()?;
        q.skip(8)?;
        let mut properties = Vec::new();
        while !q.is_empty() {
            properties.push(QueueProp::parse(&mut q)?);
        }
        Ok(PacketQueue {
            queue_id,
            port,
            properties,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u32(self.queue_id);
        out.put_u32(self.port);
        out.put_u16(0);
        wire::pad(out, 6);
        for p in &self.properties {
            p.emit(out);
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 8, len);
    }
}

/// `OFPT_QUEUE_GET_CONFIG_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueGetConfigReply {
    pub port: u32,
    pub queues: Vec<PacketQueue>,
}

impl QueueGetConfigReply {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let port = r.u32()?;
        r.skip(4)?;
        let mut queues = Vec::new();
        while !r.is_empty() {
            queues.push(PacketQueue::parse(r)?);
        }
        Ok(QueueGetConfigReply { port, queues })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port);
        wire::pad(out, 4);
        for q in &self.queues {
            q.emit(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ROLE, ASYNC

pub const OFPCR_ROLE_NOCHANGE: u32 = 0;
pub const OFPCR_ROLE_EQUAL: u32 = 1;
pub const OFPCR_ROLE_MASTER: u32 = 2;
pub const OFPCR_ROLE_SLAVE: u32 = 3;

/// `OFPT_ROLE_REQUEST` / `OFPT_ROLE_REPLY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub role: u32,
    pub generation_id: u64,
}

impl Role {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let role = r.u32()?;
        r.skip(4)?;
        Ok(Role {
            role,
            generation_id: r.u64()?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.role);
        wire::pad(out, 4);
        out.put_u64(self.generation_id);
    }
}

/// `OFPT_GET_ASYNC_REPLY` / `OFPT_SET_ASYNC`: element 0 for master/equal, 1 for slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

impl AsyncConfig {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(AsyncConfig {
            packet_in_mask: [r.u32()?, r.u32()?],
            port_status_mask: [r.u32()?, r.u32()?],
            flow_removed_mask: [r.u32()?, r.u32()?],
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        for m in [
            self.packet_in_mask,
            self.port_status_mask,
            self.flow_removed_mask,
        ] {
            out.put_u32(m[0]);
            out.put_u32(m[1]);
        }
    }
}
