//! The README's first command, as a new user runs it: `sysward-server quickstart` starts a
//! server and the real agent, and the commands it prints work as printed: the curl reads
//! return the agent's samples and `agents list` shows the agent. Ctrl-C stops both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use sysward_tests::{bin, free_port, poll};

/// Runs one printed command line with the shell, as a user pasting it would.
fn sh(line: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(line).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

#[test]
fn quickstart_runs_and_its_printed_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("qs");
    let mut child = Command::new(bin("sysward-server"))
        .arg("quickstart")
        .arg("--dir")
        .arg(&qs)
        .arg("--port")
        .arg(free_port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    poll(
        Duration::from_secs(60),
        "the quickstart's instructions",
        || {
            printed.extend(rx.try_iter());
            printed.iter().any(|l| l.contains("Ctrl-C")).then_some(())
        },
    );
    let commands: Vec<String> = printed
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl ") || l.contains(" agents list"))
        .map(str::to_string)
        .collect();
    assert_eq!(commands.len(), 3, "{printed:#?}");
    for curl in commands.iter().filter(|c| c.starts_with("curl ")) {
        // The agent sends its first batch within seconds of starting.
        let body = poll(Duration::from_secs(60), curl, || {
            let (ok, body) = sh(&format!("{curl} --silent --fail"));
            (ok && body.contains("node_load1") && body.contains("\"agent_id\"")).then_some(body)
        });
        assert!(body.contains("\"status\":\"success\""), "{body}");
    }
    let list = commands
        .iter()
        .find(|c| c.contains(" agents list"))
        .unwrap();
    let (ok, agents) = sh(list);
    assert!(ok && agents.contains("approved"), "{agents}");
    // The console's address and login, as printed, sign in.
    let console = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("Console: "))
        .unwrap_or_else(|| panic!("no console line: {printed:#?}"));
    let (ui, login) = console.split_once(' ').unwrap();
    let password = login.trim().strip_prefix("user admin, password ").unwrap();
    let ca = qs.join("server/pki/ca.crt");
    let (ok, session) = sh(&format!(
        "curl --silent --fail --cacert {} -H 'Content-Type: application/json' \
         -d '{{\"user\":\"admin\",\"password\":\"{password}\"}}' {ui}api/session",
        ca.display()
    ));
    assert!(ok && session.contains("\"role\":\"admin\""), "{session}");

    nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = poll(Duration::from_secs(30), "the quickstart to stop", || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    // Its agent stopped with it: nothing answers on the agent's identity any more.
    // The bracket keeps pgrep from matching the shell that runs it.
    let agent_pids = sh("pgrep -f '[s]ysward-agent --config .*/qs/agent.toml'").1;
    assert!(
        agent_pids.trim().is_empty(),
        "agent still running: {agent_pids}"
    );
}
