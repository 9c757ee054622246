//! The rule engine of a running server: loads `[rules] dir`, evaluates each group at its
//! interval and at once when a batch touches what it reads, keeps every rule's state in the
//! state database, and reloads without losing the state of unchanged rules.
//!
//! One thread evaluates, group after group. Scheduled evaluations happen at multiples of
//! the group's interval (so a group's times are regular and tests with a manual clock are
//! exact); an ingest that touches a metric a group reads makes it evaluate at the current
//! time as well, at most once per `trigger_gap` (or ten times the group's last evaluation
//! time, if longer), so that an alert whose `for` elapses with the data fires within about
//! a second of it rather than an interval later.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use promql_parser::parser::Expr;
use tracing::{error, info, warn};

use super::{
    AlertState, Group, GroupSpec, RuleEnv, RuleFileError, RuleHealth, RuleKind, RuleStorage,
    Transition,
    alerting::AlertingState,
    hosts::{DownHosts, HostTracker},
    load_file,
    persist::{self, AlertDb, PersistError, StoredTransition, Written},
};
use crate::store::Clock;

/// `[rules]` as the engine uses it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Every `*.yml` and `*.yaml` file in it is loaded; `None`: no rules.
    pub dir: Option<PathBuf>,
    /// Groups without an `interval` of their own.
    pub interval: Duration,
    /// At least this long between two evaluations of a group triggered by ingest.
    pub trigger_gap: Duration,
    /// Transitions older than this are deleted from the history.
    pub history_retention: Duration,
    pub env: RuleEnv,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval: Duration::from_secs(15),
            trigger_gap: Duration::from_secs(1),
            history_retention: Duration::from_secs(90 * 86_400),
            env: RuleEnv::default(),
        }
    }
}

/// A group as the engine runs it.
struct Scheduled {
    key: String,
    group: Group,
    rule_keys: Vec<String>,
    written: Vec<Written>,
    interval_ms: i64,
    next_ms: i64,
    /// Metric names its rules read; `None` when a selector has no fixed name.
    reads: Option<HashSet<String>>,
    /// Per rule: whether it reads `up`, so that a host down does not inhibit it.
    reads_up: Vec<bool>,
    triggered: bool,
    last_triggered_ms: i64,
    /// Changes a failed commit did not save, saved with the next.
    unsaved: Vec<persist::RuleChanges>,
}

struct Inner {
    groups: Vec<Scheduled>,
    db: AlertDb,
    storage: Box<dyn RuleStorage + Send>,
    load_errors: Vec<String>,
    stopping: bool,
    last_prune_ms: i64,
    /// When `up` is next written.
    next_up_ms: i64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineStats {
    pub evaluations: u64,
    pub rule_failures: u64,
    pub persist_failures: u64,
    pub triggered: u64,
    pub last_round: Duration,
}

pub struct RuleEngine {
    inner: Mutex<Inner>,
    /// Metric names ingest touched since the engine last looked: apart from `inner` so that
    /// ingest never waits for an evaluation.
    touched: Mutex<HashSet<String>>,
    wake: Condvar,
    wake_lock: Mutex<bool>,
    stats: Mutex<EngineStats>,
    hosts: HostTracker,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    outbox_signal: Arc<tokio::sync::Notify>,
}

/// The rule files of `dir` (`*.yml`, `*.yaml`), in name order.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every rule file of `dir`, in name order: the groups of the files that are right,
/// and an error for each file that is not.
pub fn load_dir(dir: &Path) -> (Vec<GroupSpec>, Vec<RuleFileError>) {
    let files = match rule_files(dir) {
        Ok(files) => files,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            let error = RuleFileError {
                file: dir.to_path_buf(),
                line: 0,
                group: None,
                rule: None,
                message: format!("cannot read the rules directory: {e}"),
            };
            return (Vec::new(), vec![error]);
        }
    };
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.push(e),
        }
    }
    (groups, errors)
}

