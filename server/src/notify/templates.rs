//! Receivers' own templates, rendered over Alertmanager's template data with Go's field
//! names, so that templates written for Alertmanager carry over. A template that fails to
//! render leaves the default wording, with a warning: a notification is never lost to a
//! template.

use serde_json::{Value, json};
use sysward_notify::{Notification, Status, message::CustomText, text::rfc3339};
use tracing::warn;

use super::plan::ReceiverTemplates;
use crate::rules::template::JsonTemplate;

/// Alertmanager's `template.Data`, with Sysward's `AckURL`, `Event` and `NotificationID`.
pub(super) fn data(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "Status": a.status.as_str(),
                "Labels": a.labels,
                "Annotations": a.annotations,
                "StartsAt": rfc3339(a.starts_at_ms),
                "EndsAt": a.ends_at_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "GeneratorURL": a.generator_url,
                "Fingerprint": a.fingerprint,
                "Value": a.value,
            })
        })
        .collect();
    json!({
        "Receiver": n.receiver,
        "Status": n.status.as_str(),
        "Alerts": alerts,
        "GroupLabels": n.group_labels,
        "CommonLabels": n.common_labels,
        "CommonAnnotations": n.common_annotations,
        "ExternalURL": n.external_url,
        "GroupKey": n.group_key,
        "AckURL": n.ack_url.clone().unwrap_or_default(),
        "Event": event_name(n),
        "NotificationID": n.id,
    })
}

fn event_name(n: &Notification) -> &'static str {
    use sysward_notify::Event::*;
    match n.event {
        Alerts if n.status == Status::Firing => "firing",
        Alerts => "resolved",
        Escalated { .. } => "escalated",
        Acknowledged { .. } => "acknowledged",
        Digest { .. } => "digest",
        Flapping => "flapping",
        Test => "test",
    }
}

pub(super) fn render(t: &ReceiverTemplates, n: &Notification) -> CustomText {
    let data = data(n);
    let one = |key: &str, t: &Option<JsonTemplate>| {
        let t = t.as_ref()?;
        t.render(&data)
            .map_err(|error| {
                warn!(receiver = n.receiver, template = key, %error, "Template failed; the default wording is used.");
            })
            .ok()
    };
    CustomText {
        title: one("title", &t.title),
        text: one("text", &t.text),
        body: one("body", &t.body),
    }
}
