//! Runs each collector at its interval: one task per collector, a stable per-host phase,
//! a little jitter, a deadline per run, and never two runs of one collector at once.
//!
//! Phase: ticks fall at `k * interval + phase` on the wall clock, where `phase` comes from a
//! hash of the host id. Every host keeps the same phase across restarts, and a fleet spreads
//! its pushes over the interval instead of all arriving on the minute.
//!
//! A run that outlives its deadline is abandoned: counted as a timeout, its output dropped.
//! Its thread cannot be stopped, so while it still runs later ticks of that collector are
//! skipped and counted, rather than piling up threads behind a hung read.

use std::{
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rand::Rng;
use sysward_collectors::{Collector, Event, Output, Sample};
use tokio::{sync::mpsc, task::JoinHandle, time::MissedTickBehavior};
use tracing::{debug, warn};

use crate::metrics::AgentMetrics;

/// What one run produced, for the batcher.
#[derive(Debug)]
pub(crate) struct RunOutput {
    pub(crate) ts_ms: i64,
    /// From the critical tier: its batch is sent before others.
    pub(crate) priority: bool,
    pub(crate) samples: Vec<Sample>,
    pub(crate) events: Vec<Event>,
}

pub(crate) struct Job {
    pub(crate) name: &'static str,
    pub(crate) collector: Box<dyn Collector>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) priority: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The host's phase within `interval`, stable for a host id.
pub(crate) fn phase(host_id: &str, interval: Duration) -> Duration {
    // FNV-1a by hand: std's `DefaultHasher` is not promised to stay the same across Rust
    // versions, and the phase must survive upgrades.
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    host_id.hash(&mut hasher);
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hasher.finish() % millis)
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Time from now until the next tick at `k * interval + phase` (wall clock).
fn until_next_tick(interval: Duration, phase: Duration) -> Duration {
    let interval_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let phase_ms = i64::try_from(phase.as_millis()).unwrap_or(0);
    let now = now_ms();
    let since = (now - phase_ms).rem_euclid(interval_ms);
    Duration::from_millis(u64::try_from(interval_ms - since).unwrap_or(0))
}

pub(crate) fn spawn(
    job: Job,
    host_id: &str,
    metrics: Arc<AgentMetrics>,
    out: mpsc::Sender<RunOutput>,
) -> JoinHandle<()> {
    let phase = phase(host_id, job.interval);
    tokio::spawn(run_job(job, phase, metrics, out))
}

async fn run_job(
    job: Job,
    phase: Duration,
    metrics: Arc<AgentMetrics>,
    out: mpsc::Sender<RunOutput>,
) {
    let Job {
        name,
        collector,
        interval,
        timeout,
        priority,
    } = job;
    let collector = Arc::new(Mutex::new(collector));
    let running = Arc::new(AtomicBool::new(false));
    let start = tokio::time::Instant::now() + until_next_tick(interval, phase);
    let mut ticker = tokio::time::interval_at(start, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Up to 2% of the interval, at most 1 s: enough to spread hosts that share a phase.
    let max_jitter = (interval / 50).min(Duration::from_secs(1));
    let Some(stats) = metrics.collector(name) else {
        warn!(
            collector = name,
            "Collector has no stats slot; not scheduled."
        );
        return;
    };
    loop {
        ticker.tick().await;
        if !max_jitter.is_zero() {
            let jitter = rand::rng().random_range(Duration::ZERO..max_jitter);
            tokio::time::sleep(jitter).await;
        }
        if running.load(Ordering::Acquire) {
            stats.skipped.inc();
            debug!(collector = name, "Previous run still going; tick skipped.");
            continue;
        }
        running.store(true, Ordering::Release);
        let ts_ms = now_ms();
        let task = {
            let collector = collector.clone();
            let running = running.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let mut output = Output::default();
                let result = {
                    let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
                    c.collect(&mut output)
                };
                running.store(false, Ordering::Release);
                (result, output, started.elapsed())
            })
        };
        stats.runs.inc();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok((result, output, took))) => {
                stats
                    .last_duration_micros
                    .set(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                for error in &output.errors {
                    stats.partial_errors.inc();
                    warn!(collector = name, error = %error, "Part of a collector failed.");
                }
                match result {
                    Ok(()) => {
                        stats.last_success.set(1);
                        let run = RunOutput {
                            ts_ms,
                            priority,
                            samples: output.samples,
                            events: output.events,
                        };
                        if out.send(run).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        stats.errors.inc();
                        stats.last_success.set(0);
                        warn!(collector = name, %error, "Collector failed.");
                    }
                }
            }
            Ok(Err(join_error)) => {
                // A panic inside a collector: counted and logged, the schedule goes on.
                running.store(false, Ordering::Release);
                stats.errors.inc();
                stats.last_success.set(0);
                warn!(collector = name, error = %join_error, "Collector panicked.");
            }
            Err(_) => {
                stats.timeouts.inc();
                stats.last_success.set(0);
                warn!(
                    collector = name,
                    ?timeout,
                    "Collector run passed its deadline; abandoned."
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sysward_collectors::{CollectError, Kind};

    use super::*;

    #[test]
    fn phase_is_stable_and_within_interval() {
        let i = Duration::from_secs(60);
        assert_eq!(phase("host-a", i), phase("host-a", i));
        assert!(phase("host-a", i) < i);
        assert_ne!(phase("host-a", i), phase("host-b", i));
        assert!(until_next_tick(i, phase("x", i)) <= i);
    }

    struct Slow(Duration);
    impl Collector for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
            std::thread::sleep(self.0);
            out.push(Sample::new("x", Kind::Gauge, 1.0));
            Ok(())
        }
    }

    /// A run that outlives its deadline is counted, and later ticks are skipped while it
    /// still runs rather than started beside it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overrun_is_abandoned_and_ticks_skipped() {
        let metrics = Arc::new(AgentMetrics::new(["slow"]));
        let (tx, mut rx) = mpsc::channel(16);
        let job = Job {
            name: "slow",
            collector: Box::new(Slow(Duration::from_millis(1500))),
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(100),
            priority: false,
        };
        let handle = tokio::spawn(run_job(job, Duration::ZERO, metrics.clone(), tx));
        let stats = metrics.collector("slow").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while (stats.timeouts.get() < 1 || stats.skipped.get() < 2) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.abort();
        assert!(
            stats.timeouts.get() >= 1,
            "timeouts {}",
            stats.timeouts.get()
        );
        assert!(stats.skipped.get() >= 2, "skipped {}", stats.skipped.get());
        // Runs never overlap: at most one per 1.5 s window of the slow collector.
        assert!(stats.runs.get() <= 3, "runs {}", stats.runs.get());
        assert!(
            rx.try_recv().is_err(),
            "an abandoned run's output must be dropped"
        );
    }
}
