//! `load`: the run-queue averages of `/proc/loadavg`, as node_exporter's `loadavg`
//! collector names them.

use sysward_platform::Roots;

use crate::{CollectError, Collector, Kind, Output, Sample};

/// 1-minute load average (gauge).
pub const LOAD1: &str = "node_load1";
/// 5-minute load average (gauge).
pub const LOAD5: &str = "node_load5";
/// 15-minute load average (gauge).
pub const LOAD15: &str = "node_load15";

/// Reads `/proc/loadavg` under its roots.
#[derive(Debug)]
pub struct LoadCollector {
    roots: Roots,
}

impl LoadCollector {
    /// A collector reading `loadavg` under `roots.proc`.
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for LoadCollector {
    fn name(&self) -> &'static str {
        "load"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        // One line with nothing to skip: any fault is the whole run's.
        let load = sysward_platform::read_loadavg(&self.roots)?;
        out.push(Sample::new(LOAD1, Kind::Gauge, load.one));
        out.push(Sample::new(LOAD5, Kind::Gauge, load.five));
        out.push(Sample::new(LOAD15, Kind::Gauge, load.fifteen));
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{assert_matches_node_exporter, fixture_roots};

    #[test]
    fn matches_node_exporter_on_its_fixture() {
        let names = [LOAD1, LOAD5, LOAD15];
        assert_matches_node_exporter(&mut LoadCollector::new(fixture_roots()), &|name| {
            names.contains(&name)
        });
    }

    #[test]
    fn an_unreadable_file_fails_the_run() {
        let roots = Roots::new("/nonexistent/sysward/proc", "/nonexistent", "/nonexistent");
        let error = LoadCollector::new(roots)
            .collect(&mut Output::default())
            .expect_err("no file");
        assert!(
            error
                .to_string()
                .contains("/nonexistent/sysward/proc/loadavg"),
            "{error}"
        );
    }
}
