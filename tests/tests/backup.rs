//! `sysward-server backup DEST` while the server ingests: a second server started from the
//! copy holds the same points, the same identity (CA pin, enrolled agents) and takes
//! batches from the same agents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use sysward_tests::{Agent, Server, gzip, poll, post_ingest};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One batch of one point of `backup_probe`, at the time it is made (points far in the
/// past would be outside the raw tier's retention, which counts from the newest sample).
fn probe(agent_id: &str, seq: u64, ts: i64) -> Vec<u8> {
    let body = json!({
        "v": 1, "agent_id": agent_id, "boot_id": "backup-test", "seq": seq, "sent_at": ts,
        "series": [{ "name": "backup_probe", "labels": {}, "kind": "gauge",
                     "points": [[ts, seq as f64]] }],
    });
    gzip(body.to_string().as_bytes())
}

/// Points of every series matching `selector`, keyed by the series' labels.
fn points(server: &Server, selector: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    server
        .read(selector)
        .iter()
        .map(|s| {
            let pts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            (s["metric"].to_string(), pts)
        })
        .collect()
}

#[test]
fn backup_of_a_live_server_starts_a_second_server_with_the_same_points() {
    let dir = tempfile::tempdir().unwrap();
    let first_root = dir.path().join("first");
    let second_root = dir.path().join("second");
    std::fs::create_dir_all(&first_root).unwrap();
    std::fs::create_dir_all(&second_root).unwrap();
    let server = Server::start(&first_root, "");
    let mut agent = Agent::configure(dir.path(), "live-1", &server.url(), FAST);
    let live_id = agent.enroll(&server.token(&[]));
    agent.start();
    // A second identity whose batches the test writes itself, so that it knows exactly
    // which points were acked before, during and after the backup.
    let poster = Agent::configure(dir.path(), "poster", &server.url(), "");
    let poster_id = poster.enroll(&server.token(&[]));

    poll(
        Duration::from_secs(30),
        "the live agent's first points",
        || {
            let n: usize = points(&server, "node_load1").values().map(Vec::len).sum();
            (n >= 3).then_some(())
        },
    );

    let acked: Mutex<Vec<(i64, f64)>> = Mutex::default();
    let stop = AtomicBool::new(false);
    let backup_dir = second_root.join("server-data");
    let (before, copied) = thread::scope(|scope| {
        scope.spawn(|| {
            let client = poster.client(&server);
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let ts = now_ms();
                let (status, body) = post_ingest(&client, &server, probe(&poster_id, seq, ts));
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["acked_seq"], seq);
                acked.lock().unwrap().push((ts, seq as f64));
                thread::sleep(Duration::from_millis(5));
            }
        });
        poll(Duration::from_secs(30), "probe batches", || {
            (acked.lock().unwrap().len() >= 20).then_some(())
        });
        let before = acked.lock().unwrap().clone();
        let live_before = points(&server, "node_load1");
        let out = server.cli(&["backup", backup_dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep ingesting a little past the backup, then stop the writer.
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        (
            (before, live_before),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    });
    assert!(copied.contains("backed up"), "{copied}");
    let (probe_before, live_before) = before;
    let probe_all = acked.into_inner().unwrap();
    assert!(probe_all.len() > probe_before.len(), "ingest went on");
    let live_after = points(&server, "node_load1");

    let second = Server::start(&second_root, "");
    assert_eq!(second.ca_pem(), server.ca_pem(), "same CA, same pin");
    // Probe points: everything acked before the backup started, nothing never acked,
    // and a prefix of the acked sequence (one snapshot, no holes).
    let got = points(&second, "backup_probe");
    assert_eq!(got.len(), 1, "{got:?}");
    let got = got.into_values().next().unwrap();
    assert!(
        got.len() >= probe_before.len(),
        "{} < {}",
        got.len(),
        probe_before.len()
    );
    assert_eq!(
        got[..],
        probe_all[..got.len()],
        "the copy holds a prefix of the acked points"
    );
    // The live agent's points: at least what the first server had before the backup, and
    // only what it had after.
    let live_copy = points(&second, "node_load1");
    assert_eq!(
        live_copy.keys().collect::<Vec<_>>(),
        live_before.keys().collect::<Vec<_>>()
    );
    for (series, pts) in &live_copy {
        let first_pts = &live_after[series];
        assert!(pts.len() >= live_before[series].len(), "{series}");
        assert!(
            pts.iter().all(|p| first_pts.contains(p)),
            "{series}: {pts:?} vs {first_pts:?}"
        );
    }
    // Identity came along: both agents are known and approved, and the copy takes a new
    // batch from the poster's certificate (signed by the copied agent CA); a repeat of a
    // seq stored before the backup is a duplicate there too.
    let (status, body) = second.admin_get("/api/v1/agents");
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "approved")
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(
        ids.contains(&live_id.as_str()) && ids.contains(&poster_id.as_str()),
        "{body}"
    );
    let client = poster.client(&second);
    let next = probe_all.len() as u64 + 1;
    let (status, body) = post_ingest(&client, &second, probe(&poster_id, next, now_ms()));
    assert_eq!(
        (status, &body["acked_seq"]),
        (200, &Value::from(next)),
        "{body}"
    );
    let (status, _) = post_ingest(&client, &second, probe(&poster_id, 1, now_ms()));
    assert_eq!(status, 200);
    let after: usize = points(&second, "backup_probe").values().map(Vec::len).sum();
    assert_eq!(
        after,
        got.len() + 1,
        "the repeat of seq 1 was not stored again"
    );
    agent.stop();
}
