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
//! --after-cursor CURSOR` (the first run only takes the latest cursor); the agent's user
//! must be allowed to read the journal (group `systemd-journal` or `adm`). Where journald
//! is not running (no `/run/systemd/journal`, as in most containers) or `journalctl`
//! is missing, the check is UNKNOWN and says so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::net;
use super::{CheckContext, Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Lines that matched a pattern, since the check's state was created.
pub const MATCHES_TOTAL: &str = "sysward_check_log_matches_total";
/// Lines read, since the check's state was created.
pub const LINES_TOTAL: &str = "sysward_check_log_lines_total";

/// Default bytes read per run.
const DEFAULT_MAX_READ: u64 = 16 << 20;
/// A longer line is cut into pieces of this size, each matched on its own.
const MAX_LINE: usize = 64 * 1024;
/// The longest matching line quoted in an output.
const MAX_QUOTE: usize = 300;
/// Directory entries looked at when searching for a rotated file.
const MAX_DIR_ENTRIES: usize = 10_000;
/// Bytes at the start of a file that identify its content.
const HEAD_LEN: u64 = 1024;

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

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
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
    /// The file and the offset of the first byte not yet read.
    file: Option<(FileId, u64)>,
    /// Length and FNV-1a hash of the file's first bytes (at most [`HEAD_LEN`]): an inode
    /// that now holds other content (reused after a delete, or truncated and written
    /// past the old position) starts differently.
    #[serde(default)]
    head: Option<(u64, u64)>,
    /// The journal cursor of the last entry read.
    cursor: Option<String>,
    /// Without a cursor: the unit had no entries at this Unix time, so the next run
    /// reads those since then.
    #[serde(default)]
    since: Option<i64>,
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
    /// The followed file, kept open so that after a rotation its rest can be read.
    held: Option<(File, FileId)>,
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
            held: None,
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

/// Reads lines from `offset` on, at most `budget` bytes and until `until`; returns the
/// offset after the last whole line and whether the end of the file was reached. At the
/// end, an unfinished last line is taken too when `flush` (a rotated file grows no
/// more).
fn read_lines(
    file: &mut File,
    offset: u64,
    budget: u64,
    until: Instant,
    flush: bool,
    scan: &mut Scan<'_>,
) -> io::Result<(u64, bool)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut consumed = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut read_total = 0u64;
    loop {
        if read_total >= budget || Instant::now() >= until {
            return Ok((offset + consumed, false));
        }
        let want =
            usize::try_from((budget - read_total).min(chunk.len() as u64)).unwrap_or(chunk.len());
        let n = match file.read(&mut chunk[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if flush && !pending.is_empty() {
                scan.line(&pending);
                consumed += pending.len() as u64;
            }
            return Ok((offset + consumed, true));
        }
        read_total += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(at) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + at];
            if line.is_empty() {
                scan.line(line);
            }
            // Cut where an unfinished line would have been cut: the same pieces however
            // the reads fall.
            for piece in line.chunks(MAX_LINE) {
                scan.line(piece);
            }
            start += at + 1;
        }
        consumed += start as u64;
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            scan.line(&pending[..MAX_LINE]);
            consumed += MAX_LINE as u64;
            pending.drain(..MAX_LINE);
        }
    }
}

/// The file in `dir` with identity `id` and the same first bytes, if there is one (a
/// rotated log).
fn find_by_id(dir: &Path, id: FileId, head: Option<(u64, u64)>) -> Option<(File, PathBuf)> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && FileId::of(&meta) == id {
            let path = entry.path();
            let mut file = File::open(&path).ok()?;
            if let Some((len, hash)) = head
                && head_of(&mut file, len).ok() != Some((len, hash))
            {
                return None;
            }
            return Some((file, path));
        }
    }
    None
}

/// Length and FNV-1a hash of a file's first `len` bytes (fewer if it is shorter).
fn head_of(file: &mut File, len: u64) -> io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok((bytes.len() as u64, hash))
}

