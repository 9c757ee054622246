//! Aggregation operators over instant vectors, grouped `by` or `without` labels, with
//! Prometheus' numerics: Kahan–Neumaier sums, a mean that switches to incremental
//! computation when the sum would overflow, Welford's variance.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use rustc_hash::{FxHashMap, FxHasher};

use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{
    Labels, Metric, QueryError, Sample, Vector,
    eval::{Evaluator, Steps},
    functions::{kahan_inc, quantile},
};
use crate::store::NAME_LABEL;

/// Evaluates `a` at every time.
pub(super) fn eval(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    times: &[i64],
) -> Result<Steps, QueryError> {
    let op = a.op.to_string();
    let grouping = Grouping::of(a.modifier.as_ref());
    let param = match &a.param {
        Some(p) => Some(ev.eval(p, times)?),
        None => None,
    };
    let Steps::Vector(input) = ev.eval(&a.expr, times)? else {
        return Err(QueryError::BadData(format!(
            "expected type instant vector in aggregation expression {op}"
        )));
    };
    let mut memo = GroupMemo::default();
    let mut out = Vec::with_capacity(input.len());
    for (i, vector) in input.into_iter().enumerate() {
        let step_param = match &param {
            Some(Steps::Scalar(v)) => Param::Number(v.get(i).copied().unwrap_or(f64::NAN)),
            Some(Steps::String(s)) => Param::Text(s.clone()),
            Some(Steps::Vector(_)) => {
                return Err(QueryError::BadData(format!(
                    "expected type scalar in aggregation parameter of {op}, got instant vector"
                )));
            }
            None => Param::None,
        };
        out.push(aggregate_step(
            ev, &op, &grouping, &mut memo, step_param, vector, times[i],
        )?);
    }
    Ok(Steps::Vector(out))
}

enum Param {
    None,
    Number(f64),
    Text(String),
}

struct Grouping {
    by: bool,
    labels: Vec<String>,
}

impl Grouping {
    fn of(m: Option<&LabelModifier>) -> Self {
        match m {
            Some(LabelModifier::Include(l)) => Self {
                by: true,
                labels: l.labels.clone(),
            },
            Some(LabelModifier::Exclude(l)) => Self {
                by: false,
                labels: l.labels.clone(),
            },
            None => Self {
                by: true,
                labels: Vec::new(),
            },
        }
    }

    fn keeps(&self, label: &str) -> bool {
        if self.by {
            self.labels.iter().any(|l| l == label)
        } else {
            label != NAME_LABEL && !self.labels.iter().any(|l| l == label)
        }
    }

    fn key(&self, m: &Labels) -> u64 {
        let mut h = FxHasher::default();
        for (k, v) in m.pairs().iter().filter(|(k, _)| self.keeps(k)) {
            k.hash(&mut h);
            v.hash(&mut h);
        }
        h.finish()
    }

    fn labels(&self, m: &Labels) -> Labels {
        Labels::new(
            m.pairs()
                .iter()
                .filter(|(k, _)| self.keeps(k))
                .cloned()
                .collect(),
        )
    }
}

/// Group keys and group labels remembered across the steps of one aggregation. Input
/// samples of one series share one label allocation across steps, and every input was
/// allocated before the aggregation began, so an address names one label set throughout.
#[derive(Default)]
struct GroupMemo {
    keys: FxHashMap<*const Labels, u64>,
    labels: FxHashMap<u64, Metric>,
}

impl GroupMemo {
    fn key(&mut self, g: &Grouping, m: &Metric) -> u64 {
        *self.keys.entry(Arc::as_ptr(m)).or_insert_with(|| g.key(m))
    }

    fn labels(&mut self, g: &Grouping, key: u64, m: &Labels) -> Metric {
        self.labels
            .entry(key)
            .or_insert_with(|| Arc::new(g.labels(m)))
            .clone()
    }
}

