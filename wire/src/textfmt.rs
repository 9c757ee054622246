//! The Prometheus text exposition format, as node_exporter's textfile collector reads
//! it, for scripts that print metrics rather than a Nagios status line, and for the
//! `scrape` collector, which reads exporters.
//!
//! Lines: `# TYPE name counter|gauge|histogram|summary|untyped`, `# HELP name text`,
//! other `#` comments, blank lines, and samples
//! `name{label="value",...} value [timestamp]`. Label values use the escapes `\\`,
//! `\"` and `\n`; values may be `NaN`, `+Inf`, `-Inf`. Timestamps are accepted and
//! ignored: samples are stamped with the time of the run.
//!
//! OpenMetrics text is read too: its types `unknown`, `info`, `stateset` and
//! `gaugehistogram` (all gauges), timestamps in seconds with a fraction, exemplars
//! after a sample (`# {trace_id="..."} 1.0 [timestamp]`, checked and dropped), and
//! `# UNIT` and `# EOF` lines (comments).
//!
//! A sample is a counter when its `# TYPE` says so (`name` or, in the OpenMetrics
//! style, `name` without `_total`), or when it is the `_bucket`, `_count` or `_sum`
//! of a histogram or summary; every other sample is a gauge. A line that cannot be
//! read is skipped and listed with its number; the others are kept.
//!
//! The parsers here never panic on any input (property tested below).

use std::collections::HashMap;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, tag_no_case, take_while, take_while1},
    character::complete::{char, digit1, none_of, one_of, space0, space1},
    combinator::{all_consuming, map, opt, recognize, value},
    multi::{many0, separated_list0},
    sequence::{delimited, preceded, terminated},
};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSample {
    /// Metric name.
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Whether it is a counter (else a gauge).
    pub counter: bool,
}

/// What a text held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Samples in the order written.
    pub samples: Vec<TextSample>,
    /// Lines skipped: `line N: why`.
    pub errors: Vec<String>,
}

/// What one line is.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    Blank,
    Comment,
    Type(String, String),
    Sample(String, Vec<(String, String)>, f64),
}

/// Whether `text` is meant as exposition format rather than plugin output: its first
/// non-blank line is a `# HELP` or `# TYPE` line, or every non-blank line is a comment
/// or a sample and at least one is a sample.
pub fn looks_like_exposition(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let Some(first) = lines.peek() else {
        return false;
    };
    let first = first.trim_start();
    if first.starts_with("# HELP ") || first.starts_with("# TYPE ") {
        return true;
    }
    let mut samples = 0;
    for line in lines {
        match parse_line(line) {
            Ok(Line::Sample(..)) => samples += 1,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    samples > 0
}

/// Reads exposition text; see the module documentation.
pub fn parse_exposition(text: &str) -> Exposition {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Exposition::default();
    let mut raw = Vec::new();
    for (index, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Line::Type(name, kind)) => {
                types.insert(name, kind);
            }
            Ok(Line::Sample(name, labels, value)) => raw.push((name, labels, value)),
            Ok(Line::Blank | Line::Comment) => {}
            Err(why) => out.errors.push(format!("line {}: {why}", index + 1)),
        }
    }
    for (name, labels, value) in raw {
        let counter = is_counter(&name, &types);
        out.samples.push(TextSample {
            name,
            labels,
            value,
            counter,
        });
    }
    out
}

fn is_counter(name: &str, types: &HashMap<String, String>) -> bool {
    let kind = |n: &str| types.get(n).map(String::as_str);
    if kind(name) == Some("counter") {
        return true;
    }
    for suffix in ["_total", "_created"] {
        if let Some(base) = name.strip_suffix(suffix)
            && kind(base) == Some("counter")
        {
            return true;
        }
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(kind(base), Some("histogram" | "summary"))
        {
            return true;
        }
    }
    false
}

