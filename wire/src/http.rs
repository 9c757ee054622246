//! The HTTP/1.1 the `http` check speaks: URLs, the request it writes and the response it
//! reads.
//!
//! The client is deliberately small: one request per connection (`Connection: close`),
//! no compression (`Accept-Encoding: identity`), no proxies. A response is read from any
//! [`Read`]: the head (status line and headers, at most [`MAX_HEAD`] bytes, `1xx`
//! interim responses skipped), then the body delimited by `Transfer-Encoding: chunked`,
//! `Content-Length` or the end of the connection, kept up to a cap and cut there (a cut
//! body is flagged, not an error). Nothing here panics on any input: the reader is
//! property-tested on arbitrary bytes.

use std::io::{self, Read};
use std::net::Ipv6Addr;
use std::time::Instant;

/// The longest response head read: status line and headers.
pub const MAX_HEAD: usize = 64 * 1024;

/// How many interim (`1xx`) responses are skipped before giving up.
const MAX_INTERIM: usize = 8;

/// An `http://` or `https://` URL, split the way a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https`?
    pub tls: bool,
    /// Host name (lower case) or IP address, without brackets.
    pub host: String,
    /// Port, explicit or the scheme's.
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

impl Url {
    /// Parses an absolute URL. Credentials in it are refused: they would end up in logs.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = strip_prefix_ci(text, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "http://") {
            (false, rest)
        } else {
            return Err(format!("{text:?}: only http:// and https:// URLs"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(format!(
                "{}: credentials in the URL are not allowed (use auth)",
                redact_userinfo(text)
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = crate::addr::split_host_port(authority, Some(default_port))
            .map_err(|e| format!("URL host: {e}"))?;
        let tail = tail.split('#').next().unwrap_or("");
        let target = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        if let Some(bad) = target.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{text:?}: {bad:?} in the path must be percent-encoded"
            ));
        }
        Ok(Url {
            tls,
            host,
            port,
            target,
        })
    }

    /// The `Host` header: host, and port when it is not the scheme's.
    pub fn authority(&self) -> String {
        let host = if self.host.parse::<Ipv6Addr>().is_ok() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Scheme, host and port: what a redirect must keep for credentials to go along.
    pub fn origin(&self) -> (bool, &str, u16) {
        (self.tls, &self.host, self.port)
    }

    /// The URL a `Location` header leads to, relative to this one.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let location = location.trim();
        if strip_prefix_ci(location, "http://").is_some()
            || strip_prefix_ci(location, "https://").is_some()
        {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.tls { "https://" } else { "http://" };
            return Url::parse(&format!("{scheme}{rest}"));
        }
        if location.contains("://") {
            return Err(format!("redirect to {location:?}: not an http(s) URL"));
        }
        let target = if location.starts_with('/') {
            location.to_string()
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = match path.rfind('/') {
                Some(at) => &path[..=at],
                None => "/",
            };
            if location.starts_with('?') {
                format!("{path}{location}")
            } else {
                format!("{dir}{location}")
            }
        };
        let scheme = if self.tls { "https" } else { "http" };
        Url::parse(&format!("{scheme}://{}{target}", self.authority()))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.target)
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A URL with whatever stands before `@` in its authority replaced by `***`.
fn redact_userinfo(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &text[..s + 3], &text[at..]),
        _ => text.to_string(),
    }
}

/// Whether `name` is an HTTP token (a method or a header name).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may stand in a header: no line breaks, no other control bytes but tab.
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || !b.is_ascii_control())
}

