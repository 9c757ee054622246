//! PromQL's functions, called by the evaluator once per evaluation step.
//!
//! The evaluator hands each call its arguments already evaluated at the step: scalars,
//! strings, instant vectors, and for a range-vector argument the points of each series in
//! the window `(start, end]` (staleness markers removed). A function returns a scalar or an
//! instant vector for that step, and adds Prometheus' warnings and infos to the context.
//!
//! Semantics follow Prometheus 3.x (`promql/functions.go`) over float samples:
//! - every output sample carries the step's time (`CallCtx::t`);
//! - functions that compute a new value drop `__name__`; those that only pick or reorder
//!   samples keep it (`last_over_time`, `first_over_time`, `sort*`, `label_*`);
//! - an instant vector never holds two samples with the same labels: a result that would
//!   is refused with Prometheus' `vector cannot contain metrics with the same labelset`;
//! - native histograms are not stored by this server, so the `histogram_*` functions that
//!   only act on them return nothing (with an info saying why).
//!
//! One file per family: `range` (functions of a range vector), `math`, `labels`,
//! `histogram` (classic `le` buckets), `time`, `misc` (vector, scalar, absent, sort).

mod histogram;
mod labels;
mod math;
mod misc;
mod range;
mod time;

use promql_parser::parser::Expr;

use super::{Annotations, Labels, Metric, QueryError, Sample, Value, Vector};

/// One evaluated argument.
pub(super) enum Arg<'a> {
    /// A number.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vector),
    /// A range vector at this step.
    Range(RangeArg<'a>),
}

/// A range vector's series at one step, and the window they were read from.
pub(super) struct RangeArg<'a> {
    /// Each series with its points in the window, in time order.
    pub series: Vec<RangeSeries<'a>>,
    /// The window's start, exclusive (unix ms).
    pub start: i64,
    /// The window's end, inclusive: the step's time, moved by `offset`/`@`.
    pub end: i64,
}

/// One series of a range vector.
pub(super) struct RangeSeries<'a> {
    /// Its labels.
    pub metric: Metric,
    /// Its labels without `__name__`, shared across steps so that functions that drop
    /// the name allocate nothing per step.
    pub unnamed: Metric,
    /// Its points in the window.
    pub points: &'a [(i64, f64)],
}

/// What a call knows besides its arguments.
pub(super) struct CallCtx<'a> {
    /// The step's evaluation time, unix ms.
    pub t: i64,
    /// The arguments as written (for `absent`, which reads its selector's matchers).
    pub arg_exprs: &'a [Box<Expr>],
    /// Whether this is a range query (`sort` then only warns).
    pub range_query: bool,
    /// Warnings and infos of the query.
    pub ann: &'a mut Annotations,
}

/// Calls function `name`; the result is a [`Value::Scalar`] or a [`Value::Vector`].
pub(super) fn call(
    name: &str,
    args: Vec<Arg<'_>>,
    ctx: &mut CallCtx<'_>,
) -> Result<Value, QueryError> {
    let mut args = Args { name, args };
    let value = dispatch(&mut args, ctx)?;
    if let Value::Vector(v) = &value {
        check_unique_labelsets(v)?;
    }
    Ok(value)
}

/// The table from name to implementation, family by family.
fn dispatch(args: &mut Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    if let Some(result) = range::call(args, ctx) {
        return result;
    }
    if let Some(result) = math::call(args, ctx) {
        return result;
    }
    if let Some(result) = time::call(args, ctx) {
        return result;
    }
    if let Some(result) = misc::call(args, ctx) {
        return result;
    }
    if let Some(result) = labels::call(args, ctx) {
        return result;
    }
    if let Some(result) = histogram::call(args, ctx) {
        return result;
    }
    Err(QueryError::BadData(format!(
        "function {:?} is not supported",
        args.name
    )))
}

/// The arguments of one call, taken by position.
struct Args<'n, 'a> {
    name: &'n str,
    args: Vec<Arg<'a>>,
}

