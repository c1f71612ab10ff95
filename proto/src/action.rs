//! Actions (OpenFlow 1.3.5 section 7.2.5) and action ids (table features).
//!
//! Every standard action has a typed variant; experimenter actions and action types this codec
//! does not know keep their body raw, so re-encoding is lossless.

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::oxm::Oxm;
use crate::wire::{self, Reader};
use crate::Error;

pub const OFPAT_OUTPUT: u16 = 0;
pub const OFPAT_COPY_TTL_OUT: u16 = 11;
pub const OFPAT_COPY_TTL_IN: u16 = 12;
pub const OFPAT_SET_MPLS_TTL: u16 = 15;
pub const OFPAT_DEC_MPLS_TTL: u16 = 16;
pub const OFPAT_PUSH_VLAN: u16 = 17;
pub const OFPAT_POP_VLAN: u16 = 18;
pub const OFPAT_PUSH_MPLS: u16 = 19;
pub const OFPAT_POP_MPLS: u16 = 20;
pub const OFPAT_SET_QUEUE: u16 = 21;
pub const OFPAT_GROUP: u16 = 22;
pub const OFPAT_SET_NW_TTL: u16 = 23;
pub const OFPAT_DEC_NW_TTL: u16 = 24;
pub const OFPAT_SET_FIELD: u16 = 25;
pub const OFPAT_PUSH_PBB: u16 = 26;
pub const OFPAT_POP_PBB: u16 = 27;
pub const OFPAT_EXPERIMENTER: u16 = 0xffff;

