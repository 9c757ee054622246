//! What `POST /api/v1/write` and `POST /v1/metrics` share over HTTP: a token of role
//! `write`, an ingest permit (429 past `[limits] max_concurrent_ingests`), and storing
//! through [`crate::ingest_foreign`], counted by protocol.

use tokio::sync::SemaphorePermit;

use super::*;
use crate::ingest_foreign::{ForeignSeries, Protocol, Reason, Refusal, Stored, validate};

/// Points newer than this are "now" for the rules, as for agents' batches.
const FRESH_MS: i64 = 5 * 60 * 1000;

/// The token's name and an ingest permit, or the answer that refuses the request.
pub(super) async fn admit<'a>(
    app: &'a Arc<AppState>,
    headers: &HeaderMap,
    protocol: Protocol,
) -> Result<(String, SemaphorePermit<'a>), ApiError> {
    let token = auth::authorize_named(app, headers, Access::Write)
        .await
        .map_err(|denied| {
            app.metrics.foreign.request(protocol, denied.kind());
            match denied {
                auth::Denied::Internal(e) => internal(e),
                other => ApiError::new(other.status(), other.message()),
            }
        })?;
    check_disk(app).inspect_err(|_| app.metrics.foreign.request(protocol, "disk_full"))?;
    let permit = app.ingest_permits.try_acquire().map_err(|_| {
        app.metrics.foreign.request(protocol, "busy");
        ApiError::retry(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest is busy; retry later",
            1,
        )
    })?;
    Ok((token, permit))
}

/// The answer to a refused request: 413 for size, 415 for media type, else 400.
pub(super) fn refused(
    app: &AppState,
    protocol: Protocol,
    token: &str,
    refusal: Refusal,
) -> ApiError {
    app.metrics.foreign.refused_request(protocol, &refusal);
    // Once a minute per token and reason: a misconfigured sender repeats its request.
    sysward_log_limit::warn_limited!(
        format!(
            "token {token}, {protocol:?}, {}: {}",
            refusal.reason.as_str(),
            refusal.message
        ),
        "Foreign ingest refused."
    );
    let status = match refusal.reason {
        Reason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Reason::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, refusal.message)
}

enum Failure {
    Refused(Refusal),
    Store(crate::store::StoreError),
}

/// Validates the whole request, then stores it durably; tells the rule engine which
/// metrics got fresh samples.
pub(super) async fn store(
    app: &Arc<AppState>,
    protocol: Protocol,
    token: String,
    series: Vec<ForeignSeries>,
) -> Result<Stored, ApiError> {
    let worker = app.clone();
    let name = token.clone();
    let result = blocking(move || {
        let validated = validate(series, &worker.limits).map_err(Failure::Refused)?;
        let fresh_after = crate::state::now_ms() - FRESH_MS;
        worker
            .foreign
            .store(worker.store.as_ref(), &name, validated, fresh_after)
            .map_err(Failure::Store)
    })
    .await?;
    match result {
        Ok(stored) => {
            app.rules.touched(stored.names.iter().map(String::as_str));
            app.metrics.foreign.stored(protocol, &stored);
            Ok(stored)
        }
        Err(Failure::Refused(refusal)) => Err(refused(app, protocol, &token, refusal)),
        Err(Failure::Store(error)) => {
            app.metrics.foreign.request(protocol, "failed");
            Err(internal(error))
        }
    }
}
