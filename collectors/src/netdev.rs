//! `netdev`: traffic counters per network interface (`/proc/net/dev`) and each
//! interface's state (`/sys/class/net`), as node_exporter's `netdev` and `netclass`
//! collectors name them.
//!
//! Differences from node_exporter: its `netdev` reads counters over netlink by
//! default, which adds `node_network_receive_nohandler_total`; `/proc/net/dev` has no
//! such column, so it is not sent. An interface whose `speed` is unknown (-1) gets no
//! `node_network_speed_bytes`, which node_exporter does only with
//! `--collector.netclass.ignore-invalid-speed` (its announced 2.x default).
//!
//! Interfaces come and go (container veths, VPN tunnels); one that disappears while it
//! is read is left out of this cycle without an error.

use serde::Deserialize;
use sysward_platform::{NetClassInterface, NetDev, Roots};

use crate::filter::NameFilter;
use crate::settings::{self, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// 1 when `operstate` is `up` (gauge).
pub const UP: &str = "node_network_up";
/// Non-numeric attributes as labels, value 1 (gauge).
pub const INFO: &str = "node_network_info";
/// Link speed in bytes per second (gauge).
pub const SPEED: &str = "node_network_speed_bytes";

/// `IFF_UP`, the administrative state bit of `flags`.
const IFF_UP: i64 = 0x1;

/// Which interfaces the `netdev` collector reports.
#[derive(Debug, Clone, Default)]
pub struct NetdevConfig {
    /// Interface names to report, in both files. All by default.
    pub devices: NameFilter,
}

/// `[collectors.netdev]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetdevSettings {
    device_include: Option<Pattern>,
    device_exclude: Option<Pattern>,
}

impl NetdevConfig {
    /// The configuration a `[collectors.netdev]` table asks for, the agent's own keys
    /// left out: `device_include` and `device_exclude` (regular expressions, `""` for
    /// none). An empty table gives the defaults: every interface.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: NetdevSettings = settings::parse("netdev", table)?;
        Ok(Self {
            devices: settings::filter(s.device_include, s.device_exclude, Self::default().devices),
        })
    }
}

/// Reads `/proc/net/dev` and `/sys/class/net` under its roots.
#[derive(Debug)]
pub struct NetdevCollector {
    roots: Roots,
    config: NetdevConfig,
    /// The last read of `class/net`, whose slow attributes the next read reuses.
    class: Vec<sysward_platform::NetClassInterface>,
    /// When the slow attributes were last read from the files.
    full_read: Option<std::time::Instant>,
}

/// How often the interface attributes that change only by reconfiguration (alias,
/// addresses, type, queue length) are read again from sysfs.
const FULL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl NetdevCollector {
    /// A collector reporting every interface.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, NetdevConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: NetdevConfig) -> Self {
        Self {
            roots,
            config,
            class: Vec::new(),
            full_read: None,
        }
    }
}

impl Collector for NetdevCollector {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let counters = sysward_platform::read_net_dev(&self.roots);
        let full = self
            .full_read
            .is_none_or(|at| at.elapsed() >= FULL_READ_EVERY);
        let previous = if full { &[][..] } else { &self.class[..] };
        let class = sysward_platform::read_net_class(&self.roots, previous);
        match &class {
            Ok(interfaces) => {
                self.class.clone_from(interfaces);
                if full {
                    self.full_read = Some(std::time::Instant::now());
                }
            }
            Err(_) => self.class.clear(),
        }
        match (counters, class) {
            (Err(counters), Err(class)) => {
                // Nothing at all to send: the run failed, and the second cause is kept.
                out.error(class.to_string());
                return Err(counters.into());
            }
            (counters, class) => {
                match counters {
                    Ok(dev) => self.push_counters(&dev, out),
                    Err(error) => out.error(error.to_string()),
                }
                match class {
                    Ok(interfaces) => self.push_class(&interfaces, out),
                    Err(error) => out.error(error.to_string()),
                }
            }
        }
        Ok(())
    }
}

