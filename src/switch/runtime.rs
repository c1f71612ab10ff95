//! The tokio shell around [`crate::switch::session::Session`]: the listener, one task per switch
//! connection, the registry of connected switches, and the handles apps use to talk to them.
//!
//! A connection task owns its socket and buffers and `select!`s over: bytes from the switch,
//! commands from handles, the session's next timer, and shutdown. Reads are decoded in place
//! from one `BytesMut`; everything the session wants to send is emitted into one buffer and
//! written with one `write_all` per wake-up (batched). No lock is held across `.await`.
//!
//! Registry: one entry per datapath id. A switch that reconnects replaces its old session: the
//! old connection is cancelled (its task ends, its socket closes) and only the owner of an entry
//! may remove it, so a late cleanup of the old task never removes the new entry.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use dashmap::DashMap;
use ofp13::{Body, Error as DecodeError, Header, Message, Port, MAX_MESSAGE_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::fabric::topology::{Dpid, Topology};
use crate::switch::metrics::{Metrics, Tally};
use crate::switch::session::{
    CloseReason, Event, ReplyError, Session, SessionConfig, SessionState,
};

/// How long a write to a switch may take before the connection is given up (default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the controller's apps do with switch events. Handlers are synchronous and give the
/// messages to send to the same switch (Faucet style: event in, messages out; `message` pushes
/// them onto the connection's reused list), so the common case costs no channel hop and no
/// allocation for the list; cross-switch work goes through [`Registry`] handles.
pub trait App: Send + Sync + 'static {
    /// The switch finished its handshake.
    fn switch_up(&self, _sw: &SwitchHandle) -> Vec<Body> {
        Vec::new()
    }
    /// An asynchronous message (packet-in, flow-removed, unsolicited error) or port status,
    /// read from the socket at `read` (one clock reading per batch of messages): what to
    /// send back is pushed onto `out`, the connection's list, emptied and reused for every
    /// message (an answer of one message allocates nothing for the list).
    fn message(&self, _sw: &SwitchHandle, _msg: &Message, _read: Instant, _out: &mut Answers) {}
    /// A PACKET_IN the runtime read in place from its read buffer (`msg`, the whole
    /// message's bytes; `pi`, its view): the common message, handed over with no copy, no
    /// reference count and no queue. By default it is parsed and given to [`App::message`].
    fn packet_in(
        &self,
        sw: &SwitchHandle,
        msg: &[u8],
        _pi: &ofp13::PacketInView<'_>,
        read: Instant,
        out: &mut Answers,
    ) {
        if let Ok(m) = Message::parse_slice(msg) {
            self.message(sw, &m, read, out);
        }
    }
    /// The switch's session ended (not called when a newer session replaced it).
    fn switch_down(&self, _dpid: u64) {}
}

/// One answer of the app to a message from a switch.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Message(Body),
    /// A PACKET_OUT of a short frame out of one port, encoded into the connection's write
    /// buffer with no heap allocation (the common ARP answer).
    PacketOut(ofp13::InlinePacketOut),
}

impl Answer {
    /// The answer as a message (an inline PACKET_OUT copied to the heap).
    pub fn into_body(self) -> Body {
        match self {
            Answer::Message(b) => b,
            Answer::PacketOut(p) => Body::PacketOut(p.to_packet_out()),
        }
    }
}

/// The app's answers to one message, sent in the order pushed.
#[derive(Debug, Default)]
pub struct Answers(Vec<Answer>);

impl Answers {
    pub fn with_capacity(n: usize) -> Answers {
        Answers(Vec::with_capacity(n))
    }
    pub fn push(&mut self, body: Body) {
        self.0.push(Answer::Message(body));
    }
    pub fn push_packet_out(&mut self, p: ofp13::InlinePacketOut) {
        self.0.push(Answer::PacketOut(p));
    }
    pub fn extend(&mut self, bodies: impl IntoIterator<Item = Body>) {
        self.0.extend(bodies.into_iter().map(Answer::Message));
    }
    pub fn as_slice(&self) -> &[Answer] {
        &self.0
    }
    /// Takes every answer out, keeping the list's room.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Answer> {
        self.0.drain(..)
    }
    /// Takes every answer out as a message (for tests and tools).
    pub fn drain_bodies(&mut self) -> impl Iterator<Item = Body> + '_ {
        self.0.drain(..).map(Answer::into_body)
    }
}

