//! The server's own PKI, made on first start in `data_dir/pki/` (every file 0600):
//!
//! - `ca.crt`/`ca.key`: the server CA. Its SHA-256 is the pin in join tokens; agents trust
//!   it and nothing else.
//! - `server.crt`/`server.key`: the HTTPS certificate, signed by the server CA, for the
//!   names in `[tls] san` plus localhost, 127.0.0.1, ::1 and the host name.
//! - `agent-ca.crt`/`agent-ca.key`: signs agent client certificates. Kept apart from the
//!   server CA so that a client certificate can never pass as a server.
//!
//! An agent certificate's common name is its agent id; revocation is a row in the state
//! database, checked on every request, so it takes effect at once without CRLs.
//!
//! Agent certificates last `[tls] agent_cert_validity` (two years by default) and start a
//! quarter of that, at most an hour, before they are signed, for clocks that run behind.
//! Agents renew them before they expire (`POST /api/v1/renew`).

use std::{
    fs::{self, OpenOptions},
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The loaded PKI: what the TLS listener and enrollment need.
pub struct Pki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub agent_ca_der: Vec<u8>,
    pub server_chain_pem: String,
    pub server_key_pem: String,
    agent_issuer: Issuer<'static, KeyPair>,
    agent_cert_validity: std::time::Duration,
}

/// A signed agent certificate.
#[derive(Debug, Clone)]
pub struct SignedCert {
    pub pem: String,
    /// Its not-after, Unix milliseconds.
    pub not_after_ms: i64,
}

/// Why a renewal's certificate request cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("the certificate request is not valid: {0}")]
    Malformed(String),
    #[error("the certificate request names {named:?}, not this agent ({agent_id})")]
    OtherAgent { named: String, agent_id: String },
    #[error("the certificate request is for the current key; make a new key pair")]
    SameKey,
}

const CA_YEARS: i64 = 20;
const SERVER_CERT_DAYS: i64 = 5 * 365;
/// The default of `[tls] agent_cert_validity`.
pub const AGENT_CERT_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(2 * 365 * 86_400);
/// An agent certificate starts this long before it is signed at most.
const AGENT_BACKDATE_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

impl Pki {
    /// Loads the PKI from `dir`, creating whatever is missing.
    pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (ca_pem, ca_key) = ensure_ca(dir, "ca", "Sysward server CA")?;
        let (agent_ca_pem, agent_ca_key) = ensure_ca(dir, "agent-ca", "Sysward agent CA")?;
        let server_crt = dir.join("server.crt");
        let server_key = dir.join("server.key");
        if !server_crt.exists() || !server_key.exists() {
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                .context("cannot read the server CA certificate")?;
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = dn("Sysward server");
            params.subject_alt_names = server_sans(extra_sans)?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
            params.not_after = OffsetDateTime::now_utc() + Duration::days(SERVER_CERT_DAYS);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&server_key, key.serialize_pem().as_bytes())?;
            write_private(&server_crt, cert.pem().as_bytes())?;
        }
        let server_pem = read(&server_crt)?;
        let agent_issuer = Issuer::from_ca_cert_pem(&agent_ca_pem, agent_ca_key)
            .context("cannot read the agent CA certificate")?;
        Ok(Self {
            ca_der: pem_to_der(&ca_pem)?,
            agent_ca_der: pem_to_der(&agent_ca_pem)?,
            server_chain_pem: format!("{server_pem}{ca_pem}"),
            server_key_pem: read(&server_key)?,
            ca_pem,
            agent_issuer,
            agent_cert_validity: AGENT_CERT_VALIDITY,
        })
    }

    /// Sets how long the agent certificates signed from now on last.
    pub fn with_agent_cert_validity(mut self, validity: std::time::Duration) -> Self {
        self.agent_cert_validity = validity;
        self
    }

    /// How long the agent certificates it signs last.
    pub fn agent_cert_validity(&self) -> std::time::Duration {
        self.agent_cert_validity
    }

    /// Lower-case hex SHA-256 of the server CA certificate: the pin in join tokens.
    pub fn ca_pin(&self) -> String {
        hex::encode(Sha256::digest(&self.ca_der))
    }

    /// Signs an agent's CSR. The subject is replaced by the agent id, whatever the CSR asked.
    pub fn sign_agent_csr(&self, csr_pem: &str, agent_id: &str) -> anyhow::Result<SignedCert> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .context("the certificate request is not a valid PKCS#10 PEM")?;
        let validity = Duration::try_from(self.agent_cert_validity)
            .context("[tls] agent_cert_validity is too long")?;
        let backdate = Duration::try_from(AGENT_BACKDATE_MAX.min(self.agent_cert_validity / 4))
            .context("[tls] agent_cert_validity is too long")?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(agent_id);
        params.subject_alt_names = vec![];
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now - backdate;
        params.not_after = now + validity;
        let not_after_ms =
            i64::try_from(params.not_after.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        csr.params = params;
        Ok(SignedCert {
            pem: csr.signed_by(&self.agent_issuer)?.pem(),
            not_after_ms,
        })
    }
}

