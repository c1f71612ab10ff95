//! Updates of a VM's entries, decided under the state lock and sent in phases
//! ([`crate::mobility::update::Schedule::phased`]): migrations (choosing care-of addresses, recording
//! the move durably), cover changes, quiet redirect pairs, forgetting a learned host. Each is
//! the difference between the VM's flow entries before and after ([`crate::mobility::flows`]);
//! [`Router::send_update`] sends it so that no host ever sees a care-of address and nothing is
//! black-holed: consumers in and producers out, then producers in (only while the switches
//! with their consumers are ready), then, after a drain and in a task of its own, consumers
//! out (docs/migration.md, "Phases"). After a migration, gratuitous ARPs so that no cache
//! waits to expire.
//!
//! A migration to where the VM already is does nothing (QEMU repeats its announcement about
//! five times). A VM's updates run one at a time, in arrival order (a per-VM lock); an
//! announcement from yet another port while one runs is followed once it ends. The next
//! update of a VM takes over the pending last phase of its previous one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use ofp13::{port, Body, MacAddr};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::app::effect::Effect;
use crate::app::router::{AwayState, Origin, Router, State};
use crate::app::store::{Durable, Place, Store, VmRecord};
use crate::fabric::plan::{packet_out, Fabric, GATEWAY_MAC};
use crate::fabric::topology::PortRef;
use crate::mobility;
use crate::mobility::careof::CareOfError;
use crate::mobility::flows::{Away, Vm};
use crate::mobility::update::{role, PendingCleanup, Role, Schedule};
use crate::packet::Arp;

/// Why a migration was not done. Nothing was changed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no host {0:?} (give a host name, one of its addresses, or its MAC)")]
    UnknownHost(String),
    #[error("{0}")]
    BadTarget(String),
    #[error("a migration of {0} is already being installed")]
    InProgress(String),
    #[error(transparent)]
    CareOf(#[from] CareOfError),
    #[error("the state could not be saved, nothing was changed: {0}")]
    Store(String),
    #[error("the controller is not running")]
    NotRunning,
}

impl MigrateError {
    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            MigrateError::UnknownHost(_) => 404,
            MigrateError::BadTarget(_) => 400,
            MigrateError::InProgress(_) | MigrateError::CareOf(_) => 409,
            MigrateError::Store(_) => 500,
            MigrateError::NotRunning => 503,
        }
    }
}

/// Why a host was not forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForgetError {
    #[error("no such host")]
    Unknown,
    #[error("the host is declared in the topology file; only learned hosts are forgotten")]
    Declared,
}

/// What `POST /api/v1/migrations` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MigrationReport {
    pub host: String,
    pub from: String,
    pub to: String,
    pub care_of: Vec<String>,
    /// The switches that acknowledged their changes (barrier replies), in the order sent.
    pub switches: Vec<String>,
    /// Switches that were not connected: they get their whole table when they come back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    pub flow_mods: usize,
    pub elapsed_us: u64,
    /// When the update has a last phase (entries that match care-of addresses no longer in
    /// use, removed once no packet rewritten to them can be left): the milliseconds after the
    /// answer it starts, and the switches it goes to. The tables equal the plan only after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
}

/// The drained last phase of a migration, still to come when the API answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Cleanup {
    pub after_ms: u64,
    pub switches: Vec<String>,
}

/// The store's view of the VMs away from home.
pub(crate) fn records(router: &Router, st: &State) -> crate::app::store::Snapshot {
    let mut out = crate::app::store::Snapshot {
        format: crate::app::store::FORMAT,
        ..Default::default()
    };
    for (mac, a) in &st.away {
        let Some(vm) = st.vm(*mac) else { continue };
        let name = host_name(router, &vm);
        out.vms.insert(
            mac.to_string(),
            VmRecord {
                name,
                mac: *mac,
                home_subnet: vm
                    .ips
                    .first()
                    .and_then(|ip| router.fabric.subnet_of(*ip))
                    .or_else(|| vm.ips6.first().and_then(|ip| router.fabric.subnet_of6(*ip)))
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                ips: vm.ips.clone(),
                home: Place {
                    switch: a.home.0.clone(),
                    port: a.home.1,
                },
                location: Place {
                    switch: vm.switch.clone(),
                    port: vm.port,
                },
                care_of_subnet: a.care_of_subnet.clone(),
                care_of: a.away.care_of.clone(),
                ips6: vm.ips6.clone(),
                care_of6: a.away.care_of6.clone(),
                cover: {
                    let default = mobility::flows::default_cover(
                        &router.fabric,
                        &vm.switch,
                        &vm.ips,
                        &vm.ips6,
                    );
                    a.away.cover.difference(&default).cloned().collect()
                },
            },
        );
    }
    out
}

/// A host's name: its declared name, else its first address, else its MAC.
fn host_name(router: &Router, vm: &Vm) -> String {
    router
        .names_by_mac
        .get(&vm.mac)
        .cloned()
        .or_else(|| vm.ips.first().map(|ip| ip.to_string()))
        .or_else(|| vm.ips6.first().map(|ip| ip.to_string()))
        .unwrap_or_else(|| vm.mac.to_string())
}

/// What was decided under the lock, to be installed after it.
struct Prepared {
    name: String,
    before: Vm,
    after: Vm,
    update: Update,
    snapshot: crate::app::store::Snapshot,
    version: u64,
    undo: Undo,
}

/// How to put the state back if the move cannot be recorded.
struct Undo {
    /// Where the VM was.
    from: (String, u32),
    away: Option<AwayState>,
    /// The subnet care-of addresses were taken from, and those given back (subnet, addresses).
    taken: Option<String>,
    released: Option<(String, Vec<IpAddr>)>,
}

/// A move as [`plan_move`] decided it.
pub(crate) struct Planned {
    pub(crate) before: Vm,
    pub(crate) after: Vm,
    /// What installs it: the flow mods in phases.
    pub(crate) update: Update,
    undo: Undo,
}

