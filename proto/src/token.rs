use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "swjoin1.";

/// Everything an agent needs to join a server, in one string an operator can paste:
/// where the server is, how to recognise it, and a single-use secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinToken {
    /// The server's base URL, e.g. `https://mon.example.com:8443`.
    pub url: String,
    /// Lower-case hex SHA-256 of the server CA certificate (DER).
    pub ca_sha256: String,
    /// The single-use secret; the server keeps only its hash.
    pub secret: String,
    /// Unix seconds after which the server refuses it.
    pub expires_at: i64,
}

/// Why a token string could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// It does not start with the token prefix.
    #[error("not a Sysward join token (expected it to start with {PREFIX:?})")]
    Prefix,
    /// The body is not base64url.
    #[error("join token is damaged: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The body is not the token's JSON.
    #[error("join token is damaged: {0}")]
    Json(#[from] serde_json::Error),
    /// The pin is not 64 hex digits.
    #[error("join token's CA pin is not a SHA-256 hex digest")]
    Pin,
}

impl JoinToken {
    /// The string form an operator copies.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings and an integer cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads the string form back.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let body = s.trim().strip_prefix(PREFIX).ok_or(TokenError::Prefix)?;
        let token: JoinToken = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body)?)?;
        if token.ca_sha256.len() != 64 || !token.ca_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Pin);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = JoinToken {
            url: "https://127.0.0.1:8443".into(),
            ca_sha256: "ab".repeat(32),
            secret: "s3cret".into(),
            expires_at: 1,
        };
        assert_eq!(JoinToken::parse(&t.encode()).unwrap(), t);
        assert!(matches!(JoinToken::parse("hello"), Err(TokenError::Prefix)));
        assert!(matches!(
            JoinToken::parse("swjoin1.@@"),
            Err(TokenError::Base64(_))
        ));
    }
}
