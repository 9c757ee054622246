//! Reading one HTTP/1.x response from any [`Read`]: the head parsed by `httparse`
//! (`1xx` interim responses skipped), then the body delimited by
//! `Transfer-Encoding: chunked`, `Content-Length` or the end of the connection.
//!
//! The peer is not trusted. Every read is bounded: a head is at most [`MAX_HEAD`] bytes,
//! the body is kept up to the caller's cap and cut there (a cut body is flagged, not an
//! error), and chunk framing (size lines, extensions, trailers) may take at most
//! [`MAX_HEAD`] bytes plus the cap, so that a peer streaming endless tiny chunks or
//! endless extensions is cut off after a bounded number of bytes.

use std::io::{self, Read};
use std::time::Instant;

use super::{MAX_HEAD, is_token};

/// How many interim (`1xx`) responses are skipped before giving up.
const MAX_INTERIM: usize = 8;

/// The most header fields a head may carry.
const MAX_HEADERS: usize = 128;

/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// A response as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, at most the cap.
    pub body: Vec<u8>,
    /// Whether the body went past the cap and was cut there.
    pub truncated: bool,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed or timed out.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The peer broke HTTP.
    #[error("malformed response: {0}")]
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> WireError {
    WireError::Malformed(message.into())
}

/// A buffered reader that notes when the first byte arrived.
struct Source<'a, R: Read> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    first_byte: Option<Instant>,
}

impl<'a, R: Read> Source<'a, R> {
    fn new(inner: &'a mut R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            first_byte: None,
        }
    }

    /// Reads more; false at the end of the stream. A TLS peer that closes without
    /// `close_notify` ends the stream too: many servers do.
    fn fill(&mut self) -> Result<bool, WireError> {
        if self.eof {
            return Ok(false);
        }
        // Consumed bytes are dropped before more come, so the buffer holds at most what
        // one unfinished head or line needs plus one read.
        self.buf.drain(..self.pos);
        self.pos = 0;
        let mut chunk = [0u8; 8192];
        let n = loop {
            match self.inner.read(&mut chunk) {
                Ok(n) => break n.min(chunk.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break 0,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line ending in `\n` (the `\r` before it dropped), at most `max` bytes.
    fn line(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(at) = self.available().iter().position(|&b| b == b'\n') {
                if at > max {
                    break;
                }
                let mut line = self.available()[..at].to_vec();
                self.pos += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.available().len() > max {
                break;
            }
            if !self.fill()? {
                return Err(malformed("connection closed in the middle of a line"));
            }
        }
        Err(malformed(format!("line longer than {max} bytes")))
    }

    /// Moves up to `n` bytes into `out`, at most `room` of them (callers stop at a
    /// `room` of 0); returns how many, 0 at the end of the stream.
    fn take(&mut self, n: u64, out: &mut Vec<u8>, room: &mut usize) -> Result<u64, WireError> {
        if self.available().is_empty() && !self.fill()? {
            return Ok(0);
        }
        let avail = self.available();
        let len = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(avail.len())
            .min(*room);
        out.extend_from_slice(&avail[..len]);
        *room -= len;
        self.pos += len;
        Ok(len as u64)
    }
}

/// Reads one response from `reader`. `head_only` for a `HEAD` request (no body follows);
/// the body is kept up to `max_body` bytes, and reading stops there. Returns the
/// response and when its first byte arrived.
pub fn read_response<R: Read>(
    reader: &mut R,
    head_only: bool,
    max_body: usize,
) -> Result<(Response, Option<Instant>), WireError> {
    let mut src = Source::new(reader);
    let head = final_head(&mut src)?;
    let mut response = Response {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        body: Vec::new(),
        truncated: false,
    };
    if head_only || response.status == 204 || response.status == 304 {
        return Ok((response, src.first_byte));
    }
    let mut body = Body {
        out: &mut response.body,
        room: max_body,
        truncated: false,
    };
    if is_chunked(&response.headers) {
        read_chunked(&mut src, &mut body, max_body)?;
    } else if let Some(length) = content_length(&response.headers)? {
        read_sized(&mut src, &mut body, length)?;
    } else {
        read_to_end(&mut src, &mut body)?;
    }
    response.truncated = body.truncated;
    Ok((response, src.first_byte))
}

/// A status line and headers.
struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

/// The first head that is not an interim (`1xx`) response.
fn final_head<R: Read>(src: &mut Source<'_, R>) -> Result<Head, WireError> {
    for _ in 0..=MAX_INTERIM {
        let head = read_head(src)?;
        match head.status {
            101 => return Err(malformed("101 Switching Protocols to a plain request")),
            100..=199 => continue,
            _ => return Ok(head),
        }
    }
    Err(malformed("too many 1xx responses"))
}

/// One head, parsed by httparse once the buffer holds all of it.
fn read_head<R: Read>(src: &mut Source<'_, R>) -> Result<Head, WireError> {
    loop {
        if let Some((used, head)) = parse_head(src.available())? {
            src.pos += used;
            return Ok(head);
        }
        if src.available().len() > MAX_HEAD {
            return Err(malformed(format!("head longer than {MAX_HEAD} bytes")));
        }
        if !src.fill()? {
            return Err(malformed(if src.available().is_empty() {
                "connection closed before a response"
            } else {
                "connection closed in the middle of the head"
            }));
        }
    }
}

/// The head at the start of `bytes` and its length, `None` while it is incomplete.
/// Besides what httparse refuses (folded lines, bad names, bad versions), a status
/// outside 100-599 is refused.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Head)>, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let used = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(malformed(format!("bad head: {e}"))),
    };
    if used > MAX_HEAD {
        return Err(malformed(format!("head longer than {MAX_HEAD} bytes")));
    }
    let status = parsed.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(malformed(format!("bad status {status}")));
    }
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_string();
            (h.name.to_string(), value)
        })
        .collect();
    let reason = parsed.reason.unwrap_or("").trim().to_string();
    Ok(Some((
        used,
        Head {
            status,
            reason,
            headers,
        },
    )))
}

