//! A small blocking D-Bus client: enough to call methods on the system bus and decode
//! their replies (the `systemd` collector's `ListUnitsByPatterns` and property reads).
//!
//! Written here rather than taken from zbus, which the agent used before: zbus is a
//! complete async D-Bus stack (its own executor threads, serde-based marshalling for any
//! type, signals, object serving) of some 600 KiB of code, and on the agent binary code is
//! resident memory on every host. A client that makes calls one at a time needs the
//! wire format of the D-Bus specification's "Message Protocol" and its EXTERNAL
//! authentication, which is what this is. Tests in the `systemd` collector run it against
//! zbus serving a fake systemd, so that another implementation checks both directions,
//! both through a real `dbus-daemon` (`connect`: authentication, `Hello`, routing by
//! destination, the bus's own messages) and on a peer-to-peer connection.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The bus refuses larger messages (the specification's limit is 128 MiB); a
/// `ListUnits` of thousands of units is a few MiB.
const MAX_MESSAGE: usize = 64 << 20;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// Connecting, reading or writing failed (a timeout is `TimedOut`/`WouldBlock`).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The peer did not accept our credentials.
    #[error("D-Bus authentication failed: {0}")]
    Auth(String),
    /// The call reached its object and failed there (`org.freedesktop.DBus.Error.*`).
    #[error("{name}: {message}")]
    Method {
        /// The error's name, e.g. `org.freedesktop.DBus.Error.UnknownMethod`.
        name: String,
        /// Its message, when it has one.
        message: String,
    },
    /// The peer sent something this client cannot read.
    #[error("malformed D-Bus message: {0}")]
    Protocol(String),
}

fn protocol(what: impl Into<String>) -> DbusError {
    DbusError::Protocol(what.into())
}

/// One method argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// `s`
    Str(&'a str),
    /// `as`
    StrArray(&'a [String]),
}

/// One connection; calls go one at a time, each within the timeout given.
#[derive(Debug)]
pub struct DbusConnection {
    stream: UnixStream,
    serial: u32,
    /// A read or write failed part-way (a timeout, say) or a message could not be read:
    /// where the next message starts is unknown, so the connection is not used again.
    broken: bool,
}

impl DbusConnection {
    /// Connects to the bus listening on `socket`, authenticates as this process's user
    /// and says `Hello`, as a bus requires first.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, DbusError> {
        let stream = UnixStream::connect(socket).map_err(|source| DbusError::Io {
            what: format!("cannot connect to {}", socket.display()),
            source,
        })?;
        let mut connection = Self::on_stream(stream, timeout)?;
        connection.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )?;
        Ok(connection)
    }

    /// Authenticates on a connected stream, without `Hello`: a peer-to-peer connection,
    /// as tests make.
    pub fn on_stream(mut stream: UnixStream, timeout: Duration) -> Result<Self, DbusError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| DbusError::Io { what, source }
        };
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(io("cannot set socket timeouts"))?;
        let uid = nix::unistd::getuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(io("cannot authenticate to D-Bus"))?;
        let answer = read_line(&mut stream).map_err(io("cannot authenticate to D-Bus"))?;
        if !answer.starts_with("OK ") {
            return Err(DbusError::Auth(answer));
        }
        stream
            .write_all(b"BEGIN\r\n")
            .map_err(io("cannot authenticate to D-Bus"))?;
        Ok(Self {
            stream,
            serial: 0,
            broken: false,
        })
    }

    /// Whether an earlier call failed part-way through the stream; connect afresh.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Calls a method and waits for its reply (other messages meanwhile are dropped).
    /// After an I/O or protocol error the connection is broken for good
    /// ([`Self::is_broken`]); an error reply from the peer leaves it usable.
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Arg<'_>],
    ) -> Result<Reply, DbusError> {
        if self.broken {
            return Err(protocol("the connection broke on an earlier call"));
        }
        self.serial = self.serial.wrapping_add(1).max(1);
        let message = method_call(self.serial, destination, path, interface, member, args);
        let result = self.exchange(&message, &format!("{interface}.{member}"));
        if matches!(result, Err(DbusError::Io { .. } | DbusError::Protocol(_))) {
            self.broken = true;
        }
        result
    }

    /// Sends a method call (serial `self.serial`) and reads until its reply.
    fn exchange(&mut self, call: &[u8], method: &str) -> Result<Reply, DbusError> {
        let serial = self.serial;
        self.stream
            .write_all(call)
            .map_err(|source| DbusError::Io {
                what: format!("cannot send {method}"),
                source,
            })?;
        loop {
            let message = read_message(&mut self.stream).map_err(|e| match e {
                ReadError::Io(source) => DbusError::Io {
                    what: format!("no reply to {method}"),
                    source,
                },
                ReadError::Protocol(p) => protocol(p),
            })?;
            let header = parse_header(&message)?;
            if header.reply_serial != Some(serial) {
                continue;
            }
            let reply = Reply {
                big_endian: header.big_endian,
                signature: header.signature,
                message,
                body_start: header.body_start,
            };
            return match header.kind {
                METHOD_RETURN => Ok(reply),
                ERROR => {
                    let message = if reply.signature.starts_with('s') {
                        reply
                            .reader()
                            .string()
                            .map(str::to_string)
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    Err(DbusError::Method {
                        name: header.error_name.unwrap_or_default(),
                        message,
                    })
                }
                other => Err(protocol(format!("reply of message type {other}"))),
            };
        }
    }
}

