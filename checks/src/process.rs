//! `[[checks.process]]`: processes matching a pattern or named by a pid file exist, in
//! a number within bounds.
//!
//! Which processes match:
//! - `comm`: a regular expression (unanchored, as `pgrep`'s) on the kernel's name of
//!   the process, `/proc/[pid]/stat`'s `comm`, which the kernel cuts at 15 bytes;
//! - `cmdline`: a regular expression on the command line, its arguments joined by
//!   spaces (`pgrep -f`);
//! - `pidfile`: the process whose pid the file holds (the first word of the file),
//!   read under the agent's `rootfs`.
//!
//! At least one is required; given together, a process must match each (with a pid
//! file, the patterns guard against a stale file whose pid now belongs to another
//! process). Zombies are not counted, nor is the agent itself. Only processes are
//! counted, not their threads.
//!
//! State: CRITICAL when the count is below `min` (default 1) or above `max` (default
//! none), else OK; UNKNOWN when `/proc` cannot be read, or the pid file cannot be read
//! (other than not existing, which counts as no process) or holds no pid.
//!
//! Samples (the `check` label is added by [`super::Check`]): [`COUNT`], [`CPU_SECONDS`]
//! (the CPU time of the matching processes, summed: a counter, which falls back when
//! one of them exits, as a counter reset), [`RESIDENT_BYTES`] (their resident memory,
//! summed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use sysward_platform::{ProcessScanner, Roots, USER_HZ};

use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Matching processes (gauge).
pub const COUNT: &str = "sysward_check_process_count";
/// CPU seconds of the matching processes, summed (counter).
pub const CPU_SECONDS: &str = "sysward_check_process_cpu_seconds_total";
/// Resident memory of the matching processes, summed (gauge).
pub const RESIDENT_BYTES: &str = "sysward_check_process_resident_memory_bytes";

/// One `[[checks.process]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessCheckConfig {
    /// Unique on the host; the `check` label.
    pub name: String,
    /// Its own interval (else its tier's).
    #[serde(default, deserialize_with = "super::duration")]
    pub interval: Option<Duration>,
    /// Its tier (default critical).
    #[serde(default, deserialize_with = "super::tier")]
    pub tier: Option<Tier>,
    /// Deadline of one run.
    #[serde(default, deserialize_with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Consecutive non-OK results before a state is hard (default 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Regular expression on the process name (`comm`, at most 15 bytes).
    #[serde(default)]
    pub comm: Option<String>,
    /// Regular expression on the command line.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// A file holding the pid of the one process to watch.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// Fewest matching processes that is OK (default 1).
    #[serde(default)]
    pub min: Option<u64>,
    /// Most matching processes that is OK (default: no limit).
    #[serde(default)]
    pub max: Option<u64>,
}

pub(crate) fn build(
    c: &ProcessCheckConfig,
    ctx: &super::CheckContext,
) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    let probe = ProcessProbe::new(c, ctx.roots.clone())?;
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

/// A configured process check.
#[derive(Debug)]
pub struct ProcessProbe {
    roots: Roots,
    comm: Option<Regex>,
    cmdline: Option<Regex>,
    pidfile: Option<PathBuf>,
    min: u64,
    max: Option<u64>,
    /// What is matched, for the output: `comm ~ /nginx/, pidfile /run/nginx.pid`.
    describe: String,
    scanner: ProcessScanner,
    page_size: u64,
}

