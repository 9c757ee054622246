//! The server dies while the agent runs: the agent reconnects by itself, and every batch of
//! its boot is stored exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sysward_tests::{Agent, Server, poll};

#[test]
fn agent_survives_server_crash_and_no_batch_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "");
    let mut agent = Agent::configure(
        dir.path(),
        "app-1",
        &server.url(),
        "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n",
    );
    let id = agent.enroll(&server.token(&[]));
    agent.start();
    let seq_now = |server: &Server| -> u64 {
        let info = server.agent_info(&id);
        info["boots"]
            .as_array()
            .and_then(|b| b.first())
            .and_then(|b| b["max_seq"].as_u64())
            .unwrap_or(0)
    };
    let before = poll(Duration::from_secs(30), "first batches", || {
        let s = seq_now(&server);
        (s >= 3).then_some(s)
    });

    server.kill();
    // While the server is down the agent keeps collecting; wait until it has failed to
    // deliver at least once, so that the restart really exercises the retry path.
    poll(
        Duration::from_secs(30),
        "the agent to notice the outage",
        || {
            agent
                .log_text()
                .contains("Cannot deliver batches")
                .then_some(())
        },
    );
    server.restart();

    let after = poll(Duration::from_secs(60), "batches after the restart", || {
        let s = seq_now(&server);
        (s >= before + 5).then_some(s)
    });
    assert!(
        agent.log_text().contains("Server reachable again"),
        "{}",
        agent.log_text()
    );
    // A clean stop delivers what is left; until then the newest batches may overtake
    // older ones (priority first), so the comparison is made after it.
    agent.stop();
    let info = server.agent_info(&id);
    let boots = info["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 1, "one agent boot: {info}");
    // Seqs start at 1 and have no gap: the count equals the highest seq.
    assert_eq!(
        boots[0]["batches"].as_u64().unwrap(),
        boots[0]["max_seq"].as_u64().unwrap(),
        "{info}"
    );
    assert!(after > before);
    // Points of one series are strictly increasing in time: nothing stored twice.
    for s in server.read("node_load1") {
        let ts: Vec<i64> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_i64().unwrap())
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    }
}
