//! Running the tools a fabric is built with (ovs-vsctl, ip, python3), and whether they are
//! here at all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::VSCTL_TIMEOUT;

/// Why the real fabric cannot be built here, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !super::super::env::is_root() {
        return Some("not running as root".into());
    }
    for (what, cmd, args) in [
        ("Open vSwitch", "ovs-vsctl", &["--timeout=5", "show"][..]),
        ("ovs-ofctl", "ovs-ofctl", &["--version"][..]),
        ("network namespaces", "ip", &["netns", "list"][..]),
        ("ethtool", "ethtool", &["--version"][..]),
        ("ping", "ping", &["-V"][..]),
        ("python3", "python3", &["--version"][..]),
    ] {
        match Command::new(cmd).args(args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "{what} unavailable: `{cmd} {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => return Some(format!("{what} unavailable: cannot run {cmd}: {e}")),
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (the userspace datapath needs it)".into());
    }
    None
}

/// True when the fabric can be built (see [`super::super::env::runnable`]).
pub fn available(test: &str) -> bool {
    super::super::env::runnable(test, unavailable_reason())
}

/// Runs a command; its stdout when it exits 0, otherwise one message with the command line,
/// the exit status and its output.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    run_with_input(cmd, args, None)
}

pub fn run_with_input(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{cmd}: writing stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    output_result(&format!("{cmd} {}", args.join(" ")), out)
}

pub(super) fn output_result(what: &str, out: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!(" / stdout: {}", stdout.trim())
            }
        ))
    }
}

pub(super) fn vsctl(args: &[&str]) -> Result<String, String> {
    let mut all = vec![VSCTL_TIMEOUT];
    all.extend_from_slice(args);
    run("ovs-vsctl", &all)
}

/// Runs `ip [pre...] -batch -` with one command per line; `-force` keeps going past errors.
pub(super) fn ip_batch(pre: &[&str], lines: &[String], force: bool) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args: Vec<&str> = pre.to_vec();
    if force {
        args.push("-force");
    }
    args.extend(["-batch", "-"]);
    let mut text = lines.join("\n");
    text.push('\n');
    run_with_input("ip", &args, Some(&text))
        .map(|_| ())
        .map_err(|e| format!("{e}\nbatch was:\n{text}"))
}

/// The absolute path of the Python 3 interpreter on `PATH` (resolved once, so a version
/// manager's shim is not between a spawned child's pid and the interpreter).
pub fn python3() -> &'static str {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "python3".to_string())
    })
}

/// ofport (None when unassigned, -1 or empty) and error column of every interface.
#[allow(clippy::type_complexity)]
pub(super) fn interface_ofports() -> Result<BTreeMap<String, (Option<u32>, String)>, String> {
    let out = vsctl(&[
        "--format=csv",
        "--data=bare",
        "--no-headings",
        "--columns=name,ofport,error",
        "list",
        "interface",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ',');
            let name = f.next()?.trim_matches('"').to_string();
            let port = f
                .next()?
                .parse::<i64>()
                .ok()
                .filter(|p| *p > 0)
                .map(|p| p as u32);
            let err = f.next().unwrap_or("").trim_matches('"').to_string();
            Some((name, (port, err)))
        })
        .collect())
}
