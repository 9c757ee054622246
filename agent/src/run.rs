//! `sysward-agent run`: wires config, collectors, scheduler, batcher, queue and shipper,
//! reloads the config on SIGHUP, and stops them in order on SIGTERM or Ctrl-C.
//!
//! Reload: the file is read and validated in full first; an invalid one is logged and the
//! running config stays. A valid one changes what the scheduler runs: collectors and checks
//! whose interval, timeout or tier changed are restarted, disabled ones stopped, and the rest
//! left running with their state. Any change to the checks' own settings starts every check
//! again from its new definition (their soft/hard state starts over, as after a restart).
//! A collector or check that was not running at start waits for a restart: its self-metrics
//! are allocated then. `[server]`, `[agent]`, `[shipper]` and `[buffer]` are read once at
//! start: a change there is logged as waiting for a restart, and the spool and the shipper
//! are never touched by a reload.
//!
//! Under systemd (`Type=notify`) the agent says READY=1 once it runs, RELOADING=1 and READY=1
//! around a reload, STOPPING=1 on the way out, and WATCHDOG=1 at half the watchdog interval.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use rand::RngCore;
use sd_notify::NotifyState;
use sysward_checks::CheckJob;
use sysward_collectors::{CollectorContext, REGISTRY, Roots};
use sysward_proto::HostInfo;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::{debug, error, info, warn};

use crate::{
    batcher::Batcher,
    config::{AgentConfig, BufferPlan, check_context},
    identity::Identity,
    metrics::{AgentMetrics, SELF_COLLECTOR, SelfCollector},
    queue::{BatchQueue, MemoryQueue},
    scheduler::{self, Job, RunOutput},
    shipper::Shipper,
    spool::{FsyncPolicy, Spool},
};

/// How long a stopping agent keeps trying to deliver what it holds.
const DRAIN_ON_STOP: Duration = Duration::from_secs(5);

/// Collectors that wait on another process (smartctl through the helper, systemd over
/// D-Bus, database servers) for up to seconds: each runs on a blocking-pool thread of its
/// own rather than on the lane the quick host collectors share.
const OWN_THREAD: [&str; 4] = ["smart", "systemd", "postgres", "mysql"];

/// How long an idle blocking-pool thread waits for work before it exits.
const BLOCKING_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(600);

/// `path` is where `config` came from: SIGHUP reads it again.
pub(crate) fn run(config: AgentConfig, path: &Path) -> anyhow::Result<()> {
    let identity = Identity::load(&config.agent.state_dir)?;
    // Few threads allocate, and little: two arenas keep glibc from holding one per thread.
    #[cfg(target_os = "linux")]
    sysward_platform::linux::limit_malloc_arenas(2);
    // One thread drives every task: the async side waits on timers and sockets, encodes
    // and queues batches (see the batcher for when the push goes elsewhere); collector
    // runs go to the scheduler's lane thread, checks and slow collectors to the blocking
    // pool. Idle pool threads are kept for longer than the standard tier's interval, so
    // that a tick reuses a thread rather than creating one (clone, stack, malloc arena).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(16)
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(config, path.to_path_buf(), identity))
}

/// Whether `[server] url` is the packaged placeholder, which means "the URL enrolled with".
/// Names under `.invalid` can never resolve (RFC 6761), so such a URL can only mean that
/// none was set; the package ships one so that its default config is valid before enrolment.
pub(crate) fn is_placeholder_url(url: &str) -> bool {
    let host = url
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host == "invalid" || host.ends_with(".invalid")
}

