//! What an administrator does to agents and join tokens: approve, revoke, make, list and
//! delete. The admin CLI (`sysward-server agents …`, `token create`) and the admin API
//! (`/api/v1/agents/{id}/…`, `/api/v1/join-tokens`) both call these functions, so that the
//! two cannot drift apart.
//!
//! Approving an approved agent and revoking a revoked one change nothing and succeed
//! ([`Outcome::Unchanged`]): a retried request, or two operators at once, is not an error.
//! A revoked agent cannot be approved again: it must enrol again, under a new id.
//! Revocation is the agent's row in the state database, read on every ingest and renewal:
//! the next request with its certificate is refused, and nothing needs distributing.

use std::time::Duration;

use sysward_proto::JoinToken;

use crate::state::{AgentStatus, JoinTokenRow, State, StateError};

/// Why an agent or a token could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentsError {
    #[error("no agent with id {0}")]
    NoSuchAgent(String),
    #[error("agent {0} is revoked; it must enroll again")]
    Revoked(String),
    #[error("no join token with id {0}")]
    NoSuchJoinToken(String),
    #[error("{0}")]
    State(StateError),
}

impl From<StateError> for AgentsError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NoSuchAgent(id) => AgentsError::NoSuchAgent(id),
            StateError::NoSuchJoinToken(id) => AgentsError::NoSuchJoinToken(id),
            other => AgentsError::State(other),
        }
    }
}

/// Whether a change changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    /// The agent already was in that state.
    Unchanged,
}

/// Most tokens one request of the API makes (the CLI's `--count` goes further: its answer
/// is not held in one HTTP body).
pub const MAX_API_TOKENS: u32 = 1000;

/// Approves a pending agent: its next enrolment poll gets its certificate.
pub fn approve(state: &State, id: &str) -> Result<Outcome, AgentsError> {
    let row = state
        .agent(id)?
        .ok_or_else(|| AgentsError::NoSuchAgent(id.to_string()))?;
    match row.status {
        AgentStatus::Approved => Ok(Outcome::Unchanged),
        AgentStatus::Revoked => Err(AgentsError::Revoked(id.to_string())),
        AgentStatus::Pending => {
            state.set_status(id, AgentStatus::Approved)?;
            Ok(Outcome::Changed)
        }
    }
}

/// Revokes an agent, pending or approved: its certificate is refused from the next request.
pub fn revoke(state: &State, id: &str) -> Result<Outcome, AgentsError> {
    let row = state
        .agent(id)?
        .ok_or_else(|| AgentsError::NoSuchAgent(id.to_string()))?;
    if row.status == AgentStatus::Revoked {
        return Ok(Outcome::Unchanged);
    }
    state.set_status(id, AgentStatus::Revoked)?;
    Ok(Outcome::Changed)
}

/// What a join token is made with: `token create`'s options.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// How long each stays valid.
    pub ttl: Duration,
    /// The URL agents reach the server at.
    pub url: String,
    /// How many tokens.
    pub count: u32,
}

/// `count` single-use join tokens carrying the server's URL and its CA's pin.
pub fn create_join_tokens(
    state: &State,
    ca_pin: &str,
    options: &TokenOptions,
) -> Result<Vec<JoinToken>, AgentsError> {
    (0..options.count)
        .map(|_| {
            let (secret, expires_at) = state.create_join_token(options.ttl)?;
            Ok(JoinToken {
                url: options.url.clone(),
                ca_sha256: ca_pin.to_string(),
                secret,
                expires_at,
            })
        })
        .collect()
}

/// The command that enrols a host with `token`, to run as root on the host.
pub fn enroll_command(token: &JoinToken) -> String {
    format!("sysward-agent enroll '{}'", token.encode())
}

/// The id a listed token has ([`list_join_tokens`]).
pub fn join_token_id(token: &JoinToken) -> String {
    State::join_token_id(&token.secret)
}

/// Join tokens, newest first, without their secrets.
pub fn list_join_tokens(state: &State) -> Result<Vec<JoinTokenRow>, AgentsError> {
    Ok(state.list_join_tokens()?)
}

/// Deletes a join token by its id; unused, it can no longer enrol anything.
pub fn delete_join_token(state: &State, id: &str) -> Result<(), AgentsError> {
    Ok(state.delete_join_token(id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("state.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn approve_and_revoke_name_unknown_agents_and_are_idempotent() {
        let (_d, s) = state();
        assert!(matches!(approve(&s, "ag-x"), Err(AgentsError::NoSuchAgent(id)) if id == "ag-x"));
        assert!(matches!(revoke(&s, "ag-x"), Err(AgentsError::NoSuchAgent(id)) if id == "ag-x"));
        s.register_pending("ag-1", "h", "csr", "192.0.2.1:5000")
            .unwrap();
        assert_eq!(approve(&s, "ag-1").unwrap(), Outcome::Changed);
        assert_eq!(approve(&s, "ag-1").unwrap(), Outcome::Unchanged);
        assert_eq!(revoke(&s, "ag-1").unwrap(), Outcome::Changed);
        assert_eq!(revoke(&s, "ag-1").unwrap(), Outcome::Unchanged);
        let err = approve(&s, "ag-1").unwrap_err();
        assert!(matches!(err, AgentsError::Revoked(_)));
        assert_eq!(
            err.to_string(),
            "agent ag-1 is revoked; it must enroll again"
        );
        assert_eq!(
            s.agent("ag-1").unwrap().unwrap().status,
            AgentStatus::Revoked
        );
    }

    #[test]
    fn tokens_are_made_listed_without_secrets_and_deleted() {
        let (_d, s) = state();
        let options = TokenOptions {
            ttl: Duration::from_secs(3600),
            url: "https://mon.example:8443".into(),
            count: 2,
        };
        let tokens = create_join_tokens(&s, "ab12", &options).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].ca_sha256, "ab12");
        let command = enroll_command(&tokens[0]);
        assert!(
            command.starts_with("sysward-agent enroll 'swjoin1."),
            "{command}"
        );
        let listed = list_join_tokens(&s).unwrap();
        assert_eq!(listed.len(), 2);
        let id = join_token_id(&tokens[0]);
        assert!(listed.iter().any(|t| t.id == id && t.used_ms.is_none()));
        assert!(!listed.iter().any(|t| tokens[0].secret.contains(&t.id)));
        delete_join_token(&s, &id).unwrap();
        assert!(matches!(
            s.enroll_with_token(&tokens[0].secret, "ag-1", "h", 0),
            Err(StateError::UnknownToken)
        ));
        for bad in [id.as_str(), "nothex", ""] {
            assert!(matches!(
                delete_join_token(&s, bad),
                Err(AgentsError::NoSuchJoinToken(_))
            ));
        }
        s.enroll_with_token(&tokens[1].secret, "ag-2", "h", 0)
            .unwrap();
        let used = list_join_tokens(&s).unwrap();
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].used_by.as_deref(), Some("ag-2"));
    }
}
