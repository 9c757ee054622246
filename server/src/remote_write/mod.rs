//! Remote write out: every sample the store takes (agents' batches, and what rules and the
//! server write themselves) forwarded with the Prometheus remote write 1.0 protocol to
//! each `[[remote_write]]` target: VictoriaMetrics, Mimir, Thanos Receive, Cortex or
//! Prometheus.
//!
//! # Queue
//!
//! The queue of every target is the store's forward log (`store/tiered/forward.rs`): each
//! stored batch's points are written there in the batch's own transaction, so they are as
//! durable as the ack the agent gets, and ingest does no more than that one insert,
//! whatever the targets do. Each target keeps a cursor in the log (`cursors.rs`), saved
//! after every round it finished; this module reads after it, sends, and moves it (see
//! `target.rs`). After `kill -9` a target sends again at most the round that was in flight.
//! Once a second the rows every target passed are deleted from the log.
//!
//! Oldest first, not fresh-first like the agent's spool: a receiver's TSDB (Prometheus,
//! Mimir, Cortex, Thanos) refuses a sample older than the newest of its series unless it
//! was set up for out-of-order ingestion, so a backlog sent after fresher points would
//! be lost there. In order, a backlog after an outage arrives whole.
//!
//! # Bound
//!
//! A target more than `max_queue_bytes` of log behind the newest row loses its oldest rows,
//! counted in `sysward_server_remote_write_samples_dropped_total{reason="queue_full"}` and
//! logged at most once a minute; the newest data keeps flowing.

mod config;
mod cursors;
mod relabel;
mod send;
mod target;

