//! The Linux backend: procfs text under [`Roots::proc`](crate::Roots::proc).
//!
//! Each file has a pure parser from text to a typed reading and a reader that finds the
//! file under the roots, reads it and parses it, naming the path in any error. Parsers
//! never panic: they skip what they cannot understand, list it in the reading's
//! `skipped` field, and fail as a whole only when the text holds nothing usable.

use std::fs;
use std::io;
use std::path::Path;

use crate::Error;

mod cgroup;
mod code_pages;
pub mod dbus;
mod diskstats;
pub mod follow;
mod host;
mod hwmon;
pub mod journal;
mod kept_files;
mod loadavg;
mod malloc;
mod meminfo;
mod mountinfo;
mod netdev;
mod netstat;
mod pressure;
mod process;
mod sock_diag;
mod sockstat;
pub mod spawn;
mod stat;
mod statvfs;
mod tcp;
mod timex;
pub mod trust;

pub use cgroup::{
    find_cgroup_units, parse_cgroup_cpu_stat, parse_cgroup_value, parse_io_stat,
    parse_uevent_devname, read_block_device_name, read_cgroup_layout, read_cgroup_stats,
};
pub use code_pages::release_code_pages;
pub use diskstats::{parse_diskstats, read_diskstats};
pub use host::{
    parse_cpuinfo, parse_os_release, read_clocksources, read_cpuinfo, read_dmi,
    read_hypervisor_type, read_machine_id, read_os_release, read_uname,
};
pub use hwmon::{parse_hwmon_filename, read_hwmon};
pub use loadavg::{parse_loadavg, read_loadavg};
pub use malloc::{limit_malloc_arenas, release_free_memory};
pub use meminfo::{parse_meminfo, read_meminfo};
pub use mountinfo::{parse_mountinfo, read_mounts};
pub use netdev::{parse_net_dev, read_net_class, read_net_dev};
pub use netstat::{parse_netstat, parse_snmp6, read_netstat, read_snmp6};
pub use pressure::{parse_pressure, parse_vmstat, read_pressure, read_vmstat};
pub use process::{
    CMDLINE_MAX, ProcessScanner, parse_cmdline, parse_passwd, parse_pid_stat, parse_status_uid,
    read_pid_cmdline, read_pid_uid, read_sysctl_u64, read_users,
};
pub use sock_diag::read_tcp_states_netlink;
pub use sockstat::{parse_sockstat, read_sockstat};
pub use stat::{parse_stat, read_stat};
pub use statvfs::{StatvfsRunner, statvfs};
pub use tcp::{parse_tcp_states, read_tcp_states};
pub use timex::read_timex;

/// Reads a whole procfs file as text, through a descriptor kept open from one call to
/// the next (see [`kept_files`]). For files read again and again under the same path.
fn read_text(path: &Path) -> Result<String, Error> {
    let mut bytes = Vec::new();
    kept_files::read_kept(path, kept_files::Extent::Whole, &mut bytes).map_err(|source| {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(into_text(bytes))
}

/// Reads a whole file as text and closes it: for paths read once or seldom, such as
/// those of one process, which would only crowd the kept files.
fn read_text_once(path: &Path) -> Result<String, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(into_text(bytes))
}

fn into_text(bytes: Vec<u8>) -> String {
    // procfs text is ASCII; a stray invalid byte should cost the one line it is on (the
    // parser skips it), not the whole file.
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

/// The size of a memory page in bytes, which `/proc` uses as a unit in places (RSS in
/// `/proc/[pid]/stat`, `mem` in sockstat); `None` if the system will not say.
pub fn page_size() -> Option<u64> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(size)) => u64::try_from(size).ok(),
        _ => None,
    }
}

/// Reads a sysfs attribute: one `read` of at most a page, without the trailing line
/// break, through a descriptor kept open (see [`kept_files`]).
///
/// One read and no retry, as node_exporter does: some hwmon drivers answer `EAGAIN`
/// for ever, and a read loop would spin on them. sysfs attributes never exceed a page.
fn read_attr(path: &Path) -> io::Result<String> {
    with_attr(path, str::to_owned)
}

/// Reads a sysfs attribute as [`read_attr`] does and hands its text to `f`, through a
/// buffer the thread keeps: a network interface alone has a dozen attributes read per
/// cycle, most of them parsed to a number at once.
fn with_attr<T>(path: &Path, f: impl FnOnce(&str) -> T) -> io::Result<T> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        // A reentrant call (none today) would find the buffer taken: it gets its own.
        let mut own = Vec::new();
        let mut kept = buf.try_borrow_mut();
        let buf = match kept.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut own,
        };
        kept_files::read_kept(path, kept_files::Extent::OnePage, buf)?;
        let text = String::from_utf8_lossy(buf);
        Ok(f(text.trim_end_matches('\n')))
    })
}

/// A sysfs attribute read by [`with_attr`] as an integer (see [`parse_sysfs_int`]).
fn read_attr_int(path: &Path) -> Option<i64> {
    with_attr(path, parse_sysfs_int).ok().flatten()
}

/// A sysfs integer: decimal, or hexadecimal with `0x` (as `flags` and `dev_id` are
/// written), surrounded by optional white space.
fn parse_sysfs_int(text: &str) -> Option<i64> {
    let text = text.trim_ascii();
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Quotes untrusted text for an error message, cut short so that one wild line cannot
/// flood the logs.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let head: String = text.chars().take(MAX_CHARS).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_size_is_a_power_of_two() {
        let size = page_size().expect("page size");
        assert!(size >= 4096 && size.is_power_of_two(), "{size}");
    }

    #[test]
    fn sysfs_integers_may_be_hexadecimal() {
        assert_eq!(parse_sysfs_int("0x1303\n"), Some(4867));
        assert_eq!(parse_sysfs_int("-1"), Some(-1));
        assert_eq!(parse_sysfs_int(" 42 "), Some(42));
        assert_eq!(parse_sysfs_int("0x"), None);
        assert_eq!(parse_sysfs_int("up"), None);
    }

    proptest::proptest! {
        #[test]
        fn sysfs_integers_never_panic(text in proptest::prelude::any::<String>()) {
            let _ = parse_sysfs_int(&text);
        }
    }

    #[test]
    fn quote_escapes_and_cuts_long_text() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.ends_with('…'), "{quoted}");
        assert!(quoted.len() < 50, "{quoted}");
    }

    #[test]
    fn read_text_keeps_the_valid_lines_of_a_file_with_invalid_utf8() {
        let dir = testing::TempDir::new("invalid-utf8");
        let path = dir.path().join("stat");
        fs::write(&path, b"ctxt \xff\xfe\nbtime 7\n").expect("write fixture");
        let text = read_text(&path).expect("read");
        assert!(text.ends_with("btime 7\n"), "{text:?}");
    }
}
