//! One alerting rule and its alerts: the state machine.
//!
//! An alert is one label set the rule's expression returned. Its states:
//!
//! ```text
//!            expr returns it          held `for`              recovery held `recover_for`
//! inactive ───────────────> pending ─────────────> firing ───────────────────────────> inactive
//!                              │  expr stops returning it         │ data missing `no_data_for`
//!                              └──────> (forgotten)               └───────> nodata / firing / kept
//! ```
//!
//! Without `recover`, a firing alert resolves when the expression no longer returns it
//! (after `keep_firing_for`, as in Prometheus). With `recover`, it resolves only once the
//! recovery condition has returned it for `recover_for`: between the two thresholds it stays
//! firing. With `no_data` other than `ok`, the left side of the rule's comparison tells a
//! value that stopped meeting the threshold from a series that stopped arriving; the latter
//! does not resolve the alert. A resolved alert is kept, inactive, for 15 minutes (what
//! Prometheus sends to Alertmanager as resolved), then forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    EvalContext, RuleError, Transition,
    file::{AlertSpec, NoData, RuleSpec},
};
use crate::query::{Labels, Value};

/// How long a resolved alert is still listed.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
/// A series missing this long is no longer expected to come back.
pub const FORGET_MISSING_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    NoData,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::NoData => "nodata",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inactive" => Self::Inactive,
            "pending" => Self::Pending,
            "firing" => Self::Firing,
            "nodata" => Self::NoData,
            _ => return None,
        })
    }
}

/// One alert of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its identity: the expression's labels without the name, the rule's labels and
    /// `alertname`.
    pub labels: Labels,
    /// The expression's labels without the name: what recovery and data are matched on.
    pub base: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub keep_firing_since: Option<i64>,
    pub recovering_since: Option<i64>,
    /// Why the alert is kept but not notified (`host down`); set by the engine.
    pub inhibited_by: Option<String>,
}

/// The alerts of one rule and what it learnt about its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingState {
    pub alerts: BTreeMap<Labels, Alert>,
    /// For `no_data` other than `ok`: each series of the data expression and the last time
    /// it was there.
    pub last_seen: BTreeMap<Labels, i64>,
}

/// What one evaluation found, before it is applied.
struct Found {
    /// Final labels → (base labels, value).
    results: BTreeMap<Labels, (Labels, f64)>,
    /// Base labels the data expression returned now (for `no_data`).
    data: Option<HashSet<Labels>>,
    /// Base labels the recovery condition returned now.
    recovering: Option<HashSet<Labels>>,
    /// Values of the data expression by base labels (rules with `recover` or `no_data`).
    values: HashMap<Labels, f64>,
}

/// Evaluates `rule` at `t`, moving `state`'s alerts; returns the transitions.
pub fn evaluate(
    rule: &RuleSpec,
    spec: &AlertSpec,
    group_labels: &BTreeMap<String, String>,
    limit: usize,
    state: &mut AlertingState,
    ctx: &EvalContext<'_>,
    t: i64,
) -> Result<Vec<Transition>, RuleError> {
    let found = find(rule, spec, group_labels, state, ctx, t)?;
    if limit > 0 && found.results.len() > limit {
        state.alerts.clear();
        return Err(RuleError::Limit {
            limit,
            got: found.results.len(),
        });
    }
    let mut moves = Vec::new();
    open_alerts(spec, state, &found, ctx, t, &mut moves);
    refresh_held(spec, state, &found, ctx, t);
    if let Some(data) = &found.data {
        for base in data {
            state.last_seen.insert(base.clone(), t);
        }
        missing_series_alerts(rule, spec, group_labels, state, ctx, t, &mut moves);
    }
    let keys: Vec<Labels> = state.alerts.keys().cloned().collect();
    for key in keys {
        step_alert(spec, state, &found, &key, t, &mut moves);
    }
    state
        .last_seen
        .retain(|_, seen| t - *seen < FORGET_MISSING_AFTER_MS);
    Ok(moves
        .into_iter()
        .map(|(alert, from)| Transition::of(&spec.name, &alert, from, t))
        .collect())
}

