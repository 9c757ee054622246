//! One HTTP GET to a service on the host, for the collectors that read a status page or
//! an exporter (`scrape`, `nginx`, `apache`).
//!
//! `http://` only: these endpoints are on the host (loopback or one of its addresses),
//! where TLS would only cost a handshake per run; the `http` check speaks HTTPS when a
//! page must be reached through TLS. One request per connection, no redirects, the whole
//! exchange within a deadline (`sysward_platform::net`), the body cut at a limit and
//! flagged (`sysward_wire::http`). Errors are one phrase naming what failed.

use std::io::Write;
use std::time::Duration;

use sysward_platform::net::{self, Deadline, DeadlineStream, NetError};
use sysward_wire::http::{self as wire, Url, WireError};

/// A URL a collector of services may read: `http://` only.
pub(crate) fn parse_url(collector: &str, key: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| crate::settings::bad(collector, key, e))?;
    if url.tls {
        return Err(crate::settings::bad(
            collector,
            key,
            format!("{text:?}: only http:// (the endpoint is on this host)"),
        ));
    }
    Ok(url)
}

/// What a GET answered: status 200 to 299, the body (at most the limit).
#[derive(Debug)]
pub(crate) struct Page {
    /// The body, cut at the limit.
    pub(crate) body: Vec<u8>,
    /// Whether the body went past the limit.
    pub(crate) truncated: bool,
}

/// GETs `url` with `Accept: accept` within `timeout`, keeping at most `max_body` bytes of
/// the body. A status other than 2xx is an error.
pub(crate) fn get(
    url: &Url,
    accept: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<Page, String> {
    let deadline = Deadline::after(timeout);
    let (addrs, _) = net::resolve(&url.host, url.port, &deadline).map_err(|e| e.to_string())?;
    let (tcp, _, _) = net::connect(&addrs, &deadline).map_err(|e| e.to_string())?;
    let mut stream = DeadlineStream::new(tcp, &deadline);
    let headers = [("Accept".to_string(), accept.to_string())];
    let request = wire::request("GET", url, &headers, b"");
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(|e| NetError::io("sending the request", e, &deadline).to_string())?;
    let (response, _) = wire::read_response(&mut stream, false, max_body).map_err(|e| match e {
        WireError::Io(io) => NetError::io("reading the response", io, &deadline).to_string(),
        WireError::Malformed(m) => format!("malformed response: {m}"),
    })?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "HTTP {} {}",
            response.status,
            response.reason.chars().take(60).collect::<String>()
        ));
    }
    Ok(Page {
        body: response.body,
        truncated: response.truncated,
    })
}
