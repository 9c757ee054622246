//! `cpu`: time per CPU and mode, and the kernel's activity counters, from `/proc/stat`.
//!
//! Names, labels and units are node_exporter's (its `cpu` and `stat` collectors, merged
//! here because they read the same file): CPU times in seconds, converted from ticks of
//! `USER_HZ` = 100 as node_exporter assumes; per-CPU series only, since the all-CPU line is
//! their sum. Guest time is also counted in `user` and `nice`, as the kernel counts it;
//! `node_cpu_guest_seconds_total` shows it separately.
//!
//! It also sends the CPU and IRQ pressure totals of `/proc/pressure` (node_exporter's
//! `pressure` collector), where the kernel has them.
//!
//! Between runs the collector keeps the values it last sent for each CPU, to apply
//! node_exporter's guard against counters that step backwards (see `keep_monotonic`).

use std::collections::BTreeMap;

use sysward_platform::{CpuTimes, Roots, Stat, USER_HZ};

use crate::{CollectError, Collector, Kind, Output, Sample, psi};

/// Seconds each CPU spent in each mode (counter; labels `cpu`, `mode`).
pub const CPU_SECONDS: &str = "node_cpu_seconds_total";
/// Seconds each CPU spent running guests (counter; labels `cpu`, `mode` = `user`|`nice`).
pub const CPU_GUEST_SECONDS: &str = "node_cpu_guest_seconds_total";
/// Context switches since boot (counter).
pub const CONTEXT_SWITCHES: &str = "node_context_switches_total";
/// Interrupts serviced since boot (counter).
pub const INTERRUPTS: &str = "node_intr_total";
/// Forks since boot (counter).
pub const FORKS: &str = "node_forks_total";
/// Boot time in seconds since the Unix epoch (gauge).
pub const BOOT_TIME: &str = "node_boot_time_seconds";
/// Threads runnable now (gauge).
pub const PROCS_RUNNING: &str = "node_procs_running";
/// Threads blocked on I/O now (gauge).
pub const PROCS_BLOCKED: &str = "node_procs_blocked";

/// Seconds in which some runnable task waited for a CPU (counter).
pub const PRESSURE_CPU_WAITING: &str = "node_pressure_cpu_waiting_seconds_total";
/// Seconds in which all tasks were stalled by IRQ handling (counter).
pub const PRESSURE_IRQ_STALLED: &str = "node_pressure_irq_stalled_seconds_total";

/// How far idle time must fall before a CPU is taken to have been re-plugged
/// (node_exporter's `jumpBackSeconds`, 3 s).
const JUMP_BACK_TICKS: u64 = 3 * USER_HZ;

/// Reads `/proc/stat` under its roots.
#[derive(Debug)]
pub struct CpuCollector {
    roots: Roots,
    /// The times last sent per CPU, kept for [`keep_monotonic`].
    sent: BTreeMap<u32, CpuTimes>,
}

impl CpuCollector {
    /// A collector reading `stat` under `roots.proc`.
    pub fn new(roots: Roots) -> Self {
        Self {
            roots,
            sent: BTreeMap::new(),
        }
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let stat = sysward_platform::read_stat(&self.roots)?;
        let path = self.roots.proc.join(Stat::FILE);
        for skipped in &stat.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        keep_monotonic(&mut self.sent, &stat.cpus);
        push_cpu_times(&self.sent, out);
        push_activity(&stat, out);
        // As node_exporter: no CPU `full`, which the kernel prints since 5.13 for the
        // sake of cgroups and which is always zero system-wide; IRQ has only `full`.
        psi::push_pressure(&self.roots, "cpu", Some(PRESSURE_CPU_WAITING), None, out);
        psi::push_pressure(&self.roots, "irq", None, Some(PRESSURE_IRQ_STALLED), out);
        Ok(())
    }
}

/// Folds a new reading into the times last sent, as node_exporter does.
///
/// Some kernels and hypervisors let a per-CPU counter step back by a tick or two, and a
/// counter that decreases looks like a reset to `rate()`, which then reports a huge
/// spike. So each mode holds its highest value. Idle falling by [`JUMP_BACK_TICKS`] or
/// more is no jitter but a CPU that was unplugged and plugged back with fresh counters:
/// that CPU starts over from the new values.
fn keep_monotonic(sent: &mut BTreeMap<u32, CpuTimes>, read: &BTreeMap<u32, CpuTimes>) {
    // An offline CPU has no line; forgetting it ends its series instead of repeating its
    // last values for ever.
    sent.retain(|cpu, _| read.contains_key(cpu));
    for (cpu, new) in read {
        let old = sent.entry(*cpu).or_default();
        if old.idle.saturating_sub(new.idle) >= JUMP_BACK_TICKS {
            *old = CpuTimes::default();
        }
        *old = CpuTimes {
            user: old.user.max(new.user),
            nice: old.nice.max(new.nice),
            system: old.system.max(new.system),
            idle: old.idle.max(new.idle),
            iowait: old.iowait.max(new.iowait),
            irq: old.irq.max(new.irq),
            softirq: old.softirq.max(new.softirq),
            steal: old.steal.max(new.steal),
            guest: old.guest.max(new.guest),
            guest_nice: old.guest_nice.max(new.guest_nice),
        };
    }
}

/// Ticks of `USER_HZ` to seconds.
fn seconds(ticks: u64) -> f64 {
    ticks as f64 / USER_HZ as f64
}