/// Decides a move of the VM `mac` (called `name` in errors) to `to` and records it in `st`:
/// where it is, whether it is away and with which care-of addresses (taken from the pool of
/// the target's subnet, all or nothing), and the update that brings the tables there. `None`
/// when the VM is there already. Pure: no lock, no clock (`now` is given), no I/O; the
/// router calls it under its lock for every migration, and [`crate::app::planner::Planner`]
/// (`plan --migrate`) on a state of its own. `live`: the update will be sent (its switches
/// are marked as installing, the VM as migrating, the care-of addresses it gives back
/// drain); otherwise it is only planned. On an error nothing has changed.
pub(crate) fn plan_move(
    st: &mut State,
    fabric: &Fabric,
    mac: MacAddr,
    name: &str,
    to: &PortRef,
    live: bool,
    now: Instant,
) -> Result<Option<Planned>, MigrateError> {
    let target_subnet = check_target(fabric, to)?;
    let before = st
        .vm(mac)
        .ok_or_else(|| MigrateError::UnknownHost(name.to_string()))?;
    if st.migrating.contains(&mac) {
        return Err(MigrateError::InProgress(name.to_string()));
    }
    // Other hosts may be at that port too (behind a hypervisor's bridge): they stay.
    if (before.switch.as_str(), before.port) == (to.switch.as_str(), to.port) {
        return Ok(None);
    }
    // At home: the switch of every home subnet, IPv4 and IPv6 (a host with IPv6 only has
    // only IPv6 homes).
    let at_home = before
        .ips
        .iter()
        .map(|ip| fabric.subnet_of(*ip))
        .chain(before.ips6.iter().map(|ip| fabric.subnet_of6(*ip)))
        .all(|s| s.is_some_and(|s| s.switch == to.switch));
    let mut reused: Vec<(String, IpAddr)> = Vec::new();
    let old = st.away.get(&mac).cloned();
    let mut undo = Undo {
        from: (before.switch.clone(), before.port),
        away: old.clone(),
        taken: None,
        released: None,
    };
    let owner = mac.to_string();
    let new_away = if at_home {
        None
    } else {
        let keep = old
            .as_ref()
            .filter(|a| a.care_of_subnet == target_subnet.name);
        let (care_of, care_of6) = match keep {
            Some(a) => (a.away.care_of.clone(), a.away.care_of6.clone()),
            None => {
                // Its own care-of addresses there, still draining from its last stay:
                // taken back (the update that took over their cleanup keeps their
                // entries). Otherwise new ones, all or nothing (IPv4 and IPv6 together):
                // an exhausted pool fails here with nothing changed.
                let State {
                    hosts,
                    hosts6,
                    pools,
                    draining,
                    cleanups,
                    ..
                } = &mut *st;
                // A family the foreign subnet lacks is not covered there.
                let n = if pools.has_ipv4(&target_subnet.name) {
                    before.ips.len()
                } else {
                    0
                };
                let n6 = if pools.has_ipv6(&target_subnet.name) {
                    before.ips6.len()
                } else {
                    0
                };
                let draining_here: Vec<IpAddr> = cleanups
                    .get(&mac)
                    .map(|c| {
                        c.released
                            .iter()
                            .filter(|(s, _)| *s == target_subnet.name)
                            .map(|(_, a)| *a)
                            .collect()
                    })
                    .unwrap_or_default();
                let mine: Vec<IpAddr> = draining_here
                    .iter()
                    .filter(|a| a.is_ipv4())
                    .take(n)
                    .chain(draining_here.iter().filter(|a| a.is_ipv6()).take(n6))
                    .copied()
                    .collect();
                let reuse = live
                    && mine.iter().filter(|a| a.is_ipv4()).count() == n
                    && mine.iter().filter(|a| a.is_ipv6()).count() == n6
                    && pools.can_restore(&target_subnet.name, &owner, &mine);
                let got: (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = if reuse {
                    pools.restore_any(&target_subnet.name, &owner, &mine);
                    if let Some(c) = cleanups.get_mut(&mac) {
                        c.released.retain(|(_, a)| !mine.contains(a));
                    }
                    for a in &mine {
                        draining.remove(a);
                    }
                    reused = mine
                        .iter()
                        .map(|a| (target_subnet.name.clone(), *a))
                        .collect();
                    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) =
                        mine.iter().partition(|a| a.is_ipv4());
                    (
                        v4.into_iter().filter_map(as_v4).collect(),
                        v6.into_iter().filter_map(as_v6).collect(),
                    )
                } else {
                    let v4 = pools.take(&target_subnet.name, &owner, n, |a| {
                        hosts.contains_key(&a) || draining.contains(&a.into())
                    })?;
                    // An IPv6 care-of address never shares the low 32 bits of one of the
                    // VM's home addresses (its entries' cookies tell them apart by those).
                    let homes: Vec<u32> =
                        before.ips6.iter().map(|a| u128::from(*a) as u32).collect();
                    let v6 = match pools.take6(&target_subnet.name, &owner, n6, |a| {
                        hosts6.contains_key(&a)
                            || draining.contains(&a.into())
                            || homes.contains(&(u128::from(a) as u32))
                    }) {
                        Ok(v6) => v6,
                        Err(e) => {
                            let taken: Vec<IpAddr> = v4.iter().map(|a| (*a).into()).collect();
                            pools.give_back(&target_subnet.name, &owner, &taken);
                            return Err(e.into());
                        }
                    };
                    (v4, v6)
                };
                undo.taken = Some(target_subnet.name.clone());
                if let Some(a) = &old {
                    let gone = st.release_care_of(&a.care_of_subnet, &owner, now);
                    undo.released = Some((a.care_of_subnet.clone(), gone));
                }
                got
            }
        };
        Some(AwayState {
            away: Away {
                care_of,
                care_of6,
                cover: mobility::flows::default_cover(
                    fabric,
                    &to.switch,
                    &before.ips,
                    &before.ips6,
                ),
                ..Default::default()
            },
            home: old
                .as_ref()
                .map_or((before.switch.clone(), before.port), |a| a.home.clone()),
            care_of_subnet: target_subnet.name.clone(),
        })
    };
    if new_away.is_none() {
        if let Some(a) = &old {
            let gone = st.release_care_of(&a.care_of_subnet, &owner, now);
            undo.released = Some((a.care_of_subnet.clone(), gone));
        }
    }
    let after = Vm {
        switch: to.switch.clone(),
        port: to.port,
        away: new_away.as_ref().map(|a| a.away.clone()),
        ..before.clone()
    };
    let released = undo
        .released
        .as_ref()
        .map(|(s, a)| a.iter().map(|a| (s.clone(), *a)).collect())
        .unwrap_or_default();
    let mut update = Update::begin(st, fabric, &before, &after, released, live);
    update.reused = reused;
    st.relocate(mac, &to.switch, to.port);
    if live {
        // Wherever it was detached, it is where it is moved to now.
        st.detached.remove(&mac);
    }
    match new_away {
        Some(a) => st.away.insert(mac, a),
        None => st.away.remove(&mac),
    };
    if live {
        st.migrating.insert(mac);
    }
    st.cover_tried.retain(|(m, _), _| *m != mac);
    st.cover_wanted.remove(&mac);
    st.cover_unwanted.remove(&mac);
    st.previous
        .insert(mac, ((before.switch.clone(), before.port), now));
    Ok(Some(Planned {
        before,
        after,
        update,
        undo,
    }))
}

/// Where a host may be moved to: a host port of a switch that is the gateway of a subnet
/// with that port. Returns that subnet.
pub fn check_target(
    fabric: &Fabric,
    to: &PortRef,
) -> Result<crate::fabric::topology::SubnetConf, MigrateError> {
    let Some(conf) = fabric.switch(&to.switch) else {
        return Err(MigrateError::BadTarget(format!(
            "no switch named {:?}",
            to.switch
        )));
    };
    if to.port == 0 || to.port > port::MAX {
        return Err(MigrateError::BadTarget(format!(
            "{to}: not a valid port number"
        )));
    }
    if fabric.is_link_port(&to.switch, to.port) {
        return Err(MigrateError::BadTarget(format!(
            "{to} is a switch-to-switch link, not a host port"
        )));
    }
    fabric
        .subnet_at(&to.switch, to.port)
        .cloned()
        .ok_or_else(|| {
            MigrateError::BadTarget(format!(
                "{to}: {} ({}) is the gateway of no subnet with that port; hosts live on access ports",
                conf.name, conf.tier
            ))
        })
}