/// A method's reply: its signature and its body, for [`Reply::reader`].
#[derive(Debug, Clone)]
pub struct Reply {
    big_endian: bool,
    signature: String,
    /// The whole message, kept rather than copying out its body (a `ListUnits` reply
    /// can be megabytes).
    message: Vec<u8>,
    body_start: usize,
}

impl Reply {
    /// Its D-Bus signature, e.g. `a(ssssssouso)`.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Reads the body from its start.
    pub fn reader(&self) -> BodyReader<'_> {
        BodyReader {
            buf: self.message.get(self.body_start..).unwrap_or_default(),
            pos: 0,
            big_endian: self.big_endian,
        }
    }
}

/// Reads values in order from a message body; every read checks bounds and alignment
/// padding, so a malformed body is an error and never a panic.
#[derive(Debug)]
pub struct BodyReader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> BodyReader<'a> {
    /// The offset from the body's start.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Skips the padding to a multiple of `n` (structs and 64-bit values: 8).
    pub fn align(&mut self, n: usize) -> Result<(), DbusError> {
        let to = self.pos.div_ceil(n) * n;
        if to > self.buf.len() {
            return Err(protocol("body ends inside padding"));
        }
        self.pos = to;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DbusError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| protocol("body ends early"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// `y`
    pub fn byte(&mut self) -> Result<u8, DbusError> {
        Ok(self.take(1)?[0])
    }

    /// `u`
    pub fn u32(&mut self) -> Result<u32, DbusError> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| protocol("u32"))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// `t`
    pub fn u64(&mut self) -> Result<u64, DbusError> {
        self.align(8)?;
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| protocol("u64"))?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// `s` or `o`
    pub fn string(&mut self) -> Result<&'a str, DbusError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err(protocol("string without its NUL"));
        }
        std::str::from_utf8(bytes).map_err(|_| protocol("string is not UTF-8"))
    }

    /// `g`
    pub fn signature(&mut self) -> Result<&'a str, DbusError> {
        let len = usize::from(self.byte()?);
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err(protocol("signature without its NUL"));
        }
        std::str::from_utf8(bytes).map_err(|_| protocol("signature is not ASCII"))
    }

    /// The start of an array whose elements align to `element_align`: returns the
    /// offset where its elements end; read elements while [`Self::position`] is below it.
    pub fn array(&mut self, element_align: usize) -> Result<usize, DbusError> {
        let len = self.u32()? as usize;
        self.align(element_align)?;
        self.pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| protocol("array is longer than the body"))
    }
}

fn read_line(stream: &mut UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 512 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "authentication line too long",
            ));
        }
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

