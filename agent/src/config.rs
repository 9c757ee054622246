//! `agent.toml`: every key, its default, and validation that names the file, line and key.
//! The whole file is checked before anything runs; unknown keys are errors, so a typo never
//! silently falls back to a default.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};
use sysward_collectors::{CollectorSpec, REGISTRY, Roots, Tier};
use sysward_proto::units;
use toml::Spanned;

use sysward_checks::ChecksConfig;

use crate::spool::{FsyncPolicy, SpoolConfig};

/// A config error: where and what.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ConfigError {
    pub(crate) file: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: ServerSection,
    #[serde(default)]
    agent: AgentSection,
    #[serde(default)]
    intervals: IntervalsSection,
    #[serde(default)]
    collectors: BTreeMap<Spanned<String>, CollectorSection>,
    #[serde(default)]
    shipper: ShipperSection,
    #[serde(default)]
    buffer: BufferSection,
    #[serde(default)]
    checks: ChecksConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    url: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentSection {
    /// Identity, enrollment and (later) the spool live here.
    #[serde(default = "default_state_dir")]
    pub(crate) state_dir: PathBuf,
    /// The host name sent to the server; the system's by default.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
    /// Labels for this host (e.g. `env = "prod"`), sent with the host facts.
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default = "default_proc")]
    pub(crate) procfs_root: PathBuf,
    #[serde(default = "default_sys")]
    pub(crate) sysfs_root: PathBuf,
    #[serde(default = "default_rootfs")]
    pub(crate) rootfs: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/sysward-agent")
}
fn default_proc() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_sys() -> PathBuf {
    PathBuf::from("/sys")
}
fn default_rootfs() -> PathBuf {
    PathBuf::from("/")
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            hostname: None,
            labels: BTreeMap::new(),
            procfs_root: default_proc(),
            sysfs_root: default_sys(),
            rootfs: default_rootfs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalsSection {
    #[serde(default = "d_critical", deserialize_with = "duration")]
    critical: Duration,
    #[serde(default = "d_standard", deserialize_with = "duration")]
    standard: Duration,
    #[serde(default = "d_intensive", deserialize_with = "duration")]
    intensive: Duration,
    #[serde(default = "d_static", deserialize_with = "duration", rename = "static")]
    static_: Duration,
}

fn d_critical() -> Duration {
    Duration::from_secs(30)
}
fn d_standard() -> Duration {
    Duration::from_secs(60)
}
fn d_intensive() -> Duration {
    Duration::from_secs(300)
}
fn d_static() -> Duration {
    Duration::from_secs(3600)
}

impl Default for IntervalsSection {
    fn default() -> Self {
        Self {
            critical: d_critical(),
            standard: d_standard(),
            intensive: d_intensive(),
            static_: d_static(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TierName {
    Critical,
    Standard,
    Intensive,
    Static,
}

#[derive(Debug, Deserialize)]
struct CollectorSection {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tier: Option<TierName>,
    #[serde(default)]
    interval: Option<DurationValue>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    /// Every other key: the collector's own settings, which it checks itself.
    // Flattened, so unknown keys cannot be refused by serde here (and toml's spans do not
    // survive flattening): the collector refuses them and `find_key_line` finds the line.
    #[serde(flatten)]
    settings: toml::Table,
}

#[derive(Debug, Clone, Copy)]
struct DurationValue(Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration(d).map(DurationValue)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BufferKind {
    /// The durable disk spool.
    Disk,
    /// A bounded queue in memory: lost on restart.
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BufferSection {
    #[serde(default = "d_kind")]
    kind: BufferKind,
    /// Default: `state_dir/spool`.
    #[serde(default)]
    dir: Option<PathBuf>,
    #[serde(default = "d_max_disk", deserialize_with = "size")]
    max_disk: u64,
    #[serde(default = "d_max_age", deserialize_with = "duration")]
    max_age: Duration,
    #[serde(default = "d_segment", deserialize_with = "size")]
    segment_size: u64,
    /// `"every_batch"` or a duration such as `"100ms"`.
    #[serde(default)]
    fsync: Option<Spanned<String>>,
    #[serde(default = "d_memory_fallback")]
    memory_fallback: usize,
    #[serde(default = "d_fresh", deserialize_with = "duration")]
    fresh_window: Duration,
    #[serde(default = "d_backfill")]
    backfill_per_second: u32,
    /// For `kind = "memory"`: batches kept; past it the oldest go.
    #[serde(default = "d_queue")]
    max_batches: usize,
}

fn d_kind() -> BufferKind {
    BufferKind::Disk
}
fn d_max_disk() -> u64 {
    256 << 20
}
fn d_max_age() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn d_segment() -> u64 {
    4 << 20
}
fn d_memory_fallback() -> usize {
    100
}
fn d_fresh() -> Duration {
    Duration::from_secs(120)
}
fn d_backfill() -> u32 {
    20
}

impl Default for BufferSection {
    fn default() -> Self {
        Self {
            kind: d_kind(),
            dir: None,
            max_disk: d_max_disk(),
            max_age: d_max_age(),
            segment_size: d_segment(),
            fsync: None,
            memory_fallback: d_memory_fallback(),
            fresh_window: d_fresh(),
            backfill_per_second: d_backfill(),
            max_batches: d_queue(),
        }
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_size(&s).map_err(serde::de::Error::custom)
}

/// The buffer as it will run.
#[derive(Debug, Clone)]
pub(crate) enum BufferPlan {
    Disk(SpoolConfig),
    Memory { max_batches: usize },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShipperSection {
    /// How long one push may take.
    #[serde(default = "d_request_timeout", deserialize_with = "duration")]
    pub(crate) request_timeout: Duration,
    /// The longest wait between retries.
    #[serde(default = "d_backoff_max", deserialize_with = "duration")]
    pub(crate) backoff_max: Duration,
}

fn d_queue() -> usize {
    10_000
}
fn d_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn d_backoff_max() -> Duration {
    Duration::from_secs(300)
}

impl Default for ShipperSection {
    fn default() -> Self {
        Self {
            request_timeout: d_request_timeout(),
            backoff_max: d_backoff_max(),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// One collector as it will run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CollectorPlan {
    pub(crate) name: &'static str,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    /// The collector's own settings (every key of its table but the four above).
    pub(crate) settings: toml::Table,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct AgentConfig {
    pub(crate) server_url: String,
    pub(crate) agent: AgentSection,
    pub(crate) collectors: Vec<CollectorPlan>,
    pub(crate) shipper: ShipperSection,
    pub(crate) buffer: BufferPlan,
    /// Every check, from `[checks]` and the files of `[checks] dir`.
    pub(crate) checks: ChecksConfig,
    pub(crate) critical_interval: Duration,
    pub(crate) intensive_interval: Duration,
    pub(crate) static_interval: Duration,
    pub(crate) standard_interval: Duration,
}

/// The spool syncs at most this often by default, and only frames the server has not
/// acked by then: with a reachable server, a steady agent does not sync at all, and a
/// power cut can take at most the last second of unsent batches (the readings of that
/// second would have been lost with the power anyway).
const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Default deadline of a run: the interval, but never more than this.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Short enough for tests that need hundreds of batches; no host needs faster.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl AgentConfig {
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?, path)
    }

    /// Parses and validates `text`, read from `path`, checks included: a check that
    /// cannot be set up (a refused script, a bad URL) makes the whole config invalid.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config = Self::parse_unbuilt_checks(text, path)?;
        if let Err(e) = sysward_checks::build(&config.checks, &check_context(&config.agent)) {
            let table = format!("checks.{}", e.kind);
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: nth_table_line(text, &table, e.index),
                key: Some(table),
                message: e.to_string(),
            });
        }
        Ok(config)
    }

    /// [`AgentConfig::load`] without setting the checks up, for `checks test`, which
    /// reports each check that cannot be set up by itself and runs the others.
    pub(crate) fn load_unbuilt_checks(path: &Path) -> Result<Self, ConfigError> {
        Self::parse_unbuilt_checks(&read(path)?, path)
    }

    /// Everything [`AgentConfig::parse`] checks but whether each check can be set up.
    fn parse_unbuilt_checks(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let src = Source { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's own message carries a source excerpt; keep its first line of prose.
            let message = e.message().to_string();
            let key = toml_error_key(&message, text, e.span());
            src.err(e.span(), key, message)
        })?;
        let server_url = server_url(&raw.server, &src)?;
        check_tier_intervals(&raw.intervals, &src)?;
        let collectors = collector_plans(&raw, &src)?;
        let mut checks = raw.checks.clone();
        if let Some(dir) = &raw.checks.dir {
            load_checks_dir(dir, &mut checks)?;
        }
        let buffer = buffer_plan(&raw.buffer, &raw.agent, &src)?;
        let iv = raw.intervals;
        Ok(Self {
            server_url,
            agent: raw.agent,
            collectors,
            shipper: raw.shipper,
            buffer,
            checks,
            critical_interval: iv.critical,
            intensive_interval: iv.intensive,
            static_interval: iv.static_,
            standard_interval: iv.standard,
        })
    }

    /// The interval of a tier.
    pub(crate) fn tier_interval(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Critical => self.critical_interval,
            Tier::Standard => self.standard_interval,
            Tier::Intensive => self.intensive_interval,
            Tier::Static => self.static_interval,
        }
    }

    /// When a check runs and how long a run may take: its own interval or its tier's
    /// (checks default to the critical tier: an alert waits on them), and its own
    /// timeout or the checks' default, never more than the interval.
    pub(crate) fn check_timing(&self, schedule: &sysward_checks::Schedule) -> (Duration, Duration) {
        let interval = schedule
            .interval
            .unwrap_or_else(|| self.tier_interval(schedule.tier.unwrap_or(Tier::Critical)));
        let timeout = schedule
            .timeout
            .unwrap_or(sysward_checks::DEFAULT_TIMEOUT)
            .min(interval);
        (interval, timeout)
    }

    pub(crate) fn roots(&self) -> Roots {
        Roots {
            proc: self.agent.procfs_root.clone(),
            sys: self.agent.sysfs_root.clone(),
            rootfs: self.agent.rootfs.clone(),
        }
    }

    /// The configured host name, or the system's.
    pub(crate) fn hostname(&self) -> String {
        if let Some(h) = self
            .agent
            .hostname
            .as_ref()
            .filter(|h| !h.trim().is_empty())
        {
            return h.trim().to_string();
        }
        std::fs::read_to_string(self.agent.procfs_root.join("sys/kernel/hostname"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })
}

/// The text of a config file and where it came from, for errors that name the line.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: Option<String>,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key,
            message,
        }
    }

    /// An error about `key` (dotted), on the line where the key, or its table, is.
    fn key_err(&self, key: &str, message: String) -> ConfigError {
        self.err(find_key_line(self.text, key), Some(key.into()), message)
    }
}

fn server_url(server: &ServerSection, src: &Source<'_>) -> Result<String, ConfigError> {
    let url = server
        .url
        .get_ref()
        .trim()
        .trim_end_matches('/')
        .to_string();
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        return Err(src.err(
            Some(server.url.span()),
            Some("server.url".into()),
            format!("{url:?} must be an https:// URL"),
        ));
    }
    Ok(url)
}

fn check_tier_intervals(iv: &IntervalsSection, src: &Source<'_>) -> Result<(), ConfigError> {
    for (key, value) in [
        ("intervals.critical", iv.critical),
        ("intervals.standard", iv.standard),
        ("intervals.intensive", iv.intensive),
        ("intervals.static", iv.static_),
    ] {
        if value < MIN_INTERVAL {
            return Err(src.key_err(key, format!("must be at least {MIN_INTERVAL:?}")));
        }
    }
    Ok(())
}

impl IntervalsSection {
    fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Critical => self.critical,
            Tier::Standard => self.standard,
            Tier::Intensive => self.intensive,
            Tier::Static => self.static_,
        }
    }
}

