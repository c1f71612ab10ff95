//! The re-plan when links change ([`crate::app::links`] says which are in use): the fabric's
//! routes are computed again over the links in use and every connected switch whose own
//! routes changed is reconciled with the new plan; `GET /api/v1/links` reads the links'
//! states from here. The LLDP that checks the declared links is sent (`Router::lldp`) and
//! heard (`Router::lldp_heard`) here too.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::app::effect::Effect;
use crate::app::links::{self, End, LinkWatch, Lldp, Unused};
use crate::app::router::Router;
use crate::packet::{self, Ethernet};
use crate::switch::runtime::SwitchHandle;

/// One declared link as [`Router::link_states`] reads it.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub a: End,
    pub b: End,
    /// Why it is out of use; None: routed over.
    pub unused: Option<Unused>,
    pub lldp: Lldp,
    /// What LLDP found against it, in words.
    pub detail: Option<String>,
}

impl Router {
    /// Every link end of the fabric, both ends of each declared link.
    fn link_ends(&self) -> Vec<End> {
        let mut v = Vec::new();
        for l in &self.fabric.topology.links {
            v.push((l.a.switch.clone(), l.a.port));
            v.push((l.b.switch.clone(), l.b.port));
        }
        v
    }

    /// A link end's port changed (PORT_STATUS): re-plan if that changes what is in use.
    pub(crate) fn link_port(
        &self,
        name: &str,
        port: u32,
        up: bool,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let changed = self.link_watch().port((name.to_string(), port), up, now);
        if changed {
            if up {
                info!(switch = %name, port, "link port up");
                // Its check starts again: both ends send at the fast pace meanwhile.
                if self.lldp {
                    let end = (name.to_string(), port);
                    let ends = self.link_peer(&end).into_iter().chain([end]).collect();
                    effects.push(Effect::LldpBurst { ends });
                }
            } else {
                warn!(switch = %name, port, "link port down");
            }
            self.replan(effects, now);
        }
    }

    /// A switch connected (with its ports as it reported them) or went away: its links are in
    /// use, or out of use once it has been gone for the grace.
    pub(crate) fn link_switch(
        &self,
        name: &str,
        ports_up: Option<&BTreeSet<u32>>,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let changed = {
            let mut w = self.link_watch();
            let mut changed = w.connection(name, ports_up.is_some(), now);
            for p in ports_up
                .map(|_| self.fabric.link_ports(name))
                .unwrap_or_default()
            {
                let up = ports_up.is_some_and(|up| up.contains(&p));
                changed |= w.port((name.to_string(), p), up, now);
            }
            changed
        };
        if changed {
            self.replan(effects, now);
        }
    }

