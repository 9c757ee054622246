//! Alert rules on a real server fed by a real agent: states in the API, `ALERTS` in
//! queries, history and the notifier's queue, a pending timer across `kill -9`, and reload
//! by API and SIGHUP that refuses a bad file and keeps the rules running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, path::Path, time::Duration};

use nix::sys::signal::Signal;
use serde_json::Value;
use sysward_tests::{ADMIN_TOKEN, Agent, Server, poll, url_escape};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn write_rules(root: &Path, name: &str, text: &str) {
    let dir = root.join("rules");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), text).unwrap();
}

fn start(root: &Path) -> (Server, Agent) {
    let server = Server::start_with_rules(root, "", "evaluation_interval = \"1s\"\n", "");
    let mut agent = Agent::configure(root, "rules-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();
    (server, agent)
}

fn alerts(server: &Server) -> Vec<Value> {
    let (status, body) = server.prom_get(ADMIN_TOKEN, "/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    body["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn alert_in(server: &Server, name: &str, state: &str) -> Option<Value> {
    alerts(server)
        .into_iter()
        .find(|a| a["labels"]["alertname"] == name && a["state"] == state)
}

fn history(server: &Server, name: &str) -> Vec<String> {
    let (status, body) = server.prom_get(
        ADMIN_TOKEN,
        &format!("/api/v1/alerts/history?alertname={name}"),
    );
    assert_eq!(status, 200, "{body}");
    let mut moves: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}>{}",
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap()
            )
        })
        .collect();
    moves.reverse();
    moves
}

const LOAD_RULES: &str = r#"
groups:
- name: host
  rules:
  - alert: LoadSeen
    expr: node_load1 >= 0
    for: 3s
    labels:
      severity: info
    annotations:
      summary: "load on {{ $labels.instance }} is {{ $value }}"
  - record: instance:node_load1:max
    expr: max by (instance) (node_load1)
"#;

