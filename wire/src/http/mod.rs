//! The HTTP/1.1 the `http` check speaks: URLs, the request it writes and the response it
//! reads.
//!
//! The client is deliberately small: one request per connection (`Connection: close`),
//! no compression (`Accept-Encoding: identity`), no proxies. [`read_response`] reads the
//! answer from any reader (see the `response` module for its bounds). Nothing here
//! panics on any input: the URL parser and the reader are property-tested.

mod response;

use std::net::Ipv6Addr;

pub use response::{Response, WireError, read_response};

/// The longest response head read: status line and headers.
pub const MAX_HEAD: usize = 64 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn urls_never_panic(text in "\\PC{0,40}") {
            let _ = Url::parse(&text);
            if let Ok(u) = Url::parse("http://h/a/b") {
                let _ = u.join(&text);
            }
        }
    }
}
