//! The HTTP API. Every error is JSON (`{"error": "..."}`) with a status that tells the agent
//! what to do: 4xx is final for that request, 429/503 carry `Retry-After`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Query, State as AxState},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;
use sysward_proto::{
    AckResponse, DecodeError, EnrollRequest, EnrollResponse, EnrollStatus, ErrorResponse, Limits,
    decode_batch,
};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::{
    metrics::{self, ProcessStats, ServerMetrics},
    pki::{Pki, agent_id_of},
    query::parse_selector,
    state::{AgentStatus, State, StateError, random_hex},
    store::{IngestBatch, IngestOutcome, ReadRequest, SeriesData, Store, Tier, TierChoice},
    tls::{PeerAddr, PeerCert},
};

/// Enough for a CSR, a host name and labels.
const MAX_ENROLL_BODY: usize = 64 * 1024;
/// Bounds what unauthenticated callers can make the server store.
const MAX_PENDING_AGENTS: usize = 1000;

pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) state: Arc<State>,
    pub(crate) pki: Arc<Pki>,
    pub(crate) limits: Limits,
    pub(crate) ingest_permits: Semaphore,
    pub(crate) metrics: ServerMetrics,
}

pub(crate) fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/series", get(series))
        .route("/api/v1/read", get(read_raw))
        .route("/api/v1/agents", get(agents))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(app)
}

/// An error answer: a status and one sentence.
#[derive(Debug)]
pub(crate) struct ApiError {
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

async fn enroll(
    AxState(app): AxState<Arc<AppState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let peer = peer.map(|p| p.0.0.to_string()).unwrap_or_default();
    let bytes = read_body(body, MAX_ENROLL_BODY).await?;
    let req: EnrollRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("enrollment request is malformed: {e}"),
        )
    })?;
    let hostname = req.hostname.trim().to_string();
    if hostname.is_empty() || hostname.len() > 253 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "hostname must be 1 to 253 bytes",
        ));
    }
    let ca_pem = app.pki.ca_pem.clone();
    let app2 = app.clone();
    blocking(move || {
        let app = app2;
        let answer = |status, agent_id: String, cert_pem| EnrollResponse {
            status,
            agent_id,
            cert_pem,
            server_ca_pem: ca_pem.clone(),
        };
        if let Some(secret) = &req.secret {
            let agent_id = format!("ag-{}", random_hex(8));
            // Sign before using the token, so that a bad CSR does not burn it.
            let cert = app.pki.sign_agent_csr(&req.csr_pem, &agent_id).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}"))
            })?;
            match app.state.enroll_with_token(secret, &agent_id, &hostname) {
                Ok(()) => {
                    info!(agent_id, hostname, %peer, "Agent enrolled with a join token.");
                    Ok(Json(answer(EnrollStatus::Approved, agent_id, Some(cert))))
                }
                Err(e @ (StateError::UnknownToken | StateError::UsedToken | StateError::ExpiredToken)) => {
                    warn!(hostname, %peer, error = %e, "Enrollment refused.");
                    Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
                }
                Err(e) => Err(internal(e)),
            }
        } else if let Some(agent_id) = &req.agent_id {
            let row = app.state.agent(agent_id).map_err(internal)?.ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("no enrollment request {agent_id}"))
            })?;
            match row.status {
                AgentStatus::Pending => Ok(Json(answer(EnrollStatus::Pending, row.id, None))),
                AgentStatus::Revoked => {
                    warn!(agent_id, %peer, "Enrollment poll for a revoked agent refused.");
                    Err(ApiError::new(StatusCode::FORBIDDEN, format!("agent {agent_id} is revoked")))
                }
                AgentStatus::Approved => {
                    // Only the holder of the key that made the request may collect the cert.
                    if row.csr_pem.as_deref() != Some(req.csr_pem.as_str()) {
                        warn!(agent_id, %peer, "Enrollment poll with another CSR refused.");
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "this request does not match the one that was approved",
                        ));
                    }
                    let cert = app.pki.sign_agent_csr(&req.csr_pem, agent_id).map_err(internal)?;
                    Ok(Json(answer(EnrollStatus::Approved, row.id, Some(cert))))
                }
            }
        } else {
            rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("the certificate request is not valid: {e}"))
            })?;
            let pending = app
                .state
                .list_agents()
                .map_err(internal)?
                .iter()
                .filter(|a| a.status == AgentStatus::Pending)
                .count();
            if pending >= MAX_PENDING_AGENTS {
                return Err(ApiError::retry(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many enrollment requests wait for approval",
                    60,
                ));
            }
            let agent_id = format!("ag-{}", random_hex(8));
            app.state.register_pending(&agent_id, &hostname, &req.csr_pem).map_err(internal)?;
            info!(agent_id, hostname, %peer, "Agent asks to join; approve with `sysward-server agents approve {agent_id}`.");
            Ok(Json(answer(EnrollStatus::Pending, agent_id, None)))
        }
    })
    .await?
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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