/// An app that does nothing: the runtime alone, for tests and for switches with no policy.
pub struct NoApp;
impl App for NoApp {}

/// Runtime settings (from flags and the topology file).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub session: SessionConfig,
    /// Accept switches whose datapath id is not in the topology (as unmanaged).
    pub accept_unmanaged: bool,
    /// Commands a handle may queue before `send` waits.
    pub command_queue: usize,
    /// A switch that has not read what was sent to it for this long is disconnected.
    pub write_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            session: SessionConfig::default(),
            accept_unmanaged: false,
            command_queue: 1024,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Why a handle could not reach its switch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("switch {0} is not connected")]
pub struct Disconnected(pub Dpid);

enum Command {
    Send(Vec<Body>),
    Request(Body, oneshot::Sender<Result<Vec<Message>, ReplyError>>),
}

/// What the registry knows about a connected switch.
#[derive(Debug)]
pub struct SwitchInfo {
    pub dpid: Dpid,
    pub peer: SocketAddr,
    pub managed: bool,
    pub n_tables: u8,
    pub connected_at: std::time::SystemTime,
    ports: RwLock<BTreeMap<u32, Port>>,
}

impl SwitchInfo {
    /// A snapshot of the switch's ports.
    pub fn ports(&self) -> Vec<Port> {
        self.ports
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// A cheap, cloneable way to talk to one connected switch.
#[derive(Clone)]
pub struct SwitchHandle {
    pub info: Arc<SwitchInfo>,
    conn_id: u64,
    tx: mpsc::Sender<Command>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for SwitchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchHandle")
            .field("dpid", &self.info.dpid)
            .field("conn_id", &self.conn_id)
            .finish()
    }
}

impl SwitchHandle {
    pub fn dpid(&self) -> Dpid {
        self.info.dpid
    }

    /// Queues messages for the switch, in order, with no reply expected.
    pub async fn send(&self, batch: Vec<Body>) -> Result<(), Disconnected> {
        self.tx
            .send(Command::Send(batch))
            .await
            .map_err(|_| Disconnected(self.info.dpid))
    }

    /// Sends one message and waits for its reply (every part of a multipart reply), or the
    /// switch's error for it.
    pub async fn request(&self, body: Body) -> Result<Vec<Message>, ReplyError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Request(body, tx))
            .await
            .map_err(|_| ReplyError::Closed)?;
        rx.await.unwrap_or(Err(ReplyError::Closed))
    }

    /// Waits until the switch has processed everything sent before.
    pub async fn barrier(&self) -> Result<(), ReplyError> {
        self.request(Body::BarrierRequest).await.map(|_| ())
    }

    /// Whether the connection behind this handle has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Connected switches by datapath id. Cloning it is cheap and gives the same registry: the
/// controller fills it, and an app given a clone at its construction reaches every switch
/// through it (no reference back to the controller).
#[derive(Default, Clone)]
pub struct Registry {
    switches: Arc<DashMap<u64, SwitchHandle>>,
}

impl Registry {
    pub fn get(&self, dpid: u64) -> Option<SwitchHandle> {
        self.switches.get(&dpid).map(|h| h.clone())
    }
    pub fn len(&self) -> usize {
        self.switches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.switches.is_empty()
    }
    /// Every connected switch, by datapath id.
    pub fn all(&self) -> Vec<SwitchHandle> {
        let mut v: Vec<SwitchHandle> = self.switches.iter().map(|e| e.value().clone()).collect();
        v.sort_by_key(|h| h.info.dpid);
        v
    }
    /// Puts `h` in place; returns the session it replaces. Connections can finish their
    /// handshakes out of order: if the entry already belongs to a newer connection (higher
    /// `conn_id`), nothing changes and that connection is returned as the error.
    fn insert(&self, h: SwitchHandle) -> Result<Option<SwitchHandle>, SwitchHandle> {
        use dashmap::mapref::entry::Entry;
        match self.switches.entry(h.info.dpid.0) {
            Entry::Occupied(e) if e.get().conn_id > h.conn_id => Err(e.get().clone()),
            Entry::Occupied(mut e) => Ok(Some(e.insert(h))),
            Entry::Vacant(e) => {
                e.insert(h);
                Ok(None)
            }
        }
    }
    /// Removes the entry only if it still belongs to connection `conn_id`.
    fn remove_if_owner(&self, dpid: u64, conn_id: u64) -> bool {
        self.switches
            .remove_if(&dpid, |_, h| h.conn_id == conn_id)
            .is_some()
    }
}

