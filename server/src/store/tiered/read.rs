//! Reads: choosing a tier, raw points from chunks and the head, rollup records.

use super::*;

/// A matched series with a copy of its head, taken under the lock.
pub(super) struct Selected {
    id: u32,
    labels: SeriesLabels,
    kind: SeriesKind,
    head: Points,
    late: Points,
}

impl TieredStore {
    /// The tier a read uses.
    pub(super) fn choose_tier(&self, choice: TierChoice, start: i64, now: i64) -> Tier {
        match choice {
            TierChoice::Exact(t) => t,
            TierChoice::Auto { step } => {
                let covering: Vec<Tier> = Tier::ALL
                    .into_iter()
                    .filter(|&t| start >= now.saturating_sub(self.config.retention.ms(t)))
                    .collect();
                let Some(&finest) = covering.first() else {
                    return Tier::Mo1;
                };
                match step {
                    None => finest,
                    Some(step) => covering
                        .iter()
                        .rev()
                        .copied()
                        .find(|t| t.resolution_ms() <= step)
                        .unwrap_or(finest),
                }
            }
        }
    }

    /// Raw points of one series from chunks, merged with a head copy.
    pub(super) fn raw_points(
        conn: &Connection,
        ts_cache: &mut HashMap<i64, Arc<Vec<i64>>>,
        id: u32,
        head: Vec<(i64, f64)>,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let mut chunks = conn.prepare_cached(
            "SELECT ts_chunk, data FROM raw_chunks
             WHERE series_id = ?1 AND min_ts <= ?3 AND max_ts >= ?2 ORDER BY ts_chunk",
        )?;
        let mut ts_stmt = conn.prepare_cached("SELECT data FROM ts_chunks WHERE id = ?1")?;
        let mut points = Vec::new();
        let rows = chunks.query_map(params![id, start, end], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (ts_id, data) = row?;
            let ts = match ts_cache.get(&ts_id) {
                Some(ts) => ts.clone(),
                None => {
                    let blob: Vec<u8> = ts_stmt.query_row(params![ts_id], |r| r.get(0))?;
                    let ts = Arc::new(codec::decode_ints(&blob)?);
                    ts_cache.insert(ts_id, ts.clone());
                    ts
                }
            };
            let values = codec::decode_values(&data)?;
            if values.len() != ts.len() {
                return Err(StoreError::Corrupt(format!(
                    "chunk of series {id} has {} values for {} timestamps",
                    values.len(),
                    ts.len()
                )));
            }
            points.extend(
                ts.iter()
                    .copied()
                    .zip(values)
                    .filter(|p| p.0 >= start && p.0 <= end),
            );
        }
        // Chunks in cut order, then the head: a stable sort keeps the newest write last.
        points.extend(head.into_iter().filter(|p| p.0 >= start && p.0 <= end));
        sort_dedup(&mut points);
        Ok(points)
    }

    pub(super) fn rollup_records(
        conn: &Connection,
        id: u32,
        tier: Tier,
        counter: bool,
        head: &mut Points,
        start: i64,
        end: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        let first_bucket = tier.bucket(start);
        let mut stmt = conn.prepare_cached(
            "SELECT data FROM rollups WHERE series_id = ?1 AND tier = ?2
             AND win_end > ?3 AND win_start <= ?4 ORDER BY win_start",
        )?;
        let mut records = Vec::new();
        let rows = stmt.query_map(params![id, tier_code(tier), first_bucket, end], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        for row in rows {
            records.extend(decode_window(&row?)?);
        }
        // The head is not merged yet: merge a copy so recent buckets are complete.
        head.retain(|p| p.0 >= first_bucket && p.0 <= end);
        sort_dedup(head);
        merge_into(&mut records, tier, head, counter);
        records.retain(|r| r.start >= first_bucket && r.start <= end);
        Ok(records)
    }

    pub(super) fn copy_selection(&self, selectors: &[Vec<LabelMatcher>]) -> Vec<Selected> {
        let mem = self.mem_read();
        mem.index
            .select_any(selectors)
            .into_iter()
            .filter_map(|id| {
                let labels = mem.index.labels(id)?;
                let kind = mem.index.entry(id)?.kind;
                let (head, late) = mem
                    .head(id)
                    .map(|h| (h.points.clone(), h.late.clone()))
                    .unwrap_or_default();
                Some(Selected {
                    id,
                    labels,
                    kind,
                    head,
                    late,
                })
            })
            .collect()
    }

    /// [`Store::read_many`]: every request's heads copied first, then every series' chunks
    /// from one SQLite snapshot (see the parent module's doc on locks), so that a point cut
    /// from the head meanwhile is seen in the chunks.
    pub(super) fn read_snapshot(
        &self,
        requests: &[ReadRequest],
        budget: &ReadBudget,
    ) -> Result<Vec<Vec<SeriesRead>>, StoreError> {
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let mut selections = Vec::with_capacity(requests.len());
        for request in requests {
            let selection = if request.end < request.start {
                Vec::new()
            } else {
                self.copy_selection(&request.selectors)
            };
            budget.check_series(selection.len())?;
            selections.push(selection);
        }
        let conn = self.reader()?;
        // One snapshot for every series of the answer.
        let tx = conn.unchecked_transaction()?;
        let mut ts_cache = HashMap::new();
        let mut points = 0usize;
        let mut out = Vec::with_capacity(requests.len());
        for (request, selection) in requests.iter().zip(selections) {
            let tier = self.choose_tier(request.tier, request.start, now);
            // What is past retention is invisible even before the purge deletes it.
            let floor = now.saturating_sub(self.config.retention.ms(tier));
            let start = match tier {
                Tier::Raw => request.start.max(floor),
                _ => request.start.max(tier.bucket_end(tier.bucket(floor))),
            };
            let mut answer = Vec::with_capacity(selection.len());
            for selected in selection {
                let read = Self::read_one(&tx, &mut ts_cache, selected, tier, start, request.end)?;
                points += match &read.data {
                    SeriesData::Raw(p) => p.len(),
                    SeriesData::Rollup(r) => r.len(),
                };
                budget.check_points(points)?;
                answer.push(read);
            }
            out.push(answer);
        }
        tx.finish()?;
        Ok(out)
    }

    fn read_one(
        tx: &Connection,
        ts_cache: &mut HashMap<i64, Arc<Vec<i64>>>,
        selected: Selected,
        tier: Tier,
        start: i64,
        end: i64,
    ) -> Result<SeriesRead, StoreError> {
        let Selected {
            id,
            labels: series,
            kind,
            head,
            late,
        } = selected;
        let data = if start > end {
            match tier {
                Tier::Raw => SeriesData::Raw(Vec::new()),
                _ => SeriesData::Rollup(Vec::new()),
            }
        } else if tier == Tier::Raw {
            SeriesData::Raw(Self::raw_points(tx, ts_cache, id, head, start, end)?)
        } else {
            let counter = kind == SeriesKind::Counter;
            let mut all = late;
            all.extend(head);
            SeriesData::Rollup(Self::rollup_records(
                tx, id, tier, counter, &mut all, start, end,
            )?)
        };
        Ok(SeriesRead {
            series,
            kind,
            tier,
            data,
        })
    }
}
