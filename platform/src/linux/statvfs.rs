//! `statvfs(3)` with a deadline.
//!
//! A file system whose server is gone (NFS `hard` mounts, a FUSE daemon that hangs)
//! blocks `statvfs` in the kernel, uninterruptibly and for as long as it takes. The
//! call cannot be cancelled, so each one runs on a thread of its own and the caller
//! waits only until its deadline. A path whose call has not returned is *hung*: it is
//! not called again (which would pile up blocked threads) until the first call returns.
//! So a hung mount costs one parked thread, however many cycles it stays hung.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::statvfs::FsFlags;

use crate::{Error, FsUsage, StatvfsOutcome};

/// `statvfs` on `path`, on the calling thread; it blocks as long as the file system does.
// The counts are `c_ulong`: u64 here, u32 on 32-bit targets, where `from` widens.
#[allow(clippy::useless_conversion)]
pub fn statvfs(path: &Path) -> Result<FsUsage, Error> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|errno| Error::Read {
        path: path.to_path_buf(),
        source: std::io::Error::from(errno),
    })?;
    // Block counts are in units of the fragment size (f_frsize), not f_bsize, which is
    // only the preferred I/O size; on most file systems the two are equal.
    let unit = u64::from(stat.fragment_size());
    let (blocks, free, avail, files, files_free) = (
        u64::from(stat.blocks()),
        u64::from(stat.blocks_free()),
        u64::from(stat.blocks_available()),
        u64::from(stat.files()),
        u64::from(stat.files_free()),
    );
    Ok(FsUsage {
        size_bytes: blocks.saturating_mul(unit),
        free_bytes: free.saturating_mul(unit),
        avail_bytes: avail.saturating_mul(unit),
        files,
        files_free,
        read_only: stat.flags().contains(FsFlags::ST_RDONLY),
    })
}

/// Makes `statvfs` calls with a deadline and remembers the paths whose calls hang.
///
/// Keep one for as long as the caller lives: it is what knows which paths are hung.
#[derive(Debug, Default)]
pub struct StatvfsRunner {
    /// Paths with a call in flight. A call's thread removes its path when it returns,
    /// whenever that is.
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

/// Stack for a thread that only calls `statvfs`: far below the 2 MiB default, since a
/// hung mount keeps its thread for as long as it hangs.
const STACK_SIZE: usize = 64 * 1024;

impl StatvfsRunner {
    /// A runner that knows of no hung path yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `statvfs` on every path at once, each on its own thread, and waits until
    /// all have answered or `timeout` has passed. Returns one outcome per path, in order.
    pub fn stat_all(&self, paths: &[PathBuf], timeout: Duration) -> Vec<StatvfsOutcome> {
        self.run(paths, timeout, statvfs)
    }

