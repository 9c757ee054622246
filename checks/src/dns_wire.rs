//! The DNS messages the `dns` check exchanges with a given resolver (RFC 1035): one
//! recursive query for A or AAAA records, and the reply's header, question and answers.
//!
//! The decoder reads untrusted bytes from the network, so it only ever indexes through
//! checked look-ups, follows at most [`MAX_POINTERS`] compression pointers per name, and
//! returns an error for anything it cannot read; it is property-tested never to panic.
//! Records of other types in the answer (the CNAME chain before the addresses, DNSSEC
//! signatures) are counted and skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name before it is called a loop.
const MAX_POINTERS: usize = 32;

/// The record types the check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

impl RecordType {
    /// Its code on the wire.
    pub(crate) fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }

    /// `A` or `AAAA`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        }
    }
}

/// A reply, as far as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The query id it answers.
    pub(crate) id: u16,
    /// TC: the answer did not fit into the datagram.
    pub(crate) truncated: bool,
    /// The response code (0 NOERROR, 3 NXDOMAIN, ...).
    pub(crate) rcode: u8,
    /// The question's name, lower case, without the final dot.
    pub(crate) question: Option<(String, u16)>,
    /// The addresses of the asked type, in answer order.
    pub(crate) addresses: Vec<IpAddr>,
    /// Answer records of other types (CNAME, RRSIG, ...).
    pub(crate) other_answers: usize,
}

/// Why a message could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireError(pub(crate) String);

fn err(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

/// The name of a response code.
pub(crate) fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

/// Checks a name the check will ask about: labels of 1 to 63 bytes, 253 bytes in all.
pub(crate) fn check_name(name: &str) -> Result<(), WireError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(err("empty name"));
    }
    if trimmed.len() > 253 {
        return Err(err("name longer than 253 bytes"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(err(format!("{name:?}: every label must be 1 to 63 bytes")));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(format!(
                "{name:?}: only letters, digits, '-' and '_' in labels"
            )));
        }
    }
    Ok(())
}

