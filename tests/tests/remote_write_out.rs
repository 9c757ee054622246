//! Remote write out with the real programs: a real agent feeds a real server, which
//! forwards to Debian's VictoriaMetrics and to Debian's Prometheus (remote write
//! receiver). What the agent sent is there sample by sample, as Sysward's own read API
//! returns it; VictoriaMetrics is then stopped, the server is killed with `kill -9` during
//! the outage and started again, VictoriaMetrics comes back on the same data, and every
//! sample of the outage arrives.
//!
//! The outage lasts a few seconds here; `benches/remote-write-outage.sh` runs it for a
//! minute (`SYSWARD_RW_OUTAGE_SECS`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use sysward_tests::{
    Agent, Server, poll,
    receivers::{PromReceiver, Samples, Victoria, receivers_installed},
};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
/// The series compared sample by sample.
const COMPARED: &str = r#"{__name__=~"node_load1|node_load5|node_memory_MemAvailable_bytes"}"#;
const WITHIN: Duration = Duration::from_secs(60);

/// What Sysward's `/api/v1/read` returns for `selector`.
fn sysward(server: &Server, selector: &str) -> Samples {
    server
        .read(selector)
        .iter()
        .map(|s| {
            let labels: BTreeMap<String, String> = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            (labels, points)
        })
        .collect()
}

/// Whether `outer` holds every series of `inner` under the same labels, with every one of
/// its samples at the same time with the same value; the first difference otherwise.
fn holds(outer: &Samples, inner: &Samples) -> Result<(), String> {
    for (labels, points) in inner {
        let Some(theirs) = outer.get(labels) else {
            return Err(format!("no series {labels:?}"));
        };
        let theirs: BTreeMap<i64, f64> = theirs.iter().copied().collect();
        for (t, v) in points {
            match theirs.get(t) {
                Some(x) if x.to_bits() == v.to_bits() => {}
                other => return Err(format!("{labels:?} at {t}: {v} vs {other:?}")),
            }
        }
    }
    Ok(())
}

fn with_label(samples: &Samples, name: &str, value: &str) -> Samples {
    samples
        .iter()
        .map(|(l, p)| {
            let mut l = l.clone();
            l.insert(name.into(), value.into());
            (l, p.clone())
        })
        .collect()
}

fn points(samples: &Samples, name: &str) -> usize {
    samples
        .iter()
        .filter(|(l, _)| l["__name__"] == name)
        .map(|(_, p)| p.len())
        .sum()
}

