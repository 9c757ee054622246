//! What the standard `OTEL_*` environment variables ask of the server, read once at start.
//! The SDK and the OTLP exporter read the rest themselves (endpoints, headers, timeout,
//! export interval, sampler, batch sizes); what they would silently ignore or misread is
//! refused here with the variable's name.

use std::time::Duration;

/// The protocol of OTLP over HTTP with protobuf bodies, the only one built in.
const HTTP_PROTOBUF: &str = "http/protobuf";

const PROTOCOL_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
];

const COMPRESSION_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("{var}={value:?} is neither true nor false")]
    NotBoolean { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is not supported: sysward-server exports OTLP over http/protobuf only \
         (unset it or set it to http/protobuf, and point the endpoint at the collector's HTTP \
         receiver, port 4318 by default)"
    )]
    Protocol { var: &'static str, value: String },
    #[error("{var}={value:?} is not supported: exports are not compressed (unset it or set none)")]
    Compression { var: &'static str, value: String },
    #[error("{var}={value:?}: the exporters built in are otlp and none")]
    Exporter { var: &'static str, value: String },
    #[error("{var}={value:?} is not a whole number{what}")]
    Number {
        var: &'static str,
        value: String,
        what: &'static str,
    },
}

/// The server's telemetry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Metrics over OTLP (`OTEL_ENABLED=true` and `OTEL_METRICS_EXPORTER` not `none`).
    pub metrics: bool,
    /// Traces over OTLP (`OTEL_ENABLED=true` and `OTEL_TRACES_EXPORTER` not `none`).
    pub traces: bool,
    /// How often metrics go out (`OTEL_METRIC_EXPORT_INTERVAL`, milliseconds; 60 s).
    pub export_interval: Duration,
    /// A bound on one export (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; 10 s).
    pub export_timeout: Duration,
    /// `OTEL_PROMETHEUS_HOST` (127.0.0.1) and `OTEL_PROMETHEUS_PORT`: `/metrics` without
    /// auth, plain HTTP.
    pub prometheus: Option<(String, u16)>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Settings::from_env`], from any lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let enabled = boolean("OTEL_ENABLED", get("OTEL_ENABLED"))?
            && !boolean("OTEL_SDK_DISABLED", get("OTEL_SDK_DISABLED"))?;
        if enabled {
            for var in PROTOCOL_VARS {
                if let Some(value) = get(var).filter(|v| v.trim() != HTTP_PROTOBUF) {
                    return Err(SettingsError::Protocol { var, value });
                }
            }
            for var in COMPRESSION_VARS {
                if let Some(value) = get(var).filter(|v| v.trim() != "none") {
                    return Err(SettingsError::Compression { var, value });
                }
            }
        }
        let prometheus = match get("OTEL_PROMETHEUS_PORT") {
            None => None,
            Some(value) => {
                let port = value
                    .trim()
                    .parse::<u16>()
                    .map_err(|_| SettingsError::Number {
                        var: "OTEL_PROMETHEUS_PORT",
                        value,
                        what: " from 0 to 65535",
                    })?;
                let host = get("OTEL_PROMETHEUS_HOST").unwrap_or_else(|| "127.0.0.1".into());
                Some((host.trim().to_string(), port))
            }
        };
        Ok(Self {
            metrics: enabled && exporter("OTEL_METRICS_EXPORTER", get("OTEL_METRICS_EXPORTER"))?,
            traces: enabled && exporter("OTEL_TRACES_EXPORTER", get("OTEL_TRACES_EXPORTER"))?,
            export_interval: millis(enabled, "OTEL_METRIC_EXPORT_INTERVAL", &get, 60_000)?,
            export_timeout: millis(enabled, "OTEL_EXPORTER_OTLP_TIMEOUT", &get, 10_000)?,
            prometheus,
        })
    }

    /// Whether anything goes out over OTLP.
    pub fn exports(&self) -> bool {
        self.metrics || self.traces
    }
}

fn boolean(var: &'static str, value: Option<String>) -> Result<bool, SettingsError> {
    match value {
        None => Ok(false),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(value) => Err(SettingsError::NotBoolean { var, value }),
    }
}

/// `otlp` (the default) or `none`.
fn exporter(var: &'static str, value: Option<String>) -> Result<bool, SettingsError> {
    match value.as_deref().map(str::trim) {
        None | Some("otlp") => Ok(true),
        Some("none") => Ok(false),
        Some(_) => Err(SettingsError::Exporter {
            var,
            value: value.unwrap_or_default(),
        }),
    }
}

/// A duration in milliseconds; read only when enabled, like the SDK does.
fn millis(
    enabled: bool,
    var: &'static str,
    get: &impl Fn(&str) -> Option<String>,
    default: u64,
) -> Result<Duration, SettingsError> {
    let Some(value) = get(var).filter(|_| enabled) else {
        return Ok(Duration::from_millis(default));
    };
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(SettingsError::Number {
            var,
            value,
            what: " of milliseconds above 0",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn off_unless_enabled() {
        let s = settings(&[]).unwrap();
        assert!(!s.exports());
        assert_eq!(s.prometheus, None);
        assert_eq!(s.export_interval, Duration::from_secs(60));
        let s = settings(&[
            ("OTEL_ENABLED", "false"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert!(
            !s.unwrap().exports(),
            "the protocol only matters when enabled"
        );
        let s = settings(&[("OTEL_ENABLED", "TRUE"), ("OTEL_SDK_DISABLED", "true")]);
        assert!(!s.unwrap().exports());
    }

    #[test]
    fn enabled_with_standard_variables() {
        let s = settings(&[
            ("OTEL_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_PROMETHEUS_PORT", "9464"),
        ])
        .unwrap();
        assert!(s.metrics && !s.traces);
        assert_eq!(s.export_interval, Duration::from_millis(500));
        assert_eq!(s.prometheus, Some(("127.0.0.1".into(), 9464)));
    }

    #[test]
    fn refusals_name_the_variable() {
        for (vars, var) in [
            (
                vec![
                    ("OTEL_ENABLED", "true"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![
                    ("OTEL_ENABLED", "true"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ),
            (
                vec![
                    ("OTEL_ENABLED", "true"),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ],
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ),
            (vec![("OTEL_ENABLED", "yes")], "OTEL_ENABLED"),
            (
                vec![("OTEL_PROMETHEUS_PORT", "99999")],
                "OTEL_PROMETHEUS_PORT",
            ),
            (
                vec![
                    ("OTEL_ENABLED", "true"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
                ],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                vec![
                    ("OTEL_ENABLED", "true"),
                    ("OTEL_METRICS_EXPORTER", "prometheus"),
                ],
                "OTEL_METRICS_EXPORTER",
            ),
        ] {
            let e = settings(&vars).unwrap_err().to_string();
            assert!(e.starts_with(var), "{e}");
        }
    }
}