/// Reads one line, or says why it cannot.
fn parse_line(line: &str) -> Result<Line, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(comment) = trimmed.strip_prefix('#') {
        let mut words = comment.split_whitespace();
        if words.next() == Some("TYPE") {
            let (Some(name), Some(kind), None) = (words.next(), words.next(), words.next()) else {
                return Err("a TYPE line is `# TYPE name type`".into());
            };
            if !is_metric_name(name) {
                return Err(format!("{} is not a metric name", quote(name)));
            }
            if !matches!(
                kind,
                "counter"
                    | "gauge"
                    | "histogram"
                    | "summary"
                    | "untyped"
                    | "unknown"
                    | "info"
                    | "stateset"
                    | "gaugehistogram"
            ) {
                return Err(format!("unknown type {}", quote(kind)));
            }
            return Ok(Line::Type(name.to_owned(), kind.to_owned()));
        }
        return Ok(Line::Comment);
    }
    match all_consuming(sample).parse(trimmed) {
        Ok((_, (name, labels, v))) => {
            for (i, (label, _)) in labels.iter().enumerate() {
                if labels[..i].iter().any(|(l, _)| l == label) {
                    return Err(format!("label {} given twice", quote(label)));
                }
            }
            Ok(Line::Sample(name.to_owned(), labels, v))
        }
        Err(_) => Err(format!("not a sample: {}", quote(trimmed))),
    }
}

fn is_metric_name(name: &str) -> bool {
    all_consuming(metric_name).parse(name).is_ok()
}

