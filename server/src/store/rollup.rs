//! Rollup tiers: bucket arithmetic, the rollup record, how points merge into it, and how a
//! window of records is stored.
//!
//! A record summarises the points of one series in one bucket: count, sum, min, max, the
//! first and last point (value and time), for gauges the sum of squares (variance and
//! anomaly rules need it) and, for counters, the reset-corrected increase *between points
//! inside the bucket* (a drop is a reset: the new value counts as the increase). The increase across a bucket boundary is `inc(previous.last, next.first)`,
//! so a range's total increase is the sum of its records' increases plus those boundary
//! terms ([`total_increase`]); keeping it out of the record is what lets late points merge
//! into one record without reading its neighbours.
//!
//! Merging is exact for points before the record's first or after its last point (the
//! normal case: in-order data, backfill of a gap); a point *between* existing points updates
//! count, sum, min and max exactly but leaves the increase as it was, which is exact for a
//! monotonic counter and an approximation across a reset. A point at exactly the first or
//! last timestamp replaces that value (sum corrected), since the raw tier keeps the later
//! write too. NaN values (stale markers) are not aggregated.
//!
//! Buckets are UTC: 5 min, 1 h, 1 day, calendar month. Records are stored per window (one
//! SQLite row per series, tier and window): a day of 5-minute records, a week of hourly, a
//! calendar month of daily, a calendar year of monthly ones; each window is one encoded blob
//! of columns (see [`encode_window`]).

use super::{
    Rollup, Tier,
    codec::{self, CodecError},
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil (year, month) of a day number.
fn civil_from_days(z: i64) -> (i64, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m)
}

fn month_start(ts: i64) -> i64 {
    let (y, m) = civil_from_days(ts.div_euclid(DAY));
    days_from_civil(y, m, 1).saturating_mul(DAY)
}

