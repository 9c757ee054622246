//! Helpers for the integration tests in `tests/`: start the real `sysward-server` and
//! `sysward-agent` binaries on 127.0.0.1 with real TLS, and talk to them as an operator or
//! as an agent would. Build the binaries first (`cargo build --bins`); the README's test
//! command does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::{
    fs,
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use flate2::{Compression, write::GzEncoder};
use nix::{sys::signal::Signal, unistd::Pid};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde_json::Value;

pub mod alertmanager;
pub mod browser;
pub mod grafana;
pub mod prometheus;
pub mod receivers;
pub mod recorder;
pub mod smtp;
pub mod tmpfs;

/// Whether a test that needs `what` (root, a program) can run: `false` after saying why
/// it did not run, and a failure under `CI`, which has everything the tests need.
pub fn can_run(missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    assert!(std::env::var_os("CI").is_none(), "{why}; CI has it");
    eprintln!("NOT RUN: {why}");
    false
}

/// `Some(why)` when this process is not root.
pub fn not_root(to: &str) -> Option<String> {
    (!nix::unistd::geteuid().is_root()).then(|| format!("not root: cannot {to}"))
}

/// The admin token every test server is configured with.
pub const ADMIN_TOKEN: &str = "swadm_test_0123456789";

/// A built binary of this workspace, beside the test executable's target directory, or in
/// `SYSWARD_BIN_DIR` when set (for checkouts that share one target directory, where each
/// build replaces the others' binaries).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = match std::env::var_os("SYSWARD_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => exe.parent().and_then(Path::parent).unwrap().to_path_buf(),
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --bins`",
        path.display()
    );
    path
}

/// A child process killed and reaped when the test ends, passed or not.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A console session as a browser holds it: the cookie (`name=value`) and the CSRF token.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub cookie: String,
    pub csrf: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics after `limit` naming `what`.
pub fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// An HTTPS client that trusts `ca_pem` and shows the given certificate and key, if any.
pub fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::blocking::Client {
    let builder = ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let tls = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap()
}

fn stop(child: &mut Option<Child>, signal: Signal) {
    if let Some(mut c) = child.take() {
        let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), signal);
        let _ = c.wait();
    }
}

/// A running `sysward-server` with its own data directory and port.
pub struct Server {
    pub root: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    /// Set in the server's environment.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    /// As [`Server::start_with_rules`], with `env` set in the server's environment.
    pub fn start_with_env(root: &Path, env: &[(&str, &str)], rules: &str, extra: &str) -> Self {
        let mut s = Self::configure(root, "", rules, extra);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.spawn();
        s
    }

    /// `sysward-server user add NAME --role ROLE`, the password on standard input.
    pub fn add_console_user(&self, name: &str, role: &str, password: &str) {
        let mut child = Command::new(bin("sysward-server"))
            .arg("--config")
            .arg(&self.config)
            .args(["user", "add", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's process id while it runs.
    /// Signs `user` in to the console over the API, as the page's form does; fails the
    /// test unless it works.
    pub fn console_sign_in(&self, user: &str, password: &str) -> ConsoleSession {
        let resp = client(&self.ca_pem(), None)
            .post(format!("{}/ui/api/session", self.url()))
            .json(&serde_json::json!({ "user": user, "password": password }))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "sign-in of {user}");
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let body: Value = resp.json().unwrap();
        ConsoleSession {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts a server in `root` with `extra` appended to its config, and waits until healthy.
    pub fn start(root: &Path, extra: &str) -> Self {
        Self::start_with_storage(root, "", extra)
    }

    /// As [`Server::start`], with `storage` added to the `[storage]` table (which the
    /// helper writes itself, so `extra` cannot open it again).
    pub fn start_with_storage(root: &Path, storage: &str, extra: &str) -> Self {
        Self::start_with_rules(root, storage, "", extra)
    }

    /// As [`Server::start_with_storage`], with `rules` added to the `[rules]` table, whose
    /// `dir` is `root/rules` (never the host's `/etc/sysward/rules`). The server does not
    /// store its own metrics (they would add series that tests of exact series counts do
    /// not expect) unless `extra` has a `[health]` table of its own.
    pub fn start_with_rules(root: &Path, storage: &str, rules: &str, extra: &str) -> Self {
        let mut s = Self::configure(root, storage, rules, extra);
        s.spawn();
        s
    }

    fn configure(root: &Path, storage: &str, rules: &str, extra: &str) -> Self {
        let port = free_port();
        let config = root.join("server.toml");
        let health = if extra.contains("[health]") {
            ""
        } else {
            "[health]\nself_metrics_interval = \"0s\"\n"
        };
        fs::write(
            &config,
            format!(
                "[listen]\naddress = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = {:?}\n{storage}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[rules]\ndir = {:?}\n{rules}\n{health}{extra}",
                root.join("server-data").display().to_string(),
                root.join("rules").display().to_string()
            ),
        )
        .unwrap();
        Self {
            root: root.to_path_buf(),
            config,
            port,
            log: root.join("server.log"),
            env: Vec::new(),
            child: None,
        }
    }

    fn spawn(&mut self) {
        let child = spawn_logged(
            Command::new(bin("sysward-server"))
                .arg("--config")
                .arg(&self.config)
                .arg("serve")
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            &self.log,
        );
        self.child = Some(child);
        self.wait_healthy();
    }

    pub fn wait_healthy(&self) {
        let ca = self.root.join("server-data/pki/ca.crt");
        poll(
            Duration::from_secs(30),
            "the server to answer /api/health",
            || {
                if let Some(c) = self.child.as_ref() {
                    assert!(
                        nix::sys::wait::waitpid(
                            Pid::from_raw(c.id() as i32),
                            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
                        )
                        .map(|s| s == nix::sys::wait::WaitStatus::StillAlive)
                        .unwrap_or(true),
                        "server exited; log:\n{}",
                        self.log_text()
                    );
                }
                let pem = fs::read_to_string(&ca).ok()?;
                let resp = client(&pem, None)
                    .get(format!("{}/api/health", self.url()))
                    .send()
                    .ok()?;
                resp.status().is_success().then_some(())
            },
        );
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca_pem(&self) -> String {
        fs::read_to_string(self.root.join("server-data/pki/ca.crt")).unwrap()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        stop(&mut self.child, Signal::SIGKILL);
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs an admin command of the same binary against this server's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("sysward-server"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn token(&self, extra: &[&str]) -> String {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `api-token create --role ROLE --name NAME [extra]`; returns the secret.
    pub fn api_token(&self, role: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["api-token", "create", "--role", role, "--name", name];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "api-token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// GET a path of the Prometheus API with a bearer token (none when empty); returns
    /// status and JSON body.
    pub fn prom_get(&self, token: &str, path: &str) -> (u16, Value) {
        let mut req = client(&self.ca_pem(), None).get(format!("{}{path}", self.url()));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// POST a form to a path of the Prometheus API with a bearer token, as Grafana and
    /// promtool send queries; returns status and JSON body.
    pub fn prom_post(&self, token: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = client(&self.ca_pem(), None)
            .post(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .form(form)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Sends a signal to the running server without waiting (SIGHUP: reload the rules).
    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the server is not running");
        nix::sys::signal::kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// POST to an admin endpoint without a body; returns status and JSON body.
    pub fn admin_post(&self, path: &str) -> (u16, Value) {
        let resp = client(&self.ca_pem(), None)
            .post(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// GET an admin endpoint; returns status and JSON body.
    pub fn admin_get(&self, path: &str) -> (u16, Value) {
        let resp = client(&self.ca_pem(), None)
            .get(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// GET an admin endpoint; returns status and the body as text (`/metrics`).
    pub fn admin_get_text(&self, path: &str) -> (u16, String) {
        let resp = client(&self.ca_pem(), None)
            .get(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// Raw points of every series matching `selector`.
    pub fn read(&self, selector: &str) -> Vec<Value> {
        let q = url_escape(selector);
        let (status, body) = self.admin_get(&format!("/api/v1/read?match[]={q}"));
        assert_eq!(status, 200, "read {selector}: {body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The latest value of a series with these exact labels (beyond instance and agent_id).
    pub fn latest(&self, selector: &str) -> Option<f64> {
        let series = self.read(selector);
        let s = series.first()?;
        s["values"].as_array()?.last()?[1].as_f64()
    }

    /// Per boot of an agent: (batches stored, highest seq).
    pub fn boots(&self, id: &str) -> Vec<(u64, u64)> {
        self.agent_info(id)["boots"]
            .as_array()
            .map(|b| {
                b.iter()
                    .map(|x| {
                        (
                            x["batches"].as_u64().unwrap(),
                            x["max_seq"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/api/v1/agents` entry of one agent.
    pub fn agent_info(&self, id: &str) -> Value {
        let (status, body) = self.admin_get("/api/v1/agents");
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// `text` escaped for a URL's query string.
pub fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGKILL);
    }
}

