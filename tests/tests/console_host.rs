//! The console's Host page in a real headless Chromium (`sysward_tests::browser`): the real
//! server (rules every second, which write `up`) fed by a real agent on 1 s tiers with a
//! script check. A viewer signs in, clicks the host on the Fleet page and sees its name,
//! **up**, CPU, memory, load and network charts with data points, and the check with its
//! output; the auto-refresh brings more points; every range reads the tier meant for it
//! and still draws points, kept in the hash, over a reload too; an unknown agent id says
//! so; dark mode recolours; a phone's width does not scroll sideways. Screenshots
//! `host.png`, `host-7d.png`, `host-dark.png`, `host-phone.png`. It prints (does not
//! assert) how long the page took from its start to all panels drawn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server,
    browser::{self, Browser},
    can_run, poll, url_escape,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);
const DATA_WAIT: Duration = Duration::from_secs(60);
const HOST: &str = "host-web-1";
/// 1 s tiers, and a check that prints a line and exits 0 (a root-owned program in a
/// directory nobody else may write, as the agent requires).
const AGENT: &str = "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n\
[[checks.script]]\nname = \"fine\"\ncommand = \"/bin/echo\"\nargs = [\"OK - fine\"]\n";
/// The charts that must have points once the agent has sent a few batches.
const CORE: [&str; 4] = ["cpu", "memory", "load", "network"];

