//! `postgres` and `mysql` as the agent runs them: in `sysward-db`, a helper process of
//! their own, so that the agent carries no database driver and a host without a
//! database pays nothing for them (docs/performance.md, "Database collectors").
//!
//! The agent starts the helper when it builds such a collector (so that `check-config`
//! checks the settings with the collector's own code), keeps it between runs (its
//! connections stay open), and stops it when the collector goes (a reload, the agent's
//! stop). They talk in JSON, one object per line: the agent's [`Request`] on the helper's
//! standard input, the helper's [`Reply`] on its standard output; the helper's standard
//! error is the agent's. The helper ends when its input does, so an agent killed outright
//! leaves no helper behind.
//!
//! A helper that cannot be started, exits or does not answer within its run budget and a
//! grace period is reported as an error of the run, stopped, and started again on the
//! next run: the rest of the agent goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings;
use crate::{CollectError, Collector, Kind, Output, Sample};

/// The helper's place when the package installs it.
pub const DEFAULT_HELPER: &str = "/usr/lib/sysward/sysward-db";

/// The helper's file name, looked for beside the running binary when [`DEFAULT_HELPER`]
/// is not installed (a build tree).
const HELPER_NAME: &str = "sysward-db";

/// How long the helper may take to start and check the settings.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Time beyond the run budget the helper may take to answer a run: its own deadline
/// ends the run, so only a stuck helper needs this.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// The longest line read from the helper: far above any bounded output, so that a
/// broken helper cannot make the agent hold unbounded memory.
const MAX_LINE: u64 = 64 << 20;

/// What the agent asks of the helper.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Build `collector` from `settings` (its `[collectors.NAME]` table as TOML text, the
    /// agent's own keys and `helper` left out); the first request, answered by
    /// [`Reply::Ready`] or [`Reply::Refused`].
    Configure {
        /// `postgres` or `mysql`.
        collector: String,
        /// The settings, as TOML text.
        settings: String,
    },
    /// One run; answered by [`Reply::Output`].
    Collect,
}

/// What the helper answers.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The collector is built; a run ends within `run_budget_ms`.
    Ready {
        /// The collector's run budget in milliseconds.
        run_budget_ms: u64,
    },
    /// The settings were refused: the collector's own message.
    Refused {
        /// Names the key and what is wrong with it.
        error: String,
    },
    /// One run's samples and errors (the database collectors send no events).
    Output {
        /// The samples read.
        samples: Vec<WireSample>,
        /// The parts that failed.
        errors: Vec<String>,
    },
}

/// A [`Sample`] on the line: JSON has no NaN, so a value that is not a number is `null`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WireSample {
    /// The metric name.
    pub name: String,
    /// `true` for a counter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counter: bool,
    /// The value; `None` for NaN and infinities.
    pub value: Option<f64>,
    /// Label pairs in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

impl From<&Sample> for WireSample {
    fn from(sample: &Sample) -> Self {
        Self {
            name: sample.name.to_string(),
            counter: sample.kind == Kind::Counter,
            value: sample.value.is_finite().then_some(sample.value),
            labels: sample
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
        }
    }
}

impl From<WireSample> for Sample {
    fn from(wire: WireSample) -> Self {
        let kind = if wire.counter {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        Sample {
            name: wire.name.into(),
            labels: wire
                .labels
                .into_iter()
                .map(|(name, value)| (name.into(), value))
                .collect(),
            kind,
            value: wire.value.unwrap_or(f64::NAN),
        }
    }
}

/// The `postgres` or `mysql` collector, run by the helper.
#[derive(Debug)]
pub struct DatabaseHelper {
    name: &'static str,
    helper: Option<PathBuf>,
    settings: String,
    running: Option<Running>,
}

impl DatabaseHelper {
    /// Starts the helper for collector `name` with the settings of its table and waits
    /// for it to accept them. Besides the collector's own keys the table may name the
    /// `helper` (an absolute path; by default [`DEFAULT_HELPER`], else `sysward-db`
    /// beside the running binary).
    pub fn start(name: &'static str, table: &toml::Table) -> Result<Self, String> {
        let mut settings = table.clone();
        let helper = match settings.remove("helper") {
            None => None,
            Some(toml::Value::String(path)) if Path::new(&path).is_absolute() => {
                Some(PathBuf::from(path))
            }
            Some(other) => {
                return Err(settings::bad(
                    name,
                    "helper",
                    format!("{other} is not an absolute path in a string"),
                ));
            }
        };
        let settings = toml::to_string(&settings)
            .map_err(|error| format!("settings of collector {name}: {error}"))?;
        let mut collector = Self {
            name,
            helper,
            settings,
            running: None,
        };
        collector.running = Some(collector.spawn()?);
        Ok(collector)
    }

