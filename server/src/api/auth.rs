//! Who may call what: the one place where requests are authorized.
//!
//! A caller shows a secret, as `Authorization: Bearer SECRET` or as the password of HTTP
//! basic auth (any user name), which is what Grafana's Prometheus datasource offers. The
//! secret is an admin token (role admin) or an API token with its role. A request without
//! an `Authorization` header may instead carry the console's session cookie
//! ([`crate::session`]), which stands for a user with a role of [`UserRole`].
//!
//! An endpoint asks for one [`Access`]; [`token_allows`] and [`user_allows`] are the whole
//! table of who gets it. A session is also held to CSRF protection: a request with any
//! method but GET and HEAD that is authorized by its cookie must carry the session's token
//! in `X-CSRF-Token`, else 403. The method is not among the headers the handlers pass in, so
//! [`remember_method`], a layer over every route, keeps it for the request's task; without
//! it (a handler called outside the router) every method counts as a change.

use axum::{extract::Request, http::Method, middleware::Next};
use base64::Engine;

use super::*;
use crate::{
    session,
    state::{Role, SessionRow, hash_secret},
    users::UserRole,
};

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading the fleet: the query API, rules, alerts, notifications, check results.
    Read,
    /// Sending samples: remote write and OTLP in.
    Write,
    /// Changing alerting's state: acknowledgements, silences.
    Change,
    /// Administration: agents, the server's metrics, reload, receiver tests.
    Admin,
}

impl Access {
    /// The least user role with this access, for messages.
    fn user_role(self) -> &'static str {
        match self {
            Access::Read => "viewer",
            Access::Change => "editor",
            Access::Write | Access::Admin => "admin",
        }
    }

    /// The token role with this access, for messages.
    fn token_role(self) -> Role {
        match self {
            Access::Read => Role::Read,
            Access::Write => Role::Write,
            Access::Change | Access::Admin => Role::Admin,
        }
    }
}

/// Whether a token of `role` has `access`: read tokens read, write tokens write, the admin
/// token and admin tokens read, change and administer.
pub(crate) fn token_allows(role: Role, access: Access) -> bool {
    role.allows(access.token_role())
}

/// Whether a user of `role` has `access`: viewers read, editors also change, admins also
/// administer; no session sends samples.
pub(crate) fn user_allows(role: UserRole, access: Access) -> bool {
    match access {
        Access::Read => true,
        Access::Change => role >= UserRole::Editor,
        Access::Admin => role == UserRole::Admin,
        Access::Write => false,
    }
}

/// Why a request was not let through.
#[derive(Debug)]
pub(super) enum Denied {
    /// No credentials at all.
    Missing,
    /// A secret that is unknown, revoked or expired.
    Invalid,
    /// A session cookie whose session is over (or never was).
    SessionOver,
    /// Valid credentials whose role does not allow this.
    Forbidden { who: String, needed: String },
    /// A change authorized by a session cookie without the session's CSRF token.
    Csrf,
    /// The state database failed.
    Internal(String),
}

impl Denied {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Denied::Missing | Denied::Invalid | Denied::SessionOver => StatusCode::UNAUTHORIZED,
            Denied::Forbidden { .. } | Denied::Csrf => StatusCode::FORBIDDEN,
            Denied::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `unauthorized`, `forbidden` or `internal`: the error type and the metrics' outcome.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Denied::Missing | Denied::Invalid | Denied::SessionOver => "unauthorized",
            Denied::Forbidden { .. } | Denied::Csrf => "forbidden",
            Denied::Internal(_) => "internal",
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Denied::Missing => "a token is required: Authorization: Bearer TOKEN, or basic auth with the token as password".into(),
            Denied::Invalid => "the token is not valid (unknown, revoked or expired)".into(),
            Denied::SessionOver => "the session is over (signed out, idle or expired); sign in again".into(),
            Denied::Forbidden { who, needed } => {
                format!("{who} may not do this; it needs role {needed}")
            }
            Denied::Csrf => format!(
                "a change made with a session cookie needs the session's CSRF token in the {} header",
                session::CSRF_HEADER
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

/// The session id in the request's cookies, if any is shaped like one.
pub(super) fn session_id_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::session_from_cookie_header)
        .map(str::to_string)
}

