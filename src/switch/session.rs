//! The OpenFlow 1.3 session with one switch, as a sans-io state machine (after quinn-proto).
//!
//! It owns no socket and no clock: the runtime feeds it decoded messages and the current time,
//! and polls it for messages to send, events for the controller, and when to wake it next.
//! Every timeout test is therefore instant and deterministic.
//!
//! Handshake (OpenFlow 1.3.5 section 6.3): both sides send HELLO; the switch's version bitmap
//! (or, without one, its header version) must include 1.3, otherwise it gets
//! `OFPET_HELLO_FAILED`/`OFPHFC_INCOMPATIBLE` and the session closes. Then FEATURES_REQUEST
//! (datapath id), SET_CONFIG (miss_send_len), a port-description multipart request, optionally a
//! ROLE_REQUEST, and a barrier; the session is up when the port description and barrier have
//! been answered. Asynchronous messages that arrive before that (a packet-in racing the
//! handshake) are held and delivered right after [`Event::Up`], in order.
//!
//! Keepalive: the switch's ECHO_REQUESTs are answered at once; when nothing has been received
//! for `echo_interval`, an ECHO_REQUEST probes the switch, and after `echo_misses` probes in a row
//! without any reply the session closes.
//!
//! Requests: [`Session::request`] allocates an xid and remembers it; replies come back as
//! [`Event::Reply`] — a multipart reply reassembled across `OFPMPF_REPLY_MORE`, a barrier
//! reply, or an `OFPT_ERROR` whose xid names the request.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ofp13::{
    Body, ErrorMsg, Hello, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    Port, PortStatus, Role, SwitchConfig, SwitchFeatures, OFPBRC_BAD_TYPE, OFPET_BAD_REQUEST,
    OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE, OFPPR_DELETE,
};

