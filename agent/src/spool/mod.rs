//! The outage spool: every batch is written to disk as one checksummed frame before it is
//! sent, and removed only after the server acked it. Implements [`BatchQueue`].
//!
//! Layout of `dir` (default `state_dir/spool`, mode 0700):
//! - `seg-<id>.seg`: segment files (format in [`frame`]), appended in order; a new one is
//!   started past `segment_size`. Only the newest segment is written to.
//! - `acks`: an append-only log of acked frame ids (`id u64 | crc32c u32`), compacted when
//!   segments go.
//! - `lock`: held with `flock` while an agent uses the spool.
//!
//! Invariants:
//! - A frame is durable (per the fsync policy) before `push` returns.
//! - A segment is unlinked only when every frame in it is acked, and only after the ack log
//!   recording that is synced; a crash at any point leads at worst to frames sent again,
//!   which the server de-duplicates on (agent, boot, seq).
//! - Recovery never refuses to start: a torn tail is cut off, a frame with a bad checksum
//!   is skipped, a segment without a valid header is renamed `*.corrupt`; each is counted.
//! - Bounds: past `max_disk` or `max_age` the oldest segment goes, its unacked frames
//!   counted as dropped, so that fresh data always fits.
//! - When a write fails (disk full), the batch is kept in memory, up to `memory_fallback`
//!   batches (oldest dropped and counted past that); writing resumes by itself.
//!
//! Sending order ([`BatchQueue::next`]): frames younger than `fresh_window` go first
//! (priority ones — check results, the critical tier — before others, oldest first among
//! equals); older frames, the backlog of an outage, drain behind them at no more than
//! `backfill_per_second`, priority first.

pub(crate) mod frame;
mod inspect;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::Context;
pub(crate) use inspect::inspect;
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use self::frame::{
    Decoded, FLAG_PRIORITY, FrameMeta, SEGMENT_HEADER_LEN, decode_frame, decode_segment_header,
    encode_frame, encode_segment_header,
};
use crate::{
    metrics::AgentMetrics,
    queue::{BatchQueue, NewBatch, Next, QueuedBatch},
    scheduler::now_ms,
};

/// When frames reach the disk for sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every frame: nothing acknowledged by `push` is lost to power loss.
    EveryBatch,
    /// At most this often, and only when a frame written since the last sync is not yet
    /// acked: a power loss can take the unacked frames of the last interval. A crash of
    /// the agent alone loses nothing, since written data is in the kernel's cache.
    Interval(Duration),
}

/// The spool's settings, from `[buffer]`.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Where the segments live (`[buffer] dir`).
    pub dir: PathBuf,
    /// Past this many bytes on disk the oldest segment goes.
    pub max_disk: u64,
    /// Segments whose newest frame is older than this go.
    pub max_age: Duration,
    /// A new segment is started past this size.
    pub segment_size: u64,
    /// When frames reach the disk for sure.
    pub fsync: FsyncPolicy,
    /// Batches kept in memory while the disk refuses writes.
    pub memory_fallback: usize,
    /// Frames younger than this go before the backlog.
    pub fresh_window: Duration,
    /// How many backlog frames may go per second; 0 for no limit.
    pub backfill_per_second: u32,
}

const ACK_ENTRY: usize = 12;

struct Segment {
    path: PathBuf,
    bytes: u64,
    unacked: usize,
    newest_ms: i64,
}

#[derive(Clone, Copy)]
struct FrameLoc {
    meta: FrameMeta,
    segment: u64,
    payload_offset: u64,
    len: u32,
}

struct Active {
    id: u64,
    file: File,
    len: u64,
}

struct Inner {
    cfg: SpoolConfig,
    segments: BTreeMap<u64, Segment>,
    active: Option<Active>,
    frames: BTreeMap<u64, FrameLoc>,
    priority: BTreeSet<u64>,
    /// Acked ids whose segments still exist, with their segment: what a compacted ack log
    /// must keep.
    acked: BTreeMap<u64, u64>,
    acks: File,
    ack_entries: usize,
    memory: BTreeMap<u64, (FrameMeta, Arc<Vec<u8>>)>,
    next_id: u64,
    next_segment: u64,
    /// Frames written since the last sync (`Interval` policy). A sync that finds all of
    /// them acked has nothing to protect: the server holds them, so it skips the
    /// `fdatasync`. With a reachable server that acks within the interval, a steady
    /// agent never syncs at all.
    unsynced_frames: Vec<u64>,
    last_backfill: Option<Instant>,
    write_failing: bool,
}

