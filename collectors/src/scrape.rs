//! `scrape`: the host's own exporters (mysqld_exporter, redis_exporter, an application's
//! `/metrics`), read in the Prometheus or OpenMetrics text format at the collector's
//! tier, so that their series go through the agent's spool and push like any other.
//!
//! ```toml
//! [collectors.scrape]
//! enabled = true                        # off by default
//! tier = "standard"
//! [[collectors.scrape.targets]]
//! name = "node"                         # the `job` label of every series it gives
//! url = "http://127.0.0.1:9100/metrics" # http:// only
//! timeout = "5s"                        # default 5s
//! sample_limit = 10000                  # default 10000
//! max_body = "10MiB"                    # default 10MiB
//! labels = { team = "db" }              # added to every series of the target
//! ```
//!
//! Every series keeps the exporter's name and labels, and gets `job="<name>"` and the
//! configured labels. As in Prometheus (`honor_labels: false`), an exporter's label that
//! clashes with one of those, or with `instance` and `agent_id`, which the server sets, is
//! kept as `exported_<label>`. The `# TYPE` says counter or gauge: a counter, the
//! `_bucket`, `_sum` and `_count` of a histogram or summary are counters, everything
//! else (`gauge`, `untyped`, no type, and OpenMetrics' `info`, `stateset`,
//! `gaugehistogram`, `unknown`) a gauge; histograms and summaries arrive as the series
//! Prometheus stores for them. The exporter's timestamps are dropped: samples carry the
//! time of the run.
//!
//! Per target, each run: `sysward_scrape_up{job}` (1 when the whole exposition was read
//! and kept, else 0), `sysward_scrape_duration_seconds{job}`,
//! `sysward_scrape_samples_scraped{job}` (samples in the exposition) and
//! `sysward_scrape_samples_dropped_total{job,reason}`, a counter kept by the agent since
//! it started: `reason="duplicate"` (a series given twice: the first is kept),
//! `reason="sample_limit"` (every sample of a run with more than `sample_limit` series).
//!
//! A target fails as a whole, `up` 0 and an error naming it, when it cannot be reached,
//! answers other than 2xx, takes longer than its `timeout`, sends more than `max_body`
//! (read no further: the body is cut there and nothing of it kept), has a line that is
//! not in the text format (as Prometheus, which fails such a scrape, the first bad line
//! is quoted) or more series than `sample_limit`. One target failing never touches the
//! others: targets are read side by side, each on a thread of its own, so a run takes as
//! long as its slowest target. Keep each `timeout` under the collector's.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sysward_wire::http::Url;
use sysward_wire::textfmt::{self, TextSample};

use crate::fetch;
use crate::settings::{self, Count, HumanDuration, HumanSize};
use crate::{CollectError, Collector, Kind, Name, Output, Sample};

/// 1 when the target's whole exposition was read and kept, else 0.
pub const UP: &str = "sysward_scrape_up";
/// How long reading the target took.
pub const DURATION_SECONDS: &str = "sysward_scrape_duration_seconds";
/// Samples in the target's exposition, duplicates included.
pub const SAMPLES_SCRAPED: &str = "sysward_scrape_samples_scraped";
/// Samples not sent, by `reason`: `duplicate`, `sample_limit`.
pub const SAMPLES_DROPPED_TOTAL: &str = "sysward_scrape_samples_dropped_total";

/// The label that carries a target's name.
pub const JOB_LABEL: &str = "job";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SAMPLE_LIMIT: u64 = 10_000;
const MAX_SAMPLE_LIMIT: u64 = 10_000_000;
const DEFAULT_MAX_BODY: u64 = 10 << 20;
const MAX_MAX_BODY: u64 = 256 << 20;

/// Labels an exporter may not set: ours, and the two the server sets on every series.
const RESERVED: [&str; 3] = [JOB_LABEL, "instance", "agent_id"];

/// What node_exporter's and Prometheus' own scrapes ask for: the classic text format
/// first, OpenMetrics text accepted.
const ACCEPT: &str =
    "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

/// One exporter to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeTarget {
    /// Its name: the `job` label.
    pub name: String,
    /// Where its exposition is.
    pub url: Url,
    /// How long one read may take.
    pub timeout: Duration,
    /// Most series kept per run; past it the run's samples are all dropped.
    pub sample_limit: usize,
    /// Most body bytes read.
    pub max_body: usize,
    /// Labels added to every series.
    pub labels: Vec<(String, String)>,
}

