//! Storage behind one trait, so that the compressed, tiered store can replace the first
//! SQLite one without touching ingest or query.
//!
//! Contract: [`Store::ingest`] returns only after the batch is durable, and stores each
//! `(agent_id, boot_id, seq)` once; a repeat returns [`IngestOutcome::Duplicate`] and
//! changes nothing.

mod sqlite;

use std::collections::BTreeMap;

pub(crate) use sqlite::SqliteStore;
use sysward_proto::{Event, Series};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("store database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("store data is damaged: {0}")]
    Corrupt(String),
}

/// One batch as the store receives it: identity checked, server labels added.
pub(crate) struct IngestBatch<'a> {
    pub(crate) agent_id: &'a str,
    pub(crate) boot_id: &'a str,
    pub(crate) seq: u64,
    /// The `instance` label: the agent's host name.
    pub(crate) instance: &'a str,
    pub(crate) series: &'a [Series],
    pub(crate) events: &'a [Event],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IngestOutcome {
    Stored,
    Duplicate,
}

/// A label matcher: `name="value"` or `name!="value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub(crate) label: String,
    pub(crate) negate: bool,
    pub(crate) value: String,
}

/// Which series: a metric name and label matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) name: String,
    pub(crate) matchers: Vec<Matcher>,
}

impl Selector {
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels.get(&m.label).map(String::as_str).unwrap_or("");
            (value == m.value) != m.negate
        })
    }
}

/// One series' identity: its name and all its labels, server labels included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesLabels {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
}

/// A series and its points in a range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesPoints {
    pub(crate) series: SeriesLabels,
    pub(crate) points: Vec<(i64, f64)>,
}

/// What the store holds of one agent boot's batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchStats {
    pub(crate) boot_id: String,
    pub(crate) count: u64,
    pub(crate) max_seq: u64,
}

pub(crate) trait Store: Send + Sync {
    /// Stores a batch durably, once.
    fn ingest(&self, batch: &IngestBatch<'_>) -> Result<IngestOutcome, StoreError>;
    /// The series that match.
    fn series(&self, selector: &Selector) -> Result<Vec<SeriesLabels>, StoreError>;
    /// The raw points of matching series with `start <= ts <= end`.
    fn read_range(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesPoints>, StoreError>;
    /// Per boot of an agent: how many batches are stored and the highest seq. Equal numbers
    /// mean no batch of that boot is missing.
    fn batch_stats(&self, agent_id: &str) -> Result<Vec<BatchStats>, StoreError>;
    /// Whether the store answers.
    fn healthy(&self) -> bool;
}
