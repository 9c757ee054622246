//! The forward log: what remote write out reads, in the order the store committed it.
//!
//! # Why a log of its own, in the store's transaction
//!
//! Every sample a target has not received yet must survive `kill -9` once its batch was
//! acked, without the ingest path waiting for anything but the commit it already makes.
//! So the head-log row of each stored batch (series ids and points, the same bytes) is
//! written a second time into `forward_log`, in the same transaction and the same fsync:
//! when the agent gets its ack the row is as durable as the samples. The head log itself
//! cannot be tailed: a cut deletes an agent's rows as soon as its head is compacted, and
//! keeping them for a slow target would keep them in memory too (heads are rebuilt from
//! them on start).
//!
//! # Layout and invariants
//!
//! `forward_log(id, at, samples, end_offset, data)`: `id` grows with every row and is
//! never reused (`AUTOINCREMENT`); `at` is the server time the batch arrived; `end_offset`
//! is the total of `data` bytes ever written up to and including the row, so that the
//! bytes between two positions are a subtraction. The targets' cursors (the last row each
//! sent) are kept by remote write in a database of its own, so that saving one after every
//! request never waits for the store's writer.
//!
//! Rows at or below every target's cursor are deleted, but never the newest row, whose
//! `end_offset` carries the running total over a restart. Nothing is written while no
//! target is configured; opening with none deletes the log.

use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use super::*;

/// A place in the forward log: a row id and the bytes written up to its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForwardPosition {
    /// The row's id; 0 before the first row.
    pub id: i64,
    /// Bytes of row data written up to the end of the row.
    pub offset: i64,
}

/// One row of the forward log: one stored batch's points.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardRow {
    /// Where the row ends.
    pub position: ForwardPosition,
    /// When the server stored it, unix ms.
    pub at: i64,
    /// Samples in the row.
    pub samples: u64,
    /// Per series id, its points in the order the batch had them.
    pub series: Vec<(u32, Vec<(i64, f64)>)>,
}

const FORWARD_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS forward_log(
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, samples INTEGER NOT NULL,
        end_offset INTEGER NOT NULL, data BLOB NOT NULL);
";

/// Rows deleted by one [`TieredStore::forward_trim`], so that it holds the writer lock
/// (and so ingest) for a bounded time however long the backlog it ends.
const TRIM_ROWS: i64 = 10_000;

/// The store's side of the forward log.
#[derive(Debug)]
pub(super) struct ForwardLog {
    enabled: AtomicBool,
    /// The end of the log as written so far (committed or not); only the writer, under
    /// the writer lock, moves it.
    end: Mutex<ForwardPosition>,
    /// The end as committed, for the targets to wake on.
    committed: watch::Sender<ForwardPosition>,
}

impl Default for ForwardLog {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            end: Mutex::new(ForwardPosition::default()),
            committed: watch::Sender::new(ForwardPosition::default()),
        }
    }
}