/// Everything connection tasks share.
pub struct Controller {
    pub topology: Arc<Topology>,
    pub registry: Registry,
    pub metrics: Metrics,
    pub config: RuntimeConfig,
    app: Arc<dyn App>,
    next_conn: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Controller {
    pub fn new(topology: Topology, config: RuntimeConfig, app: Arc<dyn App>) -> Arc<Self> {
        Self::with_registry(topology, config, app, Registry::default())
    }

    /// A controller that fills `registry`, which the app holds a clone of.
    pub fn with_registry(
        topology: Topology,
        config: RuntimeConfig,
        app: Arc<dyn App>,
        registry: Registry,
    ) -> Arc<Self> {
        Arc::new(Controller {
            topology: Arc::new(topology),
            registry,
            metrics: Metrics::default(),
            config,
            app,
            next_conn: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// Accepts switches on `listener` until shutdown; TLS when `tls` is given.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<()> {
        loop {
            let (sock, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than spin.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.shutdown.cancelled() => return Ok(()),
            };
            let _ = sock.set_nodelay(true);
            self.metrics.connections_accepted.fetch_add(1, Relaxed);
            let ctl = Arc::clone(self);
            match tls.clone() {
                None => {
                    self.tasks
                        .spawn(async move { ctl.connection(sock, peer).await });
                }
                Some(acceptor) => {
                    self.tasks.spawn(async move {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock));
                        match handshake.await {
                            Ok(Ok(stream)) => ctl.connection(stream, peer).await,
                            Ok(Err(e)) => {
                                ctl.metrics.tls_failures.fetch_add(1, Relaxed);
                                ctl.metrics.connections_closed.fetch_add(1, Relaxed);
                                warn!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                ctl.metrics.tls_failures.fetch_add(1, Relaxed);
                                ctl.metrics.connections_closed.fetch_add(1, Relaxed);
                                warn!(%peer, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
    }

    /// Asks every task to stop and waits (at most `grace`) for them.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.tasks.len(),
                "connections still open after the grace period"
            );
        }
    }

    /// A token cancelled when the controller shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Live connection tasks (for leak checks).
    pub fn live_connections(&self) -> usize {
        self.tasks.len()
    }

    /// Runs one switch connection to its end.
    pub async fn connection<S>(self: Arc<Self>, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let conn_id = self.next_conn.fetch_add(1, Relaxed);
        let span =
            tracing::info_span!("switch", %peer, conn = conn_id, dpid = tracing::field::Empty);
        let reason = Conn::new(&self, stream, peer, conn_id, span.clone())
            .run()
            .instrument(span.clone())
            .await;
        self.metrics.connections_closed.fetch_add(1, Relaxed);
        span.in_scope(|| debug!(%reason, "connection closed"));
    }
}

/// The state of one connection task.
struct Conn<'a, S> {
    ctl: &'a Arc<Controller>,
    stream: S,
    peer: SocketAddr,
    conn_id: u64,
    span: tracing::Span,
    session: Session,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// The app's answers to one message (reused).
    answers: Answers,
    waiters: HashMap<u32, oneshot::Sender<Result<Vec<Message>, ReplyError>>>,
    handle: Option<SwitchHandle>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    /// Set by [`Conn::process_events`] when the session has ended.
    closed: Option<String>,
    /// Sent messages not yet added to the shared counters.
    out_tally: Tally,
    /// When the events the session queues were read (the last read of the socket, a
    /// command's or a timer's arrival): the time the app is given with them.
    read_at: Instant,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conn<'a, S> {
    fn new(
        ctl: &'a Arc<Controller>,
        stream: S,
        peer: SocketAddr,
        conn_id: u64,
        span: tracing::Span,
    ) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::channel(ctl.config.command_queue.max(1));
        Conn {
            session: Session::new(Instant::now(), ctl.config.session.clone()),
            ctl,
            stream,
            peer,
            conn_id,
            span,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(4 * 1024),
            answers: Answers::with_capacity(4),
            waiters: HashMap::new(),
            handle: None,
            cmd_tx,
            cmd_rx,
            cancel: ctl.shutdown.child_token(),
            closed: None,
            out_tally: Tally::default(),
            read_at: Instant::now(),
        }
    }

    async fn run(mut self) -> String {
        // One timer for the connection's life. It is moved only when the session needs to
        // wake earlier than it is set for; a deadline that moved later (the echo probe after
        // every message received) is met by waking early and asking the session again,
        // which costs one spurious wake-up per interval instead of a timer re-registration
        // per message.
        let far = || Instant::now() + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far().into());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        // Polled in every turn's select, so made once: a fresh `cancelled()` per turn
        // would register with the token's tree (a lock) and deregister again each time.
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let reason = loop {
            // Events first: the app's answers to them join the transmit queue, and the flush
            // below sends them now, not at the next wake-up.
            self.process_events();
            if let Some(r) = self.closed.take() {
                break r;
            }
            if let Err(e) = self.flush().await {
                self.session
                    .close(CloseReason::Local(format!("write failed: {e}")));
            }
            if self.session.state() == SessionState::Closed {
                // close() queued Event::Closed: the next turn reports it and ends the loop.
                continue;
            }
            let wake = self.session.poll_timeout().unwrap_or_else(far);
            if armed.is_none_or(|a| wake < a) {
                timer.as_mut().reset(wake.into());
                armed = Some(wake);
            }
            tokio::select! {
                r = self.stream.read_buf(&mut self.rbuf) => match r {
                    Ok(0) => self.session.close(CloseReason::Local("switch closed the connection".into())),
                    Ok(_) => self.decode(),
                    Err(e) => self.session.close(CloseReason::Local(format!("read failed: {e}"))),
                },
                Some(cmd) = self.cmd_rx.recv() => self.command(cmd),
                _ = &mut timer => {
                    armed = None;
                    self.read_at = Instant::now();
                    self.session.handle_timeout(self.read_at);
                }
                _ = &mut cancelled => {
                    let why = if self.ctl.shutdown.is_cancelled() {
                        "controller shutting down"
                    } else {
                        "replaced by a newer connection from the same switch"
                    };
                    self.session.close(CloseReason::Local(why.into()));
                }
            }
        };
        // Best effort: say goodbye (e.g. HELLO_FAILED) before the socket drops.
        let _ = self.flush().await;
        // A TLS close_notify is a write too: bounded like every write.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        self.cleanup();
        reason
    }

    /// Decodes every whole message in the read buffer and feeds the session.
    fn decode(&mut self) {
        // One clock read and one update of the shared counters per read, not per message.
        let now = Instant::now();
        self.read_at = now;
        let mut tally = Tally::default();
        self.decode_batch(now, &mut tally);
        self.ctl.metrics.messages_in_batch(&mut tally);
    }

    fn decode_batch(&mut self, now: Instant, tally: &mut Tally) {
        loop {
            if self.packet_in_in_place(now, tally) {
                continue;
            }
            match ofp13::decode_frame(&mut self.rbuf, MAX_MESSAGE_LEN) {
                Ok(Some(msg)) => {
                    tally.count(msg.body.msg_type());
                    if let Body::Error(e) = &msg.body {
                        self.ctl.metrics.switch_errors.fetch_add(1, Relaxed);
                        let (t, _) = e.names();
                        debug!(xid = msg.xid, error = %format!("{t} {}", ofp13::names::error_code_name(e.err_type, e.code)), "switch error");
                    }
                    self.session.handle_message(msg, now);
                    // Answer it and encode the answer now: the message and the answer are
                    // freed before the next is decoded, so a batch of hundreds reuses the
                    // same few allocations (the allocator's per-thread cache) instead of
                    // holding hundreds at once (17% of the time went to malloc/free).
                    self.process_events();
                    self.encode();
                }
                Ok(None) => return,
                Err(DecodeError::BadVersion { version, msg_type }) => {
                    self.foreign_version(version, msg_type, now);
                    return;
                }
                Err(
                    e @ (DecodeError::BadLength {
                        what: "ofp_header", ..
                    }
                    | DecodeError::TooLong { .. }),
                ) => {
                    // The stream cannot be re-synchronised.
                    self.ctl.metrics.decode_errors.fetch_add(1, Relaxed);
                    self.session.close(CloseReason::Protocol(format!(
                        "unusable message framing: {e}"
                    )));
                    return;
                }
                Err(e) => {
                    // One malformed message: it was consumed; report it and go on.
                    self.ctl.metrics.decode_errors.fetch_add(1, Relaxed);
                    warn!(error = %e, "malformed message from switch ignored");
                }
            }
        }
    }

    /// The common message, a PACKET_IN whole at the front of the read buffer, read in
    /// place ([`ofp13::PacketInView`]) and handed to the app, its answers encoded at once;
    /// then consumed. False (nothing consumed) for anything else, or when the session cannot
    /// take it now ([`Session::deliver_in_place`]): the general decoder then has it.
    fn packet_in_in_place(&mut self, now: Instant, tally: &mut Tally) -> bool {
        let Some(h) = Header::peek(&self.rbuf) else {
            return false;
        };
        let len = usize::from(h.length);
        if h.msg_type != ofp13::message::OFPT_PACKET_IN {
            return false;
        }
        let (Some(handle), Some(msg)) = (&self.handle, self.rbuf.get(..len)) else {
            return false;
        };
        let Some(pi) = ofp13::PacketInView::parse(msg) else {
            return false;
        };
        if !self.session.deliver_in_place(now) {
            return false;
        }
        tally.count(ofp13::message::OFPT_PACKET_IN);
        self.ctl
            .app
            .packet_in(handle, msg, &pi, now, &mut self.answers);
        self.send_answers();
        self.rbuf.advance(len);
        true
    }

    /// A message in another OpenFlow version: a HELLO still negotiates; anything else ends.
    fn foreign_version(&mut self, version: u8, msg_type: u8, now: Instant) {
        let hello = Header::peek(&self.rbuf)
            .filter(|h| {
                h.msg_type == ofp13::message::OFPT_HELLO && self.rbuf.len() >= h.length as usize
            })
            .and_then(|h| {
                let frame = self.rbuf.split_to(h.length as usize).freeze();
                let body = frame.slice(ofp13::HEADER_LEN.min(frame.len())..);
                ofp13::Hello::parse(&mut ofp13::wire::Reader::new(&body, "hello")).ok()
            });
        match hello {
            Some(h) => {
                self.session.handle_foreign_hello(version, &h, now);
                if self.session.state() == SessionState::Closed {
                    self.ctl.metrics.switches_refused.fetch_add(1, Relaxed);
                    let mut offered = h.versions();
                    if offered.is_empty() {
                        offered.push(version);
                    }
                    warn!(peer = %self.peer, ?offered,
                        "refusing switch: it does not speak OpenFlow 1.3 (set protocols=OpenFlow13 on the bridge)");
                } else {
                    self.decode();
                }
            }
            None if msg_type == ofp13::message::OFPT_HELLO => {} // wait for the rest of it
            None => {
                self.session.handle_foreign_message(version, msg_type);
                self.ctl.metrics.switches_refused.fetch_add(1, Relaxed);
                warn!(peer = %self.peer, version, "refusing switch: it does not speak OpenFlow 1.3");
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        self.read_at = now;
        match cmd {
            Command::Send(batch) => {
                for b in batch {
                    self.session.send(b);
                }
            }
            Command::Request(body, tx) => {
                if self.session.state() == SessionState::Closed {
                    let _ = tx.send(Err(ReplyError::Closed));
                    return;
                }
                let xid = self.session.request(body, now);
                self.waiters.insert(xid, tx);
            }
        }
    }

    /// Moves the session's queued messages into the write buffer.
    fn encode(&mut self) {
        while let Some(m) = self.session.poll_transmit() {
            self.out_tally.count(m.body.msg_type());
            m.emit(&mut self.wbuf);
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.encode();
        self.ctl.metrics.messages_out_batch(&mut self.out_tally);
        if self.wbuf.is_empty() {
            return Ok(());
        }
        // A switch that stops reading must not wedge this task: the write gives up after
        // WRITE_TIMEOUT or when the connection is cancelled (shutdown, replaced). Biased,
        // and the timer inside `timeout`: a write that completes at once (the usual case)
        // never registers the timer or the cancellation waiter.
        let write = async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        };
        let wt = self.ctl.config.write_timeout;
        let r = tokio::select! {
            biased;
            r = tokio::time::timeout(wt, write) => r.unwrap_or_else(|_| Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the switch has not read what was sent to it for {wt:?}"),
            ))),
            _ = self.cancel.cancelled() => Err(std::io::Error::other("connection cancelled while writing")),
        };
        self.wbuf.clear();
        if self.wbuf.capacity() > 1 << 20 {
            self.wbuf.shrink_to(64 * 1024);
        }
        r
    }

    /// Sends the app's answers, each straight into the write buffer when nothing waits
    /// ahead of it ([`Session::send_into`]).
    fn send_answers(&mut self) {
        for a in self.answers.drain() {
            let (t, sent) = match a {
                Answer::Message(b) => (b.msg_type(), self.session.send_into(b, &mut self.wbuf)),
                Answer::PacketOut(p) => (
                    ofp13::message::OFPT_PACKET_OUT,
                    self.session.send_packet_out_into(&p, &mut self.wbuf),
                ),
            };
            if sent {
                self.out_tally.count(t);
            }
        }
    }

    /// Handles session events; sets [`Conn::closed`] once the session has ended.
    fn process_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Up { features, ports } => self.up(features, ports),
                Event::Async(msg) => {
                    if let Some(h) = &self.handle {
                        self.ctl
                            .app
                            .message(h, &msg, self.read_at, &mut self.answers);
                        self.send_answers();
                    }
                }
                Event::PortStatus(ps) => {
                    if let Some(h) = &self.handle {
                        if let Ok(mut ports) = h.info.ports.write() {
                            *ports = self.session.ports().clone();
                        }
                        info!(port = ps.desc.port_no, name = %ps.desc.name, reason = ps.reason, up = ps.desc.is_up(), "port status");
                        let msg = Message::new(0, Body::PortStatus(ps));
                        self.ctl
                            .app
                            .message(h, &msg, self.read_at, &mut self.answers);
                        self.send_answers();
                    }
                }
                Event::Reply { xid, result } => {
                    if let Some(tx) = self.waiters.remove(&xid) {
                        let _ = tx.send(result);
                    }
                }
                Event::Closed(reason) => {
                    match &reason {
                        CloseReason::Local(_) => info!(%reason, "switch disconnected"),
                        _ => warn!(%reason, "switch disconnected"),
                    }
                    self.closed.get_or_insert_with(|| reason.to_string());
                }
            }
        }
    }

