//! What the Prometheus API endpoints share: parameters from the URL and a form body (a
//! body parameter first, as Go's `ParseForm` orders them), Prometheus' time and duration
//! formats, the JSON envelope (`{"status":"success","data":…,"warnings":[…],"infos":[…]}`,
//! the lists left out when empty) and error shape (`{"status":"error","errorType":…,
//! "error":…}`), access by token role, and the per-endpoint metrics.
//!
//! Times are Unix seconds as a float or RFC 3339, held as Unix milliseconds; a time whose
//! milliseconds a float cannot hold exactly (past ±2^53 ms, about the year 287,000) is
//! refused as an absurd time rather than computed with.

use std::{future::Future, time::Instant};

use sysward_proto::units;

use axum::{extract::Request, http::Method};

use super::{
    auth::{Access, Denied, authorize},
    *,
};
use crate::{
    query::{Annotations, QueryError},
    selector::{Selector, parse_selector},
};

/// Largest form body of a query request.
const MAX_FORM_BODY: usize = 1024 * 1024;

/// The latest and earliest time accepted, in ms: ±2^53.
pub(super) const MAX_TIME_MS: i64 = 1 << 53;

/// A failed request, as Prometheus writes it.
#[derive(Debug)]
pub(super) struct PromError {
    status: StatusCode,
    error_type: &'static str,
    pub(super) message: String,
    /// The `[query]` limit that refused the request, counted in `/metrics`.
    pub(super) refused_by: Option<&'static str>,
}

impl PromError {
    pub(super) fn new(status: StatusCode, error_type: &'static str, message: String) -> Self {
        Self {
            status,
            error_type,
            message,
            refused_by: None,
        }
    }

    /// The same error, counted as a refusal by `limit`.
    pub(super) fn refused_by(mut self, limit: &'static str) -> Self {
        self.refused_by = Some(limit);
        self
    }

    pub(super) fn bad_data(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_data", message.into())
    }

    /// A parameter that cannot be read: `invalid parameter "start": …`.
    pub(super) fn param(name: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {why}"))
    }

    pub(super) fn internal(message: impl std::fmt::Display) -> Self {
        warn!(error = %message, "Internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }

    /// The error type, which is also the outcome counted in `/metrics`.
    pub(super) fn error_type(&self) -> &'static str {
        self.error_type
    }
}

impl From<QueryError> for PromError {
    fn from(e: QueryError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let refused_by = match &e {
            QueryError::Limit { limit, .. } => Some(*limit),
            QueryError::Timeout(_) => Some("timeout"),
            _ => None,
        };
        Self {
            refused_by,
            ..Self::new(status, e.error_type(), e.to_string())
        }
    }
}

impl From<Denied> for PromError {
    fn from(d: Denied) -> Self {
        Self::new(d.status(), d.kind(), d.message())
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": "error",
            "errorType": self.error_type,
            "error": self.message,
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sysward\""),
            );
        }
        resp
    }
}

/// A successful answer with its annotations.
pub(super) fn success(data: serde_json::Value, notes: &Annotations) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("status".into(), "success".into());
    body.insert("data".into(), data);
    if !notes.warnings.is_empty() {
        body.insert("warnings".into(), json!(notes.warnings));
    }
    if !notes.infos.is_empty() {
        body.insert("infos".into(), json!(notes.infos));
    }
    Json(serde_json::Value::Object(body)).into_response()
}

/// A request's parameters, in order: the form body's, then the URL's.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters as a request would carry them, for tests of the handlers' parsing.
    #[cfg(test)]
    pub(super) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub(super) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, or a `bad_data` error naming it.
    pub(super) fn required(&self, key: &str) -> Result<&str, PromError> {
        self.get(key)
            .ok_or_else(|| PromError::param(key, "missing"))
    }

    /// A time parameter, `default` when absent.
    pub(super) fn time(&self, key: &str, default: i64) -> Result<i64, PromError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => parse_time(v).map_err(|e| PromError::param(key, e)),
        }
    }

    /// `limit`: a count, 0 (or absent) for none.
    pub(super) fn limit(&self) -> Result<usize, PromError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                PromError::param(
                    "limit",
                    format!("cannot parse {v:?} to a non-negative integer"),
                )
            }),
        }
    }

    /// Every `match[]` selector (or `match`, which `/api/v1/series` took before); an empty
    /// list when there is none.
    pub(super) fn selectors(&self) -> Result<Vec<Selector>, PromError> {
        let mut out = Vec::new();
        for text in self.all("match[]").chain(self.all("match")) {
            let parsed = parse_selector(text)
                .map_err(|e| PromError::param("match[]", format!("{text:?}: {e}")))?;
            out.extend(parsed);
        }
        Ok(out)
    }
}

