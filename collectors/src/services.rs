//! `services`: what each systemd service uses, from its cgroup v2 directory: CPU time,
//! memory and swap, tasks, I/O per device and pressure stalls.
//!
//! Each run lists the units' cgroups under `<sysfs>/fs/cgroup` (slices are walked,
//! units are not: see `find_cgroup_units` in the platform crate), keeps those its
//! globs select, and reads about ten small files of each. Nothing goes over D-Bus: the
//! kernel's own accounting is what systemd itself reports (`systemctl status` reads the
//! same files).
//!
//! Selection: a glob with a `/` is matched against the cgroup's path below the root
//! (`system.slice/nginx.service`), one without against the unit's name alone
//! (`nginx.service`); `*` crosses `/`, as `fnmatch` without `FNM_PATHNAME`. The default,
//! `system.slice/*.service`, takes the system's services, the template instances
//! systemd groups in sub-slices (`system.slice/system-getty.slice/getty@tty1.service`)
//! included, and leaves out user sessions, `init.scope` and containers'
//! `machine.slice`. At most `max_units` units are read, the first by path;
//! [`UNITS_DROPPED`] counts those left out, run after run. Likewise at most
//! `max_io_devices` devices of one unit get an I/O series, the rest counted in
//! [`IO_DEVICES_DROPPED`]; with `io_devices = false` the I/O of all devices is summed
//! into one series per unit.
//!
//! Names are prometheus-community's systemd_exporter's where it has the metric, with
//! its labels: [`CPU_SECONDS`]`{name,type,mode}` (`type` the unit type, `mode` `user` or
//! `system`) and [`TASKS`]`{name}` as its code sends them, and the names its README
//! lists for memory and I/O, with `name` and `type` as it gives every `systemd_unit_*`
//! metric; Sysward adds `device` to the I/O series. What it lacks is `sysward_service_*`:
//! peak memory, swap, and pressure stalls (the `some` and `full` totals, named as
//! node_exporter names the host's: `waiting` and `stalled`).
//!
//! A unit that stops while it is read is skipped without a word; a file that cannot be
//! read or understood is an error naming it, and the unit's other files are still sent.
//!
//! cgroup v2 only. A host with cgroup v1 is told once, as an error of the first run,
//! and the collector then stays off and quiet. systemd's *hybrid* layout counts as v1:
//! its v2 tree at `fs/cgroup/unified` only tracks processes, while memory, I/O and tasks
//! are accounted in the v1 controllers; CPU time alone could be read there, but a
//! collector that sends CPU and silently nothing else would read as services using no
//! memory. Hybrid hosts are also on their way out (systemd 256 deprecated cgroup v1).

use std::collections::HashMap;

use serde::Deserialize;
use sysward_platform::{CgroupLayout, CgroupStats, Pressure, Roots};

use crate::settings::{self, Count};
use crate::systemd::glob_match;
use crate::{CollectError, Collector, Kind, Output, Sample};

/// CPU time by mode (counter; labels `name`, `type`, `mode`): systemd_exporter's.
pub const CPU_SECONDS: &str = "systemd_unit_cpu_seconds_total";
/// `memory.current` (gauge; labels `name`, `type`): systemd_exporter's.
pub const MEMORY_BYTES: &str = "systemd_unit_memory_bytes";
/// `pids.current`: tasks, that is threads (gauge; label `name`): systemd_exporter's.
pub const TASKS: &str = "systemd_unit_tasks_current";
/// Bytes read (counter; labels `name`, `type`, `device`): systemd_exporter's name.
pub const IO_READ_BYTES: &str = "systemd_unit_io_read_bytes_total";
/// Bytes written (counter; labels `name`, `type`, `device`): systemd_exporter's name.
pub const IO_WRITE_BYTES: &str = "systemd_unit_io_write_bytes_total";
/// Read operations (counter; labels `name`, `type`, `device`): systemd_exporter's name.
pub const IO_READ_OPS: &str = "systemd_unit_io_read_operations_total";
/// Write operations (counter; labels `name`, `type`, `device`): systemd_exporter's name.
pub const IO_WRITE_OPS: &str = "systemd_unit_io_write_operations_total";
/// `memory.peak`, Linux 5.19+ (gauge; label `name`).
pub const MEMORY_PEAK_BYTES: &str = "sysward_service_memory_peak_bytes";
/// `memory.swap.current` (gauge; label `name`).
pub const SWAP_BYTES: &str = "sysward_service_swap_bytes";
/// Units the globs selected beyond `max_units`, summed over runs (counter).
pub const UNITS_DROPPED: &str = "sysward_service_units_dropped_total";
/// Devices of a unit beyond `max_io_devices`, summed over units and runs (counter).
pub const IO_DEVICES_DROPPED: &str = "sysward_service_io_devices_dropped_total";

