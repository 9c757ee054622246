//! The configuration compiled for use: the route tree with inherited settings, escalation
//! policies with their receivers resolved through on-call schedules, time intervals,
//! maintenance windows and muting rules with parsed matchers.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sysward_notify::Receiver;

use super::{
    config::{NotifyConfig, RouteConfig, matches, parse_matchers, parse_rate},
    oncall::{Role, Schedule},
    timing::{TimeInterval, parse_instant},
};
use crate::{rules::template::JsonTemplate, store::LabelMatcher};

pub type Labels = BTreeMap<String, String>;

const GROUP_WAIT: Duration = Duration::from_secs(30);
const GROUP_INTERVAL: Duration = Duration::from_secs(300);
const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug)]
pub struct Route {
    /// `0`, `0.1`, `0.1.0`: its place in the tree, part of its groups' keys.
    pub id: String,
    matchers: Vec<LabelMatcher>,
    pub receiver: Option<String>,
    pub escalation: Option<String>,
    /// `...` groups by every label.
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    continue_matching: bool,
    pub active: Vec<String>,
    pub mute: Vec<String>,
    children: Vec<Route>,
}

impl Route {
    fn build(c: &RouteConfig, id: String, parent: Option<&Route>) -> Result<Route, String> {
        let inherit =
            |own: Option<Duration>, up: Option<Duration>, default| own.or(up).unwrap_or(default);
        let mut route = Route {
            id: id.clone(),
            matchers: parse_matchers(&c.matchers)?,
            receiver: c
                .receiver
                .clone()
                .or_else(|| parent.and_then(|p| p.receiver.clone())),
            escalation: c
                .escalation
                .clone()
                .or_else(|| parent.and_then(|p| p.escalation.clone())),
            group_by: c
                .group_by
                .clone()
                .or_else(|| parent.map(|p| p.group_by.clone()))
                .unwrap_or_default(),
            group_wait: inherit(c.group_wait, parent.map(|p| p.group_wait), GROUP_WAIT),
            group_interval: inherit(
                c.group_interval,
                parent.map(|p| p.group_interval),
                GROUP_INTERVAL,
            ),
            repeat_interval: inherit(
                c.repeat_interval,
                parent.map(|p| p.repeat_interval),
                REPEAT_INTERVAL,
            ),
            continue_matching: c.continue_matching,
            active: if c.active_time_intervals.is_empty() {
                parent.map(|p| p.active.clone()).unwrap_or_default()
            } else {
                c.active_time_intervals.clone()
            },
            mute: if c.mute_time_intervals.is_empty() {
                parent.map(|p| p.mute.clone()).unwrap_or_default()
            } else {
                c.mute_time_intervals.clone()
            },
            children: Vec::new(),
        };
        let mut children = Vec::new();
        for (i, child) in c.routes.iter().enumerate() {
            children.push(Route::build(child, format!("{id}.{i}"), Some(&route))?);
        }
        route.children = children;
        Ok(route)
    }

    /// The routes an alert goes to, as Alertmanager picks them: the deepest matching routes,
    /// the first matching child of each level unless it says `continue`.
    pub fn routes_for<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        if !matches(&self.matchers, labels) {
            return false;
        }
        let mut any = false;
        for child in &self.children {
            if child.routes_for(labels, out) {
                any = true;
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !any {
            out.push(self);
        }
        true
    }

    /// The group's labels: the values of `group_by` (all labels for `...`).
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by.iter().any(|g| g == "...") {
            return labels.clone();
        }
        self.group_by
            .iter()
            .map(|k| (k.clone(), labels.get(k).cloned().unwrap_or_default()))
            .collect()
    }

    pub fn find(&self, id: &str) -> Option<&Route> {
        if self.id == id {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(id))
    }
}

#[derive(Debug)]
pub struct Step {
    pub after: Duration,
    receivers: Vec<String>,
    oncall: Vec<(String, Role)>,
    pub active: Vec<String>,
    pub mute: Vec<String>,
}

/// A window or silence with its matchers; `when` is fixed times or a recurring interval.
#[derive(Debug)]
pub struct Window {
    pub name: String,
    pub matchers: Vec<LabelMatcher>,
    pub when: When,
}

#[derive(Debug)]
pub enum When {
    Between(i64, i64),
    Recurring(TimeInterval),
}

impl Window {
    pub fn active(&self, now: i64) -> bool {
        match &self.when {
            When::Between(s, e) => (*s..*e).contains(&now),
            When::Recurring(t) => t.contains(now),
        }
    }
}

/// Source alerts that fire mute target alerts with the same `equal` labels (dependencies
/// are rules with no `equal`).
#[derive(Debug)]
pub struct Mute {
    pub name: String,
    pub source: Vec<LabelMatcher>,
    pub target: Vec<LabelMatcher>,
    pub equal: Vec<String>,
}

/// A receiver's own templates, parsed.
#[derive(Debug, Default)]
pub struct ReceiverTemplates {
    pub title: Option<JsonTemplate>,
    pub text: Option<JsonTemplate>,
    pub body: Option<JsonTemplate>,
}

