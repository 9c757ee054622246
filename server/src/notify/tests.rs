//! The notifier's decisions on a manual clock: grouping, repeats, escalation with on-call and
//! acknowledgement, maintenance windows, silences, business hours, inhibition, dependencies,
//! flapping and the frequency limit. Messages are read from the queue, not sent.

use std::{sync::Arc, time::Duration};

use rusqlite::params;
use sysward_notify::{Event, Notification, Status};

use super::*;
use crate::store::ManualClock;

/// 2026-12-07 (a Monday) 08:00 UTC.
const T0: i64 = 1_796_630_400_000;
const MIN: i64 = 60_000;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    notifier: Notifier,
    next_id: i64,
}

const RECEIVERS: &str = r#"
[[notify.receivers]]
name = "team"
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/team"
[[notify.receivers]]
name = "lead"
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/lead"
[[notify.receivers]]
name = "manager"
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/manager"
[[notify.receivers]]
name = "ann"
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/ann"
[[notify.receivers]]
name = "bob"
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/bob"
"#;

impl Fixture {
    fn new(notify_toml: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        // The rules' tables: the outbox comes from there.
        crate::rules::persist::AlertDb::open(&path).expect("rules db");
        let text = format!("{notify_toml}\n{RECEIVERS}");
        let config = crate::config::ServerConfig::parse(&text, std::path::Path::new("server.toml"))
            .expect("config");
        let clock = Arc::new(ManualClock::new(T0));
        let notifier = Notifier::open(
            config.notify.clone(),
            &path,
            clock.clone(),
            "https://sysward.test".into(),
            Arc::new(tokio::sync::Notify::new()),
        )
        .expect("notifier");
        Fixture {
            _dir: dir,
            path,
            clock,
            notifier,
            next_id: 1,
        }
    }

    /// A transition of the alert `labels` into `to` (firing, inactive), as the rules write it.
    fn transition(&mut self, labels: &[(&str, &str)], to: &str) {
        let conn = rusqlite::Connection::open(&self.path).expect("open");
        let pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let name = labels
            .iter()
            .find(|(k, _)| *k == "alertname")
            .map(|(_, v)| *v)
            .unwrap_or("A");
        let now = self.clock.now_ms();
        conn.execute(
            "INSERT INTO alert_transitions(id, at_ms, rule, alertname, labels, from_state,
                 to_state, value, active_at, annotations)
             VALUES (?1, ?2, 'r', ?3, ?4, 'x', ?5, 1.5, ?2, ?6)",
            params![
                self.next_id,
                now,
                name,
                serde_json::to_string(&pairs).expect("json"),
                to,
                r#"[["summary","it broke"]]"#
            ],
        )
        .expect("transition");
        conn.execute(
            "INSERT INTO alert_outbox(transition_id, created_ms) VALUES (?1, ?2)",
            params![self.next_id, now],
        )
        .expect("outbox");
        self.next_id += 1;
        // The notifier sees a transition at once (the rule engine wakes it).
        self.notifier.step().expect("step");
    }

    fn at(&self, ms: i64) -> StepReport {
        self.clock.set(ms);
        self.notifier.step().expect("step")
    }

    /// Messages written so far, oldest first: (receiver, notification).
    fn sent(&self) -> Vec<(String, Notification)> {
        let conn = rusqlite::Connection::open(&self.path).expect("open");
        let mut q = conn
            .prepare("SELECT receiver, body FROM notify_messages ORDER BY created_ms, rowid")
            .expect("query");
        q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("rows")
            .map(|r| {
                let (receiver, body) = r.expect("row");
                (receiver, serde_json::from_str(&body).expect("notification"))
            })
            .collect()
    }

    fn sent_since(&self, n: usize) -> Vec<(String, Notification)> {
        self.sent().into_iter().skip(n).collect()
    }
}

fn receivers(list: &[(String, Notification)]) -> Vec<&str> {
    list.iter().map(|(r, _)| r.as_str()).collect()
}

const ROUTE: &str = r#"
[notify.route]
receiver = "team"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "5m"
repeat_interval = "4h"
"#;

