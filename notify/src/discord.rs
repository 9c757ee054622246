//! Discord through a channel webhook (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//! embeds (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>)
//! within Discord's limits (title 256 characters, description 4096, 25 fields of 256 + 1024,
//! 10 embeds, 6000 characters in all), one field per alert. `?wait=true` makes Discord answer
//! with the message it made. A 429 says how long to wait in its JSON `retry_after`, in
//! seconds (<https://discord.com/developers/docs/topics/rate-limits>).

use std::{path::PathBuf, time::Duration};

use reqwest::{Url, header::CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AlertInfo, Context, Delivery, Notification, SendError, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    slack::{Tone, ack_link, intro, links, ordered, own_links},
    text,
    webhook::{chat_webhook_url, check_url, tag},
};

const TITLE: usize = 256;
const DESCRIPTION: usize = 4096;
const FIELD_NAME: usize = 256;
const FIELD_VALUE: usize = 1024;
const FIELDS_PER_EMBED: usize = 25;
const EMBEDS: usize = 10;
/// Characters of all embeds' titles, descriptions, field names and values, and footers.
const TOTAL: usize = 6000;
/// Kept free for the field that counts the alerts left out.
const MORE_RESERVE: usize = 64;
const FOOTER: &str = "Sysward";

/// `[[notify.receivers.discord]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The webhook's URL, a secret: it carries the webhook's token.
    pub webhook_url: Option<Secret>,
    /// A file holding `webhook_url`.
    pub webhook_url_file: Option<PathBuf>,
    /// Overrides the webhook's name.
    pub username: Option<String>,
    /// Overrides the webhook's avatar.
    pub avatar_url: Option<String>,
    #[serde(skip)]
    url: Option<Secret>,
}

impl Tone {
    fn discord_emoji(self) -> &'static str {
        match self {
            Tone::Critical => "🔴",
            Tone::Warning => "🟠",
            Tone::Info => "🔵",
            Tone::Resolved => "✅",
            Tone::Acknowledged => "👀",
        }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A time each reader sees in their own time zone, and how long ago.
fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    format!("<t:{secs}:f> (<t:{secs}:R>)")
}

fn alert_field(n: &Notification, a: &AlertInfo) -> (String, String) {
    let mut name = format!("{} {}", Tone::of_alert(a).discord_emoji(), a.alertname());
    if let Some(host) = a.host() {
        name.push_str(&format!(" on {host}"));
    }
    let mut value = format!("{}\n", a.summary());
    if let Some(v) = a.value {
        value.push_str(&format!("Value **{}** · ", text::number(v)));
    }
    match (a.status, a.ends_at_ms) {
        (Status::Resolved, Some(end)) => value.push_str(&format!("resolved {}", date(end))),
        _ => value.push_str(&format!("since {}", date(a.starts_at_ms))),
    }
    for (label, url) in own_links(n, a) {
        value.push_str(&format!("\n[{label}]({url})"));
    }
    (text::cut(&name, FIELD_NAME), text::cut(&value, FIELD_VALUE))
}

fn description(n: &Notification) -> String {
    let mut parts: Vec<String> = intro(n).into_iter().collect();
    parts.extend(n.custom.text.clone());
    let mut line: Vec<String> = ack_link(n)
        .map(|url| format!("**[Acknowledge]({url})**"))
        .into_iter()
        .collect();
    line.extend(
        links(&n.common_annotations)
            .into_iter()
            .map(|(label, url)| format!("[{label}]({url})")),
    );
    if !line.is_empty() {
        parts.push(line.join(" · "));
    }
    text::cut(&parts.join("\n\n"), DESCRIPTION)
}

/// Alert fields in groups of [`FIELDS_PER_EMBED`], as many as Discord's limits allow with
/// `used` characters taken, the last saying how many were left out.
fn field_groups(n: &Notification, mut used: usize) -> Vec<Vec<Value>> {
    let alerts = if n.custom.text.is_some() {
        Vec::new()
    } else {
        ordered(n)
    };
    let mut fields = Vec::new();
    for (i, a) in alerts.iter().enumerate() {
        let last = i + 1 == alerts.len();
        let (name, value) = alert_field(n, a);
        let size = chars(&name) + chars(&value);
        let (reserve, slots) = if last { (0, 1) } else { (MORE_RESERVE, 2) };
        if used + size + reserve > TOTAL || fields.len() + slots > EMBEDS * FIELDS_PER_EMBED {
            break;
        }
        used += size;
        fields.push(json!({"name": name, "value": value, "inline": false}));
    }
    if fields.len() < alerts.len() {
        let more = format!("…and {} more", alerts.len() - fields.len());
        fields
            .push(json!({"name": more, "value": "See Sysward for all of them.", "inline": false}));
    }
    fields
        .chunks(FIELDS_PER_EMBED)
        .map(<[Value]>::to_vec)
        .collect()
}

