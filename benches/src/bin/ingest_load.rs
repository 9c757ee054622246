//! `ingest_load`: N simulated agents push batches through the real HTTPS ingest path of a
//! real `sysward-server`, and the tool reports samples/s, ingest latency, and the server's
//! RSS and CPU.
//!
//! ```text
//! cargo build --release -p sysward-server -p sysward-benches --bin sysward-server --bin ingest_load
//! target/release/ingest_load [--agents 1000] [--batches 20] [--in-flight 32] ...
//! ```
//!
//! What it does, in order:
//! 1. starts `sysward-server serve` (the binary beside this one, or `--server-bin`) on a
//!    free port of 127.0.0.1 with a fresh data directory;
//! 2. makes one join token per agent with `token create --count N` (one process, not N)
//!    and enrolls every agent over HTTPS with its own key pair and CSR, as
//!    `sysward-agent enroll` does;
//! 3. encodes every batch *before* the clock starts (JSON + gzip, as the agent does once
//!    per batch before spooling it), so that the figures measure the server rather than
//!    the generator: each agent has ~500 series named and shaped as the collectors'
//!    output (cpu, pressure, load, memory, vmstat, diskstats, netdev, filesystem, netstat,
//!    sockstat, tcpstat, processes, time, hwmon, the agent's own metrics), counters and
//!    gauges, one point per series per batch, every collector's samples stamped with one
//!    jittered time per tick of 30 s;
//! 4. sends each agent's first batch (which creates its series), then the rest, each agent
//!    over its own mutual-TLS connection with one batch in flight at a time (as the
//!    shipper), at most `--in-flight` batches across all agents at once (the server is
//!    given the same `max_concurrent_ingests`, so nothing is refused with 429);
//! 5. reports both phases and the server's own `/metrics`.
//!
//! `--perf FILE` records a CPU profile of the server during the steady phase with
//! `perf record` (Debian's linux-perf).

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use clap::Parser;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};
use sysward_proto::{
    Batch, EnrollRequest, EnrollResponse, HostInfo, JoinToken, Series, SeriesKind, encode_batch,
};
use tokio::sync::Semaphore;

const ADMIN_TOKEN: &str = "swadm_load_generator";
/// The agents' collection interval being simulated: batches of one agent are 30 s apart
/// in sample time, however fast they are sent.
const TICK_MS: i64 = 30_000;

#[derive(Parser, Debug)]
#[command(about = "Load generator for sysward-server's ingest path.")]
struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Batches per agent (each one tick: ~500 series × 1 point). The first creates the
    /// agent's series and is reported apart.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Batches in flight at once across all agents; also the server's
    /// `[limits] max_concurrent_ingests`.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Client worker threads (the server has the other cores).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// `[storage] chunk_span` for the server (heads are also cut at 240 points per series).
    #[arg(long, default_value = "2h")]
    chunk_span: String,
    /// The server binary (default: `sysward-server` beside this program).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Data directory and logs (default: a new directory under the system's temp dir,
    /// removed at the end unless `--keep`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keeps the directory.
    #[arg(long)]
    keep: bool,
    /// Records the server with `perf record -g` into this file during the steady phase.
    #[arg(long)]
    perf: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("sysward-load-{}", std::process::id())),
    };
    fs::create_dir_all(&dir)?;
    let result = run(&args, &dir);
    if !args.keep && args.dir.is_none() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// The server process; killed when dropped.