impl Probe for LogProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let until = Instant::now() + timeout.mul_f64(0.8);
        let mut notes = Vec::new();
        let key = self.source.key();
        let mut saved = match self.saved.take() {
            Some(saved) => saved,
            None => match load(&self.state_file) {
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
        let followed = match self.source.clone() {
            Source::File(path) => self.follow_file(&path, &mut saved, &mut scan, until, &mut notes),
            Source::Journal {
                unit,
                command,
                runtime_dir,
            } => self.follow_journal(
                &unit,
                &command,
                &runtime_dir,
                &mut saved,
                &mut scan,
                until,
                &mut notes,
            ),
        };
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
    fn follow_file(
        &mut self,
        path: &Path,
        saved: &mut Saved,
        scan: &mut Scan<'_>,
        until: Instant,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        let current = match std::fs::metadata(path) {
            Ok(meta) => Some((FileId::of(&meta), meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(format!(
                    "cannot read {}: {}",
                    path.display(),
                    net::io_text(&e)
                ));
            }
        };
        let missing = || format!("{} does not exist", path.display());
        let mut budget = self.max_read;
        let Some((id, offset)) = saved.file else {
            // The first run ever: start at the end, or at the start if asked to.
            let (id, len) = current.ok_or_else(missing)?;
            let file = File::open(path)
                .map_err(|e| format!("cannot open {}: {}", path.display(), net::io_text(&e)))?;
            let start = if self.from_beginning { 0 } else { len };
            self.held = Some((file, id));
            saved.file = Some((id, start));
            return self.read_held(path, saved, scan, until, budget);
        };
        if current.map(|c| c.0) == Some(id) {
            let len = current.map_or(0, |c| c.1);
            if self.held.as_ref().is_none_or(|h| h.1 != id) {
                let file = File::open(path)
                    .map_err(|e| format!("cannot open {}: {}", path.display(), net::io_text(&e)))?;
                self.held = Some((file, id));
            }
            if len < offset {
                notes.push(format!(
                    "{} was truncated: reading it from the start",
                    path.display()
                ));
                saved.file = Some((id, 0));
            } else if let (Some((file, _)), Some((head_len, hash))) =
                (self.held.as_mut(), saved.head)
                && head_of(file, head_len).ok() != Some((head_len, hash))
            {
                notes.push(format!(
                    "{} starts differently (truncated and rewritten, or a new file on a reused inode): reading it from the start",
                    path.display()
                ));
                saved.file = Some((id, 0));
            }
            return self.read_held(path, saved, scan, until, budget);
        }
        // The path names another file now, or none: finish the old one first.
        let old = match self.held.take() {
            Some((file, held)) if held == id => Some((file, None)),
            _ => path
                .parent()
                .and_then(|dir| find_by_id(dir, id, saved.head))
                .map(|(file, p)| (file, Some(p))),
        };
        match old {
            Some((mut file, found_at)) => {
                let (end, eof) = read_lines(&mut file, offset, budget, until, true, scan)
                    .map_err(|e| format!("cannot read the rotated file: {}", net::io_text(&e)))?;
                budget = budget.saturating_sub(end - offset);
                saved.file = Some((id, end));
                let place = found_at.map(|p| format!(" ({})", p.display())).unwrap_or_default();
                if !eof {
                    // More of the old file next run; keep it open.
                    self.held = Some((file, id));
                    notes.push(format!("{} was rotated: still reading the old file{place}", path.display()));
                    return Ok(());
                }
                notes.push(format!("{} was rotated: finished the old file{place}", path.display()));
            }
            None => notes.push(format!(
                "{} was rotated and the old file is gone: lines written to it after the last run are not counted",
                path.display()
            )),
        }
        let (new_id, _) = current.ok_or_else(missing)?;
        let file = File::open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), net::io_text(&e)))?;
        self.held = Some((file, new_id));
        saved.file = Some((new_id, 0));
        self.read_held(path, saved, scan, until, budget)
    }

    /// Reads the held file from the saved offset.
    fn read_held(
        &mut self,
        path: &Path,
        saved: &mut Saved,
        scan: &mut Scan<'_>,
        until: Instant,
        budget: u64,
    ) -> Result<(), String> {
        let (Some((file, id)), Some((_, offset))) = (self.held.as_mut(), saved.file) else {
            return Ok(());
        };
        let (end, _) = read_lines(file, offset, budget, until, false, scan)
            .map_err(|e| format!("cannot read {}: {}", path.display(), net::io_text(&e)))?;
        saved.file = Some((*id, end));
        saved.head = head_of(file, HEAD_LEN).ok();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn follow_journal(
        &mut self,
        unit: &str,
        command: &[OsString],
        runtime_dir: &Path,
        saved: &mut Saved,
        scan: &mut Scan<'_>,
        until: Instant,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        if !runtime_dir.is_dir() {
            return Err(format!(
                "journald is not running on this host (no {}): follow the unit's log file with `path` instead",
                runtime_dir.display()
            ));
        }
        // Without a cursor, only the latest entry's cursor is taken: nothing old counts.
        // A unit without entries then is read from that time on.
        let seek_only = saved.cursor.is_none() && saved.since.is_none() && !self.from_beginning;
        let started_at = net::unix_now();
        let run = run_journalctl(command, unit, saved, seek_only, self.max_read, until)?;
        let cursor = scan_entries(&run.lines, scan, seek_only);
        match cursor {
            Some(c) => {
                saved.cursor = Some(c);
                saved.since = None;
            }
            None if seek_only && run.status.is_some_and(|s| s.success()) => {
                saved.since = Some(started_at);
            }
            None => {}
        }
        if run.timed_out {
            notes.push("journalctl did not finish in time: the rest waits for the next run".into());
        }
        journal_outcome(&run, saved, notes)
    }
}