impl<'a> Args<'_, 'a> {
    fn len(&self) -> usize {
        self.args.len()
    }

    fn wrong(&self, i: usize, what: &str) -> QueryError {
        QueryError::BadData(format!(
            "expected {what} as argument {} of {}()",
            i + 1,
            self.name
        ))
    }

    /// Argument `i`, a number.
    fn scalar(&self, i: usize) -> Result<f64, QueryError> {
        match self.args.get(i) {
            Some(Arg::Scalar(v)) => Ok(*v),
            _ => Err(self.wrong(i, "a scalar")),
        }
    }

    /// Argument `i`, a string.
    fn string(&self, i: usize) -> Result<&str, QueryError> {
        match self.args.get(i) {
            Some(Arg::String(s)) => Ok(s),
            _ => Err(self.wrong(i, "a string")),
        }
    }

    /// Argument `i`, an instant vector, moved out of the list.
    fn take_vector(&mut self, i: usize) -> Result<Vector, QueryError> {
        match self.args.get_mut(i) {
            Some(Arg::Vector(v)) => Ok(std::mem::take(v)),
            _ => Err(self.wrong(i, "an instant vector")),
        }
    }

    /// Argument `i`, a range vector.
    fn range(&self, i: usize) -> Result<&RangeArg<'a>, QueryError> {
        match self.args.get(i) {
            Some(Arg::Range(r)) => Ok(r),
            _ => Err(self.wrong(i, "a range vector")),
        }
    }
}

/// Refuses a vector holding two samples with one label set, as Prometheus does.
pub(super) fn check_unique_labelsets(v: &Vector) -> Result<(), QueryError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen: rustc_hash::FxHashSet<&Labels> = rustc_hash::FxHashSet::default();
    for s in v {
        if !seen.insert(s.metric.as_ref()) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

use super::value::unnamed as drop_name;

/// An output sample at the step's time.
fn sample(metric: Metric, value: f64, ctx: &CallCtx<'_>) -> Sample {
    Sample {
        metric,
        value,
        ts: ctx.t,
    }
}

/// Go's `%g` (and `strconv.FormatFloat(v, 'g', -1, 64)`): shortest digits, an exponent
/// below 1e-4 or from 1e21 up, `+Inf`/`-Inf`/`NaN`.
fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = v.abs();
    if v != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{v:e}");
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{v}")
}

/// Neumaier's compensated addition as Prometheus' `kahansum.Inc`: the new sum and the new
/// compensation; an infinite sum drops the compensation.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    if t.is_infinite() {
        (t, 0.0)
    } else if sum.abs() >= inc.abs() {
        (t, c + ((sum - t) + inc))
    } else {
        (t, c + ((inc - t) + sum))
    }
}

/// Go's `math.Max`: NaN wins over everything.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins over everything.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// The φ-quantile of `values` (sorted here) as Prometheus' `quantile`: linear between the
/// two nearest ranks, NaN for no values or a NaN φ, ±Inf for φ outside [0, 1].
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Prometheus sorts NaN before every number.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// The warning for a φ outside [0, 1].
fn check_quantile(q: f64, ann: &mut Annotations) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ann.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            go_g(q)
        ));
    }
}

#[cfg(test)]
pub(super) mod test_support {
    //! Builders shared by the families' tests.

    use std::sync::Arc;

    use super::*;

    /// Labels from `name=value` pairs.
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Metric {
        Arc::new(Labels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    /// A sample at time 0.
    pub(crate) fn s(pairs: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            metric: labels(pairs),
            value,
            ts: 0,
        }
    }

    /// Calls `name` at `t` (ms) with no expressions and returns the value and annotations.
    pub(crate) fn run(
        name: &str,
        args: Vec<Arg<'_>>,
        t: i64,
        range_query: bool,
    ) -> (Result<Value, QueryError>, Annotations) {
        let mut ann = Annotations::default();
        let mut ctx = CallCtx {
            t,
            arg_exprs: &[],
            range_query,
            ann: &mut ann,
        };
        let r = call(name, args, &mut ctx);
        (r, ann)
    }

    /// The vector a call returned; panics otherwise (tests only).
    pub(crate) fn vector(r: Result<Value, QueryError>) -> Vector {
        match r {
            Ok(Value::Vector(v)) => v,
            other => panic!("expected a vector, got {other:?}"),
        }
    }

    /// The only sample's value of a call.
    pub(crate) fn only(r: Result<Value, QueryError>) -> f64 {
        let v = vector(r);
        assert_eq!(v.len(), 1, "expected one sample: {v:?}");
        v[0].value
    }

    /// Whether two floats agree to Prometheus' test tolerance (or are both NaN).
    pub(crate) fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_g_formats_as_go_does() {
        assert_eq!(go_g(-0.1), "-0.1");
        assert_eq!(go_g(1.01), "1.01");
        assert_eq!(go_g(2.0), "2");
        assert_eq!(go_g(f64::NAN), "NaN");
        assert_eq!(go_g(f64::INFINITY), "+Inf");
        assert_eq!(go_g(1e-5), "1e-05");
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [0.0, 1.0]), 0.5);
        assert_eq!(quantile(0.75, &mut [4.0, 0.0, 1.0]), 2.5);
        assert_eq!(quantile(0.8, &mut [0.0, 1.0, 2.0]), 1.6);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn unknown_functions_are_refused() {
        let (r, _) = run("no_such_function", vec![], 0, false);
        assert!(matches!(r, Err(QueryError::BadData(_))));
    }

