//! Sysward's health checks, configured in `agent.toml` (`[[checks.script]]`, `[[checks.http]]`, ...).
//!
//! Every check kind implements [`Probe`]: one synchronous run that returns a
//! [`ProbeResult`] (state, output, its own samples). [`Check`] wraps a probe as a
//! [`Collector`], so that checks are scheduled, timed out and shipped exactly like
//! collectors, and adds what every check has:
//! - `sysward_check_status{check}`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
//! - `sysward_check_up{check}`: 1 when OK, else 0;
//! - `sysward_check_duration_seconds{check}`;
//! - one [`Event`] per run, with Nagios' soft/hard state ([`state::StateTracker`]).
//!
//! Names are leaked to `&'static str` once per config load: a handful of bytes per check,
//! in exchange for the collector interface staying allocation-free.

#![warn(missing_docs)]

pub mod state;

pub mod dns;
mod dns_wire;
pub mod http;
pub mod log;
mod net;
pub mod perfdata;
pub mod ping;
pub mod process;
pub mod script;
pub mod tcp;
#[cfg(all(test, target_os = "linux"))]
mod test_support;
pub mod tls;

use std::{
    collections::HashSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use serde::{Deserialize, Deserializer};

use sysward_collectors::{CheckState, CollectError, Collector, Event, Kind, Output, Sample, Tier};

/// Every `[[checks.*]]` table of the agent's config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// `*.toml` files in this directory add more checks, in the same form as `[checks]`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Environment variables given to every script check (besides a cleared environment).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// `[[checks.script]]` tables.
    #[serde(default)]
    pub script: Vec<script::ScriptCheckConfig>,
    /// `[[checks.process]]` tables.
    #[serde(default)]
    pub process: Vec<process::ProcessCheckConfig>,
    /// `[[checks.tcp]]` tables.
    #[serde(default)]
    pub tcp: Vec<tcp::TcpCheckConfig>,
    /// `[[checks.http]]` tables.
    #[serde(default)]
    pub http: Vec<http::HttpCheckConfig>,
    /// `[[checks.tls]]` tables.
    #[serde(default)]
    pub tls: Vec<tls::TlsCheckConfig>,
    /// `[[checks.dns]]` tables.
    #[serde(default)]
    pub dns: Vec<dns::DnsCheckConfig>,
    /// `[[checks.ping]]` tables.
    #[serde(default)]
    pub ping: Vec<ping::PingCheckConfig>,
    /// `[[checks.log]]` tables.
    #[serde(default)]
    pub log: Vec<log::LogCheckConfig>,
}

impl ChecksConfig {
    /// Every check's name, in the order [`build_each`] builds them.
    pub fn names(&self) -> Vec<&str> {
        let names = self.script.iter().map(|c| c.name.as_str());
        let names = names.chain(self.process.iter().map(|c| c.name.as_str()));
        let names = names.chain(self.tcp.iter().map(|c| c.name.as_str()));
        let names = names.chain(self.http.iter().map(|c| c.name.as_str()));
        let names = names.chain(self.tls.iter().map(|c| c.name.as_str()));
        let names = names.chain(self.dns.iter().map(|c| c.name.as_str()));
        let names = names.chain(self.ping.iter().map(|c| c.name.as_str()));
        names
            .chain(self.log.iter().map(|c| c.name.as_str()))
            .collect()
    }
}

/// Fields every check kind has, read by each kind's config with `#[serde(flatten)]`-free
/// copies (serde's flatten cannot be combined with `deny_unknown_fields`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Its own interval, or the tier's.
    pub interval: Option<Duration>,
    /// A tier (default `critical`: an alert waits on checks).
    pub tier: Option<Tier>,
    /// Deadline of one run.
    pub timeout: Option<Duration>,
}

/// How long a check's run may take when its config names no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one probe run found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// The state found.
    pub state: CheckState,
    /// First line, without perfdata.
    pub output: String,
    /// Further lines.
    pub long_output: String,
    /// The probe's own samples; `check` is added to their labels.
    pub samples: Vec<Sample>,
}

impl ProbeResult {
    /// A result with no samples.
    pub fn new(state: CheckState, output: impl Into<String>) -> Self {
        Self {
            state,
            output: output.into(),
            long_output: String::new(),
            samples: Vec::new(),
        }
    }
}

/// One kind of check's single run.
pub trait Probe: Send {
    /// Runs once. `deadline` is the check's timeout: a probe that can stop itself (a
    /// socket timeout, a child process killed) should, and report UNKNOWN
    /// "timed out after Ns"; the agent abandons runs that overrun it anyway.
    fn run(&mut self, deadline: Duration) -> ProbeResult;
}

/// A probe as a collector: adds status, duration, soft/hard state and the event.
pub struct Check {
    name: &'static str,
    probe: Box<dyn Probe>,
    tracker: state::StateTracker,
    timeout: Duration,
}

impl Check {
    /// Wraps a probe; `max_attempts` non-OK runs in a row make a state hard.
    pub fn new(
        name: &'static str,
        probe: Box<dyn Probe>,
        max_attempts: u32,
        timeout: Duration,
    ) -> Self {
        Self {
            name,
            probe,
            tracker: state::StateTracker::new(max_attempts),
            timeout,
        }
    }
}

