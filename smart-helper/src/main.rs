//! `sysward-smart`: runs smartctl on behalf of the Sysward agent.
//!
//! The agent runs unprivileged; reading SMART data needs raw access to the disks. This
//! helper is the one place that has it (through file capabilities set by the package,
//! see `README.md` beside this crate), and it does exactly one thing: it turns one of
//! the requests of `sysward_platform::smartctl::request` into smartctl's fixed argument
//! list for it and replaces itself with smartctl, in the C locale, with an otherwise
//! empty environment and no standard input. Device paths and types are checked against
//! a list of known shapes first; anything else is refused with a message on standard
//! error and exit status 1 (smartctl's own "command line did not parse" bit).
//!
//! ```text
//! sysward-smart version
//! sysward-smart scan json|text
//! sysward-smart read json|text DEVICE [TYPE]
//! ```
//!
//! smartctl is taken from a fixed list of places (never `PATH`), and only if root owns
//! it and its directory and neither is writable by group or others.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sysward_platform::smartctl::Request;
use sysward_platform::smartctl::request::{SMARTCTL_ENV, SMARTCTL_PATHS};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sysward-smart: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let request = Request::from_helper_args(std::env::args_os().skip(1))?;
    let smartctl = find_smartctl(SMARTCTL_PATHS)?;
    pass_capabilities().context("cannot hand the capabilities on to smartctl")?;
    let error = exec(&smartctl, &request.smartctl_args());
    Err(error).with_context(|| format!("cannot run {}", smartctl.display()))
}

/// Replaces this process with `program`; returns only if that failed.
#[cfg(unix)]
fn exec(program: &Path, args: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(SMARTCTL_ENV.iter().copied())
        .stdin(std::process::Stdio::null())
        .exec()
}

#[cfg(not(unix))]
fn exec(program: &Path, _args: &[String]) -> std::io::Error {
    let _ = (program, SMARTCTL_ENV);
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "sysward-smart runs on Unix only",
    )
}

/// The first of `candidates` that exists, if it is safe to run with privileges.
fn find_smartctl(candidates: &[&str]) -> anyhow::Result<PathBuf> {
    for candidate in candidates {
        let path = Path::new(candidate);
        if !path.exists() {
            continue;
        }
        check_owner(path)?;
        if let Some(dir) = path.parent() {
            check_owner(dir)?;
        }
        return Ok(path.to_path_buf());
    }
    bail!(
        "smartctl not found (looked in {}); install smartmontools",
        candidates.join(", ")
    )
}

/// Refuses a file or directory that someone other than root could change.
#[cfg(unix)]
fn check_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot inspect {}", path.display()))?;
    if meta.uid() != 0 {
        bail!(
            "refusing {}: owned by uid {}, not root",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing {}: writable by group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Raises, as ambient capabilities, those of smartctl's capabilities this process was
/// given, so that smartctl (which has no file capabilities of its own) keeps them across
/// `exec`. Without any (a helper installed without capabilities, or run under
/// `NoNewPrivileges=yes`) smartctl runs with the caller's rights and reports what it
/// cannot open. Run as root, smartctl has them anyway.
#[cfg(target_os = "linux")]
fn pass_capabilities() -> anyhow::Result<()> {
    use caps::{CapSet, Capability};
    const SMARTCTL_NEEDS: [Capability; 3] = [
        // ATA and SCSI pass-through commands (SG_IO).
        Capability::CAP_SYS_RAWIO,
        // NVMe admin commands and the MegaRAID ioctl.
        Capability::CAP_SYS_ADMIN,
        // Opening the device nodes (root:disk 0660, NVMe root 0600).
        Capability::CAP_DAC_OVERRIDE,
    ];
    let permitted = caps::read(None, CapSet::Permitted)?;
    for capability in SMARTCTL_NEEDS {
        if permitted.contains(&capability) {
            caps::raise(None, CapSet::Inheritable, capability)?;
            caps::raise(None, CapSet::Ambient, capability)?;
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn pass_capabilities() -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("sysward-smart-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir)
        }

        fn file(&self, mode: u32) -> String {
            let path = self.0.join("smartctl");
            std::fs::write(&path, b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn running_as_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        let probe = std::env::temp_dir().join(format!("sysward-smart-uid-{}", std::process::id()));
        std::fs::write(&probe, b"").unwrap();
        let root = std::fs::metadata(&probe).unwrap().uid() == 0;
        let _ = std::fs::remove_file(&probe);
        root
    }

    #[test]
    fn a_missing_smartctl_says_where_it_looked() {
        let error = find_smartctl(&["/nonexistent/a/smartctl", "/nonexistent/b/smartctl"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "smartctl not found (looked in /nonexistent/a/smartctl, /nonexistent/b/smartctl); \
             install smartmontools"
        );
    }

    #[test]
    fn a_smartctl_others_can_change_is_refused() {
        let scratch = Scratch::new("writable");
        let path = scratch.file(0o777);
        let error = find_smartctl(&[&path]).unwrap_err().to_string();
        assert!(error.starts_with("refusing "), "{error}");
    }

    #[test]
    fn a_smartctl_in_a_writable_directory_is_refused() {
        let scratch = Scratch::new("dir");
        let path = scratch.file(0o755);
        std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = find_smartctl(&[&path]).unwrap_err().to_string();
        assert!(error.starts_with("refusing "), "{error}");
    }

    #[test]
    fn a_root_owned_smartctl_is_taken() {
        let scratch = Scratch::new("ok");
        let path = scratch.file(0o755);
        let found = find_smartctl(&["/nonexistent/smartctl", &path]);
        if running_as_root() {
            assert_eq!(found.unwrap(), PathBuf::from(&path));
        } else {
            // Not root: the scratch file is ours, not root's, and must be refused; the
            // acceptance above is what CI (root) must show.
            assert!(
                std::env::var_os("CI").is_none(),
                "not root; CI runs as root"
            );
            assert!(found.unwrap_err().to_string().contains("not root"));
        }
    }
}
