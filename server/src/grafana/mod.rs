//! Provisioning Grafana through its HTTP API (`[grafana]` in `server.toml`).
//!
//! With `[grafana]` set, a task of the server makes Grafana show this server's data:
//! it checks Grafana's version (`GET /api/health`), creates or updates the datasource
//! (Grafana's Prometheus type pointing at this server, with a read token and this
//! server's CA), makes the folder if missing and uploads the dashboards shipped in
//! `packaging/grafana/dashboards/`, which are compiled into the binary. Then it checks
//! Grafana every `check_interval` and provisions again when the datasource went missing.
//!
//! Invariants: the task never blocks start, ingest or queries (it runs on its own and
//! only ever takes the status lock for a moment); while Grafana is down or refuses, it
//! retries with a doubling wait up to `retry_max`; the key and token files are read on
//! every attempt, so rotating them needs no restart; a reload starts over with the new
//! settings. `GET /api/grafana/health` reports [`Grafana::status_json`].

mod client;
mod config;
mod sync;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{info, warn};

pub use self::config::GrafanaConfig;
use self::{
    client::{CallError, Client},
    sync::{Checked, DatasourceSpec, Synced},
};

/// The shipped dashboards, by file name. The server's own dashboard is among them; it
/// shows data only where a Prometheus scrapes this server's `/metrics` into the store
/// the `$datasource` variable points at (see `packaging/grafana/README.md`).
pub const DASHBOARDS: [(&str, &str); 4] = [
    (
        "fleet-overview.json",
        include_str!("../../../packaging/grafana/dashboards/fleet-overview.json"),
    ),
    (
        "host-detail.json",
        include_str!("../../../packaging/grafana/dashboards/host-detail.json"),
    ),
    (
        "checks.json",
        include_str!("../../../packaging/grafana/dashboards/checks.json"),
    ),
    (
        "sysward-server.json",
        include_str!("../../../packaging/grafana/dashboards/sysward-server.json"),
    ),
];

/// The uid a datasource made by the sync gets (one made by hand keeps its own).
pub const DATASOURCE_UID: &str = "sysward";
/// The uid a folder made by the sync gets (a folder of the same title keeps its own).
pub const FOLDER_UID: &str = "sysward";

/// The first wait after a failed attempt; it doubles up to `retry_max`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What the sync works from: the settings and what the server adds to them.
#[derive(Debug, Clone)]
struct Inputs {
    config: GrafanaConfig,
    /// `datasource_url`, or the server's public URL.
    datasource_url: String,
    /// This server's CA.
    ca_pem: String,
}

/// What the last attempts found.
#[derive(Debug, Clone, Default)]
struct Status {
    reachable: Option<bool>,
    key_valid: Option<bool>,
    version: Option<String>,
    synced: bool,
    datasource_uid: Option<String>,
    folder_uid: Option<String>,
    dashboards: usize,
    last_sync_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    error: Option<String>,
}

/// The Grafana sync: its settings (changed by a reload) and its status.
pub struct Grafana {
    inputs: watch::Sender<Option<Inputs>>,
    status: Mutex<Status>,
    ca_pem: String,
}

impl Grafana {
    /// A sync for `config` (none: nothing to do), with the server's public URL as the
    /// datasource's default URL and its CA.
    pub fn new(config: Option<GrafanaConfig>, public_url: &str, ca_pem: &str) -> Arc<Grafana> {
        let grafana = Grafana {
            inputs: watch::Sender::new(None),
            status: Mutex::new(Status::default()),
            ca_pem: ca_pem.to_string(),
        };
        grafana.reload(config, public_url);
        Arc::new(grafana)
    }

    /// Takes new settings; the running task starts over with them (at once).
    pub fn reload(&self, config: Option<GrafanaConfig>, public_url: &str) {
        let inputs = config.map(|config| Inputs {
            datasource_url: config
                .datasource_url
                .clone()
                .unwrap_or_else(|| public_url.to_string())
                .trim_end_matches('/')
                .to_string(),
            config,
            ca_pem: self.ca_pem.clone(),
        });
        self.inputs.send_replace(inputs);
    }

