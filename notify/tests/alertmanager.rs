//! The Alertmanager channel against a real Alertmanager (Debian's, at
//! `/usr/bin/prometheus-alertmanager`): alerts arrive with our labels and annotations and
//! leave the active ones when resolved. Without the binary the test is skipped, unless `CI`
//! is set. The request's details are checked against a recording server.

mod fixtures;
use sysward_tests::recorder as support;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fixtures::*;
use serde_json::{Value, json};
use support::Recorder;
use sysward_notify::{
    Channel, Event, Notification, Status, alertmanager::AlertmanagerConfig, text,
};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const WITHIN: Duration = Duration::from_secs(20);

const CONFIG: &str = "\
route:
  receiver: nobody
receivers:
  - name: nobody
";

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    dir: TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts one, or `None` when the binary is missing (outside CI).
    fn start() -> Option<Alertmanager> {
        if !Path::new(BINARY).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{BINARY} is missing and CI is set"
            );
            println!("skipped: {BINARY} is not installed");
            return None;
        }
        let dir = TempDir::new("alertmanager");
        let config = dir.file("alertmanager.yml", CONFIG);
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).expect("a log file");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let url = format!("http://127.0.0.1:{port}");
        Some(Alertmanager { child, url, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Polls `/-/ready` until it answers 200.
    async fn ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + WITHIN;
        loop {
            let answer = http.get(format!("{}/-/ready", self.url)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("alertmanager exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /api/v2/alerts{query}` until `done` holds for the answer.
    async fn alerts_until(
        &self,
        http: &reqwest::Client,
        query: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WITHIN;
        loop {
            let url = format!("{}/api/v2/alerts{query}", self.url);
            let answer = http.get(&url).send().await.expect("GET alerts");
            let body = answer.bytes().await.expect("an answer");
            let alerts: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
            if done(&alerts) {
                return alerts;
            }
            assert!(Instant::now() < deadline, "{query}: still {alerts:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn ours(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "SyswardDiskFull")
        .collect()
}

/// A firing group of one alert, made now.
fn firing_now() -> Notification {
    // Whole seconds: Alertmanager writes times with milliseconds, `text::rfc3339` without.
    let now = now_ms() / 1000 * 1000;
    let mut a = alert("SyswardDiskFull", "db-1", "critical");
    a.labels.insert("mountpoint".into(), "/var".into());
    a.annotations
        .insert("summary".into(), "/var is 97% full".into());
    a.starts_at_ms = now - 60_000;
    let mut n = notification(vec![a]);
    n.created_ms = now;
    n
}

/// Alertmanager's time without its milliseconds when they are zero, as `text::rfc3339`.
fn am_time(v: &Value) -> String {
    v.as_str().expect("a time").replace(".000Z", "Z")
}

#[tokio::test]
async fn alerts_reach_alertmanager_and_resolve_there() {
    let Some(mut am) = Alertmanager::start() else {
        return;
    };
    let http = reqwest::Client::new();
    am.ready(&http).await;
    let config: AlertmanagerConfig = prepared(json!({"url": format!("{}/", am.url)}));
    let ctx = context(Duration::from_secs(5));

    let mut n = firing_now();
    let delivery = config.send(&ctx, &n).await.expect("alertmanager takes it");
    assert_eq!(delivery.status, 200);
    let alerts = am.alerts_until(&http, "", |a| !ours(a).is_empty()).await;
    let got = ours(&alerts)[0];
    let sent = &n.alerts[0];
    assert_eq!(got["labels"], json!(sent.labels));
    assert_eq!(got["annotations"], json!(sent.annotations));
    assert_eq!(got["generatorURL"], sent.generator_url);
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(am_time(&got["startsAt"]), text::rfc3339(sent.starts_at_ms));
    assert_eq!(
        am_time(&got["endsAt"]),
        text::rfc3339(n.created_ms + 240_000)
    );

    n.event = Event::Acknowledged { by: "ann".into() };
    let ack = config
        .send(&ctx, &n)
        .await
        .expect("an acknowledgement is no error");
    assert_eq!(ack.status, 0);
    assert!(ack.answer.contains("nothing sent"), "{}", ack.answer);

    n.event = Event::Alerts;
    n.status = Status::Resolved;
    n.alerts[0].status = Status::Resolved;
    n.alerts[0].ends_at_ms = Some(now_ms());
    config.send(&ctx, &n).await.expect("alertmanager takes it");
    am.alerts_until(&http, "?active=true", |a| ours(a).is_empty())
        .await;
    am.alerts_until(&http, "", |a| ours(a).is_empty()).await;
}

#[tokio::test]
async fn the_request_follows_the_api_v2() {
    let rec = Recorder::start();
    let config: AlertmanagerConfig = prepared(json!({
        "url": format!("{}/am/", rec.url),
        "basic_auth": {"username": "ann", "password": "s3cr3t"},
    }));
    assert!(!format!("{config:?}").contains("s3cr3t"));
    let mut n = notification(vec![
        alert("HighCpu", "web-1", "critical"),
        resolve(alert("HighCpu", "web-2", "critical")),
    ]);
    config
        .send(&context(Duration::from_secs(5)), &n)
        .await
        .expect("delivered");
    let r = rec.wait_for(1, Duration::from_secs(5)).remove(0);
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/am/api/v2/alerts");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Basic YW5uOnMzY3IzdA=="));
    let body = r.json();
    let alerts = body.as_array().expect("an array of alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"], json!(n.alerts[0].labels));
    assert_eq!(alerts[0]["endsAt"], "2026-12-04T09:35:00Z");
    assert_eq!(alerts[1]["endsAt"], "2026-12-04T09:40:00Z");

    n.event = Event::Acknowledged { by: "ann".into() };
    config
        .send(&context(Duration::from_secs(5)), &n)
        .await
        .expect("nothing to send");
    assert_eq!(rec.requests().len(), 1, "an acknowledgement sends nothing");
    assert!(!config.wants_acknowledgements());
}
