//! Ingest with group commit (see the parent module's doc).

use super::*;

/// A series an ingest created, to enter the index once committed.
pub(super) struct Created {
    id: u32,
    name: String,
    labels: Vec<(String, String)>,
    kind: SeriesKind,
}

/// `agent_id` replacing any of the same name; sorted. Written into `out` (cleared first),
/// which the caller reuses from series to series.
pub(super) fn canonical_labels<'a>(
    labels: &'a BTreeMap<String, String>,
    instance: &'a str,
    agent_id: &'a str,
    out: &mut Vec<(&'a str, &'a str)>,
) {
    out.clear();
    out.extend(
        labels
            .iter()
            .filter(|(k, _)| k.as_str() != "instance" && k.as_str() != "agent_id")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    out.push(("instance", instance));
    out.push(("agent_id", agent_id));
    out.sort_unstable();
}

/// Most batches one commit takes: a bound on the latency a batch can add to the others
/// of its group.
pub(super) const MAX_GROUP_BATCHES: usize = 256;
/// Most points one commit takes, for the same reason.
pub(super) const MAX_GROUP_POINTS: usize = 500_000;

/// Labels as owned pairs, sorted by name.
pub(super) type OwnedLabels = Vec<(String, String)>;

/// Per batch of a group: `Ok(None)` for a duplicate, `Ok(Some)` for what it stored, `Err`
/// for a batch that failed alone.
pub(super) type GroupResults = Vec<Result<Option<Written>, StoreError>>;

/// Where a batch's answer is left by the thread that committed it.
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<Result<IngestOutcome, StoreError>>>);

impl Slot {
    fn take(&self) -> Option<Result<IngestOutcome, StoreError>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, result: Result<IngestOutcome, StoreError>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }
}

/// One series of an agent's previous batch, at its position in that batch.
///
/// An agent sends the same series in the same order batch after batch, so the series at
/// position `i` is nearly always the one that was there last time: comparing two hashes
/// of its identity with the cached ones replaces an index lookup (a handful of cache
/// misses among a million series, the ingest path's largest cost). Both 64-bit hashes
/// (FNV-1a and SipHash) must match, so a wrong hit needs a 128-bit collision between two
/// series of the same agent; an entry is only made from a full comparison in the index,
/// and series are never deleted, so an id once cached stays right.
pub(super) struct LayoutEntry {
    key: (u64, u64),
    /// `None` for a series the batch created: not known until its commit.
    id: Option<u32>,
}

/// A batch waiting for a group commit.
pub(super) struct Queued {
    batch: Prepared,
    slot: Arc<Slot>,
}

/// A batch made ready outside the writer lock: labels made canonical, known series found.
pub(super) struct Prepared {
    agent_id: String,
    /// The agent's host name, kept with its events.
    instance: String,
    boot_id: String,
    seq: i64,
    /// Server time when it arrived.
    received: i64,
    /// Its newest sample.
    newest: i64,
    points: usize,
    series: Vec<PreparedSeries>,
    events: Vec<sysward_proto::Event>,
}

pub(super) struct PreparedSeries {
    /// The id when the index knew the series at preparation.
    known: Option<u32>,
    /// Identity hash, name, labels and kind, kept for a series to be created (and looked
    /// up again at the commit: another batch may have created it meanwhile).
    hash: u64,
    new: Option<Created>,
    points: Points,
}

/// What one batch of a group wrote, to reach memory once the group is committed.
pub(super) struct Written {
    agent_id: String,
    agent: i64,
    created: Vec<(u64, Created)>,
    appends: Vec<(u32, bool, Points)>,
    received: i64,
    newest: i64,
    refused: u64,
}

/// What the batches of a group wrote so far, which later batches of the same group must
/// see although memory does not show it yet.
#[derive(Default)]
pub(super) struct GroupView {
    agents: HashMap<String, i64>,
    /// Series created in this group: hash → (id, name, labels).
    created: HashMap<u64, Vec<(u32, String, OwnedLabels)>>,
    created_per_agent: HashMap<i64, usize>,
    max_ts: HashMap<u32, i64>,
    newest: i64,
}

impl GroupView {
    fn find(&self, hash: u64, name: &str, labels: &[(String, String)]) -> Option<u32> {
        self.created
            .get(&hash)?
            .iter()
            .find(|c| c.1 == name && c.2 == labels)
            .map(|c| c.0)
    }

    fn absorb(&mut self, w: &Written) {
        self.agents.insert(w.agent_id.clone(), w.agent);
        for (hash, c) in &w.created {
            self.created
                .entry(*hash)
                .or_default()
                .push((c.id, c.name.clone(), c.labels.clone()));
        }
        *self.created_per_agent.entry(w.agent).or_default() += w.created.len();
        for (id, _, points) in &w.appends {
            if let Some(max) = points.iter().map(|p| p.0).max() {
                let e = self.max_ts.entry(*id).or_insert(i64::MIN);
                *e = (*e).max(max);
            }
        }
        self.newest = self.newest.max(w.newest);
    }
}

