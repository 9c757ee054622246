//! `[[checks.http]]`: an HTTP(S) endpoint answers as expected, and how fast.
//!
//! ```toml
//! [[checks.http]]
//! name = "api-health"
//! url = "https://api.example.com/health"
//! method = "GET"                          # default GET; HEAD reads no body
//! headers = { Accept = "application/json" }
//! # body = '{"probe": true}'              # sent with Content-Length
//! auth = { type = "bearer", token_file = "/etc/sysward/api.token" }
//! # auth = { type = "basic", username = "monitor", password_env = "API_PASSWORD" }
//! expect_status = [200, "300-399"]        # default 200-399
//! expect_body = "ok"                      # substring
//! expect_body_regex = '"version":\s*"2\.'
//! expect_json = [{ pointer = "/status", equals = "ok" }]
//! warning_time = "500ms"                  # whole request, both optional
//! critical_time = "2s"
//! # ca_file = "/etc/sysward/internal-ca.pem"   # trust this CA instead of the system's
//! # insecure_skip_verify = false
//! follow_redirects = 0                    # default 0: a 3xx is the answer
//! min_host_interval = "1s"                # per host:port, across all checks
//! max_body = "1MiB"                       # read at most this much
//! ```
//!
//! The client is our own small HTTP/1.1 on std sockets and rustls (see `sysward_wire::http`), so
//! that every phase is timed on its own. Samples, each summed over redirects:
//! `sysward_check_http_dns_seconds`, `_connect_seconds`, `_tls_seconds` (HTTPS only),
//! `_first_byte_seconds` (request written to the first byte of the answer),
//! `_response_seconds` (all of it, the value `warning_time`/`critical_time` are compared
//! with), and of the final response `_status_code`, `_body_bytes`, `_redirects`.
//!
//! States: everything as expected OK; a connection, TLS or protocol failure, a timeout,
//! an unexpected status, a body or JSON mismatch: CRITICAL; a slow answer: WARNING or
//! CRITICAL by the limits; a secret that cannot be read, a CA file that cannot be used,
//! or no time left under the host's rate limit: UNKNOWN.
//!
//! Secrets: the password or token is read from its file (trailing line break dropped) or
//! environment variable at every run, so that a rotated secret is picked up; it goes into
//! the `Authorization` header and nowhere else. Any occurrence of it in the check's
//! output (a server echoing it in a body excerpt) is replaced by `***`. On a redirect to
//! another scheme, host or port the header is not sent.
//!
//! Rate limit: all http checks of the agent share one table of the last request per
//! `host:port`; a request waits until `min_host_interval` has passed since the previous
//! one to that host (by any check), so that many checks of one API never hammer it. A run
//! whose turn would come after its deadline does not wait: it is UNKNOWN.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use regex::Regex;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde::Deserialize;

use super::net::{self, Deadline, DeadlineStream, NetError};
use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};
use sysward_wire::http::{self as http_wire, Response, Url, WireError};

/// Time spent resolving host names.
pub const DNS_SECONDS: &str = "sysward_check_http_dns_seconds";
/// Time spent connecting.
pub const CONNECT_SECONDS: &str = "sysward_check_http_connect_seconds";
/// Time spent in TLS handshakes.
pub const TLS_SECONDS: &str = "sysward_check_http_tls_seconds";
/// From the request written to the first byte of the response.
pub const FIRST_BYTE_SECONDS: &str = "sysward_check_http_first_byte_seconds";
/// The whole exchange, redirects included (rate-limit waits excluded).
pub const RESPONSE_SECONDS: &str = "sysward_check_http_response_seconds";
/// The final response's status code.
pub const STATUS_CODE: &str = "sysward_check_http_status_code";
/// Bytes of the final response's body that were read.
pub const BODY_BYTES: &str = "sysward_check_http_body_bytes";
/// Redirects followed.
pub const REDIRECTS: &str = "sysward_check_http_redirects";

const DEFAULT_MAX_BODY: u64 = 1 << 20;
const MAX_MAX_BODY: u64 = 64 << 20;
const MAX_REDIRECTS: u32 = 10;
const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(1);
/// The longest secret file read.
const MAX_SECRET: u64 = 64 * 1024;

/// One `[[checks.http]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckConfig {
    /// Unique on the host; the `check` label.
    pub name: String,
    /// Its own interval (else its tier's).
    #[serde(default, deserialize_with = "super::duration")]
    pub interval: Option<Duration>,
    /// Its tier (default critical).
    #[serde(default, deserialize_with = "super::tier")]
    pub tier: Option<Tier>,
    /// Deadline of one run.
    #[serde(default, deserialize_with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Consecutive non-OK results before a state is hard (default 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Credentials sent in the `Authorization` header.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Status codes that are OK: numbers and `"lo-hi"` ranges (default `200-399`).
    #[serde(default)]
    pub expect_status: Option<Vec<StatusSpec>>,
    /// A substring the body must contain.
    #[serde(default)]
    pub expect_body: Option<String>,
    /// A regular expression the body must match.
    #[serde(default)]
    pub expect_body_regex: Option<String>,
    /// Values the JSON body must have at JSON pointers (RFC 6901).
    #[serde(default)]
    pub expect_json: Vec<JsonExpect>,
    /// A response time from which the check is WARNING.
    #[serde(default, deserialize_with = "super::duration")]
    pub warning_time: Option<Duration>,
    /// A response time from which the check is CRITICAL.
    #[serde(default, deserialize_with = "super::duration")]
    pub critical_time: Option<Duration>,
    /// Trust the CAs in this PEM file instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (the handshake itself is still checked).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Redirects to follow (default 0: a redirect is the answer).
    #[serde(default)]
    pub follow_redirects: u32,
    /// Least time between two requests to one `host:port`, across all checks (default
    /// 1s; `"0s"` turns it off for this check).
    #[serde(default, deserialize_with = "super::duration")]
    pub min_host_interval: Option<Duration>,
    /// Most body bytes read (default 1 MiB); the rest is not read.
    #[serde(default, deserialize_with = "net::size")]
    pub max_body: Option<u64>,
}

