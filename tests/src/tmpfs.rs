//! A small tmpfs of a test's own, to fill and free: the full-disk tests of the server, the
//! spool and the soak. Mounting needs root, which CI has ([`crate::needs_root`]).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

/// A mounted tmpfs, unmounted when dropped.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's notation: `512k`, `96m`) at `at`, mode 0700.
    pub fn mount(at: &Path, size: &str) -> Self {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a tmpfs at {}: {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            path: at.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes free for an unprivileged writer.
    pub fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    /// Takes all but `leave` bytes of the free space.
    pub fn fill_leaving(&self, leave: u64) {
        let size = self.available().saturating_sub(leave);
        fs::write(self.filler(), vec![0u8; usize::try_from(size).unwrap()]).unwrap();
    }

    /// Writes until the file system refuses, the last partial pages too.
    pub fn fill(&self) {
        let mut f = fs::File::create(self.filler()).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..512]).is_ok() {}
    }

    /// Gives the space back.
    pub fn free(&self) {
        let _ = fs::remove_file(self.filler());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
