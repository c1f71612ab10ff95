//! The REST API (../shared/INTERFACE.md): JSON under `/api/v1`, Prometheus text at `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::app::router::Router;
use crate::switch::runtime::Controller;

/// What the API handlers read: the runtime, and the routing app when one runs.
#[derive(Clone)]
pub struct ApiState {
    pub ctl: Arc<Controller>,
    pub router: Option<Arc<Router>>,
    /// `--api-token-file` (None: the API is open).
    pub tokens: Option<Arc<crate::api::access::Tokens>>,
}

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
    let view = |h: &crate::switch::runtime::SwitchHandle| -> (Option<String>, Vec<PortView>) {
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

async fn get_switches(State(st): State<ApiState>) -> Json<Vec<SwitchView>> {
    Json(switches(&st.ctl))
}

/// One declared link as `GET /api/v1/links` shows it.
#[derive(Debug, Serialize)]
struct LinkView {
    a: String,
    b: String,
    /// `up` (routed over), `down` (a port down, a switch disconnected, dampened),
    /// `miswired` (LLDP arrived from another port) or `unverified` (no LLDP while its ports
    /// are up); all but `up` are out of use.
    state: &'static str,
    /// Why a link is out of use, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// What LLDP has found: `off` (a switch not connected), `waiting`, `verified`,
    /// `contradicted`.
    lldp: &'static str,
    /// What LLDP found against it (which port an end heard, or which end heard nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Every declared link with its state, in topology order.
async fn get_links(State(st): State<ApiState>) -> Response {
    let Some(router) = &st.router else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no routing app runs in this controller".into(),
        );
    };
    let view: Vec<LinkView> = router
        .link_states(router.now())
        .into_iter()
        .map(|l| LinkView {
            a: format!("{}:{}", l.a.0, l.a.1),
            b: format!("{}:{}", l.b.0, l.b.1),
            state: l.unused.map_or("up", |u| u.state()),
            reason: l.unused.map(|u| u.text()),
            lldp: l.lldp.text(),
            detail: l.detail,
        })
        .collect();
    Json(view).into_response()
}

/// Where a host lives or is: a subnet's switch and port.
#[derive(Debug, Serialize)]
pub struct PlaceView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    pub switch: String,
    pub port: u32,
}

/// One host as `GET /api/v1/hosts` shows it.
#[derive(Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub mac: String,
    pub ips: Vec<String>,
    pub home: PlaceView,
    pub location: PlaceView,
    pub care_of: Vec<String>,
    /// `configured` (topology file) or `learned`.
    pub origin: String,
    /// False for a learned host whose port went away: kept (with its last location) for
    /// the detached grace, movable by announcement or API meanwhile.
    pub attached: bool,
}

/// Every known host, one entry per MAC address, ordered by first address. `home` is the
/// switch of its home subnet (and the port it was at there); `location` where it is now;
/// `care_of` its care-of addresses while it is away (IPv4 first, then IPv6, as `ips`).
pub fn hosts(router: &Router) -> Vec<HostView> {
    let topo = &router.fabric.topology;
    router
        .host_states()
        .into_iter()
        .map(|h| {
            let name = topo
                .hosts
                .iter()
                .find(|c| c.mac == h.mac)
                .map(|c| c.name.clone())
                .or_else(|| h.ips.first().map(|ip| ip.to_string()))
                .or_else(|| h.ips6.first().map(|ip| ip.to_string()))
                .unwrap_or_else(|| h.mac.to_string());
            let subnet = h
                .ips
                .first()
                .and_then(|ip| router.fabric.subnet_of(*ip))
                .or_else(|| h.ips6.first().and_then(|ip| router.fabric.subnet_of6(*ip)))
                .map(|s| s.name.clone());
            HostView {
                name,
                mac: h.mac.to_string(),
                // IPv4 addresses first, then IPv6 (as the topology file's `ips` may list them).
                ips: h
                    .ips
                    .iter()
                    .map(|ip| ip.to_string())
                    .chain(h.ips6.iter().map(|ip| ip.to_string()))
                    .collect(),
                home: PlaceView {
                    subnet,
                    switch: h.home.0,
                    port: h.home.1,
                },
                location: PlaceView {
                    subnet: None,
                    switch: h.location.0,
                    port: h.location.1,
                },
                care_of: h
                    .care_of
                    .iter()
                    .map(|c| c.to_string())
                    .chain(h.care_of6.iter().map(|c| c.to_string()))
                    .collect(),
                origin: match h.origin {
                    crate::app::router::Origin::Configured => "configured".into(),
                    crate::app::router::Origin::Learned => "learned".into(),
                },
                attached: h.attached,
            }
        })
        .collect()
}

