//! `[[checks.tcp]]`: a port accepts connections, how fast, and optionally what it says.
//!
//! ```toml
//! [[checks.tcp]]
//! name = "redis"
//! address = "127.0.0.1:6379"   # host:port, [v6]:port
//! send = "PING\r\n"            # optional: written after connecting
//! expect = "+PONG"             # optional: must appear in what the peer sends
//! read_limit = "4KiB"          # read at most this much waiting for `expect`
//! warning_time = "200ms"       # connect time limits, both optional
//! critical_time = "1s"
//! ```
//!
//! States: connected (and `expect` seen) OK; refused, unreachable, timed out, closed
//! before `expect`, or `expect` not within `read_limit`: CRITICAL; a connect time at a
//! limit: WARNING or CRITICAL. Samples: `sysward_check_tcp_dns_seconds` (0 for an IP
//! address) and `sysward_check_tcp_connect_seconds`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::net::{self, Deadline, DeadlineStream, NetError};
use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Time to resolve the host (0 for an IP address).
pub const DNS_SECONDS: &str = "sysward_check_tcp_dns_seconds";
/// Time to connect (every address tried included).
pub const CONNECT_SECONDS: &str = "sysward_check_tcp_connect_seconds";

/// Default `read_limit`.
const DEFAULT_READ_LIMIT: u64 = 4096;

/// One `[[checks.tcp]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheckConfig {
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
    /// `host:port` or `[v6]:port`.
    pub address: String,
    /// Written once connected.
    #[serde(default)]
    pub send: Option<String>,
    /// Must appear in what the peer sends (read until it does, the limit, the end or the
    /// deadline).
    #[serde(default)]
    pub expect: Option<String>,
    /// At most this much is read waiting for `expect` (default 4 KiB).
    #[serde(default, deserialize_with = "net::size")]
    pub read_limit: Option<u64>,
    /// A connect time from which the check is WARNING.
    #[serde(default, deserialize_with = "super::duration")]
    pub warning_time: Option<Duration>,
    /// A connect time from which the check is CRITICAL.
    #[serde(default, deserialize_with = "super::duration")]
    pub critical_time: Option<Duration>,
}

pub(crate) fn build(c: &TcpCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let (host, port) = sysward_wire::addr::split_host_port(&c.address, None)
        .map_err(|e| format!("address: {e}"))?;
    net::check_order("time", c.warning_time, c.critical_time)?;
    if c.expect.as_deref() == Some("") {
        return Err("expect: empty (leave it out to only connect)".into());
    }
    let read_limit = c.read_limit.unwrap_or(DEFAULT_READ_LIMIT);
    if read_limit == 0 || read_limit > 1 << 20 {
        return Err("read_limit: from 1 byte to 1 MiB".into());
    }
    let probe = TcpProbe {
        host,
        port,
        send: c.send.clone().map(String::into_bytes),
        expect: c.expect.clone(),
        read_limit: usize::try_from(read_limit).unwrap_or(4096),
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

/// A built tcp check.
#[derive(Debug)]
struct TcpProbe {
    host: String,
    port: u16,
    send: Option<Vec<u8>>,
    expect: Option<String>,
    read_limit: usize,
    warning_time: Option<Duration>,
    critical_time: Option<Duration>,
}

impl Probe for TcpProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Deadline::after(timeout);
        let mut samples = Vec::new();
        let result = self.exchange(&deadline, &mut samples);
        let mut r = match result {
            Ok(r) => r,
            Err(e) => ProbeResult::new(CheckState::Critical, e.to_string()),
        };
        r.samples = samples;
        r
    }
}

impl TcpProbe {
    fn exchange(
        &self,
        deadline: &Deadline,
        samples: &mut Vec<Sample>,
    ) -> Result<ProbeResult, NetError> {
        let (addrs, dns) = net::resolve(&self.host, self.port, deadline)?;
        samples.push(Sample::new(DNS_SECONDS, Kind::Gauge, dns.as_secs_f64()));
        let (stream, addr, took) = net::connect(&addrs, deadline)?;
        samples.push(Sample::new(
            CONNECT_SECONDS,
            Kind::Gauge,
            took.as_secs_f64(),
        ));
        let mut output = format!("connected to {addr} in {}", net::secs(took));
        let mut stream = DeadlineStream::new(stream, deadline);
        if let Some(send) = &self.send {
            stream
                .write_all(send)
                .map_err(|e| NetError::io("sending", e, deadline))?;
        }
        if let Some(expect) = &self.expect {
            let started = Instant::now();
            let got = read_until(&mut stream, expect.as_bytes(), self.read_limit, deadline)?;
            let seen = net::excerpt(&got.data, 80);
            if !got.found {
                let why = if got.closed {
                    "the peer closed the connection"
                } else {
                    "read_limit reached"
                };
                let what = if got.data.is_empty() {
                    "nothing".to_string()
                } else {
                    format!("{seen:?}")
                };
                return Ok(ProbeResult::new(
                    CheckState::Critical,
                    format!("{output}; expected {expect:?}, got {what} ({why})"),
                ));
            }
            output.push_str(&format!(
                "; got {seen:?} after {}",
                net::secs(started.elapsed())
            ));
        }
        let state = net::time_state(took, self.warning_time, self.critical_time);
        if state != CheckState::Ok {
            output.push_str(" (connect time past its limit)");
        }
        Ok(ProbeResult::new(state, output))
    }
}

