//! Route planning of a generated 500-rack x 40-host fabric (552 switches, 20,000 hosts):
//! parsing and validating the topology, building the link graph with all-pairs next hops, and
//! planning every switch's table; then the re-plan after a link failure (issue 16): the
//! routes over the links in use computed again with one aggregation switch's link down to a
//! rack, the switches whose routes changed found (those the router reconciles), and the aggregation switch's table and a core's groups planned again. Reports
//! the best and median of 5 runs and the heap it takes (a counting allocator wraps the system
//! one).
//! Run: `cargo bench --bench plan`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use servswitch::fabric::gen::GenSpec;
use servswitch::fabric::plan::Fabric;
use servswitch::fabric::topology::Topology;

struct Counting;
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        IN_USE.fetch_sub(l.size(), Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let spec = GenSpec::default();
    let text = spec.toml();
    let mut parse = Vec::new();
    let mut graph = Vec::new();
    let mut plan = Vec::new();
    let mut replan = Vec::new();
    let mut changed = 0;
    let mut topo_switches = 0;
    let mut mem = (0, 0, 0);
    for _ in 0..5 {
        let base = IN_USE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let t = Instant::now();
        let topo = Topology::parse(&text).expect("generated topology is valid");
        parse.push(t.elapsed());
        topo_switches = topo.switches.len();
        let t = Instant::now();
        let fabric = Fabric::new(&topo);
        graph.push(t.elapsed());
        let fabric_bytes = IN_USE.load(Relaxed) - base;
        let t = Instant::now();
        let hosts = fabric.configured_hosts();
        let tables = fabric.plan(&hosts);
        plan.push(t.elapsed());
        let flows: usize = tables.values().map(Vec::len).sum();
        mem = (fabric_bytes, PEAK.load(Relaxed) - base, flows);
        drop(tables);
        let down = std::collections::BTreeSet::from([("a1".to_string(), 3)]);
        let t = Instant::now();
        // As the router does: the switches whose routes the failure changes (those it
        // reconciles).
        changed = fabric.set_unused_changes(&down).len();
        assert!(changed > 0, "a link on the routes");
        let mine: Vec<_> = hosts.iter().filter(|h| h.switch == "a1").cloned().collect();
        let _ = std::hint::black_box(fabric.switch_plan("a1", &mine));
        let _ = std::hint::black_box(fabric.groups("c1"));
        replan.push(t.elapsed());
    }
    let stat = |v: &mut Vec<Duration>| {
        v.sort();
        format!(
            "best {:>8.1} ms  median {:>8.1} ms",
            v[0].as_secs_f64() * 1e3,
            v[v.len() / 2].as_secs_f64() * 1e3
        )
    };
    println!(
        "fabric: {} racks x {} hosts ({} bytes of TOML)",
        spec.racks,
        spec.hosts_per_rack,
        text.len()
    );
    println!("parse + validate topology   {}", stat(&mut parse));
    println!("link graph + next hops      {}", stat(&mut graph));
    println!(
        "plan every switch's table   {}  ({} flows)",
        stat(&mut plan),
        mem.2
    );
    println!(
        "re-plan after a link failure {}  (routes of every switch, which of {} changed: {changed}; a1's table, c1's groups)",
        stat(&mut replan),
        topo_switches
    );
    println!(
        "memory: topology + graph {:.1} MiB in use; peak while planning {:.1} MiB",
        mib(mem.0),
        mib(mem.1)
    );
}
