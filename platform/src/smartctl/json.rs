//! smartctl's JSON output (smartmontools 7 and later, `json_format_version` 1), read into
//! typed serde structs and turned into a [`SmartReading`] or a [`Scan`].
//!
//! Every field is optional and unknown fields are ignored, since which ones appear depends
//! on the device and the smartctl version. Counters are read leniently: NVMe counters
//! are 128-bit, so a number beyond `u64` saturates instead of failing the document.

use serde::{Deserialize, Deserializer};

use super::{AtaAttribute, NvmeHealth, Scan, ScanEntry, SmartReading, WhenFailed};
use crate::ParseError;

/// Parses the JSON output of `smartctl --json --all DEVICE`.
///
/// Fails when the text is not JSON, not an object, or not smartctl's format version 1.
pub fn parse_json(input: &[u8]) -> Result<SmartReading, ParseError> {
    let doc: Document = from_slice(input)?;
    check_format(&doc.json_format_version, input)?;
    Ok(doc.into_reading())
}

/// Parses the JSON output of `smartctl --scan-open --json`.
pub fn parse_scan_json(input: &[u8]) -> Result<Scan, ParseError> {
    let doc: ScanDocument = from_slice(input)?;
    check_format(&doc.json_format_version, input)?;
    let mut scan = Scan {
        devices: Vec::new(),
        messages: doc
            .smartctl
            .map(|s| s.message_strings())
            .unwrap_or_default(),
    };
    for device in doc.devices.unwrap_or_default() {
        let (Some(name), Some(device_type)) = (device.name, device.device_type) else {
            continue;
        };
        scan.devices.push(ScanEntry {
            name,
            device_type,
            protocol: device.protocol,
            open_error: device.open_error,
        });
    }
    Ok(scan)
}

fn from_slice<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(input).map_err(|error| {
        ParseError::new(error.line().max(1), format!("not smartctl JSON: {error}"))
    })
}

fn check_format(version: &Option<Vec<u64>>, input: &[u8]) -> Result<(), ParseError> {
    match version.as_deref() {
        Some([1, ..]) => Ok(()),
        Some(other) => Err(ParseError::new(
            1,
            format!("unsupported json_format_version {other:?}, expected 1.x"),
        )),
        None => Err(ParseError::new(
            input.iter().filter(|b| **b == b'\n').count() + 1,
            "not smartctl JSON: no json_format_version",
        )),
    }
}

/// A JSON number as `u64`: negative values are refused, values beyond `u64` (NVMe's
/// 128-bit counters, which serde_json reads as floating point) saturate.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative number")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("negative count {v}")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v >= 0.0 {
                // `as` saturates at u64::MAX, which is what a 128-bit counter needs.
                Ok(Some(v as u64))
            } else {
                Err(E::custom(format!("bad count {v}")))
            }
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Visitor)
}

#[derive(Deserialize)]
struct Document {
    json_format_version: Option<Vec<u64>>,
    smartctl: Option<Smartctl>,
    device: Option<DeviceInfo>,
    model_family: Option<String>,
    model_name: Option<String>,
    scsi_model_name: Option<String>,
    vendor: Option<String>,
    product: Option<String>,
    scsi_vendor: Option<String>,
    scsi_product: Option<String>,
    serial_number: Option<String>,
    firmware_version: Option<String>,
    user_capacity: Option<Capacity>,
    #[serde(default, deserialize_with = "lenient_u64")]
    rotation_rate: Option<u64>,
    smart_status: Option<SmartStatus>,
    temperature: Option<Temperature>,
    power_on_time: Option<PowerOnTime>,
    #[serde(default, deserialize_with = "lenient_u64")]
    power_cycle_count: Option<u64>,
    ata_smart_attributes: Option<AttributeTable>,
    ata_smart_error_log: Option<ErrorLog>,
    nvme_smart_health_information_log: Option<NvmeLog>,
    #[serde(default, deserialize_with = "lenient_u64")]
    scsi_grown_defect_list: Option<u64>,
}

#[derive(Deserialize)]
struct Smartctl {
    version: Option<Vec<u32>>,
    messages: Option<Vec<Message>>,
    exit_status: Option<u8>,
}

impl Smartctl {
    fn message_strings(&self) -> Vec<String> {
        self.messages
            .iter()
            .flatten()
            .filter_map(|m| m.string.clone())
            .collect()
    }
}

