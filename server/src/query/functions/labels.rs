//! `label_replace` and `label_join`: they rewrite one label of every sample and keep the
//! rest, `__name__` included.
//!
//! The regular expression of `label_replace` is anchored at both ends (`^(?s:re)$`) and its
//! replacement expands `$1`, `${name}` and `$$` as Go's `Regexp.Expand` does. Setting a
//! label to "" removes it. A label name is valid when it is not empty (Prometheus 3.x
//! accepts any UTF-8 name). Two samples ending with one label set fail the query, checked
//! by the caller.

use std::sync::Arc;

use regex::Regex;

use super::{Args, CallCtx, Value, sample};
use crate::query::QueryError;

/// Calls `args.name` if it is `label_replace` or `label_join`.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    match args.name {
        "label_replace" => Some(label_replace(args, ctx)),
        "label_join" => Some(label_join(args, ctx)),
        _ => None,
    }
}

/// Patterns this thread compiled last; a range query calls `label_replace` at every step
/// with the same pattern, and compiling it each time cost more than the rest of the call.
const COMPILED_KEPT: usize = 16;

thread_local! {
    static COMPILED: std::cell::RefCell<Vec<(String, Regex)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `^(?s:pattern)$` compiled, from this thread's recent patterns when it is among them.
fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    COMPILED.with(|cell| {
        let mut kept = cell.borrow_mut();
        if let Some((_, r)) = kept.iter().find(|(p, _)| p == pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(&format!("^(?s:{pattern})$"))?;
        if kept.len() == COMPILED_KEPT {
            kept.remove(0);
        }
        kept.push((pattern.to_string(), r.clone()));
        Ok(r)
    })
}

fn label_replace(args: &mut Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    let dst = args.string(1)?.to_string();
    let replacement = args.string(2)?.to_string();
    let src = args.string(3)?.to_string();
    let pattern = args.string(4)?;
    let regex = compiled(pattern).map_err(|_| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if dst.is_empty() {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let v = args.take_vector(0)?;
    let out = v
        .into_iter()
        .map(|s| {
            let metric = match regex.captures(s.metric.get(&src)) {
                Some(caps) => {
                    let mut value = String::new();
                    caps.expand(&replacement, &mut value);
                    Arc::new(s.metric.with(&dst, &value))
                }
                None => s.metric,
            };
            sample(metric, s.value, ctx)
        })
        .collect();
    Ok(Value::Vector(out))
}

fn label_join(args: &mut Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    let dst = args.string(1)?.to_string();
    let separator = args.string(2)?.to_string();
    let mut sources = Vec::with_capacity(args.len().saturating_sub(3));
    for i in 3..args.len() {
        let src = args.string(i)?;
        if src.is_empty() {
            return Err(QueryError::Execution(format!(
                "invalid source label name in label_join(): {src}"
            )));
        }
        sources.push(src.to_string());
    }
    if dst.is_empty() {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let v = args.take_vector(0)?;
    let out = v
        .into_iter()
        .map(|s| {
            let values: Vec<&str> = sources.iter().map(|l| s.metric.get(l)).collect();
            let metric = Arc::new(s.metric.with(&dst, &values.join(&separator)));
            sample(metric, s.value, ctx)
        })
        .collect();
    Ok(Value::Vector(out))
}

#[cfg(test)]
mod tests {
    use super::super::Arg;
    use super::super::test_support::*;
    use crate::query::{QueryError, Vector};

    fn metrics() -> Vector {
        vec![
            s(
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-10"),
                    ("dst", "original"),
                ],
                0.0,
            ),
            s(
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-20"),
                    ("dst", "original"),
                ],
                1.0,
            ),
        ]
    }

    fn replace(dst: &str, repl: &str, src: &str, re: &str) -> Result<Vec<String>, QueryError> {
        let args = [dst, repl, src, re]
            .into_iter()
            .map(|a| Arg::String(a.to_string()));
        let args = std::iter::once(Arg::Vector(metrics()))
            .chain(args)
            .collect();
        let (r, _) = run("label_replace", args, 0, false);
        match r {
            Ok(_) => Ok(vector(r).iter().map(|s| s.metric.to_string()).collect()),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn label_replace_matches_the_whole_value_and_expands_groups() {
        let got = replace("dst", "destination-value-$1", "src", "source-value-(.*)").unwrap();
        assert_eq!(
            got[0],
            r#"{__name__="testmetric", dst="destination-value-10", src="source-value-10"}"#
        );
        // No substring match: the label stays.
        let got = replace("dst", "destination-value-$1", "src", "value-(.*)").unwrap();
        assert!(got[0].contains(r#"dst="original""#));
        let got = replace("dst", "$1-value-$2", "src", "(.*)-value-(.*)").unwrap();
        assert!(got[1].contains(r#"dst="source-value-20""#));
        // An absent source is "", which `(.*)` matches.
        let got = replace("dst", "value-$1", "nonexistent-src", "(.*)").unwrap();
        assert!(got[0].contains(r#"dst="value-""#));
        // Set to "", the label goes.
        let got = replace("dst", "", "dst", ".*").unwrap();
        assert!(!got[0].contains("dst"));
    }

    #[test]
    fn label_replace_refuses_bad_regex_bad_name_and_duplicates() {
        assert_eq!(
            replace("dst", "value-$1", "src", "(.*"),
            Err(QueryError::Execution(
                "invalid regular expression in label_replace(): (.*".into()
            ))
        );
        assert_eq!(
            replace("", "", "src", "(.*)"),
            Err(QueryError::Execution(
                "invalid destination label name in label_replace(): ".into()
            ))
        );
        assert_eq!(
            replace("src", "", "", ""),
            Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into()
            ))
        );
    }

    #[test]
    fn label_join_joins_in_order_and_treats_missing_as_empty() {
        let v = vec![s(
            &[("src", "a"), ("src1", "b"), ("src2", "c"), ("dst", "x")],
            0.0,
        )];
        let args = vec![
            Arg::Vector(v),
            Arg::String("dst".into()),
            Arg::String("-".into()),
            Arg::String("src".into()),
            Arg::String("src3".into()),
            Arg::String("src1".into()),
        ];
        let out = vector(run("label_join", args, 0, false).0);
        assert_eq!(out[0].metric.get("dst"), "a--b");
        let v = vec![
            s(&[("label", "a"), ("this", "a")], 1.0),
            s(&[("label", "b"), ("this", "a")], 1.0),
        ];
        let args = vec![
            Arg::Vector(v),
            Arg::String("label".into()),
            Arg::String("".into()),
            Arg::String("this".into()),
        ];
        let (r, _) = run("label_join", args, 0, false);
        assert_eq!(
            r,
            Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into()
            ))
        );
    }
}
