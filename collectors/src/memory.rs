//! `memory`: every field of `/proc/meminfo` as a gauge.
//!
//! Names follow node_exporter's `meminfo` collector: `node_memory_<Field>_bytes` for a
//! field in kB (the value times 1024), `node_memory_<Field>` for a count such as
//! `HugePages_Total`, with `Active(anon)` written `Active_anon`. Every field the kernel
//! prints is sent, so a newer kernel's fields appear without a change here.
//!
//! It also sends the paging counters of `/proc/vmstat` that node_exporter's `vmstat`
//! collector sends by default (`node_vmstat_<field>`; node_exporter types them
//! `untyped`, here they are counters), and the memory and I/O pressure totals of
//! `/proc/pressure` where the kernel has them.

use serde::Deserialize;
use sysward_platform::{MemInfo, MemInfoField, Roots, VmStat};

use crate::filter::{NameFilter, builtin_include, is_metric_name_part};
use crate::layout::{Field, Layout};
use crate::settings::{self, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample, psi};

/// The prefix of every meminfo metric this collector sends.
pub const PREFIX: &str = "node_memory_";
/// The prefix of every vmstat metric this collector sends.
pub const VMSTAT_PREFIX: &str = "node_vmstat_";
/// node_exporter's default `--collector.vmstat.fields`: page-ins and -outs, swap-ins
/// and -outs, page faults and OOM kills.
pub const DEFAULT_VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

/// Seconds in which some task waited for memory (counter).
pub const PRESSURE_MEMORY_WAITING: &str = "node_pressure_memory_waiting_seconds_total";
/// Seconds in which all tasks were stalled on memory (counter).
pub const PRESSURE_MEMORY_STALLED: &str = "node_pressure_memory_stalled_seconds_total";
/// Seconds in which some task waited for I/O (counter).
pub const PRESSURE_IO_WAITING: &str = "node_pressure_io_waiting_seconds_total";
/// Seconds in which all tasks were stalled on I/O (counter).
pub const PRESSURE_IO_STALLED: &str = "node_pressure_io_stalled_seconds_total";

/// What the `memory` collector sends besides meminfo.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// `/proc/vmstat` fields to send.
    pub vmstat_fields: NameFilter,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            vmstat_fields: builtin_include(DEFAULT_VMSTAT_FIELDS),
        }
    }
}

/// `[collectors.memory]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemorySettings {
    vmstat_fields: Option<Pattern>,
}

impl MemoryConfig {
    /// The configuration a `[collectors.memory]` table asks for, the agent's own keys
    /// left out: `vmstat_fields` (a regular expression on `/proc/vmstat` field names,
    /// `".*"` or `""` for all; default [`DEFAULT_VMSTAT_FIELDS`]). An empty table gives
    /// the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: MemorySettings = settings::parse("memory", table)?;
        Ok(Self {
            vmstat_fields: settings::include_only(s.vmstat_fields, Self::default().vmstat_fields),
        })
    }
}

/// Reads `/proc/meminfo`, `/proc/vmstat` and memory and I/O pressure under its roots.
#[derive(Debug)]
pub struct MemoryCollector {
    roots: Roots,
    config: MemoryConfig,
    /// What each `/proc/vmstat` field became, by place (see [`Layout`]).
    vmstat: Layout<String, Field>,
    /// The last `/proc/vmstat` reading, refilled in place each run.
    vmstat_reading: VmStat,
    /// What each `/proc/meminfo` field (name, and whether in kB) became, by place.
    meminfo: Layout<(String, bool), Field>,
}