impl ForwardLog {
    fn end(&self) -> MutexGuard<'_, ForwardPosition> {
        self.end.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TieredStore {
    /// Starts (or, with `enabled` false, stops and empties) the forward log, and returns
    /// its end: where a target seen for the first time starts. Call it before the first
    /// ingest.
    pub fn forward_open(&self, enabled: bool) -> Result<ForwardPosition, StoreError> {
        let mut conn = self.lock_writer();
        let tx = conn.transaction()?;
        tx.execute_batch(FORWARD_SCHEMA)?;
        if !enabled {
            tx.execute("DELETE FROM forward_log", [])?;
        }
        let end = tx
            .query_row(
                "SELECT id, end_offset FROM forward_log ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ForwardPosition {
                        id: r.get(0)?,
                        offset: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        tx.commit()?;
        *self.forward.end() = end;
        self.forward.committed.send_replace(end);
        self.forward.enabled.store(enabled, Ordering::Relaxed);
        Ok(end)
    }

    /// Writes a batch's head-log bytes into the forward log, in the batch's transaction.
    /// Called by ingest with the writer lock held.
    pub(super) fn forward_append(
        &self,
        tx: &Connection,
        at: i64,
        samples: usize,
        data: &[u8],
    ) -> Result<(), StoreError> {
        if !self.forward.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut end = self.forward.end();
        // A batch rolled back after this leaves a gap in the offsets, never an overlap:
        // offsets only measure how many bytes lie between two positions.
        let offset = end.offset + data.len() as i64;
        tx.prepare_cached(
            "INSERT INTO forward_log(at, samples, end_offset, data) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![at, samples as i64, offset, data])?;
        *end = ForwardPosition {
            id: tx.last_insert_rowid(),
            offset,
        };
        Ok(())
    }

    /// Tells the targets that the log grew; called once a group is committed.
    pub(super) fn forward_committed(&self) {
        if self.forward.enabled.load(Ordering::Relaxed) {
            let end = *self.forward.end();
            self.forward.committed.send_if_modified(|old| {
                let changed = *old != end;
                *old = end;
                changed
            });
        }
    }

    /// The committed end of the log, which changes whenever a commit adds to it.
    pub fn forward_watch(&self) -> watch::Receiver<ForwardPosition> {
        self.forward.committed.subscribe()
    }

    /// Rows after `after`, oldest first, until they hold at least `max_samples` samples
    /// (at least one row when there is one), up to the end [`Self::forward_watch`] shows:
    /// a row committed but not yet announced may name series that memory does not know
    /// yet (memory follows the commit).
    pub fn forward_read(
        &self,
        after: i64,
        max_samples: usize,
    ) -> Result<Vec<ForwardRow>, StoreError> {
        let until = self.forward.committed.borrow().id;
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, samples, end_offset, data FROM forward_log
             WHERE id > ?1 AND id <= ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![after, until])?;
        let mut out = Vec::new();
        let mut samples = 0usize;
        while samples < max_samples {
            let Some(row) = rows.next()? else {
                break;
            };
            let data: Vec<u8> = row.get(4)?;
            let series = read_log_row(&data)?
                .into_iter()
                .map(|(id, _late, points)| (id, points))
                .collect();
            let n: i64 = row.get(2)?;
            samples += usize::try_from(n).unwrap_or(0);
            out.push(ForwardRow {
                position: ForwardPosition {
                    id: row.get(0)?,
                    offset: row.get(3)?,
                },
                at: row.get(1)?,
                samples: u64::try_from(n).unwrap_or(0),
                series,
            });
        }
        Ok(out)
    }

    /// The rows after `after` that end at or before `floor` bytes, oldest first, skipped
    /// without decoding: the last one's position and their samples, if there are any.
    pub fn forward_skip(
        &self,
        after: i64,
        floor: i64,
    ) -> Result<Option<(ForwardPosition, u64)>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, end_offset, samples FROM forward_log WHERE id > ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![after])?;
        let mut last = None;
        let mut samples = 0u64;
        while let Some(row) = rows.next()? {
            let offset: i64 = row.get(1)?;
            if offset > floor {
                break;
            }
            last = Some(ForwardPosition {
                id: row.get(0)?,
                offset,
            });
            samples += u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
        }
        Ok(last.map(|p| (p, samples)))
    }

    /// When the oldest row after `after` was stored, unix ms.
    pub fn forward_oldest_at(&self, after: i64) -> Result<Option<i64>, StoreError> {
        let conn = self.reader()?;
        Ok(conn
            .prepare_cached("SELECT at FROM forward_log WHERE id > ?1 ORDER BY id LIMIT 1")?
            .query_row(params![after], |r| r.get(0))
            .optional()?)
    }

    /// Deletes the rows at or below `sent` (the lowest cursor of all targets), at most
    /// [`TRIM_ROWS`] a call; the newest row stays.
    pub fn forward_trim(&self, sent: i64) -> Result<(), StoreError> {
        let conn = self.lock_writer();
        conn.execute(
            "DELETE FROM forward_log WHERE id <= ?1
               AND id < (SELECT max(id) FROM forward_log)
               AND id < (SELECT min(id) FROM forward_log) + ?2",
            params![sent, TRIM_ROWS],
        )?;
        Ok(())
    }

