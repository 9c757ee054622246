//! Mounted file systems and their usage.

use crate::{Error, ParseError};

/// One mounted file system, as the kernel's mount table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted: a device path such as `/dev/sda1`, `server:/export`, or the
    /// name a pseudo file system was given (`tmpfs`, `proc`).
    pub device: String,
    /// Where it is mounted, as seen by the process whose table was read, with the
    /// kernel's octal escapes (`\040` for a space, ...) decoded.
    pub mount_point: String,
    /// The file system type, e.g. `ext4`, `nfs4`, `fuse.sshfs`.
    pub fstype: String,
    /// Whether the mount itself is read-only (`ro` among its mount options).
    pub read_only: bool,
}

/// The mount table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// The mounts, in the kernel's order: a later mount on the same point hides an
    /// earlier one.
    pub mounts: Vec<Mount>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl Mounts {
    /// The mount table of init, relative to [`Roots::proc`](crate::Roots::proc). In a
    /// container given the host's `/proc`, init is the host's, so its table lists the
    /// host's file systems rather than the container's (node_exporter reads it too).
    pub const FILE: &'static str = "1/mountinfo";
    /// The reader's own table, used when init's cannot be read (no privileges, or a
    /// fixture without it).
    pub const FALLBACK_FILE: &'static str = "self/mountinfo";
}

/// Space and inodes of one file system, from `statvfs(3)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    /// Total size in bytes.
    pub size_bytes: u64,
    /// Free bytes, including those reserved for the superuser.
    pub free_bytes: u64,
    /// Free bytes available to ordinary users.
    pub avail_bytes: u64,
    /// Total inodes (file nodes).
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Whether the file system is mounted read-only (`ST_RDONLY`).
    pub read_only: bool,
}

/// What became of one `statvfs` call made with a deadline.
#[derive(Debug)]
pub enum StatvfsOutcome {
    /// It answered in time.
    Usage(FsUsage),
    /// It answered in time, with an error.
    Failed(Error),
    /// It did not answer before the deadline; the call goes on in the background and
    /// the path counts as hung until it returns.
    TimedOut,
    /// An earlier call on this path has still not returned, so none was made.
    StillHung,
}