    /// The helper this collector runs.
    pub fn helper(&self) -> PathBuf {
        crate::helper_binary::locate(self.helper.as_deref(), DEFAULT_HELPER, HELPER_NAME)
    }

    fn spawn(&self) -> Result<Running, String> {
        let helper = self.helper();
        let mut running = Running::spawn(&helper).map_err(|error| {
            format!(
                "collector {}: cannot start {} ({error}); the database collectors run in \
                 it: install the sysward-db package",
                self.name,
                helper.display()
            )
        })?;
        let request = Request::Configure {
            collector: self.name.to_owned(),
            settings: self.settings.clone(),
        };
        match running.ask(&request, START_TIMEOUT) {
            Ok(Reply::Ready { run_budget_ms }) => {
                running.answer_within = Duration::from_millis(run_budget_ms) + ANSWER_GRACE;
                Ok(running)
            }
            Ok(Reply::Refused { error }) => Err(with_helper_key(&error)),
            Ok(other) => Err(format!(
                "collector {}: {} answered the settings with {other:?}",
                self.name,
                helper.display()
            )),
            Err(error) => Err(format!("collector {}: {error}", self.name)),
        }
    }

    /// One run through a running helper, started first if need be.
    fn run_once(&mut self) -> Result<(Vec<WireSample>, Vec<String>), String> {
        let mut running = match self.running.take() {
            Some(running) => running,
            None => self.spawn()?,
        };
        let within = running.answer_within;
        match running.ask(&Request::Collect, within) {
            Ok(Reply::Output { samples, errors }) => {
                self.running = Some(running);
                Ok((samples, errors))
            }
            Ok(other) => Err(format!("the helper answered a run with {other:?}")),
            Err(error) => Err(error),
        }
    }
}

impl Collector for DatabaseHelper {
    fn name(&self) -> &'static str {
        self.name
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        match self.run_once() {
            Ok((samples, errors)) => {
                out.samples.extend(samples.into_iter().map(Sample::from));
                out.errors.extend(errors);
            }
            Err(error) => out.error(format!("{error}; started again on the next run")),
        }
        Ok(())
    }
}

/// A started helper: its input, and its output lines as a reader thread receives them.
#[derive(Debug)]
struct Running {
    child: Child,
    input: ChildStdin,
    lines: Receiver<Result<String, String>>,
    answer_within: Duration,
}

impl Running {
    fn spawn(helper: &Path) -> std::io::Result<Self> {
        let mut child = Command::new(helper)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipe to the helper"));
        };
        let (sender, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("sysward-db-out".into())
            .spawn(move || read_lines(output, &sender))?;
        Ok(Self {
            child,
            input,
            lines,
            answer_within: START_TIMEOUT,
        })
    }

    /// Sends `request` and waits up to `within` for the reply; any failure leaves the
    /// helper to be dropped (and so stopped) by the caller.
    fn ask(&mut self, request: &Request, within: Duration) -> Result<Reply, String> {
        let mut line = serde_json::to_vec(request)
            .map_err(|error| format!("cannot encode a request: {error}"))?;
        line.push(b'\n');
        if let Err(error) = self
            .input
            .write_all(&line)
            .and_then(|()| self.input.flush())
        {
            return Err(format!(
                "cannot write to the helper: {error}{}",
                self.status()
            ));
        }
        match self.lines.recv_timeout(within) {
            Ok(Ok(line)) => serde_json::from_str(&line)
                .map_err(|error| format!("the helper sent a line that is not a reply: {error}")),
            Ok(Err(error)) => Err(error),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("the helper gave no answer within {within:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("the helper stopped{}", self.status()))
            }
        }
    }

