//! `[[checks.dns]]`: a name resolves, how fast, and to what.
//!
//! ```toml
//! [[checks.dns]]
//! name = "dns-www"
//! query = "www.example.com"
//! # server = "10.0.0.53"         # ask this resolver (port 53 unless given) over UDP;
//! #                              # default: the system's resolver (getaddrinfo)
//! record_type = "A"              # A or AAAA; default A with a server, both without
//! expect = ["93.184.216.34"]     # optional: each must be among the answers
//! warning_time = "200ms"         # lookup time limits, both optional
//! critical_time = "1s"
//! ```
//!
//! Without `server` the check asks the system resolver, as every program on the host
//! does (`/etc/hosts`, `nsswitch.conf`, `resolv.conf`, a local cache): the answer a
//! service would get. With `server` it sends one recursive query over UDP (resent every
//! second until the deadline, retried over TCP when the answer is truncated), so a
//! resolver can be checked on its own; replies with the wrong id or question are
//! ignored.
//!
//! States: addresses found (and every `expect` among them) OK; NXDOMAIN, SERVFAIL, any
//! other error code, no address of the type, a failed or timed-out lookup, an expected
//! address missing: CRITICAL; a lookup time at a limit: WARNING or CRITICAL.
//!
//! Samples: `sysward_check_dns_lookup_seconds`, `sysward_check_dns_answers` (addresses
//! of the asked type), and with `server`, `sysward_check_dns_rcode` (the response code,
//! 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN).

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::dns_wire::{self, RecordType, Reply};
use super::net::{self, Deadline, DeadlineStream, NetError};
use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Time of the lookup.
pub const LOOKUP_SECONDS: &str = "sysward_check_dns_lookup_seconds";
/// Addresses of the asked type in the answer.
pub const ANSWERS: &str = "sysward_check_dns_answers";
/// The response code from a given server.
pub const RCODE: &str = "sysward_check_dns_rcode";

/// Time between resending a UDP query that got no answer.
const RESEND: Duration = Duration::from_secs(1);

/// One `[[checks.dns]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheckConfig {
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
    /// The name to resolve.
    pub query: String,
    /// A resolver to ask directly: an IP address, with `:port` if not 53.
    #[serde(default)]
    pub server: Option<String>,
    /// `A` or `AAAA` (default `A` with a server, both without).
    #[serde(default)]
    pub record_type: Option<String>,
    /// Addresses that must all be among the answers.
    #[serde(default)]
    pub expect: Vec<String>,
    /// A lookup time from which the check is WARNING.
    #[serde(default, deserialize_with = "super::duration")]
    pub warning_time: Option<Duration>,
    /// A lookup time from which the check is CRITICAL.
    #[serde(default, deserialize_with = "super::duration")]
    pub critical_time: Option<Duration>,
}

