//! smartctl's text output, for smartmontools 6.x which has no JSON.
//!
//! The format is smartctl's own (ataprint.cpp, nvmeprint.cpp, scsiprint.cpp); in the C
//! locale that the helper sets, numbers carry `,` between thousands. What is read:
//!
//! - the banner `smartctl 6.6 2016-05-31 r4324 [...]`, for the version;
//! - `Key: value` lines of the information and health sections (`Device Model:`,
//!   `SMART overall-health self-assessment test result: PASSED`, the NVMe health log's
//!   `Unsafe Shutdowns: 39`, SCSI's `Current Drive Temperature: 24 C`, ...);
//! - the ATA attribute table, in both of smartctl's layouts:
//!
//! ```text
//! ID# ATTRIBUTE_NAME          FLAG     VALUE WORST THRESH TYPE      UPDATED  WHEN_FAILED RAW_VALUE
//!   5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       0
//! ID# ATTRIBUTE_NAME          FLAGS    VALUE WORST THRESH FAIL RAW_VALUE
//!   5 Reallocated_Sector_Ct   PO--CK   100   100   010    -    0
//! ```
//!
//! - the ATA error log's `ATA Error Count: N` or `No Errors Logged`;
//! - `Device is in STANDBY mode, exit(2)` and smartctl's other messages.
//!
//! Lines the parser does not know are ignored; a known line that does not parse is
//! listed in [`SmartReading::skipped`]. The whole text fails only when nothing in it is
//! smartctl's.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::character::complete::{char, digit1, hex_digit1, space0, space1};
use nom::combinator::{map_res, opt, rest};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use super::{
    AtaAttribute, FLAG_LETTERS, NvmeHealth, Scan, ScanEntry, SmartReading, WhenFailed,
    ata_temperature, quote, saturating_u64,
};
use crate::ParseError;

/// Parses the text output of `smartctl --all DEVICE` (smartmontools 5.x and 6.x; 7.x
/// prints the same).
pub fn parse_text(input: &[u8]) -> Result<SmartReading, ParseError> {
    let text = String::from_utf8_lossy(input);
    let mut parser = TextParser::default();
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        lines = index + 1;
        parser.line(index + 1, line.trim_end());
    }
    if !parser.recognised {
        return Err(ParseError::new(
            lines + 1,
            "not smartctl output: no banner and no known line",
        ));
    }
    Ok(parser.finish())
}

/// Parses the text output of `smartctl --scan-open`:
///
/// ```text
/// /dev/sda -d sat # /dev/sda [SAT], ATA device
/// # /dev/sdb -d scsi # /dev/sdb, SCSI device open failed: Permission denied
/// ```
///
/// Lines of other forms are ignored; a `# scan_smart_devices: ...` line is a message.
pub fn parse_scan_text(input: &[u8]) -> Result<Scan, ParseError> {
    let text = String::from_utf8_lossy(input);
    let mut scan = Scan::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(message) = line.strip_prefix("# scan_smart_devices:") {
            scan.messages.push(message.trim().to_owned());
            continue;
        }
        let (failed, entry) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let Ok((_, (name, device_type, comment))) = scan_line(entry) else {
            continue;
        };
        let comment = comment.map(str::trim).unwrap_or_default();
        let (description, open_error) = match comment.split_once(" open failed: ") {
            Some((description, error)) => (description, Some(error.trim().to_owned())),
            None if failed => continue,
            None => (comment, None),
        };
        let protocol = description
            .rsplit_once(", ")
            .and_then(|(_, p)| p.strip_suffix(" device"))
            .map(str::to_owned);
        scan.devices.push(ScanEntry {
            name: name.to_owned(),
            device_type: device_type.to_owned(),
            protocol,
            open_error,
        });
    }
    Ok(scan)
}

/// The version in the first line of smartctl's output (`smartctl 6.6 2016-05-31 ...`).
pub fn parse_version(input: &[u8]) -> Option<(u32, u32)> {
    let text = String::from_utf8_lossy(input);
    text.lines()
        .find_map(|line| banner(line).ok().map(|(_, v)| v))
}

