use opentelemetry_proto::tonic::{
    common::v1::InstrumentationScope,
    metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
        summary_data_point::ValueAtQuantile,
    },
    resource::v1::Resource,
};
use proptest::prelude::*;

use super::*;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(ts_ms: u64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: ts_ms * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "pod-1"),
                    kv("host.name", "web1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn find<'a>(m: &'a Mapped, name: &str, extra: Option<(&str, &str)>) -> &'a ForeignSeries {
    m.series
        .iter()
        .find(|s| {
            s.labels.iter().any(|(k, v)| k == NAME_LABEL && v == name)
                && extra.is_none_or(|(k, v)| s.labels.iter().any(|l| l.0 == k && l.1 == v))
        })
        .unwrap_or_else(|| panic!("no {name} {extra:?} in {:#?}", m.series))
}

fn label<'a>(s: &'a ForeignSeries, name: &str) -> Option<&'a str> {
    s.labels.iter().find(|l| l.0 == name).map(|l| l.1.as_str())
}

#[test]
fn names_follow_the_specification() {
    assert_eq!(
        metric_name("http.server.duration", "s", false, false),
        "http_server_duration_seconds"
    );
    assert_eq!(
        metric_name("http.requests", "{request}", false, true),
        "http_requests_total"
    );
    assert_eq!(
        metric_name("system.cpu.time", "s", false, true),
        "system_cpu_time_seconds_total"
    );
    assert_eq!(
        metric_name("requests_total", "", false, true),
        "requests_total"
    );
    assert_eq!(
        metric_name("cpu.utilization", "1", true, false),
        "cpu_utilization_ratio"
    );
    assert_eq!(
        metric_name("speed", "m/s", true, false),
        "speed_meters_per_second"
    );
    assert_eq!(
        metric_name("memory_bytes", "By", true, false),
        "memory_bytes"
    );
    assert_eq!(metric_name("2xx..count", "", true, false), "_2xx_count");
    assert_eq!(label_name("http.method"), "http_method");
    assert_eq!(label_name("2x"), "key_2x");
    assert_eq!(label_name("__x"), "key___x");
}

#[test]
fn gauge_sum_histogram_and_summary_map_to_prometheus_series() {
    let req = request(vec![
        metric(
            "queue.depth",
            "",
            Data::Gauge(Gauge {
                data_points: vec![number(1000, 3.0, vec![kv("queue", "a")])],
            }),
        ),
        metric(
            "http.requests",
            "",
            Data::Sum(Sum {
                data_points: vec![number(1000, 7.0, vec![])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ),
        metric(
            "latency",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 1_000_000_000,
                    count: 6,
                    sum: Some(2.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
        metric(
            "rpc",
            "ms",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: 1_000_000_000,
                    count: 4,
                    sum: 10.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.5,
                        value: 2.0,
                    }],
                    ..Default::default()
                }],
            }),
        ),
    ]);
    let m = to_series(&req);
    assert_eq!(m.rejected_points(), 0);
    let gauge = find(&m, "queue_depth", None);
    assert_eq!(gauge.points, vec![(1000, 3.0)]);
    assert_eq!(label(gauge, "job"), Some("shop/checkout"));
    assert_eq!(label(gauge, "instance"), Some("pod-1"));
    assert_eq!(label(gauge, "queue"), Some("a"));
    assert_eq!(label(gauge, "otel_scope_name"), Some("lib"));
    let counter = find(&m, "http_requests_total", None);
    assert_eq!(counter.kind, SeriesKind::Counter);
    assert_eq!(
        find(&m, "latency_seconds_bucket", Some(("le", "0.1"))).points,
        vec![(1000, 1.0)]
    );
    assert_eq!(
        find(&m, "latency_seconds_bucket", Some(("le", "1"))).points,
        vec![(1000, 3.0)]
    );
    assert_eq!(
        find(&m, "latency_seconds_bucket", Some(("le", "+Inf"))).points,
        vec![(1000, 6.0)]
    );
    assert_eq!(
        find(&m, "latency_seconds_sum", None).points,
        vec![(1000, 2.5)]
    );
    assert_eq!(
        find(&m, "latency_seconds_count", None).points,
        vec![(1000, 6.0)]
    );
    assert_eq!(
        find(&m, "rpc_milliseconds", Some(("quantile", "0.5"))).points,
        vec![(1000, 2.0)]
    );
    assert_eq!(
        find(&m, "rpc_milliseconds_count", None).points,
        vec![(1000, 4.0)]
    );
    let info = find(&m, "target_info", None);
    assert_eq!(label(info, "host_name"), Some("web1"));
    assert_eq!(label(info, "job"), Some("shop/checkout"));
    assert_eq!(label(info, "service_name"), None);
    assert_eq!(info.points, vec![(1000, 1.0)]);
}

