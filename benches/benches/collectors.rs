//! One cycle of every collector the agent runs by default, against the live host: what
//! the agent spends per cycle, and which collector it spends it on.
//!
//! The numbers depend on the host (CPUs, processes, mounts, sockets); compare runs on
//! one machine, not across machines.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sysward_collectors::{Collector, CollectorContext, Output, REGISTRY, Roots};

fn bench(c: &mut Criterion) {
    let roots = Roots::default();
    let mut collectors: Vec<(&str, Box<dyn Collector>)> = REGISTRY
        .iter()
        .filter(|spec| spec.default_enabled)
        .map(|spec| {
            let defaults =
                (spec.configure)(&CollectorContext::new(roots.clone()), &toml::Table::new());
            (
                spec.name,
                defaults.expect("every collector builds with its defaults"),
            )
        })
        .collect();

    // One cycle first: it sizes the throughput, and collectors that keep state between
    // cycles (cpu, processes) are measured in their steady state.
    let mut per_collector = Vec::new();
    let mut total = 0;
    for (name, collector) in &mut collectors {
        let mut out = Output::default();
        if let Err(error) = collector.collect(&mut out) {
            eprintln!("{name}: {error}");
        }
        for error in &out.errors {
            eprintln!("{name}: {error}");
        }
        total += out.samples.len();
        per_collector.push((*name, out.samples.len()));
    }
    eprintln!(
        "default cycle: {total} samples from {} collectors",
        collectors.len()
    );

    let mut group = c.benchmark_group("collectors");
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("default_cycle", |b| {
        b.iter(|| {
            let mut out = Output::default();
            for (_, collector) in &mut collectors {
                let _ = collector.collect(&mut out);
            }
            black_box(out)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("collector");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for ((name, collector), (_, samples)) in collectors.iter_mut().zip(&per_collector) {
        group.throughput(Throughput::Elements(*samples as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut out = Output::default();
                let _ = collector.collect(&mut out);
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
