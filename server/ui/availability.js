// The Availability page (`#/availability`): uptime by UTC calendar month, month over
// month, for every host and every service (checks and systemd units), from the monthly
// rollup tier. One instant query per month and kind, each grouped by agent and service,
// evaluated at the month's end with `tier=1mo`: a monthly rollup record keeps the count
// and sum of the month's samples, so `avg_over_time` of a 0/1 series is its uptime
// exactly, whatever the raw and finer tiers still hold (see docs/console.md).
"use strict";

ui.register("availability", (() => {
  const DAY_MS = 86400000;
  const KINDS = {
    hosts: (d) => `avg by (agent_id, instance) (avg_over_time(up[${d}d]))`,
    checks: (d) => `avg by (agent_id, instance, check) (avg_over_time(sysward_check_up[${d}d]))`,
    units: (d) => "avg by (agent_id, instance, name) "
      + `(avg_over_time(node_systemd_unit_state{state="active"}[${d}d]))`,
  };
  const MONTH_CHOICES = [3, 6, 12];
  const view = { root: null, run: 0, months: 12 };
  const { el } = ui;

  // The last `n` UTC calendar months, oldest first, the current one (to date) last.
  function monthsBack(n, nowMs) {
    const now = new Date(nowMs);
    const out = [];
    for (let i = n - 1; i >= 0; i -= 1) {
      const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1);
      const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i + 1, 1);
      const label = new Date(start).toLocaleDateString(undefined,
        { year: "numeric", month: "short", timeZone: "UTC" });
      out.push({ start, end, days: Math.round((end - start) / DAY_MS), label, current: i === 0 });
    }
    return out;
  }

  // Evaluated at the month's end (in the future for the current month: the window then
  // holds the month's record to date and nothing of the month before).
  async function monthly(expr, month) {
    const path = "/api/v1/query?query=" + encodeURIComponent(expr)
      + "&time=" + month.end / 1000 + "&tier=1mo";
    return (await ui.getJson(path)).data.result;
  }

  function rowOf(rows, key, name, host, kind) {
    if (!rows.has(key)) {
      rows.set(key, { key, name, host, kind, values: [] });
    }
    return rows.get(key);
  }

  // Results of each month into rows keyed by agent (hosts) or agent and service.
  function collect(months, results) {
    const hosts = new Map();
    const services = new Map();
    months.forEach((_m, i) => {
      for (const s of results.hosts[i]) {
        const m = s.metric;
        const row = rowOf(hosts, m.agent_id, m.instance || m.agent_id, m.agent_id, "host");
        row.name = m.instance || row.name;
        row.values[i] = Number(s.value[1]);
      }
      for (const [kind, label] of [["checks", "check"], ["units", "name"]]) {
        for (const s of results[kind][i]) {
          const m = s.metric;
          const service = m[label] || "";
          const row = rowOf(services, kind + "|" + m.agent_id + "|" + service,
            service, m.instance || m.agent_id, kind === "checks" ? "check" : "systemd unit");
          row.host = m.instance || row.host;
          row.values[i] = Number(s.value[1]);
        }
      }
    });
    return { hosts: sorted([...hosts.values()]), services: sorted([...services.values()]) };
  }

  // Worst first: by the lowest month shown; rows without any figure last, then by name.
  function sorted(rows) {
    const worst = (r) => Math.min(...r.values.filter(Number.isFinite));
    return rows.sort((a, b) => worst(a) - worst(b)
      || (a.host + a.name).localeCompare(b.host + b.name));
  }

  // "▲ +0.4 pt" against the month before, in words for screen readers too.
  function change(value, before, beforeLabel) {
    if (!Number.isFinite(value) || !Number.isFinite(before)) {
      return null;
    }
    const points = (value - before) * 100;
    const shown = Math.abs(points) < 0.05 ? 0 : points;
    const [mark, word, cls] = shown > 0 ? ["\u25B2 +", "up", "better"]
      : shown < 0 ? ["\u25BC \u2212", "down", "worse"] : ["= ", "same as", "same"];
    return el("span", { className: "availability-change " + cls },
      mark + Math.abs(shown).toFixed(1) + " pt",
      el("span", { className: "visually-hidden" },
        " (" + word + (shown === 0 ? " " : " from ") + beforeLabel + ")"));
  }

  function cell(row, i, months) {
    const v = row.values[i];
    if (!Number.isFinite(v)) {
      return el("td", { className: "availability-nodata" }, "no data");
    }
    return el("td", { className: "num" },
      el("span", { className: "availability-value" }, ui.percent(v)),
      change(v, row.values[i - 1], i > 0 ? months[i - 1].label : ""));
  }

  function table(id, caption, first, rows, months, empty) {
    if (rows.length === 0) {
      return el("p", { id: id + "-empty" }, empty);
    }
    const head = el("tr", {}, ...first.map((h) => el("th", { scope: "col" }, h)),
      ...months.map((m) => el("th", { scope: "col" }, m.current ? m.label + " (to date)" : m.label)));
    const body = rows.map((r) => el("tr", { dataset: { key: r.key } },
      el("th", { scope: "row" }, r.name),
      ...(first.length > 1 ? [el("td", {}, r.kind), el("td", {}, r.host)] : []),
      ...months.map((_m, i) => cell(r, i, months))));
    return el("div", { className: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 },
      el("table", { className: "availability-table", id },
        el("caption", { className: "visually-hidden" }, caption),
        el("thead", {}, head), el("tbody", {}, ...body)));
  }

  async function load() {
    const run = ++view.run;
    const months = monthsBack(view.months, Date.now());
    const status = view.root.querySelector(".availability-status");
    status.textContent = "Loading\u2026";
    status.classList.remove("error");
    try {
      const kinds = Object.keys(KINDS);
      const answers = await Promise.all(kinds.map((k) =>
        Promise.all(months.map((m) => monthly(KINDS[k](m.days), m)))));
      if (run !== view.run) {
        return;
      }
      const results = Object.fromEntries(kinds.map((k, i) => [k, answers[i]]));
      const { hosts, services } = collect(months, results);
      view.root.querySelector(".availability-tables").replaceChildren(
        el("h3", {}, "Hosts"),
        table("availability-hosts", "Host uptime by month", ["Host"], hosts, months,
          "No host has sent data in these months."),
        el("h3", {}, "Services"),
        table("availability-services", "Service uptime by month",
          ["Service", "Kind", "Host"], services, months,
          "No check or systemd unit has reported in these months."));
      status.textContent = "Updated at " + ui.time(Date.now()) + ": " + hosts.length
        + " hosts, " + services.length + " services.";
    } catch (e) {
      if (run === view.run) {
        status.textContent = e.message;
        status.classList.add("error");
      }
    }
  }

  function build(section) {
    const select = el("select", {
      id: "availability-months",
      onchange: (e) => { view.months = Number(e.currentTarget.value); load(); },
    }, ...MONTH_CHOICES.map((n) => el("option", { value: String(n), selected: n === view.months },
      "Last " + n + " months")));
    section.append(
      el("h2", {}, "Availability"),
      el("p", { className: "availability-about" },
        "Uptime by calendar month (UTC), the current month to date: hosts from up, "
        + "checks from sysward_check_up (OK counts as up), systemd units from their "
        + "active state. Worst first; the change is in percentage points against the month before."),
      el("div", { className: "availability-controls" },
        el("label", { for: "availability-months" }, "Months"), select),
      el("p", { className: "availability-status", role: "status", "aria-live": "polite" }),
      el("div", { className: "availability-tables" }),
    );
  }

  return {
    title: "Availability",
    start(section) {
      view.root = section;
      build(section);
      load();
    },
    stop() {
      view.run += 1;
      view.root = null;
    },
  };
})());
