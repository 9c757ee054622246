//! A parser of OpenMetrics text with timestamps, the input of `promtool tsdb
//! create-blocks-from openmetrics`: pure functions over text, no I/O.
//!
//! # Format
//!
//! One record per line (`\n`, an optional `\r` before it is tolerated):
//!
//! - `# HELP name text`, `# UNIT name unit`: accepted, not kept.
//! - `# TYPE name type`, type one of `counter`, `gauge`, `histogram`, `gaugehistogram`,
//!   `summary`, `stateset`, `info`, `unknown`: decides the kind of the samples of the
//!   family `name` that follow ([`Document::kind_of`]).
//! - `name{label="value",...} value timestamp [# exemplar]`: a sample. The name matches
//!   `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`, each at most once and
//!   never `__name__`. Label values are quoted; `\\`, `\"` and `\n` are their only escapes.
//!   A label with an empty value is dropped (it is the same as no label, as in Prometheus).
//!   The value is a float (`1`, `-2.5e-3`, `NaN`, `+Inf`, `-Inf`). The timestamp is in
//!   seconds, fractional allowed, and is required: backfill has no "now" to give a sample.
//!   Sub-millisecond digits are truncated toward zero, as Prometheus does. An exemplar
//!   after ` # ` is ignored.
//! - `# EOF`: the last line; nothing may follow it, and a document without it is incomplete.
//!
//! Fields are separated by one or more spaces or tabs. Empty lines and other comments are
//! errors, as in OpenMetrics.
//!
//! # Invariants
//!
//! Parsing never panics, whatever the input (property-tested), and every error names what
//! is wrong; [`Document`] adds the line number.

use std::{collections::HashMap, fmt};

use sysward_proto::SeriesKind;

/// Why a line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// A metric family type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `gaugehistogram`
    GaugeHistogram,
    /// `summary`
    Summary,
    /// `stateset`
    StateSet,
    /// `info`
    Info,
    /// `unknown`
    Unknown,
}

impl FamilyType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "stateset" => Self::StateSet,
            "info" => Self::Info,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in file order, empty values dropped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Unix ms.
    pub ts_ms: i64,
}

/// One line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A sample.
    Sample(Sample),
    /// `# TYPE family type`.
    Type(String, FamilyType),
    /// `# HELP` or `# UNIT`.
    Meta,
    /// `# EOF`.
    Eof,
}

/// Parses one line (without its `\n`). The error is the message alone; [`Document`]
/// adds the line number.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err("empty line (OpenMetrics has none)".into());
    }
    if let Some(rest) = line.strip_prefix('#') {
        return parse_comment(rest);
    }
    parse_sample(line).map(Line::Sample)
}

fn parse_comment(rest: &str) -> Result<Line, String> {
    if rest == " EOF" {
        return Ok(Line::Eof);
    }
    let mut words = rest.trim_start_matches([' ', '\t']).splitn(3, [' ', '\t']);
    let keyword = words.next().unwrap_or("");
    let family = words.next().unwrap_or("");
    let text = words.next().unwrap_or("").trim_matches([' ', '\t']);
    match keyword {
        "HELP" | "UNIT" | "TYPE" if !is_metric_name(family) => {
            Err(format!("# {keyword} needs a metric name, found {family:?}"))
        }
        "HELP" | "UNIT" => Ok(Line::Meta),
        "TYPE" => FamilyType::parse(text)
            .map(|t| Line::Type(family.to_string(), t))
            .ok_or_else(|| format!("unknown metric type {text:?} for {family}")),
        "EOF" => Err("# EOF must be alone on its line".into()),
        _ => Err(format!(
            "a comment must be # HELP, # TYPE, # UNIT or # EOF, found #{}",
            truncate(rest)
        )),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!(
            "expected a metric name at the start, found {}",
            truncate(line)
        ));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after)?;
        labels = parsed;
        rest = after;
    }
    let fields = split_fields(rest)?;
    let (value, ts) = match fields.as_slice() {
        [] => return Err(format!("{name}: no value")),
        [_] => {
            return Err(format!(
                "{name}: no timestamp (backfill needs one per sample)"
            ));
        }
        [v, t] => (*v, *t),
        [_, _, extra, ..] => {
            return Err(format!(
                "{name}: unexpected {} after the timestamp",
                truncate(extra)
            ));
        }
    };
    let value = parse_float(value)
        .ok_or_else(|| format!("{name}: value {} is not a number", truncate(value)))?;
    let ts_ms = parse_timestamp(ts).ok_or_else(|| {
        format!(
            "{name}: timestamp {} is not seconds since 1970",
            truncate(ts)
        )
    })?;
    labels.retain(|(_, v): &(String, String)| !v.is_empty());
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        ts_ms,
    })
}

