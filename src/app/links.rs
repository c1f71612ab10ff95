//! Which links the fabric routes over ([`LinkWatch`]; the re-plan it leads to is in
//! [`crate::app::replan`]): the router watches every link end's port status and
//! every switch's connection, and takes out of use a link whose end is down, every link of a
//! switch that is not connected, and a link that flaps; the fabric's routes follow
//! ([`crate::fabric::plan::Fabric::set_unused`]) and every connected switch is reconciled
//! with the new plan (routes, groups, and the paths of migrated VMs, which are planned over
//! the same routes).
//!
//! Local repair comes first and needs no controller: a multipath route's select group
//! watches each bucket's port, so a switch leaves a dead uplink out on its own as soon as its
//! port goes down. The re-plan then repairs what a switch cannot see (the switches upstream
//! that still send toward the far end of a dead link).
//!
//! **Dampening, not a fixed hold-down.** A link that goes down is taken out of use at once; a
//! link that comes back is used at once too, unless it flaps: each time an end goes down its
//! penalty grows by 1, and the penalty halves every [`HALF_LIFE`]. Above [`SUPPRESS`] the end
//! stays out of use, whatever its state, until the penalty has decayed below [`REUSE`] (as
//! BGP's route flap damping does, RFC 2439). One failure and its repair cost two re-plans;
//! a link that flaps every second costs four and then nothing until it has been quiet for
//! about 20 s. A switch whose connection ends is routed around once it has been gone for
//! [`DISCONNECT_GRACE`] (a blip, or the controller's own shutdown, changes nothing).
//! Everything here is given the time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How fast a flapping end's penalty decays.
pub const HALF_LIFE: Duration = Duration::from_secs(10);
/// Above this penalty an end is suppressed (out of use whatever its state).
pub const SUPPRESS: f64 = 3.0;
/// A suppressed end is used again once its penalty has decayed below this.
pub const REUSE: f64 = 1.0;

/// How long a switch may be disconnected before it is routed around: a connection that
/// blips (or a controller that shuts down) changes no route. A switch that dies also takes
/// its neighbours' link ports down, which they report at once.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// A link end: switch name and port.
pub type End = (String, u32);

/// One end's flap penalty, as of `at`.
#[derive(Debug, Clone, Copy)]
struct Penalty {
    value: f64,
    at: Instant,
    suppressed: bool,
}

impl Penalty {
    fn now(&self, now: Instant) -> f64 {
        let t = now.saturating_duration_since(self.at).as_secs_f64();
        self.value * 0.5f64.powf(t / HALF_LIFE.as_secs_f64())
    }
}

/// What the router knows of the link ends' state.
#[derive(Debug, Default)]
pub struct LinkWatch {
    /// Ends whose port is down or gone (PORT_STATUS, or the port list at connect).
    down: BTreeSet<End>,
    /// Switches that were connected and are not now, since when (all their ends out of use
    /// after [`DISCONNECT_GRACE`]).
    disconnected: BTreeMap<String, Instant>,
    penalties: BTreeMap<End, Penalty>,
    /// When the one look-again timer (`Effect::Replan`) is due, if one is armed.
    armed: Option<Instant>,
}

/// Why an end is out of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unused {
    PortDown,
    Disconnected,
    Dampened,
}

impl Unused {
    pub fn text(self) -> &'static str {
        match self {
            Unused::PortDown => "port down",
            Unused::Disconnected => "switch disconnected",
            Unused::Dampened => "dampened: it flaps",
        }
    }
}

impl LinkWatch {
    /// An end's port went down (`up == false`) or came up. Whether it changed.
    pub fn port(&mut self, end: End, up: bool, now: Instant) -> bool {
        if up {
            return self.down.remove(&end);
        }
        if !self.down.insert(end.clone()) {
            return false;
        }
        let p = self.penalties.entry(end).or_insert(Penalty {
            value: 0.0,
            at: now,
            suppressed: false,
        });
        p.value = p.now(now) + 1.0;
        p.at = now;
        p.suppressed |= p.value > SUPPRESS;
        true
    }

    /// A switch connected (`true`) or its connection ended, at `now`.
    pub fn connection(&mut self, switch: &str, up: bool, now: Instant) -> bool {
        if up {
            self.disconnected.remove(switch).is_some()
        } else {
            self.disconnected.insert(switch.to_string(), now).is_none()
        }
    }

    /// Why `end` (a link end) is out of use at `now`, if it is.
    pub fn unused(&mut self, end: &End, now: Instant) -> Option<Unused> {
        if self
            .disconnected
            .get(&end.0)
            .is_some_and(|&since| now.saturating_duration_since(since) >= DISCONNECT_GRACE)
        {
            return Some(Unused::Disconnected);
        }
        if self.down.contains(end) {
            return Some(Unused::PortDown);
        }
        let p = self.penalties.get_mut(end)?;
        if p.suppressed && p.now(now) < REUSE {
            p.suppressed = false;
        }
        p.suppressed.then_some(Unused::Dampened)
    }

