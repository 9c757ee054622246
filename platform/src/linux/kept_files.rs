//! procfs and sysfs files kept open from one read to the next.
//!
//! The kernel writes a procfs or sysfs file's text anew whenever it is read from offset
//! 0, so a file read every few seconds need not be opened, checked and closed each time:
//! a `pread` at offset 0 gives the current text. For the agent's ~100 files per cycle
//! that is two system calls each, or one for a sysfs attribute, instead of four or five
//! (open with its path walk, `fstat`, read, read to see the end, close). Netdata's
//! procfile reader works the same way. (A file of many records still takes a second read
//! to see its end: see [`Extent`].)
//!
//! Only files on procfs and sysfs are kept: a regular file (a test fixture,
//! `/etc/os-release`) can be replaced by a rename, and a kept descriptor would go on
//! reading the old one. A kept file that fails because its object is gone (a removed
//! interface's attribute answers `ENODEV`, an exited process's files `ESRCH`) is closed
//! and the path opened again once, so a new interface under an old name is read, not
//! the vanished one. A file that refuses to answer for now (`speed` of a link that is
//! down answers `EINVAL`) stays open.
//!
//! [`KeptFiles`] is the mechanism, under any key; the process scanner keeps each
//! process's `stat` by pid in one. The host files read through [`read_kept`] are kept
//! per thread (the quick collectors share one), by path, at most [`MAX_KEPT`] and an
//! eighth of the open-files limit, and closed after [`IDLE`] without a read, so that the
//! paths of interfaces that come and go do not pile up.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};

/// Host files kept open per thread at most, and an eighth of the soft limit of open
/// files; further paths are opened and closed each time.
const MAX_KEPT: usize = 512;
/// A kept file not read for this long is closed (longer than any default tier's
/// interval except the hourly static one, whose files are cheap to open once an hour).
const IDLE: Duration = Duration::from_secs(15 * 60);
/// How often the idle files are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How much of a file to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extent {
    /// Everything, however long: read until a read returns nothing. A seq_file of many
    /// records (`/proc/diskstats`, `mountinfo`, `/proc/vmstat`) hands out at most its
    /// own buffer's worth (a page) per read, so a short read is not its end.
    Whole,
    /// Text the kernel makes in one piece (`single_open`, as `/proc/[pid]/stat`): a
    /// short read is its end, which saves the read that would return nothing.
    OnePiece,
    /// One read of at most a page, as sysfs attributes are read: some hwmon drivers
    /// answer `EAGAIN` for ever, and a read loop would spin on them.
    OnePage,
}

struct Kept {
    file: File,
    used: Instant,
    /// The length of the last text read, to size the next buffer in one go.
    len: usize,
}

/// Descriptors kept open under keys of the caller's choosing (a path, a pid).
pub(crate) struct KeptFiles<K> {
    files: HashMap<K, Kept>,
    max: usize,
}

impl<K> std::fmt::Debug for KeptFiles<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptFiles({} of {})", self.files.len(), self.max)
    }
}

impl<K: Hash + Eq> KeptFiles<K> {
    /// A set that keeps at most `max` files open.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            files: HashMap::new(),
            max,
        }
    }

    /// Reads `path` into `buf` (cleared first) through the descriptor kept under `key`,
    /// opening it (and keeping it, if it is on procfs or sysfs and there is room) when
    /// there is none or the kept one's object is gone.
    pub(crate) fn read<Q>(
        &mut self,
        key: &Q,
        path: &Path,
        extent: Extent,
        buf: &mut Vec<u8>,
    ) -> io::Result<()>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        if let Some(kept) = self.files.get_mut(key) {
            reserve_for(buf, kept.len);
            match read_from_start(&kept.file, extent, true, buf) {
                Ok(()) => {
                    kept.used = now;
                    kept.len = buf.len();
                    return Ok(());
                }
                // Gone (or replaced under the same path): open the path again, once.
                Err(error) if gone(&error) => {
                    self.files.remove(key);
                }
                // The attribute refuses to answer now (`EINVAL` from `speed` of a link
                // that is down, `EAGAIN` from a hwmon driver): the file is still right.
                Err(error) => {
                    kept.used = now;
                    return Err(error);
                }
            }
        }
        let file = File::open(path)?;
        let keep = self.files.len() < self.max && is_kernel_text(&file);
        let read = read_from_start(&file, extent, keep, buf);
        if keep && read.as_ref().err().is_none_or(|error| !gone(error)) {
            let len = buf.len();
            self.files.insert(
                key.to_owned(),
                Kept {
                    file,
                    used: now,
                    len,
                },
            );
        }
        read
    }

    /// Closes the files not read since `since`.
    pub(crate) fn close_unread_since(&mut self, since: Instant) {
        self.files.retain(|_, kept| kept.used >= since);
    }

    /// Whether a file is kept under `key`.
    #[cfg(test)]
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.files.contains_key(key)
    }
}

