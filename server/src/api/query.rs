//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query` and
//! `/api/v1/parse_query`, in Prometheus' formats. Values are `[<unix s>, "<value>"]`;
//! an instant vector's samples carry the evaluation time, as Prometheus writes them.
//!
//! Queries wait for one of `[query] max_concurrent` slots, within their timeout (waiting
//! counts, as in Prometheus), then run on the blocking pool over one store snapshot. The
//! engine stops at its timeout; the handler also stops waiting a little after it, so that a
//! query that overruns cannot hold a request forever (its slot is held until it ends, which
//! keeps the number of running evaluations bounded).

use std::time::{Duration, Instant};

use axum::extract::Request;

use super::{
    prom::{PromError, PromRequest, parse_duration, serve, success, time_json},
    *,
};
use crate::{
    query::{self, QueryError, QueryOptions, QueryOutput, StoreSource, Value, format_value},
    state::now_ms,
};

/// How long past its timeout the handler waits for an engine that overruns.
const GRACE: Duration = Duration::from_secs(1);

pub(super) async fn query(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "query", req, instant).await
}

pub(super) async fn query_range(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "query_range", req, range).await
}

/// No exemplars are stored: always an empty list, so that Grafana's exemplar queries
/// succeed. The parameters are checked as Prometheus checks them.
pub(super) async fn query_exemplars(
    AxState(app): AxState<Arc<AppState>>,
    req: Request,
) -> Response {
    serve(app, "query_exemplars", req, |_, r| async move {
        query::parse(r.params.required("query")?)?;
        let start = r.params.time("start", i64::MIN)?;
        let end = r.params.time("end", i64::MAX)?;
        if end < start {
            return Err(PromError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        Ok(success(json!([]), &Default::default()))
    })
    .await
}

pub(super) async fn format_query(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "format_query", req, |_, r| async move {
        let expr = query::parse(r.params.required("query")?)?;
        Ok(success(json!(expr.prettify()), &Default::default()))
    })
    .await
}

/// Validates and echoes: the expression's kind and its canonical text (not Prometheus'
/// whole AST).
pub(super) async fn parse_query(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "parse_query", req, |_, r| async move {
        let expr = query::parse(r.params.required("query")?)?;
        // The parser's serialisation follows Prometheus' syntax tree format (PromLens'
        // tree view reads it).
        let data = serde_json::to_value(&expr)
            .map_err(|e| QueryError::Internal(format!("cannot serialise the syntax tree: {e}")))?;
        Ok(success(data, &Default::default()))
    })
    .await
}

/// The engine's options for one request: `timeout` (shortening `[query] timeout`),
/// `lookback_delta` and our `tier`.
fn options(app: &AppState, params: &prom::Params) -> Result<QueryOptions, PromError> {
    let mut options = app.query.options();
    if let Some(v) = params.get("timeout").filter(|v| !v.is_empty()) {
        let ms = parse_duration(v).map_err(|e| PromError::param("timeout", e))?;
        if ms <= 0 {
            return Err(PromError::param("timeout", "must be positive"));
        }
        let asked = Duration::from_millis(ms.unsigned_abs());
        options.limits.timeout = options.limits.timeout.min(asked);
    }
    if let Some(v) = params.get("lookback_delta").filter(|v| !v.is_empty()) {
        let ms = parse_duration(v).map_err(|e| PromError::param("lookback_delta", e))?;
        if ms <= 0 {
            return Err(PromError::param("lookback_delta", "must be positive"));
        }
        options.lookback_ms = ms;
    }
    if let Some(v) = params.get("tier").filter(|v| !v.is_empty()) {
        let tier = Tier::parse(v).ok_or_else(|| {
            PromError::param("tier", format!("{v:?} is not raw, 5m, 1h, 1d or 1mo"))
        })?;
        options.tier = Some(tier);
    }
    Ok(options)
}

async fn instant(app: Arc<AppState>, r: PromRequest) -> Result<Response, PromError> {
    let expr = r.params.required("query")?.to_string();
    let time = r.params.time("time", now_ms())?;
    let options = options(&app, &r.params)?;
    let stats = wants_stats(&r.params);
    let (out, timings) = evaluate(&app, options, move |source, options| {
        query::instant_query(source, &expr, time, options)
    })
    .await?;
    Ok(answer(&out, time, stats.then_some(timings)))
}

