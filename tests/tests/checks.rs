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
