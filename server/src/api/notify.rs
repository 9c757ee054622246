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

/// `POST /api/v1/alerts/ack` `{"id": "...", "by": "ann"}` (a token of role admin, or an
/// editor's session, which acknowledges as its user).
pub(super) async fn ack(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = require_caller(&app, &headers, Access::Change).await?;
    let bytes = read_body(body, MAX_BODY).await?;
    let b: AckBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("ack body: {e}")))?;
    let by = caller
        .author(b.by, "api")
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, format!("by: {e}")))?;
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

/// `GET /api/v1/silences`: silences and maintenance windows made by API or CLI, then the
/// maintenance windows of the configuration (`"source": "config"`, read-only); each with
/// whether it holds notifications now (`active`).
pub(super) async fn silences(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&app, &headers, Access::Read).await?;
    let n = app.notifier.clone();
    let (rows, plan) = blocking(move || n.silences().map(|rows| (rows, n.plan())))
        .await?
        .map_err(notify_error)?;
    let now = crate::store::Clock::now_ms(&crate::store::SystemClock);
    let mut list: Vec<serde_json::Value> = rows
        .iter()
        .map(|s| {
            let mut v = json!(s);
            v["source"] = json!("api");
            v["active"] = json!((s.starts_ms..s.ends_ms).contains(&now));
            v
        })
        .collect();
    list.extend(config_windows(&plan, now));
    Ok(ok(json!(list)))
}

/// The maintenance windows of `[notify]`, as the silences list shows them: a one-off one
/// with its `starts_ms` and `ends_ms`, a recurring one with `recurring` instead.
fn config_windows(plan: &crate::notify::plan::Plan, now: i64) -> Vec<serde_json::Value> {
    use crate::notify::plan::When;
    // `Plan::build` compiles every configured window in order, one `Window` each.
    plan.config
        .maintenance
        .iter()
        .zip(&plan.maintenance)
        .map(|(c, w)| {
            let (starts, ends, recurring) = match &w.when {
                When::Between(s, e) => (json!(s), json!(e), serde_json::Value::Null),
                When::Recurring(_) => (
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                    json!({
                        "time_zone": c.time_zone,
                        "weekdays": c.weekdays,
                        "times": c.times,
                    }),
                ),
            };
            json!({
                "id": format!("config:{}", c.name),
                "kind": "maintenance",
                "source": "config",
                "name": c.name,
                "matchers": c.matchers,
                "starts_ms": starts,
                "ends_ms": ends,
                "recurring": recurring,
                "created_by": "",
                "comment": "",
                "active": w.active(now),
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SilenceBody {
    matchers: Vec<String>,
    starts_at: Option<String>,
    ends_at: String,
    /// Required of a token; a session's is its user.
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
    /// `silence` (default) or `maintenance`.
    #[serde(default)]
    kind: Option<String>,
}

/// `POST /api/v1/silences` (a token of role admin, or an editor's session):
/// `{"matchers": ["instance=\"web-1\""], "startsAt": RFC 3339 (default now), "endsAt": ...,
/// "createdBy": ..., "comment": ..., "kind": "silence" | "maintenance"}`; answers the new
/// id. A session's silence is created by its user.
pub(super) async fn add_silence(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = require_caller(&app, &headers, Access::Change).await?;
    let bytes = read_body(body, MAX_BODY).await?;
    let b: SilenceBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("silence body: {e}")))?;
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let created_by = caller
        .author(b.created_by, "")
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, format!("createdBy: {e}")))?;
    if created_by.is_empty() {
        return Err(bad(
            "silence body: createdBy is required (who adds the silence)".into(),
        ));
    }
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
        created_by,
        comment: b.comment,
        created_ms: 0,
    };
    let n = app.notifier.clone();
    let id = blocking(move || n.add_silence(row))
        .await?
        .map_err(notify_error)?;
    Ok(ok(json!({ "silenceID": id })))
}

/// `DELETE /api/v1/silence/ID` (a token of role admin, or an editor's session): ends it
/// now. The windows of the configuration are not in the database: 404.
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
