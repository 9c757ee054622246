//! `server.toml`: every key, its default, and validation that names the file, line and key.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};
use sysward_proto::{Limits, units};

use crate::{
    query::{QueryLimits, QueryOptions},
    store::{Retention, StoreConfig},
};

/// The server's whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub query: QueryConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    /// `[notify]`: receivers, routes, escalation, suppression.
    #[serde(default)]
    pub notify: std::sync::Arc<crate::notify::NotifyConfig>,
    /// `[health]`: when the server calls itself degraded, and its own metrics.
    #[serde(default)]
    pub health: crate::health::HealthConfig,
    /// `[grafana]`: provision the datasource and dashboards in a Grafana.
    #[serde(default)]
    pub grafana: Option<crate::grafana::GrafanaConfig>,
    /// `[[remote_write]]`: targets every stored sample is forwarded to.
    #[serde(default)]
    pub remote_write: Vec<crate::remote_write::RemoteWriteConfig>,
    /// `[ui]`: the console's sign-in sessions.
    #[serde(default)]
    pub ui: UiConfig,
    /// The file it was read from (a reload reads it again).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[rules]`: alerting and recording rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Every `*.yml`/`*.yaml` file in it is a rule file (Prometheus' format); a directory
    /// that does not exist means no rules.
    #[serde(default = "d_rules_dir")]
    pub dir: PathBuf,
    /// Interval of groups that do not set their own.
    #[serde(default = "d_rules_interval", deserialize_with = "duration")]
    pub evaluation_interval: Duration,
    /// A batch touching what a group reads evaluates it at once, at most this often.
    #[serde(default = "d_rules_gap", deserialize_with = "duration")]
    pub trigger_gap: Duration,
    /// How long alert transitions stay in the history.
    #[serde(default = "d_rules_history", deserialize_with = "duration")]
    pub history_retention: Duration,
    /// `$externalLabels` in templates.
    #[serde(default)]
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// `$externalURL` in templates: where operators reach this server.
    #[serde(default)]
    pub external_url: Option<String>,
}

fn d_rules_dir() -> PathBuf {
    PathBuf::from("/etc/sysward/rules")
}
fn d_rules_interval() -> Duration {
    crate::rules::EngineConfig::default().interval
}
fn d_rules_gap() -> Duration {
    crate::rules::EngineConfig::default().trigger_gap
}
fn d_rules_history() -> Duration {
    crate::rules::EngineConfig::default().history_retention
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            dir: d_rules_dir(),
            evaluation_interval: d_rules_interval(),
            trigger_gap: d_rules_gap(),
            history_retention: d_rules_history(),
            external_labels: Default::default(),
            external_url: None,
        }
    }
}

/// `[ui]`: sign-in sessions of the console (`/ui/`) and the limits on failed sign-ins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// A session not used for this long is over.
    #[serde(default = "d_ui_idle", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// A session is over this long after its sign-in, however busy.
    #[serde(default = "d_ui_lifetime", deserialize_with = "duration")]
    pub session_lifetime: Duration,
    /// Failed sign-ins for one user name within `failure_window` before further attempts
    /// for it are refused until the window ends.
    #[serde(default = "d_ui_user_failures")]
    pub max_failures_per_user: u32,
    /// The same for one client address.
    #[serde(default = "d_ui_address_failures")]
    pub max_failures_per_address: u32,
    /// The window the failures are counted in, from the first.
    #[serde(default = "d_ui_failure_window", deserialize_with = "duration")]
    pub failure_window: Duration,
    /// Whether an admin may make a dashboard public: readable by anyone, without
    /// credentials, at `/ui/#/public/ID`.
    #[serde(default)]
    pub public_dashboards: bool,
}

fn d_ui_idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn d_ui_lifetime() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn d_ui_user_failures() -> u32 {
    5
}
fn d_ui_address_failures() -> u32 {
    20
}
fn d_ui_failure_window() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            idle_timeout: d_ui_idle(),
            session_lifetime: d_ui_lifetime(),
            max_failures_per_user: d_ui_user_failures(),
            max_failures_per_address: d_ui_address_failures(),
            failure_window: d_ui_failure_window(),
            public_dashboards: false,
        }
    }
}

