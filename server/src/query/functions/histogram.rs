//! Histogram functions over classic histograms: one series per bucket, its upper bound in
//! the `le` label, its value the cumulative count.
//!
//! Buckets are grouped by their labels without `le`; the output sample of a group has
//! neither `le` nor `__name__`. As in Prometheus, buckets are sorted by bound, buckets
//! with one bound are merged, relative differences below 1e-12 between neighbours are
//! taken as rounding noise, and counts that still decrease are raised to the previous
//! count, with an info saying the input needed fixing.
//!
//! Native histograms are out of scope: the server stores floats only. The functions that
//! only act on native histograms (`histogram_count`, `_sum`, `_avg`, `_stddev`, `_stdvar`)
//! ignore float samples as Prometheus does, so they return nothing, with an info.

use std::sync::Arc;

use super::{Args, CallCtx, Labels, Metric, Value, Vector, check_quantile, go_g, sample};
use crate::{query::QueryError, store::NAME_LABEL};

/// The bucket label.
const LE: &str = "le";

/// Relative difference between neighbouring buckets taken as floating-point noise.
const SMALL_DELTA: f64 = 1e-12;

/// Calls `args.name` if it is a histogram function.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    let result = match args.name {
        "histogram_quantile" => histogram_quantile(args, ctx),
        "histogram_quantiles" => histogram_quantiles(args, ctx),
        "histogram_fraction" => histogram_fraction(args, ctx),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => native_only(args, ctx),
        _ => return None,
    };
    Some(result)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// One classic histogram: its output labels and its buckets.
struct Group {
    metric: Metric,
    buckets: Vec<Bucket>,
}

/// Groups the samples into histograms, in order of first appearance; a sample whose `le`
/// is missing or not a number is left out with a warning.
fn group(v: Vector, ann: &mut crate::query::Annotations) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for s in v {
        let le = s.metric.get(LE);
        let Some(upper) = parse_go_float(le) else {
            let mut msg =
                format!("bucket label \"le\" is missing or has a malformed value of {le:?}");
            let name = s.metric.name();
            if !name.is_empty() {
                msg.push_str(&format!(" for metric name {name:?}"));
            }
            ann.warn(msg);
            continue;
        };
        // The signature keeps `__name__`: two histograms of different names that end up
        // with one label set are refused by the caller, as in Prometheus.
        let key = s.metric.without(&[LE]);
        let bucket = Bucket {
            upper,
            count: s.value,
        };
        match index.get(&key) {
            Some(&i) => groups[i].buckets.push(bucket),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    metric: Arc::new(key.without(&[NAME_LABEL])),
                    buckets: vec![bucket],
                });
            }
        }
    }
    groups
}

/// A float as Go's `strconv.ParseFloat` reads a bucket bound (decimal forms, `Inf`,
/// `+Inf`, `NaN`, any case).
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

const MONOTONICITY_INFO: &str = "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

fn histogram_quantile(args: &mut Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let q = args.scalar(0)?;
    let v = args.take_vector(1)?;
    check_quantile(q, ctx.ann);
    let mut out = Vector::new();
    for mut g in group(v, ctx.ann) {
        let (value, forced) = bucket_quantile(q, &mut g.buckets);
        if forced {
            ctx.ann.info(MONOTONICITY_INFO);
        }
        out.push(sample(g.metric, value, ctx));
    }
    Ok(Value::Vector(out))
}