/// The pressure files and the counters of their `some` and `full` totals (counters,
/// seconds; label `name`).
pub const PRESSURE: [(&str, &str, &str); 3] = [
    (
        "cpu",
        "sysward_service_pressure_cpu_waiting_seconds_total",
        "sysward_service_pressure_cpu_stalled_seconds_total",
    ),
    (
        "memory",
        "sysward_service_pressure_memory_waiting_seconds_total",
        "sysward_service_pressure_memory_stalled_seconds_total",
    ),
    (
        "io",
        "sysward_service_pressure_io_waiting_seconds_total",
        "sysward_service_pressure_io_stalled_seconds_total",
    ),
];

/// The most `max_units` may be: a typo should not send a series set per scope of a
/// busy host.
pub const MAX_UNITS: usize = 10_000;
/// The most `max_io_devices` may be.
pub const MAX_IO_DEVICES: usize = 256;

/// Which units the `services` collector reads, and how much of their I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicesConfig {
    /// Globs of units to read; empty: every unit found.
    pub include: Vec<String>,
    /// Globs of units to leave out.
    pub exclude: Vec<String>,
    /// Units read per run at most.
    pub max_units: usize,
    /// I/O per device (`true`), or summed over devices.
    pub io_devices: bool,
    /// Devices with an I/O series per unit at most.
    pub max_io_devices: usize,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            include: vec!["system.slice/*.service".into()],
            exclude: Vec::new(),
            max_units: 500,
            io_devices: true,
            max_io_devices: 16,
        }
    }
}

/// `[collectors.services]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesSettings {
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    max_units: Option<Count>,
    io_devices: Option<bool>,
    max_io_devices: Option<Count>,
}

impl ServicesConfig {
    /// The configuration a `[collectors.services]` table asks for, the agent's own keys
    /// left out: `include`, `exclude` (lists of globs), `max_units` (at most
    /// [`MAX_UNITS`]), `io_devices` (boolean), `max_io_devices` (at most
    /// [`MAX_IO_DEVICES`]). An empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: ServicesSettings = settings::parse("services", table)?;
        let defaults = Self::default();
        let bounded = |key: &str, value: Option<Count>, default: usize, max: usize| match value {
            None => Ok(default),
            Some(Count(n)) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    settings::bad("services", key, format!("expected at most {max}, got {n}"))
                }),
        };
        Ok(Self {
            max_units: bounded("max_units", s.max_units, defaults.max_units, MAX_UNITS)?,
            max_io_devices: bounded(
                "max_io_devices",
                s.max_io_devices,
                defaults.max_io_devices,
                MAX_IO_DEVICES,
            )?,
            include: s.include.unwrap_or(defaults.include),
            exclude: s.exclude.unwrap_or(defaults.exclude),
            io_devices: s.io_devices.unwrap_or(defaults.io_devices),
        })
    }

    /// Whether the unit whose cgroup is at `path` is read.
    fn selects(&self, path: &str) -> bool {
        let name = unit_name(path);
        let matches = |glob: &String| {
            if glob.contains('/') {
                glob_match(glob, path)
            } else {
                glob_match(glob, name)
            }
        };
        (self.include.is_empty() || self.include.iter().any(matches))
            && !self.exclude.iter().any(matches)
    }
}

