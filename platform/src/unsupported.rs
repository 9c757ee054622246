//! The fallback backend: the same readers as the Linux one, each refusing.

use crate::{Error, LoadAvg, MemInfo, Roots, Stat};

/// Not available here; see the Linux backend.
pub fn read_stat(_roots: &Roots) -> Result<Stat, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_meminfo(_roots: &Roots) -> Result<MemInfo, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_loadavg(_roots: &Roots) -> Result<LoadAvg, Error> {
    Err(Error::Unsupported)
}
