//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus' formats (Grafana lists them), the
//! alert history and the notifier's queue, and `POST /-/reload`.

use axum::extract::Request;

use super::{
    auth::{Access, authorize},
    labels::blocking_prom,
    prom::{PromError, page_size, rfc3339, serve, success},
    *,
};
use crate::rules::{
    Alert, AlertState, Group, RuleKind, RuleSpec, RuleState, persist::StoredTransition,
};

pub(super) async fn rules(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "rules", req, |app, r| async move {
        let filter = Filter::of(&r.params)?;
        let engine = app.rules.clone();
        let groups = blocking_prom(move || Ok(engine.groups())).await?;
        let list: Vec<serde_json::Value> = groups
            .iter()
            .filter_map(|(g, interval_ms)| group_json(g, *interval_ms, &filter))
            .collect();
        Ok(success(json!({ "groups": list }), &Default::default()))
    })
    .await
}

pub(super) async fn alerts(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "alerts", req, |app, _| async move {
        let engine = app.rules.clone();
        let groups = blocking_prom(move || Ok(engine.groups())).await?;
        let list: Vec<serde_json::Value> = groups
            .iter()
            .flat_map(|(g, _)| g.states.iter())
            .flat_map(|s| s.alerting.alerts.values())
            .filter(|a| a.state != AlertState::Inactive)
            .map(alert_json)
            .collect();
        Ok(success(json!({ "alerts": list }), &Default::default()))
    })
    .await
}

/// `GET /api/v1/alerts/history?since=&alertname=&limit=`: transitions, newest first.
pub(super) async fn history(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "alerts_history", req, |app, r| async move {
        let since = r.params.time("since", 0)?;
        let limit = page_size(r.params.limit()?);
        let name = r.params.get("alertname").map(str::to_string);
        let engine = app.rules.clone();
        let list = blocking_prom(move || {
            engine
                .history(since, name.as_deref(), limit)
                .map_err(PromError::internal)
        })
        .await?;
        Ok(success(transitions_json(&list), &Default::default()))
    })
    .await
}

/// `GET /api/v1/alerts/outbox`: transitions waiting for the notifier, oldest first.
pub(super) async fn outbox(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "alerts_outbox", req, |app, r| async move {
        let limit = page_size(r.params.limit()?);
        let engine = app.rules.clone();
        let list = blocking_prom(move || engine.outbox(limit).map_err(PromError::internal)).await?;
        Ok(success(transitions_json(&list), &Default::default()))
    })
    .await
}

