//! Warnings that repeat are logged once per interval with a count, not once per event: a
//! full disk fails every request, a broken collector every run, and a warning each time
//! would fill the journal, or the very disk that is full. Shared by the agent and the
//! server.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Distinct messages remembered; past it the oldest is forgotten (and may log once more).
const MAX_KEYS: usize = 256;

/// How often one message is logged at most.
pub const INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

/// Decides which occurrences of a message to log.
#[derive(Debug, Default)]
pub struct RepeatLimiter {
    seen: Mutex<HashMap<String, Seen>>,
}

impl RepeatLimiter {
    /// Whether to log `message` now, and how many occurrences were left out since it was
    /// last logged.
    pub fn admit(&self, message: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seen.get_mut(message) {
            if now.duration_since(s.logged_at) < INTERVAL {
                s.suppressed += 1;
                return None;
            }
            let left_out = s.suppressed;
            *s = Seen {
                logged_at: now,
                suppressed: 0,
            };
            return Some(left_out);
        }
        if seen.len() >= MAX_KEYS
            && let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(
            message.to_string(),
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

/// One stream of log lines (a target's refusals, an exporter's failures) at most once
/// per [`INTERVAL`], whatever their text, with how many were held back.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|l| now.duration_since(l) < INTERVAL) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// The process's one limiter, for warnings whose text identifies them.
pub fn limiter() -> &'static RepeatLimiter {
    static LIMITER: std::sync::OnceLock<RepeatLimiter> = std::sync::OnceLock::new();
    LIMITER.get_or_init(RepeatLimiter::default)
}

#[doc(hidden)]
pub use tracing as __tracing;

/// `tracing::warn!` with an `error` field, at most once per [`INTERVAL`] for the same
/// message, fields and error, with the count of those left out. Fields before a `;` are
/// logged and tell occurrences apart: `warn_limited!(collector = name; error, "...")`.
#[macro_export]
macro_rules! warn_limited {
    ($error:expr, $message:literal) => {
        $crate::warn_limited!(; $error, $message)
    };
    ($($field:ident = $value:expr),* ; $error:expr, $message:literal) => {{
        let error = $error.to_string();
        $(let $field = $value;)*
        let key = format!(
            concat!($message $(, "\u{0}", stringify!($field), "={}")*, "\u{0}{}"),
            $($field,)* error
        );
        if let Some(repeated) = $crate::limiter().admit(&key, std::time::Instant::now()) {
            if repeated > 0 {
                $crate::__tracing::warn!(
                    $($field = %$field,)* %error, repeated,
                    concat!($message, " (repeated since last logged)")
                );
            } else {
                $crate::__tracing::warn!($($field = %$field,)* %error, $message);
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_logged_once_per_interval_with_the_count_left_out() {
        let l = RepeatLimiter::default();
        let t0 = Instant::now();
        assert_eq!(l.admit("disk full", t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(l.admit("disk full", t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(l.admit("other", t0), Some(0), "other messages are apart");
        assert_eq!(l.admit("disk full", t0 + INTERVAL), Some(1000));
        assert_eq!(
            l.admit("disk full", t0 + INTERVAL + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn the_macro_tells_occurrences_apart_by_fields_and_error() {
        warn_limited!(collector = "cpu-test"; "no /proc/stat", "Collector failed.");
        warn_limited!("disk full-test", "Group commit failed.");
        let now = Instant::now();
        // Both were admitted once under their keys; a repeat is left out.
        let l = limiter();
        assert_eq!(
            l.admit(
                "Collector failed.\u{0}collector=cpu-test\u{0}no /proc/stat",
                now
            ),
            None
        );
        assert_eq!(
            l.admit("Group commit failed.\u{0}disk full-test", now),
            None
        );
        // Another collector with the same error is another occurrence.
        assert_eq!(
            l.admit(
                "Collector failed.\u{0}collector=mem-test\u{0}no /proc/stat",
                now
            ),
            Some(0)
        );
    }

    #[test]
    fn the_throttle_logs_once_per_interval_and_counts_the_rest() {
        let mut t = Throttle::default();
        let now = Instant::now();
        assert_eq!(t.allow(now), Some(0));
        assert_eq!(t.allow(now + Duration::from_secs(1)), None);
        assert_eq!(t.allow(now + Duration::from_secs(2)), None);
        assert_eq!(t.allow(now + INTERVAL + Duration::from_secs(1)), Some(2));
    }

    #[test]
    fn the_memory_is_bounded() {
        let l = RepeatLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            l.admit(&format!("m{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_KEYS);
        // The newest are still remembered.
        assert_eq!(
            l.admit(
                &format!("m{}", MAX_KEYS * 3 - 1),
                t0 + Duration::from_secs(1)
            ),
            None
        );
    }
}