impl Router {
    /// Restores VMs recorded away from home (at start, before any switch connects).
    /// All or nothing: a record that does not fit the topology leaves the state as it was.
    pub fn restore(&mut self, saved: &crate::app::store::Snapshot) -> anyhow::Result<()> {
        let mut restored = self.read().clone();
        let st = &mut restored;
        for r in saved.vms.values() {
            if self.fabric.subnets_of(&r.location.switch).next().is_none() {
                anyhow::bail!(
                    "{}: recorded at {}:{}, which is not a switch with subnets in this topology",
                    r.name,
                    r.location.switch,
                    r.location.port
                );
            }
            if let Some(ip) = r
                .ips
                .iter()
                .find(|ip| self.fabric.subnet_of(**ip).is_none())
            {
                anyhow::bail!("{}: address {ip} is in no subnet of this topology", r.name);
            }
            // None when the foreign subnet has no IPv4 (its IPv4 addresses are not covered).
            let care_of_wanted = if st.pools.has_ipv4(&r.care_of_subnet) {
                r.ips.len()
            } else {
                0
            };
            if r.care_of.len() != care_of_wanted {
                anyhow::bail!(
                    "{}: {} care-of addresses for {} addresses",
                    r.name,
                    r.care_of.len(),
                    r.ips.len()
                );
            }
            if !st
                .pools
                .restore(&r.care_of_subnet, &r.mac.to_string(), &r.care_of)
            {
                anyhow::bail!(
                    "{}: care-of addresses {:?} conflict with the topology or another VM",
                    r.name,
                    r.care_of
                );
            }
            if !r.care_of6.is_empty() && r.care_of6.len() != r.ips6.len() {
                anyhow::bail!(
                    "{}: {} IPv6 care-of addresses for {} IPv6 addresses",
                    r.name,
                    r.care_of6.len(),
                    r.ips6.len()
                );
            }
            if let Some(ip) = r.ips6.iter().find(|ip| {
                self.fabric.subnet_of6(**ip).is_none()
                    || st.hosts6.get(ip).is_some_and(|(h, _)| h.mac != r.mac)
            }) {
                anyhow::bail!(
                    "{}: IPv6 address {ip} is in no subnet of this topology, or another host's",
                    r.name
                );
            }
            if !st
                .pools
                .restore6(&r.care_of_subnet, &r.mac.to_string(), &r.care_of6)
            {
                anyhow::bail!(
                    "{}: IPv6 care-of addresses {:?} conflict with the topology or another VM",
                    r.name,
                    r.care_of6
                );
            }
            for ip in &r.ips6 {
                st.bind6(
                    crate::fabric::plan::HostLoc6 {
                        ip: *ip,
                        mac: r.mac,
                        switch: r.location.switch.clone(),
                        port: r.location.port,
                    },
                    Origin::Learned,
                );
            }
            for ip in &r.ips {
                let origin = st.hosts.get(ip).map_or(Origin::Learned, |(_, o)| *o);
                st.bind(
                    crate::fabric::plan::HostLoc {
                        ip: *ip,
                        mac: r.mac,
                        switch: r.location.switch.clone(),
                        port: r.location.port,
                    },
                    origin,
                );
            }
            st.relocate(r.mac, &r.location.switch, r.location.port);
            if !r.care_of6.is_empty() && st.vm(r.mac).is_none_or(|vm| vm.ips6 != r.ips6) {
                anyhow::bail!(
                    "{}: its IPv6 addresses in this topology are not the recorded {:?}",
                    r.name,
                    r.ips6
                );
            }
            st.away.insert(
                r.mac,
                AwayState {
                    away: Away {
                        care_of: r.care_of.clone(),
                        care_of6: r.care_of6.clone(),
                        cover: {
                            let mut c = mobility::flows::default_cover(
                                &self.fabric,
                                &r.location.switch,
                                &r.ips,
                                &r.ips6,
                            );
                            c.extend(
                                r.cover
                                    .iter()
                                    .filter(|s| self.fabric.subnets_of(s).next().is_some())
                                    .cloned(),
                            );
                            c
                        },
                        ..Default::default()
                    },
                    home: (r.home.switch.clone(), r.home.port),
                    care_of_subnet: r.care_of_subnet.clone(),
                },
            );
        }
        *self.state.get_mut().unwrap_or_else(|e| e.into_inner()) = restored;
        Ok(())
    }

    /// Uses `store` for every migration from now on.
    pub fn with_store(mut self, store: Store) -> Router {
        self.store = Some(Durable::new(store));
        self
    }

    /// Finds a host by name, address or MAC.
    pub fn find_host(&self, sel: &str) -> Option<MacAddr> {
        if let Some(mac) = self.macs_by_name.get(sel) {
            return Some(*mac);
        }
        let st = self.read();
        if let Ok(ip) = sel.parse::<Ipv4Addr>() {
            return st.hosts.get(&ip).map(|(h, _)| h.mac);
        }
        if let Ok(ip) = sel.parse::<std::net::Ipv6Addr>() {
            return st.hosts6.get(&ip).map(|(h, _)| h.mac);
        }
        let mac: MacAddr = sel.parse().ok()?;
        st.knows_mac(mac).then_some(mac)
    }

    /// Migrates the host `sel` (name, address or MAC) to `to`.
    pub async fn migrate(
        self: &Arc<Self>,
        sel: &str,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        self.lock()
            .triggers
            .insert(mac, (crate::app::claims::Trigger::Api, None));
        self.migrate_mac(mac, to).await
    }

    /// Migrates the host with this MAC to `to`.
    pub async fn migrate_mac(
        self: &Arc<Self>,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let r = self.migrate_counted(mac, to).await;
        // Announced elsewhere meanwhile: followed, as a move of its own (which follows any
        // announcement made while it is installed, and so on).
        if let Some(to) = self.take_next_move(mac, to) {
            self.carry_out(Effect::Migrate {
                mac,
                to,
                why: "migration not done",
            });
        }
        r
    }

    /// A migration, counted in the metrics.
    async fn migrate_counted(
        self: &Arc<Self>,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let lock = self.vm_lock(mac);
        let r = {
            let _one_at_a_time = lock.lock().await;
            self.migrate_inner(mac, to).await
        };
        {
            let mut st = self.lock();
            match &r {
                Ok(rep) if rep.flow_mods > 0 || rep.from != rep.to => st.migrations_done += 1,
                Ok(_) => {}
                Err(_) => st.migrations_failed += 1,
            }
        }
        self.record_move(mac, to, &r);
        // A move made on a claim is checked now that it is installed.
        if let Some(probe) = self.claim_installed(mac, to, r.is_ok()) {
            self.carry_out(probe);
        }
        r
    }

    /// Where the VM was announced while a move to `to` was installed, if that is elsewhere.
    fn take_next_move(&self, mac: MacAddr, to: &PortRef) -> Option<PortRef> {
        let mut st = self.lock();
        if st.migrating.contains(&mac) {
            return None; // another move is running; it takes it when it ends
        }
        st.next_move
            .remove(&mac)
            .filter(|(sw, port)| (sw.as_str(), *port) != (to.switch.as_str(), to.port))
            .map(|(switch, port)| PortRef { switch, port })
    }

    async fn migrate_inner(
        self: &Arc<Self>,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let t0 = Instant::now();
        if self.switches.is_none() {
            return Err(MigrateError::NotRunning);
        }
        // A pool whose free addresses are all still draining (given back by an update whose
        // last phase has not run) is free again within the drain: wait for it, once.
        let deadline = Instant::now() + self.drain * 2;
        let p = loop {
            let done = self.updates_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            match self.prepare(mac, to, true) {
                Ok(Ok(p)) => break p,
                Ok(Err(noop)) => return Ok(noop),
                Err(MigrateError::CareOf(e))
                    if !self.read().draining.is_empty() && Instant::now() < deadline =>
                {
                    debug!(%mac, error = %e, "waiting for care-of addresses to drain");
                    let _ = tokio::time::timeout_at(deadline.into(), done).await;
                }
                Err(e) => return Err(e),
            }
        };
        // Durable before any flow is sent; a failure puts everything back.
        if let Some(Err(e)) = self.store.as_ref().map(|d| d.save(&p.snapshot, p.version)) {
            self.undo(mac, p.undo, &p.update);
            return Err(MigrateError::Store(e.to_string()));
        }
        let result = self.install(&p, to, t0).await;
        self.lock().migrating.remove(&mac);
        result
    }

