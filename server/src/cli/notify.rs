//! `alerts ack`, `alerts groups`, `silence add|list|expire` and `notify test`: on the data
//! directory directly, like the other admin commands; a running server picks the changes
//! up within a second.

use std::{process::ExitCode, sync::Arc};

use anyhow::{Context, bail};
use clap::Subcommand;
use sysward_proto::units;

use crate::{
    config::ServerConfig,
    notify::{Notifier, SilenceRow, timing::parse_instant},
    store::{Clock, SystemClock},
};

#[derive(Subcommand)]
pub(super) enum SilenceCommand {
    /// Silences alerts matching every matcher, e.g. `--matcher 'instance="web-1"'`.
    Add {
        #[arg(long = "matcher", required = true)]
        matchers: Vec<String>,
        /// How long from the start, e.g. "2h" (or give --end).
        #[arg(long, conflicts_with = "end")]
        duration: Option<String>,
        /// RFC 3339 start (default now).
        #[arg(long)]
        start: Option<String>,
        /// RFC 3339 end.
        #[arg(long)]
        end: Option<String>,
        #[arg(long)]
        author: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// A maintenance window rather than a silence (listed apart; same effect).
        #[arg(long)]
        maintenance: bool,
    },
    /// Lists silences and maintenance windows.
    List,
    /// Ends a silence now.
    Expire { id: String },
}

#[derive(Subcommand)]
pub(super) enum NotifyCommand {
    /// Sends a test message through every channel of RECEIVER and prints each answer.
    Test { receiver: String },
}

pub(super) fn notifier(config: &ServerConfig) -> anyhow::Result<Notifier> {
    let path = config.storage.data_dir.join("state.db");
    if !path.exists() {
        bail!("no state database at {}", path.display());
    }
    // The rules' tables first: the notifier reads their outbox.
    crate::rules::persist::AlertDb::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Notifier::open(
        config.notify.clone(),
        &path,
        Arc::new(SystemClock),
        config.external_url(),
        Arc::new(tokio::sync::Notify::new()),
    )
    .with_context(|| format!("cannot open {}", path.display()))
}

pub(super) fn ack(config: &ServerConfig, id: &str, by: &str) -> anyhow::Result<()> {
    let ids = notifier(config)?.acknowledge(id, by)?;
    println!("Acknowledged {} (by {by}).", ids.join(", "));
    Ok(())
}

pub(super) fn groups(config: &ServerConfig) -> anyhow::Result<()> {
    println!(
        "{:<13} {:<7} {:<6} {:<10} LABELS",
        "GROUP", "FIRING", "STEP", "ACKED BY"
    );
    for g in notifier(config)?.groups()? {
        let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        println!(
            "{:<13} {:<7} {:<6} {:<10} {}",
            g.id,
            g.firing,
            g.escalation_step,
            g.acknowledged_by.as_deref().unwrap_or("-"),
            labels.join(",")
        );
    }
    Ok(())
}

pub(super) fn silence(config: &ServerConfig, command: SilenceCommand) -> anyhow::Result<()> {
    let n = notifier(config)?;
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            start,
            end,
            author,
            comment,
            maintenance,
        } => {
            let starts = match start {
                Some(s) => parse_instant(&s).map_err(anyhow::Error::msg)?,
                None => SystemClock.now_ms(),
            };
            let ends = match (duration, end) {
                (Some(d), _) => {
                    let d = units::parse_duration(&d)
                        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
                    starts + d.as_millis() as i64
                }
                (None, Some(e)) => parse_instant(&e).map_err(anyhow::Error::msg)?,
                (None, None) => bail!("give --duration or --end"),
            };
            let id = n.add_silence(SilenceRow {
                id: String::new(),
                kind: if maintenance {
                    "maintenance"
                } else {
                    "silence"
                }
                .into(),
                matchers,
                starts_ms: starts,
                ends_ms: ends,
                created_by: author,
                comment,
                created_ms: 0,
            })?;
            println!("{id}");
        }
        SilenceCommand::List => {
            println!(
                "{:<17} {:<12} {:<25} {:<25} {:<10} MATCHERS",
                "ID", "KIND", "STARTS", "ENDS", "BY"
            );
            for s in n.silences()? {
                println!(
                    "{:<17} {:<12} {:<25} {:<25} {:<10} {}",
                    s.id,
                    s.kind,
                    sysward_notify::text::rfc3339(s.starts_ms),
                    sysward_notify::text::rfc3339(s.ends_ms),
                    s.created_by,
                    s.matchers.join(", ")
                );
            }
        }
        SilenceCommand::Expire { id } => {
            n.expire_silence(&id)?;
            println!("Expired {id}.");
        }
    }
    Ok(())
}

pub(super) fn test(config: &ServerConfig, receiver: &str) -> anyhow::Result<ExitCode> {
    let n = notifier(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(n.test_receiver(receiver))?;
    let mut failed = false;
    for (channel, r) in results {
        match r {
            Ok(d) => println!("{channel}: delivered ({}) {}", d.status, d.answer),
            Err(e) => {
                failed = true;
                println!("{channel}: FAILED: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
