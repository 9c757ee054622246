//! The agent's own metrics, kept in atomics by the scheduler, batcher and shipper, and sent
//! like any other collector's output by the built-in `agent` collector (node_exporter's
//! `node_scrape_collector_*` idea, under `sysward_agent_*` names).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use sysward_collectors::{CollectError, Collector, Kind, Output, Sample};

/// A counter or gauge that handlers bump without waiting.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.add(1);
    }
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per collector: runs, failures, abandoned runs, skipped ticks, last duration.
#[derive(Debug, Default)]
pub(crate) struct CollectorStats {
    pub(crate) runs: Counter,
    pub(crate) errors: Counter,
    pub(crate) partial_errors: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) skipped: Counter,
    pub(crate) last_duration_micros: Counter,
    pub(crate) last_success: Counter,
}

/// Everything the agent counts about itself.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    pub(crate) collectors: BTreeMap<&'static str, CollectorStats>,
    pub(crate) batches_sent: Counter,
    pub(crate) batches_failed: Counter,
    pub(crate) batches_queued: Counter,
    pub(crate) batches_dropped_queue_full: Counter,
    pub(crate) batches_dead_letter: Counter,
    pub(crate) samples_dropped_non_finite: Counter,
    pub(crate) spool_bytes: Counter,
    pub(crate) spool_segments: Counter,
    pub(crate) spool_memory_batches: Counter,
    pub(crate) spool_oldest_ms: Counter,
    pub(crate) spool_dropped_max_disk: Counter,
    pub(crate) spool_dropped_max_age: Counter,
    pub(crate) spool_dropped_disk_full: Counter,
    pub(crate) spool_corrupt_frames: Counter,
    pub(crate) spool_torn_frames: Counter,
    pub(crate) spool_corrupt_segments: Counter,
    pub(crate) spool_write_errors: Counter,
    /// Age of the last acked batch when the server acked it.
    pub(crate) send_lag_ms: Counter,
}

impl AgentMetrics {
    pub(crate) fn new(collector_names: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            collectors: collector_names
                .into_iter()
                .map(|n| (n, CollectorStats::default()))
                .collect(),
            ..Self::default()
        }
    }

    pub(crate) fn collector(&self, name: &str) -> Option<&CollectorStats> {
        self.collectors.get(name)
    }
}

/// The name under which the agent's own metrics run and are reported.
pub(crate) const SELF_COLLECTOR: &str = "agent";

/// Reports [`AgentMetrics`] as samples.
pub(crate) struct SelfCollector {
    pub(crate) metrics: Arc<AgentMetrics>,
}

impl Collector for SelfCollector {
    fn name(&self) -> &'static str {
        SELF_COLLECTOR
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let m = &self.metrics;
        for (name, s) in &m.collectors {
            let c = |metric: &'static str, v: &Counter| {
                Sample::new(metric, Kind::Counter, v.get() as f64).label("collector", *name)
            };
            out.push(c("sysward_agent_collector_runs_total", &s.runs));
            out.push(c("sysward_agent_collector_errors_total", &s.errors));
            out.push(c(
                "sysward_agent_collector_partial_errors_total",
                &s.partial_errors,
            ));
            out.push(c("sysward_agent_collector_timeouts_total", &s.timeouts));
            out.push(c("sysward_agent_collector_skipped_total", &s.skipped));
            out.push(
                Sample::new(
                    "sysward_agent_collector_duration_seconds",
                    Kind::Gauge,
                    s.last_duration_micros.get() as f64 / 1e6,
                )
                .label("collector", *name),
            );
            out.push(
                Sample::new(
                    "sysward_agent_collector_success",
                    Kind::Gauge,
                    s.last_success.get() as f64,
                )
                .label("collector", *name),
            );
        }
        let counter =
            |name: &'static str, v: &Counter| Sample::new(name, Kind::Counter, v.get() as f64);
        out.push(counter("sysward_agent_batches_sent_total", &m.batches_sent));
        out.push(counter(
            "sysward_agent_batches_failed_total",
            &m.batches_failed,
        ));
        out.push(
            counter(
                "sysward_agent_batches_dropped_total",
                &m.batches_dropped_queue_full,
            )
            .label("reason", "queue_full"),
        );
        out.push(
            counter(
                "sysward_agent_batches_dropped_total",
                &m.batches_dead_letter,
            )
            .label("reason", "refused"),
        );
        out.push(
            counter(
                "sysward_agent_samples_dropped_total",
                &m.samples_dropped_non_finite,
            )
            .label("reason", "non_finite"),
        );
        out.push(Sample::new(
            "sysward_agent_batches_queued",
            Kind::Gauge,
            m.batches_queued.get() as f64,
        ));
        let gauge = |name: &'static str, v: f64| Sample::new(name, Kind::Gauge, v);
        out.push(gauge(
            "sysward_agent_spool_bytes",
            m.spool_bytes.get() as f64,
        ));
        out.push(gauge(
            "sysward_agent_spool_segments",
            m.spool_segments.get() as f64,
        ));
        out.push(gauge(
            "sysward_agent_spool_frames",
            m.batches_queued.get() as f64,
        ));
        out.push(gauge(
            "sysward_agent_spool_memory_batches",
            m.spool_memory_batches.get() as f64,
        ));
        let oldest = m.spool_oldest_ms.get();
        let age = if oldest == 0 {
            0.0
        } else {
            (crate::scheduler::now_ms() as f64 - oldest as f64).max(0.0) / 1000.0
        };
        out.push(gauge("sysward_agent_spool_oldest_frame_age_seconds", age));
        out.push(gauge(
            "sysward_agent_send_lag_seconds",
            m.send_lag_ms.get() as f64 / 1000.0,
        ));
        for (reason, c) in [
            ("max_disk", &m.spool_dropped_max_disk),
            ("max_age", &m.spool_dropped_max_age),
            ("disk_full", &m.spool_dropped_disk_full),
        ] {
            out.push(
                counter("sysward_agent_spool_dropped_batches_total", c).label("reason", reason),
            );
        }
        for (kind, c) in [
            ("checksum", &m.spool_corrupt_frames),
            ("torn", &m.spool_torn_frames),
            ("segment", &m.spool_corrupt_segments),
        ] {
            out.push(counter("sysward_agent_spool_corrupt_total", c).label("kind", kind));
        }
        out.push(counter(
            "sysward_agent_spool_write_errors_total",
            &m.spool_write_errors,
        ));
        out.push(
            Sample::new("sysward_agent_build_info", Kind::Gauge, 1.0)
                .label("version", env!("CARGO_PKG_VERSION"))
                .label("commit", env!("SYSWARD_GIT_COMMIT")),
        );
        Ok(())
    }
}