fn find(
    rule: &RuleSpec,
    spec: &AlertSpec,
    group_labels: &BTreeMap<String, String>,
    state: &AlertingState,
    ctx: &EvalContext<'_>,
    t: i64,
) -> Result<Found, RuleError> {
    let mut results = BTreeMap::new();
    for (metric, value) in ctx.instant(&rule.expr, t)? {
        let base = metric.without_name();
        let labels = alert_labels(rule, spec, group_labels, &base, value, ctx, t)?;
        if results.insert(labels, (base, value)).is_some() {
            return Err(RuleError::Eval(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            ));
        }
    }
    // The data expression's values: what tells missing data apart, and the value of an
    // alert held between its trigger and recovery thresholds. Like the recovery condition,
    // only queried when some alert needs it: most rules have nothing firing most of the time.
    let firing = state
        .alerts
        .values()
        .filter(|a| a.state == AlertState::Firing);
    let held = firing.clone().any(|a| !results.contains_key(&a.labels));
    let any_firing = firing.count() > 0;
    let values: HashMap<Labels, f64> =
        if spec.no_data != NoData::Ok || (spec.recover.is_some() && held) {
            ctx.instant(&spec.data_expr, t)?
                .into_iter()
                .map(|(m, v)| (m.without_name(), v))
                .collect()
        } else {
            HashMap::new()
        };
    let data = (spec.no_data != NoData::Ok).then(|| values.keys().cloned().collect());
    let recovering = match &spec.recover {
        Some(expr) if any_firing => Some(base_set(ctx.instant(expr, t)?)),
        Some(_) => Some(HashSet::new()),
        None => None,
    };
    Ok(Found {
        results,
        data,
        recovering,
        values,
    })
}

fn base_set(samples: Vec<(Labels, f64)>) -> HashSet<Labels> {
    samples.into_iter().map(|(m, _)| m.without_name()).collect()
}

/// The labels of the alert for one sample: the sample's, the group's, the rule's
/// (templated), and `alertname`.
fn alert_labels(
    rule: &RuleSpec,
    spec: &AlertSpec,
    group_labels: &BTreeMap<String, String>,
    base: &Labels,
    value: f64,
    ctx: &EvalContext<'_>,
    t: i64,
) -> Result<Labels, RuleError> {
    let mut pairs: BTreeMap<String, String> = base.pairs().iter().cloned().collect();
    let data_labels = pairs.clone();
    for (k, v) in group_labels {
        pairs.insert(k.clone(), v.clone());
    }
    let data = ctx.template_data(&data_labels, value, t);
    for (k, template) in &rule.labels {
        let text = ctx
            .render(template, &data)
            .map_err(|e| RuleError::Template(format!("label {k:?}: {e}")))?;
        pairs.insert(k.clone(), text);
    }
    pairs.insert("alertname".into(), spec.name.clone());
    Ok(Labels::new(pairs.into_iter().collect()))
}

fn annotations(
    spec: &AlertSpec,
    base: &Labels,
    value: f64,
    ctx: &EvalContext<'_>,
    t: i64,
) -> Vec<(String, String)> {
    let labels: BTreeMap<String, String> = base.pairs().iter().cloned().collect();
    let data = ctx.template_data(&labels, value, t);
    spec.annotations
        .iter()
        .map(|(k, template)| {
            // As in Prometheus, a failing annotation template shows its error instead of
            // stopping the alert.
            let text = ctx
                .render(template, &data)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
            (k.clone(), text)
        })
        .collect()
}

type Moves = Vec<(Alert, AlertState)>;

/// Updates the alerts the expression returned, and starts new ones as pending.
fn open_alerts(
    spec: &AlertSpec,
    state: &mut AlertingState,
    found: &Found,
    ctx: &EvalContext<'_>,
    t: i64,
    moves: &mut Moves,
) {
    for (labels, (base, value)) in &found.results {
        let notes = annotations(spec, base, *value, ctx, t);
        match state.alerts.get_mut(labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = *value;
                a.annotations = notes;
                a.base = base.clone();
            }
            _ => {
                let alert = Alert {
                    labels: labels.clone(),
                    base: base.clone(),
                    annotations: notes,
                    state: AlertState::Pending,
                    value: *value,
                    active_at: t,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                    recovering_since: None,
                    inhibited_by: None,
                };
                moves.push((alert.clone(), AlertState::Inactive));
                state.alerts.insert(labels.clone(), alert);
            }
        }
    }
}

