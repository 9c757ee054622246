//! Reads an agent's spool directory while the agent is not running, as the soak's record
//! of what the agent produced: every frame names its batch's `(boot_id, seq)` in its
//! payload, and whether it was acked is in the `acks` log. The format is the agent's
//! (`agent/src/spool/frame.rs`):
//!
//! ```text
//! segment: "SWSPOOL1" | segment id u64 | created_ms i64, then frames back to back
//! frame:   len u32 | crc32c u32 | id u64 | seq u64 | flags u32 | created_ms i64 | gzip payload
//! acks:    id u64 | crc32c u32, appended
//! ```
//!
//! The tests crate has no crc32c: a frame is trusted when its payload inflates to a batch
//! whose `seq` is the frame's; anything else is counted as unreadable (the agent's own
//! recovery would skip or cut it, and count it).

use std::{collections::BTreeSet, fs, io::Read, path::Path};

use flate2::read::GzDecoder;

const SEGMENT_HEADER_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 36;
const ACK_ENTRY: usize = 12;

/// One frame found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) boot: String,
    pub(crate) seq: u64,
    pub(crate) acked: bool,
}

/// What a spool directory holds.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) frames: Vec<Frame>,
    /// Frames whose payload did not inflate to a batch of the frame's seq, and torn tails.
    pub(crate) unreadable: u64,
}

impl Contents {
    pub(crate) fn unacked(&self) -> usize {
        self.frames.iter().filter(|f| !f.acked).count()
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}

/// Reads every segment of `dir` (a missing directory holds nothing).
pub(crate) fn read(dir: &Path) -> Contents {
    let acks: BTreeSet<u64> = fs::read(dir.join("acks"))
        .unwrap_or_default()
        .chunks_exact(ACK_ENTRY)
        .map(|e| u64_at(e, 0))
        .collect();
    let mut out = Contents::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut segments: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    for path in segments {
        let data = fs::read(&path).unwrap_or_default();
        if data.len() < SEGMENT_HEADER_LEN || &data[..8] != b"SWSPOOL1" {
            out.unreadable += 1;
            continue;
        }
        let mut at = SEGMENT_HEADER_LEN;
        while at < data.len() {
            if at + FRAME_HEADER_LEN > data.len() {
                out.unreadable += 1;
                break;
            }
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let (id, seq) = (u64_at(&data, at + 8), u64_at(&data, at + 16));
            let start = at + FRAME_HEADER_LEN;
            let Some(payload) = data.get(start..start + len) else {
                out.unreadable += 1;
                break;
            };
            match batch_identity(payload) {
                Some((boot, s)) if s == seq => out.frames.push(Frame {
                    boot,
                    seq,
                    acked: acks.contains(&id),
                }),
                _ => out.unreadable += 1,
            }
            at = start + len;
        }
    }
    out
}

/// `(boot_id, seq)` of a gzip-encoded batch.
fn batch_identity(payload: &[u8]) -> Option<(String, u64)> {
    let mut text = Vec::new();
    GzDecoder::new(payload).read_to_end(&mut text).ok()?;
    let batch: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((
        batch["boot_id"].as_str()?.to_string(),
        batch["seq"].as_u64()?,
    ))
}
