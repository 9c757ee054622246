//! The functions a template can call: Go's builtins and Prometheus'.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;

use regex::{Regex, RegexBuilder};

use super::gofmt::{format_float, go_quote, sprint, sprintf, sprintln};
use super::value::{ArgsMap, List, Sample, Value};
use super::{MAX_DEPTH, MAX_OUTPUT, Mode, TemplateQuery, data};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Query,
    CheckOutput,
    First,
    Label,
    Value,
    Strvalue,
    SortByLabel,
    Args,
    SafeHtml,
    Match,
    ReReplaceAll,
    Title,
    ToUpper,
    ToLower,
    StripPort,
    StripDomain,
    GraphLink,
    TableLink,
    Humanize,
    Humanize1024,
    HumanizeDuration,
    HumanizePercentage,
    HumanizeTimestamp,
    ToTime,
    ToDuration,
    ParseDuration,
    ExternalUrl,
    PathPrefix,
    Now,
    // Alertmanager's, in data templates only.
    Join,
    TrimSpace,
    StringSlice,
    Date,
    /// Alertmanager's `title`, which also lower-cases the rest of each word.
    TitleLowerRest,
}

/// What a parameter accepts, as Go's reflection would check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PType {
    /// `interface{}`.
    Any,
    /// `reflect.Value` (the comparison and logic builtins).
    Value,
    Str,
    Sample,
    Vector,
    /// `[]string`: a list of strings (nil too).
    StrList,
}

impl PType {
    pub(super) fn go_name(self) -> &'static str {
        match self {
            PType::Any => "interface {}",
            PType::Value => "reflect.Value",
            PType::Str => "string",
            PType::Sample => "*template.sample",
            PType::Vector => "template.queryResult",
            PType::StrList => "[]string",
        }
    }
}

pub(super) struct Sig {
    pub(super) fixed: &'static [PType],
    pub(super) variadic: Option<PType>,
}

impl Sig {
    pub(super) fn param(&self, i: usize) -> PType {
        self.fixed
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(PType::Any)
    }
}

const fn sig(fixed: &'static [PType], variadic: Option<PType>) -> Sig {
    Sig { fixed, variadic }
}

use PType::{Any, Sample as S, Str, StrList, Value as V, Vector as Q};

const NONE: Sig = sig(&[], None);
const ONE_STR: Sig = sig(&[Str], None);
const ONE_ANY: Sig = sig(&[Any], None);
const VALUES: Sig = sig(&[V], Some(V));
const ANYS: Sig = sig(&[], Some(Any));
const TWO_VALUES: Sig = sig(&[V, V], None);