/// A firing alert that its expression no longer returns but that has not recovered yet
/// shows its series' current value, not the last one above the threshold.
fn refresh_held(
    spec: &AlertSpec,
    state: &mut AlertingState,
    found: &Found,
    ctx: &EvalContext<'_>,
    t: i64,
) {
    for a in state.alerts.values_mut() {
        if a.state != AlertState::Firing || found.results.contains_key(&a.labels) {
            continue;
        }
        if let Some(v) = found.values.get(&a.base) {
            a.value = *v;
            a.annotations = annotations(spec, &a.base, *v, ctx, t);
        }
    }
}

/// Series of the data expression that stopped arriving and have no alert yet get one, for
/// `no_data = alerting | nodata`, once missing for `no_data_for`.
fn missing_series_alerts(
    rule: &RuleSpec,
    spec: &AlertSpec,
    group_labels: &BTreeMap<String, String>,
    state: &mut AlertingState,
    ctx: &EvalContext<'_>,
    t: i64,
    moves: &mut Moves,
) {
    let to = match spec.no_data {
        NoData::Alerting => AlertState::Firing,
        NoData::NoData => AlertState::NoData,
        NoData::Ok | NoData::Keep => return,
    };
    let covered: HashSet<&Labels> = state.alerts.values().map(|a| &a.base).collect();
    let missing: Vec<Labels> = state
        .last_seen
        .iter()
        .filter(|(base, seen)| t - **seen >= missing_for(spec) && !covered.contains(base))
        .map(|(base, _)| base.clone())
        .collect();
    for base in missing {
        let Ok(labels) = alert_labels(rule, spec, group_labels, &base, f64::NAN, ctx, t) else {
            continue;
        };
        let alert = Alert {
            labels: labels.clone(),
            annotations: annotations(spec, &base, f64::NAN, ctx, t),
            base,
            state: to,
            value: f64::NAN,
            active_at: t,
            fired_at: Some(t),
            resolved_at: None,
            keep_firing_since: None,
            recovering_since: None,
            inhibited_by: None,
        };
        moves.push((alert.clone(), AlertState::Inactive));
        state.alerts.insert(labels, alert);
    }
}

/// `no_data_for`, at least one evaluation: a series is missing once it was not there now.
fn missing_for(spec: &AlertSpec) -> i64 {
    (spec.no_data_for.as_millis() as i64).max(1)
}

/// Moves one alert by what the evaluation found.
fn step_alert(
    spec: &AlertSpec,
    state: &mut AlertingState,
    found: &Found,
    key: &Labels,
    t: i64,
    moves: &mut Moves,
) {
    let Some(base) = state.alerts.get(key).map(|a| a.base.clone()) else {
        return;
    };
    let seen = state.last_seen.get(&base).copied();
    let Some(a) = state.alerts.get_mut(key) else {
        return;
    };
    let before = a.state;
    let keep = match data_missing(found, seen, a, t) {
        Some(missing_ms) => on_missing_data(spec, a, missing_ms, t),
        None => on_data(spec, found, a, t),
    };
    if before != a.state {
        moves.push((a.clone(), before));
    }
    if !keep {
        state.alerts.remove(key);
    }
}

/// How long the alert's data has been missing; `None` when it is there (or when the rule
/// does not tell missing data apart).
fn data_missing(found: &Found, last_seen: Option<i64>, a: &Alert, t: i64) -> Option<i64> {
    let data = found.data.as_ref()?;
    if data.contains(&a.base) {
        return None;
    }
    // Never seen: the data expression does not cover this alert's labels; nothing to tell.
    last_seen.map(|seen| t - seen)
}

