//! A fabric of flow tables with the application answering its packet-ins, with no sockets and
//! no clock (after Faucet's `clib/fakeoftable.py`): every switch is a
//! [`FlowTables`] loaded with the router's plan, packets run through them hop by hop along the
//! topology's links, and a packet sent to the controller is handed to
//! [`Router::packet_in`], whose FLOW_MODs change the tables and whose PACKET_OUTs run like any
//! other packet. A test asks where a packet goes and what it looks like when it gets there.
//!
//! Migrations are planned with [`Router::plan_move`] and their flow mods applied in the order
//! of their schedule (all of it: the tables after the update). A move the router asks for
//! from a packet-in (a RARP at a new port: `app::effect::Effect::Migrate`) is carried out
//! the same way, at once; the other effects it asks for (timers, cover tasks, probes) are
//! kept in [`FakeFabric::effects`] for the test to read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ofp13::{port, Body};
use servswitch::app::effect::Effect as AppEffect;
use servswitch::app::router::Router;
use servswitch::emu::flowtable::{Effect, FlowTables};
use servswitch::fabric::plan::{table_diff, Fabric};
use servswitch::fabric::topology::{PortRef, Topology};

/// A frame that left the fabric at a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub switch: String,
    pub port: u32,
    pub frame: Vec<u8>,
}

/// The tables of every switch, the router, and which ports exist.
pub struct FakeFabric {
    pub router: Router,
    tables: BTreeMap<String, FlowTables>,
    ports: BTreeMap<String, BTreeSet<u32>>,
    /// Packet-ins the router handled.
    pub packet_ins: usize,
    /// Every frame delivered to a host so far.
    pub delivered: Vec<Delivery>,
    /// What the router asked for beyond its answers and moves, in order.
    pub effects: Vec<AppEffect>,
}

/// More hops than any path of a test fabric: a packet still going after this many is in a loop.
const MAX_HOPS: usize = 64;

impl FakeFabric {
    /// Every switch of `topology` with its link and host ports and the router's plan.
    pub fn new(topology: &Topology) -> FakeFabric {
        let router = Router::new(Fabric::new(topology));
        let mut ports: BTreeMap<String, BTreeSet<u32>> = topology
            .switches
            .iter()
            .map(|s| (s.name.clone(), BTreeSet::new()))
            .collect();
        for l in &topology.links {
            for end in [&l.a, &l.b] {
                ports
                    .entry(end.switch.clone())
                    .or_default()
                    .insert(end.port);
            }
        }
        for h in &topology.hosts {
            ports
                .entry(h.at.switch.clone())
                .or_default()
                .insert(h.at.port);
        }
        let mut f = FakeFabric {
            router,
            tables: BTreeMap::new(),
            ports,
            packet_ins: 0,
            delivered: Vec::new(),
            effects: Vec::new(),
        };
        for s in &topology.switches {
            let mut t = FlowTables::new(254);
            t.set_ports(&f.ports[&s.name].iter().copied().collect::<Vec<_>>());
            for g in f.router.switch_groups(&s.name) {
                t.apply_group_mod(&g.group_mod(ofp13::OFPGC_ADD))
                    .expect("planned groups are valid");
            }
            for flow in f.router.switch_plan(&s.name) {
                t.apply_flow_mod(&flow.add())
                    .expect("planned entries are valid");
            }
            f.tables.insert(s.name.clone(), t);
        }
        f
    }

    /// Adds a port to a switch (where a VM moves to).
    pub fn add_port(&mut self, switch: &str, port: u32) {
        let ports = self.ports.entry(switch.to_string()).or_default();
        ports.insert(port);
        let list: Vec<u32> = ports.iter().copied().collect();
        self.tables
            .get_mut(switch)
            .expect("a switch of the topology")
            .set_ports(&list);
    }

    /// Plans the move of host `host` to `switch:port` and applies the whole update.
    pub fn migrate(&mut self, host: &str, switch: &str, port: u32) {
        self.add_port(switch, port);
        let to = PortRef {
            switch: switch.to_string(),
            port,
        };
        self.apply_move(host, &to);
    }

    /// Plans the move of host `sel` to `to` (a port that exists) and applies the whole
    /// update.
    fn apply_move(&mut self, sel: &str, to: &PortRef) {
        let schedule = self
            .router
            .plan_move(sel, to)
            .expect("a move the router accepts");
        for b in &schedule.batches {
            let t = self
                .tables
                .get_mut(&b.switch)
                .expect("a switch of the topology");
            for m in &b.mods {
                t.apply_flow_mod(m)
                    .expect("an update's flow mods are valid");
            }
        }
        // The router's tables after the move are what the switches hold now.
        for (name, t) in &self.tables {
            let live = t.flow_stats(&ofp13::FlowStatsRequest::all());
            let plan = self.router.switch_plan(name);
            let d = table_diff(&live, &plan);
            assert!(
                d.changes.is_empty() && d.extra.is_empty(),
                "{name}: the update leads to the plan: {d:?}"
            );
        }
    }

    /// A frame a host sends at `switch:port`: where it and everything it causes arrive.
    pub fn send(&mut self, switch: &str, port: u32, frame: &[u8]) -> Vec<Delivery> {
        let effects = self.tables[switch].process(port, frame);
        let mut queue: VecDeque<(String, Effect, usize)> = effects
            .into_iter()
            .map(|e| (switch.to_string(), e, 0))
            .collect();
        let mut delivered = Vec::new();
        while let Some((sw, effect, hops)) = queue.pop_front() {
            assert!(hops < MAX_HOPS, "a loop: {hops} hops, now at {sw}");
            match effect {
                Effect::Output { port, frame } => {
                    match self.router.fabric.peer(&sw, port) {
                        Some((next, in_port)) => {
                            let next = next.to_string();
                            for e in self.tables[&next].process(in_port, &frame) {
                                queue.push_back((next.clone(), e, hops + 1));
                            }
                        }
                        None if port <= port::MAX => delivered.push(Delivery {
                            switch: sw,
                            port,
                            frame,
                        }),
                        None => {} // LOCAL and the like: nobody there
                    }
                }
                e @ Effect::PacketIn { .. } => {
                    let pi = e.to_packet_in().expect("a packet-in effect");
                    self.packet_ins += 1;
                    let ports: Vec<u32> = self.ports[&sw].iter().copied().collect();
                    let (mut out, mut asked) = (Vec::new(), Vec::new());
                    self.router.packet_in_into(
                        &sw,
                        &|| ports.clone(),
                        &pi,
                        &mut out,
                        &mut asked,
                        self.router.now(),
                    );
                    for e in asked {
                        match e {
                            AppEffect::Migrate { mac, to, .. } => {
                                self.apply_move(&mac.to_string(), &to)
                            }
                            other => self.effects.push(other),
                        }
                    }
                    for body in out {
                        match body {
                            Body::FlowMod(fm) => {
                                let t = self.tables.get_mut(&sw).expect("a switch");
                                t.apply_flow_mod(&fm)
                                    .expect("the router's flow mods are valid");
                            }
                            Body::PacketOut(po) => {
                                let t = self.tables.get_mut(&sw).expect("a switch");
                                for e in t.packet_out(&po).expect("a valid packet-out") {
                                    queue.push_back((sw.clone(), e, hops + 1));
                                }
                            }
                            other => panic!("unexpected answer to a packet-in: {other:?}"),
                        }
                    }
                }
            }
        }
        self.delivered.extend(delivered.iter().cloned());
        delivered
    }
}
