//! Alerting and recording rules: files, evaluation, alert states.
//!
//! [`file`] reads Prometheus rule files (with our optional alerting keys) and refuses bad
//! ones whole; [`group`] evaluates a group's rules in order at one time, writing recording
//! rules' results and `ALERTS` through a [`RuleStorage`]; [`alerting`] is the alert state
//! machine; [`template`] expands labels and annotations; [`unittest`] runs
//! `promtool test rules` files. The engine that runs groups in the server on the store,
//! durably, is built on these and knows nothing they do not.

pub mod alerting;
pub mod engine;
pub mod file;
pub mod group;
pub mod hosts;
pub mod persist;
pub mod store_storage;
pub mod template;
pub mod unittest;

use std::collections::BTreeMap;

use promql_parser::parser::Expr;

pub use alerting::{Alert, AlertState, AlertingState};
pub use engine::{EngineConfig, RuleEngine};
pub use file::{GroupSpec, NoData, RuleFileError, RuleKind, RuleSpec, load_file, parse_file};
pub use group::{Group, RuleHealth, RuleState};

use crate::query::{Labels, MemorySource, QueryOptions, QuerySource, instant_query_expr};
use template::{QuerySample, Template, TemplateData, TemplateError, TemplateQuery};

/// Why one rule's evaluation failed; its group goes on with the next rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Eval(String),
    #[error("{0}")]
    Template(String),
    #[error("exceeded limit of {limit} with {got} series")]
    Limit { limit: usize, got: usize },
    #[error("cannot write the rule's results: {0}")]
    Write(String),
}

/// Where a group reads series and writes its results.
pub trait RuleStorage {
    fn source(&self) -> &dyn QuerySource;
    /// Appends samples at `time_ms`: recording rules' results, `ALERTS`, staleness markers.
    fn append(&mut self, time_ms: i64, samples: &[(Labels, f64)]) -> Result<(), String>;

    /// The output of a check's latest result, for the template function `checkOutput`.
    fn check_output(&self, _agent_id: &str, _check: &str) -> Option<String> {
        None
    }
}

/// Series in memory with the rules' output beside them: `test rules` and tests.
#[derive(Debug, Default)]
pub struct MemoryStorage(pub MemorySource);

impl RuleStorage for MemoryStorage {
    fn source(&self) -> &dyn QuerySource {
        &self.0
    }

    fn append(&mut self, time_ms: i64, samples: &[(Labels, f64)]) -> Result<(), String> {
        for (labels, value) in samples {
            self.0.add(labels.clone(), &[(time_ms, *value)]);
        }
        Ok(())
    }
}

/// What every rule of a server shares.
#[derive(Debug, Clone, Default)]
pub struct RuleEnv {
    pub query: QueryOptions,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

/// One alert's change of state, as the history and the notifier see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub alertname: String,
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub from: AlertState,
    pub to: AlertState,
    pub at_ms: i64,
    pub value: f64,
    pub active_at: i64,
    /// Set when the alert is inhibited: recorded, not notified.
    pub inhibited_by: Option<String>,
}

impl Transition {
    fn of(alertname: &str, a: &Alert, from: AlertState, at_ms: i64) -> Self {
        Self {
            alertname: alertname.to_string(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            from,
            to: a.state,
            at_ms,
            value: a.value,
            active_at: a.active_at,
            inhibited_by: a.inhibited_by.clone(),
        }
    }
}

/// What a rule evaluates with at one time.
pub struct EvalContext<'a> {
    pub storage: &'a dyn RuleStorage,
    pub env: &'a RuleEnv,
}

impl EvalContext<'_> {
    fn instant(&self, expr: &Expr, t: i64) -> Result<Vec<(Labels, f64)>, RuleError> {
        let out = instant_query_expr(self.storage.source(), expr, t, &self.env.query)
            .map_err(|e| RuleError::Eval(e.to_string()))?;
        alerting::samples_of(out.value)
    }

    fn template_data<'b>(
        &'b self,
        labels: &'b BTreeMap<String, String>,
        value: f64,
        t: i64,
    ) -> TemplateData<'b> {
        TemplateData {
            labels,
            value,
            external_labels: &self.env.external_labels,
            external_url: &self.env.external_url,
            time_ms: t,
        }
    }

    fn render(
        &self,
        template: &Template,
        data: &TemplateData<'_>,
    ) -> Result<String, TemplateError> {
        if template.is_plain() {
            return Ok(template.source().to_string());
        }
        let query = SourceQuery {
            ctx: self,
            t: data.time_ms,
        };
        template.render(data, &query)
    }
}

/// The template function `query`, answered at the rule's evaluation time.
struct SourceQuery<'a, 'b> {
    ctx: &'a EvalContext<'b>,
    t: i64,
}

impl TemplateQuery for SourceQuery<'_, '_> {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let parsed = crate::query::parse(expr).map_err(|e| e.to_string())?;
        let samples = self
            .ctx
            .instant(&parsed, self.t)
            .map_err(|e| e.to_string())?;
        Ok(samples
            .into_iter()
            .map(|(labels, value)| QuerySample {
                labels: labels.pairs().iter().cloned().collect(),
                value,
            })
            .collect())
    }

    fn check_output(&self, agent_id: &str, check: &str) -> Result<String, String> {
        Ok(self
            .ctx
            .storage
            .check_output(agent_id, check)
            .unwrap_or_default())
    }
}
