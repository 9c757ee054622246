//! Readings of the host the server runs on: free space of the data directory, certificate
//! expiry, the process' file descriptors and start time.

use std::path::Path;

use serde::Serialize;

/// Space on the file system holding the data directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskSpace {
    pub path: String,
    pub size_bytes: u64,
    /// What the server's (unprivileged) user can still write.
    pub available_bytes: u64,
}

impl DiskSpace {
    /// Reads it with statvfs; `None` when the path cannot be read.
    pub fn read(path: &Path) -> Option<Self> {
        let s = nix::sys::statvfs::statvfs(path).ok()?;
        let unit = s.fragment_size().max(1);
        Some(Self {
            path: path.display().to_string(),
            size_bytes: s.blocks().saturating_mul(unit),
            available_bytes: s.blocks_available().saturating_mul(unit),
        })
    }

    pub fn free_percent(&self) -> f64 {
        if self.size_bytes == 0 {
            return 100.0;
        }
        self.available_bytes as f64 * 100.0 / self.size_bytes as f64
    }
}

/// When one of the server's certificates expires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertExpiry {
    /// `server`, `ca` or `agent-ca`.
    pub name: &'static str,
    pub not_after_ms: i64,
}

/// The not-after time of a DER certificate, Unix ms.
pub fn cert_not_after_ms(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.validity().not_after.timestamp().checked_mul(1000)
}

/// The process' file descriptors and start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessFiles {
    pub open: u64,
    /// The soft limit (`RLIMIT_NOFILE`); `None` when unlimited or unreadable.
    pub max: Option<u64>,
}

impl ProcessFiles {
    pub fn read() -> Option<Self> {
        let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Some(Self {
            open,
            max: parse_max_open_files(&limits),
        })
    }
}

/// `Max open files   1024   4096   files` → the soft limit.
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process' start, Unix seconds: its start in clock ticks after boot
/// (`/proc/self/stat` field 22) plus the boot time (`btime` of `/proc/stat`).
pub(super) fn process_start_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    start_seconds(&stat, &boot)
}

/// USER_HZ, as `/proc` reports times on every architecture the server is built for.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn start_seconds(stat: &str, proc_stat: &str) -> Option<f64> {
    // Fields after the command name, which may hold spaces: field 22 is the 20th after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime as f64 + ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_of_open_files_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn the_start_time_counts_from_boot() {
        let stat = "4242 (sysward server) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    5 3 0 0 20 0 8 0 12345 1000000 200 18446744073709551615";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n";
        assert_eq!(start_seconds(stat, proc_stat), Some(1_700_000_123.45));
        assert_eq!(start_seconds("garbage", proc_stat), None);
    }

    #[test]
    fn this_process_is_readable() {
        let files = ProcessFiles::read().unwrap();
        assert!(files.open > 0);
        let start = process_start_seconds().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        let disk = DiskSpace::read(Path::new("/")).unwrap();
        assert!(disk.size_bytes >= disk.available_bytes && disk.size_bytes > 0);
    }
}