tokio::task_local! {
    /// The method of the request being handled (see [`remember_method`]).
    static METHOD: Method;
}

/// A layer over every route: keeps the request's method for [`authorize`].
pub(super) async fn remember_method(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    METHOD.scope(method, next.run(req)).await
}

/// Whether the request being handled only reads (GET or HEAD); unknown counts as no.
fn method_is_safe() -> bool {
    METHOD
        .try_with(|m| m == Method::GET || m == Method::HEAD)
        .unwrap_or(false)
}

/// The valid session of `id`, or `None`.
pub(super) async fn session_of(
    app: &Arc<AppState>,
    id: &str,
) -> Result<Option<SessionRow>, Denied> {
    let state = app.state.clone();
    let idle = app.ui.idle_timeout;
    let hash = hash_secret(id);
    tokio::task::spawn_blocking(move || state.session(&hash, idle))
        .await
        .map_err(|e| Denied::Internal(e.to_string()))?
        .map_err(|e| Denied::Internal(e.to_string()))
}

/// Lets a request through when its credentials allow `needed`.
pub(super) async fn authorize(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<(), Denied> {
    authorize_named(app, headers, needed).await.map(|_| ())
}

/// As [`authorize`], with the caller's name: the token's (`admin` for the admin token),
/// which foreign ingest attributes series to, or the signed-in user's.
pub(super) async fn authorize_named(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<String, Denied> {
    authorize_caller(app, headers, needed)
        .await
        .map(Caller::into_name)
}

/// Who made a request that was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caller {
    /// A bearer token or basic auth: the token's name (`admin` for the admin token). A
    /// token stands for a program, which may say on whose behalf it acts.
    Token(String),
    /// A console session: its user, who acts as no one else.
    Session(String),
}

impl Caller {
    pub(super) fn into_name(self) -> String {
        match self {
            Caller::Token(n) | Caller::Session(n) => n,
        }
    }

    /// The name recorded for a change (`createdBy` of a silence, `by` of an
    /// acknowledgement): what a token's caller `claimed`, else `default`; for a session
    /// its user, and a claim of another name is refused.
    pub(super) fn author(self, claimed: Option<String>, default: &str) -> Result<String, String> {
        match self {
            Caller::Token(_) => Ok(claimed
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| default.to_string())),
            Caller::Session(user) => match claimed {
                Some(c) if !c.is_empty() && c != user => Err(format!(
                    "a console session acts as its user: {c:?} is not the signed-in user {user:?}"
                )),
                _ => Ok(user),
            },
        }
    }
}

