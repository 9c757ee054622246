//! Sysward's server as a library: the `sysward-server` binary is a thin `main` over
//! [`cli::run`], and tests and benchmarks drive the same modules.
//!
//! Modules depend downward only: [`cli`] and [`serve`] wire everything; [`api`] holds the
//! HTTP handlers (ingest, admin, reads, queries); [`query`] evaluates PromQL; [`store`] keeps samples and events; [`state`] keeps
//! identities (agents, join and admin tokens, which [`agents`] approves, revokes and makes;
//! console users and sessions, dashboards; [`users`] checks and hashes their passwords,
//! [`dashboards`] checks dashboards); [`pki`] and [`tls`] make and check the
//! certificates; [`metrics`] renders the server's own figures and [`health`] judges them.

pub mod agents;
pub mod api;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod grafana;
pub mod health;
pub mod import;
pub mod ingest_foreign;
pub mod metrics;
pub mod notify;
pub mod otel;
pub mod pki;
pub mod query;
pub mod quickstart;
pub mod remote_write;
pub mod rules;
pub mod selector;
pub mod serve;
pub mod session;
pub mod state;
pub mod store;
pub mod tls;
pub mod users;