/// Every enabled collector, in registry order, with its interval, timeout and settings.
fn collector_plans(raw: &RawConfig, src: &Source<'_>) -> Result<Vec<CollectorPlan>, ConfigError> {
    for name in raw.collectors.keys() {
        if !REGISTRY.iter().any(|spec| spec.name == name.get_ref()) {
            let known: Vec<_> = REGISTRY.iter().map(|s| s.name).collect();
            return Err(src.err(
                Some(name.span()),
                Some(format!("collectors.{}", name.get_ref())),
                format!("unknown collector (known: {})", known.join(", ")),
            ));
        }
    }
    let mut plans = Vec::new();
    for spec in REGISTRY {
        let section = raw
            .collectors
            .iter()
            .find(|(k, _)| k.get_ref() == spec.name)
            .map(|(_, v)| v);
        if section
            .and_then(|s| s.enabled)
            .unwrap_or(spec.default_enabled)
        {
            plans.push(collector_plan(spec, section, &raw.intervals, src)?);
        }
    }
    Ok(plans)
}

fn collector_plan(
    spec: &CollectorSpec,
    section: Option<&CollectorSection>,
    intervals: &IntervalsSection,
    src: &Source<'_>,
) -> Result<CollectorPlan, ConfigError> {
    let key = |k: &str| format!("collectors.{}.{k}", spec.name);
    let interval = collector_interval(spec, section, intervals, src)?;
    let timeout = match section.and_then(|s| s.timeout.as_ref()) {
        Some(t) if t.0.is_zero() || t.0 > interval => {
            return Err(src.key_err(
                &key("timeout"),
                format!("must be more than 0 and at most the interval ({interval:?})"),
            ));
        }
        Some(t) => t.0,
        None => interval.min(MAX_DEFAULT_TIMEOUT),
    };
    let settings = section.map(|s| s.settings.clone()).unwrap_or_default();
    // Building validates the settings; collectors do no I/O when built but for the
    // database collectors, whose helper (started here) checks theirs.
    if let Err(message) =
        (spec.configure)(&sysward_collectors::CollectorContext::default(), &settings)
    {
        let bad = key_in_message(&message).unwrap_or_default();
        let which = if bad.is_empty() {
            format!("collectors.{}", spec.name)
        } else {
            key(&bad)
        };
        let at = find_key_line(src.text, &key(&bad));
        return Err(src.err(at, Some(which), message));
    }
    check_inner_limits(spec.name, &settings, timeout, src)?;
    Ok(CollectorPlan {
        name: spec.name,
        interval,
        timeout,
        settings,
    })
}

