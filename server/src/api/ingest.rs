//! `POST /api/v1/ingest`: an agent's batch, checked against its certificate, stored once
//! and acked only when durable.

use super::*;

pub(super) async fn ingest(
    AxState(app): AxState<Arc<AppState>>,
    axum::Extension(cert): axum::Extension<PeerCert>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AckResponse>, ApiError> {
    let result = ingest_inner(&app, cert, peer, headers, body).await;
    match &result {
        Ok(_) => app.metrics.batches_accepted.inc(),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS => {
            app.metrics.batches_refused.inc();
        }
        Err(_) => {}
    }
    result
}

async fn ingest_inner(
    app: &Arc<AppState>,
    cert: PeerCert,
    peer: PeerAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AckResponse>, ApiError> {
    let peer = peer.0;
    let Some(cert) = cert.0 else {
        warn!(%peer, "Ingest without a client certificate refused.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required",
        ));
    };
    let Some(agent_id) = agent_id_of(&cert) else {
        warn!(%peer, "Ingest with a certificate without an agent id refused.");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "client certificate names no agent",
        ));
    };
    if renew::cert_expired(&cert) {
        warn!(agent_id, %peer, "Ingest with an expired certificate refused.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the client certificate expired; renew it or enroll the agent again",
        ));
    }
    let state = app.state.clone();
    let id = agent_id.clone();
    let row = blocking(move || state.agent(&id))
        .await?
        .map_err(internal)?;
    let row = match row {
        Some(row) if row.status == AgentStatus::Approved => row,
        Some(row) => {
            warn!(agent_id, %peer, status = row.status_str(), "Ingest from an agent that is not approved refused.");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is {}", row.status_str()),
            ));
        }
        None => {
            warn!(agent_id, %peer, "Ingest from an unknown agent refused.");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is unknown"),
            ));
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if encoding != Some("gzip") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "batches must be sent with Content-Encoding: gzip",
        ));
    }
    check_disk(app)?;
    let Ok(_permit) = app.ingest_permits.try_acquire() else {
        return Err(ApiError::retry(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest is busy; retry later",
            1,
        ));
    };
    let body = read_body(body, app.limits.max_compressed_bytes).await?;
    let limits = app.limits.clone();
    let batch = blocking(move || decode_batch(&body, &limits))
        .await?
        .map_err(|e| {
            warn!(agent_id, %peer, error = %e, "Batch refused.");
            let status = match e {
                DecodeError::CompressedTooLarge { .. }
                | DecodeError::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, e.to_string())
        })?;
    if batch.agent_id != agent_id {
        warn!(agent_id, claimed = batch.agent_id, %peer, "Batch for another agent refused.");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "batch names agent {} but the certificate is {agent_id}",
                batch.agent_id
            ),
        ));
    }
    let store = app.store.clone();
    let state = app.state.clone();
    let rules = app.rules.clone();
    let hostname = batch
        .host
        .as_ref()
        .map(|h| h.hostname.clone())
        .filter(|h| !h.is_empty());
    let instance = hostname.clone().unwrap_or(row.hostname);
    let points: usize = batch.series.iter().map(|s| s.points.len()).sum();
    let outcome = blocking(move || {
        let outcome = store.ingest(&IngestBatch {
            agent_id: &batch.agent_id,
            boot_id: &batch.boot_id,
            seq: batch.seq,
            instance: &instance,
            series: &batch.series,
            events: &batch.events,
        })?;
        // A repeat still shows the agent is alive.
        let critical_ms = batch.host.as_ref().map_or(0, |h| h.critical_interval_ms);
        rules.hosts().seen(
            &batch.agent_id,
            &instance,
            crate::state::now_ms(),
            critical_ms,
        );
        if let Some(host) = &batch.host {
            let labels = crate::rules::hosts::host_labels(&host.labels);
            rules.hosts().labelled(&batch.agent_id, labels);
        }
        if outcome == IngestOutcome::Stored {
            touch_rules(&rules, &batch.series);
        }
        if let Err(error) = state.touch(&batch.agent_id, hostname.as_deref()) {
            warn!(%error, "Cannot record last seen.");
        }
        Ok::<_, crate::store::StoreError>((outcome, batch.seq))
    })
    .await?;
    let (outcome, seq) = outcome.map_err(internal)?;
    match outcome {
        IngestOutcome::Stored => app.metrics.samples_ingested.add(points as u64),
        IngestOutcome::Duplicate => app.metrics.batches_duplicate.inc(),
    }
    Ok(Json(AckResponse { acked_seq: seq }))
}

/// Tells the rule engine which metrics got fresh points. A backlog from an agent's spool is
/// history: it makes no rule evaluate early.
fn touch_rules(rules: &crate::rules::RuleEngine, series: &[sysward_proto::Series]) {
    let fresh_after = crate::state::now_ms() - FRESH_MS;
    rules.touched(
        series
            .iter()
            .filter(|s| s.points.iter().any(|p| p.0 >= fresh_after))
            .map(|s| s.name.as_str()),
    );
}

/// Points newer than this are "now" for the rules (Prometheus' lookback).
const FRESH_MS: i64 = 5 * 60 * 1000;
