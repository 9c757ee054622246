//! Pressure stall information, shared by the `cpu` (cpu, irq) and `memory` (memory,
//! io) collectors: node_exporter's `pressure` collector spread over the collectors
//! whose resource it measures.
//!
//! A kernel without PSI (before 4.20, built without it, or booted with `psi=0`) simply
//! has none: that is no error.

use sysward_platform::{Pressure, Roots};

use crate::{Kind, Output, Sample};

/// Sends the `some` and `full` totals of `pressure/<resource>` as the counters named,
/// in seconds; a name left `None` is not sent (node_exporter has no
/// `node_pressure_cpu_stalled_seconds_total`, for one).
pub(crate) fn push_pressure(
    roots: &Roots,
    resource: &str,
    some: Option<&'static str>,
    full: Option<&'static str>,
    out: &mut Output,
) {
    let pressure = match sysward_platform::read_pressure(roots, resource) {
        Ok(pressure) => pressure,
        Err(error) if error.is_absent_feature() => return,
        Err(error) => {
            out.error(error.to_string());
            return;
        }
    };
    let Pressure {
        some: some_line,
        full: full_line,
    } = pressure;
    for (name, line) in [(some, some_line), (full, full_line)] {
        if let (Some(name), Some(line)) = (name, line) {
            out.push(Sample::new(
                name,
                Kind::Counter,
                line.total_us as f64 / 1_000_000.0,
            ));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, value_of};

    #[test]
    fn a_kernel_without_psi_is_no_error() {
        let dir = TempDir::new("psi-none");
        let mut out = Output::default();
        push_pressure(&dir.roots(), "cpu", Some("some_total"), None, &mut out);
        assert!(out.samples.is_empty());
        assert!(out.errors.is_empty());
    }

    #[test]
    fn totals_are_sent_in_seconds_and_bad_files_reported() {
        let dir = TempDir::new("psi");
        dir.write(
            "proc/pressure/io",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250000\n",
        );
        dir.write("proc/pressure/memory", "garbage\n");
        let mut out = Output::default();
        push_pressure(
            &dir.roots(),
            "io",
            Some("waiting"),
            Some("stalled"),
            &mut out,
        );
        push_pressure(&dir.roots(), "io", None, Some("only_full"), &mut out);
        push_pressure(&dir.roots(), "memory", Some("m"), None, &mut out);
        assert_eq!(value_of(&out, "waiting", &[]), Some(1.5));
        assert_eq!(value_of(&out, "stalled", &[]), Some(0.25));
        assert_eq!(value_of(&out, "only_full", &[]), Some(0.25));
        assert_eq!(out.samples.len(), 3);
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].contains("pressure/memory line 1"),
            "{}",
            out.errors[0]
        );
    }
}
