//! Storage behind one trait, so that ingest, query and alerting never see how samples are
//! kept.
//!
//! Contract: [`Store::ingest`] returns only after the batch is durable, and stores each
//! `(agent_id, boot_id, seq)` once; a repeat returns [`IngestOutcome::Duplicate`] and
//! changes nothing.
//!
//! The implementation is [`TieredStore`]: a head of recent points per series (durable in a
//! SQLite log before the ack), cut into compressed chunks ([`codec`]) and merged into four
//! rollup tiers, each with its own retention. See `tiered.rs` for the layout.

pub mod codec;
mod index;
mod rollup;
mod tiered;

use std::{
    collections::BTreeMap,
    fmt,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

pub(crate) use rollup::inc as counter_increase;
pub use rollup::total_increase;
pub use sysward_proto::SeriesKind;
use sysward_proto::{Event, Series};
pub use tiered::{ForwardPosition, ForwardRow, TieredStore};

/// The label under which postings keep the metric name, as Prometheus calls it.
pub const NAME_LABEL: &str = "__name__";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("store database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Stored data cannot be read back.
    #[error("store data is damaged: {0}")]
    Corrupt(String),
    /// A stored chunk cannot be decoded.
    #[error("store chunk is damaged: {0}")]
    Codec(#[from] codec::CodecError),
    /// A request the store cannot answer as asked.
    #[error("{0}")]
    Invalid(String),
    /// The group commit that carried the batch failed (see `tiered.rs`); nothing of the
    /// batch was stored.
    #[error("store commit failed: {0}")]
    Commit(String),
    /// A read would pass a [`ReadBudget`] limit; `limit` names it.
    #[error("{message}")]
    Limit {
        /// Which limit: `max_series_per_selector` or `max_samples`.
        limit: &'static str,
        /// What was refused.
        message: String,
    },
}

/// One batch as the store receives it: identity checked, server labels added.
pub struct IngestBatch<'a> {
    /// The sending agent, from its certificate.
    pub agent_id: &'a str,
    /// The agent process' boot. Empty for a batch the server writes itself (rules'
    /// results, `up`): it is not de-duplicated and leaves no identity behind. Agents'
    /// batches always have one (the wire protocol refuses an empty `boot_id`).
    pub boot_id: &'a str,
    /// Sequence number within the boot.
    pub seq: u64,
    /// The `instance` label: the agent's host name.
    pub instance: &'a str,
    /// Series and their points.
    pub series: &'a [Series],
    /// Events (check results).
    pub events: &'a [Event],
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now.
    Stored,
    /// Its identity was stored before; nothing changed.
    Duplicate,
}

/// The four Prometheus matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`, anchored at both ends as in Prometheus.
    Re,
    /// `!~`
    Nre,
}

/// A matcher on one label (`__name__` for the metric name). A missing label matches as the
/// empty string, as in Prometheus.
#[derive(Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub label: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or pattern.
    pub value: String,
    regex: Option<regex::Regex>,
}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        };
        write!(f, "{}{op}{:?}", self.label, self.value)
    }
}

impl LabelMatcher {
    /// A matcher; a regular expression is compiled (and anchored) here, once.
    pub fn new(
        label: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, regex::Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => Some(regex::Regex::new(&format!("^(?:{value})$"))?),
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Self {
            label: label.into(),
            op,
            value,
            regex,
        })
    }

    /// `label="value"`.
    pub fn eq(label: &str, value: &str) -> Self {
        Self {
            label: label.into(),
            op: MatchOp::Eq,
            value: value.into(),
            regex: None,
        }
    }

    /// `label!="value"`.
    pub fn ne(label: &str, value: &str) -> Self {
        Self {
            op: MatchOp::Ne,
            ..Self::eq(label, value)
        }
    }

    /// `=~` or `!~` with a regular expression compiled (and anchored) by the caller, such
    /// as the PromQL parser, which translates Go's syntax first.
    pub fn with_regex(label: &str, op: MatchOp, value: &str, regex: regex::Regex) -> Self {
        Self {
            label: label.into(),
            op,
            value: value.into(),
            regex: Some(regex),
        }
    }

    /// Whether a label value (`""` when the label is absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            // Not reachable through `new`; fall back to equality rather than panic.
            (MatchOp::Re, None) => v == self.value,
            (MatchOp::Nre, None) => v != self.value,
        }
    }

    /// Whether series without the label match.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

/// One series' identity: its name and all its labels, server labels included.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLabels {
    /// Metric name.
    pub name: String,
    /// Labels, sorted.
    pub labels: BTreeMap<String, String>,
}

