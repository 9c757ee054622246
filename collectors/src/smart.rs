//! `smart`: disk health from smartctl, named as prometheus-community's smartctl_exporter
//! names it, plus one health event per disk.
//!
//! The agent never runs smartctl: raw disk access needs privileges the agent does not
//! have. It runs the `sysward-smart` helper (by default `/usr/lib/sysward/sysward-smart`,
//! else `sysward-smart` next to the agent's own binary), which the package installs with
//! the capabilities smartctl needs and which runs exactly one of a few fixed smartctl
//! command lines (`sysward_platform::smartctl::request`). Without the helper, or without
//! smartctl, the collector says why once and then sends nothing.
//!
//! Each run:
//!
//! 1. asks smartctl's version once, to choose JSON (smartmontools 7+) or text (6.x);
//! 2. lists the devices with `smartctl --scan-open` on the first run and then every
//!    [`SmartConfig::rescan_interval`], keeping those [`SmartConfig::devices`] passes;
//! 3. reads each device with `smartctl --all --nocheck=standby`, within
//!    [`SmartConfig::run_budget`] (devices not reached are read first next time).
//!
//! smartctl's exit status is a bit mask ([`ExitStatus`]). Bits 0 and 1 mean the read
//! failed; bit 1 with "Device is in STANDBY mode" means the disk sleeps and was left
//! asleep. In both cases the device's last good reading is sent again, with
//! [`READING_AGE`] saying how old it is, so that a sleeping disk neither wakes up nor
//! leaves a gap. Bits 2 to 7 are findings about a disk whose reading is good.
//!
//! Every good reading (and every failed one) yields an event `smart:<device>`:
//! CRITICAL when the disk fails its health check (bit 3, or a failed self-assessment);
//! WARNING when pre-failure attributes are at their threshold now (bit 4), an NVMe disk
//! raises a critical warning, or one of the sticky history bits 5 to 7 appears that the
//! previous reading of the disk did not have (they stay set for ever, so they warn once,
//! when new, and not at every run); UNKNOWN when smartctl could not read the disk; OK
//! otherwise. A sleeping disk yields no event.
//!
//! The `device` label is smartctl_exporter's: the path without `/dev/`, `/` turned to
//! `_`, and a RAID type appended (`sda`, `nvme0`, `bus_6_megaraid_14`). The type is the
//! one the scan gave (`megaraid,14`), where smartctl_exporter uses the one in the
//! response (`sat+megaraid,14`), so that JSON and text give the same label. Where
//! smartctl_exporter has no metric, names are `sysward_smart_*`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use sysward_platform::smartctl::{
    self, DeviceArg, ExitStatus, Format, Request, RunError, RunOutput, Scan, SmartReading,
    WhenFailed,
};

use crate::filter::NameFilter;
use crate::settings::{self, HumanDuration, Pattern};
use crate::{CheckState, CollectError, Collector, Event, Kind, Output, Roots, Sample};

/// Devices found by the last scan (gauge).
pub const DEVICES: &str = "smartctl_devices";
/// Device facts (gauge, 1; labels `device`, `interface`, `protocol`, `model_family`,
/// `model_name`, `serial_number`, `firmware_version`).
pub const DEVICE_INFO: &str = "smartctl_device";
/// smartctl's exit status on this run, the raw bit mask (gauge).
pub const EXIT_STATUS: &str = "smartctl_device_smartctl_exit_status";
/// 1 when the overall health self-assessment passed, 0 when it failed (gauge).
pub const SMART_STATUS: &str = "smartctl_device_smart_status";
/// Temperature in °C (gauge; label `temperature_type`: `current`, `drive_trip`).
pub const TEMPERATURE: &str = "smartctl_device_temperature";
/// Power-on time (counter, seconds).
pub const POWER_ON_SECONDS: &str = "smartctl_device_power_on_seconds";
/// Power cycles (counter).
pub const POWER_CYCLE_COUNT: &str = "smartctl_device_power_cycle_count";
/// User capacity (gauge, bytes).
pub const CAPACITY_BYTES: &str = "smartctl_device_capacity_bytes";
/// Rotation rate of a spinning disk (gauge, rpm); absent for solid state.
pub const ROTATION_RATE: &str = "smartctl_device_rotation_rate";
/// ATA SMART attributes (gauge; labels `attribute_name`, `attribute_flags_short`,
/// `attribute_flags_long`, `attribute_value_type` (`value`, `worst`, `thresh`, `raw`),
/// `attribute_id`).
pub const ATTRIBUTE: &str = "smartctl_device_attribute";
/// ATA SMART error log count (gauge; label `error_log_type`: `summary`).
pub const ERROR_LOG_COUNT: &str = "smartctl_device_error_log_count";
/// NVMe critical warning bits (gauge).
pub const CRITICAL_WARNING: &str = "smartctl_device_critical_warning";
/// NVMe available spare, percent (gauge).
pub const AVAILABLE_SPARE: &str = "smartctl_device_available_spare";
/// NVMe available spare threshold, percent (gauge).
pub const AVAILABLE_SPARE_THRESHOLD: &str = "smartctl_device_available_spare_threshold";
/// NVMe life used, percent (gauge).
pub const PERCENTAGE_USED: &str = "smartctl_device_percentage_used";
/// NVMe media and data integrity errors (counter).
pub const MEDIA_ERRORS: &str = "smartctl_device_media_errors";
/// NVMe error information log entries (counter).
pub const NUM_ERR_LOG_ENTRIES: &str = "smartctl_device_num_err_log_entries";
/// NVMe data read (counter, bytes: data units of 1000 × 512 bytes).
pub const BYTES_READ: &str = "smartctl_device_bytes_read";
/// NVMe data written (counter, bytes).
pub const BYTES_WRITTEN: &str = "smartctl_device_bytes_written";
/// SCSI grown defect list (counter).
pub const SCSI_GROWN_DEFECT_LIST: &str = "smartctl_scsi_grown_defect_list";
/// NVMe unsafe shutdowns (counter).
pub const UNSAFE_SHUTDOWNS: &str = "sysward_smart_unsafe_shutdowns_total";
/// ATA reallocated sectors, attribute 5's raw value (gauge).
pub const REALLOCATED_SECTORS: &str = "sysward_smart_reallocated_sectors";
/// ATA sectors pending reallocation, attribute 197's raw value (gauge).
pub const PENDING_SECTORS: &str = "sysward_smart_pending_sectors";
/// ATA sectors found uncorrectable offline, attribute 198's raw value (gauge).
pub const OFFLINE_UNCORRECTABLE_SECTORS: &str = "sysward_smart_offline_uncorrectable_sectors";
/// 1 when the disk was asleep on this run and left asleep (gauge).
pub const STANDBY: &str = "sysward_smart_device_standby";
/// Age of the reading sent, 0 when read on this run (gauge, seconds).
pub const READING_AGE: &str = "sysward_smart_reading_age_seconds";

/// The helper's place when the package installs it.
pub const DEFAULT_HELPER: &str = "/usr/lib/sysward/sysward-smart";

/// Bytes per NVMe data unit: 1000 blocks of 512 bytes (NVMe base specification).
const NVME_DATA_UNIT: f64 = 512_000.0;

/// How the `smart` collector runs.
#[derive(Debug, Clone)]
pub struct SmartConfig {
    /// The helper to run; by default [`DEFAULT_HELPER`], else `sysward-smart` next to the
    /// running binary.
    pub helper: Option<PathBuf>,
    /// Device paths (as smartctl lists them, `/dev/sda`) to read. All by default.
    pub devices: NameFilter,
    /// How long one smartctl run may take before it is killed.
    pub command_timeout: Duration,
    /// How long one collector run may spend in all; devices not reached in time keep
    /// their last reading and are read first on the next run.
    pub run_budget: Duration,
    /// How often the device list is renewed.
    pub rescan_interval: Duration,
    /// The most a smartctl run may print; the rest is discarded.
    pub max_output: usize,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            helper: None,
            devices: NameFilter::all(),
            command_timeout: Duration::from_secs(5),
            // Under the agent's default deadline for a collector (10 s).
            run_budget: Duration::from_secs(8),
            rescan_interval: Duration::from_secs(3600),
            max_output: 1 << 20,
        }
    }
}

/// `[collectors.smart]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmartSettings {
    helper: Option<PathBuf>,
    device_include: Option<Pattern>,
    device_exclude: Option<Pattern>,
    command_timeout: Option<HumanDuration>,
    run_budget: Option<HumanDuration>,
    rescan_interval: Option<HumanDuration>,
}

