//! `sysward-server quickstart`: a server on 127.0.0.1 and the real `sysward-agent` binary,
//! enrolled to it over TLS, both kept in one directory. For a first look, not production.

use std::{
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

use crate::{
    cli::{create_token, open_state},
    config::ServerConfig,
    serve::Server,
    state::random_hex,
    users::{UserRole, hash_password},
};

pub fn run(dir: &Path, port: u16) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(dir, port))
}

async fn run_async(dir: &Path, port: u16) -> anyhow::Result<ExitCode> {
    crate::serve::create_private_dir(dir)?;
    let dir = dir.canonicalize()?;
    let server_toml = dir.join("server.toml");
    if !server_toml.exists() {
        let admin = format!("swadm_{}", random_hex(24));
        let text = format!(
            "# Written by `sysward-server quickstart`.\n[listen]\naddress = \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = {:?}\n\n[admin]\ntoken = \"{admin}\"\n",
            dir.join("server").display().to_string()
        );
        crate::pki::write_private(&server_toml, text.as_bytes())?;
    }
    let config = ServerConfig::load(&server_toml)?;
    let server = Server::start(&config).await?;
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server.run_until(async {
        let _ = stop_rx.await;
    }));

    let agent_bin = agent_binary()?;
    let agent_toml = dir.join("agent.toml");
    let agent_state = dir.join("agent");
    if !agent_toml.exists() {
        let text = format!(
            "# Written by `sysward-server quickstart`.\n[server]\nurl = \"{url}\"\n\n[agent]\nstate_dir = {:?}\n\n[intervals]\ncritical = \"10s\"\nstandard = \"30s\"\n",
            agent_state.display().to_string()
        );
        std::fs::write(&agent_toml, text)?;
    }
    if !agent_state.join("identity.json").exists() {
        let token = create_token(&config, Duration::from_secs(600), Some(url.clone()))?;
        let status = Command::new(&agent_bin)
            .arg("--config")
            .arg(&agent_toml)
            .arg("enroll")
            .arg(token.encode())
            .status()
            .await
            .with_context(|| format!("cannot start {}", agent_bin.display()))?;
        if !status.success() {
            bail!("the agent could not enroll ({status})");
        }
    }
    let mut agent = Command::new(&agent_bin)
        .arg("--config")
        .arg(&agent_toml)
        .arg("run")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", agent_bin.display()))?;
    let admin = config.admin.token.clone().unwrap_or_default();
    let ca = config.storage.data_dir.join("pki/ca.crt");
    let console = console_login(&config, &dir)?;
    println!(
        "\nSysward is running: server {url}, agent {} (pid {}).\n\
         Data and configs are in {}.\n\n\
         Console: {url}/ui/  {console}\n\
         (the browser will warn that it does not know the quickstart's own CA: {ca})\n\nTry:\n  \
         curl --cacert {ca} -H 'Authorization: Bearer {admin}' '{url}/api/v1/series?match[]=node_load1'\n  \
         curl --cacert {ca} -H 'Authorization: Bearer {admin}' '{url}/api/v1/read?match[]=node_load1'\n  \
         {server} --config {stoml} agents list\n  \
         {server} --config {stoml} token create   # to enroll another host\n\n\
         Press Ctrl-C to stop both.\n",
        agent_bin.display(),
        agent.id().unwrap_or(0),
        dir.display(),
        ca = ca.display(),
        server = std::env::current_exe()?.display(),
        stoml = server_toml.display(),
    );
    let code = tokio::select! {
        () = crate::serve::shutdown_signal() => ExitCode::SUCCESS,
        status = agent.wait() => {
            eprintln!("the agent exited unexpectedly: {status:?}");
            ExitCode::FAILURE
        }
    };
    stop_agent(&mut agent).await;
    let _ = stop_tx.send(());
    server_task.await??;
    Ok(code)
}

/// How to sign in to the console: user `admin`, made on the first run with a random
/// password kept in `dir/console-password` (0600), so that a later run says it again.
fn console_login(config: &ServerConfig, dir: &Path) -> anyhow::Result<String> {
    let file = dir.join("console-password");
    if let Ok(password) = std::fs::read_to_string(&file) {
        return Ok(format!("user admin, password {}", password.trim_end()));
    }
    let password = random_hex(12);
    let hash = hash_password(&password).map_err(|error| anyhow::anyhow!("{error}"))?;
    if open_state(config)?
        .add_user("admin", UserRole::Admin, &hash)
        .is_err()
    {
        // Made by an earlier run whose password file is gone.
        return Ok("user admin (set its password with `user passwd admin`)".to_owned());
    }
    crate::pki::write_private(&file, password.as_bytes())?;
    Ok(format!("user admin, password {password}"))
}

/// SIGTERM, then SIGKILL if it has not exited within five seconds.
async fn stop_agent(agent: &mut Child) {
    if let Some(pid) = agent.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), agent.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = agent.kill().await;
}

/// `sysward-agent` beside this binary (as cargo builds and packages install them), or on PATH.
fn agent_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if let Some(dir) = exe.parent() {
        let beside = dir.join("sysward-agent");
        if beside.exists() {
            return Ok(beside);
        }
    }
    Ok(PathBuf::from("sysward-agent"))
}
