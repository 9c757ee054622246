//! The agent's spool: how fast frames go in (and out again with their acks), and how long
//! an agent takes to start on a full 256 MiB spool.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sysward_agent::{
    metrics::AgentMetrics,
    queue::{BatchQueue, NewBatch, Next},
    spool::{FsyncPolicy, Spool, SpoolConfig},
};

const FRAME: usize = 16 * 1024;

fn config(dir: &std::path::Path, max_disk: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_disk,
        max_age: Duration::from_secs(7 * 86_400),
        segment_size: 4 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        memory_fallback: 100,
        fresh_window: Duration::from_secs(120),
        backfill_per_second: 0,
    }
}

/// Gzip output is close to random bytes; so is this.
fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..FRAME)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let body = payload(1);
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Bytes(FRAME as u64));

    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(
        config(dir.path(), 1 << 30),
        Arc::new(AgentMetrics::default()),
    )
    .expect("open");
    let mut seq = 0;
    let mut last_sync = Instant::now();
    // fsync every 100 ms, as the agent's `fsync = "100ms"` does from its own task.
    let mut maybe_sync = |spool: &Spool| {
        if last_sync.elapsed() >= Duration::from_millis(100) {
            spool.sync();
            last_sync = Instant::now();
        }
    };
    group.bench_function("append_ack_16KiB_fsync_100ms", |b| {
        b.iter(|| {
            seq += 1;
            spool.push(NewBatch {
                seq,
                priority: false,
                created_ms: now_ms(),
                body: body.clone(),
            });
            if let Next::Ready(batch) = spool.next() {
                spool.ack(black_box(batch.id));
            }
            maybe_sync(&spool);
        })
    });
    drop(spool);

    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(
        config(dir.path(), 1 << 30),
        Arc::new(AgentMetrics::default()),
    )
    .expect("open");
    let mut last_sync = Instant::now();
    group.bench_function("append_16KiB_fsync_100ms", |b| {
        b.iter(|| {
            seq += 1;
            spool.push(NewBatch {
                seq,
                priority: false,
                created_ms: now_ms(),
                body: body.clone(),
            });
            if last_sync.elapsed() >= Duration::from_millis(100) {
                spool.sync();
                last_sync = Instant::now();
            }
        })
    });
    drop(spool);
    group.finish();

    // A full spool: 256 MiB of unacked frames, then the time to open (recover) it.
    let dir = tempfile::tempdir().expect("tempdir");
    let full = 256u64 << 20;
    {
        let spool =
            Spool::open(config(dir.path(), full), Arc::new(AgentMetrics::default())).expect("open");
        let frames = full / (FRAME as u64 + 36) - 64;
        for i in 0..frames {
            spool.push(NewBatch {
                seq: i,
                priority: false,
                created_ms: now_ms(),
                body: body.clone(),
            });
        }
        spool.sync();
    }
    let mut group = c.benchmark_group("spool_recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(full));
    group.bench_function("open_full_256MiB", |b| {
        b.iter(|| {
            let s = Spool::open(config(dir.path(), full), Arc::new(AgentMetrics::default()))
                .expect("open");
            black_box(s.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