/// As [`authorize`], telling a token from a session.
pub(super) async fn authorize_caller(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<Caller, Denied> {
    if headers.contains_key(header::AUTHORIZATION) {
        return authorize_token(app, headers, needed)
            .await
            .map(Caller::Token);
    }
    let Some(id) = session_id_of(headers) else {
        return Err(Denied::Missing);
    };
    let row = session_of(app, &id).await?.ok_or(Denied::SessionOver)?;
    if !user_allows(row.role, needed) {
        return Err(Denied::Forbidden {
            who: format!("user {:?} (role {})", row.user, row.role.as_str()),
            needed: needed.user_role().into(),
        });
    }
    if !method_is_safe() {
        let presented = headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::csrf_matches(&id, presented) {
            return Err(Denied::Csrf);
        }
    }
    Ok(Caller::Session(row.user))
}

async fn authorize_token(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<String, Denied> {
    let secret = secret_of(headers).ok_or(Denied::Missing)?;
    let state = app.state.clone();
    let (name, role) = tokio::task::spawn_blocking(move || state.authenticate_named(&secret))
        .await
        .map_err(|e| Denied::Internal(e.to_string()))?
        .map_err(|e| Denied::Internal(e.to_string()))?
        .ok_or(Denied::Invalid)?;
    if token_allows(role, needed) {
        Ok(name)
    } else {
        Err(Denied::Forbidden {
            who: format!("a token of role {}", role.as_str()),
            needed: needed.token_role().as_str().into(),
        })
    }
}

/// Who a request comes from, with what its role lets it do: for endpoints whose rules
/// depend on the caller (dashboards: their owners and editors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// The user's name, or the token's (`admin` for the admin token).
    pub(super) name: String,
    /// A user of role admin or a token of role admin.
    pub(super) admin: bool,
    /// Whether a token (not a session) authorized the request.
    pub(super) token: bool,
    /// Whether the caller has `Change` access (editors, admins, admin tokens).
    pub(super) may_change: bool,
}

/// As [`authorize_named`] (every check, CSRF included, is its), then the caller's role:
/// the token's or the session's, read again.
pub(super) async fn identify(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    needed: Access,
) -> Result<Identity, Denied> {
    let name = authorize_named(app, headers, needed).await?;
    if headers.contains_key(header::AUTHORIZATION) {
        let secret = secret_of(headers).ok_or(Denied::Missing)?;
        let state = app.state.clone();
        let (_, role) = tokio::task::spawn_blocking(move || state.authenticate_named(&secret))
            .await
            .map_err(|e| Denied::Internal(e.to_string()))?
            .map_err(|e| Denied::Internal(e.to_string()))?
            .ok_or(Denied::Invalid)?;
        return Ok(Identity {
            name,
            admin: role == Role::Admin,
            token: true,
            may_change: token_allows(role, Access::Change),
        });
    }
    let id = session_id_of(headers).ok_or(Denied::Missing)?;
    let row = session_of(app, &id).await?.ok_or(Denied::SessionOver)?;
    Ok(Identity {
        name: row.user,
        admin: row.role == UserRole::Admin,
        token: false,
        may_change: user_allows(row.role, Access::Change),
    })
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

    #[test]
    fn roles_have_the_access_the_docs_say() {
        use Access::*;
        let tokens = [
            (Role::Read, [true, false, false, false]),
            (Role::Write, [false, true, false, false]),
            (Role::Admin, [true, false, true, true]),
        ];
        for (role, expected) in tokens {
            let got = [Read, Write, Change, Admin].map(|a| token_allows(role, a));
            assert_eq!(got, expected, "token {role:?}");
        }
        let users = [
            (UserRole::Viewer, [true, false, false, false]),
            (UserRole::Editor, [true, false, true, false]),
            (UserRole::Admin, [true, false, true, true]),
        ];
        for (role, expected) in users {
            let got = [Read, Write, Change, Admin].map(|a| user_allows(role, a));
            assert_eq!(got, expected, "user {role:?}");
        }
    }

    #[test]
    fn the_session_comes_from_any_cookie_header() {
        let id = crate::session::new_session_id();
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; sysward_session={id}")).unwrap(),
        );
        assert_eq!(session_id_of(&h), Some(id));
        assert_eq!(session_id_of(&HeaderMap::new()), None);
    }

    #[test]
    fn a_session_records_its_own_user_and_a_token_what_it_claims() {
        let token = || Caller::Token("ci".into());
        let session = || Caller::Session("ann".into());
        assert_eq!(token().author(Some("bob".into()), "api"), Ok("bob".into()));
        assert_eq!(token().author(None, "api"), Ok("api".into()));
        assert_eq!(token().author(Some(String::new()), "api"), Ok("api".into()));
        assert_eq!(session().author(None, "api"), Ok("ann".into()));
        assert_eq!(
            session().author(Some("ann".into()), "api"),
            Ok("ann".into())
        );
        assert_eq!(
            session().author(Some(String::new()), "api"),
            Ok("ann".into())
        );
        let refused = session().author(Some("bob".into()), "api").unwrap_err();
        assert!(
            refused.contains("\"bob\" is not the signed-in user \"ann\""),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn outside_the_router_every_method_is_a_change() {
        assert!(!method_is_safe());
        assert!(METHOD.scope(Method::GET, async { method_is_safe() }).await);
        assert!(!METHOD.scope(Method::POST, async { method_is_safe() }).await);
    }
}