/// `max_len` meaning "send the whole packet to the controller, do not buffer".
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Output to a port; `max_len` bytes go to the controller when the port is CONTROLLER.
    Output {
        port: u32,
        max_len: u16,
    },
    CopyTtlOut,
    CopyTtlIn,
    SetMplsTtl {
        mpls_ttl: u8,
    },
    DecMplsTtl,
    PushVlan {
        ethertype: u16,
    },
    PopVlan,
    PushMpls {
        ethertype: u16,
    },
    PopMpls {
        ethertype: u16,
    },
    SetQueue {
        queue_id: u32,
    },
    Group {
        group_id: u32,
    },
    SetNwTtl {
        nw_ttl: u8,
    },
    DecNwTtl,
    /// Rewrite one header field; the OXM must not be masked in OpenFlow 1.3.
    SetField {
        field: Oxm,
    },
    PushPbb {
        ethertype: u16,
    },
    PopPbb,
    /// `OFPAT_EXPERIMENTER`: everything after the experimenter id, padding included.
    Experimenter {
        experimenter: u32,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
    /// An action type this codec does not know: everything after type and length.
    Unknown {
        action_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl Action {
    /// Output to `port`, sending whole packets when `port` is the controller.
    pub fn output(port: u32) -> Action {
        Action::Output {
            port,
            max_len: OFPCML_NO_BUFFER,
        }
    }

    /// The `ofp_action_type` of this action.
    pub fn action_type(&self) -> u16 {
        match self {
            Action::Output { .. } => OFPAT_OUTPUT,
            Action::CopyTtlOut => OFPAT_COPY_TTL_OUT,
            Action::CopyTtlIn => OFPAT_COPY_TTL_IN,
            Action::SetMplsTtl { .. } => OFPAT_SET_MPLS_TTL,
            Action::DecMplsTtl => OFPAT_DEC_MPLS_TTL,
            Action::PushVlan { .. } => OFPAT_PUSH_VLAN,
            Action::PopVlan => OFPAT_POP_VLAN,
            Action::PushMpls { .. } => OFPAT_PUSH_MPLS,
            Action::PopMpls { .. } => OFPAT_POP_MPLS,
            Action::SetQueue { .. } => OFPAT_SET_QUEUE,
            Action::Group { .. } => OFPAT_GROUP,
            Action::SetNwTtl { .. } => OFPAT_SET_NW_TTL,
            Action::DecNwTtl => OFPAT_DEC_NW_TTL,
            Action::SetField { .. } => OFPAT_SET_FIELD,
            Action::PushPbb { .. } => OFPAT_PUSH_PBB,
            Action::PopPbb => OFPAT_POP_PBB,
            Action::Experimenter { .. } => OFPAT_EXPERIMENTER,
            Action::Unknown { action_type, .. } => *action_type,
        }
    }

    /// Parses one action.
    pub fn parse(r: &mut Reader<'_>) -> Result<Action, Error> {
        let mut a = wire::tlv(r, 2, 4, "ofp_action")?;
        let ty = a.u16()?;
        let len = a.u16()? as usize;
        // Every action is padded to a multiple of 8 (OpenFlow 1.3.5 section 7.2.5); emit pads an
        // experimenter or unknown action's body, so an unaligned one would not re-encode as read.
        if !len.is_multiple_of(8) {
            return Err(Error::BadLength {
                what: "ofp_action (not a multiple of 8)",
                len,
                min: wire::round8(len),
                have: len,
            });
        }
        let fixed = |want: usize| -> Result<(), Error> {
            if len == want {
                Ok(())
            } else {
                Err(Error::BadLength {
                    what: "ofp_action (fixed size)",
                    len,
                    min: want,
                    have: len,
                })
            }
        };
        let action = match ty {
            OFPAT_OUTPUT => {
                fixed(16)?;
                let port = a.u32()?;
                let max_len = a.u16()?;
                a.skip(6)?;
                Action::Output { port, max_len }
            }
            OFPAT_COPY_TTL_OUT | OFPAT_COPY_TTL_IN | OFPAT_DEC_MPLS_TTL | OFPAT_POP_VLAN
            | OFPAT_DEC_NW_TTL | OFPAT_POP_PBB => {
                fixed(8)?;
                a.skip(4)?;
                match ty {
                    OFPAT_COPY_TTL_OUT => Action::CopyTtlOut,
                    OFPAT_COPY_TTL_IN => Action::CopyTtlIn,
                    OFPAT_DEC_MPLS_TTL => Action::DecMplsTtl,
                    OFPAT_POP_VLAN => Action::PopVlan,
                    OFPAT_DEC_NW_TTL => Action::DecNwTtl,
                    _ => Action::PopPbb,
                }
            }
            OFPAT_SET_MPLS_TTL | OFPAT_SET_NW_TTL => {
                fixed(8)?;
                let ttl = a.u8()?;
                a.skip(3)?;
                if ty == OFPAT_SET_MPLS_TTL {
                    Action::SetMplsTtl { mpls_ttl: ttl }
                } else {
                    Action::SetNwTtl { nw_ttl: ttl }
                }
            }
            OFPAT_PUSH_VLAN | OFPAT_PUSH_MPLS | OFPAT_POP_MPLS | OFPAT_PUSH_PBB => {
                fixed(8)?;
                let ethertype = a.u16()?;
                a.skip(2)?;
                match ty {
                    OFPAT_PUSH_VLAN => Action::PushVlan { ethertype },
                    OFPAT_PUSH_MPLS => Action::PushMpls { ethertype },
                    OFPAT_POP_MPLS => Action::PopMpls { ethertype },
                    _ => Action::PushPbb { ethertype },
                }
            }
            OFPAT_SET_QUEUE => {
                fixed(8)?;
                Action::SetQueue { queue_id: a.u32()? }
            }
            OFPAT_GROUP => {
                fixed(8)?;
                Action::Group { group_id: a.u32()? }
            }
            OFPAT_SET_FIELD => {
                let field = Oxm::parse(&mut a)?;
                if len != wire::round8(4 + field.wire_len()) {
                    return Err(Error::BadLength {
                        what: "set_field action",
                        len,
                        min: wire::round8(4 + field.wire_len()),
                        have: len,
                    });
                }
                a.rest();
                Action::SetField { field }
            }
            OFPAT_EXPERIMENTER => {
                if len < 8 {
                    return Err(Error::BadLength {
                        what: "experimenter action",
                        len,
                        min: 8,
                        have: len,
                    });
                }
                Action::Experimenter {
                    experimenter: a.u32()?,
                    data: a.rest(),
                }
            }
            _ => Action::Unknown {
                action_type: ty,
                data: a.rest(),
            },
        };
        a.finish()?;
        Ok(action)
    }

    /// Appends the action; its length and padding are computed here.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(self.action_type());
        out.put_u16(0);
        match self {
            Action::Output { port, max_len } => {
                out.put_u32(*port);
                out.put_u16(*max_len);
                wire::pad(out, 6);
            }
            Action::CopyTtlOut
            | Action::CopyTtlIn
            | Action::DecMplsTtl
            | Action::PopVlan
            | Action::DecNwTtl
            | Action::PopPbb => wire::pad(out, 4),
            Action::SetMplsTtl { mpls_ttl: ttl } | Action::SetNwTtl { nw_ttl: ttl } => {
                out.put_u8(*ttl);
                wire::pad(out, 3);
            }
            Action::PushVlan { ethertype }
            | Action::PushMpls { ethertype }
            | Action::PopMpls { ethertype }
            | Action::PushPbb { ethertype } => {
                out.put_u16(*ethertype);
                wire::pad(out, 2);
            }
            Action::SetQueue { queue_id: v } | Action::Group { group_id: v } => out.put_u32(*v),
            Action::SetField { field } => {
                field.emit(out);
                wire::pad_to_8(out, start);
            }
            Action::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
                wire::pad_to_8(out, start);
            }
            Action::Unknown { data, .. } => {
                out.extend_from_slice(data);
                wire::pad_to_8(out, start);
            }
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }
}

/// Parses a list of actions filling all of `r`.
pub fn parse_actions(r: &mut Reader<'_>) -> Result<Vec<Action>, Error> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(Action::parse(r)?);
    }
    Ok(v)
}

