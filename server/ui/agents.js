// The Agents page (`#/agents`, administrators only): enrolments waiting for approval, the
// approved agents with Revoke (behind a second, confirming click), the revoked ones, a
// form that makes join tokens (each shown once, with the command that enrols a host and
// a copy button) and the list of tokens. Everything goes through the admin API
// (`/api/v1/agents`, `/api/v1/agents/ID/approve|revoke`, `/api/v1/join-tokens`), which
// refuses other roles whatever the page shows. Values reach the page as text only.
"use strict";

ui.register("agents", (() => {
  const REFRESH_MS = 15000;
  const VERSIONS = "max by (agent_id, version) (last_over_time(sysward_agent_build_info[1d]))";
  const view = { root: null, timer: null, run: 0, confirming: null };
  const { el } = ui;

  function when(ms) {
    return ms ? ui.time(ms) : "never";
  }

  // A table with a caption and column headers; `rows` are arrays of cells (strings or
  // elements), the first a row header.
  function table(id, caption, headers, rows, empty) {
    if (rows.length === 0) {
      return el("p", { className: "agents-empty", id: id + "-empty" }, empty);
    }
    const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)));
    const body = rows.map((cells) => el(
      "tr", { dataset: cells.dataset || {} },
      ...cells.map((c, i) => el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}, c)),
    ));
    return el("div", { className: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 },
      el("table", { className: "agents-table", id },
        el("caption", { className: "visually-hidden" }, caption),
        el("thead", {}, head), el("tbody", {}, ...body)));
  }

  function status(text, isError) {
    const s = view.root && view.root.querySelector(".agents-status");
    if (s) {
      s.textContent = text;
      s.classList.toggle("error", Boolean(isError));
    }
  }

  async function act(label, method, path, body) {
    try {
      await ui.send(method, path, body);
      status(label);
    } catch (e) {
      status(e.message, true);
    }
    view.confirming = null;
    await load();
  }

  function hostCell(a) {
    return el("span", {}, el("span", { className: "agents-host" }, a.hostname),
      el("span", { className: "agents-id" }, a.id));
  }

  function approveButton(a) {
    return el("button", {
      type: "button", className: "agents-approve", dataset: { agent: a.id },
      "aria-label": "Approve " + a.hostname + " (" + a.id + ")",
      onclick: () => act("Approved " + a.hostname + ".", "POST",
        "/api/v1/agents/" + encodeURIComponent(a.id) + "/approve"),
    }, "Approve");
  }

  // Revoke asks twice: the first click turns the button into a confirmation (focused) with
  // a Cancel beside it; Escape or Cancel go back.
  function revokeCell(a) {
    if (view.confirming !== a.id) {
      return el("button", {
        type: "button", className: "agents-revoke", dataset: { agent: a.id },
        "aria-label": "Revoke " + a.hostname + " (" + a.id + ")",
        onclick: () => { view.confirming = a.id; render(view.last); },
      }, "Revoke");
    }
    const cancel = () => {
      view.confirming = null;
      render(view.last);
      view.root.querySelector('.agents-revoke[data-agent="' + CSS.escape(a.id) + '"]')?.focus();
    };
    const confirm = el("button", {
      type: "button", className: "agents-confirm danger", dataset: { agent: a.id },
      onclick: () => act("Revoked " + a.hostname + ": its next request is refused.", "POST",
        "/api/v1/agents/" + encodeURIComponent(a.id) + "/revoke"),
      onkeydown: (e) => { if (e.key === "Escape") cancel(); },
    }, "Revoke " + a.hostname + " now");
    return el("span", { className: "agents-confirming" }, confirm,
      el("button", { type: "button", className: "secondary", onclick: cancel }, "Cancel"));
  }

  function tokenRows(tokens) {
    return tokens.map((t) => {
      const cells = [t.id, t.status, when(t.created_ms), when(t.expires_ms),
        t.used_by || "", t.status === "used" ? "" : el("button", {
          type: "button", className: "secondary agents-token-delete", dataset: { token: t.id },
          "aria-label": "Delete join token " + t.id,
          onclick: () => act("Deleted join token " + t.id + ".", "DELETE",
            "/api/v1/join-tokens/" + encodeURIComponent(t.id)),
        }, "Delete")];
      cells.dataset = { token: t.id };
      return cells;
    });
  }

  function render(data) {
    view.last = data;
    const { agents, versions, tokens } = data;
    const by = (s) => agents.filter((a) => a.status === s);
    const withId = (cells, a) => Object.assign(cells, { dataset: { agent: a.id } });
    const lists = view.root.querySelector(".agents-lists");
    lists.replaceChildren(
      el("h3", {}, "Waiting for approval"),
      table("agents-pending", "Enrolments waiting for approval",
        ["Host", "Address", "Requested", ""],
        by("pending").map((a) => withId([hostCell(a), a.address || "unknown",
          when(a.requested_ms), approveButton(a)], a)),
        "No agent is waiting for approval."),
      el("h3", {}, "Approved"),
      table("agents-approved", "Approved agents",
        ["Host", "Version", "Last seen", "Certificate expires", ""],
        by("approved").map((a) => withId([hostCell(a), versions.get(a.id) || "unknown",
          when(a.last_seen_ms), a.cert_not_after_ms ? ui.time(a.cert_not_after_ms) : "unknown",
          revokeCell(a)], a)),
        "No agent is approved yet."),
      el("h3", {}, "Revoked"),
      table("agents-revoked", "Revoked agents", ["Host", "Last seen"],
        by("revoked").map((a) => withId([hostCell(a), when(a.last_seen_ms)], a)),
        "No agent is revoked."),
    );
    view.root.querySelector(".agents-token-list").replaceChildren(
      table("agents-tokens", "Join tokens, newest first",
        ["Id", "Status", "Made", "Expires", "Used by", ""], tokenRows(tokens),
        "No join token yet."));
    lists.querySelector(".agents-confirm")?.focus();
  }

  async function load() {
    const run = view.run;
    try {
      const [agents, tokens, versions] = await Promise.all([
        ui.getJson("/api/v1/agents"),
        ui.getJson("/api/v1/join-tokens"),
        ui.query(VERSIONS).catch(() => []),
      ]);
      if (run !== view.run) {
        return;
      }
      const v = new Map(versions.map((s) => [s.metric.agent_id, s.metric.version]));
      render({ agents: agents.data, tokens: tokens.data, versions: v });
      view.root.querySelector(".agents-updated").textContent = "Updated at " + ui.time(Date.now());
    } catch (e) {
      if (run === view.run) {
        status(e.message, true);
      }
    }
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      // No clipboard (permission refused): select the text for the user to copy.
      const range = document.createRange();
      range.selectNodeContents(button.previousSibling);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  }

  function showTokens(made) {
    const out = view.root.querySelector(".agents-token-made");
    out.replaceChildren(
      el("p", {}, made.length === 1
        ? "The token is shown only now. Run this as root on the host to enrol it:"
        : made.length + " tokens, shown only now. Run one command on each host, as root:"),
      ...made.map((t) => el("div", { className: "agents-token", dataset: { token: t.id } },
        el("code", { className: "agents-command" }, t.command),
        el("button", {
          type: "button", className: "secondary", "aria-label": "Copy the command for token " + t.id,
          onclick: (e) => copy(t.command, e.currentTarget),
        }, "Copy"),
        el("p", { className: "agents-token-expiry" }, "Token " + t.id + ", valid until "
          + ui.time(t.expires_ms) + "."))),
    );
    out.hidden = false;
    out.focus();
  }

  async function createTokens(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const body = {};
    for (const key of ["ttl", "url"]) {
      const value = form.elements[key].value.trim();
      if (value) {
        body[key] = value;
      }
    }
    body.count = Number(form.elements.count.value || "1");
    try {
      const made = await ui.send("POST", "/api/v1/join-tokens", body);
      status(made.data.length === 1 ? "Join token made." : made.data.length + " join tokens made.");
      showTokens(made.data);
      await load();
    } catch (e) {
      status(e.message, true);
    }
  }

  function field(id, label, props, hint) {
    return el("div", { className: "agents-field" },
      el("label", { for: id }, label),
      el("input", Object.assign({ id, name: id.replace("agents-token-", "") }, props,
        hint ? { "aria-describedby": id + "-hint" } : {})),
      hint ? el("span", { className: "agents-hint", id: id + "-hint" }, hint) : null);
  }

  function build(section) {
    const form = el("form", { className: "agents-token-form", onsubmit: createTokens },
      el("h3", {}, "Create join token"),
      field("agents-token-ttl", "Valid for", { placeholder: "24h", autocomplete: "off" },
        "A duration such as 1h or 7d; empty: the server's default."),
      field("agents-token-url", "Server URL for the agent",
        { type: "url", placeholder: "the server's public URL", autocomplete: "off" },
        "Empty: [listen] public_url of the server."),
      field("agents-token-count", "How many", { type: "number", min: 1, max: 1000, value: "1" }),
      el("button", { type: "submit" }, "Create join token"));
    section.append(
      el("div", { className: "agents-head" }, el("h2", {}, "Agents"),
        el("p", { className: "agents-updated" })),
      el("p", { className: "agents-status", role: "status", "aria-live": "polite" }),
      el("div", { className: "agents-lists" }),
      form,
      el("div", { className: "agents-token-made", hidden: true, tabIndex: -1,
        role: "region", "aria-label": "The new join token" }),
      el("h3", {}, "Join tokens"),
      el("div", { className: "agents-token-list" }),
    );
  }

  return {
    title: "Agents",
    start(section) {
      view.root = section;
      view.run += 1;
      view.confirming = null;
      if (!ui.roleAtLeast("admin")) {
        section.append(el("h2", {}, "Agents"),
          el("p", { className: "agents-denied" },
            "Administrators only: approving, revoking and enrolling agents needs the admin role."));
        return;
      }
      build(section);
      load();
      view.timer = setInterval(() => { if (!view.confirming) load(); }, REFRESH_MS);
    },
    stop() {
      view.run += 1;
      clearInterval(view.timer);
      view.timer = null;
      view.root = null;
    },
  };
})());
