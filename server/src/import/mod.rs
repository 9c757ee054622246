//! `sysward-server import FILE`: backfill from OpenMetrics text with timestamps (what
//! `promtool tsdb create-blocks-from openmetrics` reads; format in [`openmetrics`]).
//!
//! # How samples enter the store
//!
//! Through [`Store::ingest`], as agents' batches do, so that rollups, late points and
//! retention work the same. The store gives every series an `instance` and an `agent_id`
//! label from the batch, so the importer makes one batch per pair of the file's own
//! `instance` and `agent_id` labels: a series keeps exactly the labels it has in the file.
//! Where the file has no such label, the batch's is empty, and an empty label is no label
//! to the query engine (as in Prometheus), so imported series carry no `agent_id` unless
//! the file gave one (a file exported from Sysward keeps its agents).
//!
//! Batch identities are `(agent_id, "import-<hash of the file's path, size and mtime>",
//! seq)` with seqs from 1 per agent id, in an order fixed by the file: importing the same
//! unchanged file again (after an interruption, say) stores nothing twice, because every
//! batch already stored is recognised as a duplicate.
//!
//! # Passes and memory
//!
//! 1. **Check**: the whole file is parsed, nothing stored. Every malformed line is
//!    reported with its number; if there is one, nothing is imported (Prometheus stops at
//!    the first; all of them are more useful to fix a file).
//! 2. **Import**: the file is read again and samples are buffered, then handed to the
//!    store grouped per series, and the store cuts its heads as the server's background
//!    task would. The buffer is flushed at [`ImportOptions::flush_points`] samples, and
//!    before it would span more than [`ImportOptions::window_ms`]: the store takes a
//!    series' points more than its out-of-order window before the newest of the same batch
//!    as late (rollups only), so a batch must cover less than that window. For a file in
//!    time order (as `gen_hosts` and Prometheus' federation write it) each flush is a time
//!    window across all series; a file ordered series by series still imports, in many
//!    small flushes, and the store then counts from the newest sample it has seen, so a
//!    later series' points older than the raw retention go to the rollups only. Memory is
//!    the buffer plus one entry per series (its newest timestamp).
//!
//! Samples must come in time order per series, as the store's raw tier needs (and
//! Prometheus' block writer, which drops the others silently). A sample at or before its
//! series' previous one is refused, counted, and its line reported. Samples older than the
//! longest retention are refused too (no tier would keep them); samples older than the raw
//! tier's retention go to the rollups only, as late agent points do.
//!
//! # Only with the server stopped
//!
//! The server keeps its index and heads in memory: series imported behind its back would
//! stay invisible to it until a restart, and both would write one database. `import`
//! therefore refuses to start while another process has `store.db` open (found through
//! `/proc/*/fd`, which needs the server's user or root to see).

pub mod openmetrics;

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::{BufRead, BufReader},
    path::Path,
    sync::Arc,
    time::Instant,
};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sysward_proto::Series;

use self::openmetrics::{Document, ParseError, Sample};
use crate::{
    config::ServerConfig,
    store::{IngestBatch, IngestOutcome, Store, StoreError, SystemClock, Tier, TieredStore},
};

/// Malformed lines printed before the rest are only counted.
const MAX_REPORTED: usize = 100;

/// Tuning of the import pass.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Samples buffered before they go to the store.
    pub flush_points: usize,
    /// Most points in one batch.
    pub batch_points: usize,
    /// Longest time one flush spans, ms: under the store's out-of-order window.
    pub window_ms: i64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            flush_points: 200_000,
            batch_points: 20_000,
            window_ms: 30 * 60_000,
        }
    }
}

/// What the check pass found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Lines read.
    pub lines: u64,
    /// Sample lines.
    pub samples: u64,
    /// The first malformed lines ([`MAX_REPORTED`]).
    pub errors: Vec<ParseError>,
    /// All malformed lines.
    pub error_count: u64,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Distinct series in the file.
    pub series: u64,
    /// Sample lines in the file.
    pub samples: u64,
    /// Samples handed to the store (in new batches, not duplicates).
    pub stored: u64,
    /// Of those, how many the store kept for the rollups only (older than raw retention).
    pub rollups_only: u64,
    /// Earliest and latest sample time, unix ms.
    pub range: Option<(i64, i64)>,
    /// Samples refused: not after their series' previous sample.
    pub out_of_order: u64,
    /// Samples refused: older than every tier's retention.
    pub too_old: u64,
    /// The first refused samples' reasons, with line numbers.
    pub refused_lines: Vec<String>,
    /// Batches already stored by an earlier import of the same file.
    pub duplicate_batches: u64,
}

