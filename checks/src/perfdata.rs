//! The Nagios plugin output format: `TEXT | PERFDATA`, long output, and performance
//! data `'label'=value[UOM];[warn];[crit];[min];[max]`, with threshold ranges
//! `[@][start:]end` (Nagios plugin development guidelines, "Plugin Output" and
//! "Threshold and Ranges").
//!
//! Output: the first line is `text | perfdata`; the lines after it are long output,
//! up to the first line holding a `|`; what follows that `|`, on that line and every
//! later one, is more performance data.
//!
//! Performance data: items separated by white space. A label with spaces or `=` is
//! single-quoted, a quote inside doubled (`'it''s'=1`). The value is a decimal number
//! (a decimal comma is accepted too) or `U` (undetermined: the item is kept, with no
//! value). The UOM is whatever follows the number up to `;` or white space. `warn` and
//! `crit` are ranges, `min` and `max` numbers, each may be empty, trailing `;` may be
//! left out and extra fields are ignored. An item that cannot be read is skipped and
//! listed; the items around it are kept.
//!
//! Ranges: `10` is 0 to 10; `10:` is 10 to infinity; `~:10` is minus infinity to 10;
//! `10:20` is 10 to 20; an alert is raised when the value is *outside* the range, or
//! *inside* it (inclusive) when the range starts with `@`.
//!
//! Every parser here is total: any string gives a result, never a panic (property
//! tested below).

use std::fmt;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_while, take_while1},
    character::complete::{char, digit0, digit1, none_of, one_of},
    combinator::{all_consuming, map, opt, recognize, value},
    multi::many0,
    sequence::{delimited, preceded},
};

/// One item of performance data.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfDatum {
    /// The label, unquoted.
    pub label: String,
    /// The value as written, in `uom`; `None` for `U`.
    pub value: Option<f64>,
    /// The unit of measurement as written (`s`, `ms`, `%`, `KB`, `c`, ... or empty).
    pub uom: String,
    /// The warning range.
    pub warn: Option<Range>,
    /// The critical range.
    pub crit: Option<Range>,
    /// The least possible value, in `uom`.
    pub min: Option<f64>,
    /// The greatest possible value, in `uom`.
    pub max: Option<f64>,
}

impl PerfDatum {
    /// What a value in this item's UOM is multiplied by to give base units (seconds,
    /// bytes); `None` for a UOM this does not know, whose values are kept as written.
    /// `%` and `c` (a counter) are kept as written; `KB`, `MB`, `GB` and `TB` are
    /// powers of 1024, as the Nagios plugins (`check_disk`, `check_swap`) write them.
    pub fn scale(&self) -> Option<f64> {
        uom_scale(&self.uom)
    }
}

/// See [`PerfDatum::scale`].
pub fn uom_scale(uom: &str) -> Option<f64> {
    const K: f64 = 1024.0;
    Some(match uom {
        "" | "s" | "%" | "B" | "c" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "ns" => 1e-9,
        "KB" | "KiB" => K,
        "MB" | "MiB" => K * K,
        "GB" | "GiB" => K * K * K,
        "TB" | "TiB" => K * K * K * K,
        _ => return None,
    })
}

/// A Nagios threshold range.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Lower bound; minus infinity for `~`.
    pub start: f64,
    /// Upper bound; infinity when left out.
    pub end: f64,
    /// `@`: alert inside the range rather than outside.
    pub inside: bool,
    /// Whether the text gave a start (`N:`), rather than the implied 0 of `N`.
    pub explicit_start: bool,
    text: String,
}

impl Range {
    /// Reads a range such as `10`, `10:`, `~:10`, `10:20`, `@10:20`.
    pub fn parse(text: &str) -> Result<Range, String> {
        let trimmed = text.trim();
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let bound = |s: &str| {
            parse_number(s).ok_or_else(|| format!("range {text:?}: {s:?} is not a number"))
        };
        let (start, end, explicit_start) = match body.split_once(':') {
            Some((start_text, end)) => {
                let start = match start_text {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    s => bound(s)?,
                };
                let end = if end.is_empty() {
                    f64::INFINITY
                } else {
                    bound(end)?
                };
                (start, end, !matches!(start_text, "" | "~"))
            }
            None if body.is_empty() => return Err(format!("range {text:?} is empty")),
            None => (0.0, bound(body)?, false),
        };
        if start > end {
            return Err(format!("range {text:?} starts after it ends"));
        }
        Ok(Range {
            start,
            end,
            inside,
            explicit_start,
            text: trimmed.to_owned(),
        })
    }

