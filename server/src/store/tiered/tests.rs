use std::time::Duration;

use sysward_proto::Series;

use super::*;
use crate::store::{
    EventQuery, MAX_EVENTS, ManualClock, MatchOp, StoredEvent, rollup::tests::brute_force,
};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// The raw points of every series named `name`, with their labels.
fn raw_of(store: &TieredStore, name: &str, start: i64, end: i64) -> Vec<(SeriesLabels, Points)> {
    let request = ReadRequest {
        selectors: vec![vec![LabelMatcher::eq(NAME_LABEL, name)]],
        start,
        end,
        tier: TierChoice::Exact(Tier::Raw),
    };
    store
        .read(&request)
        .unwrap()
        .into_iter()
        .map(|r| match r.data {
            SeriesData::Raw(points) => (r.series, points),
            SeriesData::Rollup(_) => panic!("a raw read returned rollups"),
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    config: StoreConfig,
    store: TieredStore,
    seq: u64,
}

impl Fixture {
    fn new(config: StoreConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let store =
            TieredStore::open(&dir.path().join("s.db"), config.clone(), clock.clone()).unwrap();
        Self {
            dir,
            clock,
            config,
            store,
            seq: 0,
        }
    }

    fn reopen(&mut self) {
        let path = self.dir.path().join("s.db");
        let fresh = TieredStore::open(&path, self.config.clone(), self.clock.clone()).unwrap();
        self.store = fresh;
    }

    fn ingest(&mut self, agent: &str, series: &[Series]) -> IngestOutcome {
        self.seq += 1;
        self.store
            .ingest(&IngestBatch {
                agent_id: agent,
                boot_id: "boot",
                seq: self.seq,
                instance: "host",
                series,
                events: &[],
            })
            .unwrap()
    }

    fn raw(&self, name: &str) -> Vec<(i64, f64)> {
        let mut got = raw_of(&self.store, name, i64::MIN, i64::MAX);
        assert!(got.len() <= 1);
        got.pop().map(|s| s.1).unwrap_or_default()
    }

    fn rollups(&self, name: &str, tier: Tier) -> Vec<Rollup> {
        let got = self
            .store
            .read(&ReadRequest {
                selectors: vec![vec![LabelMatcher::eq(NAME_LABEL, name)]],
                start: i64::MIN,
                end: i64::MAX,
                tier: TierChoice::Exact(tier),
            })
            .unwrap();
        match got.into_iter().next().map(|r| r.data) {
            Some(SeriesData::Rollup(r)) => r,
            None => Vec::new(),
            Some(other) => panic!("{other:?}"),
        }
    }

    fn count(&self, table: &str) -> i64 {
        self.store
            .lock_writer()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

use crate::store::NAME_LABEL;

fn series(name: &str, kind: SeriesKind, points: &[(i64, f64)]) -> Series {
    Series {
        name: name.into(),
        labels: BTreeMap::from([("cpu".into(), "0".into())]),
        kind,
        points: points.to_vec(),
    }
}

#[test]
fn stores_once_and_reads_back() {
    let mut f = Fixture::new(StoreConfig::default());
    let s = [series("m", SeriesKind::Gauge, &[(1000, 1.0), (2000, 2.0)])];
    assert_eq!(f.ingest("ag", &s), IngestOutcome::Stored);
    // A repeat with other values must change nothing.
    let again = [series("m", SeriesKind::Gauge, &[(1000, 50.0)])];
    let dup = f
        .store
        .ingest(&IngestBatch {
            agent_id: "ag",
            boot_id: "boot",
            seq: 1,
            instance: "host",
            series: &again,
            events: &[],
        })
        .unwrap();
    assert_eq!(dup, IngestOutcome::Duplicate);
    assert_eq!(f.raw("m"), vec![(1000, 1.0), (2000, 2.0)]);
    let got = f.store.select(&[vec![LabelMatcher::eq(NAME_LABEL, "m")]]);
    let labels = &got.unwrap()[0].labels;
    assert_eq!(
        (labels["instance"].as_str(), labels["agent_id"].as_str()),
        ("host", "ag")
    );
    let none = vec![
        LabelMatcher::eq(NAME_LABEL, "m"),
        LabelMatcher::eq("cpu", "1"),
    ];
    assert!(f.store.select(&[none]).unwrap().is_empty());
    assert_eq!(f.store.batch_stats("ag").unwrap()[0].count, 1);
    assert!(f.store.healthy());
}

#[test]
fn head_survives_restart_and_cut_data_too() {
    let mut f = Fixture::new(StoreConfig::default());
    let pts: Vec<(i64, f64)> = (0..50).map(|i| (T0 + i * 30_000, i as f64)).collect();
    for p in pts.chunks(10) {
        f.ingest("ag", &[series("m", SeriesKind::Gauge, p)]);
    }
    f.reopen();
    assert_eq!(f.raw("m"), pts);
    assert_eq!(f.count("head_log"), 5);
    f.store.cut_all().unwrap();
    assert_eq!(f.count("head_log"), 0);
    assert_eq!(f.count("raw_chunks"), 1);
    assert_eq!(f.raw("m"), pts);
    // A rewrite of a cut timestamp wins over the chunk; a later point goes to the head.
    f.ingest(
        "ag",
        &[series(
            "m",
            SeriesKind::Gauge,
            &[(T0, 99.0), (T0 + 3_000_000, 7.0)],
        )],
    );
    f.reopen();
    let got = f.raw("m");
    assert_eq!(got[0], (T0, 99.0));
    assert_eq!(got.len(), 51);
    assert_eq!(f.store.stats().head_points, 2);
    // The sequence continues after a restart: the de-duplication table is durable.
    assert_eq!(f.ingest("ag", &[]), IngestOutcome::Stored);
}

#[test]
fn series_sharing_timestamps_share_one_timestamp_chunk() {
    let mut f = Fixture::new(StoreConfig::default());
    for i in 0..40 {
        let ts = T0 + i * 30_000 + (i * 7_919) % 600;
        let batch: Vec<Series> = (0..20)
            .map(|c| Series {
                name: "node_cpu_seconds_total".into(),
                labels: BTreeMap::from([("cpu".into(), c.to_string())]),
                kind: SeriesKind::Counter,
                points: vec![(ts, (1000 * c + i * 3) as f64 / 100.0)],
            })
            .collect();
        f.ingest("ag", &batch);
    }
    f.store.cut_all().unwrap();
    assert_eq!(f.count("ts_chunks"), 1);
    assert_eq!(f.count("raw_chunks"), 20);
    let stats = f.store.stats();
    assert_eq!(stats.samples_ingested, 800);
    // 800 samples: well under a byte each.
    assert!(stats.bytes[0] < 800, "{stats:?}");
    let got = f
        .store
        .read(&ReadRequest {
            selectors: vec![vec![
                LabelMatcher::eq(NAME_LABEL, "node_cpu_seconds_total"),
                LabelMatcher::new("cpu", MatchOp::Re, "1[0-9]").unwrap(),
            ]],
            start: T0,
            end: T0 + DAY,
            tier: TierChoice::Exact(Tier::Raw),
        })
        .unwrap();
    assert_eq!(got.len(), 10);
    assert!(
        got.iter()
            .all(|s| matches!(&s.data, SeriesData::Raw(p) if p.len() == 40))
    );
}

/// Generated counter data with gaps and resets, ingested in batches, cut at random
/// moments: every tier equals the brute force over the raw points.
#[test]
fn rollups_equal_brute_force_through_the_store() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(11);
    let config = StoreConfig {
        retention: crate::store::Retention {
            keep: [Duration::from_secs(400 * 86_400); 5],
        },
        ..StoreConfig::default()
    };
    let mut f = Fixture::new(config);
    let (mut ts, mut v) = (T0, 0.0f64);
    let mut all = Vec::new();
    for _ in 0..3000 {
        ts += if rng.random_bool(0.01) {
            rng.random_range(1..30) * HOUR
        } else {
            30_000 + rng.random_range(0..600)
        };
        v = if rng.random_bool(0.005) {
            f64::from(rng.random_range(0..100))
        } else {
            v + f64::from(rng.random_range(0..500))
        };
        all.push((ts, v));
    }
    for batch in all.chunks(17) {
        f.clock.set(batch[batch.len() - 1].0);
        f.ingest("ag", &[series("c", SeriesKind::Counter, batch)]);
        if rng.random_bool(0.1) {
            f.store.cut_all().unwrap();
        }
    }
    // Part of the data is still in the head: reads merge it.
    for tier in Tier::ROLLUPS {
        assert!(
            f.rollups("c", tier) == brute_force(&all, tier, true),
            "{tier:?}"
        );
    }
    let late = f.store.stats().samples_late;
    f.store.cut_all().unwrap();
    f.reopen();
    for tier in Tier::ROLLUPS {
        let got = f.rollups("c", tier);
        assert!(got == brute_force(&all, tier, true), "{tier:?}");
        let raw_inc: f64 = all
            .windows(2)
            .map(|w| crate::store::rollup::inc(w[0].1, w[1].1))
            .sum();
        assert_eq!(crate::store::total_increase(&got), raw_inc);
    }
    // Batches that span a gap of more than the out-of-order window send their older
    // points to the rollups only.
    assert!(late > 0);
    assert_eq!(f.raw("c").len() as u64 + late, all.len() as u64);
}

#[test]
fn late_points_go_to_rollups_only_and_are_counted() {
    let mut f = Fixture::new(StoreConfig::default());
    f.ingest(
        "ag",
        &[series("g", SeriesKind::Gauge, &[(T0 + 3 * HOUR, 10.0)])],
    );
    // Two hours behind the newest point: past the 1 h window.
    f.ingest(
        "ag",
        &[series(
            "g",
            SeriesKind::Gauge,
            &[(T0 + HOUR, 4.0), (T0 + 2 * HOUR + 30 * MIN, 6.0)],
        )],
    );
    assert_eq!(
        f.raw("g"),
        vec![(T0 + 2 * HOUR + 30 * MIN, 6.0), (T0 + 3 * HOUR, 10.0)]
    );
    assert_eq!(f.store.stats().samples_late, 1);
    let h = f.rollups("g", Tier::H1);
    assert_eq!(
        h.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
        vec![(T0 + HOUR, 1), (T0 + 2 * HOUR, 1), (T0 + 3 * HOUR, 1)]
    );
    let d = f.rollups("g", Tier::D1);
    assert_eq!(
        (d[0].count, d[0].sum, d[0].min, d[0].max),
        (3, 20.0, 4.0, 10.0)
    );
}

#[test]
fn per_agent_series_limit_refuses_new_series_only() {
    let mut f = Fixture::new(StoreConfig {
        max_series_per_agent: 3,
        ..StoreConfig::default()
    });
    let batch: Vec<Series> = (0..5)
        .map(|i| series(&format!("m{i}"), SeriesKind::Gauge, &[(T0, 1.0)]))
        .collect();
    f.ingest("ag", &batch);
    assert_eq!(f.store.stats().series, 3);
    assert_eq!(f.store.stats().series_refused, 2);
    // Known series keep flowing; another agent has its own budget.
    f.ingest("ag", &[series("m0", SeriesKind::Gauge, &[(T0 + 1, 2.0)])]);
    assert_eq!(f.raw("m0").len(), 2);
    f.ingest("other", &batch);
    assert_eq!(f.store.stats().series, 6);
}

/// With a test clock, data moves through the tiers and is purged on time.
#[test]
fn retention_moves_data_through_the_tiers() {
    let mut f = Fixture::new(StoreConfig::default());
    let pts: Vec<(i64, f64)> = (0..120).map(|i| (T0 + i * 30_000, 1.0)).collect();
    f.ingest("ag", &[series("g", SeriesKind::Gauge, &pts)]);
    f.clock.advance(Duration::from_secs(3 * 3600));
    f.store.maintain().unwrap(); // cuts: the head is older than 2 h
    assert_eq!(f.count("head_log"), 0);
    let alive = |f: &mut Fixture, at: i64| {
        // Retention counts from the newest sample: keep a heartbeat series current.
        f.clock.set(at);
        f.ingest("ag", &[series("beat", SeriesKind::Gauge, &[(at, 0.0)])]);
        f.store.purge().unwrap();
    };
    alive(&mut f, T0 + DAY + HOUR);
    assert!(f.raw("g").is_empty());
    assert_eq!(f.count("raw_chunks"), 0);
    assert_eq!(f.count("ts_chunks"), 0);
    assert_eq!(f.rollups("g", Tier::M5).len(), 12);
    // Auto picks the finest tier that covers the range.
    let auto = |f: &Fixture, start: i64| {
        f.store
            .read(&ReadRequest {
                selectors: vec![vec![LabelMatcher::eq(NAME_LABEL, "g")]],
                start,
                end: i64::MAX,
                tier: TierChoice::Auto { step: None },
            })
            .unwrap()[0]
            .tier
    };
    assert_eq!(auto(&f, T0 + DAY + HOUR - 10 * HOUR), Tier::Raw);
    assert_eq!(auto(&f, T0), Tier::M5);
    alive(&mut f, T0 + 8 * DAY);
    assert!(f.rollups("g", Tier::M5).is_empty());
    assert_eq!(f.rollups("g", Tier::H1).len(), 1);
    assert_eq!(auto(&f, T0), Tier::H1);
    alive(&mut f, T0 + 91 * DAY);
    assert!(f.rollups("g", Tier::H1).is_empty());
    assert_eq!(f.rollups("g", Tier::D1)[0].count, 120);
    alive(&mut f, T0 + 366 * DAY);
    assert!(f.rollups("g", Tier::D1).is_empty());
    assert_eq!(f.rollups("g", Tier::Mo1)[0].count, 120);
    alive(&mut f, T0 + 5 * 365 * DAY + 40 * DAY);
    assert!(f.rollups("g", Tier::Mo1).is_empty());
    // Disk space is freed a whole window at a time (a year for monthly records); once
    // the window is past retention, every window of "g" is gone, not just hidden.
    alive(&mut f, T0 + 6 * 366 * DAY);
    let left: i64 = f
        .store
        .lock_writer()
        .query_row(
            "SELECT count(*) FROM rollups r JOIN series s ON s.id = r.series_id WHERE s.name = 'g'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert!(f.store.stats().purges >= 5);
}

#[test]
fn first_store_is_converted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE series(id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL,
                 kind TEXT NOT NULL, UNIQUE(name, labels));
             CREATE TABLE samples(series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                 PRIMARY KEY(series_id, ts)) WITHOUT ROWID;
             CREATE TABLE batches(agent_id TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 received_at INTEGER NOT NULL, PRIMARY KEY(agent_id, boot_id, seq)) WITHOUT ROWID;
             INSERT INTO series VALUES (7, 'm', '{\"agent_id\":\"ag\",\"instance\":\"h\"}', 'counter');
             INSERT INTO samples VALUES (7, 1000, 1.5), (7, 2000, 2.5);
             INSERT INTO batches VALUES ('ag', 'b', 1, 0);",
        )
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(T0));
    let store = TieredStore::open(&path, StoreConfig::default(), clock).unwrap();
    let got = raw_of(&store, "m", 0, i64::MAX);
    assert_eq!(got[0].1, vec![(1000, 1.5), (2000, 2.5)]);
    assert_eq!(got[0].0.labels["agent_id"], "ag");
    assert_eq!(store.batch_stats("ag").unwrap()[0].max_seq, 1);
    store.cut_all().unwrap();
    assert_eq!(raw_of(&store, "m", 0, i64::MAX)[0].1.len(), 2);
}

/// Many threads ingest at once, creating the same series and repeating seqs: batches
/// share commits, every point is stored once, every series exists once.
#[test]
fn concurrent_ingests_share_commits_and_store_everything_once() {
    let f = Fixture::new(StoreConfig::default());
    let threads = 16u64;
    let per_thread = 30u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = &f.store;
            scope.spawn(move || {
                let boot = format!("boot-{t}");
                for seq in 1..=per_thread {
                    let ts = T0 + (seq * threads + t) as i64 * 1000;
                    let batch: Vec<Series> = (0..10)
                        .map(|i| series(&format!("m{i}"), SeriesKind::Gauge, &[(ts, t as f64)]))
                        .collect();
                    let b = IngestBatch {
                        agent_id: "ag",
                        boot_id: &boot,
                        seq,
                        instance: "host",
                        series: &batch,
                        events: &[],
                    };
                    assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Stored);
                    if seq % 10 == 0 {
                        assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Duplicate);
                    }
                }
            });
        }
    });
    let stats = f.store.stats();
    assert_eq!(stats.series, 10);
    assert_eq!(stats.samples_ingested, threads * per_thread * 10);
    assert_eq!(
        stats.commit_batches,
        threads * (per_thread + per_thread / 10)
    );
    assert!(stats.commits < stats.commit_batches, "{stats:?}");
    for i in 0..10 {
        assert_eq!(f.raw(&format!("m{i}")).len() as u64, threads * per_thread);
    }
    let stats_of = |f: &Fixture| f.store.batch_stats("ag").unwrap();
    assert!(
        stats_of(&f)
            .iter()
            .all(|b| b.count == per_thread && b.max_seq == per_thread)
    );
    // What memory showed is what was committed.
    let mut f = f;
    f.reopen();
    assert_eq!(f.store.stats().series, 10);
    assert_eq!(f.raw("m3").len() as u64, threads * per_thread);
    assert_eq!(f.count("series"), 10);
}

