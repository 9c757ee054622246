//! `http_server_duration`: the time the API takes to answer, by route and method, as a
//! summary with quantiles over each route's most recent requests (the product's documented
//! name, OpenTelemetry's `http.server.duration`).

use std::{
    collections::HashMap,
    fmt::Write,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

/// Requests a route's quantiles are computed over.
const WINDOW: usize = 1024;
/// The quantiles written.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

#[derive(Debug, Default)]
struct Window {
    /// Seconds of the last [`WINDOW`] requests, a ring.
    recent: Vec<f32>,
    next: usize,
    count: u64,
    sum: f64,
}

impl Window {
    fn record(&mut self, seconds: f64) {
        if self.recent.len() < WINDOW {
            self.recent.push(seconds as f32);
        } else {
            self.recent[self.next] = seconds as f32;
        }
        self.next = (self.next + 1) % WINDOW;
        self.count += 1;
        self.sum += seconds;
    }

    fn quantiles(&self) -> [f64; QUANTILES.len()] {
        let mut sorted = self.recent.clone();
        sorted.sort_by(f32::total_cmp);
        QUANTILES.map(|q| {
            if sorted.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
        })
    }
}

/// Every route's window, by route then method. Routes are the router's own patterns, so
/// the set is bounded; a request allocates nothing once its route was seen.
#[derive(Debug, Default)]
pub struct HttpDurations {
    routes: Mutex<HashMap<String, HashMap<&'static str, Window>>>,
}

impl HttpDurations {
    pub fn record(&self, route: &str, method: &str, seconds: f64) {
        let method = known_method(method);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let methods = match routes.get_mut(route) {
            Some(methods) => methods,
            None => routes.entry(route.to_string()).or_default(),
        };
        methods.entry(method).or_default().record(seconds);
    }

    /// The summary in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<(&String, &&'static str)> = routes
            .iter()
            .flat_map(|(route, methods)| methods.keys().map(move |m| (route, m)))
            .collect();
        keys.sort();
        let _ = writeln!(
            out,
            "# HELP http_server_duration Seconds from a request to its answer, by route and method; quantiles over the route's last {WINDOW} requests."
        );
        let _ = writeln!(out, "# TYPE http_server_duration summary");
        for (route, method) in keys {
            let w = &routes[route][method];
            let labels = format!(
                "http_route=\"{}\",http_request_method=\"{method}\"",
                escape(route)
            );
            for (q, v) in QUANTILES.iter().zip(w.quantiles()) {
                let _ = writeln!(out, "http_server_duration{{{labels},quantile=\"{q}\"}} {v}");
            }
            let _ = writeln!(out, "http_server_duration_sum{{{labels}}} {}", w.sum);
            let _ = writeln!(out, "http_server_duration_count{{{labels}}} {}", w.count);
        }
    }
}

fn known_method(method: &str) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        .into_iter()
        .find(|m| *m == method)
        .unwrap_or("other")
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware (a route layer, so that the matched pattern is known) timing each request.
pub async fn record_http_duration(
    State(durations): State<Arc<super::HealthMonitor>>,
    request: Request,
    next: Next,
) -> Response {
    // A matched path is an `Arc<str>`: cloned, not copied.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = known_method(request.method().as_str());
    let started = Instant::now();
    let response = next.run(request).await;
    durations.http.record(
        route.as_ref().map_or("other", MatchedPath::as_str),
        method,
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_recent_requests() {
        let d = HttpDurations::default();
        for i in 1..=100 {
            d.record("/api/v1/query", "GET", f64::from(i) / 1000.0);
        }
        d.record("/api/v1/query", "BREW", 5.0);
        let mut out = String::new();
        d.render(&mut out);
        let q = |quantile: &str| {
            let prefix = format!(
                "http_server_duration{{http_route=\"/api/v1/query\",http_request_method=\"GET\",quantile=\"{quantile}\"}} "
            );
            out.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert!((q("0.5") - 0.05).abs() < 1e-6, "{out}");
        assert!((q("0.99") - 0.099).abs() < 1e-6, "{out}");
        assert!(out.contains(
            "http_server_duration_count{http_route=\"/api/v1/query\",http_request_method=\"GET\"} 100"
        ));
        assert!(out.contains("http_request_method=\"other\",quantile=\"0.5\"} 5"));
    }

    #[test]
    fn the_window_keeps_only_the_last_requests() {
        let mut w = Window::default();
        for _ in 0..WINDOW {
            w.record(10.0);
        }
        for _ in 0..WINDOW {
            w.record(0.001);
        }
        assert_eq!(w.recent.len(), WINDOW);
        assert_eq!(w.count, 2 * WINDOW as u64);
        assert!(w.quantiles().iter().all(|v| (v - 0.001).abs() < 1e-6));
    }
}
