//! Sending a rendered request and reading the service's answer: what is worth a retry
//! (network errors, timeouts, 5xx, 429 with the service's own wait) and what is not.

use std::time::Duration;

use reqwest::{Method, StatusCode, header::HeaderMap};

/// What a channel sends over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    /// Besides `Content-Type` and `User-Agent`.
    pub headers: Vec<(String, String)>,
    pub content_type: std::borrow::Cow<'static, str>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        HttpRequest {
            method: Method::POST,
            url: url.into(),
            headers: Vec::new(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What sending needs: one HTTP client for every channel, and the time a service gets.
#[derive(Debug, Clone)]
pub struct Context {
    pub http: reqwest::Client,
    pub timeout: Duration,
}

impl Context {
    pub fn new(timeout: Duration) -> Result<Context, SendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Sysward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent(format!("cannot make an HTTP client: {e}")))?;
        Ok(Context { http, timeout })
    }
}

/// The service took the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The HTTP status, or the SMTP reply code.
    pub status: u16,
    /// The start of the service's answer, for the history and `notify test`.
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth another try: after `after` when the service said how long to wait.
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Another try would get the same answer (a refused URL, a bad token, a bad body).
    #[error("{0}")]
    Permanent(String),
}

/// The longest part of an answer kept.
const ANSWER_LIMIT: usize = 512;

/// Sends `req` and sorts the answer: 2xx is a delivery; 429 and 5xx (and 408) are worth a
/// retry, after `Retry-After` when given; other statuses are permanent.
pub async fn send(ctx: &Context, req: &HttpRequest) -> Result<Delivery, SendError> {
    let mut builder = ctx
        .http
        .request(req.method.clone(), &req.url)
        .header(reqwest::header::CONTENT_TYPE, req.content_type.as_ref())
        .body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| SendError::Retry {
        reason: network_error(e),
        after: None,
    })?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let answer = answer_text(&body);
    classify(status, retry_after, answer)
}

/// The outcome for `status`, given the answer's text and a `Retry-After` already read.
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    answer: String,
) -> Result<Delivery, SendError> {
    if status.is_success() {
        return Ok(Delivery {
            status: status.as_u16(),
            answer,
        });
    }
    let reason = if answer.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {answer}")
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Retry {
            reason,
            after: retry_after,
        })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these services and read as
/// absent: the outbox's own backoff applies).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The answer as text, cut to a size the history can keep.
pub fn answer_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ANSWER_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A network error without the URL reqwest puts in it: webhook URLs carry their keys (and
/// the server's Grafana client's URLs their tokens).
pub fn network_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        format!("cannot connect: {}", source_chain(&e))
    } else {
        source_chain(&e)
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
