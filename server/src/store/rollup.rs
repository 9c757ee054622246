//! Rollup tiers: bucket arithmetic, the rollup record, how points merge into it, and how a
//! window of records is stored.
//!
//! A record summarises the points of one series in one bucket: count, sum, min, max, the
//! first and last point (value and time) and, for counters, the reset-corrected increase
//! *between points inside the bucket* (a drop is a reset: the new value counts as the
//! increase). The increase across a bucket boundary is `inc(previous.last, next.first)`,
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
    fn of_point(start: i64, ts: i64, v: f64) -> Self {
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
        }
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
                    self.first = v;
                    if first_ts == last_ts {
                        self.last = v;
                    }
                } else {
                    self.sum += v - self.last;
                    self.last = v;
                }
                continue;
            }
            self.count += 1;
            self.sum += v;
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
                let mut r = Rollup::of_point(start, ts, v);
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

/// Encodes records as ten column streams: bucket starts, counts and time offsets as
/// integers, the rest as floats.
pub(crate) fn encode_window(records: &[Rollup]) -> Vec<u8> {
    let ints =
        |f: &dyn Fn(&Rollup) -> i64| codec::encode_ints(&records.iter().map(f).collect::<Vec<_>>());
    let floats = |f: &dyn Fn(&Rollup) -> f64| {
        codec::encode_values(&records.iter().map(f).collect::<Vec<_>>())
    };
    let cols = [
        ints(&|r| r.start),
        ints(&|r| i64::try_from(r.count).unwrap_or(i64::MAX)),
        floats(&|r| r.sum),
        floats(&|r| r.min),
        floats(&|r| r.max),
        floats(&|r| r.first),
        ints(&|r| r.first_ts.wrapping_sub(r.start)),
        floats(&|r| r.last),
        ints(&|r| r.last_ts.wrapping_sub(r.start)),
        floats(&|r| r.increase),
    ];
    let refs: Vec<&[u8]> = cols.iter().map(Vec::as_slice).collect();
    codec::join_sections(&refs)
}

/// Decodes what [`encode_window`] wrote.
pub(crate) fn decode_window(data: &[u8]) -> Result<Vec<Rollup>, CodecError> {
    let s = codec::split_sections(data, 10)?;
    let start = codec::decode_ints(s[0])?;
    let count = codec::decode_ints(s[1])?;
    let sum = codec::decode_values(s[2])?;
    let min = codec::decode_values(s[3])?;
    let max = codec::decode_values(s[4])?;
    let first = codec::decode_values(s[5])?;
    let first_off = codec::decode_ints(s[6])?;
    let last = codec::decode_values(s[7])?;
    let last_off = codec::decode_ints(s[8])?;
    let increase = codec::decode_values(s[9])?;
    let n = start.len();
    let lens = [
        count.len(),
        sum.len(),
        min.len(),
        max.len(),
        first.len(),
        first_off.len(),
        last.len(),
        last_off.len(),
        increase.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return Err(CodecError::Invalid("rollup columns differ in length"));
    }
    Ok((0..n)
        .map(|i| Rollup {
            start: start[i],
            count: u64::try_from(count[i]).unwrap_or(0),
            sum: sum[i],
            min: min[i],
            max: max[i],
            first: first[i],
            first_ts: start[i].wrapping_add(first_off[i]),
            last: last[i],
            last_ts: start[i].wrapping_add(last_off[i]),
            increase: increase[i],
        })
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
                    r.min = r.min.min(v);
                    r.max = r.max.max(v);
                    if counter {
                        r.increase += inc(r.last, v);
                    }
                    r.last = v;
                    r.last_ts = ts;
                }
                _ => out.push(Rollup::of_point(start, ts, v)),
            }
        }
        out
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
            for tier in [Tier::M5, Tier::H1, Tier::D1, Tier::Mo1] {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(points.len() + 1)).collect();
                cuts.push(0);
                cuts.push(points.len());
                cuts.sort_unstable();
                let mut records = Vec::new();
                for w in cuts.windows(2) {
                    merge_into(&mut records, tier, &points[w[0]..w[1]], true);
                }
                let want = brute_force(&points, tier, true);
                prop_assert_eq!(&records, &want);
                let back = decode_window(&encode_window(&records)).expect("decode");
                prop_assert_eq!(&back, &want);
                // The total increase over the range equals the raw one.
                let raw: f64 = points.windows(2).map(|w| inc(w[0].1, w[1].1)).sum();
                prop_assert_eq!(total_increase(&records), raw);
            }
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
