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
use sysward_collectors::{REGISTRY, Roots, Tier};
use sysward_proto::units;
use toml::Spanned;

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
#[serde(deny_unknown_fields)]
struct CollectorSection {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tier: Option<Spanned<TierName>>,
    #[serde(default)]
    interval: Option<Spanned<DurationValue>>,
    #[serde(default)]
    timeout: Option<Spanned<DurationValue>>,
}

#[derive(Debug, Clone, Copy)]
struct DurationValue(Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration(d).map(DurationValue)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShipperSection {
    /// Batches kept in memory while the server is unreachable; past it the oldest go.
    #[serde(default = "d_queue")]
    pub(crate) queue_max_batches: usize,
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
            queue_max_batches: d_queue(),
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
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct AgentConfig {
    pub(crate) server_url: String,
    pub(crate) agent: AgentSection,
    pub(crate) collectors: Vec<CollectorPlan>,
    pub(crate) shipper: ShipperSection,
    pub(crate) standard_interval: Duration,
}

/// Default deadline of a run: the interval, but never more than this.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl AgentConfig {
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
            ConfigError {
                file: path.to_path_buf(),
                line: span.map(|s| line_of(text, s.start)),
                key,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's own message carries a source excerpt; keep its first line of prose.
            let message = e.message().to_string();
            let key = key_in_message(&message);
            err(e.span(), key, message)
        })?;
        let url = raw
            .server
            .url
            .get_ref()
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return Err(err(
                Some(raw.server.url.span()),
                Some("server.url".into()),
                format!("{url:?} must be an https:// URL"),
            ));
        }
        let iv = &raw.intervals;
        for (key, value) in [
            ("intervals.critical", iv.critical),
            ("intervals.standard", iv.standard),
            ("intervals.intensive", iv.intensive),
            ("intervals.static", iv.static_),
        ] {
            if value < MIN_INTERVAL {
                return Err(err(
                    find_key_line(text, key),
                    Some(key.into()),
                    format!("must be at least {MIN_INTERVAL:?}"),
                ));
            }
        }
        let tier_interval = |tier: Tier| match tier {
            Tier::Critical => iv.critical,
            Tier::Standard => iv.standard,
            Tier::Intensive => iv.intensive,
            Tier::Static => iv.static_,
        };
        for name in raw.collectors.keys() {
            if !REGISTRY.iter().any(|spec| spec.name == name.get_ref()) {
                let known: Vec<_> = REGISTRY.iter().map(|s| s.name).collect();
                return Err(err(
                    Some(name.span()),
                    Some(format!("collectors.{}", name.get_ref())),
                    format!("unknown collector (known: {})", known.join(", ")),
                ));
            }
        }
        let mut collectors = Vec::new();
        for spec in REGISTRY {
            let section = raw
                .collectors
                .iter()
                .find(|(k, _)| k.get_ref() == spec.name)
                .map(|(_, v)| v);
            let enabled = section
                .and_then(|s| s.enabled)
                .unwrap_or(spec.default_enabled);
            if !enabled {
                continue;
            }
            let key = |k: &str| Some(format!("collectors.{}.{k}", spec.name));
            let interval = match section {
                Some(CollectorSection {
                    tier: Some(t),
                    interval: Some(_),
                    ..
                }) => {
                    return Err(err(
                        Some(t.span()),
                        key("tier"),
                        "give either tier or interval, not both".into(),
                    ));
                }
                Some(CollectorSection {
                    interval: Some(i), ..
                }) => {
                    if i.get_ref().0 < MIN_INTERVAL {
                        return Err(err(
                            Some(i.span()),
                            key("interval"),
                            format!("must be at least {MIN_INTERVAL:?}"),
                        ));
                    }
                    i.get_ref().0
                }
                Some(CollectorSection { tier: Some(t), .. }) => tier_interval(match t.get_ref() {
                    TierName::Critical => Tier::Critical,
                    TierName::Standard => Tier::Standard,
                    TierName::Intensive => Tier::Intensive,
                    TierName::Static => Tier::Static,
                }),
                _ => tier_interval(spec.default_tier),
            };
            let timeout = match section.and_then(|s| s.timeout.as_ref()) {
                Some(t) if t.get_ref().0.is_zero() || t.get_ref().0 > interval => {
                    return Err(err(
                        Some(t.span()),
                        key("timeout"),
                        format!("must be more than 0 and at most the interval ({interval:?})"),
                    ));
                }
                Some(t) => t.get_ref().0,
                None => interval.min(MAX_DEFAULT_TIMEOUT),
            };
            collectors.push(CollectorPlan {
                name: spec.name,
                interval,
                timeout,
            });
        }
        if raw.shipper.queue_max_batches == 0 {
            return Err(err(
                find_key_line(text, "shipper.queue_max_batches"),
                Some("shipper.queue_max_batches".into()),
                "must be at least 1".into(),
            ));
        }
        Ok(Self {
            server_url: url,
            agent: raw.agent,
            collectors,
            shipper: raw.shipper,
            standard_interval: iv.standard,
        })
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
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,200}") {
            let _ = parse(&text);
            let _ = parse(&format!("{MINIMAL}{text}"));
        }
    }
}
