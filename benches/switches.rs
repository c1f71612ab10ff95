//! 1,000 emulated switches against one controller: how long until all are registered, and
//! how much memory each idle connected switch costs the controller.
//!
//! ```sh
//! cargo bench --bench switches                              # 1,000 switches
//! SERVSWITCH_BENCH_SWITCHES=200 cargo bench --bench switches # fewer
//! ```
//!
//! The controller runs in this process. The switches (`servswitch::emu::switch`) run in a child
//! process — this binary re-executed with `SERVSWITCH_BENCH_FARM=<controller address>` — so
//! that nothing of theirs is counted. Handshake time: from the moment the child is told to
//! start connecting until the controller's registry holds every switch. Memory: the growth of
//! this process's VmRSS (/proc/self/status) and of the heap bytes in use (a counting global
//! allocator) between just before the switches connect and once all are up and idle, divided
//! by the number of switches.
//!
//! The listener is bound with a backlog of 1,024 (`SERVSWITCH_BENCH_BACKLOG`): with
//! `TcpListener::bind`'s 128, a thousand switches connecting at once overflow the accept queue,
//! the kernel drops their SYNs and they retry after one second, which is then all the bench
//! measures.
//!
//! Each connection takes a file descriptor in each process. If the open-files limit is too
//! low the bench re-executes itself through `sh -c 'ulimit -n N'` (up to the hard limit), or
//! says what to run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use servswitch::emu::switch::{self as emu, EmuConfig, SwitchSpec};
use servswitch::fabric::topology::{Dpid, SwitchConf, Tier, Topology};
use servswitch::switch::runtime::{Controller, NoApp, RuntimeConfig};

/// Heap bytes currently allocated, through the system allocator.
struct Counting;

static HEAP_IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        HEAP_IN_USE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(new_size, Relaxed);
            HEAP_IN_USE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FARM: &str = "SERVSWITCH_BENCH_FARM";
const COUNT: &str = "SERVSWITCH_BENCH_SWITCHES";
const REEXEC: &str = "SERVSWITCH_BENCH_REEXEC";
const BACKLOG: &str = "SERVSWITCH_BENCH_BACKLOG";
const AIM_HANDSHAKE: Duration = Duration::from_secs(1);
const AIM_BYTES_PER_SWITCH: f64 = 64.0 * 1024.0;

fn main() {
    let n: usize = std::env::var(COUNT)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    ensure_fd_limit(n);
    match std::env::var(FARM) {
        Ok(addr) => farm(&addr, n),
        Err(_) => controller(n),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The soft and hard open-files limits, from /proc/self/limits.
fn fd_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line.split_whitespace().skip(3);
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    };
    Some((parse(f.next())?, parse(f.next())?))
}

/// Makes sure this process may open a descriptor per switch, plus some.
fn ensure_fd_limit(n: usize) {
    let need = n as u64 + 256;
    let Some((soft, hard)) = fd_limits() else {
        return;
    };
    if soft >= need {
        return;
    }
    if hard >= need && std::env::var_os(REEXEC).is_none() {
        // std cannot call setrlimit; the shell's `ulimit` can, for the process it execs.
        let exe = std::env::current_exe().expect("current_exe");
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg("ulimit -n \"$0\" && exec \"$@\"")
            .arg(need.to_string())
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(REEXEC, "1")
            .status()
            .expect("re-executing through /bin/sh");
        std::process::exit(status.code().unwrap_or(1));
    }
    eprintln!(
        "switches bench: {n} switches need {need} open files, the limit is {soft} (hard {hard}): \
         run `ulimit -n {need}` (as root if above the hard limit) and try again"
    );
    std::process::exit(2);
}

fn vm_rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn kib(b: f64) -> String {
    format!("{:.1} KiB", b / 1024.0)
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1024.0 * 1024.0))
}