static TABLE: &[(&str, Func, Sig)] = &[
    ("and", Func::And, VALUES),
    ("or", Func::Or, VALUES),
    ("not", Func::Not, sig(&[V], None)),
    ("len", Func::Len, sig(&[V], None)),
    ("index", Func::Index, VALUES),
    ("slice", Func::Slice, VALUES),
    ("print", Func::Print, ANYS),
    ("printf", Func::Printf, sig(&[Str], Some(Any))),
    ("println", Func::Println, ANYS),
    ("html", Func::Html, ANYS),
    ("js", Func::Js, ANYS),
    ("urlquery", Func::Urlquery, ANYS),
    ("eq", Func::Eq, VALUES),
    ("ne", Func::Ne, TWO_VALUES),
    ("lt", Func::Lt, TWO_VALUES),
    ("le", Func::Le, TWO_VALUES),
    ("gt", Func::Gt, TWO_VALUES),
    ("ge", Func::Ge, TWO_VALUES),
    ("query", Func::Query, ONE_STR),
    ("checkOutput", Func::CheckOutput, sig(&[Str, Str], None)),
    ("first", Func::First, sig(&[Q], None)),
    ("label", Func::Label, sig(&[Str, S], None)),
    ("value", Func::Value, sig(&[S], None)),
    ("strvalue", Func::Strvalue, sig(&[S], None)),
    ("sortByLabel", Func::SortByLabel, sig(&[Str, Q], None)),
    ("args", Func::Args, ANYS),
    ("safeHtml", Func::SafeHtml, ONE_STR),
    ("match", Func::Match, sig(&[Str, Str], None)),
    (
        "reReplaceAll",
        Func::ReReplaceAll,
        sig(&[Str, Str, Str], None),
    ),
    ("title", Func::Title, ONE_STR),
    ("toUpper", Func::ToUpper, ONE_STR),
    ("toLower", Func::ToLower, ONE_STR),
    ("stripPort", Func::StripPort, ONE_STR),
    ("stripDomain", Func::StripDomain, ONE_STR),
    ("graphLink", Func::GraphLink, ONE_STR),
    ("tableLink", Func::TableLink, ONE_STR),
    ("humanize", Func::Humanize, ONE_ANY),
    ("humanize1024", Func::Humanize1024, ONE_ANY),
    ("humanizeDuration", Func::HumanizeDuration, ONE_ANY),
    ("humanizePercentage", Func::HumanizePercentage, ONE_ANY),
    ("humanizeTimestamp", Func::HumanizeTimestamp, ONE_ANY),
    ("toTime", Func::ToTime, ONE_ANY),
    ("toDuration", Func::ToDuration, ONE_ANY),
    ("parseDuration", Func::ParseDuration, ONE_STR),
    ("externalURL", Func::ExternalUrl, NONE),
    ("pathPrefix", Func::PathPrefix, NONE),
    ("now", Func::Now, NONE),
    ("join", Func::Join, sig(&[Str, StrList], None)),
    ("trimSpace", Func::TrimSpace, ONE_STR),
    ("stringSlice", Func::StringSlice, sig(&[], Some(Str))),
    ("date", Func::Date, sig(&[Str, Any], None)),
    ("title", Func::TitleLowerRest, ONE_STR),
];

impl Func {
    /// The function `name` of templates of that mode (two share `title`).
    pub(super) fn lookup(name: &str, mode: Mode) -> Option<Func> {
        TABLE
            .iter()
            .find(|(n, f, _)| *n == name && f.available(mode))
            .map(|(_, f, _)| *f)
    }

    /// Data templates have no query, evaluation instant or rule URL, so the
    /// functions reading them do not exist there (a parse error, found when
    /// the configuration loads); Alertmanager's functions are theirs alone,
    /// so that rule templates stay exactly Prometheus'.
    fn available(self, mode: Mode) -> bool {
        match self {
            Func::Query
            | Func::CheckOutput
            | Func::First
            | Func::Label
            | Func::Value
            | Func::Strvalue
            | Func::SortByLabel
            | Func::ExternalUrl
            | Func::PathPrefix
            | Func::Now
            | Func::Title => mode == Mode::Rule,
            Func::Join
            | Func::TrimSpace
            | Func::StringSlice
            | Func::Date
            | Func::TitleLowerRest => mode == Mode::Data,
            _ => true,
        }
    }

    fn entry(self) -> &'static (&'static str, Func, Sig) {
        // Every variant is in the table; the first row is a harmless fallback.
        TABLE
            .iter()
            .find(|(_, f, _)| *f == self)
            .unwrap_or(&TABLE[0])
    }

    pub(super) fn name(self) -> &'static str {
        self.entry().0
    }

    pub(super) fn sig(self) -> &'static Sig {
        &self.entry().2
    }
}

/// What functions may reach beyond their arguments.
pub(super) struct Ctx<'q> {
    pub(super) query: &'q dyn TemplateQuery,
    pub(super) external_url: Rc<str>,
    pub(super) time_ms: i64,
    regexes: HashMap<String, Regex>,
}

impl<'q> Ctx<'q> {
    pub(super) fn new(
        query: &'q dyn TemplateQuery,
        external_url: Rc<str>,
        time_ms: i64,
    ) -> Ctx<'q> {
        Ctx {
            query,
            external_url,
            time_ms,
            regexes: HashMap::new(),
        }
    }

    /// Compiles once per render: `range` bodies call the same patterns.
    fn regex(&mut self, pattern: &str) -> Result<Regex, String> {
        if let Some(re) = self.regexes.get(pattern) {
            return Ok(re.clone());
        }
        let re = RegexBuilder::new(pattern)
            .size_limit(MAX_OUTPUT)
            .build()
            .map_err(|e| regex_error(pattern, &e))?;
        if self.regexes.len() < 64 {
            self.regexes.insert(pattern.to_string(), re.clone());
        }
        Ok(re)
    }
}

