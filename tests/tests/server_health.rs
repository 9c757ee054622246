//! The server's own health: `GET /api/health` says what is wrong (anonymously the status
//! and reasons, with a token the details), `/metrics` carries the process, HTTP and health
//! figures, the server stores its own metrics where queries and the shipped rules read
//! them, and an agent that stops is listed as silent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, time::Duration};

use serde_json::Value;
use sysward_tests::{ADMIN_TOKEN, Agent, Server, client, poll, url_escape};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn health(server: &Server, token: Option<&str>) -> (u16, Value) {
    let mut req = client(&server.ca_pem(), None).get(format!("{}/api/health", server.url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn query(server: &Server, expr: &str) -> Vec<Value> {
    let (status, body) = server.prom_get(
        ADMIN_TOKEN,
        &format!("/api/v1/query?query={}", url_escape(expr)),
    );
    assert_eq!(status, 200, "{expr}: {body}");
    body["data"]["result"].as_array().cloned().unwrap()
}

#[test]
fn a_healthy_server_reports_itself_and_stores_its_own_metrics() {
    let root = tempfile::tempdir().unwrap();
    let rules = root.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/rules/server.yml");
    fs::copy(shipped, rules.join("server.yml")).unwrap();
    let server = Server::start_with_rules(
        root.path(),
        "",
        "evaluation_interval = \"1s\"\n",
        // No share of free space is required: the host's disk is not what this tests.
        "[health]\nprobe_interval = \"1s\"\nself_metrics_interval = \"1s\"\nmin_free_percent = 0\n",
    );
    let mut agent = Agent::configure(root.path(), "health-1", &server.url(), FAST);
    let agent_id = agent.enroll(&server.token(&[]));
    agent.start();

    let (status, anonymous) = health(&server, None);
    assert_eq!(status, 200, "{anonymous}");
    assert_eq!(anonymous["status"], "ok", "{anonymous}");
    assert_eq!(anonymous["problems"], serde_json::json!([]));
    assert!(anonymous.get("details").is_none(), "{anonymous}");

    // With a token: the probes' findings.
    let details = poll(Duration::from_secs(20), "the agent to be known", || {
        let (_, body) = health(&server, Some(ADMIN_TOKEN));
        (body["details"]["agents_known"] == 1).then_some(body["details"].clone())
    });
    assert!(
        details["disk"]["size_bytes"].as_u64().unwrap() > 0,
        "{details}"
    );
    let certs: Vec<&str> = details["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(certs, ["server", "ca", "agent-ca"]);
    let server_cert_ms = details["certificates"][0]["not_after_ms"].as_i64().unwrap();
    assert!(server_cert_ms > details["at_ms"].as_i64().unwrap() + 365 * 86_400_000);
    assert!(details["files"]["open"].as_u64().unwrap() > 0, "{details}");

    // `/metrics` has the documented names.
    let (_, text) = server.admin_get_text("/metrics");
    for name in [
        "sysward_server_health_status 0",
        "sysward_server_health_check{check=\"disk_space\"} 0",
        "sysward_server_certificate_expiry_timestamp_seconds{certificate=\"ca\"}",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "db_client_connections_usage{pool_name=\"store.db\",state=\"idle\"}",
        "http_server_duration_count{http_route=\"/api/health\",http_request_method=\"GET\"}",
        "http_server_duration{http_route=\"/api/v1/ingest\",http_request_method=\"POST\",quantile=\"0.99\"}",
        "sysward_server_ingest_slots ",
        "sysward_server_store_last_commit_timestamp_seconds ",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }

    // The same figures are queryable, as the server stored them.
    let status = poll(Duration::from_secs(20), "the server's own metrics", || {
        let r = query(
            &server,
            "sysward_server_health_status{agent_id=\"sysward-server\"}",
        );
        r.first()
            .map(|s| s["value"][1].as_str().unwrap().to_string())
    });
    assert_eq!(status, "0");
    poll(
        Duration::from_secs(20),
        "ingest durations in the store",
        || {
            let r = query(
                &server,
                "http_server_duration_count{agent_id=\"sysward-server\",http_route=\"/api/v1/ingest\"} > 0",
            );
            (!r.is_empty()).then_some(())
        },
    );
    // The shipped rules load and evaluate without error.
    let (_, rules) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules");
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "sysward-server", "{rules}");
    poll(
        Duration::from_secs(20),
        "the shipped rules to evaluate",
        || {
            let (_, rules) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules");
            let all_ok = rules["data"]["groups"][0]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["health"] == "ok");
            all_ok.then_some(())
        },
    );

    // An agent that stops is listed as silent, by id, without degrading the server.
    agent.kill();
    let silent = poll(Duration::from_secs(30), "the agent to be silent", || {
        let (_, body) = health(&server, Some(ADMIN_TOKEN));
        (body["details"]["silent_agents_total"] == 1).then_some(body)
    });
    assert_eq!(silent["details"]["silent_agents"][0]["agent_id"], agent_id);
    assert_eq!(silent["status"], "ok");
    // A read token sees the details; a wrong one only the status.
    let read = server.api_token("read", "health-reader", &[]);
    assert!(health(&server, Some(&read)).1.get("details").is_some());
    let (status, wrong) = health(&server, Some("swapi_wrong"));
    assert_eq!(status, 200);
    assert!(wrong.get("details").is_none(), "{wrong}");
}

#[test]
fn low_space_and_expiring_certificates_degrade_with_reasons() {
    let root = tempfile::tempdir().unwrap();
    // Every file system has less than 100 % free, and every certificate expires within
    // a thousand years: both checks trip on any machine.
    let server = Server::start(
        root.path(),
        "[health]\nprobe_interval = \"1s\"\nmin_free_percent = 100\ncertificate_warning = \"365000d\"\n",
    );
    // An enrolled agent, whose certificate also expires within the warning.
    let agent = Agent::configure(root.path(), "health-2", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    let body = poll(Duration::from_secs(20), "the server to be degraded", || {
        let (status, body) = health(&server, None);
        let agents = body["problems"]
            .as_array()?
            .iter()
            .any(|p| p["check"] == "agent_certificates");
        (body["status"] == "degraded" && agents).then_some((status, body))
    });
    assert_eq!(
        body.0, 200,
        "a degraded server still answers 200: {}",
        body.1
    );
    let problems = body.1["problems"].as_array().unwrap();
    let checks: Vec<&str> = problems
        .iter()
        .map(|p| p["check"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"disk_space"), "{problems:?}");
    assert_eq!(checks.iter().filter(|c| **c == "certificate").count(), 3);
    assert!(
        problems.iter().any(|p| p["reason"]
            .as_str()
            .unwrap()
            .contains("the server certificate expires in")),
        "{problems:?}"
    );
    let (_, text) = server.admin_get_text("/metrics");
    assert!(text.contains("sysward_server_health_status 1"), "{text}");
    assert!(text.contains("sysward_server_health_check{check=\"disk_space\"} 1"));
    assert!(
        text.contains("sysward_server_agent_certificates_expiring 1"),
        "{text}"
    );
}

#[test]
fn a_bad_health_section_is_refused_with_its_key() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("server.toml");
    fs::write(&config, "[health]\nmin_free_percent = 150\n").unwrap();
    let out = std::process::Command::new(sysward_tests::bin("sysward-server"))
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("min_free_percent = 150"), "{err}");
}
