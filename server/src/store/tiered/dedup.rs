//! Exact de-duplication of batches, kept small.
//!
//! An agent numbers its batches per boot (`boot_id`, `seq` from 1) and resends any batch
//! whose ack it did not see, for as long as its spool keeps it (`[buffer] max_age`, 7 days
//! by default). The store records which seqs of each boot it holds as ranges of consecutive
//! seqs in `batch_ranges`: a boot whose batches all arrived is one row however many it
//! sent, and batches that arrive out of order (fresh-first after an outage) leave a few
//! ranges that merge as the gaps fill.
//!
//! A range is forgotten once nothing was added to it for `dedup_window` (server time): by
//! then the agent has dropped every batch of it from its spool, so none can come again.
//! The table therefore holds about one row per agent boot of the last `dedup_window`.

use super::*;

/// What became of a batch identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Recorded now: store the batch.
    New,
    /// Recorded before: store nothing.
    Again,
}

/// Records `(agent_id, boot_id, seq)` in the open transaction, merging it into the boot's
/// neighbouring ranges.
pub(super) fn record(
    conn: &Connection,
    agent_id: &str,
    boot_id: &str,
    seq: i64,
    received: i64,
) -> Result<Seen, StoreError> {
    let below: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT lo, hi FROM batch_ranges WHERE agent_id = ?1 AND boot_id = ?2 AND lo <= ?3
             ORDER BY lo DESC LIMIT 1",
        )?
        .query_row(params![agent_id, boot_id, seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if below.is_some_and(|(_, hi)| hi >= seq) {
        return Ok(Seen::Again);
    }
    let above: Option<i64> = conn
        .prepare_cached(
            "SELECT hi FROM batch_ranges WHERE agent_id = ?1 AND boot_id = ?2 AND lo = ?3",
        )?
        .query_row(params![agent_id, boot_id, seq.saturating_add(1)], |r| {
            r.get(0)
        })
        .optional()?;
    let joins_below = below
        .filter(|&(_, hi)| hi == seq.saturating_sub(1))
        .map(|(lo, _)| lo);
    let lo = joins_below.unwrap_or(seq);
    let hi = above.unwrap_or(seq);
    if above.is_some() {
        conn.prepare_cached(
            "DELETE FROM batch_ranges WHERE agent_id = ?1 AND boot_id = ?2 AND lo = ?3",
        )?
        .execute(params![agent_id, boot_id, seq.saturating_add(1)])?;
    }
    conn.prepare_cached(
        "INSERT INTO batch_ranges(agent_id, boot_id, lo, hi, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(agent_id, boot_id, lo) DO UPDATE SET hi = excluded.hi,
             received_at = max(received_at, excluded.received_at)",
    )?
    .execute(params![agent_id, boot_id, lo, hi, received])?;
    Ok(Seen::New)
}

/// Per boot of an agent still within the window: batches held and the highest seq.
pub(super) fn stats(conn: &Connection, agent_id: &str) -> Result<Vec<BatchStats>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT boot_id, sum(hi - lo + 1), max(hi) FROM batch_ranges WHERE agent_id = ?1
         GROUP BY boot_id ORDER BY min(received_at), boot_id",
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

/// Forgets ranges untouched since `cutoff` (server ms); returns how many.
pub(super) fn purge(conn: &Connection, cutoff: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM batch_ranges WHERE received_at < ?1")?
        .execute(params![cutoff])?)
}

/// Ranges held now.
pub(super) fn count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM batch_ranges", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The store before ranges kept one `batches` row per batch, for ever: fold them into
/// ranges (in the caller's transaction) and drop the table.
pub(super) fn migrate_batch_rows(conn: &Connection) -> Result<(), StoreError> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'batches'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(());
    }
    info!("Folding the batches table into seq ranges; this runs once.");
    let mut rows = conn.prepare(
        "SELECT agent_id, boot_id, seq, received_at FROM batches ORDER BY agent_id, boot_id, seq",
    )?;
    let rows = rows.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (agent, boot, seq, at) = row?;
        record(conn, &agent, &boot, seq, at)?;
    }
    conn.execute_batch("DROP TABLE batches;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn ranges(conn: &Connection) -> Vec<(String, i64, i64)> {
        let mut stmt = conn
            .prepare("SELECT boot_id, lo, hi FROM batch_ranges ORDER BY boot_id, lo")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn gaps_fill_into_one_range_per_boot() {
        let conn = db();
        for seq in [1, 2, 5, 3, 7, 6, 4] {
            assert_eq!(
                record(&conn, "ag", "b1", seq, 0).unwrap(),
                Seen::New,
                "{seq}"
            );
        }
        assert_eq!(ranges(&conn), vec![("b1".into(), 1, 7)]);
        for seq in 1..=7 {
            assert_eq!(record(&conn, "ag", "b1", seq, 0).unwrap(), Seen::Again);
        }
        assert_eq!(record(&conn, "ag", "b2", 3, 0).unwrap(), Seen::New);
        assert_eq!(record(&conn, "other", "b1", 3, 0).unwrap(), Seen::New);
        let s = stats(&conn, "ag").unwrap();
        assert_eq!((s[0].count, s[0].max_seq, s[1].count), (7, 7, 1));
    }

    #[test]
    fn purge_forgets_only_ranges_untouched_since_the_cutoff() {
        let conn = db();
        record(&conn, "ag", "old", 1, 100).unwrap();
        record(&conn, "ag", "live", 1, 100).unwrap();
        record(&conn, "ag", "live", 2, 500).unwrap();
        assert_eq!(purge(&conn, 200).unwrap(), 1);
        assert_eq!(ranges(&conn), vec![("live".into(), 1, 2)]);
    }

    #[test]
    fn old_batch_rows_become_ranges() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE batches(agent_id TEXT NOT NULL, boot_id TEXT NOT NULL,
                 seq INTEGER NOT NULL, received_at INTEGER NOT NULL,
                 PRIMARY KEY(agent_id, boot_id, seq)) WITHOUT ROWID;
             INSERT INTO batches VALUES ('ag','b',1,0),('ag','b',2,0),('ag','b',4,0),('ag','c',9,0);",
        )
        .unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        migrate_batch_rows(&conn).unwrap();
        assert_eq!(
            ranges(&conn),
            vec![("b".into(), 1, 2), ("b".into(), 4, 4), ("c".into(), 9, 9)]
        );
        assert_eq!(record(&conn, "ag", "b", 2, 0).unwrap(), Seen::Again);
    }

    proptest! {
        /// Any arrival order, repeats included: each seq is new exactly once, and the
        /// ranges are exactly the maximal runs of what arrived.
        #[test]
        fn ranges_equal_a_set_of_seqs(seqs in prop::collection::vec(1i64..60, 0..200)) {
            let conn = db();
            let mut held = std::collections::BTreeSet::new();
            for &seq in &seqs {
                let seen = record(&conn, "ag", "b", seq, 0).unwrap();
                prop_assert_eq!(seen == Seen::New, held.insert(seq));
            }
            let mut want = Vec::new();
            for &s in &held {
                match want.last_mut() {
                    Some((_, _, hi)) if *hi == s - 1 => *hi = s,
                    _ => want.push((String::from("b"), s, s)),
                }
            }
            prop_assert_eq!(ranges(&conn), want);
        }
    }
}
