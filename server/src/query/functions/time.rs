//! Time functions: `time()`, `timestamp(v)`, and the calendar functions (`year`, `month`,
//! `day_of_month`, `day_of_week`, `day_of_year`, `days_in_month`, `hour`, `minute`).
//!
//! A calendar function reads each sample's value as unix seconds (truncated, UTC); without
//! an argument it reads the step's time, as `vector(time())`. A value that is not a time
//! `time` can represent (NaN, ±Inf, beyond year ±9999) gives NaN, where Prometheus would
//! give whatever Go's conversion makes of it.

use time::OffsetDateTime;

use super::{Args, CallCtx, Labels, Value, drop_name, sample};
use crate::query::QueryError;

/// Calls `args.name` if it is a time function.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    let result = match args.name {
        "time" => Ok(Value::Scalar(ctx.t as f64 / 1000.0)),
        "timestamp" => timestamp(args, ctx),
        name => calendar(name, args, ctx)?,
    };
    Some(result)
}

/// Each sample's own time in seconds, without `__name__`.
fn timestamp(args: &mut Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    let v = args.take_vector(0)?;
    Ok(Value::Vector(
        v.into_iter()
            .map(|s| sample(drop_name(&s.metric), s.ts as f64 / 1000.0, ctx))
            .collect(),
    ))
}

fn calendar(
    name: &str,
    args: &mut Args<'_, '_>,
    ctx: &CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    let f: fn(OffsetDateTime) -> f64 = match name {
        "year" => |t| f64::from(t.year()),
        "month" => |t| f64::from(u8::from(t.month())),
        "day_of_month" => |t| f64::from(t.day()),
        "day_of_year" => |t| f64::from(t.ordinal()),
        "day_of_week" => |t| f64::from(t.weekday().number_days_from_sunday()),
        "days_in_month" => |t| f64::from(t.month().length(t.year())),
        "hour" => |t| f64::from(t.hour()),
        "minute" => |t| f64::from(t.minute()),
        _ => return None,
    };
    let apply = |secs: i64| match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => f(t),
        Err(_) => f64::NAN,
    };
    if args.len() == 0 {
        let metric = std::sync::Arc::new(Labels::default());
        return Some(Ok(Value::Vector(vec![sample(
            metric,
            apply(ctx.t / 1000),
            ctx,
        )])));
    }
    let v = match args.take_vector(0) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    let out = v
        .into_iter()
        .map(|s| {
            let value = if s.value.is_finite() {
                apply(s.value as i64)
            } else {
                f64::NAN
            };
            sample(drop_name(&s.metric), value, ctx)
        })
        .collect();
    Some(Ok(Value::Vector(out)))
}

#[cfg(test)]
mod tests {
    use super::super::Arg;
    use super::super::test_support::*;
    use crate::query::Value;

    fn at(name: &str, secs: f64) -> f64 {
        let v = vec![s(&[("__name__", "m")], secs)];
        only(run(name, vec![Arg::Vector(v)], 0, false).0)
    }

    #[test]
    fn calendar_functions_read_values_as_utc_seconds() {
        assert_eq!(at("year", 1136239445.0), 2006.0);
        assert_eq!(at("month", 1136239445.0), 1.0);
        assert_eq!(at("day_of_month", 1136239445.0), 2.0);
        assert_eq!(at("day_of_week", 1136239445.0), 1.0);
        assert_eq!(at("hour", 1136239445.0), 22.0);
        assert_eq!(at("minute", 1136239445.0), 4.0);
        assert_eq!(at("year", 1230767999.0), 2008.0);
        assert_eq!(at("day_of_year", 1483191420.0), 366.0);
        assert_eq!(at("days_in_month", 1454284800.0), 29.0);
        assert_eq!(at("days_in_month", 1485907200.0), 28.0);
        assert!(at("year", f64::NAN).is_nan());
        assert!(at("year", 1e18).is_nan());
    }

    #[test]
    fn without_argument_they_read_the_step_time() {
        // Thursday 1 January 1970.
        assert_eq!(only(run("day_of_week", vec![], 0, false).0), 4.0);
        assert_eq!(only(run("year", vec![], 0, false).0), 1970.0);
        assert_eq!(
            run("time", vec![], 3_000_000, false).0,
            Ok(Value::Scalar(3000.0))
        );
    }

    #[test]
    fn timestamp_returns_the_samples_own_time() {
        let mut sm = s(&[("__name__", "m")], 1.0);
        sm.ts = 10_000;
        let v = vector(run("timestamp", vec![Arg::Vector(vec![sm])], 15_000, false).0);
        assert_eq!(v[0].value, 10.0);
        assert_eq!(v[0].ts, 15_000);
        assert_eq!(v[0].metric.name(), "");
    }
}