/// Progress of the import pass, for the caller to show.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Sample lines read so far.
    pub samples_read: u64,
    /// Of all sample lines (from the check pass).
    pub samples_total: u64,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the file failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// A line the check pass accepted fails now: the file changed meanwhile.
    #[error("{0} (did the file change during the import?)")]
    Parse(#[from] ParseError),
    /// The store failed; what was acked before stays stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckReport {
    fn error(&mut self, e: ParseError) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(e);
        }
    }
}

/// Pass 1: parses everything, keeps the first errors and counts all.
pub fn check(reader: impl BufRead) -> Result<CheckReport, std::io::Error> {
    let mut report = CheckReport::default();
    let mut doc = Document::new();
    for_each_line(reader, &mut doc, |_, parsed| match parsed {
        Ok(Some(_)) => report.samples += 1,
        Ok(None) => {}
        Err(e) => report.error(e),
    })?;
    report.lines = doc.lines();
    if let Err(e) = doc.finish() {
        report.error(e);
    }
    Ok(report)
}

/// Feeds every line to `doc` and `f`; a line that is not UTF-8 is an error of its own.
fn for_each_line(
    mut reader: impl BufRead,
    doc: &mut Document,
    mut f: impl FnMut(&Document, Result<Option<Sample>, ParseError>),
) -> Result<(), std::io::Error> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let parsed = doc.feed_bytes(line);
        f(doc, parsed);
    }
}

/// One series' identity: name and labels, length-prefixed so that no value can fake a
/// boundary.
fn series_key(s: &Sample) -> String {
    let mut labels: Vec<&(String, String)> = s.labels.iter().collect();
    labels.sort();
    let mut key = format!("{}:{}", s.name.len(), s.name);
    for (k, v) in labels {
        key.push_str(&format!("{}:{k}{}:{v}", k.len(), v.len()));
    }
    key
}

/// Samples waiting for the store, per (agent_id, instance), then per series.
type Buffer = BTreeMap<(String, String), BTreeMap<String, Series>>;

/// Pass 2 (see the module doc): stores the samples of an already checked file.
pub struct Importer<'a> {
    store: &'a TieredStore,
    boot_id: String,
    options: ImportOptions,
    /// Oldest time any tier keeps.
    oldest_kept: i64,
    last_ts: HashMap<String, i64>,
    next_seq: HashMap<String, u64>,
    buffer: Buffer,
    buffered: usize,
    /// Earliest and latest time in the buffer.
    buffer_span: Option<(i64, i64)>,
    /// Flushes so far, for progress reports.
    flushes: u64,
    summary: Summary,
}

impl<'a> Importer<'a> {
    /// An importer into `store`, naming its batches' boot `boot_id`; samples before
    /// `oldest_kept` (unix ms) are refused.
    pub fn new(
        store: &'a TieredStore,
        boot_id: &str,
        oldest_kept: i64,
        options: ImportOptions,
    ) -> Self {
        Self {
            store,
            boot_id: boot_id.to_string(),
            options,
            oldest_kept,
            last_ts: HashMap::new(),
            next_seq: HashMap::new(),
            buffer: Buffer::new(),
            buffered: 0,
            buffer_span: None,
            flushes: 0,
            summary: Summary::default(),
        }
    }

