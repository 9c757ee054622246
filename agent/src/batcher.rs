//! Gathers collector runs into batches. Collectors of one tier fire together (same phase),
//! so the batcher waits a short moment after the first run of a tick for the others, then
//! encodes one batch and hands it to the queue.

use std::{sync::Arc, time::Duration};

use sysward_collectors::Kind;
use sysward_proto::{
    BatchEncoder, Event, HostInfo, OutgoingBatch, OutgoingSeries, Points, SeriesKind, VERSION,
};
use tokio::sync::mpsc;
use tracing::error;

use crate::{
    metrics::AgentMetrics,
    queue::{BatchQueue, NewBatch},
    scheduler::{InFlight, RunOutput, now_ms},
    series_table::{SeriesTable, identity_hash},
};

/// How long to wait for the other collectors of a tick, at most: the wait ends as soon
/// as no run is out (see [`InFlight`]), which with the lane's one hand-over per tick is
/// at the first run.
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
    /// The queue's push never waits on the disk: push from the runtime's thread.
    pub(crate) push_inline: bool,
    /// Kept across batches (see [`BatchEncoder`]); a mutex because a push off the
    /// runtime's thread takes it along.
    pub(crate) encoder: Arc<std::sync::Mutex<BatchEncoder>>,
    /// Kept between batches: its table is allocated once.
    pub(crate) series_table: SeriesTable,
    /// The scheduler's count of runs not yet handed over.
    pub(crate) in_flight: InFlight,
}

