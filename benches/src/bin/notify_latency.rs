//! Alert to notification, on the server's real store, rule engine and notifier, with a
//! webhook receiver on loopback.
//!
//! 1. Latency: batches that each make one alert fire (`for: 0`, `group_wait: 0s`), one at a
//!    time; from the batch's commit to the webhook's request arriving: p50 and p99.
//! 2. Burst: one batch makes `--burst` alerts fire at once over `--hosts` hosts (grouped by
//!    host: one message per host), while another thread ingests ordinary batches; prints
//!    how long until every message arrived and the ingest rate before and during.
//!
//! `cargo run --release -p sysward-benches --bin notify_latency -- --signals 200 --burst 10000`

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use sysward_proto::{Series, SeriesKind};
use sysward_server::{
    config::ServerConfig,
    notify::Notifier,
    rules::{EngineConfig, RuleEngine, store_storage::StoreStorage},
    store::{IngestBatch, Store, StoreConfig, SystemClock, TieredStore},
};
use sysward_tests::recorder::Recorder;

#[derive(Parser)]
struct Args {
    /// Alerts whose latency is measured, one at a time.
    #[arg(long, default_value_t = 200)]
    signals: usize,
    /// Alerts firing at once in the burst.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Hosts the burst's alerts are spread over (one message each).
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Runs the burst without the notifier (the rules only), to tell their costs apart.
    #[arg(long)]
    without_notifier: bool,
}

const RULES: &str = "groups:
- name: signal
  rules:
  - alert: BenchSignal
    expr: bench_signal > 0
