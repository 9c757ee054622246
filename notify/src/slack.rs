//! Slack through an incoming webhook (<https://api.slack.com/messaging/webhooks>): a `text`
//! fallback for notifications, and Block Kit blocks
//! (<https://api.slack.com/reference/block-kit/blocks>) inside one secondary attachment
//! (<https://api.slack.com/reference/messaging/attachments>), the only place where Slack
//! still draws a colour bar. Blocks follow Slack's limits: 50 per message, 3000 characters of
//! section text, 150 of header text.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AlertInfo, Context, Event, Notification, SendError, Severity, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
    webhook::{chat_webhook_url, check_url, tag},
};

const MAX_BLOCKS: usize = 50;
const SECTION_TEXT: usize = 3000;
const HEADER_TEXT: usize = 150;
const BUTTON_URL: usize = 3000;
/// Context blocks take at most 10 elements.
const CONTEXT_ELEMENTS: usize = 10;

/// How a notification looks in chat, shared by Slack, Teams and Discord: the event first,
/// then the group's status, then the highest severity firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Critical,
    Warning,
    Info,
    Resolved,
    Acknowledged,
}

impl Tone {
    /// The notification's tone.
    pub fn of(n: &Notification) -> Tone {
        match (&n.event, n.status) {
            (Event::Acknowledged { .. }, _) => Tone::Acknowledged,
            (Event::Test, _) => Tone::Info,
            (_, Status::Resolved) => Tone::Resolved,
            (_, Status::Firing) => Tone::of_severity(n.severity()),
        }
    }

    /// One alert's tone.
    pub fn of_alert(a: &AlertInfo) -> Tone {
        match a.status {
            Status::Resolved => Tone::Resolved,
            Status::Firing => Tone::of_severity(Severity::of(&a.labels)),
        }
    }

    fn of_severity(s: Severity) -> Tone {
        match s {
            Severity::Critical => Tone::Critical,
            Severity::Warning => Tone::Warning,
            Severity::Info => Tone::Info,
        }
    }

    /// The colour as `0xRRGGBB`: red, amber, blue, green, grey.
    pub fn rgb(self) -> u32 {
        match self {
            Tone::Critical => 0xd63232,
            Tone::Warning => 0xf2a33a,
            Tone::Info => 0x2f80ed,
            Tone::Resolved => 0x2eb67d,
            Tone::Acknowledged => 0x9aa0a6,
        }
    }

    /// The attachment's colour bar, e.g. `#d63232`.
    pub fn slack_colour(self) -> String {
        format!("#{:06x}", self.rgb())
    }

    fn slack_emoji(self) -> &'static str {
        match self {
            Tone::Critical => ":red_circle:",
            Tone::Warning => ":large_orange_circle:",
            Tone::Info => ":large_blue_circle:",
            Tone::Resolved => ":white_check_mark:",
            Tone::Acknowledged => ":eyes:",
        }
    }
}

/// A line saying why this message comes, when the title alone does not.
pub(crate) fn intro(n: &Notification) -> Option<String> {
    match &n.event {
        Event::Alerts => None,
        Event::Escalated { step } => Some(format!(
            "Escalation step {step}: the alerts still fire and nobody acknowledged them."
        )),
        Event::Acknowledged { by } => Some(format!("Acknowledged by {by}.")),
        Event::Digest { held } => {
            Some(format!("{held} messages were held by the frequency limit."))
        }
        Event::Flapping => {
            Some("The alerts flap: notifications are held until they settle.".to_string())
        }
        Event::Test => Some("A test message from Sysward: this channel works.".to_string()),
    }
}

/// Whether the message offers the acknowledge link.
pub(crate) fn ack_link(n: &Notification) -> Option<&str> {
    let open = n.status == Status::Firing && !matches!(n.event, Event::Acknowledged { .. });
    n.ack_url.as_deref().filter(|_| open)
}

