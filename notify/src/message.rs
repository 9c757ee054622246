//! What the notifier hands a channel: one alert group's news for one receiver.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Firing while any alert of the group fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Why this notification is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// New or changed alerts in the group, or a repeat while it still fires.
    Alerts,
    /// A later escalation step (1 is the first step after the initial one).
    Escalated { step: usize },
    /// Someone acknowledged the group in Sysward.
    Acknowledged { by: String },
    /// The frequency limit held `held` messages for this receiver; this one sums them up.
    Digest { held: usize },
    /// The group's alerts flap: held until they settle.
    Flapping,
    /// `sysward-server notify test RECEIVER`.
    Test,
}

impl Event {
    /// Its name in headers, the history and templates' `.Event`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Alerts => "alerts",
            Event::Escalated { .. } => "escalated",
            Event::Acknowledged { .. } => "acknowledged",
            Event::Digest { .. } => "digest",
            Event::Flapping => "flapping",
            Event::Test => "test",
        }
    }
}

/// The alert's severity from its `severity` label: what chat colours and pager urgency follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn of(labels: &BTreeMap<String, String>) -> Severity {
        match labels.get("severity").map(|s| s.to_ascii_lowercase()) {
            Some(s)
                if matches!(
                    s.as_str(),
                    "critical" | "page" | "error" | "fatal" | "emergency"
                ) =>
            {
                Severity::Critical
            }
            Some(s) if matches!(s.as_str(), "info" | "informational" | "none" | "low") => {
                Severity::Info
            }
            _ => Severity::Warning,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert of the group, as it stands when the notification is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// A stable hash of the alert's labels: PagerDuty's `dedup_key` and Opsgenie's alias
    /// derive from it, so that a resent notification is one incident there.
    pub fingerprint: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix ms since when the alert is active.
    pub starts_at_ms: i64,
    /// Unix ms of the resolution; `None` while it fires.
    pub ends_at_ms: Option<i64>,
    /// The rule's value at the last evaluation.
    pub value: Option<f64>,
    /// A link to the alert's expression on the server.
    pub generator_url: String,
}

impl AlertInfo {
    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The host the alert is about: `instance`, else `host`, else `agent_id`.
    pub fn host(&self) -> Option<&str> {
        ["instance", "host", "agent_id"]
            .iter()
            .find_map(|k| self.labels.get(*k))
            .map(String::as_str)
    }

    /// `summary`, else `description`, else the alert's name.
    pub fn summary(&self) -> &str {
        self.annotations
            .get("summary")
            .or_else(|| self.annotations.get("description"))
            .map(String::as_str)
            .unwrap_or_else(|| self.alertname())
    }
}

/// One alert group's news for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The same on a resend after a crash: services that deduplicate use it or keys derived
    /// from the alerts' fingerprints.
    pub id: String,
    /// The group's key (route and group labels), stable over the group's life.
    pub group_key: String,
    pub receiver: String,
    pub event: Event,
    pub status: Status,
    pub alerts: Vec<AlertInfo>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    /// Where operators reach the server, without a trailing slash.
    pub external_url: String,
    /// A signed link that acknowledges the group, while it fires.
    pub ack_url: Option<String>,
    /// Text rendered from the receiver's own templates, replacing the defaults.
    #[serde(default)]
    pub custom: CustomText,
    /// Unix ms when the notification was made.
    pub created_ms: i64,
}

/// Operators' templates, already rendered by the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomText {
    pub title: Option<String>,
    pub text: Option<String>,
    /// The whole request body of a webhook.
    pub body: Option<String>,
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &AlertInfo> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &AlertInfo> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }

    /// The highest severity among the firing alerts (among all when none fires).
    pub fn severity(&self) -> Severity {
        let firing = self.firing().map(|a| Severity::of(&a.labels)).max();
        firing
            .or_else(|| self.alerts.iter().map(|a| Severity::of(&a.labels)).max())
            .unwrap_or(Severity::Warning)
    }
}
