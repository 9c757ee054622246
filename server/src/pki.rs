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
}

const CA_YEARS: i64 = 20;
const SERVER_CERT_DAYS: i64 = 5 * 365;
const AGENT_CERT_DAYS: i64 = 2 * 365;

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
        })
    }

    /// Lower-case hex SHA-256 of the server CA certificate: the pin in join tokens.
    pub fn ca_pin(&self) -> String {
        hex::encode(Sha256::digest(&self.ca_der))
    }

    /// Signs an agent's CSR. The subject is replaced by the agent id, whatever the CSR asked.
    pub fn sign_agent_csr(&self, csr_pem: &str, agent_id: &str) -> anyhow::Result<String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .context("the certificate request is not a valid PKCS#10 PEM")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(agent_id);
        params.subject_alt_names = vec![];
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(AGENT_CERT_DAYS);
        csr.params = params;
        Ok(csr.signed_by(&self.agent_issuer)?.pem())
    }
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
/// crash never leaves half a key.
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
    Ok(())
}

/// This host's name, or `localhost` when it has none.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
