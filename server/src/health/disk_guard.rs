//! Refusing ingest before the disk is full: below `[storage] min_free` on the data
//! directory's file system the server answers 503 with `Retry-After`, so agents keep their
//! batches in their spools, and SQLite never meets a full disk in the middle of a commit.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::DiskSpace;

/// How long one reading of the free space is trusted: a statvfs per request would be cheap,
/// but a burst of requests needs only one.
const READING_TTL: Duration = Duration::from_secs(1);

/// The free-space check before each ingest.
#[derive(Debug)]
pub struct DiskGuard {
    path: PathBuf,
    min_free_bytes: u64,
    last: Mutex<Option<(Instant, u64)>>,
    refused: AtomicU64,
}

/// Ingest refused: what is free and what the reserve is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowSpace {
    pub available_bytes: u64,
    pub min_free_bytes: u64,
}

impl DiskGuard {
    pub fn new(path: PathBuf, min_free_bytes: u64) -> Self {
        Self {
            path,
            min_free_bytes,
            last: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    /// `Err` when ingest must wait for space; a file system that cannot be read lets
    /// ingest through (the store's own errors still answer 503).
    pub fn check(&self) -> Result<(), LowSpace> {
        let Some(available_bytes) = self.available(Instant::now()) else {
            return Ok(());
        };
        if available_bytes >= self.min_free_bytes {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(LowSpace {
            available_bytes,
            min_free_bytes: self.min_free_bytes,
        })
    }

    fn available(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, bytes)) = *last
            && now.duration_since(at) < READING_TTL
        {
            return Some(bytes);
        }
        let bytes = DiskSpace::read(&self.path)?.available_bytes;
        *last = Some((now, bytes));
        Some(bytes)
    }

    /// Requests refused for space since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_counts() {
        let guard = DiskGuard::new("/".into(), u64::MAX);
        let low = guard.check().unwrap_err();
        assert_eq!(low.min_free_bytes, u64::MAX);
        assert!(guard.check().is_err());
        assert_eq!(guard.refused(), 2);
        let open = DiskGuard::new("/".into(), 0);
        assert_eq!(open.check(), Ok(()));
        assert_eq!(open.refused(), 0);
    }

    #[test]
    fn an_unreadable_path_lets_ingest_through() {
        let guard = DiskGuard::new("/nonexistent/sysward".into(), u64::MAX);
        assert_eq!(guard.check(), Ok(()));
    }
}