    /// Where a host may be moved to ([`check_target`]).
    pub(crate) fn check_target(
        &self,
        to: &PortRef,
    ) -> Result<crate::fabric::topology::SubnetConf, MigrateError> {
        check_target(&self.fabric, to)
    }

    /// Decides the move under the state lock ([`plan_move`]): `Ok(Err(report))` when there
    /// is nothing to do. `live`: the update will be sent (its switches are marked as
    /// installing, the care-of addresses it gives back drain); otherwise it is only planned.
    fn prepare(
        &self,
        mac: MacAddr,
        to: &PortRef,
        live: bool,
    ) -> Result<Result<Prepared, MigrationReport>, MigrateError> {
        let mut st = self.lock();
        let name = st
            .vm(mac)
            .map_or_else(|| mac.to_string(), |vm| host_name(self, &vm));
        let Some(planned) = plan_move(&mut st, &self.fabric, mac, &name, to, live, self.now())?
        else {
            let here = st
                .location(mac)
                .map(|(s, p)| format!("{s}:{p}"))
                .unwrap_or_default();
            return Ok(Err(MigrationReport {
                host: name,
                from: here.clone(),
                to: here,
                care_of: st
                    .away
                    .get(&mac)
                    .map(|a| care_of_text(&a.away))
                    .unwrap_or_default(),
                switches: Vec::new(),
                pending: Vec::new(),
                flow_mods: 0,
                elapsed_us: 0,
                cleanup: None,
            }));
        };
        let snapshot = if self.store.is_some() {
            records(self, &st)
        } else {
            Default::default()
        };
        st.version += 1;
        let version = st.version;
        let Planned {
            before,
            after,
            update,
            undo,
        } = planned;
        Ok(Ok(Prepared {
            name,
            before,
            after,
            update,
            snapshot,
            version,
            undo,
        }))
    }

