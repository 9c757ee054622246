//! `[[remote_write]]` in server.toml: one table per target, checked whole before use.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use sysward_proto::units;

use crate::selector::{Selector, parse_selector};

/// A secret from the config file: never shown by `Debug`, so never logged.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<secret>\"")
    }
}

/// `basic_auth = { username = "...", password_file = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// One `[[remote_write]]` target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The name in metrics and logs, and the key of the target's place in the log; the
    /// URL's host, port and path when not set.
    #[serde(default)]
    pub name: Option<String>,
    /// The receiver's remote write endpoint, `http://` or `https://`.
    pub url: String,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// CA certificates (PEM) to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// One request, connecting included.
    #[serde(default = "d_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Added to every series sent, unless the series has the label already.
    #[serde(default)]
    pub extra_labels: BTreeMap<String, String>,
    /// Series selectors: when any is given, only series matching one are sent.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Series selectors: series matching one are not sent.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Bytes of the log not yet sent to this target past which the oldest are dropped.
    #[serde(default = "d_max_queue_bytes", deserialize_with = "size")]
    pub max_queue_bytes: u64,
    /// Requests in flight at once; a series always goes through the same shard.
    #[serde(default = "d_shards")]
    pub shards: usize,
    /// Samples per request, about (a round reads this many times `shards`).
    #[serde(default = "d_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// The first wait after a failed request; each further failure doubles it.
    #[serde(default = "d_min_backoff", deserialize_with = "duration")]
    pub min_backoff: Duration,
    /// The longest wait between tries, unless the receiver's `Retry-After` asks for more.
    #[serde(default = "d_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
}

fn d_timeout() -> Duration {
    Duration::from_secs(30)
}
fn d_max_queue_bytes() -> u64 {
    1 << 30
}
fn d_shards() -> usize {
    2
}
fn d_max_samples_per_send() -> usize {
    2000
}
fn d_min_backoff() -> Duration {
    Duration::from_millis(100)
}
fn d_max_backoff() -> Duration {
    Duration::from_secs(5)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_size(&s).map_err(serde::de::Error::custom)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Credentials as sent.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <secret>)"),
        }
    }
}

/// A target's settings, checked, with its secrets read and selectors parsed.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: reqwest::Url,
    pub auth: Auth,
    /// PEM bytes of `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    pub extra_labels: Vec<(String, String)>,
    pub keep: Vec<Selector>,
    pub drop: Vec<Selector>,
    pub max_queue_bytes: u64,
    pub shards: usize,
    pub max_samples_per_send: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl RemoteWriteConfig {
    /// The name it goes by: `name`, or the URL's host, port and path.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match reqwest::Url::parse(&self.url) {
            Ok(u) => format!(
                "{}{}{}",
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                u.path()
            ),
            Err(_) => self.url.clone(),
        }
    }

    /// Checks everything and reads the secret and CA files; the error says what is wrong
    /// without the secret.
    pub fn resolve(&self) -> Result<Target, String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a valid URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url {:?}: the scheme must be http or https",
                self.url
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("url {:?} names no host", self.url));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url: put credentials in basic_auth, not in the URL".into());
        }
        let name = self.display_name();
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(format!(
                "name {name:?} is empty or has quotes, backslashes or control characters"
            ));
        }
        for (key, value) in [
            ("shards", self.shards),
            ("max_samples_per_send", self.max_samples_per_send),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if self.shards > 64 {
            return Err("shards must be at most 64".into());
        }
        if self.max_queue_bytes < 1 << 20 {
            return Err("max_queue_bytes must be at least 1MiB".into());
        }
        if self.timeout.is_zero() || self.min_backoff.is_zero() {
            return Err("timeout and min_backoff must be longer than 0".into());
        }
        if self.max_backoff < self.min_backoff {
            return Err("max_backoff must be at least min_backoff".into());
        }
        let mut extra_labels = Vec::new();
        for (k, v) in &self.extra_labels {
            if !valid_label_name(k) || k.starts_with("__") {
                return Err(format!(
                    "extra_labels: {k:?} is not a label name (letters, digits and _, not starting with a digit or __)"
                ));
            }
            extra_labels.push((k.clone(), v.clone()));
        }
        let parse = |key: &str, list: &[String]| -> Result<Vec<Selector>, String> {
            let mut out = Vec::new();
            for text in list {
                out.extend(parse_selector(text).map_err(|e| format!("{key}: {text:?}: {e}"))?);
            }
            Ok(out)
        };
        Ok(Target {
            name,
            auth: self.auth()?,
            ca_pem: self
                .ca_file
                .as_ref()
                .map(|p| std::fs::read(p).map_err(|e| format!("ca_file {}: {e}", p.display())))
                .transpose()?,
            url,
            timeout: self.timeout,
            extra_labels,
            keep: parse("keep", &self.keep)?,
            drop: parse("drop", &self.drop)?,
            max_queue_bytes: self.max_queue_bytes,
            shards: self.shards,
            max_samples_per_send: self.max_samples_per_send,
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
        })
    }

    fn auth(&self) -> Result<Auth, String> {
        let bearer = secret(
            "bearer_token",
            self.bearer_token.as_ref(),
            self.bearer_token_file.as_ref(),
        )?;
        let basic = match &self.basic_auth {
            None => None,
            Some(b) => {
                let password = secret(
                    "basic_auth.password",
                    b.password.as_ref(),
                    b.password_file.as_ref(),
                )?
                .unwrap_or_default();
                Some(Auth::Basic {
                    username: b.username.clone(),
                    password,
                })
            }
        };
        match (bearer, basic) {
            (Some(_), Some(_)) => Err("set bearer_token or basic_auth, not both".into()),
            (Some(token), None) => Ok(Auth::Bearer(token)),
            (None, Some(basic)) => Ok(basic),
            (None, None) => Ok(Auth::None),
        }
    }
}

