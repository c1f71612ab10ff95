//! The transient-state checker (src/mobility/transitions.rs): how long it takes to check every state of
//! one update, per kind of update, on the shipped topologies and on generated fabrics up to
//! the 500-rack one (552 switches, 20,000 hosts). Reports, per topology and update, the best
//! and median of 3 runs, with what was checked (switches changed, positions, probe packets,
//! table lookups).
//! Run: `cargo bench --bench transitions` (`-- --quick` skips the 500-rack fabric).

use std::time::Duration;

use servswitch::app::planner::Planner;
use servswitch::fabric::gen::GenSpec;
use servswitch::fabric::plan::Fabric;
use servswitch::fabric::topology::{PortRef, Topology};
use servswitch::mobility::transitions::Report;

/// A host of the first rack, a foreign access switch far away, another one, a free port.
struct Case {
    name: String,
    topo: Topology,
    host: String,
    home: PortRef,
    away: PortRef,
    on: PortRef,
    /// An access switch the cover grows by (not the foreign one).
    cover: String,
}

fn free_port(t: &Topology, sw: &str) -> u32 {
    t.hosts
        .iter()
        .filter(|h| h.at.switch == sw)
        .map(|h| h.at.port)
        .chain(
            t.links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|r| r.switch == sw)
                .map(|r| r.port),
        )
        .max()
        .unwrap_or(0)
        + 1
}

fn case(name: &str, topo: Topology) -> Option<Case> {
    let h = topo.hosts.first()?.clone();
    let mut gws: Vec<String> = topo
        .subnets
        .iter()
        .map(|s| s.switch.clone())
        .filter(|s| *s != h.at.switch)
        .collect();
    gws.sort();
    gws.dedup();
    // Two foreign switches far apart in file order (the last and the first).
    let away = gws.last()?.clone();
    let on = gws.first().filter(|s| **s != away)?.clone();
    let access = |s: &String| {
        topo.switches
            .iter()
            .any(|x| x.name == *s && x.tier == servswitch::fabric::topology::Tier::Access)
    };
    let cover = gws.iter().find(|s| **s != away && access(s))?.clone();
    Some(Case {
        name: name.to_string(),
        host: h.name.clone(),
        home: h.at.clone(),
        away: PortRef {
            port: free_port(&topo, &away),
            switch: away,
        },
        on: PortRef {
            port: free_port(&topo, &on),
            switch: on,
        },
        cover,
        topo,
    })
}

fn run(
    r: &mut Planner,
    what: &str,
    sel: &str,
    f: &dyn Fn(&mut Planner) -> servswitch::mobility::update::Schedule,
) -> Report {
    match r.checked(sel, |r| Ok(f(r))) {
        Ok(Ok(rep)) => rep,
        Ok(Err(v)) => panic!("{what}: {v}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut cases: Vec<Case> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for p in files {
        let t = Topology::load(&p).unwrap();
        if let Some(c) = case(&p.file_name().unwrap().to_string_lossy(), t) {
            cases.push(c);
        }
    }
    for racks in [20u32, 100, 500] {
        if quick && racks == 500 {
            continue;
        }
        let spec = GenSpec {
            racks,
            ..GenSpec::default()
        };
        let t = Topology::parse(&spec.toml()).unwrap();
        let name = format!(
            "generated {racks} racks ({} switches, {} hosts)",
            t.switches.len(),
            t.hosts.len()
        );
        cases.extend(case(&name, t));
    }
    println!("transient-state checker: best / median of 3 runs per update\n");
    println!(
        "{:<44} {:<26} {:>9} {:>9} {:>6} {:>9} {:>9} {:>9}",
        "topology", "update", "best", "median", "sw", "positions", "packets", "lookups"
    );
    for c in &cases {
        let fabric = Fabric::new(&c.topo);
        let mut times: Vec<(String, Vec<Duration>, Report)> = Vec::new();
        for _ in 0..3 {
            let mut r = Planner::new(fabric.clone());
            let h = c.host.as_str();
            let cover: Vec<String> = vec![c.cover.clone()];
            let steps: Vec<(String, Report)> = vec![
                (
                    "away (home -> foreign)".into(),
                    run(&mut r, "away", h, &|r| r.plan_move(h, &c.away).unwrap()),
                ),
                (
                    "cover grows by one".into(),
                    run(&mut r, "cover", h, &|r| r.plan_cover(h, &cover).unwrap()),
                ),
                (
                    "on (foreign -> foreign)".into(),
                    run(&mut r, "on", h, &|r| r.plan_move(h, &c.on).unwrap()),
                ),
                (
                    "home (foreign -> home)".into(),
                    run(&mut r, "home", h, &|r| r.plan_move(h, &c.home).unwrap()),
                ),
            ];
            for (i, (what, rep)) in steps.into_iter().enumerate() {
                match times.get_mut(i) {
                    Some(t) => t.1.push(rep.elapsed),
                    None => times.push((what, vec![rep.elapsed], rep)),
                }
            }
        }
        for (what, mut t, rep) in times {
            t.sort();
            println!(
                "{:<44} {:<26} {:>7.1}ms {:>7.1}ms {:>6} {:>9} {:>9} {:>9}",
                c.name,
                what,
                t[0].as_secs_f64() * 1e3,
                t[t.len() / 2].as_secs_f64() * 1e3,
                rep.switches,
                rep.positions,
                rep.packets,
                rep.lookups
            );
        }
    }
}
