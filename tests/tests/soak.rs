//! A chaos soak that counts every batch. N agents, each in a network namespace of its own,
//! reach one server through a fault-injecting proxy, while a seeded generator kills agents
//! (`kill -9`, restarted after a pause), kills the server (`kill -9`, restarted), takes it
//! away for a while (SIGTERM or `kill -9`, restarted seconds later), reloads it (SIGHUP),
//! and fills the disk of one agent's state directory (a small tmpfs) and frees it again.
//! At the end every agent drains and stops cleanly, and what each agent produced is
//! compared with what the server stored, batch by batch.
//!
//! Environment: `SYSWARD_SOAK_SECS` (default 40), `SYSWARD_SOAK_AGENTS` (default 10),
//! `SYSWARD_SOAK_SEED` (default: from the clock; printed, and a failing run's seed
//! replays its decisions), `SYSWARD_SOAK_INTERVAL_MS` (the agents' critical interval,
//! default 300). `benches/soak.sh` runs it long with release binaries.
//!
//! Accounting, per agent and boot (a boot is one agent process, `boot_id` in its batches):
//! - *produced*: the highest seq of the boot. Every batch is written to the spool before it
//!   is sent and the newest frame always sits in the active segment, which the agent never
//!   removes while it runs; so reading the spool each time the process is down (after a
//!   `kill -9`, and after the final clean stop) finds the boot's last spooled seq. A batch
//!   built but not yet spooled when `kill -9` lands was never acked by the spool and may be
//!   lost; it is the boot's last and leaves no gap. The server's highest seq counts too.
//! - *stored*: the batches of the boot the server holds (`/api/v1/agents`: its dedup table
//!   of seq ranges, each seq at most once).
//! - *missing* = produced - stored, summed over the agent's boots, must be covered by the
//!   drops the agent counted: spool bound (`max_disk`, `max_age`, from its log lines, which
//!   name the count) and a full disk (`reason="disk_full"`, its own metric, as stored on
//!   the server). A counted drop may still have reached the server (its ack was cut), so the
//!   check is missing <= counted; an agent without counted drops must miss nothing.
//! - *duplicates*: the server's dedup makes a second copy of a `(boot, seq)` impossible to
//!   count there, so the data is checked: `node_load1`, sent at every critical tick, must
//!   have strictly increasing timestamps per agent.
//!
//! - A batch the server refused (a dead letter) is a failure too: nothing in this run is
//!   invalid.
//!
//! A failure names the agent, boot and seqs (the stored ranges come from the server's
//! `store.db`, with the `sqlite3` program if there is one) and keeps the run's directory.
//! What the accounting cannot see: a batch lost before it reached the spool. The spool is
//! the agent's only record of its batches, so a kill that took more than the one batch in
//! the making would look the same.
//!
//! The full-disk agent is never killed: while its disk refuses writes its batches wait in
//! memory (`memory_fallback`), which a `kill -9` loses by design (spool.md).
//!
//! Needs root (network namespaces, tmpfs). CI runs as root; elsewhere the test says it did
//! not run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "soak/netns.rs"]
mod netns;
#[path = "soak/proxy.rs"]
mod proxy;
#[path = "soak/rng.rs"]
mod rng;
#[path = "soak/spool.rs"]
mod spool;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::Ordering::Relaxed,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use nix::{sys::signal::Signal, unistd::Pid};
use sysward_tests::{Agent, Server, bin, can_run, not_root, poll, tmpfs::Tmpfs};

use self::{netns::Netns, proxy::Proxy, rng::Rng};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// What the run is asked to do.
struct Settings {
    secs: u64,
    agents: usize,
    seed: u64,
    critical_ms: u64,
}

impl Settings {
    fn from_env() -> Self {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Self {
            secs: env_u64("SYSWARD_SOAK_SECS", 40),
            agents: env_u64("SYSWARD_SOAK_AGENTS", 10).max(1) as usize,
            seed: env_u64("SYSWARD_SOAK_SEED", clock ^ u64::from(std::process::id())),
            critical_ms: env_u64("SYSWARD_SOAK_INTERVAL_MS", 300).max(100),
        }
    }
}

/// What an agent is there to exercise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Killed at random.
    Plain,
    /// Killed at random, with a spool bound small enough for an outage to reach it.
    Bounded,
    /// Its state directory is a small tmpfs that fills up and frees; never killed.
    DiskFull,
}

