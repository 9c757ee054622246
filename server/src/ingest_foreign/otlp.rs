//! OTLP metrics (`ExportMetricsServiceRequest`, protobuf) into [`ForeignSeries`], named the
//! way the OpenTelemetry specification's "Prometheus and OpenMetrics compatibility" section
//! says:
//!
//! - Metric names: characters outside `[a-zA-Z0-9_:]` become `_`, runs of `_` one, a
//!   leading digit gets a `_` before it; the unit follows as a suffix unless the name
//!   already ends with it (`s` → `_seconds`, `By` → `_bytes`, `1` → `_ratio` for gauges,
//!   `{packets}` → nothing, `m/s` → `_meters_per_second`); monotonic cumulative sums end in
//!   `_total`.
//! - Attributes become labels (invalid characters `_`, a leading digit or `__` gets `key_`
//!   before it; keys that end up equal have their values joined with `;` in key order).
//! - `job` is `service.namespace/service.name` (or `service.name`), `instance` is
//!   `service.instance.id`; the resource's other attributes go to a `target_info` gauge (value
//!   1, at the resource's newest point) with those two labels. The instrumentation scope
//!   gives `otel_scope_name` and `otel_scope_version`.
//! - Gauge → gauge; cumulative sum → counter (`_total`) if monotonic, else gauge;
//!   cumulative histogram → `_bucket{le}` (cumulative counts, `le="+Inf"` last), `_sum`,
//!   `_count`; summary → `{quantile}`, `_sum`, `_count`.
//! - A point flagged "no recorded value" becomes Prometheus' staleness marker.
//!
//! Refused point by point, counted, and reported in the answer's `partial_success`: sums
//! and histograms with delta (or unspecified) temporality, exponential histograms, points
//! without a value or time, histograms whose bucket counts do not match their bounds.

use std::{collections::BTreeMap, io::Read};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
        metric::Data, number_data_point,
    },
};
use prost::Message;
use sysward_proto::{Limits, SeriesKind};

use super::{ForeignSeries, NAME_LABEL, Reason, Refusal};

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;
/// Prometheus' staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Decodes a body, gzip-compressed when `gzip`, within `limits`.
pub fn decode(
    body: &[u8],
    gzip: bool,
    limits: &Limits,
) -> Result<ExportMetricsServiceRequest, Refusal> {
    let too_large = |what: &str, limit: usize| {
        Refusal::new(
            Reason::TooLarge,
            format!("the {what} is over the limit of {limit} bytes"),
        )
    };
    if body.len() > limits.max_compressed_bytes {
        return Err(too_large("body", limits.max_compressed_bytes));
    }
    let inflated;
    let raw = if gzip {
        let mut out = Vec::new();
        let limit = u64::try_from(limits.max_decompressed_bytes).unwrap_or(u64::MAX);
        flate2::read::GzDecoder::new(body)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Refusal::new(Reason::NotProtobuf, format!("the body is not gzip: {e}")))?;
        if out.len() > limits.max_decompressed_bytes {
            return Err(too_large(
                "decompressed body",
                limits.max_decompressed_bytes,
            ));
        }
        inflated = out;
        inflated.as_slice()
    } else {
        body
    };
    ExportMetricsServiceRequest::decode(raw).map_err(|e| {
        Refusal::new(
            Reason::NotProtobuf,
            format!("the body is not a protobuf ExportMetricsServiceRequest: {e}"),
        )
    })
}

/// What a request maps to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mapped {
    /// The series to store.
    pub series: Vec<ForeignSeries>,
    /// Data points refused, by reason.
    pub rejected: Vec<(Reason, usize)>,
    /// What the first refusal was about, for `partial_success.error_message`.
    pub first_error: Option<String>,
}

impl Mapped {
    /// Data points refused.
    pub fn rejected_points(&self) -> usize {
        self.rejected.iter().map(|r| r.1).sum()
    }

