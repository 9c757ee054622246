//! The in-memory series index: identity lookup and postings.
//!
//! Every label name and value is interned once ([`Sym`]); a series is its name and sorted
//! label pairs as symbols. Postings map `label → value → sorted series ids`, with the metric
//! name under `__name__`, so that `=` is one lookup, `=~` a scan of one label's values (not
//! of the series), and `!=`/`!~` a filter of the candidates the positive matchers left.
//! Ids come from SQLite's rowids and only grow, so appending keeps every posting sorted.
//!
//! The index is rebuilt from the `series` table on start; it is never the only copy.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{Hash, Hasher},
    sync::Arc,
};

use super::{LabelMatcher, MatchOp, NAME_LABEL, SeriesKind, SeriesLabels};

/// An interned string.
pub(crate) type Sym = u32;

#[derive(Debug, Default)]
struct Symbols {
    ids: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

impl Symbols {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as Sym;
        let arc: Arc<str> = Arc::from(s);
        self.strings.push(arc.clone());
        self.ids.insert(arc, id);
        id
    }

    fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    fn str(&self, id: Sym) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }
}

/// One series as the index keeps it.
#[derive(Debug, Clone)]
pub(crate) struct SeriesEntry {
    pub(crate) name: Sym,
    /// Sorted by label name.
    pub(crate) labels: Box<[(Sym, Sym)]>,
    pub(crate) kind: SeriesKind,
}

/// Series identity → id, and postings.
#[derive(Debug, Default)]
pub(crate) struct Index {
    symbols: Symbols,
    series: HashMap<u32, SeriesEntry>,
    /// Hash of (name, labels) → ids with that hash (almost always one).
    by_hash: HashMap<u64, Vec<u32>>,
    postings: HashMap<Sym, HashMap<Sym, Vec<u32>>>,
    per_agent: HashMap<i64, usize>,
}

