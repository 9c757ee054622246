//! cgroup v2 files under `<sysfs>/fs/cgroup`, and block device names from
//! `<sysfs>/dev/block/MAJ:MIN/uevent`.
//!
//! The files of one cgroup (Documentation/admin-guide/cgroup-v2.rst):
//!
//! - `cpu.stat`, flat keyed: `usage_usec 2375234`, `user_usec ...`, `system_usec ...`,
//!   then keys that vary with the kernel and the controllers (`nice_usec`,
//!   `nr_periods`, `core_sched.force_idle_usec`, ...);
//! - `memory.current`, `memory.peak`, `memory.swap.current`, `pids.current`: one number;
//! - `io.stat`, nested keyed: `8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252
//!   dbytes=50331648 dios=3021`, one line per device, with more keys when the iocost or
//!   iolatency controllers add theirs;
//! - `cpu.pressure`, `memory.pressure`, `io.pressure`: the format of
//!   `/proc/pressure/*` ([`parse_pressure`]).
//!
//! A unit that stops while it is read takes its directory with it: the reader says so
//! with a not-found error on the directory, so that the caller can skip the unit. Each
//! file is read with a bound ([`CgroupStats::FILE_MAX`]); cgroupfs is neither procfs nor
//! sysfs, so its files are opened afresh each time rather than kept.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{into_text, parse_pressure, quote, read_text_once};
use crate::{
    CgroupCpuStat, CgroupLayout, CgroupStats, Error, IoStat, IoStatDevice, ParseError, Roots,
};

/// Slices nest one level per dash of their name (`system-getty.slice` in
/// `system.slice`); deeper than this is not systemd's doing, and is not walked.
const MAX_SLICE_DEPTH: usize = 8;

/// The unit types systemd gives a cgroup of their own.
const UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];

/// `ENODEV`: what a read answers once the cgroup of an open file is removed.
const ENODEV: i32 = 19;
/// `EOPNOTSUPP`: what a pressure file answers when PSI is off.
const EOPNOTSUPP: i32 = 95;

/// Tells how cgroups are mounted under `roots.sys`: by where `cgroup.controllers`, the
/// file only a v2 hierarchy has, is found. Fails only when the mount point exists but
/// cannot be listed.
pub fn read_cgroup_layout(roots: &Roots) -> Result<CgroupLayout, Error> {
    let dir = roots.sys.join(CgroupLayout::DIR);
    if dir.join("cgroup.controllers").is_file() {
        return Ok(CgroupLayout::Unified);
    }
    if dir.join("unified/cgroup.controllers").is_file() {
        return Ok(CgroupLayout::Hybrid);
    }
    match fs::read_dir(&dir) {
        Ok(mut entries) => Ok(if entries.next().is_some() {
            CgroupLayout::Legacy
        } else {
            CgroupLayout::Absent
        }),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(CgroupLayout::Absent),
        Err(source) => Err(Error::Read { path: dir, source }),
    }
}

/// The cgroups of systemd units under `roots.sys`'s unified hierarchy, as paths relative
/// to it (`system.slice/nginx.service`, `system.slice/system-getty.slice/getty@tty1.service`),
/// sorted. Slices are walked, units are not: what a unit holds below its own cgroup
/// (a delegated container's tree) is its own business. A slice that vanishes during the
/// walk is skipped; only a root that cannot be listed is an error.
pub fn find_cgroup_units(roots: &Roots) -> Result<Vec<String>, Error> {
    let root = roots.sys.join(CgroupLayout::DIR);
    let mut units = Vec::new();
    let mut slices = vec![(String::new(), 0usize)];
    while let Some((slice, depth)) = slices.pop() {
        let dir = if slice.is_empty() {
            root.clone()
        } else {
            root.join(&slice)
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(source) if slice.is_empty() => return Err(Error::Read { path: dir, source }),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            // cgroupfs gives the type with the entry; a symbolic link is not a cgroup.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = if slice.is_empty() {
                name.clone()
            } else {
                format!("{slice}/{name}")
            };
            if name.ends_with(".slice") {
                if depth < MAX_SLICE_DEPTH {
                    slices.push((path, depth + 1));
                }
            } else if UNIT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
                units.push(path);
            }
        }
    }
    units.sort_unstable();
    Ok(units)
}

