//! A read-only look at a spool for `sysward-agent spool status` and `spool verify`. It
//! changes nothing, so it is safe beside a running agent.

use std::{fs, io::Read, path::Path};

use anyhow::Context;
use sysward_proto::{Batch, inflate_limited};

use super::{
    frame::{Decoded, SEGMENT_HEADER_LEN, decode_frame, decode_segment_header},
    list_segments, read_acks,
};

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) segments: usize,
    pub(crate) bytes: u64,
    pub(crate) frames: usize,
    pub(crate) unacked: usize,
    pub(crate) oldest_unacked_ms: Option<i64>,
    pub(crate) bad_checksum: usize,
    pub(crate) torn: usize,
    pub(crate) bad_headers: Vec<String>,
    pub(crate) set_aside: Vec<String>,
    /// With `verify`: frames whose payload is not a valid batch.
    pub(crate) invalid_payloads: Vec<String>,
}

impl Report {
    pub(crate) fn is_clean(&self) -> bool {
        self.bad_checksum == 0
            && self.torn == 0
            && self.bad_headers.is_empty()
            && self.invalid_payloads.is_empty()
    }
}

/// Scans every segment; with `verify`, also inflates and parses every payload.
pub(crate) fn inspect(dir: &Path, verify: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if !dir.exists() {
        return Ok(report);
    }
    let (acks, _) = read_acks(&dir.join("acks"));
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".corrupt") {
            report.set_aside.push(name);
        }
    }
    for (id, path) in list_segments(dir)? {
        let mut data = Vec::new();
        let read = fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut data));
        match read {
            Ok(_) => {}
            // Removed meanwhile by the running agent, once all its frames were acked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        report.segments += 1;
        report.bytes += data.len() as u64;
        if decode_segment_header(&data) != Some(id) {
            report.bad_headers.push(path.display().to_string());
            continue;
        }
        let mut at = SEGMENT_HEADER_LEN;
        loop {
            match decode_frame(&data, at) {
                Decoded::Frame {
                    meta,
                    payload,
                    next,
                } => {
                    report.frames += 1;
                    if !acks.contains(&meta.id) {
                        report.unacked += 1;
                        report.oldest_unacked_ms = Some(
                            report
                                .oldest_unacked_ms
                                .map_or(meta.created_ms, |o| o.min(meta.created_ms)),
                        );
                    }
                    if verify {
                        let check = inflate_limited(&data[payload], 64 << 20)
                            .map_err(|e| e.to_string())
                            .and_then(|json| {
                                serde_json::from_slice::<Batch>(&json).map_err(|e| e.to_string())
                            });
                        if let Err(e) = check {
                            report.invalid_payloads.push(format!(
                                "{} frame {}: {e}",
                                path.display(),
                                meta.id
                            ));
                        }
                    }
                    at = next;
                }
                Decoded::BadChecksum { next } => {
                    report.bad_checksum += 1;
                    at = next;
                }
                Decoded::Torn => {
                    report.torn += 1;
                    break;
                }
                Decoded::End => break,
            }
        }
    }
    Ok(report)
}
