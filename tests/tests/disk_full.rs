//! A nearly full disk is back-pressure, not an error storm: with the server's data
//! directory on a small file system, ingest below `[storage] min_free` is answered 503 with
//! `Retry-After`, the agent keeps its batches, `/api/health` says why, a metric counts the
//! refusals, the log says it once, and once space returns every batch arrives.
//!
//! Mounting a tmpfs needs root; CI runs as root, elsewhere the test says it did not run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sysward_tests::{Agent, Server, can_run, client, not_root, poll, tmpfs::Tmpfs};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn scrape(server: &Server, name: &str) -> f64 {
    let (_, text) = server.admin_get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[test]
fn a_nearly_full_disk_holds_ingest_back_and_loses_nothing() {
    if !can_run(not_root("mount a small file system")) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&root.path().join("server-data"), "96m");
    let mut server = Server::start_with_storage(root.path(), "min_free = \"32MiB\"", "");
    let mut agent = Agent::configure(root.path(), "disk-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();
    poll(Duration::from_secs(20), "the agent's first points", || {
        server.latest("node_load1").map(|_| ())
    });

    // Take the space away: 16 MiB left, below the 32 MiB reserve.
    disk.fill_leaving(16 << 20);
    let full_from = now_ms();
    let health = poll(Duration::from_secs(30), "health to say why", || {
        let resp = client(&server.ca_pem(), None)
            .get(format!("{}/api/health", server.url()))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().unwrap();
        (body["status"] == "degraded").then_some((status, body))
    });
    assert_eq!(health.0, 200);
    let reason = health.1["problems"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("ingest is refused"), "{reason}");
    // The agent is held back: it spools, and refusals are counted.
    poll(Duration::from_secs(30), "the agent to spool", || {
        (agent.spool_status().1 >= 5).then_some(())
    });
    let refused = scrape(&server, "sysward_server_ingest_refused_disk_total");
    assert!(refused >= 5.0, "{refused}");
    // An ingest answered by hand gets 503 with Retry-After.
    let resp = agent
        .client(&server)
        .post(format!("{}/api/v1/ingest", server.url()))
        .header("content-encoding", "gzip")
        .body(sysward_tests::gzip(b"{}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "30");
    assert!(resp.text().unwrap().contains("min_free"));
    // Once, not per request.
    let log = server.log_text();
    assert_eq!(
        log.matches("Ingest refused: the data directory's disk is nearly full.")
            .count(),
        1,
        "{log}"
    );

    // Space returns: the spool drains and the points of the outage arrive.
    disk.free();
    let free_from = now_ms();
    poll(Duration::from_secs(60), "the spool to drain", || {
        (agent.spool_status().1 == 0).then_some(())
    });
    let series = server.read("node_load1");
    let held: usize = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let t = p[0].as_i64().unwrap();
            t > full_from + 1000 && t < free_from - 1000
        })
        .count();
    let outage_s = (free_from - full_from) / 1000;
    assert!(
        held as i64 >= outage_s - 3,
        "{held} points of a {outage_s} s outage arrived"
    );
    assert_eq!(
        scrape(&server, "sysward_server_store_commit_failures_total"),
        0.0
    );
    agent.stop();
    server.kill();
    drop(disk);
}
