//! The HTTP API. Every error is JSON (`{"error": "..."}`) with a status that tells the agent
//! what to do: 4xx is final for that request, 429/503 carry `Retry-After`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Query, State as AxState},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde_json::json;
use sysward_proto::{
    AckResponse, DecodeError, EnrollRequest, EnrollResponse, EnrollStatus, ErrorResponse, Limits,
    decode_batch,
};
use tokio::sync::Semaphore;
use tracing::{info, warn};

mod admin;
mod auth;
mod dashboards;
mod enroll;
mod events;
mod foreign;
mod grafana;
mod ingest;
mod labels;
mod notify;
mod otlp;
mod prom;
mod query;
mod read;
mod remote_write;
mod renew;
mod rules;
mod session;
mod status;
mod ui;

pub use admin::metrics_text;
pub(crate) use auth::Access;
pub use dashboards::PUBLIC_EVALUATIONS;
pub use session::PASSWORD_CHECKS;

use crate::{
    config::QueryConfig,
    metrics::{self, ProcessStats, ServerMetrics},
    pki::{Pki, agent_id_of},
    state::{AgentStatus, State, StateError, random_hex},
    store::{IngestBatch, IngestOutcome, ReadRequest, SeriesData, Store, Tier, TierChoice},
    tls::{PeerAddr, PeerCert},
};

