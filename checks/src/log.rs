//! `[[checks.log]]`: count the new lines of a log that match patterns, and raise a state
//! when an alerting pattern shows up.
//!
//! ```toml
//! [[checks.log]]
//! name = "nginx-errors"
//! path = "/var/log/nginx/error.log"   # a file ...
//! # unit = "nginx.service"            # ... or a journald unit
//! from_beginning = false              # first run ever: start at the end (default)
//! max_read = "16MiB"                  # per run; the rest waits for the next run
//! patterns = [
//!   { name = "error", regex = '\[(error|crit)\]', state = "critical" },
//!   { name = "upstream_timeout", regex = "upstream timed out" },   # counted only
//! ]
//! ```
//!
//! Each run reads what was written since the last one, line by line (a line longer than
//! 64 KiB is cut into pieces of that size, each matched as a line; an unfinished last
//! line waits for its line break), and matches every line against every pattern.
//!
//! Samples: `sysward_check_log_matches_total{pattern}`, a counter of matching lines, and
//! `sysward_check_log_lines_total`, of lines read. They are counters, sent cumulative
//! (as the design wants every counter), and saved with the position, so that they run
//! on across agent restarts; a rule takes `increase()` over its window for "matches per
//! interval", and a dropped batch loses no matches.
//!
//! State: the worst state among the patterns with a `state` that matched in this run,
//! with the last matching line as output; no such match: OK. The state holds for one run:
//! the next run without a match is OK again (the alert rules on the server decide how
//! long to keep it). A file or journal that cannot be read is UNKNOWN, unless a match
//! found before the failure was worse.
//!
//! The following itself (files and journald units, positions saved between runs) is
//! `sysward_platform::linux::{follow, journal}`, where collectors of services can use it
//! too; this module matches, counts, judges and saves.
//!
//! Following a file (as `tail -F` does): the file is identified by device and inode.
//! - *Rotation by rename* (logrotate's `create`): the path names a new inode. The rest of
//!   the old file is read first (from the descriptor still open, or after a restart by
//!   finding the old inode in the same directory, e.g. `error.log.1`), then the new file
//!   from its start. An old file already compressed or deleted cannot be finished: the
//!   output says so.
//! - *Truncation* (`copytruncate`): the file is shorter than the saved position: it is
//!   read again from its start. Lines written between the copy and the truncation are
//!   logrotate's to lose; a file that grows past the old position before the next run is
//!   indistinguishable from one that was never truncated.
//! - *Restarts*: the position (device, inode, offset, or the journal cursor) and the
//!   counters are saved after every run in `<state_dir>/log-<check>.json`, written to a
//!   temporary file and renamed over the old one, so a crash leaves the old or the new
//!   state, never half of one. A new agent resumes there: no line is counted twice
//!   unless the agent dies between reading and saving. A change of `path`/`unit` starts
//!   over at the end.
//! - *First run ever*: starts at the end of the file (`from_beginning` reads it all).
//!
//! Following a journald unit runs `journalctl --unit UNIT --output json
//! --cursor CURSOR`, leaving out the entry at the saved cursor (the first run only takes
//! the latest cursor). A saved cursor whose entry is gone (vacuumed, or the journal files
//! replaced) reads on from the nearest entry and says so; a cursor journalctl rejects
//! makes the run UNKNOWN, and the next one starts at the end. The agent's user
//! must be allowed to read the journal (group `systemd-journal` or `adm`). Where journald
//! is not running (no `/run/systemd/journal`, as in most containers) or `journalctl`
//! is missing, the check is UNKNOWN and says so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::net;
use super::{CheckContext, Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};
use sysward_platform::linux::follow::{FileFollower, FilePosition, Sink};
use sysward_platform::linux::journal::{JournalFollower, JournalPosition};
use sysward_platform::state_file::{load, store};

/// Lines that matched a pattern, since the check's state was created.
pub const MATCHES_TOTAL: &str = "sysward_check_log_matches_total";
/// Lines read, since the check's state was created.
pub const LINES_TOTAL: &str = "sysward_check_log_lines_total";

/// Default bytes read per run.
const DEFAULT_MAX_READ: u64 = 16 << 20;
/// The longest matching line quoted in an output.
const MAX_QUOTE: usize = 300;

/// One `[[checks.log]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogCheckConfig {
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
    /// A log file to follow.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A systemd unit whose journal to follow.
    #[serde(default)]
    pub unit: Option<String>,
    /// The patterns to count.
    pub patterns: Vec<PatternConfig>,
    /// On the very first run, read what is already there (default: start at the end).
    #[serde(default)]
    pub from_beginning: bool,
    /// Most bytes read per run (default 16 MiB).
    #[serde(default, deserialize_with = "net::size")]
    pub max_read: Option<u64>,
}

