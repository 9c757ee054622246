//! `[[checks.ping]]`: a host answers, with how much loss and how fast.
//!
//! ```toml
//! [[checks.ping]]
//! name = "gateway"
//! host = "10.0.0.1"            # a name or an address
//! count = 3                    # echo requests per run (default 3)
//! send_interval = "200ms"      # between requests (default 200ms)
//! reply_timeout = "1s"         # a reply later than this is lost (default 1s)
//! method = "auto"              # auto (ICMP, else TCP), icmp, or tcp
//! tcp_port = 22                # where TCP connect latency is measured instead
//! warning_loss = 0.2           # loss ratios, defaults 0.2 and 0.6
//! critical_loss = 0.6
//! warning_rtt = "100ms"        # average round trip limits, both optional
//! critical_rtt = "500ms"
//! ```
//!
//! ICMP echo goes through an unprivileged ICMP datagram socket (`socket(AF_INET,
//! SOCK_DGRAM, IPPROTO_ICMP)`): no raw socket, no capability, no setuid helper. The
//! kernel allows it to the groups in `net.ipv4.ping_group_range` (which also covers
//! IPv6); where the agent's group is outside it, `auto` measures TCP connect latency to
//! `tcp_port` instead (a refused connection is an answer too: the host replied), and
//! without a `tcp_port` the check is UNKNOWN and says why. The output names the method
//! used.
//!
//! States: loss at `critical_loss` or all requests lost: CRITICAL; at `warning_loss`:
//! WARNING; average round trip at a limit: WARNING or CRITICAL; no method available or
//! a name that does not resolve: UNKNOWN and CRITICAL.
//!
//! Samples: `sysward_check_ping_loss_ratio` (0 to 1) and, when anything answered,
//! `sysward_check_ping_rtt_seconds{stat}` with `stat` `min`, `avg` and `max`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::net::{self, Deadline};
use super::{Probe, ProbeResult, Schedule};
use sysward_collectors::{CheckState, Kind, Sample, Tier};

/// Round trip times of the replies: `stat` is `min`, `avg` or `max`.
pub const RTT_SECONDS: &str = "sysward_check_ping_rtt_seconds";
/// Requests without a reply, over requests sent.
pub const LOSS_RATIO: &str = "sysward_check_ping_loss_ratio";

/// One `[[checks.ping]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingCheckConfig {
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
    /// A host name or an IP address.
    pub host: String,
    /// Requests per run (default 3, at most 100).
    #[serde(default)]
    pub count: Option<u32>,
    /// Time between requests (default 200ms).
    #[serde(default, deserialize_with = "super::duration")]
    pub send_interval: Option<Duration>,
    /// A reply later than this counts as lost (default 1s).
    #[serde(default, deserialize_with = "super::duration")]
    pub reply_timeout: Option<Duration>,
    /// `auto` (default: ICMP where permitted, else TCP), `icmp` or `tcp`.
    #[serde(default)]
    pub method: Option<String>,
    /// The port whose connect latency stands in for ICMP.
    #[serde(default)]
    pub tcp_port: Option<u16>,
    /// A loss ratio from which the check is WARNING (default 0.2).
    #[serde(default)]
    pub warning_loss: Option<f64>,
    /// A loss ratio from which the check is CRITICAL (default 0.6).
    #[serde(default)]
    pub critical_loss: Option<f64>,
    /// An average round trip from which the check is WARNING.
    #[serde(default, deserialize_with = "super::duration")]
    pub warning_rtt: Option<Duration>,
    /// An average round trip from which the check is CRITICAL.
    #[serde(default, deserialize_with = "super::duration")]
    pub critical_rtt: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Auto,
    Icmp,
    Tcp,
}