fn next_month(ts: i64) -> i64 {
    let (y, m) = civil_from_days(ts.div_euclid(DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1).saturating_mul(DAY)
}

fn year_start(ts: i64) -> i64 {
    let (y, _) = civil_from_days(ts.div_euclid(DAY));
    days_from_civil(y, 1, 1).saturating_mul(DAY)
}

fn next_year(ts: i64) -> i64 {
    let (y, _) = civil_from_days(ts.div_euclid(DAY));
    days_from_civil(y + 1, 1, 1).saturating_mul(DAY)
}

fn floor(ts: i64, step: i64) -> i64 {
    ts.div_euclid(step).saturating_mul(step)
}

impl Tier {
    /// Start of the bucket that holds `ts` (the raw tier has no buckets: `ts` itself).
    pub fn bucket(self, ts: i64) -> i64 {
        match self {
            Tier::Raw => ts,
            Tier::M5 => floor(ts, 5 * MINUTE),
            Tier::H1 => floor(ts, HOUR),
            Tier::D1 => floor(ts, DAY),
            Tier::Mo1 => month_start(ts),
        }
    }

    /// End (exclusive) of the bucket that starts at `start`.
    pub fn bucket_end(self, start: i64) -> i64 {
        match self {
            Tier::Raw => start.saturating_add(1),
            Tier::M5 => start.saturating_add(5 * MINUTE),
            Tier::H1 => start.saturating_add(HOUR),
            Tier::D1 => start.saturating_add(DAY),
            Tier::Mo1 => next_month(start),
        }
    }

    /// The storage window `[start, end)` that holds the bucket of `ts`.
    pub(crate) fn window(self, ts: i64) -> (i64, i64) {
        match self {
            Tier::Raw | Tier::M5 => {
                let s = floor(ts, DAY);
                (s, s.saturating_add(DAY))
            }
            Tier::H1 => {
                let s = floor(ts, 7 * DAY);
                (s, s.saturating_add(7 * DAY))
            }
            Tier::D1 => (month_start(ts), next_month(ts)),
            Tier::Mo1 => (year_start(ts), next_year(ts)),
        }
    }
}

/// The reset-corrected increase from `a` to `b`.
pub(crate) fn inc(a: f64, b: f64) -> f64 {
    if b >= a { b - a } else { b }
}

impl Rollup {
    fn of_point(start: i64, ts: i64, v: f64, counter: bool) -> Self {
        Rollup {
            start,
            count: 1,
            sum: v,
            min: v,
            max: v,
            first: v,
            first_ts: ts,
            last: v,
            last_ts: ts,
            increase: 0.0,
            // NaN stays NaN through every merge: a counter's variance is its rate's.
            sum_sq: if counter { f64::NAN } else { v * v },
        }
    }

    /// Whether `increase` is exactly `last - first`, as it is while the bucket holds no
    /// reset (the steps' differences are exact between values of one magnitude, so their
    /// sum telescopes): the window codec then stores no value for it.
    fn increase_is_span(&self) -> bool {
        self.increase.to_bits() == (self.last - self.first).to_bits()
    }

    /// Merges points of this record's bucket, sorted by time with distinct timestamps.
    pub(crate) fn merge(&mut self, points: &[(i64, f64)], counter: bool) {
        let (first_ts, last_ts) = (self.first_ts, self.last_ts);
        let mut pre = Vec::new();
        for &(ts, v) in points {
            if v.is_nan() {
                continue;
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            if ts == first_ts || ts == last_ts {
                // A rewrite of a point already counted: replace, do not count twice.
                if ts == first_ts {
                    self.sum += v - self.first;
                    self.sum_sq += v * v - self.first * self.first;
                    self.first = v;
                    if first_ts == last_ts {
                        self.last = v;
                    }
                } else {
                    self.sum += v - self.last;
                    self.sum_sq += v * v - self.last * self.last;
                    self.last = v;
                }
                continue;
            }
            self.count += 1;
            self.sum += v;
            self.sum_sq += v * v;
            if ts < first_ts {
                pre.push((ts, v));
            } else if ts > self.last_ts {
                if counter {
                    self.increase += inc(self.last, v);
                }
                self.last = v;
                self.last_ts = ts;
            }
            // Between first and last: count, sum, min and max only (see the module doc).
        }
        // Newest first, so that each prepended point's successor is already in place.
        for &(ts, v) in pre.iter().rev() {
            if counter {
                self.increase += inc(v, self.first);
            }
            self.first = v;
            self.first_ts = ts;
        }
    }
}

/// Merges sorted points (distinct timestamps, all in `[window start, end)`) into the sorted
/// records of one window.
pub(crate) fn merge_into(
    records: &mut Vec<Rollup>,
    tier: Tier,
    points: &[(i64, f64)],
    counter: bool,
) {
    let mut i = 0;
    while i < points.len() {
        let start = tier.bucket(points[i].0);
        let end = tier.bucket_end(start);
        let j = i + points[i..].partition_point(|p| p.0 < end);
        let group = &points[i..j];
        i = j;
        let Some(first_real) = group.iter().position(|p| !p.1.is_nan()) else {
            continue;
        };
        match records.binary_search_by_key(&start, |r| r.start) {
            Ok(at) => records[at].merge(&group[first_real..], counter),
            Err(at) => {
                let (ts, v) = group[first_real];
                let mut r = Rollup::of_point(start, ts, v, counter);
                r.merge(&group[first_real + 1..], counter);
                records.insert(at, r);
            }
        }
    }
}

/// The total reset-corrected increase over consecutive records of one series.
pub fn total_increase(records: &[Rollup]) -> f64 {
    let within: f64 = records.iter().map(|r| r.increase).sum();
    let across: f64 = records.windows(2).map(|w| inc(w[0].last, w[1].first)).sum();
    within + across
}

/// Window format version 2; version 1 (ten columns, no sum of squares, the increase as
/// floats) is still read.
const WINDOW_V2: u8 = 2;

/// How a record's increase is stored: most need no value at all.
const INC_ZERO: i64 = 0;
const INC_SPAN: i64 = 1;
const INC_VALUE: i64 = 2;

fn increase_code(r: &Rollup) -> i64 {
    if r.increase.to_bits() == 0f64.to_bits() {
        INC_ZERO
    } else if r.increase_is_span() {
        INC_SPAN
    } else {
        INC_VALUE
    }
}

/// What a record's columns are guessed to be from those decoded before them; the codec's
/// near mode then stores only the (decimal) difference. For a counter without reset the
/// minimum is the first value and the maximum the last, so those cost nothing.
fn guess_first(last: &[f64], i: usize) -> f64 {
    // The bucket before ended where this one starts, give or take one step.
    last[i.saturating_sub(1)]
}

fn guess_min(first: f64, last: f64) -> f64 {
    first.min(last)
}

fn guess_max(first: f64, last: f64) -> f64 {
    first.max(last)
}

fn guess_sum(count: i64, first: f64, last: f64) -> f64 {
    // The trapezoid: exact for a counter at a steady rate.
    count as f64 * (first + last) / 2.0
}

fn guess_sum_sq(count: i64, sum: f64) -> f64 {
    // Exact when every value of the bucket is the same.
    if count > 0 {
        sum * sum / count as f64
    } else {
        0.0
    }
}

/// Encodes records as column streams, each with its own codec: bucket starts, counts and
/// time offsets as integers, values as floats (decimal or XOR, whichever is smaller); the
/// increase as a code per record (zero, `last - first`, or a value that follows), and the
/// sum of squares only when some record has one (gauges; counters keep NaN).
///
/// Sections: an empty one (a version-1 window never starts with one, so this tells the
/// versions apart), the version byte, then `start, count, sum, min, max, first, first_off,
/// last, last_off, increase codes, increase values, sum_sq`.
pub(crate) fn encode_window(records: &[Rollup]) -> Vec<u8> {
    let ints =
        |f: &dyn Fn(&Rollup) -> i64| codec::encode_ints(&records.iter().map(f).collect::<Vec<_>>());
    let floats = |f: &dyn Fn(&Rollup) -> f64| {
        codec::encode_values(&records.iter().map(f).collect::<Vec<_>>())
    };
    let inc_values: Vec<f64> = records
        .iter()
        .filter(|r| increase_code(r) == INC_VALUE)
        .map(|r| r.increase)
        .collect();
    let col = |f: &dyn Fn(&Rollup) -> f64| records.iter().map(f).collect::<Vec<_>>();
    let (first, last) = (col(&|r| r.first), col(&|r| r.last));
    let near = |values: Vec<f64>, guess: &dyn Fn(usize, &Rollup) -> f64| {
        let guesses: Vec<f64> = records
            .iter()
            .enumerate()
            .map(|(i, r)| guess(i, r))
            .collect();
        codec::encode_values_near(&values, &guesses)
    };
    let count = |r: &Rollup| i64::try_from(r.count).unwrap_or(i64::MAX);
    let sum_sq = if records.iter().all(|r| r.sum_sq.is_nan()) {
        Vec::new()
    } else {
        near(col(&|r| r.sum_sq), &|_, r| guess_sum_sq(count(r), r.sum))
    };
    let cols = [
        Vec::new(),
        vec![WINDOW_V2],
        ints(&|r| r.start),
        ints(&count),
        near(col(&|r| r.sum), &|_, r| {
            guess_sum(count(r), r.first, r.last)
        }),
        near(col(&|r| r.min), &|_, r| guess_min(r.first, r.last)),
        near(col(&|r| r.max), &|_, r| guess_max(r.first, r.last)),
        near(first, &|i, _| guess_first(&last, i)),
        ints(&|r| r.first_ts.wrapping_sub(r.start)),
        floats(&|r| r.last),
        ints(&|r| r.last_ts.wrapping_sub(r.start)),
        ints(&increase_code),
        codec::encode_values(&inc_values),
        sum_sq,
    ];
    let refs: Vec<&[u8]> = cols.iter().map(Vec::as_slice).collect();
    codec::join_sections(&refs)
}

/// The columns every version has.
struct Columns {
    start: Vec<i64>,
    count: Vec<i64>,
    sum: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    first: Vec<f64>,
    first_off: Vec<i64>,
    last: Vec<f64>,
    last_off: Vec<i64>,
}

impl Columns {
    fn decode(s: &[&[u8]]) -> Result<Self, CodecError> {
        let c = Columns {
            start: codec::decode_ints(s[0])?,
            count: codec::decode_ints(s[1])?,
            sum: codec::decode_values(s[2])?,
            min: codec::decode_values(s[3])?,
            max: codec::decode_values(s[4])?,
            first: codec::decode_values(s[5])?,
            first_off: codec::decode_ints(s[6])?,
            last: codec::decode_values(s[7])?,
            last_off: codec::decode_ints(s[8])?,
        };
        c.check_lengths()?;
        Ok(c)
    }

    fn check_lengths(&self) -> Result<(), CodecError> {
        let n = self.start.len();
        let lens = [
            self.count.len(),
            self.sum.len(),
            self.min.len(),
            self.max.len(),
            self.first.len(),
            self.first_off.len(),
            self.last.len(),
            self.last_off.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(CodecError::Invalid("rollup columns differ in length"));
        }
        Ok(())
    }

    fn record(&self, i: usize, increase: f64, sum_sq: f64) -> Rollup {
        Rollup {
            start: self.start[i],
            count: u64::try_from(self.count[i]).unwrap_or(0),
            sum: self.sum[i],
            min: self.min[i],
            max: self.max[i],
            first: self.first[i],
            first_ts: self.start[i].wrapping_add(self.first_off[i]),
            last: self.last[i],
            last_ts: self.start[i].wrapping_add(self.last_off[i]),
            increase,
            sum_sq,
        }
    }
}

/// Decodes what [`encode_window`] wrote, or a version-1 window.
pub(crate) fn decode_window(data: &[u8]) -> Result<Vec<Rollup>, CodecError> {
    let head = codec::split_sections(data, 2)?;
    if !head[0].is_empty() {
        return decode_window_v1(data);
    }
    let s = codec::split_sections(data, 14)?;
    if s[1] != [WINDOW_V2] {
        return Err(CodecError::Invalid("unknown rollup window version"));
    }
    let c = columns_v2(&s[2..11])?;
    let n = c.start.len();
    let codes = codec::decode_ints(s[11])?;
    let values = codec::decode_values(s[12])?;
    let sum_sq = if s[13].is_empty() {
        vec![f64::NAN; n]
    } else {
        codec::decode_values_near(s[13], |i, _| {
            guess_sum_sq(
                c.count.get(i).copied().unwrap_or(0),
                c.sum.get(i).copied().unwrap_or(0.0),
            )
        })?
    };
    if codes.len() != n || sum_sq.len() != n {
        return Err(CodecError::Invalid("rollup columns differ in length"));
    }
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let increase = match codes[i] {
            INC_ZERO => 0.0,
            INC_SPAN => c.last[i] - c.first[i],
            INC_VALUE => values
                .next()
                .ok_or(CodecError::Invalid("rollup increase values run short"))?,
            _ => return Err(CodecError::Invalid("unknown rollup increase code")),
        };
        out.push(c.record(i, increase, sum_sq[i]));
    }
    Ok(out)
}

/// Version 2's first nine columns: `last` plain, the others near their guesses, decoded
/// in the order the guesses need.
fn columns_v2(s: &[&[u8]]) -> Result<Columns, CodecError> {
    let start = codec::decode_ints(s[0])?;
    let count = codec::decode_ints(s[1])?;
    let last = codec::decode_values(s[7])?;
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
    let first = codec::decode_values_near(s[5], |i, _| {
        if last.is_empty() {
            0.0
        } else {
            guess_first(&last, i.min(last.len() - 1))
        }
    })?;
    let min = codec::decode_values_near(s[3], |i, _| guess_min(at(&first, i), at(&last, i)))?;
    let max = codec::decode_values_near(s[4], |i, _| guess_max(at(&first, i), at(&last, i)))?;
    let sum = codec::decode_values_near(s[2], |i, _| {
        guess_sum(
            count.get(i).copied().unwrap_or(0),
            at(&first, i),
            at(&last, i),
        )
    })?;
    let c = Columns {
        start,
        count,
        sum,
        min,
        max,
        first,
        first_off: codec::decode_ints(s[6])?,
        last,
        last_off: codec::decode_ints(s[8])?,
    };
    c.check_lengths()?;
    Ok(c)
}

/// Version 1: ten columns, the increase as floats, no sum of squares (NaN).
fn decode_window_v1(data: &[u8]) -> Result<Vec<Rollup>, CodecError> {
    let s = codec::split_sections(data, 10)?;
    let c = Columns::decode(&s[..9])?;
    let increase = codec::decode_values(s[9])?;
    if increase.len() != c.start.len() {
        return Err(CodecError::Invalid("rollup columns differ in length"));
    }
    Ok((0..increase.len())
        .map(|i| c.record(i, increase[i], f64::NAN))
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rollups of `tier` computed straight from sorted raw points.
    pub(crate) fn brute_force(points: &[(i64, f64)], tier: Tier, counter: bool) -> Vec<Rollup> {
        let mut out: Vec<Rollup> = Vec::new();
        for &(ts, v) in points {
            let start = tier.bucket(ts);
            match out.last_mut() {
                Some(r) if r.start == start => {
                    r.count += 1;
                    r.sum += v;
                    r.sum_sq += v * v;
                    r.min = r.min.min(v);
                    r.max = r.max.max(v);
                    if counter {
                        r.increase += inc(r.last, v);
                    }
                    r.last = v;
                    r.last_ts = ts;
                }
                _ => out.push(Rollup::of_point(start, ts, v, counter)),
            }
        }
        out
    }

    /// A window as the store wrote it before version 2: ten columns, the increase as floats.
    fn encode_window_v1(records: &[Rollup]) -> Vec<u8> {
        let ints = |f: &dyn Fn(&Rollup) -> i64| {
            codec::encode_ints(&records.iter().map(f).collect::<Vec<_>>())
        };
        let floats = |f: &dyn Fn(&Rollup) -> f64| {
            codec::encode_values(&records.iter().map(f).collect::<Vec<_>>())
        };
        let cols = [
            ints(&|r| r.start),
            ints(&|r| r.count as i64),
            floats(&|r| r.sum),
            floats(&|r| r.min),
            floats(&|r| r.max),
            floats(&|r| r.first),
            ints(&|r| r.first_ts - r.start),
            floats(&|r| r.last),
            ints(&|r| r.last_ts - r.start),
            floats(&|r| r.increase),
        ];
        let refs: Vec<&[u8]> = cols.iter().map(Vec::as_slice).collect();
        codec::join_sections(&refs)
    }

    #[test]
    fn version_one_windows_are_read_without_sum_of_squares() {
        let points: Vec<(i64, f64)> = (0..50).map(|i| (i * 61_000, (i % 7) as f64)).collect();
        let mut records = Vec::new();
        merge_into(&mut records, Tier::M5, &points, false);
        assert!(records.iter().all(|r| !r.sum_sq.is_nan()));
        let back = decode_window(&encode_window_v1(&records)).unwrap();
        assert_eq!(back.len(), records.len());
        for (b, r) in back.iter().zip(&records) {
            assert!(b.sum_sq.is_nan());
            assert_eq!(
                Rollup {
                    sum_sq: f64::NAN,
                    ..*r
                },
                *b
            );
        }
    }

    #[test]
    fn a_counter_without_reset_stores_no_increase_value() {
        // Without a reset the increase summed step by step is last - first, bit for bit,
        // even for decimals that binary cannot hold exactly; the codec stores a flag.
        // CPU seconds: ticks / 100 added up, as /proc/stat reads after the division.
        let mut v = 12_345.67;
        let mut step = 17u64;
        let points: Vec<(i64, f64)> = (0..300)
            .map(|i| {
                step = step.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                v += (step >> 55) as f64 / 100.0;
                (i * 1_000, v)
            })
            .collect();
        let mut records = Vec::new();
        for part in points.chunks(7) {
            merge_into(&mut records, Tier::M5, part, true);
        }
        assert!(records.iter().all(|r| increase_code(r) == INC_SPAN));
        // The window carries no increase value at all: the section of values is empty.
        let data = encode_window(&records);
        let sections = codec::split_sections(&data, 14).unwrap();
        assert!(codec::decode_values(sections[12]).unwrap().is_empty());
        assert_eq!(decode_window(&data).unwrap(), records);
        let mut reset = points.clone();
        reset[150].1 = 0.0;
        let mut with_reset = Vec::new();
        merge_into(&mut with_reset, Tier::M5, &reset, true);
        assert_eq!(increase_code(&with_reset[0]), INC_VALUE);
        let data = encode_window(&with_reset);
        let sections = codec::split_sections(&data, 14).unwrap();
        assert_eq!(codec::decode_values(sections[12]).unwrap().len(), 1);
        assert_eq!(decode_window(&data).unwrap(), with_reset);
    }

    #[test]
    fn calendar() {
        // 2024-02-29 12:00 UTC.
        let ts = 1_709_208_000_000;
        assert_eq!(Tier::Mo1.bucket(ts), 1_706_745_600_000); // 2024-02-01
        assert_eq!(Tier::Mo1.bucket_end(1_706_745_600_000), 1_709_251_200_000); // 03-01
        assert_eq!(Tier::Mo1.window(ts), (1_704_067_200_000, 1_735_689_600_000));
        assert_eq!(Tier::D1.window(ts), (1_706_745_600_000, 1_709_251_200_000));
        assert_eq!(Tier::Mo1.bucket(-1), -2_678_400_000); // 1969-12-01
        for tier in [Tier::M5, Tier::H1, Tier::D1, Tier::Mo1] {
            let b = tier.bucket(ts);
            assert!(b <= ts && ts < tier.bucket_end(b));
            let (ws, we) = tier.window(ts);
            assert!(ws <= b && tier.bucket_end(b) <= we);
        }
    }

    fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
        // Integer values keep sums exact whatever the order of additions; gaps and resets.
        prop::collection::vec(
            (1i64..200_000, 0u32..50, prop::bool::weighted(0.05)),
            1..400,
        )
        .prop_map(|steps| {
            let (mut ts, mut v) = (1_700_000_000_000i64, 1_000.0);
            steps
                .into_iter()
                .map(|(gap, add, reset)| {
                    ts += if gap > 190_000 { gap * 500 } else { gap };
                    v = if reset {
                        f64::from(add)
                    } else {
                        v + f64::from(add)
                    };
                    (ts, v)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn merged_in_pieces_equals_brute_force(points in series(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            for (tier, counter) in [Tier::M5, Tier::H1, Tier::D1, Tier::Mo1]
                .into_iter()
                .flat_map(|t| [(t, true), (t, false)])
            {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(points.len() + 1)).collect();
                cuts.push(0);
                cuts.push(points.len());
                cuts.sort_unstable();
                let mut records = Vec::new();
                for w in cuts.windows(2) {
                    merge_into(&mut records, tier, &points[w[0]..w[1]], counter);
                }
                let want = brute_force(&points, tier, counter);
                prop_assert_eq!(&records, &want);
                let back = decode_window(&encode_window(&records)).expect("decode");
                prop_assert_eq!(&back, &want);
                // Gauges keep their sum of squares; counters do not.
                prop_assert_eq!(records.iter().all(|r| r.sum_sq.is_nan()), counter);
                if counter {
                    // The total increase over the range equals the raw one.
                    let raw: f64 = points.windows(2).map(|w| inc(w[0].1, w[1].1)).sum();
                    prop_assert_eq!(total_increase(&records), raw);
                }
            }
        }

        #[test]
        fn window_decoding_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_window(&data);
        }

        #[test]
        fn damaged_windows_never_panic(points in series(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut records = Vec::new();
            merge_into(&mut records, Tier::M5, &points, false);
            let mut data = encode_window(&records);
            let i = at.index(data.len());
            data[i] = byte;
            let _ = decode_window(&data);
        }

        #[test]
        fn late_points_keep_exact_aggregates(points in series(), order in any::<u64>()) {
            // Shuffled arrival: count, sum, min, max, first and last stay exact; the
            // increase stays exact when the counter never resets.
            let mono: Vec<(i64, f64)> = points.iter().enumerate().map(|(i, p)| (p.0, i as f64 * 3.0)).collect();
            let mut shuffled = mono.clone();
            let n = shuffled.len();
            for i in 0..n {
                let j = (order.wrapping_mul(i as u64 + 1) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            let mut records = Vec::new();
            for chunk in shuffled.chunks(7) {
                let mut c = chunk.to_vec();
                c.sort_by_key(|p| p.0);
                merge_into(&mut records, Tier::H1, &c, true);
            }
            prop_assert_eq!(records, brute_force(&mono, Tier::H1, true));
        }
    }
}
