//! Builds the syntax tree from tokens, with Go's parse-time checks:
//! functions must exist, variables must be declared, `break`/`continue`
//! only inside `range`.

use super::funcs::Func;
use super::lexer::{Keyword, Tok, Token, char_value, lex};
use super::{MAX_DEPTH, Mode};

#[derive(Debug)]
pub(super) struct ParseError {
    pub(super) pos: usize,
    pub(super) msg: String,
}

type PResult<T> = Result<T, ParseError>;

/// Byte range in the source, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String, Span),
    Action(Pipeline),
    If(Box<Control>),
    With(Box<Control>),
    Range(Box<Control>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(super) struct Control {
    pub(super) pipe: Pipeline,
    pub(super) list: Vec<Node>,
    pub(super) else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(super) struct Pipeline {
    pub(super) span: Span,
    /// `$x = ...` rather than `$x := ...`.
    pub(super) is_assign: bool,
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(super) struct Command {
    pub(super) span: Span,
    pub(super) args: Vec<Operand>,
}

#[derive(Debug, Clone)]
pub(super) struct Operand {
    pub(super) span: Span,
    pub(super) kind: OpKind,
}

#[derive(Debug, Clone)]
pub(super) enum OpKind {
    Func(Func),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    /// `.a.b`
    Field(Vec<String>),
    /// `$x.a.b`
    Var(String, Vec<String>),
    /// `( ... )`
    Pipe(Box<Pipeline>),
    /// `(...).a.b`
    Chain(Box<Operand>, Vec<String>),
}

/// A numeric literal as Go's `idealConstant` would type it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    Int(i64),
    Float(f64),
    /// Fits only an unsigned 64-bit integer: an error when evaluated.
    Overflow,
}

/// The variables Prometheus declares ahead of every rule template.
pub(super) const PRELUDE_VARS: [&str; 5] =
    ["$", "$labels", "$externalLabels", "$externalURL", "$value"];

/// Parses a template of that mode: its variables and functions differ.
pub(super) fn parse(src: &str, mode: Mode) -> PResult<Vec<Node>> {
    let toks = lex(src).map_err(|e| ParseError {
        pos: e.pos,
        msg: e.msg,
    })?;
    let vars: &[&str] = match mode {
        Mode::Rule => &PRELUDE_VARS,
        // As in Go: only `$`, the data.
        Mode::Data => &["$"],
    };
    let mut p = Parser {
        src,
        toks,
        i: 0,
        mode,
        vars: vars.iter().map(|v| v.to_string()).collect(),
        range_depth: 0,
        depth: 0,
    };
    p.root()
}

/// How an item list ended.
enum Item {
    Node(Node),
    End,
    Else(usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ControlKind {
    If,
    With,
    Range,
}

impl ControlKind {
    fn name(self) -> &'static str {
        match self {
            ControlKind::If => "if",
            ControlKind::With => "with",
            ControlKind::Range => "range",
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    mode: Mode,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> &Token {
        &self.toks[i.min(self.toks.len().saturating_sub(1))]
    }

    fn peek(&self) -> &Token {
        self.at(self.i)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> &Token {
        self.skip_space();
        self.peek()
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos,
            msg: msg.into(),
        })
    }

    /// Go's rendering of a token in "unexpected" messages.
    fn describe(&self, t: &Token) -> String {
        let text = &self.src[t.start..t.end];
        match t.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::Keyword(_) => format!("<{text}>"),
            _ if text.chars().count() > 10 => {
                let head: String = text.chars().take(10).collect();
                format!("{}...", super::gofmt::go_quote(&head, false))
            }
            _ => super::gofmt::go_quote(text, false),
        }
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> PResult<T> {
        self.err(
            t.start,
            format!("unexpected {} in {context}", self.describe(t)),
        )
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn root(&mut self) -> PResult<Vec<Node>> {
        let mut nodes = Vec::new();
        while self.peek().tok != Tok::Eof {
            let pos = self.peek().start;
            match self.text_or_action()? {
                Item::Node(n) => nodes.push(n),
                Item::End => return self.err(pos, "unexpected {{end}}"),
                Item::Else(p) => return self.err(p, "unexpected {{else}}"),
            }
        }
        Ok(nodes)
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.tok {
            Tok::Text(s) => Ok(Item::Node(Node::Text(
                s,
                Span {
                    start: t.start,
                    end: t.end,
                },
            ))),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        let Tok::Keyword(kw) = t.tok else {
            self.backup();
            return Ok(Item::Node(Node::Action(self.pipeline("command", true)?)));
        };
        let kind = match kw {
            Keyword::If => Some(ControlKind::If),
            Keyword::With => Some(ControlKind::With),
            Keyword::Range => Some(ControlKind::Range),
            _ => None,
        };
        if let Some(kind) = kind {
            return self.control(kind, t.start).map(Item::Node);
        }
        match kw {
            Keyword::Break | Keyword::Continue => self.break_continue(&t, kw == Keyword::Break),
            Keyword::Else => self.else_control(&t),
            Keyword::End => {
                self.expect_right_delim("end")?;
                Ok(Item::End)
            }
            _ => {
                let word = &self.src[t.start..t.end];
                self.err(t.start, format!("{{{{{word}}}}} is not supported"))
            }
        }
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(())
    }

    fn break_continue(&mut self, t: &Token, is_break: bool) -> PResult<Item> {
        let word = if is_break { "break" } else { "continue" };
        self.expect_right_delim(&format!("{{{{{word}}}}}"))?;
        if self.range_depth == 0 {
            return self.err(t.start, format!("{{{{{word}}}}} outside {{{{range}}}}"));
        }
        Ok(Item::Node(if is_break {
            Node::Break
        } else {
            Node::Continue
        }))
    }

    fn else_control(&mut self, t: &Token) -> PResult<Item> {
        // `{{else if ...}}` and `{{else with ...}}` leave the keyword pending.
        let next = &self.peek_non_space().tok;
        if !matches!(next, Tok::Keyword(Keyword::If | Keyword::With)) {
            self.expect_right_delim("else")?;
        }
        Ok(Item::Else(t.start))
    }

    fn control(&mut self, kind: ControlKind, pos: usize) -> PResult<Node> {
        self.enter(pos)?;
        let mark = self.vars.len();
        let pipe = self.pipeline(kind.name(), true)?;
        let is_range = kind == ControlKind::Range;
        self.range_depth += usize::from(is_range);
        let (list, ended) = self.item_list(kind, pos)?;
        self.range_depth -= usize::from(is_range);
        let else_list = match ended {
            Item::Else(_) => Some(self.else_branch(kind, pos)?),
            _ => None,
        };
        self.vars.truncate(mark);
        self.leave();
        let control = Box::new(Control {
            pipe,
            list,
            else_list,
        });
        Ok(match kind {
            ControlKind::If => Node::If(control),
            ControlKind::With => Node::With(control),
            ControlKind::Range => Node::Range(control),
        })
    }

    fn else_branch(&mut self, kind: ControlKind, pos: usize) -> PResult<Vec<Node>> {
        // `{{if a}}x{{else if b}}y{{end}}` is `{{if a}}x{{else}}{{if b}}y{{end}}{{end}}`
        // with the inner `{{end}}` shared.
        let chained = match (kind, &self.peek().tok) {
            (ControlKind::If, Tok::Keyword(Keyword::If)) => Some(ControlKind::If),
            (ControlKind::With, Tok::Keyword(Keyword::With)) => Some(ControlKind::With),
            _ => None,
        };
        if let Some(k) = chained {
            let t = self.next();
            return Ok(vec![self.control(k, t.start)?]);
        }
        let (list, ended) = self.item_list(kind, pos)?;
        if let Item::Else(p) = ended {
            return self.err(p, "expected end; found {{else}}");
        }
        Ok(list)
    }

    fn item_list(&mut self, kind: ControlKind, pos: usize) -> PResult<(Vec<Node>, Item)> {
        let mut list = Vec::new();
        loop {
            if self.peek_non_space().tok == Tok::Eof {
                let name = kind.name();
                return self.err(
                    pos,
                    format!("unexpected EOF: {{{{{name}}}}} without {{{{end}}}}"),
                );
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                ended => return Ok((list, ended)),
            }
        }
    }

    /// A pipeline up to `}}` (or `)` when `to_delim` is false), with any
    /// leading variable declarations.
    fn pipeline(&mut self, context: &str, to_delim: bool) -> PResult<Pipeline> {
        let start = self.peek_non_space().start;
        let (decl, is_assign) = self.declarations(context)?;
        let mut cmds: Vec<Command> = Vec::new();
        loop {
            let t = self.next_non_space();
            let closes = if to_delim {
                t.tok == Tok::RightDelim
            } else {
                t.tok == Tok::RightParen
            };
            if closes {
                self.check_pipeline(&cmds, context, start)?;
                let end = cmds.last().map_or(start, |c| c.span.end);
                return Ok(Pipeline {
                    span: Span { start, end },
                    is_assign,
                    decl,
                    cmds,
                });
            }
            match t.tok {
                Tok::Bool(_)
                | Tok::CharConst
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.backup();
                    cmds.push(self.command()?);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn declarations(&mut self, context: &str) -> PResult<(Vec<String>, bool)> {
        let mut decl = Vec::new();
        loop {
            let Tok::Variable(name) = self.peek_non_space().tok.clone() else {
                return Ok((decl, false));
            };
            let save = self.i;
            self.next();
            let after = self.next_non_space();
            match after.tok {
                Tok::Assign | Tok::Declare => {
                    self.vars.push(name.clone());
                    decl.push(name);
                    return Ok((decl, after.tok == Tok::Assign));
                }
                Tok::Char(',') => {
                    self.vars.push(name.clone());
                    decl.push(name);
                    let more = matches!(
                        self.peek_non_space().tok,
                        Tok::Variable(_) | Tok::RightDelim | Tok::RightParen
                    );
                    if context == "range" && decl.len() < 2 {
                        if more {
                            continue;
                        }
                        return self.err(after.start, "range can only initialize variables");
                    }
                    return self.err(after.start, format!("too many declarations in {context}"));
                }
                _ => {
                    self.i = save;
                    return Ok((decl, false));
                }
            }
        }
    }

    fn check_pipeline(&self, cmds: &[Command], context: &str, pos: usize) -> PResult<()> {
        if cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if let Some(first) = c.args.first()
                && matches!(
                    first.kind,
                    OpKind::Bool(_)
                        | OpKind::Dot
                        | OpKind::Nil
                        | OpKind::Number(_)
                        | OpKind::Str(_)
                )
            {
                let msg = format!("non executable command in pipeline stage {}", i + 1);
                return self.err(c.span.start, msg);
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let start = self.peek_non_space().start;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        let Some(last) = args.last() else {
            return self.err(start, "empty command");
        };
        let span = Span {
            start,
            end: last.span.end,
        };
        Ok(Command { span, args })
    }

    fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        let mut end = node.span.end;
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            end = self.peek().end;
            self.i += 1;
        }
        if fields.is_empty() {
            return Ok(Some(node));
        }
        let span = Span {
            start: node.span.start,
            end,
        };
        let kind = match node.kind {
            OpKind::Field(mut f) => {
                f.extend(fields);
                OpKind::Field(f)
            }
            OpKind::Var(name, mut f) => {
                f.extend(fields);
                OpKind::Var(name, f)
            }
            OpKind::Bool(_) | OpKind::Str(_) | OpKind::Number(_) | OpKind::Nil | OpKind::Dot => {
                let text = &self.src[node.span.start..node.span.end];
                let msg = format!(
                    "unexpected . after term {}",
                    super::gofmt::go_quote(text, false)
                );
                return self.err(node.span.start, msg);
            }
            other => OpKind::Chain(
                Box::new(Operand {
                    span: node.span,
                    kind: other,
                }),
                fields,
            ),
        };
        Ok(Some(Operand { span, kind }))
    }

    fn term(&mut self) -> PResult<Option<Operand>> {
        let t = self.next_non_space();
        let mut span = Span {
            start: t.start,
            end: t.end,
        };
        let kind = match t.tok {
            Tok::Ident(name) => match Func::lookup(&name, self.mode) {
                Some(f) => OpKind::Func(f),
                None => return self.err(t.start, format!("function {name:?} not defined")),
            },
            Tok::Dot => OpKind::Dot,
            Tok::Nil => OpKind::Nil,
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.err(t.start, format!("undefined variable {name:?}"));
                }
                OpKind::Var(name, Vec::new())
            }
            Tok::Field(f) => OpKind::Field(vec![f]),
            Tok::Bool(b) => OpKind::Bool(b),
            Tok::Number | Tok::CharConst => OpKind::Number(self.number(&t)?),
            Tok::Str(s) => OpKind::Str(s),
            Tok::LeftParen => {
                self.enter(t.start)?;
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                self.leave();
                span.end = self.at(self.i - 1).end;
                OpKind::Pipe(Box::new(pipe))
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Operand { span, kind }))
    }

    fn number(&self, t: &Token) -> PResult<Number> {
        let text = &self.src[t.start..t.end];
        if t.tok == Tok::CharConst {
            return match char_value(text) {
                Some(v) => Ok(Number::Int(v)),
                None => self.err(t.start, format!("malformed character constant: {text}")),
            };
        }
        parse_number(text).map_err(|msg| ParseError { pos: t.start, msg })
    }
}

/// Types a numeric literal the way Go's parser and `idealConstant` do.
pub(super) fn parse_number(text: &str) -> Result<Number, String> {
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    if let Some(v) = parse_go_int(text) {
        return Ok(match i64::try_from(v) {
            Ok(i) => Number::Int(i),
            Err(_) => Number::Overflow,
        });
    }
    let float_syntax = text.contains(['.', 'e', 'E', 'p', 'P']);
    let hex = text.trim_start_matches(['+', '-']).starts_with("0x")
        || text.trim_start_matches(['+', '-']).starts_with("0X");
    match text.parse::<f64>() {
        Ok(_) if !float_syntax => Err(format!("integer overflow: {text:?}")),
        Ok(f) if !hex && f.is_finite() => Ok(Number::Float(f)),
        _ => Err(format!("illegal number syntax: {text:?}")),
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)` widened to also accept the
/// unsigned 64-bit range.
fn parse_go_int(text: &str) -> Option<i128> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = rest.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let digits = digits.strip_prefix('_').unwrap_or(digits);
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean = digits.replace('_', "");
    if !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u64::from_str_radix(&clean, radix).ok()?;
    let v = i128::from(v);
    if neg {
        (v <= 1 << 63).then_some(-v)
    } else {
        Some(v)
    }
}
