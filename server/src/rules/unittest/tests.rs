use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/promtool-rules")
        .join(name)
}

#[test]
fn prometheus_own_unit_tests_pass_with_native_histograms_skipped() {
    let out = run_file(&fixture("unittest.yml"));
    assert!(out.ok(), "{}", out.report());
    assert_eq!(out.skipped.len(), 6, "{:?}", out.skipped);
    assert!(out.skipped.iter().all(|s| s.contains("native histogram")));
    assert_eq!(out.passed, 23, "{}", out.report());
}

#[test]
fn the_failing_file_fails_as_promtool_fails_it() {
    let out = run_file(&fixture("failing.yml"));
    assert!(!out.ok());
    assert_eq!(out.failures.len(), 4, "{}", out.report());
    let report = out.report();
    for want in [
        "name: Failing test,\n    alertname: Test, time: 0s",
        "expr: \"test\", time: 0s,\n        exp: [{__name__=\"test\"} 1]\n        got: [{__name__=\"test\"} 0]",
        "alertname: InstanceDown, time: 5m",
        "summary=\"Instance  down\"",
        "alertname: AlwaysFiring, time: 5m",
    ] {
        assert!(report.contains(want), "missing {want:?} in\n{report}");
    }
}

#[test]
fn rule_errors_name_file_group_rule_and_time() {
    let out = run_file(&fixture("bad-rules-error-test.yml"));
    assert!(!out.ok());
    let report = out.report();
    assert!(
        report.contains("rule: joined, time: 0s, err: found duplicate series for the match group"),
        "{report}"
    );
    let out = run_file(&fixture("bad-rules-syntax-test.yml"));
    let error = out
        .error
        .expect("a rule file that does not parse stops the file");
    assert!(
        error.contains(
            "bad-rules-syntax.yml:7: group \"bad-syntax\", rule 1 \"x\": could not parse expression"
        ),
        "{error}"
    );
}

#[test]
fn our_extensions_are_tested_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cpu.yml"),
        r#"
groups:
- name: cpu
  rules:
  - alert: CpuHigh
    expr: cpu > 90
    for: 2m
    severity: critical
    recover: < 60
    recover_for: 3m
    annotations:
      summary: "CPU {{ $value | humanize }}% on {{ $labels.instance }}"
"#,
    )
    .unwrap();
    let test = r#"
rule_files: [cpu.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'cpu{instance="web1"}'
    values: "95x3 75 55 55 55 55"
  alert_rule_test:
  - eval_time: 1m
    alertname: CpuHigh
    exp_alerts: []
  - eval_time: 2m
    alertname: CpuHigh
    exp_alerts:
    - exp_labels: {instance: web1, severity: critical}
      exp_annotations: {summary: "CPU 95% on web1"}
  - eval_time: 6m
    alertname: CpuHigh
    exp_alerts:
    - exp_labels: {instance: web1, severity: critical}
      exp_annotations: {summary: "CPU 55% on web1"}
  - eval_time: 7m
    alertname: CpuHigh
    exp_alerts:
    - exp_labels: {instance: web1, severity: critical}
      exp_annotations: {summary: "CPU 55% on web1"}
  - eval_time: 8m
    alertname: CpuHigh
    exp_alerts: []
"#;
    let path = dir.path().join("cpu_test.yml");
    std::fs::write(&path, test).unwrap();
    let out = run_file(&path);
    assert!(out.ok(), "{}", out.report());
    assert_eq!(out.passed, 5);
    // The same expectations with a plain threshold would resolve at 4m: the test catches it.
    let plain = std::fs::read_to_string(dir.path().join("cpu.yml"))
        .unwrap()
        .replace("    recover: < 60\n    recover_for: 3m\n", "");
    std::fs::write(dir.path().join("cpu.yml"), plain).unwrap();
    let out = run_file(&path);
    assert_eq!(out.failures.len(), 2, "{}", out.report());
    assert!(out.failures[0].contains("time: 6m"), "{}", out.report());
    assert!(out.failures[1].contains("time: 7m"), "{}", out.report());
}

#[test]
fn malformed_test_files_are_errors_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yml");
    std::fs::write(&path, "tests:\n- interval: 1m\n  input_series: [{series: x, values: \"1+\"}]\n  promql_expr_test: [{expr: x, eval_time: 0, exp_samples: []}]\n").unwrap();
    let out = run_file(&path);
    assert!(!out.ok());
    assert!(out.report().contains("series \"x\""), "{}", out.report());
    std::fs::write(
        &path,
        "tests:\n- promql_expr_test: [{expr: '1', eval_time: 10y, exp_samples: []}]\n",
    )
    .unwrap();
    let out = run_file(&path);
    assert!(
        out.report().contains("more than 1000000 evaluations"),
        "{}",
        out.report()
    );
    std::fs::write(&path, "tests:\n- colour: red\n").unwrap();
    let out = run_file(&path);
    assert!(
        out.error.as_deref().unwrap_or("").contains("t.yml:2"),
        "{}",
        out.report()
    );
}

#[test]
fn globs_match_rule_files() {
    assert!(glob_match("*.yml", "a.yml"));
    assert!(glob_match("r?les.yml", "rules.yml"));
    assert!(!glob_match("*.yml", "a.yaml"));
    assert!(glob_match("*", ""));
}

#[test]
fn series_are_written_as_promql_writes_them() {
    let l = parse_metric("up{job=\"a\", instance=\"b\"}").unwrap();
    assert_eq!(
        (l.name(), l.get("job"), l.get("instance")),
        ("up", "a", "b")
    );
    assert_eq!(parse_metric("{job=\"a\"}").unwrap().name(), "");
    assert!(parse_metric("up{job=~\"a\"}").is_err());
    assert!(parse_metric("rate(up[1m])").is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Test files are outside input too: any text is run or refused, never a panic.
    #[test]
    fn any_test_file_is_run_or_refused_without_panic(
        series in "[a-z_{}=\",]{0,20}",
        values in "[-+_0-9xe. a-z]{0,24}",
        eval in "[0-9a-z]{0,6}",
        expr in "[a-z_()\\[\\]0-9+*> ]{0,20}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yml");
        let text = format!(
            "tests:\n- interval: 1m\n  input_series:\n  - series: '{series}'\n    values: '{values}'\n  promql_expr_test:\n  - expr: '{expr}'\n    eval_time: '{eval}'\n  alert_rule_test:\n  - eval_time: '{eval}'\n    alertname: A\n"
        );
        std::fs::write(&path, text).unwrap();
        let _ = run_file(&path).report();
    }
}
