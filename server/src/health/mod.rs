//! The server's own health: what `GET /api/health` answers, what `/metrics` adds about the
//! server itself, and the server's metrics written into its own store so that shipped
//! rules and dashboards can use them.
//!
//! A task takes a [`Snapshot`] every `[health] probe_interval` (disk space of the data directory,
//! certificate expiry, silent agents, store commits, the process' file descriptors);
//! [`assess`] turns a snapshot into a status with reasons. Requests read the latest
//! snapshot; only the store's own health check runs per request.

mod disk_guard;
mod http_duration;
mod probe;
mod render;
mod self_metrics;

use std::{sync::Mutex, time::Duration};

use serde::Serialize;

pub use disk_guard::{DiskGuard, LowSpace};
pub use http_duration::{HttpDurations, record_http_duration};
pub use probe::{CertExpiry, DiskSpace, ProcessFiles, cert_not_after_ms};
pub use render::{HealthFigures, render_health};
pub use self_metrics::{SELF_AGENT_ID, write_self_metrics};

/// Most silent agents listed by name; the count is always whole.
const MAX_LISTED_SILENT: usize = 100;

/// `[health]` in server.toml.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Below this share of free space on the data directory's file system, the server is
    /// degraded.
    #[serde(default = "d_min_free_percent")]
    pub min_free_percent: f64,
    /// A certificate (the server's, its CAs, an agent's) expiring within this is a problem.
    #[serde(
        default = "d_cert_warning",
        deserialize_with = "crate::config::duration"
    )]
    pub certificate_warning: Duration,
    /// How often the probes run.
    #[serde(
        default = "d_probe_interval",
        deserialize_with = "crate::config::duration"
    )]
    pub probe_interval: Duration,
    /// How often the server writes its own metrics into its store (`0s`: never).
    #[serde(
        default = "d_self_metrics",
        deserialize_with = "crate::config::duration"
    )]
    pub self_metrics_interval: Duration,
}

fn d_min_free_percent() -> f64 {
    10.0
}
fn d_cert_warning() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn d_probe_interval() -> Duration {
    Duration::from_secs(10)
}
fn d_self_metrics() -> Duration {
    Duration::from_secs(15)
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            min_free_percent: d_min_free_percent(),
            certificate_warning: d_cert_warning(),
            probe_interval: d_probe_interval(),
            self_metrics_interval: d_self_metrics(),
        }
    }
}

impl HealthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.min_free_percent) {
            return Err(format!(
                "[health] min_free_percent = {} is not between 0 and 100",
                self.min_free_percent
            ));
        }
        if self.probe_interval.is_zero() {
            return Err("[health] probe_interval must be longer than 0".into());
        }
        Ok(())
    }
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Failing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }
}

/// One thing wrong: which check, how bad, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// A fixed name (`storage`, `disk_space`, `certificate`, `agent_certificates`,
    /// `commits`, `rule_files`): the `check` label of `sysward_server_health_problem`.
    pub check: &'static str,
    pub status: Status,
    pub reason: String,
}

/// An approved agent whose batches stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilentAgent {
    pub agent_id: String,
    pub instance: String,
    pub last_seen_ms: i64,
}

/// What the probes found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// When it was taken, Unix ms.
    pub at_ms: i64,
    pub disk: Option<DiskSpace>,
    /// `[storage] min_free`: below it ingest is refused.
    pub disk_reserve_bytes: u64,
    pub certificates: Vec<CertExpiry>,
    /// Agent certificates expiring within the warning period.
    pub agent_certificates_expiring: usize,
    pub agents_known: usize,
    pub silent_agents: Vec<SilentAgent>,
    pub silent_agents_total: usize,
    pub last_commit_ms: i64,
    /// Group commits that failed since the previous snapshot.
    pub commit_failures_recent: u64,
    pub rule_files_refused: usize,
    pub files: Option<ProcessFiles>,
}

