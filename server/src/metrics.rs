//! The server's own counters, kept as atomics so that handlers never wait on them.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct ServerMetrics {
    pub(crate) batches_accepted: Counter,
    pub(crate) batches_duplicate: Counter,
    pub(crate) batches_refused: Counter,
    pub(crate) samples_ingested: Counter,
}