pub(crate) fn build(c: &PingCheckConfig) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let host = c
        .host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.parse::<IpAddr>().is_err() {
        sysward_wire::addr::check_host(&host).map_err(|e| format!("host: {e}"))?;
    }
    let count = c.count.unwrap_or(3);
    if !(1..=100).contains(&count) {
        return Err("count: from 1 to 100".into());
    }
    let send_interval = c.send_interval.unwrap_or(Duration::from_millis(200));
    let reply_timeout = c.reply_timeout.unwrap_or(Duration::from_secs(1));
    if reply_timeout.is_zero() {
        return Err("reply_timeout: more than 0".into());
    }
    let method = match c.method.as_deref().unwrap_or("auto") {
        "auto" => Method::Auto,
        "icmp" => Method::Icmp,
        "tcp" => Method::Tcp,
        other => return Err(format!("method: {other:?} (auto, icmp or tcp)")),
    };
    if method == Method::Tcp && c.tcp_port.is_none() {
        return Err("method tcp needs tcp_port".into());
    }
    if c.tcp_port == Some(0) {
        return Err("tcp_port: 1 to 65535".into());
    }
    let warning_loss = c.warning_loss.unwrap_or(0.2);
    let critical_loss = c.critical_loss.unwrap_or(0.6);
    for (what, v) in [
        ("warning_loss", warning_loss),
        ("critical_loss", critical_loss),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{what}: a ratio from 0 to 1 (0.2 is 20%)"));
        }
    }
    net::check_order("loss", Some(warning_loss), Some(critical_loss))?;
    net::check_order("rtt", c.warning_rtt, c.critical_rtt)?;
    let timeout = c.timeout.unwrap_or(Duration::from_secs(10));
    let needed = send_interval * (count - 1) + reply_timeout;
    if needed > timeout {
        return Err(format!(
            "count × send_interval + reply_timeout ({}) does not fit in the timeout ({})",
            net::secs(needed),
            net::secs(timeout)
        ));
    }
    let probe = PingProbe {
        host,
        count,
        send_interval,
        reply_timeout,
        method,
        tcp_port: c.tcp_port,
        warning_loss,
        critical_loss,
        warning_rtt: c.warning_rtt,
        critical_rtt: c.critical_rtt,
    };
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

#[derive(Debug)]
struct PingProbe {
    host: String,
    count: u32,
    send_interval: Duration,
    reply_timeout: Duration,
    method: Method,
    tcp_port: Option<u16>,
    warning_loss: f64,
    critical_loss: f64,
    warning_rtt: Option<Duration>,
    critical_rtt: Option<Duration>,
}

/// What one run measured.
#[derive(Debug, Default)]
struct Tally {
    sent: u32,
    rtts: Vec<Duration>,
    /// The last error that cost a reply, for the output.
    last_error: Option<String>,
}

impl Probe for PingProbe {
    fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Deadline::after(timeout);
        let ip = match net::resolve(&self.host, 0, &deadline) {
            Ok((addrs, _)) => match addrs.first() {
                Some(a) => a.ip(),
                None => {
                    return ProbeResult::new(
                        CheckState::Critical,
                        format!("no address for {}", self.host),
                    );
                }
            },
            Err(e) => return ProbeResult::new(CheckState::Critical, e.to_string()),
        };
        let (tally, how) = match self.method {
            Method::Tcp => (self.tcp(ip, &deadline), self.tcp_text(None)),
            Method::Icmp | Method::Auto => match icmp::Pinger::open(ip) {
                Ok(pinger) => (self.icmp(pinger, ip, &deadline), "icmp".to_string()),
                Err(e) => {
                    let why = icmp::refusal_text(&e);
                    match (self.method, self.tcp_port) {
                        (Method::Auto, Some(_)) => {
                            (self.tcp(ip, &deadline), self.tcp_text(Some(&why)))
                        }
                        (Method::Auto, None) => {
                            return ProbeResult::new(
                                CheckState::Unknown,
                                format!(
                                    "{why}; set tcp_port to measure TCP connect latency instead"
                                ),
                            );
                        }
                        _ => return ProbeResult::new(CheckState::Unknown, why),
                    }
                }
            },
        };
        self.judge(ip, &tally, &how)
    }
}

impl PingProbe {
    fn tcp_text(&self, why: Option<&str>) -> String {
        let port = self.tcp_port.unwrap_or(0);
        match why {
            Some(why) => format!("tcp connect to port {port}, since {why}"),
            None => format!("tcp connect to port {port}"),
        }
    }

