//! PagerDuty through its Events API v2 (`POST /v2/enqueue`, as PagerDuty's "Send an Alert
//! Event" documents it): one event per alert of the notification. Each alert's `dedup_key`
//! derives from its fingerprint, so that a resent notification, a repeat and the later
//! resolve all land on the same PagerDuty alert. Firing alerts `trigger`, resolved ones
//! `resolve`, and an acknowledgement in Sysward `acknowledge`s every firing alert.
//! PagerDuty answers 202 `{"status":"success",...}`; 429 (its rate limit) and 5xx are worth
//! a retry, 400 (an invalid event) is not.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    AlertInfo, Context, Delivery, Event, Notification, SendError, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
};

/// PagerDuty's own endpoint for Events API v2.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty's limits on the fields Sysward fills from free text.
const SUMMARY_LIMIT: usize = 1024;
const DEDUP_KEY_LIMIT: usize = 255;

/// `[[notify.receivers.pagerduty]]`: one Events API v2 integration (a service or a ruleset).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// The integration key of the service's "Events API v2" integration.
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// A file holding the integration key, instead of `routing_key`.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// The Events API endpoint (a proxy, or a test server).
    #[serde(default = "default_url")]
    pub url: String,
    /// The payload's `source`; by default the alert's host, else `sysward`.
    #[serde(default)]
    pub source: Option<String>,
    /// The payload's `component`, e.g. `database`.
    #[serde(default)]
    pub component: Option<String>,
    /// The payload's `group`, e.g. `prod-datapipe`.
    #[serde(default)]
    pub group: Option<String>,
    /// The payload's `class`; by default the alert's name.
    #[serde(default)]
    pub class: Option<String>,
    /// A fixed severity for every event, instead of the alerts' `severity` labels.
    #[serde(default)]
    pub severity: Option<PdSeverity>,
    /// The key `prepare` settled on, from either setting.
    #[serde(skip)]
    key: Option<Secret>,
}

/// The severities PagerDuty knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdSeverity {
    Critical,
    Error,
    Warning,
    Info,
}

impl PdSeverity {
    fn as_str(self) -> &'static str {
        match self {
            PdSeverity::Critical => "critical",
            PdSeverity::Error => "error",
            PdSeverity::Warning => "warning",
            PdSeverity::Info => "info",
        }
    }

    /// The alert's `severity` label when it is one of PagerDuty's words, else Sysward's
    /// reading of it (which knows `page`, `fatal`, `none` and the like).
    fn of(alert: &AlertInfo) -> PdSeverity {
        let label = alert.labels.get("severity").map(|s| s.to_ascii_lowercase());
        match label.as_deref() {
            Some("critical") => PdSeverity::Critical,
            Some("error") => PdSeverity::Error,
            Some("warning") => PdSeverity::Warning,
            Some("info") => PdSeverity::Info,
            _ => match crate::Severity::of(&alert.labels) {
                crate::Severity::Critical => PdSeverity::Critical,
                crate::Severity::Warning => PdSeverity::Warning,
                crate::Severity::Info => PdSeverity::Info,
            },
        }
    }
}

fn default_url() -> String {
    DEFAULT_URL.to_string()
}

/// What one event does to PagerDuty's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }
}

impl Channel for PagerdutyConfig {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let key = Secret::pick(
            self.routing_key.clone(),
            self.routing_key_file.as_deref(),
            "routing_key",
            true,
        )?;
        crate::webhook::check_url(&self.url, "url")?;
        for (name, value) in [
            ("source", &self.source),
            ("component", &self.component),
            ("group", &self.group),
            ("class", &self.class),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("{name} is empty: leave it out for the default"));
            }
        }
        self.key = key;
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let key = self.key.as_ref().ok_or_else(not_prepared)?;
            let events = self.events(key, n);
            send_all(ctx, &self.url, &events).await
        })
    }
}

impl PagerdutyConfig {
    /// Every event the notification makes, in the alerts' order.
    fn events(&self, key: &Secret, n: &Notification) -> Vec<Value> {
        n.alerts
            .iter()
            .filter_map(|a| {
                let action = action(&n.event, a.status)?;
                Some(match action {
                    Action::Trigger => self.trigger(key, n, a),
                    _ => follow_up(key, action, a),
                })
            })
            .collect()
    }

