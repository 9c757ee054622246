//! The console's sign-in page in a real headless Chromium, over the DevTools protocol
//! (`sysward_tests::browser`): the real server on 127.0.0.1 with its own TLS, a user made by
//! the real CLI, the form filled and submitted as a user would, sign-out with the button,
//! and a wrong password shown on the page. No console error, uncaught exception or CSP
//! violation is allowed. Screenshots go to `<target dir>/ui-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sysward_tests::{
    Server,
    browser::{self, Browser},
    can_run, poll,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);

/// A server with user `ann` (editor), and a browser that trusts its certificate.
fn start(root: &std::path::Path) -> (Server, Browser) {
    let server = Server::start(root, "");
    server.add_console_user("ann", "editor", PASSWORD);
    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    (server, Browser::start(&[&cert]))
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
    b.screenshot(&browser::screenshot_path("sign-in")).unwrap();

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
    b.screenshot(&browser::screenshot_path("signed-in"))
        .unwrap();

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
    b.screenshot(&browser::screenshot_path("signed-out"))
        .unwrap();

    browser::assert_no_problems(&mut b, &server.url());
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
    b.screenshot(&browser::screenshot_path("wrong-password"))
        .unwrap();

    browser::assert_no_problems(&mut b, &server.url());
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
