//! A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback for the tests, with
//! no gossip and a route to a receiver that sends nothing: what arrives is read back from
//! its API.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{free_port, poll};

pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed on drop.
pub struct Alertmanager {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Alertmanager {
    /// Starts one in `dir` and waits until ready; `None` when the binary is missing (a
    /// failure when `CI` is set).
    pub fn start(dir: &Path) -> Option<Alertmanager> {
        if !Path::new(BINARY).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{BINARY} is missing and CI is set"
            );
            eprintln!("skipped: {BINARY} is not installed");
            return None;
        }
        std::fs::create_dir_all(dir).expect("a directory");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
        )
        .expect("write the config");
        let port = free_port();
        let log = dir.join("alertmanager.log");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::blocking::Client::new();
        poll(Duration::from_secs(30), "Alertmanager to be ready", || {
            http.get(format!("{}/-/ready", am.url))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        Some(am)
    }

    /// `GET /api/v2/alerts` (active, unsilenced and inhibited alike).
    pub fn alerts(&self) -> Vec<Value> {
        reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .and_then(|r| r.json())
            .unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