impl UiConfig {
    fn validate(&self, path: &Path) -> anyhow::Result<()> {
        for (key, value) in [
            ("idle_timeout", self.idle_timeout),
            ("session_lifetime", self.session_lifetime),
            ("failure_window", self.failure_window),
        ] {
            if value.is_zero() {
                bail!("{}: [ui] {key} must be longer than 0", path.display());
            }
        }
        for (key, value) in [
            ("max_failures_per_user", self.max_failures_per_user),
            ("max_failures_per_address", self.max_failures_per_address),
        ] {
            if value == 0 {
                bail!("{}: [ui] {key} must be at least 1", path.display());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Address and port of the HTTPS API.
    #[serde(default = "default_listen")]
    pub address: SocketAddr,
    /// The URL agents reach this server at; goes into join tokens.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: default_listen(),
            public_url: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra names and addresses for the generated server certificate, besides localhost,
    /// 127.0.0.1, ::1 and the host name.
    #[serde(default)]
    pub san: Vec<String>,
    /// How long the agent certificates signed at enrollment and renewal last.
    #[serde(default = "d_agent_cert_validity", deserialize_with = "duration")]
    pub agent_cert_validity: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            san: Vec::new(),
            agent_cert_validity: d_agent_cert_validity(),
        }
    }
}

fn d_agent_cert_validity() -> Duration {
    crate::pki::AGENT_CERT_VALIDITY
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Holds the PKI, the state database and the store.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Series one agent may have; new series past it are dropped, counted and logged.
    #[serde(default = "d_max_series_per_agent")]
    pub max_series_per_agent: usize,
    /// Points this far behind their series' newest point still enter the raw tier; older
    /// ones go to the rollups only.
    #[serde(default = "d_ooo_window", deserialize_with = "duration")]
    pub out_of_order_window: Duration,
    /// An agent's recent points are compressed into chunks once the oldest is this old.
    #[serde(default = "d_chunk_span", deserialize_with = "duration")]
    pub chunk_span: Duration,
    /// How long a batch identity is remembered for de-duplication after its agent boot
    /// last sent one; at least the agents' `[buffer] max_age`.
    #[serde(default = "d_dedup_window", deserialize_with = "duration")]
    pub dedup_window: Duration,
    /// How often expired data is deleted and its pages given back.
    #[serde(default = "d_purge_interval", deserialize_with = "duration")]
    pub purge_interval: Duration,
    /// Below this much free space on the data directory's file system, ingest is refused
    /// with 503 and `Retry-After` (agents keep spooling) before SQLite meets a full disk.
    #[serde(default = "d_min_free", deserialize_with = "size")]
    pub min_free: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            max_series_per_agent: d_max_series_per_agent(),
            out_of_order_window: d_ooo_window(),
            chunk_span: d_chunk_span(),
            dedup_window: d_dedup_window(),
            purge_interval: d_purge_interval(),
            min_free: d_min_free(),
        }
    }
}

fn d_max_series_per_agent() -> usize {
    StoreConfig::default().max_series_per_agent
}
fn d_ooo_window() -> Duration {
    StoreConfig::default().out_of_order_window
}
fn d_chunk_span() -> Duration {
    StoreConfig::default().chunk_span
}
fn d_dedup_window() -> Duration {
    StoreConfig::default().dedup_window
}
fn d_min_free() -> u64 {
    256 << 20
}
fn d_purge_interval() -> Duration {
    StoreConfig::default().purge_interval
}

/// `[retention]`: how long each tier keeps data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Samples as received.
    #[serde(default = "d_keep_raw", deserialize_with = "duration")]
    pub raw: Duration,
    /// 5-minute rollups.
    #[serde(rename = "5m", default = "d_keep_5m", deserialize_with = "duration")]
    pub m5: Duration,
    /// Hourly rollups.
    #[serde(rename = "1h", default = "d_keep_1h", deserialize_with = "duration")]
    pub h1: Duration,
    /// Daily rollups.
    #[serde(rename = "1d", default = "d_keep_1d", deserialize_with = "duration")]
    pub d1: Duration,
    /// Monthly rollups.
    #[serde(rename = "1mo", default = "d_keep_1mo", deserialize_with = "duration")]
    pub mo1: Duration,
    /// Check results (events); the raw tier's retention when not set.
    #[serde(default, deserialize_with = "optional_duration")]
    pub events: Option<Duration>,
}

