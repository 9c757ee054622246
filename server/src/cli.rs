//! Command-line parsing and the admin commands, which work on the data directory directly
//! so that they need neither a running server nor a network.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sysward_proto::{JoinToken, units};

use crate::{
    config::ServerConfig,
    pki::Pki,
    state::{AgentStatus, State},
};

const DEFAULT_CONFIG: &str = "/etc/sysward/server.toml";

#[derive(Parser)]
#[command(name = "sysward-server", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SYSWARD_GIT_COMMIT"), ")"), about = "Sysward server: stores, queries and alerts on what agents send.")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve,
    /// Checks a configuration file and exits.
    CheckConfig,
    /// Join tokens for agents.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolled agents.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Starts a server and a local agent enrolled to it, in one directory, for a first look.
    Quickstart {
        /// Where the quickstart keeps its configs and data.
        #[arg(long, default_value = "sysward-quickstart")]
        dir: PathBuf,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Makes a single-use join token and prints it.
    Create {
        /// How long it stays valid, e.g. "1h" or "7d" (default: [admin] join_token_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// The URL agents reach this server at (default: [listen] public_url, or derived).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Lists agents: id, host name, last seen, status.
    List,
    /// Approves an agent that asked to join without a token.
    Approve { id: String },
    /// Refuses an agent's certificate from now on.
    Revoke { id: String },
}

pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Command::Quickstart { dir, port } = &cli.command {
        crate::serve::init_logging();
        return crate::quickstart::run(dir, *port);
    }
    let config = load_config(&cli.config)?;
    match cli.command {
        Command::Serve => {
            crate::serve::init_logging();
            crate::serve::run_blocking(config)?;
        }
        Command::CheckConfig => println!("{}: ok", cli.config.display()),
        Command::Token {
            command: TokenCommand::Create { ttl, url },
        } => {
            let ttl = match ttl {
                Some(t) => units::parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?,
                None => config.admin.join_token_ttl,
            };
            let token = create_token(&config, ttl, url)?;
            println!("{}", token.encode());
        }
        Command::Agents { command } => {
            let state = open_state(&config)?;
            match command {
                AgentsCommand::List => {
                    println!("{:<20} {:<30} {:<25} STATUS", "ID", "HOST", "LAST SEEN");
                    for a in state.list_agents()? {
                        let seen = a
                            .last_seen_ms
                            .map(format_ms)
                            .unwrap_or_else(|| "never".into());
                        println!(
                            "{:<20} {:<30} {:<25} {}",
                            a.id,
                            a.hostname,
                            seen,
                            a.status_str()
                        );
                    }
                }
                AgentsCommand::Approve { id } => {
                    let row = state
                        .agent(&id)?
                        .with_context(|| format!("no agent with id {id}"))?;
                    if row.status == AgentStatus::Revoked {
                        anyhow::bail!("agent {id} is revoked; it must enroll again");
                    }
                    state.set_status(&id, AgentStatus::Approved)?;
                    println!("approved {id}");
                }
                AgentsCommand::Revoke { id } => {
                    state.set_status(&id, AgentStatus::Revoked)?;
                    println!("revoked {id}");
                }
            }
        }
        Command::Quickstart { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: &Path) -> anyhow::Result<ServerConfig> {
    if !path.exists() && path == Path::new(DEFAULT_CONFIG) {
        // Running without any config file is allowed: every key has a default.
        return ServerConfig::parse("", path);
    }
    ServerConfig::load(path)
}

pub(crate) fn open_state(config: &ServerConfig) -> anyhow::Result<State> {
    let dir = &config.storage.data_dir;
    crate::serve::create_private_dir(dir)?;
    let path = dir.join("state.db");
    State::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

pub(crate) fn create_token(
    config: &ServerConfig,
    ttl: Duration,
    url: Option<String>,
) -> anyhow::Result<JoinToken> {
    let state = open_state(config)?;
    let pki = Pki::load_or_create(&config.storage.data_dir.join("pki"), &config.tls.san)?;
    let (secret, expires_at) = state.create_join_token(ttl)?;
    Ok(JoinToken {
        url: url.unwrap_or_else(|| config.public_url()),
        ca_sha256: pki.ca_pin(),
        secret,
        expires_at,
    })
}

fn format_ms(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion, so that a timestamp prints without a date crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13:20Z");
    }
}
