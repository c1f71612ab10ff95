//! Traffic that tests run across an [`OvsFabric`] and measure: a TCP echo stream that must
//! survive (a migration, say) without a reconnect, a fast pinger that counts losses, and a
//! packet capture on hosts' interfaces without tcpdump (so a test can assert that an address,
//! e.g. a care-of address, never reaches any host).
//!
//! Everything runs as python3 or ping inside the hosts' namespaces; the scripts are the string
//! constants below, written to a temporary directory named with the fabric's prefix. Every
//! process is stopped again on drop, also when a test panics.
//!
//! By kind: [`tcp`], [`ping`], [`capture`], [`udp`], [`flood`]; this file holds the process
//! plumbing they share. Each test binary compiles this as its own module and uses part of
//! it, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod capture;
pub mod flood;
pub mod ping;
pub mod tcp;
pub mod udp;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ovs_fabric::OvsFabric;

// What the test binaries use, by the paths they used before the split; each uses some.
#[allow(unused_imports)]
pub use {
    capture::{mentioning, parse_capture_line, Capture, CaptureSet, Packet, SNIFFER},
    flood::{Flood, FloodReport, FLOOD},
    ping::{parse_ping_run, PingReport, Pinger},
    tcp::{StreamReport, TcpStream, ECHO_CLIENT, ECHO_SERVER},
    udp::{UdpFlow, UdpReport, UDP_FLOW},
};

// ---------------------------------------------------------------------------------------
// Process plumbing

pub(crate) fn tempdir(fabric: &OvsFabric, what: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(&format!("{}-{what}-", fabric.prefix()))
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))
}

pub(crate) fn write_script(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

pub(crate) fn file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Sends a signal to one child (the child itself: `ip netns exec` execs its command).
pub(crate) fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
pub(crate) fn terminate(child: &mut Child, sig: &str, grace: Duration) -> Option<ExitStatus> {
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
pub(crate) fn wait_for_file(
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

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// TCP echo stream