#[derive(Deserialize)]
struct Message {
    string: Option<String>,
}

#[derive(Deserialize)]
struct DeviceInfo {
    protocol: Option<String>,
}

#[derive(Deserialize)]
struct Capacity {
    #[serde(default, deserialize_with = "lenient_u64")]
    bytes: Option<u64>,
}

#[derive(Deserialize)]
struct SmartStatus {
    passed: Option<bool>,
}

#[derive(Deserialize)]
struct Temperature {
    current: Option<i64>,
    drive_trip: Option<i64>,
}

#[derive(Deserialize)]
struct PowerOnTime {
    #[serde(default, deserialize_with = "lenient_u64")]
    hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    minutes: Option<u64>,
}

#[derive(Deserialize)]
struct AttributeTable {
    table: Option<Vec<Attribute>>,
}

#[derive(Deserialize)]
struct Attribute {
    id: Option<u8>,
    name: Option<String>,
    value: Option<u16>,
    worst: Option<u16>,
    thresh: Option<u16>,
    when_failed: Option<String>,
    flags: Option<Flags>,
    raw: Option<Raw>,
}

#[derive(Deserialize)]
struct Flags {
    value: Option<u16>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default, deserialize_with = "lenient_u64")]
    value: Option<u64>,
    string: Option<String>,
}

#[derive(Deserialize)]
struct ErrorLog {
    summary: Option<ErrorLogSummary>,
}

#[derive(Deserialize)]
struct ErrorLogSummary {
    #[serde(default, deserialize_with = "lenient_u64")]
    count: Option<u64>,
}

#[derive(Deserialize)]
struct NvmeLog {
    #[serde(default, deserialize_with = "lenient_u64")]
    critical_warning: Option<u64>,
    temperature: Option<i64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    available_spare: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    available_spare_threshold: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    percentage_used: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    data_units_read: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    data_units_written: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    host_reads: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    host_writes: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    controller_busy_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    power_cycles: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    power_on_hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    unsafe_shutdowns: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    media_errors: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    num_err_log_entries: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    warning_temp_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    critical_comp_time: Option<u64>,
}

#[derive(Deserialize)]
struct ScanDocument {
    json_format_version: Option<Vec<u64>>,
    smartctl: Option<Smartctl>,
    devices: Option<Vec<ScanDevice>>,
}

#[derive(Deserialize)]
struct ScanDevice {
    name: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    protocol: Option<String>,
    open_error: Option<String>,
}

/// Trims a string and drops it if nothing is left.
fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

impl Document {
    fn into_reading(self) -> SmartReading {
        let messages = self
            .smartctl
            .as_ref()
            .map(Smartctl::message_strings)
            .unwrap_or_default();
        let standby = messages.iter().any(|m| super::text::is_standby_message(m));
        let scsi_model = match (
            non_empty(self.scsi_vendor.or(self.vendor)),
            non_empty(self.scsi_product.or(self.product)),
        ) {
            (Some(vendor), Some(product)) => Some(format!("{vendor} {product}")),
            (vendor, product) => vendor.or(product),
        };
        let mut ata_attributes = Vec::new();
        let mut skipped = Vec::new();
        let table = self.ata_smart_attributes.and_then(|t| t.table);
        for (index, attribute) in table.into_iter().flatten().enumerate() {
            match attribute.into_attribute() {
                Some(attribute) => ata_attributes.push(attribute),
                // JSON has no useful line numbers once parsed; the row number stands in.
                None => skipped.push(ParseError::new(
                    index + 1,
                    format!("ata_smart_attributes.table[{index}] has no attribute id"),
                )),
            }
        }
        SmartReading {
            exit_status: self.smartctl.as_ref().and_then(|s| s.exit_status),
            smartctl_version: self
                .smartctl
                .as_ref()
                .and_then(|s| match s.version.as_deref() {
                    Some([major, minor, ..]) => Some((*major, *minor)),
                    _ => None,
                }),
            messages,
            standby,
            protocol: non_empty(self.device.and_then(|d| d.protocol)),
            model_family: non_empty(self.model_family),
            model_name: non_empty(self.model_name)
                .or_else(|| non_empty(self.scsi_model_name))
                .or(scsi_model),
            serial_number: non_empty(self.serial_number),
            firmware_version: non_empty(self.firmware_version),
            capacity_bytes: self.user_capacity.and_then(|c| c.bytes),
            rotation_rate: self.rotation_rate,
            smart_passed: self.smart_status.and_then(|s| s.passed),
            temperature: self.temperature.as_ref().and_then(|t| t.current),
            temperature_drive_trip: self.temperature.as_ref().and_then(|t| t.drive_trip),
            power_on_hours: self.power_on_time.as_ref().and_then(|p| p.hours),
            power_on_minutes: self.power_on_time.as_ref().and_then(|p| p.minutes),
            power_cycle_count: self.power_cycle_count,
            ata_attributes,
            ata_error_log_count: self
                .ata_smart_error_log
                .and_then(|l| l.summary)
                .and_then(|s| s.count),
            nvme_health: self
                .nvme_smart_health_information_log
                .map(NvmeLog::into_health),
            scsi_grown_defect_list: self.scsi_grown_defect_list,
            skipped,
        }
    }
}

