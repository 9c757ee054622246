//! Every kind of bad input gets a clear refusal, is logged, and leaves the server running
//! with nothing stored from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{io::Write, time::Duration};

use flate2::{Compression, write::GzEncoder};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use sysward_proto::JoinToken;
use sysward_tests::{Agent, Server, batch, client, gzip, poll, post_ingest};

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    agent: Agent,
    id: String,
}

fn setup(server_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), server_extra);
    let agent = Agent::configure(dir.path(), "h1", &server.url(), "");
    let id = agent.enroll(&server.token(&[]));
    Setup {
        _dir: dir,
        server,
        agent,
        id,
    }
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

fn assert_nothing_stored(s: &Setup) {
    assert!(s.server.read("refused_metric").is_empty());
    assert!(
        s.server.agent_info(&s.id)["boots"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Still serving.
    s.server.wait_healthy();
}

#[test]
fn malformed_batch_is_refused_with_json_reason() {
    let s = setup("");
    let c = s.agent.client(&s.server);
    let (status, body) = post_ingest(&c, &s.server, gzip(b"{\"v\":1, not json"));
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("malformed"), "{body}");
    let mut missing = batch(&s.id, "b", 1, "refused_metric", 1.0);
    missing.as_object_mut().unwrap().remove("seq");
    let (status, body) = post_ingest(&c, &s.server, gzip(missing.to_string().as_bytes()));
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("seq"), "{body}");
    let (status, body) = post_ingest(&c, &s.server, b"plain, not gzip".to_vec());
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("gzip"), "{body}");
    assert_nothing_stored(&s);
}

#[test]
fn wrongly_versioned_batch_is_refused() {
    let s = setup("");
    let mut b = batch(&s.id, "b", 1, "refused_metric", 1.0);
    b["v"] = json!(2);
    let (status, body) = post_ingest(
        &s.agent.client(&s.server),
        &s.server,
        gzip(b.to_string().as_bytes()),
    );
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("version 2"), "{body}");
    assert_nothing_stored(&s);
}

#[test]
fn oversized_batch_is_refused() {
    let s = setup("[limits]\nmax_body = \"16KiB\"\nmax_series_per_batch = 10\n");
    let c = s.agent.client(&s.server);
    // Incompressible bytes past the compressed limit.
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (status, body) = post_ingest(&c, &s.server, noise);
    assert_eq!(status, 413);
    assert!(error_of(&body).contains("limit"), "{body}");
    let mut many = batch(&s.id, "b", 1, "refused_metric", 1.0);
    let one = many["series"][0].clone();
    many["series"] = Value::Array(
        (0..11)
            .map(|i| {
                let mut x = one.clone();
                x["labels"]["i"] = json!(i.to_string());
                x
            })
            .collect(),
    );
    let (status, body) = post_ingest(&c, &s.server, gzip(many.to_string().as_bytes()));
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("11 series"), "{body}");
    assert_nothing_stored(&s);
}

#[test]
fn gzip_bomb_is_refused() {
    let s = setup("[limits]\nmax_decompressed_body = \"1MiB\"\n");
    // 256 MiB of zeros, about 256 KiB compressed: under the compressed limit.
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let (status, body) = post_ingest(&s.agent.client(&s.server), &s.server, bomb);
    assert_eq!(status, 413);
    assert!(
        error_of(&body).contains("inflates past the limit of 1048576"),
        "{body}"
    );
    assert!(s.server.log_text().contains("Batch refused"));
    assert_nothing_stored(&s);
}

