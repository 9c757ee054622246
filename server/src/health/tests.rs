use super::*;

const DAY_MS: i64 = 86_400_000;

fn healthy() -> Snapshot {
    Snapshot {
        at_ms: 100 * DAY_MS,
        disk: Some(DiskSpace {
            path: "/var/lib/sysward".into(),
            size_bytes: 1000,
            available_bytes: 500,
        }),
        certificates: vec![CertExpiry {
            name: "server",
            not_after_ms: 1000 * DAY_MS,
        }],
        ..Snapshot::default()
    }
}

#[test]
fn a_healthy_server_is_ok_with_no_reasons() {
    let (status, problems) = assess(&healthy(), true, &HealthConfig::default());
    assert_eq!(status, Status::Ok);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn low_disk_space_degrades_and_a_full_disk_fails() {
    let mut s = healthy();
    s.disk = Some(DiskSpace {
        path: "/d".into(),
        size_bytes: 1000,
        available_bytes: 50,
    });
    let (status, problems) = assess(&s, true, &HealthConfig::default());
    assert_eq!(status, Status::Degraded);
    assert_eq!(problems[0].check, "disk_space");
    assert!(problems[0].reason.contains("5.0 %"), "{problems:?}");
    s.disk = Some(DiskSpace {
        path: "/d".into(),
        size_bytes: 1000,
        available_bytes: 0,
    });
    assert_eq!(
        assess(&s, true, &HealthConfig::default()).0,
        Status::Failing
    );
}

#[test]
fn certificates_warn_before_and_fail_after_expiry() {
    let mut s = healthy();
    s.certificates[0].not_after_ms = s.at_ms + 10 * DAY_MS;
    let (status, problems) = assess(&s, true, &HealthConfig::default());
    assert_eq!(status, Status::Degraded);
    assert!(
        problems[0]
            .reason
            .contains("server certificate expires in 10 days"),
        "{problems:?}"
    );
    s.certificates[0].not_after_ms = s.at_ms - 1;
    assert_eq!(
        assess(&s, true, &HealthConfig::default()).0,
        Status::Failing
    );
}

#[test]
fn the_worst_problem_decides_and_comes_first() {
    let mut s = healthy();
    s.agent_certificates_expiring = 2;
    s.commit_failures_recent = 1;
    s.rule_files_refused = 1;
    let (status, problems) = assess(&s, false, &HealthConfig::default());
    assert_eq!(status, Status::Failing);
    assert_eq!(problems[0].check, "storage");
    let checks: Vec<_> = problems.iter().map(|p| p.check).collect();
    assert_eq!(
        checks,
        ["storage", "agent_certificates", "commits", "rule_files"]
    );
}

#[test]
fn silent_agents_inform_but_do_not_degrade() {
    let mut s = healthy();
    let silent = (0..150)
        .map(|i| SilentAgent {
            agent_id: format!("a{i}"),
            instance: format!("host{i}"),
            last_seen_ms: 1000 - i,
        })
        .collect();
    s.set_silent(silent);
    assert_eq!(s.silent_agents_total, 150);
    assert_eq!(s.silent_agents.len(), MAX_LISTED_SILENT);
    assert_eq!(s.silent_agents[0].agent_id, "a149");
    assert_eq!(assess(&s, true, &HealthConfig::default()).0, Status::Ok);
}

#[test]
fn config_refuses_a_percentage_out_of_range() {
    let c = HealthConfig {
        min_free_percent: 120.0,
        ..HealthConfig::default()
    };
    assert!(c.validate().unwrap_err().contains("min_free_percent"));
}
