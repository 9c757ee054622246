//! `processes`: process counts by state and thread total (node_exporter's `processes`
//! collector), and the top processes by CPU and by memory (Sysward's own).
//!
//! One pass over `/proc/[pid]/stat`, in buffers reused from cycle to cycle; `status`
//! is read only for the few processes that make a top list, for their uid. A process
//! that exits during the pass is skipped without an error.
//!
//! The CPU top list ranks by CPU time used *since the previous cycle* (the collector
//! keeps each process's total), since ranking by total time since start would list
//! the oldest daemons for ever; on the first cycle there is no previous one and the
//! totals rank. What is sent is the cumulative counter, so the server computes rates as
//! for any counter. Processes that used no CPU since the last cycle, and those with no
//! resident memory (kernel threads), are not listed.
//!
//! node_exporter's `node_processes_threads_state` would need a walk of every
//! `/proc/[pid]/task`, many times the cost of the rest; it is not sent. Like
//! node_exporter, `node_processes_state` has a series only for states seen.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;
use sysward_platform::{PidStat, ProcessScanner, Roots, USER_HZ, Users};

use crate::settings::{self, Count};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// Processes per state letter (gauge; label `state`).
pub const STATE: &str = "node_processes_state";
/// Threads of all processes (gauge).
pub const THREADS: &str = "node_processes_threads";
/// Processes (gauge).
pub const PIDS: &str = "node_processes_pids";
/// `kernel/pid_max` (gauge).
pub const MAX_PROCESSES: &str = "node_processes_max_processes";
/// `kernel/threads-max` (gauge).
pub const MAX_THREADS: &str = "node_processes_max_threads";
/// CPU seconds of a top process (counter; labels `pid`, `name`, `user`).
pub const CPU_SECONDS: &str = "sysward_process_cpu_seconds_total";
/// Resident memory of a top process (gauge; labels `pid`, `name`, `user`).
pub const RESIDENT_BYTES: &str = "sysward_process_resident_memory_bytes";

/// How the `processes` collector lists top processes.
#[derive(Debug, Clone)]
pub struct ProcessesConfig {
    /// How many processes each top list holds.
    pub top_n: usize,
}

impl Default for ProcessesConfig {
    fn default() -> Self {
        Self { top_n: 10 }
    }
}

/// The most `top` may be: each process listed is two series a cycle, and a typo such as
/// `top = 10000` should not send every process of the host.
pub const MAX_TOP: usize = 1000;

/// `[collectors.processes]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessesSettings {
    /// [`ProcessesConfig::top_n`], 0 to [`MAX_TOP`].
    top: Option<Count>,
}

impl ProcessesConfig {
    /// The configuration a `[collectors.processes]` table asks for, the agent's own keys
    /// left out: `top` (default 10, at most [`MAX_TOP`]; 0 sends no top lists). An
    /// empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: ProcessesSettings = settings::parse("processes", table)?;
        let mut config = Self::default();
        if let Some(Count(top)) = s.top {
            config.top_n = usize::try_from(top)
                .ok()
                .filter(|top| *top <= MAX_TOP)
                .ok_or_else(|| {
                    settings::bad(
                        "processes",
                        "top",
                        format!("expected at most {MAX_TOP}, got {top}"),
                    )
                })?;
        }
        Ok(config)
    }
}

/// Bytes of a command name kept: a process's own name has at most 15, but the kernel
/// adds its workqueue to a worker thread's (`kworker/u8:1-ext4-rsv-conversion`), up to
/// 63 in all.
const COMM_BYTES: usize = 64;

/// One process of the current pass, without a heap allocation.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: u32,
    /// CPU ticks since start.
    ticks: u64,
    /// CPU ticks since the previous pass (since start, for a process new since then).
    recent: u64,
    rss_pages: u64,
    comm: [u8; COMM_BYTES],
    comm_len: u8,
}