/// The spool: open it with [`Spool::open`], use it through [`BatchQueue`].
pub struct Spool {
    inner: Mutex<Inner>,
    notify: Notify,
    /// Signalled when a frame was written unsynced (`Interval` policy).
    written: Notify,
    /// Signalled when the server acked a frame (`Interval` policy's early end).
    acked: Notify,
    metrics: Arc<AgentMetrics>,
    _lock: Flock<File>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016x}.seg"))
}

fn seg_id_of(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".seg")?;
    u64::from_str_radix(hex, 16).ok()
}

fn sync_dir(dir: &Path) {
    // Makes creations, renames and unlinks durable; failing here costs only durability.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Segment files in id order.
pub(crate) fn list_segments(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str().and_then(seg_id_of) {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the ack log; returns the ids and the byte length of its intact part.
pub(crate) fn read_acks(path: &Path) -> (BTreeSet<u64>, u64) {
    let mut data = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut data);
    }
    let mut ids = BTreeSet::new();
    let mut good = 0;
    for entry in data.chunks_exact(ACK_ENTRY) {
        let id_bytes: [u8; 8] = entry[..8].try_into().unwrap_or([0; 8]);
        let crc = u32::from_le_bytes(entry[8..12].try_into().unwrap_or([0; 4]));
        if crc32c::crc32c(&id_bytes) != crc {
            break;
        }
        ids.insert(u64::from_le_bytes(id_bytes));
        good += ACK_ENTRY as u64;
    }
    (ids, good)
}

fn ack_entry(id: u64) -> [u8; ACK_ENTRY] {
    let mut e = [0u8; ACK_ENTRY];
    e[..8].copy_from_slice(&id.to_le_bytes());
    e[8..].copy_from_slice(&crc32c::crc32c(&id.to_le_bytes()).to_le_bytes());
    e
}

impl Spool {
    /// Opens (and recovers) the spool in `cfg.dir`.
    pub fn open(cfg: SpoolConfig, metrics: Arc<AgentMetrics>) -> anyhow::Result<Self> {
        crate::identity::create_private_dir(&cfg.dir)?;
        let dir = cfg.dir.clone();
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("lock"))
            .with_context(|| format!("cannot open {}", dir.join("lock").display()))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            anyhow::anyhow!("{} is in use by another agent ({e})", dir.display())
        })?;

        let acks_path = dir.join("acks");
        let (logged_acks, _) = read_acks(&acks_path);
        let mut segments = BTreeMap::new();
        let mut frames = BTreeMap::new();
        let mut priority = BTreeSet::new();
        let mut acked = BTreeMap::new();
        let mut max_id = logged_acks.last().copied().unwrap_or(0);
        let mut max_segment = 0;
        for (seg_id, path) in list_segments(&dir)? {
            max_segment = max_segment.max(seg_id);
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .with_context(|| format!("cannot read {}", path.display()))?;
            if decode_segment_header(&data) != Some(seg_id) {
                let aside = path.with_extension("corrupt");
                warn!(path = %path.display(), "Spool segment header unreadable; renamed aside.");
                fs::rename(&path, &aside)?;
                metrics.spool_corrupt_segments.inc();
                continue;
            }
            let mut at = SEGMENT_HEADER_LEN;
            let mut seg = Segment {
                path: path.clone(),
                bytes: 0,
                unacked: 0,
                newest_ms: 0,
            };
            loop {
                match decode_frame(&data, at) {
                    Decoded::Frame {
                        meta,
                        payload,
                        next,
                    } => {
                        max_id = max_id.max(meta.id);
                        seg.newest_ms = seg.newest_ms.max(meta.created_ms);
                        if logged_acks.contains(&meta.id) {
                            acked.insert(meta.id, seg_id);
                        } else {
                            seg.unacked += 1;
                            if meta.priority() {
                                priority.insert(meta.id);
                            }
                            frames.insert(
                                meta.id,
                                FrameLoc {
                                    meta,
                                    segment: seg_id,
                                    payload_offset: payload.start as u64,
                                    len: payload.len() as u32,
                                },
                            );
                        }
                        at = next;
                    }
                    Decoded::BadChecksum { next } => {
                        warn!(path = %path.display(), offset = at, "Spool frame with a bad checksum skipped.");
                        metrics.spool_corrupt_frames.inc();
                        at = next;
                    }
                    Decoded::Torn => {
                        warn!(path = %path.display(), offset = at, "Torn spool frame cut off.");
                        metrics.spool_torn_frames.inc();
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(at as u64)?;
                        f.sync_all()?;
                        break;
                    }
                    Decoded::End => break,
                }
            }
            seg.bytes = at as u64;
            segments.insert(seg_id, seg);
        }
        // Rewrite the ack log with only what still matters; a torn tail goes with it.
        let acks = rewrite_acks(&acks_path, acked.keys())?;
        let mut inner = Inner {
            ack_entries: acked.len(),
            cfg,
            segments,
            active: None,
            frames,
            priority,
            acked,
            acks,
            memory: BTreeMap::new(),
            next_id: max_id + 1,
            next_segment: max_segment + 1,
            unsynced_frames: Vec::new(),
            last_backfill: None,
            write_failing: false,
        };
        // Segments whose frames were all acked before the crash.
        let done: Vec<u64> = inner
            .segments
            .iter()
            .filter(|(_, s)| s.unacked == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            inner.retire(id);
        }
        inner.enforce_age(now_ms(), &metrics);
        let spool = Self {
            inner: Mutex::new(inner),
            notify: Notify::new(),
            written: Notify::new(),
            acked: Notify::new(),
            metrics,
            _lock: lock,
        };
        spool.update_gauges(&spool.lock());
        let g = spool.lock();
        if !g.frames.is_empty() {
            info!(frames = g.frames.len(), "Spool recovered unsent batches.");
        }
        drop(g);
        Ok(spool)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation keeps the maps consistent before anything can fail, so a poisoned
        // lock still guards valid state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_gauges(&self, inner: &Inner) {
        let m = &self.metrics;
        m.spool_bytes
            .set(inner.segments.values().map(|s| s.bytes).sum());
        m.spool_segments.set(inner.segments.len() as u64);
        m.batches_queued
            .set((inner.frames.len() + inner.memory.len()) as u64);
        m.spool_memory_batches.set(inner.memory.len() as u64);
        let oldest = inner
            .frames
            .values()
            .next()
            .map(|f| f.meta.created_ms)
            .into_iter()
            .chain(inner.memory.values().next().map(|(m, _)| m.created_ms))
            .min()
            .unwrap_or(0);
        m.spool_oldest_ms.set(u64::try_from(oldest).unwrap_or(0));
    }

    /// Syncs what the `Interval` policy left unsynced; the agent calls it on that interval.
    pub fn sync(&self) {
        let mut g = self.lock();
        g.sync();
    }

    /// Whether a frame written since the last sync is still unacked: only then does
    /// [`Spool::sync`] have work. Cheap (no I/O): the agent asks before waking a thread.
    /// Frames acked meanwhile are forgotten here, so the list stays short.
    pub fn needs_sync(&self) -> bool {
        let mut g = self.lock();
        let inner = &mut *g;
        inner
            .unsynced_frames
            .retain(|id| inner.frames.contains_key(id));
        !inner.unsynced_frames.is_empty()
    }

    /// Resolves after the next frame written under the `Interval` policy (or at once if
    /// one was written since the last wait).
    pub fn written(&self) -> tokio::sync::futures::Notified<'_> {
        self.written.notified()
    }

    /// Resolves after the next ack of a frame (or at once if one came since the last
    /// wait): the syncer then asks [`Spool::needs_sync`] whether its wait can end early.
    pub fn acked(&self) -> tokio::sync::futures::Notified<'_> {
        self.acked.notified()
    }
}

