//! The simulated host of the store benchmark (`benches/benches/store.rs`), word for word,
//! so that other tools measure on the same data: a 16-CPU host at the critical tier
//! (30 s), the `cpu` collector's counters in ticks / 100 with idle dominating, `memory`
//! fields in kB × 1024 (some constant, some wandering), load averages with two decimals,
//! a few integer counters; each collector run stamps its samples with one time, with up
//! to 600 ms of jitter per run, as the scheduler does.
//!
//! Included with `#[path]` by the store bench and by `tsdb_data`, so that both measure the
//! same data.

#![allow(dead_code)]

use std::collections::BTreeMap;

use sysward_proto::SeriesKind;

/// 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600_000;
pub(crate) const STEP: i64 = 30_000;

/// A small deterministic generator (xorshift64*), so every run measures the same data.
pub(crate) struct Rng(u64);

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
pub(crate) type SeriesData = Vec<(
    String,
    BTreeMap<String, String>,
    SeriesKind,
    Vec<(i64, f64)>,
)>;

pub(crate) fn host_series(seed: u64, ticks: i64) -> SeriesData {
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
