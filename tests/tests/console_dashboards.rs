//! The console's dashboards over real TLS: who may create, change and delete them (the API
//! refuses, whatever the page offers), CSRF, versions (a stale save is a 409), refusals
//! that name the widget, the limits; public dashboards off by default, then made public by
//! an admin and read without credentials, each widget answering only its stored query.
//! In a real Chromium with a real agent on 1 s tiers: an editor builds a dashboard with a
//! CPU graph and a memory gauge, saves, reloads, and both come back with data
//! (`dashboard.png`); an anonymous browser opens the public link and sees the widgets with
//! data and no sign-in form (`public.png`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sysward_tests::ConsoleSession as Session;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server,
    browser::{self, Browser},
    can_run, client, poll, url_escape,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);
const DATA_WAIT: Duration = Duration::from_secs(60);
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
const PUBLIC_ON: &str = "[ui]\npublic_dashboards = true\n";
const CPU: &str = "sum by (mode) (rate(node_cpu_seconds_total[1m]))";
const MEMORY: &str = "max(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)";

struct Api<'a> {
    server: &'a Server,
    http: reqwest::blocking::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a Server) -> Self {
        Self {
            server,
            http: client(&server.ca_pem(), None),
        }
    }

    fn sign_in(&self, user: &str) -> Session {
        self.server.console_sign_in(user, PASSWORD)
    }

    /// A request as `who` (a session with or without its CSRF token, or a bearer token),
    /// or anonymous.
    fn send(&self, method: Method, path: &str, who: Who<'_>, body: Option<&Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url()));
        req = match who {
            Who::Session(s) => req
                .header("Cookie", &s.cookie)
                .header("X-CSRF-Token", &s.csrf),
            Who::NoCsrf(s) => req.header("Cookie", &s.cookie),
            Who::Token(t) => req.bearer_auth(t),
            Who::Nobody => req,
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Session(&'a Session),
    NoCsrf(&'a Session),
    Token(&'a str),
    Nobody,
}

fn widget(id: &str, kind: &str, query: &str) -> Value {
    json!({ "id": id, "type": kind, "title": id, "query": query,
            "x": 0, "y": 0, "w": 6, "h": 4, "options": {} })
}

fn dashboard(title: &str, widgets: Vec<Value>) -> Value {
    json!({ "title": title, "refresh_seconds": 30, "time_range": "1h",
            "pages": [{ "title": "Main", "widgets": widgets }] })
}

fn users(server: &Server) {
    for (name, role) in [
        ("eddie", "editor"),
        ("erin", "editor"),
        ("vic", "viewer"),
        ("ada", "admin"),
    ] {
        server.add_console_user(name, role, PASSWORD);
    }
}

#[test]
fn dashboards_are_owned_versioned_checked_and_public_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), PUBLIC_ON);
    users(&server);
    let api = Api::new(&server);
    let (eddie, erin, vic) = (
        api.sign_in("eddie"),
        api.sign_in("erin"),
        api.sign_in("vic"),
    );
    let body = dashboard("Web", vec![widget("one", "gauge", "vector(42)")]);

    // Creating: editors, with the CSRF token; never viewers.
    let (status, e) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::NoCsrf(&eddie),
        Some(&body),
    );
    assert_eq!(status, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("CSRF"), "{e}");
    let (status, e) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Session(&vic),
        Some(&body),
    );
    assert_eq!(status, 403, "{e}");
    let (status, d) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Session(&eddie),
        Some(&body),
    );
    assert_eq!(status, 201, "{d}");
    assert_eq!(
        (d["owner"].as_str(), d["version"].as_i64()),
        (Some("eddie"), Some(1))
    );
    assert_eq!(d["public"], false);
    let id = d["id"].as_str().unwrap().to_string();
    assert!(
        id.len() >= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    let path = format!("/api/v1/dashboards/{id}");

    // Everyone signed in reads it; only those allowed may change it.
    let (status, list) = api.send(Method::GET, "/api/v1/dashboards", Who::Session(&vic), None);
    assert_eq!(status, 200);
    assert_eq!(list["dashboards"][0]["id"], id.as_str());
    assert_eq!(list["dashboards"][0]["can_edit"], false);
    assert_eq!(list["can_create"], false);
    let mut change = body.clone();
    change["version"] = json!(1);
    for (who, what) in [
        (Who::Session(&vic), "a viewer"),
        (Who::Session(&erin), "an editor not listed"),
    ] {
        let (status, e) = api.send(Method::PUT, &path, who, Some(&change));
        assert_eq!(status, 403, "{what}: {e}");
    }
    let (status, e) = api.send(Method::DELETE, &path, Who::Session(&vic), None);
    assert_eq!(status, 403, "{e}");
    let (status, e) = api.send(Method::PUT, &path, Who::NoCsrf(&eddie), Some(&change));
    assert_eq!(status, 403, "{e}");
    // The owner lists erin; erin may then change it, but not who edits it.
    change["editors"] = json!(["erin"]);
    let (status, d) = api.send(Method::PUT, &path, Who::Session(&eddie), Some(&change));
    assert_eq!((status, d["version"].as_i64()), (200, Some(2)), "{d}");
    change["version"] = json!(2);
    change["title"] = json!("Web, by erin");
    let (status, d) = api.send(Method::PUT, &path, Who::Session(&erin), Some(&change));
    assert_eq!((status, d["version"].as_i64()), (200, Some(3)), "{d}");
    assert_eq!(d["title"], "Web, by erin");
    let mut grab = change.clone();
    grab["version"] = json!(3);
    grab["editors"] = json!(["erin", "vic"]);
    let (status, e) = api.send(Method::PUT, &path, Who::Session(&erin), Some(&grab));
    assert_eq!(status, 403, "{e}");
    // A save from version 2 after erin's: someone else saved.
    let (status, e) = api.send(Method::PUT, &path, Who::Session(&eddie), Some(&change));
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("someone else saved"),
        "{e}"
    );
    let (status, e) = api.send(Method::DELETE, &path, Who::Session(&erin), None);
    assert_eq!(status, 403, "erin edits but does not own it: {e}");

    // Refusals say what and where.
    let bad = dashboard(
        "Bad",
        vec![
            widget("a", "gauge", "up"),
            widget("b", "timeseries", "rate(up[5m]"),
        ],
    );
    let (status, e) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Session(&eddie),
        Some(&bad),
    );
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("pages[0].widgets[1].query: "),
        "{e}"
    );
    let many: Vec<Value> = (0..101)
        .map(|i| widget(&format!("w{i}"), "gauge", "up"))
        .collect();
    let (status, e) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Session(&eddie),
        Some(&dashboard("Many", many)),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("at most 100"), "{e}");
    let huge = dashboard(&"x".repeat(300 * 1024), vec![]);
    let (status, e) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Session(&eddie),
        Some(&huge),
    );
    assert_eq!(status, 413, "{e}");
    let (status, e) = api.send(Method::PUT, &path, Who::Session(&eddie), Some(&body));
    assert_eq!(status, 400, "no version: {e}");
    assert!(e["error"].as_str().unwrap().starts_with("version: "), "{e}");

    // An admin token creates as `admin`.
    let (status, d) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Token(ADMIN_TOKEN),
        Some(&body),
    );
    assert_eq!((status, d["owner"].as_str()), (201, Some("admin")), "{d}");
    let other = d["id"].as_str().unwrap().to_string();

    // Public: admins only; then anyone reads it, and each widget answers its own query.
    let public_path = format!("{path}/public");
    let on = json!({ "public": true });
    let (status, e) = api.send(Method::PUT, &public_path, Who::Session(&eddie), Some(&on));
    assert_eq!(status, 403, "{e}");
    let (status, _) = api.send(
        Method::GET,
        &format!("/ui/api/public/{id}"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 404, "not public yet");
    let (status, d) = api.send(
        Method::PUT,
        &public_path,
        Who::Token(ADMIN_TOKEN),
        Some(&on),
    );
    assert_eq!((status, &d["public"]), (200, &json!(true)), "{d}");
    let (status, p) = api.send(
        Method::GET,
        &format!("/ui/api/public/{id}"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["title"], "Web, by erin");
    assert!(
        p.get("owner").is_none() && p.get("editors").is_none(),
        "{p}"
    );
    let widget_path = format!("/ui/api/public/{id}/widgets/one");
    let (status, v) = api.send(Method::GET, &widget_path, Who::Nobody, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "42");
    // No other query can be passed.
    let other_query = format!("{widget_path}?query={}", url_escape("up"));
    let (status, e) = api.send(Method::GET, &other_query, Who::Nobody, None);
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("\"query\" is not taken"),
        "{e}"
    );
    let (status, _) = api.send(
        Method::GET,
        &format!("/ui/api/public/{id}/widgets/nope"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 404);
    // A dashboard that is not public and one that does not exist get the same answer.
    let (s1, e1) = api.send(
        Method::GET,
        &format!("/ui/api/public/{other}"),
        Who::Nobody,
        None,
    );
    let (s2, e2) = api.send(
        Method::GET,
        &format!("/ui/api/public/{}", "0".repeat(32)),
        Who::Nobody,
        None,
    );
    assert_eq!((s1, &e1), (s2, &e2));
    assert_eq!(s1, 404);
    let (status, _) = api.send(
        Method::GET,
        &format!("/ui/api/public/{other}/widgets/one"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 404);

    // The owner deletes it.
    let (status, _) = api.send(Method::DELETE, &path, Who::Session(&eddie), None);
    assert_eq!(status, 204);
    let (status, _) = api.send(Method::GET, &path, Who::Session(&vic), None);
    assert_eq!(status, 404);
    let (status, _) = api.send(
        Method::GET,
        &format!("/ui/api/public/{id}"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn public_dashboards_are_off_unless_the_config_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let api = Api::new(&server);
    let body = dashboard("Web", vec![widget("one", "gauge", "vector(1)")]);
    let (status, d) = api.send(
        Method::POST,
        "/api/v1/dashboards",
        Who::Token(ADMIN_TOKEN),
        Some(&body),
    );
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let (status, e) = api.send(
        Method::PUT,
        &format!("/api/v1/dashboards/{id}/public"),
        Who::Token(ADMIN_TOKEN),
        Some(&json!({ "public": true })),
    );
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("public_dashboards = true"),
        "{e}"
    );
    let (status, _) = api.send(
        Method::GET,
        &format!("/ui/api/public/{id}"),
        Who::Nobody,
        None,
    );
    assert_eq!(status, 404);
}

/// Sets a form control's value as a person would, with the events the page listens to.
fn set_value(b: &mut Browser, selector: &str, value: &str) {
    b.eval(&format!(
        "(() => {{ const e = document.querySelector({sel}); e.value = {v}; \
         e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }})()",
        sel = json!(selector),
        v = json!(value)
    ))
    .unwrap();
}

fn add_widget(
    b: &mut Browser,
    kind: &str,
    title: &str,
    query: &str,
    unit: &str,
    extra: &[(&str, &str)],
) {
    b.click("#dash-add-widget").unwrap();
    b.wait_until(
        "document.getElementById('dash-f-type') !== null",
        WAIT,
        "the widget form",
    )
    .unwrap();
    set_value(b, "#dash-f-type", kind);
    set_value(b, "#dash-f-title", title);
    set_value(b, "#dash-f-query", query);
    set_value(b, "#dash-f-unit", unit);
    for (sel, v) in extra {
        set_value(b, sel, v);
    }
    b.click(".dash-widget-form button[type=submit]").unwrap();
    b.wait_until(
        &format!(
            "[...document.querySelectorAll('.dash-widget h3')].some((h) => h.textContent === {})",
            json!(title)
        ),
        WAIT,
        "the new widget on the grid",
    )
    .unwrap();
}

/// Both widgets drawn with data: `[series of the graph, series of the gauge, points drawn,
/// whether the shared chart library (chart.js: its `.chart-box`) drew the graph]`. The
/// library sets `data-points` on the widget's body.
const BOTH_READY: &str = "(() => { \
  const w = (t) => document.querySelector('.dash-widget[data-type=' + t + '] .dash-widget-body'); \
  const g = w('timeseries'), m = w('gauge'); \
  if (!g || !m || g.dataset.state !== 'ok' || m.dataset.state !== 'ok') return false; \
  if (!(Number(g.dataset.series) > 0 && Number(m.dataset.series) > 0)) return false; \
  const drawn = g.querySelector('.chart-box canvas') !== null; \
  const points = Number(g.dataset.points || 0); \
  if (!(points > 0) || !drawn) return false; \
  return [Number(g.dataset.series), Number(m.dataset.series), points, drawn]; })()";

#[test]
fn an_editor_builds_a_dashboard_and_anyone_reads_it_when_public() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), PUBLIC_ON);
    users(&server);
    let mut agent = Agent::configure(dir.path(), "dash-web-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();
    poll(DATA_WAIT, "CPU rates and memory", || {
        let has = |expr: &str| {
            let path = format!("/api/v1/query?query={}", url_escape(expr));
            let body = server.prom_get(ADMIN_TOKEN, &path).1;
            body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        };
        (has(CPU) && has(MEMORY)).then_some(())
    });
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);
    b.navigate(&format!("{}/ui/#/dashboards", server.url()))
        .unwrap();
    b.fill_sign_in("eddie", PASSWORD).unwrap();
    b.wait_until(
        "document.getElementById('dash-new-title') !== null",
        WAIT,
        "the New dashboard form",
    )
    .unwrap();
    b.type_into("#dash-new-title", "Web servers").unwrap();
    b.click(".dash-new button[type=submit]").unwrap();
    b.wait_until(
        "document.getElementById('dash-edit') !== null",
        WAIT,
        "the new dashboard",
    )
    .unwrap();
    let id = b
        .eval("decodeURIComponent(location.hash.split('/')[2])")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    b.click("#dash-edit").unwrap();
    b.wait_until(
        "document.getElementById('dash-add-widget') !== null",
        WAIT,
        "edit mode",
    )
    .unwrap();
    add_widget(&mut b, "timeseries", "CPU by mode", CPU, "", &[]);
    add_widget(
        &mut b,
        "gauge",
        "Memory used",
        MEMORY,
        "percent",
        &[
            ("#dash-f-min", "0"),
            ("#dash-f-max", "1"),
            ("#dash-f-thresholds", "0.8:warn, 0.95:crit"),
        ],
    );
    // Keyboard-usable arrangement: the gauge moves right next to the graph.
    b.eval("document.querySelector('.dash-widget[data-type=gauge] button[aria-label^=\"Move right\"]').focus()")
        .unwrap();
    for kind in ["keyDown", "keyUp"] {
        b.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                   "text": if kind == "keyDown" { "\r" } else { "" }}),
        )
        .unwrap();
    }
    b.wait_until(
        "document.querySelector('.dash-widget[data-type=gauge]').style.gridColumn.startsWith('2')",
        WAIT,
        "Enter on Move right to move the gauge",
    )
    .unwrap();
    assert_eq!(
        b.eval("document.activeElement.dataset.tool").unwrap(),
        "Move right",
        "the focus stays on the button pressed"
    );
    // And the mouse: the resize handle dragged one column and more to the right.
    let handle = b
        .eval(
            "(() => { const h = document.querySelector('.dash-widget[data-type=gauge] .dash-resize'); \
               const r = h.getBoundingClientRect(); \
               const col = document.querySelector('.dash-grid').clientWidth / 12; \
               return [r.x + r.width / 2, r.y + r.height / 2, col]; })()",
        )
        .unwrap();
    let (x, y, col) = (
        handle[0].as_f64().unwrap(),
        handle[1].as_f64().unwrap(),
        handle[2].as_f64().unwrap(),
    );
    for (kind, to_x) in [
        ("mousePressed", x),
        ("mouseMoved", x + col * 0.6),
        ("mouseMoved", x + col * 1.2),
        ("mouseReleased", x + col * 1.2),
    ] {
        b.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": to_x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}),
        )
        .unwrap();
    }
    b.wait_until(
        "document.querySelector('.dash-widget[data-type=gauge]').style.gridColumn === '2 / span 7'",
        WAIT,
        "the gauge one column wider after the drag",
    )
    .unwrap();
    b.screenshot(&browser::screenshot_path("dashboard-edit"))
        .unwrap();
    b.click("#dash-save").unwrap();
    b.wait_until(
        "document.querySelector('.dash-status').textContent.startsWith('Saved')",
        WAIT,
        "the save",
    )
    .unwrap();

    // Reloaded, both widgets are back with data.
    b.navigate("about:blank").unwrap();
    b.navigate(&format!("{}/ui/#/dashboard/{id}", server.url()))
        .unwrap();
    let ready = b
        .wait_until(BOTH_READY, WAIT, "both widgets with data after a reload")
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log_text()));
    assert!(ready[0].as_u64().unwrap() >= 1 && ready[1] == 1, "{ready}");
    let stored = server
        .prom_get(ADMIN_TOKEN, &format!("/api/v1/dashboards/{id}"))
        .1;
    let widgets = stored["pages"][0]["widgets"].as_array().unwrap();
    assert_eq!(widgets.len(), 2, "{stored}");
    assert_eq!(widgets[1]["x"], 1, "moved right once: {stored}");
    assert_eq!(widgets[1]["w"], 7, "one column wider: {stored}");
    assert_eq!(widgets[1]["options"]["unit"], "percent");
    b.screenshot(&browser::screenshot_path("dashboard"))
        .unwrap();
    browser::assert_no_problems(&mut b, &server.url());

    // Someone else saves while eddie edits: his save is refused (409, which the browser
    // logs as a network error: hence after the check above) and the page offers a reload.
    b.click("#dash-edit").unwrap();
    b.wait_until(
        "document.getElementById('dash-save') !== null",
        WAIT,
        "edit mode again",
    )
    .unwrap();
    let http = client(&server.ca_pem(), None);
    let current = server
        .prom_get(ADMIN_TOKEN, &format!("/api/v1/dashboards/{id}"))
        .1;
    let resp = http
        .put(format!("{}/api/v1/dashboards/{id}", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&current)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    b.click("#dash-save").unwrap();
    b.wait_until(
        "document.querySelector('.dash-status').textContent.includes('someone else saved')",
        WAIT,
        "the page to say someone else saved",
    )
    .unwrap();
    b.click(".dash-status button").unwrap();
    b.wait_until(
        &format!(
            "document.getElementById('dash-save') === null \
             && document.getElementById('dash-edit') !== null && {BOTH_READY}"
        ),
        WAIT,
        "the dashboard reloaded, out of edit mode, after the conflict",
    )
    .unwrap();

    // An admin makes it public; a browser without a session sees it, read-only.
    let resp = http
        .put(format!("{}/api/v1/dashboards/{id}/public", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "public": true }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The other widget types, added by the admin over the API, are drawn too.
    let mut all = server
        .prom_get(ADMIN_TOKEN, &format!("/api/v1/dashboards/{id}"))
        .1;
    let more = [
        ("load", "status", "node_load1", 4),
        ("disks", "toplist", "node_filesystem_avail_bytes", 5),
        ("cpu-map", "heatmap", "rate(node_cpu_seconds_total[1m])", 5),
        ("alerts", "alerts", "", 3),
    ];
    let list = all["pages"][0]["widgets"].as_array_mut().unwrap();
    for (i, (wid, kind, query, h)) in more.into_iter().enumerate() {
        let mut w = widget(wid, kind, query);
        w["y"] = json!(20 + i * 6);
        w["h"] = json!(h);
        w["options"] = json!({ "unit": if kind == "toplist" { "bytes" } else { "" },
                               "thresholds": [{ "value": 1, "colour": "ok" }] });
        list.push(w);
    }
    let resp = http
        .put(format!("{}/api/v1/dashboards/{id}", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&all)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().unwrap());
    let mut anon = Browser::start(&[&cert]);
    anon.navigate(&format!("{}/ui/#/public/{id}", server.url()))
        .unwrap();
    let ready = anon
        .wait_until(BOTH_READY, WAIT, "the public dashboard's widgets with data")
        .unwrap_or_else(|e| {
            let states = anon.eval(
                "[...document.querySelectorAll('.dash-widget')].map((w) => w.dataset.type + ': ' \
                 + w.querySelector('.dash-widget-body').dataset.state + ' ' + w.textContent)",
            );
            panic!("{e}: {states:?}")
        });
    assert!(ready[0].as_u64().unwrap() >= 1, "{ready}");
    let states = anon
        .wait_until(
            "(() => { const s = [...document.querySelectorAll('.dash-widget-body')] \
               .map((b) => b.closest('.dash-widget').dataset.type + ':' + b.dataset.state); \
               return s.length === 6 && s.every((x) => x.endsWith(':ok')) && s; })()",
            WAIT,
            "every widget type drawn with data",
        )
        .unwrap_or_else(|e| {
            let states = anon.eval(
                "[...document.querySelectorAll('.dash-widget')].map((w) => w.dataset.type + ': ' \
                 + w.querySelector('.dash-widget-body').dataset.state + ' ' + w.textContent)",
            );
            panic!("{e}: {states:?}")
        });
    assert_eq!(states.as_array().unwrap().len(), 6);
    assert!(
        anon.eval(
            "document.querySelectorAll('.dash-type-status .dash-tile strong').length > 0 \
                   && document.querySelectorAll('.dash-type-toplist tbody tr').length > 0 \
                   && document.querySelector('.dash-type-alerts .dash-alert-list') === null"
        )
        .unwrap()
            == json!(true),
        "status tiles with words, top list rows, alert counts without a list"
    );
    let chrome = anon
        .eval(
            "[document.getElementById('sign-in').hidden, document.getElementById('nav').hidden, \
              document.getElementById('dash-edit') === null, \
              [...document.querySelectorAll('.dash-widget-error')].map((e) => e.textContent).join() || true]",
        )
        .unwrap();
    assert_eq!(chrome, json!([true, true, true, true]));
    // Tall enough to show every widget.
    anon.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 2200, "deviceScaleFactor": 1, "mobile": false}),
    )
    .unwrap();
    anon.screenshot(&browser::screenshot_path("public"))
        .unwrap();
    browser::assert_no_problems(&mut anon, &server.url());
}
