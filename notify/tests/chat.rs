//! Slack, Teams and Discord against a recording server: each request checked against the
//! service's documented format, and each kind of answer sorted as the outbox needs.

mod fixtures;
use sysward_tests::recorder as support;

use std::time::Duration;

use fixtures::*;
use serde_json::{Value, json};
use support::{Answer, Recorded, Recorder};
use sysward_notify::{
    Channel, Delivery, Event, SendError, discord::DiscordConfig, slack::SlackConfig,
    teams::TeamsConfig,
};

const WITHIN: Duration = Duration::from_secs(5);

/// The one request `rec` got.
fn only(rec: &Recorder) -> Recorded {
    let got = rec.wait_for(1, WITHIN);
    assert_eq!(got.len(), 1, "{got:#?}");
    got.into_iter().next().expect("one request")
}

fn assert_json_post(r: &Recorded, target: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, target);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-sysward-notification-id"), Some("n-42"));
}

async fn send(
    channel: &dyn Channel,
    n: &sysward_notify::Notification,
) -> Result<Delivery, SendError> {
    channel.send(&context(WITHIN), n).await
}

fn slack(rec: &Recorder) -> SlackConfig {
    prepared(json!({
        "webhook_url": format!("{}/services/T0/B0/s3cr3t", rec.url),
        "channel": "#ops",
        "username": "sysward",
        "icon_url": "https://sysward.example/icon.png",
    }))
}

fn slack_blocks(body: &Value) -> Vec<Value> {
    body["attachments"][0]["blocks"]
        .as_array()
        .expect("blocks in the attachment")
        .clone()
}

#[tokio::test]
async fn slack_sends_block_kit_in_a_coloured_attachment() {
    let rec = Recorder::start();
    rec.set_fallback(Answer::status(200).body("ok"));
    let dir = TempDir::new("slack");
    let file = dir.file("url", &format!("{}/services/T0/B0/s3cr3t-file\n", rec.url));
    let config: SlackConfig = prepared(json!({"webhook_url_file": file, "channel": "#ops"}));
    assert!(!format!("{config:?}").contains("s3cr3t"), "{config:?}");

    let n = notification(vec![
        alert("HighCpu", "web-1", "critical"),
        alert("HighCpu", "web-2", "warning"),
    ]);
    let delivery = send(&config, &n).await.expect("delivered");
    assert_eq!(
        delivery,
        Delivery {
            status: 200,
            answer: "ok".to_string()
        }
    );

    let r = only(&rec);
    assert_json_post(&r, "/services/T0/B0/s3cr3t-file");
    let body = r.json();
    assert_eq!(body["text"], "[FIRING:2] HighCpu");
    assert_eq!(body["channel"], "#ops");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#d63232");
    let blocks = slack_blocks(&body);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    for (block, host) in blocks[1..3].iter().zip(["web-1", "web-2"]) {
        assert_eq!(block["type"], "section");
        assert_eq!(block["text"]["type"], "mrkdwn");
        let text = block["text"]["text"].as_str().expect("section text");
        assert!(text.contains(&format!("on `{host}`")), "{text}");
        assert!(text.contains(&format!("HighCpu on {host}")), "{text}");
        assert!(
            text.contains("Value *97.25*") && text.contains("since <!date^"),
            "{text}"
        );
    }
    assert_eq!(blocks[3]["type"], "context");
    assert_eq!(
        blocks[3]["elements"][0]["text"],
        "<https://grafana.example/d/cpu|Dashboard>"
    );
    let button = &blocks[4]["elements"][0];
    assert_eq!(blocks[4]["type"], "actions");
    assert_eq!(button["type"], "button");
    assert_eq!(button["url"], "https://sysward.example/ack/signed-token");
}

