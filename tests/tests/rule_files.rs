//! `sysward-server check rules` and `test rules` beside Debian's promtool on the same files:
//! Prometheus' own rule tests pass and fail as promtool passes and fails them, our shipped
//! rules pass their own tests, and every refusal names the file, line, group and rule.
//! Without promtool the comparisons print NOT RUN and pass, except under CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sysward_tests::bin;

const PROMTOOL: &str = "/usr/bin/promtool";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/promtool-rules")
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/rules")
}

fn ours(args: &[&str], dir: &Path) -> Output {
    Command::new(bin("sysward-server"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn promtool(args: &[&str], dir: &Path) -> Option<Output> {
    if !Path::new(PROMTOOL).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{PROMTOOL} is missing under CI: .ci/run installs the prometheus package"
        );
        println!("NOT RUN: {PROMTOOL} is missing (apt-get install prometheus)");
        return None;
    }
    Some(
        Command::new(PROMTOOL)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn prometheus_rule_tests_pass_and_fail_as_promtool_says() {
    let dir = fixtures();
    let passing = ours(&["test", "rules", "unittest.yml"], &dir);
    assert!(passing.status.success(), "{}", text(&passing));
    assert!(text(&passing).contains("SKIPPED 6"), "{}", text(&passing));
    // Debian's promtool 2.42 predates the native-histogram fields of unittest.yml, so the
    // comparison is on the files both can read.
    for (file, wants) in [
        (
            "failing.yml",
            &[
                "alertname: InstanceDown, time: 5m",
                "expr: \"test\", time: 0s",
            ][..],
        ),
        (
            "bad-rules-error-test.yml",
            &["rule: joined, time: 0s, err: found duplicate series"][..],
        ),
        (
            "bad-rules-syntax-test.yml",
            &["bad-rules-syntax.yml:7: group \"bad-syntax\", rule 1 \"x\""][..],
        ),
    ] {
        let out = ours(&["test", "rules", file], &dir);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", text(&out));
        for want in wants {
            assert!(
                text(&out).contains(want),
                "{file}: no {want:?} in\n{}",
                text(&out)
            );
        }
        if let Some(peer) = promtool(&["test", "rules", file], &dir) {
            assert_eq!(
                peer.status.code(),
                Some(1),
                "promtool on {file}: {}",
                text(&peer)
            );
        }
    }
}

#[test]
fn rule_files_are_checked_as_promtool_checks_them() {
    let dir = fixtures();
    for (file, ok) in [
        ("rules.yml", true),
        ("rules-bad.yml", false),
        ("bad-rules-syntax.yml", false),
        ("bad-rules-error.yml", true),
    ] {
        let out = ours(&["check", "rules", file], &dir);
        assert_eq!(out.status.success(), ok, "{file}: {}", text(&out));
        if let Some(peer) = promtool(&["check", "rules", file], &dir) {
            assert_eq!(
                peer.status.success(),
                ok,
                "promtool on {file}: {}",
                text(&peer)
            );
        }
    }
    let out = ours(&["check", "rules", "rules-bad.yml"], &dir);
    assert!(
        text(&out).contains("rules-bad.yml:6: group \"alerts\", rule 1 \"InstanceDown\": annotation \"summary\": template: 1:13: undefined variable \"$label\""),
        "{}",
        text(&out)
    );
}

#[test]
fn the_shipped_rules_pass_their_own_tests() {
    let dir = shipped();
    let out = ours(&["check", "rules", "host.yml"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("23 rules found (14 alerting, 9 recording)"),
        "{}",
        text(&out)
    );
    let out = ours(&["check", "rules", "server.yml"], &dir);
    assert!(
        text(&out).contains("7 rules found (7 alerting, 0 recording)"),
        "{}",
        text(&out)
    );
    let out = ours(
        &[
            "test",
            "rules",
            "host_test.yml",
            "anomaly_test.yml",
            "server_test.yml",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("SUCCESS").count(), 3, "{}", text(&out));
}

#[test]
fn a_changed_threshold_fails_the_shipped_tests() {
    // The tests would catch a regression: recovery at 70 instead of 60 resolves the CPU
    // alert earlier than host_test.yml expects.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["host.yml", "host_test.yml"] {
        std::fs::copy(shipped().join(f), tmp.path().join(f)).unwrap();
    }
    let rules = std::fs::read_to_string(tmp.path().join("host.yml")).unwrap();
    std::fs::write(
        tmp.path().join("host.yml"),
        rules.replace("recover: < 60", "recover: < 40"),
    )
    .unwrap();
    let out = ours(&["test", "rules", "host_test.yml"], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("alertname: HostCpuHigh, time: 14m"),
        "{}",
        text(&out)
    );
}
