//! Opsgenie through its Alert API v2, as Opsgenie's REST API documentation gives it: one
//! Opsgenie alert per Sysward alert, with an `alias` derived from the alert's fingerprint so
//! that resends and repeats deduplicate there. Firing alerts are created
//! (`POST /v2/alerts`), resolved ones closed (`POST /v2/alerts/{alias}/close`) and an
//! acknowledgement in Sysward acknowledges every firing one
//! (`POST /v2/alerts/{alias}/acknowledge`), both by `identifierType=alias`. Requests carry
//! `Authorization: GenieKey <api key>`; Opsgenie answers 202 and processes them later.
//!
//! Atlassian ends Opsgenie's API on 2027-04-05 (its successor is Jira Service Management's
//! operations API): this channel stops working then.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    AlertInfo, Context, Delivery, Event, Notification, SendError, Severity, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
};

/// Opsgenie's API in its US region.
pub const DEFAULT_API_URL: &str = "https://api.opsgenie.com";
/// Opsgenie's API in its EU region.
pub const EU_API_URL: &str = "https://api.eu.opsgenie.com";

/// Opsgenie's documented limits.
const MESSAGE_LIMIT: usize = 130;
const ALIAS_LIMIT: usize = 512;
const DESCRIPTION_LIMIT: usize = 15_000;
const ENTITY_LIMIT: usize = 512;
const USER_LIMIT: usize = 100;
const NOTE_LIMIT: usize = 25_000;
const TAGS_LIMIT: usize = 20;
const TAG_LIMIT: usize = 50;
const RESPONDERS_LIMIT: usize = 50;

/// What Opsgenie shows as the alerts' source.
const SOURCE: &str = "Sysward";

/// `[[notify.receivers.opsgenie]]`: one Opsgenie API integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    /// The key of an "API" integration.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// A file holding the key, instead of `api_key`.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// The API's base URL: [`DEFAULT_API_URL`], or [`EU_API_URL`] for an EU account.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Who is notified, besides the integration's own team.
    #[serde(default)]
    pub responders: Vec<Responder>,
    /// Tags of every alert.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A fixed priority, instead of one from the alerts' severity.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// The key `prepare` settled on, from either setting.
    #[serde(skip)]
    key: Option<Secret>,
}

/// A team, user, escalation or schedule, by name or by id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responder {
    /// `type` in the settings, as in Opsgenie's API.
    #[serde(rename = "type")]
    pub kind: ResponderKind,
    /// The name; for a user, the username (their email address).
    #[serde(default)]
    pub name: Option<String>,
    /// The id, instead of the name.
    #[serde(default)]
    pub id: Option<String>,
}

/// The kinds of responder Opsgenie routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponderKind {
    Team,
    User,
    Escalation,
    Schedule,
}

impl ResponderKind {
    fn as_str(self) -> &'static str {
        match self {
            ResponderKind::Team => "team",
            ResponderKind::User => "user",
            ResponderKind::Escalation => "escalation",
            ResponderKind::Schedule => "schedule",
        }
    }
}

/// Opsgenie's priorities, P1 the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }

    fn of(severity: Severity) -> Priority {
        match severity {
            Severity::Critical => Priority::P1,
            Severity::Warning => Priority::P3,
            Severity::Info => Priority::P5,
        }
    }
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_string()
}

impl Channel for OpsgenieConfig {
    fn kind(&self) -> &'static str {
        "opsgenie"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let key = Secret::pick(
            self.api_key.clone(),
            self.api_key_file.as_deref(),
            "api_key",
            true,
        )?;
        crate::webhook::check_url(&self.api_url, "api_url")?;
        self.api_url = self.api_url.trim_end_matches('/').to_string();
        check_responders(&self.responders)?;
        check_tags(&self.tags)?;
        self.key = key;
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let key = self.key.as_ref().ok_or_else(not_prepared)?;
            let requests: Vec<HttpRequest> = self
                .requests(n)
                .into_iter()
                .map(|r| r.header("Authorization", format!("GenieKey {}", key.expose())))
                .collect();
            send_all(ctx, &requests).await
        })
    }
}

impl OpsgenieConfig {
    /// Every request the notification makes, in the alerts' order, without the key.
    fn requests(&self, n: &Notification) -> Vec<HttpRequest> {
        n.alerts
            .iter()
            .filter_map(|a| match (&n.event, a.status) {
                (Event::Acknowledged { by }, Status::Firing) => Some(self.acknowledge(a, by)),
                (Event::Acknowledged { .. }, Status::Resolved) => None,
                (_, Status::Firing) => Some(self.create(n, a)),
                (_, Status::Resolved) => Some(self.close(a)),
            })
            .collect()
    }

