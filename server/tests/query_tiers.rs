//! The query engine over the real tiered store: raw within raw retention, rollups past it,
//! with the substitution named in the answer's infos.

use std::sync::Arc;

use sysward_proto::{Series, SeriesKind};
use sysward_server::{
    query::{QueryError, QueryOptions, StoreSource, Value, instant_query, range_query},
    store::{IngestBatch, ManualClock, Store, StoreConfig, Tier, TieredStore},
};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const DAYS: i64 = 40;

/// A counter rising 1 per second and a gauge cycling 0..59, every minute for 40 days.
fn loaded_store(dir: &std::path::Path) -> Arc<TieredStore> {
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(
        TieredStore::open(&dir.join("s.db"), StoreConfig::default(), clock.clone()).expect("store"),
    );
    for hour in 0..DAYS * 24 {
        let start = T0 + hour * HOUR;
        let ts: Vec<i64> = (0..60).map(|i| start + i * MIN).collect();
        let counter: Vec<(i64, f64)> = ts.iter().map(|&t| (t, ((t - T0) / 1000) as f64)).collect();
        let gauge: Vec<(i64, f64)> = ts.iter().map(|&t| (t, ((t / MIN) % 60) as f64)).collect();
        let series = [
            Series {
                name: "cpu_seconds_total".into(),
                labels: Default::default(),
                kind: SeriesKind::Counter,
                points: counter,
            },
            Series {
                name: "load".into(),
                labels: Default::default(),
                kind: SeriesKind::Gauge,
                points: gauge,
            },
        ];
        clock.set(start + HOUR);
        store
            .ingest(&IngestBatch {
                agent_id: "agent",
                boot_id: "boot",
                seq: u64::try_from(hour).expect("store") + 1,
                instance: "host",
                series: &series,
                events: &[],
            })
            .expect("store");
        if hour % 24 == 23 {
            store.maintain().expect("store");
        }
    }
    store.cut_all().expect("store");
    store
}

fn matrix(v: &Value) -> &[sysward_server::query::Series] {
    match v {
        Value::Matrix(m) => m,
        other => panic!("not a matrix: {other:?}"),
    }
}

#[test]
fn thirty_days_read_rollups_and_say_so_and_the_last_day_reads_raw() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let source = StoreSource(store);
    let now = T0 + DAYS * DAY;
    let opts = QueryOptions::default();

    let out = range_query(
        &source,
        "rate(cpu_seconds_total[5m])",
        now - 30 * DAY,
        now - HOUR,
        HOUR,
        &opts,
    )
    .unwrap();
    assert_eq!(out.stats.tier, Some(Tier::H1));
    let m = matrix(&out.value);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points.len(), 30 * 24);
    for (t, v) in &m[0].points {
        assert!((v - 1.0).abs() < 1e-9, "rate at {t} is {v}");
    }
    assert!(
        out.annotations
            .infos
            .iter()
            .any(|i| i.contains("rate(...[5m]) was evaluated over 1h")),
        "{:?}",
        out.annotations
    );

    let out = range_query(
        &source,
        "max_over_time(load[1h])",
        now - 30 * DAY,
        now - HOUR,
        HOUR,
        &opts,
    )
    .unwrap();
    assert!(matrix(&out.value)[0].points.iter().all(|p| p.1 == 59.0));
    let out = range_query(
        &source,
        "avg_over_time(load[1h])",
        now - 30 * DAY,
        now - HOUR,
        HOUR,
        &opts,
    )
    .unwrap();
    assert!(
        matrix(&out.value)[0]
            .points
            .iter()
            .all(|p| (p.1 - 29.5).abs() < 1e-9)
    );

    // What a rollup cannot answer is refused, not approximated.
    let err =
        range_query(&source, "deriv(load[1h])", now - 30 * DAY, now, HOUR, &opts).unwrap_err();
    assert!(
        matches!(&err, QueryError::Execution(m) if m.contains("1h tier")),
        "{err:?}"
    );

    // The last day is raw, exactly: the rate of a counter rising 1/s.
    let out = range_query(
        &source,
        "rate(cpu_seconds_total[5m])",
        now - 2 * HOUR,
        now - HOUR,
        MIN,
        &opts,
    )
    .unwrap();
    assert_eq!(out.stats.tier, Some(Tier::Raw));
    assert!(out.annotations.infos.is_empty(), "{:?}", out.annotations);
    assert!(
        matrix(&out.value)[0]
            .points
            .iter()
            .all(|p| (p.1 - 1.0).abs() < 1e-9)
    );

    // Asked for, the raw tier answers what it still holds and nothing older.
    let forced = QueryOptions {
        tier: Some(Tier::Raw),
        ..opts
    };
    let out = range_query(&source, "load", now - 30 * DAY, now, HOUR, &forced).unwrap();
    let first = matrix(&out.value)[0].points[0].0;
    assert!(first >= now - DAY - 5 * MIN, "raw answered for {first}");

    // An instant selector ten days back reads the 1h tier's last sample of each bucket.
    let out = instant_query(&source, "cpu_seconds_total", now - 10 * DAY, &opts).unwrap();
    assert_eq!(out.stats.tier, Some(Tier::H1));
    let Value::Vector(v) = &out.value else {
        panic!()
    };
    assert_eq!(v[0].value, ((now - 10 * DAY - MIN - T0) / 1000) as f64);
}