impl RuleEngine {
    /// Loads the rules and their stored state. Files with errors are left out and reported
    /// (`load_errors`): the server still starts, since refusing to start over a rule typo
    /// would also stop ingest.
    pub fn open(
        config: EngineConfig,
        storage: Box<dyn RuleStorage + Send>,
        db_path: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PersistError> {
        let (specs, refused) = match &config.dir {
            None => (Vec::new(), Vec::new()),
            Some(dir) => load_dir(dir),
        };
        let load_errors: Vec<String> = refused.iter().map(ToString::to_string).collect();
        for e in &load_errors {
            error!(error = %e, "Rule file refused; its rules do not run.");
        }
        let db = AlertDb::open(db_path)?;
        let mut inner = Inner {
            groups: Vec::new(),
            db,
            storage,
            load_errors,
            stopping: false,
            last_prune_ms: 0,
            next_up_ms: 0,
        };
        let now = clock.now_ms();
        inner.groups = schedule(&config, specs, &mut Vec::new(), &inner.db, now)?;
        let keys = all_rule_keys(&inner.groups);
        // With a file refused, its rules' saved state stays for when it is fixed.
        if inner.load_errors.is_empty() {
            inner.db.forget_other_rules(&keys)?;
        }
        info!(
            groups = inner.groups.len(),
            rules = keys.len(),
            "Rules loaded."
        );
        Ok(Self {
            inner: Mutex::new(inner),
            touched: Mutex::new(HashSet::new()),
            wake: Condvar::new(),
            wake_lock: Mutex::new(false),
            stats: Mutex::new(EngineStats::default()),
            hosts: HostTracker::default(),
            clock,
            config,
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Evaluation panics leave only in-memory state half-moved; the database is
        // consistent, so the engine goes on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Batch arrivals, for `up` and host-down inhibition.
    pub fn hosts(&self) -> &HostTracker {
        &self.hosts
    }

    pub fn stats(&self) -> EngineStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ingest stored series with these names: groups reading them evaluate soon.
    pub fn touched<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut t = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        let before = t.len();
        t.extend(names.into_iter().map(str::to_string));
        if t.len() != before {
            drop(t);
            self.nudge();
        }
    }

    fn nudge(&self) {
        let mut woken = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
        *woken = true;
        self.wake.notify_all();
    }

    /// Evaluates every group that is due at the clock's time; returns when the next one is.
    pub fn run_due(&self) -> i64 {
        let names = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let gap = self.config.trigger_gap.as_millis() as i64;
        let started = Instant::now();
        for g in &mut inner.groups {
            if !names.is_empty() && reads_any(&g.reads, &names) {
                g.triggered = true;
            }
        }
        let inner = &mut *inner;
        let round = self.evaluate_round(inner, now, |g, round| {
            if g.next_ms <= now {
                let t = now - (now - g.next_ms) % g.interval_ms;
                g.next_ms = t + g.interval_ms;
                g.triggered = false;
                Some(t)
            } else if g.triggered && now - g.last_triggered_ms >= trigger_gap(g, gap) {
                g.triggered = false;
                g.last_triggered_ms = now;
                round.triggered += 1;
                Some(now)
            } else {
                None
            }
        });
        if now - inner.last_prune_ms >= 3_600_000 {
            inner.last_prune_ms = now;
            let before = now - self.config.history_retention.as_millis() as i64;
            if let Err(e) = inner.db.prune_history(before) {
                warn!(error = %e, "Cannot prune the alert history.");
            }
        }
        let next = next_due(&inner.groups, gap);
        round_into(&self.stats, round, started.elapsed());
        next
    }

    /// `up` first, then each group `time_of` gives a time for, at that time.
    fn evaluate_round(
        &self,
        inner: &mut Inner,
        now: i64,
        mut time_of: impl FnMut(&mut Scheduled, &mut EngineStats) -> Option<i64>,
    ) -> EngineStats {
        self.write_up(inner, now);
        let down = self.hosts.down(now);
        let mut round = EngineStats::default();
        for i in 0..inner.groups.len() {
            if let Some(t) = time_of(&mut inner.groups[i], &mut round) {
                evaluate_group(inner, &self.config.env, &down, i, t, &mut round);
            }
        }
        if round.evaluations > 0 {
            // The notifier looks at the outbox at once instead of at its next tick.
            self.outbox_signal.notify_one();
        }
        round
    }

    /// Signalled after every round that evaluated something: the outbox may have grown.
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    /// Rules loaded and alerts by state (pending, firing, nodata), counted in place: what
    /// `/metrics` needs, without copying every rule's state as [`RuleEngine::groups`] does.
    pub fn summary(&self) -> (usize, [usize; 3]) {
        let inner = self.lock();
        let mut rules = 0;
        let mut alerts = [0; 3];
        for g in &inner.groups {
            rules += g.group.spec.rules.len();
            for a in g
                .group
                .states
                .iter()
                .flat_map(|s| s.alerting.alerts.values())
            {
                match a.state {
                    AlertState::Pending => alerts[0] += 1,
                    AlertState::Firing => alerts[1] += 1,
                    AlertState::NoData => alerts[2] += 1,
                    AlertState::Inactive => {}
                }
            }
        }
        (rules, alerts)
    }

    /// Writes `up` and last-seen times at whole default intervals, before the groups that
    /// read them.
    fn write_up(&self, inner: &mut Inner, now: i64) {
        let interval = self.config.interval.as_millis().max(1) as i64;
        if now < inner.next_up_ms {
            return;
        }
        let t = now - now.rem_euclid(interval);
        inner.next_up_ms = t + interval;
        let samples = self.hosts.samples(t);
        if samples.is_empty() {
            return;
        }
        if let Err(e) = inner.storage.append(t, &samples) {
            warn!(error = %e, "Cannot write the hosts' up series.");
        }
    }

    /// Evaluates every group at the clock's time, due or not (benchmarks, tests); returns
    /// how long the round took.
    pub fn evaluate_all(&self) -> Duration {
        let started = Instant::now();
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let round = self.evaluate_round(&mut inner, now, |_, _| Some(now));
        let took = started.elapsed();
        round_into(&self.stats, round, took);
        took
    }

    /// Runs until [`RuleEngine::stop`]: evaluates what is due, sleeps until the next due
    /// time or an ingest nudge.
    pub fn run(&self) {
        loop {
            let next = self.run_due();
            if self.lock().stopping {
                return;
            }
            let wait = (next - self.clock.now_ms()).clamp(1, 60_000) as u64;
            let mut woken = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = self
                    .wake
                    .wait_timeout(woken, Duration::from_millis(wait))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *woken = false;
        }
    }

    pub fn stop(&self) {
        self.lock().stopping = true;
        self.nudge();
    }

    /// Reads the rule files again. Any error refuses the whole reload and the rules
    /// already running go on; otherwise unchanged rules keep their alerts and timers.
    pub fn reload(&self) -> Result<(usize, usize), Vec<RuleFileError>> {
        let specs = match &self.config.dir {
            None => Vec::new(),
            Some(dir) => {
                let (specs, errors) = load_dir(dir);
                if !errors.is_empty() {
                    return Err(errors);
                }
                specs
            }
        };
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let mut old = std::mem::take(&mut inner.groups);
        let groups = match schedule(&self.config, specs, &mut old, &inner.db, now) {
            Ok(g) => g,
            Err(e) => {
                inner.groups = old;
                return Err(vec![RuleFileError {
                    file: PathBuf::new(),
                    line: 0,
                    group: None,
                    rule: None,
                    message: e.to_string(),
                }]);
            }
        };
        inner.groups = groups;
        inner.load_errors.clear();
        let keys = all_rule_keys(&inner.groups);
        if let Err(e) = inner.db.forget_other_rules(&keys) {
            warn!(error = %e, "Cannot delete the state of removed rules.");
        }
        info!(
            groups = inner.groups.len(),
            rules = keys.len(),
            "Rules reloaded."
        );
        Ok((inner.groups.len(), keys.len()))
    }

    /// The groups with their rules' states, for the API.
    pub fn groups(&self) -> Vec<(Group, i64)> {
        self.lock()
            .groups
            .iter()
            .map(|g| (g.group.clone(), g.interval_ms))
            .collect()
    }

    /// Rule files refused at start, for the API and logs.
    pub fn load_errors(&self) -> Vec<String> {
        self.lock().load_errors.clone()
    }

    pub fn history(
        &self,
        since_ms: i64,
        alertname: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredTransition>, PersistError> {
        self.lock().db.history(since_ms, alertname, limit)
    }

    pub fn outbox(&self, limit: usize) -> Result<Vec<StoredTransition>, PersistError> {
        self.lock().db.outbox(limit)
    }
}

fn round_into(stats: &Mutex<EngineStats>, round: EngineStats, took: Duration) {
    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
    s.evaluations += round.evaluations;
    s.rule_failures += round.rule_failures;
    s.persist_failures += round.persist_failures;
    s.triggered += round.triggered;
    if round.evaluations > 0 {
        s.last_round = took;
    }
}

fn evaluate_group(
    inner: &mut Inner,
    env: &RuleEnv,
    down: &DownHosts,
    i: usize,
    t: i64,
    round: &mut EngineStats,
) {
    let g = &mut inner.groups[i];
    let span = crate::otel::spans::rule_group(&g.group.spec.name, g.group.spec.rules.len());
    let failed_before = round.rule_failures;
    let per_rule = g.group.evaluate(inner.storage.as_mut(), env, t);
    round.evaluations += 1;
    let mut changes = std::mem::take(&mut g.unsaved);
    for (j, mut moved) in per_rule.into_iter().enumerate() {
        if !g.reads_up[j] {
            inhibit(&mut g.group.states[j].alerting, &mut moved, down);
        }
        let state = &g.group.states[j];
        if state.health == RuleHealth::Err {
            round.rule_failures += 1;
        }
        if matches!(g.group.spec.rules[j].kind, RuleKind::Alert(_)) {
            changes.push(persist::changes(
                &g.rule_keys[j],
                &state.alerting,
                &mut g.written[j],
                moved,
                t,
            ));
        }
    }
    let committed = inner.db.commit(&g.key, t, &changes);
    crate::otel::spans::rule_group_done(
        span,
        round.rule_failures - failed_before,
        committed.is_ok(),
    );
    if let Err(e) = committed {
        error!(error = %e, group = g.group.spec.name, "Cannot save the rules' state; retrying at the next evaluation.");
        round.persist_failures += 1;
        // Everything is written again next time, and the transitions with it.
        for w in &mut g.written {
            *w = Written::default();
        }
        g.unsaved = changes
            .into_iter()
            .map(|c| persist::RuleChanges {
                transitions: c.transitions,
                key: c.key,
                ..persist::RuleChanges::default()
            })
            .collect();
    }
}

/// Marks the alerts of hosts that are down: kept and listed, not notified.
fn inhibit(state: &mut AlertingState, moved: &mut [Transition], down: &DownHosts) {
    const HOST_DOWN: &str = "host down";
    for a in state.alerts.values_mut() {
        a.inhibited_by = down.covers(&a.labels).then(|| HOST_DOWN.to_string());
    }
    for t in moved {
        t.inhibited_by = down.covers(&t.labels).then(|| HOST_DOWN.to_string());
    }
}

/// A group evaluated on ingest waits `trigger_gap`, or ten times its last evaluation if
/// longer: a fleet-wide group that ingest touches all the time then costs at most a tenth
/// of a core, while a small group answers within the gap.
fn trigger_gap(g: &Scheduled, gap: i64) -> i64 {
    let cost = i64::try_from(g.group.last_duration.as_millis()).unwrap_or(i64::MAX);
    gap.max(cost.saturating_mul(10))
}

fn next_due(groups: &[Scheduled], gap: i64) -> i64 {
    groups
        .iter()
        .map(|g| {
            if g.triggered {
                (g.last_triggered_ms + trigger_gap(g, gap)).min(g.next_ms)
            } else {
                g.next_ms
            }
        })
        .min()
        .unwrap_or(i64::MAX)
}

fn reads_any(reads: &Option<HashSet<String>>, names: &HashSet<String>) -> bool {
    match reads {
        None => true,
        Some(r) => r.iter().any(|n| names.contains(n)),
    }
}

fn all_rule_keys(groups: &[Scheduled]) -> Vec<String> {
    groups.iter().flat_map(|g| g.rule_keys.clone()).collect()
}

/// Builds the scheduled groups of `specs`, taking over the state of unchanged rules from
/// `old` and the rest from the database.
fn schedule(
    config: &EngineConfig,
    specs: Vec<GroupSpec>,
    old: &mut Vec<Scheduled>,
    db: &AlertDb,
    now: i64,
) -> Result<Vec<Scheduled>, PersistError> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let key = format!("{}\u{0}{}", spec.file.display(), spec.name);
        let interval_ms = spec.interval.unwrap_or(config.interval).as_millis().max(1) as i64;
        let rule_keys: Vec<String> = spec
            .rules
            .iter()
            .map(|r| persist::rule_key(&spec, r))
            .collect();
        let reads = names_read(&spec);
        let reads_up = spec
            .rules
            .iter()
            .map(|r| {
                let mut names = HashSet::new();
                collect_names(&r.expr, &mut names);
                names.contains("up")
            })
            .collect();
        let previous = old
            .iter()
            .position(|g| g.key == key)
            .map(|i| old.swap_remove(i));
        let mut group = Group::new(spec);
        let mut written = vec![Written::default(); rule_keys.len()];
        for (j, rk) in rule_keys.iter().enumerate() {
            let carried = previous.as_ref().and_then(|p| {
                p.rule_keys
                    .iter()
                    .position(|k| k == rk)
                    .map(|at| (p.group.states[at].clone(), p.written[at].clone()))
            });
            match carried {
                Some((state, w)) => {
                    group.states[j] = state;
                    written[j] = w;
                }
                None => {
                    let (alerting, w) = db.restore(rk)?;
                    group.states[j].alerting = alerting;
                    written[j] = w;
                }
            }
        }
        let next_ms = match &previous {
            Some(p) if p.interval_ms == interval_ms => p.next_ms,
            _ => (now / interval_ms + 1) * interval_ms,
        };
        out.push(Scheduled {
            key,
            group,
            rule_keys,
            written,
            interval_ms,
            next_ms,
            reads,
            reads_up,
            triggered: false,
            last_triggered_ms: 0,
            unsaved: previous.map(|p| p.unsaved).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The metric names a group's rules read, or `None` when some selector has no fixed name
/// (then any ingest may matter).
fn names_read(spec: &GroupSpec) -> Option<HashSet<String>> {
    let mut names = HashSet::new();
    for rule in &spec.rules {
        let mut exprs: Vec<&Expr> = vec![&rule.expr];
        if let RuleKind::Alert(a) = &rule.kind {
            exprs.extend(a.recover.as_ref());
            exprs.push(&a.data_expr);
        }
        for e in exprs {
            if !collect_names(e, &mut names) {
                return None;
            }
        }
    }
    Some(names)
}

/// Adds the names of `expr`'s selectors; false when one has no fixed name.
fn collect_names(expr: &Expr, names: &mut HashSet<String>) -> bool {
    use promql_parser::parser::Expr as E;
    match expr {
        E::VectorSelector(v) => match &v.name {
            Some(n) => {
                names.insert(n.clone());
                true
            }
            None => false,
        },
        E::MatrixSelector(m) => collect_names(&E::VectorSelector(m.vs.clone()), names),
        E::Aggregate(a) => {
            collect_names(&a.expr, names)
                && a.param.as_ref().is_none_or(|p| collect_names(p, names))
        }
        E::Unary(u) => collect_names(&u.expr, names),
        E::Binary(b) => collect_names(&b.lhs, names) && collect_names(&b.rhs, names),
        E::Paren(p) => collect_names(&p.expr, names),
        E::Subquery(s) => collect_names(&s.expr, names),
        E::Call(c) => c.args.args.iter().all(|a| collect_names(a, names)),
        E::NumberLiteral(_) | E::StringLiteral(_) => true,
        E::Extension(_) => false,
    }
}

#[cfg(test)]
mod tests;