/// Writes a request head and body. `headers` come after the defaults they do not
/// override (`Host`, `User-Agent`, `Accept`); `Connection`, `Content-Length` and
/// `Accept-Encoding` are always ours.
pub fn request(method: &str, url: &Url, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {} HTTP/1.1\r\n", url.target);
    if !has("host") {
        head.push_str(&format!("Host: {}\r\n", url.authority()));
    }
    if !has("user-agent") {
        head.push_str(concat!(
            "User-Agent: sysward-agent/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        let ours = [
            "connection",
            "content-length",
            "accept-encoding",
            "transfer-encoding",
        ];
        if ours.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            continue;
        }
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("Accept-Encoding: identity\r\nConnection: close\r\n");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A response as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, at most the cap.
    pub body: Vec<u8>,
    /// Whether the body went past the cap and was cut there.
    pub truncated: bool,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed or timed out.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The peer broke HTTP.
    #[error("malformed response: {0}")]
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> WireError {
    WireError::Malformed(message.into())
}

/// A buffered reader that notes when the first byte arrived.
struct Source<'a, R: Read> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    first_byte: Option<Instant>,
}

impl<R: Read> Source<'_, R> {
    /// Reads more; false at the end of the stream. A TLS peer that closes without
    /// `close_notify` ends the stream too: many servers do.
    fn fill(&mut self) -> Result<bool, WireError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        let n = loop {
            match self.inner.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break 0,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line ending in `\n` (the `\r` before it dropped), at most `max` bytes.
    fn line(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(at) = self.available().iter().position(|&b| b == b'\n') {
                let mut line = self.available()[..at].to_vec();
                self.pos += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.available().len() > max {
                return Err(malformed(format!("line longer than {max} bytes")));
            }
            if !self.fill()? {
                return Err(malformed("connection closed in the middle of a line"));
            }
        }
    }

    /// Moves up to `n` bytes into `out`, at most `room` of them (callers stop at a
    /// `room` of 0); returns how many, 0 at the end of the stream.
    fn take(&mut self, n: u64, out: &mut Vec<u8>, room: &mut usize) -> Result<u64, WireError> {
        if self.available().is_empty() && !self.fill()? {
            return Ok(0);
        }
        let avail = self.available();
        let len = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(avail.len())
            .min(*room);
        out.extend_from_slice(&avail[..len]);
        *room -= len;
        self.pos += len;
        Ok(len as u64)
    }
}

/// Reads one response from `reader`. `head_only` for a `HEAD` request (no body follows);
/// the body is kept up to `max_body` bytes, and reading stops there. Returns the
/// response and when its first byte arrived.
pub fn read_response<R: Read>(
    reader: &mut R,
    head_only: bool,
    max_body: usize,
) -> Result<(Response, Option<Instant>), WireError> {
    let mut src = Source {
        inner: reader,
        buf: Vec::new(),
        pos: 0,
        eof: false,
        first_byte: None,
    };
    let mut interim = 0;
    let (status, reason, headers) = loop {
        let (status, reason, headers) = read_head(&mut src)?;
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(malformed("101 Switching Protocols to a plain request"));
            }
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(malformed("too many 1xx responses"));
            }
            continue;
        }
        break (status, reason, headers);
    };
    let mut response = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
        truncated: false,
    };
    if head_only || status == 204 || status == 304 {
        return Ok((response, src.first_byte));
    }
    let mut room = max_body;
    let chunked = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .next_back()
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        read_chunked(&mut src, &mut response, &mut room)?;
    } else if let Some(length) = content_length(&response.headers)? {
        let mut left = length;
        while left > 0 {
            if room == 0 {
                response.truncated = true;
                break;
            }
            let n = src.take(left, &mut response.body, &mut room)?;
            if n == 0 {
                return Err(malformed(format!(
                    "connection closed after {} of {length} body bytes",
                    length - left
                )));
            }
            left -= n;
        }
    } else {
        loop {
            if room == 0 {
                // More is waiting, or may come: waiting to find out would cost time.
                response.truncated = !src.available().is_empty() || !src.eof;
                break;
            }
            if src.take(u64::MAX, &mut response.body, &mut room)? == 0 {
                break;
            }
        }
    }
    Ok((response, src.first_byte))
}

type Head = (u16, String, Vec<(String, String)>);

