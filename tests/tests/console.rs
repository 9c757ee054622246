//! The console's groundwork over real TLS: users made by the real CLI, sign-in sessions in
//! a cookie, CSRF on changes, roles on the public API, the limiter of failed sign-ins, idle
//! sessions ending, and the `/ui/` shell with its security headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    time::Duration,
};

use reqwest::{Method, blocking::Response};
use serde_json::{Value, json};
use sysward_tests::{ADMIN_TOKEN, Server, bin, client};

const PASSWORD: &str = "correct horse battery";

/// `sysward-server user ARGS` with `stdin` as its standard input (not a terminal).
fn user_cli(server: &Server, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin("sysward-server"))
        .arg("--config")
        .arg(&server.config)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn add_user(server: &Server, name: &str, role: &str) {
    server.add_console_user(name, role, PASSWORD);
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A signed-in browser: its session cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

struct Console<'a> {
    server: &'a Server,
    http: reqwest::blocking::Client,
}

impl<'a> Console<'a> {
    fn new(server: &'a Server) -> Self {
        Self {
            server,
            http: client(&server.ca_pem(), None),
        }
    }

    fn sign_in_raw(&self, user: &str, password: &str) -> Response {
        self.http
            .post(format!("{}/ui/api/session", self.server.url()))
            .json(&json!({ "user": user, "password": password }))
            .send()
            .unwrap()
    }

    fn sign_in(&self, user: &str) -> Session {
        self.sign_in_with(user, PASSWORD)
    }

    fn sign_in_with(&self, user: &str, password: &str) -> Session {
        let resp = self.sign_in_raw(user, password);
        assert_eq!(resp.status().as_u16(), 200);
        let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
        let body: Value = resp.json().unwrap();
        assert_eq!(body["user"], user);
        let value = set_cookie.split(';').next().unwrap().to_string();
        Session {
            cookie: value,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// A request with the session's cookie, and its CSRF token when `csrf` is set.
    fn send(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .header("Cookie", format!("theme=dark; {}", session.cookie));
        if let Some(token) = csrf {
            req = req.header("X-CSRF-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str, session: &Session) -> u16 {
        self.send(Method::GET, path, session, None, None).0
    }

    fn anonymous_get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.server.url()))
            .send()
            .unwrap()
    }
}

#[test]
fn users_are_added_listed_changed_and_removed_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");

