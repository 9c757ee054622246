//! The parser of Prometheus' `promqltest` scripts (`promql/promqltest/test.go`).
//!
//! A script is a list of commands separated by blank lines; lines are trimmed and a line
//! starting with `#` counts as blank (so a comment ends a block, as in Prometheus):
//!
//! - `load <interval>` (or `load_with_nhcb <interval>`) then series lines
//!   `metric{l="v"} <values>`: value i is at `i * interval` ms from time 0;
//! - `clear` forgets every series;
//! - `eval[_fail|_warn|_info|_ordered] instant at <time> <expr>` or
//!   `eval[_fail|_warn|_info] range from <t> to <t> step <d> <expr>`, then expectation
//!   lines: `expect fail|ordered|warn|no_warn|info|no_info [msg:|regex: ...]`,
//!   `expect string "..."`, `expect range vector from <t> to <t> step <d>`, a bare number
//!   (a scalar; it ends the block), or a series line as above.
//!
//! Values use the expanding notation: `1+2x3` is 1 3 5 7, `1-2x3` is 1 -1 -3 -5, `1x2` is
//! 1 1 1, `_` a missing value, `_x3` three missing, `stale` a staleness marker, `Inf` and
//! `NaN` as numbers. Times and durations are Prometheus durations (`0`, `1m`, `1h30m`).
//! Series whose line holds `{{` are native histograms, which we do not store: a load keeps
//! only their labels, an eval notes that it expects one.
//!
//! The parser never panics: every malformed line is an error naming its line.

use regex::Regex;
use std::sync::LazyLock;
use sysward_server::rules::unittest::series::parse_item;

/// Label pairs as written, the name as `__name__`.
pub(crate) type LabelPairs = Vec<(String, String)>;

/// One command of a script.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Samples to add.
    Load(Load),
    /// Forget every series.
    Clear,
    /// A query and what it must return.
    Eval(Box<Eval>),
}

/// A `load` block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Load {
    /// Milliseconds between consecutive values of a series.
    pub(crate) interval_ms: i64,
    /// `load_with_nhcb`: Prometheus also stores the classic histograms as native ones.
    pub(crate) with_nhcb: bool,
    /// Float series.
    pub(crate) series: Vec<SeriesLine>,
    /// Label sets of the native-histogram series skipped.
    pub(crate) histogram_series: Vec<LabelPairs>,
}

/// A series with its values, in a load or as an expectation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesLine {
    /// Label pairs, the name as `__name__`, in the order written.
    pub(crate) labels: LabelPairs,
    /// Values; `None` is a missing one.
    pub(crate) values: Vec<Option<f64>>,
}

/// How an expectation matches a message.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Anything (a bare `expect fail|warn|info`).
    Any,
    /// Equal to this text.
    Message(String),
    /// Matched by this pattern.
    Regex(Regex),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::Message(a), Matcher::Message(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => a.as_str() == b.as_str(),
            (Matcher::Any, Matcher::Any) => true,
            _ => false,
        }
    }
}

/// When an eval is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EvalKind {
    /// One instant, ms.
    Instant { at: i64 },
    /// A range query.
    Range { start: i64, end: i64, step: i64 },
}

/// What an eval expects as its value.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Expected {
    /// No value line: an empty vector or matrix.
    #[default]
    Nothing,
    /// A scalar.
    Scalar(f64),
    /// Series with their positions (1-based, for `ordered`), as Prometheus counts them.
    Series(Vec<(usize, SeriesLine)>),
}

