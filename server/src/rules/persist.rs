//! The rules' durable state in the server's state database: each rule's alerts with their
//! timers, the series a `no_data` rule expects, and every transition, with an outbox row
//! for each one the notifier must deliver — all of one group's evaluation in one
//! transaction, written before its results are acted on.
//!
//! Rows are keyed by the rule's key (a hash of its definition, see [`rule_key`]): a rule
//! that changes on reload starts afresh; an unchanged one keeps its alerts. Only changes are
//! written: an alert's row holds its state and timers, not its value, so a steady firing
//! alert costs no write per evaluation.

use std::{collections::BTreeMap, path::Path, time::Duration};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Alert, AlertState, AlertingState, GroupSpec, RuleKind, RuleSpec, Transition};
use crate::query::Labels;

#[derive(Debug, thiserror::Error)]
#[error("rule state database: {0}")]
pub struct PersistError(#[from] rusqlite::Error);

/// A rule's identity across restarts and reloads: its file, group and whole definition.
pub fn rule_key(group: &GroupSpec, rule: &RuleSpec) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(&group.file.display().to_string());
    put(&group.name);
    put(rule.name());
    put(&rule.expr_text);
    for (k, t) in &rule.labels {
        put(k);
        put(t.source());
    }
    for (k, v) in &group.labels {
        put(k);
        put(v);
    }
    if let RuleKind::Alert(a) = &rule.kind {
        put(&format!(
            "{:?}/{:?}/{:?}/{:?}/{}/{:?}",
            a.hold, a.keep_firing_for, a.recover_text, a.recover_for, a.no_data, a.no_data_for
        ));
    }
    format!("{}:{}", rule.name(), &hex::encode(h.finalize())[..16])
}

/// An alert's row: what restoring it needs (its value and annotations come back with the
/// next evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AlertRow {
    state: String,
    base: Vec<(String, String)>,
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    keep_firing_since: Option<i64>,
    recovering_since: Option<i64>,
}

impl AlertRow {
    fn of(a: &Alert) -> Self {
        Self {
            state: a.state.name().into(),
            base: a.base.pairs().to_vec(),
            active_at: a.active_at,
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
            keep_firing_since: a.keep_firing_since,
            recovering_since: a.recovering_since,
        }
    }

    fn alert(self, labels: Labels) -> Option<Alert> {
        Some(Alert {
            labels,
            base: Labels::new(self.base),
            annotations: Vec::new(),
            state: AlertState::parse(&self.state)?,
            value: f64::NAN,
            active_at: self.active_at,
            fired_at: self.fired_at,
            resolved_at: self.resolved_at,
            keep_firing_since: self.keep_firing_since,
            recovering_since: self.recovering_since,
            inhibited_by: None,
        })
    }
}

/// One stored transition, as the history API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredTransition {
    pub id: i64,
    pub at_ms: i64,
    pub rule: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub from: String,
    pub to: String,
    pub value: Option<f64>,
    pub active_at: i64,
    pub annotations: BTreeMap<String, String>,
    pub inhibited_by: Option<String>,
}

/// An alert as stored, for listing.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub rule: String,
    pub labels: Labels,
    pub state: String,
    pub active_at: i64,
    pub fired_at: Option<i64>,
}

/// What one rule's evaluation changed, to be written together.
#[derive(Debug, Default)]
pub struct RuleChanges {
    pub key: String,
    pub upserts: Vec<(String, String)>,
    pub deletes: Vec<String>,
    pub seen: Vec<(String, i64)>,
    pub unseen: Vec<String>,
    pub transitions: Vec<Transition>,
}

/// What was last written of one rule, to write only what changed.
#[derive(Debug, Default, Clone)]
pub struct Written {
    alerts: BTreeMap<String, String>,
    seen: BTreeMap<String, i64>,
    seen_flushed_at: i64,
}

/// `last_seen` times are written at most this often; a restart may then see a series as
/// missing for up to this much longer than it was.
const SEEN_FLUSH_MS: i64 = 60_000;

/// Keys of labels in rows: JSON of the sorted pairs.
fn labels_key(l: &Labels) -> String {
    serde_json::to_string(l.pairs()).unwrap_or_default()
}

fn labels_of(key: &str) -> Option<Labels> {
    serde_json::from_str::<Vec<(String, String)>>(key)
        .ok()
        .map(Labels::new)
}

