//! Command-line parsing and the admin commands, which work on the data directory directly
//! so that they need neither a running server nor a network.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rusqlite::{
    Connection, OpenFlags,
    backup::{Backup, StepResult},
};
use sysward_proto::{JoinToken, units};

use crate::{agents, config::ServerConfig, pki::Pki, state::State};

mod api_token;
mod notify;
mod rules;
mod user;

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
    /// Checks files without a server or a configuration.
    Check {
        #[command(subcommand)]
        command: rules::CheckCommand,
    },
    /// Runs unit tests of rules.
    Test {
        #[command(subcommand)]
        command: rules::TestCommand,
    },
    /// Join tokens for agents.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// API tokens for dashboards and scripts (roles read, write, admin).
    ApiToken {
        #[command(subcommand)]
        command: api_token::ApiTokenCommand,
    },
    /// Console users (roles viewer, editor, admin) who sign in to `/ui/`.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Alerts as the rule engine last saved them (works with the server running or not).
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Silences and maintenance windows (a running server follows within a second).
    Silence {
        #[command(subcommand)]
        command: notify::SilenceCommand,
    },
    /// Notifications.
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },
    /// Enrolled agents.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Copies the databases (SQLite's online backup) and the PKI into DEST, while the
    /// server runs. DEST then is a data directory that `serve` starts from.
    Backup {
        /// A new or empty directory.
        dest: PathBuf,
    },
    /// Loads OpenMetrics text with timestamps (promtool's backfill input) into the store,
    /// as agents' batches are stored. Stop the server first.
    Import { file: PathBuf },
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
        /// Makes this many tokens, one per line (enrolling a fleet, load tests).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Lists pending, firing, nodata and recently resolved alerts.
    List,
    /// Lists alert groups: id, firing alerts, escalation step, acknowledgement.
    Groups,
    /// Acknowledges an alert group (by group id or alert fingerprint): its escalation
    /// stops and PagerDuty and Opsgenie are told.
    Ack {
        id: String,
        /// Who acknowledges.
        #[arg(long, default_value = "cli")]
        by: String,
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

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Quickstart { dir, port } => {
            crate::serve::init_logging();
            return crate::quickstart::run(&dir, port);
        }
        Command::Check { command } => return Ok(rules::check(command)),
        Command::Test { command } => return Ok(rules::test(command)),
        other => other,
    };
    let config = load_config(&cli.config)?;
    match command {
        Command::Serve => {
            crate::serve::init_logging();
            crate::serve::run_blocking(config)?;
        }
        Command::CheckConfig => println!("{}: ok", cli.config.display()),
        Command::Token {
            command: TokenCommand::Create { ttl, url, count },
        } => {
            let ttl = match ttl {
                Some(t) => units::parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?,
                None => config.admin.join_token_ttl,
            };
            for token in create_tokens(&config, ttl, url, count)? {
                println!("{}", token.encode());
            }
        }
        Command::ApiToken { command } => api_token::run(&config, command)?,
        Command::User { command } => user::run(&config, command)?,
        Command::Backup { dest } => {
            let started = Instant::now();
            let bytes = backup(&config.storage.data_dir, &dest)?;
            println!(
                "backed up {} to {} ({} bytes of databases) in {:.1} s",
                config.storage.data_dir.display(),
                dest.display(),
                bytes,
                started.elapsed().as_secs_f64()
            );
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
                    let outcome = agents::approve(&state, &id)?;
                    println!("approved {id}{}", unchanged(outcome));
                }
                AgentsCommand::Revoke { id } => {
                    let outcome = agents::revoke(&state, &id)?;
                    println!("revoked {id}{}", unchanged(outcome));
                }
            }
        }
        Command::Import { file } => crate::import::run(&config, &file)?,
        Command::Alerts {
            command: AlertsCommand::List,
        } => list_alerts(&config)?,
        Command::Alerts {
            command: AlertsCommand::Groups,
        } => notify::groups(&config)?,
        Command::Alerts {
            command: AlertsCommand::Ack { id, by },
        } => notify::ack(&config, &id, &by)?,
        Command::Silence { command } => notify::silence(&config, command)?,
        Command::Notify {
            command: notify::NotifyCommand::Test { receiver },
        } => return notify::test(&config, &receiver),
        Command::Quickstart { .. } | Command::Check { .. } | Command::Test { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unchanged(outcome: agents::Outcome) -> &'static str {
    match outcome {
        agents::Outcome::Changed => "",
        agents::Outcome::Unchanged => " (it already was)",
    }
}