#[test]
fn alerts_of_a_group_wait_together_then_resolve_once() {
    let mut f = Fixture::new(ROUTE);
    f.transition(&[("alertname", "HighCpu"), ("instance", "web-1")], "firing");
    f.at(T0);
    assert!(f.sent().is_empty(), "group_wait holds the first message");
    f.clock.set(T0 + 10_000);
    f.transition(&[("alertname", "HighCpu"), ("instance", "web-2")], "firing");
    f.at(T0 + 10_000);
    f.at(T0 + 29_000);
    assert!(f.sent().is_empty());
    f.at(T0 + 30_000);
    let sent = f.sent();
    assert_eq!(receivers(&sent), ["team"]);
    let n = &sent[0].1;
    assert_eq!(n.alerts.len(), 2, "one message carries the group");
    assert_eq!(n.status, Status::Firing);
    assert_eq!(
        n.group_labels.get("alertname").map(String::as_str),
        Some("HighCpu")
    );
    assert!(
        n.ack_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://sysward.test/api/v1/ack/"))
    );
    // One resolves: told after group_interval, not before.
    f.clock.set(T0 + MIN);
    f.transition(
        &[("alertname", "HighCpu"), ("instance", "web-1")],
        "inactive",
    );
    f.at(T0 + MIN);
    assert_eq!(f.sent().len(), 1);
    f.at(T0 + 30_000 + 5 * MIN);
    let sent = f.sent();
    assert_eq!(sent.len(), 2);
    let n = &sent[1].1;
    assert_eq!(
        n.alerts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [Status::Firing, Status::Resolved]
    );
    // The resolved one is not told again.
    f.clock.set(T0 + 6 * MIN);
    f.transition(
        &[("alertname", "HighCpu"), ("instance", "web-2")],
        "inactive",
    );
    f.at(T0 + 11 * MIN);
    let sent = f.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].1.status, Status::Resolved);
    assert_eq!(sent[2].1.alerts.len(), 1);
    f.at(T0 + 5 * 3600 * 1000);
    assert_eq!(f.sent().len(), 3, "nothing repeats once resolved");
}

#[test]
fn a_firing_group_repeats_at_its_interval() {
    let mut f = Fixture::new(ROUTE);
    f.transition(&[("alertname", "DiskFull")], "firing");
    f.at(T0 + 30_000);
    assert_eq!(f.sent().len(), 1);
    f.at(T0 + 30_000 + 4 * 3600 * 1000 - 1);
    assert_eq!(f.sent().len(), 1);
    f.at(T0 + 30_000 + 4 * 3600 * 1000);
    assert_eq!(f.sent().len(), 2);
    f.at(T0 + 30_000 + 8 * 3600 * 1000);
    assert_eq!(f.sent().len(), 3);
}

const ESCALATION: &str = r#"
[notify.route]
escalation = "default"
group_by = ["alertname"]
group_wait = "0s"

[[notify.schedules]]
name = "ops"
time_zone = "Europe/Berlin"
start = "2026-11-30T09:00"
rotation = ["ann", "bob"]

[[notify.escalations]]
name = "default"
[[notify.escalations.steps]]
after = "0m"
receivers = ["team"]
oncall = ["ops:primary"]
[[notify.escalations.steps]]
after = "15m"
receivers = ["lead"]
oncall = ["ops:secondary"]
[[notify.escalations.steps]]
after = "30m"
receivers = ["manager"]
"#;

#[test]
fn escalation_steps_until_acknowledged_and_the_ack_is_sent_on() {
    let mut f = Fixture::new(ESCALATION);
    f.transition(&[("alertname", "DbDown")], "firing");
    f.at(T0);
    // T0 is Monday 09:00 Berlin of the second week: bob is primary, ann secondary.
    assert_eq!(receivers(&f.sent()), ["team", "bob"]);
    f.at(T0 + 15 * MIN - 1);
    assert_eq!(f.sent().len(), 2);
    f.at(T0 + 15 * MIN);
    let later = f.sent_since(2);
    assert_eq!(receivers(&later), ["lead", "ann"]);
    assert!(
        later
            .iter()
            .all(|(_, n)| n.event == Event::Escalated { step: 1 })
    );
    let group = f.notifier.groups().expect("groups")[0].id.clone();
    f.notifier.acknowledge(&group, "ann").expect("ack");
    f.at(T0 + 16 * MIN);
    let acks = f.sent_since(4);
    let mut who = receivers(&acks);
    who.sort();
    assert_eq!(
        who,
        ["ann", "bob", "lead", "team"],
        "everyone reached hears of the ack"
    );
    assert!(
        acks.iter()
            .all(|(_, n)| n.event == Event::Acknowledged { by: "ann".into() })
    );
    f.at(T0 + 45 * MIN);
    assert_eq!(f.sent().len(), 8, "the manager is never called");
    // Resolution ends the episode; the next firing starts from step 0, unacknowledged.
    f.transition(&[("alertname", "DbDown")], "inactive");
    f.at(T0 + 50 * MIN);
    f.transition(&[("alertname", "DbDown")], "firing");
    f.at(T0 + 60 * MIN);
    f.at(T0 + 75 * MIN);
    let tail = f.sent_since(8);
    assert!(
        tail.iter()
            .any(|(r, n)| r == "lead" && n.event == Event::Escalated { step: 1 }),
        "{:?}",
        receivers(&tail)
    );
}

