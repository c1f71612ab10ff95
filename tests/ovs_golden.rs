//! The golden files of tests/golden/ against real Open vSwitch: the topology built as
//! userspace bridges with hosts in namespaces, the real `servswitch run` programming them, and
//! every bridge's `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` equal to the golden tables
//! (per switch, lines trimmed, the same set and the same number of lines): at start, then
//! after each golden file's migrations are POSTed to the REST API in order; and, where the
//! topology has a `<stem>.groups.txt`, every bridge's `dump-groups` equal to the golden groups
//! (the same buckets in the same order). No traffic is sent,
//! so no host is learned and the tables are exactly the plan; a host moved through the API
//! stays physically where it is, which does not matter to the tables.
//!
//! Needs root and a running Open vSwitch; skips without them, fails instead when CI=true.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ovs_fabric::{self, ControllerProcess, OvsFabric};
use servswitch::fabric::topology::Topology;

static SERIAL: Mutex<()> = Mutex::new(());

const MIGRATIONS: &str = "## Migrations, in order: ";

/// A golden file: its migrations (from its header) and each switch's table lines, trimmed.
struct Golden {
    file: String,
    migrations: Vec<String>,
    tables: BTreeMap<String, Vec<String>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_golden(file: &str) -> Golden {
    let path = root().join("tests/golden").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run cargo test --test golden)", path.display()));
    let mut migrations = None;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix(MIGRATIONS) {
            migrations = Some(if m.trim() == "none" {
                Vec::new()
            } else {
                m.split_whitespace().map(str::to_string).collect()
            });
        } else if line.starts_with("##") {
        } else if let Some(h) = line.strip_prefix("# ") {
            let name = h
                .split_whitespace()
                .next()
                .expect("switch name")
                .to_string();
            tables.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if !line.trim().is_empty() {
            let name = current
                .as_ref()
                .unwrap_or_else(|| panic!("{file}: table line before any switch: {line}"));
            tables.get_mut(name).unwrap().push(line.trim().to_string());
        }
    }
    Golden {
        file: file.to_string(),
        migrations: migrations.unwrap_or_else(|| panic!("{file}: no `{MIGRATIONS}` line")),
        tables,
    }
}

/// The golden files of a topology in order: `<stem>.txt`, `<stem>.migrated.txt`,
/// `<stem>.migrated2.txt`, ... as far as they exist.
fn goldens(stem: &str) -> Vec<Golden> {
    let mut v = vec![load_golden(&format!("{stem}.txt"))];
    for n in 1.. {
        let file = if n == 1 {
            format!("{stem}.migrated.txt")
        } else {
            format!("{stem}.migrated{n}.txt")
        };
        if !root().join("tests/golden").join(&file).exists() {
            break;
        }
        v.push(load_golden(&file));
    }
    v
}

