//! Functions of a range vector: rate and its kin, the `*_over_time` aggregations,
//! regression (`deriv`, `predict_linear`) and `double_exponential_smoothing`.
//!
//! Each series of the range argument is reduced on its own to at most one output sample;
//! a series without points in the window gives none. All drop `__name__` except
//! `last_over_time` and `first_over_time`, which pick a sample as `offset` would.

use super::{
    Args, CallCtx, RangeArg, RangeSeries, Value, Vector, check_quantile, kahan_inc, quantile,
    sample,
};
use crate::query::QueryError;

/// Reduces one series' points in the window to a value, or to nothing.
type Reduce = fn(&[(i64, f64)]) -> Option<f64>;

/// Calls `args.name` if it is a range function.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    let name = args.name;
    let simple: Option<Reduce> = match name {
        "resets" => Some(resets),
        "changes" => Some(changes),
        "irate" => Some(|p| instant_value(p, true)),
        "idelta" => Some(|p| instant_value(p, false)),
        "deriv" => Some(deriv),
        "avg_over_time" => Some(avg_over_time),
        "sum_over_time" => Some(sum_over_time),
        "count_over_time" => Some(|p| Some(p.len() as f64)),
        "min_over_time" => Some(|p| compare_over_time(p, |cur, m| cur < m).map(|x| x.1)),
        "max_over_time" => Some(|p| compare_over_time(p, |cur, m| cur > m).map(|x| x.1)),
        "ts_of_min_over_time" => {
            Some(|p| compare_over_time(p, |cur, m| cur <= m).map(|x| secs(x.0)))
        }
        "ts_of_max_over_time" => {
            Some(|p| compare_over_time(p, |cur, m| cur >= m).map(|x| secs(x.0)))
        }
        "ts_of_first_over_time" => Some(|p| p.first().map(|x| secs(x.0))),
        "ts_of_last_over_time" => Some(|p| p.last().map(|x| secs(x.0))),
        "first_over_time" => Some(|p| p.first().map(|x| x.1)),
        "last_over_time" => Some(|p| p.last().map(|x| x.1)),
        "stdvar_over_time" => Some(variance),
        "stddev_over_time" => Some(|p| variance(p).map(f64::sqrt)),
        "mad_over_time" => Some(mad_over_time),
        "present_over_time" => Some(|_| Some(1.0)),
        _ => None,
    };
    if let Some(f) = simple {
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        return Some(
            args.range(0)
                .map(|r| Value::Vector(per_series(r, ctx, keep_name, |s| f(s.points)))),
        );
    }
    let result = match name {
        "rate" => rate_like(args, ctx, true, true),
        "increase" => rate_like(args, ctx, true, false),
        "delta" => rate_like(args, ctx, false, false),
        "predict_linear" => predict_linear(args, ctx),
        "quantile_over_time" => quantile_over_time(args, ctx),
        "double_exponential_smoothing" => double_exponential_smoothing(args, ctx),
        _ => return None,
    };
    Some(result)
}

