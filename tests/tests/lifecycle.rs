//! What systemd sees of the agent and the server (`Type=notify` units with a watchdog):
//! READY=1 once serving, WATCHDOG=1 pings at half of `WATCHDOG_USEC`, RELOADING=1 with
//! MONOTONIC_USEC then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM, and a clean
//! exit 0 after a graceful stop. The test is the notification socket systemd would be.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use sysward_tests::{Agent, Server, bin, poll};

/// systemd's end of `NOTIFY_SOCKET`: every datagram received, in order.
struct NotifySocket {
    socket: UnixDatagram,
    path: String,
    received: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            socket,
            path: path.to_str().unwrap().to_string(),
            received: Vec::new(),
        }
    }

    /// Reads until `done` holds of everything received, or fails after 30 s.
    fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !done(&self.received) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {:?}",
                self.received
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                // sd_notify ends each message with a newline; compare without it.
                let text = String::from_utf8_lossy(&buf[..n]);
                self.received.push(text.trim_end_matches('\n').to_string());
            }
        }
    }

    fn count(&self, message: &str) -> usize {
        self.received
            .iter()
            .filter(|m| m.as_str() == message)
            .count()
    }

    /// How many messages have arrived: a later check can look only at those after it.
    fn mark(&self) -> usize {
        self.received.len()
    }
}

fn env(socket: &NotifySocket) -> [(&'static str, String); 2] {
    // A 400 ms watchdog: pings every 200 ms.
    [
        ("NOTIFY_SOCKET", socket.path.clone()),
        ("WATCHDOG_USEC", "400000".into()),
    ]
}

/// A reload: RELOADING=1 with the monotonic time (which systemd requires), then READY=1.
fn assert_reload_told(socket: &mut NotifySocket, signal_it: impl FnOnce()) {
    let before = socket.mark();
    signal_it();
    socket.until("RELOADING=1 then READY=1", |r| {
        r[before..].iter().any(|m| m.starts_with("RELOADING=1"))
            && r[before..]
                .iter()
                .skip_while(|m| !m.starts_with("RELOADING=1"))
                .any(|m| m == "READY=1")
    });
    let reloading = socket.received[before..]
        .iter()
        .find(|m| m.starts_with("RELOADING=1"))
        .unwrap();
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
}

fn exit_code(child: &mut Child) -> i32 {
    poll(Duration::from_secs(30), "the process to exit", || {
        child.try_wait().unwrap()
    })
    .code()
    .expect("exited by a signal")
}

#[test]
fn the_agent_tells_systemd_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let agent = Agent::configure(
        dir.path(),
        "notified",
        &server.url(),
        "[intervals]\ncritical = \"200ms\"\n",
    );
    let id = agent.enroll(&server.token(&[]));
    let mut socket = NotifySocket::bind(dir.path());
    let mut child = Command::new(bin("sysward-agent"))
        .arg("--config")
        .arg(&agent.config)
        .arg("run")
        .envs(env(&socket))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent.log).unwrap())
        .spawn()
        .unwrap();
    socket.until("READY=1 and three watchdog pings", |r| {
        r.first().is_some_and(|m| m == "READY=1")
            && r.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });
    assert_reload_told(&mut socket, || {
        kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    });
    poll(Duration::from_secs(30), "batches stored", || {
        (!server.boots(&id).is_empty()).then_some(())
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    socket.until("STOPPING=1", |r| r.iter().any(|m| m == "STOPPING=1"));
    assert_eq!(exit_code(&mut child), 0, "{}", agent.log_text());
    assert!(agent.log_text().contains("Agent stopped."));
    // A graceful stop delivered or synced everything: nothing is left unsent.
    assert_eq!(agent.spool_status().1, 0);
    let (batches, max_seq) = server.boots(&id)[0];
    assert_eq!(batches, max_seq);
    assert_eq!(socket.count("READY=1"), 2);
}

#[test]
fn the_server_tells_systemd_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let mut socket = NotifySocket::bind(dir.path());
    let env = env(&socket);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with_env(dir.path(), &env, "", "");
    socket.until("READY=1 and three watchdog pings", |r| {
        r.first().is_some_and(|m| m == "READY=1")
            && r.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });
    assert_reload_told(&mut socket, || server.signal(Signal::SIGHUP));
    let pid = server.pid().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    socket.until("STOPPING=1", |r| r.iter().any(|m| m == "STOPPING=1"));
    let status =
        poll(
            Duration::from_secs(30),
            "the server to exit",
            || match nix::sys::wait::waitpid(
                Pid::from_raw(pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            )
            .unwrap()
            {
                nix::sys::wait::WaitStatus::StillAlive => None,
                other => Some(other),
            },
        );
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(pid as i32), 0),
        "{}",
        server.log_text()
    );
}