async fn run_async(
    mut config: AgentConfig,
    path: PathBuf,
    mut identity: Identity,
) -> anyhow::Result<()> {
    choose_server_url(&config, &mut identity);
    let checks = sysward_checks::build(&config.checks, &check_context(&config.agent))?;
    let names = config
        .collectors
        .iter()
        .map(|p| p.name)
        .chain(checks.iter().map(|c| c.name))
        .chain([SELF_COLLECTOR]);
    let metrics = Arc::new(AgentMetrics::new(names));
    let mut background = Vec::new();
    let Buffer {
        queue,
        spool_to_sync,
    } = open_queue(&config.buffer, &metrics, &mut background)?;
    let hostname = config.hostname();
    let host_id = host_id(&config.agent.rootfs).unwrap_or_else(|| hostname.clone());
    let roots = config.roots();

    let (tx, rx) = mpsc::channel(256);
    let mut schedule = Schedule {
        host_id,
        lane: scheduler::Lane::new(),
        in_flight: scheduler::InFlight::default(),
        metrics: metrics.clone(),
        tx,
        running: BTreeMap::new(),
    };
    schedule.apply(planned_jobs(&config, &roots, &metrics, checks), false);
    let batcher = batcher(&config, &identity, &hostname, &queue, &schedule);
    let boot_id = batcher.boot_id.clone();
    let batcher_task = tokio::spawn(batcher.run(rx));
    let pair_unconfirmed = crate::renew::recover_pair(&identity.dir).unwrap_or_else(|error| {
        warn!(
            error = format!("{error:#}"),
            "Cannot check the previous key pair."
        );
        false
    });
    let (renewer, renewals) =
        crate::renew::Renewer::new(identity.clone(), config.shipper.request_timeout);
    let shipper = Shipper::new(
        &identity,
        queue.clone(),
        metrics.clone(),
        config.shipper.request_timeout,
        config.shipper.backoff_max,
    )
    .context("cannot set up the TLS client")?
    .following_renewals(renewals, pair_unconfirmed);
    background.push(tokio::spawn(renewer.run()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shipper_task = tokio::spawn(shipper.run(stop_rx));
    info!(
        agent_id = identity.agent_id,
        boot_id,
        hostname,
        server = identity.server_url,
        "Agent running."
    );
    release_startup_code();
    background.push(tokio::spawn(release_memory(RELEASE_EVERY)));
    notify(&[NotifyState::Ready]);
    if let Some(every) = sd_notify::watchdog_enabled() {
        background.push(tokio::spawn(watchdog(every)));
    }
    serve_signals(&path, &mut config, &roots, &mut schedule).await?;

    notify(&[NotifyState::Stopping]);
    // Dropping the schedule drops the last sender: the batcher flushes and ends.
    schedule.stop();
    drop(schedule);
    // The batcher ends once every job's sender is gone, after its last flush.
    let _ = batcher_task.await;
    drain(&queue).await;
    let _ = stop_tx.send(true);
    let _ = shipper_task.await;
    for task in background {
        task.abort();
    }
    sync_before_stop(spool_to_sync).await;
    let left = queue.len();
    if left > 0 {
        warn!(
            batches = left,
            "Stopped with batches not delivered (the in-memory queue does not survive a restart)."
        );
    }
    info!(sent = metrics.batches_sent.get(), "Agent stopped.");
    Ok(())
}

/// The enrolled server URL, unless `[server] url` names another one than the placeholder.
fn choose_server_url(config: &AgentConfig, identity: &mut Identity) {
    if is_placeholder_url(&config.server_url) {
        info!(
            server = identity.server_url,
            "Using the enrolled server URL ([server] url is the placeholder)."
        );
    } else if identity.server_url != config.server_url {
        info!(
            enrolled = identity.server_url,
            configured = config.server_url,
            "Using the configured server URL."
        );
        identity.server_url = config.server_url.clone();
    }
}

/// Where batches wait for the shipper.
struct Buffer {
    queue: Arc<dyn BatchQueue>,
    /// The spool, when it syncs on an interval: it is synced once more before stopping.
    spool_to_sync: Option<Arc<Spool>>,
}

/// The queue batches wait in; a spool that syncs on an interval gets its syncer task,
/// added to `background`.
fn open_queue(
    plan: &BufferPlan,
    metrics: &Arc<AgentMetrics>,
    background: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Buffer> {
    let spool_config = match plan {
        BufferPlan::Memory { max_batches } => {
            let queue = Arc::new(MemoryQueue::new(*max_batches, metrics.clone()));
            return Ok(Buffer {
                queue,
                spool_to_sync: None,
            });
        }
        BufferPlan::Disk(spool_config) => spool_config,
    };
    let spool = Arc::new(
        Spool::open(spool_config.clone(), metrics.clone())
            .with_context(|| format!("cannot open the spool in {}", spool_config.dir.display()))?,
    );
    let mut to_sync = None;
    if let FsyncPolicy::Interval(every) = spool_config.fsync {
        to_sync = Some(spool.clone());
        background.push(tokio::spawn(sync_spool(spool.clone(), every)));
    }
    Ok(Buffer {
        queue: spool,
        spool_to_sync: to_sync,
    })
}

/// Wakes only after a write, and syncs only if a frame written since is still unacked
/// when the interval is over. The wait ends early once the server has acked every such
/// frame, which for a connected agent is milliseconds after the write: its timer is
/// dropped before it fires, so a well-connected agent costs no wakeups and no fsyncs here.
async fn sync_spool(spool: Arc<Spool>, every: Duration) {
    loop {
        spool.written().await;
        let interval_over = tokio::time::Instant::now() + every;
        while spool.needs_sync() {
            if tokio::time::timeout_at(interval_over, spool.acked())
                .await
                .is_err()
            {
                let s = spool.clone();
                let _ = tokio::task::spawn_blocking(move || s.sync()).await;
                break;
            }
        }
    }
}

fn batcher(
    config: &AgentConfig,
    identity: &Identity,
    hostname: &str,
    queue: &Arc<dyn BatchQueue>,
    schedule: &Schedule,
) -> Batcher {
    let mut boot = [0u8; 8];
    rand::rng().fill_bytes(&mut boot);
    Batcher {
        agent_id: identity.agent_id.clone(),
        boot_id: hex::encode(boot),
        host: HostInfo {
            hostname: hostname.to_string(),
            labels: config.agent.labels.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            critical_interval_ms: config.critical_interval.as_millis() as u64,
        },
        queue: queue.clone(),
        metrics: schedule.metrics.clone(),
        next_seq: 1,
        push_inline: !matches!(
            &config.buffer,
            BufferPlan::Disk(spool) if spool.fsync == FsyncPolicy::EveryBatch
        ),
        encoder: Default::default(),
        series_table: Default::default(),
        in_flight: schedule.in_flight.clone(),
    }
}

/// Reloads on SIGHUP until SIGTERM or Ctrl-C.
async fn serve_signals(
    path: &Path,
    config: &mut AgentConfig,
    roots: &Roots,
    schedule: &mut Schedule,
) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            Some(()) = hangup.recv() => {
                let mut reloading = vec![NotifyState::Reloading];
                reloading.extend(NotifyState::monotonic_usec_now().ok());
                notify(&reloading);
                reload(path, config, roots, schedule);
                notify(&[NotifyState::Ready]);
            }
        }
    }
}

