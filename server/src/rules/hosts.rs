//! Host up and down, from batch arrivals: the `up` and
//! `sysward_agent_last_seen_timestamp_seconds` series the engine writes, and the hosts whose
//! other alerts are inhibited while they are down.
//!
//! A host is up while its batches arrive within three of its critical tier intervals (the
//! agent states the interval in each batch's host information; 30 s, the agents' default,
//! until it does). One missing batch is not an outage; three are.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use crate::query::Labels;

/// Agents' default critical interval, for agents that do not state theirs.
pub const DEFAULT_CRITICAL_MS: i64 = 30_000;
/// Missed critical intervals before a host is down.
pub const MISSED_INTERVALS: i64 = 3;

#[derive(Debug, Clone)]
struct Seen {
    instance: String,
    last_ms: i64,
    critical_ms: i64,
    /// The agent's `[agent.labels]`, checked by [`host_labels`].
    labels: Vec<(String, String)>,
}

/// The series that carries each labelled agent's `[agent.labels]` (value 1, with
/// `agent_id` and `instance`), so that queries and the console can select hosts by them.
pub const AGENT_LABELS: &str = "sysward_agent_labels";
/// Labels of one agent kept; more are dropped.
const MAX_HOST_LABELS: usize = 32;
/// Longest label value kept, in bytes; a longer one is dropped.
const MAX_HOST_LABEL_VALUE: usize = 256;

/// The labels of an agent's host information that can go on a series: a Prometheus label
/// name not starting with `__`, not one the server sets, a value of at most
/// [`MAX_HOST_LABEL_VALUE`] bytes; the first [`MAX_HOST_LABELS`] in name order. The agent
/// checks its config the same way; the server does not trust it to.
pub fn host_labels(labels: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    let valid_name = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with("__")
            && !["agent_id", "instance", "job"].contains(&n)
    };
    labels
        .iter()
        .filter(|(n, v)| valid_name(n) && !v.is_empty() && v.len() <= MAX_HOST_LABEL_VALUE)
        .take(MAX_HOST_LABELS)
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// What the engine knows of every agent's arrivals.
#[derive(Debug, Default)]
pub struct HostTracker {
    hosts: Mutex<HashMap<String, Seen>>,
}

/// Hosts that are down now, by agent id and by instance.
#[derive(Debug, Default, Clone)]
pub struct DownHosts {
    pub agents: HashSet<String>,
    pub instances: HashSet<String>,
}

impl DownHosts {
    /// Whether an alert with these labels is about a host that is down.
    pub fn covers(&self, labels: &Labels) -> bool {
        let agent = labels.get("agent_id");
        if !agent.is_empty() {
            return self.agents.contains(agent);
        }
        let instance = labels.get("instance");
        !instance.is_empty() && self.instances.contains(instance)
    }
}

