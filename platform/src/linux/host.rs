//! Facts about the host: the kernel's identity (`/proc/sys/kernel`), the distribution
//! (`os-release`), the CPUs (`/proc/cpuinfo`), the firmware (`/sys/class/dmi/id`), the
//! machine id and the clock sources.

use std::fs;

use super::{quote, read_attr, read_text};
use crate::{Clocksource, CpuInfo, Dmi, Error, OsRelease, ParseError, Roots, Uname};

/// Reads the kernel's identity from `sys/kernel` under `roots.proc`, as `uname(2)`
/// reports it (procfs answers for the reader's UTS namespace, as the call does).
///
/// `kernel/arch` is recent (Linux 5.x); where it is missing, the machine is taken from
/// `uname(2)` itself.
pub fn read_uname(roots: &Roots) -> Result<Uname, Error> {
    let kernel = roots.proc.join("sys/kernel");
    let read = |name: &str| -> Result<String, Error> {
        let path = kernel.join(name);
        Ok(read_text(&path)?.trim_end_matches('\n').to_owned())
    };
    let machine = match read("arch") {
        Ok(arch) => arch,
        Err(error) if error.is_not_found() => nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default(),
        Err(error) => return Err(error),
    };
    Ok(Uname {
        sysname: read("ostype")?,
        release: read("osrelease")?,
        version: read("version")?,
        machine,
        nodename: read("hostname")?,
        domainname: read("domainname")?,
    })
}

/// Reads `etc/os-release` under `roots.rootfs`, or `usr/lib/os-release` when the first
/// is absent (os-release(5)).
pub fn read_os_release(roots: &Roots) -> Result<OsRelease, Error> {
    let path = roots.rootfs.join(OsRelease::FILE);
    let text = match read_text(&path) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => {
            read_text(&roots.rootfs.join(OsRelease::FALLBACK_FILE)).map_err(|_| error)?
        }
        Err(error) => return Err(error),
    };
    Ok(parse_os_release(&text))
}

/// Parses `os-release(5)` text: `KEY=value` lines, values optionally in single or
/// double quotes, with `\` escaping `"`, `\`, `$` and `` ` `` inside double quotes.
/// Comments, blank lines and lines that are not assignments are passed over.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        if let Some(value) = unquote(value) {
            release.fields.push((key.to_owned(), value));
        }
    }
    release
}

/// A shell-style value: bare, `'single'` or `"double"` quoted; `None` when a quote is
/// left open.
fn unquote(value: &str) -> Option<String> {
    let mut chars = value.chars();
    match chars.next() {
        Some(quote @ ('"' | '\'')) => {
            let mut out = String::new();
            loop {
                match chars.next()? {
                    c if c == quote => return Some(out),
                    '\\' if quote == '"' => match chars.next()? {
                        c @ ('"' | '\\' | '$' | '`') => out.push(c),
                        c => {
                            out.push('\\');
                            out.push(c);
                        }
                    },
                    c => out.push(c),
                }
            }
        }
        _ => Some(value.to_owned()),
    }
}

/// Reads and parses `cpuinfo` under `roots.proc`.
pub fn read_cpuinfo(roots: &Roots) -> Result<CpuInfo, Error> {
    let path = roots.proc.join(CpuInfo::FILE);
    let text = read_text(&path)?;
    parse_cpuinfo(&text).map_err(|error| error.in_file(path))
}

