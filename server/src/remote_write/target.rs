//! One target's loop: read a round of the forward log after the target's cursor, split it
//! into one request per shard (a series always goes to the same shard), send the shards at
//! once, each retrying on its own, and move the cursor past the round once every shard is
//! done. Rounds follow each other, so every series reaches the receiver oldest first.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sysward_log_limit::Throttle;
use sysward_promwire::{Label, Sample, TimeSeries, WriteRequest};
use tokio::{sync::watch, task::JoinSet};
use tracing::{info, warn};

use super::{
    cursors::Cursors,
    relabel::Relabel,
    send::{Backoff, SendError, Sender},
};
use crate::store::{ForwardPosition, ForwardRow, TieredStore};

/// A wait for new rows ends after this even without a signal.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Series whose labels a target keeps at once; past it the cache starts again.
const MAX_CACHED_SERIES: usize = 1 << 20;

/// A target's figures for `/metrics`, and its cursor as sent.
#[derive(Debug, Default)]
pub(super) struct TargetStats {
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) queue_full: AtomicU64,
    acked: Mutex<ForwardPosition>,
    rejected_log: Mutex<Throttle>,
    overflow_log: Mutex<Throttle>,
}

impl TargetStats {
    pub(super) fn new(cursor: ForwardPosition) -> Self {
        Self {
            acked: Mutex::new(cursor),
            ..Self::default()
        }
    }

    /// The last row sent or dropped.
    pub(super) fn acked(&self) -> ForwardPosition {
        *self.acked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_acked(&self, p: ForwardPosition) {
        *self.acked.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn log_rejected(&self, target: &str, samples: usize, reason: &str) {
        let allowed = self
            .rejected_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(Instant::now());
        if let Some(held) = allowed {
            warn!(
                target,
                samples,
                reason,
                similar_since_last = held,
                "Remote write request refused by the receiver; its samples are dropped."
            );
        }
    }

    fn log_overflow(&self, target: &str, samples: u64) {
        let allowed = self
            .overflow_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(Instant::now());
        if let Some(held) = allowed {
            warn!(
                target,
                samples,
                similar_since_last = held,
                "Remote write queue over max_queue_bytes; its oldest samples are dropped."
            );
        }
    }
}

/// What a target needs besides its figures.
pub(super) struct TargetTask {
    pub(super) name: String,
    pub(super) store: Arc<TieredStore>,
    pub(super) cursors: Arc<Cursors>,
    pub(super) sender: Arc<Sender>,
    pub(super) relabel: Relabel,
    pub(super) shards: usize,
    pub(super) max_samples_per_send: usize,
    pub(super) max_queue_bytes: u64,
    pub(super) min_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) stats: Arc<TargetStats>,
    /// Per series id, its labels as sent, or `None` when relabelling drops it.
    cache: HashMap<u32, Option<Arc<[Label]>>>,
}

/// One shard's request of a round.
struct ShardRequest {
    samples: usize,
    body: Vec<u8>,
}

/// How a round ended.
#[derive(Debug, PartialEq, Eq)]
enum RoundEnd {
    /// Every shard delivered, was refused for good, or was overrun by the queue bound.
    Done,
    /// The server is stopping: the round is sent again after the restart.
    Stopped,
}

impl TargetTask {
    pub(super) fn new(
        target: &super::config::Target,
        store: Arc<TieredStore>,
        cursors: Arc<Cursors>,
        sender: Arc<Sender>,
        relabel: Relabel,
        stats: Arc<TargetStats>,
    ) -> Self {
        Self {
            name: target.name.clone(),
            store,
            cursors,
            sender,
            relabel,
            shards: target.shards,
            max_samples_per_send: target.max_samples_per_send,
            max_queue_bytes: target.max_queue_bytes,
            min_backoff: target.min_backoff,
            max_backoff: target.max_backoff,
            stats,
            cache: HashMap::new(),
        }
    }

