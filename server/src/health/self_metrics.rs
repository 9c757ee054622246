//! The server's `/metrics` written into its own store, so that the shipped rules
//! (`server.yml`) alert on the server's health and dashboards show it without a second
//! Prometheus scraping it.

use std::collections::BTreeMap;

use sysward_proto::{Series, SeriesKind};

use crate::store::{IngestBatch, Store, StoreError};

/// The `agent_id` of the server's own series (agent ids are 32 hex digits, so it cannot
/// collide with an agent's).
pub const SELF_AGENT_ID: &str = "sysward-server";

/// Stores every finite sample of `text` (Prometheus' text format) at `now_ms`, under
/// [`SELF_AGENT_ID`] and `instance`. Returns how many samples were written.
pub fn write_self_metrics(
    store: &dyn Store,
    text: &str,
    instance: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let parsed = sysward_wire::textfmt::parse_exposition(text);
    let series: Vec<Series> = parsed
        .samples
        .into_iter()
        .filter(|s| s.value.is_finite())
        .map(|s| Series {
            name: s.name,
            labels: s.labels.into_iter().collect::<BTreeMap<_, _>>(),
            kind: if s.counter {
                SeriesKind::Counter
            } else {
                SeriesKind::Gauge
            },
            points: vec![(now_ms, s.value)],
        })
        .collect();
    // A server-written batch: no boot id, no identity kept, never de-duplicated.
    store.ingest(&IngestBatch {
        agent_id: SELF_AGENT_ID,
        boot_id: "",
        seq: 0,
        instance,
        series: &series,
        events: &[],
    })?;
    Ok(series.len())
}
