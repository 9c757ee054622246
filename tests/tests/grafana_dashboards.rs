//! The shipped Grafana dashboards (`packaging/grafana/dashboards/`) against a real server
//! fed by a real agent: every panel query of the host dashboards, with its template
//! variables replaced as Grafana replaces them, parses and returns data (the few panels
//! that are rightly empty on a healthy test host are listed below with the reason, and
//! still must parse). The server's own dashboard reads the metrics the server writes into
//! its own store (or a Prometheus scraping its `/metrics`): each of its queries must name
//! only metrics that `/metrics` exposes, and return data from the server's own series.
//! Grafana itself cannot be installed here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fs,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use sysward_tests::{Agent, Server, free_port, poll, url_escape};

const HOST: &str = "dash-1";

/// The agent's every tier at 1 s, so that a few seconds give every panel points.
const SCRAPE_SECONDS: u64 = 1;

/// The range the panels are asked for, as Grafana's time picker would give it.
const RANGE_SECONDS: u64 = 60;

/// Grafana's `maxDataPoints` for a panel about as wide as the screen.
const MAX_DATA_POINTS: u64 = 1000;

/// Panels that a healthy host can rightly leave empty: (dashboard file, panel title, why).
const MAY_BE_EMPTY: [(&str, &str, &str); 11] = [
    (
        "host-detail.json",
        "Pressure (PSI)",
        "kernels without PSI (before 4.20, or booted with psi=0) have no pressure files",
    ),
    (
        "host-detail.json",
        "Filesystems that are read-only or failing",
        "lists only read-only or failing filesystems",
    ),
    (
        "host-detail.json",
        "Days until full",
        "lists only filesystems that are filling",
    ),
    (
        "host-detail.json",
        "SMART health",
        "no disks SMART can read (VMs, containers) or no sysward-smart helper",
    ),
    (
        "host-detail.json",
        "Drive temperature",
        "no disks SMART can read (VMs, containers) or no sysward-smart helper",
    ),
    (
        "host-detail.json",
        "Wear, media errors and reallocated sectors",
        "no disks SMART can read; each attribute exists for one kind of drive only",
    ),
    (
        "host-detail.json",
        "Failed units",
        "hosts without systemd (containers) have no unit metrics",
    ),
    (
        "host-detail.json",
        "Units not active",
        "hosts without systemd; and lists only units failing or changing state",
    ),
    (
        "host-detail.json",
        "Units by state",
        "hosts without systemd (containers) have no unit metrics",
    ),
    (
        "host-detail.json",
        "Service restarts",
        "hosts without systemd (containers) have no unit metrics",
    ),
    (
        "checks.json",
        "State changes in the time range",
        "lists only checks whose state changed in the range",
    ),
];

/// Panels whose metric exists only for some checks.
const MAY_BE_EMPTY_CHECKS: [(&str, &str, &str); 1] = [(
    "checks.json",
    "Script check performance data",
    "only script checks that print Nagios performance data have it",
)];

/// One query of one panel.
#[derive(Debug, Clone)]
struct PanelQuery {
    panel: String,
    ref_id: String,
    expr: String,
    instant: bool,
}

fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/dashboards")
}

fn dashboard(file: &str) -> Value {
    let text = fs::read_to_string(dashboards_dir().join(file)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every panel's `targets[].expr`, rows' nested panels included.
fn queries_of(d: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &[Value], out: &mut Vec<PanelQuery>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    panel: p["title"].as_str().unwrap_or_default().to_string(),
                    ref_id: t["refId"].as_str().unwrap_or_default().to_string(),
                    expr: t["expr"].as_str().unwrap_or_default().to_string(),
                    instant: t["instant"] == true && t["range"] != true,
                });
            }
            if let Some(nested) = p["panels"].as_array() {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(d["panels"].as_array().unwrap(), &mut out);
    out
}

