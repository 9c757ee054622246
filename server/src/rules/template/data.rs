//! Data templates (notification titles, texts, webhook bodies): JSON data
//! as template values, and the methods Alertmanager's template data has,
//! so that its users' templates carry over: `.Labels.SortedPairs`,
//! `.CommonLabels.Remove .GroupLabels.Names`, `.Alerts.Firing`,
//! `.StartsAt.Format "15:04"`.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use super::funcs::PType;
use super::gotime::{self, Stamp};
use super::value::{List, Object, Value};
use super::{MAX_DEPTH, MAX_OUTPUT};

/// The label Alertmanager's `SortedPairs` puts first.
const ALERTNAME: &str = "alertname";

/// Converts the data of one render. Nesting deeper than the engine's limit
/// is refused: printing and dropping values recurse that deep.
pub(super) fn from_json(v: &serde_json::Value) -> Result<Value, String> {
    convert(v, 0)
}

fn convert(v: &serde_json::Value, level: usize) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::str(s),
        J::Array(_) | J::Object(_) if level >= MAX_DEPTH => {
            return Err(format!("data nested deeper than {MAX_DEPTH} levels"));
        }
        J::Array(items) => {
            let items = items
                .iter()
                .map(|i| convert(i, level + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Value::List(Rc::new(List::new(items, false)))
        }
        J::Object(map) => {
            let entries = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), convert(v, level + 1)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()?;
            Value::Object(Rc::new(Object::new(entries)))
        }
    })
}

/// `.name` on an object: its key, "" when missing (Alertmanager renders
/// with `missingkey=zero`, and its maps hold strings).
pub(super) fn key(o: &Object, name: &str) -> Value {
    o.entries
        .get(name)
        .cloned()
        .unwrap_or_else(|| Value::str(""))
}

/// The parameters of `recv`'s method `name`, None when it has none by
/// that name (a key, or the rule engine's own fields, then apply). As in
/// Go, a method wins over a map key of the same name.
pub(super) fn method_params(recv: &Value, name: &str) -> Option<&'static [PType]> {
    const NONE: &[PType] = &[];
    match (recv, name) {
        (Value::Object(_), "SortedPairs" | "Names" | "Values") => Some(NONE),
        (Value::Object(_), "Remove") => Some(&[PType::StrList]),
        (Value::List(_), "Firing" | "Resolved") => Some(NONE),
        (Value::List(l), "Names" | "Values") if l.pairs => Some(NONE),
        (Value::Str(_), "Unix" | "UnixMilli" | "UTC") => Some(NONE),
        (Value::Str(_) | Value::Time(_), "Format") => Some(&[PType::Str]),
        _ => None,
    }
}

/// Calls a method `method_params` found, with arguments of its types. Also
/// returns the work done (elements or bytes touched), for the budget.
pub(super) fn call_method(
    recv: &Value,
    name: &str,
    args: &[Value],
) -> Result<(Value, u64), String> {
    match recv {
        Value::Object(o) => object_method(o, name, args.first()),
        Value::List(l) => list_method(l, name),
        _ => time_method(recv, name, args.first()),
    }
}

/// For a name `method_params` did not offer (the callers check first).
fn no_method(name: &str) -> String {
    format!("no method {name}")
}

fn object_method(o: &Object, name: &str, arg: Option<&Value>) -> Result<(Value, u64), String> {
    let cost = o.entries.len() as u64;
    let value = match name {
        "SortedPairs" => sorted_pairs(o)?,
        "Names" => strings(sorted(o).map(|(k, _)| Value::str(k))),
        "Values" => strings(sorted(o).map(|(_, v)| v.clone())),
        "Remove" => return Ok(remove(o, arg)),
        _ => return Err(no_method(name)),
    };
    Ok((value, cost))
}

/// Entries in `SortedPairs` order: `alertname` first, then by name.
pub(super) fn sorted(o: &Object) -> impl Iterator<Item = (&String, &Value)> {
    let first = o.entries.get_key_value(ALERTNAME);
    let rest = o.entries.iter().filter(|(k, _)| *k != ALERTNAME);
    first.into_iter().chain(rest)
}

fn strings(items: impl Iterator<Item = Value>) -> Value {
    Value::List(Rc::new(List::new(items.collect(), false)))
}

