//! `sysward-agent enroll`: make a key pair here, send a certificate request, keep the
//! certificate. The server is recognised by the SHA-256 pin of its CA (from the join token
//! or `--ca-pin`), checked during the TLS handshake, before the secret is sent.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sysward_proto::{EnrollRequest, EnrollResponse, EnrollStatus, ErrorResponse, JoinToken};
use tracing::info;

use crate::https::{Endpoint, HttpsClient};
use crate::identity::{
    CA_FILE, CERT_FILE, IDENTITY_FILE, IdentityFile, KEY_FILE, PENDING_FILE, create_private_dir,
    read, write_private,
};

/// How to reach and recognise the server, and with what.
pub(crate) struct EnrollTarget {
    pub(crate) url: String,
    pub(crate) ca_sha256: String,
    pub(crate) secret: Option<String>,
}

impl EnrollTarget {
    pub(crate) fn from_token(token: &str) -> anyhow::Result<Self> {
        let token = JoinToken::parse(token)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if token.expires_at <= now {
            bail!("this join token expired; make a new one with `sysward-server token create`");
        }
        Ok(Self {
            url: token.url,
            ca_sha256: token.ca_sha256,
            secret: Some(token.secret),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct PendingFile {
    agent_id: String,
    server_url: String,
    ca_sha256: String,
    csr_pem: String,
}

pub(crate) async fn enroll(
    target: EnrollTarget,
    state_dir: &Path,
    hostname: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    create_private_dir(state_dir)?;
    let pending_path = state_dir.join(PENDING_FILE);
    // A request made earlier and not yet approved is picked up again, with the same key.
    let pending: Option<PendingFile> = if target.secret.is_none() && pending_path.exists() {
        Some(serde_json::from_str(&read(&pending_path)?).context("pending.json is damaged")?)
    } else {
        None
    };
    let (key_pem, csr_pem) = match &pending {
        Some(p) => (read(&state_dir.join(KEY_FILE))?, p.csr_pem.clone()),
        None => {
            let key = KeyPair::generate().context("cannot make a key pair")?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, hostname);
            params.distinguished_name = dn;
            let csr = params.serialize_request(&key)?.pem()?;
            (key.serialize_pem(), csr)
        }
    };
    let client = HttpsClient::new(
        Endpoint::parse(&target.url).map_err(anyhow::Error::msg)?,
        pinned_tls(&target.ca_sha256)?,
        Duration::from_secs(10),
        Duration::from_secs(30),
    )
    .map_err(anyhow::Error::msg)?;
    let url = format!("{}/api/v1/enroll", target.url.trim_end_matches('/'));
    let mut request = EnrollRequest {
        secret: target.secret.clone(),
        csr_pem: csr_pem.clone(),
        hostname: hostname.to_string(),
        labels: labels.clone(),
        agent_id: pending.as_ref().map(|p| p.agent_id.clone()),
    };
    if pending.is_none() {
        write_private(&state_dir.join(KEY_FILE), key_pem.as_bytes())?;
    }
    let mut announced = false;
    loop {
        let resp = client
            .post(
                "/api/v1/enroll",
                "application/json",
                None,
                serde_json::to_vec(&request)?.into(),
            )
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status;
        let body = resp.body;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("the server refused enrollment ({status}): {reason}");
        }
        let answer: EnrollResponse =
            serde_json::from_slice(&body).context("the server's answer is malformed")?;
        let ca_der = CertificateDer::from_pem_slice(answer.server_ca_pem.as_bytes())
            .context("the server's CA certificate is malformed")?;
        if hex::encode(Sha256::digest(&ca_der)) != target.ca_sha256.to_ascii_lowercase() {
            bail!("the server sent a CA certificate that does not match the pin");
        }
        match answer.status {
            EnrollStatus::Approved => {
                let cert = answer.cert_pem.context("approved without a certificate")?;
                write_private(&state_dir.join(CERT_FILE), cert.as_bytes())?;
                write_private(&state_dir.join(CA_FILE), answer.server_ca_pem.as_bytes())?;
                let identity = IdentityFile {
                    agent_id: answer.agent_id.clone(),
                    server_url: target.url.clone(),
                };
                write_private(
                    &state_dir.join(IDENTITY_FILE),
                    &serde_json::to_vec_pretty(&identity)?,
                )?;
                let _ = std::fs::remove_file(&pending_path);
                return Ok(answer.agent_id);
            }
            EnrollStatus::Pending => {
                if !announced {
                    let p = PendingFile {
                        agent_id: answer.agent_id.clone(),
                        server_url: target.url.clone(),
                        ca_sha256: target.ca_sha256.clone(),
                        csr_pem: csr_pem.clone(),
                    };
                    write_private(&pending_path, &serde_json::to_vec_pretty(&p)?)?;
                    info!(agent_id = answer.agent_id, "Waiting for approval.");
                    eprintln!(
                        "Enrollment requested as {id}. On the server, run:\n  sysward-server agents approve {id}\nWaiting...",
                        id = answer.agent_id
                    );
                    announced = true;
                }
                request.agent_id = Some(answer.agent_id);
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    }
}

fn pinned_tls(pin: &str) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCaVerifier {
        pin: pin.to_ascii_lowercase(),
        provider: provider.clone(),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Accepts a server whose chain carries the pinned CA and whose certificate that CA signed
/// for the name dialled: full WebPKI verification, with the pinned CA as the only root.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| hex::encode(Sha256::digest(c.as_ref())) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA does not match the pin in the join token".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, IsCa, Issuer};
    use rustls::pki_types::UnixTime;

    struct Ca {
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::from_ca_cert_pem(&cert.pem(), key).unwrap(),
        }
    }

    /// A server certificate for `localhost`, valid from 2020 to 2090.
    fn leaf(by: &Ca) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        params.signed_by(&key, &by.issuer).unwrap().der().clone()
    }

    fn pin(c: &Ca) -> String {
        hex::encode(Sha256::digest(c.der.as_ref()))
    }

    fn verify(
        pin: &str,
        leaf: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        name: &str,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = PinnedCaVerifier {
            pin: pin.to_string(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(leaf, chain, &name, &[], now)
    }

    #[test]
    fn the_pinned_ca_s_server_is_accepted() {
        let ca = ca("pinned");
        let leaf = leaf(&ca);
        assert!(
            verify(
                &pin(&ca),
                &leaf,
                std::slice::from_ref(&ca.der),
                "localhost",
                UnixTime::now()
            )
            .is_ok()
        );
    }

    #[test]
    fn a_wrong_pin_is_refused() {
        let ca = ca("pinned");
        let other = self::ca("other");
        let leaf = leaf(&ca);
        let error = verify(
            &pin(&other),
            &leaf,
            std::slice::from_ref(&ca.der),
            "localhost",
            UnixTime::now(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("does not match the pin"),
            "{error}"
        );
    }

    #[test]
    fn a_leaf_the_pinned_ca_did_not_sign_is_refused() {
        let pinned = ca("pinned");
        let impostor = ca("impostor");
        // The pinned CA rides along in the chain, but another CA signed the leaf.
        let leaf = leaf(&impostor);
        let chain = [pinned.der.clone(), impostor.der.clone()];
        let error = verify(&pin(&pinned), &leaf, &chain, "localhost", UnixTime::now())
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("pin"),
            "refused for the signature, not the pin: {error}"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let ca = ca("pinned");
        let leaf = leaf(&ca);
        // 2100-01-01, ten years past the leaf's end.
        let later = UnixTime::since_unix_epoch(Duration::from_secs(4_102_444_800));
        let error = verify(
            &pin(&ca),
            &leaf,
            std::slice::from_ref(&ca.der),
            "localhost",
            later,
        )
        .unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("expired"),
            "{error}"
        );
    }

    #[test]
    fn a_certificate_for_another_name_is_refused() {
        let ca = ca("pinned");
        let leaf = leaf(&ca);
        let error = verify(
            &pin(&ca),
            &leaf,
            std::slice::from_ref(&ca.der),
            "mon.example",
            UnixTime::now(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("not valid for name"), "{error}");
    }
}