/// What one `journalctl` run gave.
struct JournalRun {
    /// Its exit status; `None` when it was killed at the deadline or could not be waited for.
    status: Option<std::process::ExitStatus>,
    timed_out: bool,
    /// Whole lines of its stdout, at most `max_read` bytes.
    lines: Vec<Vec<u8>>,
    /// Its first non-empty line of stderr.
    first_error: Option<String>,
}

/// Runs `journalctl` for `unit` from where `saved` left off, reading its output on
/// threads of their own, and kills it at `until`.
fn run_journalctl(
    command: &[OsString],
    unit: &str,
    saved: &Saved,
    seek_only: bool,
    max_read: u64,
    until: Instant,
) -> Result<JournalRun, String> {
    let Some((program, prefix)) = command.split_first() else {
        return Err("no journalctl command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(prefix)
        .args(["--unit", unit, "--output", "json", "--no-pager"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match (&saved.cursor, saved.since) {
        (Some(cursor), _) => {
            cmd.arg("--after-cursor").arg(cursor);
        }
        (None, Some(since)) => {
            cmd.arg("--since").arg(format!("@{since}"));
        }
        (None, None) if seek_only => {
            cmd.args(["--lines", "1"]);
        }
        (None, None) => {}
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!(
                "{} not found: journald units need journalctl",
                program.to_string_lossy()
            )
        } else {
            format!(
                "cannot run {}: {}",
                program.to_string_lossy(),
                net::io_text(&e)
            )
        }
    })?;
    let stdout = child.stdout.take();
    let reader =
        std::thread::spawn(move || stdout.map(|s| whole_lines(s, max_read)).unwrap_or_default());
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr {
            let _ = stderr.take(4096).read_to_string(&mut text);
        }
        text
    });
    let (status, timed_out) = wait_until(&mut child, until);
    let first_error = errors
        .join()
        .unwrap_or_default()
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string);
    Ok(JournalRun {
        status,
        timed_out,
        lines: reader.join().unwrap_or_default(),
        first_error,
    })
}

/// The whole lines of `input`, up to `max_read` bytes; an unfinished last line is left.
fn whole_lines(input: impl Read, max_read: u64) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut total = 0u64;
    let mut reader = BufReader::new(input.take(max_read));
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                if line.last() == Some(&b'\n') {
                    lines.push(line);
                }
                if total >= max_read {
                    break;
                }
            }
        }
    }
    lines
}

/// Waits for `child` until `until`, then kills it; returns its status (`None` when
/// killed or not waitable) and whether it was killed.
fn wait_until(
    child: &mut std::process::Child,
    until: Instant,
) -> (Option<std::process::ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return (None, false),
        }
    }
}

/// Matches the message of every journal entry (unless `seek_only`); returns the cursor
/// of the last entry.
fn scan_entries(lines: &[Vec<u8>], scan: &mut Scan<'_>, seek_only: bool) -> Option<String> {
    let mut cursor = None;
    for line in lines {
        let Ok(entry) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(c) = entry.get("__CURSOR").and_then(|c| c.as_str()) {
            cursor = Some(c.to_string());
        }
        if seek_only {
            continue;
        }
        match entry.get("MESSAGE") {
            Some(serde_json::Value::String(s)) => scan.line(s.as_bytes()),
            // journald keeps a message that is not UTF-8 as an array of bytes.
            Some(serde_json::Value::Array(bytes)) => {
                let bytes: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                scan.line(&bytes);
            }
            _ => {}
        }
    }
    cursor
}

