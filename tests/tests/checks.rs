//! Health checks from `agent.toml`, run by the real agent, reach the server as samples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use sysward_tests::{Agent, Server, poll};

/// A directory the agent's trust rule accepts: no parent may be writable by others, which
/// rules out the world-writable /tmp that tempfile uses (and that a checkout or
/// CARGO_TARGET_DIR may sit in). The user's own cache directory qualifies.
fn trusted_scratch() -> tempfile::TempDir {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let base = std::path::Path::new(&home).join(".cache/sysward-tests");
    fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A script the agent will trust: root-owned, 0755, in a trusted directory.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn script_checks_report_state_and_perfdata_to_the_server() {
    let scratch = trusted_scratch();
    let ok = script(
        scratch.path(),
        "check_disk",
        "echo \"DISK OK - free 42% | 'free'=42%;20:;10:;0;100 'used'=3GB\"\nexit 0",
    );
    let bad = script(
        scratch.path(),
        "check_db",
        "echo 'DB CRITICAL - no answer'\nexit 2",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let checks = format!(
        "[intervals]\ncritical = \"1s\"\n\n[[checks.script]]\nname = \"disk\"\ncommand = \"{ok}\"\n\n[[checks.script]]\nname = \"db\"\ncommand = \"{bad}\"\ntimeout = \"5s\"\n"
    );
    let check = Agent::configure(dir.path(), "checked", &server.url(), &checks);
    let out = check.cmd(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut agent = check;
    agent.enroll(&server.token(&[]));
    agent.start();

    let status = |check: &str| server.latest(&format!("sysward_check_status{{check=\"{check}\"}}"));
    poll(Duration::from_secs(30), "the disk check's status", || {
        status("disk")
    });
    assert_eq!(status("disk"), Some(0.0));
    poll(Duration::from_secs(30), "the db check's status", || {
        status("db").filter(|v| *v == 2.0)
    });
    let free = server.latest("sysward_check_perfdata{check=\"disk\",label=\"free\"}");
    assert_eq!(free, Some(42.0));
    // 3GB in base units, as the Nagios plugins count them (powers of 1024).
    let used = server.latest("sysward_check_perfdata{check=\"disk\",label=\"used\"}");
    assert_eq!(used, Some(3.0 * 1024.0 * 1024.0 * 1024.0));
    assert!(
        server
            .latest("sysward_check_duration_seconds{check=\"db\"}")
            .is_some()
    );
}

#[test]
fn an_untrusted_script_is_refused_by_check_config() {
    let scratch = trusted_scratch();
    let path = script(scratch.path(), "check_open", "exit 0");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        &format!("[[checks.script]]\nname = \"open\"\ncommand = \"{path}\"\n"),
    );
    let out = agent.cmd(&["check-config"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("open") && err.contains("writable"), "{err}");
}

/// A scratch directory that anyone may write to, inside a trusted one: scripts in it are
/// refused.
fn world_writable(scratch: &Path) -> std::path::PathBuf {
    let open = scratch.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    open
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn checks_test_runs_each_check_once_and_says_why_a_script_was_refused() {
    let scratch = trusted_scratch();
    let ok = script(
        scratch.path(),
        "check_ok",
        "echo \"FINE - all good | 'lag'=250ms;500;1000\"\nexit 0",
    );
    let warn = script(scratch.path(), "check_warn", "echo 'SLOW - 3 late'\nexit 1");
    let open = world_writable(scratch.path());
    let refused = script(&open, "check_open", "exit 0");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        &format!(
            "[[checks.script]]\nname = \"fine\"\ncommand = \"{ok}\"\n\n\
             [[checks.script]]\nname = \"slow\"\ncommand = \"{warn}\"\n\n\
             [[checks.script]]\nname = \"open\"\ncommand = \"{refused}\"\n"
        ),
    );

    let out = agent.cmd(&["checks", "test"]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused check fails the run: {text}"
    );
    assert!(
        text.contains("fine (script): OK\n  output: FINE - all good\n"),
        "{text}"
    );
    assert!(
        text.contains("sysward_check_perfdata{check=\"fine\",label=\"lag\"} 0.25"),
        "{text}"
    );
    assert!(
        text.contains("slow (script): WARNING\n  output: SLOW - 3 late\n"),
        "{text}"
    );
    assert!(text.contains("  duration: "), "{text}");
    let why = format!(
        "open (script): REFUSED\n  why: refusing to run it: directory {}",
        open.display()
    );
    assert!(text.contains(&why), "{text}");
    assert!(text.contains("world-writable"), "{text}");

    let out = agent.cmd(&["checks", "test", "slow"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("slow (script): WARNING") && !text.contains("fine"),
        "{text}"
    );

    let out = agent.cmd(&["checks", "test", "fine", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "nothing runs when a name is wrong");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no check named \"nosuch\"") && err.contains("fine, slow, open"),
        "{err}"
    );
}

#[test]
fn check_config_names_the_check_and_the_world_writable_directory() {
    let scratch = trusted_scratch();
    let open = world_writable(scratch.path());
    let path = script(&open, "check_here", "exit 0");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        &format!("[[checks.script]]\nname = \"here\"\ncommand = \"{path}\"\n"),
    );
    let out = agent.cmd(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("\"here\""), "{err}");
    assert!(
        err.contains(&format!("directory {} is world-writable", open.display())),
        "{err}"
    );
}

#[test]
fn collect_once_with_checks_prints_the_checks_samples_too() {
    let scratch = trusted_scratch();
    let ok = script(scratch.path(), "check_q", "echo 'Q OK | depth=7'\nexit 0");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        &format!("[[checks.script]]\nname = \"queue\"\ncommand = \"{ok}\"\n"),
    );
    let without = stdout(&agent.cmd(&["collect", "--once"]));
    assert!(without.contains("node_load1 "), "{without}");
    assert!(!without.contains("sysward_check_"), "{without}");
    let out = agent.cmd(&["collect", "--once", "--checks"]);
    let with = stdout(&out);
    assert!(with.contains("node_load1 "), "{with}");
    assert!(
        with.contains("sysward_check_status{check=\"queue\"} 0\n"),
        "{with}"
    );
    assert!(
        with.contains("sysward_check_perfdata{check=\"queue\",label=\"depth\"} 7\n"),
        "{with}"
    );
}

#[test]
fn a_fresh_agent_reports_checks_and_collectors_of_long_intervals_at_once() {
    let scratch = trusted_scratch();
    let ok = script(scratch.path(), "check_up", "echo 'UP'\nexit 0");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    // Every tier a minute or more: with phases alone, the first reports could come up
    // to a minute (an hour for the static tier) after the start.
    let config = format!(
        "[intervals]\ncritical = \"1m\"\nstandard = \"1m\"\nintensive = \"10m\"\nstatic = \"1h\"\n\n\
         [[checks.script]]\nname = \"up\"\ncommand = \"{ok}\"\n"
    );
    let mut agent = Agent::configure(dir.path(), "fresh", &server.url(), &config);
    agent.enroll(&server.token(&[]));
    agent.start();
    poll(Duration::from_secs(20), "the check's first status", || {
        server.latest("sysward_check_status{check=\"up\"}")
    });
    poll(
        Duration::from_secs(20),
        "the load collector's first sample",
        || server.latest("node_load1"),
    );
}

/// The README's first check example installs its script in /usr/local/lib/sysward/: a
/// script there must pass the trust rule on a stock system. Writing there needs root;
/// as another user the test has nothing to install and says so.
#[test]
fn a_script_in_usr_local_lib_sysward_runs() {
    // /proc/self belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap());
    if euid != 0 {
        let why = "not root: cannot install into /usr/local/lib/sysward";
        assert!(std::env::var_os("CI").is_none(), "{why}; CI runs as root");
        eprintln!("NOT RUN: {why}");
        return;
    }
    let lib = Path::new("/usr/local/lib/sysward");
    let made = !lib.exists();
    fs::create_dir_all(lib).unwrap();
    if made {
        fs::set_permissions(lib, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let name = format!("check_sysward_test_{}", std::process::id());
    let path = script(lib, &name, "echo 'BACKUP OK | age=60s'\nexit 0");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::configure(
        dir.path(),
        "c",
        "https://127.0.0.1:1",
        &format!("[[checks.script]]\nname = \"backup_age\"\ncommand = \"{path}\"\n"),
    );
    let config_ok = agent.cmd(&["check-config"]);
    let run = agent.cmd(&["checks", "test"]);
    let _ = fs::remove_file(&path);
    if made {
        let _ = fs::remove_dir(lib);
    }
    assert!(
        config_ok.status.success(),
        "{}",
        String::from_utf8_lossy(&config_ok.stderr)
    );
    let text = stdout(&run);
    assert!(
        text.contains("backup_age (script): OK\n  output: BACKUP OK\n"),
        "{text}"
    );
}

/// A failing check's result reaches `/api/v1/events` and `/api/v1/checks` with its state,
/// output and host; both endpoints want a token and refuse a bad time.
#[test]
fn check_results_are_served_by_the_events_and_checks_endpoints() {
    let scratch = trusted_scratch();
    let fire = script(
        scratch.path(),
        "check_fire",
        "echo 'CRITICAL - disk on fire'\nexit 2",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let config = format!(
        "[intervals]\ncritical = \"1s\"\n\n[[checks.script]]\nname = \"fire\"\ncommand = \"{fire}\"\n"
    );
    let mut agent = Agent::configure(dir.path(), "burning", &server.url(), &config);
    let id = agent.enroll(&server.token(&[]));
    agent.start();
    let token = server.api_token("read", "console", &[]);

    let checks = poll(
        Duration::from_secs(30),
        "the check in /api/v1/checks",
        || {
            let (status, body) = server.prom_get(&token, &format!("/api/v1/checks?agent_id={id}"));
            assert_eq!(status, 200, "{body}");
            let list = body["data"].as_array()?.clone();
            (!list.is_empty()).then_some(list)
        },
    );
    assert_eq!(checks.len(), 1, "{checks:?}");
    let check = &checks[0];
    assert_eq!(check["agent_id"], id.as_str());
    assert_eq!(check["instance"], "burning");
    assert_eq!(check["check"], "fire");
    assert_eq!(check["state"], "CRITICAL");
    assert_eq!(check["output"], "CRITICAL - disk on fire");
    let (since, last) = (
        check["since"].as_str().unwrap(),
        check["last"].as_str().unwrap(),
    );
    // RFC 3339 in UTC: the same width, so text order is time order.
    assert!(since.ends_with('Z') && since <= last, "{since} {last}");

    let results = poll(
        Duration::from_secs(30),
        "two results in /api/v1/events",
        || {
            let (status, body) = server.prom_get(&token, "/api/v1/events?check=fire&limit=2");
            assert_eq!(status, 200, "{body}");
            let list = body["data"].as_array()?.clone();
            (list.len() == 2).then_some(list)
        },
    );
    let newest = &results[0];
    assert_eq!(newest["agent_id"], id.as_str());
    assert_eq!(newest["instance"], "burning");
    assert_eq!(newest["state"], "CRITICAL");
    assert_eq!(newest["output"], "CRITICAL - disk on fire");
    assert!(newest["hard"].is_boolean(), "{newest}");
    assert!(newest["time"].as_str().unwrap().ends_with('Z'), "{newest}");
    assert!(
        newest["ts"].as_f64().unwrap() >= results[1]["ts"].as_f64().unwrap(),
        "newest first: {results:?}"
    );
    // A window in the future holds nothing; other filters exclude it.
    for path in [
        "/api/v1/events?since=4000000000".to_string(),
        "/api/v1/events?check=other".to_string(),
        "/api/v1/checks?agent_id=nobody".to_string(),
    ] {
        let (status, body) = server.prom_get(&token, &path);
        assert_eq!(
            (status, body["data"].clone()),
            (200, serde_json::json!([])),
            "{path}"
        );
    }

    for path in ["/api/v1/events", "/api/v1/checks"] {
        let (status, body) = server.prom_get("", path);
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["errorType"], "unauthorized", "{path}");
    }
    let (status, body) = server.prom_get(&token, "/api/v1/events?since=yesterday");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"].as_str().unwrap().contains("\"since\""),
        "{body}"
    );
}

/// A failing check's output reaches its alert: `checkOutput` in an annotation reads the
/// check's latest result from the store.
#[test]
fn a_failing_checks_output_is_in_its_alert() {
    let scratch = trusted_scratch();
    let fire = script(
        scratch.path(),
        "check_fire",
        "echo 'CRITICAL - disk on fire'\nexit 2",
    );
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rules")).unwrap();
    fs::write(
        dir.path().join("rules/checks.yml"),
        "groups:\n- name: checks\n  rules:\n  - alert: CheckCritical\n    expr: sysward_check_status == 2\n    annotations:\n      output: \"{{ $labels.check }}: {{ checkOutput $labels.agent_id $labels.check }}\"\n",
    )
    .unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    let config = format!(
        "[intervals]\ncritical = \"1s\"\n\n[[checks.script]]\nname = \"fire\"\ncommand = \"{fire}\"\n"
    );
    let mut agent = Agent::configure(dir.path(), "burning", &server.url(), &config);
    agent.enroll(&server.token(&[]));
    agent.start();
    let alert = poll(Duration::from_secs(30), "CheckCritical firing", || {
        let (status, body) = server.prom_get(sysward_tests::ADMIN_TOKEN, "/api/v1/alerts");
        assert_eq!(status, 200, "{body}");
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["labels"]["check"], "fire");
    assert_eq!(
        alert["annotations"]["output"], "fire: CRITICAL - disk on fire",
        "{alert}"
    );
}
