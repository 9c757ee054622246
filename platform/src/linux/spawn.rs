//! Running a program for a check: in a session of its own, with a cleared environment,
//! a deadline, capped output and its resource usage.
//!
//! What [`run`] guarantees:
//! - the child starts with exactly the environment given (nothing inherited), standard
//!   input from `/dev/null`, the working directory given, core dumps off
//!   (`RLIMIT_CORE` 0), and in a new session and process group (`setsid`), whose id is
//!   its pid;
//! - stdout and stderr are each kept up to a limit; the rest is read and discarded
//!   (and counted), so that a chatty program neither blocks on a full pipe nor costs
//!   memory;
//! - when the deadline passes, the whole process group is killed with `SIGKILL`, so
//!   that children the program started die with it; when the program exits by itself,
//!   what is left of its group is killed too, so that a check never leaves processes
//!   behind. (A process that made a session of its own has left the group on purpose
//!   and is not followed.) The group is killed while the program is still an unreaped
//!   zombie, so that its pid, which is the group's id, cannot have been reused;
//! - the program is reaped with `wait4`, which also gives its CPU time and peak
//!   resident memory (including those of the children it waited for).
//!
//! The program's exit is noticed by polling `waitid(WNOWAIT)` between reads, at most
//! [`POLL_SLICE`] apart: a pipe held open by a background child must not keep the run
//! going after the program itself is done.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

/// The longest the run loop sleeps before it looks again whether the program exited.
pub const POLL_SLICE: Duration = Duration::from_millis(20);

/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct SpawnSpec<'a> {
    /// The program, an absolute path; it is executed directly, never through a shell.
    pub program: &'a Path,
    /// Its arguments (not including the program itself).
    pub args: &'a [String],
    /// Its whole environment.
    pub env: &'a [(String, String)],
    /// Its working directory.
    pub cwd: &'a Path,
    /// Bytes kept of stdout, and separately of stderr.
    pub output_limit: usize,
    /// How long it may run before its process group is killed.
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by a signal it did not catch.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether the kernel reported a core dump.
        core_dumped: bool,
    },
    /// The deadline passed; the process group was killed.
    TimedOut,
}

impl Termination {
    /// The name of a signal number, such as `SIGSEGV`, or `signal N` for one this
    /// system does not name.
    pub fn signal_name(signal: i32) -> String {
        Signal::try_from(signal)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {signal}"))
    }
}

/// One output stream as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, up to the limit.
    pub bytes: Vec<u8>,
    /// Bytes read past the limit and thrown away.
    pub discarded: u64,
}

/// CPU time and memory of the program, from `wait4`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on its behalf.
    pub system: Duration,
    /// Peak resident set size in bytes (the kernel's `ru_maxrss`, in KiB, times 1024).
    pub max_rss_bytes: u64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub termination: Termination,
    /// Its standard output.
    pub stdout: Captured,
    /// Its standard error.
    pub stderr: Captured,
    /// Its resource usage.
    pub usage: Usage,
    /// Wall-clock time from start to reaping.
    pub elapsed: Duration,
}

/// Why a program could not be run (as opposed to ran and failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// `execve` or a step before it failed: no such file, permission denied, a missing
    /// interpreter, an exec format error.
    #[error("cannot execute {}: {source}{}", program.display(), interpreter_note(interpreter.as_deref()))]
    Exec {
        /// The program.
        program: PathBuf,
        /// When the program exists and starts with `#!` but `execve` answered "no such
        /// file": the interpreter its first line names, which is what is missing.
        interpreter: Option<String>,
        /// What the OS said.
        source: io::Error,
    },
    /// A system call needed to supervise the child failed.
    #[error("{call} failed while running {}: {source}", program.display())]
    Supervise {
        /// The program.
        program: PathBuf,
        /// The call, e.g. `poll`.
        call: &'static str,
        /// What the OS said.
        source: io::Error,
    },
}

fn interpreter_note(interpreter: Option<&str>) -> String {
    match interpreter {
        Some(i) => format!(" (its interpreter {i:?} is missing)"),
        None => String::new(),
    }
}

impl SpawnError {
    /// The OS error behind it.
    pub fn io_error(&self) -> &io::Error {
        match self {
            SpawnError::Exec { source, .. } | SpawnError::Supervise { source, .. } => source,
        }
    }
}

/// One pipe being read.
struct Stream<R> {
    pipe: Option<R>,
    kept: Captured,
    limit: usize,
}

