//! What the database collectors share (`postgres` and `mysql`): their
//! own small runtime, the deadline of one run, passwords read from files, values read
//! from text, and the counter of objects left out past a limit.
//!
//! Both drivers are asynchronous (tokio), while a collector is synchronous and runs on
//! the agent's collector thread or its blocking pool. Each collector therefore owns a
//! current-thread runtime, built on its first run (a collector without servers never
//! builds one) and kept: it starts no thread, and the connections it holds stay open
//! between runs and are only driven while a run waits on them. Every server of a run is
//! queried concurrently on it, each bounded by the run's budget, so one server that hangs
//! costs the others nothing and the run ends by its deadline.

#[cfg(feature = "postgres")]
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinError;
use tokio::time::Instant;

use crate::{Kind, Output, Sample};

/// Builds the runtime a database collector drives its connections on.
pub(crate) fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| format!("cannot start the collector's runtime: {error}"))
}

/// One server of a database collector: the state it keeps between runs, moved into its
/// task for a run and back.
pub(crate) trait Server: Send + Sized + 'static {
    /// The collector's settings, read by every server's run.
    type Config: Send + Sync + 'static;
    /// The collector's name, which starts each error about a server.
    const COLLECTOR: &'static str;
    /// The gauge, labelled `server`, that says whether the server answered this run.
    const UP: &'static str;

    /// The server's configured name, its `server` label.
    fn name(&self) -> &str;
    /// The state the server starts again from after its task panicked.
    fn fresh(&self) -> Self;
    /// Connects when it must and reads the server's statistics into `out`.
    fn read(
        &mut self,
        config: &Self::Config,
        deadline: Instant,
        out: &mut Output,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Drops the connection, so that the next run makes a new one.
    fn disconnect(&mut self);
    /// Samples sent after the `UP` gauge of every run that did not panic.
    fn finish(&self, _out: &mut Output) {}
}

/// Reads every server in `servers` concurrently on `runtime` (built on the first call),
/// all within `budget`, and adds their samples and errors to `out` in server order.
pub(crate) fn collect_all<S: Server>(
    runtime: &mut Option<Runtime>,
    servers: &mut [Option<S>],
    config: &Arc<S::Config>,
    budget: Duration,
    out: &mut Output,
) {
    if servers.is_empty() {
        return;
    }
    let Some(runtime) = started(runtime, out) else {
        return;
    };
    let states: Vec<(usize, S)> = servers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, slot)| slot.take().map(|state| (i, state)))
        .collect();
    let finished = runtime.block_on(read_all(states, config.clone(), budget));
    for (i, spare, result) in finished {
        servers[i] = Some(match result {
            Ok((state, server_out)) => {
                out.samples.extend(server_out.samples);
                out.errors.extend(server_out.errors);
                state
            }
            Err(error) => {
                // A panic in a driver: the server starts afresh next run.
                out.push(Sample::new(S::UP, Kind::Gauge, 0.0).label("server", spare.name()));
                out.error(format!("{} server {}: {error}", S::COLLECTOR, spare.name()));
                spare
            }
        });
    }
}

/// The runtime in `slot`, built if there is none yet; `None`, with the error in `out`,
/// if it cannot be.
fn started<'r>(slot: &'r mut Option<Runtime>, out: &mut Output) -> Option<&'r Runtime> {
    if slot.is_none() {
        match runtime() {
            Ok(runtime) => *slot = Some(runtime),
            Err(error) => out.error(error),
        }
    }
    slot.as_ref()
}

/// What became of one server's task: its position, the state to start again from should
/// it have panicked, and its state and output.
type Finished<S> = (usize, S, Result<(S, Output), JoinError>);

/// Each server's run as a task of its own, so that a panic in one costs only that one.
async fn read_all<S: Server>(
    states: Vec<(usize, S)>,
    config: Arc<S::Config>,
    budget: Duration,
) -> Vec<Finished<S>> {
    let deadline = Instant::now() + budget;
    let tasks: Vec<_> = states
        .into_iter()
        .map(|(i, state)| {
            let spare = state.fresh();
            let config = config.clone();
            let task = tokio::spawn(async move {
                let mut out = Output::default();
                let state = read_one(state, &config, budget, deadline, &mut out).await;
                (state, out)
            });
            (i, spare, task)
        })
        .collect();
    let mut finished = Vec::with_capacity(tasks.len());
    for (i, spare, task) in tasks {
        finished.push((i, spare, task.await));
    }
    finished
}

