//! `statvfs(3)` with a deadline.
//!
//! A file system whose server is gone (NFS `hard` mounts, a FUSE daemon that hangs)
//! blocks `statvfs` in the kernel, uninterruptibly and for as long as it takes. The
//! call cannot be cancelled, so the calls run on a thread other than the caller's, and
//! the caller waits for each only until its deadline. A path whose call has not
//! returned is *hung*: it is not called again (which would pile up blocked threads)
//! until the first call returns. So a hung mount costs one parked thread, however many
//! cycles it stays hung.
//!
//! While no call hangs, one long-lived worker thread makes the calls one after
//! another: a thread per call and cycle was two of the agent's costliest system calls
//! per cycle (clone with its stack mapping, then exit), for calls that take microseconds.
//! When a call takes more than half the deadline, the worker is left to it (it exits
//! once the call returns), the paths still waiting are called each on a thread of its
//! own, and the next cycle starts a new worker. The whole stays within the deadline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Paths with a call in flight, and how many. A call's thread counts its path in
    /// when the call starts and out when it returns, whenever that is.
    in_flight: InFlight,
    /// The thread that makes the calls while none hangs; `None` before the first call
    /// and after one hung.
    worker: Mutex<Option<Worker>>,
}

type InFlight = Arc<Mutex<HashMap<PathBuf, usize>>>;
type Call = fn(&Path) -> Result<FsUsage, Error>;

#[derive(Debug)]
struct Worker {
    jobs: mpsc::Sender<Job>,
    /// Set when the runner stops waiting on this worker: it then exits after the call
    /// it is in, leaving the jobs queued behind it.
    retired: Arc<AtomicBool>,
}

struct Job {
    index: usize,
    path: PathBuf,
    call: Call,
    replies: mpsc::Sender<Reply>,
}

enum Reply {
    Started(usize),
    Done(usize, Result<FsUsage, Error>),
}

/// Stack for a thread that only calls `statvfs`: far below the 2 MiB default, since a
/// hung mount keeps its thread for as long as it hangs.
const STACK_SIZE: usize = 64 * 1024;

impl StatvfsRunner {
    /// A runner that knows of no hung path yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `statvfs` on every path and waits for the answers, at most about `timeout`
    /// in all. Returns one outcome per path, in order.
    ///
    /// The calls run one after another on the worker while each answers within half of
    /// `timeout`. One that does not is given up on: the paths after it are called at
    /// once, each on a thread of its own, and everything still open is waited on until
    /// that call's full `timeout` has passed (it may still answer in time).
    pub fn stat_all(&self, paths: &[PathBuf], timeout: Duration) -> Vec<StatvfsOutcome> {
        self.run(paths, timeout, statvfs)
    }

