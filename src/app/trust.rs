//! Verified moves: an announcement cannot steal a VM.
//!
//! Any frame with a known VM's MAC at a new host port moves the VM there (QEMU's RARP, Xen's
//! gratuitous ARP, the first packet); a tenant that forges one takes the VM's traffic. Under
//! the `verified` policy (the default) the move is tentative: it is installed at once, as
//! before, so a genuine migration loses nothing to the check; then the controller probes the
//! place the VM was (an RFC 5227 ARP probe for the VM's address, from the gateway MAC, out of
//! that port only: ONOS probes hosts the same way). A VM that has really moved is paused or
//! gone there and says nothing: after [`PROBE_WINDOW`] the move stands. A VM that answers from
//! its old port was never moved: the claim is refused, the VM is moved back, the refusal is
//! logged once with both places and counted, and the claiming (switch, port, MAC) is
//! quarantined, so its repeats move nothing.
//!
//! No probe is sent, and the move stands at once, when the VM's old port is gone or the VM
//! was detached (its port went down): nothing can answer there. `trusted` moves on every
//! announcement (the behaviour before); `armed-only` moves on none but armed ones.
//!
//! An orchestrator that knows where a VM goes arms the move (`POST /api/v1/migrations` with
//! `"when": "announced"`): the first announcement of the VM at that port commits it at once,
//! with no probe and whatever the policy, until the arm's time to live ends. Armed moves,
//! and the migrations made (by whom, from where to where, how long, with what outcome), are
//! listed by `GET /api/v1/migrations`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ofp13::MacAddr;
use tracing::{debug, info, warn};

use crate::app::claims::{unix_now, Armed, Verifying, PROBES, RECENT_MOVES};
pub use crate::app::claims::{
    Announcements, MoveView, QuarantineView, Trigger, DEFAULT_ARM_TTL, DEFAULT_QUARANTINE,
    MAX_ARM_TTL, PROBE_WINDOW,
};
use crate::app::effect::Effect;
use crate::app::migrate::{MigrateError, MigrationReport};
use crate::app::router::{Router, State};
use crate::fabric::plan::{packet_out, SwitchCtx, GATEWAY_MAC};
use crate::fabric::topology::PortRef;
use crate::packet::{self, Arp, Ethernet};

impl Router {
    /// Sets the policy for announcements that are not expected (`--announcements`).
    pub fn with_announcements(mut self, policy: Announcements) -> Router {
        self.announcements = policy;
        self
    }

    /// Sets how long a refused claimant is ignored (`--quarantine`).
    pub fn with_quarantine(mut self, quarantine: Duration) -> Router {
        self.quarantine = quarantine;
        self
    }

    /// Whether frames of `mac` at `name:port` are ignored as claims: that (switch, port,
    /// MAC) was refused and its quarantine has not ended.
    pub(crate) fn quarantined(
        st: &State,
        name: &str,
        port: u32,
        mac: MacAddr,
        now: Instant,
    ) -> bool {
        !st.quarantine.is_empty()
            && st
                .quarantine
                .get(&(name.to_string(), port, mac))
                .is_some_and(|until| now < *until)
    }

    /// Whether `eth` at `sw:in_port` is a VM answering the probe at the place a claim took it
    /// from: an ARP reply from the VM's MAC to the gateway MAC.
    pub(crate) fn answers_probe(
        st: &State,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        eth: &Ethernet<'_>,
        now: Instant,
    ) -> bool {
        if st.verifying.is_empty() {
            return false;
        }
        let Some(v) = st.verifying.get(&eth.src) else {
            return false;
        };
        if (v.from.0.as_str(), v.from.1) != (sw.name, in_port) || !v.probing(now) {
            return false;
        }
        if eth.ethertype == packet::ETH_IPV6 {
            // The answer to the IPv6 probe: an advertisement to the gateway's MAC.
            return eth.dst == GATEWAY_MAC
                && packet::icmp6::Ipv6::parse(eth.payload)
                    .and_then(|ip| packet::icmp6::Nd::parse(&ip))
                    .is_some_and(|nd| nd.ty == packet::icmp6::NEIGHBOR_ADVERTISEMENT);
        }
        if eth.ethertype != packet::ETH_ARP {
            return false;
        }
        Arp::parse(eth.payload)
            .is_some_and(|a| a.op == packet::ARP_REPLY && a.sha == eth.src && a.tha == GATEWAY_MAC)
    }