/// One run against one server, bounded by the deadline, and its `UP` gauge.
async fn read_one<S: Server>(
    mut state: S,
    config: &S::Config,
    budget: Duration,
    deadline: Instant,
    out: &mut Output,
) -> S {
    let result = tokio::time::timeout_at(deadline, state.read(config, deadline, out)).await;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(_) => Some(format!("no answer within the run budget ({budget:?})")),
    };
    let up = error.is_none();
    if let Some(error) = error {
        out.error(format!("{} server {}: {error}", S::COLLECTOR, state.name()));
        // Whatever the connection was doing is unknown now: start afresh next run.
        state.disconnect();
    }
    let up = if up { 1.0 } else { 0.0 };
    out.push(Sample::new(S::UP, Kind::Gauge, up).label("server", state.name()));
    state.finish(out);
    state
}

/// The password in `path`: the file's text without its final line break, so that a file
/// written by `echo` works.
pub(crate) fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read password_file {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// A number from a value sent as text: `None` for SQL NULL or an empty value; an error
/// naming the column for anything that is not a number.
pub(crate) fn number(column: &str, value: Option<&str>) -> Result<Option<f64>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("t" | "true" | "ON" | "On" | "on" | "Yes" | "YES") => Ok(Some(1.0)),
        Some("f" | "false" | "OFF" | "Off" | "off" | "No" | "NO") => Ok(Some(0.0)),
        Some(text) => text
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("column {column}: {text:?} is not a number")),
    }
}

#[cfg(feature = "postgres")]
/// Cuts `text` to at most `max` bytes at a character boundary, with every run of
/// white space made one space: a statement's text as a label value.
pub(crate) fn label_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for word in text.split_whitespace() {
        let space = usize::from(!out.is_empty());
        if out.len() + space >= max {
            break;
        }
        if space == 1 {
            out.push(' ');
        }
        for c in word.chars() {
            if out.len() + c.len_utf8() > max {
                return out;
            }
            out.push(c);
        }
    }
    out
}