/// Appends a list of actions.
pub fn emit_actions(actions: &[Action], out: &mut Vec<u8>) {
    for a in actions {
        a.emit(out);
    }
}

/// An action or instruction as announced in table features: its type and, for experimenter
/// ones, the bytes that follow (the experimenter id). The length is `4 + data.len()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeId {
    #[serde(rename = "type")]
    pub ty: u16,
    #[serde(
        default,
        skip_serializing_if = "Bytes::is_empty",
        with = "crate::types::hex_bytes"
    )]
    pub data: Bytes,
}

impl TypeId {
    pub fn new(ty: u16) -> Self {
        TypeId {
            ty,
            data: Bytes::new(),
        }
    }
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut t = wire::tlv(r, 2, 4, "action/instruction id")?;
        let ty = t.u16()?;
        t.skip(2)?;
        Ok(TypeId { ty, data: t.rest() })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(self.ty);
        out.put_u16((4 + self.data.len()).min(u16::MAX as usize) as u16);
        out.extend_from_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::net::Ipv4Addr;

    /// The four-way check of one annotated action list: parse, emit, and emit into junk.
    #[test]
    fn annotated_actions() {
        let bytes: &[u8] = &[
            0x00, 0x19, // OFPAT_SET_FIELD
            0x00, 0x10, // length 16
            0x80, 0x00, 0x18, 0x04, // OXM basic ipv4_dst, length 4
            192, 168, 11, 3, // value
            0, 0, 0, 0, // padding to 8
            0x00, 0x18, // OFPAT_DEC_NW_TTL
            0x00, 0x08, // length 8
            0, 0, 0, 0, // padding
            0x00, 0x00, // OFPAT_OUTPUT
            0x00, 0x10, // length 16
            0x00, 0x00, 0x00, 0x03, // port 3
            0xff, 0xff, // max_len OFPCML_NO_BUFFER
            0, 0, 0, 0, 0, 0, // padding
        ];
        let b = Bytes::from_static(bytes);
        let acts = parse_actions(&mut Reader::new(&b, "t")).unwrap();
        assert_eq!(
            acts,
            vec![
                Action::SetField {
                    field: Oxm::Ipv4Dst(Ipv4Addr::new(192, 168, 11, 3), None)
                },
                Action::DecNwTtl,
                Action::output(3),
            ]
        );
        let mut out = vec![0x5a; 5];
        emit_actions(&acts, &mut out);
        assert_eq!(&out[5..], bytes);
    }

    #[test]
    fn wrong_fixed_length_is_an_error() {
        let b = Bytes::from_static(&[0, 0, 0, 8, 0, 0, 0, 1]);
        assert!(Action::parse(&mut Reader::new(&b, "t")).is_err());
    }

    #[test]
    fn unaligned_action_is_an_error() {
        // Unknown type 99, length 6: emit would pad it to 8 and change its body.
        let b = Bytes::from_static(&[0, 99, 0, 6, 1, 2, 0, 0]);
        assert!(matches!(
            Action::parse(&mut Reader::new(&b, "t")),
            Err(Error::BadLength { len: 6, .. })
        ));
    }

    #[test]
    fn unknown_action_is_kept() {
        let b = Bytes::from_static(&[0, 99, 0, 8, 1, 2, 3, 4]);
        let a = Action::parse(&mut Reader::new(&b, "t")).unwrap();
        assert_eq!(
            a,
            Action::Unknown {
                action_type: 99,
                data: Bytes::from_static(&[1, 2, 3, 4])
            }
        );
        let mut out = Vec::new();
        a.emit(&mut out);
        assert_eq!(out, b);
    }
}
