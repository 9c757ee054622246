//! `sysward-server import`: refused while the server runs, then a backfill of `gen_hosts`
//! history that the restarted server serves with the file's labels, stored once however
//! often it is imported; a malformed file is refused whole, its lines named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use sysward_tests::{Server, bin};

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn generate(path: &Path, hosts: u32, span: &str, end: i64) {
    let out = Command::new(bin("gen_hosts"))
        .args([
            "--hosts",
            &hosts.to_string(),
            "--span",
            span,
            "--interval",
            "60s",
        ])
        .args(["--end", &end.to_string(), "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn backfill_keeps_the_files_labels_and_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 60 * 60;
    let data = dir.path().join("hosts.om");
    generate(&data, 2, "2h", end);
    let file = data.to_str().unwrap();

    let running = server.cli(&["import", file]);
    assert!(!running.status.success());
    assert!(
        text(&running.stderr).contains("stop the server"),
        "{}",
        text(&running.stderr)
    );

    server.kill();
    let out = server.cli(&["import", file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    // 45 series per host (16 CPU, 2 memory, 6 filesystem, 3 load, 4 network, 14
    // histogram), one sample a minute for two hours.
    assert!(report.contains("series: 90\n"), "{report}");
    assert!(
        report.contains("10800 read, 10800 stored (0 for the rollups only"),
        "{report}"
    );
    assert!(report.contains("refused: 0 out of order"), "{report}");

    let again = server.cli(&["import", file]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let report = text(&again.stdout);
    assert!(report.contains("10800 read, 0 stored"), "{report}");
    assert!(
        report.contains("already stored by an earlier import"),
        "{report}"
    );

    server.restart();
    let load = server.read("node_load1");
    assert_eq!(load.len(), 2, "{load:?}");
    for s in &load {
        let metric = s["metric"].as_object().unwrap();
        assert_eq!(metric["job"], "node");
        assert!(metric["instance"].as_str().unwrap().starts_with("host-"));
        // No agent_id beyond the empty one the store keeps for "none".
        assert_eq!(
            metric
                .get("agent_id")
                .and_then(|v| v.as_str())
                .unwrap_or(""),
            ""
        );
        let values = s["values"].as_array().unwrap();
        assert_eq!(values.len(), 120);
        assert_eq!(values.last().unwrap()[0].as_i64().unwrap(), end * 1000);
    }
}

#[test]
fn a_malformed_file_is_refused_whole_with_its_lines_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let path = dir.path().join("bad.om");
    fs::write(
        &path,
        "# TYPE up gauge\nup 1 1700000000\nup{a=\"x} 1 1700000060\nup 2\n# EOF\n",
    )
    .unwrap();
    let mut server = server;
    server.kill();
    let out = server.cli(&["import", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(":line 3: "), "{err}");
    assert!(err.contains(":line 4: up: no timestamp"), "{err}");
    assert!(err.contains("2 malformed line(s)"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    server.restart();
    assert!(server.read("up").is_empty());
}
