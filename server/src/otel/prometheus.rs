//! `OTEL_PROMETHEUS_PORT`: the `/metrics` page in plain HTTP without auth, on 127.0.0.1 (or
//! `OTEL_PROMETHEUS_HOST`), for a Prometheus or collector on the same host. The main
//! listener keeps `/metrics` behind an admin token; this port is for the host alone unless
//! the operator binds it wider.

use std::sync::Arc;

use anyhow::Context;
use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;
use tracing::{info, warn};

type Render = dyn Fn() -> String + Send + Sync;

/// Binds the port at start, so that a port in use stops the server with its name.
pub async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (OTEL_PROMETHEUS_PORT)"))?;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Serving /metrics without auth for a local scraper.");
    }
    Ok(listener)
}

/// Serves `/metrics` until the task is aborted.
pub async fn serve(listener: TcpListener, render: Arc<Render>) {
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { page(render).await }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") });
    if let Err(error) = axum::serve(listener, router).await {
        warn!(%error, "The local /metrics listener stopped.");
    }
}

async fn page(render: Arc<Render>) -> Response {
    // Rendering reads the store's statistics, which a cut may hold for a moment.
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            warn!(%error, "Cannot render /metrics.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the metrics\n",
            )
                .into_response()
        }
    }
}
