//! `netstat`: protocol counters from `/proc/net/snmp`, `/proc/net/netstat` and
//! `/proc/net/snmp6`, as `node_netstat_<Protocol>_<Field>` like node_exporter's
//! `netstat` collector.
//!
//! Which fields: node_exporter's default `--collector.netstat.fields` pattern, about 40
//! series that cover errors, retransmits, listen queue overflows, SYN cookies and
//! traffic. The three files hold some 350 counters on a current kernel, most of them
//! rarely looked at; sending them all would make this collector the largest on every
//! host. [`NetstatConfig::fields`] widens the choice (`.*` for all).
//!
//! node_exporter exposes these as `untyped`; here counters are counters and the few
//! current values (`Tcp_CurrEstab`, `Ip_Forwarding`, the RTO limits ...) gauges, under
//! node_exporter's names (no `_total`) so that its dashboards work unchanged.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use sysward_platform::{NetStats, Roots};

use crate::filter::{NameFilter, builtin_include, is_metric_name_part};
use crate::settings::{self, Pattern};
use crate::{CollectError, Collector, Kind, Output, Sample};

/// The prefix of every metric this collector sends.
pub const PREFIX: &str = "node_netstat_";

/// node_exporter's default `--collector.netstat.fields`.
pub const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// Fields that are current values or settings rather than counters.
const GAUGES: [&str; 7] = [
    "Ip_Forwarding",
    "Ip_DefaultTTL",
    "Tcp_RtoAlgorithm",
    "Tcp_RtoMin",
    "Tcp_RtoMax",
    "Tcp_MaxConn",
    "Tcp_CurrEstab",
];

/// Which counters the `netstat` collector sends.
#[derive(Debug, Clone)]
pub struct NetstatConfig {
    /// `<Protocol>_<Field>` names to send.
    pub fields: NameFilter,
}

impl Default for NetstatConfig {
    fn default() -> Self {
        Self {
            fields: builtin_include(DEFAULT_FIELDS),
        }
    }
}

/// `[collectors.netstat]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetstatSettings {
    fields: Option<Pattern>,
}

impl NetstatConfig {
    /// The configuration a `[collectors.netstat]` table asks for, the agent's own keys
    /// left out: `fields` (a regular expression on `<Protocol>_<Field>`, `".*"` or `""`
    /// for all; default [`DEFAULT_FIELDS`]). An empty table gives the defaults.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: NetstatSettings = settings::parse("netstat", table)?;
        Ok(Self {
            fields: settings::include_only(s.fields, Self::default().fields),
        })
    }
}

/// Reads the SNMP-style counter files under its roots.
#[derive(Debug)]
pub struct NetstatCollector {
    roots: Roots,
    config: NetstatConfig,
    /// Whether `<Protocol>_<Field>` passes the filter, remembered: the files list the
    /// same few hundred fields every cycle, and a regular expression per field per cycle
    /// was a tenth of this collector's time.
    passes: HashMap<String, bool>,
}

impl NetstatCollector {
    /// A collector sending node_exporter's default fields.
    pub fn new(roots: Roots) -> Self {
        Self::with_config(roots, NetstatConfig::default())
    }

    /// A collector with the given configuration.
    pub fn with_config(roots: Roots, config: NetstatConfig) -> Self {
        Self {
            roots,
            config,
            passes: HashMap::new(),
        }
    }

    /// Sends the selected counters of one file; `sent` holds the names already sent
    /// this run, since a counter repeated (in one file or across two) would be a
    /// duplicate series.
    fn push(&mut self, stats: &NetStats, file: &str, sent: &mut HashSet<String>, out: &mut Output) {
        let path = self.roots.proc.join(file);
        for skipped in &stats.skipped {
            out.error(skipped.clone().in_file(&path).to_string());
        }
        for stat in &stats.values {
            let key = format!("{}_{}", stat.protocol, stat.field);
            let passes = match self.passes.get(&key) {
                Some(passes) => *passes,
                None => {
                    let passes = self.config.fields.passes(&key);
                    // Bounded by the kernel's field names; a cap in case a file ever
                    // grows names without end.
                    if self.passes.len() < 4096 {
                        self.passes.insert(key.clone(), passes);
                    }
                    passes
                }
            };
            if !passes {
                continue;
            }
            if !is_metric_name_part(&key) {
                out.error(format!(
                    "{}: {key:?} makes no valid metric name; skipped",
                    path.display()
                ));
                continue;
            }
            let kind = if GAUGES.contains(&key.as_str()) {
                Kind::Gauge
            } else {
                Kind::Counter
            };
            if !sent.insert(key.clone()) {
                out.error(format!("{}: {key} a second time; skipped", path.display()));
                continue;
            }
            out.push(Sample::new(format!("{PREFIX}{key}"), kind, stat.value));
        }
    }
}