#[test]
fn alerts_move_through_their_states_on_agent_data_and_show_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), "host.yml", LOAD_RULES);
    let (server, _agent) = start(dir.path());

    let pending = poll(Duration::from_secs(30), "LoadSeen pending", || {
        alert_in(&server, "LoadSeen", "pending")
    });
    let firing = poll(Duration::from_secs(30), "LoadSeen firing", || {
        alert_in(&server, "LoadSeen", "firing")
    });
    assert_eq!(
        pending["activeAt"], firing["activeAt"],
        "one alert, one timer"
    );
    assert_eq!(firing["labels"]["severity"], "info");
    let instance = firing["labels"]["instance"].as_str().unwrap().to_string();
    assert!(!instance.is_empty(), "{firing}");
    let summary = firing["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("load on {instance} is ")),
        "{summary}"
    );
    assert!(firing["value"].as_str().unwrap().contains("e"), "{firing}");

    // The rule list, as Grafana reads it.
    let (status, body) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules");
    assert_eq!(status, 200, "{body}");
    let group = &body["data"]["groups"][0];
    assert_eq!(group["name"], "host");
    assert_eq!(group["interval"], 1.0);
    let alerting = &group["rules"][0];
    assert_eq!(
        (&alerting["type"], &alerting["health"], &alerting["state"]),
        (
            &Value::from("alerting"),
            &Value::from("ok"),
            &Value::from("firing")
        ),
        "{alerting}"
    );
    assert_eq!(alerting["duration"], 3.0);
    assert_eq!(group["rules"][1]["type"], "recording");
    let (_, only_records) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules?type=record");
    assert_eq!(
        only_records["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // ALERTS and the recording rule's series, queried like any other.
    let read = server.api_token("read", "grafana", &[]);
    let q = |expr: &str| {
        let (status, body) =
            server.prom_get(&read, &format!("/api/v1/query?query={}", url_escape(expr)));
        assert_eq!(status, 200, "{body}");
        body["data"]["result"].as_array().cloned().unwrap()
    };
    let series = poll(Duration::from_secs(10), "ALERTS firing", || {
        let r = q("ALERTS{alertname=\"LoadSeen\",alertstate=\"firing\"}");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(series[0]["metric"]["instance"], instance.as_str());
    let recorded = poll(Duration::from_secs(10), "recorded max load", || {
        let r = q("instance:node_load1:max");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(recorded[0]["metric"]["instance"], instance.as_str());

    // History and the notifier's queue.
    assert_eq!(
        history(&server, "LoadSeen"),
        ["inactive>pending", "pending>firing"]
    );
    let (status, body) = server.prom_get(ADMIN_TOKEN, "/api/v1/alerts/outbox");
    assert_eq!(status, 200, "{body}");
    let queued = body["data"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{body}");
    assert_eq!(queued[0]["to"], "firing");

    // The command line reads the same saved state.
    let listed = server.cli(&["alerts", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let line = listed
        .lines()
        .find(|l| l.starts_with("LoadSeen"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("firing") && line.contains(&format!("instance={instance:?}")),
        "{listed}"
    );

    // The server's own figures.
    let metrics = reqwest_text(&server, "/metrics");
    assert!(
        metrics.contains("sysward_alerts{state=\"firing\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sysward_rules_loaded 2"), "{metrics}");
}

fn reqwest_text(server: &Server, path: &str) -> String {
    sysward_tests::client(&server.ca_pem(), None)
        .get(format!("{}{path}", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn kill_9_while_pending_and_firing_continues_timers_and_fires_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(
        dir.path(),
        "host.yml",
        "groups:\n- name: host\n  rules:\n  - alert: LoadSeen\n    expr: node_load1 >= 0\n    for: 12s\n",
    );
    let (mut server, _agent) = start(dir.path());
    let before = poll(Duration::from_secs(30), "LoadSeen pending", || {
        alert_in(&server, "LoadSeen", "pending")
    });
    // Killed twice while pending: each time restored at once, with its timer, not as a
    // new pending alert.
    for _ in 0..2 {
        server.restart();
        let restored = poll(Duration::from_secs(10), "LoadSeen restored", || {
            alerts(&server)
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "LoadSeen")
        });
        assert_eq!(restored["activeAt"], before["activeAt"], "{restored}");
    }
    let firing = poll(Duration::from_secs(40), "LoadSeen firing", || {
        alert_in(&server, "LoadSeen", "firing")
    });
    assert_eq!(firing["activeAt"], before["activeAt"]);
    // Killed twice while firing: still firing, no second transition.
    for _ in 0..2 {
        server.restart();
        let again = poll(Duration::from_secs(10), "LoadSeen after restart", || {
            alert_in(&server, "LoadSeen", "firing")
        });
        assert_eq!(again["activeAt"], before["activeAt"]);
    }
    // Another evaluation after the last restart, and still the two transitions of a run
    // without crashes.
    let (_, body) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules");
    let evaluated = body["data"]["groups"][0]["lastEvaluation"].clone();
    poll(Duration::from_secs(10), "another evaluation", || {
        let (_, b) = server.prom_get(ADMIN_TOKEN, "/api/v1/rules");
        (b["data"]["groups"][0]["lastEvaluation"] != evaluated).then_some(())
    });
    assert_eq!(
        history(&server, "LoadSeen"),
        ["inactive>pending", "pending>firing"]
    );
}

#[test]
fn reload_refuses_a_bad_file_keeps_the_rules_and_takes_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), "host.yml", LOAD_RULES);
    let (server, _agent) = start(dir.path());
    poll(Duration::from_secs(30), "LoadSeen firing", || {
        alert_in(&server, "LoadSeen", "firing")
    });

    write_rules(
        dir.path(),
        "more.yml",
        "groups:\n- name: more\n  rules:\n  - alert: Broken\n    expr: rate(node_load1[1m]\n",
    );
    let (status, body) = server.admin_post("/-/reload");
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("more.yml:5") && error.contains("\"Broken\""),
        "{error}"
    );
    let firing = alert_in(&server, "LoadSeen", "firing").expect("still firing");
    // Reloads need the admin role.
    let read = server.api_token("read", "viewer", &[]);
    let resp = sysward_tests::client(&server.ca_pem(), None)
        .post(format!("{}/-/reload", server.url()))
        .bearer_auth(&read)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    write_rules(
        dir.path(),
        "more.yml",
        "groups:\n- name: more\n  rules:\n  - alert: AlsoSeen\n    expr: node_load1 >= 0\n",
    );
    server.signal(Signal::SIGHUP);
    poll(
        Duration::from_secs(20),
        "AlsoSeen firing after SIGHUP",
        || alert_in(&server, "AlsoSeen", "firing"),
    );
    // The unchanged rule kept its alert and timer through both reloads.
    let kept = alert_in(&server, "LoadSeen", "firing").expect("LoadSeen kept");
    assert_eq!(kept["activeAt"], firing["activeAt"]);
    assert_eq!(
        history(&server, "LoadSeen"),
        ["inactive>pending", "pending>firing"]
    );
}