fn quote(text: &str) -> String {
    const MAX: usize = 60;
    let head: String = text.chars().take(MAX).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn metric_name(i: &str) -> IResult<&str, &str> {
    recognize((
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
    ))
    .parse(i)
}

fn label_name(i: &str) -> IResult<&str, &str> {
    recognize((
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

fn label_value(i: &str) -> IResult<&str, String> {
    delimited(
        char('"'),
        many0(alt((
            value('\\', tag("\\\\")),
            value('"', tag("\\\"")),
            value('\n', tag("\\n")),
            none_of("\\\""),
        ))),
        char('"'),
    )
    .map(|chars: Vec<char>| chars.into_iter().collect())
    .parse(i)
}

fn label_pair(i: &str) -> IResult<&str, (String, String)> {
    map(
        (label_name, space0, char('='), space0, label_value),
        |(name, _, _, _, value)| (name.to_owned(), value),
    )
    .parse(i)
}

fn labels(i: &str) -> IResult<&str, Vec<(String, String)>> {
    delimited(
        terminated(char('{'), space0),
        terminated(
            separated_list0((space0, char(','), space0), label_pair),
            (space0, opt(char(',')), space0),
        ),
        char('}'),
    )
    .parse(i)
}

fn float(i: &str) -> IResult<&str, f64> {
    let special = alt((
        value(f64::NAN, tag_no_case("nan")),
        value(f64::INFINITY, preceded(opt(char('+')), tag_no_case("inf"))),
        value(f64::NEG_INFINITY, preceded(char('-'), tag_no_case("inf"))),
    ));
    let (rest, v) = alt((
        special,
        nom::combinator::map_res(
            recognize((
                opt(one_of("+-")),
                alt((
                    recognize((digit1, opt((char('.'), opt(digit1))))),
                    recognize((char('.'), digit1)),
                )),
                opt((one_of("eE"), opt(one_of("+-")), digit1)),
            )),
            str::parse::<f64>,
        ),
    ))
    .parse(i)?;
    Ok((rest, v))
}

type RawSample<'a> = (&'a str, Vec<(String, String)>, f64);

/// An OpenMetrics exemplar after a sample: ` # {labels} value [timestamp]`.
fn exemplar(i: &str) -> IResult<&str, ()> {
    value(
        (),
        (
            space0,
            char('#'),
            space1,
            labels,
            space1,
            float,
            opt(preceded(space1, float)),
        ),
    )
    .parse(i)
}

fn sample(i: &str) -> IResult<&str, RawSample<'_>> {
    map(
        (
            metric_name,
            opt(preceded(space0, labels)),
            space1,
            float,
            // Integer milliseconds in the Prometheus format, seconds with a fraction in
            // OpenMetrics: either way ignored.
            opt(preceded(space1, float)),
            opt(exemplar),
        ),
        |(name, labels, _, v, _, _)| (name, labels.unwrap_or_default(), v),
    )
    .parse(i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TEXTFILE: &str = r#"# HELP node_textfile_example An example.
# TYPE node_textfile_example gauge
node_textfile_example{path="/srv",note="a \"q\" \\ b\nc"} 42.5
# TYPE jobs_done counter
jobs_done 17 1700000000000
# TYPE latency histogram
latency_bucket{le="0.1"} 3
latency_bucket{le="+Inf"} 5
latency_sum 0.9
latency_count 5
# TYPE events counter
events_total{kind="x",} 3e2
plain NaN
neg -Inf
"#;

    #[test]
    fn reads_a_textfile_collector_file() {
        let e = parse_exposition(TEXTFILE);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        let got: Vec<(&str, bool)> = e
            .samples
            .iter()
            .map(|s| (s.name.as_str(), s.counter))
            .collect();
        assert_eq!(
            got,
            [
                ("node_textfile_example", false),
                ("jobs_done", true),
                ("latency_bucket", true),
                ("latency_bucket", true),
                ("latency_sum", true),
                ("latency_count", true),
                ("events_total", true),
                ("plain", false),
                ("neg", false),
            ]
        );
        assert_eq!(
            e.samples[0].labels,
            [
                ("path".to_string(), "/srv".to_string()),
                ("note".to_string(), "a \"q\" \\ b\nc".to_string())
            ]
        );
        assert_eq!(e.samples[0].value, 42.5);
        assert_eq!(e.samples[3].labels[0].1, "+Inf");
        assert_eq!(e.samples[6].value, 300.0);
        assert!(e.samples[7].value.is_nan());
        assert_eq!(e.samples[8].value, f64::NEG_INFINITY);
        assert!(looks_like_exposition(TEXTFILE));
    }

    #[test]
    fn bad_lines_are_listed_with_their_numbers() {
        let e =
            parse_exposition("ok 1\nbad line here\nx{a=\"1\",a=\"2\"} 1\n# TYPE y sort\ny{} 2\n");
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.errors.len(), 3, "{:?}", e.errors);
        assert!(
            e.errors[0].starts_with("line 2: not a sample"),
            "{:?}",
            e.errors
        );
        assert!(e.errors[1].contains("given twice"), "{:?}", e.errors);
        assert!(e.errors[2].contains("unknown type"), "{:?}", e.errors);
    }

    #[test]
    fn reads_openmetrics_text() {
        let text = r#"# TYPE build info
build_info{version="1.2"} 1
# TYPE req counter
# UNIT req_seconds seconds
req_total{code="200"} 7 1700000000.250 # {trace_id="abc"} 1.0 1700000000.1
req_created{code="200"} 1.7e9
# TYPE depth gaugehistogram
depth_bucket{le="+Inf"} 3
depth_gcount 3
# TYPE mode stateset
mode{mode="a"} 1
# TYPE other unknown
other 2
# EOF
"#;
        let e = parse_exposition(text);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        let got: Vec<(&str, bool, f64)> = e
            .samples
            .iter()
            .map(|s| (s.name.as_str(), s.counter, s.value))
            .collect();
        assert_eq!(
            got,
            [
                ("build_info", false, 1.0),
                ("req_total", true, 7.0),
                ("req_created", true, 1.7e9),
                ("depth_bucket", false, 3.0),
                ("depth_gcount", false, 3.0),
                ("mode", false, 1.0),
                ("other", false, 2.0),
            ]
        );
        let bad = parse_exposition("a 1 # {x=\"y\"}\nb 1 # not an exemplar\n");
        assert_eq!(bad.errors.len(), 2, "{:?}", bad.errors);
    }

    #[test]
    fn plugin_output_is_not_exposition() {
        for text in [
            "OK - all fine | a=1",
            "CRITICAL: down\nmore",
            "",
            "\n\n",
            "# just a comment",
            "disk_free 12\nDISK OK",
        ] {
            assert!(!looks_like_exposition(text), "{text:?}");
        }
        assert!(looks_like_exposition("a 1\n\nb{x=\"y\"} 2\n"));
        assert!(looks_like_exposition("# TYPE a gauge\nthen garbage"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = looks_like_exposition(&text);
            let _ = parse_exposition(&text);
        }

        #[test]
        fn never_panics_on_exposition_like_text(text in "[a-z_{}=\",. #\\\\\n0-9eE+-]{0,80}") {
            let e = parse_exposition(&text);
            for s in e.samples {
                prop_assert!(!s.name.is_empty());
            }
        }

        #[test]
        fn written_samples_read_back(
            name in "[a-z_][a-z0-9_]{0,10}",
            label in "[a-z_][a-z0-9_]{0,6}",
            text in "[^\u{0}]{0,12}",
            v in -1e9f64..1e9,
        ) {
            let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("{name}{{{label}=\"{escaped}\"}} {v}\n");
            let e = parse_exposition(&line);
            prop_assert!(e.errors.is_empty(), "{:?} {:?}", line, e.errors);
            prop_assert_eq!(e.samples.len(), 1);
            prop_assert_eq!(&e.samples[0].labels[0].1, &text);
            prop_assert_eq!(e.samples[0].value, v);
        }
    }
}
