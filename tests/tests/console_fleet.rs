//! The console's Fleet page in a real headless Chromium (`sysward_tests::browser`): the real
//! server fed by a real agent on short tiers, an admin signed in through the form, the
//! agent's host shown up with numeric CPU, memory and disk percentages, the search box
//! keeping it and then showing the empty state, the sort buttons, a phone-width view that
//! scrolls the table and not the page, and no console error. Screenshots `fleet.png` and
//! `fleet-phone.png` go to `<target dir>/ui-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sysward_tests::Reaped;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use sysward_proto::JoinToken;
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server, bin,
    browser::{self, Browser},
    can_run, poll, url_escape,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);
/// The agent's first batches, then two CPU samples for `rate`, then the rules' `up` and
/// alert. Once they are in the API, the page's first refresh shows them ([`WAIT`]).
const DATA_WAIT: Duration = Duration::from_secs(60);
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
const HOST: &str = "fleet-web-1";
/// Enrols without a join secret: pending until approved.
const PENDING: &str = "fleet-lab-2";

/// The texts of the row of `HOST` as `[host, status, cpu, memory, disk, alerts]`, once its
/// status is up and its three figures are percentages; else false.
fn host_row_ready() -> String {
    format!(
        "(() => {{ \
           const r = [...document.querySelectorAll('#fleet-rows tr')] \
             .find((r) => r.querySelector('th .name').textContent === {host}); \
           if (!r) return false; \
           const t = (c) => r.querySelector('.' + c).textContent; \
           const pct = (s) => /^\\d+(\\.\\d)? %$/.test(s); \
           if (t('status') !== 'up' || !['cpu', 'memory', 'disk'].every((c) => pct(t(c)))) \
             return false; \
           return [t('name'), t('status'), t('cpu'), t('memory'), t('disk'), t('alerts')]; \
         }})()",
        host = json!(HOST)
    )
}

/// An alert that fires for every host that sends its load, to be counted on the page.
const RULES: &str = r#"
groups:
- name: fleet
  rules:
  - alert: FleetLoadSeen
    expr: node_load1 >= 0
    labels:
      severity: warning
"#;

