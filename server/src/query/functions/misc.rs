//! `vector`, `scalar`, `absent`, `absent_over_time` and the sort functions.
//!
//! `absent` and `absent_over_time` label their sample with the equality matchers of the
//! selector they were given (a label matched twice, or also by another matcher, is left
//! out), as Prometheus does. The sort functions keep `__name__`; NaN sorts last both ways,
//! `sort_by_label` compares values in natural order (numbers within them by value) and
//! breaks ties by the whole label set. In a range query the order is lost anyway, so they
//! also warn.

use std::{cmp::Ordering, collections::HashSet, sync::Arc};

use promql_parser::{
    label::{MatchOp, Matchers},
    parser::Expr,
};

use super::{Args, CallCtx, Labels, Sample, Value, Vector, sample};
use crate::{query::QueryError, store::NAME_LABEL};

/// Calls `args.name` if it is one of this family.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    let result = match args.name {
        "vector" => args
            .scalar(0)
            .map(|v| Value::Vector(vec![sample(Arc::new(Labels::default()), v, ctx)])),
        "scalar" => args.take_vector(0).map(|v| match v.as_slice() {
            [only] => Value::Scalar(only.value),
            _ => Value::Scalar(f64::NAN),
        }),
        "absent" => absent(args, ctx),
        "absent_over_time" => absent_over_time(args, ctx),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => sort(args, ctx),
        _ => return None,
    };
    Some(result)
}

fn absent(args: &mut Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    if !args.take_vector(0)?.is_empty() {
        return Ok(Value::Vector(Vector::new()));
    }
    let metric = match ctx.arg_exprs.first().map(|e| e.as_ref()) {
        Some(Expr::VectorSelector(vs)) => absent_labels(&vs.matchers),
        _ => Labels::default(),
    };
    Ok(Value::Vector(vec![sample(Arc::new(metric), 1.0, ctx)]))
}

fn absent_over_time(args: &Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    if args.range(0)?.series.iter().any(|s| !s.points.is_empty()) {
        return Ok(Value::Vector(Vector::new()));
    }
    let mut expr = ctx.arg_exprs.first().map(|e| e.as_ref());
    // The engine unwraps parentheses around a range argument.
    while let Some(Expr::Paren(p)) = expr {
        expr = Some(p.expr.as_ref());
    }
    let metric = match expr {
        Some(Expr::MatrixSelector(ms)) => absent_labels(&ms.vs.matchers),
        _ => Labels::default(),
    };
    Ok(Value::Vector(vec![sample(Arc::new(metric), 1.0, ctx)]))
}

/// The labels matched by exactly one equality matcher each, `__name__` aside.
fn absent_labels(matchers: &Matchers) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for m in &matchers.matchers {
        if m.name == NAME_LABEL {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && seen.insert(m.name.as_str()) {
            pairs.push((m.name.clone(), m.value.clone()));
        } else {
            pairs.retain(|(k, _)| *k != m.name);
        }
    }
    Labels::new(pairs)
}

fn sort(args: &mut Args<'_, '_>, ctx: &mut CallCtx<'_>) -> Result<Value, QueryError> {
    let name = args.name;
    let mut v = args.take_vector(0)?;
    for s in &mut v {
        s.ts = ctx.t;
    }
    match name {
        "sort" => v.sort_by(|a, b| by_value(a.value, b.value, false)),
        "sort_desc" => v.sort_by(|a, b| by_value(a.value, b.value, true)),
        _ => {
            let labels = (1..args.len())
                .map(|i| args.string(i).map(str::to_string))
                .collect::<Result<Vec<_>, _>>()?;
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let o = by_labels(a, b, &labels);
                if desc { o.reverse() } else { o }
            });
        }
    }
    if ctx.range_query {
        ctx.ann.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
        );
    }
    Ok(Value::Vector(v))
}

/// Ascending or descending by value, NaN last either way.
fn by_value(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) if desc => b.total_cmp(&a),
        (false, false) => a.total_cmp(&b),
    }
}

