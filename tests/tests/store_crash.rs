//! The store's promise under crashes: `kill -9` of the server, again and again during a
//! steady ingest, never loses a point it acked, and never stores a batch twice.
//!
//! Writers: three identities whose batches the test posts itself from a thread each
//! (concurrent ingests, each batch retried after a failure with the same seq until it is
//! acked, as an agent does), and a real agent. The kills fall at seeded random moments, with a chunk span
//! short enough that some land during a head cut. After the last restart every acked
//! point must be readable with its value, nothing else may be there, and every boot's
//! batches must be gap-free.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use sysward_tests::{Agent, Server, gzip, poll};

const SEED: u64 = 0x5eed_c0de;
const KILLS: usize = 10;
const POSTERS: usize = 3;
const SERIES_PER_BATCH: u64 = 20;

/// splitmix64: deterministic, and no dependency for a few random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The points a batch carries: series `i` gets `seq * 100 + i` at `ts`.
fn batch_points(seq: u64, ts: i64) -> Vec<(u64, i64, f64)> {
    (0..SERIES_PER_BATCH)
        .map(|i| (i, ts, (seq * 100 + i) as f64))
        .collect()
}

fn batch_body(agent_id: &str, seq: u64, ts: i64) -> Vec<u8> {
    let series: Vec<_> = batch_points(seq, ts)
        .into_iter()
        .map(|(i, ts, v)| {
            // Counters and gauges both: the cut treats them apart in the rollups.
            let kind = if i % 2 == 0 { "counter" } else { "gauge" };
            json!({ "name": "crash_probe", "labels": {"i": i.to_string()}, "kind": kind,
                    "points": [[ts, v]] })
        })
        .collect();
    let body = json!({ "v": 1, "agent_id": agent_id, "boot_id": "crash-test", "seq": seq,
                       "sent_at": ts, "series": series });
    gzip(body.to_string().as_bytes())
}

/// (agent id, series i) → (ts, value) points, in seq order.
type Points = BTreeMap<(String, u64), Vec<(i64, f64)>>;

/// What the posters saw.
#[derive(Default)]
struct Tally {
    /// Every acked point.
    acked: Mutex<Points>,
    batches: AtomicU64,
    failures: AtomicU64,
}