impl ProcessProbe {
    /// A probe for `c` reading processes under `roots`.
    pub fn new(c: &ProcessCheckConfig, roots: Roots) -> Result<Self, String> {
        if c.comm.is_none() && c.cmdline.is_none() && c.pidfile.is_none() {
            return Err("set at least one of `comm`, `cmdline` and `pidfile`".into());
        }
        let regex = |key: &str, pattern: &Option<String>| {
            pattern
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|e| format!("{key}: {e}"))
        };
        let min = c.min.unwrap_or(1);
        if let Some(max) = c.max
            && max < min
        {
            return Err(format!("max {max} is below min {min}"));
        }
        if let Some(path) = &c.pidfile
            && !path.is_absolute()
        {
            return Err(format!(
                "pidfile {} is not an absolute path",
                path.display()
            ));
        }
        let mut describe = Vec::new();
        if let Some(p) = &c.comm {
            describe.push(format!("comm ~ /{p}/"));
        }
        if let Some(p) = &c.cmdline {
            describe.push(format!("cmdline ~ /{p}/"));
        }
        if let Some(p) = &c.pidfile {
            describe.push(format!("pidfile {}", p.display()));
        }
        Ok(Self {
            comm: regex("comm", &c.comm)?,
            cmdline: regex("cmdline", &c.cmdline)?,
            pidfile: c.pidfile.clone(),
            min,
            max: c.max,
            describe: describe.join(", "),
            roots,
            scanner: ProcessScanner::new(),
            page_size: sysward_platform::page_size().unwrap_or(4096),
        })
    }

    /// The pid a pid file names: `Ok(None)` when there is no such file.
    fn read_pidfile(&self, path: &Path) -> Result<Option<u32>, String> {
        let under_root = self
            .roots
            .rootfs
            .join(path.strip_prefix("/").unwrap_or(path));
        match std::fs::read_to_string(&under_root) {
            Ok(text) => text
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<u32>().ok())
                .filter(|pid| *pid > 0)
                .map(Some)
                .ok_or_else(|| format!("pidfile {} holds no pid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read pidfile {}: {e}", path.display())),
        }
    }
}

/// One matching process.
struct Found {
    pid: u32,
    ticks: u64,
    rss_pages: u64,
}

impl Probe for ProcessProbe {
    fn run(&mut self, _deadline: Duration) -> ProbeResult {
        let wanted_pid = match &self.pidfile {
            None => None,
            Some(path) => match self.read_pidfile(path) {
                Ok(Some(pid)) => Some(pid),
                Ok(None) => {
                    // No file, no process: judged by the bounds like any count of 0.
                    return self.verdict(
                        &[],
                        Some(format!("pidfile {} does not exist", path.display())),
                    );
                }
                Err(message) => return ProbeResult::new(CheckState::Unknown, message),
            },
        };
        let own = std::process::id();
        let mut found = Vec::new();
        let comm = &self.comm;
        let scanned = self.scanner.scan(&self.roots, |stat| {
            if stat.pid == own
                || matches!(stat.state, 'Z' | 'X' | 'x')
                || wanted_pid.is_some_and(|p| p != stat.pid)
                || comm.as_ref().is_some_and(|re| !re.is_match(stat.comm))
            {
                return;
            }
            found.push(Found {
                pid: stat.pid,
                ticks: stat.utime.saturating_add(stat.stime),
                rss_pages: stat.rss_pages,
            });
        });
        if let Err(e) = scanned {
            return ProbeResult::new(CheckState::Unknown, e.to_string());
        }
        if let Some(re) = &self.cmdline {
            found.retain(|f| {
                // A process that exited meanwhile, or whose command line cannot be read,
                // does not match.
                command_line(&self.roots, f.pid).is_some_and(|line| re.is_match(&line))
            });
        }
        let note = match (wanted_pid, found.is_empty()) {
            (Some(pid), true) => Some(format!(
                "pidfile names pid {pid}, which is not running{}",
                if self.comm.is_some() || self.cmdline.is_some() {
                    " or does not match"
                } else {
                    ""
                }
            )),
            _ => None,
        };
        self.verdict(&found, note)
    }
}

/// The command line of a process, `None` if it exited or cannot be read.
#[cfg(target_os = "linux")]
fn command_line(roots: &Roots, pid: u32) -> Option<String> {
    sysward_platform::linux::read_pid_cmdline(roots, pid)
        .ok()
        .flatten()
}