impl MemoryCollector {
    /// A collector with node_exporter's default vmstat fields.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, MemoryConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: MemoryConfig) -> Self {
        Self {
            roots,
            config,
            vmstat: Layout::default(),
            vmstat_reading: VmStat::default(),
            meminfo: Layout::default(),
        }
    }

    fn push_vmstat(&mut self, out: &mut Output) {
        let path = self.roots.proc.join(VmStat::FILE);
        let stat = &mut self.vmstat_reading;
        if let Err(error) = sysward_platform::read_vmstat(&self.roots, stat) {
            out.error(error.to_string());
            return;
        }
        for skipped in &stat.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        let filter = &self.config.vmstat_fields;
        self.vmstat.start();
        for (name, _) in &stat.fields {
            self.vmstat.next(
                |key| key == name,
                || {
                    let field = if !filter.passes(name) {
                        Field::Skip
                    } else if !is_metric_name_part(name) {
                        Field::Invalid
                    } else {
                        Field::send(format!("{VMSTAT_PREFIX}{name}"), Kind::Counter)
                    };
                    (name.clone(), field)
                },
            );
        }
        if self.vmstat.finish() {
            // The kernel prints each field once; a file that repeats one would make two
            // samples of one series in a batch.
            self.vmstat.mark_duplicates();
        }
        for ((name, value), (_, field)) in stat.fields.iter().zip(self.vmstat.entries()) {
            match field {
                Field::Skip => {}
                Field::Send {
                    duplicate: true, ..
                } => out.error(format!(
                    "{}: field {name:?} appears a second time; skipped",
                    path.display()
                )),
                Field::Send { name, kind, .. } => {
                    out.push(Sample::new(name.clone(), *kind, *value as f64))
                }
                Field::Invalid => out.error(format!(
                    "{}: {name:?} makes no valid metric name; skipped",
                    path.display()
                )),
            }
        }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        // The parts that can fail alone come first, so that a meminfo failure, which
        // fails the run, does not take them with it.
        self.push_vmstat(out);
        psi::push_pressure(
            &self.roots,
            "memory",
            Some(PRESSURE_MEMORY_WAITING),
            Some(PRESSURE_MEMORY_STALLED),
            out,
        );
        psi::push_pressure(
            &self.roots,
            "io",
            Some(PRESSURE_IO_WAITING),
            Some(PRESSURE_IO_STALLED),
            out,
        );
        let info = sysward_platform::read_meminfo(&self.roots)?;
        let path = self.roots.proc.join(MemInfo::FILE);
        for skipped in &info.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        self.meminfo.start();
        for field in &info.fields {
            self.meminfo.next(
                |(name, in_kb)| *name == field.name && *in_kb == field.in_kb,
                || {
                    let verdict = metric_name(field)
                        .map_or(Field::Invalid, |name| Field::send(name, Kind::Gauge));
                    ((field.name.clone(), field.in_kb), verdict)
                },
            );
        }
        if self.meminfo.finish() {
            // Two kernel names can map to one metric (`A(b)` and `A_b`).
            self.meminfo.mark_duplicates();
        }
        for (field, (_, verdict)) in info.fields.iter().zip(self.meminfo.entries()) {
            match verdict {
                Field::Skip => {}
                Field::Invalid => out.error(format!(
                    "{}: field {:?} makes no valid metric name; skipped",
                    path.display(),
                    field.name
                )),
                Field::Send {
                    name,
                    duplicate: true,
                    ..
                } => out.error(format!(
                    "{}: field {:?} gives {name} a second time; skipped",
                    path.display(),
                    field.name
                )),
                Field::Send { name, kind, .. } => {
                    // In f64 rather than `MemInfoField::bytes`, which gives up on u64
                    // overflow; a sample is an f64 anyway.
                    let value = if field.in_kb {
                        field.value as f64 * 1024.0
                    } else {
                        field.value as f64
                    };
                    out.push(Sample::new(name.clone(), *kind, value));
                }
            }
        }
        Ok(())
    }
}

