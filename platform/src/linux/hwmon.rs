//! `/sys/class/hwmon`: hardware sensor chips (Documentation/hwmon/sysfs-interface.rst).
//!
//! Each entry is (a link to) a directory of attribute files named
//! `<type><number>_<property>`, e.g. `temp1_input` (millidegrees Celsius),
//! `fan2_min` (RPM), `in0_label` (text). Older drivers put the files in the chip's
//! `device` directory instead, so both are read.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::read_attr;
use crate::{Error, HwmonChip, Roots};

/// Splits a sensor attribute file name into type, number and property, as
/// node_exporter's pattern `^([^0-9]+)([0-9]*)?(_(.+))?$` does: `temp1_crit_alarm` is
/// `("temp", 1, "crit_alarm")`, `temp1` is `("temp", 1, "")`, and `beep_enable` (no
/// number) is `("beep_enable", 0, "")`. `None` for a name of another shape.
pub fn parse_hwmon_filename(name: &str) -> Option<(&str, u32, &str)> {
    let type_end = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    if type_end == 0 {
        return None;
    }
    let (kind, rest) = name.split_at(type_end);
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (number, after) = rest.split_at(digits);
    let number = if number.is_empty() {
        0
    } else {
        number.parse().ok()?
    };
    let property = match after.strip_prefix('_') {
        None if after.is_empty() => "",
        Some(property) if !property.is_empty() => property,
        _ => return None,
    };
    Some((kind, number, property))
}

/// Reads every chip of `class/hwmon` under `roots.sys`: its identity and the text of
/// each sensor attribute. An attribute that cannot be read is left out (some drivers
/// refuse reads of some files); only a `class/hwmon` that cannot be listed is an error.
pub fn read_hwmon(roots: &Roots) -> Result<Vec<HwmonChip>, Error> {
    let dir = roots.sys.join(HwmonChip::DIR);
    let entries = fs::read_dir(&dir).map_err(|source| Error::Read {
        path: dir.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut chips = Vec::new();
    for entry in names {
        let path = dir.join(&entry);
        // Entries are links to device directories; a dangling one is skipped.
        if !path.is_dir() {
            continue;
        }
        let device = fs::canonicalize(path.join("device")).ok().and_then(|real| {
            let name = real.file_name()?.to_string_lossy().into_owned();
            let parent = real.parent()?.file_name()?.to_string_lossy().into_owned();
            Some((parent, name))
        });
        let name = fs::read(path.join("name"))
            .ok()
            .map(|raw| String::from_utf8_lossy(&raw).into_owned());
        let mut sensors = BTreeMap::new();
        read_sensors(&path, &mut sensors);
        let device_dir = path.join("device");
        if device_dir.is_dir() {
            read_sensors(&device_dir, &mut sensors);
        }
        chips.push(HwmonChip {
            entry,
            device,
            name,
            sensors,
        });
    }
    Ok(chips)
}

/// Adds the sensor attributes of `dir` to `sensors`, keyed as node_exporter keys them:
/// type and number (`temp1`, or `beep_enable0` for a file without number), then
/// property.
fn read_sensors(dir: &Path, sensors: &mut BTreeMap<String, BTreeMap<String, String>>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some((kind, number, property)) = parse_hwmon_filename(file_name) else {
            continue;
        };
        if !HwmonChip::SENSOR_TYPES.contains(&kind) {
            continue;
        }
        // Directories (`power/`) and unreadable attributes fail here and are skipped.
        let Ok(value) = read_attr(&entry.path()) else {
            continue;
        };
        sensors
            .entry(format!("{kind}{number}"))
            .or_default()
            .insert(property.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::TempDir;
    use proptest::prelude::*;

    #[test]
    fn file_names_split_as_node_exporters_pattern_does() {
        let cases = [
            ("temp1_input", Some(("temp", 1, "input"))),
            ("temp1_crit_alarm", Some(("temp", 1, "crit_alarm"))),
            ("pwm1_auto_point1_pwm", Some(("pwm", 1, "auto_point1_pwm"))),
            ("in0", Some(("in", 0, ""))),
            ("beep_enable", Some(("beep_enable", 0, ""))),
            ("update_interval", Some(("update_interval", 0, ""))),
            ("name", Some(("name", 0, ""))),
            ("temp_input", Some(("temp_input", 0, ""))),
            ("1temp", None),
            ("temp1x", None),
            ("temp1_", None),
            ("temp99999999999_input", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_hwmon_filename(name), expected, "{name}");
        }
    }

    #[test]
    fn reads_chip_and_device_attributes() {
        let dir = TempDir::new("hwmon");
        let chip = dir.path().join("sys/class/hwmon/hwmon0");
        std::fs::create_dir_all(chip.join("device/power")).expect("mkdir");
        for (file, value) in [
            ("name", "k10temp\n"),
            ("temp1_input", "45000\n"),
            ("temp1_label", "Tctl\n"),
            ("uevent", "x\n"),
            ("device/fan1_input", "1200\n"),
            ("device/vendor", "0x1022\n"),
        ] {
            std::fs::write(chip.join(file), value).expect("write");
        }
        std::fs::write(dir.path().join("sys/class/hwmon/stray"), "").expect("write");
        let chips = read_hwmon(&dir.roots()).expect("reads");
        assert_eq!(chips.len(), 1);
        let chip = &chips[0];
        assert_eq!(chip.entry, "hwmon0");
        assert_eq!(chip.name.as_deref(), Some("k10temp\n"));
        assert_eq!(chip.device.as_ref().map(|d| d.1.as_str()), Some("device"));
        assert_eq!(chip.sensors["temp1"]["input"], "45000");
        assert_eq!(chip.sensors["temp1"]["label"], "Tctl");
        assert_eq!(chip.sensors["fan1"]["input"], "1200");
        assert_eq!(chip.sensors.len(), 2);
    }

    #[test]
    fn a_missing_class_dir_is_a_read_error() {
        let dir = TempDir::new("hwmon-none");
        assert!(read_hwmon(&dir.roots()).expect_err("none").is_not_found());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_name(name in any::<String>()) {
            if let Some((kind, _, property)) = parse_hwmon_filename(&name) {
                prop_assert!(!kind.is_empty());
                prop_assert!(!kind.contains(|c: char| c.is_ascii_digit()));
                prop_assert!(name.ends_with(property));
            }
        }
    }
}
