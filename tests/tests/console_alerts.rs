//! The console's Alerts, Silences and Rules pages in a real headless Chromium against the
//! real server (rules every second, a route to a webhook so that alerts are grouped and can
//! be acknowledged, a recurring maintenance window in the config) fed by a real agent: an
//! editor sees the firing alert with its host and value, acknowledges it, silences it from
//! the alert, expires the silence, sees the server's refusal of a bad matcher, the rules with
//! their health and the host in maintenance on the Fleet page; a viewer sees no button and
//! the API refuses a viewer's changes. Then the API alone: a console session's silence and
//! acknowledgement are its user's, whatever name it claims.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sysward_tests::ConsoleSession as Session;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server,
    browser::{self, Browser},
    can_run, client, poll,
    recorder::Recorder,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);
const DATA_WAIT: Duration = Duration::from_secs(60);
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
const HOST: &str = "alerts-web-1";
const ALERT: &str = "ConsoleLoadSeen";

/// An alert that fires at once for every host that sends its load, and a recording rule.
const RULES: &str = r#"
groups:
- name: console
  interval: 1s
  rules:
  - alert: ConsoleLoadSeen
    expr: node_load1 >= 0
    labels:
      severity: warning
    annotations:
      summary: "load on {{ $labels.instance }} is {{ $value }}"
      description: "seen by the console test"
  - record: console:load1
    expr: node_load1
"#;

/// Every alert goes to a webhook, grouped by name and host; a nightly window for backups.
fn notify_config(hook: &str) -> String {
    format!(
        r#"
[notify.route]
receiver = "team"
group_by = ["alertname", "instance"]
group_wait = "0s"
group_interval = "1s"

[[notify.receivers]]
name = "team"
[[notify.receivers.webhook]]
url = "{hook}/team"

[[notify.maintenance]]
name = "nightly backup"
matchers = ['instance=~"backup-.*"']
times = ["01:00-03:00"]
"#
    )
}

fn sign_in(server: &Server, user: &str) -> Session {
    server.console_sign_in(user, PASSWORD)
}

/// A change with the session's cookie and CSRF token; status and body.
fn session_send(
    server: &Server,
    s: &Session,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let resp = client(&server.ca_pem(), None)
        .request(method, format!("{}{path}", server.url()))
        .header("Cookie", &s.cookie)
        .header("X-CSRF-Token", &s.csrf)
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn admin_send(server: &Server, method: Method, path: &str, body: Value) -> (u16, Value) {
    let resp = client(&server.ca_pem(), None)
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn silences(server: &Server) -> Vec<Value> {
    let (status, body) = server.admin_get("/api/v1/silences");
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn silence(server: &Server, id: &str) -> Value {
    silences(server)
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no silence {id}"))
}

/// The firing alert's fingerprint, once the notifier holds it in a group.
fn wait_for_group(server: &Server) -> (String, Value) {
    poll(DATA_WAIT, "the alert firing and grouped", || {
        let alerts = server.admin_get("/api/v1/alerts").1;
        let alert = alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == ALERT && a["state"] == "firing")?
            .clone();
        let fp = alert["fingerprint"].as_str()?.to_string();
        let groups = server.admin_get("/api/v1/alerts/groups").1;
        let grouped = groups["data"].as_array()?.iter().any(|g| {
            g["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == fp.as_str()))
        });
        grouped.then_some((fp, alert))
    })
}

fn group_of(server: &Server, fingerprint: &str) -> Value {
    let groups = server.admin_get("/api/v1/alerts/groups").1;
    groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == fingerprint)
        })
        .cloned()
        .unwrap()
}

fn go(b: &mut Browser, hash: &str) {
    b.eval(&format!("location.hash = {}", json!(hash))).unwrap();
}

fn count(b: &mut Browser, selector: &str) -> u64 {
    b.eval(&format!(
        "document.querySelectorAll({}).length",
        json!(selector)
    ))
    .unwrap()
    .as_u64()
    .unwrap()
}

