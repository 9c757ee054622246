//! The batch codec: the encoder the agent sends with (JSON written straight into a
//! deflate stream, one buffer reused across batches) and the decoder the server trusts a
//! body with (size checked, inflated within the limit, version read first, parsed, then
//! validated against [`Limits`]).

use std::io::{self, Read, Write};

use flate2::{Compression, read::GzDecoder};

use crate::{Batch, Limits, OutgoingBatch, VERSION, limits, outgoing_json};

/// Why a body was refused. Every variant is final: sending the same bytes again will fail
/// the same way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The compressed body is larger than allowed.
    #[error("compressed body is {size} bytes, over the limit of {limit}")]
    CompressedTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Inflating went past the limit and was stopped.
    #[error("body inflates past the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not valid gzip.
    #[error("body is not valid gzip: {0}")]
    Gzip(#[source] io::Error),
    /// The JSON does not match the batch schema.
    #[error("batch JSON is malformed: {0}")]
    Json(#[source] serde_json::Error),
    /// A version this server does not speak.
    #[error("batch version {got} is not supported (this server speaks {VERSION})")]
    Version {
        /// The version sent.
        got: u32,
    },
    /// A field breaks a count or length limit or a naming rule.
    #[error("{0}")]
    Invalid(String),
}

/// Serialises and gzips a batch, ready to send.
pub fn encode_batch(batch: &Batch) -> io::Result<Vec<u8>> {
    BatchEncoder::new().encode(batch)
}

/// Encodes batches as [`encode_batch`] does, reusing its deflate state (a few hundred KiB,
/// which allocated afresh per batch meant fresh pages to fault in and zero each time, more
/// than the compressing itself on a small batch).
///
/// The JSON is not held whole: serde_json writes it into a [`CHUNK`] buffer that is
/// deflated each time it fills. A batch's whole JSON text (tens to hundreds of KiB, kept
/// between batches for its capacity) was the largest buffer of the agent's heap after the
/// deflate state.
pub struct BatchEncoder {
    chunk: Vec<u8>,
    deflate: flate2::Compress,
}

/// JSON text deflated at a time.
const CHUNK: usize = 16 << 10;

impl Default for BatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchEncoder {
    /// An encoder at deflate's fastest level. Measured on the bench's batch (22 KiB of
    /// JSON): 36 µs against 86 µs at the default level, for 9 % more bytes; an agent
    /// encodes every few seconds for ever, while the bytes are a few KiB per batch.
    pub fn new() -> Self {
        Self {
            chunk: Vec::with_capacity(CHUNK),
            // Raw deflate: the gzip header and trailer are written here (RFC 1952).
            deflate: flate2::Compress::new(Compression::fast(), false),
        }
    }

    /// JSON, then gzip: the body of one ingest request ([`Batch`], or the
    /// [`OutgoingBatch`] that writes the same JSON; the agent uses
    /// [`Self::encode_outgoing`], which writes it faster).
    pub fn encode(&mut self, batch: &impl serde::Serialize) -> io::Result<Vec<u8>> {
        let mut sink = self.start();
        serde_json::to_writer(&mut sink, batch).map_err(io::Error::other)?;
        sink.finish()
    }

    /// As [`Self::encode`], the same bytes, with the series written by hand (see
    /// [`crate::outgoing_json`]): the agent's encoder.
    pub fn encode_outgoing(&mut self, batch: &OutgoingBatch) -> io::Result<Vec<u8>> {
        let mut sink = self.start();
        // Field by field in the order of the struct, as serde writes it.
        let head = &mut *sink.chunk;
        head.extend_from_slice(b"{\"v\":");
        head.extend_from_slice(itoa::Buffer::new().format(batch.v).as_bytes());
        head.extend_from_slice(b",\"agent_id\":");
        outgoing_json::write_str(head, &batch.agent_id);
        head.extend_from_slice(b",\"boot_id\":");
        outgoing_json::write_str(head, &batch.boot_id);
        head.extend_from_slice(b",\"seq\":");
        head.extend_from_slice(itoa::Buffer::new().format(batch.seq).as_bytes());
        head.extend_from_slice(b",\"sent_at\":");
        head.extend_from_slice(itoa::Buffer::new().format(batch.sent_at).as_bytes());
        head.extend_from_slice(b",\"series\":[");
        for (i, series) in batch.series.iter().enumerate() {
            if i > 0 {
                sink.chunk.push(b',');
            }
            outgoing_json::write_series(sink.chunk, series);
            if sink.chunk.len() >= CHUNK {
                sink.deflate_chunk(flate2::FlushCompress::None)?;
            }
        }
        sink.write_all(b"],\"events\":")?;
        serde_json::to_writer(&mut sink, &batch.events).map_err(io::Error::other)?;
        if let Some(host) = &batch.host {
            sink.write_all(b",\"host\":")?;
            serde_json::to_writer(&mut sink, host).map_err(io::Error::other)?;
        }
        sink.write_all(b"}")?;
        sink.finish()
    }

    /// A new gzip member: the deflate state reset, the header written.
    fn start(&mut self) -> DeflateSink<'_> {
        self.deflate.reset();
        self.chunk.clear();
        let mut out = Vec::with_capacity(4096);
        // ID1 ID2, CM = deflate, no flags, no mtime, no extra flags, OS unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        DeflateSink {
            deflate: &mut self.deflate,
            chunk: &mut self.chunk,
            out,
            crc: flate2::Crc::new(),
        }
    }
}

