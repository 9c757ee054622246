//! `/proc/stat`: CPU time per mode and kernel activity counters since boot.
//!
//! Format (proc(5)): one key per line, then numbers separated by spaces.
//! - `cpu` (all CPUs) and `cpuN` (online CPU N): up to ten times in `USER_HZ` ticks, in
//!   the order user nice system idle iowait irq softirq steal guest guest_nice. Kernels
//!   older than 2.6.33 print fewer; the missing trailing ones read as 0, as in
//!   node_exporter, and columns a future kernel may add are ignored.
//! - `intr`: the total of all interrupts, then one count per interrupt number.
//! - `ctxt`, `btime`, `processes`, `procs_running`, `procs_blocked`: one number each.
//! - Other keys (`softirq`, `page`, `swap`, ...) are not read.

use std::collections::btree_map::Entry;
use std::str::SplitAsciiWhitespace;

use super::{quote, read_text};
use crate::{CpuTimes, Error, ParseError, Roots, Stat};

/// The names of a `cpu` line's columns, in order.
const MODES: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// Every kernel since 2.4 prints at least user, nice, system and idle.
const MIN_MODES: usize = 4;

/// Reads and parses `stat` under `roots.proc`.
pub fn read_stat(roots: &Roots) -> Result<Stat, Error> {
    let path = roots.proc.join(Stat::FILE);
    let text = read_text(&path)?;
    parse_stat(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of `/proc/stat`.
///
/// A malformed or repeated line is listed in [`Stat::skipped`] and otherwise ignored.
/// Fails only when no `cpu` or `cpuN` line could be read, since then this is not
/// `/proc/stat` text at all.
pub fn parse_stat(text: &str) -> Result<Stat, ParseError> {
    let mut stat = Stat::default();
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        lines = index + 1;
        if let Err(message) = parse_line(&mut stat, line) {
            stat.skipped.push(ParseError::new(lines, message));
        }
    }
    if stat.total.is_none() && stat.cpus.is_empty() {
        return Err(ParseError::new(
            lines + 1,
            "no readable `cpu` line: this is not /proc/stat text",
        ));
    }
    Ok(stat)
}

/// Reads one line into `stat`, or says why it cannot.
fn parse_line(stat: &mut Stat, line: &str) -> Result<(), String> {
    let mut fields = line.split_ascii_whitespace();
    let Some(key) = fields.next() else {
        return Ok(());
    };
    match key {
        "cpu" => {
            let times = cpu_times(key, fields)?;
            set_once(&mut stat.total, times, key)
        }
        "ctxt" => set_once(&mut stat.context_switches, single(key, fields)?, key),
        // The per-interrupt counts after the total are the `interrupts` collector's
        // business (from /proc/interrupts, which names them).
        "intr" => set_once(&mut stat.interrupts, first(key, &mut fields)?, key),
        "btime" => set_once(&mut stat.boot_time, single(key, fields)?, key),
        "processes" => set_once(&mut stat.forks, single(key, fields)?, key),
        "procs_running" => set_once(&mut stat.procs_running, single(key, fields)?, key),
        "procs_blocked" => set_once(&mut stat.procs_blocked, single(key, fields)?, key),
        _ => match key.strip_prefix("cpu") {
            Some(suffix) => {
                let cpu = cpu_number(key, suffix)?;
                let times = cpu_times(key, fields)?;
                match stat.cpus.entry(cpu) {
                    Entry::Vacant(slot) => {
                        slot.insert(times);
                        Ok(())
                    }
                    Entry::Occupied(_) => Err(format!("second line for CPU {cpu} ({key:?})")),
                }
            }
            None => Ok(()),
        },
    }
}

/// The N of a `cpuN` key.
fn cpu_number(key: &str, suffix: &str) -> Result<u32, String> {
    // `u32::from_str` would also take a sign, and "cpu+1" is no CPU.
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unknown key {}", quote(key)));
    }
    suffix
        .parse()
        .map_err(|_| format!("CPU number in {} is out of range", quote(key)))
}

