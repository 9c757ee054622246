//! Where the agent finds a helper program of its own (`sysward-smart`, `sysward-db`).

use std::path::{Path, PathBuf};

/// `configured` when the operator named one; else `installed` (the package's place) when it
/// exists; else `file_name` beside the running binary or one directory up (a build tree:
/// test binaries live in `deps/` below the binaries); else `installed`, so that the error
/// of running it names the place the package would put it.
pub(crate) fn locate(configured: Option<&Path>, installed: &str, file_name: &str) -> PathBuf {
    if let Some(configured) = configured {
        return configured.to_path_buf();
    }
    let installed = PathBuf::from(installed);
    if installed.exists() {
        return installed;
    }
    let exe = std::env::current_exe().ok();
    exe.iter()
        .flat_map(|exe| exe.ancestors().skip(1).take(2))
        .map(|dir| dir.join(file_name))
        .find(|beside| beside.exists())
        .unwrap_or(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_helper_wins_and_a_missing_one_is_the_installed_place() {
        assert_eq!(
            locate(Some(Path::new("/opt/h")), "/usr/lib/x", "h"),
            PathBuf::from("/opt/h")
        );
        assert_eq!(
            locate(None, "/nonexistent/sysward-none", "sysward-none-at-all"),
            PathBuf::from("/nonexistent/sysward-none")
        );
    }
}
