//! What the database collectors share (`postgres` and `mysql`): their
//! own small runtime, the deadline of one run, passwords read from files, values read
//! from text, and the counter of objects left out past a limit.
//!
//! Both drivers are asynchronous (tokio), while a collector is synchronous and runs on
//! the agent's collector thread or its blocking pool. Each collector therefore owns a
//! current-thread runtime, built on its first run (a collector without servers never
//! builds one) and kept: it starts no thread, and the connections it holds stay open
//! between runs and are only driven while a run waits on them. Every server of a run is
//! queried concurrently on it, each bounded by the run's budget, so one server that hangs
//! costs the others nothing and the run ends by its deadline.

#[cfg(feature = "postgres")]
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "postgres")]
use crate::{Kind, Sample};

/// Builds the runtime a database collector drives its connections on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| format!("cannot start the collector's runtime: {error}"))
}

/// The password in `path`: the file's text without its final line break, so that a file
/// written by `echo` works.
pub(crate) fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read password_file {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// A number from a value sent as text: `None` for SQL NULL or an empty value; an error
/// naming the column for anything that is not a number.
pub(crate) fn number(column: &str, value: Option<&str>) -> Result<Option<f64>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("t" | "true" | "ON" | "On" | "on" | "Yes" | "YES") => Ok(Some(1.0)),
        Some("f" | "false" | "OFF" | "Off" | "off" | "No" | "NO") => Ok(Some(0.0)),
        Some(text) => text
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("column {column}: {text:?} is not a number")),
    }
}

#[cfg(feature = "postgres")]
/// Cuts `text` to at most `max` bytes at a character boundary, with every run of
/// white space made one space: a statement's text as a label value.
pub(crate) fn label_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for word in text.split_whitespace() {
        let space = usize::from(!out.is_empty());
        if out.len() + space >= max {
            break;
        }
        if space == 1 {
            out.push(' ');
        }
        for c in word.chars() {
            if out.len() + c.len_utf8() > max {
                return out;
            }
            out.push(c);
        }
    }
    out
}

/// Objects left out past a limit, per kind (`databases`, `statements`, ...), counted
/// over the collector's life and sent as a counter so that an operator sees a limit is
/// too low.
#[cfg(feature = "postgres")]
#[derive(Debug, Default)]
pub(crate) struct Dropped(BTreeMap<&'static str, u64>);

#[cfg(feature = "postgres")]
impl Dropped {
    /// Counts `n` more objects of `kind` left out.
    pub(crate) fn add(&mut self, kind: &'static str, n: u64) {
        *self.0.entry(kind).or_default() += n;
    }

    /// One sample per kind ever dropped, named `metric`, labelled `server` and `kind`.
    pub(crate) fn samples(&self, metric: &'static str, server: &str) -> Vec<Sample> {
        self.0
            .iter()
            .map(|(kind, n)| {
                Sample::new(metric, Kind::Counter, *n as f64)
                    .label("server", server)
                    .label("kind", *kind)
            })
            .collect()
    }
}

/// The shortest of the run's remaining budget and `limit`: the time a connection attempt
/// or a query may take.
pub(crate) fn within(deadline: tokio::time::Instant, limit: Duration) -> Duration {
    deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_text_and_null_is_none() {
        assert_eq!(number("a", Some("12")), Ok(Some(12.0)));
        assert_eq!(number("a", Some("-1.5e3")), Ok(Some(-1500.0)));
        assert_eq!(
            number("a", Some("123456789012345678")),
            Ok(Some(1.2345678901234568e17))
        );
        assert_eq!(number("a", Some("t")), Ok(Some(1.0)));
        assert_eq!(number("a", Some("OFF")), Ok(Some(0.0)));
        assert_eq!(number("a", None), Ok(None));
        assert_eq!(number("a", Some("")), Ok(None));
        assert_eq!(
            number("xact_commit", Some("lots")),
            Err("column xact_commit: \"lots\" is not a number".to_owned())
        );
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn label_text_collapses_space_and_cuts_at_a_character() {
        assert_eq!(
            label_text("SELECT  *\n\tFROM t  WHERE a = $1", 100),
            "SELECT * FROM t WHERE a = $1"
        );
        assert_eq!(label_text("SELECT * FROM t", 10), "SELECT * F");
        assert_eq!(label_text("ééééé", 5), "éé");
        assert_eq!(label_text("   ", 5), "");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn dropped_objects_add_up_per_kind() {
        let mut dropped = Dropped::default();
        assert!(dropped.samples("m", "s").is_empty());
        dropped.add("databases", 2);
        dropped.add("databases", 3);
        dropped.add("statements", 1);
        let samples = dropped.samples("m", "main");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].value, 5.0);
        assert_eq!(
            samples[0].labels,
            [
                ("server".into(), "main".into()),
                ("kind".into(), "databases".into())
            ]
        );
        assert_eq!(samples[1].value, 1.0);
    }

    #[test]
    fn a_password_file_loses_its_final_line_break_only() {
        let dir = std::env::temp_dir().join(format!("sysward-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("pw");
        std::fs::write(&path, " se cret \n").expect("write");
        assert_eq!(read_password(&path), Ok(" se cret ".to_owned()));
        let missing = read_password(&dir.join("none")).expect_err("missing");
        assert!(
            missing.starts_with("cannot read password_file "),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
