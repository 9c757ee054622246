//! Splits template text into tokens, following Go's text/template lexer
//! (delimiters `{{ }}`, trim markers, comments, and the action grammar).

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// Text outside actions, already trimmed by neighbouring trim markers.
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Pipe,
    LeftParen,
    RightParen,
    Assign,
    Declare,
    /// Any other printable ASCII character (`,` matters to `range`).
    Char(char),
    /// A string literal, already unquoted.
    Str(String),
    Number,
    CharConst,
    Bool(bool),
    Nil,
    Dot,
    /// `.name`, without the dot.
    Field(String),
    /// `$name` or `$`, with the dollar.
    Variable(String),
    Ident(String),
    Keyword(Keyword),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug)]
pub(super) struct LexError {
    pub(super) pos: usize,
    pub(super) msg: String,
}

type LexResult<T> = Result<T, LexError>;

/// Tokenises all of `src`; the last token is always `Eof`.
pub(super) fn lex(src: &str) -> LexResult<Vec<Token>> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.toks)
}

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(super) fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Go's `%#U`: `U+0041 'A'`, or just `U+00A0` when not printable.
pub(super) fn go_rune(c: char) -> String {
    if super::gofmt::is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    toks: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self) -> LexResult<()> {
        while let Some(x) = self.src[self.pos..].find("{{") {
            let delim = self.pos + x;
            let after = delim + 2;
            let trim = has_left_trim(&self.src[after..]);
            let mut text = &self.src[self.pos..delim];
            if trim {
                text = text.trim_end_matches(is_space);
            }
            self.emit_text(text);
            let inner = after + if trim { 2 } else { 0 };
            if self.src[inner..].starts_with("/*") {
                self.comment(delim, inner)?;
            } else {
                self.push(Tok::LeftDelim, delim, after);
                self.pos = inner;
                self.action(delim)?;
            }
        }
        let rest = &self.src[self.pos..];
        self.emit_text(rest);
        let end = self.src.len();
        self.push(Tok::Eof, end, end);
        Ok(())
    }

    fn emit_text(&mut self, text: &str) {
        if !text.is_empty() {
            self.push(Tok::Text(text.to_string()), self.pos, self.pos + text.len());
        }
    }

    fn push(&mut self, tok: Tok, start: usize, end: usize) {
        self.toks.push(Token { tok, start, end });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> LexResult<T> {
        Err(LexError {
            pos,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// `Some((end, trimmed))` when `}}` or ` -}}` starts at `p`.
    fn right_delim_at(&self, p: usize) -> Option<(usize, bool)> {
        let s = &self.src[p..];
        if has_right_trim(s) && s[2..].starts_with("}}") {
            Some((p + 4, true))
        } else if s.starts_with("}}") {
            Some((p + 2, false))
        } else {
            None
        }
    }

    fn comment(&mut self, delim: usize, inner: usize) -> LexResult<()> {
        let body = inner + 2;
        let Some(i) = self.src[body..].find("*/") else {
            return self.err(delim, "unclosed comment");
        };
        match self.right_delim_at(body + i + 2) {
            None => self.err(delim, "comment ends before closing delimiter"),
            Some((after, trim)) => {
                self.pos = after;
                if trim {
                    self.skip_space();
                }
                Ok(())
            }
        }
    }

    fn action(&mut self, start: usize) -> LexResult<()> {
        let mut parens = 0usize;
        loop {
            if let Some((after, trim)) = self.right_delim_at(self.pos) {
                if parens > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                let delim = if trim { self.pos + 2 } else { self.pos };
                self.push(Tok::RightDelim, delim, after);
                self.pos = after;
                if trim {
                    self.skip_space();
                }
                return Ok(());
            }
            let Some(c) = self.peek() else {
                return self.err(start, "unclosed action");
            };
            match c {
                '(' => parens += 1,
                ')' if parens == 0 => return self.err(self.pos, "unexpected right paren"),
                ')' => parens -= 1,
                _ => {}
            }
            self.action_token(c)?;
        }
    }

    fn action_token(&mut self, c: char) -> LexResult<()> {
        let s = self.pos;
        let simple = match c {
            '=' => Some(Tok::Assign),
            '|' => Some(Tok::Pipe),
            '(' => Some(Tok::LeftParen),
            ')' => Some(Tok::RightParen),
            _ => None,
        };
        if let Some(tok) = simple {
            self.pos += 1;
            self.push(tok, s, s + 1);
            return Ok(());
        }
        match c {
            c if is_space(c) => self.space(),
            ':' if self.src[s + 1..].starts_with('=') => {
                self.pos += 2;
                self.push(Tok::Declare, s, s + 2);
            }
            ':' => return self.err(s, "expected :="),
            '"' => self.quote()?,
            '`' => self.raw_quote()?,
            '\'' => self.char_const()?,
            '$' => self.field_or_var(true)?,
            '.' if self.src[s + 1..]
                .chars()
                .next()
                .is_some_and(|n| !n.is_ascii_digit()) =>
            {
                self.field_or_var(false)?
            }
            '.' | '+' | '-' | '0'..='9' => self.number()?,
            c if is_alnum(c) => self.identifier()?,
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.pos += 1;
                self.push(Tok::Char(c), s, s + 1);
            }
            c => {
                let msg = format!("unrecognized character in action: {}", go_rune(c));
                return self.err(s, msg);
            }
        }
        Ok(())
    }

    /// A run of spaces, leaving alone the one that belongs to ` -}}`.
    fn space(&mut self) {
        let start = self.pos;
        self.skip_space();
        let last = self.pos - 1;
        if has_right_trim(&self.src[last..]) && self.src[last + 2..].starts_with("}}") {
            self.pos = last;
        }
        if self.pos > start {
            self.push(Tok::Space, start, self.pos);
        }
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.src[self.pos..].starts_with("}}"),
        }
    }

    fn bad_char<T>(&self) -> LexResult<T> {
        let c = self.peek().unwrap_or(' ');
        self.err(self.pos, format!("bad character {}", go_rune(c)))
    }

    fn field_or_var(&mut self, is_var: bool) -> LexResult<()> {
        let s = self.pos;
        self.pos += 1;
        if self.at_terminator() {
            let tok = if is_var {
                Tok::Variable("$".into())
            } else {
                Tok::Dot
            };
            self.push(tok, s, self.pos);
            return Ok(());
        }
        while self.peek().is_some_and(is_alnum) {
            self.next_char();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        let text = &self.src[s..self.pos];
        let tok = if is_var {
            Tok::Variable(text.to_string())
        } else {
            Tok::Field(text[1..].to_string())
        };
        self.push(tok, s, self.pos);
        Ok(())
    }

    fn identifier(&mut self) -> LexResult<()> {
        let s = self.pos;
        while self.peek().is_some_and(is_alnum) {
            self.next_char();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        let tok = match &self.src[s..self.pos] {
            "block" => Tok::Keyword(Keyword::Block),
            "break" => Tok::Keyword(Keyword::Break),
            "continue" => Tok::Keyword(Keyword::Continue),
            "define" => Tok::Keyword(Keyword::Define),
            "else" => Tok::Keyword(Keyword::Else),
            "end" => Tok::Keyword(Keyword::End),
            "if" => Tok::Keyword(Keyword::If),
            "range" => Tok::Keyword(Keyword::Range),
            "template" => Tok::Keyword(Keyword::Template),
            "with" => Tok::Keyword(Keyword::With),
            "nil" => Tok::Nil,
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            word => Tok::Ident(word.to_string()),
        };
        self.push(tok, s, self.pos);
        Ok(())
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    fn number(&mut self) -> LexResult<()> {
        let s = self.pos;
        if !self.scan_number() {
            let msg = format!("bad number syntax: {:?}", &self.src[s..self.pos]);
            return self.err(s, msg);
        }
        self.push(Tok::Number, s, self.pos);
        Ok(())
    }

    /// Go's scanNumber: sign, base prefix, digits, fraction, exponent.
    fn scan_number(&mut self) -> bool {
        const DEC: &str = "0123456789_";
        const HEX: &str = "0123456789abcdefABCDEF_";
        self.accept("+-");
        let mut digits = DEC;
        if self.accept("0") {
            if self.accept("xX") {
                digits = HEX;
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits == DEC && self.accept("eE") {
            self.accept("+-");
            self.accept_run(DEC);
        }
        if digits == HEX && self.accept("pP") {
            self.accept("+-");
            self.accept_run(DEC);
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next_char();
            return false;
        }
        true
    }

    /// Scans a quoted literal whose escapes may not cross a newline.
    fn scan_quoted(&mut self, quote: char, what: &str) -> LexResult<usize> {
        let s = self.pos;
        self.pos += 1;
        loop {
            match self.next_char() {
                Some('\\') => match self.next_char() {
                    Some(c) if c != '\n' => {}
                    _ => return self.err(s, format!("unterminated {what}")),
                },
                Some('\n') | None => return self.err(s, format!("unterminated {what}")),
                Some(c) if c == quote => return Ok(s),
                Some(_) => {}
            }
        }
    }

    fn quote(&mut self) -> LexResult<()> {
        let s = self.scan_quoted('"', "quoted string")?;
        let body = &self.src[s + 1..self.pos - 1];
        match unquote(body, '"') {
            Some(text) => {
                self.push(Tok::Str(text), s, self.pos);
                Ok(())
            }
            None => self.err(
                s,
                format!("invalid syntax in string {}", &self.src[s..self.pos]),
            ),
        }
    }

    fn raw_quote(&mut self) -> LexResult<()> {
        let s = self.pos;
        let Some(i) = self.src[s + 1..].find('`') else {
            return self.err(s, "unterminated raw quoted string");
        };
        self.pos = s + 1 + i + 1;
        // Go drops carriage returns from raw strings.
        let text = self.src[s + 1..s + 1 + i].replace('\r', "");
        self.push(Tok::Str(text), s, self.pos);
        Ok(())
    }

    fn char_const(&mut self) -> LexResult<()> {
        let s = self.scan_quoted('\'', "character constant")?;
        self.push(Tok::CharConst, s, self.pos);
        Ok(())
    }
}

/// The value of a Go character constant such as `'a'` or `'\n'`.
pub(super) fn char_value(literal: &str) -> Option<i64> {
    let body = literal.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut chars = body.chars();
    let first = chars.next()?;
    if first != '\\' {
        return if chars.next().is_none() && first != '\'' {
            Some(i64::from(u32::from(first)))
        } else {
            None
        };
    }
    let mut out = Vec::new();
    let rest = unescape(chars.as_str(), '\'', &mut out)?;
    if !rest.is_empty() {
        return None;
    }
    match out.as_slice() {
        [Esc::Byte(b)] => Some(i64::from(*b)),
        [Esc::Char(c)] => Some(i64::from(u32::from(*c))),
        _ => None,
    }
}

enum Esc {
    Byte(u8),
    Char(char),
}

/// Go's strconv.Unquote for the body of a `"` string.
fn unquote(body: &str, quote: char) -> Option<String> {
    let mut bytes = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find('\\') {
        bytes.extend_from_slice(&rest.as_bytes()[..i]);
        let mut escs = Vec::new();
        rest = unescape(&rest[i + 1..], quote, &mut escs)?;
        for e in escs {
            match e {
                Esc::Byte(b) => bytes.push(b),
                Esc::Char(c) => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }
    bytes.extend_from_slice(rest.as_bytes());
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Decodes one escape (the text after a backslash); returns the rest.
fn unescape<'s>(s: &'s str, quote: char, out: &mut Vec<Esc>) -> Option<&'s str> {
    let c = s.chars().next()?;
    let after = &s[c.len_utf8()..];
    let simple = match c {
        'a' => Some(7u8),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(11),
        '\\' => Some(b'\\'),
        '\'' | '"' if c == quote => Some(c as u8),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(Esc::Byte(b));
        return Some(after);
    }
    let (len, radix) = match c {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (3, 8),
        _ => return None,
    };
    let digits = if radix == 8 {
        s.get(..3)?
    } else {
        after.get(..len)?
    };
    let n = u32::from_str_radix(digits, radix).ok()?;
    let rest = if radix == 8 { &s[3..] } else { &after[len..] };
    match c {
        'x' => out.push(Esc::Byte(u8::try_from(n).ok()?)),
        'u' | 'U' => out.push(Esc::Char(char::from_u32(n)?)),
        _ => out.push(Esc::Byte(u8::try_from(n).ok()?)),
    }
    Some(rest)
}