async fn ingest(
    AxState(app): AxState<Arc<AppState>>,
    axum::Extension(cert): axum::Extension<PeerCert>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AckResponse>, ApiError> {
    let result = ingest_inner(&app, cert, peer, headers, body).await;
    match &result {
        Ok(_) => app.metrics.batches_accepted.inc(),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS => {
            app.metrics.batches_refused.inc();
        }
        Err(_) => {}
    }
    result
}

async fn ingest_inner(
    app: &Arc<AppState>,
    cert: PeerCert,
    peer: PeerAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AckResponse>, ApiError> {
    let peer = peer.0;
    let Some(cert) = cert.0 else {
        warn!(%peer, "Ingest without a client certificate refused.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required",
        ));
    };
    let Some(agent_id) = agent_id_of(&cert) else {
        warn!(%peer, "Ingest with a certificate without an agent id refused.");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "client certificate names no agent",
        ));
    };
    let state = app.state.clone();
    let id = agent_id.clone();
    let row = blocking(move || state.agent(&id))
        .await?
        .map_err(internal)?;
    let row = match row {
        Some(row) if row.status == AgentStatus::Approved => row,
        Some(row) => {
            warn!(agent_id, %peer, status = row.status_str(), "Ingest from an agent that is not approved refused.");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is {}", row.status_str()),
            ));
        }
        None => {
            warn!(agent_id, %peer, "Ingest from an unknown agent refused.");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is unknown"),
            ));
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if encoding != Some("gzip") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "batches must be sent with Content-Encoding: gzip",
        ));
    }
    let Ok(_permit) = app.ingest_permits.try_acquire() else {
        return Err(ApiError::retry(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest is busy; retry later",
            1,
        ));
    };
    let body = read_body(body, app.limits.max_compressed_bytes).await?;
    let limits = app.limits.clone();
    let batch = blocking(move || decode_batch(&body, &limits))
        .await?
        .map_err(|e| {
            warn!(agent_id, %peer, error = %e, "Batch refused.");
            let status = match e {
                DecodeError::CompressedTooLarge { .. }
                | DecodeError::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, e.to_string())
        })?;
    if batch.agent_id != agent_id {
        warn!(agent_id, claimed = batch.agent_id, %peer, "Batch for another agent refused.");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "batch names agent {} but the certificate is {agent_id}",
                batch.agent_id
            ),
        ));
    }
    let store = app.store.clone();
    let state = app.state.clone();
    let hostname = batch
        .host
        .as_ref()
        .map(|h| h.hostname.clone())
        .filter(|h| !h.is_empty());
    let instance = hostname.clone().unwrap_or(row.hostname);
    let points: usize = batch.series.iter().map(|s| s.points.len()).sum();
    let outcome = blocking(move || {
        let outcome = store.ingest(&IngestBatch {
            agent_id: &batch.agent_id,
            boot_id: &batch.boot_id,
            seq: batch.seq,
            instance: &instance,
            series: &batch.series,
            events: &batch.events,
        })?;
        if let Err(error) = state.touch(&batch.agent_id, hostname.as_deref()) {
            warn!(%error, "Cannot record last seen.");
        }
        Ok::<_, crate::store::StoreError>((outcome, batch.seq))
    })
    .await?;
    let (outcome, seq) = outcome.map_err(internal)?;
    match outcome {
        IngestOutcome::Stored => app.metrics.samples_ingested.add(points as u64),
        IngestOutcome::Duplicate => app.metrics.batches_duplicate.inc(),
    }
    Ok(Json(AckResponse { acked_seq: seq }))
}

async fn require_admin(app: &Arc<AppState>, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "admin bearer token required"))?
        .to_string();
    let state = app.state.clone();
    if blocking(move || state.is_admin_token(&token))
        .await?
        .map_err(internal)?
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin token is not valid",
        ))
    }
}

fn selectors_of(params: &[(String, String)]) -> Result<Vec<crate::store::Selector>, ApiError> {
    let selectors: Vec<_> = params
        .iter()
        .filter(|(k, _)| k == "match[]" || k == "match")
        .map(|(_, v)| {
            parse_selector(v)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("match {v:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if selectors.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "at least one match[] is required",
        ));
    }
    Ok(selectors)
}

fn param_i64(params: &[(String, String)], key: &str, default: i64) -> Result<i64, ApiError> {
    match params.iter().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => v.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{key} must be Unix milliseconds, got {v:?}"),
            )
        }),
    }
}

