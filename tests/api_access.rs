//! Who may call the REST API: the real `servswitch run` with `--api-token-file` (no switch
//! needed), called over HTTP and through the CLI. Loopback only; needs neither root nor OVS.

mod common;

use std::path::Path;
use std::process::Command;

use common::controller::ControllerProcess;

const WRITER: &str = "w-5f2c9a1e7d";
const READER: &str = "r-0b83c6d4aa";

fn token_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("tokens");
    std::fs::write(
        &p,
        format!("# servswitch API tokens\n{WRITER} ops\n{READER} grafana read\n"),
    )
    .unwrap();
    p
}

fn testbed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-testbed.toml")
}

fn call(ctl: &ControllerProcess, method: &str, path: &str, auth: Option<&str>) -> u16 {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let body = if method == "POST" {
        r#"{"host":"vm","to":"r2:3"}"#
    } else {
        ""
    };
    ctl.api_raw(method, path, &headers, body).unwrap().0
}

#[test]
fn tokens_and_scopes_decide_who_may_read_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(dir.path());
    let ctl = ControllerProcess::start(&testbed(), &["--api-token-file", tokens.to_str().unwrap()]);
    // What monitoring polls stays open.
    assert_eq!(call(&ctl, "GET", "/metrics", None), 200);
    assert_eq!(call(&ctl, "GET", "/healthz", None), 200);
    // Everything else needs a known token.
    for (method, path) in [
        ("GET", "/api/v1/hosts"),
        ("GET", "/api/v1/switches"),
        ("GET", "/api/v1/quarantine"),
        ("POST", "/api/v1/migrations"),
        ("DELETE", "/api/v1/quarantine"),
        ("GET", "/api/v1/no-such-thing"),
    ] {
        assert_eq!(call(&ctl, method, path, None), 401, "{method} {path}");
        assert_eq!(
            call(&ctl, method, path, Some("guess")),
            401,
            "{method} {path}"
        );
        assert_eq!(
            call(&ctl, method, path, Some(&WRITER[..WRITER.len() - 1])),
            401,
            "{method} {path}: a prefix of a token"
        );
    }
    let (_, head, body) = ctl.api_raw("GET", "/api/v1/hosts", &[], "").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(body.contains("needs a token"), "{body}");
    // A read token reads, and may not write.
    assert_eq!(call(&ctl, "GET", "/api/v1/hosts", Some(READER)), 200);
    assert_eq!(call(&ctl, "GET", "/api/v1/quarantine", Some(READER)), 200);
    assert_eq!(call(&ctl, "POST", "/api/v1/migrations", Some(READER)), 403);
    assert_eq!(
        call(&ctl, "DELETE", "/api/v1/quarantine", Some(READER)),
        403
    );
    assert_eq!(call(&ctl, "DELETE", "/api/v1/hosts/vm", Some(READER)), 403);
    // A write token does both (the migration itself fails: no switch is connected).
    assert_eq!(
        call(&ctl, "DELETE", "/api/v1/quarantine", Some(WRITER)),
        204
    );
    assert_eq!(call(&ctl, "DELETE", "/api/v1/hosts/vm", Some(WRITER)), 409);
    let s = call(&ctl, "POST", "/api/v1/migrations", Some(WRITER));
    assert!(s != 401 && s != 403, "{s}");
    // The cookie a browser sends counts like the header.
    let cookie = format!("theme=dark; servswitch_token={READER}");
    let (s, _, _) = ctl
        .api_raw("GET", "/api/v1/hosts", &[("Cookie", &cookie)], "")
        .unwrap();
    assert_eq!(s, 200);
    // Writes are logged with the caller's name.
    assert!(ctl.log().contains("caller=ops"), "{}", ctl.log());
    assert!(ctl.log().contains("the API needs a token"));

    // The CLI: refused for want of a token in one line; with a read token, refused; with a
    // write token (file or environment), through to the controller.
    let api = format!("http://127.0.0.1:{}", ctl.api_port);
    let cli = |extra: &[&str], env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_servswitch"));
        c.args(["verify", "--api", &api]).args(extra);
        c.env_remove("SERVSWITCH_TOKEN");
        if let Some(t) = env {
            c.env("SERVSWITCH_TOKEN", t);
        }
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = cli(&[], None);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("needs a token") && err.contains("SERVSWITCH_TOKEN"),
        "{err}"
    );
    let (code, err) = cli(&[], Some("guess"));
    assert_eq!(code, Some(1));
    assert!(err.contains("refused the token"), "{err}");
    // verify only reads: a read token does; no switch is connected, so the tables are
    // reported missing (exit 1), but not refused.
    let (_, err) = cli(&[], Some(READER));
    assert!(
        !err.contains("refused") && !err.contains("needs a token"),
        "{err}"
    );
    let (_, err) = cli(&["--token-file", tokens.to_str().unwrap()], None);
    assert!(
        !err.contains("refused") && !err.contains("needs a token"),
        "{err}"
    );
    let migrate = |env: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args(["migrate", "vm", "--to", "r2:3", "--api", &api])
            .env("SERVSWITCH_TOKEN", env)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = migrate(READER);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("may only read"), "{err}");
    let (_, err) = migrate(WRITER);
    assert!(
        !err.contains("refused the call") && !err.contains("token"),
        "{err}"
    );
}