impl Proc {
    fn new(stat: &PidStat<'_>, recent: u64) -> Self {
        // Cut at a character boundary, so that the bytes stay valid UTF-8.
        let mut len = stat.comm.len().min(COMM_BYTES);
        while !stat.comm.is_char_boundary(len) {
            len -= 1;
        }
        let mut comm = [0; COMM_BYTES];
        comm[..len].copy_from_slice(&stat.comm.as_bytes()[..len]);
        Self {
            pid: stat.pid,
            ticks: stat.utime.saturating_add(stat.stime),
            recent,
            rss_pages: stat.rss_pages,
            comm,
            comm_len: len as u8,
        }
    }

    fn comm(&self) -> &str {
        std::str::from_utf8(&self.comm[..usize::from(self.comm_len)]).unwrap_or_default()
    }
}

/// Counts processes and lists the top ones under its roots.
#[derive(Debug)]
pub struct ProcessesCollector {
    roots: Roots,
    config: ProcessesConfig,
    scanner: ProcessScanner,
    /// This pass's processes; kept for its capacity.
    procs: Vec<Proc>,
    /// CPU ticks of each process at the previous pass, with its start time to tell a
    /// reused pid from the same process.
    previous: HashMap<u32, (u64, u64)>,
    /// The same for this pass, swapped with `previous` at the end.
    current: HashMap<u32, (u64, u64)>,
    /// Processes per state letter, by ASCII code.
    states: [u64; 128],
    /// The host's users and the modification time of the file they were read from.
    users: Option<(Option<SystemTime>, Users)>,
    /// Bytes per page, for RSS.
    page_size: Option<u64>,
}

impl ProcessesCollector {
    /// A collector listing the top 10 processes.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, ProcessesConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: ProcessesConfig) -> Self {
        Self {
            roots,
            config,
            scanner: ProcessScanner::new(),
            procs: Vec::new(),
            previous: HashMap::new(),
            current: HashMap::new(),
            states: [0; 128],
            users: None,
            page_size: sysward_platform::page_size(),
        }
    }
}

impl Collector for ProcessesCollector {
    fn name(&self) -> &'static str {
        "processes"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        self.procs.clear();
        self.current.clear();
        self.states = [0; 128];
        let mut threads = 0u64;
        let mut odd_states = 0usize;
        let (procs, previous, current, states) = (
            &mut self.procs,
            &self.previous,
            &mut self.current,
            &mut self.states,
        );
        let summary = self.scanner.scan(&self.roots, |stat| {
            threads += stat.num_threads;
            match states.get_mut(stat.state as usize) {
                Some(count) if stat.state.is_ascii_graphic() => *count += 1,
                _ => odd_states += 1,
            }
            let ticks = stat.utime.saturating_add(stat.stime);
            let recent = match previous.get(&stat.pid) {
                Some((start, before)) if *start == stat.starttime => ticks.saturating_sub(*before),
                _ => ticks,
            };
            current.insert(stat.pid, (stat.starttime, ticks));
            procs.push(Proc::new(stat, recent));
        })?;
        std::mem::swap(&mut self.previous, &mut self.current);
        for failure in &summary.failed {
            out.error(failure.to_string());
        }
        if odd_states > 0 {
            out.error(format!(
                "{odd_states} processes have a state that is not an ASCII letter; not counted by state"
            ));
        }

        for (code, count) in self.states.iter().enumerate() {
            if *count > 0 {
                let letter = char::from(code as u8).to_string();
                out.push(Sample::new(STATE, Kind::Gauge, *count as f64).label("state", letter));
            }
        }
        out.push(Sample::new(THREADS, Kind::Gauge, threads as f64));
        out.push(Sample::new(PIDS, Kind::Gauge, summary.processes as f64));
        for (name, sysctl) in [
            (MAX_PROCESSES, "kernel/pid_max"),
            (MAX_THREADS, "kernel/threads-max"),
        ] {
            match sysward_platform::read_sysctl_u64(&self.roots, sysctl) {
                Ok(value) => out.push(Sample::new(name, Kind::Gauge, value as f64)),
                Err(error) => out.error(error.to_string()),
            }
        }
        self.push_top(out);
        Ok(())
    }
}

