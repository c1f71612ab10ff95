//! Migrations: choosing care-of addresses, recording the move durably, and installing the
//! difference between the VM's flow entries before and after ([`crate::mobility`]) in an order
//! that never black-holes traffic:
//! 1. the switch the VM is now at (its delivery and rewrites), barrier;
//! 2. every other switch in parallel (ingress rewrites, the home agent; on each switch new and
//!    changed entries before the deletions), a barrier each;
//!
//! then gratuitous ARPs so that no cache waits to expire. A migration to where the VM already
//! is does nothing (QEMU repeats its announcement about five times). A VM migrates one move
//! at a time: a second API request while one is installed is refused with 409, and an
//! announcement from yet another port is followed once the running move ends.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use ofp13::{port, Action, Body, MacAddr, PacketOut, NO_BUFFER};
use serde::Serialize;
use tracing::{info, warn};

use crate::careof::CareOfError;
use crate::mobility::{self, Away, Vm};
use crate::packet::{self, Arp};
use crate::plan::GATEWAY_MAC;
use crate::router::{AwayState, Origin, Router, State};
use crate::store::{Place, Store, VmRecord};
use crate::topology::PortRef;
use crate::transitions::{Failure, Report};
use crate::update::Schedule;

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
}

/// The state store with the version last written, so a slow writer never overwrites a newer
/// state with an older one.
pub struct Durable {
    store: Store,
    written: Mutex<u64>,
}

impl Durable {
    pub fn new(store: Store) -> Durable {
        Durable {
            store,
            written: Mutex::new(0),
        }
    }
}

/// The store's view of the VMs away from home.
pub(crate) fn records(router: &Router, st: &State) -> crate::store::State {
    let mut out = crate::store::State {
        format: crate::store::FORMAT,
        ..Default::default()
    };
    for (mac, a) in &st.away {
        let Some(vm) = st.vm(*mac) else { continue };
        let name = host_name(router, *mac, &vm);
        out.vms.insert(
            mac.to_string(),
            VmRecord {
                name,
                mac: *mac,
                home_subnet: vm
                    .ips
                    .first()
                    .and_then(|ip| router.fabric.subnet_of(*ip))
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
                cover: {
                    let default = mobility::default_cover(&router.fabric, &vm.switch, &vm.ips);
                    a.away.cover.difference(&default).cloned().collect()
                },
            },
        );
    }
    out
}

fn host_name(router: &Router, mac: MacAddr, vm: &Vm) -> String {
    router
        .names_by_mac
        .get(&mac)
        .cloned()
        .or_else(|| vm.ips.first().map(|ip| ip.to_string()))
        .unwrap_or_else(|| mac.to_string())
}

/// What was decided under the lock, to be installed after it.
struct Prepared {
    name: String,
    before: Vm,
    after: Vm,
    schedule: Schedule,
    snapshot: crate::store::State,
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
    released: Option<(String, Vec<Ipv4Addr>)>,
}

impl Router {
    /// Restores VMs recorded away from home (at start, before any switch connects).
    pub fn restore(&mut self, saved: &crate::store::State) -> anyhow::Result<()> {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
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
            if r.care_of.len() != r.ips.len() {
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
            for ip in &r.ips {
                let origin = st.hosts.get(ip).map_or(Origin::Learned, |(_, o)| *o);
                st.bind(
                    crate::plan::HostLoc {
                        ip: *ip,
                        mac: r.mac,
                        switch: r.location.switch.clone(),
                        port: r.location.port,
                    },
                    origin,
                );
            }
            st.away.insert(
                r.mac,
                AwayState {
                    away: Away {
                        care_of: r.care_of.clone(),
                        cover: {
                            let mut c =
                                mobility::default_cover(&self.fabric, &r.location.switch, &r.ips);
                            c.extend(
                                r.cover
                                    .iter()
                                    .filter(|s| self.fabric.subnets_of(s).next().is_some())
                                    .cloned(),
                            );
                            c
                        },
                    },
                    home: (r.home.switch.clone(), r.home.port),
                    care_of_subnet: r.care_of_subnet.clone(),
                },
            );
        }
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
        let st = self.lock();
        if let Ok(ip) = sel.parse::<Ipv4Addr>() {
            return st.hosts.get(&ip).map(|(h, _)| h.mac);
        }
        let mac: MacAddr = sel.parse().ok()?;
        st.knows_mac(mac).then_some(mac)
    }

