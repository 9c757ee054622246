//! Series and range reads: `GET|POST /api/v1/series` (Prometheus' API) and
//! `GET /api/v1/read` (raw points or one tier's rollups, for tests and tools). Every
//! `match[]` of a request is answered from one store snapshot. Both need role read.

use super::*;
use crate::selector::{Selector, parse_selector};

/// Every `match[]` (or `match`) of the request; at least one.
fn selectors_of(params: &[(String, String)]) -> Result<Vec<Selector>, ApiError> {
    let mut selectors = Vec::new();
    for (_, v) in params
        .iter()
        .filter(|(k, _)| k == "match[]" || k == "match")
    {
        let parsed = parse_selector(v)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("match[] {v:?}: {e}")))?;
        selectors.extend(parsed);
    }
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
    // An empty value is no label in PromQL (imported series have no `agent_id`).
    for (k, v) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        m.insert(k.clone(), v.clone().into());
    }
    serde_json::Value::Object(m)
}

/// `GET|POST /api/v1/series?match[]=SELECTOR[&start=&end=&limit=]`: every matching series
/// once, in Prometheus' format (role read). Series come from the index, which keeps a
/// series until retention removes it: `start` and `end` are checked, not used.
pub(super) async fn series(
    AxState(app): AxState<Arc<AppState>>,
    req: axum::extract::Request,
) -> Response {
    use super::{labels::*, prom::*};
    serve(app, "series", req, |app, r| async move {
        let start = r.params.time("start", i64::MIN)?;
        let end = r.params.time("end", i64::MAX)?;
        if end < start {
            return Err(PromError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        let selectors = r.params.selectors()?;
        if selectors.is_empty() {
            return Err(PromError::bad_data("no match[] parameter provided"));
        }
        let limit = r.params.limit()?;
        let store = app.store.clone();
        let max = app.query.max_series_per_selector;
        let found = blocking_prom(move || select(store.as_ref(), &selectors, max)).await?;
        let mut notes = crate::query::Annotations::default();
        let mut data: Vec<_> = found
            .iter()
            .map(|s| labels_json(&s.name, &s.labels))
            .collect();
        if limit > 0 && data.len() > limit {
            data.truncate(limit);
            notes.warnings.push("results truncated due to limit".into());
        }
        Ok(success(json!(data), &notes))
    })
    .await
}

/// `tier=raw|5m|1h|1d|1mo|auto` (with `step=MS` for auto); absent means raw points.
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

/// `GET /api/v1/read?match[]=SELECTOR&start=MS&end=MS[&tier=T]`: without `tier`, each
/// series' raw `[ms, value]` pairs; with it, each series names its tier and rollup points
/// are objects.
pub(super) async fn read(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&app, &headers, Access::Read).await?;
    let tier = tier_of(&params)?;
    let with_tier = tier.is_some();
    let request = ReadRequest {
        selectors: selectors_of(&params)?,
        start: param_i64(&params, "start", 0)?,
        end: param_i64(&params, "end", i64::MAX)?,
        tier: tier.unwrap_or(TierChoice::Exact(Tier::Raw)),
    };
    let store = app.store.clone();
    let found = blocking(move || store.read(&request))
        .await?
        .map_err(internal)?;
    let data: Vec<_> = found
        .iter()
        .map(|s| {
            let metric = labels_json(&s.series.name, &s.series.labels);
            let values = values_json(&s.data);
            if with_tier {
                json!({ "metric": metric, "tier": s.tier.name(), "values": values })
            } else {
                json!({ "metric": metric, "values": values })
            }
        })
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

fn values_json(data: &SeriesData) -> serde_json::Value {
    match data {
        SeriesData::Raw(points) => json!(points),
        SeriesData::Rollup(records) => records
            .iter()
            .map(|r| {
                json!({
                    "t": r.start, "count": r.count, "sum": r.sum, "min": r.min,
                    "max": r.max, "first": r.first, "last": r.last,
                    "increase": r.increase, "sum_sq": r.sum_sq,
                })
            })
            .collect(),
    }
}
