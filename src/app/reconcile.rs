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
//!
//! Meters are reconciled with the table: missing ones are added and changed ones modified
//! before any entry that may use them is sent; meters the plan does not have are deleted
//! after the entries, unless an entry that is not servswitch's uses one (deleting a meter
//! deletes the entries that use it). Each audit round reads the meters' statistics (what
//! `/metrics` reports as dropped packet-ins) and reconciles when a planned meter is missing.
//!
//! Groups (the select groups of multipath routes) likewise: added or modified before the
//! entries (an entry naming a group that does not exist is refused), deleted after them
//! unless another application's entry uses one. A group deleted behind the controller's back
//! takes the entries that use it, which the next audit round's count sees.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ofp13::{
    Action, Body, FlowStats, FlowStatsRequest, GroupDesc, GroupMod, Instruction, MeterConfig,
    MeterStats, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
};
use tracing::{debug, info, warn};

use crate::app::effect::Effect;
use crate::app::router::Router;
use crate::fabric::plan::Flow;
use crate::mobility::update::{difference_in_order, Allow, Reconciled};
use crate::switch::runtime::SwitchHandle;

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

/// Sends one multipart request and gathers, over every part of the reply, what `take` finds
/// in each.
async fn read_parts<T>(
    h: &SwitchHandle,
    body: MultipartRequestBody,
    take: impl Fn(MultipartReplyBody) -> Option<Vec<T>>,
) -> Result<Vec<T>, String> {
    let req = Body::MultipartRequest(MultipartRequest::new(body));
    let parts = h.request(req).await.map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for m in parts {
        if let Body::MultipartReply(r) = m.body {
            all.extend(take(r.body).unwrap_or_default());
        }
    }
    Ok(all)
}

/// Reads every flow entry of the switch.
pub async fn read_table(h: &SwitchHandle) -> Result<Vec<FlowStats>, String> {
    read_parts(
        h,
        MultipartRequestBody::Flow(FlowStatsRequest::all()),
        |b| match b {
            MultipartReplyBody::Flow(f) => Some(f),
            _ => None,
        },
    )
    .await
}

