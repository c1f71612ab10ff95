//! Who may call the REST API (`--api-token-file`).
//!
//! The file holds one token a line, `TOKEN [NAME] [read]` (blank lines and `#` comments
//! ignored): a `read` token may only read; any other may also move hosts, forget them and
//! clear the quarantine. With a file, every request but `GET /metrics` and `GET /healthz`
//! (what Prometheus and load balancers poll) must carry `Authorization: Bearer TOKEN`, or the
//! cookie `servswitch_token=TOKEN` (what a browser sends with page loads and event streams):
//! 401 without a token or with one the file does not hold, 403 when a read token asks for a
//! write. Tokens are compared in constant time. Without the file the API is open, as before.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::info;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

#[derive(Clone)]
struct Token {
    secret: Vec<u8>,
    name: String,
    scope: Scope,
}

/// The tokens of `--api-token-file`.
#[derive(Clone)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_list()
            .entries(self.tokens.iter().map(|t| (&t.name, t.scope)))
            .finish()
    }
}

/// The cookie a browser presents the token in.
pub const COOKIE: &str = "servswitch_token";

impl Tokens {
    /// Reads a token file; names the file and line of what is wrong.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--api-token-file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("--api-token-file {}: {e}", path.display()))
    }

    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut tokens: Vec<Token> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (secret, name, scope) = match fields.as_slice() {
                [t] => (*t, None, Scope::Write),
                [t, "read"] => (*t, None, Scope::Read),
                [t, n] => (*t, Some(*n), Scope::Write),
                [t, n, "read"] => (*t, Some(*n), Scope::Read),
                [_, _, other] => {
                    return Err(format!(
                        "line {}: the third field may only be `read`, not {other:?}",
                        i + 1
                    ))
                }
                _ => {
                    return Err(format!(
                        "line {}: expected TOKEN [NAME] [read], got {} fields",
                        i + 1,
                        fields.len()
                    ))
                }
            };
            if !secret.bytes().all(|b| b.is_ascii_graphic()) || secret.contains(';') {
                return Err(format!(
                    "line {}: a token is printable ASCII without `;`",
                    i + 1
                ));
            }
            if tokens.iter().any(|t| t.secret == secret.as_bytes()) {
                return Err(format!("line {}: this token is listed twice", i + 1));
            }
            tokens.push(Token {
                secret: secret.as_bytes().to_vec(),
                name: name.map_or_else(|| format!("token{}", tokens.len() + 1), str::to_string),
                scope,
            });
        }
        if tokens.is_empty() {
            return Err("no token in it (nobody could use the API)".into());
        }
        Ok(Tokens { tokens })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token presented, looked up in time that does not depend on where it differs.
    fn find(&self, presented: &[u8]) -> Option<&Token> {
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&t.secret, presented) {
                found = Some(t);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request presents: the bearer token, else the cookie.
fn presented(req: &Request) -> Option<&[u8]> {
    let h = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION) {
        let v = v.as_bytes();
        return v
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
            .and_then(|_| v.get(7..))
            .map(<[u8]>::trim_ascii);
    }
    h.get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .find_map(|c| c.strip_prefix(COOKIE.as_bytes())?.strip_prefix(b"="))
}

/// Whether the request needs no token: what monitoring polls.
fn open(req: &Request) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && matches!(req.uri().path(), "/metrics" | "/healthz")
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let mut r = (status, Json(serde_json::json!({ "error": why }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"servswitch\""),
        );
    }
    r
}

/// The middleware: lets a request through, or answers 401 or 403.
pub async fn require(State(tokens): State<Arc<Tokens>>, req: Request, next: Next) -> Response {
    if open(&req) {
        return next.run(req).await;
    }
    let Some(p) = presented(&req) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this API needs a token: Authorization: Bearer TOKEN",
        );
    };
    let Some(t) = tokens.find(p) else {
        return refuse(StatusCode::UNAUTHORIZED, "unknown token");
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write && t.scope == Scope::Read {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("token {:?} may only read", t.name),
        );
    }
    if write {
        info!(caller = %t.name, method = %req.method(), path = %req.uri().path(), "API write");
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_read_with_names_and_scopes() {
        let t = Tokens::parse("# ops\nA1\n\nB2 grafana read\nC3 read\nD4 ci\n").unwrap();
        let got: Vec<(&str, &str, Scope)> = t
            .tokens
            .iter()
            .map(|t| {
                (
                    std::str::from_utf8(&t.secret).unwrap(),
                    t.name.as_str(),
                    t.scope,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("A1", "token1", Scope::Write),
                ("B2", "grafana", Scope::Read),
                ("C3", "token3", Scope::Read),
                ("D4", "ci", Scope::Write),
            ]
        );
        assert_eq!(t.find(b"C3").map(|t| t.scope), Some(Scope::Read));
        assert!(t.find(b"C").is_none());
        assert!(t.find(b"C33").is_none());
        assert!(t.find(b"").is_none());
        // The secrets never show.
        assert!(!format!("{t:?}").contains("A1"));
    }

    #[test]
    fn bad_token_files_say_which_line() {
        for (text, says) in [
            ("", "no token"),
            ("# only a comment\n", "no token"),
            (
                "a b c d\n",
                "line 1: expected TOKEN [NAME] [read], got 4 fields",
            ),
            (
                "ok\na b write\n",
                "line 2: the third field may only be `read`",
            ),
            ("a\na other\n", "line 2: this token is listed twice"),
            ("a;b\n", "line 1: a token is printable ASCII"),
        ] {
            let e = Tokens::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_cookie() {
        let r = req(
            "GET",
            "/api/v1/hosts",
            &[("authorization", "Bearer  s3cret ")],
        );
        assert_eq!(presented(&r), Some(&b"s3cret"[..]));
        let r = req(
            "GET",
            "/api/v1/hosts",
            &[("authorization", "bearer s3cret")],
        );
        assert_eq!(presented(&r), Some(&b"s3cret"[..]));
        let r = req(
            "GET",
            "/api/v1/hosts",
            &[("authorization", "Basic czNjcmV0")],
        );
        assert_eq!(presented(&r), None);
        let r = req(
            "GET",
            "/",
            &[("cookie", "a=b; servswitch_token=s3cret; c=d")],
        );
        assert_eq!(presented(&r), Some(&b"s3cret"[..]));
        let r = req("GET", "/", &[("cookie", "servswitch_tokenx=s3cret")]);
        assert_eq!(presented(&r), None);
        assert!(open(&req("GET", "/metrics", &[])));
        assert!(open(&req("GET", "/healthz", &[])));
        assert!(!open(&req("POST", "/healthz", &[])));
        assert!(!open(&req("GET", "/api/v1/quarantine", &[])));
    }
}