    /// Sends until `stop` turns true.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut end = self.store.forward_watch();
        info!(target = self.name, "Remote write started.");
        loop {
            if *stop.borrow() {
                break;
            }
            let newest = *end.borrow();
            if let Err(error) = self.enforce_bound(newest).await {
                warn!(target = self.name, %error, "Cannot read the forward log.");
            }
            let rows = match self.read_round().await {
                Ok(rows) => rows,
                Err(error) => {
                    warn!(target = self.name, %error, "Cannot read the forward log.");
                    Vec::new()
                }
            };
            let Some(last) = rows.last().map(|r| r.position) else {
                tokio::select! {
                    _ = end.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let requests = self.build(&rows);
            if self.send_round(requests, last, &end, &stop).await == RoundEnd::Stopped {
                break;
            }
            self.save(last).await;
        }
        info!(target = self.name, "Remote write stopped.");
    }

    /// Moves the cursor past a finished round (or skipped rows), saved first.
    async fn save(&self, to: ForwardPosition) {
        let (cursors, name) = (self.cursors.clone(), self.name.clone());
        let saved = tokio::task::spawn_blocking(move || cursors.save(&name, to)).await;
        if !matches!(saved, Ok(Ok(()))) {
            // Only a restart now would send these rows again.
            warn!(target = self.name, "Cannot save the remote write cursor.");
        }
        self.stats.set_acked(to);
    }

    async fn read_round(&self) -> Result<Vec<ForwardRow>, String> {
        let store = self.store.clone();
        let after = self.stats.acked().id;
        let budget = self.max_samples_per_send.saturating_mul(self.shards);
        tokio::task::spawn_blocking(move || store.forward_read(after, budget))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Past `max_queue_bytes` behind the end, skips the oldest rows (counted as dropped)
    /// until the rest fits.
    async fn enforce_bound(&self, end: ForwardPosition) -> Result<(), String> {
        let cursor = self.stats.acked();
        let limit = i64::try_from(self.max_queue_bytes).unwrap_or(i64::MAX);
        if end.offset - cursor.offset <= limit {
            return Ok(());
        }
        let store = self.store.clone();
        let floor = end.offset - limit;
        let skipped = tokio::task::spawn_blocking(move || store.forward_skip(cursor.id, floor))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some((to, samples)) = skipped {
            self.stats.queue_full.fetch_add(samples, Ordering::Relaxed);
            self.stats.log_overflow(&self.name, samples);
            self.save(to).await;
        }
        Ok(())
    }

    /// The labels to send for a series, or `None` when it is not sent.
    fn labels(&mut self, id: u32) -> Option<Arc<[Label]>> {
        if let Some(known) = self.cache.get(&id) {
            return known.clone();
        }
        if self.cache.len() >= MAX_CACHED_SERIES {
            self.cache.clear();
        }
        // Not cached when unknown: only a series the index has not taken yet could be.
        let series = self.store.series_labels(id)?;
        let labels = self.relabel.apply(&series).map(Arc::from);
        self.cache.insert(id, labels.clone());
        labels
    }

    /// One request per shard that has samples, each series' points in log order.
    fn build(&mut self, rows: &[ForwardRow]) -> Vec<ShardRequest> {
        let mut shards: Vec<(WriteRequest, HashMap<u32, usize>, usize)> = (0..self.shards)
            .map(|_| (WriteRequest::default(), HashMap::new(), 0))
            .collect();
        for row in rows {
            for (id, points) in &row.series {
                let Some(labels) = self.labels(*id) else {
                    continue;
                };
                let (request, index, samples) = &mut shards[shard_of(*id, self.shards)];
                let at = *index.entry(*id).or_insert_with(|| {
                    request.timeseries.push(TimeSeries {
                        labels: labels.to_vec(),
                        ..TimeSeries::default()
                    });
                    request.timeseries.len() - 1
                });
                request.timeseries[at].samples.extend(
                    points
                        .iter()
                        .map(|&(timestamp, value)| Sample { value, timestamp }),
                );
                *samples += points.len();
            }
        }
        shards
            .into_iter()
            .filter(|s| s.2 > 0)
            .map(|(request, _, samples)| ShardRequest {
                samples,
                body: sysward_promwire::encode(&request),
            })
            .collect()
    }

    async fn send_round(
        &self,
        requests: Vec<ShardRequest>,
        last: ForwardPosition,
        end: &watch::Receiver<ForwardPosition>,
        stop: &watch::Receiver<bool>,
    ) -> RoundEnd {
        let mut set = JoinSet::new();
        for request in requests {
            let shard = Shard {
                name: self.name.clone(),
                sender: self.sender.clone(),
                stats: self.stats.clone(),
                backoff: Backoff::new(self.min_backoff, self.max_backoff),
                round_end: last.offset,
                max_queue_bytes: i64::try_from(self.max_queue_bytes).unwrap_or(i64::MAX),
                end: end.clone(),
                stop: stop.clone(),
            };
            set.spawn(shard.deliver(request));
        }
        let mut outcome = RoundEnd::Done;
        while let Some(done) = set.join_next().await {
            if !matches!(done, Ok(RoundEnd::Done)) {
                outcome = RoundEnd::Stopped;
            }
        }
        outcome
    }
}

/// The shard of a series: a hash of its id, the same for every round.
fn shard_of(id: u32, shards: usize) -> usize {
    let mut h = rustc_hash::FxHasher::default();
    id.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// One shard's delivery of one request.
struct Shard {
    name: String,
    sender: Arc<Sender>,
    stats: Arc<TargetStats>,
    backoff: Backoff,
    /// Where the round ends in the log, to tell when the queue bound overran it.
    round_end: i64,
    max_queue_bytes: i64,
    end: watch::Receiver<ForwardPosition>,
    stop: watch::Receiver<bool>,
}

impl Shard {
    async fn deliver(mut self, request: ShardRequest) -> RoundEnd {
        let n = request.samples as u64;
        loop {
            // A stop does not wait for a request out to a slow receiver: the round is sent
            // again after the restart.
            let sent = tokio::select! {
                sent = self.sender.send(request.body.clone()) => sent,
                _ = self.stop.changed() => return RoundEnd::Stopped,
            };
            let error = match sent {
                Ok(()) => {
                    self.stats.sent.fetch_add(n, Ordering::Relaxed);
                    return RoundEnd::Done;
                }
                Err(SendError::Rejected(reason)) => {
                    self.stats.rejected.fetch_add(n, Ordering::Relaxed);
                    self.stats
                        .log_rejected(&self.name, request.samples, &reason);
                    return RoundEnd::Done;
                }
                Err(e) => e,
            };
            self.stats.failed.fetch_add(n, Ordering::Relaxed);
            let after = match &error {
                SendError::Retry { after, .. } => *after,
                SendError::Rejected(_) => None,
            };
            let wait = self.backoff.wait(after);
            tracing::debug!(target = self.name, %error, ?wait, "Remote write failed; retrying.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.changed() => {}
            }
            if *self.stop.borrow() {
                return RoundEnd::Stopped;
            }
            if self.end.borrow().offset - self.max_queue_bytes >= self.round_end {
                // The bound passed this whole round while it waited: it is the oldest
                // data, and goes first.
                self.stats.queue_full.fetch_add(n, Ordering::Relaxed);
                self.stats.log_overflow(&self.name, n);
                return RoundEnd::Done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_keeps_its_shard_and_shards_are_used() {
        let used: std::collections::BTreeSet<usize> = (0..100).map(|id| shard_of(id, 4)).collect();
        assert_eq!(used.len(), 4);
        assert_eq!(shard_of(7, 4), shard_of(7, 4));
        assert_eq!(shard_of(7, 1), 0);
    }
}
