//! Background maintenance: cutting heads into chunks and rollups, and purging what is past
//! retention.

use super::*;

/// Pages returned to the file system per purge run, so that one run stays short.
pub(super) const VACUUM_PAGES: u32 = 20_000;

/// One series' head at a cut: raw points for the chunk, all points for the rollups.
pub(super) struct Owned {
    id: u32,
    counter: bool,
    raw: Points,
    all: Points,
}

/// Merges sorted points into every rollup tier still within retention. Returns the change
/// in stored bytes per tier.
pub(super) fn merge_rollups(
    conn: &Connection,
    id: u32,
    counter: bool,
    points: &[(i64, f64)],
    now: i64,
    config: &StoreConfig,
    bytes: &mut [i64; 5],
) -> Result<(), StoreError> {
    let mut get = conn.prepare_cached(
        "SELECT data FROM rollups WHERE series_id = ?1 AND tier = ?2 AND win_start = ?3",
    )?;
    let mut put = conn.prepare_cached(
        "INSERT OR REPLACE INTO rollups(series_id, tier, win_start, win_end, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for tier in Tier::ROLLUPS {
        let cutoff = now.saturating_sub(config.retention.ms(tier));
        let from = points.partition_point(|p| tier.bucket_end(tier.bucket(p.0)) <= cutoff);
        let mut i = from;
        while i < points.len() {
            let (ws, we) = tier.window(points[i].0);
            let j = i + points[i..].partition_point(|p| p.0 < we);
            let old: Option<Vec<u8>> = get
                .query_row(params![id, tier_code(tier), ws], |r| r.get(0))
                .optional()?;
            let mut records = match old.as_deref().map(decode_window) {
                None => Vec::new(),
                Some(Ok(r)) => r,
                Some(Err(error)) => {
                    // Refusing would block this agent's ingest forever; the window is
                    // rebuilt from what arrives from now on.
                    warn!(series = id, tier = tier.name(), %error, "Damaged rollup window replaced.");
                    Vec::new()
                }
            };
            merge_into(&mut records, tier, &points[i..j], counter);
            let data = encode_window(&records);
            bytes[tier as usize] += data.len() as i64 - old.map_or(0, |o| o.len() as i64);
            put.execute(params![id, tier_code(tier), ws, we, data])?;
            i = j;
        }
    }
    Ok(())
}

pub(super) fn add_bytes(conn: &Connection, bytes: &[i64; 5]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
    )?;
    for tier in Tier::ALL {
        let b = bytes[tier as usize];
        if b != 0 {
            stmt.execute(params![format!("bytes_{}", tier.name()), b])?;
        }
    }
    Ok(())
}

