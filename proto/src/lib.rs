//! `ofp13`: the OpenFlow 1.3.5 wire protocol, parse and emit, with no I/O.
//!
//! Contract (after smoltcp's `wire` module):
//! - parsing never panics, on any input: a malformed message is an [`Error`] naming the unit
//!   and what was wrong;
//! - emitting never panics, and computes every length and padding itself: no caller supplies
//!   a length;
//! - re-encoding is lossless: `emit(parse(x)) == x` for every well-formed message, including
//!   OXMs of other classes, experimenter actions, instructions and properties, and message or
//!   element types this crate does not know (kept as raw bytes).
//!
//! Entry points: [`Message::parse`] / [`Message::emit`] for one message, [`decode_frame`] to
//! cut a byte stream into messages, [`text`] for the ovs-ofctl-like rendering, and serde on
//! every type for the JSON form.
//!
//! ```
//! use ofp13::{Action, Body, FlowMod, Instruction, Match, Message, Oxm};
//! use std::net::Ipv4Addr;
//!
//! let fm = FlowMod {
//!     table_id: 2,
//!     priority: 100,
//!     match_: Match::new(vec![
//!         Oxm::EthType(0x0800, None),
//!         Oxm::Ipv4Dst(Ipv4Addr::new(192, 168, 10, 3), None),
//!     ]),
//!     instructions: vec![Instruction::ApplyActions {
//!         actions: vec![
//!             Action::SetField { field: Oxm::Ipv4Dst(Ipv4Addr::new(192, 168, 11, 3), None) },
//!             Action::output(3),
//!         ],
//!     }],
//!     ..FlowMod::default()
//! };
//! let bytes = Message::new(7, Body::FlowMod(fm)).to_bytes();
//! let back = Message::parse_slice(&bytes).unwrap();
//! assert_eq!(
//!     ofp13::text::flow_mod_line(match &back.body { Body::FlowMod(f) => f, _ => unreachable!() }),
//!     "ADD table=2, priority=100,ip,nw_dst=192.168.10.3 actions=set_field:192.168.11.3->ip_dst,output:3"
//! );
//! ```

pub mod action;
mod error;
pub mod header;
pub mod instruction;
pub mod message;
pub mod msg;
pub mod multipart;
pub mod names;
pub mod oxm;
pub mod text;
mod types;
pub mod wire;

pub use action::{Action, TypeId};
pub use error::Error;
pub use instruction::Instruction;
pub use message::{
    decode_frame, split_frame, Body, Header, Message, HEADER_LEN, MAX_MESSAGE_LEN, OFP_VERSION,
};
pub use msg::*;
pub use multipart::*;
pub use oxm::{Match, MatchError, Oxm, OxmField, OxmId, RawOxm};
pub use types::{group, hex_bytes, parse_hex, port, BadMac, Hex, MacAddr, NO_BUFFER, TABLE_ALL};