/// Firing alerts first.
pub(crate) fn ordered(n: &Notification) -> Vec<&AlertInfo> {
    n.firing().chain(n.resolved()).collect()
}

/// `runbook_url` and `dashboard_url` of `annotations`, with their labels.
pub(crate) fn links(
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, &str)> {
    [("Runbook", "runbook_url"), ("Dashboard", "dashboard_url")]
        .into_iter()
        .filter_map(|(label, key)| annotations.get(key).map(|url| (label, url.as_str())))
        .collect()
}

/// An alert's own links, leaving out those the whole group shares (shown once at the end).
pub(crate) fn own_links<'a>(n: &Notification, a: &'a AlertInfo) -> Vec<(&'static str, &'a str)> {
    links(&a.annotations)
        .into_iter()
        .filter(|(_, url)| !n.common_annotations.values().any(|c| c == url))
        .collect()
}

/// `[[notify.receivers.slack]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook's URL, a secret: it is the key.
    pub webhook_url: Option<Secret>,
    /// A file holding `webhook_url`.
    pub webhook_url_file: Option<PathBuf>,
    /// The channel to post in. This and the next three are honoured by legacy webhooks
    /// only: an app's webhook posts where and as it was made.
    pub channel: Option<String>,
    /// The name the message shows.
    pub username: Option<String>,
    /// The message's icon as an emoji, e.g. `:rotating_light:`.
    pub icon_emoji: Option<String>,
    /// The message's icon as an image (not with `icon_emoji`).
    pub icon_url: Option<String>,
    /// Where the title links to.
    pub title_link: Option<String>,
    #[serde(skip)]
    url: Option<Secret>,
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A mrkdwn link; `|` would end the URL part.
fn link(url: &str, label: &str) -> String {
    format!("<{}|{}>", escape(url).replace('|', "%7C"), escape(label))
}

/// A time each reader sees in their own time zone, with UTC as the fallback.
fn date(ms: i64) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        ms.div_euclid(1000),
        text::rfc3339(ms)
    )
}

fn section(mrkdwn: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text::cut(mrkdwn, SECTION_TEXT)}})
}

fn title_block(title: &str, title_link: Option<&str>) -> Value {
    match title_link {
        // Header blocks take plain text only, so a linked title is a section.
        Some(url) => section(&format!("*{}*", link(url, title))),
        None => json!({"type": "header",
            "text": {"type": "plain_text", "text": text::cut(title, HEADER_TEXT), "emoji": true}}),
    }
}

fn alert_text(n: &Notification, a: &AlertInfo) -> String {
    let mut out = format!(
        "{} *{}*",
        Tone::of_alert(a).slack_emoji(),
        escape(a.alertname())
    );
    if let Some(host) = a.host() {
        out.push_str(&format!(" on `{}`", escape(host)));
    }
    out.push_str(&format!("\n{}\n", escape(a.summary())));
    if let Some(v) = a.value {
        out.push_str(&format!("Value *{}* · ", text::number(v)));
    }
    match (a.status, a.ends_at_ms) {
        (Status::Resolved, Some(end)) => out.push_str(&format!("resolved {}", date(end))),
        _ => out.push_str(&format!("since {}", date(a.starts_at_ms))),
    }
    let own: Vec<String> = own_links(n, a)
        .into_iter()
        .map(|(label, url)| link(url, label))
        .collect();
    if !own.is_empty() {
        out.push('\n');
        out.push_str(&own.join(" · "));
    }
    out
}

/// One section per alert in `room` blocks, the last saying how many did not fit.
fn alert_blocks(n: &Notification, room: usize) -> Vec<Value> {
    let alerts = ordered(n);
    if alerts.len() <= room {
        return alerts.iter().map(|a| section(&alert_text(n, a))).collect();
    }
    let shown = room.saturating_sub(1);
    let mut blocks: Vec<Value> = alerts[..shown]
        .iter()
        .map(|a| section(&alert_text(n, a)))
        .collect();
    blocks.push(section(&format!("…and {} more", alerts.len() - shown)));
    blocks
}