fn d_keep_raw() -> Duration {
    Retention::default().keep[0]
}
fn d_keep_5m() -> Duration {
    Retention::default().keep[1]
}
fn d_keep_1h() -> Duration {
    Retention::default().keep[2]
}
fn d_keep_1d() -> Duration {
    Retention::default().keep[3]
}
fn d_keep_1mo() -> Duration {
    Retention::default().keep[4]
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw: d_keep_raw(),
            m5: d_keep_5m(),
            h1: d_keep_1h(),
            d1: d_keep_1d(),
            mo1: d_keep_1mo(),
            events: None,
        }
    }
}

impl ServerConfig {
    /// The store's settings from `[storage]` and `[retention]`.
    pub fn store_config(&self) -> StoreConfig {
        let r = &self.retention;
        StoreConfig {
            retention: Retention {
                keep: [r.raw, r.m5, r.h1, r.d1, r.mo1],
            },
            out_of_order_window: self.storage.out_of_order_window,
            chunk_span: self.storage.chunk_span,
            max_series_per_agent: self.storage.max_series_per_agent,
            events_retention: r.events.unwrap_or(r.raw),
            dedup_window: self.storage.dedup_window,
            purge_interval: self.storage.purge_interval,
            ..StoreConfig::default()
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sysward-server")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "d_compressed", deserialize_with = "size")]
    pub max_body: u64,
    #[serde(default = "d_decompressed", deserialize_with = "size")]
    pub max_decompressed_body: u64,
    #[serde(default = "d_series")]
    pub max_series_per_batch: usize,
    #[serde(default = "d_points")]
    pub max_points_per_batch: usize,
    #[serde(default = "d_labels")]
    pub max_labels_per_series: usize,
    #[serde(default = "d_label_len")]
    pub max_label_length: usize,
    /// Ingest requests handled at once; past this the server answers 429 with Retry-After.
    #[serde(default = "d_concurrent")]
    pub max_concurrent_ingests: usize,
}

fn d_compressed() -> u64 {
    Limits::default().max_compressed_bytes as u64
}
fn d_decompressed() -> u64 {
    Limits::default().max_decompressed_bytes as u64
}
fn d_series() -> usize {
    Limits::default().max_series
}
fn d_points() -> usize {
    Limits::default().max_points
}
fn d_labels() -> usize {
    Limits::default().max_labels
}
fn d_label_len() -> usize {
    Limits::default().max_label_len
}
fn d_concurrent() -> usize {
    8
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body: d_compressed(),
            max_decompressed_body: d_decompressed(),
            max_series_per_batch: d_series(),
            max_points_per_batch: d_points(),
            max_labels_per_series: d_labels(),
            max_label_length: d_label_len(),
            max_concurrent_ingests: d_concurrent(),
        }
    }
}

impl LimitsConfig {
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_compressed_bytes: usize::try_from(self.max_body).unwrap_or(usize::MAX),
            max_decompressed_bytes: usize::try_from(self.max_decompressed_body)
                .unwrap_or(usize::MAX),
            max_series: self.max_series_per_batch,
            max_points: self.max_points_per_batch,
            max_labels: self.max_labels_per_series,
            max_label_len: self.max_label_length,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// A fixed admin bearer token. Without it the server makes one on first start and
    /// prints it once.
    #[serde(default)]
    pub token: Option<String>,
    /// Default lifetime of join tokens made by `token create`.
    #[serde(default = "d_token_ttl", deserialize_with = "duration")]
    pub join_token_ttl: Duration,
}

fn d_token_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

// By hand, not derived: a derived default would make the TTL zero when `[admin]` is
// absent, and every token expired at birth.
impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            join_token_ttl: d_token_ttl(),
        }
    }
}

/// `[query]`: what one PromQL query may cost, apart from ingest's `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Samples one query may hold in memory at once.
    #[serde(default = "d_q_samples")]
    pub max_samples: usize,
    /// Wall time of one query; a request's `timeout` parameter can only shorten it.
    #[serde(default = "d_q_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Steps of a range query (Prometheus' 11,000).
    #[serde(default = "d_q_points")]
    pub max_points_per_series: usize,
    /// Series one selector may match.
    #[serde(default = "d_q_series")]
    pub max_series_per_selector: usize,
    /// Queries evaluated at once; more wait for a turn within their timeout.
    #[serde(default = "d_q_concurrent")]
    pub max_concurrent: usize,
    /// How far an instant selector looks back for a sample.
    #[serde(default = "d_q_lookback", deserialize_with = "duration")]
    pub lookback_delta: Duration,
}

