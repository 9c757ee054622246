//! The server's own counters, kept as atomics so that handlers never wait on them, and
//! their rendering for `GET /metrics` in Prometheus' text format (version 0.0.4).
//!
//! Names follow the workspace's convention: base units, `_total` for counters,
//! `sysward_server_` for what is ours, `process_` as every Prometheus client library
//! names it.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::store::{StoreStats, Tier};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub batches_accepted: Counter,
    pub batches_duplicate: Counter,
    pub batches_refused: Counter,
    pub samples_ingested: Counter,
    pub query: QueryMetrics,
    /// Remote write and OTLP ingest.
    pub foreign: crate::ingest_foreign::ForeignMetrics,
}

/// The Prometheus API's endpoints, as the `endpoint` label names them.
pub const QUERY_ENDPOINTS: [&str; 12] = [
    "query",
    "query_range",
    "query_exemplars",
    "series",
    "labels",
    "label_values",
    "metadata",
    "format_query",
    "parse_query",
    "buildinfo",
    "events",
    "checks",
];

/// How a request ended: success, one of Prometheus' error types, or refused access.
pub const QUERY_OUTCOMES: [&str; 8] = [
    "success",
    "bad_data",
    "execution",
    "timeout",
    "canceled",
    "internal",
    "unauthorized",
    "forbidden",
];

/// The `[query]` limits a refusal can name; `other` for any a later engine adds.
pub const QUERY_LIMITS: [&str; 6] = [
    "max_samples",
    "max_series_per_selector",
    "max_points_per_series",
    "timeout",
    "max_concurrent",
    "other",
];

/// Requests to the Prometheus API by endpoint and outcome, their time, and refusals by
/// limit. Names outside the tables above are not counted (endpoints, outcomes) or counted
/// as `other` (limits).
#[derive(Debug, Default)]
pub struct QueryMetrics {
    requests: [[Counter; QUERY_OUTCOMES.len()]; QUERY_ENDPOINTS.len()],
    duration_micros: [Counter; QUERY_ENDPOINTS.len()],
    refusals: [Counter; QUERY_LIMITS.len()],
}

impl QueryMetrics {
    /// Counts one request that took `elapsed`.
    pub fn record(&self, endpoint: &str, outcome: &str, elapsed: Duration) {
        let Some(e) = QUERY_ENDPOINTS.iter().position(|n| *n == endpoint) else {
            return;
        };
        if let Some(o) = QUERY_OUTCOMES.iter().position(|n| *n == outcome) {
            self.requests[e][o].inc();
        }
        self.duration_micros[e].add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts a refusal by a `[query]` limit.
    pub fn refused(&self, limit: &str) {
        let i = QUERY_LIMITS
            .iter()
            .position(|n| *n == limit)
            .unwrap_or(QUERY_LIMITS.len() - 1);
        self.refusals[i].inc();
    }

    /// Requests of one endpoint and outcome so far.
    pub fn requests(&self, endpoint: &str, outcome: &str) -> u64 {
        let e = QUERY_ENDPOINTS.iter().position(|n| *n == endpoint);
        let o = QUERY_OUTCOMES.iter().position(|n| *n == outcome);
        match (e, o) {
            (Some(e), Some(o)) => self.requests[e][o].get(),
            _ => 0,
        }
    }
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the process uses, read from `/proc/self` (absent elsewhere).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the figures; whatever cannot be read is left out rather than made up.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        Self {
            resident_bytes: parse_vm_rss(&status),
            cpu_seconds: parse_cpu_ticks(&stat).map(|t| t as f64 / CLOCK_TICKS_PER_SECOND),
        }
    }
}

/// `USER_HZ`: 100 on every Linux architecture the server is built for; the kernel reports
/// `/proc/*/stat` times in these units whatever its internal tick rate.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// `VmRSS:   1234 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its closing `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn sample(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The whole `/metrics` page.
pub fn render(server: &ServerMetrics, store: &StoreStats, process: ProcessStats) -> String {
    let mut out = String::with_capacity(4096);
    render_ingest(&mut out, server, store);
    server.foreign.render(&mut out);
    render_store(&mut out, store);
    render_query(&mut out, &server.query);
    render_process(&mut out, process);
    out
}