impl Batcher {
    /// Runs until every sender is gone, then flushes what it holds.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<RunOutput>) {
        while let Some(first) = rx.recv().await {
            let mut runs = vec![first];
            let mut samples = runs[0].samples.len();
            let deadline = tokio::time::Instant::now() + GATHER;
            while samples < MAX_SAMPLES {
                let next = if self.in_flight.none() {
                    // Every run started so far is in the channel (a run's count drops
                    // after its send): take what is there without waiting.
                    rx.try_recv().ok()
                } else {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                };
                let Some(run) = next else { break };
                samples += run.samples.len();
                runs.push(run);
            }
            self.flush(runs).await;
        }
    }

    /// Priority runs (the critical tier, checks) and the rest become separate batches
    /// when a backlog waits, so that the urgent one can overtake it; with nothing
    /// waiting they go as one (priority) batch: one request and one spool frame per tick
    /// instead of two.
    ///
    /// Encoding (JSON, gzip) and the queue's push run on the runtime's thread when the
    /// push does not wait on the disk (a memory queue, or a spool that syncs on an
    /// interval: only the rotation to a new segment, once per segment, syncs); a spool that syncs every batch is pushed to from the blocking pool, so
    /// that a slow disk does not stall the shipper and the schedule. Either way the push
    /// is done before the next gather, so batches reach the queue in seq order.
    async fn flush(&mut self, runs: Vec<RunOutput>) {
        // Check results are urgent too: an alert waits on them.
        let groups = if self.queue.is_empty() {
            let priority = runs.iter().any(|r| r.priority || !r.events.is_empty());
            vec![(priority, runs)]
        } else {
            let (urgent, rest): (Vec<_>, Vec<_>) = runs
                .into_iter()
                .partition(|r| r.priority || !r.events.is_empty());
            vec![(true, urgent), (false, rest)]
        };
        let batches: Vec<(bool, OutgoingBatch)> = groups
            .into_iter()
            .filter(|(_, group)| !group.is_empty())
            .map(|(priority, group)| (priority, self.build(group)))
            .collect();
        let queue = self.queue.clone();
        let encoder = self.encoder.clone();
        let store = move || {
            let mut encoder = encoder.lock().unwrap_or_else(|e| e.into_inner());
            for (priority, batch) in batches {
                match encoder.encode_outgoing(&batch) {
                    Ok(body) => queue.push(NewBatch {
                        seq: batch.seq,
                        priority,
                        created_ms: batch.sent_at,
                        body,
                    }),
                    Err(e) => error!(error = %e, seq = batch.seq, "Cannot encode batch; dropped."),
                }
            }
        };
        if self.push_inline {
            store();
        } else if let Err(e) = tokio::task::spawn_blocking(store).await {
            error!(error = %e, "Encoding or queueing batches failed; they are lost.");
        }
    }

    pub(crate) fn build(&mut self, runs: Vec<RunOutput>) -> OutgoingBatch {
        let seq = self.next_seq;
        self.next_seq += 1;
        // A series read twice in one batch (two ticks gathered together, a backlog) is
        // one entry with its points in run order.
        let mut dropped = 0u64;
        let mut events = Vec::new();
        let samples = runs.iter().map(|r| r.samples.len()).sum();
        let mut series: Vec<OutgoingSeries> = Vec::with_capacity(samples);
        self.series_table.reset(samples);
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
            for mut sample in run.samples {
                if !sample.value.is_finite() {
                    // JSON has no NaN or infinity; such a reading carries no information.
                    dropped += 1;
                    // Once a minute per metric: a collector that reads NaN does at every run.
                    sysward_log_limit::warn_limited!(
                        metric = sample.name;
                        format!("value {}", sample.value),
                        "Sample with a NaN or infinite value dropped."
                    );
                    continue;
                }
                if sample.labels.len() > 1 {
                    sample.labels.sort_unstable();
                    // One value per label name, the last in sort order, as a map would
                    // keep.
                    sample.labels.dedup_by(|later, kept| {
                        let same = later.0 == kept.0;
                        if same {
                            std::mem::swap(&mut later.1, &mut kept.1);
                        }
                        same
                    });
                }
                let hash = identity_hash(
                    &sample.name,
                    sample.labels.iter().map(|(k, v)| (k.as_ref(), v.as_str())),
                );
                let found = self.series_table.find_or_insert(hash, |i| {
                    series[i].name == sample.name && series[i].labels == sample.labels
                });
                match found {
                    Some(i) => series[i].points.push((run.ts_ms, sample.value)),
                    None => series.push(OutgoingSeries {
                        name: sample.name,
                        labels: sample.labels,
                        kind: match sample.kind {
                            Kind::Counter => SeriesKind::Counter,
                            Kind::Gauge => SeriesKind::Gauge,
                        },
                        points: Points::new((run.ts_ms, sample.value)),
                    }),
                }
            }
        }
        if dropped > 0 {
            self.metrics.samples_dropped_non_finite.add(dropped);
        }
        OutgoingBatch {
            v: VERSION,
            agent_id: self.agent_id.clone(),
            boot_id: self.boot_id.clone(),
            seq,
            sent_at: now_ms(),
            series,
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

    /// A batcher for agent "ag" that pushes inline to `queue`.
    fn batcher(queue: Arc<dyn BatchQueue>, metrics: Arc<AgentMetrics>) -> Batcher {
        Batcher {
            agent_id: "ag".into(),
            boot_id: "boot".into(),
            host: HostInfo::default(),
            queue,
            metrics,
            next_seq: 1,
            push_inline: true,
            encoder: Default::default(),
            series_table: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// A batcher over a memory queue, and its metrics.
    fn memory_batcher() -> (Batcher, Arc<AgentMetrics>) {
        let metrics = Arc::new(AgentMetrics::default());
        let queue = Arc::new(MemoryQueue::new(4, metrics.clone()));
        (batcher(queue, metrics.clone()), metrics)
    }

    #[test]
    fn a_label_named_twice_keeps_one_value_and_the_body_decodes() {
        let (mut b, _) = memory_batcher();
        let run = RunOutput {
            ts_ms: 1,
            priority: false,
            samples: vec![
                Sample::new("up", Kind::Gauge, 1.0)
                    .label("job", "b")
                    .label("job", "a")
                    .label("x", "1"),
            ],
            events: vec![],
        };
        let batch = b.build(vec![run]);
        assert_eq!(
            batch.series[0].labels,
            [("job".into(), "b".into()), ("x".into(), "1".into())]
        );
        let body = BatchEncoder::new()
            .encode_outgoing(&batch)
            .expect("encodes");
        let decoded = sysward_proto::decode_batch(&body, &Default::default()).expect("decodes");
        assert_eq!(
            decoded.series[0].labels,
            [
                ("job".to_string(), "b".to_string()),
                ("x".into(), "1".into())
            ]
            .into()
        );
    }

    #[test]
    fn groups_points_and_drops_non_finite() {
        let (mut b, metrics) = memory_batcher();
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
        assert_eq!(batch.series[0].points.to_vec(), [(1, 0.5), (2, 0.7)]);
        assert_eq!(
            batch.series[0].labels,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
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

    #[test]
    fn series_keep_their_first_order_and_gather_their_points_across_runs() {
        let (mut b, _) = memory_batcher();
        let cpu = |n: &str, v| {
            Sample::new("node_cpu_seconds_total", Kind::Counter, v)
                .label("mode", "idle")
                .label("cpu", n)
        };
        let runs = vec![
            RunOutput {
                ts_ms: 1,
                priority: false,
                samples: vec![
                    cpu("1", 10.0),
                    Sample::new("node_load1", Kind::Gauge, 0.5),
                    cpu("0", 20.0),
                ],
                events: vec![],
            },
            RunOutput {
                ts_ms: 2,
                priority: false,
                // The same series in another order, labels given the other way round.
                samples: vec![
                    Sample::new("node_cpu_seconds_total", Kind::Counter, 21.0)
                        .label("cpu", "0")
                        .label("mode", "idle"),
                    cpu("1", 11.0),
                    Sample::new("node_load5", Kind::Gauge, 0.25),
                ],
                events: vec![],
            },
        ];
        let batch = b.build(runs);
        let got: Vec<_> = batch
            .series
            .iter()
            .map(|s| {
                let labels: Vec<&str> = s.labels.iter().map(|(_, v)| v.as_str()).collect();
                (s.name.as_ref(), labels, s.points.to_vec())
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "node_cpu_seconds_total",
                    vec!["1", "idle"],
                    vec![(1, 10.0), (2, 11.0)]
                ),
                ("node_load1", vec![], vec![(1, 0.5)]),
                (
                    "node_cpu_seconds_total",
                    vec!["0", "idle"],
                    vec![(1, 20.0), (2, 21.0)]
                ),
                ("node_load5", vec![], vec![(2, 0.25)]),
            ]
        );
    }

    /// Records what is pushed; `waiting` batches stand for a backlog.
    struct RecordingQueue {
        waiting: usize,
        pushed: std::sync::Mutex<Vec<NewBatch>>,
        notify: tokio::sync::Notify,
    }

    impl BatchQueue for RecordingQueue {
        fn push(&self, batch: NewBatch) {
            self.pushed.lock().expect("lock").push(batch);
        }
        fn next(&self) -> crate::queue::Next {
            crate::queue::Next::Empty
        }
        fn ack(&self, _id: u64) {}
        fn len(&self) -> usize {
            self.waiting
        }
        fn notified(&self) -> tokio::sync::futures::Notified<'_> {
            self.notify.notified()
        }
    }

    /// The series names of each pushed batch, with its priority.
    fn flushed(waiting: usize) -> Vec<(bool, Vec<String>)> {
        let metrics = Arc::new(AgentMetrics::default());
        let queue = Arc::new(RecordingQueue {
            waiting,
            pushed: Default::default(),
            notify: Default::default(),
        });
        let mut b = batcher(queue.clone(), metrics);
        let run = |name: &'static str, priority| RunOutput {
            ts_ms: 1,
            priority,
            samples: vec![Sample::new(name, Kind::Gauge, 1.0)],
            events: vec![],
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(b.flush(vec![run("node_load1", true), run("node_network_up", false)]));
        let pushed = queue.pushed.lock().expect("lock").clone();
        pushed
            .iter()
            .map(|new| {
                let batch =
                    sysward_proto::decode_batch(&new.body, &Default::default()).expect("decodes");
                assert_eq!(batch.seq, new.seq);
                let names = batch.series.into_iter().map(|s| s.name).collect();
                (new.priority, names)
            })
            .collect()
    }

    #[test]
    fn one_batch_per_tick_when_nothing_waits() {
        assert_eq!(
            flushed(0),
            [(
                true,
                vec!["node_load1".to_string(), "node_network_up".to_string()]
            )]
        );
    }

    #[test]
    fn with_a_backlog_the_priority_runs_go_apart_and_first() {
        assert_eq!(
            flushed(3),
            [
                (true, vec!["node_load1".to_string()]),
                (false, vec!["node_network_up".to_string()]),
            ]
        );
    }

    /// A tick's batch goes out once no run is out, without waiting the gather window;
    /// while one is out it waits for it, and no longer than the window. Time is tokio's
    /// paused clock, so the waits are exact and the test does not sleep.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_tick_goes_out_when_no_run_is_out_or_after_the_gather_window() {
        let run = |name: &'static str| RunOutput {
            ts_ms: 1,
            priority: false,
            samples: vec![Sample::new(name, Kind::Gauge, 1.0)],
            events: vec![],
        };
        // How long after `start` the queue first holds `n` batches.
        async fn pushed(
            queue: &Arc<dyn BatchQueue>,
            n: usize,
            start: tokio::time::Instant,
        ) -> Duration {
            while queue.len() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            start.elapsed()
        }
        let (b, _) = memory_batcher();
        let queue = b.queue.clone();
        let in_flight = b.in_flight.clone();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(b.run(rx));

        // Nothing else out: at once.
        let start = tokio::time::Instant::now();
        tx.send(run("a")).await.expect("batcher runs");
        // (The poll's first step is 1 ms of the paused clock.)
        let took = pushed(&queue, 1, start).await;
        assert!(took <= Duration::from_millis(1), "{took:?}");

        // Another run out, handed over 30 ms later: both go together then.
        let start = tokio::time::Instant::now();
        let out = in_flight.start();
        tx.send(run("b")).await.expect("batcher runs");
        tokio::time::sleep(Duration::from_millis(30)).await;
        tx.send(run("c")).await.expect("batcher runs");
        drop(out);
        let took = pushed(&queue, 2, start).await;
        assert!(
            took >= Duration::from_millis(30) && took < GATHER,
            "{took:?}"
        );

        // A run out that never hands over: the window's end.
        let start = tokio::time::Instant::now();
        let _stuck = in_flight.start();
        tx.send(run("d")).await.expect("batcher runs");
        let took = pushed(&queue, 3, start).await;
        assert!(took >= GATHER && took < GATHER * 2, "{took:?}");
        assert_eq!(queue.len(), 3, "b and c went as one batch");
    }
}
