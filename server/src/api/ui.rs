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
    ("chart.js", JS, include_str!("../../ui/chart.js")),
    ("fleet.js", JS, include_str!("../../ui/fleet.js")),
    ("host.js", JS, include_str!("../../ui/host.js")),
    ("alerts.js", JS, include_str!("../../ui/alerts.js")),
    ("silences.js", JS, include_str!("../../ui/silences.js")),
    ("rules.js", JS, include_str!("../../ui/rules.js")),
    ("agents.js", JS, include_str!("../../ui/agents.js")),
    (
        "availability.js",
        JS,
        include_str!("../../ui/availability.js"),
    ),
    ("dashboards.js", JS, include_str!("../../ui/dashboards.js")),
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
            get(|headers: HeaderMap| async move {
                served(
                    "text/html; charset=utf-8",
                    INDEX,
                    gzipped(ASSETS.len()),
                    &headers,
                )
            }),
        )
        .route(
            "/ui/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/ui/api/public/{id}", get(dashboards::public_get))
        .route(
            "/ui/api/public/{id}/widgets/{widget}",
            get(dashboards::public_widget),
        )
        .route(
            "/ui/{*rest}",
            get(asset).fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") }),
        )
        .layer(axum::middleware::from_fn(security_headers))
}

async fn asset(AxPath(name): AxPath<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|(n, _, _)| *n == name) {
        Some(i) => {
            let (_, content_type, text) = ASSETS[i];
            served(content_type, text, gzipped(i), &headers)
        }
        None => ApiError::new(StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

/// `text`, or its gzip form when the browser takes it (every current one does).
fn served(
    content_type: &'static str,
    text: &'static str,
    gz: &'static [u8],
    headers: &HeaderMap,
) -> Response {
    let mut resp = if accepts_gzip(headers) {
        let mut r = gz.to_vec().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        text.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// The gzip form of asset `i` (`ASSETS.len()`: the page), compressed once, at first use.
fn gzipped(i: usize) -> &'static [u8] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, t)| *t)
            .chain(std::iter::once(INDEX))
            .map(gzip)
            .collect()
    });
    &all[i]
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(text.as_bytes());
    z.finish().unwrap_or_default()
}

/// Whether `Accept-Encoding` lists gzip without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        })
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
    fn gzip_is_served_to_those_who_take_it() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!with("x-gzip2"));
        assert!(!accepts_gzip(&HeaderMap::new()));
        for (i, (_, _, text)) in ASSETS.iter().enumerate() {
            let mut out = String::new();
            let mut d = flate2::read::GzDecoder::new(gzipped(i));
            std::io::Read::read_to_string(&mut d, &mut out).unwrap();
            assert_eq!(out, *text);
        }
    }

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