impl NetdevCollector {
    fn push_counters(&self, dev: &NetDev, out: &mut Output) {
        let path = self.roots.proc.join(NetDev::FILE);
        for skipped in &dev.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        for interface in &dev.interfaces {
            if !self.config.devices.passes(&interface.name) {
                continue;
            }
            let directions = [
                ("receive", &NetDev::RECEIVE_FIELDS, &interface.receive),
                ("transmit", &NetDev::TRANSMIT_FIELDS, &interface.transmit),
            ];
            for (direction, fields, values) in directions {
                for (field, value) in fields.iter().zip(values) {
                    out.push(
                        Sample::new(
                            format!("node_network_{direction}_{field}_total"),
                            Kind::Counter,
                            *value as f64,
                        )
                        .label("device", interface.name.as_str()),
                    );
                }
            }
        }
    }

    fn push_class(&self, interfaces: &[NetClassInterface], out: &mut Output) {
        for iface in interfaces {
            if !self.config.devices.passes(&iface.name) {
                continue;
            }
            let device = iface.name.as_str();
            let up = iface.operstate.as_deref() == Some("up");
            out.push(
                Sample::new(UP, Kind::Gauge, if up { 1.0 } else { 0.0 }).label("device", device),
            );
            let text = |value: &Option<String>| value.clone().unwrap_or_default();
            let admin = match iface.flags {
                None => "unknown",
                Some(flags) if flags & IFF_UP != 0 => "up",
                Some(_) => "down",
            };
            out.push(
                Sample::new(INFO, Kind::Gauge, 1.0)
                    .label("device", device)
                    .label("address", text(&iface.address))
                    .label("broadcast", text(&iface.broadcast))
                    .label("duplex", text(&iface.duplex))
                    .label("operstate", text(&iface.operstate))
                    .label("adminstate", admin)
                    .label("ifalias", text(&iface.ifalias)),
            );
            let properties = [
                (
                    "node_network_address_assign_type",
                    Kind::Gauge,
                    iface.addr_assign_type,
                ),
                ("node_network_carrier", Kind::Gauge, iface.carrier),
                (
                    "node_network_carrier_changes_total",
                    Kind::Counter,
                    iface.carrier_changes,
                ),
                (
                    "node_network_carrier_up_changes_total",
                    Kind::Counter,
                    iface.carrier_up_count,
                ),
                (
                    "node_network_carrier_down_changes_total",
                    Kind::Counter,
                    iface.carrier_down_count,
                ),
                ("node_network_device_id", Kind::Gauge, iface.dev_id),
                ("node_network_dormant", Kind::Gauge, iface.dormant),
                ("node_network_flags", Kind::Gauge, iface.flags),
                ("node_network_iface_id", Kind::Gauge, iface.ifindex),
                ("node_network_iface_link", Kind::Gauge, iface.iflink),
                ("node_network_iface_link_mode", Kind::Gauge, iface.link_mode),
                ("node_network_mtu_bytes", Kind::Gauge, iface.mtu),
                (
                    "node_network_name_assign_type",
                    Kind::Gauge,
                    iface.name_assign_type,
                ),
                (
                    "node_network_net_dev_group",
                    Kind::Gauge,
                    iface.netdev_group,
                ),
                (
                    "node_network_transmit_queue_length",
                    Kind::Gauge,
                    iface.tx_queue_len,
                ),
                (
                    "node_network_protocol_type",
                    Kind::Gauge,
                    iface.protocol_type,
                ),
            ];
            for (name, kind, value) in properties {
                if let Some(value) = value {
                    out.push(Sample::new(name, kind, value as f64).label("device", device));
                }
            }
            // Mbit/s to bytes/s; -1 means the driver does not know.
            if let Some(speed) = iface.speed.filter(|speed| *speed >= 0) {
                out.push(
                    Sample::new(SPEED, Kind::Gauge, speed as f64 * 1_000_000.0 / 8.0)
                        .label("device", device),
                );
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    #[test]
    fn interface_state_matches_node_exporter_on_its_fixture() {
        // The fixture has no /proc/net/dev: node_exporter's end-to-end test read the
        // counters of its own `lo` over netlink. Only the sysfs part can be compared,
        // with the test's `--collector.netclass.ignored-devices=(dmz|int)`.
        let mut roots = fixture_roots();
        let dir = TempDir::new("netdev-e2e");
        dir.write("proc/net/dev", "");
        roots.proc = dir.path().join("proc");
        let settings = toml::from_str(r#"device_exclude = "(dmz|int)""#).unwrap();
        let config = NetdevConfig::from_table(&settings).unwrap();
        assert_matches_node_exporter(&mut NetdevCollector::with_config(roots, config), &|name| {
            name.starts_with("node_network_")
                && !name.starts_with("node_network_receive_")
                && !name.starts_with("node_network_transmit_")
                || name == "node_network_transmit_queue_length"
        });
    }

    #[test]
    fn sends_every_counter_of_proc_net_dev() {
        let dir = TempDir::new("netdev-counters");
        dir.write(
            "proc/net/dev",
            "Inter-|   Receive |  Transmit\n face |bytes ...|bytes ...\n\
             lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nbroken line\n",
        );
        std::fs::create_dir_all(dir.path().join("sys/class/net")).expect("mkdir");
        let mut out = Output::default();
        NetdevCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.samples.len(), 16);
        let lo = [("device", "lo")];
        assert_eq!(
            value_of(&out, "node_network_receive_bytes_total", &lo),
            Some(1.0)
        );
        assert_eq!(
            value_of(&out, "node_network_receive_multicast_total", &lo),
            Some(8.0)
        );
        assert_eq!(
            value_of(&out, "node_network_transmit_bytes_total", &lo),
            Some(9.0)
        );
        assert_eq!(
            value_of(&out, "node_network_transmit_colls_total", &lo),
            Some(14.0)
        );
        assert_eq!(
            value_of(&out, "node_network_transmit_carrier_total", &lo),
            Some(15.0)
        );
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].contains("net/dev line 4"),
            "{}",
            out.errors[0]
        );
    }

    #[test]
    fn one_missing_source_is_an_error_both_fail_the_run() {
        let dir = TempDir::new("netdev-missing");
        std::fs::create_dir_all(dir.path().join("sys/class/net/eth0")).expect("mkdir");
        let mut out = Output::default();
        NetdevCollector::new(dir.roots())
            .collect(&mut out)
            .expect("sysfs part works");
        assert_eq!(value_of(&out, UP, &[("device", "eth0")]), Some(0.0));
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].contains("net/dev"), "{}", out.errors[0]);
        let empty = TempDir::new("netdev-none");
        assert!(
            NetdevCollector::new(empty.roots())
                .collect(&mut Output::default())
                .is_err()
        );
    }

    #[test]
    fn device_settings_choose_the_interfaces() {
        let dir = TempDir::new("netdev-settings");
        let line = |name: &str| format!("{name}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        let text: String = ["lo", "eth0", "eth1", "veth9"].map(line).concat();
        dir.write("proc/net/dev", format!("Inter-|\n face |\n{text}"));
        for name in ["lo", "eth0", "veth9"] {
            std::fs::create_dir_all(dir.path().join("sys/class/net").join(name)).expect("mkdir");
        }
        let devices = |settings: &str| -> Vec<String> {
            let mut collector =
                crate::testing::configured("netdev", &dir.roots(), settings).expect("valid");
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            assert_eq!(out.errors, Vec::<String>::new());
            let counted =
                crate::testing::label_values(&out, "node_network_receive_bytes_total", "device");
            let up = crate::testing::label_values(&out, UP, "device");
            [counted, up]
                .concat()
                .into_iter()
                .map(String::from)
                .collect()
        };
        assert_eq!(
            devices("device_include = \"^(eth|veth)\"\ndevice_exclude = \"^veth\""),
            ["eth0", "eth1", "eth0"]
        );
        assert_eq!(
            devices("device_exclude = \"^lo$\""),
            ["eth0", "eth1", "veth9", "eth0", "veth9"]
        );
        assert_eq!(
            devices(""),
            ["eth0", "eth1", "lo", "veth9", "eth0", "lo", "veth9"]
        );
        let config = NetdevConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", NetdevConfig::default())
        );
    }
}
