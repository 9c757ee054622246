//! Power cuts, not just crashes: the server's data directory (and, in the other test, the
//! agent's state directory) is a small XFS file system on a loop device, and
//! `xfs_io -x -c shutdown` cuts it off at a random moment under load without flushing its
//! log, so whatever was not `fsync`ed is gone, as after a real power loss. `kill -9` alone
//! keeps the page cache and could not show a missing `fsync`.
//!
//! After each cut the file system is mounted again (XFS replays its log) and the program
//! restarted on it. The server must hold every batch it acked, once; the agent must start
//! on whatever the cut left and deliver every frame its spool had synced (docs/spool.md:
//! frames written more than one sync interval before the cut).
//!
//! CI cuts a few times; `SYSWARD_POWER_CUTS=N` cuts N times (benches/power-cut.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sysward_tests::{Agent, Server, can_run, gzip, not_root, poll};

/// A small XFS file system in an image file, mounted through a loop device.
struct XfsDisk {
    image: PathBuf,
    at: PathBuf,
    /// The loop device while mounted.
    device: Option<String>,
}

impl XfsDisk {
    /// Makes and mounts it, or says why this host cannot.
    fn create(image: &Path, at: &Path) -> Result<Self, String> {
        if let Some(why) = not_root("mount a loop device") {
            return Err(why);
        }
        if Command::new("mkfs.xfs").arg("-V").output().is_err() {
            return Err("mkfs.xfs is missing (Debian package xfsprogs)".into());
        }
        // XFS's smallest file system.
        fs::File::create(image).unwrap().set_len(300 << 20).unwrap();
        run("mkfs.xfs", &["-q", image.to_str().unwrap()]);
        fs::create_dir_all(at).unwrap();
        let mut disk = Self {
            image: image.to_path_buf(),
            at: at.to_path_buf(),
            device: None,
        };
        disk.mount();
        Ok(disk)
    }

    /// Mounts the image through a loop device of its own. Not `mount -o loop`: that would
    /// take the loop device still attached to the image if there is one, and with it the
    /// old, shut-down file system, which lives on as long as any mount namespace copied
    /// it (`ip netns exec` and `unshare -m` copy every mount). `nouuid` lets the new
    /// mount have the same UUID as that dead one.
    fn mount(&mut self) {
        let device = run_output(
            "losetup",
            &["--find", "--show", self.image.to_str().unwrap()],
        )
        .trim()
        .to_string();
        assert!(device.starts_with("/dev/loop"), "losetup: {device:?}");
        run(
            "mount",
            &["-o", "nouuid", &device, self.at.to_str().unwrap()],
        );
        self.device = Some(device);
    }

    /// The power cut: the file system stops at once, its log not flushed.
    fn cut(&self) {
        run(
            "xfs_io",
            &["-x", "-c", "shutdown", self.at.to_str().unwrap()],
        );
    }

    /// After the processes using it are gone: unmount and mount again, which replays the
    /// log as a boot after a power loss would.
    fn remount(&mut self) {
        run("umount", &[self.at.to_str().unwrap()]);
        self.detach();
        self.mount();
        assert!(
            fs::metadata(&self.at).is_ok(),
            "the file system came back shut down"
        );
    }

    /// Lets go of the loop device (at once, or when its last user does).
    fn detach(&mut self) {
        if let Some(device) = self.device.take() {
            let _ = Command::new("losetup").args(["-d", &device]).status();
        }
    }
}

impl Drop for XfsDisk {
    fn drop(&mut self) {
        if self.device.is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
            self.detach();
        }
    }
}

fn run_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The XFS disk, or `None` after saying why; under CI a host that cannot is a failure.
fn xfs_disk(image: &Path, at: &Path) -> Option<XfsDisk> {
    match XfsDisk::create(image, at) {
        Ok(disk) => Some(disk),
        Err(why) => {
            can_run(Some(why));
            None
        }
    }
}

