//! Remote write receivers from Debian, started as children on loopback: single-node
//! VictoriaMetrics and Prometheus with its remote write receiver. Both keep their data in
//! a directory of the test's, so a receiver can be stopped and started again on it.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{free_port, poll, prometheus::query_escape, spawn_logged, stop};

const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Whether both receivers are installed; outside CI a test may skip without them.
pub fn receivers_installed(test: &str) -> bool {
    if Path::new(VICTORIA_METRICS).is_file() && Path::new(PROMETHEUS).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: victoria-metrics and prometheus are required in CI"
    );
    println!("NOT RUN: {test} needs victoria-metrics and prometheus (apt-get install)");
    false
}

/// A series' labels (`__name__` included) and its samples, `(unix ms, value)` by time.
pub type Samples = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

/// Single-node VictoriaMetrics.
pub struct Victoria {
    pub port: u16,
    pub data: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Victoria {
    /// Starts on a new port with its data in `root/vm-data`.
    pub fn start(root: &Path) -> Self {
        let mut v = Self {
            port: free_port(),
            data: root.join("vm-data"),
            log: root.join("victoria-metrics.log"),
            child: None,
        };
        v.spawn();
        v
    }

    /// Where remote write goes.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    fn spawn(&mut self) {
        let child = spawn_logged(
            Command::new(VICTORIA_METRICS)
                .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
                .arg(format!("-storageDataPath={}", self.data.display()))
                // Fresh samples are searchable at once; a sample sent twice is kept once.
                .arg("-search.latencyOffset=0s")
                .arg("-search.disableCache")
                .arg("-dedup.minScrapeInterval=1ms"),
            &self.log,
        );
        self.child = Some(child);
        let http = reqwest::blocking::Client::new();
        let url = format!("http://127.0.0.1:{}/health", self.port);
        poll(Duration::from_secs(30), "victoria-metrics to start", || {
            http.get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
                .then_some(())
        });
    }

    /// Stops it the way a service manager does (SIGTERM: it flushes what it took).
    pub fn stop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Every sample of the series matching `selector`, from `/api/v1/export`.
    pub fn export(&self, selector: &str) -> Samples {
        let text = reqwest::blocking::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/api/v1/export?match[]={}",
                self.port,
                query_escape(selector)
            ))
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let mut out = Samples::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let labels = string_map(&v["metric"]);
            let times = v["timestamps"].as_array().unwrap();
            let values = v["values"].as_array().unwrap();
            let points = out.entry(labels).or_default();
            for (t, x) in times.iter().zip(values) {
                points.push((t.as_i64().unwrap(), x.as_f64().unwrap_or(f64::NAN)));
            }
            points.sort_by_key(|p| p.0);
        }
        out
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }
}

/// Prometheus with `--web.enable-remote-write-receiver`, scraping nothing.
pub struct PromReceiver {
    pub port: u16,
    child: Option<Child>,
}

impl PromReceiver {
    pub fn start(root: &Path) -> Self {
        let config = root.join("prometheus-receiver.yml");
        fs::write(
            &config,
            "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        )
        .unwrap();
        let port = free_port();
        let child = spawn_logged(
            Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    root.join("prom-receiver-data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-remote-write-receiver"),
            &root.join("prometheus-receiver.log"),
        );
        let http = reqwest::blocking::Client::new();
        poll(Duration::from_secs(60), "prometheus to be ready", || {
            http.get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success())
                .then_some(())
        });
        Self {
            port,
            child: Some(child),
        }
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Every sample of the last hour of the series matching `selector` (a range vector
    /// query), with its labels.
    pub fn samples(&self, selector: &str) -> Samples {
        let body: Value = reqwest::blocking::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/api/v1/query?query={}",
                self.port,
                query_escape(&format!("{selector}[1h]"))
            ))
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["status"], "success", "{body}");
        let mut out = Samples::new();
        for s in body["data"]["result"].as_array().unwrap() {
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    // Seconds with up to three decimals: back to whole milliseconds.
                    let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    (ms, p[1].as_str().unwrap().parse::<f64>().unwrap())
                })
                .collect();
            out.insert(string_map(&s["metric"]), points);
        }
        out
    }
}

impl Drop for PromReceiver {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}