/// Reads every meter's configuration; None when the switch implements no meters (it refuses
/// the meter requests, or has room for none: meters are optional in OpenFlow 1.3, and Open
/// vSwitch's kernel datapath has none before Linux 4.15).
pub async fn read_meters(h: &SwitchHandle) -> Result<Option<Vec<MeterConfig>>, String> {
    let features =
        Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::MeterFeatures));
    let parts = match h.request(features).await {
        Ok(p) => p,
        Err(crate::switch::session::ReplyError::Switch(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let room = parts.iter().any(|m| {
        matches!(&m.body, Body::MultipartReply(r)
            if matches!(&r.body, MultipartReplyBody::MeterFeatures(f) if f.max_meter > 0))
    });
    if !room {
        return Ok(None);
    }
    let req = Body::MultipartRequest(MultipartRequest::new(MultipartRequestBody::MeterConfig {
        meter_id: ofp13::meter::ALL,
    }));
    let parts = match h.request(req).await {
        Ok(p) => p,
        Err(crate::switch::session::ReplyError::Switch(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut meters = Vec::new();
    for m in parts {
        if let Body::MultipartReply(r) = m.body {
            if let MultipartReplyBody::MeterConfig(v) = r.body {
                meters.extend(v);
            }
        }
    }
    Ok(Some(meters))
}

/// Reads every group's description.
pub async fn read_groups(h: &SwitchHandle) -> Result<Vec<GroupDesc>, String> {
    read_parts(h, MultipartRequestBody::GroupDesc, |b| match b {
        MultipartReplyBody::GroupDesc(g) => Some(g),
        _ => None,
    })
    .await
}

/// Reads every group's counters.
pub async fn read_group_stats(h: &SwitchHandle) -> Result<Vec<ofp13::GroupStats>, String> {
    let all = MultipartRequestBody::Group {
        group_id: ofp13::group::ALL,
    };
    read_parts(h, all, |b| match b {
        MultipartReplyBody::Group(g) => Some(g),
        _ => None,
    })
    .await
}

/// What to send to bring the live groups to the plan: adds and modifies (sent before the
/// entries), and deletes (sent after them). A group the plan does not have is kept while an
/// entry that is not servswitch's uses it.
pub fn group_difference(
    live: &[GroupDesc],
    plan: &[crate::fabric::plan::Group],
    table: &[FlowStats],
) -> (Vec<GroupMod>, Vec<GroupMod>) {
    let mut before = Vec::new();
    for g in plan {
        match live.iter().find(|l| l.group_id == g.id) {
            None => before.push(g.group_mod(ofp13::OFPGC_ADD)),
            Some(l) if *l != g.desc() => before.push(g.group_mod(ofp13::OFPGC_MODIFY)),
            Some(_) => {}
        }
    }
    let foreign_uses = |id: u32| {
        table.iter().any(|f| {
            !crate::fabric::plan::is_ours(f.cookie)
                && f.instructions.iter().any(|i| match i {
                    Instruction::ApplyActions { actions }
                    | Instruction::WriteActions { actions } => actions
                        .iter()
                        .any(|a| matches!(a, Action::Group { group_id } if *group_id == id)),
                    _ => false,
                })
        })
    };
    let after = live
        .iter()
        .filter(|l| !plan.iter().any(|g| g.id == l.group_id) && !foreign_uses(l.group_id))
        .map(|l| crate::fabric::plan::Group::delete(l.group_id))
        .collect();
    (before, after)
}

/// Reads every meter's statistics.
pub async fn read_meter_stats(h: &SwitchHandle) -> Result<Vec<MeterStats>, String> {
    let all = MultipartRequestBody::Meter {
        meter_id: ofp13::meter::ALL,
    };
    read_parts(h, all, |b| match b {
        MultipartReplyBody::Meter(m) => Some(m),
        _ => None,
    })
    .await
}

/// What to send to bring the live meters to the plan: adds and modifies (sent before the
/// entries), and deletes (sent after them). A meter the plan does not have is kept while an
/// entry that is not servswitch's uses it.
pub fn meter_difference(
    live: &[MeterConfig],
    plan: &[crate::fabric::plan::Meter],
    table: &[FlowStats],
) -> (Vec<ofp13::MeterMod>, Vec<ofp13::MeterMod>) {
    let mut before = Vec::new();
    for m in plan {
        let want = m.config();
        match live.iter().find(|l| l.meter_id == m.id) {
            None => before.push(m.meter_mod(ofp13::OFPMC_ADD)),
            Some(l) if l.flags != want.flags || l.bands != want.bands => {
                before.push(m.meter_mod(ofp13::OFPMC_MODIFY))
            }
            Some(_) => {}
        }
    }
    let foreign_uses = |id: u32| {
        table.iter().any(|f| {
            !crate::fabric::plan::is_ours(f.cookie)
                && Instruction::meter_of(&f.instructions) == Some(id)
        })
    };
    let after = live
        .iter()
        .filter(|l| !plan.iter().any(|m| m.id == l.meter_id) && !foreign_uses(l.meter_id))
        .map(|l| crate::fabric::plan::Meter::delete(l.meter_id))
        .collect();
    (before, after)
}

impl Router {
    /// Brings one switch's table to the plan: read, compare, send the difference, barrier;
    /// then the switch is ready (it holds its consumers). Producers whose consumers are not
    /// ready everywhere wait, and consumers no longer planned wait for the fabric to be quiet
    /// ([`crate::app::router::State::quiet`]); the switch is caught up when that changes
    /// ([`Router::readiness_changed`]).
    pub async fn reconcile(
        self: &Arc<Self>,
        h: &SwitchHandle,
        name: &str,
    ) -> Result<Reconciled, String> {
        let lock = self.switch_lock(name);
        let _serial = lock.lock().await;
        let live_meters = read_meters(h).await?;
        self.set_metered(name, live_meters.is_some());
        let live_meters = live_meters.unwrap_or_default();
        let live_groups = read_groups(h).await?;
        let live = read_table(h).await?;
        // The plan is taken after the table was read: anything the router added to its state
        // before sending it to the switch is then in the plan too (at worst added twice).
        let (groups_before, groups_after) =
            group_difference(&live_groups, &self.switch_groups(name), &live);
        let (mods, mut r, meters_before, meters_after) = {
            let st = self.read();
            let plan = st.switch_plan(&self.fabric, name);
            let (meters_before, meters_after) =
                meter_difference(&live_meters, &st.meters(&self.fabric, name), &live);
            let producer = |f: &Flow| {
                let vm = st.owner_of(f.cookie, &f.match_).and_then(|mac| st.vm(mac));
                vm.is_none_or(|vm| {
                    crate::mobility::flows::consumer_switches(&vm)
                        .iter()
                        .filter(|s| s.as_str() != name)
                        .all(|s| st.ready_for(s, vm.mac))
                })
            };
            let (mods, r) = difference_in_order(
                &live,
                &plan,
                &Allow {
                    producer: &producer,
                    delete_consumers: st.quiet(self.now(), self.drain),
                },
            );
            (mods, r, meters_before, meters_after)
        };
        r.meters = meters_before.len() + meters_after.len();
        r.groups = groups_before.len() + groups_after.len();
        if !mods.is_empty() || !meters_before.is_empty() || !groups_before.is_empty() {
            let bodies = meters_before
                .into_iter()
                .map(Body::MeterMod)
                .chain(groups_before.into_iter().map(Body::GroupMod))
                .chain(mods.into_iter().map(Body::FlowMod))
                .collect();
            h.send(bodies).await.map_err(|e| e.to_string())?;
            h.barrier().await.map_err(|e| e.to_string())?;
        }
        if !meters_after.is_empty() || !groups_after.is_empty() {
            h.send(
                groups_after
                    .into_iter()
                    .map(Body::GroupMod)
                    .chain(meters_after.into_iter().map(Body::MeterMod))
                    .collect(),
            )
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
            let now = self.now();
            let quiet = st.refresh_quiet(&self.fabric.topology.switches, now);
            let retry_in = (r.deferred > 0)
                .then_some(st.quiet_since)
                .flatten()
                .map(|t| self.drain.saturating_sub(now.duration_since(t)));
            (!was && st.ready(name), quiet, retry_in)
        };
        for e in self.readiness_changed(became_ready, quiet) {
            self.carry_out(e);
        }
        if let Some(after) = retry_in {
            self.carry_out(Effect::Reconcile {
                name: name.to_string(),
                after,
            });
        }
        Ok(r)
    }

    /// What a change of readiness may let switches catch up with: when a switch became
    /// ready (`unblocked`), those whose producers wait are reconciled now; when the fabric has
    /// just become quiet, those with stale consumers are reconciled once it has been so for a
    /// drain. Returns those reconciliations.
    #[must_use]
    pub(crate) fn readiness_changed(&self, unblocked: bool, quiet: bool) -> Vec<Effect> {
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
        let now = held.into_iter().map(|name| Effect::Reconcile {
            name,
            after: Duration::ZERO,
        });
        let after_drain = stale.into_iter().map(|name| Effect::Reconcile {
            name,
            after: self.drain,
        });
        now.chain(after_drain).collect()
    }

    /// Reconciles the switch now, then every `audit` (while it stays connected), skipping a
    /// round while a migration is being installed (it sends its own entries in its order).
    /// A reconciliation asked for after a change of readiness: logged when it changed
    /// something.
    pub(crate) async fn catch_up(self: &Arc<Self>, name: &str) {
        let Some(h) = self.switch_handle(name) else {
            return;
        };
        match self.reconcile(&h, name).await {
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
    }

    pub(crate) async fn audit(
        self: &Arc<Self>,
        h: SwitchHandle,
        name: String,
        audit: Option<Duration>,
    ) {
        // Its links are checked once its table is reconciled (it then sends its peers'
        // LLDP here): after this first reconciliation, or the first audit that succeeds.
        let mut checking = false;
        // Its IPv6 hosts get router advertisements from then on (those that solicited one
        // before the table was in place would otherwise wait for their next solicitation).
        let check_links = |checking: &mut bool| {
            if *checking {
                return;
            }
            *checking = true;
            tokio::spawn(Arc::clone(self).advertise_loop(h.clone(), name.clone()));
            if self.lldp {
                tokio::spawn(Arc::clone(self).lldp(h.clone(), name.clone()));
            }
        };
        match self.reconcile(&h, &name).await {
            Ok(r) => {
                info!(
                    switch = %name,
                    kept = r.kept,
                    added = r.added,
                    modified = r.modified,
                    deleted = r.deleted,
                    meters = r.meters,
                    groups = r.groups,
                    foreign = r.foreign,
                    held = r.held,
                    deferred = r.deferred,
                    "table reconciled"
                );
                check_links(&mut checking);
            }
            Err(e) => warn!(switch = %name, error = %e, "table not reconciled"),
        }
        let Some(every) = audit else { return };
        let mut until_full = FULL_AUDIT_EVERY;
        loop {
            tokio::time::sleep(every).await;
            if h.is_closed() {
                return;
            }
            if self.migrations_in_progress() {
                continue;
            }
            // Most rounds only count the entries (a deleted or added entry shows); every
            // FULL_AUDIT_EVERY-th reads the table (a modified entry shows too).
            until_full = until_full.saturating_sub(1);
            // The meters' statistics, every round: the drops /metrics reports, and a
            // planned meter that is missing.
            let meters_right = self.is_unmetered(&name)
                || match read_meter_stats(&h).await {
                    Ok(stats) => {
                        let ids: BTreeSet<u32> = stats.iter().map(|m| m.meter_id).collect();
                        self.record_meter_stats(&name, stats);
                        self.switch_meters(&name)
                            .iter()
                            .all(|m| ids.contains(&m.id))
                    }
                    Err(_) => false,
                };
            if until_full > 0 && meters_right {
                let want = self.switch_plan(&name).len();
                match count_flows(&h).await {
                    Ok(n) if n as usize == want => continue,
                    Ok(_) | Err(_) => {}
                }
            }
            until_full = FULL_AUDIT_EVERY;
            match self.reconcile(&h, &name).await {
                Ok(r) => {
                    if r.changed() > 0 {
                        warn!(
                            switch = %name,
                            added = r.added,
                            modified = r.modified,
                            deleted = r.deleted,
                            meters = r.meters,
                            groups = r.groups,
                            "audit: the table had drifted from the plan; repaired"
                        );
                    } else {
                        debug!(switch = %name, "audit: table as planned");
                    }
                    check_links(&mut checking);
                }
                Err(e) => {
                    if h.is_closed() {
                        return;
                    }
                    warn!(switch = %name, error = %e, "audit failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::Meter;

    fn meter(id: u32, pps: u32) -> Meter {
        Meter {
            id,
            pps,
            burst: pps,
        }
    }

    fn using(meter_id: u32, cookie: u64) -> FlowStats {
        FlowStats {
            table_id: 0,
            duration_sec: 0,
            duration_nsec: 0,
            priority: 1,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie,
            packet_count: 0,
            byte_count: 0,
            match_: ofp13::Match::default(),
            instructions: vec![Instruction::Meter { meter_id }],
        }
    }

    #[test]
    fn groups_missing_are_added_changed_modified_unplanned_deleted_unless_foreign_use() {
        use crate::fabric::plan::Group;
        let g = |id, ports: &[u32]| Group {
            id,
            kind: crate::fabric::plan::GroupKind::Select,
            ports: ports.to_vec(),
        };
        let plan = [g(3, &[1, 2]), g(4, &[1, 2]), g(5, &[3, 4])];
        let live = [
            g(3, &[1, 2]).desc(),
            g(4, &[2]).desc(),
            g(7, &[1, 2]).desc(),
            g(8, &[1, 2]).desc(),
        ];
        // Group 8 is used by someone else's entry; 7 only by ours.
        let uses = |id, cookie| FlowStats {
            instructions: vec![Instruction::ApplyActions {
                actions: vec![Action::Group { group_id: id }],
            }],
            ..using(1, cookie)
        };
        let table = [uses(7, crate::fabric::plan::COOKIE_ROUTE), uses(8, 0x1)];
        let (before, after) = group_difference(&live, &plan, &table);
        assert_eq!(
            before,
            [
                g(4, &[1, 2]).group_mod(ofp13::OFPGC_MODIFY),
                g(5, &[3, 4]).group_mod(ofp13::OFPGC_ADD),
            ]
        );
        assert_eq!(after, [Group::delete(7)]);
        let live: Vec<_> = plan.iter().map(Group::desc).collect();
        assert_eq!(group_difference(&live, &plan, &[]), (vec![], vec![]));
    }

    #[test]
    fn meters_missing_are_added_changed_modified_unplanned_deleted_unless_foreign_use() {
        let plan = [
            meter(2, 200),
            meter(3, 200),
            meter(ofp13::meter::CONTROLLER, 5000),
        ];
        let live = [
            meter(2, 200).config(),
            meter(3, 999).config(),
            meter(7, 200).config(),
            meter(8, 200).config(),
        ];
        // Meter 8 is used by someone else's entry; 7 only by ours.
        let table = [
            using(7, crate::fabric::plan::COOKIE_PORT | 7),
            using(8, 0x1),
        ];
        let (before, after) = meter_difference(&live, &plan, &table);
        assert_eq!(
            before,
            [
                meter(3, 200).meter_mod(ofp13::OFPMC_MODIFY),
                meter(ofp13::meter::CONTROLLER, 5000).meter_mod(ofp13::OFPMC_ADD),
            ]
        );
        assert_eq!(after, [Meter::delete(7)]);
        // As planned: nothing.
        let live: Vec<_> = plan.iter().map(Meter::config).collect();
        assert_eq!(meter_difference(&live, &plan, &[]), (vec![], vec![]));
    }
}
