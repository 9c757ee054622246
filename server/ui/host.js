// The Host page (`#/host/AGENT_ID[/RANGE]`): one host's history in charts and tables.
// Every figure comes from the public API with the session cookie, by GET: range queries
// for the charts, instant queries for the header and tables, /api/v1/checks for checks.
// Every series of an agent carries `agent_id`, which selects the host. The queries use only
// functions that every tier of the store answers (rate, avg_over_time, last_over_time,
// plain selectors), so a range that reads a rollup tier gets the same charts as one that
// reads raw points (docs/query.md). Values reach the page through textContent only.
"use strict";

ui.register("host", (() => {
  const REFRESH_MS = 30000;
  // The ranges offered; `res` is the resolution (s) of the tier each reads with the
  // default retention (raw 1 d, 5m 7 d, 1h 90 d, 1d 365 d): the step is never finer.
  const RANGES = [
    { key: "1h", s: 3600, res: 0 },
    { key: "6h", s: 21600, res: 0 },
    { key: "24h", s: 86400, res: 0 },
    { key: "7d", s: 604800, res: 300 },
    { key: "30d", s: 2592000, res: 3600 },
    { key: "90d", s: 7776000, res: 3600 },
    { key: "1y", s: 31536000, res: 86400 },
  ];
  const DEFAULT_RANGE = "1h";
  const AUTO_REFRESH_MAX_S = 86400;
  const PARALLEL = 6;
  // A point averages at least this long, so that it holds samples sent every minute.
  const MIN_WINDOW_S = 180;

  const avg = (metric, s, w) => "avg_over_time(" + metric + "{" + s + "}[" + w + "])";
  const rate = (metric, s, w) => "rate(" + metric + "{" + s + "}[" + w + "])";

  const PROCESS_STATES = {
    R: "running", S: "sleeping", D: "uninterruptible", Z: "zombie", T: "stopped",
    t: "traced", I: "idle", X: "dead", W: "paging", P: "parked", K: "wakekill",
  };

  // Chart panels: `parts` are the queries of a chart, each `[expr, name]` where name is
  // the series' name or a function of its labels (several small queries rather than one
  // joined by `or`: each is quick, and they run side by side). `core` panels always show
  // (with "no data in this range" when empty); the others are left out while their
  // metric has no series on this host.
  const CHARTS = [
    {
      key: "cpu", title: "CPU by mode", unit: "percent", stacked: true, core: true,
      note: "share of all CPUs, idle left out",
      parts: (s, w) => [[
        "sum by (mode) (" + rate("node_cpu_seconds_total", s + ",mode!=\"idle\"", w)
          + ") / ignoring(mode) group_left() sum(" + rate("node_cpu_seconds_total", s, w) + ")",
        (m) => m.mode,
      ]],
      order: ["user", "nice", "system", "iowait", "irq", "softirq", "steal"],
    },
    {
      key: "load", title: "Load", unit: "", core: true,
      parts: (s, w) => [
        [avg("node_load1", s, w), "1 min"],
        [avg("node_load5", s, w), "5 min"],
        [avg("node_load15", s, w), "15 min"],
      ],
    },
    {
      key: "memory", title: "Memory", unit: "bytes", core: true,
      parts: (s, w) => [
        [avg("node_memory_MemTotal_bytes", s, w) + " - " + avg("node_memory_MemAvailable_bytes", s, w), "used"],
        [avg("node_memory_Cached_bytes", s, w) + " + " + avg("node_memory_Buffers_bytes", s, w), "cache and buffers"],
        [avg("node_memory_MemAvailable_bytes", s, w), "available"],
        [avg("node_memory_MemTotal_bytes", s, w), "total"],
      ],
    },
    {
      key: "network", title: "Network", unit: "bytes/s", core: true, byName: true,
      note: "per interface, loopback left out",
      parts: (s, w) => [
        [rate("node_network_receive_bytes_total", s + ",device!=\"lo\"", w), (m) => m.device + " in"],
        [rate("node_network_transmit_bytes_total", s + ",device!=\"lo\"", w), (m) => m.device + " out"],
      ],
    },
    {
      key: "swap", title: "Swap", unit: "bytes",
      parts: (s, w) => {
        const total = avg("node_memory_SwapTotal_bytes", s, w);
        return [
          ["(" + total + " - " + avg("node_memory_SwapFree_bytes", s, w) + ") and (" + total + " > 0)", "used"],
          [total + " > 0", "total"],
        ];
      },
    },
    {
      key: "pressure", title: "Pressure (PSI)", unit: "percent",
      note: "share of time tasks waited (some) or all stalled (full)",
      parts: (s, w) => [
        [rate("node_pressure_cpu_waiting_seconds_total", s, w), "cpu some"],
        [rate("node_pressure_memory_waiting_seconds_total", s, w), "memory some"],
        [rate("node_pressure_memory_stalled_seconds_total", s, w), "memory full"],
        [rate("node_pressure_io_waiting_seconds_total", s, w), "io some"],
        [rate("node_pressure_io_stalled_seconds_total", s, w), "io full"],
        [rate("node_pressure_irq_stalled_seconds_total", s, w), "irq full"],
      ],
    },
    {
      key: "filesystems", title: "File systems", unit: "percent", table: "fs",
      note: "share of each file system used",
      parts: (s, w) => [[
        "1 - " + avg("node_filesystem_avail_bytes", s, w) + " / " + avg("node_filesystem_size_bytes", s, w),
        (m) => m.mountpoint || m.device || "?",
      ]],
    },
    {
      key: "disk", title: "Disk I/O", unit: "bytes/s", byName: true,
      parts: (s, w) => [
        [rate("node_disk_read_bytes_total", s, w), (m) => m.device + " read"],
        [rate("node_disk_written_bytes_total", s, w), (m) => m.device + " write"],
      ],
    },
    {
      key: "disk-util", title: "Disk utilisation", unit: "percent",
      note: "share of time each device was busy",
      parts: (s, w) => [[rate("node_disk_io_time_seconds_total", s, w), (m) => m.device]],
    },
    {
      key: "processes", title: "Processes by state", unit: "", stacked: true,
      parts: (s, w) => [[
        avg("node_processes_state", s, w),
        (m) => (PROCESS_STATES[m.state] ? PROCESS_STATES[m.state] + " (" + m.state + ")" : m.state),
      ]],
    },
  ];

  let view = null;

  const { el } = ui;

  function rangeOf(key) {
    return RANGES.find((r) => r.key === key) || RANGES.find((r) => r.key === DEFAULT_RANGE);
  }

  function start(section, params) {
    stop();
    const id = params[0] || "";
    const range = rangeOf(params[1]);
    view = { id, range, run: 0, timer: null, section, charts: new Map(), panels: new Map(), busy: false };
    document.title = id + " \u2014 Host \u2014 Sysward";
    build(section);
    if (!id) {
      missing("No host given: open a host from the Fleet page.");
      return;
    }
    refresh(true);
    view.timer = setInterval(() => {
      if (view && view.auto.checked && view.range.s <= AUTO_REFRESH_MAX_S && !view.busy) {
        refresh(false);
      }
    }, REFRESH_MS);
  }

  function stop() {
    if (!view) {
      return;
    }
    view.run += 1;
    if (view.timer !== null) {
      clearInterval(view.timer);
    }
    for (const c of view.charts.values()) {
      c.destroy();
    }
    view = null;
  }

  // The page's skeleton: header, range buttons, auto-refresh, then a panel per chart and
  // per table, each with its own place for an error.
  function build(section) {
    const title = el("h2", { id: "host-title" }, view.id || "Host");
    const status = el("span", { className: "host-status" });
    const meta = el("p", { className: "host-meta" });
    const back = el("a", { href: "#/fleet", className: "host-back" }, "\u2190 Fleet");
    const head = el("div", { className: "host-head" }, back, el("div", { className: "host-name" }, title, status), meta);
    const buttons = RANGES.map((r) => el("button", {
      type: "button", className: "host-range", dataset: { range: r.key },
      "aria-pressed": String(r.key === view.range.key),
      onclick: () => setRange(r.key),
    }, r.key.replace(/(\d)([a-z])/, "$1\u00a0$2")));
    const ranges = el("div", { className: "host-ranges", role: "group", "aria-label": "Time range" }, ...buttons);
    const auto = el("input", { type: "checkbox", id: "host-auto", checked: true });
    const autoLabel = el("label", { for: "host-auto", className: "host-auto" }, auto, " Auto-refresh every 30\u00a0s");
    const updated = el("span", { className: "host-updated", role: "status", "aria-live": "polite" });
    const tier = el("span", { className: "host-tier" });
    const controls = el("div", { className: "host-controls" }, ranges, autoLabel, updated, tier);
    const error = el("p", { className: "host-error error", role: "status" });
    const grid = el("div", { className: "host-panels" });
    for (const c of CHARTS) {
      const chartBox = el("div", { className: "host-chart", dataset: { chart: c.key } });
      const extra = c.table ? el("div", { className: "host-table-box" }) : null;
      const p = panel(c.key, c.title, c.note, chartBox, extra);
      grid.append(p.section);
      p.section.hidden = !c.core;
      view.panels.set(c.key, p);
    }
    for (const [key, title] of [["smart", "SMART"], ["systemd", "systemd units"], ["checks", "Checks"]]) {
      const p = panel(key, title, null, el("div", { className: "host-table-box" }), null);
      p.section.hidden = key !== "checks";
      p.section.classList.add("host-panel-wide");
      grid.append(p.section);
      view.panels.set(key, p);
    }
    section.append(head, controls, error, grid);
    Object.assign(view, { title, status, meta, buttons, auto, updated, tier, error, grid, controls });
    for (const c of CHARTS) {
      const box = view.panels.get(c.key).section.querySelector(".host-chart");
      view.charts.set(c.key, charts.timeSeries(box, { unit: c.unit, label: c.title, stacked: Boolean(c.stacked), height: 180 }));
    }
    syncAuto();
  }

  function panel(key, title, note, body, extra) {
    const h = el("h3", { id: "host-panel-" + key }, title);
    const section = el("section", { className: "host-panel", dataset: { panel: key }, "aria-labelledby": h.id });
    const err = el("p", { className: "host-panel-error error", role: "status" });
    section.append(h);
    if (note) {
      section.append(el("p", { className: "host-note" }, note));
    }
    section.append(err, body);
    if (extra) {
      section.append(extra);
    }
    return { section, err, body, extra };
  }

  function setRange(key) {
    if (!view || key === view.range.key) {
      return;
    }
    view.range = rangeOf(key);
    history.replaceState(null, "", "#/host/" + encodeURIComponent(view.id) + "/" + view.range.key);
    for (const b of view.buttons) {
      b.setAttribute("aria-pressed", String(b.dataset.range === key));
    }
    syncAuto();
    refresh(true);
  }

  function syncAuto() {
    const on = view.range.s <= AUTO_REFRESH_MAX_S;
    view.auto.disabled = !on;
    view.auto.parentElement.title = on ? "" : "Only ranges up to 24 h refresh by themselves";
  }

  function selector() {
    return "agent_id=" + JSON.stringify(view.id);
  }

  // The window, step and times of a load: evaluation times end now and go back by steps;
  // the first step or the tier's resolution is left out, so that the earliest time is
  // still held by the tier meant for the range (docs/console.md#charts).
  function timing() {
    const to = Date.now();
    const from = to - view.range.s * 1000;
    const width = Math.max(100, (view.grid.querySelector(".host-chart canvas") || view.grid).clientWidth - 60);
    const step = Math.max(charts.step(from, to, width), view.range.res);
    const pad = step + view.range.res;
    const n = Math.max(1, Math.floor((view.range.s - pad) / step));
    const end = to / 1000;
    return { from, to, step, start: end - n * step, end, w: Math.max(step, MIN_WINDOW_S) + "s" };
  }

  async function runPool(tasks) {
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) {
        const task = tasks[next];
        next += 1;
        await task();
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  }

  // One load of everything; `first` after a start or a range change (it times the load).
  async function refresh(first) {
    const v = view;
    v.run += 1;
    const run = v.run;
    const current = () => view === v && v.run === run;
    const t0 = performance.now();
    v.busy = true;
    const t = timing();
    try {
      // The header and the panels at once; a host that turns out not to exist hides
      // the panels (their queries found nothing anyway).
      const head = header(t, current).catch((e) => {
        if (current()) {
          v.error.textContent = "The host could not be read: " + e.message;
        }
        return true;
      });
      const tasks = CHARTS.map((c) => () => chartPanel(c, t, current));
      tasks.push(() => smartPanel(current), () => systemdPanel(current), () => checksPanel(current));
      const [known] = await Promise.all([head, runPool(tasks)]);
      if (!current() || !known) {
        return;
      }
      if (current()) {
        v.updated.textContent = "Updated at " + new Date().toLocaleTimeString();
        if (first) {
          v.section.dataset.loadMs = String(Math.round(performance.now() - t0));
        }
        v.section.dataset.loaded = String(run);
      }
    } finally {
      if (current()) {
        v.busy = false;
      }
    }
  }

  function guard(p, current, body) {
    return body().then(
      () => { if (current()) { p.err.textContent = ""; } },
      (e) => { if (current()) { p.err.textContent = "Could not be read: " + e.message; p.section.hidden = false; } },
    );
  }

  async function chartPanel(c, t, current) {
    const p = view.panels.get(c.key);
    await guard(p, current, async () => {
      const parts = c.parts(selector(), t.w);
      const answers = await Promise.all(parts.map(([expr], k) => rangeQuery(expr, t, c.key === "cpu" && k === 0)));
      if (!current()) {
        return;
      }
      const stats = answers[0].stats;
      if (stats) {
        view.tier.textContent = "Step " + charts.format(t.step, "seconds") + ", read from the "
          + (stats.tier || "raw") + " tier";
        view.tier.dataset.tier = stats.tier || "raw";
      }
      // Series keep the order of the parts (or, with `byName`, by name: a device's in
      // and out side by side); within a part, `order` or by name.
      const series = answers.flatMap((data, k) => {
        const name = parts[k][1];
        const list = charts.fromMatrix(data, typeof name === "function" ? name : () => name);
        const rank = (x) => (c.order && c.order.includes(x.name) ? c.order.indexOf(x.name) : Infinity);
        return list.sort((x, y) => rank(x) - rank(y) || x.name.localeCompare(y.name, undefined, { numeric: true }));
      });
      if (c.byName) {
        series.sort((x, y) => x.name.localeCompare(y.name, undefined, { numeric: true }));
      }
      p.section.hidden = !c.core && series.length === 0;
      view.charts.get(c.key).update({ from: t.from, to: t.to, series });
      if (c.table === "fs") {
        await fsTable(p, series, current);
      }
    });
  }

  // A range query's data; with `stats`, its `stats` too (which tier the server read).
  async function rangeQuery(expr, t, stats) {
    if (!stats) {
      return ui.queryRange(expr, t.start, t.end, t.step);
    }
    const path = "/api/v1/query_range?query=" + encodeURIComponent(expr)
      + "&start=" + t.start + "&end=" + t.end + "&step=" + t.step + "&stats=all";
    return (await ui.getJson(path)).data;
  }

  // The instant value of `expr` per series, as [metric, number] pairs.
  async function instant(expr) {
    return (await ui.query(expr)).map((r) => [r.metric, Number(r.value[1])]);
  }

  // Host name, status since when, OS: false when no series has this agent id.
  async function header(t, current) {
    const s = selector();
    const [up, seen, os, uname, boot, history] = await Promise.all([
      instant("up{" + s + "}"),
      instant("sysward_agent_last_seen_timestamp_seconds{" + s + "}"),
      instant("last_over_time(node_os_info{" + s + "}[1d])"),
      instant("last_over_time(node_uname_info{" + s + "}[1d])"),
      instant("last_over_time(node_boot_time_seconds{" + s + "}[1d])"),
      ui.queryRange("up{" + s + "}", t.start, t.end, t.step).catch(() => null),
    ]);
    if (!current()) {
      return false;
    }
    let name = up.length ? up[0][0].instance : null;
    if (!up.length) {
      const series = await ui.getJson("/api/v1/series?match[]=" + encodeURIComponent("{" + s + "}") + "&limit=1");
      if (!current()) {
        return false;
      }
      if (!series.data.length) {
        missing("No such host: no agent with id \u201c" + view.id + "\u201d has sent data that is still kept.");
        return false;
      }
      name = series.data[0].instance || null;
    }
    name = name || (uname.length && uname[0][0].nodename) || view.id;
    view.title.textContent = name;
    document.title = name + " \u2014 Host \u2014 Sysward";
    view.error.textContent = "";
    statusLine(up, seen, history, t);
    metaLine(os, uname, boot);
    return true;
  }

  function statusLine(up, seen, history, t) {
    const st = view.status;
    if (!up.length) {
      st.textContent = "status unknown";
      st.className = "host-status status-silent";
      return;
    }
    const isUp = up[0][1] === 1;
    st.className = "host-status status-" + (isUp ? "up" : "down");
    if (!isUp) {
      const last = seen.length ? seen[0][1] * 1000 : null;
      st.textContent = last ? "down, silent since " + ui.time(last) : "down";
      return;
    }
    st.textContent = "up" + sinceText(history, t);
  }

  // Since when `up` has been 1, from its history over the range shown: the first point of
  // its last run of ones, unless that run starts with the range.
  function sinceText(history, t) {
    const points = history && history.result && history.result[0] ? history.result[0].values : [];
    if (!points.length) {
      return "";
    }
    let k = points.length - 1;
    while (k > 0 && Number(points[k - 1][1]) === 1) {
      k -= 1;
    }
    const first = points[k][0];
    return k === 0 && first - t.start < 2 * t.step
      ? " for the whole range shown"
      : " since " + ui.time(first * 1000);
  }

  function metaLine(os, uname, boot) {
    const parts = ["agent id " + view.id];
    if (os.length) {
      parts.push(os[0][0].pretty_name || ((os[0][0].name || os[0][0].id || "") + " " + (os[0][0].version || "")).trim());
    }
    if (uname.length && uname[0][0].release) {
      parts.push("kernel " + uname[0][0].release + (uname[0][0].machine ? " (" + uname[0][0].machine + ")" : ""));
    }
    if (boot.length && boot[0][1] > 0) {
      parts.push("booted " + ui.time(boot[0][1] * 1000));
    }
    view.meta.textContent = parts.join(" \u00b7 ");
  }

  function missing(text) {
    view.error.textContent = text;
    view.grid.hidden = true;
    view.controls.hidden = true;
    view.status.textContent = "";
    view.title.textContent = "Unknown host";
    view.section.dataset.loaded = "missing";
  }

  // A least-squares line through the used share over the range (what predict_linear
  // computes; done here because rollup tiers do not answer predict_linear): when the line
  // reaches 100 %.
  function prediction(points) {
    const pts = points.filter((p) => Number.isFinite(p[1]));
    if (pts.length < 2 || pts[pts.length - 1][0] - pts[0][0] <= 0) {
      return "not enough data";
    }
    const n = pts.length;
    const mx = pts.reduce((a, p) => a + p[0], 0) / n;
    const my = pts.reduce((a, p) => a + p[1], 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const [x, y] of pts) {
      sxy += (x - mx) * (y - my);
      sxx += (x - mx) * (x - mx);
    }
    const slope = sxx > 0 ? sxy / sxx : 0; // share per ms
    const last = pts[n - 1];
    const now = my + slope * (last[0] - mx);
    if (now >= 1) {
      return "full";
    }
    if (!(slope > 0)) {
      return "not filling";
    }
    const days = (1 - now) / slope / 86400000;
    if (days > 3650) {
      return "not filling";
    }
    if (days < 1) {
      return "full in ~" + Math.max(1, Math.round(days * 24)) + " h";
    }
    return "full in ~" + Math.round(days) + (Math.round(days) === 1 ? " day" : " days");
  }

  async function fsTable(p, series, current) {
    const sizes = await instant("last_over_time(node_filesystem_size_bytes{" + selector() + "}[1h])");
    if (!current()) {
      return;
    }
    const sizeOf = new Map(sizes.map(([m, v]) => [m.mountpoint, v]));
    const rows = series.map((s) => {
      const used = [...s.points].reverse().find((q) => Number.isFinite(q[1]));
      const fill = prediction(s.points);
      return el("tr", { dataset: { mount: s.name } },
        el("th", { scope: "row" }, s.name),
        el("td", {}, s.metric.device || ""),
        el("td", {}, s.metric.fstype || ""),
        el("td", { className: "num" }, charts.format(sizeOf.get(s.metric.mountpoint), "bytes")),
        el("td", { className: "num" }, charts.format(used ? used[1] : NaN, "percent")),
        el("td", { className: "host-fill" + (fill.startsWith("full") ? " error" : "") }, fill));
    });
    p.extra.replaceChildren(rows.length ? table(
      "File systems: size, use and when each fills at the rate of the range shown",
      ["Mount point", "Device", "Type", "Size", "Used", "Fill prediction"], rows) : "");
  }

  function table(caption, heads, rows) {
    return el("div", { className: "host-table-wrap", tabIndex: 0, role: "region", "aria-label": caption },
      el("table", { className: "host-table" },
        el("caption", { className: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...rows)));
  }

  async function smartPanel(current) {
    const p = view.panels.get("smart");
    await guard(p, current, async () => {
      const s = selector();
      const [health, temp, info] = await Promise.all([
        instant("last_over_time(smartctl_device_smart_status{" + s + "}[1h])"),
        instant("last_over_time(smartctl_device_temperature{" + s + ",temperature_type=\"current\"}[1h])"),
        instant("last_over_time(smartctl_device{" + s + "}[1h])"),
      ]);
      if (!current()) {
        return;
      }
      const devices = new Map();
      const dev = (m) => {
        if (!devices.has(m.device)) {
          devices.set(m.device, { model: "", health: NaN, temp: NaN });
        }
        return devices.get(m.device);
      };
      info.forEach(([m]) => { dev(m).model = m.model_name || m.model_family || ""; });
      health.forEach(([m, v]) => { dev(m).health = v; });
      temp.forEach(([m, v]) => { dev(m).temp = v; });
      p.section.hidden = devices.size === 0;
      const rows = [...devices.entries()].sort().map(([name, d]) => el("tr", {},
        el("th", { scope: "row" }, name),
        el("td", {}, d.model),
        el("td", { className: d.health === 0 ? "error" : "" }, d.health === 1 ? "passed" : d.health === 0 ? "FAILED" : "unknown"),
        el("td", { className: "num" }, Number.isFinite(d.temp) ? d.temp + " \u00b0C" : "no data")));
      p.body.replaceChildren(table("SMART health and temperature per disk", ["Device", "Model", "Health", "Temperature"], rows));
    });
  }

  async function systemdPanel(current) {
    const p = view.panels.get("systemd");
    await guard(p, current, async () => {
      const units = await instant("node_systemd_unit_state{" + selector() + "} == 1");
      if (!current()) {
        return;
      }
      p.section.hidden = units.length === 0;
      const counts = {};
      for (const [m] of units) {
        counts[m.state] = (counts[m.state] || 0) + 1;
      }
      const failed = units.filter(([m]) => m.state === "failed").map(([m]) => m).sort((a, b) => a.name.localeCompare(b.name));
      const summary = el("p", { className: "host-units" }, units.length + " units: "
        + Object.keys(counts).sort().map((k) => counts[k] + " " + k).join(", "));
      const list = failed.length
        ? table("Failed units", ["Failed unit", "Type"], failed.map((m) => el("tr", {},
          el("th", { scope: "row", className: "error" }, m.name), el("td", {}, m.type || ""))))
        : el("p", {}, "No failed units.");
      p.body.replaceChildren(summary, list);
    });
  }

  async function checksPanel(current) {
    const p = view.panels.get("checks");
    await guard(p, current, async () => {
      const list = (await ui.getJson("/api/v1/checks?agent_id=" + encodeURIComponent(view.id))).data;
      if (!current()) {
        return;
      }
      if (!list.length) {
        p.body.replaceChildren(el("p", {}, "This host reports no checks."));
        return;
      }
      const rows = list.map((c) => {
        const output = el("td", { className: "host-output" }, c.output || "");
        if (c.long_output) {
          output.append(el("details", {}, el("summary", {}, "more"), el("pre", {}, c.long_output)));
        }
        return el("tr", { dataset: { check: c.check } },
          el("th", { scope: "row" }, c.check),
          el("td", { className: "check-state check-" + String(c.state).toLowerCase() }, c.state + (c.hard === false ? " (soft)" : "")),
          el("td", {}, ui.time(Date.parse(c.since))),
          el("td", {}, ui.time(Date.parse(c.last))),
          output);
      });
      p.body.replaceChildren(table("Checks: state, since when, last run and output",
        ["Check", "State", "Since", "Last result", "Output"], rows));
    });
  }

  return { title: "Host", nav: "fleet", start, stop };
})());
