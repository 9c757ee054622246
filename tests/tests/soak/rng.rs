//! The soak's faults are drawn from one seeded generator, so that the seed a failing run
//! prints replays the same decisions (the timing of the machine still varies).

use std::time::Duration;

use rand::{
    Rng as _, SeedableRng,
    distr::{Distribution, weighted::WeightedIndex},
    rngs::StdRng,
};

pub(crate) struct Rng(StdRng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }

    /// A duration uniform in `lo_ms..=hi_ms` milliseconds.
    pub(crate) fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.0.random_range(lo_ms..=hi_ms))
    }

    /// An index drawn with the given weights (not all zero).
    pub(crate) fn weighted(&mut self, weights: &[u64]) -> usize {
        WeightedIndex::new(weights).map_or(0, |w| w.sample(&mut self.0))
    }

    /// A generator of its own for a thread, derived from this one and `salt`.
    pub(crate) fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.0.random::<u64>() ^ salt)
    }
}
