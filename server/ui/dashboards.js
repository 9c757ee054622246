// Dashboards: the list (`#/dashboards`), one dashboard (`#/dashboard/ID[/PAGE]`) with its
// edit mode, and a public dashboard (`#/public/ID[/PAGE]`, no session needed).
//
// A dashboard is pages of widgets on a grid of 12 columns; each widget is a PromQL query
// (an alert summary's is an optional label matcher filter). Signed in, widgets read the
// query API and /api/v1/alerts with the session; a public dashboard reads only
// /ui/api/public/ID/widgets/WIDGET, which evaluates the stored query on the server.
// Saving sends the version the dashboard was read at: a 409 means someone else saved.
// Values reach the page through textContent only.
"use strict";

(() => {
  const { el } = ui;
  const RANGES = [["1h", 3600], ["3h", 10800], ["6h", 21600], ["12h", 43200],
    ["24h", 86400], ["7d", 604800], ["30d", 2592000]];
  const TYPES = {
    timeseries: "Time series", gauge: "Gauge", status: "Status", toplist: "Top list",
    heatmap: "Heat map", alerts: "Alert summary",
  };
  const UNITS = ["", "percent", "bytes", "bytes/s", "seconds"];
  const REFRESHES = [0, 10, 30, 60, 300, 900];
  const STATE_TEXT = { ok: "OK", warn: "Warning", crit: "Critical" };
  const ROW_PX = 48;

  // ---- Formatting and data shapes (chart.js, loaded before this page) ----

  const fmt = (v, unit) => charts.format(v, unit);

  // Names for the series of one answer: the labels that tell them apart (those all share
  // are left out), else the host, else the metric's name.
  function namer(result) {
    const metrics = (result || []).map((s) => s.metric || {});
    const keys = new Set(metrics.flatMap((m) => Object.keys(m)));
    const varying = [...keys].filter((k) => k !== "__name__"
      && metrics.some((m) => m[k] !== metrics[0][k]));
    return (metric) => {
      const m = metric || {};
      if (varying.length) {
        return varying.filter((k) => m[k] !== undefined).map((k) => k + "=" + m[k]).join(", ");
      }
      return m.instance || m.__name__ || "value";
    };
  }

  function fromMatrix(data) {
    return charts.fromMatrix(data, namer(data.result));
  }

  // An instant query's result as [{name, value}], a scalar as one unnamed sample.
  function samples(result) {
    if (Array.isArray(result) && result.length === 2 && typeof result[0] === "number") {
      return [{ name: "value", value: Number(result[1]) }];
    }
    const name = namer(result);
    return (result || []).map((s) => ({ name: name(s.metric), value: Number(s.value[1]) }));
  }

  function stateOf(value, thresholds) {
    let state = "ok";
    const sorted = [...(thresholds || [])].sort((a, b) => a.value - b.value);
    for (const t of sorted) {
      if (value >= t.value) {
        state = t.colour;
      }
    }
    return state;
  }

  // ---- Alert filters for signed-in views: `{severity="critical", job=~"web.*"}` ----

  function parseFilter(text) {
    const t = (text || "").trim();
    if (!t) {
      return [];
    }
    const inner = t.replace(/^\{/, "").replace(/\}$/, "");
    const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
    const out = [];
    let at = 0;
    while (at < inner.length) {
      re.lastIndex = at;
      const m = re.exec(inner);
      if (!m) {
        throw new Error("cannot read the filter " + JSON.stringify(t));
      }
      const value = m[3].replace(/\\(.)/g, "$1");
      const rx = m[2].includes("~") ? new RegExp("^(?:" + value + ")$") : null;
      out.push({ name: m[1], op: m[2], value, rx });
      at = re.lastIndex;
    }
    return out;
  }

  function matchesFilter(labels, filter) {
    return filter.every((m) => {
      const v = labels[m.name] || "";
      switch (m.op) {
        case "=": return v === m.value;
        case "!=": return v !== m.value;
        case "=~": return m.rx.test(v);
        default: return !m.rx.test(v);
      }
    });
  }

  // ---- Where widgets get their data ----

  function sessionSource() {
    return {
      range: (w, start, end, step) => ui.queryRange(w.query, start, end, step),
      instant: async (w) => ui.query(w.query),
      alerts: async (w) => {
        const filter = parseFilter(w.query);
        const all = (await ui.getJson("/api/v1/alerts")).data.alerts || [];
        const list = all.filter((a) => matchesFilter(a.labels || {}, filter));
        const counts = {};
        for (const a of list) {
          const sev = (a.labels && a.labels.severity) || "none";
          counts[a.state] = counts[a.state] || {};
          counts[a.state][sev] = (counts[a.state][sev] || 0) + 1;
        }
        return { counts, list };
      },
    };
  }

  function publicSource(id) {
    const base = (w) => "/ui/api/public/" + encodeURIComponent(id) + "/widgets/"
      + encodeURIComponent(w.id);
    return {
      range: async (w, start, end, step) => (await ui.getJson(
        base(w) + "?start=" + start + "&end=" + end + "&step=" + step)).data,
      instant: async (w) => (await ui.getJson(base(w) + "?time=" + Date.now() / 1000)).data.result,
      alerts: async (w) => ({ counts: (await ui.getJson(base(w))).data.counts, list: null }),
    };
  }

  // ---- Widgets ----

  function canvasColours() {
    const style = getComputedStyle(document.body);
    return {
      fg: style.getPropertyValue("--fg").trim() || "#1d2329",
      accent: style.getPropertyValue("--accent").trim() || "#1f5fa8",
      ok: "#2e8b47", warn: "#c77d00", crit: "#c62828",
    };
  }

  // A canvas filling the widget's body but `reserve` pixels kept for a line of text.
  function sizedCanvas(body, label, reserve) {
    const canvas = el("canvas", { role: "img", "aria-label": label });
    const width = Math.max(body.clientWidth, 100);
    const height = Math.max(body.clientHeight - reserve, 40);
    body.append(canvas);
    const ratio = window.devicePixelRatio || 1;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    return { canvas, ctx, width, height };
  }

  // The shared chart of a widget is made once and updated at each refresh.
  function drawTimeseries(body, w, data, view) {
    const opts = w.options || {};
    let chart = view.chartOf.get(body);
    if (!chart) {
      body.replaceChildren();
      chart = charts.timeSeries(body, {
        unit: opts.unit || "", label: w.title || "time series",
        // A line of the legend stays in the widget, under the plot.
        height: Math.max(body.clientHeight - 40, 80), stacked: Boolean(opts.stacked),
      });
      view.charts.push(chart);
      view.chartOf.set(body, chart);
    }
    chart.update(data);
  }

  function dropChart(view, body) {
    const chart = view.chartOf.get(body);
    if (chart) {
      chart.destroy();
      view.chartOf.delete(body);
      view.charts.splice(view.charts.indexOf(chart), 1);
    }
  }

  function drawGauge(body, w, list) {
    const opts = w.options || {};
    const s = list[0];
    const min = Number.isFinite(opts.min) ? opts.min : 0;
    const max = Number.isFinite(opts.max) ? opts.max : (opts.unit === "percent" ? 1 : 100);
    const state = stateOf(s.value, opts.thresholds);
    const text = fmt(s.value, opts.unit) + " \u2014 " + STATE_TEXT[state];
    const { ctx, width, height } = sizedCanvas(body, (w.title || "gauge") + ": " + text, 32);
    const c = canvasColours();
    const r = Math.max(Math.min(width / 2, height) - 12, 10);
    const cx = width / 2;
    const cy = height - 6;
    const frac = Math.min(Math.max((s.value - min) / (max - min), 0), 1);
    ctx.lineWidth = Math.max(r / 5, 6);
    ctx.strokeStyle = "rgba(127,127,127,0.3)";
    ctx.beginPath();
    ctx.arc(cx, cy, r, Math.PI, 2 * Math.PI);
    ctx.stroke();
    ctx.strokeStyle = c[state];
    ctx.beginPath();
    ctx.arc(cx, cy, r, Math.PI, Math.PI + frac * Math.PI);
    ctx.stroke();
    body.append(el("p", { className: "dash-gauge-value dash-" + state }, text));
    body.dataset.value = String(s.value);
  }

  function drawStatus(body, w, list) {
    const opts = w.options || {};
    const tiles = el("ul", { className: "dash-tiles" });
    for (const s of list) {
      const state = stateOf(s.value, opts.thresholds);
      tiles.append(el("li", { className: "dash-tile dash-" + state, dataset: { state } },
        el("span", { className: "dash-tile-name" }, s.name),
        el("strong", {}, STATE_TEXT[state]),
        el("span", {}, fmt(s.value, opts.unit))));
    }
    body.append(tiles);
  }

  function drawToplist(body, w, list) {
    const opts = w.options || {};
    const top = [...list].filter((s) => Number.isFinite(s.value))
      .sort((a, b) => b.value - a.value).slice(0, opts.n || 10);
    const hi = Math.max(...top.map((s) => Math.abs(s.value)), 1e-12);
    const rows = top.map((s) => el("tr", {},
      el("th", { scope: "row" }, s.name),
      el("td", { className: "num" }, fmt(s.value, opts.unit)),
      el("td", { className: "dash-bar-cell" },
        el("span", { className: "dash-topbar", style: { width: (Math.abs(s.value) / hi * 100).toFixed(1) + "%" } }))));
    body.append(el("table", { className: "dash-toplist" },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Series"), el("th", { scope: "col" }, "Value"),
        el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Bar")))),
      el("tbody", {}, ...rows)));
  }

  function drawHeatmap(body, w, data) {
    const opts = w.options || {};
    const series = data.series;
    const values = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const label = (w.title || "heat map") + ": " + series.length + " series from "
      + fmt(lo, opts.unit) + " to " + fmt(hi, opts.unit);
    const { ctx, width, height } = sizedCanvas(body, label, 28);
    const rowH = height / Math.max(series.length, 1);
    const span = Math.max(data.to - data.from, 1);
    const cellW = Math.max((data.stepMs / span) * width, 1);
    series.forEach((s, i) => {
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) {
          continue;
        }
        const f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        ctx.fillStyle = "hsl(" + Math.round(220 - 220 * f) + ", 70%, " + Math.round(70 - 25 * f) + "%)";
        ctx.fillRect(((t - data.from) / span) * width, i * rowH, cellW + 0.5, rowH - 1);
      }
    });
    body.append(el("p", { className: "dash-legend" }, "Blue " + fmt(lo, opts.unit) + " \u2192 red " + fmt(hi, opts.unit)));
  }

  function drawAlerts(body, w, info) {
    const tiles = el("ul", { className: "dash-tiles" });
    for (const state of ["firing", "pending"]) {
      const bySev = (info.counts || {})[state] || {};
      const total = Object.values(bySev).reduce((a, b) => a + b, 0);
      const detail = Object.entries(bySev).map(([sev, n]) => n + " " + sev).join(", ");
      const cls = state === "firing" && total ? "crit" : (total ? "warn" : "ok");
      tiles.append(el("li", { className: "dash-tile dash-" + cls, dataset: { state } },
        el("span", { className: "dash-tile-name" }, state === "firing" ? "Firing" : "Pending"),
        el("strong", {}, String(total)),
        el("span", {}, detail || "none")));
    }
    body.append(tiles);
    if (info.list && info.list.length) {
      body.append(el("ul", { className: "dash-alert-list" }, ...info.list.slice(0, 20).map((a) =>
        el("li", {}, (a.labels.alertname || "alert") + " \u2014 " + (a.labels.instance || a.labels.agent_id || "")
          + " (" + a.state + ", " + (a.labels.severity || "no severity") + ")"))));
    }
    body.dataset.series = String(Object.values(info.counts || {}).length);
  }

  function showError(body, text, view) {
    dropChart(view, body);
    body.replaceChildren(el("p", { className: "dash-widget-error", role: "status" }, text));
    body.dataset.state = "error";
  }

  // Reads a widget's data and draws it; errors and empty answers are shown inside it.
  async function loadWidget(view, w, body) {
    const [from, to] = view.span();
    try {
      if (w.type === "alerts") {
        const info = await view.source.alerts(w);
        body.replaceChildren();
        drawAlerts(body, w, info);
      } else if (w.type === "timeseries" || w.type === "heatmap") {
        const step = charts.step(from, to, Math.max(body.clientWidth, 100));
        const raw = await view.source.range(w, from / 1000, to / 1000, step);
        const data = { from, to, stepMs: step * 1000, series: fromMatrix(raw) };
        body.dataset.series = String(data.series.length);
        if (!data.series.length) {
          return showError(body, "No data for this query in the time range.", view);
        }
        if (w.type === "heatmap") {
          body.replaceChildren();
          drawHeatmap(body, w, data);
        } else {
          drawTimeseries(body, w, data, view);
        }
      } else {
        const list = samples(await view.source.instant(w));
        body.replaceChildren();
        body.dataset.series = String(list.length);
        if (!list.length) {
          return showError(body, "No data for this query now.", view);
        }
        ({ gauge: drawGauge, status: drawStatus, toplist: drawToplist })[w.type](body, w, list);
      }
      body.dataset.state = "ok";
    } catch (e) {
      showError(body, "Cannot show this widget: " + e.message, view);
    }
    return undefined;
  }

  // ---- The grid (read and edit) ----

  function placeStyle(w) {
    return {
      gridColumn: (w.x + 1) + " / span " + w.w,
      gridRow: (w.y + 1) + " / span " + w.h,
      minHeight: (w.h * ROW_PX) + "px",
    };
  }

  function renderGrid(view, container, page) {
    for (const c of view.charts.splice(0)) {
      c.destroy();
    }
    view.chartOf = new Map();
    const grid = el("div", { className: "dash-grid" });
    const editing = Boolean(view.editing);
    const widgets = [...page.widgets].sort((a, b) => a.y - b.y || a.x - b.x);
    for (const w of widgets) {
      const titleId = "dash-w-" + w.id;
      // Lists may scroll in their box: the keyboard can reach it.
      const scrolls = ["toplist", "status", "alerts"].includes(w.type);
      const body = el("div", {
        className: "dash-widget-body", dataset: { state: "loading" }, tabIndex: scrolls ? 0 : -1,
      },
        el("p", { className: "dash-loading" }, "Loading\u2026"));
      const article = el("article", {
        className: "dash-widget dash-type-" + w.type, style: placeStyle(w),
        dataset: { widgetId: w.id, type: w.type }, "aria-labelledby": titleId,
      }, el("h3", { id: titleId }, w.title || TYPES[w.type]));
      if (editing) {
        article.append(widgetTools(view, page, w));
      }
      article.append(body);
      grid.append(article);
      view.loaders.push(() => loadWidget(view, w, body));
    }
    if (!widgets.length) {
      grid.append(el("p", { className: "dash-empty" }, editing
        ? "No widget on this page yet: add one below."
        : "No widget on this page."));
    }
    container.append(grid);
  }

  // At most two widgets load at once: a public dashboard's reader gets two evaluations
  // at a time, and a big dashboard should not flood the query slots.
  async function refreshAll(view) {
    const queue = [...view.loaders];
    const worker = async () => {
      while (queue.length && !view.stopped) {
        await queue.shift()();
      }
    };
    await Promise.all([worker(), worker()]);
  }

  // ---- Edit mode ----

  function clampPlace(w) {
    w.w = Math.min(Math.max(w.w, 1), 12);
    w.h = Math.min(Math.max(w.h, 1), 12);
    w.x = Math.min(Math.max(w.x, 0), 12 - w.w);
    w.y = Math.max(w.y, 0);
  }

  // The buttons that arrange a widget; after a press the same button has the focus again,
  // so that a keyboard user can press it on.
  function widgetTools(view, page, w) {
    const name = w.title || TYPES[w.type];
    const act = (label, text, fn) => el("button", {
      type: "button", className: "dash-tool", "aria-label": label + " " + name, title: label,
      dataset: { tool: label },
      onclick: () => {
        fn();
        clampPlace(w);
        view.rerender();
        const again = view.section.querySelector(".dash-widget[data-widget-id=\"" + CSS.escape(w.id)
          + "\"] [data-tool=\"" + label + "\"]");
        if (again) {
          again.focus();
        }
      },
    }, text);
    return el("div", { className: "dash-tools", role: "group", "aria-label": "Arrange " + name },
      dragHandle(view, w, "dash-move", "Drag to move", (s, dx, dy) => ({ ...s, x: s.x + dx, y: s.y + dy })),
      act("Move left", "\u2190", () => { w.x -= 1; }),
      act("Move right", "\u2192", () => { w.x += 1; }),
      act("Move up", "\u2191", () => { w.y -= 1; }),
      act("Move down", "\u2193", () => { w.y += 1; }),
      act("Narrower", "Narrower", () => { w.w -= 1; }),
      act("Wider", "Wider", () => { w.w += 1; }),
      act("Shorter", "Shorter", () => { w.h -= 1; }),
      act("Taller", "Taller", () => { w.h += 1; }),
      el("button", { type: "button", className: "dash-tool", onclick: () => view.editWidget(page, w) }, "Edit"),
      act("Remove", "Remove", () => {
        page.widgets.splice(page.widgets.indexOf(w), 1);
      }),
      dragHandle(view, w, "dash-resize", "Drag to resize", (s, dx, dy) => ({ ...s, w: s.w + dx, h: s.h + dy })));
  }

  // A handle for the mouse or a finger (the buttons do the same from the keyboard): the
  // widget follows in whole grid cells, and is placed when the pointer is let go.
  function dragHandle(view, w, className, title, placed) {
    const handle = el("span", { className: "dash-handle " + className, title, "aria-hidden": "true" },
      className === "dash-move" ? "\u2725" : "\u21F2");
    handle.addEventListener("pointerdown", (down) => {
      down.preventDefault();
      const article = handle.closest(".dash-widget");
      const grid = handle.closest(".dash-grid");
      const gap = parseFloat(getComputedStyle(grid).rowGap) || 0;
      const colW = (grid.clientWidth + gap) / 12;
      const rowH = ROW_PX + gap;
      const start = { x: w.x, y: w.y, w: w.w, h: w.h };
      const at = (e) => {
        const p = placed(start, Math.round((e.clientX - down.clientX) / colW),
          Math.round((e.clientY - down.clientY) / rowH));
        clampPlace(p);
        return p;
      };
      handle.setPointerCapture(down.pointerId);
      const move = (e) => Object.assign(article.style, placeStyle(at(e)));
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", (e) => {
        handle.removeEventListener("pointermove", move);
        Object.assign(w, at(e));
        view.rerender();
      }, { once: true });
    });
    return handle;
  }

  function labelled(id, text, input) {
    input.id = id;
    return el("div", { className: "dash-field" }, el("label", { for: id }, text), input);
  }

  function thresholdsText(list) {
    return (list || []).map((t) => t.value + ":" + t.colour).join(", ");
  }

  function parseThresholds(text) {
    const out = [];
    for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [value, colour] = part.split(":").map((s) => s.trim());
      if (!Number.isFinite(Number(value)) || !["ok", "warn", "crit"].includes(colour)) {
        throw new Error("thresholds: write them as value:ok|warn|crit, e.g. 0.8:warn, 0.9:crit (not " + JSON.stringify(part) + ")");
      }
      out.push({ value: Number(value), colour });
    }
    return out;
  }

  // The form that adds a widget (`w` null) or changes one.
  function widgetForm(view, page, w, done) {
    const o = (w && w.options) || {};
    const type = el("select", {}, ...Object.entries(TYPES).map(([k, v]) =>
      el("option", { value: k, selected: w ? w.type === k : k === "timeseries" }, v)));
    const title = el("input", { value: w ? w.title : "", maxLength: 200 });
    const query = el("textarea", { value: w ? w.query : "", rows: 2, spellcheck: false });
    const unit = el("select", {}, ...UNITS.map((u) => el("option", { value: u, selected: (o.unit || "") === u }, u || "none")));
    const min = el("input", { type: "number", step: "any", value: o.min ?? "" });
    const max = el("input", { type: "number", step: "any", value: o.max ?? "" });
    const thresholds = el("input", { value: thresholdsText(o.thresholds), placeholder: "0.8:warn, 0.9:crit" });
    const n = el("input", { type: "number", min: 1, max: 100, value: o.n ?? "" });
    const problem = el("p", { className: "error", role: "status" });
    const form = el("form", { className: "dash-widget-form", "aria-label": w ? "Edit widget" : "Add a widget" },
      el("h3", {}, w ? "Edit widget" : "Add a widget"),
      labelled("dash-f-type", "Type", type),
      labelled("dash-f-title", "Title", title),
      labelled("dash-f-query", "Query (PromQL; for an alert summary an optional filter such as {severity=\"critical\"})", query),
      labelled("dash-f-unit", "Unit", unit),
      labelled("dash-f-min", "Minimum (gauge)", min),
      labelled("dash-f-max", "Maximum (gauge)", max),
      labelled("dash-f-thresholds", "Thresholds (gauge, status)", thresholds),
      labelled("dash-f-n", "Rows (top list)", n),
      problem,
      el("div", { className: "dash-buttons" },
        el("button", { type: "submit" }, w ? "Apply" : "Add widget"),
        el("button", { type: "button", className: "secondary", onclick: () => done() }, "Cancel")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      try {
        const options = {};
        if (unit.value) {
          options.unit = unit.value;
        }
        for (const [key, input] of [["min", min], ["max", max], ["n", n]]) {
          if (input.value !== "") {
            options[key] = Number(input.value);
          }
        }
        const ts = parseThresholds(thresholds.value);
        if (ts.length) {
          options.thresholds = ts;
        }
        const target = w || newWidget(view, page, type.value);
        Object.assign(target, { type: type.value, title: title.value, query: query.value, options });
        if (!w) {
          page.widgets.push(target);
        }
        done();
      } catch (e) {
        problem.textContent = e.message;
      }
    });
    return form;
  }

  function newWidget(view, page, type) {
    const ids = new Set(view.draft.pages.flatMap((p) => p.widgets.map((x) => x.id)));
    let i = ids.size + 1;
    while (ids.has("w" + i)) {
      i += 1;
    }
    const bottom = page.widgets.reduce((m, x) => Math.max(m, x.y + x.h), 0);
    return { id: "w" + i, type, title: "", query: "", x: 0, y: bottom, w: 6, h: type === "gauge" ? 4 : 5, options: {} };
  }

  function settingsForm(view) {
    const d = view.draft;
    const ownerOrAdmin = view.dash.owner === ui.session().user || ui.roleAtLeast("admin");
    const title = el("input", { value: d.title, required: true, maxLength: 200, oninput: () => { d.title = title.value; } });
    const refresh = el("select", { onchange: () => { d.refresh_seconds = Number(refresh.value); } },
      ...REFRESHES.map((s) => el("option", { value: s, selected: d.refresh_seconds === s }, s ? s + " s" : "off")));
    const range = el("select", { onchange: () => { d.time_range = range.value; } },
      ...RANGES.map(([k]) => el("option", { value: k, selected: d.time_range === k }, k)));
    const editors = el("input", {
      value: d.editors.join(", "), disabled: !ownerOrAdmin, placeholder: "user names, comma separated",
      oninput: () => { d.editors = editors.value.split(",").map((s) => s.trim()).filter(Boolean); },
    });
    const all = el("input", { type: "checkbox", id: "dash-s-all", checked: d.all_editors, disabled: !ownerOrAdmin, onchange: () => { d.all_editors = all.checked; } });
    return el("fieldset", { className: "dash-settings" }, el("legend", {}, "Dashboard"),
      labelled("dash-s-title", "Title", title),
      labelled("dash-s-refresh", "Refresh", refresh),
      labelled("dash-s-range", "Default time range", range),
      labelled("dash-s-editors", "Editors", editors),
      el("div", { className: "dash-field dash-check" }, all, el("label", { for: "dash-s-all" }, "Every editor may change it")),
    );
  }

  // ---- One dashboard page (signed in, or public) ----

  function dashboardView(section, params, isPublic) {
    const view = {
      id: params[0], pageIndex: Math.max(Number(params[1] || 1) - 1, 0), dash: null, draft: null,
      editing: false, range: null, timer: null, charts: [], chartOf: new Map(), loaders: [],
      stopped: false,
      source: isPublic ? publicSource(params[0]) : sessionSource(),
      status: el("p", { className: "dash-status", role: "status", "aria-live": "polite" }),
    };
    view.span = () => {
      const seconds = (RANGES.find(([k]) => k === view.range) || RANGES[0])[1];
      const to = Date.now();
      return [to - seconds * 1000, to];
    };
    view.current = () => view.editing ? view.draft : view.dash;
    view.rerender = () => render(view, section, isPublic);
    view.editWidget = (page, w) => {
      view.form = widgetForm(view, page, w, () => {
        view.form = null;
        view.rerender();
      });
      view.rerender();
      view.form.querySelector("select, input").focus();
    };
    return view;
  }

  function schedule(view) {
    clearInterval(view.timer);
    const seconds = view.current().refresh_seconds;
    if (seconds > 0 && !view.editing) {
      view.timer = setInterval(() => refreshAll(view), seconds * 1000);
    }
  }

  function tabs(view, d, isPublic) {
    const bar = el("div", { className: "dash-tabs", role: "tablist", "aria-label": "Pages" });
    d.pages.forEach((p, i) => {
      bar.append(el("button", {
        type: "button", role: "tab", "aria-selected": String(i === view.pageIndex),
        className: "dash-tab", onclick: () => {
          view.pageIndex = i;
          const base = isPublic ? "#/public/" : "#/dashboard/";
          history.replaceState(null, "", base + encodeURIComponent(view.id) + "/" + (i + 1));
          view.rerender();
        },
      }, p.title));
    });
    return bar;
  }

  function pageTools(view) {
    const d = view.draft;
    const page = d.pages[view.pageIndex];
    const name = el("input", { value: page.title, maxLength: 200, oninput: () => { page.title = name.value; } });
    return el("div", { className: "dash-page-tools" },
      labelled("dash-p-title", "Page title", name),
      el("button", { type: "button", className: "secondary", onclick: () => {
        d.pages.push({ title: "Page " + (d.pages.length + 1), widgets: [] });
        view.pageIndex = d.pages.length - 1;
        view.rerender();
      } }, "Add page"),
      el("button", { type: "button", className: "secondary", disabled: d.pages.length < 2, onclick: () => {
        d.pages.splice(view.pageIndex, 1);
        view.pageIndex = 0;
        view.rerender();
      } }, "Remove page"),
      el("button", { type: "button", id: "dash-add-widget", onclick: () => view.editWidget(page, null) }, "Add widget"));
  }

  async function save(view) {
    const d = view.draft;
    const body = {
      title: d.title, editors: d.editors, all_editors: d.all_editors, refresh_seconds: d.refresh_seconds,
      time_range: d.time_range, pages: d.pages, version: view.dash.version,
    };
    try {
      const allowed = view.dash.public_dashboards;
      view.dash = await ui.send("PUT", "/api/v1/dashboards/" + encodeURIComponent(view.id), body);
      view.dash.public_dashboards = allowed;
      view.editing = false;
      view.form = null;
      view.rerender();
      view.status.textContent = "Saved (version " + view.dash.version + ").";
    } catch (e) {
      if (/someone else saved/.test(e.message)) {
        view.status.replaceChildren(el("span", { className: "error" }, e.message + " "),
          el("button", { type: "button", onclick: () => load(view, view.section, false) }, "Reload"));
      } else {
        view.status.replaceChildren(el("span", { className: "error" }, "Not saved: " + e.message));
      }
    }
  }

  function shareTools(view) {
    const link = location.origin + "/ui/#/dashboard/" + encodeURIComponent(view.id);
    const out = el("div", { className: "dash-share" });
    const shown = el("output", { className: "dash-link" }, link);
    out.append(el("button", { type: "button", className: "secondary", onclick: async () => {
      try {
        await navigator.clipboard.writeText(link);
        view.status.textContent = "Link copied.";
      } catch (_) {
        view.status.textContent = "Copy the link shown.";
      }
    } }, "Copy link"), shown);
    if (ui.roleAtLeast("admin")) {
      const publicUrl = location.origin + "/ui/#/public/" + encodeURIComponent(view.id);
      const box = el("input", { type: "checkbox", id: "dash-public", checked: view.dash.public, onchange: async () => {
        try {
          const allowed = view.dash.public_dashboards;
          view.dash = await ui.send("PUT", "/api/v1/dashboards/" + encodeURIComponent(view.id) + "/public", { public: box.checked });
          view.dash.public_dashboards = allowed;
          view.rerender();
        } catch (e) {
          box.checked = view.dash.public;
          view.status.replaceChildren(el("span", { className: "error" }, e.message));
        }
      } });
      out.append(el("span", { className: "dash-check" }, box, el("label", { for: "dash-public" }, "Public")));
      if (view.dash.public) {
        out.append(el("a", { href: publicUrl, className: "dash-public-link" }, publicUrl));
      } else if (!view.dash.public_dashboards) {
        out.append(el("span", { className: "dash-note" }, "(public dashboards are off: [ui] public_dashboards)"));
      }
    }
    return out;
  }

  function render(view, section, isPublic) {
    view.loaders = [];
    const d = view.current();
    view.pageIndex = Math.min(view.pageIndex, d.pages.length - 1);
    const page = d.pages[view.pageIndex];
    const rangeSel = el("select", { id: "dash-range", onchange: () => {
      view.range = rangeSel.value;
      view.rerender();
    } }, ...RANGES.map(([k]) => el("option", { value: k, selected: view.range === k }, k)));
    const head = el("div", { className: "dash-head" },
      el("h2", {}, d.title),
      el("div", { className: "dash-controls" },
        el("label", { for: "dash-range" }, "Time range"), rangeSel,
        el("span", { className: "dash-refresh" }, d.refresh_seconds ? "Refresh every " + d.refresh_seconds + " s" : "No auto-refresh")));
    const nodes = [head];
    if (!isPublic) {
      const buttons = el("div", { className: "dash-buttons" });
      if (view.editing) {
        buttons.append(
          el("button", { type: "button", id: "dash-save", onclick: () => save(view) }, "Save"),
          el("button", { type: "button", className: "secondary", onclick: () => {
            view.editing = false;
            view.form = null;
            view.rerender();
          } }, "Cancel"));
      } else if (view.dash.can_edit) {
        buttons.append(el("button", { type: "button", id: "dash-edit", onclick: () => {
          view.draft = JSON.parse(JSON.stringify(view.dash));
          view.editing = true;
          view.rerender();
        } }, "Edit"));
      }
      if (view.dash.can_delete && !view.editing) {
        buttons.append(el("button", { type: "button", className: "secondary", onclick: async () => {
          if (!window.confirm("Delete the dashboard " + JSON.stringify(view.dash.title) + "?")) {
            return;
          }
          try {
            await ui.send("DELETE", "/api/v1/dashboards/" + encodeURIComponent(view.id));
            location.hash = "#/dashboards";
          } catch (e) {
            view.status.textContent = e.message;
          }
        } }, "Delete"));
      }
      nodes.push(el("div", { className: "dash-bar" }, buttons, shareTools(view)));
      nodes.push(el("p", { className: "dash-owner" }, "Owner " + view.dash.owner
        + (view.dash.all_editors ? "; every editor may change it" : (view.dash.editors.length ? "; editors " + view.dash.editors.join(", ") : ""))));
    }
    if (view.editing) {
      nodes.push(settingsForm(view));
    }
    nodes.push(view.status);
    if (d.pages.length > 1 || view.editing) {
      nodes.push(tabs(view, d, isPublic));
    }
    if (view.editing) {
      nodes.push(pageTools(view));
    }
    section.replaceChildren(...nodes);
    renderGrid(view, section, page);
    if (view.form) {
      section.append(view.form);
    }
    schedule(view);
    refreshAll(view);
  }

  async function load(view, section, isPublic) {
    view.section = section;
    try {
      const path = isPublic
        ? "/ui/api/public/" + encodeURIComponent(view.id)
        : "/api/v1/dashboards/" + encodeURIComponent(view.id);
      const dash = await ui.getJson(path);
      if (view.stopped) {
        return;
      }
      view.dash = dash;
      view.editing = false;
      view.form = null;
      view.range = view.range || dash.time_range;
      render(view, section, isPublic);
    } catch (e) {
      section.replaceChildren(el("h2", {}, "Dashboard"),
        el("p", { className: "error", role: "status" }, e.message));
    }
  }

  function dashboardPage(isPublic) {
    let view = null;
    return {
      title: "Dashboard", nav: "dashboards", public: isPublic,
      start(section, params) {
        view = dashboardView(section, params, isPublic);
        section.append(el("p", {}, "Loading\u2026"));
        load(view, section, isPublic);
      },
      stop() {
        if (view) {
          view.stopped = true;
          clearInterval(view.timer);
          for (const c of view.charts.splice(0)) {
            c.destroy();
          }
        }
        view = null;
      },
    };
  }

  ui.register("dashboard", dashboardPage(false));
  ui.register("public", dashboardPage(true));

  // ---- The list ----

  ui.register("dashboards", (() => {
    let stopped = false;
    async function create(title, problem) {
      try {
        const d = await ui.send("POST", "/api/v1/dashboards", {
          title, refresh_seconds: 60, time_range: "1h", pages: [{ title: "Main", widgets: [] }],
        });
        location.hash = "#/dashboard/" + encodeURIComponent(d.id);
      } catch (e) {
        problem.textContent = e.message;
      }
    }
    return {
      title: "Dashboards",
      async start(section) {
        stopped = false;
        const status = el("p", { role: "status", "aria-live": "polite" }, "Loading\u2026");
        section.append(el("h2", { id: "dash-list-title" }, "Dashboards"), status);
        let answer;
        try {
          answer = await ui.getJson("/api/v1/dashboards");
        } catch (e) {
          status.className = "error";
          status.textContent = e.message;
          return;
        }
        if (stopped) {
          return;
        }
        status.textContent = answer.dashboards.length + " dashboards";
        if (answer.can_create) {
          const title = el("input", { id: "dash-new-title", required: true, maxLength: 200 });
          const problem = el("p", { className: "error", role: "status" });
          const form = el("form", { className: "dash-new", "aria-label": "New dashboard" },
            el("label", { for: "dash-new-title" }, "New dashboard"), title,
            el("button", { type: "submit" }, "Create"), problem);
          form.addEventListener("submit", (event) => {
            event.preventDefault();
            create(title.value, problem);
          });
          section.append(form);
        }
        const rows = answer.dashboards.map((d) => {
          const link = "#/dashboard/" + encodeURIComponent(d.id);
          const pub = d.public
            ? el("a", { href: "#/public/" + encodeURIComponent(d.id) }, "public link")
            : "no";
          return el("tr", { dataset: { id: d.id } },
            el("th", { scope: "row" }, el("a", { href: link }, d.title)),
            el("td", {}, d.owner),
            el("td", {}, d.all_editors ? "every editor" : (d.editors.join(", ") || "\u2014")),
            el("td", {}, pub),
            el("td", {}, ui.time(d.updated_ms)));
        });
        section.append(el("div", { className: "table-wrap" }, el("table", { className: "dash-list", "aria-labelledby": "dash-list-title" },
          el("thead", {}, el("tr", {}, ...["Title", "Owner", "Editors", "Public", "Updated"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, ...rows))));
      },
      stop() {
        stopped = true;
      },
    };
  })());
})();
