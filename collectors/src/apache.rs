//! `apache`: Apache httpd's `mod_status` page in its machine form (`?auto`), under
//! apache_exporter's names.
//!
//! ```toml
//! [collectors.apache]
//! enabled = true                                      # off by default
//! url = "http://127.0.0.1/server-status?auto"         # the exporter's default; http:// only
//! request_timeout = "5s"
//! ```
//!
//! Apache needs `mod_status` and `<Location "/server-status"> SetHandler server-status
//! Require local </Location>` (Debian's `status.conf` has it).
//!
//! Samples, as apache_exporter 0.12 (Debian's `prometheus-apache-exporter`) names them,
//! each from the page's field in parentheses: `apache_up`;
//! counters `apache_accesses_total` (`Total Accesses`), `apache_sent_kilobytes_total`
//! (`Total kBytes`), `apache_duration_ms_total` (`Total Duration`),
//! `apache_cpu_time_ms_total{type="user"|"system"}` (`CPUUser`, `CPUSystem`, in
//! seconds on the page), `apache_uptime_seconds_total` (`ServerUptimeSeconds`); gauges
//! `apache_cpuload` (`CPULoad`, 0 when absent), `apache_workers{state="busy"|"idle"}`,
//! `apache_processes{state="all"|"stopping"}`,
//! `apache_connections{state="total"|"writing"|"keepalive"|"closing"}` (event MPM only),
//! `apache_load{interval="1min"|"5min"|"15min"}`,
//! `apache_generation{type="config"|"mpm"}`, `apache_info{version,mpm}`,
//! `apache_version` (2.4.67 is 2.04067), and `apache_scoreboard{state}`, the scoreboard's
//! slots by state: `idle` (`_`), `startup` (`S`), `read` (`R`), `reply` (`W`),
//! `keepalive` (`K`), `dns` (`D`), `closing` (`C`), `logging` (`L`), `graceful_stop`
//! (`G`), `idle_cleanup` (`I`), `open_slot` (`.`).
//!
//! A page without `Total Accesses` and `Scoreboard` is not `?auto` output (the HTML
//! page, `ExtendedStatus Off` still gives both): `apache_up` 0 and an error quoting its
//! start. Counters include the request that read the page only from the next read on.

use std::time::Duration;

use sysward_wire::http::Url;

use crate::fetch::StatusPage;
use crate::{CollectError, Collector, Kind, Output, Sample};

/// 1 when the status page was read, else 0.
pub const UP: &str = "apache_up";
/// Requests served.
pub const ACCESSES_TOTAL: &str = "apache_accesses_total";
/// Kilobytes sent.
pub const SENT_KILOBYTES_TOTAL: &str = "apache_sent_kilobytes_total";
/// Milliseconds spent serving requests.
pub const DURATION_MS_TOTAL: &str = "apache_duration_ms_total";
/// CPU time in milliseconds, by `type`: `user`, `system`.
pub const CPU_TIME_MS_TOTAL: &str = "apache_cpu_time_ms_total";
/// The CPU load Apache computes (percent).
pub const CPULOAD: &str = "apache_cpuload";
/// Seconds since the server started.
pub const UPTIME_SECONDS_TOTAL: &str = "apache_uptime_seconds_total";
/// Workers by `state`: `busy`, `idle`.
pub const WORKERS: &str = "apache_workers";
/// Scoreboard slots by `state`.
pub const SCOREBOARD: &str = "apache_scoreboard";
/// Connections by `state`: `total`, `writing`, `keepalive`, `closing`.
pub const CONNECTIONS: &str = "apache_connections";
/// Processes by `state`: `all`, `stopping`.
pub const PROCESSES: &str = "apache_processes";
/// The load average the page gives, by `interval`.
pub const LOAD: &str = "apache_load";
/// The configuration and MPM generations, by `type`.
pub const GENERATION: &str = "apache_generation";
/// 1, with the `version` and `mpm` labels.
pub const INFO: &str = "apache_info";
/// The version as a number: 2.4.67 is 2.04067.
pub const VERSION: &str = "apache_version";

/// Scoreboard characters and their `state` labels, in apache_exporter's order.
const SCOREBOARD_STATES: [(char, &str); 11] = [
    ('_', "idle"),
    ('S', "startup"),
    ('R', "read"),
    ('W', "reply"),
    ('K', "keepalive"),
    ('D', "dns"),
    ('C', "closing"),
    ('L', "logging"),
    ('G', "graceful_stop"),
    ('I', "idle_cleanup"),
    ('.', "open_slot"),
];

/// The page is a few dozen lines and a scoreboard of one character per slot.
const MAX_BODY: usize = 1 << 20;

/// apache_exporter's default page.
const PAGE: StatusPage = StatusPage {
    collector: "apache",
    up: UP,
    port: 80,
    target: "/server-status?auto",
    max_body: MAX_BODY,
};