fn rewrite_acks<'a>(path: &Path, acked: impl Iterator<Item = &'a u64>) -> anyhow::Result<File> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut buf = Vec::new();
        for id in acked {
            buf.extend_from_slice(&ack_entry(*id));
        }
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.seek(SeekFrom::End(0))?;
    Ok(f)
}

impl Inner {
    fn sync(&mut self) {
        // Acks alone need no sync: losing one to a power cut means the batch is sent
        // again, and the server stores it once. (Before a segment goes, `retire` syncs
        // the log itself.)
        let unacked = self
            .unsynced_frames
            .iter()
            .any(|id| self.frames.contains_key(id));
        if unacked {
            if let Some(a) = &self.active {
                let _ = a.file.sync_data();
            }
            let _ = self.acks.sync_data();
        }
        self.unsynced_frames.clear();
    }

    /// Removes a segment whose frames are all acked (or dropped).
    fn retire(&mut self, id: u64) {
        if self.active.as_ref().is_some_and(|a| a.id == id) {
            self.active = None;
        }
        let Some(seg) = self.segments.remove(&id) else {
            return;
        };
        // The ack log must be durable before the segment goes (see the module invariants).
        let _ = self.acks.sync_data();
        if let Err(e) = fs::remove_file(&seg.path) {
            warn!(path = %seg.path.display(), error = %e, "Cannot remove spool segment.");
        }
        sync_dir(&self.cfg.dir);
        // Forget acks that pointed into it; compact the log once it is mostly stale.
        self.acked.retain(|_, seg| *seg != id);
        if self.ack_entries > 2 * self.acked.len() + 1024 {
            match rewrite_acks(&self.cfg.dir.join("acks"), self.acked.keys()) {
                Ok(f) => {
                    self.acks = f;
                    self.ack_entries = self.acked.len();
                }
                Err(e) => warn!(error = %e, "Cannot compact the spool ack log."),
            }
        }
    }

