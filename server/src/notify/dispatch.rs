//! One step of the notifier, in one transaction: take the rules' outbox into alert groups,
//! then for each group whose timer is due decide what to send (grouping, silences,
//! maintenance, inhibition, flapping, business hours, repeats, escalation) and write the
//! messages; acknowledgements and frequency-limit digests too. Sending is elsewhere
//! ([`super::deliver`]): what this writes is sent at least once, whatever crashes.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};
use sysward_notify::{AlertInfo, Event, Notification, Status, message::CustomText};

use super::{
    config::matches,
    db::{NotifyError, SilenceRow, silences},
    plan::{Labels, Plan, Route},
};

/// Transitions read from the outbox at a time, and at most this many times per step.
const OUTBOX_BATCH: usize = 5_000;
const OUTBOX_BATCHES: usize = 20;
/// How long transitions wait in the outbox while no route is configured.
const UNROUTED_KEEP_MS: i64 = 24 * 3600 * 1000;
/// A group held by business hours is looked at again this often.
const HOLD_RECHECK_MS: i64 = 60_000;

/// What one step needs besides the transaction.
pub(super) struct StepEnv<'a> {
    pub(super) plan: &'a Plan,
    pub(super) now: i64,
    pub(super) external_url: &'a str,
}

/// What a step did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StepReport {
    pub transitions: usize,
    pub flushed: usize,
    pub notifications: usize,
}