#[tokio::test]
async fn slack_resolved_is_green_and_has_no_ack_button() {
    let rec = Recorder::start();
    let config = slack(&rec);
    let n = notification(vec![resolve(alert("HighCpu", "web-1", "critical"))]);
    send(&config, &n).await.expect("delivered");
    let body = only(&rec).json();
    assert_eq!(body["attachments"][0]["color"], "#2eb67d");
    assert_eq!(body["text"], "[RESOLVED] HighCpu");
    assert_eq!(body["username"], "sysward");
    assert_eq!(body["icon_url"], "https://sysward.example/icon.png");
    let blocks = slack_blocks(&body);
    assert!(blocks.iter().all(|b| b["type"] != "actions"), "{blocks:#?}");
    let text = blocks[1]["text"]["text"].as_str().expect("section");
    assert!(text.contains("resolved <!date^1796377200^"), "{text}");
}

#[tokio::test]
async fn slack_keeps_to_fifty_blocks_and_3000_characters() {
    let rec = Recorder::start();
    let mut n = many(120, "critical");
    for a in &mut n.alerts {
        a.annotations.insert("summary".into(), "y".repeat(4000));
    }
    send(&slack(&rec), &n).await.expect("delivered");
    let blocks = slack_blocks(&only(&rec).json());
    assert!(blocks.len() <= 50, "{}", blocks.len());
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "section")
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(texts.iter().all(|t| t.chars().count() <= 3000));
    let shown = texts.iter().filter(|t| t.contains("on `web-")).count();
    assert!(shown >= 40, "{shown}");
    assert_eq!(
        texts.last().copied(),
        Some(format!("…and {} more", 120 - shown).as_str())
    );
}

#[tokio::test]
async fn slack_429_waits_as_retry_after_says() {
    let rec = Recorder::start();
    rec.script([Answer::status(429)
        .header("Retry-After", "7")
        .body("rate_limited")]);
    let err = send(&slack(&rec), &many(1, "warning"))
        .await
        .expect_err("429");
    let SendError::Retry { reason, after } = err else {
        panic!("a 429 is worth a retry: {err:?}");
    };
    assert_eq!(after, Some(Duration::from_secs(7)));
    assert!(
        reason.contains("429") && reason.contains("rate_limited"),
        "{reason}"
    );
}

#[tokio::test]
async fn slack_400_is_permanent_and_keeps_the_key_out() {
    let rec = Recorder::start();
    rec.script([Answer::status(400).body("invalid_payload")]);
    let err = send(&slack(&rec), &many(1, "warning"))
        .await
        .expect_err("400");
    let SendError::Permanent(reason) = &err else {
        panic!("a 400 is permanent: {err:?}");
    };
    assert!(reason.contains("invalid_payload"), "{reason}");
    assert!(!reason.contains("s3cr3t"), "{reason}");
}

#[tokio::test]
async fn teams_sends_an_adaptive_card_coloured_by_severity() {
    let rec = Recorder::start();
    rec.set_fallback(Answer::status(202));
    let config: TeamsConfig = prepared(
        json!({"webhook_url": format!("{}/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t", rec.url)}),
    );
    assert!(!format!("{config:?}").contains("s3cr3t"));

    let delivery = send(&config, &many(2, "critical"))
        .await
        .expect("delivered");
    assert_eq!(delivery.status, 202);
    let r = only(&rec);
    assert_json_post(&r, "/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t");
    let body = r.json();
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(attachment.get("contentUrl").is_some_and(Value::is_null));
    let card = &attachment["content"];
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["color"], "attention");
    assert_eq!(card["body"][1]["items"][0]["text"], "HighCpu on web-0");
    assert_eq!(card["body"][2]["items"][0]["text"], "HighCpu on web-1");
    let ack = &card["actions"][0];
    assert_eq!(ack["type"], "Action.OpenUrl");
    assert_eq!(ack["url"], "https://sysward.example/ack/signed-token");
    assert_eq!(card["actions"][1]["url"], "https://grafana.example/d/cpu");

    let resolved = notification(vec![resolve(alert("HighCpu", "web-1", "critical"))]);
    send(&config, &resolved).await.expect("delivered");
    let card = rec.wait_for(2, WITHIN)[1].json()["attachments"][0]["content"].clone();
    assert_eq!(card["body"][0]["color"], "good");
    let titles: Vec<&Value> = card["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| &a["title"])
        .collect();
    assert!(!titles.contains(&&json!("Acknowledge")), "{titles:?}");
}

