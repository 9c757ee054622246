//! The generic webhook against a recording server: Alertmanager's payload version 4 key by
//! key, methods, headers, authorization, custom bodies, and how answers are sorted.

mod fixtures;
use sysward_tests::recorder as support;

use std::time::Duration;

use fixtures::*;
use serde_json::{Value, json};
use support::{Answer, Recorded, Recorder};
use sysward_notify::{Channel, Delivery, Notification, SendError, webhook::WebhookConfig};

const WITHIN: Duration = Duration::from_secs(5);

async fn send(c: &WebhookConfig, n: &Notification) -> Result<Delivery, SendError> {
    c.send(&context(WITHIN), n).await
}

fn last(rec: &Recorder, count: usize) -> Recorded {
    rec.wait_for(count, WITHIN)
        .pop()
        .expect("at least one request")
}

fn hook(rec: &Recorder) -> WebhookConfig {
    prepared(json!({"url": format!("{}/hook", rec.url)}))
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn default_body_is_alertmanagers_version_4() {
    let rec = Recorder::start();
    let config: WebhookConfig =
        prepared(json!({"url": format!("{}/hook", rec.url), "max_alerts": 2}));
    let n = notification(vec![
        alert("HighCpu", "web-1", "critical"),
        resolve(alert("HighCpu", "web-2", "critical")),
        alert("HighCpu", "web-3", "critical"),
    ]);
    let delivery = send(&config, &n).await.expect("delivered");
    assert_eq!(delivery.status, 200);

    let r = last(&rec, 1);
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-sysward-notification-id"), Some("n-42"));
    assert_eq!(r.header("x-sysward-event"), Some("alerts"));
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert_eq!(
        sorted_keys(&body),
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(body["version"], "4");
    assert_eq!(body["groupKey"], "{}:{alertname=\"HighCpu\"}");
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["groupLabels"], json!({"alertname": "HighCpu"}));
    assert_eq!(body["commonLabels"], json!({"alertname": "HighCpu"}));
    assert_eq!(
        body["commonAnnotations"],
        json!({"dashboard_url": "https://grafana.example/d/cpu"})
    );
    assert_eq!(body["externalURL"], "https://sysward.example");

    let alerts = body["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    let firing = &alerts[0];
    assert_eq!(
        sorted_keys(firing),
        [
            "annotations",
            "endsAt",
            "fingerprint",
            "generatorURL",
            "labels",
            "startsAt",
            "status"
        ]
    );
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["labels"], json!(n.alerts[0].labels));
    assert_eq!(firing["annotations"], json!(n.alerts[0].annotations));
    assert_eq!(firing["startsAt"], "2026-12-04T09:30:00Z");
    assert_eq!(firing["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        firing["generatorURL"],
        "https://sysward.example/rules/HighCpu"
    );
    assert_eq!(firing["fingerprint"], "fp-HighCpu-web-1");
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2026-12-04T09:40:00Z");
}

#[tokio::test]
async fn put_with_headers_and_a_bearer_token_from_a_file() {
    let rec = Recorder::start();
    let dir = TempDir::new("webhook-bearer");
    let token = dir.file("token", "t0k3n-from-file\n");
    let config: WebhookConfig = prepared(json!({
        "url": format!("{}/in/put", rec.url),
        "method": "PUT",
        "headers": {"X-Api-Key": "k3y-in-header", "X-Team": "ops"},
        "bearer_token_file": token,
    }));
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("t0k3n") && !debug.contains("k3y-in"),
        "{debug}"
    );

    send(&config, &many(1, "warning")).await.expect("delivered");
    let r = last(&rec, 1);
    assert_eq!(r.method, "PUT");
    assert_eq!(r.target, "/in/put");
    assert_eq!(r.header("authorization"), Some("Bearer t0k3n-from-file"));
    assert_eq!(r.header("x-api-key"), Some("k3y-in-header"));
    assert_eq!(r.header("x-team"), Some("ops"));
    assert_eq!(r.json()["version"], "4");
}

#[tokio::test]
async fn basic_auth_with_a_password_file() {
    let rec = Recorder::start();
    let dir = TempDir::new("webhook-basic");
    let password = dir.file("pw", "p4ss:word\n");
    let config: WebhookConfig = prepared(json!({
        "url": format!("{}/hook", rec.url),
        "basic_auth": {"username": "ann", "password_file": password},
    }));
    assert!(!format!("{config:?}").contains("p4ss"));
    send(&config, &many(1, "warning")).await.expect("delivered");
    // base64("ann:p4ss:word")
    assert_eq!(
        last(&rec, 1).header("authorization"),
        Some("Basic YW5uOnA0c3M6d29yZA==")
    );
}

#[test]
fn settings_are_checked_by_key() {
    let err = |config: Value| {
        let mut c: WebhookConfig = serde_json::from_value(config).expect("a config");
        c.prepare().expect_err("prepare must fail")
    };
    let both = err(json!({
        "url": "http://h/x", "bearer_token": "t",
        "basic_auth": {"username": "u", "password": "p"},
    }));
    assert_eq!(both, "give either bearer_token or basic_auth, not both");
    assert_eq!(
        err(json!({"url": "http://h/x", "url_file": "/x"})),
        "give either url or url_file, not both"
    );
    let no_password = err(json!({"url": "http://h/x", "basic_auth": {"username": "u"}}));
    assert!(no_password.contains("basic_auth.password"), "{no_password}");
    let header = err(json!({"url": "http://h/x", "bearer_token": "t",
        "headers": {"Authorization": "Bearer other"}}));
    assert!(header.contains("Authorization"), "{header}");
    let bad_value = err(json!({"url": "http://h/x", "headers": {"X-A": "line\nbreak"}}));
    assert!(
        bad_value.contains("X-A") && !bad_value.contains("line"),
        "{bad_value}"
    );
    assert!(
        serde_json::from_value::<WebhookConfig>(json!({"url": "http://h/", "method": "GET"}))
            .is_err()
    );
}

#[tokio::test]
async fn a_custom_body_goes_as_rendered_with_its_content_type() {
    let rec = Recorder::start();
    let config: WebhookConfig = prepared(json!({
        "url": format!("{}/hook", rec.url),
        "content_type": "text/plain; charset=utf-8",
    }));
    let mut n = many(1, "warning");
    n.custom.body = Some("HighCpu fires on web-0".to_string());
    send(&config, &n).await.expect("delivered");
    let r = last(&rec, 1);
    assert_eq!(r.text(), "HighCpu fires on web-0");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let default_type = hook(&rec);
    n.custom.body = Some("{\"custom\": true}".to_string());
    send(&default_type, &n).await.expect("delivered");
    let r = last(&rec, 2);
    assert_eq!(r.json(), json!({"custom": true}));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn answers_are_sorted_for_the_outbox() {
    let rec = Recorder::start();
    let config = hook(&rec);
    let n = many(1, "warning");
    rec.script([
        Answer::status(429).header("Retry-After", "12"),
        Answer::status(503).body("down for maintenance"),
        Answer::status(200).body("taken"),
        Answer::status(401).body("bad token"),
    ]);
    let limited = send(&config, &n).await.expect_err("429");
    assert!(
        matches!(&limited, SendError::Retry { after: Some(d), .. } if *d == Duration::from_secs(12)),
        "{limited:?}"
    );
    let down = send(&config, &n).await.expect_err("503");
    assert!(
        matches!(&down, SendError::Retry { reason, after: None } if reason.contains("down for maintenance")),
        "{down:?}"
    );
    let delivery = send(&config, &n).await.expect("the third try delivers");
    assert_eq!(
        delivery,
        Delivery {
            status: 200,
            answer: "taken".to_string()
        }
    );
    let refused = send(&config, &n).await.expect_err("401");
    assert!(
        matches!(&refused, SendError::Permanent(r) if r.contains("bad token")),
        "{refused:?}"
    );
    let got = rec.wait_for(4, WITHIN);
    assert!(
        got.iter()
            .all(|r| r.header("x-sysward-notification-id") == Some("n-42"))
    );
}

#[tokio::test]
async fn a_slow_receiver_is_a_retry() {
    let rec = Recorder::start();
    rec.set_fallback(Answer::status(200).delay(Duration::from_secs(3)));
    let err = hook(&rec)
        .send(&context(Duration::from_millis(300)), &many(1, "warning"))
        .await
        .expect_err("too slow");
    assert!(
        matches!(&err, SendError::Retry { reason, after: None } if reason == "timed out"),
        "{err:?}"
    );
}
