//! What the helper's test files share.

use sysward_platform::smartctl::request::SMARTCTL_PATHS;

/// Whether smartmontools is installed where the helper looks. Where it is not, a test
/// that needs it fails under `CI` and says why elsewhere.
pub(crate) fn smartctl_installed() -> bool {
    if SMARTCTL_PATHS
        .iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        return true;
    }
    let why = format!(
        "this test runs the real smartctl (Debian package smartmontools), looked for in {}",
        SMARTCTL_PATHS.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("NOT RUN: {why}");
    false
}
