//! An emulated OpenFlow 1.3 switch, in process, for tests and benchmarks.
//!
//! Two layers, like [`crate::session`]:
//! - [`SwitchCore`], sans-io: one message from the controller in, the switch's replies out.
//!   It knows the switch's datapath id, tables and ports, answers the handshake and keepalive,
//!   and records everything the controller sent. A later flow-table emulation grows here.
//! - [`connect`] / [`EmuSwitch`], a thin tokio driver: one task per switch owns the TCP (or
//!   TLS) socket, feeds decoded messages to the core and writes its replies. The handle talks
//!   to the task over a channel; dropping the handle aborts the task and closes the socket.
//!
//! What the core answers: FEATURES_REQUEST (datapath id, `n_tables`), SET_CONFIG (recorded,
//! no reply), GET_CONFIG_REQUEST, BARRIER_REQUEST, ECHO_REQUEST (unless silent),
//! ROLE_REQUEST, and the multipart requests PORT_DESC (split into parts of
//! [`SwitchSpec::ports_per_reply`] ports flagged `OFPMPF_REPLY_MORE`, to exercise
//! reassembly), FLOW (an empty table) and DESC. Any other multipart request gets
//! `OFPET_BAD_REQUEST`/`OFPBRC_BAD_MULTIPART`, as a real switch answers a statistic it does not
//! keep. Every other message is recorded and not answered.
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
    Body, Desc, ErrorMsg, Hello, HelloElem, MacAddr, Message, MultipartReply, MultipartReplyBody,
    MultipartRequestBody, Port, Role, SwitchConfig, SwitchFeatures, MAX_MESSAGE_LEN, OFPMPF_MORE,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// `OFPET_BAD_REQUEST` / `OFPBRC_BAD_MULTIPART`.
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPBRC_BAD_MULTIPART: u16 = 2;

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
        config: 0,
        state: 0,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 10_000_000,
    }
}

/// The sans-io switch: controller messages in, replies out.
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
}

impl SwitchCore {
    pub fn new(spec: SwitchSpec) -> Self {
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

    /// Handles one message from the controller; returns the replies, in order (none while
    /// paused: they are held until [`SwitchCore::resume`]).
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
            MultipartRequestBody::Flow(_) => vec![part(0, MultipartReplyBody::Flow(Vec::new()))],
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
            _ => {
                let bytes = msg.to_bytes();
                let data = Bytes::copy_from_slice(bytes.get(..64).unwrap_or(&bytes));
                vec![Message::new(
                    xid,
                    Body::Error(ErrorMsg::new(OFPET_BAD_REQUEST, OFPBRC_BAD_MULTIPART, data)),
                )]
            }
        }
    }
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
    Resume,
    Close,
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
pub async fn connect(cfg: EmuConfig) -> std::io::Result<EmuSwitch> {
    let tcp = TcpStream::connect(cfg.addr).await?;
    tcp.set_nodelay(true)?;
    let local_addr = tcp.local_addr()?;
    let core = Arc::new(Mutex::new(SwitchCore::new(cfg.spec)));
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(Status::Connected);
    let task = match cfg.tls {
        None => tokio::spawn(drive(tcp, Arc::clone(&core), cmd_rx, status_tx)),
        Some(tls) => {
            let stream = tls.connector.connect(tls.server_name, tcp).await?;
            tokio::spawn(drive(stream, Arc::clone(&core), cmd_rx, status_tx))
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
    let closed = loop {
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
        tokio::select! {
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
                Some(Cmd::Resume) => {
                    for m in lock(&core).resume() {
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
    use crate::session::{Event, Session, SessionConfig, State};
    use ofp13::{MultipartRequest, OFPCR_ROLE_MASTER};
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
            matches!(&out[..], [Message { xid: 8, body: Body::Error(e) }]
            if e.err_type == OFPET_BAD_REQUEST && e.code == OFPBRC_BAD_MULTIPART
                && e.offending_xid() == Some(8))
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
        assert_eq!(s.state(), State::Up);
        assert!(c.is_up());
        let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(matches!(&ev[..], [Event::Up { features, ports }]
            if features.datapath_id == 7 && ports.len() == 40));
        assert_eq!(c.role().role, OFPCR_ROLE_MASTER);
    }
}
