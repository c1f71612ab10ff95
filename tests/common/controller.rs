//! The real controller binary under test: `servswitch run` on free loopback ports, its log,
//! and its REST API over plain HTTP (`common::controller`; `ovs_fabric` re-exports it).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The real controller binary, `servswitch run`, on free loopback ports; stopped on drop
/// (SIGTERM, then SIGKILL after 5 s). Its log goes to a file, see [`ControllerProcess::log`].
pub struct ControllerProcess {
    child: Child,
    pub of_port: u16,
    pub api_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ControllerProcess {
    /// Starts `servswitch run --topology FILE --listen 127.0.0.1:P --api 127.0.0.1:Q EXTRA...`
    /// and waits until the REST API answers.
    pub fn start(topology: &Path, extra: &[&str]) -> ControllerProcess {
        Self::start_on(topology, free_port(), free_port(), extra)
    }

    /// Kills it with SIGKILL (no clean shutdown) and waits for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new controller on the same OpenFlow and API ports (the switches reconnect to it).
    pub fn restart(&self, topology: &Path, extra: &[&str]) -> ControllerProcess {
        Self::start_on(topology, self.of_port, self.api_port, extra)
    }

    fn start_on(topology: &Path, of_port: u16, api_port: u16, extra: &[&str]) -> ControllerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("servswitch.log");
        // SERVSWITCH_BIN runs another build under the same tests (to measure an older one).
        let bin = std::env::var_os("SERVSWITCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_servswitch")));
        let child = Command::new(bin)
            .arg("run")
            .arg("--topology")
            .arg(topology)
            .args(["--listen", &format!("127.0.0.1:{of_port}")])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starting servswitch");
        let mut c = ControllerProcess {
            child,
            of_port,
            api_port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("servswitch exited at start ({status}):\n{}", c.log());
            }
            if TcpStream::connect(("127.0.0.1", api_port)).is_ok() {
                return c;
            }
            if Instant::now() >= deadline {
                panic!("servswitch's API did not come up:\n{}", c.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A counter or gauge of `/metrics` (0 when absent or unreadable).
    pub fn metric(&self, name: &str) -> u64 {
        self.api_get("/metrics")
            .ok()
            .and_then(|(_, body)| {
                body.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Its resident memory (VmRSS, KiB; 0 when unreadable).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Where the API says the host named `host` is: (switch, port).
    pub fn host_location(&self, host: &str) -> Option<(String, u64)> {
        let (_, body) = self.api_get("/api/v1/hosts").ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let h = v.as_array()?.iter().find(|h| h["name"] == host)?.clone();
        Some((
            h["location"]["switch"].as_str()?.to_string(),
            h["location"]["port"].as_u64()?,
        ))
    }

    /// A switch's live meters as `GET /api/v1/meters/{switch}` reads them: (meter name, the
    /// first band's rate, packets dropped), in the API's order; empty when unreadable.
    pub fn meters(&self, switch: &str) -> Vec<(String, u64, u64)> {
        let Ok((200, body)) = self.api_get(&format!("/api/v1/meters/{switch}")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["meter"].as_str()?.to_string(),
                    m["bands"][0]["rate"].as_u64()?,
                    m["dropped"].as_u64()?,
                ))
            })
            .collect()
    }

    /// `GET path` on the REST API: (status, body).
    pub fn api_get(&self, path: &str) -> Result<(u16, String), String> {
        self.api("GET", path)
    }

    /// `METHOD path` (no body) on the REST API: (status, body).
    pub fn api(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        self.api_raw(method, path, &[], "").map(|(s, _, b)| (s, b))
    }

    /// `METHOD path` with extra header lines and a body: (status, response head, body).
    pub fn api_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, String, String), String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.api_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP header in {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        Ok((status, head.to_string(), body.to_string()))
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