fn regex_error(pattern: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("");
    let reason = last.strip_prefix("error: ").unwrap_or(last);
    format!("error parsing regexp: {reason}: `{pattern}`")
}

type FResult = Result<Value, String>;

/// Calls `f`; and/or are handled by the caller, which short-circuits.
pub(super) fn call(f: Func, args: Vec<Value>, ctx: &mut Ctx<'_>) -> FResult {
    match f {
        Func::And | Func::Or => Ok(args.into_iter().last().unwrap_or(Value::Nil)),
        Func::Not => Ok(Value::Bool(!arg(&args, 0).truth())),
        Func::Len => len(arg(&args, 0)),
        Func::Index => index(arg(&args, 0), args.get(1..).unwrap_or(&[])),
        Func::Slice => slice(arg(&args, 0), args.get(1..).unwrap_or(&[])),
        Func::Eq | Func::Ne | Func::Lt | Func::Le | Func::Gt | Func::Ge => compare(f, &args),
        Func::Print | Func::Printf | Func::Println => print(f, &args),
        Func::Html | Func::Js | Func::Urlquery => escape(f, &args),
        _ => prometheus(f, args, ctx),
    }
}

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Nil)
}

fn str_arg(args: &[Value], i: usize) -> &str {
    match args.get(i) {
        Some(Value::Str(s)) => s,
        _ => "",
    }
}

fn too_long() -> String {
    format!("result longer than {MAX_OUTPUT} bytes")
}

fn bounded(s: String) -> FResult {
    if s.len() > MAX_OUTPUT {
        return Err(too_long());
    }
    Ok(Value::string(s))
}

fn print(f: Func, args: &[Value]) -> FResult {
    let out = match f {
        Func::Print => sprint(args, MAX_OUTPUT),
        Func::Println => sprintln(args, MAX_OUTPUT),
        _ => sprintf(str_arg(args, 0), args.get(1..).unwrap_or(&[]), MAX_OUTPUT),
    };
    out.map(Value::string).ok_or_else(too_long)
}

/// Go's `evalArgs`: one string as is, anything else through `fmt.Sprint`
/// with missing values shown as `<no value>`.
fn eval_args(args: &[Value]) -> Result<String, String> {
    if let [Value::Str(s)] = args {
        return Ok(s.to_string());
    }
    let shown: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    sprint(&shown, MAX_OUTPUT).ok_or_else(too_long)
}

