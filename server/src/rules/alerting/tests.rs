//! The state machine driven minute by minute on series in memory.

use std::path::Path;

use super::*;
use crate::{
    query::{instant_query, stale_nan},
    rules::{Group, MemoryStorage, RuleEnv, parse_file, unittest::parse_metric},
};

const MIN: i64 = 60_000;

struct Harness {
    storage: MemoryStorage,
    group: Group,
    env: RuleEnv,
}

impl Harness {
    fn new(rules: &str) -> Self {
        let text = format!("groups:\n- name: g\n  rules:\n{rules}");
        let mut specs = parse_file(Path::new("t.yml"), &text).unwrap();
        Self {
            storage: MemoryStorage::default(),
            group: Group::new(specs.remove(0)),
            env: RuleEnv::default(),
        }
    }

    /// Sets `series` to `value` at minute `at`.
    fn set(&mut self, series: &str, at: i64, value: f64) {
        self.storage
            .0
            .add(parse_metric(series).unwrap(), &[(at * MIN, value)]);
    }

    /// Evaluates at minute `at`; the transitions as `from>to`.
    fn eval(&mut self, at: i64) -> Vec<String> {
        self.group
            .evaluate(&mut self.storage, &self.env, at * MIN)
            .into_iter()
            .flatten()
            .map(|t| format!("{}>{}", t.from.name(), t.to.name()))
            .collect()
    }

    /// The states of rule `i`'s alerts.
    fn states(&self, i: usize) -> Vec<AlertState> {
        self.group.states[i]
            .alerting
            .alerts
            .values()
            .map(|a| a.state)
            .collect()
    }

    fn query(&self, expr: &str, at: i64) -> Vec<(Labels, f64)> {
        let out = instant_query(&self.storage.0, expr, at * MIN, &self.env.query).unwrap();
        samples_of(out.value).unwrap()
    }
}

fn run(h: &mut Harness, series: &str, values: &[(i64, f64)]) -> Vec<(i64, Vec<String>)> {
    let mut out = Vec::new();
    for &(at, v) in values {
        h.set(series, at, v);
        let moved = h.eval(at);
        if !moved.is_empty() {
            out.push((at, moved));
        }
    }
    out
}

fn moves(list: &[(i64, &str)]) -> Vec<(i64, Vec<String>)> {
    list.iter()
        .map(|(at, m)| (*at, m.split(' ').map(str::to_string).collect()))
        .collect()
}

#[test]
fn pending_then_firing_then_resolved_then_forgotten() {
    let mut h = Harness::new("  - alert: High\n    expr: x > 5\n    for: 2m\n");
    let got = run(
        &mut h,
        "x",
        &[
            (0, 10.0),
            (1, 10.0),
            (2, 10.0),
            (3, 10.0),
            (4, 1.0),
            (5, 1.0),
        ],
    );
    assert_eq!(
        got,
        moves(&[
            (0, "inactive>pending"),
            (2, "pending>firing"),
            (4, "firing>inactive")
        ])
    );
    // Listed as resolved for 15 minutes, then forgotten.
    assert_eq!(h.states(0), [AlertState::Inactive]);
    h.set("x", 19, 1.0);
    h.eval(19);
    assert_eq!(h.states(0), [AlertState::Inactive]);
    h.set("x", 20, 1.0);
    h.eval(20);
    assert!(h.states(0).is_empty());
}

#[test]
fn a_pending_alert_whose_condition_stops_is_dropped_without_firing() {
    let mut h = Harness::new("  - alert: High\n    expr: x > 5\n    for: 5m\n");
    let got = run(&mut h, "x", &[(0, 10.0), (1, 10.0), (2, 1.0)]);
    assert_eq!(
        got,
        moves(&[(0, "inactive>pending"), (2, "pending>inactive")])
    );
    assert!(h.states(0).is_empty());
}

