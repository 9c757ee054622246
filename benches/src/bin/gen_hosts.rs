//! `gen_hosts`: host-shaped history as OpenMetrics text with timestamps, the input of both
//! `sysward-server import` and `promtool tsdb create-blocks-from openmetrics`, so that one
//! data set can be loaded into Sysward and Prometheus alike.
//!
//! ```text
//! gen_hosts [--hosts 3] [--span 1d] [--interval 60s] [--seed 1] [--end UNIX_SECONDS]
//!           [--cpus 2] [--out FILE]
//! ```
//!
//! Per host (`instance="host-N:9100"`, `job="node"`), node_exporter's names: CPU seconds by
//! `cpu` and `mode` (counters), memory total and available, filesystem size and available
//! space per mountpoint, load averages, network bytes per device (counters), and a request
//! latency histogram (`le` buckets, `_sum`, `_count`). Even-numbered hosts reboot once
//! inside the span, so every counter of theirs resets; host 1's `/var` fills up and runs
//! out about two hours after the end (a `predict_linear` alert fires at the end).
//!
//! Output: every `# HELP`/`# TYPE` first, then the samples in time order (all series at
//! one time, then the next), each series strictly increasing in time as promtool's block
//! writer needs (it drops out-of-order samples silently), and `# EOF`. The same arguments
//! give the same bytes; `--end` defaults to now rounded down to the interval.

