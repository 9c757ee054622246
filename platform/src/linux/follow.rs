//! Following a growing log file as `tail -F` does, from a position saved between runs.
//!
//! The file is identified by device and inode, and by a hash of its first bytes:
//! - *rotation by rename*: the path names a new inode; the rest of the old file is read
//!   first (from the descriptor still open, or after a restart by finding the old inode
//!   in the same directory), then the new file from its start;
//! - *truncation*: the file is shorter than the position, or starts differently (a
//!   reused inode): it is read again from its start;
//! - *first run*: starts at the end of the file, or at its start when asked.
//!
//! Lines are handed to the caller one by one, without their `\n`; a line longer than
//! [`MAX_LINE`] is cut into pieces of that size, each handed as a line, cut where an
//! unfinished line would have been cut, so the pieces are the same however reads fall.
//! An unfinished last line waits for its line break, except at the end of a rotated file,
//! which grows no more.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The longest line handed over whole.
pub const MAX_LINE: usize = 64 * 1024;

/// Bytes at the start of a file whose hash tells a file from another on the same inode.
const HEAD_LEN: u64 = 1024;

/// Entries of a directory searched for a rotated file.
const MAX_DIR_ENTRIES: usize = 10_000;

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
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

/// Where reading a file goes on: what a caller saves between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The file and the offset of the first byte not yet read.
    pub file: Option<(FileId, u64)>,
    /// Length and FNV-1a hash of the file's first bytes (at most 1 KiB): an inode that
    /// now holds other content (reused after a delete, or truncated and written past the
    /// old position) starts differently.
    #[serde(default)]
    pub head: Option<(u64, u64)>,
}

/// Follows one path across runs, keeping the followed file open so that after a
/// rotation its rest can be read.
pub struct FileFollower {
    path: PathBuf,
    from_beginning: bool,
    max_read: u64,
    held: Option<(File, FileId)>,
}

/// Where one run's lines go and what it notes.
pub struct Sink<'a> {
    /// Called with each line.
    pub line: &'a mut dyn FnMut(&[u8]),
    /// What the run has to say besides the lines (a rotation, a truncation).
    pub notes: &'a mut Vec<String>,
}

impl FileFollower {
    /// Follows `path` (absolute), reading at most `max_read` bytes per run.
    pub fn new(path: PathBuf, from_beginning: bool, max_read: u64) -> Self {
        Self {
            path,
            from_beginning,
            max_read,
            held: None,
        }
    }

    /// Reads what was written since `pos`, until `until`, and moves `pos` past it.
    pub fn follow(
        &mut self,
        pos: &mut FilePosition,
        until: Instant,
        sink: &mut Sink<'_>,
    ) -> Result<(), String> {
        let path = self.path.clone();
        let current = match std::fs::metadata(&path) {
            Ok(meta) => Some((FileId::of(&meta), meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {}", path.display(), io_text(&e))),
        };
        let missing = || format!("{} does not exist", path.display());
        let Some((id, offset)) = pos.file else {
            // The first run ever: start at the end, or at the start if asked to.
            let (id, len) = current.ok_or_else(missing)?;
            let start = if self.from_beginning { 0 } else { len };
            self.held = Some((open(&path)?, id));
            pos.file = Some((id, start));
            return self.read_held(pos, until, self.max_read, sink);
        };
        if current.map(|c| c.0) == Some(id) {
            self.restart_if_rewritten(pos, id, current.map_or(0, |c| c.1), offset, sink)?;
            return self.read_held(pos, until, self.max_read, sink);
        }
        // The path names another file now, or none: finish the old one first.
        let Some(budget) = self.finish_rotated(pos, id, offset, until, sink)? else {
            return Ok(());
        };
        let (new_id, _) = current.ok_or_else(missing)?;
        self.held = Some((open(&path)?, new_id));
        pos.file = Some((new_id, 0));
        self.read_held(pos, until, budget, sink)
    }

    /// The path still names the file at `pos`: read it again from its start when it was
    /// truncated or rewritten.
    fn restart_if_rewritten(
        &mut self,
        pos: &mut FilePosition,
        id: FileId,
        len: u64,
        offset: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), String> {
        if self.held.as_ref().is_none_or(|h| h.1 != id) {
            self.held = Some((open(&self.path)?, id));
        }
        let path = self.path.display();
        if len < offset {
            sink.notes
                .push(format!("{path} was truncated: reading it from the start"));
            pos.file = Some((id, 0));
        } else if let (Some((file, _)), Some((head_len, hash))) = (self.held.as_mut(), pos.head)
            && head_of(file, head_len).ok() != Some((head_len, hash))
        {
            sink.notes.push(format!(
                "{path} starts differently (truncated and rewritten, or a new file on a reused inode): reading it from the start"
            ));
            pos.file = Some((id, 0));
        }
        Ok(())
    }

    /// Reads the rest of the rotated file at `pos`; returns the budget left for the new
    /// file, or `None` when the old one is not finished yet (it is kept open).
    fn finish_rotated(
        &mut self,
        pos: &mut FilePosition,
        id: FileId,
        offset: u64,
        until: Instant,
        sink: &mut Sink<'_>,
    ) -> Result<Option<u64>, String> {
        let path = self.path.display().to_string();
        let old = match self.held.take() {
            Some((file, held)) if held == id => Some((file, None)),
            _ => self
                .path
                .parent()
                .and_then(|dir| find_by_id(dir, id, pos.head))
                .map(|(file, p)| (file, Some(p))),
        };
        let Some((mut file, found_at)) = old else {
            sink.notes.push(format!(
                "{path} was rotated and the old file is gone: lines written to it after the last run are not counted"
            ));
            return Ok(Some(self.max_read));
        };
        let (end, eof) = read_lines(&mut file, offset, self.max_read, until, true, sink.line)
            .map_err(|e| format!("cannot read the rotated file: {}", io_text(&e)))?;
        pos.file = Some((id, end));
        let place = found_at
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default();
        if !eof {
            // More of the old file next run; keep it open.
            self.held = Some((file, id));
            sink.notes.push(format!(
                "{path} was rotated: still reading the old file{place}"
            ));
            return Ok(None);
        }
        sink.notes
            .push(format!("{path} was rotated: finished the old file{place}"));
        Ok(Some(self.max_read.saturating_sub(end - offset)))
    }

    /// Reads the held file from the saved offset.
    fn read_held(
        &mut self,
        pos: &mut FilePosition,
        until: Instant,
        budget: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), String> {
        let (Some((file, id)), Some((_, offset))) = (self.held.as_mut(), pos.file) else {
            return Ok(());
        };
        let (end, _) = read_lines(file, offset, budget, until, false, sink.line)
            .map_err(|e| format!("cannot read {}: {}", self.path.display(), io_text(&e)))?;
        pos.file = Some((*id, end));
        pos.head = head_of(file, HEAD_LEN).ok();
        Ok(())
    }
}

fn open(path: &Path) -> Result<File, String> {
    File::open(path).map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))
}

