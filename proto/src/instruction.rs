//! Instructions (OpenFlow 1.3.5 section 7.2.4).

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::action::{emit_actions, parse_actions, Action};
use crate::wire::{self, Reader};
use crate::Error;

pub const OFPIT_GOTO_TABLE: u16 = 1;
pub const OFPIT_WRITE_METADATA: u16 = 2;
pub const OFPIT_WRITE_ACTIONS: u16 = 3;
pub const OFPIT_APPLY_ACTIONS: u16 = 4;
pub const OFPIT_CLEAR_ACTIONS: u16 = 5;
pub const OFPIT_METER: u16 = 6;
pub const OFPIT_EXPERIMENTER: u16 = 0xffff;

/// One instruction of a flow entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instruction {
    GotoTable {
        table_id: u8,
    },
    WriteMetadata {
        metadata: u64,
        metadata_mask: u64,
    },
    WriteActions {
        actions: Vec<Action>,
    },
    ApplyActions {
        actions: Vec<Action>,
    },
    ClearActions,
    Meter {
        meter_id: u32,
    },
    /// Everything after the experimenter id.
    Experimenter {
        experimenter: u32,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
    /// An instruction type this codec does not know: everything after type and length.
    Unknown {
        instruction_type: u16,
        #[serde(with = "crate::types::hex_bytes")]
        data: Bytes,
    },
}

impl Instruction {
    /// The meter an entry's instructions go through, if any (OpenFlow allows one).
    pub fn meter_of(instructions: &[Instruction]) -> Option<u32> {
        instructions.iter().find_map(|i| match i {
            Instruction::Meter { meter_id } => Some(*meter_id),
            _ => None,
        })
    }

    pub fn instruction_type(&self) -> u16 {
        match self {
            Instruction::GotoTable { .. } => OFPIT_GOTO_TABLE,
            Instruction::WriteMetadata { .. } => OFPIT_WRITE_METADATA,
            Instruction::WriteActions { .. } => OFPIT_WRITE_ACTIONS,
            Instruction::ApplyActions { .. } => OFPIT_APPLY_ACTIONS,
            Instruction::ClearActions => OFPIT_CLEAR_ACTIONS,
            Instruction::Meter { .. } => OFPIT_METER,
            Instruction::Experimenter { .. } => OFPIT_EXPERIMENTER,
            Instruction::Unknown {
                instruction_type, ..
            } => *instruction_type,
        }
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Instruction, Error> {
        let mut i = wire::tlv(r, 2, 4, "ofp_instruction")?;
        let ty = i.u16()?;
        let len = i.u16()? as usize;
        let fixed = |want: usize| -> Result<(), Error> {
            if len == want {
                Ok(())
            } else {
                Err(Error::BadLength {
                    what: "ofp_instruction (fixed size)",
                    len,
                    min: want,
                    have: len,
                })
            }
        };
        let ins = match ty {
            OFPIT_GOTO_TABLE => {
                fixed(8)?;
                let table_id = i.u8()?;
                i.skip(3)?;
                Instruction::GotoTable { table_id }
            }
            OFPIT_WRITE_METADATA => {
                fixed(24)?;
                i.skip(4)?;
                Instruction::WriteMetadata {
                    metadata: i.u64()?,
                    metadata_mask: i.u64()?,
                }
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS => {
                i.skip(4)?;
                let actions = parse_actions(&mut i)?;
                if ty == OFPIT_WRITE_ACTIONS {
                    Instruction::WriteActions { actions }
                } else {
                    Instruction::ApplyActions { actions }
                }
            }
            OFPIT_CLEAR_ACTIONS => {
                fixed(8)?;
                i.skip(4)?;
                Instruction::ClearActions
            }
            OFPIT_METER => {
                fixed(8)?;
                Instruction::Meter { meter_id: i.u32()? }
            }
            OFPIT_EXPERIMENTER => Instruction::Experimenter {
                experimenter: i.u32()?,
                data: i.rest(),
            },
            _ => Instruction::Unknown {
                instruction_type: ty,
                data: i.rest(),
            },
        };
        i.finish()?;
        Ok(ins)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(self.instruction_type());
        out.put_u16(0);
        match self {
            Instruction::GotoTable { table_id } => {
                out.put_u8(*table_id);
                wire::pad(out, 3);
            }
            Instruction::WriteMetadata {
                metadata,
                metadata_mask,
            } => {
                wire::pad(out, 4);
                out.put_u64(*metadata);
                out.put_u64(*metadata_mask);
            }
            Instruction::WriteActions { actions } | Instruction::ApplyActions { actions } => {
                wire::pad(out, 4);
                emit_actions(actions, out);
            }
            Instruction::ClearActions => wire::pad(out, 4),
            Instruction::Meter { meter_id } => out.put_u32(*meter_id),
            Instruction::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
            }
            Instruction::Unknown { data, .. } => out.extend_from_slice(data),
        }
        let len = out.len() - start;
        wire::patch_u16(out, start + 2, len);
    }
}

/// Parses instructions filling all of `r`.
pub fn parse_instructions(r: &mut Reader<'_>) -> Result<Vec<Instruction>, Error> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(Instruction::parse(r)?);
    }
    Ok(v)
}

pub fn emit_instructions(ins: &[Instruction], out: &mut Vec<u8>) {
    for i in ins {
        i.emit(out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn annotated_instructions() {
        let bytes: &[u8] = &[
            0x00, 0x02, // OFPIT_WRITE_METADATA
            0x00, 0x18, // length 24
            0, 0, 0, 0, // padding
            0, 0, 0, 0, 0, 0, 0, 0x2a, // metadata 42
            0, 0, 0, 0, 0, 0, 0, 0xff, // mask 0xff
            0x00, 0x04, // OFPIT_APPLY_ACTIONS
            0x00, 0x10, // length 16 (8 + one 8-byte action)
            0, 0, 0, 0, // padding
            0x00, 0x18, 0x00, 0x08, 0, 0, 0, 0, // dec_nw_ttl
            0x00, 0x01, // OFPIT_GOTO_TABLE
            0x00, 0x08, // length 8
            0x02, // table 2
            0, 0, 0, // padding
            0x00, 0x06, // OFPIT_METER
            0x00, 0x08, // length 8
            0, 0, 0, 7, // meter 7
        ];
        let b = Bytes::from_static(bytes);
        let ins = parse_instructions(&mut Reader::new(&b, "t")).unwrap();
        assert_eq!(
            ins,
            vec![
                Instruction::WriteMetadata {
                    metadata: 42,
                    metadata_mask: 0xff
                },
                Instruction::ApplyActions {
                    actions: vec![Action::DecNwTtl]
                },
                Instruction::GotoTable { table_id: 2 },
                Instruction::Meter { meter_id: 7 },
            ]
        );
        let mut out = vec![0x77; 2];
        emit_instructions(&ins, &mut out);
        assert_eq!(&out[2..], bytes);
    }
}
