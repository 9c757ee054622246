//! Human durations and sizes (`"30s"`, `"5m"`, `"512MiB"`), as agent and server configs and
//! the CLIs write them. Shared here so that both binaries read them the same way.

use std::time::Duration;

/// Reads `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"7d"`, `"2w"`, `"1y"` (365 days, as
/// Prometheus counts it), or a sum such as `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. \"30s\", \"5m\", \"1h\")".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration (expected e.g. \"30s\", \"5m\")"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            "" => return Err(format!("{text:?} has no unit (use ms, s, m, h, d, w or y)")),
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (use ms, s, m, h, d, w or y)"
                ));
            }
        };
        let millis = n
            .checked_mul(millis_per)
            .ok_or_else(|| format!("{text:?} is too long"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("{text:?} is too long"))?;
    }
    Ok(total)
}

/// Reads `"512MiB"`, `"4MB"`, `"64KiB"`, `"1GiB"` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return Err(format!("{text:?} is not a size (expected e.g. \"512MiB\")"));
    }
    let n: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("{text:?}: number too large"))?;
    let mult: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4MB"), Ok(4_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 bogus").is_err());
    }

    proptest! {
        #[test]
        fn never_panic(s in ".{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }
    }
}
