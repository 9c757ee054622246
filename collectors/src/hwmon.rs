//! `hwmon`: hardware sensors of `/sys/class/hwmon` (temperatures, fans, voltages,
//! power, PWM), named, labelled and converted exactly as node_exporter's `hwmon`
//! collector does: `node_hwmon_<type>[_<property>]_<unit>{chip,sensor}`.
//!
//! The `chip` label is stable across boots: the chip's device path (`platform_coretemp_0`
//! from `devices/platform/coretemp.0`), else its `name` file, else the `hwmonN` entry.
//! Where several chips hang off one device (an ASUS laptop's `asus-nb-wmi`, a Wi-Fi
//! card with one chip per radio), their `name` is appended, or the `hwmonN` entry when
//! even that collides (node_exporter #3646). The human-readable name is in
//! `node_hwmon_chip_names{chip,chip_name}`, labels in `node_hwmon_sensor_label`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use sysward_platform::{HwmonChip, Roots};

use crate::filter::NameFilter;
use crate::settings::{self, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// Each chip's human-readable name (gauge, 1; labels `chip`, `chip_name`).
pub const CHIP_NAMES: &str = "node_hwmon_chip_names";
/// Each sensor's label (gauge, 1; labels `chip`, `sensor`, `label`).
pub const SENSOR_LABEL: &str = "node_hwmon_sensor_label";
/// Temperatures (gauge; labels `chip`, `sensor`).
pub const TEMP_CELSIUS: &str = "node_hwmon_temp_celsius";
/// Fan speeds (gauge; labels `chip`, `sensor`).
pub const FAN_RPM: &str = "node_hwmon_fan_rpm";

/// Which chips the `hwmon` collector reports.
#[derive(Debug, Clone, Default)]
pub struct HwmonConfig {
    /// Chip labels (as sent) to report. All by default.
    pub chips: NameFilter,
}

/// `[collectors.hwmon]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HwmonSettings {
    chip_include: Option<Pattern>,
    chip_exclude: Option<Pattern>,
}

impl HwmonConfig {
    /// The configuration a `[collectors.hwmon]` table asks for, the agent's own keys left
    /// out: `chip_include` and `chip_exclude` (regular expressions on the `chip` label,
    /// `""` for none). An empty table gives the defaults: every chip.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: HwmonSettings = settings::parse("hwmon", table)?;
        Ok(Self {
            chips: settings::filter(s.chip_include, s.chip_exclude, Self::default().chips),
        })
    }
}

/// Reads `/sys/class/hwmon` under its roots.
#[derive(Debug)]
pub struct HwmonCollector {
    roots: Roots,
    config: HwmonConfig,
}

impl HwmonCollector {
    /// A collector reporting every chip.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, HwmonConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: HwmonConfig) -> Self {
        Self { roots, config }
    }
}

impl Collector for HwmonCollector {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let chips = match sysward_platform::read_hwmon(&self.roots) {
            Ok(chips) => chips,
            // No sensors exposed at all (virtual machines, containers): nothing to say.
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        for (chip, label) in chips.iter().zip(chip_labels(&chips)) {
            let Some(label) = label else {
                out.error(format!(
                    "{}: no name can be derived for this chip; skipped",
                    self.roots
                        .sys
                        .join(HwmonChip::DIR)
                        .join(&chip.entry)
                        .display()
                ));
                continue;
            };
            if self.config.chips.passes(&label) {
                push_chip(chip, &label, out);
            }
        }
        Ok(())
    }
}

/// node_exporter's `cleanMetricName`: lower case, anything but `[a-z0-9:_]` replaced
/// by `_`, then leading and trailing `_` trimmed.
fn clean(name: &str) -> String {
    let replaced: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_owned()
}

/// A chip's label before disambiguation: its device path, else its `name`, else its
/// entry name.
fn base_label(chip: &HwmonChip) -> Option<String> {
    if let Some((kind, device)) = &chip.device {
        let (kind, device) = (clean(kind), clean(device));
        if !device.is_empty() {
            return Some(if kind.is_empty() {
                device
            } else {
                format!("{kind}_{device}")
            });
        }
    }
    [chip.name.as_deref(), Some(chip.entry.as_str())]
        .into_iter()
        .flatten()
        .map(clean)
        .find(|name| !name.is_empty())
}

/// Every chip's label, unique: a label shared by several chips gets the chip's
/// cleaned `name` appended where that makes it unique, else its entry name.
fn chip_labels(chips: &[HwmonChip]) -> Vec<Option<String>> {
    let bases: Vec<Option<String>> = chips.iter().map(base_label).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for base in bases.iter().flatten() {
        *counts.entry(base).or_default() += 1;
    }
    let with_name = |chip: &HwmonChip, base: &str| {
        let name = clean(chip.name.as_deref().unwrap_or_default());
        (!name.is_empty()).then(|| format!("{base}_{name}"))
    };
    let mut named: HashMap<String, usize> = HashMap::new();
    for (chip, base) in chips.iter().zip(&bases) {
        if let Some(base) = base
            && counts[base.as_str()] > 1
            && let Some(candidate) = with_name(chip, base)
        {
            *named.entry(candidate).or_default() += 1;
        }
    }
    chips
        .iter()
        .zip(&bases)
        .map(|(chip, base)| {
            let base = base.as_ref()?;
            if counts[base.as_str()] == 1 {
                return Some(base.clone());
            }
            match with_name(chip, base) {
                Some(candidate) if named.get(&candidate) == Some(&1) => Some(candidate),
                _ => Some(format!("{base}_{}", clean(&chip.entry))),
            }
        })
        .collect()
}

