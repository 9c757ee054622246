//! The fallback backend: the same readers as the Linux one, each refusing.
//!
//! Compiled on Linux too, in tests, which check that every reader here has the Linux
//! one's signature, so that the crate keeps building on other systems.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{
    CgroupLayout, CgroupStats, Clocksource, CpuInfo, DiskStats, Dmi, Error, FsUsage, HwmonChip,
    LoadAvg, MemInfo, Mounts, NetClassInterface, NetDev, NetStats, OsRelease, PidStat, Pressure,
    Roots, ScanSummary, Sockstat, Stat, StatvfsOutcome, TcpStates, Timex, Uname, Users, VmStat,
};

/// Not available here; see the Linux backend.
pub fn read_stat(_roots: &Roots) -> Result<Stat, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_meminfo(_roots: &Roots) -> Result<MemInfo, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_loadavg(_roots: &Roots) -> Result<LoadAvg, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_mounts(_roots: &Roots) -> Result<Mounts, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn statvfs(_path: &Path) -> Result<FsUsage, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
#[derive(Debug, Default)]
pub struct StatvfsRunner;

impl StatvfsRunner {
    /// Not available here; see the Linux backend.
    pub fn new() -> Self {
        Self
    }

    /// Every path fails as unsupported.
    pub fn stat_all(&self, paths: &[PathBuf], _timeout: Duration) -> Vec<StatvfsOutcome> {
        paths
            .iter()
            .map(|_| StatvfsOutcome::Failed(Error::Unsupported))
            .collect()
    }

    /// Nothing is ever hung here.
    pub fn hung(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Does nothing here.
    #[doc(hidden)]
    pub fn pretend_hung(&self, _path: &Path) {}

    /// Does nothing here.
    #[doc(hidden)]
    pub fn pretend_answered(&self, _path: &Path) {}
}

/// Not available here; see the Linux backend.
pub fn read_diskstats(_roots: &Roots) -> Result<DiskStats, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_net_dev(_roots: &Roots) -> Result<NetDev, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_net_class(
    _roots: &Roots,
    _previous: &[NetClassInterface],
) -> Result<Vec<NetClassInterface>, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_netstat(_roots: &Roots, _file: &str, _stats: &mut NetStats) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_snmp6(_roots: &Roots, _stats: &mut NetStats) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_sockstat(_roots: &Roots, _file: &str) -> Result<Sockstat, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_tcp_states(_roots: &Roots, _ipv6: bool, _states: &mut TcpStates) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_tcp_states_netlink(_states: &mut TcpStates) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_pid_uid(_roots: &Roots, _pid: u32) -> Result<Option<u32>, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
#[derive(Debug, Default)]
pub struct ProcessScanner;

impl ProcessScanner {
    /// Not available here; see the Linux backend.
    pub fn new() -> Self {
        Self
    }

