use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/promtool-rules")
}

fn parse(text: &str) -> Result<Vec<GroupSpec>, RuleFileError> {
    parse_file(Path::new("r.yml"), text)
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn prometheus_own_rule_file_loads_unchanged() {
    let groups = load_file(&fixtures().join("rules.yml")).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].name, "alerts");
    let RuleKind::Alert(down) = &groups[0].rules[0].kind else {
        panic!("not an alert")
    };
    assert_eq!(down.name, "InstanceDown");
    assert_eq!(down.hold, Duration::from_secs(300));
    assert_eq!(groups[0].rules[0].line, 6);
    assert_eq!(groups[0].rules[0].labels[0].0, "severity");
    assert_eq!(down.annotations.len(), 2);
    let names: Vec<&str> = groups[1].rules.iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "job:test:count_over_time1m",
            "fixed_data",
            "suquery_interval_test"
        ]
    );
    // `expr: 1` is a YAML number; Prometheus reads it as the expression "1".
    assert_eq!(groups[1].rules[1].expr_text, "1");
}

#[test]
fn every_error_names_file_line_group_and_rule() {
    let cases = [
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n",
            "r.yml:5: group \"g\", rule 1 \"A\": could not parse expression",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n  - alert: B\n    expr: nosuchfn(up)\n",
            "r.yml:7: group \"g\", rule 2 \"B\": could not parse expression",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5\n",
            "r.yml:4: group \"g\", rule 1 \"A\": for: \"5\" has no unit",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - alert: A\n    expr: up == 1\n",
            "r.yml:6: group \"g\", rule 2 \"A\": duplicate rule",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    record: b\n    expr: up\n",
            "rule 1 \"A\": only one of 'record' and 'alert' must be set",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - expr: up\n",
            "rule 1 \"\": one of 'record' or 'alert' must be set",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    for: 1m\n",
            "invalid field 'for' in recording rule",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    recover: < 1\n",
            "recover: \"< 1\" is a threshold, but 'expr' is not a comparison",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up < 1\n    no_data: maybe\n",
            "no_data: \"maybe\" is not one of ok, alerting, keep, nodata",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: absent(up)\n    no_data: nodata\n",
            "no_data needs 'expr' to be a comparison",
        ),
        (
            "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
            "r.yml:4: group name \"g\" is repeated in the same file",
        ),
        (
            "groups:\n- rules: []\n",
            "r.yml:2: group name must not be empty",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: page\n    labels: {severity: x}\n",
            "both 'severity' and a 'severity' label are set",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    colour: red\n",
            "r.yml:",
        ),
        ("groups: [\n", "r.yml:"),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.contains(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let got = error("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    colour: red\n");
    assert!(got.starts_with("r.yml:6"), "{got}");
    assert!(got.contains("colour"), "{got}");
}

#[test]
fn the_seed_thresholds_are_written_directly() {
    let text = r#"
groups:
- name: host
  rules:
  - alert: HostCpuHigh
    expr: cpu_busy_percent > 90
    for: 2m
    severity: critical
    recover: < 60
    recover_for: 3m
  - alert: HostCpuHigh
    expr: cpu_busy_percent > 70
    for: 5m
    severity: warning
    recover: < 60
    recover_for: 3m
    no_data: nodata
    no_data_for: 10m
"#;
    let groups = parse(text).unwrap();
    let rules = &groups[0].rules;
    let RuleKind::Alert(critical) = &rules[0].kind else {
        panic!()
    };
    assert_eq!(critical.hold, Duration::from_secs(120));
    assert_eq!(critical.recover_for, Duration::from_secs(180));
    assert_eq!(
        critical.recover.as_ref().map(|e| e.to_string()),
        Some("(cpu_busy_percent) < 60".to_string())
    );
    assert_eq!(rules[0].labels[0].0, "severity");
    assert_eq!(rules[0].labels[0].1.source(), "critical");
    let RuleKind::Alert(warning) = &rules[1].kind else {
        panic!()
    };
    assert_eq!(warning.no_data, NoData::NoData);
    assert_eq!(warning.no_data_for, Duration::from_secs(600));
    assert_eq!(warning.data_expr.to_string(), "cpu_busy_percent");
}

#[test]
fn a_recovery_expression_of_its_own_is_kept_as_written() {
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: errors > 5\n    recover: errors_ok == 1\n";
    let groups = parse(text).unwrap();
    let RuleKind::Alert(a) = &groups[0].rules[0].kind else {
        panic!()
    };
    assert_eq!(a.recover.as_ref().unwrap().to_string(), "errors_ok == 1");
}

#[test]
fn durations_follow_prometheus() {
    assert_eq!(prom_duration("0").unwrap(), Duration::ZERO);
    assert_eq!(prom_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(
        prom_duration("2m59s999ms").unwrap(),
        Duration::from_millis(179_999)
    );
    assert!(prom_duration("5").is_err());
    assert!(prom_duration("1x").is_err());
}

proptest! {
    #[test]
    fn any_text_is_refused_or_accepted_without_panic(text in "(?s).{0,300}") {
        let _ = parse(&text);
    }

    #[test]
    fn rule_shaped_text_never_panics(
        key in prop::sample::select(vec!["alert", "record", "expr", "for", "recover", "no_data", "labels", "severity"]),
        value in "[ -~]{0,20}",
        indent in 0usize..6,
    ) {
        let text = format!("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up > 1\n{}{key}: {value}\n", " ".repeat(indent));
        let _ = parse(&text);
    }
}