/// Checks a renewal's certificate request against the certificate the agent showed: it
/// must be well formed and signed, name the same agent, and be for another key.
pub fn check_renewal_csr(
    csr_pem: &str,
    agent_id: &str,
    current_cert_der: &[u8],
) -> Result<(), CsrError> {
    use x509_parser::{certification_request::X509CertificationRequest, prelude::FromDer};
    let malformed = |e: &dyn std::fmt::Display| CsrError::Malformed(e.to_string());
    // rcgen verifies the request's signature: only the holder of the new key can ask.
    CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| malformed(&e))?;
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).map_err(|e| malformed(&e))?;
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents).map_err(|e| malformed(&e))?;
    let info = &csr.certification_request_info;
    let named = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if named != agent_id {
        return Err(CsrError::OtherAgent {
            named: named.to_string(),
            agent_id: agent_id.to_string(),
        });
    }
    let (_, current) =
        x509_parser::parse_x509_certificate(current_cert_der).map_err(|e| malformed(&e))?;
    if current.public_key().subject_public_key.data == info.subject_pki.subject_public_key.data {
        return Err(CsrError::SameKey);
    }
    Ok(())
}

/// A certificate's not-after, Unix seconds.
pub fn not_after_of(cert_der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The agent id in a client certificate (its common name).
pub fn agent_id_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn server_sans(extra: &[String]) -> anyhow::Result<Vec<SanType>> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        hostname(),
    ];
    names.extend(extra.iter().cloned());
    let mut sans = Vec::new();
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .with_context(|| format!("[tls] san: {name:?} is not a DNS name"))?,
            ),
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn ensure_ca(dir: &Path, stem: &str, name: &str) -> anyhow::Result<(String, KeyPair)> {
    let crt = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    match (crt.exists(), key.exists()) {
        (true, true) => {
            let key_pem = read(&key)?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("{}: not a private key", key.display()))?;
            Ok((read(&crt)?, key))
        }
        (false, false) => {
            let key_pair = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = dn(name);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
            params.not_after = OffsetDateTime::now_utc() + Duration::days(365 * CA_YEARS);
            let cert = params.self_signed(&key_pair)?;
            write_private(&key, key_pair.serialize_pem().as_bytes())?;
            write_private(&crt, cert.pem().as_bytes())?;
            Ok((cert.pem(), key_pair))
        }
        // Making a new CA beside a half-present one would silently orphan every agent.
        _ => bail!(
            "{} and {} must both exist or both be absent; restore the missing one from backup",
            crt.display(),
            key.display()
        ),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let mut reader = pem.as_bytes();
    match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => Ok(der.to_vec()),
        _ => bail!("no certificate in PEM text"),
    }
}

/// Writes a file readable by its owner only, via a temporary file and a rename so that a
/// crash never leaves half a key, and syncs the directory: a power cut soon after the
/// first start must not take the CA away (a new one would fail every agent's pin).
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// This host's name, or `localhost` when it has none.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(common_name: &str) -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        (key, csr)
    }

    fn pki(validity: std::time::Duration) -> (tempfile::TempDir, Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[])
            .unwrap()
            .with_agent_cert_validity(validity);
        (dir, pki)
    }

    #[test]
    fn agent_certificates_last_the_configured_validity() {
        let (_d, pki) = pki(std::time::Duration::from_secs(40));
        let (_, csr) = csr_for("whatever the host asked");
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let signed = pki.sign_agent_csr(&csr, "ag-1").unwrap();
        let der = pem_to_der(&signed.pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (start, end) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        assert!(
            (before + 40..=before + 41).contains(&end),
            "{end} vs {before}"
        );
        // Backdated by a quarter of a short validity, not by an hour.
        assert!(
            (before - 10..=before - 9).contains(&start),
            "{start} vs {before}"
        );
        assert_eq!(signed.not_after_ms.div_euclid(1000), end);
        assert_eq!(not_after_of(&der), Some(end));
        assert_eq!(agent_id_of(&der).as_deref(), Some("ag-1"));
        assert_eq!(
            pki.agent_cert_validity(),
            std::time::Duration::from_secs(40)
        );
    }

    #[test]
    fn a_renewal_request_must_name_the_agent_and_bring_a_new_key() {
        let (_d, pki) = pki(AGENT_CERT_VALIDITY);
        let (old_key, old_csr) = csr_for("ag-1");
        let current = pem_to_der(&pki.sign_agent_csr(&old_csr, "ag-1").unwrap().pem).unwrap();
        let (_, fresh) = csr_for("ag-1");
        check_renewal_csr(&fresh, "ag-1", &current).unwrap();
        let (_, other) = csr_for("ag-2");
        let e = check_renewal_csr(&other, "ag-1", &current).unwrap_err();
        assert!(matches!(e, CsrError::OtherAgent { .. }), "{e}");
        assert!(
            e.to_string().contains("\"ag-2\", not this agent (ag-1)"),
            "{e}"
        );
        // The same key again.
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("ag-1");
        let same = params.serialize_request(&old_key).unwrap().pem().unwrap();
        assert!(matches!(
            check_renewal_csr(&same, "ag-1", &current),
            Err(CsrError::SameKey)
        ));
        for bad in [
            "",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(matches!(
                check_renewal_csr(bad, "ag-1", &current),
                Err(CsrError::Malformed(_))
            ));
        }
    }
}
