//! The JSON text of an [`OutgoingSeries`], written by hand into a byte buffer: the same
//! text serde_json writes for it (property-tested against serde_json below), at a
//! fraction of the cost. serde_json checks every byte of every string through its
//! escape table and hands the writer a piece per quote, key and colon; an agent writes a
//! few hundred series every few seconds for ever, and that was a fifth of its
//! instructions. Names and label values are short and almost never need an escape, so
//! a string is scanned once and copied whole.

use crate::{OutgoingSeries, SeriesKind};

/// Appends `s` as a JSON string, escaped as serde_json escapes it: `"` and `\` with a
/// backslash, the control characters `\b \t \n \f \r` by name and the others as
/// `\u00xx`; everything else, UTF-8 included, as is.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[copied..i]);
        copied = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Appends a finite `f64` as serde_json writes it (shortest round-trip digits, by zmij, as serde_json does);
/// a value that is not finite as `null`, as serde_json does.
fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends one series as serde_json writes an [`OutgoingSeries`]:
/// `{"name":..,"labels":{..},"kind":..,"points":[[ts,value],..]}`.
pub(crate) fn write_series(out: &mut Vec<u8>, series: &OutgoingSeries) {
    out.extend_from_slice(b"{\"name\":");
    write_str(out, &series.name);
    out.extend_from_slice(b",\"labels\":{");
    for (i, (name, value)) in series.labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_str(out, value);
    }
    out.extend_from_slice(match series.kind {
        SeriesKind::Counter => b"},\"kind\":\"counter\",\"points\":[",
        SeriesKind::Gauge => b"},\"kind\":\"gauge\",\"points\":[",
    });
    let mut int = itoa::Buffer::new();
    for (i, (ts, value)) in series.points.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        out.extend_from_slice(int.format(*ts).as_bytes());
        out.push(b',');
        write_f64(out, *value);
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(series: &OutgoingSeries) -> String {
        let mut out = Vec::new();
        write_series(&mut out, series);
        String::from_utf8(out).expect("UTF-8")
    }

    proptest! {
        #[test]
        fn a_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn a_series_is_written_as_serde_json_writes_it(
            name in "[\\x00-\\x7f]{0,12}",
            labels in proptest::collection::vec(("\\PC{0,6}", "[\\x00-\\x20\"\\\\a-zé]{0,8}"), 0..4),
            counter in any::<bool>(),
            points in proptest::collection::vec((any::<i64>(), any::<f64>()), 1..4),
        ) {
            let series = OutgoingSeries {
                name: name.into(),
                labels: labels.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                kind: if counter { SeriesKind::Counter } else { SeriesKind::Gauge },
                points: crate::batch::tests::points_of(&points),
            };
            prop_assert_eq!(written(&series), serde_json::to_string(&series).unwrap());
        }
    }

    #[test]
    fn small_and_huge_values_and_escapes() {
        let series = OutgoingSeries {
            name: "m\"\\\u{1}\u{7f}".into(),
            labels: vec![("a\nb".into(), "\t\r\u{8}\u{c}é".into())],
            kind: SeriesKind::Gauge,
            points: crate::batch::tests::points_of(&[
                (i64::MIN, 0.0),
                (0, -0.0),
                (1, 5e-324),
                (2, f64::MAX),
                (3, 1e21),
                (4, 0.1),
                (5, 3.0),
                (6, f64::NAN),
            ]),
        };
        assert_eq!(written(&series), serde_json::to_string(&series).unwrap());
    }
}
