//! The tiered store: a durable head, compressed raw chunks and four rollup tiers in one
//! SQLite file (`data_dir/store.db`, WAL, `synchronous=FULL`, incremental auto-vacuum).
//!
//! # Layout
//!
//! | table | one row per | holds |
//! | --- | --- | --- |
//! | `series` | series | id, owning agent, name, labels as canonical JSON, kind |
//! | `batches` | batch | `(agent_id, boot_id, seq)`: exact de-duplication |
//! | `head_log` | stored batch | the batch's raw points (series id, ts, value), until cut |
//! | `ts_chunks` | cut × timestamp group | compressed timestamps shared by many series |
//! | `raw_chunks` | cut × series | compressed values; points at `ts_chunks.id`'s times |
//! | `rollups` | series × tier × window | encoded rollup records (see `rollup.rs`) |
//! | `meta` | figure | bytes per tier |
//!
//! # Life of a point
//!
//! 1. **Ingest** (one transaction, then the ack): the batch identity goes into `batches`
//!    (a conflict means a duplicate: nothing else is written) and the points into one
//!    `head_log` row. Concurrent ingests share that transaction (*group commit*, below). Points older than the out-of-order window behind their series'
//!    newest point (or than raw retention) are flagged *late*: they will go to the rollups
//!    only, never to the raw tier. Only after the commit are the points appended to the
//!    in-memory heads, so memory never shows what a rollback undid.
//!    Late points wait in the head with the others rather than being merged at once: a
//!    batch that spans a gap would otherwise merge its older points ahead of head points
//!    of the same buckets, and those would then land between a record's first and last
//!    point, where a counter's increase can only be approximated.
//! 2. **Cut** (background, per agent, when its head is `chunk_span` old or a series holds
//!    `chunk_max_points`): each series' head is sorted (last write wins on equal
//!    timestamps), series with identical timestamps share one `ts_chunks` row (a collector
//!    stamps every sample of a run with one time, and jittered timestamps cost ~10 bits
//!    each: sharing them is most of the way to one byte per sample), values go to
//!    `raw_chunks`, the points (late ones included) merge into every rollup tier, and the
//!    agent's `head_log` rows are deleted, all in one transaction. Reads of a rollup tier
//!    merge a copy of the head, so nothing waits for the cut to be visible.
//! 3. **Purge** (background): whole chunks and windows past their tier's retention are
//!    deleted, then `incremental_vacuum` returns the pages to the file system. Reads filter
//!    by retention themselves, so what is visible expires exactly on time.
//!
//! Retention counts back from the *newest sample received*, capped by the clock (as
//! Prometheus does): an agent with a clock in the future cannot expire everything, a
//! server that receives nothing keeps what it has, and backfilled history is kept raw.
//!
//! On start the index is rebuilt from `series` and the heads from `head_log`: an acked
//! point is in exactly one of `head_log` and the chunks, whatever stopped the process.
//!
//! # Group commit
//!
//! A commit costs an fsync (milliseconds on real disks), so one commit per batch caps a
//! server at a few hundred batches a second whatever its CPUs. An ingest therefore first
//! does its CPU work without the writer lock (`prepare`: canonical labels,
//! series lookup through a per-agent cache of the previous batch's layout), queues the
//! result, and takes the writer lock. Whoever gets the lock with its batch still queued
//! becomes the leader: it takes the queue (oldest first, bounded), writes every batch in
//! its own savepoint of one transaction (a batch that fails rolls back alone), commits
//! once, applies all of it to memory, and leaves each batch its answer. A thread that gets
//! the lock and finds its answer returns it. So every ack still follows the commit that
//! made its batch durable, and N batches waiting together cost one fsync.
//!
//! # Locks
//!
//! `writer` (the one write connection) serialises group commits and cuts; `mem` (index and
//! heads) is held only for in-memory work; `queue` and `layouts` only for a push or a pop. Readers copy the head under `mem`, *then* read
//! chunks on their own connection (WAL snapshot), so a cut between the two can only
//! duplicate points (merged away), never hide them.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sysward_proto::SeriesKind;
use tracing::{debug, info, warn};