/// Compares `state` with what was written and returns the rows to change.
pub fn changes(
    key: &str,
    state: &AlertingState,
    written: &mut Written,
    transitions: Vec<Transition>,
    t: i64,
) -> RuleChanges {
    let mut out = RuleChanges {
        key: key.to_string(),
        transitions,
        ..RuleChanges::default()
    };
    let mut now = BTreeMap::new();
    for (labels, a) in &state.alerts {
        let k = labels_key(labels);
        let body = serde_json::to_string(&AlertRow::of(a)).unwrap_or_default();
        if written.alerts.get(&k) != Some(&body) {
            out.upserts.push((k.clone(), body.clone()));
        }
        now.insert(k, body);
    }
    out.deletes = written
        .alerts
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    written.alerts = now;
    if t - written.seen_flushed_at >= SEEN_FLUSH_MS {
        let seen: BTreeMap<String, i64> = state
            .last_seen
            .iter()
            .map(|(l, at)| (labels_key(l), *at))
            .collect();
        out.seen = seen
            .iter()
            .filter(|(k, at)| written.seen.get(*k) != Some(at))
            .map(|(k, at)| (k.clone(), *at))
            .collect();
        out.unseen = written
            .seen
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        written.seen = seen;
        written.seen_flushed_at = t;
    }
    out
}

/// The rule state tables, on their own connection to the state database.
pub struct AlertDb {
    conn: Connection,
}

/// Whether the notifier has to deliver this transition.
pub fn notifiable(t: &Transition) -> bool {
    use AlertState::*;
    matches!(
        (t.from, t.to),
        (_, Firing) | (_, NoData) | (Firing | NoData, Inactive)
    )
}

