//! The transient-state checker (src/mobility/transitions.rs) on every update servswitch makes, on every
//! topology in `topologies/` and on generated fabrics: every state each update lets the fabric
//! pass through shows no care-of address to a host, loops nothing, drops no uninvolved
//! traffic, and the tables it ends in deliver the moved host's traffic. And the checker
//! rejects the orders that are wrong: the order servswitch used before (the foreign switch's
//! whole change first, then the others), and the phases without the drain before the last.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use servswitch::app::planner::Planner;
use servswitch::fabric::plan::Fabric;
use servswitch::fabric::topology::{PortRef, Topology};
use servswitch::mobility::flows as mobility;
use servswitch::mobility::transitions::{self, Check, Failure, Report, ViolationKind};
use servswitch::mobility::update::Schedule;

fn topology(file: &str) -> Topology {
    Topology::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join(file),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn generated(racks: u32, hosts: u32) -> Topology {
    let spec = servswitch::fabric::gen::GenSpec {
        racks,
        hosts_per_rack: hosts,
        cores: 2,
        agg_per_block: 2,
        racks_per_block: 3,
        ipv6: false,
    };
    Topology::parse(&spec.toml()).unwrap()
}

/// A host port of `switch` that no configured host uses (inside the subnet's `ports` if it
/// names them); `nth` picks among several.
fn free_port(t: &Topology, switch: &str, nth: u32) -> u32 {
    let used: BTreeSet<u32> = t
        .hosts
        .iter()
        .filter(|h| h.at.switch == switch)
        .map(|h| h.at.port)
        .chain(
            t.links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|r| r.switch == switch)
                .map(|r| r.port),
        )
        .collect();
    let named: Option<Vec<u32>> = t
        .subnets
        .iter()
        .filter(|s| s.switch == switch)
        .find_map(|s| s.ports.clone());
    match named {
        Some(ports) => ports
            .into_iter()
            .filter(|p| !used.contains(p))
            .nth(nth as usize)
            .unwrap_or_else(|| panic!("{switch}: no free port among its subnet's ports")),
        None => used.iter().max().copied().unwrap_or(0) + 1 + nth,
    }
}

/// The topology, with two hosts in every subnet if it declares none (two-switches.toml: the
/// controller would learn them).
fn with_hosts(t: &Topology) -> Topology {
    let mut t = t.clone();
    if !t.hosts.is_empty() {
        return t;
    }
    for (i, s) in t.subnets.clone().iter().enumerate() {
        let Some(prefix) = s.prefix else {
            continue;
        };
        for k in 0..2u32 {
            let ip = std::net::Ipv4Addr::from(u32::from(prefix.addr) + 10 + k);
            let port = free_port(&t, &s.switch, 0);
            t.hosts.push(servswitch::fabric::topology::HostConf {
                name: format!("h{i}-{k}"),
                mac: format!("02:ee:00:00:{i:02x}:{k:02x}").parse().unwrap(),
                ip: Some(ip),
                ips: None,
                at: PortRef {
                    switch: s.switch.clone(),
                    port,
                },
            });
        }
    }
    t.validate().unwrap();
    t
}

/// Switches that are the gateway of a subnet.
fn gateways(t: &Topology) -> Vec<String> {
    let mut v: Vec<String> = t.subnets.iter().map(|s| s.switch.clone()).collect();
    v.dedup();
    v.sort();
    v.dedup();
    v
}

/// Moves `host` to `to` in the router's plan, checking every transient state; panics with
/// the violation.
fn checked(r: &mut Planner, host: &str, to: &PortRef) -> Report {
    match r.checked(host, |r| r.plan_move(host, to)) {
        Ok(Ok(rep)) => rep,
        Ok(Err(f)) => panic!("{host} -> {to}: {f}"),
        Err(e) => panic!("{host} -> {to}: not planned: {e}"),
    }
}