/// A failed run that gave nothing is the run's error; otherwise its stderr is a note.
fn journal_outcome(
    run: &JournalRun,
    saved: &mut Saved,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    match run.status {
        Some(s) if !s.success() && run.lines.is_empty() => {
            if saved.cursor.is_some()
                && run
                    .first_error
                    .as_deref()
                    .is_some_and(|e| e.contains("cursor"))
            {
                // The journal no longer has that entry: seek to the end next time.
                saved.cursor = None;
            }
            Err(format!(
                "journalctl failed ({s}): {}",
                run.first_error.as_deref().unwrap_or("no message")
            ))
        }
        _ => {
            if let Some(e) = &run.first_error {
                notes.push(format!("journalctl: {e}"));
            }
            Ok(())
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

fn load(path: &Path) -> Result<Option<Saved>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {}", path.display(), net::io_text(&e))),
    }
}

/// Writes the state beside its place and renames it there: all or nothing.
fn store(path: &Path, saved: &Saved) -> Result<(), String> {
    let fail = |e: io::Error| format!("{}: {}", path.display(), net::io_text(&e));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let bytes = serde_json::to_vec(saved).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(fail)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::fs::OpenOptions;

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
            load(&dir.path().join("state/log-app.json"))
                .expect("load")
                .is_some()
        );
    }

    #[test]
    fn journald_absent_is_unknown_with_the_reason() {
        let dir = TempDir::new("log-nojournal");
        let r = probe(&dir, "unit = \"nginx.service\"").run(T);
        let journald = Path::new("/run/systemd/journal").is_dir();
        if journald {
            // A host with journald: the unit simply has no new lines (or access is refused).
            assert!(
                matches!(r.state, CheckState::Ok | CheckState::Unknown),
                "{}",
                r.output
            );
        } else {
            assert_eq!(r.state, CheckState::Unknown);
            assert!(
                r.output
                    .starts_with("journald is not running on this host (no /run/systemd/journal)"),
                "{}",
                r.output
            );
        }
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

    #[test]
    fn a_journal_is_followed_by_cursor_across_restarts() {
        let dir = TempDir::new("log-journal");
        let script = dir.path().join("journalctl.sh");
        let args = dir.path().join("args");
        std::fs::write(
            &script,
            format!(
                "echo \"$@\" >> '{}'\n\
                 case \"$*\" in\n\
                 *quiet.service*--lines*) ;;\n\
                 *quiet.service*--since\\ @*) printf '%s\\n' '{{\"__CURSOR\":\"q1\",\"MESSAGE\":\"ERROR first words\"}}' ;;\n\
                 *--after-cursor\\ c2*) printf '%s\\n' '{{\"__CURSOR\":\"c3\",\"MESSAGE\":\"ERROR three\"}}' '{{\"__CURSOR\":\"c4\",\"MESSAGE\":[87,65,82,78,32,255]}}' ;;\n\
                 *--after-cursor\\ c4*) ;;\n\
                 *--lines*) printf '%s\\n' '{{\"__CURSOR\":\"c2\",\"MESSAGE\":\"ERROR old, not counted\"}}' ;;\n\
                 *) echo 'unexpected' >&2; exit 1 ;;\n\
                 esac\n",
                args.display()
            ),
        )
        .expect("script");
        let fake = |dir: &TempDir, unit: &str| {
            let mut p = probe(dir, &format!("unit = \"{unit}\""));
            if let Source::Journal {
                command,
                runtime_dir,
                ..
            } = &mut p.source
            {
                *command = vec!["/bin/sh".into(), script.clone().into()];
                *runtime_dir = dir.path().to_path_buf();
            }
            p
        };
        let mut p = fake(&dir, "app.service");
        let r = p.run(T);
        assert_eq!(
            (r.state, total(&r, "error")),
            (CheckState::Ok, 0.0),
            "{} / {}",
            r.output,
            r.long_output
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
        drop(p);
        let r = fake(&dir, "app.service").run(T);
        assert_eq!((r.state, lines(&r)), (CheckState::Ok, 2.0), "{}", r.output);
        let calls = std::fs::read_to_string(&args).expect("args");
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(
            calls,
            [
                "--unit app.service --output json --no-pager --lines 1",
                "--unit app.service --output json --no-pager --after-cursor c2",
                "--unit app.service --output json --no-pager --after-cursor c4",
            ]
        );

        // A unit with no entries yet: its first ever message still counts.
        let other = TempDir::new("log-journal-quiet");
        let mut p = fake(&other, "quiet.service");
        assert_eq!(p.run(T).state, CheckState::Ok);
        let r = p.run(T);
        assert_eq!(r.output, "1 new line(s) match error: ERROR first words");
        let calls = std::fs::read_to_string(&args).expect("args");
        let last: Vec<&str> = calls.lines().skip(3).collect();
        assert_eq!(last.len(), 2, "{calls}");
        assert!(
            last[1].starts_with("--unit quiet.service --output json --no-pager --since @"),
            "{calls}"
        );
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