/// Tunables of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Probe a switch that has sent nothing for this long.
    pub echo_interval: Duration,
    /// Close after this many probes in a row went unanswered.
    pub echo_misses: u32,
    /// The whole handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A request not answered within this fails with [`ReplyError::Timeout`].
    pub request_timeout: Duration,
    /// `miss_send_len` for SET_CONFIG: bytes of a table-miss packet sent to the controller.
    pub miss_send_len: u16,
    /// Ask to be master (ROLE_REQUEST) with this generation id, or leave the role alone.
    pub master_generation: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            echo_interval: Duration::from_secs(5),
            echo_misses: 3,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            miss_send_len: 0xffff,
            master_generation: None,
        }
    }
}

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Our HELLO is sent; waiting for the switch's.
    AwaitHello,
    /// Versions agreed; waiting for FEATURES_REPLY.
    AwaitFeatures,
    /// Waiting for the port description and the handshake barrier.
    AwaitPorts,
    /// Ready for the controller's requests.
    Up,
    /// Finished; the runtime should drop the connection.
    Closed,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The switch does not speak OpenFlow 1.3.
    VersionMismatch { versions: Vec<u8> },
    /// The handshake took longer than `handshake_timeout`.
    HandshakeTimeout,
    /// `echo_misses` probes in a row went unanswered.
    EchoTimeout,
    /// The switch sent something that ends the session (named).
    Protocol(String),
    /// The runtime closed it (EOF, shutdown, replaced by a newer connection).
    Local(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::VersionMismatch { versions } => write!(
                f,
                "switch does not speak OpenFlow 1.3 (it offers versions {versions:?}; servswitch speaks only 0x04)"
            ),
            CloseReason::HandshakeTimeout => write!(f, "handshake timed out"),
            CloseReason::EchoTimeout => write!(f, "switch stopped answering echo requests"),
            CloseReason::Protocol(s) => write!(f, "protocol error: {s}"),
            CloseReason::Local(s) => write!(f, "{s}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The switch answered with `OFPT_ERROR`.
    Switch(ErrorMsg),
    /// No reply within `request_timeout`.
    Timeout,
    /// The session closed first.
    Closed,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Switch(e) => {
                let (t, _) = e.names();
                write!(
                    f,
                    "switch answered {t} {}",
                    ofp13::names::error_code_name(e.err_type, e.code)
                )
            }
            ReplyError::Timeout => write!(f, "no reply from the switch in time"),
            ReplyError::Closed => write!(f, "the switch disconnected"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// What the session tells the controller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The handshake is complete.
    Up {
        features: SwitchFeatures,
        ports: Vec<Port>,
    },
    /// An asynchronous message (packet-in, flow-removed, an unsolicited error, experimenter).
    Async(Message),
    /// A port was added, changed or deleted (already applied to [`Session::ports`]).
    PortStatus(PortStatus),
    /// The answer to a [`Session::request`]: one message, or every part of a multipart reply.
    Reply {
        xid: u32,
        result: Result<Vec<Message>, ReplyError>,
    },
    /// The session ended; nothing more will come.
    Closed(CloseReason),
}

/// A request waiting for its reply.
#[derive(Debug)]
struct Pending {
    deadline: Instant,
    parts: Vec<Message>,
    /// Internal handshake requests are not reported as events.
    internal: bool,
}

/// One switch's session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: SessionState,
    next_xid: u32,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
    held: Vec<Message>,
    pending: HashMap<u32, Pending>,
    features: Option<SwitchFeatures>,
    ports: BTreeMap<u32, Port>,
    ports_xid: Option<u32>,
    barrier_xid: Option<u32>,
    handshake_deadline: Instant,
    last_rx: Instant,
    echo_sent: u32,
    next_echo: Instant,
}

impl Session {
    /// A new session; our HELLO is queued at once.
    pub fn new(now: Instant, cfg: SessionConfig) -> Self {
        let mut s = Session {
            handshake_deadline: now + cfg.handshake_timeout,
            next_echo: now + cfg.echo_interval,
            cfg,
            state: SessionState::AwaitHello,
            next_xid: 1,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            held: Vec::new(),
            pending: HashMap::new(),
            features: None,
            ports: BTreeMap::new(),
            ports_xid: None,
            barrier_xid: None,
            last_rx: now,
            echo_sent: 0,
        };
        s.send(Body::Hello(Hello::of13()));
        s
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The datapath id, once FEATURES_REPLY has arrived.
    pub fn datapath_id(&self) -> Option<u64> {
        self.features.as_ref().map(|f| f.datapath_id)
    }

    pub fn features(&self) -> Option<&SwitchFeatures> {
        self.features.as_ref()
    }

    /// The switch's ports as last reported, by number.
    pub fn ports(&self) -> &BTreeMap<u32, Port> {
        &self.ports
    }

    /// Requests in flight (for leak checks and metrics).
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    fn alloc_xid(&mut self) -> u32 {
        let x = self.next_xid;
        // xid 0 is avoided: some switches use it for unsolicited messages.
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    /// Sends a message that needs no reply: encoded straight into `buf` (the connection's
    /// write buffer) when nothing is queued ahead of it, so an answer is not moved through
    /// the transmit queue; else queued behind the rest, as [`Session::send`] does. Returns
    /// whether it was encoded.
    pub fn send_into(&mut self, body: Body, buf: &mut Vec<u8>) -> bool {
        let Some(xid) = self.xid_if_nothing_waits() else {
            self.send(body);
            return false;
        };
        Message::new(xid, body).emit(buf);
        true
    }

    /// A fresh xid for a message that may be encoded now: none while others wait in the
    /// transmit queue (an answer encoded now would overtake them).
    fn xid_if_nothing_waits(&mut self) -> Option<u32> {
        self.transmit.is_empty().then(|| self.alloc_xid())
    }

    /// [`Session::send_into`] for a PACKET_OUT held inline: encoded with no heap
    /// allocation when nothing is queued ahead of it, else queued as a [`Body::PacketOut`].
    pub fn send_packet_out_into(&mut self, p: &ofp13::InlinePacketOut, buf: &mut Vec<u8>) -> bool {
        let Some(xid) = self.xid_if_nothing_waits() else {
            self.send(Body::PacketOut(p.to_packet_out()));
            return false;
        };
        p.emit(xid, buf);
        true
    }

    /// Queues a message that needs no reply; returns its xid.
    pub fn send(&mut self, body: Body) -> u32 {
        let xid = self.alloc_xid();
        self.transmit.push_back(Message::new(xid, body));
        xid
    }

    /// Queues a message whose reply (or error) is reported as [`Event::Reply`] with this xid.
    pub fn request(&mut self, body: Body, now: Instant) -> u32 {
        self.request_inner(body, now, false)
    }

    /// Queues a barrier request; its [`Event::Reply`] means everything sent before it is done.
    pub fn barrier(&mut self, now: Instant) -> u32 {
        self.request(Body::BarrierRequest, now)
    }

    fn request_inner(&mut self, body: Body, now: Instant, internal: bool) -> u32 {
        let xid = self.send(body);
        self.pending.insert(
            xid,
            Pending {
                deadline: now + self.cfg.request_timeout,
                parts: Vec::new(),
                internal,
            },
        );
        xid
    }

    /// The next message to write to the switch.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// The next event for the controller.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SessionState::Closed {
            return None;
        }
        let mut t = self.next_echo;
        if self.state != SessionState::Up {
            t = t.min(self.handshake_deadline);
        }
        if let Some(d) = self.pending.values().map(|p| p.deadline).min() {
            t = t.min(d);
        }
        Some(t)
    }

    /// Closes the session from our side (EOF, shutdown, replaced); pending requests fail.
    pub fn close(&mut self, reason: CloseReason) {
        if self.state == SessionState::Closed {
            return;
        }
        self.state = SessionState::Closed;
        let mut xids: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.internal)
            .map(|(x, _)| *x)
            .collect();
        xids.sort_unstable();
        self.pending.clear();
        for xid in xids {
            self.events.push_back(Event::Reply {
                xid,
                result: Err(ReplyError::Closed),
            });
        }
        self.held.clear();
        self.events.push_back(Event::Closed(reason));
    }

    /// A HELLO that arrived in a header of another version (the framer refuses those): the
    /// hello's format is the same in every version, so negotiation can still proceed.
    pub fn handle_foreign_hello(&mut self, header_version: u8, hello: &Hello, now: Instant) {
        self.last_rx = now;
        self.negotiate(header_version, hello);
    }

    /// A message in a header of a version other than 1.3 that is not a HELLO.
    pub fn handle_foreign_message(&mut self, version: u8, msg_type: u8) {
        if self.state == SessionState::AwaitHello {
            // The peer skipped version negotiation: it cannot be speaking 1.3.
            self.fail_version(vec![version]);
        } else {
            self.close(CloseReason::Protocol(format!(
                "message of type {msg_type} in OpenFlow version {version:#04x} after agreeing on 1.3"
            )));
        }
    }

    fn fail_version(&mut self, versions: Vec<u8>) {
        let text =
            format!("servswitch speaks only OpenFlow 1.3 (0x04); the switch offered {versions:?}");
        self.send(Body::Error(ErrorMsg::new(
            OFPET_HELLO_FAILED,
            OFPHFC_INCOMPATIBLE,
            Bytes::from(text),
        )));
        self.close(CloseReason::VersionMismatch { versions });
    }

    fn negotiate(&mut self, header_version: u8, hello: &Hello) {
        if self.state != SessionState::AwaitHello {
            return;
        }
        if !hello.supports_of13(header_version) {
            let mut versions = hello.versions();
            if versions.is_empty() {
                versions.push(header_version);
            }
            self.fail_version(versions);
            return;
        }
        self.state = SessionState::AwaitFeatures;
        let now = self.last_rx;
        self.request_inner(Body::FeaturesRequest, now, true);
    }

    /// For a PACKET_IN the caller read in place and will hand the application itself,
    /// bypassing [`Session::handle_message`] and the event queue: when the session is up
    /// and no event waits to be delivered ahead of it, notes the message received (as
    /// `handle_message` does) and returns true. Otherwise returns false and changes
    /// nothing: the caller decodes the message and feeds it to `handle_message`, which holds
    /// it until the session is up or keeps it behind the waiting events.
    pub fn deliver_in_place(&mut self, now: Instant) -> bool {
        if self.state != SessionState::Up || !self.events.is_empty() {
            return false;
        }
        self.received(now);
        true
    }

    /// A message arrived: the switch is alive, the next echo probe moves on.
    fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.echo_sent = 0;
        self.next_echo = now + self.cfg.echo_interval;
    }

    /// Feeds one decoded message from the switch.
    pub fn handle_message(&mut self, msg: Message, now: Instant) {
        if self.state == SessionState::Closed {
            return;
        }
        self.received(now);
        let xid = msg.xid;
        match msg.body {
            Body::Hello(h) => self.negotiate(ofp13::OFP_VERSION, &h),
            Body::EchoRequest(data) => {
                self.transmit
                    .push_back(Message::new(xid, Body::EchoReply(data)));
            }
            Body::EchoReply(_) => {}
            Body::FeaturesReply(f) if self.state == SessionState::AwaitFeatures => {
                self.pending.remove(&xid);
                self.features = Some(f);
                self.state = SessionState::AwaitPorts;
                self.send(Body::SetConfig(SwitchConfig {
                    flags: 0,
                    miss_send_len: self.cfg.miss_send_len,
                }));
                if let Some(generation_id) = self.cfg.master_generation {
                    self.request_inner(
                        Body::RoleRequest(Role {
                            role: ofp13::OFPCR_ROLE_MASTER,
                            generation_id,
                        }),
                        now,
                        true,
                    );
                }
                let px = self.request_inner(
                    Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::PortDesc)),
                    now,
                    true,
                );
                self.ports_xid = Some(px);
                let bx = self.request_inner(Body::BarrierRequest, now, true);
                self.barrier_xid = Some(bx);
            }
            Body::PortStatus(ps) => {
                self.apply_port_status(&ps);
                if self.state == SessionState::Up {
                    self.events.push_back(Event::PortStatus(ps));
                }
            }
            Body::PacketIn(_) | Body::FlowRemoved(_) => {
                if self.state == SessionState::Up {
                    self.events.push_back(Event::Async(msg));
                } else {
                    self.held.push(msg);
                }
            }
            Body::MultipartReply(r) => {
                let more = r.more();
                self.handle_reply(Message::new(xid, Body::MultipartReply(r)), more);
            }
            Body::Error(e) => {
                if self.pending.contains_key(&xid) {
                    let p = self.pending.remove(&xid);
                    self.handle_error_reply(xid, e, p);
                } else if self.state == SessionState::Up {
                    self.events
                        .push_back(Event::Async(Message::new(xid, Body::Error(e))));
                } else {
                    self.held.push(Message::new(xid, Body::Error(e)));
                }
            }
            Body::FeaturesRequest
            | Body::GetConfigRequest
            | Body::SetConfig(_)
            | Body::PacketOut(_)
            | Body::FlowMod(_)
            | Body::GroupMod(_)
            | Body::PortMod(_)
            | Body::TableMod(_)
            | Body::MultipartRequest(_)
            | Body::BarrierRequest
            | Body::QueueGetConfigRequest { .. }
            | Body::RoleRequest(_)
            | Body::GetAsyncRequest
            | Body::SetAsync(_)
            | Body::MeterMod(_) => {
                // A controller-to-switch message from the switch: say so, keep the session.
                let offending = Bytes::from(Message::new(xid, msg.body).to_bytes());
                let data = offending.slice(..offending.len().min(64));
                self.transmit.push_back(Message::new(
                    xid,
                    Body::Error(ErrorMsg::new(OFPET_BAD_REQUEST, OFPBRC_BAD_TYPE, data)),
                ));
            }
            body => self.handle_reply(Message::new(xid, body), false),
        }
    }

    fn handle_error_reply(&mut self, xid: u32, e: ErrorMsg, p: Option<Pending>) {
        let internal = p.as_ref().is_some_and(|p| p.internal);
        if !internal {
            self.events.push_back(Event::Reply {
                xid,
                result: Err(ReplyError::Switch(e)),
            });
            return;
        }
        // A handshake request failed. A refused role request is survivable (the switch
        // may not support roles); anything else ends the handshake.
        if Some(xid) == self.ports_xid
            || Some(xid) == self.barrier_xid
            || self.state == SessionState::AwaitFeatures
        {
            let text = ReplyError::Switch(e).to_string();
            self.close(CloseReason::Protocol(format!(
                "handshake request refused: {text}"
            )));
        }
    }

    fn handle_reply(&mut self, msg: Message, more: bool) {
        let xid = msg.xid;
        let Some(p) = self.pending.get_mut(&xid) else {
            // A reply nobody waits for (late after a timeout): nothing to do.
            return;
        };
        p.parts.push(msg);
        if more {
            return;
        }
        let Some(p) = self.pending.remove(&xid) else {
            return;
        };
        if p.internal {
            self.handshake_reply(xid, p.parts);
        } else {
            self.events.push_back(Event::Reply {
                xid,
                result: Ok(p.parts),
            });
        }
    }

    fn handshake_reply(&mut self, xid: u32, parts: Vec<Message>) {
        if Some(xid) == self.ports_xid {
            for m in parts {
                if let Body::MultipartReply(r) = m.body {
                    if let MultipartReplyBody::PortDesc(ports) = r.body {
                        for p in ports {
                            self.ports.insert(p.port_no, p);
                        }
                    }
                }
            }
            self.ports_xid = None;
        } else if Some(xid) == self.barrier_xid {
            self.barrier_xid = None;
        }
        if self.state == SessionState::AwaitPorts
            && self.ports_xid.is_none()
            && self.barrier_xid.is_none()
        {
            self.go_up();
        }
    }

    fn go_up(&mut self) {
        let Some(features) = self.features.clone() else {
            return;
        };
        self.state = SessionState::Up;
        self.events.push_back(Event::Up {
            features,
            ports: self.ports.values().cloned().collect(),
        });
        for m in std::mem::take(&mut self.held) {
            self.events.push_back(Event::Async(m));
        }
    }

    fn apply_port_status(&mut self, ps: &PortStatus) {
        if ps.reason == OFPPR_DELETE {
            self.ports.remove(&ps.desc.port_no);
        } else {
            self.ports.insert(ps.desc.port_no, ps.desc.clone());
        }
    }

    /// Advances timers: handshake deadline, request deadlines, echo probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == SessionState::Closed {
            return;
        }
        if self.state != SessionState::Up && now >= self.handshake_deadline {
            self.close(CloseReason::HandshakeTimeout);
            return;
        }
        let mut expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(x, _)| *x)
            .collect();
        expired.sort_unstable();
        for xid in expired {
            if let Some(p) = self.pending.remove(&xid) {
                if !p.internal {
                    self.events.push_back(Event::Reply {
                        xid,
                        result: Err(ReplyError::Timeout),
                    });
                }
            }
        }
        if now >= self.next_echo {
            if self.echo_sent >= self.cfg.echo_misses {
                self.close(CloseReason::EchoTimeout);
                return;
            }
            self.echo_sent += 1;
            self.send(Body::EchoRequest(Bytes::from_static(b"servswitch")));
            self.next_echo = now + self.cfg.echo_interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ofp13::{MacAddr, MultipartReply, PacketIn};

    fn features(dpid: u64) -> Body {
        Body::FeaturesReply(SwitchFeatures {
            datapath_id: dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0,
            reserved: 0,
        })
    }

    fn port(no: u32) -> Port {
        Port {
            port_no: no,
            hw_addr: MacAddr([2, 0, 0, 0, 0, no as u8]),
            name: format!("p{no}"),
            ..Default::default()
        }
    }

    fn drain(s: &mut Session) -> Vec<Message> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn packet_in(n: u8) -> Body {
        Body::PacketIn(PacketIn::unbuffered(1, 0, vec![n]))
    }

    #[test]
    fn an_answer_is_encoded_at_once_only_when_nothing_waits_ahead_of_it() {
        let now = Instant::now();
        let mut s = Session::new(now, SessionConfig::default());
        let mut wire = Vec::new();
        // The HELLO is queued: the answer goes behind it, not before.
        assert!(!s.send_into(Body::BarrierRequest, &mut wire));
        assert!(wire.is_empty());
        for m in drain(&mut s) {
            m.emit(&mut wire);
        }
        // Nothing queued now: straight into the buffer, with the next xid.
        assert!(s.send_into(
            Body::EchoRequest(bytes::Bytes::from_static(b"x")),
            &mut wire
        ));
        let mut buf = bytes::BytesMut::from(&wire[..]);
        let got: Vec<Message> =
            std::iter::from_fn(|| ofp13::decode_frame(&mut buf, ofp13::MAX_MESSAGE_LEN).ok()?)
                .collect();
        let names: Vec<&str> = got.iter().map(|m| m.body.name()).collect();
        assert_eq!(
            names,
            ["OFPT_HELLO", "OFPT_BARRIER_REQUEST", "OFPT_ECHO_REQUEST"]
        );
        assert!(got[1].xid < got[2].xid, "xids in the order sent");
    }

    /// Plays the switch's side of the handshake; returns the session once up.
    fn handshake(now: Instant, cfg: SessionConfig) -> Session {
        let mut s = Session::new(now, cfg);
        let out = drain(&mut s);
        assert!(matches!(out[0].body, Body::Hello(_)));
        s.handle_message(Message::new(100, Body::Hello(Hello::of13())), now);
        let out = drain(&mut s);
        assert!(matches!(out[0].body, Body::FeaturesRequest));
        s.handle_message(Message::new(out[0].xid, features(0x42)), now);
        let out = drain(&mut s);
        let names: Vec<&str> = out.iter().map(|m| m.body.name()).collect();
        assert_eq!(
            names,
            [
                "OFPT_SET_CONFIG",
                "OFPT_MULTIPART_REQUEST",
                "OFPT_BARRIER_REQUEST"
            ]
        );
        s.handle_message(
            Message::new(
                out[1].xid,
                Body::MultipartReply(MultipartReply {
                    flags: 0,
                    body: MultipartReplyBody::PortDesc(vec![port(1), port(2)]),
                }),
            ),
            now,
        );
        assert_eq!(s.state(), SessionState::AwaitPorts);
        s.handle_message(Message::new(out[2].xid, Body::BarrierReply), now);
        assert_eq!(s.state(), SessionState::Up);
        s
    }

    #[test]
    fn a_packet_in_goes_past_the_queue_only_when_up_and_nothing_waits() {
        let now = Instant::now();
        let mut early = Session::new(now, SessionConfig::default());
        assert!(!early.deliver_in_place(now), "not before the handshake");
        let mut s = handshake(now, SessionConfig::default());
        assert!(matches!(events(&mut s)[..], [Event::Up { .. }]));
        // An event waiting (a port status): the packet-in must queue behind it.
        s.handle_message(
            Message::new(
                0,
                Body::PortStatus(ofp13::PortStatus {
                    reason: ofp13::OFPPR_MODIFY,
                    desc: port(1),
                }),
            ),
            now,
        );
        assert!(!s.deliver_in_place(now));
        assert!(matches!(events(&mut s)[..], [Event::PortStatus(_)]));
        // Up, nothing waiting: delivered in place, and the switch counts as heard from.
        let later = now + Duration::from_secs(4);
        assert!(s.deliver_in_place(later));
        assert_eq!(
            s.poll_timeout(),
            Some(later + SessionConfig::default().echo_interval),
            "the echo probe moves on as for any message"
        );
        s.close(CloseReason::Local("test".into()));
        assert!(!s.deliver_in_place(later), "not once closed");
    }

    #[test]
    fn handshake_reports_up_with_ports() {
        let now = Instant::now();
        let mut s = handshake(now, SessionConfig::default());
        let ev = events(&mut s);
        assert!(matches!(&ev[..], [Event::Up { features, ports }]
            if features.datapath_id == 0x42 && ports.len() == 2));
        assert_eq!(s.datapath_id(), Some(0x42));
    }

    #[test]
    fn packet_ins_before_up_are_held_in_order() {
        let now = Instant::now();
        let mut s = Session::new(now, SessionConfig::default());
        drain(&mut s);
        s.handle_message(Message::new(0, packet_in(1)), now);
        s.handle_message(Message::new(1, Body::Hello(Hello::of13())), now);
        s.handle_message(Message::new(0, packet_in(2)), now);
        let fx = drain(&mut s)[0].xid;
        s.handle_message(Message::new(fx, features(7)), now);
        let out = drain(&mut s);
        s.handle_message(Message::new(0, packet_in(3)), now);
        s.handle_message(
            Message::new(
                out[1].xid,
                Body::MultipartReply(MultipartReply {
                    flags: 0,
                    body: MultipartReplyBody::PortDesc(vec![]),
                }),
            ),
            now,
        );
        assert!(
            events(&mut s).is_empty(),
            "nothing before the handshake ends"
        );
        s.handle_message(Message::new(out[2].xid, Body::BarrierReply), now);
        let ev = events(&mut s);
        assert!(matches!(ev[0], Event::Up { .. }));
        let data: Vec<u8> = ev[1..]
            .iter()
            .map(|e| match e {
                Event::Async(Message {
                    body: Body::PacketIn(p),
                    ..
                }) => p.data[0],
                e => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(data, [1, 2, 3]);
    }

    #[test]
    fn switch_without_13_gets_hello_failed() {
        let now = Instant::now();
        let mut s = Session::new(now, SessionConfig::default());
        drain(&mut s);
        // An OpenFlow 1.0-only switch: header version 1, no bitmap.
        s.handle_foreign_hello(1, &Hello::default(), now);
        let out = drain(&mut s);
        assert!(matches!(&out[0].body, Body::Error(e) if e.err_type == 0 && e.code == 0));
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::VersionMismatch {
                versions: vec![1]
            })]
        );
        // A bitmap that offers 1.0 and 1.4 but not 1.3.
        let mut s = Session::new(now, SessionConfig::default());
        drain(&mut s);
        let h = Hello {
            elements: vec![ofp13::HelloElem::VersionBitmap {
                bitmaps: vec![(1 << 1) | (1 << 5)],
            }],
        };
        s.handle_foreign_hello(5, &h, now);
        assert_eq!(s.state(), SessionState::Closed);
        // A 1.4 header whose bitmap includes 1.3 negotiates 1.3.
        let mut s = Session::new(now, SessionConfig::default());
        drain(&mut s);
        let h = Hello {
            elements: vec![ofp13::HelloElem::VersionBitmap {
                bitmaps: vec![(1 << 4) | (1 << 5)],
            }],
        };
        s.handle_foreign_hello(5, &h, now);
        assert_eq!(s.state(), SessionState::AwaitFeatures);
    }

    #[test]
    fn echo_answered_and_probe_then_drop() {
        let t0 = Instant::now();
        let cfg = SessionConfig {
            echo_interval: Duration::from_secs(5),
            echo_misses: 2,
            ..SessionConfig::default()
        };
        let mut s = handshake(t0, cfg);
        events(&mut s);
        s.handle_message(
            Message::new(77, Body::EchoRequest(Bytes::from_static(b"x"))),
            t0,
        );
        let out = drain(&mut s);
        assert_eq!(
            out,
            vec![Message::new(77, Body::EchoReply(Bytes::from_static(b"x")))]
        );

        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        s.handle_timeout(t0 + Duration::from_secs(5));
        assert!(matches!(
            drain(&mut s)[..],
            [Message {
                body: Body::EchoRequest(_),
                ..
            }]
        ));
        // A reply resets the count.
        s.handle_message(
            Message::new(9, Body::EchoReply(Bytes::new())),
            t0 + Duration::from_secs(6),
        );
        s.handle_timeout(t0 + Duration::from_secs(11));
        s.handle_timeout(t0 + Duration::from_secs(16));
        assert_eq!(s.state(), SessionState::Up);
        s.handle_timeout(t0 + Duration::from_secs(21));
        assert_eq!(s.state(), SessionState::Closed);
        assert!(events(&mut s).contains(&Event::Closed(CloseReason::EchoTimeout)));
    }

    #[test]
    fn multipart_reassembly_errors_and_timeouts() {
        let t0 = Instant::now();
        let mut s = handshake(t0, SessionConfig::default());
        events(&mut s);
        let x = s.request(
            Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::PortDesc)),
            t0,
        );
        drain(&mut s);
        let part = |flags| {
            Body::MultipartReply(MultipartReply {
                flags,
                body: MultipartReplyBody::PortDesc(vec![port(3)]),
            })
        };
        s.handle_message(Message::new(x, part(ofp13::OFPMPF_MORE)), t0);
        assert!(events(&mut s).is_empty());
        s.handle_message(Message::new(x, part(0)), t0);
        assert!(
            matches!(&events(&mut s)[..], [Event::Reply { xid, result: Ok(parts) }]
            if *xid == x && parts.len() == 2)
        );

        let y = s.barrier(t0);
        let e = ErrorMsg::new(1, 1, Bytes::new());
        s.handle_message(Message::new(y, Body::Error(e.clone())), t0);
        assert_eq!(
            events(&mut s),
            vec![Event::Reply {
                xid: y,
                result: Err(ReplyError::Switch(e))
            }]
        );

        let z = s.barrier(t0);
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert!(events(&mut s).contains(&Event::Reply {
            xid: z,
            result: Err(ReplyError::Timeout)
        }));
        assert_eq!(s.pending_requests(), 0);

        let w = s.barrier(t0);
        s.close(CloseReason::Local("test".into()));
        assert_eq!(
            events(&mut s),
            vec![
                Event::Reply {
                    xid: w,
                    result: Err(ReplyError::Closed)
                },
                Event::Closed(CloseReason::Local("test".into()))
            ]
        );
    }

    #[test]
    fn handshake_times_out() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::default());
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::HandshakeTimeout)]
        );
    }

    #[test]
    fn port_status_tracked() {
        let t0 = Instant::now();
        let mut s = handshake(t0, SessionConfig::default());
        events(&mut s);
        s.handle_message(
            Message::new(
                0,
                Body::PortStatus(PortStatus {
                    reason: ofp13::OFPPR_ADD,
                    desc: port(9),
                }),
            ),
            t0,
        );
        assert!(s.ports().contains_key(&9));
        s.handle_message(
            Message::new(
                0,
                Body::PortStatus(PortStatus {
                    reason: OFPPR_DELETE,
                    desc: port(1),
                }),
            ),
            t0,
        );
        assert!(!s.ports().contains_key(&1));
        assert_eq!(events(&mut s).len(), 2);
    }
}
