//! Golden files of the planned flow tables (issue 7): for every file in `topologies/`, the
//! tables `servswitch plan` prints at start (`tests/golden/<stem>.txt`) and after a migration
//! (`<stem>.migrated.txt`; for the paper's testbed also `<stem>.migrated2.txt`, cases 7 and 8).
//! The CLI binary itself is what is checked. On a mismatch the test fails with a diff (`-` only
//! in the golden file, `+` only in the current output); `UPDATE_GOLDEN=1 cargo test --test
//! golden` rewrites the files instead. tests/ovs_golden.rs compares the same files with the
//! tables live on Open vSwitch.
//!
//! A golden file is a header of `## ` lines (what produced it, how to regenerate it) followed
//! by exactly the output of `servswitch plan --topology topologies/<stem>.toml [--migrate ...]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use servswitch::fabric::topology::{PortRef, Tier, Topology};

/// One golden file.
struct Case {
    /// The file name under tests/golden/.
    file: &'static str,
    /// The file name under topologies/.
    topology: &'static str,
    /// `HOST=SWITCH:PORT`, applied in order.
    migrations: &'static [&'static str],
    /// What the tables show.
    about: &'static str,
    /// The planned groups (`plan --groups`) instead of the flow entries.
    groups: bool,
}

const CASES: &[Case] = &[
    Case {
        file: "paper-testbed.txt",
        topology: "paper-testbed.toml",
        migrations: &[],
        about: "The paper's testbed (Fig. 4) at start: every host at home.",
        groups: false,
    },
    Case {
        file: "paper-testbed.migrated.txt",
        topology: "paper-testbed.toml",
        migrations: &["vm=r2:3"],
        about: "The paper's migration: the VM (192.168.11.3) moves from its home switch r3 to \
                port 3 of the foreign switch r2.",
        groups: false,
    },
    Case {
        file: "paper-testbed.migrated2.txt",
        topology: "paper-testbed.toml",
        migrations: &["vm=r2:3", "vm2=r2:4", "vm2=r1:4"],
        about: "Cases 7 and 8 of Fig. 3: vm to r2:3, vm2 to r2:4 (two VMs of one home network \
                on one foreign network), then vm2 on to r1:4 (a VM that moved on).",
        groups: false,
    },
    Case {
        file: "three-tier.txt",
        topology: "three-tier.toml",
        migrations: &[],
        about: "The three-tier fabric at start: every host at home.",
        groups: false,
    },
    Case {
        file: "three-tier.migrated.txt",
        topology: "three-tier.toml",
        migrations: &["h1-0=t5:6"],
        about: "h1-0 moves from access switch t1 (block a1/a2) to access switch t5 of the other \
                block (a3/a4), on t5's lowest free port 6.",
        groups: false,
    },
    Case {
        file: "three-tier.groups.txt",
        topology: "three-tier.toml",
        migrations: &[],
        about: "The three-tier fabric's select groups: one per gateway switch reached over \
                several equal-cost next hops.",
        groups: true,
    },
    Case {
        file: "dual-stack.txt",
        topology: "dual-stack.toml",
        migrations: &[],
        about: "The paper's testbed in dual stack at start: IPv6 routes, neighbour discovery and \
                router solicitations to the controller, the home subnet's DHCP, every host at \
                home (v6only has IPv6 only).",
        groups: false,
    },
    Case {
        file: "dual-stack.migrated.txt",
        topology: "dual-stack.toml",
        migrations: &["vm=r2:3"],
        about: "The paper's migration in dual stack: the VM's IPv4 and IPv6 addresses by \
                Service Switching (a care-of address from each foreign prefix), its broadcasts \
                and DHCP to the controller at r2.",
        groups: false,
    },
    Case {
        file: "ipv6-only.txt",
        topology: "ipv6-only.toml",
        migrations: &[],
        about: "The paper's testbed with IPv6 only: IPv6 routes, neighbour discovery and router \
                solicitations to the controller, no IPv4 route; every host at home.",
        groups: false,
    },
    Case {
        file: "ipv6-only.migrated.txt",
        topology: "ipv6-only.toml",
        migrations: &["vm=r2:3"],
        about: "The paper's migration with IPv6 only: the VM's address by Service Switching, \
                with a care-of address from the foreign prefix.",
        groups: false,
    },
    Case {
        file: "two-switches.txt",
        topology: "two-switches.toml",
        migrations: &[],
        about: "The two-switch fabric (no .migrated file: it has no host to migrate).",
        groups: false,
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden")
}

/// `servswitch plan --topology topologies/T [--migrate M]...` (run in the crate root, so the
/// command is the one written in the header), its stdout; panics with stderr on failure.
fn plan(topology: &str, migrations: &[&str], switch: Option<&str>, groups: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_servswitch"));
    cmd.current_dir(root())
        .args(["plan", "--topology", &format!("topologies/{topology}")]);
    if groups {
        cmd.arg("--groups");
    }
    if let Some(s) = switch {
        cmd.args(["--switch", s]);
    }
    for m in migrations {
        cmd.args(["--migrate", m]);
    }
    let out = cmd.output().expect("running servswitch plan");
    assert!(
        out.status.success(),
        "servswitch plan --topology topologies/{topology} {migrations:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("plan output is UTF-8")
}

fn command_line(c: &Case) -> String {
    let mut s = format!("servswitch plan --topology topologies/{}", c.topology);
    for m in c.migrations {
        s.push_str(&format!(" --migrate {m}"));
    }
    if c.groups {
        s.push_str(" --groups");
    }
    s
}

/// The whole golden file as it should be now: header, then the CLI's output.
fn expected(c: &Case) -> String {
    let migrations = if c.migrations.is_empty() {
        "none".to_string()
    } else {
        c.migrations.join(" ")
    };
    let mut s = String::new();
    s.push_str(&format!(
        "## Golden {} of topologies/{}.\n## {}\n",
        if c.groups { "groups" } else { "flow tables" },
        c.topology,
        c.about
    ));
    s.push_str(&format!("## Migrations, in order: {migrations}\n"));
    s.push_str("## Regenerate: UPDATE_GOLDEN=1 cargo test --test golden\n");
    s.push_str(&format!(
        "## (the tables below are exactly the output of `{}`)\n",
        command_line(c)
    ));
    s.push_str(
        "## Checked by tests/golden.rs (the planner CLI) and tests/ovs_golden.rs (the live tables \
         on Open vSwitch, `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` and `dump-groups`).\n",
    );
    s.push_str(&plan(c.topology, c.migrations, None, c.groups));
    s
}

/// A unified-diff-like rendering of the lines that differ: `-` only in `old` (the golden
/// file), `+` only in `new` (the current output), two lines of context around each change.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence, suffix table.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line number, new line number, text)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut show = vec![false; ops.len()];
    for &k in &changed {
        for s in show
            .iter_mut()
            .take((k + CONTEXT + 1).min(ops.len()))
            .skip(k.saturating_sub(CONTEXT))
        {
            *s = true;
        }
    }
    let mut out = String::from("--- golden\n+++ current\n");
    let mut k = 0;
    while k < ops.len() {
        if !show[k] {
            k += 1;
            continue;
        }
        let start = k;
        while k < ops.len() && show[k] {
            k += 1;
        }
        let hunk = &ops[start..k];
        let olds = hunk.iter().filter(|o| o.0 != '+').count();
        let news = hunk.iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            hunk[0].1 + 1,
            olds,
            hunk[0].2 + 1,
            news
        ));
        for (tag, _, _, text) in hunk {
            out.push_str(&format!("{tag}{text}\n"));
        }
    }
    out
}