use std::{
    fs,
    io::{self, BufWriter, Write},
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use clap::Parser;
use sysward_proto::units::parse_duration;

#[derive(Parser, Debug)]
#[command(about = "Host-shaped OpenMetrics history for backfill into Sysward and Prometheus.")]
struct Args {
    /// Hosts.
    #[arg(long, default_value_t = 3)]
    hosts: u32,
    /// How much history, e.g. "1d" or "6h".
    #[arg(long, default_value = "1d")]
    span: String,
    /// Time between samples of a series, e.g. "60s".
    #[arg(long, default_value = "60s")]
    interval: String,
    /// Seed of the pseudo-random values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time of the last sample, unix seconds (default: now rounded down to the interval).
    #[arg(long)]
    end: Option<i64>,
    /// CPUs per host.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Where to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// splitmix64: small, deterministic, good enough for plausible noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const MOUNTS: [(&str, &str); 3] = [("/", "sda1"), ("/home", "sda3"), ("/var", "sda2")];
const DEVICES: [&str; 2] = ["eth0", "lo"];
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One host's state, advanced one interval at a time.
struct Host {
    index: u32,
    rng: Rng,
    cpu: Vec<[f64; MODES.len()]>,
    mem_total: f64,
    mem_available: f64,
    fs_size: [f64; MOUNTS.len()],
    fs_avail: [f64; MOUNTS.len()],
    load: [f64; 3],
    net: [[f64; 2]; DEVICES.len()],
    buckets: [u64; BUCKETS.len() + 1],
    latency_sum: f64,
    /// The tick at which it reboots (every counter starts again from zero), if it does.
    reboot_at: Option<u64>,
}

impl Host {
    fn new(index: u32, seed: u64, cpus: u32, ticks: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(u64::from(index)));
        let gib = 1024.0 * 1024.0 * 1024.0;
        let mem_total = f64::from(4 << (index % 3)) * gib;
        let fs_size = [50.0 * gib, 200.0 * gib, 100.0 * gib];
        let fs_avail = fs_size.map(|s| s * (0.3 + 0.4 * rng.unit()).round_to(1e-3));
        let reboot_at = (index.is_multiple_of(2) && ticks > 10)
            .then(|| ticks / 10 + (rng.unit() * (ticks * 8 / 10) as f64) as u64);
        Self {
            index,
            cpu: vec![[0.0; MODES.len()]; cpus as usize],
            mem_total,
            mem_available: mem_total * 0.5,
            fs_size,
            fs_avail,
            load: [0.5; 3],
            net: [[0.0; 2]; DEVICES.len()],
            buckets: [0; BUCKETS.len() + 1],
            latency_sum: 0.0,
            reboot_at,
            rng,
        }
    }

    /// Advances by one interval of `secs` seconds; `left` ticks remain after this one.
    fn step(&mut self, tick: u64, secs: f64, left: u64) {
        if self.reboot_at == Some(tick) {
            self.cpu.iter_mut().for_each(|c| *c = [0.0; MODES.len()]);
            self.net = [[0.0; 2]; DEVICES.len()];
            self.buckets = [0; BUCKETS.len() + 1];
            self.latency_sum = 0.0;
        }
        let busy = 0.1 + 0.5 * self.rng.unit();
        for cpu in &mut self.cpu {
            let mut shares = [0.0; MODES.len()];
            for (i, s) in shares.iter_mut().enumerate().skip(1) {
                *s = self.rng.unit() * if i == 7 { 4.0 } else { 1.0 };
            }
            let total: f64 = shares.iter().sum();
            for (i, c) in cpu.iter_mut().enumerate() {
                let spent = if i == 0 {
                    secs * (1.0 - busy)
                } else {
                    secs * busy * shares[i] / total
                };
                *c = (*c + spent).round_to(0.01);
            }
        }
        let swing = (self.rng.unit() - 0.5) * 0.04 * self.mem_total;
        self.mem_available = (self.mem_available + swing)
            .clamp(0.1 * self.mem_total, 0.9 * self.mem_total)
            .round_to(4096.0);
        for (m, avail) in self.fs_avail.iter_mut().enumerate() {
            *avail = if self.index == 1 && MOUNTS[m].0 == "/var" {
                // Empty two hours (at a minute's interval) after the end, a little noise.
                let to_go = (left + 120) as f64 * secs;
                (*avail - *avail * secs / to_go + (self.rng.unit() - 0.5) * 4096.0).max(0.0)
            } else {
                *avail + (self.rng.unit() - 0.5) * 1e6
            }
            .round_to(4096.0);
        }
        let target = f64::from(self.cpu.len() as u32) * busy * 2.0;
        let [l1, l5, l15] = &mut self.load;
        *l1 = (*l1 + (target - *l1) * 0.6 + (self.rng.unit() - 0.5) * 0.2)
            .max(0.0)
            .round_to(0.01);
        *l5 = (*l5 + (*l1 - *l5) * 0.2).round_to(0.01);
        *l15 = (*l15 + (*l1 - *l15) * 0.07).round_to(0.01);
        for (d, dev) in self.net.iter_mut().enumerate() {
            let scale = if d == 0 { 1e6 } else { 1e4 };
            dev[0] += (self.rng.unit() * scale * secs).round();
            dev[1] += (self.rng.unit() * scale * secs * 0.3).round();
        }
        let requests = 20 + (self.rng.unit() * 100.0) as u64;
        for _ in 0..requests {
            // Mostly fast, a long tail.
            let u = self.rng.unit();
            let latency = (0.002 + 0.05 * u / (1.001 - u).powi(2)).min(30.0);
            self.latency_sum = (self.latency_sum + latency).round_to(1e-6);
            let first = BUCKETS.partition_point(|&le| le < latency);
            self.buckets[first] += 1;
        }
    }

    /// Writes every series at `ts` (ms).
    fn write(&self, out: &mut impl Write, ts: &str) -> io::Result<()> {
        let inst = format!("instance=\"host-{}:9100\",job=\"node\"", self.index);
        for (c, modes) in self.cpu.iter().enumerate() {
            for (m, v) in modes.iter().enumerate() {
                writeln!(
                    out,
                    "node_cpu_seconds_total{{cpu=\"{c}\",{inst},mode=\"{}\"}} {v} {ts}",
                    MODES[m]
                )?;
            }
        }
        writeln!(
            out,
            "node_memory_MemTotal_bytes{{{inst}}} {} {ts}",
            self.mem_total
        )?;
        writeln!(
            out,
            "node_memory_MemAvailable_bytes{{{inst}}} {} {ts}",
            self.mem_available
        )?;
        for (m, (mount, dev)) in MOUNTS.iter().enumerate() {
            let l = format!("device=\"/dev/{dev}\",fstype=\"ext4\",{inst},mountpoint=\"{mount}\"");
            writeln!(
                out,
                "node_filesystem_avail_bytes{{{l}}} {} {ts}",
                self.fs_avail[m]
            )?;
            writeln!(
                out,
                "node_filesystem_size_bytes{{{l}}} {} {ts}",
                self.fs_size[m]
            )?;
        }
        for (name, v) in ["node_load1", "node_load5", "node_load15"]
            .iter()
            .zip(self.load)
        {
            writeln!(out, "{name}{{{inst}}} {v} {ts}")?;
        }
        for (d, dev) in DEVICES.iter().enumerate() {
            for (dir, v) in ["receive", "transmit"].iter().zip(self.net[d]) {
                writeln!(
                    out,
                    "node_network_{dir}_bytes_total{{device=\"{dev}\",{inst}}} {v} {ts}"
                )?;
            }
        }
        let name = "http_request_duration_seconds";
        let l = format!("handler=\"/api\",{inst}");
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or("+Inf".into(), |b| format!("{b:?}"));
            writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative} {ts}")?;
        }
        writeln!(out, "{name}_sum{{{l}}} {} {ts}", self.latency_sum)?;
        writeln!(out, "{name}_count{{{l}}} {cumulative} {ts}")
    }
}

