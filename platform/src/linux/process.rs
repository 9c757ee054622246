//! Processes: `/proc/[pid]/stat` and the `Uid:` line of `/proc/[pid]/status`, the
//! host's `/etc/passwd`, and single-number sysctls such as `kernel/pid_max`.
//!
//! `stat` format (proc(5)): `pid (comm) state ppid ...`, space-separated. `comm` is
//! chosen by the process and may hold spaces and parentheses, so the fields after it
//! are found from the *last* `)`.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use super::kept_files::{Extent, KeptFiles, open_files_limit};
use super::{quote, read_text, read_text_once};
use crate::{Error, ParseError, PidStat, Roots, ScanSummary, Users};

/// The fields after `comm` that are read, by their 0-based index after the `)`.
const STATE: usize = 0;
const PPID: usize = 1;
const UTIME: usize = 11;
const STIME: usize = 12;
const NUM_THREADS: usize = 17;
const STARTTIME: usize = 19;
const RSS: usize = 21;

/// Parses the text of `/proc/[pid]/stat`.
pub fn parse_pid_stat(text: &str) -> Result<PidStat<'_>, ParseError> {
    let error = |message: String| ParseError::new(1, message);
    let line = text.lines().next().unwrap_or_default();
    let open = line
        .find(" (")
        .ok_or_else(|| error(format!("no `(comm)` in {}", quote(line))))?;
    let close = line
        .rfind(')')
        .filter(|close| *close > open)
        .ok_or_else(|| error(format!("no `)` closing comm in {}", quote(line))))?;
    let pid = line[..open]
        .parse()
        .map_err(|_| error(format!("pid {} is not a number", quote(&line[..open]))))?;
    let comm = &line[open + 2..close];
    let fields: Vec<&str> = line[close + 1..]
        .split_ascii_whitespace()
        .take(RSS + 1)
        .collect();
    if fields.len() <= RSS {
        return Err(error(format!(
            "{} fields after comm where at least {} are expected",
            fields.len(),
            RSS + 1
        )));
    }
    let number = |index: usize, what: &str| -> Result<u64, ParseError> {
        fields[index].parse().map_err(|_| {
            error(format!(
                "{what} {} is not a whole number",
                quote(fields[index])
            ))
        })
    };
    let mut state = fields[STATE].chars();
    let (Some(letter), None) = (state.next(), state.next()) else {
        return Err(error(format!(
            "state {} is not one letter",
            quote(fields[STATE])
        )));
    };
    let ppid = fields[PPID]
        .parse()
        .map_err(|_| error(format!("ppid {} is not a number", quote(fields[PPID]))))?;
    Ok(PidStat {
        pid,
        comm,
        state: letter,
        ppid,
        utime: number(UTIME, "utime")?,
        stime: number(STIME, "stime")?,
        num_threads: number(NUM_THREADS, "num_threads")?,
        starttime: number(STARTTIME, "starttime")?,
        rss_pages: number(RSS, "rss")?,
    })
}

/// The effective uid from the text of `/proc/[pid]/status` (its `Uid:` line holds the
/// real, effective, saved and file system uids; `ps` shows the effective one).
pub fn parse_status_uid(text: &str) -> Result<u32, ParseError> {
    for (index, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let mut ids = rest.split_ascii_whitespace();
            let effective = ids.nth(1).ok_or_else(|| {
                ParseError::new(index + 1, format!("no effective uid in {}", quote(line)))
            })?;
            return effective.parse().map_err(|_| {
                ParseError::new(
                    index + 1,
                    format!("uid {} is not a number", quote(effective)),
                )
            });
        }
    }
    Err(ParseError::new(
        text.lines().count() + 1,
        "no `Uid:` line: this is not /proc/[pid]/status text",
    ))
}

/// Whether a failed read means the process has exited: the file is gone (`ENOENT`) or
/// the kernel refuses it for a task being torn down (`ESRCH`).
fn exited(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(3)
}

