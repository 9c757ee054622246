//! Arithmetic on each sample of an instant vector (`abs`, `exp`, trigonometry, `round`,
//! `clamp`...), and the scalar functions `pi`, `min_of` and `max_of`.
//!
//! All of them drop `__name__`. NaN follows Go's `math` package: `clamp` with a NaN bound
//! gives NaN, `sgn(NaN)` is NaN.

use super::{Args, CallCtx, Value, Vector, drop_name, go_max, go_min, sample};
use crate::query::QueryError;

/// Calls `args.name` if it is a math function.
pub(super) fn call(
    args: &mut Args<'_, '_>,
    ctx: &mut CallCtx<'_>,
) -> Option<Result<Value, QueryError>> {
    if let Some(f) = unary(args.name) {
        return Some(args.take_vector(0).map(|v| Value::Vector(map(v, ctx, f))));
    }
    let result = match args.name {
        "round" => round(args, ctx),
        "clamp" => clamp_args(args, ctx, Some(1), Some(2)),
        "clamp_min" => clamp_args(args, ctx, Some(1), None),
        "clamp_max" => clamp_args(args, ctx, None, Some(1)),
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "min_of" => scalar2(args, go_min),
        "max_of" => scalar2(args, go_max),
        _ => return None,
    };
    Some(result)
}

fn scalar2(args: &Args<'_, '_>, f: fn(f64, f64) -> f64) -> Result<Value, QueryError> {
    Ok(Value::Scalar(f(args.scalar(0)?, args.scalar(1)?)))
}

/// The function of one float each name applies.
fn unary(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => sgn,
        _ => return None,
    };
    Some(f)
}

fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Applies `f` to every sample, dropping `__name__`.
fn map(v: Vector, ctx: &CallCtx<'_>, f: impl Fn(f64) -> f64) -> Vector {
    v.into_iter()
        .map(|s| sample(drop_name(&s.metric), f(s.value), ctx))
        .collect()
}

/// `round(v, to_nearest=1)`: to the nearest multiple, ties up.
fn round(args: &mut Args<'_, '_>, ctx: &CallCtx<'_>) -> Result<Value, QueryError> {
    let to_nearest = if args.len() >= 2 {
        args.scalar(1)?
    } else {
        1.0
    };
    // Dividing by the inverse is what Prometheus does (fewer accuracy surprises).
    let inverse = 1.0 / to_nearest;
    let v = args.take_vector(0)?;
    Ok(Value::Vector(map(v, ctx, |x| {
        (x * inverse + 0.5).floor() / inverse
    })))
}

fn clamp_args(
    args: &mut Args<'_, '_>,
    ctx: &CallCtx<'_>,
    min_at: Option<usize>,
    max_at: Option<usize>,
) -> Result<Value, QueryError> {
    let min = min_at.map_or(Ok(f64::NEG_INFINITY), |i| args.scalar(i))?;
    let max = max_at.map_or(Ok(f64::INFINITY), |i| args.scalar(i))?;
    let v = args.take_vector(0)?;
    if max < min {
        return Ok(Value::Vector(Vector::new()));
    }
    Ok(Value::Vector(map(v, ctx, |x| go_max(min, go_min(max, x)))))
}

#[cfg(test)]
mod tests {
    use super::super::Arg;
    use super::super::test_support::*;

    fn apply(name: &str, values: &[f64], extra: &[f64]) -> Vec<f64> {
        let v = values
            .iter()
            .enumerate()
            .map(|(i, x)| s(&[("__name__", "m"), ("i", &i.to_string())], *x))
            .collect();
        let mut args = vec![Arg::Vector(v)];
        args.extend(extra.iter().map(|x| Arg::Scalar(*x)));
        let (r, _) = run(name, args, 7, false);
        let out = vector(r);
        assert!(out.iter().all(|s| s.metric.name().is_empty() && s.ts == 7));
        out.iter().map(|s| s.value).collect()
    }

    #[test]
    fn rounding_functions_handle_signs_and_specials() {
        let input = [2.5, -2.5, -0.0, f64::INFINITY, f64::NAN];
        assert_eq!(
            apply("round", &input, &[])[..4],
            [3.0, -2.0, 0.0, f64::INFINITY]
        );
        assert_eq!(apply("ceil", &input, &[])[..2], [3.0, -2.0]);
        assert_eq!(apply("floor", &input, &[])[..2], [2.0, -3.0]);
        assert_eq!(apply("round", &[1.26, 1.24], &[0.1]), [1.3, 1.2]);
        assert!(apply("abs", &input, &[])[4].is_nan());
    }

    #[test]
    fn clamp_follows_go_nan_rules_and_empty_for_inverted_bounds() {
        assert_eq!(
            apply("clamp", &[-50.0, 0.0, 100.0], &[-25.0, 75.0]),
            [-25.0, 0.0, 75.0]
        );
        assert_eq!(apply("clamp_max", &[-50.0, 100.0], &[75.0]), [-50.0, 75.0]);
        assert_eq!(
            apply("clamp_min", &[-50.0, 100.0], &[-25.0]),
            [-25.0, 100.0]
        );
        assert!(apply("clamp", &[1.0], &[0.0, f64::NAN])[0].is_nan());
        assert!(apply("clamp", &[1.0], &[f64::NAN, 0.0])[0].is_nan());
        assert!(apply("clamp", &[1.0], &[5.0, -5.0]).is_empty());
    }

    #[test]
    fn sgn_and_trigonometry_match_go() {
        let out = apply(
            "sgn",
            &[f64::NEG_INFINITY, f64::INFINITY, -50.0, 0.0, 100.0],
            &[],
        );
        assert_eq!(out, [-1.0, 1.0, -1.0, 0.0, 1.0]);
        assert!(close(apply("sin", &[10.0], &[])[0], -0.5440211108893699));
        assert!(close(apply("acosh", &[10.0], &[])[0], 2.993222846126381));
        assert!(close(apply("atanh", &[-0.1], &[])[0], -0.10033534773107522));
        assert!(close(apply("deg", &[10.0], &[])[0], 572.9577951308232));
        assert!(close(apply("rad", &[10.0], &[])[0], 0.17453292519943295));
        assert_eq!(apply("ln", &[0.0], &[])[0], f64::NEG_INFINITY);
        assert!(apply("log2", &[-10.0], &[])[0].is_nan());
    }

    #[test]
    fn scalar_functions() {
        use crate::query::Value;
        assert_eq!(
            run("pi", vec![], 0, false).0,
            Ok(Value::Scalar(std::f64::consts::PI))
        );
        assert_eq!(
            run("min_of", vec![Arg::Scalar(3.0), Arg::Scalar(5.0)], 0, false).0,
            Ok(Value::Scalar(3.0))
        );
        let (r, _) = run(
            "max_of",
            vec![Arg::Scalar(3.0), Arg::Scalar(f64::NAN)],
            0,
            false,
        );
        assert!(matches!(r, Ok(Value::Scalar(v)) if v.is_nan()));
    }
}