#[test]
fn an_unusable_token_file_stops_the_start_with_the_line_named() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        ("", "no token in it"),
        (
            "abc ops write\n",
            "line 1: the third field may only be `read`",
        ),
        ("abc\nabc again\n", "line 2: this token is listed twice"),
    ] {
        let p = dir.path().join("tokens");
        std::fs::write(&p, text).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args(["run", "--topology"])
            .arg(testbed())
            .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .args(["--api-token-file", p.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text:?}: {err}");
        assert!(
            err.contains("--api-token-file") && err.contains(says),
            "{text:?}: {err}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_servswitch"))
        .args(["run", "--topology"])
        .arg(testbed())
        .args(["--api-token-file", "/nonexistent/tokens"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/tokens"));
}

/// `--api-tls-cert`/`--api-tls-key`: the API speaks HTTPS only; the CLI checks the API's
/// certificate against `--api-ca` (or `$SERVSWITCH_API_CA`) and presents its token inside.
#[test]
fn the_api_over_https_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::certs::Ca::new("servswitch API test CA");
    let (cert, key) = ca.leaf(dir.path(), "api", "127.0.0.1", false);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, common::certs::Ca::new("someone else").pem).unwrap();
    let tokens = token_file(dir.path());
    let ctl = ControllerProcess::start(
        &testbed(),
        &[
            "--api-token-file",
            tokens.to_str().unwrap(),
            "--api-tls-cert",
            cert.to_str().unwrap(),
            "--api-tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(ctl.log().contains("api_tls=true"), "{}", ctl.log());
    let https = format!("https://127.0.0.1:{}", ctl.api_port);
    let http = format!("http://127.0.0.1:{}", ctl.api_port);
    let migrate = |api: &str, extra: &[&str], token: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_servswitch"))
            .args([
                "migrate",
                "vm",
                "--to",
                "r2:3",
                "--when",
                "announced",
                "--api",
                api,
            ])
            .args(extra)
            .env("SERVSWITCH_TOKEN", token)
            .env_remove("SERVSWITCH_API_CA")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let ca_arg = ["--api-ca", ca_file.to_str().unwrap()];
    // Through: armed (202), printed.
    let (code, out, err) = migrate(&https, &ca_arg, WRITER);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["to"], "r2:3");
    // The token still counts inside TLS.
    let (code, _, err) = migrate(&https, &ca_arg, READER);
    assert_eq!(code, Some(1));
    assert!(err.contains("may only read"), "{err}");
    // No CA, a CA that did not sign it, plain HTTP: refused, in one line each.
    for (api, extra, says) in [
        (&https, &[][..], "needs the CA"),
        (&https, &["--api-ca", other_ca.to_str().unwrap()][..], ""),
        (&http, &[][..], ""),
    ] {
        let (code, out, err) = migrate(api, extra, WRITER);
        assert_eq!(
            code,
            Some(1),
            "{api} {extra:?}: {err} / stdout: {out}\ncontroller log:\n{}",
            ctl.log()
        );
        assert_eq!(err.trim().lines().count(), 1, "{api} {extra:?}: {err}");
        assert!(err.contains(says), "{api} {extra:?}: {err}");
        println!("{api} {extra:?}: {}", err.trim());
    }
}
