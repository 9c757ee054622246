//! SMS through Twilio's Messages API against the recording server: the path, basic
//! authentication and form fields as Twilio documents them, the text's one-segment GSM-7
//! budget, and how Twilio's answers are read.

use sysward_tests::recorder as support;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{Value, json};
use support::{Answer, Recorded, Recorder};
use sysward_notify::{
    AlertInfo, Channel, Context, Event, Notification, SendError, Status, sms::SmsConfig,
};

const WAIT: Duration = Duration::from_secs(5);
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "t0k3n-5ecr3t-9f8e7d6c5b4a";
const CREATED: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#;
const ACK_URL: &str = "https://sysward.example/ack/tok3n";

/// GSM 03.38, written out here apart from the channel's own table: the basic set, one
/// septet each, and the extension table, two each.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENDED: &str = "^{}\\[~]|€";

/// Septets of `text`, or `None` when a character is outside GSM-7 (Twilio would then send
/// it as UCS-2).
fn gsm_septets(text: &str) -> Option<usize> {
    text.chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum()
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sysward-sms-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).expect("write the token file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn alert(host: &str, summary: &str, status: Status) -> AlertInfo {
    AlertInfo {
        fingerprint: format!("fp-{host}"),
        status,
        labels: BTreeMap::from([
            ("alertname".to_string(), "HighCpu".to_string()),
            ("instance".to_string(), host.to_string()),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), summary.to_string())]),
        starts_at_ms: 1_796_376_600_000,
        ends_at_ms: None,
        value: Some(97.0),
        generator_url: "https://sysward.example/rules/high_cpu".to_string(),
    }
}

fn notification(event: Event, status: Status, alerts: Vec<AlertInfo>) -> Notification {
    Notification {
        id: "01JEX7Q3N0ABCDEF".to_string(),
        group_key: "g".to_string(),
        receiver: "oncall".to_string(),
        event,
        status,
        alerts,
        group_labels: BTreeMap::new(),
        common_labels: BTreeMap::new(),
        common_annotations: BTreeMap::new(),
        external_url: "https://sysward.example".to_string(),
        ack_url: Some(ACK_URL.to_string()),
        custom: Default::default(),
        created_ms: 1_796_376_601_000,
    }
}

fn three_firing() -> Notification {
    notification(
        Event::Alerts,
        Status::Firing,
        vec![
            alert("web-1", "CPU at 97%", Status::Firing),
            alert("web-2", "CPU at 95%", Status::Firing),
            alert("web-3", "CPU at 93%", Status::Firing),
        ],
    )
}

fn sms(url: &str, extra: Value) -> (SmsConfig, TempFile) {
    let file = TempFile::new(&format!("{TOKEN}\n"));
    let mut settings = json!({
        "account_sid": SID,
        "auth_token_file": file.0,
        "to": ["+4915112345678", "+14155550100"],
        "api_url": url,
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut cfg: SmsConfig = serde_json::from_value(settings).expect("settings");
    cfg.prepare().expect("prepare");
    (cfg, file)
}

fn ctx() -> Context {
    Context::new(Duration::from_secs(5)).expect("an HTTP client")
}

/// The form's fields in their order, decoded.
fn form(r: &Recorded) -> Vec<(String, String)> {
    form_urlencoded::parse(&r.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn basic_auth(r: &Recorded) -> String {
    let value = r.header("authorization").expect("an Authorization header");
    let encoded = value.strip_prefix("Basic ").expect("basic authentication");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(raw).expect("UTF-8")
}

fn assert_twilio_request(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.target,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(basic_auth(r), format!("{SID}:{TOKEN}"));
}

#[tokio::test]
async fn twilio_gets_one_form_per_number() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(201).body(CREATED));
    let (cfg, _file) = sms(&server.url, json!({"from": "+15005550006"}));

    let delivery = cfg.send(&ctx(), &three_firing()).await.expect("delivered");
    assert_eq!(delivery.status, 201);
    assert!(
        delivery.answer.contains("SM0123456789"),
        "{}",
        delivery.answer
    );
    let got = server.wait_for(2, WAIT);
    assert_eq!(got.len(), 2);
    let text = format!("FIRING web-1 HighCpu: CPU at 97% +2 more {ACK_URL}");
    for (r, to) in got.iter().zip(["+4915112345678", "+14155550100"]) {
        assert_twilio_request(r);
        let expected = [
            ("To", to),
            ("From", "+15005550006"),
            ("Body", text.as_str()),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(form(r), expected);
    }
}

#[tokio::test]
async fn messaging_service_replaces_from_and_texts_say_what_happened() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(201).body(CREATED));
    let service = "MG0123456789abcdef0123456789abcdef";
    let (cfg, _file) = sms(
        &server.url,
        json!({"messaging_service_sid": service, "to": ["+14155550100"]}),
    );

    let resolved = notification(
        Event::Alerts,
        Status::Resolved,
        vec![alert("web-1", "CPU at 97%", Status::Resolved)],
    );
    cfg.send(&ctx(), &resolved).await.expect("delivered");
    let mut ack = three_firing();
    ack.event = Event::Acknowledged { by: "ann".into() };
    cfg.send(&ctx(), &ack).await.expect("delivered");

    let got = server.wait_for(2, WAIT);
    let fields = form(&got[0]);
    let names: Vec<_> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "MessagingServiceSid", "Body"]);
    assert_eq!(fields[1].1, service);
    assert_eq!(fields[2].1, "RESOLVED web-1 HighCpu: CPU at 97%");
    assert_eq!(
        form(&got[1])[2].1,
        "ACK by ann: web-1 HighCpu: CPU at 97% +2 more",
        "no acknowledgement link once acknowledged"
    );
}

