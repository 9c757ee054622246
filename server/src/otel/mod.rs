//! The server's own telemetry: its `/metrics` figures and spans of its request handling and
//! rule evaluation over OTLP (HTTP/protobuf) when `OTEL_ENABLED=true`, and the same
//! `/metrics` text without auth on a local port when `OTEL_PROMETHEUS_PORT` is set.
//!
//! Off, nothing of it runs: no provider, no exporter thread, no request layer; a rule
//! group's evaluation checks one `OnceLock`. On, the SDK's periodic reader and batch span
//! processor each own a thread and do every export there, with a bounded span queue (spans
//! past it are dropped) and a timeout per export, so that a slow or unreachable endpoint
//! never holds up ingest, queries or alerting.

mod export;
mod instruments;
pub mod prometheus;
pub mod settings;
pub mod snapshot;
pub mod spans;

use std::time::Duration;

use opentelemetry::{KeyValue, metrics::MeterProvider as _, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SdkTracerProvider,
};
use tracing::{info, warn};

pub use export::render_counters;
pub use settings::Settings;

/// What the server was built as.
const SERVICE_NAME: &str = "sysward-server";
const SCOPE: &str = "sysward-server";

/// The running exporters; [`Telemetry::shutdown`] sends what is left.
#[derive(Default)]
pub struct Telemetry {
    meters: Option<SdkMeterProvider>,
    tracers: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Starts what `settings` asks for; `render` gives the `/metrics` page.
    pub fn start(
        settings: &Settings,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        if !settings.exports() {
            return Ok(Self::default());
        }
        let settings = settings.clone();
        // reqwest's blocking client owns a runtime that must not be made, nor dropped, on
        // one of tokio's threads.
        std::thread::Builder::new()
            .name("otel-start".into())
            .spawn(move || Self::build(&settings, Box::new(render)))?
            .join()
            .map_err(|_| anyhow::anyhow!("starting the OTLP exporters panicked"))?
    }

    fn build(
        settings: &Settings,
        render: Box<dyn Fn() -> String + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let resource = resource();
        let client = export::http_client(settings.export_timeout)?;
        let mut telemetry = Self::default();
        if settings.metrics {
            let exporter = export::metric_exporter(client.clone())?;
            let reader = PeriodicReader::builder(exporter)
                .with_interval(settings.export_interval)
                .build();
            let provider = SdkMeterProvider::builder()
                .with_resource(resource.clone())
                .with_reader(reader)
                .build();
            let names = instruments::register(&provider.meter(SCOPE), render);
            info!(
                instruments = names,
                every = ?settings.export_interval,
                "Exporting the server's metrics over OTLP."
            );
            telemetry.meters = Some(provider);
        }
        if settings.traces {
            let exporter = export::span_exporter(client)?;
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(exporter)
                .build();
            spans::install(provider.tracer(SCOPE));
            info!("Exporting traces of requests and rule evaluations over OTLP.");
            telemetry.tracers = Some(provider);
        }
        Ok(telemetry)
    }

    /// Whether requests are traced: the HTTP layer is installed only then.
    pub fn traces_requests(&self) -> bool {
        self.tracers.is_some() && spans::installed()
    }

    /// Sends what is left, waiting at most `limit`: an unreachable endpoint does not hold
    /// the shutdown.
    pub fn shutdown(self, limit: Duration) {
        if self.meters.is_none() && self.tracers.is_none() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("otel-stop".into())
            .spawn(move || {
                if let Some(m) = &self.meters
                    && let Err(error) = m.shutdown()
                {
                    warn!(%error, "The last OTLP metrics export failed.");
                }
                if let Some(t) = &self.tracers
                    && let Err(error) = t.shutdown()
                {
                    warn!(%error, "The last OTLP traces export failed.");
                }
                let _ = done.send(());
            });
        if spawned.is_ok() && finished.recv_timeout(limit).is_err() {
            warn!(
                ?limit,
                "The OTLP exporters did not finish; their last data is lost."
            );
        }
    }
}

/// `service.name` is `OTEL_SERVICE_NAME`, else the `service.name` of
/// `OTEL_RESOURCE_ATTRIBUTES`, else `sysward-server`; the SDK reads both variables.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if !named {
        builder = builder.with_service_name(SERVICE_NAME);
    }
    builder.build()
}

/// Wraps the API's router with the request span layer when requests are traced.
pub fn layer(router: axum::Router, telemetry: &Telemetry) -> axum::Router {
    if telemetry.traces_requests() {
        router.layer(axum::middleware::from_fn(spans::http_request))
    } else {
        router
    }
}
