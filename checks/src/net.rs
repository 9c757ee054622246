//! What the network checks share: the TLS client configurations (system roots, a CA
//! file, or no verification), the chain and host-name validation the `tls` check
//! reports on, and small helpers for outputs and thresholds.
//!
//! A run's deadline, name resolution, connecting and the deadline-bound stream are
//! `sysward_platform::net`, shared with the collectors of services; they are re-exported
//! here so that every check reaches its network plumbing through one module.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use sysward_collectors::CheckState;

pub(crate) use sysward_platform::net::{
    Deadline, DeadlineStream, NetError, connect, io_text, is_timeout, resolve, secs,
};

/// The only crypto provider Sysward uses: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Where the system's CA bundle is on the common distributions, `SSL_CERT_FILE` first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine, macOS, BSDs
];

/// The system's trusted CAs, read once per agent run from the first bundle found.
pub(crate) fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let candidates = from_env
                .into_iter()
                .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
            for path in candidates {
                if path.is_file() {
                    return load_roots(&path).map(Arc::new);
                }
            }
            Err(format!(
                "no system CA bundle found (looked for {}); set ca_file",
                SYSTEM_BUNDLES.join(", ")
            ))
        })
        .clone()
}

/// Every certificate of a PEM file as a trust anchor.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = load_certs(path)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "{}: no usable CA certificate in it",
            path.display()
        ));
    }
    Ok(roots)
}

/// The certificates of a PEM file, in order.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), io_text(&e)))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// Roots from `ca_file` when given, else the system's.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, String> {
    match ca_file {
        Some(path) => load_roots(path).map(Arc::new),
        None => system_roots(),
    }
}

/// A client configuration that verifies the server against `roots`, or accepts any
/// certificate when `roots` is `None` (`insecure_skip_verify`).
pub(crate) fn client_config(
    roots: Option<Arc<RootCertStore>>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaptureVerifier::new()))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts any server certificate and keeps the chain the server sent, so that a check
/// can validate it itself afterwards and say exactly what is wrong. Handshake signatures
/// are still verified: the peer must hold the key of the certificate it shows.
#[derive(Debug)]
pub(crate) struct CaptureVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl CaptureVerifier {
    /// A verifier with an empty capture.
    pub(crate) fn new() -> Self {
        Self {
            algorithms: provider().signature_verification_algorithms,
            chain: Mutex::new(Vec::new()),
        }
    }

    /// The chain of the last handshake: leaf first.
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self
            .chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        chain.clear();
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The problem with a certificate chain, as a check reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainProblem {
    /// The chain does not lead to a trusted root (or is expired, or badly signed).
    Chain(String),
    /// The leaf is not valid for the name.
    Name(String),
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Chain(m) => write!(f, "chain not trusted: {m}"),
            ChainProblem::Name(m) => write!(f, "host name mismatch: {m}"),
        }
    }
}

/// Validates `chain` (leaf first) against `roots` at the current time, and the leaf
/// against `name` when given; every problem found, chain first.
pub(crate) fn validate_chain(
    chain: &[CertificateDer<'_>],
    roots: &RootCertStore,
    name: Option<&ServerName<'_>>,
) -> Vec<ChainProblem> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return vec![ChainProblem::Chain("no certificate".into())];
    };
    let parsed = match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(p) => p,
        Err(e) => return vec![ChainProblem::Chain(tls_error_text(&e))],
    };
    let mut problems = Vec::new();
    if let Err(e) = rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        UnixTime::now(),
        provider().signature_verification_algorithms.all,
    ) {
        problems.push(ChainProblem::Chain(tls_error_text(&e)));
    }
    if let Some(name) = name
        && let Err(e) = rustls::client::verify_server_name(&parsed, name)
    {
        problems.push(ChainProblem::Name(tls_error_text(&e)));
    }
    problems
}

/// A rustls error in words, without the "invalid peer certificate:" preamble.
pub(crate) fn tls_error_text(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "issuer unknown (not signed by a trusted CA)".into(),
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
            C::BadSignature => "bad signature".into(),
            C::NotValidForName => "certificate not valid for this name".into(),
            other => {
                let text = rustls::Error::InvalidCertificate(other.clone()).to_string();
                text.strip_prefix("invalid peer certificate: ")
                    .map(str::to_string)
                    .unwrap_or(text)
            }
        },
        other => other.to_string(),
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC), by the proleptic Gregorian calendar.
pub(crate) fn utc_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is 1..=31 and m 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// The state a measured time earns against optional WARNING and CRITICAL limits
/// (reached or passed).
pub(crate) fn time_state(
    t: Duration,
    warning: Option<Duration>,
    critical: Option<Duration>,
) -> CheckState {
    if critical.is_some_and(|c| t >= c) {
        CheckState::Critical
    } else if warning.is_some_and(|w| t >= w) {
        CheckState::Warning
    } else {
        CheckState::Ok
    }
}

/// Checks that WARNING comes before CRITICAL where both are set.
pub(crate) fn check_order<T: PartialOrd + fmt::Debug>(
    what: &str,
    warning: Option<T>,
    critical: Option<T>,
) -> Result<(), String> {
    match (warning, critical) {
        (Some(w), Some(c)) if w > c => Err(format!(
            "warning_{what} ({w:?}) must not be past critical_{what} ({c:?})"
        )),
        _ => Ok(()),
    }
}

/// The worse of two states, as Nagios ranks them: CRITICAL over UNKNOWN over WARNING
/// over OK.
pub(crate) fn worse(a: CheckState, b: CheckState) -> CheckState {
    fn rank(s: CheckState) -> u8 {
        match s {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Unknown => 2,
            CheckState::Critical => 3,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// Untrusted bytes as one short line for an output: the first line, control characters
/// escaped, cut at `max` characters.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("");
    let mut out = String::new();
    for (i, c) in line.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Deserialises a human size (`"64KiB"`) for check configs.
pub(crate) fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| sysward_proto::units::parse_size(&s).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_unix_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_893_456_000), "2030-01-01");
        assert_eq!(utc_date(-86_400), "1969-12-31");
    }

    #[test]
    fn thresholds_and_ranks() {
        let ms = Duration::from_millis;
        assert_eq!(
            time_state(ms(5), Some(ms(10)), Some(ms(20))),
            CheckState::Ok
        );
        assert_eq!(
            time_state(ms(10), Some(ms(10)), Some(ms(20))),
            CheckState::Warning
        );
        assert_eq!(
            time_state(ms(25), Some(ms(10)), Some(ms(20))),
            CheckState::Critical
        );
        assert_eq!(time_state(ms(25), None, None), CheckState::Ok);
        assert!(check_order("time", Some(ms(30)), Some(ms(20))).is_err());
        assert_eq!(
            worse(CheckState::Unknown, CheckState::Critical),
            CheckState::Critical
        );
        assert_eq!(
            worse(CheckState::Unknown, CheckState::Warning),
            CheckState::Unknown
        );
    }

    #[test]
    fn excerpts_are_one_escaped_line() {
        assert_eq!(excerpt(b"SSH-2.0-x\r\nmore", 80), "SSH-2.0-x");
        assert_eq!(excerpt(b"a\x1bb", 80), "a\\u{1b}b");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
    }
}