/// A `sysward-agent` with its own config and state directory.
pub struct Agent {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Writes an agent config in `root/name` pointing at `server_url`, with `extra` appended.
    pub fn configure(root: &Path, name: &str, server_url: &str, extra: &str) -> Self {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let state_dir = dir.join("state");
        let config = dir.join("agent.toml");
        fs::write(
            &config,
            format!(
                "[server]\nurl = \"{server_url}\"\n[agent]\nstate_dir = {:?}\nhostname = \"{name}\"\n{extra}",
                state_dir.display().to_string()
            ),
        )
        .unwrap();
        Self {
            config,
            state_dir,
            log: dir.join("agent.log"),
            child: None,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(bin("sysward-agent"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Enrolls with a token and asserts it worked.
    pub fn enroll(&self, token: &str) -> String {
        let out = self.cmd(&["enroll", token]);
        assert!(
            out.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.agent_id()
    }

    pub fn agent_id(&self) -> String {
        let text = fs::read_to_string(self.state_dir.join("identity.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["agent_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn start(&mut self) {
        let child = spawn_logged(
            Command::new(bin("sysward-agent"))
                .arg("--config")
                .arg(&self.config)
                .arg("run"),
            &self.log,
        );
        self.child = Some(child);
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client that presents this agent's certificate.
    pub fn client(&self, server: &Server) -> reqwest::blocking::Client {
        let cert = fs::read_to_string(self.state_dir.join("agent.crt")).unwrap();
        let key = fs::read_to_string(self.state_dir.join("agent.key")).unwrap();
        client(&server.ca_pem(), Some((&cert, &key)))
    }

    /// Sends a signal to the running agent without waiting (SIGHUP: reload the config).
    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the agent is not running");
        nix::sys::signal::kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }

    /// SIGKILL and wait: a crash.
    pub fn kill(&mut self) {
        stop(&mut self.child, Signal::SIGKILL);
    }

    /// `sysward-agent spool status`: (frames in segments, frames not yet acked).
    pub fn spool_status(&self) -> (u64, u64) {
        let out = self.cmd(&["spool", "status"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("frames:"))
            .unwrap_or_else(|| panic!("{text}"));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        (nums[0], nums[1])
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGKILL);
    }
}

/// A version-1 batch as JSON with one gauge series of one point.
pub fn batch(agent_id: &str, boot: &str, seq: u64, name: &str, value: f64) -> Value {
    serde_json::json!({
        "v": 1, "agent_id": agent_id, "boot_id": boot, "seq": seq, "sent_at": 1_700_000_000_000i64,
        "series": [{ "name": name, "labels": {"test": "yes"}, "kind": "gauge",
                     "points": [[1_700_000_000_000i64, value]] }],
    })
}

/// POSTs a body to /api/v1/ingest as gzip; returns status and JSON answer.
pub fn post_ingest(
    client: &reqwest::blocking::Client,
    server: &Server,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = client
        .post(format!("{}/api/v1/ingest", server.url()))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}