impl ReceiverTemplates {
    pub fn of(r: &Receiver) -> Result<ReceiverTemplates, String> {
        let parse = |key: &str, t: &Option<String>| {
            t.as_deref()
                .map(JsonTemplate::parse)
                .transpose()
                .map_err(|e| format!("{key}: {e}"))
        };
        Ok(ReceiverTemplates {
            title: parse("title", &r.title)?,
            text: parse("text", &r.text)?,
            body: parse("body", &r.body)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.text.is_none() && self.body.is_none()
    }
}

#[derive(Debug)]
pub struct Plan {
    pub config: Arc<NotifyConfig>,
    pub root: Option<Route>,
    pub policies: BTreeMap<String, Vec<Step>>,
    pub schedules: BTreeMap<String, Schedule>,
    pub intervals: BTreeMap<String, TimeInterval>,
    pub maintenance: Vec<Window>,
    pub mutes: Vec<Mute>,
    pub per_receiver: Option<(usize, Duration)>,
    pub flapping: Option<(usize, Duration)>,
    pub templates: BTreeMap<String, ReceiverTemplates>,
}

impl Plan {
    /// Compiles a prepared configuration (its errors were reported by `prepare`).
    pub fn build(config: Arc<NotifyConfig>) -> Result<Plan, String> {
        let p = &*config;
        let root = config
            .route
            .as_ref()
            .map(|r| Route::build(r, "0".into(), None))
            .transpose()?;
        let mut policies = BTreeMap::new();
        for e in &p.escalations {
            let steps = e
                .steps
                .iter()
                .map(|s| {
                    let oncall = s
                        .oncall
                        .iter()
                        .map(|o| {
                            let (name, role) = o.split_once(':').unwrap_or((o, "primary"));
                            (name.to_string(), Role::parse(role).unwrap_or(Role::Primary))
                        })
                        .collect();
                    Step {
                        after: s.after,
                        receivers: s.receivers.clone(),
                        oncall,
                        active: s.active_time_intervals.clone(),
                        mute: s.mute_time_intervals.clone(),
                    }
                })
                .collect();
            policies.insert(e.name.clone(), steps);
        }
        let schedules = p
            .schedules
            .iter()
            .map(|s| Ok((s.name.clone(), Schedule::new(s)?)))
            .collect::<Result<_, String>>()?;
        let intervals = p
            .time_intervals
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    TimeInterval::new(&t.time_zone, &t.weekdays, &t.times)?,
                ))
            })
            .collect::<Result<_, String>>()?;
        let mut maintenance = Vec::new();
        for m in &p.maintenance {
            let when = match (&m.start, &m.end) {
                (Some(s), Some(e)) => When::Between(parse_instant(s)?, parse_instant(e)?),
                _ => When::Recurring(TimeInterval::new(&m.time_zone, &m.weekdays, &m.times)?),
            };
            maintenance.push(Window {
                name: m.name.clone(),
                matchers: parse_matchers(&m.matchers)?,
                when,
            });
        }
        let mut mutes = Vec::new();
        for (i, r) in p.inhibit_rules.iter().enumerate() {
            mutes.push(Mute {
                name: format!("inhibit_rules[{i}]"),
                source: parse_matchers(&r.source_matchers)?,
                target: parse_matchers(&r.target_matchers)?,
                equal: r.equal.clone(),
            });
        }
        for d in &p.dependencies {
            mutes.push(Mute {
                name: format!("dependency {}", d.name),
                source: parse_matchers(&d.parent)?,
                target: parse_matchers(&d.children)?,
                equal: Vec::new(),
            });
        }
        let rate = |v: &Option<String>| v.as_deref().map(parse_rate).transpose();
        let mut templates = BTreeMap::new();
        for r in &p.receivers {
            let t = ReceiverTemplates::of(r)?;
            if !t.is_empty() {
                templates.insert(r.name.clone(), t);
            }
        }
        Ok(Plan {
            templates,
            per_receiver: rate(&config.limits.per_receiver)?,
            flapping: rate(&config.limits.flapping)?,
            root,
            policies,
            schedules,
            intervals,
            maintenance,
            mutes,
            config,
        })
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.config.receivers.iter().find(|r| r.name == name)
    }

    /// Whether notifications are allowed now under these active and mute intervals.
    pub fn open_at(&self, active: &[String], mute: &[String], now: i64) -> bool {
        let within = |name: &String| self.intervals.get(name).is_some_and(|t| t.contains(now));
        (active.is_empty() || active.iter().any(within)) && !mute.iter().any(within)
    }

    /// The receivers of escalation step `step` at `now` (on-call names resolved now);
    /// empty while the step's own time intervals hold it.
    pub fn step_receivers(&self, policy: &str, step: usize, now: i64) -> Vec<String> {
        let Some(s) = self.policies.get(policy).and_then(|steps| steps.get(step)) else {
            return Vec::new();
        };
        if !self.open_at(&s.active, &s.mute, now) {
            return Vec::new();
        }
        let mut out = s.receivers.clone();
        for (schedule, role) in &s.oncall {
            if let Some(sc) = self.schedules.get(schedule) {
                out.push(sc.who(now, *role).to_string());
            }
        }
        out.dedup();
        out
    }
}
