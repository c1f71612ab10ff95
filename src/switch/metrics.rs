//! Counters for `GET /metrics` (Prometheus text format). Lock-free: one atomic per counter,
//! one per message type and direction.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Message types 0..=29 are counted individually; anything else in slot 30.
const TYPES: usize = 31;

/// The controller's counters.
#[derive(Debug)]
pub struct Metrics {
    pub connections_accepted: AtomicU64,
    pub connections_closed: AtomicU64,
    pub handshakes_completed: AtomicU64,
    pub switches_refused: AtomicU64,
    pub switches_replaced: AtomicU64,
    pub decode_errors: AtomicU64,
    pub switch_errors: AtomicU64,
    pub tls_failures: AtomicU64,
    msgs_in: [AtomicU64; TYPES],
    msgs_out: [AtomicU64; TYPES],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_accepted: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            handshakes_completed: AtomicU64::new(0),
            switches_refused: AtomicU64::new(0),
            switches_replaced: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            switch_errors: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            msgs_in: std::array::from_fn(|_| AtomicU64::new(0)),
            msgs_out: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn slot(msg_type: u8) -> usize {
    (msg_type as usize).min(TYPES - 1)
}

/// Message counts of one connection's batch, added to the shared counters once per batch:
/// two worker threads incrementing the same atomics per message kept its cache line moving
/// between cores (docs/performance.md).
#[derive(Debug, Default)]
pub struct Tally {
    counts: [u64; TYPES],
    any: bool,
}

impl Tally {
    pub fn count(&mut self, msg_type: u8) {
        if let Some(c) = self.counts.get_mut(slot(msg_type)) {
            *c += 1;
            self.any = true;
        }
    }

    /// Adds the counts to `to` and starts again from zero.
    fn drain_into(&mut self, to: &[AtomicU64; TYPES]) {
        if !std::mem::take(&mut self.any) {
            return;
        }
        for (c, t) in self.counts.iter_mut().zip(to) {
            if *c > 0 {
                t.fetch_add(std::mem::take(c), Relaxed);
            }
        }
    }
}

impl Metrics {
    /// Adds a batch of received messages.
    pub fn messages_in_batch(&self, tally: &mut Tally) {
        tally.drain_into(&self.msgs_in);
    }

    /// Adds a batch of sent messages.
    pub fn messages_out_batch(&self, tally: &mut Tally) {
        tally.drain_into(&self.msgs_out);
    }

    pub fn messages_in(&self, msg_type: u8) -> u64 {
        self.msgs_in
            .get(slot(msg_type))
            .map_or(0, |c| c.load(Relaxed))
    }

    pub fn messages_out(&self, msg_type: u8) -> u64 {
        self.msgs_out
            .get(slot(msg_type))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Renders every counter, plus the `connected` gauge given by the caller.
    pub fn render(&self, connected: usize) -> String {
        let mut s = String::new();
        let counters: [(&str, &str, &AtomicU64); 8] = [
            (
                "servswitch_connections_accepted_total",
                "TCP/TLS connections accepted",
                &self.connections_accepted,
            ),
            (
                "servswitch_connections_closed_total",
                "switch connections ended",
                &self.connections_closed,
            ),
            (
                "servswitch_handshakes_completed_total",
                "OpenFlow handshakes completed",
                &self.handshakes_completed,
            ),
            (
                "servswitch_switches_refused_total",
                "switches refused (version, unknown datapath id)",
                &self.switches_refused,
            ),
            (
                "servswitch_switches_replaced_total",
                "sessions replaced by a reconnect of the same datapath",
                &self.switches_replaced,
            ),
            (
                "servswitch_decode_errors_total",
                "malformed messages received",
                &self.decode_errors,
            ),
            (
                "servswitch_switch_errors_total",
                "OFPT_ERROR messages received",
                &self.switch_errors,
            ),
            (
                "servswitch_tls_failures_total",
                "TLS handshakes that failed",
                &self.tls_failures,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP servswitch_switches_connected switches with a completed handshake\n# TYPE servswitch_switches_connected gauge\nservswitch_switches_connected {connected}"
        );
        for (name, dir, arr) in [
            (
                "servswitch_messages_received_total",
                "received from",
                &self.msgs_in,
            ),
            ("servswitch_messages_sent_total", "sent to", &self.msgs_out),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} OpenFlow messages {dir} switches, by type\n# TYPE {name} counter"
            );
            for (t, c) in arr.iter().enumerate() {
                let v = c.load(Relaxed);
                if v > 0 {
                    let ty = if t < TYPES - 1 {
                        ofp13::names::msg_type_name(t as u8)
                    } else {
                        "OFPT_UNKNOWN"
                    };
                    let _ = writeln!(s, "{name}{{type=\"{ty}\"}} {v}");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        let (mut rx, mut tx) = (Tally::default(), Tally::default());
        rx.count(10);
        rx.count(10);
        tx.count(14);
        rx.count(200);
        m.messages_in_batch(&mut rx);
        m.messages_out_batch(&mut tx);
        // A drained tally adds nothing a second time.
        m.messages_in_batch(&mut rx);
        let t = m.render(3);
        assert!(t.contains("servswitch_messages_received_total{type=\"OFPT_PACKET_IN\"} 2"));
        assert!(t.contains("servswitch_messages_sent_total{type=\"OFPT_FLOW_MOD\"} 1"));
        assert!(t.contains("servswitch_messages_received_total{type=\"OFPT_UNKNOWN\"} 1"));
        assert!(t.contains("servswitch_switches_connected 3"));
    }
}
