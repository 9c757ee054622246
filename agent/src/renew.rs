//! Client certificate renewal. Once a third or less of the certificate's life is left
//! (not-before to not-after, as the server signed it), the agent makes a new key pair and
//! sends a certificate request for its agent id to `POST /api/v1/renew`, over mutual TLS
//! with its current certificate. It looks at start, then when renewal falls due, and at
//! least every [`CHECK_EVERY`]; a failure is retried with a doubling backoff, a refusal
//! (the agent was revoked) waits for the next regular look. Shipping never waits on any of
//! this: the shipper takes the new TLS settings before its next push.
//!
//! Files in the state directory:
//! - `agent.key`, `agent.crt`: the pair in use.
//! - `agent.key.old`, `agent.crt.old`: the last pair known to work, kept from a renewal
//!   until a push with the new pair succeeded ([`forget_old_pair`]).
//!
//! Installing a new pair writes the `.old` copies first (unless they already hold the last
//! working pair), then the new key, then the new certificate, each through a temporary file,
//! fsync, rename and a sync of the directory. A crash between the key and the certificate
//! leaves a key that does not match its certificate: at start [`recover_pair`] puts the
//! `.old` pair back.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use http::{StatusCode, header};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::ClientConfig;
use sysward_proto::{ErrorResponse, RenewRequest, RenewResponse};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{
    https::{Endpoint, HttpsClient},
    identity::{CERT_FILE, Identity, KEY_FILE, read, write_private},
};

/// The longest wait between two looks at the certificate.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The first wait after a failed renewal; it doubles up to [`RETRY_MAX`].
const RETRY_START: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// New TLS settings for the shipper, sent after each renewal.
pub(crate) type TlsUpdates = watch::Receiver<Option<Arc<ClientConfig>>>;

