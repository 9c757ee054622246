//! `[[checks.tls]]`: a certificate's days left, and whether its chain and name hold.
//!
//! ```toml
//! [[checks.tls]]
//! name = "site-cert"
//! address = "www.example.com:443"   # host:port (port default 443) ...
//! # file = "/etc/nginx/tls/site.pem"  # ... or a PEM file: leaf first, then its chain
//! # server_name = "www.example.com"   # SNI and the name checked; default the address's host
//! warning_days = 30                  # defaults 30 and 7
//! critical_days = 7
//! # ca_file = "/etc/sysward/internal-ca.pem"  # trust this CA instead of the system's
//! # verify_chain = true              # false: only expiry (self-signed certificates)
//! ```
//!
//! From a server the check takes the chain it presents in a TLS handshake (accepting any
//! certificate, so that it can say what is wrong rather than only that the handshake
//! failed), then validates that chain against the system's roots (or `ca_file`) and the
//! leaf against the name. From a file it does the same, checking the name only when
//! `server_name` is set.
//!
//! States: an untrusted chain or a name mismatch: CRITICAL with the reason; the leaf
//! expired or within `critical_days`: CRITICAL; within `warning_days`: WARNING; a server
//! that cannot be reached or completes no handshake: CRITICAL; a file that cannot be
//! read: UNKNOWN.
//!
//! Samples: `sysward_check_tls_days_left` (of the leaf, fractional, negative once
//! expired: intermediates are validated, not counted, since servers often send an
//! expired cross-sign that clients ignore), `sysward_check_tls_not_after_seconds` (the
//! leaf's expiry as a Unix time) and, from a server, `sysward_check_tls_handshake_seconds`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;

use super::net::{self, ChainProblem, Deadline, DeadlineStream, NetError};
use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Days until the leaf certificate expires (negative once it has).
pub const DAYS_LEFT: &str = "sysward_check_tls_days_left";
/// The leaf certificate's `notAfter`, Unix seconds.
pub const NOT_AFTER_SECONDS: &str = "sysward_check_tls_not_after_seconds";
/// Time of the TLS handshake (from a server).
pub const HANDSHAKE_SECONDS: &str = "sysward_check_tls_handshake_seconds";

/// One `[[checks.tls]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheckConfig {
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
    /// A server: `host:port` (port default 443).
    #[serde(default)]
    pub address: Option<String>,
    /// A PEM file: leaf first, then intermediates.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The name sent as SNI and checked against the certificate (default the address's
    /// host; for a file, no name check unless set).
    #[serde(default)]
    pub server_name: Option<String>,
    /// WARNING at or below this many days left (default 30).
    #[serde(default)]
    pub warning_days: Option<f64>,
    /// CRITICAL at or below this many days left (default 7).
    #[serde(default)]
    pub critical_days: Option<f64>,
    /// Trust the CAs in this PEM file instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Validate the chain and the name (default true); false checks expiry only.
    #[serde(default)]
    pub verify_chain: Option<bool>,
}

