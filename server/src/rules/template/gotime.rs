//! Times in data templates. JSON has no time type, so RFC 3339 strings
//! stand for Go's `time.Time`: `.StartsAt.Format "15:04"` and `date`
//! read them, and Go's reference layouts (`2006-01-02 15:04:05`) format
//! them in the offset they were written with.

use super::value::civil_from_days;

/// An instant and the UTC offset it was written with. Seconds rather than
/// nanoseconds since 1970, so that Alertmanager's zero time
/// (`0001-01-01T00:00:00Z`, the `EndsAt` of firing alerts) fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    unix: i64,
    nanos: u32,
    offset: i32,
    /// Written with `Z`: Go names that zone `UTC` (an offset has no name).
    utc: bool,
}

/// The layout of `.UTC`'s result: RFC 3339 with the fraction kept.
const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

impl Stamp {
    /// Unix nanoseconds in UTC, as the rule engine's `Value::Time` holds them.
    pub(super) fn from_unix_nanos(ns: i64) -> Stamp {
        Stamp {
            unix: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as u32,
            offset: 0,
            utc: true,
        }
    }

    pub(super) fn unix(self) -> i64 {
        self.unix
    }

    pub(super) fn unix_milli(self) -> i64 {
        self.unix * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// The same instant in UTC, as an RFC 3339 string.
    pub(super) fn utc_string(self) -> String {
        let utc = Stamp {
            offset: 0,
            utc: true,
            ..self
        };
        format(utc, RFC3339_NANO)
    }
}

/// Parses `2024-05-01T10:00:00Z` or `2024-05-01T12:00:00.5+02:00`, as Go's
/// `time.Parse(time.RFC3339, s)` accepts them; None for anything else.
pub(super) fn parse_rfc3339(s: &str) -> Option<Stamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, min, sec) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let (nanos, rest) = fraction(&b[19..])?;
    let (offset, utc) = zone(rest)?;
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + hour * 3600 + min * 60 + sec;
    Some(Stamp {
        unix: local - i64::from(offset),
        nanos,
        offset,
        utc,
    })
}

/// The number written in `b[at..at + n]`, all ASCII digits.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let field = b.get(at..at + n)?;
    field.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// An optional `.123456789` (one to nine digits), and what follows it.
fn fraction(b: &[u8]) -> Option<(u32, &[u8])> {
    let Some(rest) = b.strip_prefix(b".") else {
        return Some((0, b));
    };
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 9 {
        return None;
    }
    let value = digits(rest, 0, n)?;
    let nanos = value * 10i64.pow(9 - n as u32);
    Some((u32::try_from(nanos).ok()?, &rest[n..]))
}

/// `Z` or `±hh:mm`, ending the text: the offset in seconds east of UTC.
fn zone(b: &[u8]) -> Option<(i32, bool)> {
    if b == b"Z" {
        return Some((0, true));
    }
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = (digits(b, 1, 2)?, digits(b, 4, 2)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some((sign * (h as i32 * 3600 + m as i32 * 60), false))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The wall clock of a stamp in its own offset.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nanos: u32,
    /// 0 is Sunday.
    weekday: i64,
    /// 1 is January 1st.
    yday: i64,
    offset: i32,
    utc: bool,
}

fn civil(t: Stamp) -> Civil {
    let local = t.unix + i64::from(t.offset);
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        min: sod / 60 % 60,
        sec: sod % 60,
        nanos: t.nanos,
        weekday: (days + 4).rem_euclid(7),
        yday: days - days_from_civil(year, 1, 1) + 1,
        offset: t.offset,
        utc: t.utc,
    }
}

/// The elements of Go's reference time `Mon Jan 2 15:04:05 MST 2006`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    PmLower,
    /// `MST`: the zone's name, or `-0700` when it has none.
    Tz,
    /// `-0700`-style offsets: colon, with seconds, without minutes.
    NumTz {
        colon: bool,
        seconds: bool,
        short: bool,
    },
    /// `Z07:00`-style offsets: like `NumTz`, but `Z` for UTC.
    IsoTz {
        colon: bool,
        seconds: bool,
        short: bool,
    },
    /// `.000` (`zeros`) or `.999` (trailing zeros trimmed), with `.` or `,`.
    Frac {
        digits: usize,
        zeros: bool,
        sep: char,
    },
}

/// Layout words in the order Go's `nextStdChunk` tries them at one position.
const WORDS: &[(&str, Std)] = &[
    ("January", Std::LongMonth),
    ("Monday", Std::LongWeekDay),
    ("MST", Std::Tz),
    ("01", Std::ZeroMonth),
    ("02", Std::ZeroDay),
    ("03", Std::ZeroHour12),
    ("04", Std::ZeroMinute),
    ("05", Std::ZeroSecond),
    ("06", Std::Year),
    ("002", Std::ZeroYearDay),
    ("15", Std::Hour),
    ("1", Std::NumMonth),
    ("2006", Std::LongYear),
    ("2", Std::Day),
    ("_2", Std::UnderDay),
    ("__2", Std::UnderYearDay),
    ("3", Std::Hour12),
    ("4", Std::Minute),
    ("5", Std::Second),
    ("PM", Std::Pm),
    ("pm", Std::PmLower),
];

const fn tz(iso: bool, colon: bool, seconds: bool, short: bool) -> Std {
    if iso {
        Std::IsoTz {
            colon,
            seconds,
            short,
        }
    } else {
        Std::NumTz {
            colon,
            seconds,
            short,
        }
    }
}

