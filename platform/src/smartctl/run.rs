//! Running the helper: a deadline, a cap on what it may print, its exit status.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished run printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit status; `None` if a signal ended the process.
    pub status: Option<i32>,
    /// Standard output, at most the cap.
    pub stdout: Vec<u8>,
    /// Standard error, at most the cap.
    pub stderr: Vec<u8>,
    /// Whether either stream printed more than the cap (the rest was discarded).
    pub truncated: bool,
    /// How long the run took.
    pub duration: Duration,
}

/// Why a run gave no output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The program ran past its deadline and was killed.
    #[error("{} timed out after {timeout:?} and was killed", program.display())]
    TimedOut {
        /// The program.
        program: PathBuf,
        /// The deadline it had.
        timeout: Duration,
    },
    /// Waiting for the program failed.
    #[error("cannot wait for {}: {source}", program.display())]
    Wait {
        /// The program.
        program: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Runs `program` with `args`, no standard input and an empty environment, for at most
/// `timeout`; keeps at most `max_output` bytes of each output stream.
///
/// A program still running at the deadline is killed (and reaped) and the run fails
/// with [`RunError::TimedOut`].
pub fn run(
    program: &Path,
    args: &[String],
    timeout: Duration,
    max_output: usize,
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    let stdout = child.stdout.take().map(|s| capture(s, max_output));
    let stderr = child.stderr.take().map(|s| capture(s, max_output));
    let status = wait_until(&mut child, started + timeout).map_err(|source| RunError::Wait {
        program: program.to_path_buf(),
        source,
    })?;
    let Some(status) = status else {
        // Killed. The reader threads end when the last holder of the pipes is gone;
        // they are left to it rather than joined, in case something the program
        // started still holds them.
        drop((stdout, stderr));
        return Err(RunError::TimedOut {
            program: program.to_path_buf(),
            timeout,
        });
    };
    let (stdout, out_cut) = joined(stdout);
    let (stderr, err_cut) = joined(stderr);
    Ok(RunOutput {
        status: status.code(),
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        duration: started.elapsed(),
    })
}

/// Reads a stream to its end on a thread, keeping the first `max` bytes.
fn capture<R: Read + Send + 'static>(
    mut stream: R,
    max: usize,
) -> thread::JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    truncated |= n > room;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, truncated)
    })
}

fn joined(handle: Option<thread::JoinHandle<(Vec<u8>, bool)>>) -> (Vec<u8>, bool) {
    handle
        .and_then(|h| h.join().ok())
        .unwrap_or((Vec::new(), false))
}

/// Waits for the child until `deadline`; kills and reaps it past that (`Ok(None)`).
fn wait_until(
    child: &mut Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration, max: usize) -> Result<RunOutput, RunError> {
        run(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script.to_owned()],
            timeout,
            max,
        )
    }

    #[test]
    fn output_and_exit_status_are_returned() {
        let out = sh(
            "echo out; echo err >&2; exit 6",
            Duration::from_secs(10),
            1024,
        )
        .unwrap();
        assert_eq!(out.status, Some(6));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated);
    }

    #[test]
    fn the_environment_is_empty() {
        let out = sh("env", Duration::from_secs(10), 4096).unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(!env.contains("HOME="), "{env}");
    }

    #[test]
    fn output_past_the_cap_is_discarded() {
        let out = sh(
            "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done",
            Duration::from_secs(10),
            100,
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 100);
        assert!(out.truncated);
        assert_eq!(out.status, Some(0));
    }

    #[test]
    fn a_run_past_its_deadline_is_killed() {
        let started = Instant::now();
        let error = sh("exec sleep 30", Duration::from_millis(200), 100).unwrap_err();
        assert!(matches!(error, RunError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let error = run(
            Path::new("/nonexistent/sysward-smart"),
            &[],
            Duration::from_secs(1),
            100,
        )
        .unwrap_err();
        assert!(matches!(error, RunError::Spawn { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/sysward-smart"));
    }
}