impl<R: Read> Stream<R> {
    /// Reads what the pipe holds now, until it would block or ends; closes it at its end.
    fn drain(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(());
        };
        loop {
            match pipe.read(buf) {
                Ok(0) => {
                    self.pipe = None;
                    return Ok(());
                }
                Ok(n) => {
                    let room = self.limit.saturating_sub(self.kept.bytes.len());
                    let keep = room.min(n);
                    self.kept.bytes.extend_from_slice(&buf[..keep]);
                    self.kept.discarded = self.kept.discarded.saturating_add((n - keep) as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.pipe = None;
                    return Err(e);
                }
            }
        }
    }
}

/// Runs `spec.program` to its end or its deadline; see the module documentation.
pub fn run(spec: &SpawnSpec<'_>) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let supervise = |call: &'static str, source: io::Error| SpawnError::Supervise {
        program: spec.program.to_path_buf(),
        call,
        source,
    };

    let mut command = Command::new(spec.program);
    command
        .args(spec.args)
        .env_clear()
        .envs(
            spec.env
                .iter()
                .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str()))),
        )
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    in_own_session_without_core_dumps(&mut command);
    let mut child = command.spawn().map_err(|source| SpawnError::Exec {
        program: spec.program.to_path_buf(),
        interpreter: missing_interpreter(spec.program, &source),
        source,
    })?;
    let raw_pid = i32::try_from(child.id()).map_err(|_| {
        supervise(
            "spawn",
            io::Error::new(io::ErrorKind::InvalidData, "pid out of range"),
        )
    })?;
    let pid = Pid::from_raw(raw_pid);
    // `child` is dropped without a wait: it is reaped below with `wait4`, and dropping
    // a `std::process::Child` neither waits nor kills.
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    drop(child);

    let result = supervise_run(pid, stdout, stderr, spec, deadline);
    // Whatever happened, nothing of the group outlives the run, and the program is
    // reaped. ESRCH: the group is already empty.
    let _ = killpg(pid, Signal::SIGKILL);
    let reaped = reap(pid);
    let (termination_hint, mut out, mut err) = result.map_err(|(call, e)| supervise(call, e))?;
    let (status, usage) = reaped.map_err(|e| supervise("wait4", e))?;
    // What the group wrote before it died.
    let mut buf = vec![0u8; CHUNK];
    let _ = out.drain(&mut buf);
    let _ = err.drain(&mut buf);
    let termination = match termination_hint {
        Some(timed_out) => timed_out,
        None => status,
    };
    Ok(Finished {
        termination,
        stdout: out.kept,
        stderr: err.kept,
        usage,
        elapsed: started.elapsed(),
    })
}

type Streams = (
    Option<Termination>,
    Stream<ChildStdout>,
    Stream<ChildStderr>,
);

/// Reads both pipes until the program exits or the deadline passes. Returns
/// `Some(TimedOut)` in the latter case.
fn supervise_run(
    pid: Pid,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    spec: &SpawnSpec<'_>,
    deadline: Instant,
) -> Result<Streams, (&'static str, io::Error)> {
    for fd in [
        stdout.as_ref().map(|p| p.as_fd()),
        stderr.as_ref().map(|p| p.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| ("fcntl", io::Error::from(e)))?;
    }
    let mut out = Stream {
        pipe: stdout,
        kept: Captured::default(),
        limit: spec.output_limit,
    };
    let mut err = Stream {
        pipe: stderr,
        kept: Captured::default(),
        limit: spec.output_limit,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        if exited(pid).map_err(|e| ("waitid", e))? {
            // It is done: take what it left in the pipes, without waiting for children
            // that may hold them open.
            out.drain(&mut buf).map_err(|e| ("read", e))?;
            err.drain(&mut buf).map_err(|e| ("read", e))?;
            return Ok((None, out, err));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((Some(Termination::TimedOut), out, err));
        }
        let slice = (deadline - now).min(POLL_SLICE);
        let timeout = PollTimeout::try_from(slice).unwrap_or(PollTimeout::ZERO);
        let (out_ready, err_ready) = {
            let mut which = Vec::with_capacity(2);
            let mut fds = Vec::with_capacity(2);
            if let Some(p) = &out.pipe {
                which.push(0);
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if let Some(p) = &err.pipe {
                which.push(1);
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                std::thread::sleep(slice);
                (false, false)
            } else {
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(("poll", io::Error::from(e))),
                }
                // Readable, at its end or in error: a read tells which.
                let ready = |stream: usize| {
                    which
                        .iter()
                        .zip(&fds)
                        .any(|(w, f)| *w == stream && f.any().unwrap_or(true))
                };
                (ready(0), ready(1))
            }
        };
        if out_ready {
            out.drain(&mut buf).map_err(|e| ("read", e))?;
        }
        if err_ready {
            err.drain(&mut buf).map_err(|e| ("read", e))?;
        }
    }
}

