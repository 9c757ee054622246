//! Unit tests of rules in `promtool test rules`' format: input series in the expanding
//! notation, alert and expression expectations at evaluation times.
//!
//! The run follows promtool's: every group is evaluated at `0, evaluation_interval, ...` up
//! to the last time any expectation names; after the evaluation at `ts`, the alert
//! expectations with `ts <= eval_time < ts + evaluation_interval` compare the rules' firing
//! alerts; expression expectations are queried once all evaluations are done. Native
//! histograms are out of scope: such series and expectations are skipped and counted.

pub mod series;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use promql_parser::parser::{Expr, VectorSelector};
use serde::Deserialize;

use super::{AlertState, Group, MemoryStorage, RuleEnv, RuleKind, file::prom_duration, load_file};
use crate::query::{Labels, MemorySource, instant_query};

/// Evaluations one test group may ask for (a year of minutes is half of it): a typo in an
/// `eval_time` must not run for hours.
const MAX_EVALUATIONS: i64 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    histogram: Option<String>,
}

/// How one test file went.
#[derive(Debug, Default)]
pub struct FileOutcome {
    pub path: PathBuf,
    /// Why the file could not run at all (unreadable, bad rules).
    pub error: Option<String>,
    /// One entry per failed expectation, promtool-style.
    pub failures: Vec<String>,
    /// Expectations and series skipped, with why.
    pub skipped: Vec<String>,
    pub passed: usize,
}

impl FileOutcome {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.failures.is_empty()
    }

    /// The report printed by `sysward-server test rules`.
    pub fn report(&self) -> String {
        let mut out = format!("Unit Testing:  {}\n", self.path.display());
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  FAILED:\n{e}");
        } else if !self.failures.is_empty() {
            let _ = writeln!(out, "  FAILED:");
            for f in &self.failures {
                let _ = writeln!(out, "{f}");
            }
        } else {
            let _ = writeln!(out, "  SUCCESS");
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "  SKIPPED {}:", self.skipped.len());
            for s in &self.skipped {
                let _ = writeln!(out, "    {s}");
            }
        }
        out
    }
}

/// Runs one test file.
pub fn run_file(path: &Path) -> FileOutcome {
    let mut outcome = FileOutcome {
        path: path.to_path_buf(),
        ..FileOutcome::default()
    };
    if let Err(e) = run_into(path, &mut outcome) {
        outcome.error = Some(e);
    }
    outcome
}

fn run_into(path: &Path, outcome: &mut FileOutcome) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("  {}: {e}", path.display()))?;
    let file: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        let first = super::file::first_line(&e.to_string());
        format!("  {}:{line}: {first}", path.display())
    })?;
    let interval = duration_ms(file.evaluation_interval.as_deref().unwrap_or("1m"))
        .map_err(|e| format!("  evaluation_interval: {e}"))?;
    if interval <= 0 {
        return Err("  evaluation_interval must be greater than 0".into());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let groups = load_groups(dir, &file)?;
    for (i, test) in file.tests.iter().enumerate() {
        let mut run = GroupRun {
            test,
            interval,
            fuzzy: file.fuzzy_compare,
            outcome,
            name: if test.name.is_empty() {
                format!("test {}", i + 1)
            } else {
                test.name.clone()
            },
        };
        run.run(groups.clone());
    }
    Ok(())
}

fn load_groups(dir: &Path, file: &TestFile) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for name in &file.rule_files {
        for path in rule_paths(dir, name)? {
            let specs = load_file(&path).map_err(|e| format!("  {e}"))?;
            groups.extend(specs.into_iter().map(Group::new));
        }
    }
    // `group_eval_order` first, in its order; the others after, as loaded.
    let position = |g: &Group| {
        file.group_eval_order
            .iter()
            .position(|n| *n == g.spec.name)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by_key(position);
    Ok(groups)
}

/// A rule file name, relative to the test file; `*` and `?` in the last part match files.
fn rule_paths(dir: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    let path = dir.join(name);
    let Some(pattern) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![path]);
    };
    if !pattern.contains(['*', '?']) {
        return Ok(vec![path]);
    }
    let parent = path.parent().unwrap_or(dir);
    let entries = std::fs::read_dir(parent).map_err(|e| format!("  {}: {e}", parent.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| glob_match(pattern, n))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    Ok(found)
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // match[i][j]: the first i pattern characters match the first j name characters.
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for pc in p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match pc {
                '*' => row[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && row[j - 1],
                c => j > 0 && row[j - 1] && n[j - 1] == c,
            };
        }
        row = next;
    }
    row[n.len()]
}