#[test]
fn delta_and_exponential_points_are_refused_and_counted() {
    let req = request(vec![
        metric(
            "d",
            "",
            Data::Sum(Sum {
                data_points: vec![number(1000, 1.0, vec![]), number(2000, 1.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            }),
        ),
        metric(
            "e",
            "",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![Default::default()],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
    ]);
    let m = to_series(&req);
    assert_eq!(
        m.rejected,
        vec![
            (Reason::DeltaTemporality, 2),
            (Reason::ExponentialHistogram, 1)
        ]
    );
    assert!(m.first_error.unwrap_or_default().contains("delta"));
    assert!(m.series.is_empty());
}

#[test]
fn no_recorded_value_is_a_staleness_marker() {
    let mut p = number(1000, 0.0, vec![]);
    p.flags = NO_RECORDED_VALUE;
    p.value = None;
    let m = to_series(&request(vec![metric(
        "g",
        "",
        Data::Gauge(Gauge {
            data_points: vec![p],
        }),
    )]));
    assert_eq!(find(&m, "g", None).points[0].1.to_bits(), STALE_NAN);
}

#[test]
fn gzip_and_plain_bodies_decode() {
    use std::io::Write;
    let req = request(vec![]);
    let raw = req.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let limits = Limits::default();
    assert_eq!(decode(&raw, false, &limits).unwrap(), req);
    assert_eq!(decode(&gz, true, &limits).unwrap(), req);
    assert_eq!(
        decode(&raw, true, &limits).unwrap_err().reason,
        Reason::NotProtobuf
    );
    let small = Limits {
        max_decompressed_bytes: 4,
        ..Limits::default()
    };
    assert_eq!(
        decode(&gz, true, &small).unwrap_err().reason,
        Reason::TooLarge
    );
}

proptest! {
    #[test]
    fn any_body_maps_without_panic(body in proptest::collection::vec(any::<u8>(), 0..1024), gzip in any::<bool>()) {
        if let Ok(req) = decode(&body, gzip, &Limits::default()) {
            let m = to_series(&req);
            let _ = super::super::validate(m.series, &Limits::default());
        }
    }

    #[test]
    fn any_message_maps_to_valid_names(
        names in proptest::collection::vec(".{0,12}", 1..4),
        units in proptest::collection::vec(".{0,6}", 1..4),
        keys in proptest::collection::vec(".{0,8}", 0..4),
        values in proptest::collection::vec(any::<f64>(), 1..4),
        bounds in proptest::collection::vec(any::<f64>(), 0..4),
        counts in proptest::collection::vec(any::<u64>(), 0..5),
        ts in any::<u64>(),
    ) {
        let attrs: Vec<KeyValue> = keys.iter().map(|k| kv(k, "v")).collect();
        let mut metrics = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let unit = &units[i % units.len()];
            let points: Vec<NumberDataPoint> = values.iter().map(|v| {
                let mut p = number(0, *v, attrs.clone());
                p.time_unix_nano = ts;
                p
            }).collect();
            metrics.push(metric(name, unit, Data::Gauge(Gauge { data_points: points.clone() })));
            metrics.push(metric(name, unit, Data::Sum(Sum { data_points: points, aggregation_temporality: 2, is_monotonic: i % 2 == 0 })));
            metrics.push(metric(name, unit, Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: attrs.clone(),
                    time_unix_nano: ts,
                    count: counts.iter().fold(0u64, |a, c| a.wrapping_add(*c)),
                    sum: values.first().copied(),
                    bucket_counts: counts.clone(),
                    explicit_bounds: bounds.clone(),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })));
        }
        let m = to_series(&request(metrics));
        for s in &m.series {
            let name = s.labels.iter().find(|l| l.0 == NAME_LABEL).map(|l| l.1.as_str()).unwrap_or("");
            prop_assert!(crate::ingest_foreign::is_metric_name(name), "{name:?}");
            for (k, _) in &s.labels {
                prop_assert!(k == NAME_LABEL || (crate::ingest_foreign::is_label_name(k) && !k.starts_with("__")), "{k:?}");
            }
        }
        let _ = super::super::validate(m.series, &Limits::default());
    }
}
