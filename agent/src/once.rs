//! The commands that run collectors and checks once, now, in the foreground:
//! `collect --once [--checks]` and `checks test [NAME...]`.
//!
//! Checks run here with a scratch state directory of their own, removed afterwards: a
//! test run must neither move a log check's read position under the running agent nor
//! leave files owned by whoever ran the command in the agent's state directory. A log
//! check therefore starts from the end of its files, as on a first start.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
    time::Duration,
};

use sysward_checks::{CheckConfigError, CheckContext, CheckJob};
use sysward_collectors::{CollectorContext, Output, REGISTRY, Roots, Sample};

use crate::config::{AgentConfig, check_context};

/// How long past its timeout a check's run is waited for before it is abandoned.
const GRACE: Duration = Duration::from_secs(2);

/// Where a one-off run keeps check state: under the system's temporary directory, named
/// by the process, removed on drop.
struct ScratchState(PathBuf);

impl ScratchState {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("sysward-agent-once-{}", std::process::id())))
    }

    fn context(&self, config: &AgentConfig) -> CheckContext {
        CheckContext {
            state_dir: self.0.clone(),
            ..check_context(&config.agent)
        }
    }
}

impl Drop for ScratchState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How one check's run ended.
enum CheckRun {
    /// It ran: its output (one event, its samples).
    Ran(Output),
    /// It could not be set up (a refused script, a bad address): why.
    Refused(CheckConfigError),
    /// It did not finish within its timeout and the grace.
    Abandoned(Duration),
}

/// Runs a check once on a thread of its own and waits for it, at most `timeout` and
/// [`GRACE`]: a probe stops itself at its timeout, and one that does not is left behind.
fn run_check(mut job: CheckJob, timeout: Duration) -> CheckRun {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Output::default();
        // A check's collect never fails as a whole: its problems are its state.
        let _ = job.collector.collect(&mut out);
        let _ = tx.send(out);
    });
    match rx.recv_timeout(timeout + GRACE) {
        Ok(out) => CheckRun::Ran(out),
        Err(_) => CheckRun::Abandoned(timeout + GRACE),
    }
}

/// Builds and runs the checks of `config` whose names are in `only` (all when it is
/// empty), in config order.
fn run_checks(config: &AgentConfig, only: &[String]) -> Vec<(String, &'static str, CheckRun)> {
    let scratch = ScratchState::new();
    let built = sysward_checks::build_each(&config.checks, &scratch.context(config));
    let mut runs = Vec::new();
    for job in built {
        let (name, kind, run) = match job {
            Ok(job) => {
                let (_, timeout) = config.check_timing(&job.schedule);
                (job.name.to_string(), job.kind, run_check(job, timeout))
            }
            Err(e) => (e.name.clone(), e.kind, CheckRun::Refused(e)),
        };
        if only.is_empty() || only.contains(&name) {
            runs.push((name, kind, run));
        }
    }
    runs
}