/// Reads the files of the cgroup at `unit` (a path from [`find_cgroup_units`]) under
/// `roots.sys`'s unified hierarchy. A file that does not exist leaves its field `None`;
/// one that cannot be read or parsed is listed in [`CgroupStats::errors`]. Fails, with a
/// not-found error on the directory, only when the cgroup itself is gone: the unit
/// stopped.
pub fn read_cgroup_stats(roots: &Roots, unit: &str) -> Result<CgroupStats, Error> {
    let dir = roots.sys.join(CgroupLayout::DIR).join(unit);
    let mut stats = CgroupStats::default();
    let mut reader = Files {
        dir: &dir,
        errors: &mut stats.errors,
    };
    stats.cpu = reader.parsed("cpu.stat", parse_cgroup_cpu_stat)?;
    stats.memory_current = reader.parsed("memory.current", parse_cgroup_value)?;
    stats.memory_peak = reader.parsed("memory.peak", parse_cgroup_value)?;
    stats.swap_current = reader.parsed("memory.swap.current", parse_cgroup_value)?;
    stats.pids_current = reader.parsed("pids.current", parse_cgroup_value)?;
    stats.io = reader.parsed("io.stat", |text| Ok(parse_io_stat(text)))?;
    stats.cpu_pressure = reader.parsed("cpu.pressure", parse_pressure)?;
    stats.memory_pressure = reader.parsed("memory.pressure", parse_pressure)?;
    stats.io_pressure = reader.parsed("io.pressure", parse_pressure)?;
    if let Some(io) = &stats.io
        && let Some(first) = io.skipped.first()
    {
        stats
            .errors
            .push(first.clone().in_file(dir.join("io.stat")));
    }
    Ok(stats)
}

/// The files of one cgroup directory, read one by one.
struct Files<'a> {
    dir: &'a Path,
    errors: &'a mut Vec<Error>,
}

impl Files<'_> {
    /// `file` parsed, `None` when it does not exist (or is a pressure file with PSI
    /// off) or when it failed (the error recorded); `Err` when the directory is gone.
    fn parsed<T>(
        &mut self,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, Error> {
        let path = self.dir.join(file);
        let text = match read_bounded(&path, CgroupStats::FILE_MAX) {
            Ok(text) => text,
            Err(source) if gone(&source) => {
                if self.dir.is_dir() {
                    return Ok(None);
                }
                return Err(Error::Read {
                    path: self.dir.to_path_buf(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
            Err(source) if source.raw_os_error() == Some(EOPNOTSUPP) => return Ok(None),
            Err(source) => {
                self.errors.push(Error::Read { path, source });
                return Ok(None);
            }
        };
        match parse(&text) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                self.errors.push(error.in_file(path));
                Ok(None)
            }
        }
    }
}

/// Whether a read failed because the file, or its cgroup, does not exist.
fn gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(ENODEV)
}

/// Reads at most `max` bytes of `path`; a longer file is an error rather than a
/// reading cut at an arbitrary place.
fn read_bounded(path: &Path, max: usize) -> io::Result<String> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {max} bytes"),
        ));
    }
    Ok(into_text(bytes))
}