/// Gives the shipper up to [`DRAIN_ON_STOP`] to deliver what the queue holds.
async fn drain(queue: &Arc<dyn BatchQueue>) {
    let deadline = tokio::time::Instant::now() + DRAIN_ON_STOP;
    while !queue.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The interval syncer is gone: what it would have synced in the next second is synced
/// now, so that a power cut right after a stop loses nothing.
async fn sync_before_stop(spool: Option<Arc<Spool>>) {
    if let Some(spool) = spool.filter(|spool| spool.needs_sync())
        && tokio::task::spawn_blocking(move || spool.sync())
            .await
            .is_ok()
    {
        info!("Unsent batches synced to disk before stopping.");
    }
}

/// A collector or check about to be scheduled.
struct Planned {
    job: Job,
    check: bool,
}

/// What a job was started with; a reload restarts a job whose plan changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    interval: Duration,
    timeout: Duration,
    priority: bool,
}

struct RunningJob {
    plan: Plan,
    check: bool,
    handle: JoinHandle<()>,
}

/// The jobs that run now, by name. It holds a sender to the batcher, so that jobs can be
/// started again on a reload; the batcher ends once it is dropped.
struct Schedule {
    host_id: String,
    /// The thread the quick host collectors share.
    lane: scheduler::Lane,
    /// Runs started and not yet handed to the batcher.
    in_flight: scheduler::InFlight,
    metrics: Arc<AgentMetrics>,
    tx: mpsc::Sender<RunOutput>,
    running: BTreeMap<&'static str, RunningJob>,
}

