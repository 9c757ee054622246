//! The engine on a manual clock: schedule, triggers, durability across restarts, reload.

use std::sync::RwLock;

use super::*;
use crate::{
    query::{Labels, MemorySource, QueryError, QuerySource, SourceRequest, SourceSeries},
    rules::{AlertState, unittest::parse_metric},
    store::{ManualClock, ReadBudget, Tier},
};

const MIN: i64 = 60_000;
/// A start that is not a multiple of any interval, as a real clock's is not.
const T0: i64 = 1_700_000_000_000;

/// Series shared between the test and the engine.
#[derive(Clone, Default)]
struct Shared(Arc<RwLock<MemorySource>>);

impl QuerySource for Shared {
    fn read(
        &self,
        requests: &[SourceRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SourceSeries>>, QueryError> {
        self.0.read().unwrap().read(requests, budget)
    }

    fn floor_ms(&self, tier: Tier) -> i64 {
        self.0.read().unwrap().floor_ms(tier)
    }
}

impl RuleStorage for Shared {
    fn source(&self) -> &dyn QuerySource {
        self
    }

    fn append(&mut self, time_ms: i64, samples: &[(Labels, f64)]) -> Result<(), String> {
        let mut m = self.0.write().unwrap();
        for (labels, value) in samples {
            m.add(labels.clone(), &[(time_ms, *value)]);
        }
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    data: Shared,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new(rules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let f = Self {
            dir,
            data: Shared::default(),
            clock: Arc::new(ManualClock::new(T0)),
        };
        f.write_rules("a.yml", rules);
        f
    }

    fn write_rules(&self, name: &str, rules: &str) {
        let text = format!("groups:\n- name: g\n  interval: 1m\n  rules:\n{rules}");
        std::fs::write(self.dir.path().join("rules").join(name), text).unwrap();
    }

    fn engine(&self) -> RuleEngine {
        let config = EngineConfig {
            dir: Some(self.dir.path().join("rules")),
            ..EngineConfig::default()
        };
        RuleEngine::open(
            config,
            Box::new(self.data.clone()),
            &self.dir.path().join("state.db"),
            self.clock.clone(),
        )
        .unwrap()
    }

    fn set(&self, series: &str, value: f64) {
        let now = self.clock.now_ms();
        self.data
            .0
            .write()
            .unwrap()
            .add(parse_metric(series).unwrap(), &[(now, value)]);
    }

    /// Moves the clock to `minutes` after T0's next whole minute and runs what is due.
    fn at(&self, engine: &RuleEngine, minutes: i64) {
        self.clock.set(first_slot() + minutes * MIN);
        engine.run_due();
    }
}

fn first_slot() -> i64 {
    (T0 / MIN + 1) * MIN
}

fn states(engine: &RuleEngine) -> Vec<AlertState> {
    engine.groups()[0].0.states[0]
        .alerting
        .alerts
        .values()
        .map(|a| a.state)
        .collect()
}

fn moves(engine: &RuleEngine) -> Vec<String> {
    let mut h = engine.history(0, None, 100).unwrap();
    h.reverse();
    h.into_iter()
        .map(|t| format!("{}>{}", t.from, t.to))
        .collect()
}

const HIGH: &str = "  - alert: High\n    expr: x > 5\n    for: 3m\n";

#[test]
fn groups_run_at_whole_intervals() {
    let f = Fixture::new(HIGH);
    let engine = f.engine();
    f.set("x", 10.0);
    f.clock.set(T0);
    engine.run_due();
    assert!(
        states(&engine).is_empty(),
        "nothing is due before the first slot"
    );
    f.at(&engine, 0);
    assert_eq!(engine.groups()[0].0.last_eval_ms, Some(first_slot()));
    assert_eq!(states(&engine), [AlertState::Pending]);
}

#[test]
fn a_restart_continues_pending_timers_and_fires_nothing_twice() {
    let f = Fixture::new(HIGH);
    {
        let engine = f.engine();
        for m in 0..2 {
            f.clock.set(first_slot() + m * MIN);
            f.set("x", 10.0);
            engine.run_due();
        }
        assert_eq!(states(&engine), [AlertState::Pending]);
    }
    // Restarted (the engine dropped without any shutdown step): the pending timer started
    // at minute 0 and `for` is 3 minutes, so the alert fires at minute 3, not 5.
    let engine = f.engine();
    let active_at = engine.groups()[0].0.states[0]
        .alerting
        .alerts
        .values()
        .next()
        .unwrap()
        .active_at;
    assert_eq!(active_at, first_slot());
    f.clock.set(first_slot() + 2 * MIN);
    f.set("x", 10.0);
    engine.run_due();
    assert_eq!(states(&engine), [AlertState::Pending]);
    f.clock.set(first_slot() + 3 * MIN);
    f.set("x", 10.0);
    engine.run_due();
    assert_eq!(states(&engine), [AlertState::Firing]);
    assert_eq!(moves(&engine), ["inactive>pending", "pending>firing"]);
    // Only the firing transition is for the notifier.
    let outbox = engine.outbox(10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].from.as_str(), outbox[0].to.as_str()),
        ("pending", "firing")
    );
    assert_eq!(
        outbox[0].labels.get("alertname").map(String::as_str),
        Some("High")
    );
}

#[test]
fn a_firing_alert_survives_a_restart_and_resolves_once() {
    let f = Fixture::new("  - alert: High\n    expr: x > 5\n");
    {
        let engine = f.engine();
        f.set("x", 10.0);
        f.at(&engine, 0);
        assert_eq!(states(&engine), [AlertState::Firing]);
    }
    let engine = f.engine();
    assert_eq!(states(&engine), [AlertState::Firing]);
    f.clock.set(first_slot() + MIN);
    f.set("x", 1.0);
    engine.run_due();
    assert_eq!(
        moves(&engine),
        ["inactive>pending", "pending>firing", "firing>inactive"]
    );
    assert_eq!(engine.outbox(10).unwrap().len(), 2);
}

#[test]
fn ingest_of_a_read_metric_evaluates_at_once() {
    let f = Fixture::new(HIGH);
    let engine = f.engine();
    f.set("x", 10.0);
    f.at(&engine, 0);
    // Half a minute later, a batch with `x` arrives: the group runs now, not at minute 1.
    f.clock.set(first_slot() + 30_000);
    f.set("x", 10.0);
    engine.touched(["y"]);
    engine.run_due();
    assert_eq!(engine.groups()[0].0.last_eval_ms, Some(first_slot()));
    engine.touched(["x"]);
    engine.run_due();
    assert_eq!(
        engine.groups()[0].0.last_eval_ms,
        Some(first_slot() + 30_000)
    );
    assert_eq!(engine.stats().triggered, 1);
    // `for` (3 m) elapses with a batch at 3:00.5: the alert fires then, not at 4:00.
    f.clock.set(first_slot() + 3 * MIN + 500);
    f.set("x", 10.0);
    engine.touched(["x"]);
    engine.run_due();
    assert_eq!(states(&engine), [AlertState::Firing]);
}

#[test]
fn reload_keeps_unchanged_rules_and_refuses_bad_files_whole() {
    let f = Fixture::new(HIGH);
    let engine = f.engine();
    f.set("x", 10.0);
    f.at(&engine, 0);
    assert_eq!(states(&engine), [AlertState::Pending]);
    // A second file with an error: the reload is refused, the rules go on.
    f.write_rules("b.yml", "  - alert: Bad\n    expr: rate(x[5m]\n");
    let errors = engine.reload().unwrap_err();
    assert!(errors[0].to_string().contains("b.yml:6"), "{}", errors[0]);
    assert_eq!(states(&engine), [AlertState::Pending]);
    // Fixed, plus an unrelated edit elsewhere: High keeps its pending timer.
    f.write_rules("b.yml", "  - alert: Other\n    expr: y > 1\n");
    assert_eq!(engine.reload().unwrap(), (2, 2));
    assert_eq!(states(&engine), [AlertState::Pending]);
    // High itself changes: it starts afresh.
    f.write_rules("a.yml", "  - alert: High\n    expr: x > 6\n    for: 3m\n");
    engine.reload().unwrap();
    assert!(states(&engine).is_empty());
}

#[test]
fn a_bad_file_at_start_is_reported_and_the_good_ones_run() {
    let f = Fixture::new(HIGH);
    f.write_rules("b.yml", "  - alert: Bad\n    expr: up ==\n");
    let engine = f.engine();
    let errors = engine.load_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("b.yml"), "{errors:?}");
    assert_eq!(engine.groups().len(), 1);
}