async fn get_hosts(State(st): State<ApiState>) -> Json<Vec<HostView>> {
    Json(st.router.as_deref().map(hosts).unwrap_or_default())
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Query of `GET /api/v1/flows/{switch}`.
#[derive(Debug, serde::Deserialize)]
pub struct FlowsQuery {
    /// `text` for ovs-ofctl dump-flows syntax; JSON otherwise.
    pub format: Option<String>,
    /// With `format=text`: `false` leaves out durations and counters (as `--no-stats`).
    pub stats: Option<bool>,
}

/// The connection of the topology's switch `name`: 404 for a switch the topology does not
/// have, 503 when it is not connected.
fn connected(
    st: &ApiState,
    name: &str,
) -> Result<crate::switch::runtime::SwitchHandle, (StatusCode, String)> {
    let conf = st
        .ctl
        .topology
        .switches
        .iter()
        .find(|s| s.name == name)
        .ok_or((StatusCode::NOT_FOUND, format!("no switch named {name:?}")))?;
    st.ctl.registry.get(conf.dpid.0).ok_or((
        StatusCode::SERVICE_UNAVAILABLE,
        format!("switch {name} is not connected"),
    ))
}

/// The live flow table, read from the switch with a flow-stats multipart request.
async fn get_flows(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<FlowsQuery>,
) -> Response {
    let h = match connected(&st, &name) {
        Ok(h) => h,
        Err((status, why)) => return error(status, why),
    };
    let flows = match crate::app::reconcile::read_table(&h).await {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("switch {name}: {e}")),
    };
    match q.format.as_deref() {
        Some("text") => {
            let stats = q.stats.unwrap_or(true);
            let mut text = String::new();
            for f in &flows {
                text.push(' ');
                text.push_str(&ofp13::text::flow_stats_line(f, stats));
                text.push('\n');
            }
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Some("json") | None => Json(flows).into_response(),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("format={other:?}: use text or json"),
        ),
    }
}

/// `GET /api/v1/meters/{switch}` parameters.
#[derive(Debug, serde::Deserialize)]
pub struct MetersQuery {
    /// `text` for one meter a line in `ovs-ofctl dump-meters` syntax; JSON otherwise.
    pub format: Option<String>,
}

/// A 400 for a `format` other than `text` or `json`.
fn bad_format(q: &MetersQuery) -> Option<Response> {
    let f = q.format.as_deref();
    (!matches!(f, None | Some("json") | Some("text"))).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("format={:?}: use text or json", f.unwrap_or_default()),
        )
    })
}

/// One live meter as `GET /api/v1/meters/{switch}` shows it.
#[derive(Debug, serde::Serialize)]
struct MeterView {
    /// `controller`, or the meter's number (a host port's: the same number).
    meter: String,
    id: u32,
    flags: Vec<&'static str>,
    bands: Vec<BandView>,
    /// Entries that use it.
    flow_count: u32,
    /// Packets that reached it, and those its bands dropped.
    packets: u64,
    dropped: u64,
}

#[derive(Debug, serde::Serialize)]
struct BandView {
    #[serde(rename = "type")]
    kind: String,
    rate: u32,
    burst_size: u32,
}

