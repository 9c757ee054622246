//! Following a journald unit across runs: `journalctl --unit UNIT --output json
//! --cursor CURSOR`, from a cursor saved between runs.
//!
//! Without a cursor the first run only takes the latest entry's cursor (nothing old is
//! handed over) unless asked to read from the beginning; a unit without entries then
//! is read from that time on (`--since`). Where journald is not running (no
//! `/run/systemd/journal`, as in most containers) or `journalctl` is missing, a run is an
//! error that says so. `journalctl` is killed at the run's deadline and the rest waits
//! for the next run.
//!
//! The saved entry is asked for with `--cursor` (from it on) and left out here, not with
//! `--after-cursor`: journalctl seeks to the entry nearest a cursor whose entry is gone
//! (vacuumed, or journal files replaced) and `--after-cursor` then skips that nearest
//! entry unseen, although it is a new one. So the first entry is handed over unless it
//! is the saved one, and a note says when the saved entry was gone. A cursor journalctl
//! rejects outright fails the run; the next run starts at the end of the journal.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::follow::Sink;

/// Where reading a unit's journal goes on: what a caller saves between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalPosition {
    /// The journal cursor of the last entry read.
    pub cursor: Option<String>,
    /// Without a cursor: the unit had no entries at this Unix time, so the next run
    /// reads those since then.
    #[serde(default)]
    pub since: Option<i64>,
}

/// Follows one unit's journal.
pub struct JournalFollower {
    unit: String,
    /// The command: `journalctl`, or a stand-in in tests.
    command: Vec<OsString>,
    /// journald's runtime directory, whose presence says it runs.
    runtime_dir: PathBuf,
    from_beginning: bool,
    max_read: u64,
}

impl JournalFollower {
    /// Follows `unit` with `command` (`journalctl` and any arguments before ours),
    /// reading at most `max_read` bytes of its output per run.
    pub fn new(
        unit: String,
        command: Vec<OsString>,
        runtime_dir: PathBuf,
        from_beginning: bool,
        max_read: u64,
    ) -> Self {
        Self {
            unit,
            command,
            runtime_dir,
            from_beginning,
            max_read,
        }
    }

    /// Reads the entries written since `pos`, until `until`, and moves `pos` past them.
    pub fn follow(
        &self,
        pos: &mut JournalPosition,
        until: Instant,
        sink: &mut Sink<'_>,
    ) -> Result<(), String> {
        if !self.runtime_dir.is_dir() {
            return Err(format!(
                "journald is not running on this host (no {}): follow the unit's log file with `path` instead",
                self.runtime_dir.display()
            ));
        }
        // Without a cursor, only the latest entry's cursor is taken: nothing old counts.
        // A unit without entries then is read from that time on.
        let seek_only = pos.cursor.is_none() && pos.since.is_none() && !self.from_beginning;
        let started_at = unix_now();
        let run = run_journalctl(
            &self.command,
            &self.unit,
            pos,
            seek_only,
            self.max_read,
            until,
        )?;
        let scanned = scan_entries(&run.lines, sink.line, seek_only, pos.cursor.as_deref());
        if scanned.saved_entry_gone {
            sink.notes.push(
                "the saved journal position is no longer in the journal (rotated or vacuumed \
                 away): read on from the entry nearest to it"
                    .into(),
            );
        }
        match scanned.cursor {
            Some(c) => {
                pos.cursor = Some(c);
                pos.since = None;
            }
            None if seek_only && run.status.is_some_and(|s| s.success()) => {
                pos.since = Some(started_at);
            }
            None => {}
        }
        if run.timed_out {
            sink.notes
                .push("journalctl did not finish in time: the rest waits for the next run".into());
        }
        journal_outcome(&run, pos, sink.notes)
    }
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// An OS error without its `(os error N)` suffix, lower case: a sentence for an output.
fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
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
    pos: &JournalPosition,
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
    match (&pos.cursor, pos.since) {
        (Some(cursor), _) => {
            cmd.arg("--cursor").arg(cursor);
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
            format!("cannot run {}: {}", program.to_string_lossy(), io_text(&e))
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

/// What [`scan_entries`] found.
#[derive(Debug, Default, PartialEq)]
struct Scanned {
    /// The cursor of the last entry.
    cursor: Option<String>,
    /// The first entry was not the one at the saved cursor: that one is gone.
    saved_entry_gone: bool,
}

/// Hands over the message of every journal entry (unless `seek_only`) but the one at
/// `saved`, the cursor the run started from, which was handed over before.
fn scan_entries(
    lines: &[Vec<u8>],
    line: &mut dyn FnMut(&[u8]),
    seek_only: bool,
    saved: Option<&str>,
) -> Scanned {
    let mut scanned = Scanned::default();
    let mut first = true;
    for text in lines {
        let Ok(entry) = serde_json::from_slice::<serde_json::Value>(text) else {
            continue;
        };
        let cursor = entry.get("__CURSOR").and_then(|c| c.as_str());
        if let Some(c) = cursor {
            scanned.cursor = Some(c.to_string());
        }
        if std::mem::take(&mut first)
            && let Some(saved) = saved
        {
            if cursor == Some(saved) {
                continue;
            }
            scanned.saved_entry_gone = true;
        }
        if seek_only {
            continue;
        }
        match entry.get("MESSAGE") {
            Some(serde_json::Value::String(s)) => line(s.as_bytes()),
            // journald keeps a message that is not UTF-8 as an array of bytes.
            Some(serde_json::Value::Array(bytes)) => {
                let bytes: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                line(&bytes);
            }
            _ => {}
        }
    }
    scanned
}

/// A failed run that gave nothing is the run's error; otherwise its stderr is a note.
fn journal_outcome(
    run: &JournalRun,
    pos: &mut JournalPosition,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    match run.status {
        Some(s) if !s.success() && run.lines.is_empty() => {
            if pos.cursor.is_some()
                && run
                    .first_error
                    .as_deref()
                    .is_some_and(|e| e.contains("cursor"))
            {
                // The journal no longer has that entry: seek to the end next time.
                pos.cursor = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(cursors: &[&str]) -> Vec<Vec<u8>> {
        cursors
            .iter()
            .map(|c| format!("{{\"__CURSOR\":\"{c}\",\"MESSAGE\":\"m{c}\"}}\n").into_bytes())
            .collect()
    }

    #[test]
    fn the_entry_at_the_saved_cursor_is_not_handed_over_again() {
        let mut seen = Vec::new();
        let scanned = scan_entries(
            &entries(&["a", "b", "c"]),
            &mut |m| seen.push(m.to_vec()),
            false,
            Some("a"),
        );
        assert_eq!(seen, [b"mb".to_vec(), b"mc".to_vec()]);
        assert_eq!(
            scanned,
            Scanned {
                cursor: Some("c".into()),
                saved_entry_gone: false
            }
        );
    }

    /// journalctl seeks to the nearest entry when the saved one is gone: that entry is new.
    #[test]
    fn a_first_entry_other_than_the_saved_one_is_new() {
        let mut seen = Vec::new();
        let scanned = scan_entries(
            &entries(&["x", "y"]),
            &mut |m| seen.push(m.to_vec()),
            false,
            Some("a"),
        );
        assert_eq!(seen, [b"mx".to_vec(), b"my".to_vec()]);
        assert!(scanned.saved_entry_gone);
        let scanned = scan_entries(&entries(&["z"]), &mut |_| {}, true, None);
        assert_eq!(scanned.cursor.as_deref(), Some("z"));
        assert!(!scanned.saved_entry_gone);
    }
}
