//! Go's `fmt` and `strconv` formatting, as far as templates reach:
//! `print`, `println`, `printf` and the default rendering of values.

use super::data;
use super::value::{Value, go_duration, go_time};

/// `strconv.FormatFloat(v, fmt, prec, 64)`; `prec` None is Go's -1
/// (shortest representation that reads back exactly).
pub(super) fn format_float(v: f64, fmt: u8, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let a = v.abs();
    let body = match fmt {
        b'f' | b'F' => match prec {
            Some(p) => format!("{a:.p$}"),
            None => {
                let d = Digits::shortest(a);
                let p = (d.nd() - d.dp).max(0);
                d.fmt_f(p as usize)
            }
        },
        b'e' | b'E' => {
            let d = match prec {
                Some(p) => Digits::significant(a, p + 1),
                None => Digits::shortest(a),
            };
            let p = prec.unwrap_or(d.digits.len().saturating_sub(1));
            d.fmt_e(p, fmt)
        }
        b'g' | b'G' => fmt_g(a, prec, fmt),
        _ => return format!("%{}", fmt as char),
    };
    if v.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

/// Go's `%g`: exponent form for large or small exponents, trailing zeros dropped.
fn fmt_g(a: f64, prec: Option<usize>, fmt: u8) -> String {
    let (d, shortest) = match prec {
        None => (Digits::shortest(a), true),
        Some(p) => (Digits::significant(a, p.max(1)), false),
    };
    let nd = d.nd();
    let mut prec = prec.map_or(nd, |p| p.max(1) as i64);
    let mut eprec = prec;
    if eprec > nd && nd >= d.dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = d.dp - 1;
    if exp < -4 || exp >= eprec {
        prec = prec.min(nd);
        let e = if fmt == b'G' { b'E' } else { b'e' };
        return d.fmt_e((prec - 1).max(0) as usize, e);
    }
    if prec > d.dp {
        prec = nd;
    }
    d.fmt_f((prec - d.dp).max(0) as usize)
}

/// Decimal digits of a non-negative float: `0.d1d2... × 10^dp`, no
/// trailing zeros; zero has no digits.
struct Digits {
    digits: Vec<u8>,
    dp: i64,
}

impl Digits {
    fn shortest(a: f64) -> Digits {
        Digits::from_sci(a, &format!("{a:e}"))
    }

    /// Rounded (half to even, on the exact binary value) to `n` digits.
    fn significant(a: f64, n: usize) -> Digits {
        Digits::from_sci(a, &format!("{a:.prec$e}", prec = n.saturating_sub(1)))
    }

    fn from_sci(a: f64, s: &str) -> Digits {
        if a == 0.0 {
            return Digits {
                digits: Vec::new(),
                dp: 0,
            };
        }
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        Digits {
            digits,
            dp: exp.parse::<i64>().unwrap_or(0) + 1,
        }
    }

    fn nd(&self) -> i64 {
        self.digits.len() as i64
    }

    fn digit(&self, i: i64) -> u8 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.digits.get(i).copied())
            .unwrap_or(b'0')
    }

    fn fmt_e(&self, prec: usize, e: u8) -> String {
        let mut out = String::with_capacity(prec + 8);
        out.push(self.digit(0) as char);
        if prec > 0 {
            out.push('.');
            for i in 1..=prec as i64 {
                out.push(self.digit(i) as char);
            }
        }
        out.push(e as char);
        let exp = if self.digits.is_empty() {
            0
        } else {
            self.dp - 1
        };
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
        out
    }

    fn fmt_f(&self, prec: usize) -> String {
        let mut out = String::new();
        if self.dp > 0 {
            for i in 0..self.dp {
                out.push(self.digit(i) as char);
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for i in 1..=prec as i64 {
                out.push(self.digit(self.dp + i - 1) as char);
            }
        }
        out
    }
}

/// Go's `unicode.IsPrint`, near enough: graphic characters and ASCII space.
pub(super) fn is_print(c: char) -> bool {
    let format_char = matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{feff}');
    c == ' ' || !(c.is_control() || c.is_whitespace() || format_char)
}

