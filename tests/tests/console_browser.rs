//! The console's sign-in page in a real headless Chromium, over the DevTools protocol
//! (`sysward_tests::browser`): the real server on 127.0.0.1 with its own TLS, a user made by
//! the real CLI, the form filled and submitted as a user would, sign-out with the button,
//! and a wrong password shown on the page. No console error, uncaught exception or CSP
//! violation is allowed. Screenshots go to `<target dir>/ui-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use sysward_tests::{
    Server, bin,
    browser::{self, Browser},
    can_run, poll,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);

/// `sysward-server user add NAME --role ROLE`, the password on standard input.
fn add_user(server: &Server, name: &str, role: &str) {
    let mut child = Command::new(bin("sysward-server"))
        .arg("--config")
        .arg(&server.config)
        .args(["user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<target dir>/ui-screenshots/NAME.png`: the test executable is in `<target
/// dir>/<profile>/deps/`, wherever `CARGO_TARGET_DIR` put it.
fn screenshot_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    target.join("ui-screenshots").join(format!("{name}.png"))
}

/// A server with user `ann` (editor), and a browser that trusts its certificate.
fn start(root: &std::path::Path) -> (Server, Browser) {
    let server = Server::start(root, "");
    add_user(&server, "ann", "editor");
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    (server, Browser::start(&[&cert]))
}

/// Fails with everything the page reported, except the browser's own line for each
/// answer of status 401 from `/ui/api/session`: the page asks whether it is signed in with
/// `GET`, and a refused sign-in is a 401 too, which the page shows itself. Chromium logs
/// every 4xx answer to a `fetch` as a network error; that is not the page's error.
fn assert_no_problems(b: &mut Browser, server: &Server) {
    let session = format!("{}/ui/api/session", server.url());
    let bad: Vec<String> = b
        .problems()
        .iter()
        .filter(|p| !(p.kind == "log:network" && p.url == session && p.text.contains("401")))
        .map(ToString::to_string)
        .collect();
    assert!(bad.is_empty(), "the page reported:\n{}", bad.join("\n"));
}

/// The form is shown, the user box is empty and nobody is signed in.
const SIGN_IN_SHOWN: &str = "!document.getElementById('sign-in').hidden \
     && document.getElementById('who').hidden && document.getElementById('home').hidden";

#[test]
fn a_user_signs_in_and_out_in_a_real_browser() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, mut b) = start(dir.path());

    b.navigate(&format!("{}/ui/", server.url())).unwrap();
    b.wait_until(SIGN_IN_SHOWN, WAIT, "the sign-in form")
        .unwrap();
    assert_eq!(b.eval("document.title").unwrap(), "Sysward");
    b.screenshot(&screenshot_path("sign-in")).unwrap();

    b.type_into("#user", "ann").unwrap();
    b.type_into("#password", PASSWORD).unwrap();
    b.click("#sign-in button[type=submit]").unwrap();
    let who = b
        .wait_until(
            "!document.getElementById('who').hidden \
             && document.getElementById('who-name').textContent",
            WAIT,
            "the page to show who is signed in",
        )
        .unwrap();
    assert_eq!(who, "ann");
    assert_eq!(
        b.eval("document.getElementById('who-role').textContent")
            .unwrap(),
        "editor"
    );
    assert_eq!(
        b.eval("document.getElementById('sign-in').hidden").unwrap(),
        true
    );
    // The cookie is HttpOnly: the page's script cannot read it.
    assert_eq!(b.eval("document.cookie").unwrap(), "");
    b.screenshot(&screenshot_path("signed-in")).unwrap();

    // A reload keeps the session: the page asks the server who is signed in.
    b.navigate(&format!("{}/ui/", server.url())).unwrap();
    b.wait_until(
        "document.getElementById('who-name').textContent === 'ann'",
        WAIT,
        "the session to survive a reload",
    )
    .unwrap();

    b.click("#sign-out").unwrap();
    b.wait_until(SIGN_IN_SHOWN, WAIT, "the sign-in form after signing out")
        .unwrap();
    assert_eq!(
        b.eval("document.getElementById('message').textContent")
            .unwrap(),
        "Signed out."
    );
    assert_eq!(
        b.eval("document.getElementById('password').value").unwrap(),
        ""
    );
    // Signed out on the server too, not only on the page.
    let status = b
        .eval("fetch('/ui/api/session').then((r) => r.status)")
        .unwrap();
    assert_eq!(status, 401);
    b.screenshot(&screenshot_path("signed-out")).unwrap();

    assert_no_problems(&mut b, &server);
}

#[test]
fn a_wrong_password_is_shown_on_the_page() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, mut b) = start(dir.path());

    b.navigate(&format!("{}/ui/", server.url())).unwrap();
    b.wait_until(SIGN_IN_SHOWN, WAIT, "the sign-in form")
        .unwrap();
    b.type_into("#user", "ann").unwrap();
    b.type_into("#password", "not the password at all").unwrap();
    b.click("#sign-in button[type=submit]").unwrap();
    let message = b
        .wait_until(
            "document.getElementById('message').className === 'error' \
             && document.getElementById('message').textContent",
            WAIT,
            "an error message on the page",
        )
        .unwrap();
    assert_eq!(message, "unknown user or wrong password");
    assert_eq!(b.eval(SIGN_IN_SHOWN).unwrap(), true);
    assert_eq!(
        b.eval("document.getElementById('password').value").unwrap(),
        ""
    );
    b.screenshot(&screenshot_path("wrong-password")).unwrap();

    assert_no_problems(&mut b, &server);
}

/// The harness itself: a script's exception is an error with its message, a console error
/// is reported, and so is a CSP violation on the console's page.
#[test]
fn the_harness_reports_script_errors_console_errors_and_csp_violations() {
    if !can_run(browser::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, mut b) = start(dir.path());
    b.navigate(&format!("{}/ui/", server.url())).unwrap();
    b.wait_until(SIGN_IN_SHOWN, WAIT, "the sign-in form")
        .unwrap();

    let e = b.eval("Promise.reject(new Error('nope'))").unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert_eq!(
        b.eval("[1, 'a', {b: null}]").unwrap(),
        serde_json::json!([1, "a", {"b": null}])
    );
    b.eval("console.error('something broke', 42)").unwrap();
    // An inline script, which the page's CSP forbids.
    b.eval(
        "document.head.appendChild(Object.assign(document.createElement('script'), \
         {textContent: 'window.ran = true'})); window.ran === undefined",
    )
    .unwrap();
    // The violation's event comes after the script's evaluation has answered.
    poll(WAIT, "the CSP violation to be reported", || {
        b.problems()
            .iter()
            .any(|p| {
                p.kind == "console"
                    && p.text
                        .starts_with("CSP violation: script-src-elem blocked inline")
            })
            .then_some(())
    });
    let problems: Vec<String> = b.problems().iter().map(ToString::to_string).collect();
    assert!(
        problems.iter().any(|p| p == "[console] something broke 42"),
        "{problems:#?}"
    );
    assert_eq!(b.eval("window.ran === undefined").unwrap(), true);
}