#[test]
fn alerts_silences_and_rules_in_the_console() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/console.yml"), RULES).unwrap();
    let hook = Recorder::start();
    let server = Server::start_with_rules(
        dir.path(),
        "",
        "evaluation_interval = \"1s\"\n",
        &notify_config(&hook.url),
    );
    server.add_console_user("ed", "editor", PASSWORD);
    server.add_console_user("val", "viewer", PASSWORD);
    let mut agent = Agent::configure(dir.path(), HOST, &server.url(), FAST);
    let agent_id = agent.enroll(&server.token(&[]));
    agent.start();
    let (fp, alert) = wait_for_group(&server);
    assert_eq!(alert["labels"]["agent_id"], agent_id.as_str(), "{alert}");
    assert_eq!(alert["labels"]["instance"], HOST, "{alert}");
    let before = silences(&server).len();

    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);
    b.navigate(&format!("{}/ui/#/alerts", server.url()))
        .unwrap();
    b.fill_sign_in("ed", PASSWORD).unwrap();

    // The firing alert, its host (a link to the host's page), value and annotations.
    let row = format!("#alerts-rows tr[data-fingerprint={}]", json!(fp));
    let cells = b
        .wait_until(
            &format!(
                "(() => {{ const r = document.querySelector({s}); if (!r) return false; \
                   const t = (c) => r.querySelector('.' + c).textContent; \
                   return {{ state: t('alerts-state'), name: t('alerts-name'), \
                     severity: t('alerts-severity'), host: t('alerts-host'), \
                     href: r.querySelector('.alerts-host a').getAttribute('href'), \
                     value: t('alerts-value'), summary: t('alerts-summary'), \
                     description: t('alerts-description'), acked: t('alerts-acked'), \
                     since: t('alerts-since') }}; }})()",
                s = json!(row)
            ),
            WAIT,
            "the firing alert on the Alerts page",
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_text()));
    assert_eq!(cells["state"], "firing", "{cells}");
    assert_eq!(cells["name"], ALERT);
    assert_eq!(cells["severity"], "warning");
    assert_eq!(cells["host"], HOST);
    assert_eq!(cells["href"], format!("#/host/{agent_id}"));
    let value = cells["value"].as_str().unwrap();
    assert!(value.parse::<f64>().is_ok(), "a number: {cells}");
    assert!(
        cells["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("load on {HOST} is ")),
        "{cells}"
    );
    assert_eq!(cells["description"], "seen by the console test");
    assert_eq!(cells["acked"], "no", "grouped, not acknowledged: {cells}");
    assert!(cells["since"].as_str().unwrap().contains("ago"), "{cells}");
    // The history below: the alert's transition to firing.
    b.wait_until(
        &format!(
            "[...document.querySelectorAll('#alerts-transitions tr')].some((r) => \
               r.querySelector('th').textContent === {} \
               && r.querySelector('.alerts-change').textContent.endsWith('\u{2192} firing'))",
            json!(ALERT)
        ),
        WAIT,
        "the transition to firing in the history",
    )
    .unwrap();

    // Filters: by severity and by text.
    b.eval(
        "(() => { const s = document.getElementById('alerts-severity'); s.value = 'critical'; \
         s.dispatchEvent(new Event('change')); })()",
    )
    .unwrap();
    assert_eq!(count(&mut b, "#alerts-rows tr"), 0);
    b.eval(
        "(() => { const s = document.getElementById('alerts-severity'); s.value = 'warning'; \
         s.dispatchEvent(new Event('change')); })()",
    )
    .unwrap();
    b.type_into("#alerts-search", &format!("instance={HOST}"))
        .unwrap();
    b.wait_until(
        &format!("document.querySelectorAll({}).length === 1", json!(row)),
        WAIT,
        "the alert kept by its filters",
    )
    .unwrap();

    // Acknowledge: the API says who.
    b.click(&format!("{row} .alerts-ack")).unwrap();
    b.wait_until(
        &format!(
            "document.querySelector({}).textContent.startsWith('by ed, ')",
            json!(format!("{row} .alerts-acked"))
        ),
        WAIT,
        "the alert shown acknowledged by ed",
    )
    .unwrap();
    assert_eq!(group_of(&server, &fp)["acknowledged_by"], "ed");
    assert_eq!(
        count(&mut b, &format!("{row} .alerts-ack")),
        0,
        "no second acknowledgement offered"
    );
    b.screenshot(&browser::screenshot_path("alerts")).unwrap();
    // A phone's width: the page does not scroll sideways; the tables do, in their boxes.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .unwrap();
    b.wait_until(
        "document.documentElement.scrollWidth <= 390",
        WAIT,
        "the Alerts page to fit a phone's width",
    )
    .unwrap();
    b.screenshot(&browser::screenshot_path("alerts-phone"))
        .unwrap();
    b.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .unwrap();

    // Silence… from the alert: the form prefilled with its labels.
    b.click(&format!("{row} .alerts-silence")).unwrap();
    let expected = [
        format!("alertname=\"{ALERT}\""),
        format!("agent_id=\"{agent_id}\""),
        format!("instance=\"{HOST}\""),
    ];
    b.wait_until(
        &format!(
            "document.getElementById('silence-matchers') \
             && document.getElementById('silence-matchers').value === {}",
            json!(expected.join("\n"))
        ),
        WAIT,
        "the silence form prefilled from the alert",
    )
    .unwrap();
    assert_eq!(
        b.eval("document.getElementById('silence-duration').value")
            .unwrap(),
        "2h"
    );
    b.type_into("#silence-comment", "looking into it").unwrap();
    b.click("#silence-form button[type=submit]").unwrap();
    let status = b
        .wait_until(
            "(() => { const t = document.querySelector('.silences-status').textContent; \
               return t.startsWith('Created silence ') && t; })()",
            WAIT,
            "the silence created",
        )
        .unwrap();
    let id = status
        .as_str()
        .unwrap()
        .trim_start_matches("Created silence ")
        .trim_end_matches('.')
        .to_string();
    let made = silence(&server, &id);
    assert_eq!(made["matchers"], json!(expected), "{made}");
    assert_eq!(made["created_by"], "ed", "{made}");
    assert_eq!(made["kind"], "silence");
    assert_eq!(made["comment"], "looking into it");
    assert_eq!(made["active"], true);
    let length = made["ends_ms"].as_i64().unwrap() - made["starts_ms"].as_i64().unwrap();
    assert!((7_190_000..=7_210_000).contains(&length), "2 h: {made}");
    assert_eq!(
        b.eval("location.hash").unwrap(),
        "#/silences",
        "the form's address is left"
    );
    let current = format!("#silences-current tr[data-id={}]", json!(id));
    b.wait_until(
        &format!(
            "document.querySelector({}) && document.querySelector({}).textContent.includes('ed')",
            json!(current),
            json!(format!("{current} .silences-by"))
        ),
        WAIT,
        "the silence listed as active",
    )
    .unwrap();
    // The configuration's window, read-only.
    let config_row = "#silences-current tr[data-source=config]";
    b.wait_until(
        &format!(
            "document.querySelector({s}) \
             && document.querySelector({s}).textContent.includes('nightly backup') \
             && document.querySelector({s} + ' .silences-actions').textContent === 'read-only' \
             && !document.querySelector({s} + ' button')",
            s = json!(config_row)
        ),
        WAIT,
        "the configuration's window, read-only",
    )
    .unwrap();
    b.screenshot(&browser::screenshot_path("silences")).unwrap();

    // Expire: listed as ended, by the API too.
    b.click(&format!("{current} .silences-expire")).unwrap();
    b.wait_until(
        &format!(
            "!document.querySelector({}) && document.querySelector({})",
            json!(current),
            json!(format!("#silences-ended tr[data-id={}]", json!(id)))
        ),
        WAIT,
        "the silence among the ended",
    )
    .unwrap();
    let ended = silence(&server, &id);
    assert_eq!(ended["active"], false, "{ended}");
    assert!(ended["ends_ms"].as_i64().unwrap() <= made["ends_ms"].as_i64().unwrap() - 3_600_000);

    // A line that is no matcher is refused by the page; a bad regex by the server, whose
    // message is shown next to the form. Neither creates anything.
    let count_now = silences(&server).len();
    assert_eq!(count_now, before + 1);
    b.type_into("#silence-matchers", "instance").unwrap();
    b.click("#silence-form button[type=submit]").unwrap();
    let refused = b
        .wait_until(
            "document.getElementById('silence-form-error').textContent",
            WAIT,
            "the page's refusal",
        )
        .unwrap();
    assert!(
        refused
            .as_str()
            .unwrap()
            .starts_with("Line 1 is not a matcher"),
        "{refused}"
    );
    b.type_into("#silence-matchers", "instance=~\"(\"").unwrap();
    b.click("#silence-form button[type=submit]").unwrap();
    let refused = b
        .wait_until(
            "(() => { const t = document.getElementById('silence-form-error').textContent; \
               return t.startsWith('The server refused it: ') && t; })()",
            WAIT,
            "the server's refusal",
        )
        .unwrap();
    assert!(
        refused
            .as_str()
            .unwrap()
            .contains("matcher \"instance=~\\\"(\\\"\""),
        "the server's message: {refused}"
    );
    assert_eq!(silences(&server).len(), count_now, "nothing created");

    // The Rules page: the group and its rules, healthy.
    go(&mut b, "#/rules");
    let rule = b
        .wait_until(
            &format!(
                "(() => {{ const g = document.querySelector('.rules-group[data-group=console]'); \
                   if (!g) return false; \
                   const r = g.querySelector('tr[data-rule={ALERT}]'); \
                   const rec = g.querySelector('tr[data-rule=\"console:load1\"]'); \
                   if (!r || !rec) return false; \
                   const t = (e, c) => e.querySelector('.' + c).textContent; \
                   return {{ file: g.querySelector('dd').textContent, \
                     last: t(g, 'rules-last'), type: t(r, 'rules-type'), \
                     health: t(r, 'rules-health'), query: t(r, 'rules-query'), \
                     hold: t(r, 'rules-hold'), labels: t(r, 'rules-labels'), \
                     alerts: t(r, 'rules-alerts'), recType: t(rec, 'rules-type'), \
                     recHealth: t(rec, 'rules-health') }}; }})()"
            ),
            WAIT,
            "the rule group on the Rules page",
        )
        .unwrap();
    assert!(
        rule["file"].as_str().unwrap().ends_with("console.yml"),
        "{rule}"
    );
    assert_ne!(rule["last"], "never", "{rule}");
    assert_eq!(rule["type"], "alerting");
    assert_eq!(rule["health"], "ok", "{rule}");
    assert_eq!(rule["query"], "node_load1 >= 0");
    assert_eq!(rule["hold"], "for 0 s");
    assert_eq!(rule["labels"], "severity=warning");
    assert_eq!(rule["alerts"], "1 (1 firing)");
    assert_eq!(rule["recType"], "recording");
    assert_eq!(rule["recHealth"], "ok");
    b.screenshot(&browser::screenshot_path("rules")).unwrap();
    b.eval(
        "(() => { const s = document.getElementById('rules-health'); s.value = 'err'; \
         s.dispatchEvent(new Event('change')); })()",
    )
    .unwrap();
    assert_eq!(count(&mut b, ".rules-group"), 0);
    assert_eq!(
        b.eval("document.querySelector('.rules-empty').textContent")
            .unwrap(),
        "No rule matches these filters."
    );

    // A maintenance window over the host: the Fleet page says so.
    let (status, body) = admin_send(
        &server,
        Method::POST,
        "/api/v1/silences",
        json!({"matchers": [format!("agent_id=\"{agent_id}\"")], "endsAt": "2099-01-01T00:00:00Z",
               "createdBy": "ops", "kind": "maintenance"}),
    );
    assert_eq!(status, 200, "{body}");
    go(&mut b, "#/fleet");
    b.wait_until(
        &format!(
            "document.querySelector({}).textContent === 'up, in maintenance'",
            json!(format!(
                "#fleet-rows tr[data-agent={}] .status",
                json!(agent_id)
            ))
        ),
        WAIT,
        "the host in maintenance on the Fleet page",
    )
    .unwrap();

    // A viewer: the lists without a button or a form.
    b.click("#sign-out").unwrap();
    b.fill_sign_in("val", PASSWORD).unwrap();
    go(&mut b, "#/alerts");
    b.wait_until(
        &format!("document.querySelector({})", json!(row)),
        WAIT,
        "the alert for a viewer",
    )
    .unwrap();
    assert_eq!(
        count(&mut b, ".page-alerts button, .page-alerts th:nth-child(9)"),
        0
    );
    go(&mut b, "#/silences");
    b.wait_until(
        "document.querySelectorAll('#silences-ended tr').length > 0",
        WAIT,
        "the silences for a viewer",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut b,
            "#silence-form, .page-silences button, .silences-actions"
        ),
        0
    );
    // The server's 400 for the bad matcher is the browser's one expected line.
    browser::assert_no_problems_except(&mut b, &server.url(), &[("/api/v1/silences", 400)]);

    // The API refuses a viewer's changes, CSRF token or not.
    let val = sign_in(&server, "val");
    let (status, body) = session_send(
        &server,
        &val,
        Method::POST,
        "/api/v1/silences",
        json!({"matchers": ["instance=\"x\""], "endsAt": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("needs role editor")
    );
    let (status, _) = session_send(
        &server,
        &val,
        Method::POST,
        "/api/v1/alerts/ack",
        json!({ "id": fp }),
    );
    assert_eq!(status, 403);
    let (status, _) = session_send(
        &server,
        &val,
        Method::DELETE,
        &format!("/api/v1/silence/{id}"),
        Value::Null,
    );
    assert_eq!(status, 403);
    assert_eq!(
        silences(&server).len(),
        count_now + 1,
        "only the admin's window"
    );
}

#[test]
fn a_session_acts_as_its_user_and_a_token_names_whom_it_acts_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "[[notify.maintenance]]\nname = \"db-1 upgrade\"\nmatchers = ['instance=\"db-1\"']\n\
         start = \"2020-01-01T00:00:00Z\"\nend = \"2099-01-01T00:00:00Z\"\n",
    );
    server.add_console_user("eddie", "editor", PASSWORD);
    let eddie = sign_in(&server, "eddie");
    let body = |by: Option<&str>| {
        let mut b = json!({"matchers": ["instance=\"web-1\""], "endsAt": "2099-01-01T00:00:00Z"});
        if let Some(by) = by {
            b["createdBy"] = json!(by);
        }
        b
    };

    // A session: createdBy is its user, given or not; another name is refused.
    for claimed in [None, Some("eddie")] {
        let (status, answer) = session_send(
            &server,
            &eddie,
            Method::POST,
            "/api/v1/silences",
            body(claimed),
        );
        assert_eq!(status, 200, "{answer}");
        let id = answer["data"]["silenceID"].as_str().unwrap();
        assert_eq!(silence(&server, id)["created_by"], "eddie");
    }
    let before = silences(&server).len();
    let (status, answer) = session_send(
        &server,
        &eddie,
        Method::POST,
        "/api/v1/silences",
        body(Some("bob")),
    );
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["error"],
        "createdBy: a console session acts as its user: \"bob\" is not the signed-in user \"eddie\""
    );
    assert_eq!(silences(&server).len(), before, "nothing created");

    // An acknowledgement likewise: a claim of another name is refused before anything.
    let (status, answer) = session_send(
        &server,
        &eddie,
        Method::POST,
        "/api/v1/alerts/ack",
        json!({"id": "0123456789abcdef", "by": "bob"}),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("by: a console session acts as its user"),
        "{answer}"
    );
    let (status, answer) = session_send(
        &server,
        &eddie,
        Method::POST,
        "/api/v1/alerts/ack",
        json!({"id": "0123456789abcdef"}),
    );
    assert_eq!(status, 404, "no such group, after the check: {answer}");

    // A token names whom it acts for, and must.
    let (status, answer) = admin_send(&server, Method::POST, "/api/v1/silences", body(Some("ann")));
    assert_eq!(status, 200, "{answer}");
    let id = answer["data"]["silenceID"].as_str().unwrap();
    assert_eq!(silence(&server, id)["created_by"], "ann");
    let (status, answer) = admin_send(&server, Method::POST, "/api/v1/silences", body(None));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "silence body: createdBy is required (who adds the silence)"
    );

    // The configuration's window is listed, marked, active, and cannot be expired.
    let window = silence(&server, "config:db-1 upgrade");
    assert_eq!(window["source"], "config", "{window}");
    assert_eq!(window["kind"], "maintenance");
    assert_eq!(window["matchers"], json!(["instance=\"db-1\""]));
    assert_eq!(window["active"], true);
    assert_eq!(window["starts_ms"], 1_577_836_800_000_i64);
    assert_eq!(silence(&server, id)["source"], "api");
    let (status, _) = admin_send(
        &server,
        Method::DELETE,
        "/api/v1/silence/config:db-1%20upgrade",
        Value::Null,
    );
    assert_eq!(status, 404);
}