/// `checks test [NAME...]`: runs the checks (all, or the named ones) once and prints
/// what each found. Exit code 2 when a named check does not exist (nothing is run), 1
/// when a check was refused or abandoned, else 0 whatever the checks' states.
pub(crate) fn checks_test(config_path: &Path, names: &[String]) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load_unbuilt_checks(config_path)?;
    let known = config.checks.names();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        for name in unknown {
            eprintln!(
                "error: no check named {name:?} in {}",
                config_path.display()
            );
        }
        eprintln!("configured checks: {}", known.join(", "));
        return Ok(ExitCode::from(2));
    }
    let runs = run_checks(&config, names);
    if runs.is_empty() {
        println!("no checks configured in {}", config_path.display());
    }
    let mut failed = false;
    for (name, kind, run) in &runs {
        failed |= !matches!(run, CheckRun::Ran(_));
        print!("{}", report(name, kind, run));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What `checks test` prints for one check.
fn report(name: &str, kind: &str, run: &CheckRun) -> String {
    let mut text = String::new();
    match run {
        CheckRun::Refused(e) => {
            let _ = writeln!(text, "{name} ({kind}): REFUSED\n  why: {}", e.message);
        }
        CheckRun::Abandoned(after) => {
            let _ = writeln!(
                text,
                "{name} ({kind}): ABANDONED\n  why: still running after {after:?}"
            );
        }
        CheckRun::Ran(out) => {
            let Some(event) = out.events.first() else {
                let _ = writeln!(text, "{name} ({kind}): no result");
                return text;
            };
            let _ = writeln!(text, "{name} ({kind}): {}", event.state.as_str());
            let _ = writeln!(text, "  output: {}", event.output);
            for line in event.long_output.lines() {
                let _ = writeln!(text, "  | {line}");
            }
            let _ = writeln!(text, "  duration: {:.3}s", event.duration.as_secs_f64());
            let _ = writeln!(text, "  samples:");
            for line in crate::exposition::render(&out.samples).lines() {
                if !line.starts_with('#') {
                    let _ = writeln!(text, "    {line}");
                }
            }
        }
    }
    text
}

/// Options of `collect --once`.
pub(crate) struct CollectOptions {
    pub(crate) procfs_root: Option<PathBuf>,
    pub(crate) sysfs_root: Option<PathBuf>,
    pub(crate) rootfs: Option<PathBuf>,
    /// Run the configured checks too and print their samples.
    pub(crate) checks: bool,
}

/// `collect --once`: every enabled collector (and with `--checks` every check) once,
/// their samples printed in the Prometheus text format. Without a config file at the
/// default path, the default collectors and no checks.
pub(crate) fn collect(
    config_path: &Path,
    default_path: bool,
    options: CollectOptions,
) -> anyhow::Result<ExitCode> {
    let config = match AgentConfig::load(config_path) {
        Ok(c) => Some(c),
        Err(_) if default_path && !config_path.exists() => None,
        Err(e) => return Err(e.into()),
    };
    let mut roots = config
        .as_ref()
        .map_or_else(Roots::default, AgentConfig::roots);
    roots.proc = options.procfs_root.unwrap_or(roots.proc);
    roots.sys = options.sysfs_root.unwrap_or(roots.sys);
    roots.rootfs = options.rootfs.unwrap_or(roots.rootfs);
    let (mut samples, mut failed) = collect_collectors(config.as_ref(), &roots)?;
    if let Some(config) = config.as_ref().filter(|_| options.checks) {
        for (name, _, run) in run_checks(config, &[]) {
            match run {
                CheckRun::Ran(out) => samples.extend(out.samples),
                CheckRun::Refused(e) => {
                    eprintln!("check {name}: {}", e.message);
                    failed = true;
                }
                CheckRun::Abandoned(after) => {
                    eprintln!("check {name}: still running after {after:?}; abandoned");
                    failed = true;
                }
            }
        }
    }
    print!("{}", crate::exposition::render(&samples));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs each enabled collector with its own settings (the defaults without a config);
/// returns the samples and whether any collector failed.
fn collect_collectors(
    config: Option<&AgentConfig>,
    roots: &Roots,
) -> anyhow::Result<(Vec<Sample>, bool)> {
    let plans: Vec<(&str, toml::Table)> = match config {
        Some(c) => c
            .collectors
            .iter()
            .map(|p| (p.name, p.settings.clone()))
            .collect(),
        None => REGISTRY
            .iter()
            .filter(|s| s.default_enabled)
            .map(|s| (s.name, toml::Table::new()))
            .collect(),
    };
    let mut samples = Vec::new();
    let mut failed = false;
    for (name, settings) in &plans {
        let Some(spec) = REGISTRY.iter().find(|s| s.name == *name) else {
            continue;
        };
        let mut collector = (spec.configure)(&CollectorContext::new(roots.clone()), settings)
            .map_err(|e| anyhow::anyhow!("collector {name}: {e}"))?;
        let mut out = Output::default();
        if let Err(e) = collector.collect(&mut out) {
            eprintln!("collector {name}: {e}");
            failed = true;
        }
        for e in &out.errors {
            eprintln!("collector {name}: {e}");
        }
        samples.extend(out.samples);
    }
    Ok((samples, failed))
}
