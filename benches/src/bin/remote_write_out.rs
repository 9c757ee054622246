//! Remote write out while ingesting: the server's real store takes batches of N simulated
//! hosts from several threads as fast as it can, once without a target and once
//! forwarding every sample to a real VictoriaMetrics (Debian's `victoria-metrics`, a
//! child process on loopback, so its CPU is not counted here).
//!
//! Prints, per run: samples/s ingested, samples/s forwarded while ingesting, the time the
//! target needed to catch up after ingest ended, and this process' CPU per million
//! samples; the difference between the two runs is what forwarding costs.
//!
//! `cargo run --release -p sysward-benches --bin remote_write_out -- --hosts 100 --batches 40`

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use sysward_proto::{Series, SeriesKind};
use sysward_server::{
    remote_write::{RemoteWrite, RemoteWriteConfig},
    store::{IngestBatch, Store, StoreConfig, SystemClock, TieredStore},
};

#[derive(Parser)]
struct Args {
    /// Simulated hosts, each with its own series.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Series per host (one point each per batch).
    #[arg(long, default_value_t = 500)]
    series: usize,
    /// Batches per host.
    #[arg(long, default_value_t = 40)]
    batches: usize,
    /// Threads ingesting at once.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Shards of the target.
    #[arg(long, default_value_t = 2)]
    shards: usize,
}

/// This process' user + system CPU seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn batch_series(host: usize, series: usize, ts: i64, seq: usize) -> Vec<Series> {
    (0..series)
        .map(|i| Series {
            name: format!("node_bench_{}", i % 50),
            labels: BTreeMap::from([("slot".to_string(), (i / 50).to_string())]),
            kind: if i % 2 == 0 {
                SeriesKind::Counter
            } else {
                SeriesKind::Gauge
            },
            points: vec![(ts, (seq * 7 + i + host) as f64 / 4.0)],
        })
        .collect()
}

/// Ingests every batch from `threads` threads; returns the wall time.
fn ingest_all(store: &Arc<TieredStore>, args: &Args) -> Duration {
    let start_ts = sysward_server::state::now_ms() - (args.batches as i64) * 10_000;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..args.threads {
            let store = store.clone();
            scope.spawn(move || {
                for seq in 0..args.batches {
                    for host in (t..args.hosts).step_by(args.threads) {
                        let series =
                            batch_series(host, args.series, start_ts + seq as i64 * 10_000, seq);
                        let agent = format!("agent-{host}");
                        let instance = format!("host-{host}");
                        let batch = IngestBatch {
                            agent_id: &agent,
                            boot_id: "boot",
                            seq: seq as u64 + 1,
                            instance: &instance,
                            series: &series,
                            events: &[],
                        };
                        if let Err(e) = store.ingest(&batch) {
                            eprintln!("ingest failed: {e}");
                        }
                    }
                }
            });
        }
    });
    started.elapsed()
}

fn sent(rw: &RemoteWrite) -> u64 {
    rw.render_metrics()
        .lines()
        .find(|l| l.starts_with("sysward_server_remote_write_samples_sent_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn start_victoria(dir: &Path, port: u16) -> anyhow::Result<Child> {
    let child = Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start victoria-metrics (apt-get install victoria-metrics)")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ok {
            return Ok(child);
        }
        if Instant::now() > deadline {
            bail!("victoria-metrics did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(args: &Args, target: Option<u16>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(TieredStore::open(
        &dir.path().join("store.db"),
        StoreConfig::default(),
        Arc::new(SystemClock),
    )?);
    let configs: Vec<RemoteWriteConfig> = match target {
        None => Vec::new(),
        Some(port) => vec![toml::from_str(&format!(
            "name = \"vm\"\nurl = \"http://127.0.0.1:{port}/api/v1/write\"\nshards = {}\n",
            args.shards
        ))?],
    };
    let rw = Arc::new(
        RemoteWrite::open(&configs, store.clone(), dir.path()).map_err(anyhow::Error::msg)?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = runtime.spawn(rw.clone().run(stopped));
    let cpu0 = cpu_seconds();
    let wall = ingest_all(&store, args);
    let sent_during = sent(&rw);
    let total = (args.hosts * args.series * args.batches) as u64;
    let drain_started = Instant::now();
    if target.is_some() {
        while sent(&rw) < total {
            if drain_started.elapsed() > Duration::from_secs(600) {
                bail!("the target did not catch up:\n{}", rw.render_metrics());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let drain = drain_started.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let _ = stop.send(true);
    runtime.block_on(task)?;
    let label = if target.is_some() {
        "with a VictoriaMetrics target"
    } else {
        "without a target"
    };
    println!("{label}:");
    println!(
        "  ingested {total} samples in {:.2} s: {:.0} samples/s",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    if target.is_some() {
        println!(
            "  forwarded while ingesting: {sent_during} samples, {:.0} samples/s; caught up {:.2} s after ingest ended ({:.0} samples/s overall)",
            sent_during as f64 / wall.as_secs_f64(),
            drain.as_secs_f64(),
            total as f64 / (wall + drain).as_secs_f64()
        );
    }
    println!(
        "  CPU of this process: {cpu:.2} s, {:.3} s per million samples",
        cpu / (total as f64 / 1e6)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run(&args, None)?;
    let vm_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut vm = start_victoria(vm_dir.path(), port)?;
    let result = run(&args, Some(port));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vm.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = vm.wait();
    result
}