#[tokio::test]
async fn teams_500_is_retried_and_the_next_try_delivers() {
    let rec = Recorder::start();
    rec.script([Answer::status(500).body("flow failed")]);
    rec.set_fallback(Answer::status(202));
    let config: TeamsConfig = prepared(json!({"webhook_url": format!("{}/flow", rec.url)}));
    let n = many(1, "warning");
    let err = send(&config, &n).await.expect_err("500");
    assert!(
        matches!(&err, SendError::Retry { reason, after: None } if reason.contains("500")),
        "{err:?}"
    );
    let delivery = send(&config, &n).await.expect("the second try delivers");
    assert_eq!(delivery.status, 202);
    let got = rec.wait_for(2, WITHIN);
    assert_eq!(got[0].body, got[1].body, "a retry sends the same message");
}

fn discord(rec: &Recorder) -> DiscordConfig {
    prepared(json!({
        "webhook_url": format!("{}/api/webhooks/1/s3cr3t", rec.url),
        "username": "Sysward",
        "avatar_url": "https://sysward.example/a.png",
    }))
}

/// What Discord counts towards the 6000 characters of a message's embeds.
fn counted(embeds: &[Value]) -> usize {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    embeds
        .iter()
        .map(|e| {
            let fields = e["fields"].as_array().map_or(0, |f| {
                f.iter().map(|f| len(&f["name"]) + len(&f["value"])).sum()
            });
            len(&e["title"]) + len(&e["description"]) + len(&e["footer"]["text"]) + fields
        })
        .sum()
}