/// The per-agent layout cache: series that move, appear or vanish between batches, and
/// two agents with the same series, still land each point in its own series.
#[test]
fn reordered_and_changing_series_land_in_the_right_series() {
    let mut f = Fixture::new(StoreConfig::default());
    let batch = |names: &[&str], ts: i64| -> Vec<Series> {
        names
            .iter()
            .map(|n| series(n, SeriesKind::Gauge, &[(ts, n.len() as f64 + ts as f64)]))
            .collect()
    };
    let orders: [&[&str]; 5] = [
        &["a", "bb", "ccc"],
        &["a", "bb", "ccc"],
        &["ccc", "a", "bb"],
        &["a", "dddd", "bb", "ccc"],
        &["bb", "ccc"],
    ];
    for (i, names) in orders.iter().enumerate() {
        let ts = T0 + i as i64 * 1000;
        f.ingest("ag", &batch(names, ts));
        f.ingest("other", &batch(names, ts));
    }
    for name in ["a", "bb", "ccc", "dddd"] {
        let got = raw_of(&f.store, name, 0, i64::MAX);
        assert_eq!(got.len(), 2, "{name}: one series per agent");
        for s in got {
            let want: Vec<(i64, f64)> = orders
                .iter()
                .enumerate()
                .filter(|(_, names)| names.contains(&name))
                .map(|(i, _)| {
                    let ts = T0 + i as i64 * 1000;
                    (ts, name.len() as f64 + ts as f64)
                })
                .collect();
            assert_eq!(s.1, want, "{name} of {}", s.0.labels["agent_id"]);
        }
    }
    assert_eq!(f.store.stats().series, 8);
}

