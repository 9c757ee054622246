use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only batch version this build speaks.
pub const VERSION: u32 = 1;

/// One push from an agent: every series and event gathered since the previous batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Protocol version; [`VERSION`].
    pub v: u32,
    /// The agent's id, as in its client certificate.
    pub agent_id: String,
    /// Changes each time the agent process starts; with `seq` it names the batch.
    pub boot_id: String,
    /// Increases by one per batch within one `boot_id`.
    pub seq: u64,
    /// When the agent sent it, Unix milliseconds.
    pub sent_at: i64,
    /// Samples grouped by series.
    #[serde(default)]
    pub series: Vec<Series>,
    /// Check results and other events.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Facts about the host, sent now and then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
}

/// Counter (cumulative) or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesKind {
    /// Cumulative, sent as is, never as a rate.
    Counter,
    /// A current value.
    Gauge,
}

/// The points of one series in one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Labels; the server adds `instance` and `agent_id`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Counter or gauge.
    pub kind: SeriesKind,
    /// `[unix_ms, value]` pairs. Values are finite: JSON has no NaN.
    pub points: Vec<(i64, f64)>,
}

/// A check result or other discrete happening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What it is about, e.g. the check name.
    pub name: String,
    /// OK, WARNING, CRITICAL or UNKNOWN for checks.
    pub state: String,
    /// Short human output.
    #[serde(default)]
    pub output: String,
    /// When, Unix milliseconds.
    pub ts: i64,
    /// Further lines of output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub long_output: String,
    /// A hard state is confirmed over the check's `max_attempts`; a soft one is not yet.
    #[serde(default)]
    pub hard: bool,
    /// Which consecutive non-OK result this is (0 when OK).
    #[serde(default)]
    pub attempt: u32,
    /// How long it took, milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Facts about the sending host.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostInfo {
    /// The host name; the server's `instance` label.
    pub hostname: String,
    /// Operator-set host labels from the agent config.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The agent's version.
    #[serde(default)]
    pub agent_version: String,
}

/// The server's answer to a stored (or already stored) batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckResponse {
    /// The `seq` of the batch now durable on the server.
    pub acked_seq: u64,
}

/// Every error the API answers with, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Why, in one sentence that names what and where.
    pub error: String,
}
