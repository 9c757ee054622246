//! Notifications from a real server fed by a real agent: an alert reaches a webhook, a real
//! SMTP server (STARTTLS and authentication) and a real Alertmanager; it escalates until
//! acknowledged by the CLI; an alert under a maintenance window is told only when the window
//! ends; and through `kill -9` in a loop every alert reaches the receiver, a repeat only
//! with the same notification id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
    time::Duration,
};

use serde_json::{Value, json};
use sysward_tests::{
    ADMIN_TOKEN, Agent, Server,
    alertmanager::Alertmanager,
    poll,
    recorder::{Answer, Recorded, Recorder},
    smtp::{PASSWORD, Smtp, USER, python},
};

const FAST: &str =
    "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n[shipper]\nbackoff_max = \"1s\"\n";
const WITHIN: Duration = Duration::from_secs(60);

fn write_rules(root: &Path, name: &str, text: &str) {
    let dir = root.join("rules");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), text).unwrap();
}

const RULES: &str = r#"
groups:
- name: host
  rules:
  - alert: LoadSeen
    expr: node_load1 >= 0
    labels:
      severity: critical
    annotations:
      summary: "load on {{ $labels.instance }} is {{ $value }}"
      runbook_url: https://runbooks.example/load
  - alert: UnderMaintenance
    expr: node_load1 >= 0
    labels:
      severity: warning
"#;

fn at<'a>(requests: &'a [Recorded], path: &str) -> Vec<&'a Recorded> {
    requests.iter().filter(|r| r.target == path).collect()
}

fn alertnames(r: &Recorded) -> Vec<String> {
    r.json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect()
}