/// Credentials, the secret from a file or an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user name (not secret).
        username: String,
        /// A file holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
        /// An environment variable holding the password.
        #[serde(default)]
        password_env: Option<String>,
    },
    /// `Authorization: Bearer token`.
    Bearer {
        /// A file holding the token.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// An environment variable holding the token.
        #[serde(default)]
        token_env: Option<String>,
    },
}

/// An expected status: a code or a `"lo-hi"` range.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// `"200-299"`, or one code as text.
    Range(String),
}

/// A value the JSON body must have at a pointer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    /// RFC 6901 pointer: `/status`, `/items/0/name`.
    pub pointer: String,
    /// The value (numbers compare by value: 1 equals 1.0).
    pub equals: serde_json::Value,
}

pub(crate) fn build(c: &HttpCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let url = Url::parse(&c.url).map_err(|e| format!("url: {e}"))?;
    let method = c.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    if !http_wire::is_token(&method) {
        return Err(format!("method: {method:?} is not an HTTP method"));
    }
    let mut headers = Vec::new();
    for (name, value) in &c.headers {
        if !http_wire::is_token(name) {
            return Err(format!("headers: {name:?} is not a header name"));
        }
        if !http_wire::is_header_value(value) {
            return Err(format!(
                "headers: the value of {name} has a line break or control byte"
            ));
        }
        if name.eq_ignore_ascii_case("authorization") && c.auth.is_some() {
            return Err("headers: Authorization is set by auth; set one of them".into());
        }
        headers.push((name.clone(), value.clone()));
    }
    let auth = c.auth.as_ref().map(Auth::from_config).transpose()?;
    let statuses = match &c.expect_status {
        None => vec![(200, 399)],
        Some(list) if list.is_empty() => return Err("expect_status: empty".into()),
        Some(list) => list.iter().map(parse_status).collect::<Result<_, _>>()?,
    };
    let expect_body_regex = c
        .expect_body_regex
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| format!("expect_body_regex: {e}"))?;
    for j in &c.expect_json {
        if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
            return Err(format!(
                "expect_json: pointer {:?} must be empty or start with '/'",
                j.pointer
            ));
        }
    }
    net::check_order("time", c.warning_time, c.critical_time)?;
    if c.insecure_skip_verify && c.ca_file.is_some() {
        return Err("ca_file and insecure_skip_verify contradict each other".into());
    }
    if let Some(path) = &c.ca_file
        && !path.is_absolute()
    {
        return Err(format!(
            "ca_file: {} is not an absolute path",
            path.display()
        ));
    }
    if c.follow_redirects > MAX_REDIRECTS {
        return Err(format!("follow_redirects: at most {MAX_REDIRECTS}"));
    }
    let max_body = c.max_body.unwrap_or(DEFAULT_MAX_BODY);
    if max_body > MAX_MAX_BODY {
        return Err("max_body: at most 64MiB".into());
    }
    let probe = HttpProbe {
        url,
        method,
        headers,
        body: c.body.clone().unwrap_or_default().into_bytes(),
        auth,
        statuses,
        expect_body: c.expect_body.clone(),
        expect_body_regex,
        expect_json: c
            .expect_json
            .iter()
            .map(|j| (j.pointer.clone(), j.equals.clone()))
            .collect(),
        warning_time: c.warning_time,
        critical_time: c.critical_time,
        ca_file: c.ca_file.clone(),
        insecure: c.insecure_skip_verify,
        tls_config: None,
        follow_redirects: c.follow_redirects,
        min_host_interval: c.min_host_interval.unwrap_or(DEFAULT_HOST_INTERVAL),
        max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
    };
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

fn parse_status(spec: &StatusSpec) -> Result<(u16, u16), String> {
    let bad = |what: &str| {
        format!("expect_status: {what:?} is not a status code or range (e.g. 200, \"200-299\")")
    };
    let code = |text: &str| -> Result<u16, String> {
        match text.trim().parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Ok(c),
            _ => Err(bad(text)),
        }
    };
    let (lo, hi) = match spec {
        StatusSpec::Code(c) => (code(&c.to_string())?, code(&c.to_string())?),
        StatusSpec::Range(text) => match text.split_once('-') {
            Some((lo, hi)) => (code(lo)?, code(hi)?),
            None => (code(text)?, code(text)?),
        },
    };
    if lo > hi {
        return Err(format!("expect_status: {lo}-{hi} is an empty range"));
    }
    Ok((lo, hi))
}

