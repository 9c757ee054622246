//! `[[checks.tls]]`: being built; until then every such table is refused with a clear
//! message, so that a config naming one fails `check-config` instead of silently not
//! checking.

use std::time::Duration;

use serde::Deserialize;

use super::{Probe, Schedule};
use crate::Tier;

/// One `[[checks.tls]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheckConfig {
    /// Unique on the host; the `check` label.
    pub name: String,
    /// Its own interval (else its tier's).
    #[serde(default, deserialize_with = "super::duration")]
    pub interval: Option<Duration>,
    /// Its tier (default critical).
    #[serde(default, deserialize_with = "super::tier")]
    pub tier: Option<Tier>,
    /// Deadline of one run.
    #[serde(default, deserialize_with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Consecutive non-OK results before a state is hard (default 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

pub(crate) fn build(c: &TlsCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let _ = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Err("tls checks are not available in this build yet".into())
}