#[tokio::test]
async fn discord_sends_embeds_within_limits_and_waits_for_the_message() {
    let rec = Recorder::start();
    rec.set_fallback(Answer::status(200).body(r#"{"id": "1234", "channel_id": "99"}"#));
    let mut n = many(40, "critical");
    for a in &mut n.alerts {
        a.annotations.insert("summary".into(), "z".repeat(200));
    }
    let delivery = send(&discord(&rec), &n).await.expect("delivered");
    assert_eq!(delivery.status, 200);
    assert!(
        delivery.answer.contains("\"id\": \"1234\""),
        "{}",
        delivery.answer
    );

    let r = only(&rec);
    assert_json_post(&r, "/api/webhooks/1/s3cr3t?wait=true");
    let body = r.json();
    assert_eq!(body["username"], "Sysward");
    assert_eq!(body["avatar_url"], "https://sysward.example/a.png");
    let embeds = body["embeds"].as_array().expect("embeds");
    assert!((1..=10).contains(&embeds.len()));
    assert!(counted(embeds) <= 6000, "{}", counted(embeds));
    let first = &embeds[0];
    assert_eq!(first["title"], "[FIRING:40] HighCpu");
    assert_eq!(first["color"], 0xd63232);
    assert_eq!(first["timestamp"], "2026-12-04T09:31:00Z");
    let fields: Vec<&Value> = embeds
        .iter()
        .flat_map(|e| {
            let f = e["fields"].as_array().expect("fields");
            assert!(f.len() <= 25);
            f
        })
        .collect();
    for f in &fields {
        assert!(f["name"].as_str().expect("name").chars().count() <= 256);
        assert!(f["value"].as_str().expect("value").chars().count() <= 1024);
    }
    let shown = fields
        .iter()
        .filter(|f| f["name"].as_str().is_some_and(|s| s.contains("on web-")))
        .count();
    assert!((5..40).contains(&shown), "{shown}");
    assert_eq!(
        fields.last().expect("a field")["name"],
        format!("…and {} more", 40 - shown)
    );
}

#[tokio::test]
async fn discord_429_waits_as_its_json_says() {
    let rec = Recorder::start();
    rec.script([Answer::status(429).body(
        r#"{"message": "You are being rate limited.", "retry_after": 2.5, "global": false}"#,
    )]);
    let err = send(&discord(&rec), &many(1, "warning"))
        .await
        .expect_err("429");
    assert!(
        matches!(&err, SendError::Retry { after: Some(d), .. } if *d == Duration::from_millis(2500)),
        "{err:?}"
    );
    rec.script([Answer::status(429)
        .header("Retry-After", "3")
        .body("<html>busy</html>")]);
    let err = send(&discord(&rec), &many(1, "warning"))
        .await
        .expect_err("429");
    assert!(
        matches!(&err, SendError::Retry { after: Some(d), .. } if *d == Duration::from_secs(3)),
        "the header serves when the body does not say: {err:?}"
    );
    rec.script([Answer::status(404).body(r#"{"message": "Unknown Webhook", "code": 10015}"#)]);
    let err = send(&discord(&rec), &many(1, "warning"))
        .await
        .expect_err("404");
    assert!(
        matches!(&err, SendError::Permanent(r) if r.contains("Unknown Webhook")),
        "{err:?}"
    );
}

#[tokio::test]
async fn slow_receivers_time_out_as_retries_without_the_key() {
    let slow = Answer::status(200).delay(Duration::from_secs(3));
    let ctx = context(Duration::from_millis(300));
    let n = many(1, "warning");
    let (slack_rec, discord_rec) = (Recorder::start(), Recorder::start());
    slack_rec.set_fallback(slow.clone());
    discord_rec.set_fallback(slow);
    let (slack, discord) = (slack(&slack_rec), discord(&discord_rec));
    let channels: [(&dyn Channel, &Recorder); 2] = [(&slack, &slack_rec), (&discord, &discord_rec)];
    for (channel, rec) in channels {
        let err = channel.send(&ctx, &n).await.expect_err("too slow");
        let SendError::Retry { reason, after } = &err else {
            panic!("{}: a timeout is worth a retry: {err:?}", channel.kind());
        };
        assert_eq!(reason, "timed out", "{}", channel.kind());
        assert_eq!(*after, None);
        rec.wait_for(1, WITHIN);
    }
}

#[test]
fn missing_secret_files_and_bad_urls_name_the_key() {
    let dir = TempDir::new("chat-missing");
    let missing = dir.path().join("nope");
    let errors = [
        prepare_err::<SlackConfig>(json!({"webhook_url_file": missing})),
        prepare_err::<TeamsConfig>(json!({"webhook_url_file": missing})),
        prepare_err::<DiscordConfig>(json!({"webhook_url_file": missing})),
    ];
    for e in &errors {
        assert!(e.starts_with("webhook_url_file: cannot read"), "{e}");
    }
    let e = prepare_err::<SlackConfig>(json!({"webhook_url": "hooks.slack.com/s3cr3t"}));
    assert!(
        e.starts_with("webhook_url ") && !e.contains("s3cr3t"),
        "{e}"
    );
    let e = prepare_err::<DiscordConfig>(json!({}));
    assert_eq!(e, "webhook_url or webhook_url_file is required");
}

fn prepare_err<C: Channel + serde::de::DeserializeOwned>(config: Value) -> String {
    let mut c: C = serde_json::from_value(config).expect("a config");
    c.prepare().expect_err("prepare must fail")
}

#[tokio::test]
async fn acknowledgements_are_grey_short_messages() {
    let rec = Recorder::start();
    let mut n = many(1, "critical");
    n.event = Event::Acknowledged {
        by: "ann".to_string(),
    };
    send(&slack(&rec), &n).await.expect("delivered");
    send(&discord(&rec), &n).await.expect("delivered");
    let got = rec.wait_for(2, WITHIN);
    let slack_body = got[0].json();
    assert_eq!(slack_body["text"], "[ACK by ann] HighCpu");
    assert_eq!(slack_body["attachments"][0]["color"], "#9aa0a6");
    assert_eq!(got[1].header("x-sysward-event"), Some("acknowledged"));
    let embed = &got[1].json()["embeds"][0];
    assert_eq!(embed["color"], 0x9aa0a6);
    let description = embed["description"].as_str().expect("description");
    assert!(
        description.starts_with("Acknowledged by ann."),
        "{description}"
    );
    assert!(!description.contains("/ack/"), "{description}");
}