/// An OS error without its `(os error N)` suffix, lower case: a sentence for an output.
fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
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
    line: &mut dyn FnMut(&[u8]),
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
                line(&pending);
                consumed += pending.len() as u64;
            }
            return Ok((offset + consumed, true));
        }
        read_total += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        consumed += hand_over_lines(&mut pending, line);
    }
}

/// Hands over the whole lines of `pending` and the pieces of [`MAX_LINE`] of an
/// unfinished one, removes them, and returns how many bytes that took.
fn hand_over_lines(pending: &mut Vec<u8>, line: &mut dyn FnMut(&[u8])) -> u64 {
    let mut start = 0;
    while let Some(at) = pending[start..].iter().position(|&b| b == b'\n') {
        let whole = &pending[start..start + at];
        if whole.is_empty() {
            line(whole);
        }
        // Cut where an unfinished line would have been cut: the same pieces however
        // the reads fall.
        for piece in whole.chunks(MAX_LINE) {
            line(piece);
        }
        start += at + 1;
    }
    pending.drain(..start);
    let mut taken = start as u64;
    while pending.len() >= MAX_LINE {
        line(&pending[..MAX_LINE]);
        taken += MAX_LINE as u64;
        pending.drain(..MAX_LINE);
    }
    taken
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The lines `bytes` gives when read in pieces of the sizes in `splits` (cycled).
    fn lines_in_pieces(bytes: &[u8], splits: &[usize]) -> (Vec<Vec<u8>>, u64) {
        let mut lines = Vec::new();
        let mut pending = Vec::new();
        let mut taken = 0;
        let mut rest = bytes;
        let mut turn = 0;
        while !rest.is_empty() {
            let n = splits
                .get(turn % splits.len().max(1))
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            turn += 1;
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            pending.extend_from_slice(piece);
            taken += hand_over_lines(&mut pending, &mut |l: &[u8]| lines.push(l.to_vec()));
        }
        (lines, taken)
    }

    #[test]
    fn long_lines_are_cut_and_empty_lines_kept() {
        let mut text = vec![b'x'; MAX_LINE + 3];
        text.extend_from_slice(b"\n\nab\ncd");
        let (lines, taken) = lines_in_pieces(&text, &[]);
        let sizes: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_LINE, 3, 0, 2]);
        assert_eq!(taken, text.len() as u64 - 2, "the unfinished `cd` waits");
    }

    proptest! {
        #[test]
        fn the_lines_do_not_depend_on_how_reads_fall(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..4096),
            splits in proptest::collection::vec(1usize..700, 1..6),
        ) {
            prop_assert_eq!(lines_in_pieces(&bytes, &splits), lines_in_pieces(&bytes, &[]));
        }
    }
}
