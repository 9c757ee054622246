//! `[grafana]`: the real server provisions a fake Grafana (tests/src/grafana.rs, which
//! answers as Grafana's HTTP API documents) and `GET /api/grafana/health` tells what it
//! found: each request checked field by field, the key refused, Grafana down, and
//! recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, path::Path, time::Duration};

use serde_json::Value;
use sysward_tests::{Server, client, grafana::FakeGrafana, poll, recorder::Recorded};

const KEY: &str = "glsa_test_key_0123";
const DASHBOARD_UIDS: [&str; 4] = [
    "sysward-fleet",
    "sysward-host",
    "sysward-checks",
    "sysward-server",
];

fn grafana_section(root: &Path, url: &str) -> String {
    let key = root.join("grafana.key");
    fs::write(&key, format!("{KEY}\n")).unwrap();
    format!(
        "[grafana]\nurl = \"{url}\"\napi_key_file = {:?}\ndatasource_token_file = {:?}\n\
         retry_max = \"500ms\"\ncheck_interval = \"500ms\"\n",
        key.display().to_string(),
        root.join("datasource.token").display().to_string()
    )
}

/// `GET /api/grafana/health` with a token; status and `data`.
fn health(server: &Server, token: &str) -> (u16, Value) {
    let (status, body) = server.prom_get(token, "/api/grafana/health");
    (status, body["data"].clone())
}

fn wait_health(server: &Server, token: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    poll(Duration::from_secs(30), what, || {
        let (_, data) = health(server, token);
        ok(&data).then_some(data)
    })
}

fn calls<'a>(requests: &'a [Recorded], method: &str, path: &str) -> Vec<&'a Recorded> {
    requests
        .iter()
        .filter(|r| r.method == method && r.target.split('?').next() == Some(path))
        .collect()
}

#[test]
fn the_server_provisions_grafana_and_reports_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGrafana::start("11.3.1", KEY);
    let server = Server::start(dir.path(), &grafana_section(dir.path(), &fake.url()));
    let reader = server.api_token("read", "ops", &[]);

    let (status, _) = health(&server, "");
    assert_eq!(status, 401, "the endpoint needs a token");
    // The datasource's token file does not exist yet: reported, retried, never fatal.
    let data = wait_health(&server, &reader, "the missing token file reported", |d| {
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("datasource_token_file"))
    });
    assert_eq!(data["configured"], true, "{data}");
    assert_eq!(data["synced"], false, "{data}");
    let token = server.api_token("read", "grafana", &[]);
    fs::write(dir.path().join("datasource.token"), &token).unwrap();

    let data = wait_health(&server, &reader, "Grafana provisioned", |d| {
        d["synced"] == true
    });
    assert_eq!(data["reachable"], true, "{data}");
    assert_eq!(data["key_valid"], true, "{data}");
    assert_eq!(data["version"], "11.3.1", "{data}");
    assert_eq!(data["dashboards"], 4, "{data}");
    assert_eq!(data["datasource"]["uid"], "sysward", "{data}");
    assert_eq!(data["folder"]["title"], "Sysward", "{data}");
    assert!(
        data["last_sync"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{data}"
    );
    assert!(data["error"].is_null(), "{data}");

    let requests = fake.requests();
    the_requests_are_as_grafana_documents(&requests, &server, &token);
    the_provisioned_datasource_can_query(&server, &fake);

    // A restart finds the datasource and folder and updates them in place.
    let mut server = server;
    server.restart();
    let before = requests.len();
    wait_health(&server, &reader, "Grafana provisioned again", |d| {
        d["synced"] == true
    });
    let after = fake.requests();
    let again = &after[before..];
    let puts = calls(again, "PUT", "/api/datasources/uid/sysward");
    assert_eq!(puts.len(), 1, "{again:#?}");
    let body = puts[0].json();
    assert_eq!(body["uid"], "sysward", "{body}");
    assert_eq!(body["id"], 1, "the id Grafana gave: {body}");
    assert_eq!(
        body["secureJsonData"]["httpHeaderValue1"],
        format!("Bearer {token}")
    );
    assert!(
        calls(again, "POST", "/api/datasources").is_empty(),
        "{again:#?}"
    );
    assert!(
        calls(again, "POST", "/api/folders").is_empty(),
        "{again:#?}"
    );
    assert_eq!(calls(again, "POST", "/api/dashboards/db").len(), 4);

    // A datasource deleted in Grafana is made again at the next check.
    fake.with_store(|s| s.datasources.clear());
    poll(Duration::from_secs(30), "the datasource made again", || {
        fake.with_store(|s| (s.datasources.len() == 1).then_some(()))
    });

    // A revoked key: reachable, key invalid, Grafana's answer in the error.
    fake.refuse_key(true);
    let data = wait_health(&server, &reader, "the key reported invalid", |d| {
        d["key_valid"] == false
    });
    assert_eq!(data["reachable"], true, "{data}");
    assert_eq!(data["synced"], false, "{data}");
    let error = data["error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("invalid API key"),
        "{error}"
    );
    fake.refuse_key(false);
    wait_health(&server, &reader, "the key valid again", |d| {
        d["key_valid"] == true && d["synced"] == true && d["error"].is_null()
    });

    // Grafana down: unreachable; back (empty, as a new install): provisioned again.
    let port = fake.port;
    fake.stop();
    let data = wait_health(&server, &reader, "Grafana reported unreachable", |d| {
        d["reachable"] == false
    });
    assert!(
        data["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach Grafana"),
        "{data}"
    );
    let ingest_ok = server.prom_get(&reader, "/api/v1/query?query=1");
    assert_eq!(ingest_ok.0, 200, "queries go on while Grafana is down");
    let back = FakeGrafana::start_on(port, "12.0.0", KEY);
    let data = wait_health(&server, &reader, "Grafana back and provisioned", |d| {
        d["synced"] == true && d["version"] == "12.0.0"
    });
    assert_eq!(data["reachable"], true, "{data}");
    back.with_store(|s| {
        assert_eq!(s.datasources.len(), 1);
        assert_eq!(s.dashboards.len(), 4);
    });
}

