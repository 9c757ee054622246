//! `[[checks.script]]`: the operator's own check programs, under the Nagios plugin
//! contract.
//!
//! A run:
//! 1. The program is checked again as when the configuration was loaded (absolute
//!    path, owned by root or the agent's user, neither it nor any directory above it
//!    group- or world-writable: `sysward_platform::linux::trust`). A program that no
//!    longer passes is not run: UNKNOWN with the reason.
//! 2. It is executed directly (no shell) with `args`, in `/`, with a cleared
//!    environment holding only `[checks] env` and the check's own `env` (the check's
//!    wins), in a session and process group of its own. At the check's timeout the
//!    whole group is killed: UNKNOWN "timed out after Ns". When it exits, whatever it
//!    left running in its group is killed too. stdout and stderr are each kept up to
//!    `output_limit` (default 64 KiB); the rest is read, thrown away and noted in the
//!    long output, and the stdout line the limit cut short is left out.
//!    (`sysward_platform::linux::spawn`.)
//! 3. Its state is its exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Any other
//!    code, a death by signal, a timeout, or a program that cannot be executed (missing,
//!    not executable, a missing `#!` interpreter) is UNKNOWN with the reason as output
//!    and what the program printed as long output.
//! 4. Its stdout is either plugin output (`text | perfdata`, long output; see
//!    [`super::perfdata`]) or, when it looks like it, Prometheus exposition text (see
//!    [`sysward_wire::textfmt`]). stderr, if any, is appended to the long output (or is the
//!    output, when stdout is empty).
//!
//! Samples (the `check` label is added to each by [`super::Check`]):
//! - [`PERFDATA`]`{label}`: each perfdata value, in base units: `ms`, `us`, `ns` become
//!   seconds; `KB`, `MB`, `GB`, `TB` (powers of 1024, as the Nagios plugins write them,
//!   also `KiB`...) become bytes; `%`, `c` and units this does not know are kept as
//!   written; `U` (undetermined) gives no sample;
//! - [`PERFDATA_MIN`] and [`PERFDATA_MAX`]`{label}`, when given, scaled the same way;
//! - [`PERFDATA_WARNING_LOWER`], [`PERFDATA_WARNING_UPPER`],
//!   [`PERFDATA_CRITICAL_LOWER`], [`PERFDATA_CRITICAL_UPPER`]`{label}`: the finite
//!   bounds of the warning and critical ranges, scaled the same way, for ranges that
//!   alert *outside* (an `@` range has no such reading and gives none); a lower bound
//!   only when the range wrote one (`10:20`, not the implied 0 of `20`), so that a
//!   dashboard can draw the threshold lines;
//! - exposition text: each sample under its own name and labels, counter or gauge as
//!   its `# TYPE` says. A `check` label of its own is renamed `exported_check`; names
//!   starting with `sysward_check_` are Sysward's and are dropped (noted);
//! - [`CPU_SECONDS`]: user plus system CPU time of this run, [`MAX_RSS_BYTES`]: its
//!   peak resident memory (both from `wait4`, including the children it waited for);
//!   whenever the program ran.
//!
//! Samples are read from the output only when the program exited by itself (with any
//! code); the output of a program killed by its timeout or a signal is incomplete.
//!
//! Thresholds: a plugin applies its own thresholds and its exit code says what it
//! found; that code always stands. Only when it exits 0 (OK) are thresholds applied
//! here, to each value that has some: the check's own `[checks.script.thresholds.LABEL]`
//! (`warning` and/or `critical` ranges) where the check configures them for that
//! label, else the `warn`/`crit` ranges the plugin printed in that item. For exposition
//! text, `LABEL` is the metric name and applies to each of its series. Values are
//! compared as the plugin wrote them (before scaling to base units). The worst state
//! found wins and the output says which value was outside which range. This makes a
//! script that only prints numbers (and always exits 0) alert on thresholds set in
//! `agent.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::perfdata::Range;
use super::{Probe, Schedule};
use sysward_collectors::Tier;

/// Each perfdata value, in base units (gauge; label `label`).
pub const PERFDATA: &str = "sysward_check_perfdata";
/// A perfdata item's `min` (gauge; label `label`).
pub const PERFDATA_MIN: &str = "sysward_check_perfdata_min";
/// A perfdata item's `max` (gauge; label `label`).
pub const PERFDATA_MAX: &str = "sysward_check_perfdata_max";
/// Lower bound of a perfdata item's warning range (gauge; label `label`).
pub const PERFDATA_WARNING_LOWER: &str = "sysward_check_perfdata_warning_lower";
/// Upper bound of a perfdata item's warning range (gauge; label `label`).
pub const PERFDATA_WARNING_UPPER: &str = "sysward_check_perfdata_warning_upper";
/// Lower bound of a perfdata item's critical range (gauge; label `label`).
pub const PERFDATA_CRITICAL_LOWER: &str = "sysward_check_perfdata_critical_lower";
/// Upper bound of a perfdata item's critical range (gauge; label `label`).
pub const PERFDATA_CRITICAL_UPPER: &str = "sysward_check_perfdata_critical_upper";
/// CPU seconds (user + system) of one run (gauge).
pub const CPU_SECONDS: &str = "sysward_check_cpu_seconds";
/// Peak resident memory of one run (gauge).
pub const MAX_RSS_BYTES: &str = "sysward_check_max_rss_bytes";

