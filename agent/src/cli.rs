//! Command-line parsing and the short commands (`check-config`, `enroll`, `spool`); the
//! commands that run collectors and checks once are in `once`.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::{
    config::AgentConfig,
    enroll::{EnrollTarget, enroll},
};

const DEFAULT_CONFIG: &str = "/etc/sysward/agent.toml";

#[derive(Parser)]
#[command(
    name = "sysward-agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SYSWARD_GIT_COMMIT"), ")"),
    about = "Sysward agent: collects host metrics and pushes them to a Sysward server."
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the agent.
    Run,
    /// Validates the configuration file; names the file, line and key of an error.
    CheckConfig,
    /// Joins a server: with a token from `sysward-server token create`, or with
    /// `--server URL --ca-pin SHA256` to ask for approval.
    Enroll {
        /// A join token.
        token: Option<String>,
        /// Server URL, when enrolling without a token.
        #[arg(long, requires = "ca_pin", conflicts_with = "token")]
        server: Option<String>,
        /// SHA-256 of the server's CA certificate (hex), when enrolling without a token.
        #[arg(long)]
        ca_pin: Option<String>,
    },
    /// The configured checks: `test` runs them once now.
    Checks {
        #[command(subcommand)]
        command: ChecksCommand,
    },
    /// The outage spool: `status` summarises it, `verify` checks every frame.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Runs every enabled collector once and prints the samples in Prometheus text format.
    Collect {
        /// Run once and exit (the only mode for now).
        #[arg(long)]
        once: bool,
        /// Run the configured checks too, and print their samples with the collectors'.
        #[arg(long)]
        checks: bool,
        #[arg(long)]
        procfs_root: Option<PathBuf>,
        #[arg(long)]
        sysfs_root: Option<PathBuf>,
        #[arg(long)]
        rootfs: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ChecksCommand {
    /// Runs the configured checks (all, or the ones named) once, now, and prints for each
    /// its state, output, samples and duration, or why it was refused. Exits 2 when a
    /// named check does not exist, 1 when a check was refused or did not finish.
    Test {
        /// Check names; all checks when none is given.
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Size, frames waiting, oldest frame, damage found.
    Status,
    /// Like status, and also checks every frame's checksum and that its payload is a
    /// valid batch; exits 1 when anything is wrong.
    Verify,
}

/// Parses the command line and runs the command; the binary's whole `main`.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => match AgentConfig::load(&cli.config) {
            Ok(config) => {
                println!(
                    "{}: ok ({} collectors enabled)",
                    cli.config.display(),
                    config.collectors.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Spool { command } => {
            let config = load(&cli.config)?;
            let crate::config::BufferPlan::Disk(spool) = &config.buffer else {
                bail!("[buffer] kind is \"memory\": there is no spool");
            };
            let verify = matches!(command, SpoolCommand::Verify);
            let r = crate::spool::inspect(&spool.dir, verify)?;
            let age = r.oldest_unacked_ms.map_or_else(
                || "-".to_string(),
                |ms| format!("{}s", (crate::scheduler::now_ms() - ms).max(0) / 1000),
            );
            println!("spool:           {}", spool.dir.display());
            println!(
                "segments:        {} ({} bytes of {} allowed)",
                r.segments, r.bytes, spool.max_disk
            );
            println!(
                "frames:          {} ({} not yet acked)",
                r.frames, r.unacked
            );
            println!("oldest unacked:  {age}");
            println!("bad checksums:   {}", r.bad_checksum);
            println!("torn frames:     {}", r.torn);
            println!("bad headers:     {}", r.bad_headers.len());
            println!("set aside:       {}", r.set_aside.len());
            for p in r.bad_headers.iter().chain(&r.set_aside) {
                println!("  {p}");
            }
            if verify {
                println!("invalid batches: {}", r.invalid_payloads.len());
                for p in &r.invalid_payloads {
                    println!("  {p}");
                }
                return Ok(if r.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let config = load(&cli.config)?;
            init_logging();
            crate::run::run(config, &cli.config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll {
            token,
            server,
            ca_pin,
        } => {
            let config = load(&cli.config)?;
            init_logging();
            let target = match (token, server, ca_pin) {
                (Some(t), _, _) => EnrollTarget::from_token(&t)?,
                (None, Some(url), Some(pin)) => EnrollTarget {
                    url,
                    ca_sha256: pin,
                    secret: None,
                },
                _ => bail!("give a join token, or --server URL and --ca-pin SHA256"),
            };
            if target.url.trim_end_matches('/') != config.server_url
                && !crate::run::is_placeholder_url(&config.server_url)
            {
                tracing::warn!(
                    token = target.url,
                    config = config.server_url,
                    "The token's server URL differs from [server] url; `run` will use the config's."
                );
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let enrolled = runtime.block_on(enroll(
                target,
                &config.agent.state_dir,
                &config.hostname(),
                &config.agent.labels,
            ));
            give_to_state_dir_owner(&config.agent.state_dir)?;
            let id = enrolled?;
            println!(
                "enrolled as {id}; start the agent with `systemctl enable --now sysward-agent` \
                 (installed from the package) or `sysward-agent run`"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Checks {
            command: ChecksCommand::Test { names },
        } => crate::once::checks_test(&cli.config, &names),
        Command::Collect {
            once: _,
            checks,
            procfs_root,
            sysfs_root,
            rootfs,
        } => crate::once::collect(
            &cli.config,
            cli.config == Path::new(DEFAULT_CONFIG),
            crate::once::CollectOptions {
                procfs_root,
                sysfs_root,
                rootfs,
                checks,
            },
        ),
    }
}

/// Gives what `enroll` wrote to the owner of the state directory. The package makes that
/// directory the `sysward` user's, which the service runs as; an operator who enrolls as
/// root would otherwise leave a key the service cannot read.
fn give_to_state_dir_owner(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(dir) else {
        return Ok(());
    };
    for name in [
        crate::identity::KEY_FILE,
        crate::identity::CERT_FILE,
        crate::identity::CA_FILE,
        crate::identity::IDENTITY_FILE,
        crate::identity::PENDING_FILE,
    ] {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // Only a root enroll can leave another user's files here, and only root can chown.
        if meta.is_file() && meta.uid() != owner.uid() {
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).map_err(|e| {
                anyhow::anyhow!(
                    "cannot give {} to the owner of {} (uid {}): {e}",
                    path.display(),
                    dir.display(),
                    owner.uid()
                )
            })?;
        }
    }
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<AgentConfig> {
    AgentConfig::load(path).map_err(anyhow::Error::new)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
