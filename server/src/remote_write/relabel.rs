//! Which series a target receives, and under which labels.
//!
//! `keep` and `drop` are matched against the series as the store has it (its name as
//! `__name__`, its labels with `instance` and `agent_id`), before the extra labels: a
//! series is sent when it matches one `keep` selector (or there are none) and no `drop`
//! selector. Extra labels are then added unless the series has the label already, as
//! Prometheus adds `external_labels`. The labels come out sorted by name, as remote write
//! requires.

use sysward_promwire::Label;

use crate::{
    selector::Selector,
    store::{NAME_LABEL, SeriesLabels},
};

/// A target's relabelling.
#[derive(Debug, Clone, Default)]
pub struct Relabel {
    pub keep: Vec<Selector>,
    pub drop: Vec<Selector>,
    pub extra_labels: Vec<(String, String)>,
}

impl Relabel {
    /// The labels to send, or `None` when the series is not sent.
    pub fn apply(&self, series: &SeriesLabels) -> Option<Vec<Label>> {
        let value = |name: &str| -> &str {
            if name == NAME_LABEL {
                return &series.name;
            }
            series.labels.get(name).map_or("", String::as_str)
        };
        let matches = |sel: &Selector| sel.iter().all(|m| m.matches(value(&m.label)));
        if !self.keep.is_empty() && !self.keep.iter().any(matches) {
            return None;
        }
        if self.drop.iter().any(matches) {
            return None;
        }
        let mut labels: Vec<Label> = Vec::with_capacity(series.labels.len() + 1);
        labels.push(Label {
            name: NAME_LABEL.into(),
            value: series.name.clone(),
        });
        for (name, value) in &series.labels {
            labels.push(Label {
                name: name.clone(),
                value: value.clone(),
            });
        }
        for (name, value) in &self.extra_labels {
            if !series.labels.contains_key(name) {
                labels.push(Label {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        Some(labels)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::selector::parse_selector;

    fn series(name: &str, labels: &[(&str, &str)]) -> SeriesLabels {
        SeriesLabels {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn selectors(texts: &[&str]) -> Vec<Selector> {
        texts
            .iter()
            .flat_map(|t| parse_selector(t).unwrap())
            .collect()
    }

    fn names(labels: &[Label]) -> Vec<(&str, &str)> {
        labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn everything_is_sent_with_sorted_labels_by_default() {
        let s = series("node_load1", &[("instance", "h1"), ("agent_id", "a1")]);
        let out = Relabel::default().apply(&s).unwrap();
        assert_eq!(
            names(&out),
            [
                ("__name__", "node_load1"),
                ("agent_id", "a1"),
                ("instance", "h1")
            ]
        );
    }

    #[test]
    fn keep_then_drop_on_the_stored_labels() {
        let r = Relabel {
            keep: selectors(&[
                r#"{__name__=~"node_cpu.*|node_load1"}"#,
                r#"up{instance="h2"}"#,
            ]),
            drop: selectors(&[r#"node_cpu_seconds_total{mode="idle"}"#]),
            extra_labels: vec![],
        };
        let cpu = |mode| {
            series(
                "node_cpu_seconds_total",
                &[("instance", "h1"), ("mode", mode)],
            )
        };
        assert!(r.apply(&cpu("user")).is_some());
        assert!(r.apply(&cpu("idle")).is_none(), "dropped");
        assert!(r.apply(&series("node_load5", &[])).is_none(), "not kept");
        assert!(r.apply(&series("up", &[("instance", "h2")])).is_some());
        assert!(r.apply(&series("up", &[("instance", "h1")])).is_none());
    }

    #[test]
    fn extra_labels_never_replace_the_series_own() {
        let r = Relabel {
            extra_labels: vec![
                ("cluster".into(), "eu".into()),
                ("instance".into(), "x".into()),
            ],
            ..Relabel::default()
        };
        let out = r
            .apply(&series("m", &[("instance", "h1"), ("zone", "b")]))
            .unwrap();
        assert_eq!(
            names(&out),
            [
                ("__name__", "m"),
                ("cluster", "eu"),
                ("instance", "h1"),
                ("zone", "b")
            ]
        );
    }
}