fn d_q_samples() -> usize {
    QueryLimits::default().max_samples
}
fn d_q_timeout() -> Duration {
    QueryLimits::default().timeout
}
fn d_q_points() -> usize {
    QueryLimits::default().max_points_per_series
}
fn d_q_series() -> usize {
    QueryLimits::default().max_series_per_selector
}
fn d_q_concurrent() -> usize {
    8
}
fn d_q_lookback() -> Duration {
    Duration::from_millis(QueryOptions::default().lookback_ms.unsigned_abs())
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_samples: d_q_samples(),
            timeout: d_q_timeout(),
            max_points_per_series: d_q_points(),
            max_series_per_selector: d_q_series(),
            max_concurrent: d_q_concurrent(),
            lookback_delta: d_q_lookback(),
        }
    }
}

impl QueryConfig {
    /// The engine's options (no tier asked for).
    pub fn options(&self) -> QueryOptions {
        QueryOptions {
            lookback_ms: i64::try_from(self.lookback_delta.as_millis()).unwrap_or(i64::MAX),
            limits: QueryLimits {
                max_samples: self.max_samples,
                max_points_per_series: self.max_points_per_series,
                max_series_per_selector: self.max_series_per_selector,
                timeout: self.timeout,
            },
            tier: None,
        }
    }

