//! Nagios' soft and hard states: a non-OK result becomes hard only after `max_attempts`
//! consecutive non-OK results; a change between non-OK states while hard stays hard; OK
//! is always hard and resets the count.

use sysward_collectors::CheckState;

/// Tracks one check's consecutive non-OK results.
#[derive(Debug, Clone)]
pub struct StateTracker {
    max_attempts: u32,
    attempt: u32,
}

impl StateTracker {
    /// `max_attempts` of at least 1; 1 makes every state hard at once.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            attempt: 0,
        }
    }

    /// Records a result; returns (hard, attempt).
    pub fn record(&mut self, state: CheckState) -> (bool, u32) {
        if state == CheckState::Ok {
            self.attempt = 0;
            return (true, 0);
        }
        self.attempt = self.attempt.saturating_add(1).min(self.max_attempts);
        (self.attempt >= self.max_attempts, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_then_hard_then_reset() {
        let mut t = StateTracker::new(3);
        assert_eq!(t.record(CheckState::Critical), (false, 1));
        assert_eq!(t.record(CheckState::Warning), (false, 2));
        assert_eq!(t.record(CheckState::Critical), (true, 3));
        assert_eq!(t.record(CheckState::Critical), (true, 3));
        assert_eq!(t.record(CheckState::Ok), (true, 0));
        assert_eq!(t.record(CheckState::Unknown), (false, 1));
        let mut once = StateTracker::new(1);
        assert_eq!(once.record(CheckState::Warning), (true, 1));
    }
}