use super::{
    BatchStats, Clock, IngestBatch, IngestOutcome, LabelMatcher, ReadRequest, Rollup, Selector,
    SeriesData, SeriesLabels, SeriesPoints, SeriesRead, Store, StoreConfig, StoreError, StoreStats,
    Tier, TierChoice, codec,
    index::{Index, check_hash, identity_hash},
    rollup::{decode_window, encode_window, merge_into},
};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS agents(id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL UNIQUE);
    CREATE TABLE IF NOT EXISTS series(
        id INTEGER PRIMARY KEY, agent INTEGER NOT NULL, name TEXT NOT NULL,
        labels TEXT NOT NULL, kind INTEGER NOT NULL, UNIQUE(name, labels));
    CREATE TABLE IF NOT EXISTS batches(
        agent_id TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
        received_at INTEGER NOT NULL, PRIMARY KEY(agent_id, boot_id, seq)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events(
        agent_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
        output TEXT NOT NULL, ts INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS head_log(
        id INTEGER PRIMARY KEY, agent INTEGER NOT NULL, at INTEGER NOT NULL, data BLOB NOT NULL);
    CREATE INDEX IF NOT EXISTS head_log_agent ON head_log(agent);
    CREATE TABLE IF NOT EXISTS ts_chunks(
        id INTEGER PRIMARY KEY, agent INTEGER NOT NULL, min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL, data BLOB NOT NULL);
    CREATE INDEX IF NOT EXISTS ts_chunks_max ON ts_chunks(max_ts);
    CREATE TABLE IF NOT EXISTS raw_chunks(
        series_id INTEGER NOT NULL, min_ts INTEGER NOT NULL, ts_chunk INTEGER NOT NULL,
        max_ts INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY(series_id, min_ts, ts_chunk)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS raw_chunks_max ON raw_chunks(max_ts);
    CREATE TABLE IF NOT EXISTS rollups(
        series_id INTEGER NOT NULL, tier INTEGER NOT NULL, win_start INTEGER NOT NULL,
        win_end INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY(series_id, tier, win_start)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS rollups_expiry ON rollups(tier, win_end);
";

/// Pages returned to the file system per purge run, so that one run stays short.
const VACUUM_PAGES: u32 = 20_000;

type Points = Vec<(i64, f64)>;

/// One series' head at a cut: raw points for the chunk, all points for the rollups.
struct Owned {
    id: u32,
    counter: bool,
    raw: Points,
    all: Points,
}

/// A series an ingest created, to enter the index once committed.
struct Created {
    id: u32,
    name: String,
    labels: Vec<(String, String)>,
    kind: SeriesKind,
}

/// A matched series with a copy of its head, taken under the lock.
struct Selected {
    id: u32,
    labels: SeriesLabels,
    kind: SeriesKind,
    head: Points,
    late: Points,
}

/// The head of one series.
#[derive(Debug, Default)]
struct Head {
    /// Points not yet cut, in arrival order.
    points: Points,
    /// Points for the rollups only (see the module doc), in arrival order.
    late: Points,
    /// The newest timestamp ever seen since start (for the out-of-order window).
    max_ts: i64,
    /// Whether its agent's [`AgentHead`] lists it: it holds points not yet cut.
    listed: bool,
}

impl Head {
    fn new() -> Self {
        Self {
            points: Vec::new(),
            late: Vec::new(),
            max_ts: i64::MIN,
            listed: false,
        }
    }
}

/// What an agent holds in the head.
#[derive(Debug)]
struct AgentHead {
    /// Its series with points in the head, each once.
    series: Vec<u32>,
    /// Server time of the oldest append not yet cut.
    since_ms: i64,
    /// Longest head among its series.
    max_len: usize,
}

#[derive(Debug, Default)]
struct Mem {
    index: Index,
    /// By series id. Ids are SQLite rowids, dense from 1, so a vector beats a hash map on
    /// the ingest path's hottest line: one lookup per series per batch, under the lock.
    heads: Vec<Head>,
    agents: HashMap<String, i64>,
    agent_heads: HashMap<i64, AgentHead>,
    head_points: u64,
}

impl Mem {
    fn head(&self, id: u32) -> Option<&Head> {
        self.heads.get(id as usize)
    }

    fn append(&mut self, agent: i64, id: u32, points: &[(i64, f64)], late: bool, at: i64) {
        let i = id as usize;
        if i >= self.heads.len() {
            // Room for the ids to come, not one at a time.
            let len = (i + 1).max(self.heads.len() * 5 / 4);
            self.heads.resize_with(len, Head::new);
        }
        let head = &mut self.heads[i];
        if late {
            head.late.extend_from_slice(points);
        } else {
            head.points.extend_from_slice(points);
        }
        for p in points {
            head.max_ts = head.max_ts.max(p.0);
        }
        let len = head.points.len() + head.late.len();
        let newly_listed = !head.listed;
        head.listed = true;
        self.head_points += points.len() as u64;
        let ah = self.agent_heads.entry(agent).or_insert_with(|| AgentHead {
            series: Vec::new(),
            since_ms: at,
            max_len: 0,
        });
        if newly_listed {
            ah.series.push(id);
        }
        ah.since_ms = ah.since_ms.min(at);
        ah.max_len = ah.max_len.max(len);
    }
}

#[derive(Debug, Default)]
struct Counters {
    samples: AtomicU64,
    late: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    cut_micros: AtomicU64,
    purges: AtomicU64,
    last_purge_micros: AtomicU64,
    bytes: [AtomicI64; 5],
    last_purge_ms: AtomicI64,
    /// Newest sample timestamp received; `i64::MIN` before any.
    newest_ms: AtomicI64,
    /// Group commits, and the batches they carried.
    commits: AtomicU64,
    commit_batches: AtomicU64,
}

/// The store. Cheap to share behind an `Arc`; see the module doc.
pub struct TieredStore {
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
    mem: RwLock<Mem>,
    readers: Mutex<Vec<Connection>>,
    /// Ingests waiting for a group commit.
    queue: Mutex<VecDeque<Queued>>,
    /// Per agent, the series of its last batch in order (see [`LayoutEntry`]).
    layouts: Mutex<HashMap<String, Vec<LayoutEntry>>>,
    counters: Counters,
}

fn kind_code(kind: SeriesKind) -> i64 {
    match kind {
        SeriesKind::Gauge => 0,
        SeriesKind::Counter => 1,
    }
}

fn kind_of(code: i64) -> SeriesKind {
    if code == 1 {
        SeriesKind::Counter
    } else {
        SeriesKind::Gauge
    }
}

fn tier_code(tier: Tier) -> i64 {
    tier as i64
}

// ---------------------------------------------------------------------------------------
// Head log rows: [uvarint series id × 2 + late][uvarint n][n × (zigzag varint ts delta,
// f64 LE)]...

fn put_uvar(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_uvar(data: &[u8], pos: &mut usize) -> Result<u64, StoreError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data
            .get(*pos)
            .ok_or_else(|| StoreError::Corrupt("head log row is truncated".into()))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(StoreError::Corrupt("head log varint is too long".into()))
}

fn put_points(out: &mut Vec<u8>, id: u32, late: bool, points: &[(i64, f64)]) {
    put_uvar(out, u64::from(id) << 1 | u64::from(late));
    put_uvar(out, points.len() as u64);
    let mut prev = 0i64;
    for &(ts, v) in points {
        let d = ts.wrapping_sub(prev);
        put_uvar(out, ((d << 1) ^ (d >> 63)) as u64);
        prev = ts;
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn read_log_row(data: &[u8]) -> Result<Vec<(u32, bool, Points)>, StoreError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < data.len() {
        let key = get_uvar(data, &mut pos)?;
        let late = key & 1 == 1;
        let id = u32::try_from(key >> 1)
            .map_err(|_| StoreError::Corrupt("head log series id".into()))?;
        let n = usize::try_from(get_uvar(data, &mut pos)?).unwrap_or(usize::MAX);
        // Each point takes at least 9 bytes: refuse a count the row cannot hold.
        if n > (data.len() - pos) / 9 {
            return Err(StoreError::Corrupt("head log point count".into()));
        }
        let mut points = Vec::with_capacity(n);
        let mut prev = 0i64;
        for _ in 0..n {
            let z = get_uvar(data, &mut pos)?;
            prev = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            let bytes: [u8; 8] = data
                .get(pos..pos + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("head log row is truncated".into()))?;
            pos += 8;
            points.push((prev, f64::from_le_bytes(bytes)));
        }
        out.push((id, late, points));
    }
    Ok(out)
}

/// Sorts by time and keeps the last written of equal timestamps.
fn sort_dedup(points: &mut Vec<(i64, f64)>) {
    // Stable, so arrival order decides among equal timestamps.
    points.sort_by_key(|p| p.0);
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(points.len());
    for &p in points.iter() {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    *points = out;
}

/// The labels of a batch series as stored: the agent's, with the server's `instance` and
/// `agent_id` replacing any of the same name; sorted. Written into `out` (cleared first),
/// which the caller reuses from series to series.
fn canonical_labels<'a>(
    labels: &'a BTreeMap<String, String>,
    instance: &'a str,
    agent_id: &'a str,
    out: &mut Vec<(&'a str, &'a str)>,
) {
    out.clear();
    out.extend(
        labels
            .iter()
            .filter(|(k, _)| k.as_str() != "instance" && k.as_str() != "agent_id")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    out.push(("instance", instance));
    out.push(("agent_id", agent_id));
    out.sort_unstable();
}

/// Merges sorted points into every rollup tier still within retention. Returns the change
/// in stored bytes per tier.
fn merge_rollups(
    conn: &Connection,
    id: u32,
    counter: bool,
    points: &[(i64, f64)],
    now: i64,
    config: &StoreConfig,
    bytes: &mut [i64; 5],
) -> Result<(), StoreError> {
    let mut get = conn.prepare_cached(
        "SELECT data FROM rollups WHERE series_id = ?1 AND tier = ?2 AND win_start = ?3",
    )?;
    let mut put = conn.prepare_cached(
        "INSERT OR REPLACE INTO rollups(series_id, tier, win_start, win_end, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for tier in Tier::ROLLUPS {
        let cutoff = now.saturating_sub(config.retention.ms(tier));
        let from = points.partition_point(|p| tier.bucket_end(tier.bucket(p.0)) <= cutoff);
        let mut i = from;
        while i < points.len() {
            let (ws, we) = tier.window(points[i].0);
            let j = i + points[i..].partition_point(|p| p.0 < we);
            let old: Option<Vec<u8>> = get
                .query_row(params![id, tier_code(tier), ws], |r| r.get(0))
                .optional()?;
            let mut records = match old.as_deref().map(decode_window) {
                None => Vec::new(),
                Some(Ok(r)) => r,
                Some(Err(error)) => {
                    // Refusing would block this agent's ingest forever; the window is
                    // rebuilt from what arrives from now on.
                    warn!(series = id, tier = tier.name(), %error, "Damaged rollup window replaced.");
                    Vec::new()
                }
            };
            merge_into(&mut records, tier, &points[i..j], counter);
            let data = encode_window(&records);
            bytes[tier as usize] += data.len() as i64 - old.map_or(0, |o| o.len() as i64);
            put.execute(params![id, tier_code(tier), ws, we, data])?;
            i = j;
        }
    }
    Ok(())
}

fn add_bytes(conn: &Connection, bytes: &[i64; 5]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
    )?;
    for tier in Tier::ALL {
        let b = bytes[tier as usize];
        if b != 0 {
            stmt.execute(params![format!("bytes_{}", tier.name()), b])?;
        }
    }
    Ok(())
}

/// A reader connection that goes back to the pool when dropped.
struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Always Some until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    }
}

impl TieredStore {
    /// Opens (or creates) the store at `path` and rebuilds the index and heads.
    pub fn open(
        path: &Path,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Only takes effect on a new, empty file, which is when it matters.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an acked batch survives power loss, which is the ingest contract.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        let old_schema: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'samples'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if old_schema {
            migrate_first_store(&conn)?;
        }
        conn.execute_batch(SCHEMA)?;
        let store = Self {
            config,
            clock,
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            mem: RwLock::new(Mem::default()),
            readers: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            layouts: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        };
        store.load()?;
        Ok(store)
    }

    fn load(&self) -> Result<(), StoreError> {
        let conn = self.lock_writer();
        let mut mem = self.mem_write();
        let mut stmt = conn.prepare("SELECT id, agent_id FROM agents")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, agent) = row?;
            mem.agents.insert(agent, id);
        }
        let mut stmt = conn.prepare("SELECT id, agent, name, labels, kind FROM series")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (id, agent, name, json, kind) = row?;
            let labels: BTreeMap<String, String> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("series {id} labels: {e}")))?;
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let id = u32::try_from(id)
                .map_err(|_| StoreError::Corrupt(format!("series id {id} is out of range")))?;
            mem.index.insert(id, &name, &pairs, kind_of(kind), agent);
        }
        let mut stmt = conn.prepare("SELECT agent, at, data FROM head_log ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut replayed = 0usize;
        for row in rows {
            let (agent, at, data) = row?;
            for (id, late, points) in read_log_row(&data)? {
                replayed += points.len();
                mem.append(agent, id, &points, late, at);
            }
        }
        let newest_chunk: Option<i64> =
            conn.query_row("SELECT max(max_ts) FROM raw_chunks", [], |r| r.get(0))?;
        let newest_head = mem.heads.iter().map(|h| h.max_ts).max();
        let newest = newest_chunk
            .into_iter()
            .chain(newest_head)
            .max()
            .unwrap_or(i64::MIN);
        self.counters.newest_ms.store(newest, Ordering::Relaxed);
        let mut stmt = conn.prepare("SELECT key, value FROM meta")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (key, value) = row?;
            if let Some(tier) = key.strip_prefix("bytes_").and_then(Tier::parse) {
                self.counters.bytes[tier as usize].store(value, Ordering::Relaxed);
            }
        }
        info!(
            series = mem.index.len(),
            head_points = replayed,
            "Store opened."
        );
        Ok(())
    }

    /// The database and its WAL on disk now; a file that cannot be read counts as empty.
    fn file_bytes(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The time retention counts back from: the newest sample, at most the clock's now.
    fn data_now(&self, newest: i64) -> i64 {
        let now = self.clock.now_ms();
        if newest == i64::MIN {
            now
        } else {
            now.min(newest)
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolls back an unfinished transaction, so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mem_read(&self) -> RwLockReadGuard<'_, Mem> {
        self.mem.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mem_write(&self) -> RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(10))?;
                c
            }
        };
        Ok(Reader {
            conn: Some(conn),
            pool: &self.readers,
        })
    }

    /// Starts the background task that cuts heads and purges; it ends when the store is
    /// dropped.
    pub fn start_maintenance(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        // A head is due once `chunk_span` old; checking only every `maintenance_interval`
        // would leave a short span (tests, small servers) waiting far past it.
        let interval = self
            .config
            .maintenance_interval
            .min(self.config.chunk_span / 4)
            .max(Duration::from_millis(100));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(store) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = store.maintain() {
                    warn!(%error, "Store maintenance failed.");
                }
            }
        })
    }

    /// One round of background work: cut due heads; purge when due.
    pub fn maintain(&self) -> Result<(), StoreError> {
        // Heads are cut by the clock: a quiet agent's head must not wait for new data.
        let now = self.clock.now_ms();
        for agent in self.due_agents(now) {
            self.cut_agent(agent)?;
        }
        let purge_every = i64::try_from(self.config.purge_interval.as_millis()).unwrap_or(0);
        let last = self.counters.last_purge_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= purge_every {
            self.counters.last_purge_ms.store(now, Ordering::Relaxed);
            self.purge()?;
        }
        Ok(())
    }

    fn due_agents(&self, now: i64) -> Vec<i64> {
        let span = i64::try_from(self.config.chunk_span.as_millis()).unwrap_or(i64::MAX);
        let mem = self.mem_read();
        mem.agent_heads
            .iter()
            .filter(|(_, h)| {
                now.saturating_sub(h.since_ms) >= span || h.max_len >= self.config.chunk_max_points
            })
            .map(|(&a, _)| a)
            .collect()
    }

    /// Cuts every head now (tests, benchmarks, shutdown).
    pub fn cut_all(&self) -> Result<(), StoreError> {
        let agents: Vec<i64> = self.mem_read().agent_heads.keys().copied().collect();
        for agent in agents {
            self.cut_agent(agent)?;
        }
        Ok(())
    }

    /// Moves one agent's head into chunks and rollups (see the module doc).
    fn cut_agent(&self, agent: i64) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.lock_writer();
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        // The writer lock keeps ingest out, so the snapshot stays the whole head.
        let snapshot: Vec<Owned> = {
            let mem = self.mem_read();
            let Some(ah) = mem.agent_heads.get(&agent) else {
                return Ok(());
            };
            ah.series
                .iter()
                .filter_map(|&id| {
                    let head = mem.head(id)?;
                    if head.points.is_empty() && head.late.is_empty() {
                        return None;
                    }
                    let counter = mem
                        .index
                        .entry(id)
                        .is_some_and(|e| e.kind == SeriesKind::Counter);
                    let mut raw = head.points.clone();
                    sort_dedup(&mut raw);
                    // Late first: on an equal timestamp the raw write is the one kept.
                    let mut all = head.late.clone();
                    all.extend_from_slice(&head.points);
                    sort_dedup(&mut all);
                    Some(Owned {
                        id,
                        counter,
                        raw,
                        all,
                    })
                })
                .collect()
        };
        let mut groups: HashMap<Vec<i64>, Vec<usize>> = HashMap::new();
        for (i, o) in snapshot.iter().enumerate() {
            if o.raw.is_empty() {
                continue;
            }
            groups
                .entry(o.raw.iter().map(|p| p.0).collect())
                .or_default()
                .push(i);
        }
        let mut bytes = [0i64; 5];
        let tx = conn.transaction()?;
        {
            let mut ts_stmt = tx.prepare_cached(
                "INSERT INTO ts_chunks(agent, min_ts, max_ts, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut chunk_stmt = tx.prepare_cached(
                "INSERT INTO raw_chunks(series_id, min_ts, ts_chunk, max_ts, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (ts, members) in &groups {
                let (Some(&min), Some(&max)) = (ts.first(), ts.last()) else {
                    continue;
                };
                let data = codec::encode_ints(ts);
                bytes[Tier::Raw as usize] += data.len() as i64;
                ts_stmt.execute(params![agent, min, max, data])?;
                let ts_id = tx.last_insert_rowid();
                for &i in members {
                    let o = &snapshot[i];
                    let values: Vec<f64> = o.raw.iter().map(|p| p.1).collect();
                    let data = codec::encode_values(&values);
                    bytes[Tier::Raw as usize] += data.len() as i64;
                    chunk_stmt.execute(params![o.id, min, ts_id, max, data])?;
                }
            }
            for o in &snapshot {
                merge_rollups(&tx, o.id, o.counter, &o.all, now, &self.config, &mut bytes)?;
            }
            tx.execute("DELETE FROM head_log WHERE agent = ?1", params![agent])?;
            add_bytes(&tx, &bytes)?;
        }
        tx.commit()?;
        {
            let mut mem = self.mem_write();
            if let Some(ah) = mem.agent_heads.remove(&agent) {
                let mut freed = 0u64;
                for id in ah.series {
                    if let Some(h) = mem.heads.get_mut(id as usize) {
                        freed += (h.points.len() + h.late.len()) as u64;
                        h.points = Vec::new();
                        h.late = Vec::new();
                        h.listed = false;
                    }
                }
                mem.head_points = mem.head_points.saturating_sub(freed);
            }
        }
        for (t, b) in bytes.iter().enumerate() {
            self.counters.bytes[t].fetch_add(*b, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.cuts.fetch_add(1, Ordering::Relaxed);
        self.counters
            .cut_micros
            .fetch_add(micros, Ordering::Relaxed);
        debug!(
            agent,
            series = snapshot.len(),
            groups = groups.len(),
            micros,
            "Head cut."
        );
        Ok(())
    }

    /// Deletes what is past retention and returns free pages to the file system.
    pub fn purge(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let mut freed = [0i64; 5];
        {
            let mut conn = self.lock_writer();
            let tx = conn.transaction()?;
            let raw_cutoff = now.saturating_sub(self.config.retention.ms(Tier::Raw));
            for sql in [
                "DELETE FROM raw_chunks WHERE max_ts < ?1 RETURNING length(data)",
                "DELETE FROM ts_chunks WHERE max_ts < ?1 RETURNING length(data)",
            ] {
                let mut stmt = tx.prepare(sql)?;
                let lens = stmt.query_map(params![raw_cutoff], |r| r.get::<_, i64>(0))?;
                for len in lens {
                    freed[Tier::Raw as usize] += len?;
                }
            }
            for tier in Tier::ROLLUPS {
                let cutoff = now.saturating_sub(self.config.retention.ms(tier));
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM rollups WHERE tier = ?1 AND win_end <= ?2 RETURNING length(data)",
                )?;
                let lens =
                    stmt.query_map(params![tier_code(tier), cutoff], |r| r.get::<_, i64>(0))?;
                for len in lens {
                    freed[tier as usize] += len?;
                }
            }
            let delta = freed.map(|b| -b);
            add_bytes(&tx, &delta)?;
            tx.commit()?;
            // Outside the transaction: it moves pages, a bounded number per run.
            conn.query_row(
                &format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"),
                [],
                |_| Ok(()),
            )
            .optional()?;
        }
        for (t, b) in freed.iter().enumerate() {
            self.counters.bytes[t].fetch_sub(*b, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.purges.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_purge_micros
            .store(micros, Ordering::Relaxed);
        info!(
            raw_bytes = freed[0],
            rollup_bytes = freed[1] + freed[2] + freed[3] + freed[4],
            micros,
            "Store purged."
        );
        Ok(())
    }

    /// The tier a read uses.
    fn choose_tier(&self, choice: TierChoice, start: i64, now: i64) -> Tier {
        match choice {
            TierChoice::Exact(t) => t,
            TierChoice::Auto { step } => {
                let covering: Vec<Tier> = Tier::ALL
                    .into_iter()
                    .filter(|&t| start >= now.saturating_sub(self.config.retention.ms(t)))
                    .collect();
                let Some(&finest) = covering.first() else {
                    return Tier::Mo1;
                };
                match step {
                    None => finest,
                    Some(step) => covering
                        .iter()
                        .rev()
                        .copied()
                        .find(|t| t.resolution_ms() <= step)
                        .unwrap_or(finest),
                }
            }
        }
    }

    /// Raw points of one series from chunks, merged with a head copy.
    fn raw_points(
        conn: &Connection,
        ts_cache: &mut HashMap<i64, Arc<Vec<i64>>>,
        id: u32,
        head: Vec<(i64, f64)>,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let mut chunks = conn.prepare_cached(
            "SELECT ts_chunk, data FROM raw_chunks
             WHERE series_id = ?1 AND min_ts <= ?3 AND max_ts >= ?2 ORDER BY ts_chunk",
        )?;
        let mut ts_stmt = conn.prepare_cached("SELECT data FROM ts_chunks WHERE id = ?1")?;
        let mut points = Vec::new();
        let rows = chunks.query_map(params![id, start, end], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (ts_id, data) = row?;
            let ts = match ts_cache.get(&ts_id) {
                Some(ts) => ts.clone(),
                None => {
                    let blob: Vec<u8> = ts_stmt.query_row(params![ts_id], |r| r.get(0))?;
                    let ts = Arc::new(codec::decode_ints(&blob)?);
                    ts_cache.insert(ts_id, ts.clone());
                    ts
                }
            };
            let values = codec::decode_values(&data)?;
            if values.len() != ts.len() {
                return Err(StoreError::Corrupt(format!(
                    "chunk of series {id} has {} values for {} timestamps",
                    values.len(),
                    ts.len()
                )));
            }
            points.extend(
                ts.iter()
                    .copied()
                    .zip(values)
                    .filter(|p| p.0 >= start && p.0 <= end),
            );
        }
        // Chunks in cut order, then the head: a stable sort keeps the newest write last.
        points.extend(head.into_iter().filter(|p| p.0 >= start && p.0 <= end));
        sort_dedup(&mut points);
        Ok(points)
    }

    fn rollup_records(
        conn: &Connection,
        id: u32,
        tier: Tier,
        counter: bool,
        head: &mut Points,
        start: i64,
        end: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        let first_bucket = tier.bucket(start);
        let mut stmt = conn.prepare_cached(
            "SELECT data FROM rollups WHERE series_id = ?1 AND tier = ?2
             AND win_end > ?3 AND win_start <= ?4 ORDER BY win_start",
        )?;
        let mut records = Vec::new();
        let rows = stmt.query_map(params![id, tier_code(tier), first_bucket, end], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        for row in rows {
            records.extend(decode_window(&row?)?);
        }
        // The head is not merged yet: merge a copy so recent buckets are complete.
        head.retain(|p| p.0 >= first_bucket && p.0 <= end);
        sort_dedup(head);
        merge_into(&mut records, tier, head, counter);
        records.retain(|r| r.start >= first_bucket && r.start <= end);
        Ok(records)
    }

    fn copy_selection(&self, matchers: &[LabelMatcher]) -> Vec<Selected> {
        let mem = self.mem_read();
        mem.index
            .select(matchers)
            .into_iter()
            .filter_map(|id| {
                let labels = mem.index.labels(id)?;
                let kind = mem.index.entry(id)?.kind;
                let (head, late) = mem
                    .head(id)
                    .map(|h| (h.points.clone(), h.late.clone()))
                    .unwrap_or_default();
                Some(Selected {
                    id,
                    labels,
                    kind,
                    head,
                    late,
                })
            })
            .collect()
    }
}

/// The first store kept every sample as a row of `samples` and series without an owning
/// agent. Its series are re-created in the new layout and its samples become head points,
/// which the next cuts compress and roll up.
fn migrate_first_store(conn: &Connection) -> Result<(), StoreError> {
    info!("Converting the first store's tables; this runs once.");
    conn.execute_batch(
        "BEGIN;
         ALTER TABLE series RENAME TO old_series;
         ALTER TABLE samples RENAME TO old_samples;",
    )?;
    conn.execute_batch(SCHEMA)?;
    {
        let mut series = conn.prepare("SELECT id, name, labels, kind FROM old_series")?;
        let rows = series.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut add_agent = conn.prepare("INSERT OR IGNORE INTO agents(agent_id) VALUES (?1)")?;
        let mut agent_key = conn.prepare("SELECT id FROM agents WHERE agent_id = ?1")?;
        let mut add_series = conn.prepare(
            "INSERT INTO series(id, agent, name, labels, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut samples =
            conn.prepare("SELECT ts, value FROM old_samples WHERE series_id = ?1 ORDER BY ts")?;
        let mut log = conn.prepare("INSERT INTO head_log(agent, at, data) VALUES (?1, ?2, ?3)")?;
        for row in rows {
            let (id, name, json, kind) = row?;
            let labels: BTreeMap<String, String> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("old series {id} labels: {e}")))?;
            let agent_id = labels.get("agent_id").cloned().unwrap_or_default();
            add_agent.execute(params![agent_id])?;
            let agent: i64 = agent_key.query_row(params![agent_id], |r| r.get(0))?;
            let code = if kind == "counter" { 1 } else { 0 };
            add_series.execute(params![id, agent, name, json, code])?;
            let points = samples
                .query_map(params![id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let sid = u32::try_from(id)
                .map_err(|_| StoreError::Corrupt(format!("old series id {id}")))?;
            for part in points.chunks(10_000) {
                let mut data = Vec::new();
                put_points(&mut data, sid, false, part);
                log.execute(params![agent, 0, data])?;
            }
        }
    }
    conn.execute_batch("DROP TABLE old_samples; DROP TABLE old_series; COMMIT;")?;
    // The first store was not created with incremental auto-vacuum; VACUUM applies it.
    conn.execute_batch("VACUUM;")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Group commit.

/// Most batches one commit takes: a bound on the latency a batch can add to the others
/// of its group.
const MAX_GROUP_BATCHES: usize = 256;
/// Most points one commit takes, for the same reason.
const MAX_GROUP_POINTS: usize = 500_000;

/// Labels as owned pairs, sorted by name.
type OwnedLabels = Vec<(String, String)>;

/// Per batch of a group: `Ok(None)` for a duplicate, `Ok(Some)` for what it stored, `Err`
/// for a batch that failed alone.
type GroupResults = Vec<Result<Option<Written>, StoreError>>;

/// Where a batch's answer is left by the thread that committed it.
#[derive(Default)]
struct Slot(Mutex<Option<Result<IngestOutcome, StoreError>>>);

impl Slot {
    fn take(&self) -> Option<Result<IngestOutcome, StoreError>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, result: Result<IngestOutcome, StoreError>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }
}

/// One series of an agent's previous batch, at its position in that batch.
///
/// An agent sends the same series in the same order batch after batch, so the series at
/// position `i` is nearly always the one that was there last time: comparing two hashes
/// of its identity with the cached ones replaces an index lookup (a handful of cache
/// misses among a million series, the ingest path's largest cost). Both 64-bit hashes
/// (FNV-1a and SipHash) must match, so a wrong hit needs a 128-bit collision between two
/// series of the same agent; an entry is only made from a full comparison in the index,
/// and series are never deleted, so an id once cached stays right.
struct LayoutEntry {
    key: (u64, u64),
    /// `None` for a series the batch created: not known until its commit.
    id: Option<u32>,
}

/// A batch waiting for a group commit.
struct Queued {
    batch: Prepared,
    slot: Arc<Slot>,
}

/// A batch made ready outside the writer lock: labels made canonical, known series found.
struct Prepared {
    agent_id: String,
    boot_id: String,
    seq: i64,
    /// Server time when it arrived.
    received: i64,
    /// Its newest sample.
    newest: i64,
    points: usize,
    series: Vec<PreparedSeries>,
    events: Vec<sysward_proto::Event>,
}

struct PreparedSeries {
    /// The id when the index knew the series at preparation.
    known: Option<u32>,
    /// Identity hash, name, labels and kind, kept for a series to be created (and looked
    /// up again at the commit: another batch may have created it meanwhile).
    hash: u64,
    new: Option<Created>,
    points: Points,
}

/// What one batch of a group wrote, to reach memory once the group is committed.
struct Written {
    agent_id: String,
    agent: i64,
    created: Vec<(u64, Created)>,
    appends: Vec<(u32, bool, Points)>,
    received: i64,
    newest: i64,
    refused: u64,
}

/// What the batches of a group wrote so far, which later batches of the same group must
/// see although memory does not show it yet.
#[derive(Default)]
struct GroupView {
    agents: HashMap<String, i64>,
    /// Series created in this group: hash → (id, name, labels).
    created: HashMap<u64, Vec<(u32, String, OwnedLabels)>>,
    created_per_agent: HashMap<i64, usize>,
    max_ts: HashMap<u32, i64>,
    newest: i64,
}

impl GroupView {
    fn find(&self, hash: u64, name: &str, labels: &[(String, String)]) -> Option<u32> {
        self.created
            .get(&hash)?
            .iter()
            .find(|c| c.1 == name && c.2 == labels)
            .map(|c| c.0)
    }

    fn absorb(&mut self, w: &Written) {
        self.agents.insert(w.agent_id.clone(), w.agent);
        for (hash, c) in &w.created {
            self.created
                .entry(*hash)
                .or_default()
                .push((c.id, c.name.clone(), c.labels.clone()));
        }
        *self.created_per_agent.entry(w.agent).or_default() += w.created.len();
        for (id, _, points) in &w.appends {
            if let Some(max) = points.iter().map(|p| p.0).max() {
                let e = self.max_ts.entry(*id).or_insert(i64::MIN);
                *e = (*e).max(max);
            }
        }
        self.newest = self.newest.max(w.newest);
    }
}

impl TieredStore {
    fn lock_layouts(&self) -> MutexGuard<'_, HashMap<String, Vec<LayoutEntry>>> {
        // A map of caches: a poisoned one is still consistent enough to use.
        self.layouts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_queue(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        // Only pushes and pops happen under this lock: a poisoned one is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CPU work of an ingest that needs no write lock, so that concurrent ingests do
    /// it in parallel while one of them commits.
    fn prepare(&self, batch: &IngestBatch<'_>) -> Prepared {
        let received = self.clock.now_ms();
        // Taken out of the map, so that a concurrent batch of the same agent simply finds
        // none and looks its series up in the index.
        let layout = self
            .lock_layouts()
            .remove(batch.agent_id)
            .unwrap_or_default();
        let mut next_layout = Vec::with_capacity(batch.series.len());
        let mem = self.mem_read();
        let mut newest = i64::MIN;
        let mut points = 0;
        let mut labels = Vec::new();
        let series = batch
            .series
            .iter()
            .filter(|s| !s.points.is_empty())
            .enumerate()
            .map(|(position, s)| {
                canonical_labels(&s.labels, batch.instance, batch.agent_id, &mut labels);
                let hash = identity_hash(&s.name, &labels);
                let key = (hash, check_hash(&s.name, &labels));
                let cached = layout
                    .get(position)
                    .filter(|e: &&LayoutEntry| e.key == key)
                    .and_then(|e| e.id);
                let known = cached.or_else(|| mem.index.find(hash, &s.name, &labels));
                next_layout.push(LayoutEntry { key, id: known });
                let new = known.is_none().then(|| Created {
                    id: 0,
                    name: s.name.clone(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                    kind: s.kind,
                });
                for p in &s.points {
                    newest = newest.max(p.0);
                }
                points += s.points.len();
                PreparedSeries {
                    known,
                    hash,
                    new,
                    points: s.points.clone(),
                }
            })
            .collect();
        drop(mem);
        self.lock_layouts()
            .insert(batch.agent_id.to_string(), next_layout);
        Prepared {
            agent_id: batch.agent_id.to_string(),
            boot_id: batch.boot_id.to_string(),
            seq: i64::try_from(batch.seq).unwrap_or(i64::MAX),
            received,
            newest,
            points,
            series,
            events: batch.events.to_vec(),
        }
    }

    /// The next group, oldest first, within the bounds.
    fn take_group(&self) -> Vec<Queued> {
        let mut queue = self.lock_queue();
        let mut group = Vec::new();
        let mut points = 0;
        while let Some(next) = queue.front() {
            if !group.is_empty()
                && (group.len() >= MAX_GROUP_BATCHES
                    || points + next.batch.points > MAX_GROUP_POINTS)
            {
                break;
            }
            points += next.batch.points;
            if let Some(q) = queue.pop_front() {
                group.push(q);
            }
        }
        group
    }

    /// Writes a group in one transaction (each batch in a savepoint of its own, so that a
    /// batch that fails fails alone), commits once, then updates memory and answers every
    /// batch. Called with the writer lock held.
    fn commit_group(&self, conn: &mut Connection, group: Vec<Queued>) {
        let (batches, slots): (Vec<Prepared>, Vec<Arc<Slot>>) =
            group.into_iter().map(|q| (q.batch, q.slot)).unzip();
        let written = self.write_group(conn, batches);
        let results: GroupResults = match written {
            Ok(w) => w,
            Err(error) => {
                let message = error.to_string();
                warn!(batches = slots.len(), %error, "Group commit failed.");
                for slot in &slots {
                    slot.set(Err(StoreError::Commit(message.clone())));
                }
                return;
            }
        };
        // Memory follows only what is committed.
        {
            let mut mem = self.mem_write();
            for w in results.iter().flatten().flatten() {
                mem.agents.entry(w.agent_id.clone()).or_insert(w.agent);
                for (_, c) in &w.created {
                    let pairs: Vec<(&str, &str)> = c
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    mem.index.insert(c.id, &c.name, &pairs, c.kind, w.agent);
                }
                for (id, late, points) in &w.appends {
                    mem.append(w.agent, *id, points, *late, w.received);
                }
            }
        }
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters
            .commit_batches
            .fetch_add(slots.len() as u64, Ordering::Relaxed);
        for (slot, result) in slots.iter().zip(results) {
            let answer = result.map(|w| match w {
                None => IngestOutcome::Duplicate,
                Some(w) => {
                    self.count_stored(&w);
                    IngestOutcome::Stored
                }
            });
            slot.set(answer);
        }
    }

    fn count_stored(&self, w: &Written) {
        let count = |late: bool| -> u64 {
            w.appends
                .iter()
                .filter(|a| a.1 == late)
                .map(|a| a.2.len() as u64)
                .sum()
        };
        self.counters
            .newest_ms
            .fetch_max(w.newest, Ordering::Relaxed);
        self.counters
            .samples
            .fetch_add(count(false), Ordering::Relaxed);
        self.counters.late.fetch_add(count(true), Ordering::Relaxed);
        if w.refused > 0 {
            self.counters
                .refused
                .fetch_add(w.refused, Ordering::Relaxed);
            warn!(
                agent_id = w.agent_id,
                refused = w.refused,
                limit = self.config.max_series_per_agent,
                "New series refused: the agent is at its series limit ([storage] max_series_per_agent)."
            );
        }
    }

    /// The transaction of a group: per batch `Ok(None)` for a duplicate, `Ok(Some)` for
    /// what it stored, `Err` for a batch that failed alone; `Err` overall when the commit
    /// itself failed.
    fn write_group(
        &self,
        conn: &mut Connection,
        group: Vec<Prepared>,
    ) -> Result<GroupResults, StoreError> {
        let mut tx = conn.transaction()?;
        let mut view = GroupView {
            newest: i64::MIN,
            ..GroupView::default()
        };
        let mut out = Vec::with_capacity(group.len());
        for batch in group {
            let sp = tx.savepoint()?;
            match self.write_batch(&sp, batch, &view) {
                Ok(written) => {
                    sp.commit()?;
                    if let Some(w) = &written {
                        view.absorb(w);
                    }
                    out.push(Ok(written));
                }
                // Dropping the savepoint rolls back this batch's writes only.
                Err(error) => out.push(Err(error)),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// One batch's rows: its identity (a conflict means a duplicate: nothing else is
    /// written), new series, the head-log row and events.
    fn write_batch(
        &self,
        tx: &Connection,
        batch: Prepared,
        view: &GroupView,
    ) -> Result<Option<Written>, StoreError> {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO batches(agent_id, boot_id, seq, received_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                batch.agent_id,
                batch.boot_id,
                batch.seq,
                batch.received
            ])?;
        if inserted == 0 {
            return Ok(None);
        }
        let mem = self.mem_read();
        let known_agent = mem
            .agents
            .get(&batch.agent_id)
            .or_else(|| view.agents.get(&batch.agent_id))
            .copied();
        let agent = match known_agent {
            Some(a) => a,
            None => {
                tx.execute(
                    "INSERT OR IGNORE INTO agents(agent_id) VALUES (?1)",
                    params![batch.agent_id],
                )?;
                tx.query_row(
                    "SELECT id FROM agents WHERE agent_id = ?1",
                    params![batch.agent_id],
                    |r| r.get::<_, i64>(0),
                )?
            }
        };
        let newest = self
            .counters
            .newest_ms
            .load(Ordering::Relaxed)
            .max(view.newest)
            .max(batch.newest);
        let now = self.data_now(newest);
        let ooo = i64::try_from(self.config.out_of_order_window.as_millis()).unwrap_or(i64::MAX);
        let raw_floor = now.saturating_sub(self.config.retention.ms(Tier::Raw));
        let mut agent_series = mem.index.agent_series(agent)
            + view.created_per_agent.get(&agent).copied().unwrap_or(0);
        let mut log = Vec::new();
        let mut appends: Vec<(u32, bool, Points)> = Vec::new();
        let mut created: Vec<(u64, Created)> = Vec::new();
        let mut refused = 0u64;
        let mut create = tx.prepare_cached(
            "INSERT INTO series(agent, name, labels, kind) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for s in batch.series {
            let id = match (&s.known, &s.new) {
                (Some(id), _) => *id,
                (None, None) => continue,
                (None, Some(new)) => {
                    let pairs: Vec<(&str, &str)> = new
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let found = mem
                        .index
                        .find(s.hash, &new.name, &pairs)
                        .or_else(|| view.find(s.hash, &new.name, &new.labels))
                        .or_else(|| {
                            created
                                .iter()
                                .find(|(h, c)| {
                                    *h == s.hash && c.name == new.name && c.labels == new.labels
                                })
                                .map(|(_, c)| c.id)
                        });
                    match found {
                        Some(id) => id,
                        None => {
                            if agent_series >= self.config.max_series_per_agent {
                                refused += 1;
                                continue;
                            }
                            let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
                            let json = serde_json::to_string(&map)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                            create.execute(params![agent, new.name, json, kind_code(new.kind)])?;
                            let id = u32::try_from(tx.last_insert_rowid()).map_err(|_| {
                                StoreError::Corrupt("series ids are exhausted".into())
                            })?;
                            agent_series += 1;
                            created.push((
                                s.hash,
                                Created {
                                    id,
                                    name: new.name.clone(),
                                    labels: new.labels.clone(),
                                    kind: new.kind,
                                },
                            ));
                            id
                        }
                    }
                }
            };
            let series_newest = s.points.iter().map(|p| p.0).max().unwrap_or(i64::MIN);
            let series_max = mem
                .head(id)
                .map_or(i64::MIN, |h| h.max_ts)
                .max(view.max_ts.get(&id).copied().unwrap_or(i64::MIN))
                .max(series_newest);
            let floor = series_max.saturating_sub(ooo).max(raw_floor);
            // Nearly always every point is recent: no split, no copy.
            if s.points.iter().all(|p| p.0 >= floor) {
                put_points(&mut log, id, false, &s.points);
                appends.push((id, false, s.points));
                continue;
            }
            let (raw, old): (Points, Points) = s.points.iter().partition(|p| p.0 >= floor);
            for (late, points) in [(false, raw), (true, old)] {
                if !points.is_empty() {
                    put_points(&mut log, id, late, &points);
                    appends.push((id, late, points));
                }
            }
        }
        drop(mem);
        if !log.is_empty() {
            tx.prepare_cached("INSERT INTO head_log(agent, at, data) VALUES (?1, ?2, ?3)")?
                .execute(params![agent, batch.received, log])?;
        }
        let mut event = tx.prepare_cached(
            "INSERT INTO events(agent_id, name, state, output, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for e in &batch.events {
            event.execute(params![batch.agent_id, e.name, e.state, e.output, e.ts])?;
        }
        Ok(Some(Written {
            agent_id: batch.agent_id,
            agent,
            created,
            appends,
            received: batch.received,
            newest: batch.newest,
            refused,
        }))
    }
}

impl Store for TieredStore {
    fn ingest(&self, batch: &IngestBatch<'_>) -> Result<IngestOutcome, StoreError> {
        // Group commit (see the module doc): queue the prepared batch, then either find it
        // committed by another thread's group once the writer is ours, or commit the queue.
        let slot = Arc::new(Slot::default());
        let prepared = self.prepare(batch);
        self.lock_queue().push_back(Queued {
            batch: prepared,
            slot: slot.clone(),
        });
        loop {
            let mut conn = self.lock_writer();
            if let Some(result) = slot.take() {
                return result;
            }
            let group = self.take_group();
            if group.is_empty() {
                // Only a leader that panicked between taking the queue and answering could
                // leave a batch neither queued nor answered; say so rather than wait.
                return Err(StoreError::Commit(
                    "the batch was lost by a failed group commit".into(),
                ));
            }
            self.commit_group(&mut conn, group);
        }
    }

    fn series(&self, selector: &Selector) -> Result<Vec<SeriesLabels>, StoreError> {
        self.select(&selector.to_matchers())
    }

    fn read_range(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesPoints>, StoreError> {
        let request = ReadRequest {
            matchers: selector.to_matchers(),
            start,
            end,
            tier: TierChoice::Exact(Tier::Raw),
        };
        Ok(self
            .read(&request)?
            .into_iter()
            .map(|r| SeriesPoints {
                series: r.series,
                points: match r.data {
                    SeriesData::Raw(p) => p,
                    SeriesData::Rollup(_) => Vec::new(),
                },
            })
            .collect())
    }

    fn batch_stats(&self, agent_id: &str) -> Result<Vec<BatchStats>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT boot_id, count(*), max(seq) FROM batches WHERE agent_id = ?1 GROUP BY boot_id ORDER BY min(received_at)",
        )?;
        let rows = stmt
            .query_map(params![agent_id], |r| {
                Ok(BatchStats {
                    boot_id: r.get(0)?,
                    count: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    max_seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn healthy(&self) -> bool {
        self.reader()
            .and_then(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .is_ok()
    }

    fn select(&self, matchers: &[LabelMatcher]) -> Result<Vec<SeriesLabels>, StoreError> {
        let mem = self.mem_read();
        Ok(mem
            .index
            .select(matchers)
            .into_iter()
            .filter_map(|id| mem.index.labels(id))
            .collect())
    }

    fn read(&self, request: &ReadRequest) -> Result<Vec<SeriesRead>, StoreError> {
        if request.end < request.start {
            return Ok(Vec::new());
        }
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let tier = self.choose_tier(request.tier, request.start, now);
        // What is past retention is invisible even before the purge deletes it.
        let floor = now.saturating_sub(self.config.retention.ms(tier));
        let start = match tier {
            Tier::Raw => request.start.max(floor),
            _ => request.start.max(tier.bucket_end(tier.bucket(floor))),
        };
        let selection = self.copy_selection(&request.matchers);
        let conn = self.reader()?;
        // One snapshot for every series of the answer.
        let tx = conn.unchecked_transaction()?;
        let mut ts_cache = HashMap::new();
        let mut out = Vec::with_capacity(selection.len());
        for Selected {
            id,
            labels: series,
            kind,
            head,
            late,
        } in selection
        {
            let data = if start > request.end {
                match tier {
                    Tier::Raw => SeriesData::Raw(Vec::new()),
                    _ => SeriesData::Rollup(Vec::new()),
                }
            } else if tier == Tier::Raw {
                SeriesData::Raw(Self::raw_points(
                    &tx,
                    &mut ts_cache,
                    id,
                    head,
                    start,
                    request.end,
                )?)
            } else {
                let counter = kind == SeriesKind::Counter;
                let mut all = late;
                all.extend(head);
                SeriesData::Rollup(Self::rollup_records(
                    &tx,
                    id,
                    tier,
                    counter,
                    &mut all,
                    start,
                    request.end,
                )?)
            };
            out.push(SeriesRead {
                series,
                kind,
                tier,
                data,
            });
        }
        tx.finish()?;
        Ok(out)
    }

    fn label_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.mem_read().index.label_names())
    }

    fn label_values(&self, label: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.mem_read().index.label_values(label))
    }

    fn stats(&self) -> StoreStats {
        let (series, head_points) = {
            let mem = self.mem_read();
            (mem.index.len() as u64, mem.head_points)
        };
        let c = &self.counters;
        StoreStats {
            series,
            samples_ingested: c.samples.load(Ordering::Relaxed),
            samples_late: c.late.load(Ordering::Relaxed),
            series_refused: c.refused.load(Ordering::Relaxed),
            head_points,
            bytes: std::array::from_fn(|t| {
                u64::try_from(c.bytes[t].load(Ordering::Relaxed)).unwrap_or(0)
            }),
            file_bytes: self.file_bytes(),
            cuts: c.cuts.load(Ordering::Relaxed),
            cut_micros: c.cut_micros.load(Ordering::Relaxed),
            purges: c.purges.load(Ordering::Relaxed),
            last_purge_micros: c.last_purge_micros.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            commit_batches: c.commit_batches.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sysward_proto::Series;

    use super::*;
    use crate::store::{ManualClock, MatchOp, Matcher, rollup::tests::brute_force};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    struct Fixture {
        dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        config: StoreConfig,
        store: TieredStore,
        seq: u64,
    }

    impl Fixture {
        fn new(config: StoreConfig) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(T0));
            let store =
                TieredStore::open(&dir.path().join("s.db"), config.clone(), clock.clone()).unwrap();
            Self {
                dir,
                clock,
                config,
                store,
                seq: 0,
            }
        }

        fn reopen(&mut self) {
            let path = self.dir.path().join("s.db");
            let fresh = TieredStore::open(&path, self.config.clone(), self.clock.clone()).unwrap();
            self.store = fresh;
        }

        fn ingest(&mut self, agent: &str, series: &[Series]) -> IngestOutcome {
            self.seq += 1;
            self.store
                .ingest(&IngestBatch {
                    agent_id: agent,
                    boot_id: "boot",
                    seq: self.seq,
                    instance: "host",
                    series,
                    events: &[],
                })
                .unwrap()
        }

        fn raw(&self, name: &str) -> Vec<(i64, f64)> {
            let sel = Selector {
                name: name.into(),
                matchers: vec![],
            };
            let mut got = self.store.read_range(&sel, i64::MIN, i64::MAX).unwrap();
            assert!(got.len() <= 1);
            got.pop().map(|s| s.points).unwrap_or_default()
        }

        fn rollups(&self, name: &str, tier: Tier) -> Vec<Rollup> {
            let got = self
                .store
                .read(&ReadRequest {
                    matchers: vec![LabelMatcher::eq(NAME_LABEL, name)],
                    start: i64::MIN,
                    end: i64::MAX,
                    tier: TierChoice::Exact(tier),
                })
                .unwrap();
            match got.into_iter().next().map(|r| r.data) {
                Some(SeriesData::Rollup(r)) => r,
                None => Vec::new(),
                Some(other) => panic!("{other:?}"),
            }
        }

        fn count(&self, table: &str) -> i64 {
            self.store
                .lock_writer()
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        }
    }

    use crate::store::NAME_LABEL;

    fn series(name: &str, kind: SeriesKind, points: &[(i64, f64)]) -> Series {
        Series {
            name: name.into(),
            labels: BTreeMap::from([("cpu".into(), "0".into())]),
            kind,
            points: points.to_vec(),
        }
    }

    #[test]
    fn stores_once_and_reads_back() {
        let mut f = Fixture::new(StoreConfig::default());
        let s = [series("m", SeriesKind::Gauge, &[(1000, 1.0), (2000, 2.0)])];
        assert_eq!(f.ingest("ag", &s), IngestOutcome::Stored);
        // A repeat with other values must change nothing.
        let again = [series("m", SeriesKind::Gauge, &[(1000, 50.0)])];
        let dup = f
            .store
            .ingest(&IngestBatch {
                agent_id: "ag",
                boot_id: "boot",
                seq: 1,
                instance: "host",
                series: &again,
                events: &[],
            })
            .unwrap();
        assert_eq!(dup, IngestOutcome::Duplicate);
        assert_eq!(f.raw("m"), vec![(1000, 1.0), (2000, 2.0)]);
        let got = f.store.series(&Selector {
            name: "m".into(),
            matchers: vec![],
        });
        let labels = &got.unwrap()[0].labels;
        assert_eq!(
            (labels["instance"].as_str(), labels["agent_id"].as_str()),
            ("host", "ag")
        );
        let none = Selector {
            name: "m".into(),
            matchers: vec![Matcher {
                label: "cpu".into(),
                negate: false,
                value: "1".into(),
            }],
        };
        assert!(f.store.series(&none).unwrap().is_empty());
        assert_eq!(f.store.batch_stats("ag").unwrap()[0].count, 1);
        assert!(f.store.healthy());
    }

    #[test]
    fn head_survives_restart_and_cut_data_too() {
        let mut f = Fixture::new(StoreConfig::default());
        let pts: Vec<(i64, f64)> = (0..50).map(|i| (T0 + i * 30_000, i as f64)).collect();
        for p in pts.chunks(10) {
            f.ingest("ag", &[series("m", SeriesKind::Gauge, p)]);
        }
        f.reopen();
        assert_eq!(f.raw("m"), pts);
        assert_eq!(f.count("head_log"), 5);
        f.store.cut_all().unwrap();
        assert_eq!(f.count("head_log"), 0);
        assert_eq!(f.count("raw_chunks"), 1);
        assert_eq!(f.raw("m"), pts);
        // A rewrite of a cut timestamp wins over the chunk; a later point goes to the head.
        f.ingest(
            "ag",
            &[series(
                "m",
                SeriesKind::Gauge,
                &[(T0, 99.0), (T0 + 3_000_000, 7.0)],
            )],
        );
        f.reopen();
        let got = f.raw("m");
        assert_eq!(got[0], (T0, 99.0));
        assert_eq!(got.len(), 51);
        assert_eq!(f.store.stats().head_points, 2);
        // The sequence continues after a restart: the de-duplication table is durable.
        assert_eq!(f.ingest("ag", &[]), IngestOutcome::Stored);
    }

    #[test]
    fn series_sharing_timestamps_share_one_timestamp_chunk() {
        let mut f = Fixture::new(StoreConfig::default());
        for i in 0..40 {
            let ts = T0 + i * 30_000 + (i * 7_919) % 600;
            let batch: Vec<Series> = (0..20)
                .map(|c| Series {
                    name: "node_cpu_seconds_total".into(),
                    labels: BTreeMap::from([("cpu".into(), c.to_string())]),
                    kind: SeriesKind::Counter,
                    points: vec![(ts, (1000 * c + i * 3) as f64 / 100.0)],
                })
                .collect();
            f.ingest("ag", &batch);
        }
        f.store.cut_all().unwrap();
        assert_eq!(f.count("ts_chunks"), 1);
        assert_eq!(f.count("raw_chunks"), 20);
        let stats = f.store.stats();
        assert_eq!(stats.samples_ingested, 800);
        // 800 samples: well under a byte each.
        assert!(stats.bytes[0] < 800, "{stats:?}");
        let got = f
            .store
            .read(&ReadRequest {
                matchers: vec![
                    LabelMatcher::eq(NAME_LABEL, "node_cpu_seconds_total"),
                    LabelMatcher::new("cpu", MatchOp::Re, "1[0-9]").unwrap(),
                ],
                start: T0,
                end: T0 + DAY,
                tier: TierChoice::Exact(Tier::Raw),
            })
            .unwrap();
        assert_eq!(got.len(), 10);
        assert!(
            got.iter()
                .all(|s| matches!(&s.data, SeriesData::Raw(p) if p.len() == 40))
        );
    }

    /// Generated counter data with gaps and resets, ingested in batches, cut at random
    /// moments: every tier equals the brute force over the raw points.
    #[test]
    fn rollups_equal_brute_force_through_the_store() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(11);
        let config = StoreConfig {
            retention: crate::store::Retention {
                keep: [Duration::from_secs(400 * 86_400); 5],
            },
            ..StoreConfig::default()
        };
        let mut f = Fixture::new(config);
        let (mut ts, mut v) = (T0, 0.0f64);
        let mut all = Vec::new();
        for _ in 0..3000 {
            ts += if rng.random_bool(0.01) {
                rng.random_range(1..30) * HOUR
            } else {
                30_000 + rng.random_range(0..600)
            };
            v = if rng.random_bool(0.005) {
                f64::from(rng.random_range(0..100))
            } else {
                v + f64::from(rng.random_range(0..500))
            };
            all.push((ts, v));
        }
        for batch in all.chunks(17) {
            f.clock.set(batch[batch.len() - 1].0);
            f.ingest("ag", &[series("c", SeriesKind::Counter, batch)]);
            if rng.random_bool(0.1) {
                f.store.cut_all().unwrap();
            }
        }
        // Part of the data is still in the head: reads merge it.
        for tier in Tier::ROLLUPS {
            assert!(
                f.rollups("c", tier) == brute_force(&all, tier, true),
                "{tier:?}"
            );
        }
        let late = f.store.stats().samples_late;
        f.store.cut_all().unwrap();
        f.reopen();
        for tier in Tier::ROLLUPS {
            let got = f.rollups("c", tier);
            assert!(got == brute_force(&all, tier, true), "{tier:?}");
            let raw_inc: f64 = all
                .windows(2)
                .map(|w| crate::store::rollup::inc(w[0].1, w[1].1))
                .sum();
            assert_eq!(crate::store::total_increase(&got), raw_inc);
        }
        // Batches that span a gap of more than the out-of-order window send their older
        // points to the rollups only.
        assert!(late > 0);
        assert_eq!(f.raw("c").len() as u64 + late, all.len() as u64);
    }

    #[test]
    fn late_points_go_to_rollups_only_and_are_counted() {
        let mut f = Fixture::new(StoreConfig::default());
        f.ingest(
            "ag",
            &[series("g", SeriesKind::Gauge, &[(T0 + 3 * HOUR, 10.0)])],
        );
        // Two hours behind the newest point: past the 1 h window.
        f.ingest(
            "ag",
            &[series(
                "g",
                SeriesKind::Gauge,
                &[(T0 + HOUR, 4.0), (T0 + 2 * HOUR + 30 * MIN, 6.0)],
            )],
        );
        assert_eq!(
            f.raw("g"),
            vec![(T0 + 2 * HOUR + 30 * MIN, 6.0), (T0 + 3 * HOUR, 10.0)]
        );
        assert_eq!(f.store.stats().samples_late, 1);
        let h = f.rollups("g", Tier::H1);
        assert_eq!(
            h.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            vec![(T0 + HOUR, 1), (T0 + 2 * HOUR, 1), (T0 + 3 * HOUR, 1)]
        );
        let d = f.rollups("g", Tier::D1);
        assert_eq!(
            (d[0].count, d[0].sum, d[0].min, d[0].max),
            (3, 20.0, 4.0, 10.0)
        );
    }

    #[test]
    fn per_agent_series_limit_refuses_new_series_only() {
        let mut f = Fixture::new(StoreConfig {
            max_series_per_agent: 3,
            ..StoreConfig::default()
        });
        let batch: Vec<Series> = (0..5)
            .map(|i| series(&format!("m{i}"), SeriesKind::Gauge, &[(T0, 1.0)]))
            .collect();
        f.ingest("ag", &batch);
        assert_eq!(f.store.stats().series, 3);
        assert_eq!(f.store.stats().series_refused, 2);
        // Known series keep flowing; another agent has its own budget.
        f.ingest("ag", &[series("m0", SeriesKind::Gauge, &[(T0 + 1, 2.0)])]);
        assert_eq!(f.raw("m0").len(), 2);
        f.ingest("other", &batch);
        assert_eq!(f.store.stats().series, 6);
    }

    /// With a test clock, data moves through the tiers and is purged on time.
    #[test]
    fn retention_moves_data_through_the_tiers() {
        let mut f = Fixture::new(StoreConfig::default());
        let pts: Vec<(i64, f64)> = (0..120).map(|i| (T0 + i * 30_000, 1.0)).collect();
        f.ingest("ag", &[series("g", SeriesKind::Gauge, &pts)]);
        f.clock.advance(Duration::from_secs(3 * 3600));
        f.store.maintain().unwrap(); // cuts: the head is older than 2 h
        assert_eq!(f.count("head_log"), 0);
        let alive = |f: &mut Fixture, at: i64| {
            // Retention counts from the newest sample: keep a heartbeat series current.
            f.clock.set(at);
            f.ingest("ag", &[series("beat", SeriesKind::Gauge, &[(at, 0.0)])]);
            f.store.purge().unwrap();
        };
        alive(&mut f, T0 + DAY + HOUR);
        assert!(f.raw("g").is_empty());
        assert_eq!(f.count("raw_chunks"), 0);
        assert_eq!(f.count("ts_chunks"), 0);
        assert_eq!(f.rollups("g", Tier::M5).len(), 12);
        // Auto picks the finest tier that covers the range.
        let auto = |f: &Fixture, start: i64| {
            f.store
                .read(&ReadRequest {
                    matchers: vec![LabelMatcher::eq(NAME_LABEL, "g")],
                    start,
                    end: i64::MAX,
                    tier: TierChoice::Auto { step: None },
                })
                .unwrap()[0]
                .tier
        };
        assert_eq!(auto(&f, T0 + DAY + HOUR - 10 * HOUR), Tier::Raw);
        assert_eq!(auto(&f, T0), Tier::M5);
        alive(&mut f, T0 + 8 * DAY);
        assert!(f.rollups("g", Tier::M5).is_empty());
        assert_eq!(f.rollups("g", Tier::H1).len(), 1);
        assert_eq!(auto(&f, T0), Tier::H1);
        alive(&mut f, T0 + 91 * DAY);
        assert!(f.rollups("g", Tier::H1).is_empty());
        assert_eq!(f.rollups("g", Tier::D1)[0].count, 120);
        alive(&mut f, T0 + 366 * DAY);
        assert!(f.rollups("g", Tier::D1).is_empty());
        assert_eq!(f.rollups("g", Tier::Mo1)[0].count, 120);
        alive(&mut f, T0 + 5 * 365 * DAY + 40 * DAY);
        assert!(f.rollups("g", Tier::Mo1).is_empty());
        // Disk space is freed a whole window at a time (a year for monthly records); once
        // the window is past retention, every window of "g" is gone, not just hidden.
        alive(&mut f, T0 + 6 * 366 * DAY);
        let left: i64 = f
            .store
            .lock_writer()
            .query_row(
                "SELECT count(*) FROM rollups r JOIN series s ON s.id = r.series_id WHERE s.name = 'g'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        assert!(f.store.stats().purges >= 5);
    }

    #[test]
    fn first_store_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE series(id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL,
                     kind TEXT NOT NULL, UNIQUE(name, labels));
                 CREATE TABLE samples(series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                     PRIMARY KEY(series_id, ts)) WITHOUT ROWID;
                 CREATE TABLE batches(agent_id TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
                     received_at INTEGER NOT NULL, PRIMARY KEY(agent_id, boot_id, seq)) WITHOUT ROWID;
                 INSERT INTO series VALUES (7, 'm', '{\"agent_id\":\"ag\",\"instance\":\"h\"}', 'counter');
                 INSERT INTO samples VALUES (7, 1000, 1.5), (7, 2000, 2.5);
                 INSERT INTO batches VALUES ('ag', 'b', 1, 0);",
            )
            .unwrap();
        }
        let clock = Arc::new(ManualClock::new(T0));
        let store = TieredStore::open(&path, StoreConfig::default(), clock).unwrap();
        let sel = Selector {
            name: "m".into(),
            matchers: vec![],
        };
        let got = store.read_range(&sel, 0, i64::MAX).unwrap();
        assert_eq!(got[0].points, vec![(1000, 1.5), (2000, 2.5)]);
        assert_eq!(got[0].series.labels["agent_id"], "ag");
        assert_eq!(store.batch_stats("ag").unwrap()[0].max_seq, 1);
        store.cut_all().unwrap();
        assert_eq!(
            store.read_range(&sel, 0, i64::MAX).unwrap()[0].points.len(),
            2
        );
    }

    /// Many threads ingest at once, creating the same series and repeating seqs: batches
    /// share commits, every point is stored once, every series exists once.
    #[test]
    fn concurrent_ingests_share_commits_and_store_everything_once() {
        let f = Fixture::new(StoreConfig::default());
        let threads = 16u64;
        let per_thread = 30u64;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let store = &f.store;
                scope.spawn(move || {
                    let boot = format!("boot-{t}");
                    for seq in 1..=per_thread {
                        let ts = T0 + (seq * threads + t) as i64 * 1000;
                        let batch: Vec<Series> = (0..10)
                            .map(|i| series(&format!("m{i}"), SeriesKind::Gauge, &[(ts, t as f64)]))
                            .collect();
                        let b = IngestBatch {
                            agent_id: "ag",
                            boot_id: &boot,
                            seq,
                            instance: "host",
                            series: &batch,
                            events: &[],
                        };
                        assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Stored);
                        if seq % 10 == 0 {
                            assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Duplicate);
                        }
                    }
                });
            }
        });
        let stats = f.store.stats();
        assert_eq!(stats.series, 10);
        assert_eq!(stats.samples_ingested, threads * per_thread * 10);
        assert_eq!(
            stats.commit_batches,
            threads * (per_thread + per_thread / 10)
        );
        assert!(stats.commits < stats.commit_batches, "{stats:?}");
        for i in 0..10 {
            assert_eq!(f.raw(&format!("m{i}")).len() as u64, threads * per_thread);
        }
        let stats_of = |f: &Fixture| f.store.batch_stats("ag").unwrap();
        assert!(
            stats_of(&f)
                .iter()
                .all(|b| b.count == per_thread && b.max_seq == per_thread)
        );
        // What memory showed is what was committed.
        let mut f = f;
        f.reopen();
        assert_eq!(f.store.stats().series, 10);
        assert_eq!(f.raw("m3").len() as u64, threads * per_thread);
        assert_eq!(f.count("series"), 10);
    }

    /// The per-agent layout cache: series that move, appear or vanish between batches, and
    /// two agents with the same series, still land each point in its own series.
    #[test]
    fn reordered_and_changing_series_land_in_the_right_series() {
        let mut f = Fixture::new(StoreConfig::default());
        let batch = |names: &[&str], ts: i64| -> Vec<Series> {
            names
                .iter()
                .map(|n| series(n, SeriesKind::Gauge, &[(ts, n.len() as f64 + ts as f64)]))
                .collect()
        };
        let orders: [&[&str]; 5] = [
            &["a", "bb", "ccc"],
            &["a", "bb", "ccc"],
            &["ccc", "a", "bb"],
            &["a", "dddd", "bb", "ccc"],
            &["bb", "ccc"],
        ];
        for (i, names) in orders.iter().enumerate() {
            let ts = T0 + i as i64 * 1000;
            f.ingest("ag", &batch(names, ts));
            f.ingest("other", &batch(names, ts));
        }
        for name in ["a", "bb", "ccc", "dddd"] {
            let got = f.store.read_range(
                &Selector {
                    name: name.into(),
                    matchers: vec![],
                },
                0,
                i64::MAX,
            );
            let got = got.unwrap();
            assert_eq!(got.len(), 2, "{name}: one series per agent");
            for s in got {
                let want: Vec<(i64, f64)> = orders
                    .iter()
                    .enumerate()
                    .filter(|(_, names)| names.contains(&name))
                    .map(|(i, _)| {
                        let ts = T0 + i as i64 * 1000;
                        (ts, name.len() as f64 + ts as f64)
                    })
                    .collect();
                assert_eq!(s.points, want, "{name} of {}", s.series.labels["agent_id"]);
            }
        }
        assert_eq!(f.store.stats().series, 8);
    }

    #[test]
    fn head_log_rows_round_trip_and_refuse_garbage() {
        let mut row = Vec::new();
        put_points(&mut row, 3, false, &[(5, 1.0), (-7, f64::NAN)]);
        put_points(&mut row, 9, true, &[(i64::MAX, -0.0)]);
        let back = read_log_row(&row).unwrap();
        assert_eq!((back[0].0, back[0].1), (3, false));
        assert_eq!((back[1].0, back[1].1, back[1].2[0].0), (9, true, i64::MAX));
        assert!(back[0].2[1].1.is_nan());
        assert!(read_log_row(&row[..row.len() - 1]).is_err());
        assert!(read_log_row(&[0xff; 12]).is_err());
    }
}