/// Returns false when the alert is to be forgotten.
fn on_missing_data(spec: &AlertSpec, a: &mut Alert, missing_ms: i64, t: i64) -> bool {
    if a.state == AlertState::Inactive {
        return retained(a, t);
    }
    if missing_ms < missing_for(spec) {
        return true;
    }
    match spec.no_data {
        NoData::Ok => resolve(a, t),
        NoData::Keep => {}
        NoData::Alerting if a.state != AlertState::Firing => {
            a.state = AlertState::Firing;
            a.fired_at = Some(t);
        }
        NoData::Alerting => {}
        NoData::NoData => a.state = AlertState::NoData,
    }
    if missing_ms >= FORGET_MISSING_AFTER_MS {
        resolve(a, t);
    }
    true
}

/// The alert's data is there (or the rule does not tell): the Prometheus state machine with
/// recovery.
fn on_data(spec: &AlertSpec, found: &Found, a: &mut Alert, t: i64) -> bool {
    if a.state == AlertState::NoData {
        // Data is back: the condition decides afresh.
        if found.results.contains_key(&a.labels) {
            a.state = AlertState::Pending;
            a.active_at = t;
            a.fired_at = None;
        } else {
            resolve(a, t);
        }
        return true;
    }
    if a.state == AlertState::Inactive {
        return retained(a, t);
    }
    let returned = found.results.contains_key(&a.labels);
    if a.state == AlertState::Firing && recovery_decides(spec) {
        return recover_step(spec, found, a, returned, t);
    }
    if !returned {
        return absent_step(spec, a, t);
    }
    a.keep_firing_since = None;
    if a.state == AlertState::Pending && t - a.active_at >= spec.hold.as_millis() as i64 {
        a.state = AlertState::Firing;
        a.fired_at = Some(t);
    }
    true
}

/// With `recover` (or `recover_for` alone), a firing alert resolves only by recovery.
fn recovery_decides(spec: &AlertSpec) -> bool {
    spec.recover.is_some() || !spec.recover_for.is_zero()
}

fn recover_step(spec: &AlertSpec, found: &Found, a: &mut Alert, returned: bool, t: i64) -> bool {
    let recovering = match &found.recovering {
        Some(set) => set.contains(&a.base),
        None => !returned,
    };
    if !recovering {
        a.recovering_since = None;
        return true;
    }
    let since = *a.recovering_since.get_or_insert(t);
    if t - since >= spec.recover_for.as_millis() as i64 {
        resolve(a, t);
    }
    true
}

/// The expression no longer returns a pending or firing alert.
fn absent_step(spec: &AlertSpec, a: &mut Alert, t: i64) -> bool {
    if a.state == AlertState::Firing && !spec.keep_firing_for.is_zero() {
        let since = *a.keep_firing_since.get_or_insert(t);
        if t - since < spec.keep_firing_for.as_millis() as i64 {
            return true;
        }
    }
    if a.state == AlertState::Pending {
        a.state = AlertState::Inactive;
        a.resolved_at = Some(t);
        return false;
    }
    resolve(a, t);
    true
}

fn resolve(a: &mut Alert, t: i64) {
    a.state = AlertState::Inactive;
    a.resolved_at = Some(t);
    a.keep_firing_since = None;
    a.recovering_since = None;
}

/// A resolved alert is listed for [`RESOLVED_RETENTION_MS`].
fn retained(a: &Alert, t: i64) -> bool {
    a.resolved_at
        .is_none_or(|at| t - at <= RESOLVED_RETENTION_MS)
}

/// The `ALERTS` and `ALERTS_FOR_STATE` samples of the rule's active alerts.
pub fn alert_series(state: &AlertingState) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    for a in state.alerts.values() {
        if a.state == AlertState::Inactive {
            continue;
        }
        out.push((
            a.labels
                .with("__name__", "ALERTS")
                .with("alertstate", a.state.name()),
            1.0,
        ));
        out.push((
            a.labels.with("__name__", "ALERTS_FOR_STATE"),
            (a.active_at / 1000) as f64,
        ));
    }
    out
}

/// Results of an instant query as (labels, value) pairs; a scalar is one sample without
/// labels, as Prometheus treats it in rules.
pub(super) fn samples_of(value: Value) -> Result<Vec<(Labels, f64)>, RuleError> {
    match value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| ((*s.metric).clone(), s.value))
            .collect()),
        Value::Scalar(v) => Ok(vec![(Labels::default(), v)]),
        other => Err(RuleError::Eval(format!(
            "rule result is not a vector or scalar: {}",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests;