#[test]
fn a_file_broken_across_a_restart_keeps_its_rules_state_for_when_it_is_fixed() {
    let f = Fixture::new(HIGH);
    {
        let engine = f.engine();
        f.set("x", 10.0);
        f.at(&engine, 0);
        assert_eq!(states(&engine), [AlertState::Pending]);
    }
    let good = std::fs::read_to_string(f.dir.path().join("rules/a.yml")).unwrap();
    std::fs::write(f.dir.path().join("rules/a.yml"), "groups: [\n").unwrap();
    {
        let engine = f.engine();
        assert_eq!(engine.load_errors().len(), 1);
        assert!(engine.groups().is_empty());
    }
    std::fs::write(f.dir.path().join("rules/a.yml"), good).unwrap();
    let engine = f.engine();
    let alert = engine.groups()[0].0.states[0]
        .alerting
        .alerts
        .values()
        .next()
        .cloned();
    assert_eq!(alert.map(|a| a.active_at), Some(first_slot()));
}

/// A scenario with every kind of transition: `x` high (pending, firing), between the
/// thresholds (held), low (recovering, resolved), high again, then gone (nodata).
fn scenario_value(minute: i64) -> Option<f64> {
    match minute {
        0..=4 => Some(95.0),
        5..=6 => Some(75.0),
        7..=10 => Some(50.0),
        11..=15 => Some(95.0),
        16..=30 => None,
        _ => Some(50.0),
    }
}

const SCENARIO_RULES: &str = "  - alert: High\n    expr: x > 90\n    for: 2m\n    recover: < 60\n    recover_for: 3m\n    no_data: nodata\n    no_data_for: 4m\n";

