//! `servswitch run` against real Open vSwitch 3.1 bridges (userspace datapath).
//!
//! Each scenario starts the real binary on free 127.0.0.1 ports with a topology file in a
//! tempdir, creates `ss*` bridges (`datapath_type=netdev`, `fail-mode=secure`, out-of-band,
//! `max_backoff=1000`, internal ports without addresses) pointed at it, and checks both sides:
//! OVS's own view (`ovs-vsctl get controller BR is_connected`) and the controller's
//! (`GET /api/v1/switches`, raw HTTP). Bridges, the controller and (when killed) ovs-vswitchd
//! are restored by Drop guards, also when an assertion fails; so are Open vSwitch's global SSL
//! settings (`ovs-vsctl set-ssl`), which the TLS scenario changes.
//!
//! ovs-vswitchd writes a controller's `is_connected`/`status` to OVSDB only with its statistics
//! refresh, every 5 s (`other_config:stats-update-interval`, minimum 5000 ms). So OVS-side times
//! below are quantised to that refresh, while the API times are the real reconnect times. After
//! a disruption the test marks those columns stale itself, so a `true` left over from the old
//! connection can never pass for a reconnect.
//!
//! The scenarios share (and one of them kills) the machine's ovs-vswitchd: they take a static
//! lock and run one at a time. Without root, `ovs-vsctl`, or a running Open vSwitch they print
//! a skip notice and pass, unless `CI=true`, where each of those is a failure.

mod common;
use common::certs::Ca;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const RUNDIR: &str = "/var/run/openvswitch";
const VSWITCHD_PIDFILE: &str = "/var/run/openvswitch/ovs-vswitchd.pid";
/// How ovs-vswitchd is (re)started: exactly as `.ci/run` starts it.
const VSWITCHD_ARGS: &[&str] = &[
    "unix:/var/run/openvswitch/db.sock",
    "--pidfile",
    "--detach",
    "--log-file",
];
/// The reconnect bound every scenario asserts.
const RECONNECT_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

static SERIAL: Mutex<()> = Mutex::new(());

/// Writes straight to stderr, which the test harness does not capture: skip notices and the
/// measured times show in a plain `cargo test`.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "ovs_switches: {msg}");
}

/// Takes the lock and checks the machine; `None` means skip (never in CI).
fn setup(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    match missing_prerequisite() {
        None => Some(guard),
        Some(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: {why}, and CI=true");
            }
            note(&format!("SKIPPED {test}: {why}"));
            None
        }
    }
}