/// The `apache` collector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApacheConfig {
    /// The `?auto` status page.
    pub url: Url,
    /// How long reading it may take.
    pub timeout: Duration,
}

impl Default for ApacheConfig {
    fn default() -> Self {
        Self {
            url: PAGE.default_url(),
            timeout: StatusPage::TIMEOUT,
        }
    }
}

impl ApacheConfig {
    /// The configuration a `[collectors.apache]` table asks for: `url` (default
    /// `http://127.0.0.1/server-status?auto`) and `request_timeout` (default 5s).
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let (url, timeout) = PAGE.settings(table)?;
        Ok(Self { url, timeout })
    }
}

/// The samples of a `?auto` page, `apache_up` included; the error says why the text is
/// not such a page, quoting its start.
pub fn parse_status(text: &str) -> Result<Vec<Sample>, String> {
    let field = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
    };
    let number = |key: &str| field(key).and_then(|v| v.parse::<f64>().ok());
    let (Some(accesses), Some(scoreboard)) = (number("Total Accesses"), field("Scoreboard")) else {
        let start: String = text.chars().take(60).collect();
        return Err(format!(
            "not an Apache mod_status ?auto page (no `Total Accesses` and `Scoreboard`): {start:?}"
        ));
    };
    let mut out = vec![Sample::new(UP, Kind::Gauge, 1.0)];
    let mut push = |name: &'static str,
                    kind: Kind,
                    value: Option<f64>,
                    label: Option<(&'static str, &'static str)>| {
        if let Some(value) = value {
            let mut s = Sample::new(name, kind, value);
            if let Some((n, v)) = label {
                s = s.label(n, v);
            }
            out.push(s);
        }
    };
    push(ACCESSES_TOTAL, Kind::Counter, Some(accesses), None);
    push(
        SENT_KILOBYTES_TOTAL,
        Kind::Counter,
        number("Total kBytes"),
        None,
    );
    push(
        DURATION_MS_TOTAL,
        Kind::Counter,
        number("Total Duration"),
        None,
    );
    let ms = |key: &str| number(key).map(|s| s * 1000.0);
    push(
        CPU_TIME_MS_TOTAL,
        Kind::Counter,
        ms("CPUSystem"),
        Some(("type", "system")),
    );
    push(
        CPU_TIME_MS_TOTAL,
        Kind::Counter,
        ms("CPUUser"),
        Some(("type", "user")),
    );
    push(
        CPULOAD,
        Kind::Gauge,
        Some(number("CPULoad").unwrap_or(0.0)),
        None,
    );
    push(
        UPTIME_SECONDS_TOTAL,
        Kind::Counter,
        number("ServerUptimeSeconds"),
        None,
    );
    push(
        WORKERS,
        Kind::Gauge,
        number("BusyWorkers"),
        Some(("state", "busy")),
    );
    push(
        WORKERS,
        Kind::Gauge,
        number("IdleWorkers"),
        Some(("state", "idle")),
    );
    push(
        PROCESSES,
        Kind::Gauge,
        number("Processes"),
        Some(("state", "all")),
    );
    push(
        PROCESSES,
        Kind::Gauge,
        number("Stopping"),
        Some(("state", "stopping")),
    );
    for (key, state) in [
        ("ConnsTotal", "total"),
        ("ConnsAsyncWriting", "writing"),
        ("ConnsAsyncKeepAlive", "keepalive"),
        ("ConnsAsyncClosing", "closing"),
    ] {
        push(
            CONNECTIONS,
            Kind::Gauge,
            number(key),
            Some(("state", state)),
        );
    }
    for (key, interval) in [("Load1", "1min"), ("Load5", "5min"), ("Load15", "15min")] {
        push(LOAD, Kind::Gauge, number(key), Some(("interval", interval)));
    }
    push(
        GENERATION,
        Kind::Gauge,
        number("ParentServerConfigGeneration"),
        Some(("type", "config")),
    );
    push(
        GENERATION,
        Kind::Gauge,
        number("ParentServerMPMGeneration"),
        Some(("type", "mpm")),
    );
    for (c, state) in SCOREBOARD_STATES {
        let n = scoreboard.chars().filter(|x| *x == c).count();
        push(
            SCOREBOARD,
            Kind::Gauge,
            Some(n as f64),
            Some(("state", state)),
        );
    }
    if let (Some(version), Some(mpm)) = (field("ServerVersion"), field("ServerMPM")) {
        out.push(
            Sample::new(INFO, Kind::Gauge, 1.0)
                .label("mpm", mpm)
                .label("version", version),
        );
        if let Some(number) = version_number(version) {
            out.push(Sample::new(VERSION, Kind::Gauge, number));
        }
    }
    Ok(out)
}

