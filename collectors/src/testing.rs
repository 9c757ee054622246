//! Helpers for the collectors' tests: node_exporter's fixture tree, a scratch directory,
//! and the comparison with node_exporter's own output on that tree.
//!
//! node_exporter keeps its `sys` fixture as a ttar archive (a text format, see
//! [`unpack_ttar`]) because git cannot hold the symbolic links sysfs is made of. It is
//! unpacked once per content into the system's temporary directory and reused by every
//! later test run, so that tests never depend on python or on a previous run.
//!
//! `e2e-output.txt` is exactly what node_exporter prints for these roots (its
//! `end-to-end-test.sh`, with the flags repeated in `node_exporter_e2e` below), so a sample
//! of ours that has the same name and labels must have the same value.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Collector, Kind, Output, REGISTRY, Roots};

/// `shared/` lives beside the repository, here and in CI.
pub(crate) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/node_exporter")
}

/// Roots on node_exporter's fixture tree, as its end-to-end test sets them:
/// `--path.procfs=fixtures/proc --path.sysfs=fixtures/sys --path.rootfs=fixtures`.
pub(crate) fn fixture_roots() -> Roots {
    let dir = fixture_dir();
    Roots::new(dir.join("proc"), sys_fixture().to_path_buf(), dir)
}

/// The unpacked `sys.ttar`: a `sys` directory, unpacked on first use.
pub(crate) fn sys_fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let archive = fixture_dir().join("sys.ttar");
        let bytes = std::fs::read(&archive)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", archive.display()));
        unpack_once(&bytes).join("sys")
    })
}

/// Unpacks `archive` into a directory named after its content, unless an earlier run
/// already did; returns that directory.
fn unpack_once(archive: &[u8]) -> PathBuf {
    let base = std::env::temp_dir();
    let target = base.join(format!("sysward-ttar-{:016x}", fnv1a(archive)));
    let complete = target.join(".complete");
    if complete.exists() {
        return target;
    }
    // Unpack beside the target and rename it into place, so that a concurrent run never
    // sees a half-written tree; if another run wins the race, its copy is as good.
    let scratch = base.join(format!(
        "sysward-ttar-{:016x}-{}",
        fnv1a(archive),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    unpack_ttar(archive, &scratch).expect("unpack sys.ttar");
    std::fs::write(scratch.join(".complete"), b"").expect("mark unpacked tree");
    if std::fs::rename(&scratch, &target).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
        assert!(complete.exists(), "cannot place {}", target.display());
    }
    target
}

/// FNV-1a, to name the unpacked tree after its archive's content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Unpacks a ttar archive into `dest`.
///
/// ttar (github.com/ideaship/ttar) is line based. Records are separated by `# ttar - - -`
/// lines and hold `Directory: PATH`, or `Path: PATH` followed by either `Lines: N` and N
/// lines of content (`NULLBYTE` stands for a zero byte; a last line ending in `EOF` has
/// no line break after it) or `SymlinkTo: TARGET`; then `Mode: OCTAL`.
pub(crate) fn unpack_ttar(archive: &[u8], dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let lines: Vec<&[u8]> = archive.split(|&b| b == b'\n').collect();
    let text = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
    let mut path: Option<PathBuf> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if let Some(rest) = line.strip_prefix(b"Directory: ") {
            let dir = dest.join(text(rest));
            std::fs::create_dir_all(&dir)?;
            path = Some(dir);
        } else if let Some(rest) = line.strip_prefix(b"Path: ") {
            let file = dest.join(text(rest));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            path = Some(file);
        } else if let Some(rest) = line.strip_prefix(b"Lines: ") {
            let count: usize = text(rest)
                .parse()
                .map_err(|_| io::Error::other(format!("bad line count in {:?}", text(line))))?;
            let body = lines.get(i..i + count).ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "ttar body cut short")
            })?;
            i += count;
            let mut data = body.join(&b'\n');
            match data.strip_suffix(b"EOF") {
                Some(without) => data.truncate(without.len()),
                None if count > 0 => data.push(b'\n'),
                None => {}
            }
            let data = replace_all(&data, b"NULLBYTE", b"\0");
            let file = path
                .as_ref()
                .ok_or_else(|| io::Error::other("Lines before Path"))?;
            std::fs::write(file, data)?;
        } else if let Some(rest) = line.strip_prefix(b"SymlinkTo: ") {
            let link = path
                .as_ref()
                .ok_or_else(|| io::Error::other("link before Path"))?;
            if link.symlink_metadata().is_ok() {
                std::fs::remove_file(link)?;
            }
            std::os::unix::fs::symlink(text(rest), link)?;
        } else if let Some(rest) = line.strip_prefix(b"Mode: ") {
            let Some(target) = &path else { continue };
            let is_link = target
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                let mode = u32::from_str_radix(&text(rest), 8)
                    .map_err(|_| io::Error::other(format!("bad mode in {:?}", text(line))))?;
                // Owner read is kept so that a test running as an ordinary user can still
                // read what the archive holds.
                std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode | 0o400))?;
            }
        }
    }
    Ok(())
}

fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Builds the collector `name` from settings written as `agent.toml` has them, for the
/// collectors' tests.
pub(crate) fn configured(
    name: &str,
    roots: &Roots,
    settings: &str,
) -> Result<Box<dyn Collector>, String> {
    let spec = REGISTRY
        .iter()
        .find(|spec| spec.name == name)
        .unwrap_or_else(|| panic!("no collector {name}"));
    let table: toml::Table = toml::from_str(settings).expect("valid TOML");
    (spec.configure)(&crate::CollectorContext::new(roots.clone()), &table)
}

/// The distinct values of `label` on the samples of `metric`, sorted, for the
/// collectors' tests.
pub(crate) fn label_values<'a>(out: &'a Output, metric: &str, label: &str) -> Vec<&'a str> {
    let mut values: Vec<&str> = out
        .samples
        .iter()
        .filter(|s| s.name == metric)
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == label))
        .map(|(_, v)| v.as_str())
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// A scratch directory removed on drop.
pub(crate) struct TempDir(PathBuf);

/// Numbers scratch directories apart within one test process.
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl TempDir {
    /// A fresh directory whose name includes `name`, the process id and a counter, so
    /// that neither concurrent test runs nor tests sharing a name collide.
    pub(crate) fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sysward-collectors-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        // A leftover from a crashed run would make the test read stale files.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `relative` under the directory, creating parents.
    pub(crate) fn write(&self, relative: &str, text: impl AsRef<[u8]>) {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create parent");
        std::fs::write(&path, text).expect("write fixture file");
    }

    /// Roots at `proc`, `sys` and `root` under this directory.
    pub(crate) fn roots(&self) -> Roots {
        Roots::new(self.0.join("proc"), self.0.join("sys"), self.0.join("root"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A series: its name and its labels sorted by name, as the exposition format sorts them.
pub(crate) type Series = (String, Vec<(String, String)>);

/// Label pairs sorted by name.
pub(crate) type Labels = Vec<(String, String)>;

/// One family of ours: its kind and the value of each series.
pub(crate) type Family = (Kind, BTreeMap<Labels, f64>);

/// A metric type as `e2e-output.txt` declares it. node_exporter leaves some families
/// (netstat, vmstat) `untyped`; either of our kinds matches those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum E2eType {
    Counter,
    Gauge,
    Untyped,
}

impl E2eType {
    pub(crate) fn accepts(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (E2eType::Untyped, _)
                | (E2eType::Counter, Kind::Counter)
                | (E2eType::Gauge, Kind::Gauge)
        )
    }
}

/// One metric family of `e2e-output.txt`: its type and its samples. A family can have a
/// `# TYPE` line and no samples, where the end-to-end test strips them.
#[derive(Debug, Clone)]
pub(crate) struct E2eFamily {
    pub(crate) kind: E2eType,
    pub(crate) samples: BTreeMap<Labels, f64>,
}

/// Every family of `e2e-output.txt`, by name.
pub(crate) fn e2e_families() -> &'static BTreeMap<String, E2eFamily> {
    static FAMILIES: OnceLock<BTreeMap<String, E2eFamily>> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let path = fixture_dir().join("e2e-output.txt");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        parse_exposition(&text)
    })
}