#[tokio::test]
async fn a_long_summary_fits_one_gsm_segment() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(201).body(CREATED));
    let (cfg, _file) = sms(
        &server.url,
        json!({"from": "Sysward", "to": ["+14155550100"]}),
    );
    let summary = "Диск “/var” почти полон — 99 % 🔥 on höst ✓ … ".repeat(6);
    let n = notification(
        Event::Alerts,
        Status::Firing,
        vec![
            alert("db-1", &summary, Status::Firing),
            alert("db-2", "x", Status::Firing),
        ],
    );
    cfg.send(&ctx(), &n).await.expect("delivered");
    let body = form(&server.wait_for(1, WAIT)[0])
        .into_iter()
        .find(|(k, _)| k == "Body")
        .map(|(_, v)| v)
        .expect("a Body");
    let septets = gsm_septets(&body).unwrap_or_else(|| panic!("not GSM-7: {body}"));
    assert!(septets <= 160, "{septets} septets: {body}");
    assert!(septets >= 150, "the room is used: {body}");
    assert!(
        body.starts_with("FIRING db-1 HighCpu: ???? \"/var\" ????? ????? - 99 % ? on höst ? ..."),
        "{body}"
    );
    assert!(body.ends_with("... +1 more"), "{body}");
    assert!(!body.contains(ACK_URL), "no room for the link: {body}");
}

#[tokio::test]
async fn twilio_answers_are_read_as_documented() {
    let n = three_firing();
    let one = json!({"from": "+15005550006", "to": ["+14155550100"]});

    let server = Recorder::start();
    server.script([Answer::status(429)
        .header("Retry-After", "12")
        .body(r#"{"code":20429,"message":"Too Many Requests"}"#)]);
    let (cfg, _file) = sms(&server.url, one.clone());
    match cfg.send(&ctx(), &n).await {
        Err(SendError::Retry { after, reason }) => {
            assert_eq!(after, Some(Duration::from_secs(12)), "{reason}");
            assert!(!reason.contains(TOKEN), "{reason}");
        }
        other => panic!("429 is a retry: {other:?}"),
    }

    let server = Recorder::start();
    server.script([Answer::status(500)]);
    server.set_fallback(Answer::status(201).body(CREATED));
    let (cfg, _file) = sms(&server.url, one.clone());
    assert!(matches!(
        cfg.send(&ctx(), &n).await,
        Err(SendError::Retry { after: None, .. })
    ));
    assert_eq!(
        cfg.send(&ctx(), &n).await.expect("then delivered").status,
        201
    );

    let server = Recorder::start();
    server.set_fallback(Answer::status(400).body(
        r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#,
    ));
    let (cfg, _file) = sms(&server.url, one.clone());
    match cfg.send(&ctx(), &n).await {
        Err(SendError::Permanent(reason)) => {
            assert!(reason.contains("21211"), "{reason}");
            assert!(!reason.contains(TOKEN), "{reason}");
        }
        other => panic!("400 is permanent: {other:?}"),
    }

    let server = Recorder::start();
    server.set_fallback(Answer::status(201).delay(Duration::from_secs(3)));
    let (cfg, _file) = sms(&server.url, one);
    let short = Context::new(Duration::from_millis(300)).expect("an HTTP client");
    let started = Instant::now();
    match cfg.send(&short, &n).await {
        Err(SendError::Retry { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a slow receiver is a retry: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failed_number_does_not_keep_the_others_from_their_text() {
    let server = Recorder::start();
    server.script([Answer::status(400).body(r#"{"code":21211}"#)]);
    server.set_fallback(Answer::status(201).body(CREATED));
    let (cfg, _file) = sms(&server.url, json!({"from": "+15005550006"}));
    let err = cfg
        .send(&ctx(), &three_firing())
        .await
        .expect_err("one failed");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    let got = server.wait_for(2, WAIT);
    assert_eq!(form(&got[1])[0].1, "+14155550100");
}

#[test]
fn settings_are_checked_and_the_token_stays_secret() {
    let file = TempFile::new(&format!("{TOKEN}\n"));
    let prepare = |extra: Value| {
        let mut settings = json!({
            "account_sid": SID, "auth_token_file": file.0, "from": "+15005550006",
            "to": ["+14155550100"],
        });
        if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let mut cfg: SmsConfig = serde_json::from_value(settings).expect("settings");
        cfg.prepare().map(|()| cfg)
    };
    let cfg = prepare(json!({})).expect("valid");
    let debug = format!("{cfg:?}");
    assert!(!debug.contains(TOKEN), "{debug}");

    for (extra, key) in [
        (json!({"to": ["+1 415 555 0100"]}), "to"),
        (json!({"to": ["004915112345678"]}), "to"),
        (json!({"to": []}), "to"),
        (json!({"account_sid": "AC123"}), "account_sid"),
        (
            json!({"messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}),
            "from",
        ),
        (json!({"auth_token": TOKEN}), "auth_token"),
        (json!({"api_url": "api.twilio.com"}), "api_url"),
    ] {
        let err = prepare(extra.clone()).expect_err(&extra.to_string());
        assert!(err.contains(key), "{extra}: {err}");
        assert!(!err.contains(TOKEN), "{extra}: {err}");
    }
}
