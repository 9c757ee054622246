//! `/ui/`: the console's shell. One HTML page with a sign-in form, a script, a style
//! sheet and an icon of our own, compiled into the binary (`server/ui/`): nothing is fetched at run
//! time. The page holds no data: what it shows after a sign-in comes from the API, which
//! asks for a session. Every answer under `/ui/` carries [`security_headers`].

use axum::{
    extract::{Path as AxPath, Request},
    middleware::Next,
    response::Redirect,
    routing::get,
};

use super::*;

const INDEX: &str = include_str!("../../ui/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console but the page itself: name, type, text. Scripts are loaded by
/// `index.html` in this order: the shell (`console.js`) first, which the pages register with.
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.js", JS, include_str!("../../ui/console.js")),
    ("fleet.js", JS, include_str!("../../ui/fleet.js")),
    ("chart.js", JS, include_str!("../../ui/chart.js")),
    ("host.js", JS, include_str!("../../ui/host.js")),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/console.css"),
    ),
    // Declared by the page, so that browsers do not ask for `/favicon.ico` (a 404, which
    // they log as an error on every load).
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../ui/favicon.svg"),
    ),
];

/// Only our own origin, no inline script or style, no framing, no form posts elsewhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route(
            "/ui/{*rest}",
            get(asset).fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") }),
        )
        .layer(axum::middleware::from_fn(security_headers))
}

fn page(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn asset(AxPath(name): AxPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) => page(content_type, text),
        None => ApiError::new(StatusCode::NOT_FOUND, "no such page").into_response(),
    }
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
        let scripts: Vec<&str> = ASSETS
            .iter()
            .filter(|(_, t, _)| *t == JS)
            .map(|(n, _, _)| *n)
            .collect();
        let loaded: Vec<&str> = INDEX
            .split("<script src=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert_eq!(loaded, scripts, "every script loaded, the shell first");
        assert_eq!(INDEX.matches("<script").count(), scripts.len());
        assert!(!INDEX.contains("style="), "inline styles break the CSP");
        assert!(!INDEX.contains("<style"));
        // The icon names its XML namespace by URL; it fetches nothing.
        let fetching = ASSETS
            .iter()
            .filter(|(_, t, _)| !t.starts_with("image/svg"));
        for text in std::iter::once(INDEX).chain(fetching.map(|(_, _, t)| *t)) {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn"));
        }
        for (_, _, script) in ASSETS.iter().filter(|(_, t, _)| *t == JS) {
            assert!(!script.contains("innerHTML"), "text only, never markup");
            assert!(!script.contains("insertAdjacentHTML") && !script.contains("outerHTML"));
            assert!(!script.contains("eval("), "the CSP forbids eval");
        }
    }
}
