//! `sysward-server`: the HTTPS API for agents and operators, and the admin CLI on the same
//! binary.

mod api;
mod cli;
mod config;
mod metrics;
mod pki;
mod query;
mod quickstart;
mod serve;
mod state;
mod tls;

// The store is the library half of this package, so that benchmarks can use it; importing
// it here keeps its `crate::store` paths working in the binary.
use sysward_server::store;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
