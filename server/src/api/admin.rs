//! Admin endpoints: the agents, join tokens and the server's own metrics. Approving,
//! revoking and making tokens is [`crate::agents`], which the CLI calls too.

use axum::extract::Path as AxPath;
use serde::Deserialize;

use super::*;
use crate::agents::{self, AgentsError, Outcome, TokenOptions};

/// A join-token request is a few short fields.
const MAX_TOKEN_BODY: usize = 4096;

/// `GET /api/v1/agents`: every agent with its status, last contact and stored batches.
pub(super) async fn agents(
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
                "requested_ms": a.created_ms,
                "address": a.address,
                "cert_not_after_ms": a.cert_not_after_ms,
                "boots": boots,
            }));
        }
        Ok::<_, ApiError>(out)
    })
    .await??;
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// The answer to an error of [`crate::agents`]: 404 for what does not exist, 409 for a
/// revoked agent asked to be approved.
fn agents_error(e: AgentsError) -> ApiError {
    match e {
        AgentsError::NoSuchAgent(_) | AgentsError::NoSuchJoinToken(_) => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        AgentsError::Revoked(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        other => internal(other),
    }
}

/// `POST /api/v1/agents/{id}/approve`: a pending agent gets its certificate at its next
/// poll. 200 also when it already was approved (`changed` false).
pub(super) async fn approve(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_agent(app, headers, id, "approved", agents::approve).await
}

/// `POST /api/v1/agents/{id}/revoke`: its certificate is refused from the next request.
pub(super) async fn revoke(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_agent(app, headers, id, "revoked", agents::revoke).await
}

async fn change_agent(
    app: Arc<AppState>,
    headers: HeaderMap,
    id: String,
    to: &'static str,
    change: fn(&State, &str) -> Result<Outcome, AgentsError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let state = app.state.clone();
    let agent = id.clone();
    let outcome = blocking(move || change(&state, &agent))
        .await?
        .map_err(agents_error)?;
    if outcome == Outcome::Changed {
        info!(agent_id = id, status = to, "Agent changed through the API.");
    }
    Ok(Json(json!({
        "status": "success",
        "data": { "id": id, "status": to, "changed": outcome == Outcome::Changed },
    })))
}

/// `POST /api/v1/join-tokens`'s body: `token create`'s options, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// "1h", "7d": how long the tokens stay valid.
    ttl: Option<String>,
    /// The URL agents reach this server at.
    url: Option<String>,
    /// How many tokens.
    count: Option<u32>,
}

/// The options of a token request (an empty body takes every default: the server's
/// `join_token_ttl` and public URL, one token), or a 400 that names the field.
fn token_options(
    default_ttl: std::time::Duration,
    default_url: &str,
    bytes: &[u8],
) -> Result<TokenOptions, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let body: TokenBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        TokenBody::default()
    } else {
        serde_json::from_slice(bytes).map_err(|e| bad(format!("join token request: {e}")))?
    };
    let ttl = match body.ttl.as_deref() {
        Some(t) => sysward_proto::units::parse_duration(t).map_err(|e| bad(format!("ttl: {e}")))?,
        None => default_ttl,
    };
    if ttl.is_zero() {
        return Err(bad("ttl: must be longer than 0".into()));
    }
    let url = match body.url {
        Some(u) if !u.starts_with("https://") || u.len() <= "https://".len() => {
            return Err(bad(format!(
                "url: {u:?} is not an https:// URL (the server speaks HTTPS only)"
            )));
        }
        Some(u) => u.trim_end_matches('/').to_string(),
        None => default_url.to_string(),
    };
    let count = body.count.unwrap_or(1);
    if !(1..=agents::MAX_API_TOKENS).contains(&count) {
        return Err(bad(format!(
            "count: {count} is not between 1 and {}",
            agents::MAX_API_TOKENS
        )));
    }
    Ok(TokenOptions { ttl, url, count })
}