/// Parses the text of `/proc/cpuinfo`, which differs by architecture: x86 names each
/// CPU's `vendor_id` and `model name`; ARM, POWER and MIPS have `model name`,
/// `Processor`, `cpu` or `cpu model`, and no vendor name.
///
/// Fails only when no CPU is listed at all.
pub fn parse_cpuinfo(text: &str) -> Result<CpuInfo, ParseError> {
    let mut info = CpuInfo::default();
    let mut vendor = String::new();
    let mut model = String::new();
    let flush = |vendor: &mut String, model: &mut String, info: &mut CpuInfo| {
        if !(vendor.is_empty() && model.is_empty()) {
            let pair = (std::mem::take(vendor), std::mem::take(model));
            if !info.models.contains(&pair) {
                info.models.push(pair);
            }
        }
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            // A blank line ends one CPU's block.
            if line.trim_ascii().is_empty() {
                flush(&mut vendor, &mut model, &mut info);
            }
            continue;
        };
        let value = value.trim_ascii();
        match key.trim_ascii() {
            "processor" => info.processors += 1,
            // s390 lists no block per CPU but this count.
            "# processors" if info.processors == 0 => {
                info.processors = value.parse().unwrap_or(0);
            }
            "vendor_id" => value.clone_into(&mut vendor),
            "model name" | "Processor" | "cpu model" => value.clone_into(&mut model),
            "cpu" if model.is_empty() => value.clone_into(&mut model),
            "flags" if value.split_ascii_whitespace().any(|f| f == "hypervisor") => {
                info.hypervisor = true;
            }
            _ => {}
        }
    }
    flush(&mut vendor, &mut model, &mut info);
    if info.processors == 0 {
        return Err(ParseError::new(
            text.lines().count() + 1,
            "no `processor` line: this is not /proc/cpuinfo text",
        ));
    }
    Ok(info)
}

/// Reads the firmware's identity from `class/dmi/id` under `roots.sys`. Attributes the
/// firmware does not fill are empty; a missing directory (no DMI, as on most ARM
/// boards) is a read error.
pub fn read_dmi(roots: &Roots) -> Result<Dmi, Error> {
    let dir = roots.sys.join(Dmi::DIR);
    fs::metadata(&dir).map_err(|source| Error::Read {
        path: dir.clone(),
        source,
    })?;
    let attr = |name: &str| {
        read_attr(&dir.join(name))
            .map(|text| text.trim_ascii().to_owned())
            .unwrap_or_default()
    };
    Ok(Dmi {
        sys_vendor: attr("sys_vendor"),
        product_name: attr("product_name"),
        bios_vendor: attr("bios_vendor"),
        board_vendor: attr("board_vendor"),
    })
}

/// Reads `hypervisor/type` under `roots.sys`, which Xen guests have (`xen`).
pub fn read_hypervisor_type(roots: &Roots) -> Result<String, Error> {
    let path = roots.sys.join("hypervisor/type");
    Ok(read_text(&path)?.trim_ascii().to_owned())
}

/// Reads the machine id from `etc/machine-id` under `roots.rootfs`: 32 lowercase
/// hexadecimal digits (machine-id(5)).
pub fn read_machine_id(roots: &Roots) -> Result<String, Error> {
    let path = roots.rootfs.join("etc/machine-id");
    let text = read_text(&path)?;
    let id = text.trim_ascii();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ParseError::new(1, format!("{} is not 32 hexadecimal digits", quote(id))).in_file(path))
    }
}

/// Reads every clock source device of `devices/system/clocksource` under `roots.sys`.
pub fn read_clocksources(roots: &Roots) -> Result<Vec<Clocksource>, Error> {
    let dir = roots.sys.join(Clocksource::DIR);
    let entries = fs::read_dir(&dir).map_err(|source| Error::Read {
        path: dir.clone(),
        source,
    })?;
    let mut sources = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(device) = name.strip_prefix("clocksource") else {
            continue;
        };
        let path = entry.path();
        let read = |attr: &str| {
            let file = path.join(attr);
            read_attr(&file).map_err(|source| Error::Read { path: file, source })
        };
        sources.push(Clocksource {
            device: device.to_owned(),
            available: read("available_clocksource")?
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            current: read("current_clocksource")?.trim_ascii().to_owned(),
        });
    }
    sources.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, fixture_roots, mutated};
    use proptest::prelude::*;

    const OS_RELEASE: &str = r#"NAME="Ubuntu"
VERSION="20.04.2 LTS (Focal Fossa)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME='Ubuntu 20.04.2 LTS'
# comment
ESCAPED="a \"b\" \$c \x"
OPEN="never closed
not an assignment
VERSION_ID="20.04"
"#;

    const CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU
flags\t\t: fpu vme hypervisor

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU
flags\t\t: fpu vme hypervisor
";

    #[test]
    fn os_release_values_are_unquoted() {
        let release = parse_os_release(OS_RELEASE);
        assert_eq!(release.get("NAME"), Some("Ubuntu"));
        assert_eq!(release.get("ID"), Some("ubuntu"));
        assert_eq!(release.get("PRETTY_NAME"), Some("Ubuntu 20.04.2 LTS"));
        assert_eq!(release.get("ESCAPED"), Some(r#"a "b" $c \x"#));
        assert_eq!(release.get("VERSION_ID"), Some("20.04"));
        assert_eq!(release.get("OPEN"), None);
    }

    #[test]
    fn os_release_falls_back_to_usr_lib() {
        let dir = TempDir::new("os-release");
        let roots = Roots::new(dir.path(), dir.path(), dir.path());
        assert!(read_os_release(&roots).expect_err("none").is_not_found());
        std::fs::create_dir_all(dir.path().join("usr/lib")).expect("mkdir");
        std::fs::write(dir.path().join("usr/lib/os-release"), "ID=arch\n").expect("write");
        assert_eq!(
            read_os_release(&roots).expect("reads").get("ID"),
            Some("arch")
        );
    }

    #[test]
    fn cpuinfo_counts_cpus_and_distinct_models() {
        let info = parse_cpuinfo(CPUINFO).expect("parses");
        assert_eq!(info.processors, 2);
        assert_eq!(
            info.models,
            [("GenuineIntel".to_owned(), "Intel(R) Xeon(R) CPU".to_owned())]
        );
        assert!(info.hypervisor);
        let arm =
            parse_cpuinfo("processor : 0\nBogoMIPS : 50\n\nprocessor : 1\n\nHardware : BCM2835\n")
                .expect("parses");
        assert_eq!(arm.processors, 2);
        assert!(arm.models.is_empty());
        assert!(parse_cpuinfo("nothing: here\n").is_err());
    }

    #[test]
    fn reads_the_node_exporter_fixture_tree() {
        let roots = fixture_roots();
        let info = read_cpuinfo(&roots).expect("cpuinfo");
        assert_eq!(info.processors, 8);
        assert!(!info.hypervisor);
    }

    #[test]
    fn machine_id_must_be_32_hex_digits() {
        let dir = TempDir::new("machine-id");
        let roots = Roots::new(dir.path(), dir.path(), dir.path());
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/machine-id"),
            "0123456789ABCDEF0123456789abcdef\n",
        )
        .expect("write");
        assert_eq!(
            read_machine_id(&roots).expect("reads"),
            "0123456789abcdef0123456789abcdef"
        );
        std::fs::write(dir.path().join("etc/machine-id"), "uninitialized\n").expect("write");
        assert!(read_machine_id(&roots).is_err());
    }

    #[test]
    fn uname_reads_procfs() {
        let dir = TempDir::new("uname");
        let kernel = dir.path().join("sys/kernel");
        std::fs::create_dir_all(&kernel).expect("mkdir");
        for (name, value) in [
            ("ostype", "Linux"),
            ("osrelease", "6.1.0"),
            ("version", "#1 SMP"),
            ("hostname", "web1"),
            ("domainname", "(none)"),
            ("arch", "riscv64"),
        ] {
            std::fs::write(kernel.join(name), format!("{value}\n")).expect("write");
        }
        let uname = read_uname(&dir.roots()).expect("reads");
        assert_eq!(uname.sysname, "Linux");
        assert_eq!(uname.machine, "riscv64");
        assert_eq!(uname.domainname, "(none)");
        std::fs::remove_file(kernel.join("arch")).expect("rm");
        assert!(!read_uname(&dir.roots()).expect("reads").machine.is_empty());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_os_release(&text);
            let _ = parse_cpuinfo(&text);
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(release in mutated(OS_RELEASE), cpu in mutated(CPUINFO)) {
            let _ = parse_os_release(&release);
            let _ = parse_cpuinfo(&cpu);
        }
    }
}