    /// `" (exit status 1)"` once the helper has exited, else nothing.
    fn status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!(" ({status})"),
            _ => String::new(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The collector's message for an unknown key lists the keys it takes; the agent's
/// table takes `helper` too.
fn with_helper_key(error: &str) -> String {
    error.replacen("(allowed: ", "(allowed: helper, ", 1)
}

/// Sends each line of `output` until it ends or a line is too long.
fn read_lines(output: impl Read, sender: &mpsc::Sender<Result<String, String>>) {
    let mut output = BufReader::new(output);
    loop {
        let mut line = String::new();
        let read = (&mut output).take(MAX_LINE).read_line(&mut line);
        let (message, last) = match read {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') => (
                Err(format!(
                    "the helper sent a line longer than {MAX_LINE} bytes or cut short"
                )),
                true,
            ),
            Ok(_) => (Ok(line), false),
            Err(error) => (Err(format!("cannot read from the helper: {error}")), true),
        };
        if sender.send(message).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cross_the_line_unchanged_and_nan_as_null() {
        let sample = Sample::new("pg_up", Kind::Gauge, 1.0).label("server", "main");
        let wire = WireSample::from(&sample);
        let line = serde_json::to_string(&wire).expect("encodes");
        assert_eq!(
            line,
            r#"{"name":"pg_up","value":1.0,"labels":[["server","main"]]}"#
        );
        let back: WireSample = serde_json::from_str(&line).expect("decodes");
        assert_eq!(Sample::from(back), sample);

        let counter = Sample::new("c_total", Kind::Counter, f64::NAN);
        let line = serde_json::to_string(&WireSample::from(&counter)).expect("encodes");
        assert_eq!(line, r#"{"name":"c_total","counter":true,"value":null}"#);
        let back = Sample::from(serde_json::from_str::<WireSample>(&line).expect("decodes"));
        assert_eq!(back.kind, Kind::Counter);
        assert!(back.value.is_nan());
    }

    #[test]
    fn requests_and_replies_are_one_json_object_each() {
        let request = Request::Configure {
            collector: "postgres".into(),
            settings: "run_budget = \"2s\"\n".into(),
        };
        let line = serde_json::to_string(&request).expect("encodes");
        assert_eq!(
            line,
            r#"{"configure":{"collector":"postgres","settings":"run_budget = \"2s\"\n"}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Collect).expect("encodes"),
            r#""collect""#
        );
        let reply: Reply =
            serde_json::from_str(r#"{"ready":{"run_budget_ms":8000}}"#).expect("decodes");
        assert_eq!(
            reply,
            Reply::Ready {
                run_budget_ms: 8000
            }
        );
    }

    #[test]
    fn a_relative_helper_is_refused_naming_the_key() {
        let table: toml::Table = toml::from_str(r#"helper = "sysward-db""#).expect("toml");
        let error = DatabaseHelper::start("postgres", &table).expect_err("refused");
        assert!(
            error.starts_with("bad setting `helper` for collector postgres: "),
            "{error}"
        );
    }

    #[test]
    fn a_missing_helper_is_named_with_the_package_to_install() {
        let table: toml::Table =
            toml::from_str(r#"helper = "/nonexistent/sysward-db""#).expect("toml");
        let error = DatabaseHelper::start("mysql", &table).expect_err("refused");
        assert!(
            error.starts_with("collector mysql: cannot start /nonexistent/sysward-db ("),
            "{error}"
        );
        assert!(error.ends_with("install the sysward-db package"), "{error}");
    }

    #[test]
    fn long_or_cut_lines_are_errors_not_replies() {
        let (sender, lines) = mpsc::channel();
        read_lines(&b"{\"ready\":{\"run_budget_ms\":1}}\n{\"cut"[..], &sender);
        drop(sender);
        let got: Vec<_> = lines.iter().collect();
        assert_eq!(got[0], Ok("{\"ready\":{\"run_budget_ms\":1}}\n".to_owned()));
        assert!(matches!(&got[1], Err(message) if message.contains("cut short")));
        assert_eq!(got.len(), 2);
    }
}
