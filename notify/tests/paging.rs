//! PagerDuty and Opsgenie against the recording server: every request field by field, as
//! PagerDuty's Events API v2 and Opsgenie's Alert API v2 document them, and how their
//! answers are read.

use sysward_tests::recorder as support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{Answer, Recorded, Recorder};
use sysward_notify::{
    AlertInfo, Channel, Context, Event, Notification, SendError, Status, opsgenie::OpsgenieConfig,
    pagerduty::PagerdutyConfig,
};

const WAIT: Duration = Duration::from_secs(5);
const STARTS_MS: i64 = 1_796_376_600_000; // 2026-12-04T09:30:00Z

/// A file removed when dropped, for `*_file` secrets.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sysward-paging-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).expect("write the secret file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn alert(fingerprint: &str, host: &str, severity: &str, status: Status) -> AlertInfo {
    AlertInfo {
        fingerprint: fingerprint.to_string(),
        status,
        labels: BTreeMap::from([
            ("alertname".to_string(), "HighCpu".to_string()),
            ("instance".to_string(), host.to_string()),
            ("severity".to_string(), severity.to_string()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("CPU at 97% on {host}")),
            (
                "runbook_url".to_string(),
                "https://wiki.example/runbooks/cpu".to_string(),
            ),
            (
                "dashboard_url".to_string(),
                format!("https://grafana.example/d/hosts?var-host={host}"),
            ),
        ]),
        starts_at_ms: STARTS_MS,
        ends_at_ms: (status == Status::Resolved).then_some(STARTS_MS + 600_000),
        value: Some(97.25),
        generator_url: format!("https://sysward.example/rules/high_cpu?host={host}"),
    }
}

fn notification(event: Event, alerts: Vec<AlertInfo>) -> Notification {
    let status = if alerts.iter().any(|a| a.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    };
    Notification {
        id: "01JEX7Q3N0ABCDEF".to_string(),
        group_key: "{}:{alertname=\"HighCpu\"}".to_string(),
        receiver: "oncall".to_string(),
        event,
        status,
        alerts,
        group_labels: BTreeMap::from([("alertname".to_string(), "HighCpu".to_string())]),
        common_labels: BTreeMap::from([("alertname".to_string(), "HighCpu".to_string())]),
        common_annotations: BTreeMap::new(),
        external_url: "https://sysward.example".to_string(),
        ack_url: Some("https://sysward.example/ack/tok3n".to_string()),
        custom: Default::default(),
        created_ms: STARTS_MS + 1_000,
    }
}

fn three_firing() -> Notification {
    notification(
        Event::Alerts,
        vec![
            alert("fp-web-1", "web-1", "critical", Status::Firing),
            alert("fp-web-2", "web-2", "warning", Status::Firing),
            alert("fp-web-3", "web-3", "info", Status::Firing),
        ],
    )
}

