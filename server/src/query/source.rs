//! Where the engine reads series from: one snapshot per query.

use std::sync::Arc;

use sysward_proto::SeriesKind;

use super::{Labels, QueryError};
use crate::store::{
    LabelMatcher, NAME_LABEL, ReadBudget, ReadRequest, SeriesData, Store, Tier, TierChoice,
};

/// One selector's read: its series with points in `[start, end]` at `tier`.
#[derive(Debug, Clone)]
pub struct SourceRequest {
    /// Alternatives of matchers (`{a="1" or b="2"}`); a series matching any is read.
    pub selectors: Vec<Vec<LabelMatcher>>,
    /// First ms, inclusive.
    pub start: i64,
    /// Last ms, inclusive.
    pub end: i64,
    /// The tier to read.
    pub tier: Tier,
}

/// One series as read.
#[derive(Debug, Clone)]
pub struct SourceSeries {
    /// All its labels, the name as `__name__`.
    pub metric: Labels,
    /// Counter or gauge, as the agent sent it.
    pub kind: SeriesKind,
    /// Raw points or rollup records.
    pub data: SeriesData,
}

/// A consistent view of stored series.
pub trait QuerySource: Send + Sync {
    /// Reads every request from one snapshot, refusing past the limits.
    fn read(
        &self,
        requests: &[SourceRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SourceSeries>>, QueryError>;

    /// The earliest time `tier` still answers for, unix ms.
    fn floor_ms(&self, tier: Tier) -> i64;
}

/// The server's store as a query source.
pub struct StoreSource(pub Arc<dyn Store>);

impl QuerySource for StoreSource {
    fn read(
        &self,
        requests: &[SourceRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SourceSeries>>, QueryError> {
        let reads: Vec<ReadRequest> = requests
            .iter()
            .map(|r| ReadRequest {
                selectors: r.selectors.clone(),
                start: r.start,
                end: r.end,
                tier: TierChoice::Exact(r.tier),
            })
            .collect();
        let answers = self.0.read_many(&reads, budget)?;
        Ok(answers
            .into_iter()
            .map(|series| {
                series
                    .into_iter()
                    .map(|s| {
                        let mut pairs: Vec<(String, String)> =
                            s.series.labels.into_iter().collect();
                        pairs.push((NAME_LABEL.to_string(), s.series.name));
                        SourceSeries {
                            metric: Labels::new(pairs),
                            kind: s.kind,
                            data: s.data,
                        }
                    })
                    .collect()
            })
            .collect())
    }

    fn floor_ms(&self, tier: Tier) -> i64 {
        self.0.floor_ms(tier)
    }
}

/// Series held in memory, raw only: for tests and the promqltest runner.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds points to a series (created on first use); points are kept sorted by time,
    /// a later write at the same time replacing the earlier.
    pub fn add(&mut self, metric: Labels, points: &[(i64, f64)]) {
        let idx = match self.series.iter().position(|(m, _)| *m == metric) {
            Some(i) => i,
            None => {
                self.series.push((metric, Vec::new()));
                self.series.len() - 1
            }
        };
        let list = &mut self.series[idx].1;
        list.extend_from_slice(points);
        // A stable sort keeps writes of one time in order; the last one stays.
        list.sort_by_key(|p| p.0);
        list.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
    }

    /// Forgets every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matches(metric: &Labels, selectors: &[Vec<LabelMatcher>]) -> bool {
        selectors
            .iter()
            .any(|sel| sel.iter().all(|m| m.matches(metric.get(&m.label))))
    }
}

impl QuerySource for MemorySource {
    fn read(
        &self,
        requests: &[SourceRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SourceSeries>>, QueryError> {
        let mut points = 0usize;
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let matched: Vec<&(Labels, Vec<(i64, f64)>)> = self
                .series
                .iter()
                .filter(|(m, _)| Self::matches(m, &r.selectors))
                .collect();
            budget.check_series(matched.len())?;
            let mut answer = Vec::with_capacity(matched.len());
            for (metric, list) in matched {
                let inside: Vec<(i64, f64)> = list
                    .iter()
                    .copied()
                    .filter(|p| p.0 >= r.start && p.0 <= r.end)
                    .collect();
                points += inside.len();
                budget.check_points(points)?;
                answer.push(SourceSeries {
                    metric: metric.clone(),
                    kind: SeriesKind::Gauge,
                    data: SeriesData::Raw(inside),
                });
            }
            out.push(answer);
        }
        Ok(out)
    }

    fn floor_ms(&self, _tier: Tier) -> i64 {
        i64::MIN
    }
}