/// Bytes of stdout, and of stderr, kept by default.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 * 1024;
/// The largest `output_limit` allowed.
pub const MAX_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;
/// Samples taken from one run's exposition text at most; the rest are dropped, noted.
pub const MAX_TEXT_SAMPLES: usize = 10_000;

/// One `[[checks.script]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptCheckConfig {
    /// Unique on the host; the `check` label.
    pub name: String,
    /// Its own interval (else its tier's).
    #[serde(default, deserialize_with = "super::duration")]
    pub interval: Option<Duration>,
    /// Its tier (default critical).
    #[serde(default, deserialize_with = "super::tier")]
    pub tier: Option<Tier>,
    /// Deadline of one run.
    #[serde(default, deserialize_with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Consecutive non-OK results before a state is hard (default 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The program: an absolute path, executed directly (no shell, no `PATH` search).
    pub command: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables for this check, over `[checks] env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes kept of stdout, and of stderr (`"64KiB"` by default, at most `"16MiB"`).
    #[serde(default, deserialize_with = "size")]
    pub output_limit: Option<u64>,
    /// Thresholds per perfdata label (or exposition metric name), applied when the
    /// program exits OK; see the module documentation.
    #[serde(default)]
    pub thresholds: BTreeMap<String, ThresholdConfig>,
}

/// `[checks.script.thresholds.LABEL]`: Nagios ranges (`"10"`, `"10:"`, `"~:10"`,
/// `"10:20"`, `"@10:20"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Outside it (inside for `@`): WARNING.
    #[serde(default)]
    pub warning: Option<String>,
    /// Outside it (inside for `@`): CRITICAL.
    #[serde(default)]
    pub critical: Option<String>,
}

/// Thresholds ready to apply.
#[derive(Debug, Clone, Default, PartialEq)]
struct Thresholds {
    warning: Option<Range>,
    critical: Option<Range>,
}

/// Deserialises a human size (`"64KiB"`) or a plain number of bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Bytes(n)) => Ok(Some(n)),
        Some(Size::Text(s)) => sysward_proto::units::parse_size(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// What the configuration of a check's program becomes once checked.
struct Validated {
    /// The whole environment of the program.
    env: Vec<(String, String)>,
    /// Bytes kept of each stream.
    output_limit: usize,
    /// Thresholds by label.
    thresholds: BTreeMap<String, Thresholds>,
}

/// Everything about a check's program that is checked before it can run at all.
fn validate(c: &ScriptCheckConfig, all: &super::ChecksConfig) -> Result<Validated, String> {
    let limit = c.output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT);
    if !(1..=MAX_OUTPUT_LIMIT).contains(&limit) {
        return Err(format!(
            "output_limit {limit} is outside 1 byte to {MAX_OUTPUT_LIMIT} bytes (16MiB)"
        ));
    }
    let mut env = all.env.clone();
    env.extend(c.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in &env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(format!(
                "environment variable name {key:?} is empty or holds `=` or NUL"
            ));
        }
        if value.contains('\0') {
            return Err(format!("environment variable {key} holds a NUL byte"));
        }
    }
    if let Some(arg) = c.args.iter().find(|a| a.contains('\0')) {
        return Err(format!("argument {arg:?} holds a NUL byte"));
    }
    let mut thresholds = BTreeMap::new();
    for (label, t) in &c.thresholds {
        if t.warning.is_none() && t.critical.is_none() {
            return Err(format!(
                "thresholds.{label:?} sets neither `warning` nor `critical`"
            ));
        }
        let parse = |which: &str, text: &Option<String>| {
            text.as_deref()
                .map(Range::parse)
                .transpose()
                .map_err(|e| format!("thresholds.{label:?}.{which}: {e}"))
        };
        thresholds.insert(
            label.clone(),
            Thresholds {
                warning: parse("warning", &t.warning)?,
                critical: parse("critical", &t.critical)?,
            },
        );
    }
    Ok(Validated {
        env: env.into_iter().collect(),
        output_limit: limit as usize,
        thresholds,
    })
}