trait RoundTo {
    fn round_to(self, unit: f64) -> f64;
}

impl RoundTo for f64 {
    /// To a multiple of `unit`, so that values print short, as exporters' do.
    fn round_to(self, unit: f64) -> f64 {
        let r = (self / unit).round() * unit;
        // 0.1 * 3 is 0.30000000000000004: print through the shortest decimal instead.
        if unit < 1.0 {
            let digits = (-unit.log10()).ceil() as usize;
            format!("{r:.digits$}").parse().unwrap_or(r)
        } else {
            r
        }
    }
}

const FAMILIES: [(&str, &str, &str); 10] = [
    (
        "node_cpu_seconds",
        "counter",
        "Seconds the CPUs spent in each mode.",
    ),
    (
        "node_memory_MemTotal_bytes",
        "gauge",
        "Memory information field MemTotal_bytes.",
    ),
    (
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
    ),
    (
        "node_filesystem_avail_bytes",
        "gauge",
        "Filesystem space available to non-root users in bytes.",
    ),
    (
        "node_filesystem_size_bytes",
        "gauge",
        "Filesystem size in bytes.",
    ),
    ("node_load1", "gauge", "1m load average."),
    ("node_load5", "gauge", "5m load average."),
    ("node_load15", "gauge", "15m load average."),
    (
        "node_network_receive_bytes",
        "counter",
        "Network device statistic receive_bytes.",
    ),
    (
        "http_request_duration_seconds",
        "histogram",
        "Request latency.",
    ),
];

/// Seconds with milliseconds only when there are some.
fn seconds(ms: i64) -> String {
    if ms.rem_euclid(1000) == 0 {
        ms.div_euclid(1000).to_string()
    } else {
        format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let span = parse_duration(&args.span).map_err(|e| anyhow::anyhow!("--span: {e}"))?;
    let interval =
        parse_duration(&args.interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if interval < Duration::from_millis(1) || span < interval {
        bail!("--interval must be at least 1ms and at most --span");
    }
    let step_ms = i64::try_from(interval.as_millis())?;
    let end_ms = match args.end {
        Some(s) => s.checked_mul(1000).context("--end is out of range")?,
        None => {
            let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
            now - now.rem_euclid(step_ms)
        }
    };
    let ticks = u64::try_from(span.as_millis() / interval.as_millis())?;
    let mut hosts: Vec<Host> = (0..args.hosts)
        .map(|h| Host::new(h, args.seed, args.cpus.max(1), ticks))
        .collect();
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    for (family, kind, help) in FAMILIES {
        writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}")?;
    }
    writeln!(
        out,
        "# HELP node_network_transmit_bytes Network device statistic transmit_bytes."
    )?;
    writeln!(out, "# TYPE node_network_transmit_bytes counter")?;
    let secs = interval.as_secs_f64();
    for tick in 0..ticks {
        let back = i64::try_from(ticks - 1 - tick)?;
        let ts = seconds(end_ms - back * step_ms);
        for host in &mut hosts {
            host.step(tick, secs, ticks - 1 - tick);
            host.write(&mut out, &ts)?;
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok(())
}