fn read_head<R: Read>(src: &mut Source<'_, R>) -> Result<Head, WireError> {
    let mut total = 0;
    let status_line = loop {
        let line = src.line(MAX_HEAD)?;
        total += line.len() + 2;
        // RFC 9112 2.2: a client may ignore empty lines before the status line.
        if !line.is_empty() {
            break line;
        }
        if total > MAX_HEAD {
            return Err(malformed("no status line"));
        }
    };
    let (status, reason) = parse_status_line(&status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = src.line(MAX_HEAD)?;
        total += line.len() + 2;
        if total > MAX_HEAD {
            return Err(malformed(format!("head longer than {MAX_HEAD} bytes")));
        }
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(malformed("folded header line"));
        }
        let text = String::from_utf8_lossy(&line);
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| malformed(format!("header line without ':': {:?}", excerpt(&text))))?;
        if !is_token(name) {
            return Err(malformed(format!("bad header name {:?}", excerpt(name))));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok((status, reason, headers))
}

/// `HTTP/1.1 200 OK` to (200, "OK").
pub fn parse_status_line(line: &[u8]) -> Result<(u16, String), WireError> {
    let text = String::from_utf8_lossy(line);
    let bad = || malformed(format!("bad status line {:?}", excerpt(&text)));
    let rest = text.strip_prefix("HTTP/1.").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().ok_or_else(bad)?;
    if minor.len() != 1 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code = parts.next().ok_or_else(bad)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    Ok((status, parts.next().unwrap_or("").trim().to_string()))
}

fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, WireError> {
    let mut length = None;
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!(
                    "bad Content-Length {:?}",
                    excerpt(value)
                )));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| malformed("Content-Length too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn read_chunked<R: Read>(
    src: &mut Source<'_, R>,
    response: &mut Response,
    room: &mut usize,
) -> Result<(), WireError> {
    loop {
        let line = src.line(4096)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        if size_text.is_empty() || size_text.len() > 16 {
            return Err(malformed(format!("bad chunk size {:?}", excerpt(&text))));
        }
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| malformed(format!("bad chunk size {:?}", excerpt(&text))))?;
        if size == 0 {
            // Trailers, up to the empty line; a peer that closes instead is forgiven.
            let mut total = 0;
            loop {
                match src.line(MAX_HEAD) {
                    Ok(l) if l.is_empty() => return Ok(()),
                    Ok(l) => {
                        total += l.len();
                        if total > MAX_HEAD {
                            return Err(malformed("trailers too long"));
                        }
                    }
                    Err(WireError::Malformed(_)) if src.eof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
        let mut left = size;
        while left > 0 {
            if *room == 0 {
                response.truncated = true;
                return Ok(());
            }
            let n = src.take(left, &mut response.body, room)?;
            if n == 0 {
                return Err(malformed("connection closed inside a chunk"));
            }
            left -= n;
        }
        if !src.line(2)?.is_empty() {
            return Err(malformed("chunk longer than its size"));
        }
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(bytes: &[u8], max: usize) -> Result<Response, WireError> {
        let mut r = bytes;
        read_response(&mut r, false, max).map(|(r, _)| r)
    }

    #[test]
    fn urls_parse_with_defaults() {
        let u = Url::parse("HTTPS://Example.com/a/b?x=1#frag").expect("url");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "example.com", 443, "/a/b?x=1")
        );
        assert_eq!(u.authority(), "example.com");
        let u = Url::parse("http://[::1]:8080?q").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 8080, "/?q")
        );
        assert_eq!(u.authority(), "[::1]:8080");
        assert_eq!(u.to_string(), "http://[::1]:8080/?q");
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http:///x").is_err());
        assert!(Url::parse("http://x/a b").is_err());
        let err = Url::parse("https://user:hunter2@example.com/").expect_err("userinfo");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redirect_locations_resolve() {
        let base = Url::parse("https://a.example:8443/dir/page?x=1").expect("url");
        let j = |l: &str| base.join(l).expect("join").to_string();
        assert_eq!(j("/root"), "https://a.example:8443/root");
        assert_eq!(j("other"), "https://a.example:8443/dir/other");
        assert_eq!(j("?y=2"), "https://a.example:8443/dir/page?y=2");
        assert_eq!(j("//b.example/x"), "https://b.example/x");
        assert_eq!(j("http://c.example/"), "http://c.example/");
        assert!(base.join("javascript://alert").is_err());
    }

    #[test]
    fn requests_carry_defaults_and_configured_headers() {
        let url = Url::parse("http://h.example:81/p").expect("url");
        let headers = vec![
            ("X-Test".to_string(), "1".to_string()),
            ("Connection".to_string(), "keep-alive".to_string()),
        ];
        let req = String::from_utf8(request("POST", &url, &headers, b"{}")).expect("utf8");
        assert!(
            req.starts_with("POST /p HTTP/1.1\r\nHost: h.example:81\r\n"),
            "{req}"
        );
        assert!(req.contains("X-Test: 1\r\n"), "{req}");
        assert!(
            req.contains("Connection: close\r\n") && !req.contains("keep-alive"),
            "{req}"
        );
        assert!(req.ends_with("Content-Length: 2\r\n\r\n{}"), "{req}");
        let get = String::from_utf8(request("GET", &url, &[], b"")).expect("utf8");
        assert!(!get.contains("Content-Length"), "{get}");
    }

    #[test]
    fn content_length_bodies() {
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            1024,
        )
        .expect("read");
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice(), r.truncated),
            (200, "OK", &b"hello"[..], false)
        );
        let short = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", 1024);
        assert!(matches!(short, Err(WireError::Malformed(m)) if m.contains("3 of 10")));
        let cut = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            4,
        )
        .expect("read");
        assert_eq!((cut.body.as_slice(), cut.truncated), (&b"0123"[..], true));
    }

    #[test]
    fn chunked_bodies_and_interim_responses() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let r = read(text, 1024).expect("read");
        assert_eq!((r.status, r.body.as_slice()), (201, &b"hello world"[..]));
        let cut = read(text, 7).expect("read");
        assert_eq!(
            (cut.body.as_slice(), cut.truncated),
            (&b"hello w"[..], true)
        );
        let bad = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            1024,
        );
        assert!(matches!(bad, Err(WireError::Malformed(_))));
    }

    #[test]
    fn bodies_to_the_end_and_bodiless_statuses() {
        let r = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", 1024).expect("read");
        assert_eq!(r.body, b"all of it");
        let r = read(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
            1024,
        )
        .expect("read");
        assert!(r.body.is_empty());
        let mut head = &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"[..];
        let (r, first) = read_response(&mut head, true, 1024).expect("read");
        assert!(r.body.is_empty() && first.is_some());
        let cut = read(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 4).expect("read");
        assert!(cut.truncated);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"",
        ] {
            assert!(
                read(bad, 1024).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = [
            b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
            &vec![b'a'; MAX_HEAD + 10],
        ]
        .concat();
        assert!(read(&huge, 1024).is_err());
    }

    /// A valid response, its body chunked or not, to mutate.
    fn valid() -> impl Strategy<Value = Vec<u8>> {
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(chunked, body)| {
                let mut out = b"HTTP/1.1 200 OK\r\nX-A: b\r\n".to_vec();
                if chunked {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for chunk in body.chunks(7) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                } else {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&body);
                }
                out
            },
        )
    }

    proptest! {
        #[test]
        fn the_reader_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..64) {
            let _ = read(&bytes, max);
        }

        #[test]
        fn the_reader_never_panics_on_damaged_responses(
            base in valid(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = base;
            for (at, b) in edits {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
            }
            if !bytes.is_empty() {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let _ = read(&bytes, 32);
        }

        #[test]
        fn valid_responses_read_back(base in valid()) {
            prop_assert!(read(&base, 1024).is_ok());
        }

        #[test]
        fn urls_never_panic(text in "\\PC{0,40}") {
            let _ = Url::parse(&text);
            if let Ok(u) = Url::parse("http://h/a/b") {
                let _ = u.join(&text);
            }
        }
    }
}
