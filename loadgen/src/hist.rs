//! The latency histogram and the per-switch counters every run reports.

use crate::*;

/// Latency histogram: 1 µs buckets below this many µs, then 1 ms buckets up to 60 s.
pub(crate) const HIST_US: usize = 1 << 16;
pub(crate) const HIST_LEN: usize = HIST_US + 60_000;

pub(crate) fn bucket(us: u64) -> usize {
    if (us as usize) < HIST_US {
        us as usize
    } else {
        HIST_US + ((us / 1000) as usize).min(HIST_LEN - HIST_US - 1)
    }
}

pub(crate) fn bucket_us(i: usize) -> u64 {
    if i < HIST_US {
        i as u64
    } else {
        (i - HIST_US) as u64 * 1000
    }
}

/// Counters of one switch; merged at the end.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) wrong: u64,
    pub(crate) timeouts: u64,
    pub(crate) flow_mods: u64,
    pub(crate) barriers: u64,
    pub(crate) stats_requests: u64,
    pub(crate) other: u64,
    pub(crate) hist: Vec<u64>,
    pub(crate) max_us: u64,
    /// When the last checked response of the measured period arrived.
    pub(crate) last_ok: Option<Instant>,
    pub(crate) first_wrong: Option<String>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            hist: vec![0; HIST_LEN],
            ..Stats::default()
        }
    }
    pub(crate) fn merge(&mut self, o: &Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.wrong += o.wrong;
        self.timeouts += o.timeouts;
        self.flow_mods += o.flow_mods;
        self.barriers += o.barriers;
        self.stats_requests += o.stats_requests;
        self.other += o.other;
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            *a += b;
        }
        self.max_us = self.max_us.max(o.max_us);
        self.last_ok = self.last_ok.max(o.last_ok);
        if self.first_wrong.is_none() {
            self.first_wrong.clone_from(&o.first_wrong);
        }
    }
    pub(crate) fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, n) in self.hist.iter().enumerate() {
            acc += n;
            if acc >= want {
                return bucket_us(i);
            }
        }
        self.max_us
    }
}

pub(crate) fn record(ctx: &Ctx, st: &mut Stats, sent: Instant, now: Instant) {
    if !ctx.measuring.load(Relaxed) {
        return;
    }
    st.ok += 1;
    st.last_ok = Some(now);
    let us = now.duration_since(sent).as_micros() as u64;
    st.max_us = st.max_us.max(us);
    if let Some(b) = st.hist.get_mut(bucket(us)) {
        *b += 1;
    }
}