fn update_requested() -> bool {
    std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1")
}

/// Compares (or with UPDATE_GOLDEN=1 rewrites) the golden files of `topology`.
fn check_topology(topology: &str) {
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.topology == topology).collect();
    assert!(
        !cases.is_empty(),
        "no golden case for topologies/{topology}"
    );
    let mut failures = Vec::new();
    for c in cases {
        let want = expected(c);
        // Deterministic: a second run of the CLI prints the very same text.
        assert_eq!(
            want,
            expected(c),
            "{}: two runs of `{}` differ",
            c.file,
            command_line(c)
        );
        let path = golden_dir().join(c.file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            continue;
        }
        if update_requested() {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &want).unwrap();
            eprintln!("UPDATE_GOLDEN=1: wrote {}", path.display());
            continue;
        }
        let what = if have.is_empty() {
            "is missing or empty"
        } else {
            "differs from the current planner output"
        };
        failures.push(format!(
            "tests/golden/{} {what} (`{}`):\n{}",
            c.file,
            command_line(c),
            diff(&have, &want)
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended, regenerate with: UPDATE_GOLDEN=1 cargo test --test golden",
        failures.join("\n")
    );
}

#[test]
fn paper_testbed() {
    check_topology("paper-testbed.toml");
}

#[test]
fn three_tier() {
    check_topology("three-tier.toml");
}

