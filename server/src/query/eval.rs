//! The evaluator: plans which series each selector needs, reads them all from one
//! snapshot, then evaluates the expression at every step.
//!
//! Every node evaluates at a list of times and returns one value per time ([`Steps`]): a
//! range query evaluates each node once for all its steps, not the whole tree per step.
//! Selectors look up their points by binary search in series read once. A subquery
//! evaluates its inner expression once on the union of the grids its outer steps need.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use promql_parser::parser::{
    AtModifier, Call, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector, value::ValueType,
};
use rustc_hash::FxHashMap;
use sysward_proto::SeriesKind;

use super::{
    Annotations, Labels, Matrix, Metric, QueryError, QueryOptions, QueryOutput, QuerySource,
    QueryStats, Sample, Series, SourceRequest, Value, Vector, aggregate, binary,
    functions::{self, Arg, CallCtx, RangeArg, RangeSeries},
    rollup, selector_matchers,
    value::is_stale,
};
use crate::store::{ReadBudget, Rollup, SeriesData, Tier};

/// The subquery step when none is written: Prometheus' default evaluation interval.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// A node's value at each of its evaluation times.
pub(super) enum Steps {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<Vector>),
}

/// A selector's read, with the first time it is evaluated at (before its window).
struct Planned {
    key: usize,
    request: SourceRequest,
    first_eval: i64,
}

/// One series as read, ready for lookups.
struct Loaded {
    metric: Metric,
    kind: SeriesKind,
    /// Raw points, or each rollup bucket's last sample on a rollup tier.
    points: Vec<(i64, f64)>,
    /// Rollup records on a rollup tier.
    rollups: Vec<Rollup>,
}

/// Evaluates `expr` from `start` to `end` every `step` ms (one step when `step` is 0).
pub(super) fn run(
    source: &dyn QuerySource,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    options: &QueryOptions,
    range: bool,
) -> Result<QueryOutput, QueryError> {
    let times = step_times(start, end, step);
    let mut ev = Evaluator::new(options, start, end, range);
    ev.step = step;
    let mut plan = Vec::new();
    ev.plan(expr, start, end, &mut plan)?;
    ev.tier = ev.choose_tier(source, &plan);
    ev.load(source, plan)?;
    if range {
        check_range_type(expr)?;
        let steps = ev.eval(expr, &times)?;
        let value = Value::Matrix(to_matrix(steps, &times));
        return Ok(ev.finish(value));
    }
    let value = match expr_kind(expr) {
        Kind::Range => Value::Matrix(ev.eval_range_value(expr, start)?),
        Kind::Instant => match ev.eval(expr, &times)? {
            Steps::Scalar(v) => Value::Scalar(v.first().copied().unwrap_or(f64::NAN)),
            Steps::String(s) => Value::String(s),
            Steps::Vector(mut v) => Value::Vector(v.pop().unwrap_or_default()),
        },
    };
    Ok(ev.finish(value))
}

fn step_times(start: i64, end: i64, step: i64) -> Vec<i64> {
    if step <= 0 {
        return vec![start];
    }
    let n = (end - start) / step + 1;
    (0..n).map(|i| start + i * step).collect()
}