fn escape(f: Func, args: &[Value]) -> FResult {
    let s = eval_args(args)?;
    bounded(match f {
        Func::Html => html_escape(&s),
        Func::Js => js_escape(&s),
        _ => query_escape(&s),
    })
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || super::gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(super) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn len(v: &Value) -> FResult {
    let n = match v {
        Value::Str(s) => s.len(),
        Value::Labels(m) => m.len(),
        Value::Map(m) => m.len(),
        Value::Vector(v) => v.len(),
        Value::Object(o) => o.entries.len(),
        Value::List(l) => l.items.len(),
        Value::Nil => return Err("len of nil pointer".to_string()),
        Value::Sample(_) => return Err("len of type template.sample".to_string()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

/// An index within `0..len` (`0..=len` when `inclusive`, for slicing).
fn index_arg(ix: &Value, len: usize, inclusive: bool) -> Result<usize, String> {
    let i = match ix {
        Value::Int(i) => *i,
        Value::Nil => return Err("cannot index slice/array with nil".to_string()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    match usize::try_from(i) {
        Ok(u) if u < len || (inclusive && u == len) => Ok(u),
        _ => Err(format!("index out of range: {i}")),
    }
}

fn map_key(ix: &Value) -> Result<&str, String> {
    match ix {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "value has type {}; should be string",
            other.type_name()
        )),
    }
}

fn index(item: &Value, idxs: &[Value]) -> FResult {
    let mut item = item.clone();
    for ix in idxs {
        item = match &item {
            Value::Nil => return Err("index of untyped nil".to_string()),
            Value::Vector(v) => Value::Sample(v[index_arg(ix, v.len(), false)?].clone()),
            Value::Str(s) => Value::Int(i64::from(s.as_bytes()[index_arg(ix, s.len(), false)?])),
            Value::Labels(m) => Value::str(m.get(map_key(ix)?).map_or("", String::as_str)),
            Value::Map(m) => m.get(map_key(ix)?).cloned().unwrap_or(Value::Nil),
            Value::List(l) => l.items[index_arg(ix, l.items.len(), false)?].clone(),
            Value::Object(o) => data::key(o, map_key(ix)?),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(item: &Value, idxs: &[Value]) -> FResult {
    let len = match item {
        Value::Nil => return Err("slice of untyped nil".to_string()),
        Value::Str(_) if idxs.len() == 3 => return Err("cannot 3-index slice a string".to_string()),
        Value::Str(s) => s.len(),
        Value::Vector(v) => v.len(),
        Value::List(l) => l.items.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()));
    }
    let mut bounds = [0, len, len];
    for (i, ix) in idxs.iter().enumerate() {
        bounds[i] = index_arg(ix, len, true)?;
    }
    for pair in bounds[..idxs.len().max(2)].windows(2) {
        if pair[0] > pair[1] {
            return Err(format!("invalid slice index: {} > {}", pair[0], pair[1]));
        }
    }
    let (lo, hi) = (bounds[0], bounds[1]);
    Ok(match item {
        Value::Str(s) => Value::string(String::from_utf8_lossy(&s.as_bytes()[lo..hi]).into_owned()),
        Value::Vector(v) => Value::Vector(Rc::new(v[lo..hi].to_vec())),
        Value::List(l) => Value::List(Rc::new(List::new(l.items[lo..hi].to_vec(), l.pairs))),
        _ => Value::Nil,
    })
}

/// The comparable core of a value: Go's basic kinds.
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn basic(v: &Value) -> Option<Basic<'_>> {
    match v {
        Value::Bool(b) => Some(Basic::Bool(*b)),
        Value::Int(i) | Value::Duration(i) => Some(Basic::Int(*i)),
        Value::Float(f) => Some(Basic::Float(*f)),
        Value::Str(s) => Some(Basic::Str(s)),
        _ => None,
    }
}

const INCOMPATIBLE: &str = "incompatible types for comparison";
const BAD_TYPE: &str = "invalid type for comparison";

/// Unlike Go, ints and floats compare with each other: `gt $value 80`
/// is what rule authors write.
fn eq2(a: &Value, b: &Value) -> Result<bool, String> {
    match (basic(a), basic(b)) {
        (Some(Basic::Int(x)), Some(Basic::Int(y))) => Ok(x == y),
        (Some(Basic::Int(x)), Some(Basic::Float(y))) => Ok(x as f64 == y),
        (Some(Basic::Float(x)), Some(Basic::Int(y))) => Ok(x == y as f64),
        (Some(Basic::Float(x)), Some(Basic::Float(y))) => Ok(x == y),
        (Some(Basic::Str(x)), Some(Basic::Str(y))) => Ok(x == y),
        (Some(Basic::Bool(x)), Some(Basic::Bool(y))) => Ok(x == y),
        (Some(_), Some(_)) => Err(INCOMPATIBLE.to_string()),
        _ => match (a, b) {
            (Value::Nil, _) | (_, Value::Nil) => Ok(matches!((a, b), (Value::Nil, Value::Nil))),
            (Value::Sample(x), Value::Sample(y)) => Ok(Rc::ptr_eq(x, y)),
            (Value::Time(x), Value::Time(y)) => Ok(x == y),
            (x, y) if x.type_name() == y.type_name() => {
                Err(format!("non-comparable type {}", x.type_name()))
            }
            _ => Err(INCOMPATIBLE.to_string()),
        },
    }
}

fn lt2(a: &Value, b: &Value) -> Result<bool, String> {
    let (Some(x), Some(y)) = (basic(a), basic(b)) else {
        return Err(BAD_TYPE.to_string());
    };
    match (x, y) {
        (Basic::Int(x), Basic::Int(y)) => Ok(x < y),
        (Basic::Int(x), Basic::Float(y)) => Ok((x as f64) < y),
        (Basic::Float(x), Basic::Int(y)) => Ok(x < y as f64),
        (Basic::Float(x), Basic::Float(y)) => Ok(x < y),
        (Basic::Str(x), Basic::Str(y)) => Ok(x < y),
        (Basic::Bool(_), Basic::Bool(_)) => Err(BAD_TYPE.to_string()),
        _ => Err(INCOMPATIBLE.to_string()),
    }
}

fn compare(f: Func, args: &[Value]) -> FResult {
    let a = arg(args, 0);
    let b = arg(args, 1);
    let result = match f {
        Func::Eq => {
            if args.len() < 2 {
                return Err("missing argument for comparison".to_string());
            }
            let mut any = false;
            for other in &args[1..] {
                if eq2(a, other)? {
                    any = true;
                    break;
                }
            }
            any
        }
        Func::Ne => !eq2(a, b)?,
        Func::Lt => lt2(a, b)?,
        Func::Le => lt2(a, b)? || eq2(a, b)?,
        Func::Gt => !(lt2(a, b)? || eq2(a, b)?),
        _ => !lt2(a, b)?,
    };
    Ok(Value::Bool(result))
}

fn prometheus(f: Func, args: Vec<Value>, ctx: &mut Ctx<'_>) -> FResult {
    match f {
        Func::Query => query(str_arg(&args, 0), ctx),
        Func::CheckOutput => ctx
            .query
            .check_output(str_arg(&args, 0), str_arg(&args, 1))
            .map(Value::string),
        Func::First => match arg(&args, 0) {
            Value::Vector(v) if !v.is_empty() => Ok(Value::Sample(v[0].clone())),
            _ => Err("first() called on vector with no elements".to_string()),
        },
        Func::Label => Ok(Value::str(sample_label(arg(&args, 1), str_arg(&args, 0))?)),
        Func::Strvalue => Ok(Value::str(sample_label(arg(&args, 0), "__value__")?)),
        Func::Value => match arg(&args, 0) {
            Value::Sample(s) => Ok(Value::Float(s.value)),
            _ => Err(NIL_SAMPLE.to_string()),
        },
        Func::SortByLabel => Ok(sort_by_label(str_arg(&args, 0), arg(&args, 1))),
        Func::Args => args_map(args),
        Func::Join => join(str_arg(&args, 0), arg(&args, 1)),
        Func::StringSlice => Ok(Value::List(Rc::new(List::new(args, false)))),
        Func::Date => {
            let t = data::stamp(arg(&args, 1))?;
            data::format_time(t, str_arg(&args, 0)).map(Value::string)
        }
        Func::SafeHtml => Ok(arg(&args, 0).clone()),
        Func::Match => Ok(Value::Bool(
            ctx.regex(str_arg(&args, 0))?.is_match(str_arg(&args, 1)),
        )),
        Func::ReReplaceAll => {
            let re = ctx
                .regex(str_arg(&args, 0))
                .map_err(|e| format!("regexp: Compile: {e}"))?;
            re_replace_all(&re, str_arg(&args, 1), str_arg(&args, 2))
        }
        _ => strings_and_numbers(f, &args, ctx),
    }
}

fn strings_and_numbers(f: Func, args: &[Value], ctx: &Ctx<'_>) -> FResult {
    let s = str_arg(args, 0);
    let text = match f {
        Func::Title => title(s, false),
        Func::TitleLowerRest => title(s, true),
        Func::ToUpper => map_chars(s, char::to_uppercase),
        Func::ToLower => map_chars(s, char::to_lowercase),
        Func::StripPort => split_host_port(s).map_or(s.to_string(), |(h, _)| h.to_string()),
        Func::StripDomain => strip_domain(s),
        Func::GraphLink => format!("/graph?g0.expr={}&g0.tab=0", query_escape(s)),
        Func::TableLink => format!("/graph?g0.expr={}&g0.tab=1", query_escape(s)),
        Func::ExternalUrl => ctx.external_url.to_string(),
        Func::PathPrefix => url_path(&ctx.external_url).to_string(),
        Func::TrimSpace => s.trim().to_string(),
        Func::ParseDuration => return parse_duration(s).map(|ns| Value::Float(ns as f64 / 1e9)),
        Func::Now => return Ok(Value::Float(ctx.time_ms as f64 / 1000.0)),
        _ => return humanize_family(f, arg(args, 0)),
    };
    bounded(text)
}

fn humanize_family(f: Func, v: &Value) -> FResult {
    let x = to_float(v)?;
    let text = match f {
        Func::Humanize => humanize(x),
        Func::Humanize1024 => humanize_1024(x),
        Func::HumanizeDuration => humanize_duration(x),
        Func::HumanizePercentage => format!("{}%", g4(x * 100.0)),
        Func::HumanizeTimestamp if !x.is_finite() => g4(x),
        Func::HumanizeTimestamp => super::value::go_time(float_to_ns(x, "timestamp")?),
        Func::ToTime if !x.is_finite() => return Err("value is NaN or Inf".to_string()),
        Func::ToTime => return Ok(Value::Time(float_to_ns(x, "timestamp")?)),
        _ if !x.is_finite() => return Err("value is NaN or Inf".to_string()),
        _ => return Ok(Value::Duration(float_to_ns(x, "duration")?)),
    };
    Ok(Value::string(text))
}

const NIL_SAMPLE: &str = "nil sample";

fn sample_label<'v>(v: &'v Value, name: &str) -> Result<&'v str, String> {
    match v {
        Value::Sample(s) => Ok(s.labels.get(name).map_or("", String::as_str)),
        _ => Err(NIL_SAMPLE.to_string()),
    }
}

fn query(expr: &str, ctx: &Ctx<'_>) -> FResult {
    let samples = ctx.query.query(expr)?;
    let vector = samples
        .into_iter()
        .map(|s| {
            Rc::new(Sample {
                labels: Rc::new(s.labels),
                value: s.value,
            })
        })
        .collect();
    Ok(Value::Vector(Rc::new(vector)))
}

fn sort_by_label(label: &str, v: &Value) -> Value {
    let Value::Vector(samples) = v else {
        return Value::Vector(Rc::new(Vec::new()));
    };
    let mut sorted = samples.to_vec();
    let key = |s: &Rc<Sample>| s.labels.get(label).cloned().unwrap_or_default();
    sorted.sort_by_key(key);
    Value::Vector(Rc::new(sorted))
}

fn args_map(args: Vec<Value>) -> FResult {
    let depth = 1 + args.iter().map(Value::depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(format!("maps nested deeper than {MAX_DEPTH} levels"));
    }
    let entries: BTreeMap<String, Value> = args
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v))
        .collect();
    Ok(Value::Map(Rc::new(ArgsMap { entries, depth })))
}

