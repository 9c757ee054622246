//! `host`: facts that rarely change, sent at the static tier.
//!
//! - `node_uname_info` and `node_os_info` / `node_os_version`, as node_exporter's
//!   `uname` and `os` collectors send them.
//! - `sysward_host_cpu_count` and `sysward_host_cpu_info{vendor,model_name}` (one
//!   series per distinct model; node_exporter's `node_cpu_info` has one per CPU).
//! - `sysward_host_machine_id_info{machine_id}` from the host's `/etc/machine-id`.
//!   machine-id(5) asks that the id be kept confidential; it is sent as is so that it
//!   matches journald's `_MACHINE_ID` and inventories.
//! - `sysward_host_virtualization_info{type}`, best effort: the hypervisor named by the
//!   firmware (DMI vendor strings, matched as `systemd-detect-virt` does) or by
//!   `/sys/hypervisor/type`; `unknown` when the CPU says it runs under a hypervisor
//!   but not which; `none` when the firmware names no hypervisor. Containers are not
//!   detected.
//!
//! `node_boot_time_seconds` is the `cpu` collector's, `node_memory_MemTotal_bytes`
//! the `memory` collector's; neither is repeated here.

use sysward_platform::{CpuInfo, Dmi, Roots};

use crate::{CollectError, Collector, Kind, Output, Sample};

/// The kernel's identity (gauge, 1).
pub const UNAME_INFO: &str = "node_uname_info";
/// The distribution's identity (gauge, 1).
pub const OS_INFO: &str = "node_os_info";
/// The distribution's major.minor version (gauge).
pub const OS_VERSION: &str = "node_os_version";
/// Logical CPUs (gauge).
pub const CPU_COUNT: &str = "sysward_host_cpu_count";
/// A CPU model of the host (gauge, 1).
pub const CPU_INFO: &str = "sysward_host_cpu_info";
/// The machine id (gauge, 1).
pub const MACHINE_ID_INFO: &str = "sysward_host_machine_id_info";
/// The hypervisor, if any (gauge, 1).
pub const VIRTUALIZATION_INFO: &str = "sysward_host_virtualization_info";

/// `os-release` keys sent as `node_os_info` labels, with node_exporter's label names.
const OS_LABELS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

/// Prefixes of DMI vendor and product strings that name a hypervisor, and its name
/// (systemd's `dmi_vendor_table`).
const DMI_VENDORS: [(&str, &str); 17] = [
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "amazon"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "oracle"),
    ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "microsoft"),
    ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
];

/// Reads the host's identity under its roots.
#[derive(Debug)]
pub struct HostCollector {
    roots: Roots,
}

impl HostCollector {
    /// A collector reading under `roots`.
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        match sysward_platform::read_uname(&self.roots) {
            Ok(uname) => out.push(
                Sample::new(UNAME_INFO, Kind::Gauge, 1.0)
                    .label("sysname", uname.sysname)
                    .label("release", uname.release)
                    .label("version", uname.version)
                    .label("machine", uname.machine)
                    .label("nodename", uname.nodename)
                    .label("domainname", uname.domainname),
            ),
            Err(error) => out.error(error.to_string()),
        }
        match sysward_platform::read_os_release(&self.roots) {
            Ok(release) => {
                let mut info = Sample::new(OS_INFO, Kind::Gauge, 1.0);
                for (label, key) in OS_LABELS {
                    info = info.label(label, release.get(key).unwrap_or_default());
                }
                out.push(info);
                if let Some(version) = release.get("VERSION_ID").and_then(major_minor) {
                    out.push(
                        Sample::new(OS_VERSION, Kind::Gauge, version)
                            .label("id", release.get("ID").unwrap_or_default())
                            .label("id_like", release.get("ID_LIKE").unwrap_or_default())
                            .label("name", release.get("NAME").unwrap_or_default()),
                    );
                }
            }
            Err(error) => out.error(error.to_string()),
        }
        let cpuinfo = match sysward_platform::read_cpuinfo(&self.roots) {
            Ok(info) => {
                out.push(Sample::new(
                    CPU_COUNT,
                    Kind::Gauge,
                    f64::from(info.processors),
                ));
                for (vendor, model) in &info.models {
                    out.push(
                        Sample::new(CPU_INFO, Kind::Gauge, 1.0)
                            .label("vendor", vendor.as_str())
                            .label("model_name", model.as_str()),
                    );
                }
                Some(info)
            }
            Err(error) => {
                out.error(error.to_string());
                None
            }
        };
        match sysward_platform::read_machine_id(&self.roots) {
            Ok(id) => {
                out.push(Sample::new(MACHINE_ID_INFO, Kind::Gauge, 1.0).label("machine_id", id))
            }
            Err(error) => out.error(error.to_string()),
        }
        // Absent DMI (most ARM boards) or Xen file is normal, not an error.
        let dmi = sysward_platform::read_dmi(&self.roots).ok();
        let xen = sysward_platform::read_hypervisor_type(&self.roots).ok();
        if let Some(kind) = virtualization(dmi.as_ref(), xen.as_deref(), cpuinfo.as_ref()) {
            out.push(Sample::new(VIRTUALIZATION_INFO, Kind::Gauge, 1.0).label("type", kind));
        }
        Ok(())
    }
}

/// node_exporter's reading of `VERSION_ID` as a number: its leading `major[.minor]`,
/// e.g. 20.04 for "20.04", 9 for "9", nothing for "rolling".
fn major_minor(version: &str) -> Option<f64> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let major = digits(version);
    if major == 0 {
        return None;
    }
    let mut end = major;
    if let Some(rest) = version[major..].strip_prefix('.') {
        let minor = digits(rest);
        if minor > 0 {
            end = major + 1 + minor;
        }
    }
    version[..end].parse().ok()
}