/// One whole message, its length taken from the fixed part of its header.
fn read_message(stream: &mut impl Read) -> Result<Vec<u8>, ReadError> {
    let mut message = vec![0u8; 16];
    stream.read_exact(&mut message).map_err(ReadError::Io)?;
    let total = message_length(&message).map_err(ReadError::Protocol)?;
    message.resize(total, 0);
    stream
        .read_exact(&mut message[16..])
        .map_err(ReadError::Io)?;
    Ok(message)
}

/// The whole length of a message from its first 16 bytes.
fn message_length(fixed: &[u8]) -> Result<usize, String> {
    let big_endian = match fixed.first() {
        Some(b'l') => false,
        Some(b'B') => true,
        other => return Err(format!("unknown byte order {other:?}")),
    };
    let word = |at: usize| -> Result<usize, String> {
        let b: [u8; 4] = fixed
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or("header ends early")?;
        Ok(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        } as usize)
    };
    let body = word(4)?;
    let fields = word(12)?;
    let total = (16 + fields).div_ceil(8) * 8 + body;
    if total > MAX_MESSAGE {
        return Err(format!("a message of {total} bytes is over the limit"));
    }
    Ok(total)
}

struct Header {
    big_endian: bool,
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    signature: String,
    body_start: usize,
}

fn parse_header(message: &[u8]) -> Result<Header, DbusError> {
    let big_endian = message.first() == Some(&b'B');
    let kind = *message
        .get(1)
        .ok_or_else(|| protocol("header ends early"))?;
    let mut r = BodyReader {
        buf: message,
        pos: 12,
        big_endian,
    };
    let end = r.array(8)?;
    let mut header = Header {
        big_endian,
        kind,
        reply_serial: None,
        error_name: None,
        signature: String::new(),
        body_start: 0,
    };
    while r.position() < end {
        r.align(8)?;
        let code = r.byte()?;
        let signature = r.signature()?;
        match (code, signature) {
            (FIELD_REPLY_SERIAL, "u") => header.reply_serial = Some(r.u32()?),
            (FIELD_ERROR_NAME, "s") => header.error_name = Some(r.string()?.to_string()),
            (FIELD_SIGNATURE, "g") => header.signature = r.signature()?.to_string(),
            (_, "s" | "o") => {
                r.string()?;
            }
            (_, "u" | "h") => {
                r.u32()?;
            }
            (_, "g") => {
                r.signature()?;
            }
            (code, sig) => return Err(protocol(format!("header field {code} of type {sig:?}"))),
        }
    }
    r.align(8)?;
    header.body_start = r.position();
    Ok(header)
}

/// Writes values with the alignment rules of the specification; offsets count from the
/// message's start, which is also right for the body since it starts 8-aligned.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        let to = self.buf.len().div_ceil(n) * n;
        self.buf.resize(to, 0);
    }

    fn u32_at(&mut self, at: usize, value: u32) {
        self.buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.align(4);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn field(&mut self, code: u8, signature: &str, write: impl FnOnce(&mut Self)) {
        self.align(8);
        self.buf.push(code);
        self.signature(signature);
        write(self);
    }
}

