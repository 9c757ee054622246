//! The PromQL engine: expressions parsed by `promql-parser`, evaluated here over one
//! snapshot of the store ([`QuerySource`]).
//!
//! Prometheus 3.x semantics: range selectors are left-open (`(t - range, t]`), an instant
//! selector looks back [`QueryOptions::lookback_ms`] (5 m) for the newest sample and stops
//! at a staleness marker, `@` and `offset` (negative too) move the evaluation time of one
//! selector, subqueries evaluate their inner expression on a grid aligned to multiples of
//! their step. A range query evaluates every step as an instant query would.
//!
//! Past the raw tier's retention (or when a tier is asked for) the engine reads rollups;
//! see `rollup.rs` for which questions a rollup answers and what it notes in the
//! answer's infos when it has to widen a range.

mod aggregate;
mod binary;
mod error;
mod eval;
mod functions;
mod rollup;
mod source;
mod value;

use std::time::Duration;

pub use error::{Annotations, QueryError};
pub use source::{MemorySource, QuerySource, SourceRequest, SourceSeries, StoreSource};
pub(crate) use value::go_special;
pub use value::{
    Labels, Matrix, Metric, STALE_NAN_BITS, Sample, Series, Value, Vector, format_time,
    format_value, is_stale, stale_nan,
};

pub(crate) use crate::selector::matchers_of as selector_matchers;
use crate::store::Tier;

/// What one query may cost; each refusal names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Samples held in memory at once (points read plus points computed).
    pub max_samples: usize,
    /// Steps of a range query, as Prometheus' 11,000 points per series.
    pub max_points_per_series: usize,
    /// Series one selector may match.
    pub max_series_per_selector: usize,
    /// Wall time of one query.
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            max_series_per_selector: 100_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// How a query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryOptions {
    /// How far an instant selector looks back for a sample.
    pub lookback_ms: i64,
    /// The limits.
    pub limits: QueryLimits,
    /// A tier asked for; `None` lets the engine choose (raw while the range is within raw
    /// retention).
    pub tier: Option<Tier>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            lookback_ms: 300_000,
            limits: QueryLimits::default(),
            tier: None,
        }
    }
}

/// What a query read and computed, for `stats=all` and the server's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryStats {
    /// Series read from the store.
    pub series_read: usize,
    /// Points (raw samples or rollup records) read from the store.
    pub samples_read: usize,
    /// The most samples held at once.
    pub peak_samples: usize,
    /// The tier read, if any selector was read.
    pub tier: Option<Tier>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    /// The value: for a range query always a matrix.
    pub value: Value,
    /// Warnings and infos, as Prometheus returns them.
    pub annotations: Annotations,
    /// What it cost.
    pub stats: QueryStats,
}

/// Evaluates `expr` at `time_ms`.
pub fn instant_query(
    source: &dyn QuerySource,
    expr: &str,
    time_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, QueryError> {
    let parsed = parse(expr)?;
    instant_query_expr(source, &parsed, time_ms, options)
}

/// An instant query of an expression parsed before (rules parse theirs once, at load).
pub fn instant_query_expr(
    source: &dyn QuerySource,
    expr: &promql_parser::parser::Expr,
    time_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, QueryError> {
    eval::run(source, expr, time_ms, time_ms, 0, options, false)
}

/// Evaluates `expr` at every step from `start_ms` to `end_ms`.
pub fn range_query(
    source: &dyn QuerySource,
    expr: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, QueryError> {
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    let steps = (end_ms - start_ms) / step_ms + 1;
    if steps as u64 > options.limits.max_points_per_series as u64 {
        return Err(QueryError::BadData(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            options.limits.max_points_per_series
        )));
    }
    let parsed = parse(expr)?;
    eval::run(source, &parsed, start_ms, end_ms, step_ms, options, true)
}

/// Parses an expression, with the parser's message as a `bad_data` error.
pub fn parse(expr: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    promql_parser::parser::parse(expr).map_err(QueryError::BadData)
}

#[cfg(test)]
mod tests;