/// The hypervisor, from what the firmware, Xen and the CPU say; `None` when nothing
/// can be told (no DMI and no hypervisor flag, as on ARM boards).
fn virtualization(
    dmi: Option<&Dmi>,
    xen: Option<&str>,
    cpu: Option<&CpuInfo>,
) -> Option<&'static str> {
    if let Some(dmi) = dmi {
        let strings = [
            &dmi.product_name,
            &dmi.sys_vendor,
            &dmi.board_vendor,
            &dmi.bios_vendor,
        ];
        for value in strings {
            if let Some((_, kind)) = DMI_VENDORS
                .iter()
                .find(|(prefix, _)| value.starts_with(prefix))
            {
                return Some(kind);
            }
        }
        // Hyper-V names itself only by vendor and a generic product.
        if dmi.sys_vendor == "Microsoft Corporation" && dmi.product_name == "Virtual Machine" {
            return Some("microsoft");
        }
    }
    if xen == Some("xen") {
        return Some("xen");
    }
    if cpu.is_some_and(|cpu| cpu.hypervisor) {
        return Some("unknown");
    }
    dmi.map(|_| "none")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testing::{TempDir, value_of};

    fn dmi(vendor: &str, product: &str) -> Dmi {
        Dmi {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            ..Dmi::default()
        }
    }

    #[test]
    fn hypervisors_are_told_from_firmware_xen_and_the_cpu() {
        let flagged = CpuInfo {
            processors: 1,
            hypervisor: true,
            ..CpuInfo::default()
        };
        let cases = [
            (
                Some(dmi("QEMU", "Standard PC (Q35 + ICH9, 2009)")),
                None,
                None,
                Some("qemu"),
            ),
            (
                Some(dmi("Amazon EC2", "m5.large")),
                None,
                None,
                Some("amazon"),
            ),
            (
                Some(dmi("innotek GmbH", "VirtualBox")),
                None,
                None,
                Some("oracle"),
            ),
            (
                Some(dmi("Microsoft Corporation", "Virtual Machine")),
                None,
                None,
                Some("microsoft"),
            ),
            (
                Some(dmi("Dell Inc.", "PowerEdge R6515")),
                None,
                None,
                Some("none"),
            ),
            (
                Some(dmi("Dell Inc.", "PowerEdge R6515")),
                None,
                Some(&flagged),
                Some("unknown"),
            ),
            (None, Some("xen"), None, Some("xen")),
            (None, None, Some(&flagged), Some("unknown")),
            (None, None, None, None),
        ];
        for (dmi, xen, cpu, expected) in cases {
            assert_eq!(
                virtualization(dmi.as_ref(), xen, cpu),
                expected,
                "{dmi:?} {xen:?}"
            );
        }
    }

    #[test]
    fn os_versions_read_like_node_exporters() {
        assert_eq!(major_minor("20.04"), Some(20.04));
        assert_eq!(major_minor("9"), Some(9.0));
        assert_eq!(major_minor("8.6.2"), Some(8.6));
        assert_eq!(major_minor("2."), Some(2.0));
        assert_eq!(major_minor("rolling"), None);
    }

    #[test]
    fn sends_each_fact_and_reports_what_is_missing() {
        let dir = TempDir::new("host");
        for (name, value) in [
            ("ostype", "Linux"),
            ("osrelease", "6.1.0"),
            ("version", "#1 SMP"),
            ("hostname", "web1"),
            ("domainname", "(none)"),
            ("arch", "x86_64"),
        ] {
            dir.write(&format!("proc/sys/kernel/{name}"), format!("{value}\n"));
        }
        dir.write("proc/cpuinfo", "processor : 0\nvendor_id : AuthenticAMD\nmodel name : EPYC\n\nprocessor : 1\nvendor_id : AuthenticAMD\nmodel name : EPYC\n");
        dir.write(
            "root/usr/lib/os-release",
            "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        dir.write("sys/class/dmi/id/sys_vendor", "QEMU\n");
        let mut out = Output::default();
        HostCollector::new(dir.roots())
            .collect(&mut out)
            .expect("collects");
        let uname = [
            ("sysname", "Linux"),
            ("release", "6.1.0"),
            ("version", "#1 SMP"),
            ("machine", "x86_64"),
            ("nodename", "web1"),
            ("domainname", "(none)"),
        ];
        assert_eq!(value_of(&out, UNAME_INFO, &uname), Some(1.0));
        let os = out
            .samples
            .iter()
            .find(|s| s.name == OS_INFO)
            .expect("os info");
        assert!(os.labels.contains(&("id".into(), "debian".into())));
        assert_eq!(os.labels.len(), 12);
        assert_eq!(
            value_of(
                &out,
                OS_VERSION,
                &[
                    ("id", "debian"),
                    ("id_like", ""),
                    ("name", "Debian GNU/Linux")
                ]
            ),
            Some(12.0)
        );
        assert_eq!(value_of(&out, CPU_COUNT, &[]), Some(2.0));
        assert_eq!(
            value_of(
                &out,
                CPU_INFO,
                &[("vendor", "AuthenticAMD"), ("model_name", "EPYC")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value_of(&out, VIRTUALIZATION_INFO, &[("type", "qemu")]),
            Some(1.0)
        );
        // No machine-id in this tree: that part alone is reported.
        assert_eq!(out.errors.len(), 1, "{:#?}", out.errors);
        assert!(out.errors[0].contains("machine-id"), "{}", out.errors[0]);
    }
}