/// Where a secret comes from.
#[derive(Debug, Clone)]
enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    fn from_config(
        what: &str,
        file: &Option<PathBuf>,
        env: &Option<String>,
    ) -> Result<Self, String> {
        match (file, env) {
            (Some(path), None) if path.is_absolute() => Ok(SecretSource::File(path.clone())),
            (Some(path), None) => Err(format!(
                "auth: {what}_file {} is not an absolute path",
                path.display()
            )),
            (None, Some(name)) if !name.is_empty() && !name.contains('=') => {
                Ok(SecretSource::Env(name.clone()))
            }
            (None, Some(name)) => Err(format!("auth: {what}_env {name:?} is not a variable name")),
            _ => Err(format!(
                "auth: set exactly one of {what}_file and {what}_env"
            )),
        }
    }

    /// Reads it: without the trailing line break; refused if empty or with control bytes
    /// (which would break the header). Errors never quote the secret.
    fn read(&self, what: &str) -> Result<String, String> {
        let text = match self {
            SecretSource::File(path) => {
                let mut text = String::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_SECRET).read_to_string(&mut text))
                    .map_err(|e| {
                        format!(
                            "cannot read the {what} file {}: {}",
                            path.display(),
                            net::io_text(&e)
                        )
                    })?;
                text
            }
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("the {what} variable {name} is not set (or not UTF-8)"))?,
        };
        let secret = text.trim_end_matches(['\r', '\n']).to_string();
        if secret.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        if secret.bytes().any(|b| b.is_ascii_control()) {
            return Err(format!("the {what} holds a control character"));
        }
        Ok(secret)
    }
}

#[derive(Debug, Clone)]
enum Auth {
    Basic {
        username: String,
        password: SecretSource,
    },
    Bearer(SecretSource),
}

impl Auth {
    fn from_config(c: &AuthConfig) -> Result<Self, String> {
        match c {
            AuthConfig::Basic {
                username,
                password_file,
                password_env,
            } => {
                if username.contains(':') || !http_wire::is_header_value(username) {
                    return Err("auth: username must not hold ':' or control bytes".into());
                }
                Ok(Auth::Basic {
                    username: username.clone(),
                    password: SecretSource::from_config("password", password_file, password_env)?,
                })
            }
            AuthConfig::Bearer {
                token_file,
                token_env,
            } => Ok(Auth::Bearer(SecretSource::from_config(
                "token", token_file, token_env,
            )?)),
        }
    }

    /// The header value, and every string that must not show in output.
    fn header(&self) -> Result<(String, Vec<String>), String> {
        match self {
            Auth::Basic { username, password } => {
                let password = password.read("password")?;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Ok((format!("Basic {encoded}"), vec![password, encoded]))
            }
            Auth::Bearer(source) => {
                let token = source.read("token")?;
                Ok((format!("Bearer {token}"), vec![token]))
            }
        }
    }
}

/// The last request (or reserved slot) per `host:port`, shared by every http check.
static LAST_REQUEST: Mutex<BTreeMap<(String, u16), Instant>> = Mutex::new(BTreeMap::new());

/// Reserves the next slot for `host:port` at least `min` after the last one. Returns when
/// the request may go; `Err(when)` without reserving if that is after `latest`.
fn reserve(host: &str, port: u16, min: Duration, latest: Instant) -> Result<Instant, Instant> {
    let now = Instant::now();
    if min.is_zero() {
        return Ok(now);
    }
    let mut table = LAST_REQUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (host.to_string(), port);
    let slot = match table.get(&key) {
        Some(last) => (*last + min).max(now),
        None => now,
    };
    if slot > latest {
        return Err(slot);
    }
    table.insert(key, slot);
    // Hosts not asked for in a while need no entry.
    if table.len() > 1024 {
        table.retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(3600));
    }
    Ok(slot)
}

/// A built http check.
struct HttpProbe {
    url: Url,
    method: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    auth: Option<Auth>,
    statuses: Vec<(u16, u16)>,
    expect_body: Option<String>,
    expect_body_regex: Option<Regex>,
    expect_json: Vec<(String, serde_json::Value)>,
    warning_time: Option<Duration>,
    critical_time: Option<Duration>,
    ca_file: Option<PathBuf>,
    insecure: bool,
    /// Built at the first HTTPS request and kept.
    tls_config: Option<Arc<ClientConfig>>,
    follow_redirects: u32,
    min_host_interval: Duration,
    max_body: usize,
}

/// Phase times, summed over the requests of one run.
#[derive(Debug, Default)]
struct Timings {
    dns: Option<Duration>,
    connect: Option<Duration>,
    tls: Option<Duration>,
    first_byte: Option<Duration>,
    /// Request time, rate-limit waits excluded.
    total: Duration,
}

fn add(slot: &mut Option<Duration>, d: Duration) {
    *slot = Some(slot.unwrap_or_default() + d);
}

/// Why a run ended without a final response.
#[derive(Debug)]
enum Failure {
    /// The endpoint failed: CRITICAL.
    Net(NetError),
    /// Our side could not make the request: UNKNOWN.
    Setup(String),
}

impl From<NetError> for Failure {
    fn from(e: NetError) -> Self {
        Failure::Net(e)
    }
}

/// The final response of a run.
struct Fetched {
    response: Response,
    url: Url,
    redirects: u32,
}

impl Probe for HttpProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Deadline::after(timeout);
        let (auth_header, secrets) = match self.auth.as_ref().map(Auth::header).transpose() {
            Ok(Some((header, secrets))) => (Some(header), secrets),
            Ok(None) => (None, Vec::new()),
            Err(e) => return ProbeResult::new(CheckState::Unknown, format!("auth: {e}")),
        };
        let mut timings = Timings::default();
        let fetched = self.fetch(&deadline, auth_header.as_deref(), &mut timings);
        let mut result = match fetched {
            Ok(f) => self.evaluate(&f, &timings),
            Err(Failure::Net(e)) => ProbeResult::new(CheckState::Critical, e.to_string()),
            Err(Failure::Setup(e)) => ProbeResult::new(CheckState::Unknown, e),
        };
        let mut samples = Vec::new();
        let mut gauge = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                samples.push(Sample::new(name, Kind::Gauge, v));
            }
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        gauge(DNS_SECONDS, secs(timings.dns));
        gauge(CONNECT_SECONDS, secs(timings.connect));
        gauge(TLS_SECONDS, secs(timings.tls));
        gauge(FIRST_BYTE_SECONDS, secs(timings.first_byte));
        if timings.first_byte.is_some() {
            gauge(RESPONSE_SECONDS, Some(timings.total.as_secs_f64()));
        }
        result.samples.extend(samples);
        result.output = redact(&result.output, &secrets);
        result.long_output = redact(&result.long_output, &secrets);
        result
    }
}

