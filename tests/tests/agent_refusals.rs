//! The real server refuses the real agent, and the agent does with each batch what
//! docs/spool.md promises: a batch that can never be accepted (400, 413) goes to the
//! dead-letter directory and the rest are stored; a busy server (429) is retried after
//! `Retry-After` and nothing is lost; a revoked agent (403) keeps its batches. A full disk
//! (503) is tests/tests/disk_full.rs.
//!
//! Each test accounts for every batch of the agent's boot: stored by the server or
//! dead-lettered, never both, never neither.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    path::Path,
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

use flate2::read::GzDecoder;
use serde_json::Value;
use sysward_tests::{Agent, Server, poll};

/// Short intervals and retries, so that a test sees dozens of batches in seconds.
const FAST: &str =
    "[intervals]\ncritical = \"200ms\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"300ms\"\n";

/// A dead-lettered batch: its boot, seq, and the server's reason beside it.
struct DeadLetter {
    agent_id: String,
    boot_id: String,
    seq: u64,
    reason: String,
}

fn dead_letters(agent: &Agent) -> Vec<DeadLetter> {
    let dir = agent.state_dir.join("dead-letter");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".json.gz")) else {
            continue;
        };
        let mut text = String::new();
        GzDecoder::new(fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let batch: Value = serde_json::from_str(&text).unwrap();
        out.push(DeadLetter {
            agent_id: batch["agent_id"].as_str().unwrap().to_string(),
            boot_id: batch["boot_id"].as_str().unwrap().to_string(),
            seq: batch["seq"].as_u64().unwrap(),
            reason: fs::read_to_string(format!("{stem}.reason")).unwrap(),
        });
    }
    out
}