use std::{
    fmt::Write,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use config::{RemoteWriteConfig, Target, resolve_all};
pub use relabel::Relabel;
pub use send::{Backoff, SendError, Sender, USER_AGENT, classify};
use target::{TargetStats, TargetTask};
use tokio::sync::watch;
use tracing::warn;

use crate::store::TieredStore;

/// How often rows every target sent are deleted.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// One configured target, as `/metrics` reports it.
struct Handle {
    name: String,
    stats: Arc<TargetStats>,
}

/// Every target of the server; empty when none is configured.
pub struct RemoteWrite {
    store: Arc<TieredStore>,
    targets: Vec<Handle>,
    /// Taken by [`RemoteWrite::run`].
    tasks: Mutex<Vec<TargetTask>>,
}

impl RemoteWrite {
    /// Checks the targets, opens their cursors (`data_dir/remote_write.db`), starts or
    /// stops the store's forward log and makes the targets' HTTP clients. Call before the
    /// first ingest.
    pub fn open(
        configs: &[RemoteWriteConfig],
        store: Arc<TieredStore>,
        data_dir: &Path,
    ) -> Result<Self, String> {
        Self::with_targets(&resolve_all(configs)?, store, data_dir)
    }

    /// [`RemoteWrite::open`] with the targets checked already.
    pub fn with_targets(
        targets: &[Target],
        store: Arc<TieredStore>,
        data_dir: &Path,
    ) -> Result<Self, String> {
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let end = store
            .forward_open(!targets.is_empty())
            .map_err(|e| format!("cannot open the forward log: {e}"))?;
        let path = data_dir.join("remote_write.db");
        // Without targets the file is only opened to forget the old cursors.
        if targets.is_empty() && !path.exists() {
            return Ok(Self {
                store,
                targets: Vec::new(),
                tasks: Mutex::new(Vec::new()),
            });
        }
        let db_error = |e: rusqlite::Error| format!("{}: {e}", path.display());
        let cursors = Arc::new(cursors::Cursors::open(&path).map_err(db_error)?);
        let positions = cursors.load(&names, end).map_err(db_error)?;
        let mut handles = Vec::with_capacity(targets.len());
        let mut tasks = Vec::with_capacity(targets.len());
        for (target, cursor) in targets.iter().zip(positions) {
            let sender = Sender::new(target)
                .map_err(|e| format!("[[remote_write]] {}: {e}", target.name))?;
            let stats = Arc::new(TargetStats::new(cursor));
            let relabel = Relabel {
                keep: target.keep.clone(),
                drop: target.drop.clone(),
                extra_labels: target.extra_labels.clone(),
            };
            tasks.push(TargetTask::new(
                target,
                store.clone(),
                cursors.clone(),
                Arc::new(sender),
                relabel,
                stats.clone(),
            ));
            handles.push(Handle {
                name: target.name.clone(),
                stats,
            });
        }
        Ok(Self {
            store,
            targets: handles,
            tasks: Mutex::new(tasks),
        })
    }

    /// Runs every target until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        if tasks.is_empty() {
            return;
        }
        let mut running = tokio::task::JoinSet::new();
        for task in tasks {
            running.spawn(task.run(stop.clone()));
        }
        let mut tick = tokio::time::interval(TRIM_EVERY);
        let mut trimmed = 0;
        while !*stop.borrow() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            trimmed = self.trim(trimmed).await;
        }
        while running.join_next().await.is_some() {}
    }

    /// Deletes the rows every target sent, when they moved past `trimmed`; returns how far
    /// the log is trimmed now.
    async fn trim(&self, trimmed: i64) -> i64 {
        let sent = self
            .targets
            .iter()
            .map(|t| t.stats.acked().id)
            .min()
            .unwrap_or(0);
        if sent <= trimmed {
            return trimmed;
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.forward_trim(sent)).await {
            Ok(Ok(())) => sent,
            Ok(Err(error)) => {
                warn!(%error, "Cannot trim the forward log.");
                trimmed
            }
            Err(error) => {
                warn!(%error, "Cannot trim the forward log.");
                trimmed
            }
        }
    }

    /// `/metrics` lines of every target; reads the store (blocking).
    pub fn render_metrics(&self) -> String {
        let mut o = String::new();
        if self.targets.is_empty() {
            return o;
        }
        let end = *self.store.forward_watch().borrow();
        let now = crate::state::now_ms();
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut o,
            "sysward_server_remote_write_lag_seconds",
            "gauge",
            "How long the oldest sample not yet sent to the target has waited since the server stored it; 0 when all is sent.",
        );
        for t in &self.targets {
            let acked = t.stats.acked();
            let lag = match self.store.forward_oldest_at(acked.id) {
                Ok(Some(at)) => (now - at).max(0) as f64 / 1000.0,
                _ => 0.0,
            };
            let _ = writeln!(
                o,
                "sysward_server_remote_write_lag_seconds{{target=\"{}\"}} {lag}",
                t.name
            );
        }
        family(
            &mut o,
            "sysward_server_remote_write_queue_bytes",
            "gauge",
            "Bytes of the forward log not yet sent to the target (bounded by max_queue_bytes).",
        );
        for t in &self.targets {
            let bytes = (end.offset - t.stats.acked().offset).max(0);
            let _ = writeln!(
                o,
                "sysward_server_remote_write_queue_bytes{{target=\"{}\"}} {bytes}",
                t.name
            );
        }
        for (name, help, get) in [
            (
                "sysward_server_remote_write_samples_sent_total",
                "Samples the target accepted.",
                (|s: &TargetStats| s.sent.load(std::sync::atomic::Ordering::Relaxed))
                    as fn(&TargetStats) -> u64,
            ),
            (
                "sysward_server_remote_write_samples_failed_total",
                "Samples of requests that failed with a 5xx, a 429 or a network error, counted at each try; they are sent again.",
                |s: &TargetStats| s.failed.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ] {
            family(&mut o, name, "counter", help);
            for t in &self.targets {
                let _ = writeln!(o, "{name}{{target=\"{}\"}} {}", t.name, get(&t.stats));
            }
        }
        let name = "sysward_server_remote_write_samples_dropped_total";
        family(
            &mut o,
            name,
            "counter",
            "Samples never sent: refused for good by the target (a 4xx other than 429) or dropped as the oldest of a queue over max_queue_bytes.",
        );
        for t in &self.targets {
            let s = &t.stats;
            for (reason, n) in [("rejected", &s.rejected), ("queue_full", &s.queue_full)] {
                let _ = writeln!(
                    o,
                    "{name}{{target=\"{}\",reason=\"{reason}\"}} {}",
                    t.name,
                    n.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests;