    /// How long until something changes by itself: a dampened end of `ends` may be used
    /// again, or a disconnected switch's grace ends.
    pub fn next_change(&self, ends: &[End], now: Instant) -> Option<Duration> {
        let grace = self
            .disconnected
            .values()
            .map(|&since| since + DISCONNECT_GRACE)
            .filter(|&at| at > now)
            .map(|at| at - now + Duration::from_millis(10))
            .min();
        self.next_reuse(ends, now).into_iter().chain(grace).min()
    }

    /// Arms the look-again timer for `at`: whether a timer must be started (none is armed
    /// for an earlier time still to come). Each event of a flapping link would otherwise
    /// start one more timer.
    pub fn arm(&mut self, at: Instant, now: Instant) -> bool {
        match self.armed {
            Some(a) if a > now && a <= at => false,
            _ => {
                self.armed = Some(at);
                true
            }
        }
    }

    /// How long until the first dampened end of `ends` may be used again.
    pub fn next_reuse(&self, ends: &[End], now: Instant) -> Option<Duration> {
        ends.iter()
            .filter_map(|e| self.penalties.get(e))
            .filter(|p| p.suppressed)
            .map(|p| {
                // value * 2^(-t/h) = REUSE  =>  t = h * log2(value / REUSE), from p.at.
                let t = HALF_LIFE.as_secs_f64() * (p.value / REUSE).log2().max(0.0);
                let at = p.at + Duration::from_secs_f64(t);
                at.saturating_duration_since(now) + Duration::from_millis(10)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(s: &str, p: u32) -> End {
        (s.to_string(), p)
    }

    #[test]
    fn a_failure_and_its_repair_are_used_at_once() {
        let mut w = LinkWatch::default();
        let t0 = Instant::now();
        assert!(w.port(end("t1", 1), false, t0));
        assert!(!w.port(end("t1", 1), false, t0), "already down");
        assert_eq!(w.unused(&end("t1", 1), t0), Some(Unused::PortDown));
        assert!(w.port(end("t1", 1), true, t0 + Duration::from_millis(100)));
        assert_eq!(
            w.unused(&end("t1", 1), t0 + Duration::from_millis(100)),
            None
        );
        assert_eq!(w.next_reuse(&[end("t1", 1)], t0), None);
    }

    #[test]
    fn a_flapping_end_is_suppressed_until_its_penalty_decays() {
        let mut w = LinkWatch::default();
        let e = end("a1", 3);
        let mut t = Instant::now();
        for _ in 0..4 {
            w.port(e.clone(), false, t);
            t += Duration::from_secs(1);
            w.port(e.clone(), true, t);
            t += Duration::from_secs(1);
        }
        assert_eq!(w.unused(&e, t), Some(Unused::Dampened), "up, but it flaps");
        let wait = w.next_reuse(std::slice::from_ref(&e), t).unwrap();
        assert!(
            wait > Duration::from_secs(10) && wait < Duration::from_secs(25),
            "{wait:?}"
        );
        assert_eq!(
            w.unused(&e, t + wait - Duration::from_secs(1)),
            Some(Unused::Dampened)
        );
        assert_eq!(w.unused(&e, t + wait), None);
        assert_eq!(w.next_reuse(std::slice::from_ref(&e), t + wait), None);
    }

    #[test]
    fn one_timer_at_a_time_looks_again() {
        let mut w = LinkWatch::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert!(w.arm(t0 + 5 * s, t0));
        assert!(!w.arm(t0 + 6 * s, t0), "the armed one comes first");
        assert!(w.arm(t0 + 2 * s, t0), "an earlier look needs its own timer");
        assert!(!w.arm(t0 + 5 * s, t0 + s));
        assert!(w.arm(t0 + 9 * s, t0 + 3 * s), "the armed one has fired");
    }

    #[test]
    fn a_switch_disconnected_past_the_grace_takes_its_ends_out_of_use() {
        let mut w = LinkWatch::default();
        let t0 = Instant::now();
        assert!(w.connection("c1", false, t0));
        assert_eq!(w.unused(&end("c1", 1), t0), None, "a blip changes nothing");
        let wait = w.next_change(&[], t0).unwrap();
        assert!(
            wait >= DISCONNECT_GRACE && wait < DISCONNECT_GRACE * 2,
            "{wait:?}"
        );
        let later = t0 + DISCONNECT_GRACE;
        assert_eq!(w.unused(&end("c1", 1), later), Some(Unused::Disconnected));
        assert_eq!(w.unused(&end("c2", 1), later), None);
        assert_eq!(w.next_change(&[], later), None);
        assert!(w.connection("c1", true, later));
        assert!(!w.connection("c1", true, later));
        assert_eq!(w.unused(&end("c1", 1), later), None);
    }
}
