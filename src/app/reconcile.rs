//! Reconciliation: a switch's live table is read (flow-stats multipart) and only the
//! difference to the plan is sent: strict deletes of entries that should not be there, adds
//! of missing ones, adds over entries whose cookie or actions differ (an `OFPFC_ADD` with the
//! same match and priority replaces in place). Never a blanket delete, so a controller restart
//! or a switch reconnect leaves a correct table untouched (counters and durations keep
//! running). Done on every connect, and then every audit interval (as ONOS's flow-rule audit
//! does) so that a table changed behind the controller's back (`ovs-ofctl del-flows`) is
//! repaired: each round counts the switch's entries (one aggregate-stats request) and reads
//! the whole table only when the count is off, or every 12th round (a modified entry keeps
//! the count).
//!
//! Only servswitch's own entries (cookies `0x5353_00xx...`, see `plan::is_ours`) are ever
//! deleted; another application's or an operator's entries are left alone and counted
//! (`servswitch verify` lists them).
//!
//! An entry is identified by (table, priority, match with its fields in canonical order: a
//! switch may report them in another order than they were sent) and is right when its cookie
//! and instructions are the planned ones.

use std::time::Duration;

use ofp13::{
    Body, FlowMod, FlowStats, FlowStatsRequest, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody,
};
use tracing::{debug, info, warn};

use crate::app::router::Router;
use crate::fabric::plan::Flow;
use crate::mobility::update::{flow_role, role, Role};
use crate::switch::runtime::SwitchHandle;

/// What one reconciliation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Entries already right.
    pub kept: usize,
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    /// Entries that are not servswitch's (another cookie): left alone.
    pub foreign: usize,
    /// Planned producers not installed yet: a switch with their consumers is not ready.
    pub held: usize,
    /// Consumer entries the plan no longer has, left until the fabric is quiet.
    pub deferred: usize,
}

impl Reconciled {
    pub fn changed(&self) -> usize {
        self.added + self.modified + self.deleted
    }
}

/// A flow entry's identity in its table: table, priority, and the match with its fields in a
/// canonical order (a switch may report them in another order than they were sent).
pub type Key = (u8, u16, Vec<u8>);

pub fn key(table: u8, priority: u16, m: &ofp13::Match) -> Key {
    let mut fields: Vec<&ofp13::Oxm> = m.fields.iter().collect();
    fields.sort_by_key(|f| f.header());
    let mut bytes = Vec::with_capacity(48);
    for f in fields {
        f.emit(&mut bytes);
    }
    (table, priority, bytes)
}

/// What a reconciliation may change now, for care-of addresses (see crate::mobility::update).
pub struct Allow<'a> {
    /// Whether a planned producer may be installed: every switch with its consumers is ready.
    pub producer: &'a dyn Fn(&Flow) -> bool,
    /// Whether consumer entries the plan does not have may be deleted: no switch can still
    /// hold a producer of their address, nor a packet it rewrote be in the fabric.
    pub delete_consumers: bool,
}

/// Everything may change now.
pub const ANY: Allow<'static> = Allow {
    producer: &|_| true,
    delete_consumers: true,
};

/// The difference between a live table and a plan ([`difference_in_order`] with nothing held
/// back).
pub fn difference(live: &[FlowStats], plan: &[Flow]) -> (Vec<FlowMod>, Reconciled) {
    difference_in_order(live, plan, &ANY)
}

