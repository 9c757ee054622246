//! The agent's HTTPS client: HTTP/1.1 over rustls to its one server, on one kept
//! connection.
//!
//! The agent only ever POSTs to the server it enrolled with, one request at a time. A
//! general client (reqwest: a pool, redirects, proxies, URL and IDNA handling) brought
//! about 400 KiB of code the agent never ran, and on the agent binary code is resident
//! memory on every host. This is hyper's HTTP/1.1 connection over tokio-rustls.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, pki_types::ServerName};
use std::sync::Arc;
use tokio::{net::TcpStream, sync::Mutex};
use tokio_rustls::TlsConnector;
use tracing::debug;

/// Larger answers are refused: the server's are a line of JSON.
const MAX_RESPONSE: usize = 1 << 20;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpsError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {authority} failed: {source}")]
    Http {
        authority: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no answer from {authority} within {after:?}")]
    Timeout { authority: String, after: Duration },
}

/// The server's address, from an `https://host[:port][/prefix]` URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Endpoint {
    /// As dialled and as sent in `Host`: `name:port` or `[v6]:port`.
    authority: String,
    host: String,
    port: u16,
    /// Prepended to request paths; empty or `/something` without a trailing `/`.
    prefix: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!(
                "{url:?}: user info, query and fragment are not supported in the server URL"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{url:?}: port {p:?} is not a port number"))?,
        };
        ServerName::try_from(host).map_err(|_| format!("{url:?}: {host:?} is not a host name"))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            authority,
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// A response, body read whole.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

pub(crate) struct HttpsClient {
    endpoint: Endpoint,
    host_header: HeaderValue,
    connector: TlsConnector,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// The kept connection; a request holds the lock, so requests go one at a time.
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl HttpsClient {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: ClientConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        let host_header = HeaderValue::from_str(&endpoint.authority)
            .map_err(|_| format!("{:?} cannot be sent as a Host header", endpoint.authority))?;
        Ok(Self {
            endpoint,
            host_header,
            connector: TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            request_timeout,
            connection: Mutex::new(None),
        })
    }

    /// Connects with `tls` from the next request on (a renewed client certificate); the
    /// kept connection, opened with the old settings, is closed.
    pub(crate) fn replace_tls(&mut self, tls: Arc<ClientConfig>) {
        self.connector = TlsConnector::from(tls);
        *self.connection.get_mut() = None;
    }

    /// POSTs `body` to the endpoint's prefix + `path`, within the request timeout
    /// (connecting included).
    pub(crate) async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
        body: Bytes,
    ) -> Result<Response, HttpsError> {
        let request = || {
            let mut builder = Request::post(format!("{}{path}", self.endpoint.prefix))
                .header(header::HOST, self.host_header.clone())
                .header(header::CONTENT_TYPE, content_type);
            if let Some(encoding) = content_encoding {
                builder = builder.header(header::CONTENT_ENCODING, encoding);
            }
            builder
                .body(Full::new(body.clone()))
                .map_err(|e| self.http_error(e))
        };
        let timeout = self.request_timeout;
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .unwrap_or_else(|_| {
                Err(HttpsError::Timeout {
                    authority: self.endpoint.authority.clone(),
                    after: timeout,
                })
            })
    }

    /// Sends the request `request` makes, made a second time if it has to go again.
    async fn exchange(
        &self,
        request: impl Fn() -> Result<Request<Full<Bytes>>, HttpsError>,
    ) -> Result<Response, HttpsError> {
        let mut kept = self.connection.lock().await;
        // A kept connection the server has closed in the meantime (its idle timeout, a
        // restart) fails without the request having been handled: the request goes once
        // more on a new connection. Both requests the agent makes are safe to repeat: a
        // batch is acked again by seq and never stored twice, and enrollment is resumable.
        if let Some(mut sender) = kept.take()
            && sender.ready().await.is_ok()
        {
            match sender.send_request(request()?).await {
                Ok(response) => {
                    *kept = Some(sender);
                    return self.read(response).await;
                }
                Err(e) => debug!(error = %e, "Kept connection failed; sending on a new one."),
            }
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request()?)
            .await
            .map_err(|e| self.http_error(e))?;
        *kept = Some(sender);
        self.read(response).await
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, HttpsError> {
        let authority = &self.endpoint.authority;
        let timed_out = || HttpsError::Timeout {
            authority: authority.clone(),
            after: self.connect_timeout,
        };
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| HttpsError::Connect {
            authority: authority.clone(),
            source,
        })?;
        // Batches are written whole; Nagle would only hold the last segment back.
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(self.endpoint.host.clone()).map_err(|e| HttpsError::Connect {
                authority: authority.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
        let tls = tokio::time::timeout(self.connect_timeout, self.connector.connect(name, tcp))
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| HttpsError::Tls {
                authority: authority.clone(),
                source,
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.http_error(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "Connection to the server ended.");
            }
        });
        Ok(sender)
    }

    async fn read(
        &self,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Response, HttpsError> {
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|source| HttpsError::Http {
                authority: self.endpoint.authority.clone(),
                source,
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn http_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> HttpsError {
        HttpsError::Http {
            authority: self.endpoint.authority.clone(),
            source: Box::new(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parts(url: &str) -> Result<(String, String, u16, String), String> {
        Endpoint::parse(url).map(|e| (e.authority, e.host, e.port, e.prefix))
    }

    #[test]
    fn server_urls_as_operators_write_them() {
        for (url, authority, host, port, prefix) in [
            (
                "https://mon.example:8443",
                "mon.example:8443",
                "mon.example",
                8443,
                "",
            ),
            (
                "https://mon.example/",
                "mon.example:443",
                "mon.example",
                443,
                "",
            ),
            (
                "https://10.0.0.5:8443/sysward/",
                "10.0.0.5:8443",
                "10.0.0.5",
                8443,
                "/sysward",
            ),
            ("https://[::1]:8443", "[::1]:8443", "::1", 8443, ""),
            ("https://[fe80::1]", "[fe80::1]:443", "fe80::1", 443, ""),
        ] {
            assert_eq!(
                parts(url),
                Ok((authority.into(), host.into(), port, prefix.into())),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_server_urls_say_what_is_wrong() {
        for (url, says) in [
            ("http://mon.example", "not an https:// URL"),
            ("https://", "has no host"),
            ("https://:8443", "has no host"),
            ("https://mon.example:http", "not a port number"),
            ("https://mon.example:0", "not a port number"),
            ("https://mon.example:70000", "not a port number"),
            ("https://[::1:8443", "unclosed ["),
            ("https://user@mon.example", "not supported"),
            ("https://mon.example/?x=1", "not supported"),
            ("https://bad_host!:8443", "is not a host name"),
        ] {
            let e = Endpoint::parse(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(url in "https://[\\[\\]:/a-z0-9.@?#_-]{0,30}") {
            let _ = Endpoint::parse(&url);
        }
    }
}
