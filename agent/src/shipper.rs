//! Pushes queued batches to the server over mutual TLS, oldest first, one at a time, and
//! removes a batch only after the server acked its seq.
//!
//! Outcomes: 200 → ack; 429/503 and network errors → retry after `Retry-After` or an
//! exponential backoff with full jitter; 401/403 → the server does not accept this agent
//! (revoked, or its state was reset): retried at the longest backoff and logged as an error,
//! since the batches themselves are fine; any other 4xx → the batch can never be accepted,
//! so it is written to `state_dir/dead-letter/` and counted instead of blocking the queue.
//!
//! After a certificate renewal the shipper takes the new TLS settings before its next push;
//! the first push accepted with them removes the previous key pair (see `renew.rs`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use http::{StatusCode, header};
use rand::Rng;
use sysward_proto::{AckResponse, ErrorResponse};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{
    https::{Endpoint, HttpsClient},
    identity::{Identity, create_private_dir},
    metrics::AgentMetrics,
    queue::{BatchQueue, Next, QueuedBatch},
    renew::{TlsUpdates, forget_old_pair},
};

const BACKOFF_START: Duration = Duration::from_millis(500);

enum SendError {
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Refused {
        status: StatusCode,
        reason: String,
    },
    Identity {
        status: StatusCode,
        reason: String,
    },
}

pub(crate) struct Shipper {
    pub(crate) client: HttpsClient,
    pub(crate) queue: Arc<dyn BatchQueue>,
    pub(crate) metrics: Arc<AgentMetrics>,
    pub(crate) dead_letter_dir: PathBuf,
    pub(crate) backoff_max: Duration,
    /// Where the agent's key pair is, for removing the previous one.
    state_dir: PathBuf,
    /// New TLS settings after each certificate renewal.
    renewals: Option<TlsUpdates>,
    /// An `.old` key pair waits for a push to succeed with the current one.
    pair_unconfirmed: bool,
}