#[test]
fn an_acknowledgement_needs_a_firing_group() {
    let f = Fixture::new(ESCALATION);
    assert!(matches!(
        f.notifier.acknowledge("nope", "x"),
        Err(NotifyError::NotFound(_))
    ));
}

#[test]
fn maintenance_holds_notifications_and_what_still_fires_is_told_when_it_ends() {
    let mut f = Fixture::new(&format!(
        "{ROUTE}
[[notify.maintenance]]
name = \"db patching\"
matchers = ['instance=\"db-1\"']
start = \"2026-12-07T07:55:00Z\"
end = \"2026-12-07T09:00:00Z\"
"
    ));
    f.transition(&[("alertname", "Down"), ("instance", "db-1")], "firing");
    f.transition(&[("alertname", "Other"), ("instance", "web-1")], "firing");
    f.at(T0 + 30_000);
    let sent = f.sent();
    assert_eq!(sent.len(), 1, "only the alert outside the window");
    assert_eq!(sent[0].1.alerts[0].labels["instance"], "web-1");
    f.at(T0 + 59 * MIN);
    assert_eq!(f.sent().len(), 1);
    f.at(T0 + 60 * MIN);
    let sent = f.sent();
    assert_eq!(sent.len(), 2, "told when the window ends");
    assert_eq!(sent[1].1.alerts[0].labels["instance"], "db-1");
}

#[test]
fn recurring_maintenance_in_its_time_zone() {
    let mut f = Fixture::new(&format!(
        "{ROUTE}
[[notify.maintenance]]
name = \"nightly backup\"
matchers = ['alertname=\"Load\"']
time_zone = \"Europe/Berlin\"
times = [\"08:00-10:00\"]
"
    ));
    // 08:00 UTC is 09:00 Berlin: within.
    f.transition(&[("alertname", "Load")], "firing");
    f.at(T0 + 30_000);
    assert!(f.sent().is_empty());
    f.at(T0 + 60 * MIN);
    assert_eq!(f.sent().len(), 1, "10:00 Berlin ends it");
}

#[test]
fn silences_hold_until_expired() {
    let mut f = Fixture::new(ROUTE);
    let id = f
        .notifier
        .add_silence(SilenceRow {
            id: String::new(),
            kind: "silence".into(),
            matchers: vec!["alertname=\"Noisy\"".into()],
            starts_ms: T0,
            ends_ms: T0 + 3600 * 1000,
            created_by: "ann".into(),
            comment: "known".into(),
            created_ms: 0,
        })
        .expect("silence");
    f.transition(&[("alertname", "Noisy")], "firing");
    f.at(T0 + 30_000);
    assert!(f.sent().is_empty());
    f.clock.set(T0 + 10 * MIN);
    f.notifier.expire_silence(&id).expect("expire");
    f.at(T0 + 10 * MIN);
    assert_eq!(f.sent().len(), 1);
    assert!(f.notifier.expire_silence("missing").is_err());
    let bad = f.notifier.add_silence(SilenceRow {
        id: String::new(),
        kind: "silence".into(),
        matchers: vec!["alertname=~\"(\"".into()],
        starts_ms: T0,
        ends_ms: T0 + 1,
        created_by: "x".into(),
        comment: String::new(),
        created_ms: 0,
    });
    assert!(matches!(bad, Err(NotifyError::Invalid(_))));
}

#[test]
fn business_hours_route_holds_until_the_interval_begins() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "team"
group_wait = "0s"
active_time_intervals = ["office"]

[[notify.time_intervals]]
name = "office"
time_zone = "Europe/Berlin"
weekdays = ["mon-fri"]
times = ["10:00-18:00"]
"#,
    );
    f.transition(&[("alertname", "Slow")], "firing");
    f.at(T0);
    assert!(f.sent().is_empty(), "09:00 Berlin is before office hours");
    f.at(T0 + 59 * MIN);
    assert!(f.sent().is_empty());
    f.at(T0 + 61 * MIN);
    assert_eq!(f.sent().len(), 1);
}

