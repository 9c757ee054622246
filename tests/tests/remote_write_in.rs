//! Foreign ingest into a real `sysward-server` over TLS: Debian's `prometheus` scraping a
//! real `prometheus-node-exporter` (and itself) and remote-writing with a write token, its
//! answers compared sample by sample with Sysward's; bad remote write requests refused with
//! their status and reason and nothing of them stored; OTLP/HTTP protobuf requests mapped
//! to Prometheus names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
    },
    resource::v1::Resource,
};
use prost::Message;
use serde_json::Value;
use sysward_promwire::{Label, Sample, TimeSeries, WriteRequest};
use sysward_tests::{
    Server, client, free_port, gzip, poll,
    prometheus::{Answer, query_escape, skip_without_prometheus, sysward_get},
};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let file = fs::File::create(log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Proc(child)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// POSTs a remote write body with `token` (none when empty); status and body text.
fn post_write(server: &Server, token: &str, body: Vec<u8>) -> (u16, String) {
    let mut req = client(&server.ca_pem(), None)
        .post(format!("{}/api/v1/write", server.url()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body);
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

fn instant(server: &Server, token: &str, query: &str, at_ms: i64) -> Answer {
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        query_escape(query),
        at_ms / 1000,
        at_ms % 1000
    );
    Answer::parse(&sysward_get(server, token, &path)).unwrap()
}

#[test]
fn prometheus_remote_writes_into_sysward_and_both_answer_alike() {
    if skip_without_prometheus("prometheus_remote_writes_into_sysward_and_both_answer_alike") {
        return;
    }
    if !Path::new(NODE_EXPORTER).is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus-node-exporter is required in CI"
        );
        println!(
            "NOT RUN: needs prometheus-node-exporter (apt-get install prometheus-node-exporter)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = Server::start(root, "");
    let write = server.api_token("write", "prom", &[]);
    let read = server.api_token("read", "grafana", &[]);
    let ca = root.join("server-data/pki/ca.crt");

    let node_port = free_port();
    let _node = spawn(
        Command::new(NODE_EXPORTER).args([
            &format!("--web.listen-address=127.0.0.1:{node_port}"),
            "--collector.disable-defaults",
            "--collector.loadavg",
            "--collector.meminfo",
            "--collector.cpu",
        ]),
        &root.join("node-exporter.log"),
    );
    let prom_port = free_port();
    let config = root.join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             - job_name: node\n  static_configs:\n  - targets: ['127.0.0.1:{node_port}']\n\
             - job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n\
             - url: {}/api/v1/write\n  authorization:\n    credentials: {write}\n  tls_config:\n    ca_file: {}\n  queue_config:\n    batch_send_deadline: 1s\n    min_backoff: 100ms\n    max_backoff: 1s\n",
            server.url(),
            ca.display()
        ),
    )
    .unwrap();
    let _prometheus = spawn(
        Command::new(PROMETHEUS).args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", root.join("prom-data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ]),
        &root.join("prometheus.log"),
    );
    let prom = |query: &str, at_ms: i64| -> Option<Value> {
        let url = format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query={}&time={}.{:03}",
            query_escape(query),
            at_ms / 1000,
            at_ms % 1000
        );
        reqwest::blocking::get(url).ok()?.json().ok()
    };
    let log = || fs::read_to_string(root.join("prometheus.log")).unwrap_or_default();
    // Sysward's answer without its `agent_id` label, against Prometheus'.
    let compare = |query: &str, at: i64| -> Result<Answer, String> {
        let body = prom(query, at).ok_or("prometheus does not answer")?;
        let theirs = Answer::parse(&body)?;
        if theirs.series.is_empty() {
            return Err(format!("prometheus has nothing yet: {body}"));
        }
        let mut ours = instant(&server, &read, query, at);
        for (labels, _) in &mut ours.series {
            labels.remove("agent_id");
        }
        ours.series.sort_by(|a, b| a.0.cmp(&b.0));
        match ours.difference(&theirs, 0.0) {
            None => Ok(theirs),
            Some(d) => Err(d),
        }
    };

    // Data arrives, attributed to the token, with the targets' own `instance`.
    let up = poll(Duration::from_secs(30), "node data in Sysward", || {
        let a = instant(&server, &read, "up{job=\"node\"}", now_ms());
        (!a.series.is_empty()).then_some(a)
    });
    // A few scrapes in, so that the window compared holds several samples per series.
    poll(Duration::from_secs(30), "four scrapes in Sysward", || {
        let a = instant(
            &server,
            &read,
            "count_over_time(up{job=\"node\"}[10s])",
            now_ms(),
        );
        a.series
            .first()
            .is_some_and(|s| s.1[0].1 >= 4.0)
            .then_some(())
    });
    let labels = &up.series[0].0;
    assert_eq!(labels["agent_id"], "prom", "{labels:?}");
    assert_eq!(labels["instance"], format!("127.0.0.1:{node_port}"));

    // Raw samples of a fixed past window, sample by sample, once both have them all.
    let at = now_ms() - 1500;
    let queries = [
        "up[5s]",
        "node_load1[5s]",
        "node_memory_MemAvailable_bytes[5s]",
        "node_cpu_seconds_total{mode=\"idle\"}[5s]",
        "scrape_samples_scraped[5s]",
        "prometheus_tsdb_head_series[5s]",
    ];
    for query in queries {
        let mut last;
        let deadline = Instant::now() + Duration::from_secs(20);
        let same = loop {
            match compare(query, at) {
                Ok(theirs) => break theirs,
                Err(d) => last = d,
            }
            assert!(
                Instant::now() < deadline,
                "{query} at {at}: never the same:\n{last}\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let samples: usize = same.series.iter().map(|s| s.1.len()).sum();
        assert!(samples >= 2, "{query}: {samples} samples compared");
    }

    // A read token may not write; no token is no write.
    let body = sysward_promwire::encode(&WriteRequest::default());
    assert_eq!(post_write(&server, &read, body.clone()).0, 403);
    assert_eq!(post_write(&server, "", body.clone()).0, 401);
    assert_eq!(post_write(&server, &write, body).0, 204);

    let (_, metrics) = server.admin_get_text("/metrics");
    let accepted = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "sysward_server_foreign_samples_accepted_total{protocol=\"remote_write\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(accepted > 100, "{metrics}");
}

fn series(name: &str, labels: &[(&str, &str)], points: &[(i64, f64)]) -> TimeSeries {
    let mut all = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    all.extend(labels.iter().map(|(k, v)| Label {
        name: (*k).into(),
        value: (*v).into(),
    }));
    TimeSeries {
        labels: all,
        samples: points
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn write_request(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    sysward_promwire::encode(&WriteRequest {
        timeseries,
        metadata: vec![],
    })
}

#[test]
fn bad_remote_write_requests_are_refused_whole_and_retries_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "[limits]\nmax_series_per_batch = 5\nmax_body = \"64KiB\"\nmax_concurrent_ingests = 1\n",
    );
    let token = server.api_token("write", "alloy", &[]);
    let read = server.api_token("read", "grafana", &[]);
    let t = now_ms() - 60_000;
    // Every refused request starts with a valid series: none of them may be stored.
    let canary = |case: &str| series(&format!("canary_{case}"), &[("job", "x")], &[(t, 1.0)]);
    let mut histogram = series("h", &[], &[]);
    histogram.histograms.push(vec![0x08, 0x01]);
    let many: Vec<TimeSeries> = (0..6)
        .map(|i| series(&format!("m{i}"), &[], &[(t, 1.0)]))
        .collect();
    let long = "x".repeat(1000);
    let huge: Vec<TimeSeries> = (0..5)
        .map(|i| {
            let points: Vec<(i64, f64)> =
                (0..5000).map(|j| (t + j, (i * j) as f64 * 1.37)).collect();
            series("huge", &[("n", &i.to_string()), ("pad", &long)], &points)
        })
        .collect();
    let raw = WriteRequest {
        timeseries: vec![canary("raw")],
        metadata: vec![],
    }
    .encode_to_vec();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not snappy", raw, 400, "not snappy"),
        (
            "not protobuf",
            snappy(b"\xff\xff\xff\xff\xff not a protobuf message"),
            400,
            "not a protobuf",
        ),
        (
            "invalid metric name",
            write_request(vec![canary("name"), series("1bad", &[], &[(t, 1.0)])]),
            400,
            "invalid metric name",
        ),
        (
            "invalid label name",
            write_request(vec![
                canary("label"),
                series("ok", &[("bad-label", "v")], &[(t, 1.0)]),
            ]),
            400,
            "invalid label name",
        ),
        (
            "duplicate label",
            write_request(vec![
                canary("dup"),
                series("ok", &[("a", "1"), ("a", "2")], &[(t, 1.0)]),
            ]),
            400,
            "more than once",
        ),
        (
            "out of order",
            write_request(vec![
                canary("ooo"),
                series("ok", &[], &[(t + 1000, 1.0), (t, 2.0)]),
            ]),
            400,
            "out of order",
        ),
        (
            "duplicated sample",
            write_request(vec![
                canary("dupsample"),
                series("ok", &[], &[(t, 1.0)]),
                series("ok", &[], &[(t, 1.0)]),
            ]),
            400,
            "duplicate sample",
        ),
        (
            "native histogram",
            write_request(vec![canary("hist"), histogram]),
            400,
            "native histograms are not supported",
        ),
        (
            "too many series",
            write_request([vec![canary("many")], many].concat()),
            413,
            "max_series_per_batch",
        ),
        ("too big", write_request(huge), 413, "over the limit"),
    ];
    for (case, body, status, words) in cases {
        let (got, text) = post_write(&server, &token, body);
        assert_eq!(got, status, "{case}: {text}");
        assert!(text.contains(words), "{case}: {text}");
    }
    let v2 = client(&server.ca_pem(), None)
        .post(format!("{}/api/v1/write", server.url()))
        .bearer_auth(&token)
        .header(
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .body(write_request(vec![canary("v2")]))
        .send()
        .unwrap();
    assert_eq!(v2.status().as_u16(), 415);
    assert!(v2.text().unwrap().contains("remote write 1.0"));
    let (_, found) = server.prom_get(
        &read,
        "/api/v1/series?match[]=%7B__name__%3D~%22canary_.%2A%7Cok%7Chuge%22%7D",
    );
    assert_eq!(found["data"], serde_json::json!([]), "{found}");

    // A retry stores nothing twice; NaN is kept, and a staleness marker ends the series.
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let good = write_request(vec![
        series(
            "retried",
            &[("instance", "db:9104")],
            &[(t, 1.0), (t + 1000, 2.0)],
        ),
        series("gone", &[], &[(t, 5.0), (t + 1000, stale)]),
        series("not_a_number", &[], &[(t, f64::NAN)]),
    ]);
    for _ in 0..2 {
        let (status, text) = post_write(&server, &token, good.clone());
        assert_eq!(status, 204, "{text}");
    }
    let count = instant(&server, &read, "count_over_time(retried[1h])", t + 2000);
    assert_eq!(count.series.len(), 1, "{count:?}");
    assert_eq!(count.series[0].1[0].1, 2.0);
    assert_eq!(count.series[0].0["instance"], "db:9104");
    assert_eq!(count.series[0].0["agent_id"], "alloy");
    assert_eq!(instant(&server, &read, "gone", t + 500).series.len(), 1);
    assert!(instant(&server, &read, "gone", t + 2000).series.is_empty());
    let nan = instant(&server, &read, "not_a_number", t + 500);
    assert!(nan.series[0].1[0].1.is_nan(), "{nan:?}");

    let (_, metrics) = server.admin_get_text("/metrics");
    for line in [
        "sysward_server_foreign_requests_refused_total{protocol=\"remote_write\",reason=\"not_snappy\"} 1",
        "sysward_server_foreign_requests_refused_total{protocol=\"remote_write\",reason=\"out_of_order\"} 1",
        "sysward_server_foreign_requests_refused_total{protocol=\"remote_write\",reason=\"too_large\"} 2",
        "sysward_server_foreign_samples_accepted_total{protocol=\"remote_write\"} 5",
        "sysward_server_foreign_samples_skipped_total{protocol=\"remote_write\"} 5",
        "sysward_server_foreign_requests_total{protocol=\"remote_write\",outcome=\"accepted\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }

    busy_ingest_is_refused_with_retry_after(&server, &token);
    let (_, metrics) = server.admin_get_text("/metrics");
    let busy =
        "sysward_server_foreign_requests_total{protocol=\"remote_write\",outcome=\"busy\"} 1";
    assert!(metrics.contains(busy), "{metrics}");
}

/// A request body that sends one byte, then blocks until told to end. The first byte
/// makes the client send the request's head at once rather than hold it for the body.
struct HeldBody {
    release: std::sync::mpsc::Receiver<()>,
    started: bool,
}

impl std::io::Read for HeldBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !std::mem::replace(&mut self.started, true) && !buf.is_empty() {
            buf[0] = b'x';
            return Ok(1);
        }
        let _ = self.release.recv();
        Ok(0)
    }
}