async fn range(app: Arc<AppState>, r: PromRequest) -> Result<Response, PromError> {
    let expr = r.params.required("query")?.to_string();
    let start = r.params.time("start", i64::MIN)?;
    let end = r.params.time("end", i64::MIN)?;
    for (name, t) in [("start", start), ("end", end)] {
        if t == i64::MIN {
            return Err(PromError::param(name, "missing"));
        }
    }
    if end < start {
        return Err(PromError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step_text = r.params.required("step")?;
    let step = parse_duration(step_text).map_err(|e| PromError::param("step", e))?;
    if step <= 0 {
        return Err(PromError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let options = options(&app, &r.params)?;
    let max_points = options.limits.max_points_per_series;
    if (end - start) / step >= i64::try_from(max_points).unwrap_or(i64::MAX) {
        return Err(PromError::bad_data(format!(
            "exceeded maximum resolution of {max_points} points per timeseries. Try decreasing the query resolution (?step=XX)"
        ))
        .refused_by("max_points_per_series"));
    }
    let stats = wants_stats(&r.params);
    let (out, timings) = evaluate(&app, options, move |source, options| {
        query::range_query(source, &expr, start, end, step, options)
    })
    .await?;
    Ok(answer(&out, end, stats.then_some(timings)))
}

/// `stats=<anything>` asks for the statistics, as in Prometheus.
fn wants_stats(params: &prom::Params) -> bool {
    params.get("stats").is_some_and(|v| !v.is_empty())
}

/// How long a query waited and ran.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timings {
    queued: Duration,
    eval: Duration,
}

/// Runs `job` over the store once a query slot is free, within the query's timeout.
pub(super) async fn evaluate<F>(
    app: &Arc<AppState>,
    options: QueryOptions,
    job: F,
) -> Result<(QueryOutput, Timings), PromError>
where
    F: FnOnce(&StoreSource, &QueryOptions) -> Result<QueryOutput, QueryError> + Send + 'static,
{
    let slots = Slots {
        permits: app.query_permits.clone(),
        count: app.query.max_concurrent,
    };
    run_in_slot(&slots, StoreSource(app.store.clone()), options, job).await
}

/// The query slots: `[query] max_concurrent` permits.
#[derive(Clone)]
struct Slots {
    permits: Arc<Semaphore>,
    count: usize,
}

/// Runs `job` over `source` on the blocking pool once a slot is free, within the query's
/// timeout; the slot is held until the job ends, even past the timeout.
async fn run_in_slot<S, F>(
    slots: &Slots,
    source: S,
    mut options: QueryOptions,
    job: F,
) -> Result<(QueryOutput, Timings), PromError>
where
    S: query::QuerySource + 'static,
    F: FnOnce(&S, &QueryOptions) -> Result<QueryOutput, QueryError> + Send + 'static,
{
    let timeout = options.limits.timeout;
    let queued_at = Instant::now();
    let permit = match tokio::time::timeout(timeout, slots.permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(closed)) => return Err(PromError::internal(closed)),
        Err(_) => {
            let e = QueryError::Timeout(format!(
                "query timed out waiting {} for one of the {} query slots ([query] max_concurrent)",
                humantime(timeout),
                slots.count
            ));
            return Err(PromError::from(e).refused_by("max_concurrent"));
        }
    };
    let queued = queued_at.elapsed();
    options.limits.timeout = timeout.saturating_sub(queued).max(Duration::from_millis(1));
    let started = Instant::now();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job(&source, &options)
    });
    let result = match tokio::time::timeout(options.limits.timeout + GRACE, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => {
            return Err(PromError::internal(format!(
                "query evaluation failed: {join}"
            )));
        }
        Err(_) => Err(QueryError::Timeout(format!(
            "query timed out in expression evaluation after {} ([query] timeout)",
            humantime(timeout)
        ))),
    };
    let out = result?;
    Ok((
        out,
        Timings {
            queued,
            eval: started.elapsed(),
        },
    ))
}

