//! Who may call what. A caller shows a secret, as `Authorization: Bearer SECRET` or as the
//! password of HTTP basic auth (any user name), which is what Grafana's Prometheus
//! datasource offers. The secret is an admin token (role admin) or an API token with its
//! role; [`Role::allows`] says which role an endpoint group needs.

use base64::Engine;

use super::*;
use crate::state::Role;

/// Why a request was not let through.
#[derive(Debug)]
pub(super) enum Denied {
    /// No credentials at all.
    Missing,
    /// A secret that is unknown, revoked or expired.
    Invalid,
    /// A valid token whose role does not allow this.
    Forbidden { role: Role, needed: Role },
    /// The state database failed.
    Internal(String),
}

impl Denied {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Denied::Missing | Denied::Invalid => StatusCode::UNAUTHORIZED,
            Denied::Forbidden { .. } => StatusCode::FORBIDDEN,
            Denied::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `unauthorized`, `forbidden` or `internal`: the error type and the metrics' outcome.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Denied::Missing | Denied::Invalid => "unauthorized",
            Denied::Forbidden { .. } => "forbidden",
            Denied::Internal(_) => "internal",
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Denied::Missing => "a token is required: Authorization: Bearer TOKEN, or basic auth with the token as password".into(),
            Denied::Invalid => "the token is not valid (unknown, revoked or expired)".into(),
            Denied::Forbidden { role, needed } => format!(
                "a token of role {} may not do this; it needs role {}",
                role.as_str(),
                needed.as_str()
            ),
            Denied::Internal(e) => format!("server error: {e}"),
        }
    }
}

/// The secret of a request: a bearer token, or the password of basic auth.
fn secret_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string()).filter(|s| !s.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_string()).filter(|s| !s.is_empty());
    }
    None
}

/// Lets a request through when its secret's role allows `needed`; returns the role.
pub(super) async fn authorize(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Role,
) -> Result<Role, Denied> {
    authorize_named(app, headers, needed)
        .await
        .map(|(_, role)| role)
}

/// As [`authorize`], with the token's name.
pub(super) async fn authorize_named(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Role,
) -> Result<(String, Role), Denied> {
    let secret = secret_of(headers).ok_or(Denied::Missing)?;
    let state = app.state.clone();
    let (name, role) = tokio::task::spawn_blocking(move || state.authenticate_named(&secret))
        .await
        .map_err(|e| Denied::Internal(e.to_string()))?
        .map_err(|e| Denied::Internal(e.to_string()))?
        .ok_or(Denied::Invalid)?;
    if role.allows(needed) {
        Ok((name, role))
    } else {
        Err(Denied::Forbidden { role, needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn secrets_come_from_bearer_or_basic_auth() {
        assert_eq!(secret_of(&headers("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(secret_of(&headers("bearer  abc ")).as_deref(), Some("abc"));
        // "grafana:s3cr:et": the password is everything after the first colon.
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:s3cr:et");
        assert_eq!(
            secret_of(&headers(&format!("Basic {basic}"))).as_deref(),
            Some("s3cr:et")
        );
        let empty = base64::engine::general_purpose::STANDARD.encode("user:");
        assert_eq!(secret_of(&headers(&format!("Basic {empty}"))), None);
        assert_eq!(secret_of(&headers("Basic !!!")), None);
        assert_eq!(secret_of(&headers("Digest x")), None);
        assert_eq!(secret_of(&headers("Bearer")), None);
        assert_eq!(secret_of(&HeaderMap::new()), None);
    }
}
