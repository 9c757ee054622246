//! Prometheus text exposition (version 0.0.4) of collector output, for `collect --once`.

use std::fmt::Write;

use sysward_collectors::{Kind, Sample};

/// Formats samples grouped by metric name, each group with its `# TYPE` line, sorted so
/// that the output is stable and diffable.
pub(crate) fn render(samples: &[Sample]) -> String {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.labels.cmp(&b.labels)));
    let mut out = String::new();
    let mut last_name: Option<&str> = None;
    for s in sorted {
        if last_name != Some(s.name.as_ref()) {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
            last_name = Some(&s.name);
        }
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let mut labels = s.labels.clone();
            labels.sort();
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", format_value(s.value));
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_with_types() {
        let text = render(&[
            Sample::new("node_load1", Kind::Gauge, 0.5),
            Sample::new("a_total", Kind::Counter, 3.0).label("x", "q\"\\\n"),
        ]);
        assert_eq!(
            text,
            "# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n# TYPE node_load1 gauge\nnode_load1 0.5\n"
        );
    }
}