fn humantime(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// The success envelope of a query: `resultType`, `result`, `stats` when asked.
pub(super) fn answer(out: &QueryOutput, time: i64, timings: Option<Timings>) -> Response {
    let mut data = serde_json::Map::new();
    data.insert("resultType".into(), out.value.type_name().into());
    data.insert("result".into(), value_json(&out.value, time));
    if let Some(t) = timings {
        data.insert("stats".into(), stats_json(out, t));
    }
    success(serde_json::Value::Object(data), &out.annotations)
}

fn point(t: i64, v: f64) -> serde_json::Value {
    json!([time_json(t), format_value(v)])
}

/// A value as Prometheus writes it; `time` is the evaluation time (the end of a range
/// query, which always answers a matrix).
pub(super) fn value_json(value: &Value, time: i64) -> serde_json::Value {
    match value {
        Value::Scalar(v) => point(time, *v),
        Value::String(s) => json!([time_json(time), s]),
        Value::Vector(samples) => samples
            .iter()
            .map(|s| json!({ "metric": &*s.metric, "value": point(time, s.value) }))
            .collect(),
        Value::Matrix(series) => series
            .iter()
            .map(|s| {
                let values: Vec<_> = s.points.iter().map(|&(t, v)| point(t, v)).collect();
                json!({ "metric": &*s.metric, "values": values })
            })
            .collect(),
    }
}

fn stats_json(out: &QueryOutput, t: Timings) -> serde_json::Value {
    let eval = t.eval.as_secs_f64();
    json!({
        "timings": {
            "evalTotalTime": eval,
            "resultSortTime": 0.0,
            "queryPreparationTime": 0.0,
            "innerEvalTime": eval,
            "execQueueTime": t.queued.as_secs_f64(),
            "execTotalTime": eval + t.queued.as_secs_f64(),
        },
        "samples": {
            "totalQueryableSamples": out.stats.samples_read,
            "peakSamples": out.stats.peak_samples,
        },
        "seriesRead": out.stats.series_read,
        "tier": out.stats.tier.map(Tier::name),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc as StdArc, mpsc};

    use super::*;
    use crate::query::{Annotations, Labels, MemorySource, QueryStats, Sample, Series};

    fn with_timeout(ms: u64) -> QueryOptions {
        let mut o = QueryOptions::default();
        o.limits.timeout = Duration::from_millis(ms);
        o
    }

    fn scalar() -> QueryOutput {
        QueryOutput {
            value: Value::Scalar(1.0),
            annotations: Annotations::default(),
            stats: QueryStats::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_waits_for_a_slot_and_is_refused_at_its_timeout() {
        let slots = Slots {
            permits: Arc::new(Semaphore::new(1)),
            count: 1,
        };
        let (release, wait) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        // The first query holds the only slot until released.
        let held = slots.clone();
        let first = tokio::spawn(async move {
            let job = move |_: &MemorySource, _: &QueryOptions| {
                let _ = started_tx.send(());
                let _ = wait.recv();
                Ok(scalar())
            };
            run_in_slot(&held, MemorySource::new(), with_timeout(60_000), job)
                .await
                .map(|(out, _)| out)
        });
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .unwrap()
            .unwrap();
        let refused = run_in_slot(&slots, MemorySource::new(), with_timeout(50), |_, _| {
            Ok(scalar())
        })
        .await
        .unwrap_err();
        assert_eq!(refused.error_type(), "timeout");
        assert_eq!(refused.refused_by, Some("max_concurrent"));
        assert!(
            refused.message.contains("max_concurrent"),
            "{}",
            refused.message
        );
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().value, Value::Scalar(1.0));
        // The slot is free again.
        let (out, timings) =
            run_in_slot(&slots, MemorySource::new(), with_timeout(1000), |_, _| {
                Ok(scalar())
            })
            .await
            .unwrap();
        assert_eq!(out.value, Value::Scalar(1.0));
        assert!(timings.queued < Duration::from_secs(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_that_overruns_its_timeout_is_answered_and_keeps_its_slot() {
        let slots = Slots {
            permits: Arc::new(Semaphore::new(1)),
            count: 1,
        };
        let (release, wait) = mpsc::channel::<()>();
        let e = run_in_slot(
            &slots,
            MemorySource::new(),
            with_timeout(10),
            move |_, options| {
                assert!(options.limits.timeout.as_millis() <= 10);
                let _ = wait.recv();
                Ok(scalar())
            },
        )
        .await
        .unwrap_err();
        assert_eq!((e.error_type(), e.refused_by), ("timeout", Some("timeout")));
        // Still evaluating: its slot stays taken until it ends.
        assert_eq!(slots.permits.available_permits(), 0);
        release.send(()).unwrap();
        let permit = tokio::time::timeout(Duration::from_secs(10), slots.permits.acquire())
            .await
            .unwrap();
        assert!(permit.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_engine_is_an_internal_error() {
        let slots = Slots {
            permits: Arc::new(Semaphore::new(1)),
            count: 1,
        };
        let e = run_in_slot(&slots, MemorySource::new(), with_timeout(1000), |_, _| {
            panic!("engine bug")
        })
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "internal");
        assert_eq!(slots.permits.available_permits(), 1);
    }

    fn metric() -> query::Metric {
        StdArc::new(Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "node".into()),
        ]))
    }

    #[test]
    fn values_are_written_in_prometheus_shapes() {
        assert_eq!(
            value_json(&Value::Scalar(2.0), 1_700_000_000_000).to_string(),
            r#"[1700000000,"2"]"#
        );
        assert_eq!(
            value_json(&Value::String("a".into()), 1500).to_string(),
            r#"[1.5,"a"]"#
        );
        let v = Value::Vector(vec![Sample {
            metric: metric(),
            value: f64::NAN,
            ts: 1000,
        }]);
        assert_eq!(
            value_json(&v, 2000).to_string(),
            r#"[{"metric":{"__name__":"up","job":"node"},"value":[2,"NaN"]}]"#
        );
        let m = Value::Matrix(vec![Series {
            metric: metric(),
            points: vec![(1000, f64::INFINITY), (2500, -1.0)],
        }]);
        assert_eq!(
            value_json(&m, 2500).to_string(),
            r#"[{"metric":{"__name__":"up","job":"node"},"values":[[1,"+Inf"],[2.5,"-1"]]}]"#
        );
    }
}
