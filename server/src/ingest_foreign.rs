//! Foreign ingest: series that arrive from Prometheus remote write (`POST /api/v1/write`)
//! or OTLP (`POST /v1/metrics`) rather than from an agent, checked as a whole and stored
//! for the API token that sent them. Both endpoints decode their protocol into
//! [`ForeignSeries`] and hand them here; the rules below are the same for both.
//!
//! # Validation: all or nothing
//!
//! [`validate`] looks at the whole request before anything is stored; one bad series
//! refuses the request ([`Refusal`], a 400 or, for [`Reason::TooLarge`], a 413):
//!
//! - every series has a `__name__` matching `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names match
//!   `[a-zA-Z_][a-zA-Z0-9_]*` and do not start with `__`, each name at most once;
//! - names and values are at most `[limits] max_label_length` bytes, at most
//!   `max_labels_per_series` labels besides the name;
//! - at most `max_series_per_batch` distinct series and `max_points_per_batch` samples;
//! - within a series, timestamps strictly increase. Prometheus sends one `TimeSeries`
//!   entry per sample, so entries with the same labels are one series, in request order.
//!
//! A label with an empty value is no label (as in Prometheus) and is dropped. Values are
//! kept as sent, NaN included: Prometheus' staleness marker (one NaN bit pattern) ends a
//! series in queries, and the rollups skip NaN.
//!
//! # Attribution
//!
//! Series are stored under the token's name as their `agent_id` label (an `agent_id` the
//! series had is replaced: it is what says who wrote it), and keep their own `instance`
//! label: one store batch per distinct `instance` of the request. The token's series count
//! against `[storage] max_series_per_agent` like an agent's.
//!
//! # Re-sent samples
//!
//! Senders retry a request whose answer they did not get, though it may have been stored.
//! A sample at or before the newest sample already stored for its series is therefore
//! skipped (counted, not an error): a retry stores nothing twice, and the store's raw tier
//! and rollups see each sample once. [`ForeignWriter`] keeps the newest timestamp per
//! series in memory; a series it does not know (after a restart, or a new series) is looked
//! up in the store over the request's time range first. A consequence, as in Prometheus
//! without its out-of-order window: samples older than their series' newest stored one
//! (two senders writing one series) are skipped too.

use std::{
    collections::{BTreeMap, HashMap, hash_map::DefaultHasher},
    fmt::Write as _,
    hash::{Hash, Hasher},
    sync::{Mutex, MutexGuard},
};

pub mod otlp;
pub mod remote_write;

use sysward_proto::{Limits, Series, SeriesKind};

use crate::{
    metrics::Counter,
    store::{
        IngestBatch, LabelMatcher, NAME_LABEL, ReadBudget, ReadRequest, SeriesData, Store,
        StoreError, Tier, TierChoice,
    },
};

/// One series as a foreign protocol delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignSeries {
    /// Labels, `__name__` among them, in any order.
    pub labels: Vec<(String, String)>,
    /// Counter or gauge: how the rollups summarise it.
    pub kind: SeriesKind,
    /// `(unix ms, value)` in the order received.
    pub points: Vec<(i64, f64)>,
}

/// Why a request, or some of its samples, were refused: the `reason` label of the
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Over a size, series or sample limit (413).
    TooLarge,
    /// A remote write body that is not snappy block-compressed.
    NotSnappy,
    /// A body that is not the protobuf message it should be (gzip included for OTLP).
    NotProtobuf,
    /// A metric or label name Prometheus would not accept, or a missing metric name.
    InvalidName,
    /// One label name twice in a series.
    DuplicateLabel,
    /// Too many labels, or a name or value too long.
    LabelLimit,
    /// A timestamp before the previous one of its series.
    OutOfOrder,
    /// A timestamp equal to the previous one of its series.
    DuplicateSample,
    /// Prometheus native histograms, which the store does not keep.
    NativeHistogram,
    /// OTLP sums and histograms with delta temporality.
    DeltaTemporality,
    /// OTLP exponential histograms.
    ExponentialHistogram,
    /// A content type or encoding the endpoint does not speak.
    UnsupportedMediaType,
    /// An OTLP data point without a time or value, or a histogram whose buckets do not
    /// match its bounds.
    InvalidPoint,
}