    /// Drops whole segments, oldest first, counting their unacked frames as `reason`.
    fn drop_oldest(&mut self, metrics: &AgentMetrics, reason: &'static str) -> bool {
        let Some((&id, _)) = self
            .segments
            .iter()
            .find(|(id, _)| self.active.as_ref().is_none_or(|a| a.id != **id))
        else {
            return false;
        };
        let ids: Vec<u64> = self
            .frames
            .iter()
            .filter(|(_, f)| f.segment == id)
            .map(|(k, _)| *k)
            .collect();
        let n = ids.len() as u64;
        for k in ids {
            self.frames.remove(&k);
            self.priority.remove(&k);
        }
        match reason {
            "max_age" => metrics.spool_dropped_max_age.add(n),
            _ => metrics.spool_dropped_max_disk.add(n),
        }
        if n > 0 {
            warn!(
                batches = n,
                reason, "Spool bound reached; oldest batches dropped."
            );
        }
        self.retire(id);
        true
    }

    fn enforce_age(&mut self, now: i64, metrics: &AgentMetrics) {
        let limit = now - i64::try_from(self.cfg.max_age.as_millis()).unwrap_or(i64::MAX);
        while self
            .segments
            .iter()
            .find(|(id, _)| self.active.as_ref().is_none_or(|a| a.id != **id))
            .is_some_and(|(_, s)| s.newest_ms < limit)
        {
            if !self.drop_oldest(metrics, "max_age") {
                break;
            }
        }
    }

