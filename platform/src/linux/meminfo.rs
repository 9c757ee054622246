//! `/proc/meminfo`: the kernel's memory accounting.
//!
//! Format (proc(5)): one field per line, `Name:` then a number and, for sizes, the unit
//! `kB` (meaning KiB). Counts such as `HugePages_Total` have no unit. Which fields exist
//! depends on the kernel version and configuration, so every field is kept, by name.

use std::collections::HashSet;

use super::{quote, read_text};
use crate::{Error, MemInfo, MemInfoField, ParseError, Roots};

/// Reads and parses `meminfo` under `roots.proc`.
pub fn read_meminfo(roots: &Roots) -> Result<MemInfo, Error> {
    let path = roots.proc.join(MemInfo::FILE);
    let text = read_text(&path)?;
    parse_meminfo(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of `/proc/meminfo`.
///
/// A malformed line, or a second line with a name already seen, is listed in
/// [`MemInfo::skipped`] and otherwise ignored; blank lines are ignored silently. Fails
/// only when no field could be read.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let mut info = MemInfo::default();
    let mut seen = HashSet::new();
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        lines = index + 1;
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((name, value, in_kb))) => {
                if seen.insert(name) {
                    info.fields.push(MemInfoField {
                        name: name.to_owned(),
                        value,
                        in_kb,
                    });
                } else {
                    info.skipped.push(ParseError::new(
                        lines,
                        format!("second line for field {}", quote(name)),
                    ));
                }
            }
            Err(message) => info.skipped.push(ParseError::new(lines, message)),
        }
    }
    if info.fields.is_empty() {
        return Err(ParseError::new(
            lines + 1,
            "no readable field: this is not /proc/meminfo text",
        ));
    }
    Ok(info)
}

/// One line as (name, value, whether in kB); `None` for a blank line.
fn parse_line(line: &str) -> Result<Option<(&str, u64, bool)>, String> {
    // Some kernels (CentOS 6, 3.10.90) print blank lines; node_exporter skips them too.
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no `:` after a field name in {}", quote(line)))?;
    let name = name.trim_ascii();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("field name {} is empty or has spaces", quote(name)));
    }
    let mut parts = rest.split_ascii_whitespace();
    let value = parts
        .next()
        .ok_or_else(|| format!("field {} has no value", quote(name)))?;
    let value = value.parse().map_err(|_| {
        format!(
            "field {} value {} is not a whole number",
            quote(name),
            quote(value)
        )
    })?;
    let in_kb = match parts.next() {
        None => false,
        Some("kB") => true,
        Some(unit) => {
            return Err(format!(
                "field {} has unit {} where only `kB` is known",
                quote(name),
                quote(unit)
            ));
        }
    };
    if let Some(extra) = parts.next() {
        return Err(format!(
            "field {} has more than a value and a unit (then {})",
            quote(name),
            quote(extra)
        ));
    }
    Ok(Some((name, value, in_kb)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    /// node_exporter's `proc/meminfo` fixture.
    const FIXTURE: &str = "\
MemTotal:        3742148 kB
MemFree:          225472 kB
Buffers:           22040 kB
Cached:           930888 kB
SwapCached:       192504 kB
Active:          2233416 kB
Inactive:        1028728 kB
Active(anon):    2020004 kB
Inactive(anon):   883052 kB
Active(file):     213412 kB
Inactive(file):   145676 kB
Unevictable:          32 kB
Mlocked:              32 kB
SwapTotal:       4194300 kB
SwapFree:        3155360 kB
Dirty:              1052 kB
Writeback:             0 kB
AnonPages:       2244172 kB
Mapped:           239220 kB
Shmem:            593840 kB
Slab:              98932 kB
SReclaimable:      44772 kB
SUnreclaim:        54160 kB
KernelStack:        5800 kB
PageTables:        75212 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:     6065372 kB
Committed_AS:    7835436 kB
VmallocTotal:   34359738367 kB
VmallocUsed:      352840 kB
VmallocChunk:   34359338876 kB
HardwareCorrupted:     0 kB
AnonHugePages:         0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
DirectMap4k:      185660 kB
DirectMap2M:     3698688 kB
";

    fn field(name: &str, value: u64, in_kb: bool) -> MemInfoField {
        MemInfoField {
            name: name.to_owned(),
            value,
            in_kb,
        }
    }

    #[test]
    fn parses_every_field_of_the_fixture_in_order() {
        let info = parse_meminfo(FIXTURE).expect("fixture parses");
        assert_eq!(info.skipped, []);
        assert_eq!(info.fields.len(), 42);
        assert_eq!(info.fields[0], field("MemTotal", 3742148, true));
        assert_eq!(info.fields[41], field("DirectMap2M", 3698688, true));
        assert_eq!(
            info.get("Active(anon)"),
            Some(&field("Active(anon)", 2020004, true))
        );
        assert_eq!(
            info.get("HugePages_Total"),
            Some(&field("HugePages_Total", 0, false))
        );
        assert_eq!(
            info.get("VmallocTotal").and_then(MemInfoField::bytes),
            Some(34359738367 * 1024)
        );
        assert_eq!(
            info.get("HugePages_Total").and_then(MemInfoField::bytes),
            None
        );
        assert_eq!(info.get("MemAvailable"), None);
    }

    #[test]
    fn bytes_refuses_to_overflow() {
        assert_eq!(field("Huge", u64::MAX, true).bytes(), None);
    }

    #[test]
    fn malformed_lines_are_skipped_with_line_and_reason() {
        let text = "\
MemTotal: 100 kB

no colon here
: 5 kB
Two Words: 5 kB
Empty:
NotANumber: 12x kB
Negative: -1 kB
Pages: 5 pages
Extra: 5 kB more
MemTotal: 200 kB
MemFree: 50 kB
";
        let info = parse_meminfo(text).expect("parses");
        let lines: Vec<usize> = info.skipped.iter().map(|error| error.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(
            info.skipped[6].message.contains("unit \"pages\""),
            "{}",
            info.skipped[6]
        );
        assert!(
            info.skipped[8].message.contains("second line"),
            "{}",
            info.skipped[8]
        );
        // A repeat never overwrites the first line.
        assert_eq!(
            info.fields,
            [field("MemTotal", 100, true), field("MemFree", 50, true)]
        );
    }

    #[test]
    fn text_without_fields_is_refused() {
        assert_eq!(parse_meminfo("").expect_err("empty").line, 1);
        assert_eq!(parse_meminfo("\n\njunk\n").expect_err("junk").line, 4);
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let info = read_meminfo(&fixture_roots()).expect("fixture reads");
        assert_eq!(info, parse_meminfo(FIXTURE).expect("fixture parses"));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_the_path() {
        let dir = TempDir::new("meminfo-missing");
        match read_meminfo(&dir.roots()) {
            Err(Error::Read { path, .. }) => assert_eq!(path, dir.path().join("meminfo")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse_meminfo(&text);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            if let Ok(info) = parse_meminfo(&text) {
                let names: HashSet<&str> = info.fields.iter().map(|f| f.name.as_str()).collect();
                prop_assert_eq!(names.len(), info.fields.len());
            }
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_meminfo(FIXTURE).expect("fixture parses");
            let info = parse_meminfo(&format!("{FIXTURE}{line}\n")).expect("still parses");
            prop_assert_eq!(&info.fields[..original.fields.len()], &original.fields[..]);
        }
    }
}