/// Go's `strconv.Quote` (or `QuoteToASCII`).
pub(super) fn go_quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_rune(&mut out, c, '"', ascii);
    }
    out.push('"');
    out
}

fn escape_rune(out: &mut String, c: char, quote: char, ascii: bool) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) && (!ascii || c.is_ascii()) => out.push(c),
        c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_rune(&mut out, c, '\'', false);
    out.push('\'');
    out
}

/// `%v` of one value, as `{{ x }}` prints it (nil is the caller's business).
pub(super) fn sprint_value(v: &Value, limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    p.print_arg(v, 'v');
    p.finish()
}

/// `fmt.Sprint`: spaces only between operands when neither is a string.
pub(super) fn sprint(args: &[Value], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.write(" ");
        }
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.finish()
}

/// `fmt.Sprintln`: spaces between all operands and a final newline.
pub(super) fn sprintln(args: &[Value], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.write(" ");
        }
        p.print_arg(a, 'v');
    }
    p.write("\n");
    p.finish()
}

/// `fmt.Sprintf`; None when the result would pass `limit` bytes.
pub(super) fn sprintf(format: &str, args: &[Value], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    p.do_printf(format, args);
    p.finish()
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go's fmt caps widths and precisions at a million.
const MAX_WIDTH: i64 = 1_000_000;

struct Printer {
    buf: String,
    f: Flags,
    limit: usize,
    overflow: bool,
}

impl Printer {
    fn new(limit: usize) -> Printer {
        Printer {
            buf: String::new(),
            f: Flags::default(),
            limit,
            overflow: false,
        }
    }

    fn finish(self) -> Option<String> {
        (!self.overflow).then_some(self.buf)
    }

    fn room(&mut self, n: usize) -> bool {
        if self.overflow || self.buf.len().saturating_add(n) > self.limit {
            self.overflow = true;
            return false;
        }
        true
    }

    fn write(&mut self, s: &str) {
        if self.room(s.len()) {
            self.buf.push_str(s);
        }
    }

    fn write_padding(&mut self, n: usize) {
        if self.room(n) {
            let c = if self.f.zero { '0' } else { ' ' };
            self.buf.extend(std::iter::repeat_n(c, n));
        }
    }

    /// Writes `s` padded to the width, on the left unless `-`.
    fn pad(&mut self, s: &str) {
        let n = s.chars().count();
        let width = self.f.wid.unwrap_or(0).saturating_sub(n);
        if width == 0 {
            self.write(s);
        } else if self.f.minus {
            self.write(s);
            let zero = std::mem::replace(&mut self.f.zero, false);
            self.write_padding(width);
            self.f.zero = zero;
        } else {
            self.write_padding(width);
            self.write(s);
        }
    }

    fn pad_spaces(&mut self, s: &str) {
        let zero = std::mem::replace(&mut self.f.zero, false);
        self.pad(s);
        self.f.zero = zero;
    }

    fn print_arg(&mut self, v: &Value, verb: char) {
        // Shared nested maps can be huge when expanded: stop at the limit.
        if self.overflow {
            return;
        }
        if verb == 'T' {
            self.pad(v.type_name());
            return;
        }
        match v {
            Value::Nil if verb == 'v' => self.pad("<nil>"),
            Value::Nil => self.bad_verb(v, verb),
            Value::Bool(b) => self.fmt_bool(*b, v, verb),
            Value::Int(i) => self.fmt_int(i128::from(*i), v, verb),
            Value::Float(f) => self.fmt_float_verb(*f, v, verb),
            Value::Str(s) => self.fmt_string(s, v, verb),
            Value::Time(ns) if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') => {
                self.fmt_string(&go_time(*ns), v, verb)
            }
            Value::Time(_) => self.bad_verb(v, verb),
            Value::Duration(ns) if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') => {
                self.fmt_string(&go_duration(*ns), v, verb)
            }
            Value::Duration(ns) => self.fmt_int(i128::from(*ns), v, verb),
            _ => self.print_composite(v, verb, 0),
        }
    }

    /// Maps, lists and structs: the verb applies to each element.
    fn print_composite(&mut self, v: &Value, verb: char, depth: usize) {
        if self.overflow {
            return;
        }
        match v {
            Value::Labels(m) => {
                let entries = m.iter().map(|(k, v)| (k, Value::str(v)));
                self.print_map(entries, verb, depth);
            }
            Value::Map(m) => self.print_map(m.iter().map(|(k, v)| (k, v.clone())), verb, depth),
            Value::Vector(samples) => {
                self.write("[");
                for (i, s) in samples.iter().enumerate() {
                    if i > 0 {
                        self.write(" ");
                    }
                    self.print_composite(&Value::Sample(s.clone()), verb, depth + 1);
                }
                self.write("]");
            }
            Value::Sample(s) => {
                // Go prints a nested pointer as an address; a struct reads better.
                self.write(if depth == 0 { "&" } else { "" });
                let fields = [
                    ("Labels", Value::Labels(s.labels.clone())),
                    ("Value", Value::Float(s.value)),
                ];
                self.print_struct(&fields, verb, depth);
            }
            Value::Root(r) => {
                let fields = [
                    ("Labels", Value::Labels(r.labels.clone())),
                    ("ExternalLabels", Value::Labels(r.external_labels.clone())),
                    ("ExternalURL", Value::Str(r.external_url.clone())),
                    ("Value", Value::Float(r.value)),
                ];
                self.print_struct(&fields, verb, depth);
            }
            Value::Object(o) if o.is_kv() && self.stringer_verb(verb) => {
                let entries = data::sorted(o).map(|(k, v)| (k.as_str(), v.clone()));
                self.print_stringer(entries, v, verb, depth);
            }
            Value::Object(o) => {
                self.print_map(o.entries.iter().map(|(k, v)| (k, v.clone())), verb, depth);
            }
            Value::List(l) if l.pairs && self.stringer_verb(verb) => {
                let entries = l.items.iter().filter_map(|p| match p {
                    Value::Object(p) => Some((pair_name(p), data::key(p, "Value"))),
                    _ => None,
                });
                self.print_stringer(entries, v, verb, depth);
            }
            Value::List(l) => {
                self.write("[");
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        self.write(" ");
                    }
                    self.print_element(item, verb, depth + 1);
                }
                self.write("]");
            }
            other => self.print_element(other, verb, depth),
        }
    }

    /// The verbs for which Go prints a value through its `String` method.
    fn stringer_verb(&self, verb: char) -> bool {
        matches!(verb, 'v' | 's' | 'q' | 'x' | 'X') && !self.f.sharp_v
    }

    /// Alertmanager's `KV.String` and `Pairs.String`: `k=v, k=v`, formatted
    /// as one string.
    fn print_stringer<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a str, Value)>,
        v: &Value,
        verb: char,
        depth: usize,
    ) {
        let mut inner = Printer::new(self.limit.saturating_sub(self.buf.len()));
        for (i, (k, val)) in entries.enumerate() {
            if i > 0 {
                inner.write(", ");
            }
            inner.write(k);
            inner.write("=");
            inner.print_element(&val, 'v', depth + 1);
        }
        match inner.finish() {
            Some(text) => self.fmt_string(&text, v, verb),
            None => self.overflow = true,
        }
    }

    fn print_map<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a String, Value)>,
        verb: char,
        depth: usize,
    ) {
        self.write("map[");
        for (i, (k, v)) in entries.enumerate() {
            if i > 0 {
                self.write(" ");
            }
            self.fmt_string(k, &Value::str(k), verb);
            self.write(":");
            self.print_element(&v, verb, depth + 1);
        }
        self.write("]");
    }

    fn print_struct(&mut self, fields: &[(&str, Value)], verb: char, depth: usize) {
        self.write("{");
        for (i, (name, v)) in fields.iter().enumerate() {
            if i > 0 {
                self.write(" ");
            }
            if self.f.plus_v {
                self.write(name);
                self.write(":");
            }
            self.print_element(v, verb, depth + 1);
        }
        self.write("}");
    }

    fn print_element(&mut self, v: &Value, verb: char, depth: usize) {
        match v {
            Value::Nil => self.pad("<nil>"),
            Value::Labels(_)
            | Value::Map(_)
            | Value::Vector(_)
            | Value::Sample(_)
            | Value::Object(_)
            | Value::List(_) => self.print_composite(v, verb, depth),
            other => self.print_arg(other, verb),
        }
    }

    /// `%!d(string=x)` for a verb the value's type does not take.
    fn bad_verb(&mut self, v: &Value, verb: char) {
        self.write("%!");
        self.write(verb.encode_utf8(&mut [0; 4]));
        self.write("(");
        if let Value::Nil = v {
            self.write("<nil>");
        } else {
            self.write(v.type_name());
            self.write("=");
            self.print_arg(v, 'v');
        }
        self.write(")");
    }

    fn fmt_bool(&mut self, b: bool, v: &Value, verb: char) {
        match verb {
            't' | 'v' => self.pad(if b { "true" } else { "false" }),
            _ => self.bad_verb(v, verb),
        }
    }

    fn fmt_int(&mut self, i: i128, v: &Value, verb: char) {
        match verb {
            'v' | 'd' => self.fmt_integer(i, 10, false),
            'b' => self.fmt_integer(i, 2, false),
            'o' | 'O' => self.fmt_integer(i, 8, false),
            'x' => self.fmt_integer(i, 16, false),
            'X' => self.fmt_integer(i, 16, true),
            'c' | 'q' | 'U' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                match verb {
                    'c' => self.pad(c.encode_utf8(&mut [0; 4])),
                    'q' => self.pad(&go_quote_rune(c)),
                    _ if self.f.sharp => self.pad(&format!("U+{:04X} '{c}'", c as u32)),
                    _ => self.pad(&format!("U+{:04X}", c as u32)),
                }
            }
            _ => self.bad_verb(v, verb),
        }
    }

    fn fmt_integer(&mut self, i: i128, base: u32, upper: bool) {
        let neg = i < 0;
        let u = i.unsigned_abs();
        let mut digits = match (base, upper) {
            (2, _) => format!("{u:b}"),
            (8, _) => format!("{u:o}"),
            (16, false) => format!("{u:x}"),
            (16, true) => format!("{u:X}"),
            _ => u.to_string(),
        };
        let mut min_digits = 0;
        if let Some(p) = self.f.prec {
            if p == 0 && u == 0 {
                let zero = std::mem::replace(&mut self.f.zero, false);
                self.write_padding(self.f.wid.unwrap_or(0));
                self.f.zero = zero;
                return;
            }
            min_digits = p;
        } else if let (true, false, Some(w)) = (self.f.zero, self.f.minus, self.f.wid) {
            let signed = neg || self.f.plus || self.f.space;
            min_digits = w.saturating_sub(usize::from(signed));
        }
        if min_digits > digits.len() {
            if !self.room(min_digits) {
                return;
            }
            digits = format!("{digits:0>min_digits$}");
        }
        let prefix = match base {
            2 if self.f.sharp => "0b",
            8 if self.f.sharp && !digits.starts_with('0') => "0",
            16 if self.f.sharp && upper => "0X",
            16 if self.f.sharp => "0x",
            _ => "",
        };
        let sign = match (neg, self.f.plus, self.f.space) {
            (true, _, _) => "-",
            (false, true, _) => "+",
            (false, false, true) => " ",
            _ => "",
        };
        self.pad_spaces(&format!("{sign}{prefix}{digits}"));
    }

    fn fmt_float_verb(&mut self, f: f64, v: &Value, verb: char) {
        match verb {
            'v' => self.fmt_float(f, b'g', None),
            'g' | 'G' => self.fmt_float(f, verb as u8, None),
            'f' | 'F' => self.fmt_float(f, b'f', Some(6)),
            'e' | 'E' => self.fmt_float(f, verb as u8, Some(6)),
            _ => self.bad_verb(v, verb),
        }
    }

    fn fmt_float(&mut self, f: f64, fmt: u8, default_prec: Option<usize>) {
        let prec = self.f.prec.or(default_prec);
        if !self.room(prec.unwrap_or(0)) {
            return;
        }
        let num = format_float(f, fmt, prec);
        let mut num = if num.starts_with(['-', '+']) {
            num
        } else {
            format!("+{num}")
        };
        if self.f.space && !self.f.plus && num.starts_with('+') {
            num.replace_range(..1, " ");
        }
        let body = &num[1..];
        if body.starts_with(['I', 'N']) {
            // Infinities and NaN take no zero padding; NaN no implicit sign.
            let s = if body.starts_with('N') && !self.f.space && !self.f.plus {
                body
            } else {
                &num
            };
            let s = s.to_string();
            self.pad_spaces(&s);
            return;
        }
        if self.f.plus || !num.starts_with('+') {
            match self.f.wid {
                Some(w) if self.f.zero && !self.f.minus && w > num.len() => {
                    self.write(&num[..1]);
                    self.write_padding(w - num.len());
                    self.write(&num[1..]);
                }
                _ => self.pad(&num),
            }
            return;
        }
        self.pad(&num[1..]);
    }

    fn fmt_string(&mut self, s: &str, v: &Value, verb: char) {
        let s = match self.f.prec {
            Some(p) if matches!(verb, 'v' | 's' | 'q') => {
                s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i])
            }
            _ => s,
        };
        match verb {
            'v' if self.f.sharp_v => self.pad(&go_quote(s, false)),
            'v' | 's' => self.pad(s),
            'x' | 'X' => self.fmt_hex_bytes(s, verb == 'X'),
            'q' if self.f.sharp && !s.contains(['`', '\n', '\r']) => self.pad(&format!("`{s}`")),
            'q' => self.pad(&go_quote(s, self.f.plus)),
            _ => self.bad_verb(v, verb),
        }
    }

    fn fmt_hex_bytes(&mut self, s: &str, upper: bool) {
        let bytes = s.as_bytes();
        let n = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
        let mut out = String::with_capacity(n * 3);
        for (i, b) in bytes[..n].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
            }
            if self.f.sharp && (self.f.space || i == 0) {
                out.push_str(if upper { "0X" } else { "0x" });
            }
            out.push_str(&if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            });
        }
        self.pad(&out);
    }

    fn do_printf(&mut self, format: &str, args: &[Value]) {
        let b = format.as_bytes();
        let end = b.len();
        let mut i = 0;
        let mut st = ArgState::default();
        while i < end && !self.overflow {
            let lasti = i;
            while i < end && b[i] != b'%' {
                i += 1;
            }
            self.write(&format[lasti..i]);
            if i >= end {
                break;
            }
            i += 1;
            st.good = true;
            self.f = Flags::default();
            i = self.parse_flags(b, i);
            i = self.parse_width_prec(format, i, args, &mut st);
            if !st.after_index {
                i = st.arg_number(b, i, args.len());
            }
            let Some(verb) = format[i..].chars().next() else {
                self.write("%!(NOVERB)");
                break;
            };
            i += verb.len_utf8();
            self.printf_verb(verb, args, &mut st);
        }
        if !st.reordered && st.arg < args.len() {
            self.f = Flags::default();
            self.write("%!(EXTRA ");
            for (n, a) in args[st.arg..].iter().enumerate() {
                if n > 0 {
                    self.write(", ");
                }
                if let Value::Nil = a {
                    self.write("<nil>");
                } else {
                    self.write(a.type_name());
                    self.write("=");
                    self.print_arg(a, 'v');
                }
            }
            self.write(")");
        }
    }

    fn printf_verb(&mut self, verb: char, args: &[Value], st: &mut ArgState) {
        let mut verb_buf = [0; 4];
        let verb_str: &str = verb.encode_utf8(&mut verb_buf);
        match verb {
            '%' => self.write("%"),
            _ if !st.good => {
                self.write("%!");
                self.write(verb_str);
                self.write("(BADINDEX)");
            }
            _ => match args.get(st.arg) {
                None => {
                    self.write("%!");
                    self.write(verb_str);
                    self.write("(MISSING)");
                }
                Some(a) => {
                    if verb == 'v' {
                        self.f.sharp_v = std::mem::take(&mut self.f.sharp);
                        self.f.plus_v = std::mem::take(&mut self.f.plus);
                    }
                    self.print_arg(a, verb);
                    st.arg += 1;
                }
            },
        }
    }

    fn parse_flags(&mut self, b: &[u8], mut i: usize) -> usize {
        while let Some(&c) = b.get(i) {
            match c {
                b'#' => self.f.sharp = true,
                b'0' => self.f.zero = !self.f.minus,
                b'+' => self.f.plus = true,
                b'-' => {
                    self.f.minus = true;
                    self.f.zero = false;
                }
                b' ' => self.f.space = true,
                _ => break,
            }
            i += 1;
        }
        i
    }

    fn parse_width_prec(
        &mut self,
        format: &str,
        i: usize,
        args: &[Value],
        st: &mut ArgState,
    ) -> usize {
        let b = format.as_bytes();
        let i = st.arg_number(b, i, args.len());
        let i = self.parse_width(b, i, args, st);
        if i + 1 < b.len() && b[i] == b'.' {
            if st.after_index {
                st.good = false;
            }
            let i = st.arg_number(b, i + 1, args.len());
            return self.parse_prec(b, i, args, st);
        }
        i
    }

    fn parse_width(&mut self, b: &[u8], i: usize, args: &[Value], st: &mut ArgState) -> usize {
        if b.get(i) == Some(&b'*') {
            match st.int_arg(args) {
                Some(w) => {
                    if w < 0 {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    self.f.wid = Some(w.unsigned_abs() as usize);
                }
                None => self.write("%!(BADWIDTH)"),
            }
            st.after_index = false;
            return i + 1;
        }
        let (w, ok, i) = parse_num(b, i, b.len());
        if ok {
            self.f.wid = Some(w);
            if st.after_index {
                st.good = false;
            }
        }
        i
    }

    fn parse_prec(&mut self, b: &[u8], i: usize, args: &[Value], st: &mut ArgState) -> usize {
        if b.get(i) == Some(&b'*') {
            match st.int_arg(args) {
                Some(p) => self.f.prec = usize::try_from(p).ok(),
                None => self.write("%!(BADPREC)"),
            }
            st.after_index = false;
            return i + 1;
        }
        let (p, ok, i) = parse_num(b, i, b.len());
        self.f.prec = Some(if ok { p } else { 0 });
        i
    }
}