/// Command lines are read on Linux only.
#[cfg(not(target_os = "linux"))]
fn command_line(_roots: &Roots, _pid: u32) -> Option<String> {
    None
}

impl ProcessProbe {
    fn verdict(&self, found: &[Found], note: Option<String>) -> ProbeResult {
        let count = found.len() as u64;
        let ticks: u64 = found.iter().map(|f| f.ticks).sum();
        let pages: u64 = found.iter().map(|f| f.rss_pages).sum();
        let bounds = match self.max {
            Some(max) if max == self.min => format!("expected {max}"),
            Some(max) => format!("expected {} to {max}", self.min),
            None => format!("expected at least {}", self.min),
        };
        let within = count >= self.min && self.max.is_none_or(|max| count <= max);
        let state = if within {
            CheckState::Ok
        } else {
            CheckState::Critical
        };
        let noun = if count == 1 { "process" } else { "processes" };
        let mut output = format!("{count} {noun} matching {} ({bounds})", self.describe);
        if let Some(note) = note {
            output.push_str(": ");
            output.push_str(&note);
        }
        let mut result = ProbeResult::new(state, output);
        let mut pids: Vec<String> = found.iter().take(20).map(|f| f.pid.to_string()).collect();
        if found.len() > 20 {
            pids.push("…".into());
        }
        if !pids.is_empty() {
            result.long_output = format!("pids: {}", pids.join(" "));
        }
        result
            .samples
            .push(Sample::new(COUNT, Kind::Gauge, count as f64));
        result.samples.push(Sample::new(
            CPU_SECONDS,
            Kind::Counter,
            ticks as f64 / USER_HZ as f64,
        ));
        result.samples.push(Sample::new(
            RESIDENT_BYTES,
            Kind::Gauge,
            pages.saturating_mul(self.page_size) as f64,
        ));
        result
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::process::{Child, Command};

    use super::*;
    use crate::{CheckContext, ChecksConfig, build as build_checks};
    use sysward_collectors::{Event, Output};

    /// A `sleep` with an argument of its own to find it by.
    struct Sleeper(Child);

    impl Sleeper {
        fn new(tag: &str) -> Self {
            Self(
                Command::new("/bin/sleep")
                    .arg(tag)
                    .spawn()
                    .expect("spawn sleep"),
            )
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn run(text: &str) -> (Event, Vec<Sample>) {
        let config: ChecksConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let mut jobs = build_checks(&config, &CheckContext::default()).expect("builds");
        let mut out = Output::default();
        jobs[0].collector.collect(&mut out).expect("collects");
        (out.events.remove(0), out.samples)
    }

    fn value(samples: &[Sample], name: &str) -> f64 {
        samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn counts_by_command_line_and_bounds() {
        // A distinctive number of seconds: the command line tells these apart.
        let tag = format!("{}.{}", 7000 + std::process::id() % 1000, 31);
        let _a = Sleeper::new(&tag);
        let _b = Sleeper::new(&tag);
        let pattern = format!("^/bin/sleep {}$", regex::escape(&tag));
        let (event, samples) = run(&format!(
            "[[process]]\nname = \"p\"\ncmdline = '{pattern}'\ncomm = \"^sleep$\"\n"
        ));
        assert_eq!(event.state, CheckState::Ok, "{}", event.output);
        assert!(
            event
                .output
                .starts_with("2 processes matching comm ~ /^sleep$/, cmdline ~ /"),
            "{}",
            event.output
        );
        assert!(
            event.output.ends_with("(expected at least 1)"),
            "{}",
            event.output
        );
        assert_eq!(value(&samples, COUNT), 2.0);
        assert!(value(&samples, RESIDENT_BYTES) > 0.0);
        assert!(value(&samples, CPU_SECONDS) >= 0.0);
        assert!(
            samples
                .iter()
                .all(|s| s.labels[0] == ("check".into(), "p".into()))
        );

        let (event, _) = run(&format!(
            "[[process]]\nname = \"p\"\ncmdline = '{pattern}'\nmax = 1\nmin = 0\n"
        ));
        assert_eq!(event.state, CheckState::Critical);
        assert!(
            event.output.ends_with("(expected 0 to 1)"),
            "{}",
            event.output
        );

        let (event, samples) = run("[[process]]\nname = \"p\"\ncomm = \"^no-such-process-x$\"\n");
        assert_eq!(event.state, CheckState::Critical);
        assert_eq!(
            event.output,
            "0 processes matching comm ~ /^no-such-process-x$/ (expected at least 1)"
        );
        assert_eq!(value(&samples, COUNT), 0.0);
    }

    #[test]
    fn pidfiles() {
        let sleeper = Sleeper::new("30");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("s.pid");
        std::fs::write(&pidfile, format!("{}\n", sleeper.0.id())).expect("write");
        let text = format!(
            "[[process]]\nname = \"p\"\npidfile = \"{}\"\n",
            pidfile.display()
        );
        let (event, samples) = run(&text);
        assert_eq!(event.state, CheckState::Ok, "{}", event.output);
        assert_eq!(value(&samples, COUNT), 1.0);
        assert_eq!(event.long_output, format!("pids: {}", sleeper.0.id()));

        // A stale pid file whose pid is some other process.
        let guarded = format!("{text}comm = \"^nginx$\"\n");
        let (event, _) = run(&guarded);
        assert_eq!(event.state, CheckState::Critical);
        assert!(
            event
                .output
                .ends_with("which is not running or does not match"),
            "{}",
            event.output
        );

        std::fs::write(&pidfile, "garbage").expect("write");
        let (event, _) = run(&text);
        assert_eq!(event.state, CheckState::Unknown);
        assert!(event.output.ends_with("holds no pid"), "{}", event.output);

        std::fs::remove_file(&pidfile).expect("remove");
        let (event, _) = run(&text);
        assert_eq!(event.state, CheckState::Critical);
        assert!(event.output.ends_with("does not exist"), "{}", event.output);
        let (event, _) = run(&format!("{text}min = 0\n"));
        assert_eq!(event.state, CheckState::Ok);
    }

    #[test]
    fn fixture_processes_and_a_missing_proc() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/node_exporter");
        let roots = Roots::new(base.join("proc"), base.join("sys"), base.clone());
        let config = |comm: &str| ProcessCheckConfig {
            name: "p".into(),
            interval: None,
            tier: None,
            timeout: None,
            max_attempts: None,
            comm: Some(comm.into()),
            cmdline: None,
            pidfile: None,
            min: None,
            max: None,
        };
        let mut probe = ProcessProbe::new(&config("^systemd$"), roots).expect("builds");
        let result = probe.run(Duration::from_secs(1));
        assert_eq!(result.state, CheckState::Ok, "{}", result.output);
        assert_eq!(result.samples[0].value, 1.0);
        let nowhere = Roots::new("/nonexistent/proc", "/nonexistent/sys", "/nonexistent");
        let mut probe = ProcessProbe::new(&config("x"), nowhere).expect("builds");
        let result = probe.run(Duration::from_secs(1));
        assert_eq!(result.state, CheckState::Unknown);
        assert!(
            result.output.starts_with("cannot read /nonexistent/proc"),
            "{}",
            result.output
        );
    }

    #[test]
    fn config_errors() {
        for (text, message) in [
            ("", "set at least one of"),
            ("comm = \"(\"", "comm: regex parse error"),
            ("comm = \"x\"\nmin = 3\nmax = 2", "max 2 is below min 3"),
            ("pidfile = \"run/x.pid\"", "not an absolute path"),
        ] {
            let config: ChecksConfig =
                toml::from_str(&format!("[[process]]\nname = \"p\"\n{text}\n")).expect("parses");
            let error = match build_checks(&config, &CheckContext::default()) {
                Ok(_) => panic!("built: {text}"),
                Err(e) => e.to_string(),
            };
            assert!(error.contains(message), "{text}: {error}");
        }
    }
}