impl AlertDb {
    pub fn open(path: &Path) -> Result<Self, PersistError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS rule_alerts(
                 rule TEXT NOT NULL, labels TEXT NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY(rule, labels));
             CREATE TABLE IF NOT EXISTS rule_last_seen(
                 rule TEXT NOT NULL, base TEXT NOT NULL, seen_ms INTEGER NOT NULL,
                 PRIMARY KEY(rule, base));
             CREATE TABLE IF NOT EXISTS alert_transitions(
                 id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, rule TEXT NOT NULL,
                 alertname TEXT NOT NULL, labels TEXT NOT NULL, from_state TEXT NOT NULL,
                 to_state TEXT NOT NULL, value REAL, active_at INTEGER NOT NULL,
                 annotations TEXT NOT NULL, inhibited_by TEXT);
             CREATE INDEX IF NOT EXISTS alert_transitions_at ON alert_transitions(at_ms);
             CREATE TABLE IF NOT EXISTS alert_outbox(
                 transition_id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS rule_groups(
                 key TEXT PRIMARY KEY, last_eval_ms INTEGER NOT NULL);",
        )?;
        Ok(Self { conn })
    }

    /// The stored state of the rule `key`, and what was written of it.
    pub fn restore(&self, key: &str) -> Result<(AlertingState, Written), PersistError> {
        let mut state = AlertingState::default();
        let mut written = Written::default();
        let mut q = self
            .conn
            .prepare_cached("SELECT labels, body FROM rule_alerts WHERE rule = ?1")?;
        let rows = q.query_map([key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (k, body) = row?;
            let Some(labels) = labels_of(&k) else {
                continue;
            };
            let Some(alert) = serde_json::from_str::<AlertRow>(&body)
                .ok()
                .and_then(|r| r.alert(labels.clone()))
            else {
                continue;
            };
            state.alerts.insert(labels, alert);
            written.alerts.insert(k, body);
        }
        let mut q = self
            .conn
            .prepare_cached("SELECT base, seen_ms FROM rule_last_seen WHERE rule = ?1")?;
        let rows = q.query_map([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (k, at) = row?;
            if let Some(base) = labels_of(&k) {
                state.last_seen.insert(base, at);
                written.seen.insert(k, at);
            }
        }
        Ok((state, written))
    }

    /// Every stored alert: its rule key, labels, state and since when, for
    /// `sysward-server alerts list` (which reads the database without a running server).
    pub fn stored_alerts(&self) -> Result<Vec<StoredAlert>, PersistError> {
        let mut q = self
            .conn
            .prepare("SELECT rule, labels, body FROM rule_alerts ORDER BY rule, labels")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (rule, labels, body) = row?;
            let (Some(labels), Ok(body)) =
                (labels_of(&labels), serde_json::from_str::<AlertRow>(&body))
            else {
                continue;
            };
            out.push(StoredAlert {
                rule,
                labels,
                state: body.state,
                active_at: body.active_at,
                fired_at: body.fired_at,
            });
        }
        Ok(out)
    }

    /// When the group `key` was last evaluated.
    pub fn group_last_eval(&self, key: &str) -> Result<Option<i64>, PersistError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_eval_ms FROM rule_groups WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Writes one group's evaluation: alert rows, transitions and their outbox rows.
    pub fn commit(
        &mut self,
        group_key: &str,
        t: i64,
        rules: &[RuleChanges],
    ) -> Result<(), PersistError> {
        let tx = self.conn.transaction()?;
        for r in rules {
            write_rule(&tx, r, t)?;
        }
        tx.execute(
            "INSERT INTO rule_groups(key, last_eval_ms) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET last_eval_ms = excluded.last_eval_ms",
            params![group_key, t],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the rows of rules no longer loaded.
    pub fn forget_other_rules(&mut self, keep: &[String]) -> Result<usize, PersistError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS keep_rules(rule TEXT PRIMARY KEY); DELETE FROM keep_rules;")?;
        for k in keep {
            tx.execute("INSERT OR IGNORE INTO keep_rules(rule) VALUES (?1)", [k])?;
        }
        let n = tx.execute(
            "DELETE FROM rule_alerts WHERE rule NOT IN (SELECT rule FROM keep_rules)",
            [],
        )?;
        tx.execute(
            "DELETE FROM rule_last_seen WHERE rule NOT IN (SELECT rule FROM keep_rules)",
            [],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Transitions, newest first, at or after `since_ms`, at most `limit`.
    pub fn history(
        &self,
        since_ms: i64,
        alertname: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredTransition>, PersistError> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {TRANSITION_COLUMNS} FROM alert_transitions
             WHERE at_ms >= ?1 AND (?2 IS NULL OR alertname = ?2)
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = q.query_map(params![since_ms, alertname, limit as i64], transition_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Transitions waiting for the notifier, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<StoredTransition>, PersistError> {
        let mut q = self.conn.prepare_cached(
            "SELECT t.id FROM alert_outbox o JOIN alert_transitions t ON t.id = o.transition_id
             ORDER BY o.transition_id LIMIT ?1",
        )?;
        let ids: Vec<i64> = q
            .query_map([limit as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.history_by_id(id)?);
        }
        Ok(out)
    }

    fn history_by_id(&self, id: i64) -> Result<Option<StoredTransition>, PersistError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TRANSITION_COLUMNS} FROM alert_transitions WHERE id = ?1"),
                [id],
                transition_row,
            )
            .optional()?)
    }

    /// Deletes history older than `before_ms` that the notifier no longer needs.
    pub fn prune_history(&mut self, before_ms: i64) -> Result<usize, PersistError> {
        Ok(self.conn.execute(
            "DELETE FROM alert_transitions WHERE at_ms < ?1
             AND id NOT IN (SELECT transition_id FROM alert_outbox)",
            [before_ms],
        )?)
    }
}

const TRANSITION_COLUMNS: &str = "id, at_ms, rule, alertname, labels, from_state, to_state, value, active_at, annotations, \
     inhibited_by";

fn transition_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredTransition> {
    Ok(StoredTransition {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        rule: r.get(2)?,
        alertname: r.get(3)?,
        labels: json_map(&r.get::<_, String>(4)?),
        from: r.get(5)?,
        to: r.get(6)?,
        value: r.get(7)?,
        active_at: r.get(8)?,
        annotations: json_map(&r.get::<_, String>(9)?),
        inhibited_by: r.get(10)?,
    })
}

fn json_map(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str::<Vec<(String, String)>>(text)
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

fn write_rule(tx: &rusqlite::Transaction<'_>, r: &RuleChanges, t: i64) -> Result<(), PersistError> {
    for (labels, body) in &r.upserts {
        tx.execute(
            "INSERT INTO rule_alerts(rule, labels, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(rule, labels) DO UPDATE SET body = excluded.body",
            params![r.key, labels, body],
        )?;
    }
    for labels in &r.deletes {
        tx.execute(
            "DELETE FROM rule_alerts WHERE rule = ?1 AND labels = ?2",
            params![r.key, labels],
        )?;
    }
    for (base, at) in &r.seen {
        tx.execute(
            "INSERT INTO rule_last_seen(rule, base, seen_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(rule, base) DO UPDATE SET seen_ms = excluded.seen_ms",
            params![r.key, base, at],
        )?;
    }
    for base in &r.unseen {
        tx.execute(
            "DELETE FROM rule_last_seen WHERE rule = ?1 AND base = ?2",
            params![r.key, base],
        )?;
    }
    for tr in &r.transitions {
        let annotations = serde_json::to_string(&tr.annotations).unwrap_or_default();
        let value = tr.value.is_finite().then_some(tr.value);
        tx.execute(
            "INSERT INTO alert_transitions(at_ms, rule, alertname, labels, from_state, to_state,
                                           value, active_at, annotations, inhibited_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                tr.at_ms,
                r.key,
                tr.alertname,
                labels_key(&tr.labels),
                tr.from.name(),
                tr.to.name(),
                value,
                tr.active_at,
                annotations,
                tr.inhibited_by
            ],
        )?;
        if notifiable(tr) && tr.inhibited_by.is_none() {
            tx.execute(
                "INSERT INTO alert_outbox(transition_id, created_ms) VALUES (?1, ?2)",
                params![tx.last_insert_rowid(), t],
            )?;
        }
    }
    Ok(())
}