fn missing_prerequisite() -> Option<String> {
    if !common::env::is_root() {
        return Some("not running as root (OVS bridges need it)".into());
    }
    match Command::new("ovs-vsctl")
        .args(["--timeout=5", "show"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some("ovs-vsctl is not on PATH (Debian: openvswitch-switch)".into())
        }
        Err(e) => return Some(format!("cannot run ovs-vsctl: {e}")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "`ovs-vsctl show` failed, ovsdb-server is not running ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Ok(_) => {}
    }
    if vswitchd_pid().is_none() {
        return Some(format!(
            "ovs-vswitchd is not running (no live pid in {VSWITCHD_PIDFILE}); start it as .ci/run does"
        ));
    }
    None
}

// -------------------------------------------------------------------------------------------
// ovs-vsctl and ovs-vswitchd

fn vsctl_try(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ovs-vsctl")
        .arg("--timeout=10")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ovs-vsctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ovs-vsctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn vsctl(args: &[&str]) -> String {
    vsctl_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// One `ovs-vsctl` run with one `get controller BR COLUMN` per bridge (each after `opts`, e.g.
/// `--if-exists`); one output line each.
fn vsctl_get_each(bridges: &[String], opts: &[&str], column: &str) -> Result<Vec<String>, String> {
    let mut args: Vec<&str> = Vec::new();
    for br in bridges {
        args.push("--");
        args.extend(opts);
        args.extend(["get", "controller", br.as_str(), column]);
    }
    let out = vsctl_try(&args)?;
    // A missing key under --if-exists still prints an (empty) line.
    let lines: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
    if lines.len() != bridges.len() {
        return Err(format!("ovs-vsctl get {column}: unexpected output {out:?}"));
    }
    Ok(lines)
}

/// The pid in ovs-vswitchd's pidfile, if that process is alive (a zombie is dead: PID 1 here
/// does not always reap at once).
fn vswitchd_pid() -> Option<u32> {
    let pid: u32 = fs::read_to_string(VSWITCHD_PIDFILE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process_alive(pid).then_some(pid)
}

fn process_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // pid (comm) STATE ...; comm may contain spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Starts ovs-vswitchd exactly as `.ci/run` does; returns once it has detached (configured).
fn start_vswitchd(log: &Path) -> Result<(), String> {
    fs::create_dir_all(RUNDIR).map_err(|e| format!("mkdir {RUNDIR}: {e}"))?;
    // Not a pipe: the detached daemon would hold it open.
    let err = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let status = Command::new("ovs-vswitchd")
        .args(VSWITCHD_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .map_err(|e| format!("ovs-vswitchd: {e}"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        return Err(format!("ovs-vswitchd exited with {status}: {text}"));
    }
    Ok(())
}

/// Restarts ovs-vswitchd when dropped if it is not running (a scenario that killed it failed
/// before restarting it).
struct VswitchdGuard {
    log: PathBuf,
}

impl Drop for VswitchdGuard {
    fn drop(&mut self) {
        if vswitchd_pid().is_none() {
            note("ovs-vswitchd is down after the test: restarting it");
            if let Err(e) = start_vswitchd(&self.log) {
                note(&format!("could not restart ovs-vswitchd: {e}"));
            }
        }
    }
}

/// The bridges a scenario created; all deleted when dropped.
#[derive(Default)]
struct Bridges {
    names: Vec<String>,
}

impl Bridges {
    /// Creates bridge `name` (two internal ports, `{name}p1` and `{name}p2`) controlled by
    /// tcp:127.0.0.1:`of_port`; returns the port names.
    fn add(&mut self, name: &str, dpid: u64, protocols: &str, of_port: u16) -> Vec<String> {
        self.add_with(name, dpid, protocols, &format!("tcp:127.0.0.1:{of_port}"))
    }

    /// As `add`, with controller `target` (e.g. `ssl:127.0.0.1:6653`).
    fn add_with(&mut self, name: &str, dpid: u64, protocols: &str, target: &str) -> Vec<String> {
        assert!(
            name.starts_with("ss") && name.len() <= 12,
            "bad name {name}"
        );
        // A leftover of an earlier, killed run.
        vsctl(&["--if-exists", "del-br", name]);
        self.names.push(name.to_string());
        let ports = vec![format!("{name}p1"), format!("{name}p2")];
        let dpid = format!("other-config:datapath-id={dpid:016x}");
        let protocols = format!("protocols={protocols}");
        let mut args: Vec<&str> = vec![
            "--",
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            &protocols,
            "fail_mode=secure",
            &dpid,
            "other-config:disable-in-band=true",
        ];
        for p in &ports {
            args.extend(["--", "add-port", name, p, "--", "set", "interface", p]);
            args.push("type=internal");
        }
        args.extend(["--", "set-controller", name, target]);
        args.extend([
            "--",
            "set",
            "controller",
            name,
            "connection-mode=out-of-band",
        ]);
        // Reconnect every second, not up to OVS's default 8 s; probe an idle controller after
        // 5 s (the minimum OVS applies).
        args.extend(["max_backoff=1000", "inactivity_probe=5000"]);
        vsctl(&args);
        ports
    }

    /// `is_connected` of every bridge's controller, as OVSDB has it now.
    fn connected(&self) -> Result<Vec<bool>, String> {
        let lines = vsctl_get_each(&self.names, &[], "is_connected")?;
        Ok(lines.iter().map(|v| v == "true").collect())
    }

    /// Every bridge's controller connected, per OVSDB; with `since`, by a connection made
    /// after that instant (`status:sec_since_connect`).
    fn check_connected(&self, since: Option<Instant>) -> Result<(), String> {
        let conn = self.connected()?;
        let bad: Vec<&String> = self
            .names
            .iter()
            .zip(&conn)
            .filter(|(_, c)| !**c)
            .map(|(n, _)| n)
            .collect();
        if !bad.is_empty() {
            return Err(format!("OVSDB says not connected: {bad:?}"));
        }
        if let Some(t0) = since {
            let secs = vsctl_get_each(&self.names, &["--if-exists"], "status:sec_since_connect")?;
            let limit = t0.elapsed().as_secs() + 1;
            for (br, s) in self.names.iter().zip(&secs) {
                let n: u64 = s.trim_matches('"').parse().unwrap_or(u64::MAX);
                if n > limit {
                    return Err(format!(
                        "{br}: connected for {s} s, longer than since the disruption"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Makes OVSDB's `is_connected`/`status` say nothing, so that only a later statistics
    /// refresh by ovs-vswitchd can set them (`--no-wait`: works while ovs-vswitchd is down).
    fn mark_status_stale(&self) {
        let mut args: Vec<&str> = vec!["--no-wait"];
        for br in &self.names {
            args.extend(["--", "set", "controller", br, "is_connected=false"]);
            args.extend(["--", "clear", "controller", br, "status"]);
        }
        vsctl(&args);
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for br in &self.names {
            if let Err(e) = vsctl_try(&["--if-exists", "del-br", br]) {
                note(&format!("cleanup: {e}"));
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// The controller and its API

/// A `servswitch run` child; killed when dropped (its log printed if the test failed).
struct Controller {
    child: Option<Child>,
    topology: PathBuf,
    log: PathBuf,
    of_port: u16,
    api_port: u16,
    /// More `servswitch run` arguments (e.g. `--tls-cert F`).
    extra: Vec<String>,
}

/// Two distinct free ports on 127.0.0.1 (both held while choosing).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let ports = (
        a.local_addr().expect("local_addr").port(),
        b.local_addr().expect("local_addr").port(),
    );
    drop((a, b));
    ports
}

fn dpid_str(dpid: u64) -> String {
    dpid.to_be_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Controller {
    /// Writes a topology of `switches` (name, dpid) and starts the controller on free ports,
    /// retrying with other ports if one was taken meanwhile.
    fn start(dir: &Path, switches: &[(&str, u64)]) -> Controller {
        Controller::start_with(dir, switches, &[])
    }

    /// As `start`, with `extra` arguments for `servswitch run`.
    fn start_with(dir: &Path, switches: &[(&str, u64)], extra: &[String]) -> Controller {
        let mut topo = String::new();
        for (i, (name, dpid)) in switches.iter().enumerate() {
            let tier = ["core", "aggregation", "access"][i % 3];
            topo.push_str(&format!(
                "[[switch]]\nname = \"{name}\"\ndpid = {dpid}\ntier = \"{tier}\"\n\n"
            ));
        }
        let topology = dir.join("topology.toml");
        fs::write(&topology, topo).expect("write topology");
        let mut last = String::new();
        for _ in 0..5 {
            let (of_port, api_port) = free_ports();
            let mut c = Controller {
                child: None,
                topology: topology.clone(),
                log: dir.join("servswitch.log"),
                of_port,
                api_port,
                extra: extra.to_vec(),
            };
            match c.spawn() {
                Ok(()) => return c,
                Err(e) if e.contains("cannot listen") => {
                    last = e;
                    let _ = fs::remove_file(&c.log);
                }
                Err(e) => panic!("servswitch run did not start: {e}"),
            }
        }
        panic!("servswitch run found no free port in 5 tries: {last}");
    }

    /// Starts the child (again) on this controller's ports; returns once the API answers.
    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "controller already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .arg("run")
            .arg("--topology")
            .arg(&self.topology)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.of_port))
            .arg("--api")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn servswitch: {e}"))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if http_get(self.api_port, "/api/v1/switches").is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("API not up after 10 s: {}", self.log()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b);
            s = String::from_utf8_lossy(&b).into_owned();
        }
        s
    }

    fn switches(&self) -> Result<Vec<ApiSwitch>, String> {
        api_switches(self.api_port)
    }

    /// The value of counter `name` in `GET /metrics`.
    fn metric(&self, name: &str) -> Result<u64, String> {
        let (status, body) = http_get(self.api_port, "/metrics")?;
        if status != 200 {
            return Err(format!("GET /metrics: HTTP {status}: {body}"));
        }
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /metrics:\n{body}"))
    }

    /// Every (dpid, port names) connected, per the API, with exactly those ports.
    fn check_connected(&self, want: &[(u64, Vec<String>)]) -> Result<(), String> {
        let all = self.switches()?;
        for (dpid, ports) in want {
            let s = all
                .iter()
                .find(|s| s.dpid == *dpid)
                .ok_or_else(|| format!("API does not list {}", dpid_str(*dpid)))?;
            if !s.connected {
                return Err(format!("API says {} is not connected", dpid_str(*dpid)));
            }
            let mut got = s.ports.clone();
            got.sort();
            let mut want = ports.clone();
            want.sort();
            if got != want {
                return Err(format!(
                    "API lists ports {got:?} for {}, want {want:?}",
                    dpid_str(*dpid)
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            note(&format!("controller log:\n{}", self.log()));
        }
    }
}

#[derive(Debug, Clone)]
struct ApiSwitch {
    dpid: u64,
    connected: bool,
    peer: Option<String>,
    ports: Vec<String>,
}

fn api_switches(port: u16) -> Result<Vec<ApiSwitch>, String> {
    let (status, body) = http_get(port, "/api/v1/switches")?;
    if status != 200 {
        return Err(format!("GET /api/v1/switches: HTTP {status}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("API JSON: {e}: {body}"))?;
    let arr = v
        .as_array()
        .ok_or_else(|| format!("not an array: {body}"))?;
    arr.iter()
        .map(|s| {
            Ok(ApiSwitch {
                dpid: s["dpid"]
                    .as_u64()
                    .ok_or_else(|| format!("no dpid in {s}"))?,
                connected: s["connected"]
                    .as_bool()
                    .ok_or_else(|| format!("no connected in {s}"))?,
                peer: s["peer"].as_str().map(str::to_string),
                ports: s["ports"]
                    .as_array()
                    .ok_or_else(|| format!("no ports in {s}"))?
                    .iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect(),
            })
        })
        .collect()
}

/// A plain HTTP/1.1 GET; returns the status code and the body (de-chunked if need be).
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header end in {text:?}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or("bad chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or("short chunk")?);
        s = rest.get(size + 2..).ok_or("short chunk")?;
    }
}

// -------------------------------------------------------------------------------------------
// Waiting

/// Polls `cond` until it holds; panics after `limit` with its last complaint.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> Result<(), String>) -> Duration {
    let t0 = Instant::now();
    loop {
        match cond() {
            Ok(()) => return t0.elapsed(),
            Err(why) if t0.elapsed() > limit => {
                panic!("{what}: not within {limit:?}: {why}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Polls the API and OVSDB until both show every switch connected; returns when each first
/// did, counted from `t0`. Polls up to twice the limit so that a failure says how long it took.
fn wait_reconnected(
    what: &str,
    t0: Instant,
    mut api: impl FnMut() -> Result<(), String>,
    mut ovs: impl FnMut() -> Result<(), String>,
) -> (Duration, Duration) {
    let (mut api_at, mut ovs_at) = (None, None);
    let (mut api_why, mut ovs_why) = (String::new(), String::new());
    loop {
        if api_at.is_none() {
            match api() {
                Ok(()) => api_at = Some(t0.elapsed()),
                Err(e) => api_why = e,
            }
        }
        if ovs_at.is_none() {
            match ovs() {
                Ok(()) => ovs_at = Some(t0.elapsed()),
                Err(e) => ovs_why = e,
            }
        }
        if let (Some(a), Some(o)) = (api_at, ovs_at) {
            // Still both (no flapping).
            api().unwrap_or_else(|e| panic!("{what}: API lost a switch again: {e}"));
            ovs().unwrap_or_else(|e| panic!("{what}: OVS lost a switch again: {e}"));
            return (a, o);
        }
        if t0.elapsed() > 2 * RECONNECT_LIMIT {
            panic!(
                "{what}: not every switch connected after {:?}: API: {}; OVS: {}",
                t0.elapsed(),
                if api_at.is_some() { "ok" } else { &api_why },
                if ovs_at.is_some() { "ok" } else { &ovs_why },
            );
        }
        std::thread::sleep(POLL);
    }
}

fn assert_within_limit(what: &str, api: Duration, ovs: Duration) {
    note(&format!(
        "{what}: API reports every switch connected after {:.2} s; OVSDB is_connected=true after {:.2} s (OVSDB refreshes every 5 s)",
        api.as_secs_f64(),
        ovs.as_secs_f64()
    ));
    assert!(
        api <= RECONNECT_LIMIT && ovs <= RECONNECT_LIMIT,
        "{what}: reconnect took API {api:?} / OVS {ovs:?}, over {RECONNECT_LIMIT:?}"
    );
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ss-ovs-switches")
        .tempdir()
        .expect("tempdir")
}

/// The controller's log lines about datapath `dpid` (other bridges on this machine, e.g. another
/// test's, may find the same port free and reach this controller: their lines do not count).
fn lines_about(log: &str, dpid: u64) -> Vec<&str> {
    let tag = format!("dpid={}", dpid_str(dpid));
    log.lines().filter(|l| l.contains(&tag)).collect()
}

const fn dpid(scenario: u64, n: u64) -> u64 {
    0x5353_0000_0000_0000 | scenario << 8 | n
}

// -------------------------------------------------------------------------------------------
// TLS: certificates and Open vSwitch's SSL settings

/// Open vSwitch's SSL settings (`ovs-vsctl set-ssl`, one for the whole instance, also read by
/// this machine's ovsdb-server); the ones found at the start are put back when dropped.
struct OvsSsl {
    /// key, certificate, CA certificate, bootstrap; `None`: there were none.
    previous: Option<(String, String, String, bool)>,
}

impl OvsSsl {
    fn set(key: &Path, cert: &Path, ca: &Path) -> OvsSsl {
        let out = vsctl(&["get-ssl"]);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let previous = match (
            field("Private key:"),
            field("Certificate:"),
            field("CA Certificate:"),
        ) {
            (Some(k), Some(c), Some(a)) => {
                let bootstrap = field("Bootstrap:").as_deref() == Some("true");
                note(&format!(
                    "Open vSwitch had SSL settings ({k}, {c}, {a}, bootstrap {bootstrap}): restored after the test"
                ));
                Some((k, c, a, bootstrap))
            }
            _ if out.trim().is_empty() => None,
            _ => panic!("ovs-vsctl get-ssl: unexpected output {out:?}"),
        };
        let ssl = OvsSsl { previous };
        ssl.reset(key, cert, ca);
        ssl
    }

    /// Sets (again, e.g. another certificate) for the rest of the test.
    fn reset(&self, key: &Path, cert: &Path, ca: &Path) {
        let p = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
        vsctl(&["set-ssl", &p(key), &p(cert), &p(ca)]);
    }
}

impl Drop for OvsSsl {
    fn drop(&mut self) {
        let r = match &self.previous {
            None => vsctl_try(&["del-ssl"]),
            Some((k, c, a, false)) => vsctl_try(&["set-ssl", k, c, a]),
            Some((k, c, a, true)) => vsctl_try(&["--", "--bootstrap", "set-ssl", k, c, a]),
        };
        if let Err(e) = r {
            note(&format!("cleanup: restoring the SSL settings: {e}"));
        }
    }
}

// -------------------------------------------------------------------------------------------
// The scenarios

/// Three OpenFlow 1.3 bridges connect: OVS says so, and the API lists each datapath id as
/// connected with the internal ports the test added.
#[test]
fn bridges_connect() {
    let Some(_serial) = setup("bridges_connect") else {
        return;
    };
    let dir = tempdir();
    let mut bridges = Bridges::default();
    let ids = [dpid(1, 1), dpid(1, 2), dpid(1, 3)];
    let ctl = Controller::start(
        dir.path(),
        &[("r1", ids[0]), ("r2", ids[1]), ("r3", ids[2])],
    );
    let t0 = Instant::now();
    let want: Vec<(u64, Vec<String>)> = ids
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let ports = bridges.add(&format!("ssrt1{}", i + 1), d, "OpenFlow13", ctl.of_port);
            (d, ports)
        })
        .collect();
    let (api, ovs) = wait_reconnected(
        "bridges_connect",
        t0,
        || ctl.check_connected(&want),
        || bridges.check_connected(None),
    );
    note(&format!(
        "first connection: API after {:.2} s, OVSDB after {:.2} s",
        api.as_secs_f64(),
        ovs.as_secs_f64()
    ));
    let log = ctl.log();
    for d in ids {
        let lines = lines_about(&log, d);
        let connects = lines.iter().filter(|l| l.contains("switch connected"));
        assert_eq!(connects.count(), 1, "one connection per bridge:\n{log}");
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(" WARN ") || l.contains(" ERROR ")),
            "no warnings expected:\n{log}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// ovs-vswitchd is killed (-9) and restarted as .ci/run starts it: every switch is back, in
/// OVS and in the API, within 10 s of the kill.
#[test]
fn vswitchd_restart_reconnects() {
    let Some(_serial) = setup("vswitchd_restart_reconnects") else {
        return;
    };
    let dir = tempdir();
    let mut bridges = Bridges::default();
    let ids = [dpid(2, 1), dpid(2, 2)];
    let ctl = Controller::start(dir.path(), &[("r1", ids[0]), ("r2", ids[1])]);
    let want: Vec<(u64, Vec<String>)> = ids
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let ports = bridges.add(&format!("ssrt2{}", i + 1), d, "OpenFlow13", ctl.of_port);
            (d, ports)
        })
        .collect();
    wait_for("initial connection (API)", RECONNECT_LIMIT, || {
        ctl.check_connected(&want)
    });
    let before: Vec<Option<String>> = ctl
        .switches()
        .expect("API")
        .into_iter()
        .map(|s| s.peer)
        .collect();

    // Declared after `bridges`, so dropped first: bridges are deleted by a running daemon.
    let _vswitchd = VswitchdGuard {
        log: dir.path().join("ovs-vswitchd.stderr"),
    };
    let pid = vswitchd_pid().expect("ovs-vswitchd pid");
    let t0 = Instant::now();
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -9 {pid}: {st}");
    wait_for("ovs-vswitchd to die", Duration::from_secs(5), || {
        if process_alive(pid) {
            Err(format!("pid {pid} still alive"))
        } else {
            Ok(())
        }
    });
    let noticed = wait_for(
        "the controller to see the switches go",
        Duration::from_secs(5),
        || match ctl.switches()?.iter().find(|s| s.connected) {
            Some(s) => Err(format!("{} still connected", dpid_str(s.dpid))),
            None => Ok(()),
        },
    );
    bridges.mark_status_stale();
    start_vswitchd(&dir.path().join("ovs-vswitchd.stderr")).expect("restart ovs-vswitchd");
    let restarted = t0.elapsed();
    let (api, ovs) = wait_reconnected(
        "after restarting ovs-vswitchd",
        t0,
        || ctl.check_connected(&want),
        || bridges.check_connected(Some(t0)),
    );
    note(&format!(
        "ovs-vswitchd kill -9: controller saw the switches go within {:.2} s; ovs-vswitchd restarted {:.2} s after the kill",
        noticed.as_secs_f64(),
        restarted.as_secs_f64()
    ));
    assert_within_limit("ovs-vswitchd restart (from the kill)", api, ovs);
    let after: Vec<Option<String>> = ctl
        .switches()
        .expect("API")
        .into_iter()
        .map(|s| s.peer)
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "expected new connections after the restart");
    }
}

/// The controller is killed (-9) and a new one started on the same port: every switch is
/// back, in OVS and in the API, within 10 s of the kill.
#[test]
fn controller_restart_reconnects() {
    let Some(_serial) = setup("controller_restart_reconnects") else {
        return;
    };
    let dir = tempdir();
    let mut bridges = Bridges::default();
    let ids = [dpid(3, 1), dpid(3, 2)];
    let mut ctl = Controller::start(dir.path(), &[("r1", ids[0]), ("r2", ids[1])]);
    let want: Vec<(u64, Vec<String>)> = ids
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let ports = bridges.add(&format!("ssrt3{}", i + 1), d, "OpenFlow13", ctl.of_port);
            (d, ports)
        })
        .collect();
    wait_for("initial connection (API)", RECONNECT_LIMIT, || {
        ctl.check_connected(&want)
    });

    let t0 = Instant::now();
    ctl.kill();
    bridges.mark_status_stale();
    ctl.spawn()
        .expect("restart the controller on the same ports");
    let restarted = t0.elapsed();
    let (api, ovs) = wait_reconnected(
        "after restarting the controller",
        t0,
        || ctl.check_connected(&want),
        || bridges.check_connected(Some(t0)),
    );
    note(&format!(
        "controller kill -9: new controller serving {:.2} s after the kill",
        restarted.as_secs_f64()
    ));
    assert_within_limit("controller restart (from the kill)", api, ovs);
    let log = ctl.log();
    assert_eq!(
        log.matches("servswitch running").count(),
        2,
        "two controller runs expected:\n{log}"
    );
}

/// An OpenFlow 1.0-only bridge and a bridge with a datapath id the topology does not know are
/// refused, each with one clear line on stderr, and stay unconnected.
#[test]
fn refuses_openflow10_and_unknown_datapath() {
    let Some(_serial) = setup("refuses_openflow10_and_unknown_datapath") else {
        return;
    };
    let dir = tempdir();
    let mut bridges = Bridges::default();
    let (of10, unknown) = (dpid(4, 1), dpid(4, 0xff));
    // The OpenFlow 1.0 bridge's datapath id is in the topology: only its version is wrong.
    let ctl = Controller::start(dir.path(), &[("r1", of10)]);
    let t0 = Instant::now();
    bridges.add("ssrt41", of10, "OpenFlow10", ctl.of_port);
    bridges.add("ssrt42", unknown, "OpenFlow13", ctl.of_port);

    let version_line = |log: &str| -> Option<String> {
        log.lines()
            .find(|l| l.contains("refusing switch") && l.contains("does not speak OpenFlow 1.3"))
            .map(str::to_string)
    };
    let unknown_text = format!("datapath id {} is not in the topology", dpid_str(unknown));
    let unknown_line = |log: &str| -> Option<String> {
        log.lines()
            .find(|l| l.contains("refusing switch") && l.contains(&unknown_text))
            .map(str::to_string)
    };
    let never_connected = || -> Result<(), String> {
        let all = ctl.switches()?;
        let r1 = all.iter().find(|s| s.dpid == of10).ok_or("r1 not listed")?;
        assert!(
            !r1.connected,
            "the OpenFlow 1.0 bridge is connected: {r1:?}"
        );
        assert!(
            all.iter().all(|s| s.dpid != unknown),
            "the unknown datapath is listed: {all:?}"
        );
        Ok(())
    };
    wait_for("both refusals in the log", RECONNECT_LIMIT, || {
        never_connected()?;
        let log = ctl.log();
        match (version_line(&log), unknown_line(&log)) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err(format!("log so far:\n{log}")),
        }
    });
    // Open vSwitch's own view, after a status refresh: each refused connection ended, with
    // the reason OVS saw (`last_error`: the version refused with a protocol error, the
    // unknown datapath closed by the controller). Not "is_connected=false": OVS reconnects
    // a refused bridge again and again (backing off 1, 2, 4, 8 s), each time connected for
    // the moment before the refusal, and the status is refreshed at such moments often enough
    // that a bridge can show connected in every refresh of a 12 s wait (seen in CI).
    wait_for(
        "OVSDB to record each refused connection's end",
        Duration::from_secs(12),
        || {
            never_connected()?;
            let status = vsctl_get_each(&bridges.names, &[], "status")?;
            let errors = vsctl_get_each(&bridges.names, &["--if-exists"], "status:last_error")?;
            match errors.iter().all(|e| !e.is_empty()) {
                true => Ok(()),
                false => Err(format!("no last_error yet for each bridge: {status:?}")),
            }
        },
    );
    let errors = vsctl_get_each(&bridges.names, &["--if-exists"], "status:last_error")
        .expect("status:last_error");
    note(&format!("OVS recorded the refusals as {errors:?}"));
    never_connected().expect("API");

    note(&format!(
        "refused bridges still unconnected {:.2} s after they were made (API and OVSDB)",
        t0.elapsed().as_secs_f64()
    ));
    let log = ctl.log();
    let v = version_line(&log).expect("version line");
    let u = unknown_line(&log).expect("unknown-dpid line");
    note(&format!("OpenFlow 1.0 bridge refused with: {v}"));
    note(&format!("unknown datapath refused with: {u}"));
    for l in [&v, &u] {
        assert!(l.contains("WARN"), "a refusal is a warning: {l}");
    }
    assert!(
        v.contains("protocols=OpenFlow13"),
        "the line says what to fix: {v}"
    );
    for d in [of10, unknown] {
        let connected = lines_about(&log, d)
            .into_iter()
            .any(|l| l.contains("switch connected"));
        assert!(!connected, "{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// A bridge that offers OpenFlow 1.0, 1.3 and 1.4 negotiates 1.3 and connects.
#[test]
fn multi_version_bridge_negotiates_13() {
    let Some(_serial) = setup("multi_version_bridge_negotiates_13") else {
        return;
    };
    let dir = tempdir();
    let mut bridges = Bridges::default();
    let id = dpid(5, 1);
    let ctl = Controller::start(dir.path(), &[("r1", id)]);
    let t0 = Instant::now();
    let ports = bridges.add(
        "ssrt51",
        id,
        "OpenFlow10,OpenFlow13,OpenFlow14",
        ctl.of_port,
    );
    let want = [(id, ports)];
    let (api, ovs) = wait_reconnected(
        "multi-version bridge",
        t0,
        || ctl.check_connected(&want),
        || bridges.check_connected(None),
    );
    note(&format!(
        "OpenFlow10,13,14 bridge: API after {:.2} s, OVSDB after {:.2} s",
        api.as_secs_f64(),
        ovs.as_secs_f64()
    ));
    let log = ctl.log();
    let lines = lines_about(&log, id);
    assert!(!lines.iter().any(|l| l.contains("refusing")), "{log}");
    let connects = lines.iter().filter(|l| l.contains("switch connected"));
    assert_eq!(connects.count(), 1, "{log}");
}

/// OpenFlow over TLS: with `set-ssl` giving OVS a switch certificate signed by the
/// controller's CA, an `ssl:` bridge connects to `servswitch run --tls-*` with no TLS failure.
/// Then OVS presents a certificate from another CA (same name, other key): a second bridge is
/// refused in the TLS handshake, never connects, and `servswitch_tls_failures_total` grows.
#[test]
fn tls_bridge_connects_and_a_foreign_certificate_is_refused() {
    let Some(_serial) = setup("tls_bridge_connects_and_a_foreign_certificate_is_refused") else {
        return;
    };
    const TLS_FAILURES: &str = "servswitch_tls_failures_total";
    let dir = tempdir();
    let d = dir.path();
    let ca = Ca::new("servswitch test CA");
    let ca_pem = d.join("ca.pem");
    fs::write(&ca_pem, &ca.pem).expect("write CA");
    let (ctl_cert, ctl_key) = ca.leaf(d, "controller", "127.0.0.1", false);
    let (sw_cert, sw_key) = ca.leaf(d, "switch", "ssrt61", true);
    // Same subject name as the real CA: only the signature tells them apart.
    let (foreign_cert, foreign_key) =
        Ca::new("servswitch test CA").leaf(d, "foreign", "ssrt62", true);

    // Declared before `bridges`, so dropped after them.
    let ssl = OvsSsl::set(&sw_key, &sw_cert, &ca_pem);
    let mut bridges = Bridges::default();
    let (good, foreign) = (dpid(6, 1), dpid(6, 2));
    let arg = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
    let tls_args = [
        "--tls-cert".to_string(),
        arg(&ctl_cert),
        "--tls-key".to_string(),
        arg(&ctl_key),
        "--tls-ca".to_string(),
        arg(&ca_pem),
    ];
    let ctl = Controller::start_with(d, &[("r1", good), ("r2", foreign)], &tls_args);
    let target = format!("ssl:127.0.0.1:{}", ctl.of_port);
    let failures0 = ctl.metric(TLS_FAILURES).expect("metrics");

    // 1. The switch certificate is signed by the controller's CA: it connects.
    let t0 = Instant::now();
    let ports = bridges.add_with("ssrt61", good, "OpenFlow13", &target);
    let want = [(good, ports)];
    let (api, ovs) = wait_reconnected(
        "TLS bridge",
        t0,
        || ctl.check_connected(&want),
        || bridges.check_connected(None),
    );
    note(&format!(
        "ssl: bridge: API after {:.2} s, OVSDB is_connected after {:.2} s",
        api.as_secs_f64(),
        ovs.as_secs_f64()
    ));
    let failures = ctl.metric(TLS_FAILURES).expect("metrics");
    assert_eq!(
        failures,
        failures0,
        "TLS failures while a good switch connected:\n{}",
        ctl.log()
    );

    // 2. OVS now presents a certificate from another CA (for new connections; it still trusts
    //    the controller's certificate): a new bridge is refused.
    ssl.reset(&foreign_key, &foreign_cert, &ca_pem);
    assert_eq!(
        ctl.metric(TLS_FAILURES).expect("metrics"),
        failures0,
        "set-ssl alone made a TLS failure:\n{}",
        ctl.log()
    );
    let t1 = Instant::now();
    bridges.add_with("ssrt62", foreign, "OpenFlow13", &target);
    let never_connected = || -> Result<(), String> {
        let all = ctl.switches()?;
        let s = all
            .iter()
            .find(|s| s.dpid == foreign)
            .ok_or("r2 not listed")?;
        assert!(
            !s.connected,
            "a switch with a foreign certificate is connected: {s:?}\n{}",
            ctl.log()
        );
        Ok(())
    };
    wait_for("the foreign certificate refused", RECONNECT_LIMIT, || {
        never_connected()?;
        let n = ctl.metric(TLS_FAILURES)?;
        let log = ctl.log();
        if n > failures0 && log.contains("TLS handshake failed") {
            Ok(())
        } else {
            Err(format!("{TLS_FAILURES} {n}; log so far:\n{log}"))
        }
    });
    let refused = t1.elapsed();
    // OVSDB: a statistics refresh since the bridge was made, and not connected.
    let foreign_br = ["ssrt62".to_string()];
    wait_for(
        "OVSDB to show the foreign bridge unconnected",
        Duration::from_secs(12),
        || {
            never_connected()?;
            let status = vsctl_get_each(&foreign_br, &[], "status")?;
            if status[0] == "{}" {
                return Err("no status refresh yet".into());
            }
            match vsctl_get_each(&foreign_br, &[], "is_connected")?[0].as_str() {
                "false" => Ok(()),
                c => Err(format!("OVSDB says is_connected={c}: {status:?}")),
            }
        },
    );
    never_connected().expect("API");
    // The first bridge's connection, made with the good certificate, is undisturbed.
    ctl.check_connected(&want)
        .expect("the good TLS bridge is still connected");
    let failures = ctl.metric(TLS_FAILURES).expect("metrics");
    let status = vsctl_get_each(&foreign_br, &[], "status").expect("status");
    note(&format!(
        "foreign certificate: first TLS failure after {:.2} s; still unconnected after {:.2} s (API and OVSDB); {TLS_FAILURES} {failures}; OVS status {}",
        refused.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        status[0]
    ));
    let log = ctl.log();
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake failed"))
        .expect("TLS failure line");
    note(&format!("refused with: {line}"));
    let connects = |d| {
        lines_about(&log, d)
            .into_iter()
            .filter(|l| l.contains("switch connected"))
            .count()
    };
    assert_eq!(connects(good), 1, "{log}");
    assert_eq!(connects(foreign), 0, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
