use std::borrow::Cow;
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

/// A batch as the agent builds it to send: encodes to the same JSON as [`Batch`], but
/// each series keeps its labels as the sorted pairs the collectors made. Collecting them
/// into a `BTreeMap` cost a map node of about half a KiB per series, for every series of
/// every batch, only to be written out and freed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutgoingBatch {
    /// As [`Batch::v`].
    pub v: u32,
    /// As [`Batch::agent_id`].
    pub agent_id: String,
    /// As [`Batch::boot_id`].
    pub boot_id: String,
    /// As [`Batch::seq`].
    pub seq: u64,
    /// As [`Batch::sent_at`].
    pub sent_at: i64,
    /// As [`Batch::series`].
    pub series: Vec<OutgoingSeries>,
    /// As [`Batch::events`].
    pub events: Vec<Event>,
    /// As [`Batch::host`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
}

/// A series of an [`OutgoingBatch`]: a [`Series`] once decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutgoingSeries {
    /// Metric name: borrowed when it is a fixed string of the agent's code, which most
    /// are, so that a series costs no allocation for it.
    pub name: Cow<'static, str>,
    /// Label pairs sorted by name, each name once; written as a JSON object, as a map.
    /// The names are borrowed as the metric name is.
    #[serde(serialize_with = "pairs_as_map")]
    pub labels: Vec<(Cow<'static, str>, String)>,
    /// Counter or gauge.
    pub kind: SeriesKind,
    /// `[unix_ms, value]` pairs, finite values.
    pub points: Points,
}

/// The points of an [`OutgoingSeries`]: at least one, the first kept inline. A tick
/// reads each series once, so nearly every series has one point, and a `Vec` would be
/// one allocation per series per batch for it. Written as a JSON array, as a `Vec`.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    first: (i64, f64),
    rest: Vec<(i64, f64)>,
}

impl Points {
    /// One point.
    pub fn new(point: (i64, f64)) -> Self {
        Self {
            first: point,
            rest: Vec::new(),
        }
    }

    /// Appends a point.
    pub fn push(&mut self, point: (i64, f64)) {
        self.rest.push(point);
    }

    /// The points in order.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, f64)> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// How many there are (at least one).
    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Never: there is always a point. (For the `len` convention.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The points in order, as a `Vec`.
    pub fn to_vec(&self) -> Vec<(i64, f64)> {
        self.iter().copied().collect()
    }
}

impl Serialize for Points {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

fn pairs_as_map<S: serde::Serializer>(
    pairs: &[(Cow<'static, str>, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
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
    /// The agent's critical tier interval: the server calls the host down after three of
    /// them without a batch. 0 (older agents): the server assumes the agents' default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub critical_interval_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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

/// A one-series batch for the codec's and the limits' tests.
#[cfg(test)]
pub(crate) fn test_batch() -> Batch {
    Batch {
        v: VERSION,
        agent_id: "a1".into(),
        boot_id: "b1".into(),
        seq: 7,
        sent_at: 1_700_000_000_000,
        series: vec![Series {
            name: "node_load1".into(),
            labels: std::collections::BTreeMap::from([("x".into(), "y".into())]),
            kind: SeriesKind::Gauge,
            points: vec![(1_700_000_000_000, 0.5)],
        }],
        events: vec![],
        host: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The points of a non-empty list.
    pub(crate) fn points_of(list: &[(i64, f64)]) -> Points {
        let mut points = Points::new(list[0]);
        for point in &list[1..] {
            points.push(*point);
        }
        points
    }

    fn series() -> impl Strategy<Value = OutgoingSeries> {
        (
            "[a-z_]{1,12}",
            proptest::collection::btree_map("[a-z]{1,6}", "[ -~é]{0,8}", 0..4),
            any::<bool>(),
            proptest::collection::vec((any::<i64>(), -1e300f64..1e300), 1..3),
        )
            .prop_map(|(name, labels, counter, list)| OutgoingSeries {
                name: name.into(),
                labels: labels.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                points: points_of(&list),
                kind: if counter {
                    SeriesKind::Counter
                } else {
                    SeriesKind::Gauge
                },
            })
    }

    proptest! {
        #[test]
        fn an_outgoing_batch_is_written_as_the_batch_it_decodes_to(
            series in proptest::collection::vec(series(), 0..5),
            with_host in any::<bool>(),
        ) {
            let outgoing = OutgoingBatch {
                v: VERSION,
                agent_id: "a".into(),
                boot_id: "b".into(),
                seq: 7,
                sent_at: 1_700_000_000_000,
                series,
                events: vec![],
                host: with_host.then(HostInfo::default),
            };
            let batch = Batch {
                v: outgoing.v,
                agent_id: outgoing.agent_id.clone(),
                boot_id: outgoing.boot_id.clone(),
                seq: outgoing.seq,
                sent_at: outgoing.sent_at,
                series: outgoing
                    .series
                    .iter()
                    .map(|s| Series {
                        name: s.name.to_string(),
                        labels: s.labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
                        kind: s.kind,
                        points: s.points.to_vec(),
                    })
                    .collect(),
                events: vec![],
                host: outgoing.host.clone(),
            };
            // The same text, so the server decodes the same batch (the same values too:
            // whatever serde_json's float parsing makes of the text, it makes of both).
            let text = serde_json::to_string(&outgoing).unwrap();
            prop_assert_eq!(&text, &serde_json::to_string(&batch).unwrap());
        }
    }
}