/// The live meter table of a switch, with each meter's counters (read from the switch; the
/// drops are also what `/metrics` reports from then on).
async fn get_meters(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<MetersQuery>,
) -> Response {
    if let Some(bad) = bad_format(&q) {
        return bad;
    }
    let h = match connected(&st, &name) {
        Ok(h) => h,
        Err((status, why)) => return error(status, why),
    };
    let read = async {
        match crate::app::reconcile::read_meters(&h).await? {
            Some(configs) => Ok((configs, crate::app::reconcile::read_meter_stats(&h).await?)),
            // A switch without meters has an empty meter table.
            None => Ok((Vec::new(), Vec::new())),
        }
    };
    let (configs, stats) = match read.await {
        Ok(v) => v,
        Err::<_, String>(e) => {
            return error(StatusCode::BAD_GATEWAY, format!("switch {name}: {e}"))
        }
    };
    let answer = if q.format.as_deref() == Some("text") {
        let mut text = String::new();
        for m in &configs {
            text.push(' ');
            text.push_str(&ofp13::text::meter_line(m));
            text.push('\n');
        }
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
    } else {
        let view: Vec<MeterView> = configs
            .iter()
            .map(|m| {
                let s = stats.iter().find(|s| s.meter_id == m.meter_id);
                MeterView {
                    meter: ofp13::text::meter_id_text(m.meter_id),
                    id: m.meter_id,
                    flags: ofp13::text::meter_flags_text(m.flags).collect(),
                    bands: m
                        .bands
                        .iter()
                        .map(|b| BandView {
                            kind: ofp13::text::meter_band_type_text(b),
                            rate: b.rate,
                            burst_size: b.burst_size,
                        })
                        .collect(),
                    flow_count: s.map_or(0, |s| s.flow_count),
                    packets: s.map_or(0, |s| s.packet_in_count),
                    dropped: s.map_or(0, ofp13::MeterStats::dropped),
                }
            })
            .collect();
        Json(view).into_response()
    };
    if let Some(router) = &st.router {
        router.record_meter_stats(&name, stats);
    }
    answer
}

/// One live group as `GET /api/v1/groups/{switch}` shows it.
#[derive(Debug, serde::Serialize)]
struct GroupView {
    group_id: u32,
    #[serde(rename = "type")]
    kind: String,
    buckets: Vec<BucketView>,
    /// Entries that use it.
    ref_count: u32,
    packets: u64,
    bytes: u64,
}

#[derive(Debug, serde::Serialize)]
struct BucketView {
    weight: u16,
    /// The port whose liveness the bucket follows (none: `null`).
    watch_port: Option<u32>,
    watch_group: Option<u32>,
    /// In ovs-ofctl syntax.
    actions: Vec<String>,
    /// Packets and bytes the bucket has taken: how traffic spreads over the next hops.
    packets: u64,
    bytes: u64,
}

/// The live group table of a switch, with each group's and bucket's counters
/// (`?format=text`: one group a line in `ovs-ofctl dump-groups` syntax, what `verify`
/// compares with the plan).
async fn get_groups(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<MetersQuery>,
) -> Response {
    if let Some(bad) = bad_format(&q) {
        return bad;
    }
    let h = match connected(&st, &name) {
        Ok(h) => h,
        Err((status, why)) => return error(status, why),
    };
    let groups = match crate::app::reconcile::read_groups(&h).await {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("switch {name}: {e}")),
    };
    if q.format.as_deref() == Some("text") {
        let mut text = String::new();
        for g in &groups {
            text.push(' ');
            text.push_str(&ofp13::text::group_line(g));
            text.push('\n');
        }
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    let stats = match crate::app::reconcile::read_group_stats(&h).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("switch {name}: {e}")),
    };
    let set = |v: u32, none: u32| (v != none).then_some(v);
    let view: Vec<GroupView> = groups
        .iter()
        .map(|g| {
            let s = stats.iter().find(|s| s.group_id == g.group_id);
            GroupView {
                group_id: g.group_id,
                kind: ofp13::text::group_type_text(g.group_type),
                buckets: g
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let c = s.and_then(|s| s.bucket_stats.get(i));
                        BucketView {
                            weight: b.weight,
                            watch_port: set(b.watch_port, ofp13::port::ANY),
                            watch_group: set(b.watch_group, ofp13::group::ANY),
                            actions: b.actions.iter().map(ofp13::text::action_text).collect(),
                            packets: c.map_or(0, |c| c.packet_count),
                            bytes: c.map_or(0, |c| c.byte_count),
                        }
                    })
                    .collect(),
                ref_count: s.map_or(0, |s| s.ref_count),
                packets: s.map_or(0, |s| s.packet_count),
                bytes: s.map_or(0, |s| s.byte_count),
            }
        })
        .collect();
    Json(view).into_response()
}

