//! Agent certificate renewal end to end: a server that signs 20-second agent certificates
//! (`[tls] agent_cert_validity`), a real agent that renews before expiry and keeps
//! shipping, and a revoked agent whose renewal is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::Value;
use sysward_tests::{Agent, Server, poll};

/// A third of the life (20 s plus a quarter of it backdated) is left 12 s after signing.
const SHORT_CERTS: &str = "[tls]\nagent_cert_validity = \"20s\"\n";
const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"2s\"\n[shipper]\nbackoff_max = \"1s\"\n";

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn not_after(cert_pem: &str) -> i64 {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    pem.parse_x509().unwrap().validity().not_after.timestamp()
}

fn csr_for(common_name: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// `POST /api/v1/renew` with the agent's current certificate: (status, body).
fn ask_renewal(agent: &Agent, server: &Server, csr_pem: &str) -> (u16, Value) {
    let resp = agent
        .client(server)
        .post(format!("{}/api/v1/renew", server.url()))
        .json(&serde_json::json!({ "csr_pem": csr_pem }))
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn batches_stored(server: &Server, id: &str) -> u64 {
    server.boots(id).iter().map(|(batches, _)| batches).sum()
}

#[test]
fn an_agent_renews_its_certificate_before_expiry_and_keeps_shipping() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), SHORT_CERTS);
    let mut agent = Agent::configure(dir.path(), "web-1", &server.url(), FAST);
    let id = agent.enroll(&server.token(&[]));
    let (crt, key) = (
        agent.state_dir.join("agent.crt"),
        agent.state_dir.join("agent.key"),
    );
    let (first_cert, first_key) = (read(&crt), read(&key));
    let first_expiry = not_after(&first_cert);
    assert!(first_expiry <= now_s() + 21, "{first_expiry}");

    // A request for another agent's id is refused, and does not use up the renewal.
    let (status, body) = ask_renewal(&agent, &server, &csr_for("ag-someone-else"));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not this agent"),
        "{body}"
    );

    agent.start();
    let renewed = poll(Duration::from_secs(25), "the agent to renew", || {
        let cert = fs::read_to_string(&crt).ok()?;
        (cert != first_cert).then_some(cert)
    });
    assert!(not_after(&renewed) > first_expiry);
    assert_ne!(read(&key), first_key, "a new key pair");
    // The old pair stays until a push with the new one worked, then goes.
    poll(Duration::from_secs(10), "the old pair to go", || {
        let old = agent.state_dir.join("agent.crt.old");
        (!old.exists() && !agent.state_dir.join("agent.key.old").exists()).then_some(())
    });
    // The agent removes the old pair, then says so: wait for the line.
    poll(
        Duration::from_secs(10),
        "the agent to say the server took the new pair",
        || {
            agent
                .log_text()
                .contains("accepted the renewed certificate")
                .then_some(())
        },
    );
    let log = agent.log_text();
    assert!(log.contains("Agent certificate renewed"), "{log}");
    assert!(server.log_text().contains("Agent certificate renewed."));

    // Past the first certificate's end, batches still arrive, and the first certificate
    // itself no longer gets in.
    poll(
        Duration::from_secs(25),
        "the first certificate to expire",
        || (now_s() > first_expiry + 1).then_some(()),
    );
    let before = batches_stored(&server, &id);
    poll(Duration::from_secs(15), "a batch after the expiry", || {
        (batches_stored(&server, &id) > before).then_some(())
    });
    let old_client = sysward_tests::client(&server.ca_pem(), Some((&first_cert, &first_key)));
    let old = old_client
        .post(format!("{}/api/v1/ingest", server.url()))
        .body(Vec::new())
        .send();
    assert!(
        old.as_ref().is_err() || old.as_ref().unwrap().status() == 401,
        "{old:?}"
    );
    assert!(!agent.log_text().contains("refused to renew"));
}

#[test]
fn a_revoked_agent_cannot_renew() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), SHORT_CERTS);
    let mut agent = Agent::configure(dir.path(), "db-1", &server.url(), FAST);
    let id = agent.enroll(&server.token(&[]));
    let first_cert = read(&agent.state_dir.join("agent.crt"));
    let out = server.cli(&["agents", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = ask_renewal(&agent, &server, &csr_for(&id));
    assert_eq!(status, 403, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("agent {id} is revoked")) && error.contains("cannot renew"),
        "{body}"
    );

    agent.start();
    poll(
        Duration::from_secs(25),
        "the agent to log the refusal",
        || agent.log_text().contains("refused to renew").then_some(()),
    );
    let log = agent.log_text();
    assert!(log.contains("is revoked"), "{log}");
    // Not asked again in a loop: once more until the certificate has expired.
    let expiry = not_after(&first_cert);
    poll(Duration::from_secs(25), "the certificate to expire", || {
        (now_s() > expiry + 1).then_some(())
    });
    assert_eq!(agent.log_text().matches("refused to renew").count(), 1);
    assert_eq!(read(&agent.state_dir.join("agent.crt")), first_cert);
    assert!(
        server
            .log_text()
            .contains("Renewal refused: the agent is not approved.")
    );
}
