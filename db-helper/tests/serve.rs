//! The agent's side of the database collectors (`database_helper::DatabaseHelper`, as the
//! registry builds it) with this crate's `sysward-db`, and with stand-in helpers that
//! misbehave. The real servers behind it: `tests/tests/services.rs`.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sysward_collectors::database_helper::DatabaseHelper;
use sysward_collectors::{Collector, Output, Sample};

const HELPER: &str = env!("CARGO_BIN_EXE_sysward-db");

fn table(text: &str) -> toml::Table {
    toml::from_str(text).expect("valid TOML")
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn run(collector: &mut DatabaseHelper) -> Output {
    let mut out = Output::default();
    collector
        .collect(&mut out)
        .expect("a helper's failure is an error of the run");
    out
}

fn value(out: &Output, name: &str) -> Option<f64> {
    out.samples
        .iter()
        .find(|sample: &&Sample| sample.name == name)
        .map(|sample| sample.value)
}

#[test]
fn the_helper_checks_the_settings_and_names_the_agents_key_too() {
    let error = DatabaseHelper::start(
        "postgres",
        &table(&format!("helper = \"{HELPER}\"\nbogus = 1")),
    )
    .expect_err("an unknown key is refused");
    assert_eq!(
        error,
        "unknown setting `bogus` for collector postgres (allowed: helper, servers, \
         connect_timeout, statement_timeout, run_budget, max_objects, statements_top, \
         enabled, tier, interval, timeout)"
    );
    let error = DatabaseHelper::start(
        "mysql",
        &table(&format!(
            "helper = \"{HELPER}\"\n[[servers]]\nname = \"a\"\nport = \"x\""
        )),
    )
    .expect_err("a bad value is refused");
    assert!(error.contains("for collector mysql"), "{error}");
}

#[test]
fn a_server_that_is_down_is_down_in_the_samples_not_a_stopped_helper() {
    let port = closed_port();
    for (name, up, url) in [
        (
            "postgres",
            "pg_up",
            format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
        ),
        (
            "mysql",
            "mysql_up",
            format!("mysql://root@127.0.0.1:{port}"),
        ),
    ] {
        let settings = format!(
            "helper = \"{HELPER}\"\nrun_budget = \"3s\"\nconnect_timeout = \"2s\"\n\
             [[servers]]\nname = \"gone\"\nurl = \"{url}\"\n"
        );
        let mut collector = DatabaseHelper::start(name, &table(&settings))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        for round in 0..2 {
            let out = run(&mut collector);
            assert_eq!(value(&out, up), Some(0.0), "{name} round {round}: {out:?}");
            assert!(
                out.errors.iter().any(|error| error.contains("gone")),
                "{name}: the error names the server: {:?}",
                out.errors
            );
        }
    }
}

/// A stand-in helper in `dir`: a shell script that counts its starts in `starts`.
fn fake_helper(dir: &Path, body: &str) -> String {
    let path = dir.join("fake-db");
    let script = format!(
        "#!/bin/sh\necho start >> {}/starts\nread -r configure\n\
         echo '{{\"ready\":{{\"run_budget_ms\":100}}}}'\n{body}\n",
        dir.display()
    );
    std::fs::write(&path, script).expect("write the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("starts"))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_helper_that_exits_is_reported_and_started_again_on_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let helper = fake_helper(
        dir.path(),
        "read -r collect\necho '{\"output\":{\"samples\":[{\"name\":\"pg_up\",\"value\":1.0}],\
         \"errors\":[]}}'\nread -r collect\nexit 3",
    );
    let mut collector =
        DatabaseHelper::start("postgres", &table(&format!("helper = \"{helper}\"")))
            .expect("the stand-in is ready");
    assert_eq!(value(&run(&mut collector), "pg_up"), Some(1.0));
    let out = run(&mut collector);
    assert!(out.samples.is_empty());
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(
        out.errors[0].starts_with("the helper stopped")
            && out.errors[0].ends_with("started again on the next run"),
        "{:?}",
        out.errors
    );
    assert_eq!(starts(dir.path()), 1);
    assert_eq!(value(&run(&mut collector), "pg_up"), Some(1.0));
    assert_eq!(starts(dir.path()), 2);
}

#[test]
fn a_helper_that_hangs_is_given_up_after_its_budget_and_a_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let helper = fake_helper(dir.path(), "read -r collect\nexec sleep 600");
    let mut collector = DatabaseHelper::start("mysql", &table(&format!("helper = \"{helper}\"")))
        .expect("the stand-in is ready");
    let started = std::time::Instant::now();
    let out = run(&mut collector);
    assert!(
        out.errors.len() == 1 && out.errors[0].starts_with("the helper gave no answer within 5.1s"),
        "{:?}",
        out.errors
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(collector);
}

#[test]
fn garbage_from_the_helper_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let helper = fake_helper(dir.path(), "read -r collect\necho 'not json'\nread -r x");
    let mut collector =
        DatabaseHelper::start("postgres", &table(&format!("helper = \"{helper}\"")))
            .expect("the stand-in is ready");
    let out = run(&mut collector);
    assert!(
        out.errors.len() == 1
            && out.errors[0].starts_with("the helper sent a line that is not a reply"),
        "{:?}",
        out.errors
    );
}

#[test]
fn the_helper_ends_with_its_input_and_refuses_anything_else() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(HELPER)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());

    let mut child = Command::new(HELPER)
        .arg("serve")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(b"\"collect\"\n").expect("write");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sysward-db: unexpected request Collect\n"
    );
    let status = Command::new(HELPER).status().expect("run");
    assert_eq!(status.code(), Some(2));
}