    /// Records a move without installing anything (`migrate::plan_move` under the lock): the
    /// update a controller would send. For a driver with no switches to send it to (the flow
    /// tables of `tests/common/fake_fabric.rs`, which apply it themselves).
    pub fn plan_move(&self, sel: &str, to: &PortRef) -> Result<Schedule, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        match self.prepare(mac, to, false)? {
            Ok(p) => Ok(p.update.schedule),
            Err(_) => Ok(Schedule::default()),
        }
    }

    fn undo(&self, mac: MacAddr, u: Undo, update: &Update) {
        let mut st = self.lock();
        update.abandon(&mut st, &self.fabric.topology.switches, self.now());
        st.relocate(mac, &u.from.0, u.from.1);
        match u.away {
            Some(a) => st.away.insert(mac, a),
            None => st.away.remove(&mac),
        };
        let owner = mac.to_string();
        if let Some(subnet) = u.taken {
            st.pools.release(&subnet, &owner);
            st.pools.release6(&subnet, &owner);
        }
        if let Some((subnet, addrs)) = u.released {
            st.pools.restore_any(&subnet, &owner, &addrs);
        }
        st.migrating.remove(&mac);
    }

    /// Forgets a learned host and removes its entries (the whole fabric's, if it is away),
    /// in the phases of any update. `since`: called when the detached grace that began
    /// then has passed; nothing happens if the host was seen again meanwhile (or detached
    /// again later). Without it (`DELETE /api/v1/hosts/...`), at once.
    pub async fn forget(
        self: &Arc<Self>,
        mac: MacAddr,
        since: Option<Instant>,
    ) -> Result<(), ForgetError> {
        let lock = self.vm_lock(mac);
        let _one_at_a_time = lock.lock().await;
        let (update, snapshot, version, name) = {
            let mut st = self.lock();
            let vm = st.vm(mac).ok_or(ForgetError::Unknown)?;
            if st.origin(mac) != Some(Origin::Learned) {
                return Err(ForgetError::Declared);
            }
            if since.is_some() && st.detached.get(&mac).copied() != since {
                return Ok(()); // seen again since, or detached anew (its own timer runs)
            }
            let name = host_name(self, &vm);
            let released = match st.away.remove(&mac) {
                Some(a) => st
                    .release_care_of(&a.care_of_subnet, &mac.to_string(), self.now())
                    .into_iter()
                    .map(|ip| (a.care_of_subnet.clone(), ip))
                    .collect(),
                None => Vec::new(),
            };
            let update = Update::new(
                &mut st,
                mac,
                mobility::flows::by_switch(mobility::flows::vm_flows(&self.fabric, &vm)),
                BTreeMap::new(),
                BTreeSet::new(),
                released,
                true,
            );
            for ip in &vm.ips {
                st.unbind(*ip);
            }
            // Its IPv6 addresses go with it (their entries are among the VM's, removed above).
            st.unbind6_all(mac);
            st.detached.remove(&mac);
            st.previous.remove(&mac);
            st.next_move.remove(&mac);
            st.cover_wanted.remove(&mac);
            st.cover_tried.retain(|(m, _), _| *m != mac);
            st.version += 1;
            let snapshot = if self.store.is_some() {
                records(self, &st)
            } else {
                Default::default()
            };
            (update, snapshot, st.version, name)
        };
        if let Some(Err(e)) = self.store.as_ref().map(|d| d.save(&snapshot, version)) {
            warn!(error = %e, "state not saved after forgetting a host");
        }
        if self.switches.is_none() {
            update.abandon(&mut self.lock(), &self.fabric.topology.switches, self.now());
            return Ok(());
        }
        let (_, _, n) = self.send_update(&update).await;
        info!(host = %name, %mac, flow_mods = n, detached_since = ?since.map(|t| self.now().duration_since(t)), "host forgotten with its entries");
        Ok(())
    }

    /// The lock that makes a VM's migrations and cover changes run one at a time.
    pub(crate) fn vm_lock(&self, mac: MacAddr) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.vm_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(mac).or_default().clone()
    }

    /// Stops copying the packets (or the TCP segments) of a (source, destination) pair
    /// between the VM and a host of its foreign subnet to the controller: their redirects
    /// are spent.
    pub(crate) async fn quiet_redirects(
        self: &Arc<Self>,
        mac: MacAddr,
        pair: mobility::flows::QuietPair,
    ) {
        let lock = self.vm_lock(mac);
        let _one_at_a_time = lock.lock().await;
        let update = {
            let mut st = self.lock();
            let Some(vm) = st.vm(mac) else { return };
            if vm.away.as_ref().is_none_or(|a| a.quiet.contains(&pair)) {
                return;
            }
            let mut after = vm.clone();
            if let Some(a) = after.away.as_mut() {
                a.quiet.insert(pair);
            }
            let update = Update::begin(&mut st, &self.fabric, &vm, &after, Vec::new(), true);
            if update.schedule.is_empty() {
                update.abandon(&mut st, &self.fabric.topology.switches, self.now());
                return; // not a pair of the foreign switch (any more)
            }
            if let (Some(a), Some(new)) = (st.away.get_mut(&mac), after.away) {
                a.away = new;
            }
            update
        };
        if self.switches.is_none() {
            update.abandon(&mut self.lock(), &self.fabric.topology.switches, self.now());
            return;
        }
        self.send_update(&update).await;
        info!(%mac, from = %pair.src, to = %pair.dst, tcp_only = pair.tcp_only,
            quiet_s = mobility::flows::REDIRECT_QUIET.as_secs(),
            "redirects spent: the pair's packets are no longer copied to the controller");
    }

    /// The VM's cover task: takes out of its cover the switches whose rewrite idled out
    /// (their hosts stopped talking to the VM), and adds the switches wanted in it (their
    /// hosts then reach the VM by its care-of address directly instead of through the home
    /// switch: route optimisation, started by the home agent's copy of their first packet),
    /// all that are wanted at once, until nothing is. Each change is one update in phases,
    /// so a source rewritten to M* toward a cover switch is always rewritten back there.
    pub(crate) async fn change_covers(self: &Arc<Self>, mac: MacAddr) {
        loop {
            let lock = self.vm_lock(mac);
            let _one_at_a_time = lock.lock().await;
            let (update, snapshot, version, change) = {
                let mut st = self.lock();
                // Removals first: a switch both unwanted and wanted again has lost its
                // rewrite, which only a removal and a new addition put back.
                let (unwanted, wanted) = match st.cover_unwanted.remove(&mac) {
                    Some(u) => (u, BTreeSet::new()),
                    None => (
                        BTreeSet::new(),
                        st.cover_wanted.remove(&mac).unwrap_or_default(),
                    ),
                };
                if unwanted.is_empty() && wanted.is_empty() {
                    st.cover_busy.remove(&mac);
                    return;
                }
                let Some(vm) = st.vm(mac) else { continue };
                let Some(away) = &vm.away else { continue };
                let default =
                    mobility::flows::default_cover(&self.fabric, &vm.switch, &vm.ips, &vm.ips6);
                let mut cover = away.cover.clone();
                cover.retain(|s| default.contains(s) || !unwanted.contains(s));
                cover.extend(
                    wanted
                        .into_iter()
                        .filter(|s| self.fabric.subnets_of(s).next().is_some()),
                );
                if cover == away.cover {
                    continue;
                }
                let change: Vec<String> = cover
                    .symmetric_difference(&away.cover)
                    .map(|s| {
                        let sign = if cover.contains(s) { '+' } else { '-' };
                        format!("{sign}{s}")
                    })
                    .collect();
                let mut after = vm.clone();
                if let Some(a) = after.away.as_mut() {
                    a.cover = cover;
                }
                let update = Update::begin(&mut st, &self.fabric, &vm, &after, Vec::new(), true);
                if let (Some(a), Some(new)) = (st.away.get_mut(&mac), after.away) {
                    a.away = new;
                }
                st.version += 1;
                let snapshot = if self.store.is_some() {
                    records(self, &st)
                } else {
                    Default::default()
                };
                (update, snapshot, st.version, change)
            };
            if let Some(Err(e)) = self.store.as_ref().map(|d| d.save(&snapshot, version)) {
                warn!(error = %e, "state not saved; the cover is changed anyway (it is only an optimisation)");
            }
            if self.switches.is_none() {
                let mut st = self.lock();
                update.abandon(&mut st, &self.fabric.topology.switches, self.now());
                st.cover_busy.remove(&mac);
                return;
            }
            let (_, _, n) = self.send_update(&update).await;
            info!(%mac, change = ?change, flow_mods = n, "cover changed");
        }
    }

    /// The lock that keeps a switch's reconciliation and the batches updates send it apart
    /// (a reconciliation reads the table, then sends what differs from the plan it read;
    /// a batch sent in between would be undone).
    pub(crate) fn switch_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.switch_locks.get(name).cloned().unwrap_or_default()
    }

    /// Sends an update wave by wave ([`Schedule::waves`]): the batches of a wave in parallel,
    /// each followed by a barrier, a wave only once the one before is acknowledged. A
    /// producer is sent only when every switch with its consumers is ready; one that is not
    /// waits, its switch marked, for [`Router::readiness_changed`]. The drained last wave
    /// goes after [`DRAIN`] in a task of its own, and only if every earlier batch was
    /// acknowledged (otherwise its consumer entries stay until the fabric is quiet; see
    /// reconcile.rs). Returns the switches that acknowledged, those that did not (or are not
    /// connected), and the number of flow mods of the schedule.
    pub(crate) async fn send_update(
        self: &Arc<Self>,
        u: &Update,
    ) -> (Vec<String>, Vec<String>, usize) {
        let waves = u.schedule.waves();
        let split = waves
            .iter()
            .position(|w| w.iter().any(|&i| u.schedule.batches[i].drain))
            .unwrap_or(waves.len());
        let mut acked: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for wave in &waves[..split] {
            self.send_wave(u, wave, &mut acked, &mut failed).await;
        }
        let later: Vec<Vec<usize>> = waves[split..].to_vec();
        let last_phase_spawned = u.cleanup.is_some()
            && failed.is_empty()
            && {
                let u = u.clone();
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(me.drain).await;
                    // After the VM's update in progress, if any: it may have taken this
                    // cleanup over (then it sends what is left of it, in its own last phase).
                    let lock = me.vm_lock(u.mac);
                    let _one_at_a_time = lock.lock().await;
                    let mine = {
                        let mut st = me.lock();
                        let mine = st.cleanups.get(&u.mac).map(|c| c.id) == u.cleanup;
                        if mine {
                            st.cleanups.remove(&u.mac);
                        }
                        mine
                    };
                    if mine {
                        let (mut a, mut f) = (Vec::new(), Vec::new());
                        for wave in &later {
                            me.send_wave(&u, wave, &mut a, &mut f).await;
                        }
                        if !f.is_empty() {
                            warn!(switches = ?f, "last phase not acknowledged; those switches are reconciled when they reconnect");
                        }
                    }
                    me.end_update(&u, mine);
                });
                true
            };
        if !last_phase_spawned {
            // No last phase; or a switch did not acknowledge an earlier batch, and may
            // still hold producers: the consumer entries stay until the fabric is quiet,
            // when reconciliation deletes them.
            let mut st = self.lock();
            if st.cleanups.get(&u.mac).map(|c| c.id) == u.cleanup && u.cleanup.is_some() {
                if let Some(c) = st.cleanups.remove(&u.mac) {
                    warn!(failed = ?failed, switches = ?c.flows.keys().collect::<Vec<_>>(),
                        "an update's consumer entries that are no longer needed stay until the fabric is quiet");
                    st.stale.extend(c.flows.into_keys());
                }
            }
            drop(st);
            self.end_update(u, true);
        }
        acked.retain(|s| !failed.contains(s));
        (acked, failed, u.schedule.flow_mods())
    }

    /// Sends one wave. Producers whose consumers are not ready everywhere are held back.
    async fn send_wave(
        self: &Arc<Self>,
        u: &Update,
        wave: &[usize],
        acked: &mut Vec<String>,
        failed: &mut Vec<String>,
    ) {
        let mut jobs = Vec::new();
        let mut held: Vec<String> = Vec::new();
        {
            let st = self.read();
            for &i in wave {
                let b = &u.schedule.batches[i];
                let ready = u
                    .deps
                    .iter()
                    .filter(|d| **d != b.switch)
                    .all(|d| st.ready_for(d, u.mac));
                let mods: Vec<ofp13::FlowMod> = b
                    .mods
                    .iter()
                    .filter(|m| {
                        ready
                            || m.command != ofp13::OFPFC_ADD
                            || role(m.cookie, &m.instructions) != Role::Producer
                    })
                    .cloned()
                    .collect();
                if mods.len() < b.mods.len() {
                    debug!(switch = %b.switch, held = b.mods.len() - mods.len(), "producers held until the switches with their consumers are ready");
                    held.push(b.switch.clone());
                }
                if mods.is_empty() {
                    continue;
                }
                match self.switch_handle(&b.switch) {
                    Some(h) => jobs.push((i, mods, h, self.switch_lock(&b.switch))),
                    None if !failed.contains(&b.switch) => failed.push(b.switch.clone()),
                    None => {}
                }
            }
        }
        if !held.is_empty() {
            self.lock().waiting.extend(held);
        }
        let one = |(i, mods, h, lock): (
            usize,
            Vec<ofp13::FlowMod>,
            crate::switch::runtime::SwitchHandle,
            Arc<tokio::sync::Mutex<()>>,
        )| async move {
            let _serial = lock.lock().await;
            let batch = mods.into_iter().map(Body::FlowMod).collect();
            let ok = h.send(batch).await.is_ok() && h.barrier().await.is_ok();
            (i, ok)
        };
        let mut done: Vec<(usize, bool)> = Vec::with_capacity(wave.len());
        if jobs.len() == 1 {
            // One switch (common in a wave): no task to spawn.
            for j in jobs {
                done.push(one(j).await);
            }
        } else {
            let mut set = tokio::task::JoinSet::new();
            for j in jobs {
                set.spawn(one(j));
            }
            while let Some(r) = set.join_next().await {
                if let Ok(d) = r {
                    done.push(d);
                }
            }
        }
        let mut st = self.lock();
        for (i, ok) in done {
            let sw = &u.schedule.batches[i].switch;
            if ok {
                if !acked.contains(sw) {
                    acked.push(sw.clone());
                }
            } else {
                warn!(switch = %sw, "switch did not acknowledge an update's batch; it is reconciled when it reconnects");
                // Its table is unknown now: not ready until reconciled again.
                st.reconciled.remove(sw);
                if !failed.contains(sw) {
                    failed.push(sw.clone());
                }
            }
        }
        // The consumers this update adds are in (or their switch is not ready anyway).
        let mut unblocked = false;
        for &i in wave {
            let sw = &u.schedule.batches[i].switch;
            if u.marked.contains(sw) && u.schedule.batches[i].phase == 1 {
                st.unmark_installing(u.mac, sw);
                unblocked |= st.ready_for(sw, u.mac);
            }
        }
        let quiet = st.refresh_quiet(&self.fabric.topology.switches, self.now());
        drop(st);
        for e in self.readiness_changed(unblocked, quiet) {
            self.carry_out(e);
        }
    }

    /// The end of an update: the care-of addresses it gave back may be handed out again.
    /// The end of an update. `release`: the care-of addresses it gave back are free again
    /// (not when a later update took over its cleanup: that one frees them).
    fn end_update(self: &Arc<Self>, u: &Update, release: bool) {
        let quiet = {
            let mut st = self.lock();
            st.updates = st.updates.saturating_sub(1);
            if release {
                for (_, a) in &u.released {
                    st.draining.remove(a);
                }
            }
            st.refresh_quiet(&self.fabric.topology.switches, self.now())
        };
        self.updates_done.notify_waiters();
        for e in self.readiness_changed(false, quiet) {
            self.carry_out(e);
        }
    }

    /// Sends the difference in two steps with a barrier per switch and step.
    async fn install(
        self: &Arc<Self>,
        p: &Prepared,
        to: &PortRef,
        t0: Instant,
    ) -> Result<MigrationReport, MigrateError> {
        if self.switches.is_none() {
            p.update
                .abandon(&mut self.lock(), &self.fabric.topology.switches, self.now());
            return Err(MigrateError::NotRunning);
        }
        let (switches, pending, flow_mods) = self.send_update(&p.update).await;
        // Converged: the last barrier reply is in. The gratuitous ARPs follow.
        let elapsed_us = t0.elapsed().as_micros() as u64;
        self.announce(p).await;
        info!(
            host = %p.name,
            from = %format!("{}:{}", p.before.switch, p.before.port),
            to = %to,
            care_of = ?p.after.away.as_ref().map(care_of_text),
            flow_mods,
            elapsed_us,
            "migrated"
        );
        Ok(MigrationReport {
            host: p.name.clone(),
            from: format!("{}:{}", p.before.switch, p.before.port),
            to: to.to_string(),
            care_of: p.after.away.as_ref().map(care_of_text).unwrap_or_default(),
            cleanup: cleanup(&p.update.schedule, self.drain, &pending),
            switches,
            pending,
            flow_mods,
            elapsed_us,
        })
    }

    /// Gratuitous ARPs after the move: to the VM, for each of its home gateways (so its cache
    /// holds the gateway MAC, whatever it held); on the home network for each of its addresses
    /// (the gateway MAC while it is away, its own MAC when it is back), so no host there waits
    /// for a cache entry to expire.
    async fn announce(&self, p: &Prepared) {
        let vm = &p.after;
        let mut per_switch: BTreeMap<String, Vec<Body>> = BTreeMap::new();
        for ip in &vm.ips {
            let Some((home, home_gateway)) = self
                .fabric
                .subnet_of(*ip)
                .and_then(|s| Some((s, s.gateway?)))
            else {
                continue;
            };
            if vm.away.is_some() {
                per_switch.entry(vm.switch.clone()).or_default().push(garp(
                    GATEWAY_MAC,
                    home_gateway,
                    vec![vm.port],
                ));
            }
            let sha = if vm.away.is_some() {
                GATEWAY_MAC
            } else {
                vm.mac
            };
            let ports = self.home_ports(home, vm, &p.before);
            if !ports.is_empty() {
                per_switch
                    .entry(home.switch.clone())
                    .or_default()
                    .push(garp(sha, *ip, ports));
            }
        }
        // IPv6's gratuitous ARP: an unsolicited neighbour advertisement (override set) of each
        // of its IPv6 addresses to its home network, from the gateway's MAC while it is away
        // (a neighbour's cache then sends to the fabric, which routes to it), from its own
        // when it is back.
        for ip in &vm.ips6 {
            let Some(home) = self.fabric.subnet_of6(*ip) else {
                continue;
            };
            let lla = if vm.away.is_some() {
                GATEWAY_MAC
            } else {
                vm.mac
            };
            let ports = self.home_ports(home, vm, &p.before);
            if !ports.is_empty() {
                per_switch
                    .entry(home.switch.clone())
                    .or_default()
                    .push(unsolicited_na(lla, *ip, ports));
            }
        }
        if vm.away.is_some() {
            let here = self.neighbours_away_here(vm);
            per_switch
                .entry(vm.switch.clone())
                .or_default()
                .extend(here);
        }
        for (sw, batch) in per_switch {
            if let Some(h) = self.switch_handle(&sw) {
                let _ = h.send(batch).await;
            }
        }
    }

    /// Case 7: VMs of one home network away at the same switch talk at layer 2 there, but
    /// their caches may hold the gateway's MAC for each other (the announcements at home
    /// said so, to hosts that had an entry), and an entry is corrected only when it is
    /// next checked (IPv6: 5 s after its first use). So the VM that arrived is told each
    /// such VM's own MAC, and each of them the VM's: a gratuitous ARP, or an unsolicited
    /// neighbour advertisement with override, per pair of addresses of one home subnet,
    /// out of the port of the one told (both update an entry that exists, create none).
    fn neighbours_away_here(&self, vm: &Vm) -> Vec<Body> {
        let st = self.read();
        let others: Vec<Vm> = st
            .away
            .keys()
            .filter(|m| **m != vm.mac)
            .filter_map(|m| st.vm(*m))
            .filter(|o| o.switch == vm.switch)
            .collect();
        drop(st);
        let home = |a: IpAddr| match a {
            IpAddr::V4(a) => self.fabric.subnet_of(a).map(|s| s.name.as_str()),
            IpAddr::V6(a) => self.fabric.subnet_of6(a).map(|s| s.name.as_str()),
        };
        let addrs = |v: &Vm| -> Vec<IpAddr> {
            let v4 = v.ips.iter().map(|a| IpAddr::from(*a));
            v4.chain(v.ips6.iter().map(|a| IpAddr::from(*a))).collect()
        };
        // Out of port `to`: `ip` is at `mac`.
        let tell = |to: u32, ip: IpAddr, mac: MacAddr| match ip {
            IpAddr::V4(a) => garp(mac, a, vec![to]),
            IpAddr::V6(a) => unsolicited_na(mac, a, vec![to]),
        };
        // (port told, address, its MAC), each once.
        let mut told = BTreeSet::new();
        for o in &others {
            for a in addrs(vm) {
                let Some(net) = home(a) else { continue };
                let alike = |b: &IpAddr| b.is_ipv4() == a.is_ipv4() && home(*b) == Some(net);
                for b in addrs(o).into_iter().filter(alike) {
                    told.insert((vm.port, b, o.mac));
                    told.insert((o.port, a, vm.mac));
                }
            }
        }
        told.into_iter()
            .map(|(to, ip, mac)| tell(to, ip, mac))
            .collect()
    }

    /// The host ports of `home`'s subnet at its switch that the VM (`vm`, before: `before`)
    /// is not at: where its neighbours at home are.
    fn home_ports(
        &self,
        home: &crate::fabric::topology::SubnetConf,
        vm: &Vm,
        before: &Vm,
    ) -> Vec<u32> {
        let Some(h) = self.switch_handle(&home.switch) else {
            return Vec::new();
        };
        h.info
            .ports()
            .iter()
            .map(|desc| desc.port_no)
            .filter(|&n| n <= port::MAX && !self.fabric.is_link_port(&home.switch, n))
            .filter(|&n| !(home.switch == vm.switch && n == vm.port))
            .filter(|&n| !(home.switch == before.switch && n == before.port))
            .filter(|&n| home.ports.as_ref().is_none_or(|ps| ps.contains(&n)))
            .collect()
    }
}