/// The embeds for `n`: the first with the title, the others carrying more fields.
pub fn embeds(n: &Notification) -> Vec<Value> {
    let colour = Tone::of(n).rgb();
    let title = text::cut(&text::title(n), TITLE);
    let description = description(n);
    let used = chars(&title) + chars(&description) + chars(FOOTER);
    let mut first = json!({
        "title": title,
        "color": colour,
        "timestamp": text::rfc3339(n.created_ms),
        "footer": {"text": FOOTER},
    });
    if !description.is_empty() {
        first["description"] = json!(description);
    }
    if !n.external_url.is_empty() {
        first["url"] = json!(n.external_url);
    }
    let mut groups = field_groups(n, used).into_iter();
    first["fields"] = json!(groups.next().unwrap_or_default());
    let mut embeds = vec![first];
    embeds.extend(groups.map(|fields| json!({"color": colour, "fields": fields})));
    embeds
}

/// Discord's rate limit answer: `{"message": ..., "retry_after": 1.5, "global": false}`.
#[derive(Deserialize)]
struct RateLimited {
    retry_after: f64,
}

/// The wait a 429's JSON asks for.
pub fn body_retry_after(body: &[u8]) -> Option<Duration> {
    let limited: RateLimited = serde_json::from_slice(body).ok()?;
    let secs = limited.retry_after;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Like [`http::send`], but a 429 waits as its JSON says, else as its `Retry-After` says.
async fn post(ctx: &Context, req: &HttpRequest) -> Result<Delivery, SendError> {
    let mut builder = ctx
        .http
        .request(req.method.clone(), &req.url)
        .header(CONTENT_TYPE, req.content_type.as_ref())
        .body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| SendError::Retry {
        reason: http::network_error(e),
        after: None,
    })?;
    let status = response.status();
    let header_wait = http::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let wait = match status {
        reqwest::StatusCode::TOO_MANY_REQUESTS => body_retry_after(&body).or(header_wait),
        _ => header_wait,
    };
    http::classify(status, wait, http::answer_text(&body))
}

/// `url` with `wait=true`, unless the operator chose otherwise.
fn with_wait(url: &str) -> Result<String, String> {
    let mut parsed = Url::parse(url).map_err(|e| format!("webhook_url is not a valid URL: {e}"))?;
    if !parsed.query_pairs().any(|(k, _)| k == "wait") {
        parsed.query_pairs_mut().append_pair("wait", "true");
    }
    Ok(parsed.into())
}

impl DiscordConfig {
    /// The message for `n`. Mentions are off: alert text must not ping `@everyone`.
    pub fn payload(&self, n: &Notification) -> Value {
        let mut message = json!({"allowed_mentions": {"parse": []}, "embeds": embeds(n)});
        if let Some(name) = &self.username {
            message["username"] = json!(name);
        }
        if let Some(url) = &self.avatar_url {
            message["avatar_url"] = json!(url);
        }
        message
    }

    /// The request for `n`, once prepared.
    pub fn request(&self, n: &Notification) -> Result<HttpRequest, SendError> {
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| SendError::Permanent("discord: not prepared".to_string()))?;
        Ok(tag(HttpRequest::json(url.expose(), &self.payload(n)), n))
    }
}