    /// The labels of a series by id (ids are never reused, so an answer stays right).
    pub fn series_labels(&self, id: u32) -> Option<SeriesLabels> {
        self.mem_read().index.labels(id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sysward_proto::Series;

    use super::*;
    use crate::store::{IngestBatch, ManualClock, Store, StoreConfig};

    const NOW: i64 = 1_700_000_000_000;

    fn open(dir: &Path) -> TieredStore {
        TieredStore::open(
            &dir.join("store.db"),
            StoreConfig::default(),
            Arc::new(ManualClock::new(NOW)),
        )
        .unwrap()
    }

    fn ingest(store: &TieredStore, seq: u64, name: &str, points: &[(i64, f64)]) {
        let series = [Series {
            name: name.into(),
            labels: BTreeMap::from([("job".into(), "x".into())]),
            kind: SeriesKind::Gauge,
            points: points.to_vec(),
        }];
        store
            .ingest(&IngestBatch {
                agent_id: "a1",
                boot_id: "b1",
                seq,
                instance: "host-1",
                series: &series,
                events: &[],
            })
            .unwrap();
    }

    fn count(store: &TieredStore) -> i64 {
        store
            .lock_writer()
            .query_row("SELECT count(*) FROM forward_log", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn nothing_is_written_without_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(
            store.forward_open(false).unwrap(),
            ForwardPosition::default()
        );
        ingest(&store, 1, "m", &[(NOW, 1.0)]);
        assert_eq!(count(&store), 0);
    }

    #[test]
    fn rows_come_back_in_commit_order_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(
            store.forward_open(true).unwrap(),
            ForwardPosition::default()
        );
        let mut watch = store.forward_watch();
        ingest(&store, 1, "m", &[(NOW, 1.0), (NOW + 1, 2.0)]);
        ingest(&store, 2, "n", &[(NOW + 2, 3.0)]);
        assert!(watch.has_changed().unwrap());
        let end = *watch.borrow_and_update();
        let rows = store.forward_read(0, 1000).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].position, end);
        assert!(rows[0].position < rows[1].position);
        assert_eq!(rows[0].samples, 2);
        assert_eq!(rows[0].series[0].1, vec![(NOW, 1.0), (NOW + 1, 2.0)]);
        let labels = store.series_labels(rows[1].series[0].0).unwrap();
        assert_eq!(labels.name, "n");
        assert_eq!(labels.labels["instance"], "host-1");
        assert_eq!(labels.labels["agent_id"], "a1");
        // A small budget still reads one row; reads start after the given row.
        assert_eq!(store.forward_read(0, 1).unwrap().len(), 1);
        let after = store.forward_read(rows[0].position.id, 1000).unwrap();
        assert_eq!(after, rows[1..]);
        // A duplicate batch writes nothing.
        ingest(&store, 2, "n", &[(NOW + 2, 3.0)]);
        assert_eq!(count(&store), 2);
    }

    #[test]
    fn rows_survive_a_restart_and_sent_rows_go_but_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let rows = {
            let store = open(dir.path());
            store.forward_open(true).unwrap();
            for seq in 1..=3 {
                ingest(&store, seq, "m", &[(NOW + seq as i64, 1.0)]);
            }
            let rows = store.forward_read(0, 1000).unwrap();
            store.forward_trim(rows[0].position.id).unwrap();
            assert_eq!(count(&store), 2);
            rows
        };
        let store = open(dir.path());
        assert_eq!(store.forward_open(true).unwrap(), rows[2].position);
        assert_eq!(store.forward_read(0, 1000).unwrap(), rows[1..]);
        // Once everything is sent, the newest row stays, for its offset.
        store.forward_trim(rows[2].position.id).unwrap();
        assert_eq!(count(&store), 1);
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.forward_open(true).unwrap(), rows[2].position);
        ingest(&store, 4, "m", &[(NOW + 9, 1.0)]);
        let next = store.forward_read(rows[2].position.id, 1000).unwrap();
        assert_eq!(next.len(), 1);
        assert!(
            next[0].position.id > rows[2].position.id,
            "ids are not reused"
        );
        assert!(next[0].position.offset > rows[2].position.offset);
        // Without targets the log is emptied.
        store.forward_open(false).unwrap();
        assert_eq!(count(&store), 0);
    }

    #[test]
    fn skipping_counts_the_samples_of_whole_rows_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.forward_open(true).unwrap();
        for seq in 1..=4 {
            ingest(
                &store,
                seq,
                "m",
                &[(NOW + seq as i64, 1.0), (NOW + 9 + seq as i64, 2.0)],
            );
        }
        let rows = store.forward_read(0, 1000).unwrap();
        assert_eq!(
            store.forward_skip(0, rows[0].position.offset - 1).unwrap(),
            None
        );
        let (to, samples) = store
            .forward_skip(0, rows[2].position.offset)
            .unwrap()
            .unwrap();
        assert_eq!((to, samples), (rows[2].position, 6));
        assert_eq!(store.forward_oldest_at(to.id).unwrap(), Some(NOW));
        assert_eq!(store.forward_oldest_at(rows[3].position.id).unwrap(), None);
    }
}