fn by_labels(a: &Sample, b: &Sample, names: &[String]) -> Ordering {
    for name in names {
        let o = natural_cmp(a.metric.get(name), b.metric.get(name));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.metric.cmp(&b.metric)
}

/// Natural order as Prometheus' `natsort`: runs of ASCII digits compare as numbers (as
/// strings once beyond `i64`), other runs as strings, a prefix first. Made a total order (which natsort is not: "1" and "01"
/// each precede the other there) by falling back to plain string order.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(n), Ok(m)) => n.cmp(&m),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Splits into maximal runs of ASCII digits and of everything else.
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut digit = None;
    for (i, c) in s.char_indices() {
        let d = c.is_ascii_digit();
        if digit.is_some_and(|prev| prev != d) {
            out.push(&s[start..i]);
            start = i;
        }
        digit = Some(d);
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Arg, CallCtx, call};
    use super::*;
    use crate::query::Annotations;

    fn absent_with(expr: &str) -> Vector {
        let parsed = promql_parser::parser::parse(expr).unwrap();
        let Expr::Call(c) = parsed else {
            panic!("not a call")
        };
        let mut ann = Annotations::default();
        let mut ctx = CallCtx {
            t: 0,
            arg_exprs: &c.args.args,
            range_query: false,
            ann: &mut ann,
        };
        let arg = if c.func.name == "absent" {
            Arg::Vector(Vector::new())
        } else {
            Arg::Range(super::super::RangeArg {
                series: vec![],
                start: 0,
                end: 0,
            })
        };
        vector(call(c.func.name, vec![arg], &mut ctx))
    }

    #[test]
    fn absent_takes_labels_from_single_equality_matchers() {
        let v = absent_with(
            r#"absent(nonexistent{job="testjob", instance="testinstance", method=~".x"})"#,
        );
        assert_eq!(
            v[0].metric.to_string(),
            r#"{instance="testinstance", job="testjob"}"#
        );
        assert_eq!(v[0].value, 1.0);
        let v = absent_with(r#"absent(nonexistent{job="testjob",job="testjob2",foo="bar"})"#);
        assert_eq!(v[0].metric.to_string(), r#"{foo="bar"}"#);
        let v = absent_with(r#"absent(nonexistent{job="testjob",job=~"testjob2",foo="bar"})"#);
        assert_eq!(v[0].metric.to_string(), r#"{foo="bar"}"#);
        let v = absent_with(r#"absent(sum(nonexistent{job="testjob"}))"#);
        assert!(v[0].metric.is_empty());
        let v = absent_with(
            r#"absent_over_time(http_requests_total{handler="/foo", handler="/bar", instance="127.0.0.1"}[5m])"#,
        );
        assert_eq!(v[0].metric.to_string(), r#"{instance="127.0.0.1"}"#);
        let v = absent_with(r#"absent_over_time(rate(nonexistent[5m])[5m:])"#);
        assert!(v[0].metric.is_empty());
    }

    #[test]
    fn absent_of_something_is_nothing() {
        let (r, _) = run("absent", vec![Arg::Vector(vec![s(&[], 1.0)])], 0, false);
        assert!(vector(r).is_empty());
    }

    #[test]
    fn sort_puts_nan_last_both_ways_and_warns_in_range_queries() {
        let v = || {
            vec![
                s(&[("i", "a")], f64::NAN),
                s(&[("i", "b")], 2.0),
                s(&[("i", "c")], 1.0),
            ]
        };
        let values = |r| {
            vector(r)
                .iter()
                .map(|s: &Sample| s.value)
                .collect::<Vec<_>>()
        };
        let (r, ann) = run("sort", vec![Arg::Vector(v())], 0, false);
        let got = values(r);
        assert_eq!(got[..2], [1.0, 2.0]);
        assert!(got[2].is_nan());
        assert!(ann.warnings.is_empty());
        let (r, ann) = run("sort_desc", vec![Arg::Vector(v())], 0, true);
        let got = values(r);
        assert_eq!(got[..2], [2.0, 1.0]);
        assert!(got[2].is_nan());
        assert_eq!(ann.warnings.len(), 1);
    }

    #[test]
    fn sort_by_label_uses_natural_order() {
        let cpus = ["0", "1", "10", "100", "11", "2", "20", "21", "3", "12"];
        let v = cpus
            .iter()
            .map(|c| s(&[("__name__", "cpu_time_total"), ("cpu", c)], 1.0))
            .collect();
        let (r, _) = run(
            "sort_by_label",
            vec![Arg::Vector(v), Arg::String("cpu".into())],
            0,
            false,
        );
        let order: Vec<String> = vector(r)
            .iter()
            .map(|s| s.metric.get("cpu").to_string())
            .collect();
        assert_eq!(
            order,
            ["0", "1", "2", "3", "10", "11", "12", "20", "21", "100"]
        );
        let rel = ["1.2.3", "1.11.3", "1.111.3"];
        let v: Vector = rel
            .iter()
            .rev()
            .map(|r| s(&[("release", r)], 1.0))
            .collect();
        let (r, _) = run(
            "sort_by_label_desc",
            vec![Arg::Vector(v), Arg::String("release".into())],
            0,
            false,
        );
        let order: Vec<String> = vector(r)
            .iter()
            .map(|s| s.metric.get("release").to_string())
            .collect();
        assert_eq!(order, ["1.111.3", "1.11.3", "1.2.3"]);
        assert_eq!(natural_cmp("4m5", "4m600"), Ordering::Less);
        assert_eq!(natural_cmp("4m600", "4m1000"), Ordering::Less);
        assert_ne!(natural_cmp("1", "01"), natural_cmp("01", "1"));
    }

    #[test]
    fn scalar_needs_exactly_one_sample() {
        let (r, _) = run("scalar", vec![Arg::Vector(vec![s(&[], 1.0)])], 0, false);
        assert_eq!(r, Ok(Value::Scalar(1.0)));
        let (r, _) = run(
            "scalar",
            vec![Arg::Vector(vec![s(&[("a", "1")], 1.0), s(&[], 2.0)])],
            0,
            false,
        );
        assert!(matches!(r, Ok(Value::Scalar(v)) if v.is_nan()));
    }
}