    /// Whether `value` raises an alert.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside { within } else { !within }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Performance data read from text: the items understood and the tokens skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Perfdata {
    /// Items in the order written.
    pub items: Vec<PerfDatum>,
    /// Tokens that are not items, quoted for a message.
    pub skipped: Vec<String>,
}

/// A plugin's output, split as Nagios splits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOutput {
    /// The first line, without its performance data.
    pub text: String,
    /// The long output lines.
    pub long_text: String,
    /// All performance data, its parts joined by a space.
    pub perfdata: String,
}

/// Splits output into text, long text and performance data; see the module docs.
pub fn split_output(output: &str) -> PluginOutput {
    let mut lines = output.lines();
    let first = lines.next().unwrap_or_default();
    let (text, perf) = match first.split_once('|') {
        Some((text, perf)) => (text, perf),
        None => (first, ""),
    };
    let mut long = Vec::new();
    let mut perfdata = vec![perf.trim()];
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            perfdata.push(line.trim());
        } else if let Some((text, perf)) = line.split_once('|') {
            long.push(text);
            perfdata.push(perf.trim());
            in_perfdata = true;
        } else {
            long.push(line);
        }
    }
    while long.last().is_some_and(|l| l.trim().is_empty()) {
        long.pop();
    }
    perfdata.retain(|p| !p.is_empty());
    PluginOutput {
        text: text.trim().to_owned(),
        long_text: long.join("\n"),
        perfdata: perfdata.join(" "),
    }
}

/// Reads performance data; see the module docs.
pub fn parse_perfdata(text: &str) -> Perfdata {
    let mut out = Perfdata::default();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        match item(rest) {
            Ok((after, datum)) if after.is_empty() || after.starts_with(char::is_whitespace) => {
                if out.items.iter().all(|d| d.label != datum.label) {
                    out.items.push(datum);
                } else {
                    out.skipped
                        .push(quote(&format!("{} (repeated)", datum.label)));
                }
                rest = after;
            }
            _ => {
                let end = token_end(rest);
                out.skipped.push(quote(&rest[..end]));
                rest = &rest[end..];
            }
        }
        rest = rest.trim_start();
    }
    out
}

/// Where the token at the start of `text` ends: at white space outside quotes.
fn token_end(text: &str) -> usize {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if c.is_whitespace() && !quoted {
            return i;
        }
    }
    text.len()
}

fn quote(text: &str) -> String {
    const MAX: usize = 60;
    let head: String = text.chars().take(MAX).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// A decimal number with an optional sign, fraction (`.` or `,`) and exponent; no
/// `inf` or `nan`.
fn number_text(i: &str) -> IResult<&str, &str> {
    recognize((
        opt(one_of("+-")),
        alt((
            recognize((digit1, opt((one_of(".,"), digit0)))),
            recognize((one_of(".,"), digit1)),
        )),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(i)
}

fn number(i: &str) -> IResult<&str, f64> {
    let (rest, text) = number_text(i)?;
    match text.replace(',', ".").parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((rest, v)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Float,
        ))),
    }
}

/// The whole of `text` as a number.
fn parse_number(text: &str) -> Option<f64> {
    all_consuming(number).parse(text).ok().map(|(_, v)| v)
}

fn label(i: &str) -> IResult<&str, String> {
    alt((
        map(
            delimited(
                char('\''),
                many0(alt((value('\'', tag("''")), none_of("'")))),
                char('\''),
            ),
            |chars: Vec<char>| chars.into_iter().collect(),
        ),
        map(
            take_while1(|c: char| !c.is_whitespace() && c != '=' && c != '\''),
            str::to_owned,
        ),
    ))
    .parse(i)
}

