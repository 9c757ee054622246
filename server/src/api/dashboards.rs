//! `/api/v1/dashboards`: the console's dashboards (see [`crate::dashboards`]), and their
//! public, read-only face under `/ui/api/public/`.
//!
//! Who may do what:
//! - read (list, get): every caller with `Read` access: every signed-in user, read and
//!   admin tokens. Dashboards hold queries, not data, and every viewer may run any query.
//! - create: `Change` access (editors and admins; admin tokens, which create as `admin`).
//! - update: `Change` access and the owner, a listed editor, any editor when the
//!   dashboard allows all editors, or an admin. Only the owner or an admin may change who
//!   edits (`editors`, `all_editors`).
//! - delete: `Change` access and the owner or an admin.
//! - public or not: `Admin` access, and `[ui] public_dashboards = true` to make one public.
//!
//! A public dashboard is read without credentials: its definition without owner and
//! editors, and each widget's data by the widget's id. The caller never sends a query:
//! the server evaluates the stored one, within the query slots and at most
//! [`PUBLIC_EVALUATIONS`] public evaluations at once (others wait up to [`PUBLIC_WAIT`],
//! then are answered 429). An
//! unknown dashboard, one that is not public and any while `[ui] public_dashboards` is off
//! get the same 404.

use std::collections::BTreeMap;

use axum::extract::Path as AxPath;

use super::{
    auth::{Denied, Identity},
    prom::{PromError, parse_duration, parse_time, success},
    *,
};
use crate::{
    dashboards::{self, DashboardBody, MAX_BODY_BYTES, MAX_DASHBOARDS, WidgetType},
    query::{self, StoreSource},
    rules::AlertState,
    state::{DashboardChange, DashboardRow, StateError, now_ms},
};

/// Public widget evaluations running at once, all public dashboards together.
pub const PUBLIC_EVALUATIONS: usize = 2;

/// How long a public widget waits for its turn before it is answered 429.
const PUBLIC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest range a public widget reads: the picker's 30 days and one to spare.
const MAX_PUBLIC_RANGE_MS: i64 = 31 * 86_400_000;

/// The answer to every public read of a dashboard that cannot be read.
const NO_PUBLIC: &str = "no such public dashboard";

async fn who(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<Identity, ApiError> {
    auth::identify(app, headers, needed)
        .await
        .map_err(|denied| match denied {
            Denied::Internal(e) => internal(e),
            other => ApiError::new(other.status(), other.message()),
        })
}

fn state_error(e: StateError) -> ApiError {
    match e {
        StateError::NoSuchDashboard(_) => ApiError::new(StatusCode::NOT_FOUND, "no such dashboard"),
        StateError::TooManyDashboards(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        StateError::StaleDashboard { given, current } => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "someone else saved this dashboard since version {given} (it is at version {current}): reload it and make the change again"
            ),
        ),
        other => internal(other),
    }
}

fn may_edit(caller: &Identity, row: &DashboardRow) -> bool {
    caller.may_change
        && dashboards::may_edit(
            &caller.name,
            caller.admin,
            &row.owner,
            &row.editors,
            row.all_editors,
        )
}

fn may_delete(caller: &Identity, row: &DashboardRow) -> bool {
    caller.may_change && (caller.admin || caller.name == row.owner)
}

/// A dashboard as the API shows it to `caller`, with what it may do to it.
fn dashboard_json(row: &DashboardRow, caller: &Identity) -> serde_json::Value {
    let mut out = json!({
        "id": row.id,
        "title": row.title,
        "owner": row.owner,
        "editors": row.editors,
        "all_editors": row.all_editors,
        "public": row.public,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
        "version": row.version,
        "can_edit": may_edit(caller, row),
        "can_delete": may_delete(caller, row),
    });
    if let Some(d) = &row.definition {
        out["refresh_seconds"] = json!(d.refresh_seconds);
        out["time_range"] = json!(d.time_range);
        out["pages"] = json!(d.pages);
    }
    out
}