/// Whether the last transfer coding is `chunked` (RFC 9112 6.3: then the body is
/// chunked whatever `Content-Length` says).
fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .next_back()
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, WireError> {
    let mut length = None;
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!(
                    "bad Content-Length {:?}",
                    excerpt(value)
                )));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| malformed("Content-Length too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Where body bytes go, and how many more fit.
struct Body<'a> {
    out: &'a mut Vec<u8>,
    room: usize,
    truncated: bool,
}

impl Body<'_> {
    /// Moves `n` bytes of the stream into the body, up to its room; false when the room
    /// ran out first (the body is then flagged as cut).
    fn take_exactly<R: Read>(
        &mut self,
        src: &mut Source<'_, R>,
        n: u64,
    ) -> Result<bool, WireError> {
        let mut left = n;
        while left > 0 {
            if self.room == 0 {
                self.truncated = true;
                return Ok(false);
            }
            let got = src.take(left, self.out, &mut self.room)?;
            if got == 0 {
                return Err(malformed(format!(
                    "connection closed after {} of {n} body bytes",
                    n - left
                )));
            }
            left -= got;
        }
        Ok(true)
    }
}

fn read_sized<R: Read>(
    src: &mut Source<'_, R>,
    body: &mut Body<'_>,
    length: u64,
) -> Result<(), WireError> {
    body.take_exactly(src, length).map(|_| ())
}

fn read_to_end<R: Read>(src: &mut Source<'_, R>, body: &mut Body<'_>) -> Result<(), WireError> {
    loop {
        if body.room == 0 {
            // More is waiting, or may come: waiting to find out would cost time.
            body.truncated = !src.available().is_empty() || !src.eof;
            return Ok(());
        }
        if src.take(u64::MAX, body.out, &mut body.room)? == 0 {
            return Ok(());
        }
    }
}

/// A chunked body. The framing (size lines, the line ends after chunks, trailers) may
/// take at most `MAX_HEAD + max_body` bytes in all.
fn read_chunked<R: Read>(
    src: &mut Source<'_, R>,
    body: &mut Body<'_>,
    max_body: usize,
) -> Result<(), WireError> {
    let mut framing = Framing {
        left: MAX_HEAD.saturating_add(max_body),
    };
    loop {
        let line = src.line(MAX_CHUNK_LINE)?;
        framing.spend(line.len() + 2)?;
        let size = chunk_size(&line)?;
        if size == 0 {
            return read_trailers(src, &mut framing);
        }
        if !body.take_exactly(src, size)? {
            return Ok(());
        }
        let end = src.line(2)?;
        framing.spend(2)?;
        if !end.is_empty() {
            return Err(malformed("chunk longer than its size"));
        }
    }
}

/// What the chunk framing may still take.
struct Framing {
    left: usize,
}

impl Framing {
    fn spend(&mut self, n: usize) -> Result<(), WireError> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or_else(|| malformed("too much chunk framing for the body"))?;
        Ok(())
    }
}

