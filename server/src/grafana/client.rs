//! The few calls of Grafana's HTTP API the sync makes, as Grafana documents them
//! (`docs/sources/developers/http_api/`: `other.md` for health, `data_source.md`,
//! `folder.md`, `dashboard.md`). Every authenticated call sends the service account token
//! as `Authorization: Bearer KEY`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sysward_notify::http::network_error;

/// Time one call to Grafana may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest part of an error answer kept.
const ANSWER_LIMIT: usize = 300;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum CallError {
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("cannot reach Grafana: {0}")]
    Unreachable(String),
    /// 401 or 403: the key is unknown, expired, or lacks a permission.
    #[error("Grafana refused the API key on {what}: HTTP {status}: {answer}")]
    KeyRefused {
        what: &'static str,
        status: u16,
        answer: String,
    },
    /// Any other answer that is not what the API documents.
    #[error("Grafana answered {what} with HTTP {status}: {answer}")]
    Status {
        what: &'static str,
        status: u16,
        answer: String,
    },
    /// A 2xx answer whose body is not what the API documents.
    #[error("Grafana's answer to {what} is not as documented: {why}")]
    Answer { what: &'static str, why: String },
    /// The client could not be made (a bad CA file).
    #[error("{0}")]
    Setup(String),
}

/// A Grafana at a base URL, reached with one key.
pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// What `GET /api/health` tells.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Health {
    pub(super) version: String,
    pub(super) database: String,
}

/// A datasource as Grafana keeps it: its numeric id and uid.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Datasource {
    pub(super) id: i64,
    pub(super) uid: String,
}