impl ProcessesCollector {
    fn push_top(&mut self, out: &mut Output) {
        let n = self.config.top_n;
        let by_cpu = top(&mut self.procs, n, |p| p.recent);
        let by_rss = top(&mut self.procs, n, |p| p.rss_pages);
        let mut users_fresh = false;
        let mut user_of: HashMap<u32, Option<String>> = HashMap::new();
        for (list, metric) in [(by_cpu, CPU_SECONDS), (by_rss, RESIDENT_BYTES)] {
            for proc in list {
                if let Entry::Vacant(slot) = user_of.entry(proc.pid) {
                    slot.insert(self.user(proc.pid, &mut users_fresh, out));
                }
                // Exited since the pass: no longer anyone's top process.
                let Some(Some(user)) = user_of.get(&proc.pid) else {
                    continue;
                };
                let (kind, value) = if metric == CPU_SECONDS {
                    (Kind::Counter, proc.ticks as f64 / USER_HZ as f64)
                } else {
                    let Some(page_size) = self.page_size else {
                        continue;
                    };
                    (Kind::Gauge, proc.rss_pages as f64 * page_size as f64)
                };
                out.push(
                    Sample::new(metric, kind, value)
                        .label("pid", proc.pid.to_string())
                        .label("name", proc.comm())
                        .label("user", user.as_str()),
                );
            }
        }
    }

    /// The name of the effective user of `pid`, or its uid where the host's
    /// `/etc/passwd` does not name it (users from LDAP and the like); `None` when the
    /// process has exited. The users are looked at again once per cycle, on first need.
    fn user(&mut self, pid: u32, users_fresh: &mut bool, out: &mut Output) -> Option<String> {
        let uid = match sysward_platform::read_pid_uid(&self.roots, pid) {
            Ok(Some(uid)) => uid,
            Ok(None) => return None,
            Err(error) => {
                out.error(error.to_string());
                return Some(String::new());
            }
        };
        if !*users_fresh {
            self.refresh_users(out);
            *users_fresh = true;
        }
        Some(
            self.users
                .as_ref()
                .and_then(|(_, users)| users.names.get(&uid).cloned())
                .unwrap_or_else(|| uid.to_string()),
        )
    }

    /// Reads the host's users again when `/etc/passwd` has changed since last time.
    fn refresh_users(&mut self, out: &mut Output) {
        let path: PathBuf = self.roots.rootfs.join(Users::FILE);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if let Some((seen, _)) = &self.users
            && modified.is_some()
            && *seen == modified
        {
            return;
        }
        match sysward_platform::read_users(&self.roots) {
            Ok(users) => self.users = Some((modified, users)),
            Err(error) => {
                // Uids stand in for names; report once, not every cycle.
                if self.users.is_none() {
                    out.error(format!("{error}; users are shown by uid"));
                }
                self.users = Some((modified, Users::default()));
            }
        }
    }
}