impl Shipper {
    pub(crate) fn new(
        identity: &Identity,
        queue: Arc<dyn BatchQueue>,
        metrics: Arc<AgentMetrics>,
        request_timeout: Duration,
        backoff_max: Duration,
    ) -> anyhow::Result<Self> {
        let endpoint = Endpoint::parse(&identity.server_url).map_err(anyhow::Error::msg)?;
        let client = HttpsClient::new(
            endpoint,
            identity.tls_config()?,
            Duration::from_secs(10),
            request_timeout,
        )
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("server URL {:?}", identity.server_url))?;
        Ok(Self {
            client,
            queue,
            metrics,
            dead_letter_dir: identity.dir.join("dead-letter"),
            backoff_max,
            state_dir: identity.dir.clone(),
            renewals: None,
            pair_unconfirmed: false,
        })
    }

    /// Follows certificate renewals; `pair_unconfirmed` when the pair in use has not
    /// worked yet since the last renewal.
    pub(crate) fn following_renewals(
        mut self,
        renewals: TlsUpdates,
        pair_unconfirmed: bool,
    ) -> Self {
        self.renewals = Some(renewals);
        self.pair_unconfirmed = pair_unconfirmed;
        self
    }

    /// Switches to a renewed certificate, if there is one since the last push.
    fn take_renewal(&mut self) {
        let Some(renewals) = &mut self.renewals else {
            return;
        };
        if !renewals.has_changed().unwrap_or(false) {
            return;
        }
        if let Some(tls) = renewals.borrow_and_update().clone() {
            self.client.replace_tls(tls);
            self.pair_unconfirmed = true;
        }
    }

    /// After an accepted push: the pair in use works, so the previous one can go.
    fn confirm_pair(&mut self) {
        if !self.pair_unconfirmed {
            return;
        }
        self.pair_unconfirmed = false;
        match forget_old_pair(&self.state_dir) {
            Ok(()) => info!(
                "The server accepted the renewed certificate; the previous key pair is removed."
            ),
            Err(error) => warn!(%error, "Cannot remove the previous key pair."),
        }
    }

    /// Sends until `stop` turns true; then returns, leaving unsent batches in the queue.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_START;
        let mut failing = false;
        loop {
            if *stop.borrow() {
                return;
            }
            // A handle of its own, so that waiting on it leaves `self` free to change.
            let queue = self.queue.clone();
            let notified = queue.notified();
            let batch = match self.queue.next() {
                Next::Ready(batch) => batch,
                Next::Wait(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        _ = stop.changed() => {},
                    }
                    continue;
                }
                Next::Empty => {
                    // `notified` was created before asking, so a push in between is not missed.
                    tokio::select! {
                        () = notified => {},
                        _ = stop.changed() => {},
                    }
                    continue;
                }
            };
            self.take_renewal();
            let wait = match self.send(&batch).await {
                Ok(()) => {
                    self.confirm_pair();
                    self.queue.ack(batch.id);
                    self.metrics.batches_sent.inc();
                    let lag = crate::scheduler::now_ms().saturating_sub(batch.created_ms);
                    self.metrics
                        .send_lag_ms
                        .set(u64::try_from(lag).unwrap_or(0));
                    if failing {
                        info!(
                            queued = self.queue.len(),
                            "Server reachable again; sending backlog."
                        );
                        failing = false;
                    }
                    backoff = BACKOFF_START;
                    continue;
                }
                Err(SendError::Refused { status, reason }) => {
                    self.metrics.batches_dead_letter.inc();
                    error!(seq = batch.seq, %status, reason, "Server refused batch; moved to dead-letter.");
                    self.dead_letter(&batch, &reason);
                    self.queue.ack(batch.id);
                    continue;
                }
                Err(SendError::Identity { status, reason }) => {
                    self.metrics.batches_failed.inc();
                    error!(%status, reason, "Server does not accept this agent; re-enroll it. Batches are kept.");
                    failing = true;
                    self.backoff_max
                }
                Err(SendError::Retry { after, reason }) => {
                    self.metrics.batches_failed.inc();
                    if !failing {
                        warn!(reason, "Cannot deliver batches; retrying with backoff.");
                    } else {
                        debug!(reason, "Delivery still failing.");
                    }
                    failing = true;
                    let jittered = rand::rng().random_range(Duration::ZERO..=backoff);
                    backoff = (backoff * 2).min(self.backoff_max);
                    after.map_or(jittered, |a| a.min(self.backoff_max))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {},
                _ = stop.changed() => {},
            }
        }
    }

    async fn send(&self, batch: &QueuedBatch) -> Result<(), SendError> {
        let resp = self
            .client
            .post(
                "/api/v1/ingest",
                "application/json",
                Some("gzip"),
                Bytes::from_owner(SharedBody(batch.body.clone())),
            )
            .await
            .map_err(|e| SendError::Retry {
                after: None,
                reason: e.to_string(),
            })?;
        let status = resp.status;
        let retry_after = resp
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.body;
        if status.is_success() {
            let ack: AckResponse = serde_json::from_slice(&body).map_err(|e| SendError::Retry {
                after: None,
                reason: format!("malformed ack: {e}"),
            })?;
            if ack.acked_seq != batch.seq {
                return Err(SendError::Retry {
                    after: None,
                    reason: format!("server acked seq {} for batch {}", ack.acked_seq, batch.seq),
                });
            }
            return Ok(());
        }
        let reason = serde_json::from_slice::<ErrorResponse>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                SendError::Identity { status, reason }
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => SendError::Retry {
                after: retry_after,
                reason,
            },
            s if s.is_client_error() => SendError::Refused { status, reason },
            _ => SendError::Retry {
                after: retry_after,
                reason: format!("{status}: {reason}"),
            },
        })
    }

    fn dead_letter(&self, batch: &QueuedBatch, reason: &str) {
        let result = create_private_dir(&self.dead_letter_dir).and_then(|()| {
            let stem = format!("{}-{}", crate::scheduler::now_ms(), batch.seq);
            std::fs::write(
                self.dead_letter_dir.join(format!("{stem}.json.gz")),
                batch.body.as_ref(),
            )?;
            std::fs::write(self.dead_letter_dir.join(format!("{stem}.reason")), reason)?;
            Ok(())
        });
        if let Err(e) = result {
            error!(error = %e, "Cannot write dead-letter file; batch dropped.");
        }
    }
}

/// A queued batch's body handed to the request without copying it.
struct SharedBody(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
