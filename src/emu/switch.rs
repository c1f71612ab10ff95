//! An emulated OpenFlow 1.3 switch, in process, for tests, benchmarks and the emulated fabric
//! ([`crate::emu::fabric`]).
//!
//! Two layers, like [`crate::switch::session`]:
//! - [`SwitchCore`], sans-io: one message from the controller in, the switch's replies out;
//!   one frame entering a port in, the packet-ins it raises out. It knows the switch's datapath
//!   id, tables and ports, answers the handshake and keepalive, records everything the
//!   controller sent, and has a datapath: a [`FlowTables`] (see [`crate::emu::flowtable`]) that
//!   FLOW_MODs are applied to and frames run through. Frames leaving ports queue up in the core
//!   until [`SwitchCore::take_frames`].
//! - [`connect`] / [`connect_wired`] / [`EmuSwitch`], a thin tokio driver: one task per switch
//!   owns the TCP (or TLS) socket, feeds decoded messages and injected frames to the core, writes
//!   its replies and hands the frames it outputs to a [`Wire`]. The handle talks to the task over
//!   a channel; dropping the handle aborts the task and closes the socket.
//!
//! What the core answers: FEATURES_REQUEST (datapath id, `n_tables`), SET_CONFIG (recorded,
//! no reply), GET_CONFIG_REQUEST, BARRIER_REQUEST, ECHO_REQUEST (unless silent),
//! ROLE_REQUEST, SET_ASYNC (stored, no reply), GET_ASYNC_REQUEST, and the multipart requests
//! PORT_DESC (split into parts of [`SwitchSpec::ports_per_reply`] ports flagged
//! `OFPMPF_REPLY_MORE`, to exercise reassembly), FLOW (the table's entries and counters, as
//! [`FlowTables::flow_stats`] selects them, split into parts that fit a message) and DESC. Any
//! other multipart request gets `OFPET_BAD_REQUEST`/`OFPBRC_BAD_MULTIPART`, as a real switch
//! answers a statistic it does not keep. Every other message is recorded and not answered.
//!
//! The datapath, like Open vSwitch:
//! - FLOW_MOD goes to [`FlowTables::apply_flow_mod`]; a refusal is answered with `OFPT_ERROR`
//!   carrying the engine's (type, code) and the first 64 bytes of the offending message.
//!   PACKET_OUT runs through [`FlowTables::packet_out`] (errors likewise). While the
//!   controller's role is SLAVE both are refused with `OFPET_BAD_REQUEST/OFPBRC_IS_SLAVE`.
//! - Packet-ins are filtered by the asynchronous configuration (the master/equal or the slave
//!   mask, by role). Until SET_ASYNC it is OpenFlow 1.3's default, [`DEFAULT_ASYNC`]: no_match
//!   and action packet-ins only, so `dec_ttl` on an expiring packet raises nothing unless the
//!   controller enabled invalid_ttl. Port-status messages are filtered the same way.
//! - A frame entering a port that does not exist is dropped; outputs go only to existing ports.
//! - Ports can be added and deleted at run time ([`SwitchCore::add_port`],
//!   [`SwitchCore::delete_port`]), with PORT_STATUS to the controller; flow entries stay.
//! - Meters, as Open vSwitch keeps them: METER_MOD adds (`OFPMMFC_METER_EXISTS` if the id is
//!   taken), modifies (`OFPMMFC_UNKNOWN_METER` if not) and deletes (a missing meter is no
//!   error; deleting a meter deletes the entries that use it); a FLOW_MOD whose meter does not
//!   exist is refused with `OFPMMFC_INVALID_METER` (Open vSwitch's answer); meter config, statistics (all zero: the
//!   emulated datapath does not enforce rates) and features are answered.
//! - Not emulated: buffering (every packet-in is unbuffered), flow timeouts and FLOW_REMOVED,
//!   groups, meter rates, port and table statistics, port config (PORT_MOD).
//!
//! **Up**, precisely: the switch has answered a FEATURES_REQUEST, then a PORT_DESC request, and
//! then a BARRIER_REQUEST, and (for [`EmuSwitch::wait_until_up`]) that BARRIER_REPLY has been
//! written to the socket. That is the order in which servswitch's handshake ends, so once the
//! controller reads that barrier reply its session is up — but the controller may not have
//! read it yet: to know the controller registered the switch, poll its registry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use ofp13::{
    AsyncConfig, Body, Desc, ErrorMsg, FlowStats, Hello, HelloElem, MacAddr, Message,
    MultipartReply, MultipartReplyBody, MultipartRequestBody, Port, PortStatus, Role, SwitchConfig,
    SwitchFeatures, MAX_MESSAGE_LEN, OFPMPF_MORE, OFPR_ACTION, OFPR_NO_MATCH,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use ofp13::{OFPBRC_BAD_MULTIPART, OFPBRC_BAD_TYPE, OFPBRC_IS_SLAVE, OFPET_BAD_REQUEST};

use crate::emu::flowtable::{Effect, FlowTables, OfpError};

/// OpenFlow 1.3's default asynchronous configuration (as Open vSwitch applies it to an
/// OpenFlow 1.3 connection): master/equal get no_match and action packet-ins, every port
/// status and every flow-removed; slaves get port status only. invalid_ttl is off.
pub const DEFAULT_ASYNC: AsyncConfig = AsyncConfig {
    packet_in_mask: [(1 << OFPR_NO_MATCH) | (1 << OFPR_ACTION), 0],
    port_status_mask: [0b111, 0b111],
    flow_removed_mask: [0b1111, 0],
};

/// The largest multipart reply body part we emit (the message header is 16 bytes).
const MAX_PART: usize = MAX_MESSAGE_LEN - 16;

/// What the emulated switch is: identity, ports, and how it greets.
#[derive(Debug, Clone)]
pub struct SwitchSpec {
    pub dpid: u64,
    pub n_tables: u8,
    pub ports: Vec<Port>,
    /// At most this many ports per PORT_DESC reply part (at least 1).
    pub ports_per_reply: usize,
    /// The version byte of our HELLO's header.
    pub hello_version: u8,
    /// Our HELLO's body.
    pub hello: Hello,
    /// Messages written right after the HELLO, before the controller's handshake can finish
    /// (e.g. a PACKET_IN racing the handshake).
    pub after_hello: Vec<Message>,
    /// Start silent: never answer ECHO_REQUESTs (see [`SwitchCore::set_silent`]).
    pub silent: bool,
    /// Start paused: hold every reply until resumed (see [`SwitchCore::pause`]).
    pub paused: bool,
    /// It implements meters (see [`SwitchSpec::without_meters`]).
    pub meters: bool,
}

impl SwitchSpec {
    /// A switch speaking OpenFlow 1.0 and 1.3 (as Open vSwitch announces), 254 tables, four
    /// ports numbered 1..=4.
    pub fn new(dpid: u64) -> Self {
        SwitchSpec {
            dpid,
            n_tables: 254,
            ports: Vec::new(),
            ports_per_reply: 16,
            hello_version: ofp13::OFP_VERSION,
            hello: Hello {
                elements: vec![HelloElem::VersionBitmap {
                    bitmaps: vec![(1 << 1) | (1 << 4)],
                }],
            },
            after_hello: Vec::new(),
            silent: false,
            paused: false,
            meters: true,
        }
        .with_ports(4)
    }

    /// Ports numbered 1..=n, named `eth<n>`, up.
    pub fn with_ports(mut self, n: u32) -> Self {
        self.ports = (1..=n).map(|no| port(self.dpid, no)).collect();
        self
    }

    /// At most `k` ports per PORT_DESC reply part.
    pub fn ports_per_reply(mut self, k: usize) -> Self {
        self.ports_per_reply = k;
        self
    }

    /// Starts paused: a switch slow to answer (its HELLO is still sent at once).
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// A switch that implements no meters (they are optional in OpenFlow 1.3): METER_MOD is
    /// `OFPBRC_BAD_TYPE`, meter multiparts `OFPBRC_BAD_MULTIPART`, a meter instruction
    /// `OFPBIC_UNSUP_INST`.
    pub fn without_meters(mut self) -> Self {
        self.meters = false;
        self
    }