/// Where serde_json writes: gathers text into the chunk, deflating it when full.
struct DeflateSink<'a> {
    deflate: &'a mut flate2::Compress,
    chunk: &'a mut Vec<u8>,
    out: Vec<u8>,
    crc: flate2::Crc,
}

impl DeflateSink<'_> {
    /// Deflates what is left, ends the stream and writes the gzip trailer.
    fn finish(mut self) -> io::Result<Vec<u8>> {
        self.deflate_chunk(flate2::FlushCompress::Finish)?;
        let crc = self.crc;
        let mut out = self.out;
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32, as the format says.
        out.extend_from_slice(&crc.amount().to_le_bytes());
        Ok(out)
    }

    /// Deflates the chunk into `out` (and with `Finish`, ends the stream).
    fn deflate_chunk(&mut self, flush: flate2::FlushCompress) -> io::Result<()> {
        let finish = flush == flate2::FlushCompress::Finish;
        self.crc.update(self.chunk);
        let mut input = &self.chunk[..];
        let mut stalled = 0;
        loop {
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve(self.out.capacity().max(4096));
            }
            let (before_in, before_out) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress_vec(input, &mut self.out, flush)
                .map_err(io::Error::other)?;
            let used = usize::try_from(self.deflate.total_in() - before_in).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // Never spin on the runtime's thread: deflate always progresses with 1 KiB free.
            if used == 0 && self.deflate.total_out() == before_out {
                stalled += 1;
                if stalled > 3 {
                    return Err(io::Error::other("deflate made no progress"));
                }
            }
            // Without Finish, deflate may hold input back in its window: done once it
            // has taken all of it. With Finish, done at the stream's end.
            if (finish && status == flate2::Status::StreamEnd) || (!finish && input.is_empty()) {
                break;
            }
        }
        self.chunk.clear();
        Ok(())
    }
}

