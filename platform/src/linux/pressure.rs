//! `/proc/pressure/*` (pressure stall information) and `/proc/vmstat`.
//!
//! A pressure file has a `some` line and, for most resources, a `full` line:
//! `some avg10=0.00 avg60=0.00 avg300=0.00 total=14036781`, `total` in microseconds.
//! `/proc/vmstat` has one `name value` pair per line.

use super::{quote, read_text};
use crate::{Error, ParseError, Pressure, PressureLine, Roots, VmStat};

/// Reads and parses `pressure/<resource>` (`cpu`, `io`, `memory`, `irq`) under
/// `roots.proc`.
pub fn read_pressure(roots: &Roots, resource: &str) -> Result<Pressure, Error> {
    let path = roots.proc.join(Pressure::DIR).join(resource);
    let text = read_text(&path)?;
    parse_pressure(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of a pressure file. Fails on any malformed line: the file is two
/// lines, and a half-read one is not worth trusting.
pub fn parse_pressure(text: &str) -> Result<Pressure, ParseError> {
    let mut pressure = Pressure::default();
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| ParseError::new(index + 1, message);
        let mut fields = line.split_ascii_whitespace();
        let Some(kind) = fields.next() else { continue };
        let slot = match kind {
            "some" => &mut pressure.some,
            "full" => &mut pressure.full,
            _ => return Err(error(format!("unknown line {}", quote(line)))),
        };
        if slot.is_some() {
            return Err(error(format!("second `{kind}` line")));
        }
        let mut parsed = PressureLine::default();
        let mut seen = 0u8;
        for field in fields {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| error(format!("{} is not key=value", quote(field))))?;
            let average = |value: &str| match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(error(format!("{key} {} is not a percentage", quote(value)))),
            };
            match key {
                "avg10" => parsed.avg10 = average(value)?,
                "avg60" => parsed.avg60 = average(value)?,
                "avg300" => parsed.avg300 = average(value)?,
                "total" => {
                    parsed.total_us = value.parse().map_err(|_| {
                        error(format!("total {} is not a whole number", quote(value)))
                    })?;
                    seen |= 1;
                }
                // Keys a future kernel may add.
                _ => {}
            }
        }
        if seen == 0 {
            return Err(error(format!("`{kind}` line has no total")));
        }
        *slot = Some(parsed);
    }
    if pressure.some.is_none() && pressure.full.is_none() {
        return Err(ParseError::new(
            text.lines().count() + 1,
            "no `some` or `full` line: this is not pressure text",
        ));
    }
    Ok(pressure)
}

/// Reads and parses `vmstat` under `roots.proc` into `stat`, whose strings are reused:
/// the file's two hundred names would otherwise be as many allocations each read.
pub fn read_vmstat(roots: &Roots, stat: &mut VmStat) -> Result<(), Error> {
    let path = roots.proc.join(VmStat::FILE);
    let text = read_text(&path)?;
    parse_vmstat_into(&text, stat);
    Ok(())
}

/// Parses the text of `/proc/vmstat`; a malformed line is listed in
/// [`VmStat::skipped`].
pub fn parse_vmstat(text: &str) -> VmStat {
    let mut stat = VmStat::default();
    parse_vmstat_into(text, &mut stat);
    stat
}

fn parse_vmstat_into(text: &str, stat: &mut VmStat) {
    stat.skipped.clear();
    let mut used = 0;
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let parsed = match (fields.next(), fields.next()) {
            (Some(value), None) => value.parse::<u64>().map_err(|_| {
                format!(
                    "{} value {} is not a whole number",
                    quote(name),
                    quote(value)
                )
            }),
            _ => Err(format!("{} is not `name value`", quote(line))),
        };
        match parsed {
            Ok(value) => {
                match stat.fields.get_mut(used) {
                    Some((kept, kept_value)) => {
                        kept.clear();
                        kept.push_str(name);
                        *kept_value = value;
                    }
                    None => stat.fields.push((name.to_owned(), value)),
                }
                used += 1;
            }
            Err(message) => stat.skipped.push(ParseError::new(index + 1, message)),
        }
    }
    stat.fields.truncate(used);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    const PRESSURE: &str = "\
some avg10=0.18 avg60=0.34 avg300=0.10 total=159886802
full avg10=0.18 avg60=0.34 avg300=0.10 total=159229614
";

    const VMSTAT: &str = "nr_free_pages 977769\npgpgin 7344136\noom_kill 0\n";

    #[test]
    fn parses_some_and_full() {
        let pressure = parse_pressure(PRESSURE).expect("parses");
        let some = pressure.some.expect("some");
        assert_eq!(some.total_us, 159886802);
        assert_eq!(some.avg60, 0.34);
        assert_eq!(pressure.full.expect("full").total_us, 159229614);
        let only_some =
            parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=5").expect("parses");
        assert!(only_some.full.is_none());
    }

    #[test]
    fn malformed_pressure_is_refused() {
        for text in [
            "",
            "other avg10=1 total=2\n",
            "some avg10=1\n",
            "some avg10=x total=1\n",
            "some avg10=-1 total=1\n",
            "some total=1\nsome total=2\n",
            "some total\n",
        ] {
            assert!(parse_pressure(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn vmstat_pairs_and_bad_lines() {
        let stat = parse_vmstat(&format!("{VMSTAT}bad\nx y\nz 1 2\n"));
        assert_eq!(stat.fields.len(), 3);
        assert_eq!(stat.fields[1], ("pgpgin".to_owned(), 7344136));
        let lines: Vec<_> = stat.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6]);
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let roots = fixture_roots();
        for resource in ["cpu", "io", "memory", "irq"] {
            read_pressure(&roots, resource).expect(resource);
        }
        let mut stat = VmStat::default();
        read_vmstat(&roots, &mut stat).expect("vmstat");
        assert_eq!(stat.skipped, []);
        assert!(stat.fields.len() > 50, "{}", stat.fields.len());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_pressure(&text);
            let _ = parse_vmstat(&text);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(p in mutated(PRESSURE), v in mutated(VMSTAT)) {
            let _ = parse_pressure(&p);
            let _ = parse_vmstat(&v);
        }

        /// A reading refilled in place, whatever it held, is what a fresh parse gives.
        #[test]
        fn a_refilled_vmstat_equals_a_fresh_one(first in mutated(VMSTAT), second in mutated(VMSTAT)) {
            let mut stat = parse_vmstat(&first);
            parse_vmstat_into(&second, &mut stat);
            prop_assert_eq!(&stat, &parse_vmstat(&second));
        }

        #[test]
        fn an_appended_line_never_changes_what_vmstat_read(line in any_line()) {
            let original = parse_vmstat(VMSTAT);
            let stat = parse_vmstat(&format!("{VMSTAT}{line}\n"));
            prop_assert_eq!(&stat.fields[..original.fields.len()], &original.fields[..]);
        }
    }
}
