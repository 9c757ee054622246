//! Batches waiting to be sent. The shipper only sees [`BatchQueue`]; the disk spool
//! (`crate::spool`) is the real one, and this file has a bounded in-memory queue for
//! `[buffer] kind = "memory"`.
//!
//! Contract: `push` never blocks and never fails (past its bound a queue drops its oldest
//! batch and counts it, so fresh data always fits); `next` names the batch to send now
//! without removing it; only `ack` removes, so a batch leaves after the server has it.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use crate::metrics::AgentMetrics;

/// A batch handed to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// The batch's seq, as the server will ack it.
    pub seq: u64,
    /// Check results or the critical tier: sent before the rest.
    pub priority: bool,
    pub created_ms: i64,
    /// gzip-compressed JSON, sent as is.
    pub body: Vec<u8>,
}

/// A batch to send: the exact bytes that go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBatch {
    /// The queue's own id for it; what `ack` takes.
    pub id: u64,
    /// The batch's seq, as the server acks it.
    pub seq: u64,
    /// When the batch was made, Unix milliseconds.
    pub created_ms: i64,
    /// gzip-compressed JSON, sent as is.
    pub body: Arc<Vec<u8>>,
}

/// What to do next.
#[derive(Debug)]
pub enum Next {
    /// Send this one.
    Ready(QueuedBatch),
    /// Batches wait, but none may go yet (backfill rate); ask again after this.
    Wait(std::time::Duration),
    /// Nothing waits.
    Empty,
}

/// Where batches wait between the batcher and the shipper (see the module doc).
pub trait BatchQueue: Send + Sync {
    /// Takes a batch; never blocks, never fails.
    fn push(&self, batch: NewBatch);
    /// The batch to send now, if any; it stays queued until acked.
    fn next(&self) -> Next;
    /// Removes a batch the server has.
    fn ack(&self, id: u64);
    /// Batches waiting.
    fn len(&self) -> usize;
    /// Whether none waits.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Resolves after the next push.
    fn notified(&self) -> tokio::sync::futures::Notified<'_>;
}

/// A bounded queue in memory, for `[buffer] kind = "memory"`.
pub struct MemoryQueue {
    items: Mutex<(VecDeque<QueuedBatch>, u64)>,
    max: usize,
    notify: Notify,
    metrics: Arc<AgentMetrics>,
}

impl MemoryQueue {
    /// Holds at most `max` batches; past that the oldest goes, counted.
    pub fn new(max: usize, metrics: Arc<AgentMetrics>) -> Self {
        Self {
            items: Mutex::new((VecDeque::new(), 1)),
            max: max.max(1),
            notify: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, (VecDeque<QueuedBatch>, u64)> {
        // The deque is never left half-changed by a panic, so a poisoned lock is fine to use.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BatchQueue for MemoryQueue {
    fn push(&self, batch: NewBatch) {
        let mut guard = self.lock();
        let (items, next_id) = &mut *guard;
        while items.len() >= self.max {
            items.pop_front();
            self.metrics.batches_dropped_queue_full.inc();
        }
        items.push_back(QueuedBatch {
            id: *next_id,
            seq: batch.seq,
            created_ms: batch.created_ms,
            body: Arc::new(batch.body),
        });
        *next_id += 1;
        self.metrics.batches_queued.set(items.len() as u64);
        drop(guard);
        self.notify.notify_one();
    }

    fn next(&self) -> Next {
        match self.lock().0.front() {
            Some(b) => Next::Ready(b.clone()),
            None => Next::Empty,
        }
    }

    fn ack(&self, id: u64) {
        let mut guard = self.lock();
        guard.0.retain(|b| b.id != id);
        self.metrics.batches_queued.set(guard.0.len() as u64);
    }

    fn len(&self) -> usize {
        self.lock().0.len()
    }

    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn b(seq: u64) -> NewBatch {
        NewBatch {
            seq,
            priority: false,
            created_ms: 0,
            body: vec![seq as u8],
        }
    }

    fn head(q: &MemoryQueue) -> Option<QueuedBatch> {
        match q.next() {
            Next::Ready(b) => Some(b),
            _ => None,
        }
    }

    #[test]
    fn drops_oldest_when_full() {
        let m = Arc::new(AgentMetrics::default());
        let q = MemoryQueue::new(2, m.clone());
        for s in 1..=3 {
            q.push(b(s));
        }
        assert_eq!(head(&q).map(|x| x.seq), Some(2));
        assert_eq!(m.batches_dropped_queue_full.get(), 1);
        q.ack(head(&q).unwrap().id);
        assert_eq!(head(&q).map(|x| x.seq), Some(3));
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
                } else if let Some(h) = head(&q) {
                    q.ack(h.id);
                    prop_assert_eq!(model.pop_front(), Some(h.seq));
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(head(&q).map(|x| x.seq), model.front().copied());
            }
        }
    }
}
