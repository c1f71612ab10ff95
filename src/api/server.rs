//! `servswitch run`: wires the topology, the OpenFlow listener, the REST API, logging and
//! signal handling together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::api::handlers;
use crate::app::router::Router;
use crate::fabric::plan::Fabric;
use crate::fabric::topology::Topology;
use crate::switch::runtime::RuntimeConfig;
use crate::switch::session::SessionConfig;

/// The OpenFlow port IANA assigned.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:6653";

/// Everything `servswitch run` takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub topology: PathBuf,
    pub listen: Option<String>,
    pub api: Option<String>,
    pub state: Option<PathBuf>,
    /// How often each switch's table is compared with the plan (None: only on connect).
    pub audit: Option<Duration>,
    pub accept_unmanaged: bool,
    /// Worker threads of the runtime (None: one per CPU).
    pub workers: Option<usize>,
    pub echo_interval: Duration,
    pub echo_misses: u32,
    pub master_generation: Option<u64>,
    /// Certificate chain, key and switch CA, all PEM.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// How long a learned host whose port went away is kept.
    pub detached_grace: Duration,
    /// Whether the declared links are checked with LLDP (`run --lldp check`).
    pub lldp: bool,
    /// Idle timeout (seconds) of a VM's rewrite on switches beyond its default cover.
    pub cover_idle: u16,
    /// What an unexpected announcement does.
    pub announcements: crate::app::trust::Announcements,
    /// How long a refused claimant is ignored.
    pub quarantine: Duration,
    /// The meters on controller-bound traffic.
    pub limits: crate::fabric::plan::PacketInLimits,
    /// `--api-token-file`: who may call the API (None: anyone who reaches it).
    pub api_tokens: Option<PathBuf>,
    /// `--api-tls-cert`, `--api-tls-key`: HTTPS for the API.
    pub api_tls: Option<(PathBuf, PathBuf)>,
}

/// Logs to stderr at the level `RUST_LOG` names (default `info`).
///
/// `RUST_LOG` of targets and levels (`info`, `servswitch=debug,warn`), the usual form, is
/// read as a static filter (`Targets`); only one with span or field directives
/// (`[switch{dpid=...}]=debug`) takes `EnvFilter`, which supports them at a price: it takes a
/// process-wide read lock each time any span is entered or left, and every switch
/// connection's task runs in its span, so the runtime's worker threads passed that lock's
/// cache line back and forth on every wake-up (docs/performance.md).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(output);
    let _ = match log_filter(&std::env::var("RUST_LOG").unwrap_or_default()) {
        LogFilter::Targets(t) => registry.with(*t).try_init(),
        LogFilter::Env(f) => registry.with(*f).try_init(),
    };
}

/// The filter a `RUST_LOG` value asks for ([`init_logging`]).
#[derive(Debug)]
enum LogFilter {
    Targets(Box<tracing_subscriber::filter::Targets>),
    Env(Box<tracing_subscriber::EnvFilter>),
}

/// Targets and levels as a static filter; span or field directives (which would parse as a
/// target's name) by `EnvFilter`; empty or unreadable: `info`, as before.
fn log_filter(spec: &str) -> LogFilter {
    let spec = match spec.trim() {
        "" => "info",
        s => s,
    };
    if !spec.contains(['[', '{']) {
        if let Ok(t) = spec.parse() {
            return LogFilter::Targets(Box::new(t));
        }
    }
    LogFilter::Env(Box::new(
        tracing_subscriber::EnvFilter::try_new(spec)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    ))
}