#[test]
fn head_log_rows_round_trip_and_refuse_garbage() {
    let mut row = Vec::new();
    put_points(&mut row, 3, false, &[(5, 1.0), (-7, f64::NAN)]);
    put_points(&mut row, 9, true, &[(i64::MAX, -0.0)]);
    let back = read_log_row(&row).unwrap();
    assert_eq!((back[0].0, back[0].1), (3, false));
    assert_eq!((back[1].0, back[1].1, back[1].2[0].0), (9, true, i64::MAX));
    assert!(back[0].2[1].1.is_nan());
    assert!(read_log_row(&row[..row.len() - 1]).is_err());
    assert!(read_log_row(&[0xff; 12]).is_err());
}

fn event(name: &str, ts: i64) -> sysward_proto::Event {
    sysward_proto::Event {
        name: name.into(),
        state: "OK".into(),
        output: "fine".into(),
        ts,
        long_output: String::new(),
        hard: true,
        attempt: 0,
        duration_ms: 1,
    }
}

fn table_rows(store: &TieredStore, table: &str) -> i64 {
    store
        .reader()
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Events follow their own retention and batch identities the dedup window: with the
/// clock moved past both, both tables shrink back to what is recent, and a batch still in
/// the window is still refused as a duplicate.
#[test]
fn events_and_dedup_ranges_shrink_back_after_retention() {
    let config = StoreConfig {
        events_retention: Duration::from_secs(5 * 3600),
        dedup_window: Duration::from_secs(2 * 86_400),
        ..StoreConfig::default()
    };
    let f = Fixture::new(config);
    let send = |boot: &str, seq: u64, ts: i64| {
        let series = [series("m", SeriesKind::Gauge, &[(ts, 1.0)])];
        let events = [event("disk", ts), event("web", ts)];
        f.store
            .ingest(&IngestBatch {
                agent_id: "ag",
                boot_id: boot,
                seq,
                instance: "host",
                series: &series,
                events: &events,
            })
            .unwrap()
    };
    // Twelve agent restarts a day for four days, ten batches each, every other one sent
    // fresh-first (its seqs out of order).
    for boot in 0..48u64 {
        let id = format!("boot-{boot}");
        let mut seqs: Vec<u64> = (1..=10).collect();
        if boot % 2 == 1 {
            seqs.reverse();
        }
        for seq in seqs {
            let ts = f.clock.now_ms();
            assert_eq!(send(&id, seq, ts), IngestOutcome::Stored);
            f.clock.advance(Duration::from_secs(60));
        }
        f.clock.advance(Duration::from_secs(7200 - 600));
    }
    assert_eq!(table_rows(&f.store, "events"), 48 * 10 * 2);
    f.store.purge().unwrap();
    let stats = f.store.stats();
    // Five hours back from the newest sample: three boots of ten batches of two events.
    assert_eq!(stats.events, 3 * 10 * 2, "{stats:?}");
    assert_eq!(table_rows(&f.store, "events"), 3 * 10 * 2);
    // Two days of boots, each one range however its seqs arrived.
    assert_eq!(stats.dedup_ranges, 24, "{stats:?}");
    let last = f.store.batch_stats("ag").unwrap();
    assert_eq!(last.len(), 24);
    assert!(
        last.iter().all(|b| b.count == 10 && b.max_seq == 10),
        "{last:?}"
    );
    assert_eq!(
        send("boot-47", 5, f.clock.now_ms()),
        IngestOutcome::Duplicate
    );
    // Reads by agent, check and time use the index the alert rules will.
    let plan: String = f
        .store
        .reader()
        .unwrap()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT state FROM events WHERE agent_id = 'ag' AND name = 'disk' AND ts > 0",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("events_by_check"), "{plan}");
}

/// The head log's rows are deleted at every cut; the purge's incremental vacuum gives
/// their pages back to the file system instead of leaving them on the free list.
#[test]
fn purge_gives_free_pages_back() {
    let mut f = Fixture::new(StoreConfig::default());
    for i in 0..2_000i64 {
        let points: Vec<(i64, f64)> = (0..20).map(|k| (T0 + i * 1000 + k, i as f64)).collect();
        let many: Vec<Series> = (0..10)
            .map(|s| series(&format!("m{s}"), SeriesKind::Gauge, &points))
            .collect();
        f.ingest("ag", &many);
    }
    f.store.cut_all().unwrap();
    let free = |f: &Fixture| -> i64 {
        f.store
            .reader()
            .unwrap()
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap()
    };
    f.store.purge().unwrap();
    // The reader sees the file once the WAL is checkpointed; a fresh open does that.
    f.reopen();
    assert_eq!(free(&f), 0);
}

/// A store whose rollup windows are in the first, `WITHOUT ROWID` table is converted on
/// open, and every window reads back the same.
#[test]
fn rollups_move_out_of_the_without_rowid_table() {
    let mut f = Fixture::new(StoreConfig::default());
    let points: Vec<(i64, f64)> = (0..500)
        .map(|i| (T0 + i * 30_000, (i % 13) as f64))
        .collect();
    f.ingest("ag", &[series("g", SeriesKind::Gauge, &points)]);
    f.store.cut_all().unwrap();
    let before: Vec<Vec<Rollup>> = Tier::ROLLUPS.iter().map(|&t| f.rollups("g", t)).collect();
    assert_eq!(before[0].len(), 50);
    {
        let conn = Connection::open(f.dir.path().join("s.db")).unwrap();
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE old(series_id INTEGER NOT NULL, tier INTEGER NOT NULL,
                 win_start INTEGER NOT NULL, win_end INTEGER NOT NULL, data BLOB NOT NULL,
                 PRIMARY KEY(series_id, tier, win_start)) WITHOUT ROWID;
             INSERT INTO old SELECT series_id, tier, win_start, win_end, data FROM rollups;
             DROP TABLE rollups;
             ALTER TABLE old RENAME TO rollups;
             CREATE INDEX rollups_expiry ON rollups(tier, win_end);
             COMMIT;",
        )
        .unwrap();
    }
    f.reopen();
    let sql: String = f
        .store
        .reader()
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'rollups'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    let after: Vec<Vec<Rollup>> = Tier::ROLLUPS.iter().map(|&t| f.rollups("g", t)).collect();
    assert_eq!(before, after);
}

