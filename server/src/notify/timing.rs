//! Time intervals in a named time zone (business hours, recurring maintenance windows) and
//! instants as operators write them.

use jiff::{Timestamp, civil::Weekday, tz::TimeZone};

/// Days of the week and times of day in a time zone; no days means every day, no times the
/// whole day. Times are `HH:MM-HH:MM`, end excluded; `22:00-06:00` runs past midnight.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    tz: TimeZone,
    /// Monday first.
    days: [bool; 7],
    /// Minutes of the day, start inclusive, end exclusive.
    ranges: Vec<(u16, u16)>,
}

impl TimeInterval {
    pub fn new(time_zone: &str, weekdays: &[String], times: &[String]) -> Result<Self, String> {
        let tz = TimeZone::get(time_zone).map_err(|e| format!("time zone {time_zone:?}: {e}"))?;
        let mut days = [weekdays.is_empty(); 7];
        for w in weekdays {
            let (a, b) = w.split_once('-').unwrap_or((w, w));
            let (a, b) = (weekday(a)?, weekday(b)?);
            let mut d = a;
            loop {
                days[d] = true;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        let ranges = times
            .iter()
            .map(|t| {
                let (a, b) = t
                    .split_once('-')
                    .ok_or_else(|| format!("times {t:?}: expected HH:MM-HH:MM"))?;
                let (a, b) = (minute(a), minute(b));
                Ok((
                    a.map_err(|e| format!("times {t:?}: {e}"))?,
                    b.map_err(|e| format!("times {t:?}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(TimeInterval { tz, days, ranges })
    }

    /// Whether the instant `ms` (Unix ms) falls within.
    pub fn contains(&self, ms: i64) -> bool {
        let Ok(t) = Timestamp::from_millisecond(ms) else {
            return false;
        };
        let z = t.to_zoned(self.tz.clone());
        let day = z.weekday().to_monday_zero_offset() as usize;
        let min = z.hour() as u16 * 60 + z.minute() as u16;
        let prev = (day + 6) % 7;
        if self.ranges.is_empty() {
            return self.days[day];
        }
        self.ranges.iter().any(|&(a, b)| {
            if a < b {
                self.days[day] && (a..b).contains(&min)
            } else {
                // Past midnight: the evening belongs to today, the morning to yesterday.
                (self.days[day] && min >= a) || (self.days[prev] && min < b)
            }
        })
    }
}

fn weekday(text: &str) -> Result<usize, String> {
    let d = match text.trim().to_ascii_lowercase().get(..3) {
        Some("mon") => Weekday::Monday,
        Some("tue") => Weekday::Tuesday,
        Some("wed") => Weekday::Wednesday,
        Some("thu") => Weekday::Thursday,
        Some("fri") => Weekday::Friday,
        Some("sat") => Weekday::Saturday,
        Some("sun") => Weekday::Sunday,
        _ => return Err(format!("weekday {text:?}: expected mon … sun")),
    };
    Ok(d.to_monday_zero_offset() as usize)
}

fn minute(text: &str) -> Result<u16, String> {
    let bad = || format!("time {text:?}: expected HH:MM (00:00 … 24:00)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// An RFC 3339 instant (`2026-12-05T22:00:00Z`, `…+01:00`) as Unix ms.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let t: Timestamp = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    Ok(t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_instant(text).expect("instant")
    }

    #[test]
    fn business_hours_follow_the_zone_and_its_summer_time() {
        let t = TimeInterval::new(
            "Europe/Berlin",
            &["mon-fri".into()],
            &["09:00-17:00".into()],
        )
        .expect("interval");
        // Friday 2026-12-04: 08:30 UTC is 09:30 in Berlin (winter, UTC+1).
        assert!(t.contains(ms("2026-12-04T08:30:00Z")));
        assert!(!t.contains(ms("2026-12-04T07:30:00Z")));
        assert!(!t.contains(ms("2026-12-05T10:00:00Z")), "Saturday");
        // July: UTC+2, so 07:30 UTC is 09:30 local.
        assert!(t.contains(ms("2026-07-03T07:30:00Z")));
        assert!(!t.contains(ms("2026-07-03T15:30:00Z")), "17:30 local");
    }

    #[test]
    fn ranges_past_midnight_and_wrapping_days() {
        let t = TimeInterval::new("UTC", &["sat-sun".into()], &["22:00-06:00".into()])
            .expect("interval");
        assert!(t.contains(ms("2026-12-05T23:00:00Z")), "Saturday night");
        assert!(
            t.contains(ms("2026-12-07T05:00:00Z")),
            "Monday morning after Sunday"
        );
        assert!(!t.contains(ms("2026-12-04T23:00:00Z")), "Friday night");
    }

    #[test]
    fn errors_say_what() {
        let e = TimeInterval::new("Mars/Olympus", &[], &[]).expect_err("zone");
        assert!(e.contains("Mars/Olympus"), "{e}");
        let e = TimeInterval::new("UTC", &["funday".into()], &[]).expect_err("day");
        assert!(e.contains("funday"), "{e}");
        let e = TimeInterval::new("UTC", &[], &["9-17".into()]).expect_err("time");
        assert!(e.contains("9-17"), "{e}");
        assert!(parse_instant("yesterday").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(
            zone in "\\PC{0,20}",
            days in proptest::collection::vec("\\PC{0,12}", 0..4),
            times in proptest::collection::vec("[0-9:\\-]{0,14}|\\PC{0,14}", 0..4),
            instant in "\\PC{0,40}",
            at in proptest::num::i64::ANY,
        ) {
            if let Ok(t) = TimeInterval::new(&zone, &days, &times) {
                let _ = t.contains(at);
            }
            let _ = parse_instant(&instant);
            let _ = crate::notify::config::parse_rate(&instant);
            let _ = crate::notify::config::parse_matchers(std::slice::from_ref(&instant));
        }
    }
}
