//! Traffic that tests run across an [`OvsFabric`] and measure: a TCP echo stream that must
//! survive (a migration, say) without a reconnect, a fast pinger that counts losses, and a
//! packet capture on hosts' interfaces without tcpdump (so a test can assert that an address,
//! e.g. a care-of address, never reaches any host).
//!
//! Everything runs as python3 or ping inside the hosts' namespaces; the scripts are the string
//! constants below, written to a temporary directory named with the fabric's prefix. Every
//! process is stopped again on drop, also when a test panics.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ovs_fabric::{python3, OvsFabric};

/// How long a stopping client may wait for the echoes still on their way.
const DRAIN_SECS: f64 = 2.0;

/// TCP echo server: `ECHO_SERVER PORT READY_FILE LOG_FILE`. Echoes every connection until
/// killed; logs `accepted PEER` and `closed PEER bytes=N WHY` lines.
pub const ECHO_SERVER: &str = include_str!("../traffic/echo_server.py");

/// TCP echo client: `ECHO_CLIENT DST PORT SECONDS STOP_FILE RESULT_FILE UP_FILE DRAIN`.
/// Connects once (no reconnect, ever), sends `%08d\n` every 10 ms and checks that the echoes
/// come back in order; stops after SECONDS (0: never), when STOP_FILE exists or on
/// SIGTERM/SIGINT, then waits up to DRAIN seconds for the echoes still missing. Touches UP_FILE
/// at the first echo; writes its report as JSON to RESULT_FILE (atomically) and exits 0.
/// Any socket error, EOF or wrong echo ends it with `open: false`.
pub const ECHO_CLIENT: &str = include_str!("../traffic/echo_client.py");

/// Sniffer: `SNIFFER IFNAME OUT_FILE READY_FILE`. One line per IPv4, ARP or RARP frame seen on
/// IFNAME (both directions): `UNIXTIME in|out ETHERTYPE SRC_MAC DST_MAC SRC DST PROTO TTL HEX`,
/// where for ARP/RARP SRC/DST are the sender/target protocol addresses, PROTO is the opcode
/// and TTL 0; HEX is the whole frame. Stops on SIGTERM after draining its socket.
pub const SNIFFER: &str = include_str!("../traffic/sniffer.py");

/// UDP source and sink: `UDP_FLOW recv PORT READY OUT` / `UDP_FLOW send DST PORT INTERVAL
/// STOP OUT`; each writes a JSON report at its end.
pub const UDP_FLOW: &str = include_str!("../traffic/udp_flow.py");

/// A hostile tenant's flood toward the controller: `FLOOD IFNAME MAC IP SUBNET KINDS SECONDS
/// SEED READY OUT` (see the script's header for the kinds: arp, rarp, garp, ipv4, ipv4src).
pub const FLOOD: &str = include_str!("../traffic/flood.py");

// ---------------------------------------------------------------------------------------
// Process plumbing

fn tempdir(fabric: &OvsFabric, what: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(&format!("{}-{what}-", fabric.prefix()))
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))
}