    /// Not available here; see the Linux backend.
    pub fn scan(
        &mut self,
        _roots: &Roots,
        _visit: impl FnMut(&PidStat<'_>),
    ) -> Result<ScanSummary, Error> {
        Err(Error::Unsupported)
    }
}

/// Not available here; see the Linux backend.
pub fn read_users(_roots: &Roots) -> Result<Users, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_sysctl_u64(_roots: &Roots, _name: &str) -> Result<u64, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn page_size() -> Option<u64> {
    None
}

/// Not available here; see the Linux backend.
pub fn read_uname(_roots: &Roots) -> Result<Uname, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_os_release(_roots: &Roots) -> Result<OsRelease, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_cpuinfo(_roots: &Roots) -> Result<CpuInfo, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_dmi(_roots: &Roots) -> Result<Dmi, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_hypervisor_type(_roots: &Roots) -> Result<String, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_machine_id(_roots: &Roots) -> Result<String, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_clocksources(_roots: &Roots) -> Result<Vec<Clocksource>, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_timex() -> Result<Timex, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_pressure(_roots: &Roots, _resource: &str) -> Result<Pressure, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_vmstat(_roots: &Roots, _stat: &mut VmStat) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_hwmon(_roots: &Roots) -> Result<Vec<HwmonChip>, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_cgroup_layout(_roots: &Roots) -> Result<CgroupLayout, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn find_cgroup_units(_roots: &Roots) -> Result<Vec<String>, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_cgroup_stats(_roots: &Roots, _unit: &str) -> Result<CgroupStats, Error> {
    Err(Error::Unsupported)
}

/// Not available here; see the Linux backend.
pub fn read_block_device_name(
    _roots: &Roots,
    _major: u32,
    _minor: u32,
) -> Result<Option<String>, Error> {
    Err(Error::Unsupported)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::linux;

    /// Both backends' readers must coerce to the same function pointer type.
    macro_rules! same {
        ($($name:ident: $ty:ty;)*) => {
            $(let _: [$ty; 2] = [linux::$name, $name];)*
        };
    }

    #[test]
    fn every_reader_has_the_linux_signature_and_refuses() {
        same! {
            read_stat: fn(&Roots) -> Result<Stat, Error>;
            read_meminfo: fn(&Roots) -> Result<MemInfo, Error>;
            read_loadavg: fn(&Roots) -> Result<LoadAvg, Error>;
            read_mounts: fn(&Roots) -> Result<Mounts, Error>;
            statvfs: fn(&Path) -> Result<FsUsage, Error>;
            read_diskstats: fn(&Roots) -> Result<DiskStats, Error>;
            read_net_dev: fn(&Roots) -> Result<NetDev, Error>;
            read_net_class: fn(&Roots, &[NetClassInterface]) -> Result<Vec<NetClassInterface>, Error>;
            read_netstat: fn(&Roots, &str, &mut NetStats) -> Result<(), Error>;
            read_snmp6: fn(&Roots, &mut NetStats) -> Result<(), Error>;
            read_sockstat: fn(&Roots, &str) -> Result<Sockstat, Error>;
            read_tcp_states: fn(&Roots, bool, &mut TcpStates) -> Result<(), Error>;
            read_tcp_states_netlink: fn(&mut TcpStates) -> Result<(), Error>;
            read_pid_uid: fn(&Roots, u32) -> Result<Option<u32>, Error>;
            read_users: fn(&Roots) -> Result<Users, Error>;
            read_sysctl_u64: fn(&Roots, &str) -> Result<u64, Error>;
            page_size: fn() -> Option<u64>;
            read_uname: fn(&Roots) -> Result<Uname, Error>;
            read_os_release: fn(&Roots) -> Result<OsRelease, Error>;
            read_cpuinfo: fn(&Roots) -> Result<CpuInfo, Error>;
            read_dmi: fn(&Roots) -> Result<Dmi, Error>;
            read_hypervisor_type: fn(&Roots) -> Result<String, Error>;
            read_machine_id: fn(&Roots) -> Result<String, Error>;
            read_clocksources: fn(&Roots) -> Result<Vec<Clocksource>, Error>;
            read_timex: fn() -> Result<Timex, Error>;
            read_pressure: fn(&Roots, &str) -> Result<Pressure, Error>;
            read_vmstat: fn(&Roots, &mut VmStat) -> Result<(), Error>;
            read_hwmon: fn(&Roots) -> Result<Vec<HwmonChip>, Error>;
            read_cgroup_layout: fn(&Roots) -> Result<CgroupLayout, Error>;
            find_cgroup_units: fn(&Roots) -> Result<Vec<String>, Error>;
            read_cgroup_stats: fn(&Roots, &str) -> Result<CgroupStats, Error>;
            read_block_device_name: fn(&Roots, u32, u32) -> Result<Option<String>, Error>;
        }
        let roots = Roots::default();
        assert!(matches!(read_stat(&roots), Err(Error::Unsupported)));
        assert!(matches!(
            ProcessScanner::new().scan(&roots, |_| {}),
            Err(Error::Unsupported)
        ));
        let outcomes = StatvfsRunner::new().stat_all(&[PathBuf::from("/")], Duration::ZERO);
        assert!(matches!(
            outcomes[0],
            StatvfsOutcome::Failed(Error::Unsupported)
        ));
    }
}
