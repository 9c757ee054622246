//! `sysward-agent run`: wires config, collectors, scheduler, batcher, queue and shipper,
//! and stops them in order on SIGTERM or Ctrl-C.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use rand::RngCore;
use sysward_collectors::{REGISTRY, Tier};
use sysward_proto::HostInfo;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::{
    batcher::Batcher,
    config::{AgentConfig, BufferPlan, check_context},
    identity::Identity,
    metrics::{AgentMetrics, SELF_COLLECTOR, SelfCollector},
    queue::{BatchQueue, MemoryQueue},
    scheduler::{self, Job},
    shipper::Shipper,
    spool::{FsyncPolicy, Spool},
};

/// How long a stopping agent keeps trying to deliver what it holds.
const DRAIN_ON_STOP: Duration = Duration::from_secs(5);

pub(crate) fn run(config: AgentConfig) -> anyhow::Result<()> {
    let identity = Identity::load(&config.agent.state_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(config, identity))
}

async fn run_async(config: AgentConfig, mut identity: Identity) -> anyhow::Result<()> {
    if identity.server_url != config.server_url {
        info!(
            enrolled = identity.server_url,
            configured = config.server_url,
            "Using the configured server URL."
        );
        identity.server_url = config.server_url.clone();
    }
    let checks = sysward_collectors::checks::build(&config.checks, &check_context(&config.agent))?;
    let names = config
        .collectors
        .iter()
        .map(|p| p.name)
        .chain(checks.iter().map(|c| c.name))
        .chain([SELF_COLLECTOR]);
    let metrics = Arc::new(AgentMetrics::new(names));
    let mut background = Vec::new();
    let queue: Arc<dyn BatchQueue> = match &config.buffer {
        BufferPlan::Memory { max_batches } => {
            Arc::new(MemoryQueue::new(*max_batches, metrics.clone()))
        }
        BufferPlan::Disk(spool_config) => {
            let spool = Arc::new(
                Spool::open(spool_config.clone(), metrics.clone()).with_context(|| {
                    format!("cannot open the spool in {}", spool_config.dir.display())
                })?,
            );
            if let FsyncPolicy::Interval(every) = spool_config.fsync {
                let spool = spool.clone();
                background.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        let s = spool.clone();
                        let _ = tokio::task::spawn_blocking(move || s.sync()).await;
                    }
                }));
            }
            spool
        }
    };
    let hostname = config.hostname();
    let host_id = host_id(&config.agent.rootfs).unwrap_or_else(|| hostname.clone());
    let roots = config.roots();

    let (tx, rx) = mpsc::channel(256);
    let mut jobs = Vec::new();
    for plan in &config.collectors {
        let Some(spec) = REGISTRY.iter().find(|s| s.name == plan.name) else {
            continue;
        };
        let job = Job {
            name: spec.name,
            collector: (spec.build)(&roots),
            interval: plan.interval,
            timeout: plan.timeout,
            priority: plan.interval <= config.critical_interval,
        };
        info!(collector = spec.name, interval = ?plan.interval, timeout = ?plan.timeout, "Collector scheduled.");
        jobs.push(scheduler::spawn(job, &host_id, metrics.clone(), tx.clone()));
    }
    jobs.push(scheduler::spawn(
        Job {
            name: SELF_COLLECTOR,
            collector: Box::new(SelfCollector {
                metrics: metrics.clone(),
            }),
            interval: config.standard_interval,
            timeout: Duration::from_secs(5).min(config.standard_interval),
            priority: false,
        },
        &host_id,
        metrics.clone(),
        tx.clone(),
    ));
    for check in checks {
        // Checks default to the critical tier: an alert waits on them.
        let interval = check
            .schedule
            .interval
            .unwrap_or_else(|| config.tier_interval(check.schedule.tier.unwrap_or(Tier::Critical)));
        let timeout = check
            .schedule
            .timeout
            .unwrap_or(Duration::from_secs(10))
            .min(interval);
        info!(check = check.name, ?interval, ?timeout, "Check scheduled.");
        let job = Job {
            name: check.name,
            collector: check.collector,
            interval,
            timeout,
            priority: true,
        };
        jobs.push(scheduler::spawn(job, &host_id, metrics.clone(), tx.clone()));
    }
    drop(tx);

    let mut boot = [0u8; 8];
    rand::rng().fill_bytes(&mut boot);
    let batcher = Batcher {
        agent_id: identity.agent_id.clone(),
        boot_id: hex::encode(boot),
        host: HostInfo {
            hostname: hostname.clone(),
            labels: config.agent.labels.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        },
        queue: queue.clone(),
        metrics: metrics.clone(),
        next_seq: 1,
    };
    let batcher_task = tokio::spawn(batcher.run(rx));
    let shipper = Shipper::new(
        &identity,
        queue.clone(),
        metrics.clone(),
        config.shipper.request_timeout,
        config.shipper.backoff_max,
    )
    .context("cannot set up the TLS client")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shipper_task = tokio::spawn(shipper.run(stop_rx));
    info!(
        agent_id = identity.agent_id,
        hostname,
        server = identity.server_url,
        "Agent running."
    );

    shutdown_signal().await;
    for job in &jobs {
        job.abort();
    }
    // The batcher ends once every job's sender is gone, after its last flush.
    let _ = batcher_task.await;
    let deadline = tokio::time::Instant::now() + DRAIN_ON_STOP;
    while !queue.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = shipper_task.await;
    for task in background {
        task.abort();
    }
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

/// `/etc/machine-id`: stable across reboots and host renames.
fn host_id(rootfs: &Path) -> Option<String> {
    std::fs::read_to_string(rootfs.join("etc/machine-id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