    /// [`StatvfsRunner::stat_all`] with the blocking call given, so that tests can make
    /// one hang.
    fn run(
        &self,
        paths: &[PathBuf],
        timeout: Duration,
        call: fn(&Path) -> Result<FsUsage, Error>,
    ) -> Vec<StatvfsOutcome> {
        let deadline = Instant::now() + timeout;
        let mut outcomes: Vec<Option<StatvfsOutcome>> = paths.iter().map(|_| None).collect();
        let (sender, receiver) = mpsc::channel();
        let mut waiting = 0;
        for (index, path) in paths.iter().enumerate() {
            if !self.lock().insert(path.clone()) {
                outcomes[index] = Some(StatvfsOutcome::StillHung);
                continue;
            }
            let sender = sender.clone();
            let in_flight = Arc::clone(&self.in_flight);
            let owned = path.clone();
            let spawned = std::thread::Builder::new()
                .name("sysward-statvfs".into())
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    let result = call(&owned);
                    in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&owned);
                    // The caller may have stopped waiting; then nobody wants the answer.
                    let _ = sender.send((index, result));
                });
            match spawned {
                Ok(_) => waiting += 1,
                Err(source) => {
                    self.lock().remove(path);
                    outcomes[index] = Some(StatvfsOutcome::Failed(Error::Read {
                        path: path.clone(),
                        source,
                    }));
                }
            }
        }
        drop(sender);
        while waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok((index, result)) => {
                    waiting -= 1;
                    outcomes[index] = Some(match result {
                        Ok(usage) => StatvfsOutcome::Usage(usage),
                        Err(error) => StatvfsOutcome::Failed(error),
                    });
                }
                Err(_) => break,
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(StatvfsOutcome::TimedOut))
            .collect()
    }

    /// The paths whose calls have not returned yet.
    pub fn hung(&self) -> Vec<PathBuf> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `path` as having a call in flight, as a hung mount would; for tests of
    /// callers, which cannot hang a real file system.
    #[doc(hidden)]
    pub fn pretend_hung(&self, path: &Path) {
        self.lock().insert(path.to_path_buf());
    }

    /// Forgets that `path` is hung, as when its call finally returns.
    #[doc(hidden)]
    pub fn pretend_answered(&self, path: &Path) {
        self.lock().remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_file_system_has_a_size() {
        let usage = statvfs(Path::new("/")).expect("statvfs /");
        assert!(usage.size_bytes > 0);
        assert!(usage.avail_bytes <= usage.free_bytes);
        assert!(usage.free_bytes <= usage.size_bytes);
    }

    #[test]
    fn a_missing_path_fails_naming_it() {
        match statvfs(Path::new("/nonexistent/sysward")) {
            Err(error @ Error::Read { .. }) => {
                assert!(
                    error.to_string().contains("/nonexistent/sysward"),
                    "{error}"
                );
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn outcomes_come_back_in_order() {
        let runner = StatvfsRunner::new();
        let paths = [PathBuf::from("/"), PathBuf::from("/nonexistent/sysward")];
        let outcomes = runner.stat_all(&paths, Duration::from_secs(5));
        assert!(
            matches!(outcomes[0], StatvfsOutcome::Usage(_)),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[1], StatvfsOutcome::Failed(_)),
            "{outcomes:?}"
        );
        assert!(runner.hung().is_empty());
    }

    #[test]
    fn a_hung_path_is_not_called_again_until_it_answers() {
        let runner = StatvfsRunner::new();
        let root = PathBuf::from("/");
        runner.pretend_hung(&root);
        let outcomes = runner.stat_all(std::slice::from_ref(&root), Duration::from_secs(5));
        assert!(
            matches!(outcomes[0], StatvfsOutcome::StillHung),
            "{outcomes:?}"
        );
        assert_eq!(runner.hung(), std::slice::from_ref(&root));
        runner.pretend_answered(&root);
        let outcomes = runner.stat_all(&[root], Duration::from_secs(5));
        assert!(
            matches!(outcomes[0], StatvfsOutcome::Usage(_)),
            "{outcomes:?}"
        );
    }

    /// Blocks while `SLOW` is held, as a hung NFS server would.
    static SLOW: Mutex<()> = Mutex::new(());

    fn slow_statvfs(path: &Path) -> Result<FsUsage, Error> {
        if path == Path::new("/slow") {
            drop(SLOW.lock().unwrap_or_else(PoisonError::into_inner));
            return Ok(FsUsage::default());
        }
        statvfs(path)
    }

    #[test]
    fn a_call_that_hangs_times_out_then_is_skipped_until_it_returns() {
        let runner = StatvfsRunner::new();
        let paths = [PathBuf::from("/slow"), PathBuf::from("/")];
        let held = SLOW.lock().expect("lock");
        let started = Instant::now();
        let outcomes = runner.run(&paths, Duration::from_millis(200), slow_statvfs);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(outcomes[0], StatvfsOutcome::TimedOut),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[1], StatvfsOutcome::Usage(_)),
            "{outcomes:?}"
        );
        assert_eq!(runner.hung(), [PathBuf::from("/slow")]);

        let outcomes = runner.run(&paths, Duration::from_millis(200), slow_statvfs);
        assert!(
            matches!(outcomes[0], StatvfsOutcome::StillHung),
            "{outcomes:?}"
        );

        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !runner.hung().is_empty() {
            assert!(Instant::now() < deadline, "the hung call never returned");
            std::thread::sleep(Duration::from_millis(5));
        }
        let outcomes = runner.run(&paths, Duration::from_secs(5), slow_statvfs);
        assert!(
            matches!(outcomes[0], StatvfsOutcome::Usage(_)),
            "{outcomes:?}"
        );
    }

    #[test]
    fn a_zero_deadline_never_blocks() {
        let runner = StatvfsRunner::new();
        let started = Instant::now();
        let outcomes = runner.stat_all(&[PathBuf::from("/")], Duration::ZERO);
        assert_eq!(outcomes.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