/// The host files of this thread, by path.
struct HostFiles {
    files: KeptFiles<PathBuf>,
    swept: Instant,
}

thread_local! {
    static KEPT: RefCell<HostFiles> = RefCell::new(HostFiles {
        files: KeptFiles::new((open_files_limit() / 8).min(MAX_KEPT)),
        swept: Instant::now(),
    });
}

/// The soft limit of open files (1024, the usual default, if it cannot be read).
pub(crate) fn open_files_limit() -> usize {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .and_then(|(soft, _)| usize::try_from(soft).ok())
        .unwrap_or(1024)
}

/// Reads `path` into `buf` (cleared first), through a descriptor this thread keeps
/// when the file is on procfs or sysfs.
pub(crate) fn read_kept(path: &Path, extent: Extent, buf: &mut Vec<u8>) -> io::Result<()> {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let now = Instant::now();
        if now.duration_since(kept.swept) >= SWEEP_EVERY {
            kept.swept = now;
            if let Some(since) = now.checked_sub(IDLE) {
                kept.files.close_unread_since(since);
            }
        }
        kept.files.read(path, path, extent, buf)
    })
}

/// How many files this thread keeps open now.
#[cfg(test)]
pub(crate) fn kept_count() -> usize {
    KEPT.with(|kept| kept.borrow().files.files.len())
}

/// Whether this thread keeps `path` open.
#[cfg(test)]
pub(crate) fn is_kept(path: &Path) -> bool {
    KEPT.with(|kept| kept.borrow().files.contains(path))
}

/// Whether a failed read means the file's object is gone: a removed device's sysfs
/// attribute answers `ENODEV`, an exited process's files `ESRCH`.
fn gone(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENODEV | libc::ESRCH | libc::ENOENT)
    )
}

/// Whether `file` is on procfs or sysfs, whose text the kernel makes at each read.
fn is_kernel_text(file: &File) -> bool {
    match fstatfs(file) {
        Ok(stat) => {
            let kind = stat.filesystem_type();
            kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
        }
        Err(_) => false,
    }
}

fn reserve_for(buf: &mut Vec<u8>, last_len: usize) {
    // A little over the last length, so that a file that grew by a line still fits
    // the buffer without growing it.
    let want = last_len + last_len / 8 + 512;
    buf.reserve(want.saturating_sub(buf.len()));
}