pub(crate) fn build(
    c: &ScriptCheckConfig,
    all: &super::ChecksConfig,
) -> Result<(Box<dyn Probe>, Schedule, u32), String> {
    let schedule = Schedule {
        interval: c.interval,
        tier: c.tier,
        timeout: c.timeout,
    };
    let Validated {
        env,
        output_limit,
        thresholds,
    } = validate(c, all)?;
    let probe = imp::ScriptProbe::new(c, env, output_limit, thresholds)?;
    Ok((Box::new(probe), schedule, c.max_attempts.unwrap_or(1)))
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    /// Never built: script checks run on Linux only.
    pub(super) enum ScriptProbe {}

    impl ScriptProbe {
        pub(super) fn new(
            _c: &ScriptCheckConfig,
            _env: Vec<(String, String)>,
            _limit: usize,
            _thresholds: BTreeMap<String, Thresholds>,
        ) -> Result<Self, String> {
            Err("script checks are supported on Linux only".into())
        }
    }

    impl Probe for ScriptProbe {
        fn run(&mut self, _deadline: Duration) -> super::super::ProbeResult {
            match *self {}
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::path::Path;

    use sysward_platform::linux::spawn::{self, Finished, SpawnSpec, Termination};
    use sysward_platform::linux::trust;

    use super::super::ProbeResult;
    use super::super::perfdata::{self, PerfDatum};
    use super::*;
    use sysward_collectors::{CheckState, Kind, Sample};
    use sysward_wire::textfmt;

    /// A configured script check.
    pub(super) struct ScriptProbe {
        command: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        output_limit: usize,
        thresholds: BTreeMap<String, Thresholds>,
    }

    impl ScriptProbe {
        pub(super) fn new(
            c: &ScriptCheckConfig,
            env: Vec<(String, String)>,
            output_limit: usize,
            thresholds: BTreeMap<String, Thresholds>,
        ) -> Result<Self, String> {
            trust::check_program(&c.command).map_err(|e| format!("refusing to run it: {e}"))?;
            Ok(Self {
                command: c.command.clone(),
                args: c.args.clone(),
                env,
                output_limit,
                thresholds,
            })
        }
    }

    impl Probe for ScriptProbe {
        fn run(&mut self, deadline: Duration) -> ProbeResult {
            if let Err(e) = trust::check_program(&self.command) {
                return ProbeResult::new(
                    CheckState::Unknown,
                    format!("refusing to run {}: {e}", self.command.display()),
                );
            }
            let spec = SpawnSpec {
                program: &self.command,
                args: &self.args,
                env: &self.env,
                cwd: Path::new("/"),
                output_limit: self.output_limit,
                timeout: deadline,
            };
            match spawn::run(&spec) {
                Ok(done) => interpret(&done, deadline, self.output_limit, &self.thresholds),
                Err(e) => ProbeResult::new(CheckState::Unknown, e.to_string()),
            }
        }
    }

    /// `30s`, `1.5s`, `0.25s`.
    fn seconds(d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else {
            let text = format!("{:.3}", d.as_secs_f64());
            format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
        }
    }

    /// `64.0 KiB`, `10.0 MiB`: a size for a note.
    fn bytes(n: u64) -> String {
        if n >= 1 << 20 {
            format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
        } else if n >= 1 << 10 {
            format!("{:.1} KiB", n as f64 / f64::from(1 << 10))
        } else {
            format!("{n} bytes")
        }
    }

    /// Turns a finished run into a result; see the module documentation.
    pub(super) fn interpret(
        done: &Finished,
        timeout: Duration,
        output_limit: usize,
        thresholds: &BTreeMap<String, Thresholds>,
    ) -> ProbeResult {
        // Past the limit, the last line kept is cut short: leave it out, lest a cut
        // perfdata value (`a=12` kept as `a=1`) be read as a whole one.
        let kept = match (
            done.stdout.discarded,
            done.stdout.bytes.iter().rposition(|b| *b == b'\n'),
        ) {
            (0, _) => &done.stdout.bytes[..],
            (_, Some(end)) => &done.stdout.bytes[..=end],
            (_, None) => &[][..],
        };
        let stdout = String::from_utf8_lossy(kept);
        let stderr = String::from_utf8_lossy(&done.stderr.bytes);
        let mut notes: Vec<String> = Vec::new();
        for (name, captured) in [("stdout", &done.stdout), ("stderr", &done.stderr)] {
            if captured.discarded > 0 {
                notes.push(format!(
                    "[{name} cut at {}: {} more discarded]",
                    bytes(output_limit as u64),
                    bytes(captured.discarded)
                ));
            }
        }
        let (state, reason) = match done.termination {
            Termination::Exited(0) => (CheckState::Ok, None),
            Termination::Exited(1) => (CheckState::Warning, None),
            Termination::Exited(2) => (CheckState::Critical, None),
            Termination::Exited(3) => (CheckState::Unknown, None),
            Termination::Exited(code) => (
                CheckState::Unknown,
                Some(format!(
                    "exited with code {code}, which is not a plugin state (0 to 3)"
                )),
            ),
            Termination::Signaled {
                signal,
                core_dumped,
            } => (
                CheckState::Unknown,
                Some(format!(
                    "killed by {}{}",
                    Termination::signal_name(signal),
                    if core_dumped { " (core dumped)" } else { "" }
                )),
            ),
            Termination::TimedOut => (
                CheckState::Unknown,
                Some(format!("timed out after {}", seconds(timeout))),
            ),
        };
        let exited = matches!(done.termination, Termination::Exited(_));

        let mut result = ProbeResult::new(state, String::new());
        let mut values: Vec<Value> = Vec::new();
        let (text, long_text) = if textfmt::looks_like_exposition(&stdout) {
            let exposition = textfmt::parse_exposition(&stdout);
            let count = exposition.samples.len();
            if exited {
                samples_from_text(
                    exposition.samples,
                    &mut result.samples,
                    &mut values,
                    &mut notes,
                );
                notes.extend(exposition.errors.into_iter().map(|e| format!("[{e}]")));
            }
            (
                format!("{count} samples in exposition format"),
                String::new(),
            )
        } else {
            let out = perfdata::split_output(&stdout);
            if exited {
                let parsed = perfdata::parse_perfdata(&out.perfdata);
                for item in &parsed.items {
                    samples_from_perfdata(item, &mut result.samples);
                    if let Some(v) = item.value {
                        values.push((
                            item.label.clone(),
                            v,
                            item.uom.clone(),
                            item.warn.clone(),
                            item.crit.clone(),
                        ));
                    }
                }
                if !parsed.skipped.is_empty() {
                    notes.push(format!(
                        "[perfdata not understood: {}]",
                        parsed.skipped.join(" ")
                    ));
                }
            }
            (out.text, out.long_text)
        };

        let stderr = stderr.trim_end();
        let mut long: Vec<String> = Vec::new();
        let mut stderr_block = (!stderr.is_empty()).then(|| format!("stderr:\n{stderr}"));
        match reason {
            Some(reason) => {
                result.output = reason;
                long.push(text);
            }
            None if !text.is_empty() => result.output = text,
            None if !stderr.is_empty() => {
                let (first, rest) = stderr.split_once('\n').unwrap_or((stderr, ""));
                result.output = first.to_owned();
                stderr_block = (!rest.is_empty()).then(|| format!("stderr:\n{rest}"));
            }
            None => result.output = "(no output)".into(),
        }
        long.push(long_text);
        long.extend(stderr_block);
        long.retain(|l| !l.is_empty());

        if done.termination == Termination::Exited(0) {
            apply_thresholds(&mut result, &values, thresholds);
        }
        long.extend(notes);
        result.long_output = long.join("\n");
        result.samples.push(Sample::new(
            CPU_SECONDS,
            Kind::Gauge,
            (done.usage.user + done.usage.system).as_secs_f64(),
        ));
        result.samples.push(Sample::new(
            MAX_RSS_BYTES,
            Kind::Gauge,
            done.usage.max_rss_bytes as f64,
        ));
        result
    }

    fn samples_from_perfdata(item: &PerfDatum, out: &mut Vec<Sample>) {
        let scale = item.scale().unwrap_or(1.0);
        let mut push = |name: &'static str, v: f64| {
            out.push(Sample::new(name, Kind::Gauge, v * scale).label("label", item.label.as_str()));
        };
        if let Some(v) = item.value {
            push(PERFDATA, v);
        }
        if let Some(v) = item.min {
            push(PERFDATA_MIN, v);
        }
        if let Some(v) = item.max {
            push(PERFDATA_MAX, v);
        }
        for (range, lower, upper) in [
            (&item.warn, PERFDATA_WARNING_LOWER, PERFDATA_WARNING_UPPER),
            (&item.crit, PERFDATA_CRITICAL_LOWER, PERFDATA_CRITICAL_UPPER),
        ] {
            let Some(range) = range.as_ref().filter(|r| !r.inside) else {
                continue;
            };
            if range.explicit_start {
                push(lower, range.start);
            }
            if range.end.is_finite() {
                push(upper, range.end);
            }
        }
    }

    type Value = (String, f64, String, Option<Range>, Option<Range>);

    fn samples_from_text(
        samples: Vec<textfmt::TextSample>,
        out: &mut Vec<Sample>,
        values: &mut Vec<Value>,
        notes: &mut Vec<String>,
    ) {
        let mut reserved = 0usize;
        let total = samples.len();
        for s in samples.into_iter().take(MAX_TEXT_SAMPLES) {
            if s.name.starts_with("sysward_check_") {
                reserved += 1;
                continue;
            }
            values.push((s.name.clone(), s.value, String::new(), None, None));
            let kind = if s.counter {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            let mut sample = Sample::new(s.name, kind, s.value);
            for (name, value) in s.labels {
                let name = if name == "check" {
                    "exported_check".to_owned()
                } else {
                    name
                };
                sample.labels.push((name.into(), value));
            }
            out.push(sample);
        }
        if reserved > 0 {
            notes.push(format!(
                "[{reserved} samples dropped: names starting with sysward_check_ are Sysward's]"
            ));
        }
        if total > MAX_TEXT_SAMPLES {
            notes.push(format!(
                "[{} samples dropped past the first {MAX_TEXT_SAMPLES}]",
                total - MAX_TEXT_SAMPLES
            ));
        }
    }

    /// Raises an OK result to WARNING or CRITICAL by thresholds; see the module docs.
    fn apply_thresholds(
        result: &mut ProbeResult,
        values: &[Value],
        configured: &BTreeMap<String, Thresholds>,
    ) {
        let mut worst: Option<(CheckState, String)> = None;
        let mut breaches = 0usize;
        for (label, v, uom, warn, crit) in values {
            let (warning, critical) = match configured.get(label) {
                Some(t) => (t.warning.as_ref(), t.critical.as_ref()),
                None => (warn.as_ref(), crit.as_ref()),
            };
            let found = if let Some(r) = critical.filter(|r| r.alerts(*v)) {
                Some((CheckState::Critical, "critical", r))
            } else {
                warning
                    .filter(|r| r.alerts(*v))
                    .map(|r| (CheckState::Warning, "warning", r))
            };
            let Some((state, which, range)) = found else {
                continue;
            };
            breaches += 1;
            if worst.as_ref().is_none_or(|(s, _)| state > *s) {
                let why = format!(
                    "{label}={v}{uom} is {} the {which} range {range}",
                    if range.inside { "inside" } else { "outside" }
                );
                worst = Some((state, why));
            }
        }
        if let Some((state, why)) = worst {
            result.state = state;
            let more = if breaches > 1 {
                format!(", and {} more", breaches - 1)
            } else {
                String::new()
            };
            result.output = if result.output.is_empty() {
                format!("{why}{more}")
            } else {
                format!("{} ({why}{more})", result.output)
            };
        }
    }

    #[cfg(test)]
    mod tests {
        use sysward_platform::linux::spawn::{Captured, Usage};

        use super::*;

        fn finished(termination: Termination, stdout: &str) -> Finished {
            Finished {
                termination,
                stdout: Captured {
                    bytes: stdout.as_bytes().to_vec(),
                    discarded: 0,
                },
                stderr: Captured::default(),
                usage: Usage {
                    user: Duration::from_millis(20),
                    system: Duration::from_millis(5),
                    max_rss_bytes: 4096,
                },
                elapsed: Duration::from_millis(30),
            }
        }

        fn run(done: &Finished) -> ProbeResult {
            interpret(done, Duration::from_secs(10), 65536, &BTreeMap::new())
        }

        fn value(result: &ProbeResult, name: &str, label: &str) -> Option<f64> {
            result
                .samples
                .iter()
                .find(|s| s.name == name && s.labels.iter().any(|(_, v)| v == label))
                .map(|s| s.value)
        }

        #[test]
        fn perfdata_becomes_samples_in_base_units() {
            let r = run(&finished(
                Termination::Exited(0),
                "PING OK - rta 0.2ms | rta=250ms;100:;1000;0; mem=2KB;;;0;4 load=0.5;~:2;@3:4 free=U\nmore\n",
            ));
            assert_eq!(r.state, CheckState::Ok);
            assert_eq!(r.output, "PING OK - rta 0.2ms");
            assert_eq!(r.long_output, "more");
            assert_eq!(value(&r, PERFDATA, "rta"), Some(0.25));
            assert_eq!(value(&r, PERFDATA_WARNING_LOWER, "rta"), Some(0.1));
            assert_eq!(value(&r, PERFDATA_WARNING_UPPER, "rta"), None);
            assert_eq!(value(&r, PERFDATA_CRITICAL_UPPER, "rta"), Some(1.0));
            assert_eq!(value(&r, PERFDATA_CRITICAL_LOWER, "rta"), None);
            assert_eq!(value(&r, PERFDATA_MIN, "rta"), Some(0.0));
            assert_eq!(value(&r, PERFDATA, "mem"), Some(2048.0));
            assert_eq!(value(&r, PERFDATA_MAX, "mem"), Some(4096.0));
            assert_eq!(value(&r, PERFDATA_WARNING_UPPER, "load"), Some(2.0));
            // An `@` range has no bounds to draw.
            assert_eq!(value(&r, PERFDATA_CRITICAL_LOWER, "load"), None);
            assert_eq!(value(&r, PERFDATA, "free"), None);
            assert_eq!(
                r.samples
                    .iter()
                    .find(|s| s.name == CPU_SECONDS)
                    .map(|s| s.value),
                Some(0.025)
            );
            assert_eq!(
                r.samples
                    .iter()
                    .find(|s| s.name == MAX_RSS_BYTES)
                    .map(|s| s.value),
                Some(4096.0)
            );
        }

        #[test]
        fn exit_codes_and_reasons() {
            let cases = [
                (Termination::Exited(1), CheckState::Warning, "W"),
                (Termination::Exited(2), CheckState::Critical, "W"),
                (Termination::Exited(3), CheckState::Unknown, "W"),
                (
                    Termination::Exited(7),
                    CheckState::Unknown,
                    "exited with code 7, which is not a plugin state (0 to 3)",
                ),
                (
                    Termination::Signaled {
                        signal: 11,
                        core_dumped: true,
                    },
                    CheckState::Unknown,
                    "killed by SIGSEGV (core dumped)",
                ),
                (
                    Termination::TimedOut,
                    CheckState::Unknown,
                    "timed out after 10s",
                ),
            ];
            for (termination, state, output) in cases {
                let r = run(&finished(termination, "W | a=1\n"));
                assert_eq!((r.state, r.output.as_str()), (state, output));
                if output != "W" {
                    assert!(r.long_output.starts_with('W'), "{}", r.long_output);
                }
                // Samples only from a program that exited by itself.
                let exited = matches!(termination, Termination::Exited(_));
                assert_eq!(value(&r, PERFDATA, "a").is_some(), exited);
            }
            assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
            assert_eq!(seconds(Duration::from_millis(250)), "0.25s");
        }

        #[test]
        fn thresholds_apply_only_to_an_ok_exit_and_the_checks_own_win() {
            // The plugin's own ranges: 12 is outside 0..10 (critical).
            let r = run(&finished(
                Termination::Exited(0),
                "fine | a=12;5;10 b=1;5;10\n",
            ));
            assert_eq!(r.state, CheckState::Critical);
            assert_eq!(r.output, "fine (a=12 is outside the critical range 10)");
            // A non-OK exit stands as it is.
            let r = run(&finished(Termination::Exited(1), "meh | a=12;5;10\n"));
            assert_eq!((r.state, r.output.as_str()), (CheckState::Warning, "meh"));
            // The check's own thresholds replace the plugin's for that label.
            let mut own = BTreeMap::new();
            own.insert(
                "a".to_string(),
                Thresholds {
                    warning: Some(Range::parse("20").expect("range")),
                    critical: None,
                },
            );
            let done = finished(Termination::Exited(0), "fine | a=12;5;10 b=30;5;10\n");
            let r = interpret(&done, Duration::from_secs(1), 1024, &own);
            assert_eq!(r.state, CheckState::Critical);
            assert_eq!(r.output, "fine (b=30 is outside the critical range 10)");
            own.insert(
                "b".to_string(),
                Thresholds {
                    warning: Some(Range::parse("@25:35").expect("range")),
                    critical: None,
                },
            );
            let r = interpret(&done, Duration::from_secs(1), 1024, &own);
            assert_eq!(r.state, CheckState::Warning);
            assert_eq!(r.output, "fine (b=30 is inside the warning range @25:35)");
        }

        #[test]
        fn exposition_text_is_accepted() {
            let text = "# TYPE jobs_total counter\njobs_total{queue=\"a\",check=\"x\"} 5\nqueue_depth 120\nsysward_check_status 0\n";
            let mut own = BTreeMap::new();
            own.insert(
                "queue_depth".to_string(),
                Thresholds {
                    warning: Some(Range::parse("100").expect("range")),
                    critical: Some(Range::parse("1000").expect("range")),
                },
            );
            let r = interpret(
                &finished(Termination::Exited(0), text),
                Duration::from_secs(1),
                1024,
                &own,
            );
            assert_eq!(r.state, CheckState::Warning);
            assert_eq!(
                r.output,
                "3 samples in exposition format (queue_depth=120 is outside the warning range 100)"
            );
            let jobs = r
                .samples
                .iter()
                .find(|s| s.name == "jobs_total")
                .expect("jobs");
            assert_eq!(jobs.kind, Kind::Counter);
            assert_eq!(
                jobs.labels,
                [
                    (sysward_collectors::Name::from("queue"), "a".to_string()),
                    (
                        sysward_collectors::Name::from("exported_check"),
                        "x".to_string()
                    )
                ]
            );
            assert!(!r.samples.iter().any(|s| s.name == "sysward_check_status"));
            assert!(
                r.long_output.contains("1 samples dropped"),
                "{}",
                r.long_output
            );
        }

        #[test]
        fn stderr_and_truncation_are_reported() {
            let mut done = finished(Termination::Exited(2), "");
            done.stderr.bytes = b"boom\ndetail\n".to_vec();
            let r = run(&done);
            assert_eq!(r.output, "boom");
            assert_eq!(r.long_output, "stderr:\ndetail");
            let mut done = finished(Termination::Exited(0), "OK\n");
            done.stdout.discarded = 10 << 20;
            done.stderr.bytes = b"warning: x\n".to_vec();
            let r = run(&done);
            assert_eq!(r.output, "OK");
            assert_eq!(
                r.long_output,
                "stderr:\nwarning: x\n[stdout cut at 64.0 KiB: 10.0 MiB more discarded]"
            );
            let r = run(&finished(Termination::Exited(0), ""));
            assert_eq!(r.output, "(no output)");
            // The line cut at the limit is left out, with its perfdata.
            let mut done = finished(Termination::Exited(0), "OK | a=1\nmore | b=12");
            done.stdout.discarded = 5;
            let r = run(&done);
            assert_eq!(r.output, "OK");
            assert_eq!(value(&r, PERFDATA, "a"), Some(1.0));
            assert_eq!(value(&r, PERFDATA, "b"), None);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::{CheckContext, ChecksConfig, build as build_checks};
    use sysward_collectors::{CheckState, Event, Output, Sample};

    /// A scratch directory that script checks will trust: not under the system's
    /// world-writable `/tmp`, but beside the build's `target` directory, else in
    /// `$HOME/.cache`.
    fn scratch() -> tempfile::TempDir {
        let candidates = [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sysward-script-tests"),
            std::env::home_dir()
                .unwrap_or_default()
                .join(".cache/sysward-script-tests"),
        ];
        for base in candidates {
            if fs::create_dir_all(&base).is_err() {
                continue;
            }
            let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o755));
            let Ok(dir) = tempfile::Builder::new().prefix("t").tempdir_in(&base) else {
                continue;
            };
            let real = fs::canonicalize(dir.path()).expect("canonical");
            if sysward_platform::linux::trust::check_directory(&real).is_ok() {
                return dir;
            }
        }
        panic!("no scratch directory in a chain of trusted directories");
    }

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = fs::canonicalize(dir).expect("canonical").join(name);
        fs::write(&path, body).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn config(text: &str) -> ChecksConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn check_toml(path: &Path, extra: &str) -> String {
        format!(
            "[[script]]\nname = \"t\"\ncommand = \"{}\"\ntimeout = \"5s\"\n{extra}\n",
            path.display()
        )
    }

    /// Builds the one check of `text` and runs it once.
    fn run_once(text: &str) -> (Event, Vec<Sample>) {
        let mut jobs = build_checks(&config(text), &CheckContext::default()).expect("builds");
        assert_eq!(jobs.len(), 1);
        let mut out = Output::default();
        jobs[0].collector.collect(&mut out).expect("collects");
        assert_eq!(out.events.len(), 1);
        (out.events.remove(0), out.samples)
    }

    fn build_error(text: &str) -> String {
        match build_checks(&config(text), &CheckContext::default()) {
            Ok(_) => panic!("built: {text}"),
            Err(e) => e.to_string(),
        }
    }

    fn sample(samples: &[Sample], name: &str) -> Option<f64> {
        samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn the_four_plugin_states_and_perfdata() {
        let dir = scratch();
        for (code, state) in [
            (0, CheckState::Ok),
            (1, CheckState::Warning),
            (2, CheckState::Critical),
            (3, CheckState::Unknown),
        ] {
            let path = script(
                dir.path(),
                &format!("s{code}"),
                &format!(
                    "#!/bin/sh\necho \"STATE {code} | t=5ms;;;0 'a b'=3KB\"\necho long\nexit {code}\n"
                ),
                0o755,
            );
            let (event, samples) = run_once(&check_toml(&path, ""));
            assert_eq!(event.state, state);
            assert_eq!(event.output, format!("STATE {code}"));
            assert_eq!(event.long_output, "long");
            assert_eq!(event.check, "t");
            let t = samples
                .iter()
                .find(|s| s.name == PERFDATA && s.labels.contains(&("label".into(), "t".into())))
                .expect("t");
            assert_eq!(
                t.labels[0],
                (sysward_collectors::Name::from("check"), "t".to_string())
            );
            assert_eq!(t.value, 0.005);
            assert!(
                samples
                    .iter()
                    .any(|s| s.name == PERFDATA && s.value == 3072.0)
            );
            assert_eq!(
                sample(&samples, "sysward_check_status"),
                Some(f64::from(code))
            );
            assert!(sample(&samples, MAX_RSS_BYTES).is_some_and(|v| v > 0.0));
            assert!(sample(&samples, CPU_SECONDS).is_some());
        }
    }

    #[test]
    fn other_exit_codes_crashes_and_missing_interpreters_are_unknown() {
        let dir = scratch();
        let cases = [
            (
                "#!/bin/sh\necho seven\nexit 7\n",
                "exited with code 7, which is not a plugin state (0 to 3)",
            ),
            (
                "#!/bin/sh\necho about to crash\nkill -SEGV $$\n",
                "killed by SIGSEGV",
            ),
        ];
        for (i, (body, output)) in cases.iter().enumerate() {
            let path = script(dir.path(), &format!("c{i}"), body, 0o755);
            let (event, _) = run_once(&check_toml(&path, ""));
            assert_eq!(event.state, CheckState::Unknown);
            assert_eq!(event.output, *output);
            assert!(!event.long_output.is_empty());
        }
        let path = script(dir.path(), "nointerp", "#!/nonexistent\necho hi\n", 0o755);
        let (event, samples) = run_once(&check_toml(&path, ""));
        assert_eq!(event.state, CheckState::Unknown);
        assert_eq!(
            event.output,
            format!(
                "cannot execute {}: No such file or directory (os error 2) (its interpreter \"/nonexistent\" is missing)",
                path.display()
            )
        );
        assert!(sample(&samples, CPU_SECONDS).is_none());
    }

    #[test]
    fn a_timeout_kills_the_script_and_the_child_it_forked() {
        let dir = scratch();
        let pidfile = dir.path().join("child.pid");
        let path = script(
            dir.path(),
            "slow",
            "#!/bin/sh\nsleep 30 &\necho $! > \"$PIDFILE\"\necho waiting\nsleep 30\n",
            0o755,
        );
        let text = format!(
            "[[script]]\nname = \"t\"\ncommand = \"{}\"\ntimeout = \"1s\"\nenv = {{ PIDFILE = \"{}\" }}\n",
            path.display(),
            pidfile.display()
        );
        let started = Instant::now();
        let (event, _) = run_once(&text);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(event.state, CheckState::Unknown);
        assert_eq!(event.output, "timed out after 1s");
        assert_eq!(event.long_output, "waiting");
        let child: i32 = fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        // Gone, or dead and waiting for its new parent to reap it.
        let mut dead = false;
        for _ in 0..100 {
            match fs::read_to_string(format!("/proc/{child}/stat")) {
                Err(_) => dead = true,
                Ok(stat) => {
                    dead = sysward_platform::linux::parse_pid_stat(&stat)
                        .is_ok_and(|s| matches!(s.state, 'Z' | 'X'));
                }
            }
            if dead {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead, "the forked child {child} outlived the timeout");
    }

    #[test]
    fn ten_megabytes_of_output_are_capped_and_noted() {
        let dir = scratch();
        let path = script(
            dir.path(),
            "chatty",
            "#!/bin/sh\nyes | head -c 10000000\nexit 1\n",
            0o755,
        );
        let started = Instant::now();
        let (event, _) = run_once(&check_toml(&path, ""));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(event.state, CheckState::Warning);
        assert_eq!(event.output, "y");
        assert!(
            event
                .long_output
                .ends_with("[stdout cut at 64.0 KiB: 9.5 MiB more discarded]"),
            "{}",
            &event.long_output[event.long_output.len().saturating_sub(100)..]
        );
        assert!(event.long_output.len() < 70_000);
        // A smaller limit of the check's own.
        let (event, _) = run_once(&check_toml(&path, "output_limit = \"1KiB\""));
        assert!(
            event.long_output.len() < 2_000,
            "{}",
            event.long_output.len()
        );
    }

    #[test]
    fn a_writable_script_or_directory_is_refused_when_loaded_and_when_run() {
        let dir = scratch();
        let path = script(dir.path(), "ww", "#!/bin/sh\necho OK\n", 0o777);
        let error = build_error(&check_toml(&path, ""));
        assert_eq!(
            error,
            format!(
                "check script[0] \"t\": refusing to run it: program {} is world-writable (mode 0777)",
                path.display()
            )
        );
        let path = script(dir.path(), "gw", "#!/bin/sh\necho OK\n", 0o775);
        assert!(build_error(&check_toml(&path, "")).contains("group-writable"));

        // In a sticky, world-writable directory, as in /tmp.
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        let path = script(&open, "inside", "#!/bin/sh\necho OK\n", 0o755);
        let text = check_toml(&path, "");
        run_once(&text); // trusted as it is
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let error = build_error(&text);
        assert!(
            error.ends_with(&format!(
                "directory {} is world-writable (mode 1777)",
                fs::canonicalize(&open).expect("canonical").display()
            )),
            "{error}"
        );
        assert!(build_error(&check_toml(Path::new("/tmp/x"), "")).contains("world-writable"));
        assert!(
            build_error(&check_toml(Path::new("relative/x"), "")).contains("not an absolute path")
        );

        // Loaded while fine, changed afterwards: refused at the next run.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut jobs = build_checks(&config(&text), &CheckContext::default()).expect("builds");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o757)).expect("chmod");
        let mut out = Output::default();
        jobs[0].collector.collect(&mut out).expect("collects");
        assert_eq!(out.events[0].state, CheckState::Unknown);
        assert_eq!(
            out.events[0].output,
            format!(
                "refusing to run {0}: program {0} is world-writable (mode 0757)",
                path.display()
            )
        );
    }

    #[test]
    fn the_environment_holds_only_what_is_configured() {
        let dir = scratch();
        let path = script(
            dir.path(),
            "env",
            "#!/bin/sh\necho env\nexec /usr/bin/env\n",
            0o755,
        );
        let text = format!(
            "[env]\nGLOBAL = \"g\"\nBOTH = \"global\"\n{}",
            check_toml(&path, "env = { OWN = \"o\", BOTH = \"check\" }")
        );
        let (event, _) = run_once(&text);
        let mut vars: Vec<&str> = event
            .long_output
            .lines()
            // The shell itself exports PWD; nothing else comes from anywhere else.
            .filter(|l| !l.starts_with("PWD="))
            .collect();
        vars.sort_unstable();
        assert_eq!(vars, ["BOTH=check", "GLOBAL=g", "OWN=o"]);
        assert!(event.long_output.contains("PWD=/\n") || event.long_output.ends_with("PWD=/"));
    }

    #[test]
    fn exposition_text_from_a_script() {
        let dir = scratch();
        let path = script(
            dir.path(),
            "prom",
            "#!/bin/sh\necho '# TYPE backups_total counter'\necho 'backups_total{target=\"nas\"} 42'\necho 'backup_age_seconds 7200'\n",
            0o755,
        );
        let (event, samples) = run_once(&check_toml(
            &path,
            "[script.thresholds.backup_age_seconds]\ncritical = \"~:3600\"",
        ));
        assert_eq!(event.state, CheckState::Critical);
        assert_eq!(
            event.output,
            "2 samples in exposition format (backup_age_seconds=7200 is outside the critical range ~:3600)"
        );
        let backups = samples
            .iter()
            .find(|s| s.name == "backups_total")
            .expect("sample");
        assert_eq!(backups.kind, sysward_collectors::Kind::Counter);
        assert_eq!(
            backups.labels,
            [
                (sysward_collectors::Name::from("check"), "t".to_string()),
                (sysward_collectors::Name::from("target"), "nas".to_string())
            ]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let dir = scratch();
        let path = script(dir.path(), "ok", "#!/bin/sh\necho OK\n", 0o755);
        for (extra, message) in [
            ("output_limit = 0", "output_limit 0 is outside"),
            ("output_limit = \"1GiB\"", "is outside 1 byte"),
            ("env = { \"A=B\" = \"x\" }", "holds `=`"),
            (
                "[script.thresholds.x]\nwarning = \"5:1\"",
                "thresholds.\"x\".warning",
            ),
            ("[script.thresholds.x]", "sets neither"),
        ] {
            let error = build_error(&check_toml(&path, extra));
            assert!(error.contains(message), "{extra}: {error}");
        }
        let error = toml::from_str::<ChecksConfig>(&check_toml(&path, "shell = true"))
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("unknown field `shell`"), "{error}");
    }
}