/// Per boot the server stored: (batches, highest seq).
fn stored(server: &Server, id: &str) -> BTreeMap<String, (u64, u64)> {
    server.agent_info(id)["boots"]
        .as_array()
        .map(|boots| {
            boots
                .iter()
                .map(|b| {
                    (
                        b["boot_id"].as_str().unwrap().to_string(),
                        (
                            b["batches"].as_u64().unwrap(),
                            b["max_seq"].as_u64().unwrap(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// After the agent stopped: every seq of every boot of agent `id` from 1 to the last is
/// either stored or dead-lettered, and none is both (the server stores a seq at most once, so its count
/// plus the dead letters' reaching the highest seq leaves no room for a gap or an overlap).
fn assert_every_batch_accounted_for(server: &Server, id: &str, agent: &Agent) {
    let stored = stored(server, id);
    let dead: Vec<DeadLetter> = dead_letters(agent)
        .into_iter()
        .filter(|d| d.agent_id == id)
        .collect();
    let mut boots: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (boot, &(batches, max_seq)) in &stored {
        boots.insert(boot, (batches, max_seq));
    }
    for d in &dead {
        let entry = boots.entry(&d.boot_id).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(d.seq);
    }
    assert!(!boots.is_empty(), "no batch at all");
    for (boot, (accounted, last)) in boots {
        assert_eq!(
            accounted,
            last,
            "boot {boot}: {accounted} batches stored or dead-lettered of seqs 1..={last} \
             (stored {:?}, dead-lettered {})",
            stored.get(boot),
            dead.iter().filter(|d| d.boot_id == boot).count()
        );
    }
    assert_eq!(agent.spool_status().1, 0, "batches left unsent");
}

fn start(dir: &Path, limits: &str) -> (Server, Agent, String) {
    let server = Server::start(dir, &format!("[limits]\n{limits}\n"));
    let agent = Agent::configure(dir, "refused", &server.url(), FAST);
    let id = agent.enroll(&server.token(&[]));
    (server, agent, id)
}

/// A limit that some or all of the agent's batches exceed: those are dead-lettered with
/// the server's reason, the others stored, and the queue never blocks on a refused batch.
fn refused_batches_are_dead_lettered(limits: &str, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut agent, id) = start(dir.path(), limits);
    agent.start();
    poll(
        Duration::from_secs(30),
        "five dead-lettered batches",
        || (dead_letters(&agent).len() >= 5).then_some(()),
    );
    agent.stop();
    let dead = dead_letters(&agent);
    for d in &dead {
        assert!(d.reason.contains(reason), "{}", d.reason);
    }
    assert_every_batch_accounted_for(&server, &id, &agent);
    let log = agent.log_text();
    assert!(
        log.contains("Server refused batch; moved to dead-letter."),
        "{log}"
    );
}

#[test]
fn a_batch_over_a_limit_is_dead_lettered_with_400() {
    // Every batch of the agent's host collectors has more than two series.
    refused_batches_are_dead_lettered("max_series_per_batch = 2", "series");
}

#[test]
fn an_oversized_batch_is_dead_lettered_with_413() {
    refused_batches_are_dead_lettered("max_body = \"1KiB\"", "bytes");
}

/// A request body that sends one byte and then waits until released: it holds the
/// server's ingest permit meanwhile.
struct HeldBody {
    release: Receiver<()>,
    started: bool,
}

impl Read for HeldBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !std::mem::replace(&mut self.started, true) && !buf.is_empty() {
            buf[0] = b'x';
            return Ok(1);
        }
        let _ = self.release.recv();
        Ok(0)
    }
}

#[test]
fn a_busy_server_is_retried_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut agent, id) = start(dir.path(), "max_concurrent_ingests = 1");
    // The one permit is held by a request of the agent's own certificate.
    let (release, held) = channel();
    let holder = {
        let (http, url) = (
            agent.client(&server),
            format!("{}/api/v1/ingest", server.url()),
        );
        std::thread::spawn(move || {
            http.post(url)
                .header("content-encoding", "gzip")
                .body(reqwest::blocking::Body::new(HeldBody {
                    release: held,
                    started: false,
                }))
                .send()
                .map(|r| r.status().as_u16())
        })
    };
    poll(Duration::from_secs(10), "the held request's permit", || {
        let (_, metrics) = server.admin_get_text("/metrics");
        metrics
            .lines()
            .any(|l| l == "sysward_server_ingest_in_flight 1")
            .then_some(())
    });
    agent.start();
    poll(Duration::from_secs(30), "the agent to be held back", || {
        let log = agent.log_text();
        (log.contains("Cannot deliver batches; retrying with backoff.")
            && log.contains("ingest is busy")
            && agent.spool_status().1 >= 5)
            .then_some(())
    });
    assert!(stored(&server, &id).is_empty(), "nothing passed the permit");
    release.send(()).unwrap();
    assert_eq!(holder.join().unwrap().unwrap(), 400);
    poll(Duration::from_secs(30), "the backlog to drain", || {
        (agent.spool_status().1 == 0 && !stored(&server, &id).is_empty()).then_some(())
    });
    agent.stop();
    assert!(dead_letters(&agent).is_empty());
    assert_every_batch_accounted_for(&server, &id, &agent);
}

#[test]
fn a_revoked_agent_keeps_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut agent, id) = start(dir.path(), "");
    agent.start();
    poll(Duration::from_secs(30), "the first batches", || {
        (!stored(&server, &id).is_empty()).then_some(())
    });
    let out = server.cli(&["agents", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    poll(Duration::from_secs(30), "the agent to be refused", || {
        let log = agent.log_text();
        (log.contains("Server does not accept this agent; re-enroll it. Batches are kept.")
            && log.contains("is revoked"))
        .then_some(())
    });
    let before = stored(&server, &id);
    poll(Duration::from_secs(30), "batches kept in the spool", || {
        (agent.spool_status().1 >= 5).then_some(())
    });
    assert_eq!(
        stored(&server, &id),
        before,
        "a revoked agent's batch stored"
    );
    assert!(dead_letters(&agent).is_empty(), "kept, not dead-lettered");
    agent.kill();
    assert!(agent.spool_status().1 >= 5);

    // Enrolled again: a new id. The batches spooled under the old one can never be
    // accepted and must not block the queue: dead-lettered; the new ones are stored.
    let new_id = agent.enroll(&server.token(&[]));
    assert_ne!(new_id, id);
    agent.start();
    poll(Duration::from_secs(30), "the new id's batches", || {
        (agent.spool_status().1 == 0 && !stored(&server, &new_id).is_empty()).then_some(())
    });
    agent.stop();
    let dead = dead_letters(&agent);
    assert!(dead.len() >= 5, "{} dead-lettered", dead.len());
    assert!(
        dead.iter()
            .all(|d| d.reason.contains(&format!("batch names agent {id}"))),
        "{:?}",
        dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    // Every seq of the old id's boot is stored (before the revocation) or dead-lettered;
    // every seq of the new id's boot is stored.
    assert_every_batch_accounted_for(&server, &id, &agent);
    assert_every_batch_accounted_for(&server, &new_id, &agent);
}
