//! Series selectors as Prometheus writes them: `name`, `name{label="value",other!="x"}`,
//! or `{__name__="name",...}`. Only `=` and `!=` for now; the query engine brings the rest.

use crate::store::{Matcher, Selector};

pub(crate) fn parse_selector(text: &str) -> Result<Selector, String> {
    let text = text.trim();
    let (name, rest) = match text.find('{') {
        Some(i) => (text[..i].trim(), &text[i..]),
        None => (text, ""),
    };
    let mut name = name.to_string();
    let mut matchers = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or("a selector's labels must be enclosed in {...}")?;
        let mut chars = inner.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut label = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    label.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let negate = match (chars.next(), chars.peek()) {
                (Some('='), _) => false,
                (Some('!'), Some('=')) => {
                    chars.next();
                    true
                }
                _ => return Err(format!("expected = or != after label {label:?}")),
            };
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('"') {
                return Err(format!(
                    "the value of label {label:?} must be in double quotes"
                ));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("the value of label {label:?} is not closed")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => return Err("a backslash ends the selector".into()),
                    },
                    Some(c) => value.push(c),
                }
            }
            if label.is_empty() {
                return Err("a matcher has no label name".into());
            }
            if label == "__name__" && !negate {
                name = value;
            } else {
                matchers.push(Matcher {
                    label,
                    negate,
                    value,
                });
            }
        }
    }
    if name.is_empty() {
        return Err("a selector needs a metric name".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("{name:?} is not a metric name"));
    }
    Ok(Selector { name, matchers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let s = parse_selector("node_load1").unwrap();
        assert_eq!((s.name.as_str(), s.matchers.len()), ("node_load1", 0));
        let s = parse_selector(r#"node_cpu_seconds_total{cpu="0", mode!="idle"}"#).unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert!(s.matchers[1].negate);
        let s = parse_selector(r#"{__name__="up",job="a\"b"}"#).unwrap();
        assert_eq!(s.name, "up");
        assert_eq!(s.matchers[0].value, "a\"b");
        for bad in [
            "",
            "{}",
            "x{a=b}",
            "x{a=\"b}",
            "x{=\"b\"}",
            "x-y",
            "x{a~\"b\"}",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }
}