fn write_script(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

fn file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Sends a signal to one child (the child itself: `ip netns exec` execs its command).
fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `sig`, up to `grace` to exit, then SIGKILL. The exit status if it exited by itself.
fn terminate(child: &mut Child, sig: &str, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    signal(child, sig);
    if let Some(s) = wait_timeout(child, grace) {
        return Some(s);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Waits until `path` exists; fails early if `child` exits, or at the timeout.
fn wait_for_file(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
    what: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if path.exists() {
            return Ok(());
        }
        if let Ok(Some(s)) = child.try_wait() {
            if path.exists() {
                return Ok(());
            }
            return Err(format!("{what} exited ({s}) before it was ready"));
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} not ready after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// TCP echo stream

/// What [`TcpStream::stop`] reports.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StreamReport {
    /// The one connection attempt succeeded.
    pub connected: bool,
    /// No error, EOF or wrong echo until the end (the client never reconnects).
    pub open: bool,
    pub sent: u64,
    pub echoed: u64,
    /// Longest time without an echo: between two echoes, from the first message to the first
    /// echo, and from the last echo to the end when echoes were still missing.
    pub max_gap_ms: f64,
    /// Why the stream broke.
    pub error: Option<String>,
    pub duration_ms: f64,
    /// Connections the server accepted (1 for an unbroken stream).
    #[serde(default)]
    pub server_connections: u32,
    /// The server's log: `accepted` / `closed` lines.
    #[serde(default)]
    pub server_log: String,
}

impl StreamReport {
    /// Connected once, never broke, every message echoed, one connection on the server.
    pub fn unbroken(&self) -> bool {
        self.connected
            && self.open
            && self.error.is_none()
            && self.sent > 0
            && self.echoed == self.sent
            && self.server_connections == 1
    }
}

/// A TCP connection from one host to an echo server on another, carrying a numbered message
/// every 10 ms until stopped. The client connects exactly once: any reset, EOF or timeout is
/// reported as a broken stream, never papered over by a reconnect.
pub struct TcpStream {
    server: Child,
    client: Child,
    stop_file: PathBuf,
    result: PathBuf,
    server_log: PathBuf,
    client_err: PathBuf,
    _dir: tempfile::TempDir,
}

impl TcpStream {
    /// Starts the echo server in `server_host` on `port`, then the client in `client_host`
    /// towards `dst:port`; returns once the first echo came back (at most 10 s).
    pub fn start(
        fabric: &OvsFabric,
        server_host: &str,
        client_host: &str,
        dst: Ipv4Addr,
        port: u16,
    ) -> Result<TcpStream, String> {
        Self::start_for(fabric, server_host, client_host, dst, port, None)
    }

    /// Like [`TcpStream::start`]; with `duration` the client stops sending by itself then.
    pub fn start_for(
        fabric: &OvsFabric,
        server_host: &str,
        client_host: &str,
        dst: Ipv4Addr,
        port: u16,
        duration: Option<Duration>,
    ) -> Result<TcpStream, String> {
        Self::start_every(fabric, server_host, client_host, dst, port, duration, 0.01)
    }

    /// Like [`TcpStream::start_for`], a message every `interval` seconds.
    pub fn start_every(
        fabric: &OvsFabric,
        server_host: &str,
        client_host: &str,
        dst: Ipv4Addr,
        port: u16,
        duration: Option<Duration>,
        interval: f64,
    ) -> Result<TcpStream, String> {
        let dir = tempdir(fabric, "tcp")?;
        let d = dir.path();
        let server_py = write_script(d, "echo_server.py", ECHO_SERVER)?;
        let client_py = write_script(d, "echo_client.py", ECHO_CLIENT)?;
        let (ready, server_log, server_err) = (
            d.join("server.ready"),
            d.join("server.log"),
            d.join("server.err"),
        );
        let mut server = fabric
            .command(
                server_host,
                &[
                    python3(),
                    p(&server_py),
                    &port.to_string(),
                    p(&ready),
                    p(&server_log),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file(&server_err)?)
            .spawn()
            .map_err(|e| format!("starting the echo server: {e}"))?;
        if let Err(e) = wait_for_file(&ready, &mut server, Duration::from_secs(10), "echo server") {
            terminate(&mut server, "KILL", Duration::from_secs(1));
            return Err(format!("{e}: {}", read(&server_err).trim()));
        }
        let (stop_file, result, up, client_err) = (
            d.join("client.stop"),
            d.join("client.json"),
            d.join("client.up"),
            d.join("client.err"),
        );
        let secs = duration.map_or(0.0, |t| t.as_secs_f64()).to_string();
        let client = fabric
            .command(
                client_host,
                &[
                    python3(),
                    p(&client_py),
                    &dst.to_string(),
                    &port.to_string(),
                    &secs,
                    p(&stop_file),
                    p(&result),
                    p(&up),
                    &DRAIN_SECS.to_string(),
                    &interval.to_string(),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file(&client_err)?)
            .spawn();
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                terminate(&mut server, "KILL", Duration::from_secs(1));
                return Err(format!("starting the echo client: {e}"));
            }
        };
        let mut s = TcpStream {
            server,
            client,
            stop_file,
            result,
            server_log,
            client_err,
            _dir: dir,
        };
        if let Err(e) = wait_for_file(&up, &mut s.client, Duration::from_secs(10), "echo client") {
            return Err(format!(
                "{e}: result {} stderr {}",
                read(&s.result).trim(),
                read(&s.client_err).trim()
            ));
        }
        Ok(s)
    }

    /// Starts, lets it run for `duration`, stops.
    pub fn run_for(
        fabric: &OvsFabric,
        server_host: &str,
        client_host: &str,
        dst: Ipv4Addr,
        port: u16,
        duration: Duration,
    ) -> Result<StreamReport, String> {
        let s = Self::start(fabric, server_host, client_host, dst, port)?;
        std::thread::sleep(duration);
        s.stop()
    }

    /// Whether the client is still sending (it ends by itself only on error or after its
    /// duration).
    pub fn running(&mut self) -> bool {
        matches!(self.client.try_wait(), Ok(None))
    }

    /// Stops sending, waits for the missing echoes (at most 2 s), stops the server, reports.
    pub fn stop(mut self) -> Result<StreamReport, String> {
        let _ = std::fs::write(&self.stop_file, b"");
        let grace = Duration::from_secs_f64(DRAIN_SECS + 5.0);
        let status = terminate(&mut self.client, "TERM", grace);
        // Only now: a server gone first would look like a broken stream.
        terminate(&mut self.server, "TERM", Duration::from_secs(2));
        let text = read(&self.result);
        let mut r: StreamReport = serde_json::from_str(&text).map_err(|e| {
            format!(
                "echo client ({status:?}) left no report ({e}): {text:?}, stderr: {}",
                read(&self.client_err).trim()
            )
        })?;
        r.server_log = read(&self.server_log);
        r.server_connections = r
            .server_log
            .lines()
            .filter(|l| l.starts_with("accepted "))
            .count() as u32;
        Ok(r)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        terminate(&mut self.client, "KILL", Duration::from_secs(1));
        terminate(&mut self.server, "KILL", Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------------------
// Pinger

/// What [`Pinger::stop`] reports. An echo request counts as lost when it got no reply and
/// was sent more than the wait (1 s) before the stop; younger unanswered ones are in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingReport {
    pub transmitted: u32,
    /// Distinct sequence numbers answered.
    pub received: u32,
    pub lost: u32,
    pub in_flight: u32,
    /// Longest run of consecutive lost sequence numbers.
    pub longest_loss_run: u32,
    /// Longest time between two replies (and from the last reply to the stop when requests
    /// after it were lost), in ms.
    pub max_reply_gap_ms: f64,
    /// ICMP errors ping printed (`From X icmp_seq=N Destination Host Unreachable`, ...).
    pub icmp_errors: u32,
    /// ICMP redirects ping printed (`From GW icmp_seq=N Redirect Host(New nexthop: ...)`):
    /// not errors, a better first hop (cases 5 and 6).
    pub redirects: u32,
    /// Sequence numbers that were lost, ascending.
    pub lost_seqs: Vec<u32>,
}

/// `ping -n -O -D -i 0.01 -W 1 DST` in a host's namespace, in the background.
pub struct Pinger {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pinger {
    /// Starts pinging `dst` from `host`; returns once ping has started (not necessarily
    /// answered: see [`Pinger::wait_replies`]).
    pub fn start(fabric: &OvsFabric, host: &str, dst: Ipv4Addr) -> Result<Pinger, String> {
        Self::start_every(fabric, host, dst, "0.01")
    }

    /// Like [`Pinger::start`], one request every `interval` seconds (as ping's `-i` takes it).
    pub fn start_every(
        fabric: &OvsFabric,
        host: &str,
        dst: Ipv4Addr,
        interval: &str,
    ) -> Result<Pinger, String> {
        let dir = tempdir(fabric, "ping")?;
        let (out, err) = (dir.path().join("ping.out"), dir.path().join("ping.err"));
        let child = fabric
            .command(
                host,
                &[
                    "ping",
                    "-n",
                    "-O",
                    "-D",
                    "-i",
                    interval,
                    "-W",
                    "1",
                    &dst.to_string(),
                ],
            )
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .map_err(|e| format!("starting ping: {e}"))?;
        let mut pinger = Pinger {
            child,
            out,
            err,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !read(&pinger.out).starts_with("PING ") {
            if let Ok(Some(s)) = pinger.child.try_wait() {
                return Err(format!(
                    "ping {dst} from {host} exited ({s}): {}",
                    read(&pinger.err).trim()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("ping {dst} from {host} did not start"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(pinger)
    }

    /// Replies seen so far.
    pub fn replies(&self) -> u32 {
        parse_ping_run(&read(&self.out), unix_now(), 1.0).received
    }

    /// Waits until at least `n` replies came back.
    pub fn wait_replies(&mut self, n: u32, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.replies() >= n {
                return Ok(());
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                return Err(format!("ping exited ({s}): {}", read(&self.err).trim()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "fewer than {n} replies after {timeout:?}:\n{}",
                    read(&self.out)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops ping (SIGINT) and reports.
    pub fn stop(mut self) -> Result<PingReport, String> {
        let stopped_at = unix_now();
        let early = self.child.try_wait().ok().flatten();
        terminate(&mut self.child, "INT", Duration::from_secs(3));
        let text = read(&self.out);
        if let Some(s) = early {
            return Err(format!(
                "ping had exited before the stop ({s}): {}\n{text}",
                read(&self.err).trim()
            ));
        }
        Ok(parse_ping_run(&text, stopped_at, 1.0))
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        terminate(&mut self.child, "KILL", Duration::from_secs(1));
    }
}

/// Parses the output of `ping -n -O -D` stopped at unix time `stopped_at`; requests
/// unanswered for less than `wait` seconds at the stop are in flight, not lost.
pub fn parse_ping_run(text: &str, stopped_at: f64, wait: f64) -> PingReport {
    let mut replies: BTreeMap<u32, f64> = BTreeMap::new();
    let mut no_answer: BTreeMap<u32, f64> = BTreeMap::new();
    let mut transmitted = None;
    let mut icmp_errors = 0;
    let mut redirects = 0;
    let mut max_seq = 0;
    for line in text.lines() {
        if let Some((tx, _)) = line.split_once(" packets transmitted, ") {
            transmitted = tx.trim().parse().ok();
            continue;
        }
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((ts, msg)) = rest.split_once("] ") else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let seq = msg
            .split("icmp_seq=")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u32>().ok());
        let Some(seq) = seq else { continue };
        max_seq = max_seq.max(seq);
        if msg.starts_with("no answer yet") {
            no_answer.insert(seq, ts);
        } else if msg.contains(" bytes from ") {
            replies.entry(seq).or_insert(ts);
        } else if msg.starts_with("From ") && msg.contains("Redirect") {
            redirects += 1;
        } else if msg.starts_with("From ") {
            icmp_errors += 1;
        }
    }
    let transmitted = transmitted.unwrap_or(max_seq).max(max_seq);
    let mut r = PingReport {
        transmitted,
        received: replies.len() as u32,
        icmp_errors,
        redirects,
        ..PingReport::default()
    };
    let mut run = 0;
    for seq in 1..=transmitted {
        if replies.contains_key(&seq) {
            run = 0;
        } else if no_answer
            .get(&seq)
            .is_some_and(|ts| ts + wait <= stopped_at)
        {
            r.lost += 1;
            r.lost_seqs.push(seq);
            run += 1;
            r.longest_loss_run = r.longest_loss_run.max(run);
        } else {
            r.in_flight += 1;
        }
    }
    let mut times: Vec<f64> = replies.values().copied().collect();
    times.sort_by(f64::total_cmp);
    for w in times.windows(2) {
        r.max_reply_gap_ms = r.max_reply_gap_ms.max((w[1] - w[0]) * 1000.0);
    }
    let last_reply = replies.keys().next_back().copied().unwrap_or(0);
    if r.lost_seqs.last().is_some_and(|s| *s > last_reply) {
        if let Some(t) = times.last() {
            r.max_reply_gap_ms = r.max_reply_gap_ms.max((stopped_at - t) * 1000.0);
        }
    }
    r
}

// ---------------------------------------------------------------------------------------
// Capture

/// One frame a [`Capture`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Unix time it was read.
    pub time: f64,
    /// Arrived on the interface (false: sent from it).
    pub incoming: bool,
    /// 0x0800 IPv4, 0x0806 ARP, 0x8035 RARP.
    pub ethertype: u16,
    pub src_mac: String,
    pub dst_mac: String,
    /// IPv4 source, or the ARP/RARP sender protocol address.
    pub src: Ipv4Addr,
    /// IPv4 destination, or the ARP/RARP target protocol address.
    pub dst: Ipv4Addr,
    /// IP protocol, or the ARP/RARP opcode.
    pub proto: u16,
    /// IPv4 TTL (0 for ARP/RARP).
    pub ttl: u8,
    /// The whole frame.
    pub frame: Vec<u8>,
}

impl Packet {
    pub fn is_ipv4(&self) -> bool {
        self.ethertype == 0x0800
    }

    /// Whether this is an ICMP echo request to `ip` that the capturing host received.
    pub fn is_echo_request_to(&self, ip: Ipv4Addr) -> bool {
        self.incoming
            && self.is_ipv4()
            && self.proto == 1
            && self.dst == ip
            && self.frame.get(34) == Some(&8)
    }

    /// Whether the address occurs anywhere after the Ethernet header: IP source or
    /// destination, ARP fields, an ICMP error's quoted header, a redirect's gateway, payload.
    pub fn mentions(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        self.frame
            .get(14..)
            .is_some_and(|b| b.windows(4).any(|w| w == o))
    }
}

/// Parses one line of [`SNIFFER`]'s output.
pub fn parse_capture_line(line: &str) -> Option<Packet> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 10 {
        return None;
    }
    let frame = (0..f[9].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(f[9].get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Packet {
        time: f[0].parse().ok()?,
        incoming: match f[1] {
            "in" => true,
            "out" => false,
            _ => return None,
        },
        ethertype: u16::from_str_radix(f[2], 16).ok()?,
        src_mac: f[3].to_string(),
        dst_mac: f[4].to_string(),
        src: f[5].parse().ok()?,
        dst: f[6].parse().ok()?,
        proto: f[7].parse().ok()?,
        ttl: f[8].parse().ok()?,
        frame,
    })
}

/// A sniffer (python3, AF_PACKET) on one host's `eth0` inside its namespace, or on the
/// switch side of its veth, recording every IPv4, ARP and RARP frame in both directions.
pub struct Capture {
    pub host: String,
    /// The interface, as seen where the sniffer runs.
    pub ifname: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Captures on `host`'s `eth0`, inside its namespace: what the host receives and sends.
    pub fn start(fabric: &OvsFabric, host: &str) -> Result<Capture, String> {
        let mut c = Self::spawn(fabric, host, true)?;
        c.wait_ready()?;
        Ok(c)
    }

    /// Captures on the bridge end of `host`'s veth, in the root namespace: the frames exactly
    /// as the host put them on the wire (`incoming`) and as the switch delivers them
    /// (outgoing). Survives [`OvsFabric::move_host`] (the veth stays the same).
    pub fn start_switch_side(fabric: &OvsFabric, host: &str) -> Result<Capture, String> {
        let mut c = Self::spawn(fabric, host, false)?;
        c.wait_ready()?;
        Ok(c)
    }

    /// One capture inside every host's namespace, started together.
    pub fn start_all(fabric: &OvsFabric) -> Result<CaptureSet, String> {
        let mut caps = BTreeMap::new();
        for h in fabric.hosts() {
            caps.insert(h.name.clone(), Self::spawn(fabric, &h.name, true)?);
        }
        for c in caps.values_mut() {
            c.wait_ready()?;
        }
        Ok(CaptureSet { caps })
    }

    fn spawn(fabric: &OvsFabric, host: &str, inside: bool) -> Result<Capture, String> {
        let dir = tempdir(fabric, &format!("cap-{host}"))?;
        let d = dir.path();
        let py = write_script(d, "sniffer.py", SNIFFER)?;
        let (out, ready, err) = (d.join("packets"), d.join("ready"), d.join("sniffer.err"));
        let ifname = if inside {
            "eth0".to_string()
        } else {
            fabric.host(host).veth.clone()
        };
        let args = [python3(), p(&py), &ifname, p(&out), p(&ready)];
        let mut cmd = if inside {
            fabric.command(host, &args)
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file(&err)?)
            .spawn()
            .map_err(|e| format!("starting the sniffer for {host}: {e}"))?;
        Ok(Capture {
            host: host.to_string(),
            ifname,
            child,
            out,
            err,
            _dir: dir,
        })
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let ready = self.out.with_file_name("ready");
        let what = format!("sniffer on {} ({})", self.host, self.ifname);
        wait_for_file(&ready, &mut self.child, Duration::from_secs(10), &what)
            .map_err(|e| format!("{e}: {}", read(&self.err).trim()))
    }

    /// What it recorded so far (it keeps running).
    pub fn packets(&self) -> Vec<Packet> {
        read(&self.out)
            .lines()
            .filter_map(parse_capture_line)
            .collect()
    }

    /// Stops the sniffer (after it drained its socket) and returns everything it recorded.
    pub fn stop(mut self) -> Result<Vec<Packet>, String> {
        let early = self.child.try_wait().ok().flatten();
        let status = terminate(&mut self.child, "TERM", Duration::from_secs(3));
        if early.is_some() || !status.is_some_and(|s| s.success()) {
            return Err(format!(
                "sniffer on {} ({}) {}: {}",
                self.host,
                self.ifname,
                if early.is_some() {
                    format!("died early ({status:?})")
                } else {
                    format!("did not stop cleanly ({status:?})")
                },
                read(&self.err).trim()
            ));
        }
        let text = read(&self.out);
        let drops: u64 = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("# drops "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "sniffer on {} ({}) left no drop count",
                    self.host, self.ifname
                )
            })?;
        if drops > 0 {
            return Err(format!(
                "sniffer on {} ({}) dropped {drops} frames: its capture proves nothing by what it lacks",
                self.host, self.ifname
            ));
        }
        Ok(self.packets())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        terminate(&mut self.child, "KILL", Duration::from_secs(1));
    }
}

/// One [`Capture`] per host ([`Capture::start_all`]).
pub struct CaptureSet {
    caps: BTreeMap<String, Capture>,
}

impl CaptureSet {
    pub fn hosts(&self) -> BTreeSet<String> {
        self.caps.keys().cloned().collect()
    }

    /// Stops every sniffer: host name → its packets.
    pub fn stop(self) -> Result<BTreeMap<String, Vec<Packet>>, String> {
        let mut all = BTreeMap::new();
        let mut errors = Vec::new();
        for (h, c) in self.caps {
            match c.stop() {
                Ok(p) => {
                    all.insert(h, p);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(all)
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// Every (host, packet) of a [`CaptureSet::stop`] result that mentions `ip` anywhere.
pub fn mentioning(captures: &BTreeMap<String, Vec<Packet>>, ip: Ipv4Addr) -> Vec<(String, Packet)> {
    captures
        .iter()
        .flat_map(|(h, ps)| {
            ps.iter()
                .filter(|p| p.mentions(ip))
                .map(move |p| (h.clone(), p.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// UDP flow

/// What a [`UdpFlow`] reports.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UdpReport {
    pub sent: u64,
    pub errors: u64,
    pub received: u64,
    /// The highest sequence number received (-1: none).
    pub highest: i64,
    /// Source addresses the sink saw.
    pub sources: Vec<String>,
}

/// Numbered UDP datagrams from one host to a sink on another, one every `interval`.
pub struct UdpFlow {
    sink: Child,
    source: Child,
    stop_file: PathBuf,
    sink_out: PathBuf,
    source_out: PathBuf,
    _dir: tempfile::TempDir,
}

impl UdpFlow {
    pub fn start(
        fabric: &OvsFabric,
        from: &str,
        to: &str,
        dst: Ipv4Addr,
        port: u16,
        interval: f64,
    ) -> Result<UdpFlow, String> {
        let dir = tempdir(fabric, "udp")?;
        let d = dir.path();
        let py = write_script(d, "udp_flow.py", UDP_FLOW)?;
        let (ready, sink_out, source_out, stop_file) = (
            d.join("sink.ready"),
            d.join("sink.json"),
            d.join("source.json"),
            d.join("stop"),
        );
        let port_s = port.to_string();
        let mut sink = fabric
            .command(
                to,
                &[python3(), p(&py), "recv", &port_s, p(&ready), p(&sink_out)],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the UDP sink: {e}"))?;
        if let Err(e) = wait_for_file(&ready, &mut sink, Duration::from_secs(10), "UDP sink") {
            terminate(&mut sink, "KILL", Duration::from_secs(1));
            return Err(e);
        }
        let source = fabric
            .command(
                from,
                &[
                    python3(),
                    p(&py),
                    "send",
                    &dst.to_string(),
                    &port_s,
                    &interval.to_string(),
                    p(&stop_file),
                    p(&source_out),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the UDP source: {e}"))?;
        Ok(UdpFlow {
            sink,
            source,
            stop_file,
            sink_out,
            source_out,
            _dir: dir,
        })
    }

    /// Stops the source, lets the last datagrams arrive, stops the sink; reports both.
    pub fn stop(mut self) -> Result<UdpReport, String> {
        let _ = std::fs::write(&self.stop_file, b"");
        terminate(&mut self.source, "TERM", Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(300));
        terminate(&mut self.sink, "TERM", Duration::from_secs(3));
        let src: serde_json::Value = serde_json::from_str(&read(&self.source_out))
            .map_err(|e| format!("UDP source left no report: {e}"))?;
        let mut sink: serde_json::Value = serde_json::from_str(&read(&self.sink_out))
            .map_err(|e| format!("UDP sink left no report: {e}"))?;
        sink["sent"] = src["sent"].clone();
        sink["errors"] = src["errors"].clone();
        serde_json::from_value(sink).map_err(|e| format!("UDP reports: {e}"))
    }
}

impl Drop for UdpFlow {
    fn drop(&mut self) {
        terminate(&mut self.source, "KILL", Duration::from_secs(1));
        terminate(&mut self.sink, "KILL", Duration::from_secs(1));
    }
}

/// What a [`Flood`] sent.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FloodReport {
    pub sent: u64,
    pub errors: u64,
    pub seconds: f64,
}

impl FloodReport {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }
}

/// One host sending frames toward the controller as fast as one process can (see [`FLOOD`]).
pub struct Flood {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Flood {
    /// Starts `host` flooding `kinds` (comma-separated) for at most `seconds`; returns once
    /// its socket is open.
    pub fn start(
        fabric: &OvsFabric,
        host: &str,
        kinds: &str,
        seconds: f64,
        seed: u64,
    ) -> Result<Flood, String> {
        let dir = tempdir(fabric, "flood")?;
        let d = dir.path();
        let py = write_script(d, "flood.py", FLOOD)?;
        let (ready, out) = (d.join("ready"), d.join("flood.json"));
        let h = fabric.host(host);
        let (ip, _) = h
            .addrs
            .first()
            .ok_or_else(|| format!("{host} has no address"))?;
        let o = ip.octets();
        let subnet = format!("{}.{}.{}", o[0], o[1], o[2]);
        let mut child = fabric
            .command(
                host,
                &[
                    python3(),
                    p(&py),
                    "eth0",
                    &h.mac,
                    &ip.to_string(),
                    &subnet,
                    kinds,
                    &seconds.to_string(),
                    &seed.to_string(),
                    p(&ready),
                    p(&out),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the flood: {e}"))?;
        if let Err(e) = wait_for_file(&ready, &mut child, Duration::from_secs(10), "flood") {
            terminate(&mut child, "KILL", Duration::from_secs(1));
            return Err(e);
        }
        Ok(Flood {
            child,
            out,
            _dir: dir,
        })
    }

    /// Stops it (or waits for its end) and reports.
    pub fn stop(mut self) -> Result<FloodReport, String> {
        terminate(&mut self.child, "TERM", Duration::from_secs(3));
        serde_json::from_str(&read(&self.out)).map_err(|e| format!("the flood left no report: {e}"))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        terminate(&mut self.child, "KILL", Duration::from_secs(1));
    }
}