/// Alertmanager's `join SEP LIST` (separator first, for pipelines); the
/// list's type was checked, so it holds strings or is nil.
fn join(sep: &str, list: &Value) -> FResult {
    let Value::List(l) = list else {
        return Ok(Value::str(""));
    };
    let mut out = String::new();
    for (i, item) in l.items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        if let Value::Str(s) = item {
            out.push_str(s);
        }
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
    }
    Ok(Value::string(out))
}

/// `Regexp.ReplaceAllString`, stopping before the result grows too long.
fn re_replace_all(re: &Regex, repl: &str, text: &str) -> FResult {
    let mut out = String::new();
    let mut last = 0;
    let refs = repl.matches('$').count();
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        // Every `$n` expands to at most the whole match: check before building.
        let bound = repl.len() + refs.saturating_mul(m.len()) + (m.start() - last);
        if out.len().saturating_add(bound) > MAX_OUTPUT {
            return Err(too_long());
        }
        out.push_str(&text[last..m.start()]);
        caps.expand(repl, &mut out);
        last = m.end();
    }
    out.push_str(&text[last..]);
    bounded(out)
}

/// Go's simple per-rune case mapping (no `ß` to `SS`).
fn map_chars<I: Iterator<Item = char>>(s: &str, f: impl Fn(char) -> I) -> String {
    s.chars()
        .map(|c| {
            let mut mapped = f(c);
            match (mapped.next(), mapped.next()) {
                (Some(m), None) => m,
                _ => c,
            }
        })
        .collect()
}