impl HostTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A batch from `agent_id` arrived at `at_ms`; `critical_ms` 0 when the agent did not
    /// say.
    pub fn seen(&self, agent_id: &str, instance: &str, at_ms: i64, critical_ms: u64) {
        let mut hosts = self.lock();
        let entry = hosts.entry(agent_id.to_string()).or_insert_with(|| Seen {
            instance: instance.to_string(),
            last_ms: at_ms,
            critical_ms: DEFAULT_CRITICAL_MS,
            labels: Vec::new(),
        });
        entry.last_ms = entry.last_ms.max(at_ms);
        if !instance.is_empty() {
            entry.instance = instance.to_string();
        }
        if critical_ms > 0 {
            entry.critical_ms = i64::try_from(critical_ms).unwrap_or(i64::MAX);
        }
    }

    /// The labels the agent's last batch stated (after [`seen`](Self::seen)).
    pub fn labelled(&self, agent_id: &str, labels: Vec<(String, String)>) {
        if let Some(entry) = self.lock().get_mut(agent_id) {
            entry.labels = labels;
        }
    }

    /// Makes the tracker know exactly the agents in `approved` (id → host name): revoked
    /// and deleted agents stop counting as hosts (no `up` series, no host-down alert);
    /// approved ones not seen yet this run start from their last-seen time, if any.
    pub fn sync(&self, approved: &[(String, String, Option<i64>)]) {
        let mut hosts = self.lock();
        hosts.retain(|id, _| approved.iter().any(|(a, _, _)| a == id));
        for (id, instance, last) in approved {
            if let Some(last_ms) = last {
                hosts.entry(id.clone()).or_insert(Seen {
                    instance: instance.clone(),
                    last_ms: *last_ms,
                    critical_ms: DEFAULT_CRITICAL_MS,
                    labels: Vec::new(),
                });
            }
        }
    }

    fn is_up(s: &Seen, now: i64) -> bool {
        now - s.last_ms <= MISSED_INTERVALS.saturating_mul(s.critical_ms)
    }

    /// `up` and the last-seen time of every known agent at `now`.
    pub fn samples(&self, now: i64) -> Vec<(Labels, f64)> {
        let hosts = self.lock();
        let mut out = Vec::with_capacity(hosts.len() * 2);
        for (agent_id, s) in hosts.iter() {
            let base = Labels::new(vec![
                ("agent_id".into(), agent_id.clone()),
                ("instance".into(), s.instance.clone()),
            ]);
            let up = if Self::is_up(s, now) { 1.0 } else { 0.0 };
            out.push((base.with("__name__", "up"), up));
            out.push((
                base.with("__name__", "sysward_agent_last_seen_timestamp_seconds"),
                s.last_ms as f64 / 1000.0,
            ));
            if !s.labels.is_empty() {
                let mut labels = base.with("__name__", AGENT_LABELS);
                for (name, value) in &s.labels {
                    labels = labels.with(name, value);
                }
                out.push((labels, 1.0));
            }
        }
        out
    }

    /// Agents known to the tracker, and those down at `now` with their instance and last
    /// batch (for the server's health).
    pub fn silent(&self, now: i64) -> (usize, Vec<(String, String, i64)>) {
        let hosts = self.lock();
        let silent = hosts
            .iter()
            .filter(|(_, s)| !Self::is_up(s, now))
            .map(|(id, s)| (id.clone(), s.instance.clone(), s.last_ms))
            .collect();
        (hosts.len(), silent)
    }

    pub fn down(&self, now: i64) -> DownHosts {
        let hosts = self.lock();
        let mut down = DownHosts::default();
        for (agent_id, s) in hosts.iter().filter(|(_, s)| !Self::is_up(s, now)) {
            down.agents.insert(agent_id.clone());
            down.instances.insert(s.instance.clone());
        }
        down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_down_after_three_missed_critical_intervals() {
        let t = HostTracker::default();
        t.seen("a1", "web1", 1_000, 10_000);
        t.seen("a2", "db1", 1_000, 0);
        let up = |now| {
            let mut v: Vec<(String, f64)> = t
                .samples(now)
                .into_iter()
                .filter(|(l, _)| l.name() == "up")
                .map(|(l, v)| (l.get("instance").to_string(), v))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(up(31_000), [("db1".into(), 1.0), ("web1".into(), 1.0)]);
        // web1 said 10 s: down past 30 s; db1 said nothing: 30 s assumed, down past 90 s.
        assert_eq!(up(31_001), [("db1".into(), 1.0), ("web1".into(), 0.0)]);
        assert_eq!(up(91_001), [("db1".into(), 0.0), ("web1".into(), 0.0)]);
        let down = t.down(31_001);
        let alert = Labels::new(vec![("agent_id".into(), "a1".into())]);
        assert!(down.covers(&alert));
        let by_instance = Labels::new(vec![("instance".into(), "web1".into())]);
        assert!(down.covers(&by_instance));
        assert!(!down.covers(&Labels::new(vec![("instance".into(), "db1".into())])));
        // Back.
        t.seen("a1", "web1", 40_000, 10_000);
        assert!(t.down(41_000).agents.is_empty());
    }

    #[test]
    fn an_agents_labels_go_on_a_series_of_their_own_checked() {
        let t = HostTracker::default();
        t.seen("a1", "web1", 1_000, 10_000);
        t.seen("a2", "db1", 1_000, 10_000);
        let stated: std::collections::BTreeMap<String, String> = [
            ("env", "prod"),
            ("team", "db"),
            ("instance", "spoof"),
            ("agent_id", "spoof"),
            ("__name__", "spoof"),
            ("bad-name", "x"),
            ("9lives", "x"),
            ("empty", ""),
            ("long", &"x".repeat(MAX_HOST_LABEL_VALUE + 1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        t.labelled("a1", host_labels(&stated));
        t.labelled("unknown", host_labels(&stated));
        let info: Vec<Labels> = t
            .samples(2_000)
            .into_iter()
            .filter(|(l, _)| l.name() == AGENT_LABELS)
            .map(|(l, v)| {
                assert_eq!(v, 1.0);
                l
            })
            .collect();
        assert_eq!(info.len(), 1, "only the labelled agent: {info:?}");
        let want = Labels::new(vec![
            ("__name__".into(), AGENT_LABELS.into()),
            ("agent_id".into(), "a1".into()),
            ("env".into(), "prod".into()),
            ("instance".into(), "web1".into()),
            ("team".into(), "db".into()),
        ]);
        assert_eq!(info[0], want);
        let many: std::collections::BTreeMap<String, String> = (0..100)
            .map(|i| (format!("l{i:03}"), "v".to_string()))
            .collect();
        assert_eq!(host_labels(&many).len(), MAX_HOST_LABELS);
    }

    #[test]
    fn revoked_agents_stop_being_hosts() {
        let t = HostTracker::default();
        t.seen("a1", "web1", 1_000, 10_000);
        t.seen("a2", "db1", 1_000, 10_000);
        t.sync(&[("a1".into(), "web1".into(), Some(1_000))]);
        let down = t.down(100_000);
        assert!(down.agents.contains("a1") && !down.agents.contains("a2"));
        assert_eq!(t.samples(100_000).len(), 2, "up and last seen of a1 only");
    }

    #[test]
    fn last_seen_is_a_series_in_seconds() {
        let t = HostTracker::default();
        t.sync(&[("a1".into(), "web1".into(), Some(5_500))]);
        let s = t.samples(6_000);
        let seen = s
            .iter()
            .find(|(l, _)| l.name() == "sysward_agent_last_seen_timestamp_seconds")
            .unwrap();
        assert_eq!(seen.1, 5.5);
        assert_eq!(seen.0.get("agent_id"), "a1");
    }
}