/// Objects left out past a limit, per kind (`databases`, `statements`, ...), counted
/// over the collector's life and sent as a counter so that an operator sees a limit is
/// too low.
#[cfg(feature = "postgres")]
#[derive(Debug, Default)]
pub(crate) struct Dropped(BTreeMap<&'static str, u64>);

#[cfg(feature = "postgres")]
impl Dropped {
    /// Counts `n` more objects of `kind` left out.
    pub(crate) fn add(&mut self, kind: &'static str, n: u64) {
        *self.0.entry(kind).or_default() += n;
    }

    /// One sample per kind ever dropped, named `metric`, labelled `server` and `kind`.
    pub(crate) fn samples(&self, metric: &'static str, server: &str) -> Vec<Sample> {
        self.0
            .iter()
            .map(|(kind, n)| {
                Sample::new(metric, Kind::Counter, *n as f64)
                    .label("server", server)
                    .label("kind", *kind)
            })
            .collect()
    }
}

/// The shortest of the run's remaining budget and `limit`: the time a connection attempt
/// or a query may take.
pub(crate) fn within(deadline: Instant, limit: Duration) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_text_and_null_is_none() {
        assert_eq!(number("a", Some("12")), Ok(Some(12.0)));
        assert_eq!(number("a", Some("-1.5e3")), Ok(Some(-1500.0)));
        assert_eq!(
            number("a", Some("123456789012345678")),
            Ok(Some(1.2345678901234568e17))
        );
        assert_eq!(number("a", Some("t")), Ok(Some(1.0)));
        assert_eq!(number("a", Some("OFF")), Ok(Some(0.0)));
        assert_eq!(number("a", None), Ok(None));
        assert_eq!(number("a", Some("")), Ok(None));
        assert_eq!(
            number("xact_commit", Some("lots")),
            Err("column xact_commit: \"lots\" is not a number".to_owned())
        );
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn label_text_collapses_space_and_cuts_at_a_character() {
        assert_eq!(
            label_text("SELECT  *\n\tFROM t  WHERE a = $1", 100),
            "SELECT * FROM t WHERE a = $1"
        );
        assert_eq!(label_text("SELECT * FROM t", 10), "SELECT * F");
        assert_eq!(label_text("ééééé", 5), "éé");
        assert_eq!(label_text("   ", 5), "");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn dropped_objects_add_up_per_kind() {
        let mut dropped = Dropped::default();
        assert!(dropped.samples("m", "s").is_empty());
        dropped.add("databases", 2);
        dropped.add("databases", 3);
        dropped.add("statements", 1);
        let samples = dropped.samples("m", "main");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].value, 5.0);
        assert_eq!(
            samples[0].labels,
            [
                ("server".into(), "main".into()),
                ("kind".into(), "databases".into())
            ]
        );
        assert_eq!(samples[1].value, 1.0);
    }

    /// A server that answers, refuses, hangs or panics, and counts its runs.
    struct Fake {
        name: &'static str,
        act: &'static str,
        connected: bool,
        runs: u32,
    }

    impl Server for Fake {
        type Config = ();
        const COLLECTOR: &'static str = "fake";
        const UP: &'static str = "fake_up";

        fn name(&self) -> &str {
            self.name
        }

        fn fresh(&self) -> Self {
            Fake::new(self.name, self.act)
        }

        async fn read(&mut self, _: &(), _: Instant, out: &mut Output) -> Result<(), String> {
            self.connected = true;
            self.runs += 1;
            match self.act {
                "answer" => out.push(Sample::new("fake_value", Kind::Gauge, 7.0)),
                "refuse" => return Err("refused".into()),
                "hang" => std::future::pending::<()>().await,
                _ => panic!("a driver's bug"),
            }
            Ok(())
        }

        fn disconnect(&mut self) {
            self.connected = false;
        }

        fn finish(&self, out: &mut Output) {
            out.push(Sample::new(
                "fake_runs",
                Kind::Counter,
                f64::from(self.runs),
            ));
        }
    }

    impl Fake {
        fn new(name: &'static str, act: &'static str) -> Self {
            Fake {
                name,
                act,
                connected: false,
                runs: 0,
            }
        }
    }

    #[test]
    fn every_server_is_read_and_one_that_fails_hangs_or_panics_costs_only_itself() {
        let mut runtime = None;
        let mut servers: Vec<Option<Fake>> = ["answer", "refuse", "hang", "panic"]
            .into_iter()
            .zip(["a", "b", "c", "d"])
            .map(|(act, name)| Some(Fake::new(name, act)))
            .collect();
        let mut out = Output::default();
        let budget = Duration::from_millis(100);
        collect_all(&mut runtime, &mut servers, &Arc::new(()), budget, &mut out);
        let samples: Vec<String> = out
            .samples
            .iter()
            .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
            .collect();
        let server = |name: &str| format!("[(\"server\", \"{name}\")]");
        assert_eq!(
            samples,
            [
                "fake_value[] 7".to_owned(),
                format!("fake_up{} 1", server("a")),
                "fake_runs[] 1".to_owned(),
                format!("fake_up{} 0", server("b")),
                "fake_runs[] 1".to_owned(),
                format!("fake_up{} 0", server("c")),
                "fake_runs[] 1".to_owned(),
                format!("fake_up{} 0", server("d")),
            ]
        );
        assert_eq!(
            out.errors[..2],
            [
                "fake server b: refused",
                "fake server c: no answer within the run budget (100ms)"
            ]
        );
        assert!(
            out.errors[2].starts_with("fake server d: ") && out.errors[2].contains("panicked"),
            "{:?}",
            out.errors[2]
        );
        assert_eq!(out.errors.len(), 3);
        let kept: Vec<(bool, u32)> = servers
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| (s.connected, s.runs))
                    .expect("back in place")
            })
            .collect();
        assert_eq!(kept, [(true, 1), (false, 1), (false, 1), (false, 0)]);
        assert!(runtime.is_some());
    }

    #[test]
    fn a_password_file_loses_its_final_line_break_only() {
        let dir = std::env::temp_dir().join(format!("sysward-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("pw");
        std::fs::write(&path, " se cret \n").expect("write");
        assert_eq!(read_password(&path), Ok(" se cret ".to_owned()));
        let missing = read_password(&dir.join("none")).expect_err("missing");
        assert!(
            missing.starts_with("cannot read password_file "),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
