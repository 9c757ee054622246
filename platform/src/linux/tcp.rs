//! `/proc/net/tcp` and `tcp6`: one line per TCP socket, counted here by state.
//!
//! Format: a header line (`  sl  local_address rem_address   st ...`), then one
//! socket per line, `N: local remote st ...`, the state `st` being the kernel's state
//! number in hexadecimal (`01` ESTABLISHED ... `0A` LISTEN). A busy host has tens of
//! thousands of lines, so the reader goes through the file line by line in a reused
//! buffer instead of holding it whole.

use std::fs::File;
use std::io::{BufRead, BufReader};

use super::quote;
use crate::{Error, ParseError, Roots, TcpStates};

/// Reads `net/tcp` (or `net/tcp6` when `ipv6`) under `roots.proc` and adds its sockets
/// to `states`.
pub fn read_tcp_states(roots: &Roots, ipv6: bool, states: &mut TcpStates) -> Result<(), Error> {
    let path = roots.proc.join(if ipv6 {
        TcpStates::FILE6
    } else {
        TcpStates::FILE
    });
    let read_error = |source| Error::Read {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(read_error)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(256);
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
            return Ok(());
        }
        number += 1;
        count_line(&line, number, states);
    }
}

/// Parses the text of `/proc/net/tcp` or `tcp6` and counts its sockets by state; a
/// malformed line is listed in [`TcpStates::skipped`].
pub fn parse_tcp_states(text: &str) -> TcpStates {
    let mut states = TcpStates::default();
    for (index, line) in text.lines().enumerate() {
        count_line(line.as_bytes(), index + 1, &mut states);
    }
    states
}

fn count_line(line: &[u8], number: usize, states: &mut TcpStates) {
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let Some(first) = fields.next() else { return };
    if first == b"sl" {
        return;
    }
    let state = fields.nth(2);
    let counted = state.and_then(|st| {
        let st = std::str::from_utf8(st).ok()?;
        let index = usize::from_str_radix(st, 16).ok()?;
        states.counts.get_mut(index).filter(|_| index > 0)
    });
    match counted {
        Some(count) => *count += 1,
        None => states.skipped.push(ParseError::new(
            number,
            format!(
                "no known state in {}",
                quote(&String::from_utf8_lossy(line))
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, mutated};
    use proptest::prelude::*;

    const FIXTURE: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0500000A:0016 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 2740 1 ffff88003d3af3c0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2740 1 ffff88003d3af3c0 100 0 0 10 0
   2: 00000000:0016 00000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 2740 1 ffff88003d3af3c0 100 0 0 10 0
   3: 0F02000A:0016 0202000A:8B6B 06 00000000:00000000 00:00000000 00000000     0        0 0 1
";

    #[test]
    fn counts_sockets_by_state() {
        let states = parse_tcp_states(FIXTURE);
        assert_eq!(states.skipped, []);
        assert_eq!(states.counts[10], 2);
        assert_eq!(states.counts[1], 1);
        assert_eq!(states.counts[6], 1);
        assert_eq!(states.counts.iter().sum::<u64>(), 4);
    }

    #[test]
    fn unknown_states_and_short_lines_are_skipped() {
        let states = parse_tcp_states("0: a b 00 x\n1: a b 0D x\n2: a b ZZ\n3: a\n\n");
        assert_eq!(states.counts.iter().sum::<u64>(), 0);
        let lines: Vec<_> = states.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
    }

    #[test]
    fn the_reader_adds_both_files() {
        let dir = TempDir::new("tcp");
        std::fs::create_dir_all(dir.path().join("net")).expect("mkdir");
        let roots = dir.roots();
        std::fs::write(roots.proc.join(TcpStates::FILE), FIXTURE).expect("write");
        std::fs::write(roots.proc.join(TcpStates::FILE6), FIXTURE).expect("write");
        let mut states = TcpStates::default();
        read_tcp_states(&roots, false, &mut states).expect("tcp");
        read_tcp_states(&roots, true, &mut states).expect("tcp6");
        assert_eq!(states.counts[10], 4);
        std::fs::remove_file(roots.proc.join(TcpStates::FILE6)).expect("rm");
        assert!(matches!(
            read_tcp_states(&roots, true, &mut states),
            Err(Error::Read { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let _ = parse_tcp_states(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let states = parse_tcp_states(&text);
            prop_assert_eq!(states.counts[0], 0);
        }
    }
}