/// The difference between a live table and a plan, as flow mods in the order they are sent,
/// the phases of an update within one switch: producers out; consumers in; other adds and
/// modifications (in plan order: the route table's miss entry last, as on a first install);
/// other deletes; producers in (those `allow` lets in; a held one leaves its live entry as
/// it is); consumers out (if `allow` lets them). An entry is right when its cookie and
/// instructions are the planned ones (compared as values, not as text: an audit of a large
/// fabric reads hundreds of thousands of entries).
pub fn difference_in_order(
    live: &[FlowStats],
    plan: &[Flow],
    allow: &Allow<'_>,
) -> (Vec<FlowMod>, Reconciled) {
    let live_by_key: std::collections::HashMap<Key, &FlowStats> = live
        .iter()
        .map(|f| (key(f.table_id, f.priority, &f.match_), f))
        .collect();
    let mut planned_keys = std::collections::HashSet::with_capacity(plan.len());
    // The six steps, in order.
    let mut step: [Vec<FlowMod>; 6] = Default::default();
    let mut r = Reconciled::default();
    for f in plan {
        let k = key(f.table_id, f.priority, &f.match_);
        let old = live_by_key.get(&k);
        planned_keys.insert(k);
        match old {
            Some(l)
                if l.cookie == f.cookie
                    && l.instructions == f.instructions
                    && l.flags == f.flags
                    && l.idle_timeout == f.idle_timeout
                    && l.hard_timeout == f.hard_timeout =>
            {
                r.kept += 1;
                continue;
            }
            _ => {}
        }
        let i = match flow_role(f) {
            Role::Producer if !(allow.producer)(f) => {
                r.held += 1;
                continue;
            }
            Role::Producer => 4,
            Role::Consumer => 1,
            Role::Neutral
                if old.is_some_and(|l| role(l.cookie, &l.instructions) == Role::Producer) =>
            {
                0
            }
            Role::Neutral => 2,
        };
        match old {
            Some(_) => r.modified += 1,
            None => r.added += 1,
        }
        step[i].push(f.add());
    }
    let mut extra: Vec<(&Key, &&FlowStats)> = live_by_key
        .iter()
        .filter(|(k, _)| !planned_keys.contains(*k))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    for (_, f) in extra {
        if !crate::fabric::plan::is_ours(f.cookie) {
            r.foreign += 1;
            continue;
        }
        let i = match role(f.cookie, &f.instructions) {
            Role::Producer => 0,
            Role::Consumer if !allow.delete_consumers => {
                r.deferred += 1;
                continue;
            }
            Role::Consumer => 5,
            Role::Neutral => 3,
        };
        r.deleted += 1;
        step[i].push(FlowMod {
            command: ofp13::OFPFC_DELETE_STRICT,
            table_id: f.table_id,
            priority: f.priority,
            match_: f.match_.clone(),
            ..FlowMod::default()
        });
    }
    (step.into_iter().flatten().collect(), r)
}

/// How many flow entries the switch holds (one aggregate-stats request: a cheap first look
/// before reading the whole table).
pub async fn count_flows(h: &SwitchHandle) -> Result<u32, String> {
    let req = Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Aggregate(
        FlowStatsRequest::all(),
    )));
    let parts = h.request(req).await.map_err(|e| e.to_string())?;
    for m in parts {
        if let Body::MultipartReply(r) = m.body {
            if let MultipartReplyBody::Aggregate(a) = r.body {
                return Ok(a.flow_count);
            }
        }
    }
    Err("no aggregate stats in the reply".into())
}

/// A whole-table audit every this many rounds; the rounds between only count entries.
const FULL_AUDIT_EVERY: u32 = 12;

/// Reads every flow entry of the switch.
pub async fn read_table(h: &SwitchHandle) -> Result<Vec<FlowStats>, String> {
    let req = Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
        FlowStatsRequest::all(),
    )));
    let parts = h.request(req).await.map_err(|e| e.to_string())?;
    let mut flows = Vec::new();
    for m in parts {
        if let Body::MultipartReply(r) = m.body {
            if let MultipartReplyBody::Flow(f) = r.body {
                flows.extend(f);
            }
        }
    }
    Ok(flows)
}