/// The `n` processes with the highest non-zero `key`, highest first.
fn top(procs: &mut [Proc], n: usize, key: impl Fn(&Proc) -> u64) -> Vec<Proc> {
    if n == 0 || procs.is_empty() {
        return Vec::new();
    }
    // Partition around the n-th largest in linear time, then sort only the n.
    let n = n.min(procs.len());
    procs.select_nth_unstable_by(n - 1, |a, b| key(b).cmp(&key(a)).then(a.pid.cmp(&b.pid)));
    let mut best: Vec<Proc> = procs[..n].iter().filter(|p| key(p) > 0).copied().collect();
    best.sort_unstable_by(|a, b| key(b).cmp(&key(a)).then(a.pid.cmp(&b.pid)));
    best
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    fn stat_line(pid: u32, comm: &str, state: char, ticks: u64, rss: u64, start: u64) -> String {
        format!(
            "{pid} ({comm}) {state} 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 2 0 {start} 1000 {rss} 0\n"
        )
    }

    fn tree() -> TempDir {
        let dir = TempDir::new("processes");
        dir.write("proc/100/stat", stat_line(100, "busy", 'R', 500, 10, 7));
        dir.write("proc/100/status", "Uid:\t1000\t1000\t1000\t1000\n");
        dir.write(
            "proc/200/stat",
            stat_line(200, "big mem", 'S', 100, 9000, 8),
        );
        dir.write("proc/200/status", "Uid:\t0\t0\t0\t0\n");
        dir.write("proc/300/stat", stat_line(300, "kworker/0:1", 'I', 0, 0, 9));
        dir.write("proc/300/status", "Uid:\t0\t0\t0\t0\n");
        dir.write("proc/sys/kernel/pid_max", "4194304\n");
        dir.write("proc/sys/kernel/threads-max", "1000\n");
        dir.write("root/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        dir
    }

    #[test]
    fn counts_match_node_exporter_on_its_fixture() {
        assert_matches_node_exporter(&mut ProcessesCollector::new(fixture_roots()), &|name| {
            name.starts_with("node_processes_")
        });
    }

    #[test]
    fn lists_top_processes_with_user_names_or_uids() {
        let dir = tree();
        let mut collector = ProcessesCollector::new(dir.roots());
        collector.page_size = Some(4096);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(out.errors, Vec::<String>::new());
        let busy = [("pid", "100"), ("name", "busy"), ("user", "1000")];
        assert_eq!(value_of(&out, CPU_SECONDS, &busy), Some(5.0));
        let big = [("pid", "200"), ("name", "big mem"), ("user", "root")];
        assert_eq!(value_of(&out, RESIDENT_BYTES, &big), Some(9000.0 * 4096.0));
        assert_eq!(value_of(&out, CPU_SECONDS, &big), Some(1.0));
        // The idle kernel thread makes neither list.
        assert!(
            !out.samples
                .iter()
                .any(|s| s.labels.iter().any(|(_, v)| v == "300"))
        );
        assert_eq!(value_of(&out, STATE, &[("state", "R")]), Some(1.0));
        assert_eq!(value_of(&out, STATE, &[("state", "I")]), Some(1.0));
        assert_eq!(value_of(&out, THREADS, &[]), Some(6.0));
        assert_eq!(value_of(&out, PIDS, &[]), Some(3.0));
        assert_eq!(value_of(&out, MAX_PROCESSES, &[]), Some(4194304.0));
    }

    #[test]
    fn cpu_ranks_by_use_since_the_previous_cycle() {
        let dir = tree();
        let mut collector =
            ProcessesCollector::with_config(dir.roots(), ProcessesConfig { top_n: 1 });
        collector.collect(&mut Output::default()).expect("first");
        // "busy" idles from now on; "big mem" uses 2 s.
        dir.write(
            "proc/200/stat",
            stat_line(200, "big mem", 'S', 300, 9000, 8),
        );
        let mut out = Output::default();
        collector.collect(&mut out).expect("second");
        let cpu: Vec<_> = out
            .samples
            .iter()
            .filter(|s| s.name == CPU_SECONDS)
            .collect();
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].value, 3.0);
        assert!(cpu[0].labels.contains(&("pid".into(), "200".into())));
        // A reused pid is a new process: all its time is recent.
        dir.write("proc/100/stat", stat_line(100, "new", 'R', 400, 10, 99));
        let mut out = Output::default();
        collector.collect(&mut out).expect("third");
        assert_eq!(
            value_of(
                &out,
                CPU_SECONDS,
                &[("pid", "100"), ("name", "new"), ("user", "1000")]
            ),
            Some(4.0)
        );
    }

    #[test]
    fn a_process_that_exits_before_its_status_is_read_is_left_out() {
        let dir = tree();
        std::fs::remove_file(dir.path().join("proc/100/status")).expect("rm");
        let mut out = Output::default();
        ProcessesCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.errors, Vec::<String>::new());
        assert!(
            !out.samples
                .iter()
                .any(|s| s.labels.iter().any(|(_, v)| v == "100"))
        );
        assert_eq!(value_of(&out, PIDS, &[]), Some(3.0));
    }

    #[test]
    fn the_top_lists_hold_at_most_n_in_order() {
        let stat = |pid, ticks| {
            let line = stat_line(pid, "p", 'S', ticks, ticks, 1);
            let stat = sysward_platform::linux::parse_pid_stat(&line).expect("parses");
            Proc::new(&stat, ticks)
        };
        let mut procs: Vec<Proc> = (1..=20).map(|pid| stat(pid, u64::from(pid % 7))).collect();
        let best = top(&mut procs, 3, |p| p.recent);
        let pids: Vec<_> = best.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [6, 13, 20]);
        assert!(top(&mut procs, 0, |p| p.recent).is_empty());
        assert_eq!(top(&mut procs, 100, |p| p.recent).len(), 18);
    }

    #[test]
    fn long_comm_is_cut_at_a_character_boundary() {
        let line = stat_line(1, &"é".repeat(40), 'S', 1, 1, 1);
        let stat = sysward_platform::linux::parse_pid_stat(&line).expect("parses");
        let proc = Proc::new(&stat, 1);
        assert_eq!(proc.comm(), "é".repeat(32));
        let line = stat_line(1, &format!("a{}", "é".repeat(40)), 'S', 1, 1, 1);
        let stat = sysward_platform::linux::parse_pid_stat(&line).expect("parses");
        assert_eq!(Proc::new(&stat, 1).comm(), format!("a{}", "é".repeat(31)));
    }

    #[test]
    fn top_from_the_settings_sets_the_length_of_both_lists() {
        let dir = tree();
        let mut collector = crate::testing::configured("processes", &dir.roots(), "top = 1")
            .expect("valid settings");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        let listed = |metric| out.samples.iter().filter(|s| s.name == metric).count();
        assert_eq!(listed(CPU_SECONDS), 1);
        assert_eq!(listed(RESIDENT_BYTES), 1);
        let mut collector = crate::testing::configured("processes", &dir.roots(), "top = 0")
            .expect("valid settings");
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert!(!out.samples.iter().any(|s| s.name.starts_with("sysward_")));
        assert_eq!(value_of(&out, PIDS, &[]), Some(3.0));
    }

    #[test]
    fn settings_give_the_defaults_when_empty_and_refuse_bad_values() {
        let parse = |text: &str| ProcessesConfig::from_table(&toml::from_str(text).unwrap());
        assert_eq!(parse("").unwrap().top_n, ProcessesConfig::default().top_n);
        assert_eq!(parse("top = 20").unwrap().top_n, 20);
        assert_eq!(parse("top = 1000").unwrap().top_n, MAX_TOP);
        assert_eq!(
            parse("top = 1001").unwrap_err(),
            "bad setting `top` for collector processes: expected at most 1000, got 1001"
        );
        assert_eq!(
            parse("top = \"ten\"").unwrap_err(),
            "bad setting `top` for collector processes: invalid type: string \"ten\", \
             expected a whole number, 0 or more"
        );
        assert_eq!(
            parse("top = -1").unwrap_err(),
            "bad setting `top` for collector processes: invalid value: integer `-1`, \
             expected a whole number, 0 or more"
        );
        assert_eq!(
            parse("topp = 20").unwrap_err(),
            "unknown setting `topp` for collector processes \
             (allowed: top, enabled, tier, interval, timeout)"
        );
    }
}
