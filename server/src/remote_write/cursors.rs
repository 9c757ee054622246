//! Where each target is in the forward log: `data_dir/remote_write.db` (SQLite, WAL), one
//! row per target, saved after every round the target finished.
//!
//! A database of its own so that a save never waits for the store's writer (nor makes
//! ingest wait), with `synchronous=NORMAL`: a save reaches the operating system before the
//! next round starts, which survives `kill -9` of the server, so a restarted target sends
//! again at most the round that was in flight. A power cut may lose the last saves: the
//! target then sends a little more again, never less.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
};

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::ForwardPosition;

/// The cursors' database.
pub(super) struct Cursors(Mutex<Connection>);

impl Cursors {
    pub(super) fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS cursors(
                 target TEXT PRIMARY KEY, id INTEGER NOT NULL, end_offset INTEGER NOT NULL);",
        )?;
        Ok(Self(Mutex::new(conn)))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolls back what a panicking holder left unfinished.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each target's cursor, in order; a target seen for the first time starts at `end`.
    /// Cursors of targets no longer configured are forgotten.
    pub(super) fn load(
        &self,
        targets: &[String],
        end: ForwardPosition,
    ) -> Result<Vec<ForwardPosition>, rusqlite::Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known: Vec<String> = tx
            .prepare("SELECT target FROM cursors")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for gone in known.iter().filter(|k| !targets.contains(k)) {
            tx.execute("DELETE FROM cursors WHERE target = ?1", params![gone])?;
        }
        let mut out = Vec::with_capacity(targets.len());
        for target in targets {
            let saved = tx
                .query_row(
                    "SELECT id, end_offset FROM cursors WHERE target = ?1",
                    params![target],
                    |r| {
                        Ok(ForwardPosition {
                            id: r.get(0)?,
                            offset: r.get(1)?,
                        })
                    },
                )
                .optional()?;
            // A cursor past the end belongs to a log that was emptied (no targets for a
            // while): start again at the end.
            let cursor = saved.filter(|c| c.id <= end.id).unwrap_or(end);
            tx.execute(
                "INSERT OR REPLACE INTO cursors(target, id, end_offset) VALUES (?1, ?2, ?3)",
                params![target, cursor.id, cursor.offset],
            )?;
            out.push(cursor);
        }
        tx.commit()?;
        Ok(out)
    }

    pub(super) fn save(&self, target: &str, p: ForwardPosition) -> Result<(), rusqlite::Error> {
        self.conn()
            .prepare_cached("UPDATE cursors SET id = ?2, end_offset = ?3 WHERE target = ?1")?
            .execute(params![target, p.id, p.offset])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_kept_new_ones_start_at_the_end_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remote_write.db");
        let end = ForwardPosition {
            id: 10,
            offset: 500,
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        {
            let c = Cursors::open(&path).unwrap();
            assert_eq!(c.load(&names(&["a", "b"]), end).unwrap(), [end, end]);
            c.save("a", ForwardPosition { id: 4, offset: 200 }).unwrap();
        }
        let c = Cursors::open(&path).unwrap();
        let later = ForwardPosition {
            id: 20,
            offset: 900,
        };
        assert_eq!(
            c.load(&names(&["a", "c"]), later).unwrap(),
            [ForwardPosition { id: 4, offset: 200 }, later]
        );
        // `b` was forgotten: seen again, it starts at the end.
        assert_eq!(c.load(&names(&["b"]), later).unwrap(), [later]);
        // A cursor past an emptied log starts at its end.
        assert_eq!(
            c.load(&names(&["b"]), ForwardPosition::default()).unwrap(),
            [ForwardPosition::default()]
        );
    }
}