/// The sensor type of a sensor key such as `temp1` or `beep_enable0`.
fn sensor_type(sensor: &str) -> &str {
    sensor.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn push_chip(chip: &HwmonChip, label: &str, out: &mut Output) {
    if let Some(name) = chip.name.as_deref().map(clean).filter(|n| !n.is_empty()) {
        out.push(
            Sample::new(CHIP_NAMES, Kind::Gauge, 1.0)
                .label("chip", label)
                .label("chip_name", name),
        );
    }
    for (sensor, properties) in &chip.sensors {
        push_sensor(label, sensor, properties, out);
    }
}

/// One sensor's series: node_exporter's `updateHwmon`, case for case.
fn push_sensor(chip: &str, sensor: &str, properties: &BTreeMap<String, String>, out: &mut Output) {
    let gauge = |name: &'static str, value: f64| {
        Sample::new(name, Kind::Gauge, value)
            .label("chip", chip)
            .label("sensor", sensor)
    };
    let kind = sensor_type(sensor);
    if let Some(text) = properties.get("label") {
        out.push(
            Sample::new(SENSOR_LABEL, Kind::Gauge, 1.0)
                .label("chip", chip)
                .label("sensor", sensor)
                .label("label", text.as_str()),
        );
    }
    let bare = properties.get("").map(String::as_str);
    match kind {
        "beep_enable" => {
            let on = if bare == Some("1") { 1.0 } else { 0.0 };
            out.push(gauge("node_hwmon_beep_enabled", on));
            return;
        }
        "vrm" => {
            if let Some(value) = bare.and_then(number) {
                out.push(gauge("node_hwmon_voltage_regulator_version", value));
            }
            return;
        }
        "update_interval" => {
            if let Some(value) = bare.and_then(number) {
                out.push(gauge("node_hwmon_update_interval_seconds", value * 0.001));
            }
            return;
        }
        _ => {}
    }
    let prefix = format!("node_hwmon_{kind}");
    for (element, text) in properties {
        if element == "label" {
            continue;
        }
        let Some(value) = number(text) else { continue };
        let name = match element.as_str() {
            // `input` is the reading itself, named after the type, unless a bare file
            // already holds that name.
            "input" if bare.is_none() => prefix.clone(),
            "" => prefix.clone(),
            other => format!("{prefix}_{}", clean(other)),
        };
        let element = element.as_str();
        let (name, value, metric_kind) = match (kind, element) {
            (_, "fault" | "alarm") => (name, value, Kind::Gauge),
            (_, "beep") => (format!("{name}_enabled"), value, Kind::Gauge),
            ("in" | "cpu", _) => (format!("{name}_volts"), value * 0.001, Kind::Gauge),
            ("temp", e) if e != "type" => (format!("{name}_celsius"), value * 0.001, Kind::Gauge),
            ("curr", _) => (format!("{name}_amps"), value * 0.001, Kind::Gauge),
            ("energy", _) => (format!("{name}_joule_total"), value / 1e6, Kind::Counter),
            ("power", "accuracy") => (name, value / 1e6, Kind::Gauge),
            ("power", "average_interval" | "average_interval_min" | "average_interval_max") => {
                (format!("{name}_seconds"), value * 0.001, Kind::Gauge)
            }
            ("power", _) => (format!("{name}_watt"), value / 1e6, Kind::Gauge),
            ("humidity", _) => (name, value / 1e6, Kind::Gauge),
            ("fan", "input" | "min" | "max" | "target") => {
                (format!("{name}_rpm"), value, Kind::Gauge)
            }
            ("freq", "input") => {
                // Sent under the sensor's label (a GPU's `sclk`, `mclk`), and only
                // with one, as node_exporter does.
                if let Some(label) = properties.get("label") {
                    out.push(
                        Sample::new(format!("{name}_freq_mhz"), Kind::Gauge, value / 1e6)
                            .label("chip", chip)
                            .label("sensor", clean(label)),
                    );
                }
                continue;
            }
            _ => (name, value, Kind::Gauge),
        };
        out.push(
            Sample::new(name, metric_kind, value)
                .label("chip", chip)
                .label("sensor", sensor),
        );
    }
}