/// One field after a `;`: anything up to the next `;` or white space.
fn field(i: &str) -> IResult<&str, &str> {
    take_while(|c: char| c != ';' && !c.is_whitespace()).parse(i)
}

fn item(i: &str) -> IResult<&str, PerfDatum> {
    let (i, label) = label(i)?;
    if label.is_empty() {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let (i, _) = char('=').parse(i)?;
    let (i, value) = alt((map(number, Some), value(None, char('U')))).parse(i)?;
    let (i, uom) = take_while(|c: char| c != ';' && !c.is_whitespace()).parse(i)?;
    let (i, fields) = many0(preceded(char(';'), field)).parse(i)?;
    let fail = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify));
    let range = |n: usize| -> Result<Option<Range>, nom::Err<nom::error::Error<&str>>> {
        match fields.get(n) {
            None | Some(&"") => Ok(None),
            Some(text) => Range::parse(text).map(Some).map_err(|_| fail()),
        }
    };
    let bound = |n: usize| -> Result<Option<f64>, nom::Err<nom::error::Error<&str>>> {
        match fields.get(n) {
            None | Some(&"") => Ok(None),
            Some(text) => parse_number(text).map(Some).ok_or_else(fail),
        }
    };
    Ok((
        i,
        PerfDatum {
            label,
            value,
            uom: uom.to_owned(),
            warn: range(0)?,
            crit: range(1)?,
            min: bound(2)?,
            max: bound(3)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn datum(label: &str, value: f64, uom: &str) -> PerfDatum {
        PerfDatum {
            label: label.into(),
            value: Some(value),
            uom: uom.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    #[test]
    fn the_guidelines_examples() {
        // check_load.
        let p = parse_perfdata(
            "load1=0.160;15.000;30.000;0; load5=0.130;10.000;25.000;0; load15=0.090;5.000;20.000;0;",
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.items[0].label, "load1");
        assert_eq!(p.items[0].value, Some(0.16));
        assert_eq!(p.items[0].warn.as_ref().map(|r| r.end), Some(15.0));
        assert_eq!(p.items[0].crit.as_ref().map(|r| r.end), Some(30.0));
        assert_eq!(p.items[0].min, Some(0.0));
        assert_eq!(p.items[0].max, None);
        // check_disk, a quoted label with spaces and a binary MB.
        let p = parse_perfdata("'/ root'=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98");
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].label, "/ root");
        assert_eq!(p.items[0].value, Some(2643.0));
        assert_eq!(p.items[0].uom, "MB");
        assert_eq!(p.items[0].scale(), Some(1024.0 * 1024.0));
        assert_eq!(p.items[1].max, Some(98.0));
        // check_http: time and size.
        let p = parse_perfdata("time=0.012345s;;;0.000000 size=1234B;;;0");
        assert_eq!(
            p.items[0],
            PerfDatum {
                min: Some(0.0),
                ..datum("time", 0.012345, "s")
            }
        );
        assert_eq!(p.items[1].uom, "B");
        // Percent, counter, undetermined, microseconds.
        let p = parse_perfdata("used=45%;80;90 packets=1234c rta=U lat=250us");
        assert_eq!(p.items[0].uom, "%");
        assert_eq!(p.items[1].uom, "c");
        assert_eq!(p.items[2].value, None);
        assert_eq!(p.items[3].scale(), Some(1e-6));
    }

    #[test]
    fn quoted_labels_may_hold_quotes_equals_and_spaces() {
        let p = parse_perfdata("'it''s = odd'=1 'x'=2");
        assert_eq!(p.items[0].label, "it's = odd");
        assert_eq!(p.items[1].label, "x");
    }

    #[test]
    fn bad_items_are_skipped_and_the_rest_kept() {
        let p = parse_perfdata("a=1 junk b=x c=2;@@ 'unclosed=3 d=4");
        let labels: Vec<&str> = p.items.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["a"]);
        assert_eq!(p.skipped.len(), 4, "{:?}", p.skipped);
        let p = parse_perfdata("a=1 junk b=x c=2;@@ d=4 a=5");
        let labels: Vec<&str> = p.items.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["a", "d"]);
        assert!(
            p.skipped.iter().any(|s| s.contains("repeated")),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn decimal_commas_exponents_and_signs() {
        let p = parse_perfdata("a=0,5 b=-1.5e3ms c=+.25 d=5eggs");
        let values: Vec<Option<f64>> = p.items.iter().map(|d| d.value).collect();
        assert_eq!(values, [Some(0.5), Some(-1500.0), Some(0.25), Some(5.0)]);
        assert_eq!(p.items[3].uom, "eggs");
        assert_eq!(p.items[3].scale(), None);
        assert!(parse_perfdata("a=inf b=nan").items.is_empty());
    }

    #[test]
    fn ranges_as_the_guidelines_define_them() {
        // (range, values that alert, values that do not)
        let table: &[(&str, &[f64], &[f64])] = &[
            ("10", &[-1.0, 11.0], &[0.0, 5.0, 10.0]),
            ("10:", &[9.9, -5.0], &[10.0, 1e9]),
            ("~:10", &[10.1], &[-1e9, 10.0]),
            ("10:20", &[9.0, 21.0], &[10.0, 15.0, 20.0]),
            ("@10:20", &[10.0, 15.0, 20.0], &[9.0, 21.0]),
            ("@10", &[0.0, 10.0], &[-0.1, 10.1]),
            (":5", &[6.0], &[0.0]),
        ];
        for (text, alert, quiet) in table {
            let range = Range::parse(text).expect(text);
            for v in *alert {
                assert!(range.alerts(*v), "{text} should alert on {v}");
            }
            for v in *quiet {
                assert!(!range.alerts(*v), "{text} should not alert on {v}");
            }
            assert_eq!(range.to_string(), *text);
        }
        assert!(Range::parse("10:20").expect("range").explicit_start);
        assert!(!Range::parse("20").expect("range").explicit_start);
        assert!(!Range::parse("~:20").expect("range").explicit_start);
        for bad in ["", "@", "20:10", "x", "1:2:3", "~", "10:x"] {
            assert!(Range::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn output_is_split_as_nagios_does() {
        let out = split_output(
            "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
             / 15272 MB (77%);\n\
             /boot 68 MB (69%);\n\
             /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
             /home=69357MB;253404;253409;0;253414\n\
             /var/log=818MB;970;975;0;980\n",
        );
        assert_eq!(out.text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            out.long_text,
            "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/var/log 819 MB (84%); "
        );
        let p = parse_perfdata(&out.perfdata);
        let labels: Vec<&str> = p.items.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);

        let plain = split_output("OK - fine\n");
        assert_eq!(plain.text, "OK - fine");
        assert_eq!(plain.perfdata, "");
        assert_eq!(split_output(""), PluginOutput::default());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let out = split_output(&text);
            let _ = parse_perfdata(&out.perfdata);
            let _ = parse_perfdata(&text);
            let _ = Range::parse(&text);
        }

        #[test]
        fn never_panics_on_perfdata_like_text(text in "[ 'a=;:@~.,0-9eEU%sBKMc+-]{0,64}") {
            let p = parse_perfdata(&text);
            for d in p.items {
                prop_assert!(!d.label.is_empty());
                prop_assert!(d.value.is_none_or(f64::is_finite));
            }
        }

        #[test]
        fn written_items_read_back(
            label in "[a-z][a-z0-9_ ]{0,12}",
            value in -1e6f64..1e6,
            uom in prop::sample::select(vec!["", "s", "ms", "%", "B", "KB", "c"]),
        ) {
            let text = format!("'{label}'={value}{uom};1:2;@3;0;100");
            let p = parse_perfdata(&text);
            prop_assert_eq!(p.items.len(), 1, "{:?}", p);
            let d = &p.items[0];
            prop_assert_eq!(&d.label, &label);
            prop_assert_eq!(d.value, Some(value));
            prop_assert_eq!(&d.uom, uom);
            prop_assert_eq!(d.max, Some(100.0));
            prop_assert!(d.crit.as_ref().is_some_and(|r| r.inside));
        }
    }
}
