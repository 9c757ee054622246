//! The HTTPS listener: rustls with an optional client certificate (enrollment has none yet),
//! verified against the agent CA during the handshake. A certificate from any other CA fails
//! the handshake; whether a valid certificate's agent is still allowed is the API's check.
//! The peer certificate travels to handlers as a request extension.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::pki::Pki;

/// The client certificate of a connection, if it showed one that the agent CA signed.
#[derive(Clone, Debug, Default)]
pub struct PeerCert(pub Option<Arc<Vec<u8>>>);

pub fn server_config(pki: &Pki) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.agent_ca_der.clone()))
        .context("agent CA certificate")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("cannot build the client certificate verifier")?;
    let chain = CertificateDer::pem_slice_iter(pki.server_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).context("server key")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish
/// for a few seconds.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(%error, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without it a response written as headers and body waits for the client's
        // delayed ACK: 40 ms on every small answer.
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%peer, %error, "Cannot set TCP_NODELAY.");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        warn!(%peer, %error, "TLS handshake refused.");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "TLS handshake timed out.");
                        return;
                    }
                };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.to_vec()));
            let peer_cert = PeerCert(cert);
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer_cert.clone());
                    req.extensions_mut().insert(PeerAddr(peer));
                    app.clone().oneshot(req)
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(conn.into_owned()).await {
                debug!(%peer, %error, "Connection ended with an error.");
            }
        });
    }
    info!("Shutting down: waiting for open requests.");
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("Open requests did not finish in 5 s; closing them.");
    }
    Ok(())
}

/// The remote address of a connection, for logs.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);
