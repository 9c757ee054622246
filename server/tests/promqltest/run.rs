//! Runs a parsed script against our engine, as Prometheus' `promqltest` runs it:
//!
//! - a load adds each series' values at `i * interval` ms into a [`MemorySource`];
//! - an instant eval is checked at its time, then again with every selector and subquery
//!   pinned by `@ <time>` at other evaluation times (unless the expression holds a function
//!   whose value depends on the evaluation time), and each of those again as a range query
//!   from one minute before to one minute after, step one minute, whose middle step must
//!   give the same answer (unless the eval expects a range vector or a string, is ordered,
//!   or uses `start()`, `end()`, `range()`, `step()`);
//! - a range eval is checked once.
//!
//! Native histograms are not stored: an eval whose expectation holds one, or which fails
//! while one of its selectors matches a series that only exists as a native histogram
//! (skipped from a load, or made by `load_with_nhcb`), is reported as unsupported rather
//! than failed.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use promql_parser::label::Matcher as LabelMatcher;
use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use regex::Regex;
use sysward_server::query::{
    Labels, MemorySource, QueryOptions, Value, instant_query, range_query,
};

use super::compare::{
    Frame, assert_sorted, check_annotations, check_failure, compare, compare_vector, expected_text,
    value_text,
};
use super::script::{Command, Eval, EvalKind, Load};

/// What became of one eval.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// As expected.
    Pass,
    /// Not as expected: the first line says why, the rest shows expected and got.
    Fail(String),
    /// Needs native histograms, which the engine does not have.
    Unsupported(String),
}

/// One eval's outcome.
#[derive(Debug, Clone)]
pub(crate) struct EvalReport {
    /// 1-based line of the `eval`.
    pub(crate) line: usize,
    /// Its expression.
    pub(crate) expr: String,
    /// What became of it.
    pub(crate) outcome: Outcome,
}

/// Runs every command; returns an outcome per eval, in script order.
pub(crate) fn run_script(commands: &[Command]) -> Vec<EvalReport> {
    let mut source = MemorySource::new();
    let mut histograms: Vec<Labels> = Vec::new();
    let mut reports = Vec::new();
    for command in commands {
        match command {
            Command::Clear => {
                source.clear();
                histograms.clear();
            }
            Command::Load(load) => apply_load(&mut source, &mut histograms, load),
            Command::Eval(eval) => {
                // An expected histogram is never checked, so such an eval cannot pass.
                let outcome = if eval.expects_histogram {
                    Outcome::Unsupported("expects a native histogram".into())
                } else {
                    match run_eval(&source, eval) {
                        Outcome::Fail(why) if selects_any(&eval.expr, &histograms) => {
                            let first = why.lines().next().unwrap_or_default();
                            Outcome::Unsupported(format!(
                                "reads a native-histogram series: {first}"
                            ))
                        }
                        other => other,
                    }
                };
                reports.push(EvalReport {
                    line: eval.line,
                    expr: eval.expr.clone(),
                    outcome,
                });
            }
        }
    }
    reports
}

fn apply_load(source: &mut MemorySource, histograms: &mut Vec<Labels>, load: &Load) {
    histograms.extend(load.histogram_series.iter().map(|l| Labels::new(l.clone())));
    for series in &load.series {
        let labels = Labels::new(series.labels.clone());
        if load.with_nhcb {
            // Prometheus also stores each classic histogram as a native one under the base
            // name, without `le`.
            let name = labels.name();
            for suffix in ["_bucket", "_count", "_sum"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    histograms.push(labels.without(&["le"]).with("__name__", base));
                }
            }
        }
        let points: Vec<(i64, f64)> = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * load.interval_ms, v)))
            .collect();
        source.add(labels, &points);
    }
}

/// Whether any selector of the expression matches any of these series.
fn selects_any(expr: &str, series: &[Labels]) -> bool {
    let Ok(parsed) = promql_parser::parser::parse(expr) else {
        return false;
    };
    let mut selectors = Vec::new();
    collect_selectors(&parsed, &mut selectors);
    selectors
        .iter()
        .any(|vs| series.iter().any(|l| selector_matches(vs, l)))
}