    /// [`StatvfsRunner::stat_all`] with the blocking call given, so that tests can make
    /// one hang.
    fn run(&self, paths: &[PathBuf], timeout: Duration, call: Call) -> Vec<StatvfsOutcome> {
        let mut outcomes: Vec<Option<StatvfsOutcome>> = paths.iter().map(|_| None).collect();
        let mut pending = Vec::new();
        {
            let in_flight = self.lock();
            for (index, path) in paths.iter().enumerate() {
                if in_flight.contains_key(path) {
                    outcomes[index] = Some(StatvfsOutcome::StillHung);
                } else {
                    pending.push(index);
                }
            }
        }
        let (replies, answers) = mpsc::channel();
        let mut waiting = pending.len();
        // Set once a call is given up on: the end of the whole wait.
        let mut deadline = None;
        if !self.send_to_worker(paths, &pending, call, &replies) {
            waiting -= self.spawn_each(paths, &pending, call, &replies, &mut outcomes);
            deadline = Some(Instant::now() + timeout);
        }
        let mut started_at = Instant::now();
        let mut current = None;
        while waiting > 0 {
            let until = deadline.unwrap_or(started_at + timeout / 2);
            match answers.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Reply::Started(index)) => {
                    current = Some(index);
                    started_at = Instant::now();
                }
                Ok(Reply::Done(index, result)) => {
                    // A path can be answered twice: by a retired worker that had already
                    // started it, and by its own thread.
                    if outcomes[index].is_none() {
                        outcomes[index] = Some(outcome(result));
                        waiting -= 1;
                    }
                    current = None;
                    started_at = Instant::now();
                }
                Err(_) if deadline.is_none() => {
                    self.retire_worker();
                    let left: Vec<usize> = pending
                        .iter()
                        .copied()
                        .filter(|&index| outcomes[index].is_none() && Some(index) != current)
                        .collect();
                    waiting -= self.spawn_each(paths, &left, call, &replies, &mut outcomes);
                    deadline = Some(started_at + timeout);
                }
                Err(_) => break,
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(StatvfsOutcome::TimedOut))
            .collect()
    }

    /// Queues a job per pending path on the worker, starting one if there is none.
    /// `false` when no worker could take them (no thread could be started).
    fn send_to_worker(
        &self,
        paths: &[PathBuf],
        pending: &[usize],
        call: Call,
        replies: &mpsc::Sender<Reply>,
    ) -> bool {
        if pending.is_empty() {
            return true;
        }
        let mut worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if worker.is_none() {
            *worker = Worker::start(Arc::clone(&self.in_flight));
        }
        let Some(current) = worker.as_ref() else {
            return false;
        };
        for &index in pending {
            let job = Job {
                index,
                path: paths[index].clone(),
                call,
                replies: replies.clone(),
            };
            if current.jobs.send(job).is_err() {
                // The worker is gone (it cannot be, short of a panic in the call); the
                // jobs already sent are answered or fall to threads of their own.
                *worker = None;
                return false;
            }
        }
        true
    }

    fn retire_worker(&self) {
        let mut worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(worker) = worker.take() {
            worker.retired.store(true, Ordering::Release);
        }
    }

    /// Calls `statvfs` on each path of `indexes` at once, each on its own thread, which
    /// answers on `replies`. Returns how many could not be started (their outcome is
    /// set: failed).
    fn spawn_each(
        &self,
        paths: &[PathBuf],
        indexes: &[usize],
        call: Call,
        replies: &mpsc::Sender<Reply>,
        outcomes: &mut [Option<StatvfsOutcome>],
    ) -> usize {
        let mut failed = 0;
        for &index in indexes {
            let replies = replies.clone();
            let in_flight = Arc::clone(&self.in_flight);
            let owned = paths[index].clone();
            count_in(&in_flight, &owned);
            let spawned =
                statvfs_thread().spawn(move || answer(&in_flight, call, index, &owned, &replies));
            if let Err(source) = spawned {
                count_out(&self.in_flight, &paths[index]);
                outcomes[index] = Some(StatvfsOutcome::Failed(Error::Read {
                    path: paths[index].clone(),
                    source,
                }));
                failed += 1;
            }
        }
        failed
    }

    /// The paths whose calls have not returned yet.
    pub fn hung(&self) -> Vec<PathBuf> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, usize>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `path` as having a call in flight, as a hung mount would; for tests of
    /// callers, which cannot hang a real file system.
    #[doc(hidden)]
    pub fn pretend_hung(&self, path: &Path) {
        count_in(&self.in_flight, path);
    }

    /// Forgets that `path` is hung, as when its call finally returns.
    #[doc(hidden)]
    pub fn pretend_answered(&self, path: &Path) {
        count_out(&self.in_flight, path);
    }
}

impl Worker {
    /// Starts a worker thread; `None` if the system will not start one.
    fn start(in_flight: InFlight) -> Option<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let retired = Arc::new(AtomicBool::new(false));
        let retired_seen = Arc::clone(&retired);
        statvfs_thread()
            .spawn(move || {
                for job in queue {
                    if retired_seen.load(Ordering::Acquire) {
                        return;
                    }
                    count_in(&in_flight, &job.path);
                    let _ = job.replies.send(Reply::Started(job.index));
                    answer(&in_flight, job.call, job.index, &job.path, &job.replies);
                }
            })
            .ok()?;
        Some(Worker { jobs, retired })
    }
}

