//! The runtime end to end, in process: a `Controller` on 127.0.0.1:0 and emulated switches
//! (`servswitch::emu::switch`) connecting to it over real sockets.
//!
//! Every wait is a polled condition with a deadline (`eventually`, `within`), never a sleep.
//! The reconnect-storm test counts the process's file descriptors, which every test shares;
//! it takes [`GATE`] exclusively while the others hold it shared.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ofp13::message::{OFPT_ECHO_REQUEST, OFPT_ERROR, OFPT_FLOW_MOD};
use ofp13::{Body, Message, MultipartReply, MultipartReplyBody, MultipartRequest};
use ofp13::{MultipartRequestBody, PacketIn, OFPMPF_MORE};
use servswitch::emu::switch::{
    self as emu, Closed, EmuConfig, EmuSwitch, EmuTls, Status, SwitchSpec,
};
use servswitch::fabric::topology::{Dpid, SwitchConf, Tier, Topology};
use servswitch::switch::runtime::{Answers, App, Controller, NoApp, RuntimeConfig, SwitchHandle};
use servswitch::switch::session::{ReplyError, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds; fails the test after [`DEADLINE`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Awaits `fut`; fails the test after [`DEADLINE`].
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

fn topology(dpids: &[u64]) -> Topology {
    Topology {
        switches: dpids
            .iter()
            .map(|&d| SwitchConf {
                name: format!("s{d}"),
                dpid: Dpid(d),
                tier: Tier::Access,
            })
            .collect(),
        ..Topology::default()
    }
}

struct Harness {
    ctl: Arc<Controller>,
    addr: SocketAddr,
    serve: JoinHandle<std::io::Result<()>>,
}

async fn start_with(
    dpids: &[u64],
    config: RuntimeConfig,
    app: Arc<dyn App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Harness {
    let ctl = Controller::new(topology(dpids), config, app);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = Arc::clone(&ctl);
    let serve = tokio::spawn(async move { c.serve(listener, tls).await });
    Harness { ctl, addr, serve }
}

async fn start(dpids: &[u64]) -> Harness {
    start_with(dpids, RuntimeConfig::default(), Arc::new(NoApp), None).await
}

impl Harness {
    async fn switch(&self, spec: SwitchSpec) -> EmuSwitch {
        emu::connect(EmuConfig::new(self.addr, spec)).await.unwrap()
    }

    /// Connects, waits until the switch is up and registered; returns it and its handle.
    async fn switch_up(&self, spec: SwitchSpec) -> (EmuSwitch, SwitchHandle) {
        let dpid = spec.dpid;
        let sw = self.switch(spec).await;
        within("the switch to be up", sw.wait_until_up())
            .await
            .unwrap();
        let local = sw.local_addr();
        eventually("the registry has the switch", || {
            self.ctl
                .registry
                .get(dpid)
                .is_some_and(|h| h.info.peer == local)
        })
        .await;
        let h = self.ctl.registry.get(dpid).unwrap();
        (sw, h)
    }
}

/// `GET path` over a raw TCP stream: status and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    within("the HTTP response", s.read_to_end(&mut buf))
        .await
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn start_api(ctl: &Arc<Controller>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let token = ctl.shutdown_token();
    tokio::spawn(servswitch::api::handlers::serve(
        ctl.clone(),
        l,
        async move { token.cancelled().await },
    ));
    addr
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

fn packet_in(n: u8) -> Message {
    Message::new(
        0,
        Body::PacketIn(PacketIn::unbuffered(1, ofp13::OFPR_NO_MATCH, vec![n])),
    )
}

fn closed_by_controller(c: &Closed) -> bool {
    c.by_peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_registry_api_and_metrics() {
    let _g = GATE.read().await;
    let h = start(&[1, 2]).await;
    let (s1, _) = h.switch_up(SwitchSpec::new(1).with_ports(3)).await;
    let (s2, h2) = h
        .switch_up(SwitchSpec::new(2).with_ports(40).ports_per_reply(16))
        .await;
    assert_eq!(h.ctl.registry.len(), 2);
    // Reassembled from three PORT_DESC parts during the handshake.
    assert_eq!(h2.info.ports().len(), 40);
    assert_eq!(h2.info.n_tables, 254);
    assert!(h2.info.managed);
    assert_eq!(
        s1.miss_send_len(),
        Some(0xffff),
        "SET_CONFIG reached the switch"
    );
    assert_eq!(s2.miss_send_len(), Some(0xffff));

    let api = start_api(&h.ctl).await;
    let (status, body) = http_get(api, "/api/v1/switches").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sw = v.as_array().unwrap();
    assert_eq!(sw.len(), 2);
    for (s, (dpid, ports, emu)) in sw.iter().zip([(1, 3, &s1), (2, 40, &s2)]) {
        assert_eq!(s["dpid"], dpid);
        assert_eq!(s["name"], format!("s{dpid}"));
        assert_eq!(s["connected"], true);
        assert_eq!(s["managed"], true);
        assert_eq!(s["peer"], emu.local_addr().to_string());
        assert_eq!(s["ports"].as_array().unwrap().len(), ports);
    }
    assert_eq!(sw[1]["ports"][39]["name"], "eth40");
    assert_eq!(sw[1]["ports"][39]["up"], true);

    let (status, m) = http_get(api, "/metrics").await;
    assert_eq!(status, 200);
    let rx = |t: &str| {
        metric(
            &m,
            &format!("servswitch_messages_received_total{{type=\"{t}\"}}"),
        )
    };
    let tx = |t: &str| {
        metric(
            &m,
            &format!("servswitch_messages_sent_total{{type=\"{t}\"}}"),
        )
    };
    assert_eq!(rx("OFPT_HELLO"), 2);
    assert_eq!(rx("OFPT_FEATURES_REPLY"), 2);
    assert_eq!(
        rx("OFPT_MULTIPART_REPLY"),
        1 + 3,
        "1 part for 3 ports, 3 for 40"
    );
    assert_eq!(rx("OFPT_BARRIER_REPLY"), 2);
    assert_eq!(tx("OFPT_HELLO"), 2);
    assert_eq!(tx("OFPT_FEATURES_REQUEST"), 2);
    assert_eq!(tx("OFPT_SET_CONFIG"), 2);
    assert_eq!(tx("OFPT_MULTIPART_REQUEST"), 2);
    assert_eq!(tx("OFPT_BARRIER_REQUEST"), 2);
    assert_eq!(metric(&m, "servswitch_switches_connected"), 2);
    assert_eq!(metric(&m, "servswitch_handshakes_completed_total"), 2);
    assert_eq!(metric(&m, "servswitch_switches_refused_total"), 0);

    // A datapath id the topology does not name is refused: the controller closes.
    let stranger = h.switch(SwitchSpec::new(99)).await;
    let c = within("the stranger to be closed", stranger.wait_closed()).await;
    assert!(closed_by_controller(&c), "{c:?}");
    assert!(h.ctl.registry.get(99).is_none());
    assert_eq!(h.ctl.registry.len(), 2);
    assert_eq!(h.ctl.metrics.switches_refused.load(Relaxed), 1);
    let (_, m) = http_get(api, "/metrics").await;
    assert_eq!(metric(&m, "servswitch_switches_refused_total"), 1);
    // The managed switches were not disturbed.
    assert_eq!(s1.status(), Status::Up);
    assert_eq!(s2.status(), Status::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dpid_accepted_as_unmanaged_when_allowed() {
    let _g = GATE.read().await;
    let config = RuntimeConfig {
        accept_unmanaged: true,
        ..RuntimeConfig::default()
    };
    let h = start_with(&[1], config, Arc::new(NoApp), None).await;
    let (sw, handle) = h.switch_up(SwitchSpec::new(99).with_ports(2)).await;
    assert!(!handle.info.managed);
    let api = start_api(&h.ctl).await;
    let (_, body) = http_get(api, "/api/v1/switches").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 2, "the topology's switch, then the unmanaged one");
    assert_eq!(v[0]["connected"], false);
    assert_eq!(v[1]["dpid"], 99);
    assert_eq!(v[1]["managed"], false);
    assert_eq!(v[1]["connected"], true);
    assert_eq!(v[1]["ports"].as_array().unwrap().len(), 2);
    assert_eq!(h.ctl.metrics.switches_refused.load(Relaxed), 0);
    assert_eq!(sw.status(), Status::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openflow_10_switch_gets_hello_failed_and_is_disconnected() {
    let _g = GATE.read().await;
    let h = start(&[1]).await;
    let sw = h.switch(SwitchSpec::new(1).of10_only()).await;
    let c = within("the 1.0 switch to be closed", sw.wait_closed()).await;
    assert!(closed_by_controller(&c) && !c.was_up, "{c:?}");
    let got = sw.received();
    let errors: Vec<_> = got
        .iter()
        .filter_map(|m| match &m.body {
            Body::Error(e) => Some((e.err_type, e.code)),
            _ => None,
        })
        .collect();
    assert_eq!(errors, [(0, 0)], "HELLO_FAILED/INCOMPATIBLE; got {got:?}");
    assert!(
        !got.iter().any(|m| matches!(m.body, Body::FeaturesRequest)),
        "no handshake with a 1.0 switch"
    );
    assert!(h.ctl.registry.is_empty());
    assert_eq!(h.ctl.metrics.switches_refused.load(Relaxed), 1);
    eventually("the connection task ended", || {
        h.ctl.live_connections() == 0
    })
    .await;
}

/// Records what the controller's app sees, in order.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

impl Recorder {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

impl App for Recorder {
    fn switch_up(&self, sw: &SwitchHandle) -> Vec<Body> {
        self.push(format!("up {}", sw.dpid().0));
        Vec::new()
    }
    fn message(&self, _sw: &SwitchHandle, msg: &Message, _read: Instant, _out: &mut Answers) {
        match &msg.body {
            Body::PacketIn(p) => self.push(format!("packet_in {}", p.data[0])),
            b => self.push(b.name().to_string()),
        }
    }
    fn packet_in(
        &self,
        _sw: &SwitchHandle,
        _msg: &[u8],
        pi: &ofp13::PacketInView<'_>,
        _read: Instant,
        _out: &mut Answers,
    ) {
        self.push(format!("packet_in {} in place", pi.data[0]));
    }
    fn switch_down(&self, dpid: u64) {
        self.push(format!("down {dpid}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_in_racing_the_handshake_reaches_the_app_after_switch_up() {
    let _g = GATE.read().await;
    let app = Arc::new(Recorder::default());
    let h = start_with(&[5], RuntimeConfig::default(), app.clone(), None).await;
    let mut spec = SwitchSpec::new(5);
    // Written in the same segment as the HELLO: the controller reads them before it has even
    // sent FEATURES_REQUEST, so the session holds them (decoded) until the switch is up; a
    // packet-in of a switch that is up is read in place.
    spec.after_hello = vec![packet_in(1), packet_in(2)];
    let (mut sw, _) = h.switch_up(spec).await;
    sw.send(packet_in(3));
    eventually("the app saw three packet-ins", || app.log().len() >= 4).await;
    assert_eq!(
        app.log(),
        ["up 5", "packet_in 1", "packet_in 2", "packet_in 3 in place"]
    );
    sw.close().await;
    eventually("switch_down", || app.log().len() == 5).await;
    assert_eq!(app.log()[4], "down 5");
}

/// A malformed PACKET_IN is not read in place: the general decoder counts it and drops it,
/// the connection goes on, and the next packet-in is read in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_packet_in_is_dropped_and_the_next_one_read_in_place() {
    let _g = GATE.read().await;
    let app = Arc::new(Recorder::default());
    let h = start_with(&[6], RuntimeConfig::default(), app.clone(), None).await;
    let (sw, _) = h.switch_up(SwitchSpec::new(6)).await;
    // The match's type (offset 24: after the header and 16 bytes of packet-in) made 0,
    // OFPMT_STANDARD, which OpenFlow 1.3 does not have.
    let mut bad = packet_in(1).to_bytes();
    bad[24..26].copy_from_slice(&0u16.to_be_bytes());
    assert!(Message::parse_slice(&bad).is_err());
    let errors = h.ctl.metrics.decode_errors.load(Relaxed);
    sw.send_bytes(bad);
    sw.send(packet_in(2));
    eventually("the good packet-in", || app.log().len() >= 2).await;
    assert_eq!(app.log(), ["up 6", "packet_in 2 in place"]);
    assert_eq!(h.ctl.metrics.decode_errors.load(Relaxed), errors + 1);
    assert!(matches!(sw.status(), Status::Up), "the connection goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_multipart_barrier_error_and_close() {
    let _g = GATE.read().await;
    let h = start(&[7]).await;
    let (mut sw, handle) = h
        .switch_up(SwitchSpec::new(7).with_ports(40).ports_per_reply(16))
        .await;

    let parts = within(
        "the port-desc reply",
        handle.request(Body::MultipartRequest(MultipartRequest::new(
            MultipartRequestBody::PortDesc,
        ))),
    )
    .await
    .unwrap();
    let shape: Vec<(u16, usize)> = parts
        .iter()
        .map(|m| match &m.body {
            Body::MultipartReply(MultipartReply {
                flags,
                body: MultipartReplyBody::PortDesc(p),
            }) => (*flags, p.len()),
            b => panic!("unexpected {b:?}"),
        })
        .collect();
    assert_eq!(shape, [(OFPMPF_MORE, 16), (OFPMPF_MORE, 16), (0, 8)]);

    within("the barrier", handle.barrier()).await.unwrap();

    // A statistic the emulated switch does not keep: it answers OFPT_ERROR.
    let r = within(
        "the table-features reply",
        handle.request(Body::MultipartRequest(MultipartRequest::new(
            MultipartRequestBody::TableFeatures(Vec::new()),
        ))),
    )
    .await;
    match r {
        Err(ReplyError::Switch(e)) => {
            assert_eq!(
                (e.err_type, e.code),
                (ofp13::OFPET_BAD_REQUEST, ofp13::OFPBRC_BAD_MULTIPART)
            )
        }
        r => panic!("expected the switch's error, got {r:?}"),
    }
    assert_eq!(sw.count_received(OFPT_ERROR), 0);

    // A FLOW_MOD has no reply: the request stays pending until the switch disconnects.
    let pending = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle
                .request(Body::FlowMod(ofp13::FlowMod::default()))
                .await
        })
    };
    eventually("the switch received the flow mod", || {
        sw.count_received(OFPT_FLOW_MOD) == 1
    })
    .await;
    assert!(!pending.is_finished());
    sw.close().await;
    let r = within("the pending request", pending).await.unwrap();
    assert_eq!(r, Err(ReplyError::Closed));
    eventually("the registry forgot the switch", || {
        h.ctl.registry.is_empty()
    })
    .await;
    assert!(handle.is_closed());
    assert_eq!(handle.barrier().await, Err(ReplyError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_drops_a_silent_switch_and_keeps_an_answering_one() {
    let _g = GATE.read().await;
    let config = RuntimeConfig {
        session: SessionConfig {
            echo_interval: Duration::from_millis(100),
            echo_misses: 2,
            ..SessionConfig::default()
        },
        ..RuntimeConfig::default()
    };
    let h = start_with(&[1, 2], config, Arc::new(NoApp), None).await;
    let (talker, _) = h.switch_up(SwitchSpec::new(1)).await;
    let (mute, _) = h.switch_up(SwitchSpec::new(2)).await;
    mute.set_silent(true);
    let c = within("the silent switch to be dropped", mute.wait_closed()).await;
    assert!(closed_by_controller(&c) && c.was_up, "{c:?}");
    assert!(
        mute.count_received(OFPT_ECHO_REQUEST) >= 2,
        "dropped only after echo_misses unanswered probes"
    );
    eventually("the registry dropped the silent switch", || {
        h.ctl.registry.get(2).is_none()
    })
    .await;
    // The answering switch outlives several more probe rounds than the silent one had.
    let seen = talker.count_received(OFPT_ECHO_REQUEST);
    eventually("the answering switch got more probes", || {
        talker.count_received(OFPT_ECHO_REQUEST) >= seen + 4
    })
    .await;
    assert_eq!(talker.status(), Status::Up);
    assert!(h.ctl.registry.get(1).is_some());
}

/// Two connections from one datapath finish their handshakes out of order: the older one,
/// slow to answer, completes last. The newer connection keeps the registry entry and the stale
/// one is closed (before the fix, the older one replaced the newer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_connection_finishing_last_does_not_replace_the_newer() {
    let _g = GATE.read().await;
    let app = Arc::new(Recorder::default());
    let h = start_with(&[0x20], RuntimeConfig::default(), app.clone(), None).await;
    let slow = h.switch(SwitchSpec::new(0x20).paused()).await;
    eventually("the slow switch got FEATURES_REQUEST", || {
        slow.count_received(ofp13::message::OFPT_FEATURES_REQUEST) == 1
    })
    .await;
    let (fresh, handle) = h.switch_up(SwitchSpec::new(0x20)).await;
    slow.resume();
    let c = within("the stale connection to be closed", slow.wait_closed()).await;
    assert!(closed_by_controller(&c), "{c:?}");
    assert_eq!(
        h.ctl.metrics.handshakes_completed.load(Relaxed),
        2,
        "the slow switch did finish its handshake"
    );
    let now = h.ctl.registry.get(0x20).unwrap();
    assert_eq!(now.info.peer, fresh.local_addr());
    within("a barrier on the newer connection", handle.barrier())
        .await
        .unwrap();
    assert_eq!(fresh.status(), Status::Up);
    assert_eq!(
        app.log(),
        ["up 32"],
        "no switch_up or switch_down for the stale one"
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One datapath reconnects 1,000 times. Even rounds close the old socket first; odd rounds
/// leave it open, so the controller must cancel the replaced session and close it. Afterwards
/// nothing is left over: one registry entry, one connection task, and the process's tasks and
/// file descriptors back to where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_leaks_nothing() {
    const ROUNDS: usize = 1000;
    // Other tests' runtimes may start (an epoll fd, an eventfd) while this one runs.
    const FD_SLACK: usize = 8;
    const TASK_SLACK: usize = 2;
    let _g = GATE.write().await;
    let h = start(&[0x10]).await;
    let rt = tokio::runtime::Handle::current();
    let tasks_before = rt.metrics().num_alive_tasks();
    let fds_before = open_fds();

    let mut current: Option<EmuSwitch> = None;
    for round in 0..ROUNDS {
        let close_first = round % 2 == 0;
        if close_first {
            if let Some(mut old) = current.take() {
                old.close().await;
            }
        }
        let sw = h.switch(SwitchSpec::new(0x10)).await;
        within("the reconnected switch to be up", sw.wait_until_up())
            .await
            .unwrap_or_else(|c| panic!("round {round}: {c:?}"));
        if let Some(old) = current.take() {
            let what = format!("round {round}: the controller to close the replaced session");
            let c = within(&what, old.wait_closed()).await;
            assert!(closed_by_controller(&c), "round {round}: {c:?}");
        }
        current = Some(sw);
    }
    let last = current.unwrap();
    let local = last.local_addr();
    eventually("the registry holds the last connection", || {
        h.ctl
            .registry
            .get(0x10)
            .is_some_and(|s| s.info.peer == local)
    })
    .await;
    assert_eq!(h.ctl.registry.len(), 1);
    eventually("one live connection", || h.ctl.live_connections() == 1).await;
    // The last switch's task and its connection task are the only new ones.
    let what = format!("tasks back to the baseline ({tasks_before}) + 2");
    eventually(&what, || {
        rt.metrics().num_alive_tasks() <= tasks_before + 2 + TASK_SLACK
    })
    .await;
    // One socket on each side.
    let what = format!("file descriptors back to the baseline ({fds_before}) + 2");
    eventually(&what, || open_fds() <= fds_before + 2 + FD_SLACK).await;
    let m = &h.ctl.metrics;
    assert_eq!(m.handshakes_completed.load(Relaxed), ROUNDS as u64);
    assert!(m.switches_replaced.load(Relaxed) >= (ROUNDS / 2) as u64);
    assert_eq!(last.status(), Status::Up);
}

#[path = "common/certs.rs"]
mod certs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_requires_a_switch_certificate_signed_by_the_ca() {
    let _g = GATE.read().await;
    let ca = certs::Ca::new("servswitch test CA");
    let (ctl_cert, ctl_key) = ca.leaf_pem("localhost", false);
    let (sw_cert, sw_key) = ca.leaf_pem("switch-1", true);
    // Signed by a CA the controller does not trust.
    let (rogue_cert, rogue_key) = certs::Ca::new("someone else").leaf_pem("switch-1", true);
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str, text: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, text).unwrap();
        p
    };
    let acceptor = servswitch::switch::tls::acceptor(
        &path("ctl.pem", &ctl_cert),
        &path("ctl.key", &ctl_key),
        &path("ca.pem", &ca.pem),
    )
    .unwrap();
    let h = start_with(
        &[1],
        RuntimeConfig::default(),
        Arc::new(NoApp),
        Some(acceptor),
    )
    .await;
    let cfg = |tls| EmuConfig {
        addr: h.addr,
        spec: SwitchSpec::new(1),
        tls: Some(tls),
    };
    let ca_pem = ca.pem.as_bytes();

    // A CA-signed client certificate: handshake completes over TLS.
    let good = EmuTls::new(
        ca_pem,
        Some((sw_cert.as_bytes(), sw_key.as_bytes())),
        "localhost",
    )
    .unwrap();
    let sw = emu::connect(cfg(good)).await.unwrap();
    within("the TLS switch to be up", sw.wait_until_up())
        .await
        .unwrap();
    eventually("the TLS switch is registered", || {
        h.ctl.registry.get(1).is_some()
    })
    .await;
    assert_eq!(h.ctl.metrics.tls_failures.load(Relaxed), 0);

    // No client certificate, then a self-signed one: refused during the TLS handshake (the
    // client may or may not see the failure before the controller's alert arrives).
    let none = EmuTls::new(ca_pem, None, "localhost").unwrap();
    let rogue = EmuTls::new(
        ca_pem,
        Some((rogue_cert.as_bytes(), rogue_key.as_bytes())),
        "localhost",
    )
    .unwrap();
    for (n, tls) in [(1, none), (2, rogue)] {
        if let Ok(s) = emu::connect(cfg(tls)).await {
            let c = within("the refused switch to be closed", s.wait_closed()).await;
            assert!(closed_by_controller(&c) && !c.was_up, "{c:?}");
        }
        eventually("tls_failures counts the refusal", || {
            h.ctl.metrics.tls_failures.load(Relaxed) == n
        })
        .await;
    }
    assert_eq!(h.ctl.registry.len(), 1);
    assert_eq!(h.ctl.metrics.handshakes_completed.load(Relaxed), 1);
    assert_eq!(sw.status(), Status::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection() {
    let _g = GATE.read().await;
    let h = start(&[1, 2, 3]).await;
    let mut sws = Vec::new();
    for d in [1, 2, 3] {
        sws.push(h.switch_up(SwitchSpec::new(d)).await.0);
    }
    // And a connection still in its handshake: it has sent nothing yet.
    let idle = TcpStream::connect(h.addr).await.unwrap();
    eventually("four live connections", || h.ctl.live_connections() == 4).await;
    within("shutdown", h.ctl.shutdown(Duration::from_secs(5))).await;
    assert_eq!(h.ctl.live_connections(), 0);
    for sw in &sws {
        let c = within("the switch to be closed", sw.wait_closed()).await;
        assert!(closed_by_controller(&c), "{c:?}");
    }
    let served = within("the listener task", h.serve).await.unwrap();
    assert!(served.is_ok());
    drop(idle);
}

/// A switch that stops reading cannot wedge its connection: once the controller's writes have
/// waited `write_timeout`, the connection ends and the registry forgets the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_that_stops_reading_is_disconnected() {
    let config = RuntimeConfig {
        write_timeout: Duration::from_millis(300),
        ..RuntimeConfig::default()
    };
    let h = start_with(&[0x77], config, Arc::new(NoApp), None).await;
    // A hand-driven switch: the sans-io core answers the handshake, then nobody reads.
    let mut sock = TcpStream::connect(h.addr).await.unwrap();
    let mut core = emu::SwitchCore::new(SwitchSpec::new(0x77));
    let mut buf = bytes::BytesMut::new();
    sock.write_all(&Message::new(1, Body::Hello(ofp13::Hello::of13())).to_bytes())
        .await
        .unwrap();
    within("the handshake", async {
        while !core.is_up() {
            sock.read_buf(&mut buf).await.unwrap();
            while let Some(m) = ofp13::decode_frame(&mut buf, ofp13::MAX_MESSAGE_LEN).unwrap() {
                for r in core.handle(m) {
                    sock.write_all(&r.to_bytes()).await.unwrap();
                }
            }
        }
    })
    .await;
    eventually("the switch registered", || {
        h.ctl.registry.get(0x77).is_some()
    })
    .await;
    let handle = h.ctl.registry.get(0x77).unwrap();
    // Far more than the socket buffers hold: 64 MiB of packet-outs.
    let frame = Bytes::from(vec![0u8; 60_000]);
    let batch: Vec<Body> = (0..64)
        .map(|_| {
            Body::PacketOut(ofp13::PacketOut {
                buffer_id: ofp13::NO_BUFFER,
                in_port: ofp13::port::CONTROLLER,
                actions: vec![ofp13::Action::output(1)].into(),
                data: frame.clone(),
            })
        })
        .collect();
    for _ in 0..17 {
        if handle.send(batch.clone()).await.is_err() {
            break;
        }
    }
    eventually("the stuck connection ended", || {
        h.ctl.registry.get(0x77).is_none() && h.ctl.live_connections() == 0
    })
    .await;
    drop(sock);
    h.serve.abort();
}