#[test]
fn expired_reused_and_unknown_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    // Reused.
    let token = server.token(&[]);
    Agent::configure(dir.path(), "first", &server.url(), "").enroll(&token);
    let second = Agent::configure(dir.path(), "second", &server.url(), "");
    let out = second.cmd(&["enroll", &token]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("join token was already used"));
    // Unknown: a well-formed token whose secret the server never made.
    let mut forged = JoinToken::parse(&token).unwrap();
    forged.secret = "0".repeat(48);
    let out = second.cmd(&["enroll", &forged.encode()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown join token"));
    // Expired: the agent says so itself, and the server refuses it too.
    let expired = server.token(&["--ttl", "0s"]);
    let out = second.cmd(&["enroll", &expired]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
    let secret = JoinToken::parse(&expired).unwrap().secret;
    let resp = client(&server.ca_pem(), None)
        .post(format!("{}/api/v1/enroll", server.url()))
        .header("content-type", "application/json")
        .body(json!({"secret": secret, "csr_pem": csr(), "hostname": "second"}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(error_of(&resp.json().unwrap()).contains("expired"));
    assert!(!second.state_dir.join("identity.json").exists());
    let log = server.log_text();
    assert!(
        log.contains("Enrollment refused") && log.contains("already used"),
        "{log}"
    );
}

fn csr() -> String {
    let key = KeyPair::generate().unwrap();
    CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

#[test]
fn revoked_agent_is_refused() {
    let s = setup("");
    let c = s.agent.client(&s.server);
    let ok = gzip(
        batch(&s.id, "b", 1, "before_revoke", 1.0)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(post_ingest(&c, &s.server, ok).0, 200);
    let out = s.server.cli(&["agents", "revoke", &s.id]);
    assert!(out.status.success());
    let body = gzip(
        batch(&s.id, "b", 2, "refused_metric", 1.0)
            .to_string()
            .as_bytes(),
    );
    let (status, answer) = post_ingest(&c, &s.server, body);
    assert_eq!(status, 403);
    assert!(error_of(&answer).contains("revoked"), "{answer}");
    assert!(s.server.read("refused_metric").is_empty());
    assert!(s.server.log_text().contains("not approved refused"));
}

#[test]
fn certificate_from_another_ca_fails_the_handshake() {
    let s = setup("");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Evil CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    // Even claiming the real agent's id.
    leaf.distinguished_name
        .push(DnType::CommonName, s.id.clone());
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let c = client(
        &s.server.ca_pem(),
        Some((&cert.pem(), &key.serialize_pem())),
    );
    let result = c
        .post(format!("{}/api/v1/ingest", s.server.url()))
        .header("content-encoding", "gzip")
        .body(gzip(
            batch(&s.id, "b", 1, "refused_metric", 1.0)
                .to_string()
                .as_bytes(),
        ))
        .send();
    assert!(result.is_err(), "the handshake must fail: {result:?}");
    poll(
        Duration::from_secs(10),
        "the refusal in the server log",
        || {
            s.server
                .log_text()
                .contains("TLS handshake refused")
                .then_some(())
        },
    );
    assert_nothing_stored(&s);
}

#[test]
fn no_certificate_is_refused() {
    let s = setup("");
    let c = client(&s.server.ca_pem(), None);
    let (status, body) = post_ingest(
        &c,
        &s.server,
        gzip(
            batch(&s.id, "b", 1, "refused_metric", 1.0)
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(status, 401);
    assert!(error_of(&body).contains("client certificate"), "{body}");
    assert_nothing_stored(&s);
}

#[test]
fn batch_for_another_agent_is_refused() {
    let s = setup("");
    let other = Agent::configure(s._dir.path(), "h2", &s.server.url(), "");
    let other_id = other.enroll(&s.server.token(&[]));
    let body = gzip(
        batch(&other_id, "b", 1, "refused_metric", 1.0)
            .to_string()
            .as_bytes(),
    );
    let (status, answer) = post_ingest(&s.agent.client(&s.server), &s.server, body);
    assert_eq!(status, 422);
    assert!(error_of(&answer).contains(&other_id), "{answer}");
    assert!(
        s.server.agent_info(&other_id)["boots"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        s.server
            .log_text()
            .contains("Batch for another agent refused")
    );
    assert_nothing_stored(&s);
}

#[test]
fn admin_endpoints_need_the_admin_token() {
    let s = setup("");
    let resp = client(&s.server.ca_pem(), None)
        .get(format!(
            "{}/api/v1/series?match[]=node_load1",
            s.server.url()
        ))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