/// A sample of the server's `/metrics`, 0 when absent.
fn metric(server: &Server, line_start: &str) -> f64 {
    let (status, text) = server.admin_get_text("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn agent_samples_reach_victoria_metrics_and_prometheus_and_survive_an_outage() {
    if !receivers_installed("remote_write_out") {
        return;
    }
    let outage = Duration::from_secs(
        std::env::var("SYSWARD_RW_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Victoria::start(dir.path());
    let prom = PromReceiver::start(dir.path());
    let mut server = Server::start(
        dir.path(),
        &format!(
            r#"
[[remote_write]]
name = "vm"
url = "{}"
min_backoff = "50ms"
max_backoff = "500ms"

[[remote_write]]
name = "prometheus"
url = "{}"
keep = ['{{__name__=~"node_load.*|node_memory_MemAvailable_bytes"}}']
drop = ['node_load15']
extra_labels = {{ cluster = "test" }}
"#,
            vm.write_url(),
            prom.write_url()
        ),
    );
    let mut agent = Agent::configure(dir.path(), "rw-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();

    // What the agent sent is in both receivers, sample by sample, and nothing else is.
    let sent = poll(WITHIN, "four node_load1 points in Sysward", || {
        let s = sysward(&server, COMPARED);
        (points(&s, "node_load1") >= 4).then_some(s)
    });
    assert_eq!(sent.len(), 3, "{sent:?}");
    let vm_has = poll(WITHIN, "VictoriaMetrics to hold them", || {
        let theirs = vm.export(COMPARED);
        holds(&theirs, &sent).ok().map(|()| theirs)
    });
    holds(&sysward(&server, COMPARED), &vm_has).unwrap();
    let prom_has = poll(WITHIN, "Prometheus to hold them", || {
        let theirs = prom.samples(COMPARED);
        holds(&theirs, &with_label(&sent, "cluster", "test"))
            .ok()
            .map(|()| theirs)
    });
    holds(
        &with_label(&sysward(&server, COMPARED), "cluster", "test"),
        &prom_has,
    )
    .unwrap();
    // Relabelling: Prometheus got what `keep` names but not what `drop` does.
    assert!(prom.samples("node_load15").is_empty());
    assert!(prom.samples("node_cpu_seconds_total").is_empty());
    assert!(!vm.export("node_cpu_seconds_total").is_empty());

    // VictoriaMetrics goes away; the server is killed during the outage and comes back.
    vm.stop();
    let stopped = Instant::now();
    let before = points(&sysward(&server, COMPARED), "node_load1");
    poll(WITHIN + outage, "failed sends and new points", || {
        let now = points(&sysward(&server, COMPARED), "node_load1");
        (now >= before + 2
            && metric(
                &server,
                "sysward_server_remote_write_samples_failed_total{target=\"vm\"}",
            ) > 0.0)
            .then_some(())
    });
    server.kill();
    server.restart();
    poll(WITHIN + outage, "the outage to last its length", || {
        let now = points(&sysward(&server, COMPARED), "node_load1");
        (now >= before + 4 && stopped.elapsed() >= outage).then_some(())
    });
    assert!(
        metric(
            &server,
            "sysward_server_remote_write_queue_bytes{target=\"vm\"}"
        ) > 0.0,
        "the outage's samples wait"
    );
    vm.restart();
    let all = sysward(&server, COMPARED);
    let waited = Instant::now();
    let vm_has = poll(
        WITHIN,
        "every sample of the outage in VictoriaMetrics",
        || {
            let theirs = vm.export(COMPARED);
            holds(&theirs, &all).ok().map(|()| theirs)
        },
    );
    println!(
        "outage of {:?}: VictoriaMetrics caught up {:?} after its restart",
        stopped.elapsed() - waited.elapsed(),
        waited.elapsed()
    );
    holds(&sysward(&server, COMPARED), &vm_has).unwrap();
    poll(WITHIN, "Prometheus to hold everything too", || {
        holds(
            &prom.samples(COMPARED),
            &with_label(&all, "cluster", "test"),
        )
        .ok()
    });
    poll(WITHIN, "the queue to drain", || {
        (metric(
            &server,
            "sysward_server_remote_write_queue_bytes{target=\"vm\"}",
        ) == 0.0)
            .then_some(())
    });
    for target in ["vm", "prometheus"] {
        for reason in ["queue_full", "rejected"] {
            let line = format!(
                "sysward_server_remote_write_samples_dropped_total{{target=\"{target}\",reason=\"{reason}\"}}"
            );
            assert_eq!(metric(&server, &line), 0.0, "{line}");
        }
    }
    assert!(
        metric(
            &server,
            "sysward_server_remote_write_samples_sent_total{target=\"vm\"}"
        ) > 0.0
    );
}

/// `sysward-server check-config` on a config with `[[remote_write]]`: (success, output).
fn check_config(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(sysward_tests::bin("sysward-server"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn check_config_says_what_is_wrong_with_a_target() {
    let (ok, out) = check_config(
        "[[remote_write]]\nurl = \"http://vm:8428/api/v1/write\"\nkeep = ['node_load1']\n",
    );
    assert!(ok, "{out}");
    for (text, wanted) in [
        (
            "[[remote_write]]\nurl = \"vm:8428/api/v1/write\"\n",
            "the scheme must be http or https",
        ),
        (
            "[[remote_write]]\nurl = \"http://[vm/write\"\n",
            "is not a valid URL",
        ),
        (
            "[[remote_write]]\nurl = \"http://vm/\"\n\nbatch_size = 5\n",
            "line 4",
        ),
        (
            "[[remote_write]]\nurl = \"http://vm/\"\nbearer_token_file = \"/nonexistent/token\"\n",
            "/nonexistent/token",
        ),
        (
            "[[remote_write]]\nurl = \"http://vm/\"\ndrop = ['sum(x)']\n",
            "drop",
        ),
    ] {
        let (ok, out) = check_config(text);
        assert!(!ok, "{text}");
        assert!(
            out.contains("server.toml") && out.contains(wanted),
            "{text}: {out}"
        );
    }
    let (ok, out) = check_config(
        "[[remote_write]]\nurl = \"http://vm/\"\nbearer_token = \"s3cret-token\"\nbasic_auth = { username = \"u\", password = \"p\" }\n",
    );
    assert!(!ok);
    assert!(out.contains("not both") && !out.contains("s3cret"), "{out}");
}
