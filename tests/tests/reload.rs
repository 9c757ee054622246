//! SIGHUP reloads the agent's config: a valid new file changes what is scheduled at once,
//! and the server sees it; an invalid one is refused, logged, and the old config keeps
//! running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::sys::signal::Signal;
use sysward_tests::{Agent, Server, poll};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Timestamps of `node_load1` points collected after `since_ms`.
fn load_points_since(server: &Server, since_ms: i64) -> Vec<i64> {
    let mut ts: Vec<i64> = server
        .read("node_load1")
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|p| p[0].as_i64().unwrap())
        .filter(|t| *t > since_ms)
        .collect();
    ts.sort_unstable();
    ts
}

fn max_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

#[test]
fn sighup_applies_a_new_interval_and_keeps_the_old_config_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let mut agent = Agent::configure(
        dir.path(),
        "reload-1",
        &server.url(),
        "[collectors.load]\ninterval = \"3s\"\n",
    );
    agent.enroll(&server.token(&[]));
    agent.start();
    let original = fs::read_to_string(&agent.config).unwrap();

    // Before: one point every 3 s, after the one made right at start (the next comes
    // at the first phased tick, between 1.5 and 4.5 s later).
    let before = poll(Duration::from_secs(30), "two load points 3 s apart", || {
        let ts = load_points_since(&server, 0);
        (ts.len() >= 3).then_some(ts)
    });
    assert!(max_gap(&before[1..]) >= 2500, "{before:?}");

    // A valid edit: load every 500 ms, memory off, and a new host name (which waits for a
    // restart).
    let edited = original
        .replace("interval = \"3s\"", "interval = \"500ms\"")
        .replace("hostname = \"reload-1\"", "hostname = \"renamed\"")
        + "[collectors.memory]\nenabled = false\n";
    fs::write(&agent.config, edited).unwrap();
    let reloaded_at = now_ms();
    agent.signal(Signal::SIGHUP);
    poll(Duration::from_secs(10), "the reload in the log", || {
        agent
            .log_text()
            .contains("Config reloaded; changes to these sections wait for a restart")
            .then_some(())
    });
    let log = agent.log_text();
    assert!(
        log.contains(r#"Collector scheduled. collector="load" interval=500ms"#),
        "{log}"
    );
    assert!(
        log.contains(r#"Collector stopped. collector="memory""#),
        "{log}"
    );
    assert!(log.contains(r#"sections="agent""#), "{log}");
    // The server sees it: points now come about every 500 ms.
    let after = poll(Duration::from_secs(30), "load points at 500 ms", || {
        let ts = load_points_since(&server, reloaded_at + 1000);
        (ts.len() >= 6).then_some(ts)
    });
    assert!(max_gap(&after) < 1500, "{after:?}");
    // The host name is read once at start: the series still carry the old one.
    let series = server.read("node_load1");
    assert!(
        series.iter().all(|s| s["metric"]["instance"] == "reload-1"),
        "{series:?}"
    );

    // An invalid edit: refused with the file and line, and the 500 ms schedule goes on.
    let scheduled_before = log.matches("Collector scheduled.").count();
    fs::write(
        &agent.config,
        original.replace("interval = \"3s\"", "interval = \"fast\""),
    )
    .unwrap();
    let broken_at = now_ms();
    agent.signal(Signal::SIGHUP);
    poll(Duration::from_secs(10), "the refusal in the log", || {
        agent.log_text().contains("Reload refused").then_some(())
    });
    let log = agent.log_text();
    let path = agent.config.display().to_string();
    assert!(log.contains(&format!("{path}:")), "{log}");
    assert!(log.contains("fast"), "{log}");
    assert_eq!(
        log.matches("Collector scheduled.").count(),
        scheduled_before,
        "{log}"
    );
    let still = poll(
        Duration::from_secs(30),
        "load points after the refusal",
        || {
            let ts = load_points_since(&server, broken_at + 1000);
            (ts.len() >= 6).then_some(ts)
        },
    );
    assert!(max_gap(&still) < 1500, "{still:?}");
    assert!(agent.is_running(), "{}", agent.log_text());
    agent.stop();
}
