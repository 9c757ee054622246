//! Rule files: Prometheus' format (`groups:` → `rules:`), with our optional keys on alerting
//! rules, read and checked as a whole before anything of them runs.
//!
//! Every error names the file and line, and the group and rule it is in, so that an
//! operator can go straight to it: `host.yml:14: group "host", rule 2 "HostCpuHigh": ...`.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use promql_parser::parser::{BinaryExpr, Expr};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::template::Template;

/// What is wrong in a rule file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct RuleFileError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    pub group: Option<String>,
    /// 1-based position in the group and the rule's name.
    pub rule: Option<(usize, String)>,
    pub message: String,
}

impl RuleFileError {
    fn describe(&self) -> String {
        let mut s = self.file.display().to_string();
        if self.line > 0 {
            s.push_str(&format!(":{}", self.line));
        }
        s.push(':');
        if let Some(group) = &self.group {
            s.push_str(&format!(" group {group:?},"));
        }
        if let Some((n, name)) = &self.rule {
            s.push_str(&format!(" rule {n} {name:?}:"));
        } else if self.group.is_some() {
            s.pop();
            s.push(':');
        }
        s.push(' ');
        s.push_str(&self.message);
        s
    }
}

/// What happens to an alert whose series disappear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoData {
    /// The alert resolves (Prometheus' behaviour).
    #[default]
    Ok,
    /// The alert fires.
    Alerting,
    /// The alert keeps the state it had.
    Keep,
    /// The alert enters its own `nodata` state.
    NoData,
}

impl NoData {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "alerting" => Self::Alerting,
            "keep" => Self::Keep,
            "nodata" => Self::NoData,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Alerting => "alerting",
            Self::Keep => "keep",
            Self::NoData => "nodata",
        }
    }
}

/// One checked rule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub kind: RuleKind,
    /// The expression as written (for the API and for change detection on reload).
    pub expr_text: String,
    pub expr: Expr,
    pub labels: Vec<(String, Template)>,
    /// Line of the rule in its file.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    Record { name: String },
    Alert(Box<AlertSpec>),
}

/// The keys only an alerting rule has.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub name: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub annotations: Vec<(String, Template)>,
    /// The condition that must hold, for `recover_for`, before a firing alert resolves;
    /// `None`: the alert resolves once its expression no longer returns it.
    pub recover: Option<Expr>,
    pub recover_text: Option<String>,
    pub recover_for: Duration,
    pub no_data: NoData,
    pub no_data_for: Duration,
    /// The series whose absence is "no data": the left side of a threshold comparison, or
    /// the expression itself.
    pub data_expr: Expr,
}

impl RuleSpec {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Record { name } => name,
            RuleKind::Alert(a) => &a.name,
        }
    }
}

/// One checked group.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub file: PathBuf,
    pub name: String,
    /// `None`: the server's default interval.
    pub interval: Option<Duration>,
    /// Evaluate this far in the past (`query_offset`), for data that arrives late.
    pub query_offset: Duration,
    /// At most this many alerts or series per rule (0: no limit).
    pub limit: usize,
    /// Added to every rule's output (Prometheus 3's group labels).
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<RuleSpec>,
}

// ---- the YAML as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    #[serde(default)]
    groups: Vec<Spanned<GroupYaml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Spanned<RuleYaml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleYaml {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<Spanned<String>>,
    #[serde(rename = "for")]
    hold: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    recover: Option<String>,
    recover_for: Option<String>,
    no_data: Option<String>,
    no_data_for: Option<String>,
    severity: Option<String>,
}

/// Reads and checks one rule file.
pub fn load_file(path: &Path) -> Result<Vec<GroupSpec>, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| RuleFileError {
        file: path.to_path_buf(),
        line: 0,
        group: None,
        rule: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_file(path, &text)
}

/// Checks the text of a rule file named `path`.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<GroupSpec>, RuleFileError> {
    let whole = |line: usize, message: String| RuleFileError {
        file: path.to_path_buf(),
        line,
        group: None,
        rule: None,
        message,
    };
    let parsed: FileYaml = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line() as usize);
        whole(line, first_line(&e.to_string()))
    })?;
    let mut names = HashSet::new();
    let mut groups = Vec::with_capacity(parsed.groups.len());
    for g in parsed.groups {
        let line = g.referenced.line() as usize;
        let group = g.value;
        if group.name.is_empty() {
            return Err(whole(line, "group name must not be empty".into()));
        }
        if !names.insert(group.name.clone()) {
            return Err(whole(
                line,
                format!("group name {:?} is repeated in the same file", group.name),
            ));
        }
        groups.push(check_group(path, line, group)?);
    }
    Ok(groups)
}