/// Waits, through the API, until what the page's first load reads is there.
fn wait_for_data(server: &Server) {
    let has = |expr: &str| {
        let path = format!("/api/v1/query?query={}", url_escape(expr));
        let (status, body) = server.prom_get(ADMIN_TOKEN, &path);
        status == 200
            && body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    };
    poll(DATA_WAIT, "up, CPU, memory, network and the check", || {
        let checks = server.prom_get(ADMIN_TOKEN, "/api/v1/checks").1;
        let fine = checks["data"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["check"] == "fine"));
        (fine
            && has("up == 1")
            && has(r#"rate(node_cpu_seconds_total{mode="idle"}[1m])"#)
            && has("node_memory_MemAvailable_bytes")
            && has(r#"rate(node_network_receive_bytes_total{device!="lo"}[1m])"#))
        .then_some(())
    });
}

/// True once every core chart has drawn points: `data-points` > 0.
fn core_charts_drawn() -> String {
    format!(
        "{}.every((k) => Number((document.querySelector('.page-host [data-chart=' + k + ']') \
         || {{dataset: {{}}}}).dataset.points) > 0)",
        json!(CORE)
    )
}

fn points(b: &mut Browser) -> serde_json::Value {
    b.eval(&format!(
        "Object.fromEntries({}.map((k) => [k, Number(document.querySelector('.page-host [data-chart=' + k + ']').dataset.points)]))",
        json!(CORE)
    ))
    .unwrap()
}

fn key(b: &mut Browser, key: &str) {
    for kind in ["keyDown", "keyUp"] {
        b.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": key, "code": key}),
        )
        .unwrap();
    }
}

#[test]
fn the_host_page_shows_a_real_agents_charts_and_checks() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    let server = Server::start_with_rules(dir.path(), "", "evaluation_interval = \"1s\"\n", "");
    server.add_console_user("val", "viewer", PASSWORD);
    let mut agent = Agent::configure(dir.path(), HOST, &server.url(), AGENT);
    let agent_id = agent.enroll(&server.token(&[]));
    agent.start();
    wait_for_data(&server);
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);

    b.sign_in(&server.url(), "val", PASSWORD).unwrap();
    let link = format!("#fleet-rows tr[data-agent={}] a.name", json!(agent_id));
    b.wait_until(
        &format!("document.querySelector({})", json!(link)),
        WAIT,
        "the host's link on the Fleet page",
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log_text()));

    // The Fleet page links the host name to its page.
    b.eval("window.hostT0 = performance.now()").unwrap();
    b.click(&link).unwrap();
    let hash = format!("#/host/{agent_id}");
    b.wait_until(
        &format!(
            "location.hash === {} && document.getElementById('host-title') \
             && document.getElementById('host-title').textContent === {}",
            json!(hash),
            json!(HOST)
        ),
        WAIT,
        "the Host page with the host's name",
    )
    .unwrap();
    b.wait_until(
        &core_charts_drawn(),
        WAIT,
        "CPU, memory, load and network charts with points",
    )
    .unwrap_or_else(|e| panic!("{e}: {}", points(&mut b)));
    let seen = b
        .eval("performance.now() - window.hostT0")
        .unwrap()
        .as_f64()
        .unwrap();
    let load_ms = b
        .wait_until(
            "document.querySelector('.page-host').dataset.loadMs",
            WAIT,
            "the first load to end",
        )
        .unwrap();
    println!(
        "host page, 1 h: {load_ms} ms from its start to every panel drawn; \
         {seen:.0} ms from the click to the four main charts seen drawn"
    );
    // Where the time goes: the slowest and the fastest API requests of the page (printed).
    let slowest = b
        .eval(
            "performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/')) \
             .sort((a, b) => b.duration - a.duration).filter((e, i, all) => i < 3 || i >= all.length - 3) \
             .map((e) => Math.round(e.duration) + ' ms ' + decodeURIComponent(e.name.split('/api/v1/')[1]).slice(0, 90))",
        )
        .unwrap();
    println!("slowest and fastest API requests of the page: {slowest:#}");
    let status = b
        .eval("document.querySelector('.host-status').textContent")
        .unwrap();
    assert!(status.as_str().unwrap().starts_with("up"), "{status}");
    let meta = b
        .eval("document.querySelector('.host-meta').textContent")
        .unwrap();
    assert!(
        meta.as_str()
            .unwrap()
            .contains(&format!("agent id {agent_id}")),
        "{meta}"
    );
    // The Fleet entry of the nav stays current on a host's page.
    assert_eq!(
        b.eval("document.querySelector('#nav a[aria-current=page]').dataset.page")
            .unwrap(),
        "fleet"
    );

    // The check, with its state and last output.
    let check = b
        .wait_until(
            "(() => { const r = document.querySelector('.page-host tr[data-check=fine]'); \
             return r && [r.querySelector('.check-state').textContent, \
             r.querySelector('.host-output').textContent]; })()",
            WAIT,
            "the check's row",
        )
        .unwrap();
    assert_eq!(check, json!(["OK", "OK - fine"]));

    // File systems: a row per mount point with its size, use and a fill prediction.
    let fill = b
        .wait_until(
            "(() => { const rows = [...document.querySelectorAll('.page-host [data-panel=filesystems] tbody tr')]; \
             return rows.length > 0 && rows.map((r) => [...r.children].map((c) => c.textContent)); })()",
            WAIT,
            "the file systems' table",
        )
        .unwrap();
    for row in fill.as_array().unwrap() {
        let cells: Vec<&str> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(cells[3].ends_with('B') && cells[4].ends_with(" %"), "{row}");
        assert!(
            cells[5].starts_with("full in ~")
                || ["not filling", "not enough data", "full"].contains(&cells[5]),
            "{row}"
        );
    }

    // Charts say what they show: an accessible name with the latest values, a legend
    // whose buttons toggle a series, a tooltip from the keyboard.
    let label = b
        .eval("document.querySelector('[data-chart=memory] canvas').getAttribute('aria-label')")
        .unwrap();
    let label = label.as_str().unwrap();
    assert!(
        label.starts_with("Memory, latest values: used ") && label.contains("iB"),
        "{label}"
    );
    b.click("[data-chart=load] .chart-key").unwrap();
    assert_eq!(
        b.eval(
            "document.querySelector('[data-chart=load] .chart-key').getAttribute('aria-pressed')"
        )
        .unwrap(),
        "false"
    );
    let all = b
        .eval("Number(document.querySelector('[data-chart=load]').dataset.points)")
        .unwrap();
    b.click("[data-chart=load] .chart-key").unwrap();
    let more = b
        .eval("Number(document.querySelector('[data-chart=load]').dataset.points)")
        .unwrap();
    assert!(more.as_u64() > all.as_u64(), "{all} then {more}");
    b.eval("document.querySelector('[data-chart=cpu] canvas').focus()")
        .unwrap();
    key(&mut b, "ArrowLeft");
    let tip = b
        .wait_until(
            "(() => { const t = document.querySelector('[data-chart=cpu] .chart-tip'); \
             return !t.hidden && t.textContent; })()",
            WAIT,
            "the CPU chart's tooltip",
        )
        .unwrap();
    assert!(tip.as_str().unwrap().contains(" %"), "{tip}");
    key(&mut b, "Escape");

    // Auto-refresh: within 30 s the page loads again, with more points (lines now).
    let before = b
        .eval("[document.querySelector('.page-host').dataset.loaded, Number(document.querySelector('[data-chart=cpu]').dataset.points)]")
        .unwrap();
    b.wait_until(
        &format!(
            "document.querySelector('.page-host').dataset.loaded !== {} \
             && Number(document.querySelector('[data-chart=cpu]').dataset.points) > {}",
            before[0], before[1]
        ),
        Duration::from_secs(45),
        "the auto-refresh to bring more points",
    )
    .unwrap();
    b.eval("document.activeElement.blur(); window.scrollTo(0, 0)")
        .unwrap();
    b.screenshot(&browser::screenshot_path("host")).unwrap();

    // 7 days: a rollup tier, still points; the range is kept in the hash.
    b.eval("window.hostT0 = performance.now(); delete document.querySelector('.page-host').dataset.loadMs")
        .unwrap();
    b.click(".host-range[data-range='7d']").unwrap();
    b.wait_until(
        &format!(
            "location.hash === {} && document.querySelector('.page-host').dataset.loadMs",
            json!(format!("{hash}/7d"))
        ),
        WAIT,
        "the 7 d range loaded",
    )
    .unwrap();
    let week = points(&mut b);
    let load_ms = b
        .eval("document.querySelector('.page-host').dataset.loadMs")
        .unwrap();
    println!(
        "host page, 7 d: {load_ms} ms from the range's click to every panel drawn; points {week}"
    );
    assert!(
        CORE.iter().all(|k| week[k].as_u64() > Some(0)),
        "points at 7 d: {week}"
    );
    assert_eq!(
        b.eval("document.querySelector('.host-range[aria-pressed=true]').dataset.range")
            .unwrap(),
        "7d"
    );
    assert_eq!(
        b.eval("document.getElementById('host-auto').disabled")
            .unwrap(),
        true,
        "no auto-refresh past 24 h"
    );
    b.eval("document.activeElement.blur(); window.scrollTo(0, 0)")
        .unwrap();
    b.screenshot(&browser::screenshot_path("host-7d")).unwrap();
    // Dark mode: the legend takes the dark palette, and the charts are drawn again.
    b.eval(
        "window.schemeChanged = false; matchMedia('(prefers-color-scheme: dark)') \
         .addEventListener('change', () => { window.schemeChanged = true; })",
    )
    .unwrap();
    b.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .unwrap();
    let dark = b
        .wait_until(
            "getComputedStyle(document.querySelector('[data-chart=cpu] .chart-swatch')).backgroundColor",
            WAIT,
            "the legend's colours",
        )
        .unwrap();
    assert_eq!(dark, "rgb(127, 176, 240)");
    b.wait_until("window.schemeChanged", WAIT, "the scheme's change event")
        .unwrap();
    b.screenshot(&browser::screenshot_path("host-dark"))
        .unwrap();
    b.call("Emulation.setEmulatedMedia", json!({"features": []}))
        .unwrap();

    // Every query of every panel is one the coarser tiers answer: no panel says it could
    // not be read, and the main charts still have points.
    for (range, tier) in [
        ("30d", "1h"),
        ("90d", "1h"),
        ("1y", "1d"),
        ("24h", "raw"),
        ("6h", "raw"),
        ("7d", "5m"),
    ] {
        b.eval("delete document.querySelector('.page-host').dataset.loadMs")
            .unwrap();
        b.click(&format!(".host-range[data-range='{range}']"))
            .unwrap();
        b.wait_until(
            &format!(
                "location.hash.endsWith('/{range}') && document.querySelector('.page-host').dataset.loadMs"
            ),
            WAIT,
            &format!("the {range} range loaded"),
        )
        .unwrap();
        let errors = b
            .eval(
                "[...document.querySelectorAll('.page-host .host-panel-error, .page-host .host-error')]\
                 .map((e) => e.textContent).filter(Boolean).join(' | ')",
            )
            .unwrap();
        assert_eq!(errors, "", "at {range}");
        // The tier meant for the range (docs/console.md#charts), as the server says.
        assert_eq!(
            b.eval("document.querySelector('.host-tier').dataset.tier")
                .unwrap(),
            tier,
            "at {range}"
        );
        let drawn = points(&mut b);
        assert!(
            CORE.iter().all(|k| drawn[k].as_u64() > Some(0)),
            "points at {range}: {drawn}"
        );
    }

    // A reload keeps the page and its range.
    b.eval("window.beforeReload = true").unwrap();
    b.call("Page.reload", json!({})).unwrap();
    b.wait_until(
        &format!(
            "!window.beforeReload && location.hash === {} \
             && document.querySelector('.host-range[aria-pressed=true]') \
             && document.querySelector('.host-range[aria-pressed=true]').dataset.range === '7d' \
             && {}",
            json!(format!("{hash}/7d")),
            core_charts_drawn()
        ),
        WAIT,
        "the 7 d page after a reload",
    )
    .unwrap();

    // An agent id that nobody has: a clear message, no exception.
    b.eval("location.hash = '#/host/ag-no-such-agent'").unwrap();
    let missing = b
        .wait_until(
            "document.querySelector('.page-host .host-error').textContent",
            WAIT,
            "the no-such-host message",
        )
        .unwrap();
    assert!(
        missing.as_str().unwrap().starts_with("No such host"),
        "{missing}"
    );
    assert_eq!(
        b.eval("document.querySelector('.page-host .host-panels').hidden")
            .unwrap(),
        true
    );

    // A phone's width: one column, no sideways scroll of the page.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .unwrap();
    b.eval(&format!("location.hash = {}", json!(hash))).unwrap();
    b.wait_until(
        &format!(
            "document.getElementById('host-title') \
             && document.getElementById('host-title').textContent === {} && {} \
             && document.documentElement.scrollWidth <= 390",
            json!(HOST),
            core_charts_drawn()
        ),
        WAIT,
        "the Host page at a phone's width",
    )
    .unwrap_or_else(|e| {
        let w = b.eval("document.documentElement.scrollWidth").unwrap();
        panic!("{e}; page width {w}")
    });
    // The canvas is drawn for the screen's pixel ratio, so lines stay sharp.
    let ratio = b
        .eval(
            "(() => { const c = document.querySelector('[data-chart=cpu] canvas'); \
             return c.width / c.clientWidth; })()",
        )
        .unwrap();
    assert!((ratio.as_f64().unwrap() - 2.0).abs() < 0.05, "{ratio}");
    b.screenshot(&browser::screenshot_path("host-phone"))
        .unwrap();

    // The contract other pages code against.
    let step = b
        .eval("[charts.step(0, 3600e3, 1000), charts.step(0, 7 * 86400e3, 1000), charts.step(0, 365 * 86400e3, 300)]")
        .unwrap();
    assert_eq!(step, json!([10, 900, 172800]));
    let text = b
        .eval("[charts.format(0.123, 'percent'), charts.format(1288490188.8, 'bytes'), \
               charts.format(2048, 'bytes/s'), charts.format(0.25, 'seconds'), charts.format(NaN, '')]")
        .unwrap();
    assert_eq!(
        text,
        json!(["12.3 %", "1.2 GiB", "2 KiB/s", "250 ms", "no data"])
    );

    // Many points: one path per series, drawn at once (the figure is printed, not
    // asserted); a NaN is a break, not a point.
    let big = b
        .eval(
            "(() => { const box = document.createElement('div'); document.body.append(box); \
             const c = charts.timeSeries(box, { unit: 'bytes', label: 'Big' }); \
             const from = Date.now() - 7 * 86400e3; \
             const series = [0, 1, 2].map((k) => ({ name: 's' + k, points: Array.from( \
               { length: 10000 }, (_, i) => [from + i * 60e3, i === 5000 ? NaN : 1e9 * (k + Math.sin(i / 50))]) })); \
             const t0 = performance.now(); \
             c.update({ from, to: from + 10000 * 60e3, series }); \
             const ms = performance.now() - t0; const n = Number(box.dataset.points); \
             c.destroy(); box.remove(); return [n, ms]; })()",
        )
        .unwrap();
    println!(
        "3 series of 10,000 points drawn in {:.1} ms",
        big[1].as_f64().unwrap()
    );
    assert_eq!(big[0], 29_997);

    browser::assert_no_problems(&mut b, &server.url());
}
