//! `time`: the system clock and its discipline, as node_exporter's `time` and `timex`
//! collectors send them.
//!
//! - `node_time_seconds`: the clock itself, so that the server can see skew.
//! - `node_time_clocksource_{available,current}_info{device,clocksource}` from sysfs.
//! - `node_timex_*` from `adjtimex(2)` with nothing to change: NTP/PTP offset,
//!   frequency, error estimates, PPS figures and whether the clock is synchronised.
//!   node_exporter's newer `node_timex_offset_overflow_total` (a count of implausible
//!   offsets on some hypervisors) is not sent.
//!
//! `adjtimex` answers for the running kernel whatever the roots; in a container it is
//! the host's clock all the same. node_exporter's `node_time_zone_offset_seconds` needs
//! the host's time zone database and is not sent.

use std::time::{SystemTime, UNIX_EPOCH};

use sysward_platform::{Roots, Timex};

use crate::{CollectError, Collector, Kind, Output, Sample};

/// Seconds since the Unix epoch (gauge).
pub const TIME_SECONDS: &str = "node_time_seconds";
/// A clock source the kernel could use (gauge, 1; labels `device`, `clocksource`).
pub const CLOCKSOURCE_AVAILABLE: &str = "node_time_clocksource_available_info";
/// The clock source in use (gauge, 1; labels `device`, `clocksource`).
pub const CLOCKSOURCE_CURRENT: &str = "node_time_clocksource_current_info";
/// 1 when the clock is synchronised (gauge).
pub const SYNC_STATUS: &str = "node_timex_sync_status";

/// One second in microseconds and nanoseconds.
const MICRO: f64 = 1e6;
const NANO: f64 = 1e9;
/// adjtimex(2) frequencies are in ppm scaled by 2^16.
const PPM16: f64 = 1e6 * 65536.0;

/// Reads the clocks.
#[derive(Debug)]
pub struct TimeCollector {
    roots: Roots,
}

impl TimeCollector {
    /// A collector reading clock sources under `roots.sys`.
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(now) => out.push(Sample::new(TIME_SECONDS, Kind::Gauge, now.as_secs_f64())),
            Err(_) => out.error("the system clock is before 1970"),
        }
        match sysward_platform::read_clocksources(&self.roots) {
            Ok(sources) => {
                for source in sources {
                    for available in &source.available {
                        out.push(
                            Sample::new(CLOCKSOURCE_AVAILABLE, Kind::Gauge, 1.0)
                                .label("device", source.device.as_str())
                                .label("clocksource", available.as_str()),
                        );
                    }
                    out.push(
                        Sample::new(CLOCKSOURCE_CURRENT, Kind::Gauge, 1.0)
                            .label("device", source.device.as_str())
                            .label("clocksource", source.current.as_str()),
                    );
                }
            }
            Err(error) => out.error(error.to_string()),
        }
        match sysward_platform::read_timex() {
            Ok(timex) => push_timex(&timex, out),
            Err(error) => out.error(error.to_string()),
        }
        Ok(())
    }
}

/// node_exporter's reading of `struct timex`, unit for unit.
fn push_timex(t: &Timex, out: &mut Output) {
    let fine = if t.status & Timex::STA_NANO != 0 {
        NANO
    } else {
        MICRO
    };
    let synced = if t.state == Timex::TIME_ERROR {
        0.0
    } else {
        1.0
    };
    let gauges = [
        (SYNC_STATUS, synced),
        ("node_timex_offset_seconds", t.offset as f64 / fine),
        (
            "node_timex_frequency_adjustment_ratio",
            1.0 + t.freq as f64 / PPM16,
        ),
        ("node_timex_maxerror_seconds", t.maxerror as f64 / MICRO),
        (
            "node_timex_estimated_error_seconds",
            t.esterror as f64 / MICRO,
        ),
        ("node_timex_status", f64::from(t.status)),
        ("node_timex_loop_time_constant", t.constant as f64),
        ("node_timex_tick_seconds", t.tick as f64 / MICRO),
        ("node_timex_pps_frequency_hertz", t.ppsfreq as f64 / PPM16),
        ("node_timex_pps_jitter_seconds", t.jitter as f64 / fine),
        ("node_timex_pps_shift_seconds", f64::from(t.shift)),
        ("node_timex_pps_stability_hertz", t.stabil as f64 / PPM16),
        ("node_timex_tai_offset_seconds", f64::from(t.tai)),
    ];
    for (name, value) in gauges {
        out.push(Sample::new(name, Kind::Gauge, value));
    }
    let counters = [
        ("node_timex_pps_jitter_total", t.jitcnt),
        ("node_timex_pps_calibration_total", t.calcnt),
        ("node_timex_pps_error_total", t.errcnt),
        ("node_timex_pps_stability_exceeded_total", t.stbcnt),
    ];
    for (name, value) in counters {
        out.push(Sample::new(name, Kind::Counter, value as f64));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{assert_matches_node_exporter, fixture_roots, value_of};

    #[test]
    fn clock_sources_match_node_exporter_on_its_fixture() {
        assert_matches_node_exporter(&mut TimeCollector::new(fixture_roots()), &|name| {
            name.starts_with("node_time_clocksource_")
        });
    }

    #[test]
    fn timex_fields_are_converted_as_node_exporter_does() {
        let timex = Timex {
            state: Timex::TIME_ERROR,
            offset: 1500,
            freq: 65536 * 10,
            maxerror: 2_000_000,
            status: Timex::STA_NANO,
            tick: 10_000,
            jitter: 3,
            tai: 37,
            calcnt: 4,
            ..Timex::default()
        };
        let mut out = Output::default();
        push_timex(&timex, &mut out);
        assert_eq!(out.samples.len(), 17);
        assert_eq!(value_of(&out, SYNC_STATUS, &[]), Some(0.0));
        // STA_NANO: offset and jitter in nanoseconds.
        assert_eq!(
            value_of(&out, "node_timex_offset_seconds", &[]),
            Some(1.5e-6)
        );
        assert_eq!(
            value_of(&out, "node_timex_pps_jitter_seconds", &[]),
            Some(3e-9)
        );
        assert_eq!(
            value_of(&out, "node_timex_frequency_adjustment_ratio", &[]),
            Some(1.00001)
        );
        assert_eq!(
            value_of(&out, "node_timex_maxerror_seconds", &[]),
            Some(2.0)
        );
        assert_eq!(value_of(&out, "node_timex_tick_seconds", &[]), Some(0.01));
        assert_eq!(
            value_of(&out, "node_timex_tai_offset_seconds", &[]),
            Some(37.0)
        );
        assert_eq!(
            value_of(&out, "node_timex_pps_calibration_total", &[]),
            Some(4.0)
        );
    }

    #[test]
    fn the_live_clock_is_read() {
        let mut out = Output::default();
        TimeCollector::new(fixture_roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(out.errors, Vec::<String>::new());
        let now = value_of(&out, TIME_SECONDS, &[]).expect("time");
        assert!(now > 1.7e9, "{now}");
        assert!(value_of(&out, SYNC_STATUS, &[]).is_some());
    }
}
