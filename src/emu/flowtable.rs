//! The datapath of an emulated OpenFlow 1.3 switch: flow tables, lookup, instructions and
//! actions, with no I/O. It behaves like Open vSwitch 3.1 for the subset servswitch uses;
//! `tests/flowtable_vs_ovs.rs` checks it against `ovs-appctl ofproto/trace` and, byte for byte,
//! against the frames OVS's userspace datapath sends.
//!
//! [`FlowTables::apply_flow_mod`] takes a FLOW_MOD and answers `(err_type, code)` as a switch
//! would; [`FlowTables::process`] runs a frame received on a port through the pipeline and
//! [`FlowTables::packet_out`] runs a PACKET_OUT, both returning [`Effect`]s (frames to send,
//! packet-ins to raise); [`FlowTables::dump`] and [`FlowTables::flow_stats`] answer flow-stats
//! requests with per-entry counters. A packet costs one copy of the frame, plus one per output
//! or packet-in; lookups scan each table's entries in priority order.
//!
//! **Supported**
//! - FLOW_MOD: ADD (an entry with the same match and priority is replaced; its counters are
//!   kept unless `OFPFF_RESET_COUNTS`; `OFPFF_CHECK_OVERLAP`), MODIFY and MODIFY_STRICT
//!   (instructions replaced; cookie, flags, duration and counters kept unless
//!   `OFPFF_RESET_COUNTS`; no entry is added when none matches), DELETE and DELETE_STRICT (with
//!   `out_port`, `out_group` and cookie/mask filters; table `OFPTT_ALL`).
//! - Validation: [`Match::check`] (`OFPET_BAD_MATCH`), fields the engine cannot match
//!   (`OFPBMC_BAD_FIELD`), set-field and `dec_ttl`/`set_nw_ttl` prerequisites in apply-actions
//!   and packet-outs (`OFPBAC_MATCH_INCONSISTENT`; like OVS, write-actions are not checked),
//!   output ports, `goto_table` only forward, table ids, buffer ids (the switch buffers nothing).
//! - Match fields: in_port, in_phy_port (= in_port), metadata, eth_dst/src/type, vlan_vid/pcp
//!   (one tag is read, never written), ip_dscp/ecn/proto, ipv4_src/dst, tcp/udp/sctp ports,
//!   icmpv4 type/code, arp op/spa/tpa/sha/tha (also read from RARP, eth_type 0x8035),
//!   ipv6_src/dst/flabel, icmpv6 type/code, ipv6_nd_target/sll/tll (extension headers walked
//!   as OVS walks them), tunnel_id (always 0). Masks everywhere the spec allows them.
//! - Instructions in OpenFlow order: meter (accepted, not enforced: see the emulated switch),
//!   apply-actions, clear-actions,
//!   write-actions, write-metadata, goto-table.
//! - Actions: output to a port, IN_PORT, TABLE, FLOOD/ALL (the port list given with
//!   [`FlowTables::set_ports`], minus the input port), CONTROLLER (truncated to `max_len`);
//!   set_field on eth, ip_dscp/ecn (IPv4), ipv4 and ipv6 addresses, tcp/udp ports, icmpv4
//!   type/code, arp fields and metadata; dec_ttl and set_nw_ttl (IPv4 TTL, IPv6 hop limit); set_queue (ignored).
//!
//! **Like Open vSwitch, where OpenFlow leaves room or OVS differs from the spec**
//! - Checksums are updated incrementally (RFC 1624) exactly where OVS updates them: the IPv4
//!   header checksum for address, TOS and TTL changes; the TCP checksum for address (IPv4 and
//!   IPv6) and port changes; the UDP checksum likewise unless it is 0 (then it stays 0; a
//!   result of 0 becomes 0xffff); the ICMP checksum for type/code changes, the ICMPv6 checksum
//!   for IPv6 address changes. A wrong checksum stays wrong.
//! - dec_ttl with TTL 0 or 1 (a malformed IPv4 header counts as TTL 0): a packet-in with reason
//!   `OFPR_INVALID_TTL` (always produced here: whether the controller gets it is the async
//!   configuration's business), then the rest of the current action list — the entry's
//!   remaining instructions, the packet-out's actions, or the action set — is skipped. Actions
//!   of other tables (and the action set at the end) still run.
//! - A table miss without a table-miss entry ends the pipeline, but the action set collected so
//!   far is still executed (OVS does this; the spec says drop). The action set runs only if it
//!   holds an output, in OVS's order: dec_ttl, set-fields in the order written, output.
//! - Output to the input port is skipped (use IN_PORT); output to a port that is not in the port
//!   list is dropped.
//! - CONTROLLER from the apply-actions of a table-miss entry (priority 0, empty match) gives
//!   reason `OFPR_NO_MATCH`; everything else `OFPR_ACTION`. Packet-ins from the action set carry
//!   the table id and cookie of the table-0 entry (OVS restores its rule after goto_table);
//!   packet-ins raised by a packet-out's own actions carry cookie `0xffff_ffff_ffff_ffff` (seen
//!   in traces) and table 0 (from OVS's source; traces do not show table ids).
//! - `output:TABLE` (in a packet-out or a flow entry) runs the pipeline from table 0 on the same
//!   packet: rewrites made there stay visible to later actions, and one action set is executed
//!   at the very end. Backward jumps nest at most 64 deep and a packet visits at most 4096
//!   tables (OVS's limits); beyond that the packet is dropped with every effect.
//!
//! **Groups** ([`FlowTables::apply_group_mod`]): all, select, indirect and fast failover;
//! ADD, MODIFY and DELETE (`OFPG_ALL` too; deleting a group deletes the entries that use it,
//! as Open vSwitch does), with the errors OVS gives (`OFPGMFC_GROUP_EXISTS`,
//! `OFPGMFC_UNKNOWN_GROUP`, `OFPGMFC_INVALID_GROUP`, `OFPGMFC_BAD_TYPE`, `OFPGMFC_BAD_WATCH`
//! for a fast-failover bucket that watches nothing); an entry or packet-out naming a group
//! that does not exist is refused (`OFPBAC_BAD_OUT_GROUP`). Each bucket runs on its own copy
//! of the packet. A bucket is live when its watch port exists and is up
//! ([`FlowTables::set_port_live`]) and its watch group has a live bucket. Fast failover takes
//! the first live bucket; select picks a live bucket by weight from a hash of the addresses,
//! protocol and TCP/SCTP ports (not UDP's, as OVS), the same whichever way the packet goes
//! (Open vSwitch uses its own hash: the bucket a flow takes can differ, the set of buckets
//! cannot).
//!
//! **Not supported** (rejected at FLOW_MOD time, not silently ignored): group chaining (a
//! group action in a bucket, `OFPGMFC_CHAINING_UNSUPPORTED`), VLAN/MPLS/PBB push and pop, copy-TTL and MPLS TTL actions
//! (`OFPBAC_BAD_TYPE`), output to NORMAL (`OFPBAC_BAD_OUT_PORT`), experimenter instructions and
//! actions, set-field on other fields (`OFPBAC_BAD_SET_TYPE`), matching on IPv6, MPLS, PBB,
//! ND and non-basic OXM fields (`OFPBMC_BAD_FIELD`). Also absent: meters, queues, per-port
//! config (NO_FLOOD, NO_FWD), buffering, FLOW_REMOVED for deletes.
//!
//! **Timeouts.** Idle and hard timeouts run from the time an entry is installed (idle: from
//! its last match); [`FlowTables::expire`] removes the entries whose time is up and returns the
//! FLOW_REMOVED messages of those with `send_flow_rem`; the caller decides when to call it
//! ([`FlowTables::next_expiry`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ofp13::action::OFPCML_NO_BUFFER;
use ofp13::instruction::{
    OFPIT_APPLY_ACTIONS, OFPIT_CLEAR_ACTIONS, OFPIT_GOTO_TABLE, OFPIT_WRITE_ACTIONS,
    OFPIT_WRITE_METADATA,
};
use ofp13::oxm::OFPVID_PRESENT;
use ofp13::{
    group, port, Action, FlowMod, FlowRemoved, FlowStats, FlowStatsRequest, Instruction, Match,
    Oxm, OxmField, PacketIn, PacketOut, NO_BUFFER, OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT,
    OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS,
    OFPFF_SEND_FLOW_REM, OFPRR_HARD_TIMEOUT, OFPRR_IDLE_TIMEOUT, OFPR_ACTION, OFPR_INVALID_TTL,
    OFPR_NO_MATCH, TABLE_ALL,
};
use ofp13::{
    Bucket, GroupDesc, GroupMod, GroupStats, OFPET_GROUP_MOD_FAILED, OFPGC_ADD, OFPGC_DELETE,
    OFPGC_MODIFY, OFPGMFC_BAD_COMMAND, OFPGMFC_BAD_TYPE, OFPGMFC_BAD_WATCH,
    OFPGMFC_CHAINING_UNSUPPORTED, OFPGMFC_GROUP_EXISTS, OFPGMFC_INVALID_GROUP,
    OFPGMFC_UNKNOWN_GROUP, OFPGT_ALL, OFPGT_FF, OFPGT_INDIRECT, OFPGT_SELECT,
};
use ofp13::{
    OFPBAC_BAD_EXPERIMENTER, OFPBAC_BAD_OUT_GROUP, OFPBAC_BAD_OUT_PORT, OFPBAC_BAD_SET_ARGUMENT,
    OFPBAC_BAD_SET_TYPE, OFPBAC_BAD_TYPE, OFPBAC_MATCH_INCONSISTENT, OFPBIC_BAD_EXPERIMENTER,
    OFPBIC_BAD_TABLE_ID, OFPBIC_UNKNOWN_INST, OFPBIC_UNSUP_INST, OFPBMC_BAD_FIELD, OFPBRC_BAD_PORT,
    OFPBRC_BUFFER_UNKNOWN, OFPET_BAD_ACTION, OFPET_BAD_INSTRUCTION, OFPET_BAD_MATCH,
    OFPET_BAD_REQUEST, OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_COMMAND, OFPFMFC_BAD_TABLE_ID,
    OFPFMFC_OVERLAP,
};

use crate::packet::{ETH_ARP, ETH_IPV4, ETH_RARP};

/// An `OFPT_ERROR`'s `(err_type, code)`.
pub type OfpError = (u16, u16);

use crate::packet::ETH_IPV6;
const IP_TCP: u8 = 6;
const IP_UDP: u8 = 17;
const IP_SCTP: u8 = 132;
const IP_ICMP: u8 = 1;
const IP_ICMPV6: u8 = 58;
/// ICMPv6 neighbour solicitation and advertisement (RFC 4861).
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;

/// Open vSwitch's limits on one packet's trip: nested backward jumps (`output:TABLE`, a
/// `goto_table` to an earlier table) and table visits in all.
const MAX_DEPTH: u32 = 64;
const MAX_LOOKUPS: u32 = 4096;
/// Our own bound on nested calls, so that a pathological pipeline cannot exhaust the stack.
const MAX_NESTING: u32 = 1024;

/// What processing a packet makes the switch do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `frame` out of `port`.
    Output { port: u32, frame: Vec<u8> },
    /// Send a packet-in to the controller. `data` is the packet as modified so far, cut to the
    /// action's `max_len`; `total_len` is its full length; `match_` holds `in_port` (and
    /// `metadata` when non-zero), as Open vSwitch sends it.
    PacketIn {
        reason: u8,
        table_id: u8,
        cookie: u64,
        match_: Match,
        total_len: u16,
        data: Vec<u8>,
    },
}

