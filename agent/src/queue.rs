//! Batches waiting to be sent. The shipper only sees [`BatchQueue`]; this file has the
//! bounded in-memory queue, and the disk spool will implement the same trait.
//!
//! Contract: `push` never blocks and never fails (past its bound a queue drops its oldest
//! batch and counts it, so fresh data always fits); `peek` gives the next batch without
//! removing it; only `ack` removes, so a batch leaves after the server has it.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use crate::metrics::AgentMetrics;

/// One encoded batch: the exact bytes that go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedBatch {
    pub(crate) seq: u64,
    /// gzip-compressed JSON, sent as is.
    pub(crate) body: Arc<Vec<u8>>,
}

pub(crate) trait BatchQueue: Send + Sync {
    fn push(&self, batch: QueuedBatch);
    fn peek(&self) -> Option<QueuedBatch>;
    fn ack(&self, seq: u64);
    fn len(&self) -> usize;
    /// Resolves after the next push.
    fn notified(&self) -> tokio::sync::futures::Notified<'_>;
}

pub(crate) struct MemoryQueue {
    items: Mutex<VecDeque<QueuedBatch>>,
    max: usize,
    notify: Notify,
    metrics: Arc<AgentMetrics>,
}

impl MemoryQueue {
    pub(crate) fn new(max: usize, metrics: Arc<AgentMetrics>) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            max: max.max(1),
            notify: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<QueuedBatch>> {
        // The deque is never left half-changed by a panic, so a poisoned lock is fine to use.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BatchQueue for MemoryQueue {
    fn push(&self, batch: QueuedBatch) {
        let mut items = self.lock();
        while items.len() >= self.max {
            items.pop_front();
            self.metrics.batches_dropped_queue_full.inc();
        }
        items.push_back(batch);
        self.metrics.batches_queued.set(items.len() as u64);
        drop(items);
        self.notify.notify_one();
    }

    fn peek(&self) -> Option<QueuedBatch> {
        self.lock().front().cloned()
    }

    fn ack(&self, seq: u64) {
        let mut items = self.lock();
        items.retain(|b| b.seq != seq);
        self.metrics.batches_queued.set(items.len() as u64);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn b(seq: u64) -> QueuedBatch {
        QueuedBatch {
            seq,
            body: Arc::new(vec![seq as u8]),
        }
    }

    #[test]
    fn drops_oldest_when_full() {
        let m = Arc::new(AgentMetrics::default());
        let q = MemoryQueue::new(2, m.clone());
        for s in 1..=3 {
            q.push(b(s));
        }
        assert_eq!(q.peek().map(|x| x.seq), Some(2));
        assert_eq!(m.batches_dropped_queue_full.get(), 1);
        q.ack(2);
        assert_eq!(q.peek().map(|x| x.seq), Some(3));
        assert_eq!(m.batches_queued.get(), 1);
    }

    proptest! {
        /// Against a model: the queue holds the newest `max` pushed and not acked, in order.
        #[test]
        fn matches_model(max in 1usize..8, ops in proptest::collection::vec(any::<bool>(), 0..64)) {
            let q = MemoryQueue::new(max, Arc::new(AgentMetrics::default()));
            let mut model: VecDeque<u64> = VecDeque::new();
            let mut next = 1;
            for push in ops {
                if push {
                    q.push(b(next));
                    model.push_back(next);
                    if model.len() > max { model.pop_front(); }
                    next += 1;
                } else if let Some(head) = q.peek() {
                    q.ack(head.seq);
                    prop_assert_eq!(model.pop_front(), Some(head.seq));
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.peek().map(|x| x.seq), model.front().copied());
            }
        }
    }
}
