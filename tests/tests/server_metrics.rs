//! `GET /metrics`: the server's own figures move with what it does, and only an admin
//! may read them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use sysward_tests::{ADMIN_TOKEN, Agent, Server, client, gzip, poll, post_ingest};

/// `name{labels}` → value, from Prometheus text.
fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let resp = client(&server.ca_pem(), None)
        .get(format!("{}/metrics", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    resp.text()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn batch(agent_id: &str, seq: u64, series: usize) -> Vec<u8> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let series: Vec<_> = (0..series)
        .map(|i| {
            json!({ "name": "metrics_probe", "labels": {"i": i.to_string()}, "kind": "counter",
                    "points": [[ts, (seq * 10) as f64]] })
        })
        .collect();
    let body = json!({ "v": 1, "agent_id": agent_id, "boot_id": "m", "seq": seq,
                       "sent_at": ts, "series": series });
    gzip(body.to_string().as_bytes())
}

#[test]
fn metrics_move_with_ingest_cuts_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    // A short chunk span, so that a cut (and the first purge) happens within the test. The
    // rule engine writes each known agent's `up` and last-seen series at whole evaluation
    // intervals: an hour apart, the exact series counts below are not crossed by one.
    let server = Server::start_with_rules(
        dir.path(),
        "chunk_span = \"1s\"",
        "evaluation_interval = \"1h\"",
        "",
    );
    let anonymous = client(&server.ca_pem(), None)
        .get(format!("{}/metrics", server.url()))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let start = scrape(&server);
    for name in [
        "sysward_server_batches_accepted_total",
        "sysward_server_samples_ingested_total",
        "sysward_server_series",
        "sysward_server_store_cuts_total",
        "process_resident_memory_bytes",
    ] {
        assert!(start.contains_key(name), "{name} missing: {start:?}");
    }
    assert_eq!(start["sysward_server_series"], 0.0);

    let agent = Agent::configure(dir.path(), "m-1", &server.url(), "");
    let id = agent.enroll(&server.token(&[]));
    let c = agent.client(&server);
    for seq in 1..=3 {
        let (status, body) = post_ingest(&c, &server, batch(&id, seq, 5));
        assert_eq!(status, 200, "{body}");
    }
    // A repeat, and a refusal (wrong version).
    let (status, _) = post_ingest(&c, &server, batch(&id, 2, 5));
    assert_eq!(status, 200);
    let bad = json!({"v": 2, "agent_id": id, "boot_id": "m", "seq": 9, "sent_at": 0, "series": []});
    let (status, _) = post_ingest(&c, &server, gzip(bad.to_string().as_bytes()));
    assert_eq!(status, 400);

    let m = scrape(&server);
    assert_eq!(m["sysward_server_batches_accepted_total"], 4.0, "{m:?}");
    assert_eq!(m["sysward_server_batches_duplicate_total"], 1.0);
    assert_eq!(m["sysward_server_batches_refused_total"], 1.0);
    assert_eq!(m["sysward_server_series"], 5.0);
    assert_eq!(m["sysward_server_samples_ingested_total"], 15.0);
    assert!(m["sysward_server_store_file_bytes"] > 0.0);

    // The background task cuts the head into chunks: head to zero, raw and rollup bytes up.
    let m = poll(Duration::from_secs(20), "a cut and a purge", || {
        let m = scrape(&server);
        (m["sysward_server_store_cuts_total"] >= 1.0
            && m["sysward_server_store_purges_total"] >= 1.0)
            .then_some(m)
    });
    assert_eq!(m["sysward_server_store_head_points"], 0.0, "{m:?}");
    for tier in ["raw", "5m", "1h", "1d", "1mo"] {
        let bytes = m[&format!("sysward_server_store_bytes{{tier=\"{tier}\"}}")];
        assert!(bytes > 0.0, "tier {tier}: {m:?}");
    }
    assert!(m["sysward_server_store_cut_seconds_total"] > 0.0);
    assert!(m["process_cpu_seconds_total"] > 0.0);
}