/// What the store holds of one agent boot's batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStats {
    /// The boot.
    pub boot_id: String,
    /// Batches stored.
    pub count: u64,
    /// Highest seq stored.
    pub max_seq: u64,
}

/// A resolution at which samples are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// As received.
    Raw,
    /// 5-minute rollups.
    M5,
    /// Hourly rollups.
    H1,
    /// Daily rollups (UTC days).
    D1,
    /// Monthly rollups (UTC calendar months).
    Mo1,
}

impl Tier {
    /// Every tier, finest first.
    pub const ALL: [Tier; 5] = [Tier::Raw, Tier::M5, Tier::H1, Tier::D1, Tier::Mo1];
    /// The rollup tiers, finest first.
    pub const ROLLUPS: [Tier; 4] = [Tier::M5, Tier::H1, Tier::D1, Tier::Mo1];

    /// The name used in config and the API: `raw`, `5m`, `1h`, `1d`, `1mo`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::M5 => "5m",
            Tier::H1 => "1h",
            Tier::D1 => "1d",
            Tier::Mo1 => "1mo",
        }
    }

    /// The tier of a name, if there is one.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Bucket width in ms (a month counts as 30 days here; buckets follow the calendar).
    pub fn resolution_ms(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::M5 => 300_000,
            Tier::H1 => 3_600_000,
            Tier::D1 => 86_400_000,
            Tier::Mo1 => 30 * 86_400_000,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One rollup point: a summary of a series' samples in one bucket. See `rollup.rs` for
/// how late points merge and what `increase` covers.
#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    /// Bucket start, unix ms.
    pub start: i64,
    /// Samples summarised.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Value of the earliest sample.
    pub first: f64,
    /// Time of the earliest sample.
    pub first_ts: i64,
    /// Value of the latest sample.
    pub last: f64,
    /// Time of the latest sample.
    pub last_ts: i64,
    /// For counters: the reset-corrected increase between samples inside the bucket.
    pub increase: f64,
    /// For gauges: the sum of the squared values, for variance (`sum_sq / count -
    /// (sum / count)²`). NaN for counters, whose variance is their rate's, and for records
    /// written before the store kept it.
    pub sum_sq: f64,
}

/// Field by field, with NaN equal to NaN in `sum_sq`, where it means "not kept" rather
/// than a value.
impl PartialEq for Rollup {
    fn eq(&self, o: &Self) -> bool {
        let same_sq = self.sum_sq == o.sum_sq || (self.sum_sq.is_nan() && o.sum_sq.is_nan());
        (self.start, self.count, self.first_ts, self.last_ts)
            == (o.start, o.count, o.first_ts, o.last_ts)
            && [
                self.sum,
                self.min,
                self.max,
                self.first,
                self.last,
                self.increase,
            ] == [o.sum, o.min, o.max, o.first, o.last, o.increase]
            && same_sq
    }
}

/// Which tier a read uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierChoice {
    /// The finest tier that still covers the range; with a step, the coarsest covering
    /// tier whose resolution is at most the step.
    Auto {
        /// The resolution the caller needs, in ms.
        step: Option<i64>,
    },
    /// This tier, whatever it still holds.
    Exact(Tier),
}

/// A range read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// Which series: those that match every matcher of at least one of these selectors
    /// (a selector names the metric with `__name__`). A series matched twice is read once.
    pub selectors: Vec<Vec<LabelMatcher>>,
    /// First ms, inclusive.
    pub start: i64,
    /// Last ms, inclusive.
    pub end: i64,
    /// Which tier.
    pub tier: TierChoice,
}

/// What a set of reads may hold, so that a query's memory stays bounded: checked as the
/// series are selected and as their points are read, before more is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    /// Series one request may match.
    pub max_series_per_request: usize,
    /// Points (samples or rollup records) all requests together may read.
    pub max_points: usize,
}

impl ReadBudget {
    /// No limit.
    pub const UNLIMITED: ReadBudget = ReadBudget {
        max_series_per_request: usize::MAX,
        max_points: usize::MAX,
    };

    /// Refuses a request that matched `series` series, past the limit.
    pub fn check_series(&self, series: usize) -> Result<(), StoreError> {
        if series <= self.max_series_per_request {
            return Ok(());
        }
        Err(StoreError::Limit {
            limit: "max_series_per_selector",
            message: format!(
                "a selector matches {series} series, over the limit of {} ([query] max_series_per_selector)",
                self.max_series_per_request
            ),
        })
    }