fn labels_json(name: &str, labels: &BTreeMap<String, String>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("__name__".into(), name.into());
    for (k, v) in labels {
        m.insert(k.clone(), v.clone().into());
    }
    serde_json::Value::Object(m)
}

/// `GET /api/v1/series?match[]=SELECTOR`: Prometheus' answer shape.
async fn series(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let selectors = selectors_of(&params)?;
    let store = app.store.clone();
    let found = blocking(move || {
        let mut out = Vec::new();
        for s in &selectors {
            out.extend(store.series(s)?);
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await?
    .map_err(internal)?;
    let data: Vec<_> = found
        .iter()
        .map(|s| labels_json(&s.name, &s.labels))
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /api/v1/read?match[]=SELECTOR&start=MS&end=MS`: raw points, for tests and tools.
async fn read_raw(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let selectors = selectors_of(&params)?;
    let start = param_i64(&params, "start", 0)?;
    let end = param_i64(&params, "end", i64::MAX)?;
    if let Some(tier) = tier_of(&params)? {
        return read_tier(&app, selectors, start, end, tier).await;
    }
    let store = app.store.clone();
    let found = blocking(move || {
        let mut out = Vec::new();
        for s in &selectors {
            out.extend(store.read_range(s, start, end)?);
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await?
    .map_err(internal)?;
    let data: Vec<_> = found
        .iter()
        .map(|s| json!({ "metric": labels_json(&s.series.name, &s.series.labels), "values": s.points }))
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `tier=raw|5m|1h|1d|1mo|auto` (with `step=MS` for auto); absent means raw points as before.
fn tier_of(params: &[(String, String)]) -> Result<Option<TierChoice>, ApiError> {
    let Some((_, name)) = params.iter().find(|(k, _)| k == "tier") else {
        return Ok(None);
    };
    if name == "auto" {
        let step = match params.iter().find(|(k, _)| k == "step") {
            None => None,
            Some(_) => Some(param_i64(params, "step", 0)?),
        };
        return Ok(Some(TierChoice::Auto { step }));
    }
    Tier::parse(name)
        .map(|t| Some(TierChoice::Exact(t)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("tier must be raw, 5m, 1h, 1d, 1mo or auto, got {name:?}"),
            )
        })
}

/// `read` with `tier=`: each series names its tier; rollup points are objects.
async fn read_tier(
    app: &Arc<AppState>,
    selectors: Vec<crate::store::Selector>,
    start: i64,
    end: i64,
    tier: TierChoice,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.store.clone();
    let found = blocking(move || {
        let mut out = Vec::new();
        for s in &selectors {
            out.extend(store.read(&ReadRequest {
                matchers: s.to_matchers(),
                start,
                end,
                tier,
            })?);
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await?
    .map_err(internal)?;
    let data: Vec<_> = found
        .iter()
        .map(|s| {
            let values = match &s.data {
                SeriesData::Raw(points) => json!(points),
                SeriesData::Rollup(records) => records
                    .iter()
                    .map(|r| {
                        json!({
                            "t": r.start, "count": r.count, "sum": r.sum, "min": r.min,
                            "max": r.max, "first": r.first, "last": r.last,
                            "increase": r.increase,
                        })
                    })
                    .collect(),
            };
            json!({
                "metric": labels_json(&s.series.name, &s.series.labels),
                "tier": s.tier.name(),
                "values": values,
            })
        })
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /api/v1/agents`: every agent with its status, last contact and stored batches.
async fn agents(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let (state, store) = (app.state.clone(), app.store.clone());
    let data = blocking(move || {
        let mut out = Vec::new();
        for a in state.list_agents().map_err(internal)? {
            let boots: Vec<_> = store
                .batch_stats(&a.id)
                .map_err(internal)?
                .into_iter()
                .map(|b| json!({ "boot_id": b.boot_id, "batches": b.count, "max_seq": b.max_seq }))
                .collect();
            out.push(json!({
                "id": a.id,
                "hostname": a.hostname,
                "status": a.status_str(),
                "last_seen_ms": a.last_seen_ms,
                "boots": boots,
            }));
        }
        Ok::<_, ApiError>(out)
    })
    .await??;
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /metrics`: the server's own figures in Prometheus' text format. Admin only: series
/// counts and sizes say more about a fleet than anonymous callers should learn.
async fn metrics(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&app, &headers).await?;
    let app2 = app.clone();
    // `stats` takes the store's memory lock, which a cut may hold for a moment.
    let text =
        blocking(move || metrics::render(&app2.metrics, &app2.store.stats(), ProcessStats::read()))
            .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
