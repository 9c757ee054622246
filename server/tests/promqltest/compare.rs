//! Prometheus' comparison rules for an eval's answer (`compareResult`, `checkAnnotations`
//! and `checkExpectedFailure` in `promqltest/test.go`):
//!
//! - values are equal within a relative error of 1e-6 (`util/almost`), NaN equal to NaN;
//! - label sets are compared exactly; order counts only under `ordered`, where a vector's
//!   i-th sample must be the series written at position i;
//! - a matrix must be sorted by labels, its points at `start + i * step` for the i-th
//!   written value (`_` skips a step);
//! - annotations: `eval_warn`/`eval_info` need at least one; `expect warn|info` lines must
//!   each match a message and each message must match a line; `no_warn`/`no_info` need
//!   none; with no such line, annotations are not checked. Prometheus' messages end in the
//!   expression's position (`(1:8)`), ours do not: both sides are compared without it.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use sysward_server::query::{Annotations, Labels, Series, Value, format_value};

use super::script::{Eval, Expected, Matcher, SeriesLine};

/// The times at which a matrix's expected values sit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// Time of the first value, ms.
    pub(crate) start: i64,
    /// The last time a value may sit at; `None` allows none.
    pub(crate) end: Option<i64>,
    /// Between values, ms.
    pub(crate) step: i64,
}

/// `almost.Equal(a, b, 1e-6)`.
pub(crate) fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// The label set of an expected series line.
pub(crate) fn labels_of(line: &SeriesLine) -> Labels {
    Labels::new(line.labels.clone())
}

/// Compares a query's value with the eval's expectation.
pub(crate) fn compare(eval: &Eval, frame: Frame, value: &Value) -> Result<(), String> {
    match value {
        Value::Matrix(m) => compare_matrix(eval, frame, m),
        Value::Vector(v) => {
            let samples: Vec<(&Labels, f64)> = v.iter().map(|s| (&*s.metric, s.value)).collect();
            compare_vector(eval, &samples)
        }
        Value::Scalar(v) => match eval.expected {
            Expected::Scalar(want) if almost_equal(want, *v) => Ok(()),
            Expected::Scalar(want) => Err(format!(
                "expected scalar {} but got {}",
                format_value(want),
                format_value(*v)
            )),
            _ => Err(format!(
                "expected vector or matrix result, but got scalar {}",
                format_value(*v)
            )),
        },
        Value::String(s) => {
            let want = eval.string.as_deref().unwrap_or_default();
            if want == s {
                Ok(())
            } else {
                Err(format!("expected string {want:?} but got {s:?}"))
            }
        }
    }
}

fn expected_series(eval: &Eval) -> Result<Vec<(usize, Labels, &SeriesLine)>, String> {
    match &eval.expected {
        Expected::Scalar(v) => Err(format!("expected scalar {}", format_value(*v))),
        Expected::Nothing => Ok(Vec::new()),
        Expected::Series(list) => Ok(list
            .iter()
            .map(|(pos, line)| (*pos, labels_of(line), line))
            .collect()),
    }
}

/// Compares an instant vector (labels and values in the answer's order).
pub(crate) fn compare_vector(eval: &Eval, samples: &[(&Labels, f64)]) -> Result<(), String> {
    let expected =
        expected_series(eval).map_err(|e| format!("{e}, but got a vector of {}", samples.len()))?;
    let mut seen = HashSet::new();
    for (i, (labels, value)) in samples.iter().enumerate() {
        let Some((pos, _, line)) = expected.iter().find(|(_, l, _)| l == *labels) else {
            return Err(format!(
                "unexpected metric {labels} in result, has value {}",
                format_value(*value)
            ));
        };
        if !seen.insert(*labels) {
            return Err(format!("metric {labels} appears twice in the result"));
        }
        if eval.ordered && *pos != i + 1 {
            return Err(format!(
                "expected metric {labels} at position {pos} but was at {}",
                i + 1
            ));
        }
        let want = line.values.first().copied().flatten();
        match want {
            Some(w) if almost_equal(w, *value) => {}
            Some(w) => {
                return Err(format!(
                    "expected {} for {labels} but got {}",
                    format_value(w),
                    format_value(*value)
                ));
            }
            None => return Err(format!("expected no value for {labels} but got one")),
        }
    }
    for (_, labels, line) in &expected {
        if !seen.contains(labels) {
            return Err(format!(
                "expected metric {labels} with {} not found",
                values_text(&line.values)
            ));
        }
    }
    Ok(())
}

