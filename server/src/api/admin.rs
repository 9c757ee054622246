//! Admin endpoints: the agents and the server's own metrics.

use super::*;

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
pub(super) async fn metrics(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&app, &headers).await?;
    let app2 = app.clone();
    // `stats` takes the store's memory lock, which a cut may hold for a moment.
    let text = blocking(move || {
        let mut text = metrics::render(&app2.metrics, &app2.store.stats(), ProcessStats::read());
        text.push_str(&metrics::render_rules(&rules_report(&app2.rules)));
        text.push_str(&metrics::render_notify(&app2.notifier));
        text.push_str(&app2.remote_write.render_metrics());
        text
    })
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

fn rules_report(engine: &crate::rules::RuleEngine) -> metrics::RulesReport {
    let (rules, [pending, firing, nodata]) = engine.summary();
    metrics::RulesReport {
        stats: engine.stats(),
        rules,
        file_errors: engine.load_errors().len(),
        alerts: [("pending", pending), ("firing", firing), ("nodata", nodata)],
    }
}