    #[test]
    fn duplicate_output_labelsets_are_refused() {
        let v = vec![
            s(&[("__name__", "a"), ("x", "1")], 1.0),
            s(&[("__name__", "b"), ("x", "1")], 2.0),
        ];
        let (r, _) = run("abs", vec![Arg::Vector(v)], 0, false);
        assert_eq!(
            r,
            Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into()
            ))
        );
    }

    /// Every name the parser knows, plus a few it does not.
    const NAMES: &[&str] = &[
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "double_exponential_smoothing",
        "exp",
        "first_over_time",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_quantiles",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_of",
        "max_over_time",
        "min_of",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "ts_of_first_over_time",
        "ts_of_last_over_time",
        "ts_of_max_over_time",
        "ts_of_min_over_time",
        "vector",
        "year",
        "holt_winters",
        "info",
        "",
    ];

    fn any_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(0.0),
            Just(-0.0),
            Just(1e308),
            -1e3f64..1e3,
            any::<f64>(),
        ]
    }

    #[derive(Debug, Clone)]
    enum ArgSpec {
        Scalar(f64),
        Str(String),
        Vector(Vec<(String, f64, i64)>),
        Range(Vec<Vec<(i64, f64)>>),
    }

    fn arg_spec() -> impl Strategy<Value = ArgSpec> {
        let label = prop_oneof![
            Just("0.1".to_string()),
            Just("+Inf".to_string()),
            Just("1".to_string()),
            Just("x_total".to_string()),
            "[a-z0-9.$()*]{0,4}",
        ];
        prop_oneof![
            any_float().prop_map(ArgSpec::Scalar),
            prop_oneof![
                Just("le".to_string()),
                Just("(.*)".to_string()),
                Just("$1".to_string()),
                Just("".to_string()),
                "[a-z(.*$]{0,5}"
            ]
            .prop_map(ArgSpec::Str),
            proptest::collection::vec((label, any_float(), -1_000_000i64..1_000_000), 0..5)
                .prop_map(ArgSpec::Vector),
            proptest::collection::vec(
                proptest::collection::vec((0i64..100_000, any_float()), 0..8),
                0..4
            )
            .prop_map(ArgSpec::Range),
        ]
    }

    /// Each range argument's series, sorted and without duplicate times, as the
    /// evaluator hands them over.
    fn range_storage(specs: &[ArgSpec]) -> Vec<Vec<Vec<(i64, f64)>>> {
        specs
            .iter()
            .map(|a| match a {
                ArgSpec::Range(series) => series
                    .iter()
                    .map(|pts| {
                        let mut pts = pts.clone();
                        pts.sort_by_key(|p| p.0);
                        pts.dedup_by_key(|p| p.0);
                        pts
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn build<'a>(specs: &[ArgSpec], storage: &'a [Vec<Vec<(i64, f64)>>]) -> Vec<Arg<'a>> {
        specs
            .iter()
            .zip(storage)
            .map(|(a, series)| match a {
                ArgSpec::Scalar(v) => Arg::Scalar(*v),
                ArgSpec::Str(s) => Arg::String(s.clone()),
                ArgSpec::Vector(v) => Arg::Vector(
                    v.iter()
                        .enumerate()
                        .map(|(i, (le, value, ts))| Sample {
                            metric: labels(&[
                                ("__name__", "m_bucket"),
                                ("le", le),
                                ("i", &i.to_string()),
                            ]),
                            value: *value,
                            ts: *ts,
                        })
                        .collect(),
                ),
                ArgSpec::Range(_) => Arg::Range(RangeArg {
                    series: series
                        .iter()
                        .enumerate()
                        .map(|(i, pts)| RangeSeries {
                            metric: labels(&[("__name__", "up"), ("i", &i.to_string())]),
                            unnamed: labels(&[("i", &i.to_string())]),
                            points: pts,
                        })
                        .collect(),
                    start: -1,
                    end: 100_000,
                }),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn random_arguments_never_panic(
            name in proptest::sample::select(NAMES),
            specs in proptest::collection::vec(arg_spec(), 0..5),
            t in -10_000_000_000_000i64..10_000_000_000_000,
            range_query in any::<bool>(),
        ) {
            let storage = range_storage(&specs);
            let args = build(&specs, &storage);
            let (r, _) = run(name, args, t, range_query);
            if let Ok(Value::Vector(v)) = r {
                prop_assert!(v.iter().all(|s| s.ts == t));
            }
        }
    }
}
