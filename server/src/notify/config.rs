//! `[notify]` in server.toml and the `*.toml` files of its `dir`: receivers, the route
//! tree, escalation policies, on-call schedules, time intervals, maintenance windows,
//! inhibition, dependencies and limits. [`NotifyConfig::prepare`] reads the directory and
//! the secret files and checks every reference, so that `check-config` refuses what the
//! server would.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};
use sysward_notify::Receiver;
use sysward_proto::units;

use super::timing::{TimeInterval, parse_instant};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// More `*.toml` files with `receivers`, `escalations`, `schedules`, `time_intervals`,
    /// `maintenance`, `inhibit_rules` and `dependencies` (not `route` nor settings).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How long one send may take.
    #[serde(default = "d_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// A notification still failing after this long is given up, with an event and a count.
    #[serde(default = "d_give_up", deserialize_with = "duration")]
    pub give_up_after: Duration,
    /// How long an acknowledgement link works.
    #[serde(default = "d_ack_ttl", deserialize_with = "duration")]
    pub ack_link_ttl: Duration,
    /// How long the notification history is kept.
    #[serde(default = "d_history", deserialize_with = "duration")]
    pub history_retention: Duration,
    /// How often firing alerts are re-sent to Alertmanager channels (it resolves alerts
    /// that are not re-sent within 4 intervals).
    #[serde(default = "d_am_resend", deserialize_with = "duration")]
    pub alertmanager_resend: Duration,
    #[serde(default)]
    pub route: Option<RouteConfig>,
    // Not `#[serde(flatten)] NotifyParts`: flattening loses the TOML positions of errors.
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    #[serde(default)]
    pub escalations: Vec<EscalationConfig>,
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub maintenance: Vec<MaintenanceConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitConfig>,
    #[serde(default)]
    pub dependencies: Vec<DependencyConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// What the files of `dir` may hold too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyParts {
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    #[serde(default)]
    pub escalations: Vec<EscalationConfig>,
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub maintenance: Vec<MaintenanceConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitConfig>,
    #[serde(default)]
    pub dependencies: Vec<DependencyConfig>,
}

// Not derived: a derived Default would give zero durations to a server.toml without
// `[notify]` (a zero send timeout, a zero re-send interval).
impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            dir: None,
            timeout: d_timeout(),
            give_up_after: d_give_up(),
            ack_link_ttl: d_ack_ttl(),
            history_retention: d_history(),
            alertmanager_resend: d_am_resend(),
            route: None,
            receivers: Vec::new(),
            escalations: Vec::new(),
            schedules: Vec::new(),
            time_intervals: Vec::new(),
            maintenance: Vec::new(),
            inhibit_rules: Vec::new(),
            dependencies: Vec::new(),
            limits: LimitsConfig::default(),
        }
    }
}

fn d_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_give_up() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_ack_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_history() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn d_am_resend() -> Duration {
    Duration::from_secs(60)
}

/// A node of the route tree; children inherit what they do not set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: Option<String>,
    /// An escalation policy instead of (or besides) the receiver.
    #[serde(default)]
    pub escalation: Option<String>,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub group_wait: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub group_interval: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub repeat_interval: Option<Duration>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Notify only within these intervals (held until one begins).
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Hold notifications within these intervals.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    pub name: String,
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Since the group's first notification.
    #[serde(default, deserialize_with = "duration")]
    pub after: Duration,
    #[serde(default)]
    pub receivers: Vec<String>,
    /// `SCHEDULE:primary` or `SCHEDULE:secondary`.
    #[serde(default)]
    pub oncall: Vec<String>,
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    #[serde(default = "d_tz")]
    pub time_zone: String,
    /// The first hand-over, a local date and time: `2026-01-05T09:00`.
    pub start: String,
    /// Receivers in order; the on-call changes every week at the start's weekday and time.
    pub rotation: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// RFC 3339 instants.
    pub start: String,
    pub end: String,
    pub receiver: String,
    /// `primary` (default) or `secondary`.
    #[serde(default = "d_primary")]
    pub role: String,
}