    /// Whether a claim of `mac` at `claim` is admitted (under the write lock, where the move
    /// is decided): an armed move there commits at once; anything else goes by the policy.
    pub(crate) fn admit_claim(
        &self,
        st: &mut State,
        mac: MacAddr,
        claim: (&str, u32),
        now: Instant,
    ) -> bool {
        if self.take_armed(st, mac, claim, now) {
            return true;
        }
        let admitted = self.begin_claim(st, mac, claim);
        if admitted {
            st.triggers.insert(mac, (Trigger::Announced, None));
        }
        admitted
    }

    /// Whether a move of `mac` to `claim` is armed and still waiting.
    pub(crate) fn armed_here(st: &State, mac: MacAddr, claim: (&str, u32), now: Instant) -> bool {
        !st.armed.is_empty()
            && st
                .armed
                .get(&mac)
                .is_some_and(|a| (a.to.0.as_str(), a.to.1) == claim && now < a.until)
    }

    /// Commits the move of `mac` armed for `claim`, if there is one: it goes ahead unchecked.
    fn take_armed(&self, st: &mut State, mac: MacAddr, claim: (&str, u32), now: Instant) -> bool {
        if !Self::armed_here(st, mac, claim, now) {
            return false;
        }
        let Some(a) = st.armed.remove(&mac) else {
            return false;
        };
        // The orchestrator's word outranks an earlier refusal of this port and any check.
        st.quarantine.remove(&(a.to.0.clone(), a.to.1, mac));
        st.verifying.remove(&mac);
        st.triggers.insert(mac, (Trigger::Armed, Some(a.id)));
        info!(%mac, host = %a.host, to = %format!("{}:{}", a.to.0, a.to.1), id = a.id,
            "armed move announced: committing it");
        true
    }

