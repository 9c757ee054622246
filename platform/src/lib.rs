//! Everything OS-specific in Sysward: readers of the kernel's own accounting under a
//! configurable set of [`Roots`], so that every collector can run against a fixture tree
//! as well as against the live host.
//!
//! The crate has one backend per operating system, chosen here at compile time. Each
//! backend offers the same reader functions with the same signatures; on an operating
//! system without a backend they return [`Error::Unsupported`]. The typed readings they
//! return ([`Stat`], [`MemInfo`], [`DiskStats`], [`NetDev`], [`Mounts`], [`PidStat`],
//! ...) are the same everywhere.
//!
//! On Linux the [`linux`] module also exposes the pure parsers behind the readers
//! (`parse_stat`, `parse_diskstats`, `parse_mountinfo`, `parse_pid_stat`, ...), which
//! never panic on any input: each is property-tested on arbitrary bytes and on damaged
//! real text. A parser skips a malformed line it can do without and lists it in the
//! reading's `skipped` field; it fails as a whole only when nothing usable is left.
//!
//! Besides text, the crate owns the system calls the collectors need: `statvfs` run on
//! threads with a deadline ([`StatvfsRunner`], so that a hung NFS mount never blocks a
//! caller), `adjtimex`, `uname` and `sysconf` through nix. Its `unsafe` is in five
//! modules, each use with the reason it is sound: the `adjtimex` call (`linux::timex`),
//! process spawning and `wait4` (`linux::spawn`), glibc's allocator tunables
//! (`linux::malloc`), `pread` into a buffer's spare capacity (`linux::kept_files`), and
//! releasing the executable's unmodified code pages (`linux::code_pages`).
//!
//! [`net`] holds the sockets with a deadline that checks and collectors of services
//! share; [`state_file`] the small JSON files in which they keep a position across
//! restarts, replaced whole or not at all.
//!
//! [`smartctl`] holds what the SMART collector and its privileged helper share: the
//! helper's requests and their fixed smartctl command lines, running the helper with a
//! deadline, and the parsers of smartctl's JSON and (for smartmontools 6.x) text output.

#![warn(missing_docs)]

use std::path::PathBuf;

pub mod net;
mod readings;
pub mod smartctl;
pub mod state_file;

#[cfg(target_os = "linux")]
pub mod linux;

// Compiled on Linux in tests, to check that it keeps the Linux signatures; there
// nothing outside the test uses it.
#[cfg(any(not(target_os = "linux"), test))]
#[cfg_attr(target_os = "linux", allow(unreachable_pub, dead_code))]
mod unsupported;

pub use readings::{
    CgroupCpuStat, CgroupLayout, CgroupStats, Clocksource, CpuInfo, CpuTimes, DiskStat, DiskStats,
    Dmi, FsUsage, HwmonChip, IoStat, IoStatDevice, LoadAvg, MemInfo, MemInfoField, Mount, Mounts,
    NetClassInterface, NetDev, NetDevInterface, NetStat, NetStats, OsRelease, PidStat, Pressure,
    PressureLine, ScanSummary, Sockstat, SockstatLine, Stat, StatvfsOutcome, TcpStates, Timex,
    USER_HZ, Uname, Users, VmStat,
};

/// The readers, the same set on every operating system.
macro_rules! readers {
    ($backend:ident) => {
        pub use $backend::{
            ProcessScanner, StatvfsRunner, find_cgroup_units, page_size, read_block_device_name,
            read_cgroup_layout, read_cgroup_stats, read_clocksources, read_cpuinfo, read_diskstats,
            read_dmi, read_hwmon, read_hypervisor_type, read_loadavg, read_machine_id,
            read_meminfo, read_mounts, read_net_class, read_net_dev, read_netstat, read_os_release,
            read_pid_uid, read_pressure, read_snmp6, read_sockstat, read_stat, read_sysctl_u64,
            read_tcp_states, read_tcp_states_netlink, read_timex, read_uname, read_users,
            read_vmstat, statvfs,
        };
    };
}