/// An `eval` block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Eval {
    /// The line of the `eval`, 1-based.
    pub(crate) line: usize,
    /// The expression.
    pub(crate) expr: String,
    /// Instant or range.
    pub(crate) kind: EvalKind,
    /// `eval_fail` or `expect fail`.
    pub(crate) fail: bool,
    /// What the error must say (`expect fail [msg:|regex:]`, `expected_fail_message|regexp`).
    pub(crate) fail_matchers: Vec<Matcher>,
    /// `eval_warn`: at least one warning.
    pub(crate) warn: bool,
    /// `eval_info`: at least one info.
    pub(crate) info: bool,
    /// `eval_ordered` or `expect ordered`.
    pub(crate) ordered: bool,
    /// `expect warn` lines (a bare one matches anything).
    pub(crate) warns: Vec<Matcher>,
    /// `expect no_warn`.
    pub(crate) no_warn: bool,
    /// `expect info` lines.
    pub(crate) infos: Vec<Matcher>,
    /// `expect no_info`.
    pub(crate) no_info: bool,
    /// The expected value.
    pub(crate) expected: Expected,
    /// `expect string`.
    pub(crate) string: Option<String>,
    /// `expect range vector from .. to .. step ..` of an instant eval: (start, end, step).
    pub(crate) range_vector: Option<(i64, i64, i64)>,
    /// An expectation line holds a native histogram.
    pub(crate) expects_histogram: bool,
}

impl Eval {
    fn new(line: usize, expr: String, kind: EvalKind) -> Self {
        Self {
            line,
            expr,
            kind,
            fail: false,
            fail_matchers: Vec::new(),
            warn: false,
            info: false,
            ordered: false,
            warns: Vec::new(),
            no_warn: false,
            infos: Vec::new(),
            no_info: false,
            expected: Expected::Nothing,
            string: None,
            range_vector: None,
            expects_histogram: false,
        }
    }

    /// Whether a value or a string is checked rather than an instant vector or scalar, so
    /// the instant query is not repeated as a range query.
    pub(crate) fn excluded_from_range_mode(&self) -> bool {
        self.range_vector.is_some() || self.string.is_some()
    }
}

/// A script that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// 1-based.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line: line + 1,
        message: message.into(),
    })
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

static LOAD: LazyLock<Regex> = LazyLock::new(|| re(r"^load(?:_(with_nhcb))?\s+(.+?)$"));
static EVAL_INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
});
static EVAL_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
});
static EXPECT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
});
static EXPECT_RANGE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$"));

/// Parses a whole script.
pub(crate) fn parse_script(text: &str) -> Result<Vec<Command>, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') { "" } else { l }
        })
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let word = line
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_lowercase();
        let (last, command) = if word == "clear" {
            (i, Command::Clear)
        } else if word.starts_with("load") {
            let (last, load) = parse_load(&lines, i)?;
            (last, Command::Load(load))
        } else if word.starts_with("eval") {
            let (last, eval) = parse_eval(&lines, i)?;
            (last, Command::Eval(Box::new(eval)))
        } else {
            return err(i, format!("invalid command {line:?}"));
        };
        commands.push(command);
        i = last + 1;
    }
    Ok(commands)
}

/// Parses a load block starting at `lines[i]`; returns its last line and the load.
fn parse_load(lines: &[&str], i: usize) -> Result<(usize, Load), ParseError> {
    let Some(caps) = LOAD.captures(lines[i]) else {
        return err(
            i,
            "invalid load command. (load[_with_nhcb] <step:duration>)",
        );
    };
    let interval = &caps[2];
    let interval_ms = parse_duration(interval)
        .map_err(|e| err_at(i, format!("invalid step definition {interval:?}: {e}")))?;
    let mut load = Load {
        interval_ms,
        with_nhcb: caps.get(1).is_some(),
        series: Vec::new(),
        histogram_series: Vec::new(),
    };
    let mut last = i;
    for (j, line) in lines.iter().enumerate().skip(i + 1) {
        if line.is_empty() {
            break;
        }
        last = j;
        if line.contains("{{") {
            let (labels, _) = split_metric(line).map_err(|e| err_at(j, e))?;
            load.histogram_series.push(labels);
            continue;
        }
        load.series
            .push(parse_series_line(line).map_err(|e| err_at(j, e))?);
    }
    Ok((last, load))
}

fn err_at(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line: line + 1,
        message: message.into(),
    }
}

