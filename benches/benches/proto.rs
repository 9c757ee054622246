//! Encoding and decoding a realistic batch: what each agent push costs on both ends.

use std::{collections::BTreeMap, hint::black_box};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sysward_proto::{
    Batch, BatchEncoder, Limits, Series, SeriesKind, VERSION, decode_batch, encode_batch,
};

/// One minute of a 16-CPU host at the critical tier: about what a batch carries.
fn batch() -> Batch {
    let mut series = Vec::new();
    for cpu in 0..16 {
        for mode in [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ] {
            series.push(Series {
                name: "node_cpu_seconds_total".into(),
                labels: BTreeMap::from([
                    ("cpu".into(), cpu.to_string()),
                    ("mode".into(), mode.into()),
                ]),
                kind: SeriesKind::Counter,
                points: vec![(1_700_000_000_000, 12345.67 + f64::from(cpu))],
            });
        }
    }
    for i in 0..60 {
        series.push(Series {
            name: format!("node_memory_Field{i}_bytes"),
            labels: BTreeMap::new(),
            kind: SeriesKind::Gauge,
            points: vec![(1_700_000_000_000, 1_234_567_890.0 + f64::from(i))],
        });
    }
    Batch {
        v: VERSION,
        agent_id: "ag-0123456789abcdef".into(),
        boot_id: "b".into(),
        seq: 1,
        sent_at: 1_700_000_000_000,
        series,
        events: vec![],
        host: None,
    }
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let body = encode_batch(&batch).expect("encode");
    let json_len = serde_json::to_vec(&batch).expect("json").len();
    let mut group = c.benchmark_group("proto");
    group.throughput(Throughput::Elements(batch.series.len() as u64));
    group.bench_function("encode_batch", |b| {
        b.iter(|| encode_batch(black_box(&batch)))
    });
    // As the agent encodes: one encoder kept across batches.
    let mut encoder = BatchEncoder::new();
    group.bench_function("encode_batch_reused_encoder", |b| {
        b.iter(|| encoder.encode(black_box(&batch)))
    });
    group.bench_function("decode_batch", |b| {
        b.iter(|| decode_batch(black_box(&body), &Limits::default()))
    });
    group.finish();
    eprintln!(
        "batch: {} series, {json_len} bytes JSON, {} bytes gzip",
        batch.series.len(),
        body.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
