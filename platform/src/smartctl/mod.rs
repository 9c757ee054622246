//! smartctl (smartmontools): what to run, how to run it, and how to read what it says.
//!
//! SMART data comes from `smartctl`, which needs raw device access; the agent never runs
//! it itself. It runs the small `sysward-smart` helper, which accepts only the
//! [`Request`]s below, turns each into one fixed `smartctl` argument list and replaces
//! itself with `smartctl` (see [`request`]). [`run`] starts the helper with a deadline and
//! a cap on what it may print.
//!
//! smartctl answers in one of two forms, and both become the same typed values:
//!
//! - smartmontools 7 and later print JSON (`--json`), read by [`parse_json`] and
//!   [`parse_scan_json`] into serde structs;
//! - smartmontools 6.x prints only text, read by [`parse_text`] and [`parse_scan_text`]
//!   (nom parsers).
//!
//! A reading from either holds the same fields with the same values for the same disk,
//! with one documented exception: smartctl 6.x prints some attributes' raw values
//! decoded (`25 (Min/Max 20/30)`, `1234h+05m+06.789s`), from which the 48-bit raw number
//! cannot be recovered, so the text path leaves [`AtaAttribute::raw`] empty for those
//! (the decoded meaning still reaches [`SmartReading::temperature`] and
//! [`SmartReading::power_on_hours`]).
//!
//! No parser panics on any input: both are property-tested on arbitrary bytes and on
//! damaged fixtures.
//!
//! smartctl's exit status is a bit mask, not a success flag; [`ExitStatus`] names its bits.

use crate::ParseError;

mod json;
pub mod request;
mod run;
mod text;

#[cfg(test)]
mod testing;

pub use json::{parse_json, parse_scan_json};
pub use request::{DeviceArg, Format, Request, RequestError};
pub use run::{RunError, RunOutput, run};
pub use text::{parse_scan_text, parse_text, parse_version};

/// smartctl's exit status: eight independent bits (smartctl(8), "RETURN VALUES").
///
/// Bits 0 and 1 mean smartctl itself could not do its job (bad command line; the device
/// could not be opened, did not identify itself, or sleeps and was left asleep). Bits 2
/// to 7 are findings about the disk. Bits 5 to 7 describe the disk's history (attributes
/// that were at their threshold once, entries in the error and self-test logs) and stay
/// set for as long as that history is kept, usually for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExitStatus(pub u8);

impl ExitStatus {
    /// Bit 0: the command line did not parse.
    pub const COMMAND_LINE: u8 = 1 << 0;
    /// Bit 1: the device could not be opened or identified, or is in a low-power mode
    /// that `--nocheck` told smartctl to respect.
    pub const DEVICE_OPEN: u8 = 1 << 1;
    /// Bit 2: a SMART or other command to the disk failed, or a SMART data structure
    /// had a bad checksum.
    pub const COMMAND_FAILED: u8 = 1 << 2;
    /// Bit 3: the SMART status check said "DISK FAILING".
    pub const DISK_FAILING: u8 = 1 << 3;
    /// Bit 4: pre-failure attributes are at or below their threshold now.
    pub const PREFAIL_NOW: u8 = 1 << 4;
    /// Bit 5: the disk is OK, but some attributes were at or below their threshold in
    /// the past. Sticky.
    pub const THRESHOLD_PAST: u8 = 1 << 5;
    /// Bit 6: the device error log has records. Sticky.
    pub const ERROR_LOG: u8 = 1 << 6;
    /// Bit 7: the self-test log has records of errors. Sticky.
    pub const SELF_TEST_ERRORS: u8 = 1 << 7;
    /// The bits that say smartctl failed (0 and 1).
    pub const TOOL_FAILED: u8 = Self::COMMAND_LINE | Self::DEVICE_OPEN;
    /// The bits that stay set once the disk's history has them (5 to 7).
    pub const STICKY: u8 = Self::THRESHOLD_PAST | Self::ERROR_LOG | Self::SELF_TEST_ERRORS;

