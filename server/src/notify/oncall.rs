//! On-call schedules: a weekly rotation of receivers with its hand-over at a local time in a
//! named zone (so a hand-over stays at 09:00 through summer time), and one-off overrides.

use jiff::{Timestamp, Unit, Zoned, civil::DateTime, tz::TimeZone};

use super::{config::ScheduleConfig, timing::parse_instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "primary" => Some(Role::Primary),
            "secondary" => Some(Role::Secondary),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    anchor: Zoned,
    rotation: Vec<String>,
    overrides: Vec<(i64, i64, Role, String)>,
}

impl Schedule {
    pub fn new(c: &ScheduleConfig) -> Result<Schedule, String> {
        let tz =
            TimeZone::get(&c.time_zone).map_err(|e| format!("time zone {:?}: {e}", c.time_zone))?;
        let start: DateTime = c.start.parse().map_err(|e| {
            format!(
                "start {:?}: expected a local date and time like 2026-01-05T09:00: {e}",
                c.start
            )
        })?;
        let anchor = start
            .to_zoned(tz)
            .map_err(|e| format!("start {:?}: {e}", c.start))?;
        if c.rotation.is_empty() {
            return Err("rotation is empty".into());
        }
        let mut overrides = Vec::new();
        for o in &c.overrides {
            let (s, e) = (parse_instant(&o.start)?, parse_instant(&o.end)?);
            if e <= s {
                return Err(format!(
                    "override of {:?}: end must be after start",
                    o.receiver
                ));
            }
            let role = Role::parse(&o.role).ok_or_else(|| {
                format!("override of {:?}: role is primary or secondary", o.receiver)
            })?;
            overrides.push((s, e, role, o.receiver.clone()));
        }
        Ok(Schedule {
            name: c.name.clone(),
            anchor,
            rotation: c.rotation.clone(),
            overrides,
        })
    }

    /// Who holds `role` at `ms`: an override if one covers it, else the rotation's person
    /// of that week (the secondary is the next one in the rotation).
    pub fn who(&self, ms: i64, role: Role) -> &str {
        if let Some(o) = self
            .overrides
            .iter()
            .rev()
            .find(|(s, e, r, _)| *r == role && (*s..*e).contains(&ms))
        {
            return &o.3;
        }
        let week = self.week(ms);
        let n = self.rotation.len();
        let i = match role {
            Role::Primary => week % n,
            Role::Secondary => (week + 1) % n,
        };
        &self.rotation[i]
    }

    /// Whole weeks since the first hand-over, in local time; 0 before it.
    fn week(&self, ms: i64) -> usize {
        let Ok(t) = Timestamp::from_millisecond(ms) else {
            return 0;
        };
        let now = t.to_zoned(self.anchor.time_zone().clone());
        if now < self.anchor {
            return 0;
        }
        now.since((Unit::Week, &self.anchor))
            .map(|span| span.get_weeks().max(0) as usize)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::OverrideConfig;

    fn ms(t: &str) -> i64 {
        parse_instant(t).expect("instant")
    }

    fn schedule(overrides: Vec<OverrideConfig>) -> Schedule {
        Schedule::new(&ScheduleConfig {
            name: "ops".into(),
            time_zone: "Europe/Berlin".into(),
            start: "2026-03-02T09:00".into(),
            rotation: vec!["ann".into(), "bob".into(), "cy".into()],
            overrides,
        })
        .expect("schedule")
    }

    #[test]
    fn weekly_hand_over_at_local_time_through_summer_time() {
        let s = schedule(vec![]);
        assert_eq!(s.who(ms("2026-03-02T08:30:00Z"), Role::Primary), "ann");
        assert_eq!(s.who(ms("2026-03-02T08:30:00Z"), Role::Secondary), "bob");
        // Monday 2026-03-09 08:59 Berlin (UTC+1) is still ann's week.
        assert_eq!(s.who(ms("2026-03-09T07:59:00Z"), Role::Primary), "ann");
        assert_eq!(s.who(ms("2026-03-09T08:00:00Z"), Role::Primary), "bob");
        // After the switch to summer time (2026-03-29), 09:00 local is 07:00 UTC.
        assert_eq!(
            s.who(ms("2026-03-30T06:59:00Z"), Role::Primary),
            "ann",
            "week 3 is ann again until 09:00 local"
        );
        assert_eq!(s.who(ms("2026-03-30T07:00:00Z"), Role::Primary), "bob");
        assert_eq!(s.who(ms("2026-03-30T07:00:00Z"), Role::Secondary), "cy");
    }

    #[test]
    fn overrides_win_within_their_time() {
        let s = schedule(vec![OverrideConfig {
            start: "2026-03-03T00:00:00Z".into(),
            end: "2026-03-04T00:00:00Z".into(),
            receiver: "dee".into(),
            role: "primary".into(),
        }]);
        assert_eq!(s.who(ms("2026-03-03T12:00:00Z"), Role::Primary), "dee");
        assert_eq!(s.who(ms("2026-03-03T12:00:00Z"), Role::Secondary), "bob");
        assert_eq!(s.who(ms("2026-03-04T00:00:00Z"), Role::Primary), "ann");
    }
}