impl Attribute {
    fn into_attribute(self) -> Option<AtaAttribute> {
        let raw = self.raw;
        Some(AtaAttribute {
            id: self.id.filter(|id| *id != 0)?,
            name: self.name.map(|n| n.trim().to_owned()).unwrap_or_default(),
            flags: self.flags.and_then(|f| f.value).unwrap_or(0),
            value: self.value,
            worst: self.worst,
            threshold: self.thresh,
            when_failed: match self.when_failed.as_deref() {
                Some("now") => WhenFailed::Now,
                Some("past") => WhenFailed::Past,
                _ => WhenFailed::Never,
            },
            raw: raw.as_ref().and_then(|r| r.value),
            raw_string: raw.and_then(|r| r.string).unwrap_or_default(),
        })
    }
}

impl NvmeLog {
    fn into_health(self) -> NvmeHealth {
        NvmeHealth {
            critical_warning: self.critical_warning,
            temperature: self.temperature,
            available_spare: self.available_spare,
            available_spare_threshold: self.available_spare_threshold,
            percentage_used: self.percentage_used,
            data_units_read: self.data_units_read,
            data_units_written: self.data_units_written,
            host_reads: self.host_reads,
            host_writes: self.host_writes,
            controller_busy_time: self.controller_busy_time,
            power_cycles: self.power_cycles,
            power_on_hours: self.power_on_hours,
            unsafe_shutdowns: self.unsafe_shutdowns,
            media_errors: self.media_errors,
            num_err_log_entries: self.num_err_log_entries,
            warning_temp_time: self.warning_temp_time,
            critical_comp_time: self.critical_comp_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartctl::testing::{fixture, smartctl_fixtures};

    #[test]
    fn every_device_fixture_parses() {
        for name in ["megaraid", "nvme", "scsi", "scsi_extended", "usb"] {
            let reading = parse_json(&fixture(&format!("devices/{name}/response.json")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(reading.smart_passed == Some(true), "{name}");
            assert!(reading.serial_number.is_some(), "{name}");
        }
    }

    #[test]
    fn nvme_fixture_reads_the_health_log() {
        let reading = parse_json(&fixture("devices/nvme/response.json")).unwrap();
        assert_eq!(reading.protocol.as_deref(), Some("NVMe"));
        assert_eq!(
            reading.model_name.as_deref(),
            Some("Sabrent Rocket 4.0 1TB")
        );
        assert_eq!(reading.temperature, Some(48));
        assert_eq!(reading.power_on_hours, Some(8733));
        assert_eq!(reading.power_cycle_count, Some(1815));
        assert_eq!(reading.exit_status, Some(0));
        assert_eq!(reading.smartctl_version, Some((7, 4)));
        let health = reading.nvme_health.unwrap();
        assert_eq!(health.unsafe_shutdowns, Some(39));
        assert_eq!(health.num_err_log_entries, Some(4871));
        assert_eq!(health.data_units_written, Some(76_471_882));
    }

    #[test]
    fn megaraid_fixture_reads_attributes_and_the_exit_status() {
        let reading = parse_json(&fixture("devices/megaraid/response.json")).unwrap();
        assert_eq!(reading.exit_status, Some(4));
        assert_eq!(
            reading.messages,
            vec!["Warning: This result is based on an Attribute check."]
        );
        assert_eq!(reading.ata_attributes.len(), 24);
        let temp = reading.attribute(194).unwrap();
        assert_eq!(temp.raw, Some(30_064_771_097));
        assert_eq!(temp.raw_string, "25 (0 7 0 0 0)");
        assert_eq!(temp.flags_short(), "-O---K");
        assert_eq!(reading.temperature, Some(25));
        assert_eq!(reading.ata_error_log_count, Some(0));
    }

    #[test]
    fn scsi_fixtures_name_the_model_and_the_defects() {
        let old = parse_json(&fixture("devices/scsi/response.json")).unwrap();
        assert_eq!(old.model_name.as_deref(), Some("XXXX XX0000NM123"));
        assert_eq!(old.scsi_grown_defect_list, Some(0));
        assert_eq!(old.temperature_drive_trip, Some(60));
        assert_eq!(
            (old.power_on_hours, old.power_on_minutes),
            (Some(32978), Some(46))
        );
        let new = parse_json(&fixture("devices/scsi_extended/response.json")).unwrap();
        assert_eq!(new.model_name.as_deref(), Some("SEAGATE ST0000000"));
    }

    #[test]
    fn every_scan_fixture_parses() {
        let scan = parse_scan_json(&fixture("scan/megaraid/response.json")).unwrap();
        assert_eq!(scan.devices.len(), 10);
        assert_eq!(scan.devices[3].name, "/dev/bus/6");
        assert_eq!(scan.devices[3].device_type, "megaraid,8");
        assert_eq!(scan.devices[3].protocol.as_deref(), Some("SCSI"));
        for name in ["all", "include", "exclude"] {
            let scan = parse_scan_json(&fixture(&format!("scan/{name}/response.json"))).unwrap();
            let names: Vec<_> = scan.devices.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["/dev/sda", "/dev/nvme0", "/dev/nvme1"], "{name}");
        }
    }

    #[test]
    fn a_scan_without_devices_is_empty() {
        // What smartctl 7.3 prints on a machine without disks.
        let text = br#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0}}"#;
        assert_eq!(parse_scan_json(text).unwrap(), Scan::default());
    }

    #[test]
    fn open_errors_are_kept() {
        let text = br#"{"json_format_version":[1,0],"devices":[{"name":"/dev/sda","type":"sat","protocol":"ATA","open_error":"Permission denied"}]}"#;
        let scan = parse_scan_json(text).unwrap();
        assert_eq!(
            scan.devices[0].open_error.as_deref(),
            Some("Permission denied")
        );
    }

    #[test]
    fn standby_is_recognised() {
        let text = br#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}],"exit_status":2},"device":{"name":"/dev/sda","type":"sat","protocol":"ATA"}}"#;
        let reading = parse_json(text).unwrap();
        assert!(reading.standby);
        assert_eq!(reading.exit_status, Some(2));
    }

    #[test]
    fn counters_beyond_u64_saturate() {
        let text = br#"{"json_format_version":[1,0],"nvme_smart_health_information_log":{"data_units_read":1e30,"media_errors":340282366920938463463374607431768211455}}"#;
        let health = parse_json(text).unwrap().nvme_health.unwrap();
        assert_eq!(health.data_units_read, Some(u64::MAX));
        assert_eq!(health.media_errors, Some(u64::MAX));
    }

    #[test]
    fn what_is_not_smartctl_json_is_refused() {
        for text in [
            &b""[..],
            b"{}",
            b"[]",
            b"null",
            b"{\"json_format_version\":[2,0]}",
            b"=======> UNRECOGNIZED OPTION: json",
        ] {
            assert!(
                parse_json(text).is_err(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
            assert!(parse_scan_json(text).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn json_parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_json(&bytes);
            let _ = parse_scan_json(&bytes);
        }

        #[test]
        fn damaged_json_fixtures_never_panic(
            (index, cut, flip, byte) in (0usize..7, proptest::prelude::any::<usize>(), proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>())
        ) {
            let fixtures = smartctl_fixtures();
            let mut bytes = fixtures[index % fixtures.len()].clone();
            if !bytes.is_empty() {
                let at = flip % bytes.len();
                bytes[at] = byte;
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let _ = parse_json(&bytes);
            let _ = parse_scan_json(&bytes);
        }
    }
}