/// Every host of `t` moves to every other switch with subnets and back home; then every
/// host of one switch moves away together and one of them moves on (co-migrated VMs, a VM
/// among other VMs away).
fn every_move(t: &Topology) -> usize {
    let t = &with_hosts(t);
    let fabric = Fabric::new(t);
    let gws = gateways(t);
    let mut checks = 0;
    // Hosts with IPv6 addresses only move too (dual-stack.toml's v6only).
    for h in &t.hosts {
        let mut r = Planner::new(fabric.clone());
        // Another port of its own switch, and back.
        checked(
            &mut r,
            &h.name,
            &PortRef {
                switch: h.at.switch.clone(),
                port: free_port(t, &h.at.switch, 4),
            },
        );
        checked(&mut r, &h.name, &h.at);
        checks += 2;
        for (i, sw) in gws.iter().filter(|s| **s != h.at.switch).enumerate() {
            let to = PortRef {
                switch: sw.clone(),
                port: free_port(t, sw, (i % 2) as u32),
            };
            checked(&mut r, &h.name, &to);
            checks += 1;
        }
        // The cover grows to every switch with subnets (their hosts talk to it), then shrinks
        // back to the default one (they stopped), one switch less at a time.
        if gws.iter().any(|s| *s != h.at.switch) {
            let mut all: Vec<String> = gws.clone();
            while !all.is_empty() {
                let cover = all.clone();
                match r.checked(&h.name, |r| r.plan_cover(&h.name, &cover)) {
                    Ok(Ok(_)) => {}
                    Ok(Err(f)) => panic!("{} cover {cover:?}: {f}", h.name),
                    Err(e) => panic!("{} cover {cover:?}: not planned: {e}", h.name),
                }
                checks += 1;
                all.pop();
            }
        }
        // From the last foreign place: to another port of the same switch, then home.
        if let Some(last) = gws.iter().rfind(|s| **s != h.at.switch) {
            let to = PortRef {
                switch: last.clone(),
                port: free_port(t, last, 2),
            };
            checked(&mut r, &h.name, &to);
            checked(&mut r, &h.name, &h.at);
            checks += 2;
        }
    }
    // Co-migration: every host of the first switch with hosts moves to the other switches in
    // turn; the first of them then moves home and away again while the rest are away.
    let Some(first) = t.hosts.first().map(|h| h.at.switch.clone()) else {
        return checks;
    };
    let group: Vec<_> = t.hosts.iter().filter(|h| h.at.switch == first).collect();
    let others: Vec<&String> = gws.iter().filter(|s| **s != first).collect();
    if others.is_empty() {
        return checks;
    }
    let mut r = Planner::new(fabric);
    for (i, h) in group.iter().enumerate() {
        let sw = others[i % others.len()];
        checked(
            &mut r,
            &h.name,
            &PortRef {
                switch: sw.clone(),
                port: free_port(t, sw, 3 + i as u32),
            },
        );
        checks += 1;
    }
    let h = group[0];
    checked(&mut r, &h.name, &h.at);
    let sw = others[others.len() - 1];
    checked(
        &mut r,
        &h.name,
        &PortRef {
            switch: sw.clone(),
            port: free_port(t, sw, 3 + group.len() as u32),
        },
    );
    checks + 2
}

#[test]
fn every_move_on_every_shipped_topology_passes_through_safe_states_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let n = every_move(&topology(f));
        println!("{f}: {n} updates checked");
    }
}

#[test]
fn every_move_on_generated_fabrics_passes_through_safe_states_only() {
    for (racks, hosts) in [(4, 2), (7, 1)] {
        let n = every_move(&generated(racks, hosts));
        println!("{racks} racks x {hosts} hosts: {n} updates checked");
    }
}

/// The tables, hosts and care-of addresses around one planned move, for checking schedules
/// other than the one servswitch sends.
struct Around {
    fabric: Fabric,
    before: BTreeMap<String, Vec<servswitch::fabric::plan::Flow>>,
    after: BTreeMap<String, Vec<servswitch::fabric::plan::Flow>>,
    endpoints: Vec<transitions::Endpoint>,
    care_of: BTreeSet<std::net::IpAddr>,
    planned: Schedule,
}

