//! The server's own telemetry over OTLP (`OTEL_ENABLED=true`): metrics and spans arrive at
//! a local OTLP receiver (the recorder, decoding the protobuf bodies), with the standard
//! variables honoured; nothing is sent when it is off; an unreachable endpoint changes
//! nothing for agents; `OTEL_PROMETHEUS_PORT` serves `/metrics` without auth.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    io::Read,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value::Value},
    metrics::v1::{metric::Data, number_data_point},
};
use prost::Message;
use serde_json::json;
use sysward_tests::{
    Agent, Server, bin, free_port, gzip, poll,
    recorder::{Recorded, Recorder},
};

const RULES: &str = "evaluation_interval = \"1s\"\n";

fn rules_dir(root: &Path) {
    fs::create_dir_all(root.join("rules")).unwrap();
    fs::write(
        root.join("rules/otel.yml"),
        "groups:\n- name: otel-test\n  interval: 1s\n  rules:\n  - record: otel:one\n    expr: vector(1)\n",
    )
    .unwrap();
}

fn text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| text(&a.value))
}

fn posts(recorder: &Recorder, path: &str) -> Vec<Recorded> {
    recorder
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.target == path)
        .collect()
}

/// The metric names of every export so far, with one value each (the first data point)
/// and whether they are monotonic sums.
fn exported_metrics(recorder: &Recorder) -> Vec<(String, f64, bool)> {
    let mut out = Vec::new();
    for r in posts(recorder, "/v1/metrics") {
        let req = ExportMetricsServiceRequest::decode(r.body.as_slice()).unwrap();
        for m in req
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
        {
            let (points, monotonic) = match &m.data {
                Some(Data::Sum(s)) => (&s.data_points, s.is_monotonic),
                Some(Data::Gauge(g)) => (&g.data_points, false),
                other => panic!("{}: unexpected data {other:?}", m.name),
            };
            let value = match points.first().and_then(|p| p.value) {
                Some(number_data_point::Value::AsDouble(v)) => v,
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                None => f64::NAN,
            };
            out.push((m.name.clone(), value, monotonic));
        }
    }
    out
}

