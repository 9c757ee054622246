//! A real SMTP server for the tests: Python's aiosmtpd (Debian's `python3-aiosmtpd`) on
//! loopback, requiring STARTTLS with a certificate made here and AUTH after it, and a second
//! one with implicit TLS. Each message is parsed with Python's own MIME parser and written to
//! a file the tests read.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The account the servers accept.
pub const USER: &str = "sysward";
pub const PASSWORD: &str = "pa55-w0rd-0f-the-relay";

/// The SMTP servers, one with STARTTLS and one with implicit TLS: they store each message
/// as `N.json` in the directory they are given, and print `READY <starttls port> <tls port>`
/// once they listen. They end when their standard input closes.
const SERVER: &str = r#"
import email, email.policy, json, os, socket, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out_dir, cert_file, key_file, user, password = sys.argv[1:6]


class Store:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"type": p.get_content_type(), "text": p.get_content()}
            for p in msg.walk()
            if not p.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "content_type": msg.get_content_type(),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "parts": parts,
        }
        tmp = os.path.join(out_dir, ".%d.tmp" % self.count)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out_dir, "%d.json" % self.count))
        return "250 2.0.0 Stored as message %d" % self.count


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    # Not handled: aiosmtpd answers 535 itself.
    return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert_file, key_file)
store = Store()
starttls = Controller(
    store,
    hostname="127.0.0.1",
    port=free_port(),
    tls_context=tls,
    require_starttls=True,
    auth_required=True,
    auth_require_tls=True,
    authenticator=authenticate,
)
# aiosmtpd counts only STARTTLS as TLS for auth_require_tls; this one is TLS throughout.
implicit = Controller(
    store,
    hostname="127.0.0.1",
    port=free_port(),
    ssl_context=tls,
    auth_required=True,
    auth_require_tls=False,
    authenticator=authenticate,
)
starttls.start()
implicit.start()
print("READY %d %d" % (starttls.port, implicit.port), flush=True)
sys.stdin.read()
starttls.stop()
implicit.stop()
"#;

/// A directory of its own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sysward-email-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(path.join("messages")).expect("make a temp dir");
        TempDir(path)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Python that has aiosmtpd: Debian's, which the package installs into, or the one on
/// PATH. `None` when there is none, and then only outside CI.
pub fn python() -> Option<&'static str> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs aiosmtpd: apt-get install python3-aiosmtpd"
        );
        eprintln!("skipped: aiosmtpd is missing (apt-get install python3-aiosmtpd)");
    }
    found
}

/// The running server; killed when dropped.
pub struct Smtp {
    child: Child,
    /// The STARTTLS server's port.
    pub port: u16,
    /// The implicit TLS server's port.
    pub tls_port: u16,
    /// The server's certificate, which is its own CA.
    pub ca_file: PathBuf,
    pub dir: TempDir,
}

impl Smtp {
    pub fn start(python: &str) -> Smtp {
        let dir = TempDir::new();
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("a certificate");
        let ca_file = dir.0.join("cert.pem");
        let key_file = dir.0.join("key.pem");
        std::fs::write(&ca_file, cert.cert.pem()).expect("write the certificate");
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write the key");
        let script = dir.0.join("server.py");
        std::fs::write(&script, SERVER).expect("write the server");
        let stderr = std::fs::File::create(dir.0.join("stderr")).expect("a log file");
        let mut child = Command::new(python)
            .arg(&script)
            .args([dir.0.join("messages"), ca_file.clone(), key_file])
            .args([USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut smtp = Smtp {
            child,
            port: 0,
            tls_port: 0,
            ca_file,
            dir,
        };
        (smtp.port, smtp.tls_port) = smtp.wait_ready(&rx, Duration::from_secs(20));
        smtp
    }

    fn wait_ready(&self, lines: &mpsc::Receiver<String>, within: Duration) -> (u16, u16) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(ports) = line.strip_prefix("READY ") {
                        let mut ports =
                            ports.split_whitespace().map(|p| p.parse().expect("a port"));
                        let starttls = ports.next().expect("the STARTTLS port");
                        return (starttls, ports.next().expect("the TLS port"));
                    }
                }
                Err(e) => panic!(
                    "the SMTP server did not get ready ({e}): {}",
                    std::fs::read_to_string(self.dir.0.join("stderr")).unwrap_or_default()
                ),
            }
        }
    }

    /// The messages stored so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut found: Vec<(u32, Value)> = std::fs::read_dir(self.dir.0.join("messages"))
            .expect("the messages directory")
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_suffix(".json")?.parse().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((n, serde_json::from_str(&text).expect("a record")))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, v)| v).collect()
    }

    pub fn wait_messages(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages, got {}",
                got.len()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
