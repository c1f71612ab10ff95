//! Which links the fabric routes over ([`LinkWatch`]; the re-plan it leads to is in
//! [`crate::app::replan`]): the router watches every link end's port status and
//! every switch's connection, and takes out of use a link whose end is down, every link of a
//! switch that is not connected, and a link that flaps; the fabric's routes follow
//! ([`crate::fabric::plan::Fabric::set_unused_changes`]) and every connected switch whose
//! routes changed is reconciled with the new plan (routes, groups, and the paths of migrated
//! VMs, which are planned over the same routes).
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
//!
//! **LLDP checks the declared links** ([`LinkWatch::heard`]). Declared links are used from
//! the start: a restarted controller changes nothing while it checks. Once both switches of a
//! link have had their tables reconciled, the controller sends LLDP out of every link port
//! ([`crate::app::replan`]), and each end must hear its declared peer: a link where an end
//! hears another port is *miswired*; one where an end has heard nothing for [`SILENT_AFTER`]
//! (or nothing more for [`STALE_AFTER`]) while both ports are up is *unverified*. Either is
//! out of use until LLDP sees it right again, both ways.
//!
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

/// How long both ends of a link have to hear each other, once checking began, before the
/// link is unverified (out of use). LLDP is sent every [`LLDP_FAST`] meanwhile: five tries.
pub const SILENT_AFTER: Duration = Duration::from_millis(1250);
/// A link that LLDP verified is unverified again when an end has heard nothing more for this
/// long (five of [`LLDP_EVERY`]).
pub const STALE_AFTER: Duration = Duration::from_secs(5);
/// How often LLDP is sent out of every link port of a connected switch.
pub const LLDP_EVERY: Duration = Duration::from_secs(1);
/// How often during a switch's first [`LLDP_FAST_FOR`], so a link is checked in time.
pub const LLDP_FAST: Duration = Duration::from_millis(250);
pub const LLDP_FAST_FOR: Duration = Duration::from_secs(2);
/// The time to live LLDP frames carry (what a foreign LLDP agent would keep them for).
pub const LLDP_TTL_S: u16 = 5;

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
    /// Each declared link end's declared peer (both directions).
    peers: BTreeMap<End, End>,
    /// Since when each switch's links are checked by LLDP (its table reconciled in this
    /// session); a switch not here is not checked.
    lldp_since: BTreeMap<String, Instant>,
    /// When an end's port last came back up (checking starts again then).
    up_since: BTreeMap<End, Instant>,
    /// When each end last heard LLDP from its declared peer.
    heard: BTreeMap<End, Instant>,
    /// The last LLDP an end heard from anywhere else: from where, when.
    wrong: BTreeMap<End, (End, Instant)>,
    /// What was last reported of each link (by its first end), so each change is logged once.
    reported: BTreeMap<End, Option<Unused>>,
}

/// Why an end is out of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unused {
    PortDown,
    Disconnected,
    Dampened,
    /// An end heard LLDP from a port that is not its declared peer.
    Miswired,
    /// An end has not heard its peer's LLDP in time while both ports are up.
    Silent,
}

impl Unused {
    pub fn text(self) -> &'static str {
        match self {
            Unused::PortDown => "port down",
            Unused::Disconnected => "switch disconnected",
            Unused::Dampened => "dampened: it flaps",
            Unused::Miswired => "miswired: LLDP came from another port",
            Unused::Silent => "unverified: no LLDP from the peer while its ports are up",
        }
    }

    /// The state `GET /api/v1/links` shows: `down`, `miswired` or `unverified`.
    pub fn state(self) -> &'static str {
        match self {
            Unused::PortDown | Unused::Disconnected | Unused::Dampened => "down",
            Unused::Miswired => "miswired",
            Unused::Silent => "unverified",
        }
    }
}

/// What LLDP has found of a link so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lldp {
    /// Not checked: a switch of the link is not connected (or its table not reconciled yet).
    Off,
    /// Checked, not both ways heard yet (the link is used meanwhile).
    Waiting,
    /// Both ends heard their declared peer.
    Verified,
    /// Contradicted: see the link's [`Unused`].
    Contradicted,
}

