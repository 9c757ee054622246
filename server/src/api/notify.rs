//! The notifier's endpoints: history, alert groups, acknowledgements (by API and by signed
//! link), silences and maintenance windows, and a receiver test.

use axum::extract::Path as AxPath;

use super::*;
use crate::notify::{NotifyError, SilenceRow};

/// Enough for a silence or an acknowledgement.
const MAX_BODY: usize = 64 * 1024;

fn notify_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        NotifyError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, format!("no {m}")),
        other => internal(other),
    }
}

fn ok(data: serde_json::Value) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct HistoryQuery {
    since: Option<i64>,
    receiver: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/notifications?since=MS&receiver=&limit=`: what was sent to whom, when, and
/// the service's answer, newest first.
pub(super) async fn history(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Read).await?;
    let n = app.notifier.clone();
    let limit = q.limit.unwrap_or(500).clamp(1, 10_000);
    let list = blocking(move || n.history(q.since.unwrap_or(0), q.receiver.as_deref(), limit))
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!(list)))
}

/// `GET /api/v1/alerts/groups`: alert groups with their escalation step and acknowledgement.
pub(super) async fn groups(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Read).await?;
    let n = app.notifier.clone();
    let list = blocking(move || n.groups()).await?.map_err(notify_error)?;
    Ok(ok(json!(list)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// A group id or an alert fingerprint.
    id: String,
    #[serde(default)]
    by: Option<String>,
}

/// `POST /api/v1/alerts/ack` `{"id": "...", "by": "ann"}` (role admin).
pub(super) async fn ack(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Change).await?;
    let bytes = read_body(body, MAX_BODY).await?;
    let b: AckBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("ack body: {e}")))?;
    let by = b.by.unwrap_or_else(|| "api".into());
    let n = app.notifier.clone();
    let ids = blocking(move || n.acknowledge(&b.id, &by))
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!({ "groups": ids })))
}

/// `GET /api/v1/ack/TOKEN`: a page with a button, so that link previews in chat do not
/// acknowledge by fetching the link; the button POSTs.
pub(super) async fn ack_page(AxPath(token): AxPath<String>) -> Response {
    let token: String = token.chars().filter(char::is_ascii_hexdigit).collect();
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Acknowledge alert</title>\
         <form method=post action=\"{token}\"><p>Acknowledge this alert group and stop its \
         escalation?</p><button type=submit>Acknowledge</button></form>"
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page,
    )
        .into_response()
}

/// `POST /api/v1/ack/TOKEN`: acknowledges once, until the link expires.
pub(super) async fn ack_link(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(token): AxPath<String>,
) -> Result<Response, ApiError> {
    let n = app.notifier.clone();
    let ids = blocking(move || n.acknowledge_link(&token))
        .await?
        .map_err(|e| match e {
            NotifyError::NotFound(_) => ApiError::new(
                StatusCode::GONE,
                "this acknowledgement link is used, expired or unknown",
            ),
            other => notify_error(other),
        })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        format!(
            "<!doctype html><meta charset=utf-8><title>Acknowledged</title><p>Acknowledged \
             ({} group{}).</p>",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" }
        ),
    )
        .into_response())
}

/// `GET /api/v1/silences`: silences and maintenance windows made by API or CLI.
pub(super) async fn silences(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Read).await?;
    let n = app.notifier.clone();
    let list = blocking(move || n.silences())
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!(list)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SilenceBody {
    matchers: Vec<String>,
    starts_at: Option<String>,
    ends_at: String,
    created_by: String,
    #[serde(default)]
    comment: String,
    /// `silence` (default) or `maintenance`.
    #[serde(default)]
    kind: Option<String>,
}

/// `POST /api/v1/silences` (role admin): `{"matchers": ["instance=\"web-1\""], "startsAt":
/// RFC 3339 (default now), "endsAt": ..., "createdBy": ..., "comment": ..., "kind":
/// "silence" | "maintenance"}`; answers the new id.
pub(super) async fn add_silence(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Change).await?;
    let bytes = read_body(body, MAX_BODY).await?;
    let b: SilenceBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("silence body: {e}")))?;
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let ends = crate::notify::timing::parse_instant(&b.ends_at).map_err(bad)?;
    let starts = match &b.starts_at {
        Some(s) => crate::notify::timing::parse_instant(s).map_err(bad)?,
        None => crate::store::Clock::now_ms(&crate::store::SystemClock),
    };
    let row = SilenceRow {
        id: String::new(),
        kind: b.kind.unwrap_or_else(|| "silence".into()),
        matchers: b.matchers,
        starts_ms: starts,
        ends_ms: ends,
        created_by: b.created_by,
        comment: b.comment,
        created_ms: 0,
    };
    let n = app.notifier.clone();
    let id = blocking(move || n.add_silence(row))
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!({ "silenceID": id })))
}

/// `DELETE /api/v1/silence/ID` (role admin): ends it now.
pub(super) async fn expire_silence(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Change).await?;
    let n = app.notifier.clone();
    blocking(move || n.expire_silence(&id))
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!({})))
}

/// `POST /api/v1/notify/test/RECEIVER` (role admin): sends a test message through every
/// channel of the receiver and answers each service's reply.
pub(super) async fn test_receiver(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    AxPath(receiver): AxPath<String>,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Admin).await?;
    let results = app
        .notifier
        .test_receiver(&receiver)
        .await
        .map_err(notify_error)?;
    let list: Vec<serde_json::Value> = results
        .into_iter()
        .map(|(channel, r)| match r {
            Ok(d) => {
                json!({ "channel": channel, "ok": true, "status": d.status, "answer": d.answer })
            }
            Err(e) => json!({ "channel": channel, "ok": false, "error": e.to_string() }),
        })
        .collect();
    Ok(ok(json!(list)))
}