pub(crate) fn build(c: &DnsCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    dns_wire::check_name(&c.query).map_err(|e| format!("query: {e}"))?;
    let rtype = match c
        .record_type
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None => None,
        Some("A") => Some(RecordType::A),
        Some("AAAA") => Some(RecordType::Aaaa),
        Some(other) => return Err(format!("record_type: {other:?} (A or AAAA)")),
    };
    let server = c
        .server
        .as_deref()
        .map(|s| -> Result<SocketAddr, String> {
            let (host, port) = sysward_wire::addr::split_host_port(s, Some(53))
                .map_err(|e| format!("server: {e}"))?;
            let ip: IpAddr = host
                .parse()
                .map_err(|_| format!("server: {host:?} is not an IP address"))?;
            Ok(SocketAddr::new(ip, port))
        })
        .transpose()?;
    let expect = c
        .expect
        .iter()
        .map(|e| {
            e.parse::<IpAddr>()
                .map_err(|_| format!("expect: {e:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(t) = rtype
        && let Some(bad) = expect
            .iter()
            .find(|ip| ip.is_ipv4() != (t == RecordType::A))
    {
        return Err(format!(
            "expect: {bad} can never be an {} record",
            t.as_str()
        ));
    }
    net::check_order("time", c.warning_time, c.critical_time)?;
    // A resolver is asked one question: A unless told otherwise.
    let rtype = if server.is_some() {
        Some(rtype.unwrap_or(RecordType::A))
    } else {
        rtype
    };
    let probe = DnsProbe {
        query: c
            .query
            .strip_suffix('.')
            .unwrap_or(&c.query)
            .to_ascii_lowercase(),
        rtype,
        server,
        expect,
        warning_time: c.warning_time,
        critical_time: c.critical_time,
    };
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

#[derive(Debug)]
struct DnsProbe {
    query: String,
    rtype: Option<RecordType>,
    server: Option<SocketAddr>,
    expect: Vec<IpAddr>,
    warning_time: Option<Duration>,
    critical_time: Option<Duration>,
}

impl Probe for DnsProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Deadline::after(timeout);
        match self.server {
            None => self.run_system(&deadline),
            Some(server) => self.run_server(server, &deadline),
        }
    }
}

impl DnsProbe {
    fn type_text(&self) -> &'static str {
        self.rtype.map_or("A/AAAA", RecordType::as_str)
    }

    fn run_system(&self, deadline: &Deadline) -> ProbeResult {
        let (addrs, took) = match net::resolve(&self.query, 0, deadline) {
            Ok(found) => found,
            Err(e) => return ProbeResult::new(CheckState::Critical, e.to_string()),
        };
        let answers: Vec<IpAddr> = addrs
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| match self.rtype {
                None => true,
                Some(RecordType::A) => ip.is_ipv4(),
                Some(RecordType::Aaaa) => ip.is_ipv6(),
            })
            .collect();
        let mut r = self.judge(&answers, took, "the system resolver");
        r.samples
            .push(Sample::new(LOOKUP_SECONDS, Kind::Gauge, took.as_secs_f64()));
        r
    }

    fn run_server(&self, server: SocketAddr, deadline: &Deadline) -> ProbeResult {
        let rtype = self.rtype.unwrap_or(RecordType::A);
        let (reply, took) = match ask(server, &self.query, rtype, deadline) {
            Ok(found) => found,
            Err(e) => return ProbeResult::new(CheckState::Critical, format!("{server}: {e}")),
        };
        let mut r = if reply.rcode != 0 {
            let mut r = ProbeResult::new(
                CheckState::Critical,
                format!(
                    "{} {}: {} from {server} in {}",
                    self.query,
                    rtype.as_str(),
                    dns_wire::rcode_name(reply.rcode),
                    net::secs(took)
                ),
            );
            r.samples.push(Sample::new(ANSWERS, Kind::Gauge, 0.0));
            r
        } else {
            self.judge(&reply.addresses, took, &server.to_string())
        };
        r.samples
            .push(Sample::new(LOOKUP_SECONDS, Kind::Gauge, took.as_secs_f64()));
        r.samples
            .push(Sample::new(RCODE, Kind::Gauge, f64::from(reply.rcode)));
        r
    }

    /// The verdict on the addresses found.
    fn judge(&self, answers: &[IpAddr], took: Duration, from: &str) -> ProbeResult {
        let list = answers
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut problems: Vec<(CheckState, String)> = Vec::new();
        if answers.is_empty() {
            problems.push((
                CheckState::Critical,
                format!("no {} records", self.type_text()),
            ));
        }
        let missing: Vec<String> = self
            .expect
            .iter()
            .filter(|e| !answers.contains(e))
            .map(IpAddr::to_string)
            .collect();
        if !missing.is_empty() && !answers.is_empty() {
            problems.push((
                CheckState::Critical,
                format!("expected {} among the answers", missing.join(", ")),
            ));
        }
        let time_state = net::time_state(took, self.warning_time, self.critical_time);
        if time_state != CheckState::Ok {
            problems.push((time_state, format!("lookup took {}", net::secs(took))));
        }
        let summary = format!(
            "{} {}: {} from {from} in {}",
            self.query,
            self.type_text(),
            if list.is_empty() { "nothing" } else { &list },
            net::secs(took)
        );
        let state = problems
            .iter()
            .fold(CheckState::Ok, |s, (p, _)| net::worse(s, *p));
        let output = if problems.is_empty() {
            summary
        } else {
            let list: Vec<_> = problems.iter().map(|(_, m)| m.as_str()).collect();
            format!("{}; {summary}", list.join("; "))
        };
        let mut r = ProbeResult::new(state, output);
        r.samples
            .push(Sample::new(ANSWERS, Kind::Gauge, answers.len() as f64));
        r
    }
}

/// A query id no one on the path can guess easily: std's per-process random hash keys.
fn random_id() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() & 0xFFFF) as u16
}

