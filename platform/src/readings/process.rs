//! Processes and the users that own them.

use std::collections::HashMap;

/// What a process's `/proc/[pid]/stat` says, as far as Sysward uses it.
///
/// `comm` borrows from the text read, so that a scan over every process allocates
/// nothing per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// The process id.
    pub pid: u32,
    /// The command name (at most 15 bytes, set by the process itself, so untrusted).
    pub comm: &'a str,
    /// The state letter: `R` running, `S` sleeping, `D` disk sleep, `Z` zombie, `T`
    /// stopped, `t` tracing stop, `I` idle kernel thread, `X` dead, ...
    pub state: char,
    /// The parent's process id.
    pub ppid: u32,
    /// Time in user mode, in ticks of [`USER_HZ`](crate::USER_HZ).
    pub utime: u64,
    /// Time in kernel mode, in ticks of [`USER_HZ`](crate::USER_HZ).
    pub stime: u64,
    /// Threads in the process.
    pub num_threads: u64,
    /// When the process started, in ticks since boot; with the pid it identifies a
    /// process across pid reuse.
    pub starttime: u64,
    /// Resident set size in pages (see [`page_size`](crate::page_size)).
    pub rss_pages: u64,
}

/// What one scan over `/proc/[pid]/stat` met besides the processes it visited.
#[derive(Debug, Default)]
pub struct ScanSummary {
    /// Processes visited.
    pub processes: usize,
    /// Processes that exited between the directory listing and the read; skipped.
    pub vanished: usize,
    /// Processes whose `stat` could not be read or understood, and why.
    pub failed: Vec<crate::Error>,
}

/// User names by uid, from the host's `/etc/passwd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    /// Name of each uid; the first line for a uid wins, as in `getpwuid(3)`.
    pub names: HashMap<u32, String>,
}

impl Users {
    /// The file's path relative to [`Roots::rootfs`](crate::Roots::rootfs).
    pub const FILE: &'static str = "etc/passwd";
}
