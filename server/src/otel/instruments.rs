//! The server's `/metrics` figures as OpenTelemetry observable instruments: one per sample
//! name of the page, under the same name, reading the page as the periodic reader collects.
//! A counter (and a summary's `_sum` and `_count`) is a monotonic cumulative sum, anything
//! else a gauge; labels become attributes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry::{
    KeyValue,
    metrics::{AsyncInstrument, Meter},
};

use super::snapshot::{self, Snapshot};

/// How old a rendered page may be and still serve a collection: one collection calls every
/// instrument's callback in turn, and the page is rendered once for all of them.
const FRESH: Duration = Duration::from_millis(200);

type Render = dyn Fn() -> String + Send + Sync;

/// The page, rendered at most once per collection.
struct Page {
    render: Box<Render>,
    cached: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl Page {
    fn current(&self) -> Arc<Snapshot> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, snap)) = cached.as_ref()
            && at.elapsed() < FRESH
        {
            return snap.clone();
        }
        let snap = Arc::new(snapshot::parse(&(self.render)()));
        *cached = Some((Instant::now(), snap.clone()));
        snap
    }
}

/// Registers an instrument for every sample name the page has now. Families the page only
/// shows later (none of the server's do) would go out after a restart.
pub(super) fn register(meter: &Meter, render: Box<Render>) -> usize {
    let page = Arc::new(Page {
        render,
        cached: Mutex::new(None),
    });
    let first = page.current();
    for (name, series) in first.iter() {
        let read = {
            let (page, name) = (page.clone(), name.clone());
            move |observer: &dyn AsyncInstrument<f64>| observe(&page, &name, observer)
        };
        if series.monotonic {
            meter
                .f64_observable_counter(name.clone())
                .with_description(series.help.clone())
                .with_callback(read)
                .build();
        } else {
            meter
                .f64_observable_gauge(name.clone())
                .with_description(series.help.clone())
                .with_callback(read)
                .build();
        }
    }
    first.len()
}

fn observe(page: &Page, name: &str, observer: &dyn AsyncInstrument<f64>) {
    let snap = page.current();
    let Some(series) = snap.get(name) else {
        return;
    };
    for sample in &series.samples {
        let attributes: Vec<KeyValue> = sample
            .labels
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        observer.observe(sample.value, &attributes);
    }
}