impl Effect {
    /// The `OFPT_PACKET_IN` body for a packet-in effect (unbuffered).
    pub fn to_packet_in(&self) -> Option<PacketIn> {
        match self {
            Effect::PacketIn {
                reason,
                table_id,
                cookie,
                match_,
                total_len,
                data,
            } => Some(PacketIn {
                buffer_id: NO_BUFFER,
                total_len: *total_len,
                reason: *reason,
                table_id: *table_id,
                cookie: *cookie,
                match_: match_.clone(),
                data: Bytes::copy_from_slice(data),
            }),
            Effect::Output { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matches

/// One field of a normalized match: value and mask as integers, the value already masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldMatch {
    field: OxmField,
    value: u128,
    mask: u128,
}

/// The fields the engine can read from a packet.
fn matchable(f: OxmField) -> bool {
    use OxmField as F;
    matches!(
        f,
        F::InPort
            | F::InPhyPort
            | F::Metadata
            | F::EthDst
            | F::EthSrc
            | F::EthType
            | F::VlanVid
            | F::VlanPcp
            | F::IpDscp
            | F::IpEcn
            | F::IpProto
            | F::Ipv4Src
            | F::Ipv4Dst
            | F::TcpSrc
            | F::TcpDst
            | F::UdpSrc
            | F::UdpDst
            | F::SctpSrc
            | F::SctpDst
            | F::Icmpv4Type
            | F::Icmpv4Code
            | F::ArpOp
            | F::ArpSpa
            | F::ArpTpa
            | F::ArpSha
            | F::ArpTha
            | F::Ipv6Src
            | F::Ipv6Dst
            | F::Ipv6Flabel
            | F::Icmpv6Type
            | F::Icmpv6Code
            | F::Ipv6NdTarget
            | F::Ipv6NdSll
            | F::Ipv6NdTll
            | F::TunnelId
    )
}

/// The fields set_field can write.
fn settable(f: OxmField) -> bool {
    use OxmField as F;
    matches!(
        f,
        F::Metadata
            | F::EthDst
            | F::EthSrc
            | F::IpDscp
            | F::IpEcn
            | F::Ipv4Src
            | F::Ipv4Dst
            | F::TcpSrc
            | F::TcpDst
            | F::UdpSrc
            | F::UdpDst
            | F::Icmpv4Type
            | F::Icmpv4Code
            | F::ArpOp
            | F::ArpSpa
            | F::ArpTpa
            | F::ArpSha
            | F::ArpTha
            | F::Ipv6Src
            | F::Ipv6Dst
    )
}

fn full_mask(f: OxmField) -> u128 {
    let bits = f.value_len() * 8;
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// Checks a match and brings it to a canonical form: fields sorted, full masks and exact
/// values alike, all-zero masks dropped. Two matches are "identical" (ADD, *_STRICT) when their
/// canonical forms are equal.
fn normalize(m: &Match) -> Result<Vec<FieldMatch>, OfpError> {
    m.check().map_err(|e| (OFPET_BAD_MATCH, e.code()))?;
    let bad_field = (OFPET_BAD_MATCH, OFPBMC_BAD_FIELD);
    let mut v = Vec::with_capacity(m.fields.len());
    for o in &m.fields {
        let (field, value, mask) = o.bits().ok_or(bad_field)?;
        if !matchable(field) {
            return Err(bad_field);
        }
        let full = full_mask(field);
        let mask = mask.unwrap_or(full) & full;
        if mask != 0 {
            v.push(FieldMatch {
                field,
                value: value & mask,
                mask,
            });
        }
    }
    v.sort_by_key(|f| f.field);
    Ok(v)
}

/// Whether an entry with match `entry` is selected by a non-strict request `req`: the entry
/// is at least as specific on every field of the request.
fn loose_match(entry: &[FieldMatch], req: &[FieldMatch]) -> bool {
    req.iter().all(|r| {
        entry
            .iter()
            .any(|e| e.field == r.field && e.mask & r.mask == r.mask && e.value & r.mask == r.value)
    })
}

/// Whether some packet could match both.
fn overlaps(a: &[FieldMatch], b: &[FieldMatch]) -> bool {
    a.iter().all(|x| {
        b.iter()
            .filter(|y| y.field == x.field)
            .all(|y| (x.value ^ y.value) & x.mask & y.mask == 0)
    })
}

// ---------------------------------------------------------------------------------------------
// Packets

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

fn be128(b: &[u8], at: usize) -> u128 {
    match b
        .get(at..at + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
    {
        Some(a) => u128::from_be_bytes(a),
        None => 0,
    }
}

fn be48(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 6)
        .map_or(0, |s| s.iter().fold(0, |a, x| (a << 8) | u64::from(*x)))
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(at..at + v.len()) {
        s.copy_from_slice(v);
    }
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    put(b, at, &v.to_be_bytes());
}

/// Open vSwitch's `recalc_csum16` (RFC 1624): the checksum after one 16-bit word changed.
fn recalc_csum16(csum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!csum) + u32::from(!old) + u32::from(new);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Open vSwitch's `recalc_csum32`: the same for a 32-bit word.
fn recalc_csum32(csum: u16, old: u32, new: u32) -> u16 {
    let c = recalc_csum16(csum, (old >> 16) as u16, (new >> 16) as u16);
    recalc_csum16(c, old as u16, new as u16)
}

/// Open vSwitch's `packet_update_csum128`: the same for a 128-bit word (an IPv6 address).
fn recalc_csum128(csum: u16, old: u128, new: u128) -> u16 {
    (0..4).rev().fold(csum, |c, i| {
        recalc_csum32(c, (old >> (32 * i)) as u32, (new >> (32 * i)) as u32)
    })
}

/// The header fields of a frame and where its layers start, read as Open vSwitch's
/// `miniflow_extract` reads them: a field a packet does not have reads as 0.
#[derive(Debug, Clone, Copy, Default)]
struct Headers {
    eth_dst: u64,
    eth_src: u64,
    eth_type: u16,
    vlan_vid: u16,
    vlan_pcp: u8,
    l3: usize,
    /// An IPv4 header that passed OVS's sanity check.
    ipv4: bool,
    /// An IPv6 header that passed OVS's sanity check (its payload length fits the frame).
    ipv6: bool,
    /// An Ethernet/IPv4 ARP or RARP body.
    arp: bool,
    tos: u8,
    ttl: u8,
    proto: u8,
    nw_src: u32,
    nw_dst: u32,
    later_frag: bool,
    l4: usize,
    /// Bytes from the L4 header to the end of the IP datagram (padding excluded).
    l4_len: usize,
    /// Ports, or ICMP type and code.
    tp_src: u16,
    tp_dst: u16,
    arp_op: u16,
    arp_spa: u32,
    arp_tpa: u32,
    arp_sha: u64,
    arp_tha: u64,
    ipv6_src: u128,
    ipv6_dst: u128,
    ipv6_flabel: u32,
    /// A neighbour solicitation's or advertisement's target, and its link-layer option.
    nd_target: u128,
    nd_sll: u64,
    nd_tll: u64,
}

impl Headers {
    /// `None` for a frame shorter than an Ethernet header.
    fn parse(f: &[u8]) -> Option<Headers> {
        if f.len() < 14 {
            return None;
        }
        let mut h = Headers {
            eth_dst: be48(f, 0),
            eth_src: be48(f, 6),
            ..Headers::default()
        };
        let mut ty = be16(f, 12);
        let mut off = 14;
        if (ty == crate::packet::ETH_VLAN || ty == 0x88a8) && f.len() >= 18 {
            let tci = be16(f, 14);
            h.vlan_vid = OFPVID_PRESENT | (tci & 0x0fff);
            h.vlan_pcp = (tci >> 13) as u8;
            ty = be16(f, 16);
            off = 18;
        }
        // 802.3 length field: OVS's FLOW_DL_TYPE_NONE.
        h.eth_type = if ty < 0x0600 { 0x05ff } else { ty };
        h.l3 = off;
        let l3 = f.get(off..).unwrap_or_default();
        match h.eth_type {
            ETH_IPV4 => h.parse_ipv4(l3),
            ETH_IPV6 => h.parse_ipv6(l3),
            ETH_ARP | ETH_RARP => h.parse_arp(l3),
            _ => {}
        }
        Some(h)
    }

    fn parse_ipv4(&mut self, l3: &[u8]) {
        let size = l3.len();
        let ihl = usize::from(byte(l3, 0) & 0x0f) * 4;
        let tot = usize::from(be16(l3, 2));
        // ipv4_sanity_check (which does not look at the version nibble).
        if size < 20 || ihl < 20 || size < ihl || tot > size || ihl > tot {
            return;
        }
        self.ipv4 = true;
        self.tos = byte(l3, 1);
        self.ttl = byte(l3, 8);
        self.proto = byte(l3, 9);
        self.nw_src = be32(l3, 12);
        self.nw_dst = be32(l3, 16);
        self.later_frag = be16(l3, 6) & 0x1fff != 0;
        self.l4 = self.l3 + ihl;
        self.l4_len = tot - ihl;
        if self.later_frag {
            return;
        }
        let l4 = l3.get(ihl..tot).unwrap_or_default();
        let min = match self.proto {
            IP_TCP => 20,
            IP_UDP | IP_ICMP => 8,
            IP_SCTP => 12,
            _ => return,
        };
        if l4.len() < min {
            return;
        }
        if self.proto == IP_ICMP {
            self.tp_src = u16::from(byte(l4, 0));
            self.tp_dst = u16::from(byte(l4, 1));
        } else {
            self.tp_src = be16(l4, 0);
            self.tp_dst = be16(l4, 2);
        }
    }

    /// `miniflow_extract` for IPv6: the fixed header, the extension headers OVS walks
    /// (hop-by-hop, routing, destination options, AH, fragment), then the transport header;
    /// ICMPv6 type and code in the port fields, and a neighbour solicitation's or
    /// advertisement's target and link-layer address.
    fn parse_ipv6(&mut self, l3: &[u8]) {
        let size = l3.len();
        if size < 40 {
            return;
        }
        let plen = usize::from(be16(l3, 4));
        if plen > size - 40 {
            return;
        }
        self.ipv6 = true;
        let vtcfl = be32(l3, 0);
        self.tos = (vtcfl >> 20) as u8;
        self.ipv6_flabel = vtcfl & 0x000f_ffff;
        self.ttl = byte(l3, 7);
        self.ipv6_src = be128(l3, 8);
        self.ipv6_dst = be128(l3, 24);
        let end = 40 + plen;
        let (mut next, mut off) = (byte(l3, 6), 40);
        loop {
            let len = match next {
                0 | 43 | 60 => (usize::from(byte(l3, off + 1)) + 1) * 8,
                51 => (usize::from(byte(l3, off + 1)) + 2) * 4,
                44 => {
                    if be16(l3, off + 2) & 0xfff8 != 0 {
                        self.later_frag = true;
                    }
                    8
                }
                _ => break,
            };
            if off + len > end {
                // A truncated extension header: OVS reads no protocol.
                return;
            }
            next = byte(l3, off);
            off += len;
        }
        self.proto = next;
        self.l4 = self.l3 + off;
        self.l4_len = end - off;
        if self.later_frag {
            return;
        }
        let l4 = l3.get(off..end).unwrap_or_default();
        let min = match self.proto {
            IP_TCP => 20,
            IP_UDP | IP_ICMPV6 => 8,
            IP_SCTP => 12,
            _ => return,
        };
        if l4.len() < min {
            return;
        }
        if self.proto != IP_ICMPV6 {
            self.tp_src = be16(l4, 0);
            self.tp_dst = be16(l4, 2);
            return;
        }
        let (ty, code) = (byte(l4, 0), byte(l4, 1));
        self.tp_src = ty.into();
        self.tp_dst = code.into();
        if code != 0 || !(ty == ND_NS || ty == ND_NA) || l4.len() < 24 {
            return;
        }
        self.nd_target = be128(l4, 8);
        // Options: a malformed one (length 0, past the end, or a second link-layer address
        // of its kind) makes OVS forget the neighbour discovery fields.
        let mut at = 24;
        let (mut sll, mut tll) = (0, 0);
        while at + 8 <= l4.len() {
            let len = usize::from(byte(l4, at + 1)) * 8;
            if len == 0 || at + len > l4.len() {
                self.nd_target = 0;
                return;
            }
            // Either option in either message, as OVS reads them.
            let slot = match (byte(l4, at), len) {
                (1, 8) => Some(&mut sll),
                (2, 8) => Some(&mut tll),
                _ => None,
            };
            if let Some(slot) = slot {
                if *slot != 0 {
                    self.nd_target = 0;
                    return;
                }
                *slot = be48(l4, at + 2);
            }
            at += len;
        }
        self.nd_sll = sll;
        self.nd_tll = tll;
    }

    fn parse_arp(&mut self, l3: &[u8]) {
        if l3.len() < 28
            || be16(l3, 0) != 1
            || be16(l3, 2) != ETH_IPV4
            || byte(l3, 4) != 6
            || byte(l3, 5) != 4
        {
            return;
        }
        self.arp = true;
        // OVS keeps the low 8 bits of the opcode, and only when the rest is zero.
        let op = be16(l3, 6);
        self.arp_op = if op <= 0xff { op } else { 0 };
        self.arp_sha = be48(l3, 8);
        self.arp_spa = be32(l3, 14);
        self.arp_tha = be48(l3, 18);
        self.arp_tpa = be32(l3, 24);
    }

    fn is_ip(&self) -> bool {
        self.eth_type == ETH_IPV4 || self.eth_type == ETH_IPV6
    }

    fn l4_ok(&self, proto: u8, min: usize) -> bool {
        (self.ipv4 || self.ipv6) && self.proto == proto && !self.later_frag && self.l4_len >= min
    }
}

/// The packet being processed: a working copy of the frame and the pipeline fields.
#[derive(Debug, Clone)]
struct Packet {
    in_port: u32,
    metadata: u64,
    frame: Vec<u8>,
    h: Headers,
}

enum Ttl {
    NotIp,
    Decremented,
    Expired,
}

impl Packet {
    fn new(in_port: u32, frame: &[u8]) -> Option<Packet> {
        Some(Packet {
            in_port,
            metadata: 0,
            h: Headers::parse(frame)?,
            frame: frame.to_vec(),
        })
    }

    fn field(&self, f: OxmField) -> u128 {
        use OxmField as F;
        let h = &self.h;
        match f {
            F::InPort | F::InPhyPort => self.in_port.into(),
            F::Metadata => self.metadata.into(),
            F::EthDst => h.eth_dst.into(),
            F::EthSrc => h.eth_src.into(),
            F::EthType => h.eth_type.into(),
            F::VlanVid => h.vlan_vid.into(),
            F::VlanPcp => h.vlan_pcp.into(),
            F::IpDscp => (h.tos >> 2).into(),
            F::IpEcn => (h.tos & 0x03).into(),
            F::IpProto => h.proto.into(),
            F::Ipv4Src => h.nw_src.into(),
            F::Ipv4Dst => h.nw_dst.into(),
            F::TcpSrc | F::UdpSrc | F::SctpSrc | F::Icmpv4Type => h.tp_src.into(),
            F::TcpDst | F::UdpDst | F::SctpDst | F::Icmpv4Code => h.tp_dst.into(),
            F::ArpOp => h.arp_op.into(),
            F::ArpSpa => h.arp_spa.into(),
            F::ArpTpa => h.arp_tpa.into(),
            F::ArpSha => h.arp_sha.into(),
            F::ArpTha => h.arp_tha.into(),
            F::Ipv6Src => h.ipv6_src,
            F::Ipv6Dst => h.ipv6_dst,
            F::Ipv6Flabel => h.ipv6_flabel.into(),
            F::Icmpv6Type => h.tp_src.into(),
            F::Icmpv6Code => h.tp_dst.into(),
            F::Ipv6NdTarget => h.nd_target,
            F::Ipv6NdSll => h.nd_sll.into(),
            F::Ipv6NdTll => h.nd_tll.into(),
            _ => 0,
        }
    }

    fn matches(&self, key: &[FieldMatch]) -> bool {
        key.iter().all(|m| self.field(m.field) & m.mask == m.value)
    }

    /// The match a packet-out's actions are checked against: the packet's own protocols.
    fn prerequisites(&self) -> Match {
        let mut fields = vec![Oxm::EthType(self.h.eth_type, None)];
        if self.h.is_ip() {
            fields.push(Oxm::IpProto(self.h.proto, None));
        }
        Match::new(fields)
    }

    fn reparse(&mut self) {
        if let Some(h) = Headers::parse(&self.frame) {
            self.h = h;
        }
    }

    /// Applies a set-field action; a field the packet does not have is left alone (OVS checks
    /// prerequisites on the packet at run time too).
    fn set_field(&mut self, field: &Oxm) {
        let h = self.h;
        match *field {
            Oxm::Metadata(v, _) => {
                self.metadata = v;
                return;
            }
            Oxm::EthDst(m, _) => put(&mut self.frame, 0, &m.0),
            Oxm::EthSrc(m, _) => put(&mut self.frame, 6, &m.0),
            Oxm::IpDscp(v, _) if h.ipv4 => self.set_tos((h.tos & 0x03) | (v << 2)),
            Oxm::IpEcn(v, _) if h.ipv4 => self.set_tos((h.tos & 0xfc) | (v & 0x03)),
            Oxm::Ipv4Src(a, _) if h.ipv4 => self.set_ipv4_addr(12, a.into()),
            Oxm::Ipv4Dst(a, _) if h.ipv4 => self.set_ipv4_addr(16, a.into()),
            Oxm::Ipv6Src(a, _) if h.ipv6 => self.set_ipv6_addr(8, a.into()),
            Oxm::Ipv6Dst(a, _) if h.ipv6 => self.set_ipv6_addr(24, a.into()),
            Oxm::TcpSrc(p, _) if self.has_tcp() => self.set_tcp_port(0, p),
            Oxm::TcpDst(p, _) if self.has_tcp() => self.set_tcp_port(2, p),
            Oxm::UdpSrc(p, _) if h.l4_ok(IP_UDP, 8) => self.set_udp_port(0, p),
            Oxm::UdpDst(p, _) if h.l4_ok(IP_UDP, 8) => self.set_udp_port(2, p),
            Oxm::Icmpv4Type(t, _) if h.l4_ok(IP_ICMP, 8) => self.set_icmp(t, h.tp_dst as u8),
            Oxm::Icmpv4Code(c, _) if h.l4_ok(IP_ICMP, 8) => self.set_icmp(h.tp_src as u8, c),
            Oxm::ArpOp(op, _) if h.arp => put16(&mut self.frame, h.l3 + 6, op & 0xff),
            Oxm::ArpSha(m, _) if h.arp => put(&mut self.frame, h.l3 + 8, &m.0),
            Oxm::ArpSpa(a, _) if h.arp => put(&mut self.frame, h.l3 + 14, &a.octets()),
            Oxm::ArpTha(m, _) if h.arp => put(&mut self.frame, h.l3 + 18, &m.0),
            Oxm::ArpTpa(a, _) if h.arp => put(&mut self.frame, h.l3 + 24, &a.octets()),
            _ => return,
        }
        self.reparse();
    }

    /// `dp_packet_get_tcp_payload` is not null: a whole TCP header with a sane data offset.
    fn has_tcp(&self) -> bool {
        let h = &self.h;
        let doff = usize::from(byte(&self.frame, h.l4 + 12) >> 4) * 4;
        h.l4_ok(IP_TCP, 20) && doff >= 20 && doff <= h.l4_len
    }

    fn csum_at(&mut self, at: usize, f: impl FnOnce(u16) -> u16) {
        let c = f(be16(&self.frame, at));
        put16(&mut self.frame, at, c);
    }

    /// `packet_set_ipv4_addr`: the L4 checksum covers the address through the pseudo-header.
    fn set_ipv4_addr(&mut self, at: usize, new: u32) {
        let h = self.h;
        let old = be32(&self.frame, h.l3 + at);
        if old == new {
            return;
        }
        if h.proto == IP_TCP && h.l4_len >= 20 {
            self.csum_at(h.l4 + 16, |c| recalc_csum32(c, old, new));
        } else if h.proto == IP_UDP && h.l4_len >= 8 {
            self.csum_at(h.l4 + 6, |c| match c {
                0 => 0,
                c => match recalc_csum32(c, old, new) {
                    0 => 0xffff,
                    c => c,
                },
            });
        }
        self.csum_at(h.l3 + 10, |c| recalc_csum32(c, old, new));
        put(&mut self.frame, h.l3 + at, &new.to_be_bytes());
    }

    /// `packet_set_ipv6_addr`: the TCP, UDP (unless 0) or ICMPv6 checksum covers the address
    /// through the pseudo-header; IPv6 has no header checksum.
    fn set_ipv6_addr(&mut self, at: usize, new: u128) {
        let h = self.h;
        let old = be128(&self.frame, h.l3 + at);
        if old == new {
            return;
        }
        if !h.later_frag {
            if h.proto == IP_TCP && h.l4_len >= 20 {
                self.csum_at(h.l4 + 16, |c| recalc_csum128(c, old, new));
            } else if h.proto == IP_UDP && h.l4_len >= 8 {
                self.csum_at(h.l4 + 6, |c| match c {
                    0 => 0,
                    c => match recalc_csum128(c, old, new) {
                        0 => 0xffff,
                        c => c,
                    },
                });
            } else if h.proto == IP_ICMPV6 && h.l4_len >= 4 {
                self.csum_at(h.l4 + 2, |c| recalc_csum128(c, old, new));
            }
        }
        put(&mut self.frame, h.l3 + at, &new.to_be_bytes());
    }

    fn set_tos(&mut self, tos: u8) {
        let (l3, old) = (self.h.l3, self.h.tos);
        if old != tos {
            self.csum_at(l3 + 10, |c| recalc_csum16(c, old.into(), tos.into()));
            put(&mut self.frame, l3 + 1, &[tos]);
        }
    }

    fn set_ipv4_ttl(&mut self, ttl: u8) {
        let (l3, old) = (self.h.l3, self.h.ttl);
        if old != ttl {
            let word = |t: u8| u16::from(t) << 8;
            self.csum_at(l3 + 10, |c| recalc_csum16(c, word(old), word(ttl)));
            put(&mut self.frame, l3 + 8, &[ttl]);
        }
    }

    fn set_tcp_port(&mut self, at: usize, new: u16) {
        let l4 = self.h.l4;
        let old = be16(&self.frame, l4 + at);
        if old != new {
            self.csum_at(l4 + 16, |c| recalc_csum16(c, old, new));
            put16(&mut self.frame, l4 + at, new);
        }
    }

    fn set_udp_port(&mut self, at: usize, new: u16) {
        let l4 = self.h.l4;
        let old = be16(&self.frame, l4 + at);
        let csum = be16(&self.frame, l4 + 6);
        if csum != 0 {
            let mut c = if old != new {
                recalc_csum16(csum, old, new)
            } else {
                csum
            };
            if c == 0 {
                c = 0xffff;
            }
            put16(&mut self.frame, l4 + 6, c);
        }
        put16(&mut self.frame, l4 + at, new);
    }

    fn set_icmp(&mut self, ty: u8, code: u8) {
        let l4 = self.h.l4;
        let old = be16(&self.frame, l4);
        let new = u16::from_be_bytes([ty, code]);
        if old != new {
            put16(&mut self.frame, l4, new);
            self.csum_at(l4 + 2, |c| recalc_csum16(c, old, new));
        }
    }

    /// `set_nw_ttl`: IPv4 TTL (checksum updated) or IPv6 hop limit; other packets unchanged.
    fn set_ttl(&mut self, ttl: u8) {
        if self.h.ipv4 {
            self.set_ipv4_ttl(ttl);
        } else if self.h.ipv6 {
            put(&mut self.frame, self.h.l3 + 7, &[ttl]);
        }
        self.reparse();
    }

    fn dec_ttl(&mut self) -> Ttl {
        if !self.h.is_ip() {
            return Ttl::NotIp;
        }
        // A malformed IP header has TTL 0 for OVS too.
        let ttl = if self.h.ipv4 {
            self.h.ttl
        } else if self.h.ipv6 {
            byte(&self.frame, self.h.l3 + 7)
        } else {
            0
        };
        if ttl <= 1 {
            return Ttl::Expired;
        }
        self.set_ttl(ttl - 1);
        Ttl::Decremented
    }
}

// ---------------------------------------------------------------------------------------------
// Flow entries

#[derive(Debug, Clone)]
struct Entry {
    priority: u16,
    cookie: u64,
    flags: u16,
    idle_timeout: u16,
    hard_timeout: u16,
    /// As the controller sent it, for flow stats.
    match_: Match,
    key: Vec<FieldMatch>,
    instructions: Vec<Instruction>,
    packets: Cell<u64>,
    bytes: Cell<u64>,
    created: Instant,
    /// When a packet last matched it (or when it was installed): its idle timeout runs from
    /// here.
    used: Cell<Instant>,
}

impl Entry {
    fn new(fm: &FlowMod, key: Vec<FieldMatch>) -> Entry {
        Entry {
            priority: fm.priority,
            cookie: fm.cookie,
            flags: fm.flags,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            match_: fm.match_.clone(),
            key,
            instructions: fm.instructions.clone(),
            packets: Cell::new(0),
            bytes: Cell::new(0),
            created: Instant::now(),
            used: Cell::new(Instant::now()),
        }
    }

    /// When it expires, if it has a timeout: the earlier of its idle and hard deadlines.
    fn expiry(&self) -> Option<(Instant, u8)> {
        let idle = (self.idle_timeout != 0).then(|| {
            (
                self.used.get() + Duration::from_secs(u64::from(self.idle_timeout)),
                OFPRR_IDLE_TIMEOUT,
            )
        });
        let hard = (self.hard_timeout != 0).then(|| {
            (
                self.created + Duration::from_secs(u64::from(self.hard_timeout)),
                OFPRR_HARD_TIMEOUT,
            )
        });
        match (idle, hard) {
            (Some(i), Some(h)) => Some(if h.0 <= i.0 { h } else { i }),
            (i, h) => i.or(h),
        }
    }

    /// Whether it has an idle or hard timeout.
    fn expires(&self) -> bool {
        self.idle_timeout != 0 || self.hard_timeout != 0
    }

    /// A table-miss entry: priority 0, every field wildcarded.
    fn is_table_miss(&self) -> bool {
        self.priority == 0 && self.key.is_empty()
    }

    fn instruction(&self, ty: u16) -> Option<&Instruction> {
        self.instructions
            .iter()
            .find(|i| i.instruction_type() == ty)
    }

    fn actions(&self) -> impl Iterator<Item = &Action> {
        self.instructions.iter().flat_map(|i| match i {
            Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } => {
                actions.as_slice()
            }
            _ => &[],
        })
    }

    fn outputs_to(&self, p: u32) -> bool {
        p == port::ANY
            || self
                .actions()
                .any(|a| matches!(a, Action::Output { port, .. } if *port == p))
    }

    fn uses_group(&self, g: u32) -> bool {
        g == group::ANY
            || self
                .actions()
                .any(|a| matches!(a, Action::Group { group_id } if *group_id == g))
    }

    fn cookie_matches(&self, cookie: u64, mask: u64) -> bool {
        self.cookie & mask == cookie & mask
    }

    fn reset_counters(&self) {
        self.packets.set(0);
        self.bytes.set(0);
    }

    fn stats(&self, table_id: u8) -> FlowStats {
        let age = self.created.elapsed();
        FlowStats {
            table_id,
            duration_sec: u32::try_from(age.as_secs()).unwrap_or(u32::MAX),
            duration_nsec: age.subsec_nanos(),
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            cookie: self.cookie,
            packet_count: self.packets.get(),
            byte_count: self.bytes.get(),
            match_: self.match_.clone(),
            instructions: self.instructions.clone(),
        }
    }
}

/// The action set (OpenFlow 1.3.5 section 5.10) as Open vSwitch keeps it: dec_ttl once,
/// set-fields in the order written, one output.
#[derive(Debug, Default)]
struct ActionSet {
    dec_ttl: bool,
    sets: Vec<Action>,
    output: Option<Action>,
    /// A group in the action set takes precedence over its output (OpenFlow 1.3.5, 5.10).
    group: Option<Action>,
}

impl ActionSet {
    fn clear(&mut self) {
        self.dec_ttl = false;
        self.sets.clear();
        self.output = None;
        self.group = None;
    }

    fn write(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::DecNwTtl => self.dec_ttl = true,
                Action::Output { .. } => self.output = Some(a.clone()),
                Action::Group { .. } => self.group = Some(a.clone()),
                Action::SetField { .. } | Action::SetNwTtl { .. } | Action::SetQueue { .. } => {
                    self.sets.push(a.clone())
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processing

/// What packet-ins raised by an action list say.
#[derive(Debug, Clone, Copy)]
struct Origin {
    table_id: u8,
    cookie: u64,
    /// Reason for an output to CONTROLLER.
    reason: u8,
}

/// The origin of a packet-out's own actions, and of its action set.
const PACKET_OUT: Origin = Origin {
    table_id: 0,
    cookie: u64::MAX,
    reason: OFPR_ACTION,
};

/// Whether the rest of the current action list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    /// A dec_ttl exception: OVS stops processing the current table's actions.
    Stop,
}

struct Ctx<'a> {
    pkt: Packet,
    ports: &'a [u32],
    groups: &'a Groups,
    /// Ports that exist but are not live (their link is down).
    down: &'a [u32],
    action_set: ActionSet,
    effects: Vec<Effect>,
    /// Origin of the action set's packet-ins: the top-level entry.
    top: Origin,
    record_top: bool,
    depth: u32,
    nesting: u32,
    lookups: u32,
    failed: bool,
    every_bucket: bool,
}

impl<'a> Ctx<'a> {
    fn new(pkt: Packet, sw: &'a FlowTables, record_top: bool) -> Self {
        Ctx {
            every_bucket: sw.every_bucket,
            pkt,
            ports: &sw.ports,
            groups: &sw.groups,
            down: &sw.down,
            action_set: ActionSet::default(),
            effects: Vec::new(),
            top: PACKET_OUT,
            record_top,
            depth: 0,
            nesting: 0,
            lookups: 0,
            failed: false,
        }
    }

    fn emit(&mut self, port: u32) {
        // Like Open vSwitch: nothing goes out of a port whose link is down.
        if self.ports.contains(&port) && !self.down.contains(&port) {
            self.effects.push(Effect::Output {
                port,
                frame: self.pkt.frame.clone(),
            });
        }
    }

    fn packet_in(&mut self, reason: u8, origin: Origin, max_len: u16) {
        let frame = &self.pkt.frame;
        let n = if max_len == OFPCML_NO_BUFFER {
            frame.len()
        } else {
            frame.len().min(usize::from(max_len))
        };
        let mut fields = vec![Oxm::InPort(self.pkt.in_port, None)];
        if self.pkt.metadata != 0 {
            fields.push(Oxm::Metadata(self.pkt.metadata, None));
        }
        self.effects.push(Effect::PacketIn {
            reason,
            table_id: origin.table_id,
            cookie: origin.cookie,
            match_: Match::new(fields),
            total_len: u16::try_from(frame.len()).unwrap_or(u16::MAX),
            data: frame.get(..n).unwrap_or(frame).to_vec(),
        });
    }

    fn finish(self) -> Vec<Effect> {
        if self.failed {
            Vec::new()
        } else {
            self.effects
        }
    }
}

type Tables = [Vec<Entry>];

/// A group as the switch holds it, with its counters.
#[derive(Debug, Clone)]
struct GroupEntry {
    group_type: u8,
    buckets: Vec<Bucket>,
    /// Packets and bytes each bucket has taken.
    counts: Vec<(Cell<u64>, Cell<u64>)>,
    packets: Cell<u64>,
    bytes: Cell<u64>,
    created: Instant,
}

type Groups = std::collections::BTreeMap<u32, GroupEntry>;

/// Looks the packet up in `table_id` and runs the entry's instructions. `deepens`: a jump to
/// this table or an earlier one.
fn run_table(tables: &Tables, ctx: &mut Ctx<'_>, table_id: u8, deepens: bool) {
    ctx.lookups += 1;
    if ctx.failed
        || ctx.lookups > MAX_LOOKUPS
        || ctx.depth + u32::from(deepens) > MAX_DEPTH
        || ctx.nesting >= MAX_NESTING
    {
        ctx.failed = true;
        return;
    }
    let Some(entry) = tables
        .get(usize::from(table_id))
        .and_then(|t| t.iter().find(|e| ctx.pkt.matches(&e.key)))
    else {
        return;
    };
    entry.packets.set(entry.packets.get() + 1);
    entry
        .bytes
        .set(entry.bytes.get() + ctx.pkt.frame.len() as u64);
    if entry.idle_timeout != 0 {
        entry.used.set(Instant::now());
    }
    let origin = Origin {
        table_id,
        cookie: entry.cookie,
        reason: if entry.is_table_miss() {
            OFPR_NO_MATCH
        } else {
            OFPR_ACTION
        },
    };
    if ctx.record_top {
        ctx.record_top = false;
        ctx.top = Origin {
            reason: OFPR_ACTION,
            ..origin
        };
    }
    ctx.depth += u32::from(deepens);
    ctx.nesting += 1;
    run_instructions(tables, ctx, entry, origin);
    ctx.nesting -= 1;
    ctx.depth -= u32::from(deepens);
}

fn run_instructions(tables: &Tables, ctx: &mut Ctx<'_>, entry: &Entry, origin: Origin) {
    if let Some(Instruction::ApplyActions { actions }) = entry.instruction(OFPIT_APPLY_ACTIONS) {
        if run_actions(tables, ctx, actions, origin) == Next::Stop {
            return;
        }
    }
    if entry.instruction(OFPIT_CLEAR_ACTIONS).is_some() {
        ctx.action_set.clear();
    }
    if let Some(Instruction::WriteActions { actions }) = entry.instruction(OFPIT_WRITE_ACTIONS) {
        ctx.action_set.write(actions);
    }
    if let Some(Instruction::WriteMetadata {
        metadata,
        metadata_mask,
    }) = entry.instruction(OFPIT_WRITE_METADATA)
    {
        ctx.pkt.metadata = (ctx.pkt.metadata & !metadata_mask) | (metadata & metadata_mask);
    }
    if let Some(Instruction::GotoTable { table_id }) = entry.instruction(OFPIT_GOTO_TABLE) {
        run_table(tables, ctx, *table_id, *table_id <= origin.table_id);
    }
}

fn run_actions(tables: &Tables, ctx: &mut Ctx<'_>, actions: &[Action], origin: Origin) -> Next {
    for a in actions {
        if run_action(tables, ctx, a, origin) == Next::Stop || ctx.failed {
            return Next::Stop;
        }
    }
    Next::Continue
}

fn run_action(tables: &Tables, ctx: &mut Ctx<'_>, a: &Action, origin: Origin) -> Next {
    match a {
        Action::Output { port, max_len } => output(tables, ctx, *port, *max_len, origin),
        Action::SetField { field } => ctx.pkt.set_field(field),
        Action::SetNwTtl { nw_ttl } => ctx.pkt.set_ttl(*nw_ttl),
        Action::DecNwTtl => match ctx.pkt.dec_ttl() {
            Ttl::NotIp | Ttl::Decremented => {}
            Ttl::Expired => {
                ctx.packet_in(OFPR_INVALID_TTL, origin, OFPCML_NO_BUFFER);
                return Next::Stop;
            }
        },
        Action::Group { group_id } => run_group(tables, ctx, *group_id, origin),
        // set_queue: no queues; everything else was refused by the flow mod.
        _ => {}
    }
    Next::Continue
}

/// Runs group `id`: the chosen buckets, each on its own copy of the packet (what a bucket
/// rewrites is not seen by the actions after the group).
fn run_group(tables: &Tables, ctx: &mut Ctx<'_>, id: u32, origin: Origin) {
    let Some(g) = ctx.groups.get(&id) else {
        return;
    };
    let chosen: Vec<usize> = match g.group_type {
        OFPGT_ALL => (0..g.buckets.len()).collect(),
        OFPGT_INDIRECT => vec![0],
        OFPGT_FF => (0..g.buckets.len())
            .find(|&i| bucket_live(ctx, &g.buckets[i], 0))
            .into_iter()
            .collect(),
        _ if ctx.every_bucket => (0..g.buckets.len())
            .filter(|&i| g.buckets[i].weight > 0 && bucket_live(ctx, &g.buckets[i], 0))
            .collect(),
        _ => select_bucket(ctx, g).into_iter().collect(),
    };
    for i in chosen {
        let Some(b) = g.buckets.get(i) else {
            continue;
        };
        if let Some((n, bytes)) = g.counts.get(i) {
            n.set(n.get() + 1);
            bytes.set(bytes.get() + ctx.pkt.frame.len() as u64);
        }
        let saved = ctx.pkt.clone();
        run_actions(tables, ctx, &b.actions, origin);
        ctx.pkt = saved;
    }
    g.packets.set(g.packets.get() + 1);
    g.bytes.set(g.bytes.get() + ctx.pkt.frame.len() as u64);
}

/// Whether a bucket may be used: its watch port exists and is up, its watch group has a live
/// bucket (checked a few groups deep).
fn bucket_live(ctx: &Ctx<'_>, b: &Bucket, depth: u32) -> bool {
    let port_ok = b.watch_port == port::ANY
        || (ctx.ports.contains(&b.watch_port) && !ctx.down.contains(&b.watch_port));
    let group_ok = b.watch_group == group::ANY
        || (depth < 8
            && ctx
                .groups
                .get(&b.watch_group)
                .is_some_and(|g| g.buckets.iter().any(|b| bucket_live(ctx, b, depth + 1))));
    port_ok && group_ok
}

/// A select group's bucket for this packet: among the live buckets of non-zero weight, one
/// chosen by weight from a hash of the packet's addresses, protocol and TCP or SCTP ports
/// (symmetric: both directions of a connection hash alike). UDP ports are left out, as Open
/// vSwitch 3.1's `sym_l4` hash leaves them out: UDP flows between two hosts share a bucket.
fn select_bucket(ctx: &Ctx<'_>, g: &GroupEntry) -> Option<usize> {
    let live: Vec<usize> = (0..g.buckets.len())
        .filter(|&i| g.buckets[i].weight > 0 && bucket_live(ctx, &g.buckets[i], 0))
        .collect();
    let total: u64 = live.iter().map(|&i| u64::from(g.buckets[i].weight)).sum();
    if total == 0 {
        return None;
    }
    let h = &ctx.pkt.h;
    let (a, b) = (h.nw_src.min(h.nw_dst), h.nw_src.max(h.nw_dst));
    let (p, q) = if matches!(h.proto, IP_TCP | IP_SCTP) {
        (h.tp_src.min(h.tp_dst), h.tp_src.max(h.tp_dst))
    } else {
        (0, 0)
    };
    // FNV-1a over the symmetric 5-tuple.
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a
        .to_be_bytes()
        .into_iter()
        .chain(b.to_be_bytes())
        .chain([h.proto])
        .chain(p.to_be_bytes())
        .chain(q.to_be_bytes())
    {
        x = (x ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut at = x % total;
    for i in live {
        let w = u64::from(g.buckets[i].weight);
        if at < w {
            return Some(i);
        }
        at -= w;
    }
    None
}

fn output(tables: &Tables, ctx: &mut Ctx<'_>, out: u32, max_len: u16, origin: Origin) {
    let in_port = ctx.pkt.in_port;
    match out {
        port::CONTROLLER => ctx.packet_in(origin.reason, origin, max_len),
        port::TABLE => run_table(tables, ctx, 0, true),
        port::IN_PORT => ctx.emit(in_port),
        port::FLOOD | port::ALL => {
            let ports = ctx.ports;
            for &p in ports.iter().filter(|p| **p != in_port) {
                ctx.emit(p);
            }
        }
        p if p == in_port => {}
        p => ctx.emit(p),
    }
}

/// Executes the action set at the end of the pipeline (only if it holds an output or a
/// group).
fn run_action_set(tables: &Tables, ctx: &mut Ctx<'_>) {
    let set = std::mem::take(&mut ctx.action_set);
    let Some(out) = set.group.as_ref().or(set.output.as_ref()) else {
        return;
    };
    let origin = ctx.top;
    if set.dec_ttl && run_action(tables, ctx, &Action::DecNwTtl, origin) == Next::Stop {
        return;
    }
    if run_actions(tables, ctx, &set.sets, origin) == Next::Stop {
        return;
    }
    run_action(tables, ctx, out, origin);
}

// ---------------------------------------------------------------------------------------------
// Validation

fn check_port(p: u32) -> Result<(), OfpError> {
    match p {
        port::IN_PORT | port::TABLE | port::FLOOD | port::ALL | port::CONTROLLER | port::LOCAL => {
            Ok(())
        }
        p if p < port::MAX => Ok(()),
        // ANY, and NORMAL which this engine cannot do.
        _ => Err((OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT)),
    }
}

/// Whether set-field on `f` is consistent with `m` (RARP counts as ARP, as in OVS).
fn set_field_consistent(m: &Match, f: OxmField) -> bool {
    use OxmField as F;
    m.prerequisite_met(f).is_ok()
        || (matches!(f, F::ArpOp | F::ArpSpa | F::ArpTpa | F::ArpSha | F::ArpTha)
            && m.fields.contains(&Oxm::EthType(ETH_RARP, None)))
}

/// Checks an action list; `consistent_with` is the match of apply-actions (or the packet of a
/// packet-out) that set-field and TTL actions must be consistent with.
fn check_actions(
    actions: &[Action],
    consistent_with: Option<&Match>,
    groups: &Groups,
) -> Result<(), OfpError> {
    let inconsistent = (OFPET_BAD_ACTION, OFPBAC_MATCH_INCONSISTENT);
    for a in actions {
        match a {
            Action::Output { port, .. } => check_port(*port)?,
            Action::SetField { field } => {
                let (f, value, mask) = field
                    .bits()
                    .ok_or((OFPET_BAD_ACTION, OFPBAC_BAD_SET_TYPE))?;
                if !settable(f) {
                    return Err((OFPET_BAD_ACTION, OFPBAC_BAD_SET_TYPE));
                }
                let out_of_range = match f {
                    OxmField::IpDscp => value > 0x3f,
                    OxmField::IpEcn => value > 0x03,
                    _ => false,
                };
                if mask.is_some() || out_of_range {
                    return Err((OFPET_BAD_ACTION, OFPBAC_BAD_SET_ARGUMENT));
                }
                if consistent_with.is_some_and(|m| !set_field_consistent(m, f)) {
                    return Err(inconsistent);
                }
            }
            Action::DecNwTtl | Action::SetNwTtl { .. } => {
                // OVS: only on IPv4/IPv6 matches (the prerequisite of ip_proto).
                if consistent_with.is_some_and(|m| m.prerequisite_met(OxmField::IpProto).is_err()) {
                    return Err(inconsistent);
                }
            }
            Action::SetQueue { .. } => {}
            Action::Group { group_id } if groups.contains_key(group_id) => {}
            Action::Group { .. } => return Err((OFPET_BAD_ACTION, OFPBAC_BAD_OUT_GROUP)),
            Action::Experimenter { .. } => return Err((OFPET_BAD_ACTION, OFPBAC_BAD_EXPERIMENTER)),
            _ => return Err((OFPET_BAD_ACTION, OFPBAC_BAD_TYPE)),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The tables

/// The flow tables of one switch and the ports it can send to.
#[derive(Debug, Clone)]
pub struct FlowTables {
    tables: Vec<Vec<Entry>>,
    ports: Vec<u32>,
    groups: Groups,
    /// Ports whose link is down (not live): buckets watching them are not used.
    down: Vec<u32>,
    /// Entries with an idle or hard timeout: [`FlowTables::next_expiry`] looks at none when
    /// there are none (a switch asks at every turn of its loop).
    timed: usize,
    /// A select group runs every live bucket, each on its own copy, instead of the one its
    /// hash picks ([`FlowTables::every_bucket`]).
    every_bucket: bool,
}

impl Default for FlowTables {
    /// 254 tables, as Open vSwitch announces; no ports.
    fn default() -> Self {
        FlowTables::new(254)
    }
}

impl FlowTables {
    /// Tables `0..n_tables`, empty (every packet dropped), and no ports.
    pub fn new(n_tables: u8) -> Self {
        FlowTables {
            tables: (0..n_tables).map(|_| Vec::new()).collect(),
            timed: 0,
            every_bucket: false,
            ports: Vec::new(),
            groups: Groups::new(),
            down: Vec::new(),
        }
    }

    pub fn n_tables(&self) -> u8 {
        u8::try_from(self.tables.len()).unwrap_or(u8::MAX)
    }

    /// The ports that exist: outputs go only to these, FLOOD and ALL to all of them but the
    /// input port, in this order. Include `port::LOCAL` to model the bridge's own port.
    pub fn set_ports(&mut self, ports: &[u32]) {
        self.ports = ports.to_vec();
    }

    pub fn ports(&self) -> &[u32] {
        &self.ports
    }

    /// Makes every select group run all its live buckets, each on its own copy of the
    /// packet, instead of the one its hash picks: what a checker that must see every path a
    /// flow may take needs (Open vSwitch picks by its own hash, which the engine's does not
    /// reproduce). Off by default.
    pub fn every_bucket(&mut self, on: bool) {
        self.every_bucket = on;
    }

    /// Marks a port live (its link up) or not; every port starts live. Nothing is sent out of
    /// a port that is not live, and buckets that watch it are left out.
    pub fn set_port_live(&mut self, port: u32, live: bool) {
        self.down.retain(|&p| p != port);
        if !live {
            self.down.push(port);
        }
    }

    /// Applies a GROUP_MOD; on error nothing changed and the result is the `OFPT_ERROR` the
    /// switch sends back. Deleting a group deletes the entries that use it.
    pub fn apply_group_mod(&mut self, gm: &GroupMod) -> Result<(), OfpError> {
        let failed = |code| Err((OFPET_GROUP_MOD_FAILED, code));
        match gm.command {
            OFPGC_DELETE => {
                let gone: Vec<u32> = if gm.group_id == group::ALL {
                    self.groups.keys().copied().collect()
                } else {
                    self.groups
                        .contains_key(&gm.group_id)
                        .then_some(gm.group_id)
                        .into_iter()
                        .collect()
                };
                for id in gone {
                    self.groups.remove(&id);
                    self.delete(
                        &FlowMod {
                            command: OFPFC_DELETE,
                            table_id: TABLE_ALL,
                            out_group: id,
                            ..FlowMod::default()
                        },
                        false,
                    )?;
                }
                Ok(())
            }
            OFPGC_ADD | OFPGC_MODIFY => {
                if gm.group_id > group::MAX {
                    return failed(OFPGMFC_INVALID_GROUP);
                }
                if !matches!(
                    gm.group_type,
                    OFPGT_ALL | OFPGT_SELECT | OFPGT_INDIRECT | OFPGT_FF
                ) {
                    return failed(OFPGMFC_BAD_TYPE);
                }
                if gm.group_type == OFPGT_INDIRECT && gm.buckets.len() != 1 {
                    return failed(OFPGMFC_INVALID_GROUP);
                }
                for b in &gm.buckets {
                    // Weights are for select groups only: Open vSwitch 3.1 refuses a
                    // weight on any other group's bucket with this error.
                    if gm.group_type != OFPGT_SELECT && b.weight != 0 {
                        return failed(OFPGMFC_INVALID_GROUP);
                    }
                    if b.actions.iter().any(|a| matches!(a, Action::Group { .. })) {
                        return failed(OFPGMFC_CHAINING_UNSUPPORTED);
                    }
                    if gm.group_type == OFPGT_FF
                        && b.watch_port == port::ANY
                        && b.watch_group == group::ANY
                    {
                        return failed(OFPGMFC_BAD_WATCH);
                    }
                    check_actions(&b.actions, None, &self.groups)?;
                }
                let exists = self.groups.contains_key(&gm.group_id);
                if gm.command == OFPGC_ADD && exists {
                    return failed(OFPGMFC_GROUP_EXISTS);
                }
                if gm.command == OFPGC_MODIFY && !exists {
                    return failed(OFPGMFC_UNKNOWN_GROUP);
                }
                self.groups.insert(
                    gm.group_id,
                    GroupEntry {
                        group_type: gm.group_type,
                        buckets: gm.buckets.clone(),
                        counts: gm
                            .buckets
                            .iter()
                            .map(|_| (Cell::new(0), Cell::new(0)))
                            .collect(),
                        packets: Cell::new(0),
                        bytes: Cell::new(0),
                        created: Instant::now(),
                    },
                );
                Ok(())
            }
            _ => failed(OFPGMFC_BAD_COMMAND),
        }
    }

    /// The groups, by id, as a group-desc reply gives them.
    pub fn groups(&self) -> Vec<GroupDesc> {
        self.groups
            .iter()
            .map(|(&id, g)| GroupDesc {
                group_type: g.group_type,
                group_id: id,
                buckets: g.buckets.clone(),
            })
            .collect()
    }

    /// The groups' counters (group `group::ALL`: every group), as a group-stats reply gives
    /// them; `ref_count` is the number of entries that use the group.
    pub fn group_stats(&self, group_id: u32) -> Vec<GroupStats> {
        self.groups
            .iter()
            .filter(|(&id, _)| group_id == group::ALL || id == group_id)
            .map(|(&id, g)| {
                let age = g.created.elapsed();
                let refs = self
                    .tables
                    .iter()
                    .flatten()
                    .filter(|e| e.uses_group(id))
                    .count();
                GroupStats {
                    group_id: id,
                    ref_count: u32::try_from(refs).unwrap_or(u32::MAX),
                    packet_count: g.packets.get(),
                    byte_count: g.bytes.get(),
                    duration_sec: u32::try_from(age.as_secs()).unwrap_or(u32::MAX),
                    duration_nsec: age.subsec_nanos(),
                    bucket_stats: g
                        .counts
                        .iter()
                        .map(|(n, bytes)| ofp13::Counter {
                            packet_count: n.get(),
                            byte_count: bytes.get(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Flow entries in all tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry that uses meter `id` (any meter: `meter::ALL`), as a switch does
    /// when the meter is deleted; how many.
    pub fn remove_metered(&mut self, id: u32) -> usize {
        let mut gone = 0;
        let mut gone_timed = 0;
        for t in &mut self.tables {
            t.retain(|e| {
                let uses = Instruction::meter_of(&e.instructions)
                    .is_some_and(|m| id == ofp13::meter::ALL || m == id);
                gone += usize::from(uses);
                gone_timed += usize::from(uses && e.expires());
                !uses
            });
        }
        self.timed = self.timed.saturating_sub(gone_timed);
        gone
    }

    /// How many entries use meter `id`.
    pub fn count_metered(&self, id: u32) -> u32 {
        let n = self
            .tables
            .iter()
            .flatten()
            .filter(|e| Instruction::meter_of(&e.instructions) == Some(id))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Applies a FLOW_MOD; on error nothing changed and the result is the `OFPT_ERROR` the
    /// switch sends back.
    pub fn apply_flow_mod(&mut self, fm: &FlowMod) -> Result<(), OfpError> {
        let strict = matches!(fm.command, OFPFC_MODIFY_STRICT | OFPFC_DELETE_STRICT);
        match fm.command {
            OFPFC_ADD => self.add(fm),
            OFPFC_MODIFY | OFPFC_MODIFY_STRICT => self.modify(fm, strict),
            OFPFC_DELETE | OFPFC_DELETE_STRICT => self.delete(fm, strict),
            _ => Err((OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_COMMAND)),
        }
    }

    /// The indices of the tables `table_id` names (`OFPTT_ALL` when `all_ok`).
    fn table_range(&self, table_id: u8, all_ok: bool) -> Result<std::ops::Range<usize>, OfpError> {
        let t = usize::from(table_id);
        if table_id == TABLE_ALL && all_ok {
            Ok(0..self.tables.len())
        } else if t < self.tables.len() {
            Ok(t..t + 1)
        } else {
            Err((OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_TABLE_ID))
        }
    }

    fn check_instructions(&self, fm: &FlowMod) -> Result<(), OfpError> {
        if fm.buffer_id != NO_BUFFER {
            return Err((OFPET_BAD_REQUEST, OFPBRC_BUFFER_UNKNOWN));
        }
        let mut seen = 0u32;
        for i in &fm.instructions {
            let bit = match i {
                Instruction::Experimenter { .. } => {
                    return Err((OFPET_BAD_INSTRUCTION, OFPBIC_BAD_EXPERIMENTER))
                }
                Instruction::Unknown { .. } => {
                    return Err((OFPET_BAD_INSTRUCTION, OFPBIC_UNKNOWN_INST))
                }
                _ => 1u32 << i.instruction_type(),
            };
            if seen & bit != 0 {
                // An instruction type given twice: OpenFlow 1.3 has no code for it.
                return Err((OFPET_BAD_INSTRUCTION, OFPBIC_UNSUP_INST));
            }
            seen |= bit;
            match i {
                Instruction::GotoTable { table_id } => {
                    let backward = fm.table_id != TABLE_ALL && *table_id <= fm.table_id;
                    if backward || usize::from(*table_id) >= self.tables.len() {
                        return Err((OFPET_BAD_INSTRUCTION, OFPBIC_BAD_TABLE_ID));
                    }
                }
                Instruction::ApplyActions { actions } => {
                    check_actions(actions, Some(&fm.match_), &self.groups)?
                }
                Instruction::WriteActions { actions } => {
                    check_actions(actions, None, &self.groups)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add(&mut self, fm: &FlowMod) -> Result<(), OfpError> {
        let t = self.table_range(fm.table_id, false)?.start;
        let key = normalize(&fm.match_)?;
        self.check_instructions(fm)?;
        let Some(table) = self.tables.get_mut(t) else {
            return Err((OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_TABLE_ID));
        };
        if fm.flags & OFPFF_CHECK_OVERLAP != 0
            && table
                .iter()
                .any(|e| e.priority == fm.priority && overlaps(&e.key, &key))
        {
            return Err((OFPET_FLOW_MOD_FAILED, OFPFMFC_OVERLAP));
        }
        let new = Entry::new(fm, key);
        self.timed += usize::from(new.expires());
        if let Some(old) = table
            .iter_mut()
            .find(|e| e.priority == new.priority && e.key == new.key)
        {
            // Replaced: new cookie, flags, instructions and duration; counters kept.
            if fm.flags & OFPFF_RESET_COUNTS == 0 {
                new.packets.set(old.packets.get());
                new.bytes.set(old.bytes.get());
            }
            self.timed = self.timed.saturating_sub(usize::from(old.expires()));
            *old = new;
        } else {
            // After every entry of the same or higher priority: lookups take the first match.
            let at = table
                .iter()
                .position(|e| e.priority < new.priority)
                .unwrap_or(table.len());
            table.insert(at, new);
        }
        Ok(())
    }

    fn selected(e: &Entry, fm: &FlowMod, key: &[FieldMatch], strict: bool) -> bool {
        e.cookie_matches(fm.cookie, fm.cookie_mask)
            && if strict {
                e.priority == fm.priority && e.key == key
            } else {
                loose_match(&e.key, key)
            }
    }

    fn modify(&mut self, fm: &FlowMod, strict: bool) -> Result<(), OfpError> {
        let range = self.table_range(fm.table_id, true)?;
        let key = normalize(&fm.match_)?;
        self.check_instructions(fm)?;
        for table in self.tables.get_mut(range).unwrap_or_default() {
            for e in table
                .iter_mut()
                .filter(|e| Self::selected(e, fm, &key, strict))
            {
                e.instructions = fm.instructions.clone();
                if fm.flags & OFPFF_RESET_COUNTS != 0 {
                    e.reset_counters();
                }
            }
        }
        Ok(())
    }

    fn delete(&mut self, fm: &FlowMod, strict: bool) -> Result<(), OfpError> {
        let range = self.table_range(fm.table_id, true)?;
        let key = normalize(&fm.match_)?;
        let mut gone_timed = 0;
        for table in self.tables.get_mut(range).unwrap_or_default() {
            table.retain(|e| {
                let gone = Self::selected(e, fm, &key, strict)
                    && e.outputs_to(fm.out_port)
                    && e.uses_group(fm.out_group);
                gone_timed += usize::from(gone && e.expires());
                !gone
            });
        }
        self.timed = self.timed.saturating_sub(gone_timed);
        Ok(())
    }

    /// The earliest time an entry expires (its idle or hard timeout), if any has one.
    pub fn next_expiry(&self) -> Option<Instant> {
        if self.timed == 0 {
            return None;
        }
        self.tables
            .iter()
            .flatten()
            .filter_map(|e| e.expiry().map(|(t, _)| t))
            .min()
    }

    /// Removes every entry whose idle or hard timeout has run out by `now`, as a switch does;
    /// returns the FLOW_REMOVED messages of those with `OFPFF_SEND_FLOW_REM` (reason
    /// `OFPRR_IDLE_TIMEOUT` or `OFPRR_HARD_TIMEOUT`).
    pub fn expire(&mut self, now: Instant) -> Vec<FlowRemoved> {
        let mut out = Vec::new();
        if self.timed == 0 {
            return out;
        }
        let mut expired = 0;
        for (t, table) in self.tables.iter_mut().enumerate() {
            table.retain(|e| {
                let Some((at, reason)) = e.expiry().filter(|(at, _)| *at <= now) else {
                    return true;
                };
                if e.flags & OFPFF_SEND_FLOW_REM != 0 {
                    let age = at.saturating_duration_since(e.created);
                    out.push(FlowRemoved {
                        cookie: e.cookie,
                        priority: e.priority,
                        reason,
                        table_id: u8::try_from(t).unwrap_or(u8::MAX),
                        duration_sec: u32::try_from(age.as_secs()).unwrap_or(u32::MAX),
                        duration_nsec: age.subsec_nanos(),
                        idle_timeout: e.idle_timeout,
                        hard_timeout: e.hard_timeout,
                        packet_count: e.packets.get(),
                        byte_count: e.bytes.get(),
                        match_: e.match_.clone(),
                    });
                }
                expired += 1;
                false
            });
        }
        self.timed = self.timed.saturating_sub(expired);
        out
    }

    /// Runs a frame received on `in_port` through the pipeline from table 0.
    pub fn process(&self, in_port: u32, frame: &[u8]) -> Vec<Effect> {
        let Some(pkt) = Packet::new(in_port, frame) else {
            return Vec::new();
        };
        let mut ctx = Ctx::new(pkt, self, true);
        run_table(&self.tables, &mut ctx, 0, false);
        run_action_set(&self.tables, &mut ctx);
        ctx.finish()
    }

    /// Runs a PACKET_OUT: its actions on its data, `output:TABLE` through the pipeline with the
    /// packet-out's `in_port`. Errors as a switch would answer them.
    pub fn packet_out(&mut self, po: &PacketOut) -> Result<Vec<Effect>, OfpError> {
        if po.buffer_id != NO_BUFFER {
            return Err((OFPET_BAD_REQUEST, OFPBRC_BUFFER_UNKNOWN));
        }
        if !(po.in_port < port::MAX
            || matches!(po.in_port, port::LOCAL | port::CONTROLLER | port::ANY))
        {
            return Err((OFPET_BAD_REQUEST, OFPBRC_BAD_PORT));
        }
        let pkt = Packet::new(po.in_port, &po.data);
        let prereq = pkt.as_ref().map(Packet::prerequisites).unwrap_or_default();
        check_actions(&po.actions, Some(&prereq), &self.groups)?;
        let Some(pkt) = pkt else {
            return Ok(Vec::new());
        };
        let mut ctx = Ctx::new(pkt, self, false);
        run_actions(&self.tables, &mut ctx, &po.actions, PACKET_OUT);
        run_action_set(&self.tables, &mut ctx);
        Ok(ctx.finish())
    }

    /// Every entry of `table_id` (`OFPTT_ALL`: of every table) with its counters, in lookup
    /// order.
    pub fn dump(&self, table_id: u8) -> Vec<FlowStats> {
        self.flow_stats(&FlowStatsRequest {
            table_id,
            ..FlowStatsRequest::all()
        })
    }

    /// The answer to an `OFPMP_FLOW` request: entries selected like a non-strict delete.
    pub fn flow_stats(&self, req: &FlowStatsRequest) -> Vec<FlowStats> {
        let (Ok(range), Ok(key)) = (self.table_range(req.table_id, true), normalize(&req.match_))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (t, table) in self
            .tables
            .iter()
            .enumerate()
            .skip(range.start)
            .take(range.len())
        {
            let table_id = u8::try_from(t).unwrap_or(u8::MAX);
            out.extend(
                table
                    .iter()
                    .filter(|e| {
                        e.cookie_matches(req.cookie, req.cookie_mask)
                            && loose_match(&e.key, &key)
                            && e.outputs_to(req.out_port)
                            && e.uses_group(req.out_group)
                    })
                    .map(|e| e.stats(table_id)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, icmp, ipv4_frame, Arp, ARP_REQUEST, ICMP_ECHO_REQUEST};
    use ofp13::MacAddr;
    use ofp13::{OFPR_ACTION, OFPR_INVALID_TTL, OFPR_NO_MATCH};
    use std::net::Ipv4Addr;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
    const GW: MacAddr = MacAddr([2, 0x53, 0x53, 0, 0, 1]);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn ipv4() -> Oxm {
        Oxm::EthType(ETH_IPV4, None)
    }

    fn flow(
        table_id: u8,
        priority: u16,
        fields: Vec<Oxm>,
        instructions: Vec<Instruction>,
    ) -> FlowMod {
        FlowMod {
            table_id,
            priority,
            match_: Match::new(fields),
            instructions,
            ..FlowMod::default()
        }
    }

    fn apply(actions: Vec<Action>) -> Vec<Instruction> {
        vec![Instruction::ApplyActions { actions }]
    }

    fn set(field: Oxm) -> Action {
        Action::SetField { field }
    }

    fn out(p: u32) -> Action {
        Action::output(p)
    }

    fn bucket(watch: u32, actions: Vec<Action>) -> Bucket {
        Bucket {
            weight: 1,
            watch_port: watch,
            watch_group: group::ANY,
            actions,
        }
    }

    /// A GROUP_MOD whose buckets have weights only if it is a select group (as Open
    /// vSwitch requires).
    fn group_mod(command: u16, group_type: u8, id: u32, buckets: Vec<Bucket>) -> GroupMod {
        let weight = u16::from(group_type == OFPGT_SELECT);
        GroupMod {
            command,
            group_type,
            group_id: id,
            buckets: buckets
                .into_iter()
                .map(|b| Bucket { weight, ..b })
                .collect(),
        }
    }

    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        l4_frame(IP_TCP, sport, dport)
    }

    #[test]
    fn a_select_group_keeps_each_flow_on_one_live_bucket_and_spreads_flows() {
        let mut t = FlowTables::new(8);
        t.set_ports(&[1, 2, 3, 4]);
        let buckets = vec![bucket(2, vec![out(2)]), bucket(3, vec![out(3)])];
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_SELECT, 7, buckets))
            .unwrap();
        t.apply_flow_mod(&flow(
            0,
            1,
            vec![ipv4()],
            apply(vec![Action::DecNwTtl, Action::Group { group_id: 7 }]),
        ))
        .unwrap();
        let mut per_port = [0u32; 5];
        for sport in 1000..1200 {
            let f = tcp(sport, 53);
            let a = ports(&t.process(1, &f));
            assert_eq!(a.len(), 1, "one bucket per packet");
            assert_eq!(
                a,
                ports(&t.process(1, &f)),
                "the same flow, the same bucket"
            );
            per_port[a[0] as usize] += 1;
        }
        assert!(
            per_port[2] > 60 && per_port[3] > 60,
            "200 flows over two buckets: {per_port:?}"
        );
        let stats = t.group_stats(group::ALL);
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].group_id, stats[0].ref_count), (7, 1));
        assert_eq!(stats[0].packet_count, 400);
        let per_bucket: Vec<u64> = stats[0]
            .bucket_stats
            .iter()
            .map(|c| c.packet_count)
            .collect();
        assert_eq!(
            per_bucket,
            vec![2 * u64::from(per_port[2]), 2 * u64::from(per_port[3])]
        );
        // The dec_ttl before the group is seen by the bucket.
        let fx = t.process(1, &tcp(1000, 53));
        let Effect::Output { frame, .. } = &fx[0] else {
            panic!("{fx:?}")
        };
        assert_eq!(frame[22], tcp(1000, 53)[22] - 1);
        // Port 2 down: every flow on port 3; back up: the flows that were on 2 return.
        t.set_port_live(2, false);
        for sport in 1000..1200 {
            assert_eq!(ports(&t.process(1, &tcp(sport, 53))), vec![3]);
        }
        t.set_port_live(2, true);
        let back = (1000..1200)
            .filter(|&p| ports(&t.process(1, &tcp(p, 53))) == vec![2])
            .count();
        assert_eq!(back, per_port[2] as usize);
        // UDP ports are not hashed: every UDP flow between two hosts takes one bucket.
        let udp: std::collections::BTreeSet<Vec<u32>> = (1000..1064)
            .map(|p| ports(&t.process(1, &l4_frame(IP_UDP, p, 53))))
            .collect();
        assert_eq!(udp.len(), 1, "{udp:?}");
        // Every bucket followed (for a checker): each live bucket on its own copy.
        t.every_bucket(true);
        assert_eq!(ports(&t.process(1, &tcp(1000, 53))), vec![2, 3]);
        t.set_port_live(2, false);
        assert_eq!(ports(&t.process(1, &tcp(1000, 53))), vec![3]);
        t.set_port_live(2, true);
        t.every_bucket(false);
        // Both down: dropped.
        t.set_port_live(2, false);
        t.set_port_live(3, false);
        assert!(t.process(1, &tcp(1000, 53)).is_empty());
    }

    #[test]
    fn fast_failover_takes_the_first_live_bucket_and_buckets_work_on_copies() {
        let mut t = FlowTables::new(8);
        t.set_ports(&[1, 2, 3, 4]);
        let ff = vec![bucket(2, vec![out(2)]), bucket(3, vec![out(3)])];
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_FF, 1, ff))
            .unwrap();
        // An all group whose first bucket rewrites: the second bucket and the action after
        // the group see the packet as it was.
        let all = vec![
            bucket(port::ANY, vec![set(Oxm::EthDst(B, None)), out(2)]),
            bucket(port::ANY, vec![out(3)]),
        ];
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_ALL, 2, all))
            .unwrap();
        t.apply_flow_mod(&flow(
            0,
            2,
            vec![Oxm::InPort(1, None)],
            apply(vec![Action::Group { group_id: 1 }]),
        ))
        .unwrap();
        t.apply_flow_mod(&flow(
            0,
            2,
            vec![Oxm::InPort(4, None)],
            apply(vec![Action::Group { group_id: 2 }, out(1)]),
        ))
        .unwrap();
        let f = tcp(1, 2);
        assert_eq!(ports(&t.process(1, &f)), vec![2]);
        t.set_port_live(2, false);
        assert_eq!(ports(&t.process(1, &f)), vec![3]);
        t.set_port_live(3, false);
        assert!(t.process(1, &f).is_empty());
        t.set_port_live(2, true);
        assert_eq!(ports(&t.process(1, &f)), vec![2]);

        t.set_port_live(3, true);
        let fx = t.process(4, &f);
        assert_eq!(ports(&fx), vec![2, 3, 1]);
        let dst = |e: &Effect| match e {
            Effect::Output { frame, .. } => frame[..6].to_vec(),
            _ => Vec::new(),
        };
        assert_eq!(dst(&fx[0]), B.0.to_vec());
        assert_eq!(dst(&fx[1]), f[..6].to_vec());
        assert_eq!(dst(&fx[2]), f[..6].to_vec());
    }

    #[test]
    fn group_mods_are_checked_as_open_vswitch_does_and_a_deleted_group_takes_its_entries() {
        let mut t = FlowTables::new(8);
        t.set_ports(&[1, 2, 3]);
        let one = || vec![bucket(2, vec![out(2)])];
        let e = |t: &mut FlowTables, gm: GroupMod| t.apply_group_mod(&gm).unwrap_err();
        assert_eq!(
            e(&mut t, group_mod(OFPGC_MODIFY, OFPGT_SELECT, 1, one())),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_UNKNOWN_GROUP)
        );
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_SELECT, 1, one()))
            .unwrap();
        assert_eq!(
            e(&mut t, group_mod(OFPGC_ADD, OFPGT_SELECT, 1, one())),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_GROUP_EXISTS)
        );
        assert_eq!(
            e(
                &mut t,
                group_mod(OFPGC_ADD, OFPGT_SELECT, group::ALL, one())
            ),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_INVALID_GROUP)
        );
        assert_eq!(
            e(&mut t, group_mod(OFPGC_ADD, 9, 2, one())),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_BAD_TYPE)
        );
        assert_eq!(
            e(&mut t, group_mod(7, OFPGT_SELECT, 2, one())),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_BAD_COMMAND)
        );
        let mut weighted = group_mod(OFPGC_ADD, OFPGT_FF, 2, one());
        weighted.buckets[0].weight = 1;
        assert_eq!(
            e(&mut t, weighted),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_INVALID_GROUP),
            "a weight on a fast-failover bucket, as Open vSwitch 3.1 answers it"
        );
        assert_eq!(
            e(
                &mut t,
                group_mod(
                    OFPGC_ADD,
                    OFPGT_FF,
                    2,
                    vec![bucket(port::ANY, vec![out(2)])]
                )
            ),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_BAD_WATCH)
        );
        assert_eq!(
            e(
                &mut t,
                group_mod(
                    OFPGC_ADD,
                    OFPGT_INDIRECT,
                    2,
                    vec![bucket(2, vec![out(2)]); 2]
                )
            ),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_INVALID_GROUP)
        );
        assert_eq!(
            e(
                &mut t,
                group_mod(
                    OFPGC_ADD,
                    OFPGT_ALL,
                    2,
                    vec![bucket(port::ANY, vec![Action::Group { group_id: 1 }])]
                )
            ),
            (OFPET_GROUP_MOD_FAILED, OFPGMFC_CHAINING_UNSUPPORTED)
        );
        assert_eq!(
            e(
                &mut t,
                group_mod(
                    OFPGC_ADD,
                    OFPGT_ALL,
                    2,
                    vec![bucket(port::ANY, vec![out(port::NORMAL)])]
                )
            ),
            (OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT)
        );
        assert_eq!(t.groups().len(), 1, "nothing refused was kept");
        // Modified in place: the entries that use it keep using it.
        t.apply_flow_mod(&flow(
            0,
            1,
            vec![],
            apply(vec![Action::Group { group_id: 1 }]),
        ))
        .unwrap();
        t.apply_flow_mod(&flow(0, 2, vec![Oxm::InPort(3, None)], apply(vec![out(1)])))
            .unwrap();
        t.apply_group_mod(&group_mod(
            OFPGC_MODIFY,
            OFPGT_SELECT,
            1,
            vec![bucket(3, vec![out(3)])],
        ))
        .unwrap();
        assert_eq!(ports(&t.process(1, &tcp(1, 2))), vec![3]);
        assert_eq!(t.groups()[0].buckets, vec![bucket(3, vec![out(3)])]);
        // Deleting it deletes the entry that used it, not the other; deleting what is not
        // there is no error.
        t.apply_group_mod(&group_mod(OFPGC_DELETE, OFPGT_ALL, 1, Vec::new()))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.groups().is_empty());
        t.apply_group_mod(&group_mod(OFPGC_DELETE, OFPGT_ALL, 1, Vec::new()))
            .unwrap();
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_SELECT, 4, one()))
            .unwrap();
        t.apply_group_mod(&group_mod(OFPGC_ADD, OFPGT_SELECT, 5, one()))
            .unwrap();
        t.apply_group_mod(&group_mod(OFPGC_DELETE, OFPGT_ALL, group::ALL, Vec::new()))
            .unwrap();
        assert!(t.groups().is_empty());
    }

    #[test]
    fn timeouts_expire_entries_and_report_those_that_ask() {
        let mut t = FlowTables::new(8);
        t.set_ports(&[1, 2]);
        assert_eq!(t.next_expiry(), None, "nothing times out");
        let idle = FlowMod {
            idle_timeout: 1,
            flags: ofp13::OFPFF_SEND_FLOW_REM,
            cookie: 7,
            ..flow(0, 10, vec![Oxm::InPort(1, None)], apply(vec![out(2)]))
        };
        let hard = FlowMod {
            hard_timeout: 3,
            ..flow(0, 11, vec![Oxm::InPort(2, None)], apply(vec![out(1)]))
        };
        t.apply_flow_mod(&idle).unwrap();
        t.apply_flow_mod(&hard).unwrap();
        let t0 = Instant::now();
        let next = t.next_expiry().unwrap();
        assert!(next >= t0 && next <= t0 + Duration::from_secs(1));
        // A packet keeps the idle one alive.
        std::thread::sleep(Duration::from_millis(20));
        let frame = ipv4_frame(B, A, ip("10.0.0.1"), ip("10.0.0.2"), 1, &[0; 8]);
        assert_eq!(t.process(1, &frame).len(), 1);
        assert!(t.next_expiry().unwrap() > next);
        // Past both: both go; only the one with send_flow_rem is reported.
        let removed = t.expire(Instant::now() + Duration::from_secs(4));
        assert_eq!(removed.len(), 1);
        assert_eq!(
            (removed[0].cookie, removed[0].reason, removed[0].priority),
            (7, ofp13::OFPRR_IDLE_TIMEOUT, 10)
        );
        assert!(t.is_empty());
        assert_eq!(t.next_expiry(), None);
        // Replaced or deleted entries are no longer counted.
        t.apply_flow_mod(&idle).unwrap();
        t.apply_flow_mod(&flow(0, 10, vec![Oxm::InPort(1, None)], apply(vec![])))
            .unwrap();
        assert_eq!(t.next_expiry(), None, "replaced by one without a timeout");
        t.apply_flow_mod(&hard).unwrap();
        t.apply_flow_mod(&FlowMod {
            command: OFPFC_DELETE,
            table_id: TABLE_ALL,
            ..FlowMod::default()
        })
        .unwrap();
        assert_eq!(t.next_expiry(), None);
    }

    fn switch(flows: &[FlowMod]) -> FlowTables {
        let mut t = FlowTables::new(8);
        t.set_ports(&[1, 2, 3, 4]);
        for f in flows {
            t.apply_flow_mod(f).unwrap();
        }
        t
    }

    fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
        f[22] = ttl;
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn icmp_frame(dst: &str, ttl: u8) -> Vec<u8> {
        let body = icmp(ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"abcdefgh");
        with_ttl(ipv4_frame(GW, A, ip("10.0.0.1"), ip(dst), 1, &body), ttl)
    }

    /// The one's-complement sum of the L4 segment with its pseudo-header: 0 when correct.
    fn l4_residue(f: &[u8]) -> u16 {
        let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let seg = &f[34..14 + tot];
        let mut v = f[26..34].to_vec();
        v.extend_from_slice(&[0, f[23]]);
        v.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        v.extend_from_slice(seg);
        checksum(&v)
    }

    fn l4_frame(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut seg = Vec::new();
        seg.extend_from_slice(&sport.to_be_bytes());
        seg.extend_from_slice(&dport.to_be_bytes());
        if proto == IP_TCP {
            seg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            seg.extend_from_slice(&[0, 12, 0, 0]);
        }
        seg.extend_from_slice(b"data");
        let mut f = ipv4_frame(GW, A, ip("10.0.0.1"), ip("10.0.1.2"), proto, &seg);
        let at = if proto == IP_TCP { 34 + 16 } else { 34 + 6 };
        let c = l4_residue(&f);
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        assert_eq!(l4_residue(&f), 0);
        f
    }

    fn arp_frame(op: u16, tpa: &str, ethertype: u16) -> Vec<u8> {
        Arp {
            op,
            sha: A,
            spa: ip("10.0.0.1"),
            tha: MacAddr::ZERO,
            tpa: ip(tpa),
        }
        .frame(MacAddr::BROADCAST, A, ethertype)
    }

    fn ports(effects: &[Effect]) -> Vec<u32> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Output { port, .. } => Some(*port),
                Effect::PacketIn { .. } => None,
            })
            .collect()
    }

    fn only_frame(effects: &[Effect]) -> &[u8] {
        match effects {
            [Effect::Output { frame, .. }] => frame,
            other => panic!("want one output, got {other:?}"),
        }
    }

    fn packet_ins(effects: &[Effect]) -> Vec<(u8, u8, u64)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::PacketIn {
                    reason,
                    table_id,
                    cookie,
                    ..
                } => Some((*reason, *table_id, *cookie)),
                Effect::Output { .. } => None,
            })
            .collect()
    }

    #[test]
    fn add_replaces_an_identical_entry_and_keeps_its_counters() {
        let m = |dst: Option<Ipv4Addr>| {
            vec![Oxm::Ipv4Dst(ip("10.0.1.0"), dst), ipv4()] // field order does not matter
        };
        let mut t = switch(&[FlowMod {
            cookie: 1,
            ..flow(0, 10, m(Some(ip("255.255.255.0"))), apply(vec![out(2)]))
        }]);
        assert_eq!(ports(&t.process(1, &icmp_frame("10.0.1.9", 64))), [2]);
        let len = icmp_frame("10.0.1.9", 64).len() as u64;
        // Same match written differently, same priority: replaced, counters kept.
        let again = FlowMod {
            cookie: 2,
            match_: Match::new(vec![
                ipv4(),
                Oxm::Ipv4Dst(ip("10.0.1.0"), Some(ip("255.255.255.0"))),
            ]),
            ..flow(0, 10, vec![], apply(vec![out(3)]))
        };
        t.apply_flow_mod(&again).unwrap();
        let d = t.dump(TABLE_ALL);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].cookie, d[0].packet_count, d[0].byte_count),
            (2, 1, len)
        );
        assert_eq!(ports(&t.process(1, &icmp_frame("10.0.1.9", 64))), [3]);
        // OFPFF_RESET_COUNTS clears them.
        t.apply_flow_mod(&FlowMod {
            flags: OFPFF_RESET_COUNTS,
            ..again.clone()
        })
        .unwrap();
        assert_eq!(t.dump(0)[0].packet_count, 0);
        // A /32 exact match equals a full mask; another priority is another entry.
        t.apply_flow_mod(&flow(0, 10, m(Some(ip("255.255.255.255"))), vec![]))
            .unwrap();
        t.apply_flow_mod(&flow(0, 10, m(None), vec![])).unwrap();
        t.apply_flow_mod(&flow(0, 11, m(None), vec![])).unwrap();
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn modify_keeps_cookie_and_counters_and_adds_nothing() {
        let net = Oxm::Ipv4Dst(ip("10.0.1.0"), Some(ip("255.255.255.0")));
        let host = Oxm::Ipv4Dst(ip("10.0.1.5"), None);
        let mut t = switch(&[
            FlowMod {
                cookie: 0x11,
                ..flow(0, 10, vec![ipv4(), net.clone()], apply(vec![out(2)]))
            },
            FlowMod {
                cookie: 0x22,
                ..flow(0, 20, vec![ipv4(), host.clone()], apply(vec![out(2)]))
            },
        ]);
        t.process(1, &icmp_frame("10.0.1.5", 64));
        // Loose: every entry at least as specific as `ip`, priority ignored.
        let m = FlowMod {
            command: OFPFC_MODIFY,
            cookie: 0x99,
            ..flow(0, 1, vec![ipv4()], apply(vec![out(3)]))
        };
        t.apply_flow_mod(&m).unwrap();
        let d = t.dump(0);
        assert_eq!(
            d.iter()
                .map(|f| (f.cookie, f.packet_count))
                .collect::<Vec<_>>(),
            [(0x22, 1), (0x11, 0)]
        );
        assert!(d.iter().all(|f| f.instructions == apply(vec![out(3)])));
        // Strict: same match and priority only; cookie mask filters.
        let strict = FlowMod {
            command: OFPFC_MODIFY_STRICT,
            ..flow(0, 20, vec![ipv4(), host.clone()], apply(vec![out(4)]))
        };
        t.apply_flow_mod(&FlowMod {
            cookie: 0x11,
            cookie_mask: u64::MAX,
            ..strict.clone()
        })
        .unwrap();
        assert_eq!(ports(&t.process(1, &icmp_frame("10.0.1.5", 64))), [3]);
        t.apply_flow_mod(&FlowMod {
            flags: OFPFF_RESET_COUNTS,
            ..strict
        })
        .unwrap();
        assert_eq!(ports(&t.process(1, &icmp_frame("10.0.1.5", 64))), [4]);
        assert_eq!(t.dump(0)[0].packet_count, 1, "reset, then one packet");
        // Nothing matches: nothing is added (OpenFlow 1.2+).
        t.apply_flow_mod(&FlowMod {
            command: OFPFC_MODIFY,
            ..flow(0, 1, vec![Oxm::EthType(ETH_ARP, None)], vec![])
        })
        .unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn delete_filters_by_match_priority_cookie_and_out_port() {
        let entries = || {
            vec![
                FlowMod {
                    cookie: 0x5353_0003_0000_0001,
                    ..flow(1, 500, vec![Oxm::EthDst(A, None)], apply(vec![out(2)]))
                },
                FlowMod {
                    cookie: 0x5353_0003_0000_0002,
                    ..flow(1, 500, vec![Oxm::EthDst(B, None)], apply(vec![out(3)]))
                },
                FlowMod {
                    cookie: 0x5353_0001_0000_0000,
                    ..flow(
                        2,
                        0,
                        vec![],
                        vec![Instruction::WriteActions {
                            actions: vec![out(3)],
                        }],
                    )
                },
            ]
        };
        let del = |table_id, cmd| FlowMod {
            command: cmd,
            table_id,
            ..FlowMod::default()
        };
        let mut t = switch(&entries());
        t.apply_flow_mod(&FlowMod {
            cookie: 0x5353_0003_0000_0000,
            cookie_mask: 0xffff_ffff_0000_0000,
            ..del(TABLE_ALL, OFPFC_DELETE)
        })
        .unwrap();
        assert_eq!(t.len(), 1);

        // out_port looks into write-actions too.
        let mut t = switch(&entries());
        t.apply_flow_mod(&FlowMod {
            out_port: 3,
            ..del(TABLE_ALL, OFPFC_DELETE)
        })
        .unwrap();
        assert_eq!(
            t.dump(TABLE_ALL)
                .iter()
                .map(|f| f.table_id)
                .collect::<Vec<_>>(),
            [1]
        );

        // Strict needs the priority; out_group ANY (the default) selects everything.
        let mut t = switch(&entries());
        let strict = FlowMod {
            match_: Match::new(vec![Oxm::EthDst(A, None)]),
            ..del(1, OFPFC_DELETE_STRICT)
        };
        t.apply_flow_mod(&FlowMod {
            priority: 499,
            ..strict.clone()
        })
        .unwrap();
        assert_eq!(t.len(), 3);
        t.apply_flow_mod(&FlowMod {
            priority: 500,
            ..strict
        })
        .unwrap();
        assert_eq!(t.len(), 2);
        t.apply_flow_mod(&FlowMod {
            out_group: 7,
            ..del(TABLE_ALL, OFPFC_DELETE)
        })
        .unwrap();
        assert_eq!(t.len(), 2, "no entry uses group 7");
        t.apply_flow_mod(&del(TABLE_ALL, OFPFC_DELETE)).unwrap();
        assert!(t.is_empty());
    }

    #[test]
    fn flow_mods_are_validated_like_a_switch() {
        let mut t = switch(&[]);
        let mut err = |fm: FlowMod| t.apply_flow_mod(&fm).unwrap_err();
        let ip_dst = Oxm::Ipv4Dst(ip("10.0.0.1"), None);
        // Match: Match::check codes, then fields the engine cannot read.
        assert_eq!(err(flow(0, 1, vec![ip_dst.clone()], vec![])), (4, 9));
        assert_eq!(err(flow(0, 1, vec![ipv4(), ipv4()], vec![])), (4, 10));
        assert_eq!(
            err(flow(
                0,
                1,
                vec![Oxm::EthType(0x86dd, None), Oxm::Ipv6Exthdr(1, None)],
                vec![]
            )),
            (4, 6)
        );
        // IPv6 fields are matched (tests/flowtable_vs_ovs.rs compares them with OVS).
        switch(&[])
            .apply_flow_mod(&flow(
                0,
                1,
                vec![Oxm::EthType(0x86dd, None), Oxm::IpProto(58, None)],
                vec![],
            ))
            .unwrap();
        assert_eq!(
            err(flow(
                0,
                1,
                vec![Oxm::Ipv6Src("::1".parse().unwrap(), None)],
                vec![]
            )),
            (4, 9)
        );
        // Set-field prerequisites against the match, not for write-actions (as OVS).
        let set_ip = set(ip_dst.clone());
        assert_eq!(
            err(flow(0, 1, vec![], apply(vec![set_ip.clone()]))),
            (2, 10)
        );
        assert_eq!(
            err(flow(
                0,
                1,
                vec![Oxm::EthType(ETH_ARP, None)],
                apply(vec![Action::DecNwTtl])
            )),
            (2, 10)
        );
        assert_eq!(
            err(flow(0, 1, vec![], apply(vec![set(Oxm::InPort(3, None))]))),
            (2, 13)
        );
        assert_eq!(
            err(flow(
                0,
                1,
                vec![],
                apply(vec![set(Oxm::EthSrc(A, Some(A)))])
            )),
            (2, 15)
        );
        assert_eq!(
            err(flow(
                0,
                1,
                vec![ipv4()],
                apply(vec![set(Oxm::IpDscp(64, None))])
            )),
            (2, 15)
        );
        assert_eq!(
            err(flow(
                0,
                1,
                vec![],
                apply(vec![Action::Group { group_id: 1 }])
            )),
            (2, 9),
            "a group that does not exist"
        );
        assert_eq!(
            err(flow(0, 1, vec![], apply(vec![out(port::NORMAL)]))),
            (2, 4)
        );
        assert_eq!(err(flow(0, 1, vec![], apply(vec![out(port::ANY)]))), (2, 4));
        assert_eq!(
            err(flow(0, 1, vec![], apply(vec![Action::PopVlan]))),
            (2, 0)
        );
        // Instructions and tables.
        let goto = |t| Instruction::GotoTable { table_id: t };
        assert_eq!(err(flow(2, 1, vec![], vec![goto(2)])), (3, 2));
        assert_eq!(err(flow(2, 1, vec![], vec![goto(8)])), (3, 2));
        assert_eq!(err(flow(0, 1, vec![], vec![goto(1), goto(2)])), (3, 1));
        assert_eq!(err(flow(TABLE_ALL, 1, vec![], vec![])), (5, 2));
        assert_eq!(err(flow(8, 1, vec![], vec![])), (5, 2));
        assert_eq!(
            err(FlowMod {
                command: 9,
                ..FlowMod::default()
            }),
            (5, 6)
        );
        assert_eq!(
            err(FlowMod {
                buffer_id: 7,
                ..FlowMod::default()
            }),
            (1, 8)
        );
        // Accepted: write-actions are not checked against the match; meters are ignored.
        let ok = flow(
            0,
            1,
            vec![],
            vec![
                Instruction::Meter { meter_id: 1 },
                Instruction::WriteActions {
                    actions: vec![set_ip, Action::DecNwTtl, out(2)],
                },
            ],
        );
        t.apply_flow_mod(&ok).unwrap();
        // Overlap check: same priority and some packet matches both.
        let overlap = FlowMod {
            flags: OFPFF_CHECK_OVERLAP,
            ..flow(0, 1, vec![ipv4()], vec![])
        };
        assert_eq!(t.apply_flow_mod(&overlap), Err((5, 3)));
        t.apply_flow_mod(&FlowMod {
            priority: 2,
            ..overlap
        })
        .unwrap();
        assert_eq!(t.len(), 2, "failed flow mods changed nothing");
    }

    #[test]
    fn highest_priority_match_wins_and_masks_are_honoured() {
        let prefix = |a, m, p| {
            flow(
                0,
                p,
                vec![ipv4(), Oxm::Ipv4Dst(ip(a), Some(ip(m)))],
                apply(vec![out(u32::from(p % 10))]),
            )
        };
        let mut t = switch(&[
            prefix("10.0.0.0", "255.0.0.0", 1008),
            prefix("10.1.0.0", "255.255.0.0", 1016),
            prefix("10.1.2.0", "255.255.255.0", 1024),
            // multicast destinations, by the group bit of eth_dst
            flow(
                0,
                2000,
                vec![Oxm::EthDst(
                    MacAddr([1, 0, 0, 0, 0, 0]),
                    Some(MacAddr([1, 0, 0, 0, 0, 0])),
                )],
                apply(vec![out(3)]),
            ),
            // same priority as the /16: the first one added wins
            flow(
                0,
                1016,
                vec![ipv4(), Oxm::Ipv4Dst(ip("10.0.0.0"), Some(ip("255.0.0.0")))],
                apply(vec![out(1)]),
            ),
        ]);
        t.set_ports(&[1, 2, 3, 4, 6, 8]);
        assert_eq!(ports(&t.process(1, &icmp_frame("10.1.2.3", 64))), [4]);
        assert_eq!(ports(&t.process(1, &icmp_frame("10.1.9.3", 64))), [6]);
        // the /8 at 1016 outranks the same /8 at 1008
        assert_eq!(ports(&t.process(2, &icmp_frame("10.9.9.3", 64))), [1]);
        assert!(
            t.process(1, &icmp_frame("11.0.0.1", 64)).is_empty(),
            "miss: drop"
        );
        let mut bcast = icmp_frame("10.1.2.3", 64);
        bcast[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(ports(&t.process(1, &bcast)), [3]);
        assert_eq!(
            ports(&t.process(1, &arp_frame(ARP_REQUEST, "10.1.2.3", ETH_ARP))),
            [3]
        );
    }

    #[test]
    fn set_field_updates_checksums_incrementally_like_ovs() {
        let rewrite = |proto_fields: Vec<Oxm>, sets: Vec<Oxm>| {
            let mut actions: Vec<Action> = sets.into_iter().map(set).collect();
            actions.push(out(2));
            let mut fields = vec![ipv4()];
            fields.extend(proto_fields);
            switch(&[flow(0, 1, fields, apply(actions))])
        };
        let nat = |p: Oxm, q: Oxm| {
            vec![
                Oxm::Ipv4Src(ip("192.168.11.3"), None),
                Oxm::Ipv4Dst(ip("192.168.10.3"), None),
                p,
                q,
                Oxm::IpDscp(46, None),
                Oxm::EthDst(B, None),
            ]
        };
        // TCP
        let t = rewrite(
            vec![Oxm::IpProto(IP_TCP, None)],
            nat(Oxm::TcpSrc(8080, None), Oxm::TcpDst(443, None)),
        );
        let fx = t.process(1, &l4_frame(IP_TCP, 1234, 80));
        let f = only_frame(&fx);
        assert_eq!(&f[0..6], &B.0);
        assert_eq!(&f[26..34], &[192, 168, 11, 3, 192, 168, 10, 3]);
        assert_eq!(
            (f[15], &f[34..38]),
            (46 << 2, &[0x1f, 0x90, 0x01, 0xbb][..])
        );
        assert_eq!(checksum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(l4_residue(f), 0, "TCP checksum");
        // UDP with a checksum, and UDP without one (it stays 0).
        let t = rewrite(
            vec![Oxm::IpProto(IP_UDP, None)],
            nat(Oxm::UdpSrc(53, None), Oxm::UdpDst(5353, None)),
        );
        let fx = t.process(1, &l4_frame(IP_UDP, 1234, 80));
        let f = only_frame(&fx);
        assert_eq!(
            (&f[34..38], checksum(&f[14..34]), l4_residue(f)),
            (&[0, 53, 0x14, 0xe9][..], 0, 0)
        );
        let mut no_csum = l4_frame(IP_UDP, 1234, 80);
        no_csum[40..42].copy_from_slice(&[0, 0]);
        let fx = t.process(1, &no_csum);
        assert_eq!(&only_frame(&fx)[40..42], &[0, 0]);
        // ICMP type/code, ECN and TTL.
        let t = rewrite(
            vec![Oxm::IpProto(IP_ICMP, None)],
            vec![
                Oxm::Icmpv4Type(0, None),
                Oxm::Icmpv4Code(3, None),
                Oxm::IpEcn(2, None),
            ],
        );
        let fx = t.process(1, &icmp_frame("10.0.0.2", 64));
        let f = only_frame(&fx);
        assert_eq!((f[34], f[35], f[15] & 3), (0, 3, 2));
        assert_eq!((checksum(&f[14..34]), checksum(&f[34..])), (0, 0));
    }

    #[test]
    fn a_wrong_checksum_stays_wrong() {
        let t = switch(&[flow(
            0,
            1,
            vec![ipv4()],
            apply(vec![
                set(Oxm::Ipv4Dst(ip("172.16.0.1"), None)),
                Action::DecNwTtl,
                out(2),
            ]),
        )]);
        let mut bad = l4_frame(IP_TCP, 1, 2);
        bad[24] ^= 0x10; // IP header checksum
        bad[50] ^= 0x01; // TCP checksum
        let (ip_err, tcp_err) = (checksum(&bad[14..34]), l4_residue(&bad));
        let fx = t.process(1, &bad);
        let f = only_frame(&fx);
        assert_eq!(f[22], 63);
        assert_eq!((checksum(&f[14..34]), l4_residue(f)), (ip_err, tcp_err));
        assert_ne!(ip_err, 0);
    }

    #[test]
    fn dec_ttl_at_one_raises_invalid_ttl_and_stops_the_entry() {
        let route = |t: u8| FlowMod {
            cookie: 0x77,
            ..flow(
                t,
                5,
                vec![ipv4()],
                vec![
                    Instruction::ApplyActions {
                        actions: vec![set(Oxm::EthSrc(GW, None)), Action::DecNwTtl, out(2)],
                    },
                    Instruction::GotoTable { table_id: 3 },
                ],
            )
        };
        let t = switch(&[
            FlowMod {
                cookie: 0x66,
                ..flow(
                    0,
                    5,
                    vec![ipv4()],
                    vec![
                        Instruction::WriteActions {
                            actions: vec![out(4)],
                        },
                        Instruction::GotoTable { table_id: 1 },
                    ],
                )
            },
            route(1),
            flow(3, 5, vec![], apply(vec![out(3)])),
        ]);
        let fx = t.process(1, &icmp_frame("10.0.0.2", 64));
        assert_eq!(ports(&fx), [2, 3, 4]);
        let Effect::Output { frame, .. } = &fx[0] else {
            unreachable!()
        };
        assert_eq!(
            (frame[22], checksum(&frame[14..34]), &frame[6..12]),
            (63, 0, &GW.0[..])
        );
        for ttl in [1, 0] {
            let fx = t.process(1, &icmp_frame("10.0.0.2", ttl));
            // The packet-in holds the packet as modified so far; table 3 is never reached; the
            // action set written in table 0 still runs (as OVS does).
            assert_eq!(packet_ins(&fx), [(OFPR_INVALID_TTL, 1, 0x77)]);
            let Effect::PacketIn {
                data,
                total_len,
                match_,
                ..
            } = &fx[0]
            else {
                unreachable!()
            };
            assert_eq!(
                (&data[6..12], data[22], usize::from(*total_len)),
                (&GW.0[..], ttl, data.len())
            );
            assert_eq!(match_.fields[..], [Oxm::InPort(1, None)]);
            assert_eq!(ports(&fx), [4]);
        }
    }

    #[test]
    fn outputs_controller_flood_and_in_port() {
        let t = switch(&[
            flow(
                0,
                9,
                vec![Oxm::EthType(ETH_ARP, None)],
                apply(vec![out(port::CONTROLLER)]),
            ),
            flow(
                0,
                8,
                vec![ipv4(), Oxm::IpProto(IP_UDP, None)],
                apply(vec![out(1), out(port::IN_PORT), out(9), out(port::ALL)]),
            ),
            flow(
                0,
                7,
                vec![ipv4()],
                apply(vec![
                    Action::Output {
                        port: port::CONTROLLER,
                        max_len: 20,
                    },
                    out(port::FLOOD),
                ]),
            ),
            flow(0, 0, vec![], apply(vec![out(port::CONTROLLER)])),
        ]);
        let arp = arp_frame(ARP_REQUEST, "10.0.0.9", ETH_ARP);
        let fx = t.process(2, &arp);
        assert_eq!(packet_ins(&fx), [(OFPR_ACTION, 0, 0)]);
        let Effect::PacketIn { data, .. } = &fx[0] else {
            unreachable!()
        };
        assert_eq!(data, &arp);
        // output:1 from port 1 is skipped, IN_PORT is not; port 9 does not exist; ALL skips
        // the input port.
        assert_eq!(ports(&t.process(1, &l4_frame(IP_UDP, 1, 2))), [1, 2, 3, 4]);
        let fx = t.process(3, &icmp_frame("10.0.0.2", 64));
        assert_eq!(ports(&fx), [1, 2, 4]);
        let Effect::PacketIn {
            data, total_len, ..
        } = &fx[0]
        else {
            unreachable!()
        };
        assert_eq!(
            (data.len(), usize::from(*total_len)),
            (20, icmp_frame("10.0.0.2", 64).len())
        );
        // CONTROLLER in a table-miss entry is an explicit miss: OFPR_NO_MATCH.
        let rarp = arp_frame(3, "0.0.0.0", ETH_RARP);
        assert_eq!(packet_ins(&t.process(2, &rarp)), [(OFPR_NO_MATCH, 0, 0)]);
        let pi = t.process(2, &rarp)[0].to_packet_in().unwrap();
        assert_eq!(
            (pi.buffer_id, pi.in_port(), pi.data.len()),
            (NO_BUFFER, Some(2), 60)
        );
    }

    #[test]
    fn action_set_runs_at_the_end_in_ovs_order() {
        let write = |actions| Instruction::WriteActions { actions };
        let goto = |t| Instruction::GotoTable { table_id: t };
        let t = switch(&[
            FlowMod {
                cookie: 0xc0,
                ..flow(
                    0,
                    1,
                    vec![ipv4()],
                    vec![
                        write(vec![
                            out(3),
                            set(Oxm::Ipv4Dst(ip("1.2.3.4"), None)),
                            Action::DecNwTtl,
                        ]),
                        goto(1),
                    ],
                )
            },
            // table 1 adds to the set, table 2 misses (no entry): the set still runs.
            FlowMod {
                cookie: 0xc1,
                ..flow(
                    1,
                    1,
                    vec![ipv4()],
                    vec![write(vec![set(Oxm::EthDst(B, None))]), goto(2)],
                )
            },
            flow(
                0,
                2,
                vec![ipv4(), Oxm::IpProto(IP_UDP, None)],
                vec![
                    Instruction::ClearActions,
                    write(vec![set(Oxm::EthDst(B, None))]),
                ],
            ),
            flow(
                0,
                3,
                vec![ipv4(), Oxm::IpProto(IP_TCP, None)],
                vec![
                    write(vec![Action::Output {
                        port: port::CONTROLLER,
                        max_len: 14,
                    }]),
                    goto(1),
                ],
            ),
        ]);
        let fx = t.process(1, &icmp_frame("10.0.0.2", 9));
        let f = only_frame(&fx);
        assert_eq!(
            (&f[0..6], f[22], &f[30..34]),
            (&B.0[..], 8, &[1, 2, 3, 4][..])
        );
        assert_eq!(checksum(&f[14..34]), 0);
        // No output in the set: nothing happens.
        assert!(t.process(1, &l4_frame(IP_UDP, 1, 2)).is_empty());
        // A packet-in from the action set carries the table-0 entry's table and cookie.
        let fx = t.process(1, &l4_frame(IP_TCP, 1, 2));
        assert_eq!(packet_ins(&fx), [(OFPR_ACTION, 0, 0)]);
        let Effect::PacketIn { data, .. } = &fx[0] else {
            unreachable!()
        };
        assert_eq!(data[..6], B.0);
        // TTL 1: dec_ttl comes first in the set, and ends it.
        let fx = t.process(1, &icmp_frame("10.0.0.2", 1));
        assert_eq!(packet_ins(&fx), [(OFPR_INVALID_TTL, 0, 0xc0)]);
        assert!(ports(&fx).is_empty());
    }

    #[test]
    fn write_metadata_feeds_later_tables_and_packet_ins() {
        let t = switch(&[
            flow(
                0,
                1,
                vec![],
                vec![
                    Instruction::WriteMetadata {
                        metadata: 0xab00,
                        metadata_mask: 0xff00,
                    },
                    Instruction::GotoTable { table_id: 1 },
                ],
            ),
            flow(
                1,
                1,
                vec![Oxm::Metadata(0xab00, Some(0xff00))],
                apply(vec![
                    out(port::CONTROLLER),
                    set(Oxm::Metadata(0, None)),
                    out(2),
                ]),
            ),
        ]);
        let fx = t.process(1, &icmp_frame("10.0.0.2", 64));
        let Effect::PacketIn { match_, .. } = &fx[0] else {
            unreachable!()
        };
        assert_eq!(
            match_.fields[..],
            [Oxm::InPort(1, None), Oxm::Metadata(0xab00, None)]
        );
        assert_eq!(ports(&fx), [2]);
    }

    #[test]
    fn packet_out_runs_the_pipeline_on_output_table() {
        let mut t = switch(&[
            FlowMod {
                cookie: 0x10,
                ..flow(0, 5, vec![ipv4()], apply(vec![Action::DecNwTtl, out(3)]))
            },
            flow(
                0,
                4,
                vec![Oxm::InPort(port::CONTROLLER, None)],
                apply(vec![out(4)]),
            ),
        ]);
        let po = |in_port, actions: Vec<Action>, data: Vec<u8>| PacketOut {
            buffer_id: NO_BUFFER,
            in_port,
            actions: actions.into(),
            data: Bytes::from(data),
        };
        // The pipeline's rewrites are seen by later actions (OVS does not copy the packet).
        let fx = t
            .packet_out(&po(
                1,
                vec![
                    out(port::TABLE),
                    out(2),
                    out(port::TABLE),
                    out(port::CONTROLLER),
                ],
                icmp_frame("10.0.0.2", 64),
            ))
            .unwrap();
        let ttls: Vec<u8> = fx
            .iter()
            .map(|e| match e {
                Effect::Output { frame, .. } => frame[22],
                Effect::PacketIn { data, .. } => data[22],
            })
            .collect();
        assert_eq!((ports(&fx), ttls), (vec![3, 2, 3], vec![63, 63, 62, 62]));
        assert_eq!(packet_ins(&fx), [(OFPR_ACTION, 0, u64::MAX)]);
        assert_eq!(t.dump(0)[0].packet_count, 2);
        // in_port CONTROLLER is matchable; output to the input port is skipped here too.
        let arp = arp_frame(ARP_REQUEST, "10.0.0.9", ETH_ARP);
        let fx = t
            .packet_out(&po(port::CONTROLLER, vec![out(port::TABLE)], arp.clone()))
            .unwrap();
        assert_eq!(ports(&fx), [4]);
        assert!(t
            .packet_out(&po(2, vec![out(2)], arp.clone()))
            .unwrap()
            .is_empty());
        // Errors.
        let bad = po(2, vec![set(Oxm::Ipv4Dst(ip("1.2.3.4"), None))], arp.clone());
        assert_eq!(t.packet_out(&bad), Err((2, 10)));
        assert_eq!(
            t.packet_out(&PacketOut {
                buffer_id: 1,
                ..po(2, vec![], arp.clone())
            }),
            Err((1, 8))
        );
        assert_eq!(t.packet_out(&po(port::MAX + 1, vec![], arp)), Err((1, 11)));
    }

    #[test]
    fn a_table_loop_drops_the_packet() {
        let t = switch(&[flow(0, 1, vec![], apply(vec![out(1), out(port::TABLE)]))]);
        assert!(t.process(2, &icmp_frame("10.0.0.2", 64)).is_empty());
        assert_eq!(t.dump(0)[0].packet_count, u64::from(MAX_DEPTH) + 1);
    }

    #[test]
    fn flow_stats_select_like_delete() {
        let t = switch(&[
            FlowMod {
                cookie: 1,
                ..flow(0, 1, vec![ipv4()], apply(vec![out(2)]))
            },
            FlowMod {
                cookie: 2,
                ..flow(
                    1,
                    1,
                    vec![
                        Oxm::EthType(ETH_ARP, None),
                        Oxm::ArpTpa(ip("10.0.0.1"), None),
                    ],
                    apply(vec![out(3)]),
                )
            },
        ]);
        t.process(1, &icmp_frame("10.0.0.2", 64));
        let req = |table_id, fields, out_port, cookie_mask| FlowStatsRequest {
            table_id,
            match_: Match::new(fields),
            out_port,
            cookie: 2,
            cookie_mask,
            ..FlowStatsRequest::all()
        };
        let ids = |v: Vec<FlowStats>| {
            v.iter()
                .map(|f| (f.cookie, f.packet_count))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(t.flow_stats(&req(TABLE_ALL, vec![], port::ANY, 0))),
            [(1, 1), (2, 0)]
        );
        assert_eq!(
            ids(t.flow_stats(&req(TABLE_ALL, vec![], port::ANY, u64::MAX))),
            [(2, 0)]
        );
        assert_eq!(ids(t.flow_stats(&req(TABLE_ALL, vec![], 2, 0))), [(1, 1)]);
        assert_eq!(
            ids(t.flow_stats(&req(
                TABLE_ALL,
                vec![Oxm::EthType(ETH_ARP, None)],
                port::ANY,
                0
            ))),
            [(2, 0)]
        );
        assert_eq!(ids(t.dump(1)), [(2, 0)]);
        assert!(t.dump(200).is_empty());
        let s = &t.dump(0)[0];
        assert_eq!(
            (s.byte_count, s.instructions.clone()),
            (icmp_frame("10.0.0.2", 64).len() as u64, apply(vec![out(2)]))
        );
    }

    #[test]
    fn arp_rarp_vlan_and_runts() {
        let t = switch(&[
            flow(
                0,
                3,
                vec![
                    Oxm::EthType(ETH_ARP, None),
                    Oxm::ArpOp(1, None),
                    Oxm::ArpTpa(ip("10.0.0.0"), Some(ip("255.255.255.0"))),
                ],
                apply(vec![
                    set(Oxm::ArpTha(B, None)),
                    set(Oxm::ArpOp(2, None)),
                    out(2),
                ]),
            ),
            flow(
                0,
                2,
                vec![Oxm::EthType(ETH_RARP, None)],
                apply(vec![out(3)]),
            ),
            flow(
                0,
                2,
                vec![
                    Oxm::VlanVid(OFPVID_PRESENT | 7, None),
                    ipv4(),
                    Oxm::Ipv4Dst(ip("10.0.0.2"), None),
                ],
                apply(vec![out(4)]),
            ),
        ]);
        let fx = t.process(1, &arp_frame(ARP_REQUEST, "10.0.0.7", ETH_ARP));
        let f = only_frame(&fx);
        assert_eq!((&f[20..22], &f[32..38]), (&[0, 2][..], &B.0[..]));
        assert!(t.process(1, &arp_frame(2, "10.0.0.7", ETH_ARP)).is_empty());
        assert_eq!(
            ports(&t.process(1, &arp_frame(3, "0.0.0.0", ETH_RARP))),
            [3]
        );
        let mut tagged = icmp_frame("10.0.0.2", 64);
        tagged.splice(12..12, [0x81, 0x00, 0x20, 0x07]);
        assert_eq!(ports(&t.process(1, &tagged)), [4]);
        assert!(t.process(1, &tagged[..13]).is_empty());
    }

    #[test]
    fn servswitch_plan_forwards_like_docs_pipeline_says() {
        let topo = crate::fabric::topology::Topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/paper-testbed.toml"
        )))
        .unwrap();
        let fabric = crate::fabric::plan::Fabric::new(&topo);
        let plan = fabric.plan(&fabric.configured_hosts());
        let mut t = FlowTables::default();
        t.set_ports(&[1, 2, 3, 4]);
        for f in &plan["r3"] {
            t.apply_flow_mod(&f.add()).unwrap();
        }
        let vm = MacAddr([2, 0, 0, 0, 0x11, 3]);
        let from_d = |dst_mac, dst: &str, ttl| {
            with_ttl(
                ipv4_frame(
                    dst_mac,
                    MacAddr([2, 0, 0, 0, 0x11, 2]),
                    ip("192.168.11.2"),
                    ip(dst),
                    1,
                    &icmp(8, 0, [0; 4], b""),
                ),
                ttl,
            )
        };
        // Same subnet, switched at layer 2: TTL untouched.
        let fx = t.process(2, &from_d(vm, "192.168.11.3", 64));
        assert_eq!((ports(&fx), only_frame(&fx)[22]), (vec![3], 64));
        // Through the gateway to a local host: rewritten, TTL decremented.
        let fx = t.process(2, &from_d(GW, "192.168.11.3", 64));
        let f = only_frame(&fx);
        assert_eq!((&f[..6], &f[6..12], f[22]), (&vm.0[..], &GW.0[..], 63));
        // Remote subnet out of the link port; the gateway and unknown hosts to the controller.
        assert_eq!(ports(&t.process(2, &from_d(GW, "192.168.10.2", 64))), [1]);
        // ... through the punt table, where port 2's meter is.
        let port2 = crate::fabric::plan::COOKIE_PORT | 2;
        assert_eq!(
            packet_ins(&t.process(2, &from_d(GW, "192.168.11.1", 64))),
            [(OFPR_ACTION, 5, port2)]
        );
        assert_eq!(
            packet_ins(&t.process(2, &from_d(GW, "192.168.11.99", 64))),
            [(OFPR_ACTION, 5, port2)]
        );
        assert_eq!(
            packet_ins(&t.process(2, &from_d(GW, "192.168.10.2", 1))),
            [(OFPR_INVALID_TTL, 4, COOKIE_ROUTE)]
        );
        assert!(t.process(2, &from_d(GW, "8.8.8.8", 64)).is_empty());
        let arp = arp_frame(ARP_REQUEST, "192.168.11.1", ETH_ARP);
        assert_eq!(packet_ins(&t.process(2, &arp)), [(OFPR_ACTION, 5, port2)]);
    }

    use crate::fabric::plan::COOKIE_ROUTE;
}
