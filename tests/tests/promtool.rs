//! Prometheus' own client against our server: `promtool query instant|range|series|labels`
//! (Debian's `prometheus` package, which `.ci/run` installs) over real TLS with an API
//! token. promtool 2.42's query commands have no `--http.config.file`, so the token goes
//! in the URL as basic auth's password (Go's HTTP client sends it) and the server's CA in
//! `SSL_CERT_FILE` (Go's TLS reads its roots from there). Without promtool the test prints
//! NOT RUN and passes, except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sysward_tests::{Agent, Server, poll};

const PROMTOOL: &str = "/usr/bin/promtool";
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n";

/// Whether promtool is here; without it, NOT RUN outside CI and a failure in CI.
fn have_promtool() -> bool {
    if Path::new(PROMTOOL).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{PROMTOOL} is missing under CI: .ci/run installs the prometheus package"
    );
    println!("NOT RUN: {PROMTOOL} is missing (apt-get install prometheus)");
    false
}

struct Promtool<'a> {
    server: &'a Server,
    url: String,
}

impl Promtool<'_> {
    fn run(&self, args: &[&str], url: &str) -> Output {
        let ca = self.server.root.join("server-data/pki/ca.crt");
        let mut full: Vec<&str> = vec!["query"];
        full.extend_from_slice(args);
        // The server URL goes after the flags and before the positional arguments.
        let at = full.iter().position(|a| *a == "URL").unwrap();
        full[at] = url;
        Command::new(PROMTOOL)
            .args(&full)
            .env("SSL_CERT_FILE", ca)
            .output()
            .unwrap()
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &self.url);
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn promtool_queries_our_server() {
    if !have_promtool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let mut agent = Agent::configure(dir.path(), "pt-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();
    poll(Duration::from_secs(60), "node_load1 to arrive", || {
        (server.read("node_load1").first()?["values"]
            .as_array()?
            .len()
            >= 3)
            .then_some(())
    });
    let token = server.api_token("read", "promtool", &[]);
    let tool = Promtool {
        server: &server,
        url: format!("https://promtool:{token}@127.0.0.1:{}", server.port),
    };

    let out = tool.ok(&["instant", "URL", "node_load1"]);
    assert!(
        out.contains("node_load1{") && out.contains("instance=\"pt-1\"") && out.contains(" => "),
        "{out}"
    );
    let out = tool.ok(&["instant", "URL", "1+1"]);
    assert!(out.starts_with("scalar: 2 @["), "{out}");

    // To a second past now: whole seconds would miss a point pushed within the last one.
    let (start, end) = ((now_s() - 30).to_string(), (now_s() + 1).to_string());
    let out = tool.ok(&[
        "range",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "1s",
        "URL",
        "node_load1",
    ]);
    // Three points about a second apart: at least two steps of 1 s see different ones.
    let points = out.lines().filter(|l| l.contains(" @[")).count();
    assert!(out.contains("instance=\"pt-1\"") && points >= 2, "{out}");

    let out = tool.ok(&["series", "--match", "node_load1", "URL"]);
    assert!(
        out.contains("__name__=\"node_load1\"") && out.contains("instance=\"pt-1\""),
        "{out}"
    );
    let out = tool.ok(&["labels", "URL", "instance"]);
    assert_eq!(out.trim(), "pt-1", "{out}");
    let out = tool.ok(&["labels", "--match", "node_load1", "URL", "__name__"]);
    assert_eq!(out.trim(), "node_load1", "{out}");

    // Refusals reach promtool as errors: no token, and a bad expression.
    let anonymous = format!("https://127.0.0.1:{}", server.port);
    let out = tool.run(&["instant", "URL", "1"], &anonymous);
    assert!(!out.status.success(), "no token, yet it answered");
    let out = tool.run(&["instant", "URL", "sum("], &tool.url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("bad_data"),
        "{stderr}"
    );
}
