//! What PromQL computes with: label sets, samples, series and the four value types.

use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::store::NAME_LABEL;

/// Prometheus' staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether a stored value is a staleness marker rather than a number (an ordinary NaN is a
/// number to PromQL).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A label set, sorted by name, `__name__` included when the series has one. Empty values
/// are never kept: in PromQL a label with an empty value is the same as no label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// From pairs in any order; empty values are dropped and the last of duplicates wins.
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        Self(pairs)
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// A label's value, "" when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    /// The metric name, "" when there is none.
    pub fn name(&self) -> &str {
        self.get(NAME_LABEL)
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut pairs = self.0.clone();
        match pairs.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                pairs.remove(i);
            }
            Ok(i) => pairs[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => pairs.insert(i, (name.to_string(), value.to_string())),
        }
        Self(pairs)
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Self {
        self.without(&[NAME_LABEL])
    }

    /// A copy without these labels.
    pub fn without<S: AsRef<str>>(&self, names: &[S]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| n.as_ref() == k))
                .cloned()
                .collect(),
        )
    }

    /// A copy with only these labels.
    pub fn only<S: AsRef<str>>(&self, names: &[S]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n.as_ref() == k))
                .cloned()
                .collect(),
        )
    }

    /// Whether there is no label at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// As Prometheus' API writes a metric: a JSON object of labels.
impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A shared label set: series keep theirs across every step of a query.
pub type Metric = Arc<Labels>;

/// `m` without `__name__`, sharing `m` itself when it has no name.
pub(super) fn unnamed(m: &Metric) -> Metric {
    if m.name().is_empty() {
        Arc::clone(m)
    } else {
        Arc::new(m.without_name())
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: Metric,
    /// The value.
    pub value: f64,
    /// When the value was recorded: the sample's own time for a plain selector (what
    /// `timestamp()` returns), the evaluation time for everything computed.
    pub ts: i64,
}

/// An instant vector: at most one sample per label set.
pub type Vector = Vec<Sample>;

/// A series over time: a range vector's element, or a range query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: Metric,
    /// Points in time order, (unix ms, value).
    pub points: Vec<(i64, f64)>,
}

/// A list of series.
pub type Matrix = Vec<Series>;

/// What an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, at the evaluation time.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vector),
    /// A range vector, or every step of a range query.
    Matrix(Matrix),
}

impl Value {
    /// Prometheus' name of the type: `scalar`, `string`, `vector`, `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// How Go spells the floats that are not numbers: `NaN`, `+Inf`, `-Inf`.
pub(crate) fn go_special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// A float as Prometheus' API writes it: `NaN`, `+Inf`, `-Inf`, or Go's shortest form.
pub fn format_value(v: f64) -> String {
    if let Some(s) = go_special(v) {
        s.into()
    } else {
        let s = format!("{v}");
        // Go's strconv 'f' -1 writes large and small magnitudes with an exponent.
        if v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-4) {
            go_exponent(v)
        } else {
            s
        }
    }
}

fn go_exponent(v: f64) -> String {
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((mant, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mant}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// A timestamp in ms as Prometheus' API writes it: seconds with up to three decimals.
pub fn format_time(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_drop_empty_and_keep_the_last_duplicate() {
        let l = Labels::new(vec![
            ("b".into(), "1".into()),
            ("a".into(), "".into()),
            ("b".into(), "2".into()),
            ("__name__".into(), "m".into()),
        ]);
        assert_eq!(l.to_string(), r#"{__name__="m", b="2"}"#);
        assert_eq!(l.with("a", "x").get("a"), "x");
        assert_eq!(l.with("b", "").get("b"), "");
        assert_eq!(l.without_name().name(), "");
    }

    #[test]
    fn values_are_written_as_prometheus_writes_them() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(1.5e-7), "1.5e-07");
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
    }
}
