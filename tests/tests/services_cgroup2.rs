//! The `services` collector on a real cgroup v2 tree: a minimal Debian root booted with
//! systemd-nspawn on the unified hierarchy (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`, which
//! nspawn honours on a host of any layout, hybrid and v1 ones included), and the agent's
//! `collect --once` run inside it. The collector's unit tests read a fixture tree; this
//! one checks the fixture's assumptions against a kernel's and a systemd's.
//!
//! Needs root, systemd-nspawn and nsenter, and the root file system that
//! `packaging/systemd-test.sh` makes once (made here the same way when it is missing,
//! with debootstrap). The container boots in about a second. Elsewhere the test says it
//! did not run, rather than passing in silence, and fails under `CI`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sysward_tests::bin;

/// How long the container may take to boot.
const DEADLINE: Duration = Duration::from_secs(120);

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite(base: &Path) -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root {
        return Some("it boots a container: it needs root".into());
    }
    let mut tools = vec!["systemd-nspawn", "nsenter"];
    if !base.join(".complete").exists() {
        tools.push("debootstrap");
    }
    tools
        .into_iter()
        .find(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|tool| format!("{tool} is missing (apt-get install debootstrap systemd-container)"))
}

/// The Debian root packaging/systemd-test.sh uses, made as it makes it when missing.
fn debian_root(base: &Path) {
    if base.join(".complete").exists() {
        return;
    }
    let _ = fs::remove_dir_all(base);
    fs::create_dir_all(base.parent().unwrap()).unwrap();
    let mirror = std::env::var("SYSWARD_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            "bookworm",
        ])
        .arg(base)
        .arg(mirror)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "debootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(base.join(".complete"), b"").unwrap();
}

/// A booted container, powered off on drop.
struct Container {
    nspawn: Option<Child>,
    /// The container's PID 1 as this namespace sees it.
    leader: u32,
    dir: tempfile::TempDir,
}

