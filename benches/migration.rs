//! Migrations (issue 5): how fast a move converges, how many moves per second the controller
//! installs, and how many flow entries a migrated VM costs each switch.
//!
//! ```sh
//! cargo bench --bench migration
//! MIGRATIONS=500 RARP_MIGRATIONS=100 SECONDS=2 cargo bench --bench migration   # shorter
//! RACKS=100 HOSTS=20 WINDOW=16 cargo bench --bench migration                   # smaller fabric
//! PARTS=2 cargo bench --bench migration                                          # only part 2
//! ```
//!
//! 1. **Convergence on the paper testbed** (`topologies/paper-testbed.toml`, emulated fabric
//!    [`servswitch::emu::fabric::EmuFabric`] over real TCP, controller in this process): host
//!    `vm` moves between r2:3 and its home r3:3 `MIGRATIONS` times (default 2,000).
//!    a. `router.migrate` called directly (the emulated host's port is moved first, without an
//!    announcement): the report's `elapsed_us` (call to last barrier reply) and the wall time
//!    of the call.
//!    b. from outside, `RARP_MIGRATIONS` times (default 1,000): the emulated host moves and
//!    broadcasts QEMU's RARP announcement from its new port (`EmuFabric::migrate_host`);
//!    timed until `router.host_states()` shows the new location and the target switch's
//!    table holds the VM's delivery entry (care-of delivery when away, home delivery when
//!    back), and until every switch's table equals the controller's plan.
//! 2. **Migrations per second** on a generated fabric (`RACKS` x `HOSTS`, default 500 x 20 =
//!    10,000 VMs; 2 core, 50 aggregation, 500 access switches). One emulated switch per fabric
//!    switch runs in a child process (this binary re-executed with `MIGRATION_BENCH_FARM`);
//!    they answer barriers and apply flow mods. Each gets its planned table when it connects,
//!    as from `servswitch run` (`PIPELINE=0`: the router's switch-up install is skipped and
//!    the tables hold only migration entries).
//!    `WINDOW` migrations (default 64) are in flight, each of a different VM to a free port of
//!    a rack in another block and back, for `SECONDS` (default 5). Reported: migrations/s,
//!    flow mods per migration, latency under load, CPU per migration of the controller and
//!    of the switch farm, and the planner alone.
//! 3. **Flow entries per migrated VM** by switch role, from the pure planner
//!    (`servswitch::mobility::flows`), on the paper testbed and `topologies/three-tier.toml`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ofp13::{
    Action, Body, FlowStats, FlowStatsRequest, Instruction, Message, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody, Oxm,
};
use servswitch::app::driver::Driver;
use servswitch::app::planner::Planner;
use servswitch::app::router::Router;
use servswitch::emu::fabric::EmuFabric;
use servswitch::emu::switch::{self as emu, EmuConfig, SwitchSpec};
use servswitch::fabric::gen::GenSpec;
use servswitch::fabric::plan::{Fabric, Flow, COOKIE_MASK_KIND, COOKIE_REDIRECT, TABLE_ROUTE};
use servswitch::fabric::topology::{PortRef, Tier, Topology};
use servswitch::mobility::flows::{
    by_switch, default_cover, diff, vm_flows, vms_at_home, Away, Vm,
};
use servswitch::switch::runtime::{
    Answers, App, Controller, Registry, RuntimeConfig, SwitchHandle,
};

