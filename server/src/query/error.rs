//! Why a query failed, and the warnings and infos of one that did not.

use serde::Serialize;

/// A failed query, typed as Prometheus' API types its errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The request or expression is wrong (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// The expression is valid but cannot be evaluated (`execution`, 422).
    #[error("{0}")]
    Execution(String),
    /// A limit of `[query]` refused it (`execution`, 422); `limit` names the limit.
    #[error("{message}")]
    Limit {
        /// The name of the limit, as counted in `/metrics`.
        limit: &'static str,
        /// What was refused.
        message: String,
    },
    /// It ran out of time (`timeout`, 503).
    #[error("{0}")]
    Timeout(String),
    /// It was abandoned (`canceled`, 503).
    #[error("{0}")]
    Canceled(String),
    /// The store failed (`internal`, 500).
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// Prometheus' `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::Limit { .. } => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) | QueryError::Limit { .. } => 422,
            QueryError::Timeout(_) | QueryError::Canceled(_) => 503,
            QueryError::Internal(_) => 500,
        }
    }
}

/// A store failure: a refused budget is the query's limit, anything else internal.
impl From<crate::store::StoreError> for QueryError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Limit { limit, message } => {
                QueryError::Limit { limit, message }
            }
            other => QueryError::Internal(other.to_string()),
        }
    }
}

/// Warnings (the answer may be wrong or incomplete) and infos (it is right, but look),
/// each message once, in the order first raised.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Annotations {
    /// `PromQL warning: ...` messages.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` messages.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds a warning; `text` is without the `PromQL warning: ` prefix.
    pub fn warn(&mut self, text: impl AsRef<str>) {
        push_once(
            &mut self.warnings,
            format!("PromQL warning: {}", text.as_ref()),
        );
    }

    /// Adds an info; `text` is without the `PromQL info: ` prefix.
    pub fn info(&mut self, text: impl AsRef<str>) {
        push_once(&mut self.infos, format!("PromQL info: {}", text.as_ref()));
    }

    /// Adds another set's messages.
    pub fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            push_once(&mut self.warnings, w);
        }
        for i in other.infos {
            push_once(&mut self.infos, i);
        }
    }
}

fn push_once(list: &mut Vec<String>, message: String) {
    if !list.contains(&message) {
        list.push(message);
    }
}