/// Runs the scenario minute by minute, reopening the engine (as after `kill -9`: no
/// shutdown step) before each minute in `crashes`; returns the history and final states.
/// The history as (minute, from, to) and the final (state, active since) of each alert.
type Outcome = (Vec<(i64, String, String)>, Vec<(AlertState, i64)>);

fn run_scenario(crashes: &[i64]) -> Outcome {
    let f = Fixture::new(SCENARIO_RULES);
    let mut engine = f.engine();
    for minute in 0..40 {
        if crashes.contains(&minute) {
            drop(engine);
            engine = f.engine();
        }
        f.clock.set(first_slot() + minute * MIN);
        if let Some(v) = scenario_value(minute) {
            f.set("x", v);
        }
        engine.run_due();
    }
    let mut history: Vec<(i64, String, String)> = engine
        .history(0, None, 1000)
        .unwrap()
        .into_iter()
        .map(|t| ((t.at_ms - first_slot()) / MIN, t.from, t.to))
        .collect();
    history.reverse();
    let states = engine.groups()[0].0.states[0]
        .alerting
        .alerts
        .values()
        .map(|a| (a.state, a.active_at))
        .collect();
    (history, states)
}

#[test]
fn restarts_anywhere_give_the_states_and_history_of_a_run_without_them() {
    let (plain, plain_states) = run_scenario(&[]);
    let moves: Vec<String> = plain
        .iter()
        .map(|(m, from, to)| format!("{m}:{from}>{to}"))
        .collect();
    assert_eq!(
        moves,
        [
            "0:inactive>pending",
            "2:pending>firing",
            "10:firing>inactive",
            "11:inactive>pending",
            "13:pending>firing",
            "23:firing>nodata",
            "31:nodata>inactive",
        ]
    );
    // Every minute a crash point, alone and all together.
    for crash in 1..40 {
        assert_eq!(
            run_scenario(&[crash]),
            (plain.clone(), plain_states.clone()),
            "crash before minute {crash}"
        );
    }
    let all: Vec<i64> = (1..40).collect();
    assert_eq!(run_scenario(&all), (plain, plain_states));
}

/// The engine on the server's own store, fed by an import (promtool's backfill format),
/// with the clock walked through the imported hour.
#[test]
fn imported_history_drives_the_rules_on_the_real_store() {
    use crate::{
        import::{ImportOptions, Importer},
        rules::store_storage::StoreStorage,
        store::{StoreConfig, TieredStore},
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/disk.yml"),
        "groups:\n- name: disk\n  interval: 1m\n  rules:\n  - alert: DiskFull\n    expr: disk_used_percent > 90\n    for: 3m\n    recover: < 80\n    recover_for: 2m\n  - record: disk:used:max\n    expr: max(disk_used_percent)\n",
    )
    .unwrap();
    // One sample a minute for an hour: 95 % from minute 10 to 29, 85 % to 34, 70 % after.
    let start_s = first_slot() / 1000;
    let mut text = String::from("# TYPE disk_used_percent gauge\n");
    for m in 0..60 {
        let v = match m {
            10..=29 => 95,
            30..=34 => 85,
            _ => 70,
        };
        text.push_str(&format!(
            "disk_used_percent{{instance=\"db1\",mount=\"/\"}} {v} {}\n",
            start_s + m * 60
        ));
    }
    text.push_str("# EOF\n");
    let clock = Arc::new(ManualClock::new(first_slot()));
    let store = Arc::new(
        TieredStore::open(
            &dir.path().join("store.db"),
            StoreConfig::default(),
            clock.clone(),
        )
        .unwrap(),
    );
    Importer::new(&store, "import-test", 0, ImportOptions::default())
        .run(text.as_bytes(), |_| {}, 60)
        .unwrap();
    let config = EngineConfig {
        dir: Some(dir.path().join("rules")),
        ..EngineConfig::default()
    };
    let engine = RuleEngine::open(
        config,
        Box::new(StoreStorage::new(store.clone())),
        &dir.path().join("state.db"),
        clock.clone(),
    )
    .unwrap();
    for m in 0..60 {
        clock.set(first_slot() + m * MIN);
        engine.run_due();
    }
    let moves: Vec<String> = {
        let mut h = engine.history(0, None, 100).unwrap();
        h.reverse();
        h.into_iter()
            .map(|t| format!("{}:{}>{}", (t.at_ms - first_slot()) / MIN, t.from, t.to))
            .collect()
    };
    // Pending at 10, firing at 13; held at 85 %; below 80 from 35, resolved at 37.
    assert_eq!(
        moves,
        [
            "10:inactive>pending",
            "13:pending>firing",
            "37:firing>inactive"
        ]
    );
    // The recording rule's output is a stored series, queryable like any other.
    let out = crate::query::instant_query(
        &crate::query::StoreSource(store.clone()),
        "disk:used:max",
        first_slot() + 59 * MIN,
        &Default::default(),
    )
    .unwrap();
    let crate::query::Value::Vector(v) = out.value else {
        panic!("{:?}", out.value)
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, 70.0);
}
