//! Email against a real SMTP server: Python's aiosmtpd (Debian's `python3-aiosmtpd`) on
//! loopback, requiring STARTTLS with a certificate made here and AUTH after it. The server
//! parses each message with Python's own MIME parser and writes what it got to a file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sysward_notify::{
    AlertInfo, Channel, Context, Event, Notification, SendError, Status, email::EmailConfig,
};
use sysward_tests::smtp::{PASSWORD, Smtp, TempDir, USER, python};

const ID: &str = "01JEX7Q3N0ABCDEF";

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
