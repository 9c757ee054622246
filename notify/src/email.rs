//! Email over SMTP (RFC 5321) to a smarthost, with STARTTLS (RFC 3207) by default or
//! implicit TLS (RFC 8314), and AUTH (RFC 4954). The message is MIME (RFC 2045/2046)
//! `multipart/alternative`: the plain text every channel shares, and a simple HTML rendering
//! of it with inline styles, as mail clients strip style sheets. Its `Message-ID`
//! (RFC 5322) derives from the notification's id, so a resend after a crash is the same
//! message to threading and deduplicating clients.
//!
//! SMTP's own reply codes decide the outcome: 4xx is worth a retry, 5xx is not; a
//! connection or TLS failure is retried with its reason. A relay that offers no STARTTLS or
//! no usable AUTH mechanism is a permanent failure: retrying cannot change it.

use std::{
    fmt,
    net::IpAddr,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        header::{HeaderName, HeaderValue},
    },
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
        extension::ClientId,
    },
};
use serde::Deserialize;

use crate::{
    AlertInfo, Context, Delivery, Event, Notification, SendError, Severity, Status,
    receiver::{Channel, SendFuture},
    secret::Secret,
    text,
};

/// The header that names the notification, for operators who search their mail for it.
const ID_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Sysward-Notification-Id");

/// `[[notify.receivers.email]]`: a smarthost and the addresses to write to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the relay, e.g. `mail.example.com:587`; `[::1]:25` for IPv6.
    pub smarthost: String,
    /// How the connection is protected.
    #[serde(default)]
    pub tls: TlsMode,
    /// For SMTP AUTH (PLAIN or LOGIN), with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// The password for `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password, instead of `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `Sysward <alerts@example.com>`.
    pub from: String,
    /// The recipients, e.g. `Ops <ops@example.com>`; at least one.
    pub to: Vec<String>,
    /// Copies, in the `Cc` header and the envelope.
    #[serde(default)]
    pub cc: Vec<String>,
    /// A PEM file of extra root certificates, for a relay with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name sent with EHLO; by default this host's name.
    #[serde(default)]
    pub hello: Option<String>,
    /// What `prepare` read and checked.
    #[serde(skip)]
    ready: Option<Ready>,
}

/// How the connection to the smarthost is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the relay must offer (port 587 or 25).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this host, as credentials and alerts would cross
    /// the network in clear text.
    None,
}

/// The settings in the form sending needs them.
#[derive(Clone)]
struct Ready {
    host: String,
    port: u16,
    tls: Option<TlsParameters>,
    credentials: Option<(String, Secret)>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl Channel for EmailConfig {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let (host, port) = parse_smarthost(&self.smarthost)?;
        if self.tls == TlsMode::None && !is_loopback(&host) {
            return Err(format!(
                "tls = \"none\" is only allowed with a loopback smarthost (localhost, \
                 127.0.0.0/8, ::1), not {host:?}: use starttls or tls"
            ));
        }
        let password = Secret::pick(
            self.password.clone(),
            self.password_file.as_deref(),
            "password",
            false,
        )?;
        let credentials = match (&self.username, password) {
            (Some(user), Some(password)) if !user.is_empty() => Some((user.clone(), password)),
            (None, None) => None,
            _ => return Err("give username and password together".to_string()),
        };
        let tls = match self.tls {
            TlsMode::None => None,
            _ => Some(tls_parameters(&host, self.ca_file.as_deref())?),
        };
        if let Some(hello) = &self.hello {
            check_hello(hello)?;
        }
        if self.to.is_empty() {
            return Err("to needs at least one address".to_string());
        }
        self.ready = Some(Ready {
            host,
            port,
            tls,
            credentials,
            from: mailbox("from", &self.from)?,
            to: mailboxes("to", &self.to)?,
            cc: mailboxes("cc", &self.cc)?,
        });
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let ready = self
                .ready
                .as_ref()
                .ok_or_else(|| SendError::Permanent("the channel was not prepared".to_string()))?;
            let message = message(ready, n)?;
            let transport = self.transport(ready, ctx.timeout);
            // lettre's timeout is per command: this one bounds the whole conversation.
            match tokio::time::timeout(ctx.timeout, transport.send(message)).await {
                Err(_) => Err(SendError::Retry {
                    reason: "timed out".to_string(),
                    after: None,
                }),
                Ok(Err(e)) => Err(smtp_error(&e)),
                Ok(Ok(reply)) => Ok(Delivery {
                    status: u16::from(reply.code()),
                    answer: reply.message().collect::<Vec<_>>().join(" "),
                }),
            }
        })
    }
}

impl EmailConfig {
    fn transport(&self, ready: &Ready, timeout: Duration) -> AsyncSmtpTransport<Tokio1Executor> {
        let tls = match (self.tls, &ready.tls) {
            (TlsMode::Starttls, Some(p)) => Tls::Required(p.clone()),
            (TlsMode::Tls, Some(p)) => Tls::Wrapper(p.clone()),
            _ => Tls::None,
        };
        // Certificates are checked by `tls`, and plain text only reaches loopback (`prepare`).
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&ready.host)
            .port(ready.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(hello) = &self.hello {
            builder = builder.hello_name(ClientId::Domain(hello.clone()));
        }
        if let Some((user, password)) = &ready.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        builder.build()
    }
}

