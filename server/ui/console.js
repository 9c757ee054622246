// The console's shell: sign in, show who is signed in, sign out; signed in, the Fleet page
// (`fleet.js`, loaded first). Every call goes to the server's own API on the same origin;
// the CSRF token is kept in memory only.
"use strict";

const state = { csrf: null };

function $(id) {
  return document.getElementById(id);
}

function say(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

function show(session) {
  const signedIn = Boolean(session);
  state.csrf = signedIn ? session.csrf_token : null;
  $("who").hidden = !signedIn;
  $("home").hidden = !signedIn;
  $("sign-in").hidden = signedIn;
  $("who-name").textContent = signedIn ? session.user : "";
  $("who-role").textContent = signedIn ? session.role : "";
  if (signedIn) {
    fleet.start(session.role);
  } else {
    fleet.stop();
    $("password").value = "";
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (_) {
    return response.statusText || String(response.status);
  }
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
    const r = await fetch("/ui/api/session", {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": state.csrf || "" },
    });
    if (r.ok) {
      show(null);
      say("Signed out.");
    } else {
      say(await errorOf(r), true);
    }
  } catch (e) {
    say("The server cannot be reached: " + e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  fleet.init();
  load();
});
