//! `/proc/net/snmp`, `/proc/net/netstat` and `/proc/net/snmp6`: protocol counters.
//!
//! `snmp` and `netstat` come in pairs of lines: `Proto: Name1 Name2 ...` then
//! `Proto: value1 value2 ...`. `snmp6` has one counter per line, `Ip6InReceives 7`, the
//! protocol being the name up to its first `6`.

use super::{quote, read_text};
use crate::{Error, NetStat, NetStats, ParseError, Roots};

/// Reads and parses one of `net/snmp` and `net/netstat` under `roots.proc` into `stats`,
/// whose strings are reused: read every few seconds, the files' few hundred names would
/// otherwise be as many allocations each time.
pub fn read_netstat(roots: &Roots, file: &str, stats: &mut NetStats) -> Result<(), Error> {
    let path = roots.proc.join(file);
    let text = read_text(&path)?;
    parse_netstat_into(&text, stats);
    Ok(())
}

/// Reads and parses `net/snmp6` under `roots.proc` into `stats`, as [`read_netstat`].
pub fn read_snmp6(roots: &Roots, stats: &mut NetStats) -> Result<(), Error> {
    let path = roots.proc.join(NetStats::SNMP6_FILE);
    let text = read_text(&path)?;
    parse_snmp6_into(&text, stats);
    Ok(())
}

/// Fills `stats` with new values, reusing the strings of the entries it held.
struct Refill<'a> {
    stats: &'a mut NetStats,
    used: usize,
}

impl<'a> Refill<'a> {
    fn new(stats: &'a mut NetStats) -> Self {
        stats.skipped.clear();
        Self { stats, used: 0 }
    }

    fn put(&mut self, protocol: &str, field: &str, value: f64) {
        match self.stats.values.get_mut(self.used) {
            Some(stat) => {
                stat.protocol.clear();
                stat.protocol.push_str(protocol);
                stat.field.clear();
                stat.field.push_str(field);
                stat.value = value;
            }
            None => self.stats.values.push(NetStat {
                protocol: protocol.to_owned(),
                field: field.to_owned(),
                value,
            }),
        }
        self.used += 1;
    }

    fn skip(&mut self, error: ParseError) {
        self.stats.skipped.push(error);
    }
}

impl Drop for Refill<'_> {
    fn drop(&mut self) {
        self.stats.values.truncate(self.used);
    }
}

/// A counter's value: an integer, signed for the few that can be negative.
fn value(field: &str) -> Option<f64> {
    field
        .parse::<u64>()
        .map(|v| v as f64)
        .or_else(|_| field.parse::<i64>().map(|v| v as f64))
        .ok()
}

/// Parses the text of `/proc/net/snmp` or `/proc/net/netstat`.
///
/// A pair whose lines disagree (protocol, number of columns, a value that is not an
/// integer) is listed in [`NetStats::skipped`] as a whole, at its value line.
pub fn parse_netstat(text: &str) -> NetStats {
    let mut stats = NetStats::default();
    parse_netstat_into(text, &mut stats);
    stats
}

fn parse_netstat_into(text: &str, stats: &mut NetStats) {
    let mut into = Refill::new(stats);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty());
    while let Some((names_index, names)) = lines.next() {
        let Some((values_index, values)) = lines.next() else {
            into.skip(ParseError::new(
                names_index + 1,
                format!("header {} has no line of values after it", quote(names)),
            ));
            break;
        };
        if let Err(message) = parse_pair(names, values, &mut into) {
            into.skip(ParseError::new(values_index + 1, message));
        }
    }
}

fn parse_pair(names: &str, values: &str, into: &mut Refill<'_>) -> Result<(), String> {
    let (protocol, names) = names
        .split_once(':')
        .ok_or_else(|| format!("no `Proto:` in {}", quote(names)))?;
    let (value_protocol, values) = values
        .split_once(':')
        .ok_or_else(|| format!("no `Proto:` in {}", quote(values)))?;
    if protocol != value_protocol || protocol.is_empty() || protocol.contains(' ') {
        return Err(format!(
            "header for {} followed by values for {}",
            quote(protocol),
            quote(value_protocol)
        ));
    }
    let names_count = names.split_ascii_whitespace().count();
    let values_count = values.split_ascii_whitespace().count();
    if names_count != values_count {
        return Err(format!(
            "{} has {} names but {} values",
            quote(protocol),
            names_count,
            values_count
        ));
    }
    // All or nothing: a pair with one bad value is skipped whole, its counters put so
    // far taken back.
    let start = into.used;
    for (name, text) in names
        .split_ascii_whitespace()
        .zip(values.split_ascii_whitespace())
    {
        let Some(value) = value(text) else {
            into.used = start;
            return Err(format!(
                "{protocol} {} value {} is not an integer",
                quote(name),
                quote(text)
            ));
        };
        into.put(protocol, name, value);
    }
    Ok(())
}

/// Parses the text of `/proc/net/snmp6`; a malformed line is listed in
/// [`NetStats::skipped`].
pub fn parse_snmp6(text: &str) -> NetStats {
    let mut stats = NetStats::default();
    parse_snmp6_into(text, &mut stats);
    stats
}

