/// Whether a value only grows (a counter, sent cumulative) or moves both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Cumulative and monotonic except across resets.
    Counter,
    /// A current value.
    Gauge,
}

/// One value of one series, as read in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, node_exporter's where it has one.
    pub name: String,
    /// Label pairs, in the order the collector gives them.
    pub labels: Vec<(String, String)>,
    /// Counter or gauge.
    pub kind: Kind,
    /// The value, in base units.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn new(name: impl Into<String>, kind: Kind, value: f64) -> Self {
        Self {
            name: name.into(),
            labels: Vec::new(),
            kind,
            value,
        }
    }

    /// Adds one label.
    #[must_use]
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// What one run produced: samples, and the parts that failed without failing the run.
#[derive(Debug, Default)]
pub struct Output {
    /// The samples read.
    pub samples: Vec<Sample>,
    /// Parts that failed, each a short message naming what and where.
    pub errors: Vec<String>,
}

impl Output {
    /// Appends one sample.
    pub fn push(&mut self, sample: Sample) {
        self.samples.push(sample);
    }

    /// Records a part that failed.
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }
}
