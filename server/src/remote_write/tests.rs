//! Targets against the scripted HTTP server of `tests/src/recorder.rs`, over a real store:
//! retries, refusals, the queue bound and restarts.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, path::Path, time::Instant};

use sysward_promwire::{DecodeLimits, WriteRequest, decode};
use sysward_tests::recorder::{Answer, Recorded, Recorder};

use super::*;
use sysward_proto::Series;

use crate::store::{IngestBatch, SeriesKind, Store, StoreConfig, SystemClock};

fn open_store(dir: &Path) -> Arc<TieredStore> {
    Arc::new(
        TieredStore::open(
            &dir.join("store.db"),
            StoreConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap(),
    )
}

fn target(url: &str, shards: usize) -> Target {
    let config: RemoteWriteConfig = toml::from_str(&format!(
        "name = \"t\"\nurl = {url:?}\ntimeout = \"2s\"\nmin_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nshards = {shards}\n"
    ))
    .unwrap();
    config.resolve().unwrap()
}

/// Batch `seq` of agent `a1`: series `m{k="0".."series"}`, one point each at `ts`, valued
/// `seq`.
fn ingest(store: &TieredStore, seq: u64, series: usize, ts: i64) {
    let series: Vec<Series> = (0..series)
        .map(|k| Series {
            name: "m".into(),
            labels: BTreeMap::from([("k".into(), k.to_string())]),
            kind: SeriesKind::Gauge,
            points: vec![(ts, seq as f64)],
        })
        .collect();
    store
        .ingest(&IngestBatch {
            agent_id: "a1",
            boot_id: "b1",
            seq,
            instance: "h1",
            series: &series,
            events: &[],
        })
        .unwrap();
}

/// Per series (its `k` label), the (ts, value) samples of the given requests, in order.
fn samples(requests: &[Recorded]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for r in requests {
        let w: WriteRequest = decode(&r.body, &DecodeLimits::default()).unwrap();
        for ts in w.timeseries {
            let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            assert_eq!(names, ["__name__", "agent_id", "instance", "k"], "sorted");
            let k = ts.labels[3].value.clone();
            out.entry(k)
                .or_default()
                .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
        }
    }
    out
}

struct Running {
    rw: Arc<RemoteWrite>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(targets: &[Target], store: Arc<TieredStore>, dir: &Path) -> Self {
        let rw = Arc::new(RemoteWrite::with_targets(targets, store, dir).unwrap());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(rw.clone().run(stopped));
        Self { rw, stop, task }
    }

    fn stats(&self) -> &TargetStats {
        &self.rw.targets[0].stats
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn load(n: &AtomicU64) -> u64 {
    n.load(std::sync::atomic::Ordering::Relaxed)
}

use std::sync::atomic::AtomicU64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_in_order_through_5xx_429_and_network_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let recorder = Recorder::start();
    recorder.script([
        Answer::status(500),
        Answer::status(429).header("Retry-After", "0"),
        Answer::status(502),
    ]);
    let running = Running::start(
        &[target(&format!("{}/w", recorder.url), 1)],
        store.clone(),
        dir.path(),
    );
    for seq in 1..=5 {
        ingest(&store, seq, 3, 1_000 * seq as i64);
    }
    until("15 samples sent", || load(&running.stats().sent) == 15).await;
    let got = recorder.requests();
    // The three failed tries carried the first round; what followed the last failure
    // holds every sample once, each series oldest first.
    let delivered = samples(&got[3..]);
    assert_eq!(delivered.len(), 3);
    for points in delivered.values() {
        let want: Vec<(i64, f64)> = (1..=5).map(|s| (1_000 * s, s as f64)).collect();
        assert_eq!(points, &want);
    }
    assert!(load(&running.stats().failed) >= 3, "counted at each try");
    assert_eq!(load(&running.stats().rejected), 0);
    let text = running.rw.render_metrics();
    assert!(
        text.contains("sysward_server_remote_write_samples_sent_total{target=\"t\"} 15\n"),
        "{text}"
    );
    assert!(
        text.contains("sysward_server_remote_write_queue_bytes{target=\"t\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("sysward_server_remote_write_lag_seconds{target=\"t\"} 0\n"),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_dropped_counted_and_the_next_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let recorder = Recorder::start();
    recorder.script([Answer::status(400).body("out of order sample")]);
    let running = Running::start(
        &[target(&format!("{}/w", recorder.url), 1)],
        store.clone(),
        dir.path(),
    );
    ingest(&store, 1, 4, 1_000);
    until("the refusal", || load(&running.stats().rejected) == 4).await;
    ingest(&store, 2, 4, 2_000);
    until("the next batch", || load(&running.stats().sent) == 4).await;
    let got = recorder.requests();
    assert_eq!(got.len(), 2, "a refused request is not sent again");
    assert_eq!(samples(&got[1..])["0"], [(2_000, 2.0)]);
    assert_eq!(load(&running.stats().failed), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_series_and_each_series_stays_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let recorder = Recorder::start();
    let running = Running::start(
        &[target(&format!("{}/w", recorder.url), 4)],
        store.clone(),
        dir.path(),
    );
    for seq in 1..=3 {
        ingest(&store, seq, 40, 1_000 * seq as i64);
        // One round per batch, so that the shards of each round can be told apart.
        until("the batch", || load(&running.stats().sent) == 40 * seq).await;
    }
    let got = recorder.requests();
    assert_eq!(got.len(), 12, "four shards a round");
    let shard_series: Vec<Vec<String>> = got
        .iter()
        .map(|r| samples(std::slice::from_ref(r)).into_keys().collect())
        .collect();
    for round in shard_series.chunks(4) {
        let mut sorted = round.to_vec();
        sorted.sort();
        let mut first: Vec<_> = shard_series[..4].to_vec();
        first.sort();
        assert_eq!(sorted, first, "the same split every round");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_loses_only_its_oldest_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = target(&format!("http://127.0.0.1:{port}/w"), 1);
    // About 16 bytes a point: room for some 300 of the 3,000 points below.
    t.max_queue_bytes = 5_000;
    t.max_samples_per_send = 100;
    let running = Running::start(&[t], store.clone(), dir.path());
    let ingest_started = Instant::now();
    for seq in 1..=30 {
        ingest(&store, seq, 100, 1_000 * seq as i64);
    }
    assert!(
        ingest_started.elapsed() < Duration::from_secs(10),
        "ingest does not wait for the target"
    );
    let bytes = |text: &str| -> i64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("sysward_server_remote_write_queue_bytes"))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // A row (about 1,000 bytes here) past the bound at most, once the oldest are gone.
    until("the queue back within its bound", || {
        bytes(&running.rw.render_metrics()) <= 5_000 + 1_200
            && load(&running.stats().queue_full) > 2_000
    })
    .await;
    let text = running.rw.render_metrics();
    assert!(text.contains("reason=\"queue_full\"}"), "{text}");
    assert_eq!(load(&running.stats().sent), 0);
    assert!(load(&running.stats().failed) > 0);
    running.stop().await;
    // The log itself keeps no more than the bound (and a round) once trimmed.
    let rows = store.forward_read(0, usize::MAX).unwrap();
    let kept: u64 = rows.iter().map(|r| r.samples).sum();
    assert!(kept <= 800, "{kept} samples kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_target_goes_on_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start();
    let url = format!("{}/w", recorder.url);
    {
        let store = open_store(dir.path());
        let running = Running::start(&[target(&url, 1)], store.clone(), dir.path());
        ingest(&store, 1, 2, 1_000);
        until("the first batch", || load(&running.stats().sent) == 2).await;
        running.stop().await;
        // Stored while the target is stopped: waits in the log.
        ingest(&store, 2, 2, 2_000);
    }
    let store = open_store(dir.path());
    let running = Running::start(&[target(&url, 1)], store.clone(), dir.path());
    ingest(&store, 3, 2, 3_000);
    until("the rest", || load(&running.stats().sent) == 4).await;
    let got = recorder.requests();
    assert_eq!(
        samples(&got)["1"],
        [(1_000, 1.0), (2_000, 2.0), (3_000, 3.0)]
    );
    running.stop().await;
}
