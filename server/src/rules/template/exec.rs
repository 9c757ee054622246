//! Walks the syntax tree against the alert's data, as Go's exec.go does.

use std::rc::Rc;

use super::data;
use super::funcs::{self, Ctx, Func, PType};
use super::gofmt::sprint_value;
use super::parse::{Command, Control, Node, Number, OpKind, Operand, PRELUDE_VARS, Pipeline, Span};
use super::value::{Root, Value};
use super::{
    MAX_DEPTH, MAX_OUTPUT, MAX_RANGE_ITERATIONS, MAX_WORK, Mode, NoQuery, TemplateData,
    TemplateError, TemplateQuery, line_col,
};

struct ExecError {
    span: Span,
    msg: String,
}

type R<T> = Result<T, ExecError>;

fn fail<T>(span: Span, msg: impl Into<String>) -> R<T> {
    Err(ExecError {
        span,
        msg: msg.into(),
    })
}

/// What a list of nodes asks of the enclosing `range`.
#[derive(PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Renders a rule template: `.` is the alert, with Prometheus' variables.
pub(super) fn run<'t>(
    nodes: &'t [Node],
    src: &'t str,
    data: &TemplateData<'_>,
    query: &dyn TemplateQuery,
) -> Result<String, TemplateError> {
    let root = Rc::new(Root {
        labels: Rc::new(data.labels.clone()),
        external_labels: Rc::new(data.external_labels.clone()),
        external_url: Rc::from(data.external_url),
        value: data.value,
    });
    let prelude = [
        Value::Root(root.clone()),
        Value::Labels(root.labels.clone()),
        Value::Labels(root.external_labels.clone()),
        Value::Str(root.external_url.clone()),
        Value::Float(root.value),
    ];
    let state = State {
        src,
        mode: Mode::Rule,
        ctx: Ctx::new(query, root.external_url.clone(), data.time_ms),
        vars: PRELUDE_VARS.iter().copied().zip(prelude).collect(),
        out: String::new(),
        iterations: 0,
        work: 0,
        depth: 0,
    };
    state.render(&Value::Root(root), nodes)
}

/// Renders a data template: `.` and `$` are the JSON data.
pub(super) fn run_data(
    nodes: &[Node],
    src: &str,
    data: &serde_json::Value,
) -> Result<String, TemplateError> {
    let root = data::from_json(data).map_err(|msg| TemplateError::Exec {
        message: format!("template: {msg}"),
    })?;
    let state = State {
        src,
        mode: Mode::Data,
        // The functions that would reach these do not exist in data templates.
        ctx: Ctx::new(&NoQuery, Rc::from(""), 0),
        vars: vec![("$", root.clone())],
        out: String::new(),
        iterations: 0,
        work: 0,
        depth: 0,
    };
    state.render(&root, nodes)
}

fn exec_error(src: &str, e: ExecError) -> TemplateError {
    let (line, col) = line_col(src, e.span.start);
    let text = src.get(e.span.start..e.span.end).unwrap_or("");
    let context = if text.chars().count() > 20 {
        format!("{}...", text.chars().take(20).collect::<String>())
    } else {
        text.to_string()
    };
    TemplateError::Exec {
        message: format!(
            "template: {line}:{col}: executing at <{context}>: {}",
            e.msg
        ),
    }
}

struct State<'t, 'q> {
    src: &'t str,
    mode: Mode,
    ctx: Ctx<'q>,
    vars: Vec<(&'t str, Value)>,
    out: String,
    iterations: usize,
    work: u64,
    depth: usize,
}

impl<'t> State<'t, '_> {
    fn render(mut self, dot: &Value, nodes: &'t [Node]) -> Result<String, TemplateError> {
        match self.walk(dot, nodes) {
            Ok(_) => Ok(self.out),
            Err(e) => Err(exec_error(self.src, e)),
        }
    }

