//! `systemd`: the state of systemd units, read over D-Bus (node_exporter's `systemd`
//! collector), and failed units as CRITICAL events.
//!
//! Each run asks systemd (`org.freedesktop.systemd1`, on the system bus) for its loaded
//! units with `ListUnitsByPatterns` (systemd 230+; `ListUnits` on older ones), passing
//! `include` as the patterns, and leaves out those matching an `exclude` pattern (both
//! are globs, as `systemctl list-units PATTERN` takes them). Then, per unit, a few
//! property reads, each one D-Bus round trip: a service's `Type` and `NRestarts`, a
//! mount's `Type`, an active unit's `ActiveEnterTimestamp`, a failed unit's
//! `StateChangeTimestamp`. `restarts = false` and `start_time = false` drop the
//! optional ones for hosts with very many units.
//!
//! Samples, as node_exporter names them:
//! - [`UNIT_STATE`]`{name,state,type}`: five series per loaded unit, one per active
//!   state (`active`, `activating`, `deactivating`, `inactive`, `failed`), 1 for the
//!   current one; `type` is the service's or mount's own `Type` (`simple`, `notify`,
//!   `nfs`, ...), empty for other units, as node_exporter has it;
//! - [`UNITS`]`{state}`: units listed per active state;
//! - [`RESTARTS`]`{name}`: `NRestarts` of each service (systemd 235+);
//! - [`START_TIME`]`{name}`: when an active unit became active, 0 for the others;
//! - [`SYSTEM_RUNNING`]: 1 when `systemctl is-system-running` would say `running`;
//! - [`VERSION`]`{version}`: systemd's version number;
//!
//! and Sysward's [`SUB_STATE`]`{name,sub_state}` (1 for the unit's current sub-state:
//! `running`, `exited`, `dead`, `auto-restart`...).
//!
//! Events: each run, one CRITICAL event per failed unit that passes the patterns, named
//! `systemd:UNIT`, its output saying since when it has failed; when a unit is no longer
//! failed (or no longer listed), one OK event for it. systemd has already retried the
//! unit as configured, so the state is hard at once; `attempt` counts the runs it has
//! been seen failed.
//!
//! A host without systemd (no `/run/systemd/system` under the root file system, the
//! test `sd_booted(3)` makes) is told once, as an error of the first run; the collector
//! then stays off and quiet. A host with systemd whose bus cannot be reached is an error
//! of every run, and the connection is tried again on the next.
//!
//! The connection is made once and kept; every call has a deadline of
//! [`CALL_TIMEOUT`]. With a root file system other than `/` (an agent in a container
//! watching its host) the bus is the socket under it, `run/dbus/system_bus_socket`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sysward_platform::Roots;
use sysward_platform::linux::dbus::{Arg, BodyReader, DbusConnection, DbusError};

use crate::{CheckState, CollectError, Collector, Event, Kind, Output, Sample};

/// One series per unit and active state, 1 for the current one (gauge; labels `name`,
/// `state`, `type`).
pub const UNIT_STATE: &str = "node_systemd_unit_state";
/// Units per active state (gauge; label `state`).
pub const UNITS: &str = "node_systemd_units";
/// A service's restarts (counter; label `name`).
pub const RESTARTS: &str = "node_systemd_service_restart_total";
/// When an active unit became active, Unix seconds; 0 when it is not active (gauge;
/// label `name`).
pub const START_TIME: &str = "node_systemd_unit_start_time_seconds";
/// Whether the system is `running` (gauge).
pub const SYSTEM_RUNNING: &str = "node_systemd_system_running";
/// systemd's version (gauge; label `version`).
pub const VERSION: &str = "node_systemd_version";
/// 1 for a unit's current sub-state (gauge; labels `name`, `sub_state`).
pub const SUB_STATE: &str = "sysward_systemd_unit_sub_state";

/// The active states node_exporter gives a series each.
const STATES: [&str; 5] = ["active", "activating", "deactivating", "inactive", "failed"];

/// Deadline of each D-Bus call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// `[collectors.systemd]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SystemdConfig {
    /// Globs of the units to list (`"*.service"`); empty: every loaded unit.
    pub include: Vec<String>,
    /// Globs of units to leave out. By default devices, scopes and slices, as
    /// node_exporter; unlike it, mount and automount units are kept, since a failed
    /// mount is worth an alert.
    pub exclude: Vec<String>,
    /// Read each service's `NRestarts` and `Type` (two calls per service).
    pub restarts: bool,
    /// Read each active unit's `ActiveEnterTimestamp` (one call per active unit).
    pub start_time: bool,
}

impl Default for SystemdConfig {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: vec!["*.device".into(), "*.scope".into(), "*.slice".into()],
            restarts: true,
            start_time: true,
        }
    }
}

impl SystemdConfig {
    /// The configuration a `[collectors.systemd]` table asks for, the agent's own keys
    /// left out: `include`, `exclude` (lists of globs), `restarts`, `start_time`
    /// (booleans). An empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        crate::settings::parse("systemd", table)
    }
}

/// A unit as `ListUnits` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `nginx.service`.
    pub name: String,
    /// Its description.
    pub description: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `failed`, ...
    pub active_state: String,
    /// `running`, `exited`, `dead`, ...
    pub sub_state: String,
    /// Its D-Bus object.
    pub path: String,
}

/// What was read about a unit besides its listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDetails {
    /// A service's or mount's `Type`.
    pub kind: Option<String>,
    /// A service's `NRestarts`.
    pub restarts: Option<u32>,
    /// `ActiveEnterTimestamp`, microseconds since the epoch (0: never).
    pub active_enter_us: Option<u64>,
    /// `StateChangeTimestamp`, microseconds since the epoch, read for failed units.
    pub state_change_us: Option<u64>,
}