    /// Reads the whole file and stores it; `progress` is called after each flush.
    pub fn run(
        mut self,
        reader: impl BufRead,
        mut progress: impl FnMut(Progress),
        samples_total: u64,
    ) -> Result<Summary, ImportError> {
        let before = self.store.stats();
        let mut doc = Document::new();
        let mut failure: Option<ImportError> = None;
        let mut reported = 0;
        for_each_line(reader, &mut doc, |doc, parsed| {
            if failure.is_some() {
                return;
            }
            let result = match parsed {
                Ok(Some(sample)) => self.add(doc, sample),
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            };
            let result = result.and_then(|()| {
                if self.buffered >= self.options.flush_points {
                    self.flush()?;
                }
                Ok(())
            });
            if self.flushes != reported {
                reported = self.flushes;
                progress(Progress {
                    samples_read: self.summary.samples,
                    samples_total,
                });
            }
            if let Err(e) = result {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        doc.finish()?;
        self.flush()?;
        // Leave the store as the server's background task would: heads cut into chunks
        // and rollups, raw points past retention purged.
        self.store.cut_all()?;
        self.store.purge()?;
        let after = self.store.stats();
        self.summary.series = self.last_ts.len() as u64;
        self.summary.rollups_only = after.samples_late - before.samples_late;
        Ok(self.summary)
    }

    fn add(&mut self, doc: &Document, sample: Sample) -> Result<(), ImportError> {
        self.summary.samples += 1;
        let line = doc.lines();
        let ts = sample.ts_ms;
        let key = series_key(&sample);
        let last = self.last_ts.entry(key.clone()).or_insert(i64::MIN);
        let previous = *last;
        *last = previous.max(ts);
        if ts <= previous {
            self.summary.out_of_order += 1;
            self.refuse(format!(
                "line {line}: {} at {ts} ms is not after its series' previous sample ({previous} ms)",
                sample.name
            ));
            return Ok(());
        }
        if ts < self.oldest_kept {
            self.summary.too_old += 1;
            self.refuse(format!(
                "line {line}: {} at {ts} ms is older than every tier's retention",
                sample.name
            ));
            return Ok(());
        }
        self.summary.range = Some(match self.summary.range {
            None => (ts, ts),
            Some((lo, hi)) => (lo.min(ts), hi.max(ts)),
        });
        if let Some((lo, hi)) = self.buffer_span
            && hi.max(ts) - lo.min(ts) >= self.options.window_ms
        {
            self.flush()?;
        }
        self.buffer_span = Some(
            self.buffer_span
                .map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))),
        );
        let kind = doc.kind_of(&sample.name);
        let mut agent_id = String::new();
        let mut instance = String::new();
        let mut labels = BTreeMap::new();
        for (k, v) in sample.labels {
            match k.as_str() {
                "agent_id" => agent_id = v,
                "instance" => instance = v,
                _ => {
                    labels.insert(k, v);
                }
            }
        }
        self.buffer
            .entry((agent_id, instance))
            .or_default()
            .entry(key)
            .or_insert_with(|| Series {
                name: sample.name,
                labels,
                kind,
                points: Vec::new(),
            })
            .points
            .push((ts, sample.value));
        self.buffered += 1;
        Ok(())
    }

    fn refuse(&mut self, reason: String) {
        if self.summary.refused_lines.len() < MAX_REPORTED {
            self.summary.refused_lines.push(reason);
        }
    }

    /// Hands the buffer to the store, batch by batch, then lets the store cut due heads.
    fn flush(&mut self) -> Result<(), ImportError> {
        let buffer = std::mem::take(&mut self.buffer);
        self.buffered = 0;
        self.buffer_span = None;
        self.flushes += 1;
        for ((agent_id, instance), series) in buffer {
            let mut batch: Vec<Series> = Vec::new();
            let mut points = 0;
            for s in series.into_values() {
                points += s.points.len();
                batch.push(s);
                if points >= self.options.batch_points {
                    self.ingest(&agent_id, &instance, &batch)?;
                    batch.clear();
                    points = 0;
                }
            }
            if !batch.is_empty() {
                self.ingest(&agent_id, &instance, &batch)?;
            }
        }
        self.store.maintain()?;
        Ok(())
    }

    fn ingest(
        &mut self,
        agent_id: &str,
        instance: &str,
        series: &[Series],
    ) -> Result<(), ImportError> {
        let seq = self.next_seq.entry(agent_id.to_string()).or_insert(0);
        *seq += 1;
        let outcome = self.store.ingest(&IngestBatch {
            agent_id,
            boot_id: &self.boot_id,
            seq: *seq,
            instance,
            series,
            events: &[],
        })?;
        match outcome {
            IngestOutcome::Stored => {
                self.summary.stored += series.iter().map(|s| s.points.len() as u64).sum::<u64>();
            }
            IngestOutcome::Duplicate => self.summary.duplicate_batches += 1,
        }
        Ok(())
    }
}

