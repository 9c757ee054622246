//! A group: its rules evaluated in order at one time, each seeing what the ones before it
//! wrote (as in Prometheus), with staleness markers for series a rule stopped producing.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use super::{
    AlertingState, EvalContext, RuleEnv, RuleError, RuleStorage, Transition, alerting,
    file::{GroupSpec, RuleKind, RuleSpec},
};
use crate::query::{Labels, stale_nan};

/// Whether a rule's last evaluation worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHealth {
    Unknown,
    Ok,
    Err,
}

impl RuleHealth {
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ok => "ok",
            Self::Err => "err",
        }
    }
}

/// One rule's run-time state.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: Duration,
    /// Alerting rules' alerts (empty for recording rules).
    pub alerting: AlertingState,
    /// Series written at the last evaluation, to mark stale those not written again.
    pub written: HashSet<Labels>,
}

impl Default for RuleState {
    fn default() -> Self {
        Self {
            health: RuleHealth::Unknown,
            last_error: None,
            last_eval_ms: None,
            last_duration: Duration::ZERO,
            alerting: AlertingState::default(),
            written: HashSet::new(),
        }
    }
}

/// A group with its rules' states.
#[derive(Debug, Clone)]
pub struct Group {
    pub spec: GroupSpec,
    pub states: Vec<RuleState>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: Duration,
}

impl Group {
    pub fn new(spec: GroupSpec) -> Self {
        let states = vec![RuleState::default(); spec.rules.len()];
        Self {
            spec,
            states,
            last_eval_ms: None,
            last_duration: Duration::ZERO,
        }
    }

    /// Evaluates every rule at `t` (less the group's `query_offset`) and returns each
    /// rule's transitions. A failing rule is marked and the others still run.
    pub fn evaluate(
        &mut self,
        storage: &mut dyn RuleStorage,
        env: &RuleEnv,
        t: i64,
    ) -> Vec<Vec<Transition>> {
        let started = Instant::now();
        let t = t - self.spec.query_offset.as_millis() as i64;
        let mut transitions = Vec::new();
        for (rule, state) in self.spec.rules.iter().zip(self.states.iter_mut()) {
            let rule_started = Instant::now();
            let outcome = evaluate_rule(
                rule,
                &self.spec.labels,
                self.spec.limit,
                state,
                storage,
                env,
                t,
            );
            match outcome {
                Ok(moved) => {
                    transitions.push(moved);
                    state.health = RuleHealth::Ok;
                    state.last_error = None;
                }
                Err(e) => {
                    transitions.push(Vec::new());
                    state.health = RuleHealth::Err;
                    state.last_error = Some(e.to_string());
                }
            }
            state.last_eval_ms = Some(t);
            state.last_duration = rule_started.elapsed();
        }
        self.last_eval_ms = Some(t);
        self.last_duration = started.elapsed();
        transitions
    }
}

fn evaluate_rule(
    rule: &RuleSpec,
    group_labels: &BTreeMap<String, String>,
    limit: usize,
    state: &mut RuleState,
    storage: &mut dyn RuleStorage,
    env: &RuleEnv,
    t: i64,
) -> Result<Vec<Transition>, RuleError> {
    let ctx = EvalContext {
        storage: &*storage,
        env,
    };
    let (samples, transitions) = match &rule.kind {
        RuleKind::Record { name } => {
            let samples = record(rule, name, group_labels, &ctx, t)?;
            if limit > 0 && samples.len() > limit {
                return Err(RuleError::Limit {
                    limit,
                    got: samples.len(),
                });
            }
            (samples, Vec::new())
        }
        RuleKind::Alert(spec) => {
            let moved = alerting::evaluate(
                rule,
                spec,
                group_labels,
                limit,
                &mut state.alerting,
                &ctx,
                t,
            )?;
            (alerting::alert_series(&state.alerting), moved)
        }
    };
    write_with_staleness(storage, state, samples, t)?;
    Ok(transitions)
}

/// A recording rule's output: the expression's samples renamed, with the group's and the
/// rule's labels.
fn record(
    rule: &RuleSpec,
    name: &str,
    group_labels: &BTreeMap<String, String>,
    ctx: &EvalContext<'_>,
    t: i64,
) -> Result<Vec<(Labels, f64)>, RuleError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (metric, value) in ctx.instant(&rule.expr, t)? {
        let mut labels = metric.with("__name__", name);
        for (k, v) in group_labels {
            labels = labels.with(k, v);
        }
        for (k, template) in &rule.labels {
            labels = labels.with(k, template.source());
        }
        if !seen.insert(labels.clone()) {
            return Err(RuleError::Eval(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            ));
        }
        out.push((labels, value));
    }
    Ok(out)
}

/// Writes `samples` at `t`, and a staleness marker for each series written last time but
/// not now, so that queries stop seeing it at once rather than after the lookback.
fn write_with_staleness(
    storage: &mut dyn RuleStorage,
    state: &mut RuleState,
    mut samples: Vec<(Labels, f64)>,
    t: i64,
) -> Result<(), RuleError> {
    let now: HashSet<Labels> = samples.iter().map(|(l, _)| l.clone()).collect();
    for gone in state.written.difference(&now) {
        samples.push((gone.clone(), stale_nan()));
    }
    if !samples.is_empty() {
        storage.append(t, &samples).map_err(RuleError::Write)?;
    }
    state.written = now;
    Ok(())
}