    /// Takes the links that should not be used out of use; when the routes change, every
    /// connected switch is reconciled with the new plan. A dampened link is looked at again
    /// when it may be reused.
    pub(crate) fn replan(&self, effects: &mut Vec<Effect>, now: Instant) {
        let ends = self.link_ends();
        // The watch stays locked until the fabric has the routes: two events handled at once
        // (one link's two ends reporting) must not set their views in the other order.
        let mut w = self.link_watch();
        let unused: BTreeSet<End> = ends
            .iter()
            .filter(|e| w.unused(e, now).is_some())
            .cloned()
            .collect();
        let retry = w
            .next_change(&ends, now)
            .filter(|&after| w.arm(now + after, now));
        let changed = self.fabric.set_unused_changes(&unused);
        self.report_links(&mut w, &unused, now);
        drop(w);
        if !changed.is_empty() {
            // Only the connected switches whose own routes changed: no other plan did.
            let connected: BTreeSet<String> = self
                .switches
                .iter()
                .flat_map(|reg| reg.all())
                .filter_map(|h| self.name_of(&h).map(str::to_string))
                .collect();
            let mut reconciled = 0;
            for name in changed.into_iter().filter(|n| connected.contains(n)) {
                reconciled += 1;
                effects.push(Effect::Reconcile {
                    name,
                    after: Duration::ZERO,
                });
            }
            info!(
                unused = unused.len(),
                switches = reconciled,
                "routes planned again over the links in use"
            );
            self.replans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.replan_reconciles
                .fetch_add(reconciled, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(after) = retry {
            effects.push(Effect::Replan { after });
        }
    }

    /// One log line for each link that LLDP found contradicted, and one when it is seen
    /// right again (port and switch events are logged where they are heard).
    fn report_links(&self, w: &mut LinkWatch, unused: &BTreeSet<End>, now: Instant) {
        for l in &self.fabric.topology.links {
            let a = (l.a.switch.clone(), l.a.port);
            let b = (l.b.switch.clone(), l.b.port);
            let why = if unused.contains(&a) || unused.contains(&b) {
                w.unused(&a, now).or(w.unused(&b, now))
            } else {
                None
            };
            let lldp = |u: Option<Unused>| matches!(u, Some(Unused::Miswired | Unused::Silent));
            let Some(before) = w.report(&a, why) else {
                continue;
            };
            if lldp(why) {
                let detail = w.lldp_detail(&a, now).unwrap_or_default();
                warn!(link = %format_args!("{}:{} - {}:{}", a.0, a.1, b.0, b.1),
                    state = why.map(Unused::state).unwrap_or_default(), %detail,
                    "link contradicted by LLDP: out of use until LLDP sees it right");
            } else if lldp(before) && why.is_none() {
                info!(link = %format_args!("{}:{} - {}:{}", a.0, a.1, b.0, b.1),
                    "link seen right by LLDP: in use again");
            }
        }
    }

    /// Every declared link with its state as the routes have it, for `GET /api/v1/links`.
    pub fn link_states(&self, now: Instant) -> Vec<LinkState> {
        let w = self.link_watch();
        self.fabric
            .topology
            .links
            .iter()
            .map(|l| {
                let a = (l.a.switch.clone(), l.a.port);
                let b = (l.b.switch.clone(), l.b.port);
                // As the routes have it (the last re-plan), not as it would be now: a link
                // whose check has just run out is shown out of use once routed around.
                let unused = w.reported(&a);
                let by_lldp = matches!(unused, Some(Unused::Miswired | Unused::Silent));
                LinkState {
                    lldp: match w.lldp(&a, now) {
                        Lldp::Contradicted if !by_lldp => Lldp::Waiting,
                        l => l,
                    },
                    detail: by_lldp.then(|| w.lldp_detail(&a, now)).flatten(),
                    a,
                    b,
                    unused,
                }
            })
            .collect()
    }

    /// The declared far end of link end `end`.
    fn link_peer(&self, end: &End) -> Option<End> {
        let (s, p) = self.fabric.peer(&end.0, end.1)?;
        Some((s.to_string(), p))
    }

    /// LLDP out of each of `ports` of switch `name` (connected as `h`) that it does not
    /// report down.
    fn lldp_out(&self, h: &SwitchHandle, name: &str, ports: &[u32]) -> Vec<ofp13::Body> {
        let listed = h.info.ports();
        let dpid = h.dpid().0;
        ports
            .iter()
            .filter_map(|&p| {
                // A port the switch does not list yet is tried too; a down one is not.
                let port = listed.iter().find(|x| x.port_no == p);
                if port.is_some_and(|x| !x.is_up()) {
                    return None;
                }
                let src = port.map_or(crate::fabric::plan::GATEWAY_MAC, |x| x.hw_addr);
                let frame = packet::lldp(src, dpid, p, links::LLDP_TTL_S, name);
                Some(crate::fabric::plan::packet_out([p], frame))
            })
            .collect()
    }

    /// Sends LLDP out of every link port of switch `name` for as long as its session lasts
    /// (every [`links::LLDP_FAST`] for the first [`links::LLDP_FAST_FOR`], then every
    /// [`links::LLDP_EVERY`]); its links are checked from now, and its peers send toward it
    /// at the fast pace meanwhile too. Called once its table has been reconciled: its
    /// peers' entries that send LLDP to the controller are in place by then, or will be once
    /// theirs are (checking a link waits for both).
    pub(crate) async fn lldp(self: Arc<Self>, h: SwitchHandle, name: String) {
        let link_ports: Vec<u32> = self.fabric.link_ports(&name).into_iter().collect();
        if link_ports.is_empty() {
            return;
        }
        {
            let now = self.now();
            self.link_watch().lldp_began(&name, now);
            let mut effects = Vec::new();
            self.replan(&mut effects, now);
            let peers = link_ports
                .iter()
                .filter_map(|&p| self.link_peer(&(name.clone(), p)))
                .collect();
            effects.push(Effect::LldpBurst { ends: peers });
            self.carry_out_all(&mut effects);
        }
        let started = tokio::time::Instant::now();
        loop {
            if h.is_closed() {
                return;
            }
            let frames = self.lldp_out(&h, &name, &link_ports);
            if !frames.is_empty() && h.send(frames).await.is_err() {
                return;
            }
            let every = if started.elapsed() < links::LLDP_FAST_FOR {
                links::LLDP_FAST
            } else {
                links::LLDP_EVERY
            };
            tokio::time::sleep(every).await;
        }
    }

    /// Sends LLDP out of link ends `ends` every [`links::LLDP_FAST`] for
    /// [`links::LLDP_FAST_FOR`] (of the switches connected at each round).
    pub(crate) async fn lldp_burst(self: Arc<Self>, ends: Vec<End>) {
        let until = tokio::time::Instant::now() + links::LLDP_FAST_FOR;
        let mut by_switch: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for (s, p) in &ends {
            by_switch.entry(s.as_str()).or_default().push(*p);
        }
        while tokio::time::Instant::now() < until {
            for (name, ports) in &by_switch {
                if let Some(h) = self.switch_handle(name) {
                    let frames = self.lldp_out(&h, name, ports);
                    if !frames.is_empty() {
                        let _ = h.send(frames).await;
                    }
                }
            }
            tokio::time::sleep(links::LLDP_FAST).await;
        }
    }

    /// An LLDP frame arrived at link port `in_port` of switch `name`: a link check. A frame
    /// from a switch this fabric does not have, or another speaker's, is ignored.
    pub(crate) fn lldp_heard(
        &self,
        name: &str,
        in_port: u32,
        eth: &Ethernet<'_>,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let Some(from) = packet::lldp_from(eth.payload) else {
            debug!(switch = %name, port = in_port, "LLDP from another speaker ignored");
            return;
        };
        let Some(sender) = self.name_by_dpid(from.dpid) else {
            debug!(switch = %name, port = in_port, dpid = from.dpid,
                "LLDP from a switch not in the topology ignored");
            return;
        };
        self.lldp_heard
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let changed = self.link_watch().heard(
            (name.to_string(), in_port),
            (sender.to_string(), from.port),
            now,
        );
        if changed {
            self.replan(effects, now);
        }
    }

    /// How often the routes were planned again because links changed.
    pub fn replans(&self) -> u64 {
        self.replans.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many switches the re-plans reconciled in all (those whose routes changed).
    pub fn replan_reconciles(&self) -> u64 {
        self.replan_reconciles
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn link_watch(&self) -> std::sync::MutexGuard<'_, LinkWatch> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }
}