/// `ListUnits`' rows: name, description, load, active and sub state, followed unit,
/// object path, job id, job type, job path.
const UNIT_ROWS: &str = "a(ssssssouso)";

/// Where the collector stands with the bus.
enum Bus {
    /// Not connected: the next run connects.
    Disconnected,
    /// This host has no systemd: nothing more to do, nothing more to say.
    Off,
    /// Connected.
    Connected(DbusConnection),
}

/// Reads systemd units over D-Bus.
pub struct SystemdCollector {
    roots: Roots,
    config: SystemdConfig,
    bus: Bus,
    /// Failed units of the previous run and how many runs in a row they were seen so.
    failed: BTreeMap<String, u32>,
}

impl SystemdCollector {
    /// A collector with the default configuration.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, SystemdConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: SystemdConfig) -> Self {
        Self {
            roots,
            config,
            bus: Bus::Disconnected,
            failed: BTreeMap::new(),
        }
    }

    /// A collector on an existing connection (a test's peer-to-peer one).
    pub fn with_connection(
        roots: Roots,
        config: SystemdConfig,
        connection: DbusConnection,
    ) -> Self {
        Self {
            bus: Bus::Connected(connection),
            ..Self::with_config(roots, config)
        }
    }

    /// `/run/systemd/system` under the root file system: what `sd_booted(3)` tests.
    fn booted_marker(&self) -> PathBuf {
        self.roots.rootfs.join("run/systemd/system")
    }

    /// The system bus: `DBUS_SYSTEM_BUS_ADDRESS` when it names a socket path (as
    /// `unix:path=...`), else `/run/dbus/system_bus_socket`; under the root file system
    /// when that is not `/`.
    fn connect(&self) -> Result<DbusConnection, DbusError> {
        let socket = if self.roots.rootfs == Path::new("/") {
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .ok()
                .and_then(|a| socket_of_address(&a))
                .unwrap_or_else(|| PathBuf::from(SYSTEM_BUS_SOCKET))
        } else {
            self.roots
                .rootfs
                .join(SYSTEM_BUS_SOCKET.trim_start_matches('/'))
        };
        DbusConnection::connect(&socket, CALL_TIMEOUT)
    }
}

impl Collector for SystemdCollector {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let started = Instant::now();
        if matches!(self.bus, Bus::Off) {
            return Ok(());
        }
        if matches!(self.bus, Bus::Disconnected) {
            let marker = self.booted_marker();
            if !marker.is_dir() {
                out.error(format!(
                    "{} does not exist: this host does not run systemd, so the systemd collector stays off",
                    marker.display()
                ));
                self.bus = Bus::Off;
                return Ok(());
            }
            match self.connect() {
                Ok(connection) => self.bus = Bus::Connected(connection),
                Err(e) => {
                    out.error(format!("cannot connect to the system D-Bus: {e}"));
                    return Ok(());
                }
            }
        }
        let Bus::Connected(connection) = &mut self.bus else {
            return Ok(());
        };
        let units = match list_units(connection, &self.config.include) {
            Ok(units) => units,
            Err(e) => {
                out.error(format!("cannot list systemd units: {e}"));
                // The bus or systemd may have restarted: connect afresh next time.
                self.bus = Bus::Disconnected;
                return Ok(());
            }
        };
        let mut failures = Vec::new();
        let mut note = |what: &str, e: DbusError| {
            // A unit that went away between the listing and the read, or a property an
            // older systemd lacks, answers with a D-Bus error: nothing to report.
            if !matches!(e, DbusError::Method { .. }) {
                failures.push(format!("{what}: {e}"));
            }
        };
        let now = SystemTime::now();
        let selected: Vec<&Unit> = units
            .iter()
            .filter(|u| !self.config.exclude.iter().any(|p| glob_match(p, &u.name)))
            .collect();
        let mut details: HashMap<&str, UnitDetails> = HashMap::new();
        for unit in &selected {
            let mut d = UnitDetails::default();
            let path = unit.path.as_str();
            if self.config.restarts && unit.name.ends_with(".service") {
                match get::<String>(connection, path, "org.freedesktop.systemd1.Service", "Type") {
                    Ok(v) => d.kind = Some(v),
                    Err(e) => note(&unit.name, e),
                }
                match get::<u32>(
                    connection,
                    path,
                    "org.freedesktop.systemd1.Service",
                    "NRestarts",
                ) {
                    Ok(v) => d.restarts = Some(v),
                    Err(e) => note(&unit.name, e),
                }
            } else if unit.name.ends_with(".mount") {
                match get::<String>(connection, path, "org.freedesktop.systemd1.Mount", "Type") {
                    Ok(v) => d.kind = Some(v),
                    Err(e) => note(&unit.name, e),
                }
            }
            if self.config.start_time && unit.active_state == "active" {
                match get::<u64>(
                    connection,
                    path,
                    "org.freedesktop.systemd1.Unit",
                    "ActiveEnterTimestamp",
                ) {
                    Ok(v) => d.active_enter_us = Some(v),
                    Err(e) => note(&unit.name, e),
                }
            }
            if unit.active_state == "failed" {
                match get::<u64>(
                    connection,
                    path,
                    "org.freedesktop.systemd1.Unit",
                    "StateChangeTimestamp",
                ) {
                    Ok(v) => d.state_change_us = Some(v),
                    Err(e) => note(&unit.name, e),
                }
            }
            details.insert(unit.name.as_str(), d);
        }
        let system_state = get::<String>(connection, MANAGER_PATH, MANAGER, "SystemState");
        let version = get::<String>(connection, MANAGER_PATH, MANAGER, "Version");
        if connection.is_broken() {
            // A call timed out or read garbage part-way: connect afresh next run.
            self.bus = Bus::Disconnected;
        }

