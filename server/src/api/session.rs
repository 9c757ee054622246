//! `/ui/api/session`: signing in to the console and out. The sessions, the CSRF token and
//! the limiter are in [`crate::session`]; the users in [`crate::users`] and `state.db`.
//!
//! A sign-in for a user that does not exist, with a name that cannot be one, or with a
//! wrong password gets the same answer after the same work (an Argon2id verification,
//! against [`users::dummy_hash`] when there is no user), so the answer tells nobody which
//! names exist. Failures are logged with the name and the address, never the password.

use std::time::Instant;

use axum::Extension;

use super::{auth::Denied, *};
use crate::{
    session,
    state::{SessionRow, hash_secret},
    users::{self, UserRole},
};

/// A sign-in body is a name and a password.
const MAX_BODY: usize = 4 * 1024;
/// The answer to every failed sign-in.
const WRONG: &str = "unknown user or wrong password";

fn answer(user: &str, role: UserRole, id: &str) -> serde_json::Value {
    json!({ "user": user, "role": role.as_str(), "csrf_token": session::csrf_token(id) })
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The user name as logged: at most 64 characters, escaped by `?`.
fn logged_name(name: &str) -> String {
    name.chars().take(users::MAX_NAME_CHARS).collect()
}

/// `POST /ui/api/session` `{"user": "ann", "password": "…"}`: a new session in the cookie,
/// and `{"user", "role", "csrf_token"}`; 401 for any wrong name or password, 429 while
/// the limiter refuses.
pub(super) async fn sign_in(
    AxState(app): AxState<Arc<AppState>>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a sign-in is JSON: Content-Type: application/json",
        ));
    }
    let bytes = read_body(body, MAX_BODY).await?;
    let form =
        session::parse_sign_in(&bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let address = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    let valid_name = users::check_name(&form.user).is_ok();
    // Invalid names can never sign in: they share one entry of the limiter.
    let key = if valid_name { form.user.as_str() } else { "" };
    if let Err(wait) = app.sign_ins.check(key, address, Instant::now()) {
        warn!(user = ?logged_name(&form.user), %address, "Console sign-in refused: too many failures.");
        let secs = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        return Err(ApiError::retry(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed sign-ins; try again in {secs} s"),
            secs,
        ));
    }
    let role = verify_sign_in(&app, &form.user, valid_name, form.password).await?;
    let Some(role) = role else {
        app.sign_ins.failed(key, address, Instant::now());
        warn!(user = ?logged_name(&form.user), %address, "Console sign-in failed.");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, WRONG));
    };
    app.sign_ins.succeeded(key);
    let id = session::new_session_id();
    let (state, hash, user) = (app.state.clone(), hash_secret(&id), form.user.clone());
    let (lifetime, idle) = (app.ui.session_lifetime, app.ui.idle_timeout);
    blocking(move || state.create_session(&hash, &user, lifetime, idle))
        .await?
        .map_err(internal)?;
    info!(user = %form.user, role = role.as_str(), %address, "Console sign-in.");
    let mut resp = Json(answer(&form.user, role, &id)).into_response();
    let cookie = session::set_cookie(&id, lifetime);
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(internal)?,
    );
    Ok(no_store(resp))
}

/// The user's role when `password` is theirs. One verification whatever the case: against
/// the dummy hash when the name is invalid or unknown. At most
/// [`PASSWORD_CHECKS`] at once (each takes Argon2's memory); others wait.
async fn verify_sign_in(
    app: &Arc<AppState>,
    name: &str,
    valid_name: bool,
    password: String,
) -> Result<Option<UserRole>, ApiError> {
    let _permit = app.password_checks.acquire().await.map_err(internal)?;
    let state = app.state.clone();
    let name = name.to_string();
    blocking(move || {
        let stored = if valid_name {
            state.user_credentials(&name)?
        } else {
            None
        };
        let hash = stored
            .as_ref()
            .map_or(users::dummy_hash(), |(h, _)| h.as_str());
        let matches = users::verify_password(&password, hash);
        Ok::<_, crate::state::StateError>(stored.filter(|_| matches).map(|(_, role)| role))
    })
    .await?
    .map_err(internal)
}

/// Verifications of passwords running at once.
pub const PASSWORD_CHECKS: usize = 4;

/// The request's valid session with its id.
async fn current_session(
    app: &Arc<AppState>,
    headers: &HeaderMap,
) -> Result<Option<(String, SessionRow)>, ApiError> {
    let Some(id) = auth::session_id_of(headers) else {
        return Ok(None);
    };
    let row = auth::session_of(app, &id).await.map_err(|d| match d {
        Denied::Internal(e) => internal(e),
        other => ApiError::new(other.status(), other.message()),
    })?;
    Ok(row.map(|row| (id, row)))
}

/// `GET /ui/api/session`: `{"user", "role", "csrf_token"}` of the signed-in user, or 401.
pub(super) async fn current(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match current_session(&app, &headers).await? {
        Some((id, row)) => Ok(no_store(
            Json(answer(&row.user, row.role, &id)).into_response(),
        )),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "not signed in")),
    }
}

/// `DELETE /ui/api/session` with `X-CSRF-Token`: ends the session and clears the cookie;
/// 204 also when there was no valid session, 403 without the session's token.
pub(super) async fn sign_out(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some((id, row)) = current_session(&app, &headers).await? {
        let presented = headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::csrf_matches(&id, presented) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, Denied::Csrf.message()));
        }
        let (state, hash) = (app.state.clone(), hash_secret(&id));
        blocking(move || state.delete_session(&hash))
            .await?
            .map_err(internal)?;
        info!(user = %row.user, "Console sign-out.");
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie()).map_err(internal)?,
    );
    Ok(no_store(resp))
}