/// The value Grafana gives each template variable of `d`: a variable with "All" selected
/// (the shipped default of multi-value ones) gets its `allValue`, the others the test
/// host; then Grafana's built-in interval and range variables, computed as Grafana does
/// for a datasource whose scrape interval is the agents' ([`SCRAPE_SECONDS`]):
/// `$__interval` is at least the scrape interval and `$__rate_interval` is
/// `max($__interval + scrape interval, 4 × scrape interval)`.
fn variables(d: &Value) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_string();
        let value = match (v["type"].as_str(), v["allValue"].as_str()) {
            (Some("datasource"), _) => continue,
            (_, Some(all)) if v["includeAll"] == true => all.to_string(),
            _ => HOST.to_string(),
        };
        vars.push((name, value));
    }
    let interval = grafana_interval(RANGE_SECONDS);
    let rate_interval = (interval + SCRAPE_SECONDS).max(4 * SCRAPE_SECONDS);
    vars.extend([
        ("__rate_interval".to_string(), format!("{rate_interval}s")),
        ("__interval_ms".to_string(), (interval * 1000).to_string()),
        ("__interval".to_string(), format!("{interval}s")),
        ("__range_ms".to_string(), (RANGE_SECONDS * 1000).to_string()),
        ("__range_s".to_string(), RANGE_SECONDS.to_string()),
        ("__range".to_string(), format!("{RANGE_SECONDS}s")),
    ]);
    vars
}

/// Grafana's `$__interval` for a range: the range over the panel's points, at least the
/// datasource's scrape interval.
fn grafana_interval(range_seconds: u64) -> u64 {
    (range_seconds / MAX_DATA_POINTS).max(SCRAPE_SECONDS)
}

