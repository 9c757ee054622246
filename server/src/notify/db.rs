//! The notifier's durable state, in the server's state database beside the rules' outbox:
//! alert groups with their timers and escalation step, the alerts of each group, every
//! message (written before it is sent, marked after), silences and maintenance windows,
//! acknowledgement links, and what the frequency limit holds.

use std::{collections::BTreeMap, path::Path, time::Duration};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
}

pub(super) fn open(path: &Path) -> Result<Connection, NotifyError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL, not FULL as the rules write their transitions: a commit lost to a power cut
    // (never to a crash of the process) only means a message sent again with its id, or
    // transitions taken from the outbox again, while an fsync per delivery record would
    // compete with ingest for the disk.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_outbox(
    transition_id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notify_groups(
    key TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, route TEXT NOT NULL,
    group_labels TEXT NOT NULL, created_ms INTEGER NOT NULL, next_ms INTEGER,
    last_flush_ms INTEGER, last_sent TEXT NOT NULL DEFAULT '', first_notified_ms INTEGER,
    step INTEGER NOT NULL DEFAULT -1, am_sent_ms INTEGER, acked_by TEXT, acked_ms INTEGER,
    ack_sent INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS notify_groups_next ON notify_groups(next_ms);
CREATE TABLE IF NOT EXISTS notify_alerts(
    group_key TEXT NOT NULL, fingerprint TEXT NOT NULL, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, status TEXT NOT NULL, starts_ms INTEGER NOT NULL,
    ends_ms INTEGER, value REAL, notified INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(group_key, fingerprint));
CREATE TABLE IF NOT EXISTS notify_flaps(
    fingerprint TEXT PRIMARY KEY, flips TEXT NOT NULL, flapping INTEGER NOT NULL,
    last_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notify_messages(
    id TEXT PRIMARY KEY, notification_id TEXT NOT NULL, group_key TEXT NOT NULL,
    receiver TEXT NOT NULL, channel TEXT NOT NULL, event TEXT NOT NULL, body TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, done_ms INTEGER, status INTEGER, answer TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS notify_messages_due ON notify_messages(state, next_ms);
CREATE INDEX IF NOT EXISTS notify_messages_created ON notify_messages(created_ms);
CREATE INDEX IF NOT EXISTS notify_messages_receiver ON notify_messages(receiver, created_ms);
CREATE TABLE IF NOT EXISTS notify_silences(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, matchers TEXT NOT NULL, starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notify_ack_links(
    token_hash TEXT PRIMARY KEY, group_key TEXT NOT NULL, expires_ms INTEGER NOT NULL,
    used_ms INTEGER);
CREATE TABLE IF NOT EXISTS notify_held(
    receiver TEXT PRIMARY KEY, held INTEGER NOT NULL, last TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notify_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// A message as stored: one notification for one channel of a receiver.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    pub id: String,
    pub notification_id: String,
    pub group_key: String,
    pub receiver: String,
    pub channel: String,
    pub event: String,
    #[serde(skip)]
    pub body: String,
    /// `queued`, `sent`, `failed` (refused), `given_up` (retried too long).
    pub state: String,
    pub attempts: i64,
    pub next_ms: i64,
    pub created_ms: i64,
    pub done_ms: Option<i64>,
    pub status: Option<i64>,
    pub answer: Option<String>,
    pub error: Option<String>,
}

const MESSAGE_COLUMNS: &str = "id, notification_id, group_key, receiver, channel, event, body, \
     state, attempts, next_ms, created_ms, done_ms, status, answer, error";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        notification_id: r.get(1)?,
        group_key: r.get(2)?,
        receiver: r.get(3)?,
        channel: r.get(4)?,
        event: r.get(5)?,
        body: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        next_ms: r.get(9)?,
        created_ms: r.get(10)?,
        done_ms: r.get(11)?,
        status: r.get(12)?,
        answer: r.get(13)?,
        error: r.get(14)?,
    })
}

/// Queued messages due at `now`, oldest first.
pub(super) fn due_messages(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<MessageRow>, NotifyError> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM notify_messages WHERE state = 'queued' AND next_ms <= ?1
         ORDER BY next_ms, created_ms LIMIT ?2"
    ))?;
    let rows = q.query_map(params![now, limit as i64], message_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The history, newest first, optionally of one receiver or group.
pub(super) fn history(
    conn: &Connection,
    since_ms: i64,
    receiver: Option<&str>,
    limit: usize,
) -> Result<Vec<MessageRow>, NotifyError> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM notify_messages
         WHERE created_ms >= ?1 AND (?2 IS NULL OR receiver = ?2)
         ORDER BY created_ms DESC, id LIMIT ?3"
    ))?;
    let rows = q.query_map(params![since_ms, receiver, limit as i64], message_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The earliest time anything is due: a queued message or a group timer.
pub(super) fn next_due(conn: &Connection) -> Result<Option<i64>, NotifyError> {
    Ok(conn.query_row(
        "SELECT MIN(t) FROM (
             SELECT MIN(next_ms) AS t FROM notify_messages WHERE state = 'queued'
             UNION ALL SELECT MIN(next_ms) FROM notify_groups)",
        [],
        |r| r.get(0),
    )?)
}

