//! Local targets for the network checks' tests: a CA made with rcgen that signs server
//! certificates with chosen names and expiry, and a tiny HTTP/1.1 server (plain or TLS)
//! on 127.0.0.1 that records every request it gets and answers through a handler.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A scratch directory removed on drop.
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A fresh directory whose name includes `name`.
    pub(crate) fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sysward-checks-{name}-"))
            .tempdir()
            .expect("create scratch dir");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    /// Writes `text` to `relative` under the directory, creating parents.
    pub(crate) fn write(&self, relative: &str, text: impl AsRef<[u8]>) {
        let path = self.0.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create parent");
        std::fs::write(&path, text).expect("write fixture file");
    }
}

/// A test CA.
pub(crate) struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A server certificate and its key.
pub(crate) struct Leaf {
    /// Leaf first, then the CA.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 key.
    pub(crate) key: Vec<u8>,
    /// The leaf as PEM.
    pub(crate) pem: String,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub(crate) fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA cert"),
        }
    }

    /// The CA certificate as PEM.
    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid until
    /// `not_after` (Unix seconds) when given, else for a year.
    pub(crate) fn leaf(&self, names: &[&str], not_after: Option<i64>) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test server");
        let now = super::net::unix_now();
        // rcgen's dates are the `time` crate's, which is not ours to name: count from
        // its epoch instead.
        let secs = |unix: i64| Duration::from_secs(u64::try_from(unix).expect("after 1970"));
        let not_after = not_after.unwrap_or(now + 365 * 86_400);
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + secs(now.min(not_after) - 86_400);
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + secs(not_after);
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            chain: vec![cert.der().clone(), self.issuer.der().clone()],
            key: key.serialize_der(),
            pem: cert.pem(),
        }
    }
}

impl Leaf {
    /// A rustls server configuration presenting this certificate.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = ServerConfig::builder_with_provider(super::net::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("server config");
        Arc::new(config)
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `GET /path HTTP/1.1`.
    pub(crate) line: String,
    /// Header lines, as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (by Content-Length).
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The path of the request line.
    pub(crate) fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// The first value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Request) -> Vec<u8> + Send + Sync;

/// A loopback HTTP server on its own thread, answering until the test process ends.
pub(crate) struct TestServer {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TestServer {
    /// Starts a server; with `tls`, it speaks HTTPS.
    pub(crate) fn start(
        tls: Option<Arc<ServerConfig>>,
        handler: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let tls = tls.clone();
                let seen = seen.clone();
                let handler = handler.clone();
                std::thread::spawn(move || serve(conn, tls, &seen, &*handler));
            }
        });
        Self { port, requests }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve(
    conn: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    seen: &Mutex<Vec<Request>>,
    handler: &Handler,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    match tls {
        Some(config) => {
            let Ok(server) = ServerConnection::new(config) else {
                return;
            };
            let mut stream = StreamOwned::new(server, conn);
            exchange(&mut stream, seen, handler);
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        None => {
            let mut stream = conn;
            exchange(&mut stream, seen, handler);
        }
    }
}

fn exchange<S: Read + Write>(stream: &mut S, seen: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let mut request = Request {
        line,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.body.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().expect("lock").push(request.clone());
    let response = handler(&request);
    let _ = stream.write_all(&response);
    let _ = stream.flush();
}

/// A complete response with a Content-Length.
pub(crate) fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// The `toml` example in a check module's documentation (its `//!` lines).
fn documented_example(source: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in source.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if doc.starts_with("```toml") {
            inside = true;
        } else if doc.starts_with("```") {
            inside = false;
        } else if inside {
            out.push_str(doc);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_documented_examples_build() {
    #[derive(serde::Deserialize)]
    struct AgentToml {
        checks: super::ChecksConfig,
    }
    let examples = [
        include_str!("tcp.rs"),
        include_str!("http.rs"),
        include_str!("tls.rs"),
        include_str!("dns.rs"),
        include_str!("ping.rs"),
        include_str!("log.rs"),
    ]
    .map(documented_example)
    .join("\n");
    let config: AgentToml = toml::from_str(&examples).expect("the examples parse");
    let ctx = super::CheckContext {
        state_dir: std::env::temp_dir().join("sysward-never-written"),
        ..super::CheckContext::default()
    };
    let jobs = super::build(&config.checks, &ctx).expect("the examples build");
    let names: Vec<&str> = jobs.iter().map(|j| j.name).collect();
    assert_eq!(
        names,
        [
            "redis",
            "api-health",
            "site-cert",
            "dns-www",
            "gateway",
            "nginx-errors"
        ]
    );
}

#[test]
fn a_check_labels_its_samples_and_sends_an_event() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config: super::ChecksConfig = toml::from_str(&format!(
        "[[tcp]]\nname = \"loopback\"\naddress = \"127.0.0.1:{port}\"\ntimeout = \"2s\""
    ))
    .expect("config");
    let mut jobs = super::build(&config, &super::CheckContext::default()).expect("build");
    let mut out = sysward_collectors::Output::default();
    jobs[0].collector.collect(&mut out).expect("collect");
    let connect = out
        .samples
        .iter()
        .find(|s| s.name == super::tcp::CONNECT_SECONDS)
        .expect("connect sample");
    assert_eq!(connect.labels[0], ("check".into(), "loopback".into()));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].state, sysward_collectors::CheckState::Ok);
}

#[test]
fn build_each_reports_every_check_on_its_own() {
    let config: super::ChecksConfig = toml::from_str(
        "[[tcp]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n\
         [[tcp]]\nname = \"bad\"\naddress = \"no port\"\n\
         [[tcp]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n\
         [[tcp]]\nname = \"c\"\naddress = \"127.0.0.1:3\"\n",
    )
    .expect("config");
    let built = super::build_each(&config, &super::CheckContext::default());
    let summary: Vec<String> = built
        .iter()
        .map(|b| match b {
            Ok(job) => format!("{} {}", job.kind, job.name),
            Err(e) => format!("{}[{}] {}", e.kind, e.index, e.message),
        })
        .collect();
    assert_eq!(summary[0], "tcp a");
    assert!(summary[1].starts_with("tcp[1] address:"), "{}", summary[1]);
    assert_eq!(summary[2], "tcp[2] another check has the same name");
    assert_eq!(summary[3], "tcp c");
    assert_eq!(config.names(), ["a", "bad", "a", "c"]);
    assert!(super::build(&config, &super::CheckContext::default()).is_err());
}
