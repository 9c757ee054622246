//! The outage spool with the real binaries: long outages, crashes of the agent, damaged
//! files, the size bound and a full disk. Nothing acked by the spool is lost, and nothing
//! is stored twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, path::Path, thread, time::Duration};

use sysward_tests::{Agent, Server, can_run, not_root, poll, tmpfs::Tmpfs};

/// Short intervals so that an outage of seconds makes hundreds of batches.
const FAST: &str =
    "[intervals]\ncritical = \"100ms\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"300ms\"\n";

fn setup(dir: &Path, buffer: &str) -> (Server, Agent, String) {
    let server = Server::start(dir, "");
    let agent = Agent::configure(
        dir,
        "spooler",
        &server.url(),
        &format!("{FAST}[buffer]\n{buffer}"),
    );
    let id = agent.enroll(&server.token(&[]));
    (server, agent, id)
}

#[test]
fn a_clean_stop_syncs_unsent_batches() {
    let dir = tempfile::tempdir().unwrap();
    // An interval far longer than the test: only the stop can sync.
    let (mut server, mut agent, id) = setup(dir.path(), "fsync = \"1h\"\n");
    agent.start();
    poll(Duration::from_secs(30), "first batches", || {
        (!server.boots(&id).is_empty()).then_some(())
    });
    server.kill();
    poll(Duration::from_secs(30), "batches spooled", || {
        (agent.spool_status().1 >= 5).then_some(())
    });
    agent.stop();
    let log = agent.log_text();
    assert!(
        log.contains("Unsent batches synced to disk before stopping."),
        "{log}"
    );
    assert!(agent.spool_status().1 >= 5, "the batches stay spooled");
}

/// Every boot's batches are all stored, each once: seqs 1..=max with no gap.
fn assert_complete(server: &Server, id: &str) -> u64 {
    let boots = server.boots(id);
    assert!(!boots.is_empty());
    for (count, max) in &boots {
        assert_eq!(count, max, "a boot lost batches: {boots:?}");
    }
    boots.iter().map(|b| b.0).sum()
}

#[test]
fn long_outage_every_batch_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut agent, id) = setup(
        dir.path(),
        "backfill_per_second = 500\nfresh_window = \"1s\"\n",
    );
    agent.start();
    poll(Duration::from_secs(30), "first batches", || {
        (!server.boots(&id).is_empty()).then_some(())
    });
    server.kill();
    let outage_start = sysward_proto_now();
    let (_, waiting) = poll(Duration::from_secs(90), "200 batches spooled", || {
        let st = agent.spool_status();
        (st.1 >= 200).then_some(st)
    });
    let outage_end = sysward_proto_now();
    server.restart();
    poll(Duration::from_secs(60), "the backlog to drain", || {
        (agent.spool_status().1 < 5).then_some(())
    });
    // A clean stop delivers what is left, so the store can be compared with what was made.
    agent.stop();
    assert_eq!(agent.spool_status().1, 0);
    let stored = assert_complete(&server, &id);
    assert!(stored >= waiting, "stored {stored}, spooled {waiting}");
    // Backfilled points keep their own timestamps, inside the outage.
    let during: usize = server
        .read("node_load1")
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .filter(|p| (outage_start..outage_end).contains(&p[0].as_i64().unwrap()))
        .count();
    assert!(
        during >= 50,
        "only {during} node_load1 points from the outage"
    );
}

fn assert_complete_after(boots: &[(u64, u64)]) {
    for (count, max) in boots {
        assert_eq!(count, max, "{boots:?}");
    }
}

