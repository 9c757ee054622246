//! What the `sysward-smart` helper may be asked, and the one `smartctl` command line each
//! request becomes.
//!
//! The helper runs with the capabilities raw disk access needs, on behalf of an
//! unprivileged agent, so its interface is as narrow as the job: three requests, each
//! mapped to a fixed argument template, and device paths and types checked against a
//! list of known shapes before they reach smartctl. Nothing from the caller is passed
//! through a shell or as an option of its own choosing.
//!
//! | helper arguments | smartctl arguments |
//! | --- | --- |
//! | `version` | `--version` |
//! | `scan json` / `scan text` | `--scan-open --json` / `--scan-open` |
//! | `read json PATH [TYPE]` | `--json --all --nocheck=standby [--device=TYPE] PATH` |
//! | `read text PATH [TYPE]` | `--all --nocheck=standby [--device=TYPE] PATH` |
//!
//! Device paths: `/dev/sd[a-z]{1,4}`, `/dev/hd[a-z]{1,4}`, `/dev/nvme<N>[n<N>]`,
//! `/dev/sg<N>`, `/dev/bus/<N>` (MegaRAID), `/dev/tw[ael]<N>` (3ware),
//! `/dev/cciss/c<N>d<N>`. Device types: smartctl's plain types (`ata`, `scsi`, `nvme`,
//! `sat[,auto|12|16]`, the USB and NVMe bridge types, `auto`) and its RAID controller
//! types with numeric arguments (`megaraid,N`, `cciss,N`, `3ware,N`, `areca,N[/E]`,
//! `hpt,L/M[/N]`, `aacraid,H,L,ID`, `jmb39x,N`, `jms56x,N`, `intelliprop,N`), optionally
//! behind `sat+` or `scsi+` (`sat+megaraid,14`).

use std::ffi::OsString;

/// How smartctl is to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON (`--json`), smartmontools 7 and later.
    Json,
    /// Text, for smartmontools 6.x.
    Text,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Text => "text",
        }
    }

    fn parse(word: &str) -> Result<Self, RequestError> {
        match word {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            other => Err(RequestError::Usage(format!(
                "unknown format {other:?}, expected json or text"
            ))),
        }
    }
}

/// A device path and optional device type that passed the checks in this module.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceArg {
    path: String,
    device_type: Option<String>,
}

impl DeviceArg {
    /// Checks a device path and type; refuses any shape not listed in the module
    /// documentation.
    pub fn new(path: &str, device_type: Option<&str>) -> Result<Self, RequestError> {
        if !valid_path(path) {
            return Err(RequestError::Device {
                path: path.to_owned(),
                reason: "not a disk device path this helper reads \
                         (/dev/sdX, /dev/hdX, /dev/nvmeN[nN], /dev/sgN, /dev/bus/N, \
                         /dev/twaN, /dev/cciss/cNdN)",
            });
        }
        if let Some(device_type) = device_type
            && !valid_type(device_type)
        {
            return Err(RequestError::DeviceType {
                device_type: device_type.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            device_type: device_type.map(str::to_owned),
        })
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The device type, if one was given.
    pub fn device_type(&self) -> Option<&str> {
        self.device_type.as_deref()
    }
}

/// One thing the helper may be asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// `smartctl --version`.
    Version,
    /// List the devices (`smartctl --scan-open`).
    Scan(Format),
    /// Read one device's SMART data (`smartctl --all`), leaving a sleeping disk asleep.
    Read(Format, DeviceArg),
}

/// Why the helper refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The arguments do not form a request.
    #[error("{0}; usage: sysward-smart version | scan json|text | read json|text DEVICE [TYPE]")]
    Usage(String),
    /// The device path has a shape the helper does not read.
    #[error("refused device {path:?}: {reason}")]
    Device {
        /// The path given.
        path: String,
        /// Which shapes are allowed.
        reason: &'static str,
    },
    /// The device type is not one the helper passes on.
    #[error(
        "refused device type {device_type:?}: not a smartctl device type this helper passes on"
    )]
    DeviceType {
        /// The type given.
        device_type: String,
    },
}