    /// Refuses reads that have taken `points` points so far, past the limit.
    pub fn check_points(&self, points: usize) -> Result<(), StoreError> {
        if points <= self.max_points {
            return Ok(());
        }
        Err(StoreError::Limit {
            limit: "max_samples",
            message: format!(
                "query processing would load too many samples into memory (over {}, [query] max_samples)",
                self.max_points
            ),
        })
    }
}

/// Points of one series from one tier.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesData {
    /// Raw samples, strictly increasing in time.
    Raw(Vec<(i64, f64)>),
    /// Rollup points, by bucket start.
    Rollup(Vec<Rollup>),
}

/// One series' answer to a [`ReadRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRead {
    /// Which series.
    pub series: SeriesLabels,
    /// Whether it is a counter.
    pub kind: SeriesKind,
    /// The tier the data comes from.
    pub tier: Tier,
    /// The data.
    pub data: SeriesData,
}

/// How long each tier keeps data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per tier, in [`Tier::ALL`] order.
    pub keep: [Duration; 5],
}

impl Default for Retention {
    /// The product's promise: raw 24 h, 5 min 7 d, 1 h 90 d, 1 d 1 y, 1 month 5 y.
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            keep: [
                Duration::from_secs(DAY),
                Duration::from_secs(7 * DAY),
                Duration::from_secs(90 * DAY),
                Duration::from_secs(365 * DAY),
                Duration::from_secs(5 * 365 * DAY),
            ],
        }
    }
}

impl Retention {
    /// How long `tier` keeps data, in ms.
    pub fn ms(&self, tier: Tier) -> i64 {
        i64::try_from(self.keep[tier.index()].as_millis()).unwrap_or(i64::MAX)
    }
}

/// Store settings (`[storage]` and `[retention]` in server.toml).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Per-tier retention.
    pub retention: Retention,
    /// How far behind a series' newest point a point may be and still enter the raw tier;
    /// older ones go to the rollups only, counted.
    pub out_of_order_window: Duration,
    /// An agent's head is cut into chunks once its oldest point is this old.
    pub chunk_span: Duration,
    /// ... or once one of its series holds this many points.
    pub chunk_max_points: usize,
    /// Series one agent may have; new series past it are dropped, counted and logged.
    pub max_series_per_agent: usize,
    /// How often the background task cuts heads; purge runs every `purge_interval`.
    pub maintenance_interval: Duration,
    /// How often the background task purges expired data and vacuums.
    pub purge_interval: Duration,
    /// How long check results (events) are kept, counted back like the raw tier's
    /// retention.
    pub events_retention: Duration,
    /// How long a batch identity is remembered for de-duplication after its boot last sent
    /// one: at least as long as agents keep unacked batches (`[buffer] max_age`).
    pub dedup_window: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            out_of_order_window: Duration::from_secs(3600),
            chunk_span: Duration::from_secs(2 * 3600),
            chunk_max_points: 240,
            max_series_per_agent: 20_000,
            maintenance_interval: Duration::from_secs(10),
            purge_interval: Duration::from_secs(600),
            events_retention: Retention::default().keep[0],
            // The agent's spool keeps a batch 7 days by default; a day more covers clocks
            // and a batch on the wire when its agent dropped it.
            dedup_window: Duration::from_secs(8 * 86_400),
        }
    }
}

/// Where the store gets the time for retention and cutting (tests move it by hand).
pub trait Clock: Send + Sync {
    /// Now, unix ms.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The store's own figures, for the server's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Series in the index.
    pub series: u64,
    /// Samples stored in the raw tier since start.
    pub samples_ingested: u64,
    /// Samples too old for the raw tier, merged into rollups only, since start.
    pub samples_late: u64,
    /// New series refused by the per-agent limit since start.
    pub series_refused: u64,
    /// Points in the in-memory head now.
    pub head_points: u64,
    /// Bytes of chunk data per tier, in [`Tier::ALL`] order.
    pub bytes: [u64; 5],
    /// Size of the database file and its write-ahead log on disk: what the tiers, the
    /// index, the head log and free pages take together.
    pub file_bytes: u64,
    /// Head cuts since start, and their total time.
    pub cuts: u64,
    /// Total time spent cutting heads, µs.
    pub cut_micros: u64,
    /// Purge runs since start.
    pub purges: u64,
    /// Time of the last purge (with its vacuum), µs.
    pub last_purge_micros: u64,
    /// Ingest transactions committed since start (each one fsync).
    pub commits: u64,
    /// Batches those transactions carried (stored, duplicate or failed alone).
    pub commit_batches: u64,
    /// Time spent writing and committing those transactions, µs.
    pub commit_micros: u64,
    /// When the last one committed, Unix ms; 0 before any.
    pub last_commit_ms: i64,
    /// Group commits that failed (each batch in it was answered with an error).
    pub commit_failures: u64,
    /// Read connections in use and idle in the pool.
    pub readers_used: u64,
    pub readers_idle: u64,
    /// Ranges of batch seqs remembered for de-duplication, as of the last purge.
    pub dedup_ranges: u64,
    /// Check results (events) kept, as of the last purge.
    pub events: u64,
}