#[cfg(target_os = "linux")]
readers!(linux);

#[cfg(not(target_os = "linux"))]
readers!(unsupported);

/// Where the kernel's pseudo file systems and the host's root file system are mounted.
///
/// Readers never hard-code `/proc`: a container sees the host's through a bind mount
/// (node_exporter's `--path.procfs` and friends), and tests point these at fixture trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Mount point of procfs, normally `/proc`.
    pub proc: PathBuf,
    /// Mount point of sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// The host's root file system, normally `/`.
    pub rootfs: PathBuf,
}

impl Roots {
    /// Roots at the given places.
    pub fn new(
        proc: impl Into<PathBuf>,
        sys: impl Into<PathBuf>,
        rootfs: impl Into<PathBuf>,
    ) -> Self {
        Self {
            proc: proc.into(),
            sys: sys.into(),
            rootfs: rootfs.into(),
        }
    }
}

impl Default for Roots {
    /// The live host: `/proc`, `/sys` and `/`.
    fn default() -> Self {
        Self::new("/proc", "/sys", "/")
    }
}

/// Why a reader failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read at all.
    // The cause is part of the message as well as the source because the agent logs and
    // records errors by their `Display` alone, and "cannot read /proc/stat" without the
    // reason is not worth logging.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file, under its root.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file was read but its text could not be understood.
    #[error("cannot parse {} line {line}: {message}", path.display())]
    Parse {
        /// The file, under its root.
        path: PathBuf,
        /// The 1-based line the problem was found on.
        line: usize,
        /// What was wrong with it.
        message: String,
    },
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Call {
        /// The call, e.g. `adjtimex`.
        call: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// This operating system has no backend for the reading asked for.
    #[error("not supported on this operating system")]
    Unsupported,
}

impl Error {
    /// Whether this is a file or directory that does not exist: on a kernel without
    /// the feature (no `/proc/pressure`), with IPv6 disabled (no `/proc/net/snmp6`), or
    /// a process that has exited. Callers often skip such a part silently.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Whether this is a feature the kernel lacks or has turned off: the file does not
    /// exist, or the kernel refuses to read it as unsupported (`EOPNOTSUPP`, as the
    /// pressure files answer on a kernel booted with `psi=0`).
    pub fn is_absent_feature(&self) -> bool {
        const EOPNOTSUPP: i32 = 95;
        self.is_not_found()
            || matches!(self, Error::Read { source, .. } if source.raw_os_error() == Some(EOPNOTSUPP))
    }
}

/// A problem a pure parser found in its text: where it is and what is wrong.
///
/// It knows no path, since a parser only sees text; [`ParseError::in_file`] adds one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line. A problem with the text as a whole (nothing usable in it) is
    /// reported one past the last line, where the missing content was expected.
    pub line: usize,
    /// What was wrong, quoting the offending text.
    pub message: String,
}

impl ParseError {
    /// A problem on `line` (1-based).
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }

    /// The same problem as an [`Error::Parse`] naming the file it came from.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Error {
        Error::Parse {
            path: path.into(),
            line: self.line,
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_roots_are_the_live_host() {
        let roots = Roots::default();
        assert_eq!(roots.proc, PathBuf::from("/proc"));
        assert_eq!(roots.sys, PathBuf::from("/sys"));
        assert_eq!(roots.rootfs, PathBuf::from("/"));
    }

    #[test]
    fn parse_error_in_file_names_path_and_line() {
        let error = ParseError::new(3, "bad value \"x\"").in_file("/fixture/proc/stat");
        assert_eq!(
            error.to_string(),
            "cannot parse /fixture/proc/stat line 3: bad value \"x\""
        );
    }

    #[test]
    fn read_error_message_carries_the_cause() {
        let error = Error::Read {
            path: PathBuf::from("/nowhere/stat"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read /nowhere/stat: "),
            "{message}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
