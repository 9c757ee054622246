/// Whether a value only grows (a counter, sent cumulative) or moves both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Cumulative and monotonic except across resets.
    Counter,
    /// A current value.
    Gauge,
}

/// A metric or label name: most are fixed strings in the code, and a `&'static str`
/// costs no allocation per sample; names made at run time (a meminfo field's) are owned.
pub type Name = std::borrow::Cow<'static, str>;

/// One value of one series, as read in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, node_exporter's where it has one.
    pub name: Name,
    /// Label pairs, in the order the collector gives them.
    pub labels: Vec<(Name, String)>,
    /// Counter or gauge.
    pub kind: Kind,
    /// The value, in base units.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn new(name: impl Into<Name>, kind: Kind, value: f64) -> Self {
        Self {
            name: name.into(),
            labels: Vec::new(),
            kind,
            value,
        }
    }

    /// Adds one label.
    #[must_use]
    pub fn label(mut self, name: impl Into<Name>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// A check's state, as the Nagios plugin contract numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckState {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
    /// Exit 3, or anything that kept the check from giving an answer.
    Unknown,
}

impl CheckState {
    /// 0 to 3, the plugin exit code and the value of `sysward_check_status`.
    pub fn code(self) -> u8 {
        match self {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Critical => 2,
            CheckState::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }
}

/// The result of one check run.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The check's name, unique on the host.
    pub check: String,
    /// Its state.
    pub state: CheckState,
    /// The first line of output, without perfdata.
    pub output: String,
    /// Further lines of output.
    pub long_output: String,
    /// Whether the state is hard (confirmed over `max_attempts` runs) or soft.
    pub hard: bool,
    /// Which consecutive non-OK run this is (1 for the first; 0 when OK).
    pub attempt: u32,
    /// How long the check took.
    pub duration: std::time::Duration,
}

/// What one run produced: samples, events, and the parts that failed without failing
/// the run.
#[derive(Debug, Default)]
pub struct Output {
    /// The samples read.
    pub samples: Vec<Sample>,
    /// Check results.
    pub events: Vec<Event>,
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

/// For tests: the value of the first sample named `name` that has at least `labels`.
/// Here rather than in `crate::testing`, which is Linux-only, because the tests that use
/// it (smart's, the database collectors') are not.
#[cfg(test)]
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}
