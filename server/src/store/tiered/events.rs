//! Reads of check results (`events`): lists by agent, check and time, and the latest
//! result of every check with the time it entered its state.
//!
//! The latest results never scan the table, whose rows grow with every run of every
//! check: `events_by_state(agent_id, name, state, ts)` is walked backwards one key
//! `(agent, check, state)` at a time, each step a seek below the previous key (a loose
//! index scan), which yields every state's newest time for one seek per key. A check's
//! newest row is one seek in `events_by_check`; its current run starts at its first result
//! in the current state after the newest result in any other state, one more seek in
//! `events_by_state`. So the work grows with checks × states, not with results kept.
//!
//! Reads show what events retention keeps, counted back as the purge counts it, so a
//! result disappears on time even before the purge deletes it.

use super::*;
use crate::store::MAX_EVENTS;

/// One key of `events_by_state` with its newest time.
struct StateKey {
    agent_id: String,
    name: String,
    state: String,
    newest: i64,
}

fn state_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateKey> {
    Ok(StateKey {
        agent_id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        newest: r.get(3)?,
    })
}

/// The columns of a [`StoredEvent`], in the order [`stored_event`] reads them.
const COLUMNS: &str = "agent_id, instance, name, state, output, long_output, hard, ts";

fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        agent_id: r.get(0)?,
        instance: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        output: r.get(4)?,
        long_output: r.get(5)?,
        hard: r.get::<_, Option<i64>>(6)?.map(|h| h != 0),
        ts: r.get(7)?,
    })
}

/// The statement of a query with only the filters it has, so that the planner can use
/// `events_by_check` for an agent and check. `?3` and `?4` are bound whether or not they
/// appear: SQLite counts parameters up to the highest number.
///
/// With an agent but no check, SQLite reads that agent's entries of `events_by_check` and
/// keeps the newest `limit`: the cost follows what the agent has kept (a day of a check
/// every minute is 1,440 rows per check). An index on `(agent_id, ts)` would make it a
/// seek, at the price of a fourth index written with every result.
fn events_sql(q: &EventQuery) -> String {
    let mut sql = format!("SELECT {COLUMNS} FROM events WHERE ts >= ?1 AND ts <= ?2");
    if q.agent_id.is_some() {
        sql.push_str(" AND agent_id = ?3");
    }
    if q.check.is_some() {
        sql.push_str(" AND name = ?4");
    }
    sql.push_str(" ORDER BY ts DESC, rowid DESC LIMIT ?5");
    sql
}

/// Every key of `events_by_state` (of one agent, or all) with its newest time, from the
/// last key to the first (see the module doc).
fn state_keys(conn: &Connection, agent_id: Option<&str>) -> Result<Vec<StateKey>, StoreError> {
    let first = match agent_id {
        Some(agent) => conn
            .prepare_cached(
                "SELECT agent_id, name, state, ts FROM events WHERE agent_id = ?1
                 ORDER BY agent_id DESC, name DESC, state DESC, ts DESC LIMIT 1",
            )?
            .query_row(params![agent], state_key)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT agent_id, name, state, ts FROM events
                 ORDER BY agent_id DESC, name DESC, state DESC, ts DESC LIMIT 1",
            )?
            .query_row([], state_key)
            .optional()?,
    };
    let mut next = conn.prepare_cached(
        "SELECT agent_id, name, state, ts FROM events WHERE (agent_id, name, state) < (?1, ?2, ?3)
         ORDER BY agent_id DESC, name DESC, state DESC, ts DESC LIMIT 1",
    )?;
    let mut keys = Vec::new();
    let mut current = first;
    while let Some(key) = current {
        if agent_id.is_some_and(|a| a != key.agent_id) {
            break;
        }
        current = next
            .query_row(params![key.agent_id, key.name, key.state], state_key)
            .optional()?;
        keys.push(key);
    }
    Ok(keys)
}

/// The latest result of one check, given its keys, and when its current run began;
/// `None` when all of it is past retention.
fn latest_of_check(
    conn: &Connection,
    states: &[StateKey],
    floor: i64,
) -> Result<Option<LatestCheck>, StoreError> {
    let Some(key) = states.first() else {
        return Ok(None);
    };
    if states.iter().all(|s| s.newest < floor) {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE agent_id = ?1 AND name = ?2
         ORDER BY ts DESC, rowid DESC LIMIT 1"
    );
    let Some(event) = conn
        .prepare_cached(&sql)?
        .query_row(params![key.agent_id, key.name], stored_event)
        .optional()?
    else {
        return Ok(None);
    };
    // The run began after the newest result in any other state.
    let broken = states
        .iter()
        .filter(|s| s.state != event.state)
        .map(|s| s.newest)
        .max();
    let from = broken.map_or(floor, |t| t.saturating_add(1).max(floor));
    let since: Option<i64> = conn
        .prepare_cached(
            "SELECT ts FROM events WHERE agent_id = ?1 AND name = ?2 AND state = ?3 AND ts >= ?4
             ORDER BY ts LIMIT 1",
        )?
        .query_row(params![key.agent_id, key.name, event.state, from], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(Some(LatestCheck {
        // Nothing later in its state: a result of another state at the same time.
        state_since_ms: since.unwrap_or(event.ts),
        event,
    }))
}

impl TieredStore {
    /// The oldest time event reads show: now less events retention, as the purge counts.
    fn events_floor(&self) -> i64 {
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let keep = i64::try_from(self.config.events_retention.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(keep)
    }

    /// [`Store::events`].
    pub(super) fn read_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if q.limit > MAX_EVENTS {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_EVENTS} events can be read at once, not {}",
                q.limit
            )));
        }
        let since = q.since_ms.max(self.events_floor());
        let until = q.until_ms.unwrap_or(i64::MAX);
        if q.limit == 0 || until < since {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&events_sql(q))?;
        let rows = stmt.query_map(
            params![since, until, q.agent_id, q.check, limit],
            stored_event,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// [`Store::latest_checks`], by agent and check name.
    pub(super) fn read_latest_checks(
        &self,
        agent_id: Option<&str>,
    ) -> Result<Vec<LatestCheck>, StoreError> {
        let floor = self.events_floor();
        let conn = self.reader()?;
        // One snapshot: a result stored meanwhile cannot split a check's keys from its rows.
        let tx = conn.unchecked_transaction()?;
        let keys = state_keys(&tx, agent_id)?;
        let mut out = Vec::new();
        // A check's keys are adjacent in index order.
        for states in keys.chunk_by(|a, b| a.agent_id == b.agent_id && a.name == b.name) {
            out.extend(latest_of_check(&tx, states, floor)?);
        }
        tx.finish()?;
        // The walk went backwards.
        out.reverse();
        Ok(out)
    }
}