fn around(r: &mut Planner, host: &str, to: &PortRef) -> Around {
    let mac = r.find_host(host).unwrap();
    let before = r.tables();
    let from = r.endpoints().into_iter().find(|e| e.mac == mac).unwrap().at;
    let mut care_of = r.care_of_all();
    let planned = r.plan_move(host, to).unwrap();
    care_of.extend(r.care_of_all());
    let mut endpoints = r.endpoints();
    for e in endpoints.iter_mut().filter(|e| e.mac == mac) {
        e.moving = true;
        e.also_at = Some(from.clone()).filter(|f| *f != e.at);
    }
    Around {
        fabric: r.fabric.clone(),
        after: r.tables(),
        before,
        endpoints,
        care_of,
        planned,
    }
}

impl Around {
    fn check(&self, schedule: &Schedule) -> Result<Report, Failure> {
        transitions::check(&Check {
            fabric: &self.fabric,
            before: &self.before,
            schedule,
            after: &self.after,
            endpoints: &self.endpoints,
            care_of: &self.care_of,
        })
    }
}

/// The order servswitch used before: the switch the VM moved to, all of its changes (adds,
/// then deletes); then every other switch, likewise.
fn old_order(a: &Around, first: &str) -> Schedule {
    let diff = mobility::diff(&a.before, &a.after);
    let mut one = Vec::new();
    let mut two = Vec::new();
    for (sw, d) in &diff {
        let batch = (sw.clone(), d.flow_mods());
        if sw == first {
            one.push(batch);
        } else {
            two.push(batch);
        }
    }
    Schedule::from_phases(vec![(one, false), (two, false)])
}

fn is_care_of_leak(f: &Failure) -> bool {
    matches!(f, Failure::Violation(v) if matches!(v.kind, ViolationKind::CareOfAtHost { .. }))
}

#[test]
fn the_order_used_before_is_rejected_a_care_of_address_reaches_a_host() {
    let t = topology("paper-testbed.toml");
    let mut r = Planner::new(Fabric::new(&t));
    let to = PortRef {
        switch: "r2".into(),
        port: 9,
    };
    let a = around(&mut r, "vm", &to);
    a.check(&a.planned).expect("the phased order is safe");
    let err = a
        .check(&old_order(&a, "r2"))
        .expect_err("the old order must fail");
    assert!(is_care_of_leak(&err), "{err}");
    let text = err.to_string();
    println!("{text}");
    // The leak the issue describes: the foreign switch rewrites the VM's source before the
    // restore at the correspondent's switch is there.
    assert!(text.contains("from vm at r2:9"), "{text}");

    // The same on the three-tier fabric, for a move across aggregation blocks.
    let t = topology("three-tier.toml");
    let mut r = Planner::new(Fabric::new(&t));
    let to = PortRef {
        switch: "t8".into(),
        port: 9,
    };
    let a = around(&mut r, "h1-0", &to);
    a.check(&a.planned).expect("the phased order is safe");
    let err = a
        .check(&old_order(&a, "t8"))
        .expect_err("the old order must fail");
    assert!(is_care_of_leak(&err), "{err}");
}

#[test]
fn an_ipv6_care_of_address_is_checked_like_an_ipv4_one() {
    let t = topology("dual-stack.toml");
    let mut r = Planner::new(Fabric::new(&t));
    let to = PortRef {
        switch: "r2".into(),
        port: 9,
    };
    let mut a = around(&mut r, "vm", &to);
    assert!(
        a.care_of.iter().any(|c| c.is_ipv6()),
        "the dual-stack VM takes an IPv6 care-of address: {:?}",
        a.care_of
    );
    // IPv6 probes only: a leak found is an IPv6 one.
    for e in &mut a.endpoints {
        e.ips.clear();
    }
    let ok = a
        .check(&a.planned)
        .expect("the phased order is safe for IPv6");
    assert!(ok.packets > 0);
    let err = a
        .check(&old_order(&a, "r2"))
        .expect_err("the old order leaks an IPv6 care-of address");
    assert!(
        matches!(&err, Failure::Violation(v)
            if matches!(&v.kind, ViolationKind::CareOfAtHost { src, dst, .. }
                if src.is_ipv6() && dst.is_ipv6())),
        "{err}"
    );
    assert!(err.to_string().contains("from vm at r2:9"), "{err}");
}