    /// TCP connect round trips: an accepted or a refused connection is an answer.
    fn tcp(&self, ip: IpAddr, deadline: &Deadline) -> Tally {
        let addr = SocketAddr::new(ip, self.tcp_port.unwrap_or(0));
        let mut tally = Tally::default();
        for i in 0..self.count {
            if i > 0 {
                let next = Instant::now() + self.send_interval;
                if next >= deadline.end() {
                    break;
                }
                std::thread::sleep(self.send_interval);
            }
            let Some(left) = deadline.remaining() else {
                break;
            };
            tally.sent += 1;
            let started = Instant::now();
            match TcpStream::connect_timeout(&addr, left.min(self.reply_timeout)) {
                Ok(_) => tally.rtts.push(started.elapsed()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tally.rtts.push(started.elapsed());
                }
                Err(e) => tally.last_error = Some(net::io_text(&e)),
            }
        }
        tally
    }

    /// ICMP echo: requests every `send_interval`, replies matched by sequence number and
    /// payload, each counted if it came within `reply_timeout`.
    fn icmp(&self, pinger: icmp::Pinger, ip: IpAddr, deadline: &Deadline) -> Tally {
        let mut tally = Tally::default();
        let token = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish().to_be_bytes()
        };
        let base = u16::from_be_bytes([token[0], token[1]]);
        let mut sent_at: HashMap<u16, Instant> = HashMap::new();
        let mut answered: HashMap<u16, Duration> = HashMap::new();
        let mut next_send = Instant::now();
        let mut last_send = Instant::now();
        loop {
            let now = Instant::now();
            if tally.sent < self.count && now >= next_send && now < deadline.end() {
                let seq = base.wrapping_add(u16::try_from(tally.sent).unwrap_or(0));
                tally.sent += 1;
                last_send = Instant::now();
                match pinger.send(ip, seq, &token) {
                    Ok(()) => {
                        sent_at.insert(seq, last_send);
                    }
                    Err(e) => tally.last_error = Some(net::io_text(&e)),
                }
                next_send = last_send + self.send_interval;
            }
            let all_sent = tally.sent >= self.count;
            if all_sent && answered.len() == sent_at.len() {
                break;
            }
            let until = if all_sent {
                last_send + self.reply_timeout
            } else {
                next_send
            }
            .min(deadline.end());
            let now = Instant::now();
            if now >= deadline.end() || (all_sent && now >= until) {
                break;
            }
            match pinger.recv(
                until
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            ) {
                Ok(Some((from, seq, payload))) => {
                    if from != ip || payload.get(..token.len()) != Some(&token[..]) {
                        continue;
                    }
                    if let Some(at) = sent_at.get(&seq) {
                        let rtt = at.elapsed();
                        if rtt <= self.reply_timeout {
                            answered.entry(seq).or_insert(rtt);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tally.last_error = Some(net::io_text(&e));
                    // An ICMP error (host unreachable) is reported once; do not spin on it.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        tally.rtts = answered.into_values().collect();
        tally
    }

    fn judge(&self, ip: IpAddr, tally: &Tally, how: &str) -> ProbeResult {
        let received = tally.rtts.len();
        let sent = tally.sent.max(1);
        let lost = u32::try_from(received).map_or(0, |r| sent.saturating_sub(r));
        let loss = f64::from(lost) / f64::from(sent);
        let mut samples = vec![Sample::new(LOSS_RATIO, Kind::Gauge, loss)];
        let mut problems: Vec<(CheckState, String)> = Vec::new();
        let mut rtt_text = String::new();
        if let (Some(min), Some(max)) = (tally.rtts.iter().min(), tally.rtts.iter().max()) {
            let total: Duration = tally.rtts.iter().sum();
            let avg = total / u32::try_from(received).unwrap_or(1).max(1);
            for (stat, v) in [("min", *min), ("avg", avg), ("max", *max)] {
                samples.push(
                    Sample::new(RTT_SECONDS, Kind::Gauge, v.as_secs_f64()).label("stat", stat),
                );
            }
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            rtt_text = format!(
                ", rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                ms(*min),
                ms(avg),
                ms(*max)
            );
            let state = net::time_state(avg, self.warning_rtt, self.critical_rtt);
            if state != CheckState::Ok {
                problems.push((state, format!("average rtt {:.3} ms", ms(avg))));
            }
        }
        if received == 0 {
            problems.push((CheckState::Critical, "no reply".into()));
        } else if loss >= self.critical_loss {
            problems.push((CheckState::Critical, format!("{:.0}% loss", loss * 100.0)));
        } else if loss >= self.warning_loss && loss > 0.0 {
            problems.push((CheckState::Warning, format!("{:.0}% loss", loss * 100.0)));
        }
        let mut summary = format!(
            "{ip} ({how}): {received}/{} replies, {:.0}% loss{rtt_text}",
            tally.sent,
            loss * 100.0
        );
        if let Some(e) = &tally.last_error
            && received < usize::try_from(tally.sent).unwrap_or(usize::MAX)
        {
            summary.push_str(&format!(" (last error: {e})"));
        }
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
        r.samples = samples;
        r
    }
}

/// Unprivileged ICMP echo sockets (Linux's "ping sockets"): safe code through nix, the
/// socket then used as a `UdpSocket`, which has the same datagram calls.
#[cfg(target_os = "linux")]
mod icmp {
    use std::io;
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::time::Duration;

    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};

    /// An open ICMP datagram socket for one address family.
    pub(super) struct Pinger {
        socket: UdpSocket,
        v6: bool,
    }

    impl Pinger {
        /// Opens a socket for `ip`'s family; fails with `EACCES` where the process's group
        /// is outside `net.ipv4.ping_group_range`.
        pub(super) fn open(ip: IpAddr) -> io::Result<Self> {
            let (family, protocol) = match ip {
                IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
                IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
            };
            let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, protocol)
                .map_err(io::Error::from)?;
            Ok(Self {
                socket: UdpSocket::from(fd),
                v6: ip.is_ipv6(),
            })
        }

        /// Sends an echo request; the kernel fills in the identifier and the checksum.
        pub(super) fn send(&self, ip: IpAddr, seq: u16, payload: &[u8]) -> io::Result<()> {
            let kind = if self.v6 { 128 } else { 8 };
            let mut packet = vec![kind, 0, 0, 0, 0, 0];
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(payload);
            self.socket
                .send_to(&packet, SocketAddr::new(ip, 0))
                .map(|_| ())
        }

        /// Waits up to `wait` for an echo reply: (from, sequence, payload); `None` when
        /// the wait ended or the datagram was something else.
        pub(super) fn recv(&self, wait: Duration) -> io::Result<Option<(IpAddr, u16, Vec<u8>)>> {
            self.socket.set_read_timeout(Some(wait))?;
            let mut buf = [0u8; 512];
            let (n, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let reply = if self.v6 { 129 } else { 0 };
            Ok(parse_reply(&buf[..n], reply).map(|(seq, payload)| (from.ip(), seq, payload)))
        }
    }

    /// An echo reply's sequence number and payload, if `packet` is one.
    pub(super) fn parse_reply(packet: &[u8], reply_type: u8) -> Option<(u16, Vec<u8>)> {
        if packet.len() < 8 || packet[0] != reply_type || packet[1] != 0 {
            return None;
        }
        Some((
            u16::from_be_bytes([packet[6], packet[7]]),
            packet[8..].to_vec(),
        ))
    }

    /// Why ICMP sockets are not available, in words an operator can act on.
    pub(super) fn refusal_text(e: &io::Error) -> String {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unreadable".into());
        use nix::errno::Errno;
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EACCES | Errno::EPERM) => {
                format!(
                    "ICMP sockets are not permitted to this process (net.ipv4.ping_group_range is \"{range}\"; \
                     add the agent's group to it to ping)"
                )
            }
            _ => format!("cannot open an ICMP socket: {}", super::net::io_text(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod icmp {
    use std::io;
    use std::net::IpAddr;
    use std::time::Duration;

    pub(super) struct Pinger;

    impl Pinger {
        pub(super) fn open(_ip: IpAddr) -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unprivileged ICMP is Linux only",
            ))
        }
        pub(super) fn send(&self, _ip: IpAddr, _seq: u16, _payload: &[u8]) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        pub(super) fn recv(&self, _wait: Duration) -> io::Result<Option<(IpAddr, u16, Vec<u8>)>> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
    }

    pub(super) fn refusal_text(e: &io::Error) -> String {
        format!("cannot open an ICMP socket: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn config(text: &str) -> PingCheckConfig {
        toml::from_str(&format!("name = \"p\"\n{text}")).expect("config")
    }

    fn run(text: &str) -> ProbeResult {
        let (mut probe, _, _) = build(&config(text)).expect("build");
        probe.run(Duration::from_secs(5))
    }

    fn sample(r: &ProbeResult, name: &str, stat: Option<&str>) -> Option<f64> {
        r.samples
            .iter()
            .find(|s| s.name == name && stat.is_none_or(|st| s.labels.iter().any(|(_, v)| v == st)))
            .map(|s| s.value)
    }

    /// Runs `f` on a thread of its own in a new network namespace (namespaces are per
    /// thread: the rest of the test process stays where it was), with loopback up and
    /// `net.ipv4.ping_group_range` set to `range` in there: the test, not the host,
    /// decides whether ICMP sockets are permitted. `None`, after saying why, where that
    /// cannot be done (it needs root and iproute2's `ip`) and `CI` is unset.
    fn in_own_network<T: Send + 'static>(
        range: &'static str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let thread = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))
                .and_then(|()| {
                    // A child started from this thread is in its namespace.
                    match std::process::Command::new("ip")
                        .args(["link", "set", "lo", "up"])
                        .status()
                    {
                        Ok(status) if status.success() => Ok(()),
                        Ok(status) => Err(format!("ip link set lo up: {status}")),
                        Err(e) => Err(format!("ip: {e}")),
                    }
                })
                .and_then(|()| {
                    // /proc/sys/net is the writing thread's namespace's.
                    std::fs::write("/proc/sys/net/ipv4/ping_group_range", range)
                        .map_err(|e| format!("net.ipv4.ping_group_range: {e}"))
                })
                .map(|()| f())
        });
        match thread.join() {
            Ok(Ok(value)) => Some(value),
            Ok(Err(why)) => {
                let why = format!(
                    "this test sets net.ipv4.ping_group_range in a network namespace of its \
                     own, which needs root (CAP_SYS_ADMIN) and iproute2: {why}"
                );
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("NOT RUN: {why}");
                None
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Every group may open ICMP sockets: `auto` pings.
    const PERMITTED: &str = "0 2147483647";
    /// No group may (the kernel's default): `auto` falls back to TCP.
    const REFUSED: &str = "1 0";

    #[test]
    fn loopback_answers_icmp_where_ping_sockets_are_permitted() {
        let Some(r) = in_own_network(PERMITTED, || {
            run("host = \"127.0.0.1\"\ntcp_port = 9\nsend_interval = \"20ms\"")
        }) else {
            return;
        };
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output
                .starts_with("127.0.0.1 (icmp): 3/3 replies, 0% loss, rtt min/avg/max "),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, LOSS_RATIO, None), Some(0.0));
        for stat in ["min", "avg", "max"] {
            assert!(
                sample(&r, RTT_SECONDS, Some(stat)).is_some_and(|v| v > 0.0 && v < 1.0),
                "{stat}"
            );
        }
    }

    #[test]
    fn auto_falls_back_to_tcp_where_ping_sockets_are_not_permitted() {
        let Some((port, r)) = in_own_network(REFUSED, || {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let r = run(&format!(
                "host = \"127.0.0.1\"\ntcp_port = {port}\nsend_interval = \"20ms\""
            ));
            (port, r)
        }) else {
            return;
        };
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output.starts_with(&format!(
                "127.0.0.1 (tcp connect to port {port}, since ICMP sockets are not permitted \
                 to this process (net.ipv4.ping_group_range is \"1 0\"; add the agent's group \
                 to it to ping)): 3/3 replies, 0% loss"
            )),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, LOSS_RATIO, None), Some(0.0));
        for stat in ["min", "avg", "max"] {
            assert!(
                sample(&r, RTT_SECONDS, Some(stat)).is_some_and(|v| v > 0.0 && v < 1.0),
                "{stat}"
            );
        }
    }

