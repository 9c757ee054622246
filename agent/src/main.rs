//! `sysward-agent`: collects host metrics on a schedule and pushes them to a Sysward server
//! over mutual TLS.

mod batcher;
mod cli;
mod config;
mod enroll;
mod exposition;
mod identity;
mod metrics;
mod queue;
mod run;
mod scheduler;
mod shipper;
mod spool;

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