/// Upper-cases the first letter of each word and leaves the rest, like
/// `cases.Title(language.AmericanEnglish, cases.NoLower)` (Prometheus'),
/// or lower-cases the rest, like Alertmanager's `cases.Title` without
/// `NoLower`.
fn title(s: &str, lower_rest: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if !in_word && c.is_alphabetic() {
            out.push_str(&map_chars(&c.to_string(), char::to_uppercase));
        } else if lower_rest {
            out.push_str(&map_chars(&c.to_string(), char::to_lowercase));
        } else {
            out.push(c);
        }
        in_word = c.is_alphanumeric() || (in_word && matches!(c, '_' | '\'' | '’' | '.' | ':'));
    }
    out
}

/// Go's `net.SplitHostPort`; None where Go returns an error.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, inner_start, inner_end) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[inner_start..].contains('[') || hp[inner_end..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    match (port.is_empty(), host.contains(':')) {
        (true, _) => host.to_string(),
        (false, true) => format!("[{host}]:{port}"),
        (false, false) => format!("{host}:{port}"),
    }
}

/// The path of a URL (what Go's `url.URL.Path` holds, undecoded).
fn url_path(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find(['/', '?', '#']).map_or("", |j| &after[j..])
        }
        None => url,
    };
    rest.find(['?', '#']).map_or(rest, |j| &rest[..j])
}