/// What the collector knows of the host's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    /// Not looked at yet: the first run does.
    Unknown,
    /// cgroup v2: read it.
    Unified,
    /// Anything else: said once, then nothing.
    Off,
}

/// Reads systemd units' cgroups under its roots.
#[derive(Debug)]
pub struct ServicesCollector {
    roots: Roots,
    config: ServicesConfig,
    hierarchy: Hierarchy,
    /// [`UNITS_DROPPED`] so far.
    units_dropped: u64,
    /// [`IO_DEVICES_DROPPED`] so far.
    devices_dropped: u64,
    /// Device labels by number, found this run: kept no longer, since a number is
    /// reused when a device goes and another comes.
    devices: HashMap<(u32, u32), String>,
}

impl ServicesCollector {
    /// A collector with the default configuration.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, ServicesConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: ServicesConfig) -> Self {
        Self {
            roots,
            config,
            hierarchy: Hierarchy::Unknown,
            units_dropped: 0,
            devices_dropped: 0,
            devices: HashMap::new(),
        }
    }

    /// The label of device `major:minor`: its `DEVNAME`, else the numbers.
    fn device_label(&mut self, major: u32, minor: u32, out: &mut Output) -> String {
        let roots = &self.roots;
        self.devices
            .entry((major, minor))
            .or_insert_with(|| {
                match sysward_platform::read_block_device_name(roots, major, minor) {
                    Ok(Some(name)) => name,
                    Ok(None) => format!("{major}:{minor}"),
                    Err(error) => {
                        out.error(error.to_string());
                        format!("{major}:{minor}")
                    }
                }
            })
            .clone()
    }
}

impl Collector for ServicesCollector {
    fn name(&self) -> &'static str {
        "services"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        match self.hierarchy {
            Hierarchy::Off => return Ok(()),
            Hierarchy::Unified => {}
            Hierarchy::Unknown => {
                let layout = sysward_platform::read_cgroup_layout(&self.roots)?;
                if layout != CgroupLayout::Unified {
                    out.error(not_unified(&self.roots, layout));
                    self.hierarchy = Hierarchy::Off;
                    return Ok(());
                }
                self.hierarchy = Hierarchy::Unified;
            }
        }
        let units = sysward_platform::find_cgroup_units(&self.roots)?;
        let mut selected: Vec<&str> = units
            .iter()
            .map(String::as_str)
            .filter(|path| self.config.selects(path))
            .collect();
        if selected.len() > self.config.max_units {
            self.units_dropped += (selected.len() - self.config.max_units) as u64;
            selected.truncate(self.config.max_units);
        }
        self.devices.clear();
        for path in selected {
            let stats = match sysward_platform::read_cgroup_stats(&self.roots, path) {
                Ok(stats) => stats,
                // The unit stopped since the listing: nothing to say about it.
                Err(error) if error.is_not_found() => continue,
                Err(error) => {
                    out.error(error.to_string());
                    continue;
                }
            };
            for error in &stats.errors {
                out.error(error.to_string());
            }
            let devices: Vec<String> = match (&stats.io, self.config.io_devices) {
                (Some(io), true) => io
                    .devices
                    .iter()
                    .take(self.config.max_io_devices)
                    .map(|d| self.device_label(d.major, d.minor, out))
                    .collect(),
                _ => Vec::new(),
            };
            self.devices_dropped += push_unit(
                unit_name(path),
                &stats,
                self.config.io_devices.then_some(devices.as_slice()),
                out,
            );
        }
        out.push(Sample::new(
            UNITS_DROPPED,
            Kind::Counter,
            self.units_dropped as f64,
        ));
        if self.config.io_devices {
            out.push(Sample::new(
                IO_DEVICES_DROPPED,
                Kind::Counter,
                self.devices_dropped as f64,
            ));
        }
        Ok(())
    }
}