    /// Whether any of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    /// Whether smartctl failed to read the device (bit 0 or 1), so that whatever it
    /// printed about the disk is not to be trusted.
    pub fn tool_failed(self) -> bool {
        self.has(Self::TOOL_FAILED)
    }

    /// What each set bit means, in bit order.
    pub fn describe(self) -> Vec<&'static str> {
        const MEANINGS: [&str; 8] = [
            "command line did not parse",
            "device open failed or device in low-power mode",
            "a SMART command failed or SMART data had a checksum error",
            "SMART status check returned DISK FAILING",
            "pre-failure attributes at or below threshold",
            "attributes at or below threshold in the past",
            "device error log contains records of errors",
            "self-test log contains records of errors",
        ];
        (0..8)
            .filter(|bit| self.0 & (1 << bit) != 0)
            .map(|bit| MEANINGS[bit])
            .collect()
    }
}

/// When an ATA attribute's normalised value was at or below its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WhenFailed {
    /// Never (`-`).
    #[default]
    Never,
    /// Now (`FAILING_NOW`; `now` in JSON).
    Now,
    /// At some time in the past (`In_the_past`; `past` in JSON).
    Past,
}

/// One row of an ATA disk's SMART attribute table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtaAttribute {
    /// The attribute ID, 1 to 255.
    pub id: u8,
    /// smartctl's name for it (`Reallocated_Sector_Ct`), from its drive database.
    pub name: String,
    /// The flag word: bit 0 pre-failure, 1 updated online, 2 performance, 3 error rate,
    /// 4 event count, 5 self-preserving.
    pub flags: u16,
    /// The normalised value, if the disk has one for this attribute.
    pub value: Option<u16>,
    /// The worst normalised value seen.
    pub worst: Option<u16>,
    /// The threshold at or below which the attribute counts as failed, if known.
    pub threshold: Option<u16>,
    /// Whether the attribute is or was at or below its threshold.
    pub when_failed: WhenFailed,
    /// The raw value as one number (`raw.value` in JSON). `None` when smartctl 6.x
    /// printed it decoded in a form the number cannot be recovered from.
    pub raw: Option<u64>,
    /// The raw value as smartctl prints it (`0`, `25 (Min/Max 20/30)`).
    pub raw_string: String,
}

impl AtaAttribute {
    /// smartctl's short flag string (`PO--CK`): a letter for each set flag, `-` else.
    pub fn flags_short(&self) -> String {
        FLAG_LETTERS
            .iter()
            .enumerate()
            .map(|(bit, (letter, _))| {
                if self.flags & (1 << bit) != 0 {
                    *letter
                } else {
                    '-'
                }
            })
            .collect()
    }

