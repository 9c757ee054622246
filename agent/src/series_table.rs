//! Finds which series of a batch a sample belongs to, in one pass and without sorting.
//!
//! The batcher used to sort a tick's samples by name and labels to merge the points of a
//! series read twice. That compared hundreds of strings with long common prefixes
//! (`node_netstat_...`) per tick, about a tenth of the agent's CPU. Here each sample's
//! identity is hashed once and looked up in an open-addressing table of series indices;
//! a hit is confirmed by comparing the strings, so a hash collision costs a comparison
//! and never merges two series. Series keep the order in which they first appear, which
//! is the collectors' order: similar names stay together, which deflate likes.

/// An empty slot.
const EMPTY: u32 = u32::MAX;

/// A hash set of series identities, by index into the caller's list of series. Kept
/// between batches so that its table is allocated once.
#[derive(Debug, Default)]
pub(crate) struct SeriesTable {
    slots: Vec<u32>,
    hashes: Vec<u64>,
}

impl SeriesTable {
    /// Empties the table and sizes it for up to `n` series.
    pub(crate) fn reset(&mut self, n: usize) {
        // At most half full, so that probe runs stay short.
        let size = (n.max(4) * 2).next_power_of_two();
        self.slots.clear();
        self.slots.resize(size, EMPTY);
        self.hashes.clear();
    }

    /// The index of the series with this identity, or `None` after recording that the
    /// next index (`len` of the caller's list, which it must then push) is this identity.
    /// `same(i)` tells whether the caller's series `i` has the identity.
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        same: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.hashes.len() * 2 >= self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                // Indices fit in u32: a batch is capped far below 4 billion series.
                self.slots[at] = self.hashes.len() as u32;
                self.hashes.push(hash);
                return None;
            }
            let index = slot as usize;
            if self.hashes[index] == hash && same(index) {
                return Some(index);
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len().max(4) * 2;
        self.slots.clear();
        self.slots.resize(size, EMPTY);
        let mask = size - 1;
        for (index, hash) in self.hashes.iter().enumerate() {
            let mut at = *hash as usize & mask;
            while self.slots[at] != EMPTY {
                at = (at + 1) & mask;
            }
            self.slots[at] = index as u32;
        }
    }
}

/// A series identity's hash: its name and label pairs, each string length-prefixed so
/// that moving a character from one string to the next changes the input. Not
/// resistant to chosen collisions, and it need not be: the names and labels come from
/// the agent's own collectors and config, and a collision only costs a comparison.
pub(crate) fn identity_hash<'a>(
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_str(name);
    for (label, value) in labels {
        hasher.write_str(label);
        hasher.write_str(value);
    }
    hasher.finish()
}

/// The multiply-rotate hash of rustc's `FxHasher`, eight bytes at a time: a few cycles
/// per word, where SipHash takes a few per byte.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }

    fn write_str(&mut self, s: &str) {
        self.add(s.len() as u64);
        let mut chunks = s.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        // The low bits pick the slot; fold the better-mixed high bits into them.
        self.hash ^ (self.hash >> 29)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Looks `keys` up in order in a table sized for `hint`, as the batcher does with
    /// series names, and returns the index each one got.
    fn indices(keys: &[String], hint: usize, hash: impl Fn(&str) -> u64) -> Vec<usize> {
        let mut table = SeriesTable::default();
        table.reset(hint);
        let mut distinct: Vec<&str> = Vec::new();
        keys.iter()
            .map(
                |key| match table.find_or_insert(hash(key), |i| distinct[i] == key.as_str()) {
                    Some(i) => i,
                    None => {
                        distinct.push(key);
                        distinct.len() - 1
                    }
                },
            )
            .collect()
    }

    /// What `indices` must give: the position of each key's first appearance among the
    /// distinct keys.
    fn model(keys: &[String]) -> Vec<usize> {
        let mut distinct: Vec<&String> = Vec::new();
        keys.iter()
            .map(|key| match distinct.iter().position(|d| *d == key) {
                Some(i) => i,
                None => {
                    distinct.push(key);
                    distinct.len() - 1
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn finds_each_identity_once_even_when_every_hash_collides(
            keys in proptest::collection::vec("[a-c]{0,3}", 0..200),
            hint in 0usize..300,
        ) {
            let real = |k: &str| identity_hash(k, std::iter::empty());
            prop_assert_eq!(indices(&keys, hint, real), model(&keys));
            // Every key on one hash: only the comparison tells them apart.
            prop_assert_eq!(indices(&keys, hint, |_| 7), model(&keys));
        }
    }

    #[test]
    fn the_hash_tells_where_one_string_ends() {
        let pairs = |a: &'static str, b: &'static str| identity_hash("m", [(a, b)].into_iter());
        assert_ne!(pairs("ab", "c"), pairs("a", "bc"));
        assert_ne!(
            identity_hash("node_cpu_seconds_total", [("cpu", "0")].into_iter()),
            identity_hash("node_cpu_seconds_total", [("cpu", "1")].into_iter())
        );
    }
}
