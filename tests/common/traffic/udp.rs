//! A UDP flow between two hosts, its sink's count of what arrived.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::super::ovs_fabric::{python3, OvsFabric};
use super::*;

/// UDP source and sink: `UDP_FLOW recv PORT READY OUT` / `UDP_FLOW send DST PORT INTERVAL
/// STOP OUT`; each writes a JSON report at its end.
pub const UDP_FLOW: &str = include_str!("../../traffic/udp_flow.py");

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
