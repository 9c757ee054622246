//! `/proc/net/sockstat` and `sockstat6`: sockets in use per protocol.
//!
//! Format: one protocol per line, `TCP: inuse 4 orphan 0 tw 4 alloc 17 mem 1`: the
//! protocol, a colon, then name and value pairs. `mem` is in pages; FRAG's `memory`
//! is in bytes.

use super::{quote, read_text};
use crate::{Error, ParseError, Roots, Sockstat, SockstatLine};

/// Reads and parses `file` (`net/sockstat` or `net/sockstat6`) under `roots.proc`.
pub fn read_sockstat(roots: &Roots, file: &str) -> Result<Sockstat, Error> {
    let path = roots.proc.join(file);
    let text = read_text(&path)?;
    Ok(parse_sockstat(&text))
}

/// Parses the text of a sockstat file; a malformed line is listed in
/// [`Sockstat::skipped`].
pub fn parse_sockstat(text: &str) -> Sockstat {
    let mut stat = Sockstat::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(parsed) => stat.lines.push(parsed),
            Err(message) => stat.skipped.push(ParseError::new(index + 1, message)),
        }
    }
    stat
}

fn parse_line(line: &str) -> Result<SockstatLine, String> {
    let (protocol, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no `Proto:` in {}", quote(line)))?;
    if protocol.is_empty() || protocol.contains(char::is_whitespace) {
        return Err(format!(
            "protocol {} is empty or has spaces",
            quote(protocol)
        ));
    }
    let words: Vec<&str> = rest.split_ascii_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(format!("{} has no name and value pairs", quote(protocol)));
    }
    let fields = words
        .chunks_exact(2)
        .map(|pair| {
            let value = pair[1].parse::<u64>().map_err(|_| {
                format!(
                    "{protocol} {} value {} is not a whole number",
                    quote(pair[0]),
                    quote(pair[1])
                )
            })?;
            Ok((pair[0].to_owned(), value))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SockstatLine {
        protocol: protocol.to_owned(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    const FIXTURE: &str = "\
sockets: used 229
TCP: inuse 4 orphan 0 tw 4 alloc 17 mem 1
UDP: inuse 0 mem 0
FRAG: inuse 0 memory 0
";

    #[test]
    fn parses_each_protocol_line() {
        let stat = parse_sockstat(FIXTURE);
        assert_eq!(stat.skipped, []);
        assert_eq!(stat.lines.len(), 4);
        assert_eq!(stat.lines[0].protocol, "sockets");
        assert_eq!(stat.lines[0].fields, [("used".to_owned(), 229)]);
        assert_eq!(stat.lines[1].fields.len(), 5);
        assert_eq!(stat.lines[1].fields[4], ("mem".to_owned(), 1));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let stat = parse_sockstat("TCP: inuse\nUDP inuse 1\nRAW: inuse x\n: a 1\nOK: a 1\n");
        assert_eq!(stat.lines.len(), 1);
        let lines: Vec<_> = stat.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let roots = fixture_roots();
        for file in [Sockstat::FILE, Sockstat::FILE6] {
            let stat = read_sockstat(&roots, file).expect("reads");
            assert_eq!(stat.skipped, [], "{file}");
            assert!(!stat.lines.is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let _ = parse_sockstat(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let _ = parse_sockstat(&text);
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_sockstat(FIXTURE);
            let stat = parse_sockstat(&format!("{FIXTURE}{line}\n"));
            prop_assert_eq!(&stat.lines[..original.lines.len()], &original.lines[..]);
        }
    }
}
