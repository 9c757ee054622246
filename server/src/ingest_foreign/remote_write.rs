//! Prometheus remote write 1.0 into [`ForeignSeries`]: the body decoded with
//! `sysward_promwire`, native histograms refused, the kind of each series taken from the
//! request's metadata or, without it, from the name.
//!
//! Prometheus sends metadata in requests of their own (`send_metadata`), so most sample
//! requests carry none: a series named `*_total`, `*_count`, `*_sum` or `*_bucket` is then
//! a counter, any other a gauge. The kind only changes how rollups summarise a series
//! (a counter's increase survives resets); queries read raw samples as sent.

use std::collections::HashMap;

use sysward_promwire::{DecodeError, DecodeLimits, MetricType, WriteRequest};
use sysward_proto::{Limits, SeriesKind};

use super::{ForeignSeries, NAME_LABEL, Reason, Refusal};

/// Decodes a snappy-compressed `WriteRequest` within `limits`.
pub fn decode(body: &[u8], limits: &Limits) -> Result<WriteRequest, Refusal> {
    let decode_limits = DecodeLimits {
        max_compressed_bytes: limits.max_compressed_bytes,
        max_decompressed_bytes: limits.max_decompressed_bytes,
    };
    sysward_promwire::decode(body, &decode_limits).map_err(|e| {
        let reason = match e {
            DecodeError::CompressedTooLarge { .. } | DecodeError::DecompressedTooLarge { .. } => {
                Reason::TooLarge
            }
            DecodeError::NotSnappy(_) => Reason::NotSnappy,
            DecodeError::NotProtobuf(_) => Reason::NotProtobuf,
        };
        Refusal::new(reason, e.to_string())
    })
}

/// The request's series; a native histogram anywhere refuses the request.
pub fn to_series(request: WriteRequest) -> Result<Vec<ForeignSeries>, Refusal> {
    let samples = request.timeseries.iter().map(|t| t.samples.len()).sum();
    if let Some((i, t)) = request
        .timeseries
        .iter()
        .enumerate()
        .find(|(_, t)| !t.histograms.is_empty())
    {
        let name = t
            .labels
            .iter()
            .find(|l| l.name == NAME_LABEL)
            .map_or("", |l| l.value.as_str());
        let mut refusal = Refusal::new(
            Reason::NativeHistogram,
            format!(
                "timeseries[{i}] ({}): native histograms are not supported; send classic histograms (_bucket, _sum, _count) instead",
                name.chars().take(200).collect::<String>()
            ),
        );
        refusal.samples = samples;
        return Err(refusal);
    }
    let types: HashMap<&str, MetricType> = request
        .metadata
        .iter()
        .filter_map(|m| {
            MetricType::try_from(m.r#type)
                .ok()
                .map(|t| (m.metric_family_name.as_str(), t))
        })
        .collect();
    let series = request
        .timeseries
        .iter()
        .map(|t| {
            let name = t
                .labels
                .iter()
                .find(|l| l.name == NAME_LABEL)
                .map_or("", |l| l.value.as_str());
            ForeignSeries {
                kind: kind_of(name, &types),
                labels: t
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                points: t.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            }
        })
        .collect();
    Ok(series)
}

/// Counter or gauge, from the family's type when the request names it, else from the
/// name's suffix.
pub fn kind_of(name: &str, types: &HashMap<&str, MetricType>) -> SeriesKind {
    if let Some(t) = types.get(name) {
        return if *t == MetricType::Counter {
            SeriesKind::Counter
        } else {
            // A summary's quantiles and everything else that is not a counter.
            SeriesKind::Gauge
        };
    }
    for suffix in ["_total", "_bucket", "_sum", "_count"] {
        let Some(family) = name.strip_suffix(suffix) else {
            continue;
        };
        return match types.get(family) {
            Some(MetricType::Gaugehistogram | MetricType::Gauge) => SeriesKind::Gauge,
            _ => SeriesKind::Counter,
        };
    }
    SeriesKind::Gauge
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sysward_promwire::{Label, MetricMetadata, Sample, TimeSeries};

    #[test]
    fn kinds_come_from_metadata_then_suffixes() {
        let none = HashMap::new();
        assert_eq!(kind_of("http_requests_total", &none), SeriesKind::Counter);
        assert_eq!(kind_of("rpc_seconds_bucket", &none), SeriesKind::Counter);
        assert_eq!(kind_of("node_load1", &none), SeriesKind::Gauge);
        let types = HashMap::from([
            ("errors", MetricType::Counter),
            ("queue_depth_count", MetricType::Gauge),
            ("latency", MetricType::Summary),
        ]);
        assert_eq!(kind_of("errors", &types), SeriesKind::Counter);
        assert_eq!(kind_of("queue_depth_count", &types), SeriesKind::Gauge);
        assert_eq!(kind_of("latency", &types), SeriesKind::Gauge);
        assert_eq!(kind_of("latency_sum", &types), SeriesKind::Counter);
    }

    #[test]
    fn native_histograms_refuse_the_request() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: NAME_LABEL.into(),
                    value: "h".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                histograms: vec![vec![8, 1]],
                ..Default::default()
            }],
            metadata: vec![MetricMetadata::default()],
        };
        let refusal = to_series(request).unwrap_err();
        assert_eq!(refusal.reason, Reason::NativeHistogram);
        assert!(
            refusal.message.contains("native histograms"),
            "{}",
            refusal.message
        );
    }

    proptest! {
        #[test]
        fn any_body_decodes_and_validates_without_panic(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let limits = Limits::default();
            if let Ok(series) = decode(&body, &limits).and_then(to_series) {
                let _ = super::super::validate(series, &limits);
            }
        }

        #[test]
        fn any_request_maps_and_validates_without_panic(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z_:]{0,6}|__name__|instance|agent_id", "[a-z0-9]{0,4}"), 0..5),
                    proptest::collection::vec((any::<i64>(), any::<f64>()), 0..5),
                ),
                0..8,
            )
        ) {
            let request = WriteRequest {
                timeseries: series
                    .into_iter()
                    .map(|(labels, samples)| TimeSeries {
                        labels: labels.into_iter().map(|(name, value)| Label { name, value }).collect(),
                        samples: samples.into_iter().map(|(timestamp, value)| Sample { value, timestamp }).collect(),
                        ..Default::default()
                    })
                    .collect(),
                metadata: vec![],
            };
            let body = sysward_promwire::encode(&request);
            let decoded = decode(&body, &Limits::default());
            prop_assert!(decoded.is_ok());
            if let Ok(series) = to_series(decoded.unwrap_or_default()) {
                let _ = super::super::validate(series, &Limits::default());
            }
        }
    }
}
