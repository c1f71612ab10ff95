//! A TCP echo stream that must survive (a migration, say) without a reconnect: the server and
//! client run as python3 in hosts' namespaces; the client's report says whether the
//! connection stayed open and how long echoes stalled.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::super::ovs_fabric::{python3, OvsFabric};
use super::*;

/// How long a stopping client may wait for the echoes still on their way.
const DRAIN_SECS: f64 = 2.0;

/// TCP echo server: `ECHO_SERVER PORT READY_FILE LOG_FILE`. Echoes every connection until
/// killed; logs `accepted PEER` and `closed PEER bytes=N WHY` lines.
pub const ECHO_SERVER: &str = include_str!("../../traffic/echo_server.py");

/// TCP echo client: `ECHO_CLIENT DST PORT SECONDS STOP_FILE RESULT_FILE UP_FILE DRAIN`.
/// Connects once (no reconnect, ever), sends `%08d\n` every 10 ms and checks that the echoes
/// come back in order; stops after SECONDS (0: never), when STOP_FILE exists or on
/// SIGTERM/SIGINT, then waits up to DRAIN seconds for the echoes still missing. Touches UP_FILE
/// at the first echo; writes its report as JSON to RESULT_FILE (atomically) and exits 0.
/// Any socket error, EOF or wrong echo ends it with `open: false`.
pub const ECHO_CLIENT: &str = include_str!("../../traffic/echo_client.py");

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
        dst: impl Into<IpAddr>,
        port: u16,
    ) -> Result<TcpStream, String> {
        Self::start_for(fabric, server_host, client_host, dst, port, None)
    }

    /// Like [`TcpStream::start`]; with `duration` the client stops sending by itself then.
    pub fn start_for(
        fabric: &OvsFabric,
        server_host: &str,
        client_host: &str,
        dst: impl Into<IpAddr>,
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
        dst: impl Into<IpAddr>,
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
                    &dst.into().to_string(),
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
        dst: impl Into<IpAddr>,
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