async fn parse(body: Body) -> Result<DashboardBody, ApiError> {
    let bytes = read_body(body, MAX_BODY_BYTES).await?;
    dashboards::parse_body(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

fn change_of(body: &DashboardBody) -> DashboardChange {
    DashboardChange {
        title: body.title.clone(),
        editors: body.editors.clone(),
        all_editors: body.all_editors,
        definition: body.definition(),
    }
}

async fn load(app: &Arc<AppState>, id: String) -> Result<DashboardRow, ApiError> {
    let state = app.state.clone();
    blocking(move || state.dashboard(&id))
        .await?
        .map_err(state_error)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such dashboard"))
}

/// `GET /api/v1/dashboards`: every dashboard, without definitions.
pub(super) async fn list(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Read).await?;
    let state = app.state.clone();
    let rows = blocking(move || state.list_dashboards())
        .await?
        .map_err(state_error)?;
    let list: Vec<_> = rows.iter().map(|r| dashboard_json(r, &caller)).collect();
    Ok(Json(json!({
        "dashboards": list,
        "public_dashboards": app.ui.public_dashboards,
        "can_create": caller.may_change,
    }))
    .into_response())
}

/// `POST /api/v1/dashboards`: 201 and the new dashboard, owned by the caller.
pub(super) async fn create(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Change).await?;
    let body = parse(body).await?;
    // A token has no user: an admin token's dashboards belong to `admin`.
    let owner = if caller.token {
        "admin".to_string()
    } else {
        caller.name.clone()
    };
    let (state, change) = (app.state.clone(), change_of(&body));
    let row = blocking(move || state.create_dashboard(&owner, &change, MAX_DASHBOARDS))
        .await?
        .map_err(state_error)?;
    info!(id = %row.id, owner = %row.owner, "Dashboard created.");
    Ok((StatusCode::CREATED, Json(dashboard_json(&row, &caller))).into_response())
}

/// `GET /api/v1/dashboards/{id}`.
pub(super) async fn get_one(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Read).await?;
    let row = load(&app, id).await?;
    let mut out = dashboard_json(&row, &caller);
    out["public_dashboards"] = json!(app.ui.public_dashboards);
    Ok(Json(out).into_response())
}

/// `PUT /api/v1/dashboards/{id}` with the version it was read at; 409 when stale.
pub(super) async fn update(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Change).await?;
    let body = parse(body).await?;
    let Some(version) = body.version else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "version: required: the version the dashboard was read at",
        ));
    };
    let row = load(&app, id.clone()).await?;
    if !may_edit(&caller, &row) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{:?} may not change this dashboard: its owner {:?}, its editors and admins may",
                caller.name, row.owner
            ),
        ));
    }
    let owner_or_admin = caller.admin || caller.name == row.owner;
    if !owner_or_admin && (body.editors != row.editors || body.all_editors != row.all_editors) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "editors: only the owner or an admin may change who edits this dashboard",
        ));
    }
    let (state, change) = (app.state.clone(), change_of(&body));
    let row = blocking(move || state.update_dashboard(&id, version, &change))
        .await?
        .map_err(state_error)?;
    Ok(Json(dashboard_json(&row, &caller)).into_response())
}

/// `DELETE /api/v1/dashboards/{id}`: 204.
pub(super) async fn remove(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Change).await?;
    let row = load(&app, id.clone()).await?;
    if !may_delete(&caller, &row) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{:?} may not delete this dashboard: its owner {:?} and admins may",
                caller.name, row.owner
            ),
        ));
    }
    let state = app.state.clone();
    blocking(move || state.delete_dashboard(&id))
        .await?
        .map_err(state_error)?;
    info!(id = %row.id, by = %caller.name, "Dashboard deleted.");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicBody {
    public: bool,
}

/// `PUT /api/v1/dashboards/{id}/public` `{"public": bool}`: admins only; making one
/// public needs `[ui] public_dashboards = true`.
pub(super) async fn set_public(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = who(&app, &headers, Access::Admin).await?;
    let bytes = read_body(body, 1024).await?;
    let wanted: PublicBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body: {{\"public\": true or false}} is expected: {e}"),
        )
    })?;
    if wanted.public && !app.ui.public_dashboards {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "public dashboards are off: set public_dashboards = true in the [ui] table of the server's config and restart it",
        ));
    }
    let state = app.state.clone();
    let row = blocking(move || state.set_dashboard_public(&id, wanted.public))
        .await?
        .map_err(state_error)?;
    info!(id = %row.id, public = row.public, by = %caller.name, "Dashboard made public or private.");
    Ok(Json(dashboard_json(&row, &caller)).into_response())
}

