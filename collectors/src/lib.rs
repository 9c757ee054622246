//! Sysward's collectors: each reads one part of the host and returns samples.
//!
//! A collector never sends, buffers or formats. The agent runs it on a blocking pool with a
//! deadline; state kept between runs lives in `&mut self`. A failing *part* of a collector
//! (one file that cannot be read) is recorded in [`Output::errors`] and the rest of the run
//! goes on; only a failure of the whole collector is returned as `Err`.

mod sample;

pub mod cpu;
pub mod load;
pub mod memory;
mod registry;

pub use registry::{CollectorSpec, REGISTRY, Tier};
pub use sample::{Kind, Output, Sample};
pub use sysward_platform::Roots;

/// Why a whole collector run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// Reading from the platform failed.
    #[error(transparent)]
    Platform(#[from] sysward_platform::Error),
}

/// One source of samples. Synchronous on purpose: the agent decides where and how long it runs.
pub trait Collector: Send {
    /// The collector's name: the same word as its file, its config key and its log field.
    fn name(&self) -> &'static str;

    /// Reads the system once and appends what it found to `out`.
    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError>;
}