/// A thread that only calls `statvfs` (see [`STACK_SIZE`]).
fn statvfs_thread() -> std::thread::Builder {
    std::thread::Builder::new()
        .name("sysward-statvfs".into())
        .stack_size(STACK_SIZE)
}

/// Makes a call already counted in flight, counts it out and answers with its result.
fn answer(
    in_flight: &InFlight,
    call: Call,
    index: usize,
    path: &Path,
    replies: &mpsc::Sender<Reply>,
) {
    let result = call(path);
    count_out(in_flight, path);
    // The caller may have stopped waiting; then nobody wants the answer.
    let _ = replies.send(Reply::Done(index, result));
}

fn count_in(in_flight: &InFlight, path: &Path) {
    let mut map = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
    *map.entry(path.to_path_buf()).or_insert(0) += 1;
}

fn count_out(in_flight: &InFlight, path: &Path) {
    let mut map = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(count) = map.get_mut(path) {
        *count -= 1;
        if *count == 0 {
            map.remove(path);
        }
    }
}

fn outcome(result: Result<FsUsage, Error>) -> StatvfsOutcome {
    match result {
        Ok(usage) => StatvfsOutcome::Usage(usage),
        Err(error) => StatvfsOutcome::Failed(error),
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

    /// The outcomes' kinds, to compare in one assertion.
    fn kinds(outcomes: &[StatvfsOutcome]) -> Vec<&'static str> {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                StatvfsOutcome::Usage(_) => "usage",
                StatvfsOutcome::Failed(_) => "failed",
                StatvfsOutcome::TimedOut => "timed out",
                StatvfsOutcome::StillHung => "still hung",
            })
            .collect()
    }

    #[test]
    fn a_call_that_hangs_times_out_then_is_skipped_until_it_returns() {
        let runner = StatvfsRunner::new();
        // The paths after the hung one wait behind it on the worker: they must still
        // be answered.
        let paths = [
            PathBuf::from("/"),
            PathBuf::from("/slow"),
            PathBuf::from("/proc"),
            PathBuf::from("/nonexistent/sysward"),
        ];
        let held = SLOW.lock().expect("lock");
        let started = Instant::now();
        let outcomes = runner.run(&paths, Duration::from_millis(200), slow_statvfs);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(kinds(&outcomes), ["usage", "timed out", "usage", "failed"]);
        assert_eq!(runner.hung(), [PathBuf::from("/slow")]);

        // The next cycle skips the hung path; a new worker answers the rest.
        let outcomes = runner.run(&paths, Duration::from_secs(5), slow_statvfs);
        assert_eq!(kinds(&outcomes), ["usage", "still hung", "usage", "failed"]);

        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !runner.hung().is_empty() {
            assert!(Instant::now() < deadline, "the hung call never returned");
            std::thread::sleep(Duration::from_millis(5));
        }
        let outcomes = runner.run(&paths, Duration::from_secs(5), slow_statvfs);
        assert_eq!(kinds(&outcomes), ["usage", "usage", "usage", "failed"]);
    }

    /// The threads `recording_statvfs` was called on, in order.
    static CALLERS: Mutex<Vec<std::thread::ThreadId>> = Mutex::new(Vec::new());

    fn recording_statvfs(path: &Path) -> Result<FsUsage, Error> {
        CALLERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(std::thread::current().id());
        statvfs(path)
    }

    #[test]
    fn calls_share_one_long_lived_thread() {
        let runner = StatvfsRunner::new();
        let paths = [
            PathBuf::from("/"),
            PathBuf::from("/proc"),
            PathBuf::from("/sys"),
        ];
        for _ in 0..3 {
            let outcomes = runner.run(&paths, Duration::from_secs(5), recording_statvfs);
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, StatvfsOutcome::Usage(_))),
                "{outcomes:?}"
            );
        }
        let callers = CALLERS.lock().expect("lock").clone();
        assert_eq!(callers.len(), 9);
        assert!(callers.iter().all(|id| *id == callers[0]), "{callers:?}");
        assert_ne!(callers[0], std::thread::current().id());
        assert!(runner.hung().is_empty());
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