impl Snapshot {
    /// Keeps the listed silent agents bounded, oldest silence first.
    pub fn set_silent(&mut self, mut silent: Vec<SilentAgent>) {
        silent.sort_by_key(|a| a.last_seen_ms);
        self.silent_agents_total = silent.len();
        silent.truncate(MAX_LISTED_SILENT);
        self.silent_agents = silent;
    }
}

/// The status and its reasons, worst first. `storage_ok` is the store's own check, made
/// for this answer.
pub fn assess(s: &Snapshot, storage_ok: bool, config: &HealthConfig) -> (Status, Vec<Problem>) {
    let mut problems = Vec::new();
    if !storage_ok {
        problems.push(problem(
            "storage",
            Status::Failing,
            "the store does not answer".into(),
        ));
    }
    if let Some(d) = &s.disk {
        disk_problem(d, s.disk_reserve_bytes, config, &mut problems);
    }
    for c in &s.certificates {
        cert_problem(c, s.at_ms, config, &mut problems);
    }
    if s.agent_certificates_expiring > 0 {
        problems.push(problem(
            "agent_certificates",
            Status::Degraded,
            format!(
                "{} agent certificate(s) expire within {} days and were not renewed",
                s.agent_certificates_expiring,
                config.certificate_warning.as_secs() / 86_400
            ),
        ));
    }
    if s.commit_failures_recent > 0 {
        problems.push(problem(
            "commits",
            Status::Degraded,
            format!(
                "{} store commit(s) failed since the previous probe, {} s ago",
                s.commit_failures_recent,
                config.probe_interval.as_secs()
            ),
        ));
    }
    if s.rule_files_refused > 0 {
        problems.push(problem(
            "rule_files",
            Status::Degraded,
            format!(
                "{} rule file(s) refused; see GET /api/v1/rules and the log",
                s.rule_files_refused
            ),
        ));
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.status));
    let status = problems.first().map_or(Status::Ok, |p| p.status);
    (status, problems)
}

fn problem(check: &'static str, status: Status, reason: String) -> Problem {
    Problem {
        check,
        status,
        reason,
    }
}

fn disk_problem(d: &DiskSpace, reserve: u64, config: &HealthConfig, out: &mut Vec<Problem>) {
    let percent = d.free_percent();
    if d.available_bytes == 0 {
        out.push(problem(
            "disk_space",
            Status::Failing,
            format!("the data directory's file system ({}) is full", d.path),
        ));
    } else if d.available_bytes < reserve {
        out.push(problem(
            "disk_space",
            Status::Degraded,
            format!(
                "ingest is refused: {} MiB free on the data directory's file system ({}), below [storage] min_free = {} MiB",
                d.available_bytes >> 20,
                d.path,
                reserve >> 20
            ),
        ));
    } else if percent < config.min_free_percent {
        out.push(problem(
            "disk_space",
            Status::Degraded,
            format!(
                "{percent:.1} % free on the data directory's file system ({}), below {} %",
                d.path, config.min_free_percent
            ),
        ));
    }
}

fn cert_problem(c: &CertExpiry, now_ms: i64, config: &HealthConfig, out: &mut Vec<Problem>) {
    let left_ms = c.not_after_ms - now_ms;
    let warning_ms = i64::try_from(config.certificate_warning.as_millis()).unwrap_or(i64::MAX);
    if left_ms <= 0 {
        out.push(problem(
            "certificate",
            Status::Failing,
            format!("the {} certificate has expired", c.name),
        ));
    } else if left_ms < warning_ms {
        out.push(problem(
            "certificate",
            Status::Degraded,
            format!(
                "the {} certificate expires in {} days",
                c.name,
                left_ms / 86_400_000
            ),
        ));
    }
}

/// The latest snapshot, shared by the probe task and the requests.
#[derive(Debug, Default)]
pub struct HealthMonitor {
    latest: Mutex<Snapshot>,
    pub http: HttpDurations,
}

impl HealthMonitor {
    pub fn latest(&self) -> Snapshot {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, snapshot: Snapshot) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
}

#[cfg(test)]
mod tests;