/// The effective uid of process `pid`, from its `status` under `roots.proc`.
///
/// `Ok(None)` when the process has exited meanwhile.
pub fn read_pid_uid(roots: &Roots, pid: u32) -> Result<Option<u32>, Error> {
    let path = roots.proc.join(pid.to_string()).join("status");
    match read_text_once(&path) {
        Ok(text) => parse_status_uid(&text)
            .map(Some)
            .map_err(|error| error.in_file(path)),
        Err(Error::Read { source, .. }) if exited(&source) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Bytes of a command line kept by [`read_pid_cmdline`]; the kernel allows far longer
/// ones, but a pattern has no business looking that far.
pub const CMDLINE_MAX: usize = 32 * 1024;

/// The command line of process `pid`, from `cmdline` under `roots.proc`: its arguments
/// joined by single spaces (the kernel separates them with NUL bytes), invalid UTF-8
/// replaced, cut at [`CMDLINE_MAX`] bytes. Empty for a kernel thread or a zombie.
///
/// `Ok(None)` when the process has exited meanwhile.
pub fn read_pid_cmdline(roots: &Roots, pid: u32) -> Result<Option<String>, Error> {
    let path = roots.proc.join(pid.to_string()).join("cmdline");
    let mut bytes = Vec::new();
    let read =
        fs::File::open(&path).and_then(|f| f.take(CMDLINE_MAX as u64).read_to_end(&mut bytes));
    match read {
        Ok(_) => Ok(Some(parse_cmdline(&bytes))),
        Err(source) if exited(&source) => Ok(None),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// The text of `/proc/[pid]/cmdline`: NUL-separated (and usually NUL-terminated)
/// arguments, joined with spaces.
pub fn parse_cmdline(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let joined: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    String::from_utf8_lossy(&joined).into_owned()
}

/// Walks `/proc/[pid]/stat` of every process, reusing its buffers from one scan to the
/// next so that a scan allocates nothing per process.
///
/// Each process's `stat` stays open from one scan to the next while the process lives
/// (procfs only; see `kept_files`): a scan then costs one `pread` per process instead of
/// six system calls. Past the limit (see [`ProcessScanner::new`]) the rest are opened and
/// closed each time. A pid whose process has exited fails its read
/// (`ESRCH`) even when the pid has been given to a new process, whose `stat` is then
/// opened afresh; descriptors of pids no longer listed are closed after each scan.
#[derive(Debug)]
pub struct ProcessScanner {
    buf: Vec<u8>,
    path: PathBuf,
    stats: KeptFiles<u32>,
}

impl Default for ProcessScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessScanner {
    /// A scanner with empty buffers. It keeps a quarter of the soft limit of open files
    /// at most (and 8192): the kept host files take up to an eighth, and the rest stays
    /// for the agent's other work (sockets, the spool, health checks' pipes).
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            path: PathBuf::new(),
            stats: KeptFiles::new((open_files_limit() / 4).min(8192)),
        }
    }

    /// Calls `visit` with the `stat` of each process under `roots.proc`, in directory
    /// order. A process that exits during the scan is skipped and counted; one whose
    /// `stat` cannot be read or parsed is skipped and listed. Fails only when the
    /// directory itself cannot be listed.
    pub fn scan(
        &mut self,
        roots: &Roots,
        mut visit: impl FnMut(&PidStat<'_>),
    ) -> Result<ScanSummary, Error> {
        let entries = fs::read_dir(&roots.proc).map_err(|source| Error::Read {
            path: roots.proc.clone(),
            source,
        })?;
        let started = std::time::Instant::now();
        let mut summary = ScanSummary::default();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            self.path.clear();
            self.path.push(&roots.proc);
            self.path.push(name);
            self.path.push("stat");
            // `stat` is made in one piece: one read is enough.
            match self
                .stats
                .read(&pid, &self.path, Extent::OnePiece, &mut self.buf)
            {
                Ok(()) => {}
                Err(error) if exited(&error) => {
                    summary.vanished += 1;
                    continue;
                }
                Err(source) => {
                    summary.failed.push(Error::Read {
                        path: self.path.clone(),
                        source,
                    });
                    continue;
                }
            }
            // An exited process can leave an empty file behind.
            if self.buf.is_empty() {
                summary.vanished += 1;
                continue;
            }
            // `comm` is whatever bytes the process chose; the rest is ASCII.
            let text = String::from_utf8_lossy(&self.buf);
            match parse_pid_stat(&text) {
                Ok(stat) => {
                    summary.processes += 1;
                    visit(&stat);
                }
                Err(error) => summary.failed.push(error.in_file(&self.path)),
            }
        }
        // Pids no longer listed: their processes have exited.
        self.stats.close_unread_since(started);
        Ok(summary)
    }

    /// Whether the `stat` of `pid` is kept open.
    #[cfg(test)]
    fn keeps(&self, pid: u32) -> bool {
        self.stats.contains(&pid)
    }
}

/// Reads and parses the host's `etc/passwd` under `roots.rootfs`.
pub fn read_users(roots: &Roots) -> Result<Users, Error> {
    let path = roots.rootfs.join(Users::FILE);
    let text = read_text(&path)?;
    Ok(parse_passwd(&text))
}

/// Parses the text of `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`).
///
/// Lines that are not entries (comments, NIS `+`/`-` lines, anything malformed) are
/// passed over: a name that cannot be found is shown as the uid instead.
pub fn parse_passwd(text: &str) -> Users {
    let mut users = Users::default();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(uid) = uid.parse() {
            users.names.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    users
}

/// Reads a sysctl holding one whole number, e.g. `kernel/pid_max`, under
/// `roots.proc`'s `sys`.
pub fn read_sysctl_u64(roots: &Roots, name: &str) -> Result<u64, Error> {
    let path = roots.proc.join("sys").join(name);
    let text = read_text(&path)?;
    let value = text.trim_ascii();
    value.parse().map_err(|_| {
        ParseError::new(1, format!("{} is not a whole number", quote(value))).in_file(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, fixture_roots, mutated};
    use proptest::prelude::*;

    const STAT: &str = "1 (systemd) S 0 1 1 0 -1 4194560 9061 9416027 94 2620 36 98 54406 13885 20 0 1 0 29 109604864 2507 18446744073709551615 1 1 0 0 0 0 671173123 4096 1260 0 0 0 17 0 0 0 19 0 0 0 0 0 0 0 0 0 0\n";

    const STATUS: &str =
        "Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t0\t1000\t0\t0\nGid:\t0\t0\t0\t0\n";

    #[test]
    fn parses_the_fields_used() {
        let stat = parse_pid_stat(STAT).expect("parses");
        assert_eq!(
            stat,
            PidStat {
                pid: 1,
                comm: "systemd",
                state: 'S',
                ppid: 0,
                utime: 36,
                stime: 98,
                num_threads: 1,
                starttime: 29,
                rss_pages: 2507,
            }
        );
    }

    #[test]
    fn comm_may_hold_spaces_and_parentheses() {
        let text = STAT.replace("(systemd)", "(a) b (c))");
        let stat = parse_pid_stat(&text).expect("parses");
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.utime, 36);
    }

    #[test]
    fn short_or_odd_stat_lines_are_refused() {
        for text in [
            "",
            "1 systemd S 0",
            "1 (systemd) S 0 1",
            "x (a) S 0 1 1 0 -1 4194560 9061 9416027 94 2620 36 98 54406 13885 20 0 1 0 29 109604864 2507",
            "1 (a) SS 0 1 1 0 -1 4194560 9061 9416027 94 2620 36 98 54406 13885 20 0 1 0 29 109604864 2507",
            "1 (a) S 0 1 1 0 -1 4194560 9061 9416027 94 2620 -36 98 54406 13885 20 0 1 0 29 109604864 2507",
        ] {
            assert!(parse_pid_stat(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_effective_uid_is_read_from_status() {
        assert_eq!(parse_status_uid(STATUS), Ok(1000));
        assert!(parse_status_uid("Name:\tx\n").is_err());
        assert!(parse_status_uid("Uid:\t0\n").is_err());
        assert!(parse_status_uid("Uid:\t0\tx\n").is_err());
    }

    #[test]
    fn scans_the_fixture_and_skips_what_is_not_a_process() {
        let mut scanner = ProcessScanner::new();
        let mut seen = Vec::new();
        let summary = scanner
            .scan(&fixture_roots(), |stat| seen.push((stat.pid, stat.state)))
            .expect("scans");
        seen.sort_unstable();
        // Directory 10 holds pid 17's stat in node_exporter's fixture.
        assert_eq!(seen, [(1, 'S'), (11, 'I'), (17, 'S')]);
        assert_eq!(summary.processes, 3);
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    }

    #[test]
    fn a_process_that_exits_is_counted_not_failed() {
        let dir = TempDir::new("scan-vanished");
        std::fs::create_dir_all(dir.path().join("42")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("43")).expect("mkdir");
        std::fs::write(dir.path().join("43/stat"), "").expect("write");
        std::fs::create_dir_all(dir.path().join("44")).expect("mkdir");
        std::fs::write(dir.path().join("44/stat"), "garbage").expect("write");
        let summary = ProcessScanner::new()
            .scan(&dir.roots(), |_| panic!("no process to visit"))
            .expect("scans");
        assert_eq!(summary.vanished, 2);
        assert_eq!(summary.failed.len(), 1);
        assert!(
            summary.failed[0].to_string().contains("44/stat"),
            "{}",
            summary.failed[0]
        );
        assert_eq!(read_pid_uid(&dir.roots(), 42).expect("exited"), None);
    }

    #[test]
    fn live_processes_stay_open_and_exited_ones_are_closed() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let roots = Roots::default();
        let mut scanner = ProcessScanner::new();
        let mut seen = 0;
        for _ in 0..2 {
            seen = 0;
            scanner
                .scan(&roots, |stat| {
                    if stat.pid == pid {
                        seen += 1;
                    }
                })
                .expect("scans /proc");
            assert_eq!(seen, 1, "the child is visited once per scan");
            assert!(scanner.keeps(pid));
        }
        assert!(scanner.keeps(std::process::id()));
        child.kill().expect("kill");
        child.wait().expect("reap");
        scanner
            .scan(&roots, |stat| assert_ne!(stat.pid, pid, "reaped"))
            .expect("scans /proc");
        assert!(!scanner.keeps(pid));
        assert!(seen == 1);
    }

    #[test]
    fn fixture_files_are_not_kept_open() {
        let mut scanner = ProcessScanner::new();
        scanner.scan(&fixture_roots(), |_| {}).expect("scans");
        assert!(!scanner.keeps(1), "regular files may be replaced: not kept");
    }

    #[test]
    fn command_lines_are_joined_with_spaces() {
        assert_eq!(
            parse_cmdline(b"nginx: master\0-c\0/etc/x.conf\0"),
            "nginx: master -c /etc/x.conf"
        );
        assert_eq!(parse_cmdline(b""), "");
        assert_eq!(parse_cmdline(b"a\xff\0"), "a\u{fffd}");
        let own = read_pid_cmdline(&Roots::default(), std::process::id())
            .expect("reads")
            .expect("running");
        assert!(!own.is_empty());
        let dir = TempDir::new("cmdline-gone");
        assert_eq!(read_pid_cmdline(&dir.roots(), 42).expect("exited"), None);
    }

    #[test]
    fn passwd_names_by_uid_first_wins() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis::::::\nbad\nalias:x:0:0::/:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nodd:x:x:0::/:\n",
        );
        assert_eq!(users.names.len(), 2);
        assert_eq!(users.names[&0], "root");
        assert_eq!(users.names[&1000], "alice");
    }

    #[test]
    fn sysctls_are_read_from_the_fixture() {
        let roots = fixture_roots();
        assert_eq!(
            read_sysctl_u64(&roots, "kernel/pid_max").expect("pid_max"),
            123
        );
        assert_eq!(
            read_sysctl_u64(&roots, "kernel/threads-max").expect("threads-max"),
            7801
        );
        assert!(read_sysctl_u64(&roots, "kernel/nope").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_pid_stat(&text);
            let _ = parse_status_uid(&text);
            let _ = parse_passwd(&text);
            let _ = parse_cmdline(&bytes);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(stat in mutated(STAT), status in mutated(STATUS)) {
            let _ = parse_pid_stat(&stat);
            let _ = parse_status_uid(&status);
        }

        #[test]
        fn any_comm_is_read_back(comm in "[^\n]{0,32}") {
            let text = STAT.replace("systemd", &comm);
            let stat = parse_pid_stat(&text).expect("parses");
            prop_assert_eq!(stat.comm, comm.as_str());
            prop_assert_eq!(stat.rss_pages, 2507);
        }
    }
}
