//! Sysward's collectors: each reads one part of the host and returns samples.
//!
//! A collector never sends, buffers or formats. The agent runs it on a blocking pool with a
//! deadline; state kept between runs lives in `&mut self`. A failing *part* of a collector
//! (one file that cannot be read) is recorded in [`Output::errors`] and the rest of the run
//! goes on; only a failure of the whole collector is returned as `Err`.
//!
//! Each collector is one module, named as its [`REGISTRY`] row and its config key:
//!
//! | collector | reads | sends |
//! | --- | --- | --- |
//! | [`cpu`] | `/proc/stat`, `/proc/pressure/{cpu,irq}` | `node_cpu_*`, `node_intr_total`, `node_pressure_cpu_*`, ... |
//! | [`load`] | `/proc/loadavg` | `node_load{1,5,15}` |
//! | [`memory`] | `/proc/meminfo`, `/proc/vmstat`, `/proc/pressure/{memory,io}` | `node_memory_*`, `node_vmstat_*`, `node_pressure_{memory,io}_*` |
//! | [`filesystem`] | `/proc/1/mountinfo`, `statvfs` | `node_filesystem_*` |
//! | [`diskstats`] | `/proc/diskstats` | `node_disk_*` |
//! | [`netdev`] | `/proc/net/dev`, `/sys/class/net` | `node_network_*` |
//! | [`netstat`] | `/proc/net/{snmp,netstat,snmp6}` | `node_netstat_*` |
//! | [`sockstat`] | `/proc/net/sockstat{,6}` | `node_sockstat_*` |
//! | [`tcpstat`] | `/proc/net/tcp{,6}` | `node_tcp_connection_states` |
//! | [`processes`] | `/proc/[pid]/stat`, `status` | `node_processes_*`, `sysward_process_*` |
//! | [`host`] | `/proc/sys/kernel`, `os-release`, `/proc/cpuinfo`, DMI, `machine-id` | `node_uname_info`, `node_os_*`, `sysward_host_*` |
//! | [`time`] | the clock, `adjtimex`, clock sources | `node_time_*`, `node_timex_*` |
//! | [`hwmon`] | `/sys/class/hwmon` | `node_hwmon_*` |
//! | [`systemd`] | systemd over D-Bus | `node_systemd_*`, failed units as events |
//! | [`services`] | each unit's cgroup v2 files under `/sys/fs/cgroup` | `systemd_unit_*` (systemd_exporter's names), `sysward_service_*` |
//! | `postgres` (feature `postgres`; the agent runs it in the `sysward-db` helper, [`database_helper`]) | PostgreSQL servers' statistics views | `pg_*` as postgres_exporter names them, `sysward_pg_*` |
//! | `mysql` (feature `mysql`; in `sysward-db` as well) | MariaDB and MySQL servers' global status and variables, replica status | `mysql_*` as mysqld_exporter names them, `sysward_mysql_*` |
//! | [`smart`] | `smartctl`, through the `sysward-smart` helper | `smartctl_device_*`, `sysward_smart_*`, events `smart:<device>` |
//! | [`scrape`] | the host's exporters over HTTP (off by default) | their series with `job`, `sysward_scrape_*` |
//! | [`nginx`] | nginx's `stub_status` (off by default) | `nginx_*`, as nginx-prometheus-exporter |
//! | [`apache`] | Apache's `server-status?auto` (off by default) | `apache_*`, as apache_exporter |
//! | `access_log` | web servers' access logs, followed (off by default; Linux) | `sysward_access_log_*` |
//!
//! Names, labels and units are node_exporter's wherever it has the metric, checked
//! against its own output on its fixture tree (the `testing` module's
//! `node_exporter_e2e` test); each module's documentation says where it differs.
//!
//! Operators tune collectors in `agent.toml`: the keys of `[collectors.NAME]` other than
//! the agent's own (`enabled`, `tier`, `interval`, `timeout`) go, as a `toml::Table`, to
//! [`CollectorSpec::configure`], which reads them with the collector's
//! `XxxConfig::from_table` (for example [`processes::ProcessesConfig::from_table`]). An
//! empty table gives the defaults; an
//! unknown key or a bad value is an error naming the key. Patterns are node_exporter's
//! unanchored regular expressions, `""` meaning none; an include pattern given alone
//! replaces the collector's default exclusion.

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
pub mod access_log;
pub mod apache;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod database;
pub mod database_helper;
mod fetch;
mod filter;
mod helper_binary;
mod layout;
mod psi;
mod sample;
mod settings;

pub mod cpu;
pub mod diskstats;
pub mod filesystem;
pub mod host;
pub mod hwmon;
pub mod load;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod netdev;
pub mod netstat;
pub mod nginx;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod processes;
mod registry;
pub mod scrape;
pub mod services;
pub mod smart;
pub mod sockstat;
pub mod systemd;
pub mod tcpstat;
pub mod time;

#[cfg(all(test, target_os = "linux"))]
mod test_servers;
#[cfg(all(test, target_os = "linux"))]
mod testing;

pub use filter::NameFilter;
pub use registry::{CollectorContext, CollectorSpec, Configure, REGISTRY, Tier};
pub use sample::{CheckState, Event, Kind, Name, Output, Sample};
pub use sysward_platform::Roots;

/// Why a whole collector run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// Reading from the platform failed.
    #[error(transparent)]
    Platform(#[from] sysward_platform::Error),
}

/// One source of samples. Synchronous on purpose: the agent decides where and how long it runs.
pub trait Collector: Send {
    /// The collector's name: the same word as its file, its config key and its log field.
    fn name(&self) -> &'static str;

    /// Reads the system once and appends what it found to `out`.
    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError>;
}