/// 5xx is the relay's final word; 4xx and failures to talk to it may pass. A client-side
/// refusal (no STARTTLS offered, no usable AUTH mechanism) repeats until the settings change.
fn smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let reason = format!("SMTP: {e}");
    if e.is_permanent() || e.is_client() {
        SendError::Permanent(reason)
    } else if e.is_timeout() {
        SendError::Retry {
            reason: "timed out".to_string(),
            after: None,
        }
    } else {
        SendError::Retry {
            reason,
            after: None,
        }
    }
}

/// The message: headers, plain text and HTML.
fn message(ready: &Ready, n: &Notification) -> Result<Message, SendError> {
    let mut builder = Message::builder()
        .from(ready.from.clone())
        .subject(text::title(n))
        .message_id(Some(message_id(&n.id)))
        .date(time_of(n.created_ms))
        .user_agent(concat!("Sysward/", env!("CARGO_PKG_VERSION")).to_string());
    for to in &ready.to {
        builder = builder.to(to.clone());
    }
    for cc in &ready.cc {
        builder = builder.cc(cc.clone());
    }
    let body = MultiPart::alternative_plain_html(text::plain_body(n), html(n));
    let mut message = builder
        .multipart(body)
        .map_err(|e| SendError::Permanent(format!("cannot make the message: {e}")))?;
    message
        .headers_mut()
        .insert_raw(HeaderValue::new(ID_HEADER, one_line(&n.id)));
    Ok(message)
}

/// `<{id}@sysward>`; an id with characters a Message-ID cannot carry is hashed, so that
/// the same notification still gets the same Message-ID.
pub fn message_id(id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if plain {
        return format!("<{id}@sysward>");
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    format!("<{}@sysward>", &hash[..32])
}

fn time_of(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A header value without line breaks or other controls, which would end the header.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The HTML part: the plain text's content, each value escaped.
pub fn html(n: &Notification) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><body style=\"margin:0;padding:16px;\
         font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#222;\">\n",
    );
    let colour = colour(n);
    out.push_str(&format!(
        "<h2 style=\"margin:0 0 12px;font-size:18px;color:{colour};\">{}</h2>\n",
        escape(&text::title(n))
    ));
    match &n.custom.text {
        Some(custom) => out.push_str(&format!(
            "<pre style=\"white-space:pre-wrap;font-family:inherit;\">{}</pre>\n",
            escape(custom)
        )),
        None => alerts_html(&mut out, n),
    }
    links_html(&mut out, n);
    out.push_str("</body></html>\n");
    out
}

fn alerts_html(out: &mut String, n: &Notification) {
    if let Event::Digest { held } = n.event {
        out.push_str(&format!(
            "<p>{held} messages were held by the frequency limit.</p>\n"
        ));
    }
    for (heading, list) in [
        ("Firing", n.firing().collect::<Vec<_>>()),
        ("Resolved", n.resolved().collect()),
    ] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "<h3 style=\"margin:16px 0 8px;font-size:15px;\">{heading} ({})</h3>\n",
            list.len()
        ));
        for a in list {
            alert_html(out, a);
        }
    }
}

fn alert_html(out: &mut String, a: &AlertInfo) {
    let colour = match a.status {
        Status::Resolved => RESOLVED_COLOUR,
        Status::Firing => severity_colour(Severity::of(&a.labels)),
    };
    out.push_str(&format!(
        "<div style=\"border-left:4px solid {colour};padding:6px 12px;margin:0 0 12px;\">\n\
         <div style=\"font-weight:bold;\">{}</div>\n",
        escape(&text::alert_line(a))
    ));
    let mut rows = String::new();
    for (key, value) in a.labels.iter().chain(&a.annotations) {
        if key == "summary" {
            continue;
        }
        let value = match is_web_link(value) {
            true => format!("<a href=\"{0}\">{0}</a>", escape(value)),
            false => escape(value),
        };
        rows.push_str(&format!(
            "<tr><td style=\"padding:1px 12px 1px 0;color:#666;vertical-align:top;\">{}</td>\
             <td style=\"padding:1px 0;\">{value}</td></tr>\n",
            escape(key)
        ));
    }
    if !rows.is_empty() {
        out.push_str(&format!(
            "<table style=\"border-collapse:collapse;font-size:13px;margin-top:4px;\">\n\
             {rows}</table>\n"
        ));
    }
    out.push_str("</div>\n");
}

fn links_html(out: &mut String, n: &Notification) {
    out.push_str("<p style=\"margin-top:16px;\">");
    if let Some(url) = n.ack_url.as_deref().filter(|u| is_web_link(u)) {
        out.push_str(&format!(
            "<a href=\"{}\" style=\"display:inline-block;padding:6px 14px;margin-right:12px;\
             background:#1565c0;color:#fff;text-decoration:none;border-radius:4px;\">\
             Acknowledge</a>",
            escape(url)
        ));
    }
    out.push_str(&format!(
        "<a href=\"{}/api/v1/alerts\">All alerts</a></p>\n",
        escape(&n.external_url)
    ));
}