fn check_range_type(expr: &Expr) -> Result<(), QueryError> {
    if expr_kind(expr) == Kind::Range {
        return Err(QueryError::BadData(
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
        ));
    }
    if matches!(unparen(expr), Expr::StringLiteral(_)) {
        return Err(QueryError::BadData(
            "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                .into(),
        ));
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
pub(super) enum Kind {
    Range,
    Instant,
}

pub(super) fn expr_kind(expr: &Expr) -> Kind {
    match unparen(expr) {
        Expr::MatrixSelector(_) | Expr::Subquery(_) => Kind::Range,
        _ => Kind::Instant,
    }
}

pub(super) fn unparen(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

/// Groups each step's samples into series, sorted by labels. Samples of one series
/// usually share one label allocation across steps, so it is found by address first.
fn to_matrix(steps: Steps, times: &[i64]) -> Matrix {
    match steps {
        Steps::Scalar(v) => vec![Series {
            metric: Arc::default(),
            points: times.iter().copied().zip(v).collect(),
        }],
        Steps::String(_) => Vec::new(),
        Steps::Vector(vectors) => {
            let mut out: Matrix = Vec::new();
            // Every sample's labels stay alive in `keep` until the end, so no address is
            // reused for other labels while it is a key.
            let mut keep: Vec<Metric> = Vec::new();
            let mut by_addr: FxHashMap<*const Labels, usize> = FxHashMap::default();
            let mut by_labels: FxHashMap<Metric, usize> = FxHashMap::default();
            for (t, vector) in times.iter().zip(vectors) {
                for s in vector {
                    let addr = Arc::as_ptr(&s.metric);
                    let i = match by_addr.get(&addr) {
                        Some(&i) => i,
                        None => {
                            let i = *by_labels.entry(s.metric.clone()).or_insert_with(|| {
                                out.push(Series {
                                    metric: s.metric.clone(),
                                    points: Vec::new(),
                                });
                                out.len() - 1
                            });
                            by_addr.insert(addr, i);
                            keep.push(s.metric);
                            i
                        }
                    };
                    out[i].points.push((*t, s.value));
                }
            }
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
            out
        }
    }
}

/// A binary operator with a scalar side: its vector keeps its labels, less the name.
fn is_scalar_binary(expr: &Expr) -> bool {
    let Expr::Binary(b) = expr else {
        return false;
    };
    let scalar = |e: &Expr| matches!(e.value_type(), ValueType::Scalar);
    scalar(&b.lhs) || scalar(&b.rhs)
}

/// A duration in ms as PromQL writes it (`5m`, `1h`), by the parser's own printer.
pub(super) fn display_ms(ms: i64) -> String {
    promql_parser::util::display_duration(&Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

pub(super) fn ms_of_duration(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn ms_of_offset(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => ms_of_duration(d),
        Some(Offset::Neg(d)) => -ms_of_duration(d),
    }
}

fn ms_of_time(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ms_of_duration(&d),
        Err(e) => -ms_of_duration(&e.duration()),
    }
}

/// The key of a selector node: its address, stable for the query's lifetime.
fn node_key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

pub(super) struct Evaluator<'o> {
    options: &'o QueryOptions,
    /// The query's start and end, for `@ start()` and `@ end()`.
    start: i64,
    end: i64,
    range: bool,
    /// The range query's step, 0 for an instant query.
    step: i64,
    pub(super) tier: Tier,
    data: HashMap<usize, Vec<Loaded>>,
    pub(super) ann: Annotations,
    deadline: Instant,
    stats: QueryStats,
}

impl<'o> Evaluator<'o> {
    fn new(options: &'o QueryOptions, start: i64, end: i64, range: bool) -> Self {
        Self {
            options,
            start,
            end,
            range,
            step: 0,
            tier: Tier::Raw,
            data: HashMap::new(),
            ann: Annotations::default(),
            deadline: Instant::now() + options.limits.timeout,
            stats: QueryStats::default(),
        }
    }

    fn finish(mut self, value: Value) -> QueryOutput {
        self.stats.tier = Some(self.tier);
        QueryOutput {
            value,
            annotations: self.ann,
            stats: self.stats,
        }
    }

    fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start),
            Some(AtModifier::End) => Some(self.end),
            Some(AtModifier::At(t)) => Some(ms_of_time(t)),
        }
    }

    /// The evaluation times `(lo, hi)` a selector or subquery sees when its parent
    /// evaluates between `lo` and `hi`.
    fn moved(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        lo: i64,
        hi: i64,
    ) -> (i64, i64) {
        let o = ms_of_offset(offset);
        match self.at_time(at) {
            Some(t) => (t - o, t - o),
            None => (lo - o, hi - o),
        }
    }

    /// Collects every selector's read, for evaluation times between `lo` and `hi`.
    fn plan(
        &self,
        expr: &Expr,
        lo: i64,
        hi: i64,
        out: &mut Vec<Planned>,
    ) -> Result<(), QueryError> {
        match expr {
            Expr::VectorSelector(vs) => {
                out.push(self.planned(vs, self.options.lookback_ms, lo, hi));
            }
            Expr::MatrixSelector(ms) => {
                out.push(self.planned(&ms.vs, ms_of_duration(&ms.range), lo, hi));
            }
            Expr::Subquery(sq) => {
                let (a, b) = self.moved(&sq.at, &sq.offset, lo, hi);
                let (first, last) = subquery_grid(sq, a, b);
                self.plan(&sq.expr, first, last, out)?;
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.plan(p, lo, hi, out)?;
                }
                self.plan(&a.expr, lo, hi, out)?;
            }
            Expr::Unary(u) => self.plan(&u.expr, lo, hi, out)?,
            Expr::Binary(b) => {
                self.plan(&b.lhs, lo, hi, out)?;
                self.plan(&b.rhs, lo, hi, out)?;
            }
            Expr::Paren(p) => self.plan(&p.expr, lo, hi, out)?,
            Expr::Call(c) => {
                for arg in &c.args.args {
                    self.plan(arg, lo, hi, out)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::Extension(_) => {
                return Err(QueryError::BadData(
                    "unsupported expression extension".into(),
                ));
            }
        }
        Ok(())
    }

    /// A selector's read: its window (`width` before each of its evaluation times, moved
    /// by `offset` and `@`) for parent times from `lo` to `hi`.
    fn planned(&self, vs: &VectorSelector, width: i64, lo: i64, hi: i64) -> Planned {
        let (a, b) = self.moved(&vs.at, &vs.offset, lo, hi);
        Planned {
            key: node_key(vs),
            request: SourceRequest {
                selectors: selector_matchers(vs),
                start: a - width,
                end: b,
                tier: Tier::Raw,
            },
            first_eval: a,
        }
    }

    /// Raw while every selector's first evaluation time is within raw retention, unless a
    /// tier was asked for (a window reaching a little past the floor only misses points
    /// there, as at Prometheus' own retention edge); past it, the coarsest rollup tier
    /// still holding that time whose resolution fits the step (the finest covering one
    /// for an instant query).
    fn choose_tier(&self, source: &dyn QuerySource, plan: &[Planned]) -> Tier {
        if let Some(t) = self.options.tier {
            return t;
        }
        let Some(needed) = plan.iter().map(|p| p.first_eval).min() else {
            return Tier::Raw;
        };
        if needed >= source.floor_ms(Tier::Raw) {
            return Tier::Raw;
        }
        let covering: Vec<Tier> = Tier::ROLLUPS
            .into_iter()
            .filter(|&t| source.floor_ms(t) <= needed)
            .collect();
        let Some(&finest) = covering.first() else {
            return Tier::Mo1;
        };
        covering
            .iter()
            .rev()
            .copied()
            .find(|t| t.resolution_ms() <= self.step)
            .unwrap_or(finest)
    }

    fn load(&mut self, source: &dyn QuerySource, plan: Vec<Planned>) -> Result<(), QueryError> {
        let (keys, mut requests): (Vec<usize>, Vec<SourceRequest>) =
            plan.into_iter().map(|p| (p.key, p.request)).unzip();
        for r in &mut requests {
            r.tier = self.tier;
            // A rollup answer widens short ranges to the resolution and needs the bucket
            // before its window for the boundary increase.
            r.start = r.start.saturating_sub(2 * self.tier.resolution_ms());
        }
        let budget = ReadBudget {
            max_series_per_request: self.options.limits.max_series_per_selector,
            max_points: self.options.limits.max_samples,
        };
        let answers = source.read(&requests, &budget)?;
        for (key, series) in keys.into_iter().zip(answers) {
            let loaded: Vec<Loaded> = series
                .into_iter()
                .map(|s| {
                    self.stats.series_read += 1;
                    let metric = Arc::new(s.metric);
                    match s.data {
                        SeriesData::Raw(points) => {
                            self.stats.samples_read += points.len();
                            Loaded {
                                metric,
                                kind: s.kind,
                                points,
                                rollups: Vec::new(),
                            }
                        }
                        SeriesData::Rollup(rollups) => {
                            self.stats.samples_read += rollups.len();
                            let points = rollups.iter().map(|r| (r.last_ts, r.last)).collect();
                            Loaded {
                                metric,
                                kind: s.kind,
                                points,
                                rollups,
                            }
                        }
                    }
                })
                .collect();
            // A node read twice (it cannot be, but a merge keeps the answer whole).
            self.data.entry(key).or_default().extend(loaded);
        }
        self.stats.peak_samples = self.stats.samples_read;
        Ok(())
    }

    pub(super) fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout(format!(
                "query timed out in expression evaluation (after {:?}, [query] timeout)",
                self.options.limits.timeout
            )));
        }
        Ok(())
    }

    /// Counts samples a node computed against the limit.
    fn account(&mut self, steps: &Steps) -> Result<(), QueryError> {
        let n = match steps {
            Steps::Vector(v) => v.iter().map(Vec::len).sum(),
            Steps::Scalar(v) => v.len(),
            Steps::String(_) => 0,
        };
        let total = self.stats.samples_read + n;
        self.stats.peak_samples = self.stats.peak_samples.max(total);
        if total > self.options.limits.max_samples {
            return Err(QueryError::Limit {
                limit: "max_samples",
                message: format!(
                    "query processing would load too many samples into memory in query execution (over {}, [query] max_samples)",
                    self.options.limits.max_samples
                ),
            });
        }
        Ok(())
    }

    /// Evaluates a node at each of `times`.
    pub(super) fn eval(&mut self, expr: &Expr, times: &[i64]) -> Result<Steps, QueryError> {
        self.check_deadline()?;
        let steps = match expr {
            Expr::NumberLiteral(n) => Steps::Scalar(vec![n.val; times.len()]),
            Expr::StringLiteral(s) => Steps::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, times)?,
            Expr::Unary(u) => negate(self.eval(&u.expr, times)?),
            Expr::VectorSelector(vs) => Steps::Vector(self.select_instant(vs, times)),
            Expr::Binary(b) => binary::eval(self, b, times)?,
            Expr::Aggregate(a) => aggregate::eval(self, a, times)?,
            Expr::Call(c) => self.call(c, times)?,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                return Err(QueryError::BadData(
                    "a range vector is only valid as a function argument here".into(),
                ));
            }
            Expr::Extension(_) => {
                return Err(QueryError::BadData(
                    "unsupported expression extension".into(),
                ));
            }
        };
        // Functions check their own output, and vector matching makes unique results;
        // a dropped name is what can still make two samples alike.
        if matches!(expr, Expr::Unary(_)) || is_scalar_binary(expr) {
            unique_label_sets(&steps)?;
        }
        self.account(&steps)?;
        Ok(steps)
    }

    /// An instant selector: per step, each series' newest sample in the lookback window
    /// `(t - lookback, t]`, unless that sample is a staleness marker.
    fn select_instant(&mut self, vs: &VectorSelector, times: &[i64]) -> Vec<Vector> {
        let lookback = self.lookback();
        let o = ms_of_offset(&vs.offset);
        let at = self.at_time(&vs.at);
        let series = self
            .data
            .get(&node_key(vs))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        times
            .iter()
            .map(|&t| {
                let t = at.unwrap_or(t) - o;
                series
                    .iter()
                    .filter_map(|s| {
                        let i = s.points.partition_point(|p| p.0 <= t);
                        let &(ts, v) = s.points[..i].last()?;
                        (ts > t - lookback && !is_stale(v)).then(|| Sample {
                            metric: s.metric.clone(),
                            value: v,
                            ts,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// The lookback: on a rollup tier at least the tier's resolution, since a bucket keeps
    /// one sample.
    fn lookback(&mut self) -> i64 {
        let res = self.tier.resolution_ms();
        if res > self.options.lookback_ms {
            self.ann.info(format!(
                "instant selectors read each bucket's last sample of the {} tier and look back {} instead of {}",
                self.tier.name(),
                display_ms(res),
                display_ms(self.options.lookback_ms)
            ));
            res
        } else {
            self.options.lookback_ms
        }
    }

    /// A range vector evaluated at one time, as the answer of an instant query.
    fn eval_range_value(&mut self, expr: &Expr, t: i64) -> Result<Matrix, QueryError> {
        let windows = self.range_windows(expr, &[t])?;
        Ok(windows
            .series
            .into_iter()
            .filter_map(|s| {
                let (lo, hi) = s.bounds[0];
                let points = s.points[lo..hi].to_vec();
                (!points.is_empty()).then_some(Series {
                    metric: s.metric,
                    points,
                })
            })
            .collect())
    }

    fn call(&mut self, c: &Call, times: &[i64]) -> Result<Steps, QueryError> {
        let name = c.func.name;
        if let Some(v) = self.query_scalar(name) {
            return Ok(Steps::Scalar(vec![v; times.len()]));
        }
        if self.tier != Tier::Raw
            && let Some(steps) = rollup::call(self, c, times)?
        {
            return Ok(steps);
        }
        let mut evaluated = Vec::with_capacity(c.args.args.len());
        let mut windows = None;
        for arg in &c.args.args {
            if expr_kind(arg) == Kind::Range {
                windows = Some(self.range_windows(arg, times)?);
                evaluated.push(None);
            } else {
                evaluated.push(Some(self.eval(arg, times)?));
            }
        }
        let mut out_scalar = Vec::new();
        let mut out_vector = Vec::new();
        let mut per_arg: Vec<StepIter> = evaluated.into_iter().map(StepIter::new).collect();
        for (i, &t) in times.iter().enumerate() {
            if i % 64 == 0 {
                self.check_deadline()?;
            }
            let args: Vec<Arg<'_>> = per_arg
                .iter_mut()
                .map(|a| match a.next() {
                    Some(arg) => arg,
                    None => Arg::Range(windows.as_ref().map_or_else(
                        || RangeArg {
                            series: Vec::new(),
                            start: t,
                            end: t,
                        },
                        |w| w.at(i),
                    )),
                })
                .collect();
            let mut ctx = CallCtx {
                t,
                arg_exprs: &c.args.args,
                range_query: self.range,
                ann: &mut self.ann,
            };
            match functions::call(name, args, &mut ctx)? {
                Value::Scalar(v) => out_scalar.push(v),
                Value::Vector(v) => out_vector.push(v),
                other => {
                    return Err(QueryError::Execution(format!(
                        "function {name} returned a {}",
                        other.type_name()
                    )));
                }
            }
        }
        Ok(if c.func.return_type == ValueType::Scalar {
            Steps::Scalar(out_scalar)
        } else {
            Steps::Vector(out_vector)
        })
    }

    /// `step()`, `range()`, `start()` and `end()`: the query's own parameters, in seconds.
    fn query_scalar(&self, name: &str) -> Option<f64> {
        let secs = |ms: i64| ms as f64 / 1000.0;
        match name {
            "step" => Some(secs(self.step)),
            "range" => Some(secs(self.end - self.start)),
            "start" => Some(secs(self.start)),
            "end" => Some(secs(self.end)),
            _ => None,
        }
    }

    /// A range argument's series with, per step, the bounds of its window's points.
    pub(super) fn range_windows(
        &mut self,
        expr: &Expr,
        times: &[i64],
    ) -> Result<Windows, QueryError> {
        match unparen(expr) {
            Expr::MatrixSelector(ms) => Ok(self.matrix_windows(ms, times)),
            Expr::Subquery(sq) => self.subquery_windows(sq, times),
            _ => Err(QueryError::BadData("expected a range vector".into())),
        }
    }

    fn matrix_windows(&mut self, ms: &MatrixSelector, times: &[i64]) -> Windows {
        let range = ms_of_duration(&ms.range);
        let o = ms_of_offset(&ms.vs.offset);
        let at = self.at_time(&ms.vs.at);
        let ends: Vec<i64> = times.iter().map(|&t| at.unwrap_or(t) - o).collect();
        // A range selector is evaluated once, for all its steps: its points move into the
        // windows instead of being copied.
        let loaded = self.data.remove(&node_key(&ms.vs)).unwrap_or_default();
        let series = loaded
            .into_iter()
            .map(|mut s| {
                s.points.retain(|p| !is_stale(p.1));
                WindowSeries::new(s.metric, s.points, &ends, range)
            })
            .collect();
        Windows {
            series,
            ends,
            range,
        }
    }

    fn subquery_windows(
        &mut self,
        sq: &SubqueryExpr,
        times: &[i64],
    ) -> Result<Windows, QueryError> {
        let range = ms_of_duration(&sq.range);
        let o = ms_of_offset(&sq.offset);
        let at = self.at_time(&sq.at);
        let ends: Vec<i64> = times.iter().map(|&t| at.unwrap_or(t) - o).collect();
        let lo = ends.iter().copied().min().unwrap_or(0);
        let hi = ends.iter().copied().max().unwrap_or(0);
        let (first, last) = subquery_grid(sq, lo, hi);
        let step = subquery_step(sq);
        let inner_times = step_times(first, last, step);
        let inner = if first > last {
            Steps::Vector(Vec::new())
        } else {
            self.eval(&sq.expr, &inner_times)?
        };
        let matrix = to_matrix(inner, &inner_times);
        let series = matrix
            .into_iter()
            .map(|s| WindowSeries::new(s.metric, s.points, &ends, range))
            .collect();
        Ok(Windows {
            series,
            ends,
            range,
        })
    }
}

fn subquery_step(sq: &SubqueryExpr) -> i64 {
    sq.step
        .as_ref()
        .map(ms_of_duration)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SUBQUERY_STEP_MS)
}

/// The first and last inner evaluation time of a subquery whose outer times (moved by its
/// offset and `@`) run from `lo` to `hi`: multiples of its step in `(lo - range, hi]`.
fn subquery_grid(sq: &SubqueryExpr, lo: i64, hi: i64) -> (i64, i64) {
    let step = subquery_step(sq);
    let range = ms_of_duration(&sq.range);
    let from = lo - range;
    // The first multiple of step strictly after `from`.
    let first = from.div_euclid(step) * step + step;
    let last = hi.div_euclid(step) * step;
    (first, last)
}

/// Refuses a step whose vector holds one label set twice, as a dropped name can make.
fn unique_label_sets(steps: &Steps) -> Result<(), QueryError> {
    match steps {
        Steps::Vector(vectors) => vectors
            .iter()
            .try_for_each(functions::check_unique_labelsets),
        _ => Ok(()),
    }
}

fn negate(steps: Steps) -> Steps {
    match steps {
        Steps::Scalar(v) => Steps::Scalar(v.into_iter().map(|x| -x).collect()),
        Steps::Vector(vs) => Steps::Vector(
            vs.into_iter()
                .map(|v| {
                    v.into_iter()
                        .map(|s| Sample {
                            metric: Arc::new(s.metric.without_name()),
                            value: -s.value,
                            ts: s.ts,
                        })
                        .collect()
                })
                .collect(),
        ),
        s => s,
    }
}

/// A range vector's series with their window bounds at every step.
pub(super) struct Windows {
    pub(super) series: Vec<WindowSeries>,
    /// The window's end at each step.
    pub(super) ends: Vec<i64>,
    /// The window's length.
    pub(super) range: i64,
}

pub(super) struct WindowSeries {
    pub(super) metric: Metric,
    /// `metric` without `__name__`, made once for every step.
    pub(super) unnamed: Metric,
    pub(super) points: Vec<(i64, f64)>,
    /// Per step, the points' index range `lo..hi` inside `(end - range, end]`.
    pub(super) bounds: Vec<(usize, usize)>,
}

impl WindowSeries {
    fn new(metric: Metric, points: Vec<(i64, f64)>, ends: &[i64], range: i64) -> Self {
        let bounds = ends
            .iter()
            .map(|&end| {
                let lo = points.partition_point(|p| p.0 <= end - range);
                let hi = points.partition_point(|p| p.0 <= end);
                (lo, hi.max(lo))
            })
            .collect();
        let unnamed = super::value::unnamed(&metric);
        Self {
            metric,
            unnamed,
            points,
            bounds,
        }
    }
}

impl Windows {
    fn at(&self, i: usize) -> RangeArg<'_> {
        let end = self.ends[i];
        RangeArg {
            series: self
                .series
                .iter()
                .filter_map(|s| {
                    let (lo, hi) = s.bounds[i];
                    (hi > lo).then(|| RangeSeries {
                        metric: s.metric.clone(),
                        unnamed: s.unnamed.clone(),
                        points: &s.points[lo..hi],
                    })
                })
                .collect(),
            start: end - self.range,
            end,
        }
    }
}

/// Hands out an evaluated argument one step at a time.
enum StepIter {
    Scalar(std::vec::IntoIter<f64>),
    String(String),
    Vector(std::vec::IntoIter<Vector>),
    Range,
}

impl StepIter {
    fn new(steps: Option<Steps>) -> Self {
        match steps {
            None => StepIter::Range,
            Some(Steps::Scalar(v)) => StepIter::Scalar(v.into_iter()),
            Some(Steps::String(s)) => StepIter::String(s),
            Some(Steps::Vector(v)) => StepIter::Vector(v.into_iter()),
        }
    }

    fn next<'a>(&mut self) -> Option<Arg<'a>> {
        match self {
            StepIter::Scalar(it) => Some(Arg::Scalar(it.next().unwrap_or(f64::NAN))),
            StepIter::String(s) => Some(Arg::String(s.clone())),
            StepIter::Vector(it) => Some(Arg::Vector(it.next().unwrap_or_default())),
            StepIter::Range => None,
        }
    }
}

/// The loaded series of a selector on a rollup tier, for `rollup.rs`.
impl Evaluator<'_> {
    pub(super) fn rollup_series(
        &self,
        vs: &VectorSelector,
    ) -> Vec<(Metric, SeriesKind, &[Rollup])> {
        self.data
            .get(&node_key(vs))
            .map(|list| {
                list.iter()
                    .map(|s| (s.metric.clone(), s.kind, s.rollups.as_slice()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn moved_end(&self, vs: &VectorSelector, t: i64) -> i64 {
        self.at_time(&vs.at).unwrap_or(t) - ms_of_offset(&vs.offset)
    }
}