    /// An OpenFlow 1.0-only switch: a HELLO in a version-1 header with no version bitmap.
    pub fn of10_only(mut self) -> Self {
        self.hello_version = 1;
        self.hello = Hello::default();
        self
    }
}

/// The emulated port `no` of switch `dpid`.
pub fn port(dpid: u64, no: u32) -> Port {
    let d = dpid.to_be_bytes();
    let n = no.to_be_bytes();
    Port {
        port_no: no,
        hw_addr: MacAddr([0x02, d[6], d[7], n[1], n[2], n[3]]),
        name: format!("eth{no}"),
        curr_speed: 10_000_000,
        max_speed: 10_000_000,
        ..Port::default()
    }
}

/// The sans-io switch: controller messages in, replies out; frames in, packet-ins out (frames
/// to send out of ports queue up until [`SwitchCore::take_frames`]).
#[derive(Debug)]
pub struct SwitchCore {
    spec: SwitchSpec,
    silent: bool,
    paused: bool,
    /// Replies computed while paused, in order.
    held: Vec<Message>,
    /// The handshake's last reply is among `held`.
    up_when_resumed: bool,
    config: SwitchConfig,
    set_config: Option<SwitchConfig>,
    role: Role,
    features_answered: bool,
    ports_answered: bool,
    up: bool,
    received: Vec<Message>,
    tables: FlowTables,
    /// Meters by id.
    meters: std::collections::BTreeMap<u32, ofp13::MeterConfig>,
    async_config: AsyncConfig,
    /// Frames to send out of ports, in order.
    frames: Vec<(u32, Vec<u8>)>,
}

/// An `OFPT_ERROR` answering `msg`: its first 64 bytes as data.
fn error_for(msg: &Message, (err_type, code): OfpError) -> Message {
    let bytes = msg.to_bytes();
    let data = Bytes::copy_from_slice(bytes.get(..64).unwrap_or(&bytes));
    Message::new(msg.xid, Body::Error(ErrorMsg::new(err_type, code, data)))
}

