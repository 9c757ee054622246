//! Hardware sensors of `/sys/class/hwmon`.

use std::collections::BTreeMap;

/// One hwmon device (a chip) and the raw text of its sensor attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HwmonChip {
    /// The entry's name under `class/hwmon`, e.g. `hwmon3`. Unstable across boots.
    pub entry: String,
    /// The last two components of the path the chip's `device` link resolves to, e.g.
    /// `("platform", "coretemp.0")`: stable across boots. `None` without a `device`.
    pub device: Option<(String, String)>,
    /// The chip's `name` attribute, e.g. `coretemp`, if it has one.
    pub name: Option<String>,
    /// Sensor (e.g. `temp1`) → property (e.g. `input`, `max`, `label`; empty for a
    /// file named after the sensor alone) → the file's text, without line breaks.
    /// Attributes of the chip directory and of its `device` directory are merged.
    pub sensors: BTreeMap<String, BTreeMap<String, String>>,
}

impl HwmonChip {
    /// The directory relative to [`Roots::sys`](crate::Roots::sys).
    pub const DIR: &'static str = "class/hwmon";
    /// The sensor types a chip can have (Documentation/hwmon/sysfs-interface.rst);
    /// files of any other name are not sensors.
    pub const SENSOR_TYPES: [&'static str; 14] = [
        "vrm",
        "beep_enable",
        "update_interval",
        "in",
        "cpu",
        "fan",
        "pwm",
        "temp",
        "curr",
        "power",
        "energy",
        "humidity",
        "intrusion",
        "freq",
    ];
}
