//! What a check or a collector keeps across agent restarts (a log position, counters):
//! one JSON file per owner, written beside its place and renamed over it, so that a
//! crash leaves the old or the new content, never half of one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::net::io_text;

/// Reads a state file; `None` when there is none yet. An error names the file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {}", path.display(), io_text(&e))),
    }
}

/// Writes `value` to `path.tmp`, syncs it and renames it over `path`: all or nothing.
/// Makes the directory when missing.
pub fn store<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let fail = |e: io::Error| format!("{}: {}", path.display(), io_text(&e));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(fail)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_loads_back_and_a_missing_file_is_none() {
        let dir = std::env::temp_dir().join(format!("sysward-state-file-{}", std::process::id()));
        let path = dir.join("sub").join("x.json");
        assert_eq!(load::<Vec<u32>>(&path), Ok(None));
        store(&path, &vec![1u32, 2, 3]).expect("store");
        assert_eq!(load::<Vec<u32>>(&path), Ok(Some(vec![1, 2, 3])));
        std::fs::write(&path, b"{not json").expect("write");
        let err = load::<Vec<u32>>(&path).expect_err("garbage");
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