/// A recursive query for `name`'s records of `rtype`, with `id`.
pub(crate) fn encode_query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, WireError> {
    check_name(name)?;
    let mut msg = Vec::with_capacity(18 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    msg.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    msg.extend_from_slice(&[0; 6]); // AN, NS, AR
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    for label in trimmed.split('.') {
        // check_name bounds each label to 63 bytes.
        msg.push(u8::try_from(label.len()).map_err(|_| err("label too long"))?);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&rtype.code().to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(msg)
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, WireError> {
    match msg.get(at..at.saturating_add(2)) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(err("message cut short")),
    }
}

/// Reads the name at `at`; returns it (lower case, dot-separated) and where the bytes
/// after it start.
fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut pos = at;
    let mut after = None;
    let mut pointers = 0;
    loop {
        let len = *msg
            .get(pos)
            .ok_or_else(|| err("name runs past the message"))?;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    return Ok((name, after.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or_else(|| err("label runs past the message"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| char::from(b.to_ascii_lowercase())));
                if name.len() > 255 {
                    return Err(err("name longer than 255 bytes"));
                }
                pos += 1 + usize::from(len);
            }
            0xC0 => {
                let target = usize::from(u16_at(msg, pos)? & 0x3FFF);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(err("compression pointer loop"));
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(err("unknown label type")),
        }
    }
}

/// Decodes a reply to a query of `rtype`.
pub(crate) fn decode_reply(msg: &[u8], rtype: RecordType) -> Result<Reply, WireError> {
    if msg.len() < 12 {
        return Err(err("shorter than a DNS header"));
    }
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err(err("not a response"));
    }
    let qdcount = u16_at(msg, 4)?;
    let ancount = u16_at(msg, 6)?;
    let mut reply = Reply {
        id,
        truncated: flags & 0x0200 != 0,
        rcode: u8::try_from(flags & 0x000F).unwrap_or(0),
        question: None,
        addresses: Vec::new(),
        other_answers: 0,
    };
    let mut pos = 12;
    for i in 0..qdcount {
        let (name, next) = read_name(msg, pos)?;
        let qtype = u16_at(msg, next)?;
        u16_at(msg, next + 2)?;
        if i == 0 {
            reply.question = Some((name, qtype));
        }
        pos = next + 4;
    }
    for _ in 0..ancount {
        if reply.truncated && pos >= msg.len() {
            break;
        }
        let (_, next) = read_name(msg, pos)?;
        let typ = u16_at(msg, next)?;
        let class = u16_at(msg, next + 2)?;
        let rdlength = usize::from(u16_at(msg, next + 8)?);
        let rdata = msg
            .get(next + 10..next + 10 + rdlength)
            .ok_or_else(|| err("record data runs past the message"))?;
        pos = next + 10 + rdlength;
        match (typ, class, rdata.len()) {
            (1, 1, 4) if rtype == RecordType::A => {
                let b: [u8; 4] = rdata.try_into().map_err(|_| err("bad A record"))?;
                reply.addresses.push(IpAddr::V4(Ipv4Addr::from(b)));
            }
            (28, 1, 16) if rtype == RecordType::Aaaa => {
                let b: [u8; 16] = rdata.try_into().map_err(|_| err("bad AAAA record"))?;
                reply.addresses.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            (t, _, _) if t == rtype.code() => {
                return Err(err(format!(
                    "{} record of {} bytes",
                    rtype.as_str(),
                    rdata.len()
                )));
            }
            _ => reply.other_answers += 1,
        }
    }
    Ok(reply)
}

/// The first two bytes of a TCP DNS message: its length.
pub(crate) fn tcp_frame(msg: &[u8]) -> Result<Vec<u8>, WireError> {
    let len = u16::try_from(msg.len()).map_err(|_| err("message too long for TCP"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reply to `query` (its id and question copied) with `rcode`, a CNAME to the
    /// question's name first, then one A record per address, names compressed.
    pub(crate) fn reply_to(query: &[u8], rcode: u8, addrs: &[Ipv4Addr]) -> Vec<u8> {
        let question_end = query.len();
        let mut msg = query[..2].to_vec();
        msg.extend_from_slice(&(0x8180u16 | u16::from(rcode)).to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        msg.extend_from_slice(&u16::try_from(addrs.len() + 1).expect("few").to_be_bytes());
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&query[12..question_end]);
        // CNAME: owner = question name (pointer to 12), target = "alias" + pointer.
        msg.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 8]);
        msg.extend_from_slice(&[5, b'a', b'l', b'i', b'a', b's', 0xC0, 12]);
        for a in addrs {
            msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            msg.extend_from_slice(&a.octets());
        }
        msg
    }

    #[test]
    fn a_query_round_trips_through_a_reply() {
        let q = encode_query(0xBEEF, "Example.COM.", RecordType::A).expect("query");
        assert_eq!(&q[..4], &[0xBE, 0xEF, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07Example\x03COM\x00\x00\x01\x00\x01");
        let r = decode_reply(
            &reply_to(&q, 0, &[Ipv4Addr::new(10, 1, 2, 3)]),
            RecordType::A,
        )
        .expect("reply");
        assert_eq!(r.id, 0xBEEF);
        assert_eq!(r.rcode, 0);
        assert_eq!(r.question, Some(("example.com".to_string(), 1)));
        assert_eq!(r.addresses, vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))]);
        assert_eq!(r.other_answers, 1);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("a.example").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name("a b.example").is_err());
        assert!(encode_query(1, &format!("{}.x", "a".repeat(63)), RecordType::Aaaa).is_ok());
    }

    #[test]
    fn hostile_replies_are_refused() {
        let q = encode_query(7, "a.example", RecordType::A).expect("query");
        let mut looped = reply_to(&q, 0, &[Ipv4Addr::LOCALHOST]);
        // Point the question's name at itself.
        looped[12] = 0xC0;
        looped[13] = 12;
        assert!(decode_reply(&looped, RecordType::A).is_err());
        assert!(
            decode_reply(&q, RecordType::A).is_err(),
            "a query is not a reply"
        );
        assert!(decode_reply(&[0x80; 11], RecordType::A).is_err());
        let full = reply_to(&q, 0, &[Ipv4Addr::LOCALHOST]);
        for cut in 12..full.len() {
            assert!(
                decode_reply(&full[..cut], RecordType::A).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_reply(&bytes, RecordType::A);
            let _ = decode_reply(&bytes, RecordType::Aaaa);
        }

        #[test]
        fn the_decoder_never_panics_on_damaged_replies(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let q = encode_query(7, "www.a.example", RecordType::A).expect("query");
            let mut msg = reply_to(&q, 0, &[Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)]);
            for (at, b) in edits {
                let i = at % msg.len();
                msg[i] = b;
            }
            let _ = decode_reply(&msg, RecordType::A);
        }
    }
}
