//! Planning with no controller: the fabric and a state of its own, changed by the same pure
//! functions the router calls under its lock (`migrate::plan_move`,
//! `State::tables`). What `servswitch plan --migrate/--cover [--check-transitions]`, the
//! benches and the tests of a move's tables use: no lock, no clock, no switch, no task.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Instant;

use ofp13::MacAddr;

use crate::app::migrate::Update;
use crate::app::migrate::{plan_move, MigrateError};
use crate::app::router::State;
use crate::fabric::plan::{Fabric, Flow, Meter};
use crate::fabric::topology::PortRef;
use crate::mobility;
use crate::mobility::transitions::{Endpoint, Failure, Report};
use crate::mobility::update::Schedule;

/// A fabric's intended tables, and the moves and covers that change them.
pub struct Planner {
    pub fabric: Fabric,
    state: State,
    /// Declared hosts' MACs by name, and names by MAC.
    macs: HashMap<String, MacAddr>,
    names: HashMap<MacAddr, String>,
    /// The time every decision is given (a plan does not age).
    now: Instant,
}

impl Planner {
    /// The fabric with its declared hosts at home.
    pub fn new(fabric: Fabric) -> Planner {
        let hosts = &fabric.topology.hosts;
        Planner {
            state: State::new(&fabric),
            macs: hosts.iter().map(|h| (h.name.clone(), h.mac)).collect(),
            names: hosts.iter().map(|h| (h.mac, h.name.clone())).collect(),
            fabric,
            now: Instant::now(),
        }
    }

    /// Finds a host by name, address or MAC.
    pub fn find_host(&self, sel: &str) -> Option<MacAddr> {
        if let Some(mac) = self.macs.get(sel) {
            return Some(*mac);
        }
        if let Ok(ip) = sel.parse::<Ipv4Addr>() {
            return self.state.hosts.get(&ip).map(|(h, _)| h.mac);
        }
        let mac: MacAddr = sel.parse().ok()?;
        self.state.knows_mac(mac).then_some(mac)
    }

