//! Fixtures for the smartctl parsers' tests.

use std::path::{Path, PathBuf};

/// The real smartctl responses in `shared/fixtures/smartctl`, which lives beside the
/// repository here and in CI.
pub(crate) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/smartctl")
}

/// The smartctl 6.x text fixtures written for this crate.
pub(crate) fn text_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smartctl6")
}

/// One file of the shared fixtures.
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let path = fixture_dir().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One file of the text fixtures.
pub(crate) fn text_fixture(path: &str) -> Vec<u8> {
    let path = text_fixture_dir().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The names of the device text fixtures (directories under
/// `tests/fixtures/smartctl6/devices`).
pub(crate) fn text_fixture_names() -> Vec<String> {
    let dir = text_fixture_dir().join("devices");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("text fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| dir.join(name).is_dir())
        .collect();
    names.sort();
    names
}

/// Every JSON response among the shared fixtures, loaded once.
pub(crate) fn smartctl_fixtures() -> &'static [Vec<u8>] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = Vec::new();
        for name in ["megaraid", "nvme", "scsi", "scsi_extended", "usb"] {
            all.push(fixture(&format!("devices/{name}/response.json")));
        }
        for name in ["all", "megaraid"] {
            all.push(fixture(&format!("scan/{name}/response.json")));
        }
        all
    })
}

/// Every text fixture's smartctl output, loaded once.
pub(crate) fn text_fixtures() -> &'static [Vec<u8>] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        text_fixture_names()
            .iter()
            .map(|name| text_fixture(&format!("devices/{name}/stdout.txt")))
            .collect()
    })
}