    fn reject(&mut self, reason: Reason, points: usize, metric: &str, why: &str) {
        if points == 0 {
            return;
        }
        match self.rejected.iter_mut().find(|r| r.0 == reason) {
            Some(r) => r.1 += points,
            None => self.rejected.push((reason, points)),
        }
        if self.first_error.is_none() {
            self.first_error = Some(format!("metric {metric:?}: {why}"));
        }
    }
}

/// The labels every series of one resource and scope carries.
struct Context {
    labels: Vec<(String, String)>,
}

/// Maps a request; never fails, refuses what it cannot map point by point.
pub fn to_series(request: &ExportMetricsServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    for rm in &request.resource_metrics {
        let attributes = rm
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let (identity, info) = resource_labels(attributes);
        let first = out.series.len();
        for sm in &rm.scope_metrics {
            let mut labels = identity.clone();
            if let Some(scope) = &sm.scope {
                for (k, v) in [
                    ("otel_scope_name", &scope.name),
                    ("otel_scope_version", &scope.version),
                ] {
                    if !v.is_empty() {
                        labels.push((k.to_string(), v.clone()));
                    }
                }
            }
            let context = Context { labels };
            for metric in &sm.metrics {
                map_metric(metric, &context, &mut out);
            }
        }
        let newest = out.series[first..]
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .max();
        if let (Some(ts), false) = (newest, info.is_empty()) {
            let mut labels = identity;
            labels.extend(info);
            labels.push((NAME_LABEL.to_string(), "target_info".to_string()));
            out.series.push(ForeignSeries {
                labels,
                kind: SeriesKind::Gauge,
                points: vec![(ts, 1.0)],
            });
        }
    }
    out
}

/// `job` and `instance` from the resource, and its other attributes for `target_info`.
/// Labels as name-value pairs.
type Pairs = Vec<(String, String)>;

fn resource_labels(attributes: &[KeyValue]) -> (Pairs, Pairs) {
    let get = |key: &str| {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| value_text(kv.value.as_ref()))
            .filter(|v| !v.is_empty())
    };
    let mut identity = Vec::new();
    match (get("service.namespace"), get("service.name")) {
        (Some(ns), Some(name)) => identity.push(("job".to_string(), format!("{ns}/{name}"))),
        (None, Some(name)) => identity.push(("job".to_string(), name)),
        _ => {}
    }
    if let Some(id) = get("service.instance.id") {
        identity.push(("instance".to_string(), id));
    }
    let rest: Vec<&KeyValue> = attributes
        .iter()
        .filter(|kv| {
            !matches!(
                kv.key.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            )
        })
        .collect();
    (identity, attribute_labels(rest))
}

/// Attributes as labels, sanitized, values of keys that collide joined with `;`.
fn attribute_labels<'a>(
    attributes: impl IntoIterator<Item = &'a KeyValue>,
) -> Vec<(String, String)> {
    let mut by_key: BTreeMap<String, Vec<(&str, String)>> = BTreeMap::new();
    for kv in attributes {
        let value = value_text(kv.value.as_ref());
        if value.is_empty() {
            continue;
        }
        by_key
            .entry(label_name(&kv.key))
            .or_default()
            .push((kv.key.as_str(), value));
    }
    by_key
        .into_iter()
        .map(|(k, mut values)| {
            values.sort();
            let joined: Vec<String> = values.into_iter().map(|(_, v)| v).collect();
            (k, joined.join(";"))
        })
        .collect()
}

/// An attribute value as text (arrays and maps as JSON).
fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex::encode(b),
        Some(v @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
            json_of(v).to_string()
        }
        Some(any_value::Value::StringValueStrindex(_)) => String::new(),
    }
}

fn json_of(value: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let of = |v: &AnyValue| v.value.as_ref().map_or(J::Null, json_of);
    match value {
        any_value::Value::StringValue(s) => J::from(s.as_str()),
        any_value::Value::BoolValue(b) => J::from(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::BytesValue(b) => J::from(hex::encode(b)),
        any_value::Value::ArrayValue(a) => J::Array(a.values.iter().map(of).collect()),
        any_value::Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, of)))
                .collect(),
        ),
        any_value::Value::StringValueStrindex(_) => J::Null,
    }
}