impl Channel for DiscordConfig {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let url = chat_webhook_url(&self.webhook_url, &self.webhook_url_file)?;
        if let Some(avatar) = &self.avatar_url {
            check_url(avatar, "avatar_url")?;
        }
        self.url = Some(Secret::new(with_wait(url.expose())?));
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move { post(ctx, &self.request(n)?).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixtures::*;

    fn config() -> DiscordConfig {
        let mut c: DiscordConfig = serde_json::from_value(json!({
            "webhook_url": "https://discord.example/api/webhooks/1/token",
            "username": "Sysward",
        }))
        .expect("config");
        c.prepare().expect("prepare");
        c
    }

    /// What Discord counts towards its 6000 characters.
    fn counted(embeds: &[Value]) -> usize {
        let s = |v: &Value| v.as_str().map(chars).unwrap_or(0);
        embeds
            .iter()
            .map(|e| {
                let fields: usize = e["fields"]
                    .as_array()
                    .map(|f| f.iter().map(|f| s(&f["name"]) + s(&f["value"])).sum())
                    .unwrap_or(0);
                s(&e["title"]) + s(&e["description"]) + s(&e["footer"]["text"]) + fields
            })
            .sum()
    }

    #[test]
    fn one_alert_renders_an_embed() {
        let p = config().payload(&notification(vec![alert("HighCpu", "web-1", "critical")]));
        assert_eq!(p["username"], "Sysward");
        assert_eq!(p["allowed_mentions"]["parse"], json!([]));
        let e = &p["embeds"][0];
        assert_eq!(e["title"], "[FIRING:1] HighCpu");
        assert_eq!(e["color"], 0xd63232);
        assert_eq!(e["timestamp"], "2026-12-04T09:31:00Z");
        assert_eq!(e["url"], "https://sysward.example");
        let description = e["description"].as_str().expect("description");
        assert!(description.contains("[Acknowledge](https://sysward.example/ack/signed-token)"));
        assert!(description.contains("[Dashboard](https://grafana.example/d/cpu)"));
        assert_eq!(e["fields"][0]["name"], "🔴 HighCpu on web-1");
        let value = e["fields"][0]["value"].as_str().expect("value");
        assert!(value.contains("since <t:1796376600:f>"), "{value}");
        assert!(
            value.contains("[Runbook](https://runbooks.example/cpu)"),
            "{value}"
        );
    }

    #[test]
    fn forty_alerts_respect_every_limit() {
        let alerts: Vec<_> = (0..40)
            .map(|i| {
                let mut a = alert("HighCpu", &format!("web-{i}"), "warning");
                a.annotations.insert("summary".into(), "s".repeat(300));
                a
            })
            .collect();
        let embeds = embeds(&notification(alerts));
        assert!(embeds.len() <= EMBEDS);
        assert!(counted(&embeds) <= TOTAL, "{}", counted(&embeds));
        let fields: Vec<&Value> = embeds
            .iter()
            .flat_map(|e| e["fields"].as_array().expect("fields"))
            .collect();
        assert!(
            embeds
                .iter()
                .all(|e| e["fields"].as_array().map(Vec::len) <= Some(25))
        );
        let shown = fields
            .iter()
            .filter(|f| f["name"].as_str().is_some_and(|n| n.contains("on web-")))
            .count();
        assert!((10..40).contains(&shown), "{shown}");
        let more = fields.last().expect("fields")["name"]
            .as_str()
            .expect("name");
        assert_eq!(more, format!("…and {} more", 40 - shown));
    }

    #[test]
    fn short_alerts_spill_into_a_second_embed() {
        let alerts = (0..30)
            .map(|i| alert("A", &format!("h{i}"), "info"))
            .collect();
        let embeds = embeds(&notification(alerts));
        assert_eq!(embeds.len(), 2);
        assert_eq!(embeds[0]["fields"].as_array().map(Vec::len), Some(25));
        assert_eq!(embeds[1]["fields"].as_array().map(Vec::len), Some(5));
        assert_eq!(embeds[1]["color"], 0x2f80ed);
        assert!(counted(&embeds) <= TOTAL);
    }

    #[test]
    fn long_title_and_resolved_colour() {
        let mut n = notification(vec![resolve(alert(&"N".repeat(400), "h", "critical"))]);
        n.common_labels.clear();
        let e = &embeds(&n)[0];
        assert_eq!(e["title"].as_str().map(chars), Some(TITLE));
        assert_eq!(e["color"], 0x2eb67d);
        assert!(
            !e["description"]
                .as_str()
                .unwrap_or("")
                .contains("Acknowledge")
        );
    }

    #[test]
    fn wait_and_retry_after() {
        assert_eq!(
            with_wait("https://d.example/api/webhooks/1/t").expect("url"),
            "https://d.example/api/webhooks/1/t?wait=true"
        );
        assert_eq!(
            with_wait("https://d.example/w?thread_id=5").expect("url"),
            "https://d.example/w?thread_id=5&wait=true"
        );
        let body =
            br#"{"message": "You are being rate limited.", "retry_after": 1.25, "global": false}"#;
        assert_eq!(body_retry_after(body), Some(Duration::from_millis(1250)));
        assert_eq!(body_retry_after(b"<html>"), None);
        assert_eq!(body_retry_after(br#"{"retry_after": -1}"#), None);
    }
}