fn d_primary() -> String {
    "primary".into()
}
fn d_tz() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(default = "d_tz")]
    pub time_zone: String,
    /// `mon-fri`, `sat`, …; none means every day.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// `09:00-17:00`, …; none means the whole day.
    #[serde(default)]
    pub times: Vec<String>,
}

/// A maintenance window: one-off (`start`, `end`) or recurring (`weekdays`, `times`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub name: String,
    pub matchers: Vec<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default = "d_tz")]
    pub time_zone: String,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub times: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitConfig {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// While an alert matching `parent` fires, alerts matching `children` are held.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyConfig {
    pub name: String,
    pub parent: Vec<String>,
    pub children: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// At most N messages per period per receiver, e.g. `"20/1h"`; the excess becomes one
    /// digest when the period allows again.
    #[serde(default)]
    pub per_receiver: Option<String>,
    /// An alert that changes state more than N times per period is flapping, e.g. `"6/1h"`.
    #[serde(default)]
    pub flapping: Option<String>,
}

/// `N/period`.
pub fn parse_rate(text: &str) -> Result<(usize, Duration), String> {
    let (n, period) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected COUNT/PERIOD, e.g. \"20/1h\""))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {n:?} is not a count"))?;
    let period = units::parse_duration(period.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    if n == 0 || period.is_zero() {
        return Err(format!("{text:?}: count and period must be above 0"));
    }
    Ok((n, period))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    units::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl NotifyConfig {
    /// Reads `dir`, the secret files, and checks every name and matcher. Errors say where:
    /// the file and the receiver, route or policy.
    pub fn prepare(&mut self, path: &Path) -> Result<(), String> {
        if let Some(dir) = self.dir.clone() {
            self.read_dir(&dir)?;
        }
        let at = path.display();
        let mut names = BTreeSet::new();
        for r in &mut self.receivers {
            if !names.insert(r.name.clone()) {
                return Err(format!(
                    "{at}: [notify] receiver {:?} is defined twice",
                    r.name
                ));
            }
            r.prepare()
                .map_err(|e| format!("{at}: [notify] receiver {:?}: {e}", r.name))?;
            super::plan::ReceiverTemplates::of(r)
                .map_err(|e| format!("{at}: [notify] receiver {:?}: {e}", r.name))?;
        }
        self.check(path).map_err(|e| format!("{at}: [notify] {e}"))
    }

    fn read_dir(&mut self, dir: &Path) -> Result<(), String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let mut part: NotifyParts = toml::from_str(&text)
                .map_err(|e| format!("{}: {}", file.display(), e.to_string().trim_end()))?;
            for r in &mut part.receivers {
                r.prepare()
                    .map_err(|e| format!("{}: receiver {:?}: {e}", file.display(), r.name))?;
            }
            let p = &mut *self;
            p.receivers.append(&mut part.receivers);
            p.escalations.append(&mut part.escalations);
            p.schedules.append(&mut part.schedules);
            p.time_intervals.append(&mut part.time_intervals);
            p.maintenance.append(&mut part.maintenance);
            p.inhibit_rules.append(&mut part.inhibit_rules);
            p.dependencies.append(&mut part.dependencies);
        }
        Ok(())
    }

    /// Checks names, references, matchers, time zones and limits (the compiled forms are
    /// built the same way by the notifier; this only keeps their errors).
    fn check(&self, _path: &Path) -> Result<(), String> {
        let p = self;
        let receivers: BTreeSet<&str> = p.receivers.iter().map(|r| r.name.as_str()).collect();
        let intervals = unique(
            p.time_intervals.iter().map(|t| t.name.as_str()),
            "time interval",
        )?;
        for t in &p.time_intervals {
            TimeInterval::new(&t.time_zone, &t.weekdays, &t.times)
                .map_err(|e| format!("time interval {:?}: {e}", t.name))?;
        }
        let schedules = unique(p.schedules.iter().map(|s| s.name.as_str()), "schedule")?;
        for s in &p.schedules {
            super::oncall::Schedule::new(s).map_err(|e| format!("schedule {:?}: {e}", s.name))?;
            for r in s
                .rotation
                .iter()
                .chain(s.overrides.iter().map(|o| &o.receiver))
            {
                if !receivers.contains(r.as_str()) {
                    return Err(format!(
                        "schedule {:?}: receiver {r:?} is not defined",
                        s.name
                    ));
                }
            }
        }
        let policies = unique(p.escalations.iter().map(|e| e.name.as_str()), "escalation")?;
        for e in &p.escalations {
            check_policy(e, &receivers, &schedules, &intervals)
                .map_err(|m| format!("escalation {:?}: {m}", e.name))?;
        }
        for m in &p.maintenance {
            check_maintenance(m).map_err(|e| format!("maintenance {:?}: {e}", m.name))?;
        }
        for (i, r) in p.inhibit_rules.iter().enumerate() {
            parse_matchers(&r.source_matchers)
                .and_then(|_| parse_matchers(&r.target_matchers))
                .map_err(|e| format!("inhibit_rules[{i}]: {e}"))?;
        }
        for d in &p.dependencies {
            parse_matchers(&d.parent)
                .and_then(|_| parse_matchers(&d.children))
                .map_err(|e| format!("dependency {:?}: {e}", d.name))?;
        }
        for (key, v) in [
            ("per_receiver", &self.limits.per_receiver),
            ("flapping", &self.limits.flapping),
        ] {
            if let Some(v) = v {
                parse_rate(v).map_err(|e| format!("limits.{key}: {e}"))?;
            }
        }
        // Alertmanager resolves a forwarded alert 4 minutes after its last re-send.
        if self.alertmanager_resend.is_zero() || self.alertmanager_resend > Duration::from_secs(120)
        {
            return Err("alertmanager_resend must be between 1s and 2m (Alertmanager resolves alerts not re-sent within 4m)".into());
        }
        if let Some(route) = &self.route {
            if route.receiver.is_none() && route.escalation.is_none() {
                return Err("route: the top route needs a receiver or an escalation".into());
            }
            check_route(route, "route", &receivers, &policies, &intervals)?;
        }
        Ok(())
    }
}

