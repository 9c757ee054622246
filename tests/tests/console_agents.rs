//! The console's Agents and Availability pages in a real headless Chromium against the real
//! server and real agents. An admin approves an agent that asked to join without a token
//! (it then gets its certificate and sends data), makes a join token on the page, enrols a
//! second agent with it, and revokes that one (its next batch is refused). Viewers and
//! editors are refused by every admin endpoint, with or without CSRF; a session without
//! CSRF is refused too. The Availability page shows the first agent's host and its check
//! for the current month, and "no data" for the months before. Screenshots `agents.png`
//! and `availability.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sysward_tests::Reaped;

use sysward_tests::ConsoleSession as Session;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use reqwest::Method;
use serde_json::{Value, json};
use sysward_proto::JoinToken;
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server, batch, bin,
    browser::{self, Browser},
    can_run, client, gzip, poll, post_ingest, url_escape,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);
/// An enrolment poll (every 3 s), then the first batches and the rules' `up`.
const DATA_WAIT: Duration = Duration::from_secs(60);
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
/// Enrols without a join token, approved on the page.
const FIRST: &str = "agents-lab-1";
/// Enrols with a token made on the page, then revoked.
const SECOND: &str = "agents-lab-2";
const CHECK: &str = "api_port";

fn sign_in(server: &Server, user: &str) -> Session {
    server.console_sign_in(user, PASSWORD)
}

/// A request with the session's cookie, and its CSRF token when `csrf`.
fn send(
    server: &Server,
    method: Method,
    path: &str,
    session: &Session,
    csrf: bool,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client(&server.ca_pem(), None)
        .request(method, format!("{}{path}", server.url()))
        .header("Cookie", &session.cookie);
    if csrf {
        req = req.header("X-CSRF-Token", &session.csrf);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// [`poll`], with the agent's log in the failure.
fn poll_agent<T>(agent: &Agent, what: &str, f: impl FnMut() -> Option<T>) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll(DATA_WAIT, what, f)))
        .unwrap_or_else(|_| panic!("no {what}; agent log:\n{}", agent.log_text()))
}