/// `expr` with `$name`, `${name}` and `[[name]]` replaced; longer names first, so that
/// `$__range_s` is not read as `$__range` followed by `_s`.
fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut sorted = vars.to_vec();
    sorted.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for (name, value) in &sorted {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `expr` as the panel's target would (range or instant); status and body.
fn run(server: &Server, token: &str, expr: &str, instant: bool) -> (u16, Value) {
    let end = now_s();
    let end_s = format!("{end:.3}");
    if instant {
        return server.prom_post(token, "/api/v1/query", &[("query", expr), ("time", &end_s)]);
    }
    let start_s = format!("{:.3}", end - RANGE_SECONDS as f64);
    let step = SCRAPE_SECONDS.to_string();
    server.prom_post(
        token,
        "/api/v1/query_range",
        &[
            ("query", expr),
            ("start", &start_s),
            ("end", &end_s),
            ("step", &step),
        ],
    )
}

fn has_data(body: &Value) -> bool {
    match &body["data"]["result"] {
        Value::Array(series) => !series.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

const RULES: &str = r#"
groups:
- name: dashboards
  interval: 1s
  rules:
  - alert: DashboardTestAlwaysFiring
    expr: up == 1
    labels:
      severity: info
"#;

fn start() -> (tempfile::TempDir, Server, Agent) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rules")).unwrap();
    fs::write(dir.path().join("rules/dashboards.yml"), RULES).unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    let closed = free_port();
    let agent_config = format!(
        "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\nintensive = \"1s\"\nstatic = \"1s\"\n\
         [shipper]\nbackoff_max = \"1s\"\n\
         [[checks.tcp]]\nname = \"server-port\"\naddress = \"127.0.0.1:{}\"\n\
         [[checks.tcp]]\nname = \"closed-port\"\naddress = \"127.0.0.1:{closed}\"\n",
        server.port
    );
    let mut agent = Agent::configure(dir.path(), HOST, &server.url(), &agent_config);
    agent.enroll(&server.token(&[]));
    agent.start();
    (dir, server, agent)
}

/// Waits until the slowest inputs of the panels have a few points: CPU counters for
/// rates, `up` and `ALERTS` from the rule engine, both checks.
fn wait_for_data(server: &Server, token: &str) {
    for (expr, what) in [
        (
            "count_over_time(node_cpu_seconds_total{mode=\"idle\",cpu=\"0\"}[1m]) >= 6",
            "six CPU points",
        ),
        (
            "count_over_time(node_filesystem_avail_bytes[1m]) >= 6",
            "six filesystem points",
        ),
        ("count_over_time(up[1m]) >= 3", "three up points"),
        ("ALERTS{alertstate=\"firing\"}", "the test alert firing"),
        ("count(sysward_check_status) == 2", "both checks"),
    ] {
        poll(Duration::from_secs(60), what, || {
            let (status, body) = run(server, token, expr, true);
            (status == 200 && has_data(&body)).then_some(())
        });
    }
}

#[test]
fn every_panel_of_the_host_dashboards_returns_data() {
    let (_dir, server, agent) = start();
    let token = server.api_token("read", "grafana", &[]);
    wait_for_data(&server, &token);

    let mut ran = 0;
    let mut failures = Vec::new();
    let mut empty_allowed_seen = BTreeSet::new();
    for file in ["fleet-overview.json", "host-detail.json", "checks.json"] {
        let d = dashboard(file);
        let vars = variables(&d);
        variable_queries_answer(&server, &token, &d, &vars);
        for q in queries_of(&d) {
            let expr = substitute(&q.expr, &vars);
            assert!(
                !expr.contains('$') && !expr.contains("[["),
                "{file} / {} / {}: a variable is left: {expr}",
                q.panel,
                q.ref_id
            );
            let (status, body) = run(&server, &token, &expr, q.instant);
            ran += 1;
            if status != 200 || body["status"] != "success" {
                failures.push(format!(
                    "{file} / {} / {}: {expr}: HTTP {status} {body}",
                    q.panel, q.ref_id
                ));
                continue;
            }
            let allowed = MAY_BE_EMPTY
                .iter()
                .chain(MAY_BE_EMPTY_CHECKS.iter())
                .any(|(f, p, _)| *f == file && *p == q.panel);
            if allowed {
                empty_allowed_seen.insert((file, q.panel.clone()));
            } else if !has_data(&body) {
                failures.push(format!(
                    "{file} / {} / {}: no data: {expr}",
                    q.panel, q.ref_id
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} queries failed:\n{}\nagent log:\n{}",
        failures.len(),
        failures.join("\n"),
        agent.log_text()
    );
    assert!(ran >= 80, "only {ran} queries found");
    // Every exception names a panel that exists, so a renamed panel cannot hide.
    for (file, panel, _) in MAY_BE_EMPTY.iter().chain(MAY_BE_EMPTY_CHECKS.iter()) {
        assert!(
            empty_allowed_seen.contains(&(*file, panel.to_string())),
            "{file} has no panel {panel:?}"
        );
    }
}

/// The dashboard's query variables as Grafana's Prometheus datasource asks for them:
/// `label_values(METRIC{...}, LABEL)` is `/api/v1/label/LABEL/values?match[]=...`.
fn variable_queries_answer(server: &Server, token: &str, d: &Value, vars: &[(String, String)]) {
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let definition = substitute(v["definition"].as_str().unwrap(), vars);
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not label_values: {definition}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let path = format!(
            "/api/v1/label/{}/values?match[]={}",
            label.trim(),
            url_escape(selector.trim())
        );
        let (status, body) = server.prom_get(token, &path);
        assert_eq!(status, 200, "{definition}: {body}");
        let values = body["data"].as_array().unwrap();
        assert!(!values.is_empty(), "{definition}: no values");
        if label.trim() == "instance" {
            assert!(values.iter().any(|x| x == HOST), "{definition}: {body}");
        }
    }
}

/// Metric names the server's `/metrics` exposes, summaries' `_sum` and `_count` included.
fn exposed_names(server: &Server) -> BTreeSet<String> {
    let (status, text) = server.admin_get_text("/metrics");
    assert_eq!(status, 200);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or_default());
            names.insert(name.to_string());
            if kind == "summary" || kind == "histogram" {
                names.insert(format!("{name}_sum"));
                names.insert(format!("{name}_count"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// Metric names an expression selects, from the server's own parser
/// (`/api/v1/parse_query`, Prometheus' AST as JSON).
fn selected_names(server: &Server, token: &str, expr: &str) -> Vec<String> {
    fn walk(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                // Vector and matrix selectors: a name beside their matchers.
                if map.get("matchers").is_some_and(Value::is_array)
                    && let Some(name) = map.get("name").and_then(Value::as_str)
                {
                    out.push(name.to_string());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let (status, body) = server.prom_post(token, "/api/v1/parse_query", &[("query", expr)]);
    assert_eq!(status, 200, "{expr}: {body}");
    let mut out = Vec::new();
    walk(&body["data"], &mut out);
    out
}

#[test]
fn the_server_dashboard_uses_only_metrics_the_server_exposes_and_shows_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "[health]\nself_metrics_interval = \"1s\"\n");
    let token = server.api_token("read", "grafana", &[]);
    let exposed = exposed_names(&server);
    assert!(exposed.contains("sysward_server_build_info"), "{exposed:?}");
    let d = dashboard("sysward-server.json");
    let vars = variables(&d);
    let queries = queries_of(&d);
    assert!(queries.len() >= 20, "{}", queries.len());
    let mut missing = Vec::new();
    for q in queries {
        let expr = substitute(&q.expr, &vars);
        let names = selected_names(&server, &token, &expr);
        assert!(
            !names.is_empty(),
            "{} / {}: selects nothing: {expr}",
            q.panel,
            q.ref_id
        );
        for name in names {
            if !exposed.contains(&name) {
                missing.push(format!("{} / {}: {name}", q.panel, q.ref_id));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not on /metrics:\n{}",
        missing.join("\n")
    );

    // On the server's own series: wait for a few points (rates need two), then every
    // panel but those listed shows data, `$instance` being the server's host name.
    let instance = poll(Duration::from_secs(30), "the server's own series", || {
        let (_, body) = server.prom_get(
            &token,
            "/api/v1/query?query=count_over_time(sysward_server_build_info%5B1m%5D)%20%3E%3D%205",
        );
        body["data"]["result"][0]["metric"]["instance"]
            .as_str()
            .map(str::to_string)
    });
    let vars: Vec<(String, String)> = variables(&d)
        .into_iter()
        .map(|(k, v)| {
            if k == "instance" {
                (k, instance.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut empty = Vec::new();
    for q in queries_of(&d) {
        let expr = substitute(&q.expr, &vars);
        let (status, body) = run(&server, &token, &expr, q.instant);
        assert_eq!(status, 200, "{expr}: {body}");
        if !has_data(&body) && !SERVER_MAY_BE_EMPTY.contains(&q.panel.as_str()) {
            empty.push(format!("{} / {}: {expr}", q.panel, q.ref_id));
        }
    }
    assert!(empty.is_empty(), "no data:\n{}", empty.join("\n"));
}

/// Server panels that are rightly empty on an idle test server: their queries filter on
/// `> 0` or count what an idle server never does (notifications by receiver: it has none).
const SERVER_MAY_BE_EMPTY: [&str; 2] = ["Queries by endpoint and outcome", "Notifications"];

#[test]
fn substitution_is_grafana_s() {
    let vars = vec![
        ("instance".to_string(), "web-1".to_string()),
        ("__range".to_string(), "60s".to_string()),
        ("__range_s".to_string(), "60".to_string()),
    ];
    assert_eq!(
        substitute(
            "a{instance=\"$instance\"}[$__range] / $__range_s + ${instance}[[instance]]",
            &vars
        ),
        "a{instance=\"web-1\"}[60s] / 60 + web-1web-1"
    );
}