fn unique<'a>(
    names: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<BTreeSet<&'a str>, String> {
    let mut set = BTreeSet::new();
    for n in names {
        if !set.insert(n) {
            return Err(format!("{what} {n:?} is defined twice"));
        }
    }
    Ok(set)
}

fn check_policy(
    e: &EscalationConfig,
    receivers: &BTreeSet<&str>,
    schedules: &BTreeSet<&str>,
    intervals: &BTreeSet<&str>,
) -> Result<(), String> {
    if e.steps.is_empty() {
        return Err("has no steps".into());
    }
    if !e.steps[0].after.is_zero() {
        return Err("steps[0]: the first step goes out with the group's first notification; its after must be 0 (use the route's group_wait to wait)".into());
    }
    let mut last = Duration::ZERO;
    for (i, s) in e.steps.iter().enumerate() {
        if s.after < last {
            return Err(format!(
                "steps[{i}]: after must not be earlier than the step before"
            ));
        }
        last = s.after;
        if s.receivers.is_empty() && s.oncall.is_empty() {
            return Err(format!("steps[{i}]: names no receivers and no oncall"));
        }
        for r in &s.receivers {
            if !receivers.contains(r.as_str()) {
                return Err(format!("steps[{i}]: receiver {r:?} is not defined"));
            }
        }
        for o in &s.oncall {
            let (schedule, role) = o.split_once(':').unwrap_or((o, "primary"));
            if !schedules.contains(schedule) {
                return Err(format!("steps[{i}]: schedule {schedule:?} is not defined"));
            }
            if !matches!(role, "primary" | "secondary") {
                return Err(format!(
                    "steps[{i}]: {o:?}: the role is primary or secondary"
                ));
            }
        }
        check_interval_names(&s.active_time_intervals, intervals)
            .and_then(|_| check_interval_names(&s.mute_time_intervals, intervals))
            .map_err(|e| format!("steps[{i}]: {e}"))?;
    }
    Ok(())
}

