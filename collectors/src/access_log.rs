//! `access_log`: request counts by status class and a latency histogram, from web
//! servers' access logs, followed as `tail -F` does.
//!
//! ```toml
//! [collectors.access_log]
//! enabled = true                                # off by default
//! [[collectors.access_log.files]]
//! name = "web"                                  # the `log` label
//! path = "/var/log/nginx/access.log"
//! format = "combined"                           # "combined", "common", or a regex
//! [[collectors.access_log.files]]
//! name = "api"
//! path = "/var/log/nginx/api.log"
//! # log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status '
//! #                  '$body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
//! format = '^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+)?[^"]*" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" (?P<request_time>[\d.]+)$'
//! request_time_unit = "s"                       # "s" (nginx), "ms", "us" (Apache's %D)
//! buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
//! max_read = "16MiB"                            # per run; the rest waits
//! ```
//!
//! A regex needs a `status` group; `request_time` gives the histogram, `method` the
//! `method` label. Samples, counters kept across restarts:
//! - `sysward_access_log_requests_total{log,status}`, `status` the class `1xx` to `5xx`
//!   (else `other`), with `method` when the format has it: `GET`, `HEAD`, `POST`, `PUT`,
//!   `DELETE`, `PATCH`, `OPTIONS`, else `other`;
//! - `sysward_access_log_request_duration_seconds_bucket{log,le}`, `_sum`, `_count`,
//!   with `request_time`;
//! - `sysward_access_log_unparsed_lines_total{log}`: lines the format does not match
//!   (counted, never fatal).
//!
//! Labels are bounded: one `log` per file, classes rather than codes, known methods; no
//! path, host or client ever becomes a label.
//!
//! Following, rotation (rename, then the old file finished from its open descriptor or
//! found again by inode after a restart; truncation) and the first run at the end of the
//! file are `sysward_platform::linux::follow`, as for the `log` check. The position and
//! the counters are saved after every run in `<state_dir>/collectors/access_log-<name>.json`
//! (`sysward_platform::state_file`: all or nothing), so that a restarted agent resumes
//! where it stopped and its counters run on. A run reads for at most 2 s and `max_read`
//! bytes per file; the rest waits for the next run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};
use sysward_platform::linux::follow::{FileFollower, FilePosition, Sink};
use sysward_platform::state_file;

use crate::settings::{self, HumanSize};
use crate::{CollectError, Collector, CollectorContext, Kind, Output, Sample};

/// Requests by `log`, `status` class and (when the format has it) `method`.
pub const REQUESTS_TOTAL: &str = "sysward_access_log_requests_total";
/// The latency histogram's buckets, by `log` and `le`.
pub const DURATION_BUCKET: &str = "sysward_access_log_request_duration_seconds_bucket";
/// The latency histogram's sum.
pub const DURATION_SUM: &str = "sysward_access_log_request_duration_seconds_sum";
/// The latency histogram's count.
pub const DURATION_COUNT: &str = "sysward_access_log_request_duration_seconds_count";
/// Lines the format did not match.
pub const UNPARSED_LINES_TOTAL: &str = "sysward_access_log_unparsed_lines_total";

/// The Common Log Format: `host ident user [time] "request" status bytes`.
pub const COMMON: &str =
    r#"^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+)?[^"]*" (?P<status>\d{3}) (?:\d+|-)"#;
/// The Combined Log Format: Common's, then `"referer" "user agent"`.
pub const COMBINED: &str = r#"^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+)?[^"]*" (?P<status>\d{3}) (?:\d+|-) "[^"]*" "[^"]*""#;

/// Prometheus' default buckets, in seconds.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const MAX_BUCKETS: usize = 50;
const DEFAULT_MAX_READ: u64 = 16 << 20;
/// How long one run reads, all files together.
const RUN_BUDGET: Duration = Duration::from_secs(2);
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// One followed log.
#[derive(Debug, Clone)]
pub struct AccessLogFile {
    /// The `log` label; also names the state file.
    pub name: String,
    /// The log file (absolute).
    pub path: PathBuf,
    /// The line format, with a `status` group.
    pub regex: Regex,
    /// What one unit of `request_time` is, in seconds.
    pub time_unit: f64,
    /// Upper bounds of the histogram's buckets, in seconds, ascending (`+Inf` implied).
    pub buckets: Vec<f64>,
    /// Most bytes read per run.
    pub max_read: u64,
}