fn collector_interval(
    spec: &CollectorSpec,
    section: Option<&CollectorSection>,
    intervals: &IntervalsSection,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    let key = |k: &str| format!("collectors.{}.{k}", spec.name);
    match section {
        Some(CollectorSection {
            tier: Some(_),
            interval: Some(_),
            ..
        }) => Err(src.key_err(
            &key("tier"),
            "give either tier or interval, not both".into(),
        )),
        Some(CollectorSection {
            interval: Some(i), ..
        }) if i.0 < MIN_INTERVAL => Err(src.key_err(
            &key("interval"),
            format!("must be at least {MIN_INTERVAL:?}"),
        )),
        Some(CollectorSection {
            interval: Some(i), ..
        }) => Ok(i.0),
        Some(CollectorSection { tier: Some(t), .. }) => Ok(intervals.of(match t {
            TierName::Critical => Tier::Critical,
            TierName::Standard => Tier::Standard,
            TierName::Intensive => Tier::Intensive,
            TierName::Static => Tier::Static,
        })),
        _ => Ok(intervals.of(spec.default_tier)),
    }
}

/// Collectors with a deadline of their own inside a run: it must end before the run's.
fn check_inner_limits(
    name: &str,
    settings: &toml::Table,
    timeout: Duration,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    for (setting, limit_of) in [
        ("statvfs_timeout", "filesystem"),
        ("run_budget", "smart"),
        ("run_budget", "postgres"),
        ("run_budget", "mysql"),
    ] {
        if name != limit_of {
            continue;
        }
        let value = settings
            .get(setting)
            .and_then(|v| v.as_str())
            .and_then(|s| units::parse_duration(s).ok());
        if value.is_some_and(|v| v >= timeout) {
            return Err(src.key_err(
                &format!("collectors.{name}.{setting}"),
                format!(
                    "must be below the collector's timeout ({timeout:?}), or runs are abandoned before they report"
                ),
            ));
        }
    }
    Ok(())
}