/// Posts batches until `stop`, each retried with the same seq until it is acked.
fn post_until(
    client: &reqwest::blocking::Client,
    url: &str,
    agent_id: &str,
    stop: &AtomicBool,
    tally: &Tally,
) {
    let mut last_ts = 0;
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        // Strictly increasing per identity, near the clock (retention counts from it).
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let body = batch_body(agent_id, seq, ts);
        loop {
            let resp = client
                .post(format!("{url}/api/v1/ingest"))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(body.clone())
                .send();
            match resp {
                Ok(r) if r.status().as_u16() == 200 => {
                    let v: serde_json::Value = r.json().unwrap();
                    assert_eq!(v["acked_seq"], seq, "{v}");
                    let mut acked = tally.acked.lock().unwrap();
                    for (i, ts, v) in batch_points(seq, ts) {
                        acked
                            .entry((agent_id.to_string(), i))
                            .or_default()
                            .push((ts, v));
                    }
                    tally.batches.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {}
                Ok(r) => panic!(
                    "batch {seq} refused: {} {}",
                    r.status(),
                    r.text().unwrap_or_default()
                ),
                // The server is down or died mid-request: whether the batch was stored is
                // unknown, so it goes again with the same identity.
                Err(_) => {
                    tally.failures.fetch_add(1, Ordering::SeqCst);
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn stored(server: &Server) -> Points {
    server
        .read("crash_probe")
        .iter()
        .map(|s| {
            let id = s["metric"]["agent_id"].as_str().unwrap().to_string();
            let i: u64 = s["metric"]["i"].as_str().unwrap().parse().unwrap();
            let pts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            ((id, i), pts)
        })
        .collect()
}

#[test]
fn kill_9_in_a_loop_loses_no_acked_point() {
    let dir = tempfile::tempdir().unwrap();
    // A head is cut one second after its first point: kills land before, during and
    // after cuts.
    let mut server = Server::start_with_storage(dir.path(), "chunk_span = \"1s\"", "");
    let mut agent = Agent::configure(
        dir.path(),
        "crash-agent",
        &server.url(),
        "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"500ms\"\nrequest_timeout = \"5s\"\n",
    );
    let agent_id = agent.enroll(&server.token(&[]));
    let posters: Vec<(Agent, String)> = (0..POSTERS)
        .map(|n| {
            let a = Agent::configure(dir.path(), &format!("poster-{n}"), &server.url(), "");
            let id = a.enroll(&server.token(&[]));
            (a, id)
        })
        .collect();
    agent.start();

    let mut rng = Rng(SEED);
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let url = server.url();
    thread::scope(|scope| {
        for (poster, id) in &posters {
            let client = poster.client(&server);
            let (url, stop, tally) = (&url, &stop, &tally);
            scope.spawn(move || post_until(&client, url, id, stop, tally));
        }
        for kill in 0..KILLS {
            let before = tally.batches.load(Ordering::SeqCst);
            thread::sleep(Duration::from_millis(rng.range(300, 1500)));
            server.kill();
            // Down for a moment: clients fail and will retry the same batches.
            thread::sleep(Duration::from_millis(rng.range(0, 400)));
            server.restart();
            let after = tally.batches.load(Ordering::SeqCst);
            assert!(after > before, "kill {kill}: no batch was acked in between");
        }
        // Ingest resumes after the last crash too.
        let last = tally.batches.load(Ordering::SeqCst);
        poll(
            Duration::from_secs(30),
            "acks after the last restart",
            || (tally.batches.load(Ordering::SeqCst) > last + 10).then_some(()),
        );
        stop.store(true, Ordering::SeqCst);
    });
    assert!(
        tally.failures.load(Ordering::SeqCst) > 0,
        "no request failed: the kills did not hit ingest"
    );
    // The real agent has shipped since the last restart.
    let agent_seq = |server: &Server| -> u64 {
        server
            .boots(&agent_id)
            .first()
            .map(|b| b.1)
            .unwrap_or_default()
    };
    let seen = agent_seq(&server);
    poll(
        Duration::from_secs(30),
        "the agent to ship after the crashes",
        || (agent_seq(&server) > seen).then_some(()),
    );
    // One more crash with nothing waiting, then read everything back.
    server.kill();
    server.restart();

    let acked = tally.acked.into_inner().unwrap();
    let got = stored(&server);
    let acked_points: usize = acked.values().map(Vec::len).sum();
    assert_eq!(acked.len(), POSTERS * SERIES_PER_BATCH as usize);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        acked.keys().collect::<Vec<_>>(),
        "series"
    );
    for (key, want) in &acked {
        let have = &got[key];
        let missing: Vec<_> = want.iter().filter(|p| !have.contains(p)).collect();
        assert!(
            missing.is_empty(),
            "{key:?}: {} of {} acked points lost, e.g. {:?}",
            missing.len(),
            want.len(),
            &missing[..missing.len().min(5)]
        );
        // Each batch was retried until acked, so nothing else may be there either.
        assert_eq!(
            have, want,
            "{key:?}: stored points differ from the acked ones"
        );
    }
    // Every posted boot is gap-free: as many batches stored as the highest seq.
    for (_, id) in &posters {
        let boots = server.boots(id);
        assert_eq!(boots.len(), 1, "{id}: {boots:?}");
        assert_eq!(boots[0].0, boots[0].1, "{id}: {boots:?}");
    }
    // The real agent: a clean stop delivers what is left; its one boot has no gap either
    // (a batch the server acked and then lost would be one, the agent having forgotten it).
    agent.stop();
    let boots = server.boots(&agent_id);
    assert_eq!(boots.len(), 1, "{boots:?}");
    assert_eq!(boots[0].0, boots[0].1, "agent batches: {boots:?}");
    eprintln!(
        "{KILLS} kills: {} batches and {acked_points} points acked, {} failed requests retried, agent batches {}",
        tally.batches.load(Ordering::SeqCst),
        tally.failures.load(Ordering::SeqCst),
        boots[0].0
    );
}
