//! One remote write request and what its answer means: 2xx is delivered; 5xx, 429 and
//! network errors are worth another try (after the receiver's `Retry-After` when it gives
//! one); any other status is final for that request, whose samples are dropped.

use std::time::Duration;

use reqwest::{StatusCode, header};

use super::config::{Auth, Target};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("Sysward/", env!("CARGO_PKG_VERSION"));

/// What became of a request that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try, after `after` when the receiver said how long to wait.
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The receiver refused the request for good (a 4xx other than 429).
    #[error("{0}")]
    Rejected(String),
}

/// One target's HTTP client and credentials.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
}

impl Sender {
    pub fn new(target: &Target) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(target.timeout)
            .connect_timeout(target.timeout)
            .user_agent(USER_AGENT)
            .pool_max_idle_per_host(target.shards);
        if let Some(pem) = &target.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("ca_file is not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("ca_file holds no certificate".into());
            }
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            http,
            url: target.url.clone(),
            auth: target.auth.clone(),
        })
    }

    /// Posts one snappy-compressed `WriteRequest`.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, sysward_promwire::CONTENT_TYPE)
            .header(header::CONTENT_ENCODING, sysward_promwire::CONTENT_ENCODING)
            .header(sysward_promwire::VERSION_HEADER, sysward_promwire::VERSION)
            .body(body);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        let response = request.send().await.map_err(|e| SendError::Retry {
            reason: network_error(&e),
            after: None,
        })?;
        let status = response.status();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        classify(status, after, &text)
    }
}

/// The outcome of an answer with `status`, its `Retry-After` and the start of its body.
pub fn classify(status: StatusCode, after: Option<Duration>, body: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let body = body.trim();
    let cut = body.char_indices().nth(256).map_or(body.len(), |(i, _)| i);
    let reason = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", &body[..cut])
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(SendError::Retry { reason, after })
    } else {
        Err(SendError::Rejected(reason))
    }
}

/// `Retry-After` in seconds; the HTTP-date form is read as absent (the backoff applies).
pub(super) fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    // At most five minutes: a receiver's mistake must not park a target for days.
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

/// A network error without the URL, which may carry a token in its query.
fn network_error(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff between `min` and `max`, doubled by each failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next try: the receiver's `Retry-After` when it is longer.
    pub fn wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        retry_after.map_or(wait, |after| after.max(wait))
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use sysward_tests::recorder::{Answer, Recorder};

    use super::*;
    use crate::remote_write::config::RemoteWriteConfig;

    fn target(url: &str, auth: Auth) -> Target {
        let config: RemoteWriteConfig =
            toml::from_str(&format!("url = {url:?}\ntimeout = \"2s\"\n")).unwrap();
        let mut t = config.resolve().unwrap();
        t.auth = auth;
        t
    }

    fn body() -> Vec<u8> {
        sysward_promwire::encode(&sysward_promwire::WriteRequest {
            timeseries: vec![sysward_promwire::TimeSeries {
                labels: vec![sysward_promwire::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![sysward_promwire::Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        })
    }

    #[tokio::test]
    async fn answers_are_sorted_into_delivered_retry_and_rejected() {
        let recorder = Recorder::start();
        recorder.script([
            Answer::status(500).body("overloaded"),
            Answer::status(429).header("Retry-After", "3"),
            Answer::status(503),
            Answer::status(400).body("out of order sample"),
            Answer::status(204),
        ]);
        let sender = Sender::new(&target(
            &format!("{}/api/v1/write", recorder.url),
            Auth::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        ))
        .unwrap();
        let e = sender.send(body()).await.unwrap_err();
        assert_eq!(
            e,
            SendError::Retry {
                reason: "HTTP 500 Internal Server Error: overloaded".into(),
                after: None
            }
        );
        let e = sender.send(body()).await.unwrap_err();
        assert!(
            matches!(e, SendError::Retry { after: Some(d), .. } if d == Duration::from_secs(3)),
            "{e:?}"
        );
        assert!(matches!(
            sender.send(body()).await,
            Err(SendError::Retry { .. })
        ));
        let e = sender.send(body()).await.unwrap_err();
        assert_eq!(
            e,
            SendError::Rejected("HTTP 400 Bad Request: out of order sample".into())
        );
        sender.send(body()).await.unwrap();
        // What arrived is remote write 1.0, field by field.
        let got = recorder.requests();
        assert_eq!(got.len(), 5);
        let r = &got[0];
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/api/v1/write")
        );
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), Some("snappy"));
        assert_eq!(r.header("x-prometheus-remote-write-version"), Some("0.1.0"));
        assert!(r.header("user-agent").unwrap().starts_with("Sysward/"));
        // "u:p" in base64.
        assert_eq!(r.header("authorization"), Some("Basic dTpw"));
        let decoded =
            sysward_promwire::decode(&r.body, &sysward_promwire::DecodeLimits::default()).unwrap();
        assert_eq!(decoded.timeseries[0].samples[0].timestamp, 1000);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_network_error_worth_a_retry() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sender = Sender::new(&target(
            &format!("http://127.0.0.1:{port}/api/v1/write?token=hidden"),
            Auth::Bearer("tok".into()),
        ))
        .unwrap();
        let e = sender.send(body()).await.unwrap_err();
        let SendError::Retry { reason, after } = e else {
            panic!("{e:?}")
        };
        assert_eq!(after, None);
        assert!(reason.starts_with("cannot connect"), "{reason}");
        assert!(!reason.contains("hidden"), "{reason}");
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_yields_to_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..4).map(|_| b.wait(None).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(b.wait(Some(Duration::from_secs(2))), Duration::from_secs(2));
        b.reset();
        assert_eq!(
            b.wait(Some(Duration::from_millis(1))),
            Duration::from_millis(100)
        );
    }
}