/// Alertmanager's `Pairs`: `{Name, Value}` objects with their own
/// `.Names` and `.Values`.
fn sorted_pairs(o: &Object) -> Result<Value, String> {
    let pairs: Vec<Value> = sorted(o)
        .map(|(k, v)| {
            let entries = BTreeMap::from([
                ("Name".to_string(), Value::str(k)),
                ("Value".to_string(), v.clone()),
            ]);
            Value::Object(Rc::new(Object::new(entries)))
        })
        .collect();
    let list = List::new(pairs, true);
    if list.depth > MAX_DEPTH {
        return Err(format!("maps nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(Value::List(Rc::new(list)))
}

/// `KV.Remove`: a copy without the given keys (a nil list removes none).
fn remove(o: &Object, keys: Option<&Value>) -> (Value, u64) {
    let keys: HashSet<&str> = match keys {
        Some(Value::List(l)) => l
            .items
            .iter()
            .filter_map(|k| match k {
                Value::Str(s) => Some(&**s),
                _ => None,
            })
            .collect(),
        _ => HashSet::new(),
    };
    let entries: BTreeMap<String, Value> = o
        .entries
        .iter()
        .filter(|(k, _)| !keys.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cost = (o.entries.len() + keys.len()) as u64;
    (Value::Object(Rc::new(Object::new(entries))), cost)
}

fn list_method(l: &List, name: &str) -> Result<(Value, u64), String> {
    let cost = l.items.len() as u64;
    let value = match name {
        "Firing" => with_status(l, "firing"),
        "Resolved" => with_status(l, "resolved"),
        "Names" => pair_fields(l, "Name"),
        "Values" => pair_fields(l, "Value"),
        _ => return Err(no_method(name)),
    };
    Ok((value, cost))
}

/// `Pairs.Names` and `Pairs.Values`: that field of each pair.
fn pair_fields(l: &List, field: &str) -> Value {
    strings(l.items.iter().map(|pair| match pair {
        Value::Object(p) => key(p, field),
        _ => Value::str(""),
    }))
}

/// `Alerts.Firing` and `Alerts.Resolved`: the alerts of that `.Status`.
fn with_status(l: &List, status: &str) -> Value {
    let items = l
        .items
        .iter()
        .filter(|a| match a {
            Value::Object(o) => {
                matches!(o.entries.get("Status"), Some(Value::Str(s)) if &**s == status)
            }
            _ => false,
        })
        .cloned()
        .collect();
    Value::List(Rc::new(List::new(items, false)))
}

fn time_method(recv: &Value, name: &str, layout: Option<&Value>) -> Result<(Value, u64), String> {
    let t = stamp(recv)?;
    Ok(match (name, layout) {
        ("Format", Some(Value::Str(layout))) => {
            let text = format_time(t, layout)?;
            // A unit per layout byte: it is scanned element by element, not copied.
            let cost = layout.len() + text.len() / 64;
            (Value::string(text), cost as u64)
        }
        ("Unix", _) => (Value::Int(t.unix()), 0),
        ("UnixMilli", _) => (Value::Int(t.unix_milli()), 0),
        ("UTC", _) => (Value::string(t.utc_string()), 0),
        _ => return Err(no_method(name)),
    })
}

/// The instant a value stands for: an RFC 3339 string, or a `toTime` result.
pub(super) fn stamp(v: &Value) -> Result<Stamp, String> {
    match v {
        Value::Time(ns) => Ok(Stamp::from_unix_nanos(*ns)),
        Value::Str(s) => gotime::parse_rfc3339(s).ok_or_else(|| {
            let shown: String = s.chars().take(40).collect();
            let more = if shown.len() < s.len() { "..." } else { "" };
            format!("{shown:?}{more} is not an RFC 3339 time")
        }),
        other => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            other.type_name()
        )),
    }
}

/// `Time.Format`, refusing results past the output limit.
pub(super) fn format_time(t: Stamp, layout: &str) -> Result<String, String> {
    let text = gotime::format(t, layout);
    if text.len() > MAX_OUTPUT {
        return Err(format!("result longer than {MAX_OUTPUT} bytes"));
    }
    Ok(text)
}