    add_user(&server, "ann", "viewer");
    add_user(&server, "ed.ops", "editor");
    let out = user_cli(&server, &["list"], "");
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["ann", "viewer"], vec!["ed.ops", "editor"]],
        "{list}"
    );
    assert!(
        !list.contains("argon2") && !list.contains(PASSWORD),
        "{list}"
    );

    // Refusals say why, and change nothing.
    let again = user_cli(
        &server,
        &["add", "ann", "--role", "admin"],
        "another long one\n",
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    let short = user_cli(&server, &["add", "bob", "--role", "viewer"], "short\n");
    assert!(!short.status.success());
    assert!(text(&short).contains("at least 12"), "{}", text(&short));
    let empty = user_cli(&server, &["add", "bob", "--role", "viewer"], "\n");
    assert!(
        text(&empty).contains("the password is empty"),
        "{}",
        text(&empty)
    );
    let name = user_cli(
        &server,
        &["add", "a b", "--role", "viewer"],
        "long enough pw\n",
    );
    assert!(
        text(&name).contains("a user name is 1 to 64"),
        "{}",
        text(&name)
    );
    let role = user_cli(
        &server,
        &["add", "bob", "--role", "read"],
        "long enough pw\n",
    );
    assert!(
        text(&role).contains("viewer, editor or admin"),
        "{}",
        text(&role)
    );
    let list = String::from_utf8(user_cli(&server, &["list"], "").stdout).unwrap();
    assert!(!list.contains("bob"), "{list}");

    // A new password works at once, and ends the user's sessions.
    let console = Console::new(&server);
    let session = console.sign_in("ann");
    assert_eq!(console.get("/ui/api/session", &session), 200);
    let out = user_cli(&server, &["passwd", "ann"], "a brand new password\n");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(console.get("/ui/api/session", &session), 401);
    assert_eq!(console.sign_in_raw("ann", PASSWORD).status().as_u16(), 401);
    assert_eq!(
        console
            .sign_in_raw("ann", "a brand new password")
            .status()
            .as_u16(),
        200
    );

    // A new role holds at once for the open session; an unknown user or role is refused.
    let session = console.sign_in_with("ann", "a brand new password");
    let out = user_cli(&server, &["role", "ann", "admin"], "");
    assert!(out.status.success(), "{}", text(&out));
    let (_, who) = console.send(Method::GET, "/ui/api/session", &session, None, None);
    assert_eq!(who["role"], "admin", "{who}");
    let out = user_cli(&server, &["role", "nobody", "admin"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("nobody"), "{}", text(&out));
    let out = user_cli(&server, &["role", "ann", "root"], "");
    assert!(
        text(&out).contains("viewer, editor or admin"),
        "{}",
        text(&out)
    );

    // Removing a user ends its sessions too.
    let session = console.sign_in("ed.ops");
    let out = user_cli(&server, &["remove", "ed.ops"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(console.get("/api/v1/rules", &session), 401);
    let out = user_cli(&server, &["remove", "ed.ops"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("no user named"), "{}", text(&out));
}

#[test]
fn sessions_roles_and_csrf_on_the_public_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "[ui]\nmax_failures_per_user = 3\nmax_failures_per_address = 100\n",
    );
    add_user(&server, "vic", "viewer");
    add_user(&server, "eddie", "editor");
    add_user(&server, "ada", "admin");
    let console = Console::new(&server);

    // Without a session the API answers 401, and the session endpoint too.
    let resp = console.anonymous_get("/api/v1/query?query=1%2B1");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        console.anonymous_get("/api/v1/alerts").status().as_u16(),
        401
    );
    assert_eq!(
        console.anonymous_get("/ui/api/session").status().as_u16(),
        401
    );

    // Sign-in: the cookie's attributes, the answer, and no caching.
    let resp = console.sign_in_raw("vic", PASSWORD);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let attributes: Vec<&str> = set_cookie.split("; ").collect();
    assert!(
        attributes[0].starts_with("sysward_session="),
        "{set_cookie}"
    );
    assert_eq!(
        attributes[0].len(),
        "sysward_session=".len() + 64,
        "256 bits in hex"
    );
    for wanted in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(attributes.contains(&wanted), "{wanted} in {set_cookie}");
    }
    let body: Value = resp.json().unwrap();
    assert_eq!(body["user"], "vic");
    assert_eq!(body["role"], "viewer");
    let vic = Session {
        cookie: attributes[0].to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    let (status, who) = console.send(Method::GET, "/ui/api/session", &vic, None, None);
    assert_eq!(status, 200);
    assert_eq!(who, body, "the same user, role and CSRF token");

    // A viewer reads what a read token reads.
    let (status, body) = console.send(Method::GET, "/api/v1/query?query=1%2B1", &vic, None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][1], "2", "{body}");
    for path in [
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/silences",
        "/api/v1/labels",
    ] {
        assert_eq!(console.get(path, &vic), 200, "{path}");
    }
    let (status, health) = console.send(Method::GET, "/api/health", &vic, None, None);
    assert_eq!(status, 200);
    assert!(health.get("details").is_some(), "{health}");
    // ...and no admin endpoint.
    let (status, body) = console.send(Method::GET, "/api/v1/agents", &vic, None, None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("needs role admin"),
        "{body}"
    );
    assert_eq!(console.get("/metrics", &vic), 403);

    // A POST with a session needs the session's CSRF token, even to read.
    let post_query = |csrf: Option<&str>| {
        let mut req = console
            .http
            .post(format!("{}/api/v1/query", server.url()))
            .header("Cookie", &vic.cookie)
            .form(&[("query", "2*3")]);
        if let Some(t) = csrf {
            req = req.header("X-CSRF-Token", t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let (status, body) = post_query(None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errorType"], "forbidden", "{body}");
    assert!(body["error"].as_str().unwrap().contains("CSRF"), "{body}");
    assert_eq!(post_query(Some(&"0".repeat(64))).0, 403);
    let (status, body) = post_query(Some(&vic.csrf));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][1], "6", "{body}");

    // Silences: a viewer may not, an editor may, with the CSRF token only.
    let silence = json!({"matchers": ["instance=\"web-1\""],
        "endsAt": "2099-01-01T00:00:00Z", "createdBy": "eddie"});
    let (status, _) = console.send(
        Method::POST,
        "/api/v1/silences",
        &vic,
        Some(&vic.csrf.clone()),
        Some(silence.clone()),
    );
    assert_eq!(status, 403);
    let eddie = console.sign_in("eddie");
    let (status, body) = console.send(
        Method::POST,
        "/api/v1/silences",
        &eddie,
        None,
        Some(silence.clone()),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = console.send(
        Method::POST,
        "/api/v1/silences",
        &eddie,
        Some(&vic.csrf),
        Some(silence.clone()),
    );
    assert_eq!(status, 403, "another session's token: {body}");
    let (status, body) = console.send(
        Method::POST,
        "/api/v1/silences",
        &eddie,
        Some(&eddie.csrf),
        Some(silence),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["silenceID"]
        .as_str()
        .or(body["silenceID"].as_str())
        .unwrap()
        .to_string();
    let path = format!("/api/v1/silence/{id}");
    assert_eq!(
        console.send(Method::DELETE, &path, &eddie, None, None).0,
        403
    );
    let (status, body) = console.send(Method::DELETE, &path, &eddie, Some(&eddie.csrf), None);
    assert_eq!(status, 200, "{body}");
    // An editor is no admin.
    assert_eq!(console.get("/api/v1/agents", &eddie), 403);
    let ada = console.sign_in("ada");
    assert_eq!(console.get("/api/v1/agents", &ada), 200);
    assert_eq!(console.get("/metrics", &ada), 200);

    // Bearer tokens work as before, need no CSRF token, and win over a cookie.
    let read = server.api_token("read", "grafana", &[]);
    let (status, _) = server.prom_post(&read, "/api/v1/query", &[("query", "1")]);
    assert_eq!(status, 200);
    let (status, body) = server.prom_get(&read, "/api/v1/agents");
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        "a token of role read may not do this; it needs role admin"
    );
    assert_eq!(server.admin_get("/api/v1/agents").0, 200);
    let resp = console
        .http
        .get(format!("{}/api/v1/agents", server.url()))
        .header("Cookie", &ada.cookie)
        .bearer_auth("swapi_made_up")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = console
        .http
        .get(format!("{}/api/v1/agents", server.url()))
        .header("Cookie", &vic.cookie)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // An unknown user, a wrong password and an impossible name get the same answer.
    let answers: Vec<(u16, String)> = [
        ("vic", "wrong password!"),
        ("nobody", PASSWORD),
        ("no body!", PASSWORD),
    ]
    .iter()
    .map(|(u, p)| {
        let resp = console.sign_in_raw(u, p);
        assert!(resp.headers().get("set-cookie").is_none());
        (resp.status().as_u16(), resp.text().unwrap())
    })
    .collect();
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    // Malformed bodies are refused, not answered as sign-ins.
    let resp = console
        .http
        .post(format!("{}/ui/api/session", server.url()))
        .header("Content-Type", "application/json")
        .body("{\"user\":\"vic\"")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = console
        .http
        .post(format!("{}/ui/api/session", server.url()))
        .form(&[("user", "vic"), ("password", PASSWORD)])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    // The limiter: after 3 failures for ada, even her password is refused for a while;
    // others are not.
    for _ in 0..3 {
        assert_eq!(
            console
                .sign_in_raw("ada", "not her password")
                .status()
                .as_u16(),
            401
        );
    }
    let resp = console.sign_in_raw("ada", PASSWORD);
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 800 && retry <= 901, "{retry}");
    assert!(resp.text().unwrap().contains("too many failed sign-ins"));
    assert_eq!(
        console.sign_in_raw("eddie", PASSWORD).status().as_u16(),
        200
    );
    // Failures are logged with the name, never the password.
    let log = server.log_text();
    assert!(log.contains("Console sign-in failed."), "{log}");
    assert!(log.contains("\"nobody\""), "{log}");
    assert!(!log.contains("not her password") && !log.contains("wrong password!"));
    assert!(!log.contains(PASSWORD));

    // Sign-out needs the CSRF token; then the cookie is worth nothing.
    assert_eq!(
        console
            .send(Method::DELETE, "/ui/api/session", &vic, None, None)
            .0,
        403
    );
    assert_eq!(console.get("/api/v1/rules", &vic), 200, "still signed in");
    let resp = console
        .http
        .delete(format!("{}/ui/api/session", server.url()))
        .header("Cookie", &vic.cookie)
        .header("X-CSRF-Token", &vic.csrf)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("sysward_session=;") && cleared.contains("Max-Age=0"));
    let (status, body) = console.send(Method::GET, "/api/v1/rules", &vic, None, None);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the session is over"),
        "{body}"
    );
    assert_eq!(console.get("/ui/api/session", &vic), 401);
    // A made-up cookie is no session.
    let forged = Session {
        cookie: format!("sysward_session={}", "ab".repeat(32)),
        csrf: String::new(),
    };
    assert_eq!(console.get("/api/v1/rules", &forged), 401);
}

