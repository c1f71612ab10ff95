//! A small HTTP/1.1 client for the controller's own REST API (`servswitch migrate`, `verify`):
//! plain `http://HOST:PORT`, one request per connection. The API is local and JSON; a full
//! HTTP client crate would add much for this.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The controller's REST API as the CLI calls it: its URL and the token to present.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    token: Option<String>,
}

/// Where the CLI finds a token when no `--token-file` is given.
pub const TOKEN_ENV: &str = "SERVSWITCH_TOKEN";

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
        })
    }

    /// Sends one request and returns the status and body; a refusal for want of a (good)
    /// token is an error of one line.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        let (status, text) = request(&self.url, self.token.as_deref(), method, path, body)?;
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

/// Sends one request to `api` (`http://host:port`) and returns the status and body.
fn request(
    api: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let Some(hostport) = api.strip_prefix("http://") else {
        bail!("--api {api:?}: use http://HOST:PORT");
    };
    let hostport = hostport.trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("--api {api:?}: not a HOST:PORT"))?
        .next()
        .with_context(|| format!("--api {api:?}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the controller's API at {api}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default(),
        body.len()
    )
    .with_context(|| format!("sending to {api}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .with_context(|| format!("reading the answer of {api}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        bail!("{api} answered something that is not HTTP");
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