/// A certificate's validity, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CertLife {
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl CertLife {
    pub(crate) fn of_pem(pem: &str) -> anyhow::Result<Self> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
        let validity = cert.validity();
        Ok(Self {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// When renewal falls due: a third of the life before the end.
    pub(crate) fn renew_from(&self) -> i64 {
        let life = self.not_after.saturating_sub(self.not_before).max(0);
        self.not_after - life / 3
    }

    pub(crate) fn is_due(&self, now: i64) -> bool {
        now >= self.renew_from()
    }

    /// How long to wait, from `now`, before looking again.
    pub(crate) fn next_check(&self, now: i64) -> Duration {
        let until = u64::try_from(self.renew_from().saturating_sub(now)).unwrap_or(0);
        Duration::from_secs(until.max(1)).min(CHECK_EVERY)
    }
}

/// What one look at the certificate came to.
enum Outcome {
    NotDue(CertLife),
    Renewed(CertLife),
    /// The server said no (revoked, unknown, a request it will never sign).
    Refused {
        status: StatusCode,
        reason: String,
    },
    /// It could not be asked or could not answer now; try again later.
    Failed {
        reason: String,
        after: Option<Duration>,
    },
    /// The certificate has expired: the server no longer takes it, not even to renew.
    Expired(CertLife),
}

pub(crate) struct Renewer {
    identity: Identity,
    request_timeout: Duration,
    updates: watch::Sender<Option<Arc<ClientConfig>>>,
}

impl Renewer {
    /// A renewer and the receiving end of the TLS settings it makes, for the shipper.
    pub(crate) fn new(identity: Identity, request_timeout: Duration) -> (Self, TlsUpdates) {
        let (updates, receiver) = watch::channel(None);
        let renewer = Self {
            identity,
            request_timeout,
            updates,
        };
        (renewer, receiver)
    }

    /// Looks now and then whenever due, until the task is dropped.
    pub(crate) async fn run(self) {
        let mut retry = RETRY_START;
        let mut failing_since_warned: Option<tokio::time::Instant> = None;
        loop {
            let now = now_s();
            let wait = match self.look(now).await {
                Outcome::NotDue(life) => {
                    debug!(
                        renew_from = life.renew_from(),
                        "Certificate renewal not due yet."
                    );
                    retry = RETRY_START;
                    life.next_check(now)
                }
                Outcome::Renewed(life) => {
                    info!(
                        not_after = life.not_after,
                        renew_from = life.renew_from(),
                        "Agent certificate renewed; pushes use the new one from now on."
                    );
                    retry = RETRY_START;
                    failing_since_warned = None;
                    life.next_check(now_s())
                }
                Outcome::Refused { status, reason } => {
                    error!(%status, reason, "The server refused to renew this agent's certificate; it will stop accepting this agent when the certificate expires. Enroll the agent again if it was revoked.");
                    CHECK_EVERY
                }
                Outcome::Expired(life) => {
                    error!(
                        not_after = life.not_after,
                        "The agent certificate has expired and cannot be renewed; enroll the agent again."
                    );
                    CHECK_EVERY
                }
                Outcome::Failed { reason, after } => {
                    // Logged once per regular interval: a server away for days is one
                    // warning every few hours, not one per retry.
                    let warned_lately =
                        failing_since_warned.is_some_and(|t| t.elapsed() < CHECK_EVERY);
                    if warned_lately {
                        debug!(reason, "Certificate renewal still failing.");
                    } else {
                        warn!(
                            reason,
                            "Cannot renew the agent certificate; retrying with backoff."
                        );
                        failing_since_warned = Some(tokio::time::Instant::now());
                    }
                    let wait = after.unwrap_or(retry).min(RETRY_MAX);
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn look(&self, now: i64) -> Outcome {
        let dir = &self.identity.dir;
        let life = match read(&dir.join(CERT_FILE)).and_then(|pem| CertLife::of_pem(&pem)) {
            Ok(life) => life,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot read {}: {e:#}", dir.join(CERT_FILE).display()),
                    after: Some(CHECK_EVERY),
                };
            }
        };
        if now >= life.not_after {
            return Outcome::Expired(life);
        }
        if !life.is_due(now) {
            return Outcome::NotDue(life);
        }
        match self.renew().await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }

    /// Asks for a new certificate; installs it and hands the new TLS settings on.
    async fn renew(&self) -> anyhow::Result<Outcome> {
        let key = KeyPair::generate().context("cannot make a key pair")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.identity.agent_id.as_str());
        params.distinguished_name = dn;
        let csr_pem = params.serialize_request(&key)?.pem()?;
        let client = HttpsClient::new(
            Endpoint::parse(&self.identity.server_url).map_err(anyhow::Error::msg)?,
            self.identity.tls_config()?,
            Duration::from_secs(10),
            self.request_timeout,
        )
        .map_err(anyhow::Error::msg)?;
        let body = serde_json::to_vec(&RenewRequest { csr_pem })?;
        let resp = client
            .post("/api/v1/renew", "application/json", None, body.into())
            .await?;
        let status = resp.status;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorResponse>(&resp.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| {
                    String::from_utf8_lossy(&resp.body)
                        .chars()
                        .take(200)
                        .collect()
                });
            let after = resp
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Ok(match status {
                StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                    Outcome::Failed { reason, after }
                }
                s if s.is_client_error() => Outcome::Refused { status, reason },
                _ => Outcome::Failed {
                    reason: format!("{status}: {reason}"),
                    after,
                },
            });
        }
        let answer: RenewResponse =
            serde_json::from_slice(&resp.body).context("the server's answer is malformed")?;
        if answer.agent_id != self.identity.agent_id {
            bail!(
                "the server sent a certificate for {}, not {}",
                answer.agent_id,
                self.identity.agent_id
            );
        }
        let key_pem = key.serialize_pem();
        if !pair_matches(&key_pem, &answer.cert_pem)? {
            bail!("the server sent a certificate for another key");
        }
        let life = CertLife::of_pem(&answer.cert_pem)?;
        // No await from here to the send: a stopping agent drops this task at an await,
        // never between the files.
        install_pair(&self.identity.dir, &key_pem, &answer.cert_pem)?;
        let tls = self.identity.tls_config()?;
        self.updates.send_replace(Some(Arc::new(tls)));
        Ok(Outcome::Renewed(life))
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn old_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.old"))
}

/// Whether the private key `key_pem` is the one certified by `cert_pem`.
pub(crate) fn pair_matches(key_pem: &str, cert_pem: &str) -> anyhow::Result<bool> {
    let key = KeyPair::from_pem(key_pem).context("not a private key")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// Replaces the key and certificate in `dir`, keeping the last working pair as `.old`.
pub(crate) fn install_pair(dir: &Path, key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
    let (old_key, old_cert) = (old_path(dir, KEY_FILE), old_path(dir, CERT_FILE));
    // Existing `.old` files are the last pair known to work: the current one has not
    // worked yet, so it is not worth keeping over them.
    if !(old_key.exists() && old_cert.exists()) {
        write_private(&old_key, read(&dir.join(KEY_FILE))?.as_bytes())?;
        write_private(&old_cert, read(&dir.join(CERT_FILE))?.as_bytes())?;
    }
    write_private(&dir.join(KEY_FILE), key_pem.as_bytes())?;
    write_private(&dir.join(CERT_FILE), cert_pem.as_bytes())
}

/// At start: puts the `.old` pair back when the current key and certificate do not match
/// (a renewal stopped half way). Returns whether an `.old` pair is still waiting for the
/// current pair to work once.
pub(crate) fn recover_pair(dir: &Path) -> anyhow::Result<bool> {
    let (old_key, old_cert) = (old_path(dir, KEY_FILE), old_path(dir, CERT_FILE));
    if !(old_key.exists() && old_cert.exists()) {
        // Half a copy, from a renewal stopped before it touched the pair in use.
        forget_old_pair(dir)?;
        return Ok(false);
    }
    let (key, cert) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
    let current_ok = pair_matches(&read(&key)?, &read(&cert)?).unwrap_or(false);
    if current_ok {
        return Ok(true);
    }
    warn!(
        dir = %dir.display(),
        "The agent key and certificate do not match (a renewal was interrupted); going back to the previous pair."
    );
    // Copied rather than renamed, so that a crash in between leaves both `.old` files
    // for the next start to try again.
    write_private(&key, read(&old_key)?.as_bytes())?;
    write_private(&cert, read(&old_cert)?.as_bytes())?;
    forget_old_pair(dir)?;
    Ok(false)
}

/// Removes the `.old` pair: the current one has worked.
pub(crate) fn forget_old_pair(dir: &Path) -> anyhow::Result<()> {
    for name in [KEY_FILE, CERT_FILE] {
        let path = old_path(dir, name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rcgen::{CertifiedKey, generate_simple_self_signed};

    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renewal_falls_due_when_a_third_of_the_life_is_left() {
        // Two years and the hour of backdating the server adds.
        let life = CertLife {
            not_before: 1_000_000 - 3600,
            not_after: 1_000_000 + 730 * DAY,
        };
        let third = (730 * DAY + 3600) / 3;
        assert_eq!(life.renew_from(), life.not_after - third);
        assert!(!life.is_due(1_000_000));
        assert!(!life.is_due(life.renew_from() - 1));
        assert!(life.is_due(life.renew_from()));
        assert!(life.is_due(life.not_after + 1));
        // Far from due: the next look is the regular one; close: exactly when due.
        assert_eq!(life.next_check(1_000_000), CHECK_EVERY);
        assert_eq!(
            life.next_check(life.renew_from() - 90),
            Duration::from_secs(90)
        );
        // Due already (the renewal failed): not a busy loop.
        assert_eq!(
            life.next_check(life.renew_from() + 5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_short_certificate_is_looked_at_when_due_not_in_six_hours() {
        let life = CertLife {
            not_before: 100,
            not_after: 130,
        };
        assert_eq!(life.renew_from(), 120);
        assert_eq!(life.next_check(105), Duration::from_secs(15));
    }

    fn pair(name: &str) -> (String, String) {
        let CertifiedKey { cert, signing_key } =
            generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (signing_key.serialize_pem(), cert.pem())
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn enrolled_dir(key: &str, cert: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), key).unwrap();
        fs::write(dir.path().join(CERT_FILE), cert).unwrap();
        dir
    }

    #[test]
    fn certificate_life_is_read_from_the_pem() {
        let (_, cert) = pair("a");
        let life = CertLife::of_pem(&cert).unwrap();
        assert!(life.not_after > life.not_before, "{life:?}");
        assert!(CertLife::of_pem("not a certificate").is_err());
    }

    #[test]
    fn installing_keeps_the_working_pair_as_old_until_forgotten() {
        let (key1, cert1) = pair("one");
        let (key2, cert2) = pair("two");
        let dir = enrolled_dir(&key1, &cert1);
        let d = dir.path();
        assert!(pair_matches(&key1, &cert1).unwrap());
        assert!(!pair_matches(&key2, &cert1).unwrap());
        install_pair(d, &key2, &cert2).unwrap();
        assert_eq!(read(&d.join(KEY_FILE)).unwrap(), key2);
        assert_eq!(read(&d.join(CERT_FILE)).unwrap(), cert2);
        assert_eq!(read(&old_path(d, KEY_FILE)).unwrap(), key1);
        assert_eq!(read(&old_path(d, CERT_FILE)).unwrap(), cert1);
        // No temporary file left, and only the owner can read the key.
        assert_eq!(
            files(d),
            ["agent.crt", "agent.crt.old", "agent.key", "agent.key.old"]
        );
        let mode = fs::metadata(d.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second renewal before the second pair worked keeps the first as the fallback.
        let (key3, cert3) = pair("three");
        install_pair(d, &key3, &cert3).unwrap();
        assert_eq!(read(&old_path(d, KEY_FILE)).unwrap(), key1);
        assert!(
            recover_pair(d).unwrap(),
            "matching pair: the .old one waits"
        );
        forget_old_pair(d).unwrap();
        assert_eq!(files(d), ["agent.crt", "agent.key"]);
        assert!(!recover_pair(d).unwrap());
    }

    #[test]
    fn an_interrupted_renewal_goes_back_to_the_old_pair_at_start() {
        let (key1, cert1) = pair("one");
        let (key2, _) = pair("two");
        let dir = enrolled_dir(&key1, &cert1);
        let d = dir.path();
        // What a crash between the new key and the new certificate leaves.
        write_private(&old_path(d, KEY_FILE), key1.as_bytes()).unwrap();
        write_private(&old_path(d, CERT_FILE), cert1.as_bytes()).unwrap();
        write_private(&d.join(KEY_FILE), key2.as_bytes()).unwrap();
        assert!(!recover_pair(d).unwrap());
        assert_eq!(read(&d.join(KEY_FILE)).unwrap(), key1);
        assert_eq!(read(&d.join(CERT_FILE)).unwrap(), cert1);
        assert_eq!(files(d), ["agent.crt", "agent.key"]);
    }

    #[test]
    fn half_a_copy_of_the_old_pair_is_dropped_at_start() {
        let (key1, cert1) = pair("one");
        let dir = enrolled_dir(&key1, &cert1);
        let d = dir.path();
        write_private(&old_path(d, KEY_FILE), key1.as_bytes()).unwrap();
        assert!(!recover_pair(d).unwrap());
        assert_eq!(files(d), ["agent.crt", "agent.key"]);
        assert_eq!(read(&d.join(KEY_FILE)).unwrap(), key1);
    }
}