impl TieredStore {
    /// Starts the background task that cuts heads and purges; it ends when the store is
    /// dropped.
    pub fn start_maintenance(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        // A head is due once `chunk_span` old, and a purge every `purge_interval`; checking
        // only every `maintenance_interval` would leave a short span or interval (tests,
        // small servers) waiting far past it.
        let interval = self
            .config
            .maintenance_interval
            .min(self.config.chunk_span / 4)
            .min(self.config.purge_interval)
            .max(Duration::from_millis(100));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(store) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = store.maintain() {
                    warn!(%error, "Store maintenance failed.");
                }
            }
        })
    }

    /// One round of background work: cut due heads; purge when due.
    pub fn maintain(&self) -> Result<(), StoreError> {
        // Heads are cut by the clock: a quiet agent's head must not wait for new data.
        let now = self.clock.now_ms();
        for agent in self.due_agents(now) {
            self.cut_agent(agent)?;
        }
        let purge_every = i64::try_from(self.config.purge_interval.as_millis()).unwrap_or(0);
        let last = self.counters.last_purge_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= purge_every {
            self.counters.last_purge_ms.store(now, Ordering::Relaxed);
            self.purge()?;
        }
        Ok(())
    }

    pub(super) fn due_agents(&self, now: i64) -> Vec<i64> {
        let span = i64::try_from(self.config.chunk_span.as_millis()).unwrap_or(i64::MAX);
        let mem = self.mem_read();
        mem.agent_heads
            .iter()
            .filter(|(_, h)| {
                now.saturating_sub(h.since_ms) >= span || h.max_len >= self.config.chunk_max_points
            })
            .map(|(&a, _)| a)
            .collect()
    }

    /// Cuts every head now (tests, benchmarks, shutdown).
    pub fn cut_all(&self) -> Result<(), StoreError> {
        let agents: Vec<i64> = self.mem_read().agent_heads.keys().copied().collect();
        for agent in agents {
            self.cut_agent(agent)?;
        }
        Ok(())
    }

    /// Moves one agent's head into chunks and rollups (see the module doc).
    pub(super) fn cut_agent(&self, agent: i64) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.lock_writer();
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        // The writer lock keeps ingest out, so the snapshot stays the whole head.
        let snapshot: Vec<Owned> = {
            let mem = self.mem_read();
            let Some(ah) = mem.agent_heads.get(&agent) else {
                return Ok(());
            };
            ah.series
                .iter()
                .filter_map(|&id| {
                    let head = mem.head(id)?;
                    if head.points.is_empty() && head.late.is_empty() {
                        return None;
                    }
                    let counter = mem
                        .index
                        .entry(id)
                        .is_some_and(|e| e.kind == SeriesKind::Counter);
                    let mut raw = head.points.clone();
                    sort_dedup(&mut raw);
                    // Late first: on an equal timestamp the raw write is the one kept.
                    let mut all = head.late.clone();
                    all.extend_from_slice(&head.points);
                    sort_dedup(&mut all);
                    Some(Owned {
                        id,
                        counter,
                        raw,
                        all,
                    })
                })
                .collect()
        };
        let mut groups: HashMap<Vec<i64>, Vec<usize>> = HashMap::new();
        for (i, o) in snapshot.iter().enumerate() {
            if o.raw.is_empty() {
                continue;
            }
            groups
                .entry(o.raw.iter().map(|p| p.0).collect())
                .or_default()
                .push(i);
        }
        let mut bytes = [0i64; 5];
        let tx = conn.transaction()?;
        {
            let mut ts_stmt = tx.prepare_cached(
                "INSERT INTO ts_chunks(agent, min_ts, max_ts, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut chunk_stmt = tx.prepare_cached(
                "INSERT INTO raw_chunks(series_id, min_ts, ts_chunk, max_ts, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (ts, members) in &groups {
                let (Some(&min), Some(&max)) = (ts.first(), ts.last()) else {
                    continue;
                };
                let data = codec::encode_ints(ts);
                bytes[Tier::Raw as usize] += data.len() as i64;
                ts_stmt.execute(params![agent, min, max, data])?;
                let ts_id = tx.last_insert_rowid();
                for &i in members {
                    let o = &snapshot[i];
                    let values: Vec<f64> = o.raw.iter().map(|p| p.1).collect();
                    let data = codec::encode_values(&values);
                    bytes[Tier::Raw as usize] += data.len() as i64;
                    chunk_stmt.execute(params![o.id, min, ts_id, max, data])?;
                }
            }
            for o in &snapshot {
                merge_rollups(&tx, o.id, o.counter, &o.all, now, &self.config, &mut bytes)?;
            }
            tx.execute("DELETE FROM head_log WHERE agent = ?1", params![agent])?;
            add_bytes(&tx, &bytes)?;
        }
        tx.commit()?;
        {
            let mut mem = self.mem_write();
            if let Some(ah) = mem.agent_heads.remove(&agent) {
                let mut freed = 0u64;
                for id in ah.series {
                    if let Some(h) = mem.heads.get_mut(id as usize) {
                        freed += (h.points.len() + h.late.len()) as u64;
                        h.points = Vec::new();
                        h.late = Vec::new();
                        h.listed = false;
                    }
                }
                mem.head_points = mem.head_points.saturating_sub(freed);
            }
        }
        for (t, b) in bytes.iter().enumerate() {
            self.counters.bytes[t].fetch_add(*b, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.cuts.fetch_add(1, Ordering::Relaxed);
        self.counters
            .cut_micros
            .fetch_add(micros, Ordering::Relaxed);
        debug!(
            agent,
            series = snapshot.len(),
            groups = groups.len(),
            micros,
            "Head cut."
        );
        Ok(())
    }

    /// Deletes old check results and forgotten batch identities in the purge's
    /// transaction, and counts what stays; returns how many rows of each went.
    fn purge_events_and_dedup(
        &self,
        tx: &Connection,
        now: i64,
    ) -> Result<(usize, usize), StoreError> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let events_cutoff = now.saturating_sub(ms(self.config.events_retention));
        let events = tx
            .prepare_cached("DELETE FROM events WHERE ts < ?1")?
            .execute(params![events_cutoff])?;
        // Server time, as `received_at` is: an agent's clock cannot shorten it.
        let dedup_cutoff = self
            .clock
            .now_ms()
            .saturating_sub(ms(self.config.dedup_window));
        let ranges = dedup::purge(tx, dedup_cutoff)?;
        let kept: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let c = &self.counters;
        c.events
            .store(u64::try_from(kept).unwrap_or(0), Ordering::Relaxed);
        c.dedup_ranges.store(dedup::count(tx)?, Ordering::Relaxed);
        Ok((events, ranges))
    }

    /// Deletes what is past retention and returns free pages to the file system.
    pub fn purge(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let now = self.data_now(self.counters.newest_ms.load(Ordering::Relaxed));
        let mut freed = [0i64; 5];
        let (events_purged, ranges_purged): (usize, usize);
        {
            let mut conn = self.lock_writer();
            let tx = conn.transaction()?;
            let raw_cutoff = now.saturating_sub(self.config.retention.ms(Tier::Raw));
            for sql in [
                "DELETE FROM raw_chunks WHERE max_ts < ?1 RETURNING length(data)",
                "DELETE FROM ts_chunks WHERE max_ts < ?1 RETURNING length(data)",
            ] {
                let mut stmt = tx.prepare(sql)?;
                let lens = stmt.query_map(params![raw_cutoff], |r| r.get::<_, i64>(0))?;
                for len in lens {
                    freed[Tier::Raw as usize] += len?;
                }
            }
            for tier in Tier::ROLLUPS {
                let cutoff = now.saturating_sub(self.config.retention.ms(tier));
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM rollups WHERE tier = ?1 AND win_end <= ?2 RETURNING length(data)",
                )?;
                let lens =
                    stmt.query_map(params![tier_code(tier), cutoff], |r| r.get::<_, i64>(0))?;
                for len in lens {
                    freed[tier as usize] += len?;
                }
            }
            let delta = freed.map(|b| -b);
            add_bytes(&tx, &delta)?;
            (events_purged, ranges_purged) = self.purge_events_and_dedup(&tx, now)?;
            tx.commit()?;
            // Outside the transaction: it moves pages, a bounded number per run. SQLite
            // frees one page per step of this pragma, so it is stepped to completion:
            // `query_row` and `execute_batch` step once, and so free one page.
            let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
        }
        for (t, b) in freed.iter().enumerate() {
            self.counters.bytes[t].fetch_sub(*b, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.purges.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_purge_micros
            .store(micros, Ordering::Relaxed);
        info!(
            raw_bytes = freed[0],
            rollup_bytes = freed[1] + freed[2] + freed[3] + freed[4],
            events = events_purged,
            dedup_ranges = ranges_purged,
            micros,
            "Store purged."
        );
        Ok(())
    }
}