fn duration_ms(text: &str) -> Result<i64, String> {
    prom_duration(text).map(|d| d.as_millis() as i64)
}

struct GroupRun<'a> {
    test: &'a TestGroup,
    interval: i64,
    fuzzy: bool,
    outcome: &'a mut FileOutcome,
    name: String,
}

impl<'a> GroupRun<'a> {
    fn run(&mut self, mut groups: Vec<Group>) {
        let env = RuleEnv {
            external_labels: self.test.external_labels.clone(),
            external_url: self.test.external_url.clone(),
            ..RuleEnv::default()
        };
        let mut storage = match self.load_series() {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        let Ok(alert_tests) = self.alert_times() else {
            return;
        };
        let Ok(expr_tests) = self.expr_times() else {
            return;
        };
        let last = alert_tests
            .iter()
            .map(|(t, _)| *t)
            .chain(expr_tests.iter().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        if last / self.interval > MAX_EVALUATIONS {
            return self.fail(format!(
                "    the last eval_time ({}) needs more than {MAX_EVALUATIONS} evaluations at evaluation_interval {}",
                show_ms(last),
                show_ms(self.interval)
            ));
        }
        let mut next_alert = 0;
        let mut ts = 0;
        while ts <= last {
            if !self.evaluate(&mut groups, &mut storage, &env, ts) {
                return;
            }
            while next_alert < alert_tests.len() && alert_tests[next_alert].0 < ts + self.interval {
                let (at, test) = alert_tests[next_alert];
                self.check_alerts(&groups, test, at);
                next_alert += 1;
            }
            ts += self.interval;
        }
        for (at, test) in expr_tests {
            self.check_expr(&storage, test, at);
        }
    }

    fn fail(&mut self, message: String) {
        self.outcome
            .failures
            .push(format!("    name: {},\n{message}", self.name));
    }

    fn load_series(&mut self) -> Result<MemoryStorage, String> {
        let step = match &self.test.interval {
            Some(text) => duration_ms(text).map_err(|e| format!("    interval: {e}"))?,
            None => self.interval,
        };
        let mut source = MemorySource::new();
        for input in &self.test.input_series {
            if input.values.contains("{{") {
                self.outcome.skipped.push(format!(
                    "{}: series {}: native histogram",
                    self.name, input.series
                ));
                continue;
            }
            let labels = parse_metric(&input.series)
                .map_err(|e| format!("    series {:?}: {e}", input.series))?;
            let values = series::expand_values(&input.values)
                .map_err(|e| format!("    series {:?}: {e}", input.series))?;
            let points: Vec<(i64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as i64 * step, v)))
                .collect();
            source.add(labels, &points);
        }
        Ok(MemoryStorage(source))
    }

