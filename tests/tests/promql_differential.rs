//! Differential test against real Prometheus: one day of `gen_hosts` history for three
//! hosts, loaded into Debian's Prometheus (`promtool tsdb create-blocks-from openmetrics`)
//! and into Sysward (`sysward-server import`), then dashboard and alert queries against
//! both HTTP APIs, instant at several times and over ranges, compared series by series
//! (label sets exact, values within 1e-6 relative, NaN equal to NaN).
//!
//! Debian's Prometheus is 2.42, whose range selectors are closed (`[t - r, t]`) where 3.x
//! (and Sysward) leave them open on the left (`(t - r, t]`). The data's samples are at 13 s
//! past each minute and every evaluation time at 43 s past a minute, so no range and no
//! subquery step (at multiples of its step since the epoch) ever starts on a sample, and
//! the difference cannot show.
//!
//! Without `promtool` and `prometheus` the test prints `NOT RUN` and passes, except in CI
//! (`CI` set), where `.ci/run` installs them and their absence fails it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use sysward_tests::{
    Server, bin,
    prometheus::{Answer, Prometheus, query_escape, skip_without_prometheus, sysward_get},
};

/// Dashboard panels and alert expressions, as operators write them for node_exporter.
const QUERIES: &[&str] = &[
    // CPU
    "rate(node_cpu_seconds_total[5m])",
    r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
    "sum by (instance, mode) (irate(node_cpu_seconds_total[5m]))",
    r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#,
    r#"resets(node_cpu_seconds_total{mode="user"}[1d])"#,
    r#"increase(node_cpu_seconds_total{mode="system"}[1h])"#,
    "count by (instance) (node_cpu_seconds_total)",
    "count(count by (cpu) (node_cpu_seconds_total))",
    // Memory
    "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > bool 0.5",
    // Filesystems
    "predict_linear(node_filesystem_avail_bytes[6h], 4*3600) < 0",
    r#"deriv(node_filesystem_avail_bytes{mountpoint="/var"}[1h])"#,
    "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 50",
    // Load
    "topk(5, node_load1)",
    "avg_over_time(node_load1[1h])",
    "max_over_time(node_load5[30m])",
    "quantile_over_time(0.9, node_load1[1h])",
    "stddev_over_time(node_load15[1h])",
    "changes(node_load15[1h])",
    "node_load1 > bool 1",
    "node_load1 offset 1h",
    "node_load1 - node_load1 offset 1h",
    "absent(node_load1)",
    r#"absent(node_load1{instance="nope"})"#,
    // Network
    "sum by (instance, device) (rate(node_network_receive_bytes_total[5m]))",
    r#"rate(node_network_transmit_bytes_total{device!="lo"}[10m]) * 8"#,
    r#"rate(node_network_receive_bytes_total{device="eth0"}[5m] @ end())"#,
    "max_over_time(rate(node_network_receive_bytes_total[5m])[1h:5m])",
    // Latency histogram
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[10m])))",
    "sum(rate(http_request_duration_seconds_sum[5m])) / sum(rate(http_request_duration_seconds_count[5m]))",
];

/// What both systems answered differently, one line per query and time.
struct Report {
    compared: usize,
    failures: Vec<String>,
}

impl Report {
    fn compare(&mut self, what: &str, ours: &serde_json::Value, theirs: &serde_json::Value) {
        self.compared += 1;
        let theirs = match Answer::parse(theirs) {
            Ok(a) => a,
            Err(body) => {
                self.failures
                    .push(format!("{what}: Prometheus failed: {body}"));
                return;
            }
        };
        match Answer::parse(ours) {
            Err(body) => self
                .failures
                .push(format!("{what}: Sysward failed: {body}")),
            Ok(ours) => {
                if let Some(diff) = ours.difference(&theirs, 1e-6) {
                    self.failures.push(format!("{what}: {diff}"));
                }
            }
        }
    }
}

#[test]
fn dashboard_and_alert_queries_answer_as_prometheus_does() {
    if skip_without_prometheus("promql_differential") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The last sample at 13 s past the last whole minute.
    let end = now / 60 * 60 - 47;
    let data = root.join("hosts.om");
    let out = Command::new(bin("gen_hosts"))
        .args([
            "--hosts",
            "3",
            "--span",
            "1d",
            "--interval",
            "60s",
            "--seed",
            "7",
        ])
        .args(["--end", &end.to_string(), "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let blocks = Prometheus::create_blocks(root, &data);
    let prometheus = Prometheus::start(root, &blocks);

    // Raw retention past the day, so that every query reads raw points as Prometheus does.
    let mut server = Server::start_with_storage(root, "", "[retention]\nraw = \"3d\"\n");
    server.kill();
    let out = server.cli(&["import", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.restart();
    let token = {
        let out = server.cli(&["api-token", "create", "--role", "read", "--name", "t"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    let mut report = Report {
        compared: 0,
        failures: Vec::new(),
    };
    // The raw samples first: the import stored exactly what promtool did, labels included.
    let raw = format!(
        "/api/v1/query?query={}&time={end}",
        query_escape(r#"{job="node"}[1d]"#)
    );
    report.compare(
        "raw samples",
        &sysward_get(&server, &token, &raw),
        &prometheus.get(&raw),
    );

    let at = |back_secs: i64| end + 30 - back_secs;
    let instants = [at(60), at(3 * 3600), at(11 * 3600)];
    let ranges = [(at(6 * 3600), at(60), 300), (at(2 * 3600 + 60), at(60), 60)];
    for q in QUERIES {
        let query = query_escape(q);
        for t in instants {
            let path = format!("/api/v1/query?query={query}&time={t}");
            let what = format!("{q} at {t}");
            report.compare(
                &what,
                &sysward_get(&server, &token, &path),
                &prometheus.get(&path),
            );
        }
        for (start, stop, step) in ranges {
            let path =
                format!("/api/v1/query_range?query={query}&start={start}&end={stop}&step={step}");
            let what = format!("{q} from {start} to {stop} step {step}");
            report.compare(
                &what,
                &sysward_get(&server, &token, &path),
                &prometheus.get(&path),
            );
        }
    }
    println!(
        "{} of {} answers equal Prometheus 2.42's",
        report.compared - report.failures.len(),
        report.compared
    );
    assert!(
        report.failures.is_empty(),
        "{} answers differ:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}
