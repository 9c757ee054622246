// The Fleet page (`#/fleet`, the first page): every host with its status, CPU, memory and fullest filesystem, and its
// firing alerts by severity. Everything comes from the public API with the session cookie
// (GET only, so no CSRF token): the query API for the figures, /api/v1/alerts for the
// alerts, and /api/v1/agents (admins only) for pending and revoked agents. Values reach
// the page through textContent only.
"use strict";

ui.register("fleet", (() => {
  const REFRESH_MS = 30000;
  // Each query's result is keyed by `agent_id`, the label the server puts on every series
  // an agent sends, and on `up` and the last-seen time it writes itself.
  const QUERIES = {
    up: "up",
    seen: "sysward_agent_last_seen_timestamp_seconds",
    cpu: '1 - avg by (agent_id) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    memory: "max by (agent_id) (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    disk: "max by (agent_id) (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)",
    os: "node_os_info",
    // The agents' `[agent.labels]`, for the search.
    labels: "sysward_agent_labels",
  };
  const STATUS_RANK = { down: 0, silent: 1, pending: 2, revoked: 3, up: 4 };
  const SEVERITIES = ["critical", "warning", "info"];
  const view = { hosts: [], sort: { key: "host", dir: 1 }, timer: null, busy: false, run: 0 };

  function el(id) {
    return document.getElementById(id);
  }

  const { getJson, query } = ui;

  function newHost(id) {
    return {
      id, name: id, labels: {}, status: "silent", since: null,
      cpu: NaN, memory: NaN, disk: NaN, alerts: {}, maintenance: false,
    };
  }

  function hostOf(map, id) {
    if (!map.has(id)) {
      map.set(id, newHost(id));
    }
    return map.get(id);
  }

  function eachSample(map, result, apply) {
    for (const s of result) {
      const id = s.metric.agent_id;
      if (id) {
        apply(hostOf(map, id), s.metric, Number(s.value[1]));
      }
    }
  }

  function applyUp(host, metric, value) {
    host.name = metric.instance || host.name;
    host.status = value === 1 ? "up" : "down";
    applyLabels(host, metric);
  }

  function applyLabels(host, metric) {
    for (const [k, v] of Object.entries(metric)) {
      if (k !== "__name__") {
        host.labels[k] = v;
      }
    }
  }

  function applyOs(host, metric) {
    for (const k of ["id", "version_id", "pretty_name"]) {
      if (metric[k]) {
        host.labels["os_" + k] = metric[k];
      }
    }
  }

  // Pending and revoked agents have no `up` (or a stale one): the agents list decides.
  function applyAgents(map, agents) {
    for (const a of agents) {
      const host = hostOf(map, a.id);
      host.name = a.hostname || host.name;
      host.labels.agent_id = a.id;
      if (a.status !== "approved") {
        host.status = a.status;
      }
      if (host.since === null && a.last_seen_ms) {
        host.since = a.last_seen_ms;
      }
    }
  }

  function applyAlerts(map, alerts) {
    const byName = new Map([...map.values()].map((h) => [h.name, h]));
    for (const a of alerts) {
      if (a.state !== "firing") {
        continue;
      }
      const host = map.get(a.labels.agent_id) || byName.get(a.labels.instance);
      if (host) {
        const severity = a.labels.severity || "other";
        host.alerts[severity] = (host.alerts[severity] || 0) + 1;
      }
    }
  }

  // In maintenance: an active window of kind maintenance (API-made or from the config)
  // whose matchers all hold for the host's labels (`silenceMatchers` is in silences.js).
  function applyMaintenance(map, windows) {
    const active = windows.filter((w) => w.kind === "maintenance" && w.active);
    for (const h of map.values()) {
      const labels = { ...h.labels, agent_id: h.id, instance: h.labels.instance || h.name };
      h.maintenance = active.some((w) => silenceMatchers.matchAll(w.matchers, labels));
    }
  }

  async function collect(role) {
    const names = Object.keys(QUERIES);
    const [results, alerts, agents, windows] = await Promise.all([
      Promise.all(names.map((n) => query(QUERIES[n]))),
      getJson("/api/v1/alerts"),
      role === "admin" ? getJson("/api/v1/agents") : Promise.resolve(null),
      getJson("/api/v1/silences"),
    ]);
    const r = Object.fromEntries(names.map((n, i) => [n, results[i]]));
    const map = new Map();
    eachSample(map, r.up, applyUp);
    eachSample(map, r.seen, (h, _m, v) => { h.since = v * 1000; });
    eachSample(map, r.cpu, (h, _m, v) => { h.cpu = v; });
    eachSample(map, r.memory, (h, _m, v) => { h.memory = v; });
    eachSample(map, r.disk, (h, _m, v) => { h.disk = v; });
    eachSample(map, r.os, applyOs);
    eachSample(map, r.labels, applyLabels);
    if (agents) {
      applyAgents(map, agents.data);
    }
    applyAlerts(map, alerts.data.alerts);
    applyMaintenance(map, windows.data);
    return [...map.values()];
  }

  const { percent } = ui;

  function statusText(h) {
    return baseStatusText(h) + (h.maintenance ? ", in maintenance" : "");
  }

  function baseStatusText(h) {
    if ((h.status === "down" || h.status === "silent") && h.since) {
      return h.status + ", silent since " + new Date(h.since).toLocaleString();
    }
    return h.status === "silent" ? "silent, never seen" : h.status;
  }

  function alertText(h) {
    const keys = Object.keys(h.alerts).sort((a, b) => rankSeverity(a) - rankSeverity(b));
    return keys.length ? keys.map((k) => h.alerts[k] + " " + k).join(", ") : "none";
  }

  function rankSeverity(s) {
    const i = SEVERITIES.indexOf(s);
    return i < 0 ? SEVERITIES.length : i;
  }

  function alertWeight(h) {
    return SEVERITIES.reduce((w, s, i) => w + (h.alerts[s] || 0) * 1000 ** (2 - i), 0)
      + Object.keys(h.alerts).filter((s) => !SEVERITIES.includes(s))
        .reduce((w, s) => w + h.alerts[s] / 1000, 0);
  }

  function sortValue(h, key) {
    switch (key) {
      case "host": return h.name.toLowerCase();
      case "status": return STATUS_RANK[h.status] ?? 5;
      case "alerts": return alertWeight(h);
      default: return Number.isFinite(h[key]) ? h[key] : -Infinity;
    }
  }

  function compare(a, b) {
    const { key, dir } = view.sort;
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    const c = x < y ? -1 : x > y ? 1 : a.name.localeCompare(b.name);
    return c * dir;
  }

  function matches(h, terms) {
    const labels = Object.entries(h.labels).map(([k, v]) => k + "=" + v);
    const text = [h.name, h.id, statusText(h), ...labels].join(" ").toLowerCase();
    return terms.every((t) => text.includes(t));
  }

  function cell(tag, text, className) {
    const c = document.createElement(tag);
    c.textContent = text;
    if (className) {
      c.className = className;
    }
    return c;
  }

  function usageCell(value, className) {
    const c = cell("td", "", className + " num");
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 1;
    meter.low = 0.8;
    meter.high = 0.9;
    meter.optimum = 0;
    if (Number.isFinite(value)) {
      meter.value = value;
      c.append(meter);
    }
    c.append(cell("span", percent(value), "value"));
    return c;
  }

  function hostCell(h) {
    const th = cell("th", "", "host");
    th.scope = "row";
    const name = ui.el("a", { className: "name", href: "#/host/" + encodeURIComponent(h.id) }, h.name);
    th.append(name, cell("span", h.id, "agent-id"));
    return th;
  }

  function row(h) {
    const tr = document.createElement("tr");
    tr.dataset.agent = h.id;
    tr.append(
      hostCell(h),
      cell("td", statusText(h), "status status-" + h.status),
      usageCell(h.cpu, "cpu"),
      usageCell(h.memory, "memory"),
      usageCell(h.disk, "disk"),
      cell("td", alertText(h), "alerts" + (Object.keys(h.alerts).length ? " firing" : "")),
    );
    return tr;
  }

  function emptyText(search) {
    if (view.hosts.length === 0) {
      return "No hosts yet: enrol an agent and its host appears here.";
    }
    return "No host matches \u201c" + search + "\u201d.";
  }

  function render() {
    const search = el("fleet-search").value.trim();
    const terms = search.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = view.hosts.filter((h) => matches(h, terms)).sort(compare);
    el("fleet-rows").replaceChildren(...shown.map(row));
    el("fleet-empty").hidden = shown.length > 0;
    el("fleet-empty").textContent = shown.length ? "" : emptyText(search);
    el("fleet-count").textContent = shown.length + " of " + view.hosts.length + " hosts";
  }

  function renderSort() {
    for (const th of document.querySelectorAll("#fleet-table thead th")) {
      const on = th.dataset.key === view.sort.key;
      if (on) {
        th.setAttribute("aria-sort", view.sort.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  function sortBy(key) {
    const numeric = !["host", "status"].includes(key);
    if (view.sort.key === key) {
      view.sort.dir = -view.sort.dir;
    } else {
      view.sort = { key, dir: numeric ? -1 : 1 };
    }
    renderSort();
    render();
  }

  async function refresh(role) {
    if (view.busy) {
      return;
    }
    view.busy = true;
    const run = view.run;
    try {
      const hosts = await collect(role);
      if (run === view.run) {
        view.hosts = hosts;
        el("fleet-error").textContent = "";
        el("fleet-updated").textContent = "Updated at " + new Date().toLocaleTimeString();
        render();
      }
    } catch (e) {
      if (run === view.run) {
        el("fleet-error").textContent = "The fleet could not be read: " + e.message;
      }
    } finally {
      view.busy = false;
    }
  }

  function start(role) {
    stop();
    refresh(role);
    view.timer = setInterval(() => refresh(role), REFRESH_MS);
  }

  function stop() {
    view.run += 1;
    view.busy = false;
    if (view.timer !== null) {
      clearInterval(view.timer);
      view.timer = null;
    }
    view.hosts = [];
    el("fleet-search").value = "";
    el("fleet-rows").replaceChildren();
    el("fleet-empty").hidden = true;
    for (const id of ["fleet-updated", "fleet-error", "fleet-count"]) {
      el(id).textContent = "";
    }
  }

  function init() {
    el("fleet-search").addEventListener("input", render);
    for (const th of document.querySelectorAll("#fleet-table thead th")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
  }

  return {
    title: "Fleet",
    section: "home",
    init,
    start: (_section, _params, session) => start(session.role),
    stop,
  };
})());