/// Fails unless the series are sorted by their label sets.
pub(crate) fn assert_sorted(m: &[Series]) -> Result<(), String> {
    match m.windows(2).position(|w| w[0].metric > w[1].metric) {
        Some(i) => Err(format!(
            "matrix results should always be sorted by labels, but {} sorts before {}",
            m[i + 1].metric,
            m[i].metric
        )),
        None => Ok(()),
    }
}

fn compare_matrix(eval: &Eval, frame: Frame, m: &[Series]) -> Result<(), String> {
    if eval.ordered {
        return Err("expected ordered result, but query returned a matrix".into());
    }
    let expected =
        expected_series(eval).map_err(|e| format!("{e}, but got a matrix of {}", m.len()))?;
    assert_sorted(m)?;
    let mut seen = HashSet::new();
    for s in m {
        let Some((_, labels, line)) = expected.iter().find(|(_, l, _)| *l == *s.metric) else {
            return Err(format!(
                "unexpected metric {} in result, has {}",
                s.metric,
                points_text(&s.points)
            ));
        };
        if !seen.insert(labels) {
            return Err(format!("metric {labels} appears twice in the result"));
        }
        let mut want = Vec::new();
        for (i, v) in line.values.iter().enumerate() {
            let t = frame.start + i as i64 * frame.step;
            if frame.end.is_none_or(|end| t > end) {
                return Err(format!(
                    "expected {} points for {labels}, but query time range cannot return this many points",
                    line.values.len()
                ));
            }
            if let Some(v) = v {
                want.push((t, *v));
            }
        }
        compare_points(labels, &want, &s.points)?;
    }
    for (_, labels, line) in &expected {
        if !seen.contains(labels) {
            return Err(format!(
                "expected metric {labels} with {} not found",
                values_text(&line.values)
            ));
        }
    }
    Ok(())
}

fn compare_points(labels: &Labels, want: &[(i64, f64)], got: &[(i64, f64)]) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!(
            "expected {} points for {labels}, but got {}",
            want.len(),
            points_text(got)
        ));
    }
    for (i, ((wt, wv), (gt, gv))) in want.iter().zip(got).enumerate() {
        if wt != gt {
            return Err(format!(
                "expected point {i} of {labels} at t={wt}, but it was at t={gt} (result has {})",
                points_text(got)
            ));
        }
        if !almost_equal(*wv, *gv) {
            return Err(format!(
                "expected point {i} (t={wt}) of {labels} to be {}, but got {} (result has {})",
                format_value(*wv),
                format_value(*gv),
                points_text(got)
            ));
        }
    }
    Ok(())
}

fn values_text(values: &[Option<f64>]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| v.map_or("_".to_string(), format_value))
        .collect();
    format!("[{}]", items.join(" "))
}

/// Points as `v@t` (seconds), at most 20.
pub(crate) fn points_text(points: &[(i64, f64)]) -> String {
    let mut items: Vec<String> = points
        .iter()
        .take(20)
        .map(|(t, v)| format!("{}@{}", format_value(*v), *t as f64 / 1000.0))
        .collect();
    if points.len() > 20 {
        items.push(format!("... ({} points)", points.len()));
    }
    format!("[{}]", items.join(" "))
}

static POSITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\s*\(\d+:\d+\)$").unwrap_or_else(|e| panic!("built-in pattern: {e}"))
});
static PATTERN_POSITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\s*\\\([0-9:+*\[\]\\d-]*\\\)\$?$").unwrap_or_else(|e| panic!("built-in: {e}"))
});

/// A message without Prometheus' trailing expression position.
pub(crate) fn without_position(message: &str) -> &str {
    match POSITION.find(message) {
        Some(m) => &message[..m.start()],
        None => message,
    }
}

