//! Spans of the server's work: one per HTTP request (method, route, status), one per rule
//! group evaluation. The tracer is set only when traces go out; without it the request
//! layer is not installed at all and a rule group costs one atomic load.

use std::sync::OnceLock;

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use opentelemetry::{
    KeyValue,
    propagation::{Extractor, TextMapPropagator},
    trace::{Span as _, SpanKind, Status, Tracer as _},
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{SdkTracer, Span},
};

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Makes spans go out through `tracer`. The first server of a process keeps it.
pub(super) fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

pub(super) fn installed() -> bool {
    TRACER.get().is_some()
}

/// `axum` middleware: the request's span, a child of the caller's `traceparent` if any.
pub async fn http_request(req: Request, next: Next) -> Response {
    let Some(tracer) = TRACER.get() else {
        return next.run(req).await;
    };
    let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", req.uri().path().to_owned()),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    let response = next.run(req).await;
    let status = response.status();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
    span.end();
    response
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A rule group's evaluation; `None` (one atomic load) when traces do not go out.
pub fn rule_group(name: &str, rules: usize) -> Option<Span> {
    let tracer = TRACER.get()?;
    Some(
        tracer
            .span_builder(format!("evaluate rule group {name}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("sysward.rule_group", name.to_owned()),
                KeyValue::new("sysward.rules", i64::try_from(rules).unwrap_or(i64::MAX)),
            ])
            .start(tracer),
    )
}

/// Ends a rule group's span with what went wrong, if anything.
pub fn rule_group_done(span: Option<Span>, rule_failures: u64, saved: bool) {
    let Some(mut span) = span else {
        return;
    };
    span.set_attribute(KeyValue::new(
        "sysward.rule_failures",
        i64::try_from(rule_failures).unwrap_or(i64::MAX),
    ));
    if !saved {
        span.set_status(Status::error("the rules' state could not be saved"));
    } else if rule_failures > 0 {
        span.set_status(Status::error("rules failed to evaluate"));
    }
    span.end();
}