#[test]
fn dual_stack() {
    check_topology("dual-stack.toml");
}

#[test]
fn ipv6_only() {
    check_topology("ipv6-only.toml");
}

#[test]
fn two_switches() {
    check_topology("two-switches.toml");
}

/// Every topology file has its golden files (one at start, one after a migration when it has
/// hosts), and tests/golden/ holds nothing else.
#[test]
fn every_topology_has_golden_files() {
    let mut topologies = BTreeSet::new();
    for e in std::fs::read_dir(root().join("topologies")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            topologies.insert(name);
        }
    }
    for t in &topologies {
        let topo = Topology::load(&root().join("topologies").join(t)).unwrap();
        let cases: Vec<&Case> = CASES.iter().filter(|c| c.topology == *t).collect();
        assert!(
            cases.iter().any(|c| c.migrations.is_empty()),
            "topologies/{t} has no golden case at start: add one to CASES in tests/golden.rs"
        );
        let migrated = cases.iter().any(|c| !c.migrations.is_empty());
        assert!(
            migrated || topo.hosts.is_empty(),
            "topologies/{t} has hosts but no golden case after a migration: add one to CASES \
             in tests/golden.rs"
        );
        for c in cases {
            let stem = t.trim_end_matches(".toml");
            assert!(
                c.file.starts_with(&format!("{stem}.")) && c.file.ends_with(".txt"),
                "{} should be named {stem}[.migrated*].txt",
                c.file
            );
        }
    }
    for c in CASES {
        assert!(
            topologies.contains(c.topology),
            "{}: topologies/{} does not exist",
            c.file,
            c.topology
        );
    }
    let known: BTreeSet<&str> = CASES.iter().map(|c| c.file).collect();
    let dir = golden_dir();
    if dir.exists() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                known.contains(name.as_str()),
                "tests/golden/{name} belongs to no case in tests/golden.rs (stale? delete it)"
            );
        }
    }
}

/// `--switch NAME` prints exactly that switch's section of the full output, without its
/// header (what tests compare with one bridge's `ovs-ofctl dump-flows`).
#[test]
fn switch_flag_prints_the_section() {
    for c in CASES {
        let full = plan(c.topology, c.migrations, None, c.groups);
        let mut sections: BTreeMap<String, String> = BTreeMap::new();
        let mut current = None;
        for line in full.lines() {
            if let Some(h) = line.strip_prefix("# ") {
                let name = h.split_whitespace().next().unwrap().to_string();
                sections.insert(name.clone(), String::new());
                current = Some(name);
            } else {
                let name = current.as_ref().expect("a table line before any header");
                let s = sections.get_mut(name).unwrap();
                s.push_str(line);
                s.push('\n');
            }
        }
        let topo = Topology::load(&root().join("topologies").join(c.topology)).unwrap();
        assert_eq!(
            sections.keys().collect::<BTreeSet<_>>(),
            topo.switches
                .iter()
                .map(|s| &s.name)
                .collect::<BTreeSet<_>>(),
            "{}: one header per switch",
            c.file
        );
        for (name, text) in &sections {
            assert_eq!(
                &plan(c.topology, c.migrations, Some(name), c.groups),
                text,
                "{}: --switch {name}",
                c.file
            );
        }
    }
}