/// The public dashboard `id`, or `None` when it is unknown, not public, or public
/// dashboards are off.
async fn public_row(app: &Arc<AppState>, id: String) -> Result<Option<DashboardRow>, ApiError> {
    if !app.ui.public_dashboards {
        return Ok(None);
    }
    let state = app.state.clone();
    let row = blocking(move || state.dashboard(&id))
        .await?
        .map_err(state_error)?;
    Ok(row.filter(|r| r.public))
}

/// `GET /ui/api/public/{id}`: the definition, without owner and editors.
pub(super) async fn public_get(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(id): AxPath<String>,
) -> Result<Response, ApiError> {
    let row = public_row(&app, id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, NO_PUBLIC))?;
    let Some(d) = &row.definition else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, NO_PUBLIC));
    };
    Ok(Json(json!({
        "id": row.id,
        "title": row.title,
        "refresh_seconds": d.refresh_seconds,
        "time_range": d.time_range,
        "pages": d.pages,
    }))
    .into_response())
}

/// What a public widget's request may carry: the time, never a query.
fn check_params(kind: WidgetType, params: &[(String, String)]) -> Result<(), PromError> {
    let allowed: &[&str] = if kind == WidgetType::Alerts {
        &[]
    } else if kind.is_range() {
        &["start", "end", "step"]
    } else {
        &["time"]
    };
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(PromError::bad_data(format!(
            "parameter {k:?} is not taken: a public widget evaluates its own stored query, \
             at the time given by {}",
            if allowed.is_empty() {
                "nothing (it is now)".into()
            } else {
                allowed.join(", ")
            }
        ))),
    }
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `GET /ui/api/public/{id}/widgets/{widget}?start=&end=&step=` (graphs and heat maps) or
/// `?time=` (the others): that widget's stored query, as `/api/v1/query_range` or
/// `/api/v1/query` answer it; an alert summary's counts by state and severity.
pub(super) async fn public_widget(
    AxState(app): AxState<Arc<AppState>>,
    AxPath((id, widget_id)): AxPath<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    match widget_answer(app, id, widget_id, params).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn widget_answer(
    app: Arc<AppState>,
    id: String,
    widget_id: String,
    params: Vec<(String, String)>,
) -> Result<Response, PromError> {
    let not_found = || PromError::new(StatusCode::NOT_FOUND, "not_found", NO_PUBLIC.into());
    let row = public_row(&app, id)
        .await
        .map_err(|e| PromError::internal(format!("{e:?}")))?
        .ok_or_else(not_found)?;
    let widget = row
        .definition
        .as_ref()
        .and_then(|d| d.widget(&widget_id))
        .cloned()
        .ok_or_else(|| {
            PromError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this dashboard has no such widget".into(),
            )
        })?;
    check_params(widget.kind, &params)?;
    let turn = tokio::time::timeout(PUBLIC_WAIT, app.public_evaluations.acquire()).await;
    let Ok(Ok(_turn)) = turn else {
        return Err(PromError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "unavailable",
            "too many public widgets are being evaluated; try again in a few seconds".into(),
        ));
    };
    if widget.kind == WidgetType::Alerts {
        return alert_counts(&app, &widget.query).await;
    }
    let options = app.query.options();
    let expr = widget.query.clone();
    if widget.kind.is_range() {
        let (start, end, step) = range_params(&params, options.limits.max_points_per_series)?;
        let (out, _) = super::query::evaluate(&app, options, move |source: &StoreSource, o| {
            query::range_query(source, &expr, start, end, step, o)
        })
        .await?;
        return Ok(super::query::answer(&out, end, None));
    }
    let time = match param(&params, "time") {
        Some(t) => parse_time(t).map_err(|e| PromError::param("time", e))?,
        None => now_ms(),
    };
    let (out, _) = super::query::evaluate(&app, options, move |source: &StoreSource, o| {
        query::instant_query(source, &expr, time, o)
    })
    .await?;
    Ok(super::query::answer(&out, time, None))
}