/// A check result of `state` with `output`.
fn result(name: &str, state: &str, ts: i64, output: &str) -> sysward_proto::Event {
    sysward_proto::Event {
        state: state.into(),
        output: output.into(),
        long_output: format!("{output}\nmore"),
        hard: state != "OK",
        ..event(name, ts)
    }
}

impl Fixture {
    /// Stores `events` as one batch of `agent` on host `agent`-host, without samples.
    fn send_events(&mut self, agent: &str, events: &[sysward_proto::Event]) {
        self.seq += 1;
        let instance = format!("{agent}-host");
        let outcome = self
            .store
            .ingest(&IngestBatch {
                agent_id: agent,
                boot_id: "boot",
                seq: self.seq,
                instance: &instance,
                series: &[],
                events,
            })
            .unwrap();
        assert_eq!(outcome, IngestOutcome::Stored);
    }

    fn events(&self, agent: Option<&str>, check: Option<&str>, since: i64) -> Vec<StoredEvent> {
        self.store
            .events(&EventQuery {
                agent_id: agent.map(str::to_string),
                check: check.map(str::to_string),
                since_ms: since,
                until_ms: None,
                limit: 100,
            })
            .unwrap()
    }
}

/// (agent, check, ts) of each event, for short assertions.
fn keys(events: &[StoredEvent]) -> Vec<(&str, &str, i64)> {
    events
        .iter()
        .map(|e| (e.agent_id.as_str(), e.name.as_str(), e.ts))
        .collect()
}