impl HttpProbe {
    fn fetch(
        &mut self,
        deadline: &Deadline,
        auth: Option<&str>,
        timings: &mut Timings,
    ) -> Result<Fetched, Failure> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        let mut auth = auth.map(str::to_string);
        let mut redirects = 0;
        loop {
            self.wait_turn(&url, deadline)?;
            let started = Instant::now();
            let response = self.exchange(&url, &method, &body, auth.as_deref(), deadline, timings);
            timings.total += started.elapsed();
            let response = response?;
            let location = response.header("location").map(str::to_string);
            match location {
                Some(location)
                    if matches!(response.status, 301 | 302 | 303 | 307 | 308)
                        && redirects < self.follow_redirects =>
                {
                    let next = url
                        .join(&location)
                        .map_err(|e| Failure::Net(NetError::Other(e)))?;
                    if next.origin() != url.origin() {
                        auth = None;
                    }
                    let to_get = response.status == 303
                        || (matches!(response.status, 301 | 302) && method == "POST");
                    if to_get && method != "HEAD" {
                        method = "GET".into();
                        body.clear();
                    }
                    url = next;
                    redirects += 1;
                }
                _ => {
                    return Ok(Fetched {
                        response,
                        url,
                        redirects,
                    });
                }
            }
        }
    }

    /// Waits for this host's turn under the shared rate limit.
    fn wait_turn(&self, url: &Url, deadline: &Deadline) -> Result<(), Failure> {
        match reserve(&url.host, url.port, self.min_host_interval, deadline.end()) {
            Ok(at) => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                Ok(())
            }
            Err(at) => Err(Failure::Setup(format!(
                "rate limit: the next request to {}:{} may go in {}, after this run's deadline (min_host_interval {})",
                url.host,
                url.port,
                net::secs(at.saturating_duration_since(Instant::now())),
                net::secs(self.min_host_interval)
            ))),
        }
    }

    fn client_config(&mut self) -> Result<Arc<ClientConfig>, Failure> {
        if let Some(config) = &self.tls_config {
            return Ok(config.clone());
        }
        let roots = if self.insecure {
            None
        } else {
            Some(net::roots(self.ca_file.as_deref()).map_err(Failure::Setup)?)
        };
        let config = net::client_config(roots, &[b"http/1.1"]).map_err(Failure::Setup)?;
        self.tls_config = Some(config.clone());
        Ok(config)
    }

    fn exchange(
        &mut self,
        url: &Url,
        method: &str,
        body: &[u8],
        auth: Option<&str>,
        deadline: &Deadline,
        timings: &mut Timings,
    ) -> Result<Response, Failure> {
        let (addrs, dns) = net::resolve(&url.host, url.port, deadline)?;
        add(&mut timings.dns, dns);
        let (tcp, _addr, connect) = net::connect(&addrs, deadline)?;
        add(&mut timings.connect, connect);
        let mut headers = self.headers.clone();
        if let Some(value) = auth {
            headers.push(("Authorization".into(), value.to_string()));
        }
        let request = http_wire::request(method, url, &headers, body);
        let mut stream = DeadlineStream::new(tcp, deadline);
        let head_only = method == "HEAD";
        if !url.tls {
            return Ok(self.send(&mut stream, &request, head_only, deadline, timings)?);
        }
        let config = self.client_config()?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| Failure::Setup(format!("{:?} is not a TLS server name", url.host)))?;
        let mut conn = ClientConnection::new(config, name)
            .map_err(|e| Failure::Setup(format!("TLS setup: {e}")))?;
        let started = Instant::now();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut stream) {
                return Err(Failure::Net(tls_failure(&url.host, e, deadline)));
            }
        }
        add(&mut timings.tls, started.elapsed());
        let mut tls = StreamOwned::new(conn, stream);
        Ok(self.send(&mut tls, &request, head_only, deadline, timings)?)
    }

    fn send<S: Read + Write>(
        &self,
        stream: &mut S,
        request: &[u8],
        head_only: bool,
        deadline: &Deadline,
        timings: &mut Timings,
    ) -> Result<Response, NetError> {
        stream
            .write_all(request)
            .and_then(|()| stream.flush())
            .map_err(|e| NetError::io("sending the request", e, deadline))?;
        let sent = Instant::now();
        let (response, first) = http_wire::read_response(stream, head_only, self.max_body)
            .map_err(|e| match e {
                WireError::Io(io) => match rustls_error(&io) {
                    Some(tls) => NetError::Other(format!("TLS: {}", net::tls_error_text(tls))),
                    None => NetError::io("reading the response", io, deadline),
                },
                WireError::Malformed(m) => NetError::Other(format!("malformed response: {m}")),
            })?;
        if let Some(first) = first {
            add(
                &mut timings.first_byte,
                first.saturating_duration_since(sent),
            );
        }
        Ok(response)
    }

    fn evaluate(&self, f: &Fetched, timings: &Timings) -> ProbeResult {
        let r = &f.response;
        let mut problems: Vec<(CheckState, String)> = Vec::new();
        if !self
            .statuses
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&r.status))
        {
            problems.push((
                CheckState::Critical,
                format!("status {} (expected {})", r.status, self.status_text()),
            ));
        }
        let text = String::from_utf8_lossy(&r.body);
        let cut = if r.truncated {
            " (in the first max_body bytes)"
        } else {
            ""
        };
        if let Some(want) = &self.expect_body
            && !text.contains(want.as_str())
        {
            problems.push((
                CheckState::Critical,
                format!(
                    "body does not contain {want:?}{cut}; it starts {:?}",
                    net::excerpt(&r.body, 60)
                ),
            ));
        }
        if let Some(re) = &self.expect_body_regex
            && !re.is_match(&text)
        {
            problems.push((
                CheckState::Critical,
                format!(
                    "body does not match /{}/{cut}; it starts {:?}",
                    re.as_str(),
                    net::excerpt(&r.body, 60)
                ),
            ));
        }
        if !self.expect_json.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(&r.body) {
                Err(e) => {
                    problems.push((CheckState::Critical, format!("body is not JSON{cut}: {e}")))
                }
                Ok(json) => {
                    for (pointer, want) in &self.expect_json {
                        match json.pointer(pointer) {
                            None => problems.push((
                                CheckState::Critical,
                                format!("JSON {pointer:?} is absent"),
                            )),
                            Some(got) if !json_equal(got, want) => problems.push((
                                CheckState::Critical,
                                format!(
                                    "JSON {pointer:?} is {}, expected {}",
                                    short_json(got),
                                    short_json(want)
                                ),
                            )),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        let time_state = net::time_state(timings.total, self.warning_time, self.critical_time);
        if time_state != CheckState::Ok {
            let limit = if time_state == CheckState::Critical {
                self.critical_time
            } else {
                self.warning_time
            };
            problems.push((
                time_state,
                format!(
                    "response time {} at or past {}",
                    net::secs(timings.total),
                    net::secs(limit.unwrap_or_default())
                ),
            ));
        }
        let summary = format!(
            "HTTP {} {}, {} bytes{} in {}",
            r.status,
            r.reason,
            r.body.len(),
            if r.truncated { " (cut)" } else { "" },
            net::secs(timings.total)
        );
        let state = problems
            .iter()
            .fold(CheckState::Ok, |s, (p, _)| net::worse(s, *p));
        let output = if problems.is_empty() {
            summary
        } else {
            let list: Vec<_> = problems.iter().map(|(_, m)| m.as_str()).collect();
            format!("{}; {summary}", list.join("; "))
        };
        let mut long = Vec::new();
        if f.redirects > 0 {
            long.push(format!("after {} redirect(s): {}", f.redirects, f.url));
        }
        let phase = |name: &str, d: Option<Duration>| d.map(|d| format!("{name} {}", net::secs(d)));
        let phases: Vec<_> = [
            phase("dns", timings.dns),
            phase("connect", timings.connect),
            phase("tls", timings.tls),
            phase("first byte", timings.first_byte),
        ]
        .into_iter()
        .flatten()
        .collect();
        long.push(phases.join(", "));
        let mut result = ProbeResult::new(state, output);
        result.long_output = long.join("\n");
        result.samples = vec![
            Sample::new(STATUS_CODE, Kind::Gauge, f64::from(r.status)),
            Sample::new(BODY_BYTES, Kind::Gauge, r.body.len() as f64),
            Sample::new(REDIRECTS, Kind::Gauge, f64::from(f.redirects)),
        ];
        result
    }

    fn status_text(&self) -> String {
        let parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        parts.join(", ")
    }
}

/// The rustls error inside an I/O error, if that is what it is.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn tls_failure(host: &str, e: std::io::Error, deadline: &Deadline) -> NetError {
    if net::is_timeout(&e) {
        return deadline.timed_out("in the TLS handshake");
    }
    let message = match rustls_error(&e) {
        Some(tls) => net::tls_error_text(tls),
        None => net::io_text(&e),
    };
    NetError::Tls {
        host: host.to_string(),
        message,
    }
}

/// JSON equality, numbers by value.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        _ => a == b,
    }
}

