//! The `/metrics` page read back into samples, so that OTLP carries exactly what Prometheus
//! scrapes, under the same names. The text is the server's own rendering, but this reader
//! takes any text without panicking: a line it cannot read is skipped.

use std::collections::BTreeMap;

/// A family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Untyped,
}

/// One line of samples: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// How a sample name goes out over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Counters, and a summary's `_sum` and `_count`: monotonic sums.
    pub monotonic: bool,
    /// The family's `# HELP`.
    pub help: String,
    pub samples: Vec<Sample>,
}

/// Every sample name of the page, in name order.
pub type Snapshot = BTreeMap<String, Series>;

/// Reads a page in Prometheus' text format (version 0.0.4).
pub fn parse(text: &str) -> Snapshot {
    let mut kinds: BTreeMap<&str, Kind> = BTreeMap::new();
    let mut helps: BTreeMap<&str, &str> = BTreeMap::new();
    let mut family: Option<&str> = None;
    let mut out = Snapshot::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            kinds.insert(name, kind_of(kind.trim()));
            family = Some(name);
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            helps.insert(name, help);
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let Some((name, sample)) = parse_sample(line) else {
                continue;
            };
            let owner = family.filter(|f| name.starts_with(f)).unwrap_or(name);
            let kind = kinds.get(owner).copied().unwrap_or(Kind::Untyped);
            let monotonic = match kind {
                Kind::Counter => true,
                Kind::Summary => name != owner,
                Kind::Gauge | Kind::Untyped => false,
            };
            out.entry(name.to_string())
                .or_insert_with(|| Series {
                    monotonic,
                    help: helps.get(owner).copied().unwrap_or_default().to_string(),
                    samples: Vec::new(),
                })
                .samples
                .push(sample);
        }
    }
    out
}

fn kind_of(word: &str) -> Kind {
    match word {
        "counter" => Kind::Counter,
        "gauge" => Kind::Gauge,
        "summary" => Kind::Summary,
        _ => Kind::Untyped,
    }
}

/// `name{a="x",b="y"} 1.5` → the name and the sample.
fn parse_sample(line: &str) -> Option<(&str, Sample)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let rest = &line[name_end..];
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (Vec::new(), rest),
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    (!name.is_empty()).then_some((name, Sample { labels, value }))
}

/// The labels after `{` up to the closing `}`, and the text after it.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (name, rest) = s.split_once("=\"")?;
        let (value, rest) = unescape_until_quote(rest)?;
        labels.push((name.trim().to_string(), value));
        s = rest;
    }
}

/// A label value up to its closing quote, with `\\`, `\"` and `\n` undone.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_server_page() {
        let text = "\
# HELP sysward_server_batches_accepted_total Batches acked.
# TYPE sysward_server_batches_accepted_total counter
sysward_server_batches_accepted_total 3
# HELP sysward_server_store_bytes Bytes per tier.
# TYPE sysward_server_store_bytes gauge
sysward_server_store_bytes{tier=\"raw\"} 10
sysward_server_store_bytes{tier=\"5m\"} 20
# HELP q Time.
# TYPE q summary
q_sum{endpoint=\"query\"} 1.5
q_count{endpoint=\"query\"} 2
# TYPE sysward_notifications_total counter
sysward_notifications_total{channel=\"a \\\"b\\\" \\\\ c\\nd\",x=\"\"} 4
";
        let s = parse(text);
        let accepted = &s["sysward_server_batches_accepted_total"];
        assert!(accepted.monotonic);
        assert_eq!(accepted.help, "Batches acked.");
        assert_eq!(accepted.samples[0].value, 3.0);
        let bytes = &s["sysward_server_store_bytes"];
        assert!(!bytes.monotonic);
        assert_eq!(bytes.samples.len(), 2);
        assert_eq!(bytes.samples[1].labels, vec![("tier".into(), "5m".into())]);
        assert!(s["q_sum"].monotonic && s["q_count"].monotonic);
        assert_eq!(s["q_count"].help, "Time.");
        let n = &s["sysward_notifications_total"].samples[0];
        assert_eq!(n.labels[0].1, "a \"b\" \\ c\nd");
        assert_eq!(n.labels[1], ("x".into(), String::new()));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn skips_what_it_cannot_read() {
        let s = parse("a{b=\"unterminated 1\nc notanumber\nd{e=\"f\"} 2\n{} 3\n");
        assert_eq!(s.keys().collect::<Vec<_>>(), vec!["d"]);
    }

    proptest! {
        #[test]
        fn never_panics(text in "(#|[a-z_]|\\{|\\}|=|\"|\\\\|,| |[0-9.]|\n|é){0,200}") {
            let _ = parse(&text);
        }
    }
}
