//! The built helper, run as the collector runs it.

mod common;

use std::process::{Command, Output};

use sysward_platform::smartctl::{ExitStatus, parse_json, parse_scan_json};

use common::smartctl_installed;

fn helper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sysward-smart"))
        .args(args)
        .env_clear()
        .output()
        .expect("run sysward-smart")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn requests_outside_the_template_are_refused() {
    for args in [
        &[][..],
        &["--all", "/dev/sda"],
        &["read", "json", "/dev/sda", "sat", "--smart=off"],
        &["scan", "--json"],
        &["test"],
    ] {
        let output = helper(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let message = stderr(&output);
        assert!(message.starts_with("sysward-smart: "), "{message}");
        assert!(message.contains("usage: sysward-smart"), "{message}");
    }
}

#[test]
fn devices_outside_the_known_shapes_are_refused() {
    for (device, device_type) in [
        ("/dev/mem", "sat"),
        ("/etc/shadow", "sat"),
        ("/dev/sda1", "sat"),
        ("/dev/../dev/sda", "sat"),
        ("/dev/sda", "test"),
        ("/dev/sda", "sat;reboot"),
    ] {
        let output = helper(&["read", "json", device, device_type]);
        assert_eq!(output.status.code(), Some(1), "{device} {device_type}");
        let message = stderr(&output);
        assert!(
            message.starts_with("sysward-smart: refused device"),
            "{message}"
        );
    }
}

#[test]
fn version_runs_smartctl_or_says_it_is_missing() {
    let output = helper(&["version"]);
    if smartctl_installed() {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.starts_with("smartctl "), "{text}");
    } else {
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("smartctl not found"),
            "{}",
            stderr(&output)
        );
    }
}

/// The real smartctl's scan, whatever this machine has (usually no disks in a VM):
/// it must parse.
#[test]
fn the_real_scan_parses() {
    if !smartctl_installed() {
        return;
    }
    let output = helper(&["scan", "json"]);
    let status = output.status.code().expect("exit status");
    assert!(
        !ExitStatus(status as u8).tool_failed(),
        "{status}: {}",
        stderr(&output)
    );
    let scan = parse_scan_json(&output.stdout).expect("smartctl's scan JSON parses");
    for device in scan.devices {
        assert!(device.name.starts_with("/dev/"), "{device:?}");
    }
    let text = helper(&["scan", "text"]);
    assert_eq!(text.status.code(), Some(status));
    sysward_platform::smartctl::parse_scan_text(&text.stdout).expect("text scan parses");
}

/// A read of a device that is not there: smartctl's open fails (bit 1) and says so.
#[test]
fn the_real_read_of_a_missing_device_fails_cleanly() {
    if !smartctl_installed() {
        return;
    }
    let output = helper(&["read", "json", "/dev/sdzzz", "sat"]);
    let status = ExitStatus(output.status.code().expect("exit status") as u8);
    assert!(status.has(ExitStatus::DEVICE_OPEN), "{status:?}");
    let reading = parse_json(&output.stdout).expect("JSON even on failure");
    assert!(
        reading.messages.iter().any(|m| m.contains("/dev/sdzzz")),
        "{:?}",
        reading.messages
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let argv = value["smartctl"]["argv"].as_array().unwrap();
    assert_eq!(
        argv.iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>(),
        [
            "smartctl",
            "--json",
            "--all",
            "--nocheck=standby",
            "--device=sat",
            "/dev/sdzzz"
        ]
    );
}