/// The `access_log` collector's settings.
#[derive(Debug, Clone, Default)]
pub struct AccessLogConfig {
    /// The logs; none by default.
    pub files: Vec<AccessLogFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessLogSettings {
    files: Option<Vec<FileSettings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    name: String,
    path: PathBuf,
    format: String,
    request_time_unit: Option<String>,
    buckets: Option<Vec<f64>>,
    max_read: Option<HumanSize>,
}

impl AccessLogConfig {
    /// The configuration a `[collectors.access_log]` table asks for: `files`, an array
    /// of tables with `name`, `path` and `format` (required), `request_time_unit`,
    /// `buckets`, `max_read`.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: AccessLogSettings = settings::parse("access_log", table)?;
        let mut files: Vec<AccessLogFile> = Vec::new();
        for f in s.files.unwrap_or_default() {
            let bad =
                |why: String| settings::bad("access_log", "files", format!("{:?}: {why}", f.name));
            if f.name.is_empty()
                || !f
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(bad("a name is 1 or more of A-Z a-z 0-9 _ - .".into()));
            }
            if files.iter().any(|o| o.name == f.name) {
                return Err(bad("two files have this name".into()));
            }
            if !f.path.is_absolute() {
                return Err(bad(format!("path {} is not absolute", f.path.display())));
            }
            let pattern = match f.format.as_str() {
                "combined" => COMBINED,
                "common" => COMMON,
                regex => regex,
            };
            let regex = Regex::new(pattern).map_err(|e| bad(format!("format: {e}")))?;
            if !regex.capture_names().any(|n| n == Some("status")) {
                return Err(bad("format: the regex has no `status` group".into()));
            }
            let time_unit = match f.request_time_unit.as_deref() {
                None | Some("s") => 1.0,
                Some("ms") => 1e-3,
                Some("us") => 1e-6,
                Some(other) => {
                    return Err(bad(format!(
                        "request_time_unit {other:?}: \"s\", \"ms\" or \"us\""
                    )));
                }
            };
            let buckets = f.buckets.unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
            if buckets.is_empty()
                || buckets.len() > MAX_BUCKETS
                || buckets.iter().any(|b| !b.is_finite() || *b < 0.0)
                || buckets.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(bad(format!(
                    "buckets: 1 to {MAX_BUCKETS} finite bounds, 0 or more, ascending"
                )));
            }
            let max_read = f.max_read.map_or(DEFAULT_MAX_READ, |s| s.0);
            if max_read == 0 {
                return Err(bad("max_read: more than 0".into()));
            }
            files.push(AccessLogFile {
                name: f.name,
                path: f.path,
                regex,
                time_unit,
                buckets,
                max_read,
            });
        }
        Ok(Self { files })
    }
}

/// What a run counts and what is saved between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counts {
    /// Requests by `(class, method)`, method empty when the format has none.
    requests: BTreeMap<String, u64>,
    /// Per bucket (and `+Inf` last), requests at or under its bound.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
    unparsed: u64,
}

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    v: u32,
    /// The path it is for: another path starts over.
    path: String,
    file: FilePosition,
    counts: Counts,
}

struct Followed {
    config: AccessLogFile,
    has_method: bool,
    has_time: bool,
    follower: FileFollower,
    state_file: Option<PathBuf>,
    /// Loaded at the first run, so that building touches nothing.
    saved: Option<Saved>,
}

/// Follows the configured access logs.
pub struct AccessLogCollector {
    files: Vec<Followed>,
}

impl AccessLogCollector {
    /// A collector for `config`, keeping positions and counters under the context's
    /// state directory when it has one.
    pub fn with_config(config: AccessLogConfig, ctx: &CollectorContext) -> Self {
        let files = config
            .files
            .into_iter()
            .map(|c| Followed {
                has_method: c.regex.capture_names().any(|n| n == Some("method")),
                has_time: c.regex.capture_names().any(|n| n == Some("request_time")),
                follower: FileFollower::new(c.path.clone(), false, c.max_read),
                state_file: ctx
                    .state_dir
                    .as_ref()
                    .map(|d| d.join(format!("access_log-{}.json", c.name))),
                saved: None,
                config: c,
            })
            .collect();
        Self { files }
    }
}

impl Collector for AccessLogCollector {
    fn name(&self) -> &'static str {
        "access_log"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let until = Instant::now() + RUN_BUDGET;
        for f in &mut self.files {
            f.run(until, out);
        }
        Ok(())
    }
}

