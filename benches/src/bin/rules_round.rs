//! The rule engine at fleet scale: the shipped host.yml over N hosts plus M extra rules
//! that each select at most 20 series, on the server's real store.
//!
//! Prints the time of a full round (every group evaluated once), the memory the engine
//! adds, and the latency from a batch's arrival to the alert transition it causes, with
//! the engine's thread running as in the server (scheduled rounds included).
//!
//! `cargo run --release -p sysward-benches --bin rules_round -- --hosts 1000 --rules 10000`

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use clap::Parser;
use sysward_proto::{Series, SeriesKind};
use sysward_server::{
    rules::{EngineConfig, RuleEngine, store_storage::StoreStorage},
    store::{IngestBatch, Store, StoreConfig, SystemClock, TieredStore},
};

#[derive(Parser)]
struct Args {
    /// Hosts in the fleet.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Extra alerting rules, each on one host's CPU (at most 20 series).
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    /// Minutes of history per host, one point every 15 s.
    #[arg(long, default_value_t = 30)]
    minutes: i64,
    /// Full rounds to time.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Batches whose alert transition latency is measured.
    #[arg(long, default_value_t = 40)]
    signals: usize,
    /// Where to put the store (a fresh directory inside it, removed afterwards).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
}

const CPUS: usize = 4;
const STEP_MS: i64 = 15_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args
        .dir
        .join(format!("sysward-rules-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules"))?;
    let result = run(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let host_yml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/rules/host.yml");
    std::fs::copy(&host_yml, dir.join("rules/host.yml")).context("host.yml")?;
    std::fs::write(
        dir.join("rules/extra.yml"),
        extra_rules(args.rules, args.hosts),
    )?;
    std::fs::write(dir.join("rules/signal.yml"), SIGNAL_RULES)?;

    let store = Arc::new(TieredStore::open(
        &dir.join("store.db"),
        StoreConfig {
            max_series_per_agent: 100_000,
            ..StoreConfig::default()
        },
        Arc::new(SystemClock),
    )?);
    let started = Instant::now();
    let points = fill(&store, args)?;
    println!(
        "store: {} hosts, {} points in {:.1} s",
        args.hosts,
        points,
        started.elapsed().as_secs_f64()
    );

    let rss_before = rss_kib();
    let config = EngineConfig {
        dir: Some(dir.join("rules")),
        ..EngineConfig::default()
    };
    let engine = Arc::new(RuleEngine::open(
        config,
        Box::new(StoreStorage::new(store.clone())),
        &dir.join("state.db"),
        Arc::new(SystemClock),
    )?);
    for h in 0..args.hosts {
        engine.hosts().seen(&agent(h), &host(h), now_ms(), 15_000);
    }
    let rules: usize = engine
        .groups()
        .iter()
        .map(|(g, _)| g.spec.rules.len())
        .sum();
    println!("rules: {rules} in {} groups", engine.groups().len());
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        rounds.push(engine.evaluate_all());
    }
    let rss_after = rss_kib();
    report_rounds(&rounds, rss_before, rss_after, &engine);
    latency(&engine, &store, args)
}

fn report_rounds(rounds: &[Duration], before: u64, after: u64, engine: &RuleEngine) {
    let mut ms: Vec<f64> = rounds.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let failures = engine.stats().rule_failures;
    for (g, _) in engine.groups() {
        if !g.spec.name.starts_with("extra-") || g.spec.name == "extra-0" {
            println!(
                "  group {}: {} rules, {:.1} ms",
                g.spec.name,
                g.spec.rules.len(),
                g.last_duration.as_secs_f64() * 1000.0
            );
            if g.spec.name.starts_with("sysward") {
                for (r, st) in g.spec.rules.iter().zip(&g.states) {
                    println!(
                        "    {}: {:.1} ms",
                        r.name(),
                        st.last_duration.as_secs_f64() * 1000.0
                    );
                }
            }
        }
    }
    println!(
        "round: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} rounds ({} rule failures)",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len(),
        failures
    );
    println!(
        "memory: RSS {} MiB before the engine, {} MiB after its rounds (+{} MiB)",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024
    );
}