fn role_of(index: usize) -> Role {
    match index {
        0 => Role::DiskFull,
        i if i % 4 == 3 => Role::Bounded,
        _ => Role::Plain,
    }
}

/// Only the cheap critical collectors; the agent's own metrics come at the standard tier.
fn agent_config(critical_ms: u64, role: Role) -> String {
    let mut c = format!(
        "[intervals]\ncritical = \"{critical_ms}ms\"\nstandard = \"1s\"\n\
         [shipper]\nbackoff_max = \"1s\"\nrequest_timeout = \"3s\"\n"
    );
    for off in [
        "filesystem",
        "diskstats",
        "netdev",
        "netstat",
        "sockstat",
        "tcpstat",
        "processes",
        "host",
        "time",
        "hwmon",
        "systemd",
        "smart",
    ] {
        c.push_str(&format!("[collectors.{off}]\nenabled = false\n"));
    }
    c.push_str("[buffer]\nfresh_window = \"3s\"\nbackfill_per_second = 100\n");
    match role {
        Role::Plain => {}
        Role::Bounded => c.push_str("max_disk = \"64KiB\"\nsegment_size = \"16KiB\"\n"),
        Role::DiskFull => {
            c.push_str("max_disk = \"1MiB\"\nsegment_size = \"64KiB\"\nmemory_fallback = 5\n");
        }
    }
    c
}

/// One agent: its config and identity, its namespace and proxy, its process, and what
/// was seen in its spool whenever it was down.
struct Slot {
    index: usize,
    role: Role,
    agent: Agent,
    id: String,
    dir: PathBuf,
    child: Option<Child>,
    runs: u32,
    restart_at: Option<Instant>,
    kills: u32,
    /// Per boot: the highest seq seen in the spool while the agent was down.
    spooled: BTreeMap<String, u64>,
    /// Frames found unreadable in those reads.
    unreadable: u64,
    // Dropped after the process is gone (see `Drop`): proxy, then namespace, then disk.
    _proxy: Proxy,
    ns: Netns,
    disk: Option<Tmpfs>,
}

impl Slot {
    fn name(&self) -> String {
        format!("soak-{}", self.index)
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts `sysward-agent run` inside the namespace, with a log per run.
    fn spawn(&mut self) {
        assert!(self.child.is_none());
        self.runs += 1;
        self.restart_at = None;
        let log = fs::File::create(self.dir.join(format!("run-{:04}.log", self.runs))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .arg(bin("sysward-agent"))
            .arg("--config")
            .arg(&self.agent.config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn signal(&self, signal: Signal) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), signal);
        }
    }

    /// Waits for the process after a signal, and reads its spool.
    fn reap(&mut self) -> spool::Contents {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.read_spool()
    }

    fn kill(&mut self) -> spool::Contents {
        self.signal(Signal::SIGKILL);
        self.reap()
    }

    /// Records, per boot, the highest seq in the spool. Only while the agent is down.
    fn read_spool(&mut self) -> spool::Contents {
        assert!(self.child.is_none());
        let contents = spool::read(&self.agent.state_dir.join("spool"));
        for f in &contents.frames {
            let max = self.spooled.entry(f.boot.clone()).or_default();
            *max = (*max).max(f.seq);
        }
        self.unreadable += contents.unreadable;
        contents
    }

    /// Every run's log, in order.
    fn logs(&self) -> String {
        let mut names: Vec<PathBuf> = fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("run-") && n.ends_with(".log"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Whether a process has exited (a zombie not yet reaped counts).
fn exited(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(") ")
                .next()
                .is_none_or(|rest| rest.starts_with('Z') || rest.starts_with('X'))
        })
        .unwrap_or(true)
}

/// `sysward_server_batches_duplicate_total` of the running server: batches acked again
/// without being stored again.
fn duplicates_acked(server: &Server) -> u64 {
    let (_, text) = server.admin_get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("sysward_server_batches_duplicate_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// The run's directory: removed after a pass, kept (and named) after a failure.
struct Evidence(Option<tempfile::TempDir>);

impl Evidence {
    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }

    fn keep(&self) -> PathBuf {
        self.path().to_path_buf()
    }
}

impl Drop for Evidence {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && thread::panicking()
        {
            eprintln!("soak: the run's data is kept in {}", dir.keep().display());
        }
    }
}

/// What the faults did.
#[derive(Default)]
struct Tally {
    agent_kills: u64,
    server_kills: u64,
    outages: u64,
    outage_time: Duration,
    reloads: u64,
    disk_fills: u64,
    disk_full_time: Duration,
    /// Duplicates acked by earlier server processes, summed as each was stopped.
    dedup_hits: u64,
}

/// The server, up or down for a while.
struct ServerState {
    server: Server,
    down_until: Option<(Instant, Instant)>,
}

impl ServerState {
    fn up(&self) -> bool {
        self.down_until.is_none()
    }
}

/// Drop counts an agent's logs name: "Spool bound reached; oldest batches dropped." with
/// `batches=N reason="R"`.
fn bound_drops(log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("Spool bound reached")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|v| v.trim_matches('"').to_string())
        };
        let n: u64 = field("batches=").and_then(|v| v.parse().ok()).unwrap();
        let reason = field("reason=").unwrap_or_else(|| "unknown".into());
        *out.entry(reason).or_default() += n;
    }
    out
}

