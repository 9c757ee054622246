//! Facts about the host: kernel, distribution, CPUs, hardware, clocks.

/// The kernel's identity, as `uname(2)` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uname {
    /// Kernel name, e.g. `Linux`.
    pub sysname: String,
    /// Kernel release, e.g. `6.8.0-45-generic`.
    pub release: String,
    /// Kernel build, e.g. `#45-Ubuntu SMP PREEMPT_DYNAMIC ...`.
    pub version: String,
    /// Hardware name, e.g. `x86_64`.
    pub machine: String,
    /// Host name in the reader's UTS namespace.
    pub nodename: String,
    /// NIS domain name, `(none)` when unset.
    pub domainname: String,
}

/// The `KEY=value` pairs of `os-release(5)`, values unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// The pairs in file order; a key repeated later wins, as in a shell.
    pub fields: Vec<(String, String)>,
}

impl OsRelease {
    /// Where distributions put it, relative to [`Roots::rootfs`](crate::Roots::rootfs).
    pub const FILE: &'static str = "etc/os-release";
    /// Where it lives when `etc/os-release` is absent (os-release(5)).
    pub const FALLBACK_FILE: &'static str = "usr/lib/os-release";

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What `/proc/cpuinfo` says about the CPUs as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// Logical CPUs listed (`processor` entries).
    pub processors: u32,
    /// Distinct (vendor, model name) pairs, in order of first appearance. ARM lists
    /// no vendor name and often no model name; those are empty then.
    pub models: Vec<(String, String)>,
    /// Whether a CPU has the `hypervisor` flag: the kernel runs in a virtual machine.
    pub hypervisor: bool,
}

impl CpuInfo {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "cpuinfo";
}

/// The firmware's description of the machine, from `/sys/class/dmi/id`; absent
/// attributes (no DMI on most ARM boards) are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    /// `sys_vendor`, e.g. `QEMU`, `Dell Inc.`.
    pub sys_vendor: String,
    /// `product_name`, e.g. `Standard PC (Q35 + ICH9, 2009)`.
    pub product_name: String,
    /// `bios_vendor`, e.g. `SeaBIOS`.
    pub bios_vendor: String,
    /// `board_vendor`.
    pub board_vendor: String,
}

impl Dmi {
    /// The directory relative to [`Roots::sys`](crate::Roots::sys).
    pub const DIR: &'static str = "class/dmi/id";
}

/// One clock source device of `/sys/devices/system/clocksource`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clocksource {
    /// The device number, `0` for `clocksource0`.
    pub device: String,
    /// The clock sources it could use.
    pub available: Vec<String>,
    /// The one it uses.
    pub current: String,
}

impl Clocksource {
    /// The directory relative to [`Roots::sys`](crate::Roots::sys).
    pub const DIR: &'static str = "devices/system/clocksource";
}

/// The kernel clock's discipline, from `adjtimex(2)` with no change requested.
///
/// The raw fields of `struct timex`, so that the units stay visible where they are
/// converted: `offset` and `jitter` are in microseconds, or nanoseconds when `status`
/// has `STA_NANO`; `freq`, `ppsfreq` and `stabil` are in ppm scaled by 2^16.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timex {
    /// What `adjtimex` returned: the clock state (`TIME_OK` = 0 ... `TIME_ERROR` = 5).
    pub state: i32,
    /// Time offset.
    pub offset: i64,
    /// Frequency offset.
    pub freq: i64,
    /// Maximum error, in microseconds.
    pub maxerror: i64,
    /// Estimated error, in microseconds.
    pub esterror: i64,
    /// Clock status bits (`STA_*`).
    pub status: i32,
    /// PLL time constant.
    pub constant: i64,
    /// Microseconds between clock ticks.
    pub tick: i64,
    /// PPS frequency.
    pub ppsfreq: i64,
    /// PPS jitter.
    pub jitter: i64,
    /// PPS interval duration, in seconds (log2).
    pub shift: i32,
    /// PPS stability.
    pub stabil: i64,
    /// PPS jitter limit exceeded count.
    pub jitcnt: i64,
    /// PPS calibration intervals.
    pub calcnt: i64,
    /// PPS calibration errors.
    pub errcnt: i64,
    /// PPS stability limit exceeded count.
    pub stbcnt: i64,
    /// TAI − UTC offset, in seconds.
    pub tai: i32,
}

impl Timex {
    /// `STA_NANO`: `offset` and `jitter` are in nanoseconds.
    pub const STA_NANO: i32 = 0x2000;
    /// The state `adjtimex` returns when the clock is not synchronised.
    pub const TIME_ERROR: i32 = 5;
}