#[test]
fn events_filter_by_agent_check_and_time_newest_first() {
    let mut f = Fixture::new(StoreConfig::default());
    for i in 0..3 {
        let ts = T0 + i * MIN;
        f.send_events(
            "a",
            &[
                result("disk", "OK", ts, "ok"),
                result("web", "OK", ts, "up"),
            ],
        );
        f.send_events("b", &[result("disk", "CRITICAL", ts, "full")]);
    }
    let all = f.events(None, None, 0);
    assert_eq!(all.len(), 9);
    assert!(all.windows(2).all(|w| w[0].ts >= w[1].ts), "{all:?}");
    // Of equal times, the last stored first.
    assert_eq!(
        keys(&all[..3]),
        vec![
            ("b", "disk", T0 + 2 * MIN),
            ("a", "web", T0 + 2 * MIN),
            ("a", "disk", T0 + 2 * MIN)
        ]
    );
    let first = &all[2];
    assert_eq!(
        (
            first.instance.as_str(),
            first.state.as_str(),
            first.output.as_str()
        ),
        ("a-host", "OK", "ok")
    );
    assert_eq!(
        (first.long_output.as_str(), first.hard),
        ("ok\nmore", Some(false))
    );
    assert_eq!(
        keys(&f.events(Some("a"), Some("disk"), T0 + MIN)),
        vec![("a", "disk", T0 + 2 * MIN), ("a", "disk", T0 + MIN)]
    );
    assert_eq!(f.events(Some("a"), None, 0).len(), 6);
    assert_eq!(f.events(None, Some("disk"), 0).len(), 6);
    assert!(f.events(Some("nobody"), None, 0).is_empty());
    let query = |until_ms, limit| EventQuery {
        agent_id: None,
        check: Some("disk".into()),
        since_ms: T0,
        until_ms,
        limit,
    };
    let got = f.store.events(&query(Some(T0 + MIN), 100)).unwrap();
    assert_eq!(
        keys(&got),
        vec![
            ("b", "disk", T0 + MIN),
            ("a", "disk", T0 + MIN),
            ("b", "disk", T0),
            ("a", "disk", T0)
        ]
    );
    let got = f.store.events(&query(None, 3)).unwrap();
    assert_eq!(
        keys(&got),
        vec![
            ("b", "disk", T0 + 2 * MIN),
            ("a", "disk", T0 + 2 * MIN),
            ("b", "disk", T0 + MIN)
        ]
    );
    assert!(
        f.store
            .events(&query(Some(T0 - 1), 100))
            .unwrap()
            .is_empty()
    );
    let too_many = f.store.events(&query(None, MAX_EVENTS + 1));
    assert!(
        matches!(too_many, Err(StoreError::Invalid(_))),
        "{too_many:?}"
    );
}

