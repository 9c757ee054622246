use std::{path::Path, sync::Arc};

use super::*;
use crate::store::{ManualClock, StoreConfig, TieredStore};

const T0: i64 = 1_700_000_000_000;

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> ForeignSeries {
    ForeignSeries {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        kind: SeriesKind::Gauge,
        points: points.to_vec(),
    }
}

fn refusal(input: Vec<ForeignSeries>) -> Refusal {
    validate(input, &Limits::default()).unwrap_err()
}

#[test]
fn bad_requests_are_refused_with_their_reason() {
    let up = [("__name__", "up"), ("job", "node")];
    for (input, reason, words) in [
        (
            vec![series(&[("job", "x")], &[(1, 1.0)])],
            Reason::InvalidName,
            "no metric name",
        ),
        (
            vec![series(&[("__name__", "1up")], &[(1, 1.0)])],
            Reason::InvalidName,
            "invalid metric name",
        ),
        (
            vec![series(
                &[("__name__", "up"), ("bad-name", "x")],
                &[(1, 1.0)],
            )],
            Reason::InvalidName,
            "invalid label name",
        ),
        (
            vec![series(&[("__name__", "up"), ("__meta", "x")], &[(1, 1.0)])],
            Reason::InvalidName,
            "invalid label name",
        ),
        (
            vec![series(
                &[("__name__", "up"), ("a", "1"), ("a", "2")],
                &[(1, 1.0)],
            )],
            Reason::DuplicateLabel,
            "more than once",
        ),
        (
            vec![series(&up, &[(2, 1.0), (1, 1.0)])],
            Reason::OutOfOrder,
            "out of order",
        ),
        (
            vec![series(&up, &[(2, 1.0)]), series(&up, &[(2, 1.0)])],
            Reason::DuplicateSample,
            "duplicate sample",
        ),
    ] {
        let r = refusal(input);
        assert_eq!(r.reason, reason, "{}", r.message);
        assert!(r.message.contains(words), "{}", r.message);
    }
}

#[test]
fn limits_refuse_as_too_large() {
    let limits = Limits {
        max_series: 1,
        ..Limits::default()
    };
    let two = vec![
        series(&[("__name__", "a")], &[(1, 1.0)]),
        series(&[("__name__", "b")], &[(1, 1.0)]),
    ];
    let r = validate(two, &limits).unwrap_err();
    assert_eq!(r.reason, Reason::TooLarge);
    assert_eq!(r.samples, 2);
}

#[test]
fn entries_of_one_series_merge_and_group_by_instance() {
    let a = [
        ("__name__", "up"),
        ("instance", "h:9100"),
        ("agent_id", "x"),
    ];
    let v = validate(
        vec![
            series(&a, &[(1, 1.0)]),
            series(
                &[("__name__", "up"), ("instance", "other"), ("empty", "")],
                &[(1, 0.0)],
            ),
            series(&a, &[(2, f64::NAN)]),
        ],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(v.samples, 3);
    assert_eq!(v.groups.len(), 2);
    assert_eq!(v.groups[0].0, "h:9100");
    let s = &v.groups[0].1[0];
    assert_eq!(s.name, "up");
    assert!(s.labels.is_empty(), "{:?}", s.labels);
    assert_eq!(s.points.len(), 2);
    assert!(v.groups[1].1[0].labels.is_empty());
}

fn store(dir: &Path) -> TieredStore {
    TieredStore::open(
        &dir.join("store.db"),
        StoreConfig::default(),
        Arc::new(ManualClock::new(T0 + 60_000)),
    )
    .unwrap()
}

fn stored_points(store: &dyn Store, name: &str) -> Vec<(i64, f64)> {
    let read = store
        .read(&ReadRequest {
            selectors: vec![vec![LabelMatcher::eq(NAME_LABEL, name)]],
            start: 0,
            end: i64::MAX,
            tier: TierChoice::Exact(Tier::Raw),
        })
        .unwrap();
    read.into_iter()
        .flat_map(|r| match r.data {
            SeriesData::Raw(p) => p,
            SeriesData::Rollup(_) => vec![],
        })
        .collect()
}

fn request(points: &[(i64, f64)]) -> Validated {
    validate(
        vec![series(&[("__name__", "m"), ("instance", "i")], points)],
        &Limits::default(),
    )
    .unwrap()
}

#[test]
fn retries_store_nothing_twice_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let writer = ForeignWriter::default();
    let first = writer
        .store(&s, "prom", request(&[(T0, 1.0), (T0 + 1000, 2.0)]), 0)
        .unwrap();
    assert_eq!((first.accepted, first.skipped), (2, 0));
    assert_eq!(first.names, vec!["m".to_string()]);
    let again = writer
        .store(&s, "prom", request(&[(T0, 1.0), (T0 + 1000, 2.0)]), 0)
        .unwrap();
    assert_eq!((again.accepted, again.skipped), (0, 2));
    // A fresh writer (a restarted server) learns from the store.
    let fresh = ForeignWriter::default();
    let overlap = fresh
        .store(
            &s,
            "prom",
            request(&[(T0 + 1000, 2.0), (T0 + 2000, 3.0)]),
            0,
        )
        .unwrap();
    assert_eq!((overlap.accepted, overlap.skipped), (1, 1));
    assert_eq!(
        stored_points(&s, "m"),
        vec![(T0, 1.0), (T0 + 1000, 2.0), (T0 + 2000, 3.0)]
    );
    // Another token's series is another series.
    let other = fresh.store(&s, "alloy", request(&[(T0, 5.0)]), 0).unwrap();
    assert_eq!(other.accepted, 1);
}

#[test]
fn series_keep_their_instance_and_carry_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    ForeignWriter::default()
        .store(&s, "prom", request(&[(T0, 1.0)]), 0)
        .unwrap();
    let found = s
        .select(&[vec![LabelMatcher::eq(NAME_LABEL, "m")]])
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].labels.get("instance").map(String::as_str),
        Some("i")
    );
    assert_eq!(
        found[0].labels.get("agent_id").map(String::as_str),
        Some("prom")
    );
}

#[test]
fn metrics_render_every_reason() {
    let m = ForeignMetrics::default();
    m.refused_request(
        Protocol::RemoteWrite,
        &Refusal {
            reason: Reason::NotSnappy,
            message: String::new(),
            samples: 3,
        },
    );
    let mut out = String::new();
    m.render(&mut out);
    assert!(out.contains(
        "sysward_server_foreign_samples_refused_total{protocol=\"remote_write\",reason=\"not_snappy\"} 3"
    ), "{out}");
    assert!(out.contains(
        "sysward_server_foreign_requests_total{protocol=\"remote_write\",outcome=\"refused\"} 1"
    ));
}
