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
use sysward_proto::Series;
use sysward_server::store::{
    IngestBatch, LabelMatcher, ManualClock, MatchOp, NAME_LABEL, ReadRequest, Store, StoreConfig,
    Tier, TierChoice, TieredStore, codec,
};

// The simulated host lives in one file that the TSDB comparison shares.
#[path = "../src/simhost.rs"]
mod simhost;

use simhost::{STEP, SeriesData, T0, host_series};

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
        selectors: vec![matchers],
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