/// The value and timestamp fields, and nothing but an exemplar after them.
fn split_fields(rest: &str) -> Result<Vec<&str>, String> {
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(format!(
            "expected a space before the value, found {}",
            truncate(rest)
        ));
    }
    // An exemplar (` # {labels} value [ts]`) is ignored; label values are behind us, so
    // the first ` # ` starts it.
    let rest = rest.find(" # ").map_or(rest, |i| &rest[..i]);
    Ok(rest
        .split([' ', '\t'])
        .filter(|f| !f.is_empty())
        .take(3)
        .collect())
}

/// Label pairs in file order.
type Pairs = Vec<(String, String)>;

/// Labels after `{`, up to and including `}`; returns them and the text after `}`.
fn parse_labels(mut s: &str) -> Result<(Pairs, &str), String> {
    let mut labels: Pairs = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let label = &s[..end];
        if !is_label_name(label) {
            return Err(format!("expected a label name, found {}", truncate(s)));
        }
        if label == "__name__" {
            return Err("__name__ is not a label here: the metric name comes first".into());
        }
        if labels.iter().any(|(k, _)| k == label) {
            return Err(format!("label {label} appears twice"));
        }
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix("=\"")
            .ok_or_else(|| format!("label {label}: expected =\" after the name"))?;
        let (value, after) = parse_quoted(s).map_err(|e| format!("label {label}: {e}"))?;
        labels.push((label.to_string(), value));
        s = after.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!(
                "label {label}: expected , or }} after the value, found {}",
                truncate(s)
            ));
        }
    }
}

/// A label value after its opening quote: the unescaped value and the text after the
/// closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown escape \\{} (only \\\\, \\\" and \\n are allowed)",
                        other.escape_debug()
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("the value's closing quote is missing".into())
}

/// A float as OpenMetrics writes one: decimal with an optional exponent, `NaN`, `+Inf`,
/// `-Inf` (and `Inf`). Rust's parser alone would also take `infinity` and `nan` in any case.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => return Some(f64::NAN),
        "+Inf" | "Inf" => return Some(f64::INFINITY),
        "-Inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let digits_only = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !digits_only || !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds since 1970 (fractional, or with an exponent) to ms, sub-ms digits truncated
/// toward zero. Plain decimals are converted exactly; other forms through a float.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Some(ms) = decimal_seconds_to_ms(s) {
        return Some(ms);
    }
    let secs = parse_float(s)?;
    let ms = (secs * 1000.0).trunc();
    // Inside i64 (NaN is in no range; 2^63 is exactly representable, so the end is exact).
    (-9.223_372_036_854_776e18..9.223_372_036_854_776e18)
        .contains(&ms)
        .then_some(ms as i64)
}

fn decimal_seconds_to_ms(s: &str) -> Option<i64> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut ms_part = 0i64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms_part += i64::from(b - b'0') * [100, 10, 1][i];
    }
    let ms = secs.checked_mul(1000)?.checked_add(ms_part)?;
    Some(if negative { -ms } else { ms })
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// At most 40 characters of `s`, for an error message.
fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    if out.is_empty() {
        "the end of the line".into()
    } else {
        format!("{out:?}")
    }
}

/// A document read line by line: the `# TYPE` seen so far, and where `# EOF` was.
#[derive(Debug, Default)]
pub struct Document {
    types: HashMap<String, FamilyType>,
    eof_line: Option<u64>,
    lines: u64,
}

impl Document {
    /// A document before its first line.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next line (without its `\n`); returns its sample, if it is one.
    pub fn feed(&mut self, line: &str) -> Result<Option<Sample>, ParseError> {
        self.lines += 1;
        let at = self.lines;
        let err = |message: String| ParseError { line: at, message };
        if let Some(eof) = self.eof_line {
            return Err(err(format!("text after # EOF (line {eof})")));
        }
        match parse_line(line).map_err(err)? {
            Line::Sample(s) => Ok(Some(s)),
            Line::Type(family, t) => {
                self.types.insert(family, t);
                Ok(None)
            }
            Line::Meta => Ok(None),
            Line::Eof => {
                self.eof_line = Some(at);
                Ok(None)
            }
        }
    }