fn buffer_plan(
    b: &BufferSection,
    agent: &AgentSection,
    src: &Source<'_>,
) -> Result<BufferPlan, ConfigError> {
    if b.kind == BufferKind::Memory {
        if b.max_batches == 0 {
            return Err(src.key_err("buffer.max_batches", "must be at least 1".into()));
        }
        return Ok(BufferPlan::Memory {
            max_batches: b.max_batches,
        });
    }
    let fsync = fsync_policy(b.fsync.as_ref(), src)?;
    if b.segment_size < 4096 || b.segment_size > b.max_disk / 4 {
        return Err(src.key_err(
            "buffer.segment_size",
            format!(
                "must be at least 4KiB and at most a quarter of max_disk ({} bytes)",
                b.max_disk
            ),
        ));
    }
    Ok(BufferPlan::Disk(SpoolConfig {
        dir: b
            .dir
            .clone()
            .unwrap_or_else(|| agent.state_dir.join("spool")),
        max_disk: b.max_disk,
        max_age: b.max_age,
        segment_size: b.segment_size,
        fsync,
        memory_fallback: b.memory_fallback.max(1),
        fresh_window: b.fresh_window,
        backfill_per_second: b.backfill_per_second,
    }))
}

fn fsync_policy(
    value: Option<&Spanned<String>>,
    src: &Source<'_>,
) -> Result<FsyncPolicy, ConfigError> {
    let Some(v) = value else {
        return Ok(FsyncPolicy::Interval(DEFAULT_FSYNC_INTERVAL));
    };
    if v.get_ref() == "every_batch" {
        return Ok(FsyncPolicy::EveryBatch);
    }
    match units::parse_duration(v.get_ref()) {
        Ok(d) if !d.is_zero() => Ok(FsyncPolicy::Interval(d)),
        _ => Err(src.err(
            Some(v.span()),
            Some("buffer.fsync".into()),
            format!(
                "{:?}: use \"every_batch\" or a duration such as \"100ms\"",
                v.get_ref()
            ),
        )),
    }
}

