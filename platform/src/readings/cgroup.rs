//! What a cgroup v2 directory says about the processes in it: a systemd unit's CPU,
//! memory, tasks, I/O and pressure.

use crate::{Error, ParseError, Pressure};

/// How the cgroup file systems are mounted under `<sysfs>/fs/cgroup`, as systemd names
/// its three layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v2 alone: `fs/cgroup/cgroup.controllers` exists.
    Unified,
    /// v1 controllers in `fs/cgroup/<controller>`, and a v2 tree at `fs/cgroup/unified`
    /// that systemd uses only to track processes (no cpu, memory, io or pids there).
    Hybrid,
    /// v1 controllers only.
    Legacy,
    /// Nothing mounted (a container without cgroupfs, or an empty directory).
    Absent,
}

impl CgroupLayout {
    /// The cgroup mount point relative to [`Roots::sys`](crate::Roots::sys).
    pub const DIR: &'static str = "fs/cgroup";
}

/// `cpu.stat`'s time counters. The cgroup core writes them whether or not the `cpu`
/// controller is enabled for the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupCpuStat {
    /// `usage_usec`: CPU time in all, microseconds.
    pub usage_usec: u64,
    /// `user_usec`: in user mode.
    pub user_usec: u64,
    /// `system_usec`: in kernel mode.
    pub system_usec: u64,
}

/// One line of `io.stat`: `8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252
/// dbytes=50331648 dios=3021`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStatDevice {
    /// The device's major number.
    pub major: u32,
    /// Its minor number.
    pub minor: u32,
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read operations.
    pub rios: u64,
    /// Write operations.
    pub wios: u64,
}

/// A cgroup's `io.stat`: one line per device the cgroup did I/O on, in the kernel's
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoStat {
    /// The devices.
    pub devices: Vec<IoStatDevice>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

/// What the files of one cgroup directory say. A field is `None` when its file does not
/// exist: its controller is not enabled for the cgroup (systemd enables `io` only for
/// units with I/O accounting), the kernel predates it (`memory.peak`, 5.19), swap
/// accounting is off, or PSI is.
#[derive(Debug, Default)]
pub struct CgroupStats {
    /// `cpu.stat`.
    pub cpu: Option<CgroupCpuStat>,
    /// `memory.current`, bytes.
    pub memory_current: Option<u64>,
    /// `memory.peak`, bytes.
    pub memory_peak: Option<u64>,
    /// `memory.swap.current`, bytes.
    pub swap_current: Option<u64>,
    /// `pids.current`: tasks (threads).
    pub pids_current: Option<u64>,
    /// `io.stat`.
    pub io: Option<IoStat>,
    /// `cpu.pressure`.
    pub cpu_pressure: Option<Pressure>,
    /// `memory.pressure`.
    pub memory_pressure: Option<Pressure>,
    /// `io.pressure`.
    pub io_pressure: Option<Pressure>,
    /// Files that exist but could not be read or understood, each error naming its
    /// file; the other fields are still filled.
    pub errors: Vec<Error>,
}

impl CgroupStats {
    /// The most bytes read of any one file: more is an error, not a truncated reading.
    /// `io.stat` is the longest, about 100 bytes a device.
    pub const FILE_MAX: usize = 64 * 1024;
}