impl Schedule {
    /// Starts what is new or changed, stops what is no longer planned, and leaves the rest
    /// running so that collectors and checks keep their state. `restart_checks`: the checks'
    /// own settings changed, so every check starts again from its new definition.
    fn apply(&mut self, planned: Vec<Planned>, restart_checks: bool) {
        let mut next = BTreeMap::new();
        for Planned { job, check } in planned {
            let name = job.name;
            let plan = Plan {
                interval: job.interval,
                timeout: job.timeout,
                priority: job.priority,
            };
            if let Some(old) = self.running.remove(name) {
                if old.plan == plan && !(check && restart_checks) {
                    next.insert(name, old);
                    continue;
                }
                // A run in progress on the blocking pool finishes on its own; its output
                // is dropped with the task.
                old.handle.abort();
            } else if self.metrics.collector(name).is_none() {
                // Per-collector stats are allocated at start, so a name that was not there
                // then cannot be counted yet.
                warn!(
                    collector = name,
                    "Newly enabled; it starts with the next restart of the agent."
                );
                continue;
            }
            if check {
                info!(check = name, interval = ?plan.interval, timeout = ?plan.timeout, "Check scheduled.");
            } else {
                info!(collector = name, interval = ?plan.interval, timeout = ?plan.timeout, "Collector scheduled.");
            }
            let handle = scheduler::spawn(
                job,
                &self.host_id,
                self.lane.clone(),
                self.in_flight.clone(),
                self.metrics.clone(),
                self.tx.clone(),
            );
            next.insert(
                name,
                RunningJob {
                    plan,
                    check,
                    handle,
                },
            );
        }
        for (name, old) in std::mem::replace(&mut self.running, next) {
            old.handle.abort();
            if old.check {
                info!(check = name, "Check stopped.");
            } else {
                info!(collector = name, "Collector stopped.");
            }
        }
    }

    fn stop(&mut self) {
        for job in std::mem::take(&mut self.running).into_values() {
            job.handle.abort();
        }
    }
}

/// Every job a config asks for: its collectors, the agent's own metrics, its checks.
fn planned_jobs(
    config: &AgentConfig,
    roots: &Roots,
    metrics: &Arc<AgentMetrics>,
    checks: Vec<CheckJob>,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    let context = CollectorContext {
        roots: roots.clone(),
        state_dir: Some(config.agent.state_dir.join("collectors")),
    };
    for plan in &config.collectors {
        let Some(spec) = REGISTRY.iter().find(|s| s.name == plan.name) else {
            continue;
        };
        // The settings were checked when the config was loaded; this cannot fail unless
        // the collector's own check changed in between.
        let collector = match (spec.configure)(&context, &plan.settings) {
            Ok(c) => c,
            Err(error) => {
                warn!(collector = spec.name, %error, "Collector settings refused; not scheduled.");
                continue;
            }
        };
        planned.push(Planned {
            job: Job {
                name: spec.name,
                collector,
                interval: plan.interval,
                timeout: plan.timeout,
                priority: plan.interval <= config.critical_interval,
                shared: !OWN_THREAD.contains(&spec.name),
            },
            check: false,
        });
    }
    planned.push(Planned {
        job: Job {
            name: SELF_COLLECTOR,
            collector: Box::new(SelfCollector {
                metrics: metrics.clone(),
            }),
            interval: config.standard_interval,
            timeout: Duration::from_secs(5).min(config.standard_interval),
            priority: false,
            shared: true,
        },
        check: false,
    });
    for check in checks {
        let (interval, timeout) = config.check_timing(&check.schedule);
        planned.push(Planned {
            job: Job {
                name: check.name,
                collector: check.collector,
                interval,
                timeout,
                priority: true,
                // Checks wait on processes and the network for seconds at a time.
                shared: false,
            },
            check: true,
        });
    }
    planned
}