fn list_alerts(config: &ServerConfig) -> anyhow::Result<()> {
    let path = config.storage.data_dir.join("state.db");
    if !path.exists() {
        bail!("no state database at {}", path.display());
    }
    let db = crate::rules::persist::AlertDb::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    println!("{:<24} {:<9} {:<25} LABELS", "ALERT", "STATE", "SINCE");
    for a in db.stored_alerts()? {
        let name = a.labels.get("alertname").to_string();
        let since = if a.state == "firing" {
            a.fired_at.unwrap_or(a.active_at)
        } else {
            a.active_at
        };
        let labels: Vec<String> = a
            .labels
            .pairs()
            .iter()
            .filter(|(k, _)| k != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        println!(
            "{:<24} {:<9} {:<25} {{{}}}",
            name,
            a.state,
            format_ms(since),
            labels.join(", ")
        );
    }
    Ok(())
}

fn load_config(path: &Path) -> anyhow::Result<ServerConfig> {
    if !path.exists() && path == Path::new(DEFAULT_CONFIG) {
        // Running without any config file is allowed: every key has a default.
        return ServerConfig::parse("", path);
    }
    ServerConfig::load(path)
}

pub fn open_state(config: &ServerConfig) -> anyhow::Result<State> {
    let dir = &config.storage.data_dir;
    crate::serve::create_private_dir(dir)?;
    let path = dir.join("state.db");
    State::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

pub fn create_token(
    config: &ServerConfig,
    ttl: Duration,
    url: Option<String>,
) -> anyhow::Result<JoinToken> {
    create_tokens(config, ttl, url, 1)?
        .pop()
        .context("no token was made")
}

/// `count` tokens with one opening of the state database and the PKI: a fleet of a
/// thousand hosts (or the load generator) should not pay a process start per token.
fn create_tokens(
    config: &ServerConfig,
    ttl: Duration,
    url: Option<String>,
    count: u32,
) -> anyhow::Result<Vec<JoinToken>> {
    let state = open_state(config)?;
    let pki = Pki::load_or_create(&config.storage.data_dir.join("pki"), &config.tls.san)?;
    let options = agents::TokenOptions {
        ttl,
        url: url.unwrap_or_else(|| config.public_url()),
        count,
    };
    Ok(agents::create_join_tokens(&state, &pki.ca_pin(), &options)?)
}

/// The databases a backup copies, in this order: the store first, so that an agent
/// enrolled while the backup runs is at worst known without data (it keeps sending),
/// never data without its agent (which would then be refused until it enrolls again).
const BACKUP_DATABASES: [&str; 2] = ["store.db", "state.db"];

/// Copies `data_dir` into `dest` while a server may be writing: each database with
/// SQLite's online backup API (a consistent snapshot; the server keeps ingesting), the
/// PKI as files. Returns the bytes of databases written.
fn backup(data_dir: &Path, dest: &Path) -> anyhow::Result<u64> {
    for name in BACKUP_DATABASES {
        let path = data_dir.join(name);
        if !path.is_file() {
            bail!(
                "{} does not exist: is [storage] data_dir right?",
                path.display()
            );
        }
    }
    if dest.exists() {
        let mut entries =
            fs::read_dir(dest).with_context(|| format!("cannot read {}", dest.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; a backup goes into a new or empty directory",
                dest.display()
            );
        }
    } else {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
    }
    // The PKI first: a backup without the CA keys could not serve the enrolled agents.
    copy_pki(&data_dir.join("pki"), &dest.join("pki"))?;
    let mut bytes = 0;
    for name in BACKUP_DATABASES {
        bytes += backup_database(&data_dir.join(name), &dest.join(name))
            .with_context(|| format!("cannot back up {}", data_dir.join(name).display()))?;
    }
    sync_dir(dest)?;
    Ok(bytes)
}

fn copy_pki(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    let entries = fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target)
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        // Private keys: 0600 whatever the umask, as the server writes them.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600))?;
        fs::File::open(&target)?.sync_all()?;
    }
    sync_dir(to)
}

/// One database through the online backup API into `dest`, by way of a `.partial` file
/// renamed once complete and checked, so that `dest` never names half a copy.
fn backup_database(src: &Path, dest: &Path) -> anyhow::Result<u64> {
    // Read-write without create: a WAL database needs its shared-memory file, and a
    // missing source must not be created empty.
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(Duration::from_secs(10))?;
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        fs::remove_file(&partial)?;
    }
    {
        let mut to = Connection::open(&partial)?;
        {
            let backup = Backup::new(&from, &mut to)?;
            // All pages in one step: one read transaction, so the copy is one consistent
            // snapshot. Copying a few pages at a time would start over after every write
            // by the server (another connection), which under steady ingest is forever.
            // In WAL mode the read transaction does not hold up the server's writes.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match backup.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    other => bail!("the database stayed busy for 60 s ({other:?})"),
                }
            }
        }
        let check: String = to.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            bail!("the copy fails SQLite's quick_check: {check}");
        }
    }
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o600))?;
    let file = fs::File::open(&partial)?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    fs::rename(&partial, dest)?;
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

pub(crate) fn format_ms(ms: i64) -> String {
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
    fn backup_copies_databases_and_pki_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        Pki::load_or_create(&data.join("pki"), &[]).unwrap();
        let state = State::open(&data.join("state.db")).unwrap();
        state.create_join_token(Duration::from_secs(60)).unwrap();
        let store = crate::store::TieredStore::open(
            &data.join("store.db"),
            crate::store::StoreConfig::default(),
            std::sync::Arc::new(crate::store::SystemClock),
        )
        .unwrap();
        let dest = dir.path().join("copy");
        assert!(backup(&data, &dest).unwrap() > 0);
        // Open while the source is open too, as during a live backup.
        drop(store);
        for name in ["store.db", "state.db", "pki/ca.key", "pki/agent-ca.key"] {
            let mode = fs::metadata(dest.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let tokens: i64 = Connection::open(dest.join("state.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM join_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tokens, 1);
        let err = backup(&data, &dest).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err:#}");
        let err = backup(&dir.path().join("nothing"), &dir.path().join("c2")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err:#}");
    }

    #[test]
    fn formats_time() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13:20Z");
    }
}