        unit_samples(&units, &selected, &details, self.config.start_time, out);
        match system_state {
            Ok(state) => out.push(Sample::new(
                SYSTEM_RUNNING,
                Kind::Gauge,
                if state == "running" { 1.0 } else { 0.0 },
            )),
            Err(e) => note("SystemState", e),
        }
        match version {
            Ok(version) => {
                if let Some(number) = version_number(&version) {
                    out.push(Sample::new(VERSION, Kind::Gauge, number).label("version", version));
                }
            }
            Err(e) => note("Version", e),
        }
        if let Some(first) = failures.first() {
            out.error(format!(
                "{} systemd property reads failed, the first: {first}",
                failures.len()
            ));
        }
        self.failed = failure_events(
            &self.failed,
            &selected,
            &details,
            now,
            started.elapsed(),
            out,
        );
        Ok(())
    }
}

/// Lists the units matching `include`.
fn list_units(connection: &mut DbusConnection, include: &[String]) -> Result<Vec<Unit>, DbusError> {
    let reply = connection.call(
        DESTINATION,
        MANAGER_PATH,
        MANAGER,
        "ListUnitsByPatterns",
        &[Arg::StrArray(&[]), Arg::StrArray(include)],
    );
    match reply {
        Ok(reply) => unit_rows(&reply),
        Err(DbusError::Method { name, .. }) if name == UNKNOWN_METHOD => {
            // systemd before 230: every unit, filtered here.
            let reply = connection.call(DESTINATION, MANAGER_PATH, MANAGER, "ListUnits", &[])?;
            let mut units = unit_rows(&reply)?;
            units.retain(|u| include.is_empty() || include.iter().any(|p| glob_match(p, &u.name)));
            Ok(units)
        }
        Err(e) => Err(e),
    }
}

/// Decodes `ListUnits`' rows.
fn unit_rows(reply: &sysward_platform::linux::dbus::Reply) -> Result<Vec<Unit>, DbusError> {
    if reply.signature() != UNIT_ROWS {
        return Err(DbusError::Protocol(format!(
            "ListUnits answered {:?}, not {UNIT_ROWS:?}",
            reply.signature()
        )));
    }
    let mut r = reply.reader();
    let end = r.array(8)?;
    let mut units = Vec::new();
    while r.position() < end {
        r.align(8)?;
        let mut text = || r.string().map(str::to_string);
        let (name, description, load_state, active_state, sub_state) =
            (text()?, text()?, text()?, text()?, text()?);
        let _following = r.string()?;
        let path = r.string()?.to_string();
        let _job_id = r.u32()?;
        let _job_type = r.string()?;
        let _job_path = r.string()?;
        units.push(Unit {
            name,
            description,
            load_state,
            active_state,
            sub_state,
            path,
        });
    }
    Ok(units)
}