fn status_of(server: &Server, id: &str) -> String {
    server.agent_info(id)["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn has(server: &Server, expr: &str) -> bool {
    let path = format!("/api/v1/query?query={}", url_escape(expr));
    let (status, body) = server.prom_get(ADMIN_TOKEN, &path);
    status == 200
        && body["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
}

/// Opens `#/NAME` afresh (through another page, so that the page starts again).
fn open(b: &mut Browser, name: &str) {
    b.eval("location.hash = '#/fleet'").unwrap();
    b.wait_until(
        "document.querySelector('#nav a[data-page=fleet]').getAttribute('aria-current') === 'page'",
        WAIT,
        "the fleet page",
    )
    .unwrap();
    b.eval(&format!("location.hash = '#/{name}'")).unwrap();
}

fn row_selector(table: &str, id: &str) -> String {
    format!("#{table} tr[data-agent=\"{id}\"]")
}

/// Every admin endpoint refuses `session` with 403, with its CSRF token or without.
fn admin_endpoints_refuse(server: &Server, session: &Session, who: &str) {
    let calls: [(Method, &str, Option<Value>); 5] = [
        (Method::POST, "/api/v1/agents/ag-x/approve", None),
        (Method::POST, "/api/v1/agents/ag-x/revoke", None),
        (Method::POST, "/api/v1/join-tokens", Some(json!({}))),
        (Method::GET, "/api/v1/join-tokens", None),
        (Method::DELETE, "/api/v1/join-tokens/0123456789abcdef", None),
    ];
    for (method, path, body) in calls {
        for csrf in [true, false] {
            let (status, answer) = send(server, method.clone(), path, session, csrf, body.clone());
            assert_eq!(status, 403, "{who} {method} {path} csrf={csrf}: {answer}");
        }
    }
}

#[test]
fn agents_are_approved_enrolled_and_revoked_and_availability_is_shown() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    server.add_console_user("ada", "admin", PASSWORD);
    server.add_console_user("eddie", "editor", PASSWORD);
    server.add_console_user("val", "viewer", PASSWORD);

    // The first agent asks to join without a token and waits.
    let check = format!(
        "[[checks.tcp]]\nname = \"{CHECK}\"\naddress = \"127.0.0.1:{}\"\ntier = \"critical\"\n",
        server.port
    );
    let mut first = Agent::configure(dir.path(), FIRST, &server.url(), &format!("{FAST}{check}"));
    let pin = JoinToken::parse(&server.token(&[])).unwrap().ca_sha256;
    let mut enrolling = Reaped(
        Command::new(bin("sysward-agent"))
            .arg("--config")
            .arg(&first.config)
            .args(["enroll", "--server", &server.url(), "--ca-pin", &pin])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first_id = poll(WAIT, "the pending enrolment", || {
        let (_, agents) = server.admin_get("/api/v1/agents");
        agents["data"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a["hostname"] == FIRST && a["status"] == "pending")
                .map(|a| a["id"].as_str().unwrap().to_string())
        })
    });

    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);
    b.navigate(&format!("{}/ui/#/agents", server.url()))
        .unwrap();
    b.fill_sign_in("ada", PASSWORD).unwrap();
    let pending = row_selector("agents-pending", &first_id);
    let row = b
        .wait_until(
            &format!(
                "(() => {{ const r = document.querySelector({s}); \
                 return r && [...r.children].map((c) => c.textContent); }})()",
                s = json!(pending)
            ),
            WAIT,
            "the pending agent on the page",
        )
        .unwrap();
    assert_eq!(row[0], format!("{FIRST}{first_id}"), "{row}");
    assert!(row[1].as_str().unwrap().starts_with("127.0.0.1:"), "{row}");
    assert_eq!(row[3], "Approve");

    // Approve: the API lists it approved, the waiting enrolment gets its certificate, and
    // the agent sends.
    b.click(&format!("{pending} .agents-approve")).unwrap();
    poll(WAIT, "the agent approved", || {
        (status_of(&server, &first_id) == "approved").then_some(())
    });
    b.wait_until(
        &format!(
            "document.querySelector({}) !== null",
            json!(row_selector("agents-approved", &first_id))
        ),
        WAIT,
        "the agent among the approved",
    )
    .unwrap();
    let enrolled = poll(Duration::from_secs(20), "the enrolment to finish", || {
        enrolling.0.try_wait().unwrap()
    });
    assert!(enrolled.success());
    assert_eq!(first.agent_id(), first_id);
    first.start();
    poll_agent(&first, "the approved agent's up and check", || {
        (has(&server, &format!("up{{agent_id=\"{first_id}\"}} == 1"))
            && has(
                &server,
                &format!("sysward_check_up{{agent_id=\"{first_id}\",check=\"{CHECK}\"}}"),
            ))
        .then_some(())
    });

    // Last month's check history, as a backlog would bring it (older than raw retention:
    // it goes to the rollups only): 3 runs OK of 4, for the month-over-month change.
    let mid_last_month = b
        .eval("(() => { const d = new Date(); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 15); })()")
        .unwrap()
        .as_i64()
        .unwrap();
    let points: Vec<Value> = [1.0, 1.0, 1.0, 0.0]
        .iter()
        .enumerate()
        .map(|(i, v)| json!([mid_last_month + i as i64 * 60_000, v]))
        .collect();
    let backlog = json!({
        "v": 1, "agent_id": first_id, "boot_id": "last-month", "seq": 1,
        "sent_at": mid_last_month,
        "series": [{ "name": "sysward_check_up", "labels": {"check": CHECK}, "kind": "gauge",
                     "points": points }],
    });
    let (status, answer) = post_ingest(
        &first.client(&server),
        &server,
        gzip(backlog.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{answer}");

    // A join token made on the page enrols the second agent.
    b.type_into("#agents-token-ttl", "1h").unwrap();
    b.click(".agents-token-form button[type=submit]").unwrap();
    let command = b
        .wait_until(
            "document.querySelector('.agents-token-made .agents-command')?.textContent",
            WAIT,
            "the new token's command",
        )
        .unwrap();
    let command = command.as_str().unwrap();
    assert!(
        command.starts_with("sysward-agent enroll 'swjoin1."),
        "{command}"
    );
    let token = command.split('\'').nth(1).unwrap();
    let parsed = JoinToken::parse(token).unwrap();
    assert_eq!(parsed.ca_sha256, pin);
    assert!(
        b.eval("document.querySelectorAll('.agents-token-made button').length")
            .unwrap()
            == 1,
        "a copy button"
    );
    let mut second = Agent::configure(dir.path(), SECOND, &server.url(), FAST);
    let second_id = second.enroll(token);
    assert_eq!(status_of(&server, &second_id), "approved");
    second.start();
    poll_agent(&second, "the second agent's up", || {
        has(&server, &format!("up{{agent_id=\"{second_id}\"}} == 1")).then_some(())
    });
    let (_, tokens) = server.admin_get("/api/v1/join-tokens");
    assert!(
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["status"] == "used" && t["used_by"] == second_id.as_str()),
        "{tokens}"
    );
    assert!(
        !tokens.to_string().contains(&parsed.secret),
        "no secret listed"
    );

    // Revoke asks to confirm; then the API lists it revoked and its next batch is refused.
    open(&mut b, "agents");
    let approved = row_selector("agents-approved", &second_id);
    b.wait_until(
        &format!("document.querySelector({}) !== null", json!(approved)),
        WAIT,
        "the second agent among the approved",
    )
    .unwrap();
    b.click(&format!("{approved} .agents-revoke")).unwrap();
    let focused = b
        .wait_until(
            "document.activeElement.classList.contains('agents-confirm') \
             && document.activeElement.textContent",
            WAIT,
            "the confirmation, focused",
        )
        .unwrap();
    assert_eq!(focused, format!("Revoke {SECOND} now"));
    assert_eq!(
        status_of(&server, &second_id),
        "approved",
        "not before confirming"
    );
    b.screenshot(&browser::screenshot_path("agents-confirm"))
        .unwrap();
    b.click(&format!("{approved} .agents-confirm")).unwrap();
    poll(WAIT, "the agent revoked", || {
        (status_of(&server, &second_id) == "revoked").then_some(())
    });
    b.wait_until(
        &format!(
            "document.querySelector({}) !== null",
            json!(row_selector("agents-revoked", &second_id))
        ),
        WAIT,
        "the agent among the revoked",
    )
    .unwrap();
    let body = gzip(
        batch(&second_id, "b-after", 1, "revoked_probe", 1.0)
            .to_string()
            .as_bytes(),
    );
    let (status, answer) = post_ingest(&second.client(&server), &server, body);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], format!("agent {second_id} is revoked"));
    b.screenshot(&browser::screenshot_path("agents")).unwrap();

    // The API: unknown ids are 404 naming them; a revoked agent cannot be approved (409);
    // the same change twice is a 200 that changed nothing; a session needs CSRF.
    let ada = sign_in(&server, "ada");
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/agents/ag-nope/approve",
        &ada,
        true,
        None,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no agent with id ag-nope"))
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/agents/ag-nope/revoke",
        &ada,
        true,
        None,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no agent with id ag-nope"))
    );
    let path = format!("/api/v1/agents/{second_id}/approve");
    let (status, body) = send(&server, Method::POST, &path, &ada, true, None);
    assert_eq!(status, 409, "{body}");
    let path = format!("/api/v1/agents/{second_id}/revoke");
    let (status, body) = send(&server, Method::POST, &path, &ada, true, None);
    assert_eq!(
        (status, &body["data"]["changed"]),
        (200, &json!(false)),
        "{body}"
    );
    let (status, _) = send(&server, Method::POST, &path, &ada, false, None);
    assert_eq!(status, 403, "no CSRF token");
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/join-tokens",
        &ada,
        true,
        Some(json!({"ttl": "soon"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("ttl: "),
        "{body}"
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/join-tokens",
        &ada,
        true,
        Some(json!({})),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"][0]["id"].as_str().unwrap().to_string();
    let fresh = body["data"][0]["token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/join-tokens/{id}");
    assert_eq!(
        send(&server, Method::DELETE, &path, &ada, true, None).0,
        200
    );
    let (status, body) = send(&server, Method::DELETE, &path, &ada, true, None);
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some(format!("no join token with id {id}").as_str()))
    );
    let unused = Agent::configure(dir.path(), "agents-lab-3", &server.url(), "");
    let out = unused.cmd(&["enroll", &fresh]);
    assert!(!out.status.success(), "a deleted token enrols nothing");
    for user in ["val", "eddie"] {
        admin_endpoints_refuse(&server, &sign_in(&server, user), user);
    }

    // Availability: the first agent's host and its check this month, nothing before.
    open(&mut b, "availability");
    b.wait_until(
        "document.getElementById('availability-months') !== null",
        WAIT,
        "the months select",
    )
    .unwrap();
    b.eval(
        "(() => { const s = document.getElementById('availability-months'); s.value = '3'; \
         s.dispatchEvent(new Event('change')); })()",
    )
    .unwrap();
    let cells = |table: &str, key: &str| {
        format!(
            "(() => {{ const r = document.querySelector('#{table} tr[data-key=\"' + {key} + '\"]'); \
             if (!r) return false; const c = [...r.children].map((c) => c.textContent); \
             return c.length && document.querySelectorAll('#{table} thead th').length === c.length \
               && c; }})()",
            key = json!(key)
        )
    };
    let host = b
        .wait_until(
            &cells("availability-hosts", &first_id),
            WAIT,
            "the host's row",
        )
        .unwrap();
    let host: Vec<String> = serde_json::from_value(host).unwrap();
    assert_eq!(host.len(), 4, "host and three months: {host:?}");
    assert_eq!(host[0], FIRST);
    assert_eq!(host[1], "no data", "two months back");
    // The month before has data only when the test began in it (at a month's turn).
    assert!(host[2] == "no data" || host[2].contains(" %"), "{host:?}");
    // The value, then the change from the month before when that has data.
    let pct: f64 = host[3]
        .split(" %")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{host:?}"));
    assert!(pct > 0.0 && pct <= 100.0, "{host:?}");
    let service = b
        .wait_until(
            &cells(
                "availability-services",
                &format!("checks|{first_id}|{CHECK}"),
            ),
            WAIT,
            "the check's row",
        )
        .unwrap();
    let service: Vec<String> = serde_json::from_value(service).unwrap();
    assert_eq!(
        &service[..4],
        [CHECK, "check", FIRST, "no data"],
        "{service:?}"
    );
    // Last month from the monthly rollup exactly; this month all OK, 25 points better.
    assert_eq!(service[4], "75.0 %", "{service:?}");
    let month_before = b
        .eval("document.querySelectorAll('#availability-services thead th')[4].textContent")
        .unwrap();
    assert_eq!(
        service[5],
        format!(
            "100.0 %\u{25B2} +25.0 pt (up from {})",
            month_before.as_str().unwrap()
        ),
        "{service:?}"
    );
    let months = b
        .eval("[...document.querySelectorAll('#availability-hosts thead th')].map((h) => h.textContent)")
        .unwrap();
    assert!(
        months[3].as_str().unwrap().ends_with("(to date)"),
        "{months}"
    );
    b.screenshot(&browser::screenshot_path("availability"))
        .unwrap();

    // A phone's width: neither page scrolls sideways (their tables do, in their boxes).
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .unwrap();
    for (page, ready) in [
        ("availability", "#availability-hosts"),
        ("agents", "#agents-approved"),
    ] {
        open(&mut b, page);
        b.wait_until(
            &format!(
                "document.querySelector('{ready}') !== null \
                 && document.documentElement.scrollWidth <= 390"
            ),
            WAIT,
            &format!("the {page} page to fit a phone's width"),
        )
        .unwrap_or_else(|e| {
            let wide = b
                .eval(
                    "[document.documentElement.scrollWidth, ...[...document.querySelectorAll('body *')] \
                     .filter((e) => e.getBoundingClientRect().right > 390 \
                       && !e.parentElement.closest('.table-wrap, #nav')) \
                     .slice(0, 8).map((e) => e.tagName + '.' + e.className \
                       + ' ' + Math.round(e.getBoundingClientRect().right))]",
                )
                .unwrap();
            panic!("{e}; wider than the screen: {wide}")
        });
        b.screenshot(&browser::screenshot_path(&format!("{page}-phone")))
            .unwrap();
    }
    b.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .unwrap();

    // A viewer: no Agents link, and the page says who may use it, without asking the API.
    b.click("#sign-out").unwrap();
    b.fill_sign_in("val", PASSWORD).unwrap();
    assert_eq!(
        b.eval("document.querySelector('#nav a[data-page=agents]').hidden")
            .unwrap(),
        true
    );
    open(&mut b, "agents");
    let denied = b
        .wait_until(
            "document.querySelector('.agents-denied')?.textContent",
            WAIT,
            "the administrators-only note",
        )
        .unwrap();
    assert!(
        denied.as_str().unwrap().starts_with("Administrators only"),
        "{denied}"
    );
    drop(enrolling);
    browser::assert_no_problems(&mut b, &server.url());
}