/// Applies `f` to each series with points, dropping `__name__` unless `keep_name`.
fn per_series(
    r: &RangeArg<'_>,
    ctx: &CallCtx<'_>,
    keep_name: bool,
    mut f: impl FnMut(&RangeSeries<'_>) -> Option<f64>,
) -> Vector {
    let mut out = Vector::with_capacity(r.series.len());
    for s in r.series.iter().filter(|s| !s.points.is_empty()) {
        if let Some(v) = f(s) {
            let metric = if keep_name {
                s.metric.clone()
            } else {
                s.unnamed.clone()
            };
            out.push(sample(metric, v, ctx));
        }
    }
    out
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `rate`, `increase` and `delta`, with the info for counters whose name does not say so.
fn rate_like(
    args: &Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
    is_counter: bool,
    is_rate: bool,
) -> Result<Value, QueryError> {
    let r = args.range(0)?;
    let (start, end) = (r.start, r.end);
    let mut suspicious = Vec::new();
    let out = per_series(r, ctx, false, |s| {
        let v = extrapolated_rate(s.points, start, end, is_counter, is_rate)?;
        let name = s.metric.name();
        if is_counter && !name.is_empty() && !has_counter_suffix(name) {
            suspicious.push(name.to_string());
        }
        Some(v)
    });
    for name in suspicious {
        ctx.ann.info(format!(
            "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
        ));
    }
    Ok(Value::Vector(out))
}

fn has_counter_suffix(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Prometheus' `extrapolatedRate`: the change over the sampled interval (counter resets
/// added back for counters), extrapolated to the window's edges when the first/last
/// sample lies within 1.1 average intervals of them, else by half an interval; a counter
/// is never extrapolated below zero. Per second when `is_rate`.
fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        for w in points.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut to_start = secs(first_t - range_start);
    let mut to_end = secs(range_end - last_t);
    let sampled = secs(last_t - first_t);
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if is_counter {
        // Where the counter would have been zero, if that is nearer than `to_start`.
        let mut to_zero = to_start;
        if result > 0.0 && first_v >= 0.0 {
            to_zero = sampled * (first_v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= secs(range_end - range_start);
    }
    Some(result * factor)
}

/// `irate`/`idelta` from the last two points; a drop counts as a reset for `irate`.
fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (t0, v0) = points[points.len() - 2];
    let (t1, v1) = points[points.len() - 1];
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    let mut result = v1;
    if !is_rate || v1 >= v0 || v1.is_nan() || v0.is_nan() {
        result = v1 - v0;
    }
    if is_rate {
        result /= secs(interval);
    }
    Some(result)
}

fn resets(points: &[(i64, f64)]) -> Option<f64> {
    Some(points.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
}

fn changes(points: &[(i64, f64)]) -> Option<f64> {
    let changed = |a: f64, b: f64| a != b && !(a.is_nan() && b.is_nan());
    Some(
        points
            .windows(2)
            .filter(|w| changed(w[0].1, w[1].1))
            .count() as f64,
    )
}

/// Least-squares slope and the intercept at `intercept_t`, with compensated sums; a
/// constant series has slope 0 (NaN if the constant is infinite).
fn linear_regression(points: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let init_y = points[0].1;
    let mut const_y = true;
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(t, y)) in points.iter().enumerate() {
        if const_y && i > 0 && y != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = secs(t - intercept_t);
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(y, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * y, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

fn deriv(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    // Relative to the first point, to keep the sums small (Prometheus issue 2674).
    Some(linear_regression(points, points[0].0).0)
}

/// `predict_linear(v, seconds)`: the regression line at the step's time plus `seconds`.
fn predict_linear(args: &Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let r = args.range(0)?;
    let duration = args.scalar(1)?;
    let t = ctx.t;
    Ok(Value::Vector(per_series(r, ctx, false, |s| {
        if s.points.len() < 2 {
            return None;
        }
        let (slope, intercept) = linear_regression(s.points, t);
        Some(slope * duration + intercept)
    })))
}

/// The mean, summed directly while the sum stays finite and incrementally after, with
/// compensation either way (Prometheus' `avg_over_time`).
fn avg_over_time(points: &[(i64, f64)]) -> Option<f64> {
    let (mut sum, mut count) = (points.first()?.1, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &(_, v)) in points.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        Some(mean + c)
    } else {
        Some(sum / count + c / count)
    }
}

fn sum_over_time(points: &[(i64, f64)]) -> Option<f64> {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in points {
        (sum, c) = kahan_inc(v, sum, c);
    }
    Some(if sum.is_infinite() { sum } else { sum + c })
}

/// The point whose value wins `better` against the best so far (a NaN best always loses).
fn compare_over_time(points: &[(i64, f64)], better: fn(f64, f64) -> bool) -> Option<(i64, f64)> {
    let mut best = *points.first()?;
    for &(t, v) in points {
        if better(v, best.1) || best.1.is_nan() {
            best = (t, v);
        }
    }
    Some(best)
}

/// Population variance by Welford's method with compensated sums.
fn variance(points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    Some((aux + c_aux) / count)
}

/// The median of the absolute deviations from the median; NaN if any value is NaN.
fn mad_over_time(points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    if points.iter().any(|p| p.1.is_nan()) {
        return Some(f64::NAN);
    }
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let median = quantile(0.5, &mut values);
    let mut deviations: Vec<f64> = points.iter().map(|p| (p.1 - median).abs()).collect();
    Some(quantile(0.5, &mut deviations))
}

/// `quantile_over_time(φ, v)`, warning once when φ is outside [0, 1].
fn quantile_over_time(args: &Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let q = args.scalar(0)?;
    let r = args.range(1)?;
    let out = per_series(r, ctx, false, |s| {
        let mut values: Vec<f64> = s.points.iter().map(|p| p.1).collect();
        Some(quantile(q, &mut values))
    });
    if !out.is_empty() {
        check_quantile(q, ctx.ann);
    }
    Ok(Value::Vector(out))
}

/// Holt's linear smoothing with smoothing factor `sf` and trend factor `tf`, both in
/// (0, 1); the last smoothed value.
fn double_exponential_smoothing(
    args: &Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Result<Value, QueryError> {
    let r = args.range(0)?;
    let sf = args.scalar(1)?;
    let tf = args.scalar(2)?;
    if r.series.iter().all(|s| s.points.is_empty()) {
        return Ok(Value::Vector(Vector::new()));
    }
    // NaN passes these checks, as in Prometheus.
    if sf <= 0.0 || sf >= 1.0 {
        return Err(QueryError::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(QueryError::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    Ok(Value::Vector(per_series(r, ctx, false, |s| {
        smooth(s.points, sf, tf)
    })))
}

fn smooth(points: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, points[0].1);
    let mut b = points[1].1 - points[0].1;
    for (i, &(_, v)) in points.iter().enumerate().skip(1) {
        let x = sf * v;
        // The trend: the raw first difference at the start, then blended.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Arg, RangeArg, RangeSeries};
    use super::*;

    const M: i64 = 60_000;

    /// `start+step x n` points every `interval` ms from 0, as the test scripts load them.
    fn series(start: f64, step: f64, n: usize, interval: i64) -> Vec<(i64, f64)> {
        (0..=n)
            .map(|i| (i as i64 * interval, start + step * i as f64))
            .collect()
    }

    fn range<'a>(name: &str, pts: &'a [(i64, f64)], t: i64, window: i64) -> Arg<'a> {
        let lo = pts.partition_point(|p| p.0 <= t - window);
        let hi = pts.partition_point(|p| p.0 <= t);
        Arg::Range(RangeArg {
            series: vec![RangeSeries {
                metric: labels(&[("__name__", name)]),
                unnamed: labels(&[]),
                points: &pts[lo..hi],
            }],
            start: t - window,
            end: t,
        })
    }

    fn at(
        f: &str,
        name: &str,
        pts: &[(i64, f64)],
        t: i64,
        window: i64,
    ) -> (Option<f64>, crate::query::Annotations) {
        let (r, ann) = run(f, vec![range(name, pts, t, window)], t, false);
        let v = vector(r);
        (v.first().map(|s| s.value), ann)
    }

    #[test]
    fn increase_extrapolates_to_the_zero_point_of_a_counter() {
        // functions.test: "dings" 10+10x10 and "bumms" 1+10x10 over [100m] at 50m.
        let dings = series(10.0, 10.0, 10, 5 * M);
        let bumms = series(1.0, 10.0, 10, 5 * M);
        assert!(close(
            at("increase", "x_total", &dings, 50 * M, 100 * M)
                .0
                .unwrap(),
            105.0
        ));
        assert!(close(
            at("increase", "x_total", &bumms, 50 * M, 100 * M)
                .0
                .unwrap(),
            101.0
        ));
    }

    #[test]
    fn rate_cuts_left_extrapolation_at_zero_or_half_an_interval() {
        for (start, want) in [(0.0, 0.5), (60.0, 0.55), (120.0, 0.6), (300.0, 0.6)] {
            let pts = series(start, 240.0, 10, 4 * M);
            let got = at("rate", "c_total", &pts, 10 * M, 20 * M).0.unwrap();
            assert!(close(got, want), "start {start}: {got} != {want}");
        }
    }

    #[test]
    fn rate_adds_back_counter_resets() {
        // 0+27x4 0+27x5 at 5m intervals: rate over [50m] at 50m is 0.08.
        let mut pts = series(0.0, 27.0, 4, 5 * M);
        pts.extend(
            series(0.0, 27.0, 5, 5 * M)
                .into_iter()
                .map(|(t, v)| (t + 25 * M, v)),
        );
        assert!(close(
            at("rate", "c_total", &pts, 50 * M, 50 * M).0.unwrap(),
            0.08
        ));
        // 0 1 2 3 2 3 4: the drop to 2 is a reset, increase is 7.
        let pts: Vec<_> = [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 5 * M, *v))
            .collect();
        assert!(close(
            at("increase", "c_total", &pts, 30 * M, 30 * M).0.unwrap(),
            7.0
        ));
        assert_eq!(
            at("resets", "c_total", &pts, 30 * M, 30 * M + 1).0,
            Some(1.0)
        );
    }

    #[test]
    fn rate_needs_two_points_and_notes_suspicious_names() {
        let pts = series(0.0, 10.0, 10, 5 * M);
        assert_eq!(at("rate", "c_total", &pts, 50 * M, 5 * M).0, None);
        let (v, ann) = at("rate", "http_requests", &pts, 50 * M, 50 * M);
        assert!(v.is_some());
        assert_eq!(
            ann.infos,
            vec![
                r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "http_requests""#
            ]
        );
        let (_, ann) = at("delta", "http_requests", &pts, 50 * M, 50 * M);
        assert!(ann.infos.is_empty());
    }

    #[test]
    fn irate_treats_a_drop_as_a_reset_and_propagates_nan() {
        let pts = [(0, 10.0), (5 * M, 3.0)];
        assert!(close(
            at("irate", "c_total", &pts, 5 * M, 10 * M).0.unwrap(),
            3.0 / 300.0
        ));
        assert!(close(
            at("idelta", "g", &pts, 5 * M, 10 * M).0.unwrap(),
            -7.0
        ));
        let pts = [(0, 1.0), (5 * M, f64::NAN)];
        assert!(
            at("irate", "c_total", &pts, 5 * M, 10 * M)
                .0
                .unwrap()
                .is_nan()
        );
    }

    #[test]
    fn deriv_and_predict_linear_fit_a_line() {
        // 0+10x4 0+10x5 every 5m; see the derivation in functions.test.
        let mut pts = series(0.0, 10.0, 4, 5 * M);
        pts.extend(
            series(0.0, 10.0, 5, 5 * M)
                .into_iter()
                .map(|(t, v)| (t + 25 * M, v)),
        );
        assert!(close(
            at("deriv", "g", &pts, 50 * M, 100 * M).0.unwrap(),
            0.010606060606060607
        ));
        let lo = pts.partition_point(|p| p.0 <= 50 * M - 55 * M);
        let arg = Arg::Range(RangeArg {
            series: vec![RangeSeries {
                metric: labels(&[]),
                unnamed: labels(&[]),
                points: &pts[lo..],
            }],
            start: -5 * M,
            end: 50 * M,
        });
        // `@ 3000` evaluated at 10m: the intercept is taken at the step's time.
        let (r, _) = run(
            "predict_linear",
            vec![arg, Arg::Scalar(3600.0)],
            10 * M,
            false,
        );
        assert!(close(only(r), 51.36363636363637));
        let inf = [(0, f64::NEG_INFINITY), (M, 0.0), (2 * M, f64::INFINITY)];
        assert!(at("deriv", "g", &inf, 2 * M, 3 * M).0.unwrap().is_nan());
    }

    #[test]
    fn over_time_aggregations_match_prometheus() {
        let pts = [
            (0, 0.0),
            (10_000, 8.0),
            (20_000, 8.0),
            (30_000, 2.0),
            (40_000, 3.0),
        ];
        assert!(close(
            at("stdvar_over_time", "m", &pts, 60_000, 120_000)
                .0
                .unwrap(),
            10.56
        ));
        assert!(close(
            at("stddev_over_time", "m", &pts, 60_000, 120_000)
                .0
                .unwrap(),
            3.249615
        ));
        let pts = [
            (0, 4.0),
            (1, 6.0),
            (2, 2.0),
            (3, 1.0),
            (4, 999.0),
            (5, 1.0),
            (6, 2.0),
        ];
        assert_eq!(at("mad_over_time", "m", &pts, 6, 10).0, Some(1.0));
        let with_nan = [(0, 1.0), (1, 2.0), (2, f64::NAN), (3, 4.0)];
        assert!(
            at("mad_over_time", "m", &with_nan, 3, 10)
                .0
                .unwrap()
                .is_nan()
        );
        let big = [(0, 1.0), (1, 1e100), (2, 1.0), (3, -1e100)];
        assert_eq!(at("sum_over_time", "m", &big, 3, 10).0, Some(2.0));
        assert_eq!(at("avg_over_time", "m", &big, 3, 10).0, Some(0.5));
        let huge = [(0, 9.988_465_674_311_58e307), (1, 9.988_465_674_311_58e307)];
        assert_eq!(
            at("avg_over_time", "m", &huge, 1, 10).0,
            Some(9.988_465_674_311_58e307)
        );
        let nan = [(0, f64::NAN), (1, 0.0), (2, 1.0)];
        assert_eq!(at("min_over_time", "m", &nan, 2, 10).0, Some(0.0));
        assert_eq!(at("max_over_time", "m", &nan, 2, 10).0, Some(1.0));
        let odd = [
            (10_053, 1.0),
            (20_106, 2.0),
            (30_159, 3.0),
            (40_212, 0.0),
            (50_265, 5.0),
        ];
        assert_eq!(
            at("ts_of_min_over_time", "m", &odd, 90_000, 90_000).0,
            Some(40.212)
        );
    }

    #[test]
    fn last_and_first_over_time_keep_the_name() {
        let pts = [(0, 1.0), (1, 2.0)];
        let (r, _) = run("last_over_time", vec![range("m", &pts, 1, 10)], 1, false);
        let v = vector(r);
        assert_eq!(v[0].metric.name(), "m");
        assert_eq!(v[0].value, 2.0);
        let (r, _) = run("sum_over_time", vec![range("m", &pts, 1, 10)], 1, false);
        assert_eq!(vector(r)[0].metric.name(), "");
    }

    #[test]
    fn quantile_over_time_warns_outside_zero_to_one() {
        let pts = [(0, 0.0), (1, 1.0), (2, 4.0)];
        let (r, ann) = run(
            "quantile_over_time",
            vec![Arg::Scalar(0.75), range("m", &pts, 2, 10)],
            2,
            false,
        );
        assert_eq!(only(r), 2.5);
        assert!(ann.warnings.is_empty());
        let (r, ann) = run(
            "quantile_over_time",
            vec![Arg::Scalar(2.0), range("m", &pts, 2, 10)],
            2,
            false,
        );
        assert_eq!(only(r), f64::INFINITY);
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got 2"]
        );
    }

    #[test]
    fn double_exponential_smoothing_follows_a_trend_and_checks_factors() {
        // 0+10x1000 every 10s: at 8000s over [1m] the smoothed value is 8000.
        let pts = series(0.0, 10.0, 1000, 10_000);
        let args = vec![
            range("m", &pts, 8_000_000, M),
            Arg::Scalar(0.01),
            Arg::Scalar(0.1),
        ];
        let (r, _) = run("double_exponential_smoothing", args, 8_000_000, false);
        assert!(close(only(r), 8000.0));
        let args = vec![
            range("m", &pts, 8_000_000, M),
            Arg::Scalar(1.0),
            Arg::Scalar(0.1),
        ];
        let (r, _) = run("double_exponential_smoothing", args, 8_000_000, false);
        assert_eq!(
            r,
            Err(QueryError::Execution(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000".into()
            ))
        );
    }

    #[test]
    fn changes_counts_nan_to_nan_as_no_change() {
        let pts = [(0, 0.0), (1, f64::NAN), (2, 0.0)];
        assert_eq!(at("changes", "m", &pts, 2, 10).0, Some(2.0));
        let pts = [(0, f64::NAN), (1, f64::NAN)];
        assert_eq!(at("changes", "m", &pts, 1, 10).0, Some(0.0));
    }
}
