//! The store: bytes per sample on realistic host data, codec speed, ingest into the store
//! (durable, no HTTP), and 24 h range reads of one and of 1,000 series.
//!
//! The data imitates what the agent sends from a 16-CPU host at the critical tier (30 s):
//! the `cpu` collector's counters in ticks / 100 with idle dominating, `memory` fields in
//! kB × 1024 (some constant, some wandering), load averages with two decimals, a few
//! integer counters; each collector run stamps its samples with one time, with up to
//! 600 ms of jitter per run, as the scheduler does.

use std::{collections::BTreeMap, hint::black_box, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sysward_proto::{Series, SeriesKind};
use sysward_server::store::{
    IngestBatch, LabelMatcher, ManualClock, MatchOp, NAME_LABEL, ReadRequest, Store, StoreConfig,
    Tier, TierChoice, TieredStore, codec,
};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const STEP: i64 = 30_000;

/// A small deterministic generator (xorshift64*), so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one collector run produced: one timestamp, many series.
struct Run {
    ts: i64,
    series: Vec<(String, BTreeMap<String, String>, SeriesKind, f64)>,
}

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// A simulated host: state carried between ticks.
struct Host {
    rng: Rng,
    ticks: Vec<[u64; 8]>,
    counters: [u64; 3],
    memory: Vec<(String, u64, u64)>,
    load: [f64; 3],
}

const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];

