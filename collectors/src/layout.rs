//! What each field of a file became last run, by its place in the file.
//!
//! `/proc/meminfo`, `/proc/vmstat` and the SNMP counter files list the same fields in the
//! same order on every read; only a kernel upgrade or a module load changes them. A
//! collector that names, filters (a regular expression) and de-duplicates every field on
//! every run spends most of its time on that, for the same answers. A [`Layout`] keeps
//! the answer per place: a field whose key matches the key at its place last run costs a
//! comparison, and the first that differs is chosen afresh, along with every later one.

use std::collections::HashSet;

use crate::Kind;

/// The verdicts on a file's fields, by place, kept from run to run.
#[derive(Debug)]
pub(crate) struct Layout<K, V> {
    entries: Vec<(K, V)>,
    at: usize,
    changed: bool,
}

impl<K, V> Default for Layout<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            at: 0,
            changed: false,
        }
    }
}

impl<K, V> Layout<K, V> {
    /// Starts a run over the file's fields.
    pub(crate) fn start(&mut self) {
        self.at = 0;
        self.changed = false;
    }

    /// The verdict on the next field: last run's at this place if `same` says its key
    /// is this field's, else the key and verdict `choose` makes.
    pub(crate) fn next(
        &mut self,
        same: impl FnOnce(&K) -> bool,
        choose: impl FnOnce() -> (K, V),
    ) -> &mut V {
        let at = self.at;
        self.at += 1;
        if self.entries.get(at).is_none_or(|(key, _)| !same(key)) {
            self.entries.truncate(at);
            self.entries.push(choose());
            self.changed = true;
        }
        &mut self.entries[at].1
    }

    /// Ends the run: drops the places past its last field, and tells whether anything
    /// differed from last run (then whatever depends on the fields together, such as
    /// duplicates, needs working out again).
    pub(crate) fn finish(&mut self) -> bool {
        if self.entries.len() != self.at {
            self.entries.truncate(self.at);
            self.changed = true;
        }
        self.changed
    }

    /// The keys and verdicts, in place order.
    pub(crate) fn entries(&self) -> std::slice::Iter<'_, (K, V)> {
        self.entries.iter()
    }
}

/// What one field of a file becomes: the verdict the collectors keep per place.
#[derive(Debug)]
pub(crate) enum Field {
    /// Left out by the filter.
    Skip,
    /// Sent under this name, unless an earlier place sends the same name
    /// ([`Layout::mark_duplicates`]): that would be a duplicate series.
    Send {
        name: String,
        kind: Kind,
        duplicate: bool,
    },
    /// Chosen, but it makes no valid metric name.
    Invalid,
}

impl Field {
    /// Sent under `name`, as a `kind`.
    pub(crate) fn send(name: String, kind: Kind) -> Self {
        Field::Send {
            name,
            kind,
            duplicate: false,
        }
    }
}

impl<K> Layout<K, Field> {
    /// Marks each place whose name an earlier place sends already. For after
    /// [`Layout::finish`] tells of a change; the marks stand while the layout does.
    pub(crate) fn mark_duplicates(&mut self) {
        let mut sent = HashSet::new();
        for (_, field) in &mut self.entries {
            if let Field::Send {
                name, duplicate, ..
            } = field
            {
                *duplicate = !sent.insert(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the runs, each verdict is the one its key would get afresh, and
        /// `choose` runs only for keys that moved.
        #[test]
        fn verdicts_are_those_of_a_fresh_choice(
            runs in proptest::collection::vec(proptest::collection::vec("[a-c]", 0..6), 1..6),
        ) {
            let mut layout = Layout::<String, String>::default();
            let mut previous: Vec<String> = Vec::new();
            for keys in &runs {
                layout.start();
                let mut chosen = 0;
                for key in keys {
                    let verdict = layout
                        .next(|k| k == key, || {
                            chosen += 1;
                            (key.clone(), key.to_uppercase())
                        })
                        .clone();
                    prop_assert_eq!(verdict, key.to_uppercase());
                }
                let changed = layout.finish();
                prop_assert_eq!(changed, *keys != previous);
                let common = keys.iter().zip(&previous).take_while(|(a, b)| a == b).count();
                prop_assert_eq!(chosen, keys.len() - common);
                let all: Vec<String> = layout.entries().map(|(_, v)| v.clone()).collect();
                prop_assert_eq!(all, keys.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>());
                previous = keys.clone();
            }
        }
    }
}
