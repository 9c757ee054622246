//! `/api/v1/labels`, `/api/v1/label/<name>/values` and `/api/v1/metadata`, in Prometheus'
//! formats. Names and values come from the store's index, which keeps a series until
//! retention removes it: `start` and `end` are checked but do not narrow the answer.
//! `limit` truncates a sorted answer and says so in a warning, as Prometheus 3 does.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path as AxPath, Request};

use super::{
    prom::{MAX_TIME_MS, PromError, PromRequest, serve, success},
    *,
};
use crate::{
    query::Annotations,
    selector::Selector,
    store::{LabelMatcher, NAME_LABEL, ReadBudget, SeriesKind},
};

pub(super) async fn labels(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "labels", req, |app, r| async move {
        let (selectors, limit) = common(&r)?;
        let store = app.store.clone();
        let max = app.query.max_series_per_selector;
        let names = blocking_prom(move || {
            if selectors.is_empty() {
                return store.label_names().map_err(PromError::internal);
            }
            let mut names = BTreeSet::new();
            for s in select(store.as_ref(), &selectors, max)? {
                names.insert(NAME_LABEL.to_string());
                names.extend(s.labels.into_keys());
            }
            Ok(names.into_iter().collect())
        })
        .await?;
        Ok(limited(names, limit))
    })
    .await
}

pub(super) async fn label_values(
    AxState(app): AxState<Arc<AppState>>,
    AxPath(name): AxPath<String>,
    req: Request,
) -> Response {
    serve(app, "label_values", req, |app, r| async move {
        if name.is_empty() {
            return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
        }
        let (selectors, limit) = common(&r)?;
        let store = app.store.clone();
        let max = app.query.max_series_per_selector;
        let values = blocking_prom(move || {
            if selectors.is_empty() {
                return store.label_values(&name).map_err(PromError::internal);
            }
            let mut values = BTreeSet::new();
            for s in select(store.as_ref(), &selectors, max)? {
                if name == NAME_LABEL {
                    values.insert(s.name);
                } else if let Some(v) = s.labels.get(&name) {
                    values.insert(v.clone());
                }
            }
            Ok(values.into_iter().collect())
        })
        .await?;
        Ok(limited(values, limit))
    })
    .await
}

/// `{"<metric>": [{"type": "counter"|"gauge", "help": "", "unit": ""}]}`: the kinds agents
/// sent; agents send no help text or unit.
pub(super) async fn metadata(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "metadata", req, |app, r| async move {
        let limit = r.params.limit()?;
        let matcher = match r.params.get("metric").filter(|m| !m.is_empty()) {
            Some(name) => LabelMatcher::eq(NAME_LABEL, name),
            None => LabelMatcher::ne(NAME_LABEL, ""),
        };
        let store = app.store.clone();
        let budget = ReadBudget {
            max_series_per_request: app.query.max_series_per_selector,
            max_points: 0,
        };
        // A read of an empty range at the far end of time: every series' kind, no points.
        let request = ReadRequest {
            selectors: vec![vec![matcher]],
            start: MAX_TIME_MS,
            end: MAX_TIME_MS,
            tier: TierChoice::Exact(Tier::Raw),
        };
        let kinds = blocking_prom(move || {
            let found = store
                .read_many(std::slice::from_ref(&request), &budget)
                .map_err(store_error)?;
            let mut kinds: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
            for s in found.into_iter().flatten() {
                let kind = match s.kind {
                    SeriesKind::Counter => "counter",
                    SeriesKind::Gauge => "gauge",
                };
                kinds.entry(s.series.name).or_default().insert(kind);
            }
            Ok(kinds)
        })
        .await?;
        let data: serde_json::Map<String, serde_json::Value> = kinds
            .into_iter()
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|(name, kinds)| {
                let entries: Vec<_> = kinds
                    .into_iter()
                    .map(|k| json!({ "type": k, "help": "", "unit": "" }))
                    .collect();
                (name, entries.into())
            })
            .collect();
        Ok(success(
            serde_json::Value::Object(data),
            &Annotations::default(),
        ))
    })
    .await
}

/// `match[]`, `start`, `end` (checked) and `limit` of the label endpoints.
fn common(r: &PromRequest) -> Result<(Vec<Selector>, usize), PromError> {
    let start = r.params.time("start", i64::MIN)?;
    let end = r.params.time("end", i64::MAX)?;
    if end < start {
        return Err(PromError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    Ok((r.params.selectors()?, r.params.limit()?))
}

/// Series matching any selector, refused past `max` of them.
pub(super) fn select(
    store: &dyn Store,
    selectors: &[Selector],
    max: usize,
) -> Result<Vec<crate::store::SeriesLabels>, PromError> {
    let found = store.select(selectors).map_err(PromError::internal)?;
    if found.len() > max {
        return Err(crate::query::QueryError::Limit {
            limit: "max_series_per_selector",
            message: format!(
                "the selectors match {} series, over the limit of {max} ([query] max_series_per_selector)",
                found.len()
            ),
        }
        .into());
    }
    Ok(found)
}

/// A sorted list, cut to `limit` (0: no limit) with Prometheus' warning when cut.
pub(super) fn limited(mut items: Vec<String>, limit: usize) -> Response {
    let mut notes = Annotations::default();
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        notes.warnings.push("results truncated due to limit".into());
    }
    success(json!(items), &notes)
}

/// A store error: a limit's refusal as the engine's, anything else internal.
fn store_error(e: crate::store::StoreError) -> PromError {
    match e {
        crate::store::StoreError::Limit { limit, message } => {
            crate::query::QueryError::Limit { limit, message }.into()
        }
        other => PromError::internal(other),
    }
}

/// Runs store work on the blocking pool.
pub(super) async fn blocking_prom<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PromError> + Send + 'static,
) -> Result<T, PromError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(PromError::internal)?
}
