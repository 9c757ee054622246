//! Sockets with a deadline, for whatever talks to a server within one run of a check or
//! a collector: name resolution and connecting with their times measured, and a stream
//! whose every read and write ends by the deadline.
//!
//! Everything here is synchronous: a run happens on one of the agent's blocking threads,
//! and socket timeouts set to what is left of the deadline before each call keep it
//! within its time. The one call that has no timeout of its own, `getaddrinfo`, runs on
//! a short-lived thread that the caller stops waiting for at the deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The end of one run of a check or collector.
///
/// A little of the run's timeout is kept back (a twentieth, at most 200 ms) so that the
/// run reports its own "timed out" before the agent abandons it and its result.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline for a run whose timeout is `timeout`, starting now.
    pub fn after(timeout: Duration) -> Self {
        let margin = (timeout / 20).min(Duration::from_millis(200));
        let budget = timeout.saturating_sub(margin);
        Self {
            end: Instant::now() + budget,
            budget,
        }
    }

    /// Time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// The instant it ends.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// The error for running out of time during `phase`.
    pub fn timed_out(&self, phase: &'static str) -> NetError {
        NetError::Timeout {
            phase,
            after: self.budget,
        }
    }
}

/// Why a network step failed; the text is what a check's output or a collector's error
/// says.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The deadline passed.
    #[error("timed out after {} while {phase}", secs(*after))]
    Timeout {
        /// What was under way: `connecting`, `reading the response`, ...
        phase: &'static str,
        /// The run's budget.
        after: Duration,
    },
    /// Name resolution failed.
    #[error("cannot resolve {host}: {message}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's words.
        message: String,
    },
    /// Every address refused or failed.
    #[error("cannot connect to {addr}: {}", io_text(source))]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {host} failed: {message}")]
    Tls {
        /// The server's name.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// Reading or writing failed after connecting.
    #[error("{phase}: {}", io_text(source))]
    Io {
        /// What was under way.
        phase: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// Anything else, said in full.
    #[error("{0}")]
    Other(String),
}

impl NetError {
    /// An I/O error during `phase`, a timeout when the socket's timeout ended it.
    pub fn io(phase: &'static str, source: io::Error, deadline: &Deadline) -> Self {
        if is_timeout(&source) {
            deadline.timed_out(phase)
        } else {
            NetError::Io { phase, source }
        }
    }
}

/// Whether an I/O error is a socket timeout (`EAGAIN` from `SO_RCVTIMEO`, or `ETIMEDOUT`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// An I/O error as a short phrase, without Rust's `(os error N)` suffix.
pub fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
    }
}

/// Seconds with millisecond precision, as outputs write durations: `0.012s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Resolves `host` (a name or an IP literal) with the system resolver; returns the
/// addresses and the time the lookup took (zero for a literal).
///
/// `getaddrinfo` has no timeout of its own, so it runs on a thread of its own; at the
/// deadline the probe stops waiting for it (the thread ends when the resolver gives up).
pub fn resolve(
    host: &str,
    port: u16,
    deadline: &Deadline,
) -> Result<(Vec<SocketAddr>, Duration), NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((vec![SocketAddr::new(ip, port)], Duration::ZERO));
    }
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("sysward-resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            // The receiver may have given up at the deadline; nothing to do then.
            let _ = tx.send(result);
        })
        .map_err(|e| NetError::Other(format!("cannot start a resolver thread: {e}")))?;
    let left = deadline
        .remaining()
        .ok_or_else(|| deadline.timed_out("resolving"))?;
    let result = rx
        .recv_timeout(left)
        .map_err(|_| deadline.timed_out("resolving"))?;
    let took = started.elapsed();
    let mut addrs = result.map_err(|e| NetError::Resolve {
        host: host.to_string(),
        message: resolver_text(&e),
    })?;
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(*a));
    if addrs.is_empty() {
        return Err(NetError::Resolve {
            host: host.to_string(),
            message: "no addresses".into(),
        });
    }
    Ok((addrs, took))
}

/// std words a failed lookup as "failed to lookup address information: Name or service
/// not known"; the resolver's own phrase is the useful part.
fn resolver_text(e: &io::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .map(str::to_string)
        .unwrap_or(text)
}

/// Connects to the first address that accepts, in the resolver's order; returns the
/// stream, the address and the time spent connecting (failed attempts included).
pub fn connect(
    addrs: &[SocketAddr],
    deadline: &Deadline,
) -> Result<(TcpStream, SocketAddr, Duration), NetError> {
    let started = Instant::now();
    let mut last = None;
    for addr in addrs {
        let left = deadline
            .remaining()
            .ok_or_else(|| deadline.timed_out("connecting"))?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => {
                // Requests are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                return Ok((stream, *addr, started.elapsed()));
            }
            Err(e) if is_timeout(&e) && deadline.remaining().is_none() => {
                return Err(deadline.timed_out("connecting"));
            }
            Err(source) => {
                last = Some(NetError::Connect {
                    addr: *addr,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| NetError::Other("no address to connect to".into())))
}

/// A TCP stream whose reads and writes end by the deadline: before each call the socket's
/// timeout is set to what is left; past the deadline a call fails with `TimedOut`.
#[derive(Debug)]
pub struct DeadlineStream {
    stream: TcpStream,
    end: Instant,
}

impl DeadlineStream {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream, deadline: &Deadline) -> Self {
        Self {
            stream,
            end: deadline.end(),
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_keeps_a_margin() {
        let d = Deadline::after(Duration::from_secs(10));
        assert_eq!(d.budget, Duration::from_millis(9_800));
        let d = Deadline::after(Duration::from_millis(100));
        assert_eq!(d.budget, Duration::from_millis(95));
    }

    #[test]
    fn a_literal_needs_no_resolver_and_a_bad_name_fails() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let (addrs, took) = resolve("127.0.0.1", 80, &deadline).expect("literal");
        assert_eq!(addrs, vec!["127.0.0.1:80".parse().expect("addr")]);
        assert_eq!(took, Duration::ZERO);
        let err = resolve("nonexistent.invalid", 80, &deadline).expect_err("must fail");
        assert!(
            matches!(err, NetError::Resolve { .. } | NetError::Timeout { .. }),
            "{err}"
        );
    }
}
