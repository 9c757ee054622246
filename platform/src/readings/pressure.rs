//! Pressure stall information and virtual memory counters.

use crate::ParseError;

/// One line of a `/proc/pressure/*` file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Share of time stalled over the last 10 s, in percent.
    pub avg10: f64,
    /// Over the last 60 s.
    pub avg60: f64,
    /// Over the last 300 s.
    pub avg300: f64,
    /// Total time stalled since boot, in microseconds.
    pub total_us: u64,
}

/// A `/proc/pressure/{cpu,io,memory,irq}` file (Documentation/accounting/psi.rst).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// `some`: time at least one task was stalled on the resource. Absent for `irq`,
    /// which has only `full`.
    pub some: Option<PressureLine>,
    /// `full`: time all non-idle tasks were stalled at once. Absent for `cpu` before
    /// Linux 5.13 (and always zero there system-wide).
    pub full: Option<PressureLine>,
}

impl Pressure {
    /// The directory relative to [`Roots::proc`](crate::Roots::proc). Absent on kernels
    /// before 4.20 or built without `CONFIG_PSI`, and its files refuse reads (EOPNOTSUPP)
    /// when booted with `psi=0`.
    pub const DIR: &'static str = "pressure";
}

/// Every counter of `/proc/vmstat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmStat {
    /// `(name, value)` in file order.
    pub fields: Vec<(String, u64)>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl VmStat {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "vmstat";
}
