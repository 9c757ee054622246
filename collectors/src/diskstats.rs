//! `diskstats`: I/O counters per block device, from `/proc/diskstats`.
//!
//! Names, units and the default device exclusion are node_exporter's: sectors are
//! converted to bytes at the kernel's fixed 512 bytes a sector (except
//! `node_disk_discarded_sectors_total`, which node_exporter leaves in sectors), times
//! from milliseconds to seconds. Discard counters appear from kernel 4.18, flush
//! counters from 5.5; a device's line only gets the series its kernel prints.
//!
//! node_exporter's `node_disk_info`, `node_disk_filesystem_info`,
//! `node_disk_device_mapper_info` and `node_disk_ata_*` come from the udev database,
//! not from this file, and are not sent.

use serde::Deserialize;
use sysward_platform::{DiskStats, Roots};

use crate::filter::{NameFilter, builtin_exclude};
use crate::settings::{self, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions of
/// whole disks (`sda1`, `nvme0n1p1`; their I/O is already counted on the disk), RAM
/// disks, loop devices and floppies.
pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// Sectors in `/proc/diskstats` are 512 bytes, whatever the device's own sector size.
const SECTOR_BYTES: f64 = 512.0;
/// Times in `/proc/diskstats` are in milliseconds.
const MS: f64 = 1.0 / 1000.0;

/// What each counter becomes, in the kernel's column order: metric name, kind, and the
/// factor to base units.
pub const METRICS: [(&str, Kind, f64); 17] = [
    ("node_disk_reads_completed_total", Kind::Counter, 1.0),
    ("node_disk_reads_merged_total", Kind::Counter, 1.0),
    ("node_disk_read_bytes_total", Kind::Counter, SECTOR_BYTES),
    ("node_disk_read_time_seconds_total", Kind::Counter, MS),
    ("node_disk_writes_completed_total", Kind::Counter, 1.0),
    ("node_disk_writes_merged_total", Kind::Counter, 1.0),
    ("node_disk_written_bytes_total", Kind::Counter, SECTOR_BYTES),
    ("node_disk_write_time_seconds_total", Kind::Counter, MS),
    ("node_disk_io_now", Kind::Gauge, 1.0),
    ("node_disk_io_time_seconds_total", Kind::Counter, MS),
    (
        "node_disk_io_time_weighted_seconds_total",
        Kind::Counter,
        MS,
    ),
    ("node_disk_discards_completed_total", Kind::Counter, 1.0),
    ("node_disk_discards_merged_total", Kind::Counter, 1.0),
    ("node_disk_discarded_sectors_total", Kind::Counter, 1.0),
    ("node_disk_discard_time_seconds_total", Kind::Counter, MS),
    ("node_disk_flush_requests_total", Kind::Counter, 1.0),
    (
        "node_disk_flush_requests_time_seconds_total",
        Kind::Counter,
        MS,
    ),
];

/// Which devices the `diskstats` collector reports.
#[derive(Debug, Clone)]
pub struct DiskstatsConfig {
    /// Device names to report.
    pub devices: NameFilter,
}

impl Default for DiskstatsConfig {
    fn default() -> Self {
        Self {
            devices: builtin_exclude(DEFAULT_DEVICE_EXCLUDE),
        }
    }
}

/// `[collectors.diskstats]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskstatsSettings {
    device_include: Option<Pattern>,
    device_exclude: Option<Pattern>,
}

impl DiskstatsConfig {
    /// The configuration a `[collectors.diskstats]` table asks for, the agent's own keys
    /// left out: `device_include` and `device_exclude` (regular expressions, `""` for
    /// none; an include alone replaces [`DEFAULT_DEVICE_EXCLUDE`]). An empty table gives
    /// the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: DiskstatsSettings = settings::parse("diskstats", table)?;
        Ok(Self {
            devices: settings::filter(s.device_include, s.device_exclude, Self::default().devices),
        })
    }
}

/// Reads `/proc/diskstats` under its roots.
#[derive(Debug)]
pub struct DiskstatsCollector {
    roots: Roots,
    config: DiskstatsConfig,
}