/// (check, state, state_since_ms, ts, output) of each latest result.
fn latest(store: &TieredStore, agent: Option<&str>) -> Vec<(String, String, i64, i64, String)> {
    store
        .latest_checks(agent)
        .unwrap()
        .into_iter()
        .map(|c| {
            let e = c.event;
            (
                format!("{}/{}", e.agent_id, e.name),
                e.state,
                c.state_since_ms,
                e.ts,
                e.output,
            )
        })
        .collect()
}

#[test]
fn latest_checks_give_each_check_its_newest_result_and_when_its_state_began() {
    let mut f = Fixture::new(StoreConfig::default());
    let runs: [(&str, &[&str]); 4] = [
        ("disk", &["OK", "OK", "CRITICAL", "CRITICAL"]),
        ("web", &["CRITICAL", "OK", "CRITICAL", "OK", "OK"]),
        ("dns", &["WARNING"]),
        ("ntp", &["OK", "CRITICAL", "UNKNOWN", "CRITICAL"]),
    ];
    // Newest batches first, as an agent sends its spool after an outage: the store
    // orders by time, not by arrival.
    let mut batches: Vec<Vec<sysward_proto::Event>> = Vec::new();
    for (check, states) in runs {
        for (i, state) in states.iter().enumerate() {
            let ts = T0 + i as i64 * MIN;
            let output = format!("{check} {state} {i}");
            batches.push(vec![result(check, state, ts, &output)]);
        }
    }
    for batch in batches.iter().rev() {
        f.send_events("a", batch);
    }
    f.send_events("b", &[result("disk", "OK", T0 + 9 * MIN, "fine")]);
    let s = |x: &str| x.to_string();
    let want_a = vec![
        (
            s("a/disk"),
            s("CRITICAL"),
            T0 + 2 * MIN,
            T0 + 3 * MIN,
            s("disk CRITICAL 3"),
        ),
        (s("a/dns"), s("WARNING"), T0, T0, s("dns WARNING 0")),
        (
            s("a/ntp"),
            s("CRITICAL"),
            T0 + 3 * MIN,
            T0 + 3 * MIN,
            s("ntp CRITICAL 3"),
        ),
        (
            s("a/web"),
            s("OK"),
            T0 + 3 * MIN,
            T0 + 4 * MIN,
            s("web OK 4"),
        ),
    ];
    assert_eq!(latest(&f.store, Some("a")), want_a);
    let mut want_all = want_a.clone();
    want_all.push((s("b/disk"), s("OK"), T0 + 9 * MIN, T0 + 9 * MIN, s("fine")));
    assert_eq!(latest(&f.store, None), want_all);
    assert!(latest(&f.store, Some("nobody")).is_empty());
    let first = &f.store.latest_checks(Some("b")).unwrap()[0].event;
    assert_eq!(
        (first.instance.as_str(), first.hard),
        ("b-host", Some(false))
    );
}