    fn total_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Appends one frame to the active segment, starting one if needed.
    fn append(
        &mut self,
        meta: FrameMeta,
        payload: &[u8],
        metrics: &AgentMetrics,
    ) -> std::io::Result<()> {
        let frame = encode_frame(&meta, payload);
        let size = frame.len() as u64;
        let full = self.active.as_ref().is_some_and(|a| {
            a.len + size > self.cfg.segment_size && a.len > SEGMENT_HEADER_LEN as u64
        });
        if full && let Some(a) = self.active.take() {
            let _ = a.file.sync_data();
            if self.segments.get(&a.id).is_some_and(|s| s.unacked == 0) {
                self.retire(a.id);
            }
        }
        while self.total_bytes() + size > self.cfg.max_disk {
            if !self.drop_oldest(metrics, "max_disk") {
                break;
            }
        }
        if self.active.is_none() {
            let id = self.next_segment;
            let path = seg_path(&self.cfg.dir, id);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            let header = encode_segment_header(id, meta.created_ms);
            if let Err(e) = file.write_all(&header).and_then(|()| file.sync_data()) {
                drop(file);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            sync_dir(&self.cfg.dir);
            self.next_segment += 1;
            self.segments.insert(
                id,
                Segment {
                    path,
                    bytes: header.len() as u64,
                    unacked: 0,
                    newest_ms: meta.created_ms,
                },
            );
            self.active = Some(Active {
                id,
                file,
                len: header.len() as u64,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(std::io::Error::other("no active segment"));
        };
        let at = active.len;
        let written = active.file.write_all_at(&frame, at).and_then(|()| {
            if self.cfg.fsync == FsyncPolicy::EveryBatch {
                active.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Leave no partial frame behind; if even that fails, recovery cuts it off.
            if active.file.set_len(at).is_err() {
                self.active = None;
            }
            return Err(e);
        }
        active.len += size;
        let seg_id = active.id;
        if self.cfg.fsync != FsyncPolicy::EveryBatch {
            self.unsynced_frames.push(meta.id);
        }
        if let Some(seg) = self.segments.get_mut(&seg_id) {
            seg.bytes += size;
            seg.unacked += 1;
            seg.newest_ms = seg.newest_ms.max(meta.created_ms);
        }
        if meta.priority() {
            self.priority.insert(meta.id);
        }
        self.frames.insert(
            meta.id,
            FrameLoc {
                meta,
                segment: seg_id,
                payload_offset: at + frame::FRAME_HEADER_LEN as u64,
                len: payload.len() as u32,
            },
        );
        Ok(())
    }

    fn read_payload(&self, loc: &FrameLoc) -> std::io::Result<Vec<u8>> {
        let seg = self
            .segments
            .get(&loc.segment)
            .ok_or_else(|| std::io::Error::other("segment gone"))?;
        let mut buf = vec![0u8; loc.len as usize];
        File::open(&seg.path)?.read_exact_at(&mut buf, loc.payload_offset)?;
        Ok(buf)
    }

    /// The id to send next, by the order in the module doc.
    fn pick(&mut self, now: i64) -> Result<Option<u64>, Duration> {
        let fresh_from = now - i64::try_from(self.cfg.fresh_window.as_millis()).unwrap_or(i64::MAX);
        let is_priority = |id: &u64| {
            self.priority.contains(id) || self.memory.get(id).is_some_and(|m| m.0.priority())
        };
        // Fresh frames have the newest ids: walk back from the end only while they are fresh.
        let mut fresh: Vec<u64> = self
            .frames
            .iter()
            .rev()
            .take_while(|(_, f)| f.meta.created_ms >= fresh_from)
            .map(|(id, _)| *id)
            .chain(
                self.memory
                    .iter()
                    .rev()
                    .take_while(|(_, m)| m.0.created_ms >= fresh_from)
                    .map(|(id, _)| *id),
            )
            .collect();
        fresh.sort_unstable();
        if let Some(id) = fresh
            .iter()
            .find(|id| is_priority(id))
            .or_else(|| fresh.first())
        {
            return Ok(Some(*id));
        }
        let backlog = self
            .priority
            .iter()
            .next()
            .copied()
            .or_else(|| {
                self.memory
                    .iter()
                    .find(|(_, m)| m.0.priority())
                    .map(|(k, _)| *k)
            })
            .or_else(|| {
                let disk = self.frames.keys().next().copied();
                let mem = self.memory.keys().next().copied();
                match (disk, mem) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            });
        let Some(id) = backlog else { return Ok(None) };
        if self.cfg.backfill_per_second > 0 {
            let gap = Duration::from_secs(1) / self.cfg.backfill_per_second;
            if let Some(last) = self.last_backfill {
                let since = last.elapsed();
                if since < gap {
                    return Err(gap - since);
                }
            }
        }
        self.last_backfill = Some(Instant::now());
        Ok(Some(id))
    }
}

impl BatchQueue for Spool {
    fn push(&self, batch: NewBatch) {
        let mut g = self.lock();
        let meta = FrameMeta {
            id: g.next_id,
            seq: batch.seq,
            flags: if batch.priority { FLAG_PRIORITY } else { 0 },
            created_ms: batch.created_ms,
        };
        g.next_id += 1;
        // Batches held in memory since a failed write go to disk first, in order.
        while let Some((&id, _)) = g.memory.iter().next() {
            let Some((m, body)) = g.memory.remove(&id) else {
                break;
            };
            if let Err(e) = g.append(m, &body, &self.metrics) {
                g.memory.insert(id, (m, body));
                let _ = e;
                break;
            }
        }
        let result = if g.memory.is_empty() {
            g.append(meta, &batch.body, &self.metrics)
        } else {
            Err(std::io::Error::other(
                "earlier batches still wait in memory",
            ))
        };
        match result {
            Ok(()) => {
                if g.write_failing {
                    info!("Spool writes work again.");
                    g.write_failing = false;
                }
                if !g.unsynced_frames.is_empty() {
                    // notify_one keeps a permit: a write before the syncer waits counts.
                    self.written.notify_one();
                }
            }
            Err(e) => {
                self.metrics.spool_write_errors.inc();
                if !g.write_failing {
                    error!(error = %e, dir = %g.cfg.dir.display(), "Cannot write to the spool; keeping batches in memory.");
                    g.write_failing = true;
                }
                g.memory.insert(meta.id, (meta, Arc::new(batch.body)));
                while g.memory.len() > g.cfg.memory_fallback.max(1) {
                    if let Some((&old, _)) = g.memory.iter().next() {
                        g.memory.remove(&old);
                        self.metrics.spool_dropped_disk_full.inc();
                    }
                }
            }
        }
        let now = now_ms();
        g.enforce_age(now, &self.metrics);
        self.update_gauges(&g);
        drop(g);
        self.notify.notify_one();
    }

    fn next(&self) -> Next {
        let mut g = self.lock();
        let id = match g.pick(now_ms()) {
            Ok(Some(id)) => id,
            Ok(None) => return Next::Empty,
            Err(wait) => return Next::Wait(wait),
        };
        if let Some((meta, body)) = g.memory.get(&id) {
            return Next::Ready(QueuedBatch {
                id,
                seq: meta.seq,
                created_ms: meta.created_ms,
                body: body.clone(),
            });
        }
        let Some(loc) = g.frames.get(&id).copied() else {
            return Next::Empty;
        };
        match g.read_payload(&loc) {
            Ok(body) => Next::Ready(QueuedBatch {
                id,
                seq: loc.meta.seq,
                created_ms: loc.meta.created_ms,
                body: Arc::new(body),
            }),
            Err(e) => {
                // The file changed under us: count the frame as corrupt and move on.
                warn!(id, error = %e, "Cannot read spooled frame; skipped.");
                self.metrics.spool_corrupt_frames.inc();
                drop(g);
                self.ack(id);
                Next::Wait(Duration::ZERO)
            }
        }
    }

    fn ack(&self, id: u64) {
        let mut g = self.lock();
        if g.memory.remove(&id).is_none()
            && let Some(loc) = g.frames.remove(&id)
        {
            g.priority.remove(&id);
            if let Err(e) = g.acks.write_all(&ack_entry(id)) {
                warn!(error = %e, "Cannot record ack; the batch may be sent again after a restart.");
            }
            g.ack_entries += 1;
            g.acked.insert(id, loc.segment);
            let retire = match g.segments.get_mut(&loc.segment) {
                Some(seg) => {
                    seg.unacked = seg.unacked.saturating_sub(1);
                    seg.unacked == 0 && g.active.as_ref().is_none_or(|a| a.id != loc.segment)
                }
                None => false,
            };
            if retire {
                g.retire(loc.segment);
            }
            self.acked.notify_one();
        }
        self.update_gauges(&g);
    }

    fn len(&self) -> usize {
        let g = self.lock();
        g.frames.len() + g.memory.len()
    }

    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_disk: 1 << 30,
            max_age: Duration::from_secs(86_400),
            segment_size: 4096,
            fsync: FsyncPolicy::EveryBatch,
            memory_fallback: 10,
            fresh_window: Duration::from_secs(60),
            backfill_per_second: 0,
        }
    }

    fn open(c: SpoolConfig) -> (Spool, Arc<AgentMetrics>) {
        let m = Arc::new(AgentMetrics::default());
        (Spool::open(c, m.clone()).unwrap(), m)
    }

    fn batch(seq: u64, created_ms: i64, priority: bool) -> NewBatch {
        NewBatch {
            seq,
            priority,
            created_ms,
            body: vec![seq as u8; 300],
        }
    }

    fn next(s: &Spool) -> Option<QueuedBatch> {
        match s.next() {
            Next::Ready(b) => Some(b),
            _ => None,
        }
    }

    /// Sends everything in order, as a shipper would, returning the seqs.
    fn drain(s: &Spool) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(b) = next(s) {
            out.push(b.seq);
            s.ack(b.id);
        }
        out
    }

    #[test]
    fn survives_reopen_and_removes_acked_segments() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        {
            let (s, _) = open(cfg(dir.path()));
            for seq in 1..=40 {
                s.push(batch(seq, now, false));
            }
            assert!(
                list_segments(dir.path()).unwrap().len() > 2,
                "4 KiB segments rotate"
            );
            let first = next(&s).unwrap();
            assert_eq!((first.seq, first.body.len()), (1, 300));
            s.ack(first.id);
        }
        let (s, _) = open(cfg(dir.path()));
        assert_eq!(s.len(), 39);
        assert_eq!(drain(&s), (2..=40).collect::<Vec<_>>());
        // Every segment is fully acked, and none is being written after a reopen.
        assert_eq!(list_segments(dir.path()).unwrap().len(), 0);
        drop(s);
        let (s, _) = open(cfg(dir.path()));
        assert_eq!(s.len(), 0);
        // Ids keep growing across opens, so a new frame never shares an id with an old one.
        s.push(batch(99, now, false));
        assert!(next(&s).unwrap().id > 40);
    }

    #[test]
    fn interval_sync_has_work_only_for_unacked_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.fsync = FsyncPolicy::Interval(Duration::from_secs(1));
        let (s, _) = open(c);
        let now = now_ms();
        assert!(!s.needs_sync());
        s.push(batch(1, now, false));
        s.push(batch(2, now, false));
        assert!(s.needs_sync());
        let first = next(&s).unwrap();
        s.ack(first.id);
        // One of the two is still only in the page cache.
        assert!(s.needs_sync());
        s.sync();
        assert!(!s.needs_sync());
        s.push(batch(3, now, false));
        assert_eq!(drain(&s), [2, 3]);
        // Everything written since the sync reached the server: nothing to protect.
        assert!(!s.needs_sync());
    }

