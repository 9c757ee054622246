//! `filesystem`: size, free space and inodes of each mounted file system.
//!
//! Names and labels are node_exporter's (`node_filesystem_*{device,fstype,mountpoint}`),
//! and so are the default exclusions of pseudo file systems and of the mount points of
//! the kernel's own trees and of container runtimes' layers.
//!
//! The mount table is init's (`/proc/1/mountinfo`), so that an agent in a container
//! given the host's `/proc` sees the host's mounts; each mount point is then reached
//! under [`Roots::rootfs`] (where the host's root is bind-mounted) and labelled with its
//! path on the host.
//!
//! `statvfs` on a mount whose server is gone blocks without end. Calls run off the
//! collector's thread with a deadline ([`StatvfsRunner`]); a mount that misses it is sent
//! with `node_filesystem_device_error` 1 and is not called again until its hung call
//! returns, so one dead NFS server never holds up a cycle nor piles up threads.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sysward_platform::{FsUsage, Mount, Mounts, Roots, StatvfsOutcome, StatvfsRunner};

use crate::filter::{NameFilter, builtin_exclude};
use crate::settings::{self, HumanDuration, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// Size in bytes (gauge).
pub const SIZE: &str = "node_filesystem_size_bytes";
/// Free bytes, including those reserved for root (gauge).
pub const FREE: &str = "node_filesystem_free_bytes";
/// Bytes available to ordinary users (gauge).
pub const AVAIL: &str = "node_filesystem_avail_bytes";
/// Inodes (gauge).
pub const FILES: &str = "node_filesystem_files";
/// Free inodes (gauge).
pub const FILES_FREE: &str = "node_filesystem_files_free";
/// 1 when mounted read-only (gauge).
pub const READONLY: &str = "node_filesystem_readonly";
/// 1 when the file system could not be measured this cycle (gauge).
pub const DEVICE_ERROR: &str = "node_filesystem_device_error";

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`: pseudo and
/// read-only image file systems, whose sizes mean nothing.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// What the `filesystem` collector measures.
#[derive(Debug, Clone)]
pub struct FilesystemConfig {
    /// Mount points (host paths) to measure.
    pub mount_points: NameFilter,
    /// File system types to measure.
    pub fs_types: NameFilter,
    /// How long a cycle waits for `statvfs` answers, all mounts together.
    pub timeout: Duration,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        Self {
            mount_points: builtin_exclude(DEFAULT_MOUNT_POINTS_EXCLUDE),
            fs_types: builtin_exclude(DEFAULT_FS_TYPES_EXCLUDE),
            // Below the agent's default collector timeout (10 s), so that the run
            // itself always finishes and reports the hung mount.
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[collectors.filesystem]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesystemSettings {
    mount_points_include: Option<Pattern>,
    mount_points_exclude: Option<Pattern>,
    fs_types_include: Option<Pattern>,
    fs_types_exclude: Option<Pattern>,
    /// [`FilesystemConfig::timeout`]; not `timeout`, which is the agent's deadline for
    /// the whole run.
    statvfs_timeout: Option<HumanDuration>,
}

impl FilesystemConfig {
    /// The configuration a `[collectors.filesystem]` table asks for, the agent's own keys
    /// left out: `mount_points_include`, `mount_points_exclude`, `fs_types_include`,
    /// `fs_types_exclude` (regular expressions, `""` for none; an include alone replaces
    /// the default exclusion) and `statvfs_timeout` (a duration, default 5 s, which
    /// should stay below the collector's `timeout`). An empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: FilesystemSettings = settings::parse("filesystem", table)?;
        let default = Self::default();
        Ok(Self {
            mount_points: settings::filter(
                s.mount_points_include,
                s.mount_points_exclude,
                default.mount_points,
            ),
            fs_types: settings::filter(s.fs_types_include, s.fs_types_exclude, default.fs_types),
            timeout: settings::positive(
                "filesystem",
                "statvfs_timeout",
                s.statvfs_timeout,
                default.timeout,
            )?,
        })
    }
}

/// Measures mounted file systems.
#[derive(Debug)]
pub struct FilesystemCollector {
    roots: Roots,
    config: FilesystemConfig,
    /// Knows which mounts are hung, across cycles.
    runner: StatvfsRunner,
}

impl FilesystemCollector {
    /// A collector with node_exporter's default exclusions.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, FilesystemConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: FilesystemConfig) -> Self {
        Self {
            roots,
            config,
            runner: StatvfsRunner::new(),
        }
    }

    /// Where the host's `mount_point` is reached from here: under the roots' rootfs.
    fn reach(&self, mount_point: &str) -> PathBuf {
        self.roots.rootfs.join(mount_point.trim_start_matches('/'))
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let table = sysward_platform::read_mounts(&self.roots)?;
        let table_path = self.roots.proc.join(Mounts::FILE);
        for skipped in &table.skipped {
            out.error(skipped.clone().in_file(&table_path).to_string());
        }
        let mounts = selected(&table.mounts, &self.config);
        let paths: Vec<PathBuf> = mounts.iter().map(|m| self.reach(&m.mount_point)).collect();
        let outcomes = self.runner.stat_all(&paths, self.config.timeout);
        for ((mount, path), outcome) in mounts.iter().zip(&paths).zip(outcomes) {
            match outcome {
                StatvfsOutcome::Usage(usage) => push_usage(mount, &usage, out),
                StatvfsOutcome::Failed(error) => {
                    out.error(format!("statvfs: {error}"));
                    push_failed(mount, out);
                }
                StatvfsOutcome::TimedOut => {
                    out.error(format!(
                        "statvfs {}: no answer within {:?}; skipped until it answers",
                        path.display(),
                        self.config.timeout
                    ));
                    push_failed(mount, out);
                }
                StatvfsOutcome::StillHung => {
                    out.error(format!(
                        "statvfs {}: still hung since an earlier cycle; skipped",
                        path.display()
                    ));
                    push_failed(mount, out);
                }
            }
        }
        Ok(())
    }
}

/// The mounts to measure: those that pass the filters, one per mount point. Where two
/// mounts share a mount point the later one is kept, since it hides the earlier one and
/// is the one `statvfs` reaches.
fn selected<'a>(mounts: &'a [Mount], config: &FilesystemConfig) -> Vec<&'a Mount> {
    let mut seen = HashSet::new();
    let mut kept: Vec<&Mount> = mounts
        .iter()
        .rev()
        .filter(|m| config.mount_points.passes(&m.mount_point))
        .filter(|m| config.fs_types.passes(&m.fstype))
        .filter(|m| seen.insert(m.mount_point.as_str()))
        .collect();
    kept.reverse();
    kept
}

fn sample(name: &'static str, mount: &Mount, value: f64) -> Sample {
    Sample::new(name, Kind::Gauge, value)
        .label("device", mount.device.as_str())
        .label("fstype", mount.fstype.as_str())
        .label("mountpoint", mount.mount_point.as_str())
}

fn flag(set: bool) -> f64 {
    if set { 1.0 } else { 0.0 }
}

fn push_usage(mount: &Mount, usage: &FsUsage, out: &mut Output) {
    let values = [
        (SIZE, usage.size_bytes),
        (FREE, usage.free_bytes),
        (AVAIL, usage.avail_bytes),
        (FILES, usage.files),
        (FILES_FREE, usage.files_free),
    ];
    for (name, value) in values {
        out.push(sample(name, mount, value as f64));
    }
    out.push(sample(
        READONLY,
        mount,
        flag(mount.read_only || usage.read_only),
    ));
    out.push(sample(DEVICE_ERROR, mount, 0.0));
}

/// A mount that could not be measured: only what the mount table says, and the error.
fn push_failed(mount: &Mount, out: &mut Output) {
    out.push(sample(READONLY, mount, flag(mount.read_only)));
    out.push(sample(DEVICE_ERROR, mount, 1.0));
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, value_of};

    fn mount(device: &str, mount_point: &str, fstype: &str) -> Mount {
        Mount {
            device: device.into(),
            mount_point: mount_point.into(),
            fstype: fstype.into(),
            read_only: false,
        }
    }

    #[test]
    fn the_default_patterns_compile() {
        NameFilter::exclude(DEFAULT_MOUNT_POINTS_EXCLUDE).expect("mount points");
        NameFilter::exclude(DEFAULT_FS_TYPES_EXCLUDE).expect("fs types");
    }

    #[test]
    fn pseudo_file_systems_and_kernel_trees_are_left_out_by_default() {
        let mounts = [
            mount("/dev/sda1", "/", "ext4"),
            mount("proc", "/proc", "proc"),
            mount("sysfs", "/sys", "sysfs"),
            mount("cgroup2", "/sys/fs/cgroup", "cgroup2"),
            mount("tmpfs", "/run", "tmpfs"),
            mount("tmpfs", "/run/credentials/x.service", "tmpfs"),
            mount("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay"),
            mount("/dev/loop0", "/snap/core/1", "squashfs"),
            mount("srv:/x", "/mnt/nfs", "nfs4"),
            mount("/dev/sdb1", "/devices", "ext4"),
        ];
        let kept: Vec<_> = selected(&mounts, &FilesystemConfig::default())
            .into_iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(kept, ["/", "/run", "/mnt/nfs", "/devices"]);
    }

    #[test]
    fn of_two_mounts_on_one_point_the_later_one_is_kept() {
        let mounts = [
            mount("a", "/mnt/x", "nfs"),
            mount("/dev/sda1", "/", "ext4"),
            mount("b", "/mnt/x", "nfs4"),
        ];
        let kept: Vec<_> = selected(&mounts, &FilesystemConfig::default())
            .into_iter()
            .map(|m| m.device.as_str())
            .collect();
        assert_eq!(kept, ["/dev/sda1", "b"]);
    }

    /// A tree whose mount table lists two directories of the scratch directory (a real
    /// file system) under the roots' rootfs, and one mount point that does not exist.
    fn tree() -> TempDir {
        let dir = TempDir::new("filesystem");
        dir.write("root/data/.keep", "");
        dir.write("root/ro/.keep", "");
        dir.write(
            "proc/1/mountinfo",
            "1 0 8:1 / /data rw,relatime - ext4 /dev/sda1 rw\n\
             2 0 8:2 / /ro ro,relatime - ext4 /dev/sda2 ro\n\
             3 0 0:3 / /gone rw - nfs4 srv:/gone rw\n\
             4 0 0:4 / /proc rw - proc proc rw\n\
             garbage\n",
        );
        dir
    }

    #[test]
    fn measures_each_mount_under_the_rootfs_and_labels_it_with_the_host_path() {
        let dir = tree();
        let mut out = Output::default();
        FilesystemCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        let labels = [
            ("device", "/dev/sda1"),
            ("fstype", "ext4"),
            ("mountpoint", "/data"),
        ];
        let real = sysward_platform::statvfs(&dir.path().join("root/data")).expect("statvfs");
        assert_eq!(value_of(&out, SIZE, &labels), Some(real.size_bytes as f64));
        assert_eq!(value_of(&out, FILES, &labels), Some(real.files as f64));
        assert_eq!(value_of(&out, DEVICE_ERROR, &labels), Some(0.0));
        assert_eq!(value_of(&out, READONLY, &labels), Some(0.0));
        let ro = [
            ("device", "/dev/sda2"),
            ("fstype", "ext4"),
            ("mountpoint", "/ro"),
        ];
        assert_eq!(value_of(&out, READONLY, &ro), Some(1.0));
        // The missing mount point is an error, reported and sent as such.
        let gone = [
            ("device", "srv:/gone"),
            ("fstype", "nfs4"),
            ("mountpoint", "/gone"),
        ];
        assert_eq!(value_of(&out, DEVICE_ERROR, &gone), Some(1.0));
        assert_eq!(value_of(&out, SIZE, &gone), None);
        assert!(
            !out.samples
                .iter()
                .any(|s| s.labels.iter().any(|(_, v)| v == "/proc"))
        );
        assert_eq!(out.errors.len(), 2, "{:#?}", out.errors);
        assert!(
            out.errors[0].contains("mountinfo line 5"),
            "{}",
            out.errors[0]
        );
        assert!(out.errors[1].contains("/gone"), "{}", out.errors[1]);
    }

    #[test]
    fn a_hung_mount_is_reported_and_skipped_without_blocking_the_cycle() {
        let dir = tree();
        let mut collector = FilesystemCollector::new(dir.roots());
        let hung = dir.path().join("root/data");
        collector.runner.pretend_hung(&hung);
        let mut out = Output::default();
        let started = std::time::Instant::now();
        collector.collect(&mut out).expect("collects");
        assert!(started.elapsed() < Duration::from_secs(2));
        let labels = [
            ("device", "/dev/sda1"),
            ("fstype", "ext4"),
            ("mountpoint", "/data"),
        ];
        assert_eq!(value_of(&out, DEVICE_ERROR, &labels), Some(1.0));
        assert_eq!(value_of(&out, SIZE, &labels), None);
        assert!(
            out.errors.iter().any(|e| e.contains("still hung")),
            "{:#?}",
            out.errors
        );
        // Once its call returns, the mount is measured again.
        collector.runner.pretend_answered(&hung);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(value_of(&out, DEVICE_ERROR, &labels), Some(0.0));
    }

    #[test]
    fn an_unreadable_mount_table_fails_the_run() {
        let dir = TempDir::new("filesystem-none");
        let error = FilesystemCollector::new(dir.roots())
            .collect(&mut Output::default())
            .expect_err("no table");
        assert!(error.to_string().contains("1/mountinfo"), "{error}");
    }

    fn settings(text: &str) -> Result<FilesystemConfig, String> {
        FilesystemConfig::from_table(&toml::from_str(text).expect("valid TOML"))
    }

    fn mount_points(out: &Output) -> Vec<&str> {
        let mut points: Vec<&str> = out
            .samples
            .iter()
            .filter(|s| s.name == DEVICE_ERROR)
            .filter_map(|s| s.labels.iter().find(|(k, _)| k == "mountpoint"))
            .map(|(_, v)| v.as_str())
            .collect();
        points.sort_unstable();
        points
    }

    #[test]
    fn every_setting_is_used() {
        let dir = tree();
        let text = "mount_points_include = \"^/(data|ro|gone)$\"\n\
                    mount_points_exclude = \"^/ro$\"\n\
                    fs_types_include = \"^(ext4|nfs4)$\"\n\
                    fs_types_exclude = \"^nfs\"\n\
                    statvfs_timeout = \"1500ms\"";
        assert_eq!(settings(text).unwrap().timeout, Duration::from_millis(1500));
        let mut collector =
            crate::testing::configured("filesystem", &dir.roots(), text).expect("valid");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        // /ro by its mount point, /gone by its type, /proc by the include.
        assert_eq!(mount_points(&out), ["/data"]);
    }

    #[test]
    fn an_exclude_pattern_replaces_the_default_one() {
        let dir = tree();
        let mut collector = crate::testing::configured(
            "filesystem",
            &dir.roots(),
            "mount_points_exclude = \"^/ro\"",
        )
        .expect("valid");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        // /proc is left out by the fs type exclusion, still the default.
        assert_eq!(mount_points(&out), ["/data", "/gone"]);
        let mut collector = crate::testing::configured(
            "filesystem",
            &dir.roots(),
            "mount_points_exclude = \"\"\nfs_types_exclude = \"\"",
        )
        .expect("valid");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(mount_points(&out), ["/data", "/gone", "/proc", "/ro"]);
    }

    #[test]
    fn settings_give_the_defaults_when_empty_and_refuse_bad_values() {
        assert_eq!(
            format!("{:?}", settings("").unwrap()),
            format!("{:?}", FilesystemConfig::default())
        );
        assert_eq!(
            settings("statvfs_timeout = \"0s\"").unwrap_err(),
            "bad setting `statvfs_timeout` for collector filesystem: must be more than 0 (e.g. \"5s\")"
        );
        assert_eq!(
            settings("statvfs_timeout = 5").unwrap_err(),
            "bad setting `statvfs_timeout` for collector filesystem: invalid type: integer `5`, \
             expected a duration such as \"5s\" or \"1m30s\""
        );
        let error = settings("fs_types_exclude = \"^(tmpfs\"").unwrap_err();
        assert!(
            error.starts_with(
                "bad setting `fs_types_exclude` for collector filesystem: invalid regular expression"
            ),
            "{error}"
        );
        assert!(settings("timeout = \"5s\"").unwrap_err().starts_with(
            "unknown setting `timeout` for collector filesystem (allowed: mount_points_include,"
        ));
    }
}