/// The groups of one step, in order of first appearance.
fn groups<'v>(
    g: &Grouping,
    memo: &mut GroupMemo,
    v: &'v [Sample],
) -> Vec<(Metric, Vec<&'v Sample>)> {
    let mut index: FxHashMap<u64, usize> = FxHashMap::default();
    let mut out: Vec<(Metric, Vec<&Sample>)> = Vec::new();
    for s in v {
        let key = memo.key(g, &s.metric);
        match index.get(&key) {
            Some(&i) => out[i].1.push(s),
            None => {
                index.insert(key, out.len());
                out.push((memo.labels(g, key, &s.metric), vec![s]));
            }
        }
    }
    out
}

fn aggregate_step(
    ev: &mut Evaluator<'_>,
    op: &str,
    g: &Grouping,
    memo: &mut GroupMemo,
    param: Param,
    v: Vector,
    t: i64,
) -> Result<Vector, QueryError> {
    match op {
        "topk" | "bottomk" => return top(op, g, memo, param, v),
        "count_values" => return count_values(g, param, v, t),
        "quantile" => {
            let Param::Number(q) = param else {
                return Err(QueryError::BadData("quantile needs a number".into()));
            };
            if !(0.0..=1.0).contains(&q) {
                ev.ann.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    go_float(q)
                ));
            }
        }
        "limitk" | "limit_ratio" if matches!(param, Param::Number(p) if p.is_nan()) => {
            let what = if op == "limitk" { "Parameter" } else { "Ratio" };
            return Err(QueryError::Execution(format!("{what} value is NaN")));
        }
        "limitk" | "limit_ratio" => {
            return Err(QueryError::BadData(format!(
                "the experimental aggregation {op} is not supported"
            )));
        }
        _ => {}
    }
    let mut out = Vec::new();
    for (labels, samples) in groups(g, memo, &v) {
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        let value = match op {
            "sum" => kahan_sum(&values),
            "avg" => mean(&values),
            "min" => values
                .iter()
                .copied()
                .fold(f64::NAN, |m, x| if m > x || m.is_nan() { x } else { m }),
            "max" => values
                .iter()
                .copied()
                .fold(f64::NAN, |m, x| if m < x || m.is_nan() { x } else { m }),
            "count" => values.len() as f64,
            "group" => 1.0,
            "stdvar" => variance(&values),
            "stddev" => variance(&values).sqrt(),
            "quantile" => {
                let Param::Number(q) = param else {
                    return Err(QueryError::BadData("quantile needs a number".into()));
                };
                let mut values = values;
                quantile(q, &mut values)
            }
            other => return Err(QueryError::BadData(format!("unknown aggregation {other}"))),
        };
        out.push(Sample {
            metric: labels,
            value,
            ts: t,
        });
    }
    Ok(out)
}

/// Go's `%v` of a float, as Prometheus' messages print it.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        super::format_value(v)
    }
}

pub(super) fn kahan_sum(values: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for (i, &v) in values.iter().enumerate() {
        if i == 0 {
            sum = v;
        } else {
            (sum, c) = kahan_inc(v, sum, c);
        }
    }
    if c.is_finite() { sum + c } else { sum }
}

