//! The evaluator.

use promql_parser::parser::Expr;

use super::{QueryError, QueryOptions, QueryOutput, QuerySource};

/// Evaluates `expr` from `start` to `end` every `step` ms (one step when `step` is 0).
pub(super) fn run(
    _source: &dyn QuerySource,
    _expr: &Expr,
    _start: i64,
    _end: i64,
    _step: i64,
    _options: &QueryOptions,
    _range: bool,
) -> Result<QueryOutput, QueryError> {
    Err(QueryError::Execution("not implemented".into()))
}
