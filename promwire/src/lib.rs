//! Prometheus remote write 1.0: the messages of `prometheus/prompb/types.proto` and
//! `remote.proto` that a `WriteRequest` carries, and the snappy block framing around them.
//!
//! The server decodes them from Prometheus, Alloy or vmagent (`POST /api/v1/write`) and
//! encodes them to forward its samples to a bigger store. Decoding is bounded before any
//! allocation that the sender controls: the compressed size, then the decompressed size
//! that snappy's header announces.

use prost::Message;

/// `Content-Type` of a remote write request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a remote write request.
pub const CONTENT_ENCODING: &str = "snappy";
/// Header naming the protocol version.
pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
/// The version this crate speaks.
pub const VERSION: &str = "0.1.0";

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`. Labels are sorted by name and include `__name__`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms, kept undecoded: Sysward does not store them, and a receiver
    /// must be able to say that it refused them rather than skip them unseen.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a Unix time in milliseconds.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// A [`MetricType`] as its number.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    Gaugehistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

/// Bounds on what a decoder accepts.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// The body as it arrives.
    pub max_compressed_bytes: usize,
    /// The protobuf message after snappy.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_compressed_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

/// Why a body is not a remote write request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the body is {size} bytes, more than the limit of {limit}")]
    CompressedTooLarge { size: usize, limit: usize },
    #[error("the body decompresses to {size} bytes, more than the limit of {limit}")]
    DecompressedTooLarge { size: usize, limit: usize },
    #[error("the body is not snappy block-compressed: {0}")]
    NotSnappy(String),
    #[error("the body is not a protobuf WriteRequest: {0}")]
    NotProtobuf(String),
}

impl DecodeError {
    /// Whether the request was refused for its size (413) rather than its content (400).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::CompressedTooLarge { .. } | Self::DecompressedTooLarge { .. }
        )
    }
}

/// Decodes a snappy-compressed `WriteRequest`.
pub fn decode(body: &[u8], limits: &DecodeLimits) -> Result<WriteRequest, DecodeError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(DecodeError::CompressedTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let size =
        snap::raw::decompress_len(body).map_err(|e| DecodeError::NotSnappy(e.to_string()))?;
    if size > limits.max_decompressed_bytes {
        return Err(DecodeError::DecompressedTooLarge {
            size,
            limit: limits.max_decompressed_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::NotSnappy(e.to_string()))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| DecodeError::NotProtobuf(e.to_string()))
}

/// Encodes a `WriteRequest` as a request body.
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    // Snappy cannot fail on input of a size we can hold in memory; the one error it has
    // is for inputs over 2^32 - 1 bytes, which a remote write batch never comes near.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn series(name: &str, points: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: "node".into(),
                },
            ],
            samples: points
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_survives_encode_and_decode() {
        let request = WriteRequest {
            timeseries: vec![series("up", &[(1000, 1.0), (2000, 0.0)])],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "up".into(),
                help: "Up.".into(),
                unit: String::new(),
            }],
        };
        let body = encode(&request);
        assert_eq!(decode(&body, &DecodeLimits::default()), Ok(request));
    }

    #[test]
    fn sizes_are_checked_before_decompressing() {
        let body = encode(&WriteRequest {
            timeseries: vec![series("a_long_metric_name_repeated", &[(1, 1.0); 500])],
            metadata: vec![],
        });
        let small = DecodeLimits {
            max_compressed_bytes: 10,
            max_decompressed_bytes: 1 << 20,
        };
        assert!(matches!(
            decode(&body, &small),
            Err(DecodeError::CompressedTooLarge { .. })
        ));
        let small = DecodeLimits {
            max_compressed_bytes: 1 << 20,
            max_decompressed_bytes: 100,
        };
        let error = decode(&body, &small).unwrap_err();
        assert!(error.is_too_large(), "{error}");
    }

    #[test]
    fn plain_protobuf_and_garbage_are_refused() {
        let raw = WriteRequest {
            timeseries: vec![series("up", &[(1, 1.0)])],
            metadata: vec![],
        }
        .encode_to_vec();
        assert!(decode(&raw, &DecodeLimits::default()).is_err());
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(b"\xff\xff\xff\xff not a message")
            .unwrap_or_default();
        assert!(matches!(
            decode(&not_proto, &DecodeLimits::default()),
            Err(DecodeError::NotProtobuf(_))
        ));
    }

    #[test]
    fn native_histograms_are_kept_visible() {
        let mut one = series("h", &[]);
        one.histograms.push(vec![0x08, 0x01]);
        let body = encode(&WriteRequest {
            timeseries: vec![one],
            metadata: vec![],
        });
        let decoded = decode(&body, &DecodeLimits::default()).unwrap_or_default();
        assert_eq!(decoded.timeseries[0].histograms.len(), 1);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body, &DecodeLimits::default());
        }

        #[test]
        fn any_snappy_payload_decodes_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default();
            let _ = decode(&body, &DecodeLimits::default());
        }
    }
}