/// `POST /-/reload` (role admin): reads the rule files again; 500 with the errors when
/// one is refused, and the running rules go on.
pub(super) async fn reload(AxState(app): AxState<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorize(&app, &headers, Access::Admin).await {
        return ApiError::new(denied.status(), denied.message()).into_response();
    }
    crate::serve::reload_notify(&app);
    let engine = app.rules.clone();
    match tokio::task::spawn_blocking(move || engine.reload()).await {
        Ok(Ok((groups, rules))) => {
            Json(json!({ "status": "success", "groups": groups, "rules": rules })).into_response()
        }
        Ok(Err(errors)) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rules not reloaded: {}", text.join("; ")),
            )
            .into_response()
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Prometheus' `type`, `rule_name[]`, `rule_group[]`, `file[]` and `exclude_alerts`.
struct Filter {
    kind: Option<String>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl Filter {
    fn of(p: &super::prom::Params) -> Result<Self, PromError> {
        let kind = p.get("type").filter(|t| !t.is_empty()).map(str::to_string);
        if let Some(k) = &kind
            && k != "alert"
            && k != "record"
        {
            return Err(PromError::bad_data(format!(
                "invalid rule type {k:?}: use alert or record"
            )));
        }
        Ok(Self {
            kind,
            names: p.all("rule_name[]").map(str::to_string).collect(),
            groups: p.all("rule_group[]").map(str::to_string).collect(),
            files: p.all("file[]").map(str::to_string).collect(),
            exclude_alerts: p.get("exclude_alerts") == Some("true"),
        })
    }

    fn keeps(&self, rule: &RuleSpec) -> bool {
        let kind_ok = !matches!(
            (self.kind.as_deref(), &rule.kind),
            (Some("alert"), RuleKind::Record { .. }) | (Some("record"), RuleKind::Alert(_))
        );
        kind_ok && (self.names.is_empty() || self.names.iter().any(|n| n == rule.name()))
    }
}

fn group_json(g: &Group, interval_ms: i64, filter: &Filter) -> Option<serde_json::Value> {
    let file = g.spec.file.display().to_string();
    if !filter.groups.is_empty() && !filter.groups.contains(&g.spec.name) {
        return None;
    }
    if !filter.files.is_empty() && !filter.files.contains(&file) {
        return None;
    }
    let rules: Vec<serde_json::Value> = g
        .spec
        .rules
        .iter()
        .zip(&g.states)
        .filter(|(r, _)| filter.keeps(r))
        .map(|(r, s)| rule_json(r, s, filter.exclude_alerts))
        .collect();
    if rules.is_empty() && (filter.kind.is_some() || !filter.names.is_empty()) {
        return None;
    }
    Some(json!({
        "name": g.spec.name,
        "file": file,
        "rules": rules,
        "interval": interval_ms as f64 / 1000.0,
        "limit": g.spec.limit,
        "evaluationTime": g.last_duration.as_secs_f64(),
        "lastEvaluation": rfc3339(g.last_eval_ms),
    }))
}

fn rule_json(rule: &RuleSpec, state: &RuleState, exclude_alerts: bool) -> serde_json::Value {
    let labels: BTreeMap<&str, &str> = rule
        .labels
        .iter()
        .map(|(k, t)| (k.as_str(), t.source()))
        .collect();
    let mut out = json!({
        "name": rule.name(),
        "query": rule.expr_text,
        "labels": labels,
        "health": state.health.name(),
        "lastError": state.last_error.clone().unwrap_or_default(),
        "evaluationTime": state.last_duration.as_secs_f64(),
        "lastEvaluation": rfc3339(state.last_eval_ms),
    });
    let RuleKind::Alert(spec) = &rule.kind else {
        out["type"] = json!("recording");
        return out;
    };
    let annotations: BTreeMap<&str, &str> = spec
        .annotations
        .iter()
        .map(|(k, t)| (k.as_str(), t.source()))
        .collect();
    let active: Vec<&Alert> = state.alerting.alerts.values().collect();
    let rule_state = active
        .iter()
        .map(|a| a.state)
        .filter(|s| *s != AlertState::Inactive)
        .max()
        .unwrap_or(AlertState::Inactive);
    out["type"] = json!("alerting");
    out["state"] = json!(rule_state.name());
    out["duration"] = json!(spec.hold.as_secs_f64());
    out["keepFiringFor"] = json!(spec.keep_firing_for.as_secs_f64());
    out["annotations"] = json!(annotations);
    if let Some(recover) = &spec.recover_text {
        out["recover"] = json!(recover);
        out["recoverFor"] = json!(spec.recover_for.as_secs_f64());
    }
    out["noData"] = json!(spec.no_data.name());
    if !exclude_alerts {
        out["alerts"] = json!(
            active
                .iter()
                .filter(|a| a.state != AlertState::Inactive)
                .map(|a| alert_json(a))
                .collect::<Vec<_>>()
        );
    }
    out
}

fn alert_json(a: &Alert) -> serde_json::Value {
    let labels: BTreeMap<&str, &str> = a
        .labels
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let annotations: BTreeMap<&str, &str> = a
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let owned: crate::notify::plan::Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut out = json!({
        "labels": labels,
        "annotations": annotations,
        // Sysward's: the notifier's name for the alert, which acknowledges it.
        "fingerprint": crate::notify::fingerprint(&owned),
        "state": a.state.name(),
        "activeAt": rfc3339(Some(a.active_at)),
        "value": go_exponent(a.value),
    });
    if let Some(since) = a.keep_firing_since {
        out["keepFiringSince"] = json!(rfc3339(Some(since)));
    }
    if let Some(why) = &a.inhibited_by {
        out["inhibitedBy"] = json!(why);
    }
    out
}

fn transitions_json(list: &[StoredTransition]) -> serde_json::Value {
    json!(
        list.iter()
            .map(|t| json!({
                "id": t.id,
                "time": rfc3339(Some(t.at_ms)),
                "alertname": t.alertname,
                "labels": t.labels,
                "annotations": t.annotations,
                "from": t.from,
                "to": t.to,
                "value": t.value.map(go_exponent),
                "activeAt": rfc3339(Some(t.active_at)),
                "inhibitedBy": t.inhibited_by,
            }))
            .collect::<Vec<_>>()
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, how Prometheus writes an alert's value.
fn go_exponent(v: f64) -> String {
    if let Some(special) = crate::query::go_special(v) {
        return special.to_string();
    }
    let text = format!("{v:e}");
    let Some((mantissa, exp)) = text.split_once('e') else {
        return text;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_print_as_prometheus_prints_them() {
        assert_eq!(go_exponent(1.0), "1e+00");
        assert_eq!(go_exponent(95.5), "9.55e+01");
        assert_eq!(go_exponent(0.00123), "1.23e-03");
        assert_eq!(go_exponent(1e300), "1e+300");
        assert_eq!(go_exponent(f64::NAN), "NaN");
        assert_eq!(go_exponent(f64::NEG_INFINITY), "-Inf");
        assert_eq!(rfc3339(Some(1_700_000_000_500)), "2023-11-14T22:13:20.5Z");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
    }
}