/// The size of a chunk-size line (`\r` already dropped), extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let bad = || {
        malformed(format!(
            "bad chunk size {:?}",
            excerpt(&String::from_utf8_lossy(line))
        ))
    };
    // httparse reads an empty line as size 0; a size must have a digit.
    if !line.first().is_some_and(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let mut with_end = line.to_vec();
    with_end.extend_from_slice(b"\r\n");
    match httparse::parse_chunk_size(&with_end) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(bad()),
    }
}

/// Trailers, up to the empty line; a peer that closes instead is forgiven.
fn read_trailers<R: Read>(src: &mut Source<'_, R>, framing: &mut Framing) -> Result<(), WireError> {
    loop {
        match src.line(MAX_HEAD) {
            Ok(line) if line.is_empty() => return Ok(()),
            Ok(line) => {
                framing.spend(line.len() + 2)?;
                let text = String::from_utf8_lossy(&line);
                let name = text.split(':').next().unwrap_or("");
                if !text.contains(':') || !is_token(name) {
                    return Err(malformed(format!("bad trailer {:?}", excerpt(&text))));
                }
            }
            Err(WireError::Malformed(_)) if src.eof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use proptest::prelude::*;

    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Response, WireError> {
        let mut r = bytes;
        read_response(&mut r, false, max).map(|(r, _)| r)
    }

    #[test]
    fn content_length_bodies() {
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            1024,
        )
        .expect("read");
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice(), r.truncated),
            (200, "OK", &b"hello"[..], false)
        );
        let short = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", 1024);
        assert!(matches!(short, Err(WireError::Malformed(m)) if m.contains("3 of 10")));
        let cut = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            4,
        )
        .expect("read");
        assert_eq!((cut.body.as_slice(), cut.truncated), (&b"0123"[..], true));
    }

    #[test]
    fn chunked_bodies_and_interim_responses() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let r = read(text, 1024).expect("read");
        assert_eq!((r.status, r.body.as_slice()), (201, &b"hello world"[..]));
        let cut = read(text, 7).expect("read");
        assert_eq!(
            (cut.body.as_slice(), cut.truncated),
            (&b"hello w"[..], true)
        );
        let bad = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            1024,
        );
        assert!(matches!(bad, Err(WireError::Malformed(_))));
    }

    #[test]
    fn bodies_to_the_end_and_bodiless_statuses() {
        let r = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", 1024).expect("read");
        assert_eq!(r.body, b"all of it");
        let r = read(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
            1024,
        )
        .expect("read");
        assert!(r.body.is_empty());
        let mut head = &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"[..];
        let (r, first) = read_response(&mut head, true, 1024).expect("read");
        assert!(r.body.is_empty() && first.is_some());
        let cut = read(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 4).expect("read");
        assert!(cut.truncated);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"",
        ] {
            assert!(
                read(bad, 1024).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = [
            b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
            &vec![b'a'; MAX_HEAD + 10],
        ]
        .concat();
        assert!(read(&huge, 1024).is_err());
    }

    #[test]
    fn endless_tiny_chunks_and_extensions_are_cut_off() {
        let mut tiny = Endless::new(
            b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            None,
        );
        tiny.prefix = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        // Empty chunks would not end the body (size 0 does), so each is one byte; the
        // framing budget ends the read long before the body's cap.
        let result = read_response(&mut tiny, false, 1 << 20);
        assert!(
            matches!(&result, Err(WireError::Malformed(m)) if m.contains("framing")),
            "{result:?}"
        );
        assert!(tiny.served <= bound(1 << 20), "{} bytes read", tiny.served);
    }

    #[test]
    fn heads_are_parsed_by_httparse_rules() {
        let r = read(b"\r\nHTTP/1.0 404 Not Found\r\nX-A:  b \r\n\r\n", 16).expect("read");
        assert_eq!((r.status, r.reason.as_str()), (404, "Not Found"));
        assert_eq!(r.header("x-a"), Some("b"));
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a",
        ] {
            assert!(read(bad, 16).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let too_many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(read(too_many.as_bytes(), 16).is_err());
    }

    /// The most bytes a response may take from the stream with a body cap of `max_body`:
    /// the heads (interim ones too), the body, the chunk framing, and one read of slack
    /// for each.
    fn bound(max_body: usize) -> u64 {
        let slack = 8192;
        let heads = (MAX_INTERIM + 1) * (MAX_HEAD + slack);
        let body = 2 * max_body + MAX_HEAD + MAX_CHUNK_LINE + slack;
        (heads + body) as u64
    }

    /// Serves `prefix`, then `cycle` over and over (or `limit` bytes of it), in reads
    /// of the sizes in `splits` (in turn; empty means as much as asked).
    struct Endless {
        prefix: Vec<u8>,
        cycle: Vec<u8>,
        limit: Option<usize>,
        splits: Vec<usize>,
        turn: usize,
        served: u64,
    }

    impl Endless {
        fn new(cycle: &[u8], limit: Option<usize>) -> Self {
            Self {
                prefix: Vec::new(),
                cycle: cycle.to_vec(),
                limit,
                splits: Vec::new(),
                turn: 0,
                served: 0,
            }
        }

        fn byte(&self, at: usize) -> Option<u8> {
            if at < self.prefix.len() {
                return Some(self.prefix[at]);
            }
            let at = at - self.prefix.len();
            if self.cycle.is_empty() || self.limit.is_some_and(|l| at >= l) {
                return None;
            }
            Some(self.cycle[at % self.cycle.len()])
        }
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut want = buf.len();
            if !self.splits.is_empty() {
                want = want.min(self.splits[self.turn % self.splits.len()].max(1));
                self.turn += 1;
            }
            let mut n = 0;
            while n < want {
                let Ok(at) = usize::try_from(self.served) else {
                    break;
                };
                let Some(b) = self.byte(at) else { break };
                buf[n] = b;
                n += 1;
                self.served += 1;
            }
            Ok(n)
        }
    }

    /// A well-formed response carrying `body`: chunked in pieces of the sizes in
    /// `chunks` (cycled; the rest in one chunk), with extensions and a trailer, or
    /// with a Content-Length.
    fn well_formed(body: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\n".to_vec();
        if chunks.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            return out;
        }
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let mut rest = body;
        let mut turn = 0;
        while !rest.is_empty() {
            let size = chunks[turn % chunks.len()].clamp(1, rest.len());
            turn += 1;
            let (chunk, tail) = rest.split_at(size);
            let ext = if turn % 2 == 0 { ";name=value" } else { "" };
            out.extend_from_slice(format!("{size:X}{ext}\r\n").as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
            rest = tail;
        }
        out.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        out
    }

    fn splits() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(1usize..64, 0..8)
    }

    proptest! {
        #[test]
        fn the_reader_never_panics_on_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            max in 0usize..64,
            splits in splits(),
        ) {
            let mut src = Endless::new(&bytes, Some(bytes.len()));
            src.splits = splits;
            let _ = read_response(&mut src, false, max);
            prop_assert!(src.served <= bytes.len() as u64);
        }

        #[test]
        fn the_reader_ends_on_an_endless_stream(
            prefix in proptest::sample::select(vec![
                &b""[..],
                b"HTTP/1.1 200 OK\r\n",
                b"HTTP/1.1 200 OK\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            ]),
            cycle in proptest::collection::vec(any::<u8>(), 1..64),
            max in 0usize..4096,
            splits in splits(),
        ) {
            let mut src = Endless::new(&cycle, None);
            src.prefix = prefix.to_vec();
            src.splits = splits;
            let _ = read_response(&mut src, false, max);
            prop_assert!(src.served <= bound(max), "{} bytes read", src.served);
        }

        #[test]
        fn well_formed_bodies_decode_to_their_bytes(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            chunks in proptest::collection::vec(1usize..300, 0..6),
            splits in splits(),
            slack in 0usize..16,
        ) {
            let bytes = well_formed(&body, &chunks);
            let mut src = Endless::new(&bytes, Some(bytes.len()));
            src.splits = splits.clone();
            let (r, _) = read_response(&mut src, false, body.len() + slack).expect("well formed");
            prop_assert_eq!(r.status, 200);
            prop_assert_eq!(&r.body, &body);
            prop_assert!(!r.truncated);
            if !body.is_empty() {
                let cap = body.len() / 2;
                let mut src = Endless::new(&bytes, Some(bytes.len()));
                src.splits = splits;
                let (cut, _) = read_response(&mut src, false, cap).expect("well formed");
                prop_assert_eq!(&cut.body[..], &body[..cap]);
                prop_assert!(cut.truncated);
            }
        }

        #[test]
        fn the_reader_never_panics_on_damaged_responses(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            chunks in proptest::collection::vec(1usize..16, 0..3),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = well_formed(&body, &chunks);
            for (at, b) in edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = read(&bytes, 32);
        }
    }
}