impl Followed {
    fn run(&mut self, until: Instant, out: &mut Output) {
        let name = self.config.name.clone();
        let key = self.config.path.display().to_string();
        let mut saved = match self.saved.take() {
            Some(saved) => saved,
            None => {
                let loaded = match &self.state_file {
                    Some(path) => state_file::load::<Saved>(path).unwrap_or_else(|e| {
                        out.error(format!(
                            "log {name}: the saved position is unreadable ({e}): starting over"
                        ));
                        None
                    }),
                    None => None,
                };
                loaded
                    .filter(|s| s.v == 1 && s.path == key)
                    .unwrap_or_else(|| Saved {
                        v: 1,
                        path: key,
                        ..Saved::default()
                    })
            }
        };
        let before = saved.clone();
        let buckets = self.config.buckets.len() + 1;
        saved.counts.buckets.resize(buckets, 0);
        let mut notes = Vec::new();
        let config = &self.config;
        let (has_method, has_time) = (self.has_method, self.has_time);
        let counts = &mut saved.counts;
        let mut line = |bytes: &[u8]| count_line(config, has_method, has_time, bytes, counts);
        let mut sink = Sink {
            line: &mut line,
            notes: &mut notes,
        };
        if let Err(e) = self.follower.follow(&mut saved.file, until, &mut sink) {
            out.error(format!("log {name}: {e}"));
        }
        if saved != before
            && let Some(path) = &self.state_file
            && let Err(e) = state_file::store(path, &saved)
        {
            out.error(format!("log {name}: position not saved: {e}"));
        }
        samples(config, has_time, &saved.counts, out);
        self.saved = Some(saved);
    }
}

/// Counts one line.
fn count_line(
    config: &AccessLogFile,
    has_method: bool,
    has_time: bool,
    bytes: &[u8],
    counts: &mut Counts,
) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let Some(caps) = config.regex.captures(&text) else {
        counts.unparsed += 1;
        return;
    };
    let status = caps.name("status").map_or("", |m| m.as_str());
    let class = match status.as_bytes() {
        [d @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => CLASSES[usize::from(d - b'1')],
        _ => "other",
    };
    let time = if has_time {
        match caps
            .name("request_time")
            .and_then(|m| m.as_str().parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0)
        {
            Some(t) => Some(t * config.time_unit),
            None => {
                // A line without a usable time would leave the histogram's count behind
                // the requests': not a request line of this format.
                counts.unparsed += 1;
                return;
            }
        }
    } else {
        None
    };
    let method = if has_method {
        let m = caps.name("method").map_or("", |m| m.as_str());
        METHODS
            .iter()
            .find(|k| **k == m)
            .copied()
            .unwrap_or("other")
    } else {
        ""
    };
    *counts
        .requests
        .entry(format!("{class} {method}"))
        .or_default() += 1;
    if let Some(t) = time {
        let at = config
            .buckets
            .iter()
            .position(|b| t <= *b)
            .unwrap_or(config.buckets.len());
        for slot in &mut counts.buckets[at..] {
            *slot += 1;
        }
        counts.sum += t;
        counts.count += 1;
    }
}