/// Every span exported so far: name and attributes.
fn exported_spans(recorder: &Recorder) -> Vec<(String, Vec<KeyValue>)> {
    posts(recorder, "/v1/traces")
        .iter()
        .flat_map(|r| {
            let req = ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap();
            req.resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .map(|s| (s.name, s.attributes))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names of the server's threads (`comm`, 15 characters at most).
fn threads(server: &Server) -> Vec<String> {
    let dir = format!("/proc/{}/task", server.pid().unwrap());
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn metrics_and_spans_reach_an_otlp_receiver_and_nothing_when_off() {
    let receiver = Recorder::start();
    let quiet = Recorder::start();
    let (on_dir, off_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    rules_dir(on_dir.path());
    let prom_port = free_port().to_string();
    let on = Server::start_with_env(
        on_dir.path(),
        &[
            ("OTEL_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-test=1"),
            ("OTEL_PROMETHEUS_PORT", &prom_port),
        ],
        RULES,
        "",
    );
    // The same variables but OTEL_ENABLED: nothing may go out.
    let off = Server::start_with_env(
        off_dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &quiet.url),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
        RULES,
        "",
    );
    for server in [&on, &off] {
        assert_eq!(server.admin_get_text("/metrics").0, 200);
        assert_eq!(
            server.admin_get_text("/api/v1/label/__name__/values").0,
            200
        );
        assert_eq!(server.admin_get_text("/no/such/thing").0, 404);
    }

    // Metrics: the /metrics names, as sums or gauges, under the standard resource.
    let metrics = poll(Duration::from_secs(20), "two OTLP metric exports", || {
        let m = exported_metrics(&receiver);
        (posts(&receiver, "/v1/metrics").len() >= 2).then_some(m)
    });
    let find = |name: &str| metrics.iter().find(|(n, _, _)| n == name).cloned();
    let (_, version, monotonic) = find("sysward_server_build_info").expect("build info");
    assert_eq!((version, monotonic), (1.0, false));
    assert!(
        find("sysward_server_batches_accepted_total").unwrap().2,
        "a counter is a monotonic sum"
    );
    assert!(!find("sysward_server_series").unwrap().2);
    assert!(
        find("sysward_server_query_duration_seconds_count")
            .unwrap()
            .2
    );
    assert!(find("sysward_rule_group_evaluations_total").is_some());
    assert!(find("process_resident_memory_bytes").unwrap().1 > 0.0);
    let first = &posts(&receiver, "/v1/metrics")[0];
    assert_eq!(first.header("x-test"), Some("1"));
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    let req = ExportMetricsServiceRequest::decode(first.body.as_slice()).unwrap();
    let resource = req.resource_metrics[0].resource.clone().unwrap().attributes;
    assert_eq!(
        attr(&resource, "deployment.environment").as_deref(),
        Some("test")
    );
    assert_eq!(
        attr(&resource, "service.name").as_deref(),
        Some("sysward-server")
    );

    // Spans: the requests above with method, route and status, and a rule group.
    let spans = poll(
        Duration::from_secs(20),
        "the request and rule spans",
        || {
            let spans = exported_spans(&receiver);
            let route = |r: &str| {
                spans
                    .iter()
                    .any(|(_, a)| attr(a, "http.route").as_deref() == Some(r))
            };
            let rules = spans
                .iter()
                .any(|(n, _)| n == "evaluate rule group otel-test");
            (route("/metrics") && route("/api/v1/label/{name}/values") && rules).then_some(spans)
        },
    );
    let (name, attrs) = spans
        .iter()
        .find(|(_, a)| attr(a, "http.route").as_deref() == Some("/api/v1/label/{name}/values"))
        .unwrap();
    assert_eq!(name, "GET /api/v1/label/{name}/values");
    assert_eq!(attr(attrs, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(attrs, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(attrs, "url.path").as_deref(),
        Some("/api/v1/label/__name__/values")
    );
    let not_found = spans
        .iter()
        .find(|(_, a)| attr(a, "url.path").as_deref() == Some("/no/such/thing"))
        .expect("a span for the unmatched request");
    assert_eq!(
        attr(&not_found.1, "http.response.status_code").as_deref(),
        Some("404")
    );
    let (_, rule_attrs) = spans
        .iter()
        .find(|(n, _)| n == "evaluate rule group otel-test")
        .unwrap();
    assert_eq!(
        attr(rule_attrs, "sysward.rule_group").as_deref(),
        Some("otel-test")
    );
    assert_eq!(attr(rule_attrs, "sysward.rules").as_deref(), Some("1"));
    assert_eq!(
        posts(&receiver, "/v1/traces")[0].header("x-test"),
        Some("1")
    );

    // Off: in all that time (two export intervals at least), nothing, and no exporter
    // threads; on, the SDK's two.
    assert!(quiet.requests().is_empty(), "{:?}", quiet.requests());
    assert!(
        !threads(&off).iter().any(|t| t.starts_with("OpenTelemetry")),
        "{:?}",
        threads(&off)
    );
    let on_threads = threads(&on);
    assert_eq!(
        on_threads
            .iter()
            .filter(|t| t.starts_with("OpenTelemetry"))
            .count(),
        2,
        "{on_threads:?}"
    );

    // The local port: the same page, no token, plain HTTP; only /metrics.
    let local = reqwest::blocking::Client::new();
    let page = local
        .get(format!("http://127.0.0.1:{prom_port}/metrics"))
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let page = page.text().unwrap();
    assert!(
        page.contains("\n# TYPE sysward_server_batches_accepted_total counter\n"),
        "{page}"
    );
    assert!(
        page.contains("sysward_server_otlp_exports_total{signal=\"metrics\"} "),
        "{page}"
    );
    let other = local
        .get(format!("http://127.0.0.1:{prom_port}/api/v1/agents"))
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
}

/// `name{labels}` → value from the admin `/metrics`.
fn scraped(server: &Server, series: &str) -> Option<f64> {
    let (_, text) = server.admin_get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn an_unreachable_endpoint_changes_nothing_for_agents_and_logs_once() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: every export fails at once.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start_with_env(
        dir.path(),
        &[
            ("OTEL_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        "",
        "",
    );
    let agent = Agent::configure(dir.path(), "otel-h1", &server.url(), "");
    let id = agent.enroll(&server.token(&[]));
    let client = agent.client(&server);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for seq in 1..=3 {
        let body = json!({ "v": 1, "agent_id": id, "boot_id": "b", "seq": seq, "sent_at": now,
            "series": [{ "name": "otel_probe", "labels": {}, "kind": "gauge",
                         "points": [[now + seq as i64, seq as f64]] }] });
        let (status, answer) =
            sysward_tests::post_ingest(&client, &server, gzip(body.to_string().as_bytes()));
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(server.latest("otel_probe"), Some(3.0));
    let failures = poll(
        Duration::from_secs(20),
        "five failed metric exports",
        || {
            scraped(
                &server,
                "sysward_server_otlp_export_failures_total{signal=\"metrics\"}",
            )
            .filter(|n| *n >= 5.0)
        },
    );
    assert_eq!(
        scraped(
            &server,
            "sysward_server_otlp_exports_total{signal=\"metrics\"}"
        ),
        Some(0.0)
    );
    let log = server.log_text();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("OTLP export failed") && l.contains("\"metrics\""))
        .collect();
    assert_eq!(lines.len(), 1, "{failures} failures, logged once: {log}");
}

#[test]
fn grpc_is_refused_with_the_variable_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    fs::write(
        &config,
        format!(
            "[listen]\naddress = \"127.0.0.1:{}\"\n[storage]\ndata_dir = {:?}\n",
            free_port(),
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin("sysward-server"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("OTEL_ENABLED", "true")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server started with OTEL_EXPORTER_OTLP_PROTOCOL=grpc");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exited.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before anything is created"
    );
}