/// Parses `cpu.stat`. `user_usec` and `system_usec` must be there; other keys, and
/// malformed lines of other keys, are ignored, since kernels add keys as they go.
pub fn parse_cgroup_cpu_stat(text: &str) -> Result<CgroupCpuStat, ParseError> {
    let mut stat = CgroupCpuStat::default();
    let (mut user, mut system) = (false, false);
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), value, rest) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (slot, seen) = match key {
            "usage_usec" => (&mut stat.usage_usec, None),
            "user_usec" => (&mut stat.user_usec, Some(&mut user)),
            "system_usec" => (&mut stat.system_usec, Some(&mut system)),
            _ => continue,
        };
        let value = match (value, rest) {
            (Some(value), None) => value.parse::<u64>().map_err(|_| {
                ParseError::new(
                    index + 1,
                    format!("{key} {} is not a whole number", quote(value)),
                )
            })?,
            _ => {
                return Err(ParseError::new(
                    index + 1,
                    format!("{} is not `{key} value`", quote(line)),
                ));
            }
        };
        *slot = value;
        if let Some(seen) = seen {
            *seen = true;
        }
    }
    let missing = match (user, system) {
        (true, true) => return Ok(stat),
        (false, _) => "user_usec",
        (true, false) => "system_usec",
    };
    Err(ParseError::new(
        text.lines().count() + 1,
        format!("no `{missing}` line: this is not cpu.stat text"),
    ))
}

/// Parses a file of one whole number (`memory.current`, `pids.current`).
pub fn parse_cgroup_value(text: &str) -> Result<u64, ParseError> {
    let trimmed = text.trim_ascii();
    trimmed
        .parse()
        .map_err(|_| ParseError::new(1, format!("{} is not a whole number", quote(trimmed))))
}

/// Parses `io.stat`. A malformed line, or one without the four counters, is listed in
/// [`IoStat::skipped`]; keys other than the four are ignored.
pub fn parse_io_stat(text: &str) -> IoStat {
    let mut stat = IoStat::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match parse_io_stat_line(line) {
            Ok(device) => stat.devices.push(device),
            Err(message) => stat.skipped.push(ParseError::new(index + 1, message)),
        }
    }
    stat
}

fn parse_io_stat_line(line: &str) -> Result<IoStatDevice, String> {
    let mut fields = line.split_ascii_whitespace();
    let id = fields.next().unwrap_or_default();
    let (major, minor) = id
        .split_once(':')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
        .ok_or_else(|| format!("{} is not a MAJ:MIN device number", quote(id)))?;
    let mut device = IoStatDevice {
        major,
        minor,
        ..IoStatDevice::default()
    };
    let mut seen = 0u8;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{} is not key=value", quote(field)))?;
        let (slot, bit) = match key {
            "rbytes" => (&mut device.rbytes, 1),
            "wbytes" => (&mut device.wbytes, 2),
            "rios" => (&mut device.rios, 4),
            "wios" => (&mut device.wios, 8),
            // dbytes, dios, and the iocost and iolatency controllers' keys.
            _ => continue,
        };
        *slot = value
            .parse()
            .map_err(|_| format!("{key} {} is not a whole number", quote(value)))?;
        seen |= bit;
    }
    if seen != 15 {
        return Err(format!(
            "{} lacks one of rbytes, wbytes, rios, wios",
            quote(id)
        ));
    }
    Ok(device)
}

