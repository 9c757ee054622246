use crate::{
    Collector, Roots, cpu, diskstats, filesystem, host, hwmon, load, memory, netdev, netstat,
    processes, smart, sockstat, systemd, tcpstat, time,
};

/// The agent's four interval tiers; each collector has a default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Things an alert waits on (default 30 s).
    Critical,
    /// Most host metrics (default 1 m).
    Standard,
    /// Costly scans (default 5 m).
    Intensive,
    /// Facts that rarely change (default 1 h).
    Static,
}

impl Tier {
    /// The tier's config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::Intensive => "intensive",
            Tier::Static => "static",
        }
    }
}

/// One row of the registry: how to build a collector and its defaults.
pub struct CollectorSpec {
    /// The collector's name and config key.
    pub name: &'static str,
    /// Whether it runs when the config does not mention it.
    pub default_enabled: bool,
    /// Its tier when the config names none.
    pub default_tier: Tier,
    /// Builds it for the given roots.
    pub build: fn(&Roots) -> Box<dyn Collector>,
}

/// Every collector the agent knows, in a plain table.
pub static REGISTRY: &[CollectorSpec] = &[
    CollectorSpec {
        name: "cpu",
        default_enabled: true,
        default_tier: Tier::Critical,
        build: |roots| Box::new(cpu::CpuCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "load",
        default_enabled: true,
        default_tier: Tier::Critical,
        build: |roots| Box::new(load::LoadCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "memory",
        default_enabled: true,
        default_tier: Tier::Critical,
        build: |roots| Box::new(memory::MemoryCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "filesystem",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(filesystem::FilesystemCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "diskstats",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(diskstats::DiskstatsCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "netdev",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(netdev::NetdevCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "netstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(netstat::NetstatCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "sockstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(sockstat::SockstatCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "tcpstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(tcpstat::TcpstatCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "processes",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(processes::ProcessesCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "host",
        default_enabled: true,
        default_tier: Tier::Static,
        build: |roots| Box::new(host::HostCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "time",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(time::TimeCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "hwmon",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(hwmon::HwmonCollector::new(roots.clone())),
    },
    // On by default, unlike node_exporter's: failed units are alerts an operator expects
    // without asking, the calls are read-only and need no privilege, and on a host
    // without systemd the collector says so once and costs nothing after.
    CollectorSpec {
        name: "systemd",
        default_enabled: true,
        default_tier: Tier::Standard,
        build: |roots| Box::new(systemd::SystemdCollector::new(roots.clone())),
    },
    CollectorSpec {
        name: "smart",
        default_enabled: true,
        default_tier: Tier::Intensive,
        build: |roots| Box::new(smart::SmartCollector::new(roots.clone())),
    },
];