/// The error of the first run on a host without a cgroup v2 hierarchy.
fn not_unified(roots: &Roots, layout: CgroupLayout) -> String {
    let dir = roots.sys.join(CgroupLayout::DIR);
    let dir = dir.display();
    let what = match layout {
        CgroupLayout::Hybrid => format!(
            "{dir} has systemd's hybrid layout (its cgroup v2 tree at unified/ only tracks \
             processes; CPU, memory, I/O and tasks are accounted in cgroup v1)"
        ),
        CgroupLayout::Legacy => {
            format!("{dir} has cgroup v1 only (no cgroup.controllers)")
        }
        CgroupLayout::Absent | CgroupLayout::Unified => {
            format!("{dir} has no cgroup file system mounted")
        }
    };
    format!("{what}: the services collector reads cgroup v2 and stays off")
}

/// The unit's name: the last part of its cgroup path.
fn unit_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The unit's type, as systemd_exporter's `type` label has it: `service`, `scope`, ...
fn unit_type(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(_, kind)| kind)
}

/// Sends one unit's samples. `devices` holds the labels of the first devices of its
/// `io.stat`, in order, for I/O per device, or is `None` to sum the I/O of all devices.
/// Returns how many devices were left out for want of a label.
fn push_unit(name: &str, stats: &CgroupStats, devices: Option<&[String]>, out: &mut Output) -> u64 {
    let kind = unit_type(name);
    let named = |metric: &'static str, sample_kind: Kind, value: f64| {
        Sample::new(metric, sample_kind, value).label("name", name)
    };
    let typed = |metric: &'static str, sample_kind: Kind, value: f64| {
        named(metric, sample_kind, value).label("type", kind)
    };
    if let Some(cpu) = stats.cpu {
        for (mode, usec) in [("user", cpu.user_usec), ("system", cpu.system_usec)] {
            out.push(typed(CPU_SECONDS, Kind::Counter, usec as f64 / 1e6).label("mode", mode));
        }
    }
    if let Some(bytes) = stats.memory_current {
        out.push(typed(MEMORY_BYTES, Kind::Gauge, bytes as f64));
    }
    if let Some(bytes) = stats.memory_peak {
        out.push(named(MEMORY_PEAK_BYTES, Kind::Gauge, bytes as f64));
    }
    if let Some(bytes) = stats.swap_current {
        out.push(named(SWAP_BYTES, Kind::Gauge, bytes as f64));
    }
    if let Some(tasks) = stats.pids_current {
        out.push(named(TASKS, Kind::Gauge, tasks as f64));
    }
    let mut dropped = 0;
    if let Some(io) = &stats.io {
        let counters = |d: &sysward_platform::IoStatDevice| {
            [
                (IO_READ_BYTES, d.rbytes),
                (IO_WRITE_BYTES, d.wbytes),
                (IO_READ_OPS, d.rios),
                (IO_WRITE_OPS, d.wios),
            ]
        };
        match devices {
            Some(labels) => {
                for (device, label) in io.devices.iter().zip(labels) {
                    for (metric, value) in counters(device) {
                        out.push(
                            typed(metric, Kind::Counter, value as f64)
                                .label("device", label.as_str()),
                        );
                    }
                }
                dropped = io.devices.len().saturating_sub(labels.len()) as u64;
            }
            None => {
                let mut sums = [0u64; 4];
                for device in &io.devices {
                    for (sum, (_, value)) in sums.iter_mut().zip(counters(device)) {
                        *sum = sum.saturating_add(value);
                    }
                }
                let names = [IO_READ_BYTES, IO_WRITE_BYTES, IO_READ_OPS, IO_WRITE_OPS];
                for (metric, sum) in names.into_iter().zip(sums) {
                    out.push(typed(metric, Kind::Counter, sum as f64));
                }
            }
        }
    }
    let pressures = [
        &stats.cpu_pressure,
        &stats.memory_pressure,
        &stats.io_pressure,
    ];
    for (pressure, (_, some, full)) in pressures.into_iter().zip(PRESSURE) {
        let Some(Pressure {
            some: some_line,
            full: full_line,
        }) = pressure
        else {
            continue;
        };
        for (metric, line) in [(some, some_line), (full, full_line)] {
            if let Some(line) = line {
                out.push(named(metric, Kind::Counter, line.total_us as f64 / 1e6));
            }
        }
    }
    dropped
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::testing::{TempDir, configured, value_of};

    /// The cgroup v2 tree of `collectors/tests/fixtures/cgroup2`, shaped after a
    /// Debian 12 host's (kernel 6.1, systemd 252).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup2")
    }

    fn fixture_roots() -> Roots {
        let dir = fixture();
        Roots::new(dir.join("proc"), dir.join("sys"), dir)
    }

    /// Samples as exposition lines, `name{labels} value`, sorted.
    fn lines(out: &Output) -> Vec<String> {
        let mut lines: Vec<String> = out
            .samples
            .iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                format!("{}{labels} {}", s.name, s.value)
            })
            .collect();
        lines.sort();
        lines
    }

    fn run(collector: &mut ServicesCollector) -> Output {
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        out
    }

    fn config(settings: &str) -> ServicesConfig {
        ServicesConfig::from_table(&toml::from_str(settings).expect("TOML")).expect("valid")
    }

    #[test]
    fn the_fixture_gives_exactly_the_golden_samples() {
        let mut collector = ServicesCollector::new(fixture_roots());
        let out = run(&mut collector);
        assert_eq!(out.errors, Vec::<String>::new());
        let expected = std::fs::read_to_string(fixture().join("expected.txt")).expect("golden");
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(lines(&out), expected);
        for sample in &out.samples {
            let counter = sample.name.ends_with("_total");
            assert_eq!(sample.kind == Kind::Counter, counter, "{}", sample.name);
        }
    }

    #[test]
    fn include_and_exclude_select_by_path_or_by_name() {
        let names = |settings: &str| {
            let out = run(&mut ServicesCollector::with_config(
                fixture_roots(),
                config(settings),
            ));
            crate::testing::label_values(&out, TASKS, "name")
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(""),
            [
                "cron.service",
                "getty@tty1.service",
                "nginx.service",
                "ssh.service"
            ]
        );
        assert_eq!(
            names("include = [\"*.service\"]\nexclude = [\"getty@*\", \"system.slice/n*\"]"),
            ["cron.service", "ssh.service", "user@1000.service"]
        );
        assert_eq!(
            names(
                "include = [\"system.slice/*.service\", \"init.scope\"]\nexclude = [\"system.slice/system-*.slice/*\"]"
            ),
            ["cron.service", "init.scope", "nginx.service", "ssh.service"]
        );
        assert_eq!(
            names("include = []"),
            [
                "cron.service",
                "getty@tty1.service",
                "init.scope",
                "nginx.service",
                "session-3.scope",
                "ssh.service",
                "user@1000.service"
            ]
        );
    }

    #[test]
    fn units_past_the_limit_are_counted_run_after_run() {
        let mut collector =
            ServicesCollector::with_config(fixture_roots(), config("max_units = 2"));
        let out = run(&mut collector);
        assert_eq!(
            crate::testing::label_values(&out, TASKS, "name"),
            ["cron.service", "nginx.service"]
        );
        assert_eq!(value_of(&out, UNITS_DROPPED, &[]), Some(2.0));
        let out = run(&mut collector);
        assert_eq!(value_of(&out, UNITS_DROPPED, &[]), Some(4.0));
        let out = run(&mut ServicesCollector::new(fixture_roots()));
        assert_eq!(value_of(&out, UNITS_DROPPED, &[]), Some(0.0));
    }

    #[test]
    fn devices_past_their_limit_are_counted_and_can_be_summed() {
        let mut collector =
            ServicesCollector::with_config(fixture_roots(), config("max_io_devices = 1"));
        let out = run(&mut collector);
        let nginx = [("name", "nginx.service"), ("type", "service")];
        let at = |out: &Output, device: &str| {
            let mut labels = nginx.to_vec();
            labels.push(("device", device));
            value_of(out, IO_READ_BYTES, &labels)
        };
        assert_eq!(at(&out, "sda"), Some(90430464.0));
        assert_eq!(at(&out, "nvme0n1"), None);
        // nginx has three devices, ssh two, cron one; getty none.
        assert_eq!(value_of(&out, IO_DEVICES_DROPPED, &[]), Some(3.0));

        let out = run(&mut ServicesCollector::with_config(
            fixture_roots(),
            config("io_devices = false"),
        ));
        assert_eq!(
            value_of(&out, IO_READ_BYTES, &nginx),
            Some((90430464 + 1459200 + 4096) as f64)
        );
        assert_eq!(
            value_of(&out, IO_WRITE_OPS, &nginx),
            Some((1252 + 353 + 1) as f64)
        );
        assert_eq!(value_of(&out, IO_DEVICES_DROPPED, &[]), None);
        assert!(crate::testing::label_values(&out, IO_READ_BYTES, "device").is_empty());
    }

    #[test]
    fn cgroup_v1_is_said_once_then_nothing() {
        for (name, files) in [
            ("legacy", &["sys/fs/cgroup/memory/memory.stat"][..]),
            (
                "hybrid",
                &[
                    "sys/fs/cgroup/cpu/cpu.shares",
                    "sys/fs/cgroup/unified/cgroup.controllers",
                    "sys/fs/cgroup/unified/system.slice/cron.service/cpu.stat",
                ],
            ),
            ("absent", &[]),
        ] {
            let dir = TempDir::new(&format!("services-{name}"));
            for file in files {
                dir.write(file, "1\n");
            }
            let mut collector = ServicesCollector::new(dir.roots());
            let out = run(&mut collector);
            assert!(out.samples.is_empty(), "{name}: {:?}", out.samples);
            assert_eq!(out.errors.len(), 1, "{name}: {:?}", out.errors);
            assert!(
                out.errors[0].ends_with("the services collector reads cgroup v2 and stays off"),
                "{}",
                out.errors[0]
            );
            let again = run(&mut collector);
            assert!(
                again.samples.is_empty() && again.errors.is_empty(),
                "{name}"
            );
        }
        let dir = TempDir::new("services-hybrid-message");
        dir.write("sys/fs/cgroup/unified/cgroup.controllers", "\n");
        let out = run(&mut ServicesCollector::new(dir.roots()));
        assert!(out.errors[0].contains("hybrid layout"), "{}", out.errors[0]);
    }

    /// A unit stopping between the listing and the read takes its directory with it.
    #[test]
    fn a_unit_vanishing_mid_read_is_skipped_silently() {
        let dir = TempDir::new("services-vanish");
        dir.write("sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
        for unit in ["a", "b"] {
            let base = format!("sys/fs/cgroup/system.slice/{unit}.service");
            dir.write(
                &format!("{base}/cpu.stat"),
                "usage_usec 3\nuser_usec 2\nsystem_usec 1\n",
            );
            dir.write(&format!("{base}/pids.current"), "1\n");
        }
        let roots = dir.roots();
        let units = sysward_platform::find_cgroup_units(&roots).expect("lists");
        assert_eq!(units, ["system.slice/a.service", "system.slice/b.service"]);
        std::fs::remove_dir_all(roots.sys.join("fs/cgroup/system.slice/a.service"))
            .expect("stop a");
        // The collector between its listing and its reads: what it does with the list.
        let mut out = Output::default();
        let no_devices: &[String] = &[];
        for path in &units {
            match sysward_platform::read_cgroup_stats(&roots, path) {
                Ok(stats) => {
                    push_unit(unit_name(path), &stats, Some(no_devices), &mut out);
                }
                Err(error) => assert!(error.is_not_found(), "{error}"),
            }
        }
        assert_eq!(
            crate::testing::label_values(&out, TASKS, "name"),
            ["b.service"]
        );
        let out = run(&mut ServicesCollector::new(roots));
        assert_eq!(out.errors, Vec::<String>::new());
        assert_eq!(value_of(&out, TASKS, &[("name", "b.service")]), Some(1.0));
    }

    #[test]
    fn garbage_files_are_errors_naming_them_and_the_rest_is_sent() {
        let dir = TempDir::new("services-garbage");
        dir.write("sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
        let base = "sys/fs/cgroup/system.slice/bad.service";
        dir.write(&format!("{base}/cpu.stat"), "\u{0}\u{1}binary\n");
        dir.write(&format!("{base}/memory.current"), "lots\n");
        dir.write(&format!("{base}/pids.current"), "4\n");
        dir.write(
            &format!("{base}/io.stat"),
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:x rbytes=1\n",
        );
        dir.write(&format!("{base}/io.pressure"), "some total=nope\n");
        let out = run(&mut ServicesCollector::new(dir.roots()));
        let named = [("name", "bad.service")];
        assert_eq!(value_of(&out, TASKS, &named), Some(4.0));
        assert_eq!(
            value_of(
                &out,
                IO_WRITE_BYTES,
                &[
                    ("name", "bad.service"),
                    ("type", "service"),
                    ("device", "8:0")
                ]
            ),
            Some(2.0)
        );
        assert_eq!(value_of(&out, CPU_SECONDS, &named), None);
        let mut files: Vec<&str> = out
            .errors
            .iter()
            .map(|e| {
                let path = e.split(' ').nth(2).unwrap_or_default();
                path.rsplit('/').next().unwrap_or_default()
            })
            .collect();
        files.sort_unstable();
        assert_eq!(
            files,
            ["cpu.stat", "io.pressure", "io.stat", "memory.current"],
            "{:?}",
            out.errors
        );
    }

    #[test]
    fn settings_are_bounded_and_named() {
        assert_eq!(
            ServicesConfig::from_table(&toml::Table::new()),
            Ok(ServicesConfig::default())
        );
        let error = |settings: &str| {
            configured("services", &Roots::default(), settings)
                .err()
                .unwrap_or_else(|| panic!("{settings} accepted"))
        };
        assert_eq!(
            error("max_units = 10001"),
            "bad setting `max_units` for collector services: expected at most 10000, got 10001"
        );
        assert_eq!(
            error("max_io_devices = 257"),
            "bad setting `max_io_devices` for collector services: expected at most 256, got 257"
        );
        assert_eq!(
            error("include = \"*.service\""),
            "bad setting `include` for collector services: invalid type: string \"*.service\", expected a sequence"
        );
        let full = config(
            "include = [\"a\"]\nexclude = [\"b\"]\nmax_units = 0\nio_devices = false\nmax_io_devices = 2",
        );
        assert_eq!(
            full,
            ServicesConfig {
                include: vec!["a".into()],
                exclude: vec!["b".into()],
                max_units: 0,
                io_devices: false,
                max_io_devices: 2,
            }
        );
    }

    #[test]
    fn names_and_types_come_from_the_path() {
        assert_eq!(
            unit_name("system.slice/system-getty.slice/getty@tty1.service"),
            "getty@tty1.service"
        );
        assert_eq!(unit_name("init.scope"), "init.scope");
        assert_eq!(unit_type("getty@tty1.service"), "service");
        assert_eq!(unit_type("session-3.scope"), "scope");
        assert_eq!(unit_type("odd"), "");
    }
}
