//! Typed readings, the same on every operating system; only the backends that fill them
//! differ.

use std::collections::BTreeMap;

use crate::ParseError;

mod cgroup;
mod disk;
mod fs;
mod host;
mod hwmon;
mod net;
mod pressure;
mod process;

pub use cgroup::{CgroupCpuStat, CgroupLayout, CgroupStats, IoStat, IoStatDevice};
pub use disk::{DiskStat, DiskStats};
pub use fs::{FsUsage, Mount, Mounts, StatvfsOutcome};
pub use host::{Clocksource, CpuInfo, Dmi, OsRelease, Timex, Uname};
pub use hwmon::HwmonChip;
pub use net::{
    NetClassInterface, NetDev, NetDevInterface, NetStat, NetStats, Sockstat, SockstatLine,
    TcpStates,
};
pub use pressure::{Pressure, PressureLine, VmStat};
pub use process::{PidStat, ScanSummary, Users};

/// Ticks per second of the CPU times in `/proc/stat`.
///
/// The kernel reports them in `USER_HZ`, which its ABI fixes at 100 on every mainstream
/// architecture whatever the internal `HZ`; node_exporter assumes the same.
pub const USER_HZ: u64 = 100;

/// Time one CPU (or all of them together) spent in each mode, in ticks of [`USER_HZ`].
///
/// `guest` and `guest_nice` are also counted in `user` and `nice`: the kernel accounts
/// a guest's time twice, and so do these values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while I/O was outstanding.
    pub iowait: u64,
    /// Servicing hardware interrupts.
    pub irq: u64,
    /// Servicing soft interrupts.
    pub softirq: u64,
    /// Stolen by the hypervisor for other guests.
    pub steal: u64,
    /// Running a guest (virtual CPU).
    pub guest: u64,
    /// Running a niced guest.
    pub guest_nice: u64,
}

/// What `/proc/stat` says about CPU time and kernel activity since boot.
///
/// A line that is absent leaves its field `None`; a malformed line is listed in
/// [`Stat::skipped`] and leaves its field as if the line were absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The `cpu` line: all CPUs together.
    pub total: Option<CpuTimes>,
    /// The `cpuN` lines, by N. Only online CPUs have a line.
    pub cpus: BTreeMap<u32, CpuTimes>,
    /// `ctxt`: context switches.
    pub context_switches: Option<u64>,
    /// The first number of `intr`: interrupts serviced, all sources together.
    pub interrupts: Option<u64>,
    /// `btime`: boot time, in seconds since the Unix epoch.
    pub boot_time: Option<u64>,
    /// `processes`: forks since boot.
    pub forks: Option<u64>,
    /// `procs_running`: threads runnable now.
    pub procs_running: Option<u64>,
    /// `procs_blocked`: threads blocked on I/O now.
    pub procs_blocked: Option<u64>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl Stat {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "stat";
}

/// One line of `/proc/meminfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemInfoField {
    /// The name as the kernel writes it, without the colon, e.g. `Active(anon)`.
    pub name: String,
    /// The number as written.
    pub value: u64,
    /// Whether the line carried the `kB` unit, which the kernel uses for KiB (1024
    /// bytes). Lines without it are counts, such as `HugePages_Total`.
    pub in_kb: bool,
}

impl MemInfoField {
    /// The value in bytes, when it is a size; `None` for a count or on overflow.
    pub fn bytes(&self) -> Option<u64> {
        if self.in_kb {
            self.value.checked_mul(1024)
        } else {
            None
        }
    }
}

/// Every field of `/proc/meminfo`, in the kernel's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// The fields; names are unique.
    pub fields: Vec<MemInfoField>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl MemInfo {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "meminfo";

    /// The field with the kernel's `name`, e.g. `MemAvailable`.
    pub fn get(&self, name: &str) -> Option<&MemInfoField> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// The run-queue averages of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
}

impl LoadAvg {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "loadavg";
}
