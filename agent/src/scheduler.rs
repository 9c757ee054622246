//! Runs each collector at its interval: one task per collector, a stable per-host phase,
//! a little jitter, a deadline per run, and never two runs of one collector at once.
//!
//! Phase: ticks fall at `k * interval + phase` on the wall clock, where `phase` comes from a
//! hash of the host id. Every host keeps the same phase across restarts, and a fleet spreads
//! its pushes over the interval instead of all arriving on the minute. The one exception is
//! the first run of a job, right when it starts (agent start, or a reload that restarts it),
//! so that a host reports at once; its next run is the first phased tick at least half an
//! interval later.
//!
//! A run that outlives its deadline is abandoned: counted as a timeout, its output dropped.
//! Its thread cannot be stopped, so while it still runs later ticks of that collector are
//! skipped and counted, rather than piling up threads behind a hung read.

use std::{
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use sysward_collectors::{Collector, Event, Output, Sample};
use sysward_log_limit::warn_limited;
use tokio::{sync::mpsc, task::JoinHandle};
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
    /// Runs on the shared [`Lane`] (quick host collectors) rather than a thread of the
    /// blocking pool of its own (checks, and collectors that wait on other processes).
    pub(crate) shared: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The host's phase within `interval`, stable for a host id.
pub(crate) fn phase(host_id: &str, interval: Duration) -> Duration {
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(phase_seed(host_id) % millis)
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
    lane: Lane,
    in_flight: InFlight,
    metrics: Arc<AgentMetrics>,
    out: mpsc::Sender<RunOutput>,
) -> JoinHandle<()> {
    let phase = phase(host_id, job.interval);
    let seed = phase_seed(host_id);
    tokio::spawn(run_job(job, phase, seed, lane, in_flight, metrics, out))
}

/// Time from now until the first phased tick after the run made at start: the next
/// tick at `k * interval + phase`, or the one after it when the next is less than half
/// an interval away, so that the run at start and the first phased run are never
/// bunched together.
fn first_tick(interval: Duration, phase: Duration) -> Duration {
    let next = until_next_tick(interval, phase);
    if next < interval / 2 {
        next + interval
    } else {
        next
    }
}

/// Sleeps until the tick at `next_tick`, with its jitter, and moves `next_tick` past
/// ticks already missed: ticks missed while a run went on are skipped, not made up for.
async fn wait_for_tick(next_tick: &mut tokio::time::Instant, interval: Duration, seed: u64) {
    // Up to 2% of the interval, at most 1 s: enough to spread hosts that share a phase.
    let max_jitter = (interval / 50).min(Duration::from_secs(1));
    let now = tokio::time::Instant::now();
    while *next_tick < now {
        *next_tick += interval;
    }
    let jitter = tick_jitter(seed, interval, max_jitter);
    tokio::time::sleep_until(*next_tick + jitter).await;
}

/// A stable hash of the host id: the phase and the tick jitter derive from it.
fn phase_seed(host_id: &str) -> u64 {
    // FNV-1a by hand: std's `DefaultHasher` is not promised to stay the same across Rust
    // versions, and the phase must survive upgrades.
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    host_id.hash(&mut hasher);
    hasher.finish()
}

/// The jitter of one tick: the same for every job of one interval on one host, so that
/// they still fire together (one wakeup, one hand-off to the lane, one batch), and
/// different from tick to tick and host to host.
fn tick_jitter(seed: u64, interval: Duration, max_jitter: Duration) -> Duration {
    let max_ms = u64::try_from(max_jitter.as_millis()).unwrap_or(0);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(1).max(1);
    let tick = u64::try_from(now_ms()).unwrap_or(0) / interval_ms;
    let mut hasher = Fnv(seed);
    hasher.write(&tick.to_le_bytes());
    Duration::from_millis(hasher.finish() % max_ms)
}

/// How many runs have started and not yet handed their output to the batcher (or been
/// abandoned): when none is out, the batcher has every run of the tick and sends at
/// once instead of waiting out its gather window.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts a run out until the guard drops: after its output is in the batcher's
    /// channel, or when the run is abandoned (or its job stopped) without one.
    pub(crate) fn start(&self) -> InFlightRun {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightRun(self.0.clone())
    }

    /// No run is out.
    pub(crate) fn none(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

pub(crate) struct InFlightRun(Arc<AtomicUsize>);

impl Drop for InFlightRun {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Reply = Box<dyn FnOnce() + Send>;
type Task = Box<dyn FnOnce() -> Reply + Send>;

/// How long replies from the lane may wait to be handed over together.
const REPLY_COALESCE: Duration = Duration::from_millis(20);
/// How long an idle extra lane thread stays.
const LANE_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// Lane threads at most: one, plus replacements for runs stuck past their deadline.
const LANE_MAX_THREADS: usize = 8;

/// One thread that runs the quick host collectors one after the other.
///
/// The collectors of one tier fire together; handing each to a thread of its own (and
/// its result back) cost two context switches per collector per tick, more than most
/// collectors' own work. Here the lane's thread wakes once per tick, runs what is
/// queued, and hands the results back together.
///
/// A run that hangs (a `/proc` read stuck in the kernel) would hold up the queue: when a
/// job's deadline passes while its run is still going, the job calls [`Lane::rescue`],
/// which starts another thread for the queue. The stuck one finishes its run whenever
/// the kernel lets it, then stays as a spare until idle for [`LANE_KEEP_ALIVE`].
#[derive(Clone)]
pub(crate) struct Lane {
    inner: Arc<LaneInner>,
}

struct LaneInner {
    state: Mutex<LaneState>,
    work: std::sync::Condvar,
    /// Replies go back to the runtime as one message per hand-over, run there by a task
    /// of the lane's. Sent one by one from the lane's thread, each reply woke the
    /// runtime's thread on its own: most of the agent's wakeups per tick.
    replies: mpsc::UnboundedSender<Vec<Reply>>,
}

#[derive(Default)]
struct LaneState {
    queue: std::collections::VecDeque<Task>,
    /// Replies of finished runs, handed over together (shared, so that a thread
    /// started by `rescue` delivers those a stuck thread held).
    held: Vec<Reply>,
    held_since: Option<Instant>,
    threads: usize,
    idle: usize,
}

impl Lane {
    /// A lane without a thread yet (the first task starts one), whose replies a task on
    /// the current runtime runs.
    pub(crate) fn new() -> Self {
        let (replies, mut handed_back) = mpsc::unbounded_channel::<Vec<Reply>>();
        tokio::spawn(async move {
            while let Some(replies) = handed_back.recv().await {
                replies.into_iter().for_each(|reply| reply());
            }
        });
        Self {
            inner: Arc::new(LaneInner {
                state: Mutex::default(),
                work: std::sync::Condvar::new(),
                replies,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `task`; its reply goes back to the runtime with the others held once the
    /// queue is empty (or [`REPLY_COALESCE`] after the first reply held back).
    fn submit(&self, task: Task) {
        let mut state = self.lock();
        state.queue.push_back(task);
        if state.idle > 0 {
            self.inner.work.notify_one();
        } else if state.threads == 0 {
            self.start_thread(&mut state);
        }
    }

    /// Starts one more thread if every thread is busy and there is work waiting.
    pub(crate) fn rescue(&self) {
        let mut state = self.lock();
        if state.idle == 0 && state.threads < LANE_MAX_THREADS {
            warn!(
                threads = state.threads + 1,
                "A collector run is stuck; starting another collector thread."
            );
            self.start_thread(&mut state);
        }
    }

    fn start_thread(&self, state: &mut LaneState) {
        let lane = self.clone();
        let started = std::thread::Builder::new()
            .name("sysward-lane".into())
            .spawn(move || lane.work());
        match started {
            Ok(_) => state.threads += 1,
            Err(e) => warn!(error = %e, "Cannot start a collector thread."),
        }
    }

    /// Hands `replies` to the runtime in one message (one wakeup). A runtime that is
    /// gone drops them, and with them the senders its jobs no longer wait on.
    fn hand_back(&self, replies: Vec<Reply>) {
        if !replies.is_empty() {
            let _ = self.inner.replies.send(replies);
        }
    }

    fn work(&self) {
        let mut reply: Option<Reply> = None;
        loop {
            let (task, flush) = {
                let mut state = self.lock();
                if let Some(reply) = reply.take() {
                    state.held.push(reply);
                    state.held_since.get_or_insert_with(Instant::now);
                }
                loop {
                    let due = state
                        .held_since
                        .is_some_and(|t| t.elapsed() >= REPLY_COALESCE);
                    if !state.held.is_empty() && (state.queue.is_empty() || due) {
                        state.held_since = None;
                        break (None, std::mem::take(&mut state.held));
                    }
                    if let Some(task) = state.queue.pop_front() {
                        break (Some(task), Vec::new());
                    }
                    state.idle += 1;
                    let (next, timeout) = self
                        .inner
                        .work
                        .wait_timeout(state, LANE_KEEP_ALIVE)
                        .unwrap_or_else(|e| e.into_inner());
                    state = next;
                    state.idle -= 1;
                    if timeout.timed_out() && state.queue.is_empty() && state.threads > 1 {
                        state.threads -= 1;
                        return;
                    }
                }
            };
            self.hand_back(flush);
            if let Some(task) = task {
                // A panic is the task's own to report (its reply channel closes); the
                // lane goes on.
                reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).ok();
            }
        }
    }
}

async fn run_job(
    job: Job,
    phase: Duration,
    seed: u64,
    lane: Lane,
    in_flight: InFlight,
    metrics: Arc<AgentMetrics>,
    out: mpsc::Sender<RunOutput>,
) {
    let Job {
        name,
        collector,
        interval,
        timeout,
        priority,
        shared,
    } = job;
    let collector = Arc::new(Mutex::new(collector));
    let running = Arc::new(AtomicBool::new(false));
    let mut next_tick = tokio::time::Instant::now() + first_tick(interval, phase);
    let Some(stats) = metrics.collector(name) else {
        warn!(
            collector = name,
            "Collector has no stats slot; not scheduled."
        );
        return;
    };
    // The first run is right away, so that a freshly started agent reports at once
    // rather than up to an interval later; the phase takes over from the next run.
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            wait_for_tick(&mut next_tick, interval, seed).await;
        }
        if running.load(Ordering::Acquire) {
            stats.skipped.inc();
            debug!(collector = name, "Previous run still going; tick skipped.");
            continue;
        }
        running.store(true, Ordering::Release);
        let _out = in_flight.start();
        let ts_ms = now_ms();
        let run = {
            let collector = collector.clone();
            let running = running.clone();
            move || {
                let started = Instant::now();
                let mut output = Output::default();
                let result = {
                    let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
                    c.collect(&mut output)
                };
                running.store(false, Ordering::Release);
                (result, output, started.elapsed())
            }
        };
        let task = if shared {
            let (tx, rx) = tokio::sync::oneshot::channel();
            lane.submit(Box::new(move || {
                let ran = run();
                Box::new(move || {
                    let _ = tx.send(ran);
                })
            }));
            Box::pin(async move { rx.await.map_err(|_| "the run panicked".to_string()) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
        } else {
            let handle = tokio::task::spawn_blocking(run);
            Box::pin(async move { handle.await.map_err(|e| e.to_string()) })
        };
        stats.runs.inc();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok((result, output, took))) => {
                stats
                    .last_duration_micros
                    .set(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                for error in &output.errors {
                    stats.partial_errors.inc();
                    // Once a minute: a part that fails fails at every run.
                    warn_limited!(collector = name; error, "Part of a collector failed.");
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
                        warn_limited!(collector = name; error, "Collector failed.");
                    }
                }
            }
            Ok(Err(join_error)) => {
                // A panic inside a collector: counted and logged, the schedule goes on.
                running.store(false, Ordering::Release);
                stats.errors.inc();
                stats.last_success.set(0);
                warn_limited!(collector = name; join_error, "Collector panicked.");
            }
            Err(_) => {
                if shared && running.load(Ordering::Acquire) {
                    lane.rescue();
                }
                stats.timeouts.inc();
                stats.last_success.set(0);
                warn_limited!(
                    collector = name;
                    format!("no result within {timeout:?}"),
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
    fn the_first_phased_tick_is_between_half_and_one_and_a_half_intervals_away() {
        let i = Duration::from_secs(60);
        for host in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let first = first_tick(i, phase(host, i));
            assert!(first >= i / 2 && first <= i + i / 2, "{host}: {first:?}");
        }
        assert!(first_tick(Duration::from_millis(1), Duration::ZERO) <= Duration::from_millis(2));
    }

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
            shared: false,
        };
        let handle = tokio::spawn(run_job(
            job,
            Duration::ZERO,
            0,
            Lane::new(),
            InFlight::default(),
            metrics.clone(),
            tx,
        ));
        let stats = metrics.collector("slow").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Until a second run has started, which happens only once the first, abandoned
        // one has finished and produced its output: only then can a leak of that output
        // show in `rx`.
        while (stats.timeouts.get() < 1 || stats.skipped.get() < 2 || stats.runs.get() < 2)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.abort();
        assert!(stats.runs.get() >= 2, "the first run never finished");
        assert!(
            stats.timeouts.get() >= 1,
            "timeouts {}",
            stats.timeouts.get()
        );
        assert!(stats.skipped.get() >= 2, "skipped {}", stats.skipped.get());
        // Runs never overlap: one per 1.5 s of the slow collector.
        assert!(stats.runs.get() <= 2, "runs {}", stats.runs.get());
        assert!(
            rx.try_recv().is_err(),
            "an abandoned run's output must be dropped"
        );
    }

    struct Quick;
    impl Collector for Quick {
        fn name(&self) -> &'static str {
            "quick"
        }
        fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
            out.push(Sample::new("quick", Kind::Gauge, 1.0));
            Ok(())
        }
    }

    /// A job with a long interval runs once right after it starts, not at its phase.
    #[tokio::test(flavor = "current_thread")]
    async fn a_job_runs_once_right_after_it_starts() {
        let metrics = Arc::new(AgentMetrics::new(["quick"]));
        let (tx, mut rx) = mpsc::channel(4);
        let job = Job {
            name: "quick",
            collector: Box::new(Quick),
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            priority: false,
            shared: true,
        };
        // A phase half an hour away from any wall-clock alignment.
        let phase = Duration::from_millis(
            u64::try_from((now_ms() + 1_800_000).rem_euclid(3_600_000)).unwrap(),
        );
        let handle = tokio::spawn(run_job(
            job,
            phase,
            0,
            Lane::new(),
            InFlight::default(),
            metrics,
            tx,
        ));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        handle.abort();
        let run = first.expect("a run within 5 s").expect("a run");
        assert_eq!(run.samples[0].name, "quick");
    }

    /// Collectors share the lane's thread; one stuck past its deadline must not hold up
    /// the others for longer than that deadline: the lane starts another thread.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stuck_run_on_the_lane_does_not_hold_up_the_others() {
        let metrics = Arc::new(AgentMetrics::new(["slow", "quick"]));
        let lane = Lane::new();
        let (tx, mut rx) = mpsc::channel(64);
        let job = |name, collector: Box<dyn Collector>| Job {
            name,
            collector,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(150),
            priority: false,
            shared: true,
        };
        let slow = tokio::spawn(run_job(
            job("slow", Box::new(Slow(Duration::from_secs(3)))),
            Duration::ZERO,
            0,
            lane.clone(),
            InFlight::default(),
            metrics.clone(),
            tx.clone(),
        ));
        // Let the slow one take the lane's only thread first.
        let stats = metrics.collector("slow").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.runs.get() < 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let quick = tokio::spawn(run_job(
            job("quick", Box::new(Quick)),
            Duration::ZERO,
            0,
            lane.clone(),
            InFlight::default(),
            metrics.clone(),
            tx,
        ));
        // Well before the slow run's 3 s are over.
        let quick_deadline = Instant::now() + Duration::from_millis(2000);
        let mut quick_runs = 0;
        while quick_runs < 3 {
            match tokio::time::timeout_at(quick_deadline.into(), rx.recv()).await {
                Ok(Some(run)) => {
                    assert_eq!(
                        run.samples[0].name, "quick",
                        "the slow run's output is dropped"
                    );
                    quick_runs += 1;
                }
                _ => break,
            }
        }
        assert_eq!(
            quick_runs, 3,
            "quick runs delivered while the slow one hung"
        );
        // Until the slow run has finished (its next run starts only then), nothing of it
        // may arrive: its output is dropped, not delivered late.
        let stats_deadline = Instant::now() + Duration::from_secs(10);
        while stats.runs.get() < 2 && Instant::now() < stats_deadline {
            match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                Ok(Some(run)) => assert_eq!(run.samples[0].name, "quick", "late slow output"),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(stats.runs.get() >= 2, "the slow run never finished");
        while let Ok(run) = rx.try_recv() {
            assert_eq!(run.samples[0].name, "quick", "late slow output");
        }
        slow.abort();
        quick.abort();
        assert!(stats.timeouts.get() >= 1);
        assert!(lane.lock().threads >= 2, "a second lane thread was started");
    }
}
