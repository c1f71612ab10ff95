//! A hostile tenant's flood toward the controller (ARP, RARP, gratuitous ARP, IPv4 from
//! unknown sources), from a host's namespace.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::super::ovs_fabric::{python3, OvsFabric};
use super::*;

/// A hostile tenant's flood toward the controller: `FLOOD IFNAME MAC IP SUBNET KINDS SECONDS
/// SEED READY OUT` (see the script's header for the kinds: arp, rarp, garp, ipv4, ipv4src).
pub const FLOOD: &str = include_str!("../../traffic/flood.py");

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