/// The drained last phase of `schedule` as the API reports it (none when a switch did not
/// acknowledge: then it is left to reconciliation).
fn cleanup(schedule: &Schedule, drain: std::time::Duration, failed: &[String]) -> Option<Cleanup> {
    let mut switches: Vec<String> = schedule
        .batches
        .iter()
        .filter(|b| b.drain)
        .map(|b| b.switch.clone())
        .collect();
    switches.dedup();
    (!switches.is_empty() && failed.is_empty()).then_some(Cleanup {
        after_ms: drain.as_millis() as u64,
        switches,
    })
}

/// An update of one VM's entries decided under the state lock, to be sent with
/// [`Router::send_update`].
#[derive(Debug, Clone)]
pub(crate) struct Update {
    /// The VM whose entries change.
    pub(crate) mac: MacAddr,
    pub(crate) schedule: Schedule,
    /// The switches with the VM's consumer entries once the update is done (its location and
    /// cover): its producers are sent only while all of them are ready.
    pub(crate) deps: BTreeSet<String>,
    /// Switches not ready until this update's phase 1 is acknowledged there (it adds
    /// consumers).
    pub(crate) marked: Vec<String>,
    /// Care-of addresses the update gives back (subnet, address), with those of a pending
    /// cleanup it took over: nobody gets them before its last phase.
    pub(crate) released: Vec<(String, IpAddr)>,
    /// Care-of addresses it took back from the VM's pending cleanup.
    pub(crate) reused: Vec<(String, IpAddr)>,
    /// The pending cleanup it registered (its last phase), if any.
    cleanup: Option<u64>,
    /// The VM's pending cleanup it took over.
    absorbed: Option<PendingCleanup>,
    /// Whether it is counted in the state (it will be sent).
    live: bool,
}