impl Request {
    /// The arguments to give the helper for this request.
    pub fn helper_args(&self) -> Vec<String> {
        match self {
            Request::Version => vec!["version".into()],
            Request::Scan(format) => vec!["scan".into(), format.as_str().into()],
            Request::Read(format, device) => {
                let mut args = vec!["read".into(), format.as_str().into(), device.path.clone()];
                args.extend(device.device_type.clone());
                args
            }
        }
    }

    /// Reads a request from the helper's arguments (without the program name),
    /// refusing anything else.
    pub fn from_helper_args<I>(args: I) -> Result<Self, RequestError>
    where
        I: IntoIterator<Item = OsString>,
    {
        let args = args
            .into_iter()
            .map(|arg| {
                arg.into_string()
                    .map_err(|arg| RequestError::Usage(format!("argument {arg:?} is not UTF-8")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["version"] => Ok(Request::Version),
            ["scan", format] => Ok(Request::Scan(Format::parse(format)?)),
            ["read", format, path] => Ok(Request::Read(
                Format::parse(format)?,
                DeviceArg::new(path, None)?,
            )),
            ["read", format, path, device_type] => Ok(Request::Read(
                Format::parse(format)?,
                DeviceArg::new(path, Some(device_type))?,
            )),
            [] => Err(RequestError::Usage("no request".into())),
            _ => Err(RequestError::Usage(format!(
                "unknown request {:?}",
                args.join(" ")
            ))),
        }
    }

    /// The smartctl arguments for this request: the fixed template, filled in.
    pub fn smartctl_args(&self) -> Vec<String> {
        let read = |json: bool, device: &DeviceArg| {
            let mut args: Vec<String> = Vec::new();
            if json {
                args.push("--json".into());
            }
            args.push("--all".into());
            args.push("--nocheck=standby".into());
            if let Some(device_type) = &device.device_type {
                args.push(format!("--device={device_type}"));
            }
            args.push(device.path.clone());
            args
        };
        match self {
            Request::Version => vec!["--version".into()],
            Request::Scan(Format::Json) => vec!["--scan-open".into(), "--json".into()],
            Request::Scan(Format::Text) => vec!["--scan-open".into()],
            Request::Read(Format::Json, device) => read(true, device),
            Request::Read(Format::Text, device) => read(false, device),
        }
    }
}

/// Where the helper looks for smartctl, in order. Never `PATH`: the caller controls it.
pub const SMARTCTL_PATHS: &[&str] = &[
    "/usr/sbin/smartctl",
    "/sbin/smartctl",
    "/usr/local/sbin/smartctl",
    "/usr/bin/smartctl",
];

/// The whole environment smartctl runs with: the C locale, so that numbers read the same
/// on every host, and a fixed `PATH`.
pub const SMARTCTL_ENV: &[(&str, &str)] =
    &[("LC_ALL", "C"), ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")];

/// `prefix` followed by `min..=max` characters that all satisfy `class`.
fn shaped(text: &str, prefix: &str, min: usize, max: usize, class: fn(u8) -> bool) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| (min..=max).contains(&rest.len()) && rest.bytes().all(class))
}

fn digits(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn valid_path(path: &str) -> bool {
    let lower = |b: u8| b.is_ascii_lowercase();
    let digit = |b: u8| b.is_ascii_digit();
    if shaped(path, "/dev/sd", 1, 4, lower)
        || shaped(path, "/dev/hd", 1, 4, lower)
        || shaped(path, "/dev/sg", 1, 4, digit)
        || shaped(path, "/dev/bus/", 1, 3, digit)
        || shaped(path, "/dev/twa", 1, 3, digit)
        || shaped(path, "/dev/twe", 1, 3, digit)
        || shaped(path, "/dev/twl", 1, 3, digit)
    {
        return true;
    }
    if let Some(rest) = path.strip_prefix("/dev/nvme") {
        return match rest.split_once('n') {
            Some((controller, namespace)) => digits(controller, 3) && digits(namespace, 3),
            None => digits(rest, 3),
        };
    }
    if let Some(rest) = path.strip_prefix("/dev/cciss/c") {
        return rest
            .split_once('d')
            .is_some_and(|(controller, disk)| digits(controller, 3) && digits(disk, 3));
    }
    false
}

fn valid_type(device_type: &str) -> bool {
    if device_type.len() > 40 {
        return false;
    }
    match device_type.split_once('+') {
        Some((outer, inner)) => (outer == "scsi" || valid_sat(outer)) && valid_controller(inner),
        None => valid_plain(device_type) || valid_controller(device_type),
    }
}

fn valid_sat(device_type: &str) -> bool {
    matches!(device_type, "sat" | "sat,auto" | "sat,12" | "sat,16")
}

fn valid_plain(device_type: &str) -> bool {
    if valid_sat(device_type) {
        return true;
    }
    if let Some(nsid) = device_type.strip_prefix("nvme,") {
        return digits(nsid, 10) || shaped(nsid, "0x", 1, 8, |b| b.is_ascii_hexdigit());
    }
    if let Some(options) = device_type.strip_prefix("usbjmicron,") {
        let options: Vec<&str> = options.split(',').collect();
        return options.len() <= 3 && options.iter().all(|o| matches!(*o, "p" | "x" | "0" | "1"));
    }
    matches!(
        device_type,
        "auto"
            | "ata"
            | "scsi"
            | "nvme"
            | "usbcypress"
            | "usbjmicron"
            | "usbprolific"
            | "usbsunplus"
            | "sntasmedia"
            | "sntjmicron"
            | "sntrealtek"
            | "marvell"
    )
}

fn valid_controller(device_type: &str) -> bool {
    let Some((name, args)) = device_type.split_once(',') else {
        return false;
    };
    let parts = |separator: char, count: std::ops::RangeInclusive<usize>| {
        let parts: Vec<&str> = args.split(separator).collect();
        count.contains(&parts.len()) && parts.iter().all(|p| digits(p, 3))
    };
    match name {
        "megaraid" | "cciss" | "3ware" | "jmb39x" | "jms56x" | "intelliprop" => digits(args, 3),
        "areca" => parts('/', 1..=2),
        "hpt" => parts('/', 2..=3),
        "aacraid" => parts(',', 3..=3),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn accepted_paths() {
        for path in [
            "/dev/sda",
            "/dev/sdaa",
            "/dev/hdb",
            "/dev/nvme0",
            "/dev/nvme0n1",
            "/dev/nvme12n3",
            "/dev/sg3",
            "/dev/bus/6",
            "/dev/twa0",
            "/dev/twl1",
            "/dev/cciss/c0d0",
        ] {
            assert!(DeviceArg::new(path, None).is_ok(), "{path}");
        }
    }

    #[test]
    fn refused_paths() {
        for path in [
            "",
            "/dev/sda1",
            "/dev/sd",
            "/dev/SDA",
            "/dev/sda/../../etc/shadow",
            "/dev/disk/by-id/ata-X",
            "/dev/nvme0n",
            "/dev/nvme0n1p1",
            "/dev/nvmen1",
            "/dev/bus/",
            "/dev/bus/6/x",
            "/dev/mem",
            "/dev/vda",
            "/etc/passwd",
            "sda",
            "-a",
            "--scan",
            "/dev/sda ",
            "/dev/sda;reboot",
            "/dev/cciss/c0d",
            "/dev/sdabcde",
        ] {
            let error = DeviceArg::new(path, None).unwrap_err();
            assert!(matches!(error, RequestError::Device { .. }), "{path}");
            assert!(error.to_string().contains("refused device"), "{error}");
        }
    }

    #[test]
    fn accepted_types() {
        for device_type in [
            "sat",
            "sat,12",
            "nvme",
            "nvme,1",
            "nvme,0xffffffff",
            "scsi",
            "ata",
            "auto",
            "usbjmicron,p,0",
            "megaraid,14",
            "sat+megaraid,0",
            "scsi+cciss,3",
            "cciss,7",
            "3ware,2",
            "areca,1/2",
            "hpt,1/1/2",
            "aacraid,0,0,1",
            "jmb39x,1",
        ] {
            assert!(
                DeviceArg::new("/dev/sda", Some(device_type)).is_ok(),
                "{device_type}"
            );
        }
    }

    #[test]
    fn refused_types() {
        for device_type in [
            "",
            "test",
            "megaraid",
            "megaraid,",
            "megaraid,1234",
            "megaraid,1,2",
            "sat+sat",
            "sat+megaraid,1+cciss,2",
            "ata --all",
            "sat,32",
            "areca,1/2/3",
            "aacraid,0,0",
            "nvme,-1",
            "usbjmicron,q",
            "--json",
            "megaraid,1;reboot",
        ] {
            let error = DeviceArg::new("/dev/sda", Some(device_type)).unwrap_err();
            assert!(
                matches!(error, RequestError::DeviceType { .. }),
                "{device_type}"
            );
        }
    }

    #[test]
    fn requests_round_trip_through_helper_arguments() {
        let requests = [
            Request::Version,
            Request::Scan(Format::Json),
            Request::Scan(Format::Text),
            Request::Read(
                Format::Json,
                DeviceArg::new("/dev/nvme0", Some("nvme")).unwrap(),
            ),
            Request::Read(Format::Text, DeviceArg::new("/dev/sda", None).unwrap()),
        ];
        for request in requests {
            let helper_args = request.helper_args().into_iter().map(OsString::from);
            assert_eq!(Request::from_helper_args(helper_args).unwrap(), request);
        }
    }

    #[test]
    fn each_request_has_its_fixed_template() {
        let megaraid = DeviceArg::new("/dev/bus/6", Some("megaraid,14")).unwrap();
        assert_eq!(
            Request::Read(Format::Json, megaraid.clone()).smartctl_args(),
            [
                "--json",
                "--all",
                "--nocheck=standby",
                "--device=megaraid,14",
                "/dev/bus/6"
            ]
        );
        assert_eq!(
            Request::Read(Format::Text, megaraid).smartctl_args(),
            [
                "--all",
                "--nocheck=standby",
                "--device=megaraid,14",
                "/dev/bus/6"
            ]
        );
        assert_eq!(
            Request::Scan(Format::Json).smartctl_args(),
            ["--scan-open", "--json"]
        );
        assert_eq!(Request::Scan(Format::Text).smartctl_args(), ["--scan-open"]);
        assert_eq!(Request::Version.smartctl_args(), ["--version"]);
    }

    #[test]
    fn other_arguments_are_refused_with_usage() {
        for words in [
            &[][..],
            &["scan"],
            &["scan", "yaml"],
            &["read", "json"],
            &["read", "json", "/dev/sda", "sat", "extra"],
            &["--all", "/dev/sda"],
            &["smartctl", "-s", "on", "/dev/sda"],
            &["write", "/dev/sda"],
        ] {
            let error = Request::from_helper_args(args(words)).unwrap_err();
            assert!(
                error.to_string().contains("usage: sysward-smart"),
                "{error}"
            );
        }
        let error = Request::from_helper_args(args(&["read", "json", "/dev/mem"])).unwrap_err();
        assert!(matches!(error, RequestError::Device { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'/', 0xff]);
        let error =
            Request::from_helper_args(vec![OsString::from("read"), OsString::from("json"), bad])
                .unwrap_err();
        assert!(matches!(error, RequestError::Usage(_)));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics_and_accepts_only_dev_paths(
            path in ".{0,24}", device_type in ".{0,24}"
        ) {
            if DeviceArg::new(&path, Some(&device_type)).is_ok() {
                proptest::prop_assert!(path.starts_with("/dev/"));
                proptest::prop_assert!(!path.contains(".."));
                proptest::prop_assert!(!device_type.contains(' '));
            }
        }
    }
}
