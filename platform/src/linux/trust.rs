//! Whether a program may be run on the agent's behalf: who could have changed it.
//!
//! A program is trusted when nobody but root and the agent's own user can change what
//! runs, that is:
//! - its path is absolute;
//! - it is a regular file, executable, owned by root or by the agent's effective user,
//!   and neither group- nor world-writable;
//! - every directory above it, up to `/`, is owned by root or by the agent's user and is
//!   neither group- nor world-writable. The sticky bit does not help: in `/tmp` anyone
//!   may create the file, or a symbolic link, that a path names before it exists.
//!
//! Symbolic links are followed: the directories above the path as written are checked
//! (whoever can write one of them can replace the link), and so are the file the links
//! lead to and every directory above it.
//!
//! The check is made when the configuration is loaded and again before every run; a
//! file changed between the check and `execve` is a race this does not close (nor does
//! any other agent that runs scripts by path).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a program is not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The path is relative.
    #[error("{} is not an absolute path", path.display())]
    NotAbsolute {
        /// The path as given.
        path: PathBuf,
    },
    /// It, or a directory above it, cannot be examined (does not exist, no permission).
    #[error("cannot examine {}: {source}", path.display())]
    Stat {
        /// What could not be examined.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// It is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// Nobody may execute it.
    #[error("{} is not executable (mode {mode:04o})", path.display())]
    NotExecutable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It or a directory above it belongs to someone else.
    #[error(
        "{what} {} is owned by uid {uid}, neither root nor the agent's user (uid {agent})",
        path.display()
    )]
    Owner {
        /// `program` or `directory`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// The agent's effective uid.
        agent: u32,
    },
    /// It or a directory above it may be written by others than its owner.
    #[error("{what} {} is {by}-writable (mode {mode:04o})", path.display())]
    Writable {
        /// `program` or `directory`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// `group` or `world`.
        by: &'static str,
        /// Its permission bits, with set-id and sticky bits.
        mode: u32,
    },
}

/// Checks that `program` may be run; see the module documentation. Returns the path
/// with every symbolic link resolved.
pub fn check_program(program: &Path) -> Result<PathBuf, TrustError> {
    check_program_for(program, nix::unistd::geteuid().as_raw())
}

/// [`check_program`] for an agent running as `agent_uid`.
pub fn check_program_for(program: &Path, agent_uid: u32) -> Result<PathBuf, TrustError> {
    if !program.is_absolute() {
        return Err(TrustError::NotAbsolute {
            path: program.to_path_buf(),
        });
    }
    if let Some(parent) = program.parent() {
        check_directories(parent, agent_uid)?;
    }
    let real = fs::canonicalize(program).map_err(|source| TrustError::Stat {
        path: program.to_path_buf(),
        source,
    })?;
    if let Some(parent) = real.parent()
        && Some(parent) != program.parent()
    {
        check_directories(parent, agent_uid)?;
    }
    let meta = stat(&real)?;
    if !meta.is_file() {
        return Err(TrustError::NotAFile { path: real });
    }
    let mode = meta.permissions().mode() & 0o7777;
    check_owner_and_mode("program", &real, &meta, agent_uid)?;
    if mode & 0o111 == 0 {
        return Err(TrustError::NotExecutable { path: real, mode });
    }
    Ok(real)
}

/// Checks `dir` and every directory above it, as [`check_program`] does for the
/// directories above a program. `dir` must be absolute.
pub fn check_directory(dir: &Path) -> Result<(), TrustError> {
    if !dir.is_absolute() {
        return Err(TrustError::NotAbsolute {
            path: dir.to_path_buf(),
        });
    }
    let agent_uid = nix::unistd::geteuid().as_raw();
    check_directories(dir, agent_uid)?;
    let real = fs::canonicalize(dir).map_err(|source| TrustError::Stat {
        path: dir.to_path_buf(),
        source,
    })?;
    if real != dir {
        check_directories(&real, agent_uid)?;
    }
    Ok(())
}

/// `dir` and its ancestors as written (each followed if it is a link).
fn check_directories(dir: &Path, agent_uid: u32) -> Result<(), TrustError> {
    for ancestor in dir.ancestors() {
        let meta = stat(ancestor)?;
        check_owner_and_mode("directory", ancestor, &meta, agent_uid)?;
    }
    Ok(())
}

fn stat(path: &Path) -> Result<fs::Metadata, TrustError> {
    fs::metadata(path).map_err(|source| TrustError::Stat {
        path: path.to_path_buf(),
        source,
    })
}

