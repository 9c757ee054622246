//! The server's health probes and its own metrics, run beside the API.

use std::{path::PathBuf, sync::Arc};

use tracing::warn;

use crate::{
    api::AppState,
    health::{
        CertExpiry, DiskSpace, ProcessFiles, SilentAgent, Snapshot, cert_not_after_ms,
        write_self_metrics,
    },
};

/// Takes a snapshot every `[health] probe_interval`, the first at once.
pub(super) async fn run_probes(app: Arc<AppState>, data_dir: PathBuf) {
    let certificates = server_certificates(&app);
    let mut tick = tokio::time::interval(app.health_config.probe_interval);
    let mut failures_before = app.store.stats().commit_failures;
    loop {
        tick.tick().await;
        let (app2, dir, certs) = (app.clone(), data_dir.clone(), certificates.clone());
        let taken = tokio::task::spawn_blocking(move || {
            let snapshot = snapshot(&app2, &dir, certs, failures_before);
            let failures = app2.store.stats().commit_failures;
            app2.health.set(snapshot);
            failures
        })
        .await;
        match taken {
            Ok(failures) => failures_before = failures,
            Err(error) => warn!(%error, "The health probe failed."),
        }
    }
}

fn snapshot(
    app: &AppState,
    data_dir: &std::path::Path,
    certificates: Vec<CertExpiry>,
    failures_before: u64,
) -> Snapshot {
    let now = crate::state::now_ms();
    let stats = app.store.stats();
    let (known, silent) = app.rules.hosts().silent(now);
    let mut s = Snapshot {
        at_ms: now,
        disk: DiskSpace::read(data_dir),
        disk_reserve_bytes: app.disk_guard.min_free_bytes(),
        certificates,
        agents_known: known,
        last_commit_ms: stats.last_commit_ms,
        commit_failures_recent: stats.commit_failures.saturating_sub(failures_before),
        rule_files_refused: app.rules.load_errors().len(),
        agent_certificates_expiring: agent_certs_expiring(app, now),
        files: ProcessFiles::read(),
        ..Snapshot::default()
    };
    s.set_silent(
        silent
            .into_iter()
            .map(|(agent_id, instance, last_seen_ms)| SilentAgent {
                agent_id,
                instance,
                last_seen_ms,
            })
            .collect(),
    );
    s
}

/// Approved agents whose certificates expire within `[health] certificate_warning`.
fn agent_certs_expiring(app: &AppState, now: i64) -> usize {
    let warning =
        i64::try_from(app.health_config.certificate_warning.as_millis()).unwrap_or(i64::MAX);
    match app.state.agent_certs_expiring(now.saturating_add(warning)) {
        Ok(list) => list.len(),
        Err(error) => {
            sysward_log_limit::warn_limited!(error, "Cannot read agent certificate expiry.");
            0
        }
    }
}

/// The server's certificate and its two CAs; they change only with a restart.
fn server_certificates(app: &AppState) -> Vec<CertExpiry> {
    let server_der = crate::pki::pem_to_der(&app.pki.server_chain_pem).ok();
    [
        ("server", server_der),
        ("ca", Some(app.pki.ca_der.clone())),
        ("agent-ca", Some(app.pki.agent_ca_der.clone())),
    ]
    .into_iter()
    .filter_map(|(name, der)| {
        Some(CertExpiry {
            name,
            not_after_ms: cert_not_after_ms(&der?)?,
        })
    })
    .collect()
}

/// Writes `/metrics` into the store every `[health] self_metrics_interval`.
pub(super) async fn write_own_metrics(app: Arc<AppState>) {
    let every = app.health_config.self_metrics_interval;
    if every.is_zero() {
        return;
    }
    let instance = crate::pki::hostname();
    let mut tick = tokio::time::interval(every);
    let mut failing = false;
    loop {
        tick.tick().await;
        let (app2, instance) = (app.clone(), instance.clone());
        let written = tokio::task::spawn_blocking(move || {
            let text = crate::api::metrics_text(&app2);
            write_self_metrics(
                app2.store.as_ref(),
                &text,
                &instance,
                crate::state::now_ms(),
            )
        })
        .await;
        // One warning when it starts failing, one line when it recovers.
        match written {
            Ok(Ok(_)) if failing => {
                failing = false;
                tracing::info!("The server's own metrics are stored again.");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) if !failing => {
                failing = true;
                warn!(%error, "Cannot store the server's own metrics.");
            }
            Err(error) if !failing => {
                failing = true;
                warn!(%error, "Cannot store the server's own metrics.");
            }
            _ => {}
        }
    }
}