fn check_interval_names(names: &[String], intervals: &BTreeSet<&str>) -> Result<(), String> {
    match names.iter().find(|n| !intervals.contains(n.as_str())) {
        Some(n) => Err(format!("time interval {n:?} is not defined")),
        None => Ok(()),
    }
}

fn check_maintenance(m: &MaintenanceConfig) -> Result<(), String> {
    parse_matchers(&m.matchers)?;
    if m.matchers.is_empty() {
        return Err("needs matchers (a window over everything is a silence of all alerts: give `alertname=~\".+\"` to mean it)".into());
    }
    match (&m.start, &m.end) {
        (Some(s), Some(e)) => {
            let (s, e) = (parse_instant(s)?, parse_instant(e)?);
            if e <= s {
                return Err("end must be after start".into());
            }
            Ok(())
        }
        (None, None) if !m.weekdays.is_empty() || !m.times.is_empty() => {
            TimeInterval::new(&m.time_zone, &m.weekdays, &m.times).map(|_| ())
        }
        _ => Err("give start and end (one-off), or weekdays and/or times (recurring)".into()),
    }
}

fn check_route(
    r: &RouteConfig,
    at: &str,
    receivers: &BTreeSet<&str>,
    policies: &BTreeSet<&str>,
    intervals: &BTreeSet<&str>,
) -> Result<(), String> {
    if let Some(name) = &r.receiver
        && !receivers.contains(name.as_str())
    {
        return Err(format!("{at}: receiver {name:?} is not defined"));
    }
    if let Some(name) = &r.escalation
        && !policies.contains(name.as_str())
    {
        return Err(format!("{at}: escalation {name:?} is not defined"));
    }
    parse_matchers(&r.matchers).map_err(|e| format!("{at}: {e}"))?;
    check_interval_names(&r.active_time_intervals, intervals)
        .and_then(|_| check_interval_names(&r.mute_time_intervals, intervals))
        .map_err(|e| format!("{at}: {e}"))?;
    for (key, d) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(format!("{at}: {key} must be longer than 0"));
        }
    }
    for (i, child) in r.routes.iter().enumerate() {
        check_route(
            child,
            &format!("{at}.routes[{i}]"),
            receivers,
            policies,
            intervals,
        )?;
    }
    Ok(())
}

const DUMMY: &str = "sysward_matcher";

/// Alertmanager-style matchers, each `name="value"`, `!=`, `=~` or `!~`.
pub fn parse_matchers(list: &[String]) -> Result<Vec<crate::store::LabelMatcher>, String> {
    let mut out = Vec::new();
    for m in list {
        // A metric name of our own makes `severity!="info"` alone a valid selector.
        let mut alternatives = crate::selector::parse_selector(&format!("{DUMMY}{{{m}}}"))
            .map_err(|e| format!("matcher {m:?}: {e}"))?;
        if alternatives.len() != 1 {
            return Err(format!("matcher {m:?}: `or` is not allowed here"));
        }
        out.extend(
            alternatives
                .remove(0)
                .into_iter()
                .filter(|x| !(x.label == crate::store::NAME_LABEL && x.value == DUMMY)),
        );
    }
    Ok(out)
}

/// Whether every matcher holds for `labels`.
pub fn matches(matchers: &[crate::store::LabelMatcher], labels: &BTreeMap<String, String>) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.label).map(String::as_str).unwrap_or("")))
}