/// Whether a smartctl message says the device was left asleep: `Device is in STANDBY
/// mode, exit(2)` (also SLEEP, and SCSI's power conditions).
pub(crate) fn is_standby_message(message: &str) -> bool {
    message
        .trim()
        .strip_prefix("Device is in ")
        .is_some_and(|rest| rest.contains(" mode"))
}

fn banner(input: &str) -> IResult<&str, (u32, u32)> {
    let (input, _) = (tag("smartctl"), space1).parse(input)?;
    let (input, major) = map_res(digit1, str::parse::<u32>).parse(input)?;
    let (input, minor) = preceded(char('.'), map_res(digit1, str::parse::<u32>)).parse(input)?;
    Ok((input, (major, minor)))
}

/// `NAME -d TYPE [# COMMENT]`
fn scan_line(input: &str) -> IResult<&str, (&str, &str, Option<&str>)> {
    let (input, name) = take_till1(|c: char| c.is_whitespace()).parse(input)?;
    let (input, _) = (space1, tag("-d"), space1).parse(input)?;
    let (input, device_type) = take_till1(|c: char| c.is_whitespace()).parse(input)?;
    let (input, comment) = opt(preceded((space0, char('#')), rest)).parse(input)?;
    Ok((input, (name, device_type, comment)))
}

/// `Key: value`, the key without its trailing blanks.
fn key_value(input: &str) -> IResult<&str, (&str, &str)> {
    let (input, key) = take_till1(|c| c == ':').parse(input)?;
    let (input, _) = (char(':'), space0).parse(input)?;
    let (input, value) = rest(input)?;
    Ok((input, (key.trim_end(), value.trim())))
}

/// A count as smartctl prints it: digits with `,` between thousands, then anything
/// (` [14.5 TB]`, ` bytes [2.00 TB]`).
fn count(input: &str) -> IResult<&str, u64> {
    map_res(
        take_while1(|c: char| c.is_ascii_digit() || c == ','),
        |digits: &str| saturating_u64(digits).ok_or("no digits"),
    )
    .parse(input)
}

fn count_value(value: &str) -> Option<u64> {
    count(value).ok().map(|(_, n)| n)
}

/// A count followed by a unit: `48 Celsius`, `24 C`, `100%`, `7200 rpm`.
fn count_with_unit(value: &str, unit: &str) -> Option<u64> {
    let (rest, n) = count(value).ok()?;
    (rest.trim_start() == unit).then_some(n)
}

