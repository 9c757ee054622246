//! `tcpstat`: TCP sockets by state, as node_exporter's `tcpstat` collector names them
//! (`node_tcp_connection_states{state}`): from a `NETLINK_SOCK_DIAG` dump when the procfs
//! root is `/proc` (a tenth of the cost or less: see the platform's `sock_diag`), else in
//! one pass over `net/tcp` and `net/tcp6` under the root.
//!
//! Unlike node_exporter, every state is sent each cycle, zero or not, so that a
//! dashboard or an alert on, say, `close_wait` sees 0 rather than no data. The file is
//! as long as the host has sockets; on a host with very many, this collector costs
//! more than the others, hence the standard tier.

use sysward_platform::{Roots, TcpStates};

use crate::{CollectError, Collector, Kind, Output, Sample};

/// Sockets per state (gauge; label `state`).
pub const CONNECTION_STATES: &str = "node_tcp_connection_states";

/// Counts TCP sockets under its roots.
#[derive(Debug)]
pub struct TcpstatCollector {
    roots: Roots,
    /// Ask the kernel over `NETLINK_SOCK_DIAG` instead of reading the files: only when
    /// the procfs root is the agent's own `/proc` (the dump sees the agent's network
    /// namespace, and a fixture tree is not a kernel), and until the kernel refuses once.
    use_netlink: bool,
}

impl TcpstatCollector {
    /// A collector reading `net/tcp{,6}` under `roots.proc`, or the same counts over
    /// netlink when that root is `/proc`.
    pub fn new(roots: Roots) -> Self {
        let use_netlink = roots.proc == std::path::Path::new("/proc");
        Self { roots, use_netlink }
    }
}

impl Collector for TcpstatCollector {
    fn name(&self) -> &'static str {
        "tcpstat"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let mut states = TcpStates::default();
        if self.use_netlink {
            match sysward_platform::read_tcp_states_netlink(&mut states) {
                Ok(()) => {
                    push_states(&states, out);
                    return Ok(());
                }
                Err(error) => {
                    // Logged once through the error count; the files still answer.
                    self.use_netlink = false;
                    out.error(format!("{error}; reading /proc/net/tcp from now on"));
                }
            }
        }
        sysward_platform::read_tcp_states(&self.roots, false, &mut states)?;
        match sysward_platform::read_tcp_states(&self.roots, true, &mut states) {
            Ok(()) => {}
            // IPv6 disabled.
            Err(error) if error.is_not_found() => {}
            Err(error) => out.error(error.to_string()),
        }
        // Which file a skipped line came from is lost in the sum; its number and text
        // are enough to find it.
        for skipped in &states.skipped {
            out.error(format!(
                "{}/{{tcp,tcp6}}: {skipped}",
                self.roots.proc.join("net").display()
            ));
        }
        push_states(&states, out);
        Ok(())
    }
}

fn push_states(states: &TcpStates, out: &mut Output) {
    for (state, count) in TcpStates::NAMES.iter().zip(states.counts).skip(1) {
        out.push(Sample::new(CONNECTION_STATES, Kind::Gauge, count as f64).label("state", *state));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, value_of};

    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2740 1
   1: 0F02000A:0016 0202000A:8B6B 01 00000000:00000000 00:00000000 00000000     0        0 0 1
   2: 0F02000A:0016 0202000A:8B6C 08 00000000:00000000 00:00000000 00000000     0        0 0 1
";

    #[test]
    fn counts_both_files_and_sends_every_state() {
        let dir = TempDir::new("tcpstat");
        dir.write("proc/net/tcp", TCP);
        dir.write("proc/net/tcp6", TCP);
        let mut out = Output::default();
        TcpstatCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.errors, Vec::<String>::new());
        assert_eq!(out.samples.len(), 12);
        let state = |s: &str| value_of(&out, CONNECTION_STATES, &[("state", s)]);
        assert_eq!(state("listen"), Some(2.0));
        assert_eq!(state("established"), Some(2.0));
        assert_eq!(state("close_wait"), Some(2.0));
        assert_eq!(state("time_wait"), Some(0.0));
    }

    #[test]
    fn the_live_host_is_read_over_netlink() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let mut collector = TcpstatCollector::new(Roots::default());
        assert!(collector.use_netlink);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        // A fall back to the files would have said why.
        assert_eq!(out.errors, Vec::<String>::new());
        assert!(collector.use_netlink);
        assert_eq!(out.samples.len(), 12);
        let state = |s: &str| value_of(&out, CONNECTION_STATES, &[("state", s)]).unwrap_or(0.0);
        assert!(state("listen") >= 1.0, "{:?}", out.samples);
        // Both ends of the connection.
        assert!(state("established") >= 2.0, "{:?}", out.samples);
        drop((client, server));
    }

    #[test]
    fn without_ipv6_only_ipv4_is_counted() {
        let dir = TempDir::new("tcpstat-v4");
        dir.write("proc/net/tcp", TCP);
        let mut out = Output::default();
        TcpstatCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.errors, Vec::<String>::new());
        assert_eq!(
            value_of(&out, CONNECTION_STATES, &[("state", "listen")]),
            Some(1.0)
        );
    }

    #[test]
    fn an_unreadable_ipv4_file_fails_the_run() {
        let dir = TempDir::new("tcpstat-none");
        assert!(
            TcpstatCollector::new(dir.roots())
                .collect(&mut Output::default())
                .is_err()
        );
    }
}