/// `Apache/2.4.67 (Debian)` as 2.04067, apache_exporter's encoding.
fn version_number(version: &str) -> Option<f64> {
    let digits = version.strip_prefix("Apache/")?.split_whitespace().next()?;
    let mut parts = digits.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
    Some(f64::from(major) + f64::from(minor) / 100.0 + f64::from(patch) / 100_000.0)
}

/// Reads Apache's `?auto` status page.
pub struct ApacheCollector {
    config: ApacheConfig,
}

impl ApacheCollector {
    /// A collector for `config`.
    pub fn with_config(config: ApacheConfig) -> Self {
        Self { config }
    }
}

impl Collector for ApacheCollector {
    fn name(&self) -> &'static str {
        "apache"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        PAGE.collect(&self.config.url, self.config.timeout, out, |page| {
            if page.truncated {
                return Err(format!("the page is larger than {MAX_BODY} bytes"));
            }
            parse_status(&String::from_utf8_lossy(&page.body))
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's Apache 2.4.67 (event MPM) answering `?auto`, its scoreboard shortened
    /// and `CPUUser` set to show the unit conversion.
    const PAGE: &str = "127.0.0.1
ServerVersion: Apache/2.4.67 (Debian)
ServerMPM: event
Server Built: 2026-05-06T09:14:12
CurrentTime: Friday, 04-Dec-2026 17:56:34 UTC
RestartTime: Friday, 04-Dec-2026 17:56:33 UTC
ParentServerConfigGeneration: 1
ParentServerMPMGeneration: 0
ServerUptimeSeconds: 8
ServerUptime: 8 seconds
Load1: 7.01
Load5: 6.55
Load15: 5.98
Total Accesses: 3
Total kBytes: 3
Total Duration: 2
CPUUser: .01
CPUSystem: 0
CPUChildrenUser: 0
CPUChildrenSystem: 0
Uptime: 8
ReqPerSec: .375
BytesPerSec: 384
BusyWorkers: 1
GracefulWorkers: 0
IdleWorkers: 74
Processes: 3
Stopping: 0
ConnsTotal: 0
ConnsAsyncWaitIO: 0
ConnsAsyncWriting: 0
ConnsAsyncKeepAlive: 0
ConnsAsyncClosing: 0
Scoreboard: ____W__K_..
";

    /// What Debian's prometheus-apache-exporter 0.12.0 printed for exactly this page
    /// (served from a file), `apache_exporter_build_info` left out.
    const EXPORTER: &str = r#"apache_accesses_total 3
apache_connections{state="closing"} 0
apache_connections{state="keepalive"} 0
apache_connections{state="total"} 0
apache_connections{state="writing"} 0
apache_cpu_time_ms_total{type="system"} 0
apache_cpu_time_ms_total{type="user"} 10
apache_cpuload 0
apache_duration_ms_total 2
apache_generation{type="config"} 1
apache_generation{type="mpm"} 0
apache_info{mpm="event",version="Apache/2.4.67 (Debian)"} 1
apache_load{interval="15min"} 5.98
apache_load{interval="1min"} 7.01
apache_load{interval="5min"} 6.55
apache_processes{state="all"} 3
apache_processes{state="stopping"} 0
apache_scoreboard{state="closing"} 0
apache_scoreboard{state="dns"} 0
apache_scoreboard{state="graceful_stop"} 0
apache_scoreboard{state="idle"} 7
apache_scoreboard{state="idle_cleanup"} 0
apache_scoreboard{state="keepalive"} 1
apache_scoreboard{state="logging"} 0
apache_scoreboard{state="open_slot"} 2
apache_scoreboard{state="read"} 0
apache_scoreboard{state="reply"} 1
apache_scoreboard{state="startup"} 0
apache_sent_kilobytes_total 3
apache_up 1
apache_uptime_seconds_total 8
apache_version 2.04067
apache_workers{state="busy"} 1
apache_workers{state="idle"} 74
"#;

    fn render(samples: &[Sample]) -> String {
        let mut lines: Vec<String> = samples
            .iter()
            .map(|s| {
                let mut labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{v}\""))
                    .collect();
                labels.sort();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                format!("{}{labels} {}", s.name, s.value)
            })
            .collect();
        lines.sort();
        lines.join("\n") + "\n"
    }

