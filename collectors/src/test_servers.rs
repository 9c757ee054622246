//! Real servers for the tests of the collectors of services: a free loopback port, a
//! program started in its own process group and stopped with it whatever happens to the
//! test (a `Drop` guard), polling with a deadline instead of sleeping, and a tiny HTTP
//! server that answers with fixed bytes.
//!
//! Under `CI` a missing program fails the test; elsewhere the test is skipped, saying so.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Whether `program` exists; without it the caller skips (fails under `CI`).
pub(crate) fn have(program: &str, package: &str) -> bool {
    if Path::new(program).exists() {
        return true;
    }
    let why = format!("{program} is missing: apt-get install {package}");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    false
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// Polls `ready` every few milliseconds until it is true or `limit` has passed.
pub(crate) fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A program running in a process group of its own, stopped with its children on drop.
pub(crate) struct Running {
    child: Child,
    name: String,
}

impl Running {
    /// Starts `command` and waits until `port` on 127.0.0.1 accepts connections.
    pub(crate) fn start(mut command: Command, port: u16) -> Self {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let name = format!("{command:?}");
        let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut running = Self { child, name };
        wait_until(Duration::from_secs(20), &running.name.clone(), || {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("{} exited at start: {status}", running.name);
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return;
        };
        let group = Pid::from_raw(pid);
        // TERM lets nginx and apache stop their workers; KILL whatever is left.
        let _ = killpg(group, Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET over a fresh connection (no chunked answer to decode); the whole
/// response as text.
pub(crate) fn get(port: u16, target: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The body of a response `get` returned.
pub(crate) fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Serves every connection on a loopback port with `answer` (the whole response, head
/// included), after reading the request head. Runs until the test process ends.
pub(crate) fn serve(answer: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            // A client that stops reading (at its body limit) ends the write: fine.
            let _ = stream.write_all(&answer);
        }
    });
    port
}