/// The `scrape` collector's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeConfig {
    /// The exporters; none by default.
    pub targets: Vec<ScrapeTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrapeSettings {
    targets: Option<Vec<TargetSettings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSettings {
    name: String,
    url: String,
    timeout: Option<HumanDuration>,
    sample_limit: Option<Count>,
    max_body: Option<HumanSize>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl ScrapeConfig {
    /// The configuration a `[collectors.scrape]` table asks for: `targets`, an array of
    /// tables with `name` and `url` (required), `timeout`, `sample_limit`, `max_body`
    /// and `labels`. An empty table has no targets.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: ScrapeSettings = settings::parse("scrape", table)?;
        let bad = |why: String| settings::bad("scrape", "targets", why);
        let mut targets: Vec<ScrapeTarget> = Vec::new();
        for t in s.targets.unwrap_or_default() {
            let named = |why: &str| bad(format!("target {:?}: {why}", t.name));
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
            {
                return Err(named("a name is 1 or more of A-Z a-z 0-9 _ - . :"));
            }
            if targets.iter().any(|o| o.name == t.name) {
                return Err(named("two targets have this name"));
            }
            let url = fetch::parse_url("scrape", "targets", &t.url)?;
            let timeout = match t.timeout {
                None => DEFAULT_TIMEOUT,
                Some(HumanDuration(d)) if d.is_zero() => {
                    return Err(named("timeout must be more than 0"));
                }
                Some(HumanDuration(d)) => d,
            };
            let sample_limit = t.sample_limit.map_or(DEFAULT_SAMPLE_LIMIT, |c| c.0);
            if !(1..=MAX_SAMPLE_LIMIT).contains(&sample_limit) {
                return Err(named(&format!("sample_limit is 1 to {MAX_SAMPLE_LIMIT}")));
            }
            let max_body = t.max_body.map_or(DEFAULT_MAX_BODY, |s| s.0);
            if !(1..=MAX_MAX_BODY).contains(&max_body) {
                return Err(named("max_body is more than 0 and at most 256MiB"));
            }
            let mut labels = Vec::new();
            for (label, value) in t.labels {
                if !is_label_name(&label) || label.starts_with("__") {
                    return Err(named(&format!("{label:?} is not a label name")));
                }
                if RESERVED.contains(&label.as_str()) {
                    return Err(named(&format!("the label {label} is set by Sysward")));
                }
                labels.push((label, value));
            }
            targets.push(ScrapeTarget {
                name: t.name,
                url,
                timeout,
                sample_limit: usize::try_from(sample_limit).unwrap_or(usize::MAX),
                max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
                labels,
            });
        }
        Ok(Self { targets })
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads the configured exporters.
pub struct ScrapeCollector {
    config: ScrapeConfig,
    /// Per target: duplicates and samples over the limit dropped since the start.
    dropped: Vec<[u64; 2]>,
}

impl ScrapeCollector {
    /// A collector for `config`.
    pub fn with_config(config: ScrapeConfig) -> Self {
        let dropped = vec![[0; 2]; config.targets.len()];
        Self { config, dropped }
    }
}

/// What reading one target gave.
#[derive(Debug, Default, PartialEq)]
pub struct Scraped {
    /// The samples to send.
    pub samples: Vec<Sample>,
    /// Samples in the exposition.
    pub scraped: usize,
    /// Series given more than once (all but the first dropped).
    pub duplicates: usize,
    /// Samples dropped for being over the sample limit.
    pub over_limit: usize,
    /// Why the target is down, if it is.
    pub error: Option<String>,
}

impl Collector for ScrapeCollector {
    fn name(&self) -> &'static str {
        "scrape"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let results: Vec<(Scraped, Duration)> = match self.config.targets.as_slice() {
            [] => return Ok(()),
            [one] => vec![timed(one)],
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many
                    .iter()
                    .map(|t| {
                        std::thread::Builder::new()
                            .name("sysward-scrape".into())
                            .spawn_scoped(scope, || timed(t))
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(many)
                    .map(|(handle, t)| match handle {
                        // A thread that cannot be started or that panicked is one target
                        // down, not the run.
                        Ok(h) => h.join().unwrap_or_else(|_| {
                            failed(format!("target {}: the read panicked", t.name))
                        }),
                        Err(e) => failed(format!("target {}: no thread to read it: {e}", t.name)),
                    })
                    .collect()
            }),
        };
        for (i, ((scraped, took), target)) in
            results.into_iter().zip(&self.config.targets).enumerate()
        {
            let dropped = &mut self.dropped[i];
            dropped[0] += scraped.duplicates as u64;
            dropped[1] += scraped.over_limit as u64;
            let job = || target.name.clone();
            let up = scraped.error.is_none();
            if let Some(error) = scraped.error {
                out.error(error);
            }
            out.samples.extend(scraped.samples);
            out.push(Sample::new(UP, Kind::Gauge, f64::from(u8::from(up))).label(JOB_LABEL, job()));
            out.push(
                Sample::new(DURATION_SECONDS, Kind::Gauge, took.as_secs_f64())
                    .label(JOB_LABEL, job()),
            );
            out.push(
                Sample::new(SAMPLES_SCRAPED, Kind::Gauge, scraped.scraped as f64)
                    .label(JOB_LABEL, job()),
            );
            for (reason, n) in [("duplicate", dropped[0]), ("sample_limit", dropped[1])] {
                out.push(
                    Sample::new(SAMPLES_DROPPED_TOTAL, Kind::Counter, n as f64)
                        .label(JOB_LABEL, job())
                        .label("reason", reason),
                );
            }
        }
        Ok(())
    }
}

fn failed(error: String) -> (Scraped, Duration) {
    let scraped = Scraped {
        error: Some(error),
        ..Scraped::default()
    };
    (scraped, Duration::ZERO)
}

fn timed(target: &ScrapeTarget) -> (Scraped, Duration) {
    let started = Instant::now();
    let scraped = scrape(target);
    (scraped, started.elapsed())
}

/// Reads one target.
pub fn scrape(target: &ScrapeTarget) -> Scraped {
    let page = match fetch::get(&target.url, ACCEPT, target.timeout, target.max_body) {
        Ok(page) => page,
        Err(e) => {
            return Scraped {
                error: Some(format!("target {} ({}): {e}", target.name, target.url)),
                ..Scraped::default()
            };
        }
    };
    if page.truncated {
        return Scraped {
            error: Some(format!(
                "target {} ({}): the exposition is larger than max_body ({} bytes): read no further, nothing kept",
                target.name, target.url, target.max_body
            )),
            ..Scraped::default()
        };
    }
    let Ok(text) = std::str::from_utf8(&page.body) else {
        return Scraped {
            error: Some(format!(
                "target {} ({}): the answer is not UTF-8 text (is the URL an exporter's?)",
                target.name, target.url
            )),
            ..Scraped::default()
        };
    };
    samples_of(text, target)
}

/// The samples an exposition gives for `target`: a pure function of the text.
pub fn samples_of(text: &str, target: &ScrapeTarget) -> Scraped {
    let exposition = textfmt::parse_exposition(text);
    let scraped = exposition.samples.len() + exposition.errors.len();
    if let Some(first) = exposition.errors.first() {
        return Scraped {
            scraped,
            error: Some(format!(
                "target {} ({}): not the Prometheus text format: {} bad line(s), the first {first}",
                target.name,
                target.url,
                exposition.errors.len()
            )),
            ..Scraped::default()
        };
    }
    let mut samples = exposition.samples;
    for s in &mut samples {
        // Label order carries no meaning; sorted, equal series compare equal.
        s.labels.sort_unstable();
    }
    let keep = first_of_each_series(&samples);
    let duplicates = keep.iter().filter(|k| !**k).count();
    let kept = samples.len() - duplicates;
    if kept > target.sample_limit {
        return Scraped {
            scraped,
            duplicates,
            over_limit: kept,
            error: Some(format!(
                "target {} ({}): {kept} series, more than sample_limit {}: none kept",
                target.name, target.url, target.sample_limit
            )),
            ..Scraped::default()
        };
    }
    let samples = samples
        .into_iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(s, _)| to_sample(s, target))
        .collect();
    Scraped {
        samples,
        scraped,
        duplicates,
        ..Scraped::default()
    }
}

/// For each sample, whether it is the first of its series (name and sorted labels).
fn first_of_each_series(samples: &[TextSample]) -> Vec<bool> {
    let mut seen: HashSet<(&str, &[(String, String)])> = HashSet::with_capacity(samples.len());
    samples
        .iter()
        .map(|s| seen.insert((s.name.as_str(), s.labels.as_slice())))
        .collect()
}

fn to_sample(s: TextSample, target: &ScrapeTarget) -> Sample {
    let kind = if s.counter {
        Kind::Counter
    } else {
        Kind::Gauge
    };
    let mut labels: Vec<(Name, String)> =
        Vec::with_capacity(s.labels.len() + 1 + target.labels.len());
    labels.push((Name::Borrowed(JOB_LABEL), target.name.clone()));
    for (name, value) in &target.labels {
        labels.push((Name::Owned(name.clone()), value.clone()));
    }
    for (name, value) in s.labels {
        let clashes =
            RESERVED.contains(&name.as_str()) || target.labels.iter().any(|(n, _)| *n == name);
        let name = if clashes {
            format!("exported_{name}")
        } else {
            name
        };
        labels.push((Name::Owned(name), value));
    }
    Sample {
        name: Name::Owned(s.name),
        labels,
        kind,
        value: s.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(limit: usize) -> ScrapeTarget {
        ScrapeTarget {
            name: "app".into(),
            url: Url::parse("http://127.0.0.1:1/metrics").expect("url"),
            timeout: Duration::from_secs(1),
            sample_limit: limit,
            max_body: 1 << 20,
            labels: vec![("team".into(), "db".into())],
        }
    }

    fn labels(s: &Sample) -> Vec<(&str, &str)> {
        s.labels
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_str()))
            .collect()
    }

    const TEXT: &str = r#"# TYPE req_total counter
req_total{code="200",job="x"} 5
req_total{job="x",code="200"} 6
# TYPE lat histogram
lat_bucket{le="0.1"} 1
lat_bucket{le="+Inf"} 2
lat_sum 0.3
lat_count 2
temp{team="web",instance="h",agent_id="a"} 21.5
untyped_thing 3
"#;

    #[test]
    fn kinds_labels_and_duplicates_are_mapped_as_prometheus_stores_them() {
        let s = samples_of(TEXT, &target(100));
        assert_eq!(s.error, None);
        assert_eq!((s.scraped, s.duplicates, s.over_limit), (8, 1, 0));
        let got: Vec<(&str, Kind, f64)> = s
            .samples
            .iter()
            .map(|x| (x.name.as_ref(), x.kind, x.value))
            .collect();
        assert_eq!(
            got,
            [
                ("req_total", Kind::Counter, 5.0),
                ("lat_bucket", Kind::Counter, 1.0),
                ("lat_bucket", Kind::Counter, 2.0),
                ("lat_sum", Kind::Counter, 0.3),
                ("lat_count", Kind::Counter, 2.0),
                ("temp", Kind::Gauge, 21.5),
                ("untyped_thing", Kind::Gauge, 3.0),
            ]
        );
        assert_eq!(
            labels(&s.samples[0]),
            [
                ("job", "app"),
                ("team", "db"),
                ("code", "200"),
                ("exported_job", "x")
            ]
        );
        assert_eq!(
            labels(&s.samples[5]),
            [
                ("job", "app"),
                ("team", "db"),
                ("exported_agent_id", "a"),
                ("exported_instance", "h"),
                ("exported_team", "web"),
            ]
        );
    }

    #[test]
    fn over_the_sample_limit_nothing_is_kept() {
        let s = samples_of(TEXT, &target(6));
        assert!(s.samples.is_empty());
        assert_eq!(s.over_limit, 7);
        let error = s.error.expect("an error");
        assert!(
            error.starts_with(
                "target app (http://127.0.0.1:1/metrics): 7 series, more than sample_limit 6"
            ),
            "{error}"
        );
        assert!(samples_of(TEXT, &target(7)).error.is_none());
    }

    #[test]
    fn a_bad_line_fails_the_target_quoting_it() {
        let s = samples_of("ok 1\n<html><body>Not here</body></html>\n", &target(100));
        assert!(s.samples.is_empty());
        let error = s.error.expect("an error");
        assert!(error.starts_with("target app"), "{error}");
        assert!(error.contains("line 2: not a sample: \"<html>"), "{error}");
    }

    #[test]
    fn settings_are_read_and_checked() {
        let parse = |text: &str| ScrapeConfig::from_table(&toml::from_str(text).expect("toml"));
        assert_eq!(parse("").expect("empty"), ScrapeConfig::default());
        let c = parse(
            "[[targets]]\nname = \"node\"\nurl = \"http://127.0.0.1:9100/metrics\"\n\
             timeout = \"2s\"\nsample_limit = 5\nmax_body = \"1KiB\"\nlabels = { team = \"db\" }",
        )
        .expect("valid");
        let t = &c.targets[0];
        assert_eq!(
            (t.timeout, t.sample_limit, t.max_body, t.labels.clone()),
            (
                Duration::from_secs(2),
                5,
                1024,
                vec![("team".to_string(), "db".to_string())]
            )
        );
        for (bad, why) in [
            ("name = \"a b\"\nurl = \"http://x/\"", "a name is"),
            ("name = \"a\"\nurl = \"https://x/\"", "only http://"),
            (
                "name = \"a\"\nurl = \"x\"",
                "only http:// and https:// URLs",
            ),
            (
                "name = \"a\"\nurl = \"http://x/\"\nsample_limit = 0",
                "sample_limit is 1 to",
            ),
            (
                "name = \"a\"\nurl = \"http://x/\"\nlabels = { job = \"x\" }",
                "set by Sysward",
            ),
            (
                "name = \"a\"\nurl = \"http://x/\"\nlabels = { \"1x\" = \"x\" }",
                "not a label name",
            ),
            (
                "name = \"a\"\nurl = \"http://x/\"\ntimeout = \"0s\"",
                "more than 0",
            ),
            (
                "name = \"a\"\nurl = \"http://x/\"\nbogus = 1",
                "unknown field `bogus`",
            ),
        ] {
            let error = parse(&format!("[[targets]]\n{bad}")).expect_err(bad);
            assert!(
                error.starts_with("bad setting `targets` for collector scrape: ")
                    && error.contains(why),
                "{bad}: {error}"
            );
        }
        let twice = "[[targets]]\nname = \"a\"\nurl = \"http://x/\"\n[[targets]]\nname = \"a\"\nurl = \"http://y/\"";
        assert!(parse(twice).expect_err("twice").contains("two targets"));
    }

    fn collector(targets: &str) -> ScrapeCollector {
        let table: toml::Table = toml::from_str(targets).expect("toml");
        ScrapeCollector::with_config(ScrapeConfig::from_table(&table).expect("config"))
    }

    fn value(out: &Output, name: &str, job: &str) -> f64 {
        out.samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(n, v)| n == JOB_LABEL && v == job))
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name}{{job={job}}}"))
    }

    fn dropped(out: &Output, job: &str, reason: &str) -> f64 {
        out.samples
            .iter()
            .find(|s| {
                s.name == SAMPLES_DROPPED_TOTAL
                    && s.labels.iter().any(|(_, v)| v == job)
                    && s.labels.iter().any(|(_, v)| v == reason)
            })
            .map(|s| s.value)
            .expect("dropped counter")
    }

    fn answer(body: &[u8]) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[test]
    fn garbage_huge_and_duplicate_answers_fail_or_count_each_target_alone() {
        use crate::test_servers::serve;
        let good = serve(answer(
            b"# TYPE a counter\na_total 1\na_total 2\nb{x=\"1\"} 3\n",
        ));
        let garbage = serve(answer(b"<html><body>It works!</body></html>\n"));
        let mut huge_body = b"# TYPE big gauge\n".to_vec();
        while huge_body.len() < 8 << 20 {
            huge_body.extend_from_slice(b"big{i=\"0123456789\"} 1\n");
        }
        let huge = serve(answer(&huge_body));
        let not_found = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let closed = crate::test_servers::free_port();
        let mut c = collector(&format!(
            "[[targets]]\nname = \"good\"\nurl = \"http://127.0.0.1:{good}/metrics\"\n\
             [[targets]]\nname = \"garbage\"\nurl = \"http://127.0.0.1:{garbage}/\"\n\
             [[targets]]\nname = \"huge\"\nurl = \"http://127.0.0.1:{huge}/\"\nmax_body = \"64KiB\"\n\
             [[targets]]\nname = \"missing\"\nurl = \"http://127.0.0.1:{not_found}/\"\n\
             [[targets]]\nname = \"closed\"\nurl = \"http://127.0.0.1:{closed}/\"\ntimeout = \"2s\"\n"
        ));
        for run in 1..=2 {
            let mut out = Output::default();
            c.collect(&mut out).expect("a run");
            assert_eq!(value(&out, UP, "good"), 1.0);
            for down in ["garbage", "huge", "missing", "closed"] {
                assert_eq!(value(&out, UP, down), 0.0, "{down}");
            }
            let kept: Vec<(&str, f64)> = out
                .samples
                .iter()
                .filter(|s| !s.name.starts_with("sysward_scrape_"))
                .map(|s| (s.name.as_ref(), s.value))
                .collect();
            assert_eq!(
                kept,
                [("a_total", 1.0), ("b", 3.0)],
                "only the good target's"
            );
            assert_eq!(value(&out, SAMPLES_SCRAPED, "good"), 3.0);
            assert_eq!(dropped(&out, "good", "duplicate"), f64::from(run));
            assert_eq!(dropped(&out, "good", "sample_limit"), 0.0);
            assert_eq!(out.errors.len(), 4, "{:?}", out.errors);
            let error = |job: &str| {
                out.errors
                    .iter()
                    .find(|e| e.starts_with(&format!("target {job} ")))
                    .unwrap_or_else(|| panic!("no error for {job}: {:?}", out.errors))
                    .clone()
            };
            assert!(
                error("garbage").contains("line 1: not a sample: \"<html>"),
                "{}",
                error("garbage")
            );
            assert!(
                error("huge").contains("larger than max_body (65536 bytes)"),
                "{}",
                error("huge")
            );
            assert!(
                error("missing").ends_with("HTTP 404 Not Found"),
                "{}",
                error("missing")
            );
            assert!(
                error("closed").contains("cannot connect to 127.0.0.1:"),
                "{}",
                error("closed")
            );
        }
    }

    /// A textfile with fixed values, so that the collector's samples can be compared
    /// with what was written, and with a direct read of the exporter, value by value.
    const TEXTFILE: &str = r#"# HELP app_jobs_total Jobs done.