fn method_call(
    serial: u32,
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    args: &[Arg<'_>],
) -> Vec<u8> {
    let signature: String = args
        .iter()
        .map(|a| match a {
            Arg::Str(_) => "s",
            Arg::StrArray(_) => "as",
        })
        .collect();
    let mut w = Writer {
        buf: Vec::with_capacity(256),
    };
    // Fixed part: little-endian, method call, no flags, version 1, body length (below),
    // serial, and the fields' array length (below).
    w.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    w.u32(0);
    w.u32(serial);
    w.u32(0);
    let fields_start = w.buf.len();
    w.field(FIELD_PATH, "o", |w| w.string(path));
    w.field(FIELD_INTERFACE, "s", |w| w.string(interface));
    w.field(FIELD_MEMBER, "s", |w| w.string(member));
    w.field(FIELD_DESTINATION, "s", |w| w.string(destination));
    if !signature.is_empty() {
        w.field(FIELD_SIGNATURE, "g", |w| w.signature(&signature));
    }
    let fields_len = w.buf.len() - fields_start;
    w.u32_at(12, fields_len as u32);
    w.align(8);
    let body_start = w.buf.len();
    for arg in args {
        match arg {
            Arg::Str(s) => w.string(s),
            Arg::StrArray(items) => {
                w.u32(0);
                let len_at = w.buf.len() - 4;
                let start = w.buf.len();
                for item in *items {
                    w.string(item);
                }
                let len = w.buf.len() - start;
                w.u32_at(len_at, len as u32);
            }
        }
    }
    let body_len = w.buf.len() - body_start;
    w.u32_at(4, body_len as u32);
    w.buf
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_method_call_is_laid_out_as_the_specification_says() {
        let m = method_call(
            7,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.DBus.Properties",
            "Get",
            &[Arg::Str("a"), Arg::StrArray(&["xy".to_string()])],
        );
        assert_eq!(&m[..4], b"l\x01\x00\x01");
        let header = parse_header(&m).expect("parses back");
        assert_eq!(header.signature, "sas");
        assert_eq!(header.body_start % 8, 0);
        assert_eq!(message_length(&m[..16]), Ok(m.len()));
        let body = Reply {
            big_endian: false,
            signature: header.signature,
            body_start: header.body_start,
            message: m.clone(),
        };
        let mut r = body.reader();
        assert_eq!(r.string().ok(), Some("a"));
        let end = r.array(4).expect("array");
        assert_eq!(r.string().ok(), Some("xy"));
        assert_eq!(r.position(), end);
    }

    #[test]
    fn big_endian_values_are_read() {
        let body = [0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let reply = Reply {
            big_endian: true,
            signature: "st".into(),
            message: body.to_vec(),
            body_start: 0,
        };
        let mut r = reply.reader();
        assert_eq!(r.string().ok(), Some("hi"));
        assert_eq!(r.u64().ok(), Some(9));
    }

    #[test]
    fn a_reply_cut_off_breaks_the_connection_for_good() {
        let (client, mut peer) = UnixStream::pair().expect("socket pair");
        let serving = std::thread::spawn(move || {
            let auth = read_line(&mut peer).expect("auth line");
            assert!(auth.starts_with("\0AUTH EXTERNAL "), "{auth:?}");
            peer.write_all(b"OK 0123456789abcdef\r\n").expect("ok");
            assert_eq!(read_line(&mut peer).expect("begin"), "BEGIN");
            read_message(&mut peer)
                .map_err(|_| "call")
                .expect("the call");
            // The first 10 of 16 header bytes, then silence: the peer stays connected.
            peer.write_all(b"l\x02\x00\x01\x00\x00\x00\x00\x01\x00")
                .expect("part");
            peer
        });
        let mut connection =
            DbusConnection::on_stream(client, Duration::from_millis(200)).expect("auth");
        let call = |c: &mut DbusConnection| c.call("d", "/p", "i.f", "M", &[]);
        assert!(matches!(call(&mut connection), Err(DbusError::Io { .. })));
        assert!(connection.is_broken());
        match call(&mut connection) {
            Err(DbusError::Protocol(m)) => assert!(m.contains("earlier call"), "{m}"),
            other => panic!("{other:?}"),
        }
        drop(serving.join().expect("peer"));
    }

    #[test]
    fn truncated_or_oversized_input_is_an_error() {
        let reply = Reply {
            big_endian: false,
            signature: "s".into(),
            message: vec![200, 0, 0, 0, b'x'],
            body_start: 0,
        };
        assert!(reply.reader().string().is_err());
        let mut fixed = *b"l\x02\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\x00\x00\x00\x00";
        assert!(message_length(&fixed).is_err());
        fixed[0] = b'x';
        assert!(message_length(&fixed).is_err());
    }

    proptest! {
        #[test]
        fn headers_and_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = message_length(&bytes);
            let _ = parse_header(&bytes);
            let reply = Reply { big_endian: false, signature: String::new(), message: bytes, body_start: 0};
            let mut r = reply.reader();
            let _ = r.array(8);
            let _ = r.string();
            let _ = r.u64();
            let _ = r.signature();
        }
    }
}