/// What checks get from the agent: a state directory of their own.
pub(crate) fn check_context(agent: &AgentSection) -> sysward_checks::CheckContext {
    sysward_checks::CheckContext {
        state_dir: agent.state_dir.join("checks"),
        roots: Roots {
            proc: agent.procfs_root.clone(),
            sys: agent.sysfs_root.clone(),
            rootfs: agent.rootfs.clone(),
        },
    }
}

/// Adds the checks of every `*.toml` file in `dir` (sorted by name), each in the form of
/// the `[checks]` table: `[[script]]`, `[[http]]`, ... Errors name the file and line.
fn load_checks_dir(dir: &Path, into: &mut ChecksConfig) -> Result<(), ConfigError> {
    let fail = |file: &Path, line, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        key: None,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| fail(dir, None, format!("cannot list the checks directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| fail(&file, None, format!("cannot read: {e}")))?;
        let more: ChecksConfig = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            fail(&file, line, e.message().to_string())
        })?;
        if more.dir.is_some() {
            return Err(fail(
                &file,
                None,
                "a checks file cannot name another directory".into(),
            ));
        }
        into.env.extend(more.env);
        into.script.extend(more.script);
        into.process.extend(more.process);
        into.tcp.extend(more.tcp);
        into.http.extend(more.http);
        into.tls.extend(more.tls);
        into.dns.extend(more.dns);
        into.ping.extend(more.ping);
        into.log.extend(more.log);
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// The line of `table.key` (or the table's header when the key is absent), for checks made
/// after parsing, where toml's spans are gone.
fn find_key_line(text: &str, dotted: &str) -> Option<std::ops::Range<usize>> {
    let (table, key) = dotted.rsplit_once('.')?;
    let mut in_table = false;
    let mut offset = 0;
    let mut header = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_matches(|c| c == '[' || c == ']').trim() == table;
            if in_table {
                header = Some(offset..offset);
            }
        } else if in_table && t.split('=').next().map(str::trim) == Some(key) {
            return Some(offset..offset);
        }
        offset += line.len();
    }
    header
}

