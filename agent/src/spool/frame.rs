//! The on-disk frame and segment header, and their checks. Pure functions over bytes, so
//! that they can be property-tested and fuzzed without a file system.
//!
//! Segment file: a 24-byte header, then frames back to back.
//!
//! ```text
//! header: magic "SWSPOOL1" (8) | segment id u64 LE | created_ms i64 LE
//! frame:  len u32 | crc32c u32 | id u64 | seq u64 | flags u32 | created_ms i64 | payload (len bytes)
//! ```
//!
//! `crc32c` covers everything after it (id through payload), so a flipped bit anywhere but
//! in `len` is caught; a damaged `len` shows as a checksum mismatch or a frame running past
//! the end of the file. `id` orders frames across the whole spool; `seq` is the batch's seq
//! as the server acks it; `payload` is the gzip body exactly as it goes on the wire.

/// Segment files start with this.
pub(crate) const MAGIC: &[u8; 8] = b"SWSPOOL1";
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;
pub(crate) const FRAME_HEADER_LEN: usize = 36;
/// No batch comes near this; a larger `len` is damage, not data.
pub(crate) const MAX_PAYLOAD: u32 = 64 << 20;

/// The batch is urgent: check results or the critical tier.
pub(crate) const FLAG_PRIORITY: u32 = 1;

/// A frame's fixed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub(crate) id: u64,
    pub(crate) seq: u64,
    pub(crate) flags: u32,
    pub(crate) created_ms: i64,
}

impl FrameMeta {
    pub(crate) fn priority(&self) -> bool {
        self.flags & FLAG_PRIORITY != 0
    }
}

pub(crate) fn encode_segment_header(segment_id: u64, created_ms: i64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&segment_id.to_le_bytes());
    h[16..24].copy_from_slice(&created_ms.to_le_bytes());
    h
}

/// The segment id, if the header is intact.
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..SEGMENT_HEADER_LEN)?;
    if &h[..8] != MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}

/// One frame, ready to append.
pub(crate) fn encode_frame(meta: &FrameMeta, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&meta.id.to_le_bytes());
    out.extend_from_slice(&meta.seq.to_le_bytes());
    out.extend_from_slice(&meta.flags.to_le_bytes());
    out.extend_from_slice(&meta.created_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// What is found at one offset of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A good frame: its fields, where its payload is, and where the next frame starts.
    Frame {
        meta: FrameMeta,
        payload: std::ops::Range<usize>,
        next: usize,
    },
    /// The length is plausible but the checksum is wrong: skip to `next`.
    BadChecksum { next: usize },
    /// The frame runs past the end of the data, or its length is absurd: the rest of the
    /// segment is unusable (a write torn by a crash, or a damaged length).
    Torn,
    /// Nothing more.
    End,
}

pub(crate) fn decode_frame(data: &[u8], at: usize) -> Decoded {
    if at >= data.len() {
        return Decoded::End;
    }
    let Some(header) = data.get(at..at.saturating_add(FRAME_HEADER_LEN)) else {
        return Decoded::Torn;
    };
    let field = |r: std::ops::Range<usize>| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&header[r]);
        b
    };
    let len = u32::from_le_bytes(field(0..4)[..4].try_into().unwrap_or([0; 4]));
    if len > MAX_PAYLOAD {
        return Decoded::Torn;
    }
    let start = at + FRAME_HEADER_LEN;
    let end = start + len as usize;
    if end > data.len() {
        return Decoded::Torn;
    }
    let crc = u32::from_le_bytes(field(4..8)[..4].try_into().unwrap_or([0; 4]));
    if crc32c::crc32c(&data[at + 8..end]) != crc {
        return Decoded::BadChecksum { next: end };
    }
    let meta = FrameMeta {
        id: u64::from_le_bytes(field(8..16)),
        seq: u64::from_le_bytes(field(16..24)),
        flags: u32::from_le_bytes(field(24..28)[..4].try_into().unwrap_or([0; 4])),
        created_ms: i64::from_le_bytes(field(28..36)),
    };
    Decoded::Frame {
        meta,
        payload: start..end,
        next: end,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn meta(id: u64) -> FrameMeta {
        FrameMeta {
            id,
            seq: id + 100,
            flags: FLAG_PRIORITY,
            created_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let mut data = encode_frame(&meta(1), b"hello");
        data.extend(encode_frame(&meta(2), b"world!"));
        let Decoded::Frame {
            meta: m,
            payload,
            next,
        } = decode_frame(&data, 0)
        else {
            panic!()
        };
        assert_eq!((m, &data[payload]), (meta(1), &b"hello"[..]));
        assert!(matches!(decode_frame(&data, next), Decoded::Frame { .. }));
        // A flipped payload bit is a checksum error that still lets us skip the frame.
        let mut flipped = data.clone();
        flipped[FRAME_HEADER_LEN + 1] ^= 0x10;
        assert_eq!(decode_frame(&flipped, 0), Decoded::BadChecksum { next });
        assert!(matches!(
            decode_frame(&flipped, next),
            Decoded::Frame { .. }
        ));
        // A cut frame is torn.
        assert_eq!(decode_frame(&data[..data.len() - 1], next), Decoded::Torn);
        assert_eq!(decode_frame(&data, data.len()), Decoded::End);
    }

    #[test]
    fn segment_header() {
        let h = encode_segment_header(7, 1);
        assert_eq!(decode_segment_header(&h), Some(7));
        assert_eq!(decode_segment_header(&h[..10]), None);
        assert_eq!(decode_segment_header(b"XXXXXXXXXXXXXXXXXXXXXXXXXX"), None);
    }

    proptest! {
        #[test]
        fn round_trips(id: u64, seq: u64, flags: u32, created: i64, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let m = FrameMeta { id, seq, flags, created_ms: created };
            let data = encode_frame(&m, &payload);
            match decode_frame(&data, 0) {
                Decoded::Frame { meta, payload: range, next } => {
                    prop_assert_eq!(meta, m);
                    prop_assert_eq!(&data[range], &payload[..]);
                    prop_assert_eq!(next, data.len());
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        /// Walking arbitrary bytes as frames never panics and always terminates.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), at in 0usize..2100) {
            let mut pos = at;
            for _ in 0..4096 {
                match decode_frame(&data, pos) {
                    Decoded::Frame { next, .. } | Decoded::BadChecksum { next } => {
                        prop_assert!(next > pos);
                        pos = next;
                    }
                    Decoded::Torn | Decoded::End => break,
                }
            }
            let _ = decode_segment_header(&data);
        }
    }
}
