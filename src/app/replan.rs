//! The re-plan when links change ([`crate::app::links`] says which are in use): the fabric's
//! routes are computed again over the links in use and every connected switch is reconciled
//! with the new plan; `GET /api/v1/links` reads the links' states from here.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::app::effect::Effect;
use crate::app::links::{End, LinkWatch, Unused};
use crate::app::router::Router;

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
        let changed = self.fabric.set_unused(&unused);
        drop(w);
        if changed {
            info!(
                unused = unused.len(),
                "routes planned again over the links in use"
            );
            self.replans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(reg) = &self.switches {
                for h in reg.all() {
                    if let Some(name) = self.name_of(&h) {
                        effects.push(Effect::Reconcile {
                            name: name.to_string(),
                            after: Duration::ZERO,
                        });
                    }
                }
            }
        }
        if let Some(after) = retry {
            effects.push(Effect::Replan { after });
        }
    }

    /// Every declared link with its state, for `GET /api/v1/links`.
    pub fn link_states(&self, now: Instant) -> Vec<(End, End, Option<Unused>)> {
        let mut w = self.link_watch();
        self.fabric
            .topology
            .links
            .iter()
            .map(|l| {
                let a = (l.a.switch.clone(), l.a.port);
                let b = (l.b.switch.clone(), l.b.port);
                let why = w.unused(&a, now).or(w.unused(&b, now));
                (a, b, why)
            })
            .collect()
    }

    /// How often the routes were planned again because links changed.
    pub fn replans(&self) -> u64 {
        self.replans.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn link_watch(&self) -> std::sync::MutexGuard<'_, LinkWatch> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }
}