fn selector_matches(vs: &VectorSelector, labels: &Labels) -> bool {
    if vs.name.as_deref().is_some_and(|n| n != labels.name()) {
        return false;
    }
    let all = |ms: &[LabelMatcher]| ms.iter().all(|m| m.is_match(labels.get(&m.name)));
    let m = &vs.matchers;
    all(&m.matchers) && (m.or_matchers.is_empty() || m.or_matchers.iter().any(|alt| all(alt)))
}

fn collect_selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Subquery(sq) => collect_selectors(&sq.expr, out),
        Expr::Call(call) => call
            .args
            .args
            .iter()
            .for_each(|a| collect_selectors(a, out)),
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn run_eval(source: &MemorySource, eval: &Eval) -> Outcome {
    let result = match eval.kind {
        EvalKind::Instant { at } => run_instant_eval(source, eval, at),
        EvalKind::Range { start, end, step } => run_range_eval(source, eval, start, end, step),
    };
    match result {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    }
}

fn options() -> QueryOptions {
    QueryOptions::default()
}

fn run_range_eval(
    source: &MemorySource,
    eval: &Eval,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    let out = match range_query(source, &eval.expr, start, end, step, &options()) {
        Err(e) if eval.fail => return check_failure(eval, &e.to_string()),
        Err(e) => return Err(format!("error evaluating query: {e}")),
        Ok(_) if eval.fail => return Err("expected an error but got none".into()),
        Ok(out) => out,
    };
    check_annotations(eval, &out.annotations)?;
    let frame = Frame {
        start,
        end: Some(end),
        step,
    };
    compare(eval, frame, &out.value).map_err(|e| with_values(e, eval, &out.value))
}

fn with_values(reason: String, eval: &Eval, got: &Value) -> String {
    format!(
        "{reason}\n    expected: {}\n    got: {}",
        expected_text(eval),
        value_text(got)
    )
}

static QUERY_CONTEXT_FUNCS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(start|end|range|step)\(\)").unwrap_or_else(|e| panic!("built-in: {e}"))
});

fn run_instant_eval(source: &MemorySource, eval: &Eval, at: i64) -> Result<(), String> {
    let mut queries = vec![(eval.expr.clone(), at)];
    queries.extend(at_variants(&eval.expr, at));
    for (i, (expr, time)) in queries.iter().enumerate() {
        run_instant_query(source, eval, at, expr, *time).map_err(|e| {
            if i == 0 {
                e
            } else {
                let (first, rest) = e.split_once('\n').unwrap_or((&e, ""));
                format!("{first} (as {expr} at {}s)\n{rest}", *time as f64 / 1000.0)
            }
        })?;
    }
    Ok(())
}

fn run_instant_query(
    source: &MemorySource,
    eval: &Eval,
    at: i64,
    expr: &str,
    time: i64,
) -> Result<(), String> {
    let out = match instant_query(source, expr, time, &options()) {
        Err(e) if eval.fail => return check_failure(eval, &e.to_string()),
        Err(e) => return Err(format!("error evaluating query: {e}")),
        Ok(_) if eval.fail => return Err("expected an error but got none".into()),
        Ok(out) => out,
    };
    check_annotations(eval, &out.annotations)?;
    let frame = match eval.range_vector {
        Some((start, end, step)) => Frame {
            start,
            end: Some(end),
            step,
        },
        None => Frame {
            start: at,
            end: None,
            step: 0,
        },
    };
    compare(eval, frame, &out.value).map_err(|e| with_values(e, eval, &out.value))?;
    if eval.excluded_from_range_mode() || QUERY_CONTEXT_FUNCS.is_match(expr) {
        return Ok(());
    }
    let range = range_query(
        source,
        expr,
        time - 60_000,
        time + 60_000,
        60_000,
        &options(),
    )
    .map_err(|e| format!("error evaluating query in range mode: {e}"))?;
    if eval.ordered {
        return Ok(());
    }
    let Value::Matrix(m) = &range.value else {
        return Err(format!(
            "range mode: a range query returned a {}",
            range.value.type_name()
        ));
    };
    assert_sorted(m).map_err(|e| format!("range mode: {e}"))?;
    let samples: Vec<(&Labels, f64)> = m
        .iter()
        .filter_map(|s| {
            s.points
                .iter()
                .find(|(t, _)| *t == time)
                .map(|(_, v)| (&*s.metric, *v))
        })
        .collect();
    let checked = match (&out.value, samples.first()) {
        (Value::Scalar(_), Some((_, v))) => compare(eval, frame, &Value::Scalar(*v)),
        (Value::Scalar(_), None) => Err("the range query has no point at the instant".into()),
        _ => compare_vector(eval, &samples),
    };
    checked.map_err(|e| {
        format!(
            "range mode: {e}\n    expected: {}\n    got (range query): {}",
            expected_text(eval),
            value_text(&range.value)
        )
    })
}