/// A property type read from a `Get` reply's variant.
trait Property: Sized {
    const TYPE: &'static str;
    fn read(r: &mut BodyReader<'_>) -> Result<Self, DbusError>;
}

impl Property for String {
    const TYPE: &'static str = "s";
    fn read(r: &mut BodyReader<'_>) -> Result<Self, DbusError> {
        r.string().map(str::to_string)
    }
}

impl Property for u32 {
    const TYPE: &'static str = "u";
    fn read(r: &mut BodyReader<'_>) -> Result<Self, DbusError> {
        r.u32()
    }
}

impl Property for u64 {
    const TYPE: &'static str = "t";
    fn read(r: &mut BodyReader<'_>) -> Result<Self, DbusError> {
        r.u64()
    }
}

/// Reads one property.
fn get<T: Property>(
    connection: &mut DbusConnection,
    path: &str,
    interface: &str,
    property: &str,
) -> Result<T, DbusError> {
    let reply = connection.call(
        DESTINATION,
        path,
        PROPERTIES,
        "Get",
        &[Arg::Str(interface), Arg::Str(property)],
    )?;
    let mut r = reply.reader();
    let signature = if reply.signature() == "v" {
        r.signature()?
    } else {
        reply.signature()
    };
    if signature != T::TYPE {
        return Err(DbusError::Protocol(format!(
            "{interface}.{property} is of type {signature:?}, not {:?}",
            T::TYPE
        )));
    }
    T::read(&mut r)
}

/// The samples of one run, from what was read.
fn unit_samples(
    all: &[Unit],
    selected: &[&Unit],
    details: &HashMap<&str, UnitDetails>,
    start_time: bool,
    out: &mut Output,
) {
    let mut per_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
    for unit in all {
        *per_state.entry(unit.active_state.as_str()).or_default() += 1;
    }
    for (state, count) in per_state {
        out.push(Sample::new(UNITS, Kind::Gauge, count as f64).label("state", state));
    }
    let empty = UnitDetails::default();
    for unit in selected.iter().filter(|u| u.load_state == "loaded") {
        let d = details.get(unit.name.as_str()).unwrap_or(&empty);
        let kind = d.kind.as_deref().unwrap_or_default();
        for state in STATES {
            let value = if unit.active_state == state { 1.0 } else { 0.0 };
            out.push(
                Sample::new(UNIT_STATE, Kind::Gauge, value)
                    .label("name", unit.name.as_str())
                    .label("state", state)
                    .label("type", kind),
            );
        }
        out.push(
            Sample::new(SUB_STATE, Kind::Gauge, 1.0)
                .label("name", unit.name.as_str())
                .label("sub_state", unit.sub_state.as_str()),
        );
        if let Some(restarts) = d.restarts {
            out.push(
                Sample::new(RESTARTS, Kind::Counter, f64::from(restarts))
                    .label("name", unit.name.as_str()),
            );
        }
        if start_time {
            let seconds = match (unit.active_state.as_str(), d.active_enter_us) {
                ("active", Some(us)) => us as f64 / 1e6,
                ("active", None) => continue,
                _ => 0.0,
            };
            out.push(
                Sample::new(START_TIME, Kind::Gauge, seconds).label("name", unit.name.as_str()),
            );
        }
    }
}

/// One event per failed unit, and one OK event per unit failed in the previous run
/// but no longer; returns the failed units of this run with their counts.
fn failure_events(
    previous: &BTreeMap<String, u32>,
    selected: &[&Unit],
    details: &HashMap<&str, UnitDetails>,
    now: SystemTime,
    duration: Duration,
    out: &mut Output,
) -> BTreeMap<String, u32> {
    let mut failed = BTreeMap::new();
    for unit in selected.iter().filter(|u| u.active_state == "failed") {
        let attempt = previous
            .get(&unit.name)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        let since = details
            .get(unit.name.as_str())
            .and_then(|d| d.state_change_us)
            .filter(|us| *us > 0)
            .and_then(|us| {
                let at = UNIX_EPOCH + Duration::from_micros(us);
                now.duration_since(at).ok()
            })
            .map(|ago| format!(" {} ago", human(ago)))
            .unwrap_or_default();
        out.events.push(Event {
            check: format!("systemd:{}", unit.name),
            state: CheckState::Critical,
            output: format!(
                "{} failed{since} (sub-state {}, load state {})",
                unit.name, unit.sub_state, unit.load_state
            ),
            long_output: unit.description.clone(),
            hard: true,
            attempt,
            duration,
        });
        failed.insert(unit.name.clone(), attempt);
    }
    for name in previous.keys().filter(|n| !failed.contains_key(*n)) {
        let output = match selected.iter().find(|u| &u.name == name) {
            Some(u) => format!(
                "{name} is no longer failed: {} ({})",
                u.active_state, u.sub_state
            ),
            None => format!("{name} is no longer failed: no longer listed"),
        };
        out.events.push(Event {
            check: format!("systemd:{name}"),
            state: CheckState::Ok,
            output,
            long_output: String::new(),
            hard: true,
            attempt: 0,
            duration,
        });
    }
    failed
}

/// `3d4h`, `5m12s`, `40s`: a rough age.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// The leading version number of systemd's `Version` (`"252.19-1~deb12u1"` → 252.19),
/// as node_exporter reads it: three or more digits, optionally a dot and more digits.
fn version_number(version: &str) -> Option<f64> {
    let start = version.find(|c: char| c.is_ascii_digit())?;
    let rest = &version[start..];
    let int_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if int_len < 3 {
        return version_number(&rest[int_len..]);
    }
    let mut end = int_len;
    if let Some(after) = rest[int_len..].strip_prefix('.') {
        let frac = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        if frac > 0 {
            end = int_len + 1 + frac;
        }
    }
    rest[..end].parse().ok()
}

/// The socket path of a `unix:path=...` D-Bus address (its first, when it lists several),
/// `%XX` escapes decoded; `None` for other kinds of address.
fn socket_of_address(address: &str) -> Option<PathBuf> {
    let first = address.split(';').next()?;
    let params = first.strip_prefix("unix:")?;
    let value = params.split(',').find_map(|kv| kv.strip_prefix("path="))?;
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    Some(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
    ))
}

