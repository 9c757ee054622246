//! PromQL's functions, called by the evaluator once per evaluation step.
//!
//! The evaluator hands each call its arguments already evaluated at the step: scalars,
//! strings, instant vectors, and for a range-vector argument the points of each series in
//! the window `(start, end]` (staleness markers removed). A function returns a scalar or an
//! instant vector for that step, and adds Prometheus' warnings and infos to the context.

use promql_parser::parser::Expr;

use super::{Annotations, Metric, QueryError, Value, Vector};

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
    _args: Vec<Arg<'_>>,
    _ctx: &mut CallCtx<'_>,
) -> Result<Value, QueryError> {
    Err(QueryError::Execution(format!(
        "function {name} is not implemented"
    )))
}
