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
mod enroll;
mod events;
mod ingest;
mod labels;
mod notify;
mod prom;
mod query;
mod read;
mod rules;
mod status;

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
    pub metrics: ServerMetrics,
    /// `[query]`: the engine's limits.
    pub query: QueryConfig,
    /// One per query evaluated at once (`[query] max_concurrent`); others wait in turn.
    pub query_permits: Arc<Semaphore>,
    /// Alerting and recording rules.
    pub rules: Arc<crate::rules::RuleEngine>,
    /// Delivers alerts to receivers.
    pub notifier: Arc<crate::notify::Notifier>,
    /// The config file, read again by a reload.
    pub config_path: Option<std::path::PathBuf>,
    /// `[[remote_write]]` targets, for `/metrics`.
    pub remote_write: Arc<crate::remote_write::RemoteWrite>,
}

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/v1/enroll", post(enroll::enroll))
        .route("/api/v1/ingest", post(ingest::ingest))
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
        .route("/metrics", get(admin::metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
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

fn internal(error: impl std::fmt::Display) -> ApiError {
    warn!(%error, "Internal error.");
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

async fn health(AxState(app): AxState<Arc<AppState>>) -> Response {
    let store = app.store.clone();
    let ok = blocking(move || store.healthy()).await.unwrap_or(false);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "storage": { "ok": ok },
    });
    (status, Json(body)).into_response()
}

async fn require_admin(app: &Arc<AppState>, headers: &HeaderMap) -> Result<(), ApiError> {
    require(app, headers, crate::state::Role::Admin).await
}

/// Lets a request through when its token's role allows `needed` (see `auth.rs`).
async fn require(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: crate::state::Role,
) -> Result<(), ApiError> {
    auth::authorize(app, headers, needed)
        .await
        .map(|_| ())
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
