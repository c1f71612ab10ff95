//! The `decode` and `encode` commands as a user runs them: exit codes, one-line errors, and
//! byte-exact round trips.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn servswitch(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The committed example binary is exactly what `encode` makes of the committed JSON, and
/// decoding it to JSON and encoding again gives the same bytes.
#[test]
fn example_round_trips() {
    let json = std::fs::read(example("paper-nat.json")).unwrap();
    let bin = std::fs::read(example("paper-nat.ofp")).unwrap();
    let enc = servswitch(&["encode", "-"], &json);
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    assert_eq!(
        enc.stdout, bin,
        "examples/paper-nat.ofp is stale: re-encode it"
    );

    let dec = servswitch(&["decode", "--json", "-"], &bin);
    assert!(dec.status.success());
    let again = servswitch(&["encode", "-"], &dec.stdout);
    assert_eq!(again.stdout, bin);

    let text = servswitch(&["decode", "-"], &bin);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(
        "OFPT_FLOW_MOD (xid=0x3): ADD cookie=0x5353000000000003, priority=100,ip,nw_dst=192.168.11.3 actions=set_field:192.168.10.3->ip_dst,output:1"
    ), "{text}");
}

/// Malformed input of each kind ends with one line on stderr, exit code 1, no panic.
#[test]
fn bad_input_is_one_line_and_exit_1() {
    let bin = std::fs::read(example("paper-nat.ofp")).unwrap();
    let mut bad_version = bin.clone();
    bad_version[0] = 1;
    let mut short_len = bin.clone();
    short_len[2] = 0;
    short_len[3] = 4;
    let mut bad_body = bin[..16].to_vec(); // the hello, with a hello element cut short
    bad_body[3] = 14;
    bad_body.truncate(14);
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (
            vec!["decode", "-"],
            bin[..bin.len() - 3].to_vec(),
            "truncated message at offset",
        ),
        (
            vec!["decode", "-"],
            bad_version,
            "unsupported OpenFlow version 0x01",
        ),
        (vec!["decode", "--json", "-"], short_len, "bad length 4"),
        (
            vec!["decode", "-"],
            bad_body,
            "malformed message at offset 0",
        ),
        (
            vec!["encode", "-"],
            b"[{\"xid\": 1}]".to_vec(),
            "message 0 is not a valid",
        ),
        (vec!["encode", "-"], b"{not json".to_vec(), "invalid JSON"),
        (
            vec!["decode", "/nonexistent/file"],
            vec![],
            "reading /nonexistent/file",
        ),
    ];
    for (args, input, want) in cases {
        let out = servswitch(&args, &input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The conformance corpus, concatenated into one stream, survives decode --json | encode.
#[test]
fn corpus_stream_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/of13");
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance corpus missing at {}",
            dir.display()
        );
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut stream = Vec::new();
    for p in &paths {
        stream.extend(std::fs::read(p).unwrap());
    }
    let dec = servswitch(&["decode", "--json", "-"], &stream);
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let enc = servswitch(&["encode", "-"], &dec.stdout);
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    assert_eq!(enc.stdout, stream);
    let text = servswitch(&["decode", "-"], &stream);
    assert!(text.status.success());
    assert_eq!(
        String::from_utf8_lossy(&text.stdout)
            .lines()
            .filter(|l| l.starts_with("OFPT_"))
            .count(),
        paths.len()
    );
}

/// Every shipped topology passes `check-config`; a broken one fails with the entry's path.
#[test]
fn check_config_on_shipped_topologies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = servswitch(&["check-config", p.to_str().unwrap()], b"");
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(
        n >= 2,
        "expected the shipped topologies in {}",
        dir.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    let text = std::fs::read_to_string(dir.join("paper-testbed.toml")).unwrap();
    std::fs::write(&bad, text.replace("at = \"r3:3\"", "at = \"r3:1\"")).unwrap();
    let out = servswitch(&["check-config", bad.to_str().unwrap()], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("host[3].at: r3:1 is a link port (link[1].b)"),
        "{err}"
    );
}