/// The boot id of an import: the same for the same unchanged file.
fn import_boot_id(file: &Path) -> anyhow::Result<String> {
    let meta = fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let path = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut hash = Sha256::new();
    hash.update(path.as_os_str().as_encoded_bytes());
    hash.update(meta.len().to_le_bytes());
    hash.update(mtime.to_le_bytes());
    Ok(format!("import-{}", &hex::encode(hash.finalize())[..16]))
}

/// Processes other than this one with `path` open, found through `/proc/*/fd`. Processes
/// of other users are invisible unless this one runs as root.
pub fn processes_with_open(path: &Path) -> Vec<u32> {
    let Ok(target) = fs::canonicalize(path) else {
        return Vec::new();
    };
    let own = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l == target))
            })
        })
        .collect()
}

/// The CLI command: refuses while the store is open elsewhere, checks, imports, reports.
pub fn run(config: &ServerConfig, file: &Path) -> anyhow::Result<()> {
    let dir = &config.storage.data_dir;
    let db = dir.join("store.db");
    let users = processes_with_open(&db);
    if !users.is_empty() {
        bail!(
            "{} is open in process {users:?} (a running server?): stop the server, import, then start it",
            db.display()
        );
    }
    let open = || -> anyhow::Result<BufReader<fs::File>> {
        let f = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        Ok(BufReader::with_capacity(1 << 20, f))
    };
    let started = Instant::now();
    let report = check(open()?).with_context(|| format!("cannot read {}", file.display()))?;
    if report.error_count > 0 {
        for e in &report.errors {
            eprintln!("{}:{e}", file.display());
        }
        if report.error_count > report.errors.len() as u64 {
            eprintln!(
                "... and {} more",
                report.error_count - report.errors.len() as u64
            );
        }
        bail!(
            "{} malformed line(s) in {}; nothing was imported",
            report.error_count,
            file.display()
        );
    }
    eprintln!(
        "{}: {} lines, {} samples, well formed; importing into {}",
        file.display(),
        report.lines,
        report.samples,
        dir.display()
    );
    crate::serve::create_private_dir(dir)?;
    // The series limit guards against a runaway agent; an import is the operator's choice.
    let mut store_config = config.store_config();
    store_config.max_series_per_agent = usize::MAX;
    let longest = Tier::ALL
        .iter()
        .map(|&t| store_config.retention.ms(t))
        .max()
        .unwrap_or(i64::MAX);
    let oldest_kept = crate::store::Clock::now_ms(&SystemClock).saturating_sub(longest);
    let store = TieredStore::open(&db, store_config, Arc::new(SystemClock))
        .with_context(|| format!("cannot open {}", db.display()))?;
    let boot_id = import_boot_id(file)?;
    let window = config.storage.out_of_order_window / 2;
    let options = ImportOptions {
        window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
        ..ImportOptions::default()
    };
    let importer = Importer::new(&store, &boot_id, oldest_kept, options);
    let mut last_report = Instant::now();
    let summary = importer.run(
        open()?,
        |p| {
            if last_report.elapsed().as_secs() >= 2 {
                last_report = Instant::now();
                eprintln!(
                    "{:.0}% ({} of {} samples, {:.0} s)",
                    100.0 * p.samples_read as f64 / p.samples_total.max(1) as f64,
                    p.samples_read,
                    p.samples_total,
                    started.elapsed().as_secs_f64()
                );
            }
        },
        report.samples,
    )?;
    print_summary(&summary, started.elapsed().as_secs_f64());
    Ok(())
}

fn print_summary(s: &Summary, secs: f64) {
    println!("series: {}", s.series);
    println!(
        "samples: {} read, {} stored ({} for the rollups only: older than the raw tier's retention)",
        s.samples, s.stored, s.rollups_only
    );
    if let Some((lo, hi)) = s.range {
        println!(
            "time range: {} to {} (unix ms {lo} to {hi})",
            crate::cli::format_ms(lo),
            crate::cli::format_ms(hi)
        );
    }
    println!(
        "refused: {} out of order (not after their series' previous sample), {} older than every tier's retention",
        s.out_of_order, s.too_old
    );
    for line in &s.refused_lines {
        println!("  {line}");
    }
    if s.duplicate_batches > 0 {
        println!(
            "already stored by an earlier import of this file: {} batches (skipped)",
            s.duplicate_batches
        );
    }
    println!("took {secs:.1} s");
}

#[cfg(test)]
mod tests;