/// What the controller plans for switch `name` now, as text lines (one per entry or meter,
/// each indented by a space as ovs-ofctl prints them): `lines` picks them from the router.
fn planned_text(st: &ApiState, name: &str, lines: impl FnOnce(&Router) -> Vec<String>) -> Response {
    if !st.ctl.topology.switches.iter().any(|s| s.name == name) {
        return error(StatusCode::NOT_FOUND, format!("no switch named {name:?}"));
    }
    let Some(router) = &st.router else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no routing app runs in this controller".into(),
        );
    };
    let mut text = String::new();
    for l in lines(router) {
        text.push(' ');
        text.push_str(&l);
        text.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// The meters the controller wants on a switch now, one a line as `plan --meters` prints
/// them: what `verify` compares `GET /api/v1/meters/{switch}?format=text` with.
async fn get_plan_meters(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    planned_text(&st, &name, |r| {
        r.switch_meters(&name).iter().map(|m| m.text()).collect()
    })
}

/// The groups the controller wants on a switch now, one a line as `plan --groups` prints
/// them: what `verify` compares `GET /api/v1/groups/{switch}?format=text` with.
async fn get_plan_groups(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    planned_text(&st, &name, |r| {
        r.switch_groups(&name).iter().map(|g| g.text()).collect()
    })
}

/// The table the controller wants on a switch now (with every migration and learned host),
/// in `ovs-ofctl dump-flows --no-stats` syntax and `plan`'s order: what `verify` compares
/// the live table with.
async fn get_plan(
    State(st): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    planned_text(&st, &name, |r| {
        r.switch_plan(&name).iter().map(|f| f.text()).collect()
    })
}

/// Body of `POST /api/v1/migrations`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationRequest {
    /// A host name, one of its addresses, or its MAC.
    pub host: String,
    /// `SWITCH:PORT`.
    pub to: String,
    /// `now` (the default): migrate at once; `announced`: arm the move, committed by the
    /// host's first announcement at `to`.
    #[serde(default)]
    pub when: When,
    /// How long an armed move waits (seconds; default 120).
    #[serde(default)]
    pub ttl_s: Option<f64>,
}

/// When a requested migration happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    #[default]
    Now,
    Announced,
}

/// Migrates a host; answers after every affected switch acknowledged (barrier).
async fn post_migration(
    State(st): State<ApiState>,
    body: Result<Json<MigrationRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(router) = st.router.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no routing app runs in this controller".into(),
        );
    };
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {}", e.body_text()),
            )
        }
    };
    let to: crate::fabric::topology::PortRef = match req.to.parse() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("\"to\": {e}")),
    };
    if req.when == When::Announced {
        let ttl = match req.ttl_s {
            None => crate::app::trust::DEFAULT_ARM_TTL,
            Some(t)
                if t.is_finite()
                    && t > 0.0
                    && t <= crate::app::trust::MAX_ARM_TTL.as_secs_f64() =>
            {
                std::time::Duration::from_secs_f64(t)
            }
            Some(t) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "\"ttl_s\": {t} is not a number of seconds above 0 and at most {}",
                        crate::app::trust::MAX_ARM_TTL.as_secs()
                    ),
                )
            }
        };
        return match router.arm(&req.host, &to, ttl) {
            Ok(v) => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "id": v.id,
                    "host": v.host,
                    "to": v.to,
                    "expires_in_s": v.expires_in_s,
                })),
            )
                .into_response(),
            Err(e) => error(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.to_string(),
            ),
        };
    }
    if req.ttl_s.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "\"ttl_s\" is for \"when\": \"announced\" only".into(),
        );
    }
    match router.migrate(&req.host, &to).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        ),
    }
}

