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
