//! `/proc/net/dev` (traffic counters per interface) and `/sys/class/net` (each
//! interface's attributes).
//!
//! `/proc/net/dev` format: two header lines, then one interface per line,
//! `name: ` followed by 8 receive and 8 transmit counters (the header names them). A
//! counter can be so long that no space follows the colon.

use std::fs;

use super::{quote, read_attr, read_attr_int, read_text};
use crate::{Error, NetClassInterface, NetDev, NetDevInterface, ParseError, Roots};

/// Reads and parses `net/dev` under `roots.proc`.
pub fn read_net_dev(roots: &Roots) -> Result<NetDev, Error> {
    let path = roots.proc.join(NetDev::FILE);
    let text = read_text(&path)?;
    Ok(parse_net_dev(&text))
}

/// Parses the text of `/proc/net/dev`.
///
/// The header lines (those with a `|`) are passed over; a malformed interface line is
/// listed in [`NetDev::skipped`].
pub fn parse_net_dev(text: &str) -> NetDev {
    let mut dev = NetDev::default();
    for (index, line) in text.lines().enumerate() {
        if line.contains('|') || line.trim_ascii().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(interface) => dev.interfaces.push(interface),
            Err(message) => dev.skipped.push(ParseError::new(index + 1, message)),
        }
    }
    dev
}

fn parse_line(line: &str) -> Result<NetDevInterface, String> {
    // Interface names cannot hold a colon (the kernel's dev_valid_name refuses it).
    let (name, counters) = line
        .split_once(':')
        .ok_or_else(|| format!("no `:` after an interface name in {}", quote(line)))?;
    let name = name.trim_ascii();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "interface name {} is empty or has spaces",
            quote(name)
        ));
    }
    let mut values = [0u64; 16];
    let mut count = 0;
    for field in counters.split_ascii_whitespace() {
        let slot = values
            .get_mut(count)
            .ok_or_else(|| format!("interface {} has more than 16 counters", quote(name)))?;
        *slot = field.parse().map_err(|_| {
            format!(
                "interface {} counter {} is not a whole number",
                quote(name),
                quote(field)
            )
        })?;
        count += 1;
    }
    if count != values.len() {
        return Err(format!(
            "interface {} has {count} counters where 16 are expected",
            quote(name)
        ));
    }
    let mut receive = [0; 8];
    let mut transmit = [0; 8];
    receive.copy_from_slice(&values[..8]);
    transmit.copy_from_slice(&values[8..]);
    Ok(NetDevInterface {
        name: name.to_owned(),
        receive,
        transmit,
    })
}