/// `start`, `end` and `step` of a range, checked as `/api/v1/query_range` checks them.
fn range_params(
    params: &[(String, String)],
    max_points: usize,
) -> Result<(i64, i64, i64), PromError> {
    let time = |key: &str| -> Result<i64, PromError> {
        let v = param(params, key).ok_or_else(|| PromError::param(key, "missing"))?;
        parse_time(v).map_err(|e| PromError::param(key, e))
    };
    let (start, end) = (time("start")?, time("end")?);
    if end < start {
        return Err(PromError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    if end - start > MAX_PUBLIC_RANGE_MS {
        return Err(PromError::bad_data(
            "a public widget reads at most 31 days: the console's longest range and a day",
        ));
    }
    let step_text = param(params, "step").ok_or_else(|| PromError::param("step", "missing"))?;
    let step = parse_duration(step_text).map_err(|e| PromError::param("step", e))?;
    if step <= 0 {
        return Err(PromError::param("step", "must be positive"));
    }
    if (end - start) / step >= i64::try_from(max_points).unwrap_or(i64::MAX) {
        return Err(PromError::bad_data(format!(
            "exceeded maximum resolution of {max_points} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    Ok((start, end, step))
}

/// Counts of the alerts that match `filter`, by state and severity: no names, no labels.
async fn alert_counts(app: &Arc<AppState>, filter: &str) -> Result<Response, PromError> {
    let matchers = dashboards::alert_filter(filter).map_err(PromError::bad_data)?;
    let engine = app.rules.clone();
    let groups = tokio::task::spawn_blocking(move || engine.groups())
        .await
        .map_err(PromError::internal)?;
    let mut counts: BTreeMap<&'static str, BTreeMap<String, u64>> = BTreeMap::new();
    for alert in groups
        .iter()
        .flat_map(|(g, _)| g.states.iter())
        .flat_map(|s| s.alerting.alerts.values())
    {
        let state = match alert.state {
            AlertState::Firing => "firing",
            AlertState::Pending => "pending",
            _ => continue,
        };
        let matches = matchers.is_empty()
            || matchers
                .iter()
                .any(|sel| sel.iter().all(|m| m.matches(alert.labels.get(&m.label))));
        if matches {
            let severity = match alert.labels.get("severity") {
                "" => "none".to_string(),
                s => s.to_string(),
            };
            *counts
                .entry(state)
                .or_default()
                .entry(severity)
                .or_default() += 1;
        }
    }
    Ok(success(
        json!({ "resultType": "alert_counts", "counts": counts }),
        &Default::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_public_widget_takes_only_its_time() {
        assert!(
            check_params(
                WidgetType::Timeseries,
                &pairs(&[("start", "1"), ("step", "5")])
            )
            .is_ok()
        );
        let e = check_params(WidgetType::Timeseries, &pairs(&[("query", "up")])).unwrap_err();
        assert!(
            e.message.contains("\"query\" is not taken"),
            "{}",
            e.message
        );
        assert!(check_params(WidgetType::Gauge, &pairs(&[("time", "1")])).is_ok());
        assert!(check_params(WidgetType::Gauge, &pairs(&[("start", "1")])).is_err());
        assert!(check_params(WidgetType::Alerts, &pairs(&[("time", "1")])).is_err());
    }

    #[test]
    fn ranges_are_bounded() {
        let ok = range_params(
            &pairs(&[("start", "0"), ("end", "3600"), ("step", "60")]),
            11_000,
        );
        assert_eq!(ok.unwrap(), (0, 3_600_000, 60_000));
        let long = range_params(
            &pairs(&[("start", "0"), ("end", "3000000"), ("step", "3600")]),
            11_000,
        );
        assert!(long.unwrap_err().message.contains("at most 31 days"));
        let many = range_params(
            &pairs(&[("start", "0"), ("end", "86400"), ("step", "1")]),
            11_000,
        );
        assert!(many.unwrap_err().message.contains("maximum resolution"));
        let back = range_params(
            &pairs(&[("start", "10"), ("end", "0"), ("step", "1")]),
            11_000,
        );
        assert!(back.is_err());
        let none = range_params(&pairs(&[("start", "0"), ("end", "1")]), 11_000);
        assert!(none.unwrap_err().message.contains("step"));
        let zero = range_params(
            &pairs(&[("start", "0"), ("end", "1"), ("step", "0")]),
            11_000,
        );
        assert!(zero.is_err());
    }
}
