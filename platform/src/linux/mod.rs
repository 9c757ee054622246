//! The Linux backend: procfs text under [`Roots::proc`](crate::Roots::proc).
//!
//! Each file has a pure parser from text to a typed reading and a reader that finds the
//! file under the roots, reads it and parses it, naming the path in any error. Parsers
//! never panic: they skip what they cannot understand, list it in the reading's
//! `skipped` field, and fail as a whole only when the text holds nothing usable.

use std::fs;
use std::path::Path;

use crate::Error;

mod loadavg;
mod meminfo;
mod stat;

pub use loadavg::{parse_loadavg, read_loadavg};
pub use meminfo::{parse_meminfo, read_meminfo};
pub use stat::{parse_stat, read_stat};

/// Reads a whole procfs file as text.
fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // procfs text is ASCII; a stray invalid byte should cost the one line it is on (the
    // parser skips it), not the whole file.
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    })
}

/// Quotes untrusted text for an error message, cut short so that one wild line cannot
/// flood the logs.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let head: String = text.chars().take(MAX_CHARS).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_and_cuts_long_text() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.ends_with('…'), "{quoted}");
        assert!(quoted.len() < 50, "{quoted}");
    }

    #[test]
    fn read_text_keeps_the_valid_lines_of_a_file_with_invalid_utf8() {
        let dir = testing::TempDir::new("invalid-utf8");
        let path = dir.path().join("stat");
        fs::write(&path, b"ctxt \xff\xfe\nbtime 7\n").expect("write fixture");
        let text = read_text(&path).expect("read");
        assert!(text.ends_with("btime 7\n"), "{text:?}");
    }
}