#[test]
fn without_for_an_alert_fires_at_once() {
    let mut h = Harness::new("  - alert: High\n    expr: x > 5\n");
    let got = run(&mut h, "x", &[(0, 10.0)]);
    assert_eq!(got, moves(&[(0, "inactive>pending pending>firing")]));
}

#[test]
fn keep_firing_for_holds_a_firing_alert() {
    let mut h = Harness::new("  - alert: High\n    expr: x > 5\n    keep_firing_for: 2m\n");
    let got = run(&mut h, "x", &[(0, 10.0), (1, 1.0), (2, 1.0), (3, 1.0)]);
    assert_eq!(
        got,
        moves(&[
            (0, "inactive>pending pending>firing"),
            (3, "firing>inactive")
        ])
    );
}

/// The seed's example: > 90 for 2 m fires, resolved only after < 60 for 3 m; in between
/// it stays firing instead of flapping.
#[test]
fn recovery_needs_its_own_threshold_held_for_its_own_time() {
    let mut h = Harness::new(
        "  - alert: Cpu\n    expr: cpu > 90\n    for: 2m\n    recover: < 60\n    recover_for: 3m\n",
    );
    let values = [
        (0, 95.0),
        (1, 95.0),
        (2, 95.0), // fires
        (3, 75.0), // between: still firing
        (4, 55.0), // recovering since 4
        (5, 65.0), // not below 60: the recovery timer restarts
        (6, 55.0), // recovering since 6
        (7, 55.0),
        (8, 55.0), // 2 minutes: not yet
        (9, 55.0), // 3 minutes: resolved
    ];
    let got = run(&mut h, "cpu", &values);
    assert_eq!(
        got,
        moves(&[
            (0, "inactive>pending"),
            (2, "pending>firing"),
            (9, "firing>inactive")
        ])
    );
}

#[test]
fn recover_for_alone_needs_the_condition_gone_that_long() {
    let mut h = Harness::new("  - alert: High\n    expr: x > 5\n    recover_for: 2m\n");
    let got = run(
        &mut h,
        "x",
        &[(0, 10.0), (1, 1.0), (2, 10.0), (3, 1.0), (4, 1.0), (5, 1.0)],
    );
    assert_eq!(
        got,
        moves(&[
            (0, "inactive>pending pending>firing"),
            (5, "firing>inactive")
        ])
    );
}

fn missing_data_rule(policy: &str) -> Harness {
    Harness::new(&format!(
        "  - alert: Disk\n    expr: used > 90\n    no_data: {policy}\n    no_data_for: 2m\n"
    ))
}

/// `used` is high and firing, then stops arriving (a staleness marker at minute 2).
fn vanish_while_firing(h: &mut Harness) -> Vec<(i64, Vec<String>)> {
    let mut out = run(h, "used", &[(0, 95.0), (1, 95.0)]);
    h.set("used", 2, stale_nan());
    for at in 2..6 {
        let moved = h.eval(at);
        if !moved.is_empty() {
            out.push((at, moved));
        }
    }
    out
}

#[test]
fn missing_data_resolves_under_ok_as_in_prometheus() {
    let mut h = Harness::new("  - alert: Disk\n    expr: used > 90\n");
    let got = vanish_while_firing(&mut h);
    assert_eq!(
        got,
        moves(&[
            (0, "inactive>pending pending>firing"),
            (2, "firing>inactive")
        ])
    );
}

#[test]
fn missing_data_keeps_the_alert_under_keep() {
    let mut h = missing_data_rule("keep");
    let got = vanish_while_firing(&mut h);
    assert_eq!(got, moves(&[(0, "inactive>pending pending>firing")]));
    assert_eq!(h.states(0), [AlertState::Firing]);
}