impl Reason {
    /// Every reason, in the order of the counters.
    pub const ALL: [Reason; 13] = [
        Reason::TooLarge,
        Reason::NotSnappy,
        Reason::NotProtobuf,
        Reason::InvalidName,
        Reason::DuplicateLabel,
        Reason::LabelLimit,
        Reason::OutOfOrder,
        Reason::DuplicateSample,
        Reason::NativeHistogram,
        Reason::DeltaTemporality,
        Reason::ExponentialHistogram,
        Reason::UnsupportedMediaType,
        Reason::InvalidPoint,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::NotSnappy => "not_snappy",
            Reason::NotProtobuf => "not_protobuf",
            Reason::InvalidName => "invalid_name",
            Reason::DuplicateLabel => "duplicate_label",
            Reason::LabelLimit => "label_limit",
            Reason::OutOfOrder => "out_of_order",
            Reason::DuplicateSample => "duplicate_sample",
            Reason::NativeHistogram => "native_histogram",
            Reason::DeltaTemporality => "delta_temporality",
            Reason::ExponentialHistogram => "exponential_histogram",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::InvalidPoint => "invalid_point",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A refused request: why, and a sentence saying what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The counters' reason.
    pub reason: Reason,
    /// What is wrong and in which series.
    pub message: String,
    /// Samples the request held, as far as it was decoded.
    pub samples: usize,
}

impl Refusal {
    /// A refusal for `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            samples: 0,
        }
    }
}

/// A request that passed [`validate`]: per `instance` label value (empty: none), the
/// series to store, labels without `instance`, `agent_id` and `__name__`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validated {
    /// `(instance, series)`, instances in first-seen order.
    pub groups: Vec<(String, Vec<Series>)>,
    /// Samples over all series.
    pub samples: usize,
}

/// Checks a whole request against `limits` and the naming and ordering rules (see the
/// module doc), and groups its series by `instance`.
pub fn validate(series: Vec<ForeignSeries>, limits: &Limits) -> Result<Validated, Refusal> {
    let samples: usize = series.iter().map(|s| s.points.len()).sum();
    validate_inner(series, limits, samples).map_err(|mut r| {
        r.samples = samples;
        r
    })
}

fn validate_inner(
    series: Vec<ForeignSeries>,
    limits: &Limits,
    samples: usize,
) -> Result<Validated, Refusal> {
    if samples > limits.max_points {
        return Err(Refusal::new(
            Reason::TooLarge,
            format!(
                "the request has {samples} samples, over the limit of {} ([limits] max_points_per_batch)",
                limits.max_points
            ),
        ));
    }
    // Same labels, same series: merged in request order.
    let mut merged: Vec<ForeignSeries> = Vec::new();
    let mut by_labels: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    for (i, s) in series.into_iter().enumerate() {
        let labels = canonical(s.labels, limits)
            .map_err(|(reason, what)| Refusal::new(reason, format!("timeseries[{i}]: {what}")))?;
        match by_labels.get(&labels) {
            Some(&at) => merged[at].points.extend(s.points),
            None => {
                if merged.len() >= limits.max_series {
                    return Err(Refusal::new(
                        Reason::TooLarge,
                        format!(
                            "the request has over {} series ([limits] max_series_per_batch)",
                            limits.max_series
                        ),
                    ));
                }
                by_labels.insert(labels.clone(), merged.len());
                merged.push(ForeignSeries {
                    labels,
                    kind: s.kind,
                    points: s.points,
                });
            }
        }
    }
    for s in &merged {
        check_order(s)?;
    }
    Ok(group_by_instance(merged, samples))
}

/// Labels sorted, checked, empty values dropped.
fn canonical(
    mut labels: Vec<(String, String)>,
    limits: &Limits,
) -> Result<Vec<(String, String)>, (Reason, String)> {
    labels.sort_unstable();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err((
            Reason::DuplicateLabel,
            format!("label name {:?} appears more than once", truncate(&w[0].0)),
        ));
    }
    labels.retain(|(_, v)| !v.is_empty());
    let name = labels
        .iter()
        .find(|(k, _)| k == NAME_LABEL)
        .map(|(_, v)| v.as_str());
    match name {
        None => return Err((Reason::InvalidName, "no metric name (__name__)".into())),
        Some(n) if !is_metric_name(n) => {
            return Err((
                Reason::InvalidName,
                format!("invalid metric name {:?}", truncate(n)),
            ));
        }
        Some(_) => {}
    }
    if labels.len() > limits.max_labels + 1 {
        return Err((
            Reason::LabelLimit,
            format!(
                "{} labels, over the limit of {} ([limits] max_labels_per_series)",
                labels.len() - 1,
                limits.max_labels
            ),
        ));
    }
    for (k, v) in &labels {
        if k != NAME_LABEL && (!is_label_name(k) || k.starts_with("__")) {
            return Err((
                Reason::InvalidName,
                format!("invalid label name {:?}", truncate(k)),
            ));
        }
        if k.len() > limits.max_label_len || v.len() > limits.max_label_len {
            return Err((
                Reason::LabelLimit,
                format!(
                    "label {:?} is over {} bytes ([limits] max_label_length)",
                    truncate(k),
                    limits.max_label_len
                ),
            ));
        }
    }
    Ok(labels)
}