impl Lldp {
    pub fn text(self) -> &'static str {
        match self {
            Lldp::Off => "off",
            Lldp::Waiting => "waiting",
            Lldp::Verified => "verified",
            Lldp::Contradicted => "contradicted",
        }
    }
}

impl LinkWatch {
    /// A watch over the declared links `links` (pairs of ends).
    pub fn new(links: impl IntoIterator<Item = (End, End)>) -> LinkWatch {
        let mut w = LinkWatch::default();
        for (a, b) in links {
            w.peers.insert(a.clone(), b.clone());
            w.peers.insert(b, a);
        }
        w
    }

    /// An end's port went down (`up == false`) or came up. Whether it changed.
    pub fn port(&mut self, end: End, up: bool, now: Instant) -> bool {
        if up {
            let changed = self.down.remove(&end);
            if changed {
                self.up_since.insert(end, now);
            }
            return changed;
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
        if !up {
            self.lldp_since.remove(switch);
        }
        if up {
            self.disconnected.remove(switch).is_some()
        } else {
            self.disconnected.insert(switch.to_string(), now).is_none()
        }
    }

    /// The switch's table is reconciled in this session: its links are checked by LLDP from
    /// `now` (both ends' switches must be).
    pub fn lldp_began(&mut self, switch: &str, now: Instant) {
        self.lldp_since.insert(switch.to_string(), now);
    }

    /// End `at` heard LLDP sent out of `from`. Whether that changes what LLDP says of a link
    /// (a link is found miswired, or seen right again).
    pub fn heard(&mut self, at: End, from: End, now: Instant) -> bool {
        if !self.peers.contains_key(&at) {
            return false;
        }
        let before = [self.lldp_judgment(&at, now), self.lldp_judgment(&from, now)];
        if self.peers.get(&at) == Some(&from) {
            self.heard.insert(at.clone(), now);
        } else {
            self.wrong.insert(at.clone(), (from.clone(), now));
        }
        before != [self.lldp_judgment(&at, now), self.lldp_judgment(&from, now)]
    }

    /// Since when the link of end `e` is checked: both switches checking, from the later
    /// of their starts and of either port's coming back up.
    fn checking_since(&self, e: &End) -> Option<Instant> {
        let p = self.peers.get(e)?;
        let mut since = *self.lldp_since.get(&e.0)?;
        since = since.max(*self.lldp_since.get(&p.0)?);
        for x in [e, p] {
            if let Some(&t) = self.up_since.get(x) {
                since = since.max(t);
            }
        }
        Some(since)
    }

    /// What LLDP says of the link of end `e` at `now`: miswired, silent, or nothing against
    /// it (None also when it is not checked).
    fn lldp_judgment(&self, e: &End, now: Instant) -> Option<Unused> {
        let p = self.peers.get(e)?;
        let since = self.checking_since(e)?;
        let heard = |x: &End| self.heard.get(x).copied().filter(|&t| t >= since);
        for x in [e, p] {
            if let Some(&(_, t)) = self.wrong.get(x) {
                if t >= since && heard(x).is_none_or(|h| h < t) {
                    return Some(Unused::Miswired);
                }
            }
        }
        for x in [e, p] {
            let silent = match heard(x) {
                None => now >= since + SILENT_AFTER,
                Some(h) => now >= h + STALE_AFTER,
            };
            if silent {
                return Some(Unused::Silent);
            }
        }
        None
    }

    /// What LLDP has found of the link of end `e`.
    pub fn lldp(&self, e: &End, now: Instant) -> Lldp {
        let Some(since) = self.checking_since(e) else {
            return Lldp::Off;
        };
        if self.lldp_judgment(e, now).is_some() {
            return Lldp::Contradicted;
        }
        let both = self.peers.get(e).is_some_and(|p| {
            [e, p]
                .iter()
                .all(|x| self.heard.get(*x).is_some_and(|&t| t >= since))
        });
        if both {
            Lldp::Verified
        } else {
            Lldp::Waiting
        }
    }

    /// Why LLDP contradicts the link of end `e`, in words (which port an end heard, or which
    /// end heard nothing), for the log line and the API.
    pub fn lldp_detail(&self, e: &End, now: Instant) -> Option<String> {
        let p = self.peers.get(e)?;
        let since = self.checking_since(e)?;
        match self.lldp_judgment(e, now)? {
            Unused::Miswired => [e, p].into_iter().find_map(|x| {
                let (from, t) = self.wrong.get(x)?;
                (*t >= since).then(|| {
                    format!(
                        "LLDP sent out of {}:{} arrived at {}:{} (declared peer {}:{})",
                        from.0, from.1, x.0, x.1, self.peers[x].0, self.peers[x].1
                    )
                })
            }),
            _ => [e, p]
                .into_iter()
                .find(|x| {
                    self.heard
                        .get(*x)
                        .is_none_or(|&h| h < since || now >= h + STALE_AFTER)
                })
                .map(|x| {
                    let y = &self.peers[x];
                    format!("{}:{} has not heard {}:{}", x.0, x.1, y.0, y.1)
                }),
        }
    }

    /// Records why the link of first end `a` is out of use now (None: in use): the reason
    /// it had before, when that is different (a change to log), else None.
    pub fn report(&mut self, a: &End, now: Option<Unused>) -> Option<Option<Unused>> {
        let before = self.reported.insert(a.clone(), now).flatten();
        (before != now).then_some(before)
    }

    /// Why the link of first end `a` was out of use at the last re-plan (None: in use).
    pub fn reported(&self, a: &End) -> Option<Unused> {
        self.reported.get(a).copied().flatten()
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
        if let Some(p) = self.penalties.get_mut(end) {
            if p.suppressed && p.now(now) < REUSE {
                p.suppressed = false;
            }
            if p.suppressed {
                return Some(Unused::Dampened);
            }
        }
        self.lldp_judgment(end, now)
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
        let lldp = ends
            .iter()
            .filter_map(|e| self.lldp_deadline(e, now))
            .map(|at| at - now + Duration::from_millis(10));
        self.next_reuse(ends, now)
            .into_iter()
            .chain(grace)
            .chain(lldp)
            .min()
    }

    /// When the link of end `e` turns silent if its end `e` hears nothing more.
    fn lldp_deadline(&self, e: &End, now: Instant) -> Option<Instant> {
        let since = self.checking_since(e)?;
        let at = match self.heard.get(e).filter(|&&t| t >= since) {
            None => since + SILENT_AFTER,
            Some(&h) => h + STALE_AFTER,
        };
        (at > now).then_some(at)
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

    /// a1:1 - c1:1 and a2:1 - c2:1, both switches of each checking from t0.
    fn two_links(t0: Instant) -> LinkWatch {
        let mut w = LinkWatch::new([(end("a1", 1), end("c1", 1)), (end("a2", 1), end("c2", 1))]);
        for s in ["a1", "c1", "a2", "c2"] {
            w.lldp_began(s, t0);
        }
        w
    }

    #[test]
    fn lldp_verifies_a_link_both_ways_and_it_is_used_meanwhile() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = two_links(t0);
        assert_eq!(w.lldp(&end("a1", 1), t0), Lldp::Waiting);
        assert_eq!(w.unused(&end("a1", 1), t0), None, "declared links are used");
        assert!(!w.heard(end("a1", 1), end("c1", 1), t0 + ms(10)));
        assert_eq!(w.lldp(&end("c1", 1), t0 + ms(10)), Lldp::Waiting, "one way");
        w.heard(end("c1", 1), end("a1", 1), t0 + ms(20));
        assert_eq!(w.lldp(&end("c1", 1), t0 + ms(20)), Lldp::Verified);
        // Heard every second, it stays verified; silent for STALE_AFTER, it is not.
        let mut t = t0 + ms(20);
        for _ in 0..10 {
            t += LLDP_EVERY;
            w.heard(end("a1", 1), end("c1", 1), t);
            w.heard(end("c1", 1), end("a1", 1), t);
            assert_eq!(w.unused(&end("a1", 1), t), None);
        }
        assert_eq!(
            w.next_change(&[end("a1", 1)], t),
            Some(STALE_AFTER + ms(10))
        );
        assert_eq!(
            w.unused(&end("a1", 1), t + STALE_AFTER),
            Some(Unused::Silent)
        );
        // The other link heard nothing at all: unverified SILENT_AFTER after checking began.
        assert_eq!(w.unused(&end("c2", 1), t0 + SILENT_AFTER - ms(1)), None);
        assert_eq!(
            w.unused(&end("c2", 1), t0 + SILENT_AFTER),
            Some(Unused::Silent)
        );
        assert_eq!(
            w.lldp_detail(&end("a2", 1), t0 + SILENT_AFTER).as_deref(),
            Some("a2:1 has not heard c2:1")
        );
    }

    #[test]
    fn lldp_from_another_port_makes_both_links_miswired_until_it_is_seen_right() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = two_links(t0);
        // a1:1 is cabled to c2:1 (and a2:1 to c1:1).
        assert!(w.heard(end("a1", 1), end("c2", 1), t0 + ms(5)));
        assert_eq!(w.unused(&end("c1", 1), t0 + ms(5)), Some(Unused::Miswired));
        assert!(w.heard(end("c2", 1), end("a1", 1), t0 + ms(6)));
        assert_eq!(w.unused(&end("a2", 1), t0 + ms(6)), Some(Unused::Miswired));
        assert_eq!(
            w.lldp_detail(&end("a1", 1), t0 + ms(6)).as_deref(),
            Some("LLDP sent out of c2:1 arrived at a1:1 (declared peer c1:1)")
        );
        assert_eq!(w.lldp(&end("a1", 1), t0 + ms(6)), Lldp::Contradicted);
        // Recabled: each port goes down and comes up, and LLDP now arrives right.
        let t1 = t0 + ms(500);
        for e in [end("a1", 1), end("c1", 1)] {
            w.port(e.clone(), false, t1);
            w.port(e, true, t1 + ms(1));
        }
        assert_eq!(w.unused(&end("a1", 1), t1 + ms(2)), None, "checked anew");
        w.heard(end("a1", 1), end("c1", 1), t1 + ms(10));
        w.heard(end("c1", 1), end("a1", 1), t1 + ms(11));
        assert_eq!(w.lldp(&end("a1", 1), t1 + ms(11)), Lldp::Verified);
        // A wrong frame after a right one contradicts again; a right one after it mends.
        assert!(w.heard(end("c1", 1), end("a2", 1), t1 + ms(20)));
        assert_eq!(w.unused(&end("a1", 1), t1 + ms(20)), Some(Unused::Miswired));
        assert!(w.heard(end("c1", 1), end("a1", 1), t1 + ms(30)));
        assert_eq!(w.unused(&end("a1", 1), t1 + ms(30)), None);
    }

    #[test]
    fn lldp_checks_only_links_whose_switches_both_check() {
        let t0 = Instant::now();
        let mut w = LinkWatch::new([(end("a1", 1), end("c1", 1))]);
        w.lldp_began("a1", t0);
        let later = t0 + SILENT_AFTER * 4;
        assert_eq!(w.lldp(&end("a1", 1), later), Lldp::Off);
        assert_eq!(w.unused(&end("a1", 1), later), None);
        assert_eq!(w.next_change(&[end("a1", 1)], later), None);
        w.lldp_began("c1", later);
        assert_eq!(
            w.next_change(&[end("a1", 1)], later),
            Some(SILENT_AFTER + Duration::from_millis(10))
        );
        // A switch that goes away stops the checks of its links; back, they start anew.
        w.connection("c1", false, later);
        assert_eq!(w.lldp(&end("a1", 1), later + SILENT_AFTER), Lldp::Off);
        // An end not declared (a host port) hears nothing.
        assert!(!w.heard(end("a1", 9), end("c1", 1), later));
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