impl SwitchCore {
    pub fn new(spec: SwitchSpec) -> Self {
        let mut tables = FlowTables::new(spec.n_tables);
        tables.set_ports(&spec.ports.iter().map(|p| p.port_no).collect::<Vec<_>>());
        SwitchCore {
            silent: spec.silent,
            paused: spec.paused,
            held: Vec::new(),
            up_when_resumed: false,
            spec,
            // OFPCML default: 128 bytes of a table-miss packet.
            config: SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            },
            set_config: None,
            role: Role {
                role: ofp13::OFPCR_ROLE_EQUAL,
                generation_id: 0,
            },
            features_answered: false,
            ports_answered: false,
            up: false,
            received: Vec::new(),
            tables,
            meters: Default::default(),
            async_config: DEFAULT_ASYNC,
            frames: Vec::new(),
        }
    }

    pub fn spec(&self) -> &SwitchSpec {
        &self.spec
    }

    /// The bytes the switch writes first: its HELLO (in `hello_version`'s header), then
    /// `after_hello`.
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        Message::new(1, Body::Hello(self.spec.hello.clone())).emit(&mut out);
        if let Some(v) = out.first_mut() {
            *v = self.spec.hello_version;
        }
        for m in &self.spec.after_hello {
            m.emit(&mut out);
        }
        out
    }

    /// Whether the handshake is complete (see the module docs).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Stop (or resume) answering ECHO_REQUESTs; they are still recorded.
    pub fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
    }

    /// Hold every reply from now on (messages are still recorded), as a slow switch would.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Stop holding replies; returns those held so far, to be sent now, in order.
    pub fn resume(&mut self) -> Vec<Message> {
        self.paused = false;
        if std::mem::take(&mut self.up_when_resumed) {
            self.up = true;
        }
        std::mem::take(&mut self.held)
    }

    /// The configuration the controller set with SET_CONFIG, if it did.
    pub fn set_config(&self) -> Option<SwitchConfig> {
        self.set_config
    }

    /// `miss_send_len` as the controller set it, if it did.
    pub fn miss_send_len(&self) -> Option<u16> {
        self.set_config.map(|c| c.miss_send_len)
    }

    /// The role last granted by ROLE_REQUEST.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Everything the controller sent, in order.
    pub fn received(&self) -> &[Message] {
        &self.received
    }

    /// The datapath's flow tables.
    pub fn tables(&self) -> &FlowTables {
        &self.tables
    }

    /// The asynchronous configuration in force ([`DEFAULT_ASYNC`] until SET_ASYNC).
    pub fn async_config(&self) -> AsyncConfig {
        self.async_config
    }

    /// Every flow entry of every table with its counters, in lookup order.
    pub fn flows(&self) -> Vec<FlowStats> {
        self.tables.dump(ofp13::TABLE_ALL)
    }

    /// The switch's ports now.
    pub fn ports(&self) -> &[Port] {
        &self.spec.ports
    }

    /// Frames the datapath sent out of ports since the last call, in order: (port, frame).
    pub fn take_frames(&mut self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut self.frames)
    }

    fn is_slave(&self) -> bool {
        self.role.role == ofp13::OFPCR_ROLE_SLAVE
    }

    /// Whether the controller wants an asynchronous message of `mask_of` with `reason`.
    fn wants(&self, mask_of: fn(&AsyncConfig) -> [u32; 2], reason: u8) -> bool {
        let m = mask_of(&self.async_config)[usize::from(self.is_slave())];
        reason < 32 && m & (1 << reason) != 0
    }

    /// Frames to the output queue, wanted packet-ins to messages.
    fn effects(&mut self, effects: Vec<Effect>) -> Vec<Message> {
        let mut out = Vec::new();
        for e in effects {
            match e {
                Effect::Output { port, frame } => self.frames.push((port, frame)),
                Effect::PacketIn { reason, .. } => {
                    if self.wants(|a| a.packet_in_mask, reason) {
                        if let Some(pi) = e.to_packet_in() {
                            out.push(Message::new(0, Body::PacketIn(pi)));
                        }
                    }
                }
            }
        }
        out
    }

    /// Async messages are held like replies while paused.
    fn deliver(&mut self, out: Vec<Message>) -> Vec<Message> {
        if self.paused {
            self.held.extend(out);
            return Vec::new();
        }
        out
    }

    /// When the next flow entry times out, if any has a timeout.
    pub fn next_expiry(&self) -> Option<std::time::Instant> {
        self.tables.next_expiry()
    }

    /// Removes the entries whose timeouts ran out by `now`; the FLOW_REMOVED messages to send
    /// (those with `send_flow_rem`, as the async configuration allows).
    pub fn expire(&mut self, now: std::time::Instant) -> Vec<Message> {
        let removed = self.tables.expire(now);
        let out = removed
            .into_iter()
            .filter(|r| self.wants(|a| a.flow_removed_mask, r.reason))
            .map(|r| Message::new(0, Body::FlowRemoved(r)))
            .collect();
        self.deliver(out)
    }

    /// A frame entering `in_port`: runs it through the flow tables. Returns the packet-ins to
    /// send (as the async configuration allows); frames to send out of ports queue up for
    /// [`SwitchCore::take_frames`]. A frame on a port the switch does not have is dropped.
    pub fn receive_frame(&mut self, in_port: u32, frame: &[u8]) -> Vec<Message> {
        if !self
            .spec
            .ports
            .iter()
            .any(|p| p.port_no == in_port && p.is_up())
        {
            return Vec::new();
        }
        let fx = self.tables.process(in_port, frame);
        let out = self.effects(fx);
        self.deliver(out)
    }

    fn sync_ports(&mut self) {
        let nos: Vec<u32> = self.spec.ports.iter().map(|p| p.port_no).collect();
        self.tables.set_ports(&nos);
    }

    fn port_status(&mut self, reason: u8, desc: Port) -> Vec<Message> {
        if !self.wants(|a| a.port_status_mask, reason) {
            return Vec::new();
        }
        let out = vec![Message::new(
            0,
            Body::PortStatus(PortStatus { reason, desc }),
        )];
        self.deliver(out)
    }

    /// Adds a port (replacing one with the same number); returns the PORT_STATUS (ADD) to send.
    pub fn add_port(&mut self, port: Port) -> Vec<Message> {
        self.spec.ports.retain(|p| p.port_no != port.port_no);
        self.spec.ports.push(port.clone());
        self.spec.ports.sort_by_key(|p| p.port_no);
        self.sync_ports();
        self.port_status(ofp13::OFPPR_ADD, port)
    }

    /// Deletes a port; returns the PORT_STATUS (DELETE) to send (none if there was no such
    /// port). Flow entries that output to it stay, as in Open vSwitch.
    pub fn delete_port(&mut self, port_no: u32) -> Vec<Message> {
        let Some(i) = self.spec.ports.iter().position(|p| p.port_no == port_no) else {
            return Vec::new();
        };
        let desc = self.spec.ports.remove(i);
        self.sync_ports();
        self.port_status(ofp13::OFPPR_DELETE, desc)
    }

    /// A port's link goes down (`up == false`) or comes up, as a cable pulled or plugged:
    /// the port stays, its state says `LINK_DOWN`, nothing is sent or received on it, and
    /// groups leave out the buckets that watch it. Returns the PORT_STATUS (MODIFY) to send
    /// (none if nothing changed or there is no such port).
    pub fn set_link(&mut self, port_no: u32, up: bool) -> Vec<Message> {
        let Some(p) = self.spec.ports.iter_mut().find(|p| p.port_no == port_no) else {
            return Vec::new();
        };
        let state = if up {
            p.state & !ofp13::OFPPS_LINK_DOWN
        } else {
            p.state | ofp13::OFPPS_LINK_DOWN
        };
        if state == p.state {
            return Vec::new();
        }
        p.state = state;
        let desc = p.clone();
        self.tables.set_port_live(port_no, up);
        self.port_status(ofp13::OFPPR_MODIFY, desc)
    }

    /// Handles one message from the controller; returns the replies and packet-ins, in order
    /// (none while paused: they are held until [`SwitchCore::resume`]). Frames a PACKET_OUT
    /// sends queue up for [`SwitchCore::take_frames`].
    pub fn handle(&mut self, msg: Message) -> Vec<Message> {
        let xid = msg.xid;
        let mut completes_handshake = false;
        let reply = |body| vec![Message::new(xid, body)];
        let out = match &msg.body {
            Body::FeaturesRequest => {
                self.features_answered = true;
                reply(Body::FeaturesReply(SwitchFeatures {
                    datapath_id: self.spec.dpid,
                    n_buffers: 0,
                    n_tables: self.spec.n_tables,
                    auxiliary_id: 0,
                    // FLOW_STATS | TABLE_STATS | PORT_STATS
                    capabilities: 0x7,
                    reserved: 0,
                }))
            }
            Body::SetConfig(c) => {
                self.config = *c;
                self.set_config = Some(*c);
                Vec::new()
            }
            Body::GetConfigRequest => reply(Body::GetConfigReply(self.config)),
            Body::BarrierRequest => {
                completes_handshake = self.features_answered && self.ports_answered;
                reply(Body::BarrierReply)
            }
            Body::EchoRequest(data) if !self.silent => reply(Body::EchoReply(data.clone())),
            Body::RoleRequest(r) => {
                if r.role != ofp13::OFPCR_ROLE_NOCHANGE {
                    self.role = *r;
                }
                reply(Body::RoleReply(self.role))
            }
            Body::SetAsync(a) => {
                self.async_config = *a;
                Vec::new()
            }
            Body::GetAsyncRequest => reply(Body::GetAsyncReply(self.async_config)),
            Body::FlowMod(_) | Body::PacketOut(_) | Body::MeterMod(_) | Body::GroupMod(_)
                if self.is_slave() =>
            {
                vec![error_for(&msg, (OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE))]
            }
            Body::FlowMod(fm) => match self
                .check_meters(fm)
                .and_then(|()| self.tables.apply_flow_mod(fm))
            {
                Ok(()) => Vec::new(),
                Err(e) => vec![error_for(&msg, e)],
            },
            Body::MeterMod(_) if !self.spec.meters => {
                vec![error_for(&msg, (OFPET_BAD_REQUEST, OFPBRC_BAD_TYPE))]
            }
            Body::MeterMod(mm) => match self.meter_mod(mm) {
                Ok(()) => Vec::new(),
                Err(e) => vec![error_for(&msg, e)],
            },
            Body::GroupMod(gm) => match self.tables.apply_group_mod(gm) {
                Ok(()) => Vec::new(),
                Err(e) => vec![error_for(&msg, e)],
            },
            Body::PacketOut(po) => match self.tables.packet_out(po) {
                Ok(fx) => self.effects(fx),
                Err(e) => vec![error_for(&msg, e)],
            },
            Body::MultipartRequest(req) => self.multipart(&msg, &req.body),
            _ => Vec::new(),
        };
        self.received.push(msg);
        if self.paused {
            self.up_when_resumed |= completes_handshake;
            self.held.extend(out);
            return Vec::new();
        }
        self.up |= completes_handshake;
        out
    }

    /// A FLOW_MOD that adds or changes entries may use only meters that exist.
    fn check_meters(&self, fm: &ofp13::FlowMod) -> Result<(), OfpError> {
        let Some(meter) = ofp13::Instruction::meter_of(&fm.instructions) else {
            return Ok(());
        };
        if !self.spec.meters {
            return Err((ofp13::OFPET_BAD_INSTRUCTION, ofp13::OFPBIC_UNSUP_INST));
        }
        let changes = matches!(
            fm.command,
            ofp13::OFPFC_ADD | ofp13::OFPFC_MODIFY | ofp13::OFPFC_MODIFY_STRICT
        );
        if changes && !self.meters.contains_key(&meter) {
            return Err((ofp13::OFPET_METER_MOD_FAILED, ofp13::OFPMMFC_INVALID_METER));
        }
        Ok(())
    }

    /// METER_MOD, as Open vSwitch answers it.
    fn meter_mod(&mut self, mm: &ofp13::MeterMod) -> Result<(), OfpError> {
        use ofp13::{meter, OFPET_METER_MOD_FAILED as T};
        let id = mm.meter_id;
        let valid = (1..=meter::MAX).contains(&id) || id == meter::CONTROLLER;
        let config = || ofp13::MeterConfig {
            flags: mm.flags,
            meter_id: id,
            bands: mm.bands.clone(),
        };
        match mm.command {
            ofp13::OFPMC_ADD | ofp13::OFPMC_MODIFY if !valid => {
                Err((T, ofp13::OFPMMFC_INVALID_METER))
            }
            ofp13::OFPMC_ADD | ofp13::OFPMC_MODIFY
                if mm.flags
                    & !(ofp13::OFPMF_KBPS
                        | ofp13::OFPMF_PKTPS
                        | ofp13::OFPMF_BURST
                        | ofp13::OFPMF_STATS)
                    != 0 =>
            {
                Err((T, ofp13::OFPMMFC_BAD_FLAGS))
            }
            ofp13::OFPMC_ADD | ofp13::OFPMC_MODIFY if mm.bands.iter().any(|b| b.rate == 0) => {
                Err((T, ofp13::OFPMMFC_BAD_RATE))
            }
            ofp13::OFPMC_ADD if self.meters.contains_key(&id) => {
                Err((T, ofp13::OFPMMFC_METER_EXISTS))
            }
            ofp13::OFPMC_MODIFY if !self.meters.contains_key(&id) => {
                Err((T, ofp13::OFPMMFC_UNKNOWN_METER))
            }
            ofp13::OFPMC_ADD | ofp13::OFPMC_MODIFY => {
                self.meters.insert(id, config());
                Ok(())
            }
            ofp13::OFPMC_DELETE => {
                if id == meter::ALL {
                    self.meters.clear();
                } else {
                    self.meters.remove(&id);
                }
                self.tables.remove_metered(id);
                Ok(())
            }
            _ => Err((T, ofp13::OFPMMFC_BAD_COMMAND)),
        }
    }

    /// The meters `id` names (all of them: `meter::ALL`).
    fn meters_named(&self, id: u32) -> impl Iterator<Item = &ofp13::MeterConfig> {
        self.meters
            .values()
            .filter(move |m| id == ofp13::meter::ALL || m.meter_id == id)
    }

    fn multipart(&mut self, msg: &Message, body: &MultipartRequestBody) -> Vec<Message> {
        let xid = msg.xid;
        let part =
            |flags, body| Message::new(xid, Body::MultipartReply(MultipartReply { flags, body }));
        match body {
            MultipartRequestBody::PortDesc => {
                if self.features_answered {
                    self.ports_answered = true;
                }
                let chunks: Vec<&[Port]> = self
                    .spec
                    .ports
                    .chunks(self.spec.ports_per_reply.max(1))
                    .collect();
                if chunks.is_empty() {
                    return vec![part(0, MultipartReplyBody::PortDesc(Vec::new()))];
                }
                let last = chunks.len() - 1;
                chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let flags = if i < last { OFPMPF_MORE } else { 0 };
                        part(flags, MultipartReplyBody::PortDesc(c.to_vec()))
                    })
                    .collect()
            }
            MultipartRequestBody::Flow(req) => {
                let parts = split_flow_stats(self.tables.flow_stats(req));
                let last = parts.len() - 1;
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let flags = if i < last { OFPMPF_MORE } else { 0 };
                        part(flags, MultipartReplyBody::Flow(p))
                    })
                    .collect()
            }
            MultipartRequestBody::Aggregate(req) => {
                let flows = self.tables.flow_stats(req);
                vec![part(
                    0,
                    MultipartReplyBody::Aggregate(ofp13::AggregateStats {
                        packet_count: flows.iter().map(|f| f.packet_count).sum(),
                        byte_count: flows.iter().map(|f| f.byte_count).sum(),
                        flow_count: u32::try_from(flows.len()).unwrap_or(u32::MAX),
                    }),
                )]
            }
            MultipartRequestBody::MeterConfig { .. }
            | MultipartRequestBody::Meter { .. }
            | MultipartRequestBody::MeterFeatures
                if !self.spec.meters =>
            {
                vec![error_for(msg, (OFPET_BAD_REQUEST, OFPBRC_BAD_MULTIPART))]
            }
            MultipartRequestBody::MeterConfig { meter_id } => vec![part(
                0,
                MultipartReplyBody::MeterConfig(self.meters_named(*meter_id).cloned().collect()),
            )],
            MultipartRequestBody::Meter { meter_id } => {
                let stats = self
                    .meters_named(*meter_id)
                    .map(|m| ofp13::MeterStats {
                        meter_id: m.meter_id,
                        flow_count: self.tables.count_metered(m.meter_id),
                        packet_in_count: 0,
                        byte_in_count: 0,
                        duration_sec: 0,
                        duration_nsec: 0,
                        band_stats: m
                            .bands
                            .iter()
                            .map(|_| ofp13::Counter {
                                packet_count: 0,
                                byte_count: 0,
                            })
                            .collect(),
                    })
                    .collect();
                vec![part(0, MultipartReplyBody::Meter(stats))]
            }
            MultipartRequestBody::MeterFeatures => vec![part(
                0,
                MultipartReplyBody::MeterFeatures(ofp13::MeterFeatures {
                    max_meter: 262_144,
                    band_types: 1 << ofp13::OFPMBT_DROP,
                    capabilities: u32::from(
                        ofp13::OFPMF_KBPS
                            | ofp13::OFPMF_PKTPS
                            | ofp13::OFPMF_BURST
                            | ofp13::OFPMF_STATS,
                    ),
                    max_bands: 8,
                    max_color: 0,
                }),
            )],
            MultipartRequestBody::GroupDesc => {
                vec![part(0, MultipartReplyBody::GroupDesc(self.tables.groups()))]
            }
            MultipartRequestBody::Group { group_id } => vec![part(
                0,
                MultipartReplyBody::Group(self.tables.group_stats(*group_id)),
            )],
            MultipartRequestBody::GroupFeatures => vec![part(
                0,
                MultipartReplyBody::GroupFeatures(ofp13::GroupFeatures {
                    // Every type; select by weight, liveness; no chaining.
                    types: (1 << ofp13::OFPGT_ALL)
                        | (1 << ofp13::OFPGT_SELECT)
                        | (1 << ofp13::OFPGT_INDIRECT)
                        | (1 << ofp13::OFPGT_FF),
                    capabilities: 0x1 | 0x4,
                    max_groups: [65_536; 4],
                    actions: [GROUP_ACTIONS; 4],
                }),
            )],
            MultipartRequestBody::Desc => vec![part(
                0,
                MultipartReplyBody::Desc(Box::new(Desc {
                    mfr_desc: "servswitch".into(),
                    hw_desc: "emulated switch".into(),
                    sw_desc: env!("CARGO_PKG_VERSION").into(),
                    serial_num: format!("{:016x}", self.spec.dpid),
                    dp_desc: format!("emu dpid {:#x}", self.spec.dpid),
                })),
            )],
            _ => vec![error_for(msg, (OFPET_BAD_REQUEST, OFPBRC_BAD_MULTIPART))],
        }
    }
}