impl Host {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let ticks = (0..16)
            .map(|_| std::array::from_fn(|m| 1_000_000 * (8 - m as u64) + rng.below(100_000)))
            .collect();
        // (field, kB now, how much it wanders per tick in kB; 0 = constant).
        let fields = [
            ("MemTotal", 65_842_128, 0),
            ("MemFree", 31_202_112, 4_000),
            ("MemAvailable", 52_114_996, 3_000),
            ("Buffers", 1_204_332, 40),
            ("Cached", 19_882_004, 900),
            ("SwapCached", 0, 0),
            ("Active", 20_112_440, 1_500),
            ("Inactive", 10_220_884, 600),
            ("Active_anon", 9_120_004, 1_200),
            ("Inactive_anon", 112_004, 10),
            ("Active_file", 10_992_436, 300),
            ("Inactive_file", 10_108_880, 300),
            ("Unevictable", 16_384, 0),
            ("Mlocked", 16_384, 0),
            ("SwapTotal", 8_388_604, 0),
            ("SwapFree", 8_388_604, 0),
            ("Dirty", 1_204, 400),
            ("Writeback", 0, 4),
            ("AnonPages", 9_202_112, 1_200),
            ("Mapped", 1_802_004, 80),
            ("Shmem", 402_112, 8),
            ("KReclaimable", 1_102_332, 60),
            ("Slab", 2_002_112, 80),
            ("SReclaimable", 1_102_332, 60),
            ("SUnreclaim", 899_780, 20),
            ("KernelStack", 28_112, 16),
            ("PageTables", 88_444, 40),
            ("NFS_Unstable", 0, 0),
            ("Bounce", 0, 0),
            ("WritebackTmp", 0, 0),
            ("CommitLimit", 41_309_668, 0),
            ("Committed_AS", 22_110_444, 2_000),
            ("VmallocTotal", 34_359_738_367, 0),
            ("VmallocUsed", 120_332, 4),
            ("VmallocChunk", 0, 0),
            ("Percpu", 34_560, 0),
            ("HardwareCorrupted", 0, 0),
            ("AnonHugePages", 2_048_000, 0),
            ("ShmemHugePages", 0, 0),
            ("ShmemPmdMapped", 0, 0),
            ("FileHugePages", 0, 0),
            ("FilePmdMapped", 0, 0),
            ("HugePages_Total", 0, 0),
            ("HugePages_Free", 0, 0),
            ("HugePages_Rsvd", 0, 0),
            ("HugePages_Surp", 0, 0),
            ("Hugepagesize", 2_048, 0),
            ("Hugetlb", 0, 0),
            ("DirectMap4k", 1_102_004, 0),
            ("DirectMap2M", 30_302_208, 0),
            ("DirectMap1G", 36_700_160, 0),
        ];
        let memory = fields
            .iter()
            .map(|(f, kb, w)| ((*f).to_string(), *kb, *w))
            .collect();
        Host {
            rng,
            ticks,
            counters: [9_876_543_210, 4_567_890_123, 12_345_678],
            memory,
            load: [0.52, 0.61, 0.58],
        }
    }

    fn jitter(&mut self) -> i64 {
        self.rng.below(600) as i64
    }

    /// The three collector runs of tick `k`.
    fn tick(&mut self, k: i64) -> Vec<Run> {
        let base = T0 + k * STEP;
        let mut cpu = Run {
            ts: base + self.jitter(),
            series: Vec::new(),
        };
        let busy = 0.05 + 0.2 * self.rng.unit();
        for (c, t) in self.ticks.iter_mut().enumerate() {
            // 3000 ticks per CPU per 30 s, shared by the modes.
            let total = 3_000 + self.rng.below(40);
            let shares = [
                1.0 - busy,
                0.01 * self.rng.unit(),
                0.002,
                0.0,
                0.006 * self.rng.unit(),
                0.0,
                busy * 0.3 * (0.5 + self.rng.unit()),
                busy * 0.6 * (0.5 + self.rng.unit()),
            ];
            for (m, share) in shares.iter().enumerate() {
                t[m] += (total as f64 * share) as u64;
                cpu.series.push((
                    "node_cpu_seconds_total".into(),
                    labels(&[("cpu", c.to_string()), ("mode", MODES[m].into())]),
                    SeriesKind::Counter,
                    t[m] as f64 / 100.0,
                ));
            }
            for mode in ["nice", "user"] {
                cpu.series.push((
                    "node_cpu_guest_seconds_total".into(),
                    labels(&[("cpu", c.to_string()), ("mode", mode.into())]),
                    SeriesKind::Counter,
                    0.0,
                ));
            }
        }
        let rates = [120_000, 60_000, 40];
        for (i, name) in [
            "node_context_switches_total",
            "node_intr_total",
            "node_forks_total",
        ]
        .iter()
        .enumerate()
        {
            self.counters[i] += rates[i] + self.rng.below(rates[i] / 2 + 1);
            cpu.series.push((
                (*name).into(),
                BTreeMap::new(),
                SeriesKind::Counter,
                self.counters[i] as f64,
            ));
        }
        for (name, v) in [
            ("node_boot_time_seconds", 1_767_000_000.0),
            ("node_procs_running", (1 + self.rng.below(4)) as f64),
            ("node_procs_blocked", self.rng.below(2) as f64),
        ] {
            cpu.series
                .push((name.into(), BTreeMap::new(), SeriesKind::Gauge, v));
        }
        let mut memory = Run {
            ts: base + self.jitter(),
            series: Vec::new(),
        };
        for (field, kb, wander) in self.memory.iter_mut() {
            if *wander > 0 {
                let step = self.rng.below(2 * *wander + 1) as i64 - *wander as i64;
                *kb = kb.saturating_add_signed(step);
            }
            memory.series.push((
                format!("node_memory_{field}_bytes"),
                BTreeMap::new(),
                SeriesKind::Gauge,
                (*kb * 1024) as f64,
            ));
        }
        let mut load = Run {
            ts: base + self.jitter(),
            series: Vec::new(),
        };
        let target = busy * 16.0 * 0.3;
        for (i, (name, decay)) in [
            ("node_load1", 0.6),
            ("node_load5", 0.9),
            ("node_load15", 0.97),
        ]
        .iter()
        .enumerate()
        {
            self.load[i] = self.load[i] * decay + target * (1.0 - decay);
            // The kernel prints two decimals; the collector parses that text.
            let v: f64 = format!("{:.2}", self.load[i]).parse().unwrap_or(0.0);
            load.series
                .push(((*name).into(), BTreeMap::new(), SeriesKind::Gauge, v));
        }
        vec![cpu, memory, load]
    }
}

/// `ticks` ticks of one host, as per-series point lists (name, labels, kind, points).
type SeriesData = Vec<(
    String,
    BTreeMap<String, String>,
    SeriesKind,
    Vec<(i64, f64)>,
)>;