/// Enough for a CSR, a host name and labels.
const MAX_ENROLL_BODY: usize = 64 * 1024;
/// Bounds what unauthenticated callers can make the server store.
const MAX_PENDING_AGENTS: usize = 1000;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub state: Arc<State>,
    pub pki: Arc<Pki>,
    pub limits: Limits,
    pub ingest_permits: Semaphore,
    /// How many permits `ingest_permits` started with.
    pub ingest_slots: usize,
    pub metrics: ServerMetrics,
    /// `[query]`: the engine's limits.
    pub query: QueryConfig,
    /// One per query evaluated at once (`[query] max_concurrent`); others wait in turn.
    pub query_permits: Arc<Semaphore>,
    /// Alerting and recording rules.
    pub rules: Arc<crate::rules::RuleEngine>,
    /// Delivers alerts to receivers.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Provisions Grafana (`[grafana]`).
    pub grafana: Arc<crate::grafana::Grafana>,
    /// The config file, read again by a reload.
    pub config_path: Option<std::path::PathBuf>,
    /// The server's own health: the probes' latest findings and request durations.
    pub health: Arc<crate::health::HealthMonitor>,
    /// `[health]`.
    pub health_config: crate::health::HealthConfig,
    /// `[storage] min_free`: refuses ingest while the disk is nearly full.
    pub disk_guard: Arc<crate::health::DiskGuard>,
    /// Remote write and OTLP ingest: what each series last stored.
    pub foreign: crate::ingest_foreign::ForeignWriter,
    /// `[[remote_write]]` targets, for `/metrics`.
    pub remote_write: Arc<crate::remote_write::RemoteWrite>,
    /// `[ui]`: the console's sessions.
    pub ui: crate::config::UiConfig,
    /// Failed sign-ins to the console, per user and per address.
    pub sign_ins: crate::session::SignInLimiter,
    /// Password verifications running at once (each holds Argon2's memory).
    pub password_checks: Semaphore,
    /// `[listen] public_url` or the derived one: what join tokens carry.
    pub public_url: String,
    /// `[admin] join_token_ttl`: how long a join token made without a `ttl` lasts.
    pub join_token_ttl: std::time::Duration,
    /// Widgets of public dashboards evaluated at once ([`PUBLIC_EVALUATIONS`]); more are
    /// answered 429, so that anonymous readers cannot take every query slot.
    pub public_evaluations: Semaphore,
}

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/v1/enroll", post(enroll::enroll))
        .route("/api/v1/ingest", post(ingest::ingest))
        .route("/api/v1/renew", post(renew::renew))
        .route("/api/v1/write", post(remote_write::write))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/api/v1/series", get(read::series).post(read::series))
        .route("/api/v1/read", get(read::read))
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route("/api/v1/labels", get(labels::labels).post(labels::labels))
        .route("/api/v1/label/{name}/values", get(labels::label_values))
        .route("/api/v1/metadata", get(labels::metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/checks", get(events::checks))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alerts/history", get(rules::history))
        .route("/api/v1/alerts/outbox", get(rules::outbox))
        .route("/-/reload", post(rules::reload))
        .route("/api/v1/notifications", get(notify::history))
        .route("/api/v1/alerts/groups", get(notify::groups))
        .route("/api/v1/alerts/ack", post(notify::ack))
        .route(
            "/api/v1/ack/{token}",
            get(notify::ack_page).post(notify::ack_link),
        )
        .route(
            "/api/v1/silences",
            get(notify::silences).post(notify::add_silence),
        )
        .route("/api/v1/silence/{id}", delete(notify::expire_silence))
        .route(
            "/api/v1/notify/test/{receiver}",
            post(notify::test_receiver),
        )
        .route("/api/v1/agents", get(admin::agents))
        .route("/api/v1/agents/{id}/approve", post(admin::approve))
        .route("/api/v1/agents/{id}/revoke", post(admin::revoke))
        .route(
            "/api/v1/join-tokens",
            get(admin::join_tokens).post(admin::create_join_tokens),
        )
        .route("/api/v1/join-tokens/{id}", delete(admin::delete_join_token))
        .route(
            "/api/v1/dashboards",
            get(dashboards::list).post(dashboards::create),
        )
        .route(
            "/api/v1/dashboards/{id}",
            get(dashboards::get_one)
                .put(dashboards::update)
                .delete(dashboards::remove),
        )
        .route(
            "/api/v1/dashboards/{id}/public",
            axum::routing::put(dashboards::set_public),
        )
        .route("/api/grafana/health", get(grafana::health))
        .route("/metrics", get(admin::metrics))
        .merge(ui::router())
        .route_layer(axum::middleware::from_fn_with_state(
            app.health.clone(),
            crate::health::record_http_duration,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn(auth::remember_method))
        .with_state(app)
}

/// An error answer: a status and one sentence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry(status: StatusCode, message: impl Into<String>, seconds: u32) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: Some(seconds),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorResponse {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// 503 with `Retry-After` while free space is below `[storage] min_free`: every ingest
/// path asks before reading its body.
fn check_disk(app: &AppState) -> Result<(), ApiError> {
    let Err(low) = app.disk_guard.check() else {
        return Ok(());
    };
    sysward_log_limit::warn_limited!(
        format!(
            "{} bytes free, below [storage] min_free = {}",
            low.available_bytes, low.min_free_bytes
        ),
        "Ingest refused: the data directory's disk is nearly full."
    );
    Err(ApiError::retry(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server's disk is nearly full ({} MiB free, [storage] min_free is {} MiB); retry later",
            low.available_bytes >> 20,
            low.min_free_bytes >> 20
        ),
        30,
    ))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    sysward_log_limit::warn_limited!(error, "Internal error.");
    ApiError::retry(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("server error: {error}"),
        5,
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

/// `GET /api/health`: `ok`, `degraded` or `failing` with the reasons; 503 only when
/// failing, so that a load balancer keeps a degraded server. With a read token it adds the
/// details (disk, certificates, silent agents by name); anonymous callers learn no names.
async fn health(AxState(app): AxState<Arc<AppState>>, headers: HeaderMap) -> Response {
    let store = app.store.clone();
    let storage_ok = blocking(move || store.healthy()).await.unwrap_or(false);
    let snapshot = app.health.latest();
    let (status, problems) = crate::health::assess(&snapshot, storage_ok, &app.health_config);
    let code = if status == crate::health::Status::Failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "problems": problems,
        "storage": { "ok": storage_ok },
    });
    // A missing or wrong token still gets the status: monitors of the monitor need no
    // credentials for that.
    let has_credentials =
        headers.contains_key(header::AUTHORIZATION) || auth::session_id_of(&headers).is_some();
    let authorized = has_credentials && require(&app, &headers, Access::Read).await.is_ok();
    if authorized {
        body["details"] = json!(snapshot);
    }
    (code, Json(body)).into_response()
}

async fn require_admin(app: &Arc<AppState>, headers: &HeaderMap) -> Result<(), ApiError> {
    require(app, headers, Access::Admin).await
}

/// Lets a request through when its credentials allow `needed` (see `auth.rs`).
async fn require(app: &Arc<AppState>, headers: &HeaderMap, needed: Access) -> Result<(), ApiError> {
    auth::authorize(app, headers, needed)
        .await
        .map_err(|denied| match denied {
            auth::Denied::Internal(e) => internal(e),
            other => ApiError::new(other.status(), other.message()),
        })
}

/// As [`require`], with who the caller is (a token or a session, and its name).
async fn require_caller(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<auth::Caller, ApiError> {
    auth::authorize_caller(app, headers, needed)
        .await
        .map_err(|denied| match denied {
            auth::Denied::Internal(e) => internal(e),
            other => ApiError::new(other.status(), other.message()),
        })
}

/// The whole body, refused past `limit` bytes.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over the limit of {limit} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
        }
    })
}