/// The first line of a parser's message (serde-saphyr appends a source excerpt).
/// serde-saphyr's message starts with the position, which the caller already gives.
pub(super) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    let without_position = line
        .strip_prefix("error: line ")
        .and_then(|rest| rest.split_once(": "))
        .map_or(line, |(_, message)| message);
    without_position.to_string()
}

fn check_group(path: &Path, line: usize, g: GroupYaml) -> Result<GroupSpec, RuleFileError> {
    let err = |line: usize, message: String| RuleFileError {
        file: path.to_path_buf(),
        line,
        group: Some(g.name.clone()),
        rule: None,
        message,
    };
    let interval = match &g.interval {
        Some(s) => {
            let d = prom_duration(s).map_err(|m| err(line, format!("interval: {m}")))?;
            if d.is_zero() {
                return Err(err(line, "interval must be greater than 0".into()));
            }
            Some(d)
        }
        None => None,
    };
    let query_offset = match &g.query_offset {
        Some(s) => prom_duration(s).map_err(|m| err(line, format!("query_offset: {m}")))?,
        None => Duration::ZERO,
    };
    for name in g.labels.keys() {
        if !valid_label_name(name) {
            return Err(err(line, format!("invalid label name: {name:?}")));
        }
    }
    let mut rules = Vec::with_capacity(g.rules.len());
    let mut seen = HashSet::new();
    for (i, r) in g.rules.into_iter().enumerate() {
        let line = r.referenced.line() as usize;
        let named = r.value.alert.clone().or(r.value.record.clone());
        let rule_err = |message: String| RuleFileError {
            file: path.to_path_buf(),
            line,
            group: Some(g.name.clone()),
            rule: Some((i + 1, named.clone().unwrap_or_default())),
            message,
        };
        let expr_line = r.value.expr.as_ref().map(|e| e.referenced.line() as usize);
        let spec = check_rule(r.value, line).map_err(|(about_expr, message)| {
            let mut e = rule_err(message);
            if about_expr {
                e.line = expr_line.unwrap_or(line);
            }
            e
        })?;
        let key = (spec.name().to_string(), label_key(&spec.labels));
        if !seen.insert(key) {
            return Err(rule_err(
                "duplicate rule: another rule of this group has the same name and labels".into(),
            ));
        }
        rules.push(spec);
    }
    Ok(GroupSpec {
        file: path.to_path_buf(),
        name: g.name,
        interval,
        query_offset,
        limit: g.limit,
        labels: g.labels,
        rules,
    })
}

fn label_key(labels: &[(String, Template)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, t)| (k.clone(), t.source().to_string()))
        .collect()
}

/// Checks one rule; an error says whether it is about the expression (and so its line).
fn check_rule(r: RuleYaml, line: usize) -> Result<RuleSpec, (bool, String)> {
    let expr_text = r.expr.as_ref().map(|e| e.value.clone()).unwrap_or_default();
    if expr_text.trim().is_empty() {
        return Err((false, "field 'expr' must be set in rule".into()));
    }
    let expr = promql_parser::parser::parse(&expr_text)
        .map_err(|e| (true, format!("could not parse expression: {e}")))?;
    check_rest(r, line, expr_text, expr).map_err(|e| (false, e))
}

fn check_rest(r: RuleYaml, line: usize, expr_text: String, expr: Expr) -> Result<RuleSpec, String> {
    let mut label_texts = r.labels.clone();
    if let Some(severity) = &r.severity {
        if r.labels.contains_key("severity") {
            return Err("both 'severity' and a 'severity' label are set".into());
        }
        label_texts.insert("severity".into(), severity.clone());
    }
    let labels = templates("label", &label_texts)?;
    let kind = match (&r.record, &r.alert) {
        (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' must be set".into()),
        (None, None) => return Err("one of 'record' or 'alert' must be set".into()),
        (Some(name), None) => RuleKind::Record {
            name: check_record(&r, name)?,
        },
        (None, Some(name)) => RuleKind::Alert(Box::new(check_alert(&r, name, &expr)?)),
    };
    for (name, _) in &labels {
        if !valid_label_name(name) || name == "__name__" {
            return Err(format!("invalid label name: {name:?}"));
        }
    }
    Ok(RuleSpec {
        kind,
        expr_text,
        expr,
        labels,
        line,
    })
}

fn check_record(r: &RuleYaml, name: &str) -> Result<String, String> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(format!("invalid recording rule name: {name:?}"));
    }
    let alert_only = [
        ("annotations", !r.annotations.is_empty()),
        ("for", r.hold.is_some()),
        ("keep_firing_for", r.keep_firing_for.is_some()),
        ("recover", r.recover.is_some()),
        ("recover_for", r.recover_for.is_some()),
        ("no_data", r.no_data.is_some()),
        ("no_data_for", r.no_data_for.is_some()),
        ("severity", r.severity.is_some()),
    ];
    if let Some((field, _)) = alert_only.iter().find(|(_, set)| *set) {
        return Err(format!("invalid field '{field}' in recording rule"));
    }
    Ok(name.to_string())
}

