//! The OpenFlow 1.3 header: the version, the message types, `struct ofp_header`. Below the
//! message bodies (`msg`, `multipart`) and the message enum (`message`), which all read it;
//! `message` re-exports it, so `ofp13::message::OFPT_*` names it as before.

/// The only version servswitch speaks.
pub const OFP_VERSION: u8 = 0x04;
/// Size of `struct ofp_header`.
pub const HEADER_LEN: usize = 8;
/// The largest message the framer accepts by default (the 16-bit length field's limit).
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

pub const OFPT_HELLO: u8 = 0;
pub const OFPT_ERROR: u8 = 1;
pub const OFPT_ECHO_REQUEST: u8 = 2;
pub const OFPT_ECHO_REPLY: u8 = 3;
pub const OFPT_EXPERIMENTER: u8 = 4;
pub const OFPT_FEATURES_REQUEST: u8 = 5;
pub const OFPT_FEATURES_REPLY: u8 = 6;
pub const OFPT_GET_CONFIG_REQUEST: u8 = 7;
pub const OFPT_GET_CONFIG_REPLY: u8 = 8;
pub const OFPT_SET_CONFIG: u8 = 9;
pub const OFPT_PACKET_IN: u8 = 10;
pub const OFPT_FLOW_REMOVED: u8 = 11;
pub const OFPT_PORT_STATUS: u8 = 12;
pub const OFPT_PACKET_OUT: u8 = 13;
pub const OFPT_FLOW_MOD: u8 = 14;
pub const OFPT_GROUP_MOD: u8 = 15;
pub const OFPT_PORT_MOD: u8 = 16;
pub const OFPT_TABLE_MOD: u8 = 17;
pub const OFPT_MULTIPART_REQUEST: u8 = 18;
pub const OFPT_MULTIPART_REPLY: u8 = 19;
pub const OFPT_BARRIER_REQUEST: u8 = 20;
pub const OFPT_BARRIER_REPLY: u8 = 21;
pub const OFPT_QUEUE_GET_CONFIG_REQUEST: u8 = 22;
pub const OFPT_QUEUE_GET_CONFIG_REPLY: u8 = 23;
pub const OFPT_ROLE_REQUEST: u8 = 24;
pub const OFPT_ROLE_REPLY: u8 = 25;
pub const OFPT_GET_ASYNC_REQUEST: u8 = 26;
pub const OFPT_GET_ASYNC_REPLY: u8 = 27;
pub const OFPT_SET_ASYNC: u8 = 28;
pub const OFPT_METER_MOD: u8 = 29;

/// `struct ofp_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// Reads a header from the first 8 bytes of `b`, if there are 8.
    pub fn peek(b: &[u8]) -> Option<Header> {
        let h: &[u8; 8] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            version: h[0],
            msg_type: h[1],
            length: u16::from_be_bytes([h[2], h[3]]),
            xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        })
    }
}