fn ctx() -> Context {
    Context::new(Duration::from_secs(5)).expect("an HTTP client")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn assert_json_post(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

// ---------------------------------------------------------------------------------------
// PagerDuty

const PD_KEY: &str = "R0UT1NGKEY0123456789abcdefabcdef";
const PD_OK: &str = r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#;

fn pagerduty(url: &str, extra: Value) -> (PagerdutyConfig, TempFile) {
    let file = TempFile::new("pd-key", &format!("{PD_KEY}\n"));
    let mut settings = json!({"routing_key_file": file.0, "url": format!("{url}/v2/enqueue")});
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut cfg: PagerdutyConfig = serde_json::from_value(settings).expect("settings");
    cfg.prepare().expect("prepare");
    (cfg, file)
}

#[tokio::test]
async fn pagerduty_triggers_one_event_per_alert_with_stable_dedup_keys() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(202).body(PD_OK));
    let (cfg, _file) = pagerduty(
        &server.url,
        json!({"component": "cpu", "group": "prod-web"}),
    );
    let n = three_firing();

    let delivery = cfg.send(&ctx(), &n).await.expect("delivered");
    assert_eq!(delivery.status, 202);
    assert!(delivery.answer.contains("success"), "{}", delivery.answer);
    let first = server.wait_for(3, WAIT);
    assert_eq!(first.len(), 3);

    for ((r, a), severity) in first
        .iter()
        .zip(&n.alerts)
        .zip(["critical", "warning", "info"])
    {
        assert_json_post(r);
        assert_eq!(r.target, "/v2/enqueue");
        let body = r.json();
        assert_eq!(
            keys(&body),
            set(&[
                "routing_key",
                "event_action",
                "dedup_key",
                "payload",
                "links",
                "client",
                "client_url"
            ])
        );
        assert_eq!(body["routing_key"], PD_KEY);
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["client"], "Sysward");
        assert_eq!(body["client_url"], "https://sysward.example");
        let host = a.labels["instance"].as_str();
        let payload = &body["payload"];
        assert_eq!(
            keys(payload),
            set(&[
                "summary",
                "source",
                "severity",
                "timestamp",
                "component",
                "group",
                "class",
                "custom_details"
            ])
        );
        assert_eq!(
            payload["summary"],
            format!("HighCpu on {host}: CPU at 97% on {host}")
        );
        assert_eq!(payload["source"], host);
        assert_eq!(payload["severity"], severity);
        assert_eq!(payload["timestamp"], "2026-12-04T09:30:00Z");
        assert_eq!(payload["component"], "cpu");
        assert_eq!(payload["group"], "prod-web");
        assert_eq!(payload["class"], "HighCpu");
        assert_eq!(
            payload["custom_details"],
            json!({"labels": a.labels, "annotations": a.annotations, "value": 97.25})
        );
        assert_eq!(
            body["links"],
            json!([
                {"href": "https://wiki.example/runbooks/cpu", "text": "Runbook"},
                {"href": format!("https://grafana.example/d/hosts?var-host={host}"), "text": "Dashboard"},
                {"href": format!("https://sysward.example/rules/high_cpu?host={host}"), "text": "Alert in Sysward"},
            ])
        );
    }
    let dedup = |list: &[Recorded]| -> Vec<String> {
        list.iter()
            .map(|r| {
                r.json()["dedup_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let keys_first = dedup(&first);
    assert_eq!(
        keys_first.iter().collect::<BTreeSet<_>>().len(),
        3,
        "{keys_first:?}"
    );
    assert!(keys_first.iter().all(|k| !k.is_empty() && k.len() <= 255));

    cfg.send(&ctx(), &n).await.expect("delivered again");
    let again = server.wait_for(6, WAIT);
    assert_eq!(
        dedup(&again[3..]),
        keys_first,
        "a resend is the same incident"
    );
}

#[tokio::test]
async fn pagerduty_resolves_and_acknowledges_with_the_key_alone() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(202).body(PD_OK));
    let (cfg, _file) = pagerduty(
        &server.url,
        json!({"source": "sysward-prod", "severity": "error"}),
    );
    let firing = alert("fp-a", "web-1", "info", Status::Firing);
    let resolved = alert("fp-b", "web-2", "critical", Status::Resolved);

    let n = notification(Event::Alerts, vec![firing.clone(), resolved.clone()]);
    cfg.send(&ctx(), &n).await.expect("delivered");
    let got = server.wait_for(2, WAIT);
    let trigger = got[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["payload"]["source"], "sysward-prod",
        "the setting wins"
    );
    assert_eq!(trigger["payload"]["severity"], "error", "the setting wins");
    let trigger_key = trigger["dedup_key"].clone();
    let resolve = got[1].json();
    assert_json_post(&got[1]);
    assert_eq!(got[1].target, "/v2/enqueue");
    assert_eq!(
        keys(&resolve),
        set(&["routing_key", "dedup_key", "event_action"])
    );
    assert_eq!(resolve["routing_key"], PD_KEY);
    assert_eq!(resolve["event_action"], "resolve");
    assert_ne!(resolve["dedup_key"], trigger_key);

    // Resolving later uses the key the trigger used.
    let mut later = firing.clone();
    later.status = Status::Resolved;
    cfg.send(&ctx(), &notification(Event::Alerts, vec![later]))
        .await
        .expect("delivered");
    let got = server.wait_for(3, WAIT);
    assert_eq!(got[2].json()["event_action"], "resolve");
    assert_eq!(got[2].json()["dedup_key"], trigger_key);

    let ack = notification(
        Event::Acknowledged { by: "ann".into() },
        vec![firing, resolved],
    );
    cfg.send(&ctx(), &ack).await.expect("delivered");
    let got = server.wait_for(4, WAIT);
    assert_eq!(got.len(), 4, "only the firing alert is acknowledged");
    assert_eq!(
        got[3].json(),
        json!({"routing_key": PD_KEY, "dedup_key": trigger_key, "event_action": "acknowledge"})
    );
}

#[tokio::test]
async fn pagerduty_sends_every_event_and_reports_the_first_failure() {
    let server = Recorder::start();
    server.script([
        Answer::status(202).body(PD_OK),
        Answer::status(500).body("oops"),
        Answer::status(400).body(r#"{"status":"invalid event"}"#),
    ]);
    let (cfg, _file) = pagerduty(&server.url, json!({}));
    let err = cfg.send(&ctx(), &three_firing()).await.expect_err("fails");
    assert_eq!(server.wait_for(3, WAIT).len(), 3, "the rest are still sent");
    match err {
        SendError::Retry {
            reason,
            after: None,
        } => assert!(reason.contains("500"), "{reason}"),
        other => panic!("the first failure, a retry: {other:?}"),
    }
}

#[tokio::test]
async fn pagerduty_answers_are_read_as_documented() {
    check_answers(|url| pagerduty(url, json!({}))).await;
}

#[test]
fn pagerduty_key_stays_secret() {
    let file = TempFile::new("pd-secret", &format!("{PD_KEY}\n"));
    let mut both: PagerdutyConfig =
        serde_json::from_value(json!({"routing_key": PD_KEY, "routing_key_file": file.0}))
            .expect("settings");
    let err = both.prepare().expect_err("both given");
    assert!(err.contains("routing_key"), "{err}");
    assert!(!err.contains(PD_KEY), "{err}");

    let mut none: PagerdutyConfig = serde_json::from_value(json!({})).expect("settings");
    let err = none.prepare().expect_err("none given");
    assert!(err.contains("routing_key"), "{err}");

    let mut cfg: PagerdutyConfig =
        serde_json::from_value(json!({"routing_key_file": file.0})).expect("settings");
    cfg.prepare().expect("prepare");
    let debug = format!("{cfg:?}");
    assert!(!debug.contains(PD_KEY), "{debug}");
    assert!(debug.contains("<secret>"), "{debug}");

    let mut bad_url: PagerdutyConfig =
        serde_json::from_value(json!({"routing_key": PD_KEY, "url": "ftp://x"})).expect("settings");
    let err = bad_url.prepare().expect_err("not http");
    assert!(err.contains("url") && !err.contains(PD_KEY), "{err}");

    let unknown =
        serde_json::from_value::<PagerdutyConfig>(json!({"routing_key": "k", "severity": "high"}));
    assert!(unknown.is_err(), "severity is one of PagerDuty's four");
}

// ---------------------------------------------------------------------------------------
// Opsgenie

const OG_KEY: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const OG_OK: &str = r#"{"result":"Request will be processed","took":0.1,"requestId":"r"}"#;
/// A fingerprint with characters that need encoding in a URL path.
const ODD_FINGERPRINT: &str = "a/b c?d#e%f+é";
const ODD_ALIAS_IN_PATH: &str = "sysward-a%2Fb%20c%3Fd%23e%25f%2B%C3%A9";

fn opsgenie(url: &str, extra: Value) -> (OpsgenieConfig, TempFile) {
    let file = TempFile::new("og-key", &format!("{OG_KEY}\n"));
    // A trailing slash, as operators paste it, must not double the path's.
    let mut settings = json!({"api_key_file": file.0, "api_url": format!("{url}/")});
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut cfg: OpsgenieConfig = serde_json::from_value(settings).expect("settings");
    cfg.prepare().expect("prepare");
    (cfg, file)
}

fn assert_opsgenie_request(r: &Recorded) {
    assert_json_post(r);
    assert_eq!(
        r.header("authorization"),
        Some(format!("GenieKey {OG_KEY}").as_str())
    );
}

#[tokio::test]
async fn opsgenie_creates_one_alert_per_alert_with_documented_fields() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(202).body(OG_OK));
    let (cfg, _file) = opsgenie(
        &server.url,
        json!({
            "responders": [
                {"type": "team", "name": "ops"},
                {"type": "user", "name": "ann@example.com"},
                {"type": "escalation", "id": "4513b7ea-3b91-438f-b7e4-e3e54af9147c"},
                {"type": "schedule", "name": "web-oncall"},
            ],
            "tags": ["sysward", "prod"],
        }),
    );
    let mut n = three_firing();
    n.alerts[0].fingerprint = ODD_FINGERPRINT.to_string();

    let delivery = cfg.send(&ctx(), &n).await.expect("delivered");
    assert_eq!(delivery.status, 202);
    let got = server.wait_for(3, WAIT);
    for ((r, a), priority) in got.iter().zip(&n.alerts).zip(["P1", "P3", "P5"]) {
        assert_opsgenie_request(r);
        assert_eq!(r.target, "/v2/alerts");
        let body = r.json();
        assert_eq!(
            keys(&body),
            set(&[
                "message",
                "alias",
                "description",
                "responders",
                "tags",
                "details",
                "entity",
                "source",
                "priority"
            ])
        );
        let host = a.labels["instance"].as_str();
        assert_eq!(
            body["message"],
            format!("HighCpu on {host}: CPU at 97% on {host}")
        );
        assert_eq!(body["alias"], format!("sysward-{}", a.fingerprint));
        let description = body["description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with(&format!(
                "{host}: CPU at 97% on {host} (value 97.25, since 2026-12-04T09:30:00Z)"
            )),
            "{description}"
        );
        assert!(
            description.contains("runbook_url: https://wiki.example/runbooks/cpu"),
            "{description}"
        );
        assert!(description.contains(&a.generator_url), "{description}");
        assert!(
            description.contains("https://sysward.example/ack/tok3n"),
            "{description}"
        );
        assert_eq!(
            body["responders"],
            json!([
                {"type": "team", "name": "ops"},
                {"type": "user", "username": "ann@example.com"},
                {"type": "escalation", "id": "4513b7ea-3b91-438f-b7e4-e3e54af9147c"},
                {"type": "schedule", "name": "web-oncall"},
            ])
        );
        assert_eq!(body["tags"], json!(["sysward", "prod"]));
        assert_eq!(body["details"], json!(a.labels));
        assert_eq!(body["entity"], host);
        assert_eq!(body["source"], "Sysward");
        assert_eq!(body["priority"], priority);
    }
}