pub(super) fn step(tx: &Transaction<'_>, env: &StepEnv<'_>) -> Result<StepReport, NotifyError> {
    let mut report = StepReport::default();
    // The whole outbox before any flush (up to a bound), so that a burst of alerts is
    // grouped instead of split across steps.
    for _ in 0..OUTBOX_BATCHES {
        let taken = take_outbox(tx, env)?;
        report.transitions += taken;
        if taken < OUTBOX_BATCH {
            break;
        }
    }
    let muting = Muting::load(tx, env)?;
    if muting.changed(tx)? {
        // A window or silence began or ended, or an alert that mutes others began or ended:
        // every group is looked at again, so that what still fires when a maintenance window
        // ends (or its inhibiting alert resolves) is notified then.
        // Groups still in their group_wait keep it.
        tx.execute(
            "UPDATE notify_groups SET next_ms = MIN(COALESCE(next_ms, ?1), ?1)
             WHERE next_ms IS NULL OR last_flush_ms IS NOT NULL",
            [env.now],
        )?;
    }
    let due: Vec<String> = {
        let mut q = tx
            .prepare_cached("SELECT key FROM notify_groups WHERE next_ms <= ?1 ORDER BY next_ms")?;
        q.query_map([env.now], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for key in due {
        report.flushed += 1;
        report.notifications += flush(tx, env, &muting, &key)?;
    }
    report.notifications += send_acknowledgements(tx, env)?;
    report.notifications += release_held(tx, env)?;
    Ok(report)
}

fn labels_json(l: &Labels) -> String {
    serde_json::to_string(l).unwrap_or_default()
}

fn hash_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// An alert's identity across notifications: a hash of its labels.
pub fn fingerprint(labels: &Labels) -> String {
    hash_hex(&[&labels_json(labels)])[..16].to_string()
}

/// Moves the rules' outbox into groups, one transition at a time in order.
fn take_outbox(tx: &Transaction<'_>, env: &StepEnv<'_>) -> Result<usize, NotifyError> {
    let Some(root) = &env.plan.root else {
        // No route: transitions wait a day for one to be configured, then go (the history
        // keeps them); an outbox nobody reads must not grow for ever.
        tx.execute(
            "DELETE FROM alert_outbox WHERE created_ms < ?1",
            [env.now - UNROUTED_KEEP_MS],
        )?;
        return Ok(0);
    };
    let rows: Vec<OutboxRow> = {
        let mut q = tx.prepare_cached(
            "SELECT t.id, t.labels, t.to_state, t.annotations, t.value, t.active_at, t.alertname,
                    t.at_ms
             FROM alert_outbox o JOIN alert_transitions t ON t.id = o.transition_id
             ORDER BY o.transition_id LIMIT ?1",
        )?;
        q.query_map([OUTBOX_BATCH as i64], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                labels: r.get(1)?,
                to: r.get(2)?,
                annotations: r.get(3)?,
                value: r.get(4)?,
                active_at: r.get(5)?,
                alertname: r.get(6)?,
                at_ms: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?
    };
    for row in &rows {
        let mut labels: Labels = pairs(&row.labels);
        labels
            .entry("alertname".into())
            .or_insert_with(|| row.alertname.clone());
        let annotations = pairs(&row.annotations);
        // Every transition in the outbox is a change of state: counted once, however many
        // routes the alert goes to.
        record_flip(tx, env, &fingerprint(&labels), row.at_ms)?;
        let mut routes = Vec::new();
        root.routes_for(&labels, &mut routes);
        for route in routes {
            let alert = Incoming {
                labels: &labels,
                annotations: &annotations,
                firing: row.to != "inactive",
                value: row.value,
                starts_ms: row.active_at,
                at_ms: row.at_ms,
            };
            add_to_group(tx, env, route, &alert)?;
        }
        tx.execute(
            "DELETE FROM alert_outbox WHERE transition_id = ?1",
            [row.id],
        )?;
    }
    Ok(rows.len())
}

/// A transition waiting in the rules' outbox.
struct OutboxRow {
    id: i64,
    labels: String,
    to: String,
    annotations: String,
    value: Option<f64>,
    active_at: i64,
    alertname: String,
    at_ms: i64,
}

/// The rules store labels and annotations as a JSON list of pairs.
fn pairs(text: &str) -> Labels {
    serde_json::from_str::<Vec<(String, String)>>(text)
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

struct Incoming<'a> {
    labels: &'a Labels,
    annotations: &'a Labels,
    firing: bool,
    value: Option<f64>,
    starts_ms: i64,
    at_ms: i64,
}

fn add_to_group(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    route: &Route,
    a: &Incoming<'_>,
) -> Result<(), NotifyError> {
    let group_labels = route.group_labels(a.labels);
    let key = format!("{}:{}", route.id, labels_json(&group_labels));
    let now = env.now;
    let wait = route.group_wait.as_millis() as i64;
    let interval = route.group_interval.as_millis() as i64;
    // A new group waits group_wait; a known one is looked at group_interval after its last
    // notification (at once if that is past).
    tx.execute(
        "INSERT INTO notify_groups(key, id, route, group_labels, created_ms, next_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5 + ?6)
         ON CONFLICT(key) DO UPDATE SET next_ms = MIN(
             COALESCE(next_ms, ?5 + ?6),
             CASE WHEN last_flush_ms IS NULL THEN created_ms + ?6
                  ELSE MAX(?5, last_flush_ms + ?7) END)",
        params![
            key,
            &hash_hex(&[&key])[..12],
            route.id,
            labels_json(&group_labels),
            now,
            wait,
            interval
        ],
    )?;
    let fp = fingerprint(a.labels);
    let status = if a.firing { "firing" } else { "resolved" };
    tx.execute(
        "INSERT INTO notify_alerts(group_key, fingerprint, labels, annotations, status, starts_ms,
                                   ends_ms, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(group_key, fingerprint) DO UPDATE SET
             annotations = excluded.annotations, status = excluded.status,
             starts_ms = CASE WHEN notify_alerts.status = 'firing' AND excluded.status = 'firing'
                              THEN notify_alerts.starts_ms ELSE excluded.starts_ms END,
             ends_ms = excluded.ends_ms, value = excluded.value",
        params![
            key,
            fp,
            labels_json(a.labels),
            labels_json(a.annotations),
            status,
            a.starts_ms,
            (!a.firing).then_some(a.at_ms),
            a.value,
        ],
    )?;
    Ok(())
}

/// Flap detection: an alert's state changes within the period, kept by fingerprint (apart
/// from its group rows, which go once it resolves).
fn record_flip(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    fp: &str,
    at: i64,
) -> Result<(), NotifyError> {
    let Some((n, period)) = env.plan.flapping else {
        return Ok(());
    };
    let row: Option<(String, i64)> = tx
        .query_row(
            "SELECT flips, flapping FROM notify_flaps WHERE fingerprint = ?1",
            [fp],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (flips, state) = row.unwrap_or_else(|| ("[]".into(), 0));
    let mut flips: Vec<i64> = serde_json::from_str(&flips).unwrap_or_default();
    flips.push(at);
    let since = env.now - period.as_millis() as i64;
    flips.retain(|t| *t >= since);
    // 1: flapping, not yet told; 2: told.
    let state = match (flips.len() > n, state) {
        (false, _) => 0,
        (true, 0) => 1,
        (true, s) => s,
    };
    tx.execute(
        "INSERT INTO notify_flaps(fingerprint, flips, flapping, last_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(fingerprint) DO UPDATE SET flips = excluded.flips,
             flapping = excluded.flapping, last_ms = excluded.last_ms",
        params![
            fp,
            serde_json::to_string(&flips).unwrap_or_default(),
            state,
            at
        ],
    )?;
    Ok(())
}

/// Ends the flapping of alerts whose changes in the period fell to the limit; true when
/// some are still flapping.
fn settle_flaps(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    fps: &[&str],
) -> Result<bool, NotifyError> {
    let Some((n, period)) = env.plan.flapping else {
        return Ok(false);
    };
    let since = env.now - period.as_millis() as i64;
    let mut still = false;
    for fp in fps {
        let flips: Option<String> = tx
            .query_row(
                "SELECT flips FROM notify_flaps WHERE fingerprint = ?1 AND flapping > 0",
                [fp],
                |r| r.get(0),
            )
            .optional()?;
        let Some(flips) = flips else {
            continue;
        };
        let mut flips: Vec<i64> = serde_json::from_str(&flips).unwrap_or_default();
        flips.retain(|t| *t >= since);
        if flips.len() > n {
            still = true;
        } else {
            tx.execute(
                "UPDATE notify_flaps SET flapping = 0, flips = ?2 WHERE fingerprint = ?1",
                params![fp, serde_json::to_string(&flips).unwrap_or_default()],
            )?;
        }
    }
    Ok(still)
}

/// Silences, maintenance windows and muting rules in force at this step.
struct Muting {
    windows: Vec<(String, Vec<crate::store::LabelMatcher>)>,
    /// Labels of every firing alert, for inhibition and dependencies.
    firing: Vec<Labels>,
    signature: String,
}

impl Muting {
    fn load(tx: &Transaction<'_>, env: &StepEnv<'_>) -> Result<Muting, NotifyError> {
        let mut windows = Vec::new();
        for w in env.plan.maintenance.iter().filter(|w| w.active(env.now)) {
            windows.push((format!("maintenance {}", w.name), w.matchers.clone()));
        }
        for s in silences(tx)?
            .into_iter()
            .filter(|s: &SilenceRow| (s.starts_ms..s.ends_ms).contains(&env.now))
        {
            if let Ok(m) = super::config::parse_matchers(&s.matchers) {
                windows.push((format!("{} {}", s.kind, s.id), m));
            }
        }
        let firing: Vec<Labels> = {
            let mut q = tx.prepare_cached(
                "SELECT DISTINCT labels FROM notify_alerts WHERE status = 'firing'",
            )?;
            q.query_map([], |r| r.get::<_, String>(0))?
                .filter_map(|r| r.ok())
                .filter_map(|t| serde_json::from_str(&t).ok())
                .collect()
        };
        let mut names: Vec<String> = windows.iter().map(|(n, _)| n.clone()).collect();
        for src in firing
            .iter()
            .filter(|l| env.plan.mutes.iter().any(|m| matches(&m.source, l)))
        {
            names.push(labels_json(src));
        }
        names.sort_unstable();
        names.dedup();
        let signature = names.join("\n");
        Ok(Muting {
            windows,
            firing,
            signature,
        })
    }

    /// Whether the windows in force differ from the last step's (and remembers these).
    fn changed(&self, tx: &Transaction<'_>) -> Result<bool, NotifyError> {
        let last: Option<String> = tx
            .query_row(
                "SELECT value FROM notify_meta WHERE key = 'muting'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if last.as_deref() == Some(self.signature.as_str()) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO notify_meta(key, value) VALUES ('muting', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [&self.signature],
        )?;
        Ok(last.is_some() || !self.signature.is_empty())
    }

    /// Why the alert is held, if it is.
    fn reason(&self, plan: &Plan, labels: &Labels) -> Option<String> {
        if let Some((name, _)) = self.windows.iter().find(|(_, m)| matches(m, labels)) {
            return Some(name.clone());
        }
        for rule in &plan.mutes {
            if !matches(&rule.target, labels) || matches(&rule.source, labels) {
                continue;
            }
            let muted = self.firing.iter().any(|src| {
                matches(&rule.source, src) && rule.equal.iter().all(|k| src.get(k) == labels.get(k))
            });
            if muted {
                return Some(rule.name.clone());
            }
        }
        None
    }
}

/// An alert of a group as stored.
struct Member {
    fingerprint: String,
    info: AlertInfo,
    notified: bool,
    flapping: i64,
}

fn members(
    tx: &Transaction<'_>,
    key: &str,
    external_url: &str,
) -> Result<Vec<Member>, NotifyError> {
    let mut q = tx.prepare_cached(
        "SELECT a.fingerprint, a.labels, a.annotations, a.status, a.starts_ms, a.ends_ms, a.value,
                a.notified, COALESCE(f.flapping, 0)
         FROM notify_alerts a LEFT JOIN notify_flaps f ON f.fingerprint = a.fingerprint
         WHERE a.group_key = ?1 ORDER BY a.status, a.starts_ms, a.fingerprint",
    )?;
    let rows = q.query_map([key], |r| {
        let fingerprint: String = r.get(0)?;
        let labels: Labels = serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default();
        let annotations: Labels = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default();
        let firing = r.get::<_, String>(3)? == "firing";
        let generator_url = format!(
            "{external_url}/api/v1/alerts?alertname={}",
            labels.get("alertname").map(String::as_str).unwrap_or("")
        );
        Ok(Member {
            info: AlertInfo {
                fingerprint: fingerprint.clone(),
                status: if firing {
                    Status::Firing
                } else {
                    Status::Resolved
                },
                labels,
                annotations,
                starts_at_ms: r.get(4)?,
                ends_at_ms: r.get(5)?,
                value: r.get(6)?,
                generator_url,
            },
            fingerprint,
            notified: r.get::<_, i64>(7)? != 0,
            flapping: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A group's row, as far as a flush needs it.
struct GroupState {
    id: String,
    route: String,
    labels: Labels,
    last_flush_ms: Option<i64>,
    last_sent: String,
    first_notified_ms: Option<i64>,
    step: i64,
    am_sent_ms: Option<i64>,
    acked: bool,
}

fn group_state(tx: &Transaction<'_>, key: &str) -> Result<Option<GroupState>, NotifyError> {
    Ok(tx
        .query_row(
            "SELECT id, route, group_labels, last_flush_ms, last_sent, first_notified_ms, step,
                    am_sent_ms, acked_by FROM notify_groups WHERE key = ?1",
            [key],
            |r| {
                Ok(GroupState {
                    id: r.get(0)?,
                    route: r.get(1)?,
                    labels: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    last_flush_ms: r.get(3)?,
                    last_sent: r.get(4)?,
                    first_notified_ms: r.get(5)?,
                    step: r.get(6)?,
                    am_sent_ms: r.get(7)?,
                    acked: r.get::<_, Option<String>>(8)?.is_some(),
                })
            },
        )
        .optional()?)
}

/// Looks at one due group; returns how many notifications it made.
fn flush(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    muting: &Muting,
    key: &str,
) -> Result<usize, NotifyError> {
    let Some(g) = group_state(tx, key)? else {
        return Ok(0);
    };
    let plan = env.plan;
    let Some(root) = &plan.root else {
        return Ok(0);
    };
    // A route removed by a reload: its groups go on with the top route's settings.
    let route = root.find(&g.route).unwrap_or(root);
    let now = env.now;
    let all = members(tx, key, env.external_url)?;
    if all.is_empty() {
        tx.execute("DELETE FROM notify_groups WHERE key = ?1", [key])?;
        return Ok(0);
    }
    if !plan.open_at(&route.active, &route.mute, now) {
        tx.execute(
            "UPDATE notify_groups SET next_ms = ?2 WHERE key = ?1",
            params![key, now + HOLD_RECHECK_MS],
        )?;
        return Ok(0);
    }
    let mut made = 0;
    let flapping: Vec<&Member> = all.iter().filter(|m| m.flapping == 1).collect();
    if !flapping.is_empty() {
        let alerts = flapping.iter().map(|m| m.info.clone()).collect();
        made += notify_reached(tx, env, route, &g, key, Event::Flapping, alerts, None)?;
        for m in &flapping {
            tx.execute(
                "UPDATE notify_flaps SET flapping = 2 WHERE fingerprint = ?1",
                [&m.fingerprint],
            )?;
        }
    }
    let flapping_fps: Vec<&str> = all
        .iter()
        .filter(|m| m.flapping > 0)
        .map(|m| m.fingerprint.as_str())
        .collect();
    let still_flapping = settle_flaps(tx, env, &flapping_fps)?;
    let settled: BTreeSet<&str> = if still_flapping {
        BTreeSet::new()
    } else {
        flapping_fps.iter().copied().collect()
    };
    let visible: Vec<&Member> = all
        .iter()
        .filter(|m| m.flapping == 0 || settled.contains(m.fingerprint.as_str()))
        .filter(|m| match m.info.status {
            Status::Firing => muting.reason(plan, &m.info.labels).is_none(),
            Status::Resolved => m.notified,
        })
        .collect();
    let firing = visible.iter().any(|m| m.info.status == Status::Firing);
    let signature = visible
        .iter()
        .map(|m| format!("{}:{}", m.fingerprint, m.info.status.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let repeat_ms = route.repeat_interval.as_millis() as i64;
    let repeat_due = firing && !g.acked && g.last_flush_ms.is_some_and(|l| now >= l + repeat_ms);
    let changed = signature != g.last_sent;
    let mut step = g.step;
    let mut first = g.first_notified_ms;
    let alerts: Vec<AlertInfo> = visible.iter().map(|m| m.info.clone()).collect();
    let mut flushed = false;
    if (changed || repeat_due) && !visible.is_empty() && (firing || g.first_notified_ms.is_some()) {
        if step < 0 {
            step = 0;
            first = Some(now);
        }
        let receivers = reached(plan, route, step, now);
        for r in &receivers {
            made += notify(tx, env, &g, key, r, Event::Alerts, alerts.clone(), None)?;
        }
        flushed = true;
    }
    // Escalation: each later step whose delay has passed while the group fires, unacknowledged.
    if let (Some(policy), Some(first_ms), true) = (&route.escalation, first, firing && !g.acked) {
        let steps = plan.policies.get(policy).map(Vec::len).unwrap_or(0) as i64;
        while step + 1 < steps {
            let next = (step + 1) as usize;
            let after = plan.policies[policy][next].after.as_millis() as i64;
            if now < first_ms + after {
                break;
            }
            step += 1;
            for r in plan.step_receivers(policy, next, now) {
                made += notify(
                    tx,
                    env,
                    &g,
                    key,
                    &r,
                    Event::Escalated { step: next },
                    alerts.clone(),
                    None,
                )?;
            }
        }
    }
    let am_every = plan.config.alertmanager_resend.as_millis() as i64;
    let receivers = reached(plan, route, step.max(0), now);
    let has_am = receivers
        .iter()
        .any(|r| plan.receiver(r).is_some_and(|r| !r.alertmanager.is_empty()));
    let mut am_sent = g.am_sent_ms;
    if flushed {
        am_sent = Some(now);
    } else if firing && has_am && g.am_sent_ms.is_none_or(|t| now >= t + am_every) {
        for r in &receivers {
            made += notify(
                tx,
                env,
                &g,
                key,
                r,
                Event::Alerts,
                alerts.clone(),
                Some("alertmanager"),
            )?;
        }
        am_sent = Some(now);
    }
    finish_flush(tx, key, &visible, flushed)?;
    let episode_over = !firing && flushed;
    let mut next = next_due(
        plan, route, &g, step, first, now, firing, flushed, has_am, am_sent,
    );
    if still_flapping {
        let recheck = now + HOLD_RECHECK_MS;
        next = Some(next.map_or(recheck, |n| n.min(recheck)));
    }
    tx.execute(
        "UPDATE notify_groups SET next_ms = ?2, step = ?3, first_notified_ms = ?4,
             am_sent_ms = ?5,
             last_flush_ms = CASE WHEN ?6 THEN ?7 ELSE last_flush_ms END,
             last_sent = CASE WHEN ?6 THEN ?8 ELSE last_sent END
         WHERE key = ?1",
        params![
            key,
            next,
            if episode_over { -1 } else { step },
            if episode_over { None } else { first },
            am_sent,
            flushed,
            now,
            signature
        ],
    )?;
    if episode_over {
        tx.execute(
            "UPDATE notify_groups SET acked_by = NULL, acked_ms = NULL, ack_sent = 1 WHERE key = ?1",
            [key],
        )?;
    }
    Ok(made)
}

/// Receivers the group has reached by escalation step `step` (the route's receiver when
/// it has no escalation policy).
fn reached(plan: &Plan, route: &Route, step: i64, now: i64) -> Vec<String> {
    let mut out: Vec<String> = route.receiver.iter().cloned().collect();
    if let Some(policy) = &route.escalation {
        for s in 0..=step.max(0) as usize {
            out.extend(plan.step_receivers(policy, s, now));
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|r| seen.insert(r.clone()));
    out
}

/// Marks the firing alerts sent and drops resolved ones that are done.
fn finish_flush(
    tx: &Transaction<'_>,
    key: &str,
    visible: &[&Member],
    flushed: bool,
) -> Result<(), NotifyError> {
    if flushed {
        for m in visible.iter().filter(|m| m.info.status == Status::Firing) {
            tx.execute(
                "UPDATE notify_alerts SET notified = 1 WHERE group_key = ?1 AND fingerprint = ?2",
                params![key, m.fingerprint],
            )?;
        }
        tx.execute(
            "DELETE FROM notify_alerts WHERE group_key = ?1 AND status = 'resolved' AND notified = 1",
            [key],
        )?;
    }
    // Resolved before anyone heard of them: nothing to tell.
    tx.execute(
        "DELETE FROM notify_alerts WHERE group_key = ?1 AND status = 'resolved' AND notified = 0",
        [key],
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn next_due(
    plan: &Plan,
    route: &Route,
    g: &GroupState,
    step: i64,
    first: Option<i64>,
    now: i64,
    firing: bool,
    flushed: bool,
    has_am: bool,
    am_sent: Option<i64>,
) -> Option<i64> {
    if !firing {
        return None;
    }
    let last = if flushed { Some(now) } else { g.last_flush_ms };
    let mut next: Option<i64> = None;
    let mut consider = |t: i64| next = Some(next.map_or(t, |n: i64| n.min(t)));
    if !g.acked {
        if let Some(l) = last {
            consider(l + route.repeat_interval.as_millis() as i64);
        }
        if let (Some(policy), Some(f)) = (&route.escalation, first)
            && let Some(s) = plan
                .policies
                .get(policy)
                .and_then(|s| s.get((step + 1) as usize))
        {
            consider(f + s.after.as_millis() as i64);
        }
    }
    if has_am && let Some(t) = am_sent {
        consider(t + plan.config.alertmanager_resend.as_millis() as i64);
    }
    next.map(|t| t.max(now + 1))
}

/// A notification to every receiver reached so far.
#[allow(clippy::too_many_arguments)]
fn notify_reached(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    route: &Route,
    g: &GroupState,
    key: &str,
    event: Event,
    alerts: Vec<AlertInfo>,
    only: Option<&str>,
) -> Result<usize, NotifyError> {
    let mut made = 0;
    for r in reached(env.plan, route, g.step.max(0), env.now) {
        made += notify(tx, env, g, key, &r, event.clone(), alerts.clone(), only)?;
    }
    Ok(made)
}

/// Writes one notification for `receiver` as one message per channel (only channels of
/// kind `only` when given). Returns 1 when written, 0 when the frequency limit held it.
#[allow(clippy::too_many_arguments)]
fn notify(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    g: &GroupState,
    key: &str,
    receiver: &str,
    event: Event,
    alerts: Vec<AlertInfo>,
    only: Option<&str>,
) -> Result<usize, NotifyError> {
    let n = build(tx, env, g, key, receiver, event, alerts)?;
    if only.is_none() && held_by_limit(tx, env, &n)? {
        return Ok(0);
    }
    write_messages(tx, env, &n, only)
}

fn build(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    g: &GroupState,
    key: &str,
    receiver: &str,
    event: Event,
    alerts: Vec<AlertInfo>,
) -> Result<Notification, NotifyError> {
    let status = if alerts.iter().any(|a| a.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    };
    let id = hash_hex(&[
        key,
        receiver,
        &env.now.to_string(),
        &format!("{event:?}"),
        &rand::random::<u64>().to_string(),
    ])[..20]
        .to_string();
    let ack_url = if status == Status::Firing && !matches!(event, Event::Acknowledged { .. }) {
        Some(ack_link(tx, env, key)?)
    } else {
        None
    };
    let mut n = Notification {
        id,
        group_key: g.id.clone(),
        receiver: receiver.to_string(),
        event,
        status,
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        alerts,
        group_labels: g.labels.clone(),
        external_url: env.external_url.to_string(),
        ack_url,
        custom: CustomText::default(),
        created_ms: env.now,
    };
    if let Some(t) = env.plan.templates.get(receiver) {
        n.custom = super::templates::render(t, &n);
    }
    Ok(n)
}

/// The pairs every map has.
fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// A one-use link that acknowledges the group; only its hash is stored.
fn ack_link(tx: &Transaction<'_>, env: &StepEnv<'_>, key: &str) -> Result<String, NotifyError> {
    let token = hex::encode(rand::random::<[u8; 16]>());
    let ttl = env.plan.config.ack_link_ttl.as_millis() as i64;
    tx.execute(
        "INSERT INTO notify_ack_links(token_hash, group_key, expires_ms) VALUES (?1, ?2, ?3)",
        params![hash_hex(&[&token]), key, env.now + ttl],
    )?;
    Ok(format!("{}/api/v1/ack/{token}", env.external_url))
}

/// The token's stored form.
pub(super) fn ack_token_hash(token: &str) -> String {
    hash_hex(&[token])
}

fn write_messages(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    n: &Notification,
    only: Option<&str>,
) -> Result<usize, NotifyError> {
    let Some(receiver) = env.plan.receiver(&n.receiver) else {
        return Ok(0);
    };
    let body = serde_json::to_string(n).map_err(|e| NotifyError::Invalid(e.to_string()))?;
    let ack = matches!(n.event, Event::Acknowledged { .. });
    let mut wrote = false;
    for (name, channel) in receiver.channels() {
        if only.is_some_and(|k| k != channel.kind()) || (ack && !channel.wants_acknowledgements()) {
            continue;
        }
        tx.execute(
            "INSERT INTO notify_messages(id, notification_id, group_key, receiver, channel, event,
                                         body, state, next_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?8)",
            params![
                format!("{}/{name}", n.id),
                n.id,
                n.group_key,
                n.receiver,
                name,
                n.event.name(),
                body,
                env.now
            ],
        )?;
        wrote = true;
    }
    Ok(wrote as usize)
}

/// The frequency limit: past N notifications per period, a receiver's notifications are
/// held and counted; the latest is kept for the digest.
fn held_by_limit(
    tx: &Transaction<'_>,
    env: &StepEnv<'_>,
    n: &Notification,
) -> Result<bool, NotifyError> {
    let Some((limit, period)) = env.plan.per_receiver else {
        return Ok(false);
    };
    if matches!(n.event, Event::Acknowledged { .. } | Event::Test) {
        return Ok(false);
    }
    let since = env.now - period.as_millis() as i64;
    if sent_since(tx, &n.receiver, since)? < limit {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO notify_held(receiver, held, last) VALUES (?1, 1, ?2)
         ON CONFLICT(receiver) DO UPDATE SET held = held + 1, last = excluded.last",
        params![n.receiver, serde_json::to_string(n).unwrap_or_default()],
    )?;
    Ok(true)
}

/// Notifications written for `receiver` after `since`.
fn sent_since(tx: &Transaction<'_>, receiver: &str, since: i64) -> Result<usize, NotifyError> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(DISTINCT notification_id) FROM notify_messages
         WHERE receiver = ?1 AND created_ms > ?2 AND channel NOT LIKE 'alertmanager[%'",
        params![receiver, since],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Sends one digest for each receiver whose limit allows again.
fn release_held(tx: &Transaction<'_>, env: &StepEnv<'_>) -> Result<usize, NotifyError> {
    let Some((limit, period)) = env.plan.per_receiver else {
        return Ok(0);
    };
    let held: Vec<(String, i64, String)> = {
        let mut q = tx.prepare_cached("SELECT receiver, held, last FROM notify_held")?;
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    let since = env.now - period.as_millis() as i64;
    let mut made = 0;
    for (receiver, count, last) in held {
        if sent_since(tx, &receiver, since)? >= limit {
            continue;
        }
        let Ok(mut n) = serde_json::from_str::<Notification>(&last) else {
            continue;
        };
        n.event = Event::Digest {
            held: count as usize,
        };
        n.id = format!("{}-digest", n.id);
        n.created_ms = env.now;
        made += write_messages(tx, env, &n, None)?;
        tx.execute("DELETE FROM notify_held WHERE receiver = ?1", [&receiver])?;
    }
    Ok(made)
}

/// Tells the receivers a group reached that it was acknowledged (PagerDuty and Opsgenie
/// acknowledge their incidents).
fn send_acknowledgements(tx: &Transaction<'_>, env: &StepEnv<'_>) -> Result<usize, NotifyError> {
    let pending: Vec<(String, String)> = {
        let mut q = tx.prepare_cached(
            "SELECT key, acked_by FROM notify_groups WHERE ack_sent = 0 AND acked_by IS NOT NULL",
        )?;
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut made = 0;
    for (key, by) in pending {
        tx.execute(
            "UPDATE notify_groups SET ack_sent = 1 WHERE key = ?1",
            [&key],
        )?;
        let Some(g) = group_state(tx, &key)? else {
            continue;
        };
        let receivers: Vec<String> = {
            let mut q = tx.prepare_cached(
                "SELECT DISTINCT receiver FROM notify_messages
                 WHERE group_key = ?1 AND created_ms >= ?2 AND event != 'acknowledged'",
            )?;
            q.query_map(params![g.id, g.first_notified_ms.unwrap_or(0)], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?
        };
        let alerts: Vec<AlertInfo> = members(tx, &key, env.external_url)?
            .into_iter()
            .filter(|m| m.info.status == Status::Firing)
            .map(|m| m.info)
            .collect();
        let mut by_receiver = BTreeMap::new();
        for r in receivers {
            by_receiver.insert(r, ());
        }
        for r in by_receiver.keys() {
            made += notify(
                tx,
                env,
                &g,
                &key,
                r,
                Event::Acknowledged { by: by.clone() },
                alerts.clone(),
                None,
            )?;
        }
    }
    Ok(made)
}