/// The times of a `cpu` or `cpuN` line.
fn cpu_times(key: &str, fields: SplitAsciiWhitespace<'_>) -> Result<CpuTimes, String> {
    let mut values = [0u64; MODES.len()];
    let mut count = 0;
    for ((slot, mode), field) in values.iter_mut().zip(MODES).zip(fields) {
        *slot = field
            .parse()
            .map_err(|_| format!("`{key}` {mode} time {} is not a whole number", quote(field)))?;
        count += 1;
    }
    if count < MIN_MODES {
        return Err(format!(
            "`{key}` has {count} times where at least {MIN_MODES} (user nice system idle) \
             are expected"
        ));
    }
    let [
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    ] = values;
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

/// The only number on a line.
fn single(key: &str, mut fields: SplitAsciiWhitespace<'_>) -> Result<u64, String> {
    let value = first(key, &mut fields)?;
    match fields.next() {
        None => Ok(value),
        Some(extra) => Err(format!(
            "`{key}` has more than one value (then {})",
            quote(extra)
        )),
    }
}

/// The first number on a line.
fn first(key: &str, fields: &mut SplitAsciiWhitespace<'_>) -> Result<u64, String> {
    let field = fields
        .next()
        .ok_or_else(|| format!("`{key}` has no value"))?;
    field
        .parse()
        .map_err(|_| format!("`{key}` value {} is not a whole number", quote(field)))
}

/// Stores the value of a key that must appear once; a repeat is refused rather than
/// allowed to overwrite what the first line said.
fn set_once<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("second `{key}` line"));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    /// node_exporter's `proc/stat` fixture, without the long per-interrupt counts.
    const FIXTURE: &str = "\
cpu  301854 612 111922 8979004 3552 2 3944 0 44 36
cpu0 44490 19 21045 1087069 220 1 3410 0 2 1
cpu1 47869 23 16474 1110787 591 0 46 0 3 2
cpu2 46504 36 15916 1112321 441 0 326 0 4 3
cpu3 47054 102 15683 1113230 533 0 60 0 5 4
cpu4 28413 25 10776 1140321 217 0 8 0 6 5
cpu5 29271 101 11586 1136270 672 0 30 0 7 6
cpu6 29152 36 10276 1139721 319 0 29 0 8 7
cpu7 29098 268 10164 1139282 555 0 31 0 9 8
intr 8885917 17 0 0 0 0 0 0 0 1 79281 0 0 0 0 0 0 0 231237 0 0 0 0 250586 103 0 0 0
ctxt 38014093
btime 1418183276
processes 26442
procs_running 2
procs_blocked 0
softirq 5057579 250191 1481983 1647 211099 186066 0 1783454 622196 12499 508444
";

    fn times(values: [u64; 10]) -> CpuTimes {
        let [
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        ] = values;
        CpuTimes {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        }
    }

    #[test]
    fn parses_every_field_of_the_fixture() {
        let stat = parse_stat(FIXTURE).expect("fixture parses");
        assert_eq!(stat.skipped, []);
        assert_eq!(
            stat.total,
            Some(times([
                301854, 612, 111922, 8979004, 3552, 2, 3944, 0, 44, 36
            ]))
        );
        assert_eq!(stat.cpus.len(), 8);
        assert_eq!(
            stat.cpus[&0],
            times([44490, 19, 21045, 1087069, 220, 1, 3410, 0, 2, 1])
        );
        assert_eq!(
            stat.cpus[&7],
            times([29098, 268, 10164, 1139282, 555, 0, 31, 0, 9, 8])
        );
        assert_eq!(stat.context_switches, Some(38014093));
        assert_eq!(stat.interrupts, Some(8885917));
        assert_eq!(stat.boot_time, Some(1418183276));
        assert_eq!(stat.forks, Some(26442));
        assert_eq!(stat.procs_running, Some(2));
        assert_eq!(stat.procs_blocked, Some(0));
    }

    #[test]
    fn old_kernels_short_cpu_lines_fill_missing_modes_with_zero() {
        let stat = parse_stat("cpu 1 2 3 4 5 6 7\ncpu0 1 2 3 4\n").expect("parses");
        assert_eq!(stat.skipped, []);
        assert_eq!(stat.total, Some(times([1, 2, 3, 4, 5, 6, 7, 0, 0, 0])));
        assert_eq!(stat.cpus[&0], times([1, 2, 3, 4, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn columns_beyond_the_tenth_are_ignored() {
        let stat = parse_stat("cpu0 1 2 3 4 5 6 7 8 9 10 11 12\n").expect("parses");
        assert_eq!(stat.skipped, []);
        assert_eq!(stat.cpus[&0], times([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    }

    #[test]
    fn malformed_lines_are_skipped_with_line_and_reason() {
        let text = "\
cpu 1 2 3 4 5 6 7 8 9 10
cpu0 1 2 x 4 5 6 7 8 9 10
cpu1 1 2 3
cpu+1 1 2 3 4
cpu99999999999 1 2 3 4
cpu2 1 2 3 4 5 6 7 8 9 10
cpu2 9 9 9 9 9 9 9 9 9 9
ctxt
ctxt 12 13
btime -5
procs_running 3
procs_running 4
intr 77 junk
page 1 2
";
        let stat = parse_stat(text).expect("parses");
        let lines: Vec<usize> = stat.skipped.iter().map(|error| error.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 7, 8, 9, 10, 12]);
        assert!(
            stat.skipped[0].message.contains("system time \"x\""),
            "{}",
            stat.skipped[0]
        );
        assert!(stat.skipped[4].message.contains("second line for CPU 2"));
        // What was readable survives, and a repeat never overwrites the first line.
        assert_eq!(stat.cpus.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(stat.cpus[&2].user, 1);
        assert_eq!(stat.context_switches, None);
        assert_eq!(stat.boot_time, None);
        assert_eq!(stat.procs_running, Some(3));
        assert_eq!(stat.interrupts, Some(77));
    }

    #[test]
    fn text_without_cpu_lines_is_refused() {
        let error = parse_stat("ctxt 5\nbtime 6\n").expect_err("no cpu lines");
        assert_eq!(error.line, 3);
        assert_eq!(parse_stat("").expect_err("empty").line, 1);
        assert!(parse_stat("cpu0 a b c d\n").is_err());
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let stat = read_stat(&fixture_roots()).expect("fixture reads");
        assert_eq!(stat.skipped, []);
        assert_eq!(stat.cpus.len(), 8);
        assert_eq!(stat.interrupts, Some(8885917));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_the_path() {
        let dir = TempDir::new("stat-missing");
        match read_stat(&dir.roots()) {
            Err(Error::Read { path, .. }) => assert_eq!(path, dir.path().join("stat")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn unusable_text_is_a_parse_error_naming_the_path() {
        let dir = TempDir::new("stat-garbage");
        std::fs::write(dir.path().join("stat"), "hello\nworld\n").expect("write fixture");
        match read_stat(&dir.roots()) {
            Err(error @ Error::Parse { .. }) => {
                let message = error.to_string();
                assert!(message.contains("stat line 3"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse_stat(&text);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            if let Ok(stat) = parse_stat(&text) {
                let lines = text.lines().count();
                prop_assert!(stat.skipped.iter().all(|e| e.line >= 1 && e.line <= lines));
            }
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_stat(FIXTURE).expect("fixture parses");
            let stat = parse_stat(&format!("{FIXTURE}{line}\n")).expect("still parses");
            for (cpu, times) in &original.cpus {
                prop_assert_eq!(stat.cpus.get(cpu), Some(times));
            }
            prop_assert_eq!(stat.total, original.total);
            prop_assert_eq!(stat.context_switches, original.context_switches);
            prop_assert_eq!(stat.interrupts, original.interrupts);
            prop_assert_eq!(stat.boot_time, original.boot_time);
            prop_assert_eq!(stat.forks, original.forks);
            prop_assert_eq!(stat.procs_running, original.procs_running);
            prop_assert_eq!(stat.procs_blocked, original.procs_blocked);
        }
    }
}
