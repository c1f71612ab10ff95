//! A small HTTP/1.1 client for the controller's own REST API (`servswitch migrate`, `verify`):
//! plain `http://HOST:PORT`, one request per connection. The API is local and JSON; a full
//! HTTP client crate would add much for this.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Sends one request to `api` (`http://host:port`) and returns the status and body.
pub fn request(api: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
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
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