    fn walk(&mut self, dot: &Value, nodes: &'t [Node]) -> R<Flow> {
        for node in nodes {
            let flow = match node {
                Node::Text(text, span) => {
                    self.write(text, *span)?;
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print(&v, pipe.span)?;
                    }
                    Flow::Normal
                }
                Node::If(c) => self.walk_if_with(dot, c, false)?,
                Node::With(c) => self.walk_if_with(dot, c, true)?,
                Node::Range(c) => self.walk_range(dot, c)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn charge(&mut self, units: u64, span: Span) -> R<()> {
        self.work = self.work.saturating_add(units);
        if self.work > MAX_WORK {
            return fail(span, "template needs too much work to render");
        }
        Ok(())
    }

    fn write(&mut self, s: &str, span: Span) -> R<()> {
        self.charge(1, span)?;
        if self.out.len() + s.len() > MAX_OUTPUT {
            return fail(span, format!("output longer than {MAX_OUTPUT} bytes"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn print(&mut self, v: &Value, span: Span) -> R<()> {
        match v {
            Value::Nil => self.write("<no value>", span),
            Value::Str(s) => self.write(s, span),
            other => match sprint_value(other, MAX_OUTPUT) {
                Some(s) => self.write(&s, span),
                None => fail(span, format!("output longer than {MAX_OUTPUT} bytes")),
            },
        }
    }

    fn enter(&mut self, span: Span) -> R<()> {
        self.depth += 1;
        if self.depth > 2 * MAX_DEPTH {
            return fail(span, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn walk_if_with(&mut self, dot: &Value, c: &'t Control, with: bool) -> R<Flow> {
        self.enter(c.pipe.span)?;
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &c.pipe)?;
        let flow = if v.truth() {
            self.walk(if with { &v } else { dot }, &c.list)?
        } else if let Some(list) = &c.else_list {
            self.walk(dot, list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Value, c: &'t Control) -> R<Flow> {
        self.enter(c.pipe.span)?;
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let body_mark = self.vars.len();
        let pairs = range_pairs(&val, c)?;
        if matches!(val, Value::Object(_) | Value::List(_)) {
            // Copying the elements is work even when a `break` ends the loop at once.
            self.charge(pairs.len() as u64, c.pipe.span)?;
        }
        let mut flow = Flow::Normal;
        if pairs.is_empty() {
            // A `break` in the else branch belongs to an enclosing range.
            if let Some(list) = &c.else_list {
                flow = self.walk(dot, list)?;
            }
        }
        for (index, elem) in pairs {
            if self.one_iteration(c, body_mark, index, elem)? == Flow::Break {
                break;
            }
        }
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn one_iteration(&mut self, c: &'t Control, mark: usize, index: Value, elem: Value) -> R<Flow> {
        self.iterations += 1;
        if self.iterations > MAX_RANGE_ITERATIONS {
            let msg = format!("more than {MAX_RANGE_ITERATIONS} range iterations");
            return fail(c.pipe.span, msg);
        }
        let pipe = &c.pipe;
        match (pipe.decl.as_slice(), pipe.is_assign) {
            ([], _) => {}
            ([one], true) => self.set_var(one, elem.clone(), pipe.span)?,
            ([i, v, ..], true) => {
                self.set_var(i, index, pipe.span)?;
                self.set_var(v, elem.clone(), pipe.span)?;
            }
            ([_], false) => self.set_top_var(1, elem.clone()),
            (_, false) => {
                self.set_top_var(1, elem.clone());
                self.set_top_var(2, index);
            }
        }
        let flow = self.walk(&elem, &c.list)?;
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    fn set_var(&mut self, name: &str, v: Value, span: Span) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => fail(span, format!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str, span: Span) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => fail(span, format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipeline) -> R<Value> {
        self.enter(pipe.span)?;
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone(), pipe.span)?;
            } else {
                self.vars.push((name.as_str(), value.clone()));
            }
        }
        self.depth -= 1;
        Ok(value)
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, fin: Option<Value>) -> R<Value> {
        self.charge(1, cmd.span)?;
        let Some(first) = cmd.args.first() else {
            return fail(cmd.span, "empty command");
        };
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match &first.kind {
            OpKind::Func(f) => return self.eval_function(dot, *f, cmd.span, &cmd.args[1..], fin),
            OpKind::Field(path) => {
                return self.eval_field_command(dot, dot.clone(), path, cmd, fin);
            }
            OpKind::Chain(inner, path) => {
                let recv = self.eval_chain_head(dot, inner)?;
                return self.eval_field_command(dot, recv, path, cmd, fin);
            }
            OpKind::Var(name, path) if !path.is_empty() => {
                let recv = self.var_value(name, first.span)?;
                return self.eval_field_command(dot, recv, path, cmd, fin);
            }
            _ => {}
        }
        if let OpKind::Nil = first.kind {
            return fail(first.span, "nil is not a command");
        }
        if has_args {
            let text = self.text(first.span);
            return fail(
                first.span,
                format!("can't give argument to non-function {text}"),
            );
        }
        self.eval_arg(dot, first, PType::Any, first.span)
    }

    /// A command starting with a field chain (`.a.b`, `$x.a.b`, `(...).a.b`):
    /// the command's other words are arguments of the last name, which
    /// must then be a method (only data values have methods with arguments:
    /// `.CommonLabels.Remove .GroupLabels.Names`, `.StartsAt.Format "15:04"`).
    fn eval_field_command(
        &mut self,
        dot: &Value,
        recv: Value,
        path: &'t [String],
        cmd: &'t Command,
        fin: Option<Value>,
    ) -> R<Value> {
        let (head, args) = match cmd.args.split_first() {
            Some((head, args)) => (head.span, args),
            None => (cmd.span, &[][..]),
        };
        let has_args = !args.is_empty() || fin.is_some();
        let Some((name, init)) = path.split_last().filter(|_| has_args) else {
            return self.eval_fields(recv, path, head, false);
        };
        let recv = self.eval_fields(recv, init, head, false)?;
        let params = match self.method_params(&recv, name) {
            Some(params) => params,
            None => return self.eval_fields(recv, std::slice::from_ref(name), head, true),
        };
        let n_in = args.len() + usize::from(fin.is_some());
        if n_in != params.len() {
            let want = params.len();
            return fail(
                cmd.span,
                format!("wrong number of args for {name}: want {want} got {n_in}"),
            );
        }
        let mut vals = Vec::with_capacity(n_in);
        for (a, ty) in args.iter().zip(params) {
            vals.push(self.eval_arg(dot, a, *ty, cmd.span)?);
        }
        if let (Some(v), Some(ty)) = (fin, params.last()) {
            vals.push(check_type(v, *ty, cmd.span)?);
        }
        self.call_method(&recv, name, &vals, cmd.span)
    }

    /// Methods exist on data values only, so rule templates keep Go's
    /// errors for fields called with arguments.
    fn method_params(&self, recv: &Value, name: &str) -> Option<&'static [PType]> {
        match self.mode {
            Mode::Data => data::method_params(recv, name),
            Mode::Rule => None,
        }
    }

    fn call_method(&mut self, recv: &Value, name: &str, args: &[Value], span: Span) -> R<Value> {
        let (value, cost) = match data::call_method(recv, name, args) {
            Ok(found) => found,
            Err(msg) => return fail(span, format!("error calling {name}: {msg}")),
        };
        self.charge(cost, span)?;
        Ok(value)
    }

    fn eval_chain_head(&mut self, dot: &Value, inner: &'t Operand) -> R<Value> {
        if let OpKind::Nil = inner.kind {
            return fail(inner.span, "indirection through explicit nil");
        }
        self.eval_arg(dot, inner, PType::Any, inner.span)
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        f: Func,
        span: Span,
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        let sig = f.sig();
        let n_in = args.len() + usize::from(fin.is_some());
        let fixed = sig.fixed.len();
        let name = f.name();
        if sig.variadic.is_some() && n_in < fixed {
            return fail(
                span,
                format!("wrong number of args for {name}: want at least {fixed} got {n_in}"),
            );
        }
        if sig.variadic.is_none() && n_in != fixed {
            return fail(
                span,
                format!("wrong number of args for {name}: want {fixed} got {n_in}"),
            );
        }
        if matches!(f, Func::And | Func::Or) {
            return self.and_or(dot, f == Func::Or, args, fin, span);
        }
        let mut vals = Vec::with_capacity(n_in);
        for (i, a) in args.iter().enumerate() {
            vals.push(self.eval_arg(dot, a, sig.param(i), span)?);
        }
        if let Some(v) = fin {
            vals.push(check_type(v, sig.param(n_in - 1), span)?);
        }
        let bytes_in: usize = vals.iter().map(|v| weight(f, v)).sum();
        let result = match funcs::call(f, vals, &mut self.ctx) {
            Ok(v) => v,
            Err(msg) => return fail(span, format!("error calling {name}: {msg}")),
        };
        self.charge(((bytes_in + str_len(&result)) / 64) as u64, span)?;
        Ok(result)
    }

    /// Go's short-circuit: the first decisive operand, else the last.
    fn and_or(
        &mut self,
        dot: &Value,
        is_or: bool,
        args: &'t [Operand],
        fin: Option<Value>,
        span: Span,
    ) -> R<Value> {
        let mut v = Value::Nil;
        for a in args {
            v = self.eval_arg(dot, a, PType::Value, span)?;
            if v.truth() == is_or {
                return Ok(v);
            }
        }
        Ok(fin.unwrap_or(v))
    }

    /// Evaluates an argument; type errors are reported `at` the call.
    fn eval_arg(&mut self, dot: &Value, op: &'t Operand, ty: PType, at: Span) -> R<Value> {
        let v = match &op.kind {
            OpKind::Dot => dot.clone(),
            OpKind::Field(path) => self.eval_fields(dot.clone(), path, op.span, false)?,
            OpKind::Var(name, path) => {
                let v = self.var_value(name, op.span)?;
                self.eval_fields(v, path, op.span, false)?
            }
            OpKind::Pipe(p) => self.eval_pipeline(dot, p)?,
            OpKind::Func(f) => self.eval_function(dot, *f, op.span, &[], None)?,
            OpKind::Chain(inner, path) => {
                let recv = self.eval_chain_head(dot, inner)?;
                self.eval_fields(recv, path, op.span, false)?
            }
            OpKind::Nil => return nil_arg(ty, at),
            OpKind::Bool(b) => literal(Value::Bool(*b), ty, at)?,
            OpKind::Str(s) => literal(Value::str(s), ty, at)?,
            OpKind::Number(n) => literal(self.number_value(*n, op.span)?, ty, at)?,
        };
        check_type(v, ty, at)
    }

    fn text(&self, span: Span) -> &'t str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    fn number_value(&self, n: Number, span: Span) -> R<Value> {
        match n {
            Number::Int(i) => Ok(Value::Int(i)),
            Number::Float(f) => Ok(Value::Float(f)),
            Number::Overflow => fail(span, format!("{} overflows int", self.text(span))),
        }
    }

    fn eval_fields(
        &mut self,
        recv: Value,
        path: &[String],
        span: Span,
        has_args: bool,
    ) -> R<Value> {
        let mut v = recv;
        for (i, name) in path.iter().enumerate() {
            let with_args = has_args && i + 1 == path.len();
            v = self.field(&v, name, with_args, span)?;
        }
        Ok(v)
    }

    /// One `.name`: a data value's method without arguments, else a field.
    fn field(&mut self, recv: &Value, name: &str, has_args: bool, span: Span) -> R<Value> {
        match self.method_params(recv, name) {
            Some([]) => self.call_method(recv, name, &[], span),
            Some(params) => {
                let want = params.len();
                fail(
                    span,
                    format!("wrong number of args for {name}: want {want} got 0"),
                )
            }
            None => field(recv, name, has_args).or_else(|msg| fail(span, msg)),
        }
    }
}

/// The (index, element) pairs `range` visits; integers count up from 0.
/// Counts past the iteration limit are cut short: the loop fails there anyway.
fn range_pairs(val: &Value, c: &Control) -> R<Vec<(Value, Value)>> {
    Ok(match val {
        Value::Vector(samples) => samples
            .iter()
            .enumerate()
            .map(|(i, s)| (Value::Int(i as i64), Value::Sample(s.clone())))
            .collect(),
        Value::Labels(m) => m
            .iter()
            .map(|(k, v)| (Value::str(k), Value::str(v)))
            .collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (Value::str(k), v.clone())).collect(),
        Value::Object(o) => o
            .entries
            .iter()
            .map(|(k, v)| (Value::str(k), v.clone()))
            .collect(),
        Value::List(l) => l
            .items
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::Int(i as i64), v.clone()))
            .collect(),
        Value::Int(n) if c.pipe.decl.len() > 1 => {
            let msg = format!("can't use {n} to iterate over more than one variable");
            return fail(c.pipe.span, msg);
        }
        Value::Int(n) => {
            let count = (*n).clamp(0, MAX_RANGE_ITERATIONS as i64 + 1);
            (0..count).map(|i| (Value::Int(i), Value::Int(i))).collect()
        }
        Value::Nil => Vec::new(),
        other => {
            let shown = sprint_value(other, 200).unwrap_or_default();
            return fail(c.pipe.span, format!("range can't iterate over {shown}"));
        }
    })
}

fn str_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        _ => 0,
    }
}

/// What an argument costs a function, in bytes of the work budget: its
/// length for a string, and 64 per element of the lists `join` and
/// `slice` walk; `date` scans its layout element by element, a unit a byte.
fn weight(f: Func, v: &Value) -> usize {
    match v {
        Value::Str(s) if f == Func::Date => s.len().saturating_mul(64),
        Value::Str(s) => s.len(),
        Value::List(l) if matches!(f, Func::Join | Func::Slice) => l.items.len().saturating_mul(64),
        _ => 0,
    }
}

/// Reads `recv.name`: struct fields, map keys, and a few Go methods.
fn field(recv: &Value, name: &str, has_args: bool) -> Result<Value, String> {
    let no_args = |v: Value| {
        if has_args {
            Err(format!(
                "{name} has arguments but cannot be invoked as function"
            ))
        } else {
            Ok(v)
        }
    };
    let missing = || format!("can't evaluate field {name} in type {}", recv.type_name());
    match recv {
        Value::Nil => Ok(Value::Nil),
        Value::Root(r) => match name {
            "Labels" => no_args(Value::Labels(r.labels.clone())),
            "ExternalLabels" => no_args(Value::Labels(r.external_labels.clone())),
            "ExternalURL" => no_args(Value::Str(r.external_url.clone())),
            "Value" => no_args(Value::Float(r.value)),
            _ => Err(missing()),
        },
        Value::Sample(s) => match name {
            "Labels" => no_args(Value::Labels(s.labels.clone())),
            "Value" => no_args(Value::Float(s.value)),
            _ => Err(missing()),
        },
        Value::Labels(_) | Value::Map(_) | Value::Object(_) if has_args => {
            Err(format!("{name} is not a method but has arguments"))
        }
        Value::Labels(m) => Ok(Value::str(m.get(name).map_or("", String::as_str))),
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
        Value::Object(o) => Ok(data::key(o, name)),
        Value::Time(ns) => time_method(*ns, name).ok_or_else(missing).and_then(no_args),
        Value::Duration(ns) => duration_method(*ns, name)
            .ok_or_else(missing)
            .and_then(no_args),
        _ => Err(missing()),
    }
}

fn time_method(ns: i64, name: &str) -> Option<Value> {
    Some(match name {
        "Unix" => Value::Int(ns.div_euclid(1_000_000_000)),
        "UnixMilli" => Value::Int(ns.div_euclid(1_000_000)),
        "UnixNano" => Value::Int(ns),
        "String" => Value::string(super::value::go_time(ns)),
        _ => return None,
    })
}

fn duration_method(ns: i64, name: &str) -> Option<Value> {
    Some(match name {
        "Seconds" => Value::Float(ns as f64 / 1e9),
        "Minutes" => Value::Float(ns as f64 / 6e10),
        "Hours" => Value::Float(ns as f64 / 3.6e12),
        "Milliseconds" => Value::Int(ns / 1_000_000),
        "Nanoseconds" => Value::Int(ns),
        "String" => Value::string(super::value::go_duration(ns)),
        _ => return None,
    })
}

/// A literal argument must already be of the parameter's kind.
fn literal(v: Value, ty: PType, span: Span) -> R<Value> {
    match (ty, &v) {
        (PType::Any | PType::Value, _) | (PType::Str, Value::Str(_)) => Ok(v),
        (PType::Str, _) => {
            let shown = sprint_value(&v, 200).unwrap_or_default();
            fail(span, format!("expected string; found {shown}"))
        }
        _ => {
            let shown = sprint_value(&v, 200).unwrap_or_default();
            fail(
                span,
                format!("can't handle {shown} for arg of type {}", ty.go_name()),
            )
        }
    }
}

fn nil_arg(ty: PType, span: Span) -> R<Value> {
    match ty {
        PType::Str | PType::Value => fail(span, format!("cannot assign nil to {}", ty.go_name())),
        PType::Any | PType::Sample | PType::Vector | PType::StrList => Ok(Value::Nil),
    }
}

/// Go's `validateType`: values of the wrong type are refused.
fn check_type(v: Value, ty: PType, span: Span) -> R<Value> {
    let ok = match (ty, &v) {
        (PType::Any | PType::Value, _) => true,
        (PType::Str, Value::Str(_)) => true,
        (PType::Sample, Value::Sample(_) | Value::Nil) => true,
        (PType::Vector, Value::Vector(_) | Value::Nil) => true,
        (PType::StrList, Value::Nil) => true,
        (PType::StrList, Value::List(l)) => l.items.iter().all(|i| matches!(i, Value::Str(_))),
        (PType::Str, Value::Nil) => return fail(span, "invalid value; expected string"),
        _ => false,
    };
    if ok {
        return Ok(v);
    }
    let msg = format!(
        "wrong type for value; expected {}; got {}",
        ty.go_name(),
        v.type_name()
    );
    fail(span, msg)
}