    /// Migrates the host `sel` (name, address or MAC) to `to`.
    pub async fn migrate(&self, sel: &str, to: &PortRef) -> Result<MigrationReport, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        self.migrate_mac(mac, to).await
    }

    /// Migrates the host with this MAC to `to`.
    pub async fn migrate_mac(
        &self,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let r = self.migrate_counted(mac, to).await;
        // Announced elsewhere meanwhile: follow it, in a task of its own.
        if let Some(next) = self.take_next_move(mac, to) {
            if let (Some(me), Ok(rt)) = (
                self.me.get().and_then(std::sync::Weak::upgrade),
                tokio::runtime::Handle::try_current(),
            ) {
                rt.spawn(async move {
                    let mut to = next;
                    loop {
                        if let Err(e) = me.migrate_counted(mac, &to).await {
                            info!(%mac, to = %to, error = %e, "migration not done");
                        }
                        match me.take_next_move(mac, &to) {
                            Some(n) => to = n,
                            None => break,
                        }
                    }
                });
            }
        }
        r
    }

    /// A migration, counted in the metrics.
    async fn migrate_counted(
        &self,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let r = self.migrate_inner(mac, to).await;
        let mut st = self.lock();
        match &r {
            Ok(rep) if rep.flow_mods > 0 || rep.from != rep.to => st.migrations_done += 1,
            Ok(_) => {}
            Err(_) => st.migrations_failed += 1,
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
        &self,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<MigrationReport, MigrateError> {
        let t0 = Instant::now();
        let p = match self.prepare(mac, to)? {
            Ok(p) => p,
            Err(noop) => return Ok(noop),
        };
        // Durable before any flow is sent; a failure puts everything back.
        if let Some(d) = &self.store {
            let mut written = d.written.lock().unwrap_or_else(|e| e.into_inner());
            if p.version > *written {
                if let Err(e) = d.store.save(&p.snapshot) {
                    drop(written);
                    self.undo(mac, p.undo);
                    return Err(MigrateError::Store(e.to_string()));
                }
                *written = p.version;
            }
        }
        let result = self.install(&p, to, t0).await;
        self.lock().migrating.remove(&mac);
        result
    }

    /// Decides the move under the state lock: `Ok(Err(report))` when there is nothing to do.
    fn prepare(
        &self,
        mac: MacAddr,
        to: &PortRef,
    ) -> Result<Result<Prepared, MigrationReport>, MigrateError> {
        let fabric = &self.fabric;
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
        let target_subnet = fabric
            .subnets_of(&to.switch)
            .find(|s| s.ports.as_ref().is_some_and(|p| p.contains(&to.port)))
            .or_else(|| fabric.subnets_of(&to.switch).find(|s| s.ports.is_none()))
            .cloned();
        let Some(target_subnet) = target_subnet else {
            return Err(MigrateError::BadTarget(format!(
                "{to}: {} ({}) is the gateway of no subnet with that port; hosts live on access ports",
                conf.name, conf.tier
            )));
        };
        let mut st = self.lock();
        let before = st
            .vm(mac)
            .ok_or_else(|| MigrateError::UnknownHost(mac.to_string()))?;
        let name = host_name(self, mac, &before);
        if st.migrating.contains(&mac) {
            return Err(MigrateError::InProgress(name));
        }
        if let Some(other) = st.host_at(&to.switch, to.port).filter(|m| *m != mac) {
            let ip = st.vm(other).and_then(|v| v.ips.first().copied());
            return Err(MigrateError::BadTarget(format!(
                "{to} is where host {} ({other}) is",
                ip.map_or_else(|| "?".to_string(), |ip| ip.to_string())
            )));
        }
        let from = format!("{}:{}", before.switch, before.port);
        if (before.switch.as_str(), before.port) == (to.switch.as_str(), to.port) {
            return Ok(Err(MigrationReport {
                host: name,
                from: from.clone(),
                to: from,
                care_of: st
                    .away
                    .get(&mac)
                    .map(|a| a.away.care_of.iter().map(|c| c.to_string()).collect())
                    .unwrap_or_default(),
                switches: Vec::new(),
                pending: Vec::new(),
                flow_mods: 0,
                elapsed_us: 0,
            }));
        }
        let at_home = before
            .ips
            .iter()
            .all(|ip| fabric.subnet_of(*ip).is_some_and(|s| s.switch == to.switch));
        let undo = Undo {
            from: (before.switch.clone(), before.port),
            away: st.away.get(&mac).cloned(),
            taken: None,
            released: None,
        };
        let mut undo = undo;
        let owner = mac.to_string();
        let old = st.away.get(&mac).cloned();
        let new_away = if at_home {
            None
        } else {
            let keep = old
                .as_ref()
                .filter(|a| a.care_of_subnet == target_subnet.name);
            let care_of = match keep {
                Some(a) => a.away.care_of.clone(),
                None => {
                    // All or nothing: an exhausted pool fails here with nothing changed.
                    let State { hosts, pools, .. } = &mut *st;
                    let got = pools.take(&target_subnet.name, &owner, before.ips.len(), |a| {
                        hosts.contains_key(&a)
                    })?;
                    undo.taken = Some(target_subnet.name.clone());
                    if let Some(a) = &old {
                        let gone = st.release_care_of(&a.care_of_subnet, &owner);
                        undo.released = Some((a.care_of_subnet.clone(), gone));
                    }
                    got
                }
            };
            Some(AwayState {
                away: Away {
                    care_of,
                    cover: mobility::default_cover(fabric, &to.switch, &before.ips),
                },
                home: old
                    .as_ref()
                    .map_or((before.switch.clone(), before.port), |a| a.home.clone()),
                care_of_subnet: target_subnet.name.clone(),
            })
        };
        if new_away.is_none() {
            if let Some(a) = &old {
                let gone = st.release_care_of(&a.care_of_subnet, &owner);
                undo.released = Some((a.care_of_subnet.clone(), gone));
            }
        }
        let after = Vm {
            switch: to.switch.clone(),
            port: to.port,
            away: new_away.as_ref().map(|a| a.away.clone()),
            ..before.clone()
        };
        let diff = mobility::diff(
            &mobility::by_switch(mobility::vm_flows(fabric, &before)),
            &mobility::by_switch(mobility::vm_flows(fabric, &after)),
        );
        st.relocate(mac, &to.switch, to.port);
        match new_away {
            Some(a) => st.away.insert(mac, a),
            None => st.away.remove(&mac),
        };
        st.migrating.insert(mac);
        st.cover_tried.retain(|(m, _), _| *m != mac);
        st.previous
            .insert(mac, ((before.switch.clone(), before.port), Instant::now()));
        let snapshot = if self.store.is_some() {
            records(self, &st)
        } else {
            Default::default()
        };
        st.version += 1;
        let version = st.version;
        Ok(Ok(Prepared {
            name,
            before,
            after,
            schedule: Schedule::phased(&diff),
            snapshot,
            version,
            undo,
        }))
    }

    /// Records a move without installing anything (for `plan --migrate`: the tables a
    /// controller would have after it). Returns the update a controller would send.
    pub fn plan_move(&self, sel: &str, to: &PortRef) -> Result<Schedule, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        match self.prepare(mac, to)? {
            Ok(p) => {
                self.lock().migrating.remove(&mac);
                Ok(p.schedule)
            }
            Err(_) => Ok(Schedule::default()),
        }
    }

    /// Plans a move like [`Router::plan_move`] and checks every state its update lets the
    /// fabric pass through (`plan --check-transitions`), with the host at its old place or
    /// its new one while the update runs.
    pub fn plan_move_checked(
        &self,
        sel: &str,
        to: &PortRef,
    ) -> Result<Result<Report, Failure>, MigrateError> {
        let mac = self
            .find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        let before = self.tables();
        let from = self.read().location(mac).map(|(s, p)| (s.to_string(), p));
        let mut care_of = self.care_of_addresses();
        let schedule = self.plan_move(sel, to)?;
        care_of.extend(self.care_of_addresses());
        let after = self.tables();
        let mut endpoints = self.endpoints();
        for e in endpoints.iter_mut().filter(|e| e.mac == mac) {
            e.moving = true;
            e.also_at = from.clone().filter(|f| *f != e.at);
        }
        Ok(crate::transitions::check(&crate::transitions::Check {
            fabric: &self.fabric,
            before: &before,
            schedule: &schedule,
            after: &after,
            endpoints: &endpoints,
            care_of: &care_of,
        }))
    }

    fn undo(&self, mac: MacAddr, u: Undo) {
        let mut st = self.lock();
        st.relocate(mac, &u.from.0, u.from.1);
        match u.away {
            Some(a) => st.away.insert(mac, a),
            None => st.away.remove(&mac),
        };
        let owner = mac.to_string();
        if let Some(subnet) = u.taken {
            st.pools.release(&subnet, &owner);
        }
        if let Some((subnet, addrs)) = u.released {
            st.pools.restore(&subnet, &owner, &addrs);
        }
        st.migrating.remove(&mac);
    }

    /// Adds `switch` to the cover of the VM with this MAC: its hosts then reach the VM by
    /// its care-of address directly instead of through the home switch (route optimisation,
    /// started by the home agent's copy of their first packet). Installs that switch's
    /// entries first (so that a source rewritten to M* toward it is always rewritten back),
    /// then the foreign switch's. Returns the number of flow mods (0 when nothing to do).
    pub async fn extend_cover(&self, mac: MacAddr, switch: &str) -> Result<usize, MigrateError> {
        // Another extension (or a migration) of this VM is being installed: wait for it, a
        // little; a migration resets the cover anyway.
        let mut waited = 0;
        while self.is_migrating(mac) && waited < 200 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            waited += 1;
        }
        let (diff, snapshot, version) = {
            let mut st = self.lock();
            let Some(vm) = st.vm(mac) else {
                return Ok(0);
            };
            if st.migrating.contains(&mac) {
                // Still busy: the next copy tries again.
                st.cover_tried.remove(&(mac, switch.to_string()));
                return Ok(0);
            }
            if self.fabric.subnets_of(switch).next().is_none()
                || vm.away.as_ref().is_none_or(|a| a.cover.contains(switch))
            {
                return Ok(0);
            }
            let mut after = vm.clone();
            if let Some(a) = after.away.as_mut() {
                a.cover.insert(switch.to_string());
            }
            let diff = mobility::diff(
                &mobility::by_switch(mobility::vm_flows(&self.fabric, &vm)),
                &mobility::by_switch(mobility::vm_flows(&self.fabric, &after)),
            );
            if let (Some(a), Some(new)) = (st.away.get_mut(&mac), after.away) {
                a.away = new;
            }
            st.migrating.insert(mac);
            st.version += 1;
            let snapshot = if self.store.is_some() {
                records(self, &st)
            } else {
                Default::default()
            };
            (diff, snapshot, st.version)
        };
        if let Some(d) = &self.store {
            let mut written = d.written.lock().unwrap_or_else(|e| e.into_inner());
            if version > *written {
                if let Err(e) = d.store.save(&snapshot) {
                    warn!(error = %e, "state not saved; the wider cover is installed anyway (it is only an optimisation)");
                } else {
                    *written = version;
                }
            }
        }
        let Some(ctl) = self.ctl.get().and_then(std::sync::Weak::upgrade) else {
            self.lock().migrating.remove(&mac);
            return Err(MigrateError::NotRunning);
        };
        let (_, _, n) = self.send_schedule(&ctl, &Schedule::phased(&diff)).await;
        self.lock().migrating.remove(&mac);
        info!(%mac, switch, flow_mods = n, "cover extended: the switch's hosts reach the VM directly");
        Ok(n)
    }

    fn dpid(&self, name: &str) -> Option<u64> {
        self.fabric
            .topology
            .switches
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.dpid.0)
    }

    /// Sends an update wave by wave ([`Schedule::waves`]), each batch followed by a barrier,
    /// the batches of a wave in parallel, a wave only once the one before is acknowledged.
    /// Returns the switches that acknowledged, those that did not (or are not connected),
    /// and the number of flow mods.
    pub(crate) async fn send_schedule(
        &self,
        ctl: &crate::runtime::Controller,
        schedule: &Schedule,
    ) -> (Vec<String>, Vec<String>, usize) {
        let mut switches: Vec<String> = Vec::new();
        let mut pending: Vec<String> = Vec::new();
        for wave in schedule.waves() {
            let mut ready = Vec::new();
            for i in wave {
                let b = &schedule.batches[i];
                let batch: Vec<Body> = b.mods.iter().cloned().map(Body::FlowMod).collect();
                match self.dpid(&b.switch).and_then(|d| ctl.registry.get(d)) {
                    Some(h) => ready.push((b.switch.clone(), batch, h)),
                    None if !pending.contains(&b.switch) => pending.push(b.switch.clone()),
                    None => {}
                }
            }
            let mut done = Vec::with_capacity(ready.len());
            if ready.len() == 1 {
                // One switch (the common case): no task to spawn.
                for (sw, batch, h) in ready {
                    let ok = h.send(batch).await.is_ok() && h.barrier().await.is_ok();
                    done.push((sw, ok));
                }
            } else {
                let mut set = tokio::task::JoinSet::new();
                for (sw, batch, h) in ready {
                    set.spawn(async move {
                        let ok = h.send(batch).await.is_ok() && h.barrier().await.is_ok();
                        (sw, ok)
                    });
                }
                while let Some(r) = set.join_next().await {
                    if let Ok(d) = r {
                        done.push(d);
                    }
                }
            }
            for (sw, ok) in done {
                if ok {
                    if !switches.contains(&sw) {
                        switches.push(sw);
                    }
                } else if !pending.contains(&sw) {
                    warn!(switch = %sw, "switch did not acknowledge its migration entries; it is reconciled when it reconnects");
                    pending.push(sw);
                }
            }
        }
        switches.retain(|s| !pending.contains(s));
        (switches, pending, schedule.flow_mods())
    }

    /// Sends the difference in two steps with a barrier per switch and step.
    async fn install(
        &self,
        p: &Prepared,
        to: &PortRef,
        t0: Instant,
    ) -> Result<MigrationReport, MigrateError> {
        let ctl = self
            .ctl
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or(MigrateError::NotRunning)?;
        let dpid = |name: &str| self.dpid(name);
        let (switches, pending, flow_mods) = self.send_schedule(&ctl, &p.schedule).await;
        // Converged: the last barrier reply is in. The gratuitous ARPs follow.
        let elapsed_us = t0.elapsed().as_micros() as u64;
        self.announce(&ctl, p, dpid).await;
        info!(
            host = %p.name,
            from = %format!("{}:{}", p.before.switch, p.before.port),
            to = %to,
            care_of = ?p.after.away.as_ref().map(|a| &a.care_of),
            flow_mods,
            elapsed_us,
            "migrated"
        );
        Ok(MigrationReport {
            host: p.name.clone(),
            from: format!("{}:{}", p.before.switch, p.before.port),
            to: to.to_string(),
            care_of: p
                .after
                .away
                .as_ref()
                .map(|a| a.care_of.iter().map(|c| c.to_string()).collect())
                .unwrap_or_default(),
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
    async fn announce(
        &self,
        ctl: &crate::runtime::Controller,
        p: &Prepared,
        dpid: impl Fn(&str) -> Option<u64>,
    ) {
        let vm = &p.after;
        let mut per_switch: BTreeMap<String, Vec<Body>> = BTreeMap::new();
        for ip in &vm.ips {
            let Some(home) = self.fabric.subnet_of(*ip) else {
                continue;
            };
            if vm.away.is_some() {
                per_switch.entry(vm.switch.clone()).or_default().push(garp(
                    GATEWAY_MAC,
                    home.gateway,
                    vec![vm.port],
                ));
            }
            let sha = if vm.away.is_some() {
                GATEWAY_MAC
            } else {
                vm.mac
            };
            let Some(h) = dpid(&home.switch).and_then(|d| ctl.registry.get(d)) else {
                continue;
            };
            let ports: Vec<u32> = h
                .info
                .ports()
                .iter()
                .map(|desc| desc.port_no)
                .filter(|&n| n <= port::MAX && !self.fabric.is_link_port(&home.switch, n))
                .filter(|&n| !(home.switch == vm.switch && n == vm.port))
                .filter(|&n| !(home.switch == p.before.switch && n == p.before.port))
                .filter(|&n| home.ports.as_ref().is_none_or(|ps| ps.contains(&n)))
                .collect();
            if !ports.is_empty() {
                per_switch
                    .entry(home.switch.clone())
                    .or_default()
                    .push(garp(sha, *ip, ports));
            }
        }
        for (sw, batch) in per_switch {
            if let Some(h) = dpid(&sw).and_then(|d| ctl.registry.get(d)) {
                let _ = h.send(batch).await;
            }
        }
    }
}

/// A gratuitous ARP request (sender = target = `ip`, as Linux and Xen send them) from `mac`,
/// out of `ports`.
fn garp(mac: MacAddr, ip: Ipv4Addr, ports: Vec<u32>) -> Body {
    let a = Arp {
        op: packet::ARP_REQUEST,
        sha: mac,
        spa: ip,
        tha: MacAddr::ZERO,
        tpa: ip,
    };
    Body::PacketOut(PacketOut {
        buffer_id: NO_BUFFER,
        in_port: port::CONTROLLER,
        actions: ports.into_iter().map(Action::output).collect(),
        data: Bytes::from(a.frame(MacAddr::BROADCAST, mac, packet::ETH_ARP)),
    })
}