    fn alert_times(&mut self) -> Result<Vec<(i64, &'a AlertTest)>, ()> {
        let mut out = Vec::new();
        let group: &'a TestGroup = self.test;
        for test in &group.alert_rule_test {
            match duration_ms(&test.eval_time) {
                Ok(t) => out.push((t, test)),
                Err(e) => {
                    self.fail(format!("    alertname: {}, eval_time: {e}", test.alertname));
                    return Err(());
                }
            }
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }

    fn expr_times(&mut self) -> Result<Vec<(i64, &'a ExprTest)>, ()> {
        let mut out = Vec::new();
        let group: &'a TestGroup = self.test;
        for test in &group.promql_expr_test {
            if test.exp_samples.iter().any(|s| s.histogram.is_some()) {
                self.outcome.skipped.push(format!(
                    "{}: expr {:?} at {}: native histogram",
                    self.name, test.expr, test.eval_time
                ));
                continue;
            }
            match duration_ms(&test.eval_time) {
                Ok(t) => out.push((t, test)),
                Err(e) => {
                    self.fail(format!("    expr: {:?}, eval_time: {e}", test.expr));
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    /// Evaluates every group at `ts`; false (and a failure) when a rule failed.
    fn evaluate(
        &mut self,
        groups: &mut [Group],
        storage: &mut MemoryStorage,
        env: &RuleEnv,
        ts: i64,
    ) -> bool {
        let mut errors = Vec::new();
        for group in groups.iter_mut() {
            group.evaluate(storage, env, ts);
            for (rule, state) in group.spec.rules.iter().zip(&group.states) {
                if let Some(e) = &state.last_error {
                    errors.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        rule.name(),
                        show_ms(ts)
                    ));
                }
            }
        }
        if errors.is_empty() {
            return true;
        }
        self.fail(errors.join("\n"));
        false
    }

    fn check_alerts(&mut self, groups: &[Group], test: &AlertTest, at: i64) {
        let mut got: Vec<(Labels, Labels)> = Vec::new();
        for group in groups {
            for (rule, state) in group.spec.rules.iter().zip(&group.states) {
                let RuleKind::Alert(spec) = &rule.kind else {
                    continue;
                };
                if spec.name != test.alertname {
                    continue;
                }
                for a in state.alerting.alerts.values() {
                    if a.state == AlertState::Firing {
                        got.push((a.labels.clone(), Labels::new(a.annotations.clone())));
                    }
                }
            }
        }
        let mut exp: Vec<(Labels, Labels)> = test
            .exp_alerts
            .iter()
            .map(|a| {
                let labels = Labels::new(a.exp_labels.clone().into_iter().collect())
                    .with("alertname", &test.alertname);
                let notes = Labels::new(a.exp_annotations.clone().into_iter().collect());
                (labels, notes)
            })
            .collect();
        got.sort();
        exp.sort();
        if got == exp {
            self.outcome.passed += 1;
            return;
        }
        self.fail(format!(
            "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            test.alertname,
            show_ms(at),
            show_alerts(&exp),
            show_alerts(&got)
        ));
    }

    fn check_expr(&mut self, storage: &MemoryStorage, test: &ExprTest, at: i64) {
        let options = RuleEnv::default().query;
        let got = match instant_query(&storage.0, &test.expr, at, &options) {
            Ok(out) => match super::alerting::samples_of(out.value).map_err(|e| e.to_string()) {
                Ok(s) => s,
                Err(e) => return self.expr_error(test, at, &e),
            },
            Err(e) => return self.expr_error(test, at, &e.to_string()),
        };
        let mut exp = Vec::new();
        for s in &test.exp_samples {
            match parse_metric(&s.labels) {
                Ok(labels) => exp.push((labels, s.value.unwrap_or(0.0))),
                Err(e) => {
                    return self.expr_error(test, at, &format!("labels {:?}: {e}", s.labels));
                }
            }
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        if same_samples(&exp, &got, self.fuzzy) {
            self.outcome.passed += 1;
            return;
        }
        self.fail(format!(
            "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
            test.expr,
            show_ms(at),
            show_samples(&exp),
            show_samples(&got)
        ));
    }

    fn expr_error(&mut self, test: &ExprTest, at: i64, e: &str) {
        self.fail(format!(
            "    expr: {:?}, time: {}, err: {e}",
            test.expr,
            show_ms(at)
        ));
    }
}

fn same_samples(exp: &[(Labels, f64)], got: &[(Labels, f64)], fuzzy: bool) -> bool {
    exp.len() == got.len()
        && exp.iter().zip(got).all(|((el, ev), (gl, gv))| {
            el == gl && (ev == gv || (ev.is_nan() && gv.is_nan()) || (fuzzy && almost(*ev, *gv)))
        })
}

fn almost(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// A series written as PromQL writes one: `name{label="value", ...}`, `{label="value"}`.
pub fn parse_metric(text: &str) -> Result<Labels, String> {
    if text.trim().is_empty() {
        return Ok(Labels::default());
    }
    let expr = promql_parser::parser::parse(text)?;
    let Expr::VectorSelector(VectorSelector {
        name,
        matchers,
        offset: None,
        at: None,
    }) = expr
    else {
        return Err(format!(
            "{text:?} is not a series (name{{label=\"value\"}})"
        ));
    };
    let mut pairs = Vec::new();
    if let Some(name) = name {
        pairs.push(("__name__".to_string(), name));
    }
    for m in matchers.matchers {
        if !matches!(m.op, promql_parser::label::MatchOp::Equal) {
            return Err(format!("{text:?}: a series has only `=` labels"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::new(pairs))
}

/// A time as Prometheus writes durations: `0s`, `5m`, `1d`, `2m59s999ms`.
fn show_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms.unsigned_abs();
    let mut out = String::from(if ms < 0 { "-" } else { "" });
    for (unit, size) in [
        ("y", 31_536_000_000),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

fn show_labels(l: &Labels) -> String {
    let inner: Vec<String> = l
        .pairs()
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn show_alerts(list: &[(Labels, Labels)]) -> String {
    if list.is_empty() {
        return "[]".into();
    }
    let mut out = String::from("[");
    for (i, (labels, notes)) in list.iter().enumerate() {
        let _ = write!(
            out,
            "\n            {i}:\n              Labels:{}\n              Annotations:{}",
            show_labels(labels),
            show_labels(notes)
        );
    }
    out.push_str("\n            ]");
    out
}

fn show_samples(list: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|(l, v)| format!("{} {}", show_labels(l), crate::query::format_value(*v)))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests;
