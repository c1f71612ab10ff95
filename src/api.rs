//! The REST API (../shared/INTERFACE.md): JSON under `/api/v1`, Prometheus text at `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::runtime::Controller;

/// One port as the API shows it.
#[derive(Debug, Serialize)]
pub struct PortView {
    pub port_no: u32,
    pub name: String,
    pub hw_addr: String,
    pub up: bool,
}

/// One switch as `GET /api/v1/switches` shows it.
#[derive(Debug, Serialize)]
pub struct SwitchView {
    pub name: String,
    pub dpid: u64,
    pub dpid_str: String,
    pub tier: Option<String>,
    pub connected: bool,
    pub managed: bool,
    pub peer: Option<String>,
    pub ports: Vec<PortView>,
}

/// The topology's switches in file order with their live state, then any unmanaged ones.
pub fn switches(ctl: &Controller) -> Vec<SwitchView> {
    let view = |h: &crate::runtime::SwitchHandle| -> (Option<String>, Vec<PortView>) {
        let ports = h
            .info
            .ports()
            .into_iter()
            .filter(|p| p.port_no <= ofp13::port::MAX)
            .map(|p| PortView {
                port_no: p.port_no,
                up: p.is_up(),
                name: p.name,
                hw_addr: p.hw_addr.to_string(),
            })
            .collect();
        (Some(h.info.peer.to_string()), ports)
    };
    let mut out: Vec<SwitchView> = ctl
        .topology
        .switches
        .iter()
        .map(|s| {
            let live = ctl.registry.get(s.dpid.0);
            let (peer, ports) = live.as_ref().map(view).unwrap_or((None, Vec::new()));
            SwitchView {
                name: s.name.clone(),
                dpid: s.dpid.0,
                dpid_str: s.dpid.to_string(),
                tier: Some(s.tier.to_string()),
                connected: live.is_some(),
                managed: true,
                peer,
                ports,
            }
        })
        .collect();
    for h in ctl.registry.all().iter().filter(|h| !h.info.managed) {
        let (peer, ports) = view(h);
        out.push(SwitchView {
            name: h.info.dpid.to_string(),
            dpid: h.info.dpid.0,
            dpid_str: h.info.dpid.to_string(),
            tier: None,
            connected: true,
            managed: false,
            peer,
            ports,
        });
    }
    out
}

async fn get_switches(State(ctl): State<Arc<Controller>>) -> Json<Vec<SwitchView>> {
    Json(switches(&ctl))
}

async fn get_metrics(State(ctl): State<Arc<Controller>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctl.metrics.render(ctl.registry.len()),
    )
        .into_response()
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no such endpoint: {}", uri.path()) })),
    )
        .into_response()
}

/// The API's routes.
pub fn router(ctl: Arc<Controller>) -> Router {
    Router::new()
        .route("/api/v1/switches", get(get_switches))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .with_state(ctl)
}

/// Serves the API on `listener` until the controller shuts down.
pub async fn serve(
    ctl: Arc<Controller>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctl))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address the API listens on when neither flag nor file says.
pub const DEFAULT_API: &str = "127.0.0.1:8080";

/// Parses a listen address, naming the flag in the error.
pub fn parse_addr(flag: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {s:?} is not an address like 127.0.0.1:8080"))
}
