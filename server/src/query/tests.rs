//! The evaluator on small hand-made data; Prometheus' own suite runs in
//! `server/tests/promqltest.rs`.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// `http_requests{job, instance}` every 10 s from 0 to 100 s, value = i * factor.
fn source() -> MemorySource {
    let mut s = MemorySource::new();
    for (job, instance, factor) in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 3.0)] {
        let points: Vec<(i64, f64)> = (0..=10).map(|i| (i * 10_000, i as f64 * factor)).collect();
        s.add(
            labels(&[
                ("__name__", "http_requests"),
                ("job", job),
                ("instance", instance),
            ]),
            &points,
        );
    }
    s
}

fn instant(expr: &str, t: i64) -> Value {
    instant_query(&source(), expr, t, &QueryOptions::default())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .value
}

fn values(v: &Value) -> Vec<(String, f64)> {
    let Value::Vector(v) = v else {
        panic!("not a vector: {v:?}");
    };
    let mut out: Vec<(String, f64)> = v.iter().map(|s| (s.metric.to_string(), s.value)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn selectors_look_back_and_stop_at_staleness() {
    let v = instant(r#"http_requests{job="api"}"#, 55_000);
    assert_eq!(
        values(&v),
        vec![
            (
                r#"{__name__="http_requests", instance="a", job="api"}"#.into(),
                5.0
            ),
            (
                r#"{__name__="http_requests", instance="b", job="api"}"#.into(),
                10.0
            ),
        ]
    );
    // 5 m after the last sample nothing is left.
    assert!(values(&instant("http_requests", 400_001)).is_empty());
    let mut s = source();
    s.add(
        labels(&[
            ("__name__", "http_requests"),
            ("job", "db"),
            ("instance", "a"),
        ]),
        &[(105_000, stale_nan())],
    );
    let v = instant_query(&s, "http_requests", 106_000, &QueryOptions::default())
        .unwrap()
        .value;
    assert_eq!(values(&v).len(), 2);
}

#[test]
fn binary_operators_match_vectors() {
    let v = instant(
        r#"http_requests{job="api"} / on(instance) http_requests{job="db"}"#,
        100_000,
    );
    assert_eq!(values(&v), vec![(r#"{instance="a"}"#.into(), 10.0 / 30.0)]);
    let v = instant("http_requests > 15", 100_000);
    assert_eq!(values(&v).len(), 2);
    let v = instant("http_requests > bool 15", 100_000);
    assert_eq!(values(&v).iter().map(|x| x.1).sum::<f64>(), 2.0);
    assert_eq!(instant("1 + 2 * 3", 0), Value::Scalar(7.0));
    let err = instant_query(
        &source(),
        r#"http_requests + on() http_requests"#,
        0,
        &QueryOptions::default(),
    );
    assert!(matches!(err, Err(QueryError::Execution(_))), "{err:?}");
}

#[test]
fn aggregations_group_by_and_without() {
    let v = instant("sum by (job) (http_requests)", 100_000);
    assert_eq!(
        values(&v),
        vec![
            (r#"{job="api"}"#.into(), 30.0),
            (r#"{job="db"}"#.into(), 30.0)
        ]
    );
    let v = instant("max without (instance) (http_requests)", 100_000);
    assert_eq!(
        values(&v),
        vec![
            (r#"{job="api"}"#.into(), 20.0),
            (r#"{job="db"}"#.into(), 30.0)
        ]
    );
    let v = instant("topk(1, http_requests)", 100_000);
    assert_eq!(values(&v)[0].1, 30.0);
    let v = instant("count_values(\"v\", http_requests)", 10_000);
    assert_eq!(values(&v).len(), 3);
}

#[test]
fn range_queries_step_and_group_by_series() {
    let out = range_query(
        &source(),
        "http_requests{instance=\"a\", job=\"api\"} * 2",
        0,
        100_000,
        50_000,
        &QueryOptions::default(),
    )
    .unwrap();
    let Value::Matrix(m) = out.value else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points, vec![(0, 0.0), (50_000, 10.0), (100_000, 20.0)]);
    let err = range_query(&source(), "1", 10, 0, 1, &QueryOptions::default());
    assert!(matches!(err, Err(QueryError::BadData(_))));
    let err = range_query(&source(), "1", 0, 10, 0, &QueryOptions::default());
    assert!(matches!(err, Err(QueryError::BadData(_))));
}

#[test]
fn range_vectors_are_left_open_and_offsets_move_them() {
    let Value::Matrix(m) = instant(r#"http_requests{job="db"}[30s]"#, 100_000) else {
        panic!()
    };
    assert_eq!(
        m[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![80_000, 90_000, 100_000]
    );
    let Value::Matrix(m) = instant(r#"http_requests{job="db"}[30s] offset 50s"#, 100_000) else {
        panic!()
    };
    assert_eq!(
        m[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![30_000, 40_000, 50_000]
    );
    let Value::Matrix(m) = instant(r#"http_requests{job="db"}[30s] @ 40"#, 100_000) else {
        panic!()
    };
    assert_eq!(m[0].points.last().map(|p| p.0), Some(40_000));
    let v = instant(r#"http_requests{job="db"} offset -20s"#, 50_000);
    assert_eq!(values(&v)[0].1, 21.0);
}

#[test]
fn subqueries_evaluate_on_their_own_grid() {
    let Value::Matrix(m) = instant(r#"http_requests{job="db"}[40s:20s]"#, 100_000) else {
        panic!()
    };
    assert_eq!(m[0].points, vec![(80_000, 24.0), (100_000, 30.0)]);
}

#[test]
fn limits_refuse_with_their_name() {
    let mut o = QueryOptions::default();
    o.limits.max_series_per_selector = 2;
    let err = instant_query(&source(), "http_requests", 0, &o);
    assert!(
        matches!(
            err,
            Err(QueryError::Limit {
                limit: "max_series_per_selector",
                ..
            })
        ),
        "{err:?}"
    );
    let mut o = QueryOptions::default();
    o.limits.max_samples = 10;
    let err = instant_query(&source(), "http_requests[1m]", 100_000, &o);
    assert!(
        matches!(
            err,
            Err(QueryError::Limit {
                limit: "max_samples",
                ..
            })
        ),
        "{err:?}"
    );
    let err = instant_query(&source(), "sum(", 0, &QueryOptions::default());
    assert!(matches!(err, Err(QueryError::BadData(_))));
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    const SELECTORS: [&str; 6] = [
        "m",
        r#"m{a="x"}"#,
        r#"{__name__=~"m|n"}"#,
        r#"n{a!="x"} offset 30s"#,
        "m @ 50",
        r#"m{a=~".+"} offset -1m"#,
    ];
    const RANGE_FUNCS: [&str; 14] = [
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "resets",
        "changes",
        "avg_over_time",
        "stddev_over_time",
        "last_over_time",
        "present_over_time",
        "absent_over_time",
        "mad_over_time",
    ];
    const INSTANT_FUNCS: [&str; 12] = [
        "abs",
        "ceil",
        "exp",
        "ln",
        "sqrt",
        "sgn",
        "timestamp",
        "absent",
        "sort",
        "sort_desc",
        "day_of_week",
        "histogram_quantile(0.9, ",
    ];
    const BINOPS: [&str; 12] = [
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "> bool",
        "<",
        "and",
        "or",
        "unless",
        "/ on(a) group_left",
    ];
    const AGGS: [&str; 9] = [
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "group",
        "topk(2,",
        "quantile(0.5,",
    ];

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(SELECTORS.to_vec()).prop_map(String::from),
            (
                prop::sample::select(RANGE_FUNCS.to_vec()),
                prop::sample::select(SELECTORS.to_vec()),
                1u32..300
            )
                .prop_map(|(f, s, r)| {
                    // Modifiers go after the range: `m offset 30s` becomes `m[10s] offset 30s`.
                    let (sel, modifier) = s.split_once(' ').unwrap_or((s, ""));
                    format!("{f}({sel}[{r}s] {modifier})")
                }),
            (-5.0f64..5.0).prop_map(|v| format!("{v}")),
        ]
    }

    fn expr() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(BINOPS.to_vec()),
                    inner.clone()
                )
                    .prop_map(|(l, op, r)| format!("({l}) {op} ({r})")),
                (prop::sample::select(AGGS.to_vec()), inner.clone()).prop_map(|(a, e)| {
                    if a.ends_with(',') {
                        format!("{a} {e}) by (a)")
                    } else {
                        format!("{a} without (b) ({e})")
                    }
                }),
                (prop::sample::select(INSTANT_FUNCS.to_vec()), inner.clone()).prop_map(|(f, e)| {
                    if f.ends_with(' ') {
                        format!("{f}{e})")
                    } else {
                        format!("{f}({e})")
                    }
                }),
                (inner.clone(), 1u32..120, 1u32..30)
                    .prop_map(|(e, r, s)| format!("max_over_time(({e})[{r}s:{s}s])")),
                inner.prop_map(|e| format!("-({e})")),
            ]
        })
    }

    fn data() -> impl Strategy<Value = MemorySource> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["m", "n"]),
                prop::sample::select(vec!["x", "y", ""]),
                prop::sample::select(vec!["+Inf", "1", "0.5", ""]),
                prop::collection::vec(
                    (
                        0i64..200,
                        prop_oneof![
                            Just(f64::NAN),
                            Just(f64::INFINITY),
                            -1e3f64..1e3,
                            Just(stale_nan())
                        ],
                    ),
                    0..30,
                ),
            ),
            0..6,
        )
        .prop_map(|series| {
            let mut s = MemorySource::new();
            for (name, a, le, points) in series {
                let pts: Vec<(i64, f64)> =
                    points.into_iter().map(|(t, v)| (t * 5_000, v)).collect();
                s.add(labels(&[("__name__", name), ("a", a), ("le", le)]), &pts);
            }
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn random_expressions_over_random_data(e in expr(), src in data(), t in 0i64..1_200_000, step in 1i64..60_000) {
            let opts = QueryOptions::default();
            let _ = instant_query(&src, &e, t, &opts);
            let _ = range_query(&src, &e, t / 2, t, step, &opts);
        }
    }
}

#[test]
fn infos_write_durations_as_promql_does() {
    assert_eq!(eval::display_ms(300_000), "5m");
    assert_eq!(eval::display_ms(3_600_000), "1h");
    assert_eq!(eval::display_ms(90_000), "1m30s");
    assert_eq!(eval::display_ms(1500), "1s500ms");
}
