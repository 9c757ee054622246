//! `sysward-agent`: collects host metrics on a schedule and pushes them to a Sysward server
//! over mutual TLS.

use std::process::ExitCode;

fn main() -> ExitCode {
    match sysward_agent::run_cli() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