/// The name of the block device `major:minor`: `DEVNAME` of its `uevent` under
/// `roots.sys` (`sda`, `nvme0n1`, `dm-0`). `None` when the device has no such entry
/// (gone, or not a block device) or its `uevent` names none.
pub fn read_block_device_name(
    roots: &Roots,
    major: u32,
    minor: u32,
) -> Result<Option<String>, Error> {
    let path: PathBuf = roots.sys.join(format!("dev/block/{major}:{minor}/uevent"));
    match read_text_once(&path) {
        Ok(text) => Ok(parse_uevent_devname(&text).map(str::to_owned)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// `DEVNAME` of a `uevent` file's `KEY=value` lines, if it has a non-empty one.
pub fn parse_uevent_devname(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
        .map(str::trim_ascii)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pressure;
    use crate::linux::testing::{TempDir, any_line, mutated};
    use proptest::prelude::*;

    fn pressure_totals(pressure: &Pressure) -> (Option<u64>, Option<u64>) {
        (
            pressure.some.map(|line| line.total_us),
            pressure.full.map(|line| line.total_us),
        )
    }

    /// A 6.x kernel's, cpu controller enabled.
    const CPU_STAT: &str = "\
usage_usec 8514372
user_usec 5318066
system_usec 3196306
nice_usec 0
core_sched.force_idle_usec 0
nr_periods 0
nr_throttled 0
throttled_usec 0
nr_bursts 0
burst_usec 0
";

    /// cgroup-v2.rst's example, with a line an iocost kernel adds keys to.
    const IO_STAT: &str = "\
8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0
8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021 cost.vrate=135.27 cost.usage=7051 cost.wait=0 cost.indebt=0 cost.indelay=0
";

    const PRESSURE: &str = "\
some avg10=0.00 avg60=0.00 avg300=0.00 total=1830
full avg10=0.00 avg60=0.00 avg300=0.00 total=1610
";

    fn unit_dir(dir: &TempDir, unit: &str) -> PathBuf {
        let path = dir.path().join("sys/fs/cgroup").join(unit);
        fs::create_dir_all(&path).expect("mkdir");
        path
    }

    #[test]
    fn cpu_stat_gives_the_three_times() {
        let stat = parse_cgroup_cpu_stat(CPU_STAT).expect("parses");
        assert_eq!(
            stat,
            CgroupCpuStat {
                usage_usec: 8514372,
                user_usec: 5318066,
                system_usec: 3196306,
            }
        );
        // Without the cpu controller the core still writes the three times.
        let basic = parse_cgroup_cpu_stat("usage_usec 3\nuser_usec 2\nsystem_usec 1\n");
        assert_eq!(basic.map(|s| s.system_usec), Ok(1));
    }

    #[test]
    fn malformed_cpu_stat_is_refused_naming_the_line() {
        let cases = [
            ("", "line 1: no `user_usec` line: this is not cpu.stat text"),
            (
                "user_usec 1\n",
                "line 2: no `system_usec` line: this is not cpu.stat text",
            ),
            (
                "user_usec x\nsystem_usec 1\n",
                "line 1: user_usec \"x\" is not a whole number",
            ),
            (
                "user_usec 1 2\nsystem_usec 1\n",
                "line 1: \"user_usec 1 2\" is not `user_usec value`",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_cgroup_cpu_stat(text).expect_err(text);
            assert_eq!(error.to_string(), expected, "{text:?}");
        }
        // A key of no interest may hold anything.
        let odd = parse_cgroup_cpu_stat("user_usec 1\nsystem_usec 2\nnr_periods lots of them\n");
        assert_eq!(odd.map(|s| s.user_usec), Ok(1));
    }

    #[test]
    fn io_stat_keeps_the_four_counters_per_device() {
        let stat = parse_io_stat(IO_STAT);
        assert_eq!(stat.skipped, []);
        assert_eq!(
            stat.devices,
            [
                IoStatDevice {
                    major: 8,
                    minor: 16,
                    rbytes: 1459200,
                    wbytes: 314773504,
                    rios: 192,
                    wios: 353,
                },
                IoStatDevice {
                    major: 8,
                    minor: 0,
                    rbytes: 90430464,
                    wbytes: 299008000,
                    rios: 8950,
                    wios: 1252,
                },
            ]
        );
    }

    #[test]
    fn bad_io_stat_lines_are_skipped_and_listed() {
        let stat = parse_io_stat(
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4\nsda rbytes=1\n8:1 rbytes=x wbytes=2 rios=3 wios=4\n\
             8:2 rbytes=1\n8:3 rbytes=1 wbytes=2 rios=3 wios=4 junk\n259:0 rbytes=5 wbytes=6 rios=7 wios=8\n",
        );
        let kept: Vec<_> = stat.devices.iter().map(|d| (d.major, d.minor)).collect();
        assert_eq!(kept, [(8, 0), (259, 0)]);
        let messages: Vec<_> = stat.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "line 2: \"sda\" is not a MAJ:MIN device number",
                "line 3: rbytes \"x\" is not a whole number",
                "line 4: \"8:2\" lacks one of rbytes, wbytes, rios, wios",
                "line 5: \"junk\" is not key=value",
            ]
        );
    }

    #[test]
    fn single_values_are_whole_numbers() {
        assert_eq!(parse_cgroup_value("4096\n"), Ok(4096));
        assert_eq!(
            parse_cgroup_value("max\n").map_err(|e| e.to_string()),
            Err("line 1: \"max\" is not a whole number".into())
        );
        assert!(parse_cgroup_value("").is_err());
        assert!(parse_cgroup_value("-1").is_err());
    }

    #[test]
    fn devname_is_read_from_uevent() {
        let uevent = "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\nDISKSEQ=1\n";
        assert_eq!(parse_uevent_devname(uevent), Some("nvme0n1"));
        assert_eq!(parse_uevent_devname("MAJOR=8\nDEVNAME=\n"), None);
        assert_eq!(parse_uevent_devname(""), None);
        let dir = TempDir::new("uevent");
        let entry = dir.path().join("sys/dev/block/8:0");
        fs::create_dir_all(&entry).expect("mkdir");
        fs::write(entry.join("uevent"), "MAJOR=8\nMINOR=0\nDEVNAME=sda\n").expect("write");
        let roots = dir.roots();
        assert_eq!(
            read_block_device_name(&roots, 8, 0).expect("reads"),
            Some("sda".into())
        );
        assert_eq!(read_block_device_name(&roots, 8, 16).expect("reads"), None);
    }

    #[test]
    fn the_layout_is_told_by_where_cgroup_controllers_is() {
        let dir = TempDir::new("layout");
        let roots = dir.roots();
        assert_eq!(
            read_cgroup_layout(&roots).expect("reads"),
            CgroupLayout::Absent
        );
        let cgroup = dir.path().join("sys/fs/cgroup");
        fs::create_dir_all(cgroup.join("memory")).expect("mkdir");
        assert_eq!(
            read_cgroup_layout(&roots).expect("reads"),
            CgroupLayout::Legacy
        );
        fs::create_dir_all(cgroup.join("unified")).expect("mkdir");
        fs::write(cgroup.join("unified/cgroup.controllers"), "\n").expect("write");
        assert_eq!(
            read_cgroup_layout(&roots).expect("reads"),
            CgroupLayout::Hybrid
        );
        fs::write(cgroup.join("cgroup.controllers"), "cpu io memory pids\n").expect("write");
        assert_eq!(
            read_cgroup_layout(&roots).expect("reads"),
            CgroupLayout::Unified
        );
    }

    #[test]
    fn units_are_found_in_slices_and_not_below_units() {
        let dir = TempDir::new("units");
        for unit in [
            "init.scope",
            "system.slice/cron.service",
            "system.slice/nginx.service/worker",
            "system.slice/dev-hugepages.mount",
            "system.slice/system-getty.slice/getty@tty1.service",
            "user.slice/user-1000.slice/user@1000.service/app.slice/x.service",
            "user.slice/user-1000.slice/session-2.scope",
            "machine.slice/not-a-unit",
            "stray",
        ] {
            unit_dir(&dir, unit);
        }
        fs::write(dir.path().join("sys/fs/cgroup/system.slice/a.service"), "").expect("file");
        let units = find_cgroup_units(&dir.roots()).expect("lists");
        assert_eq!(
            units,
            [
                "init.scope",
                "system.slice/cron.service",
                "system.slice/dev-hugepages.mount",
                "system.slice/nginx.service",
                "system.slice/system-getty.slice/getty@tty1.service",
                "user.slice/user-1000.slice/session-2.scope",
                "user.slice/user-1000.slice/user@1000.service",
            ]
        );
        let empty = TempDir::new("units-none");
        assert!(
            find_cgroup_units(&empty.roots())
                .expect_err("no root")
                .is_not_found()
        );
    }

    #[test]
    fn a_cgroup_is_read_file_by_file() {
        let dir = TempDir::new("stats");
        let unit = unit_dir(&dir, "system.slice/a.service");
        for (file, text) in [
            ("cpu.stat", CPU_STAT),
            ("memory.current", "2371584\n"),
            ("pids.current", "3\n"),
            ("io.stat", IO_STAT),
            ("cpu.pressure", PRESSURE),
            ("memory.pressure", "garbage\n"),
        ] {
            fs::write(unit.join(file), text).expect("write");
        }
        let stats = read_cgroup_stats(&dir.roots(), "system.slice/a.service").expect("reads");
        assert_eq!(stats.cpu.map(|c| c.user_usec), Some(5318066));
        assert_eq!(stats.memory_current, Some(2371584));
        assert_eq!(stats.pids_current, Some(3));
        assert_eq!((stats.memory_peak, stats.swap_current), (None, None));
        assert_eq!(stats.io.as_ref().map(|io| io.devices.len()), Some(2));
        assert_eq!(
            stats.cpu_pressure.as_ref().map(pressure_totals),
            Some((Some(1830), Some(1610)))
        );
        assert!(stats.memory_pressure.is_none() && stats.io_pressure.is_none());
        let errors: Vec<_> = stats.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("cannot parse ")
                && errors[0].contains("a.service/memory.pressure line 1"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_vanished_cgroup_is_not_found_and_a_huge_file_is_an_error() {
        let dir = TempDir::new("stats-gone");
        let error = read_cgroup_stats(&dir.roots(), "system.slice/gone.service").expect_err("gone");
        assert!(error.is_not_found(), "{error}");
        assert!(error.to_string().contains("gone.service"), "{error}");
        let unit = unit_dir(&dir, "system.slice/big.service");
        let line = "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n";
        fs::write(
            unit.join("io.stat"),
            line.repeat(CgroupStats::FILE_MAX / line.len() + 1),
        )
        .expect("write");
        fs::write(unit.join("pids.current"), "7\n").expect("write");
        let stats = read_cgroup_stats(&dir.roots(), "system.slice/big.service").expect("reads");
        assert_eq!(stats.pids_current, Some(7));
        assert!(stats.io.is_none());
        let errors: Vec<_> = stats.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("big.service/io.stat: longer than 65536 bytes"),
            "{errors:?}"
        );
    }

    proptest! {
        #[test]
        fn never_panic_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_cgroup_cpu_stat(&text);
            let _ = parse_cgroup_value(&text);
            let _ = parse_io_stat(&text);
            let _ = parse_uevent_devname(&text);
        }

        #[test]
        fn never_panic_on_damaged_real_text(c in mutated(CPU_STAT), i in mutated(IO_STAT)) {
            let _ = parse_cgroup_cpu_stat(&c);
            let stat = parse_io_stat(&i);
            // Every non-empty line is either a device or a skipped line.
            let lines = i.lines().filter(|l| !l.trim_ascii().is_empty()).count();
            prop_assert_eq!(stat.devices.len() + stat.skipped.len(), lines);
        }

        /// A line a kernel adds never changes what was read before it.
        #[test]
        fn an_appended_line_never_changes_the_devices_read(line in any_line()) {
            let original = parse_io_stat(IO_STAT);
            let stat = parse_io_stat(&format!("{IO_STAT}{line}\n"));
            prop_assert_eq!(&stat.devices[..2], &original.devices[..]);
            let cpu = parse_cgroup_cpu_stat(&format!("{CPU_STAT}{line}\n"));
            if !line.trim_start().starts_with("us") && !line.trim_start().starts_with("sys") {
                prop_assert_eq!(cpu, parse_cgroup_cpu_stat(CPU_STAT));
            }
        }
    }
}
