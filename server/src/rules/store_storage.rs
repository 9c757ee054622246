//! Rules on the server's store: reads through the query engine's snapshot, writes recording
//! rules' results, `ALERTS` and `up` as server-written batches (no batch identity), so they
//! are kept, rolled up and queried as every other series.

use std::{collections::BTreeMap, sync::Arc};

use sysward_proto::{Series, SeriesKind};

use super::RuleStorage;
use crate::{
    query::{Labels, QuerySource, StoreSource},
    store::{EventQuery, IngestBatch, NAME_LABEL, Store},
};

pub struct StoreStorage {
    store: Arc<dyn Store>,
    source: StoreSource,
}

impl StoreStorage {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            source: StoreSource(store.clone()),
            store,
        }
    }
}

impl RuleStorage for StoreStorage {
    fn source(&self) -> &dyn QuerySource {
        &self.source
    }

    fn append(&mut self, time_ms: i64, samples: &[(Labels, f64)]) -> Result<(), String> {
        // The store keeps `agent_id` and `instance` as the batch's: one batch per pair, so
        // a rule's output keeps the host labels of the series it came from.
        let mut batches: BTreeMap<(String, String), Vec<Series>> = BTreeMap::new();
        for (labels, value) in samples {
            let mut rest = BTreeMap::new();
            for (k, v) in labels.pairs() {
                if !matches!(k.as_str(), NAME_LABEL | "agent_id" | "instance") {
                    rest.insert(k.clone(), v.clone());
                }
            }
            let key = (
                labels.get("agent_id").to_string(),
                labels.get("instance").to_string(),
            );
            batches.entry(key).or_default().push(Series {
                name: labels.name().to_string(),
                labels: rest,
                kind: SeriesKind::Gauge,
                points: vec![(time_ms, *value)],
            });
        }
        // Server-written batches: an empty boot id, no identity kept.
        let prepared: Vec<IngestBatch<'_>> = batches
            .iter()
            .map(|((agent_id, instance), series)| IngestBatch {
                agent_id,
                boot_id: "",
                seq: 0,
                instance,
                series,
                events: &[],
            })
            .collect();
        self.store
            .ingest_many(&prepared)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn check_output(&self, agent_id: &str, check: &str) -> Option<String> {
        // The newest kept result of this one check (an index lookup).
        let query = EventQuery {
            agent_id: Some(agent_id.to_string()),
            check: Some(check.to_string()),
            since_ms: 0,
            until_ms: None,
            limit: 1,
        };
        let events = self.store.events(&query).ok()?;
        events.into_iter().next().map(|e| e.output)
    }
}
