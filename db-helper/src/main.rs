//! `sysward-db`: runs the Sysward agent's database collectors (`postgres`, `mysql`) in a
//! process of their own, so that the agent links no database driver.
//!
//! ```text
//! sysward-db serve
//! ```
//!
//! The agent starts it and speaks `sysward_collectors::database_helper`'s line protocol on
//! its standard input and output: one `configure` request, then one `collect` per run.
//! It ends, with status 0, when its input ends (the agent stopped or dropped the
//! collector); a request it cannot read ends it with a message on standard error and
//! status 1, and the agent starts it again.

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use sysward_collectors::database_helper::{Reply, Request, WireSample};
use sysward_collectors::mysql::{MysqlCollector, MysqlConfig};
use sysward_collectors::postgres::{PostgresCollector, PostgresConfig};
use sysward_collectors::{Collector, Output};

/// The longest request line read: settings are a few KiB.
const MAX_REQUEST: u64 = 1 << 20;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("serve"), None) => match serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("sysward-db: {error}");
                ExitCode::from(1)
            }
        },
        (Some("--version"), None) => {
            println!("sysward-db {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: sysward-db serve\n\
                 The Sysward agent runs this helper for its postgres and mysql collectors."
            );
            ExitCode::from(2)
        }
    }
}

/// Answers requests until the input ends.
fn serve() -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut output = std::io::stdout().lock();
    let mut collector: Option<Box<dyn Collector>> = None;
    while let Some(request) = next_request(&mut input)? {
        let reply = match (request, &mut collector) {
            (
                Request::Configure {
                    collector: name,
                    settings,
                },
                None,
            ) => match configure(&name, &settings) {
                Ok((built, budget)) => {
                    collector = Some(built);
                    Reply::Ready {
                        run_budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                    }
                }
                Err(error) => Reply::Refused { error },
            },
            (Request::Collect, Some(collector)) => collect(collector.as_mut()),
            (request, _) => return Err(format!("unexpected request {request:?}")),
        };
        send(&mut output, &reply)?;
    }
    Ok(())
}

/// The next request, or `None` at the end of the input.
fn next_request<R: BufRead>(input: &mut R) -> Result<Option<Request>, String> {
    let mut line = String::new();
    let read = Read::take(&mut *input, MAX_REQUEST)
        .read_line(&mut line)
        .map_err(|error| format!("cannot read a request: {error}"))?;
    if read == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|error| format!("not a request ({error}): {:?}", line.trim_end()))
}

/// The collector `name` built from `settings`, and its run budget.
fn configure(name: &str, settings: &str) -> Result<(Box<dyn Collector>, Duration), String> {
    let table: toml::Table = toml::from_str(settings)
        .map_err(|error| format!("settings of collector {name}: {error}"))?;
    match name {
        "postgres" => {
            let config = PostgresConfig::from_table(&table)?;
            let budget = config.run_budget;
            Ok((Box::new(PostgresCollector::with_config(config)), budget))
        }
        "mysql" => {
            let config = MysqlConfig::from_table(&table)?;
            let budget = config.run_budget;
            Ok((Box::new(MysqlCollector::with_config(config)), budget))
        }
        other => Err(format!(
            "sysward-db runs the postgres and mysql collectors, not {other:?}"
        )),
    }
}

/// One run as a reply: a failure of the whole run is one more error.
fn collect(collector: &mut dyn Collector) -> Reply {
    let mut out = Output::default();
    if let Err(error) = collector.collect(&mut out) {
        out.error(error.to_string());
    }
    Reply::Output {
        samples: out.samples.iter().map(WireSample::from).collect(),
        errors: out.errors,
    }
}

fn send(output: &mut impl Write, reply: &Reply) -> Result<(), String> {
    serde_json::to_writer(&mut *output, reply)
        .map_err(|error| format!("cannot encode a reply: {error}"))?;
    output
        .write_all(b"\n")
        .and_then(|()| output.flush())
        .map_err(|error| format!("cannot write a reply: {error}"))
}