fn sysward_proto_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn kill_9_loop_never_loses_or_doubles_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut agent, id) = setup(dir.path(), "");
    // A fixed-seed generator picks the kill points, so a failure can be replayed.
    let mut state: u64 = 0x5eed_1234;
    for _ in 0..15 {
        agent.start();
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Waiting here only chooses where the kill lands; nothing is synchronised on it.
        thread::sleep(Duration::from_millis(150 + (state >> 33) % 1200));
        agent.kill();
    }
    agent.start();
    poll(Duration::from_secs(60), "the spool to drain", || {
        (agent.spool_status().1 == 0).then_some(())
    });
    agent.stop();
    let stored = assert_complete(&server, &id);
    assert!(
        server.boots(&id).len() >= 10,
        "most runs sent something: {:?}",
        server.boots(&id)
    );
    // About two batches per run of 150..1350 ms (startup, one 250 ms gather per batch):
    // enough for the kills to land at every point of the write and send path.
    assert!(stored >= 15, "only {stored} batches stored");
    let verify = agent.cmd(&["spool", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn damaged_segments_are_recovered_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut agent, id) = setup(dir.path(), "segment_size = \"8KiB\"\n");
    server.kill();
    agent.start();
    poll(Duration::from_secs(60), "several segments", || {
        (agent.spool_status().1 >= 60).then_some(())
    });
    agent.kill();
    let (frames_before, _) = agent.spool_status();
    let spool = agent.state_dir.join("spool");
    let mut segs: Vec<_> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    // A flipped bit in the first frame of the first segment.
    let mut first = fs::read(&segs[0]).unwrap();
    first[24 + 36 + 10] ^= 0x40;
    fs::write(&segs[0], first).unwrap();
    // The last segment cut in the middle of a frame.
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    // A zero-length segment.
    fs::write(spool.join("seg-00000000ffffffff.seg"), b"").unwrap();

    let verify = agent.cmd(&["spool", "verify"]);
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(!verify.status.success(), "{report}");
    assert!(report.contains("bad checksums:   1"), "{report}");
    assert!(report.contains("torn frames:     1"), "{report}");
    assert!(report.contains("bad headers:     1"), "{report}");

    server.restart();
    agent.start();
    for kind in ["checksum", "torn", "segment"] {
        let sel = format!("sysward_agent_spool_corrupt_total{{kind=\"{kind}\"}}");
        poll(Duration::from_secs(30), &sel, || {
            (server.latest(&sel).unwrap_or(0.0) >= 1.0).then_some(())
        });
    }
    assert!(spool.join("seg-00000000ffffffff.corrupt").exists());
    poll(Duration::from_secs(60), "the spool to drain", || {
        (agent.spool_status().1 == 0).then_some(())
    });
    agent.stop();
    // Exactly the damaged frame and the torn one are missing, nothing else: the server
    // was down the whole first run, so that run's stored batches are all the rest.
    let boots = server.boots(&id);
    assert_eq!(
        boots[0].0,
        frames_before - 2,
        "{boots:?}, {frames_before} spooled"
    );
    assert_complete_after(&boots[1..]);
}

#[test]
fn spool_bound_drops_oldest_and_the_server_sees_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut agent, id) = setup(
        dir.path(),
        "max_disk = \"64KiB\"\nsegment_size = \"16KiB\"\nbackfill_per_second = 500\n",
    );
    server.kill();
    agent.start();
    poll(Duration::from_secs(90), "the bound to be reached", || {
        agent
            .log_text()
            .contains("Spool bound reached")
            .then_some(())
    });
    let (frames, _) = agent.spool_status();
    assert!(frames > 0);
    let bytes: u64 = fs::read_dir(agent.state_dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes <= 64 * 1024 + 4096, "{bytes}");
    server.restart();
    let sel = "sysward_agent_spool_dropped_batches_total{reason=\"max_disk\"}";
    poll(Duration::from_secs(60), sel, || {
        server.latest(sel).filter(|v| *v >= 1.0)
    });
    // Once the spool has drained nothing more is dropped: every batch missing on the
    // server is one the agent counted as dropped, exactly.
    let (count, max, dropped) = poll(Duration::from_secs(60), "every gap counted", || {
        if agent.spool_status().1 != 0 {
            return None;
        }
        let (count, max) = server.boots(&id)[0];
        let dropped = server.latest(sel)?;
        ((max - count) as f64 == dropped).then_some((count, max, dropped))
    });
    assert!(count < max, "the oldest are gone: {count} of {max}");
    assert!(dropped >= 1.0);
}

#[test]
fn full_disk_keeps_collecting_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    if !can_run(not_root("mount a small tmpfs to fill")) {
        return;
    }
    let mount = Tmpfs::mount(&dir.path().join("small-disk"), "512k");
    let disk = mount.path();
    let spool_dir = disk.join("spool");
    let (mut server, mut agent, id) = setup(
        dir.path(),
        &format!(
            "dir = {:?}\nsegment_size = \"16KiB\"\n",
            spool_dir.display().to_string()
        ),
    );
    // Fill the disk, leaving no room for a segment.
    mount.fill();
    server.kill();
    agent.start();
    poll(Duration::from_secs(30), "write errors", || {
        agent
            .log_text()
            .contains("Cannot write to the spool")
            .then_some(())
    });
    // Space comes back; the agent writes again by itself and still collects.
    mount.free();
    poll(Duration::from_secs(30), "writes to resume", || {
        agent
            .log_text()
            .contains("Spool writes work again")
            .then_some(())
    });
    poll(Duration::from_secs(30), "frames on disk", || {
        (agent.spool_status().0 > 0).then_some(())
    });
    server.restart();
    let sel = "sysward_agent_spool_write_errors_total";
    poll(Duration::from_secs(60), sel, || {
        server.latest(sel).filter(|v| *v >= 1.0)
    });
    poll(Duration::from_secs(60), "the spool to drain", || {
        (agent.spool_status().1 == 0).then_some(())
    });
    agent.stop();
    // The batches of the full-disk time were kept in memory and sent: no gap in this boot
    // beyond what the memory bound dropped (counted).
    let dropped = server
        .latest("sysward_agent_spool_dropped_batches_total{reason=\"disk_full\"}")
        .unwrap_or(0.0);
    let boots = server.boots(&id);
    let (count, max) = boots[0];
    assert_eq!((max - count) as f64, dropped, "{boots:?}");
}