impl SmartConfig {
    /// The configuration a `[collectors.smart]` table asks for, the agent's own keys left
    /// out: `helper` (an absolute path), `device_include` and `device_exclude` (regular
    /// expressions on device paths such as `/dev/sda`, `""` for none),
    /// `command_timeout`, `run_budget` and `rescan_interval` (durations; the budget
    /// should stay below the collector's `timeout`). An empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        const NAME: &str = "smart";
        let s: SmartSettings = settings::parse(NAME, table)?;
        let default = Self::default();
        if let Some(helper) = &s.helper
            && !helper.is_absolute()
        {
            return Err(settings::bad(
                NAME,
                "helper",
                format!("{:?} is not an absolute path", helper.display().to_string()),
            ));
        }
        let command_timeout = settings::positive(
            NAME,
            "command_timeout",
            s.command_timeout,
            default.command_timeout,
        )?;
        let run_budget = settings::positive(NAME, "run_budget", s.run_budget, default.run_budget)?;
        Ok(Self {
            helper: s.helper.or(default.helper),
            devices: settings::filter(s.device_include, s.device_exclude, default.devices),
            command_timeout,
            run_budget,
            rescan_interval: s
                .rescan_interval
                .map_or(default.rescan_interval, |interval| interval.0),
            max_output: default.max_output,
        })
    }
}

/// Runs helper requests: [`HelperRunner`] runs `sysward-smart`; tests answer from
/// fixtures.
pub trait SmartctlRunner: Send {
    /// Runs one request, killing it after `timeout`.
    fn run(&mut self, request: &Request, timeout: Duration) -> Result<RunOutput, RunError>;
}

/// Runs the `sysward-smart` helper.
#[derive(Debug, Clone)]
pub struct HelperRunner {
    helper: Option<PathBuf>,
    max_output: usize,
}

impl HelperRunner {
    /// A runner for the configured helper, or the default one.
    pub fn new(helper: Option<PathBuf>, max_output: usize) -> Self {
        Self { helper, max_output }
    }

    /// The helper this runner would run now.
    pub fn helper(&self) -> PathBuf {
        crate::helper_binary::locate(self.helper.as_deref(), DEFAULT_HELPER, "sysward-smart")
    }
}

impl SmartctlRunner for HelperRunner {
    fn run(&mut self, request: &Request, timeout: Duration) -> Result<RunOutput, RunError> {
        smartctl::run(
            &self.helper(),
            &request.helper_args(),
            timeout,
            self.max_output,
        )
    }
}

/// One device to read.
#[derive(Debug, Clone)]
struct Device {
    label: String,
    interface: String,
    arg: DeviceArg,
}

/// What the collector remembers about a device between runs.
#[derive(Debug, Default)]
struct DeviceState {
    last_good: Option<(SmartReading, SystemTime)>,
    last_status: Option<ExitStatus>,
    attempts: u32,
}

/// What one read of one device came to.
#[derive(Debug)]
enum Outcome {
    /// A reading to trust, with smartctl's findings.
    Good(Box<SmartReading>, ExitStatus),
    /// The disk sleeps and was left asleep.
    Standby(ExitStatus),
    /// smartctl could not read the disk.
    Failed(Option<ExitStatus>, String),
}

/// Reads SMART data through the helper.
pub struct SmartCollector {
    config: SmartConfig,
    runner: Box<dyn SmartctlRunner>,
    clock: Box<dyn Fn() -> SystemTime + Send>,
    format: Option<Format>,
    unavailable_said: Option<String>,
    devices: Vec<Device>,
    scanned_at: Option<SystemTime>,
    states: HashMap<String, DeviceState>,
    cursor: usize,
    said: HashSet<String>,
}

impl std::fmt::Debug for SmartCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartCollector")
            .field("config", &self.config)
            .field("format", &self.format)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl SmartCollector {
    /// A collector with the default configuration. SMART data needs no roots: it comes
    /// from the devices through the helper.
    pub fn new(_roots: Roots) -> Self {
        Self::with_config(SmartConfig::default())
    }

    /// A collector with the given configuration, running the real helper.
    pub fn with_config(config: SmartConfig) -> Self {
        let runner = HelperRunner::new(config.helper.clone(), config.max_output);
        Self::with_runner(config, Box::new(runner))
    }

    /// A collector that runs its requests through `runner`.
    pub fn with_runner(config: SmartConfig, runner: Box<dyn SmartctlRunner>) -> Self {
        Self {
            config,
            runner,
            clock: Box::new(SystemTime::now),
            format: None,
            unavailable_said: None,
            devices: Vec::new(),
            scanned_at: None,
            states: HashMap::new(),
            cursor: 0,
            said: HashSet::new(),
        }
    }

    /// Replaces the wall clock (for tests).
    #[cfg(test)]
    fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Reports that SMART is off and why, unless that was the last thing said.
    fn unavailable(&mut self, reason: String, out: &mut Output) {
        if self.unavailable_said.as_ref() != Some(&reason) {
            out.error(format!("SMART is off: {reason}"));
            self.unavailable_said = Some(reason);
        }
    }

    /// The helper cannot be started (not installed, not executable): SMART is off until
    /// it can, and the next run asks the version again.
    fn helper_gone(
        &mut self,
        program: &std::path::Path,
        source: &std::io::Error,
        out: &mut Output,
    ) {
        self.format = None;
        self.unavailable(
            format!(
                "cannot run the helper {}: {source} (the sysward-smart package installs it \
                 with the privileges smartctl needs)",
                program.display()
            ),
            out,
        );
    }

    /// Says `message` the first time only.
    fn say_once(&mut self, message: String, out: &mut Output) {
        if self.said.insert(message.clone()) {
            out.error(message);
        }
    }

    /// Asks smartctl's version to choose JSON or text; `None` if SMART is off.
    fn format(&mut self, out: &mut Output) -> Option<Format> {
        if let Some(format) = self.format {
            return Some(format);
        }
        match self
            .runner
            .run(&Request::Version, self.config.command_timeout)
        {
            Err(RunError::Spawn { program, source }) => {
                self.helper_gone(&program, &source, out);
                None
            }
            Err(error) => {
                out.error(format!("smartctl --version: {error}"));
                None
            }
            Ok(output) if output.status != Some(0) => {
                let reason = first_line(&output.stderr)
                    .or_else(|| first_line(&output.stdout))
                    .unwrap_or_else(|| format!("exit status {:?}", output.status));
                self.unavailable(format!("smartctl --version failed: {reason}"), out);
                None
            }
            Ok(output) => {
                let format = match smartctl::parse_version(&output.stdout) {
                    Some((major, _)) if major < 7 => Format::Text,
                    _ => Format::Json,
                };
                self.format = Some(format);
                self.unavailable_said = None;
                Some(format)
            }
        }
    }

    /// Renews the device list if it is due; keeps the old one if the scan fails.
    fn scan(&mut self, format: Format, now: SystemTime, out: &mut Output) {
        let due = self.scanned_at.is_none_or(|at| {
            now.duration_since(at)
                .map_or(true, |age| age >= self.config.rescan_interval)
        });
        if !due {
            return;
        }
        let output = match self
            .runner
            .run(&Request::Scan(format), self.config.command_timeout)
        {
            Ok(output) => output,
            Err(RunError::Spawn { program, source }) => {
                self.helper_gone(&program, &source, out);
                return;
            }
            Err(error) => {
                out.error(format!("smartctl --scan-open: {error}"));
                return;
            }
        };
        let parsed = match format {
            Format::Json => smartctl::parse_scan_json(&output.stdout),
            Format::Text => smartctl::parse_scan_text(&output.stdout),
        };
        let scan: Scan = match parsed {
            Ok(scan) => scan,
            Err(error) => {
                let reason = first_line(&output.stderr).unwrap_or_else(|| error.to_string());
                out.error(format!("smartctl --scan-open: {reason}"));
                return;
            }
        };
        for message in &scan.messages {
            out.error(format!("smartctl --scan-open: {message}"));
        }
        self.scanned_at = Some(now);
        let mut devices = Vec::new();
        for entry in scan.devices {
            if !self.config.devices.passes(&entry.name) {
                continue;
            }
            if let Some(error) = &entry.open_error {
                self.say_once(
                    format!(
                        "smartctl cannot open {} ({}): {error}",
                        entry.name, entry.device_type
                    ),
                    out,
                );
                continue;
            }
            match DeviceArg::new(&entry.name, Some(&entry.device_type)) {
                Ok(arg) => devices.push(Device {
                    label: device_label(&entry.name, &entry.device_type),
                    interface: entry.device_type,
                    arg,
                }),
                Err(error) => self.say_once(format!("not reading {}: {error}", entry.name), out),
            }
        }
        self.states
            .retain(|label, _| devices.iter().any(|d| &d.label == label));
        if self.cursor >= devices.len() {
            self.cursor = 0;
        }
        self.devices = devices;
    }

    /// Reads the devices from the cursor on, while the budget lasts. `None` for a device
    /// not reached.
    fn read_devices(
        &mut self,
        format: Format,
        started: Instant,
        out: &mut Output,
    ) -> Vec<Option<(Outcome, Duration)>> {
        let count = self.devices.len();
        let mut outcomes: Vec<Option<(Outcome, Duration)>> = (0..count).map(|_| None).collect();
        let mut next_cursor = None;
        for step in 0..count {
            let index = (self.cursor + step) % count;
            let remaining = self.config.run_budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                next_cursor = Some(index);
                break;
            }
            let timeout = self.config.command_timeout.min(remaining);
            let request = Request::Read(format, self.devices[index].arg.clone());
            let began = Instant::now();
            match self.runner.run(&request, timeout) {
                Err(RunError::TimedOut { .. }) if timeout < self.config.command_timeout => {
                    // Cut short by the budget, not by its own deadline: next run first.
                    next_cursor = Some(index);
                    break;
                }
                Err(RunError::Spawn { program, source }) => {
                    self.helper_gone(&program, &source, out);
                    next_cursor = Some(index);
                    break;
                }
                Err(error) => {
                    outcomes[index] =
                        Some((Outcome::Failed(None, error.to_string()), began.elapsed()));
                }
                Ok(output) => {
                    let duration = output.duration;
                    outcomes[index] = Some((classify(format, &output), duration));
                }
            }
        }
        self.cursor = next_cursor.unwrap_or(0);
        outcomes
    }
}