/// `gen-topology --ipv6` makes a dual-stack file that `check-config` accepts and counts; a
/// bad IPv6 gateway is one line naming the entry.
#[test]
fn a_generated_dual_stack_fabric_passes_check_config() {
    let gen = servswitch(
        &[
            "gen-topology",
            "--racks",
            "3",
            "--hosts-per-rack",
            "2",
            "--ipv6",
        ],
        b"",
    );
    assert!(gen.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dual.toml");
    std::fs::write(&path, &gen.stdout).unwrap();
    let out = servswitch(&["check-config", path.to_str().unwrap()], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("3 subnets, 6 hosts; IPv6 in 3 subnets, 6 host addresses"),
        "{text}"
    );
    let bad = String::from_utf8_lossy(&gen.stdout).replace(
        "gateway6 = \"fd00:0:0:2::1\"",
        "gateway6 = \"fd00:0:0:9::1\"",
    );
    std::fs::write(&path, bad).unwrap();
    let out = servswitch(&["check-config", path.to_str().unwrap()], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("subnet[1].gateway6: fd00:0:0:9::1 is outside the subnet's prefix6"),
        "{err}"
    );
}

/// `run --state DIR` with a state file it cannot trust refuses to start, in one line.
#[test]
fn run_refuses_a_corrupt_state() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("servswitch-state.json"), b"{ half").unwrap();
    let topo = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let out = servswitch(
        &[
            "run",
            "--topology",
            topo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--state",
            tmp.path().to_str().unwrap(),
        ],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a servswitch state file"), "{err}");
}

/// A state file that does not fit the topology stops `run` with one line, before anything
/// listens; so do the command-line mistakes of `migrate` and `plan --migrate`.
#[test]
fn bad_state_and_migration_arguments_are_one_line_and_exit_1() {
    let topo = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml");
    let topo = topo.to_str().unwrap();
    let dual = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dual-stack.toml");
    let dual = dual.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("servswitch-state.json"),
        r#"{"format":1,"vms":{"02:00:00:00:11:03":{"name":"vm","mac":"02:00:00:00:11:03",
        "ips":["192.168.11.3"],"home_subnet":"home","home":{"switch":"r3","port":3},
        "location":{"switch":"r9","port":3},"care_of_subnet":"foreign",
        "care_of":["192.168.10.192"]}}}"#,
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run",
                "--topology",
                topo,
                "--listen",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
                "--state",
                dir.path().to_str().unwrap(),
            ],
            "r9:3",
        ),
        (
            vec!["plan", "--topology", topo, "--migrate", "nobody=r2:3"],
            "nobody",
        ),
        (
            vec!["plan", "--topology", topo, "--migrate", "vm=r2:1"],
            "link",
        ),
        (
            vec!["plan", "--topology", topo, "--migrate", "vm"],
            "HOST=SWITCH:PORT",
        ),
        (
            vec![
                "migrate",
                "vm",
                "--to",
                "r2:3",
                "--api",
                "http://127.0.0.1:1",
            ],
            "cannot reach",
        ),
        (
            vec!["verify", "--api", "http://127.0.0.1:1"],
            "cannot reach",
        ),
        (
            vec!["run", "--topology", topo, "--audit-interval=-1"],
            "audit",
        ),
    ];
    for (args, want) in cases {
        let out = servswitch(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("servswitch: error:") && last.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A host with IPv6 addresses only is planned like any other: its care-of address from
    // the foreign prefix.
    let out = servswitch(
        &["plan", "--topology", dual, "--migrate", "v6only=r2:3"],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ipv6_dst=fd00:0:0:11::5 actions=set_field:fd00:0:0:10::ff00->ipv6_dst"),
        "{text}"
    );
}

/// A reader that stops early (`servswitch decode big.ofp | head`) is not an error: exit 0,
/// nothing on stderr. (Only a write to our own output counts so: a peer that closes a socket
/// is a failure, see `tests/api_access.rs`.)
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    let one = std::fs::read(example("paper-nat.ofp")).unwrap();
    let big: Vec<u8> = one.iter().copied().cycle().take(one.len() * 3000).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args(["decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&big);
    });
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is closed now (dropped); the rest of the output has nowhere to go.
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