/// Prometheus' `convertToFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(ns) => Ok(*ns as f64 / 1e9),
        Value::Str(s) => parse_go_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input.
pub(super) fn parse_go_float(s: &str) -> Result<f64, String> {
    let bad = s.contains('_') || s.starts_with(|c: char| c.is_whitespace());
    match s.parse::<f64>() {
        Ok(f) if !bad => Ok(f),
        _ => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s, false)
        )),
    }
}

fn g4(x: f64) -> String {
    format_float(x, b'g', Some(4))
}

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let (mut v, mut prefix) = (v, "");
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let (mut v, mut prefix) = (v, "");
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let secs = v as i64;
        let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        return match (d, h, m) {
            (0, 0, 0) => format!("{sign}{}s", g4(v)),
            (0, 0, _) => format!("{sign}{m}m {s}s"),
            (0, _, _) => format!("{sign}{h}h {m}m {s}s"),
            _ => format!("{sign}{d}d {h}h {m}m {s}s"),
        };
    }
    let (mut v, mut prefix) = (v, "");
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Seconds to nanoseconds, refusing what int64 cannot hold.
fn float_to_ns(v: f64, what: &str) -> Result<i64, String> {
    let ns = v * 1e9;
    // 2^63: the first float past int64's range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&ns) {
        let shown = format_float(v, b'g', None);
        return Err(format!(
            "{shown} cannot be represented as a nanoseconds {what} since it overflows int64"
        ));
    }
    let ns = ns as i64;
    // Prometheus keeps timestamps to the millisecond.
    Ok(if what == "timestamp" {
        ns / 1_000_000 * 1_000_000
    } else {
        ns
    })
}

/// Prometheus' `model.ParseDuration`: `1h30m`, `5m`, `1y2w`, `0`; in ns.
fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000_000_000),
        ("w", 7 * 86_400_000_000_000),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s, false));
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            if unit.is_empty() {
                return Err(invalid());
            }
            return Err(format!(
                "unknown unit {} in duration {}",
                go_quote(unit, false),
                go_quote(s, false)
            ));
        };
        if pos < last_unit {
            return Err(invalid());
        }
        last_unit = pos + 1;
        let add = n.checked_mul(UNITS[pos].1).ok_or("duration out of range")?;
        total = total.checked_add(add).ok_or("duration out of range")?;
    }
    i64::try_from(total).map_err(|_| "duration out of range".to_string())
}
