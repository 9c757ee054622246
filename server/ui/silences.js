// The Silences page (`#/silences`, `#/silences/new/MATCHERS` from an alert): silences and
// maintenance windows, active and upcoming apart from the ended ones, those of the
// configuration file read-only; for editors and admins a form to add one (POST
// /api/v1/silences, createdBy is the signed-in user, taken by the server from the session)
// and an Expire button per row (DELETE /api/v1/silence/ID). Values reach the page as text.
"use strict";

// PromQL label matchers as silences use them (`name="value"`, `!=`, `=~`, `!~`): a shape
// check for the form, and whether a set of labels matches (the Fleet page marks hosts in
// maintenance with it). The server parses matchers itself and has the last word.
const silenceMatchers = (() => {
  const SHAPE = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)\s*$/;

  function unquote(text) {
    if (text[0] === "`") return text.slice(1, -1);
    if (text[0] === "'") {
      return JSON.parse('"' + text.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"') + '"');
    }
    return JSON.parse(text);
  }

  // `{ name, op, value }`, or null when the line is not shaped like a matcher.
  function parse(line) {
    const m = SHAPE.exec(line);
    if (!m) return null;
    try {
      return { name: m[1], op: m[2], value: unquote(m[3]) };
    } catch (_) {
      return null;
    }
  }

  function holds(m, labels) {
    const v = labels[m.name] || "";
    if (m.op === "=") return v === m.value;
    if (m.op === "!=") return v !== m.value;
    let re;
    try {
      re = new RegExp("^(?:" + m.value + ")$");
    } catch (_) {
      return false;
    }
    return m.op === "=~" ? re.test(v) : !re.test(v);
  }

  // Whether every matcher (text) holds for `labels`; a label that is absent is "".
  function matchAll(texts, labels) {
    const list = texts.map(parse);
    return list.length > 0 && list.every((m) => m && holds(m, labels));
  }

  return { parse, matchAll };
})();

