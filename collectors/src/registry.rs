use std::path::PathBuf;

#[cfg(target_os = "linux")]
use crate::access_log;
use crate::{
    Collector, Roots, apache, cpu, database_helper, diskstats, filesystem, host, hwmon, load,
    memory, netdev, netstat, nginx, processes, scrape, services, settings, smart, sockstat,
    systemd, tcpstat, time,
};

/// The agent's four interval tiers; each collector has a default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Things an alert waits on (default 30 s).
    Critical,
    /// Most host metrics (default 1 m).
    Standard,
    /// Costly scans (default 5 m).
    Intensive,
    /// Facts that rarely change (default 1 h).
    Static,
}

impl Tier {
    /// The tier's config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::Intensive => "intensive",
            Tier::Static => "static",
        }
    }
}

/// One row of the registry: how to build a collector and its defaults.
pub struct CollectorSpec {
    /// The collector's name and config key.
    pub name: &'static str,
    /// Whether it runs when the config does not mention it.
    pub default_enabled: bool,
    /// Its tier when the config names none.
    pub default_tier: Tier,
    /// Builds it for the given context with the settings of its `[collectors.NAME]` table
    /// in `agent.toml`, the agent's own keys (`enabled`, `tier`, `interval`, `timeout`)
    /// left out. An empty table gives the defaults. The error is one sentence naming
    /// the key: ``unknown setting `topp` for collector processes (allowed: top, ...)``,
    /// ``bad setting `top` for collector processes: ...``.
    pub configure: Configure,
}

/// How a [`CollectorSpec`] builds its collector from the settings of its
/// `[collectors.NAME]` table: see [`CollectorSpec::configure`].
pub type Configure = fn(&CollectorContext, &toml::Table) -> Result<Box<dyn Collector>, String>;

/// What a collector gets from the agent besides its settings.
#[derive(Debug, Clone, Default)]
pub struct CollectorContext {
    /// Where `/proc`, `/sys` and the host's root are.
    pub roots: Roots,
    /// A directory of the collectors' own (`<state_dir>/collectors`) for what a
    /// collector carries across restarts (a log position); `None` where nothing may be
    /// kept (`collect --once`, `check-config`, tests), and such a collector then starts
    /// afresh each time it is built.
    pub state_dir: Option<PathBuf>,
}

impl CollectorContext {
    /// A context for `roots` that keeps nothing across restarts.
    pub fn new(roots: Roots) -> Self {
        Self {
            roots,
            state_dir: None,
        }
    }
}