- name: burst
  rules:
  - alert: BenchBurst
    expr: bench_burst > 0
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args
        .dir
        .join(format!("sysward-notify-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules"))?;
    let result = run(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("rules/bench.yml"), RULES)?;
    let hook = Recorder::start();
    let config = ServerConfig::parse(
        &format!(
            "[notify.route]
receiver = \"hook\"
group_by = [\"alertname\", \"k\", \"host\"]
group_wait = \"0s\"
group_interval = \"1s\"
[[notify.receivers]]
name = \"hook\"
[[notify.receivers.webhook]]
url = \"{}/hook\"
",
            hook.url
        ),
        Path::new("bench.toml"),
    )?;
    let store = Arc::new(TieredStore::open(
        &dir.join("store.db"),
        StoreConfig {
            max_series_per_agent: 1_000_000,
            ..StoreConfig::default()
        },
        Arc::new(SystemClock),
    )?);
    let engine = Arc::new(RuleEngine::open(
        EngineConfig {
            dir: Some(dir.join("rules")),
            trigger_gap: Duration::from_millis(10),
            ..EngineConfig::default()
        },
        Box::new(StoreStorage::new(store.clone())),
        &dir.join("state.db"),
        Arc::new(SystemClock),
    )?);
    let notifier = Arc::new(Notifier::open(
        config.notify.clone(),
        &dir.join("state.db"),
        Arc::new(SystemClock),
        "https://bench.invalid".into(),
        engine.outbox_signal(),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sending = (!args.without_notifier).then(|| {
        runtime.spawn(notifier.clone().run(async {
            let _ = stop_rx.await;
        }))
    });
    let runner = engine.clone();
    let rules_thread = std::thread::spawn(move || runner.run());

    if sending.is_some() {
        latency(&engine, &store, &hook, args)?;
    }
    burst(&engine, &store, &hook, args)?;

    engine.stop();
    let _ = rules_thread.join();
    let _ = stop_tx.send(());
    if let Some(sending) = sending {
        let _ = runtime.block_on(sending);
    }
    Ok(())
}

fn ingest(
    store: &TieredStore,
    seq: u64,
    name: &str,
    labels: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let series = vec![Series {
        name: name.into(),
        labels: labels.into_iter().collect(),
        kind: SeriesKind::Gauge,
        points: vec![(now_ms(), 1.0)],
    }];
    store.ingest(&IngestBatch {
        agent_id: "bench-agent",
        boot_id: name,
        seq,
        instance: "bench-host",
        series: &series,
        events: &[],
    })?;
    Ok(())
}

fn latency(
    engine: &RuleEngine,
    store: &TieredStore,
    hook: &Recorder,
    args: &Args,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    for k in 0..args.signals {
        let before = hook.requests().len();
        let sent = Instant::now();
        ingest(
            store,
            1 + k as u64,
            "bench_signal",
            vec![("k".into(), k.to_string())],
        )?;
        engine.touched(["bench_signal"]);
        let got = hook.wait_for(before + 1, Duration::from_secs(30));
        latencies.push(got[before].at.duration_since(sent));
        // Past the trigger gap, so that each batch starts an evaluation of its own.
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    let pick =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "batch to webhook: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} alerts",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        latencies.len()
    );
    Ok(())
}

fn burst(
    engine: &Arc<RuleEngine>,
    store: &Arc<TieredStore>,
    hook: &Recorder,
    args: &Args,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let load = {
        let (store, stop, batches) = (store.clone(), stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let labels = vec![("k".to_string(), format!("load-{}", seq % 100))];
                if ingest(&store, seq, "bench_load", labels).is_ok() {
                    batches.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let rate = |over: Duration| {
        let start = batches.load(Ordering::Relaxed);
        std::thread::sleep(over);
        (batches.load(Ordering::Relaxed) - start) as f64 / over.as_secs_f64()
    };
    let baseline = rate(Duration::from_secs(3));
    let before = hook.requests().len();
    let series: Vec<Series> = (0..args.burst)
        .map(|i| Series {
            name: "bench_burst".into(),
            labels: [
                ("host".to_string(), format!("host-{}", i % args.hosts)),
                ("disk".to_string(), format!("d{}", i / args.hosts)),
            ]
            .into(),
            kind: SeriesKind::Gauge,
            points: vec![(now_ms(), 1.0)],
        })
        .collect();
    let sent = Instant::now();
    store.ingest(&IngestBatch {
        agent_id: "bench-agent",
        boot_id: "burst",
        seq: 1,
        instance: "bench-host",
        series: &series,
        events: &[],
    })?;
    engine.touched(["bench_burst"]);
    let during_start = batches.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = || -> anyhow::Result<bool> {
        if args.without_notifier {
            return Ok(engine.history(0, Some("BenchBurst"), 1_000_000)?.len() >= args.burst);
        }
        let alerts: usize = hook.requests()[before..]
            .iter()
            .map(|r| r.json()["alerts"].as_array().map_or(0, Vec::len))
            .sum();
        Ok(alerts >= args.burst)
    };
    // When the rules have written every transition, the rest is the notifier's.
    let mut rules_done: Option<(Instant, u64)> = None;
    while !done()? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the burst was not delivered in 600 s"
        );
        if rules_done.is_none()
            && engine.history(0, Some("BenchBurst"), 1_000_000)?.len() >= args.burst
        {
            rules_done = Some((Instant::now(), batches.load(Ordering::Relaxed)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some((at, count)) = rules_done {
        let rate = (batches.load(Ordering::Relaxed) - count) as f64 / at.elapsed().as_secs_f64();
        println!(
            "rules done after {:.2} s; ingest while only the notifier works ({:.2} s): {rate:.0} batches/s",
            at.duration_since(sent).as_secs_f64(),
            at.elapsed().as_secs_f64()
        );
    }
    let took = sent.elapsed();
    let got = hook.requests();
    let during = (batches.load(Ordering::Relaxed) - during_start) as f64 / took.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let alerts: usize = got[before..]
        .iter()
        .map(|r| r.json()["alerts"].as_array().map_or(0, Vec::len))
        .sum();
    println!(
        "burst: {} alerts over {} hosts delivered as {} messages ({alerts} alerts) in {:.2} s",
        args.burst,
        args.hosts,
        got.len() - before,
        took.as_secs_f64()
    );
    println!(
        "ingest while idle: {baseline:.0} batches/s; during the burst: {during:.0} batches/s ({:.0} %)",
        during / baseline * 100.0
    );
    Ok(())
}