    /// Runs until the server stops (abort the task).
    pub async fn run(self: Arc<Self>) {
        let mut changes = self.inputs.subscribe();
        loop {
            let inputs = changes.borrow_and_update().clone();
            self.set_status(Status::default());
            match inputs {
                None => {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
                Some(inputs) => {
                    tokio::select! {
                        () = self.serve(&inputs) => {}
                        changed = changes.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
    }

    /// Provisions, then checks, for as long as the settings stay.
    async fn serve(&self, inputs: &Inputs) {
        let mut backoff = FIRST_RETRY;
        let mut synced = false;
        loop {
            let wait = match self.attempt(inputs, synced).await {
                Ok(still_synced) => {
                    synced = still_synced;
                    backoff = FIRST_RETRY;
                    if synced {
                        inputs.config.check_interval
                    } else {
                        Duration::ZERO
                    }
                }
                Err(()) => {
                    synced = false;
                    let wait = backoff;
                    backoff = (backoff * 2).min(inputs.config.retry_max);
                    wait.min(inputs.config.retry_max)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One provisioning pass, or one check when already synced; `Ok(true)` when Grafana
    /// is (still) synced, `Ok(false)` when it needs provisioning again at once.
    async fn attempt(&self, inputs: &Inputs, synced: bool) -> Result<bool, ()> {
        self.update(|s| s.last_attempt_ms = Some(now_ms()));
        match pass(inputs, synced).await {
            Ok(Pass::Provisioned(synced)) => {
                self.record_synced(synced);
                Ok(true)
            }
            Ok(Pass::Checked(Checked::Fine { version })) => {
                self.update(|s| {
                    s.reachable = Some(true);
                    s.key_valid = Some(true);
                    s.version = Some(version);
                });
                Ok(true)
            }
            Ok(Pass::Checked(Checked::DatasourceMissing { version })) => {
                warn!(%version, "The Sysward datasource is gone from Grafana; provisioning again.");
                self.update(|s| {
                    s.synced = false;
                    s.version = Some(version);
                });
                Ok(false)
            }
            Err(error) => {
                self.record_failure(&error);
                Err(())
            }
        }
    }

    fn record_synced(&self, synced: Synced) {
        info!(
            version = %synced.version,
            datasource = %synced.datasource_uid,
            folder = %synced.folder_uid,
            dashboards = synced.dashboards,
            "Grafana provisioned."
        );
        self.update(|s| {
            *s = Status {
                reachable: Some(true),
                key_valid: Some(true),
                version: Some(synced.version),
                synced: true,
                datasource_uid: Some(synced.datasource_uid),
                folder_uid: Some(synced.folder_uid),
                dashboards: synced.dashboards,
                last_sync_ms: Some(now_ms()),
                last_attempt_ms: s.last_attempt_ms,
                error: None,
            }
        });
    }

    fn record_failure(&self, error: &CallError) {
        let text = error.to_string();
        let changed = self.update(|s| {
            let changed = s.error.as_deref() != Some(text.as_str());
            s.synced = false;
            s.error = Some(text.clone());
            match error {
                CallError::Unreachable(_) => s.reachable = Some(false),
                CallError::KeyRefused { .. } => {
                    s.reachable = Some(true);
                    s.key_valid = Some(false);
                }
                CallError::Status { .. } | CallError::Answer { .. } => s.reachable = Some(true),
                CallError::Setup(_) => {}
            }
            changed
        });
        // Once per new error: a Grafana down for hours is one line, not one per retry.
        if changed {
            warn!(error = %text, "Grafana not provisioned; retrying.");
        }
    }

    fn update<T>(&self, f: impl FnOnce(&mut Status) -> T) -> T {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut status)
    }

    fn set_status(&self, status: Status) {
        self.update(|s| *s = status);
    }

    /// What `GET /api/grafana/health` answers.
    pub fn status_json(&self) -> Value {
        let inputs = self.inputs.borrow().clone();
        let Some(inputs) = inputs else {
            return json!({ "configured": false });
        };
        let s = self.update(|s| s.clone());
        json!({
            "configured": true,
            "url": inputs.config.url,
            "reachable": s.reachable,
            "key_valid": s.key_valid,
            "version": s.version,
            "synced": s.synced,
            "datasource": {
                "name": inputs.config.datasource_name,
                "uid": s.datasource_uid,
                "url": inputs.datasource_url,
            },
            "folder": { "title": inputs.config.folder, "uid": s.folder_uid },
            "dashboards": s.dashboards,
            "last_sync": s.last_sync_ms.map(rfc3339),
            "last_attempt": s.last_attempt_ms.map(rfc3339),
            "error": s.error,
        })
    }
}

/// What one attempt did.
enum Pass {
    Provisioned(Synced),
    Checked(Checked),
}

/// Provisions Grafana, or only checks it when it is `synced`.
async fn pass(inputs: &Inputs, synced: bool) -> Result<Pass, CallError> {
    let c = &inputs.config;
    let client = make_client(c)?;
    if synced {
        return sync::check(&client, &c.datasource_name)
            .await
            .map(Pass::Checked);
    }
    let spec = DatasourceSpec {
        name: c.datasource_name.clone(),
        url: inputs.datasource_url.clone(),
        token: read_secret("datasource_token_file", &c.datasource_token_file)?,
        ca_pem: inputs.ca_pem.clone(),
    };
    sync::provision(&client, &spec, &c.folder)
        .await
        .map(Pass::Provisioned)
}

fn make_client(c: &GrafanaConfig) -> Result<Client, CallError> {
    let key = read_secret("api_key_file", &c.api_key_file)?;
    let ca = match &c.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CallError::Setup(format!(
                "[grafana] ca_file: cannot read {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    Client::new(&c.url, key, ca.as_deref())
}

/// A secret file's first line, trimmed; empty is an error.
fn read_secret(key: &str, path: &std::path::Path) -> Result<String, CallError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CallError::Setup(format!(
            "[grafana] {key}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        return Err(CallError::Setup(format!(
            "[grafana] {key}: {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_the_first_line_and_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "glsa_abc \nrest\n").unwrap();
        assert_eq!(read_secret("api_key_file", &path).unwrap(), "glsa_abc");
        std::fs::write(&path, "\n").unwrap();
        let err = read_secret("api_key_file", &path).unwrap_err().to_string();
        assert!(
            err.contains("api_key_file") && err.contains("empty"),
            "{err}"
        );
        let err = read_secret("api_key_file", &dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn without_settings_the_status_says_not_configured() {
        let g = Grafana::new(None, "https://mon:8443", "PEM");
        assert_eq!(g.status_json(), json!({ "configured": false }));
    }
}