/// A sensor reading: a decimal number, as Go's `ParseFloat` takes it.
fn number(text: &str) -> Option<f64> {
    text.trim_ascii().parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    fn chip(entry: &str, device: Option<(&str, &str)>, name: Option<&str>) -> HwmonChip {
        HwmonChip {
            entry: entry.into(),
            device: device.map(|(k, d)| (k.into(), d.into())),
            name: name.map(|n| format!("{n}\n")),
            sensors: BTreeMap::new(),
        }
    }

    #[test]
    fn matches_node_exporter_on_its_fixture() {
        // node_exporter's end-to-end test: --collector.hwmon.chip-include=(...), here as
        // agent.toml writes it.
        let settings =
            r#"chip_include = "(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)""#;
        let config = HwmonConfig::from_table(&toml::from_str(settings).unwrap()).unwrap();
        assert_matches_node_exporter(
            &mut HwmonCollector::with_config(fixture_roots(), config),
            &|name| name.starts_with("node_hwmon_"),
        );
    }

    #[test]
    fn names_are_cleaned_like_node_exporters() {
        assert_eq!(clean("coretemp.0"), "coretemp_0");
        assert_eq!(clean("asus-nb-wmi\n"), "asus_nb_wmi");
        assert_eq!(clean("Core 0"), "core_0");
        assert_eq!(clean("__x__"), "x");
        assert_eq!(clean("Ünï"), "n");
    }

    #[test]
    fn chips_sharing_a_device_are_told_apart() {
        let chips = [
            chip("hwmon0", Some(("platform", "coretemp.0")), Some("coretemp")),
            chip("hwmon1", Some(("platform", "coretemp.1")), Some("coretemp")),
            chip("hwmon2", Some(("platform", "asus-nb-wmi")), Some("asus")),
            chip(
                "hwmon3",
                Some(("platform", "asus-nb-wmi")),
                Some("asus_wmi_sensors"),
            ),
            chip("hwmon4", Some(("pci", "dev")), Some("same")),
            chip("hwmon5", Some(("pci", "dev")), Some("same")),
            chip("hwmon6", None, Some("nct6779")),
            chip("hwmon7", None, None),
            chip("hwmon8", None, Some("...")),
        ];
        let labels: Vec<_> = chip_labels(&chips).into_iter().flatten().collect();
        assert_eq!(
            labels,
            [
                "platform_coretemp_0",
                "platform_coretemp_1",
                "platform_asus_nb_wmi_asus",
                "platform_asus_nb_wmi_asus_wmi_sensors",
                "pci_dev_hwmon4",
                "pci_dev_hwmon5",
                "nct6779",
                "hwmon7",
                "hwmon8",
            ]
        );
    }

    #[test]
    fn units_follow_node_exporter() {
        let dir = TempDir::new("hwmon-units");
        let base = "sys/class/hwmon/hwmon0";
        for (file, value) in [
            ("name", "test"),
            ("in1_input", "1200"),
            ("curr1_input", "500"),
            ("power1_average", "2500000"),
            ("energy1_input", "3000000"),
            ("humidity1_input", "450000"),
            ("update_interval", "1000"),
            ("temp1_type", "4"),
            ("temp1_input", "not a number"),
        ] {
            dir.write(&format!("{base}/{file}"), format!("{value}\n"));
        }
        let mut out = Output::default();
        HwmonCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        let at = |name: &str, sensor: &str| {
            value_of(&out, name, &[("chip", "test"), ("sensor", sensor)])
        };
        assert_eq!(at("node_hwmon_in_volts", "in1"), Some(1.2));
        assert_eq!(at("node_hwmon_curr_amps", "curr1"), Some(0.5));
        assert_eq!(at("node_hwmon_power_average_watt", "power1"), Some(2.5));
        assert_eq!(at("node_hwmon_energy_joule_total", "energy1"), Some(3.0));
        assert_eq!(at("node_hwmon_humidity", "humidity1"), Some(0.45));
        assert_eq!(
            at("node_hwmon_update_interval_seconds", "update_interval0"),
            Some(1.0)
        );
        assert_eq!(at("node_hwmon_temp_type", "temp1"), Some(4.0));
        assert_eq!(at(TEMP_CELSIUS, "temp1"), None);
        assert_eq!(out.errors, Vec::<String>::new());
    }

    #[test]
    fn a_host_without_hwmon_sends_nothing_and_no_error() {
        let dir = TempDir::new("hwmon-none");
        let mut out = Output::default();
        HwmonCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert!(out.samples.is_empty());
        assert!(out.errors.is_empty());
    }

    #[test]
    fn chip_settings_choose_the_chips() {
        let chips = |settings: &str| -> Vec<String> {
            let mut collector =
                crate::testing::configured("hwmon", &fixture_roots(), settings).expect("valid");
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            crate::testing::label_values(&out, CHIP_NAMES, "chip")
                .into_iter()
                .map(String::from)
                .collect()
        };
        assert_eq!(
            chips("chip_include = \"^platform_\"\nchip_exclude = \"asus\""),
            ["platform_coretemp_0", "platform_coretemp_1"]
        );
        let all = chips("");
        assert!(all.len() >= 8, "{all:?}");
        assert_eq!(chips("chip_exclude = \"\""), all);
        let config = HwmonConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", HwmonConfig::default())
        );
    }
}
