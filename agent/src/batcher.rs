//! Gathers collector runs into batches. Collectors of one tier fire together (same phase),
//! so the batcher waits a short moment after the first run of a tick for the others, then
//! encodes one batch and hands it to the queue.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sysward_collectors::Kind;
use sysward_proto::{Batch, Event, HostInfo, Series, SeriesKind, VERSION, encode_batch};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::{
    metrics::AgentMetrics,
    queue::{BatchQueue, NewBatch},
    scheduler::{RunOutput, now_ms},
};

/// How long to wait for the other collectors of a tick.
const GATHER: Duration = Duration::from_millis(250);
/// A batch this large goes out without waiting for more.
const MAX_SAMPLES: usize = 20_000;

pub(crate) struct Batcher {
    pub(crate) agent_id: String,
    pub(crate) boot_id: String,
    pub(crate) host: HostInfo,
    pub(crate) queue: Arc<dyn BatchQueue>,
    pub(crate) metrics: Arc<AgentMetrics>,
    pub(crate) next_seq: u64,
}

impl Batcher {
    /// Runs until every sender is gone, then flushes what it holds.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<RunOutput>) {
        while let Some(first) = rx.recv().await {
            let mut runs = vec![first];
            let mut samples = runs[0].samples.len();
            let deadline = tokio::time::Instant::now() + GATHER;
            while samples < MAX_SAMPLES {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(run)) => {
                        samples += run.samples.len();
                        runs.push(run);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.flush(runs);
        }
    }

    /// Priority runs (the critical tier) and the rest become separate batches, so that the
    /// urgent one can overtake a backlog.
    fn flush(&mut self, runs: Vec<RunOutput>) {
        // Check results are urgent too: an alert waits on them.
        let (urgent, rest): (Vec<_>, Vec<_>) = runs
            .into_iter()
            .partition(|r| r.priority || !r.events.is_empty());
        for (priority, group) in [(true, urgent), (false, rest)] {
            if group.is_empty() {
                continue;
            }
            let batch = self.build(group);
            match encode_batch(&batch) {
                Ok(body) => self.queue.push(NewBatch {
                    seq: batch.seq,
                    priority,
                    created_ms: batch.sent_at,
                    body,
                }),
                Err(e) => error!(error = %e, seq = batch.seq, "Cannot encode batch; dropped."),
            }
        }
    }

    pub(crate) fn build(&mut self, runs: Vec<RunOutput>) -> Batch {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Group by series identity so that a series read twice in one batch is one entry
        // with two points.
        let mut grouped: BTreeMap<(String, Vec<(String, String)>), Series> = BTreeMap::new();
        let mut dropped = 0u64;
        let mut events = Vec::new();
        for run in runs {
            events.extend(run.events.into_iter().map(|e| Event {
                name: e.check,
                state: e.state.as_str().to_string(),
                output: e.output,
                ts: run.ts_ms,
                long_output: e.long_output,
                hard: e.hard,
                attempt: e.attempt,
                duration_ms: u64::try_from(e.duration.as_millis()).unwrap_or(u64::MAX),
            }));
            for sample in run.samples {
                if !sample.value.is_finite() {
                    // JSON has no NaN or infinity; such a reading carries no information.
                    dropped += 1;
                    continue;
                }
                let mut labels = sample.labels;
                labels.sort();
                let key = (sample.name, labels);
                let entry = grouped.entry(key.clone()).or_insert_with(|| Series {
                    name: key.0.clone(),
                    labels: key.1.iter().cloned().collect(),
                    kind: match sample.kind {
                        Kind::Counter => SeriesKind::Counter,
                        Kind::Gauge => SeriesKind::Gauge,
                    },
                    points: Vec::with_capacity(1),
                });
                entry.points.push((run.ts_ms, sample.value));
            }
        }
        if dropped > 0 {
            self.metrics.samples_dropped_non_finite.add(dropped);
            warn!(dropped, "Samples with NaN or infinite values dropped.");
        }
        Batch {
            v: VERSION,
            agent_id: self.agent_id.clone(),
            boot_id: self.boot_id.clone(),
            seq,
            sent_at: now_ms(),
            series: grouped.into_values().collect(),
            events,
            host: Some(self.host.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use sysward_collectors::Sample;

    use super::*;
    use crate::queue::MemoryQueue;

    #[test]
    fn groups_points_and_drops_non_finite() {
        let metrics = Arc::new(AgentMetrics::default());
        let mut b = Batcher {
            agent_id: "ag".into(),
            boot_id: "boot".into(),
            host: HostInfo::default(),
            queue: Arc::new(MemoryQueue::new(4, metrics.clone())),
            metrics: metrics.clone(),
            next_seq: 1,
        };
        let run = |ts, v: f64| RunOutput {
            ts_ms: ts,
            priority: false,
            samples: vec![
                Sample::new("node_load1", Kind::Gauge, v)
                    .label("b", "2")
                    .label("a", "1"),
                Sample::new("node_load5", Kind::Gauge, f64::NAN),
            ],
            events: vec![],
        };
        let batch = b.build(vec![run(1, 0.5), run(2, 0.7)]);
        assert_eq!(batch.seq, 1);
        assert_eq!(batch.series.len(), 1);
        assert_eq!(batch.series[0].points, vec![(1, 0.5), (2, 0.7)]);
        assert_eq!(metrics.samples_dropped_non_finite.get(), 2);
        assert_eq!(b.build(vec![]).seq, 2);
        let check = RunOutput {
            ts_ms: 9,
            priority: false,
            samples: vec![],
            events: vec![sysward_collectors::Event {
                check: "disk".into(),
                state: sysward_collectors::CheckState::Critical,
                output: "full".into(),
                long_output: String::new(),
                hard: true,
                attempt: 3,
                duration: std::time::Duration::from_millis(1500),
            }],
        };
        let batch = b.build(vec![check]);
        assert_eq!(
            (
                batch.events[0].state.as_str(),
                batch.events[0].ts,
                batch.events[0].duration_ms
            ),
            ("CRITICAL", 9, 1500)
        );
    }
}