fn host_series(seed: u64, ticks: i64) -> SeriesData {
    let mut host = Host::new(seed);
    let mut by_key: BTreeMap<(String, Vec<(String, String)>), usize> = BTreeMap::new();
    let mut out: SeriesData = Vec::new();
    for k in 0..ticks {
        for run in host.tick(k) {
            for (name, labels, kind, v) in run.series {
                let key = (name.clone(), labels.clone().into_iter().collect());
                let i = *by_key.entry(key).or_insert_with(|| {
                    out.push((name, labels, kind, Vec::new()));
                    out.len() - 1
                });
                out[i].3.push((run.ts, v));
            }
        }
    }
    out
}

/// Bytes per sample of three layouts over the same data.
fn bytes_per_sample(data: &SeriesData) -> [f64; 4] {
    let samples: usize = data.iter().map(|s| s.3.len()).sum();
    let (mut gorilla, mut own, mut shared) = (0usize, 0usize, 0usize);
    let mut ts_groups: BTreeMap<Vec<i64>, ()> = BTreeMap::new();
    for (_, _, _, points) in data {
        let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
        let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
        let ts_bytes = codec::encode_ints(&ts).len();
        gorilla += ts_bytes + codec::encode_values_xor(&vs).len();
        own += codec::encode_chunk(points).len();
        shared += codec::encode_values(&vs).len();
        ts_groups.insert(ts, ());
    }
    shared += ts_groups
        .keys()
        .map(|ts| codec::encode_ints(ts).len())
        .sum::<usize>();
    let per = |b: usize| b as f64 / samples as f64;
    [16.0, per(gorilla), per(own), per(shared)]
}

fn batches_of(data: &SeriesData, tick: usize) -> Vec<Series> {
    data.iter()
        .filter_map(|(name, labels, kind, points)| {
            points.get(tick).map(|p| Series {
                name: name.clone(),
                labels: labels.clone(),
                kind: *kind,
                points: vec![*p],
            })
        })
        .collect()
}

/// A store holding `agents` hosts × `ticks` ticks, ingested batch by batch and cut as the
/// background task would.
fn filled_store(dir: &std::path::Path, agents: usize, ticks: i64) -> (TieredStore, usize) {
    let clock = Arc::new(ManualClock::new(T0));
    let store = TieredStore::open(&dir.join("store.db"), StoreConfig::default(), clock.clone())
        .expect("open");
    let hosts: Vec<SeriesData> = (0..agents)
        .map(|a| host_series(a as u64 + 1, ticks))
        .collect();
    let mut seq = 0;
    let mut samples = 0;
    for tick in 0..ticks as usize {
        clock.set(T0 + tick as i64 * STEP);
        for (a, host) in hosts.iter().enumerate() {
            let series = batches_of(host, tick);
            samples += series.len();
            seq += 1;
            store
                .ingest(&IngestBatch {
                    agent_id: &format!("ag-{a}"),
                    boot_id: "b",
                    seq,
                    instance: &format!("host-{a}"),
                    series: &series,
                    events: &[],
                })
                .expect("ingest");
        }
        if tick % 240 == 239 {
            store.cut_all().expect("cut");
        }
    }
    store.cut_all().expect("cut");
    (store, samples)
}

