//! `nginx`: nginx's `stub_status` page, under nginx-prometheus-exporter's names.
//!
//! ```toml
//! [collectors.nginx]
//! enabled = true                               # off by default
//! url = "http://127.0.0.1:8080/stub_status"    # the exporter's default; http:// only
//! request_timeout = "5s"
//! ```
//!
//! nginx needs `location = /stub_status { stub_status; allow 127.0.0.1; deny all; }`.
//! The page:
//!
//! ```text
//! Active connections: 2
//! server accepts handled requests
//!  16 16 31
//! Reading: 0 Writing: 1 Waiting: 1
//! ```
//!
//! Samples, as nginx-prometheus-exporter 0.11 (Debian's `prometheus-nginx-exporter`)
//! names them: `nginx_connections_active`, `_reading`, `_writing`, `_waiting` (gauges),
//! `nginx_connections_accepted`, `nginx_connections_handled`,
//! `nginx_http_requests_total` (counters), and `nginx_up`: 1 when the page was read, 0
//! when it could not be (the run reports why) or is not a stub_status page (the error
//! quotes its start). The counters include the request that read the page.

use std::time::Duration;

use sysward_wire::http::Url;

use crate::fetch::StatusPage;
use crate::{CollectError, Collector, Kind, Output, Sample};

/// 1 when the status page was read, else 0.
pub const UP: &str = "nginx_up";
/// Open client connections, `Waiting` ones included.
pub const CONNECTIONS_ACTIVE: &str = "nginx_connections_active";
/// Connections accepted.
pub const CONNECTIONS_ACCEPTED: &str = "nginx_connections_accepted";
/// Connections handled (fewer than accepted only when a limit was hit).
pub const CONNECTIONS_HANDLED: &str = "nginx_connections_handled";
/// Connections where nginx reads the request head.
pub const CONNECTIONS_READING: &str = "nginx_connections_reading";
/// Connections where nginx writes the response.
pub const CONNECTIONS_WRITING: &str = "nginx_connections_writing";
/// Idle keep-alive connections.
pub const CONNECTIONS_WAITING: &str = "nginx_connections_waiting";
/// Client requests.
pub const HTTP_REQUESTS_TOTAL: &str = "nginx_http_requests_total";

/// nginx-prometheus-exporter's default page.
const PAGE: StatusPage = StatusPage {
    collector: "nginx",
    up: UP,
    port: 8080,
    target: "/stub_status",
    // The page's largest plausible size: it is four short lines.
    max_body: 4096,
};

/// The `nginx` collector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NginxConfig {
    /// The stub_status page.
    pub url: Url,
    /// How long reading it may take.
    pub timeout: Duration,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self {
            url: PAGE.default_url(),
            timeout: StatusPage::TIMEOUT,
        }
    }
}

impl NginxConfig {
    /// The configuration a `[collectors.nginx]` table asks for: `url` (default
    /// `http://127.0.0.1:8080/stub_status`) and `request_timeout` (default 5s).
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let (url, timeout) = PAGE.settings(table)?;
        Ok(Self { url, timeout })
    }
}

/// What stub_status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubStatus {
    /// `Active connections`.
    pub active: u64,
    /// `accepts`.
    pub accepts: u64,
    /// `handled`.
    pub handled: u64,
    /// `requests`.
    pub requests: u64,
    /// `Reading`.
    pub reading: u64,
    /// `Writing`.
    pub writing: u64,
    /// `Waiting`.
    pub waiting: u64,
}

