// The Alerts page (`#/alerts`): firing and pending alerts with their host, since when, value
// and annotations, and whether their notification group was acknowledged (and by whom);
// below, the latest transitions and notifications. Editors and admins may acknowledge an
// alert (POST /api/v1/alerts/ack with its fingerprint: every group holding it firing) and
// open the silence form prefilled from its labels (`#/silences/new/MATCHERS`). Everything
// comes from the public API with the session cookie; values reach the page as text only.
"use strict";

ui.register("alerts", (() => {
  const REFRESH_MS = 15000;
  const HISTORY_LIMIT = 50;
  const STATE_RANK = { firing: 0, nodata: 1, pending: 2 };
  const SEVERITIES = ["critical", "warning", "info"];
  // The labels that say which alert on which host: a silence from an alert matches them.
  const SILENCE_LABELS = ["alertname", "agent_id", "instance"];
  const { el } = ui;
  const view = { alerts: [], groups: [], n: null };

  function ms(rfc3339) {
    const t = Date.parse(rfc3339);
    // Prometheus writes "0001-01-01T00:00:00Z" for "never".
    return Number.isFinite(t) && t > 0 ? t : NaN;
  }

  function ago(t) {
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }

  function when(t) {
    return Number.isFinite(t) ? ui.time(t) + " (" + ago(t) + ")" : "\u2014";
  }

  // "9.55e+01" → "95.5"; four significant digits are enough to read.
  function valueText(v) {
    if (v === null || v === undefined) return "\u2014";
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return String(Number(n.toPrecision(4)));
  }

  function severityOf(a) {
    const s = a.labels.severity;
    return SEVERITIES.includes(s) ? s : "other";
  }

  function rank(list, x) {
    const i = list.indexOf(x);
    return i < 0 ? list.length : i;
  }

  function compare(a, b) {
    return (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3)
      || rank(SEVERITIES, a.labels.severity) - rank(SEVERITIES, b.labels.severity)
      || ms(a.activeAt) - ms(b.activeAt)
      || String(a.labels.alertname).localeCompare(String(b.labels.alertname));
  }

  // The notifier's groups that hold the alert firing, by fingerprint.
  function groupsOf(a) {
    return view.groups.filter((g) => (g.alerts || []).includes(a.fingerprint));
  }

  function ackOf(a) {
    const groups = groupsOf(a);
    const acked = groups.find((g) => g.acknowledged_by);
    if (acked) {
      return { acked: true, text: "by " + acked.acknowledged_by + ", " + ui.time(acked.acknowledged_ms) };
    }
    return { acked: false, text: groups.length ? "no" : "\u2014" };
  }

  function hostNode(labels) {
    const name = labels.instance || labels.agent_id;
    if (!name) return "\u2014";
    if (labels.agent_id) {
      return el("a", { href: "#/host/" + encodeURIComponent(labels.agent_id) }, name);
    }
    return name;
  }

  // `name="value"` with the value quoted as PromQL reads it (JSON's escapes are a subset).
  function matcherOf(name, value) {
    return name + "=" + JSON.stringify(value);
  }

  function silenceHash(a) {
    const lines = SILENCE_LABELS.filter((k) => a.labels[k]).map((k) => matcherOf(k, a.labels[k]));
    return "#/silences/new/" + encodeURIComponent(lines.join("\n"));
  }

  function say(text, isError) {
    view.n.status.textContent = text;
    view.n.status.className = "alerts-status" + (isError ? " error" : "");
  }

  async function acknowledge(a, button) {
    button.disabled = true;
    try {
      const r = await ui.send("POST", "/api/v1/alerts/ack", { id: a.fingerprint });
      const n = r.data.groups.length;
      say("Acknowledged " + a.labels.alertname + " (" + n + " group" + (n === 1 ? "" : "s") + ").");
      await refresh();
    } catch (e) {
      say("Not acknowledged: " + e.message, true);
      button.disabled = false;
    }
  }

  // "HostDown on web-1": what a button acts on, for screen readers.
  function alertLabel(a) {
    const host = a.labels.instance || a.labels.agent_id;
    return (a.labels.alertname || "alert") + (host ? " on " + host : "");
  }

  function actionsCell(a, ack) {
    const td = el("td", { className: "alerts-actions" });
    if (a.state === "firing" && !ack.acked) {
      const b = el("button", { type: "button", className: "alerts-ack" }, "Acknowledge");
      b.setAttribute("aria-label", "Acknowledge " + alertLabel(a));
      b.addEventListener("click", () => acknowledge(a, b));
      td.append(b);
    }
    const s = el("button", { type: "button", className: "alerts-silence" }, "Silence\u2026");
    s.setAttribute("aria-label", "Silence " + alertLabel(a) + "\u2026");
    s.addEventListener("click", () => { location.hash = silenceHash(a); });
    td.append(s);
    return td;
  }

  function row(a, editor) {
    const ack = ackOf(a);
    const ann = a.annotations || {};
    const text = el("td", { className: "alerts-text" });
    if (ann.summary) text.append(el("span", { className: "alerts-summary" }, ann.summary));
    if (ann.description) text.append(el("span", { className: "alerts-description" }, ann.description));
    const tr = el("tr", { dataset: { fingerprint: a.fingerprint || "", state: a.state } },
      el("td", { className: "alerts-state alerts-state-" + a.state }, a.state),
      el("th", { scope: "row", className: "alerts-name" }, a.labels.alertname || ""),
      el("td", { className: "alerts-severity alerts-sev-" + severityOf(a) }, a.labels.severity || "\u2014"),
      el("td", { className: "alerts-host" }, hostNode(a.labels)),
      el("td", { className: "alerts-since" }, when(ms(a.activeAt))),
      el("td", { className: "alerts-value num" }, valueText(a.value)),
      text,
      el("td", { className: "alerts-acked" + (ack.acked ? " yes" : "") }, ack.text),
    );
    if (editor) tr.append(actionsCell(a, ack));
    return tr;
  }

  function searchText(a) {
    const labels = Object.entries(a.labels).map(([k, v]) => k + "=" + v);
    return [a.state, ...labels, ...Object.values(a.annotations || {})].join(" ").toLowerCase();
  }

  function render() {
    const n = view.n;
    const state = n.state.value;
    const severity = n.severity.value;
    const terms = n.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = view.alerts
      .filter((a) => !state || a.state === state)
      .filter((a) => !severity || severityOf(a) === severity)
      .filter((a) => { const t = searchText(a); return terms.every((w) => t.includes(w)); })
      .sort(compare);
    const editor = ui.roleAtLeast("editor");
    n.rows.replaceChildren(...shown.map((a) => row(a, editor)));
    n.count.textContent = shown.length + " of " + view.alerts.length + " alerts";
    n.empty.hidden = shown.length > 0;
    n.empty.textContent = view.alerts.length
      ? "No alert matches these filters."
      : "Nothing is firing or pending.";
  }

  function transitionRow(t) {
    return el("tr", {},
      el("td", {}, ui.time(ms(t.time))),
      el("th", { scope: "row" }, t.alertname),
      el("td", {}, hostNode(t.labels || {})),
      el("td", { className: "alerts-change" }, t.from + " \u2192 " + t.to),
      el("td", { className: "num" }, valueText(t.value)),
    );
  }

  function groupName(id) {
    const g = view.groups.find((x) => x.id === id);
    if (!g) return id;
    return Object.entries(g.labels).map(([k, v]) => k + "=" + v).join(", ") || id;
  }

  function notificationRow(m) {
    const outcome = m.error || [m.status, m.answer].filter((x) => x !== null && x !== undefined && x !== "").join(" ");
    return el("tr", {},
      el("td", {}, ui.time(m.created_ms)),
      el("th", { scope: "row" }, m.receiver + " / " + m.channel),
      el("td", {}, m.event),
      el("td", { className: "alerts-notify-" + m.state }, m.state),
      el("td", {}, groupName(m.group_key)),
      el("td", { className: "alerts-outcome" }, outcome),
    );
  }

  function renderHistory(transitions, messages) {
    const n = view.n;
    n.transitions.replaceChildren(...transitions.map(transitionRow));
    n.noTransitions.hidden = transitions.length > 0;
    n.messages.replaceChildren(...messages.map(notificationRow));
    n.noMessages.hidden = messages.length > 0;
  }

  const poll = ui.poller({
    what: "alerts",
    intervalMs: REFRESH_MS,
    nodes: () => view.n,
    read: () => Promise.all([
      ui.getJson("/api/v1/alerts"),
      ui.getJson("/api/v1/alerts/groups"),
      ui.getJson("/api/v1/alerts/history?limit=" + HISTORY_LIMIT),
      ui.getJson("/api/v1/notifications?limit=" + HISTORY_LIMIT),
    ]),
    show: ([alerts, groups, history, notes]) => {
      view.alerts = alerts.data.alerts;
      view.groups = groups.data;
      render();
      renderHistory(history.data, notes.data);
    },
  });
  const refresh = () => poll.refresh();

  function select(id, label, options) {
    const s = el("select", { id });
    for (const [value, text] of options) s.append(el("option", { value }, text));
    s.addEventListener("change", render);
    return [el("label", { for: id }, label), s];
  }

  function table(id, caption, headers, body) {
    return el("div", { className: "table-wrap alerts-wrap", role: "region", "aria-label": caption, tabIndex: 0 },
      el("table", { id, className: "alerts-table" },
        el("caption", { className: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
        body));
  }

  function build(section) {
    const n = {};
    n.updated = el("p", { className: "alerts-updated" });
    n.error = el("p", { className: "error alerts-error", role: "status" });
    n.status = el("p", { className: "alerts-status", role: "status", "aria-live": "polite" });
    const [stateLabel, state] = select("alerts-state", "State",
      [["", "all"], ["firing", "firing"], ["pending", "pending"], ["nodata", "no data"]]);
    const [sevLabel, severity] = select("alerts-severity", "Severity",
      [["", "all"], ...SEVERITIES.map((s) => [s, s]), ["other", "other"]]);
    n.state = state;
    n.severity = severity;
    n.search = el("input", { id: "alerts-search", type: "search", autocomplete: "off",
      placeholder: "name, host or label=value" });
    n.search.addEventListener("input", render);
    n.count = el("span", { className: "alerts-count", role: "status", "aria-live": "polite" });
    n.rows = el("tbody", { id: "alerts-rows" });
    n.empty = el("p", { className: "alerts-empty", hidden: true });
    n.transitions = el("tbody", { id: "alerts-transitions" });
    n.messages = el("tbody", { id: "alerts-notifications" });
    n.noTransitions = el("p", { hidden: true }, "No transitions yet.");
    n.noMessages = el("p", { hidden: true }, "No notifications sent yet.");
    const headers = ["State", "Alert", "Severity", "Host", "Since", "Value", "Summary", "Acknowledged"];
    if (ui.roleAtLeast("editor")) headers.push("Actions");
    section.setAttribute("aria-labelledby", "alerts-title");
    section.append(
      el("div", { className: "alerts-head" }, el("h2", { id: "alerts-title" }, "Alerts"), n.updated),
      el("div", { className: "alerts-filters" }, stateLabel, state, sevLabel, severity,
        el("label", { for: "alerts-search" }, "Search"), n.search, n.count),
      n.error, n.status,
      table("alerts-table", "Firing and pending alerts", headers, n.rows),
      n.empty,
      el("h3", {}, "Latest transitions"),
      table("alerts-history", "Latest alert transitions, newest first",
        ["Time", "Alert", "Host", "Change", "Value"], n.transitions),
      n.noTransitions,
      el("h3", {}, "Latest notifications"),
      table("alerts-sent", "Latest notifications, newest first",
        ["Written", "Receiver / channel", "Event", "State", "Group", "Answer"], n.messages),
      n.noMessages,
    );
    view.n = n;
  }

  function start(section) {
    view.alerts = [];
    view.groups = [];
    build(section);
    poll.start();
  }

  function stop() {
    poll.stop();
  }

  return { title: "Alerts", start, stop };
})());