/// A secret given inline or as a file (trailing newline removed); not both.
fn secret(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("set {key} or {key}_file, not both")),
        (Some(s), None) => Ok(Some(s.0.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{key}_file {}: {e}", path.display()))?;
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            if value.is_empty() {
                return Err(format!("{key}_file {} is empty", path.display()));
            }
            Ok(Some(value))
        }
        (None, None) => Ok(None),
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks every target and that their names differ; the error names the target by its
/// position (1-based) and name.
pub fn resolve_all(configs: &[RemoteWriteConfig]) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let target = c
            .resolve()
            .map_err(|e| format!("[[remote_write]] #{} ({}): {e}", i + 1, c.display_name()))?;
        if out.iter().any(|t| t.name == target.name) {
            return Err(format!(
                "[[remote_write]] #{}: the name {:?} is used twice (set name to tell them apart)",
                i + 1,
                target.name
            ));
        }
        out.push(target);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        remote_write: Vec<RemoteWriteConfig>,
    }

    fn parse(text: &str) -> Result<Vec<Target>, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve_all(&file.remote_write)
    }

    #[test]
    fn defaults_and_a_full_target() {
        let t = parse("[[remote_write]]\nurl = \"http://vm:8428/api/v1/write\"\n").unwrap();
        assert_eq!(t[0].name, "vm:8428/api/v1/write");
        assert_eq!(t[0].shards, 2);
        assert_eq!(t[0].auth, Auth::None);
        assert_eq!(t[0].max_queue_bytes, 1 << 30);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let text = format!(
            "[[remote_write]]\nname = \"mimir\"\nurl = \"https://m.example/api/v1/push\"\n\
             bearer_token_file = {:?}\ntimeout = \"5s\"\nmax_queue_bytes = \"64MiB\"\n\
             extra_labels = {{ cluster = \"eu\" }}\nkeep = ['{{__name__=~\"node_.*\"}}']\n\
             drop = ['node_cpu_seconds_total{{mode=\"idle\"}}']\nshards = 4\n",
            token.display().to_string()
        );
        let t = parse(&text).unwrap();
        assert_eq!(t[0].name, "mimir");
        assert_eq!(t[0].auth, Auth::Bearer("s3cret".into()));
        assert_eq!(t[0].timeout, Duration::from_secs(5));
        assert_eq!(t[0].max_queue_bytes, 64 << 20);
        assert_eq!(t[0].extra_labels, [("cluster".into(), "eu".into())]);
        assert_eq!((t[0].keep.len(), t[0].drop.len(), t[0].shards), (1, 1, 4));
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "secrets are not shown"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_url_name_or_selector_is_checked_without_panic(
            url in "\\PC{0,40}",
            name in "\\PC{0,10}",
            selector in "[a-z_{}=~!\"., |()*]{0,30}",
        ) {
            let config = RemoteWriteConfig {
                name: (!name.is_empty()).then_some(name),
                keep: vec![selector],
                ..toml::from_str("url = \"http://x/\"").unwrap()
            };
            let config = RemoteWriteConfig { url, ..config };
            let _ = config.resolve();
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        for (text, wanted) in [
            ("[[remote_write]]\nurl = \"not a url\"\n", "not a valid URL"),
            ("[[remote_write]]\nurl = \"ftp://x/y\"\n", "http or https"),
            ("[[remote_write]]\nurl = \"http://u:p@x/y\"\n", "basic_auth"),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nbogus = 1\n",
                "unknown field `bogus`",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nshards = 0\n",
                "shards",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nkeep = ['rate(x[5m])']\n",
                "keep",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nextra_labels = { \"1a\" = \"b\" }\n",
                "extra_labels",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nbearer_token = \"a\"\nbearer_token_file = \"/f\"\n",
                "not both",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nbearer_token_file = \"/nonexistent/t\"\n",
                "/nonexistent/t",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/a\"\n[[remote_write]]\nurl = \"http://x/a\"\n",
                "used twice",
            ),
            (
                "[[remote_write]]\nurl = \"http://x/\"\nbearer_token = \"t\"\nbasic_auth = { username = \"u\", password = \"p\" }\n",
                "not both",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }
}
