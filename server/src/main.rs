//! `sysward-server`: the HTTPS API for agents and operators, and the admin CLI on the same
//! binary. Everything but `main` is in the library (`src/lib.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    match sysward_server::cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