const FARM: &str = "MIGRATION_BENCH_FARM";
const PAPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/paper-testbed.toml");
const THREE_TIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/three-tier.toml");
/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux x86_64).
const TICKS: f64 = 100.0;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn gen_spec() -> GenSpec {
    GenSpec {
        racks: env("RACKS", 500) as u32,
        hosts_per_rack: env("HOSTS", 20) as u32,
        ..GenSpec::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    if let Ok(addr) = std::env::var(FARM) {
        farm(addr.parse().expect("farm address"));
        return;
    }
    let t0 = Instant::now();
    let rt = runtime();
    let parts = std::env::var("PARTS").unwrap_or_else(|_| "123".into());
    if parts.contains('1') {
        rt.block_on(paper(
            env("MIGRATIONS", 2000) as usize,
            env("RARP_MIGRATIONS", 1000) as usize,
        ));
    }
    if parts.contains('2') {
        rate(&rt);
    }
    if parts.contains('3') {
        roles("paper testbed", PAPER, "vm", "r2:3");
        roles("three-tier", THREE_TIER, "h1-0", "t5:40");
    }
    println!("\nwhole bench: {:.1} s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// p50, p99 and max of a sample, in its unit.
fn summary(v: &mut [u64]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {} µs, p99 {} µs, max {} µs (n = {})",
        p(0.5),
        p(0.99),
        v[v.len() - 1],
        v.len()
    )
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Whether two entries are the same (what a switch holds versus what was planned).
fn same(s: &FlowStats, f: &Flow) -> bool {
    s.table_id == f.table_id
        && s.priority == f.priority
        && s.cookie == f.cookie
        && s.match_ == f.match_
        && s.instructions == f.instructions
}

/// The VM's entry in `switch`'s route table that outputs to its port: the care-of delivery
/// when it is away, its home delivery when it is home.
fn delivery(fabric: &Fabric, vm: &Vm) -> Option<Flow> {
    vm_flows(fabric, vm)
        .into_iter()
        .filter(|(s, _)| *s == vm.switch)
        .map(|(_, f)| f)
        .find(|f| {
            f.table_id == TABLE_ROUTE
                && f.instructions.iter().any(|i| {
                    matches!(i, Instruction::ApplyActions { actions }
                        if actions.contains(&Action::output(vm.port)))
                })
        })
}

/// The VM with this MAC as the router sees it now.
fn vm_now(router: &Router, mac: ofp13::MacAddr) -> Option<Vm> {
    let h = router.host_states().into_iter().find(|h| h.mac == mac)?;
    let (switch, port) = h.location.clone();
    let away = (!h.care_of.is_empty() || !h.care_of6.is_empty()).then(|| Away {
        care_of: h.care_of.clone(),
        care_of6: h.care_of6.clone(),
        cover: default_cover(&router.fabric, &switch, &h.ips, &h.ips6),
        ..Default::default()
    });
    Some(Vm {
        mac,
        ips: h.ips,
        ips6: Vec::new(),
        switch,
        port,
        away,
    })
}

/// Whether the emulated switch's table is exactly the controller's plan for it.
fn table_is_plan(fab: &EmuFabric, router: &Router, switch: &str) -> bool {
    let have = fab.flows(switch);
    let want = router.switch_plan(switch);
    have.len() == want.len() && want.iter().all(|f| have.iter().any(|s| same(s, f)))
}

/// How long an update's last phase waits (the router's default).
fn router_drain() -> Duration {
    servswitch::mobility::update::DRAIN
}

/// Whether a switch holds every entry the router plans for it (a migration's drained last
/// phase, which only deletes entries of care-of addresses no longer used, may be to come).
fn plan_in_place(fab: &EmuFabric, router: &Router, switch: &str) -> bool {
    let have = fab.flows(switch);
    router
        .switch_plan(switch)
        .iter()
        .all(|f| have.iter().any(|s| same(s, f)))
}

/// User plus system CPU seconds of a process, from /proc/<pid>/stat.
fn cpu_seconds(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is f[0]; utime and stime are fields 14 and 15.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / TICKS
}

// ---------------------------------------------------------------------------------------------
// 1. Convergence on the paper testbed

async fn paper(n: usize, n_rarp: usize) {
    println!("1. migration convergence, paper testbed, emulated fabric (controller, switches and hosts in this process, 2 tokio workers)");
    let topo = Topology::load(Path::new(PAPER)).expect("paper testbed");
    let (router, ctl) =
        Router::new(Fabric::new(&topo)).serve_with(topo.clone(), RuntimeConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let c = ctl.clone();
    let serve = tokio::spawn(async move { c.serve(listener, None).await });
    let fab = EmuFabric::build(&topo, addr)
        .await
        .expect("emulated fabric");
    fab.wait_connected(Duration::from_secs(10))
        .await
        .expect("switches up");
    let names: Vec<String> = topo.switches.iter().map(|s| s.name.clone()).collect();
    let installed = fab
        .wait_until(Duration::from_secs(10), |f| {
            names.iter().all(|s| table_is_plan(f, &router, s))
        })
        .await;
    assert!(installed, "the planned tables were not installed");
    let mac = router.find_host("vm").expect("host vm");
    let home = PortRef {
        switch: "r3".into(),
        port: 3,
    };
    let away = PortRef {
        switch: "r2".into(),
        port: 3,
    };

    // a. router.migrate directly.
    let (mut rep_out, mut rep_back, mut wall) = (Vec::new(), Vec::new(), Vec::new());
    let mut mods = BTreeMap::new();
    let mut delivered_ok = 0usize;
    for i in 0..n {
        let to = if i % 2 == 0 { &away } else { &home };
        fab.move_host("vm", &to.switch, to.port).expect("move host");
        let t = Instant::now();
        let r = router.migrate("vm", to).await.expect("migration");
        wall.push(micros(t.elapsed()));
        assert!(
            r.pending.is_empty() && r.flow_mods > 0,
            "migration {i}: {r:?}"
        );
        if i % 2 == 0 {
            rep_out.push(r.elapsed_us);
        } else {
            rep_back.push(r.elapsed_us);
        }
        *mods
            .entry((r.to.clone(), r.flow_mods, r.switches.len()))
            .or_insert(0usize) += 1;
        // Every 100th move: the target's table holds the delivery entry right after the call.
        if i % 100 == 0 {
            let vm = vm_now(&router, mac).expect("vm");
            let d = delivery(&router.fabric, &vm).expect("delivery entry planned");
            if fab.flows(&to.switch).iter().any(|s| same(s, &d)) {
                delivered_ok += 1;
            }
        }
    }
    // The last move's last phase follows its drain.
    let all_plan = fab
        .wait_until(Duration::from_secs(5), |f| {
            names.iter().all(|s| table_is_plan(f, &router, s))
        })
        .await;
    let mut both: Vec<u64> = rep_out.iter().chain(&rep_back).copied().collect();
    println!("  a. {n} calls of router.migrate(\"vm\", r2:3 / r3:3), one after the other:");
    println!(
        "     report elapsed_us, away (r3 -> r2): {}",
        summary(&mut rep_out)
    );
    println!(
        "     report elapsed_us, home (r2 -> r3): {}",
        summary(&mut rep_back)
    );
    println!(
        "     report elapsed_us, both:            {}",
        summary(&mut both)
    );
    println!(
        "     wall time of the call, both:        {}",
        summary(&mut wall)
    );
    for ((to, m, s), k) in &mods {
        println!("     to {to}: {m} flow mods on {s} switches ({k} times)");
    }
    println!(
        "     checks: delivery entry in the target's table when the call returned in {delivered_ok} of {} samples; \
         once the last move's drained last phase is in, every table equals the plan: {all_plan}",
        n.div_ceil(100)
    );

    // b. From outside: the host moves and announces itself with QEMU's RARP.
    let (mut seen, mut converged) = (Vec::new(), Vec::new());
    let mut timeouts = 0usize;
    let done = |r: &Router| -> u64 {
        r.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix("servswitch_migrations_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for i in 0..n_rarp {
        let to = if i % 2 == 0 { &away } else { &home };
        let before = done(&router);
        let t = Instant::now();
        fab.migrate_host("vm", &to.switch, to.port)
            .expect("migrate host");
        let ok = fab
            .wait_until(Duration::from_secs(5), |f| {
                let Some(vm) = vm_now(&router, mac) else {
                    return false;
                };
                if (vm.switch.as_str(), vm.port) != (to.switch.as_str(), to.port) {
                    return false;
                }
                delivery(&router.fabric, &vm)
                    .is_some_and(|d| f.flows(&to.switch).iter().any(|s| same(s, &d)))
            })
            .await;
        let t_seen = t.elapsed();
        let ok2 = ok
            && fab
                .wait_until(Duration::from_secs(5), |f| {
                    names.iter().all(|s| plan_in_place(f, &router, s))
                })
                .await;
        let t_conv = t.elapsed();
        if ok && ok2 {
            seen.push(micros(t_seen));
            converged.push(micros(t_conv));
        } else {
            timeouts += 1;
        }
        // The next announcement must not arrive while this migration is still being finished
        // (it would be ignored as a repeat): wait for the router to count it.
        let t_wait = Instant::now();
        while done(&router) == before && t_wait.elapsed() < Duration::from_secs(5) {
            tokio::task::yield_now().await;
        }
    }
    println!(
        "  b. {n_rarp} migrations from outside: EmuFabric::migrate_host (port moves, PORT_STATUS, QEMU RARP from the new port -> packet-in -> migration):"
    );
    println!(
        "     until host_states() shows the new location and the target holds the delivery entry: {}",
        summary(&mut seen)
    );
    println!(
        "     until every switch holds every planned entry (the drained last phase follows): {}",
        summary(&mut converged)
    );
    println!("     timed out (5 s): {timeouts}");
    fab.shutdown().await;
    ctl.shutdown(Duration::from_secs(2)).await;
    let _ = serve.await;
}

// ---------------------------------------------------------------------------------------------
// 2. Migrations per second on a generated fabric

/// The router without its switch-up table install: the emulated switches start empty.
struct NoPipeline(Driver);

impl App for NoPipeline {
    fn message(&self, sw: &SwitchHandle, msg: &Message, read: Instant, out: &mut Answers) {
        self.0.message(sw, msg, read, out)
    }
}

/// Where VM `h` of rack `r` (from 1) goes: the rack half the fabric away (another block), a
/// port no host uses.
fn away_of(spec: &GenSpec, r: u32, h: u32) -> PortRef {
    PortRef {
        switch: format!("t{}", (r - 1 + spec.racks / 2) % spec.racks + 1),
        port: 1000 + h,
    }
}

struct Mover {
    mac: ofp13::MacAddr,
    home: PortRef,
    away: PortRef,
}

#[derive(Default)]
struct Counters {
    migrations: AtomicU64,
    flow_mods: AtomicU64,
    switches: AtomicU64,
    errors: AtomicU64,
}

fn rate(rt: &tokio::runtime::Runtime) {
    let spec = gen_spec();
    let window = env("WINDOW", 64) as usize;
    let seconds = env("SECONDS", 5);
    let pipeline = env("PIPELINE", 1) != 0;
    let t = Instant::now();
    let topo = Topology::parse(&spec.toml()).expect("generated topology");
    let t_parse = t.elapsed();
    let t = Instant::now();
    let fabric = Fabric::new(&topo);
    let t_fabric = t.elapsed();
    println!(
        "\n2. migrations per second: generated fabric, {} racks x {} hosts = {} VMs, {} switches \
         (parse {:.0} ms, graph {:.0} ms)",
        spec.racks,
        spec.hosts_per_rack,
        topo.hosts.len(),
        topo.switches.len(),
        t_parse.as_secs_f64() * 1e3,
        t_fabric.as_secs_f64() * 1e3
    );
    let movers: Vec<Mover> = topo
        .hosts
        .iter()
        .map(|h| {
            let r: u32 = h.at.switch[1..].parse().expect("rack number");
            let i: u32 = h
                .name
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .expect("host index");
            Mover {
                mac: h.mac,
                home: h.at.clone(),
                away: away_of(&spec, r, i),
            }
        })
        .collect();

    // Planning alone.
    let vms: Vec<Vm> = vms_at_home(&fabric.configured_hosts());
    let by_mac: BTreeMap<ofp13::MacAddr, &Mover> = movers.iter().map(|m| (m.mac, m)).collect();
    let plan_n = env("PLAN_ITERS", 4000) as usize;
    let moved = |vm: &Vm, cover: bool| -> Vm {
        let to = &by_mac[&vm.mac].away;
        let prefix = fabric
            .subnets_of(&to.switch)
            .find_map(|s| s.prefix)
            .expect("target subnet with IPv4");
        let co = Ipv4Addr::from(u32::from(prefix.addr) | 200);
        Vm {
            switch: to.switch.clone(),
            port: to.port,
            away: Some(Away {
                care_of: vec![co],
                cover: if cover {
                    default_cover(&fabric, &to.switch, &vm.ips, &vm.ips6)
                } else {
                    [to.switch.clone(), vm.switch.clone()].into()
                },
                ..Default::default()
            }),
            ..vm.clone()
        }
    };
    let t = Instant::now();
    for k in 0..plan_n {
        let vm = &vms[k % vms.len()];
        black_box(default_cover(
            &fabric,
            &by_mac[&vm.mac].away.switch,
            &vm.ips,
            &vm.ips6,
        ));
    }
    let cover_us = t.elapsed().as_secs_f64() * 1e6 / plan_n as f64;
    let aways: Vec<Vm> = (0..plan_n.min(vms.len()))
        .map(|k| moved(&vms[k], false))
        .collect();
    let t = Instant::now();
    let mut n_mods = 0usize;
    for k in 0..plan_n {
        let (home, away) = (&vms[k % aways.len()], &aways[k % aways.len()]);
        let (a, b) = if k % 2 == 0 {
            (home, away)
        } else {
            (away, home)
        };
        let d = diff(
            &by_switch(vm_flows(&fabric, a)),
            &by_switch(vm_flows(&fabric, b)),
        );
        n_mods += d.values().map(|s| s.len()).sum::<usize>();
    }
    let diff_us = t.elapsed().as_secs_f64() * 1e6 / plan_n as f64;
    let mut plan_router = Planner::new(Fabric::new(&topo));
    let t = Instant::now();
    for k in 0..plan_n {
        let h = &topo.hosts[k % topo.hosts.len()];
        black_box(plan_router.find_host(&h.name));
    }
    let find_us = t.elapsed().as_secs_f64() * 1e6 / plan_n as f64;
    let t = Instant::now();
    for k in 0..plan_n / 2 {
        let h = &topo.hosts[k % topo.hosts.len()];
        let m = &by_mac[&h.mac];
        plan_router.plan_move(&h.name, &m.away).expect("plan move");
        plan_router
            .plan_move(&h.name, &m.home)
            .expect("plan move back");
    }
    let plan_move_us = t.elapsed().as_secs_f64() * 1e6 / (plan_n / 2 * 2).max(1) as f64;
    println!("  planning alone, one core, per migration ({plan_n} iterations):");
    println!(
        "     vm_flows before + after, by_switch, diff (cover given):  {diff_us:.1} µs ({:.1} flow mods each)",
        n_mods as f64 / plan_n as f64
    );
    println!("     default_cover (every switch x every subnet):            {cover_us:.1} µs");
    println!("     find_host by name (what router.migrate starts with):     {find_us:.1} µs");
    println!(
        "     migrate::plan_move = the whole decision, no lock, no I/O: {plan_move_us:.1} µs \
         (-> at most {:.0} migrations/s on one core)",
        1e6 / plan_move_us
    );
    let t = Instant::now();
    let full_table = plan_router.switch_plan("t1").len();
    let t_table = t.elapsed();
    println!(
        "     one switch's whole table with {} hosts known (Router::switch_plan, run at every switch connection): \
         {:.0} ms ({full_table} entries)",
        topo.hosts.len(),
        t_table.as_secs_f64() * 1e3
    );
    drop(plan_router);

    // The live run.
    let registry = Registry::default();
    // The farm's switches are not wired to each other: LLDP would hear none of the links,
    // take them all out of use a few seconds after the tables are reconciled, and re-plan
    // and re-reconcile the fabric, during the measurement if it had begun by then (runs of
    // 8-200 migrations/s, found 2026-12-08). The links are trusted as declared, as with
    // `servswitch run --lldp off`.
    let router = Arc::new(
        Router::new(fabric)
            .with_lldp(false)
            .with_switches(registry.clone()),
    );
    let app: Arc<dyn App> = if pipeline {
        router.app()
    } else {
        Arc::new(NoPipeline(Driver(router.clone())))
    };
    let ctl = Controller::with_registry(topo.clone(), RuntimeConfig::default(), app, registry);
    let (addr, serve) = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_reuseaddr(true).expect("SO_REUSEADDR");
        sock.bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let l = sock.listen(4096).expect("listen");
        let addr = l.local_addr().expect("local_addr");
        let c = Arc::clone(&ctl);
        (addr, tokio::spawn(async move { c.serve(l, None).await }))
    });
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .env(FARM, addr.to_string())
        .env("RACKS", spec.racks.to_string())
        .env("HOSTS", spec.hosts_per_rack.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the switch farm");
    let farm_pid = child.id().to_string();
    let to_farm = child.stdin.take().expect("farm stdin");
    let mut from_farm = BufReader::new(child.stdout.take().expect("farm stdout"));
    let mut line = String::new();
    from_farm.read_line(&mut line).expect("reading the farm");
    let n_sw = topo.switches.len();
    let t = Instant::now();
    let up = rt.block_on(async {
        while ctl.registry.len() < n_sw {
            if t.elapsed() > Duration::from_secs(110) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Whatever was sent at connection (the planned tables with PIPELINE=1) is applied.
        for h in ctl.registry.all() {
            let _ = h.barrier().await;
        }
        // And every switch's table reconciled: reconciliation reads each table and sends
        // the difference after the switch is up, and a migration waits for the switches it
        // needs to be ready.
        while pipeline && router.reconciled_switches() < n_sw {
            if t.elapsed() > Duration::from_secs(110) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    });
    println!(
        "  {n_sw} emulated switches in a child process ({}); {} in the registry, every \
         switch past a barrier{} {:.2} s later; tables: {}",
        line.trim(),
        ctl.registry.len(),
        if pipeline {
            format!(" and {} reconciled", router.reconciled_switches())
        } else {
            String::new()
        },
        t.elapsed().as_secs_f64(),
        if pipeline {
            "each switch's planned table, installed at connection"
        } else {
            "empty but for migration entries (PIPELINE=0)"
        }
    );
    if !up {
        println!("  not every switch registered and reconciled within 110 s: skipping the run");
        drop(to_farm);
        let _ = child.wait();
        return;
    }

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let movers = Arc::new(movers);
    let (elapsed, lat, cpu_ctl, cpu_farm, counts) = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..window {
            let (router, counters, stop, measuring, first_error, movers) = (
                router.clone(),
                counters.clone(),
                stop.clone(),
                measuring.clone(),
                first_error.clone(),
                movers.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mine: Vec<usize> = (w..movers.len()).step_by(window).collect();
                'run: loop {
                    for &i in &mine {
                        let m = &movers[i];
                        for to in [&m.away, &m.home] {
                            match router.migrate_mac(m.mac, to).await {
                                Ok(r) if r.pending.is_empty() && r.flow_mods > 0 => {
                                    if measuring.load(Relaxed) {
                                        lat.push(r.elapsed_us);
                                    }
                                    counters.migrations.fetch_add(1, Relaxed);
                                    counters.flow_mods.fetch_add(r.flow_mods as u64, Relaxed);
                                    counters
                                        .switches
                                        .fetch_add(r.switches.len() as u64, Relaxed);
                                }
                                Ok(r) => {
                                    counters.errors.fetch_add(1, Relaxed);
                                    first_error
                                        .lock()
                                        .unwrap()
                                        .get_or_insert_with(|| format!("{r:?}"));
                                }
                                Err(e) => {
                                    counters.errors.fetch_add(1, Relaxed);
                                    first_error
                                        .lock()
                                        .unwrap()
                                        .get_or_insert_with(|| e.to_string());
                                }
                            }
                        }
                        if stop.load(Relaxed) {
                            break 'run;
                        }
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let snap = |c: &Counters| {
            [
                c.migrations.load(Relaxed),
                c.flow_mods.load(Relaxed),
                c.switches.load(Relaxed),
                c.errors.load(Relaxed),
            ]
        };
        measuring.store(true, Relaxed);
        let (c0, f0, s0) = (cpu_seconds("self"), cpu_seconds(&farm_pid), snap(&counters));
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let el = t.elapsed();
        let (c1, f1, s1) = (cpu_seconds("self"), cpu_seconds(&farm_pid), snap(&counters));
        measuring.store(false, Relaxed);
        stop.store(true, Relaxed);
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("worker"));
        }
        let counts: Vec<u64> = s1.iter().zip(s0).map(|(a, b)| a - b).collect();
        (el, lat, c1 - c0, f1 - f0, counts)
    });
    let mut lat = lat;
    let migs = counts[0].max(1) as f64;
    println!(
        "  {window} migrations in flight for {:.1} s: {} migrations, {:.0} migrations/s; \
         {:.1} flow mods and {:.1} switches (barriers) per migration; {} refused or failed (first: {})",
        elapsed.as_secs_f64(),
        counts[0],
        counts[0] as f64 / elapsed.as_secs_f64(),
        counts[1] as f64 / migs,
        counts[2] as f64 / migs,
        counts[3],
        first_error.lock().unwrap().clone().unwrap_or_else(|| "none".into())
    );
    println!("     elapsed_us under load: {}", summary(&mut lat));
    println!(
        "     CPU: controller process {:.2} s ({:.0} µs per migration), switch farm {:.2} s ({:.0} µs per migration), \
         {:.2} of 2 cores busy",
        cpu_ctl,
        cpu_ctl * 1e6 / migs,
        cpu_farm,
        cpu_farm * 1e6 / migs,
        (cpu_ctl + cpu_farm) / elapsed.as_secs_f64()
    );

    // Check one migration against the switches' tables.
    let check = rt.block_on(verify(&router, &ctl, &movers[0]));
    println!(
        "     check (VM {} away and back, tables read back with flow stats): {check}",
        movers[0].mac
    );

    drop(to_farm); // the farm exits on EOF
    let _ = child.wait();
    rt.block_on(async {
        ctl.shutdown(Duration::from_secs(2)).await;
        let _ = serve.await;
    });
}

async fn flow_stats(h: &SwitchHandle) -> Vec<FlowStats> {
    let req = Body::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Flow(FlowStatsRequest::all()),
    });
    let mut out = Vec::new();
    for m in h.request(req).await.unwrap_or_default() {
        if let Body::MultipartReply(r) = m.body {
            if let MultipartReplyBody::Flow(v) = r.body {
                out.extend(v);
            }
        }
    }
    out
}

/// Moves one VM away and back and reads the target's and home's tables back.
async fn verify(router: &Arc<Router>, ctl: &Controller, m: &Mover) -> String {
    let handle = |name: &str| {
        let d = router
            .fabric
            .topology
            .switches
            .iter()
            .find(|s| s.name == name)?
            .dpid
            .0;
        ctl.registry.get(d)
    };
    let r = match router.migrate_mac(m.mac, &m.away).await {
        Ok(r) => r,
        Err(e) => return format!("FAILED: {e}"),
    };
    let ips: Vec<Ipv4Addr> = router
        .fabric
        .topology
        .hosts
        .iter()
        .find(|h| h.mac == m.mac)
        .map(|h| h.addresses())
        .unwrap_or_default();
    let care_of: Vec<Ipv4Addr> = r.care_of.iter().filter_map(|c| c.parse().ok()).collect();
    let after = Vm {
        mac: m.mac,
        ips: ips.clone(),
        ips6: Vec::new(),
        switch: m.away.switch.clone(),
        port: m.away.port,
        away: Some(Away {
            care_of,
            cover: default_cover(&router.fabric, &m.away.switch, &ips, &[]),
            ..Default::default()
        }),
    };
    let want = by_switch(vm_flows(&router.fabric, &after));
    let mut missing = 0;
    let mut checked = 0;
    for (sw, flows) in &want {
        let Some(h) = handle(sw) else { continue };
        let have = flow_stats(&h).await;
        for f in flows {
            checked += 1;
            if !have.iter().any(|s| same(s, f)) {
                missing += 1;
            }
        }
    }
    if let Err(e) = router.migrate_mac(m.mac, &m.home).await {
        return format!("FAILED going back: {e}");
    }
    // The return's last phase (the care-of delivery) follows a drain.
    tokio::time::sleep(router_drain() + Duration::from_millis(500)).await;
    let ip = ips.first().map_or(0, |ip| u32::from(*ip));
    let left = match handle(&m.away.switch) {
        Some(h) => flow_stats(&h)
            .await
            .iter()
            .filter(|s| s.cookie & 0xffff_ffff == u64::from(ip))
            .count(),
        None => usize::MAX,
    };
    format!(
        "{} of {checked} planned entries present on {} switches while away; {left} of its entries left on {} after the return",
        checked - missing,
        want.len(),
        m.away.switch
    )
}

/// The switch farm: the child process. Connects one emulated switch per switch of the
/// generated fabric (ports: its link ends and host ports), prints when all are up, exits when
/// its stdin closes.
fn farm(addr: SocketAddr) {
    let spec = gen_spec();
    let topo = Topology::parse(&spec.toml()).expect("generated topology");
    let rt = runtime();
    let switches = rt.block_on(async {
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for s in &topo.switches {
            let mut ports: Vec<u32> = topo
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .chain(topo.hosts.iter().map(|h| &h.at))
                .filter(|p| p.switch == s.name)
                .map(|p| p.port)
                .collect();
            ports.sort_unstable();
            let dpid = s.dpid.0;
            let mut spec = SwitchSpec::new(dpid);
            spec.ports = ports.iter().map(|&p| emu::port(dpid, p)).collect();
            set.spawn(async move {
                let sw = emu::connect(EmuConfig::new(addr, spec)).await?;
                sw.wait_until_up()
                    .await
                    .map_err(|c| std::io::Error::other(c.reason))?;
                Ok::<_, std::io::Error>(sw)
            });
        }
        let mut up = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(sw)) => up.push(sw),
                Ok(Err(e)) => {
                    eprintln!("switch farm: a switch failed: {e}");
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("switch farm: a task failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        println!(
            "all {} up on the switch side after {:.0} ms",
            up.len(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        let _ = std::io::stdout().flush();
        up
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    rt.block_on(async move { drop(switches) });
}

// ---------------------------------------------------------------------------------------------
// 3. Flow entries per migrated VM by switch role

/// What an entry is for: a copy to the controller for ICMP redirects (by its cookie), a
/// route-table entry (delivery of the care-of address, or the home agent; both also rewrite),
/// an address rewrite elsewhere (NAT), or the VM's ordinary host entries.
fn kind(f: &Flow) -> &'static str {
    let sets_ip = f.instructions.iter().any(|i| match i {
        Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } => {
            actions.iter().any(|a| {
                matches!(
                    a,
                    Action::SetField {
                        field: Oxm::Ipv4Src(..) | Oxm::Ipv4Dst(..)
                    }
                )
            })
        }
        _ => false,
    });
    if f.cookie & COOKIE_MASK_KIND == COOKIE_REDIRECT {
        "redirect copy"
    } else if f.table_id == TABLE_ROUTE {
        "route"
    } else if sets_ip {
        "NAT"
    } else {
        "host"
    }
}

fn roles(title: &str, path: &str, host: &str, target: &str) {
    let topo = Topology::load(Path::new(path)).expect("topology");
    let target: PortRef = target.parse().expect("target");
    let mut planner = Planner::new(Fabric::new(&topo));
    let mac = planner.find_host(host).expect("host");
    let home = planner.vm(mac).expect("vm");
    planner.plan_move(host, &target).expect("plan move");
    let away = planner.vm(mac).expect("vm");
    let fabric = &planner.fabric;
    let at_home = by_switch(vm_flows(fabric, &home));
    let moved = by_switch(vm_flows(fabric, &away));
    let d = diff(&at_home, &moved);
    let home_sw = home.switch.clone();
    println!(
        "\n3. flow entries for one VM, {title} ({}): {host} {} at {}:{} -> {target}, care-of {:?}",
        Path::new(path).file_name().unwrap().to_string_lossy(),
        home.ips[0],
        home.switch,
        home.port,
        away.away.as_ref().map(|a| &a.care_of).unwrap()
    );
    let roles = [
        "foreign switch (the VM is here)",
        "home switch",
        "edge/core switch with a subnet",
        "other access switches",
        "aggregation/core without subnets",
    ];
    // role -> [(switch, at home, away, flow mods)]
    let mut rows: BTreeMap<usize, Vec<(String, usize, usize, usize)>> = BTreeMap::new();
    for s in &topo.switches {
        let has_subnet = fabric.subnets_of(&s.name).next().is_some();
        let role = if s.name == target.switch {
            0
        } else if s.name == home_sw {
            1
        } else if s.tier != Tier::Access && has_subnet {
            2
        } else if s.tier == Tier::Access {
            3
        } else {
            4
        };
        let n = |m: &BTreeMap<String, Vec<Flow>>| m.get(&s.name).map_or(0, Vec::len);
        rows.entry(role).or_default().push((
            s.name.clone(),
            n(&at_home),
            n(&moved),
            d.get(&s.name).map_or(0, |x| x.len()),
        ));
    }
    println!(
        "   {:<34} {:>9} {:>8} {:>6} {:>7} {:>10}  away entries by kind",
        "role", "switches", "at home", "away", "added", "flow mods"
    );
    let range = |v: Vec<i64>| {
        let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    };
    for (role, v) in &rows {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (sw, ..) in v {
            for f in moved.get(sw).into_iter().flatten() {
                *kinds.entry(kind(f)).or_default() += 1;
            }
        }
        let per = v.len();
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(k, n)| {
                if per > 1 {
                    format!("{k} {n} in all")
                } else {
                    format!("{k} {n}")
                }
            })
            .collect();
        let names: Vec<&str> = v.iter().map(|r| r.0.as_str()).collect();
        println!(
            "   {:<34} {:>9} {:>8} {:>6} {:>7} {:>10}  {}",
            roles[*role],
            if per <= 2 {
                names.join(",")
            } else {
                per.to_string()
            },
            range(v.iter().map(|r| r.1 as i64).collect()),
            range(v.iter().map(|r| r.2 as i64).collect()),
            range(v.iter().map(|r| r.2 as i64 - r.1 as i64).collect()),
            range(v.iter().map(|r| r.3 as i64).collect()),
            kinds.join(", ")
        );
    }
    let mut total: BTreeMap<&str, usize> = BTreeMap::new();
    for f in moved.values().flatten() {
        *total.entry(kind(f)).or_default() += 1;
    }
    let n_home: usize = at_home.values().map(Vec::len).sum();
    let n_away: usize = moved.values().map(Vec::len).sum();
    let n_mods: usize = d.values().map(|x| x.len()).sum();
    println!(
        "   in all: {n_home} entries at home, {n_away} away ({}), on {} switches; migration = {n_mods} flow mods on {} switches",
        total
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        moved.len(),
        d.len()
    );
    if path == PAPER {
        println!("   the paper (section V): 6 NAT rules and 2 routes in all, on its 3 routers");
    }
}