impl TieredStore {
    pub(super) fn lock_layouts(&self) -> MutexGuard<'_, HashMap<String, Vec<LayoutEntry>>> {
        // A map of caches: a poisoned one is still consistent enough to use.
        self.layouts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_queue(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        // Only pushes and pops happen under this lock: a poisoned one is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CPU work of an ingest that needs no write lock, so that concurrent ingests do
    /// it in parallel while one of them commits.
    pub(super) fn prepare(&self, batch: &IngestBatch<'_>) -> Prepared {
        let received = self.clock.now_ms();
        // Taken out of the map, so that a concurrent batch of the same agent simply finds
        // none and looks its series up in the index.
        let layout = self
            .lock_layouts()
            .remove(batch.agent_id)
            .unwrap_or_default();
        let mut next_layout = Vec::with_capacity(batch.series.len());
        let mem = self.mem_read();
        let mut newest = i64::MIN;
        let mut points = 0;
        let mut labels = Vec::new();
        let series = batch
            .series
            .iter()
            .filter(|s| !s.points.is_empty())
            .enumerate()
            .map(|(position, s)| {
                canonical_labels(&s.labels, batch.instance, batch.agent_id, &mut labels);
                let hash = identity_hash(&s.name, &labels);
                let key = (hash, check_hash(&s.name, &labels));
                let cached = layout
                    .get(position)
                    .filter(|e: &&LayoutEntry| e.key == key)
                    .and_then(|e| e.id);
                let known = cached.or_else(|| mem.index.find(hash, &s.name, &labels));
                next_layout.push(LayoutEntry { key, id: known });
                let new = known.is_none().then(|| Created {
                    id: 0,
                    name: s.name.clone(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                    kind: s.kind,
                });
                for p in &s.points {
                    newest = newest.max(p.0);
                }
                points += s.points.len();
                PreparedSeries {
                    known,
                    hash,
                    new,
                    points: s.points.clone(),
                }
            })
            .collect();
        drop(mem);
        self.lock_layouts()
            .insert(batch.agent_id.to_string(), next_layout);
        Prepared {
            agent_id: batch.agent_id.to_string(),
            instance: batch.instance.to_string(),
            boot_id: batch.boot_id.to_string(),
            seq: i64::try_from(batch.seq).unwrap_or(i64::MAX),
            received,
            newest,
            points,
            series,
            events: batch.events.to_vec(),
        }
    }

    /// The next group, oldest first, within the bounds.
    pub(super) fn take_group(&self) -> Vec<Queued> {
        let mut queue = self.lock_queue();
        let mut group = Vec::new();
        let mut points = 0;
        while let Some(next) = queue.front() {
            if !group.is_empty()
                && (group.len() >= MAX_GROUP_BATCHES
                    || points + next.batch.points > MAX_GROUP_POINTS)
            {
                break;
            }
            points += next.batch.points;
            if let Some(q) = queue.pop_front() {
                group.push(q);
            }
        }
        group
    }

    /// Writes a group in one transaction (each batch in a savepoint of its own, so that a
    /// batch that fails fails alone), commits once, then updates memory and answers every
    /// batch. Called with the writer lock held.
    pub(super) fn commit_group(&self, conn: &mut Connection, group: Vec<Queued>) {
        let (batches, slots): (Vec<Prepared>, Vec<Arc<Slot>>) =
            group.into_iter().map(|q| (q.batch, q.slot)).unzip();
        let started = std::time::Instant::now();
        let written = self.write_group(conn, batches);
        self.counters.commit_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let results: GroupResults = match written {
            Ok(w) => w,
            Err(error) => {
                self.counters
                    .commit_failures
                    .fetch_add(1, Ordering::Relaxed);
                let message = error.to_string();
                sysward_log_limit::warn_limited!(error, "Group commit failed.");
                for slot in &slots {
                    slot.set(Err(StoreError::Commit(message.clone())));
                }
                return;
            }
        };
        // Memory follows only what is committed.
        {
            let mut mem = self.mem_write();
            for w in results.iter().flatten().flatten() {
                mem.agents.entry(w.agent_id.clone()).or_insert(w.agent);
                for (_, c) in &w.created {
                    let pairs: Vec<(&str, &str)> = c
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    mem.index.insert(c.id, &c.name, &pairs, c.kind, w.agent);
                }
                for (id, late, points) in &w.appends {
                    mem.append(w.agent, *id, points, *late, w.received);
                }
            }
        }
        self.forward_committed();
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_commit_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        self.counters
            .commit_batches
            .fetch_add(slots.len() as u64, Ordering::Relaxed);
        for (slot, result) in slots.iter().zip(results) {
            let answer = result.map(|w| match w {
                None => IngestOutcome::Duplicate,
                Some(w) => {
                    self.count_stored(&w);
                    IngestOutcome::Stored
                }
            });
            slot.set(answer);
        }
    }

    pub(super) fn count_stored(&self, w: &Written) {
        let count = |late: bool| -> u64 {
            w.appends
                .iter()
                .filter(|a| a.1 == late)
                .map(|a| a.2.len() as u64)
                .sum()
        };
        self.counters
            .newest_ms
            .fetch_max(w.newest, Ordering::Relaxed);
        self.counters
            .samples
            .fetch_add(count(false), Ordering::Relaxed);
        self.counters.late.fetch_add(count(true), Ordering::Relaxed);
        if w.refused > 0 {
            self.counters
                .refused
                .fetch_add(w.refused, Ordering::Relaxed);
            // Once a minute per agent: an agent at its limit refuses series in every batch.
            sysward_log_limit::warn_limited!(
                format!(
                    "agent {} has {} series",
                    w.agent_id, self.config.max_series_per_agent
                ),
                "New series refused: the agent is at its series limit ([storage] max_series_per_agent)."
            );
        }
    }

    /// The transaction of a group: per batch `Ok(None)` for a duplicate, `Ok(Some)` for
    /// what it stored, `Err` for a batch that failed alone; `Err` overall when the commit
    /// itself failed.
    pub(super) fn write_group(
        &self,
        conn: &mut Connection,
        group: Vec<Prepared>,
    ) -> Result<GroupResults, StoreError> {
        let mut tx = conn.transaction()?;
        let mut view = GroupView {
            newest: i64::MIN,
            ..GroupView::default()
        };
        let mut out = Vec::with_capacity(group.len());
        for batch in group {
            let sp = tx.savepoint()?;
            match self.write_batch(&sp, batch, &view) {
                Ok(written) => {
                    sp.commit()?;
                    if let Some(w) = &written {
                        view.absorb(w);
                    }
                    out.push(Ok(written));
                }
                // Dropping the savepoint rolls back this batch's writes only.
                Err(error) => out.push(Err(error)),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// One batch's rows: its identity (a conflict means a duplicate: nothing else is
    /// written; none for a server-written batch), new series, the head-log row and events.
    pub(super) fn write_batch(
        &self,
        tx: &Connection,
        batch: Prepared,
        view: &GroupView,
    ) -> Result<Option<Written>, StoreError> {
        // A server-written batch (rule output) has no identity to remember.
        if !batch.boot_id.is_empty() {
            let seen = dedup::record(
                tx,
                &batch.agent_id,
                &batch.boot_id,
                batch.seq,
                batch.received,
            )?;
            if seen == dedup::Seen::Again {
                return Ok(None);
            }
        }
        let mem = self.mem_read();
        let known_agent = mem
            .agents
            .get(&batch.agent_id)
            .or_else(|| view.agents.get(&batch.agent_id))
            .copied();
        let agent = match known_agent {
            Some(a) => a,
            None => {
                tx.execute(
                    "INSERT OR IGNORE INTO agents(agent_id) VALUES (?1)",
                    params![batch.agent_id],
                )?;
                tx.query_row(
                    "SELECT id FROM agents WHERE agent_id = ?1",
                    params![batch.agent_id],
                    |r| r.get::<_, i64>(0),
                )?
            }
        };
        let newest = self
            .counters
            .newest_ms
            .load(Ordering::Relaxed)
            .max(view.newest)
            .max(batch.newest);
        let now = self.data_now(newest);
        let ooo = i64::try_from(self.config.out_of_order_window.as_millis()).unwrap_or(i64::MAX);
        let raw_floor = now.saturating_sub(self.config.retention.ms(Tier::Raw));
        let mut agent_series = mem.index.agent_series(agent)
            + view.created_per_agent.get(&agent).copied().unwrap_or(0);
        let mut log = Vec::new();
        let mut appends: Vec<(u32, bool, Points)> = Vec::new();
        let mut created: Vec<(u64, Created)> = Vec::new();
        let mut refused = 0u64;
        let mut create = tx.prepare_cached(
            "INSERT INTO series(agent, name, labels, kind) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for s in batch.series {
            let id = match (&s.known, &s.new) {
                (Some(id), _) => *id,
                (None, None) => continue,
                (None, Some(new)) => {
                    let pairs: Vec<(&str, &str)> = new
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let found = mem
                        .index
                        .find(s.hash, &new.name, &pairs)
                        .or_else(|| view.find(s.hash, &new.name, &new.labels))
                        .or_else(|| {
                            created
                                .iter()
                                .find(|(h, c)| {
                                    *h == s.hash && c.name == new.name && c.labels == new.labels
                                })
                                .map(|(_, c)| c.id)
                        });
                    match found {
                        Some(id) => id,
                        None => {
                            if agent_series >= self.config.max_series_per_agent {
                                refused += 1;
                                continue;
                            }
                            let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
                            let json = serde_json::to_string(&map)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                            create.execute(params![agent, new.name, json, kind_code(new.kind)])?;
                            let id = u32::try_from(tx.last_insert_rowid()).map_err(|_| {
                                StoreError::Corrupt("series ids are exhausted".into())
                            })?;
                            agent_series += 1;
                            created.push((
                                s.hash,
                                Created {
                                    id,
                                    name: new.name.clone(),
                                    labels: new.labels.clone(),
                                    kind: new.kind,
                                },
                            ));
                            id
                        }
                    }
                }
            };
            let series_newest = s.points.iter().map(|p| p.0).max().unwrap_or(i64::MIN);
            let series_max = mem
                .head(id)
                .map_or(i64::MIN, |h| h.max_ts)
                .max(view.max_ts.get(&id).copied().unwrap_or(i64::MIN))
                .max(series_newest);
            let floor = series_max.saturating_sub(ooo).max(raw_floor);
            // Nearly always every point is recent: no split, no copy.
            if s.points.iter().all(|p| p.0 >= floor) {
                put_points(&mut log, id, false, &s.points);
                appends.push((id, false, s.points));
                continue;
            }
            let (raw, old): (Points, Points) = s.points.iter().partition(|p| p.0 >= floor);
            for (late, points) in [(false, raw), (true, old)] {
                if !points.is_empty() {
                    put_points(&mut log, id, late, &points);
                    appends.push((id, late, points));
                }
            }
        }
        drop(mem);
        if !log.is_empty() {
            tx.prepare_cached("INSERT INTO head_log(agent, at, data) VALUES (?1, ?2, ?3)")?
                .execute(params![agent, batch.received, log])?;
            let samples = appends.iter().map(|a| a.2.len()).sum();
            self.forward_append(tx, batch.received, samples, &log)?;
        }
        let mut event = tx.prepare_cached(
            "INSERT INTO events(agent_id, instance, name, state, output, long_output, hard, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for e in &batch.events {
            event.execute(params![
                batch.agent_id,
                batch.instance,
                e.name,
                e.state,
                e.output,
                e.long_output,
                e.hard,
                e.ts
            ])?;
        }
        Ok(Some(Written {
            agent_id: batch.agent_id,
            agent,
            created,
            appends,
            received: batch.received,
            newest: batch.newest,
            refused,
        }))
    }

    /// [`Store::ingest`]: durable once this returns `Ok`.
    pub(super) fn ingest_grouped(
        &self,
        batch: &IngestBatch<'_>,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_together(std::slice::from_ref(batch))?
            .pop()
            .ok_or_else(|| StoreError::Commit("no outcome for the batch".into()))
    }

    /// [`Store::ingest_many`]: queues every batch at once, so that they go into as few
    /// group commits as the group limits allow (one, for a few small batches).
    pub(super) fn ingest_together(
        &self,
        batches: &[IngestBatch<'_>],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        // Group commit (see the module doc): queue the prepared batches, then either find
        // them committed by another thread's group once the writer is ours, or commit the
        // queue.
        let slots: Vec<Arc<Slot>> = batches.iter().map(|_| Arc::new(Slot::default())).collect();
        let prepared: Vec<Prepared> = batches.iter().map(|b| self.prepare(b)).collect();
        {
            let mut queue = self.lock_queue();
            for (batch, slot) in prepared.into_iter().zip(&slots) {
                queue.push_back(Queued {
                    batch,
                    slot: slot.clone(),
                });
            }
        }
        let mut outcomes = Vec::with_capacity(slots.len());
        for slot in &slots {
            outcomes.push(self.wait_for(slot)?);
        }
        Ok(outcomes)
    }

    fn wait_for(&self, slot: &Slot) -> Result<IngestOutcome, StoreError> {
        loop {
            let mut conn = self.lock_writer();
            if let Some(result) = slot.take() {
                return result;
            }
            let group = self.take_group();
            if group.is_empty() {
                // Only a leader that panicked between taking the queue and answering could
                // leave a batch neither queued nor answered; say so rather than wait.
                return Err(StoreError::Commit(
                    "the batch was lost by a failed group commit".into(),
                ));
            }
            self.commit_group(&mut conn, group);
        }
    }
}