const RESOLVED_COLOUR: &str = "#2e7d32";

fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#c62828",
        Severity::Warning => "#ef6c00",
        Severity::Info => "#1565c0",
    }
}

fn colour(n: &Notification) -> &'static str {
    match n.status {
        Status::Resolved => RESOLVED_COLOUR,
        Status::Firing => severity_colour(n.severity()),
    }
}

fn is_web_link(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// Text as HTML, in element content and in quoted attributes alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `host:port`, the host without the brackets of an IPv6 address.
fn parse_smarthost(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("smarthost {s:?} is not host:port, e.g. mail.example.com:587");
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (host, port)
        }
        None => {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || host.contains([':', '/', ' ']) {
                return Err(bad());
            }
            (host, port)
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    Ok((host.to_string(), port))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The trust for the relay's certificate: the system's roots, and `ca_file`'s.
fn tls_parameters(host: &str, ca_file: Option<&std::path::Path>) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()))?;
        // lettre reads a PEM without certificates as an empty list, which would trust nothing
        // more without saying so.
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "ca_file: {} holds no PEM certificate",
                path.display()
            ));
        }
        let cert =
            Certificate::from_pem(&pem).map_err(|e| format!("ca_file: {}: {e}", path.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("tls: cannot set up TLS for {host:?}: {e}"))
}

/// An EHLO name must be a domain: letters, digits, hyphens and dots.
fn check_hello(hello: &str) -> Result<(), String> {
    let ok = !hello.is_empty()
        && hello.len() <= 255
        && hello
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("hello {hello:?} is not a domain name"))
    }
}

fn mailbox(key: &str, s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("{key}: {s:?} is not an address: {e}"))
}

fn mailboxes(key: &str, list: &[String]) -> Result<Vec<Mailbox>, String> {
    list.iter().map(|s| mailbox(key, s)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn notification() -> Notification {
        let alert = AlertInfo {
            fingerprint: "f".to_string(),
            status: Status::Firing,
            labels: BTreeMap::from([
                ("alertname".to_string(), "HighCpu".to_string()),
                ("team".to_string(), "<b>ops</b> & \"dev\"".to_string()),
            ]),
            annotations: BTreeMap::from([
                ("summary".to_string(), "CPU <high>".to_string()),
                (
                    "runbook_url".to_string(),
                    "https://wiki/?a=1&b=\"2\"".to_string(),
                ),
            ]),
            starts_at_ms: 0,
            ends_at_ms: None,
            value: None,
            generator_url: String::new(),
        };
        Notification {
            id: "n-1".to_string(),
            group_key: "g".to_string(),
            receiver: "r".to_string(),
            event: Event::Alerts,
            status: Status::Firing,
            alerts: vec![alert],
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: "https://sysward.example".to_string(),
            ack_url: Some("https://sysward.example/ack?t=1&u=2".to_string()),
            custom: Default::default(),
            created_ms: 0,
        }
    }

    #[test]
    fn html_escapes_every_value() {
        let html = html(&notification());
        assert!(!html.contains("<b>ops"), "{html}");
        assert!(
            html.contains("&lt;b&gt;ops&lt;/b&gt; &amp; &quot;dev&quot;"),
            "{html}"
        );
        assert!(html.contains("CPU &lt;high&gt;"), "{html}");
        assert!(
            html.contains("<a href=\"https://wiki/?a=1&amp;b=&quot;2&quot;\">"),
            "{html}"
        );
        assert!(
            html.contains("href=\"https://sysward.example/ack?t=1&amp;u=2\""),
            "{html}"
        );
        assert!(html.contains("Firing (1)"), "{html}");
    }

    #[test]
    fn custom_text_replaces_the_alerts_escaped() {
        let mut n = notification();
        n.custom.text = Some("<script>x</script>".to_string());
        let html = html(&n);
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("Firing (1)"), "{html}");
    }

    #[test]
    fn message_id_is_stable_and_well_formed() {
        assert_eq!(message_id("01HZX-abc_1"), "<01HZX-abc_1@sysward>");
        let odd = message_id("a b@c>");
        assert_eq!(odd, message_id("a b@c>"));
        assert_ne!(odd, message_id("a b@c"));
        assert!(odd.starts_with('<') && odd.ends_with("@sysward>"), "{odd}");
        assert_eq!(odd.matches('@').count(), 1, "{odd}");
    }

    #[test]
    fn smarthost_is_host_and_port() {
        assert_eq!(
            parse_smarthost("mail.example.com:587"),
            Ok(("mail.example.com".to_string(), 587))
        );
        assert_eq!(parse_smarthost("[::1]:25"), Ok(("::1".to_string(), 25)));
        for bad in [
            "mail.example.com",
            "::1:25",
            "[::1]",
            "host:0",
            "host:x",
            ":25",
        ] {
            assert!(parse_smarthost(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_recognised() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["mail.example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn one_line_removes_line_breaks() {
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
    }
}