    fn create(&self, n: &Notification, a: &AlertInfo) -> HttpRequest {
        let mut body = Map::new();
        body.insert("message".into(), message(n, a).into());
        body.insert("alias".into(), alias(a).into());
        body.insert("description".into(), description(n, a).into());
        if !self.responders.is_empty() {
            let responders = self.responders.iter().map(responder).collect();
            body.insert("responders".into(), Value::Array(responders));
        }
        if !self.tags.is_empty() {
            body.insert("tags".into(), json!(self.tags));
        }
        body.insert("details".into(), json!(a.labels));
        if let Some(host) = a.host() {
            body.insert("entity".into(), text::cut(host, ENTITY_LIMIT).into());
        }
        body.insert("source".into(), SOURCE.into());
        let priority = self
            .priority
            .unwrap_or_else(|| Priority::of(Severity::of(&a.labels)));
        body.insert("priority".into(), priority.as_str().into());
        HttpRequest::json(format!("{}/v2/alerts", self.api_url), &Value::Object(body))
    }

    fn close(&self, a: &AlertInfo) -> HttpRequest {
        let body = json!({"source": SOURCE, "note": "Resolved in Sysward."});
        HttpRequest::json(self.action_url(a, "close"), &body)
    }

    fn acknowledge(&self, a: &AlertInfo, by: &str) -> HttpRequest {
        let body = json!({
            "user": text::cut(by, USER_LIMIT),
            "source": SOURCE,
            "note": text::cut(&format!("Acknowledged in Sysward by {by}."), NOTE_LIMIT),
        });
        HttpRequest::json(self.action_url(a, "acknowledge"), &body)
    }

    fn action_url(&self, a: &AlertInfo, action: &str) -> String {
        format!(
            "{}/v2/alerts/{}/{action}?identifierType=alias",
            self.api_url,
            path_segment(&alias(a))
        )
    }
}

/// `sysward-` and the fingerprint; a fingerprint too long for Opsgenie's 512 characters is
/// hashed instead, still the same for every send of the same alert.
pub fn alias(a: &AlertInfo) -> String {
    let alias = format!("sysward-{}", a.fingerprint);
    if alias.chars().count() <= ALIAS_LIMIT {
        return alias;
    }
    use sha2::Digest;
    format!(
        "sysward-{}",
        hex::encode(sha2::Sha256::digest(a.fingerprint.as_bytes()))
    )
}

/// E.g. `HighCpu on web-1: CPU at 97%`, the alert's title in Opsgenie.
fn message(n: &Notification, a: &AlertInfo) -> String {
    let mut out = String::new();
    if n.event == Event::Test {
        out.push_str("[TEST] ");
    }
    out.push_str(a.alertname());
    if let Some(host) = a.host() {
        out.push_str(&format!(" on {host}"));
    }
    if a.summary() != a.alertname() {
        out.push_str(&format!(": {}", a.summary()));
    }
    text::cut(out.trim(), MESSAGE_LIMIT)
}

/// The alert's line, its other annotations and the links back to Sysward.
fn description(n: &Notification, a: &AlertInfo) -> String {
    let mut out = format!("{}\n", text::alert_line(a));
    for (key, value) in &a.annotations {
        if key != "summary" {
            out.push_str(&format!("\n{key}: {value}"));
        }
    }
    out.push_str(&format!("\n\nAlert in Sysward: {}", a.generator_url));
    if let Some(url) = &n.ack_url {
        out.push_str(&format!("\nAcknowledge in Sysward: {url}"));
    }
    text::cut(&out, DESCRIPTION_LIMIT)
}

