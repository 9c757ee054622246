//! Real Prometheus beside Sysward, for differential tests: Debian's `promtool` builds
//! blocks from OpenMetrics text, `prometheus` serves them on loopback, and both HTTP APIs
//! answer the same queries in the same JSON shape, which [`Answer`] normalises for
//! comparison.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{Server, client, free_port, poll, spawn_logged, stop};

/// Where Debian's package puts the two tools.
const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// `(promtool, prometheus)` when both are installed.
pub fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let (tool, server) = (PathBuf::from(PROMTOOL), PathBuf::from(PROMETHEUS));
    (tool.is_file() && server.is_file()).then_some((tool, server))
}

/// Whether a test that needs Prometheus may skip: outside CI only. In CI (`CI` set) the
/// tools must be there (`.ci/run` installs them), so a missing one fails the test.
pub fn skip_without_prometheus(test: &str) -> bool {
    if prometheus_tools().is_some() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: promtool and prometheus are required in CI (apt-get install prometheus)"
    );
    println!("NOT RUN: {test} needs promtool and prometheus (apt-get install prometheus)");
    true
}

/// `text` escaped for a URL's query string.
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A running `prometheus` on a TSDB directory, on 127.0.0.1, scraping nothing.
pub struct Prometheus {
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Prometheus {
    /// Builds blocks from `openmetrics` into `root/prom-data` with promtool.
    pub fn create_blocks(root: &Path, openmetrics: &Path) -> PathBuf {
        let (promtool, _) = prometheus_tools().expect("promtool is installed");
        let data = root.join("prom-data");
        let out = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(openmetrics)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        data
    }

    /// Starts Prometheus on `data` and waits until it is ready.
    pub fn start(root: &Path, data: &Path) -> Self {
        let (_, prometheus) = prometheus_tools().expect("prometheus is installed");
        let config = root.join("prometheus.yml");
        fs::write(
            &config,
            "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        )
        .unwrap();
        let port = free_port();
        let log = root.join("prometheus.log");
        let child = spawn_logged(
            Command::new(prometheus)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Keep whatever promtool wrote, however old the generated data.
                .arg("--storage.tsdb.retention.time=3650d"),
            &log,
        );
        let p = Self {
            port,
            log,
            child: Some(child),
        };
        let http = reqwest::blocking::Client::new();
        poll(Duration::from_secs(60), "prometheus to be ready", || {
            let ok = http
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success());
            ok.then_some(())
        });
        p
    }

    /// GET `path` (with its query string); the JSON answer.
    pub fn get(&self, path: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(60))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }
}

/// GET `path` of Sysward's query API with a bearer token; the JSON answer.
pub fn sysward_get(server: &Server, token: &str, path: &str) -> Value {
    client(&server.ca_pem(), None)
        .get(format!("{}{path}", server.url()))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap_or(Value::Null)
}

/// A series' labels, its name as `__name__`.
pub type Labels = BTreeMap<String, String>;

/// A query's answer, normalised: the result type, and every series' labels with its
/// `(time, value)` points, sorted by labels (an instant vector's order means nothing
/// unless the query sorts).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub result_type: String,
    pub series: Vec<(Labels, Vec<(f64, f64)>)>,
}

impl Answer {
    /// From a Prometheus-shaped JSON answer; `Err` with the body when it is not a success.
    pub fn parse(body: &Value) -> Result<Self, String> {
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        let data = &body["data"];
        let result_type = data["resultType"].as_str().unwrap_or("").to_string();
        let point = |p: &Value| -> (f64, f64) {
            let t = p[0].as_f64().unwrap_or(f64::NAN);
            let v = p[1].as_str().map_or(f64::NAN, parse_value);
            (t, v)
        };
        let mut series = Vec::new();
        match result_type.as_str() {
            "scalar" | "string" => series.push((BTreeMap::new(), vec![point(&data["result"])])),
            _ => {
                for s in data["result"].as_array().into_iter().flatten() {
                    let labels: BTreeMap<String, String> = s["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    let points = match s.get("values") {
                        Some(values) => {
                            values.as_array().into_iter().flatten().map(point).collect()
                        }
                        None => vec![point(&s["value"])],
                    };
                    series.push((labels, points));
                }
            }
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self {
            result_type,
            series,
        })
    }

    /// The first difference from `other` (`self` is Sysward's, `other` Prometheus'):
    /// label sets exact, times exact, values within `rel` relative error, NaN equal to NaN.
    pub fn difference(&self, other: &Self, rel: f64) -> Option<String> {
        if self.result_type != other.result_type {
            return Some(format!(
                "result type {} vs {}",
                self.result_type, other.result_type
            ));
        }
        let ours: Vec<_> = self.series.iter().map(|s| &s.0).collect();
        let theirs: Vec<_> = other.series.iter().map(|s| &s.0).collect();
        if ours != theirs {
            return Some(format!(
                "series differ:\n  sysward    {ours:?}\n  prometheus {theirs:?}"
            ));
        }
        for ((labels, a), (_, b)) in self.series.iter().zip(&other.series) {
            if a.len() != b.len() {
                return Some(format!("{labels:?}: {} points vs {}", a.len(), b.len()));
            }
            for (p, q) in a.iter().zip(b) {
                if p.0 != q.0 || !close(p.1, q.1, rel) {
                    return Some(format!("{labels:?}: {p:?} vs {q:?}"));
                }
            }
        }
        None
    }
}

/// A value as the API writes it: a decimal, `NaN`, `+Inf` or `-Inf`.
fn parse_value(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

/// Equal within a relative error, NaN equal to NaN, infinities only to themselves.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    // Below 1e-12 both are zero but for rounding in a different order of operations.
    (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() < 1e-12
}
