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

use serde::Deserialize;
use sysward_platform::{NetStats, Roots};

use crate::filter::{NameFilter, builtin_include, is_metric_name_part};
use crate::layout::{Field, Layout};
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
    /// What each `<Protocol>_<Field>` counter of the three files, one after the other,
    /// became last run (see [`Layout`]): filtering, naming and hashing every counter
    /// every run was most of this collector's time.
    layout: Layout<String, Field>,
    /// The last readings of `snmp`, `netstat` and `snmp6`, refilled in place each run.
    readings: [NetStats; 3],
}

/// Whether `key` is `<protocol>_<field>`, without writing the latter out.
fn is_key(key: &str, protocol: &str, field: &str) -> bool {
    let key = key.as_bytes();
    key.len() == protocol.len() + 1 + field.len()
        && key.starts_with(protocol.as_bytes())
        && key[protocol.len()] == b'_'
        && key.ends_with(field.as_bytes())
}

/// The verdict on a counter new at its place, duplicates aside.
fn choose(config: &NetstatConfig, key: &str) -> Field {
    if !config.fields.passes(key) {
        Field::Skip
    } else if !is_metric_name_part(key) {
        Field::Invalid
    } else {
        let kind = if GAUGES.contains(&key) {
            Kind::Gauge
        } else {
            Kind::Counter
        };
        Field::send(format!("{PREFIX}{key}"), kind)
    }
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
            layout: Layout::default(),
            readings: Default::default(),
        }
    }
}

impl Collector for NetstatCollector {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let mut failures = Vec::new();
        let mut readings = std::mem::take(&mut self.readings);
        let [snmp, netstat, snmp6] = &mut readings;
        let mut read = Vec::with_capacity(3);
        for (file, stats) in [
            (NetStats::SNMP_FILE, snmp),
            (NetStats::NETSTAT_FILE, netstat),
        ] {
            match sysward_platform::read_netstat(&self.roots, file, stats) {
                Ok(()) => read.push((file, &*stats)),
                Err(error) => failures.push(error),
            }
        }
        match sysward_platform::read_snmp6(&self.roots, snmp6) {
            Ok(()) => read.push((NetStats::SNMP6_FILE, &*snmp6)),
            // IPv6 disabled: nothing to report and nothing wrong.
            Err(error) if error.is_not_found() => {}
            Err(error) => failures.push(error),
        }
        // First the layout of all three, so that a counter repeated (in one file or
        // across two) is known before anything is sent: the first place sends it.
        self.layout.start();
        let config = &self.config;
        for (_, stats) in &read {
            for stat in &stats.values {
                self.layout.next(
                    |key| is_key(key, &stat.protocol, &stat.field),
                    || {
                        let key = format!("{}_{}", stat.protocol, stat.field);
                        let choice = choose(config, &key);
                        (key, choice)
                    },
                );
            }
        }
        if self.layout.finish() {
            self.layout.mark_duplicates();
        }
        let mut places = self.layout.entries();
        for (file, stats) in &read {
            let path = self.roots.proc.join(file);
            for skipped in &stats.skipped {
                out.error(skipped.clone().in_file(&path).to_string());
            }
            for (stat, (key, field)) in stats.values.iter().zip(places.by_ref()) {
                match field {
                    Field::Skip => {}
                    Field::Send {
                        duplicate: true, ..
                    } => out.error(format!("{}: {key} a second time; skipped", path.display())),
                    Field::Send { name, kind, .. } => {
                        out.push(Sample::new(name.clone(), *kind, stat.value))
                    }
                    Field::Invalid => out.error(format!(
                        "{}: {key:?} makes no valid metric name; skipped",
                        path.display()
                    )),
                }
            }
        }
        self.readings = readings;
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
    fn a_collector_that_remembers_the_layout_sends_what_a_new_one_sends() {
        let dir = TempDir::new("netstat-layouts");
        let all = || NetstatConfig {
            fields: NameFilter::all(),
        };
        let mut kept = NetstatCollector::with_config(dir.roots(), all());
        // A field added, one gone, a duplicate appearing and going, a file vanishing.
        let layouts: [(&str, Option<&str>); 5] = [
            (
                "Udp: InErrors NoPorts\nUdp: 3 4\n",
                Some("TcpExt: A B\nTcpExt: 1 2\n"),
            ),
            (
                "Udp: InErrors X NoPorts\nUdp: 3 9 4\n",
                Some("TcpExt: A B\nTcpExt: 1 2\n"),
            ),
            ("Udp: NoPorts\nUdp: 5\n", Some("Udp: NoPorts A\nUdp: 6 7\n")),
            ("Udp: NoPorts\nUdp: 5\n", None),
            (
                "Udp: InErrors NoPorts\nUdp: 3 4\n",
                Some("TcpExt: A B\nTcpExt: 1 2\n"),
            ),
        ];
        for (snmp, netstat) in layouts {
            dir.write("proc/net/snmp", snmp);
            match netstat {
                Some(text) => dir.write("proc/net/netstat", text),
                None => {
                    let _ = std::fs::remove_file(dir.roots().proc.join("net/netstat"));
                }
            }
            let mut remembered = Output::default();
            kept.collect(&mut remembered).expect("collects");
            let mut fresh = Output::default();
            NetstatCollector::with_config(dir.roots(), all())
                .collect(&mut fresh)
                .expect("collects");
            assert_eq!(remembered.samples, fresh.samples, "{snmp:?} {netstat:?}");
            assert_eq!(remembered.errors, fresh.errors, "{snmp:?} {netstat:?}");
        }
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
                crate::testing::configured("netstat", &fixture_roots(), settings).expect("valid");
            let mut out = Output::default();
            collector.collect(&mut out).expect("collects");
            out
        };
        let out = run("fields = \"^Tcp_(InSegs|CurrEstab)$\"");
        let mut names: Vec<&str> = out.samples.iter().map(|s| s.name.as_ref()).collect();
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