    #[test]
    fn the_page_gives_what_apache_exporter_gives() {
        let samples = parse_status(PAGE).expect("a page");
        assert_eq!(render(&samples), EXPORTER);
        let kinds = |kind: Kind| {
            let mut names: Vec<&str> = samples
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.name.as_ref())
                .collect();
            names.dedup();
            names
        };
        assert_eq!(
            kinds(Kind::Counter),
            [
                ACCESSES_TOTAL,
                SENT_KILOBYTES_TOTAL,
                DURATION_MS_TOTAL,
                CPU_TIME_MS_TOTAL,
                UPTIME_SECONDS_TOTAL
            ]
        );
    }

    #[test]
    fn another_page_is_refused_quoting_its_start() {
        for page in [
            "<html><head><title>Apache Status</title>",
            "",
            "Total Accesses: 3\n",
        ] {
            let error = parse_status(page).expect_err(page);
            assert!(
                error.starts_with("not an Apache mod_status ?auto page"),
                "{error}"
            );
        }
        let prefork =
            "Total Accesses: 1\nScoreboard: _W\nServerVersion: Apache/2.2\nServerMPM: prefork\n";
        let samples = parse_status(prefork).expect("a page");
        assert!(
            samples.iter().all(|s| s.name != CONNECTIONS),
            "no connections without event"
        );
        assert!(
            samples.iter().all(|s| s.name != VERSION),
            "2.2 has no patch level"
        );
    }

    #[test]
    fn settings_are_read_and_checked() {
        let parse = |text: &str| ApacheConfig::from_table(&toml::from_str(text).expect("toml"));
        assert_eq!(parse("").expect("defaults"), ApacheConfig::default());
        let c = parse("url = \"http://127.0.0.1:8081/server-status?auto\"").expect("ok");
        assert_eq!(
            (c.url.port, c.url.target.as_str()),
            (8081, "/server-status?auto")
        );
        assert!(
            parse("url = \"https://x/\"")
                .expect_err("tls")
                .contains("only http://")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_or_refused_never_a_panic(text in "\\PC{0,200}") {
            if let Ok(samples) = parse_status(&text) {
                proptest::prop_assert_eq!(samples[0].name.as_ref(), UP);
            }
        }
    }

    fn value(out: &Output, name: &str) -> f64 {
        out.samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn real_apache_counters_move_by_the_requests_made() {
        use crate::test_servers::{Running, free_port, get, have};
        const APACHE: &str = "/usr/sbin/apache2";
        if !have(APACHE, "apache2") {
            return;
        }
        let dir = crate::testing::TempDir::new("apache");
        let port = free_port();
        let d = dir.path().display();
        let modules = "/usr/lib/apache2/modules";
        // As root, Apache's children need a user to switch to; Debian's is www-data.
        let user = if nix::unistd::geteuid().is_root() {
            "User www-data\nGroup www-data\n"
        } else {
            ""
        };
        dir.write("htdocs/index.html", "ok\n");
        dir.write(
            "httpd.conf",
            format!(
                "ServerRoot {d}\nLoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
                 LoadModule authz_core_module {modules}/mod_authz_core.so\n\
                 LoadModule status_module {modules}/mod_status.so\n\
                 Listen 127.0.0.1:{port}\nServerName 127.0.0.1\n{user}\
                 PidFile {d}/httpd.pid\nErrorLog {d}/error.log\nDefaultRuntimeDir {d}\n\
                 DocumentRoot {d}/htdocs\n<Directory {d}/htdocs>\n  Require all granted\n</Directory>\n\
                 <Location \"/server-status\">\n  SetHandler server-status\n  Require all granted\n</Location>\n"
            ),
        );
        let mut command = std::process::Command::new(APACHE);
        command
            .arg("-f")
            .arg(dir.path().join("httpd.conf"))
            .arg("-DFOREGROUND");
        let apache = Running::start(command, port);
        let table: toml::Table = toml::from_str(&format!(
            "url = \"http://127.0.0.1:{port}/server-status?auto\""
        ))
        .expect("toml");
        let mut c = ApacheCollector::with_config(ApacheConfig::from_table(&table).expect("config"));
        let run = |c: &mut ApacheCollector| {
            let mut out = Output::default();
            c.collect(&mut out).expect("a run");
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            out
        };
        let before = run(&mut c);
        assert_eq!(value(&before, UP), 1.0);
        const N: u32 = 9;
        for _ in 0..N {
            // Apache counts a request when it logs it, before it closes the connection
            // that `get` reads to its end.
            let answer = get(port, "/index.html");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        let after = run(&mut c);
        // N requests, and the collector's first read, counted once it was answered.
        assert_eq!(
            value(&after, ACCESSES_TOTAL) - value(&before, ACCESSES_TOTAL),
            f64::from(N + 1)
        );
        assert!(value(&after, SENT_KILOBYTES_TOTAL) >= value(&before, SENT_KILOBYTES_TOTAL));
        let busy = after
            .samples
            .iter()
            .find(|s| s.name == WORKERS && s.labels.iter().any(|(_, v)| v == "busy"))
            .map(|s| s.value)
            .expect("busy workers");
        assert!(busy >= 1.0, "reading the page takes a worker");
        drop(apache);
        let mut out = Output::default();
        c.collect(&mut out).expect("a run");
        assert_eq!((value(&out, UP), out.samples.len()), (0.0, 1));
    }
}
