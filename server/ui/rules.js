// The Rules page (`#/rules`): the loaded rule groups (file, interval, last evaluation and
// how long it took) and each rule: name, type, query, for and keep_firing_for, health with
// its last error, labels, and an alerting rule's active alerts. From GET /api/v1/rules with
// the session cookie; filtered by text and by health. Values reach the page as text only.
"use strict";

ui.register("rules", (() => {
  const REFRESH_MS = 30000;
  const { el } = ui;
  const view = { groups: [], n: null };

  function ms(rfc3339) {
    const t = Date.parse(rfc3339);
    return Number.isFinite(t) && t > 0 ? t : NaN;
  }

  function seconds(s) {
    if (!Number.isFinite(s)) return "\u2014";
    if (s === 0) return "0 s";
    if (s < 1) return (s * 1000).toPrecision(3).replace(/\.?0+$/, "") + " ms";
    if (s < 120) return String(Number(s.toPrecision(3))) + " s";
    if (s < 7200) return String(Number((s / 60).toPrecision(3))) + " min";
    return String(Number((s / 3600).toPrecision(3))) + " h";
  }

  function lastEval(text) {
    const t = ms(text);
    return Number.isFinite(t) ? ui.time(t) : "never";
  }

  function labelsText(labels) {
    return Object.entries(labels || {}).map(([k, v]) => k + "=" + v).join(", ");
  }

  function holdText(r) {
    if (r.type !== "alerting") return "\u2014";
    const parts = ["for " + seconds(r.duration)];
    if (r.keepFiringFor > 0) parts.push("keep firing " + seconds(r.keepFiringFor));
    return parts.join(", ");
  }

  function alertsText(r) {
    if (r.type !== "alerting") return "\u2014";
    const list = r.alerts || [];
    if (!list.length) return "0";
    const by = {};
    for (const a of list) by[a.state] = (by[a.state] || 0) + 1;
    return list.length + " (" + Object.entries(by).map(([s, c]) => c + " " + s).join(", ") + ")";
  }

  function healthCell(r) {
    const td = el("td", { className: "rules-health rules-health-" + r.health }, r.health);
    if (r.lastError) td.append(el("span", { className: "rules-error" }, r.lastError));
    return td;
  }

  function ruleRow(r) {
    return el("tr", { dataset: { rule: r.name, health: r.health } },
      el("th", { scope: "row", className: "rules-name" }, r.name),
      el("td", { className: "rules-type" }, r.type),
      el("td", { className: "rules-query" }, el("code", {}, r.query)),
      el("td", { className: "rules-hold" }, holdText(r)),
      healthCell(r),
      el("td", { className: "rules-labels" }, labelsText(r.labels) || "\u2014"),
      el("td", { className: "rules-alerts num" }, alertsText(r)),
    );
  }

  function ruleMatches(g, r, terms, health) {
    if (health && r.health !== health) return false;
    const text = [g.name, g.file, r.name, r.type, r.query, labelsText(r.labels)].join(" ").toLowerCase();
    return terms.every((t) => text.includes(t));
  }

  function groupNode(g, rules, i) {
    const title = "rules-group-" + i;
    const meta = el("dl", { className: "rules-meta" },
      el("dt", {}, "File"), el("dd", {}, g.file),
      el("dt", {}, "Interval"), el("dd", {}, seconds(g.interval)),
      el("dt", {}, "Last evaluation"), el("dd", { className: "rules-last" }, lastEval(g.lastEvaluation)),
      el("dt", {}, "Took"), el("dd", {}, seconds(g.evaluationTime)),
    );
    const headers = ["Rule", "Type", "Query", "For", "Health", "Labels", "Active alerts"];
    return el("section", { className: "rules-group", dataset: { group: g.name }, "aria-labelledby": title },
      el("h3", { id: title }, g.name),
      meta,
      el("div", { className: "table-wrap", role: "region", "aria-labelledby": title, tabIndex: 0 },
        el("table", { className: "rules-table" },
          el("caption", { className: "visually-hidden" }, "Rules of group " + g.name),
          el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, ...rules.map(ruleRow)))),
    );
  }

  function render() {
    const n = view.n;
    const terms = n.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const health = n.health.value;
    let total = 0;
    let shown = 0;
    const nodes = [];
    view.groups.forEach((g, i) => {
      total += g.rules.length;
      const rules = g.rules.filter((r) => ruleMatches(g, r, terms, health));
      shown += rules.length;
      if (rules.length) nodes.push(groupNode(g, rules, i));
    });
    n.groups.replaceChildren(...nodes);
    n.count.textContent = shown + " of " + total + " rules";
    n.empty.hidden = shown > 0;
    n.empty.textContent = total ? "No rule matches these filters." : "No rules are loaded.";
  }

  const poll = ui.poller({
    what: "rules",
    intervalMs: REFRESH_MS,
    nodes: () => view.n,
    read: () => ui.getJson("/api/v1/rules"),
    show: (r) => {
      view.groups = r.data.groups;
      render();
    },
  });

  function build(section) {
    const n = {};
    n.updated = el("p", { className: "rules-updated" });
    n.error = el("p", { className: "error rules-error-line", role: "status" });
    n.search = el("input", { id: "rules-search", type: "search", autocomplete: "off",
      placeholder: "rule, group, file, query or label" });
    n.search.addEventListener("input", render);
    n.health = el("select", { id: "rules-health" },
      el("option", { value: "" }, "any"),
      el("option", { value: "err" }, "failing (err)"),
      el("option", { value: "ok" }, "ok"),
      el("option", { value: "unknown" }, "unknown"));
    n.health.addEventListener("change", render);
    n.count = el("span", { className: "rules-count", role: "status", "aria-live": "polite" });
    n.groups = el("div", { id: "rules-groups" });
    n.empty = el("p", { className: "rules-empty", hidden: true });
    section.setAttribute("aria-labelledby", "rules-title");
    section.append(
      el("div", { className: "rules-head" }, el("h2", { id: "rules-title" }, "Rules"), n.updated),
      el("div", { className: "rules-filters" },
        el("label", { for: "rules-search" }, "Search"), n.search,
        el("label", { for: "rules-health" }, "Health"), n.health, n.count),
      n.error, n.groups, n.empty,
    );
    view.n = n;
  }

  function start(section) {
    view.groups = [];
    build(section);
    poll.start();
  }

  function stop() {
    poll.stop();
  }

  return { title: "Rules", start, stop };
})());