    /// Arms a move of host `sel` to `to` for `ttl`: the first announcement of the host there
    /// commits it. A newer arm of the same host replaces an older one.
    pub fn arm(&self, sel: &str, to: &PortRef, ttl: Duration) -> Result<MoveView, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        self.check_target(to)?;
        let now = self.now();
        let host = self
            .names_by_mac
            .get(&mac)
            .cloned()
            .unwrap_or_else(|| sel.to_string());
        let mut st = self.lock();
        self.expire_armed(&mut st, now);
        st.move_ids += 1;
        let a = Armed {
            id: st.move_ids,
            host,
            to: (to.switch.clone(), to.port),
            until: now + ttl,
            at: unix_now(),
        };
        if let Some(old) = st.armed.insert(mac, a.clone()) {
            push_recent(&mut st, armed_view(&old, "replaced", None));
        }
        info!(%mac, host = %a.host, to = %to, id = a.id, ttl_s = ttl.as_secs_f64(), "move armed");
        Ok(armed_view(&a, "armed", Some(ttl)))
    }

    /// Cancels an armed move; false when no move waits with that id.
    pub fn cancel_move(&self, id: &str) -> bool {
        let now = self.now();
        let mut st = self.lock();
        self.expire_armed(&mut st, now);
        let Some(mac) = st
            .armed
            .iter()
            .find(|(_, a)| a.id.to_string() == id)
            .map(|(m, _)| *m)
        else {
            return false;
        };
        if let Some(a) = st.armed.remove(&mac) {
            info!(%mac, host = %a.host, id = a.id, "armed move cancelled");
            push_recent(&mut st, armed_view(&a, "cancelled", None));
        }
        true
    }

    /// Armed moves waiting, newest first, then ended ones (migrations and arms), newest first.
    pub fn moves(&self) -> Vec<MoveView> {
        let now = self.now();
        let mut st = self.lock();
        self.expire_armed(&mut st, now);
        let mut armed: Vec<&Armed> = st.armed.values().collect();
        armed.sort_by_key(|a| std::cmp::Reverse(a.id));
        armed
            .into_iter()
            .map(|a| armed_view(a, "armed", Some(a.until.saturating_duration_since(now))))
            .chain(st.recent.iter().cloned())
            .collect()
    }

    fn expire_armed(&self, st: &mut State, now: Instant) {
        if st.armed.values().all(|a| now < a.until) {
            return;
        }
        let gone: Vec<MacAddr> = st
            .armed
            .iter()
            .filter(|(_, a)| now >= a.until)
            .map(|(m, _)| *m)
            .collect();
        for mac in gone {
            if let Some(a) = st.armed.remove(&mac) {
                info!(%mac, host = %a.host, id = a.id, "armed move expired unannounced");
                push_recent(st, armed_view(&a, "expired", None));
            }
        }
    }

    /// Records a migration that ended (`GET /api/v1/migrations`).
    pub(crate) fn record_move(
        &self,
        mac: MacAddr,
        to: &PortRef,
        r: &Result<MigrationReport, MigrateError>,
    ) {
        let mut st = self.lock();
        let (trigger, armed_id) = st
            .triggers
            .remove(&mac)
            .unwrap_or((Trigger::Announced, None));
        let id = match armed_id {
            Some(id) => id,
            None => {
                st.move_ids += 1;
                st.move_ids
            }
        };
        let mut view = MoveView {
            id: id.to_string(),
            state: "done",
            host: self
                .names_by_mac
                .get(&mac)
                .cloned()
                .unwrap_or_else(|| mac.to_string()),
            to: to.to_string(),
            from: None,
            trigger: Some(trigger),
            expires_in_s: None,
            elapsed_us: None,
            error: None,
            at: unix_now(),
        };
        match r {
            Ok(rep) if rep.flow_mods == 0 && rep.from == rep.to => return,
            Ok(rep) => {
                view.host.clone_from(&rep.host);
                view.from = Some(rep.from.clone());
                view.elapsed_us = Some(rep.elapsed_us);
            }
            Err(e) => {
                view.state = "failed";
                view.error = Some(e.to_string());
            }
        }
        push_recent(&mut st, view);
    }

    /// Starts checking a claim of `mac` at `claim` (under the write lock, where the move is
    /// decided). False when the policy refuses unexpected announcements: nothing moves.
    pub(crate) fn begin_claim(&self, st: &mut State, mac: MacAddr, claim: (&str, u32)) -> bool {
        match self.announcements {
            Announcements::Trusted => return true,
            Announcements::ArmedOnly => {
                debug!(%mac, switch = claim.0, port = claim.1, "announcement ignored (--announcements armed-only)");
                return false;
            }
            Announcements::Verified => {}
        }
        if let Some(v) = st.verifying.get(&mac) {
            if (v.claim.0.as_str(), v.claim.1) == claim {
                return true; // a repeat of the claim being checked
            }
            if (v.from.0.as_str(), v.from.1) == claim {
                // Announced back where it was before the claim (a migration that failed and
                // resumed at the source, or a quick return): the claim being checked never
                // had standing, so the move back is not checked against it (that would
                // probe the claimant's port). Nobody is quarantined: only an answer to the
                // probe proves a claim false.
                st.verifying.remove(&mac);
                return true;
            }
        }
        let Some(from) = st.location(mac).map(|(s, p)| (s.to_string(), p)) else {
            return true;
        };
        if (from.0.as_str(), from.1) == claim {
            return true;
        }
        if st.is_detached(mac) {
            // Its port went away: nothing can answer there.
            st.verifying.remove(&mac);
            return true;
        }
        let claim = (claim.0.to_string(), claim.1);
        match st.verifying.get_mut(&mac) {
            // A claim while another is checked: checked against where the VM was before
            // both, and refused with it.
            Some(v) => {
                let earlier = std::mem::replace(&mut v.claim, claim);
                v.earlier.push(earlier);
                v.probed = None;
            }
            None => {
                st.verifying.insert(
                    mac,
                    Verifying {
                        from,
                        claim,
                        earlier: Vec::new(),
                        probed: None,
                    },
                );
            }
        }
        true
    }

    /// A VM answered at the place a claim took it from: the claim is refused, the claimant
    /// quarantined, and the VM moved back (after the tentative move, if that is still being
    /// installed).
    pub(crate) fn refuse_claim(&self, mac: MacAddr, effects: &mut Vec<Effect>, now: Instant) {
        if let Some(to) = self.refuse_locked(&mut self.lock(), mac, now) {
            effects.push(move_back(mac, to));
        }
    }

    /// [`Router::refuse_claim`] under the write lock: where the VM is to be moved back to
    /// now, if anywhere.
    fn refuse_locked(&self, st: &mut State, mac: MacAddr, now: Instant) -> Option<PortRef> {
        let v = st.verifying.remove(&mac)?;
        st.quarantine.retain(|_, until| now < *until);
        for (sw, port) in v.earlier.iter().chain([&v.claim]) {
            st.quarantine
                .insert((sw.clone(), *port, mac), now + self.quarantine);
        }
        st.announcements_refused += 1;
        warn!(%mac, at = %format!("{}:{}", v.from.0, v.from.1),
            claimed_at = %format!("{}:{}", v.claim.0, v.claim.1),
            quarantine_s = self.quarantine.as_secs_f64(),
            "announcement refused: the host answered at its port; the claimant is quarantined");
        if st
            .next_move
            .get(&mac)
            .is_some_and(|m| *m == v.claim || v.earlier.contains(m))
        {
            // Queued behind a move being installed: never followed.
            st.next_move.remove(&mac);
        }
        st.triggers.insert(mac, (Trigger::MoveBack, None));
        if st.migrating.contains(&mac) {
            // The tentative move (or one before it) is being installed: back afterwards.
            st.next_move.insert(mac, v.from.clone());
            None
        } else if st.location(mac) == Some((v.from.0.as_str(), v.from.1)) {
            None
        } else {
            Some(PortRef {
                switch: v.from.0,
                port: v.from.1,
            })
        }
    }

    /// After a move to `to` was installed (or failed): probes the VM's old place if the move
    /// was a claim to check.
    pub(crate) fn claim_installed(
        &self,
        mac: MacAddr,
        to: &PortRef,
        installed: bool,
    ) -> Option<Effect> {
        let (from, ip) = {
            let mut st = self.lock();
            // Probed by ARP for its first IPv4 address, or by neighbour solicitation for its
            // first IPv6 one (a host with IPv6 only).
            let ip = st
                .vm(mac)
                .and_then(|vm| {
                    vm.ips
                        .first()
                        .map(|a| IpAddr::from(*a))
                        .or_else(|| vm.ips6.first().map(|a| IpAddr::from(*a)))
                })
                .filter(|_| installed);
            let now = self.now();
            let v = st.verifying.get_mut(&mac).filter(|v| v.is_claim(to))?;
            if v.probed.is_some() {
                // A probe already under way is neither started again nor dropped (a move to
                // the same place that failed meanwhile must not end the check).
                return None;
            }
            // A move that was not installed, or of a VM with no address to probe for, is
            // not checked.
            match ip {
                Some(ip) => {
                    v.probed = Some(now);
                    (v.from.clone(), ip)
                }
                None => {
                    st.verifying.remove(&mac);
                    return None;
                }
            }
        };
        Some(Effect::Probe {
            mac,
            ip,
            from,
            claim: to.clone(),
        })
    }

    /// Probes `from` for the VM (`mac`, `ip`) during [`PROBE_WINDOW`]; the move to `claim`
    /// stands if nothing answered.
    pub(crate) async fn probe(
        &self,
        mac: MacAddr,
        ip: IpAddr,
        from: (String, u32),
        claim: PortRef,
    ) {
        let still = |me: &Router| {
            me.read()
                .verifying
                .get(&mac)
                .is_some_and(|v| v.is_claim(&claim))
        };
        let handle = self.switch_handle(&from.0);
        let port_exists = handle
            .as_ref()
            .is_some_and(|h| h.info.ports().iter().any(|p| p.port_no == from.1));
        if port_exists {
            let frame = match ip {
                // RFC 5227's probe: sender address 0.0.0.0, so nothing caches it; to the VM's
                // MAC only, so no other host behind that port sees it.
                IpAddr::V4(ip) => {
                    let mut f = Arp::request(GATEWAY_MAC, Ipv4Addr::UNSPECIFIED, ip).to_frame();
                    f[..6].copy_from_slice(&mac.0);
                    f
                }
                // A unicast neighbour solicitation (RFC 4861 7.2.2, as a reachability check)
                // from the link-local gateway, to the VM's MAC only: it answers to the gateway.
                IpAddr::V6(ip) => {
                    use crate::packet::icmp6;
                    let ll = crate::fabric::plan::GATEWAY_LL;
                    icmp6::icmp6_frame(
                        mac,
                        GATEWAY_MAC,
                        ll,
                        ip,
                        icmp6::NEIGHBOR_SOLICITATION,
                        0,
                        &icmp6::ns_body(ip, GATEWAY_MAC),
                    )
                }
            };
            let step = PROBE_WINDOW / PROBES;
            for _ in 0..PROBES {
                if !still(self) {
                    return; // answered: refused
                }
                if let Some(h) = &handle {
                    let _ = h.send(vec![packet_out([from.1], frame.clone())]).await;
                }
                tokio::time::sleep(step).await;
            }
        }
        let stands = {
            let mut st = self.lock();
            let mine = st.verifying.get(&mac).is_some_and(|v| v.is_claim(&claim));
            if mine {
                st.verifying.remove(&mac);
            }
            mine
        };
        if stands {
            info!(%mac, at = %claim, was = %format!("{}:{}", from.0, from.1),
                probed = port_exists, "move verified: nothing answered at the old port");
        }
    }

    /// Quarantined claimants whose time is not up, soonest to end first.
    pub fn quarantine_list(&self) -> Vec<QuarantineView> {
        let now = self.now();
        let st = self.read();
        let mut v: Vec<QuarantineView> = st
            .quarantine
            .iter()
            .filter(|(_, until)| now < **until)
            .map(|((switch, port, mac), until)| QuarantineView {
                switch: switch.clone(),
                port: *port,
                mac: mac.to_string(),
                expires_in_s: until.duration_since(now).as_secs_f64(),
            })
            .collect();
        v.sort_by(|a, b| a.expires_in_s.total_cmp(&b.expires_in_s));
        v
    }

    /// Ends every quarantine; returns how many there were.
    pub fn clear_quarantine(&self) -> usize {
        let now = self.now();
        let mut st = self.lock();
        let n = st.quarantine.values().filter(|until| now < **until).count();
        st.quarantine.clear();
        n
    }

    /// Claims refused since start.
    pub fn announcements_refused(&self) -> u64 {
        self.read().announcements_refused
    }
}