/// The eval line's modifier, expression and kind.
fn parse_eval_head(line: &str, i: usize) -> Result<(String, String, EvalKind), ParseError> {
    let time = |s: &str, what: &str| {
        parse_duration(s).map_err(|e| err_at(i, format!("invalid {what} {s:?}: {e}")))
    };
    if let Some(c) = EVAL_INSTANT.captures(line) {
        let at = time(c.get(2).map_or("", |m| m.as_str()), "timestamp definition")?;
        let modifier = c.get(1).map_or("", |m| m.as_str()).to_string();
        return Ok((modifier, c[3].to_string(), EvalKind::Instant { at }));
    }
    if let Some(c) = EVAL_RANGE.captures(line) {
        let start = time(&c[2], "start timestamp definition")?;
        let end = time(&c[3], "end timestamp definition")?;
        if end < start {
            return err(i, "invalid test definition, end timestamp is before start");
        }
        let step = time(&c[4], "step definition")?;
        let modifier = c.get(1).map_or("", |m| m.as_str()).to_string();
        return Ok((
            modifier,
            c[5].to_string(),
            EvalKind::Range { start, end, step },
        ));
    }
    err(
        i,
        "invalid evaluation command: 'eval[_fail|_warn|_info|_ordered] instant [at <time>] <query>' \
         or 'eval[_fail|_warn|_info] range from <from> to <to> step <step> <query>'",
    )
}

/// Parses an eval block starting at `lines[i]`; returns its last line and the eval.
fn parse_eval(lines: &[&str], i: usize) -> Result<(usize, Eval), ParseError> {
    let (modifier, expr, kind) = parse_eval_head(lines[i], i)?;
    let mut eval = Eval::new(i + 1, expr, kind);
    match modifier.as_str() {
        "ordered" => eval.ordered = true,
        "fail" => eval.fail = true,
        "warn" => eval.warn = true,
        "info" => eval.info = true,
        _ => {}
    }
    // Positions of expected series count every line but `expect ...` ones, as Prometheus'.
    let mut pos = 0usize;
    let mut last = i;
    for (j, &line) in lines.iter().enumerate().skip(i + 1) {
        if line.is_empty() {
            break;
        }
        last = j;
        pos += 1;
        match parse_eval_line(&mut eval, line, pos, j)? {
            LineEffect::Continue => {}
            LineEffect::NotCounted => pos -= 1,
            LineEffect::EndsBlock => break,
        }
    }
    Ok((last, eval))
}

enum LineEffect {
    Continue,
    NotCounted,
    EndsBlock,
}

fn parse_eval_line(
    eval: &mut Eval,
    line: &str,
    pos: usize,
    j: usize,
) -> Result<LineEffect, ParseError> {
    if eval.fail {
        if let Some(rest) = line.strip_prefix("expected_fail_message") {
            eval.fail_matchers = vec![Matcher::Message(rest.trim().to_string())];
            return Ok(LineEffect::EndsBlock);
        }
        if let Some(rest) = line.strip_prefix("expected_fail_regexp") {
            let pattern = rest.trim();
            let regex = Regex::new(pattern)
                .map_err(|e| err_at(j, format!("invalid expected_fail_regexp {pattern:?}: {e}")))?;
            eval.fail_matchers = vec![Matcher::Regex(regex)];
            return Ok(LineEffect::EndsBlock);
        }
    }
    if line.starts_with("expect range vector") {
        let c = EXPECT_RANGE
            .captures(line)
            .ok_or_else(|| err_at(j, format!("invalid range vector definition {line:?}")))?;
        let d = |s: &str| parse_duration(s).map_err(|e| err_at(j, format!("{s:?}: {e}")));
        let (start, end, step) = (d(&c[1])?, d(&c[2])?, d(&c[3])?);
        if end < start {
            return err(j, "end of the range vector is before its start");
        }
        eval.range_vector = Some((start, end, step));
        return Ok(LineEffect::Continue);
    }
    if line.starts_with("expect string") {
        let quoted = line
            .strip_prefix("expect string ")
            .ok_or_else(|| err_at(j, "expect string needs a quoted string literal"))?;
        let s = unquote(quoted).map_err(|e| err_at(j, format!("expect string: {e}")))?;
        eval.string = Some(s);
        return Ok(LineEffect::Continue);
    }
    if line.split(' ').next() == Some("expect") {
        parse_expect(eval, line).map_err(|e| err_at(j, e))?;
        return Ok(LineEffect::NotCounted);
    }
    if let Some(v) = parse_number(line) {
        eval.expected = Expected::Scalar(v);
        return Ok(LineEffect::EndsBlock);
    }
    if line.contains("{{") {
        eval.expects_histogram = true;
        return Ok(LineEffect::Continue);
    }
    let series = parse_series_line(line).map_err(|e| err_at(j, e))?;
    if series.values.len() > 1
        && matches!(eval.kind, EvalKind::Instant { .. })
        && eval.range_vector.is_none()
    {
        return err(
            j,
            "expecting multiple values in instant evaluation not allowed without 'expect range vector'",
        );
    }
    if !matches!(eval.expected, Expected::Series(_)) {
        eval.expected = Expected::Series(Vec::new());
    }
    if let Expected::Series(list) = &mut eval.expected {
        // A label set written twice keeps the later line, as Prometheus' map does.
        list.retain(|(_, s)| !same_labels(&s.labels, &series.labels));
        list.push((pos, series));
    }
    Ok(LineEffect::Continue)
}