    fn up(&mut self, features: ofp13::SwitchFeatures, ports: Vec<Port>) {
        let dpid = Dpid(features.datapath_id);
        self.span.record("dpid", tracing::field::display(dpid));
        let name = self
            .ctl
            .topology
            .switch_by_dpid(dpid.0)
            .map(|s| s.name.clone());
        let managed = name.is_some();
        if !managed && !self.ctl.config.accept_unmanaged {
            self.ctl.metrics.switches_refused.fetch_add(1, Relaxed);
            warn!("refusing switch: datapath id {dpid} is not in the topology (add it, or run with --accept-unmanaged)");
            self.session
                .close(CloseReason::Protocol(format!("unknown datapath id {dpid}")));
            return;
        }
        self.ctl.metrics.handshakes_completed.fetch_add(1, Relaxed);
        let info = Arc::new(SwitchInfo {
            dpid,
            peer: self.peer,
            managed,
            n_tables: features.n_tables,
            connected_at: std::time::SystemTime::now(),
            ports: RwLock::new(ports.iter().map(|p| (p.port_no, p.clone())).collect()),
        });
        let handle = SwitchHandle {
            info,
            conn_id: self.conn_id,
            tx: self.cmd_tx.clone(),
            cancel: self.cancel.clone(),
        };
        match self.ctl.registry.insert(handle.clone()) {
            Ok(Some(old)) => {
                self.ctl.metrics.switches_replaced.fetch_add(1, Relaxed);
                info!(old_peer = %old.info.peer, "switch reconnected: replacing its previous session");
                old.cancel.cancel();
            }
            Ok(None) => {}
            Err(newer) => {
                // This connection is older than the registered one: it is the stale one.
                self.ctl.metrics.switches_replaced.fetch_add(1, Relaxed);
                info!(newer_peer = %newer.info.peer, "a newer connection from this switch is already up: closing this one");
                self.session.close(CloseReason::Local(
                    "superseded by a newer connection from the same switch".into(),
                ));
                return;
            }
        }
        info!(
            name = name.as_deref().unwrap_or("(unmanaged)"),
            ports = ports.len(),
            tables = features.n_tables,
            "switch connected"
        );
        for b in self.ctl.app.switch_up(&handle) {
            self.session.send(b);
        }
        self.handle = Some(handle);
    }

    fn cleanup(&mut self) {
        for (_, tx) in self.waiters.drain() {
            let _ = tx.send(Err(ReplyError::Closed));
        }
        if let Some(h) = self.handle.take() {
            if self
                .ctl
                .registry
                .remove_if_owner(h.info.dpid.0, self.conn_id)
            {
                self.ctl.app.switch_down(h.info.dpid.0);
            }
        }
        self.cmd_rx.close();
    }
}
