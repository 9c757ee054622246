//! Email against a real SMTP server: Python's aiosmtpd (Debian's `python3-aiosmtpd`) on
//! loopback, requiring STARTTLS with a certificate made here and AUTH after it. The server
//! parses each message with Python's own MIME parser and writes what it got to a file.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sysward_notify::{
    AlertInfo, Channel, Context, Event, Notification, SendError, Status, email::EmailConfig,
};

const USER: &str = "sysward";
const PASSWORD: &str = "pa55-w0rd-0f-the-relay";
const ID: &str = "01JEX7Q3N0ABCDEF";

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
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
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

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Python that has aiosmtpd: Debian's, which the package installs into, or the one on
/// PATH. `None` when there is none, and then only outside CI.
fn python() -> Option<&'static str> {
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
struct Smtp {
    child: Child,
    /// The STARTTLS server's port.
    port: u16,
    /// The implicit TLS server's port.
    tls_port: u16,
    /// The server's certificate, which is its own CA.
    ca_file: PathBuf,
    dir: TempDir,
}

impl Smtp {
    fn start(python: &str) -> Smtp {
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
    fn messages(&self) -> Vec<Value> {
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

    fn wait_messages(&self, n: usize, within: Duration) -> Vec<Value> {
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

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join(format!("password-{}", password.len()));
    std::fs::write(&path, format!("{password}\n")).expect("write the password");
    path
}

fn config(settings: Value) -> EmailConfig {
    let mut cfg: EmailConfig = serde_json::from_value(settings).expect("settings");
    cfg.prepare().expect("prepare");
    cfg
}

fn settings(smtp: &Smtp, password: &str, ca: bool) -> Value {
    let mut s = json!({
        "smarthost": format!("127.0.0.1:{}", smtp.port),
        "username": USER,
        "password_file": password_file(&smtp.dir.0, password),
        "from": "Sysward <alerts@sysward.example>",
        "to": ["Ann Example <ann@example.com>", "ops@example.com"],
        "cc": ["boss@example.com"],
        "hello": "sysward-test.example",
    });
    if ca {
        s["ca_file"] = json!(smtp.ca_file);
    }
    s
}

fn notification() -> Notification {
    let alert = |host: &str| AlertInfo {
        fingerprint: format!("fp-{host}"),
        status: Status::Firing,
        labels: BTreeMap::from([
            ("alertname".to_string(), "HighCpu".to_string()),
            ("instance".to_string(), host.to_string()),
            (
                "team".to_string(),
                "<script>alert(1)</script> & \"ops\"".to_string(),
            ),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), "CPU at 97%".to_string())]),
        starts_at_ms: 1_796_376_600_000,
        ends_at_ms: None,
        value: Some(97.0),
        generator_url: "https://sysward.example/rules/high_cpu".to_string(),
    };
    Notification {
        id: ID.to_string(),
        group_key: "g".to_string(),
        receiver: "oncall".to_string(),
        event: Event::Alerts,
        status: Status::Firing,
        alerts: vec![alert("wéb-1"), alert("wéb-2")],
        group_labels: BTreeMap::new(),
        common_labels: BTreeMap::from([("alertname".to_string(), "HighCpu".to_string())]),
        common_annotations: BTreeMap::new(),
        external_url: "https://sysward.example".to_string(),
        ack_url: Some("https://sysward.example/ack/tok3n".to_string()),
        custom: Default::default(),
        created_ms: 1_796_376_601_000,
    }
}

fn ctx() -> Context {
    Context::new(Duration::from_secs(10)).expect("a context")
}

fn header<'a>(record: &'a Value, name: &str) -> Vec<&'a str> {
    record["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|h| h[1].as_str())
        .collect()
}

