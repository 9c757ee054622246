// The console's shell: sign in, show who is signed in, sign out, and a router over the
// pages (`#/fleet`, `#/host/ID`, ...). Each page is a script loaded after this one that calls
// `ui.register(name, page)`; the shell starts one page at a time and stops the one before.
// Every call goes to the server's own API on the same origin; the CSRF token is kept in
// memory only. Values reach the page through textContent only, never as markup.
"use strict";

const ui = (() => {
  const pages = new Map();
  const state = { session: null, current: null, section: null };

  function $(id) {
    return document.getElementById(id);
  }

  // `el("td", { className: "num", dataset: { x: 1 } }, "text", child)`: an element with
  // properties set and children appended (strings become text nodes).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "dataset" || k === "style") {
        Object.assign(e[k], v);
      } else if (k.startsWith("aria-") || k === "role" || k === "for") {
        e.setAttribute(k, v);
      } else {
        e[k] = v;
      }
    }
    e.append(...children.filter((c) => c !== null && c !== undefined));
    return e;
  }

  function say(text, isError) {
    const m = $("message");
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      return body.error || response.statusText;
    } catch (_) {
      return response.statusText || String(response.status);
    }
  }

  async function answer(r) {
    if (!r.ok) {
      throw new Error(await errorOf(r));
    }
    const text = await r.text();
    return text ? JSON.parse(text) : null;
  }

  // Requests under way, on the root element as `data-requests`: tests and the load
  // benchmark wait for a page to be drawn by waiting for 0.
  let requests = 0;

  async function counted(path, init) {
    requests += 1;
    document.documentElement.dataset.requests = requests;
    try {
      return await answer(await fetch(path, init));
    } finally {
      requests -= 1;
      document.documentElement.dataset.requests = requests;
    }
  }

  async function getJson(path) {
    return counted(path, { credentials: "same-origin" });
  }

  // A change (POST, PUT, DELETE): JSON in, JSON out, with the session's CSRF token.
  async function send(method, path, body) {
    const headers = { "X-CSRF-Token": (state.session && state.session.csrf_token) || "" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    const init = { method, credentials: "same-origin", headers };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
    }
    return counted(path, init);
  }

  async function query(expr, time) {
    let path = "/api/v1/query?query=" + encodeURIComponent(expr);
    if (time !== undefined) {
      path += "&time=" + time;
    }
    return (await getJson(path)).data.result;
  }

  // A range query; the answer's `data` (with `resultType` and `result`).
  async function queryRange(expr, start, end, step) {
    const path = "/api/v1/query_range?query=" + encodeURIComponent(expr)
      + "&start=" + start + "&end=" + end + "&step=" + step;
    return (await getJson(path)).data;
  }

  function register(name, page) {
    pages.set(name, page);
  }

  // `#/host/abc` → { name: "host", params: ["abc"] }; anything unknown is the Fleet page.
  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    const name = pages.has(parts[0]) ? parts[0] : "fleet";
    return { name, params: parts.slice(1).filter(Boolean) };
  }

  function stopCurrent() {
    if (state.current) {
      try {
        state.current.stop();
      } catch (e) {
        console.error(e);
      }
    }
    state.current = null;
    if (state.section) {
      state.section.remove();
      state.section = null;
    }
  }

  // A page with `section` keeps its markup in index.html; the others get a new section.
  function showPage() {
    stopCurrent();
    const { name, params } = route();
    const page = pages.get(name);
    const publicPage = Boolean(page && page.public);
    if (!state.session && !publicPage) {
      return;
    }
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.dataset.page === (page.nav || name)) {
        a.setAttribute("aria-current", "page");
      } else {
        a.removeAttribute("aria-current");
      }
    }
    let section = page.section ? $(page.section) : null;
    if (!section) {
      section = el("section", { className: "page page-" + name });
      $("view").append(section);
      state.section = section;
    }
    section.hidden = false;
    state.current = {
      stop: () => {
        page.stop();
        if (page.section) {
          section.hidden = true;
        }
      },
    };
    document.title = (page.title || name) + " \u2014 Sysward";
    page.start(section, params, state.session);
  }

  function show(session) {
    const signedIn = Boolean(session);
    state.session = session;
    $("who").hidden = !signedIn;
    $("nav").hidden = !signedIn;
    $("sign-in").hidden = signedIn || Boolean(pages.get(route().name).public);
    $("who-name").textContent = signedIn ? session.user : "";
    $("who-role").textContent = signedIn ? session.role : "";
    for (const a of document.querySelectorAll("#nav [data-role]")) {
      a.hidden = !signedIn || !roleAtLeast(a.dataset.role);
    }
    if (!signedIn) {
      $("password").value = "";
    }
    showPage();
  }

  const ROLES = ["viewer", "editor", "admin"];

  // Whether the signed-in user has at least `role`: for what the page offers; the API
  // decides what is allowed.
  function roleAtLeast(role) {
    return Boolean(state.session)
      && ROLES.indexOf(state.session.role) >= ROLES.indexOf(role);
  }

  async function load() {
    try {
      const r = await fetch("/ui/api/session", { credentials: "same-origin" });
      show(r.ok ? await r.json() : null);
    } catch (e) {
      show(null);
      say("The server cannot be reached: " + e.message, true);
    }
  }

  async function signIn(event) {
    event.preventDefault();
    say("");
    const body = JSON.stringify({ user: $("user").value, password: $("password").value });
    try {
      const r = await fetch("/ui/api/session", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body,
      });
      if (r.ok) {
        show(await r.json());
      } else {
        $("password").value = "";
        say(await errorOf(r), true);
      }
    } catch (e) {
      say("The server cannot be reached: " + e.message, true);
    }
  }

  async function signOut() {
    say("");
    try {
      await send("DELETE", "/ui/api/session");
      show(null);
      say("Signed out.");
    } catch (e) {
      say(e.message, true);
    }
  }

  // A page's periodic read: `read()` (a promise) now and every `intervalMs`, its answer
  // given to `show`, one read at a time; a refresh asked for meanwhile (after a change)
  // runs right after. `nodes()` gives the page's `updated` and `error` elements. After
  // `stop()` (or a new `start()`) the answers of reads under way are dropped.
  function poller({ read, show, what, intervalMs, nodes }) {
    const p = { run: 0, busy: false, again: false, timer: null };
    async function refresh() {
      if (p.busy) {
        p.again = true;
        return;
      }
      p.busy = true;
      p.again = false;
      const run = p.run;
      try {
        const data = await read();
        if (run !== p.run) return;
        nodes().error.textContent = "";
        nodes().updated.textContent = "Updated at " + new Date().toLocaleTimeString();
        show(data);
      } catch (e) {
        if (run === p.run) nodes().error.textContent = "The " + what + " could not be read: " + e.message;
      } finally {
        if (run === p.run) {
          p.busy = false;
          if (p.again) refresh();
        }
      }
    }
    function stop() {
      p.run += 1;
      p.busy = false;
      if (p.timer !== null) {
        clearInterval(p.timer);
        p.timer = null;
      }
    }
    function start() {
      stop();
      refresh();
      p.timer = setInterval(refresh, intervalMs);
    }
    return { start, stop, refresh };
  }

  // Formats for every page.
  function percent(v) {
    return Number.isFinite(v) ? (v * 100).toFixed(1) + " %" : "no data";
  }

  function time(ms) {
    return new Date(ms).toLocaleString();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    for (const page of pages.values()) {
      if (page.init) {
        page.init();
      }
    }
    window.addEventListener("hashchange", showPage);
    load();
  });

  return {
    $, el, say, getJson, send, query, queryRange, register, roleAtLeast, percent, time, poller,
    session: () => state.session,
  };
})();