/// Sends `signals` batches that each make one alert fire, with the engine's thread
/// running, and reports arrival-to-transition latency.
fn latency(engine: &Arc<RuleEngine>, store: &Arc<TieredStore>, args: &Args) -> anyhow::Result<()> {
    let runner = engine.clone();
    let thread = std::thread::spawn(move || runner.run());
    let mut latencies = Vec::new();
    for k in 0..args.signals {
        // Past the engine's trigger gap (1 s), so each batch is a fresh trigger.
        std::thread::sleep(Duration::from_millis(1050));
        let before = engine.history(0, Some("BenchSignal"), 100_000)?.len();
        let sent = Instant::now();
        let series = vec![Series {
            name: "bench_signal".into(),
            labels: [("k".to_string(), k.to_string())].into(),
            kind: SeriesKind::Gauge,
            points: vec![(now_ms(), 1.0)],
        }];
        store.ingest(&IngestBatch {
            agent_id: &agent(0),
            boot_id: "signal",
            seq: 1 + k as u64,
            instance: &host(0),
            series: &series,
            events: &[],
        })?;
        engine.touched(["bench_signal"]);
        loop {
            if engine.history(0, Some("BenchSignal"), 100_000)?.len() > before {
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("no transition for signal {k} in 30 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(sent.elapsed());
    }
    engine.stop();
    let _ = thread.join();
    latencies.sort();
    let pick =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "batch to transition: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} batches ({} triggered evaluations)",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        latencies.len(),
        engine.stats().triggered
    );
    Ok(())
}

const SIGNAL_RULES: &str =
    "groups:\n- name: signal\n  rules:\n  - alert: BenchSignal\n    expr: bench_signal > 0\n";

fn host(h: usize) -> String {
    format!("host-{h:04}")
}

fn agent(h: usize) -> String {
    format!("agent-{h:04}")
}

/// `rules` alerting rules in groups of 100, rule i on host i mod `hosts`: the busy share of
/// its CPUs' idle counters (4 series) against a threshold.
fn extra_rules(rules: usize, hosts: usize) -> String {
    let mut out = String::from("groups:\n");
    for i in 0..rules {
        if i % 100 == 0 {
            let _ = writeln!(out, "- name: extra-{}\n  rules:", i / 100);
        }
        let _ = writeln!(
            out,
            "  - alert: Extra{i}\n    expr: avg by (instance) (rate(node_cpu_seconds_total{{instance=\"{}\", mode=\"idle\"}}[1m])) < {}\n    for: 5m",
            host(i % hosts),
            0.05 + (i % 10) as f64 / 100.0
        );
    }
    out
}

/// Writes `minutes` of history for every host, ending now; returns the points written.
fn fill(store: &TieredStore, args: &Args) -> anyhow::Result<usize> {
    let end = now_ms();
    let start = end - args.minutes * 60_000;
    let mut total = 0;
    for h in 0..args.hosts {
        let mut series = host_series(h);
        let mut t = start;
        let mut i = 0;
        while t <= end {
            for s in &mut series {
                let v = value_at(&s.name, i, h);
                s.points.push((t, v));
            }
            t += STEP_MS;
            i += 1;
        }
        total += series.iter().map(|s| s.points.len()).sum::<usize>();
        store.ingest(&IngestBatch {
            agent_id: &agent(h),
            boot_id: "bench",
            seq: 1,
            instance: &host(h),
            series: &series,
            events: &[],
        })?;
    }
    Ok(total)
}

fn value_at(name: &str, i: i64, h: usize) -> f64 {
    let i = i as f64;
    match name {
        "node_cpu_seconds_total" => i * 15.0 * 0.8,
        "node_memory_MemAvailable_bytes" => 4e9 - (h % 7) as f64 * 1e8,
        "node_memory_MemTotal_bytes" => 8e9,
        "node_filesystem_avail_bytes" => 5e10 - i * 1e5,
        "node_filesystem_size_bytes" => 1e11,
        "node_load1" => 0.5 + (h % 5) as f64 * 0.1,
        "smartctl_device_smart_status" => 1.0,
        "node_systemd_unit_state" => 0.0,
        "sysward_check_status" => 0.0,
        "node_timex_offset_seconds" => 0.001,
        "sysward_check_tls_days_left" => 60.0,
        "sysward_process_resident_memory_bytes" => 2e8,
        _ => 0.0,
    }
}

/// About 40 series per host: what host.yml reads, as the agent names them.
fn host_series(h: usize) -> Vec<Series> {
    let mut out = Vec::new();
    let mut add = |name: &str, kind: SeriesKind, labels: &[(&str, String)]| {
        out.push(Series {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            kind,
            points: Vec::new(),
        });
    };
    for cpu in 0..CPUS {
        for mode in ["idle", "user", "system"] {
            add(
                "node_cpu_seconds_total",
                SeriesKind::Counter,
                &[("cpu", cpu.to_string()), ("mode", mode.to_string())],
            );
        }
    }
    add("node_memory_MemAvailable_bytes", SeriesKind::Gauge, &[]);
    add("node_memory_MemTotal_bytes", SeriesKind::Gauge, &[]);
    for mount in ["/", "/var"] {
        for name in ["node_filesystem_avail_bytes", "node_filesystem_size_bytes"] {
            add(
                name,
                SeriesKind::Gauge,
                &[("mountpoint", mount.into()), ("fstype", "ext4".into())],
            );
        }
    }
    add("node_load1", SeriesKind::Gauge, &[]);
    add(
        "smartctl_device_smart_status",
        SeriesKind::Gauge,
        &[("device", "sda".into())],
    );
    for unit in 0..5 {
        for state in ["active", "failed"] {
            add(
                "node_systemd_unit_state",
                SeriesKind::Gauge,
                &[
                    ("name", format!("unit{unit}.service")),
                    ("state", state.into()),
                ],
            );
        }
    }
    for check in 0..3 {
        add(
            "sysward_check_status",
            SeriesKind::Gauge,
            &[("check", format!("check{check}"))],
        );
    }
    add("node_timex_offset_seconds", SeriesKind::Gauge, &[]);
    add(
        "sysward_check_tls_days_left",
        SeriesKind::Gauge,
        &[("check", "site".into())],
    );
    for pid in 0..5 {
        add(
            "sysward_process_resident_memory_bytes",
            SeriesKind::Gauge,
            &[
                ("pid", (100 + pid).to_string()),
                ("name", format!("proc{pid}")),
            ],
        );
    }
    let _ = h;
    out
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
