//! `POST /v1/metrics`: OTLP/HTTP metrics, protobuf (`Content-Type:
//! application/x-protobuf`), optionally `Content-Encoding: gzip`, with a token of role
//! `write`. Answers as OTLP/HTTP says: 200 with an `ExportMetricsServiceResponse`
//! (`partial_success` when some points were refused), errors with a `google.rpc.Status`
//! body; mapping in [`crate::ingest_foreign::otlp`].

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use prost::Message;

use super::*;
use crate::ingest_foreign::{
    Protocol, Reason, Refusal,
    otlp::{self, RpcStatus},
};

const PROTOBUF: &str = "application/x-protobuf";

pub(super) async fn metrics(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match export(&app, &headers, body).await {
        Ok(response) => protobuf(StatusCode::OK, response.encode_to_vec(), None),
        Err(error) => {
            let status = RpcStatus {
                code: grpc_code(error.status),
                message: error.message,
            };
            protobuf(error.status, status.encode_to_vec(), error.retry_after)
        }
    }
}

async fn export(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let (token, _permit) = foreign::admit(app, headers, Protocol::Otlp).await?;
    let refuse = |refusal| foreign::refused(app, Protocol::Otlp, &token, refusal);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(PROTOBUF) {
        return Err(refuse(Refusal::new(
            Reason::UnsupportedMediaType,
            format!("Content-Type must be {PROTOBUF} (OTLP/HTTP protobuf), not {content_type:?}"),
        )));
    }
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(e)) if e.eq_ignore_ascii_case("gzip") => true,
        Some(Ok(e)) if e.eq_ignore_ascii_case("identity") => false,
        Some(other) => {
            return Err(refuse(Refusal::new(
                Reason::UnsupportedMediaType,
                format!("Content-Encoding {other:?} is not supported; use gzip or none"),
            )));
        }
    };
    let body = read_body(body, app.limits.max_compressed_bytes)
        .await
        .inspect_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.foreign.refused_request(
                    Protocol::Otlp,
                    &Refusal::new(Reason::TooLarge, e.message.clone()),
                );
            }
        })?;
    let limits = app.limits.clone();
    let mapped = blocking(move || otlp::decode(&body, gzip, &limits).map(|r| otlp::to_series(&r)))
        .await?
        .map_err(refuse)?;
    for (reason, points) in &mapped.rejected {
        app.metrics
            .foreign
            .refused_points(Protocol::Otlp, *reason, *points);
    }
    let rejected = mapped.rejected_points();
    foreign::store(app, Protocol::Otlp, token, mapped.series).await?;
    let partial_success = (rejected > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: mapped.first_error.unwrap_or_default(),
    });
    Ok(ExportMetricsServiceResponse { partial_success })
}

fn protobuf(status: StatusCode, body: Vec<u8>, retry_after: Option<u32>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The gRPC code that goes with an HTTP status, as OTLP/HTTP's mapping has it.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}