/// `histogram_quantiles(v, label, φ...)`: one sample per histogram and φ, the φ in `label`.
fn histogram_quantiles(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Result<Value, QueryError> {
    let label = args.string(1)?.to_string();
    let qs = (2..args.len())
        .map(|i| args.scalar(i))
        .collect::<Result<Vec<_>, _>>()?;
    let v = args.take_vector(0)?;
    for &q in &qs {
        check_quantile(q, ctx.ann);
    }
    let groups = group(v, ctx.ann);
    let mut out = Vector::new();
    for &q in &qs {
        let q_label = format_openmetrics_float(q);
        for g in &groups {
            let mut buckets = g.buckets.clone();
            let (value, forced) = bucket_quantile(q, &mut buckets);
            if forced {
                ctx.ann.info(MONOTONICITY_INFO);
            }
            out.push(sample(
                Arc::new(g.metric.with(&label, &q_label)),
                value,
                ctx,
            ));
        }
    }
    Ok(Value::Vector(out))
}

/// A float as OpenMetrics writes it: Go's shortest form, with `.0` on whole numbers.
fn format_openmetrics_float(v: f64) -> String {
    let s = go_g(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

fn histogram_fraction(args: &mut Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let lower = args.scalar(0)?;
    let upper = args.scalar(1)?;
    let v = args.take_vector(2)?;
    let out = group(v, ctx.ann)
        .into_iter()
        .map(|mut g| {
            let value = bucket_fraction(lower, upper, &mut g.buckets);
            sample(g.metric, value, ctx)
        })
        .collect();
    Ok(Value::Vector(out))
}

fn native_only(args: &mut Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let v = args.take_vector(0)?;
    if !v.is_empty() {
        ctx.ann.info(format!(
            "{}() only acts on native histograms, which this server does not store; {} float samples ignored",
            args.name,
            v.len()
        ));
    }
    Ok(Value::Vector(Vector::new()))
}

/// Sorts by bound and merges buckets with one bound.
fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    buckets.dedup_by(|later, earlier| {
        if later.upper == earlier.upper {
            earlier.count += later.count;
            true
        } else {
            false
        }
    });
}

/// Prometheus' `almost.Equal`: relative difference below `epsilon`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Ignores differences that are rounding noise, then raises decreasing counts to the
/// previous one; whether a real decrease had to be removed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

/// Go's `sort.Search`: the first index below `n` where `pred` holds, else `n`.
fn search(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The φ-quantile of a classic histogram, interpolated linearly within its bucket (from 0
/// in the lowest bucket when its bound is positive); the second highest bound when it
/// falls in the `+Inf` bucket. NaN without a `+Inf` bucket, with fewer than two buckets
/// or no observations. Also whether monotonicity had to be forced.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    let forced = ensure_monotonic(buckets);
    let n = buckets.len();
    if n < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = search(n - 1, |i| buckets[i].count >= rank);
    if b == n - 1 {
        return (buckets[n - 2].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The fraction of observations between `lower` and `upper`, interpolating linearly
/// within buckets; the lowest bucket starts at 0 when its bound is positive, else at
/// -Inf (where nothing is interpolated).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    sort_and_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            (lower_rank, lower_set) = (rank, true);
        }
        if !upper_set && lower_bound >= upper {
            (upper_rank, upper_set) = (rank, true);
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            (lower_rank, lower_set) = (interpolate(lower), true);
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            (upper_rank, upper_set) = (interpolate(upper), true);
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > total {
        lower_rank = total;
    }
    if !upper_set || upper_rank > total {
        upper_rank = total;
    }
    (upper_rank - lower_rank) / total
}

#[cfg(test)]
mod tests {
    use super::super::Arg;
    use super::super::test_support::*;
    use super::*;

    fn buckets(name: &str, extra: &[(&str, &str)], pairs: &[(&str, f64)]) -> Vector {
        pairs
            .iter()
            .map(|(le, v)| {
                let mut l = vec![("__name__", name), ("le", *le)];
                l.extend_from_slice(extra);
                s(&l, *v)
            })
            .collect()
    }

    fn quantile_of(q: f64, v: Vector) -> (Vector, crate::query::Annotations) {
        let (r, ann) = run(
            "histogram_quantile",
            vec![Arg::Scalar(q), Arg::Vector(v)],
            0,
            false,
        );
        (vector(r), ann)
    }

    #[test]
    fn quantile_interpolates_within_the_bucket() {
        // testhistogram2 at 7m: q(1/6), q(1/2), q(5/6) fall mid-bucket.
        let h = || {
            buckets(
                "h_bucket",
                &[],
                &[
                    ("0", 0.0),
                    ("2", 1.0),
                    ("4", 2.0),
                    ("6", 3.0),
                    ("+Inf", 3.0),
                ],
            )
        };
        for (q, want) in [(1.0 / 6.0, 1.0), (0.5, 3.0), (5.0 / 6.0, 5.0)] {
            let (v, ann) = quantile_of(q, h());
            assert!(close(v[0].value, want), "q {q}: {}", v[0].value);
            assert!(v[0].metric.is_empty());
            assert!(ann.warnings.is_empty() && ann.infos.is_empty());
        }
    }

    #[test]
    fn quantile_groups_by_labels_and_merges_equal_bounds() {
        let mut v = buckets(
            "r_bucket",
            &[("job", "a")],
            &[("0.1", 10.0), ("0.2", 30.0), ("+Inf", 40.0)],
        );
        v.extend(buckets(
            "r_bucket",
            &[("job", "b")],
            &[("0.1", 20.0), ("0.2", 50.0), ("+Inf", 60.0)],
        ));
        let (out, _) = quantile_of(0.3, v);
        assert_eq!(out.len(), 2);
        assert!(close(out[0].value, 0.11));
        assert!(close(out[1].value, 0.09));
        assert_eq!(out[0].metric.to_string(), r#"{job="a"}"#);
        // "0.2", "2e-1" and "2.0e-1" are one bound.
        let v = buckets(
            "m_bucket",
            &[],
            &[
                ("0.1", 10.0),
                ("0.2", 10.0),
                ("2e-1", 10.0),
                ("2.0e-1", 10.0),
                ("+Inf", 40.0),
            ],
        );
        assert!(close(quantile_of(0.5, v).0[0].value, 0.15));
    }

    /// Cumulative counts that fall three times (at 1, 100 and +Inf).
    fn non_monotonic() -> Vector {
        buckets(
            "n_bucket",
            &[],
            &[
                ("0.1", 20.0),
                ("1", 10.0),
                ("10", 50.0),
                ("100", 40.0),
                ("1000", 90.0),
                ("+Inf", 80.0),
            ],
        )
    }

    #[test]
    fn quantile_forces_monotonicity_with_an_info() {
        let h = non_monotonic;
        for (q, want) in [(0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)] {
            let (v, ann) = quantile_of(q, h());
            assert!(close(v[0].value, want), "q {q}: {}", v[0].value);
            assert_eq!(ann.infos, vec![format!("PromQL info: {MONOTONICITY_INFO}")]);
        }
    }

    #[test]
    fn quantile_special_cases() {
        let h = || buckets("h_bucket", &[], &[("0.1", 5.0), ("+Inf", 10.0)]);
        let (v, ann) = quantile_of(-0.1, h());
        assert_eq!(v[0].value, f64::NEG_INFINITY);
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got -0.1"]
        );
        let (v, ann) = quantile_of(f64::NAN, Vector::new());
        assert!(v.is_empty());
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got NaN"]
        );
        let (v, _) = quantile_of(0.5, buckets("h_bucket", &[], &[("0.1", 5.0), ("1", 10.0)]));
        assert!(v[0].value.is_nan(), "no +Inf bucket");
        let (v, _) = quantile_of(
            0.5,
            buckets("h_bucket", &[], &[("0.1", 0.0), ("+Inf", 0.0)]),
        );
        assert!(v[0].value.is_nan(), "no observations");
        let (v, _) = quantile_of(
            0.99,
            buckets("h_bucket", &[], &[("0.1", 5.0), ("1", 6.0), ("+Inf", 10.0)]),
        );
        assert_eq!(
            v[0].value, 1.0,
            "the +Inf bucket answers the second highest bound"
        );
        let (v, _) = quantile_of(
            0.1,
            buckets("h_bucket", &[], &[("-0.2", 5.0), ("+Inf", 10.0)]),
        );
        assert_eq!(v[0].value, -0.2);
    }

    #[test]
    fn malformed_le_is_skipped_with_a_warning_and_name_clashes_fail() {
        let (v, ann) = quantile_of(
            0.8,
            vec![s(&[("__name__", "series"), ("le", "Hello World")], 2.0)],
        );
        assert!(v.is_empty());
        assert_eq!(
            ann.warnings,
            vec![
                r#"PromQL warning: bucket label "le" is missing or has a malformed value of "Hello World" for metric name "series""#
            ]
        );
        let mut v = buckets("a_bucket", &[], &[("0.1", 1.0), ("+Inf", 2.0)]);
        v.extend(buckets("b_bucket", &[], &[("0.1", 1.0), ("+Inf", 2.0)]));
        let (r, _) = run(
            "histogram_quantile",
            vec![Arg::Scalar(0.5), Arg::Vector(v)],
            0,
            false,
        );
        assert!(r.is_err());
    }

    #[test]
    fn quantiles_label_each_quantile() {
        let h = non_monotonic();
        let args = vec![
            Arg::Vector(h),
            Arg::String("q".into()),
            Arg::Scalar(0.01),
            Arg::Scalar(0.5),
            Arg::Scalar(1.0),
        ];
        let out = vector(run("histogram_quantiles", args, 0, false).0);
        let got: Vec<(String, f64)> = out
            .iter()
            .map(|s| (s.metric.get("q").to_string(), s.value))
            .collect();
        assert_eq!(got[0].0, "0.01");
        assert!(close(got[1].1, 8.5));
        assert_eq!(got[2].0, "1.0");
    }

    #[test]
    fn fraction_interpolates_linearly() {
        let h = || {
            buckets(
                "h_bucket",
                &[],
                &[
                    ("0", 0.0),
                    ("2", 10.0),
                    ("4", 20.0),
                    ("6", 30.0),
                    ("+Inf", 30.0),
                ],
            )
        };
        let frac = |lo: f64, hi: f64| {
            only(
                run(
                    "histogram_fraction",
                    vec![Arg::Scalar(lo), Arg::Scalar(hi), Arg::Vector(h())],
                    0,
                    false,
                )
                .0,
            )
        };
        assert!(close(frac(0.0, 4.0), 0.6666666666666666));
        assert!(close(frac(0.0, 3.5), 0.5833333333333334));
        assert_eq!(frac(0.0, 6.0), 1.0);
        assert_eq!(frac(3.0, 2.0), 0.0);
        assert!(frac(f64::NAN, 1.0).is_nan());
        assert_eq!(frac(f64::NEG_INFINITY, f64::INFINITY), 1.0);
    }

    #[test]
    fn native_only_functions_ignore_floats_with_an_info() {
        let (r, ann) = run(
            "histogram_count",
            vec![Arg::Vector(vec![s(&[("le", "1")], 1.0)])],
            0,
            false,
        );
        assert!(vector(r).is_empty());
        assert_eq!(ann.infos.len(), 1);
        assert!(ann.warnings.is_empty());
    }
}