    fn host(&self, sel: &str) -> Result<MacAddr, MigrateError> {
        self.find_host(sel)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))
    }

    /// Moves the host `sel` to `to`: the update a controller would send (empty when it is
    /// there already). On an error nothing changes.
    pub fn plan_move(&mut self, sel: &str, to: &PortRef) -> Result<Schedule, MigrateError> {
        let mac = self.host(sel)?;
        let planned = plan_move(&mut self.state, &self.fabric, mac, sel, to, false, self.now)?;
        Ok(planned.map(|p| p.update.schedule).unwrap_or_default())
    }

    /// Gives the VM `sel` (away from home) this cover beyond its default one (the tables a
    /// controller has once those switches' hosts have talked to it): the update a controller
    /// would send.
    pub fn plan_cover(&mut self, sel: &str, switches: &[String]) -> Result<Schedule, MigrateError> {
        let mac = self.host(sel)?;
        for s in switches {
            if self.fabric.subnets_of(s).next().is_none() {
                return Err(MigrateError::BadTarget(format!(
                    "{s:?} is not a switch with subnets (only those rewrite for a VM)"
                )));
            }
        }
        let st = &mut self.state;
        let vm = st
            .vm(mac)
            .ok_or_else(|| MigrateError::UnknownHost(sel.to_string()))?;
        if vm.away.is_none() {
            return Err(MigrateError::BadTarget(format!(
                "{sel} is at home: only a VM away from home has a cover"
            )));
        }
        let mut cover = mobility::flows::default_cover(&self.fabric, &vm.switch, &vm.ips, &vm.ips6);
        cover.extend(switches.iter().cloned());
        let mut after = vm.clone();
        if let Some(a) = after.away.as_mut() {
            a.cover = cover;
        }
        let update = Update::begin(st, &self.fabric, &vm, &after, Vec::new(), false);
        if let (Some(a), Some(new)) = (st.away.get_mut(&mac), after.away) {
            a.away = new;
        }
        Ok(update.schedule)
    }

    /// Plans an update of the host `sel` with `make` (a move, a cover) and checks every state
    /// it lets the fabric pass through, with the host at its old place or its new one while
    /// the update runs.
    pub fn checked(
        &mut self,
        sel: &str,
        make: impl FnOnce(&mut Planner) -> Result<Schedule, MigrateError>,
    ) -> Result<Result<Report, Failure>, MigrateError> {
        let mac = self.host(sel)?;
        let before = self.tables();
        let from = self.state.location(mac).map(|(s, p)| (s.to_string(), p));
        let mut care_of = self.state.care_of_all();
        let schedule = make(self)?;
        care_of.extend(self.state.care_of_all());
        let after = self.tables();
        let mut endpoints = self.endpoints();
        for e in endpoints.iter_mut().filter(|e| e.mac == mac) {
            e.moving = true;
            e.also_at = from.clone().filter(|f| *f != e.at);
        }
        Ok(mobility::transitions::check(
            &mobility::transitions::Check {
                fabric: &self.fabric,
                before: &before,
                schedule: &schedule,
                after: &after,
                endpoints: &endpoints,
                care_of: &care_of,
            },
        ))
    }

    /// Every switch's whole planned table.
    pub fn tables(&self) -> BTreeMap<String, Vec<Flow>> {
        self.state.tables(&self.fabric)
    }

    /// One switch's whole planned table.
    pub fn switch_plan(&self, switch: &str) -> Vec<Flow> {
        self.state.switch_plan(&self.fabric, switch)
    }

    /// One switch's planned meters.
    pub fn switch_meters(&self, switch: &str) -> Vec<Meter> {
        self.state.meters(&self.fabric, switch)
    }

    /// One switch's planned groups.
    pub fn switch_groups(&self, switch: &str) -> Vec<crate::fabric::plan::Group> {
        self.fabric.groups(switch)
    }

    /// Every care-of address held.
    pub fn care_of_addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.state.care_of_addresses()
    }

    /// Every care-of address held, IPv4 and IPv6.
    pub fn care_of_all(&self) -> BTreeSet<std::net::IpAddr> {
        self.state.care_of_all()
    }

    /// The host `mac` as planned: where it is, and its care-of addresses and cover if away.
    pub fn vm(&self, mac: MacAddr) -> Option<crate::mobility::flows::Vm> {
        self.state.vm(mac)
    }

    /// Where the host `mac` is.
    pub fn location(&self, mac: MacAddr) -> Option<(String, u32)> {
        self.state.location(mac).map(|(s, p)| (s.to_string(), p))
    }

    /// Every known host as the transient-state checker sees it: where it is now (none
    /// moving; [`Planner::checked`] marks the one that does).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.state
            .vms()
            .into_iter()
            .map(|vm| Endpoint {
                name: self
                    .names
                    .get(&vm.mac)
                    .cloned()
                    .or_else(|| vm.ips.first().map(|ip| ip.to_string()))
                    .or_else(|| vm.ips6.first().map(|ip| ip.to_string()))
                    .unwrap_or_else(|| vm.mac.to_string()),
                mac: vm.mac,
                ips: vm.ips,
                ips6: vm.ips6,
                at: (vm.switch, vm.port),
                also_at: None,
                moving: false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::router::Router;
    use crate::fabric::topology::Topology;

    /// The planner and the router decide moves by the same function: for the same moves,
    /// in order, the same updates, the same tables and the same care-of addresses, and
    /// the same refusals (with nothing changed).
    #[test]
    fn the_planner_and_the_router_decide_every_move_alike() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let cases: [(&str, &[(&str, &str)]); 2] = [
            (
                "paper-testbed.toml",
                &[
                    ("vm", "r2:3"),
                    ("vm2", "r2:4"),
                    ("vm", "r2:3"),
                    ("vm", "r9:3"),
                    ("vm", "r1:1"),
                    ("vm2", "r3:4"),
                    ("vm", "r3:3"),
                ],
            ),
            (
                "three-tier.toml",
                &[
                    ("h1-0", "t8:9"),
                    ("h1-0", "t5:9"),
                    ("h2-1", "t8:10"),
                    ("h1-0", "t1:3"),
                    ("h2-1", "t2:4"),
                ],
            ),
        ];
        for (file, moves) in cases {
            let t = Topology::load(&dir.join(file)).unwrap();
            let mut planner = Planner::new(Fabric::new(&t));
            let router = Router::new(Fabric::new(&t));
            assert_eq!(planner.tables(), router.tables(), "{file}: at the start");
            let (mut moved, mut refused) = (0, 0);
            for (host, to) in moves {
                let to: PortRef = to.parse().unwrap();
                let p = planner.plan_move(host, &to);
                let r = router.plan_move(host, &to);
                match (&p, &r) {
                    (Ok(p), Ok(r)) => {
                        assert_eq!(p, r, "{file}: {host} -> {to}: the update");
                        moved += usize::from(!p.batches.is_empty());
                    }
                    (Err(p), Err(r)) => {
                        assert_eq!(p.to_string(), r.to_string(), "{file}: {host} -> {to}");
                        refused += 1;
                    }
                    _ => panic!("{file}: {host} -> {to}: {p:?} against {r:?}"),
                }
                assert_eq!(
                    planner.tables(),
                    router.tables(),
                    "{file}: after {host} -> {to}"
                );
                assert_eq!(
                    planner.care_of_addresses(),
                    router.care_of_addresses(),
                    "{file}: after {host} -> {to}"
                );
            }
            assert!(
                planner.care_of_addresses().is_empty(),
                "{file}: all home again"
            );
            // Every move of the list did something but the bad targets (refused) and the
            // repeat (already there) of the paper's list.
            let (refused_want, repeats) = if file == "paper-testbed.toml" {
                (2, 1)
            } else {
                (0, 0)
            };
            assert_eq!(refused, refused_want, "{file}");
            assert_eq!(moved + refused + repeats, moves.len(), "{file}");
        }
    }
}
