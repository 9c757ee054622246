//! Sysward server internals shared by the `sysward-server` binary and the benchmarks.
//!
//! Today that is the [`store`]: the tiered, compressed sample store behind the
//! [`store::Store`] trait. Everything else of the server lives in the binary.

pub mod store;