/// The controller: this process.
fn controller(n: usize) {
    let rt = runtime();
    let topology = Topology {
        switches: (1..=n as u64)
            .map(|d| SwitchConf {
                name: format!("s{d}"),
                dpid: Dpid(d),
                tier: Tier::Access,
            })
            .collect(),
        ..Topology::default()
    };
    let ctl = Controller::new(topology, RuntimeConfig::default(), Arc::new(NoApp));
    let backlog: u32 = std::env::var(BACKLOG)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let (addr, serve) = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_reuseaddr(true).expect("SO_REUSEADDR");
        sock.bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let l = sock.listen(backlog).expect("listen");
        let addr = l.local_addr().expect("local_addr");
        let c = Arc::clone(&ctl);
        (addr, tokio::spawn(async move { c.serve(l, None).await }))
    });

    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .env(FARM, addr.to_string())
        .env(COUNT, n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the switch farm");
    let mut to_farm = child.stdin.take().expect("farm stdin");
    let mut from_farm = BufReader::new(child.stdout.take().expect("farm stdout"));
    let mut line = String::new();
    let mut read_line = |line: &mut String| {
        line.clear();
        from_farm.read_line(line).expect("reading the farm");
        if line.is_empty() {
            eprintln!("switches bench: the switch farm exited early");
            std::process::exit(1);
        }
    };
    read_line(&mut line);
    assert_eq!(line.trim(), "ready", "farm said {line:?}");

    let heap_before = HEAP_IN_USE.load(Relaxed);
    let rss_before = vm_rss_bytes();
    writeln!(to_farm, "go").expect("telling the farm to go");
    to_farm.flush().expect("flush");
    let t0 = Instant::now();
    let elapsed = rt.block_on(async {
        while ctl.registry.len() < n {
            if t0.elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "switches bench: only {} of {n} switches registered after 60 s",
                    ctl.registry.len()
                );
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        t0.elapsed()
    });
    read_line(&mut line);
    let farm_said = line.trim().to_string();
    // Every switch is up and registered; nothing is in flight until the first echo probe
    // (5 s). Measure now.
    let heap_after = HEAP_IN_USE.load(Relaxed);
    let rss_after = vm_rss_bytes();
    let live = ctl.live_connections();

    drop(to_farm); // the farm exits on EOF
    let _ = child.wait();
    rt.block_on(async {
        let t = Instant::now();
        while ctl.live_connections() > 0 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ctl.shutdown(Duration::from_secs(5)).await;
        let _ = serve.await;
    });

    let per = |a: usize, b: usize| (a as f64 - b as f64) / n as f64;
    let heap_per = per(heap_after, heap_before);
    let rss_per = per(rss_after as usize, rss_before as usize);
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("switches: {n} emulated switches in a child process, one controller in this process");
    println!(
        "  handshake: all {n} in the registry {:.1} ms after the connections started \
         (aim < {} ms: {}); the farm says: {farm_said}",
        elapsed.as_secs_f64() * 1e3,
        AIM_HANDSHAKE.as_millis(),
        verdict(elapsed < AIM_HANDSHAKE),
    );
    println!(
        "  memory per idle switch: heap {} (aim < {}: {}), RSS {} (aim < {}: {})",
        kib(heap_per),
        kib(AIM_BYTES_PER_SWITCH),
        verdict(heap_per < AIM_BYTES_PER_SWITCH),
        kib(rss_per),
        kib(AIM_BYTES_PER_SWITCH),
        verdict(rss_per < AIM_BYTES_PER_SWITCH),
    );
    println!(
        "  heap in use {} -> {}, VmRSS {} -> {}, {live} live connections, listen backlog \
         {backlog}, open-files limit {}",
        mib(heap_before as f64),
        mib(heap_after as f64),
        mib(rss_before as f64),
        mib(rss_after as f64),
        fd_limits().map_or("?".into(), |l| l.0.to_string()),
    );
}

/// The switch farm: the child process. Prints `ready`, waits for `go`, connects every
/// switch, prints when all are up, and exits when its stdin closes.
fn farm(addr: &str, n: usize) {
    let addr: std::net::SocketAddr = addr.parse().expect("farm address");
    let rt = runtime();
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("reading go");
    let switches = rt.block_on(async move {
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for dpid in 1..=n as u64 {
            set.spawn(async move {
                let sw = emu::connect(EmuConfig::new(addr, SwitchSpec::new(dpid))).await?;
                sw.wait_until_up()
                    .await
                    .map_err(|c| std::io::Error::other(c.reason))?;
                Ok::<_, std::io::Error>(sw)
            });
        }
        let mut up = Vec::with_capacity(n);
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
            "all {} up on the switch side after {:.1} ms",
            up.len(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        up
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    rt.block_on(async move { drop(switches) });
}