fn the_requests_are_as_grafana_documents(requests: &[Recorded], server: &Server, token: &str) {
    for r in requests {
        if r.target != "/api/health" {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {KEY}").as_str()),
                "{} {}",
                r.method,
                r.target
            );
        }
        if r.method == "POST" || r.method == "PUT" {
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{}",
                r.target
            );
            assert!(
                serde_json::from_slice::<Value>(&r.body).is_ok(),
                "{}",
                r.target
            );
        }
    }
    assert!(!calls(requests, "GET", "/api/health").is_empty());
    assert!(!calls(requests, "GET", "/api/datasources/name/Sysward").is_empty());

    let created = calls(requests, "POST", "/api/datasources");
    assert_eq!(created.len(), 1, "{requests:#?}");
    let ds = created[0].json();
    assert_eq!(ds["name"], "Sysward", "{ds}");
    assert_eq!(ds["type"], "prometheus", "{ds}");
    assert_eq!(ds["access"], "proxy", "{ds}");
    assert_eq!(ds["url"], server.url(), "{ds}");
    assert_eq!(ds["uid"], "sysward", "{ds}");
    assert_eq!(ds["basicAuth"], false, "{ds}");
    assert_eq!(ds["jsonData"]["httpHeaderName1"], "Authorization", "{ds}");
    assert_eq!(ds["jsonData"]["tlsAuthWithCACert"], true, "{ds}");
    assert_eq!(ds["jsonData"]["httpMethod"], "POST", "{ds}");
    assert_eq!(ds["jsonData"]["timeInterval"], "1m", "{ds}");
    assert_eq!(
        ds["secureJsonData"]["httpHeaderValue1"],
        format!("Bearer {token}"),
        "{ds}"
    );
    assert_eq!(ds["secureJsonData"]["tlsCACert"], server.ca_pem(), "{ds}");
    the_provisioning_file_says_the_same(&ds);

    assert_eq!(calls(requests, "GET", "/api/folders").len(), 1);
    let folders = calls(requests, "POST", "/api/folders");
    assert_eq!(folders.len(), 1);
    let folder = folders[0].json();
    assert_eq!(folder["title"], "Sysward", "{folder}");
    assert_eq!(folder["uid"], "sysward", "{folder}");

    let uploads = calls(requests, "POST", "/api/dashboards/db");
    assert_eq!(uploads.len(), 4);
    let mut uids: Vec<String> = Vec::new();
    for u in uploads {
        let body = u.json();
        assert_eq!(body["overwrite"], true, "{body}");
        assert_eq!(body["folderUid"], "sysward", "{body}");
        let d = &body["dashboard"];
        assert!(d["id"].is_null(), "a new id is Grafana's to give");
        assert!(d["title"].as_str().unwrap().starts_with("Sysward / "));
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 39,
            "{}",
            d["schemaVersion"]
        );
        assert!(d["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let var = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap();
        assert_eq!(var["current"]["value"], "sysward", "{var}");
        uids.push(d["uid"].as_str().unwrap().to_string());
    }
    uids.sort();
    let mut expected: Vec<String> = DASHBOARD_UIDS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(uids, expected);
}

