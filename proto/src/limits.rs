//! What the server accepts in one batch, and the naming rules a batch must follow:
//! checked by the decoder before anything is stored.

use crate::Batch;

/// What the server accepts in one batch. Checked while decoding, before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest gzip body, in bytes.
    pub max_compressed_bytes: usize,
    /// Largest body after inflating; inflating stops here.
    pub max_decompressed_bytes: usize,
    /// Most series in one batch.
    pub max_series: usize,
    /// Most points in one batch, over all series.
    pub max_points: usize,
    /// Most labels on one series.
    pub max_labels: usize,
    /// Longest metric name, label name or label value, in bytes.
    pub max_label_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_compressed_bytes: 4 << 20,
            max_decompressed_bytes: 32 << 20,
            max_series: 50_000,
            max_points: 500_000,
            max_labels: 32,
            max_label_len: 1024,
        }
    }
}

/// Checks a parsed batch against `limits` and the naming rules; the error says which
/// series and what.
pub(crate) fn validate(batch: &Batch, limits: &Limits) -> Result<(), String> {
    let invalid = |msg: String| Err(msg);
    for (field, value) in [("agent_id", &batch.agent_id), ("boot_id", &batch.boot_id)] {
        if value.is_empty() || value.len() > 128 {
            return invalid(format!(
                "{field} must be 1 to 128 bytes, got {}",
                value.len()
            ));
        }
    }
    if batch.series.len() > limits.max_series {
        return invalid(format!(
            "batch has {} series, over the limit of {}",
            batch.series.len(),
            limits.max_series
        ));
    }
    let mut points = 0usize;
    for (i, series) in batch.series.iter().enumerate() {
        let at = || format!("series[{i}] ({})", truncate(&series.name));
        if !is_metric_name(&series.name) || series.name.len() > limits.max_label_len {
            return invalid(format!("{}: invalid metric name", at()));
        }
        if series.labels.len() > limits.max_labels {
            return invalid(format!(
                "{}: {} labels, over the limit of {}",
                at(),
                series.labels.len(),
                limits.max_labels
            ));
        }
        for (name, value) in &series.labels {
            if !is_label_name(name) || name.starts_with("__") || name.len() > limits.max_label_len {
                return invalid(format!("{}: invalid label name {:?}", at(), truncate(name)));
            }
            if value.len() > limits.max_label_len {
                return invalid(format!(
                    "{}: label {name} is {} bytes, over the limit of {}",
                    at(),
                    value.len(),
                    limits.max_label_len
                ));
            }
        }
        points = points.saturating_add(series.points.len());
        if points > limits.max_points {
            return invalid(format!("batch has over {} points", limits.max_points));
        }
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Prometheus' rule for metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' rule for label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{DecodeError, batch::test_batch as batch, decode_batch, encode_batch};

    use super::*;

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_series: 1,
            max_labels: 0,
            ..Limits::default()
        };
        let mut b = batch();
        let err = decode_batch(&encode_batch(&b).unwrap(), &limits).unwrap_err();
        assert!(err.to_string().contains("labels, over the limit"), "{err}");
        b.series.push(b.series[0].clone());
        let err = decode_batch(&encode_batch(&b).unwrap(), &limits).unwrap_err();
        assert!(err.to_string().contains("2 series"), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        for (name, label) in [("1bad", "ok"), ("ok", "__reserved"), ("ok", "bad-label")] {
            let mut b = batch();
            b.series[0].name = name.into();
            b.series[0].labels = BTreeMap::from([(label.into(), "v".into())]);
            let res = decode_batch(&encode_batch(&b).unwrap(), &Limits::default());
            assert!(
                matches!(res, Err(DecodeError::Invalid(_))),
                "{name} {label}: {res:?}"
            );
        }
    }
}
