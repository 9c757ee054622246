//! A small Chrome DevTools Protocol client to drive Debian's headless `chromium` from tests.
//!
//! [`Browser::start`] runs `chromium --headless=new --remote-debugging-port=0` with a
//! profile in a temporary directory, reads the port it chose from
//! `<profile>/DevToolsActivePort`, and connects to its browser WebSocket (plain `ws://` on
//! 127.0.0.1, blocking, as the rest of the tests). It opens one page (a target, attached
//! with `flatten`, so every command carries its `sessionId`) and enables `Page`, `Runtime`
//! and `Log` on it.
//!
//! Commands are sent one at a time: [`Browser::call`] writes `{id, method, params,
//! sessionId}` and reads messages until the answer with that id; every event read on the
//! way is looked at, so that console errors (`Runtime.consoleAPICalled` of type error or
//! assert), uncaught exceptions (`Runtime.exceptionThrown`), the browser's own error log
//! (`Log.entryAdded`: failed loads, CSP violations, …) and `Page.loadEventFired` are never
//! missed. A script added to every document also turns each `securitypolicyviolation`
//! event into a console error, so a CSP violation is seen whatever Chromium logs for it.
//!
//! Waiting is polling with a deadline ([`Browser::wait_until`]); nothing sleeps to let the
//! page catch up. On drop the browser is asked to close, then its process group is killed,
//! and the profile directory is removed.

use std::{
    fs,
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// The program started: Debian's wrapper, which reads `/etc/chromium.d`.
pub const CHROMIUM: &str = "chromium";

/// How long the sign-in form and the signed-in page may take to show.
const SIGN_IN_WAIT: Duration = Duration::from_secs(20);

/// How long one DevTools command, or the browser's start, may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Run in every document before its own scripts: a CSP violation becomes a console error.
const REPORT_CSP: &str = "document.addEventListener('securitypolicyviolation', (e) => \
     console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') \
     + ' at ' + e.sourceFile + ':' + e.lineNumber));";

/// `Some(why)` when `chromium` is not installed; for [`crate::can_run`].
pub fn missing() -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(CHROMIUM).is_file()));
    (!found).then(|| format!("{CHROMIUM} is missing: apt-get install chromium"))
}

/// The base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo, as
/// `--ignore-certificate-errors-spki-list` takes it.
pub fn spki_sha256(cert_pem: &str) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    STANDARD.encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
}

/// What went wrong in a DevTools command or in the page.
#[derive(Debug)]
pub enum Error {
    /// The script threw, or its promise was rejected: the exception's description.
    Script(String),
    /// The browser answered a command with an error.
    Protocol { method: String, error: Value },
    /// No answer within the limit.
    Timeout(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Script(m) => write!(f, "script error: {m}"),
            Self::Protocol { method, error } => write!(f, "{method} failed: {error}"),
            Self::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// Something the page reported: a console error, an uncaught exception or an error entry
/// of the browser's log.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `console`, `exception`, or `log:` and the log entry's source (`network`,
    /// `security`, `javascript`, …).
    pub kind: String,
    /// The message.
    pub text: String,
    /// The resource it is about, when known.
    pub url: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.kind, self.text)?;
        if !self.url.is_empty() {
            write!(f, " ({})", self.url)?;
        }
        Ok(())
    }
}

/// A headless Chromium with one page open.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    loads: u64,
    problems: Vec<Problem>,
    log: PathBuf,
    // Last: removed after the browser has gone.
    profile: tempfile::TempDir,
}

/// `<target dir>/ui-screenshots/NAME.png`: a test executable is in `<target
/// dir>/<profile>/deps/`, wherever `CARGO_TARGET_DIR` put it.
pub fn screenshot_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    target.join("ui-screenshots").join(format!("{name}.png"))
}

/// Fails with everything the page reported, except the browser's own line for each
/// answer of status 401 from `/ui/api/session` of the server at `base_url`: the console
/// asks whether it is signed in with `GET`, and a refused sign-in is a 401 too, which the
/// page shows itself. Chromium logs every 4xx answer to a `fetch` as a network error;
/// that is not the page's error.
pub fn assert_no_problems(b: &mut Browser, base_url: &str) {
    assert_no_problems_except(b, base_url, &[]);
}

