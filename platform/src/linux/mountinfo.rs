//! `/proc/[pid]/mountinfo`: the mount table.
//!
//! Format (proc(5)), one mount per line:
//! `36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
//! mount id, parent id, major:minor, root within the file system, mount point, mount
//! options, zero or more optional fields, a `-` separator, the file system type, the
//! source (device) and the super block options. Paths escape space, tab, line feed and
//! backslash as octal (`\040`, `\011`, `\012`, `\134`).

use super::{quote, read_text};
use crate::{Error, Mount, Mounts, ParseError, Roots};

/// Reads and parses init's mount table under `roots.proc`, or the reader's own when
/// init's cannot be read.
pub fn read_mounts(roots: &Roots) -> Result<Mounts, Error> {
    let path = roots.proc.join(Mounts::FILE);
    let (path, text) = match read_text(&path) {
        Ok(text) => (path, text),
        Err(first) => {
            let fallback = roots.proc.join(Mounts::FALLBACK_FILE);
            match read_text(&fallback) {
                Ok(text) => (fallback, text),
                // The first error says more: init's table is the one wanted.
                Err(_) => return Err(first),
            }
        }
    };
    parse_mountinfo(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of a `mountinfo` file.
///
/// A malformed line is listed in [`Mounts::skipped`]; fails only when no line could be
/// read, since every system has a root mount.
pub fn parse_mountinfo(text: &str) -> Result<Mounts, ParseError> {
    let mut mounts = Mounts::default();
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        lines = index + 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(mount) => mounts.mounts.push(mount),
            Err(message) => mounts.skipped.push(ParseError::new(lines, message)),
        }
    }
    if mounts.mounts.is_empty() {
        return Err(ParseError::new(
            lines + 1,
            "no readable mount: this is not mountinfo text",
        ));
    }
    Ok(mounts)
}

fn parse_line(line: &str) -> Result<Mount, String> {
    let mut fields = line.split_ascii_whitespace();
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("no {what} in {}", quote(line)))
    };
    let _id = next("mount id")?;
    let _parent = next("parent id")?;
    let _dev = next("major:minor")?;
    let _root = next("root")?;
    let mount_point = unescape(next("mount point")?);
    let options = next("mount options")?;
    // Optional fields (`shared:1`, `master:2`, ...) run up to the lone `-`.
    loop {
        if next("`-` separator")? == "-" {
            break;
        }
    }
    let fstype = unescape(next("file system type")?);
    let device = unescape(next("source")?);
    if !mount_point.starts_with('/') {
        return Err(format!(
            "mount point {} is not absolute",
            quote(&mount_point)
        ));
    }
    Ok(Mount {
        device,
        mount_point,
        fstype,
        read_only: options.split(',').any(|option| option == "ro"),
    })
}

/// Decodes the kernel's `\ooo` octal escapes; anything else is kept as written.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u16, |acc, b| acc * 8 + u16::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, any_line, fixture_roots, mutated};
    use proptest::prelude::*;

    const FIXTURE: &str = "\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/dm-2 errors=remount-ro,data=ordered
33 24 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
3148 3003 260:0 / /var/lib/kubelet/[vsan]\\040a/b.vmdk rw,relatime shared:31 - ext4 /dev/sda rw
3149 3004 260:0 / /mnt/tab\\011here rw,relatime - ext4 /dev/sdb rw
1128 67 253:0 /var/lib/x /var/lib/x rw,relatime - xfs /dev/mapper/rhel-root rw
";

    #[test]
    fn parses_mounts_with_and_without_optional_fields() {
        let mounts = parse_mountinfo(FIXTURE).expect("parses");
        assert_eq!(mounts.skipped, []);
        assert_eq!(mounts.mounts.len(), 6);
        assert_eq!(
            mounts.mounts[1],
            Mount {
                device: "/dev/dm-2".into(),
                mount_point: "/".into(),
                fstype: "ext4".into(),
                read_only: false,
            }
        );
        assert!(mounts.mounts[2].read_only);
        assert_eq!(mounts.mounts[5].device, "/dev/mapper/rhel-root");
    }

    #[test]
    fn octal_escapes_are_decoded() {
        let mounts = parse_mountinfo(FIXTURE).expect("parses");
        assert_eq!(
            mounts.mounts[3].mount_point,
            "/var/lib/kubelet/[vsan] a/b.vmdk"
        );
        assert_eq!(mounts.mounts[4].mount_point, "/mnt/tab\there");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("big\\777"), "big\\777");
    }

    #[test]
    fn malformed_lines_are_skipped_with_their_number() {
        let text = "1 2 3:4 / / rw - ext4 /dev/a rw\nnonsense\n5 6 7:8 / relative rw - x y z\n";
        let mounts = parse_mountinfo(text).expect("parses");
        assert_eq!(mounts.mounts.len(), 1);
        let lines: Vec<_> = mounts.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(parse_mountinfo("").is_err());
    }

    #[test]
    fn reads_init_table_of_the_fixture() {
        let mounts = read_mounts(&fixture_roots()).expect("reads");
        assert!(mounts.mounts.iter().any(|m| m.mount_point == "/boot"));
    }

    #[test]
    fn falls_back_to_the_readers_own_table() {
        let dir = TempDir::new("mountinfo-fallback");
        std::fs::create_dir_all(dir.path().join("self")).expect("mkdir");
        std::fs::write(
            dir.path().join("self/mountinfo"),
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
        )
        .expect("write");
        let mounts = read_mounts(&dir.roots()).expect("reads");
        assert_eq!(mounts.mounts[0].device, "/dev/sda1");
        std::fs::remove_file(dir.path().join("self/mountinfo")).expect("rm");
        match read_mounts(&dir.roots()) {
            Err(Error::Read { path, .. }) => assert!(path.ends_with("1/mountinfo")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let _ = parse_mountinfo(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let _ = parse_mountinfo(&text);
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_mountinfo(FIXTURE).expect("parses");
            let mounts = parse_mountinfo(&format!("{FIXTURE}{line}\n")).expect("parses");
            prop_assert_eq!(&mounts.mounts[..original.mounts.len()], &original.mounts[..]);
        }
    }
}