fn check_order(s: &ForeignSeries) -> Result<(), Refusal> {
    for w in s.points.windows(2) {
        let (prev, next) = (w[0].0, w[1].0);
        if next > prev {
            continue;
        }
        let (reason, what) = if next == prev {
            (Reason::DuplicateSample, "duplicate sample")
        } else {
            (Reason::OutOfOrder, "sample out of order")
        };
        return Err(Refusal::new(
            reason,
            format!(
                "{}: {what}: timestamp {next} after {prev}",
                describe(&s.labels)
            ),
        ));
    }
    Ok(())
}

fn group_by_instance(merged: Vec<ForeignSeries>, samples: usize) -> Validated {
    let mut groups: Vec<(String, Vec<Series>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for s in merged {
        let mut name = String::new();
        let mut instance = String::new();
        let mut labels = BTreeMap::new();
        for (k, v) in s.labels {
            match k.as_str() {
                NAME_LABEL => name = v,
                "instance" => instance = v,
                "agent_id" => {}
                _ => {
                    labels.insert(k, v);
                }
            }
        }
        let series = Series {
            name,
            labels,
            kind: s.kind,
            points: s.points,
        };
        let i = *at.entry(instance.clone()).or_insert_with(|| {
            groups.push((instance, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(series);
    }
    Validated { groups, samples }
}

/// `name{a="b",...}` for messages, cut short.
fn describe(labels: &[(String, String)]) -> String {
    let mut out = String::new();
    let name = labels.iter().find(|(k, _)| k == NAME_LABEL);
    out.push_str(name.map_or("", |(_, v)| v.as_str()));
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().filter(|(k, _)| k != NAME_LABEL) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}={:?}", truncate(v));
    }
    out.push('}');
    truncate(&out).to_string()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Prometheus' rule for metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' rule for label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Past this many series remembered, the memory of newest timestamps starts again from
/// the store (it is a cache: see the module doc).
const MAX_REMEMBERED: usize = 500_000;

/// What [`ForeignWriter::store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Samples stored.
    pub accepted: usize,
    /// Samples skipped: at or before their series' newest stored sample.
    pub skipped: usize,
    /// Names of the metrics that got recent samples, for the rule engine.
    pub names: Vec<String>,
}

/// Stores validated requests for a token, each sample once (see the module doc).
#[derive(Debug, Default)]
pub struct ForeignWriter {
    /// Series identity (two independent hashes of token, instance, name and labels) →
    /// the newest timestamp stored or being stored.
    newest: Mutex<HashMap<(u64, u64), i64>>,
}

/// A newest timestamp recorded before storing: series key, the previous value, the new.
type Reservation = ((u64, u64), Option<i64>, i64);

/// One series of a request on its way to the store.
struct Pending {
    key: (u64, u64),
    /// Newest stored timestamp, once known.
    newest: Option<i64>,
}

impl ForeignWriter {
    fn lock(&self) -> MutexGuard<'_, HashMap<(u64, u64), i64>> {
        // A map of timestamps: a poisoned one is still usable.
        self.newest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `request` for `token`, durably once this returns `Ok`. Blocking.
    /// `names` in the answer lists the metrics with a sample after `fresh_after` (unix ms).
    pub fn store(
        &self,
        store: &dyn Store,
        token: &str,
        mut request: Validated,
        fresh_after: i64,
    ) -> Result<Stored, StoreError> {
        let mut pending = self.known(token, &request);
        self.look_up(store, token, &request, &mut pending)?;
        let (stored, reserved) = self.reserve(&mut request, &pending, fresh_after);
        if stored.accepted == 0 {
            return Ok(stored);
        }
        let batches: Vec<IngestBatch<'_>> = request
            .groups
            .iter()
            .filter(|(_, series)| !series.is_empty())
            .map(|(instance, series)| IngestBatch {
                agent_id: token,
                boot_id: "",
                seq: 0,
                instance,
                series,
                events: &[],
            })
            .collect();
        if let Err(error) = store.ingest_many(&batches) {
            self.release(&reserved);
            return Err(error);
        }
        Ok(stored)
    }

    /// The identity of every series, with its newest timestamp where remembered.
    fn known(&self, token: &str, request: &Validated) -> Vec<Vec<Pending>> {
        let newest = self.lock();
        request
            .groups
            .iter()
            .map(|(instance, series)| {
                series
                    .iter()
                    .map(|s| {
                        let key = series_key(token, instance, s);
                        Pending {
                            key,
                            newest: newest.get(&key).copied(),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Asks the store for the newest sample, within the request's time range, of every
    /// series not remembered.
    fn look_up(
        &self,
        store: &dyn Store,
        token: &str,
        request: &Validated,
        pending: &mut [Vec<Pending>],
    ) -> Result<(), StoreError> {
        let mut reads = Vec::new();
        let mut wanted = Vec::new();
        for (g, (instance, series)) in request.groups.iter().enumerate() {
            for (i, s) in series.iter().enumerate() {
                if pending[g][i].newest.is_some() {
                    continue;
                }
                let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else {
                    continue;
                };
                reads.push(ReadRequest {
                    selectors: vec![matchers(token, instance, s)],
                    start: first.0,
                    end: last.0,
                    tier: TierChoice::Exact(Tier::Raw),
                });
                wanted.push((g, i));
            }
        }
        if reads.is_empty() {
            return Ok(());
        }
        let answers = store.read_many(&reads, &ReadBudget::UNLIMITED)?;
        for ((g, i), found) in wanted.into_iter().zip(answers) {
            let s = &request.groups[g].1[i];
            let instance = &request.groups[g].0;
            let newest = found
                .iter()
                .filter(|r| same_series(&r.series, token, instance, s))
                .filter_map(|r| match &r.data {
                    SeriesData::Raw(points) => points.last().map(|p| p.0),
                    SeriesData::Rollup(_) => None,
                })
                .max();
            pending[g][i].newest = newest;
        }
        Ok(())
    }

    /// Drops samples at or before each series' newest, and records the new newest before
    /// the store is asked, so that a concurrent retry skips them too. Returns what is
    /// left to store and what was recorded (key, previous, new) for [`Self::release`].
    fn reserve(
        &self,
        request: &mut Validated,
        pending: &[Vec<Pending>],
        fresh_after: i64,
    ) -> (Stored, Vec<Reservation>) {
        let mut stored = Stored::default();
        let mut reserved = Vec::new();
        let mut newest = self.lock();
        if newest.len() > MAX_REMEMBERED {
            newest.clear();
        }
        for (g, (_, series)) in request.groups.iter_mut().enumerate() {
            for (i, s) in series.iter_mut().enumerate() {
                let p = &pending[g][i];
                let previous = newest.get(&p.key).copied();
                let floor = previous.max(p.newest);
                let before = s.points.len();
                if let Some(floor) = floor {
                    s.points.retain(|pt| pt.0 > floor);
                }
                stored.skipped += before - s.points.len();
                stored.accepted += s.points.len();
                if let Some(last) = s.points.last() {
                    newest.insert(p.key, last.0);
                    reserved.push((p.key, previous, last.0));
                    if last.0 >= fresh_after {
                        stored.names.push(s.name.clone());
                    }
                } else if let Some(floor) = floor {
                    newest.insert(p.key, floor);
                }
            }
            series.retain(|s| !s.points.is_empty());
        }
        stored.names.sort_unstable();
        stored.names.dedup();
        (stored, reserved)
    }

    /// Undoes [`Self::reserve`] after a failed store, where no later request moved on.
    fn release(&self, reserved: &[Reservation]) {
        let mut newest = self.lock();
        for (key, previous, set) in reserved {
            if newest.get(key) == Some(set) {
                match previous {
                    Some(p) => newest.insert(*key, *p),
                    None => newest.remove(key),
                };
            }
        }
    }
}

fn series_key(token: &str, instance: &str, s: &Series) -> (u64, u64) {
    let hash = |seed: u8| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        (token, instance, &s.name, &s.labels).hash(&mut h);
        h.finish()
    };
    (hash(1), hash(2))
}

/// Matchers for exactly this series' labels (more labels would match too: see
/// [`same_series`]).
fn matchers(token: &str, instance: &str, s: &Series) -> Vec<LabelMatcher> {
    let mut m = vec![
        LabelMatcher::eq(NAME_LABEL, &s.name),
        LabelMatcher::eq("instance", instance),
        LabelMatcher::eq("agent_id", token),
    ];
    m.extend(s.labels.iter().map(|(k, v)| LabelMatcher::eq(k, v)));
    m
}

fn same_series(
    found: &crate::store::SeriesLabels,
    token: &str,
    instance: &str,
    s: &Series,
) -> bool {
    let own = found
        .labels
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.as_str() != "instance" && k.as_str() != "agent_id");
    found.name == s.name
        && found.labels.get("agent_id").map(String::as_str) == Some(token)
        && found.labels.get("instance").map_or("", String::as_str) == instance
        && own.eq(s.labels.iter())
}

/// Which endpoint: the `protocol` label of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /api/v1/write`
    RemoteWrite,
    /// `POST /v1/metrics`
    Otlp,
}

impl Protocol {
    const ALL: [Protocol; 2] = [Protocol::RemoteWrite, Protocol::Otlp];

    fn as_str(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => "remote_write",
            Protocol::Otlp => "otlp",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a foreign ingest request ended: the `outcome` label.
pub const OUTCOMES: [&str; 7] = [
    "accepted",
    "refused",
    "unauthorized",
    "forbidden",
    "busy",
    "disk_full",
    "failed",
];

/// Counters of foreign ingest, by protocol.
#[derive(Debug, Default)]
pub struct ForeignMetrics {
    requests: [[Counter; OUTCOMES.len()]; 2],
    accepted: [Counter; 2],
    skipped: [Counter; 2],
    refused_requests: [[Counter; Reason::ALL.len()]; 2],
    refused_samples: [[Counter; Reason::ALL.len()]; 2],
}

impl ForeignMetrics {
    /// Counts a request by outcome (one of [`OUTCOMES`]; others are not counted).
    pub fn request(&self, protocol: Protocol, outcome: &str) {
        if let Some(o) = OUTCOMES.iter().position(|n| *n == outcome) {
            self.requests[protocol.index()][o].inc();
        }
    }

    /// Counts what a stored request held.
    pub fn stored(&self, protocol: Protocol, stored: &Stored) {
        self.request(protocol, "accepted");
        self.accepted[protocol.index()].add(stored.accepted as u64);
        self.skipped[protocol.index()].add(stored.skipped as u64);
    }

    /// Counts a refused request and the samples it held.
    pub fn refused_request(&self, protocol: Protocol, refusal: &Refusal) {
        self.request(protocol, "refused");
        self.refused_requests[protocol.index()][refusal.reason.index()].inc();
        self.refused_points(protocol, refusal.reason, refusal.samples);
    }

    /// Counts samples (OTLP data points) refused for `reason`.
    pub fn refused_points(&self, protocol: Protocol, reason: Reason, samples: usize) {
        self.refused_samples[protocol.index()][reason.index()].add(samples as u64);
    }

    /// Requests of one protocol and outcome so far.
    pub fn requests(&self, protocol: Protocol, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|n| *n == outcome)
            .map_or(0, |o| self.requests[protocol.index()][o].get())
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP sysward_server_foreign_requests_total Remote write and OTLP ingest requests, by outcome.\n# TYPE sysward_server_foreign_requests_total counter"
        );
        for p in Protocol::ALL {
            for (i, outcome) in OUTCOMES.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "sysward_server_foreign_requests_total{{protocol=\"{}\",outcome=\"{outcome}\"}} {}",
                    p.as_str(),
                    self.requests[p.index()][i].get()
                );
            }
        }
        for (name, help, counters) in [
            (
                "sysward_server_foreign_samples_accepted_total",
                "Samples stored from remote write and OTLP.",
                &self.accepted,
            ),
            (
                "sysward_server_foreign_samples_skipped_total",
                "Samples skipped as already stored: at or before their series' newest sample (retries).",
                &self.skipped,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in Protocol::ALL {
                let _ = writeln!(
                    o,
                    "{name}{{protocol=\"{}\"}} {}",
                    p.as_str(),
                    counters[p.index()].get()
                );
            }
        }
        for (name, help, counters) in [
            (
                "sysward_server_foreign_requests_refused_total",
                "Remote write and OTLP requests refused whole (400, 413, 415), by reason.",
                &self.refused_requests,
            ),
            (
                "sysward_server_foreign_samples_refused_total",
                "Samples refused, in refused requests or as refused OTLP points, by reason.",
                &self.refused_samples,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in Protocol::ALL {
                for r in Reason::ALL {
                    let _ = writeln!(
                        o,
                        "{name}{{protocol=\"{}\",reason=\"{}\"}} {}",
                        p.as_str(),
                        r.as_str(),
                        counters[p.index()][r.index()].get()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