/// A live table's lines (or its groups'), trimmed, sorted.
fn live(f: &OvsFabric, switch: &str, groups: bool) -> Vec<String> {
    let text = if groups {
        f.dump_groups(switch)
    } else {
        f.dump_flows(switch)
    };
    let mut v: Vec<String> = text
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("OFPST_"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Every switch's live table against the golden one: the same set of lines and the same
/// number of lines. `Err` lists what differs.
fn compare(f: &OvsFabric, g: &Golden) -> Result<(), String> {
    let mut problems = Vec::new();
    let groups = g.file.ends_with(".groups.txt");
    for (switch, want) in &g.tables {
        let have = live(f, switch, groups);
        let mut want = want.clone();
        want.sort();
        let want_set: BTreeSet<&String> = want.iter().collect();
        let have_set: BTreeSet<&String> = have.iter().collect();
        if want_set == have_set && want.len() == have.len() {
            continue;
        }
        let mut p = format!(
            "{switch}: live table has {} lines ({} distinct), golden {} ({} distinct)",
            have.len(),
            have_set.len(),
            want.len(),
            want_set.len()
        );
        for l in want_set.difference(&have_set) {
            p.push_str(&format!("\n  - (only in golden) {l}"));
        }
        for l in have_set.difference(&want_set) {
            p.push_str(&format!("\n  + (only live)      {l}"));
        }
        problems.push(p);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n{}", g.file, problems.join("\n")))
    }
}

/// POSTs one `HOST=SWITCH:PORT` to /api/v1/migrations; the answer comes after the barriers.
/// POSTs a migration; returns when its last phase is due to have been sent (the answer
/// comes after every other phase's barriers; a drained last phase follows `cleanup.after_ms`
/// later).
fn post_migration(ctl: &ControllerProcess, m: &str) -> Option<Instant> {
    let (host, to) = m.split_once('=').expect("HOST=SWITCH:PORT");
    let body = serde_json::json!({ "host": host, "to": to }).to_string();
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let (status, text) = servswitch::cli::client::Api::new(&api, None)
        .and_then(|a| a.request("POST", "/api/v1/migrations", Some(&body)))
        .unwrap_or_else(|e| panic!("POST {body}: {e}\ncontroller log:\n{}", ctl.log()));
    assert_eq!(
        status,
        200,
        "POST {body}: {text}\ncontroller log:\n{}",
        ctl.log()
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["cleanup"]["after_ms"]
        .as_u64()
        .map(|ms| Instant::now() + Duration::from_millis(ms))
}

/// Builds `topologies/<stem>.toml` on Open vSwitch and walks through its golden files.
fn check(test: &str, stem: &str) {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ovs_fabric::available(test) {
        return;
    }
    // No traffic, so no host learned: on a dual-stack fabric the hosts must not autoconfigure
    // addresses from the controller's router advertisements either (their duplicate address
    // detection would teach the controller one, a delivery entry the golden file lacks).
    ovs_fabric::hosts_accept_router_advertisements(false);
    let path = root().join(format!("topologies/{stem}.toml"));
    let topology = Topology::load(Path::new(&path)).unwrap();
    let goldens = goldens(stem);
    assert!(goldens.len() >= 2, "{stem}: no .migrated golden file");
    let switches: BTreeSet<&String> = topology.switches.iter().map(|s| &s.name).collect();
    for g in &goldens {
        assert_eq!(
            g.tables.keys().collect::<BTreeSet<_>>(),
            switches,
            "{}: one table per switch",
            g.file
        );
    }
    let (ctl, f) = ovs_fabric::start_routed(&topology, &path);

    // At start. start_routed waited for each switch's last planned entry; give the tables a
    // moment more only if they are not complete yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match compare(&f, &goldens[0]) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                panic!("{e}\ncontroller log:\n{}", ctl.log())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    println!(
        "{stem}: {} switches match {}",
        switches.len(),
        goldens[0].file
    );
    let groups_file = format!("{stem}.groups.txt");
    if root().join("tests/golden").join(&groups_file).exists() {
        let g = load_golden(&groups_file);
        if let Err(e) = compare(&f, &g) {
            panic!("{e}\ncontroller log:\n{}", ctl.log());
        }
        println!(
            "{stem}: {} switches' groups match {groups_file}",
            switches.len()
        );
    }

    // Each later golden file extends the previous one's migrations; POST the new ones. The
    // API answers after the barriers, so the tables are complete right away, but for a last
    // phase that the answer announces (`cleanup`): that is waited for.
    let mut done: Vec<String> = goldens[0].migrations.clone();
    assert!(done.is_empty(), "{}: migrations at start", goldens[0].file);
    for g in &goldens[1..] {
        assert!(
            g.migrations.starts_with(&done),
            "{}: its migrations {:?} do not extend {:?}",
            g.file,
            g.migrations,
            done
        );
        let mut cleanup = None;
        for m in &g.migrations[done.len()..] {
            cleanup = post_migration(&ctl, m).or(cleanup);
        }
        done = g.migrations.clone();
        if let Some(at) = cleanup {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        // The last phase's barrier: within a few seconds of being due on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match compare(&f, g) {
                Ok(()) => break,
                Err(e) if cleanup.is_none() || Instant::now() >= deadline => {
                    panic!("{e}\ncontroller log:\n{}", ctl.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        println!(
            "{stem}: after {} the {} switches match {}",
            g.migrations.join(", "),
            switches.len(),
            g.file
        );
    }
    f.teardown().unwrap();
}

#[test]
fn paper_testbed_tables_are_the_golden_files() {
    check("paper_testbed_tables_are_the_golden_files", "paper-testbed");
}

#[test]
fn three_tier_tables_are_the_golden_files() {
    check("three_tier_tables_are_the_golden_files", "three-tier");
}

#[test]
fn dual_stack_tables_are_the_golden_files() {
    check("dual_stack_tables_are_the_golden_files", "dual-stack");
}

#[test]
fn ipv6_only_tables_are_the_golden_files() {
    check("ipv6_only_tables_are_the_golden_files", "ipv6-only");
}