/// Decodes `application/x-www-form-urlencoded` text (the `form_urlencoded` crate, as the
/// `url` crate decodes it): lenient as browsers are, a `%` not followed by two hex digits
/// stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub(super) fn decode_form(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A time as Prometheus' API takes it: Unix seconds (a float) or RFC 3339, into ms.
pub(super) fn parse_time(text: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {text:?} to a valid timestamp");
    let ms = if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(cannot());
        }
        let ms = (seconds * 1000.0).round();
        if ms.abs() > MAX_TIME_MS as f64 {
            return Err(format!("{}: out of range", cannot()));
        }
        ms as i64
    } else {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| cannot())?;
        i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| cannot())?
    };
    Ok(ms.clamp(-MAX_TIME_MS, MAX_TIME_MS))
}

/// A duration as Prometheus' API takes it: seconds (a float, negative allowed) or
/// Prometheus' units (`1h30m`, `500ms`, `2d`, `1w`, `1y`), into ms.
pub(super) fn parse_duration(text: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {text:?} to a valid duration");
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        if !ms.is_finite() || ms.abs() > MAX_TIME_MS as f64 {
            return Err(format!("{}: it overflows", cannot()));
        }
        return Ok(ms as i64);
    }
    // Units as configs write them (`1h30m`, `500ms`, `2d`, `1w`, `1y`).
    let d = units::parse_duration(text).map_err(|_| cannot())?;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX_TIME_MS)
        .ok_or_else(|| format!("{}: it overflows", cannot()))
}

/// A timestamp as Prometheus writes it: Unix seconds, with up to three decimals.
pub(super) fn time_json(ms: i64) -> serde_json::Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// Go's `time.Time` in JSON; the zero time when there is none, as Prometheus shows a rule
/// never evaluated.
pub(super) fn rfc3339(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "0001-01-01T00:00:00Z".into();
    };
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `limit` of a list endpoint: 0 (none given) meaning 1,000, and at most 10,000.
pub(super) fn page_size(limit: usize) -> usize {
    if limit == 0 { 1000 } else { limit.min(10_000) }
}

/// An API request as the handlers see it.
pub(super) struct PromRequest {
    pub(super) params: Params,
}

/// Reads the parameters: the URL's, and a form body's when the request is a POST with one.
async fn read_request(req: Request) -> Result<PromRequest, PromError> {
    let (parts, body) = req.into_parts();
    let mut pairs = Vec::new();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if parts.method == Method::POST && is_form {
        let bytes = read_body(body, MAX_FORM_BODY)
            .await
            .map_err(|e| PromError::bad_data(e.message))?;
        pairs.extend(decode_form(&String::from_utf8_lossy(&bytes)));
    }
    if let Some(q) = parts.uri.query() {
        pairs.extend(decode_form(q));
    }
    Ok(PromRequest {
        params: Params(pairs),
    })
}

/// Runs one endpoint: access (role read), parameters, the handler, and the metrics.
pub(super) async fn serve<F, Fut>(
    app: Arc<AppState>,
    endpoint: &'static str,
    req: Request,
    handler: F,
) -> Response
where
    F: FnOnce(Arc<AppState>, PromRequest) -> Fut,
    Fut: Future<Output = Result<Response, PromError>>,
{
    let started = Instant::now();
    let result = async {
        authorize(&app, req.headers(), Access::Read).await?;
        let request = read_request(req).await?;
        handler(app.clone(), request).await
    }
    .await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) => {
            if let Some(limit) = e.refused_by {
                app.metrics.query.refused(limit);
            }
            e.error_type()
        }
    };
    app.metrics
        .query
        .record(endpoint, outcome, started.elapsed());
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn times_are_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Ok(1_700_000_000_500)
        );
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("\"yesterday\"")
        );
        assert!(parse_time("1e20").unwrap_err().contains("out of range"));
        assert!(parse_time("NaN").is_err() && parse_time("+Inf").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn durations_are_seconds_or_units() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("-1"), Ok(-1000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        for bad in ["", "x", "5 m", "m", "1h-1m", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_decode_as_browsers_send_them() {
        assert_eq!(
            decode_form("query=1%2B1&time=&match[]=a+b&x"),
            vec![
                ("query".into(), "1+1".into()),
                ("time".into(), "".into()),
                ("match[]".into(), "a b".into()),
                ("x".into(), "".into()),
            ]
        );
        assert_eq!(decode_form("q=%zz%4"), vec![("q".into(), "%zz%4".into())]);
        assert_eq!(decode_form("q=%C3%A9"), vec![("q".into(), "é".into())]);
    }

    #[test]
    fn timestamps_print_as_prometheus_prints_them() {
        assert_eq!(time_json(1_700_000_000_000).to_string(), "1700000000");
        assert_eq!(time_json(1_700_000_000_123).to_string(), "1700000000.123");
        assert_eq!(time_json(-1500).to_string(), "-1.5");
    }

    proptest! {
        #[test]
        fn parsers_of_parameters_never_panic(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
            let _ = decode_form(&s);
        }

        #[test]
        fn numeric_durations_and_times_parse(n in -1_000_000_000i64..1_000_000_000) {
            prop_assert_eq!(parse_duration(&n.to_string()), Ok(n * 1000));
            prop_assert_eq!(parse_time(&n.to_string()), Ok(n * 1000));
        }
    }
}