/// `0x1f`, as NVMe's critical warning is printed.
fn hex_value(value: &str) -> Option<u64> {
    let (rest, digits) = preceded(tag::<_, _, nom::error::Error<&str>>("0x"), hex_digit1)
        .parse(value)
        .ok()?;
    if !rest.trim().is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A normalised value, worst value or threshold: `100`, `064`, or `---` for none.
fn normalised(input: &str) -> IResult<&str, Option<u16>> {
    alt((
        map_res(digit1, |d: &str| d.parse::<u16>().map(Some)),
        tag("---").map(|_| None),
    ))
    .parse(input)
}

/// The attribute flags: `0x0033` in the old layout, `PO--CK` in the brief one.
fn attribute_flags(input: &str) -> IResult<&str, u16> {
    alt((
        map_res(preceded(tag("0x"), hex_digit1), |h: &str| {
            u16::from_str_radix(h, 16)
        }),
        map_res(
            take_while1(|c: char| "POSRCK-+".contains(c)),
            |letters: &str| {
                let mut flags = 0u16;
                for (i, c) in letters.chars().enumerate() {
                    match FLAG_LETTERS.get(i) {
                        Some((letter, _)) if *letter == c => flags |= 1 << i,
                        Some(_) if c == '-' => {}
                        // `+` marks a value smartctl does not normalise.
                        None if c == '+' => {}
                        _ => return Err("bad flag letters"),
                    }
                }
                Ok(flags)
            },
        ),
    ))
    .parse(input)
}

fn word(input: &str) -> IResult<&str, &str> {
    take_till1(|c: char| c.is_whitespace()).parse(input)
}

/// One row of the attribute table, in the old layout (`brief == false`) or the brief one.
fn attribute_row(input: &str, brief: bool) -> IResult<&str, AtaAttribute> {
    let (input, _) = space0(input)?;
    let (input, id) = map_res(digit1, str::parse::<u8>).parse(input)?;
    let (input, name) = preceded(space1, word).parse(input)?;
    let (input, flags) = preceded(space1, attribute_flags).parse(input)?;
    let (input, value) = preceded(space1, normalised).parse(input)?;
    let (input, worst) = preceded(space1, normalised).parse(input)?;
    let (input, threshold) = preceded(space1, normalised).parse(input)?;
    let (input, failed) = if brief {
        preceded(space1, word).parse(input)?
    } else {
        let (input, _kind) = preceded(space1, word).parse(input)?;
        let (input, _updated) = preceded(space1, word).parse(input)?;
        preceded(space1, word).parse(input)?
    };
    let when_failed = match failed {
        "-" => WhenFailed::Never,
        "FAILING_NOW" | "NOW" => WhenFailed::Now,
        "In_the_past" | "Past" => WhenFailed::Past,
        _ => {
            return Err(nom::Err::Error(nom::error::Error::new(
                input,
                nom::error::ErrorKind::Tag,
            )));
        }
    };
    let (input, raw_string) = preceded(space1, rest).parse(input)?;
    let raw_string = raw_string.trim();
    let raw = if !raw_string.is_empty() && raw_string.bytes().all(|b| b.is_ascii_digit()) {
        raw_string.parse().ok()
    } else {
        None
    };
    Ok((
        input,
        AtaAttribute {
            id,
            name: name.to_owned(),
            flags,
            value,
            worst,
            threshold,
            when_failed,
            raw,
            raw_string: raw_string.to_owned(),
        },
    ))
}

/// `hours:minutes`, as in `Accumulated power on time, hours:minutes 32978:46`.
fn hours_minutes(input: &str) -> IResult<&str, (u64, u64)> {
    let (input, hours) = count(input)?;
    let (input, minutes) = preceded(char(':'), count).parse(input)?;
    Ok((input, (hours, minutes)))
}

/// `1234h+05m+06.789s` (attribute 9 of some drives): the hours and minutes.
fn hours_and_minutes_raw(input: &str) -> IResult<&str, (u64, Option<u64>)> {
    let (input, hours) = map_res(digit1, str::parse::<u64>).parse(input)?;
    let (input, minutes) = opt(preceded(
        (char('h'), char('+')),
        map_res(digit1, str::parse::<u64>),
    ))
    .parse(input)?;
    Ok((input, (hours, minutes)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Section {
    #[default]
    Preamble,
    Other,
    Attributes {
        brief: bool,
    },
    AtaErrorLog,
}

#[derive(Default)]
struct TextParser {
    reading: SmartReading,
    nvme: NvmeHealth,
    nvme_seen: bool,
    section: Section,
    recognised: bool,
    vendor: Option<String>,
    product: Option<String>,
}

impl TextParser {
    fn skip(&mut self, line: usize, message: String) {
        self.reading.skipped.push(ParseError::new(line, message));
    }

    fn line(&mut self, number: usize, line: &str) {
        let trimmed = line.trim();
        if let Ok((_, version)) = banner(trimmed) {
            self.reading.smartctl_version = Some(version);
            self.recognised = true;
            return;
        }
        if trimmed.starts_with("=== ") && trimmed.ends_with(" ===") {
            self.section = Section::Other;
            self.recognised = true;
            return;
        }
        if let Section::Attributes { brief } = self.section {
            if trimmed.is_empty() {
                self.section = Section::Other;
            } else {
                match attribute_row(line, brief) {
                    Ok((_, attribute)) => self.reading.ata_attributes.push(attribute),
                    Err(_) => self.skip(number, format!("bad attribute row {}", quote(line))),
                }
            }
            return;
        }
        if trimmed.is_empty() {
            return;
        }
        if is_standby_message(trimmed) {
            self.reading.standby = true;
            self.reading.messages.push(trimmed.to_owned());
            self.recognised = true;
            return;
        }
        if self.section == Section::Preamble {
            // Before the first section smartctl prints only its copyright and its
            // complaints (`Smartctl open device: /dev/sdz failed: No such device`).
            if !trimmed.starts_with("Copyright") {
                self.reading.messages.push(trimmed.to_owned());
            }
            return;
        }
        if trimmed.starts_with("ID#") && trimmed.contains("ATTRIBUTE_NAME") {
            self.section = Section::Attributes {
                brief: !trimmed.contains(" FLAG "),
            };
            self.reading.protocol.get_or_insert_with(|| "ATA".into());
            self.recognised = true;
            return;
        }
        if let Some(rest) = trimmed.strip_prefix("Accumulated power on time, hours:minutes") {
            self.recognised = true;
            match hours_minutes(rest.trim()) {
                Ok((_, (hours, minutes))) => {
                    self.reading.power_on_hours = Some(hours);
                    self.reading.power_on_minutes = Some(minutes);
                }
                Err(_) => self.skip(number, format!("bad power on time {}", quote(rest))),
            }
            return;
        }
        if self.section == Section::AtaErrorLog && trimmed == "No Errors Logged" {
            self.reading.ata_error_log_count = Some(0);
            return;
        }
        if trimmed.starts_with("Warning: ") || trimmed.starts_with("==> WARNING") {
            self.reading.messages.push(trimmed.to_owned());
            return;
        }
        let Ok((_, (key, value))) = key_value(trimmed) else {
            return;
        };
        if self.field(key, value).is_some() {
            self.recognised = true;
        } else if KNOWN_KEYS.contains(&key) {
            self.recognised = true;
            self.skip(number, format!("bad value for {key}: {}", quote(value)));
        }
    }

    /// Reads one known `Key: value` line; `None` if the key is unknown or the value bad.
    fn field(&mut self, key: &str, value: &str) -> Option<()> {
        let r = &mut self.reading;
        let text = || Some(value.to_owned()).filter(|v| !v.is_empty());
        match key {
            "Model Family" => r.model_family = Some(text()?),
            "Device Model" => {
                r.model_name = Some(text()?);
                r.protocol = Some("ATA".into());
            }
            "Model Number" => {
                r.model_name = Some(text()?);
                r.protocol = Some("NVMe".into());
            }
            "Vendor" => {
                self.vendor = Some(text()?);
                r.protocol = Some("SCSI".into());
            }
            "Product" => self.product = Some(text()?),
            "Serial Number" | "Serial number" => r.serial_number = Some(text()?),
            "Firmware Version" => r.firmware_version = Some(text()?),
            "User Capacity" => r.capacity_bytes = Some(count_value(value)?),
            "Namespace 1 Size/Capacity" => {
                r.capacity_bytes.get_or_insert(count_value(value)?);
            }
            "Rotation Rate" => {
                r.rotation_rate = Some(if value == "Solid State Device" {
                    0
                } else {
                    count_with_unit(value, "rpm")?
                });
            }
            "SMART overall-health self-assessment test result" => {
                r.smart_passed = Some(match value {
                    "PASSED" => true,
                    v if v.starts_with("FAILED") => false,
                    _ => return None,
                });
            }
            "SMART Health Status" => {
                r.smart_passed = Some(value == "OK");
                r.protocol.get_or_insert_with(|| "SCSI".into());
            }
            "Current Drive Temperature" => {
                r.temperature = Some(count_with_unit(value, "C")? as i64)
            }
            "Drive Trip Temperature" => {
                r.temperature_drive_trip = Some(count_with_unit(value, "C")? as i64);
            }
            "Elements in grown defect list" => r.scsi_grown_defect_list = Some(count_value(value)?),
            "SMART Error Log Version" => self.section = Section::AtaErrorLog,
            "ATA Error Count" if self.section == Section::AtaErrorLog => {
                r.ata_error_log_count = Some(count_value(value)?);
            }
            _ => return self.nvme_field(key, value),
        }
        Some(())
    }

    /// The NVMe SMART/Health log's lines.
    fn nvme_field(&mut self, key: &str, value: &str) -> Option<()> {
        let n = &mut self.nvme;
        match key {
            "Critical Warning" => n.critical_warning = Some(hex_value(value)?),
            "Temperature" => n.temperature = Some(count_with_unit(value, "Celsius")? as i64),
            "Available Spare" => n.available_spare = Some(count_with_unit(value, "%")?),
            "Available Spare Threshold" => {
                n.available_spare_threshold = Some(count_with_unit(value, "%")?);
            }
            "Percentage Used" => n.percentage_used = Some(count_with_unit(value, "%")?),
            "Data Units Read" => n.data_units_read = Some(count_value(value)?),
            "Data Units Written" => n.data_units_written = Some(count_value(value)?),
            "Host Read Commands" => n.host_reads = Some(count_value(value)?),
            "Host Write Commands" => n.host_writes = Some(count_value(value)?),
            "Controller Busy Time" => n.controller_busy_time = Some(count_value(value)?),
            "Power Cycles" => n.power_cycles = Some(count_value(value)?),
            "Power On Hours" => n.power_on_hours = Some(count_value(value)?),
            "Unsafe Shutdowns" => n.unsafe_shutdowns = Some(count_value(value)?),
            "Media and Data Integrity Errors" => n.media_errors = Some(count_value(value)?),
            "Error Information Log Entries" => n.num_err_log_entries = Some(count_value(value)?),
            "Warning  Comp. Temperature Time" => n.warning_temp_time = Some(count_value(value)?),
            "Critical Comp. Temperature Time" => n.critical_comp_time = Some(count_value(value)?),
            _ => return None,
        }
        self.nvme_seen = true;
        Some(())
    }

    fn finish(mut self) -> SmartReading {
        let mut r = self.reading;
        if r.model_name.is_none() {
            r.model_name = match (self.vendor.take(), self.product.take()) {
                (Some(vendor), Some(product)) => Some(format!("{vendor} {product}")),
                (vendor, product) => vendor.or(product),
            };
        }
        if self.nvme_seen {
            // smartctl's JSON repeats these at the top level for NVMe; so does this.
            let n = &self.nvme;
            r.protocol = Some("NVMe".into());
            r.temperature = r.temperature.or(n.temperature);
            r.power_on_hours = r.power_on_hours.or(n.power_on_hours);
            r.power_cycle_count = r.power_cycle_count.or(n.power_cycles);
            r.nvme_health = Some(self.nvme);
        }
        if !r.ata_attributes.is_empty() {
            // As smartctl derives its JSON's temperature, power_on_time and
            // power_cycle_count from attributes 194/190, 9 and 12.
            if r.temperature.is_none() {
                r.temperature = ata_temperature(&r.ata_attributes);
            }
            if let Some(raw) = r.attribute(9).map(|a| a.raw_string.clone())
                && let Ok((_, (hours, minutes))) = hours_and_minutes_raw(raw.trim())
            {
                r.power_on_hours = Some(hours);
                r.power_on_minutes = minutes;
            }
            if let Some(cycles) = r.attribute(12).and_then(AtaAttribute::raw_leading_number) {
                r.power_cycle_count = Some(cycles);
            }
        }
        r
    }
}

/// The keys [`TextParser::field`] and [`TextParser::nvme_field`] read.
const KNOWN_KEYS: &[&str] = &[
    "Model Family",
    "Device Model",
    "Model Number",
    "Vendor",
    "Product",
    "Serial Number",
    "Serial number",
    "Firmware Version",
    "User Capacity",
    "Namespace 1 Size/Capacity",
    "Rotation Rate",
    "SMART overall-health self-assessment test result",
    "SMART Health Status",
    "Current Drive Temperature",
    "Drive Trip Temperature",
    "Elements in grown defect list",
    "ATA Error Count",
    "Critical Warning",
    "Temperature",
    "Available Spare",
    "Available Spare Threshold",
    "Percentage Used",
    "Data Units Read",
    "Data Units Written",
    "Host Read Commands",
    "Host Write Commands",
    "Controller Busy Time",
    "Power Cycles",
    "Power On Hours",
    "Unsafe Shutdowns",
    "Media and Data Integrity Errors",
    "Error Information Log Entries",
    "Warning  Comp. Temperature Time",
    "Critical Comp. Temperature Time",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartctl::testing::{fixture, text_fixture, text_fixture_names, text_fixtures};
    use crate::smartctl::{ExitStatus, parse_json, parse_scan_json};

    fn read(name: &str) -> SmartReading {
        parse_text(&text_fixture(&format!("devices/{name}/stdout.txt")))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_text_fixture_parses_without_skipping_anything() {
        let names = text_fixture_names();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            let reading = read(&name);
            assert_eq!(reading.skipped, [], "{name}");
            assert!(reading.smartctl_version.is_some(), "{name}");
        }
    }

    #[test]
    fn an_hdd_with_reallocated_sectors() {
        let r = read("ata_hdd_reallocated");
        assert_eq!(r.smartctl_version, Some((6, 6)));
        assert_eq!(r.protocol.as_deref(), Some("ATA"));
        assert_eq!(
            r.model_family.as_deref(),
            Some("Seagate Barracuda 7200.14 (AF)")
        );
        assert_eq!(r.model_name.as_deref(), Some("ST2000DM001-1CH164"));
        assert_eq!(r.serial_number.as_deref(), Some("Z1E4K7QX"));
        assert_eq!(r.firmware_version.as_deref(), Some("CC27"));
        assert_eq!(r.capacity_bytes, Some(2_000_398_934_016));
        assert_eq!(r.rotation_rate, Some(7200));
        assert_eq!(r.smart_passed, Some(true));
        assert_eq!(r.temperature, Some(36));
        assert_eq!((r.power_on_hours, r.power_on_minutes), (Some(10571), None));
        assert_eq!(r.power_cycle_count, Some(1009));
        assert_eq!(r.ata_error_log_count, Some(12));
        assert_eq!(r.ata_attributes.len(), 24);
        let realloc = r.attribute(5).unwrap();
        assert_eq!(
            (realloc.value, realloc.worst, realloc.threshold, realloc.raw),
            (Some(96), Some(96), Some(10), Some(5432))
        );
        assert_eq!(realloc.flags, 0x33);
        assert_eq!(r.attribute(197).unwrap().raw, Some(16));
        // Decoded raw values cannot give the 48-bit number back.
        let airflow = r.attribute(190).unwrap();
        assert_eq!(airflow.raw, None);
        assert_eq!(airflow.raw_string, "36 (Min/Max 24/41)");
        assert_eq!(r.attribute(188).unwrap().raw, None);
        assert_eq!(r.attribute(240).unwrap().raw, None);
        assert!(r.messages.is_empty(), "{:?}", r.messages);
        assert!(!r.standby);
    }

    #[test]
    fn an_ssd() {
        let r = read("ata_ssd");
        assert_eq!(r.rotation_rate, Some(0));
        assert_eq!(r.capacity_bytes, Some(500_107_862_016));
        assert_eq!(r.temperature, Some(29));
        assert_eq!(r.power_on_hours, Some(13254));
        assert_eq!(r.ata_error_log_count, Some(0));
        assert_eq!(r.attribute(177).unwrap().raw, Some(121));
    }

    #[test]
    fn a_failing_disk() {
        let r = read("ata_failing");
        assert_eq!(r.smartctl_version, Some((6, 2)));
        assert_eq!(r.smart_passed, Some(false));
        assert_eq!(r.rotation_rate, None);
        let failing: Vec<u8> = r
            .ata_attributes
            .iter()
            .filter(|a| a.when_failed == WhenFailed::Now)
            .map(|a| a.id)
            .collect();
        assert_eq!(failing, [1, 5]);
        assert_eq!(r.attribute(3).unwrap().when_failed, WhenFailed::Past);
        assert_eq!(r.ata_error_log_count, Some(3));
        assert_eq!(r.temperature, Some(39));
        let status = text_fixture("devices/ata_failing/exit_status");
        let status: u8 = String::from_utf8_lossy(&status).trim().parse().unwrap();
        assert!(ExitStatus(status).has(ExitStatus::DISK_FAILING));
    }

    #[test]
    fn a_sleeping_disk() {
        let r = read("standby");
        assert!(r.standby);
        assert_eq!(r.messages, ["Device is in STANDBY mode, exit(2)"]);
        assert_eq!(r.smart_passed, None);
    }

    /// The text and JSON of the same disk give the same reading, apart from what only
    /// one of them carries (the exit status, the version) and the raw values smartctl
    /// 6.x prints decoded.
    fn assert_same_reading(mut text: SmartReading, mut json: SmartReading, decoded: &[u8]) {
        json.exit_status = None;
        text.smartctl_version = None;
        json.smartctl_version = None;
        for attribute in &mut json.ata_attributes {
            if decoded.contains(&attribute.id) {
                attribute.raw = None;
            }
        }
        assert_eq!(text, json);
    }

    #[test]
    fn text_and_json_of_the_same_ata_disk_agree() {
        let json = parse_json(&fixture("devices/megaraid/response.json")).unwrap();
        assert_same_reading(read("megaraid"), json, &[188, 190, 194, 240]);
    }

    #[test]
    fn text_and_json_of_the_same_nvme_disk_agree() {
        let json = parse_json(&fixture("devices/nvme/response.json")).unwrap();
        assert_same_reading(read("nvme"), json, &[]);
    }

    #[test]
    fn text_and_json_scans_agree() {
        let json = parse_scan_json(&fixture("scan/megaraid/response.json")).unwrap();
        let text = parse_scan_text(&text_fixture("scan/megaraid.txt")).unwrap();
        assert_eq!(text, json);
    }

    #[test]
    fn devices_that_failed_to_open_are_listed_with_the_reason() {
        let scan = parse_scan_text(&text_fixture("scan/open_failed.txt")).unwrap();
        let open: Vec<_> = scan
            .devices
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.device_type.as_str(),
                    d.open_error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            open,
            [
                ("/dev/sda", "sat", None),
                ("/dev/sdb", "scsi", Some("Permission denied")),
                ("/dev/nvme0", "nvme", None)
            ]
        );
        assert_eq!(scan.devices[2].protocol.as_deref(), Some("NVMe"));
        let scan = parse_scan_text(
            b"# scan_smart_devices: glob(3) aborted matching pattern /dev/discs/*\n",
        )
        .unwrap();
        assert_eq!(scan.devices, []);
        assert_eq!(scan.messages.len(), 1);
    }

    #[test]
    fn the_brief_attribute_layout_reads_the_same() {
        let text = "smartctl 6.6 2016-05-31 r4324 [x86_64-linux] (local build)\n\
            === START OF READ SMART DATA SECTION ===\n\
            ID# ATTRIBUTE_NAME          FLAGS    VALUE WORST THRESH FAIL RAW_VALUE\n  \
              5 Reallocated_Sector_Ct   PO--CK   100   100   010    -    0\n  \
              1 Raw_Read_Error_Rate     POSR--   001   001   051    NOW  94331\n  \
              3 Spin_Up_Time            PO----   176   021   021    Past 4158\n\
            194 Temperature_Celsius     -O---K   036   048   ---    -    36 (0 18 0 0 0)\n";
        let r = parse_text(text.as_bytes()).unwrap();
        assert_eq!(r.skipped, []);
        let rows: Vec<_> = r
            .ata_attributes
            .iter()
            .map(|a| (a.id, a.flags, a.threshold, a.when_failed, a.raw))
            .collect();
        assert_eq!(
            rows,
            [
                (5, 0x33, Some(10), WhenFailed::Never, Some(0)),
                (1, 0x0f, Some(51), WhenFailed::Now, Some(94331)),
                (3, 0x03, Some(21), WhenFailed::Past, Some(4158)),
                (194, 0x22, None, WhenFailed::Never, None),
            ]
        );
        assert_eq!(r.temperature, Some(36));
    }

    #[test]
    fn scsi_text_is_read() {
        let text = "smartctl 6.6 2016-05-31 r4324 [x86_64-linux] (local build)\n\
            Copyright (C) 2002-16, Bruce Allen, Christian Franke, www.smartmontools.org\n\
            \n\
            === START OF INFORMATION SECTION ===\n\
            Vendor:               SEAGATE\n\
            Product:              ST4000NM0023\n\
            Revision:             0004\n\
            User Capacity:        4,000,787,030,016 bytes [4.00 TB]\n\
            Logical block size:   512 bytes\n\
            Rotation Rate:        7200 rpm\n\
            Serial number:        Z1Z3ABCD\n\
            Transport protocol:   SAS (SPL-3)\n\
            \n\
            === START OF READ SMART DATA SECTION ===\n\
            SMART Health Status: OK\n\
            \n\
            Current Drive Temperature:     24 C\n\
            Drive Trip Temperature:        60 C\n\
            \n\
            Accumulated power on time, hours:minutes 32978:46\n\
            Elements in grown defect list: 3\n";
        let r = parse_text(text.as_bytes()).unwrap();
        assert_eq!(r.skipped, []);
        assert_eq!(r.protocol.as_deref(), Some("SCSI"));
        assert_eq!(r.model_name.as_deref(), Some("SEAGATE ST4000NM0023"));
        assert_eq!(r.serial_number.as_deref(), Some("Z1Z3ABCD"));
        assert_eq!(r.smart_passed, Some(true));
        assert_eq!(
            (r.temperature, r.temperature_drive_trip),
            (Some(24), Some(60))
        );
        assert_eq!(
            (r.power_on_hours, r.power_on_minutes),
            (Some(32978), Some(46))
        );
        assert_eq!(r.scsi_grown_defect_list, Some(3));
        let failed = parse_text(
            b"smartctl 6.6\n=== START ===\nSMART Health Status: FAILURE PREDICTION THRESHOLD EXCEEDED [asc=5d, ascq=10]\n",
        )
        .unwrap();
        assert_eq!(failed.smart_passed, Some(false));
    }

    #[test]
    fn bad_values_of_known_lines_are_listed() {
        let text = "smartctl 6.6 2016-05-31 r4324\n=== START ===\n\
            Temperature:                        hot\n\
            ID# ATTRIBUTE_NAME          FLAG     VALUE WORST THRESH TYPE      UPDATED  WHEN_FAILED RAW_VALUE\n\
            999 Broken                  0x0033   100   100   010    Pre-fail  Always       -       0\n";
        let r = parse_text(text.as_bytes()).unwrap();
        let lines: Vec<usize> = r.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5]);
        assert!(
            r.skipped[0].message.contains("Temperature"),
            "{}",
            r.skipped[0]
        );
    }

    #[test]
    fn what_is_not_smartctl_is_refused() {
        for text in [
            &b""[..],
            b"\n\n",
            b"hello world",
            b"{\"json_format_version\":[1,0]}",
            b"\xff\xfe",
        ] {
            assert!(
                parse_text(text).is_err(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn the_version_is_read_from_the_banner() {
        assert_eq!(
            parse_version(
                b"smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.1.0] (local build)\nCopyright"
            ),
            Some((7, 3))
        );
        assert_eq!(
            parse_version(b"smartctl 6.2 2013-07-26 r3841"),
            Some((6, 2))
        );
        assert_eq!(parse_version(b"smartctl: command not found"), None);
        assert_eq!(parse_version(b""), None);
    }

    fn arbitrary_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        // Arbitrary bytes, and arbitrary lines drawn from smartctl's vocabulary.
        let words = prop::sample::select(vec![
            "smartctl 6.6 ",
            "=== START ===",
            "ID# ATTRIBUTE_NAME FLAG ",
            "0x0033",
            "FAILING_NOW",
            "  5 Reallocated_Sector_Ct",
            " 100",
            " ---",
            "Pre-fail",
            "Always",
            " - ",
            ":",
            "%",
            " Celsius",
            "1,234,567",
            "Temperature",
            "Power On Hours",
            "\n",
            " ",
            "#",
            "-d",
            "/dev/sda",
            "open failed: ",
            "Device is in STANDBY mode",
            "99999999999999999999999",
            "hours:minutes",
            "Accumulated power on time, hours:minutes ",
            "0x",
            "h+",
            "PO--CK",
        ]);
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            prop::collection::vec(words, 0..64).prop_map(|w| w.concat().into_bytes()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn text_parsers_never_panic(bytes in arbitrary_text()) {
            let _ = parse_text(&bytes);
            let _ = parse_scan_text(&bytes);
            let _ = parse_version(&bytes);
        }

        #[test]
        fn damaged_text_fixtures_never_panic(
            index in 0usize..16,
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..16),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let fixtures = text_fixtures();
            let mut bytes = fixtures[index % fixtures.len()].clone();
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = parse_text(&bytes);
            let _ = parse_scan_text(&bytes);
        }

        #[test]
        fn text_fixtures_with_lines_dropped_never_panic(
            index in 0usize..16,
            keep in proptest::collection::vec(proptest::prelude::any::<bool>(), 0..200),
        ) {
            let fixtures = text_fixtures();
            let text = String::from_utf8_lossy(&fixtures[index % fixtures.len()]).into_owned();
            let kept: Vec<&str> = text
                .lines()
                .zip(keep.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, k)| **k)
                .map(|(line, _)| line)
                .collect();
            let _ = parse_text(kept.join("\n").as_bytes());
        }
    }
}