#[tokio::test]
async fn opsgenie_limits_and_priority_setting() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(202).body(OG_OK));
    let (cfg, _file) = opsgenie(&server.url, json!({"priority": "P2"}));
    let mut a = alert("fp", "web-1", "info", Status::Firing);
    a.annotations.insert("summary".into(), "ü".repeat(400));
    a.annotations
        .insert("description".into(), "d".repeat(20_000));
    cfg.send(&ctx(), &notification(Event::Alerts, vec![a]))
        .await
        .expect("delivered");
    let body = server.wait_for(1, WAIT)[0].json();
    assert_eq!(body["priority"], "P2");
    assert!(!keys(&body).contains("responders"), "none configured");
    assert!(!keys(&body).contains("tags"), "none configured");
    let message = body["message"].as_str().unwrap_or_default();
    assert_eq!(message.chars().count(), 130, "{message}");
    assert!(message.starts_with("HighCpu on web-1: üü"), "{message}");
    let description = body["description"].as_str().unwrap_or_default();
    assert_eq!(description.chars().count(), 15_000);
}

#[tokio::test]
async fn opsgenie_closes_and_acknowledges_by_encoded_alias() {
    let server = Recorder::start();
    server.set_fallback(Answer::status(202).body(OG_OK));
    let (cfg, _file) = opsgenie(&server.url, json!({}));
    let firing = alert(ODD_FINGERPRINT, "web-1", "critical", Status::Firing);
    let mut resolved = firing.clone();
    resolved.status = Status::Resolved;

    cfg.send(&ctx(), &notification(Event::Alerts, vec![firing.clone()]))
        .await
        .expect("created");
    cfg.send(
        &ctx(),
        &notification(Event::Acknowledged { by: "ann".into() }, vec![firing]),
    )
    .await
    .expect("acknowledged");
    cfg.send(&ctx(), &notification(Event::Alerts, vec![resolved]))
        .await
        .expect("closed");
    let got = server.wait_for(3, WAIT);
    let alias = got[0].json()["alias"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let ack = &got[1];
    assert_opsgenie_request(ack);
    assert_eq!(
        ack.target,
        format!("/v2/alerts/{ODD_ALIAS_IN_PATH}/acknowledge?identifierType=alias")
    );
    assert_eq!(
        ack.json(),
        json!({"user": "ann", "source": "Sysward", "note": "Acknowledged in Sysward by ann."})
    );

    let close = &got[2];
    assert_opsgenie_request(close);
    assert_eq!(
        close.target,
        format!("/v2/alerts/{ODD_ALIAS_IN_PATH}/close?identifierType=alias")
    );
    assert_eq!(
        close.json(),
        json!({"source": "Sysward", "note": "Resolved in Sysward."})
    );

    // The path names the alias the alert was created with.
    let segment = close.target.split('/').nth(3).unwrap_or_default();
    let query = format!("x={segment}");
    let decoded: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    assert_eq!(decoded[0].1, alias);
}

#[tokio::test]
async fn opsgenie_answers_are_read_as_documented() {
    check_answers(|url| opsgenie(url, json!({}))).await;
}

#[test]
fn opsgenie_settings_are_checked_and_the_key_stays_secret() {
    let file = TempFile::new("og-secret", &format!("{OG_KEY}\n"));
    let prepare = |v: Value| {
        serde_json::from_value::<OpsgenieConfig>(v)
            .expect("settings")
            .prepare()
    };
    let err = prepare(json!({"api_key": OG_KEY, "api_key_file": file.0})).expect_err("both");
    assert!(err.contains("api_key") && !err.contains(OG_KEY), "{err}");
    let err = prepare(json!({"api_key": OG_KEY, "responders": [{"type": "team"}]}))
        .expect_err("no name or id");
    assert!(
        err.contains("responders[0]") && !err.contains(OG_KEY),
        "{err}"
    );
    let err = prepare(json!({"api_key": OG_KEY, "tags": ["x".repeat(51)]})).expect_err("long tag");
    assert!(err.contains("tags"), "{err}");
    assert!(
        serde_json::from_value::<OpsgenieConfig>(json!({"api_key": "k", "priority": "P9"}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<OpsgenieConfig>(
            json!({"api_key": "k", "responders": [{"type": "group", "name": "x"}]})
        )
        .is_err()
    );

    let mut cfg: OpsgenieConfig =
        serde_json::from_value(json!({"api_key_file": file.0})).expect("settings");
    cfg.prepare().expect("prepare");
    let debug = format!("{cfg:?}");
    assert!(!debug.contains(OG_KEY), "{debug}");
    assert!(
        debug.contains("https://api.opsgenie.com"),
        "the default region: {debug}"
    );
}

// ---------------------------------------------------------------------------------------
// Answers, for both services

/// 429 with `Retry-After`, 500 then success, 400, and a receiver slower than the time limit.
async fn check_answers<C: Channel>(make: impl Fn(&str) -> (C, TempFile)) {
    let n = notification(
        Event::Alerts,
        vec![alert("fp-1", "web-1", "critical", Status::Firing)],
    );

    let server = Recorder::start();
    server.script([Answer::status(429)
        .header("Retry-After", "7")
        .body("slow down")]);
    let (cfg, _file) = make(&server.url);
    match cfg.send(&ctx(), &n).await {
        Err(SendError::Retry { after, reason }) => {
            assert_eq!(after, Some(Duration::from_secs(7)), "{reason}");
            assert!(reason.contains("429"), "{reason}");
            assert!(
                !reason.contains(PD_KEY) && !reason.contains(OG_KEY),
                "{reason}"
            );
        }
        other => panic!("429 is a retry: {other:?}"),
    }

    let server = Recorder::start();
    server.script([Answer::status(500)]);
    server.set_fallback(Answer::status(202).body(r#"{"status":"success"}"#));
    let (cfg, _file) = make(&server.url);
    assert!(
        matches!(
            cfg.send(&ctx(), &n).await,
            Err(SendError::Retry { after: None, .. })
        ),
        "500 is a retry"
    );
    let delivery = cfg.send(&ctx(), &n).await.expect("then delivered");
    assert_eq!(delivery.status, 202);
    assert_eq!(server.wait_for(2, WAIT).len(), 2);

    let server = Recorder::start();
    server.set_fallback(Answer::status(400).body(r#"{"message":"bad event"}"#));
    let (cfg, _file) = make(&server.url);
    match cfg.send(&ctx(), &n).await {
        Err(SendError::Permanent(reason)) => {
            assert!(
                reason.contains("400") && reason.contains("bad event"),
                "{reason}"
            );
            assert!(
                !reason.contains(PD_KEY) && !reason.contains(OG_KEY),
                "{reason}"
            );
        }
        other => panic!("400 is permanent: {other:?}"),
    }

    let server = Recorder::start();
    server.set_fallback(Answer::status(202).delay(Duration::from_secs(3)));
    let (cfg, _file) = make(&server.url);
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
    server.wait_for(1, WAIT);
}