/// Runs the controller until SIGINT or SIGTERM.
pub fn run(opts: Options) -> Result<()> {
    init_logging();
    let topology = Topology::load(&opts.topology).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listen: SocketAddr = match (&opts.listen, topology.controller.listen) {
        (Some(s), _) => handlers::parse_addr("--listen", s)?,
        (None, Some(a)) => a,
        (None, None) => handlers::parse_addr("--listen", DEFAULT_LISTEN)?,
    };
    let api_addr: SocketAddr = match (&opts.api, topology.controller.api) {
        (Some(s), _) => handlers::parse_addr("--api", s)?,
        (None, Some(a)) => a,
        (None, None) => handlers::parse_addr("--api", handlers::DEFAULT_API)?,
    };
    // Read before anything listens: a state that cannot be read stops the start, so nothing
    // is ever sent that contradicts it.
    let mut router = Router::new(
        Fabric::new(&topology)
            .with_cover_idle(opts.cover_idle)
            .with_limits(opts.limits),
    )
    .with_audit(opts.audit)
    .with_detached_grace(opts.detached_grace)
    .with_lldp(opts.lldp)
    .with_announcements(opts.announcements)
    .with_quarantine(opts.quarantine);
    if let Some(dir) = &opts.state {
        let (store, state) = crate::app::store::Store::open(dir)
            .map_err(|e| anyhow::anyhow!("--state {}: {e}", dir.display()))?;
        router
            .restore(&state)
            .map_err(|e| anyhow::anyhow!("--state {}: {e}", store.path().display()))?;
        info!(file = %store.path().display(), migrated_vms = state.vms.len(), "state loaded");
        router = router.with_store(store);
    }
    let tokens = match &opts.api_tokens {
        Some(p) => Some(Arc::new(
            crate::api::access::Tokens::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
        None => None,
    };
    let api_tls = match &opts.api_tls {
        Some((c, k)) => Some(crate::switch::tls::api_acceptor(c, k)?),
        None => None,
    };
    let tls = match &opts.tls {
        Some((c, k, a)) => Some(crate::switch::tls::acceptor(c, k, a)?),
        None => None,
    };
    let config = RuntimeConfig {
        session: SessionConfig {
            echo_interval: opts.echo_interval,
            echo_misses: opts.echo_misses,
            master_generation: opts.master_generation,
            ..SessionConfig::default()
        },
        accept_unmanaged: opts.accept_unmanaged,
        ..RuntimeConfig::default()
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = opts.workers {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let of = listen_switches(listen)
            .with_context(|| format!("cannot listen for switches on {listen}"))?;
        let api_listener = TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("cannot listen for the REST API on {api_addr}"))?;
        let (router, ctl) = router.serve_with(topology, config);
        info!(
            openflow = %of.local_addr().unwrap_or(listen),
            api = %api_listener.local_addr().unwrap_or(api_addr),
            tls = tls.is_some(),
            api_tls = api_tls.is_some(),
            switches = ctl.topology.switches.len(),
            "servswitch running"
        );
        let api_local = api_listener.local_addr().unwrap_or(api_addr);
        match &tokens {
            Some(t) => info!(tokens = t.len(), "the API needs a token"),
            None if !api_local.ip().is_loopback() => warn!(
                api = %api_local,
                "the REST API listens beyond loopback without --api-token-file: anyone who reaches it can move hosts"
            ),
            None => {}
        }
        let token = ctl.shutdown_token();
        let state = handlers::ApiState {
            ctl: ctl.clone(),
            router: Some(router),
            tokens,
        };
        let stop = async move { token.cancelled().await };
        let api_task = match api_tls {
            Some(acceptor) => tokio::spawn(handlers::serve_with(
                state,
                crate::api::tls::TlsListener::new(api_listener, acceptor)?,
                stop,
            )),
            None => tokio::spawn(handlers::serve_with(state, api_listener, stop)),
        };
        let serve = ctl.serve(of, tls);
        tokio::select! {
            r = serve => r.context("OpenFlow listener failed")?,
            s = shutdown_signal() => info!(signal = s, "shutting down"),
        }
        ctl.shutdown(Duration::from_secs(5)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
        info!("stopped");
        Ok(())
    })
}

/// The OpenFlow listener, with a backlog for a whole fabric reconnecting at once (tokio's
/// default of 128 drops connection requests when 1,000 switches arrive together; each then
/// waits a second for its retry).
fn listen_switches(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;
    use tracing::Level;

    fn targets(spec: &str) -> tracing_subscriber::filter::Targets {
        match log_filter(spec) {
            LogFilter::Targets(t) => *t,
            other => panic!("{spec:?} gave {other:?}"),
        }
    }

    #[test]
    fn targets_and_levels_are_a_static_filter() {
        assert_eq!(targets("").default_level(), Some(LevelFilter::INFO));
        assert_eq!(targets("  ").default_level(), Some(LevelFilter::INFO));
        assert_eq!(targets("debug").default_level(), Some(LevelFilter::DEBUG));
        let t = targets("warn,servswitch::switch=trace");
        assert!(t.would_enable("servswitch::switch::runtime", &Level::TRACE));
        assert!(!t.would_enable("servswitch::app::router", &Level::INFO));
        assert!(t.would_enable("servswitch::app::router", &Level::WARN));
        let t = targets("servswitch=debug");
        assert!(t.would_enable("servswitch::app", &Level::DEBUG));
        assert!(!t.would_enable("tokio", &Level::ERROR));
    }

    #[test]
    fn span_directives_and_unreadable_values_take_env_filter() {
        for spec in [
            "[switch]=debug",
            "servswitch[switch{dpid=1}]=debug",
            "a=b=c",
        ] {
            assert!(matches!(log_filter(spec), LogFilter::Env(_)), "{spec:?}");
        }
        // Unreadable by both: info, as RUST_LOG's parse error always gave.
        let LogFilter::Env(f) = log_filter("a=b=c") else {
            unreachable!()
        };
        assert_eq!(f.max_level_hint(), Some(LevelFilter::INFO));
    }
}