    fn trigger(&self, key: &Secret, n: &Notification, a: &AlertInfo) -> Value {
        let mut payload = Map::new();
        payload.insert("summary".into(), summary(n, a).into());
        payload.insert("source".into(), self.source(a).into());
        let severity = self.severity.unwrap_or_else(|| PdSeverity::of(a));
        payload.insert("severity".into(), severity.as_str().into());
        payload.insert("timestamp".into(), text::rfc3339(a.starts_at_ms).into());
        let class = self
            .class
            .clone()
            .unwrap_or_else(|| a.alertname().to_string());
        for (name, value) in [
            ("component", self.component.clone()),
            ("group", self.group.clone()),
            ("class", Some(class).filter(|c| !c.is_empty())),
        ] {
            if let Some(v) = value {
                payload.insert(name.into(), v.into());
            }
        }
        payload.insert("custom_details".into(), custom_details(a));
        json!({
            "routing_key": key.expose(),
            "event_action": Action::Trigger.as_str(),
            "dedup_key": dedup_key(a),
            "payload": payload,
            "links": links(a),
            "client": "Sysward",
            "client_url": n.external_url,
        })
    }

    fn source(&self, a: &AlertInfo) -> String {
        self.source
            .clone()
            .or_else(|| a.host().map(str::to_string))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "sysward".to_string())
    }
}

/// The event for one alert, or none: an acknowledgement concerns only what still fires.
fn action(event: &Event, status: Status) -> Option<Action> {
    match (event, status) {
        (Event::Acknowledged { .. }, Status::Firing) => Some(Action::Acknowledge),
        (Event::Acknowledged { .. }, Status::Resolved) => None,
        (_, Status::Firing) => Some(Action::Trigger),
        (_, Status::Resolved) => Some(Action::Resolve),
    }
}

/// `acknowledge` and `resolve` carry only the key: PagerDuty ignores a payload on them.
fn follow_up(key: &Secret, action: Action, a: &AlertInfo) -> Value {
    json!({
        "routing_key": key.expose(),
        "event_action": action.as_str(),
        "dedup_key": dedup_key(a),
    })
}

/// `sysward-` and the fingerprint; a fingerprint too long for PagerDuty's 255 characters is
/// hashed instead, still the same for every send of the same alert.
pub fn dedup_key(a: &AlertInfo) -> String {
    let key = format!("sysward-{}", a.fingerprint);
    if key.len() <= DEDUP_KEY_LIMIT {
        return key;
    }
    use sha2::Digest;
    format!(
        "sysward-{}",
        hex::encode(sha2::Sha256::digest(a.fingerprint.as_bytes()))
    )
}

/// E.g. `HighCpu on web-1: CPU at 97%`, what PagerDuty shows as the alert's title.
fn summary(n: &Notification, a: &AlertInfo) -> String {
    let mut out = String::new();
    if n.event == Event::Test {
        out.push_str("[TEST] ");
    }
    out.push_str(a.alertname());
    if let Some(host) = a.host() {
        out.push_str(&format!(" on {host}"));
    }
    let summary = a.summary();
    if summary != a.alertname() {
        out.push_str(&format!(": {summary}"));
    }
    text::cut(out.trim(), SUMMARY_LIMIT)
}

fn custom_details(a: &AlertInfo) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "value": a.value.filter(|v| v.is_finite()),
    })
}

/// The runbook and dashboard from the annotations, and the alert on the server.
fn links(a: &AlertInfo) -> Value {
    let mut out = Vec::new();
    for (key, label) in [("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")] {
        if let Some(href) = a.annotations.get(key).filter(|h| is_web_link(h)) {
            out.push(json!({"href": href, "text": label}));
        }
    }
    if is_web_link(&a.generator_url) {
        out.push(json!({"href": a.generator_url, "text": "Alert in Sysward"}));
    }
    Value::Array(out)
}