fn samples(config: &AccessLogFile, has_time: bool, counts: &Counts, out: &mut Output) {
    let log = || config.name.clone();
    for (key, n) in &counts.requests {
        let (class, method) = key.split_once(' ').unwrap_or((key, ""));
        let mut s = Sample::new(REQUESTS_TOTAL, Kind::Counter, *n as f64)
            .label("log", log())
            .label("status", class);
        if !method.is_empty() {
            s = s.label("method", method);
        }
        out.push(s);
    }
    if has_time {
        let bounds = config
            .buckets
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_string()]);
        for (le, n) in bounds.zip(&counts.buckets) {
            out.push(
                Sample::new(DURATION_BUCKET, Kind::Counter, *n as f64)
                    .label("log", log())
                    .label("le", le),
            );
        }
        out.push(Sample::new(DURATION_SUM, Kind::Counter, counts.sum).label("log", log()));
        out.push(
            Sample::new(DURATION_COUNT, Kind::Counter, counts.count as f64).label("log", log()),
        );
    }
    out.push(
        Sample::new(UNPARSED_LINES_TOTAL, Kind::Counter, counts.unparsed as f64)
            .label("log", log()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn config(text: &str) -> AccessLogConfig {
        AccessLogConfig::from_table(&toml::from_str(text).expect("toml")).expect("config")
    }

    fn counted(format: &str, lines: &[&str]) -> Counts {
        let c = config(&format!(
            "[[files]]\nname = \"t\"\npath = \"/x\"\nformat = '{format}'\nbuckets = [0.1, 1]"
        ));
        let f = &c.files[0];
        let has = |g: &str| f.regex.capture_names().any(|n| n == Some(g));
        let mut counts = Counts {
            buckets: vec![0; 3],
            ..Counts::default()
        };
        for line in lines {
            count_line(
                f,
                has("method"),
                has("request_time"),
                line.as_bytes(),
                &mut counts,
            );
        }
        counts
    }

    const TIMED: &str = r#"^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+)?[^"]*" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" (?P<request_time>[\d.]+)$"#;

    fn requests(c: &Counts) -> Vec<(&str, u64)> {
        c.requests.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn combined_and_common_lines_are_counted_by_class_and_method() {
        let lines = [
            r#"127.0.0.1 - - [04/Dec/2026:17:56:34 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.88""#,
            r#"::1 - bob [04/Dec/2026:17:56:34 +0000] "POST /a?b HTTP/1.1" 503 - "https://r/" "x y""#,
            r#"10.0.0.1 - - [04/Dec/2026:17:56:34 +0000] "-" 400 0 "-" "-""#,
            r#"10.0.0.1 - - [04/Dec/2026:17:56:34 +0000] "BREW /pot HTTP/1.1" 418 0 "-" "-""#,
            r#"10.0.0.1 - - [04/Dec/2026:17:56:34 +0000] "GET / HTTP/1.1" 200 612"#,
            "garbage",
            "",
        ];
        let c = counted("combined", &lines);
        assert_eq!(
            requests(&c),
            [("2xx GET", 1), ("4xx other", 2), ("5xx POST", 1)]
        );
        assert_eq!(c.unparsed, 3, "the common line, garbage, the empty line");
        let c = counted("common", &lines);
        assert_eq!(
            requests(&c),
            [("2xx GET", 2), ("4xx other", 2), ("5xx POST", 1)]
        );
        assert_eq!(
            (c.unparsed, c.count),
            (2, 0),
            "no request_time: no histogram"
        );
    }

    #[test]
    fn request_times_fill_the_buckets_in_the_unit_given() {
        let line = |t: &str| format!(r#"h - - [t] "GET / HTTP/1.1" 200 1 "-" "-" {t}"#);
        let lines = [
            line("0.050"),
            line("0.100"),
            line("0.7"),
            line("3"),
            line("x"),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let c = counted(TIMED, &lines);
        assert_eq!(c.buckets, [2, 3, 4], "le=0.1 takes 0.1 itself; +Inf all");
        assert_eq!((c.count, c.unparsed), (4, 1));
        assert!((c.sum - 3.85).abs() < 1e-9, "{}", c.sum);
        let micro = config(&format!(
            "[[files]]\nname = \"t\"\npath = \"/x\"\nformat = '{}'\nrequest_time_unit = \"us\"",
            TIMED
        ));
        let f = &micro.files[0];
        let mut counts = Counts {
            buckets: vec![0; f.buckets.len() + 1],
            ..Counts::default()
        };
        count_line(f, true, true, line("250000").as_bytes(), &mut counts);
        assert_eq!(counts.sum, 0.25);
    }

    #[test]
    fn settings_are_read_and_checked() {
        let parse = |text: &str| AccessLogConfig::from_table(&toml::from_str(text).expect("toml"));
        assert!(parse("").expect("empty").files.is_empty());
        for (bad, why) in [
            (
                "name = \"a\"\npath = \"rel.log\"\nformat = \"common\"",
                "not absolute",
            ),
            (
                "name = \"a b\"\npath = \"/a\"\nformat = \"common\"",
                "a name is",
            ),
            (
                "name = \"a\"\npath = \"/a\"\nformat = \"(\"",
                "format: regex parse error",
            ),
            (
                "name = \"a\"\npath = \"/a\"\nformat = \"(?P<code>\\\\d+)\"",
                "no `status` group",
            ),
            (
                "name = \"a\"\npath = \"/a\"\nformat = \"common\"\nbuckets = [1, 0.5]",
                "ascending",
            ),
            (
                "name = \"a\"\npath = \"/a\"\nformat = \"common\"\nrequest_time_unit = \"h\"",
                "\"s\", \"ms\" or \"us\"",
            ),
        ] {
            let error = parse(&format!("[[files]]\n{bad}")).expect_err(bad);
            assert!(
                error.starts_with("bad setting `files` for collector access_log: \"a")
                    && error.contains(why),
                "{bad}: {error}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_line_is_counted_once_never_a_panic(line in "\\PC{0,200}") {
            for format in ["combined", TIMED] {
                let c = counted(format, &[line.as_str()]);
                let total: u64 = c.requests.values().sum::<u64>() + c.unparsed;
                proptest::prop_assert_eq!(total, 1);
            }
        }
    }

    fn total(out: &Output, name: &str, label: Option<(&str, &str)>) -> f64 {
        out.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                label.is_none_or(|(n, v)| s.labels.iter().any(|(ln, lv)| ln == n && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn real_nginx_requests_are_counted_exactly_across_rotation_and_restart() {
        let dir = TempDir::new("access-log");
        let d = dir.path().display();
        let log = dir.path().join("access.log");
        let extra = format!(
            "  log_format timed '$remote_addr - $remote_user [$time_local] \"$request\" $status '\n\
             '$body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time';\n\
             access_log {d}/access.log timed;\n"
        );
        let Some((nginx, port)) = crate::nginx::tests::start_nginx(&dir, &extra) else {
            return;
        };
        let ctx = CollectorContext {
            state_dir: Some(dir.path().join("state")),
            ..CollectorContext::default()
        };
        let settings = format!(
            "[[files]]\nname = \"web\"\npath = \"{}\"\nformat = '{TIMED}'\nbuckets = [0.5, 1]",
            log.display()
        );
        let build = || AccessLogCollector::with_config(config(&settings), &ctx);
        let run = |c: &mut AccessLogCollector| {
            let mut out = Output::default();
            c.collect(&mut out).expect("a run");
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            out
        };
        let request = |path: &str, want: &str| {
            let answer = crate::test_servers::get(port, path);
            assert!(answer.starts_with(&format!("HTTP/1.1 {want}")), "{answer}");
        };
        let lines_in =
            |path: &std::path::Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        // nginx writes a line once the answer is sent: wait for it rather than guess.
        let written = |path: &std::path::Path, n: usize| {
            crate::test_servers::wait_until(Duration::from_secs(10), "nginx's log lines", || {
                lines_in(path) >= n
            });
        };
        request("/", "200");
        written(&log, 1);
        let mut c = build();
        let first = run(&mut c);
        assert_eq!(
            total(&first, REQUESTS_TOTAL, None),
            0.0,
            "the first run starts at the end"
        );

        for _ in 0..5 {
            request("/", "200");
        }
        for _ in 0..3 {
            request("/missing", "404");
        }
        for _ in 0..2 {
            request("/boom", "500");
        }
        written(&log, 11);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"not an access log line\n"))
            .expect("append");
        let out = run(&mut c);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "2xx"))), 5.0);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "4xx"))), 3.0);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "5xx"))), 2.0);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("method", "GET"))), 10.0);
        assert_eq!(total(&out, UNPARSED_LINES_TOTAL, None), 1.0);
        assert_eq!(total(&out, DURATION_COUNT, None), 10.0);
        assert_eq!(total(&out, DURATION_BUCKET, Some(("le", "+Inf"))), 10.0);
        assert_eq!(
            total(&out, DURATION_BUCKET, Some(("le", "0.5"))),
            10.0,
            "`return` is instant"
        );

        // Rotation by rename: nginx writes to the old file until it reopens.
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&log, &rotated).expect("rotate");
        for _ in 0..2 {
            request("/", "200");
        }
        written(&rotated, 13);
        let reopen = std::process::Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-s", "reopen"])
            .status()
            .expect("nginx -s reopen");
        assert!(reopen.success());
        crate::test_servers::wait_until(Duration::from_secs(10), "the reopened log", || {
            log.exists()
        });
        for _ in 0..4 {
            request("/missing", "404");
        }
        written(&log, 4);
        let out = run(&mut c);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "2xx"))), 7.0);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "4xx"))), 7.0);
        assert_eq!(total(&out, DURATION_COUNT, None), 16.0);

        // A restart resumes at the saved position with the saved counters.
        drop(c);
        request("/boom", "500");
        written(&log, 5);
        let mut again = build();
        let out = run(&mut again);
        assert_eq!(total(&out, REQUESTS_TOTAL, None), 17.0);
        assert_eq!(total(&out, REQUESTS_TOTAL, Some(("status", "5xx"))), 3.0);
        assert_eq!(total(&out, UNPARSED_LINES_TOTAL, None), 1.0);
        drop(nginx);
    }
}