    #[test]
    fn second_open_of_the_same_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, _) = open(cfg(dir.path()));
        let err = Spool::open(cfg(dir.path()), Arc::new(AgentMetrics::default()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn torn_tail_bit_flip_and_empty_segment_are_recovered_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        {
            let (s, _) = open(SpoolConfig {
                segment_size: 1 << 20,
                ..cfg(dir.path())
            });
            for seq in 1..=10 {
                s.push(batch(seq, now, false));
            }
        }
        let (_, seg) = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        let frame_len = frame::FRAME_HEADER_LEN + 300;
        // Flip a payload bit of frame 3, and cut frame 10 in half.
        data[SEGMENT_HEADER_LEN + 2 * frame_len + frame::FRAME_HEADER_LEN + 5] ^= 1;
        data.truncate(data.len() - 150);
        fs::write(&seg, &data).unwrap();
        fs::write(dir.path().join("seg-00000000000000aa.seg"), b"").unwrap();
        let (s, m) = open(cfg(dir.path()));
        assert_eq!(m.spool_corrupt_frames.get(), 1);
        assert_eq!(m.spool_torn_frames.get(), 1);
        assert_eq!(m.spool_corrupt_segments.get(), 1);
        assert!(dir.path().join("seg-00000000000000aa.corrupt").exists());
        assert_eq!(drain(&s), vec![1, 2, 4, 5, 6, 7, 8, 9]);
        let report = inspect(dir.path(), true).unwrap();
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn disk_bound_drops_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (s, m) = open(SpoolConfig {
            max_disk: 16 * 1024,
            ..cfg(dir.path())
        });
        for seq in 1..=200 {
            s.push(batch(seq, now_ms(), false));
        }
        let total: u64 = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|(_, p)| fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= 16 * 1024, "{total}");
        let dropped = m.spool_dropped_max_disk.get();
        assert!(dropped > 100, "{dropped}");
        let kept = drain(&s);
        assert_eq!(kept.len() as u64 + dropped, 200);
        assert_eq!(*kept.last().unwrap(), 200, "the newest are kept");
        assert!(
            kept.windows(2).all(|w| w[1] == w[0] + 1),
            "a contiguous newest run"
        );
    }

    #[test]
    fn age_bound_drops_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (s, m) = open(SpoolConfig {
            max_age: Duration::from_secs(3600),
            ..cfg(dir.path())
        });
        let old = now_ms() - 7_200_000;
        for seq in 1..=30 {
            s.push(batch(seq, old, false));
        }
        s.push(batch(31, now_ms(), false));
        let dropped = m.spool_dropped_max_age.get();
        assert!(dropped > 0);
        let sent = drain(&s);
        // The fresh batch first; old ones only from the segment still being written.
        assert_eq!(sent[0], 31);
        assert_eq!(sent.len() as u64 + dropped, 31);
    }

    #[test]
    fn fresh_batches_go_first_and_backlog_is_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(SpoolConfig {
            backfill_per_second: 1,
            ..cfg(dir.path())
        });
        let old = now_ms() - 600_000;
        s.push(batch(1, old, false));
        s.push(batch(2, old, true));
        s.push(batch(3, old, false));
        s.push(batch(4, now_ms(), false));
        s.push(batch(5, now_ms(), true));
        let mut order = Vec::new();
        for _ in 0..3 {
            let b = next(&s).unwrap();
            order.push(b.seq);
            s.ack(b.id);
        }
        // Fresh first (priority before other), then the backlog's priority frame.
        assert_eq!(order, vec![5, 4, 2]);
        // The next backlog frame must wait for the rate limit.
        assert!(matches!(s.next(), Next::Wait(d) if d > Duration::ZERO));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool),
        SendOne,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<bool>().prop_map(Op::Push),
            3 => Just(Op::SendOne),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Against a model: what is pushed and not acked is exactly what the spool holds,
        /// across reopens, and each batch comes out once.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let now = now_ms();
            let mut spool = Some(open(cfg(dir.path())).0);
            let mut model: BTreeSet<u64> = BTreeSet::new();
            let mut seq = 0;
            for op in ops {
                let s = spool.as_ref().unwrap();
                match op {
                    Op::Push(priority) => {
                        seq += 1;
                        s.push(batch(seq, now, priority));
                        model.insert(seq);
                    }
                    Op::SendOne => {
                        if let Some(b) = next(s) {
                            prop_assert!(model.remove(&b.seq), "sent twice or never pushed: {}", b.seq);
                            prop_assert_eq!(b.body.as_ref(), &vec![b.seq as u8; 300]);
                            s.ack(b.id);
                        } else {
                            prop_assert!(model.is_empty());
                        }
                    }
                    Op::Reopen => {
                        // The old one must be gone (and its lock released) first.
                        drop(spool.take());
                        spool = Some(open(cfg(dir.path())).0);
                    }
                }
                prop_assert_eq!(spool.as_ref().unwrap().len(), model.len());
            }
            let rest: BTreeSet<u64> = drain(spool.as_ref().unwrap()).into_iter().collect();
            prop_assert_eq!(rest, model);
        }
    }
}