/// `latest_checks` seeks in the indexes rather than scanning the table or sorting: its
/// cost follows the checks and their states, not the results kept.
#[test]
fn latest_checks_read_through_the_indexes() {
    let f = Fixture::new(StoreConfig::default());
    let conn = f.store.reader().unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let order = "ORDER BY agent_id DESC, name DESC, state DESC, ts DESC LIMIT 1";
    let step = plan(&format!(
        "SELECT agent_id, name, state, ts FROM events WHERE (agent_id, name, state) < ('a', 'b', 'c') {order}"
    ));
    assert!(
        step.contains("COVERING INDEX events_by_state (") && !step.contains("TEMP B-TREE"),
        "{step}"
    );
    let newest = plan(
        "SELECT output FROM events WHERE agent_id = 'a' AND name = 'b' ORDER BY ts DESC, rowid DESC LIMIT 1",
    );
    assert!(
        newest.contains("INDEX events_by_check (") && !newest.contains("TEMP B-TREE"),
        "{newest}"
    );
    let since = plan(
        "SELECT ts FROM events WHERE agent_id = 'a' AND name = 'b' AND state = 'OK' AND ts >= 5 ORDER BY ts LIMIT 1",
    );
    assert!(
        since.contains("COVERING INDEX events_by_state (") && !since.contains("TEMP B-TREE"),
        "{since}"
    );
}