impl DiskstatsCollector {
    /// A collector with node_exporter's default device exclusion.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, DiskstatsConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: DiskstatsConfig) -> Self {
        Self { roots, config }
    }
}

impl Collector for DiskstatsCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let stats = sysward_platform::read_diskstats(&self.roots)?;
        let path = self.roots.proc.join(DiskStats::FILE);
        for skipped in &stats.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        for disk in &stats.disks {
            if !self.config.devices.passes(&disk.device) {
                continue;
            }
            // Zip stops at the shorter: an older kernel's line simply has fewer series,
            // and columns a newer kernel adds wait until they have a name.
            for ((name, kind, factor), value) in METRICS.iter().zip(&disk.counters) {
                out.push(
                    Sample::new(*name, *kind, *value as f64 * factor)
                        .label("device", disk.device.as_str()),
                );
            }
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    #[test]
    fn the_default_pattern_compiles_and_keeps_whole_disks() {
        let filter = NameFilter::exclude(DEFAULT_DEVICE_EXCLUDE).expect("compiles");
        for kept in [
            "sda",
            "nvme0n1",
            "dm-0",
            "mmcblk0",
            "mmcblk0p1",
            "md0",
            "sr0",
            "vda",
        ] {
            assert!(filter.passes(kept), "{kept}");
        }
        for dropped in [
            "sda1",
            "nvme0n1p2",
            "loop0",
            "ram3",
            "zram0",
            "fd0",
            "xvda1",
        ] {
            assert!(!filter.passes(dropped), "{dropped}");
        }
    }

    #[test]
    fn matches_node_exporter_on_its_fixture() {
        assert_matches_node_exporter(&mut DiskstatsCollector::new(fixture_roots()), &|name| {
            METRICS.iter().any(|(metric, _, _)| *metric == name)
        });
    }

    #[test]
    fn a_bad_line_is_reported_and_the_rest_sent() {
        let dir = TempDir::new("diskstats-bad");
        dir.write(
            "proc/diskstats",
            "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb broken\n",
        );
        let mut out = Output::default();
        DiskstatsCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.samples.len(), 11);
        assert_eq!(
            value_of(&out, "node_disk_read_bytes_total", &[("device", "sda")]),
            Some(3.0 * 512.0)
        );
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].contains("diskstats line 2"),
            "{}",
            out.errors[0]
        );
    }

    #[test]
    fn an_unreadable_file_fails_the_run() {
        let dir = TempDir::new("diskstats-none");
        assert!(
            DiskstatsCollector::new(dir.roots())
                .collect(&mut Output::default())
                .is_err()
        );
    }

    fn devices(settings: &str) -> Vec<String> {
        let mut collector =
            crate::testing::configured("diskstats", &fixture_roots(), settings).expect("valid");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        crate::testing::label_values(&out, "node_disk_io_now", "device")
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn device_settings_choose_the_devices() {
        assert_eq!(
            devices("device_include = \"^sd[ab]\"\ndevice_exclude = \"^sdb\""),
            ["sda", "sda1", "sda2", "sda3", "sda4"]
        );
        // An include alone replaces the default exclusion, which drops partitions.
        assert_eq!(devices("device_include = \"^sda1$\""), ["sda1"]);
        assert_eq!(
            devices("device_exclude = \"^(ram|loop|dm|sd|nvme|mmc)\""),
            ["fd0", "sr0", "vda", "vda1", "vda2"]
        );
        let all = devices("device_exclude = \"\"");
        assert!(all.contains(&"ram0".to_string()), "{all:?}");
        assert_eq!(
            devices(""),
            devices("device_exclude = '^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$'")
        );
    }

    #[test]
    fn settings_give_the_defaults_when_empty() {
        let config = DiskstatsConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", DiskstatsConfig::default())
        );
        let error = DiskstatsConfig::from_table(&toml::from_str("device_include = \"[\"").unwrap())
            .unwrap_err();
        assert!(
            error.starts_with(
                "bad setting `device_include` for collector diskstats: invalid regular expression"
            ),
            "{error}"
        );
    }
}
