//! The packages: `packaging/build.sh` builds both from the release binaries,
//! `packaging/test.sh` inspects them, then installs, upgrades, removes and purges the .deb
//! files on this machine, and `packaging/systemd-test.sh` does it again under a real systemd
//! booted in a minimal Debian root (systemd-nspawn): enable, reload, restart, the watchdog,
//! `systemd-analyze security`, upgrade and purge. Each script asserts every step.
//!
//! Installing needs root and dpkg. CI runs as root on Debian; elsewhere the test says it did
//! not run, rather than passing in silence, and fails under `CI`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

fn run(what: &str, command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Shown with --nocapture; on failure it is the panic message.
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn packages_build_install_upgrade_remove_and_purge() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let dpkg = Command::new("dpkg").arg("--version").output().is_ok();
    if !(root && dpkg) {
        let why = "the package test installs packages: it needs root and dpkg";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("NOT RUN: {why}");
        return;
    }
    // One at a time per machine: two runs would install and purge the same packages, and
    // one's build would delete the packages the other is testing.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    run(
        "packaging/build.sh, packaging/test.sh and packaging/systemd-test.sh",
        Command::new("flock")
            .arg(std::env::temp_dir().join("sysward-packaging-test.lock"))
            .args([
                "bash",
                "-c",
                "packaging/build.sh && packaging/test.sh && packaging/systemd-test.sh",
            ])
            .current_dir(workspace)
            // The packages' binaries are built three times (server, static agent, rpm
            // agent) with fat LTO and one codegen unit: most of the test's time on a small
            // machine, for optimisations that no step of the test looks at. The test builds
            // them quickly; `packaging/build.sh` run by hand keeps the profiles of
            // Cargo.toml.
            .envs(QUICK_PROFILES.iter().copied()),
    );
}

/// Cargo's profile settings for the test's builds, as environment overrides.
const QUICK_PROFILES: [(&str, &str); 6] = [
    ("CARGO_PROFILE_RELEASE_LTO", "off"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    // The server and the SMART and database helpers unoptimised: the test only starts them; the agent
    // stays at 1, since its .deb must stay under 5 MiB.
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"),
    ("CARGO_PROFILE_AGENT_LTO", "off"),
    ("CARGO_PROFILE_AGENT_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_AGENT_OPT_LEVEL", "1"),
];