/// Opsgenie names a user by `username`, everything else by `name`; an id is an id.
fn responder(r: &Responder) -> Value {
    let field = match (&r.id, r.kind) {
        (Some(_), _) => "id",
        (None, ResponderKind::User) => "username",
        (None, _) => "name",
    };
    let value =
        r.id.as_ref()
            .or(r.name.as_ref())
            .cloned()
            .unwrap_or_default();
    json!({"type": r.kind.as_str(), field: value})
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_responders(list: &[Responder]) -> Result<(), String> {
    if list.len() > RESPONDERS_LIMIT {
        return Err(format!(
            "responders: Opsgenie takes at most {RESPONDERS_LIMIT}"
        ));
    }
    for (i, r) in list.iter().enumerate() {
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match (given(&r.name), given(&r.id)) {
            (true, false) | (false, true) => {}
            _ => return Err(format!("responders[{i}]: give either name or id")),
        }
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > TAGS_LIMIT {
        return Err(format!("tags: Opsgenie takes at most {TAGS_LIMIT}"));
    }
    match tags
        .iter()
        .find(|t| t.is_empty() || t.chars().count() > TAG_LIMIT)
    {
        Some(t) => Err(format!(
            "tags: {t:?} is empty or longer than {TAG_LIMIT} characters"
        )),
        None => Ok(()),
    }
}

fn not_prepared() -> SendError {
    SendError::Permanent("the channel was not prepared".to_string())
}

/// Sends every request, even after a failure, and reports the first failure: a retry sends
/// them all again, which the aliases make harmless.
async fn send_all(ctx: &Context, requests: &[HttpRequest]) -> Result<Delivery, SendError> {
    let mut first_error = None;
    let mut last = None;
    for req in requests {
        match http::send(ctx, req).await {
            Ok(d) => last = Some(d),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(match last {
        Some(d) if requests.len() > 1 => Delivery {
            answer: format!("{} requests; the last answer: {}", requests.len(), d.answer),
            ..d
        },
        Some(d) => d,
        // An acknowledgement of a group whose alerts all resolved meanwhile: nothing to do.
        None => Delivery {
            status: 0,
            answer: "no request to send".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(fingerprint: &str, labels: &[(&str, &str)]) -> AlertInfo {
        AlertInfo {
            fingerprint: fingerprint.to_string(),
            status: Status::Firing,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at_ms: 1_780_000_000_000,
            ends_at_ms: None,
            value: None,
            generator_url: "https://sysward.example/rules/x".to_string(),
        }
    }

    fn notification(event: Event) -> Notification {
        Notification {
            id: "n1".to_string(),
            group_key: "g".to_string(),
            receiver: "ops".to_string(),
            event,
            status: Status::Firing,
            alerts: vec![],
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: "https://sysward.example".to_string(),
            ack_url: Some("https://sysward.example/ack/t".to_string()),
            custom: Default::default(),
            created_ms: 1_780_000_000_000,
        }
    }

    #[test]
    fn path_segment_keeps_only_unreserved_characters() {
        assert_eq!(path_segment("sysward-a.b_c~d"), "sysward-a.b_c~d");
        assert_eq!(path_segment("a/b c?d#e%f"), "a%2Fb%20c%3Fd%23e%25f");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn priority_follows_severity() {
        assert_eq!(Priority::of(Severity::Critical), Priority::P1);
        assert_eq!(Priority::of(Severity::Warning), Priority::P3);
        assert_eq!(Priority::of(Severity::Info), Priority::P5);
    }

    #[test]
    fn responders_name_users_by_username() {
        let r = |kind, name: Option<&str>, id: Option<&str>| Responder {
            kind,
            name: name.map(str::to_string),
            id: id.map(str::to_string),
        };
        assert_eq!(
            responder(&r(ResponderKind::User, Some("ann@example.com"), None)),
            json!({"type": "user", "username": "ann@example.com"})
        );
        assert_eq!(
            responder(&r(ResponderKind::Team, Some("ops"), None)),
            json!({"type": "team", "name": "ops"})
        );
        assert_eq!(
            responder(&r(ResponderKind::Schedule, None, Some("4513b7ea"))),
            json!({"type": "schedule", "id": "4513b7ea"})
        );
        assert!(check_responders(&[r(ResponderKind::Team, None, None)]).is_err());
        assert!(check_responders(&[r(ResponderKind::Team, Some("a"), Some("b"))]).is_err());
    }

    #[test]
    fn message_and_alias_keep_to_the_limits() {
        let mut a = alert(&"f".repeat(600), &[("alertname", "Disk"), ("host", "db-1")]);
        a.annotations.insert("summary".into(), "x".repeat(500));
        let m = message(&notification(Event::Alerts), &a);
        assert!(m.starts_with("Disk on db-1: xxx"), "{m}");
        assert_eq!(m.chars().count(), MESSAGE_LIMIT);
        let long = alias(&a);
        assert!(long.len() <= ALIAS_LIMIT);
        assert_eq!(long, alias(&a.clone()));
        assert_eq!(alias(&alert("abc", &[])), "sysward-abc");
    }

    #[test]
    fn description_has_annotations_and_links() {
        let mut a = alert("f", &[("alertname", "Disk")]);
        a.annotations.insert("summary".into(), "full".into());
        a.annotations
            .insert("runbook_url".into(), "https://wiki/disk".into());
        let d = description(&notification(Event::Alerts), &a);
        assert!(d.starts_with("full (since "), "{d}");
        assert!(d.contains("\nrunbook_url: https://wiki/disk"), "{d}");
        assert!(!d.contains("summary:"), "{d}");
        assert!(
            d.contains("Alert in Sysward: https://sysward.example/rules/x"),
            "{d}"
        );
        assert!(
            d.contains("Acknowledge in Sysward: https://sysward.example/ack/t"),
            "{d}"
        );
    }

    #[test]
    fn tags_are_checked_against_opsgenie_limits() {
        assert!(check_tags(&["db".into()]).is_ok());
        assert!(check_tags(&["x".repeat(51)]).is_err());
        assert!(check_tags(&vec!["t".to_string(); 21]).is_err());
    }
}