    #[test]
    fn without_icmp_or_a_port_the_check_says_why() {
        let Some(r) = in_own_network(REFUSED, || {
            run("host = \"127.0.0.1\"\nsend_interval = \"10ms\"")
        }) else {
            return;
        };
        assert_eq!(r.state, CheckState::Unknown);
        assert_eq!(
            r.output,
            "ICMP sockets are not permitted to this process (net.ipv4.ping_group_range is \
             \"1 0\"; add the agent's group to it to ping); set tcp_port to measure TCP \
             connect latency instead"
        );
        // `icmp` asked for by name: the same reason, without the TCP advice.
        let Some(r) = in_own_network(REFUSED, || {
            run("host = \"127.0.0.1\"\nmethod = \"icmp\"\ntcp_port = 9")
        }) else {
            return;
        };
        assert_eq!(r.state, CheckState::Unknown);
        assert!(
            r.output.ends_with("add the agent's group to it to ping)"),
            "{}",
            r.output
        );
    }

    #[test]
    fn tcp_latency_counts_refusals_as_answers() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let r = run(&format!(
            "host = \"localhost\"\nmethod = \"tcp\"\ntcp_port = {port}\ncount = 2\nsend_interval = \"10ms\""
        ));
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(
            r.output
                .contains(&format!(" (tcp connect to port {port}): 2/2 replies")),
            "{}",
            r.output
        );
    }

    #[test]
    fn loss_and_rtt_limits() {
        let p = PingProbe {
            host: "h".into(),
            count: 5,
            send_interval: Duration::ZERO,
            reply_timeout: Duration::from_secs(1),
            method: Method::Auto,
            tcp_port: None,
            warning_loss: 0.2,
            critical_loss: 0.6,
            warning_rtt: Some(Duration::from_millis(10)),
            critical_rtt: Some(Duration::from_millis(50)),
        };
        let ip = IpAddr::from([192, 0, 2, 1]);
        let ms = Duration::from_millis;
        let tally = |sent, rtts: &[u64]| Tally {
            sent,
            rtts: rtts.iter().map(|&m| ms(m)).collect(),
            last_error: Some("host unreachable".into()),
        };
        let r = p.judge(ip, &tally(5, &[1, 2, 3, 4, 5]), "icmp");
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert_eq!(
            r.output,
            "192.0.2.1 (icmp): 5/5 replies, 0% loss, rtt min/avg/max 1.000/3.000/5.000 ms"
        );
        let r = p.judge(ip, &tally(5, &[1, 2, 3, 4]), "icmp");
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert!(r.output.starts_with("20% loss; "), "{}", r.output);
        assert!(
            r.output.ends_with("(last error: host unreachable)"),
            "{}",
            r.output
        );
        let r = p.judge(ip, &tally(5, &[1, 2]), "icmp");
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
        let r = p.judge(ip, &tally(5, &[]), "icmp");
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .starts_with("no reply; 192.0.2.1 (icmp): 0/5 replies, 100% loss"),
            "{}",
            r.output
        );
        assert_eq!(sample(&r, LOSS_RATIO, None), Some(1.0));
        assert_eq!(sample(&r, RTT_SECONDS, None), None);
        let r = p.judge(ip, &tally(5, &[20, 20, 20, 20, 20]), "icmp");
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        let r = p.judge(ip, &tally(5, &[60, 60, 60, 60, 60]), "icmp");
        assert_eq!(r.state, CheckState::Critical, "{}", r.output);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn echo_replies_parse() {
        assert_eq!(
            icmp::parse_reply(&[0, 0, 0, 0, 0, 9, 1, 2, 7, 7], 0),
            Some((0x0102, vec![7, 7]))
        );
        assert_eq!(icmp::parse_reply(&[8, 0, 0, 0, 0, 9, 1, 2], 0), None);
        assert_eq!(icmp::parse_reply(&[0, 0, 0], 0), None);
        assert_eq!(
            icmp::parse_reply(&[129, 0, 0, 0, 0, 0, 0, 1], 129),
            Some((1, vec![]))
        );
    }

    #[test]
    fn a_name_that_does_not_resolve_is_critical() {
        let r = run("host = \"nonexistent.invalid\"\nmethod = \"tcp\"\ntcp_port = 1");
        assert_eq!(r.state, CheckState::Critical);
    }

    #[test]
    fn bad_configs_are_refused() {
        for (text, why) in [
            ("host = \"a b\"", "host"),
            ("host = \"h\"\ncount = 0", "count"),
            ("host = \"h\"\nmethod = \"raw\"", "auto, icmp or tcp"),
            ("host = \"h\"\nmethod = \"tcp\"", "needs tcp_port"),
            ("host = \"h\"\nwarning_loss = 20", "ratio"),
            (
                "host = \"h\"\nwarning_loss = 0.8\ncritical_loss = 0.5",
                "must not be past",
            ),
            (
                "host = \"h\"\ncount = 100\nsend_interval = \"1s\"",
                "does not fit",
            ),
            ("host = \"h\"\nreply_timeout = \"0s\"", "reply_timeout"),
        ] {
            let err = build(&config(text))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