    fn validate(&self, path: &Path) -> anyhow::Result<()> {
        for (key, value) in [
            ("max_samples", self.max_samples),
            ("max_points_per_series", self.max_points_per_series),
            ("max_series_per_selector", self.max_series_per_selector),
            ("max_concurrent", self.max_concurrent),
        ] {
            if value == 0 {
                bail!("{}: [query] {key} must be at least 1", path.display());
            }
        }
        for (key, value) in [
            ("timeout", self.timeout),
            ("lookback_delta", self.lookback_delta),
        ] {
            if value.is_zero() {
                bail!("{}: [query] {key} must be longer than 0", path.display());
            }
        }
        Ok(())
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_size(&s).map_err(serde::de::Error::custom)
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl ServerConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Self::parse(&text, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut config: ServerConfig = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        if let Some(notify) = std::sync::Arc::get_mut(&mut config.notify) {
            notify.prepare(path).map_err(|e| anyhow::anyhow!(e))?;
        }
        let r = &config.retention;
        for (key, keep) in [
            ("raw", r.raw),
            ("5m", r.m5),
            ("1h", r.h1),
            ("1d", r.d1),
            ("1mo", r.mo1),
            ("events", r.events.unwrap_or(r.raw)),
        ] {
            if keep.is_zero() {
                bail!(
                    "{}: [retention] {key} must be longer than 0",
                    path.display()
                );
            }
        }
        for (key, value) in [
            ("dedup_window", config.storage.dedup_window),
            ("purge_interval", config.storage.purge_interval),
        ] {
            if value.is_zero() {
                bail!("{}: [storage] {key} must be longer than 0", path.display());
            }
        }
        if config.storage.max_series_per_agent == 0 {
            bail!(
                "{}: [storage] max_series_per_agent must be at least 1",
                path.display()
            );
        }
        if config.limits.max_concurrent_ingests == 0 {
            bail!(
                "{}: [limits] max_concurrent_ingests must be at least 1",
                path.display()
            );
        }
        config.query.validate(path)?;
        config.ui.validate(path)?;
        config
            .health
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Shorter than this, the renewal schedule (a third of the life, rate limits) would
        // have agents renew all the time.
        if config.tls.agent_cert_validity < Duration::from_secs(10) {
            bail!(
                "{}: [tls] agent_cert_validity must be at least 10s",
                path.display()
            );
        }
        if let Some(grafana) = &config.grafana {
            grafana
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        crate::remote_write::resolve_all(&config.remote_write)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (key, value) in [
            ("evaluation_interval", config.rules.evaluation_interval),
            ("history_retention", config.rules.history_retention),
        ] {
            if value.is_zero() {
                bail!("{}: [rules] {key} must be longer than 0", path.display());
            }
        }
        Ok(config)
    }

    /// The rule engine's settings.
    pub fn rule_engine_config(&self) -> crate::rules::EngineConfig {
        let r = &self.rules;
        crate::rules::EngineConfig {
            dir: Some(r.dir.clone()),
            interval: r.evaluation_interval,
            trigger_gap: r.trigger_gap,
            history_retention: r.history_retention,
            env: crate::rules::RuleEnv {
                query: self.query.options(),
                external_labels: r.external_labels.clone(),
                external_url: r.external_url.clone().unwrap_or_else(|| self.public_url()),
            },
        }
    }

    /// Where operators reach the server: in notifications' links.
    pub fn external_url(&self) -> String {
        self.rules
            .external_url
            .clone()
            .unwrap_or_else(|| self.public_url())
    }

    /// The URL that goes into join tokens.
    pub fn public_url(&self) -> String {
        if let Some(url) = &self.listen.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let addr = self.listen.address;
        let host = if addr.ip().is_unspecified() {
            crate::pki::hostname()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!("https://{host}:{}", addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = ServerConfig::parse("", Path::new("s.toml")).unwrap();
        // Regression: a derived Default made join tokens expire at birth without [admin].
        assert_eq!(c.admin.join_token_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(c.listen.address.port(), 8443);
        let err = ServerConfig::parse("[listen]\nbogus = 1\n", Path::new("s.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("s.toml") && msg.contains("line 2") && msg.contains("bogus"),
            "{msg}"
        );
        let err = ServerConfig::parse("[limits]\nmax_body = \"4 parsecs\"\n", Path::new("s.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn retention_and_store_settings() {
        let c = ServerConfig::parse("", Path::new("s.toml")).unwrap();
        assert_eq!(c.store_config().retention, Retention::default());
        let text = "[storage]\nmax_series_per_agent = 10\nout_of_order_window = \"10m\"\n\
                    [retention]\nraw = \"2d\"\n1mo = \"520w\"\n";
        let s = ServerConfig::parse(text, Path::new("s.toml"))
            .unwrap()
            .store_config();
        assert_eq!(s.max_series_per_agent, 10);
        assert_eq!(s.out_of_order_window, Duration::from_secs(600));
        assert_eq!(s.retention.keep[0], Duration::from_secs(2 * 86_400));
        assert_eq!(s.retention.keep[4], Duration::from_secs(520 * 7 * 86_400));
        assert_eq!(s.retention.keep[1], Retention::default().keep[1]);
        let err =
            ServerConfig::parse("[retention]\n5m = \"0s\"\n", Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("5m"), "{err}");
        let err =
            ServerConfig::parse("[retention]\n2m = \"1d\"\n", Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn query_settings() {
        let c = ServerConfig::parse("", Path::new("s.toml")).unwrap();
        assert_eq!(c.query.options(), QueryOptions::default());
        let text = "[query]\nmax_samples = 10\ntimeout = \"5s\"\nlookback_delta = \"1m\"\n";
        let o = ServerConfig::parse(text, Path::new("s.toml"))
            .unwrap()
            .query
            .options();
        assert_eq!(o.limits.max_samples, 10);
        assert_eq!(o.limits.timeout, Duration::from_secs(5));
        assert_eq!(o.lookback_ms, 60_000);
        let err =
            ServerConfig::parse("[query]\nmax_concurrent = 0\n", Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("[query] max_concurrent"), "{err}");
        let err =
            ServerConfig::parse("[query]\n\nmax_sample = 1\n", Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn agent_certificate_validity() {
        let c = ServerConfig::parse("", Path::new("s.toml")).unwrap();
        assert_eq!(c.tls.agent_cert_validity, Duration::from_secs(730 * 86_400));
        let c = ServerConfig::parse(
            "[tls]\nagent_cert_validity = \"90d\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(c.tls.agent_cert_validity, Duration::from_secs(90 * 86_400));
        let err = ServerConfig::parse("[tls]\nagent_cert_validity = \"5s\"\n", Path::new("s.toml"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("[tls] agent_cert_validity must be at least 10s"),
            "{err}"
        );
    }
}