/// serde_json writes a batch in thousands of pieces of a few bytes (a quote, a key, a
/// colon). Each piece only lands in the chunk; the checksum and deflate run per chunk.
/// Summing the checksum per piece, and not inlining the write, cost more than all of
/// deflate.
impl io::Write for DeflateSink<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.deflate_chunk(flate2::FlushCompress::None)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Inflates a gzip body, reading at most `limit` bytes of output; one byte more is an error.
pub fn inflate_limited(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // Reading `limit + 1` tells a body of exactly `limit` bytes from a larger one without
    // inflating any further than that.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// Checks sizes, inflates within the limit, parses and validates one batch.
pub fn decode_batch(body: &[u8], limits: &Limits) -> Result<Batch, DecodeError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(DecodeError::CompressedTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let json = inflate_limited(body, limits.max_decompressed_bytes)?;
    // Read the version before the schema so that a future batch gets a version error, not
    // a confusing field error.
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        v: Option<u32>,
    }
    if let Ok(VersionOnly { v: Some(got) }) = serde_json::from_slice::<VersionOnly>(&json)
        && got != VERSION
    {
        return Err(DecodeError::Version { got });
    }
    let batch: Batch = serde_json::from_slice(&json).map_err(DecodeError::Json)?;
    if batch.v != VERSION {
        return Err(DecodeError::Version { got: batch.v });
    }
    limits::validate(&batch, limits).map_err(DecodeError::Invalid)?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use proptest::prelude::*;

    use super::*;
    use crate::{Series, SeriesKind, batch::test_batch as batch};

    #[test]
    fn a_reused_encoder_gives_bodies_that_decode_to_the_batch() {
        let mut encoder = BatchEncoder::new();
        let mut b = batch();
        for seq in 0..3 {
            b.seq = seq;
            let body = encoder.encode(&b).unwrap();
            assert_eq!(decode_batch(&body, &Limits::default()).unwrap(), b);
            // Any gzip reader takes it, not only ours.
            let mut text = String::new();
            GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
            assert_eq!(text, serde_json::to_string(&b).unwrap());
        }
    }

    #[test]
    fn a_batch_of_many_chunks_decodes_whole() {
        let mut b = batch();
        b.series = (0..3000)
            .map(|i| Series {
                name: format!("node_network_receive_bytes_total_{i}"),
                labels: [("device".to_string(), format!("eth{i}"))].into(),
                kind: SeriesKind::Counter,
                points: vec![(1_700_000_000_000 + i, i as f64 * 1.5)],
            })
            .collect();
        let text = many_chunk_json(&b);
        let mut encoder = BatchEncoder::new();
        for _ in 0..2 {
            let body = encoder.encode(&b).unwrap();
            let (inflated, decoded) = inflate_and_decode(&encoder, &body);
            assert_eq!(inflated, text);
            assert_eq!(decoded, b);
        }
    }

    /// `batch`'s JSON by serde_json, checked to span many of the encoder's chunks.
    fn many_chunk_json(batch: &impl serde::Serialize) -> String {
        let text = serde_json::to_string(batch).unwrap();
        assert!(
            text.len() > 8 * CHUNK,
            "{} bytes: the test needs many chunks",
            text.len()
        );
        text
    }

    /// The text a many-chunk `body` inflates to and the batch it decodes as (with room
    /// for its 3,000 series), after checking that the text went through in chunks: the
    /// encoder never held it whole.
    fn inflate_and_decode(encoder: &BatchEncoder, body: &[u8]) -> (String, Batch) {
        let mut inflated = String::new();
        GzDecoder::new(body).read_to_string(&mut inflated).unwrap();
        let limits = Limits {
            max_series: 10_000,
            ..Limits::default()
        };
        let decoded = decode_batch(body, &limits).unwrap();
        assert!(
            encoder.chunk.capacity() <= 2 * CHUNK,
            "{} bytes kept",
            encoder.chunk.capacity()
        );
        (inflated, decoded)
    }

    #[test]
    fn the_hand_written_encoding_inflates_to_serde_jsons_text() {
        let series = (0..3000)
            .map(|i| crate::OutgoingSeries {
                name: format!("node_network_receive_bytes_total_{i}").into(),
                labels: vec![("device".into(), format!("eth\"{i}"))],
                kind: SeriesKind::Counter,
                points: crate::batch::tests::points_of(&[
                    (1_700_000_000_000 + i, i as f64 * 1.5),
                    (i, -0.25),
                ]),
            })
            .collect();
        let outgoing = OutgoingBatch {
            v: VERSION,
            agent_id: "a1".into(),
            boot_id: "b\n1".into(),
            seq: 7,
            sent_at: -3,
            series,
            events: vec![crate::Event {
                name: "disk".into(),
                state: "CRITICAL".into(),
                output: "full".into(),
                ts: 9,
                long_output: String::new(),
                hard: true,
                attempt: 2,
                duration_ms: 15,
            }],
            host: Some(crate::HostInfo {
                hostname: "h".into(),
                ..Default::default()
            }),
        };
        many_chunk_json(&outgoing);
        let mut encoder = BatchEncoder::new();
        for host in [true, false] {
            let mut outgoing = outgoing.clone();
            if !host {
                outgoing.host = None;
            }
            let body = encoder.encode_outgoing(&outgoing).unwrap();
            let (inflated, decoded) = inflate_and_decode(&encoder, &body);
            assert_eq!(inflated, serde_json::to_string(&outgoing).unwrap());
            assert_eq!(decoded.series.len(), 3000);
            assert_eq!(decoded.host.is_some(), host);
        }
    }

    #[test]
    fn round_trip() {
        let body = encode_batch(&batch()).unwrap();
        assert_eq!(decode_batch(&body, &Limits::default()).unwrap(), batch());
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let body = enc.finish().unwrap();
        assert!(body.len() < 1 << 20);
        let limits = Limits {
            max_decompressed_bytes: 1 << 20,
            ..Limits::default()
        };
        match decode_batch(&body, &limits) {
            Err(DecodeError::DecompressedTooLarge { limit }) => assert_eq!(limit, 1 << 20),
            other => panic!("expected DecompressedTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn exactly_at_the_limit_is_accepted() {
        let data = vec![b'x'; 1000];
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&data).unwrap();
        let body = enc.finish().unwrap();
        assert_eq!(inflate_limited(&body, 1000).unwrap().len(), 1000);
        assert!(matches!(
            inflate_limited(&body, 999),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn wrong_version_is_named() {
        let mut b = batch();
        b.v = 2;
        let body = encode_batch(&b).unwrap();
        assert!(matches!(
            decode_batch(&body, &Limits::default()),
            Err(DecodeError::Version { got: 2 })
        ));
    }

    #[test]
    fn garbage_is_a_gzip_error() {
        assert!(matches!(
            decode_batch(b"not gzip", &Limits::default()),
            Err(DecodeError::Gzip(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_batch(&body, &Limits::default());
        }

        #[test]
        fn decode_never_panics_on_gzipped_garbage(json in ".{0,512}") {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(json.as_bytes()).unwrap();
            let _ = decode_batch(&enc.finish().unwrap(), &Limits::default());
        }
    }
}
