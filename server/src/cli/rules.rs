//! `check rules` and `test rules`: promtool's two rule commands, on our rule engine.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;

use crate::rules::{RuleKind, load_file, unittest};

#[derive(Subcommand)]
pub(super) enum CheckCommand {
    /// Checks rule files (or every *.yml/*.yaml of a directory) as the server loads them:
    /// syntax, expressions, templates, durations and duplicates, each error with its file,
    /// line, group and rule.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(super) enum TestCommand {
    /// Runs rule unit tests in `promtool test rules`' format.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub(super) fn check(command: CheckCommand) -> ExitCode {
    let CheckCommand::Rules { files } = command;
    let mut failed = false;
    for path in expand(files) {
        println!("Checking {}", path.display());
        match load_file(&path) {
            Ok(groups) => {
                let (mut alerts, mut records) = (0, 0);
                for rule in groups.iter().flat_map(|g| &g.rules) {
                    match rule.kind {
                        RuleKind::Alert(_) => alerts += 1,
                        RuleKind::Record { .. } => records += 1,
                    }
                }
                println!(
                    "  SUCCESS: {} rules found ({alerts} alerting, {records} recording) in {} groups",
                    alerts + records,
                    groups.len()
                );
            }
            Err(e) => {
                failed = true;
                println!("  FAILED:\n{e}");
            }
        }
        println!();
    }
    exit(failed)
}

/// Files as given, directories as their rule files in name order.
fn expand(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path);
            continue;
        }
        out.extend(crate::rules::engine::rule_files(&path).unwrap_or_default());
    }
    out
}

pub(super) fn test(command: TestCommand) -> ExitCode {
    let TestCommand::Rules { files } = command;
    let mut failed = false;
    for path in files {
        let outcome = unittest::run_file(&path);
        failed |= !outcome.ok();
        println!("{}", outcome.report());
    }
    exit(failed)
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