/// `POST /api/v1/join-tokens`: single-use join tokens, each shown once with the command
/// that enrols a host with it.
pub(super) async fn create_join_tokens(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let bytes = read_body(body, MAX_TOKEN_BODY).await?;
    let options = token_options(app.join_token_ttl, &app.public_url, &bytes)?;
    let (state, pin) = (app.state.clone(), app.pki.ca_pin());
    let tokens = blocking(move || agents::create_join_tokens(&state, &pin, &options))
        .await?
        .map_err(agents_error)?;
    info!(count = tokens.len(), "Join tokens made through the API.");
    let data: Vec<_> = tokens
        .iter()
        .map(|t| {
            json!({
                "id": agents::join_token_id(t),
                "token": t.encode(),
                "expires_ms": t.expires_at.saturating_mul(1000),
                "command": agents::enroll_command(t),
            })
        })
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /api/v1/join-tokens`: tokens newest first, without secrets.
pub(super) async fn join_tokens(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let state = app.state.clone();
    let rows = blocking(move || agents::list_join_tokens(&state))
        .await?
        .map_err(agents_error)?;
    let now = crate::state::now_ms();
    let data: Vec<_> = rows
        .iter()
        .map(|t| {
            let status = match (t.used_ms, t.expires_ms <= now) {
                (Some(_), _) => "used",
                (None, true) => "expired",
                (None, false) => "unused",
            };
            json!({
                "id": t.id,
                "status": status,
                "created_ms": t.created_ms,
                "expires_ms": t.expires_ms,
                "used_ms": t.used_ms,
                "used_by": t.used_by,
            })
        })
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `DELETE /api/v1/join-tokens/{id}`: an unused token can no longer enrol anything.
pub(super) async fn delete_join_token(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers).await?;
    let state = app.state.clone();
    let token = id.clone();
    blocking(move || agents::delete_join_token(&state, &token))
        .await?
        .map_err(agents_error)?;
    info!(token_id = id, "Join token deleted through the API.");
    Ok(Json(json!({ "status": "success", "data": { "id": id } })))
}

/// `GET /metrics`: the server's own figures in Prometheus' text format. Admin only: series
/// counts and sizes say more about a fleet than anonymous callers should learn.
pub(super) async fn metrics(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&app, &headers).await?;
    let app2 = app.clone();
    // `stats` takes the store's memory lock, which a cut may hold for a moment.
    let text = blocking(move || metrics_text(&app2)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// The whole `/metrics` page: also what the server stores of itself, what OTLP export and
/// `OTEL_PROMETHEUS_PORT` send.
pub fn metrics_text(app: &AppState) -> String {
    let stats = app.store.stats();
    let mut text = metrics::render(&app.metrics, &stats, ProcessStats::read());
    text.push_str(&metrics::render_rules(&rules_report(&app.rules)));
    text.push_str(&metrics::render_notify(&app.notifier));
    text.push_str(&crate::otel::render_counters());
    text.push_str(&app.remote_write.render_metrics());
    crate::health::render_health(
        &mut text,
        &crate::health::HealthFigures {
            monitor: &app.health,
            config: &app.health_config,
            store: &stats,
            storage_ok: app.store.healthy(),
            ingest_slots: app.ingest_slots,
            ingest_free: app.ingest_permits.available_permits(),
            disk_refusals: app.disk_guard.refused(),
        },
    );
    text
}

fn rules_report(engine: &crate::rules::RuleEngine) -> metrics::RulesReport {
    let (rules, [pending, firing, nodata]) = engine.summary();
    metrics::RulesReport {
        stats: engine.stats(),
        rules,
        file_errors: engine.load_errors().len(),
        alerts: [("pending", pending), ("firing", firing), ("nodata", nodata)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_agents_and_tokens_are_404_naming_them_and_a_revoked_agent_409() {
        let cases = [
            (
                AgentsError::NoSuchAgent("ag-nope".into()),
                404,
                "no agent with id ag-nope",
            ),
            (
                AgentsError::NoSuchJoinToken("0123".into()),
                404,
                "no join token with id 0123",
            ),
            (
                AgentsError::Revoked("ag-1".into()),
                409,
                "agent ag-1 is revoked; it must enroll again",
            ),
        ];
        for (error, status, message) in cases {
            let e = agents_error(error);
            assert_eq!(e.status.as_u16(), status);
            assert_eq!(e.message, message);
        }
        let e = agents_error(AgentsError::State(StateError::UnknownToken));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn token_requests_take_defaults_and_name_the_bad_field() {
        let day = std::time::Duration::from_secs(86_400);
        let url = "https://mon.example:8443";
        let o = token_options(day, url, b"").unwrap();
        assert_eq!((o.ttl, o.url.as_str(), o.count), (day, url, 1));
        let o = token_options(day, url, br#"{"ttl":"1h","url":"https://x:1/","count":3}"#).unwrap();
        assert_eq!(
            (o.ttl.as_secs(), o.url.as_str(), o.count),
            (3600, "https://x:1", 3)
        );
        for (body, says) in [
            (r#"{"ttl":"soon"}"#, "ttl: "),
            (r#"{"ttl":"0s"}"#, "ttl: must be longer than 0"),
            (
                r#"{"url":"http://x"}"#,
                "url: \"http://x\" is not an https:// URL",
            ),
            (r#"{"count":0}"#, "count: 0 is not between 1 and 1000"),
            (r#"{"count":1001}"#, "count: 1001"),
            (r#"{"uses":2}"#, "join token request: unknown field `uses`"),
            ("[1", "join token request: "),
        ] {
            let e = token_options(day, url, body.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(e.message.starts_with(says), "{body}: {}", e.message);
        }
    }
}
