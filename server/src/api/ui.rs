//! `/ui/`: the console's shell. One HTML page with a sign-in form, a script, a style
//! sheet and an icon of our own, compiled into the binary (`server/ui/`): nothing is fetched at run
//! time. The page holds no data: what it shows after a sign-in comes from the API, which
//! asks for a session. Every answer under `/ui/` carries [`security_headers`].

use axum::{
    extract::Request,
    middleware::Next,
    response::Redirect,
    routing::{any, get},
};

use super::*;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/console.js");
/// The Fleet page, loaded before `console.js`, which starts and stops it.
const FLEET: &str = include_str!("../../ui/fleet.js");
const STYLE: &str = include_str!("../../ui/console.css");
/// Declared by the page, so that browsers do not ask for `/favicon.ico` (a 404, which
/// they log as an error on every load).
const ICON: &str = include_str!("../../ui/favicon.svg");

/// Only our own origin, no inline script or style, no framing, no form posts elsewhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/fleet.js",
            get(|| async { asset("text/javascript; charset=utf-8", FLEET) }),
        )
        .route(
            "/ui/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/favicon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
        .route(
            "/ui/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route(
            "/ui/{*rest}",
            any(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") }),
        )
        .layer(axum::middleware::from_fn(security_headers))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// The headers of every answer under `/ui`.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_fetches_nothing_elsewhere() {
        let scripts = r#"<script src="fleet.js" defer></script>
<script src="console.js" defer></script>"#;
        assert!(
            INDEX.contains(scripts),
            "fleet.js first: console.js starts it"
        );
        assert_eq!(INDEX.matches("<script").count(), 2);
        assert!(!INDEX.contains("style="), "inline styles break the CSP");
        assert!(!INDEX.contains("<style"));
        for text in [INDEX, SCRIPT, FLEET, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn"));
        }
        for script in [SCRIPT, FLEET] {
            assert!(!script.contains("innerHTML"), "text only, never markup");
            assert!(!script.contains("insertAdjacentHTML") && !script.contains("outerHTML"));
        }
    }
}