#[test]
fn inhibition_and_dependencies_mute_their_targets() {
    let mut f = Fixture::new(&format!(
        "{ROUTE}
[[notify.inhibit_rules]]
source_matchers = ['alertname=\"HostDown\"']
target_matchers = ['severity=\"warning\"']
equal = [\"instance\"]

[[notify.dependencies]]
name = \"router\"
parent = ['instance=\"router-1\"']
children = ['site=\"office\"']
"
    ));
    f.transition(
        &[("alertname", "HostDown"), ("instance", "web-1")],
        "firing",
    );
    f.transition(
        &[
            ("alertname", "Disk"),
            ("instance", "web-1"),
            ("severity", "warning"),
        ],
        "firing",
    );
    f.transition(
        &[
            ("alertname", "Disk"),
            ("instance", "web-2"),
            ("severity", "warning"),
        ],
        "firing",
    );
    f.transition(&[("alertname", "Ping"), ("instance", "router-1")], "firing");
    f.transition(
        &[
            ("alertname", "Printer"),
            ("instance", "p-1"),
            ("site", "office"),
        ],
        "firing",
    );
    f.at(T0 + 30_000);
    let mut told: Vec<String> = f
        .sent()
        .iter()
        .flat_map(|(_, n)| {
            n.alerts
                .iter()
                .map(|a| format!("{}/{}", a.alertname(), a.labels["instance"]))
        })
        .collect();
    told.sort();
    assert_eq!(told, ["Disk/web-2", "HostDown/web-1", "Ping/router-1"]);
}

#[test]
fn a_flapping_alert_is_told_once_as_flapping() {
    let mut f = Fixture::new(&format!("{ROUTE}\n[notify.limits]\nflapping = \"3/1h\"\n"));
    let a = [("alertname", "Flappy")];
    for (i, to) in ["firing", "inactive", "firing", "inactive"]
        .iter()
        .enumerate()
    {
        f.clock.set(T0 + i as i64 * MIN);
        f.transition(&a, to);
        f.at(T0 + i as i64 * MIN);
    }
    f.at(T0 + 10 * MIN);
    let flapping: Vec<_> = f
        .sent()
        .into_iter()
        .filter(|(_, n)| n.event == Event::Flapping)
        .collect();
    assert_eq!(flapping.len(), 1);
    let before = f.sent().len();
    f.clock.set(T0 + 11 * MIN);
    f.transition(&a, "firing");
    f.at(T0 + 20 * MIN);
    assert_eq!(f.sent().len(), before, "held while it flaps");
}

#[test]
fn the_frequency_limit_holds_the_excess_and_sends_one_digest() {
    let mut f = Fixture::new(&format!(
        "{ROUTE}\n[notify.limits]\nper_receiver = \"2/1h\"\n"
    ));
    for name in ["A", "B", "C", "D"] {
        f.transition(&[("alertname", name)], "firing");
    }
    f.at(T0 + 30_000);
    assert_eq!(f.sent().len(), 2);
    f.at(T0 + 30 * MIN);
    assert_eq!(f.sent().len(), 2);
    f.at(T0 + 30_000 + 3600 * 1000 + 1);
    let sent = f.sent();
    let digest: Vec<_> = sent
        .iter()
        .filter(|(_, n)| n.event == Event::Digest { held: 2 })
        .collect();
    assert_eq!(
        digest.len(),
        1,
        "{:?}",
        sent.iter().map(|(_, n)| &n.event).collect::<Vec<_>>()
    );
}

#[test]
fn alertmanager_channels_are_re_sent_while_firing() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "am"
group_wait = "0s"
[[notify.receivers]]
name = "am"
[[notify.receivers.alertmanager]]
url = "http://127.0.0.1:9"
"#,
    );
    f.transition(&[("alertname", "X")], "firing");
    f.at(T0);
    f.at(T0 + 30_000);
    assert_eq!(f.sent().len(), 1);
    f.at(T0 + MIN);
    f.at(T0 + 2 * MIN);
    assert_eq!(f.sent().len(), 3, "re-sent every minute");
    f.transition(&[("alertname", "X")], "inactive");
    f.at(T0 + 2 * MIN + 1);
    f.at(T0 + 20 * MIN);
    let sent = f.sent();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].1.status, Status::Resolved);
}