/// node_exporter's name for a field, or `None` if the field's name cannot make a valid
/// Prometheus metric name.
fn metric_name(field: &MemInfoField) -> Option<String> {
    let name = field.name.as_str();
    // node_exporter's regex `\((.*)\)` → `_$1`: from the first `(` to the last `)`.
    let stem = match (name.find('('), name.rfind(')')) {
        (Some(open), Some(close)) if open < close => format!(
            "{}_{}{}",
            &name[..open],
            &name[open + 1..close],
            &name[close + 1..]
        ),
        _ => name.to_owned(),
    };
    let metric = if field.in_kb {
        format!("{PREFIX}{stem}_bytes")
    } else {
        format!("{PREFIX}{stem}")
    };
    // The prefix already provides a valid first character.
    metric
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then_some(metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, in_kb: bool) -> MemInfoField {
        MemInfoField {
            name: name.to_owned(),
            value: 1,
            in_kb,
        }
    }

    #[test]
    fn names_follow_node_exporter() {
        let cases = [
            ("MemTotal", true, Some("node_memory_MemTotal_bytes")),
            ("Active(anon)", true, Some("node_memory_Active_anon_bytes")),
            ("Committed_AS", true, Some("node_memory_Committed_AS_bytes")),
            (
                "HugePages_Total",
                false,
                Some("node_memory_HugePages_Total"),
            ),
            ("Odd(a)b", false, Some("node_memory_Odd_ab")),
            ("Dash-ed", true, None),
            ("Nested(a(b))", true, None),
            ("Ünicode", true, None),
        ];
        for (name, in_kb, expected) in cases {
            assert_eq!(
                metric_name(&field(name, in_kb)).as_deref(),
                expected,
                "{name}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use super::*;
        use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots};

        #[test]
        fn matches_node_exporter_on_its_fixture() {
            // `node_memory_numa_*` come from node_exporter's `meminfo_numa` collector,
            // which reads sysfs, not /proc/meminfo.
            let select = |name: &str| {
                name.starts_with(PREFIX) && !name.starts_with("node_memory_numa_")
                    || name.starts_with(VMSTAT_PREFIX)
                    || name.starts_with("node_pressure_memory_")
                    || name.starts_with("node_pressure_io_")
            };
            assert_matches_node_exporter(&mut MemoryCollector::new(fixture_roots()), &select);
        }

        #[test]
        fn bad_lines_are_recorded_and_skipped() {
            let dir = TempDir::new("memory-bad-lines");
            dir.write(
                "proc/meminfo",
                "MemTotal: 2 kB\nBroken 5 kB\nWeird-Name: 3\nActive(anon): 1 kB\nActive_anon: 9 kB\n",
            );
            // No pressure directory: a kernel without PSI, which is no error.
            dir.write(
                "proc/vmstat",
                "nr_free_pages 3\npgfault 5\npgmajfault x\npgfault 6\n",
            );
            let mut out = Output::default();
            MemoryCollector::new(dir.roots())
                .collect(&mut out)
                .expect("a bad line does not fail the run");
            assert_eq!(
                out.samples,
                [
                    Sample::new("node_vmstat_pgfault", Kind::Counter, 5.0),
                    Sample::new("node_memory_MemTotal_bytes", Kind::Gauge, 2048.0),
                    Sample::new("node_memory_Active_anon_bytes", Kind::Gauge, 1024.0),
                ]
            );
            assert_eq!(out.errors.len(), 5, "{:#?}", out.errors);
            assert!(out.errors[0].contains("vmstat line 3"), "{}", out.errors[0]);
            // The first pgfault is sent, the second is not.
            assert!(
                out.errors[1].contains("\"pgfault\" appears a second time"),
                "{}",
                out.errors[1]
            );
            assert!(
                out.errors[2].contains("meminfo line 2"),
                "{}",
                out.errors[2]
            );
            assert!(out.errors[3].contains("Weird-Name"), "{}", out.errors[3]);
            assert!(out.errors[4].contains("second time"), "{}", out.errors[4]);
        }

        #[test]
        fn a_collector_that_remembers_the_layouts_sends_what_a_new_one_sends() {
            let dir = TempDir::new("memory-layouts");
            let mut kept = MemoryCollector::new(dir.roots());
            // Fields added and gone, a duplicate coming and going, a unit changing.
            let layouts = [
                (
                    "MemTotal: 2 kB\nActive(anon): 1 kB\n",
                    "pgfault 5\nnr_free_pages 3\n",
                ),
                (
                    "MemTotal: 2 kB\nActive_anon: 9 kB\nActive(anon): 1 kB\n",
                    "nr_free_pages 3\npgfault 6\n",
                ),
                (
                    "MemTotal: 2 kB\nActive(anon): 1 kB\nActive_anon: 9 kB\n",
                    "pgfault 6\npgmajfault 1\npgfault 8\n",
                ),
                ("MemTotal: 2\nActive(anon): 1 kB\n", "pgfault 7\n"),
                ("Bad-Name: 1 kB\nMemTotal: 2 kB\n", ""),
            ];
            for (meminfo, vmstat) in layouts {
                dir.write("proc/meminfo", meminfo);
                dir.write("proc/vmstat", vmstat);
                let mut remembered = Output::default();
                kept.collect(&mut remembered).expect("collects");
                let mut fresh = Output::default();
                MemoryCollector::new(dir.roots())
                    .collect(&mut fresh)
                    .expect("collects");
                assert_eq!(remembered.samples, fresh.samples, "{meminfo:?} {vmstat:?}");
                assert_eq!(remembered.errors, fresh.errors, "{meminfo:?} {vmstat:?}");
            }
        }

        #[test]
        fn the_default_vmstat_pattern_compiles() {
            NameFilter::include(DEFAULT_VMSTAT_FIELDS).expect("compiles");
        }

        #[test]
        fn an_unreadable_file_fails_the_run() {
            let roots = Roots::new("/nonexistent/sysward/proc", "/nonexistent", "/nonexistent");
            let error = MemoryCollector::new(roots)
                .collect(&mut Output::default())
                .expect_err("no file");
            assert!(
                error
                    .to_string()
                    .contains("/nonexistent/sysward/proc/meminfo"),
                "{error}"
            );
        }

        #[test]
        fn the_vmstat_fields_setting_chooses_the_fields() {
            let dir = TempDir::new("memory-settings");
            dir.write("proc/meminfo", "MemTotal: 2 kB\n");
            dir.write("proc/vmstat", "nr_free_pages 3\npgfault 5\npswpin 7\n");
            let vmstat = |settings: &str| -> Vec<String> {
                let mut collector =
                    crate::testing::configured("memory", &dir.roots(), settings).expect("valid");
                let mut out = Output::default();
                collector.collect(&mut out).expect("collects");
                out.samples
                    .iter()
                    .filter(|s| s.name.starts_with(VMSTAT_PREFIX))
                    .map(|s| s.name.to_string())
                    .collect()
            };
            assert_eq!(
                vmstat("vmstat_fields = \"^nr_\""),
                ["node_vmstat_nr_free_pages"]
            );
            assert_eq!(vmstat(""), ["node_vmstat_pgfault", "node_vmstat_pswpin"]);
            assert_eq!(vmstat("vmstat_fields = \"\"").len(), 3);
            let config = MemoryConfig::from_table(&toml::Table::new()).unwrap();
            assert_eq!(
                format!("{config:?}"),
                format!("{:?}", MemoryConfig::default())
            );
        }
    }
}