/// FNV-1a: fast on short strings, and identity hashes need no DoS resistance here because
/// every candidate is compared in full.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The identity hash of a series: name and sorted labels.
pub(crate) fn identity_hash(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    name.hash(&mut h);
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

/// A second identity hash, independent of [`identity_hash`] (SipHash with fixed keys), for
/// caches that compare hashes instead of labels (see `tiered.rs`'s `LayoutEntry`).
pub(crate) fn check_hash(name: &str, labels: &[(&str, &str)]) -> u64 {
    // `DefaultHasher::new()` always starts from the same keys: equal input, equal hash.
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl Index {
    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// Series of one agent.
    pub(crate) fn agent_series(&self, agent: i64) -> usize {
        self.per_agent.get(&agent).copied().unwrap_or(0)
    }

    /// The id of a series, if known. `labels` must be sorted by name.
    pub(crate) fn find(&self, hash: u64, name: &str, labels: &[(&str, &str)]) -> Option<u32> {
        self.by_hash.get(&hash)?.iter().copied().find(|id| {
            self.series.get(id).is_some_and(|e| {
                self.symbols.str(e.name) == name
                    && e.labels.len() == labels.len()
                    && e.labels.iter().zip(labels).all(|(&(k, v), &(k2, v2))| {
                        self.symbols.str(k) == k2 && self.symbols.str(v) == v2
                    })
            })
        })
    }

    /// Adds a series under its id. `labels` must be sorted by name.
    pub(crate) fn insert(
        &mut self,
        id: u32,
        name: &str,
        labels: &[(&str, &str)],
        kind: SeriesKind,
        agent: i64,
    ) {
        if self.series.contains_key(&id) {
            return;
        }
        let hash = identity_hash(name, labels);
        let name_sym = self.symbols.intern(name);
        let label_syms: Box<[(Sym, Sym)]> = labels
            .iter()
            .map(|(k, v)| (self.symbols.intern(k), self.symbols.intern(v)))
            .collect();
        let name_label = self.symbols.intern(NAME_LABEL);
        for &(k, v) in std::iter::once(&(name_label, name_sym)).chain(label_syms.iter()) {
            let list = self.postings.entry(k).or_default().entry(v).or_default();
            // Ids normally arrive in order; a rebuild from an unordered scan still sorts.
            if list.last().is_some_and(|&last| last > id) {
                let at = list.partition_point(|&x| x < id);
                list.insert(at, id);
            } else {
                list.push(id);
            }
        }
        self.by_hash.entry(hash).or_default().push(id);
        *self.per_agent.entry(agent).or_default() += 1;
        self.series.insert(
            id,
            SeriesEntry {
                name: name_sym,
                labels: label_syms,
                kind,
            },
        );
    }

    pub(crate) fn entry(&self, id: u32) -> Option<&SeriesEntry> {
        self.series.get(&id)
    }

    /// The labels of a series as strings.
    pub(crate) fn labels(&self, id: u32) -> Option<SeriesLabels> {
        let e = self.series.get(&id)?;
        Some(SeriesLabels {
            name: self.symbols.str(e.name).to_string(),
            labels: e
                .labels
                .iter()
                .map(|&(k, v)| {
                    (
                        self.symbols.str(k).to_string(),
                        self.symbols.str(v).to_string(),
                    )
                })
                .collect(),
        })
    }

    /// Every label name in use, sorted (with `__name__`).
    pub(crate) fn label_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .postings
            .keys()
            .map(|&k| self.symbols.str(k).to_string())
            .collect();
        out.sort();
        out
    }

    /// Every value of one label, sorted.
    pub(crate) fn label_values(&self, label: &str) -> Vec<String> {
        let Some(values) = self.symbols.get(label).and_then(|k| self.postings.get(&k)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = values
            .keys()
            .map(|&v| self.symbols.str(v).to_string())
            .collect();
        out.sort();
        out
    }

    fn label_value(&self, e: &SeriesEntry, label: Sym, name_label: Option<Sym>) -> Sym {
        if Some(label) == name_label {
            return e.name;
        }
        // Labels are sorted by name *string*; symbol ids follow first use, not that
        // order, so a binary search by id misses labels interned after a later name.
        e.labels
            .iter()
            .find(|&&(k, _)| k == label)
            .map_or(Sym::MAX, |&(_, v)| v)
    }

    /// The sorted ids of series that match every matcher.
    /// Series matching every matcher of at least one selector: sorted, each once.
    pub(crate) fn select_any(&self, selectors: &[Vec<LabelMatcher>]) -> Vec<u32> {
        let mut ids: Vec<u32> = selectors.iter().flat_map(|s| self.select(s)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub(crate) fn select(&self, matchers: &[LabelMatcher]) -> Vec<u32> {
        // Matchers that pick a set from postings narrow the candidates; the others (which
        // also match series *without* the label) filter what is left.
        let mut candidates: Option<Vec<u32>> = None;
        let mut filters = Vec::new();
        let mut ordered: Vec<&LabelMatcher> = matchers.iter().collect();
        // Equality first: one lookup, usually the most selective.
        ordered.sort_by_key(|m| match m.op {
            MatchOp::Eq => 0,
            MatchOp::Re => 1,
            _ => 2,
        });
        for m in ordered {
            if m.matches_empty() {
                filters.push(m);
                continue;
            }
            let set = self.positive_set(m);
            candidates = Some(match candidates {
                None => set,
                Some(c) => intersect(&c, &set),
            });
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut ids = candidates.unwrap_or_else(|| {
            let mut all: Vec<u32> = self.series.keys().copied().collect();
            all.sort_unstable();
            all
        });
        if filters.is_empty() {
            return ids;
        }
        let name_label = self.symbols.get(NAME_LABEL);
        for m in filters {
            let Some(label) = self.symbols.get(&m.label) else {
                // No series has the label: all of them see "", which these matchers accept.
                continue;
            };
            let mut memo: HashMap<Sym, bool> = HashMap::new();
            ids.retain(|id| {
                let Some(e) = self.series.get(id) else {
                    return false;
                };
                let v = self.label_value(e, label, name_label);
                match memo.entry(v) {
                    Entry::Occupied(o) => *o.get(),
                    Entry::Vacant(slot) => {
                        let s = if v == Sym::MAX {
                            ""
                        } else {
                            self.symbols.str(v)
                        };
                        *slot.insert(m.matches(s))
                    }
                }
            });
        }
        ids
    }

    /// Series whose label matches `m`, for a matcher that does not match the empty value.
    fn positive_set(&self, m: &LabelMatcher) -> Vec<u32> {
        let Some(values) = self
            .symbols
            .get(&m.label)
            .and_then(|k| self.postings.get(&k))
        else {
            return Vec::new();
        };
        match m.op {
            MatchOp::Eq => self
                .symbols
                .get(&m.value)
                .and_then(|v| values.get(&v))
                .cloned()
                .unwrap_or_default(),
            _ => {
                let mut lists: Vec<&Vec<u32>> = values
                    .iter()
                    .filter(|&(&v, _)| m.matches(self.symbols.str(v)))
                    .map(|(_, ids)| ids)
                    .collect();
                match lists.len() {
                    0 => Vec::new(),
                    1 => lists.pop().cloned().unwrap_or_default(),
                    _ => {
                        let mut all: Vec<u32> = lists.into_iter().flatten().copied().collect();
                        // A series has one value per label, so the lists are disjoint.
                        all.sort_unstable();
                        all
                    }
                }
            }
        }
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    // Binary search the large list when sizes differ a lot; merge otherwise.
    if small.len() * 16 < large.len() {
        return small
            .iter()
            .copied()
            .filter(|x| large.binary_search(x).is_ok())
            .collect();
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(small.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn brute(all: &[(u32, SeriesLabels)], matchers: &[LabelMatcher]) -> Vec<u32> {
        all.iter()
            .filter(|(_, s)| {
                matchers.iter().all(|m| {
                    let v = if m.label == NAME_LABEL {
                        s.name.as_str()
                    } else {
                        s.labels.get(&m.label).map_or("", String::as_str)
                    };
                    m.matches(v)
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    #[test]
    fn matchers_equal_brute_force_on_many_series() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut index = Index::default();
        let mut all = Vec::new();
        let names = [
            "node_cpu_seconds_total",
            "node_load1",
            "node_memory_MemFree_bytes",
        ];
        let modes = ["user", "system", "idle", "iowait", "steal"];
        for id in 1..=300_000u32 {
            let name = names[rng.random_range(0..names.len())];
            let mut labels = BTreeMap::new();
            labels.insert(
                "instance".to_string(),
                format!("host-{}", rng.random_range(0..2000)),
            );
            if rng.random_bool(0.7) {
                labels.insert("cpu".to_string(), rng.random_range(0..64).to_string());
            }
            if rng.random_bool(0.5) {
                labels.insert(
                    "mode".to_string(),
                    modes[rng.random_range(0..modes.len())].into(),
                );
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            index.insert(id, name, &pairs, SeriesKind::Gauge, i64::from(id % 100));
            all.push((
                id,
                SeriesLabels {
                    name: name.into(),
                    labels,
                },
            ));
        }
        let m = |label: &str, op, value: &str| LabelMatcher::new(label, op, value).unwrap();
        let cases = vec![
            vec![m(NAME_LABEL, MatchOp::Eq, "node_cpu_seconds_total")],
            vec![
                m(NAME_LABEL, MatchOp::Eq, "node_cpu_seconds_total"),
                m("mode", MatchOp::Eq, "idle"),
            ],
            vec![
                m(NAME_LABEL, MatchOp::Eq, "node_load1"),
                m("mode", MatchOp::Ne, "idle"),
            ],
            vec![
                m(NAME_LABEL, MatchOp::Re, "node_(cpu|load).*"),
                m("cpu", MatchOp::Re, "1."),
            ],
            vec![
                m(NAME_LABEL, MatchOp::Eq, "node_load1"),
                m("cpu", MatchOp::Nre, "[0-3]"),
            ],
            vec![
                m(NAME_LABEL, MatchOp::Eq, "node_load1"),
                m("mode", MatchOp::Eq, ""),
            ],
            vec![
                m(NAME_LABEL, MatchOp::Eq, "node_load1"),
                m("mode", MatchOp::Re, "idle|"),
            ],
            vec![
                m("instance", MatchOp::Eq, "host-5"),
                m("absent", MatchOp::Ne, "x"),
            ],
            vec![
                m("instance", MatchOp::Re, "host-1.*"),
                m("cpu", MatchOp::Eq, "7"),
                m("mode", MatchOp::Nre, "user|system"),
            ],
            vec![m(NAME_LABEL, MatchOp::Eq, "nope")],
            vec![m("absent", MatchOp::Eq, "")],
        ];
        for matchers in cases {
            let got = index.select(&matchers);
            let want = brute(&all, &matchers);
            assert_eq!(got, want, "{matchers:?}");
        }
        assert_eq!(index.len(), 300_000);
        assert!(index.label_names().contains(&"mode".to_string()));
        assert_eq!(index.label_values("mode").len(), modes.len());
    }

    /// A label name first seen after a name that sorts after it (`device` after
    /// `instance`) has a larger symbol id than its place among a series' labels: negative
    /// matchers on it must still see its value (they ignored it, found by the differential
    /// test against Prometheus: `{device!="lo"}` kept `lo`).
    #[test]
    fn negative_matchers_see_labels_named_after_later_ones() {
        let mut index = Index::default();
        index.insert(
            1,
            "a",
            &[("instance", "h"), ("mode", "x")],
            SeriesKind::Gauge,
            1,
        );
        index.insert(
            2,
            "b",
            &[("device", "lo"), ("instance", "h")],
            SeriesKind::Gauge,
            1,
        );
        index.insert(
            3,
            "b",
            &[("device", "eth0"), ("instance", "h")],
            SeriesKind::Gauge,
            1,
        );
        let m = |label: &str, op, value: &str| LabelMatcher::new(label, op, value).unwrap();
        for op in [MatchOp::Ne, MatchOp::Nre] {
            let got = index.select(&[m(NAME_LABEL, MatchOp::Eq, "b"), m("device", op, "lo")]);
            assert_eq!(got, [3], "{op:?}");
        }
    }

    #[test]
    fn find_after_insert() {
        let mut index = Index::default();
        let labels = [("a", "1"), ("b", "2")];
        index.insert(5, "m", &labels, SeriesKind::Counter, 1);
        let h = identity_hash("m", &labels);
        assert_eq!(index.find(h, "m", &labels), Some(5));
        assert_eq!(index.find(h, "m", &[("a", "1")]), None);
        assert_eq!(index.agent_series(1), 1);
        assert_eq!(index.labels(5).unwrap().labels["b"], "2");
    }
}
