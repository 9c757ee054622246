//! A bad config file: `check-config` and `run` both name the file, line and key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sysward_tests::Agent;

fn check(extra_and_server: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(dir.path(), "c", "https://127.0.0.1:1", "");
    std::fs::write(&agent.config, extra_and_server).unwrap();
    let path = agent.config.display().to_string();
    let check = agent.cmd(&["check-config"]);
    assert!(!check.status.success());
    let run = agent.cmd(&["run"]);
    assert!(!run.status.success());
    let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
    let run_err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(check_err.contains(&path), "{check_err}");
    assert!(run_err.contains(&path), "{run_err}");
    (check_err, run_err)
}

#[test]
fn unknown_key() {
    let (check, run) = check("[server]\nurl = \"https://x:1\"\n[agent]\nstat_dir = \"/tmp\"\n");
    for err in [check, run] {
        assert!(err.contains(":4: key `stat_dir`"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }
}

#[test]
fn bad_duration() {
    let (check, run) =
        check("[server]\nurl = \"https://x:1\"\n\n[intervals]\nstandard = \"1 fortnight\"\n");
    for err in [check, run] {
        assert!(err.contains(":5"), "{err}");
        assert!(err.contains("1 fortnight"), "{err}");
    }
}

#[test]
fn missing_server_url() {
    let (check, run) = check("[server]\n\n[agent]\nstate_dir = \"/tmp/x\"\n");
    for err in [check, run] {
        assert!(
            err.contains(":1") && err.contains("missing field `url`"),
            "{err}"
        );
    }
}

#[test]
fn good_config_passes() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        "[collectors.load]\ninterval = \"15s\"\n",
    );
    let out = agent.cmd(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}