/// A label name from an attribute key.
pub fn label_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || name.starts_with("__") {
        format!("key_{name}")
    } else {
        name
    }
}

/// The Prometheus name of a metric: sanitized name, unit suffix, `_total` for counters.
pub fn metric_name(name: &str, unit: &str, gauge: bool, counter: bool) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if let Some(suffix) = unit_suffix(unit, gauge) {
        let bare = out.strip_suffix("_total").unwrap_or(&out);
        if !bare.ends_with(&format!("_{suffix}")) {
            if counter {
                out = bare.to_string();
            }
            out.push('_');
            out.push_str(&suffix);
        }
    }
    if counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// The suffix of a UCUM unit, if it gives one.
fn unit_suffix(unit: &str, gauge: bool) -> Option<String> {
    // Annotations in braces are not units.
    let unit: String = {
        let mut depth = 0;
        unit.chars()
            .filter(|&c| {
                match c {
                    '{' => depth += 1,
                    '}' => depth = (depth - 1).max(0),
                    _ => return depth == 0,
                }
                false
            })
            .collect()
    };
    let unit = unit.trim();
    if unit.is_empty() {
        return None;
    }
    if unit == "1" {
        return gauge.then(|| "ratio".to_string());
    }
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = unit_word(main);
    let per = per.map(per_word).filter(|p| !p.is_empty());
    let text = match (main.is_empty(), per) {
        (true, None) => return None,
        (true, Some(p)) => format!("per_{p}"),
        (false, None) => main,
        (false, Some(p)) => format!("{main}_per_{p}"),
    };
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(clean)
}

fn unit_word(unit: &str) -> String {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        "1" => "",
        other => other,
    }
    .to_string()
}

fn per_word(unit: &str) -> String {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
    .to_string()
}

fn map_metric(metric: &Metric, context: &Context, out: &mut Mapped) {
    let Some(data) = &metric.data else {
        return;
    };
    let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
    match data {
        Data::Gauge(g) => {
            let name = metric_name(&metric.name, &metric.unit, true, false);
            number_points(&name, SeriesKind::Gauge, &g.data_points, context, out);
        }
        Data::Sum(s) if !cumulative(s.aggregation_temporality) => out.reject(
            Reason::DeltaTemporality,
            s.data_points.len(),
            &metric.name,
            "sums with delta or unspecified temporality are not accepted; use cumulative (the collector's deltatocumulative processor)",
        ),
        Data::Sum(s) => {
            let counter = s.is_monotonic;
            let name = metric_name(&metric.name, &metric.unit, !counter, counter);
            let kind = if counter { SeriesKind::Counter } else { SeriesKind::Gauge };
            number_points(&name, kind, &s.data_points, context, out);
        }
        Data::Histogram(h) if !cumulative(h.aggregation_temporality) => out.reject(
            Reason::DeltaTemporality,
            h.data_points.len(),
            &metric.name,
            "histograms with delta or unspecified temporality are not accepted; use cumulative",
        ),
        Data::Histogram(h) => {
            let name = metric_name(&metric.name, &metric.unit, false, false);
            for p in &h.data_points {
                histogram_point(&name, &metric.name, p, context, out);
            }
        }
        Data::ExponentialHistogram(h) => out.reject(
            Reason::ExponentialHistogram,
            h.data_points.len(),
            &metric.name,
            "exponential histograms are not supported; use explicit bucket histograms",
        ),
        Data::Summary(s) => {
            let name = metric_name(&metric.name, &metric.unit, false, false);
            for p in &s.data_points {
                summary_point(&name, &metric.name, p, context, out);
            }
        }
    }
}

/// Unix ms of a point, if it has a time.
fn millis(nanos: u64) -> Option<i64> {
    (nanos > 0).then(|| i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
}

fn stale_or(flags: u32, value: f64) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN)
    } else {
        value
    }
}

