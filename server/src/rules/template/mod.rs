//! The template language of alerting rules' labels and annotations: the
//! subset of Go's `text/template` that Prometheus rules use, with
//! Prometheus' template functions.
//!
//! Like Prometheus, the text runs as if it were prefixed with
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
//! `{{$externalURL := .ExternalURL}}{{$value := .Value}}`, without HTML
//! escaping. Positions in errors are 1-based lines and 1-based character
//! columns of the rule's own text (Prometheus' are shifted by its prefix).

mod exec;
mod funcs;
mod gofmt;
mod lexer;
mod parse;
#[cfg(test)]
mod tests;
mod value;

use std::collections::BTreeMap;

/// Deepest nesting of parenthesised pipelines and control structures.
const MAX_DEPTH: usize = 100;
/// Largest rendered text, and largest string any function may build.
const MAX_OUTPUT: usize = 1 << 20;
/// Most `range` iterations in one render, all loops together.
const MAX_RANGE_ITERATIONS: usize = 100_000;
/// Work budget of one render: a unit per command evaluated and per 64
/// bytes that functions take or return, so that loops over big strings
/// end in an error instead of minutes of copying.
const MAX_WORK: u64 = 10_000_000;

/// A parsed template, ready to render many times.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<parse::Node>,
    plain: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template (the rule file must be refused).
    #[error("template: {line}:{column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    /// Rendering failed; the message already says where, e.g.
    /// `template: 1:4: executing at <humanize "x">: error calling humanize: ...`.
    #[error("{message}")]
    Exec { message: String },
}

pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub value: f64,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    /// Unix ms of the evaluation: `now`-style functions use it, never the wall clock.
    pub time_ms: i64,
}

pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub trait TemplateQuery {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String>;

    /// Sysward's `checkOutput AGENT_ID CHECK`: the output of that check's latest result,
    /// "" when there is none.
    fn check_output(&self, _agent_id: &str, _check: &str) -> Result<String, String> {
        Ok(String::new())
    }
}

/// A `TemplateQuery` that refuses (for `check rules` and tests).
pub struct NoQuery;

impl TemplateQuery for NoQuery {
    fn query(&self, _expr: &str) -> Result<Vec<QuerySample>, String> {
        Err("query is not available here".to_string())
    }
}

impl Template {
    /// Parses once (at rule load: errors here refuse the rule file).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let plain = !text.contains("{{");
        let nodes = if plain {
            Vec::new()
        } else {
            parse::parse(text).map_err(|e| parse_error(text, e.pos, e.msg))?
        };
        Ok(Template {
            source: text.to_string(),
            nodes,
            plain,
        })
    }

    pub fn render(
        &self,
        data: &TemplateData<'_>,
        query: &dyn TemplateQuery,
    ) -> Result<String, TemplateError> {
        if self.plain {
            return Ok(self.source.clone());
        }
        exec::run(&self.nodes, &self.source, data, query)
    }

    /// True when the text has no `{{` (render would return it unchanged).
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The text as written in the rule file.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn parse_error(src: &str, pos: usize, message: String) -> TemplateError {
    let (line, column) = line_col(src, pos);
    TemplateError::Parse {
        line,
        column,
        message,
    }
}

/// 1-based line and character column of byte offset `pos`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, 1 + before[line_start..].chars().count())
}
