//! Any HTTP endpoint. The default body is Alertmanager's webhook payload, version 4, exactly as
//! documented for `webhook_config` (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>),
//! so that receivers written for Alertmanager take Sysward's notifications unchanged. What v4
//! has no key for travels in headers: [`ID_HEADER`] and [`EVENT_HEADER`].
//!
//! This module also holds what the other HTTP channels share: secrets given inline or as
//! files, URL checks, authorization and the Sysward headers.

use std::{collections::BTreeMap, path::PathBuf};

use base64::Engine;
use reqwest::{
    Method, Url,
    header::{HeaderName, HeaderValue},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AlertInfo, Context, Event, Notification, SendError, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
};

/// Carries [`Notification::id`], the same on a resend: receivers deduplicate with it.
pub const ID_HEADER: &str = "X-Sysward-Notification-Id";

/// Why the notification is sent (`alerts`, `escalated`, `acknowledged`, `digest`, `flapping`,
/// `test`): v4 has no key for it, and an acknowledgement would otherwise look like a repeat.
pub const EVENT_HEADER: &str = "X-Sysward-Event";

/// Go's zero `time.Time`, which Alertmanager writes as the `endsAt` of firing alerts.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Headers the channel sets itself.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

/// The HTTP method of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum WebhookMethod {
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "PUT", alias = "put")]
    Put,
}

/// `[[notify.receivers.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint; a secret, as such URLs often carry a key.
    pub url: Option<Secret>,
    /// A file holding `url`.
    pub url_file: Option<PathBuf>,
    /// `POST` (the default) or `PUT`.
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra request headers. Their values are kept as secrets: API keys travel in them.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Sent as `Authorization: Bearer ...`.
    pub bearer_token: Option<Secret>,
    /// A file holding `bearer_token`.
    pub bearer_token_file: Option<PathBuf>,
    /// Instead of a bearer token.
    pub basic_auth: Option<BasicAuth>,
    /// At most this many alerts in the default body (0: all); v4's `truncatedAlerts` counts
    /// the rest.
    #[serde(default)]
    pub max_alerts: usize,
    /// The `Content-Type` of a body rendered from the receiver's template (default
    /// `application/json`).
    pub content_type: Option<String>,
    #[serde(skip)]
    ready: Option<Ready>,
}

/// What [`Channel::prepare`] worked out: secrets read and headers checked.
#[derive(Debug)]
struct Ready {
    url: Secret,
    headers: Vec<(String, Secret)>,
    content_type: String,
}

/// HTTP basic authentication.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    /// Required, inline or as a file.
    pub password: Option<Secret>,
    /// A file holding `password`.
    pub password_file: Option<PathBuf>,
}

impl BasicAuth {
    /// The `Authorization` value.
    fn header(&self) -> Result<Secret, String> {
        if self.username.is_empty() || self.username.contains(':') {
            // RFC 7617: the first colon ends the user-id.
            return Err("basic_auth.username must be non-empty and without ':'".to_string());
        }
        let password = pick(
            &self.password,
            &self.password_file,
            "basic_auth.password",
            true,
        )?
        .unwrap_or_default();
        let pair = format!("{}:{}", self.username, password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Ok(Secret::new(format!("Basic {encoded}")))
    }
}

/// [`Secret::pick`], with the key named when the file cannot be read.
pub(crate) fn pick(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    name: &str,
    required: bool,
) -> Result<Option<Secret>, String> {
    Secret::pick(inline.clone(), file.as_deref(), name, required).map_err(|e| {
        if inline.is_none() && file.is_some() {
            format!("{name}_file: {e}")
        } else {
            e
        }
    })
}

/// Checks that `url` is an http(s) URL. The error never quotes the URL: it may hold a key.
pub(crate) fn check_url(url: &str, key: &str) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|e| format!("{key} is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        _ => Err(format!("{key} must be an http or https URL")),
    }
}

/// The `Authorization` value from a bearer token or basic auth (not both).
pub(crate) fn authorization(
    bearer_token: &Option<Secret>,
    bearer_token_file: &Option<PathBuf>,
    basic_auth: Option<&BasicAuth>,
) -> Result<Option<Secret>, String> {
    let bearer = pick(bearer_token, bearer_token_file, "bearer_token", false)?;
    match (bearer, basic_auth) {
        (Some(_), Some(_)) => Err("give either bearer_token or basic_auth, not both".to_string()),
        (Some(token), None) => Ok(Some(Secret::new(format!("Bearer {}", token.expose())))),
        (None, Some(basic)) => basic.header().map(Some),
        (None, None) => Ok(None),
    }
}

/// The event's name in [`EVENT_HEADER`].
pub fn event_name(event: &Event) -> &'static str {
    event.name()
}