/// SIGHUP: validates the file, then applies what can change while running (see the module
/// doc). On any error the running config stays as it was.
fn reload(path: &Path, current: &mut AgentConfig, roots: &Roots, schedule: &mut Schedule) {
    let mut new = match AgentConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "Reload refused: the config is invalid; the running one stays.");
            return;
        }
    };
    // Debug text as the comparison: these sections have no PartialEq, and any difference
    // is worth a line in the log.
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut pending = Vec::new();
    if new.server_url != current.server_url {
        pending.push("server");
    }
    if differs(&new.agent, &current.agent) {
        pending.push("agent");
    }
    if differs(&new.shipper, &current.shipper) {
        pending.push("shipper");
    }
    if differs(&new.buffer, &current.buffer) {
        pending.push("buffer");
    }
    // What runs keeps the start-time values of those sections, so that the checks below
    // use the running state directory and the next reload still reports the difference.
    new.server_url.clone_from(&current.server_url);
    new.agent = current.agent.clone();
    new.shipper = current.shipper.clone();
    new.buffer = current.buffer.clone();
    let checks = match sysward_checks::build(&new.checks, &check_context(&new.agent)) {
        Ok(checks) => checks,
        Err(e) => {
            error!(error = %e, "Reload refused: the checks cannot be set up; the running config stays.");
            return;
        }
    };
    let restart_checks = differs(&new.checks, &current.checks);
    schedule.apply(
        planned_jobs(&new, roots, &schedule.metrics, checks),
        restart_checks,
    );
    *current = new;
    if pending.is_empty() {
        info!(file = %path.display(), "Config reloaded.");
    } else {
        warn!(
            file = %path.display(),
            sections = pending.join(", "),
            "Config reloaded; changes to these sections wait for a restart of the agent."
        );
    }
}

/// Tells systemd (when it started us, `Type=notify`) how the agent is doing; without
/// systemd there is no socket and nothing is sent.
fn notify(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        warn!(%error, "Cannot notify systemd.");
    }
}

/// Pings systemd's watchdog at half its interval, as sd_watchdog_enabled(3) advises. It runs
/// on the runtime, so a runtime that stops making progress stops the pings and systemd
/// restarts the agent.
/// How often the allocator's free pages go back to the kernel.
const RELEASE_EVERY: Duration = Duration::from_secs(60);

/// Drops the resident pages of code that only start-up ran (config, certificates,
/// collectors, regular expressions, the first TLS handshake): the steady state faults
/// back in what it runs. The peak is lower when this happens before the first ticks add
/// their pages, so it runs once start-up is done and again a minute in.
fn release_startup_code() {
    let bytes = sysward_platform::linux::release_code_pages();
    debug!(bytes, "Start-up code pages released.");
}

/// Gives free heap pages back to the kernel every `every`, and the start-up code once
/// more after the first wait. Not after every tick: each release makes the next tick
/// fault its pages in again, which cost a sixth of the agent's CPU at a 1 s tick, while
/// the heap creeps by tens of kB between two releases.
async fn release_memory(every: Duration) {
    tokio::time::sleep(every).await;
    release_startup_code();
    loop {
        sysward_platform::linux::release_free_memory();
        tokio::time::sleep(every).await;
    }
}

async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every / 2);
    loop {
        tick.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}

/// `/etc/machine-id`: stable across reboots and host renames.
fn host_id(rootfs: &Path) -> Option<String> {
    std::fs::read_to_string(rootfs.join("etc/machine-id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn shutdown_signal() {
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
    info!("Stopping.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_names_are_the_placeholder() {
        assert!(is_placeholder_url("https://sysward.invalid:8443"));
        assert!(is_placeholder_url("https://invalid"));
        assert!(is_placeholder_url("https://A.INVALID./x"));
        assert!(!is_placeholder_url("https://mon.example:8443"));
        assert!(!is_placeholder_url("https://invalid.example.com"));
        assert!(!is_placeholder_url("https://127.0.0.1:8443"));
    }
}