/// Which printf argument comes next, and whether indexes were used.
#[derive(Default)]
struct ArgState {
    arg: usize,
    good: bool,
    reordered: bool,
    after_index: bool,
}

impl ArgState {
    /// An explicit `[n]` argument index at `i`, if any.
    fn arg_number(&mut self, b: &[u8], i: usize, nargs: usize) -> usize {
        self.after_index = false;
        if b.get(i) != Some(&b'[') {
            return i;
        }
        self.reordered = true;
        let Some(close) = b[i..].iter().position(|&c| c == b']') else {
            self.good = false;
            return i + 1;
        };
        let (n, ok, ni) = parse_num(b, i + 1, i + close);
        if !ok || ni != i + close || n == 0 || n > nargs {
            self.good = false;
            return i + close + 1;
        }
        self.arg = n - 1;
        self.after_index = true;
        i + close + 1
    }

    /// The argument for a `*` width or precision.
    fn int_arg(&mut self, args: &[Value]) -> Option<i64> {
        let a = args.get(self.arg)?;
        self.arg += 1;
        match a {
            Value::Int(n) if (-MAX_WIDTH..=MAX_WIDTH).contains(n) => Some(*n),
            _ => None,
        }
    }
}

/// Decimal number at `b[start..end]`: (value, found, index after).
fn parse_num(b: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    let mut num = 0usize;
    let mut i = start;
    while i < end && b[i].is_ascii_digit() {
        if num as i64 > MAX_WIDTH {
            return (0, false, end);
        }
        num = num * 10 + usize::from(b[i] - b'0');
        i += 1;
    }
    (num, i > start, i)
}

/// A pair's name, "" when it has none (pairs are built with one).
fn pair_name(p: &super::value::Object) -> &str {
    match p.entries.get("Name") {
        Some(Value::Str(s)) => s,
        _ => "",
    }
}