fn armed_view(a: &Armed, state: &'static str, left: Option<Duration>) -> MoveView {
    MoveView {
        id: a.id.to_string(),
        state,
        host: a.host.clone(),
        to: format!("{}:{}", a.to.0, a.to.1),
        from: None,
        trigger: None,
        expires_in_s: left.map(|d| d.as_secs_f64()),
        elapsed_us: None,
        error: None,
        at: a.at,
    }
}

fn push_recent(st: &mut State, v: MoveView) {
    st.recent.push_front(v);
    st.recent.truncate(RECENT_MOVES);
}

/// Moving a VM back to where it was before a refused claim.
fn move_back(mac: MacAddr, to: PortRef) -> Effect {
    Effect::Migrate {
        mac,
        to,
        why: "moving a host back after a refused claim failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::clock::ManualClock;
    use ofp13::{PacketIn, OFPR_ACTION};
    use std::sync::Arc;

    /// The paper's testbed: the VM is bound at r3:3; r2:7 is a port nobody is bound at.
    const VM_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 3]);
    const VM_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);

    fn router(clock: &Arc<ManualClock>, policy: Announcements) -> Router {
        Router::new(crate::fabric::plan::paper_fabric())
            .with_clock(clock.clone())
            .with_announcements(policy)
    }

    /// A frame from `switch:port`: the effects its packet-in asks for.
    fn frame_in(r: &Router, switch: &str, port: u32, frame: Vec<u8>) -> Vec<Effect> {
        let ports = || vec![1, 2, 3, 4, 5, 7];
        let (mut out, mut effects) = (Vec::new(), Vec::new());
        r.packet_in_into(
            switch,
            &ports,
            &PacketIn::unbuffered(port, OFPR_ACTION, frame),
            &mut out,
            &mut effects,
            r.now(),
        );
        effects
    }

    fn rarp(r: &Router, switch: &str, port: u32) -> Vec<Effect> {
        frame_in(r, switch, port, packet::rarp_announce(VM_MAC))
    }

    /// The VM's answer to the probe: an ARP reply to the gateway MAC (Linux answers an RFC
    /// 5227 probe with target address 0.0.0.0).
    fn probe_answer(r: &Router, switch: &str, port: u32) -> Vec<Effect> {
        let reply = Arp::reply(VM_MAC, VM_IP, GATEWAY_MAC, Ipv4Addr::UNSPECIFIED);
        frame_in(r, switch, port, reply.to_frame())
    }

    /// What `claim_installed` does once the tentative move is in: the probe goes out now.
    fn probe_sent(r: &Router) {
        let now = r.now();
        if let Some(v) = r.lock().verifying.get_mut(&VM_MAC) {
            v.probed = Some(now);
        }
    }

    fn checked(r: &Router) -> Option<Verifying> {
        r.read().verifying.get(&VM_MAC).cloned()
    }

    #[test]
    fn a_claim_is_checked_then_refused_when_the_vm_answers_at_its_port() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        rarp(&r, "r2", 7);
        assert_eq!(
            checked(&r),
            Some(Verifying {
                from: ("r3".into(), 3),
                claim: ("r2".into(), 7),
                earlier: Vec::new(),
                probed: None,
            })
        );
        // A repeat of the claim changes nothing.
        rarp(&r, "r2", 7);
        assert_eq!(checked(&r).map(|v| v.claim), Some(("r2".into(), 7)));
        // Anything but the answer at the old port refutes nothing.
        frame_in(
            &r,
            "r3",
            3,
            Arp::request(VM_MAC, VM_IP, Ipv4Addr::new(192, 168, 11, 1)).to_frame(),
        );
        let to_someone_else = Arp::reply(
            VM_MAC,
            VM_IP,
            MacAddr([2, 0, 0, 0, 0x11, 2]),
            Ipv4Addr::new(192, 168, 11, 2),
        );
        frame_in(&r, "r3", 3, to_someone_else.to_frame());
        assert!(checked(&r).is_some());
        assert_eq!(r.announcements_refused(), 0);
        // An answer before the probe went out is none.
        probe_answer(&r, "r3", 3);
        assert!(checked(&r).is_some());
        // The answer: refused, quarantined for the default 60 s.
        probe_sent(&r);
        probe_answer(&r, "r3", 3);
        assert_eq!(checked(&r), None);
        assert_eq!(r.announcements_refused(), 1);
        let q = r.quarantine_list();
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].switch.as_str(), q[0].port), ("r2", 7));
        assert_eq!(q[0].mac, VM_MAC.to_string());
        assert_eq!(q[0].expires_in_s, 60.0);
        // Quarantined: its claims are not even checked.
        rarp(&r, "r2", 7);
        assert_eq!(checked(&r), None);
        // A second answer refuses nothing more.
        probe_answer(&r, "r3", 3);
        assert_eq!(r.announcements_refused(), 1);
        // Until the quarantine ends.
        clock.advance(DEFAULT_QUARANTINE - Duration::from_millis(1));
        rarp(&r, "r2", 7);
        assert_eq!(checked(&r), None);
        clock.advance(Duration::from_millis(1));
        assert!(r.quarantine_list().is_empty());
        rarp(&r, "r2", 7);
        assert_eq!(checked(&r).map(|v| v.claim), Some(("r2".into(), 7)));
    }

    #[test]
    fn every_claim_made_while_one_is_checked_is_refused_with_it() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        r.lock().migrating.insert(VM_MAC);
        rarp(&r, "r2", 7);
        rarp(&r, "r1", 9);
        let v = checked(&r).unwrap();
        assert_eq!((v.from, v.claim), (("r3".into(), 3), ("r1".into(), 9)));
        assert_eq!(v.earlier, [("r2".to_string(), 7)]);
        probe_sent(&r);
        probe_answer(&r, "r3", 3);
        assert_eq!(r.announcements_refused(), 1);
        let mut q: Vec<(String, u32)> = r
            .quarantine_list()
            .into_iter()
            .map(|q| (q.switch, q.port))
            .collect();
        q.sort();
        assert_eq!(q, [("r1".to_string(), 9), ("r2".to_string(), 7)]);
        assert_eq!(
            r.read().next_move.get(&VM_MAC),
            Some(&("r3".to_string(), 3))
        );
    }

    #[test]
    fn a_probe_under_way_is_not_started_again_nor_dropped_by_a_later_outcome() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        rarp(&r, "r2", 7);
        let claim = to("r2:7");
        // The tentative move installed: the probe starts, once.
        assert!(matches!(
            r.claim_installed(VM_MAC, &claim, true),
            Some(Effect::Probe { .. })
        ));
        let probing = checked(&r).expect("checked");
        assert!(probing.probed.is_some());
        assert!(r.claim_installed(VM_MAC, &claim, true).is_none());
        // A later move to the same place that failed: the check goes on as it was.
        assert!(r.claim_installed(VM_MAC, &claim, false).is_none());
        assert_eq!(checked(&r), Some(probing));
        // Before any probe, a move that failed is not checked at all.
        let r = router(&clock, Announcements::Verified);
        rarp(&r, "r2", 7);
        assert!(r.claim_installed(VM_MAC, &claim, false).is_none());
        assert_eq!(checked(&r), None);
    }

    #[test]
    fn an_answer_long_after_the_probe_window_refutes_nothing() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        rarp(&r, "r2", 7);
        probe_sent(&r);
        clock.advance(PROBE_WINDOW * 2);
        probe_answer(&r, "r3", 3);
        assert_eq!(r.announcements_refused(), 0);
    }

    #[test]
    fn the_quarantine_is_as_configured_and_cleared_on_demand() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified).with_quarantine(Duration::from_secs(5));
        rarp(&r, "r2", 7);
        probe_sent(&r);
        probe_answer(&r, "r3", 3);
        assert_eq!(r.quarantine_list()[0].expires_in_s, 5.0);
        assert_eq!(r.clear_quarantine(), 1);
        assert!(r.quarantine_list().is_empty());
        rarp(&r, "r2", 7);
        assert!(checked(&r).is_some(), "cleared: checked again");
    }

    #[test]
    fn each_policy_does_what_it_says_with_a_move_being_installed() {
        // While a move is installed, a claim is queued as the next move (that queue is what
        // the tests can see without a runtime to migrate in).
        for (policy, queued, checks) in [
            (Announcements::Trusted, true, false),
            (Announcements::Verified, true, true),
            (Announcements::ArmedOnly, false, false),
        ] {
            let clock = ManualClock::new();
            let r = router(&clock, policy);
            r.lock().migrating.insert(VM_MAC);
            rarp(&r, "r2", 7);
            assert_eq!(r.read().next_move.contains_key(&VM_MAC), queued, "{policy}");
            assert_eq!(checked(&r).is_some(), checks, "{policy}");
        }
    }

    #[test]
    fn an_answer_while_the_claim_is_queued_drops_it() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        r.lock().migrating.insert(VM_MAC);
        rarp(&r, "r2", 7);
        probe_sent(&r);
        probe_answer(&r, "r3", 3);
        assert_eq!(r.announcements_refused(), 1);
        // Not followed; the move being installed is followed by one back to r3:3.
        assert_eq!(
            r.read().next_move.get(&VM_MAC),
            Some(&("r3".to_string(), 3))
        );
    }

    #[test]
    fn announced_back_where_it_was_withdraws_the_claim_without_a_refusal() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        r.lock().migrating.insert(VM_MAC);
        rarp(&r, "r2", 7);
        assert!(checked(&r).is_some());
        rarp(&r, "r3", 3);
        assert_eq!(checked(&r), None);
        assert_eq!(r.announcements_refused(), 0);
        assert!(r.quarantine_list().is_empty());
        assert_eq!(
            r.read().next_move.get(&VM_MAC),
            Some(&("r3".to_string(), 3))
        );
    }

    #[test]
    fn a_detached_vm_is_not_probed() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        let now = r.now();
        r.lock().detached.insert(VM_MAC, now);
        rarp(&r, "r2", 7);
        assert_eq!(checked(&r), None);
    }

    fn to(s: &str) -> PortRef {
        s.parse().unwrap()
    }

    #[test]
    fn a_host_with_ipv6_only_is_probed_by_solicitation_and_refused_when_it_answers() {
        use crate::packet::icmp6;
        const V6: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 5]);
        let clock = ManualClock::new();
        let t = crate::fabric::topology::Topology::parse(include_str!(
            "../../topologies/dual-stack.toml"
        ))
        .unwrap();
        let r = Router::new(crate::fabric::plan::Fabric::new(&t))
            .with_clock(clock.clone())
            .with_announcements(Announcements::Verified);
        let ip: std::net::Ipv6Addr = "fd00:0:0:11::5".parse().unwrap();
        frame_in(&r, "r2", 7, packet::rarp_announce(V6));
        assert!(r.read().verifying.contains_key(&V6), "its claim is checked");
        let e = r.claim_installed(V6, &to("r2:7"), true);
        assert!(
            matches!(e, Some(Effect::Probe { ip: IpAddr::V6(a), ref from, .. }) if a == ip && *from == ("r3".to_string(), 5)),
            "{e:?}"
        );
        // Someone else's advertisement at its old port refutes nothing; its own does.
        let na = |mac: MacAddr| {
            icmp6::icmp6_frame(
                GATEWAY_MAC,
                mac,
                ip,
                crate::fabric::plan::GATEWAY_LL,
                icmp6::NEIGHBOR_ADVERTISEMENT,
                0,
                &icmp6::na_body(ip, mac, false, true),
            )
        };
        frame_in(&r, "r3", 5, na(MacAddr([2, 0, 0, 0, 0x11, 2])));
        assert_eq!(r.announcements_refused(), 0);
        frame_in(&r, "r3", 5, na(V6));
        assert_eq!(r.announcements_refused(), 1);
        assert!(!r.read().verifying.contains_key(&V6));
    }

    #[test]
    fn an_armed_move_commits_on_its_announcement_unchecked_whatever_the_policy() {
        for policy in [
            Announcements::Verified,
            Announcements::ArmedOnly,
            Announcements::Trusted,
        ] {
            let clock = ManualClock::new();
            let r = router(&clock, policy);
            r.lock().migrating.insert(VM_MAC); // so the admitted claim shows as queued
            let v = r.arm("vm", &to("r2:7"), DEFAULT_ARM_TTL).unwrap();
            assert_eq!(
                (v.state, v.host.as_str(), v.to.as_str()),
                ("armed", "vm", "r2:7")
            );
            assert_eq!(v.expires_in_s, Some(120.0));
            // Elsewhere: the policy decides, the arm waits.
            rarp(&r, "r2", 8);
            assert_eq!(
                r.read().next_move.contains_key(&VM_MAC),
                policy != Announcements::ArmedOnly,
                "{policy}"
            );
            // At the armed port: admitted, not checked, and the arm is used up.
            rarp(&r, "r2", 7);
            assert_eq!(
                r.read().next_move.get(&VM_MAC),
                Some(&("r2".to_string(), 7)),
                "{policy}"
            );
            assert_eq!(checked(&r), None, "{policy}");
            let id: u64 = v.id.parse().unwrap();
            assert_eq!(
                r.read().triggers.get(&VM_MAC),
                Some(&(Trigger::Armed, Some(id)))
            );
            assert!(r.moves().iter().all(|m| m.state != "armed"), "{policy}");
        }
    }

    #[test]
    fn an_armed_port_is_admitted_even_when_quarantined() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::Verified);
        rarp(&r, "r2", 7);
        probe_sent(&r);
        probe_answer(&r, "r3", 3);
        assert_eq!(r.quarantine_list().len(), 1);
        r.lock().migrating.insert(VM_MAC);
        r.arm("192.168.11.3", &to("r2:7"), DEFAULT_ARM_TTL).unwrap();
        rarp(&r, "r2", 7);
        assert_eq!(
            r.read().next_move.get(&VM_MAC),
            Some(&("r2".to_string(), 7))
        );
        assert!(
            r.quarantine_list().is_empty(),
            "the orchestrator's word ends it"
        );
    }

    #[test]
    fn armed_moves_expire_are_cancelled_or_replaced_and_are_listed_newest_first() {
        let clock = ManualClock::new();
        let r = router(&clock, Announcements::ArmedOnly);
        let a = r.arm("vm", &to("r2:7"), Duration::from_secs(10)).unwrap();
        let b = r.arm("vm", &to("r2:8"), Duration::from_secs(10)).unwrap();
        let c = r.arm("vm2", &to("r2:9"), Duration::from_secs(30)).unwrap();
        let states = |r: &Router| -> Vec<(String, &'static str)> {
            r.moves().into_iter().map(|m| (m.id, m.state)).collect()
        };
        assert_eq!(
            states(&r),
            [
                (c.id.clone(), "armed"),
                (b.id.clone(), "armed"),
                (a.id.clone(), "replaced")
            ]
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            states(&r),
            [
                (c.id.clone(), "armed"),
                (b.id.clone(), "expired"),
                (a.id.clone(), "replaced")
            ]
        );
        // Expired: its announcement is one like any other (ignored under armed-only).
        rarp(&r, "r2", 8);
        assert_eq!(checked(&r), None);
        assert!(!r.cancel_move(&b.id), "expired already");
        assert!(r.cancel_move(&c.id));
        assert!(!r.cancel_move(&c.id));
        assert!(!r.cancel_move("no-such-id"));
        assert_eq!(states(&r)[0], (c.id, "cancelled"));
        // Bad requests change nothing.
        assert!(matches!(
            r.arm("nobody", &to("r2:7"), DEFAULT_ARM_TTL),
            Err(MigrateError::UnknownHost(_))
        ));
        assert!(matches!(
            r.arm("vm", &to("r2:1"), DEFAULT_ARM_TTL),
            Err(MigrateError::BadTarget(_))
        ));
        assert!(matches!(
            r.arm("vm", &to("r9:1"), DEFAULT_ARM_TTL),
            Err(MigrateError::BadTarget(_))
        ));
        assert_eq!(r.moves().len(), 3);
    }

    #[test]
    fn a_policy_is_read_from_its_name() {
        for p in [
            Announcements::Trusted,
            Announcements::Verified,
            Announcements::ArmedOnly,
        ] {
            assert_eq!(p.to_string().parse::<Announcements>(), Ok(p));
        }
        assert!("trust"
            .parse::<Announcements>()
            .unwrap_err()
            .contains("trusted, verified or armed-only"));
        assert_eq!(Announcements::default(), Announcements::Verified);
    }
}
