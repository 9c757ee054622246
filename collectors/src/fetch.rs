//! One HTTP GET to a service on the host, for the collectors that read a status page or
//! an exporter (`scrape`, `nginx`, `apache`), and the run of a status page collector.
//!
//! `http://` only: these endpoints are on the host (loopback or one of its addresses),
//! where TLS would only cost a handshake per run; the `http` check speaks HTTPS when a
//! page must be reached through TLS. One request per connection, no redirects, the whole
//! exchange within a deadline (`sysward_platform::net`), the body cut at a limit and
//! flagged (`sysward_wire::http`). Errors are one phrase naming what failed.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use sysward_platform::net::{self, Deadline, DeadlineStream, NetError};
use sysward_wire::http::{self as wire, Url, WireError};

use crate::settings::{self, HumanDuration};
use crate::{Kind, Output, Sample};

/// A URL a collector of services may read: `http://` only.
pub(crate) fn parse_url(collector: &str, key: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| settings::bad(collector, key, e))?;
    if url.tls {
        return Err(settings::bad(
            collector,
            key,
            format!("{text:?}: only http:// (the endpoint is on this host)"),
        ));
    }
    Ok(url)
}

/// A collector that reads one status page (`nginx`, `apache`): what sets its page apart
/// from the other's. Its settings (`url`, `request_timeout`) and its run are the same.
#[derive(Debug)]
pub(crate) struct StatusPage {
    /// The collector's name, as in `[collectors.NAME]`.
    pub(crate) collector: &'static str,
    /// The gauge that is 0 when the page could not be read.
    pub(crate) up: &'static str,
    /// The port of the default URL, on 127.0.0.1.
    pub(crate) port: u16,
    /// The path (and query) of the default URL.
    pub(crate) target: &'static str,
    /// The most of the body that is read.
    pub(crate) max_body: usize,
}

/// The settings of a collector that reads one status page (`nginx`, `apache`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageSettings {
    url: Option<String>,
    // `timeout` is the agent's key for the whole run; this one is the request's.
    request_timeout: Option<HumanDuration>,
}

impl StatusPage {
    /// How long reading the page may take unless `request_timeout` says otherwise.
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

    /// The page's URL unless `url` says otherwise: where its exporter looks by default.
    pub(crate) fn default_url(&self) -> Url {
        Url {
            tls: false,
            host: "127.0.0.1".into(),
            port: self.port,
            target: self.target.into(),
        }
    }

    /// `url` and `request_timeout` from the collector's table, over their defaults.
    pub(crate) fn settings(&self, table: &toml::Table) -> Result<(Url, Duration), String> {
        let s: PageSettings = settings::parse(self.collector, table)?;
        let url = match s.url {
            Some(text) => parse_url(self.collector, "url", &text)?,
            None => self.default_url(),
        };
        let timeout = settings::positive(
            self.collector,
            "request_timeout",
            s.request_timeout,
            Self::TIMEOUT,
        )?;
        Ok((url, timeout))
    }

    /// GETs `url` and adds the samples `parse` makes of the page to `out`; a page that
    /// cannot be read or parsed is an error naming `url`, and `up` at 0.
    pub(crate) fn collect(
        &self,
        url: &Url,
        timeout: Duration,
        out: &mut Output,
        parse: impl FnOnce(Page) -> Result<Vec<Sample>, String>,
    ) {
        match get(url, "text/plain", timeout, self.max_body).and_then(parse) {
            Ok(samples) => out.samples.extend(samples),
            Err(e) => {
                out.error(format!("{url}: {e}"));
                out.push(Sample::new(self.up, Kind::Gauge, 0.0));
            }
        }
    }
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