fn parse_snmp6_into(text: &str, stats: &mut NetStats) {
    let mut into = Refill::new(stats);
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let parsed = (|| {
            let six = key
                .find('6')
                .ok_or_else(|| format!("counter {} names no IPv6 protocol", quote(key)))?;
            let (protocol, field) = key.split_at(six + 1);
            if field.is_empty() {
                return Err(format!(
                    "counter {} has no name after the protocol",
                    quote(key)
                ));
            }
            let text = fields
                .next()
                .ok_or_else(|| format!("counter {} has no value", quote(key)))?;
            let value = value(text).ok_or_else(|| {
                format!(
                    "counter {} value {} is not an integer",
                    quote(key),
                    quote(text)
                )
            })?;
            if let Some(extra) = fields.next() {
                return Err(format!(
                    "counter {} has more than one value (then {})",
                    quote(key),
                    quote(extra)
                ));
            }
            Ok((protocol, field, value))
        })();
        match parsed {
            Ok((protocol, field, value)) => into.put(protocol, field, value),
            Err(message) => into.skip(ParseError::new(index + 1, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 57740232
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens
Tcp: 1 200 120000 -1 3556
Udp: InDatagrams NoPorts
Udp: 88542 120
";

    const SNMP6: &str = "\
Ip6InReceives                   \t7
Icmp6InType1                    \t3
UdpLite6InErrors                \t0
Ip6InOctets                     \t460
";

    fn get(stats: &NetStats, protocol: &str, field: &str) -> Option<f64> {
        stats
            .values
            .iter()
            .find(|s| s.protocol == protocol && s.field == field)
            .map(|s| s.value)
    }

    #[test]
    fn parses_header_and_value_pairs() {
        let stats = parse_netstat(SNMP);
        assert_eq!(stats.skipped, []);
        assert_eq!(stats.values.len(), 10);
        assert_eq!(get(&stats, "Ip", "Forwarding"), Some(1.0));
        assert_eq!(get(&stats, "Tcp", "MaxConn"), Some(-1.0));
        assert_eq!(get(&stats, "Udp", "NoPorts"), Some(120.0));
    }

    #[test]
    fn a_pair_that_disagrees_is_skipped_whole() {
        let text = "Ip: A B\nIp: 1\nTcp: A\nUdp: 1\nX: A\nX: y\nIcmp: A\nIcmp: 5\nLone: A\n";
        let stats = parse_netstat(text);
        assert_eq!(get(&stats, "Icmp", "A"), Some(5.0));
        assert_eq!(stats.values.len(), 1);
        let lines: Vec<_> = stats.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4, 6, 9]);
    }

    #[test]
    fn a_bad_value_after_good_ones_takes_its_whole_pair_back() {
        let text = "Y: A B C\nY: 1 2 z\nTcp: A\nTcp: 3\n";
        let mut stats = parse_netstat("Y: A B C\nY: 7 8 9\n");
        parse_netstat_into(text, &mut stats);
        for fresh in [parse_netstat(text), stats] {
            assert_eq!(get(&fresh, "Y", "A"), None);
            assert_eq!(get(&fresh, "Tcp", "A"), Some(3.0));
            assert_eq!(fresh.values.len(), 1);
            assert_eq!(fresh.skipped.len(), 1);
        }
    }

    #[test]
    fn snmp6_splits_the_protocol_at_its_six() {
        let stats = parse_snmp6(SNMP6);
        assert_eq!(stats.skipped, []);
        assert_eq!(get(&stats, "Ip6", "InReceives"), Some(7.0));
        assert_eq!(get(&stats, "Icmp6", "InType1"), Some(3.0));
        assert_eq!(get(&stats, "UdpLite6", "InErrors"), Some(0.0));
        let bad = parse_snmp6("NoSix 1\nIp6 2\nIp6X y\nIp6Y 1 2\n\n");
        assert!(bad.values.is_empty());
        assert_eq!(bad.skipped.len(), 4);
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let roots = fixture_roots();
        let mut stats = NetStats::default();
        for file in [NetStats::SNMP_FILE, NetStats::NETSTAT_FILE] {
            read_netstat(&roots, file, &mut stats).expect("reads");
            assert_eq!(stats.skipped, [], "{file}");
        }
        read_snmp6(&roots, &mut stats).expect("reads");
        assert_eq!(stats.skipped, []);
        assert_eq!(get(&stats, "Ip6", "InOctets"), Some(460.0));
    }

    proptest! {
        /// A reading refilled in place, whatever it held, is what a fresh parse gives.
        #[test]
        fn a_refilled_reading_equals_a_fresh_one(
            first in mutated(SNMP),
            second in mutated(SNMP),
            first6 in mutated(SNMP6),
            second6 in mutated(SNMP6),
        ) {
            let mut stats = parse_netstat(&first);
            parse_netstat_into(&second, &mut stats);
            prop_assert_eq!(&stats, &parse_netstat(&second));
            let mut stats = parse_snmp6(&first6);
            parse_snmp6_into(&second6, &mut stats);
            prop_assert_eq!(&stats, &parse_snmp6(&second6));
            parse_netstat_into(&first, &mut stats);
            prop_assert_eq!(&stats, &parse_netstat(&first));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_netstat(&text);
            let _ = parse_snmp6(&text);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(SNMP), text6 in mutated(SNMP6)) {
            let _ = parse_netstat(&text);
            let _ = parse_snmp6(&text6);
        }

        #[test]
        fn an_appended_line_never_changes_what_snmp6_read(line in any_line()) {
            let original = parse_snmp6(SNMP6);
            let stats = parse_snmp6(&format!("{SNMP6}{line}\n"));
            prop_assert_eq!(&stats.values[..original.values.len()], &original.values[..]);
        }
    }
}