#[tokio::test]
async fn starttls_and_auth_deliver_one_message() {
    let Some(python) = python() else { return };
    let smtp = Smtp::start(python);
    let cfg = config(settings(&smtp, PASSWORD, true));
    let n = notification();

    let delivery = cfg.send(&ctx(), &n).await.expect("delivered");
    assert_eq!(delivery.status, 250);
    assert!(
        delivery.answer.contains("Stored as message 1"),
        "{}",
        delivery.answer
    );
    let record = smtp.wait_messages(1, Duration::from_secs(5)).remove(0);

    assert_eq!(record["tls"], true, "STARTTLS before the message");
    assert_eq!(record["authenticated"], true);
    assert_eq!(record["mail_from"], "alerts@sysward.example");
    let mut rcpt: Vec<_> = record["rcpt_tos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    rcpt.sort_unstable();
    assert_eq!(
        rcpt,
        ["ann@example.com", "boss@example.com", "ops@example.com"]
    );

    assert_eq!(
        header(&record, "From"),
        ["Sysward <alerts@sysward.example>"]
    );
    assert_eq!(
        header(&record, "To"),
        ["Ann Example <ann@example.com>, ops@example.com"]
    );
    assert_eq!(header(&record, "Cc"), ["boss@example.com"]);
    assert_eq!(header(&record, "Subject"), ["[FIRING:2] HighCpu"]);
    assert_eq!(header(&record, "Message-ID"), [format!("<{ID}@sysward>")]);
    assert_eq!(header(&record, "X-Sysward-Notification-Id"), [ID]);
    assert_eq!(header(&record, "Date"), ["Fri, 04 Dec 2026 09:30:01 +0000"]);
    assert_eq!(header(&record, "Bcc"), Vec::<&str>::new());

    assert_eq!(record["content_type"], "multipart/alternative");
    let parts = record["parts"].as_array().expect("parts");
    let types: Vec<_> = parts.iter().filter_map(|p| p["type"].as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    // Lines of a message end in CRLF on the wire.
    let plain = parts[0]["text"]
        .as_str()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    assert_eq!(plain, sysward_notify::text::plain_body(&n));
    assert!(
        plain.starts_with("Firing:\n- wéb-1: CPU at 97% (value 97, since 2026-12-04T09:30:00Z)\n"),
        "{plain:?}"
    );
    assert!(
        plain.contains("Acknowledge: https://sysward.example/ack/tok3n"),
        "{plain}"
    );
    let html = parts[1]["text"].as_str().unwrap_or_default();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;ops&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("wéb-2: CPU at 97%"), "{html}");
    assert!(
        html.contains("href=\"https://sysward.example/ack/tok3n\""),
        "{html}"
    );

    // A resend (after a crash, say) is the same message to the mail clients; this one
    // with an operator's title beyond ASCII, which the Subject must carry intact.
    let mut resend = n.clone();
    resend.custom.title = Some("Überlast auf wéb-1 — 2 Alarme ✓".to_string());
    cfg.send(&ctx(), &resend).await.expect("delivered again");
    let again = smtp.wait_messages(2, Duration::from_secs(5)).remove(1);
    assert_eq!(header(&again, "Message-ID"), [format!("<{ID}@sysward>")]);
    assert_eq!(
        header(&again, "Subject"),
        ["Überlast auf wéb-1 — 2 Alarme ✓"]
    );
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let Some(python) = python() else { return };
    let smtp = Smtp::start(python);
    let mut settings = settings(&smtp, PASSWORD, true);
    settings["smarthost"] = json!(format!("127.0.0.1:{}", smtp.tls_port));
    settings["tls"] = json!("tls");
    let cfg = config(settings);
    let delivery = cfg.send(&ctx(), &notification()).await.expect("delivered");
    assert_eq!(delivery.status, 250);
    let record = smtp.wait_messages(1, Duration::from_secs(5)).remove(0);
    assert_eq!(record["tls"], true);
    assert_eq!(record["authenticated"], true);
    assert_eq!(header(&record, "Message-ID"), [format!("<{ID}@sysward>")]);
}

#[tokio::test]
async fn a_wrong_password_is_permanent() {
    let Some(python) = python() else { return };
    let smtp = Smtp::start(python);
    let wrong = "not-the-password";
    let cfg = config(settings(&smtp, wrong, true));
    assert!(!format!("{cfg:?}").contains(wrong), "{cfg:?}");
    match cfg.send(&ctx(), &notification()).await {
        Err(SendError::Permanent(reason)) => {
            assert!(reason.contains("535"), "{reason}");
            assert!(
                !reason.contains(wrong) && !reason.contains(PASSWORD),
                "{reason}"
            );
        }
        other => panic!("535 is permanent: {other:?}"),
    }
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let Some(python) = python() else { return };
    let smtp = Smtp::start(python);
    let cfg = config(settings(&smtp, PASSWORD, false));
    match cfg.send(&ctx(), &notification()).await {
        Err(SendError::Retry { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}");
            assert!(!reason.contains(PASSWORD), "{reason}");
        }
        other => panic!("not delivered, worth another try later: {other:?}"),
    }
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_silent_relay_times_out() {
    // Connections queue in the backlog; nobody ever says hello.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let cfg = config(json!({
        "smarthost": format!("127.0.0.1:{port}"),
        "from": "alerts@sysward.example",
        "to": ["ops@example.com"],
    }));
    let short = Context::new(Duration::from_millis(300)).expect("a context");
    let started = Instant::now();
    match cfg.send(&short, &notification()).await {
        Err(SendError::Retry { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a retry: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn settings_are_checked() {
    let prepare = |extra: Value| {
        let mut s = json!({
            "smarthost": "mail.example.com:587",
            "from": "alerts@sysward.example",
            "to": ["ops@example.com"],
        });
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value::<EmailConfig>(s)
            .expect("settings")
            .prepare()
    };
    assert_eq!(prepare(json!({})), Ok(()));
    assert_eq!(
        prepare(json!({"tls": "tls", "smarthost": "mail.example.com:465"})),
        Ok(())
    );
    assert_eq!(
        prepare(json!({"tls": "none", "smarthost": "127.0.0.1:25"})),
        Ok(())
    );
    assert_eq!(
        prepare(json!({"tls": "none", "smarthost": "[::1]:25"})),
        Ok(())
    );
    assert_eq!(
        prepare(json!({"tls": "none", "smarthost": "localhost:25"})),
        Ok(())
    );

    let dir = TempDir::new();
    let not_pem = dir.0.join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    for (extra, key) in [
        (json!({"tls": "none"}), "loopback"),
        (
            json!({"tls": "none", "smarthost": "192.0.2.10:25"}),
            "loopback",
        ),
        (json!({"smarthost": "mail.example.com"}), "smarthost"),
        (json!({"username": "u"}), "password"),
        (json!({"password": PASSWORD}), "username"),
        (json!({"from": "not an address"}), "from"),
        (json!({"to": []}), "to"),
        (json!({"cc": ["x@"]}), "cc"),
        (json!({"ca_file": not_pem}), "ca_file"),
        (json!({"ca_file": dir.0.join("missing.pem")}), "ca_file"),
        (json!({"hello": "bad name!"}), "hello"),
    ] {
        let err = prepare(extra.clone()).expect_err(&extra.to_string());
        assert!(err.contains(key), "{extra}: {err}");
        assert!(!err.contains(PASSWORD), "{extra}: {err}");
    }
    assert!(
        serde_json::from_value::<EmailConfig>(json!({
            "smarthost": "h:25", "from": "a@b", "to": ["c@d"], "tls": "ssl"
        }))
        .is_err()
    );
}