/// Whether `pid` has exited, without reaping it.
fn exited(pid: Pid) -> io::Result<bool> {
    loop {
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes the child a session (and process group) leader of its own, so that its whole
/// group can be killed, and turns its core dumps off.
#[allow(unsafe_code)]
fn in_own_session_without_core_dumps(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before `execve`, where only
    // async-signal-safe functions may be called: `setsid` and `setrlimit` are plain
    // system calls that allocate nothing and take no lock. The `rlimit` value lives on
    // the closure's own stack.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // Lowering a limit needs no privilege; should it fail, the run goes on.
            let _ = libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            Ok(())
        });
    }
}

/// Waits for `pid` and returns how it ended and what it used.
#[allow(unsafe_code)]
fn reap(pid: Pid) -> io::Result<(Termination, Usage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `libc::rusage` is a plain C struct of integers, for which all zero bytes
    // are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, exclusively borrowed and live across
        // the call; the kernel only writes into them.
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let termination = if libc::WIFEXITED(status) {
        Termination::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Termination::Signaled {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }
    } else {
        // wait4 without WUNTRACED reports only terminations.
        Termination::Exited(-1)
    };
    Ok((termination, usage_of(&usage)))
}

fn usage_of(u: &libc::rusage) -> Usage {
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Usage {
        user: time(u.ru_utime),
        system: time(u.ru_stime),
        max_rss_bytes: u64::try_from(u.ru_maxrss).unwrap_or(0).saturating_mul(1024),
    }
}

/// The interpreter named by `program`'s `#!` line, when `execve` said "no such file"
/// although the program itself exists: then it is the interpreter that is missing.
fn missing_interpreter(program: &Path, error: &io::Error) -> Option<String> {
    if error.kind() != io::ErrorKind::NotFound {
        return None;
    }
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    parse_shebang(&head[..n])
}