impl Collector for SmartCollector {
    fn name(&self) -> &'static str {
        "smart"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let started = Instant::now();
        let now = (self.clock)();
        let Some(format) = self.format(out) else {
            return Ok(());
        };
        self.scan(format, now, out);
        if self.scanned_at.is_some() {
            out.push(Sample::new(DEVICES, Kind::Gauge, self.devices.len() as f64));
        }
        let outcomes = self.read_devices(format, started, out);
        let devices = self.devices.clone();
        for (device, outcome) in devices.iter().zip(outcomes) {
            let state = self.states.entry(device.label.clone()).or_default();
            let path = device.arg.path();
            let mut standby = false;
            match outcome {
                None => {}
                Some((Outcome::Good(reading, status), duration)) => {
                    let event = health_event(
                        device,
                        &reading,
                        status,
                        state.last_status,
                        state.attempts,
                        duration,
                    );
                    state.attempts = if event.state == CheckState::Ok {
                        0
                    } else {
                        event.attempt
                    };
                    state.last_status = Some(status);
                    state.last_good = Some((*reading, now));
                    out.events.push(event);
                    push_exit_status(&device.label, status, out);
                }
                Some((Outcome::Standby(status), _)) => {
                    standby = true;
                    push_exit_status(&device.label, status, out);
                }
                Some((Outcome::Failed(status, reason), duration)) => {
                    out.error(format!(
                        "smartctl could not read {path} ({}): {reason}",
                        device.interface
                    ));
                    state.attempts = state.attempts.saturating_add(1);
                    out.events.push(Event {
                        check: check_name(device),
                        state: CheckState::Unknown,
                        output: format!("smartctl could not read {path}: {reason}"),
                        long_output: String::new(),
                        hard: true,
                        attempt: state.attempts,
                        duration,
                    });
                    if let Some(status) = status {
                        push_exit_status(&device.label, status, out);
                    }
                }
            }
            if let Some((reading, read_at)) = &state.last_good {
                out.samples
                    .extend(reading_samples(&device.label, &device.interface, reading));
                let age = now.duration_since(*read_at).unwrap_or_default();
                out.push(
                    Sample::new(READING_AGE, Kind::Gauge, age.as_secs_f64())
                        .label("device", &device.label),
                );
                out.push(
                    Sample::new(STANDBY, Kind::Gauge, if standby { 1.0 } else { 0.0 })
                        .label("device", &device.label),
                );
            }
        }
        Ok(())
    }
}

fn push_exit_status(label: &str, status: ExitStatus, out: &mut Output) {
    out.push(Sample::new(EXIT_STATUS, Kind::Gauge, f64::from(status.0)).label("device", label));
}

/// What one helper run came to.
fn classify(format: Format, output: &RunOutput) -> Outcome {
    let status = match output.status.map(u8::try_from) {
        Some(Ok(status)) => ExitStatus(status),
        Some(Err(_)) => {
            return Outcome::Failed(None, format!("exit status {:?}", output.status));
        }
        None => return Outcome::Failed(None, "killed by a signal".into()),
    };
    let parsed = match format {
        Format::Json => smartctl::parse_json(&output.stdout),
        Format::Text => smartctl::parse_text(&output.stdout),
    };
    let reading = match parsed {
        Ok(reading) => reading,
        Err(error) => {
            // The helper's own refusals come on standard error.
            let reason = first_line(&output.stderr).unwrap_or_else(|| {
                let cut = if output.truncated {
                    " (output cut at the size limit)"
                } else {
                    ""
                };
                format!("cannot read smartctl's output: {error}{cut}")
            });
            return Outcome::Failed(Some(status), reason);
        }
    };
    if reading.standby && status.has(ExitStatus::DEVICE_OPEN) {
        return Outcome::Standby(status);
    }
    if status.tool_failed() {
        let reason = if reading.messages.is_empty() {
            status.describe().join("; ")
        } else {
            reading.messages.join("; ")
        };
        return Outcome::Failed(Some(status), reason);
    }
    Outcome::Good(Box::new(reading), status)
}

fn first_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

fn check_name(device: &Device) -> String {
    format!("smart:{}", device.label)
}