/// Queued messages and the age of the oldest, for `/metrics`.
pub(super) fn queue_depth(conn: &Connection, now: i64) -> Result<(i64, i64), NotifyError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(?1 - MIN(created_ms), 0) FROM notify_messages
         WHERE state = 'queued'",
        [now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

pub(super) fn record_sent(
    conn: &Connection,
    id: &str,
    now: i64,
    status: u16,
    answer: &str,
) -> Result<(), NotifyError> {
    conn.execute(
        "UPDATE notify_messages SET state = 'sent', attempts = attempts + 1, done_ms = ?2,
             status = ?3, answer = ?4, error = NULL WHERE id = ?1",
        params![id, now, status, answer],
    )?;
    Ok(())
}

pub(super) fn record_retry(
    conn: &Connection,
    id: &str,
    next_ms: i64,
    error: &str,
) -> Result<(), NotifyError> {
    conn.execute(
        "UPDATE notify_messages SET attempts = attempts + 1, next_ms = ?2, error = ?3 WHERE id = ?1",
        params![id, next_ms, error],
    )?;
    Ok(())
}

pub(super) fn record_failed(
    conn: &Connection,
    id: &str,
    now: i64,
    state: &str,
    error: &str,
) -> Result<(), NotifyError> {
    conn.execute(
        "UPDATE notify_messages SET state = ?2, attempts = attempts + 1, done_ms = ?3, error = ?4
         WHERE id = ?1",
        params![id, state, now, error],
    )?;
    Ok(())
}

/// A silence or an API-made maintenance window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SilenceRow {
    pub id: String,
    pub kind: String,
    pub matchers: Vec<String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub created_by: String,
    pub comment: String,
    pub created_ms: i64,
}