/// The line of the `index`-th (from 0) `[[table]]` header of `text`, if it has that
/// many: a check from a file of `[checks] dir` comes after them and has none here.
fn nth_table_line(text: &str, table: &str, index: usize) -> Option<usize> {
    let header = format!("[[{table}]]");
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.split('#').next().unwrap_or("").trim().replace(' ', "") == header)
        .nth(index)
        .map(|(at, _)| at + 1)
}

/// The key a toml error is about. A field error names it in backticks; a value error
/// (`invalid type: integer `5`, expected ...`) names the value there instead, so the key
/// comes from the text of the line the error points at.
fn toml_error_key(
    message: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
) -> Option<String> {
    if ["unknown field", "missing field", "duplicate key"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        return key_in_message(message);
    }
    let start = span?.start;
    let line_start = text.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// toml names the offending key in backticks (`unknown field `x``); pick it out.
fn key_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MINIMAL: &str = "[server]\nurl = \"https://mon.example:8443\"\n";

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, Path::new("/etc/sysward/agent.toml"))
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server_url, "https://mon.example:8443");
        let cpu = c.collectors.iter().find(|p| p.name == "cpu").unwrap();
        assert_eq!(cpu.interval, Duration::from_secs(30));
        assert_eq!(cpu.timeout, Duration::from_secs(10));
    }

    #[test]
    fn tiers_and_intervals() {
        let c = parse(&format!(
            "{MINIMAL}[intervals]\nstandard = \"2m\"\n[collectors.cpu]\ntier = \"standard\"\n[collectors.load]\ninterval = \"15s\"\ntimeout = \"2s\"\n[collectors.memory]\nenabled = false\n"
        ))
        .unwrap();
        let get = |n| c.collectors.iter().find(|p| p.name == n).cloned();
        assert_eq!(get("cpu").unwrap().interval, Duration::from_secs(120));
        assert_eq!(get("load").unwrap().timeout, Duration::from_secs(2));
        assert!(get("memory").is_none());
    }

    #[test]
    fn check_timing_follows_tiers_and_stays_within_the_interval() {
        let c = parse(&format!(
            "{MINIMAL}[intervals]\ncritical = \"4s\"\nstandard = \"2m\"\n"
        ))
        .unwrap();
        let timing = |interval: Option<u64>, tier: Option<Tier>, timeout: Option<u64>| {
            c.check_timing(&sysward_checks::Schedule {
                interval: interval.map(Duration::from_secs),
                tier,
                timeout: timeout.map(Duration::from_secs),
            })
        };
        let secs = |a: u64, b: u64| (Duration::from_secs(a), Duration::from_secs(b));
        assert_eq!(timing(None, None, None), secs(4, 4));
        assert_eq!(timing(None, Some(Tier::Standard), None), secs(120, 10));
        assert_eq!(
            timing(Some(30), Some(Tier::Standard), Some(20)),
            secs(30, 20)
        );
        assert_eq!(timing(Some(5), None, Some(20)), secs(5, 5));
    }

    #[test]
    fn a_check_that_cannot_be_set_up_names_its_line() {
        let text = format!(
            "{MINIMAL}[[checks.tcp]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n\n\
             [[ checks.tcp ]] # the second\nname = \"b\"\naddress = \"no port\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert_eq!(e.key.as_deref(), Some("checks.tcp"));
        assert!(
            e.to_string().contains("check tcp[1] \"b\": address:"),
            "{e}"
        );
        assert_eq!(nth_table_line(&text, "checks.tcp", 2), None);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse(&format!(
            "{MINIMAL}[agent]\nstate_dir = \"/x\"\nbogus = 1\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("bogus"), "{e}");
        assert!(
            e.to_string().starts_with("/etc/sysward/agent.toml:5"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_names_line() {
        let e = parse(&format!(
            "{MINIMAL}[intervals]\ncritical = \"30 parsecs\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("30 parsecs"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key_not_the_value() {
        let e = parse(&format!("{MINIMAL}[agent]\nstate_dir = 5\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("state_dir")),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}[agent\n")).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), None), "{e}");
    }

    #[test]
    fn missing_url_is_named() {
        let e = parse("[server]\n").unwrap_err();
        assert!(e.message.contains("url"), "{e}");
        let e = parse("[agent]\n").unwrap_err();
        assert!(e.message.contains("server"), "{e}");
        let e = parse("[server]\nurl = \"http://plain\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("server.url")),
            "{e}"
        );
    }

    #[test]
    fn unknown_collector_and_conflicts() {
        let e = parse(&format!("{MINIMAL}[collectors.cpux]\nenabled = true\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("collectors.cpux")),
            "{e}"
        );
        let e = parse(&format!(
            "{MINIMAL}[collectors.cpu]\ntier = \"standard\"\ninterval = \"5s\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = parse(&format!(
            "{MINIMAL}[collectors.cpu]\ninterval = \"5s\"\ntimeout = \"6s\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors.cpu.timeout"), "{e}");
        let e = parse(&format!("{MINIMAL}[intervals]\ncritical = \"10ms\"\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("intervals.critical")),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}[buffer]\nfsync = \"sometimes\"\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("buffer.fsync")),
            "{e}"
        );
        let e = parse(&format!(
            "{MINIMAL}[buffer]\nmax_disk = \"1MiB\"\nsegment_size = \"1MiB\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(5), Some("buffer.segment_size")),
            "{e}"
        );
    }

    #[test]
    fn collector_settings_pass_through_and_are_checked() {
        let c = parse(&format!("{MINIMAL}[collectors.processes]\ntop = 3\n")).unwrap();
        let p = c.collectors.iter().find(|p| p.name == "processes").unwrap();
        assert_eq!(p.settings.get("top").and_then(|v| v.as_integer()), Some(3));
        let e = parse(&format!(
            "{MINIMAL}[collectors.processes]\ntier = \"standard\"\ntopp = 3\n"
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(5), Some("collectors.processes.topp")),
            "{e}"
        );
        assert!(e.message.contains("allowed"), "{e}");
        let e = parse(&format!("{MINIMAL}[collectors.cpu]\nfoo = 1\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors.cpu.foo"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}[collectors.filesystem]\ntimeout = \"2s\"\nstatvfs_timeout = \"3s\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("collectors.filesystem.statvfs_timeout"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,200}") {
            let _ = parse(&text);
            let _ = parse(&format!("{MINIMAL}{text}"));
        }
    }
}
