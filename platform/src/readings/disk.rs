//! Block device I/O statistics.

use crate::ParseError;

/// One line of `/proc/diskstats`: a block device and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStat {
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Kernel name of the device, e.g. `sda`, `nvme0n1p2`, `dm-0`.
    pub device: String,
    /// The counters after the name, in the kernel's order (see [`DiskStat::FIELDS`]).
    /// Kernels before 4.18 print 11, 4.18 adds 4 for discards, 5.5 adds 2 for flushes;
    /// columns a future kernel may add are kept but have no name here.
    pub counters: Vec<u64>,
}

impl DiskStat {
    /// The names of the counters, in order (Documentation/admin-guide/iostats.rst).
    /// Times are in milliseconds, sectors are 512 bytes whatever the device's own sector
    /// size.
    pub const FIELDS: [&'static str; 17] = [
        "reads_completed",
        "reads_merged",
        "sectors_read",
        "read_time_ms",
        "writes_completed",
        "writes_merged",
        "sectors_written",
        "write_time_ms",
        "ios_in_progress",
        "io_time_ms",
        "weighted_io_time_ms",
        "discards_completed",
        "discards_merged",
        "sectors_discarded",
        "discard_time_ms",
        "flush_requests_completed",
        "flush_time_ms",
    ];
}

/// Every line of `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// The devices, in the kernel's order.
    pub disks: Vec<DiskStat>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl DiskStats {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "diskstats";
}