    /// As [`Document::feed`], for a line as read: one that is not UTF-8 is an error.
    pub fn feed_bytes(&mut self, line: &[u8]) -> Result<Option<Sample>, ParseError> {
        match std::str::from_utf8(line) {
            Ok(text) => self.feed(text),
            Err(e) => {
                self.lines += 1;
                Err(ParseError {
                    line: self.lines,
                    message: format!("not UTF-8 (byte {})", e.valid_up_to() + 1),
                })
            }
        }
    }

    /// Lines fed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Checks the end of the document: `# EOF` was its last line.
    pub fn finish(&self) -> Result<(), ParseError> {
        match self.eof_line {
            Some(_) => Ok(()),
            None => Err(ParseError {
                line: self.lines,
                message: "the text does not end with # EOF (cut short?)".into(),
            }),
        }
    }

    /// Counter or gauge for a sample name: counters' samples, and histograms' and
    /// summaries' `_bucket`, `_count` and `_sum`, are counters; everything else is a gauge.
    /// The type line may name the family (`x` for `x_total`, OpenMetrics) or the sample
    /// (`x_total`, Prometheus' text format).
    pub fn kind_of(&self, name: &str) -> SeriesKind {
        let family = |suffix: &str| {
            name.strip_suffix(suffix)
                .and_then(|f| self.types.get(f))
                .copied()
        };
        let counter = matches!(self.types.get(name), Some(FamilyType::Counter))
            || matches!(family("_total"), Some(FamilyType::Counter))
            || matches!(family("_bucket"), Some(FamilyType::Histogram))
            || ["_count", "_sum"]
                .iter()
                .any(|s| matches!(family(s), Some(FamilyType::Histogram | FamilyType::Summary)));
        if counter {
            SeriesKind::Counter
        } else {
            SeriesKind::Gauge
        }
    }
}