fn check_alert(r: &RuleYaml, name: &str, expr: &Expr) -> Result<AlertSpec, String> {
    if name.is_empty() {
        return Err("alert name must not be empty".into());
    }
    let duration = |key: &str, v: &Option<String>| -> Result<Duration, String> {
        v.as_deref()
            .map_or(Ok(Duration::ZERO), prom_duration)
            .map_err(|m| format!("{key}: {m}"))
    };
    let (recover, recover_text) = match &r.recover {
        Some(text) => (Some(recovery_expr(expr, text)?), Some(text.clone())),
        None => (None, None),
    };
    let no_data = match &r.no_data {
        Some(s) => NoData::parse(s)
            .ok_or_else(|| format!("no_data: {s:?} is not one of ok, alerting, keep, nodata"))?,
        None => NoData::Ok,
    };
    if no_data != NoData::Ok && threshold_parts(expr).is_none() {
        return Err(
            "no_data needs 'expr' to be a comparison with a number (`left > 90`): \
                    its left side tells missing data from a condition that no longer holds"
                .into(),
        );
    }
    Ok(AlertSpec {
        name: name.to_string(),
        hold: duration("for", &r.hold)?,
        keep_firing_for: duration("keep_firing_for", &r.keep_firing_for)?,
        annotations: templates("annotation", &r.annotations)?,
        recover,
        recover_text,
        recover_for: duration("recover_for", &r.recover_for)?,
        no_data,
        no_data_for: duration("no_data_for", &r.no_data_for)?,
        data_expr: threshold_parts(expr).map_or_else(|| expr.clone(), |(lhs, _)| lhs),
    })
}

fn templates(
    what: &str,
    texts: &BTreeMap<String, String>,
) -> Result<Vec<(String, Template)>, String> {
    texts
        .iter()
        .map(|(k, text)| {
            Template::parse(text)
                .map(|t| (k.clone(), t))
                .map_err(|e| format!("{what} {k:?}: {e}"))
        })
        .collect()
}

/// `recover` is either an expression of its own or, when it starts with a comparison
/// operator (`< 60`), a new threshold on the left side of the rule's own comparison.
fn recovery_expr(expr: &Expr, text: &str) -> Result<Expr, String> {
    let trimmed = text.trim();
    let is_threshold = ["<", ">", "==", "!="]
        .iter()
        .any(|op| trimmed.starts_with(op));
    if !is_threshold {
        return promql_parser::parser::parse(trimmed)
            .map_err(|e| format!("recover: could not parse expression: {e}"));
    }
    let Some((lhs, _)) = threshold_parts(expr) else {
        return Err(format!(
            "recover: {trimmed:?} is a threshold, but 'expr' is not a comparison with a number \
             (write the whole recovery expression instead)"
        ));
    };
    let whole = format!("({lhs}) {trimmed}");
    promql_parser::parser::parse(&whole)
        .map_err(|e| format!("recover: could not parse {whole:?}: {e}"))
}

/// `(lhs, threshold)` when `expr` is `lhs <op> number` (without `bool`).
fn threshold_parts(expr: &Expr) -> Option<(Expr, f64)> {
    let mut e = expr;
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    let Expr::Binary(BinaryExpr {
        lhs,
        op,
        rhs,
        modifier,
    }) = e
    else {
        return None;
    };
    if !op.is_comparison_operator() || modifier.as_ref().is_some_and(|m| m.return_bool) {
        return None;
    }
    match rhs.as_ref() {
        Expr::NumberLiteral(n) => Some((*lhs.clone(), n.val)),
        _ => None,
    }
}

/// Prometheus' duration syntax: `0`, or units from `ms` to `y`, combined (`1h30m`).
pub fn prom_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    sysward_proto::units::parse_duration(s)
}

fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

impl fmt::Display for NoData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
