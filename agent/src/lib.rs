//! The Sysward agent as a library: what the `sysward-agent` binary runs, and the parts that
//! benchmarks and other crates' tests drive directly (the spool and its queue trait).

mod batcher;
mod cli;
mod config;
mod enroll;
mod exposition;
mod https;
mod identity;
pub mod metrics;
mod once;
pub mod queue;
mod renew;
mod run;
mod scheduler;
mod series_table;
mod shipper;
pub mod spool;

pub use cli::run as run_cli;