/// Functions whose value depends on the evaluation time even when their arguments do not
/// (Prometheus' `AtModifierUnsafeFunctions`).
const AT_UNSAFE: [&str; 11] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// Prometheus' `atModifierTestCases`: the expression with `@ at` on every selector and
/// subquery that has none (not inside subqueries), at other evaluation times. None when
/// the expression uses a time-dependent function, or does not survive printing.
fn at_variants(expr: &str, at: i64) -> Vec<(String, i64)> {
    // start(), end(), range() and step() answer the query's own parameters, which the
    // variants change on purpose.
    if QUERY_CONTEXT_FUNCS.is_match(expr) {
        return Vec::new();
    }
    let Ok(mut parsed) = promql_parser::parser::parse(expr) else {
        return Vec::new();
    };
    // The engine reparses the printed expression: use it only where printing is stable
    // (printing sorts matchers and drops `by ()`, which changes no meaning).
    let printed = parsed.to_string();
    let stable = promql_parser::parser::parse(&printed).is_ok_and(|p| p.to_string() == printed);
    if !stable || at < 0 {
        return Vec::new();
    }
    let pin = AtModifier::At(SystemTime::UNIX_EPOCH + Duration::from_millis(at as u64));
    if pin_selectors(&mut parsed, &pin) {
        return Vec::new();
    }
    let text = parsed.to_string();
    let times: Vec<i64> = if at == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * at, 0, at / 5, at, 10 * at]
    };
    times.into_iter().map(|t| (text.clone(), t)).collect()
}

/// Sets `@` where there is none, outside subqueries; returns whether a time-dependent
/// function was seen.
fn pin_selectors(expr: &mut Expr, pin: &AtModifier) -> bool {
    match expr {
        Expr::VectorSelector(vs) => {
            vs.at.get_or_insert_with(|| pin.clone());
            false
        }
        Expr::MatrixSelector(ms) => {
            ms.vs.at.get_or_insert_with(|| pin.clone());
            false
        }
        Expr::Subquery(sq) => {
            sq.at.get_or_insert_with(|| pin.clone());
            false
        }
        Expr::Call(call) => {
            let mut unsafe_fn = AT_UNSAFE.contains(&call.func.name);
            for arg in &mut call.args.args {
                unsafe_fn |= pin_selectors(arg, pin);
            }
            unsafe_fn
        }
        Expr::Aggregate(a) => {
            let mut unsafe_fn = pin_selectors(&mut a.expr, pin);
            if let Some(p) = &mut a.param {
                unsafe_fn |= pin_selectors(p, pin);
            }
            unsafe_fn
        }
        Expr::Unary(u) => pin_selectors(&mut u.expr, pin),
        Expr::Binary(b) => pin_selectors(&mut b.lhs, pin) | pin_selectors(&mut b.rhs, pin),
        Expr::Paren(p) => pin_selectors(&mut p.expr, pin),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
    }
}