/// One pattern of a log check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The `pattern` label.
    pub name: String,
    /// A regular expression (Rust `regex` syntax), matched anywhere in a line.
    pub regex: String,
    /// `warning`, `critical` or `unknown`: a match raises this state.
    #[serde(default)]
    pub state: Option<String>,
}

pub(crate) fn build(
    c: &LogCheckConfig,
    ctx: &CheckContext,
) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let probe = LogProbe::new(c, ctx)?;
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

#[derive(Debug)]
struct Pattern {
    name: String,
    regex: Regex,
    state: Option<CheckState>,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Journal {
        unit: String,
        /// The command: `journalctl`, or a stand-in in tests.
        command: Vec<OsString>,
        /// journald's runtime directory, whose presence says it runs.
        runtime_dir: PathBuf,
    },
}

impl Source {
    /// What the saved state belongs to.
    fn key(&self) -> String {
        match self {
            Source::File(p) => format!("file:{}", p.display()),
            Source::Journal { unit, .. } => format!("unit:{unit}"),
        }
    }
}

/// Where reading goes on, and the counters: the state file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    /// Format version.
    v: u32,
    /// The path or unit it is for.
    source: String,
    /// Where reading a file goes on (flattened: the fields `file` and `head` of the
    /// state files written before the follower moved to platform).
    #[serde(flatten)]
    file: FilePosition,
    /// Where reading a journal goes on (`cursor` and `since`, flattened likewise).
    #[serde(flatten)]
    journal: JournalPosition,
    /// Matching lines per pattern name.
    counts: BTreeMap<String, u64>,
    /// Lines read.
    lines: u64,
}

struct LogProbe {
    source: Source,
    patterns: Vec<Pattern>,
    from_beginning: bool,
    max_read: u64,
    state_file: PathBuf,
    /// Loaded at the first run, so that building a check (as `check-config` does) touches
    /// nothing.
    saved: Option<Saved>,
    /// Made at the first run from `source`: it keeps the followed file open across runs.
    follower: Option<Follower>,
}

/// What follows the check's source across runs.
enum Follower {
    File(FileFollower),
    Journal(JournalFollower),
}

impl LogProbe {
    fn new(c: &LogCheckConfig, ctx: &CheckContext) -> Result<Self, String> {
        let source = match (&c.path, &c.unit) {
            (Some(path), None) if path.is_absolute() => Source::File(path.clone()),
            (Some(path), None) => {
                return Err(format!("path: {} is not an absolute path", path.display()));
            }
            (None, Some(unit)) => {
                let ok = !unit.is_empty()
                    && unit.len() <= 256
                    && !unit.starts_with('-')
                    && unit
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":_.@\\-".contains(&b));
                if !ok {
                    return Err(format!("unit: {unit:?} is not a unit name"));
                }
                Source::Journal {
                    unit: unit.clone(),
                    command: vec!["journalctl".into()],
                    runtime_dir: PathBuf::from("/run/systemd/journal"),
                }
            }
            _ => return Err("set exactly one of path and unit".into()),
        };
        if c.patterns.is_empty() {
            return Err("patterns: at least one".into());
        }
        let mut patterns: Vec<Pattern> = Vec::new();
        for p in &c.patterns {
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.:".contains(ch))
            {
                return Err(format!(
                    "patterns: name {:?}: 1 or more of A-Z a-z 0-9 _ - . :",
                    p.name
                ));
            }
            if patterns.iter().any(|q| q.name == p.name) {
                return Err(format!("patterns: two are named {:?}", p.name));
            }
            let regex = Regex::new(&p.regex).map_err(|e| format!("patterns: {}: {e}", p.name))?;
            let state = match p.state.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => None,
                Some("warning") => Some(CheckState::Warning),
                Some("critical") => Some(CheckState::Critical),
                Some("unknown") => Some(CheckState::Unknown),
                Some(other) => {
                    return Err(format!(
                        "patterns: {}: state {other:?} (warning, critical or unknown)",
                        p.name
                    ));
                }
            };
            patterns.push(Pattern {
                name: p.name.clone(),
                regex,
                state,
            });
        }
        let max_read = c.max_read.unwrap_or(DEFAULT_MAX_READ);
        if max_read == 0 {
            return Err("max_read: more than 0".into());
        }
        Ok(Self {
            source,
            patterns,
            from_beginning: c.from_beginning,
            max_read,
            state_file: ctx.state_dir.join(format!("log-{}.json", c.name)),
            saved: None,
            follower: None,
        })
    }
}

/// What one run found.
struct Scan<'a> {
    patterns: &'a [Pattern],
    counts: Vec<u64>,
    last: Vec<Option<String>>,
    lines: u64,
}