/// Reads the attributes of every interface under `sys/class/net`, sorted by name.
///
/// Attributes that change only when someone reconfigures the interface (its type,
/// addresses, alias, group, queue length, how its name and address were assigned) are
/// taken from `previous` when it holds the same interface (same name and ifindex); the
/// ones that follow the link (carrier and its counts, operstate, dormant, flags, MTU,
/// speed, duplex) are read each time. This halves the files opened per cycle; pass `&[]`
/// to read everything, as the caller does now and then to catch a changed alias.
///
/// An interface that disappears while it is read (a container's veth, a VPN tunnel
/// going down) is left out. Only a `class/net` that cannot be listed is an error.
pub fn read_net_class(
    roots: &Roots,
    previous: &[NetClassInterface],
) -> Result<Vec<NetClassInterface>, Error> {
    let dir = roots.sys.join(NetClassInterface::DIR);
    let entries = fs::read_dir(&dir).map_err(|source| Error::Read {
        path: dir.clone(),
        source,
    })?;
    let mut interfaces = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        // Interfaces are links to directories; `bonding_masters` is a file. The type
        // comes with the directory listing, without a stat per entry.
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // One path, its last part swapped per attribute, rather than a join each.
        let mut path = entry.path();
        path.push("ifindex");
        let mut int = |attr: &str| {
            path.set_file_name(attr);
            read_attr_int(&path)
        };
        let ifindex = int("ifindex");
        let known = previous
            .iter()
            .find(|p| p.name == name && p.ifindex == ifindex && ifindex.is_some());
        let mut interface = match known {
            Some(known) => NetClassInterface {
                name: name.clone(),
                ..known.clone()
            },
            None => NetClassInterface {
                addr_assign_type: int("addr_assign_type"),
                dev_id: int("dev_id"),
                iflink: int("iflink"),
                link_mode: int("link_mode"),
                name_assign_type: int("name_assign_type"),
                netdev_group: int("netdev_group"),
                tx_queue_len: int("tx_queue_len"),
                protocol_type: int("type"),
                name,
                ..NetClassInterface::default()
            },
        };
        interface.ifindex = ifindex;
        interface.carrier = int("carrier");
        interface.carrier_changes = int("carrier_changes");
        interface.carrier_up_count = int("carrier_up_count");
        interface.carrier_down_count = int("carrier_down_count");
        interface.dormant = int("dormant");
        interface.flags = int("flags");
        interface.mtu = int("mtu");
        interface.speed = int("speed");
        let mut text = |attr: &str| {
            path.set_file_name(attr);
            read_attr(&path).ok()
        };
        if known.is_none() {
            interface.address = text("address");
            interface.broadcast = text("broadcast");
            interface.ifalias = text("ifalias");
        }
        interface.duplex = text("duplex");
        interface.operstate = text("operstate");
        // Gone by now, or replaced by another under the same name: whatever was read
        // may be half of an interface that no longer exists. Its kept `ifindex` answers
        // `ENODEV` once the interface is gone, which is cheaper to ask than a walk of
        // the path, which is still walked for an interface without a readable
        // `ifindex`.
        path.set_file_name("ifindex");
        let gone = match ifindex {
            Some(ifindex) => read_attr_int(&path) != Some(ifindex),
            None => {
                path.pop();
                matches!(fs::metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
            }
        };
        if gone {
            continue;
        }
        interfaces.push(interface);
    }
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(interfaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testing::{TempDir, any_line, mutated};
    use proptest::prelude::*;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

    const FIXTURE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  435303     4226    0    0    0     0          0         0   435303     4226    0    0    0     0       0          0
  eth0:68210035552 520993275    0    0    0     0          0         0 9315587528 43451486    0    0    0     0       0          0
tun0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    #[test]
    fn parses_interfaces_with_and_without_a_space_after_the_colon() {
        let dev = parse_net_dev(FIXTURE);
        assert_eq!(dev.skipped, []);
        let names: Vec<_> = dev.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "tun0"]);
        assert_eq!(dev.interfaces[1].receive[0], 68210035552);
        assert_eq!(dev.interfaces[1].transmit[1], 43451486);
        assert_eq!(dev.interfaces[2].receive, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(dev.interfaces[2].transmit, [9, 10, 11, 12, 13, 14, 15, 16]);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "a: 1 2 3\nb 1 2\n: 1\nc: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\nd: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n";
        let dev = parse_net_dev(text);
        assert!(dev.interfaces.is_empty());
        let lines: Vec<_> = dev.skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn reads_interface_attributes_and_skips_files() {
        let dir = TempDir::new("netclass");
        let eth0 = dir.path().join("sys/class/net/eth0");
        std::fs::create_dir_all(&eth0).expect("mkdir");
        for (attr, value) in [
            ("mtu", "1500\n"),
            ("flags", "0x1003\n"),
            ("speed", "-1\n"),
            ("operstate", "up\n"),
            ("ifalias", "\n"),
        ] {
            std::fs::write(eth0.join(attr), value).expect("write");
        }
        std::fs::write(dir.path().join("sys/class/net/bonding_masters"), "bond0\n").expect("write");
        let interfaces = read_net_class(&dir.roots(), &[]).expect("reads");
        assert_eq!(interfaces.len(), 1);
        let eth0 = &interfaces[0];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.mtu, Some(1500));
        assert_eq!(eth0.flags, Some(0x1003));
        assert_eq!(eth0.speed, Some(-1));
        assert_eq!(eth0.carrier, None);
        assert_eq!(eth0.operstate.as_deref(), Some("up"));
        assert_eq!(eth0.ifalias.as_deref(), Some(""));
    }

    #[test]
    fn slow_attributes_come_from_the_previous_read_of_the_same_interface() {
        let dir = TempDir::new("netclass-previous");
        let eth0 = dir.path().join("sys/class/net/eth0");
        std::fs::create_dir_all(&eth0).expect("mkdir");
        for (attr, value) in [
            ("ifindex", "2\n"),
            ("ifalias", "uplink\n"),
            ("mtu", "1500\n"),
        ] {
            std::fs::write(eth0.join(attr), value).expect("write");
        }
        let first = read_net_class(&dir.roots(), &[]).expect("reads");
        std::fs::write(eth0.join("ifalias"), "renamed\n").expect("write");
        std::fs::write(eth0.join("mtu"), "9000\n").expect("write");
        let second = read_net_class(&dir.roots(), &first).expect("reads");
        // The alias is a slow attribute, the MTU a live one.
        assert_eq!(second[0].ifalias.as_deref(), Some("uplink"));
        assert_eq!(second[0].mtu, Some(9000));
        // A new interface under the same name (another ifindex) is read in full.
        std::fs::write(eth0.join("ifindex"), "7\n").expect("write");
        let third = read_net_class(&dir.roots(), &second).expect("reads");
        assert_eq!(third[0].ifalias.as_deref(), Some("renamed"));
        assert_eq!(read_net_class(&dir.roots(), &[]).expect("reads"), third);
    }

    /// Removes its network namespace's sysfs mount when the test ends, passed or not, and
    /// tells the thread that adds and deletes interfaces to stop.
    struct Churn {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Churn {
        fn drop(&mut self) {
            self.stop.store(true, Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// Runs `ip ARGS` in the calling thread's network namespace (a child inherits it).
    fn ip(args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip {args:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Starts a thread that moves into a network namespace of its own, mounts that
    /// namespace's sysfs on `sys`, and then adds and deletes a real interface until told
    /// to stop. Returns once the mount is in place, or why it could not be.
    fn churn_interfaces(
        sys: PathBuf,
        seen: Arc<AtomicUsize>,
        missed: Arc<AtomicUsize>,
    ) -> Result<Churn, String> {
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        use nix::sched::{CloneFlags, unshare};
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            // Namespaces are per thread: only this one (and the `ip` it starts) moves.
            // A sysfs mounted from here shows this namespace's interfaces, wherever it
            // is read from.
            let setup = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))
                .and_then(|()| {
                    mount(
                        Some("sysfs"),
                        &sys,
                        Some("sysfs"),
                        MsFlags::empty(),
                        None::<&str>,
                    )
                    .map_err(|e| format!("mount sysfs on {}: {e}", sys.display()))
                })
                .and_then(|()| ip(&["link", "add", "swtest0", "type", "ifb"]))
                .and_then(|()| ip(&["link", "del", "swtest0"]));
            let failed = setup.is_err();
            let _ = ready_tx.send(setup);
            // Each step waits (polling, bounded by the reader's deadline through `stop`)
            // until the reader has seen its effect, so that the interface is there about
            // half the time and every deletion falls while the reader is busy.
            let wait_for = |count: &AtomicUsize, from: usize| {
                while count.load(Relaxed) == from && !stopping.load(Relaxed) {
                    std::thread::yield_now();
                }
            };
            while !failed && !stopping.load(Relaxed) {
                let (seen_before, missed_before) = (seen.load(Relaxed), missed.load(Relaxed));
                if ip(&["link", "add", "swtest0", "type", "ifb"]).is_err() {
                    break;
                }
                wait_for(&seen, seen_before);
                if ip(&["link", "del", "swtest0"]).is_err() {
                    break;
                }
                wait_for(&missed, missed_before);
            }
            let _ = umount2(&sys, MntFlags::MNT_DETACH);
        });
        let churn = Churn {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(churn),
            Ok(Err(why)) => Err(why),
            Err(_) => Err("the interface thread ended before it was ready".into()),
        }
    }

    /// The kernel's own churn: an `ifb` interface is added and deleted over and over in
    /// a namespace of the test's, while this thread reads `class/net` through kept
    /// files. Most deletions land inside a read (a read is about all this thread does),
    /// so attributes answer `ENODEV` halfway through an interface; such an interface must
    /// be left out, never sent with half its values missing.
    #[test]
    fn an_interface_removed_while_read_is_left_out_whole() {
        let dir = TempDir::new("netclass-churn");
        let sys = dir.path().join("sys");
        std::fs::create_dir_all(&sys).expect("mkdir");
        let (seen, missed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let churn = match churn_interfaces(sys, seen.clone(), missed.clone()) {
            Ok(churn) => churn,
            Err(why) => {
                let why = format!(
                    "this test adds interfaces in a network namespace of its own, which \
                     needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2: {why}"
                );
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("NOT RUN: {why}");
                return;
            }
        };
        let roots = dir.roots();
        let mut reads = 0;
        let mut previous = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let enough = || seen.load(Relaxed) >= 300 && missed.load(Relaxed) >= 300;
        while !enough() && std::time::Instant::now() < deadline {
            let interfaces = read_net_class(&roots, &previous).expect("class/net lists");
            reads += 1;
            assert!(
                interfaces.iter().any(|i| i.name == "lo" && i.mtu.is_some()),
                "the namespace's own loopback is read every time: {interfaces:?}"
            );
            match interfaces.iter().find(|i| i.name == "swtest0") {
                Some(i) => {
                    seen.fetch_add(1, Relaxed);
                    // Every interface has these, up or down; a missing one is an
                    // attribute read after the interface went.
                    assert!(
                        i.ifindex.is_some()
                            && i.mtu.is_some()
                            && i.flags.is_some()
                            && i.operstate.is_some()
                            && i.tx_queue_len.is_some(),
                        "half an interface reported after {reads} reads: {i:?}"
                    );
                }
                None => {
                    missed.fetch_add(1, Relaxed);
                }
            }
            previous = interfaces;
        }
        drop(churn);
        let (seen, missed) = (seen.load(Relaxed), missed.load(Relaxed));
        eprintln!("swtest0 present in {seen} and absent from {missed} of {reads} reads");
        assert!(
            enough(),
            "the interface came and went too seldom to test anything: present in {seen} \
             and absent from {missed} of {reads} reads"
        );
    }

    #[test]
    fn a_missing_class_dir_is_a_read_error() {
        let dir = TempDir::new("netclass-none");
        assert!(matches!(
            read_net_class(&dir.roots(), &[]),
            Err(Error::Read { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in any::<Vec<u8>>()) {
            let _ = parse_net_dev(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_damaged_fixture_text(text in mutated(FIXTURE)) {
            let _ = parse_net_dev(&text);
        }

        #[test]
        fn an_appended_line_never_changes_what_was_read(line in any_line()) {
            let original = parse_net_dev(FIXTURE);
            let dev = parse_net_dev(&format!("{FIXTURE}{line}\n"));
            prop_assert_eq!(&dev.interfaces[..original.interfaces.len()], &original.interfaces[..]);
        }
    }
}