#[test]
fn routes_pick_the_first_matching_child_unless_continue() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "team"
group_wait = "0s"
group_by = ["alertname"]
[[notify.route.routes]]
matchers = ['severity="critical"']
receiver = "manager"
continue = true
[[notify.route.routes]]
matchers = ['severity=~"critical|warning"']
receiver = "lead"
"#,
    );
    f.transition(&[("alertname", "A"), ("severity", "critical")], "firing");
    f.transition(&[("alertname", "B"), ("severity", "warning")], "firing");
    f.transition(&[("alertname", "C"), ("severity", "info")], "firing");
    f.at(T0);
    let mut got: Vec<String> = f
        .sent()
        .iter()
        .map(|(r, n)| format!("{r}:{}", n.alerts[0].alertname()))
        .collect();
    got.sort();
    assert_eq!(got, ["lead:A", "lead:B", "manager:A", "team:C"]);
}

#[test]
fn ack_links_work_once() {
    let mut f = Fixture::new(ROUTE);
    f.transition(&[("alertname", "A")], "firing");
    f.at(T0 + 30_000);
    let url = f.sent()[0].1.ack_url.clone().expect("ack link");
    let token = url.rsplit('/').next().expect("token");
    assert_eq!(f.notifier.acknowledge_link(token).expect("ack").len(), 1);
    assert!(f.notifier.acknowledge_link(token).is_err(), "one use");
    assert!(f.notifier.acknowledge_link("00").is_err());
    let groups = f.notifier.groups().expect("groups");
    assert_eq!(groups[0].acknowledged_by.as_deref(), Some("link"));
}

#[test]
fn config_errors_name_the_place() {
    let cases = [
        (
            "[notify.route]\nreceiver = \"nobody\"\n",
            "receiver \"nobody\" is not defined",
        ),
        (
            "[notify.route]\nreceiver = \"team\"\nmatchers = ['a=~\"(\"']\n",
            "route: matcher",
        ),
        (
            "[notify.route]\nescalation = \"x\"\n",
            "escalation \"x\" is not defined",
        ),
        (
            "[[notify.time_intervals]]\nname = \"t\"\ntime_zone = \"Nowhere/City\"\n",
            "Nowhere/City",
        ),
        (
            "[notify.limits]\nper_receiver = \"lots\"\n",
            "limits.per_receiver",
        ),
        (
            "[[notify.maintenance]]\nname = \"m\"\nmatchers = ['a=\"b\"']\nstart = \"2026-01-02T00:00:00Z\"\nend = \"2026-01-01T00:00:00Z\"\n",
            "end must be after start",
        ),
    ];
    for (toml, want) in cases {
        let text = format!("{toml}\n{RECEIVERS}");
        let err = crate::config::ServerConfig::parse(&text, std::path::Path::new("s.toml"))
            .expect_err(toml)
            .to_string();
        assert!(
            err.contains(want) && err.contains("s.toml"),
            "{toml}: {err}"
        );
    }
}

#[test]
fn without_a_route_the_outbox_waits_a_day_then_empties() {
    let mut f = Fixture::new("");
    f.transition(&[("alertname", "A")], "firing");
    assert_eq!(f.at(T0).transitions, 0);
    let waiting = || {
        let conn = rusqlite::Connection::open(&f.path).expect("open");
        conn.query_row("SELECT COUNT(*) FROM alert_outbox", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count")
    };
    assert_eq!(waiting(), 1);
    f.at(T0 + 23 * 3600 * 1000);
    assert_eq!(waiting(), 1);
    f.at(T0 + 25 * 3600 * 1000);
    assert_eq!(waiting(), 0);
}

#[test]
fn receivers_templates_render_over_alertmanager_data_and_a_failing_one_keeps_the_default() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "custom"
group_wait = "10s"
group_by = ["alertname"]
[[notify.receivers]]
name = "custom"
title = '[{{ .Status | toUpper }}:{{ len .Alerts.Firing }}] {{ .CommonLabels.alertname }}'
text = '{{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }} {{ end }}'
body = '{{ index .Alerts 5 }}'
[[notify.receivers.webhook]]
url = "http://127.0.0.1:9/custom"
"#,
    );
    f.transition(&[("alertname", "Disk"), ("instance", "db-1")], "firing");
    f.transition(&[("alertname", "Disk"), ("instance", "db-2")], "firing");
    f.at(T0 + 10_000);
    let sent = f.sent();
    let custom = &sent.last().expect("a notification").1.custom;
    assert_eq!(custom.title.as_deref(), Some("[FIRING:2] Disk"));
    assert_eq!(
        custom.text.as_deref(),
        Some("db-1: it broke db-2: it broke ")
    );
    assert_eq!(
        custom.body, None,
        "a template that fails leaves the default"
    );
    let text = format!("[[notify.receivers]]\nname = \"x\"\ntitle = \"{{{{ .Nope \"\n{RECEIVERS}");
    let err = crate::config::ServerConfig::parse(&text, std::path::Path::new("s.toml"))
        .expect_err("a broken template")
        .to_string();
    assert!(err.contains("receiver \"x\": title"), "{err}");
}