fn same_labels(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let norm = |l: &[(String, String)]| {
        let mut v: Vec<(String, String)> =
            l.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

/// Parses an `expect <type> [msg:|regex: ...]` line into `eval`.
fn parse_expect(eval: &mut Eval, line: &str) -> Result<(), String> {
    let c = EXPECT
        .captures(line.trim())
        .ok_or("invalid expect statement, must match `expect <type> <match_type>: <string>`")?;
    let matcher = match c.get(2).map(|m| m.as_str()) {
        Some("msg") => Some(Matcher::Message(c[3].trim().to_string())),
        Some(_) => {
            let pattern = c[3].trim();
            let regex =
                Regex::new(pattern).map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
            Some(Matcher::Regex(regex))
        }
        None => None,
    };
    let matcher = matcher.unwrap_or(Matcher::Any);
    match &c[1] {
        "ordered" => eval.ordered = true,
        "fail" => {
            eval.fail = true;
            eval.fail_matchers.push(matcher);
            if eval.fail_matchers.len() > 1 {
                return Err(
                    "invalid expect lines, multiple expect fail lines are not allowed".into(),
                );
            }
        }
        "warn" => eval.warns.push(matcher),
        "info" => eval.infos.push(matcher),
        "no_warn" => eval.no_warn = true,
        _ => eval.no_info = true,
    }
    if eval.no_warn && !eval.warns.is_empty() {
        return Err("invalid expect lines, warn and no_warn cannot be used together".into());
    }
    if eval.no_info && !eval.infos.is_empty() {
        return Err("invalid expect lines, info and no_info cannot be used together".into());
    }
    Ok(())
}

/// A Prometheus duration (`model.ParseDuration`): `0`, or units `y w d h m s ms` each at
/// most once in that order, as milliseconds. A leading `-` negates it.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(rest) = s.strip_prefix('-') {
        return parse_duration(rest).map(|v| -v);
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bytes = s.as_bytes();
    let (mut at, mut next_unit, mut total) = (0usize, 0usize, 0i64);
    while at < bytes.len() {
        let digits_end = at
            + bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        let unit_end = digits_end
            + bytes[digits_end..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
        if digits_end == at || unit_end == digits_end {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let unit = &s[digits_end..unit_end];
        let Some(k) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(format!("not a valid duration string: {s:?}"));
        };
        let n: i64 = s[at..digits_end]
            .parse()
            .map_err(|_| format!("duration out of range: {s:?}"))?;
        let add = n
            .checked_mul(UNITS[next_unit + k].1)
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
        total = total
            .checked_add(add)
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
        next_unit += k + 1;
        at = unit_end;
    }
    Ok(total)
}

/// A number as Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat` read it: decimal,
/// `0x`/`0o`/`0b` integers, floats with exponents, `Inf`, `NaN`.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(p, r)| lower.strip_prefix(p).map(|rest| (rest.to_string(), *r)));
    if let Some((rest, radix)) = radix {
        let rest = rest.replace('_', "");
        let v = i64::from_str_radix(&rest, radix).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    let plain = lower.trim_start_matches(['+', '-']) == lower;
    let word = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let numeric = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
        && lower
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if !plain || !(word || numeric) {
        return None;
    }
    let v: f64 = lower.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Splits `metric{labels}` from the rest of a series line; returns the label pairs and
/// the text after them.
pub(crate) fn split_metric(line: &str) -> Result<(LabelPairs, &str), String> {
    let name_len = line
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == ':'))
        .map_or(line.len(), |(i, _)| i);
    let name = &line[..name_len];
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = Vec::new();
    if !name.is_empty() {
        labels.push(("__name__".to_string(), name.to_string()));
    }
    let rest = &line[name_len..];
    let rest = match rest.strip_prefix('{') {
        Some(inner) => parse_label_block(inner, &mut labels)?,
        None if name.is_empty() => return Err(format!("no metric in {line:?}")),
        None => rest,
    };
    Ok((labels, rest))
}

/// Parses `l="v", ...}`; returns the text after the `}`.
fn parse_label_block<'a>(
    mut s: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let (key, rest) = label_name(s)?;
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            // A lone quoted string is the metric name (Prometheus 3's UTF-8 names).
            labels.push(("__name__".to_string(), key));
            s = after_comma(rest)?;
            continue;
        };
        let rest = rest.trim_start();
        let (value, rest) = quoted_prefix(rest)?;
        labels.push((key, value));
        s = after_comma(rest)?;
    }
}