/// Parses the Prometheus text format as node_exporter writes it.
fn parse_exposition(text: &str) -> BTreeMap<String, E2eFamily> {
    let mut families: BTreeMap<String, E2eFamily> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a kind");
            let kind = match kind {
                "counter" => E2eType::Counter,
                "gauge" => E2eType::Gauge,
                "untyped" => E2eType::Untyped,
                // Summaries and histograms are Go runtime metrics, never ours.
                _ => continue,
            };
            families.insert(
                name.to_owned(),
                E2eFamily {
                    kind,
                    samples: BTreeMap::new(),
                },
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let ((name, labels), value) = parse_sample_line(line);
        if let Some(family) = families.get_mut(&name) {
            assert!(
                family.samples.insert(labels, value).is_none(),
                "repeated series: {line}"
            );
        }
    }
    families
}

/// `name{label="value",...} value` of the text exposition format.
fn parse_sample_line(line: &str) -> (Series, f64) {
    let name_end = line.find(['{', ' ']).expect("sample line has a value");
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches(',');
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, quoted) = body.split_once("=\"").expect("label has a value");
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next().expect("label value is terminated") {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().expect("escape is complete").1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, other) => value.push(other),
                }
            };
            labels.push((label.to_owned(), value));
            body = &quoted[end + 1..];
        }
    }
    labels.sort();
    let value = rest
        .split_ascii_whitespace()
        .next()
        .expect("sample line has a value");
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("bad value {other:?} in {line}")),
    };
    ((name, labels), value)
}

/// Whether two values agree to a relative 1e-9 (absolute near zero).
pub(crate) fn close(ours: f64, theirs: f64) -> bool {
    if ours.is_nan() || theirs.is_nan() {
        return ours.is_nan() && theirs.is_nan();
    }
    let tolerance = 1e-9 * ours.abs().max(theirs.abs()).max(1.0);
    (ours - theirs).abs() <= tolerance
}

/// Our samples grouped as families: kind and series; panics on a series sent twice or
/// a family with two kinds.
pub(crate) fn families_of(out: &Output) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for sample in &out.samples {
        let mut labels = owned_labels(sample);
        labels.sort();
        let family = families
            .entry(sample.name.to_string())
            .or_insert_with(|| (sample.kind, BTreeMap::new()));
        assert_eq!(family.0, sample.kind, "two kinds for {}", sample.name);
        let again = family.1.insert(labels.clone(), sample.value);
        assert!(
            again.is_none(),
            "series sent twice: {} {labels:?}",
            sample.name
        );
    }
    families
}

/// The differences between one family of ours and node_exporter's, as readable lines.
pub(crate) fn family_mismatches(
    name: &str,
    kind: Kind,
    ours: &BTreeMap<Labels, f64>,
    theirs: &E2eFamily,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !theirs.kind.accepts(kind) {
        problems.push(format!(
            "{name}: ours is {kind:?}, node_exporter's {:?}",
            theirs.kind
        ));
    }
    for (labels, value) in &theirs.samples {
        match ours.get(labels) {
            None => problems.push(format!(
                "{name}{labels:?}: node_exporter has it, we lack it"
            )),
            Some(our) if !close(*our, *value) => problems.push(format!(
                "{name}{labels:?}: ours {our}, node_exporter {value}"
            )),
            Some(_) => {}
        }
    }
    for labels in ours.keys().filter(|l| !theirs.samples.contains_key(*l)) {
        problems.push(format!(
            "{name}{labels:?}: we have it, node_exporter lacks it"
        ));
    }
    problems
}