    /// The names of the set flags, comma-separated, as smartctl_exporter writes them
    /// (`prefailure,updated_online`).
    pub fn flags_long(&self) -> String {
        FLAG_LETTERS
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.flags & (1 << bit) != 0)
            .map(|(_, (_, name))| *name)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The leading number of the raw value as printed: the decoded value for the
    /// attributes smartctl decodes (a temperature, the hours of `1234h+05m`).
    pub fn raw_leading_number(&self) -> Option<u64> {
        let digits: String = self
            .raw_string
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

/// The flag bits of [`AtaAttribute::flags`], lowest first: smartctl's letter and JSON name.
pub(crate) const FLAG_LETTERS: [(char, &str); 6] = [
    ('P', "prefailure"),
    ('O', "updated_online"),
    ('S', "performance"),
    ('R', "error_rate"),
    ('C', "event_count"),
    ('K', "auto_keep"),
];

/// An NVMe disk's SMART/Health Information log (log page 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmeHealth {
    /// Critical warning bits: 0 spare below threshold, 1 temperature, 2 reliability
    /// degraded, 3 read-only, 4 volatile memory backup failed, 5 persistent memory
    /// region read-only.
    pub critical_warning: Option<u64>,
    /// Composite temperature, °C.
    pub temperature: Option<i64>,
    /// Remaining spare capacity, percent.
    pub available_spare: Option<u64>,
    /// The spare percentage below which the disk warns.
    pub available_spare_threshold: Option<u64>,
    /// Vendor estimate of life used, percent (may exceed 100).
    pub percentage_used: Option<u64>,
    /// Data read, in units of 1000 512-byte blocks.
    pub data_units_read: Option<u64>,
    /// Data written, in units of 1000 512-byte blocks.
    pub data_units_written: Option<u64>,
    /// Read commands completed.
    pub host_reads: Option<u64>,
    /// Write commands completed.
    pub host_writes: Option<u64>,
    /// Minutes the controller was busy with I/O.
    pub controller_busy_time: Option<u64>,
    /// Power cycles.
    pub power_cycles: Option<u64>,
    /// Power-on hours.
    pub power_on_hours: Option<u64>,
    /// Shutdowns without a prior shutdown notification.
    pub unsafe_shutdowns: Option<u64>,
    /// Unrecovered data integrity errors.
    pub media_errors: Option<u64>,
    /// Error information log entries over the controller's life.
    pub num_err_log_entries: Option<u64>,
    /// Minutes above the warning composite temperature threshold.
    pub warning_temp_time: Option<u64>,
    /// Minutes above the critical composite temperature threshold.
    pub critical_comp_time: Option<u64>,
}

/// What one `smartctl --all` run said about one device, from JSON or from text.
///
/// Every field is optional: which ones a device fills depends on its protocol, its
/// firmware and the smartctl version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmartReading {
    /// The exit status smartctl recorded in its JSON output; `None` from text, where the
    /// caller has the process's exit status instead.
    pub exit_status: Option<u8>,
    /// smartctl's version as (major, minor), if it said.
    pub smartctl_version: Option<(u32, u32)>,
    /// smartctl's messages: errors, warnings, information (`Device is in STANDBY mode`).
    pub messages: Vec<String>,
    /// The device sleeps and smartctl left it asleep (`--nocheck=standby`).
    pub standby: bool,
    /// `ATA`, `NVMe` or `SCSI`.
    pub protocol: Option<String>,
    /// The drive database's family name.
    pub model_family: Option<String>,
    /// The model (for SCSI: vendor and product).
    pub model_name: Option<String>,
    /// The serial number.
    pub serial_number: Option<String>,
    /// The firmware version.
    pub firmware_version: Option<String>,
    /// User capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// Rotation rate in rpm; 0 for a solid state device.
    pub rotation_rate: Option<u64>,
    /// The overall health self-assessment: `true` for PASSED (SCSI: OK).
    pub smart_passed: Option<bool>,
    /// Current temperature, °C.
    pub temperature: Option<i64>,
    /// SCSI drive trip temperature, °C.
    pub temperature_drive_trip: Option<i64>,
    /// Power-on time, whole hours.
    pub power_on_hours: Option<u64>,
    /// Power-on time, minutes past the whole hours, where the device counts them.
    pub power_on_minutes: Option<u64>,
    /// Power cycles.
    pub power_cycle_count: Option<u64>,
    /// ATA SMART attributes, in table order.
    pub ata_attributes: Vec<AtaAttribute>,
    /// The ATA SMART error log's error count (`ATA Error Count`; 0 for `No Errors Logged`).
    pub ata_error_log_count: Option<u64>,
    /// The NVMe SMART/Health log.
    pub nvme_health: Option<NvmeHealth>,
    /// SCSI: elements in the grown defect list.
    pub scsi_grown_defect_list: Option<u64>,
    /// Parts of the output that were recognised but could not be read.
    pub skipped: Vec<ParseError>,
}