fn after_comma(s: &str) -> Result<&str, String> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix(',') {
        Ok(rest)
    } else if s.starts_with('}') {
        Ok(s)
    } else {
        Err(format!("expected ',' or '}}' at {s:?}"))
    }
}

fn label_name(s: &str) -> Result<(String, &str), String> {
    if s.starts_with(['"', '\'', '`']) {
        return quoted_prefix(s);
    }
    let len = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(s.len(), |(i, _)| i);
    if len == 0 || s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("expected a label name at {s:?}"));
    }
    Ok((s[..len].to_string(), &s[len..]))
}

/// A quoted string at the start of `s`, unquoted, and the text after it.
fn quoted_prefix(s: &str) -> Result<(String, &str), String> {
    let Some(quote) = s.chars().next().filter(|c| matches!(c, '"' | '\'' | '`')) else {
        return Err(format!("expected a quoted string at {s:?}"));
    };
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '`' {
            escaped = true;
        } else if c == quote {
            return Ok((unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Go's `strconv.Unquote` for `"..."`, `'...'` and `` `...` `` strings.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let quote = s.chars().next().ok_or("empty string literal")?;
    if !matches!(quote, '"' | '\'' | '`') || s.len() < 2 || !s.ends_with(quote) {
        return Err(format!("not a quoted string: {s:?}"));
    }
    let inner = &s[1..s.len() - 1];
    if quote == '`' {
        return if inner.contains('`') {
            Err(format!("not a quoted string: {s:?}"))
        } else {
            Ok(inner.to_string())
        };
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(format!("unescaped quote in {s:?}"));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("string ends in a backslash")?;
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' | '"' | '\'' | '`' => Some(e),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let (len, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("unknown escape \\{e}")),
        };
        let mut digits: String = if radix == 8 {
            e.to_string()
        } else {
            String::new()
        };
        for _ in 0..len {
            digits.push(chars.next().ok_or("short escape")?);
        }
        let code = u32::from_str_radix(&digits, radix).map_err(|_| "bad escape".to_string())?;
        // \x and octal escapes are bytes in Go; below 0x80 they are the same character.
        let c = char::from_u32(code).ok_or("escape is not a character")?;
        out.push(c);
    }
    Ok(out)
}

/// Parses a series line: `metric{labels} values...`.
pub(crate) fn parse_series_line(line: &str) -> Result<SeriesLine, String> {
    let (labels, rest) = split_metric(line)?;
    let mut values = Vec::new();
    for item in rest.split_whitespace() {
        values.extend(parse_item(item)?);
    }
    Ok(SeriesLine { labels, values })
}