impl Router {
    /// Brings one switch's table to the plan: read, compare, send the difference, barrier;
    /// then the switch is ready (it holds its consumers). Producers whose consumers are not
    /// ready everywhere wait, and consumers no longer planned wait for the fabric to be quiet
    /// ([`crate::app::router::State::quiet`]); the switch is caught up when that changes
    /// ([`Router::readiness_changed`]).
    pub async fn reconcile(&self, h: &SwitchHandle, name: &str) -> Result<Reconciled, String> {
        let lock = self.switch_lock(name);
        let _serial = lock.lock().await;
        let live = read_table(h).await?;
        // The plan is taken after the table was read: anything the router added to its state
        // before sending it to the switch is then in the plan too (at worst added twice).
        let (mods, r) = {
            let st = self.read();
            let vms = st.vms_for(name);
            let plan = crate::mobility::flows::switch_plan(&self.fabric, name, &vms);
            let producer = |f: &Flow| {
                let home = std::net::Ipv4Addr::from(f.cookie as u32);
                let vm = st.hosts.get(&home).and_then(|(h, _)| st.vm(h.mac));
                vm.is_none_or(|vm| {
                    crate::mobility::flows::consumer_switches(&vm)
                        .iter()
                        .filter(|s| s.as_str() != name)
                        .all(|s| st.ready_for(s, vm.mac))
                })
            };
            difference_in_order(
                &live,
                &plan,
                &Allow {
                    producer: &producer,
                    delete_consumers: st.quiet(std::time::Instant::now(), self.drain),
                },
            )
        };
        if !mods.is_empty() {
            h.send(mods.into_iter().map(Body::FlowMod).collect())
                .await
                .map_err(|e| e.to_string())?;
            h.barrier().await.map_err(|e| e.to_string())?;
        }
        let (became_ready, quiet, retry_in) = {
            let mut st = self.lock();
            let was = st.ready(name);
            if !h.is_closed() {
                st.reconciled.insert(name.to_string());
            }
            if r.held > 0 {
                st.waiting.insert(name.to_string());
            } else {
                st.waiting.remove(name);
            }
            if r.deferred > 0 {
                st.stale.insert(name.to_string());
            } else {
                st.stale.remove(name);
            }
            let quiet = st.refresh_quiet(&self.fabric.topology.switches, std::time::Instant::now());
            let retry_in = (r.deferred > 0)
                .then_some(st.quiet_since)
                .flatten()
                .map(|t| self.drain.saturating_sub(t.elapsed()));
            (!was && st.ready(name), quiet, retry_in)
        };
        self.readiness_changed(became_ready, quiet);
        if let Some(wait) = retry_in {
            self.reconcile_later(name, wait);
        }
        Ok(r)
    }

    /// What a change of readiness may let switches catch up with: when a switch became
    /// ready (`unblocked`), those whose producers wait are reconciled now; when the fabric has
    /// just become quiet, those with stale consumers are reconciled once it has been so for a
    /// drain.
    pub(crate) fn readiness_changed(&self, unblocked: bool, quiet: bool) {
        let (held, stale): (Vec<String>, Vec<String>) = {
            let st = self.read();
            (
                if unblocked {
                    st.waiting.iter().cloned().collect()
                } else {
                    Vec::new()
                },
                if quiet {
                    st.stale.iter().cloned().collect()
                } else {
                    Vec::new()
                },
            )
        };
        for name in held {
            self.reconcile_later(&name, Duration::ZERO);
        }
        for name in stale {
            self.reconcile_later(&name, self.drain);
        }
    }

