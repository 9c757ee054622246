use std::sync::Arc;

use sysward_proto::SeriesKind;

use super::*;
use crate::store::{
    LabelMatcher, ManualClock, NAME_LABEL, ReadRequest, SeriesData, StoreConfig, TierChoice,
};

/// 2023-11-14 22:13:20Z, on a minute.
const T0: i64 = 1_700_000_000_000;

fn store(dir: &Path) -> TieredStore {
    store_at(dir, T0 + 3_600_000)
}

fn store_at(dir: &Path, now: i64) -> TieredStore {
    let config = StoreConfig {
        max_series_per_agent: usize::MAX,
        ..StoreConfig::default()
    };
    TieredStore::open(
        &dir.join("store.db"),
        config,
        Arc::new(ManualClock::new(now)),
    )
    .unwrap()
}

fn import(store: &TieredStore, text: &str, options: ImportOptions) -> Summary {
    let report = check(text.as_bytes()).unwrap();
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    Importer::new(store, "import-test", T0 - 86_400_000, options)
        .run(text.as_bytes(), |_| {}, report.samples)
        .unwrap()
}

/// Labels, kind and points of one series.
type Read = (BTreeMap<String, String>, SeriesKind, Vec<(i64, f64)>);

fn read(store: &TieredStore, name: &str) -> Vec<Read> {
    let reads = store
        .read(&ReadRequest {
            selectors: vec![vec![LabelMatcher::eq(NAME_LABEL, name)]],
            start: i64::MIN / 2,
            end: i64::MAX / 2,
            tier: TierChoice::Exact(Tier::Raw),
        })
        .unwrap();
    let mut out: Vec<_> = reads
        .into_iter()
        .map(|r| match r.data {
            SeriesData::Raw(points) => (r.series.labels, r.kind, points),
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TEXT: &str = r#"# HELP node_cpu_seconds Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds counter
# TYPE node_load1 gauge
node_cpu_seconds_total{cpu="0",mode="idle",instance="a:9100",job="node"} 10 1700000000
node_load1{instance="a:9100",job="node"} 0.5 1700000000
node_load1{instance="b:9100",job="node"} 1.5 1700000000
node_cpu_seconds_total{cpu="0",mode="idle",instance="a:9100",job="node"} 70 1700000060
node_load1{instance="a:9100",job="node"} 0.25 1700000060
node_load1{instance="b:9100",job="node"} NaN 1700000060
node_load1{instance="a:9100",job="node"} 9 1700000030
node_load1{instance="a:9100",job="node"} 9 1700000060
node_load1{job="node"} 7 1700000060.5
up{agent_id="ag-1",instance="c"} 1 1700000060
old 1 1600000000
# EOF
"#;

#[test]
fn imports_with_the_files_labels_kinds_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let s = import(&store, TEXT, ImportOptions::default());
    assert_eq!(s.samples, 11);
    assert_eq!(s.stored, 8);
    assert_eq!((s.out_of_order, s.too_old), (2, 1));
    assert_eq!(s.series, 6, "the refused `old` series counts as seen");
    assert_eq!(s.range, Some((T0, T0 + 60_500)));
    assert_eq!(s.rollups_only, 0);
    assert!(
        s.refused_lines[0].starts_with("line 10: node_load1"),
        "{:?}",
        s.refused_lines
    );
    assert!(
        s.refused_lines[1].starts_with("line 11: "),
        "{:?}",
        s.refused_lines
    );
    assert!(
        s.refused_lines[2].contains("older than every tier"),
        "{:?}",
        s.refused_lines
    );

    let cpu = read(&store, "node_cpu_seconds_total");
    assert_eq!(cpu.len(), 1);
    // The store's own labels are the file's: `agent_id` is empty, which is no label.
    assert_eq!(
        cpu[0].0,
        labels(&[
            ("agent_id", ""),
            ("cpu", "0"),
            ("instance", "a:9100"),
            ("job", "node"),
            ("mode", "idle")
        ])
    );
    assert_eq!(cpu[0].1, SeriesKind::Counter);
    assert_eq!(cpu[0].2, [(T0, 10.0), (T0 + 60_000, 70.0)]);

    let load = read(&store, "node_load1");
    assert_eq!(load.len(), 3);
    assert!(load.iter().all(|l| l.1 == SeriesKind::Gauge));
    assert_eq!(
        load[0].0,
        labels(&[("agent_id", ""), ("instance", ""), ("job", "node")])
    );
    assert_eq!(load[0].2, [(T0 + 60_500, 7.0)]);
    assert_eq!(load[1].2, [(T0, 0.5), (T0 + 60_000, 0.25)]);
    assert_eq!(load[2].2[0], (T0, 1.5));
    assert!(load[2].2[1].1.is_nan());

    let up = read(&store, "up");
    assert_eq!(up[0].0, labels(&[("agent_id", "ag-1"), ("instance", "c")]));
    assert!(read(&store, "old").is_empty());
}

#[test]
fn a_second_import_of_the_same_file_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let options = ImportOptions {
        flush_points: 2,
        batch_points: 1,
        window_ms: 3_600_000,
    };
    let first = import(&store, TEXT, options);
    assert_eq!(first.stored, 8);
    let again = import(&store, TEXT, options);
    assert_eq!(again.stored, 0);
    assert_eq!(again.duplicate_batches, 8, "{again:?}");
    let load = read(&store, "node_load1");
    assert_eq!(load[1].2, [(T0, 0.5), (T0 + 60_000, 0.25)]);
}

#[test]
fn small_flushes_keep_each_series_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut text = String::from("# TYPE c counter\n");
    for i in 0..500i64 {
        for host in ["a", "b", "c"] {
            text.push_str(&format!(
                "c_total{{instance=\"{host}\"}} {i} {}\n",
                1_700_000_000 + i * 10
            ));
        }
    }
    text.push_str("# EOF\n");
    let s = import(
        &store,
        &text,
        ImportOptions {
            flush_points: 7,
            batch_points: 2,
            window_ms: 3_600_000,
        },
    );
    assert_eq!((s.stored, s.out_of_order, s.series), (1500, 0, 3));
    for (_, kind, points) in read(&store, "c_total") {
        assert_eq!(kind, SeriesKind::Counter);
        assert_eq!(points.len(), 500);
        assert!(points.iter().enumerate().all(|(i, p)| p.1 == i as f64));
    }
}