/// A chat service's `webhook_url` (or `webhook_url_file`), required and checked.
pub(crate) fn chat_webhook_url(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Secret, String> {
    let url = pick(inline, file, "webhook_url", true)?.unwrap_or_default();
    check_url(url.expose(), "webhook_url")?;
    Ok(url)
}

/// Adds Sysward's headers, which services that do not know them ignore.
pub(crate) fn tag(req: HttpRequest, n: &Notification) -> HttpRequest {
    req.header(ID_HEADER, n.id.clone())
        .header(EVENT_HEADER, event_name(&n.event))
}

/// Alertmanager's webhook payload, version 4, with at most `max_alerts` alerts (0: all).
pub fn v4_payload(n: &Notification, max_alerts: usize) -> Value {
    let keep = if max_alerts == 0 {
        n.alerts.len()
    } else {
        max_alerts.min(n.alerts.len())
    };
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.alerts.len() - keep,
        "status": n.status.as_str(),
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "commonAnnotations": n.common_annotations,
        "externalURL": n.external_url,
        "alerts": n.alerts[..keep].iter().map(v4_alert).collect::<Vec<_>>(),
    })
}

fn v4_alert(a: &AlertInfo) -> Value {
    let ends_at = match (a.status, a.ends_at_ms) {
        (Status::Resolved, Some(end)) => text::rfc3339(end),
        _ => ZERO_TIME.to_string(),
    };
    json!({
        "status": a.status.as_str(),
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": text::rfc3339(a.starts_at_ms),
        "endsAt": ends_at,
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
    })
}

fn check_headers(
    headers: &BTreeMap<String, Secret>,
    has_auth: bool,
) -> Result<Vec<(String, Secret)>, String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
        let lower = parsed.as_str();
        if RESERVED_HEADERS.contains(&lower) {
            return Err(format!(
                "headers: {name} is set by Sysward (see content_type)"
            ));
        }
        if has_auth && lower == "authorization" {
            return Err(format!(
                "headers: {name} conflicts with bearer_token or basic_auth"
            ));
        }
        HeaderValue::from_str(value.expose())
            .map_err(|_| format!("headers: the value of {name} is not a valid header value"))?;
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

impl WebhookConfig {
    /// The request for `n`, once prepared.
    pub fn request(&self, n: &Notification) -> Result<HttpRequest, SendError> {
        let ready = self
            .ready
            .as_ref()
            .ok_or_else(|| SendError::Permanent("webhook: not prepared".to_string()))?;
        let (body, content_type): (Vec<u8>, std::borrow::Cow<'static, str>) = match &n.custom.body {
            Some(body) => (body.clone().into_bytes(), ready.content_type.clone().into()),
            None => {
                let payload = v4_payload(n, self.max_alerts);
                (
                    serde_json::to_vec(&payload).unwrap_or_default(),
                    "application/json".into(),
                )
            }
        };
        let method = match self.method {
            WebhookMethod::Post => Method::POST,
            WebhookMethod::Put => Method::PUT,
        };
        let mut req = HttpRequest {
            method,
            url: ready.url.expose().to_string(),
            headers: Vec::new(),
            content_type,
            body,
        };
        for (name, value) in &ready.headers {
            req = req.header(name, value.expose());
        }
        Ok(tag(req, n))
    }
}