impl<'a> Scan<'a> {
    fn new(patterns: &'a [Pattern]) -> Self {
        Self {
            patterns,
            counts: vec![0; patterns.len()],
            last: vec![None; patterns.len()],
            lines: 0,
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = String::from_utf8_lossy(bytes);
        self.lines += 1;
        for (i, p) in self.patterns.iter().enumerate() {
            if p.regex.is_match(&text) {
                self.counts[i] += 1;
                if p.state.is_some() {
                    self.last[i] = Some(net::excerpt(text.as_bytes(), MAX_QUOTE));
                }
            }
        }
    }
}

impl Probe for LogProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let until = Instant::now() + timeout.mul_f64(0.8);
        let mut notes = Vec::new();
        let key = self.source.key();
        let mut saved = match self.saved.take() {
            Some(saved) => saved,
            None => match load::<Saved>(&self.state_file) {
                Ok(Some(saved)) if saved.source == key && saved.v == 1 => saved,
                Ok(Some(_)) => {
                    notes.push(
                        "the saved position was for another path or unit: starting over"
                            .to_string(),
                    );
                    fresh(&key)
                }
                Ok(None) => fresh(&key),
                Err(e) => {
                    notes.push(format!(
                        "the saved position is unreadable ({e}): starting over"
                    ));
                    fresh(&key)
                }
            },
        };
        let before = saved.clone();
        let patterns = std::mem::take(&mut self.patterns);
        let mut scan = Scan::new(&patterns);
        let followed = self.follow(&mut saved, &mut scan, until, &mut notes);
        for (i, p) in patterns.iter().enumerate() {
            *saved.counts.entry(p.name.clone()).or_default() += scan.counts[i];
        }
        saved
            .counts
            .retain(|name, _| patterns.iter().any(|p| &p.name == name));
        saved.lines += scan.lines;
        if saved != before
            && let Err(e) = store(&self.state_file, &saved)
        {
            notes.push(format!("position not saved: {e}"));
        }
        let result = judge(&patterns, &scan, &saved, followed, notes);
        self.saved = Some(saved);
        self.patterns = patterns;
        result
    }
}

fn fresh(key: &str) -> Saved {
    Saved {
        v: 1,
        source: key.to_string(),
        ..Saved::default()
    }
}

impl LogProbe {
    /// Reads what the source got since the last run into `scan`.
    fn follow(
        &mut self,
        saved: &mut Saved,
        scan: &mut Scan<'_>,
        until: Instant,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        let (from_beginning, max_read) = (self.from_beginning, self.max_read);
        let follower = self.follower.get_or_insert_with(|| match &self.source {
            Source::File(path) => {
                Follower::File(FileFollower::new(path.clone(), from_beginning, max_read))
            }
            Source::Journal {
                unit,
                command,
                runtime_dir,
            } => Follower::Journal(JournalFollower::new(
                unit.clone(),
                command.clone(),
                runtime_dir.clone(),
                from_beginning,
                max_read,
            )),
        });
        let mut line = |bytes: &[u8]| scan.line(bytes);
        let mut sink = Sink {
            line: &mut line,
            notes,
        };
        match follower {
            Follower::File(f) => f.follow(&mut saved.file, until, &mut sink),
            Follower::Journal(j) => j.follow(&mut saved.journal, until, &mut sink),
        }
    }
}