/// The actions a bucket may hold (bits by `OFPAT_*`): output, set_queue, dec_ttl, set_nw_ttl,
/// set_field.
const GROUP_ACTIONS: u32 = (1 << 0) | (1 << 21) | (1 << 23) | (1 << 24) | (1 << 25);

/// Flow statistics in parts that each fit one multipart reply (at least one part, maybe
/// empty).
fn split_flow_stats(stats: Vec<FlowStats>) -> Vec<Vec<FlowStats>> {
    let mut parts = vec![Vec::new()];
    let mut size = 0;
    for f in stats {
        let mut buf = Vec::new();
        Message::new(
            0,
            Body::MultipartReply(MultipartReply {
                flags: 0,
                body: MultipartReplyBody::Flow(vec![f.clone()]),
            }),
        )
        .emit(&mut buf);
        let n = buf.len().saturating_sub(16);
        if size + n > MAX_PART && size > 0 {
            parts.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(p) = parts.last_mut() {
            p.push(f);
        }
    }
    parts
}

/// Client-side TLS for an emulated switch.
#[derive(Clone)]
pub struct EmuTls {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl EmuTls {
    /// Trusts the CA in `ca_pem` for the controller's certificate (which must name
    /// `server_name`), and presents `client` (certificate chain PEM, private key PEM) if given.
    pub fn new(
        ca_pem: &[u8],
        client: Option<(&[u8], &[u8])>,
        server_name: &str,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(c.context("CA PEM")?).context("CA certificate")?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots);
        let config = match client {
            Some((chain, key)) => {
                let chain = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .context("client certificate PEM")?;
                let key = PrivateKeyDer::from_pem_slice(key).context("client key PEM")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("client certificate and key")?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(EmuTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(server_name.to_string())
                .context("TLS server name")?,
        })
    }
}

/// Where and what to connect.
#[derive(Clone)]
pub struct EmuConfig {
    pub addr: SocketAddr,
    pub spec: SwitchSpec,
    pub tls: Option<EmuTls>,
}

impl EmuConfig {
    pub fn new(addr: SocketAddr, spec: SwitchSpec) -> Self {
        EmuConfig {
            addr,
            spec,
            tls: None,
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The controller closed it (EOF, reset, TLS alert), rather than us.
    pub by_peer: bool,
    /// The switch had been up.
    pub was_up: bool,
    pub reason: String,
}

/// Where an emulated switch's connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Connected, HELLO sent, handshake not complete.
    Connected,
    /// Up (see the module docs).
    Up,
    Closed(Closed),
}

enum Cmd {
    Send(Message),
    SendBytes(Vec<u8>),
    Resume,
    Close,
    Frame(u32, Vec<u8>),
    AddPort(Port),
    DeletePort(u32),
    /// The link's state, and whether the controller is told (PORT_STATUS).
    SetLink(u32, bool, bool),
}

/// A frame an emulated switch sent out of one of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub dpid: u64,
    pub port: u32,
    pub frame: Vec<u8>,
}

/// How a switch's task is wired to the rest of an emulated network.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    /// Where frames the switch outputs go (dropped when `None`).
    pub egress: Option<mpsc::UnboundedSender<Egress>>,
    /// Bumped after every batch of work the task did (messages handled, frames processed),
    /// so that observers can wait for a condition without polling on a timer.
    pub activity: Option<Arc<watch::Sender<u64>>>,
}

/// Puts frames into a running switch's ports; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Injector {
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl Injector {
    /// `frame` enters the switch on `port` (processed by the switch's task, in order). Returns
    /// false if the switch's task is gone.
    pub fn inject(&self, port: u32, frame: Vec<u8>) -> bool {
        self.cmd.send(Cmd::Frame(port, frame)).is_ok()
    }
}

/// A running emulated switch. Dropping it aborts its task and closes its socket.
pub struct EmuSwitch {
    core: Arc<Mutex<SwitchCore>>,
    cmd: mpsc::UnboundedSender<Cmd>,
    status: watch::Receiver<Status>,
    task: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

fn lock(core: &Mutex<SwitchCore>) -> MutexGuard<'_, SwitchCore> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connects to the controller (TCP, then TLS if configured), writes the greeting and starts
/// the switch's task. Fails only if the connection (or the TLS handshake as seen by the
/// client) fails; a controller that refuses the switch later shows as [`Status::Closed`].
/// Frames the switch outputs are dropped: see [`connect_wired`].
pub async fn connect(cfg: EmuConfig) -> std::io::Result<EmuSwitch> {
    connect_wired(cfg, Wire::default()).await
}

/// [`connect`], with the switch's output frames and activity going to `wire`.
pub async fn connect_wired(cfg: EmuConfig, wire: Wire) -> std::io::Result<EmuSwitch> {
    let tcp = TcpStream::connect(cfg.addr).await?;
    tcp.set_nodelay(true)?;
    let local_addr = tcp.local_addr()?;
    let core = Arc::new(Mutex::new(SwitchCore::new(cfg.spec)));
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(Status::Connected);
    let task = match cfg.tls {
        None => tokio::spawn(drive(tcp, Arc::clone(&core), cmd_rx, status_tx, wire)),
        Some(tls) => {
            let stream = tls.connector.connect(tls.server_name, tcp).await?;
            tokio::spawn(drive(stream, Arc::clone(&core), cmd_rx, status_tx, wire))
        }
    };
    Ok(EmuSwitch {
        core,
        cmd,
        status,
        task: Some(task),
        local_addr,
    })
}

impl EmuSwitch {
    /// Our end of the connection (the controller sees it as the switch's peer address).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn dpid(&self) -> u64 {
        lock(&self.core).spec.dpid
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until the switch is up; fails if the connection closed first.
    pub async fn wait_until_up(&self) -> Result<(), Closed> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| !matches!(s, Status::Connected))
            .await
            .map(|s| s.clone());
        match s {
            Ok(Status::Up) => Ok(()),
            Ok(Status::Closed(c)) => Err(c),
            Ok(Status::Connected) | Err(_) => Err(gone()),
        }
    }

    /// Waits until the connection has closed (by either side) and says how.
    pub async fn wait_closed(&self) -> Closed {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| matches!(s, Status::Closed(_)))
            .await
            .map(|s| s.clone());
        match s {
            Ok(Status::Closed(c)) => c,
            _ => gone(),
        }
    }

    /// Writes `msg` to the controller (after anything queued before).
    pub fn send(&self, msg: Message) {
        let _ = self.cmd.send(Cmd::Send(msg));
    }

    /// Writes `bytes` to the controller as they are (after anything queued before): a
    /// malformed message, for a test of what the controller does with one.
    pub fn send_bytes(&self, bytes: Vec<u8>) {
        let _ = self.cmd.send(Cmd::SendBytes(bytes));
    }

    /// Everything the controller sent so far, in order.
    pub fn received(&self) -> Vec<Message> {
        lock(&self.core).received.clone()
    }

    /// How many messages of `msg_type` the controller sent so far.
    pub fn count_received(&self, msg_type: u8) -> usize {
        lock(&self.core)
            .received
            .iter()
            .filter(|m| m.body.msg_type() == msg_type)
            .count()
    }

    /// `miss_send_len` as the controller set it.
    pub fn miss_send_len(&self) -> Option<u16> {
        lock(&self.core).miss_send_len()
    }

    /// Stop (or resume) answering echo requests.
    pub fn set_silent(&self, silent: bool) {
        lock(&self.core).set_silent(silent);
    }

    /// Hold every reply from now on (see [`SwitchCore::pause`]).
    pub fn pause(&self) {
        lock(&self.core).pause();
    }

    /// Send the held replies and answer normally again.
    pub fn resume(&self) {
        let _ = self.cmd.send(Cmd::Resume);
    }

    /// `frame` enters the switch on `port`.
    pub fn inject(&self, port: u32, frame: Vec<u8>) {
        let _ = self.cmd.send(Cmd::Frame(port, frame));
    }

    /// A cloneable way to inject frames from elsewhere.
    pub fn injector(&self) -> Injector {
        Injector {
            cmd: self.cmd.clone(),
        }
    }

    /// Adds a port (PORT_STATUS ADD to the controller).
    pub fn add_port(&self, port: Port) {
        let _ = self.cmd.send(Cmd::AddPort(port));
    }

    /// Deletes a port (PORT_STATUS DELETE to the controller).
    pub fn delete_port(&self, port_no: u32) {
        let _ = self.cmd.send(Cmd::DeletePort(port_no));
    }

    /// A port's link goes down or comes up (PORT_STATUS MODIFY to the controller).
    pub fn set_link(&self, port_no: u32, up: bool) {
        let _ = self.cmd.send(Cmd::SetLink(port_no, up, true));
    }

    /// [`EmuSwitch::set_link`] without telling the controller: the switch's own liveness
    /// (its groups' watched ports) follows, the controller's view does not. What the
    /// fabric looks like in the window before a PORT_STATUS reaches the controller, held
    /// open for a test of what the switches do alone.
    pub fn set_link_untold(&self, port_no: u32, up: bool) {
        let _ = self.cmd.send(Cmd::SetLink(port_no, up, false));
    }

    /// Runs `f` on the switch's core (its flow tables, ports, async configuration...).
    pub fn with_core<T>(&self, f: impl FnOnce(&SwitchCore) -> T) -> T {
        f(&lock(&self.core))
    }

    /// Every flow entry with its counters, in lookup order.
    pub fn flows(&self) -> Vec<FlowStats> {
        lock(&self.core).flows()
    }

    /// Closes the socket from our side and waits for the task to end.
    pub async fn close(&mut self) {
        let _ = self.cmd.send(Cmd::Close);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for EmuSwitch {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn gone() -> Closed {
    Closed {
        by_peer: false,
        was_up: false,
        reason: "the switch's task is gone".into(),
    }
}

/// The switch's task: socket in, core, socket out.
async fn drive<S>(
    mut stream: S,
    core: Arc<Mutex<SwitchCore>>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    status: watch::Sender<Status>,
    wire: Wire,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut wbuf = lock(&core).greeting();
    let mut up = false;
    let end = |by_peer, up, reason: String| Closed {
        by_peer,
        was_up: up,
        reason,
    };
    let dpid = lock(&core).spec.dpid;
    let closed = loop {
        let frames = lock(&core).take_frames();
        if let Some(tx) = &wire.egress {
            for (port, frame) in frames {
                let _ = tx.send(Egress { dpid, port, frame });
            }
        }
        if let Some(a) = &wire.activity {
            a.send_modify(|n| *n = n.wrapping_add(1));
        }
        if !wbuf.is_empty() {
            let r = match stream.write_all(&wbuf).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            wbuf.clear();
            if let Err(e) = r {
                break end(true, up, format!("write failed: {e}"));
            }
        }
        if !up && lock(&core).is_up() {
            up = true;
            status.send_replace(Status::Up);
        }
        let expiry = lock(&core)
            .next_expiry()
            .map_or_else(far_future, tokio::time::Instant::from_std);
        tokio::select! {
            _ = tokio::time::sleep_until(expiry) => {
                for m in lock(&core).expire(std::time::Instant::now()) {
                    m.emit(&mut wbuf);
                }
            }
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) => break end(true, up, "the controller closed the connection".into()),
                Ok(_) => {
                    if let Err(e) = decode(&mut rbuf, &core, &mut wbuf) {
                        break end(false, up, e);
                    }
                }
                Err(e) => break end(true, up, format!("read failed: {e}")),
            },
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(m)) => m.emit(&mut wbuf),
                Some(Cmd::SendBytes(b)) => wbuf.extend_from_slice(&b),
                Some(Cmd::Resume) => {
                    for m in lock(&core).resume() {
                        m.emit(&mut wbuf);
                    }
                }
                Some(Cmd::Frame(port, frame)) => {
                    for m in lock(&core).receive_frame(port, &frame) {
                        m.emit(&mut wbuf);
                    }
                }
                Some(Cmd::AddPort(p)) => {
                    for m in lock(&core).add_port(p) {
                        m.emit(&mut wbuf);
                    }
                }
                Some(Cmd::DeletePort(no)) => {
                    for m in lock(&core).delete_port(no) {
                        m.emit(&mut wbuf);
                    }
                }
                Some(Cmd::SetLink(no, up, tell)) => {
                    let told = lock(&core).set_link(no, up);
                    for m in told.into_iter().filter(|_| tell) {
                        m.emit(&mut wbuf);
                    }
                }
                Some(Cmd::Close) | None => break end(false, up, "closed by its handle".into()),
            },
        }
    };
    drop(stream);
    status.send_replace(Status::Closed(closed));
}

