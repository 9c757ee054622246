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
//! | `events` | check result | agent, host name, check, state, output, long output, hard, time (see `events.rs`) |
//! | `meta` | figure | bytes per tier |
//! | `forward_log` | stored batch not yet sent to every remote write target | the batch's points again (see `forward.rs`) |
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
    BatchStats, Clock, EventQuery, IngestBatch, IngestOutcome, LabelMatcher, LatestCheck,
    ReadBudget, ReadRequest, Rollup, SeriesData, SeriesLabels, SeriesRead, Store, StoreConfig,
    StoreError, StoreStats, StoredEvent, Tier, TierChoice, codec,
    index::{Index, check_hash, identity_hash},
    rollup::{decode_window, encode_window, merge_into},
};

mod dedup;
mod events;
mod forward;
mod head_log;
mod ingest;
mod maintenance;
mod read;
mod schema;
#[cfg(test)]
mod tests;

pub use forward::{ForwardPosition, ForwardRow};
use head_log::{put_points, read_log_row};
use ingest::{LayoutEntry, Queued};
use schema::{SCHEMA, migrate_first_store};

type Points = Vec<(i64, f64)>;

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
    /// Time spent writing and committing groups, µs; the last commit's wall-clock time
    /// (0 before any); group commits that failed.
    commit_micros: AtomicU64,
    last_commit_ms: AtomicI64,
    commit_failures: AtomicU64,
    /// Reader connections taken from the pool now.
    readers_out: AtomicU64,
    /// Rows of `batch_ranges` and `events` after the last purge.
    dedup_ranges: AtomicU64,
    events: AtomicU64,
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
    /// What remote write out reads (see `forward.rs`).
    forward: forward::ForwardLog,
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

/// A reader connection that goes back to the pool when dropped.
struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
    out: &'a AtomicU64,
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
        self.out.fetch_sub(1, Ordering::Relaxed);
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
        {
            let tx = conn.unchecked_transaction()?;
            let old_rollups = schema::detach_old_rollups(&tx)?;
            tx.execute_batch(SCHEMA)?;
            if old_rollups {
                schema::move_old_rollups(&tx)?;
            }
            dedup::migrate_batch_rows(&tx)?;
            schema::add_event_columns(&tx)?;
            tx.commit()?;
        }
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
            forward: forward::ForwardLog::default(),
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
        self.counters.readers_out.fetch_add(1, Ordering::Relaxed);
        Ok(Reader {
            conn: Some(conn),
            pool: &self.readers,
            out: &self.counters.readers_out,
        })
    }
}

impl Store for TieredStore {
    fn ingest(&self, batch: &IngestBatch<'_>) -> Result<IngestOutcome, StoreError> {
        self.ingest_grouped(batch)
    }

    fn ingest_many(&self, batches: &[IngestBatch<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
        self.ingest_together(batches)
    }

    fn batch_stats(&self, agent_id: &str) -> Result<Vec<BatchStats>, StoreError> {
        let conn = self.reader()?;
        dedup::stats(&conn, agent_id)
    }

    fn healthy(&self) -> bool {
        self.reader()
            .and_then(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .is_ok()
    }

    fn select(&self, selectors: &[Vec<LabelMatcher>]) -> Result<Vec<SeriesLabels>, StoreError> {
        let mem = self.mem_read();
        Ok(mem
            .index
            .select_any(selectors)
            .into_iter()
            .filter_map(|id| mem.index.labels(id))
            .collect())
    }

    fn read_many(
        &self,
        requests: &[ReadRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SeriesRead>>, StoreError> {
        self.read_snapshot(requests, budget)
    }

    fn floor_ms(&self, tier: Tier) -> i64 {
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let floor = now.saturating_sub(self.config.retention.ms(tier));
        match tier {
            Tier::Raw => floor,
            _ => tier.bucket_end(tier.bucket(floor)),
        }
    }

    fn label_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.mem_read().index.label_names())
    }

    fn label_values(&self, label: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.mem_read().index.label_values(label))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_events(query)
    }

    fn latest_checks(&self, agent_id: Option<&str>) -> Result<Vec<LatestCheck>, StoreError> {
        self.read_latest_checks(agent_id)
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
            commit_micros: c.commit_micros.load(Ordering::Relaxed),
            last_commit_ms: c.last_commit_ms.load(Ordering::Relaxed),
            commit_failures: c.commit_failures.load(Ordering::Relaxed),
            readers_used: c.readers_out.load(Ordering::Relaxed),
            readers_idle: self.readers.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
            dedup_ranges: c.dedup_ranges.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
        }
    }
}