impl Collector for Check {
    fn name(&self) -> &'static str {
        self.name
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let started = Instant::now();
        let result = self.probe.run(self.timeout);
        let duration = started.elapsed();
        let (hard, attempt) = self.tracker.record(result.state);
        for mut s in result.samples {
            s.labels.insert(0, ("check".into(), self.name.into()));
            out.push(s);
        }
        out.push(
            Sample::new(
                "sysward_check_status",
                Kind::Gauge,
                f64::from(result.state.code()),
            )
            .label("check", self.name),
        );
        // 1 when OK: a monthly uptime is then an average, which rollups keep exactly
        // (the share of OK among the statuses 0 to 3 cannot be told from their sum).
        let ok = result.state.code() == 0;
        out.push(
            Sample::new("sysward_check_up", Kind::Gauge, f64::from(u8::from(ok)))
                .label("check", self.name),
        );
        out.push(
            Sample::new(
                "sysward_check_duration_seconds",
                Kind::Gauge,
                duration.as_secs_f64(),
            )
            .label("check", self.name),
        );
        out.events.push(Event {
            check: self.name.to_string(),
            state: result.state,
            output: result.output,
            long_output: result.long_output,
            hard,
            attempt,
            duration,
        });
        Ok(())
    }
}

/// A check ready to schedule.
pub struct CheckJob {
    /// The check's name.
    pub name: &'static str,
    /// Its kind: `script`, `http`, ...
    pub kind: &'static str,
    /// When it runs.
    pub schedule: Schedule,
    /// It, as a collector.
    pub collector: Box<dyn Collector>,
}

/// Why the checks of a config cannot run. Names the check.
#[derive(Debug, thiserror::Error)]
#[error("check {kind}[{index}] {name:?}: {message}")]
pub struct CheckConfigError {
    /// `script`, `http`, ...
    pub kind: &'static str,
    /// Its position among the tables of that kind, from 0.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// What checks may need from the agent.
#[derive(Debug, Clone, Default)]
pub struct CheckContext {
    /// A directory of the agent's own where checks keep state across restarts (e.g. a log
    /// check's read position), under the agent's `state_dir`.
    pub state_dir: PathBuf,
    /// Where /proc, /sys and the host's root are (the agent's `[agent]` roots), so that
    /// an agent in a container checks the host's processes.
    pub roots: sysward_collectors::Roots,
}

/// Builds every configured check. Names must be unique across kinds: they label series.
/// The first check that cannot be set up is the error.
pub fn build(config: &ChecksConfig, ctx: &CheckContext) -> Result<Vec<CheckJob>, CheckConfigError> {
    build_each(config, ctx).into_iter().collect()
}

/// Builds every configured check on its own, in config order (by kind, then position):
/// each is a job, or why it cannot be set up. A name already taken is an error of the
/// second check that takes it.
pub fn build_each(
    config: &ChecksConfig,
    ctx: &CheckContext,
) -> Vec<Result<CheckJob, CheckConfigError>> {
    let mut built = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |kind: &'static str, index: usize, name: &str, probe: Result<Built, String>| {
        built.push(
            job(kind, name, probe, &mut seen).map_err(|message| CheckConfigError {
                kind,
                index,
                name: name.to_string(),
                message,
            }),
        );
    };
    for (i, c) in config.script.iter().enumerate() {
        add("script", i, &c.name, script::build(c, config));
    }
    for (i, c) in config.process.iter().enumerate() {
        add("process", i, &c.name, process::build(c, ctx));
    }
    for (i, c) in config.tcp.iter().enumerate() {
        add("tcp", i, &c.name, tcp::build(c));
    }
    for (i, c) in config.http.iter().enumerate() {
        add("http", i, &c.name, http::build(c));
    }
    for (i, c) in config.tls.iter().enumerate() {
        add("tls", i, &c.name, tls::build(c));
    }
    for (i, c) in config.dns.iter().enumerate() {
        add("dns", i, &c.name, dns::build(c));
    }
    for (i, c) in config.ping.iter().enumerate() {
        add("ping", i, &c.name, ping::build(c));
    }
    for (i, c) in config.log.iter().enumerate() {
        add("log", i, &c.name, log::build(c, ctx));
    }
    built
}

/// What a kind's `build` returns: the probe, its schedule, its `max_attempts`.
type Built = (Box<dyn Probe>, Schedule, u32);

/// One check as a job, once its name is known to be valid and free.
fn job(
    kind: &'static str,
    name: &str,
    built: Result<Built, String>,
    seen: &mut HashSet<String>,
) -> Result<CheckJob, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    {
        return Err("a check name is 1 or more of A-Z a-z 0-9 _ - . :".into());
    }
    if !seen.insert(name.to_string()) {
        return Err("another check has the same name".into());
    }
    let (probe, schedule, max_attempts) = built?;
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let timeout = schedule.timeout.unwrap_or(DEFAULT_TIMEOUT);
    Ok(CheckJob {
        name,
        kind,
        schedule,
        collector: Box::new(Check::new(name, probe, max_attempts.max(1), timeout)),
    })
}

/// Deserialises a human duration (`"30s"`, `"5m"`) for check configs.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| sysward_proto::units::parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Deserialises a tier name.
pub fn tier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tier>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| match s.as_str() {
        "critical" => Ok(Tier::Critical),
        "standard" => Ok(Tier::Standard),
        "intensive" => Ok(Tier::Intensive),
        "static" => Ok(Tier::Static),
        other => Err(serde::de::Error::custom(format!(
            "unknown tier {other:?} (critical, standard, intensive, static)"
        ))),
    })
    .transpose()
}