/// The result of a run: the worst state among matched alerting patterns, the counters.
fn judge(
    patterns: &[Pattern],
    scan: &Scan<'_>,
    saved: &Saved,
    followed: Result<(), String>,
    notes: Vec<String>,
) -> ProbeResult {
    let mut state = CheckState::Ok;
    let mut worst: Option<usize> = None;
    for (i, p) in patterns.iter().enumerate() {
        if let (Some(s), Some(_)) = (p.state, &scan.last[i]) {
            let w = net::worse(state, s);
            if w != state || worst.is_none() {
                state = w;
                worst = Some(i);
            }
        }
    }
    let mut output = match worst {
        Some(i) => format!(
            "{} new line(s) match {}: {}",
            scan.counts[i],
            patterns[i].name,
            scan.last[i].as_deref().unwrap_or("")
        ),
        None => {
            let counted: Vec<String> = patterns
                .iter()
                .zip(&scan.counts)
                .map(|(p, n)| format!("{} {n}", p.name))
                .collect();
            format!(
                "{} new line(s); matches: {}",
                scan.lines,
                counted.join(", ")
            )
        }
    };
    if let Err(e) = &followed {
        state = net::worse(state, CheckState::Unknown);
        output = if worst.is_some() {
            format!("{output}; then {e}")
        } else {
            e.clone()
        };
    }
    let mut long: Vec<String> = patterns
        .iter()
        .enumerate()
        .filter(|(i, _)| scan.counts[*i] > 0)
        .map(|(i, p)| format!("{}: {} new", p.name, scan.counts[i]))
        .collect();
    long.extend(notes);
    let mut result = ProbeResult::new(state, output);
    result.long_output = long.join("\n");
    for p in patterns {
        let total = saved.counts.get(&p.name).copied().unwrap_or(0);
        result.samples.push(
            Sample::new(MATCHES_TOTAL, Kind::Counter, total as f64)
                .label("pattern", p.name.clone()),
        );
    }
    result
        .samples
        .push(Sample::new(LINES_TOTAL, Kind::Counter, saved.lines as f64));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::path::Path;
    use sysward_platform::linux::follow::MAX_LINE;

    fn config(text: &str) -> LogCheckConfig {
        toml::from_str(&format!(
            "name = \"app\"\n{text}\npatterns = [\
             {{ name = \"error\", regex = \"ERROR\", state = \"critical\" }}, \
             {{ name = \"warn\", regex = \"WARN\", state = \"warning\" }}, \
             {{ name = \"slow\", regex = \"slow\" }}]"
        ))
        .expect("config")
    }

    fn probe(dir: &TempDir, text: &str) -> LogProbe {
        let ctx = CheckContext {
            state_dir: dir.path().join("state"),
            ..CheckContext::default()
        };
        LogProbe::new(&config(text), &ctx).expect("build")
    }

    fn file_probe(dir: &TempDir, extra: &str) -> LogProbe {
        probe(
            dir,
            &format!(
                "path = \"{}\"\n{extra}",
                dir.path().join("app.log").display()
            ),
        )
    }

    fn append(path: &Path, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn total(r: &ProbeResult, pattern: &str) -> f64 {
        r.samples
            .iter()
            .find(|s| s.name == MATCHES_TOTAL && s.labels.iter().any(|(_, v)| v == pattern))
            .map(|s| s.value)
            .expect("sample")
    }

    fn lines(r: &ProbeResult) -> f64 {
        r.samples
            .iter()
            .find(|s| s.name == LINES_TOTAL)
            .map(|s| s.value)
            .expect("lines")
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn new_lines_are_counted_and_an_alerting_match_raises_its_state() {
        let dir = TempDir::new("log-basic");
        let log = dir.path().join("app.log");
        append(&log, "ERROR before the agent started\n");
        let mut p = file_probe(&dir, "");
        let r = p.run(T);
        assert_eq!(
            r.state,
            CheckState::Ok,
            "the first run starts at the end: {}",
            r.output
        );
        assert_eq!(total(&r, "error"), 0.0);

        append(
            &log,
            "ok\nWARN disk 91%\nslow request\nERROR db down\nWARN again\r\nhalf a li",
        );
        let r = p.run(T);
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert_eq!(r.output, "1 new line(s) match error: ERROR db down");
        assert!(r.long_output.contains("warn: 2 new"), "{}", r.long_output);
        assert_eq!(
            (total(&r, "error"), total(&r, "warn"), total(&r, "slow")),
            (1.0, 2.0, 1.0)
        );
        assert_eq!(lines(&r), 5.0, "the unfinished line waits");
        assert!(r.samples.iter().all(|s| s.kind == Kind::Counter));

        append(&log, "ne WARN\n");
        let r = p.run(T);
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert_eq!(r.output, "1 new line(s) match warn: half a line WARN");
        assert_eq!(total(&r, "warn"), 3.0);

        let r = p.run(T);
        assert_eq!(
            r.state,
            CheckState::Ok,
            "no new match, no state: {}",
            r.output
        );
        assert_eq!(r.output, "0 new line(s); matches: error 0, warn 0, slow 0");
        assert_eq!(total(&r, "error"), 1.0, "counters stay");
    }

    #[test]
    fn rotation_by_rename_finishes_the_old_file_then_reads_the_new() {
        let dir = TempDir::new("log-rotate");
        let log = dir.path().join("app.log");
        append(&log, "");
        let mut p = file_probe(&dir, "");
        p.run(T);
        append(&log, "ERROR one\n");
        std::fs::rename(&log, dir.path().join("app.log.1")).expect("rotate");
        append(
            &dir.path().join("app.log.1"),
            "ERROR two, written before the writer reopened\n",
        );
        append(&log, "WARN in the new file\n");
        let r = p.run(T);
        assert_eq!(
            (total(&r, "error"), total(&r, "warn")),
            (2.0, 1.0),
            "{}",
            r.long_output
        );
        assert!(
            r.long_output.contains("was rotated: finished the old file"),
            "{}",
            r.long_output
        );
        append(&log, "WARN more\n");
        let r = p.run(T);
        assert_eq!(total(&r, "warn"), 2.0);
        assert_eq!(lines(&r), 4.0);
    }

    #[test]
    fn rotation_while_the_agent_was_down_finds_the_old_file() {
        let dir = TempDir::new("log-rotate-restart");
        let log = dir.path().join("app.log");
        append(&log, "");
        file_probe(&dir, "").run(T);
        append(&log, "ERROR a\n");
        std::fs::rename(&log, dir.path().join("app.log.1")).expect("rotate");
        append(&log, "ERROR b\n");
        let r = file_probe(&dir, "").run(T);
        assert_eq!(total(&r, "error"), 2.0, "{}", r.long_output);
        assert!(r.long_output.contains("app.log.1"), "{}", r.long_output);

        // And when the old file was compressed away, the new one is still read. (The
        // open descriptor keeps the inode from being reused for the new file here.)
        append(&log, "ERROR c\n");
        std::fs::rename(&log, dir.path().join("app.log.2")).expect("rotate");
        let _keep = File::open(dir.path().join("app.log.2")).expect("open");
        std::fs::remove_file(dir.path().join("app.log.2")).expect("remove");
        append(&log, "ERROR d\n");
        let r = file_probe(&dir, "").run(T);
        assert_eq!(total(&r, "error"), 3.0);
        assert!(
            r.long_output.contains("the old file is gone"),
            "{}",
            r.long_output
        );
    }

    #[test]
    fn truncation_reads_from_the_start() {
        let dir = TempDir::new("log-truncate");
        let log = dir.path().join("app.log");
        append(&log, "");
        let mut p = file_probe(&dir, "");
        p.run(T);
        append(&log, "ERROR 1\nslow 2\nslow 3\n");
        assert_eq!(total(&p.run(T), "slow"), 2.0);
        // copytruncate: same inode, shorter content.
        std::fs::write(&log, "ERROR after\n").expect("truncate");
        let r = p.run(T);
        assert_eq!(total(&r, "error"), 2.0, "{}", r.long_output);
        assert!(r.long_output.contains("was truncated"), "{}", r.long_output);
        assert_eq!(r.state, CheckState::Critical);

        // Truncated and written past the old position before the next run: the first
        // bytes differ, so it is read from the start all the same.
        std::fs::write(&log, "WARN a new beginning, longer than before\n").expect("rewrite");
        let r = p.run(T);
        assert_eq!(total(&r, "warn"), 1.0, "{}", r.long_output);
        assert!(
            r.long_output.contains("starts differently"),
            "{}",
            r.long_output
        );
    }

    #[test]
    fn a_restart_resumes_at_the_saved_position_without_double_counting() {
        let dir = TempDir::new("log-restart");
        let log = dir.path().join("app.log");
        append(&log, "");
        let mut first = file_probe(&dir, "");
        first.run(T);
        append(&log, "ERROR x\nslow y\n");
        let r = first.run(T);
        assert_eq!((total(&r, "error"), lines(&r)), (1.0, 2.0));
        drop(first);
        let saved =
            std::fs::read_to_string(dir.path().join("state/log-app.json")).expect("state file");
        assert!(saved.contains("\"counts\""), "{saved}");
        assert!(!dir.path().join("state/log-app.json.tmp").exists());

        append(&log, "slow z\n");
        let mut second = file_probe(&dir, "");
        let r = second.run(T);
        assert_eq!(
            (total(&r, "error"), total(&r, "slow"), lines(&r)),
            (1.0, 2.0, 3.0)
        );
        assert_eq!(
            r.state,
            CheckState::Ok,
            "the ERROR was seen before: {}",
            r.output
        );

        // Another path with the same check name starts over.
        let other = dir.path().join("other.log");
        append(&other, "ERROR old\n");
        let mut moved = probe(&dir, &format!("path = \"{}\"", other.display()));
        let r = moved.run(T);
        assert_eq!(total(&r, "error"), 0.0);
        assert!(
            r.long_output.contains("another path or unit"),
            "{}",
            r.long_output
        );
    }

    #[test]
    fn from_beginning_max_read_and_long_lines() {
        let dir = TempDir::new("log-limits");
        let log = dir.path().join("app.log");
        let long = "x".repeat(MAX_LINE + 10);
        append(&log, &format!("ERROR a\n{long}\nslow\n"));
        let mut p = file_probe(&dir, "from_beginning = true\nmax_read = \"4B\"");
        let r = p.run(T);
        assert_eq!(lines(&r), 0.0, "no whole line in 4 bytes");
        let mut p = file_probe(&dir, "from_beginning = true\nmax_read = \"8B\"");
        let r = p.run(T);
        assert_eq!((lines(&r), total(&r, "error")), (1.0, 1.0));
        let r = p.run(T);
        assert_eq!(lines(&r), 1.0, "8 bytes of x: no line yet");
        let mut p = file_probe(&dir, "from_beginning = true");
        std::fs::remove_file(dir.path().join("state/log-app.json")).expect("reset");
        let r = p.run(T);
        assert_eq!(
            (lines(&r), total(&r, "slow")),
            (4.0, 1.0),
            "a long line is cut in two"
        );
    }

    #[test]
    fn a_missing_file_is_unknown() {
        let dir = TempDir::new("log-missing");
        let r = file_probe(&dir, "").run(T);
        assert_eq!(r.state, CheckState::Unknown);
        assert!(r.output.ends_with("app.log does not exist"), "{}", r.output);
    }

    /// State files written before the follower moved to platform read the same.
    #[test]
    fn state_files_keep_their_format() {
        let text = r#"{"v":1,"source":"file:/x","file":[{"dev":1,"ino":2},10],"head":[5,123],"cursor":"c9","since":null,"counts":{"error":3},"lines":7}"#;
        let saved: Saved = serde_json::from_str(text).expect("reads");
        assert_eq!(
            (saved.lines, saved.journal.cursor.as_deref()),
            (7, Some("c9"))
        );
        assert_eq!(saved.file.head, Some((5, 123)));
        let again: serde_json::Value = serde_json::to_value(&saved).expect("writes");
        let original: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(again, original);
    }

    #[test]
    fn the_state_file_survives_garbage() {
        let dir = TempDir::new("log-garbage");
        append(&dir.path().join("app.log"), "");
        std::fs::create_dir_all(dir.path().join("state")).expect("mkdir");
        std::fs::write(dir.path().join("state/log-app.json"), "{not json").expect("write");
        let r = file_probe(&dir, "").run(T);
        assert_eq!(r.state, CheckState::Ok);
        assert!(r.long_output.contains("unreadable"), "{}", r.long_output);
        assert!(
            load::<Saved>(&dir.path().join("state/log-app.json"))
                .expect("load")
                .is_some()
        );
    }

    #[test]
    fn journald_absent_is_unknown_with_the_reason() {
        let dir = TempDir::new("log-nojournal");
        let mut p = probe(&dir, "unit = \"nginx.service\"");
        let absent = dir.path().join("run/systemd/journal");
        if let Source::Journal { runtime_dir, .. } = &mut p.source {
            *runtime_dir = absent.clone();
        }
        let r = p.run(T);
        assert_eq!(r.state, CheckState::Unknown);
        assert_eq!(
            r.output,
            format!(
                "journald is not running on this host (no {}): follow the unit's log file \
                 with `path` instead",
                absent.display()
            )
        );
        // A program that is not there: what no installed journalctl can show.
        let mut p = probe(&dir, "unit = \"nginx.service\"");
        if let Source::Journal {
            command,
            runtime_dir,
            ..
        } = &mut p.source
        {
            *command = vec!["/nonexistent/journalctl".into()];
            *runtime_dir = dir.path().to_path_buf();
        }
        let r = p.run(T);
        assert_eq!(r.state, CheckState::Unknown);
        assert_eq!(
            r.output,
            "/nonexistent/journalctl not found: journald units need journalctl"
        );
    }

    /// Journal files written by the real `systemd-journal-remote` from the journal export
    /// format, read by the real `journalctl --directory`: cursors, `--unit` matching,
    /// seeking and error messages are journald's own.
    struct RealJournal {
        /// The journal directory, also the probe's stand-in for `/run/systemd/journal`.
        dir: PathBuf,
        /// Entries written so far: each gets a later timestamp.
        written: std::cell::Cell<u64>,
    }

    const JOURNAL_REMOTE: [&str; 2] = [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ];

    impl RealJournal {
        /// `None`, after saying why, where the journal tools are missing and `CI` is unset.
        fn new(dir: &TempDir) -> Option<Self> {
            let remote = JOURNAL_REMOTE.iter().any(|p| Path::new(p).exists());
            let journalctl = std::process::Command::new("journalctl")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !remote || !journalctl {
                let why = "this test writes a journal with systemd-journal-remote (Debian \
                           package systemd-journal-remote) and reads it with journalctl \
                           (package systemd)";
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("NOT RUN: {why}");
                return None;
            }
            let journal = Self {
                dir: dir.path().join("journal"),
                written: std::cell::Cell::new(0),
            };
            std::fs::create_dir_all(&journal.dir).expect("mkdir");
            Some(journal)
        }

        /// Appends entries `(unit, message)` to the journal file `file`.
        fn write(&self, file: &str, entries: &[(&str, &[u8])]) {
            use std::process::{Command, Stdio};
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_micros() as u64;
            let mut export = Vec::new();
            for (unit, message) in entries {
                let n = self.written.get() + 1;
                self.written.set(n);
                export.extend_from_slice(
                    format!(
                        "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={n}\n\
                         _BOOT_ID=5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e\n_SYSTEMD_UNIT={unit}\n",
                        now + n
                    )
                    .as_bytes(),
                );
                // The binary form of a field, which any bytes may take.
                export.extend_from_slice(b"MESSAGE\n");
                export.extend_from_slice(&(message.len() as u64).to_le_bytes());
                export.extend_from_slice(message);
                export.extend_from_slice(b"\n\n");
            }
            let remote = JOURNAL_REMOTE
                .iter()
                .find(|p| Path::new(p).exists())
                .expect("checked in new");
            let mut child = Command::new(remote)
                .arg(format!("--output={}", self.dir.join(file).display()))
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("systemd-journal-remote");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(&export)
                .expect("export format");
            let done = child.wait_with_output().expect("systemd-journal-remote");
            let said = String::from_utf8_lossy(&done.stderr);
            assert!(
                done.status.success()
                    && said.contains(&format!("after writing {} entries", entries.len())),
                "{said}"
            );
        }

        /// A log check of `unit` reading this journal, as journalctl would read the host's.
        fn probe(&self, dir: &TempDir, unit: &str) -> LogProbe {
            let mut p = probe(dir, &format!("unit = \"{unit}\""));
            if let Source::Journal {
                command,
                runtime_dir,
                ..
            } = &mut p.source
            {
                let mut directory = OsString::from("--directory=");
                directory.push(&self.dir);
                *command = vec!["journalctl".into(), directory];
                *runtime_dir = self.dir.clone();
            }
            p
        }
    }

    fn saved_cursor(dir: &TempDir) -> Option<String> {
        load::<Saved>(&dir.path().join("state/log-app.json"))
            .expect("state file")
            .and_then(|s| s.journal.cursor)
    }

    #[test]
    fn a_real_journal_is_followed_by_cursor_across_restarts() {
        let dir = TempDir::new("log-journal");
        let Some(journal) = RealJournal::new(&dir) else {
            return;
        };
        journal.write("a.journal", &[("app.service", b"ERROR old, not counted")]);
        let mut p = journal.probe(&dir, "app.service");
        let r = p.run(T);
        assert_eq!(
            (r.state, total(&r, "error"), lines(&r)),
            (CheckState::Ok, 0.0, 0.0),
            "the first run starts at the end: {} / {}",
            r.output,
            r.long_output
        );
        let first = saved_cursor(&dir).expect("the latest entry's cursor is saved");
        assert!(first.starts_with("s="), "journald's own cursor: {first}");

        journal.write(
            "a.journal",
            &[
                ("app.service", b"ERROR three"),
                ("other.service", b"ERROR of another unit"),
                // Not UTF-8: journalctl writes it as an array of bytes.
                ("app.service", b"WARN \xff"),
            ],
        );
        let r = p.run(T);
        assert_eq!(
            r.state,
            CheckState::Critical,
            "{} / {}",
            r.output,
            r.long_output
        );
        assert_eq!(r.output, "1 new line(s) match error: ERROR three");
        assert_eq!(
            (total(&r, "error"), total(&r, "warn"), lines(&r)),
            (1.0, 1.0, 2.0)
        );
        assert!(!r.long_output.contains("no longer in the journal"));
        drop(p);

        // A restart: the saved cursor's entry is not counted again.
        journal.write("a.journal", &[("app.service", b"slow five")]);
        let r = journal.probe(&dir, "app.service").run(T);
        assert_eq!((r.state, lines(&r)), (CheckState::Ok, 3.0), "{}", r.output);
        assert_eq!(
            (total(&r, "error"), total(&r, "warn"), total(&r, "slow")),
            (1.0, 1.0, 1.0)
        );
        let r = journal.probe(&dir, "app.service").run(T);
        assert_eq!(lines(&r), 3.0, "nothing new: {}", r.output);

        // A unit with no entries yet: its first ever message still counts.
        let quiet = TempDir::new("log-journal-quiet");
        let mut p = journal.probe(&quiet, "quiet.service");
        assert_eq!(p.run(T).state, CheckState::Ok);
        journal.write("a.journal", &[("quiet.service", b"ERROR first words")]);
        let r = p.run(T);
        assert_eq!(r.output, "1 new line(s) match error: ERROR first words");
    }

    /// A cursor journalctl refuses ("Failed to seek to cursor"): the run says so, and the
    /// next one starts over at the end of the journal, keeping the counters.
    #[test]
    fn a_cursor_journalctl_rejects_starts_over_at_the_end() {
        let dir = TempDir::new("log-journal-bad-cursor");
        let Some(journal) = RealJournal::new(&dir) else {
            return;
        };
        journal.write("a.journal", &[("app.service", b"ERROR one")]);
        let state = dir.path().join("state/log-app.json");
        let mut saved = fresh("unit:app.service");
        saved.journal.cursor = Some("c2".into());
        saved.counts.insert("error".into(), 3);
        saved.lines = 7;
        store(&state, &saved).expect("state");
        let mut p = journal.probe(&dir, "app.service");
        let r = p.run(T);
        assert_eq!(r.state, CheckState::Unknown, "{}", r.output);
        assert_eq!(
            r.output,
            "journalctl failed (exit status: 1): Failed to seek to cursor: Invalid argument"
        );
        assert_eq!(saved_cursor(&dir), None, "the rejected cursor is dropped");
        assert_eq!((total(&r, "error"), lines(&r)), (3.0, 7.0));

        journal.write("a.journal", &[("app.service", b"ERROR two")]);
        let r = p.run(T);
        assert_eq!(
            (r.state, total(&r, "error"), lines(&r)),
            (CheckState::Ok, 3.0, 7.0),
            "started over at the end: {}",
            r.output
        );
        assert!(saved_cursor(&dir).is_some_and(|c| c.starts_with("s=")));
        journal.write("a.journal", &[("app.service", b"ERROR three")]);
        let r = p.run(T);
        assert_eq!(r.output, "1 new line(s) match error: ERROR three");
        assert_eq!((total(&r, "error"), lines(&r)), (4.0, 8.0));
    }

    /// The journal files were replaced (vacuumed, or a new machine id) and the saved
    /// cursor's entry went with them: journalctl seeks to the nearest entry, which is new
    /// and counted, and the output says the saved position was gone.
    #[test]
    fn a_cursor_whose_entry_is_gone_reads_on_from_the_nearest_entry() {
        let dir = TempDir::new("log-journal-gone");
        let Some(journal) = RealJournal::new(&dir) else {
            return;
        };
        journal.write("a.journal", &[("app.service", b"slow one")]);
        let mut p = journal.probe(&dir, "app.service");
        p.run(T);
        let before = saved_cursor(&dir).expect("cursor");
        std::fs::remove_file(journal.dir.join("a.journal")).expect("vacuum");
        journal.write(
            "b.journal",
            &[
                ("app.service", b"WARN two"),
                ("app.service", b"ERROR three"),
            ],
        );
        let r = p.run(T);
        assert_eq!(
            (total(&r, "warn"), total(&r, "error"), lines(&r)),
            (1.0, 1.0, 2.0),
            "both new entries, the nearest one too: {} / {}",
            r.output,
            r.long_output
        );
        assert!(
            r.long_output
                .contains("the saved journal position is no longer in the journal"),
            "{}",
            r.long_output
        );
        let after = saved_cursor(&dir).expect("cursor");
        assert_ne!(before, after);
        journal.write("b.journal", &[("app.service", b"slow four")]);
        let r = p.run(T);
        assert_eq!((total(&r, "slow"), lines(&r)), (1.0, 3.0), "{}", r.output);
        assert!(!r.long_output.contains("no longer in the journal"));
    }

    #[test]
    fn bad_configs_are_refused() {
        let ctx = CheckContext::default();
        for (text, why) in [
            (
                "patterns = [{ name = \"a\", regex = \"x\" }]",
                "exactly one",
            ),
            (
                "path = \"rel.log\"\npatterns = [{ name = \"a\", regex = \"x\" }]",
                "absolute",
            ),
            (
                "unit = \"-x\"\npatterns = [{ name = \"a\", regex = \"x\" }]",
                "not a unit",
            ),
            ("path = \"/a\"\npatterns = []", "at least one"),
            (
                "path = \"/a\"\npatterns = [{ name = \"a b\", regex = \"x\" }]",
                "name",
            ),
            (
                "path = \"/a\"\npatterns = [{ name = \"a\", regex = \"x\" }, { name = \"a\", regex = \"y\" }]",
                "two are named",
            ),
            (
                "path = \"/a\"\npatterns = [{ name = \"a\", regex = \"(\" }]",
                "patterns: a",
            ),
            (
                "path = \"/a\"\npatterns = [{ name = \"a\", regex = \"x\", state = \"ok\" }]",
                "warning, critical or unknown",
            ),
            (
                "path = \"/a\"\nmax_read = \"0B\"\npatterns = [{ name = \"a\", regex = \"x\" }]",
                "max_read",
            ),
        ] {
            let c: LogCheckConfig = toml::from_str(&format!("name = \"l\"\n{text}")).expect(text);
            let err = build(&c, &ctx)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
