//! The default wording every channel shares: a title, one line per alert, times.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{AlertInfo, Event, Notification, Status};

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-04T09:30:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// E.g. `[FIRING:2] HighCpu (web-1)`, `[RESOLVED] HighCpu`, `[ACK by ann] HighCpu`.
pub fn title(n: &Notification) -> String {
    if let Some(t) = &n.custom.title {
        return t.clone();
    }
    let name = n
        .common_labels
        .get("alertname")
        .cloned()
        .or_else(|| n.alerts.first().map(|a| a.alertname().to_string()))
        .unwrap_or_else(|| "alerts".to_string());
    let scope = n
        .common_labels
        .get("instance")
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let firing = n.firing().count();
    let head = match (&n.event, n.status) {
        (Event::Test, _) => "[TEST]".to_string(),
        (Event::Acknowledged { by }, _) => format!("[ACK by {by}]"),
        (Event::Flapping, _) => "[FLAPPING]".to_string(),
        (Event::Escalated { step }, _) => format!("[ESCALATED:{step}] [FIRING:{firing}]"),
        (_, Status::Firing) => format!("[FIRING:{firing}]"),
        (_, Status::Resolved) => "[RESOLVED]".to_string(),
    };
    format!("{head} {name}{scope}")
}

/// One line for an alert: `web-1: CPU at 97% (value 97.2, since 2026-12-04T09:30:00Z)`.
pub fn alert_line(a: &AlertInfo) -> String {
    let host = a.host().map(|h| format!("{h}: ")).unwrap_or_default();
    let value = a
        .value
        .map(|v| format!("value {}, ", number(v)))
        .unwrap_or_default();
    let when = match (a.status, a.ends_at_ms) {
        (Status::Resolved, Some(end)) => format!("resolved {}", rfc3339(end)),
        _ => format!("since {}", rfc3339(a.starts_at_ms)),
    };
    format!("{host}{} ({value}{when})", a.summary())
}

/// The plain-text body: the title's news, each alert's line with its runbook, and links.
pub fn plain_body(n: &Notification) -> String {
    if let Some(t) = &n.custom.text {
        return t.clone();
    }
    let mut out = String::new();
    if let Event::Digest { held } = n.event {
        out.push_str(&format!(
            "{held} messages were held by the frequency limit.\n\n"
        ));
    }
    for (label, list) in [
        ("Firing", n.firing().collect::<Vec<_>>()),
        ("Resolved", n.resolved().collect()),
    ] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{label}:\n"));
        for a in list {
            out.push_str(&format!("- {}\n", alert_line(a)));
            for key in ["description", "runbook_url", "dashboard_url"] {
                if let Some(v) = a.annotations.get(key).filter(|v| *v != a.summary()) {
                    out.push_str(&format!("  {key}: {v}\n"));
                }
            }
        }
    }
    if let Some(url) = &n.ack_url {
        out.push_str(&format!("\nAcknowledge: {url}\n"));
    }
    out.push_str(&format!("Alerts: {}/api/v1/alerts\n", n.external_url));
    out
}

/// A number as operators read it: no trailing zeros, at most 4 decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// At most `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
