//! Prometheus Alertmanager through its API v2: `POST /api/v2/alerts` with a JSON array of
//! alerts (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`), as documented at
//! <https://prometheus.io/docs/alerting/latest/alerts_api/> and in its OpenAPI specification.
//! Sysward's alerts become Alertmanager's, whose routes, silences and inhibitions take over.
//!
//! Like Prometheus, a firing alert is sent with `endsAt` a few minutes ahead, so that
//! Alertmanager resolves it by itself when Sysward stops re-sending (the server re-sends);
//! a resolved alert is sent with its resolution time.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AlertInfo, Context, Delivery, Event, Notification, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
    webhook::{BasicAuth, authorization, check_url, tag},
};

/// How long Alertmanager keeps a firing alert without news: four resend intervals, as
/// Prometheus does.
pub const FIRING_VALIDITY_MS: i64 = 4 * 60_000;

const ALERTS_PATH: &str = "/api/v2/alerts";

/// `[[notify.receivers.alertmanager]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://am:9093` (with its path prefix, if any).
    pub url: String,
    /// Sent as `Authorization: Bearer ...`.
    pub bearer_token: Option<Secret>,
    /// A file holding `bearer_token`.
    pub bearer_token_file: Option<PathBuf>,
    /// Instead of a bearer token.
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip)]
    authorization: Option<Secret>,
}

/// One alert as `postableAlert` of the API v2.
fn postable(a: &AlertInfo, created_ms: i64) -> Value {
    let ends_at = match a.status {
        Status::Firing => created_ms + FIRING_VALIDITY_MS,
        Status::Resolved => a.ends_at_ms.unwrap_or(created_ms),
    };
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": text::rfc3339(a.starts_at_ms),
        "endsAt": text::rfc3339(ends_at),
        "generatorURL": a.generator_url,
    })
}

/// The body for `n`: every alert of the group.
pub fn payload(n: &Notification) -> Value {
    Value::Array(n.alerts.iter().map(|a| postable(a, n.created_ms)).collect())
}

impl AlertmanagerConfig {
    /// `POST {url}/api/v2/alerts` for `n`.
    pub fn request(&self, n: &Notification) -> HttpRequest {
        let url = format!("{}{ALERTS_PATH}", self.url.trim_end_matches('/'));
        let mut req = tag(HttpRequest::json(url, &payload(n)), n);
        if let Some(auth) = &self.authorization {
            req = req.header("Authorization", auth.expose());
        }
        req
    }
}

impl Channel for AlertmanagerConfig {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn prepare(&mut self) -> Result<(), String> {
        check_url(&self.url, "url")?;
        self.authorization = authorization(
            &self.bearer_token,
            &self.bearer_token_file,
            self.basic_auth.as_ref(),
        )?;
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            if let Event::Acknowledged { .. } = n.event {
                // Alertmanager has no acknowledgement; a silence would be a different thing.
                return Ok(Delivery {
                    status: 0,
                    answer: "nothing sent: Alertmanager has no acknowledgement".to_string(),
                });
            }
            http::send(ctx, &self.request(n)).await
        })
    }

    fn wants_acknowledgements(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixtures::*;

    fn config(v: Value) -> AlertmanagerConfig {
        let mut c: AlertmanagerConfig = serde_json::from_value(v).expect("config");
        c.prepare().expect("prepare");
        c
    }

    #[test]
    fn firing_alerts_end_four_minutes_ahead_resolved_at_their_end() {
        let n = notification(vec![
            alert("HighCpu", "web-1", "critical"),
            resolve(alert("HighCpu", "web-2", "critical")),
        ]);
        let p = payload(&n);
        let alerts = p.as_array().expect("array");
        assert_eq!(alerts.len(), 2);
        let first = alerts[0].as_object().expect("object");
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "annotations",
                "endsAt",
                "generatorURL",
                "labels",
                "startsAt"
            ]
        );
        assert_eq!(first["labels"]["alertname"], "HighCpu");
        assert_eq!(first["startsAt"], "2026-12-04T09:30:00Z");
        // created at 09:31, plus four minutes.
        assert_eq!(first["endsAt"], "2026-12-04T09:35:00Z");
        assert_eq!(alerts[1]["endsAt"], "2026-12-04T09:40:00Z");
    }

    #[test]
    fn request_path_and_auth() {
        let c = config(json!({"url": "http://am:9093/prefix/", "bearer_token": "s3cr3t-am"}));
        let req = c.request(&notification(vec![]));
        assert_eq!(req.url, "http://am:9093/prefix/api/v2/alerts");
        assert!(
            req.headers
                .contains(&("Authorization".to_string(), "Bearer s3cr3t-am".to_string()))
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!c.wants_acknowledgements());
        let mut bad: AlertmanagerConfig =
            serde_json::from_value(json!({"url": "am:9093"})).expect("config");
        assert!(bad.prepare().expect_err("no scheme").starts_with("url "));
    }
}
