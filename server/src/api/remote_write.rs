//! `POST /api/v1/write`: Prometheus remote write 1.0 (snappy-compressed protobuf
//! `WriteRequest`) from Prometheus, Grafana Alloy, vmagent or an OpenTelemetry collector,
//! with a token of role `write`. 204 once stored; what is refused and why is in
//! [`crate::ingest_foreign`].

use super::*;
use crate::ingest_foreign::{Protocol, Reason, Refusal, remote_write};

pub(super) async fn write(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (token, _permit) = foreign::admit(&app, &headers, Protocol::RemoteWrite).await?;
    let refuse = |refusal| foreign::refused(&app, Protocol::RemoteWrite, &token, refusal);
    if let Some(version) = other_protocol(&headers) {
        return Err(refuse(Refusal::new(
            Reason::UnsupportedMediaType,
            format!(
                "remote write {version} is not supported; send remote write 1.0 (prometheus.WriteRequest)"
            ),
        )));
    }
    let body = read_body(body, app.limits.max_compressed_bytes)
        .await
        .inspect_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.foreign.refused_request(
                    Protocol::RemoteWrite,
                    &Refusal::new(Reason::TooLarge, e.message.clone()),
                );
            }
        })?;
    let limits = app.limits.clone();
    let series =
        blocking(move || remote_write::decode(&body, &limits).and_then(remote_write::to_series))
            .await?
            .map_err(refuse)?;
    foreign::store(&app, Protocol::RemoteWrite, token, series).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The protocol a `Content-Type` names when it is not remote write 1.0 (`proto=` other
/// than `prometheus.WriteRequest`, as remote write 2.0 senders set it).
fn other_protocol(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let proto = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("proto="))
        .next()?;
    (proto != "prometheus.WriteRequest").then(|| proto.to_string())
}
