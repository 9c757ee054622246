//! Helpers for the backend's tests: fixture locations, scratch directories and
//! proptest strategies that damage real text.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::Roots;

/// node_exporter's fixture tree, kept beside the repository in `shared/`.
pub(crate) fn fixture_roots() -> Roots {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/node_exporter");
    Roots::new(base.join("proc"), base.join("sys"), base)
}

/// A scratch directory removed on drop.
pub(crate) struct TempDir(PathBuf);

/// Numbers scratch directories apart within one test process.
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl TempDir {
    /// A fresh directory whose name includes `name`, the process id and a counter, so
    /// that neither concurrent test runs nor tests sharing a name collide.
    pub(crate) fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sysward-platform-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        // A leftover from a crashed run would make the test read stale files.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Roots whose `proc` is this directory.
    pub(crate) fn roots(&self) -> Roots {
        Roots::new(self.0.clone(), self.0.join("sys"), self.0.clone())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Characters that parsers give meaning to, so that edits hit the interesting paths
/// more often than uniformly random characters would.
fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        any::<char>(),
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', ':', '(', ')', '.', '-', '+', 'e', 'k', 'B', '0', '1', '9',
        ]),
    ]
}

/// `seed` with up to 16 random edits: characters replaced, inserted or removed, or the
/// rest of the text cut off.
pub(crate) fn mutated(seed: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, edit_char()), 0..16).prop_map(
        move |edits| {
            let mut text: Vec<char> = seed.chars().collect();
            for (at, kind, c) in edits {
                if text.is_empty() {
                    text.push(c);
                    continue;
                }
                let i = at.index(text.len());
                match kind {
                    0 => text[i] = c,
                    1 => text.insert(i, c),
                    2 => {
                        text.remove(i);
                    }
                    _ => text.truncate(i),
                }
            }
            text.into_iter().collect()
        },
    )
}

/// One line of arbitrary text without a line break.
pub(crate) fn any_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\n\r]*",
        "[a-z_()]{1,12}:? +[-+0-9.e]{0,12}( +[a-zA-Z]{0,3})?",
        "cpu[0-9]{0,3}( +[0-9]{1,5}){0,12}",
    ]
}
