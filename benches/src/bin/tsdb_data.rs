//! `tsdb_data`: the store benchmark's simulated hosts (`benches/src/simhost.rs`) written as
//! OpenMetrics text for other time-series databases, and stored in Sysward's store, whose
//! bytes per sample it prints. `benches/compare-tsdb.sh` runs it and Prometheus' `promtool`
//! on the same samples.
//!
//! ```text
//! tsdb_data [--hosts 5] [--ticks 2880] --openmetrics FILE --store-dir DIR
//! ```
//!
//! Prints `key=value` lines: `samples`, `series`, `raw_bytes` (Sysward's raw tier: value
//! and shared timestamp chunks), `rollup_bytes`, `file_bytes` (store.db once closed:
//! chunks, rollups, series index, free pages of the deleted head log).

#[path = "../simhost.rs"]
mod simhost;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::Arc,
};

use anyhow::Context;
use clap::Parser;
use simhost::{STEP, T0, host_series};
use sysward_proto::Series;
use sysward_server::store::{IngestBatch, ManualClock, Store, StoreConfig, TieredStore};

#[derive(Parser, Debug)]
#[command(about = "Simulated host data as OpenMetrics, and Sysward's bytes per sample on it.")]
struct Args {
    /// Hosts (each ~220 series).
    #[arg(long, default_value_t = 5)]
    hosts: u64,
    /// Ticks of 30 s (2880: a day).
    #[arg(long, default_value_t = 2880)]
    ticks: i64,
    /// Where the OpenMetrics text goes.
    #[arg(long)]
    openmetrics: PathBuf,
    /// A new directory for Sysward's store.
    #[arg(long)]
    store_dir: PathBuf,
    /// How long the store keeps raw points (the query comparison keeps the whole range).
    #[arg(long, default_value_t = 1)]
    raw_retention_days: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same seeds as the bench's 24 h store: host a has seed a + 1.
    let hosts: Vec<_> = (0..args.hosts)
        .map(|a| host_series(a + 1, args.ticks))
        .collect();

    let file = fs::File::create(&args.openmetrics)
        .with_context(|| format!("cannot create {}", args.openmetrics.display()))?;
    let mut out = BufWriter::new(file);
    // Time order, tick by tick; no TYPE lines, so every family is `unknown` and families may
    // interleave, which the openmetrics importer accepts.
    for tick in 0..args.ticks as usize {
        for (a, host) in hosts.iter().enumerate() {
            for (name, labels, _, points) in host {
                let Some(&(ts, v)) = points.get(tick) else {
                    continue;
                };
                write!(out, "{name}{{")?;
                for (k, val) in labels {
                    write!(out, "{k}=\"{val}\",")?;
                }
                writeln!(
                    out,
                    "instance=\"host-{a}\",job=\"sim\"}} {v} {}.{:03}",
                    ts.div_euclid(1000),
                    ts.rem_euclid(1000)
                )?;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;

    fs::create_dir_all(&args.store_dir)?;
    let clock = Arc::new(ManualClock::new(T0));
    let mut config = StoreConfig::default();
    config.retention.keep[0] = std::time::Duration::from_secs(args.raw_retention_days * 86_400);
    let store = TieredStore::open(&args.store_dir.join("store.db"), config, clock.clone())?;
    for tick in 0..args.ticks as usize {
        clock.set(T0 + tick as i64 * STEP);
        for (a, host) in hosts.iter().enumerate() {
            let series: Vec<Series> = host
                .iter()
                .filter_map(|(name, labels, kind, points)| {
                    points.get(tick).map(|p| Series {
                        name: name.clone(),
                        labels: labels.clone(),
                        kind: *kind,
                        points: vec![*p],
                    })
                })
                .collect();
            // Each agent numbers its own batches from 1, as a real agent boot does.
            store.ingest(&IngestBatch {
                agent_id: &format!("ag-{a}"),
                boot_id: "b",
                seq: tick as u64 + 1,
                instance: &format!("host-{a}"),
                series: &series,
                events: &[],
            })?;
        }
        // Cut as the background task would: at 240 points per series (two hours).
        if tick % 240 == 239 {
            store.cut_all()?;
        }
    }
    store.cut_all()?;
    // The head log's pages are free after the last cut; the purge's incremental vacuum gives
    // them back as it does on a running server (nothing here is past retention).
    store.purge()?;
    let stats = store.stats();
    // Closing the last connection checkpoints the WAL into store.db and removes it, so the
    // file then is what stays on disk.
    drop(store);
    let on_disk: u64 = ["store.db", "store.db-wal"]
        .iter()
        .filter_map(|f| fs::metadata(args.store_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let figures: BTreeMap<&str, u64> = BTreeMap::from([
        ("samples", stats.samples_ingested),
        ("series", stats.series),
        ("raw_bytes", stats.bytes[0]),
        ("rollup_bytes", stats.bytes[1..].iter().sum()),
        ("file_bytes", on_disk),
    ]);
    for (k, v) in figures {
        println!("{k}={v}");
    }
    Ok(())
}
