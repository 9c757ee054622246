//! The agent's identity in `state_dir`: its private key (0600, made here, never sent), its
//! client certificate, the server CA it trusts, and `identity.json` (agent id, server URL).
//! A pending enrollment keeps `pending.json` instead of the certificate until approved.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde::{Deserialize, Serialize};

pub(crate) const KEY_FILE: &str = "agent.key";
pub(crate) const CERT_FILE: &str = "agent.crt";
pub(crate) const CA_FILE: &str = "server-ca.crt";
pub(crate) const IDENTITY_FILE: &str = "identity.json";
pub(crate) const PENDING_FILE: &str = "pending.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdentityFile {
    pub(crate) agent_id: String,
    pub(crate) server_url: String,
}

/// Everything needed to talk to the server as this agent.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) agent_id: String,
    pub(crate) server_url: String,
    pub(crate) dir: PathBuf,
}

impl Identity {
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(IDENTITY_FILE);
        if !path.exists() {
            bail!(
                "this agent is not enrolled ({} does not exist); run `sysward-agent enroll TOKEN` with a token from `sysward-server token create`",
                path.display()
            );
        }
        let file: IdentityFile = serde_json::from_slice(
            &fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is damaged", path.display()))?;
        for f in [KEY_FILE, CERT_FILE, CA_FILE] {
            if !dir.join(f).exists() {
                bail!("{} is missing; enroll again", dir.join(f).display());
            }
        }
        Ok(Self {
            agent_id: file.agent_id,
            server_url: file.server_url,
            dir: dir.to_path_buf(),
        })
    }

    /// rustls settings: trust only the server CA, present the agent certificate.
    pub(crate) fn tls_config(&self) -> anyhow::Result<ClientConfig> {
        let ca_pem = read(&self.dir.join(CA_FILE))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.context("server CA certificate")?)?;
        }
        let chain = CertificateDer::pem_slice_iter(read(&self.dir.join(CERT_FILE))?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("agent certificate")?;
        let key = PrivateKeyDer::from_pem_slice(read(&self.dir.join(KEY_FILE))?.as_bytes())
            .context("agent key")?;
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .context("agent certificate and key do not match")
    }
}

pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes a file only its owner can read, through a temporary file and a rename so that a
/// crash never leaves half a key or half an identity, and syncs the directory so that a
/// power cut after enrolment does not take the new identity away (the server has it
/// approved already; without it the agent would have to enroll again).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
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
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes the creations and renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
