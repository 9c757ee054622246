//! The query engine over the real store: a 30-day dashboard query at a 1 h step, read
//! from the 1 h rollup tier and from raw points (raw retention is stretched to 40 days so
//! that raw still holds the range), plus 1 h dashboard queries on raw data.
//!
//! Sizes: `QUERY_BENCH_HOSTS` hosts (default 10) × 16 CPU counters and 4 gauges, every
//! 60 s for 30 days. Run: `cargo bench -p sysward-benches --bench query`.

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use sysward_proto::{Series, SeriesKind};
use sysward_server::{
    query::{QueryOptions, StoreSource, range_query},
    store::{IngestBatch, ManualClock, Retention, Store, StoreConfig, Tier, TieredStore},
};

const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const DAYS: i64 = 30;

fn hosts() -> usize {
    std::env::var("QUERY_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// One host's hour: 16 CPU counters rising at different rates, 4 wandering gauges.
fn hour_of(host: usize, start: i64) -> Vec<Series> {
    let ts: Vec<i64> = (0..60).map(|i| start + i * MIN).collect();
    let mut out = Vec::new();
    for cpu in 0..16 {
        let rate = 0.1 + (cpu as f64) * 0.05 + host as f64 * 0.01;
        out.push(Series {
            name: "node_cpu_seconds_total".into(),
            labels: [
                ("cpu".to_string(), cpu.to_string()),
                ("mode".into(), "user".into()),
            ]
            .into(),
            kind: SeriesKind::Counter,
            points: ts
                .iter()
                .map(|&t| (t, ((t - T0) / 1000) as f64 * rate))
                .collect(),
        });
    }
    for (i, name) in [
        "node_load1",
        "node_load5",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
    ]
    .iter()
    .enumerate()
    {
        out.push(Series {
            name: (*name).into(),
            labels: Default::default(),
            kind: SeriesKind::Gauge,
            points: ts
                .iter()
                .map(|&t| {
                    (
                        t,
                        ((t / MIN + i as i64 * 7 + host as i64) % 97) as f64 * 0.25,
                    )
                })
                .collect(),
        });
    }
    out
}

fn build(dir: &std::path::Path) -> Arc<TieredStore> {
    let clock = Arc::new(ManualClock::new(T0));
    let mut config = StoreConfig::default();
    let mut keep = Retention::default().keep;
    keep[0] = Duration::from_secs(40 * 86_400);
    config.retention = Retention { keep };
    let store =
        Arc::new(TieredStore::open(&dir.join("q.db"), config, clock.clone()).expect("open"));
    let ids: Vec<String> = (0..hosts()).map(|h| format!("host-{h:03}")).collect();
    for hour in 0..DAYS * 24 {
        let start = T0 + hour * HOUR;
        clock.set(start + HOUR);
        for (h, id) in ids.iter().enumerate() {
            let series = hour_of(h, start);
            let batch = IngestBatch {
                agent_id: id,
                boot_id: "boot",
                seq: hour as u64 + 1,
                instance: id,
                series: &series,
                events: &[],
            };
            store.ingest(&batch).expect("ingest");
        }
        if hour % 12 == 11 {
            store.maintain().expect("maintain");
        }
    }
    store.cut_all().expect("cut");
    store
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = build(dir.path());
    let source = StoreSource(store);
    let end = T0 + DAYS * DAY - HOUR;
    let month = end - (DAYS - 1) * DAY;
    let mut g = c.benchmark_group("query");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let queries = [
        (
            "rate_cpu",
            "sum by (instance) (rate(node_cpu_seconds_total[5m]))",
        ),
        ("avg_load", "avg_over_time(node_load1[1h])"),
    ];
    for (name, q) in queries {
        for tier in [Tier::H1, Tier::Raw] {
            let opts = QueryOptions {
                tier: Some(tier),
                ..QueryOptions::default()
            };
            let out = range_query(&source, q, month, end, HOUR, &opts).expect(q);
            eprintln!(
                "{name} 30d@1h tier {}: peak {} samples, {} read",
                tier.name(),
                out.stats.peak_samples,
                out.stats.samples_read
            );
            g.bench_function(format!("{name}_30d_1h_step_{}", tier.name()), |b| {
                b.iter(|| black_box(range_query(&source, q, month, end, HOUR, &opts).expect(q)))
            });
        }
    }
    let opts = QueryOptions::default();
    let q = "sum by (instance) (rate(node_cpu_seconds_total[5m]))";
    g.bench_function("rate_cpu_1h_15s_step_raw", |b| {
        b.iter(|| black_box(range_query(&source, q, end - HOUR, end, 15_000, &opts).expect(q)))
    });
    // A function with a regular expression, evaluated at each of 240 steps.
    let q = r#"label_replace(node_load1, "host", "$1", "instance", "(.*):.*")"#;
    g.bench_function("label_replace_1h_15s_step_raw", |b| {
        b.iter(|| black_box(range_query(&source, q, end - HOUR, end, 15_000, &opts).expect(q)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
