//! `[grafana]` of `server.toml`: where Grafana is, the key to reach it, and what Grafana
//! needs to reach this server back.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use sysward_proto::units;

/// `[grafana]`: set, the server provisions its datasource, folder and dashboards in the
/// Grafana at `url`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Grafana's base URL, `http://` or `https://` (a sub-path, `https://x/grafana`, works).
    pub url: String,
    /// A file holding a Grafana service account token (role Editor, or Admin to create
    /// the datasource); read at every sync, so a rotated key applies without a restart.
    pub api_key_file: PathBuf,
    /// A PEM file of the CA that signed Grafana's certificate; the system's roots without
    /// it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The URL Grafana reaches this server at; `[listen] public_url` (or the address) when
    /// not set.
    #[serde(default)]
    pub datasource_url: Option<String>,
    /// A file holding a Sysward API token of role read, which Grafana sends as
    /// `Authorization: Bearer TOKEN` (`sysward-server api-token create --role read`).
    pub datasource_token_file: PathBuf,
    /// The datasource's name in Grafana.
    #[serde(default = "d_datasource_name")]
    pub datasource_name: String,
    /// The folder the dashboards go into, by title; made when missing.
    #[serde(default = "d_folder")]
    pub folder: String,
    /// The longest wait between attempts while Grafana is down or refuses.
    #[serde(default = "d_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
    /// How often a synced Grafana is checked again (reachable, key valid, datasource
    /// still there); a Grafana that lost the datasource is provisioned again.
    #[serde(default = "d_check_interval", deserialize_with = "duration")]
    pub check_interval: Duration,
}

fn d_datasource_name() -> String {
    "Sysward".to_string()
}
fn d_folder() -> String {
    "Sysward".to_string()
}
fn d_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn d_check_interval() -> Duration {
    Duration::from_secs(300)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_duration(&s).map_err(serde::de::Error::custom)
}

impl GrafanaConfig {
    /// Checks what the file alone can tell; one sentence naming the key.
    pub fn validate(&self) -> Result<(), String> {
        check_http_url("url", &self.url)?;
        if let Some(url) = &self.datasource_url {
            check_http_url("datasource_url", url)?;
        }
        for (key, value) in [
            ("datasource_name", &self.datasource_name),
            ("folder", &self.folder),
        ] {
            if value.trim().is_empty() {
                return Err(format!("[grafana] {key} must not be empty"));
            }
        }
        for (key, value) in [
            ("retry_max", self.retry_max),
            ("check_interval", self.check_interval),
        ] {
            if value.is_zero() {
                return Err(format!("[grafana] {key} must be longer than 0"));
            }
        }
        Ok(())
    }
}

fn check_http_url(key: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(format!(
            "[grafana] {key} must be an http:// or https:// URL with a host, not {url:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GrafanaConfig, String> {
        let c: GrafanaConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_and_refusals() {
        let base = "url = \"http://grafana:3000\"\napi_key_file = \"/k\"\ndatasource_token_file = \"/t\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.folder, "Sysward");
        assert_eq!(c.datasource_name, "Sysward");
        assert_eq!(c.retry_max, Duration::from_secs(300));
        assert_eq!(c.ca_file, None);
        let err = parse(&base.replace("http://grafana:3000", "grafana:3000")).unwrap_err();
        assert!(err.contains("[grafana] url"), "{err}");
        let err = parse(&format!("{base}datasource_url = \"https://\"\n")).unwrap_err();
        assert!(err.contains("datasource_url"), "{err}");
        let err = parse(&format!("{base}folder = \" \"\n")).unwrap_err();
        assert!(err.contains("folder"), "{err}");
        let err = parse(&format!("{base}retry_max = \"0s\"\n")).unwrap_err();
        assert!(err.contains("retry_max"), "{err}");
        let err = parse(&format!("{base}apikey = \"x\"\n")).unwrap_err();
        assert!(err.contains("apikey"), "{err}");
        let err = parse("url = \"http://g\"\n").unwrap_err();
        assert!(err.contains("api_key_file"), "{err}");
    }
}
