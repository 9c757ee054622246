//! Functions answered from rollup records, on a query that reads a rollup tier.
//!
//! A rollup bucket keeps count, sum, min, max, first, last and, for counters, the
//! reset-corrected increase inside it. So `sum_over_time`, `count_over_time`,
//! `avg_over_time`, `min_over_time`, `max_over_time`, `last_over_time`, `increase` and
//! `rate` of a plain range selector are answered from the records of the buckets whose
//! start lies in `[end - range, end)`; `increase` adds the boundary terms from the last
//! sample before the window (see `store::total_increase`), and `rate` divides by the range.
//! A range shorter than the tier's resolution is widened to it, and the answer's infos say
//! so. Every other function of a range is refused on a rollup tier: its answer would be a
//! different number with nothing to tell it apart.

use promql_parser::parser::{Call, Expr};
use sysward_proto::SeriesKind;

use super::{
    QueryError, Sample,
    eval::{Evaluator, Kind, Steps, display_ms, expr_kind, ms_of_duration, unparen},
};
use crate::store::{Rollup, counter_increase, total_increase};

const ANSWERED: [&str; 8] = [
    "sum_over_time",
    "count_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "increase",
    "rate",
];

/// Evaluates `c` from rollups if it takes a range: `Ok(None)` when it takes none (the
/// ordinary path then evaluates it on each bucket's last sample).
pub(super) fn call(
    ev: &mut Evaluator<'_>,
    c: &Call,
    times: &[i64],
) -> Result<Option<Steps>, QueryError> {
    let name = c.func.name;
    let range_arg = c.args.args.iter().find(|a| is_range(a));
    let Some(arg) = range_arg else {
        return Ok(None);
    };
    let tier = ev.tier;
    let Expr::MatrixSelector(ms) = unparen(arg) else {
        return Err(QueryError::Execution(format!(
            "{name} of a subquery cannot be answered from the {} tier; ask for tier=raw within the raw retention",
            tier.name()
        )));
    };
    if !ANSWERED.contains(&name) || c.args.args.len() != 1 {
        return Err(QueryError::Execution(format!(
            "{name} cannot be answered from the {} tier, which keeps only count, sum, min, max, first, last and increase per bucket; ask for tier=raw within the raw retention",
            tier.name()
        )));
    }
    let asked = ms_of_duration(&ms.range);
    let res = tier.resolution_ms();
    let width = asked.max(res);
    if width > asked {
        ev.ann.info(format!(
            "{name}(...[{}]) was evaluated over {}, the resolution of the {} tier it was read from",
            display_ms(asked),
            display_ms(width),
            tier.name()
        ));
    } else {
        ev.ann
            .info(format!("{name} was answered from the {} tier", tier.name()));
    }
    let keeps_name = name == "last_over_time";
    let series: Vec<_> = ev
        .rollup_series(&ms.vs)
        .into_iter()
        .map(|(metric, kind, records)| {
            let out = if keeps_name {
                metric
            } else {
                super::value::unnamed(&metric)
            };
            (out, kind, records)
        })
        .collect();
    let mut out = Vec::with_capacity(times.len());
    // Steps run forward, so each series' window bounds only move forward: cursors instead
    // of a binary search per step (an `@` or a negative step order falls back to it).
    let mut cursors = vec![(0usize, 0usize); series.len()];
    let mut last_end = i64::MIN;
    for (i, &t) in times.iter().enumerate() {
        if i % 64 == 0 {
            ev.check_deadline()?;
        }
        let end = ev.moved_end(&ms.vs, t);
        let forward = end >= last_end;
        last_end = end;
        let mut step = Vec::with_capacity(series.len());
        for ((metric, kind, records), cursor) in series.iter().zip(&mut cursors) {
            let (lo, hi) = window(records, end - width, end, *cursor, forward);
            *cursor = (lo, hi);
            if hi <= lo {
                continue;
            }
            let before = lo.checked_sub(1).map(|j| &records[j]);
            let Some(value) = answer(name, &records[lo..hi], before, *kind, width) else {
                continue;
            };
            let metric = metric.clone();
            step.push(Sample {
                metric,
                value,
                ts: t,
            });
        }
        out.push(step);
    }
    Ok(Some(Steps::Vector(out)))
}

/// The index range of the records whose start lies in `[from, to)`, found from `cursor`
/// when the window only moved forward.
fn window(
    records: &[Rollup],
    from: i64,
    to: i64,
    cursor: (usize, usize),
    forward: bool,
) -> (usize, usize) {
    if !forward {
        let lo = records.partition_point(|r| r.start < from);
        let hi = records.partition_point(|r| r.start < to);
        return (lo, hi);
    }
    let (mut lo, mut hi) = cursor;
    while lo < records.len() && records[lo].start < from {
        lo += 1;
    }
    hi = hi.max(lo);
    while hi < records.len() && records[hi].start < to {
        hi += 1;
    }
    (lo, hi)
}

fn answer(
    name: &str,
    window: &[Rollup],
    before: Option<&Rollup>,
    kind: SeriesKind,
    width: i64,
) -> Option<f64> {
    let count: u64 = window.iter().map(|r| r.count).sum();
    if count == 0 {
        return None;
    }
    let sum = || window.iter().map(|r| r.sum).sum::<f64>();
    Some(match name {
        "sum_over_time" => sum(),
        "count_over_time" => count as f64,
        "avg_over_time" => sum() / count as f64,
        "min_over_time" => window.iter().map(|r| r.min).fold(f64::NAN, f64::min),
        "max_over_time" => window.iter().map(|r| r.max).fold(f64::NAN, f64::max),
        "last_over_time" => window.last()?.last,
        "increase" | "rate" => {
            let inc = increase(window, before, kind);
            if name == "rate" {
                inc / (width as f64 / 1000.0)
            } else {
                inc
            }
        }
        _ => return None,
    })
}

/// The increase over the window, from the last sample before it when there is one.
fn increase(window: &[Rollup], before: Option<&Rollup>, kind: SeriesKind) -> f64 {
    if kind == SeriesKind::Gauge {
        // A gauge's record keeps no increase; its change is last minus first.
        let first = before.map_or(window[0].first, |b| b.last);
        return window[window.len() - 1].last - first;
    }
    let within = total_increase(window);
    // From the last sample before the window to the first in it.
    before.map_or(within, |b| {
        within + counter_increase(b.last, window[0].first)
    })
}

fn is_range(e: &Expr) -> bool {
    expr_kind(e) == Kind::Range
}
