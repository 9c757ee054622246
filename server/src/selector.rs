//! Series selectors as Prometheus writes them in `match[]`: `name`,
//! `name{label="value", other=~"re.*"}` or `{__name__=~"node_.*"}`, with all four matcher
//! operators. The text is parsed by the `promql-parser` crate, the parser the query engine
//! uses too, so a selector means the same in `match[]` and in an expression.

use promql_parser::{
    label::{MatchOp as PromOp, Matcher as PromMatcher},
    parser::{self, Expr, VectorSelector},
};

use crate::store::{LabelMatcher, MatchOp, NAME_LABEL};

/// The matchers of one selector, all of which must hold.
pub type Selector = Vec<LabelMatcher>;

/// Parses one selector. `{a="1" or b="2"}` yields one matcher list per alternative; every
/// other selector yields one list. Anything but a plain selector (a range, an offset, an
/// expression) is refused, with the parser's message where it has one.
pub fn parse_selector(text: &str) -> Result<Vec<Selector>, String> {
    let expr = parser::parse(text)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err("a series selector is expected, not an expression".into());
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("a series selector takes no offset or @ modifier".into());
    }
    Ok(matchers_of(&vs))
}

/// The matcher lists of a parsed selector: one per `or` alternative, each with the
/// matchers common to all and the metric name.
pub fn matchers_of(vs: &VectorSelector) -> Vec<Selector> {
    let mut common: Selector = vs.matchers.matchers.iter().map(convert).collect();
    if let Some(name) = &vs.name {
        common.push(LabelMatcher::eq(NAME_LABEL, name));
    }
    if vs.matchers.or_matchers.is_empty() {
        return vec![common];
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|alt| {
            common
                .iter()
                .cloned()
                .chain(alt.iter().map(convert))
                .collect()
        })
        .collect()
}

fn convert(m: &PromMatcher) -> LabelMatcher {
    match &m.op {
        PromOp::Equal => LabelMatcher::eq(&m.name, &m.value),
        PromOp::NotEqual => LabelMatcher::ne(&m.name, &m.value),
        // The parser compiled and anchored the expression already, with Go's syntax
        // carried over to Rust's; keep its regex rather than compile the text again.
        PromOp::Re(re) => LabelMatcher::with_regex(&m.name, MatchOp::Re, &m.value, re.clone()),
        PromOp::NotRe(re) => LabelMatcher::with_regex(&m.name, MatchOp::Nre, &m.value, re.clone()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn one(text: &str) -> Selector {
        let mut all = parse_selector(text).expect(text);
        assert_eq!(all.len(), 1, "{text}");
        all.remove(0)
    }

    fn matches(sel: &Selector, labels: &[(&str, &str)]) -> bool {
        sel.iter().all(|m| {
            let v = labels
                .iter()
                .find(|(k, _)| *k == m.label)
                .map_or("", |(_, v)| *v);
            m.matches(v)
        })
    }

    #[test]
    fn every_operator_and_form() {
        let s = one("node_load1");
        assert!(matches(&s, &[("__name__", "node_load1")]));
        assert!(!matches(&s, &[("__name__", "node_load5")]));
        let s = one(r#"node_cpu_seconds_total{cpu="0", mode!="idle"}"#);
        let cpu = [("__name__", "node_cpu_seconds_total"), ("cpu", "0")];
        assert!(matches(&s, &[cpu[0], cpu[1], ("mode", "user")]));
        assert!(!matches(&s, &[cpu[0], cpu[1], ("mode", "idle")]));
        let s = one(r#"{__name__=~"node_(load1|load5)", job!~"x.*"}"#);
        assert!(matches(&s, &[("__name__", "node_load5"), ("job", "node")]));
        assert!(!matches(&s, &[("__name__", "node_load15")]), "anchored");
        assert!(!matches(&s, &[("__name__", "node_load1"), ("job", "xy")]));
        let s = one(r#"up{job="a\"b"}"#);
        assert!(matches(&s, &[("__name__", "up"), ("job", "a\"b")]));
    }

    #[test]
    fn alternatives_become_selectors() {
        let all = parse_selector(r#"up{job="a" or job="b"}"#).unwrap();
        assert_eq!(all.len(), 2);
        assert!(matches(&all[1], &[("__name__", "up"), ("job", "b")]));
        assert!(!matches(&all[0], &[("__name__", "up"), ("job", "b")]));
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "",
            "{}",
            r#"{job=~".*"}"#,
            "x{a=b}",
            "x{a=\"b}",
            "rate(x[5m])",
            "x[5m]",
            "x offset 5m",
            "1 + 2",
        ] {
            let err = parse_selector(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,60}") {
            let _ = parse_selector(&text);
        }

        #[test]
        fn never_panics_on_selector_shapes(
            name in "[a-z_:{}\\[\\]=~!\"\\\\ ,.*|()]{0,40}"
        ) {
            let _ = parse_selector(&name);
        }
    }
}