/// Reads `file` from offset 0 into `buf`. `kernel_text`: whether the file is on procfs
/// or sysfs, the only files [`Extent::OnePiece`] may end at a short read.
fn read_from_start(
    file: &File,
    extent: Extent,
    kernel_text: bool,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let short_read_ends = kernel_text && extent == Extent::OnePiece;
    buf.clear();
    if extent == Extent::OnePage {
        buf.reserve(4096);
        return loop {
            match read_into_spare(file, buf, 4096, 0) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map(drop),
            }
        };
    }
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.len().max(4096));
        }
        let start = buf.len();
        let room = buf.capacity() - start;
        match read_into_spare(file, buf, room, start as u64) {
            Ok(len) => {
                if len == 0 || (short_read_ends && len < room) {
                    return Ok(());
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Reads up to `max` bytes at `offset` into `buf`'s spare capacity (at most that much)
/// and extends `buf` by what was read. Without it, every read zeroed its buffer first:
/// a page per sysfs attribute, and the rest of the buffer again for each page of a
/// long procfs file, a twentieth of the agent's instructions.
#[allow(unsafe_code)]
fn read_into_spare(file: &File, buf: &mut Vec<u8>, max: usize, offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len());
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past off_t"))?;
    // SAFETY: the pointer and length describe `max` bytes of `buf`'s spare capacity,
    // which is allocated, writable and not aliased while `buf` is borrowed mutably here;
    // pread writes at most `max` bytes there and nothing else, and the descriptor is
    // open for as long as `file` is borrowed.
    let read = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), max, offset) };
    let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: pread returned `read` <= `max` bytes, so the first `read` bytes of the
    // spare capacity are initialized, and `len + read` is within the capacity.
    unsafe { buf.set_len(buf.len() + read.min(max)) };
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::TempDir;

    #[test]
    fn procfs_files_are_kept_and_read_anew() {
        let path = Path::new("/proc/self/stat");
        let mut buf = Vec::new();
        read_kept(path, Extent::Whole, &mut buf).expect("reads");
        assert!(is_kept(path));
        // The thread's own stat moves with its CPU time; spin until it does, which it
        // can only be seen to do if the kept descriptor gives fresh text.
        let first = buf.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            read_kept(path, Extent::Whole, &mut buf).expect("reads again");
            if buf != first {
                break;
            }
            assert!(Instant::now() < deadline, "the text never changed");
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        assert!(buf.starts_with(format!("{} (", std::process::id()).as_bytes()));
    }

    #[test]
    fn long_procfs_text_is_read_whole() {
        // Longer than the first buffer: the short-read rule must not stop early.
        let path = Path::new("/proc/self/smaps");
        let mut kept = Vec::new();
        read_kept(path, Extent::Whole, &mut kept).expect("reads");
        let plain = std::fs::read(path).expect("reads");
        assert!(kept.len() > 8192, "{}", kept.len());
        let lines = |text: &[u8]| text.split(|&b| b == b'\n').count();
        // The maps move a little between two reads (this very read allocates).
        let (a, b) = (lines(&kept), lines(&plain));
        assert!(a.abs_diff(b) * 10 < b, "{a} lines kept against {b}");
        assert!(kept.ends_with(b"\n"));
    }

    #[test]
    fn regular_files_are_not_kept() {
        let dir = TempDir::new("kept-regular");
        let path = dir.path().join("stat");
        std::fs::write(&path, "one\n").expect("write");
        let mut buf = Vec::new();
        read_kept(&path, Extent::Whole, &mut buf).expect("reads");
        assert_eq!(buf, b"one\n");
        assert!(!is_kept(&path));
        // Replaced by a rename, as packages replace files: the new text is read.
        let next = dir.path().join("stat.new");
        std::fs::write(&next, "two\n").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        read_kept(&path, Extent::Whole, &mut buf).expect("reads");
        assert_eq!(buf, b"two\n");
    }

    #[test]
    fn a_kept_file_whose_process_is_gone_is_closed() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut buf = Vec::new();
        read_kept(&path, Extent::Whole, &mut buf).expect("reads");
        assert!(is_kept(&path));
        let before = kept_count();
        child.kill().expect("kill");
        child.wait().expect("reap");
        let error = read_kept(&path, Extent::Whole, &mut buf).expect_err("the process is gone");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(!is_kept(&path));
        assert_eq!(kept_count(), before - 1);
    }

    #[test]
    fn a_file_that_refuses_to_answer_stays_open() {
        // Loopback has no link speed: every read answers EINVAL, as for a link that is
        // down.
        let path = Path::new("/sys/class/net/lo/speed");
        let mut buf = Vec::new();
        for _ in 0..2 {
            let error = read_kept(path, Extent::OnePage, &mut buf).expect_err("no speed");
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}");
            assert!(is_kept(path));
        }
    }

    #[test]
    fn one_page_reads_once() {
        let path = Path::new("/proc/sys/kernel/pid_max");
        let mut buf = Vec::new();
        read_kept(path, Extent::OnePage, &mut buf).expect("reads");
        let text = String::from_utf8(buf).expect("ascii");
        assert!(text.trim().parse::<u64>().is_ok(), "{text:?}");
        assert!(is_kept(path));
    }
}