struct ServerProc {
    child: Child,
    url: String,
    ca_pem: String,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
            "{} is missing: build it (cargo build --release -p sysward-server) or pass --server-bin",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let bin = server_bin(args)?;
    let port = free_port()?;
    let config = dir.join("server.toml");
    let data = dir.join("data");
    fs::write(
        &config,
        format!(
            "[listen]\naddress = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = {:?}\nchunk_span = {:?}\n\
             [limits]\nmax_concurrent_ingests = {}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
            data.display().to_string(),
            args.chunk_span,
            args.in_flight
        ),
    )?;
    let log = fs::File::create(dir.join("server.log"))?;
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    eprintln!("server {} pid {pid} on port {port}", bin.display());
    let url = format!("https://127.0.0.1:{port}");
    let ca_path = data.join("pki/ca.crt");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ca_pem = loop {
        if let Ok(pem) = fs::read_to_string(&ca_path)
            && !pem.is_empty()
        {
            break pem;
        }
        if Instant::now() > deadline {
            bail!("the server did not create {}", ca_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let server = ServerProc { child, url, ca_pem };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(wait_healthy(&server))?;

    let started = Instant::now();
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["token", "create", "--ttl", "1h", "--count"])
        .arg(args.agents.to_string())
        .output()?;
    if !out.status.success() {
        bail!(
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tokens: Vec<JoinToken> = BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| Ok(JoinToken::parse(l?.trim())?))
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "{} tokens in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let agents = runtime.block_on(enroll_all(&server, &tokens))?;
    eprintln!(
        "{} agents enrolled in {:.1} s",
        agents.len(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let plan = encode_all(&agents, args.batches)?;
    let series_per_agent = plan.series_per_agent;
    let body_bytes: usize = plan.bodies.iter().flatten().map(Vec::len).sum();
    eprintln!(
        "{} batches of {series_per_agent} series encoded in {:.1} s ({:.0} bytes gzipped each on average)",
        args.agents * args.batches,
        started.elapsed().as_secs_f64(),
        body_bytes as f64 / (args.agents * args.batches).max(1) as f64
    );

    let clients = agents
        .iter()
        .map(|a| agent_client(&server.ca_pem, a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let clients = Arc::new(clients);
    let bodies: Vec<Arc<Vec<Vec<u8>>>> = plan.bodies.into_iter().map(Arc::new).collect();

    let mut reports = Vec::new();
    for (phase, range) in [
        ("first batch: creates the series", 0..1),
        ("steady ingest", 1..args.batches),
    ] {
        if range.is_empty() {
            continue;
        }
        let perf = match (&args.perf, range.start) {
            (Some(file), 1) => Some(start_perf(file, pid)?),
            _ => None,
        };
        let before = proc_stats(pid);
        let me_before = proc_stats(std::process::id());
        let started = Instant::now();
        let result = runtime.block_on(send_phase(
            &server.url,
            clients.clone(),
            &bodies,
            range.clone(),
            args.in_flight,
            pid,
        ))?;
        let elapsed = started.elapsed();
        let after = proc_stats(pid);
        let me_after = proc_stats(std::process::id());
        if let Some(p) = perf {
            stop_perf(p)?;
        }
        let samples = result.batches * series_per_agent as u64;
        reports.push(format!(
            "{phase}: {} batches, {samples} samples in {:.2} s = {:.0} samples/s ({:.0} batches/s); \
             latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; 429/503: {}; \
             server CPU {:.2} cores, RSS {} MiB (peak {} MiB); generator CPU {:.2} cores",
            result.batches,
            elapsed.as_secs_f64(),
            samples as f64 / elapsed.as_secs_f64(),
            result.batches as f64 / elapsed.as_secs_f64(),
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.retried,
            (after.cpu_seconds - before.cpu_seconds) / elapsed.as_secs_f64(),
            after.rss_bytes >> 20,
            result.peak_rss.max(after.rss_bytes) >> 20,
            (me_after.cpu_seconds - me_before.cpu_seconds) / elapsed.as_secs_f64(),
        ));
        eprintln!("{}", reports[reports.len() - 1]);
    }
    let metrics = runtime.block_on(scrape(&server))?;
    println!(
        "ingest_load: {} agents × {series_per_agent} series × {} batches, in flight {}, {} client thread(s), {} cores",
        args.agents,
        args.batches,
        args.in_flight,
        args.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for r in &reports {
        println!("  {r}");
    }
    let pick = |name: &str| metrics.get(name).copied().unwrap_or(f64::NAN);
    println!(
        "  server /metrics: series {}, samples ingested {}, batches accepted {}, head points {}, \
         store file {} MiB, cuts {} ({:.1} s)",
        pick("sysward_server_series"),
        pick("sysward_server_samples_ingested_total"),
        pick("sysward_server_batches_accepted_total"),
        pick("sysward_server_store_head_points"),
        (pick("sysward_server_store_file_bytes") / 1_048_576.0).round(),
        pick("sysward_server_store_cuts_total"),
        pick("sysward_server_store_cut_seconds_total"),
    );
    if let Some(commits) = metrics.get("sysward_server_store_commits_total") {
        println!(
            "  group commit: {commits} commits for {} batches ({:.1} batches per commit)",
            pick("sysward_server_store_committed_batches_total"),
            pick("sysward_server_store_committed_batches_total") / commits
        );
    }
    if args.keep || args.dir.is_some() {
        println!("  data and server log in {}", dir.display());
    }
    Ok(())
}

fn https_client(ca_pem: &str, tls: Option<ClientConfig>) -> anyhow::Result<reqwest::Client> {
    let tls = match tls {
        Some(t) => t,
        None => ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(ca_pem)?)
            .with_no_client_auth(),
    };
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()?)
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    Ok(roots)
}

async fn wait_healthy(server: &ServerProc) -> anyhow::Result<()> {
    let client = https_client(&server.ca_pem, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("{}/api/health", server.url))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An enrolled simulated agent.
struct SimAgent {
    id: String,
    hostname: String,
    cert_pem: String,
    key_der: Vec<u8>,
}

async fn enroll_all(server: &ServerProc, tokens: &[JoinToken]) -> anyhow::Result<Vec<SimAgent>> {
    let client = https_client(&server.ca_pem, None)?;
    let url = format!("{}/api/v1/enroll", server.url);
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let (client, url, limit) = (client.clone(), url.clone(), limit.clone());
        let secret = token.secret.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let hostname = format!("load-{n:05}");
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, hostname.as_str());
            params.distinguished_name = dn;
            let csr_pem = params.serialize_request(&key)?.pem()?;
            let req = EnrollRequest {
                secret: Some(secret),
                csr_pem,
                hostname: hostname.clone(),
                labels: BTreeMap::new(),
                agent_id: None,
            };
            let resp = client.post(&url).json(&req).send().await?;
            if !resp.status().is_success() {
                bail!(
                    "enrollment refused: {} {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
            }
            let answer: EnrollResponse = resp.json().await?;
            Ok(SimAgent {
                id: answer.agent_id,
                hostname,
                cert_pem: answer.cert_pem.context("no certificate in the answer")?,
                key_der: key.serialize_der(),
            })
        }));
    }
    let mut agents = Vec::with_capacity(tasks.len());
    for t in tasks {
        agents.push(t.await??);
    }
    Ok(agents)
}

fn agent_client(ca_pem: &str, agent: &SimAgent) -> anyhow::Result<reqwest::Client> {
    let chain =
        CertificateDer::pem_slice_iter(agent.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(agent.key_der.clone()));
    let tls = ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(chain, key)?;
    https_client(ca_pem, Some(tls))
}

// ---------------------------------------------------------------------------------------
// The simulated host.

/// xorshift64*: every run sends the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How a series' value moves from tick to tick.
#[derive(Clone, Copy)]
enum Shape {
    /// A counter growing by up to `rate` per tick, scaled (ticks/100 for CPU seconds).
    Counter { rate: u64, scale: f64 },
    /// A gauge that never changes.
    Constant,
    /// An integer gauge wandering by up to `step`.
    Wander { step: u64 },
    /// A float gauge with two decimals (load averages, temperatures).
    Decimal,
}

struct SimSeries {
    name: String,
    labels: BTreeMap<String, String>,
    kind: SeriesKind,
    shape: Shape,
    value: f64,
    /// Which collector run stamps it (its own jittered time per tick).
    collector: usize,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// About 500 series: what the agent's default collectors send from an 8-CPU host with 4
/// disks, 4 interfaces and 6 file systems, plus the agent's own metrics.
// Tables of names read better one row a line than as rustfmt would spread them.
#[rustfmt::skip]
fn host_series(rng: &mut Rng) -> Vec<SimSeries> {
    let mut out = Vec::new();
    let mut add = |collector: usize, name: &str, l: BTreeMap<String, String>, shape: Shape, start: f64| {
        let kind = match shape {
            Shape::Counter { .. } => SeriesKind::Counter,
            _ => SeriesKind::Gauge,
        };
        out.push(SimSeries { name: name.to_string(), labels: l, kind, shape, value: start, collector });
    };
    let counter = |rate: u64| Shape::Counter { rate, scale: 1.0 };
    let seconds = |rate: u64| Shape::Counter { rate, scale: 0.01 };
    // cpu (collector 0): ticks per 30 s per mode, printed as seconds with two decimals
    let modes = [
        ("idle", 2_600), ("iowait", 20), ("irq", 5), ("nice", 0), ("softirq", 15), ("steal", 0),
        ("system", 150), ("user", 300),
    ];
    for c in 0..8 {
        let cpu = c.to_string();
        for (mode, rate) in modes {
            let start = rng.below(1 << 28) as f64 / 100.0;
            add(0, "node_cpu_seconds_total", labels(&[("cpu", &cpu), ("mode", mode)]), seconds(rate), start);
        }
        for mode in ["nice", "user"] {
            add(0, "node_cpu_guest_seconds_total", labels(&[("cpu", &cpu), ("mode", mode)]), seconds(0), 0.0);
        }
    }
    for (name, rate) in [("node_context_switches_total", 120_000), ("node_intr_total", 60_000), ("node_forks_total", 40)] {
        add(0, name, BTreeMap::new(), counter(rate), rng.below(1 << 34) as f64);
    }
    add(0, "node_boot_time_seconds", BTreeMap::new(), Shape::Constant, 1_767_000_000.0);
    add(0, "node_procs_running", BTreeMap::new(), Shape::Wander { step: 2 }, 3.0);
    add(0, "node_procs_blocked", BTreeMap::new(), Shape::Wander { step: 1 }, 0.0);
    for name in [
        "node_pressure_cpu_waiting_seconds_total", "node_pressure_io_waiting_seconds_total",
        "node_pressure_io_stalled_seconds_total", "node_pressure_memory_waiting_seconds_total",
        "node_pressure_memory_stalled_seconds_total", "node_pressure_irq_stalled_seconds_total",
    ] {
        add(0, name, BTreeMap::new(), Shape::Counter { rate: 300_000, scale: 1e-6 }, 0.0);
    }
    // load (collector 1)
    for name in ["node_load1", "node_load5", "node_load15"] {
        add(1, name, BTreeMap::new(), Shape::Decimal, 0.5);
    }
    // memory (collector 2): meminfo fields in bytes (kB × 1024), vmstat counters
    for (field, wander) in [
        ("MemTotal", 0), ("MemFree", 4_000), ("MemAvailable", 3_000), ("Buffers", 40),
        ("Cached", 900), ("SwapCached", 0), ("Active", 1_500), ("Inactive", 600),
        ("Active_anon", 1_200), ("Inactive_anon", 10), ("Active_file", 300),
        ("Inactive_file", 300), ("Unevictable", 0), ("Mlocked", 0), ("SwapTotal", 0),
        ("SwapFree", 0), ("Dirty", 400), ("Writeback", 4), ("AnonPages", 1_200),
        ("Mapped", 80), ("Shmem", 8), ("KReclaimable", 60), ("Slab", 80),
        ("SReclaimable", 60), ("SUnreclaim", 20), ("KernelStack", 16), ("PageTables", 40),
        ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0), ("CommitLimit", 0),
        ("Committed_AS", 2_000), ("VmallocTotal", 0), ("VmallocUsed", 4), ("VmallocChunk", 0),
        ("Percpu", 0), ("HardwareCorrupted", 0), ("AnonHugePages", 0), ("ShmemHugePages", 0),
        ("ShmemPmdMapped", 0), ("FileHugePages", 0), ("FilePmdMapped", 0),
        ("HugePages_Total", 0), ("HugePages_Free", 0), ("HugePages_Rsvd", 0),
        ("HugePages_Surp", 0), ("Hugepagesize", 0), ("Hugetlb", 0), ("DirectMap4k", 0),
        ("DirectMap2M", 0), ("DirectMap1G", 0),
    ] {
        let name = format!("node_memory_{field}_bytes");
        let start = (rng.below(1 << 24) * 1024) as f64;
        let shape = if wander == 0 { Shape::Constant } else { Shape::Wander { step: wander * 1024 } };
        add(2, &name, BTreeMap::new(), shape, start);
    }
    for (name, rate) in [
        ("node_vmstat_pgpgin", 4_000), ("node_vmstat_pgpgout", 9_000), ("node_vmstat_pswpin", 0),
        ("node_vmstat_pswpout", 0), ("node_vmstat_pgfault", 300_000),
        ("node_vmstat_pgmajfault", 20), ("node_vmstat_oom_kill", 0),
    ] {
        add(2, name, BTreeMap::new(), counter(rate), rng.below(1 << 30) as f64);
    }
    // diskstats (collector 3)
    for dev in ["nvme0n1", "nvme1n1", "sda", "sdb"] {
        for (name, rate, scale) in [
            ("node_disk_reads_completed_total", 3_000, 1.0),
            ("node_disk_reads_merged_total", 200, 1.0),
            ("node_disk_read_bytes_total", 50_000_000, 1.0),
            ("node_disk_read_time_seconds_total", 1_500, 0.001),
            ("node_disk_writes_completed_total", 6_000, 1.0),
            ("node_disk_writes_merged_total", 900, 1.0),
            ("node_disk_written_bytes_total", 90_000_000, 1.0),
            ("node_disk_write_time_seconds_total", 4_000, 0.001),
            ("node_disk_io_time_seconds_total", 2_000, 0.001),
            ("node_disk_io_time_weighted_seconds_total", 6_000, 0.001),
            ("node_disk_discards_completed_total", 0, 1.0),
            ("node_disk_discards_merged_total", 0, 1.0),
            ("node_disk_discarded_sectors_total", 0, 1.0),
            ("node_disk_discard_time_seconds_total", 0, 0.001),
            ("node_disk_flush_requests_total", 300, 1.0),
            ("node_disk_flush_requests_time_seconds_total", 100, 0.001),
        ] {
            add(3, name, labels(&[("device", dev)]), Shape::Counter { rate, scale }, 0.0);
        }
        add(3, "node_disk_io_now", labels(&[("device", dev)]), Shape::Wander { step: 2 }, 0.0);
    }
    // netdev (collector 4)
    for dev in ["lo", "eth0", "eth1", "docker0"] {
        for dir in ["receive", "transmit"] {
            for (field, rate) in [
                ("bytes", 30_000_000), ("packets", 40_000), ("errs", 0), ("drop", 2), ("fifo", 0),
                ("compressed", 0), (if dir == "receive" { "frame" } else { "colls" }, 0),
                (if dir == "receive" { "multicast" } else { "carrier" }, 10),
            ] {
                let name = format!("node_network_{dir}_{field}_total");
                add(4, &name, labels(&[("device", dev)]), counter(rate), 0.0);
            }
        }
        add(4, "node_network_up", labels(&[("device", dev)]), Shape::Constant, 1.0);
        add(4, "node_network_mtu_bytes", labels(&[("device", dev)]), Shape::Constant, 1500.0);
        add(4, "node_network_speed_bytes", labels(&[("device", dev)]), Shape::Constant, 1.25e9);
    }
    // filesystem (collector 5)
    for (dev, mount, fstype) in [
        ("/dev/nvme0n1p2", "/", "ext4"), ("/dev/nvme0n1p1", "/boot/efi", "vfat"),
        ("/dev/nvme1n1", "/var/lib/postgresql", "xfs"), ("/dev/sda1", "/srv", "ext4"),
        ("tmpfs", "/run", "tmpfs"), ("tmpfs", "/dev/shm", "tmpfs"),
    ] {
        let l = labels(&[("device", dev), ("fstype", fstype), ("mountpoint", mount)]);
        let size = (rng.below(1 << 20) << 20) as f64;
        add(5, "node_filesystem_size_bytes", l.clone(), Shape::Constant, size);
        add(5, "node_filesystem_free_bytes", l.clone(), Shape::Wander { step: 1 << 20 }, size / 2.0);
        add(5, "node_filesystem_avail_bytes", l.clone(), Shape::Wander { step: 1 << 20 }, size / 2.2);
        add(5, "node_filesystem_files", l.clone(), Shape::Constant, 6_553_600.0);
        add(5, "node_filesystem_files_free", l.clone(), Shape::Wander { step: 20 }, 6_000_000.0);
        add(5, "node_filesystem_readonly", l.clone(), Shape::Constant, 0.0);
        add(5, "node_filesystem_device_error", l, Shape::Constant, 0.0);
    }
    // netstat, sockstat, tcpstat (collector 6)
    for field in [
        "Icmp_InErrors", "Icmp_InMsgs", "Icmp_OutMsgs", "Icmp6_InErrors", "Icmp6_InMsgs",
        "Icmp6_OutMsgs", "IpExt_InOctets", "IpExt_OutOctets", "Ip_Forwarding", "Ip6_InOctets",
        "Ip6_OutOctets", "TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed",
        "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans",
        "TcpExt_TCPTimeouts", "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs",
        "Tcp_OutRsts", "Tcp_OutSegs", "Tcp_PassiveOpens", "Tcp_RetransSegs", "Udp_InDatagrams",
        "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams", "Udp_RcvbufErrors", "Udp_SndbufErrors",
        "Udp6_InDatagrams", "Udp6_InErrors", "Udp6_NoPorts", "Udp6_OutDatagrams",
        "Udp6_RcvbufErrors", "Udp6_SndbufErrors", "UdpLite_InErrors", "UdpLite6_InErrors",
    ] {
        let name = format!("node_netstat_{field}");
        let rate = if field.contains("Octets") || field.contains("Segs") { 100_000 } else { rng.below(50) };
        add(6, &name, BTreeMap::new(), counter(rate), 0.0);
    }
    for field in [
        "sockets_used", "TCP_inuse", "TCP_orphan", "TCP_tw", "TCP_alloc", "TCP_mem",
        "TCP_mem_bytes", "UDP_inuse", "UDP_mem", "UDP_mem_bytes", "UDPLITE_inuse", "RAW_inuse",
        "FRAG_inuse", "FRAG_memory", "TCP6_inuse",
    ] {
        let name = format!("node_sockstat_{field}");
        add(6, &name, BTreeMap::new(), Shape::Wander { step: 5 }, 100.0);
    }
    for state in [
        "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close",
        "close_wait", "last_ack", "listen", "closing", "rx_queued_bytes",
    ] {
        add(6, "node_tcp_connection_states", labels(&[("state", state)]), Shape::Wander { step: 3 }, 20.0);
    }
    // processes (collector 7)
    for (name, v) in [
        ("node_processes_threads", 900.0), ("node_processes_pids", 400.0),
        ("node_processes_max_processes", 4_194_304.0), ("node_processes_max_threads", 255_000.0),
    ] {
        add(7, name, BTreeMap::new(), Shape::Wander { step: 3 }, v);
    }
    for state in ["D", "I", "R", "S", "Z"] {
        add(7, "node_processes_state", labels(&[("state", state)]), Shape::Wander { step: 2 }, 10.0);
    }
    for (i, name) in [
        "postgres", "nginx", "java", "node", "python3", "sysward-agent", "systemd", "sshd",
        "containerd", "dockerd",
    ].iter().enumerate() {
        let pid = (1000 + 37 * i).to_string();
        let l = labels(&[("name", name), ("pid", &pid), ("user", "svc")]);
        add(7, "sysward_process_cpu_seconds_total", l.clone(), seconds(100), 0.0);
        add(7, "sysward_process_resident_memory_bytes", l, Shape::Wander { step: 1 << 16 }, 5e8);
    }
    // time, hwmon (collector 8)
    add(8, "node_time_seconds", BTreeMap::new(), Shape::Counter { rate: 30_000, scale: 0.001 }, 1.767e9);
    for name in [
        "node_timex_offset_seconds", "node_timex_frequency_adjustment_ratio",
        "node_timex_maxerror_seconds", "node_timex_estimated_error_seconds",
        "node_timex_sync_status", "node_timex_status", "node_timex_tick_seconds",
        "node_timex_tai_offset_seconds", "node_timex_loop_time_constant",
    ] {
        add(8, name, BTreeMap::new(), Shape::Decimal, 0.0);
    }
    for (chip, sensor) in [
        ("platform_coretemp_0", "temp1"), ("platform_coretemp_0", "temp2"),
        ("platform_coretemp_0", "temp3"), ("platform_coretemp_0", "temp4"),
        ("platform_coretemp_0", "temp5"), ("pci0000:00_0000:00:1d_0", "temp1"),
        ("acpitz", "temp1"), ("acpitz", "temp2"),
    ] {
        add(8, "node_hwmon_temp_celsius", labels(&[("chip", chip), ("sensor", sensor)]), Shape::Decimal, 45.0);
    }
    // the agent's own metrics (collector 9)
    for collector in [
        "cpu", "load", "memory", "filesystem", "diskstats", "netdev", "netstat", "sockstat",
        "tcpstat", "processes", "host", "time", "hwmon",
    ] {
        let l = labels(&[("collector", collector)]);
        add(9, "sysward_agent_collector_runs_total", l.clone(), counter(1), 0.0);
        add(9, "sysward_agent_collector_duration_seconds", l.clone(), Shape::Decimal, 0.01);
        add(9, "sysward_agent_collector_errors_total", l, counter(0), 0.0);
    }
    for (name, shape) in [
        ("sysward_agent_batches_sent_total", counter(3)),
        ("sysward_agent_batches_failed_total", counter(0)),
        ("sysward_agent_batches_queued", Shape::Wander { step: 1 }),
        ("sysward_agent_spool_bytes", Shape::Wander { step: 4096 }),
        ("sysward_agent_spool_segments", Shape::Constant),
        ("sysward_agent_spool_frames", Shape::Wander { step: 2 }),
        ("sysward_agent_send_lag_seconds", Shape::Decimal),
        ("sysward_agent_build_info", Shape::Constant),
    ] {
        add(9, name, BTreeMap::new(), shape, 1.0);
    }
    out
}

impl SimSeries {
    fn step(&mut self, rng: &mut Rng) {
        self.value = match self.shape {
            Shape::Counter { rate, scale } => {
                let inc = if rate == 0 {
                    0
                } else {
                    rate / 2 + rng.below(rate)
                };
                // Round to what the collector would print: whole units or hundredths.
                ((self.value / scale).round() + inc as f64) * scale
            }
            Shape::Constant => self.value,
            Shape::Wander { step } => {
                (self.value + rng.below(2 * step + 1) as f64 - step as f64).max(0.0)
            }
            Shape::Decimal => {
                let v = self.value * 0.9 + rng.unit() * 0.2 * (self.value + 1.0);
                (v * 100.0).round() / 100.0
            }
        };
    }
}

struct Plan {
    series_per_agent: usize,
    /// Per agent, its batches in seq order, gzipped.
    bodies: Vec<Vec<Vec<u8>>>,
}

/// Every batch of every agent, encoded on all cores before anything is sent.
fn encode_all(agents: &[SimAgent], batches: usize) -> anyhow::Result<Plan> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // Sample time ends about now, so that every point is inside raw retention and none is
    // in the future.
    let t0 = now - batches as i64 * TICK_MS;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = agents.len().div_ceil(threads).max(1);
    let series_per_agent = host_series(&mut Rng(1)).len();
    let bodies = std::thread::scope(|scope| {
        let handles: Vec<_> = agents
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
                    part.iter()
                        .enumerate()
                        .map(|(i, agent)| {
                            let mut rng = Rng(0x9e37_79b9 ^ ((c * chunk + i) as u64 + 1) << 8);
                            let mut series = host_series(&mut rng);
                            let boot_id = format!("load-{}", rng.next());
                            let phase = rng.below(TICK_MS as u64) as i64;
                            (0..batches)
                                .map(|k| {
                                    let base = t0 + k as i64 * TICK_MS + phase;
                                    let stamps: Vec<i64> =
                                        (0..10).map(|_| base + rng.below(600) as i64).collect();
                                    let out: Vec<Series> = series
                                        .iter_mut()
                                        .map(|s| {
                                            s.step(&mut rng);
                                            Series {
                                                name: s.name.clone(),
                                                labels: s.labels.clone(),
                                                kind: s.kind,
                                                points: vec![(stamps[s.collector], s.value)],
                                            }
                                        })
                                        .collect();
                                    let batch = Batch {
                                        v: 1,
                                        agent_id: agent.id.clone(),
                                        boot_id: boot_id.clone(),
                                        seq: k as u64 + 1,
                                        sent_at: base + 700,
                                        series: out,
                                        events: Vec::new(),
                                        host: Some(HostInfo {
                                            hostname: agent.hostname.clone(),
                                            labels: BTreeMap::new(),
                                            agent_version: "load".into(),
                                            critical_interval_ms: 0,
                                        }),
                                    };
                                    Ok(encode_batch(&batch)?)
                                })
                                .collect()
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("an encoder thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(Plan {
        series_per_agent,
        bodies: bodies.into_iter().flatten().collect(),
    })
}

// ---------------------------------------------------------------------------------------
// Sending and measuring.

struct PhaseResult {
    batches: u64,
    retried: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    peak_rss: u64,
}

async fn send_phase(
    url: &str,
    clients: Arc<Vec<reqwest::Client>>,
    bodies: &[Arc<Vec<Vec<u8>>>],
    range: std::ops::Range<usize>,
    in_flight: usize,
    server_pid: u32,
) -> anyhow::Result<PhaseResult> {
    let permits = Arc::new(Semaphore::new(in_flight));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(bodies.len() * range.len())));
    let retried = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let watcher = {
        let (peak_rss, done) = (peak_rss.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(proc_stats(server_pid).rss_bytes, Ordering::Relaxed);
                tokio::select! {
                    () = done.notified() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })
    };
    let ingest_url = format!("{url}/api/v1/ingest");
    let mut tasks = Vec::with_capacity(bodies.len());
    for (a, agent_bodies) in bodies.iter().enumerate() {
        let (clients, agent_bodies, permits) =
            (clients.clone(), agent_bodies.clone(), permits.clone());
        let (latencies, retried, url) = (latencies.clone(), retried.clone(), ingest_url.clone());
        let range = range.clone();
        tasks.push(tokio::spawn(async move {
            let client = &clients[a];
            let mut mine = Vec::with_capacity(range.len());
            for k in range {
                let body = agent_bodies[k].clone();
                loop {
                    let _permit = permits.acquire().await?;
                    let started = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = resp.status();
                    let text = resp.bytes().await?;
                    let took = started.elapsed();
                    drop(_permit);
                    if status.is_success() {
                        mine.push(took);
                        break;
                    }
                    if status.as_u16() == 429 || status.as_u16() == 503 {
                        // Back-pressure: retry, as the shipper does.
                        retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    bail!(
                        "batch {} of agent {a} refused: {status} {}",
                        k + 1,
                        String::from_utf8_lossy(&text)
                    );
                }
            }
            latencies
                .lock()
                .map_err(|_| anyhow::anyhow!("latency list poisoned"))?
                .extend(mine);
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    done.notify_one();
    let _ = watcher.await;
    let mut lat = std::mem::take(
        &mut *latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("latency list poisoned"))?,
    );
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    Ok(PhaseResult {
        batches: lat.len() as u64,
        retried: retried.load(Ordering::Relaxed),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        peak_rss: peak_rss.load(Ordering::Relaxed),
    })
}

#[derive(Default, Clone, Copy)]
struct ProcStats {
    cpu_seconds: f64,
    rss_bytes: u64,
}

/// utime + stime and VmRSS of a process from /proc; zeros when it cannot be read.
fn proc_stats(pid: u32) -> ProcStats {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: utime and stime are 14 and 15.
    let ticks: u64 = stat
        .rfind(')')
        .map(|i| {
            stat[i + 1..]
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ProcStats {
        // USER_HZ is 100 on Linux.
        cpu_seconds: ticks as f64 / 100.0,
        rss_bytes: rss_kb * 1024,
    }
}

fn start_perf(file: &Path, pid: u32) -> anyhow::Result<Child> {
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-o"])
        .arg(file)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start perf (apt-get install linux-perf)")
}

fn stop_perf(mut perf: Child) -> anyhow::Result<()> {
    // perf writes its file on SIGINT.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(perf.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    perf.wait()?;
    Ok(())
}

async fn scrape(server: &ServerProc) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = https_client(&server.ca_pem, None)?
        .get(format!("{}/metrics", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}