#[test]
fn a_target_is_told_once_its_inhibiting_alert_in_another_group_resolves() {
    let mut f = Fixture::new(&format!(
        "{ROUTE}
[[notify.inhibit_rules]]
source_matchers = ['alertname=\"HostDown\"']
target_matchers = ['severity=\"warning\"']
equal = [\"instance\"]
"
    ));
    f.transition(
        &[("alertname", "HostDown"), ("instance", "web-1")],
        "firing",
    );
    f.transition(
        &[
            ("alertname", "Disk"),
            ("instance", "web-1"),
            ("severity", "warning"),
        ],
        "firing",
    );
    f.at(T0 + 30_000);
    assert_eq!(receivers(&f.sent()).len(), 1, "only HostDown");
    f.clock.set(T0 + MIN);
    f.transition(
        &[("alertname", "HostDown"), ("instance", "web-1")],
        "inactive",
    );
    f.at(T0 + 10 * MIN);
    let told: Vec<String> = f
        .sent()
        .iter()
        .flat_map(|(_, n)| {
            n.alerts
                .iter()
                .map(|a| format!("{}:{:?}", a.alertname(), a.status))
        })
        .collect();
    assert!(told.contains(&"Disk:Firing".to_string()), "{told:?}");
}

#[test]
fn an_alert_on_several_routes_counts_each_change_once_for_flapping() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "team"
group_wait = "0s"
[[notify.route.routes]]
matchers = ['alertname="F"']
receiver = "lead"
continue = true
[[notify.route.routes]]
matchers = ['alertname="F"']
receiver = "manager"
[notify.limits]
flapping = "3/1h"
"#,
    );
    f.transition(&[("alertname", "F")], "firing");
    f.clock.set(T0 + MIN);
    f.transition(&[("alertname", "F")], "inactive");
    f.at(T0 + 10 * MIN);
    let sent = f.sent();
    assert!(sent.iter().all(|(_, n)| n.event != Event::Flapping));
    let mut who: Vec<(&str, Status)> = sent.iter().map(|(r, n)| (r.as_str(), n.status)).collect();
    who.sort_by_key(|(r, _)| *r);
    assert_eq!(
        who,
        [
            ("lead", Status::Firing),
            ("lead", Status::Resolved),
            ("manager", Status::Firing),
            ("manager", Status::Resolved)
        ]
    );
}

#[test]
fn alertmanager_re_sends_do_not_use_up_the_frequency_limit() {
    let mut f = Fixture::new(
        r#"
[notify.route]
receiver = "am"
group_wait = "0s"
group_by = ["alertname"]
[notify.limits]
per_receiver = "2/1h"
[[notify.receivers]]
name = "am"
[[notify.receivers.alertmanager]]
url = "http://127.0.0.1:9"
"#,
    );
    f.transition(&[("alertname", "A")], "firing");
    for m in 1..5 {
        f.at(T0 + m * MIN);
    }
    f.transition(&[("alertname", "B")], "firing");
    let told_b = f
        .sent()
        .iter()
        .any(|(_, n)| n.event == Event::Alerts && n.alerts[0].alertname() == "B");
    assert!(told_b, "B was held by re-sends of A");
}

#[test]
fn the_first_escalation_step_cannot_wait() {
    let text = format!(
        "[[notify.escalations]]\nname = \"e\"\n[[notify.escalations.steps]]\nafter = \"5m\"\nreceivers = [\"team\"]\n{RECEIVERS}"
    );
    let err = crate::config::ServerConfig::parse(&text, std::path::Path::new("s.toml"))
        .expect_err("a waiting first step")
        .to_string();
    assert!(err.contains("steps[0]"), "{err}");
}

#[test]
fn a_config_without_notify_has_the_documented_defaults() {
    let c = crate::config::ServerConfig::parse("", std::path::Path::new("s.toml")).expect("config");
    assert_eq!(c.notify.timeout, Duration::from_secs(10));
    assert_eq!(c.notify.alertmanager_resend, Duration::from_secs(60));
    assert_eq!(c.notify.give_up_after, Duration::from_secs(86_400));
    assert!(c.notify.route.is_none());
}
