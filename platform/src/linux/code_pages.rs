//! Letting go of the program's own code pages that only start-up used.
//!
//! Most of a small daemon's resident memory is its executable: the kernel maps file
//! pages in 64 KiB neighbourhoods around each page touched, so by the time start-up is
//! done (argument and config parsing, certificate loading, the first TLS handshake,
//! compiling regular expressions) nearly the whole binary is resident, though the
//! steady state runs a fraction of it. Dropping the read-only file mappings' page table
//! entries once lets the steady state fault back in only what it runs.

use std::fs;

/// The read-only mappings of the running executable whose pages are all the file's (its
/// code and read-only data), as `(start, length)` from `/proc/self/smaps`. A mapping
/// with anonymous pages is left alone: the RELRO part (the relocated GOT and vtables,
/// made read-only after the loader wrote them) is private and read-only too, but its
/// pages are the loader's copies, and the file's bytes are not what it holds.
fn read_only_image_ranges(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            // Only a mapping whose anonymous count reads as zero.
            if let Some(range) = candidate.take()
                && kb.trim().strip_suffix("kB").map(str::trim) == Some("0")
            {
                ranges.push(range);
            }
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // A new mapping's header line: private and never writable.
        candidate = (fields.nth(3) == Some(exe)
            && perms.len() == 4
            && perms.as_bytes()[1] == b'-'
            && perms.ends_with('p')
            && end > start)
            .then_some((start, end - start));
    }
    ranges
}

/// Drops the page table entries of the executable's read-only mappings; the pages come
/// back from the page cache (or the file) as they are next run. Returns the bytes of
/// mappings released, 0 if the mappings could not be read.
#[allow(unsafe_code)]
pub fn release_code_pages() -> usize {
    let (Ok(smaps), Ok(exe)) = (
        fs::read_to_string("/proc/self/smaps"),
        fs::read_link("/proc/self/exe"),
    ) else {
        return 0;
    };
    let Some(exe) = exe.to_str() else { return 0 };
    let mut released = 0;
    for (start, len) in read_only_image_ranges(&smaps, exe) {
        // SAFETY: the range is a whole private mapping of the executable file that is
        // not writable and has no anonymous (copied-on-write) page, so every page in it
        // holds the file's bytes (the kernel refuses writes to a file being executed). MADV_DONTNEED on such a
        // mapping only removes page table entries: the next access faults the same
        // bytes back in from the file. No Rust object's memory changes.
        let done = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if done == 0 {
            released += len;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 1234 /usr/bin/sysward-agent
Size:               1024 kB
Anonymous:             0 kB
55d0a0100000-55d0a0600000 r-xp 00100000 08:01 1234 /usr/bin/sysward-agent
Size:               5120 kB
Anonymous:             0 kB
55d0a0600000-55d0a0610000 r--p 00600000 08:01 1234 /usr/bin/sysward-agent
Size:                 64 kB
Anonymous:            64 kB
55d0a0610000-55d0a0700000 rw-p 00610000 08:01 1234 /usr/bin/sysward-agent
Anonymous:             8 kB
55d0a0700000-55d0a0800000 r--s 00700000 08:01 1234 /usr/bin/sysward-agent
Anonymous:             0 kB
55d0a0800000-55d0a0900000 r-xp 00000000 08:01 99 /usr/lib/libc.so.6
Anonymous:             0 kB
55d0a0900000-55d0a0a00000 rw-p 00000000 00:00 0 [heap]
Anonymous:           132 kB
garbage
55d0a0a00000-55d0a0a00000 r-xp 00000000 08:01 1234 /usr/bin/sysward-agent
Anonymous:             0 kB
55d0a0b00000-55d0a0c00000 r-xp 00000000 08:01 1234 /usr/bin/sysward-agent
";

    #[test]
    fn only_the_executables_unmodified_read_only_mappings_are_chosen() {
        // The last has no Anonymous line (a truncated read): not chosen.
        assert_eq!(
            read_only_image_ranges(SMAPS, "/usr/bin/sysward-agent"),
            [(0x55d0a0000000, 0x100000), (0x55d0a0100000, 0x500000)]
        );
    }

    #[test]
    fn the_test_binary_keeps_running_after_releasing_its_code() {
        assert!(release_code_pages() > 0);
        // Code and read-only data fault back in.
        assert_eq!(format!("{}", 6 * 7), "42");
        assert_eq!(read_only_image_ranges(SMAPS, "/nowhere"), []);
    }
}