impl Collector for NetstatCollector {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let mut failures = Vec::new();
        let mut sent = HashSet::new();
        for file in [NetStats::SNMP_FILE, NetStats::NETSTAT_FILE] {
            match sysward_platform::read_netstat(&self.roots, file) {
                Ok(stats) => self.push(&stats, file, &mut sent, out),
                Err(error) => failures.push(error),
            }
        }
        match sysward_platform::read_snmp6(&self.roots) {
            Ok(stats) => self.push(&stats, NetStats::SNMP6_FILE, &mut sent, out),
            // IPv6 disabled: nothing to report and nothing wrong.
            Err(error) if error.is_not_found() => {}
            Err(error) => failures.push(error),
        }
        if out.samples.is_empty() && !failures.is_empty() {
            // Not one file could be read: the whole run failed.
            let first = failures.remove(0);
            for other in failures {
                out.error(other.to_string());
            }
            return Err(first.into());
        }
        for failure in failures {
            out.error(failure.to_string());
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, assert_matches_node_exporter, fixture_roots, value_of};

    #[test]
    fn the_default_pattern_compiles() {
        NameFilter::include(DEFAULT_FIELDS).expect("compiles");
    }

    #[test]
    fn matches_node_exporter_on_its_fixture() {
        assert_matches_node_exporter(&mut NetstatCollector::new(fixture_roots()), &|name| {
            name.starts_with(PREFIX)
        });
    }

    #[test]
    fn every_field_is_sent_on_request_with_counters_and_gauges_apart() {
        let config = NetstatConfig {
            fields: NameFilter::all(),
        };
        let mut out = Output::default();
        NetstatCollector::with_config(fixture_roots(), config)
            .collect(&mut out)
            .expect("collects");
        assert!(out.samples.len() > 200, "{}", out.samples.len());
        let kind = |name: &str| out.samples.iter().find(|s| s.name == name).map(|s| s.kind);
        assert_eq!(kind("node_netstat_Tcp_MaxConn"), Some(Kind::Gauge));
        assert_eq!(value_of(&out, "node_netstat_Tcp_MaxConn", &[]), Some(-1.0));
        assert_eq!(kind("node_netstat_Tcp_InSegs"), Some(Kind::Counter));
        assert_eq!(kind("node_netstat_Icmp6_InType1"), None);
    }

    #[test]
    fn a_missing_snmp6_is_no_error_but_other_files_are() {
        let dir = TempDir::new("netstat-partial");
        dir.write("proc/net/snmp", "Udp: InErrors\nUdp: 3\n");
        let mut out = Output::default();
        NetstatCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(value_of(&out, "node_netstat_Udp_InErrors", &[]), Some(3.0));
        assert_eq!(out.errors.len(), 1, "{:#?}", out.errors);
        assert!(out.errors[0].contains("net/netstat"), "{}", out.errors[0]);
    }

    #[test]
    fn a_counter_in_two_files_is_sent_once() {
        let dir = TempDir::new("netstat-twice");
        dir.write("proc/net/snmp", "Udp: InErrors\nUdp: 3\n");
        dir.write("proc/net/netstat", "Udp: InErrors\nUdp: 4\n");
        let mut out = Output::default();
        NetstatCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        assert_eq!(value_of(&out, "node_netstat_Udp_InErrors", &[]), Some(3.0));
        assert_eq!(out.samples.len(), 1);
        assert_eq!(out.errors.len(), 1, "{:#?}", out.errors);
        assert!(out.errors[0].contains("second time"), "{}", out.errors[0]);
    }

    #[test]
    fn no_readable_file_fails_the_run() {
        let dir = TempDir::new("netstat-none");
        assert!(
            NetstatCollector::new(dir.roots())
                .collect(&mut Output::default())
                .is_err()
        );
    }

    #[test]
    fn the_fields_setting_chooses_the_fields() {
        let run = |settings: &str| {
            let mut collector =
                crate::registry::configured("netstat", &fixture_roots(), settings).expect("valid");
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            out
        };
        let out = run("fields = \"^Tcp_(InSegs|CurrEstab)$\"");
        let mut names: Vec<&str> = out.samples.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["node_netstat_Tcp_CurrEstab", "node_netstat_Tcp_InSegs"]
        );
        assert!(run("fields = \"\"").samples.len() > 200);
        assert_eq!(
            run("").samples,
            run(&format!("fields = '{DEFAULT_FIELDS}'")).samples
        );
        let config = NetstatConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", NetstatConfig::default())
        );
    }
}
