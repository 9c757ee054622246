//! `/proc/diskstats`: I/O counters per block device.
//!
//! Format (Documentation/admin-guide/iostats.rst): one device per line, `major minor
//! name` then 11 counters (kernels before 4.18), 15 (4.18 adds discards) or 17 (5.5
//! adds flushes).

use super::{quote, read_text};
use crate::{DiskStat, DiskStats, Error, ParseError, Roots};

/// Every kernel since 2.6.25 prints at least the first 11 counters.
const MIN_COUNTERS: usize = 11;

/// Reads and parses `diskstats` under `roots.proc`.
pub fn read_diskstats(roots: &Roots) -> Result<DiskStats, Error> {
    let path = roots.proc.join(DiskStats::FILE);
    let text = read_text(&path)?;
    Ok(parse_diskstats(&text))
}

/// Parses the text of `/proc/diskstats`.
///
/// A malformed line is listed in [`DiskStats::skipped`]. An empty file is valid: a
/// container or a diskless host may have no block device at all.
pub fn parse_diskstats(text: &str) -> DiskStats {
    let mut stats = DiskStats::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(disk) => stats.disks.push(disk),
            Err(message) => stats.skipped.push(ParseError::new(index + 1, message)),
        }
    }
    stats
}

fn parse_line(line: &str) -> Result<DiskStat, String> {
    let mut fields = line.split_ascii_whitespace();
    let number = |field: Option<&str>, what: &str| -> Result<u32, String> {
        let field = field.ok_or_else(|| format!("no {what} in {}", quote(line)))?;
        field
            .parse()
            .map_err(|_| format!("{what} {} is not a number", quote(field)))
    };
    let major = number(fields.next(), "major number")?;
    let minor = number(fields.next(), "minor number")?;
    let device = fields
        .next()
        .ok_or_else(|| format!("no device name in {}", quote(line)))?
        .to_owned();
    let counters = fields
        .map(|field| {
            field.parse::<u64>().map_err(|_| {
                format!(
                    "device {} counter {} is not a whole number",
                    quote(&device),
                    quote(field)
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if counters.len() < MIN_COUNTERS {
        return Err(format!(
            "device {} has {} counters where at least {MIN_COUNTERS} are expected",
            quote(&device),
            counters.len()
        ));
    }
    Ok(DiskStat {
        major,
        minor,
        device,
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    const FIXTURE: &str = "\
   8       0 sda 25354637 34367663 1003346126 18492372 28444756 11134226 505697032 63877960 0 9653880 82621804
   8      16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070 68851 0 1925173784 11130
   8      32 sdc 126552 141 1657779 14 11822 1895 172905 1007 0 10730 17070 18851 0 125173784 11130 1555 1944
 252       0 dm-0 59910002 0 1003337218 46229572 39231014 0 505696880 1158557800 0 11325968 1206301256
";

    #[test]
    fn parses_the_three_kernel_layouts() {
        let stats = parse_diskstats(FIXTURE);
        assert_eq!(stats.skipped, []);
        let counts: Vec<_> = stats.disks.iter().map(|d| d.counters.len()).collect();
        assert_eq!(counts, [11, 15, 17, 11]);
        let sdc = &stats.disks[2];
        assert_eq!((sdc.major, sdc.minor, sdc.device.as_str()), (8, 32, "sdc"));
        assert_eq!(sdc.counters[0], 126552);
        assert_eq!(sdc.counters[16], 1944);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "8 0 sda 1 2 3\nx 0 sdb 1 2 3 4 5 6 7 8 9 10 11\n8 1 sdc 1 2 3 4 5 6 7 8 9 10 -1\n\n8 2 sdd 1 2 3 4 5 6 7 8 9 10 11\n";
        let stats = parse_diskstats(text);
        assert_eq!(stats.disks.len(), 1);
        let lines: Vec<_> = stats.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert!(
            stats.skipped[0].message.contains("3 counters"),
            "{}",
            stats.skipped[0]
        );
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let stats = read_diskstats(&fixture_roots()).expect("reads");
        assert_eq!(stats.skipped, []);
        assert!(stats.disks.iter().any(|d| d.device == "nvme0n1"));
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = TempDir::new("diskstats-missing");
        assert!(matches!(
            read_diskstats(&dir.roots()),
            Err(Error::Read { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let _ = parse_diskstats(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let _ = parse_diskstats(&text);
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_diskstats(FIXTURE);
            let stats = parse_diskstats(&format!("{FIXTURE}{line}\n"));
            prop_assert_eq!(&stats.disks[..original.disks.len()], &original.disks[..]);
        }
    }
}