/// The group's links, and the acknowledge button while it fires.
fn tail_blocks(n: &Notification) -> Vec<Value> {
    let mut elements: Vec<Value> = links(&n.common_annotations)
        .into_iter()
        .map(|(label, url)| json!({"type": "mrkdwn", "text": link(url, label)}))
        .collect();
    if !n.external_url.is_empty() {
        elements.push(json!({"type": "mrkdwn", "text": link(&n.external_url, "Sysward")}));
    }
    elements.truncate(CONTEXT_ELEMENTS);
    let mut blocks = vec![json!({"type": "context", "elements": elements})];
    if let Some(ack) = ack_link(n).filter(|u| u.len() <= BUTTON_URL) {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "action_id": "sysward_acknowledge",
            "style": "primary",
            "text": {"type": "plain_text", "text": "Acknowledge"},
            "url": ack,
        }]}));
    }
    blocks
}

fn blocks(n: &Notification, title: &str, title_link: Option<&str>) -> Vec<Value> {
    let mut head = vec![title_block(title, title_link)];
    head.extend(intro(n).map(|t| section(&escape(&t))));
    let tail = tail_blocks(n);
    let body = match &n.custom.text {
        // The receiver's template replaces the alert list.
        Some(custom) => vec![section(custom)],
        None => alert_blocks(n, MAX_BLOCKS - head.len() - tail.len()),
    };
    [head, body, tail].concat()
}

impl SlackConfig {
    /// The message for `n`.
    pub fn payload(&self, n: &Notification) -> Value {
        let title = text::title(n);
        let mut message = json!({
            "text": title,
            "attachments": [{
                "color": Tone::of(n).slack_colour(),
                "fallback": title,
                "blocks": blocks(n, &title, self.title_link.as_deref()),
            }],
        });
        for (key, value) in [
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
            ("icon_url", &self.icon_url),
        ] {
            if let Some(v) = value {
                message[key] = json!(v);
            }
        }
        message
    }

    /// The request for `n`, once prepared.
    pub fn request(&self, n: &Notification) -> Result<HttpRequest, SendError> {
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| SendError::Permanent("slack: not prepared".to_string()))?;
        Ok(tag(HttpRequest::json(url.expose(), &self.payload(n)), n))
    }
}

impl Channel for SlackConfig {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let url = chat_webhook_url(&self.webhook_url, &self.webhook_url_file)?;
        if self.icon_emoji.is_some() && self.icon_url.is_some() {
            return Err("give either icon_emoji or icon_url, not both".to_string());
        }
        for (key, value) in [
            ("icon_url", &self.icon_url),
            ("title_link", &self.title_link),
        ] {
            if let Some(v) = value {
                check_url(v, key)?;
            }
        }
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
    use crate::webhook::fixtures::*;

    fn config() -> SlackConfig {
        let mut c: SlackConfig = serde_json::from_value(json!({
            "webhook_url": "https://hooks.slack.example/services/T0/B0/key",
            "channel": "#ops",
            "username": "sysward",
            "icon_emoji": ":rotating_light:",
        }))
        .expect("config");
        c.prepare().expect("prepare");
        c
    }

    fn blocks_of(p: &Value) -> &Vec<Value> {
        p["attachments"][0]["blocks"].as_array().expect("blocks")
    }

