//! The first store: SQLite (WAL, `synchronous=FULL`) in `data_dir/store.db`.
//!
//! Tables: `series(id, name, labels)` with labels as canonical JSON (sorted keys, server
//! labels included); `samples(series_id, ts, value)` keyed by series and time, so a repeated
//! point overwrites rather than doubles; `batches(agent_id, boot_id, seq)`, written in the
//! same transaction as the samples, which is what makes de-duplication exact.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    BatchStats, IngestBatch, IngestOutcome, Selector, SeriesLabels, SeriesPoints, Store, StoreError,
};

pub(crate) struct SqliteStore {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// (name, canonical labels JSON) → series id, so that steady ingest skips the lookup.
    ids: HashMap<(String, String), i64>,
}

impl SqliteStore {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an acked batch survives power loss, which is the ingest contract.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS series(
                 id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL,
                 kind TEXT NOT NULL, UNIQUE(name, labels));
             CREATE TABLE IF NOT EXISTS samples(
                 series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                 PRIMARY KEY(series_id, ts)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS batches(
                 agent_id TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 received_at INTEGER NOT NULL, PRIMARY KEY(agent_id, boot_id, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS events(
                 agent_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
                 output TEXT NOT NULL, ts INTEGER NOT NULL);",
        )?;
        Ok(Self {
            inner: Mutex::new(Inner {
                conn,
                ids: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // SQLite rolls back an unfinished transaction, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn matching(
        conn: &Connection,
        selector: &Selector,
    ) -> Result<Vec<(i64, SeriesLabels)>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id, labels FROM series WHERE name = ?1")?;
        let mut out = Vec::new();
        let rows = stmt.query_map(params![selector.name], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, json) = row?;
            let labels: BTreeMap<String, String> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("series {id} labels: {e}")))?;
            if selector.matches(&labels) {
                out.push((
                    id,
                    SeriesLabels {
                        name: selector.name.clone(),
                        labels,
                    },
                ));
            }
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn ingest(&self, batch: &IngestBatch<'_>) -> Result<IngestOutcome, StoreError> {
        let mut guard = self.lock();
        let Inner { conn, ids } = &mut *guard;
        let tx = conn.transaction()?;
        let seq = i64::try_from(batch.seq).unwrap_or(i64::MAX);
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO batches(agent_id, boot_id, seq, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![batch.agent_id, batch.boot_id, seq, crate::state::now_ms()],
        )?;
        if inserted == 0 {
            return Ok(IngestOutcome::Duplicate);
        }
        let mut new_ids = Vec::new();
        {
            let mut find =
                tx.prepare_cached("SELECT id FROM series WHERE name = ?1 AND labels = ?2")?;
            let mut create =
                tx.prepare_cached("INSERT INTO series(name, labels, kind) VALUES (?1, ?2, ?3)")?;
            let mut sample = tx.prepare_cached(
                "INSERT OR REPLACE INTO samples(series_id, ts, value) VALUES (?1, ?2, ?3)",
            )?;
            for series in batch.series {
                let mut labels = series.labels.clone();
                // The server's labels win over anything an agent sends under the same name.
                labels.insert("instance".into(), batch.instance.to_string());
                labels.insert("agent_id".into(), batch.agent_id.to_string());
                let json = serde_json::to_string(&labels)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let key = (series.name.clone(), json);
                let id = match ids.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id = match find
                            .query_row(params![key.0, key.1], |r| r.get::<_, i64>(0))
                            .optional()?
                        {
                            Some(id) => id,
                            None => {
                                let kind = match series.kind {
                                    sysward_proto::SeriesKind::Counter => "counter",
                                    sysward_proto::SeriesKind::Gauge => "gauge",
                                };
                                create.execute(params![key.0, key.1, kind])?;
                                tx.last_insert_rowid()
                            }
                        };
                        new_ids.push((key, id));
                        id
                    }
                };
                for (ts, value) in &series.points {
                    sample.execute(params![id, ts, value])?;
                }
            }
            let mut event = tx.prepare_cached(
                "INSERT INTO events(agent_id, name, state, output, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in batch.events {
                event.execute(params![batch.agent_id, e.name, e.state, e.output, e.ts])?;
            }
        }
        tx.commit()?;
        // Cache ids only once they are committed, so a rolled-back id is never reused.
        ids.extend(new_ids);
        Ok(IngestOutcome::Stored)
    }

    fn series(&self, selector: &Selector) -> Result<Vec<SeriesLabels>, StoreError> {
        let guard = self.lock();
        Ok(Self::matching(&guard.conn, selector)?
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    fn read_range(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesPoints>, StoreError> {
        let guard = self.lock();
        let mut out = Vec::new();
        let mut stmt = guard.conn.prepare_cached(
            "SELECT ts, value FROM samples WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts",
        )?;
        for (id, series) in Self::matching(&guard.conn, selector)? {
            let points = stmt
                .query_map(params![id, start, end], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<(i64, f64)>, _>>()?;
            out.push(SeriesPoints { series, points });
        }
        Ok(out)
    }

    fn batch_stats(&self, agent_id: &str) -> Result<Vec<BatchStats>, StoreError> {
        let guard = self.lock();
        let mut stmt = guard.conn.prepare_cached(
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
        self.lock()
            .conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use sysward_proto::{Series, SeriesKind};

    use super::*;
    use crate::store::Matcher;

    fn series(name: &str, v: f64) -> Series {
        Series {
            name: name.into(),
            labels: BTreeMap::from([("cpu".into(), "0".into())]),
            kind: SeriesKind::Gauge,
            points: vec![(1000, v), (2000, v + 1.0)],
        }
    }

    #[test]
    fn stores_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let s = [series("m", 1.0)];
        let batch = IngestBatch {
            agent_id: "ag",
            boot_id: "b",
            seq: 1,
            instance: "host1",
            series: &s,
            events: &[],
        };
        assert_eq!(store.ingest(&batch).unwrap(), IngestOutcome::Stored);
        // A repeat with other values must change nothing.
        let s2 = [series("m", 50.0)];
        let again = IngestBatch {
            series: &s2,
            ..batch
        };
        assert_eq!(store.ingest(&again).unwrap(), IngestOutcome::Duplicate);
        let sel = Selector {
            name: "m".into(),
            matchers: vec![],
        };
        let got = store.read_range(&sel, 0, 5000).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].points, vec![(1000, 1.0), (2000, 2.0)]);
        assert_eq!(got[0].series.labels["instance"], "host1");
        assert_eq!(got[0].series.labels["agent_id"], "ag");
        let none = Selector {
            name: "m".into(),
            matchers: vec![Matcher {
                label: "cpu".into(),
                negate: false,
                value: "1".into(),
            }],
        };
        assert!(store.series(&none).unwrap().is_empty());
    }
}
