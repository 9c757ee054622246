//! Runtime values: the few Go types that rule templates ever see.

use std::collections::BTreeMap;
use std::rc::Rc;

pub(super) type Labels = Rc<BTreeMap<String, String>>;

/// Prometheus' `sample`: one element of a query result.
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) labels: Labels,
    pub(super) value: f64,
}

/// The dot of a rule template (Prometheus' alert template data).
#[derive(Debug)]
pub(super) struct Root {
    pub(super) labels: Labels,
    pub(super) external_labels: Labels,
    pub(super) external_url: Rc<str>,
    pub(super) value: f64,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Go's nil interface or "no value".
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    /// `map[string]string`: a missing key reads as "".
    Labels(Labels),
    /// `map[string]interface{}` (from `args`): a missing key reads as nil.
    Map(Rc<ArgsMap>),
    /// A query result (`[]*sample`).
    Vector(Rc<Vec<Rc<Sample>>>),
    Sample(Rc<Sample>),
    Root(Rc<Root>),
    /// `*time.Time`, as Unix nanoseconds in UTC.
    Time(i64),
    /// `time.Duration`, in nanoseconds.
    Duration(i64),
    /// A JSON object of a data template: a missing key reads as "".
    Object(Rc<Object>),
    /// A JSON array of a data template, or a list a method built.
    List(Rc<List>),
}

/// The map `args` builds. `args` can nest maps inside maps, so each
/// knows its depth: printing and dropping recurse that deep.
#[derive(Debug)]
pub(super) struct ArgsMap {
    pub(super) entries: BTreeMap<String, Value>,
    pub(super) depth: usize,
}

/// An object of a data template. Like an `args` map it knows how deep it
/// nests, so that nothing a template builds from it recurses without bound.
#[derive(Debug)]
pub(super) struct Object {
    pub(super) entries: BTreeMap<String, Value>,
    pub(super) depth: usize,
}

impl Object {
    pub(super) fn new(entries: BTreeMap<String, Value>) -> Object {
        let depth = 1 + entries.values().map(Value::depth).max().unwrap_or(0);
        Object { entries, depth }
    }

    /// Every value a string: Alertmanager's `KV` (labels, annotations).
    pub(super) fn is_kv(&self) -> bool {
        self.entries.values().all(|v| matches!(v, Value::Str(_)))
    }
}

#[derive(Debug)]
pub(super) struct List {
    pub(super) items: Vec<Value>,
    pub(super) depth: usize,
    /// Built by `SortedPairs`: `{Name, Value}` objects, with `.Names`
    /// and `.Values` (Alertmanager's `Pairs`).
    pub(super) pairs: bool,
}

impl List {
    pub(super) fn new(items: Vec<Value>, pairs: bool) -> List {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        List {
            items,
            depth,
            pairs,
        }
    }
}

impl std::ops::Deref for ArgsMap {
    type Target = BTreeMap<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

const ROOT_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; \
                         ExternalURL string; Value interface {} }";

impl Value {
    pub(super) fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    pub(super) fn string(s: String) -> Value {
        Value::Str(Rc::from(s))
    }

    /// The Go type name, as Go's error messages print it.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Labels(_) => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::Vector(_) => "template.queryResult",
            Value::Sample(_) => "*template.sample",
            Value::Root(_) => ROOT_TYPE,
            Value::Time(_) => "*time.Time",
            Value::Duration(_) => "time.Duration",
            Value::Object(_) => "map[string]interface {}",
            Value::List(l) if l.pairs => "template.Pairs",
            Value::List(_) => "[]interface {}",
        }
    }

    /// How many maps and lists are nested in this value.
    pub(super) fn depth(&self) -> usize {
        match self {
            Value::Map(m) => m.depth,
            Value::Object(o) => o.depth,
            Value::List(l) => l.depth,
            _ => 0,
        }
    }

    /// Go's template truth: zero values and empty collections are false.
    pub(super) fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Labels(m) => !m.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Vector(v) => !v.is_empty(),
            Value::Duration(d) => *d != 0,
            Value::Object(o) => !o.entries.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Sample(_) | Value::Root(_) | Value::Time(_) => true,
        }
    }
}

/// Go's `time.Time.String()` for a UTC instant:
/// `2015-06-23 13:19:44.128 +0000 UTC`.
pub(super) fn go_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.Duration.String()`: `1h2m5s`, `1.5ms`, `0s`.
pub(super) fn go_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (int, frac) = split_frac(u, prec);
        return format!("{sign}{int}{frac}{unit}");
    }
    let (mut rest, frac) = split_frac(u, 9);
    let mut out = format!("{}{frac}s", rest % 60);
    rest /= 60;
    if rest > 0 {
        out = format!("{}m{out}", rest % 60);
        rest /= 60;
        if rest > 0 {
            out = format!("{rest}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// `v / 10^prec` and its fraction as `.ddd` without trailing zeros.
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let pow = 10u64.pow(prec);
    let frac = v % pow;
    if frac == 0 {
        return (v / pow, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / pow, format!(".{}", digits.trim_end_matches('0')))
}