/// The per-CPU time series.
fn push_cpu_times(cpus: &BTreeMap<u32, CpuTimes>, out: &mut Output) {
    for (cpu, times) in cpus {
        let cpu = cpu.to_string();
        let modes = [
            ("user", times.user),
            ("nice", times.nice),
            ("system", times.system),
            ("idle", times.idle),
            ("iowait", times.iowait),
            ("irq", times.irq),
            ("softirq", times.softirq),
            ("steal", times.steal),
        ];
        for (mode, ticks) in modes {
            out.push(
                Sample::new(CPU_SECONDS, Kind::Counter, seconds(ticks))
                    .label("cpu", cpu.as_str())
                    .label("mode", mode),
            );
        }
        for (mode, ticks) in [("user", times.guest), ("nice", times.guest_nice)] {
            out.push(
                Sample::new(CPU_GUEST_SECONDS, Kind::Counter, seconds(ticks))
                    .label("cpu", cpu.as_str())
                    .label("mode", mode),
            );
        }
    }
}

/// The whole-system counters and gauges; a line missing from the file is left out.
fn push_activity(stat: &Stat, out: &mut Output) {
    let values = [
        (CONTEXT_SWITCHES, Kind::Counter, stat.context_switches),
        (INTERRUPTS, Kind::Counter, stat.interrupts),
        (FORKS, Kind::Counter, stat.forks),
        (BOOT_TIME, Kind::Gauge, stat.boot_time),
        (PROCS_RUNNING, Kind::Gauge, stat.procs_running),
        (PROCS_BLOCKED, Kind::Gauge, stat.procs_blocked),
    ];
    for (name, kind, value) in values {
        if let Some(value) = value {
            out.push(Sample::new(name, kind, value as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(user: u64, idle: u64) -> CpuTimes {
        CpuTimes {
            user,
            idle,
            ..CpuTimes::default()
        }
    }

    #[test]
    fn a_counter_that_steps_back_a_little_holds_its_highest_value() {
        let mut sent = BTreeMap::new();
        keep_monotonic(&mut sent, &BTreeMap::from([(0, times(500, 1000))]));
        keep_monotonic(&mut sent, &BTreeMap::from([(0, times(499, 999))]));
        assert_eq!(sent[&0], times(500, 1000));
        keep_monotonic(&mut sent, &BTreeMap::from([(0, times(510, 1010))]));
        assert_eq!(sent[&0], times(510, 1010));
    }

    #[test]
    fn idle_falling_three_seconds_restarts_the_cpu_from_the_new_values() {
        let mut sent = BTreeMap::from([(0, times(500, 1000))]);
        keep_monotonic(
            &mut sent,
            &BTreeMap::from([(0, times(5, 1000 - JUMP_BACK_TICKS))]),
        );
        assert_eq!(sent[&0], times(5, 1000 - JUMP_BACK_TICKS));
    }

    #[test]
    fn an_offline_cpu_is_forgotten() {
        let mut sent = BTreeMap::from([(0, times(1, 1)), (1, times(2, 2))]);
        keep_monotonic(&mut sent, &BTreeMap::from([(1, times(3, 3))]));
        assert_eq!(sent, BTreeMap::from([(1, times(3, 3))]));
    }

    #[test]
    fn missing_activity_lines_are_left_out() {
        let stat = Stat {
            context_switches: Some(7),
            ..Stat::default()
        };
        let mut out = Output::default();
        push_activity(&stat, &mut out);
        assert_eq!(
            out.samples,
            [Sample::new(CONTEXT_SWITCHES, Kind::Counter, 7.0)]
        );
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use super::*;
        use crate::testing::{assert_matches_node_exporter, fixture_roots};

        #[test]
        fn matches_node_exporter_on_its_fixture() {
            let names = [
                CPU_SECONDS,
                CPU_GUEST_SECONDS,
                CONTEXT_SWITCHES,
                INTERRUPTS,
                FORKS,
                BOOT_TIME,
                PROCS_RUNNING,
                PROCS_BLOCKED,
                PRESSURE_CPU_WAITING,
                PRESSURE_IRQ_STALLED,
            ];
            let mut collector = CpuCollector::new(fixture_roots());
            assert_matches_node_exporter(&mut collector, &|name| names.contains(&name));
            // The second run goes through the state kept from the first.
            assert_matches_node_exporter(&mut collector, &|name| names.contains(&name));
        }

        #[test]
        fn sends_eight_modes_and_two_guest_modes_per_cpu() {
            let mut out = Output::default();
            CpuCollector::new(fixture_roots())
                .collect(&mut out)
                .expect("collects");
            let count = |name: &str| out.samples.iter().filter(|s| s.name == name).count();
            assert_eq!(count(CPU_SECONDS), 8 * 8);
            assert_eq!(count(CPU_GUEST_SECONDS), 8 * 2);
            let first = &out.samples[0];
            assert_eq!(
                first.labels,
                [("cpu".into(), "0".into()), ("mode".into(), "user".into())]
            );
            assert_eq!(first.value, 444.9);
        }

        #[test]
        fn an_unreadable_file_fails_the_run() {
            let roots = Roots::new("/nonexistent/sysward/proc", "/nonexistent", "/nonexistent");
            let error = CpuCollector::new(roots)
                .collect(&mut Output::default())
                .expect_err("no file");
            assert!(
                error.to_string().contains("/nonexistent/sysward/proc/stat"),
                "{error}"
            );
        }
    }
}