fn admin(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = sysward_tests::client(&server.ca_pem(), None);
    let mut req = client
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

#[test]
fn an_alert_reaches_webhook_email_and_alertmanager_escalates_until_acked_and_waits_out_maintenance()
{
    let Some(python) = python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start(&root.path().join("am")) else {
        return;
    };
    let smtp = Smtp::start(python);
    let hook = Recorder::start();
    let password_file = root.path().join("smtp-password");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    write_rules(root.path(), "host.yml", RULES);
    let notify = format!(
        r#"
[notify.route]
escalation = "oncall"
group_by = ["alertname", "instance"]
group_wait = "0s"
group_interval = "1s"

[[notify.escalations]]
name = "oncall"
[[notify.escalations.steps]]
receivers = ["team"]
[[notify.escalations.steps]]
after = "4s"
receivers = ["lead"]

[[notify.receivers]]
name = "team"
[[notify.receivers.webhook]]
url = "{hook}/team"
[[notify.receivers.email]]
smarthost = "127.0.0.1:{smtp_port}"
username = "{USER}"
password_file = {password_file:?}
ca_file = {ca_file:?}
from = "Sysward <alerts@example.com>"
to = ["ops@example.com"]
[[notify.receivers.alertmanager]]
url = "{am_url}"

[[notify.receivers]]
name = "lead"
[[notify.receivers.webhook]]
url = "{hook}/lead"
"#,
        hook = hook.url,
        smtp_port = smtp.port,
        ca_file = smtp.ca_file.display().to_string(),
        password_file = password_file.display().to_string(),
        am_url = am.url,
    );
    let server = Server::start_with_rules(
        root.path(),
        "",
        "evaluation_interval = \"1s\"\nexternal_url = \"https://sysward.example\"\n",
        &notify,
    );
    // The maintenance window is there before any data arrives.
    let window = admin(
        &server,
        reqwest::Method::POST,
        "/api/v1/silences",
        Some(json!({
            "matchers": ["alertname=\"UnderMaintenance\""],
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "ann",
            "comment": "kernel update",
            "kind": "maintenance",
        })),
    );
    let window_id = window["data"]["silenceID"].as_str().unwrap().to_string();
    let mut agent = Agent::configure(root.path(), "notify-1", &server.url(), FAST);
    agent.enroll(&server.token(&[]));
    agent.start();

    // The first step: the team's webhook, email and Alertmanager.
    let team = poll(WITHIN, "the team's webhook", || {
        let got = hook.requests();
        at(&got, "/team").first().map(|r| (*r).clone())
    });
    let body = team.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "team");
    assert_eq!(alertnames(&team), ["LoadSeen"]);
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://runbooks.example/load"
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(team.header("x-sysward-event"), Some("alerts"));
    assert!(team.header("x-sysward-notification-id").is_some());
    let instance = alert["labels"]["instance"].as_str().unwrap().to_string();

    let mail = smtp.wait_messages(1, WITHIN);
    let subject = mail[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "Subject")
        .map(|h| h[1].as_str().unwrap().to_string())
        .unwrap();
    assert!(subject.contains("LoadSeen"), "{subject}");
    assert_eq!(mail[0]["tls"], true);
    assert_eq!(mail[0]["authenticated"], true);
    let text = mail[0]["parts"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("https://sysward.example/api/v1/ack/"),
        "{text}"
    );

    let forwarded = poll(WITHIN, "the alert in Alertmanager", || {
        am.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "LoadSeen")
    });
    assert_eq!(
        forwarded["labels"]["instance"].as_str(),
        Some(instance.as_str())
    );
    assert_eq!(forwarded["status"]["state"], "active", "{}", am.log_text());

    // Four seconds on, unacknowledged: the lead is called.
    let lead = poll(WITHIN, "the escalation to the lead", || {
        let got = hook.requests();
        at(&got, "/lead").first().map(|r| (*r).clone())
    });
    assert_eq!(lead.header("x-sysward-event"), Some("escalated"));
    assert_eq!(alertnames(&lead), ["LoadSeen"]);

    // Acknowledged by the CLI: both hear of it.
    let groups = admin(&server, reqwest::Method::GET, "/api/v1/alerts/groups", None);
    let group = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["alertname"] == "LoadSeen")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = server.cli(&["alerts", "ack", &group, "--by", "ann"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for path in ["/team", "/lead"] {
        poll(WITHIN, "the acknowledgement", || {
            let got = hook.requests();
            at(&got, path)
                .iter()
                .any(|r| r.header("x-sysward-event") == Some("acknowledged"))
                .then_some(())
        });
    }

    // Nothing of the alert under maintenance so far; its window ends and it is told.
    let held = |reqs: &[Recorded]| {
        reqs.iter()
            .any(|r| alertnames(r).iter().any(|n| n == "UnderMaintenance"))
    };
    assert!(
        !held(&hook.requests()),
        "told during its maintenance window"
    );
    admin(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/v1/silence/{window_id}"),
        None,
    );
    poll(WITHIN, "the alert once the window ended", || {
        held(&hook.requests()).then_some(())
    });

    // The history has what was sent, with the services' answers.
    let history = admin(&server, reqwest::Method::GET, "/api/v1/notifications", None);
    let sent: BTreeSet<String> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "sent")
        .map(|m| m["channel"].as_str().unwrap().to_string())
        .collect();
    for channel in ["webhook[0]", "email[0]", "alertmanager[0]"] {
        assert!(sent.contains(channel), "{sent:?}");
    }
    // The signed link of the email acknowledges once (a GET only shows the button).
    let start = text.find("https://sysward.example/api/v1/ack/").unwrap();
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let local = link.replace("https://sysward.example", &server.url());
    let http = sysward_tests::client(&server.ca_pem(), None);
    let page = http.get(&local).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("<form method=post"));
    assert_eq!(http.post(&local).send().unwrap().status(), 200);
    assert_eq!(http.post(&local).send().unwrap().status(), 410, "one use");

    // `notify test` sends through every channel of a receiver and prints the answers.
    let before = hook.requests().len();
    let out = server.cli(&["notify", "test", "lead"]);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("webhook[0]: delivered (200)"), "{printed}");
    let test = hook.wait_for(before + 1, WITHIN);
    assert!(
        test[before..]
            .iter()
            .any(|r| r.header("x-sysward-event") == Some("test"))
    );

    // Silences by CLI: added, listed, expired.
    let out = server.cli(&[
        "silence",
        "add",
        "--matcher",
        "alertname=\"Nope\"",
        "--duration",
        "1h",
        "--author",
        "ann",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let listed = String::from_utf8_lossy(&server.cli(&["silence", "list"]).stdout).to_string();
    assert!(
        listed.contains(&id) && listed.contains("alertname=\"Nope\""),
        "{listed}"
    );
    assert!(server.cli(&["silence", "expire", &id]).status.success());
    assert!(!server.cli(&["silence", "expire", "0000"]).status.success());

    let (_, metrics) = server.admin_get_text("/metrics");
    assert!(
        metrics.contains(
            "sysward_notifications_total{receiver=\"team\",channel=\"email\",result=\"sent\"}"
        ),
        "{metrics}"
    );
    agent.stop();
}

fn vector_rules(names: &[String]) -> String {
    let mut text = String::from("groups:\n- name: kill\n  rules:\n");
    for n in names {
        text.push_str(&format!("  - alert: {n}\n    expr: vector(1)\n"));
    }
    text
}

/// Every alert's firing notification (the webhook's body and id), by alert name.
fn firing_ids(requests: &[Recorded]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in requests {
        if r.header("x-sysward-event") != Some("alerts") {
            continue;
        }
        let id = r.header("x-sysward-notification-id").unwrap().to_string();
        for name in alertnames(r) {
            out.entry(name).or_default().insert(id.clone());
        }
    }
    out
}

#[test]
fn kill_9_in_a_loop_loses_no_notification_and_repeats_only_with_the_same_id() {
    let root = tempfile::tempdir().unwrap();
    // A slow receiver, so that sends are in flight when the server dies.
    let hook = Recorder::start();
    hook.set_fallback(Answer::status(200).delay(Duration::from_millis(150)));
    let notify = format!(
        r#"
[notify.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"
[[notify.receivers]]
name = "hook"
[[notify.receivers.webhook]]
url = "{}/hook"
"#,
        hook.url
    );
    let mut names = Vec::new();
    // CI runs a short series; benches/notify-kill-soak.sh a long one.
    let rounds: usize = std::env::var("SYSWARD_NOTIFY_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    write_rules(root.path(), "kill.yml", &vector_rules(&names));
    let mut server =
        Server::start_with_rules(root.path(), "", "evaluation_interval = \"1s\"\n", &notify);
    for round in 0..rounds {
        // New alerts each round, so that transitions keep arriving while the server dies.
        for i in 0..5 {
            names.push(format!("Kill{round}x{i}"));
        }
        write_rules(root.path(), "kill.yml", &vector_rules(&names));
        let _ = server.admin_post("/-/reload");
        let before = hook.requests().len();
        poll(WITHIN, "a send of this round", || {
            (hook.requests().len() > before).then_some(())
        });
        server.kill();
        server.restart();
    }
    let all: BTreeSet<String> = names.iter().cloned().collect();
    let ids = poll(WITHIN, "every alert at the receiver", || {
        let ids = firing_ids(&hook.requests());
        let told: BTreeSet<String> = ids.keys().cloned().collect();
        (told == all).then_some(ids)
    });
    for (name, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "{name} was told under {} ids: {set:?}",
            set.len()
        );
    }
    // Repeats (in flight at a kill) carry the same id and the same body.
    let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut repeats = 0;
    for r in hook.requests() {
        let id = r.header("x-sysward-notification-id").unwrap().to_string();
        if let Some(b) = bodies.get(&id) {
            assert_eq!(b, &r.body, "a repeat of {id} differs");
            repeats += 1;
        } else {
            bodies.insert(id, r.body.clone());
        }
    }
    println!(
        "{rounds} kills: {} alerts told in {} notifications, {repeats} sent again after a kill",
        all.len(),
        bodies.len()
    );
}