pub(crate) fn build(c: &TlsCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let source = match (&c.address, &c.file) {
        (Some(address), None) => {
            let (host, port) = sysward_wire::addr::split_host_port(address, Some(443))
                .map_err(|e| format!("address: {e}"))?;
            Source::Server { host, port }
        }
        (None, Some(file)) if file.is_absolute() => Source::File(file.clone()),
        (None, Some(file)) => {
            return Err(format!("file: {} is not an absolute path", file.display()));
        }
        _ => return Err("set exactly one of address and file".into()),
    };
    let server_name = match (&c.server_name, &source) {
        (Some(name), _) => Some(name.to_ascii_lowercase()),
        (None, Source::Server { host, .. }) => Some(host.clone()),
        (None, Source::File(_)) => None,
    };
    if let Some(name) = &server_name {
        ServerName::try_from(name.as_str())
            .map_err(|_| format!("server_name: {name:?} is not a DNS name or IP address"))?;
    }
    let warning_days = c.warning_days.unwrap_or(30.0);
    let critical_days = c.critical_days.unwrap_or(7.0);
    if !warning_days.is_finite() || !critical_days.is_finite() {
        return Err("warning_days and critical_days must be numbers".into());
    }
    if critical_days > warning_days {
        return Err(format!(
            "critical_days ({critical_days}) must not be more than warning_days ({warning_days})"
        ));
    }
    if let Some(path) = &c.ca_file
        && !path.is_absolute()
    {
        return Err(format!(
            "ca_file: {} is not an absolute path",
            path.display()
        ));
    }
    let verify = c.verify_chain.unwrap_or(true);
    if !verify && c.ca_file.is_some() {
        return Err("ca_file is used only with verify_chain = true".into());
    }
    let probe = TlsProbe {
        source,
        server_name,
        warning_days,
        critical_days,
        ca_file: c.ca_file.clone(),
        verify,
    };
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

#[derive(Debug, Clone)]
enum Source {
    Server { host: String, port: u16 },
    File(PathBuf),
}

#[derive(Debug)]
struct TlsProbe {
    source: Source,
    server_name: Option<String>,
    warning_days: f64,
    critical_days: f64,
    ca_file: Option<PathBuf>,
    verify: bool,
}

impl Probe for TlsProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Deadline::after(timeout);
        let mut samples = Vec::new();
        let chain = match &self.source {
            Source::File(path) => match net::load_certs(path) {
                Ok(chain) => chain,
                Err(e) => return ProbeResult::new(CheckState::Unknown, e),
            },
            Source::Server { host, port } => match self.handshake(host, *port, &deadline) {
                Ok((chain, took)) => {
                    samples.push(Sample::new(
                        HANDSHAKE_SECONDS,
                        Kind::Gauge,
                        took.as_secs_f64(),
                    ));
                    chain
                }
                Err(e) => return ProbeResult::new(CheckState::Critical, e.to_string()),
            },
        };
        let mut result = self.judge(&chain);
        samples.append(&mut result.samples);
        result.samples = samples;
        result
    }
}