/// Prometheus' mean: a Kahan sum divided by the count, unless the sum would overflow,
/// from where on the mean is updated incrementally.
pub(super) fn mean(values: &[f64]) -> f64 {
    let (mut sum, mut c, mut avg) = (0.0, 0.0, 0.0);
    let mut incremental = false;
    for (i, &v) in values.iter().enumerate() {
        let n = (i + 1) as f64;
        if i == 0 {
            sum = v;
            continue;
        }
        if !incremental {
            let (s, cc) = kahan_inc(v, sum, c);
            if !s.is_infinite() {
                (sum, c) = (s, cc);
                continue;
            }
            incremental = true;
            avg = sum / (n - 1.0);
            c /= n - 1.0;
        }
        if avg.is_infinite() {
            if v.is_infinite() && (avg > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let current = avg + c;
        (avg, c) = kahan_inc(v / n - current / n, avg, c);
    }
    if incremental {
        avg + c
    } else if values.is_empty() {
        f64::NAN
    } else {
        (sum + c) / values.len() as f64
    }
}

/// Population variance, Welford's way, as Prometheus computes `stdvar`.
pub(super) fn variance(values: &[f64]) -> f64 {
    let (mut count, mut m, mut value) = (0.0, 0.0, 0.0);
    for (i, &v) in values.iter().enumerate() {
        count += 1.0;
        if i == 0 {
            m = v;
            value = if v.is_finite() { 0.0 } else { f64::NAN };
            continue;
        }
        let delta = v - m;
        m += delta / count;
        value += delta * (v - m);
    }
    value / count
}

fn k_of(op: &str, param: &Param) -> Result<i64, QueryError> {
    let Param::Number(k) = *param else {
        return Err(QueryError::BadData(format!("{op} needs a number")));
    };
    if k.is_nan() {
        return Err(QueryError::Execution("Parameter value is NaN".into()));
    }
    if k >= 9.223_372_036_854_776e18 {
        return Err(QueryError::Execution(format!(
            "Scalar value {} overflows int64",
            go_float(k)
        )));
    }
    Ok(k as i64)
}

/// `topk`/`bottomk`: each group's k largest (smallest) samples, labels untouched, each
/// group's in order; NaN ranks last either way.
fn top(
    op: &str,
    g: &Grouping,
    memo: &mut GroupMemo,
    param: Param,
    v: Vector,
) -> Result<Vector, QueryError> {
    let k = k_of(op, &param)?;
    if k < 1 {
        return Ok(Vec::new());
    }
    let desc = op == "topk";
    let mut out = Vec::new();
    for (_, mut samples) in groups(g, memo, &v) {
        samples.sort_by(|a, b| {
            let (x, y) = (a.value, b.value);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        });
        out.extend(
            samples
                .into_iter()
                .take(usize::try_from(k).unwrap_or(usize::MAX))
                .cloned(),
        );
    }
    Ok(out)
}

/// `count_values`: per group, how many samples have each value; the value becomes label
/// `param`.
fn count_values(g: &Grouping, param: Param, v: Vector, t: i64) -> Result<Vector, QueryError> {
    let Param::Text(label) = param else {
        return Err(QueryError::BadData(
            "count_values needs a label name".into(),
        ));
    };
    if !valid_label_name(&label) {
        return Err(QueryError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let mut order: Vec<Labels> = Vec::new();
    let mut counts: HashMap<Labels, f64> = HashMap::new();
    for s in &v {
        let base = if g.by {
            g.labels(&s.metric)
        } else {
            g.labels(&s.metric.without(&[label.as_str()]))
        };
        let key = base.with(&label, &count_value_text(s.value));
        let n = counts.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            0.0
        });
        *n += 1.0;
    }
    Ok(order
        .into_iter()
        .map(|m| {
            let value = counts.get(&m).copied().unwrap_or(0.0);
            Sample {
                metric: Metric::new(m),
                value,
                ts: t,
            }
        })
        .collect())
}

/// Go's `FormatFloat(v, 'f', -1, 64)`.
fn count_value_text(v: f64) -> String {
    super::value::go_special(v).map_or_else(|| format!("{v}"), str::to_string)
}

pub(super) fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && std::str::from_utf8(name.as_bytes()).is_ok() && !name.contains('\u{fffd}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_means_keep_precision_where_naive_ones_lose_it() {
        assert_eq!(kahan_sum(&[1e100, 1.0, -1e100]), 1.0);
        let m = mean(&[1e308, 1e308, -1e308]);
        assert!((m / (1e308 / 3.0) - 1.0).abs() < 1e-12, "{m}");
        assert_eq!(mean(&[2.0, 4.0]), 3.0);
        assert_eq!(variance(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 4.0);
    }

    #[test]
    fn quantiles_interpolate_and_clamp() {
        assert_eq!(quantile(0.5, &mut [1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(1.5, &mut [1.0]), f64::INFINITY);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert!(quantile(f64::NAN, &mut [1.0]).is_nan());
    }
}