/// Reads hide results past events retention as soon as they are past it, and the purge
/// still deletes them; a check whose results all expired leaves the latest checks, and one
/// in the same state since before retention shows the oldest result kept.
#[test]
fn expired_events_are_hidden_then_purged() {
    let config = StoreConfig {
        events_retention: Duration::from_secs(3600),
        ..StoreConfig::default()
    };
    let mut f = Fixture::new(config);
    f.send_events("a", &[result("gone", "OK", T0, "old")]);
    for i in 0..6 {
        f.send_events(
            "a",
            &[result("disk", "CRITICAL", T0 + i * 20 * MIN, "full")],
        );
    }
    f.clock.set(T0 + 100 * MIN);
    // An hour back from now: 40, 60, 80 and 100 minutes.
    assert_eq!(f.events(Some("a"), None, 0).len(), 4);
    assert_eq!(table_rows(&f.store, "events"), 7);
    let checks = latest(&f.store, None);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!((checks[0].2, checks[0].3), (T0 + 40 * MIN, T0 + 100 * MIN));
    f.store.purge().unwrap();
    assert_eq!(table_rows(&f.store, "events"), 4);
    assert_eq!(f.store.stats().events, 4);
    assert_eq!(f.events(Some("a"), None, 0).len(), 4);
}

/// A store from before `instance`, `long_output` and `hard` were kept gains the columns
/// on open: its rows get their agent's host name, empty long output and an unknown hard
/// flag, and new results keep all three.
#[test]
fn an_old_events_table_gains_its_columns_on_open() {
    let mut f = Fixture::new(StoreConfig::default());
    f.ingest("ag", &[series("m", SeriesKind::Gauge, &[(T0, 1.0)])]);
    let columns = |f: &Fixture| -> Vec<(String, String, Option<String>)> {
        let conn = f.store.reader().unwrap();
        let mut stmt = conn
            .prepare("SELECT name, type, dflt_value FROM pragma_table_info('events')")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let fresh = columns(&f);
    {
        let conn = Connection::open(f.dir.path().join("s.db")).unwrap();
        conn.execute_batch(
            "BEGIN;
             DROP TABLE events;
             CREATE TABLE events(agent_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
                 output TEXT NOT NULL, ts INTEGER NOT NULL);
             CREATE INDEX events_by_check ON events(agent_id, name, ts);
             CREATE INDEX events_expiry ON events(ts);
             INSERT INTO events VALUES ('ag', 'disk', 'OK', 'fine', 1767225600000),
                 ('lost', 'disk', 'OK', 'fine', 1767225600000);
             COMMIT;",
        )
        .unwrap();
    }
    f.reopen();
    assert_eq!(columns(&f), fresh);
    let old = f.events(None, None, 0);
    let got: Vec<_> = old
        .iter()
        .map(|e| {
            (
                e.agent_id.as_str(),
                e.instance.as_str(),
                e.long_output.as_str(),
                e.hard,
            )
        })
        .collect();
    assert_eq!(got, vec![("lost", "", "", None), ("ag", "host", "", None)]);
    f.send_events("ag", &[result("disk", "WARNING", T0 + MIN, "slow")]);
    f.reopen();
    let new = &f.events(Some("ag"), None, 0)[0];
    assert_eq!(
        (new.instance.as_str(), new.long_output.as_str(), new.hard),
        ("ag-host", "slow\nmore", Some(true))
    );
    assert_eq!(latest(&f.store, Some("ag"))[0].2, T0 + MIN);
}
