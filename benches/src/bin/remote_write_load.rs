//! `remote_write_load`: Prometheus-shaped remote write 1.0 requests into the real
//! `POST /api/v1/write` of a real `sysward-server` over HTTPS, reporting samples/s
//! accepted, request latency, and the server's CPU and RSS.
//!
//! ```text
//! cargo build --release -p sysward-server -p sysward-benches --bin sysward-server --bin remote_write_load
//! target/release/remote_write_load [--series 20000] [--rounds 10] [--shards 4] [--per-request 2000]
//! ```
//!
//! As Prometheus sends: `--shards` connections, each owning a fixed share of the series
//! and sending its requests one at a time, round after round (one sample per series per
//! round, 15 s apart in sample time); each request holds `--per-request` samples, one
//! `TimeSeries` entry per sample, snappy-compressed. Every body is encoded before the
//! clock starts. The first round creates the series and is reported apart.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use clap::Parser;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use sysward_promwire::{Label, Sample, TimeSeries, WriteRequest};

const ADMIN_TOKEN: &str = "swadm_load_generator";
const STEP_MS: i64 = 15_000;

#[derive(Parser, Debug)]
#[command(about = "Load generator for sysward-server's remote write endpoint.")]
struct Args {
    /// Distinct series.
    #[arg(long, default_value_t = 20_000)]
    series: usize,
    /// Samples per series; the first round creates the series.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Concurrent senders, each owning a share of the series (Prometheus' shards); also
    /// the server's `max_concurrent_ingests`.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Samples per request (Prometheus' `max_samples_per_send`, 2000 by default).
    #[arg(long, default_value_t = 2000)]
    per_request: usize,
    /// The server binary (default: `sysward-server` beside this program).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// The server process; killed when dropped.
struct ServerProc(Child);

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("sysward-rw-load-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let result = run(&args, &dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn server_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.server_bin {
        return Ok(b.clone());
    }
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("no directory for this program")?
        .join("sysward-server");
    if !path.exists() {
        bail!(
            "{} is missing: build it or pass --server-bin",
            path.display()
        );
    }
    Ok(path)
}

fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let bin = server_bin(args)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("server.toml");
    let data = dir.join("data");
    fs::write(
        &config,
        format!(
            "[listen]\naddress = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = {:?}\nmax_series_per_agent = {}\n\
             [limits]\nmax_concurrent_ingests = {}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
            data.display().to_string(),
            args.series * 2,
            args.shards
        ),
    )?;
    let log = fs::File::create(dir.join("server.log"))?;
    let child = Command::new(&bin)
        .args([
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
            "serve".as_ref(),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let _server = ServerProc(child);
    let url = format!("https://127.0.0.1:{port}");
    let ca_pem = wait_for_ca(&data.join("pki/ca.crt"))?;
    let client = https_client(&ca_pem)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(wait_healthy(&client, &url))?;
    let out = Command::new(&bin)
        .args([std::ffi::OsStr::new("--config"), config.as_os_str()])
        .args(["api-token", "create", "--role", "write", "--name", "load"])
        .output()?;
    if !out.status.success() {
        bail!("api-token create: {}", String::from_utf8_lossy(&out.stderr));
    }
    let token = String::from_utf8(out.stdout)?.trim().to_string();

    let started = Instant::now();
    let plan = encode(args);
    eprintln!(
        "{} requests encoded in {:.1} s",
        plan.iter().flatten().flatten().count(),
        started.elapsed().as_secs_f64()
    );
    let plan = Arc::new(plan);
    for (phase, rounds) in [
        ("first round: creates the series", 0..1),
        ("steady", 1..args.rounds),
    ] {
        if rounds.is_empty() {
            continue;
        }
        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        let latencies = runtime.block_on(send(&client, &url, &token, &plan, rounds.clone()))?;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu_before;
        let samples = args.series * rounds.len();
        report(phase, samples, elapsed, cpu, latencies, rss_bytes(pid));
    }
    let metrics = runtime.block_on(async {
        client
            .get(format!("{url}/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .text()
            .await
    })?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("sysward_server_foreign_samples_")
            && l.contains("remote_write")
            && !l.ends_with(" 0")
    }) {
        println!("{line}");
    }
    Ok(())
}

fn wait_for_ca(path: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(pem) = fs::read_to_string(path)
            && !pem.is_empty()
        {
            return Ok(pem);
        }
        if Instant::now() > deadline {
            bail!("the server did not create {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn https_client(ca_pem: &str) -> anyhow::Result<reqwest::Client> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn wait_healthy(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = client
            .get(format!("{url}/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server is not healthy");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bodies per shard, per round, in sending order.
type Plan = Vec<Vec<Vec<Vec<u8>>>>;

fn encode(args: &Args) -> Plan {
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        - (args.rounds as i64 + 1) * STEP_MS;
    let per_request = args.per_request.max(1);
    let chunks: Vec<std::ops::Range<usize>> = (0..args.series)
        .step_by(per_request)
        .map(|lo| lo..(lo + per_request).min(args.series))
        .collect();
    let shards = args.shards.max(1);
    (0..shards)
        .map(|shard| {
            (0..args.rounds)
                .map(|round| {
                    let ts = t0 + round as i64 * STEP_MS;
                    chunks
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| k % shards == shard)
                        .map(|(_, range)| {
                            let timeseries = range.clone().map(|i| series(i, ts, round)).collect();
                            sysward_promwire::encode(&WriteRequest {
                                timeseries,
                                metadata: vec![],
                            })
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Series `i`: node_exporter-like names and labels, 50 metrics per host.
fn series(i: usize, ts: i64, round: usize) -> TimeSeries {
    let label = |name: &str, value: String| Label {
        name: name.into(),
        value,
    };
    TimeSeries {
        labels: vec![
            label("__name__", format!("node_bench_metric_{}_total", i % 50)),
            label("instance", format!("host-{}:9100", i / 50)),
            label("job", "node".into()),
        ],
        samples: vec![Sample {
            value: (i * 31 + round * 7) as f64,
            timestamp: ts,
        }],
        ..Default::default()
    }
}

/// Sends `rounds` of every shard, the shards at once; each request's latency.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    plan: &Arc<Plan>,
    rounds: std::ops::Range<usize>,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for shard in 0..plan.len() {
        let (client, plan, rounds) = (client.clone(), plan.clone(), rounds.clone());
        let (url, token) = (format!("{url}/api/v1/write"), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for round in rounds {
                for body in &plan[shard][round] {
                    let started = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .body(body.clone())
                        .send()
                        .await?;
                    if resp.status().as_u16() != 204 {
                        bail!(
                            "{}: {}",
                            resp.status(),
                            resp.text().await.unwrap_or_default()
                        );
                    }
                    latencies.push(started.elapsed());
                }
            }
            Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

fn report(
    phase: &str,
    samples: usize,
    secs: f64,
    cpu: f64,
    mut latencies: Vec<Duration>,
    rss: u64,
) {
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{phase}: {samples} samples in {secs:.2} s = {:.0} samples/s; {} requests, p50 {:.1} ms, p99 {:.1} ms; server CPU {:.2} cores, RSS {} MiB",
        samples as f64 / secs.max(1e-9),
        latencies.len(),
        at(0.5),
        at(0.99),
        cpu / secs.max(1e-9),
        rss >> 20
    );
}

/// utime + stime of a process, in seconds (`USER_HZ` is 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (next() + next()) / 100.0
}

fn rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
