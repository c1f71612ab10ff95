//! The OpenFlow header, the message enum, and framing of a byte stream into messages.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

pub use crate::header::*;
use crate::msg::*;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::wire::{self, Reader};
use crate::Error;

/// One OpenFlow 1.3 message: its transaction id and its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub xid: u32,
    #[serde(flatten)]
    pub body: Body,
}

/// Every OpenFlow 1.3.5 message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum Body {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(#[serde(with = "crate::types::hex_bytes")] Bytes),
    EchoReply(#[serde(with = "crate::types::hex_bytes")] Bytes),
    Experimenter(Experimenter),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    PortMod(PortMod),
    TableMod(TableMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest {
        port: u32,
    },
    QueueGetConfigReply(QueueGetConfigReply),
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    MeterMod(MeterMod),
    /// A message type this codec does not know; its body as received.
    Unknown {
        msg_type: u8,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl Body {
    /// The `ofp_type` of this body.
    pub fn msg_type(&self) -> u8 {
        match self {
            Body::Hello(_) => OFPT_HELLO,
            Body::Error(_) => OFPT_ERROR,
            Body::EchoRequest(_) => OFPT_ECHO_REQUEST,
            Body::EchoReply(_) => OFPT_ECHO_REPLY,
            Body::Experimenter(_) => OFPT_EXPERIMENTER,
            Body::FeaturesRequest => OFPT_FEATURES_REQUEST,
            Body::FeaturesReply(_) => OFPT_FEATURES_REPLY,
            Body::GetConfigRequest => OFPT_GET_CONFIG_REQUEST,
            Body::GetConfigReply(_) => OFPT_GET_CONFIG_REPLY,
            Body::SetConfig(_) => OFPT_SET_CONFIG,
            Body::PacketIn(_) => OFPT_PACKET_IN,
            Body::FlowRemoved(_) => OFPT_FLOW_REMOVED,
            Body::PortStatus(_) => OFPT_PORT_STATUS,
            Body::PacketOut(_) => OFPT_PACKET_OUT,
            Body::FlowMod(_) => OFPT_FLOW_MOD,
            Body::GroupMod(_) => OFPT_GROUP_MOD,
            Body::PortMod(_) => OFPT_PORT_MOD,
            Body::TableMod(_) => OFPT_TABLE_MOD,
            Body::MultipartRequest(_) => OFPT_MULTIPART_REQUEST,
            Body::MultipartReply(_) => OFPT_MULTIPART_REPLY,
            Body::BarrierRequest => OFPT_BARRIER_REQUEST,
            Body::BarrierReply => OFPT_BARRIER_REPLY,
            Body::QueueGetConfigRequest { .. } => OFPT_QUEUE_GET_CONFIG_REQUEST,
            Body::QueueGetConfigReply(_) => OFPT_QUEUE_GET_CONFIG_REPLY,
            Body::RoleRequest(_) => OFPT_ROLE_REQUEST,
            Body::RoleReply(_) => OFPT_ROLE_REPLY,
            Body::GetAsyncRequest => OFPT_GET_ASYNC_REQUEST,
            Body::GetAsyncReply(_) => OFPT_GET_ASYNC_REPLY,
            Body::SetAsync(_) => OFPT_SET_ASYNC,
            Body::MeterMod(_) => OFPT_METER_MOD,
            Body::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// The `OFPT_*` name of this body's type.
    pub fn name(&self) -> &'static str {
        crate::names::msg_type_name(self.msg_type())
    }
}

impl Message {
    pub fn new(xid: u32, body: Body) -> Self {
        Message { xid, body }
    }

    /// Parses exactly one whole message (header included). The header's length must equal
    /// `frame.len()`; use [`decode_frame`] to cut a stream into messages.
    pub fn parse(frame: &Bytes) -> Result<Message, Error> {
        let h = Header::peek(frame).ok_or(Error::Truncated {
            what: "ofp_header",
            need: HEADER_LEN,
            have: frame.len(),
        })?;
        if h.version != OFP_VERSION {
            return Err(Error::BadVersion {
                version: h.version,
                msg_type: h.msg_type,
            });
        }
        let len = h.length as usize;
        if len < HEADER_LEN || len > frame.len() {
            return Err(Error::BadLength {
                what: "ofp_header",
                len,
                min: HEADER_LEN,
                have: frame.len(),
            });
        }
        if len < frame.len() {
            return Err(Error::Trailing {
                what: "message",
                extra: frame.len() - len,
            });
        }
        let mut r = Reader::new(frame, crate::names::msg_type_name(h.msg_type));
        r.skip(HEADER_LEN)?;
        let body = parse_body(h.msg_type, &mut r)?;
        r.finish()?;
        Ok(Message { xid: h.xid, body })
    }

    /// Parses one message from a byte slice (copies it once).
    pub fn parse_slice(b: &[u8]) -> Result<Message, Error> {
        Message::parse(&Bytes::copy_from_slice(b))
    }

    /// Appends the message, header included, computing every length.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u8(OFP_VERSION);
        out.put_u8(self.body.msg_type());
        out.put_u16(0);
        out.put_u32(self.xid);
        emit_body(&self.body, out);
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }

    /// The message as a new byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.emit(&mut v);
        v
    }
}

fn parse_body(ty: u8, r: &mut Reader<'_>) -> Result<Body, Error> {
    Ok(match ty {
        OFPT_HELLO => Body::Hello(Hello::parse(r)?),
        OFPT_ERROR => Body::Error(ErrorMsg::parse(r)?),
        OFPT_ECHO_REQUEST => Body::EchoRequest(r.rest()),
        OFPT_ECHO_REPLY => Body::EchoReply(r.rest()),
        OFPT_EXPERIMENTER => Body::Experimenter(Experimenter::parse(r)?),
        OFPT_FEATURES_REQUEST => Body::FeaturesRequest,
        OFPT_FEATURES_REPLY => Body::FeaturesReply(SwitchFeatures::parse(r)?),
        OFPT_GET_CONFIG_REQUEST => Body::GetConfigRequest,
        OFPT_GET_CONFIG_REPLY => Body::GetConfigReply(SwitchConfig::parse(r)?),
        OFPT_SET_CONFIG => Body::SetConfig(SwitchConfig::parse(r)?),
        OFPT_PACKET_IN => Body::PacketIn(PacketIn::parse(r)?),
        OFPT_FLOW_REMOVED => Body::FlowRemoved(FlowRemoved::parse(r)?),
        OFPT_PORT_STATUS => Body::PortStatus(PortStatus::parse(r)?),
        OFPT_PACKET_OUT => Body::PacketOut(PacketOut::parse(r)?),
        OFPT_FLOW_MOD => Body::FlowMod(FlowMod::parse(r)?),
        OFPT_GROUP_MOD => Body::GroupMod(GroupMod::parse(r)?),
        OFPT_PORT_MOD => Body::PortMod(PortMod::parse(r)?),
        OFPT_TABLE_MOD => Body::TableMod(TableMod::parse(r)?),
        OFPT_MULTIPART_REQUEST => Body::MultipartRequest(MultipartRequest::parse(r)?),
        OFPT_MULTIPART_REPLY => Body::MultipartReply(MultipartReply::parse(r)?),
        OFPT_BARRIER_REQUEST => Body::BarrierRequest,
        OFPT_BARRIER_REPLY => Body::BarrierReply,
        OFPT_QUEUE_GET_CONFIG_REQUEST => {
            let port = r.u32()?;
            r.skip(4)?;
            Body::QueueGetConfigRequest { port }
        }
        OFPT_QUEUE_GET_CONFIG_REPLY => Body::QueueGetConfigReply(QueueGetConfigReply::parse(r)?),
        OFPT_ROLE_REQUEST => Body::RoleRequest(Role::parse(r)?),
        OFPT_ROLE_REPLY => Body::RoleReply(Role::parse(r)?),
        OFPT_GET_ASYNC_REQUEST => Body::GetAsyncRequest,
        OFPT_GET_ASYNC_REPLY => Body::GetAsyncReply(AsyncConfig::parse(r)?),
        OFPT_SET_ASYNC => Body::SetAsync(AsyncConfig::parse(r)?),
        OFPT_METER_MOD => Body::MeterMod(MeterMod::parse(r)?),
        _ => Body::Unknown {
            msg_type: ty,
            data: r.rest(),
        },
    })
}

fn emit_body(body: &Body, out: &mut Vec<u8>) {
    match body {
        Body::Hello(h) => h.emit(out),
        Body::Error(e) => e.emit(out),
        Body::EchoRequest(d) | Body::EchoReply(d) => out.extend_from_slice(d),
        Body::Experimenter(e) => e.emit(out),
        Body::FeaturesRequest
        | Body::GetConfigRequest
        | Body::BarrierRequest
        | Body::BarrierReply
        | Body::GetAsyncRequest => {}
        Body::FeaturesReply(f) => f.emit(out),
        Body::GetConfigReply(c) | Body::SetConfig(c) => c.emit(out),
        Body::PacketIn(p) => p.emit(out),
        Body::FlowRemoved(f) => f.emit(out),
        Body::PortStatus(p) => p.emit(out),
        Body::PacketOut(p) => p.emit(out),
        Body::FlowMod(f) => f.emit(out),
        Body::GroupMod(g) => g.emit(out),
        Body::PortMod(p) => p.emit(out),
        Body::TableMod(t) => t.emit(out),
        Body::MultipartRequest(m) => m.emit(out),
        Body::MultipartReply(m) => m.emit(out),
        Body::QueueGetConfigRequest { port } => {
            out.put_u32(*port);
            wire::pad(out, 4);
        }
        Body::QueueGetConfigReply(q) => q.emit(out),
        Body::RoleRequest(r) | Body::RoleReply(r) => r.emit(out),
        Body::GetAsyncReply(a) | Body::SetAsync(a) => a.emit(out),
        Body::MeterMod(m) => m.emit(out),
        Body::Unknown { data, .. } => out.extend_from_slice(data),
    }
}

/// Cuts the next whole message off the front of `buf` without decoding its body.
///
/// `Ok(None)`: more bytes are needed (nothing is consumed). An error means the stream is
/// unusable from here on: a length under 8 or over `max_len`, or a version other than 0x04.
/// On `BadVersion` nothing is consumed, so a caller can still answer a HELLO.
pub fn split_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Bytes>, Error> {
    let Some(h) = Header::peek(buf) else {
        return Ok(None);
    };
    let len = h.length as usize;
    if len < HEADER_LEN {
        return Err(Error::BadLength {
            what: "ofp_header",
            len,
            min: HEADER_LEN,
            have: buf.len(),
        });
    }
    if len > max_len {
        return Err(Error::TooLong { len, max: max_len });
    }
    if h.version != OFP_VERSION {
        return Err(Error::BadVersion {
            version: h.version,
            msg_type: h.msg_type,
        });
    }
    if buf.len() < len {
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}

/// Decodes the next message from the front of `buf`: `Ok(None)` when more input is needed.
/// A message whose framing is valid but whose body is malformed is consumed and reported.
pub fn decode_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Message>, Error> {
    match split_frame(buf, max_len)? {
        Some(frame) => Message::parse(&frame).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn framing_needs_more_then_decodes_in_order() {
        let mut stream = Vec::new();
        Message::new(1, Body::BarrierRequest).emit(&mut stream);
        Message::new(2, Body::EchoRequest(Bytes::from_static(b"hi"))).emit(&mut stream);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &stream {
            buf.put_u8(*b);
            while let Some(m) = decode_frame(&mut buf, MAX_MESSAGE_LEN).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                Message::new(1, Body::BarrierRequest),
                Message::new(2, Body::EchoRequest(Bytes::from_static(b"hi")))
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn framing_errors() {
        let mut b = BytesMut::from(&[4u8, 0, 0, 7, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut b, MAX_MESSAGE_LEN),
            Err(Error::BadLength { len: 7, .. })
        ));
        let mut b = BytesMut::from(&[4u8, 0, 1, 0, 0, 0, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut b, 128),
            Err(Error::TooLong { len: 256, max: 128 })
        );
        let mut b = BytesMut::from(&[1u8, 0, 0, 8, 0, 0, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut b, MAX_MESSAGE_LEN),
            Err(Error::BadVersion {
                version: 1,
                msg_type: 0
            })
        );
        assert_eq!(b.len(), 8, "a bad version consumes nothing");
    }
}