/// What Grafana would send with the provisioned datasource: the header it was given, over
/// TLS checked against the CA it was given.
fn the_provisioned_datasource_can_query(server: &Server, fake: &FakeGrafana) {
    let ds = fake.with_store(|s| s.datasources[0].clone());
    let ca = ds["secureJsonData"]["tlsCACert"].as_str().unwrap();
    let header = ds["secureJsonData"]["httpHeaderValue1"].as_str().unwrap();
    let resp = client(ca, None)
        .post(format!("{}/api/v1/query", ds["url"].as_str().unwrap()))
        .header(ds["jsonData"]["httpHeaderName1"].as_str().unwrap(), header)
        .form(&[("query", "1+1")])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["data"]["result"][1], "2", "{body}");
    let _ = server;
}

#[test]
fn without_grafana_the_health_says_so_and_a_reload_starts_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let reader = server.api_token("read", "ops", &[]);
    let (status, data) = health(&server, &reader);
    assert_eq!(status, 200);
    assert_eq!(data, serde_json::json!({ "configured": false }));

    // An old Grafana is refused by version, and said so.
    let fake = FakeGrafana::start("8.5.27", KEY);
    fs::write(dir.path().join("datasource.token"), &reader).unwrap();
    let mut text = fs::read_to_string(&server.config).unwrap();
    text.push_str(&grafana_section(dir.path(), &fake.url()));
    fs::write(&server.config, text).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let data = wait_health(&server, &reader, "the old version refused", |d| {
        d["error"].as_str().is_some_and(|e| e.contains("8.5.27"))
    });
    assert_eq!(data["version"], Value::Null, "{data}");
    assert_eq!(data["reachable"], true, "{data}");
    assert!(calls(&fake.requests(), "POST", "/api/datasources").is_empty());
}

#[test]
fn a_grafana_over_https_is_trusted_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGrafana::start_tls("11.3.1", KEY);
    let section = grafana_section(dir.path(), &fake.url());
    let server = Server::start(dir.path(), &section);
    let reader = server.api_token("read", "ops", &[]);
    fs::write(dir.path().join("datasource.token"), &reader).unwrap();
    // The system's roots do not know the fake's certificate.
    let data = wait_health(&server, &reader, "the unknown certificate refused", |d| {
        d["reachable"] == false
    });
    let error = data["error"].as_str().unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert!(
        fake.requests().is_empty(),
        "nothing sent over an untrusted connection"
    );

    let ca = dir.path().join("grafana-ca.pem");
    fs::write(&ca, fake.ca_pem.as_deref().unwrap()).unwrap();
    let text = fs::read_to_string(&server.config).unwrap().replace(
        "[grafana]\n",
        &format!("[grafana]\nca_file = {:?}\n", ca.display().to_string()),
    );
    fs::write(&server.config, text).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    wait_health(&server, &reader, "Grafana provisioned over HTTPS", |d| {
        d["synced"] == true
    });
    fake.with_store(|s| assert_eq!(s.dashboards.len(), 4));
}

/// `packaging/grafana/provisioning/datasources/sysward.yaml`, for Grafanas provisioned by
/// hand, sets what the sync sets: each `key: value` of it as the sync's JSON has it.
fn the_provisioning_file_says_the_same(synced: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/grafana/provisioning/datasources/sysward.yaml");
    let text = fs::read_to_string(path).unwrap();
    let value_of = |key: &str| {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .find_map(|l| {
                let l = l.trim_start().trim_start_matches("- ");
                l.strip_prefix(&format!("{key}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("sysward.yaml has no {key}"))
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for key in ["name", "uid", "type", "access"] {
        assert_eq!(value_of(key), as_text(&synced[key]), "{key}");
    }
    for (key, value) in synced["jsonData"].as_object().unwrap() {
        assert_eq!(value_of(key), as_text(value), "jsonData.{key}");
    }
    assert_eq!(value_of("httpHeaderValue1"), "Bearer $SYSWARD_READ_TOKEN");
    assert!(value_of("tlsCACert").starts_with("$__file{"));
    let provider = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/grafana/provisioning/dashboards/sysward.yaml"),
    )
    .unwrap();
    assert!(
        provider.contains("path: /usr/share/sysward/grafana/dashboards"),
        "where the package installs them"
    );
}
