//! One network namespace per agent, joined to the host by a veth pair: the host side has
//! `10.B.x.(y+1)/30`, the namespace side `10.B.x.(y+2)/30`, for a `/16` block `10.B.0.0`
//! that no address of the host is in. Names carry the test's pid (`sw-soak-<pid>-<i>`,
//! host interface `sw<pid>x<i>`), so runs side by side do not clash; each is removed when
//! its guard drops, also when the test panics, and leftovers of runs whose process is gone
//! are removed at the next start.

use std::{net::Ipv4Addr, process::Command};

/// Runs `ip ARGS`; the error is its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes namespaces and host interfaces left by soak runs whose process is gone (a run
/// killed outright cannot clean up after itself).
pub(crate) fn remove_stale() {
    for line in ip_output(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("sw-soak-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_output(&["-o", "link", "show"]).lines() {
        let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
            continue;
        };
        let Some(pid) = name.strip_prefix("sw").and_then(|r| r.split('x').next()) else {
            continue;
        };
        if pid.chars().all(|c| c.is_ascii_digit())
            && !pid.is_empty()
            && name.contains('x')
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// A second octet `B` such that no address or route of the host is in `10.B.0.0/16`,
/// starting from one derived from the pid.
pub(crate) fn free_block() -> u8 {
    let used = ip_output(&["-4", "-o", "addr", "show"]) + &ip_output(&["-4", "route", "show"]);
    let start = 100 + std::process::id() % 100;
    (0..100)
        .map(|k| (start + k) % 100 + 100)
        .map(|b| b as u8)
        .find(|b| !used.contains(&format!("10.{b}.")))
        .expect("no free 10.B.0.0/16 block between 10.100 and 10.199")
}

/// A namespace with its veth pair; removed on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) host_if: String,
    /// The host side's address: what the agent in the namespace connects to.
    pub(crate) host_ip: Ipv4Addr,
    pub(crate) ns_ip: Ipv4Addr,
}

impl Netns {
    /// Namespace `index` of this process, in block `10.block.0.0/16`.
    pub(crate) fn create(block: u8, index: usize) -> Result<Self, String> {
        let pid = std::process::id();
        let base = u32::from(Ipv4Addr::new(10, block, 0, 0)) + 4 * index as u32;
        assert!(index < 16_384, "at most 16384 agents fit a /16 of /30s");
        let ns = Self {
            name: format!("sw-soak-{pid}-{index}"),
            host_if: format!("sw{pid}x{index}"),
            host_ip: Ipv4Addr::from(base + 1),
            ns_ip: Ipv4Addr::from(base + 2),
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on the guard removes what was made, if a later step fails.
        let host = format!("{}/30", ns.host_ip);
        let inner = format!("{}/30", ns.ns_ip);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns.name,
        ])?;
        ip(&["addr", "add", &host, "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        ip(&["-n", &ns.name, "addr", "add", &inner, "dev", "eth0"])?;
        ip(&["-n", &ns.name, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