impl TlsProbe {
    /// Connects and completes a handshake that accepts any certificate; returns the
    /// chain the server sent and the handshake's time.
    fn handshake(
        &self,
        host: &str,
        port: u16,
        deadline: &Deadline,
    ) -> Result<(Vec<CertificateDer<'static>>, Duration), NetError> {
        let (addrs, _) = net::resolve(host, port, deadline)?;
        let (tcp, _, _) = net::connect(&addrs, deadline)?;
        let verifier = Arc::new(net::CaptureVerifier::new());
        let config = rustls::ClientConfig::builder_with_provider(net::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| NetError::Other(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let sni = self.server_name.clone().unwrap_or_else(|| host.to_string());
        let name = ServerName::try_from(sni)
            .map_err(|_| NetError::Other(format!("{host:?} is not a TLS server name")))?;
        let mut conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| NetError::Other(format!("TLS setup: {e}")))?;
        let mut stream = DeadlineStream::new(tcp, deadline);
        let started = Instant::now();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut stream) {
                if net::is_timeout(&e) {
                    return Err(deadline.timed_out("in the TLS handshake"));
                }
                let message = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .map(net::tls_error_text)
                    .unwrap_or_else(|| net::io_text(&e));
                return Err(NetError::Tls {
                    host: host.to_string(),
                    message,
                });
            }
        }
        let took = started.elapsed();
        conn.send_close_notify();
        let _ = conn.complete_io(&mut stream);
        let chain = verifier.chain();
        if chain.is_empty() {
            return Err(NetError::Other("the server sent no certificate".into()));
        }
        Ok((chain, took))
    }

    /// The verdict on a chain (leaf first).
    fn judge(&self, chain: &[CertificateDer<'_>]) -> ProbeResult {
        let Some(leaf) = chain.first() else {
            return ProbeResult::new(CheckState::Unknown, "no certificate");
        };
        let (not_after, subject) = match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => (
                cert.validity().not_after.timestamp(),
                cert.subject().to_string(),
            ),
            Err(e) => {
                return ProbeResult::new(
                    CheckState::Critical,
                    format!("cannot parse the certificate: {e}"),
                );
            }
        };
        let days_left = (not_after - net::unix_now()) as f64 / 86_400.0;
        let mut problems: Vec<(CheckState, String)> = Vec::new();
        if self.verify {
            let roots = match net::roots(self.ca_file.as_deref()) {
                Ok(roots) => roots,
                Err(e) => return ProbeResult::new(CheckState::Unknown, e),
            };
            let name = self
                .server_name
                .as_deref()
                .and_then(|n| ServerName::try_from(n).ok());
            for problem in net::validate_chain(chain, &roots, name.as_ref()) {
                // An expired leaf is reported by its days below, in plainer words.
                if matches!(&problem, ChainProblem::Chain(m) if m == "certificate expired")
                    && days_left < 0.0
                {
                    continue;
                }
                problems.push((CheckState::Critical, problem.to_string()));
            }
        }
        let expiry = net::utc_date(not_after);
        if days_left < 0.0 {
            problems.push((
                CheckState::Critical,
                format!("expired {:.1} days ago ({expiry})", -days_left),
            ));
        } else if days_left <= self.critical_days {
            problems.push((
                CheckState::Critical,
                format!(
                    "expires in {days_left:.1} days ({expiry}), critical at {} days",
                    self.critical_days
                ),
            ));
        } else if days_left <= self.warning_days {
            problems.push((
                CheckState::Warning,
                format!(
                    "expires in {days_left:.1} days ({expiry}), warning at {} days",
                    self.warning_days
                ),
            ));
        }
        let state = problems
            .iter()
            .fold(CheckState::Ok, |s, (p, _)| net::worse(s, *p));
        let output = if problems.is_empty() {
            format!("certificate valid for {days_left:.1} more days (until {expiry})")
        } else {
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut result = ProbeResult::new(state, output);
        result.long_output = format!(
            "subject {subject}; {} certificate(s) in the chain",
            chain.len()
        );
        result.samples = vec![
            Sample::new(DAYS_LEFT, Kind::Gauge, days_left),
            Sample::new(NOT_AFTER_SECONDS, Kind::Gauge, not_after as f64),
        ];
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::test_support::{TestCa, TestServer, response};

    fn config(text: &str) -> TlsCheckConfig {
        toml::from_str(&format!("name = \"t\"\n{text}")).expect("config")
    }

    fn run(text: &str) -> ProbeResult {
        let (mut probe, _, _) = build(&config(text)).expect("build");
        probe.run(Duration::from_secs(5))
    }

    fn sample(r: &ProbeResult, name: &str) -> Option<f64> {
        r.samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    const DAY: i64 = 86_400;

    /// A server with a certificate for localhost valid `days` more days, and its CA file.
    fn server(days: i64, names: &[&str]) -> (TestServer, TempDir, String) {
        let ca = TestCa::new("tls test CA");
        let leaf = ca.leaf(names, Some(net::unix_now() + days * DAY));
        let dir = TempDir::new("tls-ca");
        dir.write("ca.pem", ca.pem());
        let server = TestServer::start(Some(leaf.server_config()), |_| response("200 OK", &[], ""));
        let ca_line = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
        (server, dir, ca_line)
    }

    #[test]
    fn days_left_from_a_server_and_the_thresholds() {
        let (server, _dir, ca) = server(90, &["localhost"]);
        let r = run(&format!("address = \"localhost:{}\"\n{ca}", server.port));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        let days = sample(&r, DAYS_LEFT).expect("days");
        assert!((89.9..=90.0).contains(&days), "{days}");
        assert!(
            r.output
                .starts_with("certificate valid for 90.0 more days (until "),
            "{}",
            r.output
        );
        assert!(sample(&r, HANDSHAKE_SECONDS).is_some());
        let not_after = sample(&r, NOT_AFTER_SECONDS).expect("not after");
        assert!((not_after - (net::unix_now() + 90 * DAY) as f64).abs() < 10.0);

        let r = run(&format!(
            "address = \"localhost:{}\"\n{ca}\nwarning_days = 100",
            server.port
        ));
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert!(r.output.contains("expires in 90.0 days"), "{}", r.output);
        let r = run(&format!(
            "address = \"localhost:{}\"\n{ca}\nwarning_days = 120\ncritical_days = 95",
            server.port
        ));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
    }

    #[test]
    fn an_untrusted_chain_is_critical_with_the_reason() {
        let (server, _dir, _ca) = server(90, &["localhost"]);
        let r = run(&format!("address = \"localhost:{}\"", server.port));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(
            r.output.starts_with("chain not trusted: issuer unknown"),
            "{}",
            r.output
        );
        assert!(
            sample(&r, DAYS_LEFT).is_some(),
            "days are reported all the same"
        );
        let r = run(&format!(
            "address = \"localhost:{}\"\nverify_chain = false",
            server.port
        ));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
    }

    #[test]
    fn a_name_mismatch_is_critical() {
        let (server, _dir, ca) = server(90, &["www.example.test"]);
        let r = run(&format!("address = \"127.0.0.1:{}\"\n{ca}", server.port));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(r.output.starts_with("host name mismatch: "), "{}", r.output);
        let r = run(&format!(
            "address = \"127.0.0.1:{}\"\n{ca}\nserver_name = \"www.example.test\"",
            server.port
        ));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
    }

    #[test]
    fn expiring_and_expired_files() {
        let ca = TestCa::new("file CA");
        let dir = TempDir::new("tls-files");
        dir.write("ca.pem", ca.pem());
        let ca_line = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
        let soon = ca.leaf(&["files.example"], Some(net::unix_now() + 3 * DAY + 3600));
        dir.write("soon.pem", &soon.pem);
        let r = run(&format!(
            "file = \"{}\"\n{ca_line}",
            dir.path().join("soon.pem").display()
        ));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(
            r.output.starts_with("expires in 3.0 days ("),
            "{}",
            r.output
        );
        assert!(r.output.ends_with("), critical at 7 days"), "{}", r.output);

        let expired = ca.leaf(&["files.example"], Some(net::unix_now() - 2 * DAY));
        dir.write("expired.pem", &expired.pem);
        let r = run(&format!(
            "file = \"{}\"\n{ca_line}",
            dir.path().join("expired.pem").display()
        ));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(r.output.starts_with("expired 2.0 days ago"), "{}", r.output);
        assert!(sample(&r, DAYS_LEFT).is_some_and(|d| (-2.01..=-1.99).contains(&d)));

        let good = ca.leaf(&["files.example"], Some(net::unix_now() + 200 * DAY));
        dir.write("good.pem", &good.pem);
        let file = format!(
            "file = \"{}\"\n{ca_line}",
            dir.path().join("good.pem").display()
        );
        assert_eq!(run(&file).state, CheckState::Ok);
        let r = run(&format!("{file}\nserver_name = \"other.example\""));
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        assert!(r.output.starts_with("host name mismatch"), "{}", r.output);

        let r = run("file = \"/nonexistent/cert.pem\"");
        assert_eq!(r.state, CheckState::Unknown);
        assert!(
            r.output.contains("cannot read /nonexistent/cert.pem"),
            "{}",
            r.output
        );
        dir.write("junk.pem", "not a certificate");
        let r = run(&format!(
            "file = \"{}\"",
            dir.path().join("junk.pem").display()
        ));
        assert_eq!(r.state, CheckState::Unknown, "{}", r.output);
    }

    #[test]
    fn an_unreachable_server_is_critical() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let r = run(&format!("address = \"127.0.0.1:{port}\""));
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("connection refused"), "{}", r.output);
        // A plain-text server completes no handshake.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = plain.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = plain.accept() {
                let _ = std::io::Write::write_all(&mut conn, b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let r = run(&format!("address = \"127.0.0.1:{port}\""));
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output.starts_with("TLS handshake with 127.0.0.1 failed"),
            "{}",
            r.output
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for (text, why) in [
            ("", "exactly one"),
            ("address = \"a:1\"\nfile = \"/x.pem\"", "exactly one"),
            ("file = \"x.pem\"", "absolute"),
            (
                "address = \"a:1\"\nwarning_days = 5\ncritical_days = 10",
                "must not be more",
            ),
            (
                "address = \"a:1\"\nverify_chain = false\nca_file = \"/ca.pem\"",
                "only with verify_chain",
            ),
            ("address = \"a b:1\"", "address"),
        ] {
            let err = build(&config(text))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