fn short_json(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// `text` with every secret replaced by `***`, longest first.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in sorted {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::test_support::{TestCa, TestServer, response};

    fn config(text: &str) -> HttpCheckConfig {
        toml::from_str(&format!("name = \"h\"\n{text}")).expect("config")
    }

    fn run(text: &str, timeout: Duration) -> ProbeResult {
        let (mut probe, _, _) = build(&config(text)).expect("build");
        probe.run(timeout)
    }

    fn sample(r: &ProbeResult, name: &str) -> Option<f64> {
        r.samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    fn plain(
        handler: impl Fn(&super::super::test_support::Request) -> Vec<u8> + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start(None, handler)
    }

    /// An HTTPS server with a certificate for localhost and 127.0.0.1 from a fresh CA,
    /// and that CA written to a file.
    fn https(
        handler: impl Fn(&super::super::test_support::Request) -> Vec<u8> + Send + Sync + 'static,
    ) -> (TestServer, TempDir, PathBuf) {
        let ca = TestCa::new("http test CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"], None);
        let dir = TempDir::new("http-ca");
        dir.write("ca.pem", ca.pem());
        let server = TestServer::start(Some(leaf.server_config()), handler);
        let path = dir.path().join("ca.pem");
        (server, dir, path)
    }

    #[test]
    fn https_with_the_test_ca_checks_status_body_and_json() {
        let (server, _dir, ca) = https(|_| {
            response(
                "200 OK",
                &[("Content-Type", "application/json")],
                r#"{"status":"ok","n":3,"items":[{"v":"2.1"}]}"#,
            )
        });
        let text = format!(
            "url = \"https://localhost:{}/health\"\nca_file = \"{}\"\nmin_host_interval = \"0s\"\n\
             expect_body = \"ok\"\nexpect_body_regex = '\"v\":\\s*\"2\\.'\n\
             expect_json = [{{ pointer = \"/status\", equals = \"ok\" }}, {{ pointer = \"/n\", equals = 3.0 }}]",
            server.port,
            ca.display()
        );
        let r = run(&text, Duration::from_secs(5));
        assert_eq!(r.state, CheckState::Ok, "{} / {}", r.output, r.long_output);
        assert!(
            r.output.starts_with("HTTP 200 OK, 43 bytes in "),
            "{}",
            r.output
        );
        for name in [
            DNS_SECONDS,
            CONNECT_SECONDS,
            TLS_SECONDS,
            FIRST_BYTE_SECONDS,
            RESPONSE_SECONDS,
        ] {
            assert!(
                sample(&r, name).is_some_and(|v| v >= 0.0),
                "{name} in {:?}",
                r.samples
            );
        }
        assert!(sample(&r, TLS_SECONDS).is_some_and(|v| v > 0.0));
        assert_eq!(sample(&r, STATUS_CODE), Some(200.0));
        assert_eq!(sample(&r, BODY_BYTES), Some(43.0));
        let req = &server.requests()[0];
        assert_eq!(req.line, "GET /health HTTP/1.1");
        assert_eq!(
            req.header("host"),
            Some(format!("localhost:{}", server.port).as_str())
        );

        // The same server by IP address: the certificate names it too.
        let by_ip = text.replace("https://localhost", "https://127.0.0.1");
        assert_eq!(run(&by_ip, Duration::from_secs(5)).state, CheckState::Ok);
    }

    #[test]
    fn an_untrusted_certificate_is_critical_and_gets_no_request() {
        let (server, _dir, _ca) = https(|_| response("200 OK", &[], "ok"));
        let url = format!(
            "url = \"https://localhost:{}/\"\nmin_host_interval = \"0s\"",
            server.port
        );
        let r = run(&url, Duration::from_secs(5));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(
            r.output.contains("TLS handshake with localhost failed"),
            "{}",
            r.output
        );
        assert!(r.output.contains("issuer unknown"), "{}", r.output);
        assert!(server.requests().is_empty());
        assert_eq!(sample(&r, STATUS_CODE), None);

        let other = TestCa::new("another CA");
        let dir = TempDir::new("http-other-ca");
        dir.write("other.pem", other.pem());
        let r = run(
            &format!(
                "{url}\nca_file = \"{}\"",
                dir.path().join("other.pem").display()
            ),
            Duration::from_secs(5),
        );
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);

        let r = run(
            &format!("{url}\ninsecure_skip_verify = true"),
            Duration::from_secs(5),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn a_wrong_host_name_is_critical() {
        let ca = TestCa::new("name CA");
        let leaf = ca.leaf(&["other.example"], None);
        let dir = TempDir::new("http-name");
        dir.write("ca.pem", ca.pem());
        let server = TestServer::start(Some(leaf.server_config()), |_| response("200 OK", &[], ""));
        let r = run(
            &format!(
                "url = \"https://localhost:{}/\"\nca_file = \"{}\"\nmin_host_interval = \"0s\"",
                server.port,
                dir.path().join("ca.pem").display()
            ),
            Duration::from_secs(5),
        );
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(r.output.contains("not valid for"), "{}", r.output);
    }

    #[test]
    fn unexpected_status_body_regex_and_json_are_critical() {
        let server = plain(|req| match req.path() {
            "/500" => response("500 Internal Server Error", &[], "boom"),
            "/json" => response("200 OK", &[], r#"{"status":"down","n":1}"#),
            "/404" => response("404 Not Found", &[], "gone"),
            _ => response("200 OK", &[], "plain text"),
        });
        let base = format!(
            "min_host_interval = \"0s\"\nurl = \"http://127.0.0.1:{}",
            server.port
        );
        let r = run(&format!("{base}/500\""), Duration::from_secs(3));
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .starts_with("status 500 (expected 200-399); HTTP 500 Internal Server Error"),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, STATUS_CODE), Some(500.0));

        let r = run(
            &format!("{base}/404\"\nexpect_status = [200, \"400-404\"]"),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);

        let r = run(
            &format!("{base}/\"\nexpect_body = \"healthy\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .contains("body does not contain \"healthy\"; it starts \"plain text\""),
            "{}",
            r.output
        );

        let r = run(
            &format!("{base}/\"\nexpect_body_regex = \"^\\\\d+$\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("does not match"), "{}", r.output);

        let r = run(
            &format!(
                "{base}/json\"\nexpect_json = [{{ pointer = \"/status\", equals = \"ok\" }}, {{ pointer = \"/n\", equals = 1 }}, {{ pointer = \"/x\", equals = true }}]"
            ),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .contains("JSON \"/status\" is \"down\", expected \"ok\""),
            "{}",
            r.output
        );
        assert!(r.output.contains("JSON \"/x\" is absent"), "{}", r.output);
        assert!(!r.output.contains("\"/n\""), "{}", r.output);

        let r = run(
            &format!("{base}/\"\nexpect_json = [{{ pointer = \"/a\", equals = 1 }}]"),
            Duration::from_secs(3),
        );
        assert!(r.output.contains("body is not JSON"), "{}", r.output);
    }

    #[test]
    fn slow_answers_time_out_or_pass_the_limits() {
        let server = plain(|req| {
            let wait = if req.path() == "/slow" { 1500 } else { 150 };
            std::thread::sleep(Duration::from_millis(wait));
            response("200 OK", &[], "late")
        });
        let base = format!(
            "min_host_interval = \"0s\"\nurl = \"http://127.0.0.1:{}",
            server.port
        );
        let started = Instant::now();
        let r = run(&format!("{base}/slow\""), Duration::from_millis(500));
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .contains("timed out after 0.475s while reading the response"),
            "{}",
            r.output
        );

        let r = run(
            &format!("{base}/\"\nwarning_time = \"100ms\"\ncritical_time = \"5s\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert!(r.output.starts_with("response time 0.1"), "{}", r.output);
        assert!(r.output.contains("at or past 0.100s"), "{}", r.output);
    }

    #[test]
    fn credentials_are_sent_and_never_shown() {
        let server = plain(|req| {
            // Echo the credentials back, as a careless endpoint might.
            let auth = req.header("authorization").unwrap_or("none").to_string();
            response("401 Unauthorized", &[], &format!("you sent {auth}"))
        });
        let dir = TempDir::new("http-secret");
        dir.write("pass", "hunter2-secret\n");
        let base = format!(
            "min_host_interval = \"0s\"\nurl = \"http://127.0.0.1:{}/\"\nexpect_body = \"welcome\"",
            server.port
        );
        let r = run(
            &format!(
                "{base}\nauth = {{ type = \"basic\", username = \"monitor\", password_file = \"{}\" }}",
                dir.path().join("pass").display()
            ),
            Duration::from_secs(3),
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("monitor:hunter2-secret")
        );
        assert_eq!(
            server.requests()[0].header("authorization"),
            Some(expected.as_str())
        );
        assert_eq!(r.state, CheckState::Critical);
        let shown = format!("{} {}", r.output, r.long_output);
        assert!(shown.contains("you sent Basic ***"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(&expected[6..]),
            "{shown}"
        );

        // A bearer token from an environment variable every process has.
        let path = std::env::var("PATH").expect("PATH");
        let r = run(
            &format!("{base}\nauth = {{ type = \"bearer\", token_env = \"PATH\" }}"),
            Duration::from_secs(3),
        );
        assert_eq!(
            server.requests()[1].header("authorization"),
            Some(format!("Bearer {path}").as_str())
        );
        assert!(!r.output.contains(&path), "{}", r.output);

        let r = run(
            &format!(
                "{base}\nauth = {{ type = \"bearer\", token_env = \"SYSWARD_TEST_UNSET_VARIABLE\" }}"
            ),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Unknown);
        assert!(
            r.output.contains("SYSWARD_TEST_UNSET_VARIABLE is not set"),
            "{}",
            r.output
        );
        let r = run(
            &format!("{base}\nauth = {{ type = \"bearer\", token_file = \"/nonexistent/token\" }}"),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Unknown);
        assert!(
            r.output
                .contains("cannot read the token file /nonexistent/token"),
            "{}",
            r.output
        );
        assert_eq!(
            server.requests().len(),
            2,
            "no request without its credentials"
        );
    }

    #[test]
    fn redirects_are_answers_or_followed_and_credentials_stay_home() {
        let elsewhere = plain(|_| response("200 OK", &[], "elsewhere"));
        let target = format!("http://127.0.0.1:{}/landing", elsewhere.port);
        let server = plain(move |req| match req.path() {
            "/start" => response("302 Found", &[("Location", "/next?x=1")], ""),
            "/next?x=1" => response("301 Moved Permanently", &[("Location", &target)], ""),
            "/loop" => response("307 Temporary Redirect", &[("Location", "/loop")], ""),
            _ => response("404 Not Found", &[], ""),
        });
        let dir = TempDir::new("http-redirect");
        dir.write("token", "tok-123456");
        let base = format!(
            "min_host_interval = \"0s\"\nurl = \"http://127.0.0.1:{}/start\"\nauth = {{ type = \"bearer\", token_file = \"{}\" }}",
            server.port,
            dir.path().join("token").display()
        );
        let r = run(&base, Duration::from_secs(3));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(r.output.starts_with("HTTP 302 Found"), "{}", r.output);
        assert_eq!(sample(&r, REDIRECTS), Some(0.0));

        let r = run(
            &format!("{base}\nfollow_redirects = 2\nexpect_body = \"elsewhere\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Ok, "{} / {}", r.output, r.long_output);
        assert_eq!(sample(&r, REDIRECTS), Some(2.0));
        assert!(
            r.long_output.contains(&format!(
                "after 2 redirect(s): http://127.0.0.1:{}/landing",
                elsewhere.port
            )),
            "{}",
            r.long_output
        );
        let same_host = server.requests();
        assert_eq!(
            same_host.last().map(|r| r.header("authorization")),
            Some(Some("Bearer tok-123456"))
        );
        let other = elsewhere.requests();
        assert_eq!(other.len(), 1);
        assert_eq!(
            other[0].header("authorization"),
            None,
            "credentials must not follow to another origin"
        );

        let r = run(
            &base
                .replace("/start", "/loop")
                .replace("\nauth", "\nfollow_redirects = 3\nauth"),
            Duration::from_secs(3),
        );
        assert_eq!(
            r.state,
            CheckState::Ok,
            "a 307 is within 200-399: {}",
            r.output
        );
        assert_eq!(sample(&r, REDIRECTS), Some(3.0));
    }

    #[test]
    fn post_with_headers_and_body() {
        let server = plain(|req| response("201 Created", &[], &String::from_utf8_lossy(&req.body)));
        let r = run(
            &format!(
                "min_host_interval = \"0s\"\nurl = \"http://127.0.0.1:{}/items\"\nmethod = \"post\"\nbody = '{{\"a\":1}}'\nheaders = {{ Content-Type = \"application/json\", X-Probe = \"yes\" }}\nexpect_status = [201]\nexpect_json = [{{ pointer = \"/a\", equals = 1 }}]",
                server.port
            ),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        let req = &server.requests()[0];
        assert_eq!(req.line, "POST /items HTTP/1.1");
        assert_eq!(req.header("x-probe"), Some("yes"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.body, b"{\"a\":1}");
    }

    #[test]
    fn a_closed_port_is_critical() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let r = run(
            &format!("url = \"http://127.0.0.1:{port}/\""),
            Duration::from_secs(2),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("connection refused"), "{}", r.output);
        assert!(sample(&r, DNS_SECONDS).is_some() && sample(&r, CONNECT_SECONDS).is_none());
    }

    #[test]
    fn the_host_rate_limit_spaces_requests_across_checks() {
        let server = plain(|_| response("200 OK", &[], "ok"));
        let text = format!(
            "url = \"http://127.0.0.1:{}/\"\nmin_host_interval = \"300ms\"",
            server.port
        );
        let (mut first, _, _) = build(&config(&text)).expect("build");
        let (mut second, _, _) = build(&config(&text)).expect("build");
        let started = Instant::now();
        assert_eq!(first.run(Duration::from_secs(3)).state, CheckState::Ok);
        assert_eq!(second.run(Duration::from_secs(3)).state, CheckState::Ok);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        // No time left for a turn: UNKNOWN at once, and no request.
        let r = first.run(Duration::from_millis(100));
        assert_eq!(r.state, CheckState::Unknown, "{}", r.output);
        assert!(
            r.output
                .starts_with("rate limit: the next request to 127.0.0.1:"),
            "{}",
            r.output
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn reservations_queue_up_per_host() {
        let far = Instant::now() + Duration::from_secs(60);
        let gap = Duration::from_secs(5);
        let a = reserve("reserve-test.example", 1, gap, far).expect("first");
        let b = reserve("reserve-test.example", 1, gap, far).expect("second");
        assert!(b >= a + gap);
        assert!(reserve("reserve-test.example", 2, gap, far).expect("other port") < b);
        assert!(reserve("reserve-test.example", 1, gap, Instant::now()).is_err());
        assert!(reserve("reserve-test.example", 1, Duration::ZERO, Instant::now()).is_ok());
    }

    #[test]
    fn bad_configs_are_refused() {
        for (text, why) in [
            ("url = \"ftp://x/\"", "only http"),
            ("url = \"http://u:p@x/\"", "credentials in the URL"),
            (
                "url = \"http://x/\"\nmethod = \"GE T\"",
                "not an HTTP method",
            ),
            (
                "url = \"http://x/\"\nheaders = { \"Bad Name\" = \"v\" }",
                "not a header name",
            ),
            (
                "url = \"http://x/\"\nheaders = { X = \"a\\r\\nInjected: 1\" }",
                "line break",
            ),
            (
                "url = \"http://x/\"\nexpect_status = [\"299-200\"]",
                "empty range",
            ),
            ("url = \"http://x/\"\nexpect_status = [700]", "not a status"),
            (
                "url = \"http://x/\"\nexpect_body_regex = \"(\"",
                "expect_body_regex",
            ),
            (
                "url = \"http://x/\"\nexpect_json = [{ pointer = \"a\", equals = 1 }]",
                "start with '/'",
            ),
            (
                "url = \"http://x/\"\nca_file = \"/a.pem\"\ninsecure_skip_verify = true",
                "contradict",
            ),
            ("url = \"http://x/\"\nca_file = \"a.pem\"", "absolute"),
            ("url = \"http://x/\"\nfollow_redirects = 11", "at most 10"),
            (
                "url = \"http://x/\"\nauth = { type = \"bearer\" }",
                "exactly one",
            ),
            (
                "url = \"http://x/\"\nauth = { type = \"bearer\", token_file = \"/t\", token_env = \"T\" }",
                "exactly one",
            ),
            (
                "url = \"http://x/\"\nauth = { type = \"basic\", username = \"a:b\", password_env = \"P\" }",
                "username",
            ),
            (
                "url = \"http://x/\"\nauth = { type = \"bearer\", token_env = \"T\" }\nheaders = { Authorization = \"x\" }",
                "set one of them",
            ),
            (
                "url = \"http://x/\"\nwarning_time = \"2s\"\ncritical_time = \"1s\"",
                "must not be past",
            ),
            ("url = \"http://x/\"\nmax_body = \"1GiB\"", "max_body"),
        ] {
            let err = build(&config(text))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(
            toml::from_str::<HttpCheckConfig>(
                "name = \"h\"\nurl = \"http://x/\"\nauth = { type = \"digest\" }"
            )
            .is_err()
        );
        assert!(
            toml::from_str::<HttpCheckConfig>("name = \"h\"\nurl = \"http://x/\"\nbogus = 1")
                .is_err()
        );
    }

    #[test]
    fn redaction_replaces_longest_first() {
        assert_eq!(
            redact(
                "a secret-long and secret",
                &["secret".into(), "secret-long".into()]
            ),
            "a *** and ***"
        );
        assert_eq!(redact("nothing", &[]), "nothing");
    }
}