/// Asks `server` over UDP (and TCP when the answer is truncated); returns the reply to
/// our question and the time it took.
fn ask(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    deadline: &Deadline,
) -> Result<(Reply, Duration), NetError> {
    let id = random_id();
    let query =
        dns_wire::encode_query(id, name, rtype).map_err(|e| NetError::Other(e.to_string()))?;
    let ours =
        |r: &Reply| r.id == id && r.question.as_ref() == Some(&(name.to_string(), rtype.code()));
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let io = |phase, e| NetError::io(phase, e, deadline);
    let socket = UdpSocket::bind(bind).map_err(|e| io("opening a UDP socket", e))?;
    socket
        .connect(server)
        .map_err(|e| io("connecting the UDP socket", e))?;
    let started = Instant::now();
    socket
        .send(&query)
        .map_err(|e| io("sending the query", e))?;
    let mut resend_at = started + RESEND;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline
            .remaining()
            .ok_or_else(|| deadline.timed_out("waiting for the answer"))?;
        let wait = left.min(resend_at.saturating_duration_since(Instant::now()));
        socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| io("waiting for the answer", e))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                // Anything that is not the answer to our question is ignored: a late
                // answer to an earlier run, or a spoofing attempt.
                let Ok(reply) = dns_wire::decode_reply(&buf[..n], rtype) else {
                    continue;
                };
                if !ours(&reply) {
                    continue;
                }
                if reply.truncated {
                    return ask_tcp(server, &query, rtype, deadline)
                        .and_then(|r| {
                            if ours(&r) {
                                Ok(r)
                            } else {
                                Err(NetError::Other("TCP answer to another question".into()))
                            }
                        })
                        .map(|r| (r, started.elapsed()));
                }
                return Ok((reply, started.elapsed()));
            }
            Err(e) if net::is_timeout(&e) => {
                if Instant::now() >= resend_at {
                    socket
                        .send(&query)
                        .map_err(|e| io("resending the query", e))?;
                    resend_at = Instant::now() + RESEND;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(NetError::Other(
                    "no DNS server there (port unreachable)".into(),
                ));
            }
            Err(e) => return Err(io("waiting for the answer", e)),
        }
    }
}

