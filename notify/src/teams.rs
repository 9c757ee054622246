//! Microsoft Teams through a Workflows (Power Automate) webhook, the "When a Teams webhook
//! request is received" trigger that replaced Office 365 connectors: a `message` whose one
//! attachment is an Adaptive Card 1.4 (<https://adaptivecards.io/explorer/>,
//! <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>).
//! Workflows take Adaptive Cards only, not the older MessageCard. Colour is a TextBlock's
//! `color`; the card is kept well under Teams' message size limit of about 28 KB.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AlertInfo, Context, Notification, SendError, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    slack::{Tone, ack_link, intro, links, ordered, own_links},
    text,
    webhook::{chat_webhook_url, tag},
};

/// The attachment's content type for an Adaptive Card.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
const CARD_SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
/// The newest version Teams renders everywhere, mobile included.
const CARD_VERSION: &str = "1.4";
/// Alerts shown at most: more is no longer a chat message.
const MAX_ALERTS: usize = 20;
/// Bytes of JSON for the alerts, leaving room under 28 KB for the rest of the card.
const ALERTS_BUDGET: usize = 20_000;
const TEXT_LIMIT: usize = 600;
/// Teams shows at most six actions.
const MAX_ACTIONS: usize = 6;

/// `[[notify.receivers.teams]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The workflow's URL, a secret: its signature is the key.
    pub webhook_url: Option<Secret>,
    /// A file holding `webhook_url`.
    pub webhook_url_file: Option<PathBuf>,
    #[serde(skip)]
    url: Option<Secret>,
}

impl Tone {
    /// A TextBlock's `color`.
    pub fn teams_colour(self) -> &'static str {
        match self {
            Tone::Critical => "attention",
            Tone::Warning => "warning",
            Tone::Info => "accent",
            Tone::Resolved => "good",
            Tone::Acknowledged => "default",
        }
    }
}

fn text_block(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text::cut(text, TEXT_LIMIT), "wrap": true})
}

fn alert_container(n: &Notification, a: &AlertInfo) -> Value {
    let heading = match a.host() {
        Some(host) => format!("{} on {host}", a.alertname()),
        None => a.alertname().to_string(),
    };
    let when = match (a.status, a.ends_at_ms) {
        (Status::Resolved, Some(end)) => ("Resolved", text::rfc3339(end)),
        _ => ("Since", text::rfc3339(a.starts_at_ms)),
    };
    let mut facts = vec![json!({"title": when.0, "value": when.1})];
    if let Some(v) = a.value {
        facts.insert(0, json!({"title": "Value", "value": text::number(v)}));
    }
    let mut items = vec![
        json!({"type": "TextBlock", "text": text::cut(&heading, TEXT_LIMIT), "wrap": true,
            "weight": "Bolder", "color": Tone::of_alert(a).teams_colour()}),
        text_block(a.summary()),
        json!({"type": "FactSet", "facts": facts}),
    ];
    let own: Vec<String> = own_links(n, a)
        .into_iter()
        .map(|(label, url)| format!("[{label}]({url})"))
        .collect();
    if !own.is_empty() {
        items.push(text_block(&own.join(" · ")));
    }
    json!({"type": "Container", "separator": true, "items": items})
}

fn body(n: &Notification) -> Vec<Value> {
    let tone = Tone::of(n);
    let mut body = vec![json!({
        "type": "TextBlock", "text": text::cut(&text::title(n), TEXT_LIMIT), "wrap": true,
        "size": "Large", "weight": "Bolder", "color": tone.teams_colour(),
    })];
    body.extend(intro(n).map(|t| text_block(&t)));
    if let Some(custom) = &n.custom.text {
        // The receiver's template replaces the alert list; it may be long.
        body.push(
            json!({"type": "TextBlock", "text": text::cut(custom, 8 * TEXT_LIMIT), "wrap": true}),
        );
        return body;
    }
    let alerts = ordered(n);
    let shown = alert_containers(n, &alerts);
    let more = alerts.len() - shown.len();
    body.extend(shown);
    if more > 0 {
        let more = format!("…and {more} more");
        body.push(json!({"type": "TextBlock", "text": more, "isSubtle": true, "wrap": true}));
    }
    body
}

/// As many alerts as fit [`MAX_ALERTS`] and [`ALERTS_BUDGET`].
fn alert_containers(n: &Notification, alerts: &[&AlertInfo]) -> Vec<Value> {
    let mut used = 0;
    let mut out = Vec::new();
    for a in alerts.iter().take(MAX_ALERTS) {
        let container = alert_container(n, a);
        used += container.to_string().len();
        if used > ALERTS_BUDGET {
            break;
        }
        out.push(container);
    }
    out
}

