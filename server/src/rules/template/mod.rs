//! The template language of alerting rules' labels and annotations: the
//! subset of Go's `text/template` that Prometheus rules use, with
//! Prometheus' template functions.
//!
//! Like Prometheus, the text runs as if it were prefixed with
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
//! `{{$externalURL := .ExternalURL}}{{$value := .Value}}`, without HTML
//! escaping. Positions in errors are 1-based lines and 1-based character
//! columns of the rule's own text (Prometheus' are shifted by its prefix).
//!
//! The same engine renders notifications ([`JsonTemplate`]): there `.` is
//! JSON data shaped like Alertmanager's, and the functions are Alertmanager's.

mod data;
#[cfg(test)]
mod data_tests;
mod exec;
mod funcs;
mod gofmt;
mod gotime;
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

/// Which variables and functions a template may use (checked at parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Alerting rules: Prometheus' variables and functions.
    Rule,
    /// Notifications: `$` is the JSON data, and Alertmanager's functions.
    Data,
}

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
        Template::parse_mode(text, Mode::Rule)
    }

    fn parse_mode(text: &str, mode: Mode) -> Result<Template, TemplateError> {
        let plain = !text.contains("{{");
        let nodes = if plain {
            Vec::new()
        } else {
            parse::parse(text, mode).map_err(|e| parse_error(text, e.pos, e.msg))?
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

/// A template rendered over JSON data: notifications' titles, texts and
/// webhook bodies, written by operators the way Alertmanager's are.
///
/// A type of its own rather than a second `render` on [`Template`]:
/// variables and functions are checked at parse time and differ from a
/// rule template's, so the kind is chosen when parsing, and a rule
/// template cannot be rendered over JSON by mistake.
///
/// What [`render`](JsonTemplate::render) supports:
/// - The language of rule templates (Go's `text/template` without
///   `define`/`template`/`block`): `if`/`else if`/`with`/`range` (with
///   `else`, `break`, `continue`), pipelines, `$x := ...`, `{{- -}}`,
///   comments. `$` is the data, as in Go; `$labels`, `$value` and the other
///   variables of rule templates are not defined (a parse error).
/// - Data: an object gives field access (`.CommonLabels.alertname`), a
///   key it lacks reads as "" (`missingkey=zero` on Alertmanager's string
///   maps); an array gives `range`, `len`, `index`, `slice`; strings,
///   numbers (integers stay integers), booleans map to Go's, `null` to nil
///   (printed `<no value>`, false in `if`). A field of a non-object, or
///   data nested deeper than 100 levels, is an exec error. Keys match
///   exactly: give the data Go's field names (`Receiver`, `Alerts`,
///   `StartsAt`), not the lower-case keys of Alertmanager's webhook JSON.
/// - Alertmanager's methods, on any object: `.SortedPairs` (`{Name,
///   Value}` objects, `alertname` first, then by name; with `.Names` and
///   `.Values` of their own), `.Names`, `.Values` (same order),
///   `.Remove LIST`; an object of strings prints as `k=v, k=v` like `KV`.
///   On any array: `.Firing`, `.Resolved` (the elements whose `Status` is
///   `firing` / `resolved`). As in Go, a method wins over a key of that
///   name.
/// - Times are RFC 3339 strings (`2024-05-01T10:00:00Z`, fraction and
///   offset optional): `{{ .StartsAt }}` prints the string as given, and
///   `.Format LAYOUT` (Go's reference layouts, in the string's own offset),
///   `.Unix`, `.UnixMilli`, `.UTC` (an RFC 3339 string) read it.
/// - Functions: Go's builtins (`and or not len index slice print printf
///   println html js urlquery eq ne lt le gt ge`); Prometheus' pure ones
///   (`humanize*`, `match`, `reReplaceAll`, `safeHtml` (no escaping
///   happens anyway), `toUpper`, `toLower`, `stripPort`, `stripDomain`,
///   `args`, `toTime`, `toDuration`, `parseDuration`, `graphLink`,
///   `tableLink`); Alertmanager's `title` (which lower-cases the rest of
///   each word, unlike Prometheus'), `join SEP LIST`, `trimSpace`,
///   `stringSlice`, `date LAYOUT TIME`.
/// - Not here: `define`/`template`/`block`, `tz`, `since`, `toJson`,
///   `safeUrl`, `urlUnescape`; the rule-only functions (`query`, `first`,
///   `label`, `value`, `strvalue`, `sortByLabel`, `checkOutput`,
///   `externalURL`, `pathPrefix`, `now`) are parse errors.
///
/// Rendering keeps the engine's limits (1 MiB of output, 100 000 `range`
/// iterations, a work budget), so a template from a configuration file
/// ends in an error rather than hanging or exhausting the server.
#[derive(Debug, Clone)]
pub struct JsonTemplate(Template);

impl JsonTemplate {
    /// Parses once (at configuration load: errors, with their line and
    /// column, refuse the configuration).
    pub fn parse(text: &str) -> Result<JsonTemplate, TemplateError> {
        Template::parse_mode(text, Mode::Data).map(JsonTemplate)
    }

    /// Renders with `.` (and `$`) the given data.
    pub fn render(&self, data: &serde_json::Value) -> Result<String, TemplateError> {
        if self.0.plain {
            return Ok(self.0.source.clone());
        }
        exec::run_data(&self.0.nodes, &self.0.source, data)
    }

    /// True when the text has no `{{` (render would return it unchanged).
    pub fn is_plain(&self) -> bool {
        self.0.plain
    }

    /// The text as written in the configuration.
    pub fn source(&self) -> &str {
        &self.0.source
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