/// Whether `name` matches the shell glob `pattern` (`*`, `?`, `[a-z]`, `[!a]`), as
/// systemd matches unit patterns (`fnmatch` without escapes).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: its position in the pattern, and how much of
    // the name it has swallowed.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p[pi..], n[ni]) {
                Some((true, len)) => Some(pi + len),
                Some((false, _)) => None,
                // No closing `]`: a literal `[`.
                None => (n[ni] == '[').then_some(pi + 1),
            },
            Some(c) => (*c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the bracket expression at the start of `p`; returns whether it
/// matched and the expression's length, or `None` if it is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use zbus::zvariant::OwnedObjectPath;

    use super::*;

    fn unit(name: &str, active: &str, sub: &str) -> Unit {
        Unit {
            name: name.into(),
            description: format!("The {name}"),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            path: format!(
                "/org/freedesktop/systemd1/unit/{}",
                name.replace(['.', '-'], "_")
            ),
        }
    }

    fn find<'a>(out: &'a Output, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        out.samples.iter().find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    #[test]
    fn no_systemd_is_said_once_and_then_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let roots = Roots::new(
            root.path().join("proc"),
            root.path().join("sys"),
            root.path(),
        );
        let mut collector = SystemdCollector::new(roots);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(
            out.errors[0].ends_with("run/systemd/system does not exist: this host does not run systemd, so the systemd collector stays off"),
            "{}",
            out.errors[0]
        );
        assert!(out.samples.is_empty() && out.events.is_empty());
        for _ in 0..3 {
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            assert!(out.errors.is_empty() && out.samples.is_empty() && out.events.is_empty());
        }
    }

    #[test]
    fn a_host_without_systemd_is_said_once() {
        // A root without /run/systemd/system, whatever the test machine runs.
        let root = tempfile::tempdir().expect("tempdir");
        let roots = Roots::new(
            root.path().join("proc"),
            root.path().join("sys"),
            root.path(),
        );
        let mut collector = SystemdCollector::new(roots);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(out.errors[0].contains("does not run systemd"));
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert!(out.errors.is_empty());
    }

    #[test]
    fn systemd_without_a_bus_is_an_error_every_run() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("run/systemd/system")).expect("mkdir");
        let roots = Roots::new(
            root.path().join("proc"),
            root.path().join("sys"),
            root.path(),
        );
        let mut collector = SystemdCollector::new(roots);
        for _ in 0..2 {
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
            assert!(
                out.errors[0].starts_with("cannot connect to the system D-Bus"),
                "{}",
                out.errors[0]
            );
        }
    }

    #[test]
    fn samples_as_node_exporter_names_them() {
        let units = vec![
            unit("nginx.service", "active", "running"),
            unit("backup.service", "failed", "failed"),
            unit("home.mount", "active", "mounted"),
            Unit {
                load_state: "not-found".into(),
                ..unit("gone.service", "inactive", "dead")
            },
        ];
        let selected: Vec<&Unit> = units.iter().collect();
        let mut details = HashMap::new();
        details.insert(
            "nginx.service",
            UnitDetails {
                kind: Some("notify".into()),
                restarts: Some(3),
                active_enter_us: Some(1_700_000_000_500_000),
                state_change_us: None,
            },
        );
        details.insert(
            "home.mount",
            UnitDetails {
                kind: Some("nfs".into()),
                ..UnitDetails::default()
            },
        );
        let mut out = Output::default();
        unit_samples(&units, &selected, &details, true, &mut out);
        let state = |name: &str, state: &str| {
            find(&out, UNIT_STATE, &[("name", name), ("state", state)]).map(|s| s.value)
        };
        assert_eq!(state("nginx.service", "active"), Some(1.0));
        assert_eq!(state("nginx.service", "failed"), Some(0.0));
        assert_eq!(state("backup.service", "failed"), Some(1.0));
        assert_eq!(state("gone.service", "inactive"), None, "not loaded");
        let nginx = find(&out, UNIT_STATE, &[("name", "nginx.service")]).expect("nginx");
        assert_eq!(
            nginx.labels,
            [
                (crate::Name::from("name"), "nginx.service".to_string()),
                (crate::Name::from("state"), "active".to_string()),
                (crate::Name::from("type"), "notify".to_string())
            ]
        );
        assert!(find(&out, UNIT_STATE, &[("name", "home.mount"), ("type", "nfs")]).is_some());
        assert!(
            find(
                &out,
                UNIT_STATE,
                &[("name", "backup.service"), ("type", "")]
            )
            .is_some()
        );
        assert_eq!(
            out.samples.iter().filter(|s| s.name == UNIT_STATE).count(),
            15
        );
        let restarts = find(&out, RESTARTS, &[("name", "nginx.service")]).expect("restarts");
        assert_eq!((restarts.kind, restarts.value), (Kind::Counter, 3.0));
        assert_eq!(
            find(&out, START_TIME, &[("name", "nginx.service")]).map(|s| s.value),
            Some(1_700_000_000.5)
        );
        assert_eq!(
            find(&out, START_TIME, &[("name", "backup.service")]).map(|s| s.value),
            Some(0.0)
        );
        assert_eq!(
            find(&out, UNITS, &[("state", "active")]).map(|s| s.value),
            Some(2.0)
        );
        assert_eq!(
            find(&out, UNITS, &[("state", "inactive")]).map(|s| s.value),
            Some(1.0)
        );
        assert_eq!(
            find(&out, UNITS, &[("state", "deactivating")]).map(|s| s.value),
            Some(0.0)
        );
        assert!(
            find(
                &out,
                SUB_STATE,
                &[("name", "home.mount"), ("sub_state", "mounted")]
            )
            .is_some()
        );
    }

    #[test]
    fn failed_units_raise_critical_events_until_they_recover() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let failed = unit("backup.service", "failed", "failed");
        let mut details = HashMap::new();
        details.insert(
            "backup.service",
            UnitDetails {
                state_change_us: Some((1_700_000_000 - 330) * 1_000_000),
                ..UnitDetails::default()
            },
        );
        let mut out = Output::default();
        let state = failure_events(
            &BTreeMap::new(),
            &[&failed],
            &details,
            now,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(out.events.len(), 1);
        let e = &out.events[0];
        assert_eq!(e.check, "systemd:backup.service");
        assert_eq!(e.state, CheckState::Critical);
        assert_eq!(
            e.output,
            "backup.service failed 5m30s ago (sub-state failed, load state loaded)"
        );
        assert!(e.hard);
        assert_eq!(e.attempt, 1);

        let mut out = Output::default();
        let state = failure_events(&state, &[&failed], &details, now, Duration::ZERO, &mut out);
        assert_eq!(out.events[0].attempt, 2);

        let recovered = unit("backup.service", "active", "running");
        let mut out = Output::default();
        let state = failure_events(
            &state,
            &[&recovered],
            &details,
            now,
            Duration::ZERO,
            &mut out,
        );
        assert!(state.is_empty());
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].state, CheckState::Ok);
        assert_eq!(
            out.events[0].output,
            "backup.service is no longer failed: active (running)"
        );
        let mut out = Output::default();
        failure_events(
            &state,
            &[&recovered],
            &details,
            now,
            Duration::ZERO,
            &mut out,
        );
        assert!(out.events.is_empty());
    }

    #[test]
    fn globs_as_systemd_matches_them() {
        for (pattern, name, matches) in [
            ("*.service", "nginx.service", true),
            ("*.service", "nginx.socket", false),
            ("*", "", true),
            ("getty@*.service", "getty@tty1.service", true),
            ("ss?d.service", "sshd.service", true),
            ("[a-c]*.mount", "boot.mount", true),
            ("[!a-c]*.mount", "boot.mount", false),
            ("[!a-c]*.mount", "home.mount", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[", "[", true),
            ("x[", "x[", true),
            ("[]]", "]", true),
            ("**.slice", "user.slice", true),
        ] {
            assert_eq!(glob_match(pattern, name), matches, "{pattern} {name}");
        }
    }

    #[test]
    fn version_numbers_as_node_exporter_reads_them() {
        assert_eq!(version_number("252.19-1~deb12u1"), Some(252.19));
        assert_eq!(version_number("255"), Some(255.0));
        assert_eq!(version_number("systemd 219"), Some(219.0));
        assert_eq!(version_number("v2 and 245.4-4ubuntu3"), Some(245.4));
        assert_eq!(version_number("none"), None);
        assert_eq!(
            socket_of_address("unix:path=/run/a%20b/bus%25,guid=1;tcp:host=x"),
            Some(PathBuf::from("/run/a b/bus%"))
        );
        assert_eq!(socket_of_address("unix:abstract=/tmp/dbus"), None);
        assert_eq!(socket_of_address("unix:path=/a%4"), None);
    }

    proptest::proptest! {
        #[test]
        fn globs_never_panic(pattern in "[a-z*?\\[\\]!^.-]{0,12}", name in "[a-z.\\[\\]-]{0,12}") {
            let _ = glob_match(&pattern, &name);
            proptest::prop_assert!(glob_match("*", &name));
            proptest::prop_assert!(glob_match(&name.replace(['[', ']', '*', '?'], "?"), &name));
        }
    }

    /// `ListUnits`' row as zbus marshals it.
    type UnitRow = (
        String,
        String,
        String,
        String,
        String,
        String,
        OwnedObjectPath,
        u32,
        String,
        OwnedObjectPath,
    );

    /// A stand-in for systemd, served by zbus through a real bus or on a peer-to-peer
    /// D-Bus connection: the collector's real calls and decoding, checked by another
    /// D-Bus implementation.
    mod fake {
        use super::*;

        pub(super) struct Manager {
            pub(super) units: Vec<UnitRow>,
            pub(super) patterns: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        }

        #[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
        impl Manager {
            fn list_units_by_patterns(
                &self,
                _states: Vec<String>,
                patterns: Vec<String>,
            ) -> Vec<UnitRow> {
                if let Ok(mut seen) = self.patterns.lock() {
                    *seen = patterns;
                }
                self.units.clone()
            }

            #[zbus(property)]
            fn system_state(&self) -> String {
                "degraded".into()
            }

            #[zbus(property)]
            fn version(&self) -> String {
                "252.19-1~deb12u1".into()
            }
        }

        pub(super) struct Service {
            pub(super) restarts: u32,
        }

        #[zbus::interface(name = "org.freedesktop.systemd1.Service")]
        impl Service {
            #[zbus(property, name = "Type")]
            fn kind(&self) -> String {
                "simple".into()
            }

            #[zbus(property, name = "NRestarts")]
            fn n_restarts(&self) -> u32 {
                self.restarts
            }
        }

        pub(super) struct UnitObject {
            pub(super) since_us: u64,
        }

        #[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
        impl UnitObject {
            #[zbus(property, name = "ActiveEnterTimestamp")]
            fn active_enter_timestamp(&self) -> u64 {
                self.since_us
            }

            #[zbus(property, name = "StateChangeTimestamp")]
            fn state_change_timestamp(&self) -> u64 {
                self.since_us
            }
        }
    }

    fn row(name: &str, active: &str, sub: &str, path: &str) -> UnitRow {
        let object = OwnedObjectPath::try_from(path).expect("path");
        (
            name.into(),
            format!("The {name}"),
            "loaded".into(),
            active.into(),
            sub.into(),
            String::new(),
            object,
            0,
            String::new(),
            OwnedObjectPath::try_from("/").expect("path"),
        )
    }

    /// Peer to peer, without a bus: the decoding and the error classes checked on any
    /// machine, dbus-daemon installed or not (the bus itself is the test below's).
    #[test]
    fn reads_a_fake_systemd_over_a_real_d_bus_connection() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        let patterns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let manager = fake::Manager {
            units: vec![
                row("web.service", "active", "running", "/u/web"),
                row("job.service", "failed", "failed", "/u/job"),
                row("dev-sda.device", "active", "plugged", "/u/dev"),
            ],
            patterns: patterns.clone(),
        };
        let since = 1_700_000_000_000_000;
        let serving = std::thread::spawn(move || {
            let guid = zbus::Guid::generate();
            zbus::blocking::connection::Builder::async_io_unix_stream(server)
                .server(guid)
                .and_then(|b| b.p2p().serve_at(MANAGER_PATH, manager))
                .and_then(|b| b.serve_at("/u/web", fake::Service { restarts: 4 }))
                .and_then(|b| b.serve_at("/u/web", fake::UnitObject { since_us: since }))
                .and_then(|b| b.serve_at("/u/job", fake::Service { restarts: 9 }))
                .and_then(|b| b.serve_at("/u/job", fake::UnitObject { since_us: since }))
                .and_then(|b| b.build())
                .expect("fake systemd")
        });
        let connection = DbusConnection::on_stream(client, CALL_TIMEOUT).expect("client");
        let _server = serving.join().expect("server thread");
        // As agent.toml writes it.
        let settings = toml::from_str(r#"include = ["*.service", "*.device"]"#).unwrap();
        let config = SystemdConfig::from_table(&settings).unwrap();
        let mut collector = SystemdCollector::with_connection(Roots::default(), config, connection);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(
            *patterns.lock().expect("lock"),
            ["*.service".to_string(), "*.device".to_string()]
        );
        assert_eq!(
            find(
                &out,
                UNIT_STATE,
                &[
                    ("name", "web.service"),
                    ("state", "active"),
                    ("type", "simple")
                ]
            )
            .map(|s| s.value),
            Some(1.0)
        );
        assert!(
            find(&out, UNIT_STATE, &[("name", "dev-sda.device")]).is_none(),
            "excluded"
        );
        assert_eq!(
            find(&out, RESTARTS, &[("name", "job.service")]).map(|s| s.value),
            Some(9.0)
        );
        assert_eq!(
            find(&out, START_TIME, &[("name", "web.service")]).map(|s| s.value),
            Some(1_700_000_000.0)
        );
        assert_eq!(find(&out, SYSTEM_RUNNING, &[]).map(|s| s.value), Some(0.0));
        assert_eq!(
            find(&out, VERSION, &[("version", "252.19-1~deb12u1")]).map(|s| s.value),
            Some(252.19)
        );
        assert_eq!(
            find(&out, UNITS, &[("state", "active")]).map(|s| s.value),
            Some(2.0)
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].check, "systemd:job.service");
        assert_eq!(out.events[0].state, CheckState::Critical);
        assert!(
            out.events[0].output.starts_with("job.service failed "),
            "{}",
            out.events[0].output
        );
        // An object that is not there is a method error (a unit gone between listing and
        // reading: not reported); a property of another type is a protocol error.
        let Bus::Connected(connection) = &mut collector.bus else {
            panic!("the collector let go of its connection");
        };
        match get::<u32>(
            connection,
            "/nowhere",
            "org.freedesktop.systemd1.Service",
            "NRestarts",
        ) {
            Err(DbusError::Method { name, .. }) => {
                assert!(name.starts_with("org.freedesktop.DBus.Error."), "{name}");
            }
            other => panic!("{other:?}"),
        }
        match get::<u64>(
            connection,
            "/u/web",
            "org.freedesktop.systemd1.Service",
            "NRestarts",
        ) {
            Err(DbusError::Protocol(m)) => assert!(m.contains(r#""u", not "t""#), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// The bus configuration of [`DbusDaemon`]: one socket, EXTERNAL authentication as
    /// on a system bus, and a policy that lets the test's connections own and call
    /// anything (a system bus's default policy lets no one own `org.freedesktop.systemd1`).
    const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

    /// A real `dbus-daemon` listening where the collector looks for the system bus of a
    /// root file system other than `/` (`run/dbus/system_bus_socket` under a scratch
    /// root that also has `run/systemd/system`), so that the collector runs unchanged:
    /// its own `connect`, with the SASL exchange, `Hello` and the bus's own signals.
    /// Killed on drop, so also when an assertion fails.
    struct DbusDaemon {
        root: tempfile::TempDir,
        daemon: std::process::Child,
    }

    impl DbusDaemon {
        /// `None`, after saying why, where `dbus-daemon` cannot run and `CI` is unset.
        fn start() -> Option<Self> {
            use std::io::BufRead;
            use std::process::{Command, Stdio};
            let root = tempfile::tempdir().expect("tempdir");
            for dir in ["run/systemd/system", "run/dbus"] {
                std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
            }
            let socket = root.path().join(SYSTEM_BUS_SOCKET.trim_start_matches('/'));
            let config = root.path().join("bus.conf");
            let text = BUS_CONFIG.replace("SOCKET", &socket.display().to_string());
            std::fs::write(&config, text).expect("bus config");
            let log = std::fs::File::create(root.path().join("dbus-daemon.log")).expect("log");
            let spawned = Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .args(["--nofork", "--nopidfile", "--print-address"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn();
            let mut daemon = match spawned {
                Ok(daemon) => daemon,
                Err(e) => {
                    let why = format!(
                        "this test runs the real dbus-daemon (Debian package dbus-daemon): {e}"
                    );
                    assert!(std::env::var_os("CI").is_none(), "{why}");
                    eprintln!("NOT RUN: {why}");
                    return None;
                }
            };
            let stdout = daemon.stdout.take().expect("piped stdout");
            let bus = Self { root, daemon };
            // It prints its address once it listens (or exits, and this reads nothing):
            // the sign it is ready, without waiting by the clock.
            let mut address = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut address);
            assert!(
                address.starts_with("unix:path="),
                "dbus-daemon printed {address:?}; its log: {}",
                std::fs::read_to_string(bus.root.path().join("dbus-daemon.log"))
                    .unwrap_or_default()
            );
            Some(bus)
        }

        fn address(&self) -> String {
            let socket = self
                .root
                .path()
                .join(SYSTEM_BUS_SOCKET.trim_start_matches('/'));
            format!("unix:path={}", socket.display())
        }

        fn roots(&self) -> Roots {
            let root = self.root.path();
            Roots::new(root.join("proc"), root.join("sys"), root)
        }
    }

    impl Drop for DbusDaemon {
        fn drop(&mut self) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    #[test]
    fn reads_a_fake_systemd_through_a_real_dbus_daemon() {
        let Some(bus) = DbusDaemon::start() else {
            return;
        };
        let patterns = std::sync::Arc::new(std::sync::Mutex::new(vec!["unset".to_string()]));
        let manager = fake::Manager {
            units: vec![
                row("web.service", "active", "running", "/u/web"),
                row("job.service", "failed", "failed", "/u/job"),
            ],
            patterns: patterns.clone(),
        };
        let since = 1_700_000_000_000_000;
        // The name is owned once `build` returns: zbus waits for RequestName's reply
        // (within the timeout, rather than for ever if the bus refused to pass it on).
        let _systemd = zbus::blocking::connection::Builder::address(bus.address().as_str())
            .map(|b| b.method_timeout(CALL_TIMEOUT))
            .and_then(|b| b.name(DESTINATION))
            .and_then(|b| b.serve_at(MANAGER_PATH, manager))
            .and_then(|b| b.serve_at("/u/web", fake::Service { restarts: 4 }))
            .and_then(|b| b.serve_at("/u/web", fake::UnitObject { since_us: since }))
            .and_then(|b| b.serve_at("/u/job", fake::Service { restarts: 9 }))
            .and_then(|b| b.serve_at("/u/job", fake::UnitObject { since_us: since }))
            .and_then(|b| b.build())
            .expect("the fake systemd owns org.freedesktop.systemd1");
        let mut collector = SystemdCollector::new(bus.roots());
        // Twice on one connection: the bus's own messages (NameAcquired after Hello) are
        // skipped, and the connection stays usable.
        for attempt in 1..=2 {
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            assert!(out.errors.is_empty(), "run {attempt}: {:?}", out.errors);
            assert!(matches!(collector.bus, Bus::Connected(_)), "run {attempt}");
            assert!(patterns.lock().expect("lock").is_empty(), "no include");
            let state = |name: &str, state: &str| {
                find(
                    &out,
                    UNIT_STATE,
                    &[("name", name), ("state", state), ("type", "simple")],
                )
                .map(|s| s.value)
            };
            assert_eq!(state("web.service", "active"), Some(1.0));
            assert_eq!(state("web.service", "failed"), Some(0.0));
            assert_eq!(state("job.service", "failed"), Some(1.0));
            assert_eq!(state("job.service", "active"), Some(0.0));
            assert_eq!(
                out.samples.iter().filter(|s| s.name == UNIT_STATE).count(),
                10
            );
            let value =
                |metric: &str, labels: &[(&str, &str)]| find(&out, metric, labels).map(|s| s.value);
            assert_eq!(value(UNITS, &[("state", "active")]), Some(1.0));
            assert_eq!(value(UNITS, &[("state", "failed")]), Some(1.0));
            assert_eq!(value(UNITS, &[("state", "inactive")]), Some(0.0));
            assert_eq!(value(RESTARTS, &[("name", "web.service")]), Some(4.0));
            assert_eq!(value(RESTARTS, &[("name", "job.service")]), Some(9.0));
            assert_eq!(
                value(START_TIME, &[("name", "web.service")]),
                Some(1_700_000_000.0)
            );
            assert_eq!(value(START_TIME, &[("name", "job.service")]), Some(0.0));
            assert_eq!(
                value(
                    SUB_STATE,
                    &[("name", "job.service"), ("sub_state", "failed")]
                ),
                Some(1.0)
            );
            assert_eq!(value(SYSTEM_RUNNING, &[]), Some(0.0), "degraded");
            assert_eq!(
                value(VERSION, &[("version", "252.19-1~deb12u1")]),
                Some(252.19)
            );
            assert_eq!(out.events.len(), 1, "{:?}", out.events);
            let event = &out.events[0];
            assert_eq!(
                (event.check.as_str(), event.state, event.attempt),
                ("systemd:job.service", CheckState::Critical, attempt)
            );
            assert!(
                event.output.starts_with("job.service failed ")
                    && event
                        .output
                        .ends_with(" ago (sub-state failed, load state loaded)"),
                "{}",
                event.output
            );
        }
    }

    #[test]
    fn a_bus_where_no_one_owns_the_systemd_name_is_a_clear_error() {
        let Some(bus) = DbusDaemon::start() else {
            return;
        };
        let mut collector = SystemdCollector::new(bus.roots());
        for _ in 0..2 {
            let started = Instant::now();
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            assert!(
                started.elapsed() < CALL_TIMEOUT,
                "the bus answers at once; the call must not wait for its deadline"
            );
            assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
            assert!(
                out.errors[0].starts_with(
                    "cannot list systemd units: org.freedesktop.DBus.Error.ServiceUnknown: "
                ) && out.errors[0].contains("org.freedesktop.systemd1"),
                "{}",
                out.errors[0]
            );
            assert!(out.samples.is_empty() && out.events.is_empty());
            // Reconnects next run, in case systemd was restarting.
            assert!(matches!(collector.bus, Bus::Disconnected));
        }
    }

    #[test]
    fn settings_are_read_into_the_config() {
        let parse = |text: &str| SystemdConfig::from_table(&toml::from_str(text).unwrap());
        assert_eq!(parse(""), Ok(SystemdConfig::default()));
        let all = "include = [\"*.service\"]\nexclude = [\"*.scope\"]\n\
                   restarts = false\nstart_time = false";
        assert_eq!(
            parse(all),
            Ok(SystemdConfig {
                include: vec!["*.service".into()],
                exclude: vec!["*.scope".into()],
                restarts: false,
                start_time: false,
            })
        );
        // A key given replaces its default: no exclusion at all.
        assert_eq!(parse("exclude = []").map(|c| c.exclude), Ok(vec![]));
        assert_eq!(
            parse("include = \"*.service\"").unwrap_err(),
            "bad setting `include` for collector systemd: invalid type: string \"*.service\", \
             expected a sequence"
        );
        assert_eq!(
            parse("includes = []").unwrap_err(),
            "unknown setting `includes` for collector systemd \
             (allowed: include, exclude, restarts, start_time, enabled, tier, interval, timeout)"
        );
    }
}