pub(super) fn silences(conn: &Connection) -> Result<Vec<SilenceRow>, NotifyError> {
    let mut q = conn.prepare_cached(
        "SELECT id, kind, matchers, starts_ms, ends_ms, created_by, comment, created_ms
         FROM notify_silences ORDER BY starts_ms, id",
    )?;
    let rows = q.query_map([], |r| {
        Ok(SilenceRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            matchers: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
            starts_ms: r.get(3)?,
            ends_ms: r.get(4)?,
            created_by: r.get(5)?,
            comment: r.get(6)?,
            created_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn insert_silence(conn: &Connection, s: &SilenceRow) -> Result<(), NotifyError> {
    conn.execute(
        "INSERT INTO notify_silences(id, kind, matchers, starts_ms, ends_ms, created_by, comment,
                                     created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            s.id,
            s.kind,
            serde_json::to_string(&s.matchers).unwrap_or_default(),
            s.starts_ms,
            s.ends_ms,
            s.created_by,
            s.comment,
            s.created_ms
        ],
    )?;
    Ok(())
}

/// Ends a silence now (kept for the record); false when there is none with that id.
pub(super) fn expire_silence(conn: &Connection, id: &str, now: i64) -> Result<bool, NotifyError> {
    Ok(conn.execute(
        "UPDATE notify_silences SET ends_ms = MIN(ends_ms, ?2) WHERE id = ?1",
        params![id, now],
    )? > 0)
}

/// Marks the groups of `id` (a group id, or an alert fingerprint of a group) acknowledged
/// by `by`; returns their ids. Only groups with firing alerts can be acknowledged.
pub(super) fn acknowledge(
    tx: &Transaction<'_>,
    id: &str,
    by: &str,
    now: i64,
) -> Result<Vec<String>, NotifyError> {
    let mut q = tx.prepare(
        "SELECT DISTINCT g.key, g.id FROM notify_groups g
         JOIN notify_alerts a ON a.group_key = g.key AND a.status = 'firing'
         WHERE g.id = ?1 OR a.fingerprint = ?1 OR g.key = ?1",
    )?;
    let groups: Vec<(String, String)> = q
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (key, _) in &groups {
        tx.execute(
            "UPDATE notify_groups SET acked_by = ?2, acked_ms = ?3, ack_sent = 0 WHERE key = ?1",
            params![key, by, now],
        )?;
    }
    Ok(groups.into_iter().map(|(_, id)| id).collect())
}

/// Uses an acknowledgement link once: its group's key when valid, unused and not expired.
pub(super) fn use_ack_link(
    tx: &Transaction<'_>,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, NotifyError> {
    let key: Option<String> = tx
        .query_row(
            "SELECT group_key FROM notify_ack_links
             WHERE token_hash = ?1 AND used_ms IS NULL AND expires_ms > ?2",
            params![token_hash, now],
            |r| r.get(0),
        )
        .optional()?;
    if key.is_some() {
        tx.execute(
            "UPDATE notify_ack_links SET used_ms = ?2 WHERE token_hash = ?1",
            params![token_hash, now],
        )?;
    }
    Ok(key)
}

/// An alert group as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub id: String,
    pub route: String,
    pub labels: BTreeMap<String, String>,
    pub created_ms: i64,
    pub last_notified_ms: Option<i64>,
    pub escalation_step: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    pub firing: i64,
    /// The fingerprints of its firing alerts (as `fingerprint` of `GET /api/v1/alerts`).
    pub alerts: Vec<String>,
}

pub(super) fn groups(conn: &Connection) -> Result<Vec<GroupRow>, NotifyError> {
    let mut q = conn.prepare(
        "SELECT g.id, g.route, g.group_labels, g.created_ms, g.last_flush_ms, g.step, g.acked_by,
                g.acked_ms,
                (SELECT COUNT(*) FROM notify_alerts a WHERE a.group_key = g.key AND a.status = 'firing'),
                (SELECT json_group_array(a.fingerprint) FROM notify_alerts a
                 WHERE a.group_key = g.key AND a.status = 'firing')
         FROM notify_groups g ORDER BY g.created_ms, g.id",
    )?;
    let rows = q.query_map([], |r| {
        Ok(GroupRow {
            id: r.get(0)?,
            route: r.get(1)?,
            labels: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
            created_ms: r.get(3)?,
            last_notified_ms: r.get(4)?,
            escalation_step: r.get(5)?,
            acknowledged_by: r.get(6)?,
            acknowledged_ms: r.get(7)?,
            firing: r.get(8)?,
            alerts: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes finished messages and used or expired links older than `before_ms`.
pub(super) fn prune(conn: &Connection, before_ms: i64) -> Result<usize, NotifyError> {
    let n = conn.execute(
        "DELETE FROM notify_messages WHERE state != 'queued' AND created_ms < ?1",
        [before_ms],
    )?;
    conn.execute(
        "DELETE FROM notify_ack_links WHERE expires_ms < ?1",
        [before_ms],
    )?;
    conn.execute(
        "DELETE FROM notify_silences WHERE ends_ms < ?1",
        [before_ms],
    )?;
    conn.execute(
        "DELETE FROM notify_flaps WHERE flapping = 0 AND last_ms < ?1",
        [before_ms],
    )?;
    Ok(n)
}
