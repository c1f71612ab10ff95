//! A fast pinger (`ping -i 0.01`) in a host's namespace and what its output says: losses, the
//! longest run of them, when they happened.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::super::ovs_fabric::OvsFabric;
use super::*;

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
    pub fn start(fabric: &OvsFabric, host: &str, dst: impl Into<IpAddr>) -> Result<Pinger, String> {
        Self::start_every(fabric, host, dst, "0.01")
    }

    /// Like [`Pinger::start`], one request every `interval` seconds (as ping's `-i` takes it).
    pub fn start_every(
        fabric: &OvsFabric,
        host: &str,
        dst: impl Into<IpAddr>,
        interval: &str,
    ) -> Result<Pinger, String> {
        let dst: IpAddr = dst.into();
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