    /// Reconciles `name` after `wait`, in a task of its own, if it is connected then.
    fn reconcile_later(&self, name: &str, wait: Duration) {
        let (Some(me), Some(ctl), Ok(rt)) = (
            self.me.get().and_then(std::sync::Weak::upgrade),
            self.ctl.get().and_then(std::sync::Weak::upgrade),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let Some(dpid) = self.fabric.dpid_of(name) else {
            return;
        };
        let name = name.to_string();
        rt.spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let Some(h) = ctl.registry.get(dpid) else {
                return;
            };
            match me.reconcile(&h, &name).await {
                Ok(r) if r.changed() > 0 => info!(
                    switch = %name,
                    added = r.added,
                    modified = r.modified,
                    deleted = r.deleted,
                    held = r.held,
                    deferred = r.deferred,
                    "caught up with the plan"
                ),
                Ok(_) => {}
                Err(e) => debug!(switch = %name, error = %e, "not caught up"),
            }
        });
    }

    /// Reconciles the switch now, then every `audit` (while it stays connected), skipping a
    /// round while a migration is being installed (it sends its own entries in its order).
    pub(crate) fn spawn_reconcile(&self, h: SwitchHandle, name: String, audit: Option<Duration>) {
        let (Some(me), Ok(rt)) = (
            self.me.get().and_then(std::sync::Weak::upgrade),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        rt.spawn(async move {
            match me.reconcile(&h, &name).await {
                Ok(r) => info!(
                    switch = %name,
                    kept = r.kept,
                    added = r.added,
                    modified = r.modified,
                    deleted = r.deleted,
                    foreign = r.foreign,
                    held = r.held,
                    deferred = r.deferred,
                    "table reconciled"
                ),
                Err(e) => warn!(switch = %name, error = %e, "table not reconciled"),
            }
            let Some(every) = audit else { return };
            let mut until_full = FULL_AUDIT_EVERY;
            loop {
                tokio::time::sleep(every).await;
                if h.is_closed() {
                    return;
                }
                if me.migrations_in_progress() {
                    continue;
                }
                // Most rounds only count the entries (a deleted or added entry shows); every
                // FULL_AUDIT_EVERY-th reads the table (a modified entry shows too).
                until_full = until_full.saturating_sub(1);
                if until_full > 0 {
                    let want = me.switch_plan(&name).len();
                    match count_flows(&h).await {
                        Ok(n) if n as usize == want => continue,
                        Ok(_) | Err(_) => {}
                    }
                }
                until_full = FULL_AUDIT_EVERY;
                match me.reconcile(&h, &name).await {
                    Ok(r) if r.changed() > 0 => warn!(
                        switch = %name,
                        added = r.added,
                        modified = r.modified,
                        deleted = r.deleted,
                        "audit: the table had drifted from the plan; repaired"
                    ),
                    Ok(_) => debug!(switch = %name, "audit: table as planned"),
                    Err(e) => {
                        if h.is_closed() {
                            return;
                        }
                        warn!(switch = %name, error = %e, "audit failed");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ofp13::{Instruction, Match, Oxm};

    fn stats(f: &Flow) -> FlowStats {
        FlowStats {
            table_id: f.table_id,
            duration_sec: 7,
            duration_nsec: 0,
            priority: f.priority,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie: f.cookie,
            packet_count: 3,
            byte_count: 180,
            match_: f.match_.clone(),
            instructions: f.instructions.clone(),
        }
    }

    #[test]
    fn only_the_difference_is_sent() {
        let fabric = crate::fabric::plan::paper_fabric();
        let plan = fabric.switch_plan("r3", &fabric.configured_hosts());
        let live: Vec<FlowStats> = plan.iter().map(stats).collect();
        // The same table (counters and durations aside): nothing to send.
        let (mods, r) = difference(&live, &plan);
        assert!(mods.is_empty());
        assert_eq!(r.kept, plan.len());
        // Match fields reported in another order are the same entry.
        let mut reordered = live.clone();
        for f in &mut reordered {
            f.match_.fields.reverse();
        }
        assert!(difference(&reordered, &plan).0.is_empty());
        // One missing, one changed, one extra (not ours).
        let mut drifted = live.clone();
        drifted.remove(0);
        drifted[3].instructions = vec![Instruction::GotoTable { table_id: 4 }];
        drifted.push(FlowStats {
            cookie: crate::fabric::plan::COOKIE_HOST | 0x0a00_0009,
            match_: Match::new(vec![Oxm::InPort(9, None)]),
            priority: 7,
            ..stats(&plan[0])
        });
        // Someone else's entry is left alone.
        drifted.push(FlowStats {
            cookie: 0x1234,
            match_: Match::new(vec![Oxm::InPort(8, None)]),
            priority: 7,
            ..stats(&plan[0])
        });
        let (mods, r) = difference(&drifted, &plan);
        assert_eq!(
            (r.added, r.modified, r.deleted, r.foreign),
            (1, 1, 1, 1),
            "{r:?}"
        );
        assert_eq!(mods.len(), 3);
        let del = mods.last().unwrap();
        assert_eq!(
            (del.command, del.priority, del.cookie),
            (ofp13::OFPFC_DELETE_STRICT, 7, 0),
            "strict delete of exactly the extra entry of ours, never a blanket one"
        );
        assert!(mods[..2].iter().all(|m| m.command == ofp13::OFPFC_ADD));
    }
}
