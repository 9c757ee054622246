//! `/proc/loadavg`: run-queue averages.
//!
//! Format (proc(5)): one line, `1min 5min 15min runnable/total last_pid`; only the three
//! averages are read.

use super::{quote, read_text};
use crate::{Error, LoadAvg, ParseError, Roots};

/// Reads and parses `loadavg` under `roots.proc`.
pub fn read_loadavg(roots: &Roots) -> Result<LoadAvg, Error> {
    let path = roots.proc.join(LoadAvg::FILE);
    let text = read_text(&path)?;
    parse_loadavg(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of `/proc/loadavg`.
///
/// The file is one line, so there is nothing to skip: any fault in the three averages
/// fails the whole parse. Averages must be finite and not negative.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    let mut fields = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_ascii_whitespace();
    let mut average = |what: &str| -> Result<f64, ParseError> {
        let field = fields
            .next()
            .ok_or_else(|| ParseError::new(1, format!("no {what} load average")))?;
        match field.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
            _ => Err(ParseError::new(
                1,
                format!(
                    "{what} load average {} is not a non-negative number",
                    quote(field)
                ),
            )),
        }
    };
    Ok(LoadAvg {
        one: average("1-minute")?,
        five: average("5-minute")?,
        fifteen: average("15-minute")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, fixture_roots, mutated};
    use proptest::prelude::*;

    /// node_exporter's `proc/loadavg` fixture.
    const FIXTURE: &str = "0.21 0.37 0.39 1/719 19737\n";

    #[test]
    fn parses_the_fixture() {
        let load = parse_loadavg(FIXTURE).expect("fixture parses");
        assert_eq!(
            load,
            LoadAvg {
                one: 0.21,
                five: 0.37,
                fifteen: 0.39
            }
        );
    }

    #[test]
    fn the_trailing_fields_are_optional() {
        let load = parse_loadavg("1 2.5 3").expect("parses");
        assert_eq!((load.one, load.five, load.fifteen), (1.0, 2.5, 3.0));
    }

    #[test]
    fn faults_name_the_average() {
        let cases = [
            ("", "no 1-minute"),
            ("0.1 0.2\n", "no 15-minute"),
            ("0.1 x 0.3\n", "5-minute load average \"x\""),
            ("-1 0.2 0.3\n", "1-minute load average \"-1\""),
            ("0.1 NaN 0.3\n", "5-minute load average \"NaN\""),
            ("0.1 0.2 inf\n", "15-minute load average \"inf\""),
        ];
        for (text, expected) in cases {
            let error = parse_loadavg(text).expect_err(text);
            assert_eq!(error.line, 1);
            assert!(error.message.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let load = read_loadavg(&fixture_roots()).expect("fixture reads");
        assert_eq!(load, parse_loadavg(FIXTURE).expect("fixture parses"));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_the_path() {
        let dir = TempDir::new("loadavg-missing");
        match read_loadavg(&dir.roots()) {
            Err(Error::Read { path, .. }) => assert_eq!(path, dir.path().join("loadavg")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_file_is_a_parse_error_naming_the_path() {
        let dir = TempDir::new("loadavg-garbage");
        std::fs::write(dir.path().join("loadavg"), "busy\n").expect("write fixture");
        let error = read_loadavg(&dir.roots()).expect_err("garbage");
        let message = error.to_string();
        assert!(message.contains("loadavg line 1"), "{message}");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            if let Ok(load) = parse_loadavg(&text) {
                for value in [load.one, load.five, load.fifteen] {
                    prop_assert!(value.is_finite() && value >= 0.0);
                }
            }
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let _ = parse_loadavg(&text);
        }
    }
}