#[test]
fn an_idle_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "[ui]\nidle_timeout = \"2s\"\n");
    add_user(&server, "vic", "viewer");
    let console = Console::new(&server);
    let vic = console.sign_in("vic");
    // Used more often than the idle timeout, it goes on past it.
    for _ in 0..4 {
        assert_eq!(console.get("/api/v1/rules", &vic), 200);
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = console.send(Method::GET, "/api/v1/query?query=1", &vic, None, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(console.get("/ui/api/session", &vic), 401);
}

#[test]
fn the_shell_is_served_with_its_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let console = Console::new(&server);

    let check_headers = |resp: &Response| {
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
    };

    // /ui redirects to /ui/ (followed by the client).
    let resp = console.anonymous_get("/ui");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.url().path(), "/ui/");
    let resp = console.anonymous_get("/ui/");
    assert_eq!(resp.status().as_u16(), 200);
    check_headers(&resp);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().unwrap();
    assert!(page.contains(r#"<form id="sign-in""#), "{page}");
    assert!(page.contains(r#"<script src="console.js" defer></script>"#));
    assert!(page.contains(r#"<link rel="stylesheet" href="console.css">"#));

    for (path, kind, needle) in [
        ("/ui/console.js", "text/javascript", "/ui/api/session"),
        ("/ui/fleet.js", "text/javascript", "ui.register(\"fleet\""),
        ("/ui/chart.js", "text/javascript", "const charts = "),
        ("/ui/host.js", "text/javascript", "ui.register(\"host\""),
        ("/ui/console.css", "text/css", "--accent"),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = console.anonymous_get(path);
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        check_headers(&resp);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(resp.text().unwrap().contains(needle), "{path}");
    }
    for path in ["/ui/nothing", "/ui/api/nothing", "/ui/console.js/x"] {
        let resp = console.anonymous_get(path);
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        check_headers(&resp);
    }
    // The page holds no data; the API it calls asks for a session.
    let resp = console.anonymous_get("/ui/api/session");
    assert_eq!(resp.status().as_u16(), 401);
    check_headers(&resp);
    assert_eq!(
        console.anonymous_get("/api/v1/rules").status().as_u16(),
        401
    );
}