    #[test]
    fn firing_critical_is_red_with_alert_sections_and_ack_button() {
        let n = notification(vec![
            alert("HighCpu", "web-1", "critical"),
            alert("HighCpu", "web-2", "warning"),
        ]);
        let p = config().payload(&n);
        assert_eq!(p["text"], "[FIRING:2] HighCpu");
        assert_eq!(p["channel"], "#ops");
        assert_eq!(p["icon_emoji"], ":rotating_light:");
        assert_eq!(p["attachments"][0]["color"], "#d63232");
        let blocks = blocks_of(&p);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "[FIRING:2] HighCpu");
        let first = blocks[1]["text"]["text"].as_str().expect("text");
        assert!(first.contains("*HighCpu* on `web-1`"), "{first}");
        assert!(first.contains("Value *97.25*"), "{first}");
        assert!(first.contains("<!date^1796376600^"), "{first}");
        assert!(
            first.contains("<https://runbooks.example/cpu|Runbook>"),
            "{first}"
        );
        let context = &blocks[3];
        assert_eq!(context["type"], "context");
        assert_eq!(
            context["elements"][0]["text"],
            "<https://grafana.example/d/cpu|Dashboard>"
        );
        let actions = &blocks[4];
        assert_eq!(
            actions["elements"][0]["url"],
            "https://sysward.example/ack/signed-token"
        );
        assert_eq!(blocks.len(), 5);
    }

    #[test]
    fn resolved_is_green_without_button_and_acknowledged_grey() {
        let mut n = notification(vec![resolve(alert("HighCpu", "web-1", "critical"))]);
        let p = config().payload(&n);
        assert_eq!(p["attachments"][0]["color"], "#2eb67d");
        assert!(blocks_of(&p).iter().all(|b| b["type"] != "actions"));
        n.status = Status::Firing;
        n.event = Event::Acknowledged { by: "ann".into() };
        let p = config().payload(&n);
        assert_eq!(p["attachments"][0]["color"], "#9aa0a6");
        assert_eq!(blocks_of(&p)[1]["text"]["text"], "Acknowledged by ann.");
        assert!(blocks_of(&p).iter().all(|b| b["type"] != "actions"));
    }

    #[test]
    fn limits_hold_with_many_long_alerts() {
        let long = "x".repeat(5000);
        let alerts = (0..80)
            .map(|i| {
                let mut a = alert("HighCpu", &format!("web-{i}"), "warning");
                a.annotations.insert("summary".into(), long.clone());
                a
            })
            .collect();
        let p = config().payload(&notification(alerts));
        let blocks = blocks_of(&p);
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let sections: Vec<&str> = blocks
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .collect();
        assert!(sections.iter().all(|t| t.chars().count() <= SECTION_TEXT));
        let shown = sections.iter().filter(|t| t.contains("on `web-")).count();
        let more = format!("…and {} more", 80 - shown);
        assert!(sections.contains(&more.as_str()), "{more} in {sections:?}");
    }

    #[test]
    fn user_text_is_escaped() {
        let mut a = alert("Disk<full>", "db&1", "info");
        a.annotations
            .insert("summary".into(), "<!channel> a|b".into());
        let p = config().payload(&notification(vec![a]));
        let text = blocks_of(&p)[1]["text"]["text"].as_str().expect("text");
        assert!(text.contains("*Disk&lt;full&gt;* on `db&amp;1`"), "{text}");
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
    }

    #[test]
    fn title_link_makes_a_linked_section() {
        let mut c = config();
        c.title_link = Some("https://sysward.example/groups/1".into());
        let p = c.payload(&notification(vec![alert("A", "h", "info")]));
        assert_eq!(
            blocks_of(&p)[0]["text"]["text"],
            "*<https://sysward.example/groups/1|[FIRING:1] HighCpu>*"
        );
        assert_eq!(p["attachments"][0]["color"], "#2f80ed");
    }

    #[test]
    fn prepare_checks() {
        let mut c: SlackConfig = serde_json::from_value(json!({
            "webhook_url": "https://x/", "icon_emoji": ":a:", "icon_url": "https://i/"
        }))
        .expect("config");
        assert!(c.prepare().expect_err("both icons").contains("icon_emoji"));
        let mut c: SlackConfig = serde_json::from_value(json!({})).expect("config");
        assert!(c.prepare().expect_err("no url").contains("webhook_url"));
        assert!(c.request(&notification(vec![])).is_err());
    }
}
