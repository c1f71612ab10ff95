//! Whether this machine can run the tests that need root and Open vSwitch, and the one rule
//! for when it cannot: skip with a message, except under `CI=true`, where it is a failure.
#![allow(dead_code)]

/// Whether the test runs with effective user id 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True when `missing` is `None`. Otherwise prints why `test` is skipped and returns false, or
/// panics with the reason when the environment variable `CI` is `true`.
pub fn runnable(test: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {reason} (CI=true: this is a failure, not a skip)")
        }
        Some(reason) => {
            eprintln!("skipping {test}: {reason}");
            false
        }
    }
}

/// The machine's load (`/proc/loadavg`) and its CPUs, for the messages of assertions that
/// bound a time: a bound missed while something else held the CPUs (a compiler, another
/// test suite) says so.
/// Whether the machine's CPUs are saturated: the 1-minute load average at or above the
/// number of CPUs (a test's own traffic can do it on a 2-CPU machine).
#[allow(dead_code)]
pub fn saturated() -> bool {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    load >= cpus as f64
}

pub fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "load average {} on {cpus} CPUs",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