/// As [`assert_no_problems`], also allowing the browser's line for each answer of the
/// `expected` (path, status) pairs: a refusal the test provoked on purpose, which the page
/// shows itself (a form's 400).
pub fn assert_no_problems_except(b: &mut Browser, base_url: &str, expected: &[(&str, u16)]) {
    let session = format!("{base_url}/ui/api/session");
    let allowed = |p: &Problem| {
        p.kind == "log:network"
            && ((p.url == session && p.text.contains("401"))
                || expected.iter().any(|(path, status)| {
                    p.url == format!("{base_url}{path}") && p.text.contains(&status.to_string())
                }))
    };
    let bad: Vec<String> = b
        .problems()
        .iter()
        .filter(|p| !allowed(p))
        .map(ToString::to_string)
        .collect();
    assert!(bad.is_empty(), "the page reported:\n{}", bad.join("\n"));
}

/// Where `scripts/test` puts axe-core (`npm ci --prefix tests/a11y`).
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("a11y/node_modules/axe-core/axe.min.js")
}

/// `Some(why)` when axe-core is not installed; for [`crate::can_run`].
pub fn axe_missing() -> Option<String> {
    let path = axe_path();
    (!path.is_file()).then(|| {
        format!(
            "{} is missing: npm ci --prefix tests/a11y (scripts/test does it)",
            path.display()
        )
    })
}