/// The seq ranges the server holds for a boot, from its store (for naming gaps; needs the
/// `sqlite3` program, else says so).
fn stored_ranges(server: &Server, agent: &str, boot: &str) -> String {
    let db = server.root.join("server-data/store.db");
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(&db)
        .arg(format!(
            "SELECT lo || '..=' || hi FROM batch_ranges WHERE agent_id = '{agent}' \
             AND boot_id = '{boot}' ORDER BY lo"
        ))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(", "),
        _ => "(sqlite3 not available to list the stored ranges)".into(),
    }
}

/// Per-agent figures of the final comparison.
#[derive(Default)]
struct Account {
    produced: u64,
    stored: u64,
    missing: u64,
    drops: BTreeMap<String, u64>,
    lost: u64,
    duplicates: u64,
    dead_letters: u64,
    damaged: u64,
    /// Pushes answered "busy" (429) that began a streak of failed deliveries (the agent
    /// logs the first of each streak).
    busy: u64,
}

/// Compares one agent's production with the server; problems are pushed with the agent,
/// boot and seqs named.
fn account(slot: &Slot, server: &Server, problems: &mut Vec<String>) -> Account {
    let mut acc = Account::default();
    let name = slot.name();
    let id = &slot.id;
    let info = server.agent_info(id);
    let held: BTreeMap<String, (u64, u64)> = info["boots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
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
        .collect();
    let boots: BTreeSet<&String> = held.keys().chain(slot.spooled.keys()).collect();
    let mut short = Vec::new();
    for boot in boots {
        let (count, max) = held.get(boot).copied().unwrap_or((0, 0));
        let spooled = slot.spooled.get(boot).copied().unwrap_or(0);
        let produced = max.max(spooled);
        acc.produced += produced;
        acc.stored += count;
        if produced > count {
            acc.missing += produced - count;
            let tail = if spooled > max {
                format!(
                    "; seqs {}..={spooled} were spooled and never stored",
                    max + 1
                )
            } else {
                String::new()
            };
            short.push(format!(
                "boot {boot}: {count} of seqs 1..={produced} stored (server holds {}){tail}",
                stored_ranges(server, id, boot)
            ));
        }
    }
    let logs = slot.logs();
    acc.busy = logs.matches("ingest is busy").count() as u64;
    acc.drops = bound_drops(&logs);
    if slot.role == Role::DiskFull {
        let sel = format!(
            "sysward_agent_spool_dropped_batches_total{{reason=\"disk_full\",agent_id=\"{id}\"}}"
        );
        let full: f64 = server
            .read(&sel)
            .iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p[1].as_f64())
            .fold(0.0, f64::max);
        acc.drops.insert("disk_full".into(), full as u64);
    }
    let counted: u64 = acc.drops.values().sum();
    if acc.missing > counted {
        acc.lost = acc.missing - counted;
        problems.push(format!(
            "{name} ({id}): {} batches missing on the server, {counted} dropped and counted \
             by the agent ({:?}), so {} lost: {}",
            acc.missing,
            acc.drops,
            acc.lost,
            short.join("; ")
        ));
    }
    // Dead letters: the server refused a batch it should have taken.
    let dead = slot.agent.state_dir.join("dead-letter");
    let reasons: Vec<String> = fs::read_dir(&dead)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "reason"))
                .map(|p| {
                    format!(
                        "{}: {}",
                        p.file_stem().unwrap().to_string_lossy(),
                        fs::read_to_string(&p).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let refused = logs.matches("Server refused batch").count() as u64;
    acc.dead_letters = refused.max(reasons.len() as u64);
    if acc.dead_letters > 0 {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("Server refused batch"))
            .take(5)
            .collect();
        problems.push(format!(
            "{name} ({id}): {} batches refused by the server (dead letters {reasons:?}): {lines:?}",
            acc.dead_letters
        ));
    }
    for marker in ["Cannot encode batch", "they are lost"] {
        if logs.contains(marker) {
            problems.push(format!("{name} ({id}): the agent logged {marker:?}"));
        }
    }
    acc.damaged = slot.unreadable
        + ["Torn spool frame", "bad checksum", "header unreadable"]
            .iter()
            .map(|m| logs.matches(m).count() as u64)
            .sum::<u64>();
    // Duplicates in the data: one node_load1 point per critical tick, never two.
    for s in server.read(&format!("node_load1{{agent_id=\"{id}\"}}")) {
        let ts: Vec<i64> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_i64().unwrap())
            .collect();
        for w in ts.windows(2).filter(|w| w[0] >= w[1]) {
            acc.duplicates += 1;
            if acc.duplicates <= 5 {
                problems.push(format!(
                    "{name} ({id}): node_load1 point at {} ms stored twice or out of order \
                     (next {})",
                    w[0], w[1]
                ));
            }
        }
    }
    acc
}