#[test]
fn the_last_phase_needs_its_drain_a_packet_in_flight_meets_the_removed_restore() {
    // vm moves to r2, then on to r1 (a third subnet): the restores for r2's care-of address
    // go last. Without the drain, a packet rewritten at r2 just before r2 stopped rewriting
    // can reach r1 after r1 removed the restore.
    let t = topology("paper-testbed.toml");
    let mut r = Planner::new(Fabric::new(&t));
    checked(
        &mut r,
        "vm",
        &PortRef {
            switch: "r2".into(),
            port: 9,
        },
    );
    let a = around(
        &mut r,
        "vm",
        &PortRef {
            switch: "r1".into(),
            port: 9,
        },
    );
    a.check(&a.planned).expect("phased with the drain is safe");
    assert!(a.planned.batches.iter().any(|b| b.drain));
    let mut undrained = a.planned.clone();
    for b in &mut undrained.batches {
        b.drain = false;
    }
    let err = a
        .check(&undrained)
        .expect_err("without the drain it must fail");
    assert!(is_care_of_leak(&err), "{err}");
    // And all at once, in one wave: also rejected.
    let diff = mobility::diff(&a.before, &a.after);
    let at_once = Schedule::from_phases(vec![(
        diff.iter()
            .map(|(s, d)| (s.clone(), d.flow_mods()))
            .collect(),
        false,
    )]);
    assert!(a.check(&at_once).is_err());
}