/// Armed moves, then recent migrations and ended arms, newest first.
async fn get_migrations(State(st): State<ApiState>) -> Response {
    match st.router.as_deref() {
        Some(r) => Json(r.moves()).into_response(),
        None => Json(Vec::<crate::app::trust::MoveView>::new()).into_response(),
    }
}

/// Cancels an armed move: 204; 404 when no move with that id waits.
async fn delete_migration(
    State(st): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match st.router.as_deref() {
        Some(r) if r.cancel_move(&id) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no armed move {id:?}")),
    }
}

/// Forgets a learned host (by name, address or MAC) and removes its entries: 204; 404 for
/// an unknown host, 409 for one declared in the topology file.
async fn delete_host(
    State(st): State<ApiState>,
    axum::extract::Path(sel): axum::extract::Path<String>,
) -> Response {
    let Some(router) = st.router.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no routing app runs in this controller".into(),
        );
    };
    let Some(mac) = router.find_host(&sel) else {
        return error(StatusCode::NOT_FOUND, format!("no host {sel:?}"));
    };
    match router.forget(mac, None).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(crate::app::migrate::ForgetError::Unknown) => {
            error(StatusCode::NOT_FOUND, format!("no host {sel:?}"))
        }
        Err(e @ crate::app::migrate::ForgetError::Declared) => {
            error(StatusCode::CONFLICT, format!("{sel}: {e}"))
        }
    }
}

/// Claimants (switch, port, MAC) whose claims of a host were refused, with the seconds left.
async fn get_quarantine(State(st): State<ApiState>) -> Response {
    match st.router.as_deref() {
        Some(r) => Json(r.quarantine_list()).into_response(),
        None => Json(Vec::<crate::app::trust::QuarantineView>::new()).into_response(),
    }
}

/// Ends every quarantine: 204.
async fn delete_quarantine(State(st): State<ApiState>) -> Response {
    if let Some(r) = st.router.as_deref() {
        let n = r.clear_quarantine();
        tracing::info!(cleared = n, "quarantine cleared through the API");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_healthz() -> &'static str {
    "ok"
}

async fn get_metrics(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut text = st.ctl.metrics.render(st.ctl.registry.len());
        if let Some(r) = &st.router {
            text.push_str(&r.metrics_text());
        }
        text
    })
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
pub fn routes(state: ApiState) -> axum::Router {
    let tokens = state.tokens.clone();
    let app = axum::Router::new()
        .route("/api/v1/switches", get(get_switches))
        .route("/api/v1/hosts", get(get_hosts))
        .route("/api/v1/hosts/{host}", axum::routing::delete(delete_host))
        .route(
            "/api/v1/quarantine",
            get(get_quarantine).delete(delete_quarantine),
        )
        .route("/healthz", get(get_healthz))
        .route("/api/v1/flows/{switch}", get(get_flows))
        .route(
            "/api/v1/migrations",
            axum::routing::post(post_migration).get(get_migrations),
        )
        .route(
            "/api/v1/migrations/{id}",
            axum::routing::delete(delete_migration),
        )
        .route("/api/v1/plan/{switch}", get(get_plan))
        .route("/api/v1/plan/{switch}/meters", get(get_plan_meters))
        .route("/api/v1/plan/{switch}/groups", get(get_plan_groups))
        .route("/api/v1/groups/{switch}", get(get_groups))
        .route("/api/v1/links", get(get_links))
        .route("/api/v1/meters/{switch}", get(get_meters))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .with_state(state);
    match tokens {
        Some(t) => app.layer(axum::middleware::from_fn_with_state(
            t,
            crate::api::access::require,
        )),
        None => app,
    }
}

/// Serves the API of a controller without a routing app until `shutdown` resolves.
pub async fn serve(
    ctl: Arc<Controller>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        ApiState {
            ctl,
            router: None,
            tokens: None,
        },
        listener,
        shutdown,
    )
    .await
}

/// Serves the API on `listener` (plain TCP, or [`crate::api::tls::TlsListener`]) until
/// `shutdown` resolves.
pub async fn serve_with<L>(
    state: ApiState,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, routes(state))
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
