//! Prometheus' expanding notation for test series (`1+2x3`, `_x2`, `stale`), shared by
//! `promtool test rules` files and the promqltest scripts.

/// Every value of a series' `values` text; `None` is a missing sample (`_`).
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut values = Vec::new();
    for item in text.split_whitespace() {
        values.extend(parse_item(item)?);
    }
    Ok(values)
}

/// Bounds the repeat count so a typo cannot allocate the machine away.
const MAX_REPEAT: u64 = 1_000_000;

fn repeat_count(s: &str, item: &str) -> Result<usize, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("invalid repeat count in {item:?}"))?;
    if n > MAX_REPEAT {
        return Err(format!("repeat count too large in {item:?}"));
    }
    Ok(n as usize)
}

/// One item of the expanding notation.
pub fn parse_item(item: &str) -> Result<Vec<Option<f64>>, String> {
    if item == "_" {
        return Ok(vec![None]);
    }
    if let Some(n) = item.strip_prefix("_x") {
        return Ok(vec![None; repeat_count(n, item)?]);
    }
    if item.eq_ignore_ascii_case("stale") {
        return Ok(vec![Some(crate::query::stale_nan())]);
    }
    let (base, rest) = number_prefix(item)?;
    if rest.is_empty() {
        return Ok(vec![Some(base)]);
    }
    if let Some(n) = rest.strip_prefix('x') {
        return Ok(vec![Some(base); repeat_count(n, item)? + 1]);
    }
    let (delta, rest) = number_prefix(rest)?;
    let Some(n) = rest.strip_prefix('x') else {
        return Err(format!("invalid value {item:?}"));
    };
    let n = repeat_count(n, item)?;
    // Repeated addition, as Prometheus' grammar does, so rounding matches.
    let mut v = base;
    let mut out = Vec::with_capacity(n + 1);
    for _ in 0..=n {
        out.push(Some(v));
        v += delta;
    }
    Ok(out)
}

/// A signed number at the start of `s` (digits with an optional fraction and exponent,
/// or `Inf`/`NaN`) and the text after it.
fn number_prefix(s: &str) -> Result<(f64, &str), String> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let lower = s[i..].to_ascii_lowercase();
    for word in ["inf", "nan"] {
        if lower.starts_with(word) {
            let end = i + word.len();
            let v: f64 = s[..end]
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| format!("invalid number in {s:?}"))?;
            return Ok((v, &s[end..]));
        }
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i == start {
        return Err(format!("expected a number at {s:?}"));
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            i = k;
        }
    }
    let v: f64 = s[..i]
        .parse()
        .map_err(|_| format!("invalid number {:?}", &s[..i]))?;
    Ok((v, &s[i..]))
}
