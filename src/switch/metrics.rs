//! Counters for `GET /metrics` (Prometheus text format). Lock-free: one atomic per counter,
//! one per message type and direction.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

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
    msgs_in: ShardedCounts<TYPES>,
    msgs_out: ShardedCounts<TYPES>,
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
            msgs_in: ShardedCounts::default(),
            msgs_out: ShardedCounts::default(),
        }
    }
}

/// Counters that several threads add to, one copy per thread slot (each copy on its own
/// cache lines), summed when read. With one shared atomic per counter, the runtime's two
/// worker threads passed its cache line back and forth on every increment: per packet-in
/// for the packet-in kinds (6-8 % of the ARP answer rate, measured with ofload), per socket
/// read for the message counts (one read per message at `ofload --window 1`).
#[derive(Debug)]
pub struct ShardedCounts<const N: usize>([CachePadded<[AtomicU64; N]>; SHARDS]);

/// Thread slots of a [`ShardedCounts`]: threads beyond this share slots (still correct, as
/// every slot is atomic).
const SHARDS: usize = 8;

impl<const N: usize> Default for ShardedCounts<N> {
    fn default() -> Self {
        ShardedCounts(std::array::from_fn(|_| {
            CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))
        }))
    }
}

impl<const N: usize> ShardedCounts<N> {
    /// Adds `n` to counter `i` (nothing if `i` is out of range).
    pub fn add(&self, i: usize, n: u64) {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
        }
        let slot = SLOT.with(|s| *s);
        if let Some(c) = self.0.get(slot).and_then(|s| s.get(i)) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Counter `i`: the sum of every thread slot's.
    pub fn get(&self, i: usize) -> u64 {
        self.0
            .iter()
            .filter_map(|s| s.get(i))
            .map(|c| c.load(Relaxed))
            .sum()
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
    fn drain_into(&mut self, to: &ShardedCounts<TYPES>) {
        if !std::mem::take(&mut self.any) {
            return;
        }
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c > 0 {
                to.add(i, std::mem::take(c));
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
        self.msgs_in.get(slot(msg_type))
    }

    pub fn messages_out(&self, msg_type: u8) -> u64 {
        self.msgs_out.get(slot(msg_type))
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
            for t in 0..TYPES {
                let v = arr.get(t);
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
    fn sharded_counts_sum_every_threads_additions() {
        let c = std::sync::Arc::new(ShardedCounts::<3>::default());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(t % 2, 1);
                    }
                    c.add(2, 5);
                    c.add(3, 1); // out of range: ignored
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = (SHARDS + 3) as u64;
        assert_eq!(c.get(0) + c.get(1), 1000 * n);
        assert_eq!(c.get(2), 5 * n);
        assert_eq!(c.get(3), 0);
    }

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