fn actions(n: &Notification) -> Vec<Value> {
    let open =
        |title: &str, url: &str| json!({"type": "Action.OpenUrl", "title": title, "url": url});
    let mut actions = Vec::new();
    if let Some(ack) = ack_link(n) {
        let mut action = open("Acknowledge", ack);
        action["style"] = json!("positive");
        actions.push(action);
    }
    actions.extend(
        links(&n.common_annotations)
            .into_iter()
            .map(|(label, url)| open(label, url)),
    );
    if !n.external_url.is_empty() {
        actions.push(open("Sysward", &n.external_url));
    }
    actions.truncate(MAX_ACTIONS);
    actions
}

/// The message for `n`: Teams' envelope around the card.
pub fn payload(n: &Notification) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": {
                "$schema": CARD_SCHEMA,
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "msteams": {"width": "Full"},
                "body": body(n),
                "actions": actions(n),
            },
        }],
    })
}

impl TeamsConfig {
    /// The request for `n`, once prepared.
    pub fn request(&self, n: &Notification) -> Result<HttpRequest, SendError> {
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| SendError::Permanent("teams: not prepared".to_string()))?;
        Ok(tag(HttpRequest::json(url.expose(), &payload(n)), n))
    }
}

impl Channel for TeamsConfig {
    fn kind(&self) -> &'static str {
        "teams"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let url = chat_webhook_url(&self.webhook_url, &self.webhook_url_file)?;
        self.url = Some(url);
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move { http::send(ctx, &self.request(n)?).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, webhook::fixtures::*};

    fn card(p: &Value) -> &Value {
        &p["attachments"][0]["content"]
    }

    #[test]
    fn envelope_and_card_follow_the_workflows_format() {
        let p = payload(&notification(vec![alert("HighCpu", "web-1", "critical")]));
        assert_eq!(p["type"], "message");
        let attachments = p["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 1);
        assert_eq!(attachments[0]["contentType"], CARD_CONTENT_TYPE);
        assert!(attachments[0]["contentUrl"].is_null());
        let card = card(&p);
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["$schema"], CARD_SCHEMA);
        assert_eq!(card["body"][0]["text"], "[FIRING:1] HighCpu");
        assert_eq!(card["body"][0]["color"], "attention");
        let alert = &card["body"][1];
        assert_eq!(alert["type"], "Container");
        assert_eq!(alert["items"][0]["text"], "HighCpu on web-1");
        assert_eq!(alert["items"][1]["text"], "HighCpu on web-1");
        assert_eq!(alert["items"][2]["facts"][0]["value"], "97.25");
        assert_eq!(
            alert["items"][2]["facts"][1]["value"],
            "2026-12-04T09:30:00Z"
        );
        assert_eq!(
            alert["items"][3]["text"],
            "[Runbook](https://runbooks.example/cpu)"
        );
        let actions = card["actions"].as_array().expect("actions");
        assert_eq!(actions[0]["type"], "Action.OpenUrl");
        assert_eq!(actions[0]["title"], "Acknowledge");
        assert_eq!(
            actions[0]["url"],
            "https://sysward.example/ack/signed-token"
        );
        assert_eq!(actions[1]["url"], "https://grafana.example/d/cpu");
    }

    #[test]
    fn colours_follow_the_tone() {
        let mut n = notification(vec![alert("A", "h", "warning")]);
        assert_eq!(card(&payload(&n))["body"][0]["color"], "warning");
        n = notification(vec![resolve(alert("A", "h", "critical"))]);
        let p = payload(&n);
        assert_eq!(card(&p)["body"][0]["color"], "good");
        assert!(
            card(&p)["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .all(|a| a["title"] != "Acknowledge")
        );
        n.event = Event::Test;
        assert_eq!(card(&payload(&n))["body"][0]["color"], "accent");
    }

    #[test]
    fn many_alerts_are_summed_up() {
        let alerts = (0..30)
            .map(|i| alert("A", &format!("h{i}"), "info"))
            .collect();
        let p = payload(&notification(alerts));
        let body = card(&p)["body"].as_array().expect("body");
        assert_eq!(body.len(), 1 + MAX_ALERTS + 1);
        assert_eq!(body[MAX_ALERTS + 1]["text"], "…and 10 more");
    }

    #[test]
    fn long_alerts_stay_under_the_size_limit() {
        let alerts = (0..30)
            .map(|i| {
                let mut a = alert(&"é".repeat(900), &format!("h{i}"), "info");
                a.annotations.insert("summary".into(), "€".repeat(900));
                a
            })
            .collect();
        let p = payload(&notification(alerts));
        assert!(p.to_string().len() < 28_000, "{}", p.to_string().len());
        let body = card(&p)["body"].as_array().expect("body");
        let shown = body.iter().filter(|b| b["type"] == "Container").count();
        assert!(shown >= 1);
        let more = format!("…and {} more", 30 - shown);
        assert_eq!(body.last().expect("last")["text"], more.as_str());
    }
}