/// With `max_concurrent_ingests = 1`, a request whose body is still arriving holds the
/// one permit: another gets 429 with `Retry-After`.
fn busy_ingest_is_refused_with_retry_after(server: &Server, token: &str) {
    let (release, held) = std::sync::mpsc::channel();
    let http = client(&server.ca_pem(), None);
    let url = format!("{}/api/v1/write", server.url());
    let slow = {
        let (http, url, token) = (http.clone(), url.clone(), token.to_string());
        std::thread::spawn(move || {
            let body = reqwest::blocking::Body::new(HeldBody {
                release: held,
                started: false,
            });
            http.post(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .map(|r| r.status().as_u16())
        })
    };
    // Nothing else asks for the permit until the held request has it (the server's
    // ingest gauge says so): a request sent earlier could take it first and turn the
    // held one away.
    poll(
        Duration::from_secs(10),
        "the held request to take the permit",
        || {
            let (_, metrics) = server.admin_get_text("/metrics");
            metrics
                .lines()
                .any(|l| l == "sysward_server_ingest_in_flight 1")
                .then_some(())
        },
    );
    let resp = http
        .post(&url)
        .bearer_auth(token)
        .body(write_request(vec![]))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    release.send(()).unwrap();
    // The held request goes on once its body ends: one byte, not snappy.
    assert_eq!(slow.join().unwrap().unwrap(), 400);
}

/// Snappy's block format, remote write's framing, around any bytes.
fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn point(ts_ms: i64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: ts_ms as u64 * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn otlp_request(t: i64) -> ExportMetricsServiceRequest {
    let metric = |name: &str, unit: &str, data: Data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.instance.id", "pod-7"),
                    kv("deployment.environment", "prod"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "queue.depth",
                        "{item}",
                        Data::Gauge(Gauge {
                            data_points: vec![point(t, 42.0, vec![kv("queue.name", "orders")])],
                        }),
                    ),
                    metric(
                        "http.server.requests",
                        "",
                        Data::Sum(Sum {
                            data_points: vec![point(t, 1234.0, vec![kv("http.method", "GET")])],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "http.server.duration",
                        "s",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: t as u64 * 1_000_000,
                                count: 10,
                                sum: Some(3.5),
                                bucket_counts: vec![4, 5, 1],
                                explicit_bounds: vec![0.1, 1.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        }),
                    ),
                    metric(
                        "jobs.done",
                        "",
                        Data::Sum(Sum {
                            data_points: vec![point(t, 3.0, vec![])],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn post_otlp(
    server: &Server,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
    gzipped: bool,
) -> (u16, Vec<u8>) {
    let mut req = client(&server.ca_pem(), None)
        .post(format!("{}/v1/metrics", server.url()))
        .header("content-type", content_type)
        .body(body);
    if gzipped {
        req = req.header("content-encoding", "gzip");
    }
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().unwrap().to_vec())
}

/// `google.rpc.Status`, as an OTLP/HTTP error body carries it.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[test]
fn otlp_metrics_are_stored_under_prometheus_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let token = server.api_token("write", "otel-collector", &[]);
    let read = server.api_token("read", "grafana", &[]);
    let t = now_ms() - 10_000;
    let protobuf = "application/x-protobuf";

    let body = gzip(&otlp_request(t).encode_to_vec());
    let (status, answer) = post_otlp(&server, &token, protobuf, body, true);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer = ExportMetricsServiceResponse::decode(answer.as_slice()).unwrap();
    let partial = answer.partial_success.expect("the delta sum is reported");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("delta"),
        "{}",
        partial.error_message
    );

    let at = t + 1000;
    for (query, value) in [
        (
            "queue_depth{job=\"checkout\",instance=\"pod-7\",queue_name=\"orders\"}",
            42.0,
        ),
        ("http_server_requests_total{http_method=\"GET\"}", 1234.0),
        ("http_server_duration_seconds_bucket{le=\"0.1\"}", 4.0),
        ("http_server_duration_seconds_bucket{le=\"1\"}", 9.0),
        ("http_server_duration_seconds_bucket{le=\"+Inf\"}", 10.0),
        ("http_server_duration_seconds_sum", 3.5),
        ("http_server_duration_seconds_count", 10.0),
        (
            "target_info{job=\"checkout\",instance=\"pod-7\",deployment_environment=\"prod\"}",
            1.0,
        ),
    ] {
        let a = instant(&server, &read, query, at);
        assert_eq!(a.series.len(), 1, "{query}: {a:?}");
        assert_eq!(a.series[0].1[0].1, value, "{query}");
        assert_eq!(a.series[0].0["agent_id"], "otel-collector");
    }
    let q = instant(
        &server,
        &read,
        "histogram_quantile(0.5, http_server_duration_seconds_bucket)",
        at,
    );
    assert_eq!(q.series.len(), 1, "{q:?}");
    assert!(
        instant(&server, &read, "{__name__=~\"jobs.*\"}", at)
            .series
            .is_empty()
    );

    // Bad input: a google.rpc.Status body with the reason; wrong media type; no token.
    let (status, body) = post_otlp(
        &server,
        &token,
        protobuf,
        b"\xff\xff\xff garbage".to_vec(),
        false,
    );
    assert_eq!(status, 400);
    let rpc = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(rpc.message.contains("not a protobuf"), "{}", rpc.message);
    let (status, _) = post_otlp(&server, &token, "application/json", b"{}".to_vec(), false);
    assert_eq!(status, 415);
    let (status, _) = post_otlp(&server, "", protobuf, vec![], false);
    assert_eq!(status, 401);
    let (status, _) = post_otlp(&server, &read, protobuf, vec![], false);
    assert_eq!(status, 403);
}