#[test]
fn a_schedule_that_does_not_end_in_the_plan_is_refused_as_inconsistent() {
    let t = topology("paper-testbed.toml");
    let mut r = Planner::new(Fabric::new(&t));
    let a = around(
        &mut r,
        "vm",
        &PortRef {
            switch: "r2".into(),
            port: 9,
        },
    );
    let mut short = a.planned.clone();
    short.batches.pop();
    match a.check(&short) {
        Err(Failure::Inconsistent(why)) => assert!(why.contains("lacks"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A cycle in the order.
    let mut cyclic = a.planned.clone();
    let last = cyclic.batches.len() - 1;
    cyclic.batches[0].after.push(last);
    assert!(matches!(a.check(&cyclic), Err(Failure::Inconsistent(_))));
}

// ---------------------------------------------------------------------------------------------
// A restarted controller

/// The tables of every switch after the first `k` batches of `s` and `j` flow mods of the
/// next one (where a controller killed in the middle of an update leaves the fabric).
fn crashed(
    fabric: &Fabric,
    before: &BTreeMap<String, Vec<servswitch::fabric::plan::Flow>>,
    s: &Schedule,
    k: usize,
    j: usize,
) -> BTreeMap<String, Vec<servswitch::fabric::plan::Flow>> {
    let mut out = BTreeMap::new();
    for (sw, flows) in before {
        let mut t = servswitch::emu::flowtable::FlowTables::new(6);
        for g in fabric.groups(sw) {
            t.apply_group_mod(&g.group_mod(ofp13::OFPGC_ADD)).unwrap();
        }
        for f in flows {
            t.apply_flow_mod(&f.add()).unwrap();
        }
        for (i, b) in s.batches.iter().enumerate().take(k + 1) {
            if b.switch != *sw {
                continue;
            }
            let n = if i < k {
                b.mods.len()
            } else {
                j.min(b.mods.len())
            };
            for m in &b.mods[..n] {
                t.apply_flow_mod(m).unwrap();
            }
        }
        out.insert(
            sw.clone(),
            t.dump(ofp13::TABLE_ALL).iter().map(flow).collect(),
        );
    }
    out
}

fn flow(f: &ofp13::FlowStats) -> servswitch::fabric::plan::Flow {
    servswitch::fabric::plan::Flow {
        table_id: f.table_id,
        priority: f.priority,
        cookie: f.cookie,
        match_: f.match_.clone(),
        instructions: f.instructions.clone(),
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
        flags: f.flags,
    }
}

fn stats(f: &servswitch::fabric::plan::Flow) -> ofp13::FlowStats {
    ofp13::FlowStats {
        table_id: f.table_id,
        duration_sec: 0,
        duration_nsec: 0,
        priority: f.priority,
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
        flags: f.flags,
        cookie: f.cookie,
        packet_count: 0,
        byte_count: 0,
        match_: f.match_.clone(),
        instructions: f.instructions.clone(),
    }
}

/// Applies flow mods to a table given as flows.
fn applied(
    flows: &[servswitch::fabric::plan::Flow],
    mods: &[ofp13::FlowMod],
) -> Vec<servswitch::fabric::plan::Flow> {
    let mut t = servswitch::emu::flowtable::FlowTables::new(6);
    // The groups the entries name (multipath routes) exist; only entries are compared here,
    // so their buckets do not matter.
    let groups: BTreeSet<u32> = flows
        .iter()
        .flat_map(|f| f.instructions.iter())
        .chain(mods.iter().flat_map(|m| m.instructions.iter()))
        .flat_map(|i| match i {
            ofp13::Instruction::ApplyActions { actions } => actions.to_vec(),
            _ => Vec::new(),
        })
        .filter_map(|a| match a {
            ofp13::Action::Group { group_id } => Some(group_id),
            _ => None,
        })
        .collect();
    for group_id in groups {
        t.apply_group_mod(&ofp13::GroupMod {
            command: ofp13::OFPGC_ADD,
            group_type: ofp13::OFPGT_SELECT,
            group_id,
            buckets: Vec::new(),
        })
        .unwrap();
    }
    for f in flows {
        t.apply_flow_mod(&f.add()).unwrap();
    }
    for m in mods {
        t.apply_flow_mod(m).unwrap();
    }
    t.dump(ofp13::TABLE_ALL).iter().map(flow).collect()
}

/// What a restarted controller does to tables `live` to reach the plan `after`, as
/// reconcile.rs does it: each switch on its own reconciles with producers held and
/// consumers kept (batch A); a switch's held producers go once every switch with
/// consumers of the same VM has had its A (batch B); the consumers it no longer plans go
/// once every switch has had A and B, and a drain (batch C).
fn restart_schedule(
    live: &BTreeMap<String, Vec<servswitch::fabric::plan::Flow>>,
    after: &BTreeMap<String, Vec<servswitch::fabric::plan::Flow>>,
) -> Schedule {
    use servswitch::mobility::update::{difference_in_order, Allow};
    use servswitch::mobility::update::{flow_role, Role};
    let held = Allow {
        producer: &|_| false,
        delete_consumers: false,
    };
    let producers = Allow {
        producer: &|_| true,
        delete_consumers: false,
    };
    let mut batches: Vec<servswitch::mobility::update::Batch> = Vec::new();
    let mut a_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut state: BTreeMap<String, Vec<servswitch::fabric::plan::Flow>> = BTreeMap::new();
    for (sw, plan) in after {
        let l: Vec<ofp13::FlowStats> = live[sw].iter().map(stats).collect();
        let (mods, _) = difference_in_order(&l, plan, &held);
        state.insert(sw.clone(), applied(&live[sw], &mods));
        if !mods.is_empty() {
            a_of.insert(sw.clone(), batches.len());
            batches.push(servswitch::mobility::update::Batch {
                switch: sw.clone(),
                phase: 1,
                mods,
                after: Vec::new(),
                drain: false,
            });
        }
    }
    // Which switches hold consumers of each VM (by the home address in the cookie).
    let mut consumers: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for (sw, plan) in after {
        for f in plan.iter().filter(|f| flow_role(f) == Role::Consumer) {
            consumers
                .entry(f.cookie as u32)
                .or_default()
                .insert(sw.clone());
        }
    }
    let mut ab: Vec<usize> = a_of.values().copied().collect();
    for (sw, plan) in after {
        let l: Vec<ofp13::FlowStats> = state[sw].iter().map(stats).collect();
        let (mods, _) = difference_in_order(&l, plan, &producers);
        if mods.is_empty() {
            continue;
        }
        let deps: BTreeSet<usize> = plan
            .iter()
            .filter(|f| flow_role(f) == Role::Producer)
            .flat_map(|f| consumers.get(&(f.cookie as u32)).into_iter().flatten())
            .filter(|d| *d != sw)
            .filter_map(|d| a_of.get(d).copied())
            .collect();
        state.insert(sw.clone(), applied(&state[sw], &mods));
        ab.push(batches.len());
        batches.push(servswitch::mobility::update::Batch {
            switch: sw.clone(),
            phase: 2,
            mods,
            after: deps.into_iter().collect(),
            drain: false,
        });
    }
    for (sw, plan) in after {
        let l: Vec<ofp13::FlowStats> = state[sw].iter().map(stats).collect();
        let (mods, _) = servswitch::mobility::update::difference(&l, plan);
        if !mods.is_empty() {
            batches.push(servswitch::mobility::update::Batch {
                switch: sw.clone(),
                phase: 3,
                mods,
                after: ab.clone(),
                drain: true,
            });
        }
    }
    Schedule { batches }
}

#[test]
fn a_controller_killed_at_any_point_of_an_update_reconciles_through_safe_states() {
    // The paper's moves and the three-tier's: away, on to a third subnet, home. The kill
    // comes after any number of batches and half or all of the next one; the restarted
    // controller has the move's state (it is saved before anything is sent).
    for (file, host, moves) in [
        ("paper-testbed.toml", "vm", vec!["r2:9", "r1:9", "r3:3"]),
        ("three-tier.toml", "h1-0", vec!["t8:9", "t5:9", "t1:3"]),
    ] {
        let t = topology(file);
        let mut r = Planner::new(Fabric::new(&t));
        let mut checked = 0;
        let mut naive_failed = 0;
        for to in moves {
            let to: PortRef = to.parse().unwrap();
            let a = around(&mut r, host, &to);
            for k in 0..a.planned.batches.len() {
                let n = a.planned.batches[k].mods.len();
                for j in [0, n / 2, n] {
                    let live = crashed(&a.fabric, &a.before, &a.planned, k, j);
                    let s = restart_schedule(&live, &a.after);
                    let c = Check {
                        fabric: &a.fabric,
                        before: &live,
                        schedule: &s,
                        after: &a.after,
                        endpoints: &a.endpoints,
                        care_of: &a.care_of,
                    };
                    if let Err(e) = transitions::check(&c) {
                        panic!(
                            "{file}: {host} -> {to}, killed after {k} batches and {j} of {n}:\n{e}\n{}",
                            s.text()
                        );
                    }
                    checked += 1;
                    // What reconciliation did before: each switch's whole difference, any
                    // switch first.
                    let naive = Schedule::from_phases(vec![(
                        a.after
                            .iter()
                            .map(|(sw, plan)| {
                                let l: Vec<ofp13::FlowStats> = live[sw].iter().map(stats).collect();
                                (
                                    sw.clone(),
                                    servswitch::mobility::update::difference(&l, plan).0,
                                )
                            })
                            .collect(),
                        false,
                    )]);
                    if transitions::check(&Check {
                        schedule: &naive,
                        ..c
                    })
                    .is_err()
                    {
                        naive_failed += 1;
                    }
                }
            }
        }
        println!("{file}: {checked} restarts checked; the reconciliation used before fails {naive_failed}");
        assert!(
            naive_failed > 0,
            "{file}: the test cannot tell a wrong order"
        );
    }
}