/// axe-core's WCAG 2.1 A and AA violations on the page as it is now, each as rule, impact,
/// help and the elements found. axe is injected through the DevTools protocol, which the
/// page's CSP does not govern.
pub fn accessibility_violations(b: &mut Browser) -> Vec<String> {
    let loaded = b.eval("typeof window.axe === 'object'").unwrap();
    if loaded != Value::Bool(true) {
        let source = std::fs::read_to_string(axe_path()).unwrap();
        b.eval(&source).unwrap();
    }
    let found = b
        .eval(
            "axe.run(document, { runOnly: { type: 'tag', values: \
               ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }) \
             .then((r) => r.violations.map((v) => v.id + ' (' + v.impact + '): ' + v.help \
               + ' at ' + v.nodes.map((n) => n.target.join(' ')).join(', ')))",
        )
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Fails with every [`accessibility_violations`] of the page; `what` names it.
pub fn assert_accessible(b: &mut Browser, what: &str) {
    let violations = accessibility_violations(b);
    assert!(
        violations.is_empty(),
        "{what}: axe found {} accessibility violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

impl Browser {
    /// Starts Chromium, which accepts a certificate whose public key is one of `trusted`
    /// (PEM certificates: the test server's own, made at its first start), and opens a
    /// blank page.
    ///
    /// The certificate is pinned with `--ignore-certificate-errors-spki-list` rather than
    /// `--ignore-certificate-errors`: only the test server's key is accepted, and a page
    /// that loads anything from elsewhere over TLS still fails as it would for a user.
    /// Chromium honours the list only with a `--user-data-dir`, which is always given.
    pub fn start(trusted: &[&str]) -> Self {
        let profile = tempfile::Builder::new()
            .prefix("sysward-chromium-")
            .tempdir()
            .unwrap();
        let data = profile.path().join("profile");
        let log = profile.path().join("chromium.log");
        let spki: Vec<String> = trusted.iter().map(|pem| spki_sha256(pem)).collect();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless=new",
            "--remote-debugging-port=0",
            "--no-first-run",
            "--no-default-browser-check",
            // Nothing but the test server: no updates, sync or metrics, no proxy from the
            // environment.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--window-size=1280,800",
            "about:blank",
        ])
        .arg(format!("--user-data-dir={}", data.display()))
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki.join(",")
        ));
        if nix::unistd::geteuid().is_root() {
            // Chromium refuses to start as root with its sandbox on (it needs an
            // unprivileged user for its setuid/namespace sandbox): CI and containers run
            // the tests as root. The page is our own, on loopback.
            cmd.arg("--no-sandbox");
        }
        let out = fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own process group, so that drop ends its renderers and helpers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let mut browser = Self::connect(child, profile, &data, log);
        browser.open_page();
        browser
    }

    fn connect(mut child: Child, profile: tempfile::TempDir, data: &Path, log: PathBuf) -> Self {
        let active = data.join("DevToolsActivePort");
        let deadline = Instant::now() + CALL_LIMIT;
        let (port, path) = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{CHROMIUM} exited ({status}) before it listened; its output:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            // Port on the first line, the browser's WebSocket path on the second; the
            // file is complete once both lines are there.
            let text = fs::read_to_string(&active).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.trim().to_string(), path.trim().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMIUM} wrote no {}; its output:\n{}",
                active.display(),
                fs::read_to_string(&log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        };
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}")).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            // A bound on every read, so that a browser that stops answering fails the
            // test instead of hanging it.
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        }
        Self {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            loads: 0,
            problems: Vec::new(),
            log,
            profile,
        }
    }

    fn open_page(&mut self) {
        let target = self
            .browser_call("Target.createTarget", json!({ "url": "about:blank" }))
            .unwrap();
        let attached = self
            .browser_call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .unwrap();
        self.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(domain, json!({})).unwrap();
        }
        self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": REPORT_CSP }),
        )
        .unwrap();
    }

    /// The profile directory's parent, which holds Chromium's output (`chromium.log`).
    pub fn dir(&self) -> &Path {
        self.profile.path()
    }

    /// Chromium's own output so far (stdout and stderr), for a failure message.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `method` to the page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.send(method, params, None)
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        let deadline = Instant::now() + CALL_LIMIT;
        loop {
            let Some(msg) = self.read(deadline) else {
                return Err(Error::Timeout(format!("the answer to {method}")));
            };
            if msg["id"].as_u64() == Some(id) {
                if let Some(error) = msg.get("error") {
                    return Err(Error::Protocol {
                        method: method.to_string(),
                        error: error.clone(),
                    });
                }
                return Ok(msg["result"].clone());
            }
        }
    }

    /// The next message, after noting it if it is an event; `None` after `deadline`.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let msg: Value = serde_json::from_str(&text).unwrap();
                    self.note(&msg);
                    return Some(msg);
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!(
                    "the DevTools connection failed: {e}; {CHROMIUM}'s output:\n{}",
                    self.output()
                ),
            }
        }
    }

    fn note(&mut self, msg: &Value) {
        let p = &msg["params"];
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match msg["method"].as_str().unwrap_or_default() {
            "Page.loadEventFired" => self.loads += 1,
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                let text = p["args"]
                    .as_array()
                    .map(|args| {
                        args.iter()
                            .map(|a| match &a["value"] {
                                Value::String(s) => s.clone(),
                                Value::Null => str_of(&a["description"]),
                                v => v.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let url = str_of(&p["stackTrace"]["callFrames"][0]["url"]);
                self.problems.push(Problem {
                    kind: "console".into(),
                    text,
                    url,
                });
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let text = d["exception"]["description"]
                    .as_str()
                    .unwrap_or(d["text"].as_str().unwrap_or("exception"))
                    .to_string();
                self.problems.push(Problem {
                    kind: "exception".into(),
                    text,
                    url: str_of(&d["url"]),
                });
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                let e = &p["entry"];
                self.problems.push(Problem {
                    kind: format!("log:{}", str_of(&e["source"])),
                    text: str_of(&e["text"]),
                    url: str_of(&e["url"]),
                });
            }
            _ => {}
        }
    }

    /// Goes to `url` and waits for its load event.
    pub fn navigate(&mut self, url: &str) -> Result<(), Error> {
        let before = self.loads;
        let nav = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(e) = nav["errorText"].as_str() {
            return Err(Error::Protocol {
                method: format!("Page.navigate to {url}"),
                error: json!(e),
            });
        }
        let deadline = Instant::now() + CALL_LIMIT;
        while self.loads == before {
            if self.read(deadline).is_none() {
                return Err(Error::Timeout(format!("{url} to load")));
            }
        }
        Ok(())
    }

    /// The JSON value of `expression` in the page, awaited if it is a promise; an
    /// exception or a rejection is [`Error::Script`] with its message. `undefined` is null.
    pub fn eval(&mut self, expression: &str) -> Result<Value, Error> {
        let r = self.call(
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
        )?;
        if let Some(d) = r.get("exceptionDetails") {
            let text = d["exception"]["description"]
                .as_str()
                .or(d["exception"]["value"].as_str())
                .or(d["text"].as_str())
                .unwrap_or("exception");
            return Err(Error::Script(text.to_string()));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Opens the console of the server at `base_url` and signs in through its form as
    /// `user`; returns once the page says who is signed in.
    pub fn sign_in(&mut self, base_url: &str, user: &str, password: &str) -> Result<(), Error> {
        self.navigate(&format!("{base_url}/ui/"))?;
        self.fill_sign_in(user, password)
    }

    /// Signs in through the form of the console page open now (which shows it when no one
    /// is signed in); returns once the page says who is signed in.
    pub fn fill_sign_in(&mut self, user: &str, password: &str) -> Result<(), Error> {
        self.wait_until(
            "!document.getElementById('sign-in').hidden",
            SIGN_IN_WAIT,
            "the sign-in form",
        )?;
        self.type_into("#user", user)?;
        self.type_into("#password", password)?;
        self.click("#sign-in button[type=submit]")?;
        self.wait_until(
            "!document.getElementById('who').hidden",
            SIGN_IN_WAIT,
            "signed in",
        )?;
        Ok(())
    }

    /// Presses and releases `key` (`Tab`, `Enter`, `Escape` or ` `) as the keyboard
    /// would, on whatever has the focus.
    pub fn press(&mut self, key: &str) -> Result<(), Error> {
        let (code, vk, text) = match key {
            "Tab" => ("Tab", 9, "\t"),
            "Enter" => ("Enter", 13, "\r"),
            "Escape" => ("Escape", 27, ""),
            " " => ("Space", 32, " "),
            other => panic!("press: no key {other}"),
        };
        for kind in ["keyDown", "keyUp"] {
            let typed = if kind == "keyDown" { text } else { "" };
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key, "code": code,
                       "windowsVirtualKeyCode": vk, "text": typed}),
            )?;
        }
        Ok(())
    }

    /// Polls `condition` (a JS expression) until it is truthy, and returns its value;
    /// [`Error::Timeout`] after `limit`, with `what` and the last value or error.
    pub fn wait_until(
        &mut self,
        condition: &str,
        limit: Duration,
        what: &str,
    ) -> Result<Value, Error> {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.eval(condition) {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!("{what} (last: {last})")));
            }
            // Events that came in meanwhile are read by the next call.
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts `text` in the element at `selector` as typing would (focus, clear, then
    /// `Input.insertText`, which fires `input` events).
    pub fn type_into(&mut self, selector: &str, text: &str) -> Result<(), Error> {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({s}); \
             if (!e) throw new Error('no element ' + {s}); e.focus(); e.value = ''; }})()",
            s = json!(selector)
        ))?;
        self.call("Input.insertText", json!({ "text": text }))?;
        Ok(())
    }

    /// Clicks the middle of the element at `selector` with the mouse, after scrolling it
    /// into view; an error if it is missing or not shown.
    pub fn click(&mut self, selector: &str) -> Result<(), Error> {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({s}); \
             if (!e) throw new Error('no element ' + {s}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); \
             if (r.width === 0 || r.height === 0) throw new Error('not shown: ' + {s}); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            s = json!(selector)
        ))?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1 }),
            )?;
        }
        Ok(())
    }

    /// Writes a PNG of the page's viewport to `path`, creating its directory.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), Error> {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let png = STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(path, png).unwrap();
        Ok(())
    }

    /// What the page reported so far (console errors, uncaught exceptions, error log
    /// entries), after reading the events that are waiting.
    pub fn problems(&mut self) -> &[Problem] {
        // A round trip: every event sent before its answer has been noted.
        self.eval("0").unwrap();
        &self.problems
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Politely first, so that it writes nothing more into the profile; then the whole
        // process group, renderers included.
        let _ = self.ws.send(Message::text(
            json!({ "id": 0, "method": "Browser.close" }).to_string(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        // `profile` is removed when the fields drop, after this.
    }
}
