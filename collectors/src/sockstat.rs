//! `sockstat`: sockets in use per protocol, from `/proc/net/sockstat` and
//! `sockstat6`, as node_exporter's `sockstat` collector names them:
//! `node_sockstat_<PROTOCOL>_<field>`, plus `_mem_bytes` for the `mem` fields, which
//! the kernel counts in pages.

use std::collections::HashSet;

use sysward_platform::{Roots, Sockstat};

use crate::filter::is_metric_name_part;
use crate::{CollectError, Collector, Kind, Output, Sample};

/// The prefix of every metric this collector sends.
pub const PREFIX: &str = "node_sockstat_";

/// Reads the sockstat files under its roots.
#[derive(Debug)]
pub struct SockstatCollector {
    roots: Roots,
    /// Bytes per page, to convert `mem`; `None` if the system would not say.
    page_size: Option<u64>,
}

impl SockstatCollector {
    /// A collector reading `net/sockstat{,6}` under `roots.proc`.
    pub fn new(roots: Roots) -> Self {
        Self {
            roots,
            page_size: sysward_platform::page_size(),
        }
    }

    /// Sends one file's values; `sent` holds the names already sent this run, since a
    /// repeated line would make duplicate series.
    fn push(&self, stat: &Sockstat, file: &str, sent: &mut HashSet<String>, out: &mut Output) {
        let path = self.roots.proc.join(file);
        for skipped in &stat.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        for line in &stat.lines {
            for (field, value) in &line.fields {
                let key = format!("{}_{field}", line.protocol);
                if !is_metric_name_part(&key) {
                    out.error(format!(
                        "{}: {key:?} makes no valid metric name; skipped",
                        path.display()
                    ));
                    continue;
                }
                if !sent.insert(key.clone()) {
                    out.error(format!("{}: {key} a second time; skipped", path.display()));
                    continue;
                }
                out.push(Sample::new(
                    format!("{PREFIX}{key}"),
                    Kind::Gauge,
                    *value as f64,
                ));
                if field == "mem"
                    && let Some(page_size) = self.page_size
                {
                    out.push(Sample::new(
                        format!("{PREFIX}{key}_bytes"),
                        Kind::Gauge,
                        (*value as f64) * page_size as f64,
                    ));
                }
            }
        }
    }
}

impl Collector for SockstatCollector {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        // The IPv4 file holds the socket total; without it the run has failed.
        let v4 = sysward_platform::read_sockstat(&self.roots, Sockstat::FILE)?;
        let mut sent = HashSet::new();
        self.push(&v4, Sockstat::FILE, &mut sent, out);
        match sysward_platform::read_sockstat(&self.roots, Sockstat::FILE6) {
            Ok(v6) => self.push(&v6, Sockstat::FILE6, &mut sent, out),
            // IPv6 disabled.
            Err(error) if error.is_not_found() => {}
            Err(error) => out.error(error.to_string()),
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    #[test]
    fn matches_node_exporter_on_its_fixture() {
        // node_exporter's fixture output was made on a host with 4 KiB pages.
        let mut collector = SockstatCollector::new(fixture_roots());
        collector.page_size = Some(4096);
        assert_matches_node_exporter(&mut collector, &|name| name.starts_with(PREFIX));
    }

    #[test]
    fn mem_is_also_sent_in_bytes() {
        let dir = TempDir::new("sockstat");
        dir.write(
            "proc/net/sockstat",
            "TCP: inuse 1 mem 3\nbad line\nTCP: inuse 2\n",
        );
        let mut collector = SockstatCollector::new(dir.roots());
        collector.page_size = Some(65536);
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert_eq!(value_of(&out, "node_sockstat_TCP_mem", &[]), Some(3.0));
        assert_eq!(
            value_of(&out, "node_sockstat_TCP_mem_bytes", &[]),
            Some(3.0 * 65536.0)
        );
        assert_eq!(value_of(&out, "node_sockstat_TCP_inuse", &[]), Some(1.0));
        assert_eq!(out.errors.len(), 2, "{:#?}", out.errors);
        assert!(out.errors[1].contains("second time"), "{}", out.errors[1]);
    }

    #[test]
    fn an_unreadable_ipv4_file_fails_the_run() {
        let dir = TempDir::new("sockstat-none");
        assert!(
            SockstatCollector::new(dir.roots())
                .collect(&mut Output::default())
                .is_err()
        );
    }
}