impl Container {
    /// Boots a copy of `base` with `agent` in `/usr/local/bin`, and returns once its
    /// systemd has finished starting up.
    fn boot(base: &Path, agent: &Path) -> Container {
        let dir = tempfile::Builder::new()
            .prefix("sysward-cgroup2-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let root = dir.path().join("root");
        let copy = Command::new("cp")
            .arg("-a")
            .arg(base)
            .arg(&root)
            .status()
            .unwrap();
        assert!(copy.success(), "cp -a {}", base.display());
        fs::copy(agent, root.join("usr/local/bin/sysward-agent")).unwrap();

        // nspawn reports on $NOTIFY_SOCKET as it would to a service manager: the leader's
        // pid once the container runs, READY=1 once the container's systemd says it.
        let socket_path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let log = fs::File::create(dir.path().join("nspawn.log")).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&root)
            .args([
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--boot",
                "--console=passive",
                "--notify-ready=yes",
            ])
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut container = Container {
            nspawn: Some(nspawn),
            leader: 0,
            dir,
        };
        let deadline = Instant::now() + DEADLINE;
        let mut ready = false;
        let mut buf = [0u8; 4096];
        while !(ready && container.leader != 0) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the container did not boot: {}",
                container.log()
            );
            socket.set_read_timeout(Some(left)).unwrap();
            let Ok(len) = socket.recv(&mut buf) else {
                panic!("the container did not boot: {}", container.log());
            };
            for line in String::from_utf8_lossy(&buf[..len]).lines() {
                if let Some(pid) = line.strip_prefix("X_NSPAWN_LEADER_PID=") {
                    container.leader = pid.parse().unwrap();
                }
                ready |= line == "READY=1";
                assert!(
                    !line.starts_with("ERRNO="),
                    "nspawn failed: {}",
                    container.log()
                );
            }
        }
        // READY=1 may come before the boot transaction is done; this waits for it.
        let state = container.inside(&["systemctl", "is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd: {state}"
        );
        container
    }

    /// Runs `command` in the container's namespaces.
    fn inside(&self, command: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a"])
            .args(command)
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("nspawn.log")).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let Some(mut nspawn) = self.nspawn.take() else {
            return;
        };
        // SIGTERM makes nspawn power the container off, then exit; a second one, sent
        // when the shutdown hangs, makes it terminate the container at once.
        let pid = Pid::from_raw(nspawn.id() as i32);
        let (done, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = nspawn.wait();
            let _ = done.send(());
        });
        for wait in [Duration::from_secs(30), Duration::from_secs(10)] {
            let _ = kill(pid, Signal::SIGTERM);
            if exited.recv_timeout(wait).is_ok() {
                return;
            }
        }
        // Pid 0 would be this process's own group: the leader only once it is known.
        if self.leader != 0 {
            let _ = kill(Pid::from_raw(self.leader as i32), Signal::SIGKILL);
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// The value of `series` (its name and labels as the exposition prints them) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn services_reads_a_real_cgroup_v2_tree() {
    let base = std::env::var_os("SYSWARD_NSPAWN_BASE").map_or_else(
        || PathBuf::from("/var/tmp/sysward-nspawn/bookworm"),
        PathBuf::from,
    );
    if let Some(why) = missing_prerequisite(&base) {
        let why = format!("the cgroup v2 test {why}");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("NOT RUN: {why}");
        return;
    }
    // Each run boots its own copy of the root, so runs need no lock between them.
    debian_root(&base);
    let container = Container::boot(&base, &bin("sysward-agent"));

    let controllers = container.inside(&["cat", "/sys/fs/cgroup/cgroup.controllers"]);
    assert!(
        controllers.status.success(),
        "no cgroup v2 root in the container"
    );
    let controllers = String::from_utf8_lossy(&controllers.stdout).into_owned();
    let out = container.inside(&["/usr/local/bin/sysward-agent", "collect", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    println!("controllers: {controllers:?}\n{errors}");
    assert!(
        !errors.contains("collector services:"),
        "the services collector failed in part:\n{errors}"
    );

    // Services every minimal Debian boots, directly in system.slice.
    for unit in [
        "dbus.service",
        "systemd-journald.service",
        "systemd-logind.service",
    ] {
        let cpu = |mode: &str| {
            value(
                &text,
                &format!(
                    "systemd_unit_cpu_seconds_total{{mode=\"{mode}\",name=\"{unit}\",type=\"service\"}}"
                ),
            )
            .unwrap_or_else(|| panic!("no {mode} CPU time of {unit}:\n{text}"))
        };
        // In whole microseconds, as cpu.stat has them: sums of decimal seconds could
        // differ from the kernel's sum in the last bit.
        let ours = (cpu("user") * 1e6).round() as u64 + (cpu("system") * 1e6).round() as u64;
        // systemd reads the same cpu.stat, later: at least as much, in nanoseconds.
        let show = container.inside(&["systemctl", "show", "-P", "CPUUsageNSec", unit]);
        let theirs = String::from_utf8_lossy(&show.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("CPUUsageNSec of {unit}: {show:?}"))
            / 1000;
        assert!(
            ours > 0 && ours <= theirs,
            "{unit}: ours {ours} µs, systemd's {theirs} µs"
        );
        // PSI is on in every kernel this runs on; a cgroup has it whatever its controllers.
        let pressure =
            format!("sysward_service_pressure_cpu_waiting_seconds_total{{name=\"{unit}\"}}");
        assert!(value(&text, &pressure).is_some(), "no {pressure}:\n{text}");
        // Memory and tasks only where the host lets the container's tree have their
        // controllers (a host in systemd's hybrid layout keeps them in cgroup v1).
        for (controller, series) in [
            (
                "memory",
                format!("systemd_unit_memory_bytes{{name=\"{unit}\",type=\"service\"}}"),
            ),
            (
                "pids",
                format!("systemd_unit_tasks_current{{name=\"{unit}\"}}"),
            ),
        ] {
            let enabled = controllers.split_whitespace().any(|c| c == controller);
            assert_eq!(
                value(&text, &series).is_some(),
                enabled,
                "{series} with controllers {controllers:?}:\n{text}"
            );
        }
    }
    assert_eq!(
        value(&text, "sysward_service_units_dropped_total"),
        Some(0.0)
    );
}