/// Whether a message matches an expectation, positions aside.
pub(crate) fn matches(matcher: &Matcher, message: &str) -> bool {
    let message = without_position(message);
    match matcher {
        Matcher::Any => true,
        Matcher::Message(m) => without_position(m) == message,
        Matcher::Regex(r) => {
            let pattern = PATTERN_POSITION.replace(r.as_str(), "");
            match Regex::new(&pattern) {
                Ok(stripped) => stripped.is_match(message),
                Err(_) => r.is_match(message),
            }
        }
    }
}

/// `checkExpectedFailure`: the error must match every matcher.
pub(crate) fn check_failure(eval: &Eval, error: &str) -> Result<(), String> {
    match eval.fail_matchers.iter().find(|m| !matches(m, error)) {
        Some(m) => Err(format!(
            "expected error matching {} but got: {error}",
            matcher_text(m)
        )),
        None => Ok(()),
    }
}

fn matcher_text(m: &Matcher) -> String {
    match m {
        Matcher::Any => "anything".into(),
        Matcher::Message(s) => format!("message {s:?}"),
        Matcher::Regex(r) => format!("pattern {:?}", r.as_str()),
    }
}

fn check_kind(kind: &str, want: &[Matcher], got: &[String]) -> Result<(), String> {
    if want.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotations but none were found"));
    }
    if let Some(m) = want.iter().find(|m| !got.iter().any(|g| matches(m, g))) {
        return Err(format!(
            "expected {kind} annotation matching {} but no matching annotation was found, found: {got:?}",
            matcher_text(m)
        ));
    }
    if let Some(g) = got.iter().find(|g| !want.iter().any(|m| matches(m, g))) {
        return Err(format!("unexpected {kind} annotation {g:?}"));
    }
    Ok(())
}

/// `checkAnnotations`.
pub(crate) fn check_annotations(eval: &Eval, a: &Annotations) -> Result<(), String> {
    if eval.warn && a.warnings.is_empty() {
        return Err("expected warnings but got none".into());
    }
    if eval.info && a.infos.is_empty() {
        return Err("expected info annotations but got none".into());
    }
    check_kind("warn", &eval.warns, &a.warnings)?;
    check_kind("info", &eval.infos, &a.infos)?;
    if eval.no_warn && !a.warnings.is_empty() {
        return Err(format!("unexpected warning annotations: {:?}", a.warnings));
    }
    if eval.no_info && !a.infos.is_empty() {
        return Err(format!("unexpected info annotations: {:?}", a.infos));
    }
    Ok(())
}

/// A value, for a failure report: at most 20 series.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Scalar(v) => format!("scalar {}", format_value(*v)),
        Value::String(s) => format!("string {s:?}"),
        Value::Vector(v) => {
            let mut lines: Vec<String> = v
                .iter()
                .take(20)
                .map(|s| format!("{} {}", s.metric, format_value(s.value)))
                .collect();
            if v.len() > 20 {
                lines.push(format!("... ({} samples)", v.len()));
            }
            format!("vector of {}:\n      {}", v.len(), lines.join("\n      "))
        }
        Value::Matrix(m) => {
            let mut lines: Vec<String> = m
                .iter()
                .take(20)
                .map(|s| format!("{} {}", s.metric, points_text(&s.points)))
                .collect();
            if m.len() > 20 {
                lines.push(format!("... ({} series)", m.len()));
            }
            format!("matrix of {}:\n      {}", m.len(), lines.join("\n      "))
        }
    }
}

/// The expectation, for a failure report.
pub(crate) fn expected_text(eval: &Eval) -> String {
    if eval.fail {
        return "an error".into();
    }
    if let Some(s) = &eval.string {
        return format!("string {s:?}");
    }
    match &eval.expected {
        Expected::Nothing => "nothing (an empty result)".into(),
        Expected::Scalar(v) => format!("scalar {}", format_value(*v)),
        Expected::Series(list) => {
            let lines: Vec<String> = list
                .iter()
                .take(20)
                .map(|(_, l)| format!("{} {}", labels_of(l), values_text(&l.values)))
                .collect();
            format!("{} series:\n      {}", list.len(), lines.join("\n      "))
        }
    }
}
