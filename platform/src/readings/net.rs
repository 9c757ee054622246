//! Network interfaces, protocol counters and sockets.

use crate::ParseError;

/// One interface of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevInterface {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// Receive counters, named by [`NetDev::RECEIVE_FIELDS`].
    pub receive: [u64; 8],
    /// Transmit counters, named by [`NetDev::TRANSMIT_FIELDS`].
    pub transmit: [u64; 8],
}

/// Every interface of `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    /// The interfaces, in the kernel's order.
    pub interfaces: Vec<NetDevInterface>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl NetDev {
    /// The file's path relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "net/dev";
    /// The receive columns, in the kernel's order.
    pub const RECEIVE_FIELDS: [&'static str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "frame",
        "compressed",
        "multicast",
    ];
    /// The transmit columns, in the kernel's order.
    pub const TRANSMIT_FIELDS: [&'static str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "colls",
        "carrier",
        "compressed",
    ];
}

/// One interface of `/sys/class/net`: its numeric attributes and the text ones.
///
/// An attribute the kernel does not offer for this interface, or refuses to read (a
/// down interface answers `EINVAL` for `speed`), is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetClassInterface {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// `addr_assign_type`.
    pub addr_assign_type: Option<i64>,
    /// `carrier`: 1 when the physical link is up.
    pub carrier: Option<i64>,
    /// `carrier_changes`.
    pub carrier_changes: Option<i64>,
    /// `carrier_up_count`.
    pub carrier_up_count: Option<i64>,
    /// `carrier_down_count`.
    pub carrier_down_count: Option<i64>,
    /// `dev_id`.
    pub dev_id: Option<i64>,
    /// `dormant`.
    pub dormant: Option<i64>,
    /// `flags` (`IFF_*` bits).
    pub flags: Option<i64>,
    /// `ifindex`.
    pub ifindex: Option<i64>,
    /// `iflink`.
    pub iflink: Option<i64>,
    /// `link_mode`.
    pub link_mode: Option<i64>,
    /// `mtu`, in bytes.
    pub mtu: Option<i64>,
    /// `name_assign_type`.
    pub name_assign_type: Option<i64>,
    /// `netdev_group`.
    pub netdev_group: Option<i64>,
    /// `speed`, in Mbit/s; -1 where the driver does not know.
    pub speed: Option<i64>,
    /// `tx_queue_len`.
    pub tx_queue_len: Option<i64>,
    /// `type` (ARPHRD_* number).
    pub protocol_type: Option<i64>,
    /// `address`, the hardware address.
    pub address: Option<String>,
    /// `broadcast`.
    pub broadcast: Option<String>,
    /// `duplex`: `full`, `half` or `unknown`.
    pub duplex: Option<String>,
    /// `operstate`: `up`, `down`, `unknown`, ...
    pub operstate: Option<String>,
    /// `ifalias`.
    pub ifalias: Option<String>,
}

impl NetClassInterface {
    /// The directory relative to [`Roots::sys`](crate::Roots::sys).
    pub const DIR: &'static str = "class/net";
}

/// One counter of `/proc/net/snmp`, `/proc/net/netstat` or `/proc/net/snmp6`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetStat {
    /// The protocol group, e.g. `Tcp`, `TcpExt`, `Ip6`.
    pub protocol: String,
    /// The counter's name within it, e.g. `InSegs`.
    pub field: String,
    /// The value. Most are unsigned counters; a few are signed (`Tcp MaxConn` is -1
    /// when there is no limit).
    pub value: f64,
}

/// The counters of one of the SNMP-style files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetStats {
    /// The counters, in file order.
    pub values: Vec<NetStat>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl NetStats {
    /// `/proc/net/snmp`, relative to [`Roots::proc`](crate::Roots::proc).
    pub const SNMP_FILE: &'static str = "net/snmp";
    /// `/proc/net/netstat`, relative to [`Roots::proc`](crate::Roots::proc).
    pub const NETSTAT_FILE: &'static str = "net/netstat";
    /// `/proc/net/snmp6`, relative to [`Roots::proc`](crate::Roots::proc); absent when
    /// IPv6 is disabled.
    pub const SNMP6_FILE: &'static str = "net/snmp6";
}

/// One line of `/proc/net/sockstat` or `sockstat6`, e.g. `TCP: inuse 4 orphan 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockstatLine {
    /// The protocol, e.g. `TCP`, `UDP6`, or `sockets`.
    pub protocol: String,
    /// The named values in file order, e.g. `("inuse", 4)`.
    pub fields: Vec<(String, u64)>,
}

/// Every line of a sockstat file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sockstat {
    /// The lines, in file order.
    pub lines: Vec<SockstatLine>,
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl Sockstat {
    /// IPv4 (and the `sockets` total), relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "net/sockstat";
    /// IPv6, relative to [`Roots::proc`](crate::Roots::proc); absent without IPv6.
    pub const FILE6: &'static str = "net/sockstat6";
}

/// TCP sockets counted by state, over `/proc/net/tcp` and `tcp6`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStates {
    /// Sockets per kernel state number (`include/net/tcp_states.h`): index 1 is
    /// `ESTABLISHED` ... 11 is `CLOSING`, 12 `NEW_SYN_RECV`; index 0 is unused.
    pub counts: [u64; 13],
    /// Lines that were malformed and left out.
    pub skipped: Vec<ParseError>,
}

impl TcpStates {
    /// IPv4 sockets, relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE: &'static str = "net/tcp";
    /// IPv6 sockets, relative to [`Roots::proc`](crate::Roots::proc).
    pub const FILE6: &'static str = "net/tcp6";
    /// node_exporter's names of the states, by kernel number (index 0 unused).
    pub const NAMES: [&'static str; 13] = [
        "",
        "established",
        "syn_sent",
        "syn_recv",
        "fin_wait1",
        "fin_wait2",
        "time_wait",
        "close",
        "close_wait",
        "last_ack",
        "listen",
        "closing",
        "new_syn_recv",
    ];
}