/// Most events one [`Store::events`] read may ask for.
pub const MAX_EVENTS: usize = 10_000;

/// Which check results to read: all of the filters apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only this check's.
    pub check: Option<String>,
    /// From this time, unix ms, inclusive.
    pub since_ms: i64,
    /// Up to this time, unix ms, inclusive; none: up to the newest.
    pub until_ms: Option<i64>,
    /// At most this many, the newest; at most [`MAX_EVENTS`].
    pub limit: usize,
}

/// A check result as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The agent that ran the check.
    pub agent_id: String,
    /// The agent's host name when it sent the result (the `instance` label of its series);
    /// empty for a result stored before the store kept it, of an agent with no series.
    pub instance: String,
    /// The check's name.
    pub name: String,
    /// OK, WARNING, CRITICAL or UNKNOWN.
    pub state: String,
    /// The first line of output.
    pub output: String,
    /// The further lines of output.
    pub long_output: String,
    /// Whether the state was confirmed over the check's attempts; `None` for a result
    /// stored before the store kept it.
    pub hard: Option<bool>,
    /// When the check ran, unix ms (the agent's clock).
    pub ts: i64,
}

/// The latest result of one check of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestCheck {
    /// The result.
    pub event: StoredEvent,
    /// When the check entered its current state: the time of the first result of the
    /// latest unbroken run of results in this state. Retention bounds it: a check in the
    /// same state for longer than events are kept shows the oldest result kept.
    pub state_since_ms: i64,
}

/// Storage as ingest, the API and (later) query and rules use it.
pub trait Store: Send + Sync {
    /// Stores a batch durably, once.
    fn ingest(&self, batch: &IngestBatch<'_>) -> Result<IngestOutcome, StoreError>;

    /// Stores several batches, in as few commits as the store can (the rule engine writes
    /// one batch per host for each rule).
    fn ingest_many(&self, batches: &[IngestBatch<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
        batches.iter().map(|b| self.ingest(b)).collect()
    }
    /// Per boot of an agent: how many batches are stored and the highest seq. Equal numbers
    /// mean no batch of that boot is missing.
    fn batch_stats(&self, agent_id: &str) -> Result<Vec<BatchStats>, StoreError>;
    /// Whether the store answers.
    fn healthy(&self) -> bool;
    /// Series matching every matcher of at least one selector (any of `=`, `!=`, `=~`,
    /// `!~`), each once.
    fn select(&self, selectors: &[Vec<LabelMatcher>]) -> Result<Vec<SeriesLabels>, StoreError>;
    /// A range read at one tier (see [`TierChoice`]), every series from one snapshot.
    fn read(&self, request: &ReadRequest) -> Result<Vec<SeriesRead>, StoreError> {
        let mut all = self.read_many(std::slice::from_ref(request), &ReadBudget::UNLIMITED)?;
        Ok(all.pop().unwrap_or_default())
    }
    /// Several range reads from one snapshot (a query's selectors), within a budget.
    fn read_many(
        &self,
        requests: &[ReadRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SeriesRead>>, StoreError>;
    /// The earliest time `tier` still answers for, unix ms: what retention leaves of it.
    fn floor_ms(&self, tier: Tier) -> i64;
    /// Every label name in use.
    fn label_names(&self) -> Result<Vec<String>, StoreError>;
    /// Every value of one label.
    fn label_values(&self, label: &str) -> Result<Vec<String>, StoreError>;
    /// Check results matching `query`, newest first (of equal times, the last stored
    /// first).
    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// The latest result of every check (of one agent, or of all), by agent and check
    /// name, each with the time it entered its state.
    fn latest_checks(&self, agent_id: Option<&str>) -> Result<Vec<LatestCheck>, StoreError>;
    /// The store's own figures.
    fn stats(&self) -> StoreStats;
}