/// Waits, through the API, until what the page's first refresh reads is there: the
/// agent's `up`, its CPU figure (two samples for `rate`), the alert firing and the
/// pending agent. The page
/// refreshes every 30 s; a test should not wait for the second.
fn wait_for_data(server: &Server) {
    let has = |expr: &str| {
        let path = format!("/api/v1/query?query={}", url_escape(expr));
        let (status, body) = server.prom_get(ADMIN_TOKEN, &path);
        status == 200
            && body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    };
    poll(DATA_WAIT, "up, CPU, memory, disk and the alert", || {
        let alerts = server.prom_get(ADMIN_TOKEN, "/api/v1/alerts").1;
        let firing = alerts["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["state"] == "firing"));
        let agents = server.prom_get(ADMIN_TOKEN, "/api/v1/agents").1;
        let pending = agents["data"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["status"] == "pending"));
        (firing
            && pending
            && has("up == 1")
            && has(r#"rate(node_cpu_seconds_total{mode="idle"}[5m])"#)
            && has("node_memory_MemAvailable_bytes")
            && has(r#"sysward_agent_labels{role="frontend"}"#)
            && has("node_filesystem_avail_bytes"))
        .then_some(())
    });
}

const ROWS: &str = "document.querySelectorAll('#fleet-rows tr').length";

#[test]
fn the_fleet_page_shows_a_real_agent_with_its_figures() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/fleet.yml"), RULES).unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    server.add_console_user("ada", "admin", PASSWORD);
    server.add_console_user("val", "viewer", PASSWORD);
    let labelled = format!("[agent.labels]\nrole = \"frontend\"\n{FAST}");
    let mut agent = Agent::configure(dir.path(), HOST, &server.url(), &labelled);
    let agent_id = agent.enroll(&server.token(&[]));
    agent.start();
    // The agent waits for approval; killed at the end of the test.
    let pin = JoinToken::parse(&server.token(&[])).unwrap().ca_sha256;
    let pending = Agent::configure(dir.path(), PENDING, &server.url(), "");
    let _waiting = Reaped(
        Command::new(bin("sysward-agent"))
            .arg("--config")
            .arg(&pending.config)
            .args(["enroll", "--server", &server.url(), "--ca-pin", &pin])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_data(&server);
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);

    b.sign_in(&server.url(), "ada", PASSWORD).unwrap();

    let row = b
        .wait_until(
            &host_row_ready(),
            WAIT,
            "the agent's host up with CPU, memory and disk",
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log_text()));
    assert_eq!(row[0], HOST);
    assert_eq!(row[5], "1 warning", "{row}");
    let name = b
        .eval(&format!(
            "document.querySelector('#fleet-rows tr[data-agent={}] .name').textContent",
            json!(agent_id)
        ))
        .unwrap();
    assert_eq!(name, HOST);
    let updated = b
        .eval("document.getElementById('fleet-updated').textContent")
        .unwrap();
    assert!(
        updated.as_str().unwrap().starts_with("Updated at "),
        "{updated}"
    );
    // A real table with header cells that say what they head.
    assert_eq!(
        b.eval("document.querySelectorAll('#fleet-table thead th[scope=col] button').length")
            .unwrap(),
        6
    );
    assert_eq!(
        b.eval("document.querySelector('#fleet-rows th').scope")
            .unwrap(),
        "row"
    );
    // An admin also sees agents waiting for approval (from /api/v1/agents).
    b.wait_until(
        &format!(
            "[...document.querySelectorAll('#fleet-rows tr')].some((r) => \
               r.querySelector('th .name').textContent === {} \
               && r.querySelector('.status').textContent === 'pending')",
            json!(PENDING)
        ),
        WAIT,
        "the pending agent",
    )
    .unwrap();
    b.screenshot(&browser::screenshot_path("fleet")).unwrap();

    // Part of the name keeps the host; so does a label, the agent's own `[agent.labels]`
    // too.
    for search in ["web-1", "WEB", "instance=fleet-web", "role=frontend"] {
        b.type_into("#fleet-search", search).unwrap();
        b.wait_until(
            &format!(
                "{ROWS} === 1 && document.getElementById('fleet-empty').hidden \
                 && document.getElementById('fleet-count').textContent === '1 of 2 hosts'"
            ),
            WAIT,
            &format!("the host to stay for {search:?}"),
        )
        .unwrap();
    }
    b.type_into("#fleet-search", "pending").unwrap();
    b.wait_until(
        &format!("{ROWS} === 1 && document.querySelector('#fleet-rows .status').textContent === 'pending'"),
        WAIT,
        "a search by status",
    )
    .unwrap();
    b.type_into("#fleet-search", "no-such-host").unwrap();
    let empty = b
        .wait_until(
            &format!(
                "{ROWS} === 0 && !document.getElementById('fleet-empty').hidden \
                 && document.getElementById('fleet-empty').textContent"
            ),
            WAIT,
            "the empty state",
        )
        .unwrap();
    assert_eq!(empty, "No host matches \u{201c}no-such-host\u{201d}.");
    b.screenshot(&browser::screenshot_path("fleet-no-match"))
        .unwrap();
    // Typing nothing fires no input event: clear the box as its Escape key would.
    b.eval(
        "(() => { const e = document.getElementById('fleet-search'); e.value = ''; \
         e.dispatchEvent(new Event('input')); })()",
    )
    .unwrap();
    b.wait_until(&format!("{ROWS} === 2"), WAIT, "both hosts back")
        .unwrap();

    // Sorting is a button in the header: the first click on a figure sorts the busiest
    // first, the second the other way, and aria-sort says so.
    let sort_of =
        "document.querySelector('#fleet-table th[data-key=cpu]').getAttribute('aria-sort')";
    b.click("#fleet-table th[data-key=cpu] button").unwrap();
    assert_eq!(b.eval(sort_of).unwrap(), "descending");
    b.click("#fleet-table th[data-key=cpu] button").unwrap();
    assert_eq!(b.eval(sort_of).unwrap(), "ascending");
    assert_eq!(
        b.eval(
            "document.querySelector('#fleet-table th[data-key=host]').hasAttribute('aria-sort')"
        )
        .unwrap(),
        false
    );
    // And the keyboard: Enter on the focused Host button sorts by host.
    b.eval("document.querySelector('#fleet-table th[data-key=host] button').focus()")
        .unwrap();
    for kind in ["keyDown", "keyUp"] {
        b.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "Enter", "code": "Enter",
                   "windowsVirtualKeyCode": 13, "text": if kind == "keyDown" { "\r" } else { "" }}),
        )
        .unwrap();
    }
    b.wait_until(
        "document.querySelector('#fleet-table th[data-key=host]').getAttribute('aria-sort') \
         === 'ascending'",
        WAIT,
        "Enter on the Host button to sort by host",
    )
    .unwrap();

    // A phone's width: the page does not scroll sideways; the table does, in its box.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .unwrap();
    b.wait_until(
        "document.documentElement.scrollWidth <= 390 \
         && document.querySelector('.table-wrap').clientWidth <= 390",
        WAIT,
        "the page to fit a phone's width",
    )
    .unwrap();
    b.screenshot(&browser::screenshot_path("fleet-phone"))
        .unwrap();

    // A viewer may not list agents: the page does not ask, and shows the hosts that send.
    b.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .unwrap();
    b.click("#sign-out").unwrap();
    b.wait_until(
        "!document.getElementById('sign-in').hidden \
         && document.querySelectorAll('#fleet-rows tr').length === 0",
        WAIT,
        "the sign-in form, the fleet emptied",
    )
    .unwrap();
    b.type_into("#user", "val").unwrap();
    b.type_into("#password", PASSWORD).unwrap();
    b.click("#sign-in button[type=submit]").unwrap();
    b.wait_until(&host_row_ready(), WAIT, "the host for a viewer")
        .unwrap();
    assert_eq!(b.eval(ROWS).unwrap(), 1, "no pending agent for a viewer");

    browser::assert_no_problems(&mut b, &server.url());
}