impl Update {
    /// Under the state lock: the update that takes a VM's entries from `before` to `after`.
    /// When `live`, the switches it adds consumers to are not ready until it has, the
    /// addresses it releases drain, the audit waits for it, and it takes over the VM's
    /// pending cleanup.
    pub(crate) fn begin(
        st: &mut State,
        fabric: &crate::fabric::plan::Fabric,
        before: &Vm,
        after: &Vm,
        released: Vec<(String, IpAddr)>,
        live: bool,
    ) -> Update {
        Update::new(
            st,
            after.mac,
            mobility::flows::by_switch(mobility::flows::vm_flows(fabric, before)),
            mobility::flows::by_switch(mobility::flows::vm_flows(fabric, after)),
            mobility::flows::consumer_switches(after),
            released,
            live,
        )
    }

    /// Under the state lock: the update from `before` to `after`, the entries of the VM with
    /// this MAC by switch; `deps` the switches with its consumers once it is done.
    pub(crate) fn new(
        st: &mut State,
        mac: MacAddr,
        mut before: BTreeMap<String, Vec<crate::fabric::plan::Flow>>,
        after: BTreeMap<String, Vec<crate::fabric::plan::Flow>>,
        deps: BTreeSet<String>,
        mut released: Vec<(String, IpAddr)>,
        live: bool,
    ) -> Update {
        // The previous update's last phase has not run: its entries are still there.
        let absorbed = if live { st.cleanups.remove(&mac) } else { None };
        if let Some(c) = &absorbed {
            for (sw, flows) in &c.flows {
                before
                    .entry(sw.clone())
                    .or_default()
                    .extend(flows.iter().cloned());
            }
            released.extend(c.released.iter().cloned());
        }
        let diff = mobility::flows::diff(&before, &after);
        let schedule = Schedule::phased(&diff);
        let marked: Vec<String> = schedule
            .batches
            .iter()
            .filter(|b| {
                b.phase == 1
                    && b.mods.iter().any(|m| {
                        m.command == ofp13::OFPFC_ADD
                            && role(m.cookie, &m.instructions) == Role::Consumer
                    })
            })
            .map(|b| b.switch.clone())
            .collect();
        let mut cleanup = None;
        if live {
            for sw in &marked {
                st.mark_installing(mac, sw);
            }
            st.updates += 1;
            st.draining.extend(released.iter().map(|(_, a)| *a));
            let flows: BTreeMap<String, Vec<crate::fabric::plan::Flow>> = diff
                .iter()
                .map(|(sw, d)| {
                    let gone: Vec<crate::fabric::plan::Flow> = d
                        .deletes
                        .iter()
                        .filter(|f| crate::mobility::update::flow_role(f) == Role::Consumer)
                        .cloned()
                        .collect();
                    (sw.clone(), gone)
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if !flows.is_empty() || !released.is_empty() {
                st.next_cleanup += 1;
                let id = st.next_cleanup;
                st.cleanups.insert(
                    mac,
                    PendingCleanup {
                        id,
                        flows,
                        released: released.clone(),
                    },
                );
                cleanup = Some(id);
            }
            // An update running: the fabric is not quiet until it ends.
            st.quiet_since = None;
        }
        Update {
            mac,
            schedule,
            deps,
            marked,
            released,
            reused: Vec::new(),
            cleanup,
            absorbed,
            live,
        }
    }

    /// Takes back what [`Update::new`] counted, for an update that is not sent: the VM's
    /// pending cleanup it took over is pending again (with the addresses it took back).
    pub(crate) fn abandon(
        &self,
        st: &mut State,
        switches: &[crate::fabric::topology::SwitchConf],
        now: Instant,
    ) {
        if !self.live {
            return;
        }
        for sw in &self.marked {
            st.unmark_installing(self.mac, sw);
        }
        st.updates = st.updates.saturating_sub(1);
        if st.cleanups.get(&self.mac).map(|c| c.id) == self.cleanup {
            st.cleanups.remove(&self.mac);
        }
        for (_, a) in &self.released {
            st.draining.remove(a);
        }
        if let Some(mut c) = self.absorbed.clone() {
            c.released.extend(self.reused.iter().cloned());
            st.draining.extend(c.released.iter().map(|(_, a)| *a));
            st.cleanups.insert(self.mac, c);
        }
        st.refresh_quiet(switches, now);
    }
}

/// A VM's care-of addresses as the API shows them: IPv4 first, then IPv6.
fn care_of_text(a: &Away) -> Vec<String> {
    a.care_of
        .iter()
        .map(|c| c.to_string())
        .chain(a.care_of6.iter().map(|c| c.to_string()))
        .collect()
}

fn as_v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn as_v6(a: IpAddr) -> Option<Ipv6Addr> {
    match a {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// A gratuitous ARP request (sender = target = `ip`, as Linux and Xen send them) from `mac`,
/// out of `ports`.
fn garp(mac: MacAddr, ip: Ipv4Addr, ports: Vec<u32>) -> Body {
    packet_out(ports, Arp::request(mac, ip, ip).to_frame())
}

/// IPv6's gratuitous ARP ([`crate::packet::icmp6::unsolicited_na`]): `ip` is at `mac`,
/// out of `ports`.
fn unsolicited_na(mac: MacAddr, ip: std::net::Ipv6Addr, ports: Vec<u32>) -> Body {
    packet_out(ports, crate::packet::icmp6::unsolicited_na(ip, mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobility::update::{flow_role, Role};

    /// The paper testbed's `vm` (at home on r3:3).
    const VM_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 3]);

    fn router() -> Router {
        Router::new(crate::fabric::plan::paper_fabric())
    }

    fn planner() -> crate::app::planner::Planner {
        crate::app::planner::Planner::new(crate::fabric::plan::paper_fabric())
    }

    fn to(switch: &str, port: u32) -> PortRef {
        PortRef {
            switch: switch.to_string(),
            port,
        }
    }

    #[test]
    fn a_move_is_refused_with_a_reason_and_changes_nothing() {
        let mut r = planner();
        let tables = r.tables();
        let cases = [
            ("nobody", to("r2", 3), "no host"),
            ("vm", to("r9", 3), "no switch"),
            ("vm", to("r2", 0), "not a valid port"),
            ("vm", to("r2", port::MAX + 1), "not a valid port"),
            ("vm", to("r2", 1), "link"),
        ];
        for (sel, target, why) in cases {
            let e = r.plan_move(sel, &target).unwrap_err();
            assert!(e.to_string().contains(why), "{sel} -> {target}: {e}");
            assert_eq!(r.tables(), tables, "{sel} -> {target}: nothing changed");
            assert!(r.care_of_addresses().is_empty());
        }
    }

    #[test]
    fn a_move_to_where_the_vm_is_sends_nothing() {
        let mut r = planner();
        assert!(r.plan_move("vm", &to("r3", 3)).unwrap().batches.is_empty());
    }

    #[test]
    fn a_move_away_takes_a_care_of_address_there_and_installs_producers_after_consumers() {
        let mut r = planner();
        let s = r.plan_move("vm", &to("r2", 3)).unwrap();
        let co = Ipv4Addr::new(192, 168, 10, 192);
        assert_eq!(r.care_of_addresses(), [co].into());
        // Every producer comes in phase 2, after every batch of phase 1 (its consumers).
        let phase1: Vec<usize> = (0..s.batches.len())
            .filter(|&i| s.batches[i].phase == 1)
            .collect();
        assert!(!phase1.is_empty());
        for b in &s.batches {
            for m in &b.mods {
                if m.command == ofp13::OFPFC_ADD
                    && role(m.cookie, &m.instructions) == Role::Producer
                {
                    assert_eq!(
                        b.phase,
                        2,
                        "{}: {}",
                        b.switch,
                        crate::mobility::update::mod_text(m)
                    );
                    assert!(phase1.iter().all(|i| b.after.contains(i)), "{b:?}");
                }
            }
        }
        // The tables after the move: the foreign switch delivers the VM as itself.
        let r2 = &r.tables()["r2"];
        assert!(r2.iter().any(|f| flow_role(f) == Role::Consumer));
        assert_eq!(r.location(VM_MAC), Some(("r2".to_string(), 3)));
    }

    #[test]
    fn going_home_gives_the_care_of_address_back_and_deletes_the_consumers_last() {
        let mut r = planner();
        let home = r.tables();
        r.plan_move("vm", &to("r2", 3)).unwrap();
        let back = r.plan_move("vm", &to("r3", 3)).unwrap();
        assert!(r.care_of_addresses().is_empty());
        assert_eq!(
            r.tables(),
            home,
            "at home, the plan is the one it started with"
        );
        // The consumers go last, after the drain: a packet rewritten just before the
        // producers went may still be in the fabric.
        let last = back.batches.iter().filter(|b| b.drain).collect::<Vec<_>>();
        assert!(!last.is_empty(), "{back:?}");
        for b in last {
            assert_eq!(b.phase, 3);
            assert!(b
                .mods
                .iter()
                .all(|m| m.command == ofp13::OFPFC_DELETE_STRICT
                    && role(m.cookie, &m.instructions) != Role::Producer));
        }
    }

    /// On a fabric with IPv6 only, a VM away has no IPv4 care-of address; its record is
    /// restored all the same (the IPv4 pool it has none of does not exist).
    #[test]
    fn a_vm_away_on_a_fabric_with_ipv6_only_is_restored() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ipv6-only.toml");
        let t = crate::fabric::topology::Topology::load(&path).unwrap();
        let fabric = || crate::fabric::plan::Fabric::new(&t);
        let r = Router::new(fabric());
        r.plan_move("vm", &to("r2", 3)).unwrap();
        let snap = records(&r, &r.read());
        let rec = snap.vms.values().next().unwrap();
        assert!(rec.care_of.is_empty() && rec.care_of6.len() == 1, "{rec:?}");
        let mut again = Router::new(fabric());
        again.restore(&snap).unwrap();
        assert_eq!(again.tables(), r.tables());
        assert_eq!(again.care_of_addresses(), r.care_of_addresses());
    }

    #[test]
    fn a_restored_state_gives_the_same_tables_and_a_bad_one_changes_nothing() {
        let r = router();
        r.plan_move("vm", &to("r2", 3)).unwrap();
        r.plan_move("vm2", &to("r2", 4)).unwrap();
        let snap = records(&r, &r.read());
        assert_eq!(snap.vms.len(), 2);
        let mut again = router();
        again.restore(&snap).unwrap();
        assert_eq!(again.tables(), r.tables());
        assert_eq!(again.care_of_addresses(), r.care_of_addresses());
        // The second VM's record is wrong (its care-of address is the first one's): refused,
        // and the first VM is not half restored either.
        let mut bad = snap.clone();
        let first_co = bad.vms.values().next().unwrap().care_of.clone();
        bad.vms.values_mut().nth(1).unwrap().care_of = first_co;
        let mut fresh = router();
        let before = fresh.tables();
        let e = fresh.restore(&bad).unwrap_err();
        assert!(e.to_string().contains("conflict"), "{e}");
        assert_eq!(fresh.tables(), before, "nothing restored");
        assert!(fresh.care_of_addresses().is_empty());
    }
}