const ZONES: &[(&str, Std)] = &[
    ("-070000", tz(false, false, true, false)),
    ("-07:00:00", tz(false, true, true, false)),
    ("-0700", tz(false, false, false, false)),
    ("-07:00", tz(false, true, false, false)),
    ("-07", tz(false, false, false, true)),
    ("Z070000", tz(true, false, true, false)),
    ("Z07:00:00", tz(true, true, true, false)),
    ("Z0700", tz(true, false, false, false)),
    ("Z07:00", tz(true, true, false, false)),
    ("Z07", tz(true, false, false, true)),
];

/// The layout element starting `s`, and its length; None for a literal byte.
fn element(s: &str) -> Option<(Std, usize)> {
    let b = s.as_bytes();
    if !b.first().is_some_and(|c| b"JM0123456_Pp-Z.,".contains(c)) {
        return None;
    }
    // `Jan` and `Mon` are words only when no lower-case letter follows.
    let short_name = |word: &str, std: Std| {
        let after = b.get(word.len()).copied();
        (s.starts_with(word) && !after.is_some_and(|c| c.is_ascii_lowercase()))
            .then_some((std, word.len()))
    };
    if s.starts_with("_2006") {
        return None; // A literal `_` before the year.
    }
    if let Some(found) = fraction_element(b) {
        return Some(found);
    }
    let fixed = WORDS
        .iter()
        .chain(ZONES)
        .find(|(word, _)| s.starts_with(word));
    // `January` and `Monday` come first in WORDS, so the short forms are tried after them.
    fixed
        .map(|(word, std)| (*std, word.len()))
        .or_else(|| short_name("Jan", Std::Month))
        .or_else(|| short_name("Mon", Std::WeekDay))
}

/// `.000`, `,999`...: a run of one repeated digit not followed by another digit.
fn fraction_element(b: &[u8]) -> Option<(Std, usize)> {
    let (&sep, rest) = b.split_first()?;
    if sep != b'.' && sep != b',' {
        return None;
    }
    let digit = *rest.first().filter(|c| **c == b'0' || **c == b'9')?;
    let n = rest.iter().take_while(|c| **c == digit).count();
    if rest.get(n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let std = Std::Frac {
        digits: n,
        zeros: digit == b'0',
        sep: sep as char,
    };
    Some((std, n + 1))
}

/// Go's `Time.Format`: every element of the reference time in `layout`
/// replaced by the stamp's.
pub(super) fn format(t: Stamp, layout: &str) -> String {
    let c = civil(t);
    let mut out = String::with_capacity(layout.len() + 16);
    let mut rest = layout;
    while let Some(ch) = rest.chars().next() {
        match element(rest) {
            Some((std, len)) => {
                write_element(&mut out, std, &c);
                rest = &rest[len..];
            }
            None => {
                out.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn write_element(out: &mut String, std: Std, c: &Civil) {
    let month = MONTHS[(c.month - 1).clamp(0, 11) as usize];
    let weekday = DAYS[c.weekday.clamp(0, 6) as usize];
    let hour12 = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
    let text = match std {
        Std::LongMonth => month.to_string(),
        Std::Month => month[..3].to_string(),
        Std::NumMonth => c.month.to_string(),
        Std::ZeroMonth => format!("{:02}", c.month),
        Std::LongWeekDay => weekday.to_string(),
        Std::WeekDay => weekday[..3].to_string(),
        Std::Day => c.day.to_string(),
        Std::UnderDay => format!("{:>2}", c.day),
        Std::ZeroDay => format!("{:02}", c.day),
        Std::UnderYearDay => format!("{:>3}", c.yday),
        Std::ZeroYearDay => format!("{:03}", c.yday),
        Std::Hour => format!("{:02}", c.hour),
        Std::Hour12 => hour12.to_string(),
        Std::ZeroHour12 => format!("{hour12:02}"),
        Std::Minute => c.min.to_string(),
        Std::ZeroMinute => format!("{:02}", c.min),
        Std::Second => c.sec.to_string(),
        Std::ZeroSecond => format!("{:02}", c.sec),
        Std::LongYear => format!("{:04}", c.year),
        Std::Year => format!("{:02}", c.year.rem_euclid(100)),
        Std::Pm => if c.hour >= 12 { "PM" } else { "AM" }.to_string(),
        Std::PmLower => if c.hour >= 12 { "pm" } else { "am" }.to_string(),
        Std::Tz if c.utc => "UTC".to_string(),
        Std::Tz => offset_text(c.offset, false, false, false),
        Std::IsoTz { .. } if c.offset == 0 => "Z".to_string(),
        Std::IsoTz {
            colon,
            seconds,
            short,
        }
        | Std::NumTz {
            colon,
            seconds,
            short,
        } => offset_text(c.offset, colon, seconds, short),
        Std::Frac { digits, zeros, sep } => fraction_text(c.nanos, digits, zeros, sep),
    };
    out.push_str(&text);
}

/// `+0200`, `+02:00`, `+02`, `+020000`...
fn offset_text(offset: i32, colon: bool, seconds: bool, short: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{:02}", abs / 3600);
    if !short {
        out.push_str(&format!("{sep}{:02}", abs / 60 % 60));
    }
    if seconds {
        out.push_str(&format!("{sep}{:02}", abs % 60));
    }
    out
}

/// Go's `appendNano`: `digits` places (at most nine), trailing zeros
/// and then the separator dropped for the `9` form.
fn fraction_text(nanos: u32, digits: usize, zeros: bool, sep: char) -> String {
    if !zeros && (digits == 0 || nanos == 0) {
        return String::new();
    }
    let all = format!("{nanos:09}");
    let kept = &all[..digits.min(9)];
    let kept = if zeros {
        kept
    } else {
        kept.trim_end_matches('0')
    };
    if kept.is_empty() {
        return String::new();
    }
    format!("{sep}{kept}")
}