/// The same query over TCP, for an answer too large for a datagram.
fn ask_tcp(
    server: SocketAddr,
    query: &[u8],
    rtype: RecordType,
    deadline: &Deadline,
) -> Result<Reply, NetError> {
    let (tcp, _, _) = net::connect(&[server], deadline)?;
    let mut stream = DeadlineStream::new(tcp, deadline);
    let frame = dns_wire::tcp_frame(query).map_err(|e| NetError::Other(e.to_string()))?;
    stream
        .write_all(&frame)
        .map_err(|e| NetError::io("sending the query over TCP", e, deadline))?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .map_err(|e| NetError::io("reading the TCP answer", e, deadline))?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut msg)
        .map_err(|e| NetError::io("reading the TCP answer", e, deadline))?;
    dns_wire::decode_reply(&msg, rtype).map_err(|e| NetError::Other(format!("bad TCP answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_wire::tests::reply_to;
    use std::net::{Ipv4Addr, TcpListener};

    fn config(text: &str) -> DnsCheckConfig {
        toml::from_str(&format!("name = \"d\"\n{text}")).expect("config")
    }

    fn run(text: &str, timeout: Duration) -> ProbeResult {
        let (mut probe, _, _) = build(&config(text)).expect("build");
        probe.run(timeout)
    }

    fn sample(r: &ProbeResult, name: &str) -> Option<f64> {
        r.samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    /// The name in a query (labels joined with dots).
    fn qname(query: &[u8]) -> String {
        let mut out = Vec::new();
        let mut pos = 12;
        while let Some(&len) = query.get(pos) {
            if len == 0 {
                break;
            }
            let label = &query[pos + 1..pos + 1 + usize::from(len)];
            out.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            pos += 1 + usize::from(len);
        }
        out.join(".")
    }

    /// A fake resolver on 127.0.0.1 (UDP, and TCP on the same port): `a.test` is
    /// 10.1.2.3 and 10.1.2.4 (after a reply with a wrong id), `gone.test` is NXDOMAIN,
    /// `slow.test` never answers, `big.test` is truncated over UDP and whole over TCP.
    fn fake_resolver() -> u16 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        let tcp = TcpListener::bind(("127.0.0.1", port)).expect("bind tcp on the same port");
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                let q = &buf[..n];
                let a = [Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 1, 2, 4)];
                match qname(q).as_str() {
                    "a.test" => {
                        let mut wrong = reply_to(q, 0, &[Ipv4Addr::new(6, 6, 6, 6)]);
                        wrong[0] ^= 0xFF;
                        let _ = udp.send_to(&wrong, peer);
                        let _ = udp.send_to(b"junk", peer);
                        let _ = udp.send_to(&reply_to(q, 0, &a), peer);
                    }
                    "gone.test" => {
                        let _ = udp.send_to(&reply_to(q, 3, &[]), peer);
                    }
                    "big.test" => {
                        let mut r = reply_to(q, 0, &[]);
                        r[2] |= 0x02; // TC
                        let _ = udp.send_to(&r, peer);
                    }
                    _ => {}
                }
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut q).is_err() {
                    continue;
                }
                let r = reply_to(&q, 0, &[Ipv4Addr::new(10, 9, 9, 9)]);
                let _ = conn.write_all(&dns_wire::tcp_frame(&r).expect("frame"));
            }
        });
        port
    }

    #[test]
    fn a_given_resolver_answers_and_expectations_hold() {
        let port = fake_resolver();
        let base = format!("server = \"127.0.0.1:{port}\"");
        let r = run(
            &format!("{base}\nquery = \"A.test.\"\nexpect = [\"10.1.2.4\"]"),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output.starts_with(&format!(
                "a.test A: 10.1.2.3, 10.1.2.4 from 127.0.0.1:{port} in "
            )),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, ANSWERS), Some(2.0));
        assert_eq!(sample(&r, RCODE), Some(0.0));
        assert!(sample(&r, LOOKUP_SECONDS).is_some());

        let r = run(
            &format!("{base}\nquery = \"a.test\"\nexpect = [\"10.1.2.3\", \"10.0.0.1\"]"),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .starts_with("expected 10.0.0.1 among the answers; "),
            "{}",
            r.output
        );

        let r = run(
            &format!("{base}\nquery = \"a.test\"\nwarning_time = \"0ms\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
    }

    #[test]
    fn nxdomain_silence_and_truncation() {
        let port = fake_resolver();
        let base = format!("server = \"127.0.0.1:{port}\"");
        let r = run(
            &format!("{base}\nquery = \"gone.test\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .starts_with("gone.test A: NXDOMAIN from 127.0.0.1:"),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, RCODE), Some(3.0));
        assert_eq!(sample(&r, ANSWERS), Some(0.0));

        let started = Instant::now();
        let r = run(
            &format!("{base}\nquery = \"slow.test\""),
            Duration::from_millis(1500),
        );
        assert!(started.elapsed() < Duration::from_millis(2000));
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .contains("timed out after 1.425s while waiting for the answer"),
            "{}",
            r.output
        );

        let r = run(
            &format!("{base}\nquery = \"big.test\""),
            Duration::from_secs(3),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(r.output.contains("10.9.9.9"), "{}", r.output);
    }

    #[test]
    fn a_port_without_a_resolver_is_critical() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        drop(sock);
        let r = run(
            &format!("server = \"127.0.0.1:{port}\"\nquery = \"a.test\""),
            Duration::from_secs(2),
        );
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output.contains("port unreachable") || r.output.contains("timed out"),
            "{}",
            r.output
        );
    }

    #[test]
    fn the_system_resolver_finds_localhost_and_fails_an_invalid_name() {
        let r = run(
            "query = \"localhost\"\nrecord_type = \"A\"",
            Duration::from_secs(5),
        );
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output.contains("127.0.0.1 from the system resolver"),
            "{}",
            r.output
        );
        let r = run("query = \"nonexistent.invalid\"", Duration::from_secs(5));
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output.starts_with("cannot resolve nonexistent.invalid: ")
                || r.output.contains("timed out"),
            "{}",
            r.output
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for (text, why) in [
            ("query = \"a..b\"", "query"),
            ("query = \"a\"\nrecord_type = \"MX\"", "A or AAAA"),
            (
                "query = \"a\"\nserver = \"dns.example\"",
                "not an IP address",
            ),
            ("query = \"a\"\nexpect = [\"x\"]", "not an IP address"),
            (
                "query = \"a\"\nrecord_type = \"AAAA\"\nexpect = [\"10.0.0.1\"]",
                "never be an AAAA",
            ),
            (
                "query = \"a\"\nwarning_time = \"2s\"\ncritical_time = \"1s\"",
                "must not be past",
            ),
        ] {
            let err = build(&config(text))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