/// The interpreter path of a `#!` line, if the text starts with one.
pub fn parse_shebang(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    text.split_ascii_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::linux::testing::TempDir;

    fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, body).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn spec<'a>(program: &'a Path, env: &'a [(String, String)]) -> SpawnSpec<'a> {
        SpawnSpec {
            program,
            args: &[],
            env,
            cwd: Path::new("/"),
            output_limit: 64 * 1024,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn exit_code_output_and_usage() {
        let dir = TempDir::new("spawn-exit");
        let path = script(
            &dir,
            "s",
            "#!/bin/sh\necho \"out $1\"\necho err >&2\nexit 2\n",
        );
        let args = ["a1".to_string()];
        let spec = SpawnSpec {
            args: &args,
            ..spec(&path, &[])
        };
        let done = run(&spec).expect("runs");
        assert_eq!(done.termination, Termination::Exited(2));
        assert_eq!(done.stdout.bytes, b"out a1\n");
        assert_eq!(done.stderr.bytes, b"err\n");
        assert!(done.usage.max_rss_bytes > 0, "{:?}", done.usage);
    }

    #[test]
    fn the_environment_is_exactly_the_one_given() {
        let env = [("ONLY".to_string(), "this".to_string())];
        let done = run(&spec(Path::new("/usr/bin/env"), &env)).expect("runs");
        assert_eq!(String::from_utf8_lossy(&done.stdout.bytes), "ONLY=this\n");
    }

    #[test]
    fn runs_in_a_session_of_its_own() {
        let dir = TempDir::new("spawn-setsid");
        let path = script(
            &dir,
            "s",
            "#!/bin/sh\nread _ _ _ _ _ sid _ < /proc/$$/stat\necho $$ $sid\n",
        );
        let done = run(&spec(&path, &[])).expect("runs");
        let text = String::from_utf8_lossy(&done.stdout.bytes);
        let ids: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{text}");
        assert_eq!(ids[0], ids[1], "session id is the pid: {text}");
    }

    #[test]
    fn a_signal_is_reported() {
        let dir = TempDir::new("spawn-signal");
        let path = script(&dir, "s", "#!/bin/sh\nkill -SEGV $$\n");
        let done = run(&spec(&path, &[])).expect("runs");
        assert!(
            matches!(
                done.termination,
                Termination::Signaled {
                    signal: 11,
                    core_dumped: false
                }
            ),
            "{:?}",
            done.termination
        );
        assert_eq!(Termination::signal_name(11), "SIGSEGV");
        assert_eq!(Termination::signal_name(1000), "signal 1000");
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let dir = TempDir::new("spawn-timeout");
        let pidfile = dir.path().join("child.pid");
        let path = script(
            &dir,
            "s",
            &format!(
                "#!/bin/sh\nsleep 30 &\necho $! > {}\necho started\nsleep 30\n",
                pidfile.display()
            ),
        );
        let spec = SpawnSpec {
            timeout: Duration::from_millis(500),
            ..spec(&path, &[])
        };
        let done = run(&spec).expect("runs");
        assert_eq!(done.termination, Termination::TimedOut);
        assert!(done.elapsed < Duration::from_secs(5), "{:?}", done.elapsed);
        assert_eq!(done.stdout.bytes, b"started\n");
        let child: i32 = fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(gone_or_zombie(child), "child {child} survived");
    }

    #[test]
    fn leftovers_die_when_the_program_exits() {
        let dir = TempDir::new("spawn-leftover");
        let pidfile = dir.path().join("child.pid");
        let path = script(
            &dir,
            "s",
            &format!(
                "#!/bin/sh\nsleep 30 &\necho $! > {}\necho done\n",
                pidfile.display()
            ),
        );
        let done = run(&spec(&path, &[])).expect("runs");
        assert_eq!(done.termination, Termination::Exited(0));
        assert!(done.elapsed < Duration::from_secs(5), "{:?}", done.elapsed);
        assert_eq!(done.stdout.bytes, b"done\n");
        let child: i32 = fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(gone_or_zombie(child), "child {child} survived");
    }

    /// Whether a process is gone or dead and waiting for its (new) parent to reap it.
    pub(crate) fn gone_or_zombie(pid: i32) -> bool {
        for _ in 0..100 {
            match fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(text) => {
                    if let Ok(stat) = crate::linux::parse_pid_stat(&text)
                        && matches!(stat.state, 'Z' | 'X')
                    {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn output_past_the_limit_is_discarded_and_counted() {
        let dir = TempDir::new("spawn-cap");
        let path = script(
            &dir,
            "s",
            "#!/bin/sh\nhead -c 10000000 /dev/zero\nhead -c 100 /dev/zero >&2\n",
        );
        let spec = SpawnSpec {
            output_limit: 1000,
            ..spec(&path, &[])
        };
        let done = run(&spec).expect("runs");
        assert_eq!(done.termination, Termination::Exited(0));
        assert_eq!(done.stdout.bytes.len(), 1000);
        assert_eq!(done.stdout.discarded, 10_000_000 - 1000);
        assert_eq!(done.stderr.bytes.len(), 100);
        assert_eq!(done.stderr.discarded, 0);
        assert!(done.elapsed < Duration::from_secs(5), "{:?}", done.elapsed);
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = TempDir::new("spawn-interp");
        let path = script(&dir, "s", "#!/nonexistent/interp -x\necho hi\n");
        let error = run(&spec(&path, &[])).expect_err("cannot run");
        let message = error.to_string();
        assert!(
            message.contains("its interpreter \"/nonexistent/interp\" is missing"),
            "{message}"
        );
        assert_eq!(error.io_error().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_missing_program_and_a_non_executable_one_fail_to_start() {
        let dir = TempDir::new("spawn-missing");
        let missing = dir.path().join("nope");
        let error = run(&spec(&missing, &[])).expect_err("missing");
        assert!(!error.to_string().contains("interpreter"), "{error}");
        let path = dir.path().join("plain");
        fs::write(&path, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = run(&spec(&path, &[])).expect_err("not executable");
        assert_eq!(
            error.io_error().kind(),
            io::ErrorKind::PermissionDenied,
            "{error}"
        );
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(parse_shebang(b"#!/bin/sh\n"), Some("/bin/sh".into()));
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env python3\nx"),
            Some("/usr/bin/env".into())
        );
        assert_eq!(parse_shebang(b"echo\n"), None);
        assert_eq!(parse_shebang(b"#!"), None);
    }
}