/// Reads a stub_status page; the error says why it is not one, quoting its start.
pub fn parse_stub_status(text: &str) -> Result<StubStatus, String> {
    let not_it = |why: &str| {
        let start: String = text.chars().take(60).collect();
        format!("not an nginx stub_status page ({why}): {start:?}")
    };
    let number = |word: Option<&str>, what: &str| {
        word.and_then(|w| w.parse::<u64>().ok())
            .ok_or_else(|| not_it(&format!("no number for {what}")))
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let active = lines
        .next()
        .and_then(|l| l.strip_prefix("Active connections:"))
        .ok_or_else(|| not_it("no `Active connections:` line"))?;
    let active = number(Some(active.trim()), "active connections")?;
    if lines
        .next()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        != Some(vec!["server", "accepts", "handled", "requests"])
    {
        return Err(not_it("no `server accepts handled requests` line"));
    }
    let mut counts = lines.next().unwrap_or("").split_whitespace();
    let accepts = number(counts.next(), "accepts")?;
    let handled = number(counts.next(), "handled")?;
    let requests = number(counts.next(), "requests")?;
    let mut states = lines.next().unwrap_or("").split_whitespace();
    let mut state = |label: &str| {
        if states.next() != Some(label) {
            return Err(not_it(&format!("no `{label}`")));
        }
        number(states.next(), label)
    };
    let reading = state("Reading:")?;
    let writing = state("Writing:")?;
    let waiting = state("Waiting:")?;
    Ok(StubStatus {
        active,
        accepts,
        handled,
        requests,
        reading,
        writing,
        waiting,
    })
}

/// The samples of a stub_status reading, `nginx_up` included.
pub fn samples(status: &StubStatus) -> Vec<Sample> {
    let gauge = |name, v: u64| Sample::new(name, Kind::Gauge, v as f64);
    let counter = |name, v: u64| Sample::new(name, Kind::Counter, v as f64);
    vec![
        Sample::new(UP, Kind::Gauge, 1.0),
        gauge(CONNECTIONS_ACTIVE, status.active),
        counter(CONNECTIONS_ACCEPTED, status.accepts),
        counter(CONNECTIONS_HANDLED, status.handled),
        gauge(CONNECTIONS_READING, status.reading),
        gauge(CONNECTIONS_WRITING, status.writing),
        gauge(CONNECTIONS_WAITING, status.waiting),
        counter(HTTP_REQUESTS_TOTAL, status.requests),
    ]
}

/// Reads nginx's stub_status page.
pub struct NginxCollector {
    config: NginxConfig,
}

impl NginxCollector {
    /// A collector for `config`.
    pub fn with_config(config: NginxConfig) -> Self {
        Self { config }
    }
}

impl Collector for NginxCollector {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        PAGE.collect(&self.config.url, self.config.timeout, out, |page| {
            parse_stub_status(&String::from_utf8_lossy(&page.body)).map(|status| samples(&status))
        });
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PAGE: &str = "Active connections: 2 \nserver accepts handled requests\n 16 15 31 \nReading: 0 Writing: 1 Waiting: 1 \n";

    #[test]
    fn a_stub_status_page_is_read() {
        assert_eq!(
            parse_stub_status(PAGE),
            Ok(StubStatus {
                active: 2,
                accepts: 16,
                handled: 15,
                requests: 31,
                reading: 0,
                writing: 1,
                waiting: 1,
            })
        );
        let read = samples(&parse_stub_status(PAGE).expect("page"));
        let got: Vec<(&str, Kind, f64)> = read
            .iter()
            .map(|s| (s.name.as_ref(), s.kind, s.value))
            .collect();
        assert_eq!(
            got,
            [
                ("nginx_up", Kind::Gauge, 1.0),
                ("nginx_connections_active", Kind::Gauge, 2.0),
                ("nginx_connections_accepted", Kind::Counter, 16.0),
                ("nginx_connections_handled", Kind::Counter, 15.0),
                ("nginx_connections_reading", Kind::Gauge, 0.0),
                ("nginx_connections_writing", Kind::Gauge, 1.0),
                ("nginx_connections_waiting", Kind::Gauge, 1.0),
                ("nginx_http_requests_total", Kind::Counter, 31.0),
            ]
        );
    }

    #[test]
    fn another_page_is_refused_quoting_its_start() {
        for (page, why) in [
            (
                "<html><title>Welcome to nginx!</title>",
                "no `Active connections:` line",
            ),
            (
                "Active connections: x\n",
                "no number for active connections",
            ),
            (
                "Active connections: 1\nserver accepts\n",
                "no `server accepts handled requests` line",
            ),
            (
                "Active connections: 1\nserver accepts handled requests\n 1 2\n",
                "no number for requests",
            ),
            (
                "Active connections: 1\nserver accepts handled requests\n 1 2 3\nReading: 0\n",
                "no `Writing:`",
            ),
        ] {
            let error = parse_stub_status(page).expect_err(page);
            assert!(
                error.starts_with(&format!("not an nginx stub_status page ({why}): ")),
                "{error}"
            );
        }
    }

    #[test]
    fn settings_are_read_and_checked() {
        let parse = |text: &str| NginxConfig::from_table(&toml::from_str(text).expect("toml"));
        assert_eq!(parse("").expect("defaults"), NginxConfig::default());
        let c = parse("url = \"http://[::1]:81/status\"\nrequest_timeout = \"1s\"").expect("ok");
        assert_eq!((c.url.port, c.timeout), (81, Duration::from_secs(1)));
        assert!(
            parse("url = \"https://x/\"")
                .expect_err("tls")
                .contains("only http://")
        );
        assert!(
            parse("request_timeout = \"0s\"")
                .expect_err("zero")
                .contains("more than 0")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_or_refused_never_a_panic(text in "\\PC{0,120}") {
            let _ = parse_stub_status(&text);
        }

        #[test]
        fn any_numbers_read_back(n in proptest::collection::vec(0u64..u64::MAX, 7)) {
            let page = format!(
                "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
                n[0], n[1], n[2], n[3], n[4], n[5], n[6]
            );
            let s = parse_stub_status(&page).expect("a page");
            proptest::prop_assert_eq!(
                [s.active, s.accepts, s.handled, s.requests, s.reading, s.writing, s.waiting].to_vec(),
                n
            );
        }
    }

    /// nginx serving `/` and its stub_status on a free port, stopped at the end.
    pub(crate) fn start_nginx(
        dir: &crate::testing::TempDir,
        http_extra: &str,
    ) -> Option<(crate::test_servers::Running, u16)> {
        const NGINX: &str = "/usr/sbin/nginx";
        if !crate::test_servers::have(NGINX, "nginx-light") {
            return None;
        }
        let port = crate::test_servers::free_port();
        let d = dir.path().display();
        let http_extra = if http_extra.is_empty() {
            "  access_log off;"
        } else {
            http_extra
        };
        dir.write(
            "nginx.conf",
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n{http_extra}\n\
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n\
                 location = /stub_status {{ stub_status; access_log off; }}\n\
                 location = /missing {{ return 404; }}\n\
                 location = /boom {{ return 500; }}\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
            ),
        );
        let mut command = std::process::Command::new(NGINX);
        command
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"]);
        Some((crate::test_servers::Running::start(command, port), port))
    }

    fn value(out: &Output, name: &str) -> f64 {
        out.samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn real_nginx_counters_move_by_the_requests_made() {
        let dir = crate::testing::TempDir::new("nginx");
        let Some((nginx, port)) = start_nginx(&dir, "") else {
            return;
        };
        let table: toml::Table =
            toml::from_str(&format!("url = \"http://127.0.0.1:{port}/stub_status\""))
                .expect("toml");
        let mut c = NginxCollector::with_config(NginxConfig::from_table(&table).expect("config"));
        let run = |c: &mut NginxCollector| {
            let mut out = Output::default();
            c.collect(&mut out).expect("a run");
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            out
        };
        let before = run(&mut c);
        assert_eq!(value(&before, UP), 1.0);
        assert_eq!(value(&before, CONNECTIONS_ACTIVE), 1.0, "our own request");
        assert_eq!(value(&before, CONNECTIONS_WRITING), 1.0, "our own request");
        const N: u32 = 7;
        for _ in 0..N {
            let answer = crate::test_servers::get(port, "/");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        let after = run(&mut c);
        // N requests on N connections, and the collector's second request.
        for name in [
            CONNECTIONS_ACCEPTED,
            CONNECTIONS_HANDLED,
            HTTP_REQUESTS_TOTAL,
        ] {
            assert_eq!(
                value(&after, name) - value(&before, name),
                f64::from(N + 1),
                "{name}"
            );
        }
        drop(nginx);
        let mut out = Output::default();
        c.collect(&mut out).expect("a run");
        assert_eq!(value(&out, UP), 0.0);
        assert_eq!(out.samples.len(), 1, "only nginx_up when it is down");
        assert!(
            out.errors[0].contains("cannot connect to 127.0.0.1:"),
            "{:?}",
            out.errors
        );
    }
}
