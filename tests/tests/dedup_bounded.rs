//! The server's de-duplication memory stays bounded while the real agent restarts again and
//! again: each boot's batches fold into one seq range, and a boot that stopped sending is
//! forgotten once `dedup_window` has passed. Here the window is seconds instead of days;
//! `SOAK_RESTARTS` sets how many restarts (12 by default, as CI runs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sysward_tests::{ADMIN_TOKEN, Agent, Server, client, poll};

fn gauge(server: &Server, name: &str) -> u64 {
    let text = client(&server.ca_pem(), None)
        .get(format!("{}/metrics", server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[test]
fn dedup_ranges_stay_bounded_through_many_agent_restarts() {
    let restarts: usize = std::env::var("SOAK_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_storage(
        dir.path(),
        "dedup_window = \"3s\"\npurge_interval = \"1s\"",
        "",
    );
    let mut agent = Agent::configure(
        dir.path(),
        "restarter",
        &server.url(),
        "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n",
    );
    let id = agent.enroll(&server.token(&[]));
    let boot_ids = |server: &Server| -> Vec<String> {
        server.agent_info(&id)["boots"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(|x| Some(x["boot_id"].as_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut most = 0;
    for _ in 0..restarts {
        agent.start();
        // A batch of this boot is in: one more boot is remembered.
        poll(Duration::from_secs(30), "a batch of the new boot", || {
            let ids = boot_ids(&server);
            most = most.max(ids.len());
            let new: Vec<String> = ids.into_iter().filter(|b| !seen.contains(b)).collect();
            (!new.is_empty()).then(|| seen.extend(new))
        });
        agent.stop();
    }
    assert_eq!(seen.len(), restarts, "every start is a boot of its own");
    assert!(
        restarts < 2 || most >= 2,
        "boots were never remembered side by side"
    );
    // With no agent sending, every boot's range passes the window and is purged.
    poll(Duration::from_secs(30), "the boots to be forgotten", || {
        (server.boots(&id).is_empty() && gauge(&server, "sysward_server_store_dedup_ranges") == 0)
            .then_some(())
    });
    // A new boot after all that is one range again, not one row per batch.
    agent.start();
    poll(Duration::from_secs(30), "batches of the last boot", || {
        let boots = server.boots(&id);
        (boots.len() == 1 && boots[0].0 >= 5).then_some(())
    });
    poll(
        Duration::from_secs(10),
        "a purge to count the ranges",
        || (gauge(&server, "sysward_server_store_dedup_ranges") == 1).then_some(()),
    );
    agent.stop();
    assert!(most <= restarts, "{most} boots remembered of {restarts}");
    // The soak's figure (benches/dedup-soak.sh prints it).
    println!(
        "dedup soak: {restarts} agent boots, at most {most} remembered at once, 1 range at the end"
    );
}