/// `--migrate` is repeatable and applied in order: the last move of a host wins, and the same
/// moves in another order give other tables.
#[test]
fn migrate_flag_is_applied_in_order() {
    let t = "paper-testbed.toml";
    let forward = plan(t, &["vm=r2:3", "vm2=r2:4", "vm2=r1:4"], None, false);
    let reversed = plan(t, &["vm=r2:3", "vm2=r1:4", "vm2=r2:4"], None, false);
    assert_ne!(forward, reversed, "--migrate order must matter");
    assert_eq!(
        reversed,
        plan(t, &["vm=r2:3", "vm2=r2:4"], None, false),
        "vm2's last move (r2:4) wins"
    );
    assert_ne!(forward, plan(t, &["vm=r2:3"], None, false));
    assert_ne!(
        plan(t, &["vm=r2:3"], None, false),
        plan(t, &[], None, false)
    );
}

/// The neighbours of `switch` of the given tier.
fn neighbours(topo: &Topology, switch: &str, tier: Tier) -> BTreeSet<String> {
    let tiers: BTreeMap<&str, Tier> = topo
        .switches
        .iter()
        .map(|s| (s.name.as_str(), s.tier))
        .collect();
    topo.links
        .iter()
        .filter_map(|l| {
            if l.a.switch == switch {
                Some(&l.b.switch)
            } else if l.b.switch == switch {
                Some(&l.a.switch)
            } else {
                None
            }
        })
        .filter(|s| tiers.get(s.as_str()) == Some(&tier))
        .cloned()
        .collect()
}

/// Outside the paper's testbed, each migration follows the rule of issue 7: a host of an
/// access switch moves to the lowest free port (used by no link and no host) of another access
/// switch, in another aggregation block when the fabric has more than one.
#[test]
fn chosen_migrations_follow_the_rule() {
    for c in CASES
        .iter()
        .filter(|c| c.topology != "paper-testbed.toml" && !c.migrations.is_empty())
    {
        let topo = Topology::load(&root().join("topologies").join(c.topology)).unwrap();
        let tier = |s: &str| topo.switches.iter().find(|x| x.name == s).unwrap().tier;
        for m in c.migrations {
            let (host, to) = m.split_once('=').unwrap();
            let to: PortRef = to.parse().unwrap();
            let h = topo.hosts.iter().find(|h| h.name == host).unwrap();
            assert_eq!(tier(&h.at.switch), Tier::Access, "{}: {m}", c.file);
            assert_eq!(tier(&to.switch), Tier::Access, "{}: {m}", c.file);
            assert_ne!(h.at.switch, to.switch, "{}: {m}", c.file);
            let used: BTreeSet<u32> = topo
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .chain(topo.hosts.iter().map(|h| &h.at))
                .filter(|p| p.switch == to.switch)
                .map(|p| p.port)
                .collect();
            let lowest_free = (1..).find(|p| !used.contains(p)).unwrap();
            assert_eq!(to.port, lowest_free, "{}: {m}", c.file);
            let from_block = neighbours(&topo, &h.at.switch, Tier::Aggregation);
            let to_block = neighbours(&topo, &to.switch, Tier::Aggregation);
            let other_block_exists = topo.switches.iter().any(|s| {
                s.tier == Tier::Access
                    && neighbours(&topo, &s.name, Tier::Aggregation).is_disjoint(&from_block)
            });
            if other_block_exists {
                assert!(
                    to_block.is_disjoint(&from_block),
                    "{}: {m} stays in block {from_block:?}",
                    c.file
                );
            }
        }
    }
}

/// The header names the migrations (tests/ovs_golden.rs reads them from there).
#[test]
fn headers_name_the_migrations() {
    for c in CASES {
        let text = expected(c);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("## Migrations, in order: "))
            .unwrap();
        let parsed: Vec<&str> = if line == "none" {
            Vec::new()
        } else {
            line.split_whitespace().collect()
        };
        assert_eq!(parsed, c.migrations, "{}", c.file);
    }
}
