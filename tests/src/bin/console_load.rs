//! `console_load`: the console's load times, a benchmark (run by `benches/console-load.sh`,
//! release build, with `SYSWARD_BIN_DIR` naming where the binaries are): a server holding 1,000 hosts (the last 30
//! minutes of `gen_hosts` history, each host with an `agent_id` and an `up` series as an
//! agent's would have) and one host with a week of 10-second data, imported before the
//! server starts. A headless Chromium signed in as an admin loads the Fleet page and the
//! week-long Host page afresh, RUNS times each (default 5), and prints how long after the
//! navigation started each page was drawn with all its requests answered, read from the
//! page's own clock (`performance.now()`, zero at navigation start), and the console's
//! assets' size, raw and gzip-compressed. Nothing is asserted about speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, BufWriter, Write},
    path::Path,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sysward_tests::{
    Server, bin,
    browser::{self, Browser},
    gzip,
};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(120);
const FLEET_HOSTS: u32 = 1000;
/// The host of the week-long page.
const WEEK_HOST: &str = "week-0";

fn generate(out: &Path, hosts: u32, span: &str, interval: &str, seed: &str) {
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        * 60;
    let done = Command::new(bin("gen_hosts"))
        .args(["--hosts", &hosts.to_string(), "--span", span])
        .args(["--interval", interval, "--seed", seed])
        .args(["--end", &end.to_string(), "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(done.success());
}

/// `gen_hosts` names a host `instance="host-N:9100"`; an agent's series carry
/// `agent_id` and `instance` = its host name, and the server writes an `up` for it. So
/// each host here becomes `PREFIX-N` in both labels, with an `up` of 1 beside its load.
fn as_agents(from: &Path, to: &Path, prefix: &str) {
    let input = BufReader::new(std::fs::File::open(from).unwrap());
    let mut out = BufWriter::new(std::fs::File::create(to).unwrap());
    writeln!(out, "# TYPE up gauge").unwrap();
    for line in input.lines() {
        let line = line.unwrap();
        let Some(start) = line.find("instance=\"host-") else {
            writeln!(out, "{line}").unwrap();
            continue;
        };
        let rest = &line[start + "instance=\"host-".len()..];
        let n = &rest[..rest.find(':').unwrap()];
        let old = format!("instance=\"host-{n}:9100\"");
        let labels = format!("instance=\"{prefix}-{n}\",agent_id=\"{prefix}-{n}\"");
        let line = line.replacen(&old, &labels, 1);
        writeln!(out, "{line}").unwrap();
        if line.starts_with("node_load1{") {
            let ts = line.rsplit(' ').next().unwrap();
            writeln!(out, "up{{{labels}}} 1 {ts}").unwrap();
        }
    }
    out.flush().unwrap();
}

fn import(server: &Server, file: &Path) {
    let out = server.cli(&["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Loads `url` afresh (from a blank page) `runs` times; the page's clock when `drawn`
/// first holds with no request in flight, in ms.
fn load_times(b: &mut Browser, url: &str, drawn: &str, runs: usize) -> Vec<f64> {
    let condition = format!(
        "({drawn}) && document.documentElement.dataset.requests === '0' && performance.now()"
    );
    (0..runs)
        .map(|_| {
            b.navigate("about:blank").unwrap();
            b.navigate(url).unwrap();
            b.wait_until(&condition, WAIT, url)
                .unwrap()
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn asset_sizes() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/ui");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut raw, mut packed, mut lines) = (0, 0, String::new());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let z = gzip(&bytes).len();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        writeln!(lines, "  {name:<20} {:>8} B  {z:>7} B gzip", bytes.len()).unwrap();
        raw += bytes.len();
        packed += z;
    }
    format!("{lines}  {:<20} {raw:>8} B  {packed:>7} B gzip", "all")
}

fn main() {
    if let Some(why) = browser::missing() {
        eprintln!("{why}");
        std::process::exit(2);
    }
    let runs: usize = std::env::var("RUNS").map_or(5, |r| r.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "");
    server.add_console_user("ada", "admin", PASSWORD);
    server.kill();
    let raw = dir.path().join("raw.om");
    let data = dir.path().join("data.om");
    generate(&raw, FLEET_HOSTS, "30m", "60s", "1");
    as_agents(&raw, &data, "host");
    import(&server, &data);
    generate(&raw, 1, "7d", "10s", "2");
    as_agents(&raw, &data, "week");
    import(&server, &data);
    server.restart();

    let cert = std::fs::read_to_string(server.root.join("server-data/pki/server.crt")).unwrap();
    let mut b = Browser::start(&[&cert]);
    b.sign_in(&server.url(), "ada", PASSWORD).unwrap();

    let fleet = load_times(
        &mut b,
        &format!("{}/ui/#/fleet", server.url()),
        &format!("document.querySelectorAll('#fleet-rows tr').length >= {FLEET_HOSTS}"),
        runs,
    );
    println!(
        "fleet page, {FLEET_HOSTS} hosts: {fleet:.0?} ms, median {:.0} ms",
        median(fleet.clone())
    );
    let host = load_times(
        &mut b,
        &format!("{}/ui/#/host/{WEEK_HOST}/7d", server.url()),
        "document.querySelector('.page-host') \
         && [...document.querySelectorAll('.page-host [data-points]')] \
              .some((c) => Number(c.dataset.points) > 0)",
        runs,
    );
    println!(
        "host page, 7 days of 10 s data: {host:.0?} ms, median {:.0} ms",
        median(host.clone())
    );
    println!("console assets:\n{}", asset_sizes());
    browser::assert_no_problems(&mut b, &server.url());
}
