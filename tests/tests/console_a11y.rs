//! The console's accessibility basics in a real headless Chromium: axe-core's WCAG 2.1 A
//! and AA rules (labels, names, contrast, landmarks, table headers, ...) on the sign-in
//! form and on every page an admin reaches (a dashboard with a widget of every kind among
//! them), with a real agent's host and a firing alert so
//! that the pages have rows, and the keyboard: Tab from the top of the page reaches the
//! sign-out button, every page link and the Fleet page's search box, each with a visible
//! focus outline. axe-core comes from the npm registry (`scripts/test` installs it into
//! `tests/a11y/node_modules`); it is injected through the DevTools protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server,
    browser::{self, Browser},
    can_run, poll, url_escape,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);
const DATA_WAIT: Duration = Duration::from_secs(60);
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
const HOST: &str = "a11y-web-1";
const RULES: &str = r#"
groups:
- name: a11y
  rules:
  - alert: A11yLoadSeen
    expr: node_load1 >= 0
    labels:
      severity: warning
    annotations:
      summary: "load seen on {{ $labels.instance }}"
"#;

/// Every page of the console by its hash, and the element that says it is shown.
fn pages(agent_id: &str) -> Vec<(String, String)> {
    let mut all = vec![("#/fleet".to_string(), "#home:not([hidden])".to_string())];
    for name in [
        "alerts",
        "silences",
        "rules",
        "dashboards",
        "availability",
        "agents",
    ] {
        all.push((format!("#/{name}"), format!(".page-{name}")));
    }
    all.push((format!("#/host/{agent_id}"), ".page-host".to_string()));
    all
}

/// One widget of each kind over the agent's data.
fn dashboard() -> Value {
    let widget = |id: &str, kind: &str, x: u32, y: u32, query: &str| {
        json!({ "id": id, "type": kind, "title": id, "x": x, "y": y, "w": 6, "h": 4,
                "query": query, "options": { "unit": "" } })
    };
    json!({
        "title": "Every widget",
        "pages": [{ "title": "Main", "widgets": [
            widget("graph", "timeseries", 0, 0, "node_load1"),
            widget("gauge", "gauge", 6, 0, "node_load1"),
            widget("status", "status", 0, 4, "up"),
            widget("top", "toplist", 6, 4, "node_load1"),
            widget("heat", "heatmap", 0, 8, "node_load1"),
            widget("alerts", "alerts", 6, 8, ""),
        ]}],
    })
}

fn wait_for_data(server: &Server) {
    poll(DATA_WAIT, "the host's up and the alert firing", || {
        let path = format!("/api/v1/query?query={}", url_escape("up == 1"));
        let up = server.prom_get(ADMIN_TOKEN, &path).1["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        let alerts = server.prom_get(ADMIN_TOKEN, "/api/v1/alerts").1;
        let firing = alerts["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["state"] == "firing"));
        (up && firing).then_some(())
    });
}

/// Opens `hash` and waits until its page is shown and its requests are answered.
fn open(b: &mut Browser, hash: &str, shown: &str) {
    b.eval(&format!("location.hash = {}", json!(hash))).unwrap();
    b.wait_until(
        &format!(
            "document.querySelector({}) !== null \
             && document.documentElement.dataset.requests === '0'",
            json!(shown)
        ),
        WAIT,
        &format!("the page {hash}"),
    )
    .unwrap();
}

/// What has the focus, as `tag#id` or `tag:text`.
const FOCUSED: &str = "(() => { const e = document.activeElement; \
    const outline = getComputedStyle(e).outlineStyle; \
    return [e.tagName.toLowerCase() + (e.id ? '#' + e.id : ':' + e.textContent.trim()), outline]; })()";

#[test]
fn every_page_passes_axe_and_the_keyboard_reaches_the_controls() {
    if !can_run(browser::missing()) || !can_run(browser::axe_missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/a11y.yml"), RULES).unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    server.add_console_user("ada", "admin", PASSWORD);
    let mut agent = Agent::configure(dir.path(), HOST, &server.url(), FAST);
    let agent_id = agent.enroll(&server.token(&[]));
    agent.start();
    wait_for_data(&server);
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);

    b.navigate(&format!("{}/ui/", server.url())).unwrap();
    b.wait_until(
        "!document.getElementById('sign-in').hidden",
        WAIT,
        "the sign-in form",
    )
    .unwrap();
    // The check itself: an input without a label is found.
    b.eval("document.body.append(Object.assign(document.createElement('input'), { id: 'bare' }))")
        .unwrap();
    let found = browser::accessibility_violations(&mut b);
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("label ") && v.contains("#bare")),
        "{found:?}"
    );
    b.eval("document.getElementById('bare').remove()").unwrap();
    browser::assert_accessible(&mut b, "the sign-in form");
    b.type_into("#user", "ada").unwrap();
    b.type_into("#password", PASSWORD).unwrap();
    b.click("#sign-in button[type=submit]").unwrap();
    b.wait_until(
        "document.querySelectorAll('#fleet-rows tr').length > 0 \
         && document.documentElement.dataset.requests === '0'",
        WAIT,
        "the fleet with the host",
    )
    .unwrap();

    // A dashboard with a widget of every kind, made through the API.
    let made = sysward_tests::client(&server.ca_pem(), None)
        .post(format!("{}/api/v1/dashboards", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&dashboard())
        .send()
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let made: Value = made.json().unwrap();
    let id = made["id"].as_str().unwrap();
    let mut all = pages(&agent_id);
    all.push((
        format!("#/dashboard/{id}"),
        ".page-dashboard [data-series]".to_string(),
    ));
    for (hash, shown) in all {
        open(&mut b, &hash, &shown);
        browser::assert_accessible(&mut b, &hash);
    }

    // The keyboard, from the top of the Fleet page.
    open(&mut b, "#/fleet", "#home:not([hidden])");
    // A headless page has no window focus unless emulated: Tab would go nowhere.
    b.call(
        "Emulation.setFocusEmulationEnabled",
        json!({ "enabled": true }),
    )
    .unwrap();
    b.eval("document.activeElement.blur(); window.scrollTo(0, 0)")
        .unwrap();
    let links: Vec<String> = serde_json::from_value::<Vec<Value>>(
        b.eval("[...document.querySelectorAll('#nav a')].map((a) => 'a:' + a.textContent)")
            .unwrap(),
    )
    .unwrap()
    .into_iter()
    .map(|v| v.as_str().unwrap().to_string())
    .collect();
    assert_eq!(links.len(), 7, "{links:?}");
    let wanted: Vec<&str> = links
        .iter()
        .map(String::as_str)
        .chain(["button#sign-out", "input#fleet-search"])
        .collect();
    // Round the page at most twice.
    let mut reached = Vec::new();
    for _ in 0..60 {
        if wanted.iter().all(|w| reached.iter().any(|r| r == w)) {
            break;
        }
        b.press("Tab").unwrap();
        let focused: Vec<String> = serde_json::from_value(b.eval(FOCUSED).unwrap()).unwrap();
        if focused[0].starts_with("body") {
            continue;
        }
        assert_ne!(focused[1], "none", "{} has no focus outline", focused[0]);
        reached.push(focused[0].clone());
    }
    for want in &wanted {
        assert!(
            reached.iter().any(|r| r == want),
            "Tab never reached {want}: {reached:?}"
        );
    }
    browser::assert_no_problems(&mut b, &server.url());
}