impl fmt::Display for FamilyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(line: &str) -> Sample {
        match parse_line(line) {
            Ok(Line::Sample(s)) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_line(line) {
            Err(e) => e,
            Ok(other) => panic!("{line} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_samples() {
        let s = sample(r#"node_cpu_seconds_total{cpu="0",mode="idle"} 12.5 1700000000"#);
        assert_eq!(s.name, "node_cpu_seconds_total");
        assert_eq!(
            s.labels,
            [("cpu".into(), "0".into()), ("mode".into(), "idle".into())]
        );
        assert_eq!((s.value, s.ts_ms), (12.5, 1_700_000_000_000));
        let s = sample("up 1 1700000000.123");
        assert!(s.labels.is_empty());
        assert_eq!(s.ts_ms, 1_700_000_000_123);
        // Sub-ms digits truncate; exponents, spaces and trailing commas are fine.
        assert_eq!(sample("a 1 1.2349").ts_ms, 1234);
        assert_eq!(sample("a 1 1.7e9").ts_ms, 1_700_000_000_000);
        assert_eq!(sample("a{b=\"1\",}  -2.5e-3\t1").value, -2.5e-3);
        assert_eq!(sample("a{} 1E3 1").value, 1000.0);
        assert_eq!(sample("a 1 1 # {trace=\"x\"} 1 1").value, 1.0);
        assert_eq!(sample("a 1 -1.5").ts_ms, -1500);
        assert_eq!(sample("a 1 1\r").ts_ms, 1000);
    }

    #[test]
    fn special_values() {
        assert!(sample("a NaN 1").value.is_nan());
        assert_eq!(sample("a +Inf 1").value, f64::INFINITY);
        assert_eq!(sample("a -Inf 1").value, f64::NEG_INFINITY);
        assert_eq!(
            sample(r#"h_bucket{le="+Inf"} 3 1"#).labels[0].1,
            "+Inf".to_string()
        );
        assert!(error("a nan 1").contains("not a number"));
        assert!(error("a infinity 1").contains("not a number"));
        assert!(error("a 0x10 1").contains("not a number"));
        assert!(error("a 1 NaN").contains("timestamp"));
        assert!(error("a 1 +Inf").contains("timestamp"));
        assert!(error("a 1 1e30").contains("timestamp"));
    }

    #[test]
    fn label_escapes() {
        let s = sample(r#"a{path="C:\\dir",q="say \"hi\"",m="two\nlines"} 1 1"#);
        assert_eq!(s.labels[0].1, "C:\\dir");
        assert_eq!(s.labels[1].1, "say \"hi\"");
        assert_eq!(s.labels[2].1, "two\nlines");
        // Commas, braces and spaces inside a value are the value's.
        let s = sample(r#"a{x="a, b} c"} 1 1"#);
        assert_eq!(s.labels[0].1, "a, b} c");
        assert!(error(r#"a{x="\t"} 1 1"#).contains("unknown escape"));
        assert!(error(r#"a{x="open} 1 1"#).contains("closing quote"));
        assert!(error(r#"a{x="\"#).contains("closing quote"));
        // An empty value is no label.
        assert!(sample(r#"a{x=""} 1 1"#).labels.is_empty());
    }

    #[test]
    fn refuses_malformed_samples() {
        assert!(error("a 1").contains("no timestamp"));
        assert!(error("a").contains("no value"));
        assert!(error("a 1 2 3").contains("after the timestamp"));
        assert!(error("1a 1 1").contains("metric name"));
        assert!(error("a{1x=\"1\"} 1 1").contains("label name"));
        assert!(error("a{x=\"1\",x=\"2\"} 1 1").contains("twice"));
        assert!(error("a{__name__=\"b\"} 1 1").contains("__name__"));
        assert!(error("a{x=1} 1 1").contains("expected =\""));
        assert!(error("a{x=\"1\" y=\"2\"} 1 1").contains("expected , or }"));
        assert!(error("a{x=\"1\"").contains("expected , or }"));
        assert!(error("a{x=\"1\"}1 1").contains("space before the value"));
        assert!(error("a 1 1 #").contains("after the timestamp"));
        assert!(error("").contains("empty line"));
        assert!(error("a 1 abc").contains("timestamp"));
    }

    #[test]
    fn comments() {
        assert_eq!(
            parse_line("# TYPE node_cpu_seconds counter"),
            Ok(Line::Type("node_cpu_seconds".into(), FamilyType::Counter))
        );
        assert_eq!(parse_line("# HELP a Some text."), Ok(Line::Meta));
        assert_eq!(parse_line("# UNIT a_seconds seconds"), Ok(Line::Meta));
        assert_eq!(parse_line("# EOF"), Ok(Line::Eof));
        assert!(error("# TYPE a counterish").contains("unknown metric type"));
        assert!(error("# TYPE 9a counter").contains("metric name"));
        assert!(error("# just a comment").contains("a comment must be"));
        assert!(error("# EOF now").contains("alone"));
    }

    #[test]
    fn document_order_and_kinds() {
        let mut d = Document::new();
        let text = "# TYPE c counter\n# TYPE h histogram\n# TYPE s summary\n\
                    # TYPE g_total gauge\n# TYPE t_total counter\nc_total 1 1\n# EOF";
        for line in text.lines() {
            d.feed(line).unwrap();
        }
        d.finish().unwrap();
        for name in [
            "c_total", "h_bucket", "h_count", "h_sum", "s_sum", "s_count", "t_total",
        ] {
            assert_eq!(d.kind_of(name), SeriesKind::Counter, "{name}");
        }
        for name in ["h", "s", "g_total", "other", "h_created"] {
            assert_eq!(d.kind_of(name), SeriesKind::Gauge, "{name}");
        }
        let e = d.feed("a 1 1").unwrap_err();
        assert_eq!(e.line, 8);
        assert!(e.message.contains("after # EOF (line 7)"), "{e}");

        let mut d = Document::new();
        d.feed("a 1 1").unwrap();
        let e = d.finish().unwrap_err();
        assert!(e.to_string().starts_with("line 1: "), "{e}");
        assert!(e.message.contains("# EOF"));
        let e = d.feed("a 1").unwrap_err();
        assert_eq!(e.line, 2);
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,80}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_near_valid(
            name in "[a-z_:]{1,8}",
            labels in proptest::collection::vec(("[a-z_]{1,4}", "[ -~\\\\\"]{0,8}"), 0..4),
            value in "[-+0-9.eENaIf]{0,8}",
            ts in "[-+0-9.e]{0,14}",
            tail in "[ #{}\"=,a-z0-9]{0,10}",
        ) {
            let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let line = format!("{name}{{{}}} {value} {ts}{tail}", body.join(","));
            let _ = parse_line(&line);
        }

        #[test]
        fn round_trips_written_samples(
            v in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
            ms in -4_000_000_000_000i64..4_000_000_000_000,
            value in "[ -~]{0,12}",
        ) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            let ts = format!("{}{}.{:03}", if ms < 0 { "-" } else { "" }, ms.abs() / 1000, ms.abs() % 1000);
            let s = sample(&format!("m{{l=\"{escaped}\"}} {v} {ts}"));
            prop_assert_eq!(s.value, v);
            prop_assert_eq!(s.ts_ms, ms);
            let want: Vec<(String, String)> = if value.is_empty() { vec![] } else { vec![("l".into(), value)] };
            prop_assert_eq!(s.labels, want);
        }
    }
}
