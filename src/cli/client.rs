//! A small HTTP/1.1 client for the controller's own REST API (`servswitch migrate`, `verify`):
//! `http://HOST:PORT`, or `https://HOST:PORT` checked against the CA of `--api-ca`
//! (rustls, as the controller), one request per connection. The API is local and JSON; a
//! full HTTP client crate would add much for this.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The controller's REST API as the CLI calls it: its URL and the token to present.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    token: Option<String>,
    /// The CA that signed the API's certificate (HTTPS).
    ca: Option<PathBuf>,
}

/// Where the CLI finds a token when no `--token-file` is given.
pub const TOKEN_ENV: &str = "SERVSWITCH_TOKEN";
/// Where the CLI finds the API's CA when no `--api-ca` is given.
pub const CA_ENV: &str = "SERVSWITCH_API_CA";

impl Api {
    /// `url` with the token of `token_file` (its first token: a line `TOKEN [NAME] [read]`
    /// as in the controller's `--api-token-file`, so the same file works), else of
    /// `$SERVSWITCH_TOKEN`, else none.
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<Api> {
        let token = match token_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("--token-file {}", p.display()))?;
                let t = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .and_then(|l| l.split_whitespace().next())
                    .with_context(|| format!("--token-file {}: no token in it", p.display()))?;
                Some(t.to_string())
            }
            None => std::env::var(TOKEN_ENV)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        Ok(Api {
            url: url.to_string(),
            token,
            ca: std::env::var_os(CA_ENV).map(PathBuf::from),
        })
    }

    /// Checks an `https://` API's certificate against the CA in this PEM file.
    pub fn with_ca(mut self, ca: Option<&Path>) -> Api {
        if let Some(ca) = ca {
            self.ca = Some(ca.to_path_buf());
        }
        self
    }

    /// Sends one request and returns the status and body; a refusal for want of a (good)
    /// token is an error of one line.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        let (status, text) = request(
            &self.url,
            self.token.as_deref(),
            self.ca.as_deref(),
            method,
            path,
            body,
        )?;
        let why = || {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string())
        };
        match status {
            401 if self.token.is_none() => bail!(
                "{} needs a token: give --token-file FILE or set {TOKEN_ENV}",
                self.url
            ),
            401 => bail!("{} refused the token: {}", self.url, why()),
            403 => bail!("{} refused the call: {}", self.url, why()),
            _ => Ok((status, text)),
        }
    }
}

/// What a request is written to and read from: TCP, or TLS over it.
trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// Sends one request to `api` (`http(s)://host:port`) and returns the status and body.
fn request(
    api: &str,
    token: Option<&str>,
    ca: Option<&Path>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let (https, hostport) = match (api.strip_prefix("http://"), api.strip_prefix("https://")) {
        (Some(h), _) => (false, h),
        (_, Some(h)) => (true, h),
        _ => bail!("--api {api:?}: use http://HOST:PORT or https://HOST:PORT"),
    };
    let hostport = hostport.trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("--api {api:?}: not a HOST:PORT"))?
        .next()
        .with_context(|| format!("--api {api:?}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the controller's API at {api}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut s: Box<dyn Conn> = if https {
        let host = hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        Box::new(tls(tcp, host, ca, api)?)
    } else {
        Box::new(tcp)
    };
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default(),
        body.len()
    )
    .and_then(|()| s.flush())
    .with_context(|| format!("sending to {api}"))?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after its whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e).with_context(|| format!("reading the answer of {api}")),
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        bail!(
            "{api} answered something that is not HTTP{}",
            if https { "" } else { " (an https:// API?)" }
        );
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{api}: bad status line"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

/// TLS over `tcp` to `host`, whose certificate `ca` must have signed.
fn tls(
    tcp: TcpStream,
    host: &str,
    ca: Option<&Path>,
    api: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let ca = ca.with_context(|| {
        format!("{api}: HTTPS needs the CA that signed the API's certificate: --api-ca FILE or {CA_ENV}")
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("--api-ca {}", ca.display()))?
    {
        roots
            .add(c.with_context(|| format!("--api-ca {}: not PEM", ca.display()))?)
            .with_context(|| format!("--api-ca {}: unusable CA certificate", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("--api-ca {}: no CA certificate in the file", ca.display());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .with_context(|| format!("--api {api:?}: {host:?} is not a name TLS can check"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .with_context(|| format!("TLS to {api}"))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        s = after.trim_start_matches("\r\n");
    }
    out
}