/// What was read waiting for the expected bytes.
#[derive(Debug)]
struct Received {
    data: Vec<u8>,
    found: bool,
    closed: bool,
}

fn read_until<R: Read>(
    stream: &mut R,
    expect: &[u8],
    limit: usize,
    deadline: &Deadline,
) -> Result<Received, NetError> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if data.windows(expect.len()).any(|w| w == expect) {
            return Ok(Received {
                data,
                found: true,
                closed: false,
            });
        }
        if data.len() >= limit {
            return Ok(Received {
                data,
                found: false,
                closed: false,
            });
        }
        let want = (limit - data.len()).min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => {
                return Ok(Received {
                    data,
                    found: false,
                    closed: true,
                });
            }
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NetError::io("waiting for the expected reply", e, deadline)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    fn config(toml_text: &str) -> TcpCheckConfig {
        toml::from_str(toml_text).expect("config")
    }

    fn probe(toml_text: &str) -> Box<dyn Probe> {
        build(&config(toml_text)).expect("build").0
    }

    /// A port that nothing listens on: bound, then closed.
    pub(crate) fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// A server that answers each connection with `reply(what it read first)`.
    fn server(reply: fn(&[u8]) -> Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        thread::spawn(move || {
            for conn in l.incoming().take(4) {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 256];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                let n = conn.read(&mut buf).unwrap_or(0);
                let _ = conn.write_all(&reply(&buf[..n]));
            }
        });
        port
    }

    fn sample(r: &ProbeResult, name: &str) -> Option<f64> {
        r.samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn an_open_port_is_ok_with_its_connect_time() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let r = probe(&format!("name = \"t\"\naddress = \"127.0.0.1:{port}\""))
            .run(Duration::from_secs(2));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output
                .starts_with(&format!("connected to 127.0.0.1:{port}")),
            "{}",
            r.output
        );
        assert!(sample(&r, CONNECT_SECONDS).is_some_and(|v| (0.0..2.0).contains(&v)));
        assert_eq!(sample(&r, DNS_SECONDS), Some(0.0));
    }

    #[test]
    fn a_closed_port_is_critical() {
        let port = closed_port();
        let r = probe(&format!("name = \"t\"\naddress = \"127.0.0.1:{port}\""))
            .run(Duration::from_secs(2));
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("connection refused"), "{}", r.output);
        assert_eq!(sample(&r, CONNECT_SECONDS), None);
    }

    #[test]
    fn send_and_expect() {
        let port = server(|got| {
            if got == b"PING\r\n" {
                b"+PONG\r\n".to_vec()
            } else {
                b"-ERR\r\n".to_vec()
            }
        });
        let base = format!("name = \"t\"\naddress = \"localhost:{port}\"\nsend = \"PING\\r\\n\"\n");
        let ok = probe(&format!("{base}expect = \"+PONG\"")).run(Duration::from_secs(3));
        assert_eq!(ok.state, CheckState::Ok, "{}", ok.output);
        assert!(ok.output.contains("got \"+PONG\""), "{}", ok.output);
        let bad = probe(&format!("{base}expect = \"+OK\"")).run(Duration::from_secs(3));
        assert_eq!(bad.state, CheckState::Critical, "{}", bad.output);
        assert!(
            bad.output.contains("expected \"+OK\", got \"+PONG\""),
            "{}",
            bad.output
        );
    }

    #[test]
    fn a_silent_peer_times_out_and_the_read_limit_holds() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let hold = thread::spawn(move || {
            let (conn, _) = l.accept().expect("accept");
            thread::sleep(Duration::from_millis(800));
            drop(conn);
        });
        let started = Instant::now();
        let r = probe(&format!(
            "name = \"t\"\naddress = \"127.0.0.1:{port}\"\nexpect = \"x\""
        ))
        .run(Duration::from_millis(400));
        assert!(started.elapsed() < Duration::from_millis(700));
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("timed out after"), "{}", r.output);
        let _ = hold.join();

        let port = server(|_| vec![b'a'; 100]);
        let r = probe(&format!("name = \"t\"\naddress = \"127.0.0.1:{port}\"\nsend = \"x\"\nexpect = \"b\"\nread_limit = \"10B\"")).run(Duration::from_secs(3));
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.contains("read_limit reached"), "{}", r.output);
        let _ = TcpStream::connect(("127.0.0.1", port));
    }

    #[test]
    fn connect_time_limits() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let r = probe(&format!(
            "name = \"t\"\naddress = \"127.0.0.1:{port}\"\nwarning_time = \"0ms\""
        ))
        .run(Duration::from_secs(2));
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
    }

    #[test]
    fn bad_configs_are_refused() {
        for (text, why) in [
            ("address = \"localhost\"", "no port"),
            ("address = \"localhost:99999\"", "not a port"),
            ("address = \"a:1\"\nexpect = \"\"", "empty"),
            (
                "address = \"a:1\"\nwarning_time = \"2s\"\ncritical_time = \"1s\"",
                "must not be past",
            ),
            ("address = \"a:1\"\nread_limit = \"2MiB\"", "read_limit"),
        ] {
            let err = build(&config(&format!("name = \"t\"\n{text}")))
                .err()
                .expect(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(
            toml::from_str::<TcpCheckConfig>("name = \"t\"\naddress = \"a:1\"\nbogus = 1").is_err()
        );
    }
}