/// What the rule engine reports: its counters, rules loaded, files refused, and alerts by
/// state.
pub struct RulesReport {
    pub stats: crate::rules::engine::EngineStats,
    pub rules: usize,
    pub file_errors: usize,
    pub alerts: [(&'static str, usize); 3],
}

/// The rule engine's figures.
pub fn render_rules(r: &RulesReport) -> String {
    let mut o = String::with_capacity(1024);
    let s = &r.stats;
    for (name, help, value) in [
        (
            "sysward_rule_group_evaluations_total",
            "Group evaluations, scheduled and triggered by ingest.",
            s.evaluations,
        ),
        (
            "sysward_rule_group_triggered_evaluations_total",
            "Group evaluations started by a batch touching what the group reads.",
            s.triggered,
        ),
        (
            "sysward_rule_evaluation_failures_total",
            "Rule evaluations that failed (the rule shows health err).",
            s.rule_failures,
        ),
        (
            "sysward_rule_state_write_failures_total",
            "Group evaluations whose state could not be saved (retried at the next).",
            s.persist_failures,
        ),
    ] {
        sample(&mut o, name, "counter", help, value);
    }
    sample(
        &mut o,
        "sysward_rule_last_round_seconds",
        "gauge",
        "How long the last round of due groups took.",
        s.last_round.as_secs_f64(),
    );
    sample(
        &mut o,
        "sysward_rules_loaded",
        "gauge",
        "Rules loaded and evaluated.",
        r.rules,
    );
    sample(
        &mut o,
        "sysward_rule_files_refused",
        "gauge",
        "Rule files refused at start (see the log); 0 after a good reload.",
        r.file_errors,
    );
    family(&mut o, "sysward_alerts", "gauge", "Alerts by state.");
    for (state, n) in r.alerts {
        let _ = writeln!(o, "sysward_alerts{{state=\"{state}\"}} {n}");
    }
    o
}

/// The build, batches by outcome, series and samples.
fn render_ingest(o: &mut String, server: &ServerMetrics, store: &StoreStats) {
    family(
        o,
        "sysward_server_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    let _ = writeln!(
        o,
        "sysward_server_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    sample(
        o,
        "sysward_server_batches_accepted_total",
        "counter",
        "Batches acked, repeats of stored batches included.",
        server.batches_accepted.get(),
    );
    sample(
        o,
        "sysward_server_batches_duplicate_total",
        "counter",
        "Batches acked again without storing: their (agent, boot, seq) was stored before.",
        server.batches_duplicate.get(),
    );
    sample(
        o,
        "sysward_server_batches_refused_total",
        "counter",
        "Batches refused for good with a 4xx (identity, limits, malformed); 429s excluded.",
        server.batches_refused.get(),
    );
    sample(
        o,
        "sysward_server_series",
        "gauge",
        "Series in the store's index.",
        store.series,
    );
    sample(
        o,
        "sysward_server_samples_ingested_total",
        "counter",
        "Samples stored in the raw tier since start.",
        store.samples_ingested,
    );
    sample(
        o,
        "sysward_server_samples_late_total",
        "counter",
        "Samples older than the out-of-order window, merged into the rollups only.",
        store.samples_late,
    );
    sample(
        o,
        "sysward_server_series_refused_total",
        "counter",
        "New series refused by the per-agent series limit.",
        store.series_refused,
    );
}

/// The store's heads, sizes, maintenance, commits and tables.
fn render_store(o: &mut String, store: &StoreStats) {
    sample(
        o,
        "sysward_server_store_head_points",
        "gauge",
        "Points in the in-memory head, not yet cut into chunks.",
        store.head_points,
    );
    family(
        o,
        "sysward_server_store_bytes",
        "gauge",
        "Bytes of compressed chunk and rollup data per tier.",
    );
    for tier in Tier::ALL {
        let _ = writeln!(
            o,
            "sysward_server_store_bytes{{tier=\"{}\"}} {}",
            tier.name(),
            store.bytes[tier as usize]
        );
    }
    sample(
        o,
        "sysward_server_store_file_bytes",
        "gauge",
        "Size of store.db and its write-ahead log on disk.",
        store.file_bytes,
    );
    sample(
        o,
        "sysward_server_store_cuts_total",
        "counter",
        "Heads cut into chunks and rollups (compaction).",
        store.cuts,
    );
    sample(
        o,
        "sysward_server_store_cut_seconds_total",
        "counter",
        "Time spent cutting heads.",
        micros(store.cut_micros),
    );
    sample(
        o,
        "sysward_server_store_purges_total",
        "counter",
        "Retention purges run (with their incremental vacuum).",
        store.purges,
    );
    sample(
        o,
        "sysward_server_store_last_purge_seconds",
        "gauge",
        "Duration of the last purge.",
        micros(store.last_purge_micros),
    );
    sample(
        o,
        "sysward_server_store_commits_total",
        "counter",
        "Ingest transactions committed (one fsync each); concurrent batches share one.",
        store.commits,
    );
    sample(
        o,
        "sysward_server_store_committed_batches_total",
        "counter",
        "Batches carried by those transactions.",
        store.commit_batches,
    );
    sample(
        o,
        "sysward_server_store_dedup_ranges",
        "gauge",
        "Ranges of batch seqs remembered for de-duplication (about one per agent boot of the dedup window), as of the last purge.",
        store.dedup_ranges,
    );
    sample(
        o,
        "sysward_server_store_events",
        "gauge",
        "Check results kept, as of the last purge.",
        store.events,
    );
}

/// The Prometheus API: requests by endpoint and outcome (zeros left out), time spent,
/// refusals by limit.
fn render_query(o: &mut String, q: &QueryMetrics) {
    family(
        o,
        "sysward_server_queries_total",
        "counter",
        "Requests to the Prometheus query API by endpoint and outcome (success or Prometheus' error type, unauthorized, forbidden).",
    );
    for (e, endpoint) in QUERY_ENDPOINTS.iter().enumerate() {
        for (i, outcome) in QUERY_OUTCOMES.iter().enumerate() {
            let n = q.requests[e][i].get();
            if n > 0 || *outcome == "success" {
                let _ = writeln!(
                    o,
                    "sysward_server_queries_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }
    family(
        o,
        "sysward_server_query_duration_seconds",
        "summary",
        "Time from a query API request to its answer, queueing included.",
    );
    for (e, endpoint) in QUERY_ENDPOINTS.iter().enumerate() {
        let count: u64 = q.requests[e].iter().map(Counter::get).sum();
        let _ = writeln!(
            o,
            "sysward_server_query_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
            micros(q.duration_micros[e].get())
        );
        let _ = writeln!(
            o,
            "sysward_server_query_duration_seconds_count{{endpoint=\"{endpoint}\"}} {count}"
        );
    }
    family(
        o,
        "sysward_server_query_refusals_total",
        "counter",
        "Queries refused by a [query] limit, by limit.",
    );
    for (i, limit) in QUERY_LIMITS.iter().enumerate() {
        let _ = writeln!(
            o,
            "sysward_server_query_refusals_total{{limit=\"{limit}\"}} {}",
            q.refusals[i].get()
        );
    }
}

/// The server process' memory and CPU.
fn render_process(o: &mut String, process: ProcessStats) {
    if let Some(rss) = process.resident_bytes {
        sample(
            o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size.",
            rss,
        );
    }
    if let Some(cpu) = process.cpu_seconds {
        sample(
            o,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time.",
            cpu,
        );
    }
}

fn micros(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Notifications by receiver, channel and result, and the queue.
pub fn render_notify(n: &crate::notify::Notifier) -> String {
    let mut o = String::with_capacity(1024);
    family(
        &mut o,
        "sysward_notifications_total",
        "counter",
        "Notification sends by receiver, channel and result (sent, retried, failed, given_up).",
    );
    for ((receiver, channel, result), count) in n.metrics.snapshot() {
        let _ = writeln!(
            o,
            "sysward_notifications_total{{receiver=\"{}\",channel=\"{}\",result=\"{result}\"}} {count}",
            escape_label(&receiver),
            escape_label(&channel)
        );
    }
    let (depth, oldest_ms) = n.queue_depth();
    sample(
        &mut o,
        "sysward_notification_queue_messages",
        "gauge",
        "Messages written and not yet delivered (waiting for a retry included).",
        depth,
    );
    sample(
        &mut o,
        "sysward_notification_queue_oldest_seconds",
        "gauge",
        "Age of the oldest undelivered message.",
        oldest_ms as f64 / 1000.0,
    );
    o
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once_with_help_and_type() {
        let m = ServerMetrics::default();
        m.batches_accepted.add(3);
        m.query
            .record("query", "bad_data", Duration::from_millis(250));
        m.query
            .record("query", "success", Duration::from_millis(750));
        m.query.refused("max_samples");
        m.query.refused("a_limit_of_tomorrow");
        let stats = StoreStats {
            series: 7,
            bytes: [10, 20, 30, 40, 50],
            cut_micros: 1_500_000,
            ..StoreStats::default()
        };
        let process = ProcessStats {
            resident_bytes: Some(4096),
            cpu_seconds: Some(1.25),
        };
        let text = render(&m, &stats, process);
        assert!(
            text.contains("sysward_server_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains("\nsysward_server_batches_accepted_total 3\n"));
        assert!(text.contains("\nsysward_server_series 7\n"));
        assert!(text.contains("\nsysward_server_store_bytes{tier=\"1mo\"} 50\n"));
        assert!(text.contains("\nsysward_server_store_cut_seconds_total 1.5\n"));
        assert!(text.contains("\nprocess_cpu_seconds_total 1.25\n"));
        assert!(text.contains(
            "\nsysward_server_queries_total{endpoint=\"query\",outcome=\"bad_data\"} 1\n"
        ));
        assert!(
            !text.contains("endpoint=\"query\",outcome=\"timeout\""),
            "zeros of errors are left out"
        );
        assert!(
            text.contains("\nsysward_server_query_duration_seconds_sum{endpoint=\"query\"} 1\n")
        );
        assert!(
            text.contains("\nsysward_server_query_duration_seconds_count{endpoint=\"query\"} 2\n")
        );
        assert!(text.contains("\nsysward_server_query_refusals_total{limit=\"max_samples\"} 1\n"));
        assert!(text.contains("\nsysward_server_query_refusals_total{limit=\"other\"} 1\n"));
        // Every sample line belongs to a family declared just before, declared once.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = declared.last().unwrap();
                let summary_part = [format!("{family}_sum"), format!("{family}_count")];
                assert!(
                    name == *family || summary_part.iter().any(|p| p == name),
                    "{line}"
                );
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn reads_proc_formats() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn live_process_figures_are_read() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.is_some_and(|b| b > 0));
        assert!(p.cpu_seconds.is_some());
    }
}