fn check_owner_and_mode(
    what: &'static str,
    path: &Path,
    meta: &fs::Metadata,
    agent_uid: u32,
) -> Result<(), TrustError> {
    let uid = meta.uid();
    if uid != 0 && uid != agent_uid {
        return Err(TrustError::Owner {
            what,
            path: path.to_path_buf(),
            uid,
            agent: agent_uid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    let by = if mode & 0o002 != 0 {
        "world"
    } else if mode & 0o020 != 0 {
        "group"
    } else {
        return Ok(());
    };
    Err(TrustError::Writable {
        what,
        path: path.to_path_buf(),
        by,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A scratch directory in a chain of trusted directories: not under `/tmp`, which
    /// is world-writable. Beside the build's `target` directory, else in `$HOME`.
    pub(crate) struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let candidates = [
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sysward-trust-tests"),
                std::env::home_dir()
                    .unwrap_or_default()
                    .join(".cache/sysward-trust-tests"),
            ];
            for base in candidates {
                let dir = base.join(format!("{name}-{}", std::process::id()));
                let _ = fs::remove_dir_all(&dir);
                if fs::create_dir_all(&dir).is_err() {
                    continue;
                }
                let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o755));
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
                let dir = fs::canonicalize(&dir).unwrap_or(dir);
                if check_directory(&dir).is_ok() {
                    return Self(dir);
                }
                let _ = fs::remove_dir_all(&dir);
            }
            panic!("no scratch directory in a trusted chain of directories");
        }

        fn file(&self, name: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, "#!/bin/sh\n").expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_private_executable_is_trusted() {
        let s = Scratch::new("ok");
        let path = s.file("check", 0o755);
        assert_eq!(check_program(&path).expect("trusted"), path);
        // The system's own programs are.
        check_program(Path::new("/bin/sh")).expect("/bin/sh");
    }

    #[test]
    fn refusals() {
        let s = Scratch::new("refusals");
        let error = check_program(Path::new("check")).expect_err("relative");
        assert!(
            error.to_string().contains("not an absolute path"),
            "{error}"
        );

        let error = check_program(&s.0.join("missing")).expect_err("missing");
        assert!(error.to_string().starts_with("cannot examine"), "{error}");

        let error = check_program(&s.0).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");

        let path = s.file("plain", 0o644);
        let error = check_program(&path).expect_err("not executable");
        assert!(
            error.to_string().contains("not executable (mode 0644)"),
            "{error}"
        );

        let path = s.file("ww", 0o777);
        let error = check_program(&path).expect_err("world-writable");
        assert_eq!(
            error.to_string(),
            format!("program {} is world-writable (mode 0777)", path.display())
        );

        let path = s.file("gw", 0o775);
        let error = check_program(&path).expect_err("group-writable");
        assert!(error.to_string().contains("is group-writable"), "{error}");

        // Root is trusted whoever the agent is; another user only as the agent.
        let path = s.file("other", 0o755);
        let result = check_program_for(&path, 12345);
        if nix::unistd::geteuid().is_root() {
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(
                matches!(result, Err(TrustError::Owner { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn a_foreign_owner_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a file away; CI runs as root, so there it must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "not root; CI runs as root"
            );
            eprintln!("NOT RUN: not root, cannot chown");
            return;
        }
        let s = Scratch::new("owner");
        let path = s.file("check", 0o755);
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(12345)), None).expect("chown");
        let error = check_program(&path).expect_err("foreign owner");
        assert_eq!(
            error.to_string(),
            format!(
                "program {} is owned by uid 12345, neither root nor the agent's user (uid 0)",
                path.display()
            )
        );
    }

    #[test]
    fn a_writable_directory_anywhere_above_is_refused() {
        let s = Scratch::new("dirs");
        let open = s.0.join("open");
        let inner = open.join("inner");
        fs::create_dir_all(&inner).expect("mkdir");
        let path = inner.join("check");
        fs::write(&path, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        check_program(&path).expect("trusted before");
        // Sticky and world-writable, as /tmp.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let error = check_program(&path).expect_err("world-writable parent");
        assert_eq!(
            error.to_string(),
            format!("directory {} is world-writable (mode 1777)", open.display())
        );
        fs::set_permissions(&open, fs::Permissions::from_mode(0o775)).expect("chmod");
        let error = check_program(&path).expect_err("group-writable parent");
        assert!(error.to_string().contains("group-writable"), "{error}");
        // /tmp itself.
        let error = check_directory(Path::new("/tmp")).expect_err("/tmp");
        assert!(error.to_string().contains("world-writable"), "{error}");
    }

    #[test]
    fn links_are_checked_on_both_sides() {
        let s = Scratch::new("links");
        let target = s.file("real", 0o755);
        let open = s.0.join("open");
        fs::create_dir(&open).expect("mkdir");
        let link = open.join("link");
        symlink(&target, &link).expect("symlink");
        assert_eq!(check_program(&link).expect("trusted"), target);
        // Whoever can write the link's directory can replace the link.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(check_program(&link).is_err());
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).expect("chmod");
        // A trusted link to a program in a writable directory.
        let wild = s.0.join("wild");
        fs::create_dir(&wild).expect("mkdir");
        let inside = wild.join("prog");
        fs::write(&inside, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&wild, fs::Permissions::from_mode(0o777)).expect("chmod");
        let link2 = open.join("link2");
        symlink(&inside, &link2).expect("symlink");
        let error = check_program(&link2).expect_err("target in a writable directory");
        assert!(error.to_string().contains("world-writable"), "{error}");
    }
}