ui.register("silences", (() => {
  const REFRESH_MS = 30000;
  const ENDED_SHOWN = 50;
  const DEFAULT_DURATION = "2h";
  const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const { el } = ui;
  const view = { list: [], n: null };

  // "1h30m" → seconds, or NaN.
  function durationSeconds(text) {
    const t = text.trim();
    if (!/^(\d+[smhdw])+$/.test(t)) return NaN;
    let s = 0;
    for (const [, n, u] of t.matchAll(/(\d+)([smhdw])/g)) s += Number(n) * UNITS[u];
    return s;
  }

  function isActive(s) {
    return s.active;
  }

  function isEnded(s) {
    return !s.recurring && Number.isFinite(s.ends_ms) && s.ends_ms <= Date.now() && !s.active;
  }

  function stateText(s) {
    if (s.recurring) return s.active ? "active (recurring)" : "recurring";
    if (s.active) return "active";
    return isEnded(s) ? "ended" : "upcoming";
  }

  function recurringText(r) {
    const days = r.weekdays && r.weekdays.length ? r.weekdays.join(", ") : "every day";
    const times = r.times && r.times.length ? r.times.join(", ") : "all day";
    return days + ", " + times + " (" + r.time_zone + ")";
  }

  function byText(s) {
    return s.source === "config" ? "configuration file" : s.created_by;
  }

  function matchersCell(s) {
    const td = el("td", { className: "silences-matchers" });
    for (const m of s.matchers) td.append(el("code", {}, m));
    return td;
  }

  function say(text, isError) {
    view.n.status.textContent = text;
    view.n.status.className = "silences-status" + (isError ? " error" : "");
  }

  async function expire(s, button) {
    button.disabled = true;
    try {
      await ui.send("DELETE", "/api/v1/silence/" + encodeURIComponent(s.id));
      say("Expired " + s.kind + " " + s.id + ".");
      await refresh();
    } catch (e) {
      say("Not expired: " + e.message, true);
      button.disabled = false;
    }
  }

  function actionCell(s) {
    const td = el("td", { className: "silences-actions" });
    if (s.source === "config") {
      td.append("read-only");
    } else if (!isEnded(s)) {
      const b = el("button", { type: "button", className: "silences-expire" }, "Expire");
      b.setAttribute("aria-label", "Expire " + s.kind + " " + s.id);
      b.addEventListener("click", () => expire(s, b));
      td.append(b);
    }
    return td;
  }

  function row(s, editor) {
    const starts = s.recurring ? recurringText(s.recurring) : ui.time(s.starts_ms);
    const ends = s.recurring ? "\u2014" : ui.time(s.ends_ms);
    const tr = el("tr", { dataset: { id: s.id, source: s.source || "api" } },
      el("td", { className: "silences-kind" }, s.kind + (s.name ? ": " + s.name : "")),
      matchersCell(s),
      el("td", {}, starts),
      el("td", {}, ends),
      el("td", { className: "silences-by" }, byText(s)),
      el("td", { className: "silences-comment" }, s.comment),
      el("td", { className: "silences-state silences-" + stateText(s).split(" ")[0] }, stateText(s)),
    );
    if (editor) tr.append(actionCell(s));
    return tr;
  }

  function render() {
    const n = view.n;
    const editor = ui.roleAtLeast("editor");
    const current = view.list.filter((s) => !isEnded(s)).sort((a, b) =>
      Number(isActive(b)) - Number(isActive(a)) || (a.starts_ms ?? 0) - (b.starts_ms ?? 0));
    const ended = view.list.filter(isEnded).sort((a, b) => b.ends_ms - a.ends_ms).slice(0, ENDED_SHOWN);
    n.current.replaceChildren(...current.map((s) => row(s, editor)));
    n.ended.replaceChildren(...ended.map((s) => row(s, editor)));
    n.noCurrent.hidden = current.length > 0;
    n.noEnded.hidden = ended.length > 0;
  }

  const poll = ui.poller({
    what: "silences",
    intervalMs: REFRESH_MS,
    nodes: () => view.n,
    read: () => ui.getJson("/api/v1/silences"),
    show: (r) => {
      view.list = r.data;
      render();
    },
  });
  const refresh = () => poll.refresh();

  // The form's values as the API's body, or throws Error with what is wrong.
  function body(f) {
    const lines = f.matchers.value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (!lines.length) throw new Error("Give at least one matcher, e.g. instance=\"web-1\".");
    lines.forEach((l, i) => {
      if (!silenceMatchers.parse(l)) {
        throw new Error("Line " + (i + 1) + " is not a matcher like name=\"value\" (or !=, =~, !~): " + l);
      }
    });
    let starts = Date.now();
    const out = { matchers: lines, kind: f.kind.value, comment: f.comment.value.trim() };
    if (f.start.value) {
      starts = new Date(f.start.value).getTime();
      if (!Number.isFinite(starts)) throw new Error("The start is not a date and time.");
      out.startsAt = new Date(starts).toISOString();
    }
    let ends;
    if (f.end.value) {
      ends = new Date(f.end.value).getTime();
      if (!Number.isFinite(ends)) throw new Error("The end is not a date and time.");
    } else {
      const d = durationSeconds(f.duration.value);
      if (!(d > 0)) throw new Error("The duration is like 30m, 2h or 1d12h (or give an end).");
      ends = starts + d * 1000;
    }
    if (ends <= starts) throw new Error("The end must be after the start.");
    out.endsAt = new Date(ends).toISOString();
    return out;
  }

  async function submit(event) {
    event.preventDefault();
    const f = view.n.form;
    f.error.textContent = "";
    let b;
    try {
      b = body(f);
    } catch (e) {
      f.error.textContent = e.message;
      return;
    }
    f.submit.disabled = true;
    try {
      const r = await ui.send("POST", "/api/v1/silences", b);
      f.matchers.value = "";
      f.comment.value = "";
      f.start.value = "";
      f.end.value = "";
      f.duration.value = DEFAULT_DURATION;
      say("Created " + b.kind + " " + r.data.silenceID + ".");
      // Leave `#/silences/new/…` without starting the page again.
      history.replaceState(null, "", "#/silences");
      await refresh();
    } catch (e) {
      f.error.textContent = "The server refused it: " + e.message;
    } finally {
      f.submit.disabled = false;
    }
  }

  function field(id, label, input, hint) {
    input.id = id;
    const wrap = el("div", { className: "silences-field" }, el("label", { for: id }, label), input);
    if (hint) {
      const h = el("span", { id: id + "-hint", className: "silences-hint" }, hint);
      input.setAttribute("aria-describedby", h.id);
      wrap.append(h);
    }
    return wrap;
  }

  function buildForm(prefill) {
    const f = {};
    f.matchers = el("textarea", { rows: 3, spellcheck: false, value: prefill || "" });
    f.kind = el("select", {}, el("option", { value: "silence" }, "silence"),
      el("option", { value: "maintenance" }, "maintenance window"));
    f.start = el("input", { type: "datetime-local" });
    f.duration = el("input", { value: DEFAULT_DURATION, autocomplete: "off" });
    f.end = el("input", { type: "datetime-local" });
    f.comment = el("input", { autocomplete: "off" });
    f.submit = el("button", { type: "submit" }, "Create");
    f.error = el("p", { id: "silence-form-error", className: "error", role: "alert" });
    const form = el("form", { id: "silence-form", className: "silences-form", noValidate: true },
      el("h3", {}, "New silence or maintenance window"),
      field("silence-matchers", "Matchers, one per line", f.matchers,
        'PromQL label matchers: instance="web-1", alertname=~"Disk.*"'),
      field("silence-kind", "Kind", f.kind),
      field("silence-start", "Starts", f.start, "empty: now"),
      field("silence-duration", "Duration", f.duration, "30m, 2h, 1d12h; unused when an end is given"),
      field("silence-end", "Ends", f.end, "optional, instead of the duration"),
      field("silence-comment", "Comment", f.comment),
      el("div", { className: "silences-submit" }, f.submit),
      f.error,
    );
    form.addEventListener("submit", submit);
    f.node = form;
    return f;
  }

  function table(id, caption, body, editor) {
    const headers = ["Kind", "Matchers", "Starts", "Ends", "By", "Comment", "State"];
    if (editor) headers.push("Actions");
    return el("div", { className: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 },
      el("table", { id, className: "silences-table" },
        el("caption", { className: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
        body));
  }

  function build(section, params) {
    const n = {};
    const editor = ui.roleAtLeast("editor");
    n.updated = el("p", { className: "silences-updated" });
    n.error = el("p", { className: "error silences-error", role: "status" });
    n.status = el("p", { className: "silences-status", role: "status", "aria-live": "polite" });
    n.current = el("tbody", { id: "silences-current" });
    n.ended = el("tbody", { id: "silences-ended" });
    n.noCurrent = el("p", { hidden: true }, "No silence or maintenance window is active or upcoming.");
    n.noEnded = el("p", { hidden: true }, "None ended recently.");
    section.setAttribute("aria-labelledby", "silences-title");
    section.append(
      el("div", { className: "silences-head" },
        el("h2", { id: "silences-title" }, "Silences and maintenance windows"), n.updated),
      n.error,
    );
    if (editor) {
      n.form = buildForm(params[0] === "new" ? params[1] : "");
      section.append(n.form.node);
    }
    section.append(
      n.status,
      el("h3", {}, "Active and upcoming"),
      table("silences-current-table", "Active and upcoming silences and maintenance windows", n.current, editor),
      n.noCurrent,
      el("h3", {}, "Ended"),
      table("silences-ended-table", "Silences and maintenance windows that ended, latest first", n.ended, editor),
      n.noEnded,
    );
    view.n = n;
    if (n.form && params[0] === "new") n.form.matchers.focus();
  }

  function start(section, params) {
    view.list = [];
    build(section, params);
    poll.start();
  }

  function stop() {
    poll.stop();
  }

  return { title: "Silences", start, stop };
})());