#[test]
fn missing_data_is_its_own_state_under_nodata_and_data_back_decides() {
    let mut h = missing_data_rule("nodata");
    let got = vanish_while_firing(&mut h);
    // Missing since minute 2; `no_data_for` is 2 minutes.
    assert_eq!(
        got,
        moves(&[(0, "inactive>pending pending>firing"), (3, "firing>nodata")])
    );
    let series = h.query("ALERTS", 5);
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].0.get("alertstate"), "nodata");
    // Data comes back below the threshold: resolved.
    h.set("used", 6, 50.0);
    assert_eq!(h.eval(6), ["nodata>inactive"]);
}

#[test]
fn a_series_that_stops_arriving_fires_under_alerting_even_when_it_was_fine() {
    let mut h = missing_data_rule("alerting");
    let got = run(&mut h, "used{mount=\"/\"}", &[(0, 10.0), (1, 10.0)]);
    assert!(got.is_empty());
    h.set("used{mount=\"/\"}", 2, stale_nan());
    assert!(h.eval(2).is_empty());
    assert_eq!(h.eval(3), ["inactive>firing"]);
    let alert = h.group.states[0].alerting.alerts.values().next().unwrap();
    assert_eq!(alert.labels.get("mount"), "/");
    assert_eq!(alert.labels.get("alertname"), "Disk");
    // Back, and fine: resolved.
    h.set("used{mount=\"/\"}", 4, 10.0);
    assert_eq!(h.eval(4), ["firing>inactive"]);
}

#[test]
fn alerts_are_queryable_as_alerts_series_and_go_stale_when_resolved() {
    let mut h = Harness::new(
        "  - alert: High\n    expr: x > 5\n    for: 1m\n    labels:\n      severity: page\n",
    );
    run(&mut h, "x{host=\"a\"}", &[(0, 10.0), (1, 10.0)]);
    let firing = h.query("ALERTS{alertstate=\"firing\"}", 1);
    assert_eq!(firing.len(), 1);
    let labels = &firing[0].0;
    assert_eq!(
        (
            labels.get("alertname"),
            labels.get("host"),
            labels.get("severity")
        ),
        ("High", "a", "page")
    );
    let for_state = h.query("ALERTS_FOR_STATE", 1);
    assert_eq!(for_state[0].1, 0.0, "active since minute 0, in seconds");
    run(&mut h, "x{host=\"a\"}", &[(2, 1.0)]);
    assert!(
        h.query("ALERTS", 2).is_empty(),
        "a staleness marker ends the series"
    );
}

#[test]
fn a_failing_rule_is_marked_and_the_group_goes_on() {
    let mut h = Harness::new(
        "  - alert: Clash\n    expr: x > 5\n    labels:\n      host: same\n  - record: y\n    expr: x * 2\n",
    );
    h.set("x{host=\"a\"}", 0, 10.0);
    h.set("x{host=\"b\"}", 0, 10.0);
    h.eval(0);
    let bad = &h.group.states[0];
    assert_eq!(bad.health, RuleHealth::Err);
    assert!(
        bad.last_error.as_deref().unwrap().contains("same labelset"),
        "{:?}",
        bad.last_error
    );
    assert_eq!(h.group.states[1].health, RuleHealth::Ok);
    assert_eq!(h.query("y", 0).len(), 2);
}

#[test]
fn a_group_limit_refuses_and_clears() {
    let text = "groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: High\n    expr: x > 5\n";
    let mut specs = parse_file(Path::new("t.yml"), text).unwrap();
    let mut h = Harness {
        storage: MemoryStorage::default(),
        group: Group::new(specs.remove(0)),
        env: RuleEnv::default(),
    };
    h.set("x{host=\"a\"}", 0, 10.0);
    h.eval(0);
    assert_eq!(h.states(0).len(), 1);
    h.set("x{host=\"a\"}", 1, 10.0);
    h.set("x{host=\"b\"}", 1, 10.0);
    h.eval(1);
    assert!(h.states(0).is_empty());
    let error = h.group.states[0].last_error.clone().unwrap();
    assert_eq!(error, "exceeded limit of 1 with 2 series");
}

use crate::rules::RuleHealth;