/// A day in time order, as `gen_hosts` writes it: batches span less than the store's
/// out-of-order window, so nothing within raw retention goes to the rollups only.
#[test]
fn a_day_in_time_order_stays_raw() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(dir.path(), T0 + 86_400_000);
    let mut text = String::new();
    for i in 0..1440i64 {
        for host in ["a", "b"] {
            text.push_str(&format!(
                "g{{instance=\"{host}\"}} {i} {}\n",
                1_700_000_000 + i * 60
            ));
        }
    }
    text.push_str("# EOF\n");
    let s = import(&store, &text, ImportOptions::default());
    assert_eq!((s.stored, s.rollups_only), (2880, 0));
    for (_, _, points) in read(&store, "g") {
        assert_eq!(points.len(), 1440);
    }
}

#[test]
fn check_names_every_malformed_line() {
    let text = b"a 1 1\nb 2\n\n# nope\nc{x=\"1} 1 1\nd 1 1\xff\n";
    let report = check(&text[..]).unwrap();
    assert_eq!(report.lines, 6);
    assert_eq!(report.samples, 1);
    let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    // Line 6 is not UTF-8; the end has no # EOF (reported at the last line).
    assert_eq!(lines, [2, 3, 4, 5, 6, 6]);
    assert_eq!(report.error_count, 6);
    assert!(report.errors[0].message.contains("no timestamp"));
    assert!(report.errors[4].message.contains("UTF-8"));
    assert!(report.errors[5].message.contains("# EOF"));
}

#[test]
fn check_counts_past_the_reported_errors() {
    let text = "x\n".repeat(MAX_REPORTED + 5) + "# EOF\n";
    let report = check(text.as_bytes()).unwrap();
    assert_eq!(report.errors.len(), MAX_REPORTED);
    assert_eq!(report.error_count, MAX_REPORTED as u64 + 5);
}

#[test]
fn finds_processes_with_a_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, "x").unwrap();
    // This process is left out: only others count.
    let _open = fs::File::open(&path).unwrap();
    assert!(processes_with_open(&path).is_empty());
    assert!(processes_with_open(&dir.path().join("missing")).is_empty());
}