# TYPE app_jobs_total counter
app_jobs_total{queue="mail"} 17
app_jobs_total{queue="print",note="a \"b\" \\ c"} 4
# TYPE app_temperature gauge
app_temperature 21.5
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 3
app_latency_seconds_bucket{le="+Inf"} 5
app_latency_seconds_sum 0.9
app_latency_seconds_count 5
# TYPE app_size summary
app_size{quantile="0.5"} 10
app_size_sum 40
app_size_count 4
app_untyped{instance="x"} 7
"#;

    #[test]
    fn node_exporter_series_arrive_as_a_direct_read_gives_them() {
        use crate::test_servers::{Running, body, free_port, get, have};
        const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
        if !have(NODE_EXPORTER, "prometheus-node-exporter") {
            return;
        }
        let dir = crate::testing::TempDir::new("scrape-node");
        dir.write("app.prom", TEXTFILE);
        let port = free_port();
        let mut command = std::process::Command::new(NODE_EXPORTER);
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                dir.path().display()
            ))
            .arg("--web.disable-exporter-metrics");
        let _exporter = Running::start(command, port);
        let mut c = collector(&format!(
            "[[targets]]\nname = \"node\"\nurl = \"http://127.0.0.1:{port}/metrics\"\nlabels = {{ team = \"ops\" }}"
        ));
        let mut out = Output::default();
        c.collect(&mut out).expect("a run");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(value(&out, UP, "node"), 1.0);

        // The collector's series against a direct read, parsed independently of the
        // collector's label mapping: every series, kind and (but the one timing) value.
        let direct = textfmt::parse_exposition(body(&get(port, "/metrics")));
        assert!(direct.errors.is_empty(), "{:?}", direct.errors);
        let series = |name: &str, labels: &[(String, String)]| {
            let mut l: Vec<(String, String)> = labels.to_vec();
            l.sort();
            format!("{name}{l:?}")
        };
        let mut expected: Vec<(String, Kind, Option<f64>)> = direct
            .samples
            .iter()
            .map(|s| {
                let mut labels = s.labels.clone();
                for (n, _) in &mut labels {
                    if n == "instance" {
                        *n = "exported_instance".into();
                    }
                }
                labels.push(("job".into(), "node".into()));
                labels.push(("team".into(), "ops".into()));
                let kind = if s.counter {
                    Kind::Counter
                } else {
                    Kind::Gauge
                };
                let timing = s.name == "node_scrape_collector_duration_seconds";
                (series(&s.name, &labels), kind, (!timing).then_some(s.value))
            })
            .collect();
        let mut got: Vec<(String, Kind, Option<f64>)> = out
            .samples
            .iter()
            .filter(|s| !s.name.starts_with("sysward_scrape_"))
            .map(|s| {
                let labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect();
                let timing = s.name == "node_scrape_collector_duration_seconds";
                (
                    series(&s.name, &labels),
                    s.kind,
                    (!timing).then_some(s.value),
                )
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, expected);
        assert_eq!(value(&out, SAMPLES_SCRAPED, "node"), expected.len() as f64);

        // And against what was written, without any parser in between.
        let find = |name: &str, label: Option<(&str, &str)>| {
            out.samples
                .iter()
                .find(|s| {
                    s.name == name
                        && label
                            .is_none_or(|(n, v)| s.labels.iter().any(|(ln, lv)| ln == n && lv == v))
                })
                .map(|s| (s.kind, s.value))
                .unwrap_or_else(|| panic!("no {name} {label:?}"))
        };
        assert_eq!(
            find("app_jobs_total", Some(("queue", "mail"))),
            (Kind::Counter, 17.0)
        );
        assert_eq!(
            find("app_jobs_total", Some(("note", "a \"b\" \\ c"))),
            (Kind::Counter, 4.0)
        );
        assert_eq!(find("app_temperature", None), (Kind::Gauge, 21.5));
        assert_eq!(
            find("app_latency_seconds_bucket", Some(("le", "+Inf"))),
            (Kind::Counter, 5.0)
        );
        assert_eq!(find("app_latency_seconds_sum", None), (Kind::Counter, 0.9));
        assert_eq!(
            find("app_size", Some(("quantile", "0.5"))),
            (Kind::Gauge, 10.0)
        );
        assert_eq!(find("app_size_count", None), (Kind::Counter, 4.0));
        assert_eq!(
            find("app_untyped", Some(("exported_instance", "x"))),
            (Kind::Gauge, 7.0)
        );
        assert_eq!(find("node_textfile_scrape_error", None), (Kind::Gauge, 0.0));
    }

    #[test]
    fn node_exporter_with_its_default_collectors_is_read_whole() {
        use crate::test_servers::{Running, body, free_port, get, have};
        const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
        if !have(NODE_EXPORTER, "prometheus-node-exporter") {
            return;
        }
        let port = free_port();
        let mut command = std::process::Command::new(NODE_EXPORTER);
        command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let _exporter = Running::start(command, port);
        let mut c = collector(&format!(
            "[[targets]]\nname = \"node\"\nurl = \"http://127.0.0.1:{port}/metrics\""
        ));
        let mut out = Output::default();
        c.collect(&mut out).expect("a run");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let direct = textfmt::parse_exposition(body(&get(port, "/metrics")));
        assert!(direct.errors.is_empty(), "{:?}", direct.errors);
        // Counters move between two reads: compare the families and their kinds, and the
        // values of the series that stand still.
        let families = |names: Vec<(String, bool)>| {
            let mut f: Vec<(String, bool)> = names;
            f.sort();
            f.dedup();
            f
        };
        let got = families(
            out.samples
                .iter()
                .filter(|s| !s.name.starts_with("sysward_scrape_"))
                .map(|s| (s.name.to_string(), s.kind == Kind::Counter))
                .collect(),
        );
        let expected = families(
            direct
                .samples
                .iter()
                .map(|s| (s.name.clone(), s.counter))
                .collect(),
        );
        assert_eq!(got, expected);
        assert!(got.len() > 100, "{} families", got.len());
        assert!(got.contains(&("node_cpu_seconds_total".to_string(), true)));
        assert!(got.contains(&("node_load1".to_string(), false)));
        for stable in ["node_uname_info", "node_exporter_build_info"] {
            let theirs = direct
                .samples
                .iter()
                .find(|s| s.name == stable)
                .expect(stable);
            let ours = out.samples.iter().find(|s| s.name == stable).expect(stable);
            let mut labels: Vec<(String, String)> = ours
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            labels.sort();
            let mut want = theirs.labels.clone();
            want.push(("job".into(), "node".into()));
            want.sort();
            assert_eq!((labels, ours.value), (want, theirs.value), "{stable}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_samples_or_an_error_never_a_panic(text in "\\PC{0,200}") {
            let s = samples_of(&text, &target(5));
            proptest::prop_assert!(s.error.is_some() || s.samples.len() <= 5);
        }
    }
}