fn bench(c: &mut Criterion) {
    // Two hours: one chunk span.
    let data = host_series(42, 240);
    let samples: usize = data.iter().map(|s| s.3.len()).sum();
    let [raw, gorilla, own, shared] = bytes_per_sample(&data);
    eprintln!(
        "bytes/sample over {} series × 240 points ({samples} samples): \
         uncompressed {raw:.2}, XOR floats + delta-of-delta ts (Gorilla) {gorilla:.3}, \
         adaptive codec per series {own:.3}, adaptive + shared timestamps (what the store \
         writes) {shared:.3}",
        data.len()
    );

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(samples as u64));
    let values: Vec<Vec<f64>> = data
        .iter()
        .map(|s| s.3.iter().map(|p| p.1).collect())
        .collect();
    let encoded: Vec<Vec<u8>> = values.iter().map(|v| codec::encode_values(v)).collect();
    group.bench_function("encode_values_host_2h", |b| {
        b.iter(|| {
            for v in &values {
                black_box(codec::encode_values(black_box(v)));
            }
        })
    });
    group.bench_function("decode_values_host_2h", |b| {
        b.iter(|| {
            for e in &encoded {
                black_box(codec::decode_values(black_box(e)).expect("decode"));
            }
        })
    });
    group.bench_function("encode_chunk_host_2h", |b| {
        b.iter(|| {
            for s in &data {
                black_box(codec::encode_chunk(black_box(&s.3)));
            }
        })
    });
    group.finish();

    // Ingest into the store itself: durable commit per batch, no TLS, JSON or gzip.
    let host = host_series(7, 240);
    let per_batch = host.len();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(per_batch as u64));
    group.sample_size(20);
    group.bench_function("ingest_batch_one_host_tick", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(T0));
        let store = TieredStore::open(&dir.path().join("s.db"), StoreConfig::default(), clock)
            .expect("open");
        let mut seq = 0u64;
        let mut tick = 0usize;
        b.iter_batched(
            || {
                tick = (tick + 1) % 240;
                batches_of(&host, tick)
            },
            |series| {
                seq += 1;
                store
                    .ingest(&IngestBatch {
                        agent_id: "ag",
                        boot_id: "b",
                        seq,
                        instance: "h",
                        series: &series,
                        events: &[],
                    })
                    .expect("ingest")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // 24 h of 5 hosts (~1,100 series) at 30 s.
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let (store, stored) = filled_store(dir.path(), 5, 2880);
    let took = started.elapsed();
    let stats = store.stats();
    let file = std::fs::metadata(dir.path().join("store.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "store: {stored} samples in {:.1} s ({:.0} samples/s, durable per batch, cuts included); \
         raw tier {} bytes = {:.3} bytes/sample; rollups {} bytes; file {} bytes = {:.2} \
         bytes/sample with SQLite pages and indexes",
        took.as_secs_f64(),
        stored as f64 / took.as_secs_f64(),
        stats.bytes[0],
        stats.bytes[0] as f64 / stored as f64,
        stats.bytes[1..].iter().sum::<u64>(),
        file,
        file as f64 / stored as f64,
    );
    let day = |matchers: Vec<LabelMatcher>| ReadRequest {
        matchers,
        start: T0,
        end: T0 + 2880 * STEP,
        tier: TierChoice::Exact(Tier::Raw),
    };
    let one = day(vec![
        LabelMatcher::eq(NAME_LABEL, "node_cpu_seconds_total"),
        LabelMatcher::eq("instance", "host-0"),
        LabelMatcher::eq("cpu", "3"),
        LabelMatcher::eq("mode", "user"),
    ]);
    let many = day(vec![
        LabelMatcher::new(NAME_LABEL, MatchOp::Re, ".+").expect("regex"),
        LabelMatcher::new("instance", MatchOp::Re, "host-[0-4]").expect("regex"),
    ]);
    let n_many = store.read(&many).expect("read").len();
    let pts_many: usize = store
        .read(&many)
        .expect("read")
        .iter()
        .map(|s| match &s.data {
            sysward_server::store::SeriesData::Raw(p) => p.len(),
            sysward_server::store::SeriesData::Rollup(r) => r.len(),
        })
        .sum();
    let mut group = c.benchmark_group("read_24h");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(2880));
    group.bench_function("one_series_raw", |b| {
        b.iter(|| black_box(store.read(black_box(&one)).expect("read")))
    });
    group.throughput(Throughput::Elements(pts_many as u64));
    group.bench_function(format!("{n_many}_series_raw"), |b| {
        b.iter(|| black_box(store.read(black_box(&many)).expect("read")))
    });
    let many_5m = ReadRequest {
        tier: TierChoice::Exact(Tier::M5),
        ..many.clone()
    };
    group.throughput(Throughput::Elements((n_many * 288) as u64));
    group.bench_function(format!("{n_many}_series_5m_rollups"), |b| {
        b.iter(|| black_box(store.read(black_box(&many_5m)).expect("read")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