fn cuts() -> usize {
    std::env::var("SYSWARD_POWER_CUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

fn seeded() -> StdRng {
    let seed = std::env::var("SYSWARD_POWER_CUT_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("seed {seed} (SYSWARD_POWER_CUT_SEED replays it)");
    StdRng::seed_from_u64(seed)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

const SENDERS: usize = 3;
const SERIES_PER_BATCH: usize = 20;

/// One sender's batch `seq`: a point in each of its series, at a time of its own.
fn load_batch(agent_id: &str, sender: usize, seq: u64, base_ms: i64) -> Vec<u8> {
    let t = base_ms + i64::try_from(seq).unwrap() * 10;
    let series: Vec<Value> = (0..SERIES_PER_BATCH)
        .map(|n| {
            json!({"name": "cut_load", "labels": {"sender": sender.to_string(), "n": n.to_string()},
                   "kind": "gauge", "points": [[t, seq as f64]]})
        })
        .collect();
    let batch = json!({"v": 1, "agent_id": agent_id, "boot_id": sender_boot(sender),
                       "seq": seq, "sent_at": t, "series": series});
    gzip(batch.to_string().as_bytes())
}

/// Sends batches 1, 2, ... as an agent does (the next only after the last was acked,
/// retried until acked) until `stop`; returns the highest seq acked.
fn send_until(
    http: &reqwest::blocking::Client,
    url: &str,
    (agent_id, sender, base_ms): (&str, usize, i64),
    first: u64,
    stop: &AtomicBool,
) -> u64 {
    let mut seq = first;
    while !stop.load(Ordering::Relaxed) {
        let acked = http
            .post(url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(load_batch(agent_id, sender, seq, base_ms))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["acked_seq"].as_u64());
        match acked {
            Some(s) => {
                assert_eq!(s, seq, "acked another seq");
                seq += 1;
            }
            // After the cut nothing can be acked; keep trying as an agent would, slowly.
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
    seq - 1
}

fn sender_boot(sender: usize) -> String {
    format!("sender-{sender}")
}

/// Every sender's stored points: each of its series has exactly one point per stored
/// batch, at distinct times.
fn assert_points_once(server: &Server, id: &str) {
    for sender in 0..SENDERS {
        let (batches, _) = boot_stored(server, id, &sender_boot(sender));
        let series = server.read(&format!("cut_load{{sender=\"{sender}\"}}"));
        assert_eq!(series.len(), SERIES_PER_BATCH, "sender {sender}");
        for s in &series {
            let times: Vec<i64> = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[0].as_i64().unwrap())
                .collect();
            assert_eq!(
                times.len() as u64,
                batches,
                "sender {sender}: {}",
                s["labels"]
            );
            assert!(times.windows(2).all(|w| w[0] < w[1]), "duplicate times");
        }
    }
}

#[test]
fn the_server_keeps_every_acked_batch_through_power_cuts() {
    let root = tempfile::tempdir().unwrap();
    let Some(mut disk) = xfs_disk(
        &root.path().join("server-data.img"),
        &root.path().join("server-data"),
    ) else {
        return;
    };
    let mut rng = seeded();
    // The whole file system is smaller than the default reserve.
    let mut server = Server::start_with_storage(root.path(), "min_free = \"16MiB\"", "");
    let agent = Agent::configure(root.path(), "loader", &server.url(), "");
    let id = agent.enroll(&server.token(&[]));
    let url = format!("{}/api/v1/ingest", server.url());
    let base_ms = now_ms() - 3_600_000;
    let mut next = [1u64; SENDERS];
    let mut totals = (0u64, 0u64);
    for cut in 0..cuts() {
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (http, url, id, stop) =
                    (agent.client(&server), url.clone(), id.clone(), stop.clone());
                let first = next[sender];
                thread::spawn(move || send_until(&http, &url, (&id, sender, base_ms), first, &stop))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.random_range(200..2000)));
        disk.cut();
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<u64> = senders.into_iter().map(|s| s.join().unwrap()).collect();
        assert!(
            acked.iter().zip(&next).any(|(&last, &first)| last >= first),
            "cut {cut}: nothing was acked before it"
        );
        server.kill();
        disk.remount();
        server.restart();
        for (sender, &last) in acked.iter().enumerate() {
            let (batches, max_seq) = boot_stored(&server, &id, &sender_boot(sender));
            assert!(
                max_seq >= last && batches >= last,
                "cut {cut}: sender {sender} had seqs up to {last} acked, the server holds \
                 {batches} batches up to seq {max_seq}"
            );
            // The one in flight at the cut may or may not have landed; none after it.
            assert!(max_seq <= last + 1, "cut {cut}: seq {max_seq} never sent");
            assert_eq!(batches, max_seq, "cut {cut}: sender {sender} has a hole");
            totals.0 += last + 1 - next[sender];
            // Send the in-flight one again, as an agent would: acked, stored once.
            next[sender] = last + 1;
        }
        totals.1 += 1;
    }
    // The retries of the batches in flight at the last cut, then every point once.
    let http = agent.client(&server);
    for (sender, &first) in next.iter().enumerate() {
        let resend = load_batch(&id, sender, first, base_ms);
        let resp = http
            .post(&url)
            .header("content-encoding", "gzip")
            .body(resend)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().unwrap());
        assert_eq!(
            boot_stored(&server, &id, &sender_boot(sender)),
            (first, first)
        );
    }
    assert_points_once(&server, &id);
    eprintln!(
        "{} power cuts: {} batches acked before them, every one kept",
        totals.1, totals.0
    );
}

/// Fast batches, a sync interval of 1 s, and a server that is away, so that the spool
/// holds everything the agent makes.
const AGENT: &str = "[intervals]\ncritical = \"100ms\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"300ms\"\n[buffer]\nfsync = \"1s\"\n";

#[test]
fn the_agent_keeps_its_synced_spool_through_power_cuts() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path(), "");
    let mut agent = Agent::configure(root.path(), "cut", &server.url(), AGENT);
    // The state directory (identity and spool) on the disk that loses power; enrolled
    // before the first cut, as on a real host.
    let Some(mut disk) = xfs_disk(&root.path().join("agent.img"), &agent.state_dir) else {
        return;
    };
    let id = agent.enroll(&server.token(&[]));
    let mut rng = seeded();
    let mut boots_cut = BTreeMap::new();
    for cut in 0..cuts() {
        server.kill();
        agent.start();
        // What the spool held, and when: frames older than a sync interval at the cut
        // are promised to survive it.
        let mut seen: Vec<(Instant, u64)> = Vec::new();
        let until = Instant::now() + Duration::from_millis(rng.random_range(1500..4000));
        while Instant::now() < until {
            seen.push((Instant::now(), agent.spool_status().1));
        }
        disk.cut();
        let at_cut = Instant::now();
        agent.kill();
        disk.remount();
        let synced = seen
            .iter()
            .filter(|(t, _)| at_cut.duration_since(*t) > Duration::from_millis(1500))
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(0);
        // Back on: the agent starts on what the cut left and delivers.
        let cut_boot = run_boots(&agent)
            .pop()
            .expect("the agent's boot before the cut");
        server.restart();
        agent.start();
        let new_boot = poll(Duration::from_secs(30), "the agent to start again", || {
            run_boots(&agent).pop().filter(|b| *b != cut_boot)
        });
        poll(Duration::from_secs(60), "the spool to drain", || {
            (agent.spool_status().1 == 0 && boot_stored(&server, &id, &new_boot).0 > 0)
                .then_some(())
        });
        agent.stop();
        let (batches, max_seq) = boot_stored(&server, &id, &cut_boot);
        assert!(
            batches >= synced,
            "cut {cut}: {synced} frames were synced before the cut, {batches} arrived"
        );
        assert_eq!(
            batches, max_seq,
            "cut {cut}: a hole in the cut boot's batches"
        );
        boots_cut.insert(cut, (synced, batches));
    }
    eprintln!("power cuts (frames synced before the cut, delivered after): {boots_cut:?}");
    // A cut soon after the agent started had nothing synced yet and promises nothing; the
    // run as a whole must have put the promise to the test.
    assert!(
        boots_cut.values().any(|&(synced, _)| synced > 0),
        "no cut came after a sync: {boots_cut:?}"
    );
}

/// The boot ids of the agent's runs, oldest first, from its log's "Agent running." lines.
fn run_boots(agent: &Agent) -> Vec<String> {
    agent
        .log_text()
        .lines()
        .filter(|l| l.contains("Agent running."))
        .filter_map(|l| {
            let rest = &l[l.find("boot_id=")? + "boot_id=".len()..];
            let id: String = rest
                .trim_start_matches('"')
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

/// (batches stored, highest seq) of one boot; (0, 0) when none arrived.
fn boot_stored(server: &Server, id: &str, boot: &str) -> (u64, u64) {
    server.agent_info(id)["boots"]
        .as_array()
        .and_then(|b| b.iter().find(|x| x["boot_id"] == boot))
        .map_or((0, 0), |b| {
            (
                b["batches"].as_u64().unwrap(),
                b["max_seq"].as_u64().unwrap(),
            )
        })
}
