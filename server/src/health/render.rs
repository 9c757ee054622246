//! The server's health on `/metrics`: the product's documented process and HTTP names,
//! and `sysward_server_*` figures for disk, certificates, agents, commits and ingest.

use std::fmt::Write;

use super::{HealthConfig, HealthMonitor, Status, assess, probe};
use crate::{
    metrics::{family, sample},
    store::StoreStats,
};

/// Every check [`assess`] can name, so that each has a series even while it passes.
const CHECKS: [&str; 6] = [
    "storage",
    "disk_space",
    "certificate",
    "agent_certificates",
    "commits",
    "rule_files",
];

/// What the renderer needs beyond the snapshot.
pub struct HealthFigures<'a> {
    pub monitor: &'a HealthMonitor,
    pub config: &'a HealthConfig,
    pub store: &'a StoreStats,
    pub storage_ok: bool,
    pub ingest_slots: usize,
    pub ingest_free: usize,
    /// Ingest requests refused by `[storage] min_free` since start.
    pub disk_refusals: u64,
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    sample(out, name, "gauge", help, value);
}

pub fn render_health(out: &mut String, f: &HealthFigures<'_>) {
    let snapshot = f.monitor.latest();
    let (status, problems) = assess(&snapshot, f.storage_ok, f.config);
    let code = |s: Status| s as u8;
    gauge(
        out,
        "sysward_server_health_status",
        "The server's health as GET /api/health says it: 0 ok, 1 degraded, 2 failing.",
        code(status),
    );
    family(
        out,
        "sysward_server_health_check",
        "gauge",
        "Each health check: 0 ok, 1 degraded, 2 failing.",
    );
    for check in CHECKS {
        let worst = problems
            .iter()
            .filter(|p| p.check == check)
            .map(|p| p.status)
            .max()
            .unwrap_or(Status::Ok);
        let _ = writeln!(
            out,
            "sysward_server_health_check{{check=\"{check}\"}} {}",
            code(worst)
        );
    }
    render_host(out, &snapshot);
    render_agents(out, &snapshot);
    render_store(out, f);
    f.monitor.http.render(out);
}

fn render_host(out: &mut String, s: &super::Snapshot) {
    if let Some(d) = &s.disk {
        gauge(
            out,
            "sysward_server_data_size_bytes",
            "Size of the file system holding the data directory.",
            d.size_bytes,
        );
        gauge(
            out,
            "sysward_server_data_available_bytes",
            "Bytes the server can still write on the data directory's file system.",
            d.available_bytes,
        );
    }
    family(
        out,
        "sysward_server_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the server's own certificates expire (server, ca, agent-ca).",
    );
    for c in &s.certificates {
        let _ = writeln!(
            out,
            "sysward_server_certificate_expiry_timestamp_seconds{{certificate=\"{}\"}} {}",
            c.name,
            c.not_after_ms / 1000
        );
    }
    if let Some(files) = s.files {
        gauge(
            out,
            "process_open_fds",
            "Open file descriptors.",
            files.open,
        );
        if let Some(max) = files.max {
            gauge(
                out,
                "process_max_fds",
                "The soft limit of open file descriptors.",
                max,
            );
        }
    }
    if let Some(start) = probe::process_start_seconds() {
        gauge(
            out,
            "process_start_time_seconds",
            "When the process started, Unix seconds.",
            start,
        );
    }
}

fn render_agents(out: &mut String, s: &super::Snapshot) {
    gauge(
        out,
        "sysward_server_agents_known",
        "Approved agents the server has heard from.",
        s.agents_known,
    );
    gauge(
        out,
        "sysward_server_agents_silent",
        "Approved agents whose batches stopped for three of their critical intervals.",
        s.silent_agents_total,
    );
    gauge(
        out,
        "sysward_server_agent_certificates_expiring",
        "Agent certificates expiring within [health] certificate_warning.",
        s.agent_certificates_expiring,
    );
}

fn render_store(out: &mut String, f: &HealthFigures<'_>) {
    gauge(
        out,
        "sysward_server_store_last_commit_timestamp_seconds",
        "When the store last committed ingested data, Unix seconds; 0 before any.",
        f.store.last_commit_ms as f64 / 1000.0,
    );
    family(
        out,
        "sysward_server_store_commit_seconds_total",
        "counter",
        "Time spent writing and committing ingest transactions.",
    );
    let _ = writeln!(
        out,
        "sysward_server_store_commit_seconds_total {}",
        f.store.commit_micros as f64 / 1e6
    );
    family(
        out,
        "sysward_server_store_commit_failures_total",
        "counter",
        "Ingest transactions that failed to commit.",
    );
    let _ = writeln!(
        out,
        "sysward_server_store_commit_failures_total {}",
        f.store.commit_failures
    );
    family(
        out,
        "db_client_connections_usage",
        "gauge",
        "Read connections of the store's pool by state.",
    );
    for (state, n) in [
        ("used", f.store.readers_used),
        ("idle", f.store.readers_idle),
    ] {
        let _ = writeln!(
            out,
            "db_client_connections_usage{{pool_name=\"store.db\",state=\"{state}\"}} {n}"
        );
    }
    family(
        out,
        "sysward_server_ingest_refused_disk_total",
        "counter",
        "Ingest requests answered 503 because free space was below [storage] min_free.",
    );
    let _ = writeln!(
        out,
        "sysward_server_ingest_refused_disk_total {}",
        f.disk_refusals
    );
    gauge(
        out,
        "sysward_server_ingest_in_flight",
        "Ingest requests being decoded or stored now: the ingest queue's depth.",
        f.ingest_slots.saturating_sub(f.ingest_free),
    );
    gauge(
        out,
        "sysward_server_ingest_slots",
        "Ingest requests taken at once ([limits] max_concurrent_ingests); more get 429.",
        f.ingest_slots,
    );
}