/// Every collector the agent knows, in a plain table.
pub static REGISTRY: &[CollectorSpec] = &[
    CollectorSpec {
        name: "cpu",
        default_enabled: true,
        default_tier: Tier::Critical,
        configure: |ctx, table| {
            settings::none("cpu", table)?;
            Ok(Box::new(cpu::CpuCollector::new(ctx.roots.clone())))
        },
    },
    CollectorSpec {
        name: "load",
        default_enabled: true,
        default_tier: Tier::Critical,
        configure: |ctx, table| {
            settings::none("load", table)?;
            Ok(Box::new(load::LoadCollector::new(ctx.roots.clone())))
        },
    },
    CollectorSpec {
        name: "memory",
        default_enabled: true,
        default_tier: Tier::Critical,
        configure: |ctx, table| {
            Ok(Box::new(memory::MemoryCollector::with_config(
                ctx.roots.clone(),
                memory::MemoryConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "filesystem",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(filesystem::FilesystemCollector::with_config(
                ctx.roots.clone(),
                filesystem::FilesystemConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "diskstats",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(diskstats::DiskstatsCollector::with_config(
                ctx.roots.clone(),
                diskstats::DiskstatsConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "netdev",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(netdev::NetdevCollector::with_config(
                ctx.roots.clone(),
                netdev::NetdevConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "netstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(netstat::NetstatCollector::with_config(
                ctx.roots.clone(),
                netstat::NetstatConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "sockstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            settings::none("sockstat", table)?;
            Ok(Box::new(sockstat::SockstatCollector::new(
                ctx.roots.clone(),
            )))
        },
    },
    CollectorSpec {
        name: "tcpstat",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            settings::none("tcpstat", table)?;
            Ok(Box::new(tcpstat::TcpstatCollector::new(ctx.roots.clone())))
        },
    },
    CollectorSpec {
        name: "processes",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(processes::ProcessesCollector::with_config(
                ctx.roots.clone(),
                processes::ProcessesConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "host",
        default_enabled: true,
        default_tier: Tier::Static,
        configure: |ctx, table| {
            settings::none("host", table)?;
            Ok(Box::new(host::HostCollector::new(ctx.roots.clone())))
        },
    },
    CollectorSpec {
        name: "time",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            settings::none("time", table)?;
            Ok(Box::new(time::TimeCollector::new(ctx.roots.clone())))
        },
    },
    CollectorSpec {
        name: "hwmon",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(hwmon::HwmonCollector::with_config(
                ctx.roots.clone(),
                hwmon::HwmonConfig::from_table(table)?,
            )))
        },
    },
    // On by default, unlike node_exporter's: failed units are alerts an operator expects
    // without asking, the calls are read-only and need no privilege, and on a host
    // without systemd the collector says so once and costs nothing after.
    CollectorSpec {
        name: "systemd",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(systemd::SystemdCollector::with_config(
                ctx.roots.clone(),
                systemd::SystemdConfig::from_table(table)?,
            )))
        },
    },
    // On by default: a few small files per service, no D-Bus, no privilege; on a host
    // without cgroup v2 the collector says so once and costs nothing after.
    CollectorSpec {
        name: "services",
        default_enabled: true,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(services::ServicesCollector::with_config(
                ctx.roots.clone(),
                services::ServicesConfig::from_table(table)?,
            )))
        },
    },
    // Off by default: nothing to read until servers are named, and a host without the
    // database would only log a refused connection at every run. Run by the `sysward-db`
    // helper, so that the agent carries no database driver.
    CollectorSpec {
        name: "postgres",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |_ctx, table| {
            Ok(Box::new(database_helper::DatabaseHelper::start(
                "postgres", table,
            )?))
        },
    },
    // Off by default, as `postgres`.
    CollectorSpec {
        name: "mysql",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |_ctx, table| {
            Ok(Box::new(database_helper::DatabaseHelper::start(
                "mysql", table,
            )?))
        },
    },
    CollectorSpec {
        name: "smart",
        default_enabled: true,
        default_tier: Tier::Intensive,
        configure: |_ctx, table| {
            Ok(Box::new(smart::SmartCollector::with_config(
                smart::SmartConfig::from_table(table)?,
            )))
        },
    },
    // Off by default, like every collector of a service: it has nothing to read until
    // the operator names the service.
    CollectorSpec {
        name: "scrape",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |_ctx, table| {
            Ok(Box::new(scrape::ScrapeCollector::with_config(
                scrape::ScrapeConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "nginx",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |_ctx, table| {
            Ok(Box::new(nginx::NginxCollector::with_config(
                nginx::NginxConfig::from_table(table)?,
            )))
        },
    },
    CollectorSpec {
        name: "apache",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |_ctx, table| {
            Ok(Box::new(apache::ApacheCollector::with_config(
                apache::ApacheConfig::from_table(table)?,
            )))
        },
    },
    // Follows files with platform's Linux follower.
    #[cfg(target_os = "linux")]
    CollectorSpec {
        name: "access_log",
        default_enabled: false,
        default_tier: Tier::Standard,
        configure: |ctx, table| {
            Ok(Box::new(access_log::AccessLogCollector::with_config(
                access_log::AccessLogConfig::from_table(table)?,
                ctx,
            )))
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::AGENT_KEYS;

    fn configured(
        name: &str,
        ctx: &CollectorContext,
        settings: &str,
    ) -> Result<Box<dyn Collector>, String> {
        let spec = REGISTRY
            .iter()
            .find(|spec| spec.name == name)
            .unwrap_or_else(|| panic!("no collector {name}"));
        let table: toml::Table = toml::from_str(settings).expect("valid TOML");
        match name {
            // Their rows start the `sysward-db` helper, which another crate builds (and
            // tests through these rows); here their settings go through the code the
            // helper checks them with.
            #[cfg(feature = "postgres")]
            "postgres" => Ok(Box::new(crate::postgres::PostgresCollector::with_config(
                crate::postgres::PostgresConfig::from_table(&table)?,
            ))),
            #[cfg(feature = "mysql")]
            "mysql" => Ok(Box::new(crate::mysql::MysqlCollector::with_config(
                crate::mysql::MysqlConfig::from_table(&table)?,
            ))),
            _ => (spec.configure)(ctx, &table),
        }
    }

    /// Every collector's own keys, as the README's table lists them.
    const KEYS: [(&str, &[&str]); 22] = [
        ("cpu", &[]),
        ("load", &[]),
        ("memory", &["vmstat_fields"]),
        (
            "filesystem",
            &[
                "mount_points_include",
                "mount_points_exclude",
                "fs_types_include",
                "fs_types_exclude",
                "statvfs_timeout",
            ],
        ),
        ("diskstats", &["device_include", "device_exclude"]),
        ("netdev", &["device_include", "device_exclude"]),
        ("netstat", &["fields"]),
        ("sockstat", &[]),
        ("tcpstat", &[]),
        ("processes", &["top"]),
        ("host", &[]),
        ("time", &[]),
        ("hwmon", &["chip_include", "chip_exclude"]),
        ("systemd", &["include", "exclude", "restarts", "start_time"]),
        (
            "services",
            &[
                "include",
                "exclude",
                "max_units",
                "io_devices",
                "max_io_devices",
            ],
        ),
        (
            "postgres",
            &[
                "servers",
                "connect_timeout",
                "statement_timeout",
                "run_budget",
                "max_objects",
                "statements_top",
            ],
        ),
        (
            "mysql",
            &["servers", "connect_timeout", "query_timeout", "run_budget"],
        ),
        (
            "smart",
            &[
                "helper",
                "device_include",
                "device_exclude",
                "command_timeout",
                "run_budget",
                "rescan_interval",
            ],
        ),
        ("scrape", &["targets"]),
        ("nginx", &["url", "request_timeout"]),
        ("apache", &["url", "request_timeout"]),
        ("access_log", &["files"]),
    ];

    /// Which keys of each collector are regular expressions.
    const PATTERNS: [(&str, &[&str]); 7] = [
        ("memory", &["vmstat_fields"]),
        (
            "filesystem",
            &[
                "mount_points_include",
                "mount_points_exclude",
                "fs_types_include",
                "fs_types_exclude",
            ],
        ),
        ("diskstats", &["device_include", "device_exclude"]),
        ("netdev", &["device_include", "device_exclude"]),
        ("netstat", &["fields"]),
        ("hwmon", &["chip_include", "chip_exclude"]),
        ("smart", &["device_include", "device_exclude"]),
    ];

    fn error(name: &str, settings: &str) -> String {
        match configured(name, &CollectorContext::default(), settings) {
            Ok(_) => panic!("{name}: {settings} was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    #[cfg_attr(
        not(all(feature = "postgres", feature = "mysql")),
        ignore = "every collector must be built"
    )]
    fn an_empty_table_builds_every_collector() {
        for spec in REGISTRY {
            let collector = (spec.configure)(&CollectorContext::default(), &toml::Table::new())
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            assert_eq!(collector.name(), spec.name);
        }
    }

    #[test]
    #[cfg_attr(
        not(all(feature = "postgres", feature = "mysql")),
        ignore = "every collector must be built"
    )]
    fn an_unknown_key_is_refused_naming_every_key_allowed() {
        let names: Vec<&str> = REGISTRY.iter().map(|spec| spec.name).collect();
        let listed: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, listed);
        for (name, keys) in KEYS {
            let allowed: Vec<&str> = keys.iter().chain(&AGENT_KEYS).copied().collect();
            assert_eq!(
                error(name, "bogus = 1"),
                format!(
                    "unknown setting `bogus` for collector {name} (allowed: {})",
                    allowed.join(", ")
                )
            );
        }
        assert_eq!(
            error("processes", "topp = 20"),
            "unknown setting `topp` for collector processes \
             (allowed: top, enabled, tier, interval, timeout)"
        );
    }

    #[test]
    #[cfg_attr(
        not(all(feature = "postgres", feature = "mysql")),
        ignore = "every collector must be built"
    )]
    fn no_collector_takes_a_key_the_agent_reads_itself() {
        for spec in REGISTRY {
            for key in AGENT_KEYS {
                let message = error(spec.name, &format!("{key} = \"1s\""));
                assert!(
                    message.starts_with(&format!("unknown setting `{key}`")),
                    "{}: {message}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn a_bad_regex_names_the_key_and_the_regex_error() {
        for (name, keys) in PATTERNS {
            for key in keys {
                let message = error(name, &format!("{key} = \"(unclosed\""));
                let start = format!(
                    "bad setting `{key}` for collector {name}: invalid regular expression: \
                     regex parse error"
                );
                assert!(message.starts_with(&start), "{message}");
                assert!(message.contains("unclosed group"), "{message}");
                let message = error(name, &format!("{key} = 3"));
                assert_eq!(
                    message,
                    format!(
                        "bad setting `{key}` for collector {name}: invalid type: integer `3`, \
                         expected a regular expression in a string (\"\" for none)"
                    )
                );
            }
        }
    }

    #[test]
    #[cfg_attr(
        not(all(feature = "postgres", feature = "mysql")),
        ignore = "every collector must be built"
    )]
    fn every_example_of_the_docs_is_accepted() {
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/configuration.md"
        ))
        .expect("docs/configuration.md");
        // The example after the collectors' table.
        let section = &docs[docs.find("### `[collectors.NAME]`").expect("the section")..];
        let start = section.find("```toml\n").expect("an example") + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").expect("its end")];
        let parsed: toml::Table = toml::from_str(example).expect("valid TOML");
        let collectors = parsed["collectors"].as_table().expect("[collectors.*]");
        assert!(collectors.len() >= 9, "{collectors:?}");
        for (name, settings) in collectors {
            // The agent reads its own keys (`enabled`, which a collector off by default
            // needs) and passes on the rest.
            let mut settings = settings.as_table().expect("a table").clone();
            settings.retain(|key, _| !AGENT_KEYS.contains(&key));
            let settings = toml::to_string(&settings).expect("a table");
            let collector = configured(name, &CollectorContext::default(), &settings)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(collector.name(), name);
        }
    }
}