impl Client {
    /// A client for `base` (trailing `/` removed) trusting `ca_pem` when given, the
    /// system's roots otherwise.
    pub(super) fn new(base: &str, key: String, ca_pem: Option<&[u8]>) -> Result<Client, CallError> {
        let mut builder = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .user_agent(concat!("Sysward/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| CallError::Setup(format!("[grafana] ca_file: {e}")))?;
            if certs.is_empty() {
                return Err(CallError::Setup(
                    "[grafana] ca_file holds no PEM certificate".into(),
                ));
            }
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CallError::Setup(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// `GET /api/health` (no key needed): Grafana's version and its database's state.
    pub(super) async fn health(&self) -> Result<Health, CallError> {
        let what = "GET /api/health";
        let (status, body) = self.call(Method::GET, "/api/health", None, false).await?;
        let body = expect_ok(what, status, body)?;
        let version = body["version"].as_str().unwrap_or_default().to_string();
        if version.is_empty() {
            return Err(CallError::Answer {
                what,
                why: "no \"version\"".into(),
            });
        }
        Ok(Health {
            version,
            database: body["database"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// `GET /api/datasources/name/:name`: the datasource, or `None` on 404.
    pub(super) async fn datasource_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Datasource>, CallError> {
        let what = "GET /api/datasources/name/:name";
        let path = format!("/api/datasources/name/{}", path_segment(name));
        let (status, body) = self.call(Method::GET, &path, None, true).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = expect_ok(what, status, body)?;
        datasource_of(what, &body).map(Some)
    }

    /// `POST /api/datasources`; the answer holds the new datasource under `datasource`.
    pub(super) async fn create_datasource(&self, body: &Value) -> Result<Datasource, CallError> {
        let what = "POST /api/datasources";
        let (status, answer) = self
            .call(Method::POST, "/api/datasources", Some(body), true)
            .await?;
        let answer = expect_ok(what, status, answer)?;
        datasource_of(what, &answer["datasource"])
    }

    /// `PUT /api/datasources/uid/:uid`.
    pub(super) async fn update_datasource(&self, uid: &str, body: &Value) -> Result<(), CallError> {
        let what = "PUT /api/datasources/uid/:uid";
        let path = format!("/api/datasources/uid/{}", path_segment(uid));
        let (status, answer) = self.call(Method::PUT, &path, Some(body), true).await?;
        expect_ok(what, status, answer).map(|_| ())
    }

    /// `GET /api/folders?limit=1000` then, when no folder has `title`, `POST
    /// /api/folders` with `uid` and `title`: the folder's uid.
    pub(super) async fn ensure_folder(&self, title: &str, uid: &str) -> Result<String, CallError> {
        let what = "GET /api/folders";
        let (status, body) = self
            .call(Method::GET, "/api/folders?limit=1000", None, true)
            .await?;
        let body = expect_ok(what, status, body)?;
        let list = body.as_array().ok_or_else(|| CallError::Answer {
            what,
            why: "not a list".into(),
        })?;
        if let Some(found) = list.iter().find(|f| f["title"] == title) {
            return uid_of(what, found);
        }
        let what = "POST /api/folders";
        let request = json!({ "uid": uid, "title": title });
        let (status, body) = self
            .call(Method::POST, "/api/folders", Some(&request), true)
            .await?;
        let body = expect_ok(what, status, body)?;
        uid_of(what, &body)
    }

    /// `POST /api/dashboards/db` with `overwrite: true` into the folder.
    pub(super) async fn upload_dashboard(
        &self,
        dashboard: &Value,
        folder_uid: &str,
    ) -> Result<(), CallError> {
        let what = "POST /api/dashboards/db";
        let request = json!({
            "dashboard": dashboard,
            "folderUid": folder_uid,
            "overwrite": true,
            "message": concat!("Provisioned by Sysward ", env!("CARGO_PKG_VERSION")),
        });
        let (status, body) = self
            .call(Method::POST, "/api/dashboards/db", Some(&request), true)
            .await?;
        expect_ok(what, status, body).map(|_| ())
    }

    /// One request; the status and the body (JSON, or the text as a JSON string).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        authenticated: bool,
    ) -> Result<(StatusCode, Value), CallError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "application/json");
        if authenticated {
            request = request.bearer_auth(&self.key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Unreachable(network_error(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Unreachable(network_error(e)))?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }
}

/// The body of a 2xx answer; 401/403 as a refused key; anything else as an error with
/// Grafana's `message`.
fn expect_ok(what: &'static str, status: StatusCode, body: Value) -> Result<Value, CallError> {
    if status.is_success() {
        return Ok(body);
    }
    let answer = short(&body);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(CallError::KeyRefused {
            what,
            status: status.as_u16(),
            answer,
        });
    }
    Err(CallError::Status {
        what,
        status: status.as_u16(),
        answer,
    })
}

fn datasource_of(what: &'static str, body: &Value) -> Result<Datasource, CallError> {
    let id = body["id"].as_i64().ok_or_else(|| CallError::Answer {
        what,
        why: "no numeric \"id\"".into(),
    })?;
    Ok(Datasource {
        id,
        uid: uid_of(what, body)?,
    })
}

fn uid_of(what: &'static str, body: &Value) -> Result<String, CallError> {
    body["uid"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| CallError::Answer {
            what,
            why: "no \"uid\"".into(),
        })
}

/// Grafana's `message` when the answer has one, else the text, cut short.
fn short(body: &Value) -> String {
    let text = match body {
        Value::String(s) => s.trim().to_string(),
        other => other["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    };
    match text.char_indices().nth(ANSWER_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `text` escaped as one path segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_and_messages_kept() {
        let refused = expect_ok(
            "x",
            StatusCode::UNAUTHORIZED,
            json!({"message": "invalid API key"}),
        );
        assert_eq!(
            refused,
            Err(CallError::KeyRefused {
                what: "x",
                status: 401,
                answer: "invalid API key".into()
            })
        );
        let other = expect_ok("x", StatusCode::BAD_GATEWAY, json!("upstream down\n"));
        assert!(
            matches!(other, Err(CallError::Status { status: 502, ref answer, .. }) if answer == "upstream down"),
            "{other:?}"
        );
        assert_eq!(path_segment("My DS/1"), "My%20DS%2F1");
        let long = "é".repeat(400);
        assert_eq!(short(&json!(long)).chars().count(), ANSWER_LIMIT + 1);
    }

    proptest::proptest! {
        /// Any status with any body (text or JSON) sorts into a value or an error.
        #[test]
        fn any_answer_is_sorted_without_panic(status in 100u16..600, text in "\\PC{0,400}") {
            let status = StatusCode::from_u16(status).unwrap();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let _ = expect_ok("x", status, body.clone());
            let _ = datasource_of("x", &body);
            let _ = short(&body);
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let err = Client::new("http://g", "k".into(), Some(b"not a pem")).err();
        assert!(matches!(err, Some(CallError::Setup(_))), "{err:?}");
    }
}