#[test]
fn chaos_soak_loses_and_doubles_no_batch() {
    if !can_run(not_root("make network namespaces nor mount a tmpfs")) {
        return;
    }
    let set = Settings::from_env();
    eprintln!(
        "soak: seed=0x{:016x} secs={} agents={} critical={}ms (replay: SYSWARD_SOAK_SEED=0x{:016x})",
        set.seed, set.secs, set.agents, set.critical_ms, set.seed
    );
    let started = Instant::now();
    let mut rng = Rng::new(set.seed);
    netns::remove_stale();
    let root = Evidence(Some(tempfile::tempdir().unwrap()));
    let block = netns::free_block();

    // Namespaces first: the server's certificate names every host-side address.
    let spaces: Vec<Netns> = (0..set.agents)
        .map(|i| Netns::create(block, i).unwrap_or_else(|e| panic!("namespace {i}: {e}")))
        .collect();
    let sans: Vec<String> = spaces
        .iter()
        .map(|n| format!("\"{}\"", n.host_ip))
        .collect();
    let server = Server::start(
        root.path(),
        &format!("[tls]\nsan = [{}]\n", sans.join(", ")),
    );
    let shared = proxy::Shared::new(SocketAddr::from(([127, 0, 0, 1], server.port)));

    let mut slots: Vec<Slot> = Vec::new();
    for (index, ns) in spaces.into_iter().enumerate() {
        let role = role_of(index);
        let proxy = Proxy::start(ns.host_ip, shared.clone(), rng.fork(index as u64));
        let name = format!("soak-{index}");
        let url = format!("https://{}", proxy.addr);
        let agent = Agent::configure(
            root.path(),
            &name,
            &url,
            &agent_config(set.critical_ms, role),
        );
        let disk = (role == Role::DiskFull).then(|| Tmpfs::mount(&agent.state_dir, "2m"));
        // Enrollment goes to the token's URL (127.0.0.1); `run` uses the proxy's.
        let id = agent.enroll(&server.token(&[]));
        slots.push(Slot {
            index,
            role,
            id,
            dir: root.path().join(&name),
            agent,
            child: None,
            runs: 0,
            restart_at: None,
            kills: 0,
            spooled: BTreeMap::new(),
            unreadable: 0,
            _proxy: proxy,
            ns,
            disk,
        });
    }
    for s in &mut slots {
        s.spawn();
    }
    poll(Duration::from_secs(60), "every agent's first batch", || {
        slots
            .iter()
            .all(|s| !server.boots(&s.id).is_empty())
            .then_some(())
    });
    eprintln!(
        "soak: {} agents up in {:?} (10.{block}.0.0/16)",
        slots.len(),
        started.elapsed()
    );

    let mut srv = ServerState {
        server,
        down_until: None,
    };
    let mut tally = Tally::default();
    let mut disk_full_since: Option<Instant> = None;
    let mut disk_full_until = Instant::now();
    let mut next_fill = Instant::now() + rng.millis(5_000, 20_000);
    shared.chaos.store(true, Relaxed);
    let chaos_start = Instant::now();
    let end = chaos_start + Duration::from_secs(set.secs);
    let mut next_fault = Instant::now() + rng.millis(300, 3_000);
    while Instant::now() < end {
        let now = Instant::now();
        for s in slots
            .iter_mut()
            .filter(|s| s.restart_at.is_some_and(|t| t <= now))
        {
            s.spawn();
        }
        if let Some((since, until)) = srv.down_until
            && until <= now
        {
            srv.server.restart();
            tally.outage_time += since.elapsed();
            srv.down_until = None;
        }
        if let Some(disk) = slots[0].disk.as_ref() {
            match disk_full_since {
                Some(since) if disk_full_until <= now => {
                    disk.free();
                    tally.disk_full_time += since.elapsed();
                    disk_full_since = None;
                    next_fill = now + rng.millis(20_000, 60_000);
                }
                None if next_fill <= now => {
                    disk.fill();
                    tally.disk_fills += 1;
                    disk_full_since = Some(now);
                    disk_full_until = now + rng.millis(5_000, 20_000);
                }
                _ => {}
            }
        }
        if now >= next_fault {
            next_fault = now + rng.millis(300, 3_000);
            match rng.weighted(&[50, 6, 5, 12]) {
                0 => {
                    let candidates: Vec<usize> = slots
                        .iter()
                        .filter(|s| s.running() && s.role != Role::DiskFull)
                        .map(|s| s.index)
                        .collect();
                    if !candidates.is_empty() {
                        let s = &mut slots[candidates[rng.below(candidates.len() as u64) as usize]];
                        s.kill();
                        s.kills += 1;
                        tally.agent_kills += 1;
                        s.restart_at = Some(now + rng.millis(200, 3_000));
                    }
                }
                1 if srv.up() => {
                    tally.dedup_hits += duplicates_acked(&srv.server);
                    srv.server.restart();
                    tally.server_kills += 1;
                }
                2 if srv.up() => {
                    tally.dedup_hits += duplicates_acked(&srv.server);
                    if rng.below(2) == 0 {
                        let pid = srv.server.pid().unwrap();
                        srv.server.signal(Signal::SIGTERM);
                        poll(
                            Duration::from_secs(30),
                            "the server to stop on SIGTERM",
                            || exited(pid).then_some(()),
                        );
                    } else {
                        tally.server_kills += 1;
                    }
                    srv.server.kill();
                    tally.outages += 1;
                    srv.down_until = Some((now, now + rng.millis(2_000, 20_000)));
                }
                3 if srv.up() => {
                    srv.server.signal(Signal::SIGHUP);
                    tally.reloads += 1;
                }
                _ => {}
            }
        }
        // The pause until the next due event is the workload's rhythm, not a wait for a
        // state: nothing below depends on what happened meanwhile.
        let next = slots
            .iter()
            .filter_map(|s| s.restart_at)
            .chain(srv.down_until.map(|(_, u)| u))
            .chain([
                next_fault,
                end,
                if disk_full_since.is_some() {
                    disk_full_until
                } else {
                    next_fill
                },
            ])
            .min()
            .unwrap();
        thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200)),
        );
    }
    let chaos_time = chaos_start.elapsed();

    // Calm: faults off, everything up, every spool empty.
    shared.chaos.store(false, Relaxed);
    let calm_ms = now_ms();
    if let (Some(since), Some(disk)) = (disk_full_since, slots[0].disk.as_ref()) {
        disk.free();
        tally.disk_full_time += since.elapsed();
    }
    if let Some((since, _)) = srv.down_until.take() {
        srv.server.restart();
        tally.outage_time += since.elapsed();
    }
    let server = srv.server;
    for s in slots.iter_mut().filter(|s| !s.running()) {
        s.spawn();
    }
    let drain = Duration::from_secs(180 + set.secs / 5);
    // Many agents keep a busy server answering 429 to some pushes, so a few frames are
    // always in flight: wait until every backlog is down to that, then stop them all at
    // once, which ends the production and leaves each stop's flush little to deliver.
    poll(drain, "every agent's backlog to drain", || {
        slots
            .iter()
            .all(|s| s.agent.spool_status().1 <= 10)
            .then_some(())
    });
    // The full-disk agent counts its memory drops in a metric it sends every second: wait
    // for a value taken after the disk came back, when no more can be dropped.
    if tally.disk_fills > 0 {
        let sel = format!(
            "sysward_agent_spool_dropped_batches_total{{reason=\"disk_full\",agent_id=\"{}\"}}",
            slots[0].id
        );
        poll(
            drain,
            "the full-disk agent's drop count after the disk came back",
            || {
                let newest = server
                    .read(&sel)
                    .iter()
                    .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                    .filter_map(|p| p[0].as_i64())
                    .max()?;
                (newest > calm_ms + 2_000).then_some(())
            },
        );
    }
    // A clean stop delivers what is left; an agent that could not is started once more.
    let mut undelivered: Vec<usize> = (0..slots.len()).collect();
    for round in 0..3 {
        for &i in &undelivered {
            if !slots[i].running() {
                slots[i].spawn();
                let a = &slots[i].agent;
                poll(drain, "a restarted agent's spool to drain", || {
                    (a.spool_status().1 == 0).then_some(())
                });
            }
        }
        for &i in &undelivered {
            slots[i].signal(Signal::SIGTERM);
        }
        undelivered.retain(|&i| slots[i].reap().unacked() > 0);
        if undelivered.is_empty() {
            break;
        }
        let why: Vec<String> = undelivered
            .iter()
            .map(|&i| {
                let s = &slots[i];
                let log = fs::read_to_string(s.dir.join(format!("run-{:04}.log", s.runs)))
                    .unwrap_or_default();
                format!(
                    "{}: {} frames not acked in its spool{}",
                    s.name(),
                    spool::read(&s.agent.state_dir.join("spool")).unacked(),
                    if log.contains("Cannot record ack") {
                        " (acks went unrecorded while its disk was full)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        eprintln!("soak: round {round}: stopped with batches unsent, started again: {why:?}");
    }
    let mut problems = Vec::new();
    for &i in &undelivered {
        problems.push(format!(
            "{} ({}): batches still unsent after three clean stops",
            slots[i].name(),
            slots[i].id
        ));
    }
    for s in &slots {
        let last = s.dir.join(format!("run-{:04}.log", s.runs));
        if !fs::read_to_string(last)
            .unwrap_or_default()
            .contains("Agent stopped.")
        {
            problems.push(format!(
                "{} ({}): the last run did not stop cleanly",
                s.name(),
                s.id
            ));
        }
    }

    // The comparison.
    let mut total = Account::default();
    // Agents that counted no drop, whose every produced batch must be stored.
    let (mut exact_agents, mut exact_produced, mut exact_stored) = (0, 0, 0);
    for s in &slots {
        let a = account(s, &server, &mut problems);
        if a.drops.values().all(|n| *n == 0) {
            exact_agents += 1;
            exact_produced += a.produced;
            exact_stored += a.stored;
        }
        total.produced += a.produced;
        total.stored += a.stored;
        total.missing += a.missing;
        total.lost += a.lost;
        total.duplicates += a.duplicates;
        total.dead_letters += a.dead_letters;
        total.damaged += a.damaged;
        total.busy += a.busy;
        for (reason, n) in a.drops {
            *total.drops.entry(reason).or_default() += n;
        }
    }
    tally.dedup_hits += duplicates_acked(&server);
    let boots: u64 = slots.iter().map(|s| u64::from(s.runs)).sum();
    eprintln!(
        "soak summary: seed=0x{:016x} chaos={:.0}s total={:.0}s agents={} boots={} \
         kills: agents={} server={} outages={} ({:.0}s down) reloads={} disk fills={} ({:.0}s full)",
        set.seed,
        chaos_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        slots.len(),
        boots,
        tally.agent_kills,
        tally.server_kills,
        tally.outages,
        tally.outage_time.as_secs_f64(),
        tally.reloads,
        tally.disk_fills,
        tally.disk_full_time.as_secs_f64(),
    );
    eprintln!("soak summary: proxy {}", shared.counts.summary());
    eprintln!(
        "soak summary: batches produced={} stored={} missing={} dropped-and-counted={:?} \
         lost={} duplicates={} dead-letters={} damaged-frames={} resends-deduplicated>={} \
         busy-429-streaks={}",
        total.produced,
        total.stored,
        total.missing,
        total.drops,
        total.lost,
        total.duplicates,
        total.dead_letters,
        total.damaged,
        tally.dedup_hits,
        total.busy,
    );
    eprintln!(
        "soak summary: {exact_agents} agents counted no drop: produced={exact_produced} \
         stored={exact_stored}"
    );
    assert!(
        problems.is_empty(),
        "soak seed 0x{:016x}: {} problems:\n{}\n(data in {}; kept)",
        set.seed,
        problems.len(),
        problems.join("\n"),
        root.keep().display()
    );
    assert!(total.stored > 0);
}