/// PagerDuty rejects the whole event for a link it cannot use.
fn is_web_link(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

fn not_prepared() -> SendError {
    SendError::Permanent("the channel was not prepared".to_string())
}

/// Sends every event, even after a failure, and reports the first failure: a retry sends
/// them all again, which the dedup keys make harmless.
async fn send_all(ctx: &Context, url: &str, events: &[Value]) -> Result<Delivery, SendError> {
    let mut first_error = None;
    let mut last = None;
    for event in events {
        match http::send(ctx, &HttpRequest::json(url, event)).await {
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
        Some(d) if events.len() > 1 => Delivery {
            answer: format!("{} events; the last answer: {}", events.len(), d.answer),
            ..d
        },
        Some(d) => d,
        // An acknowledgement of a group whose alerts all resolved meanwhile: nothing to do.
        None => Delivery {
            status: 0,
            answer: "no event to send".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(fingerprint: &str, status: Status, labels: &[(&str, &str)]) -> AlertInfo {
        AlertInfo {
            fingerprint: fingerprint.to_string(),
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at_ms: 1_780_000_000_000,
            ends_at_ms: None,
            value: Some(97.25),
            generator_url: "https://sysward.example/rules/x".to_string(),
        }
    }

    fn notification(event: Event, alerts: Vec<AlertInfo>) -> Notification {
        Notification {
            id: "n1".to_string(),
            group_key: "g".to_string(),
            receiver: "ops".to_string(),
            event,
            status: Status::Firing,
            alerts,
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: "https://sysward.example".to_string(),
            ack_url: None,
            custom: Default::default(),
            created_ms: 1_780_000_000_000,
        }
    }

    #[test]
    fn severity_keeps_pagerduty_words_and_maps_the_rest() {
        let of = |s: &str| PdSeverity::of(&alert("f", Status::Firing, &[("severity", s)]));
        assert_eq!(of("error"), PdSeverity::Error);
        assert_eq!(of("Critical"), PdSeverity::Critical);
        assert_eq!(of("page"), PdSeverity::Critical);
        assert_eq!(of("none"), PdSeverity::Info);
        assert_eq!(of("whatever"), PdSeverity::Warning);
        assert_eq!(
            PdSeverity::of(&alert("f", Status::Firing, &[])),
            PdSeverity::Warning
        );
    }

    #[test]
    fn dedup_key_is_the_fingerprint_or_its_hash_when_too_long() {
        let short = alert("abc", Status::Firing, &[]);
        assert_eq!(dedup_key(&short), "sysward-abc");
        let long = alert(&"x".repeat(300), Status::Firing, &[]);
        let key = dedup_key(&long);
        assert!(key.len() <= DEDUP_KEY_LIMIT, "{key}");
        assert_eq!(key, dedup_key(&long.clone()));
        assert_ne!(
            key,
            dedup_key(&alert(&"y".repeat(300), Status::Firing, &[]))
        );
    }

    #[test]
    fn summary_names_alert_and_host_and_is_cut_to_the_limit() {
        let mut a = alert(
            "f",
            Status::Firing,
            &[("alertname", "HighCpu"), ("instance", "web-1")],
        );
        let n = notification(Event::Alerts, vec![]);
        assert_eq!(summary(&n, &a), "HighCpu on web-1");
        a.annotations.insert("summary".into(), "CPU at 97%".into());
        assert_eq!(summary(&n, &a), "HighCpu on web-1: CPU at 97%");
        let test = notification(Event::Test, vec![]);
        assert_eq!(summary(&test, &a), "[TEST] HighCpu on web-1: CPU at 97%");
        a.annotations.insert("summary".into(), "é".repeat(2000));
        assert_eq!(summary(&n, &a).chars().count(), SUMMARY_LIMIT);
    }

    #[test]
    fn acknowledgement_skips_resolved_alerts() {
        let ack = Event::Acknowledged { by: "ann".into() };
        assert_eq!(action(&ack, Status::Firing), Some(Action::Acknowledge));
        assert_eq!(action(&ack, Status::Resolved), None);
        assert_eq!(
            action(&Event::Alerts, Status::Resolved),
            Some(Action::Resolve)
        );
        assert_eq!(
            action(&Event::Flapping, Status::Firing),
            Some(Action::Trigger)
        );
    }

    #[test]
    fn links_leave_out_what_is_not_a_web_link() {
        let mut a = alert("f", Status::Firing, &[]);
        a.annotations
            .insert("runbook_url".into(), "https://wiki/run".into());
        a.annotations
            .insert("dashboard_url".into(), "see the board".into());
        let links = links(&a);
        let hrefs: Vec<_> = links
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["href"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            hrefs,
            ["https://wiki/run", "https://sysward.example/rules/x"]
        );
    }

    #[test]
    fn events_follow_the_alerts_and_the_event() {
        let cfg: PagerdutyConfig =
            serde_json::from_value(json!({"routing_key": "k", "severity": "error"}))
                .expect("config");
        let key = Secret::new("k");
        let n = notification(
            Event::Alerts,
            vec![
                alert("a", Status::Firing, &[("severity", "info")]),
                alert("b", Status::Resolved, &[]),
            ],
        );
        let events = cfg.events(&key, &n);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event_action"], "trigger");
        assert_eq!(events[0]["payload"]["severity"], "error");
        assert_eq!(events[0]["payload"]["source"], "sysward");
        assert_eq!(events[0]["payload"]["custom_details"]["value"], 97.25);
        assert_eq!(
            events[1],
            json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "sysward-b"})
        );
    }
}
