//! Enrollment and ingest end to end: real server, real agent, TLS on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use serde_json::Value;
use sysward_proto::JoinToken;
use sysward_tests::{Agent, Server, batch, bin, gzip, poll, post_ingest};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn label<'a>(series: &'a Value, name: &str) -> &'a str {
    series["metric"][name].as_str().unwrap_or("")
}

#[test]
fn token_enrollment_then_samples_of_all_three_collectors_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let mut agent = Agent::configure(dir.path(), "web-1", &server.url(), FAST);
    let id = agent.enroll(&server.token(&[]));
    assert!(id.starts_with("ag-"), "{id}");
    // The key never left the host, and only its owner can read it.
    let key_meta = std::fs::metadata(agent.state_dir.join("agent.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_meta.permissions()) & 0o777,
        0o600
    );
    agent.start();

    for name in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
    ] {
        let series = poll(Duration::from_secs(30), name, || {
            let found = server.read(name);
            (!found.is_empty()).then_some(found)
        });
        let s = &series[0];
        assert_eq!(label(s, "agent_id"), id, "{s}");
        assert_eq!(label(s, "instance"), "web-1", "{s}");
        let value = s["values"][0][1].as_f64().unwrap();
        assert!(value.is_finite() && value >= 0.0, "{s}");
    }
    let cpu = server.read("node_cpu_seconds_total{mode=\"idle\"}");
    assert!(
        cpu.iter()
            .all(|s| label(s, "mode") == "idle" && !label(s, "cpu").is_empty())
    );
    // The agent's own metrics travel the same way.
    poll(Duration::from_secs(30), "agent self-metrics", || {
        let sent = server.read("sysward_agent_batches_sent_total");
        (!sent.is_empty()).then_some(())
    });
    let out = server.cli(&["agents", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let row = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains("web-1") && row.contains("approved") && !row.contains("never"),
        "{row}"
    );
}

#[test]
fn repeated_batch_is_acked_again_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let agent = Agent::configure(dir.path(), "db-1", &server.url(), "");
    let id = agent.enroll(&server.token(&[]));
    let client = agent.client(&server);
    let first = gzip(
        batch(&id, "boot-a", 1, "test_dedup", 1.0)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        post_ingest(&client, &server, first),
        (200, serde_json::json!({"acked_seq": 1}))
    );
    // Same identity, different content: must be acked and ignored.
    let again = gzip(
        batch(&id, "boot-a", 1, "test_dedup", 2.0)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        post_ingest(&client, &server, again),
        (200, serde_json::json!({"acked_seq": 1}))
    );
    let series = server.read("test_dedup");
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0]["values"],
        serde_json::json!([[1_700_000_000_000i64, 1.0]])
    );
    let info = server.agent_info(&id);
    assert_eq!(
        info["boots"],
        serde_json::json!([{"boot_id": "boot-a", "batches": 1, "max_seq": 1}])
    );
    // Another boot with the same seq is another batch.
    let other_boot = gzip(
        batch(&id, "boot-b", 1, "test_dedup", 3.0)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(post_ingest(&client, &server, other_boot).0, 200);
    assert_eq!(server.agent_info(&id)["boots"].as_array().unwrap().len(), 2);
}

#[test]
fn enrollment_without_token_waits_for_approval() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let pin = JoinToken::parse(&server.token(&[])).unwrap().ca_sha256;
    let agent = Agent::configure(dir.path(), "lab-1", &server.url(), "");
    let mut child = Command::new(bin("sysward-agent"))
        .arg("--config")
        .arg(&agent.config)
        .args(["enroll", "--server", &server.url(), "--ca-pin", &pin])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let id = poll(Duration::from_secs(20), "a pending agent", || {
        let out = server.cli(&["agents", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("lab-1") && l.ends_with("pending"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
    });
    assert!(
        !agent.state_dir.join("identity.json").exists(),
        "no certificate before approval"
    );
    let out = server.cli(&["agents", "approve", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = poll(Duration::from_secs(20), "enroll to finish", || {
        child.try_wait().unwrap()
    });
    assert!(status.success());
    assert_eq!(agent.agent_id(), id);
    let client = agent.client(&server);
    let body = gzip(
        batch(&id, "b", 1, "approved_ok", 1.0)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(post_ingest(&client, &server, body).0, 200);
}
