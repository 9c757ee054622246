//! The OTLP exporters: HTTP/protobuf over reqwest's blocking client on our rustls (ring,
//! the system's roots for `https` endpoints), each wrapped so that failures are logged at
//! most once per interval with how many there were, never once per failure.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    metrics::{Temporality, data::ResourceMetrics, exporter::PushMetricExporter},
    trace::{SpanData, SpanExporter},
};
use sysward_log_limit::Throttle;
use tracing::{info, warn};

/// The signals, as `/metrics` labels them.
const SIGNALS: [&str; 2] = ["metrics", "traces"];

/// Exports by signal: [succeeded, failed].
static EXPORTS: [[AtomicU64; 2]; 2] = [
    [AtomicU64::new(0), AtomicU64::new(0)],
    [AtomicU64::new(0), AtomicU64::new(0)],
];

/// The exporters' counters in Prometheus' text format, zeros when nothing is exported.
pub fn render_counters() -> String {
    let mut o = String::new();
    for (i, (name, help)) in [
        (
            "sysward_server_otlp_exports_total",
            "OTLP exports that the endpoint accepted, by signal.",
        ),
        (
            "sysward_server_otlp_export_failures_total",
            "OTLP exports that failed (their data is dropped), by signal.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
        for (s, signal) in SIGNALS.iter().enumerate() {
            let n = EXPORTS[s][i].load(Ordering::Relaxed);
            let _ = writeln!(o, "{name}{{signal=\"{signal}\"}} {n}");
        }
    }
    o
}

/// The client both exporters share; its timeout bounds one attempt.
pub(super) fn http_client(timeout: Duration) -> anyhow::Result<reqwest_otlp::blocking::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // An endpoint over plain http (a local collector) needs none; https without roots
    // fails at each export, which the log then says.
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS for the OTLP exporter")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest_otlp::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .context("cannot build the OTLP exporter's HTTP client")
}

pub(super) fn metric_exporter(
    client: reqwest_otlp::blocking::Client,
) -> anyhow::Result<Logged<opentelemetry_otlp::MetricExporter>> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .context("OTLP metric exporter")?;
    Ok(Logged::new(exporter, 0))
}

pub(super) fn span_exporter(
    client: reqwest_otlp::blocking::Client,
) -> anyhow::Result<Logged<opentelemetry_otlp::SpanExporter>> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .context("OTLP span exporter")?;
    Ok(Logged::new(exporter, 1))
}

/// An exporter whose exports are counted and whose failures are logged: the first at once,
/// then at most once a minute.
#[derive(Debug)]
pub(super) struct Logged<E> {
    inner: E,
    /// Index in [`SIGNALS`].
    signal: usize,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    log: Throttle,
    /// Whether the last export failed, to say once that it works again.
    failing: bool,
}

impl<E> Logged<E> {
    fn new(inner: E, signal: usize) -> Self {
        Self {
            inner,
            signal,
            failures: Mutex::new(Failures::default()),
        }
    }

    fn note(&self, result: &OTelSdkResult) {
        let signal = SIGNALS[self.signal];
        EXPORTS[self.signal][usize::from(result.is_err())].fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Err(error) = result else {
            if std::mem::take(&mut f.failing) {
                info!(signal, "OTLP export works again.");
            }
            return;
        };
        f.failing = true;
        if let Some(held) = f.log.allow(Instant::now()) {
            warn!(
                signal,
                %error,
                similar_since_last = held,
                "OTLP export failed; its data is dropped (logged at most once a minute)."
            );
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Logged<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.note(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

impl<E: SpanExporter> SpanExporter for Logged<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.note(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