/// An instant no timer reaches.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400)
}

/// Feeds every whole message in `rbuf` to the core, appending its replies to `wbuf`.
fn decode(rbuf: &mut BytesMut, core: &Mutex<SwitchCore>, wbuf: &mut Vec<u8>) -> Result<(), String> {
    let mut core = lock(core);
    loop {
        match ofp13::decode_frame(rbuf, MAX_MESSAGE_LEN) {
            Ok(Some(msg)) => {
                for r in core.handle(msg) {
                    r.emit(wbuf);
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("undecodable message from the controller: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::session::{Event, Session, SessionConfig, SessionState};
    use ofp13::{Action, MultipartRequest, Oxm, OFPCR_ROLE_MASTER};
    use std::time::Instant;

    fn mp(body: MultipartRequestBody) -> Body {
        Body::MultipartRequest(MultipartRequest::new(body))
    }

    fn port_desc_parts(out: &[Message]) -> Vec<(u16, usize)> {
        out.iter()
            .map(|m| match &m.body {
                Body::MultipartReply(MultipartReply {
                    flags,
                    body: MultipartReplyBody::PortDesc(p),
                }) => (*flags, p.len()),
                b => panic!("not a port-desc reply: {b:?}"),
            })
            .collect()
    }

    #[test]
    fn meters_are_kept_as_open_vswitch_keeps_them() {
        use crate::fabric::plan::Meter;
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(3));
        let err = |out: Vec<Message>| match &out[..] {
            [Message {
                body: Body::Error(e),
                ..
            }] => (e.err_type, e.code),
            other => panic!("not one error: {other:?}"),
        };
        let m2 = Meter {
            id: 2,
            pps: 200,
            burst: 200,
        };
        let add = |m: &Meter| Message::new(1, Body::MeterMod(m.meter_mod(ofp13::OFPMC_ADD)));
        assert!(c.handle(add(&m2)).is_empty());
        assert_eq!(
            err(c.handle(add(&m2))),
            (ofp13::OFPET_METER_MOD_FAILED, ofp13::OFPMMFC_METER_EXISTS)
        );
        let unknown = Meter { id: 9, ..m2 };
        assert_eq!(
            err(c.handle(Message::new(
                2,
                Body::MeterMod(unknown.meter_mod(ofp13::OFPMC_MODIFY))
            ))),
            (ofp13::OFPET_METER_MOD_FAILED, ofp13::OFPMMFC_UNKNOWN_METER)
        );
        assert_eq!(
            err(c.handle(add(&Meter { id: 0, ..m2 }))),
            (ofp13::OFPET_METER_MOD_FAILED, ofp13::OFPMMFC_INVALID_METER)
        );
        // The controller meter is a meter like any.
        let ctl = Meter {
            id: ofp13::meter::CONTROLLER,
            ..m2
        };
        assert!(c.handle(add(&ctl)).is_empty());
        // An entry may use only a meter that exists.
        let flow = |meter_id| {
            Message::new(
                3,
                Body::FlowMod(ofp13::FlowMod {
                    priority: 5,
                    instructions: vec![
                        ofp13::Instruction::Meter { meter_id },
                        ofp13::Instruction::ApplyActions {
                            actions: vec![Action::output(ofp13::port::CONTROLLER)],
                        },
                    ],
                    ..ofp13::FlowMod::default()
                }),
            )
        };
        assert_eq!(
            err(c.handle(flow(9))),
            (ofp13::OFPET_METER_MOD_FAILED, ofp13::OFPMMFC_INVALID_METER)
        );
        assert!(c.handle(flow(2)).is_empty());
        assert_eq!(c.tables().len(), 1);
        // Config and statistics, as read by reconciliation and the API.
        let out = c.handle(Message::new(
            4,
            mp(MultipartRequestBody::MeterConfig {
                meter_id: ofp13::meter::ALL,
            }),
        ));
        assert!(
            matches!(&out[..], [Message { body: Body::MultipartReply(MultipartReply {
            body: MultipartReplyBody::MeterConfig(v), .. }), .. }]
            if *v == vec![m2.config(), ctl.config()])
        );
        let out = c.handle(Message::new(
            5,
            mp(MultipartRequestBody::Meter { meter_id: 2 }),
        ));
        assert!(
            matches!(&out[..], [Message { body: Body::MultipartReply(MultipartReply {
            body: MultipartReplyBody::Meter(v), .. }), .. }]
            if v.len() == 1 && v[0].flow_count == 1 && v[0].band_stats.len() == 1)
        );
        // Deleting the meter deletes the entries that use it; deleting it again is no error.
        let del = Message::new(6, Body::MeterMod(Meter::delete(2)));
        assert!(c.handle(del.clone()).is_empty());
        assert_eq!(c.tables().len(), 0);
        assert!(c.handle(del).is_empty());
    }

    #[test]
    fn greeting_is_a_hello_in_the_configured_version() {
        let core = SwitchCore::new(SwitchSpec::new(1));
        let g = core.greeting();
        let m = Message::parse_slice(&g).unwrap();
        assert!(matches!(&m.body, Body::Hello(h) if h.supports_of13(4) && h.versions() == [1, 4]));

        let core = SwitchCore::new(SwitchSpec::new(1).of10_only());
        let g = core.greeting();
        assert_eq!(&g[..4], &[1, 0, 0, 8], "version 1 HELLO with no elements");
    }

    #[test]
    fn handshake_replies_and_up_only_after_port_desc_then_barrier() {
        let mut c = SwitchCore::new(SwitchSpec::new(0xab).with_ports(3));
        // A barrier before the handshake does not make the switch up.
        assert_eq!(
            c.handle(Message::new(1, Body::BarrierRequest)),
            vec![Message::new(1, Body::BarrierReply)]
        );
        assert!(!c.is_up());
        let out = c.handle(Message::new(2, Body::FeaturesRequest));
        assert!(
            matches!(&out[..], [Message { xid: 2, body: Body::FeaturesReply(f) }]
            if f.datapath_id == 0xab && f.n_tables == 254)
        );
        let out = c.handle(Message::new(
            3,
            Body::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
        ));
        assert!(out.is_empty());
        assert_eq!(c.miss_send_len(), Some(0xffff));
        let out = c.handle(Message::new(
            4,
            Body::RoleRequest(Role {
                role: OFPCR_ROLE_MASTER,
                generation_id: 9,
            }),
        ));
        assert!(
            matches!(&out[..], [Message { xid: 4, body: Body::RoleReply(r) }]
            if r.role == OFPCR_ROLE_MASTER && r.generation_id == 9)
        );
        let out = c.handle(Message::new(5, mp(MultipartRequestBody::PortDesc)));
        assert_eq!(port_desc_parts(&out), [(0, 3)]);
        assert!(!c.is_up());
        c.handle(Message::new(6, Body::BarrierRequest));
        assert!(c.is_up());
        let out = c.handle(Message::new(7, Body::GetConfigRequest));
        assert!(
            matches!(&out[..], [Message { xid: 7, body: Body::GetConfigReply(cfg) }]
            if cfg.miss_send_len == 0xffff)
        );
        assert_eq!(c.received().len(), 7, "everything is recorded");
    }

    #[test]
    fn many_ports_are_split_with_reply_more() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(40).ports_per_reply(16));
        let out = c.handle(Message::new(9, mp(MultipartRequestBody::PortDesc)));
        assert_eq!(
            port_desc_parts(&out),
            [(OFPMPF_MORE, 16), (OFPMPF_MORE, 16), (0, 8)]
        );
        assert!(out.iter().all(|m| m.xid == 9));
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(0));
        let out = c.handle(Message::new(9, mp(MultipartRequestBody::PortDesc)));
        assert_eq!(port_desc_parts(&out), [(0, 0)]);
    }

    #[test]
    fn echo_silence_flow_table_errors_and_recording() {
        let mut c = SwitchCore::new(SwitchSpec::new(1));
        let echo = Message::new(5, Body::EchoRequest(Bytes::from_static(b"hi")));
        assert_eq!(
            c.handle(echo.clone()),
            vec![Message::new(5, Body::EchoReply(Bytes::from_static(b"hi")))]
        );
        c.set_silent(true);
        assert!(c.handle(echo.clone()).is_empty());
        c.set_silent(false);
        assert_eq!(c.handle(echo).len(), 1);

        let out = c.handle(Message::new(
            6,
            mp(MultipartRequestBody::Flow(ofp13::FlowStatsRequest::all())),
        ));
        assert!(
            matches!(&out[..], [Message { xid: 6, body: Body::MultipartReply(MultipartReply {
            flags: 0, body: MultipartReplyBody::Flow(f) }) }] if f.is_empty())
        );
        let out = c.handle(Message::new(7, mp(MultipartRequestBody::Desc)));
        assert!(
            matches!(&out[..], [Message { body: Body::MultipartReply(MultipartReply {
            body: MultipartReplyBody::Desc(d), .. }), .. }] if d.mfr_desc == "servswitch")
        );
        let out = c.handle(Message::new(8, mp(MultipartRequestBody::GroupDesc)));
        assert!(
            matches!(&out[..], [Message { xid: 8, body: Body::MultipartReply(MultipartReply {
            body: MultipartReplyBody::GroupDesc(g), .. }) }] if g.is_empty())
        );
        let out = c.handle(Message::new(
            9,
            mp(MultipartRequestBody::TableFeatures(Vec::new())),
        ));
        assert!(
            matches!(&out[..], [Message { xid: 9, body: Body::Error(e) }]
            if e.err_type == OFPET_BAD_REQUEST && e.code == OFPBRC_BAD_MULTIPART
                && e.offending_xid() == Some(9))
        );

        let fm = Message::new(10, Body::FlowMod(ofp13::FlowMod::default()));
        assert!(c.handle(fm.clone()).is_empty());
        assert_eq!(c.received().last(), Some(&fm));
    }

    #[test]
    fn paused_core_holds_replies_and_up_until_resumed() {
        let mut c = SwitchCore::new(SwitchSpec::new(3).paused());
        assert!(c.handle(Message::new(1, Body::FeaturesRequest)).is_empty());
        assert!(c
            .handle(Message::new(2, mp(MultipartRequestBody::PortDesc)))
            .is_empty());
        assert!(c.handle(Message::new(3, Body::BarrierRequest)).is_empty());
        assert!(!c.is_up(), "the barrier reply has not been sent");
        let held = c.resume();
        let xids: Vec<u32> = held.iter().map(|m| m.xid).collect();
        assert_eq!(xids, [1, 2, 3]);
        assert!(c.is_up());
        assert_eq!(c.handle(Message::new(4, Body::BarrierRequest)).len(), 1);
        c.pause();
        assert!(c.handle(Message::new(5, Body::BarrierRequest)).is_empty());
        assert_eq!(c.resume().len(), 1);
    }

    fn ip_frame(ttl: u8) -> Vec<u8> {
        use crate::packet::{eth_frame, ipv4_packet};
        let icmp = crate::packet::icmp(8, 0, [0, 1, 0, 1], b"payload!");
        let ip = ipv4_packet(
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            std::net::Ipv4Addr::new(10, 0, 0, 2),
            1,
            ttl,
            1,
            false,
            &icmp,
        );
        eth_frame(
            MacAddr([2, 0, 0, 0, 0, 2]),
            MacAddr([2, 0, 0, 0, 0, 1]),
            0x0800,
            &ip,
        )
    }

    fn flow(priority: u16, match_: Vec<Oxm>, actions: Vec<Action>) -> Message {
        Message::new(
            0x10,
            Body::FlowMod(ofp13::FlowMod {
                priority,
                match_: ofp13::Match::new(match_),
                instructions: vec![ofp13::Instruction::ApplyActions { actions }],
                ..ofp13::FlowMod::default()
            }),
        )
    }

    fn packet_ins(out: &[Message]) -> Vec<u8> {
        out.iter()
            .map(|m| match &m.body {
                Body::PacketIn(p) => p.reason,
                b => panic!("not a packet-in: {b:?}"),
            })
            .collect()
    }

    fn set_async(packet_in: [u32; 2]) -> Message {
        Message::new(
            0x20,
            Body::SetAsync(AsyncConfig {
                packet_in_mask: packet_in,
                ..DEFAULT_ASYNC
            }),
        )
    }

    #[test]
    fn flow_mods_build_a_datapath_and_refusals_are_errors() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(3));
        let fm = flow(10, vec![Oxm::InPort(1, None)], vec![Action::output(2)]);
        assert!(c.handle(fm).is_empty());
        assert_eq!(c.tables().len(), 1);
        let f = ip_frame(64);
        assert!(c.receive_frame(1, &f).is_empty());
        assert_eq!(c.take_frames(), [(2, f.clone())]);
        assert!(c.take_frames().is_empty());
        // No port 9: the frame never enters; an output to port 9 goes nowhere.
        assert!(c.receive_frame(9, &f).is_empty());
        assert!(c.take_frames().is_empty());
        // dec_ttl without an IP match: refused with the engine's code and the first 64 bytes.
        let bad = flow(10, vec![], vec![Action::DecNwTtl, Action::output(2)]);
        let bytes = bad.to_bytes();
        assert!(bytes.len() > 64);
        let out = c.handle(bad);
        assert!(
            matches!(&out[..], [Message { xid: 0x10, body: Body::Error(e) }]
            if (e.err_type, e.code) == (ofp13::OFPET_BAD_ACTION,
                ofp13::OFPBAC_MATCH_INCONSISTENT) && e.data[..] == bytes[..64]),
            "{out:?}"
        );
        assert_eq!(c.tables().len(), 1, "nothing changed");
        // FLOW stats list the entry with its counters.
        let out = c.handle(Message::new(
            7,
            mp(MultipartRequestBody::Flow(ofp13::FlowStatsRequest::all())),
        ));
        assert!(
            matches!(&out[..], [Message { xid: 7, body: Body::MultipartReply(MultipartReply {
            flags: 0, body: MultipartReplyBody::Flow(f) }) }]
            if f.len() == 1 && f[0].packet_count == 1 && f[0].priority == 10),
            "{out:?}"
        );
    }

    #[test]
    fn packet_ins_follow_the_async_configuration_and_the_role() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(3));
        let ip = vec![Oxm::EthType(0x0800, None)];
        c.handle(flow(10, ip, vec![Action::DecNwTtl, Action::output(2)]));
        let arp = vec![Oxm::EthType(0x0806, None)];
        c.handle(flow(10, arp, vec![Action::output(ofp13::port::CONTROLLER)]));
        let arp_frame = crate::packet::Arp {
            op: 1,
            sha: MacAddr([2, 0, 0, 0, 0, 1]),
            spa: std::net::Ipv4Addr::new(10, 0, 0, 1),
            tha: MacAddr::ZERO,
            tpa: std::net::Ipv4Addr::new(10, 0, 0, 9),
        }
        .frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]), 0x0806);

        // OpenFlow 1.3's default: action packet-ins yes, invalid_ttl no.
        let out = c.handle(Message::new(1, Body::GetAsyncRequest));
        assert!(
            matches!(&out[..], [Message { xid: 1, body: Body::GetAsyncReply(a) }]
            if *a == DEFAULT_ASYNC)
        );
        assert_eq!(packet_ins(&c.receive_frame(1, &arp_frame)), [OFPR_ACTION]);
        assert!(c.receive_frame(1, &ip_frame(1)).is_empty());
        assert!(c.take_frames().is_empty(), "expired: not forwarded");
        let out = c.receive_frame(1, &ip_frame(2));
        assert!(out.is_empty());
        assert_eq!(c.take_frames().len(), 1);

        // invalid_ttl enabled (what servswitch's router asks for).
        assert!(c.handle(set_async([0b111, 0])).is_empty());
        assert_eq!(c.async_config().packet_in_mask, [0b111, 0]);
        let out = c.receive_frame(1, &ip_frame(1));
        assert_eq!(packet_ins(&out), [ofp13::OFPR_INVALID_TTL]);
        assert!(matches!(&out[0].body, Body::PacketIn(p)
            if p.data[..] == ip_frame(1)[..] && p.in_port() == Some(1) && out[0].xid == 0));

        // Only invalid_ttl: the ARP packet-in is filtered.
        c.handle(set_async([0b100, 0b001]));
        assert!(c.receive_frame(1, &arp_frame).is_empty());
        // As a slave the slave mask applies; modifying messages are refused.
        c.handle(Message::new(
            2,
            Body::RoleRequest(Role {
                role: ofp13::OFPCR_ROLE_SLAVE,
                generation_id: 1,
            }),
        ));
        assert!(c.receive_frame(1, &ip_frame(1)).is_empty());
        let out = c.handle(flow(1, vec![], vec![]));
        assert!(matches!(&out[..], [Message { body: Body::Error(e), .. }]
            if (e.err_type, e.code) == (OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE)));
        assert_eq!(c.tables().len(), 2);
    }

    #[test]
    fn packet_out_sends_frames_and_reports_errors() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(3));
        let f = ip_frame(64);
        let po = |in_port, actions: Vec<Action>| {
            Message::new(
                5,
                Body::PacketOut(ofp13::PacketOut {
                    buffer_id: ofp13::NO_BUFFER,
                    in_port,
                    actions: actions.into(),
                    data: Bytes::from(f.clone()),
                }),
            )
        };
        let out = c.handle(po(
            ofp13::port::CONTROLLER,
            vec![Action::output(3), Action::output(1)],
        ));
        assert!(out.is_empty());
        assert_eq!(c.take_frames(), [(3, f.clone()), (1, f.clone())]);
        // output:TABLE runs the pipeline: an entry sending to the controller raises a packet-in.
        c.handle(flow(
            1,
            vec![],
            vec![Action::output(ofp13::port::CONTROLLER)],
        ));
        let out = c.handle(po(2, vec![Action::output(ofp13::port::TABLE)]));
        assert_eq!(packet_ins(&out), [OFPR_ACTION]);
        // A bad in_port is refused.
        let out = c.handle(po(0xffff_ff01, vec![Action::output(1)]));
        assert!(
            matches!(&out[..], [Message { xid: 5, body: Body::Error(e) }]
            if (e.err_type, e.code) == (OFPET_BAD_REQUEST, ofp13::OFPBRC_BAD_PORT))
        );
        assert!(c.take_frames().is_empty());
    }

    #[test]
    fn many_flow_entries_are_split_with_reply_more() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(3));
        for i in 0..2000u32 {
            let m = vec![
                Oxm::EthType(0x0800, None),
                Oxm::Ipv4Dst(std::net::Ipv4Addr::from(0x0a00_0000 + i), None),
            ];
            let actions = vec![
                Action::DecNwTtl,
                Action::SetField {
                    field: Oxm::EthSrc(MacAddr([2, 0, 0, 0, 0, 1]), None),
                },
                Action::SetField {
                    field: Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 2]), None),
                },
                Action::output(1),
            ];
            assert!(c.handle(flow(100, m, actions)).is_empty());
        }
        let out = c.handle(Message::new(
            8,
            mp(MultipartRequestBody::Flow(ofp13::FlowStatsRequest::all())),
        ));
        assert!(out.len() > 1);
        let mut total = 0;
        for (i, m) in out.iter().enumerate() {
            assert!(m.to_bytes().len() <= MAX_MESSAGE_LEN);
            match &m.body {
                Body::MultipartReply(MultipartReply {
                    flags,
                    body: MultipartReplyBody::Flow(f),
                }) => {
                    assert_eq!(*flags == OFPMPF_MORE, i + 1 < out.len());
                    total += f.len();
                }
                b => panic!("{b:?}"),
            }
        }
        assert_eq!(total, 2000);
    }

    #[test]
    fn ports_come_and_go_with_port_status() {
        let mut c = SwitchCore::new(SwitchSpec::new(1).with_ports(2));
        c.handle(flow(1, vec![], vec![Action::output(7)]));
        let f = ip_frame(64);
        c.receive_frame(1, &f);
        assert!(c.take_frames().is_empty(), "no port 7 yet");
        let out = c.add_port(port(1, 7));
        assert!(
            matches!(&out[..], [Message { xid: 0, body: Body::PortStatus(p) }]
            if p.reason == ofp13::OFPPR_ADD && p.desc.port_no == 7)
        );
        c.receive_frame(1, &f);
        assert_eq!(c.take_frames(), [(7, f.clone())]);
        let out = c.delete_port(7);
        assert!(
            matches!(&out[..], [Message { body: Body::PortStatus(p), .. }]
            if p.reason == ofp13::OFPPR_DELETE && p.desc.port_no == 7)
        );
        assert!(c.delete_port(7).is_empty());
        c.receive_frame(1, &f);
        assert!(c.take_frames().is_empty());
        assert_eq!(c.tables().len(), 1, "flow entries stay");
        // Port status filtered out by the async configuration.
        c.handle(Message::new(
            1,
            Body::SetAsync(AsyncConfig {
                port_status_mask: [0, 0],
                ..DEFAULT_ASYNC
            }),
        ));
        assert!(c.add_port(port(1, 8)).is_empty());
        assert_eq!(c.ports().len(), 3);
    }

    /// Dropping a running switch ends its task and closes its socket.
    #[tokio::test]
    async fn dropping_the_handle_ends_the_task_and_closes_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = EmuConfig::new(listener.local_addr().unwrap(), SwitchSpec::new(1));
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let sw = connect(cfg).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 8];
        peer.read_exact(&mut hello).await.unwrap();
        assert_eq!(hello[1], ofp13::message::OFPT_HELLO);
        assert_eq!(tasks(), before + 1);
        drop(sw);
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            peer.read_to_end(&mut rest),
        );
        assert!(eof.await.is_ok(), "the socket was closed");
        assert_eq!(tasks(), before);
    }

    /// The core and the controller's own sans-io session, wired back to back with no socket,
    /// reach "up" on both sides with the switch's ports.
    #[test]
    fn core_completes_the_controllers_handshake() {
        let now = Instant::now();
        let cfg = SessionConfig {
            master_generation: Some(1),
            ..SessionConfig::default()
        };
        let mut s = Session::new(now, cfg);
        let mut c = SwitchCore::new(SwitchSpec::new(7).with_ports(40).ports_per_reply(16));
        let greeting = c.greeting();
        s.handle_message(Message::parse_slice(&greeting).unwrap(), now);
        for _ in 0..10 {
            let to_switch: Vec<Message> = std::iter::from_fn(|| s.poll_transmit()).collect();
            for m in to_switch {
                for r in c.handle(m) {
                    s.handle_message(r, now);
                }
            }
        }
        assert_eq!(s.state(), SessionState::Up);
        assert!(c.is_up());
        let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(matches!(&ev[..], [Event::Up { features, ports }]
            if features.datapath_id == 7 && ports.len() == 40));
        assert_eq!(c.role().role, OFPCR_ROLE_MASTER);
    }
}