/// Runs `collector` once on its roots and asserts that every family it makes whose name
/// passes `select` is exactly node_exporter's: same names, labels, types and values, none
/// missing and none extra, and that nothing failed along the way.
pub(crate) fn assert_matches_node_exporter(
    collector: &mut dyn Collector,
    select: &dyn Fn(&str) -> bool,
) {
    let mut out = Output::default();
    collector
        .collect(&mut out)
        .expect("collects from the fixture");
    assert_eq!(
        out.errors,
        Vec::<String>::new(),
        "no part fails on the fixture"
    );
    let ours = families_of(&out);
    let theirs = e2e_families();
    let mut problems = Vec::new();
    let mut compared = 0;
    for (name, family) in theirs.iter().filter(|(name, _)| select(name)) {
        match ours.get(name) {
            Some((kind, series)) => {
                compared += 1;
                problems.extend(family_mismatches(name, *kind, series, family));
            }
            None if family.samples.is_empty() => {}
            None => problems.push(format!("{name}: node_exporter has the family, we lack it")),
        }
    }
    for name in ours
        .keys()
        .filter(|n| select(n) && !theirs.contains_key(*n))
    {
        problems.push(format!(
            "{name}: we have the family, node_exporter lacks it"
        ));
    }
    assert!(compared > 0, "no e2e family selected");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A sample's labels as owned strings, for maps keyed by them.
pub(crate) fn owned_labels(sample: &crate::Sample) -> Vec<(String, String)> {
    sample
        .labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// Kinds and values of one run, by series, for tests that look up single samples.
pub(crate) fn by_series(out: &Output) -> HashMap<Series, f64> {
    out.samples
        .iter()
        .map(|s| {
            let mut labels = owned_labels(s);
            labels.sort();
            ((s.name.to_string(), labels), s.value)
        })
        .collect()
}

/// The value of the series `name` with exactly `labels` (in any order), if sent.
pub(crate) fn value_of(out: &Output, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    by_series(out).get(&(name.to_owned(), wanted)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttar_records_become_files_links_and_modes() {
        let dir = TempDir::new("ttar");
        let archive = b"# Archive\nDirectory: sys\nMode: 755\n# ttar - - -\n\
Path: sys/a\nLines: 2\none\ntwo\nMode: 644\n# ttar - - -\n\
Path: sys/b\nLines: 1\nxNULLBYTEyEOF\nMode: 444\n# ttar - - -\n\
Path: sys/empty\nLines: 0\nMode: 600\n# ttar - - -\n\
Path: sys/link\nSymlinkTo: a\n# ttar - - -\n";
        unpack_ttar(archive, dir.path()).expect("unpacks");
        let sys = dir.path().join("sys");
        assert_eq!(std::fs::read(sys.join("a")).expect("a"), b"one\ntwo\n");
        assert_eq!(std::fs::read(sys.join("b")).expect("b"), b"x\0y");
        assert_eq!(std::fs::read(sys.join("empty")).expect("empty"), b"");
        assert_eq!(
            std::fs::read(sys.join("link")).expect("link"),
            b"one\ntwo\n"
        );
    }

    #[test]
    fn the_sys_fixture_unpacks_with_its_links() {
        let hwmon0 = sys_fixture().join("class/hwmon/hwmon0");
        assert!(
            hwmon0
                .symlink_metadata()
                .expect("hwmon0")
                .file_type()
                .is_symlink()
        );
        let name = std::fs::read_to_string(hwmon0.join("name")).expect("name through link");
        assert_eq!(name, "coretemp\n");
    }

    #[test]
    fn e2e_output_parses_with_types_and_escapes() {
        let families = e2e_families();
        let load = &families["node_load1"];
        assert_eq!(load.kind, E2eType::Gauge);
        assert_eq!(load.samples[&Vec::new()], 0.21);
        assert_eq!(families["node_vmstat_pgfault"].kind, E2eType::Untyped);
        let labels = &families["node_hwmon_sensor_label"];
        assert!(
            labels
                .samples
                .keys()
                .any(|l| l.iter().any(|(_, v)| v == "Left side"))
        );
    }
}

/// Every collector of the registry against node_exporter's fixture tree, compared with
/// node_exporter's own output for it: every sample of every family both send must have
/// the same name, labels and value; every family of node_exporter's counterparts of our
/// collectors must be sent or listed as skipped, with the reason; every family we send
/// must be in node_exporter's output or listed, with the reason.
#[cfg(test)]
mod node_exporter_e2e {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{NameFilter, hwmon, netdev, smart};

    /// e2e families from node_exporter collectors that have a Sysward counterpart:
    /// `stat`/`cpu`, `meminfo`, `loadavg`, `vmstat`, `pressure`, `diskstats`,
    /// `netdev`/`netclass`, `netstat`, `sockstat`, `tcpstat`, `processes`, `hwmon`, `os`,
    /// `uname`, `time`, `timex`, `filesystem`. Families of other collectors (zfs, nfs,
    /// mdadm, ...) are outside issue 3 and not looked at.
    const COUNTERPART_PREFIXES: &[&str] = &[
        "node_boot_time_seconds",
        "node_context_switches_total",
        "node_cpu_",
        "node_disk_",
        "node_filesystem_",
        "node_forks_total",
        "node_hwmon_",
        "node_intr_total",
        "node_load",
        "node_memory_",
        "node_netstat_",
        "node_network_",
        "node_os_",
        "node_pressure_",
        "node_processes_",
        "node_procs_",
        "node_sockstat_",
        "node_tcp_",
        "node_time_",
        "node_timex_",
        "node_uname_",
        "node_vmstat_",
    ];

    /// Counterpart families node_exporter sends for the fixture that Sysward does not
    /// (a trailing `*` matches a prefix).
    const NOT_SENT: &[(&str, &str)] = &[
        (
            "node_cpu_info",
            "per-CPU /proc/cpuinfo series (--collector.cpu.info); Sysward sends sysward_host_cpu_info once per model",
        ),
        (
            "node_cpu_bug_info",
            "part of --collector.cpu.info, see node_cpu_info",
        ),
        (
            "node_cpu_flag_info",
            "part of --collector.cpu.info, see node_cpu_info",
        ),
        (
            "node_cpu_core_throttles_total",
            "sysfs thermal_throttle, not part of issue 3",
        ),
        (
            "node_cpu_package_throttles_total",
            "sysfs thermal_throttle, not part of issue 3",
        ),
        (
            "node_cpu_isolated",
            "sysfs cpu/isolated, not part of issue 3",
        ),
        (
            "node_cpu_vulnerabilities_info",
            "node_exporter's cpu_vulnerabilities collector (sysfs), not part of issue 3",
        ),
        (
            "node_cpu_frequency_hertz",
            "node_exporter's cpufreq collector (sysfs), not part of issue 3",
        ),
        (
            "node_cpu_scaling_*",
            "node_exporter's cpufreq collector (sysfs), not part of issue 3",
        ),
        (
            "node_disk_info",
            "from the udev database, not /proc/diskstats",
        ),
        (
            "node_disk_filesystem_info",
            "from the udev database, not /proc/diskstats",
        ),
        (
            "node_disk_device_mapper_info",
            "from the udev database, not /proc/diskstats",
        ),
        (
            "node_disk_ata_*",
            "from the udev database, not /proc/diskstats",
        ),
        (
            "node_memory_numa_*",
            "node_exporter's meminfo_numa collector (sysfs per-node meminfo), not part of issue 3",
        ),
        (
            "node_network_receive_*",
            "the fixture has no proc/net/dev: node_exporter's test read its own `lo` over netlink",
        ),
        (
            "node_network_transmit_*_total",
            "the fixture has no proc/net/dev: node_exporter's test read its own `lo` over netlink",
        ),
        (
            "node_os_*",
            "node_exporter reads usr/lib/os-release under its fixture root, which shared/ does not carry",
        ),
    ];

    /// Families Sysward sends that node_exporter's output lacks, or has without samples.
    const NOT_IN_E2E: &[(&str, &str)] = &[
        (
            "node_filesystem_*",
            "filesystem is disabled in node_exporter's end-to-end test: it needs live statvfs",
        ),
        (
            "node_timex_*",
            "timex is disabled in node_exporter's end-to-end test: adjtimex reads the live clock",
        ),
        (
            "node_uname_info",
            "uname is disabled in node_exporter's end-to-end test",
        ),
        (
            "node_tcp_connection_states",
            "tcpstat is disabled in node_exporter's end-to-end test",
        ),
        (
            "node_time_seconds",
            "stripped from e2e-output.txt: it changes every run",
        ),
        (
            "sysward_*",
            "Sysward's own metrics, with no node_exporter counterpart",
        ),
    ];

    /// Parts that fail on the fixture tree, by collector and a piece of the message.
    const EXPECTED_ERRORS: &[(&str, &str, &str)] = &[
        (
            "filesystem",
            "statvfs: cannot read",
            "the fixture's mount points do not exist under its root",
        ),
        ("netdev", "proc/net/dev", "the fixture has no proc/net/dev"),
        (
            "tcpstat",
            "proc/net/tcp",
            "the fixture has no proc/net/tcp: the whole run fails",
        ),
        (
            "host",
            "proc/sys/kernel/ostype",
            "the fixture has no uname files",
        ),
        ("host", "etc/os-release", "the fixture has no os-release"),
        ("host", "etc/machine-id", "the fixture has no machine-id"),
        (
            "systemd",
            "does not run systemd",
            "the fixture has no run/systemd/system",
        ),
        (
            "services",
            "has no cgroup file system mounted",
            "the fixture has no sys/fs/cgroup",
        ),
        (
            "smart",
            "SMART is off: cannot run the helper",
            "the fixture has no SMART helper (and no disks)",
        ),
    ];

    /// Collectors that must each match at least this many e2e families, so that the
    /// test cannot pass by one of them going quiet.
    const MIN_FAMILIES: &[(&str, usize)] = &[
        ("cpu", 10),
        ("load", 3),
        ("memory", 50),
        ("diskstats", 17),
        ("netdev", 18),
        ("netstat", 40),
        ("sockstat", 20),
        ("processes", 5),
        ("time", 2),
        ("hwmon", 50),
    ];

    fn listed<'a>(list: &'a [(&'a str, &'a str)], name: &str) -> Option<&'a str> {
        list.iter()
            .find(|(pattern, _)| match pattern.split_once('*') {
                Some((head, tail)) => name.starts_with(head) && name.ends_with(tail),
                None => name == *pattern,
            })
            .map(|(pattern, _)| *pattern)
    }

    /// Builds a registry collector as node_exporter's `end-to-end-test.sh` configured
    /// its counterpart, where its flags change what is sent.
    fn build(name: &str, roots: &Roots) -> Box<dyn Collector> {
        match name {
            "hwmon" => Box::new(hwmon::HwmonCollector::with_config(
                roots.clone(),
                hwmon::HwmonConfig {
                    // --collector.hwmon.chip-include
                    chips: NameFilter::include(
                        "(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
                    )
                    .expect("compiles"),
                },
            )),
            // A helper inside the fixture tree, which has none: the same answer on every
            // machine, whatever is installed there.
            "smart" => Box::new(smart::SmartCollector::with_config(smart::SmartConfig {
                helper: Some(roots.rootfs.join("usr/lib/sysward/sysward-smart")),
                ..smart::SmartConfig::default()
            })),
            "netdev" => Box::new(netdev::NetdevCollector::with_config(
                roots.clone(),
                netdev::NetdevConfig {
                    // --collector.netclass.ignored-devices
                    devices: NameFilter::exclude("(dmz|int)").expect("compiles"),
                },
            )),
            _ => configured(name, roots, "").expect("the defaults build"),
        }
    }

    #[test]
    fn every_collector_matches_node_exporter_on_its_fixture() {
        let roots = fixture_roots();
        let mut problems = Vec::new();
        let mut all = Output::default();
        let mut owner: HashMap<String, &str> = HashMap::new();
        let mut errors_seen = BTreeSet::new();
        // The collectors of services (off by default) read servers, not the fixture tree.
        for spec in REGISTRY.iter().filter(|spec| spec.default_enabled) {
            let mut out = Output::default();
            if let Err(error) = build(spec.name, &roots).collect(&mut out) {
                out.error(error.to_string());
            }
            for error in &out.errors {
                match EXPECTED_ERRORS
                    .iter()
                    .position(|(name, part, _)| *name == spec.name && error.contains(part))
                {
                    Some(index) => {
                        errors_seen.insert(index);
                    }
                    None => problems.push(format!("{}: unexpected error: {error}", spec.name)),
                }
            }
            for sample in &out.samples {
                owner.entry(sample.name.to_string()).or_insert(spec.name);
            }
            all.samples.extend(out.samples);
        }
        for (index, (name, part, _)) in EXPECTED_ERRORS.iter().enumerate() {
            if !errors_seen.contains(&index) {
                problems.push(format!("expected error no longer happens: {name}: {part}"));
            }
        }

        // Panics on a series sent twice, by one collector or by two.
        let ours = families_of(&all);
        let theirs = e2e_families();
        let (mut families, mut samples) = (0, 0);
        let mut per_collector: HashMap<&str, usize> = HashMap::new();
        for (name, (kind, series)) in &ours {
            match theirs.get(name).filter(|family| !family.samples.is_empty()) {
                Some(family) => {
                    problems.extend(family_mismatches(name, *kind, series, family));
                    families += 1;
                    samples += family.samples.len();
                    *per_collector.entry(owner[name]).or_default() += 1;
                    if listed(NOT_IN_E2E, name).is_some() {
                        problems.push(format!("{name}: listed in NOT_IN_E2E but compared"));
                    }
                }
                None if listed(NOT_IN_E2E, name).is_some() => {}
                None => problems.push(format!(
                    "{name}: we send it, node_exporter's output lacks it"
                )),
            }
        }
        for (name, family) in theirs {
            let counterpart = COUNTERPART_PREFIXES.iter().any(|p| name.starts_with(p));
            if !counterpart || family.samples.is_empty() || ours.contains_key(name) {
                continue;
            }
            if listed(NOT_SENT, name).is_none() {
                problems.push(format!("{name}: node_exporter sends it, we do not"));
            }
        }
        for (pattern, _) in NOT_SENT {
            if ours
                .keys()
                .any(|name| listed(&[(pattern, "")], name).is_some())
            {
                problems.push(format!("{pattern}: listed in NOT_SENT but sent"));
            }
        }

        println!(
            "node_exporter e2e: matched {families} families and {samples} samples \
             ({} families sent, {} samples sent)",
            ours.len(),
            all.samples.len()
        );
        let mut by_collector: Vec<_> = per_collector.iter().collect();
        by_collector.sort();
        println!("matched families per collector: {by_collector:?}");
        for (collector, minimum) in MIN_FAMILIES {
            let matched = per_collector.get(collector).copied().unwrap_or(0);
            if matched < *minimum {
                problems.push(format!(
                    "{collector}: {matched} families matched, at least {minimum} expected"
                ));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(families >= 200, "only {families} families matched");
        assert!(samples >= 500, "only {samples} samples matched");
    }

    #[test]
    fn the_lists_of_exceptions_name_real_families() {
        let theirs = e2e_families();
        for (pattern, reason) in NOT_SENT {
            assert!(!reason.is_empty());
            assert!(
                theirs
                    .keys()
                    .any(|name| listed(&[(pattern, "")], name).is_some()),
                "{pattern} matches no node_exporter family"
            );
        }
    }

    /// Not a comparison: every default collector runs on the machine running the tests
    /// and the core ones send something, whatever that machine is.
    #[test]
    fn every_default_collector_runs_on_this_host() {
        let roots = Roots::default();
        for spec in REGISTRY.iter().filter(|spec| spec.default_enabled) {
            let mut out = Output::default();
            let result = configured(spec.name, &roots, "")
                .expect("the defaults build")
                .collect(&mut out);
            println!(
                "{}: {} samples, {:?}, errors {:?}",
                spec.name,
                out.samples.len(),
                result.as_ref().err(),
                out.errors
            );
            if ["cpu", "load", "memory", "processes", "time", "sockstat"].contains(&spec.name) {
                assert!(result.is_ok(), "{}: {result:?}", spec.name);
                assert!(!out.samples.is_empty(), "{} sent nothing", spec.name);
            }
            let _ = families_of(&out);
        }
    }
}