fn labels_of(
    name: &str,
    attributes: &[KeyValue],
    context: &Context,
    extra: Option<(&str, String)>,
) -> Vec<(String, String)> {
    let mut labels = attribute_labels(attributes);
    // The resource's identity wins over a point attribute of the same name.
    labels.retain(|(k, _)| !context.labels.iter().any(|(c, _)| c == k));
    labels.extend(context.labels.iter().cloned());
    if let Some((k, v)) = extra {
        labels.retain(|(l, _)| l != k);
        labels.push((k.to_string(), v));
    }
    labels.push((NAME_LABEL.to_string(), name.to_string()));
    labels
}

fn push(out: &mut Mapped, labels: Vec<(String, String)>, kind: SeriesKind, point: (i64, f64)) {
    out.series.push(ForeignSeries {
        labels,
        kind,
        points: vec![point],
    });
}

fn number_points(
    name: &str,
    kind: SeriesKind,
    points: &[NumberDataPoint],
    context: &Context,
    out: &mut Mapped,
) {
    for p in points {
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => Some(v),
            Some(number_data_point::Value::AsInt(v)) => Some(v as f64),
            None if p.flags & NO_RECORDED_VALUE != 0 => Some(0.0),
            None => None,
        };
        let (Some(ts), Some(value)) = (millis(p.time_unix_nano), value) else {
            out.reject(
                Reason::InvalidPoint,
                1,
                name,
                "a data point without a time or a value",
            );
            continue;
        };
        let labels = labels_of(name, &p.attributes, context, None);
        push(out, labels, kind, (ts, stale_or(p.flags, value)));
    }
}

/// The bound of a bucket as Prometheus writes `le`.
fn le_text(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else if bound == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{bound}")
    }
}

fn histogram_point(
    name: &str,
    metric: &str,
    p: &HistogramDataPoint,
    context: &Context,
    out: &mut Mapped,
) {
    let Some(ts) = millis(p.time_unix_nano) else {
        out.reject(
            Reason::InvalidPoint,
            1,
            metric,
            "a data point without a time",
        );
        return;
    };
    let buckets = !p.bucket_counts.is_empty();
    if buckets && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        out.reject(
            Reason::InvalidPoint,
            1,
            metric,
            "a histogram point's bucket_counts must have one more entry than explicit_bounds",
        );
        return;
    }
    let v = |x: f64| stale_or(p.flags, x);
    if buckets {
        let mut cumulative = 0u64;
        let bounds = p.explicit_bounds.iter().copied().chain([f64::INFINITY]);
        for (count, bound) in p.bucket_counts.iter().zip(bounds) {
            cumulative = cumulative.saturating_add(*count);
            let labels = labels_of(
                &format!("{name}_bucket"),
                &p.attributes,
                context,
                Some(("le", le_text(bound))),
            );
            push(out, labels, SeriesKind::Counter, (ts, v(cumulative as f64)));
        }
    }
    if let Some(sum) = p.sum {
        let labels = labels_of(&format!("{name}_sum"), &p.attributes, context, None);
        push(out, labels, SeriesKind::Counter, (ts, v(sum)));
    }
    let labels = labels_of(&format!("{name}_count"), &p.attributes, context, None);
    push(out, labels, SeriesKind::Counter, (ts, v(p.count as f64)));
}

fn summary_point(
    name: &str,
    metric: &str,
    p: &SummaryDataPoint,
    context: &Context,
    out: &mut Mapped,
) {
    let Some(ts) = millis(p.time_unix_nano) else {
        out.reject(
            Reason::InvalidPoint,
            1,
            metric,
            "a data point without a time",
        );
        return;
    };
    let v = |x: f64| stale_or(p.flags, x);
    for q in &p.quantile_values {
        let labels = labels_of(
            name,
            &p.attributes,
            context,
            Some(("quantile", le_text(q.quantile))),
        );
        push(out, labels, SeriesKind::Gauge, (ts, v(q.value)));
    }
    let labels = labels_of(&format!("{name}_sum"), &p.attributes, context, None);
    push(out, labels, SeriesKind::Counter, (ts, v(p.sum)));
    let labels = labels_of(&format!("{name}_count"), &p.attributes, context, None);
    push(out, labels, SeriesKind::Counter, (ts, v(p.count as f64)));
}

#[cfg(test)]
mod tests;
