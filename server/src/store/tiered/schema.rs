//! The store's tables, and the conversions of older layouts that run once on open.

use super::*;

pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS agents(id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL UNIQUE);
    CREATE TABLE IF NOT EXISTS series(
        id INTEGER PRIMARY KEY, agent INTEGER NOT NULL, name TEXT NOT NULL,
        labels TEXT NOT NULL, kind INTEGER NOT NULL, UNIQUE(name, labels));
    CREATE TABLE IF NOT EXISTS batch_ranges(
        agent_id TEXT NOT NULL, boot_id TEXT NOT NULL, lo INTEGER NOT NULL,
        hi INTEGER NOT NULL, received_at INTEGER NOT NULL,
        PRIMARY KEY(agent_id, boot_id, lo)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS batch_ranges_expiry ON batch_ranges(received_at);
    CREATE TABLE IF NOT EXISTS events(
        agent_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
        output TEXT NOT NULL, ts INTEGER NOT NULL,
        instance TEXT NOT NULL DEFAULT '', long_output TEXT NOT NULL DEFAULT '', hard INTEGER);
    CREATE INDEX IF NOT EXISTS events_by_check ON events(agent_id, name, ts);
    CREATE INDEX IF NOT EXISTS events_by_state ON events(agent_id, name, state, ts);
    CREATE INDEX IF NOT EXISTS events_expiry ON events(ts);
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
        id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL, tier INTEGER NOT NULL,
        win_start INTEGER NOT NULL, win_end INTEGER NOT NULL, data BLOB NOT NULL,
        UNIQUE(series_id, tier, win_start));
    CREATE INDEX IF NOT EXISTS rollups_expiry ON rollups(tier, win_end);
";

/// The first store kept every sample as a row of `samples` and series without an owning
/// agent. Its series are re-created in the new layout and its samples become head points,
/// which the next cuts compress and roll up.
pub(super) fn migrate_first_store(conn: &Connection) -> Result<(), StoreError> {
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

/// Rollup windows were first kept in a `WITHOUT ROWID` table. Its rows are index cells,
/// which hold at most about a quarter of a page: a day of 5-minute records (some 2.5 kB)
/// spilled into an overflow page of its own, half of it empty. A rowid table keeps such
/// a row whole in its leaf, and since every cut rewrites a window as a new row at the end,
/// its leaves fill up. Converts the table in the caller's transaction, before [`SCHEMA`]
/// runs.
pub(super) fn detach_old_rollups(conn: &Connection) -> Result<bool, StoreError> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'rollups'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if !sql.is_some_and(|s| s.contains("WITHOUT ROWID")) {
        return Ok(false);
    }
    info!("Moving rollup windows into the rowid table; this runs once.");
    conn.execute_batch(
        "ALTER TABLE rollups RENAME TO old_rollups;
         DROP INDEX IF EXISTS rollups_expiry;",
    )?;
    Ok(true)
}

/// The second half of [`detach_old_rollups`], once [`SCHEMA`] made the new table.
pub(super) fn move_old_rollups(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "INSERT INTO rollups(series_id, tier, win_start, win_end, data)
             SELECT series_id, tier, win_start, win_end, data FROM old_rollups;
         DROP TABLE old_rollups;",
    )?;
    Ok(())
}

/// The columns `events` gained after its first layout, as [`SCHEMA`] declares them (at
/// the end, where `ADD COLUMN` puts them, so both layouts are the same). `hard` stays
/// NULL on older rows: whether those were hard is not known.
const EVENT_COLUMNS: [(&str, &str); 3] = [
    ("instance", "TEXT NOT NULL DEFAULT ''"),
    ("long_output", "TEXT NOT NULL DEFAULT ''"),
    ("hard", "INTEGER"),
];

/// Adds the columns an older `events` table lacks, in the caller's transaction after
/// [`SCHEMA`]; older rows get their agent's host name where the store knows it.
pub(super) fn add_event_columns(conn: &Connection) -> Result<(), StoreError> {
    let have = conn
        .prepare("SELECT name FROM pragma_table_info('events')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let missing: Vec<_> = EVENT_COLUMNS
        .iter()
        .filter(|(name, _)| !have.iter().any(|h| h == name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    info!("Adding columns to the events table; this runs once.");
    for (name, decl) in &missing {
        conn.execute_batch(&format!("ALTER TABLE events ADD COLUMN {name} {decl};"))?;
    }
    if missing.iter().any(|(name, _)| *name == "instance") {
        backfill_event_instances(conn)?;
    }
    Ok(())
}

/// Gives older rows the host name of their agent's newest series: the name it sent last.
/// One pass over `series`, which has no index by agent, rather than one per row.
fn backfill_event_instances(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "UPDATE events SET instance = known.instance
         FROM (SELECT a.agent_id AS agent_id, json_extract(s.labels, '$.instance') AS instance
               FROM series s JOIN agents a ON a.id = s.agent
               WHERE s.id IN (SELECT max(id) FROM series GROUP BY agent)) AS known
         WHERE events.agent_id = known.agent_id AND known.instance IS NOT NULL;",
    )?;
    Ok(())
}