/// smartctl_exporter's `device` label: the path without `/dev/` (or `/dev/disk/by-id/`
/// and `by-path/`), `/` as `_`, and a type with arguments appended (`bus_6_megaraid_14`).
pub fn device_label(path: &str, device_type: &str) -> String {
    let name = ["/dev/disk/by-id/", "/dev/disk/by-path/", "/dev/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .unwrap_or(path)
        .replace('/', "_");
    if device_type.contains(',') {
        format!("{name}_{}", device_type.replace(',', "_"))
    } else {
        name
    }
}

/// The event of one read: see the module documentation for the states.
fn health_event(
    device: &Device,
    reading: &SmartReading,
    status: ExitStatus,
    previous: Option<ExitStatus>,
    attempts: u32,
    duration: Duration,
) -> Event {
    let path = device.arg.path();
    let mut details: Vec<String> = status
        .describe()
        .into_iter()
        .map(|d| format!("smartctl: {d}"))
        .collect();
    let failing: Vec<&str> = reading
        .ata_attributes
        .iter()
        .filter(|a| a.when_failed == WhenFailed::Now)
        .map(|a| a.name.as_str())
        .collect();
    if !failing.is_empty() {
        details.push(format!("failing now: {}", failing.join(", ")));
    }
    let past: Vec<&str> = reading
        .ata_attributes
        .iter()
        .filter(|a| a.when_failed == WhenFailed::Past)
        .map(|a| a.name.as_str())
        .collect();
    if !past.is_empty() {
        details.push(format!("failed in the past: {}", past.join(", ")));
    }
    details.extend(reading.messages.iter().cloned());
    let critical_warning = reading
        .nvme_health
        .as_ref()
        .and_then(|h| h.critical_warning)
        .filter(|w| *w != 0);
    // A sticky bit is news only when the previous reading lacked it; on the first
    // reading there is no telling how old it is.
    let new_sticky = previous.map_or(0, |p| status.0 & ExitStatus::STICKY & !p.0);
    let (state, summary) =
        if status.has(ExitStatus::DISK_FAILING) || reading.smart_passed == Some(false) {
            (
                CheckState::Critical,
                format!("{path}: SMART health check FAILED, the disk is failing"),
            )
        } else if status.has(ExitStatus::PREFAIL_NOW) {
            (
                CheckState::Warning,
                format!("{path}: pre-failure attributes at or below threshold"),
            )
        } else if let Some(warning) = critical_warning {
            (
                CheckState::Warning,
                format!(
                    "{path}: NVMe critical warning 0x{warning:02x}: {}",
                    nvme_warning_text(warning)
                ),
            )
        } else if new_sticky != 0 {
            (
                CheckState::Warning,
                format!(
                    "{path}: new since the last reading: {}",
                    ExitStatus(new_sticky).describe().join("; ")
                ),
            )
        } else {
            (CheckState::Ok, format!("{path}: SMART health OK"))
        };
    let attempt = if state == CheckState::Ok {
        0
    } else {
        attempts.saturating_add(1)
    };
    Event {
        check: check_name(device),
        state,
        output: summary,
        long_output: details.join("\n"),
        hard: true,
        attempt,
        duration,
    }
}

/// What the set bits of an NVMe critical warning mean.
fn nvme_warning_text(warning: u64) -> String {
    const BITS: [&str; 6] = [
        "spare below threshold",
        "temperature out of range",
        "reliability degraded",
        "read-only",
        "volatile memory backup failed",
        "persistent memory region read-only",
    ];
    BITS.iter()
        .enumerate()
        .filter(|(bit, _)| warning & (1 << bit) != 0)
        .map(|(_, text)| *text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The samples of one reading of one device: everything except this run's exit status,
/// standby flag and age.
pub fn reading_samples(label: &str, interface: &str, reading: &SmartReading) -> Vec<Sample> {
    let gauge = |name: &'static str, value: f64| {
        Sample::new(name, Kind::Gauge, value).label("device", label)
    };
    let counter = |name: &'static str, value: f64| {
        Sample::new(name, Kind::Counter, value).label("device", label)
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut samples = vec![
        gauge(DEVICE_INFO, 1.0)
            .label("interface", interface)
            .label("protocol", text(&reading.protocol))
            .label("model_family", text(&reading.model_family))
            .label("model_name", text(&reading.model_name))
            .label("serial_number", text(&reading.serial_number))
            .label("firmware_version", text(&reading.firmware_version)),
    ];
    if let Some(passed) = reading.smart_passed {
        samples.push(gauge(SMART_STATUS, if passed { 1.0 } else { 0.0 }));
    }
    if let Some(t) = reading.temperature {
        samples.push(gauge(TEMPERATURE, t as f64).label("temperature_type", "current"));
    }
    if let Some(t) = reading.temperature_drive_trip {
        samples.push(gauge(TEMPERATURE, t as f64).label("temperature_type", "drive_trip"));
    }
    if let Some(hours) = reading.power_on_hours {
        let minutes = reading.power_on_minutes.unwrap_or(0);
        samples.push(counter(
            POWER_ON_SECONDS,
            hours as f64 * 3600.0 + minutes as f64 * 60.0,
        ));
    }
    if let Some(cycles) = reading.power_cycle_count {
        samples.push(counter(POWER_CYCLE_COUNT, cycles as f64));
    }
    if let Some(bytes) = reading.capacity_bytes {
        samples.push(gauge(CAPACITY_BYTES, bytes as f64));
    }
    if let Some(rpm) = reading.rotation_rate.filter(|r| *r > 0) {
        samples.push(gauge(ROTATION_RATE, rpm as f64));
    }
    for attribute in &reading.ata_attributes {
        let values = [
            ("value", attribute.value.map(f64::from)),
            ("worst", attribute.worst.map(f64::from)),
            ("thresh", attribute.threshold.map(f64::from)),
            ("raw", attribute.raw.map(|r| r as f64)),
        ];
        for (kind, value) in values {
            let Some(value) = value else { continue };
            samples.push(
                gauge(ATTRIBUTE, value)
                    .label("attribute_name", &attribute.name)
                    .label("attribute_flags_short", attribute.flags_short())
                    .label("attribute_flags_long", attribute.flags_long())
                    .label("attribute_value_type", kind)
                    .label("attribute_id", attribute.id.to_string()),
            );
        }
    }
    for (id, name) in [
        (5, REALLOCATED_SECTORS),
        (197, PENDING_SECTORS),
        (198, OFFLINE_UNCORRECTABLE_SECTORS),
    ] {
        if let Some(raw) = reading.attribute(id).and_then(|a| a.raw) {
            samples.push(gauge(name, raw as f64));
        }
    }
    if let Some(count) = reading.ata_error_log_count {
        samples.push(gauge(ERROR_LOG_COUNT, count as f64).label("error_log_type", "summary"));
    }
    if let Some(health) = &reading.nvme_health {
        let gauges = [
            (CRITICAL_WARNING, health.critical_warning),
            (AVAILABLE_SPARE, health.available_spare),
            (AVAILABLE_SPARE_THRESHOLD, health.available_spare_threshold),
            (PERCENTAGE_USED, health.percentage_used),
        ];
        for (name, value) in gauges {
            if let Some(value) = value {
                samples.push(gauge(name, value as f64));
            }
        }
        let counters = [
            (MEDIA_ERRORS, health.media_errors.map(|v| v as f64)),
            (
                NUM_ERR_LOG_ENTRIES,
                health.num_err_log_entries.map(|v| v as f64),
            ),
            (
                BYTES_READ,
                health.data_units_read.map(|v| v as f64 * NVME_DATA_UNIT),
            ),
            (
                BYTES_WRITTEN,
                health.data_units_written.map(|v| v as f64 * NVME_DATA_UNIT),
            ),
            (UNSAFE_SHUTDOWNS, health.unsafe_shutdowns.map(|v| v as f64)),
        ];
        for (name, value) in counters {
            if let Some(value) = value {
                samples.push(counter(name, value));
            }
        }
    }
    if let Some(defects) = reading.scsi_grown_defect_list {
        samples.push(counter(SCSI_GROWN_DEFECT_LIST, defects as f64));
    }
    samples
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sample::value;

    /// The shared fixtures: real smartctl JSON, with Telegraf's reading of each.
    fn shared(path: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/smartctl")
            .join(path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The smartctl 6.x text fixtures, in the platform crate.
    fn text_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform/tests/fixtures/smartctl6")
    }

    fn text(path: &str) -> Vec<u8> {
        let path = text_dir().join(path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    fn trimmed(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap().trim().to_owned()
    }

    /// What the fake helper answers.
    #[derive(Clone)]
    enum Reply {
        Output(i32, Vec<u8>, Vec<u8>),
        Missing,
        TimedOut,
    }

    /// A helper that answers from a table and records what it was asked.
    #[derive(Clone, Default)]
    struct FakeHelper {
        replies: Arc<Mutex<HashMap<Vec<String>, Reply>>>,
        asked: Arc<Mutex<Vec<Vec<String>>>>,
        delay: Duration,
    }

    impl FakeHelper {
        fn reply(&self, args: &[&str], reply: Reply) -> &Self {
            let args = args.iter().map(|a| a.to_string()).collect();
            self.replies.lock().unwrap().insert(args, reply);
            self
        }

        fn version(&self, banner: &str) -> &Self {
            self.reply(
                &["version"],
                Reply::Output(0, banner.as_bytes().to_vec(), vec![]),
            )
        }

        fn asked(&self) -> Vec<Vec<String>> {
            std::mem::take(&mut *self.asked.lock().unwrap())
        }
    }

    impl SmartctlRunner for FakeHelper {
        fn run(&mut self, request: &Request, timeout: Duration) -> Result<RunOutput, RunError> {
            let args = request.helper_args();
            self.asked.lock().unwrap().push(args.clone());
            let program = PathBuf::from("/usr/lib/sysward/sysward-smart");
            if !self.delay.is_zero() {
                if timeout < self.delay {
                    std::thread::sleep(timeout);
                    return Err(RunError::TimedOut { program, timeout });
                }
                std::thread::sleep(self.delay);
            }
            match self.replies.lock().unwrap().get(&args).cloned() {
                Some(Reply::Output(status, stdout, stderr)) => Ok(RunOutput {
                    status: Some(status),
                    stdout,
                    stderr,
                    truncated: false,
                    duration: Duration::from_millis(120),
                }),
                Some(Reply::Missing) => Err(RunError::Spawn {
                    program,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
                Some(Reply::TimedOut) => Err(RunError::TimedOut { program, timeout }),
                None => panic!("unexpected request {args:?}"),
            }
        }
    }

    const SMARTCTL_7: &str = "smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.1.0] (local build)\n";
    const SMARTCTL_6: &str =
        "smartctl 6.6 2016-05-31 r4324 [x86_64-linux-4.9.0-8-amd64] (local build)\n";

    /// A clock the test moves by hand.
    #[derive(Clone)]
    struct Clock(Arc<Mutex<SystemTime>>);

    impl Clock {
        fn new() -> Self {
            Self(Arc::new(Mutex::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )))
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    fn collector(helper: &FakeHelper, clock: &Clock, config: SmartConfig) -> SmartCollector {
        let clock = clock.clone();
        SmartCollector::with_runner(config, Box::new(helper.clone()))
            .with_clock(move || *clock.0.lock().unwrap())
    }

    fn collect(collector: &mut SmartCollector) -> Output {
        let mut out = Output::default();
        collector.collect(&mut out).expect("collect");
        out
    }

    /// Prometheus text format, one sample a line, in the order given.
    fn render(samples: &[Sample]) -> Vec<String> {
        samples
            .iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={:?}", v))
                    .collect();
                format!("{}{{{}}} {}", s.name, labels.join(","), s.value)
            })
            .collect()
    }

    // ---- Telegraf's readings of the shared fixtures -------------------------------------

    /// One line of InfluxDB line protocol: measurement, tags, fields.
    #[derive(Debug)]
    struct Line {
        measurement: String,
        tags: BTreeMap<String, String>,
        fields: BTreeMap<String, String>,
    }

    /// Splits at `separator` outside quotes and escapes; `unescape` drops the
    /// backslashes of escapes from the parts.
    fn split_unescaped(text: &str, separator: char, unescape: bool) -> Vec<String> {
        let mut parts = vec![String::new()];
        let (mut quoted, mut escaped) = (false, false);
        for c in text.chars() {
            let part = parts.last_mut().unwrap();
            if escaped {
                part.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
                if !unescape {
                    part.push(c);
                }
            } else if c == '"' {
                quoted = !quoted;
                part.push(c);
            } else if c == separator && !quoted {
                parts.push(String::new());
            } else {
                part.push(c);
            }
        }
        parts
    }

    fn parse_line(line: &str) -> Line {
        let parts = split_unescaped(line, ' ', false);
        assert_eq!(parts.len(), 3, "{line}");
        let mut head = split_unescaped(&parts[0], ',', true).into_iter();
        let measurement = head.next().unwrap();
        let pair = |kv: String| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        };
        Line {
            measurement,
            tags: head.map(pair).collect(),
            fields: split_unescaped(&parts[1], ',', true)
                .into_iter()
                .map(pair)
                .collect(),
        }
    }

    /// A line-protocol field as a number (`12i`, `true`).
    fn number(field: &str) -> f64 {
        match field {
            "true" => 1.0,
            "false" => 0.0,
            f => f.trim_end_matches('i').parse().unwrap(),
        }
    }

    fn unquote(field: &str) -> String {
        field.trim_matches('"').to_owned()
    }

    /// Telegraf's fields that this collector does not send (another reading of the same
    /// data, or data it leaves out), so that any other field of `expected.out` must be
    /// compared.
    const NOT_SENT: &[&str] = &[
        "logical_block_size",
        "controller_busy_time",
        "host_reads",
        "host_writes",
        "warning_temp_time",
        "critical_comp_time",
        "scsi_version",
        "scsi_model",
        "scsi_revision",
        "scsi_transport_protocol",
        "scsi_vendor",
        "scsi_protection_type",
        "scsi_protection_interval_bytes_per_lb",
        "accumulated_start_stop_cycles",
        "specified_cycle_count_over_device_lifetime",
    ];

    /// Compares one fixture's samples with Telegraf's reading; returns how many values
    /// were compared.
    fn compare_with_telegraf(fixture: &str, response: &str) -> usize {
        let reading = smartctl::parse_json(&shared(response)).unwrap();
        let path = trimmed(shared(&format!("devices/{fixture}/device")));
        let device_type = trimmed(shared(&format!("devices/{fixture}/deviceType")));
        let label = device_label(&path, &device_type);
        let samples = reading_samples(&label, &device_type, &reading);
        let dev = [("device", label.as_str())];
        let info = samples.iter().find(|s| s.name == DEVICE_INFO).unwrap();
        let info_label = |name: &str| {
            info.labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let expected =
            String::from_utf8(shared(&format!("devices/{fixture}/expected.out"))).unwrap();
        let mut compared = 0;
        for line in expected
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_line)
        {
            if line.measurement == "smartctl" {
                assert_eq!(line.tags["name"], path, "{fixture}");
            }
            if let Some(model) = line.tags.get("model") {
                assert_eq!(&info_label("model_name"), model, "{fixture}");
                compared += 1;
            }
            if let Some(serial) = line.tags.get("serial") {
                assert_eq!(&info_label("serial_number"), serial, "{fixture}");
                compared += 1;
            }
            match line.measurement.as_str() {
                "smartctl" => {
                    for (field, raw) in &line.fields {
                        let ours = match field.as_str() {
                            "firmware" => {
                                assert_eq!(
                                    info_label("firmware_version"),
                                    unquote(raw),
                                    "{fixture}"
                                );
                                compared += 1;
                                continue;
                            }
                            "health_ok" => value(&samples, SMART_STATUS, &dev),
                            "temperature" => {
                                let ours = value(
                                    &samples,
                                    TEMPERATURE,
                                    &[dev[0], ("temperature_type", "current")],
                                );
                                if ours.is_none() && number(raw) == 0.0 {
                                    // Telegraf writes 0 for a response without a
                                    // temperature (the USB bridge's); there is none to send.
                                    assert_eq!(reading.temperature, None, "{fixture}");
                                    continue;
                                }
                                ours
                            }
                            "power_on_hours" => value(&samples, POWER_ON_SECONDS, &dev)
                                .map(|s| (s / 3600.0).floor()),
                            "power_on_minutes" => value(&samples, POWER_ON_SECONDS, &dev)
                                .map(|s| ((s % 3600.0) / 60.0).round()),
                            "power_cycles" => value(&samples, POWER_CYCLE_COUNT, &dev),
                            "capacity" => value(&samples, CAPACITY_BYTES, &dev),
                            "rotation_rate" => value(&samples, ROTATION_RATE, &dev),
                            "critical_warning" => value(&samples, CRITICAL_WARNING, &dev),
                            "available_spare" => value(&samples, AVAILABLE_SPARE, &dev),
                            "available_spare_threshold" => {
                                value(&samples, AVAILABLE_SPARE_THRESHOLD, &dev)
                            }
                            "percentage_used" => value(&samples, PERCENTAGE_USED, &dev),
                            "media_errors" => value(&samples, MEDIA_ERRORS, &dev),
                            "num_err_log_entries" => value(&samples, NUM_ERR_LOG_ENTRIES, &dev),
                            "unsafe_shutdowns" => value(&samples, UNSAFE_SHUTDOWNS, &dev),
                            "data_units_read" => {
                                value(&samples, BYTES_READ, &dev).map(|b| b / NVME_DATA_UNIT)
                            }
                            "data_units_written" => {
                                value(&samples, BYTES_WRITTEN, &dev).map(|b| b / NVME_DATA_UNIT)
                            }
                            other if NOT_SENT.contains(&other) => continue,
                            other => panic!(
                                "{fixture}: Telegraf field {other} is neither compared nor listed as not sent"
                            ),
                        };
                        assert_eq!(ours, Some(number(raw)), "{fixture}: {field}");
                        compared += 1;
                    }
                }
                "smartctl_attributes" => {
                    let name = line
                        .tags
                        .get("attribute")
                        .or(line.tags.get("name"))
                        .unwrap();
                    for (field, kind) in [
                        ("value", "value"),
                        ("worst", "worst"),
                        ("threshold", "thresh"),
                        ("raw_value", "raw"),
                    ] {
                        let ours = value(
                            &samples,
                            ATTRIBUTE,
                            &[
                                dev[0],
                                ("attribute_name", name),
                                ("attribute_value_type", kind),
                            ],
                        );
                        assert_eq!(
                            ours,
                            Some(number(&line.fields[field])),
                            "{fixture}: {name} {field}"
                        );
                        compared += 1;
                    }
                }
                // SCSI error counters: not sent (see the module documentation).
                "smartctl_scsi_error_counter_log" => {}
                other => panic!("{fixture}: unknown measurement {other}"),
            }
        }
        compared
    }

    #[test]
    fn values_agree_with_telegrafs_on_every_device_fixture() {
        for (fixture, response, at_least) in [
            ("nvme", "devices/nvme/response.json", 17),
            ("megaraid", "devices/megaraid/response.json", 100),
            ("usb", "devices/usb/response.json", 55),
            ("usb_v2", "devices/usb/response.json", 55),
            ("scsi", "devices/scsi/response.json", 7),
            ("scsi_extended", "devices/scsi_extended/response.json", 5),
        ] {
            let compared = compare_with_telegraf(fixture, response);
            assert!(
                compared >= at_least,
                "{fixture}: only {compared} values compared"
            );
        }
    }

    #[test]
    fn scans_find_what_telegraf_finds() {
        // telegraf's `devices` and `excludes` options, as agent.toml writes them.
        for (fixture, settings) in [
            ("all", ""),
            ("include", r#"device_include = "^/dev/sda$""#),
            ("exclude", r#"device_exclude = "^/dev/nvme[01]$""#),
            ("megaraid", ""),
        ] {
            let helper = FakeHelper::default();
            helper.version(SMARTCTL_7).reply(
                &["scan", "json"],
                Reply::Output(0, shared(&format!("scan/{fixture}/response.json")), vec![]),
            );
            let scan = smartctl::parse_scan_json(&shared(&format!("scan/{fixture}/response.json")))
                .unwrap();
            for entry in &scan.devices {
                helper.reply(
                    &["read", "json", &entry.name, &entry.device_type],
                    Reply::Output(0, shared("devices/nvme/response.json"), vec![]),
                );
            }
            let config = SmartConfig::from_table(&toml::from_str(settings).unwrap()).unwrap();
            let out = collect(&mut collector(&helper, &Clock::new(), config));
            let expected: f64 = trimmed(shared(&format!("scan/{fixture}/expected.out")))
                .parse()
                .unwrap();
            assert_eq!(
                value(&out.samples, DEVICES, &[]),
                Some(expected),
                "{fixture}"
            );
            assert_eq!(out.events.len() as f64, expected, "{fixture}");
            assert_eq!(out.errors, Vec::<String>::new(), "{fixture}");
        }
    }

    #[test]
    fn megaraid_disks_get_distinct_labels() {
        let scan = smartctl::parse_scan_json(&shared("scan/megaraid/response.json")).unwrap();
        let labels: BTreeSet<String> = scan
            .devices
            .iter()
            .map(|d| device_label(&d.name, &d.device_type))
            .collect();
        assert_eq!(labels.len(), 10);
        assert!(labels.contains("bus_6_megaraid_14"), "{labels:?}");
        assert!(labels.contains("sdc"));
        assert_eq!(device_label("/dev/nvme0n1", "nvme"), "nvme0n1");
        assert_eq!(device_label("/dev/disk/by-id/ata-X", "sat"), "ata-X");
        assert_eq!(
            device_label("/dev/cciss/c0d0", "cciss,1"),
            "cciss_c0d0_cciss_1"
        );
    }

    // ---- smartctl 6.x text fixtures --------------------------------------------------------

    /// A helper answering with smartctl 6.x text for one text fixture's device.
    fn text_helper(fixture: &str) -> (FakeHelper, String) {
        let device = trimmed(text(&format!("devices/{fixture}/device")));
        let device_type = trimmed(text(&format!("devices/{fixture}/deviceType")));
        let status: i32 = trimmed(text(&format!("devices/{fixture}/exit_status")))
            .parse()
            .unwrap();
        let helper = FakeHelper::default();
        helper.version(SMARTCTL_6).reply(
            &["scan", "text"],
            Reply::Output(
                0,
                format!("{device} -d {device_type} # {device}, ATA device\n").into_bytes(),
                vec![],
            ),
        );
        helper.reply(
            &["read", "text", &device, &device_type],
            Reply::Output(
                status,
                text(&format!("devices/{fixture}/stdout.txt")),
                vec![],
            ),
        );
        (helper, device_label(&device, &device_type))
    }

    /// The golden form of one run: its events, then its samples.
    fn golden(out: &Output) -> String {
        let mut lines: Vec<String> = out
            .events
            .iter()
            .map(|e| format!("# event {} {} {}", e.check, e.state.as_str(), e.output))
            .collect();
        lines.extend(render(&out.samples));
        lines.join("\n") + "\n"
    }

    #[test]
    fn text_fixtures_give_their_expected_samples_and_events() {
        let mut names: Vec<String> = std::fs::read_dir(text_dir().join("devices"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            let (helper, _) = text_helper(&name);
            let out = collect(&mut collector(
                &helper,
                &Clock::new(),
                SmartConfig::default(),
            ));
            assert_eq!(out.errors, Vec::<String>::new(), "{name}");
            let got = golden(&out);
            let expected =
                String::from_utf8(text(&format!("devices/{name}/expected.prom"))).unwrap();
            if got != expected {
                panic!("{name}: samples differ from expected.prom:\n{got}");
            }
        }
    }

    /// Runs one collector over a JSON response and one over the text of the same disk.
    fn both_paths(fixture: &str) -> (Vec<String>, Vec<String>) {
        let (text_helper, _) = text_helper(fixture);
        let text_out = collect(&mut collector(
            &text_helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        let device = trimmed(text(&format!("devices/{fixture}/device")));
        let device_type = trimmed(text(&format!("devices/{fixture}/deviceType")));
        let response = shared(&format!("devices/{fixture}/response.json"));
        let status = smartctl::parse_json(&response)
            .unwrap()
            .exit_status
            .unwrap();
        let json_helper = FakeHelper::default();
        json_helper.version(SMARTCTL_7).reply(
            &["scan", "json"],
            Reply::Output(
                0,
                format!(r#"{{"json_format_version":[1,0],"devices":[{{"name":"{device}","type":"{device_type}","protocol":"ATA"}}]}}"#).into_bytes(),
                vec![],
            ),
        );
        json_helper.reply(
            &["read", "json", &device, &device_type],
            Reply::Output(i32::from(status), response, vec![]),
        );
        let json_out = collect(&mut collector(
            &json_helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(text_out.events, json_out.events, "{fixture}");
        (render(&text_out.samples), render(&json_out.samples))
    }

    #[test]
    fn json_and_text_of_the_same_nvme_disk_send_the_same_samples() {
        let (text, json) = both_paths("nvme");
        assert_eq!(text, json);
        assert!(text.len() > 15, "{text:?}");
    }

    #[test]
    fn json_and_text_of_the_same_ata_disk_send_the_same_samples() {
        let (text, json) = both_paths("megaraid");
        // The text path lacks only the raw values smartctl 6.x prints decoded.
        let missing: Vec<&String> = json.iter().filter(|s| !text.contains(s)).collect();
        let extra: Vec<&String> = text.iter().filter(|s| !json.contains(s)).collect();
        assert_eq!(extra, Vec::<&String>::new());
        assert_eq!(missing.len(), 4, "{missing:#?}");
        for line in missing {
            assert!(line.contains(r#"attribute_value_type="raw""#), "{line}");
            assert!(
                ["188", "190", "194", "240"]
                    .iter()
                    .any(|id| line.contains(&format!(r#"attribute_id="{id}""#))),
                "{line}"
            );
        }
    }

    // ---- the exit mask, events and the last good reading ----------------------------------

    /// A helper with one NVMe disk, answering `status` and `response` to reads.
    fn nvme_helper(status: i32, response: Vec<u8>) -> FakeHelper {
        let helper = FakeHelper::default();
        helper.version(SMARTCTL_7).reply(
            &["scan", "json"],
            Reply::Output(0, br#"{"json_format_version":[1,0],"devices":[{"name":"/dev/nvme0","type":"nvme","protocol":"NVMe"}]}"#.to_vec(), vec![]),
        );
        helper.reply(
            &["read", "json", "/dev/nvme0", "nvme"],
            Reply::Output(status, response, vec![]),
        );
        helper
    }

    fn set_read(helper: &FakeHelper, status: i32, response: Vec<u8>) {
        helper.reply(
            &["read", "json", "/dev/nvme0", "nvme"],
            Reply::Output(status, response, vec![]),
        );
    }

    fn states(out: &Output) -> Vec<CheckState> {
        out.events.iter().map(|e| e.state).collect()
    }

    #[test]
    fn a_healthy_disk_is_ok() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Ok]);
        let event = &out.events[0];
        assert_eq!(event.check, "smart:nvme0");
        assert_eq!(event.output, "/dev/nvme0: SMART health OK");
        assert_eq!((event.attempt, event.hard), (0, true));
        assert_eq!(event.duration, Duration::from_millis(120));
        let dev = [("device", "nvme0")];
        assert_eq!(value(&out.samples, EXIT_STATUS, &dev), Some(0.0));
        assert_eq!(value(&out.samples, STANDBY, &dev), Some(0.0));
        assert_eq!(value(&out.samples, READING_AGE, &dev), Some(0.0));
        assert_eq!(value(&out.samples, UNSAFE_SHUTDOWNS, &dev), Some(39.0));
        assert_eq!(
            helper.asked(),
            [
                vec!["version"],
                vec!["scan", "json"],
                vec!["read", "json", "/dev/nvme0", "nvme"]
            ]
        );
    }

    #[test]
    fn a_failing_disk_raises_a_critical_event() {
        let (helper, _) = text_helper("ata_failing");
        let mut collector = collector(&helper, &Clock::new(), SmartConfig::default());
        let out = collect(&mut collector);
        assert_eq!(states(&out), [CheckState::Critical]);
        let event = &out.events[0];
        assert_eq!(
            event.output,
            "/dev/sdc: SMART health check FAILED, the disk is failing"
        );
        assert!(
            event
                .long_output
                .contains("failing now: Raw_Read_Error_Rate, Reallocated_Sector_Ct"),
            "{}",
            event.long_output
        );
        assert_eq!(event.attempt, 1);
        assert_eq!(
            value(&out.samples, SMART_STATUS, &[("device", "sdc")]),
            Some(0.0)
        );
        // Still failing: the next event counts on.
        assert_eq!(collect(&mut collector).events[0].attempt, 2);
    }

    #[test]
    fn the_failing_bit_alone_is_critical() {
        let helper = nvme_helper(8, shared("devices/nvme/response.json"));
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Critical]);
        assert!(out.events[0].long_output.contains("DISK FAILING"));
    }

    #[test]
    fn prefail_attributes_at_threshold_warn() {
        let helper = nvme_helper(16, shared("devices/nvme/response.json"));
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Warning]);
    }

    #[test]
    fn an_nvme_critical_warning_warns() {
        let response = String::from_utf8(shared("devices/nvme/response.json"))
            .unwrap()
            .replace(r#""critical_warning": 0"#, r#""critical_warning": 4"#);
        let helper = nvme_helper(0, response.into_bytes());
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Warning]);
        assert_eq!(
            out.events[0].output,
            "/dev/nvme0: NVMe critical warning 0x04: reliability degraded"
        );
        assert_eq!(
            value(&out.samples, CRITICAL_WARNING, &[("device", "nvme0")]),
            Some(4.0)
        );
    }

    #[test]
    fn sticky_bits_warn_once_when_they_appear() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let mut collector = collector(&helper, &Clock::new(), SmartConfig::default());
        assert_eq!(states(&collect(&mut collector)), [CheckState::Ok]);
        set_read(&helper, 64, shared("devices/nvme/response.json"));
        let out = collect(&mut collector);
        assert_eq!(states(&out), [CheckState::Warning]);
        assert_eq!(
            out.events[0].output,
            "/dev/nvme0: new since the last reading: device error log contains records of errors"
        );
        // Still set, no longer news.
        assert_eq!(states(&collect(&mut collector)), [CheckState::Ok]);
        set_read(&helper, 64 | 128, shared("devices/nvme/response.json"));
        let out = collect(&mut collector);
        assert_eq!(states(&out), [CheckState::Warning]);
        assert!(
            out.events[0].output.contains("self-test log"),
            "{}",
            out.events[0].output
        );
    }

    #[test]
    fn sticky_bits_already_set_at_the_first_reading_do_not_warn() {
        let helper = nvme_helper(32 | 64 | 128, shared("devices/nvme/response.json"));
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Ok]);
        assert!(
            out.events[0].long_output.contains("error log"),
            "{}",
            out.events[0].long_output
        );
        assert_eq!(
            value(&out.samples, EXIT_STATUS, &[("device", "nvme0")]),
            Some(224.0)
        );
    }

    #[test]
    fn bit_two_alone_is_ok() {
        // MegaRAID's "This result is based on an Attribute check."
        let helper = nvme_helper(4, shared("devices/nvme/response.json"));
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Ok]);
    }

    const STANDBY_JSON: &str = r#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}],"exit_status":2},"device":{"name":"/dev/nvme0","type":"nvme","protocol":"NVMe"}}"#;

    #[test]
    fn a_sleeping_disk_is_left_asleep_and_keeps_its_last_good_reading() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let clock = Clock::new();
        let mut collector = collector(&helper, &clock, SmartConfig::default());
        let first = collect(&mut collector);
        clock.advance(Duration::from_secs(300));
        set_read(&helper, 2, STANDBY_JSON.as_bytes().to_vec());
        let second = collect(&mut collector);
        assert_eq!(second.events, []);
        assert_eq!(second.errors, Vec::<String>::new());
        let dev = [("device", "nvme0")];
        assert_eq!(value(&second.samples, STANDBY, &dev), Some(1.0));
        assert_eq!(value(&second.samples, READING_AGE, &dev), Some(300.0));
        assert_eq!(value(&second.samples, EXIT_STATUS, &dev), Some(2.0));
        // Every sample of the reading is sent again, unchanged.
        let reading = |out: &Output| -> Vec<String> {
            render(&out.samples)
                .into_iter()
                .filter(|l| {
                    ![STANDBY, READING_AGE, EXIT_STATUS]
                        .iter()
                        .any(|n| l.starts_with(&format!("{n}{{")))
                })
                .collect()
        };
        assert_eq!(reading(&second), reading(&first));
        // Awake again: a fresh reading.
        clock.advance(Duration::from_secs(300));
        set_read(&helper, 0, shared("devices/nvme/response.json"));
        let third = collect(&mut collector);
        assert_eq!(value(&third.samples, READING_AGE, &dev), Some(0.0));
        assert_eq!(value(&third.samples, STANDBY, &dev), Some(0.0));
    }

    #[test]
    fn a_disk_asleep_since_the_start_sends_only_its_exit_status() {
        let helper = nvme_helper(2, STANDBY_JSON.as_bytes().to_vec());
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(out.events, []);
        assert_eq!(
            render(&out.samples),
            [
                "smartctl_devices{} 1",
                r#"smartctl_device_smartctl_exit_status{device="nvme0"} 2"#
            ]
        );
    }

    #[test]
    fn a_failed_read_is_unknown_and_keeps_the_last_good_reading() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let clock = Clock::new();
        let mut collector = collector(&helper, &clock, SmartConfig::default());
        collect(&mut collector);
        clock.advance(Duration::from_secs(60));
        let gone = br#"{"json_format_version":[1,0],"smartctl":{"messages":[{"string":"Smartctl open device: /dev/nvme0 failed: No such device","severity":"error"}],"exit_status":2}}"#;
        set_read(&helper, 2, gone.to_vec());
        let out = collect(&mut collector);
        assert_eq!(states(&out), [CheckState::Unknown]);
        assert_eq!(
            out.errors,
            [
                "smartctl could not read /dev/nvme0 (nvme): Smartctl open device: /dev/nvme0 failed: No such device"
            ]
        );
        let dev = [("device", "nvme0")];
        assert_eq!(value(&out.samples, READING_AGE, &dev), Some(60.0));
        assert_eq!(value(&out.samples, MEDIA_ERRORS, &dev), Some(0.0));
        // A timeout is a failed read too.
        helper.reply(&["read", "json", "/dev/nvme0", "nvme"], Reply::TimedOut);
        let out = collect(&mut collector);
        assert_eq!(states(&out), [CheckState::Unknown]);
        assert_eq!(out.events[0].attempt, 2);
        assert!(out.errors[0].contains("timed out"), "{:?}", out.errors);
    }

    #[test]
    fn output_that_does_not_parse_is_a_failed_read() {
        let helper = nvme_helper(0, b"{\"json_format_version\":[1,0],\"smartctl\":".to_vec());
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(states(&out), [CheckState::Unknown]);
        assert!(
            out.errors[0].contains("cannot read smartctl's output"),
            "{:?}",
            out.errors
        );
        // The helper's own refusal comes on standard error.
        helper.reply(
            &["read", "json", "/dev/nvme0", "nvme"],
            Reply::Output(
                1,
                vec![],
                b"sysward-smart: refused device \"/dev/nvme0\"\n".to_vec(),
            ),
        );
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert!(
            out.errors[0].ends_with("sysward-smart: refused device \"/dev/nvme0\""),
            "{:?}",
            out.errors
        );
    }

    #[test]
    fn without_the_helper_the_collector_says_why_once() {
        let helper = FakeHelper::default();
        helper.reply(&["version"], Reply::Missing);
        let mut collector = collector(&helper, &Clock::new(), SmartConfig::default());
        let out = collect(&mut collector);
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0]
                .starts_with("SMART is off: cannot run the helper /usr/lib/sysward/sysward-smart"),
            "{}",
            out.errors[0]
        );
        assert_eq!((out.samples.len(), out.events.len()), (0, 0));
        for _ in 0..3 {
            let out = collect(&mut collector);
            assert_eq!(
                (out.errors.len(), out.samples.len(), out.events.len()),
                (0, 0, 0)
            );
        }
        // Installed later: it starts without a restart.
        helper.version(SMARTCTL_7).reply(
            &["scan", "json"],
            Reply::Output(0, br#"{"json_format_version":[1,0]}"#.to_vec(), vec![]),
        );
        let out = collect(&mut collector);
        assert_eq!(render(&out.samples), ["smartctl_devices{} 0"]);
    }

    #[test]
    fn a_helper_removed_later_turns_smart_off_once() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let mut collector = collector(&helper, &Clock::new(), SmartConfig::default());
        assert_eq!(states(&collect(&mut collector)), [CheckState::Ok]);
        helper.reply(&["read", "json", "/dev/nvme0", "nvme"], Reply::Missing);
        helper.reply(&["version"], Reply::Missing);
        let out = collect(&mut collector);
        assert_eq!(out.events, []);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(out.errors[0].starts_with("SMART is off: cannot run the helper"));
        let out = collect(&mut collector);
        assert_eq!((out.errors.len(), out.events.len()), (0, 0));
    }

    #[test]
    fn a_failed_scan_sends_no_device_count() {
        let helper = FakeHelper::default();
        helper.version(SMARTCTL_7).reply(
            &["scan", "json"],
            Reply::Output(1, b"garbage".to_vec(), vec![]),
        );
        let out = collect(&mut collector(
            &helper,
            &Clock::new(),
            SmartConfig::default(),
        ));
        assert_eq!(out.samples, []);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(
            out.errors[0].starts_with("smartctl --scan-open: "),
            "{:?}",
            out.errors
        );
    }

    #[test]
    fn without_smartctl_the_collector_says_why_once() {
        let helper = FakeHelper::default();
        helper.reply(
            &["version"],
            Reply::Output(1, vec![], b"sysward-smart: smartctl not found (looked in /usr/sbin/smartctl, /sbin/smartctl); install smartmontools\n".to_vec()),
        );
        let mut collector = collector(&helper, &Clock::new(), SmartConfig::default());
        let out = collect(&mut collector);
        assert_eq!(
            out.errors,
            [
                "SMART is off: smartctl --version failed: sysward-smart: smartctl not found (looked in /usr/sbin/smartctl, /sbin/smartctl); install smartmontools"
            ]
        );
        assert_eq!(collect(&mut collector).errors, Vec::<String>::new());
    }

    #[test]
    fn devices_that_cannot_be_opened_are_named_once() {
        let helper = FakeHelper::default();
        helper.version(SMARTCTL_6).reply(
            &["scan", "text"],
            Reply::Output(0, text("scan/open_failed.txt"), vec![]),
        );
        helper.reply(
            &["read", "text", "/dev/sda", "sat"],
            Reply::Output(0, text("devices/ata_ssd/stdout.txt"), vec![]),
        );
        helper.reply(
            &["read", "text", "/dev/nvme0", "nvme"],
            Reply::Output(0, text("devices/nvme/stdout.txt"), vec![]),
        );
        let clock = Clock::new();
        let config =
            SmartConfig::from_table(&toml::from_str(r#"rescan_interval = "1m""#).unwrap()).unwrap();
        let mut collector = collector(&helper, &clock, config);
        let out = collect(&mut collector);
        assert_eq!(
            out.errors,
            ["smartctl cannot open /dev/sdb (scsi): Permission denied"]
        );
        assert_eq!(states(&out), [CheckState::Ok, CheckState::Ok]);
        assert_eq!(value(&out.samples, DEVICES, &[]), Some(2.0));
        clock.advance(Duration::from_secs(61));
        let out = collect(&mut collector);
        assert_eq!(out.errors, Vec::<String>::new());
        assert!(helper.asked().iter().filter(|a| a[0] == "scan").count() == 2);
    }

    #[test]
    fn the_device_list_is_renewed_on_its_interval_only() {
        let helper = nvme_helper(0, shared("devices/nvme/response.json"));
        let clock = Clock::new();
        let mut collector = collector(&helper, &clock, SmartConfig::default());
        collect(&mut collector);
        helper.asked();
        clock.advance(Duration::from_secs(3599));
        collect(&mut collector);
        assert_eq!(helper.asked(), [vec!["read", "json", "/dev/nvme0", "nvme"]]);
        clock.advance(Duration::from_secs(1));
        // The disk is gone: its state goes with it.
        helper.reply(
            &["scan", "json"],
            Reply::Output(0, br#"{"json_format_version":[1,0]}"#.to_vec(), vec![]),
        );
        let out = collect(&mut collector);
        assert_eq!(render(&out.samples), ["smartctl_devices{} 0"]);
        assert_eq!(helper.asked(), [vec!["scan", "json"]]);
    }

    #[test]
    fn devices_past_the_budget_are_read_first_next_time() {
        let helper = FakeHelper {
            delay: Duration::from_millis(100),
            ..FakeHelper::default()
        };
        let devices: Vec<String> = (0..5)
            .map(|i| format!("/dev/sd{}", (b'a' + i) as char))
            .collect();
        let scan = devices
            .iter()
            .map(|d| format!(r#"{{"name":"{d}","type":"sat","protocol":"ATA"}}"#))
            .collect::<Vec<_>>()
            .join(",");
        helper.reply(
            &["version"],
            Reply::Output(0, SMARTCTL_7.as_bytes().to_vec(), vec![]),
        );
        helper.reply(
            &["scan", "json"],
            Reply::Output(
                0,
                format!(r#"{{"json_format_version":[1,0],"devices":[{scan}]}}"#).into_bytes(),
                vec![],
            ),
        );
        for device in &devices {
            helper.reply(
                &["read", "json", device, "sat"],
                Reply::Output(0, shared("devices/usb/response.json"), vec![]),
            );
        }
        // Version and scan take 200 ms of the budget.
        let settings = "run_budget = \"450ms\"\ncommand_timeout = \"5s\"";
        let config = SmartConfig::from_table(&toml::from_str(settings).unwrap()).unwrap();
        let mut collector = collector(&helper, &Clock::new(), config);
        let read = |asked: Vec<Vec<String>>| -> Vec<String> {
            asked
                .into_iter()
                .filter(|a| a[0] == "read")
                .map(|a| a[2].clone())
                .collect()
        };
        let out = collect(&mut collector);
        let first = read(helper.asked());
        assert!(!first.is_empty() && first.len() < 5, "{first:?}");
        assert_eq!(
            out.events.len(),
            first.len() - usize::from(out.events.len() < first.len())
        );
        assert_eq!(out.errors, Vec::<String>::new());
        collect(&mut collector);
        let second = read(helper.asked());
        // The next run starts where the last one stopped (the device cut short by the
        // budget is asked again first).
        let resume = first.len() - 1
            + usize::from(!second.is_empty() && second[0] != first[first.len() - 1]);
        assert_eq!(
            second.first(),
            devices.get(resume % 5),
            "{first:?} then {second:?}"
        );
    }

    #[test]
    fn the_registry_row_runs_the_intensive_tier() {
        let spec = crate::REGISTRY.iter().find(|s| s.name == "smart").unwrap();
        assert_eq!(spec.default_tier, crate::Tier::Intensive);
        assert!(spec.default_enabled);
        let built =
            (spec.configure)(&crate::CollectorContext::default(), &toml::Table::new()).unwrap();
        assert_eq!(built.name(), "smart");
    }

    #[test]
    fn the_default_helper_is_the_packaged_one_or_the_one_beside_the_binary() {
        let runner = HelperRunner::new(None, 1024);
        let helper = runner.helper();
        let exe = std::env::current_exe().unwrap();
        // Beside this test binary, or beside the build's binaries one directory up.
        let beside: Vec<PathBuf> = exe
            .ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join("sysward-smart"))
            .collect();
        assert!(
            helper == Path::new(DEFAULT_HELPER) || beside.contains(&helper),
            "{}",
            helper.display()
        );
        let configured = HelperRunner::new(Some(PathBuf::from("/opt/x/sysward-smart")), 1024);
        assert_eq!(configured.helper(), Path::new("/opt/x/sysward-smart"));
    }

    fn settings(text: &str) -> Result<SmartConfig, String> {
        SmartConfig::from_table(&toml::from_str(text).expect("valid TOML"))
    }

    #[test]
    fn every_setting_is_read() {
        let config = settings(
            "helper = \"/opt/sysward/sysward-smart\"\n\
             device_include = \"^/dev/sd\"\n\
             device_exclude = \"^/dev/sdb$\"\n\
             command_timeout = \"2s\"\n\
             run_budget = \"20s\"\n\
             rescan_interval = \"10m\"",
        )
        .unwrap();
        assert_eq!(
            config.helper,
            Some(PathBuf::from("/opt/sysward/sysward-smart"))
        );
        assert!(config.devices.passes("/dev/sda"));
        assert!(!config.devices.passes("/dev/sdb"));
        assert!(!config.devices.passes("/dev/nvme0"));
        assert_eq!(config.command_timeout, Duration::from_secs(2));
        assert_eq!(config.run_budget, Duration::from_secs(20));
        assert_eq!(config.rescan_interval, Duration::from_secs(600));
        assert_eq!(
            format!("{:?}", settings("").unwrap()),
            format!("{:?}", SmartConfig::default())
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_configured_helper_is_the_one_run() {
        let mut collector = crate::testing::configured(
            "smart",
            &Roots::default(),
            "helper = \"/nonexistent/sysward/sysward-smart\"",
        )
        .unwrap();
        let mut out = Output::default();
        collector.collect(&mut out).unwrap();
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(
            out.errors[0].contains("cannot run the helper /nonexistent/sysward/sysward-smart"),
            "{}",
            out.errors[0]
        );
    }

    #[test]
    fn the_command_timeout_setting_cuts_a_slow_smartctl() {
        let helper = FakeHelper {
            delay: Duration::from_millis(300),
            ..FakeHelper::default()
        };
        helper.version(SMARTCTL_7);
        let config = settings("command_timeout = \"20ms\"").unwrap();
        let started = Instant::now();
        let out = collect(&mut collector(&helper, &Clock::new(), config));
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(
            out.errors[0].starts_with("smartctl --version"),
            "{}",
            out.errors[0]
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            settings("helper = \"sysward-smart\"").unwrap_err(),
            "bad setting `helper` for collector smart: \"sysward-smart\" is not an absolute path"
        );
        assert_eq!(
            settings("run_budget = \"0s\"").unwrap_err(),
            "bad setting `run_budget` for collector smart: must be more than 0 (e.g. \"5s\")"
        );
        assert_eq!(
            settings("command_timeout = \"0ms\"").unwrap_err(),
            "bad setting `command_timeout` for collector smart: must be more than 0 (e.g. \"5s\")"
        );
        assert_eq!(
            settings("rescan_interval = \"soon\"").unwrap_err(),
            "bad setting `rescan_interval` for collector smart: \"soon\" is not a duration \
             (expected e.g. \"30s\", \"5m\")"
        );
        assert!(
            settings("devices = \"sda\"")
                .unwrap_err()
                .starts_with("unknown setting `devices` for collector smart (allowed: helper, ")
        );
    }
}
