//! The whole SMART chain: the `smart` collector runs this crate's built helper, which runs
//! the real smartctl. Where smartmontools is missing these tests fail under `CI` and are
//! skipped, saying why, elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use sysward_collectors::smart::{
    DEVICES, EXIT_STATUS, HelperRunner, SmartCollector, SmartConfig, SmartctlRunner,
};
use sysward_collectors::{CheckState, Collector, Output};
use sysward_platform::smartctl::{Format, Request, RunError, RunOutput};

use common::smartctl_installed;

fn config() -> SmartConfig {
    SmartConfig {
        helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_sysward-smart"))),
        ..SmartConfig::default()
    }
}

fn device_count(out: &Output) -> f64 {
    out.samples
        .iter()
        .find(|s| s.name == DEVICES)
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("no {DEVICES}: the scan failed: {:?}", out.errors))
}

/// What this machine's disks are is its own (a VM usually has none smartctl lists): what
/// every machine gives is a scan that succeeds and a reading or an error per device.
#[test]
fn the_collector_scans_through_the_helper_and_the_real_smartctl() {
    if !smartctl_installed() {
        return;
    }
    let mut collector = SmartCollector::with_config(config());
    let mut out = Output::default();
    collector.collect(&mut out).expect("collects");
    let devices = device_count(&out);
    for error in &out.errors {
        assert!(
            !error.starts_with("SMART is off") && !error.contains("--scan-open"),
            "{error}"
        );
    }
    assert!(
        out.events.len() as f64 <= devices,
        "an event per device read at most: {:?}",
        out.events
    );
    for event in &out.events {
        assert!(event.check.starts_with("smart:"), "{}", event.check);
    }
}

/// The real helper and smartctl, with devices added to the devices the real scan found,
/// since no scan finds a missing disk.
struct ScanAlso {
    helper: HelperRunner,
    extra: Vec<(&'static str, &'static str)>,
}

impl SmartctlRunner for ScanAlso {
    fn run(&mut self, request: &Request, timeout: Duration) -> Result<RunOutput, RunError> {
        let mut output = self.helper.run(request, timeout)?;
        if *request == Request::Scan(Format::Json) {
            let mut scan: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("smartctl's scan JSON");
            let devices = scan
                .as_object_mut()
                .expect("an object")
                .entry("devices")
                .or_insert_with(|| serde_json::json!([]))
                .as_array_mut()
                .expect("an array");
            for (name, device_type) in &self.extra {
                devices.push(serde_json::json!({
                    "name": name,
                    "info_name": name,
                    "type": device_type,
                    "protocol": "ATA",
                }));
            }
            output.stdout = serde_json::to_vec(&scan).expect("JSON");
        }
        Ok(output)
    }
}

#[test]
fn missing_and_refused_devices_are_named_and_the_others_still_read() {
    if !smartctl_installed() {
        return;
    }
    let config = config();
    let runner = ScanAlso {
        helper: HelperRunner::new(config.helper.clone(), config.max_output),
        // Two missing disks, so that the second is read after the first failed; and a
        // path the helper never reads, refused before the helper runs.
        extra: vec![
            ("/dev/sdzzy", "sat"),
            ("/dev/mem", "sat"),
            ("/dev/sdzzz", "sat"),
        ],
    };
    let mut collector = SmartCollector::with_runner(config, Box::new(runner));
    let mut out = Output::default();
    collector.collect(&mut out).expect("collects");
    let mut plain = Output::default();
    SmartCollector::with_config(self::config())
        .collect(&mut plain)
        .expect("collects");
    assert_eq!(
        device_count(&out),
        device_count(&plain) + 2.0,
        "the two missing disks are listed, /dev/mem is not"
    );
    assert!(
        out.errors.iter().any(|e| e.starts_with(
            "not reading /dev/mem: refused device \"/dev/mem\": not a disk device path"
        )),
        "{:?}",
        out.errors
    );
    for (path, label) in [("/dev/sdzzy", "sdzzy"), ("/dev/sdzzz", "sdzzz")] {
        // smartctl's own words: "Smartctl open device: /dev/sdzzz [SAT] failed: No such
        // device".
        let error = out
            .errors
            .iter()
            .find(|e| e.starts_with(&format!("smartctl could not read {path} (sat): ")))
            .unwrap_or_else(|| panic!("no error for {path}: {:?}", out.errors));
        assert!(error.contains(&format!("open device: {path}")), "{error}");
        let event = out
            .events
            .iter()
            .find(|e| e.check == format!("smart:{label}"))
            .unwrap_or_else(|| panic!("no event for {path}: {:?}", out.events));
        assert_eq!(event.state, CheckState::Unknown, "{}", event.output);
        assert!(
            event
                .output
                .starts_with(&format!("smartctl could not read {path}: ")),
            "{}",
            event.output
        );
        let status = out
            .samples
            .iter()
            .find(|s| s.name == EXIT_STATUS && s.labels.iter().any(|(_, v)| v == label))
            .unwrap_or_else(|| panic!("no exit status for {path}"));
        assert_eq!(status.value, 2.0, "bit 1: the device could not be opened");
    }
    assert_eq!(
        out.events.len(),
        plain.events.len() + 2,
        "the real devices are read as without the missing ones"
    );
}