impl Channel for WebhookConfig {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let url = pick(&self.url, &self.url_file, "url", true)?.unwrap_or_default();
        check_url(url.expose(), "url")?;
        let auth = authorization(
            &self.bearer_token,
            &self.bearer_token_file,
            self.basic_auth.as_ref(),
        )?;
        let mut headers = check_headers(&self.headers, auth.is_some())?;
        headers.extend(auth.map(|a| ("Authorization".to_string(), a)));
        let content_type = match self.content_type.as_deref() {
            None => "application/json".to_string(),
            Some(t) if HeaderValue::from_str(t).is_ok() && !t.trim().is_empty() => t.to_string(),
            Some(_) => return Err("content_type is not a valid header value".to_string()),
        };
        self.ready = Some(Ready {
            url,
            headers,
            content_type,
        });
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move { http::send(ctx, &self.request(n)?).await })
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Notifications for the rendering tests of every channel.

    use std::collections::BTreeMap;

    use crate::{AlertInfo, Event, Notification, Status, message::CustomText};

    /// 2026-12-04T09:30:00Z.
    pub(crate) const T0: i64 = 1_796_376_600_000;

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A firing alert `name` on `host` with `severity`.
    pub(crate) fn alert(name: &str, host: &str, severity: &str) -> AlertInfo {
        AlertInfo {
            fingerprint: format!("fp-{name}-{host}"),
            status: Status::Firing,
            labels: labels(&[
                ("alertname", name),
                ("instance", host),
                ("severity", severity),
            ]),
            annotations: labels(&[
                ("summary", &format!("{name} on {host}")),
                ("runbook_url", "https://runbooks.example/cpu"),
            ]),
            starts_at_ms: T0,
            ends_at_ms: None,
            value: Some(97.25),
            generator_url: format!("https://sysward.example/rules/{name}"),
        }
    }

    pub(crate) fn resolve(mut a: AlertInfo) -> AlertInfo {
        a.status = Status::Resolved;
        a.ends_at_ms = Some(T0 + 600_000);
        a
    }

    /// A group of `alerts`, firing while any fires.
    pub(crate) fn notification(alerts: Vec<AlertInfo>) -> Notification {
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        Notification {
            id: "n-42".to_string(),
            group_key: "{}:{alertname=\"HighCpu\"}".to_string(),
            receiver: "ops".to_string(),
            event: Event::Alerts,
            status,
            alerts,
            group_labels: labels(&[("alertname", "HighCpu")]),
            common_labels: labels(&[("alertname", "HighCpu")]),
            common_annotations: labels(&[("dashboard_url", "https://grafana.example/d/cpu")]),
            external_url: "https://sysward.example".to_string(),
            ack_url: Some("https://sysward.example/ack/signed-token".to_string()),
            custom: CustomText::default(),
            created_ms: T0 + 60_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::*, *};

    fn config(toml_like: Value) -> WebhookConfig {
        let mut c: WebhookConfig = serde_json::from_value(toml_like).expect("config");
        c.prepare().expect("prepare");
        c
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn v4_has_exactly_alertmanagers_keys() {
        let n = notification(vec![
            alert("HighCpu", "web-1", "critical"),
            resolve(alert("HighCpu", "web-2", "critical")),
        ]);
        let p = v4_payload(&n, 0);
        assert_eq!(
            keys(&p),
            [
                "alerts",
                "commonAnnotations",
                "commonLabels",
                "externalURL",
                "groupKey",
                "groupLabels",
                "receiver",
                "status",
                "truncatedAlerts",
                "version"
            ]
        );
        assert_eq!(p["version"], "4");
        assert_eq!(p["truncatedAlerts"], 0);
        assert_eq!(p["status"], "firing");
        let a = &p["alerts"][0];
        assert_eq!(
            keys(a),
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["startsAt"], "2026-12-04T09:30:00Z");
        assert_eq!(p["alerts"][1]["status"], "resolved");
        assert_eq!(p["alerts"][1]["endsAt"], "2026-12-04T09:40:00Z");
    }

    #[test]
    fn max_alerts_truncates_and_counts() {
        let n = notification(vec![
            alert("A", "h1", "warning"),
            alert("B", "h2", "warning"),
            alert("C", "h3", "warning"),
        ]);
        let p = v4_payload(&n, 2);
        assert_eq!(p["alerts"].as_array().map(Vec::len), Some(2));
        assert_eq!(p["truncatedAlerts"], 1);
        assert_eq!(v4_payload(&n, 5)["truncatedAlerts"], 0);
    }

    #[test]
    fn custom_body_goes_with_its_content_type() {
        let c = config(json!({"url": "http://hook.example/x", "content_type": "text/plain"}));
        let mut n = notification(vec![alert("A", "h1", "warning")]);
        n.custom.body = Some("hello".to_string());
        let req = c.request(&n).expect("request");
        assert_eq!(req.body, b"hello");
        assert_eq!(req.content_type, "text/plain");
        n.custom.body = None;
        assert_eq!(
            c.request(&n).expect("request").content_type,
            "application/json"
        );
    }

    #[test]
    fn headers_and_auth() {
        let c = config(json!({
            "url": "http://hook.example/x",
            "method": "PUT",
            "headers": {"X-Api-Key": "k-123"},
            "basic_auth": {"username": "ann", "password": "pw"},
        }));
        let req = c.request(&notification(vec![])).expect("request");
        assert_eq!(req.method, Method::PUT);
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("X-Api-Key"), Some("k-123"));
        assert_eq!(header("Authorization"), Some("Basic YW5uOnB3"));
        assert_eq!(header(ID_HEADER), Some("n-42"));
        assert_eq!(header(EVENT_HEADER), Some("alerts"));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("k-123") && !debug.contains("YW5u"),
            "{debug}"
        );
    }

    #[test]
    fn prepare_names_the_key() {
        let err = |v: Value| {
            let mut c: WebhookConfig = serde_json::from_value(v).expect("config");
            c.prepare().expect_err("must fail")
        };
        assert!(err(json!({})).contains("url or url_file"));
        assert!(err(json!({"url": "ftp://x/"})).contains("url must be"));
        let both = err(json!({"url": "http://x/", "bearer_token": "t",
            "basic_auth": {"username": "u", "password": "p"}}));
        assert!(both.contains("bearer_token or basic_auth"), "{both}");
        let missing = err(json!({"url": "http://x/", "bearer_token_file": "/nonexistent/t"}));
        assert!(missing.starts_with("bearer_token_file: "), "{missing}");
        let header = err(json!({"url": "http://x/", "headers": {"Content-Type": "a/b"}}));
        assert!(header.contains("content_type"), "{header}");
        let secret_url = err(json!({"url": "http//secret-key"}));
        assert!(!secret_url.contains("secret-key"), "{secret_url}");
    }
}
