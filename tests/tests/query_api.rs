//! The Prometheus query API over real TLS: access by API token (bearer and basic auth, as
//! Grafana sends them), Grafana's datasource checks, the label and series endpoints, instant
//! and range queries over what an agent pushed, Prometheus' errors for bad input, and the
//! metrics that count them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;
use sysward_tests::{ADMIN_TOKEN, Agent, Server, client, poll, url_escape};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n";

/// `/api/v1/query?query=EXPR&extra`, GET with a bearer token.
fn query(server: &Server, token: &str, expr: &str, extra: &str) -> (u16, Value) {
    server.prom_get(
        token,
        &format!("/api/v1/query?query={}{extra}", url_escape(expr)),
    )
}

fn error_of(body: &Value) -> (&str, &str) {
    assert_eq!(body["status"], "error", "{body}");
    (
        body["errorType"].as_str().unwrap_or(""),
        body["error"].as_str().unwrap_or(""),
    )
}

#[test]
fn tokens_decide_who_may_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");

    let (status, body) = query(&server, "", "1+1", "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body).0, "unauthorized");
    let (status, body) = query(&server, "swapi_made_up", "1+1", "");
    assert_eq!(status, 401, "{body}");

    let read = server.api_token("read", "grafana", &[]);
    assert!(read.starts_with("swapi_"), "{read}");
    // Grafana's "Save & test": an instant `1+1` as a form POST.
    let (status, body) = server.prom_post(&read, "/api/v1/query", &[("query", "1+1")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "scalar", "{body}");
    assert_eq!(body["data"]["result"][1], "2", "{body}");
    assert!(body["data"]["result"][0].is_number(), "{body}");

    // Basic auth with the token as password, any user name.
    let resp = client(&server.ca_pem(), None)
        .get(format!("{}/api/v1/query?query=2*3", server.url()))
        .basic_auth("grafana", Some(&read))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["data"]["result"][1], "6", "{body}");
    let resp = client(&server.ca_pem(), None)
        .get(format!("{}/api/v1/query?query=1", server.url()))
        .basic_auth("grafana", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // The other endpoints Grafana and Prometheus' UI call.
    let (status, body) = server.prom_post(
        &read,
        "/api/v1/format_query",
        &[("query", "sum(rate(x[5m]))by(job)")],
    );
    assert_eq!(status, 200, "{body}");
    let pretty = body["data"].as_str().unwrap();
    assert!(
        pretty.contains("sum by (job)") && pretty.contains("rate(x[5m])"),
        "{body}"
    );
    let (_, body) = server.prom_get(&read, "/api/v1/parse_query?query=sum(up)");
    assert_eq!(body["data"]["type"], "aggregation", "{body}");
    assert_eq!(body["data"]["op"], "sum", "{body}");
    assert_eq!(body["data"]["expr"]["type"], "vectorSelector", "{body}");
    assert_eq!(body["data"]["expr"]["name"], "up", "{body}");
    let (_, body) = server.prom_get(&read, "/api/v1/status/buildinfo");
    assert!(
        !body["data"]["version"].as_str().unwrap().is_empty(),
        "{body}"
    );
    let (status, body) = server.prom_get(&read, "/api/v1/query_exemplars?query=up&start=1&end=2");
    assert_eq!(
        (status, &body["data"]),
        (200, &serde_json::json!([])),
        "{body}"
    );
    let (status, body) = server.prom_get(&read, "/api/v1/format_query?query=sum(");
    assert_eq!(status, 400, "{body}");

    // Roles: read may not use admin endpoints; write may not read; admin may do both.
    let (status, _) = server.prom_get(&read, "/api/v1/agents");
    assert_eq!(status, 403);
    let write = server.api_token("write", "remote-writer", &[]);
    let (status, body) = query(&server, &write, "1", "");
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_of(&body).0, "forbidden");
    let admin = server.api_token("admin", "ops", &[]);
    assert_eq!(query(&server, &admin, "1", "").0, 200);
    assert_eq!(server.prom_get(&admin, "/api/v1/agents").0, 200);
    assert_eq!(query(&server, ADMIN_TOKEN, "1", "").0, 200);

    // The list names the tokens and their roles, never a secret.
    let out = server.cli(&["api-token", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    for (name, role) in [
        ("grafana", "read"),
        ("remote-writer", "write"),
        ("ops", "admin"),
    ] {
        let row = listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(row.contains(role), "{row}");
    }
    let grafana_row = listing.lines().find(|l| l.starts_with("grafana")).unwrap();
    assert!(
        !grafana_row.ends_with("never"),
        "used, so not 'never': {grafana_row}"
    );
    assert!(!listing.contains(&read[6..]), "{listing}");
    let again = server.cli(&["api-token", "create", "--role", "read", "--name", "grafana"]);
    assert!(!again.status.success(), "a name is taken once");

    // Revoked and expired tokens are refused from the next request on.
    let out = server.cli(&["api-token", "revoke", "grafana"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(query(&server, &read, "1", "").0, 401);
    let brief = server.api_token("read", "brief", &["--ttl", "1s"]);
    poll(Duration::from_secs(10), "the 1 s token to expire", || {
        (query(&server, &brief, "1", "").0 == 401).then_some(())
    });
}

/// Raw points of the one `node_load1` series: (ms, value).
fn raw_points(server: &Server) -> Vec<(i64, f64)> {
    let series = server.read("node_load1");
    assert_eq!(series.len(), 1, "{series:?}");
    series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// What Prometheus' API writes for a float: the shortest form that reads back the same.
fn as_api(v: f64) -> String {
    v.to_string()
}

#[test]
fn queries_answer_over_what_an_agent_pushed() {
    let dir = tempfile::tempdir().unwrap();
    // Low limits to meet: 20 series per selector is above any one node_ metric of the
    // agent (CPU time has 8 modes per CPU) and below all of them together.
    let server = Server::start(
        dir.path(),
        "[query]\nmax_points_per_series = 1000\nmax_series_per_selector = 20\n",
    );
    let mut agent = Agent::configure(dir.path(), "qa-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();
    let token = server.api_token("read", "dash", &[]);
    let points = poll(Duration::from_secs(60), "six node_load1 points", || {
        let p = raw_points_if_any(&server);
        (p.len() >= 6).then_some(p)
    });

    // Grafana's variable queries: label values, with and without match[].
    let (status, body) = server.prom_get(&token, "/api/v1/label/__name__/values");
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in [
        "node_load1",
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let (_, body) = server.prom_get(&token, "/api/v1/label/instance/values?match[]=node_load1");
    assert_eq!(body["data"], serde_json::json!(["qa-1"]), "{body}");
    let (_, body) = server.prom_get(&token, "/api/v1/labels?match[]=node_load1");
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "agent_id", "instance"]),
        "{body}"
    );
    let (_, body) = server.prom_post(&token, "/api/v1/series", &[("match[]", "node_load1")]);
    assert_eq!(body["data"][0]["instance"], "qa-1", "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = server.prom_get(&token, "/api/v1/series?match=node_load1");
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "the older spelling: {body}"
    );
    let (_, body) = server.prom_get(&token, "/api/v1/metadata?metric=node_cpu_seconds_total");
    assert_eq!(
        body["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{body}"
    );

    // An instant query at a sample's time answers that sample.
    let &(t, v) = points.last().unwrap();
    let (status, body) = query(
        &server,
        &token,
        "node_load1",
        &format!("&time={}", seconds(t)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = &body["data"]["result"][0];
    assert_eq!(result["metric"]["instance"], "qa-1", "{body}");
    assert_eq!(result["value"][1], as_api(v), "{body}");
    assert_eq!(result["value"][0].as_f64().unwrap(), t as f64 / 1000.0);

    // A range query: each step answers the newest sample at or before it.
    let start = points[0].0;
    let (status, body) = server.prom_get(
        &token,
        &format!(
            "/api/v1/query_range?query=node_load1&start={}&end={}&step=0.5",
            seconds(start),
            seconds(t)
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len() as i64, (t - start) / 500 + 1, "{body}");
    for pair in values {
        let at = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
        let expected = points.iter().rev().find(|p| p.0 <= at).unwrap().1;
        assert_eq!(pair[1], as_api(expected), "at {at}: {body}");
    }

    // RFC 3339 times and a duration step; stats on request.
    let (status, body) = server.prom_post(
        &token,
        "/api/v1/query_range",
        &[
            ("query", "sum by (instance) (node_load1)"),
            ("start", "2026-01-01T00:00:00Z"),
            ("end", "2026-01-01T01:00:00Z"),
            ("step", "1m"),
            ("stats", "all"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["stats"]["timings"]["execTotalTime"].is_number(),
        "{body}"
    );
    let (_, body) = query(
        &server,
        &token,
        "node_load1",
        &format!("&time={}&stats=all", seconds(t)),
    );
    let samples = &body["data"]["stats"]["samples"];
    assert!(
        samples["totalQueryableSamples"].as_u64().unwrap() >= 1,
        "{body}"
    );

    bad_inputs_are_refused_as_prometheus_refuses_them(&server, &token);
    the_metrics_count_queries_and_refusals(&server);
}

fn raw_points_if_any(server: &Server) -> Vec<(i64, f64)> {
    if server.read("node_load1").is_empty() {
        return Vec::new();
    }
    raw_points(server)
}

fn bad_inputs_are_refused_as_prometheus_refuses_them(server: &Server, token: &str) {
    let range = |params: &str| server.prom_get(token, &format!("/api/v1/query_range?{params}"));
    let cases: Vec<(&str, (u16, Value), &str)> = vec![
        (
            "unparsable",
            query(server, token, "sum(", ""),
            "unclosed left parenthesis",
        ),
        (
            "unknown function",
            query(server, token, "nope(up)", ""),
            "nope",
        ),
        (
            "start after end",
            range("query=up&start=200&end=100&step=1"),
            "end timestamp must not be before start time",
        ),
        (
            "zero step",
            range("query=up&start=100&end=200&step=0"),
            "zero or negative query resolution step",
        ),
        (
            "negative step",
            range("query=up&start=100&end=200&step=-5"),
            "zero or negative query resolution step",
        ),
        (
            "too many points",
            range("query=up&start=0&end=100000&step=1"),
            "exceeded maximum resolution of 1000 points",
        ),
        (
            "absurd time",
            query(server, token, "1", "&time=1e20"),
            "invalid parameter \"time\"",
        ),
        (
            "unreadable start",
            range("query=up&start=yesterday&end=100&step=1"),
            "invalid parameter \"start\"",
        ),
        (
            "unknown tier",
            query(server, token, "1", "&tier=2h"),
            "invalid parameter \"tier\"",
        ),
        (
            "no query",
            server.prom_get(token, "/api/v1/query"),
            "invalid parameter \"query\"",
        ),
        (
            "series without match[]",
            server.prom_get(token, "/api/v1/series"),
            "no match[]",
        ),
    ];
    for (what, (status, body), needle) in cases {
        assert_eq!(status, 400, "{what}: {body}");
        let (kind, message) = error_of(&body);
        assert_eq!(kind, "bad_data", "{what}: {body}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }
    // A limit of [query] is an execution error that names it.
    let (status, body) = query(server, token, "count({__name__=~\"node_.+\"})", "");
    assert_eq!(status, 422, "{body}");
    let (kind, message) = error_of(&body);
    assert_eq!(kind, "execution", "{body}");
    assert!(message.contains("max_series_per_selector"), "{message}");
    // The server keeps serving.
    assert_eq!(query(server, token, "1", "").0, 200);
}

/// `name{labels}` → value from /metrics.
fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let (text, status) = {
        let resp = client(&server.ca_pem(), None)
            .get(format!("{}/metrics", server.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (resp.text().unwrap(), status)
    };
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn the_metrics_count_queries_and_refusals(server: &Server) {
    let m = scrape(server);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing: {m:?}"))
    };
    assert!(get("sysward_server_queries_total{endpoint=\"query\",outcome=\"success\"}") >= 2.0);
    assert!(get("sysward_server_queries_total{endpoint=\"query\",outcome=\"bad_data\"}") >= 4.0);
    assert!(
        get("sysward_server_queries_total{endpoint=\"query_range\",outcome=\"bad_data\"}") >= 5.0
    );
    assert!(get("sysward_server_query_refusals_total{limit=\"max_points_per_series\"}") >= 1.0);
    assert!(get("sysward_server_query_refusals_total{limit=\"max_series_per_selector\"}") >= 1.0);
    assert!(get("sysward_server_queries_total{endpoint=\"query\",outcome=\"execution\"}") >= 1.0);
    assert!(get("sysward_server_query_duration_seconds_count{endpoint=\"query_range\"}") >= 7.0);
    assert!(get("sysward_server_query_duration_seconds_sum{endpoint=\"query\"}") > 0.0);
}