impl SmartReading {
    /// The attribute with this ID, if the table has it.
    pub fn attribute(&self, id: u8) -> Option<&AtaAttribute> {
        self.ata_attributes.iter().find(|a| a.id == id)
    }
}

/// One device as `smartctl --scan-open` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntry {
    /// The device path (`/dev/sda`, `/dev/bus/6`).
    pub name: String,
    /// The device type to read it with (`sat`, `nvme`, `megaraid,14`).
    pub device_type: String,
    /// `ATA`, `SCSI` or `NVMe`, if given.
    pub protocol: Option<String>,
    /// Why smartctl could not open it, if it could not.
    pub open_error: Option<String>,
}

/// What `smartctl --scan-open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The devices, in smartctl's order.
    pub devices: Vec<ScanEntry>,
    /// Errors smartctl reported about the scan as a whole.
    pub messages: Vec<String>,
}

/// Parses a number as smartctl prints it in text, with `,` between thousands, saturating
/// at `u64::MAX` (NVMe counters are 128-bit).
fn saturating_u64(digits: &str) -> Option<u64> {
    let mut value: u64 = 0;
    let mut seen = false;
    for c in digits.chars() {
        match c {
            '0'..='9' => {
                seen = true;
                value = value
                    .saturating_mul(10)
                    .saturating_add(u64::from(c as u8 - b'0'));
            }
            ',' => {}
            _ => return None,
        }
    }
    seen.then_some(value)
}

/// Quotes untrusted text for an error message, cut short so that one wild line cannot
/// flood the logs.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    let head: String = text.chars().take(MAX_CHARS).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// ATA temperature as smartctl derives it from the attributes (ataprint.cpp,
/// `ata_return_temperature_value`): the first of attributes 194 and 190 whose current
/// value (the low byte of the raw value, which smartctl prints first) lies in 1..127 °C.
fn ata_temperature(attributes: &[AtaAttribute]) -> Option<i64> {
    [194u8, 190].iter().find_map(|id| {
        let attribute = attributes.iter().find(|a| a.id == *id)?;
        let current = match attribute.raw {
            Some(raw) => raw & 0xff,
            None => attribute.raw_leading_number()?,
        };
        (1..128).contains(&current).then_some(current as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_bits_are_named() {
        let status = ExitStatus(0b0100_1000);
        assert!(status.has(ExitStatus::DISK_FAILING));
        assert!(status.has(ExitStatus::ERROR_LOG));
        assert!(!status.tool_failed());
        assert_eq!(
            status.describe(),
            vec![
                "SMART status check returned DISK FAILING",
                "device error log contains records of errors"
            ]
        );
        assert!(ExitStatus(2).tool_failed());
        assert!(ExitStatus(1).tool_failed());
        assert!(!ExitStatus(4).tool_failed());
    }

    #[test]
    fn attribute_flags_read_as_smartctl_writes_them() {
        let attribute = AtaAttribute {
            id: 5,
            name: "Reallocated_Sector_Ct".into(),
            flags: 0x33,
            value: Some(100),
            worst: Some(100),
            threshold: Some(10),
            when_failed: WhenFailed::Never,
            raw: Some(0),
            raw_string: "0".into(),
        };
        assert_eq!(attribute.flags_short(), "PO--CK");
        assert_eq!(
            attribute.flags_long(),
            "prefailure,updated_online,event_count,auto_keep"
        );
    }

    #[test]
    fn numbers_with_thousands_separators_saturate() {
        assert_eq!(saturating_u64("28,337,502"), Some(28_337_502));
        assert_eq!(saturating_u64("0"), Some(0));
        assert_eq!(saturating_u64(""), None);
        assert_eq!(saturating_u64(","), None);
        assert_eq!(saturating_u64("12a"), None);
        assert_eq!(
            saturating_u64("340,282,366,920,938,463,463,374,607,431,768,211,455"),
            Some(u64::MAX)
        );
    }
}
