//! Starting and stopping the server: data directory, PKI, databases, listener.

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::Path,
    sync::Arc,
};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::{info, warn};

mod health;

use crate::{
    api::{self, AppState},
    config::ServerConfig,
    metrics::ServerMetrics,
    pki::Pki,
    rules::{RuleEngine, store_storage::StoreStorage},
    state::State,
    store::{SystemClock, TieredStore},
    tls,
};

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests, quickstart) is harmless; ignore it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    Ok(())
}

pub fn run_blocking(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::start(&config).await?;
        // Under systemd (`Type=notify`): ready once the listener is bound, watchdog pings
        // from the runtime, STOPPING=1 as soon as a shutdown starts.
        notify(&[sd_notify::NotifyState::Ready]);
        let watchdog = sd_notify::watchdog_enabled().map(|every| tokio::spawn(watchdog(every)));
        let shutdown = async {
            shutdown_signal().await;
            notify(&[sd_notify::NotifyState::Stopping]);
        };
        let result = server.run_until(shutdown).await;
        if let Some(task) = watchdog {
            task.abort();
        }
        result
    })
}

/// Tells systemd how the server is doing; without systemd there is no socket and nothing is
/// sent.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        warn!(%error, "Cannot notify systemd.");
    }
}

/// Pings systemd's watchdog at half its interval, as sd_watchdog_enabled(3) advises: a
/// runtime that stops making progress stops the pings, and systemd restarts the server.
async fn watchdog(every: std::time::Duration) {
    let mut tick = tokio::time::interval(every / 2);
    loop {
        tick.tick().await;
        notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// A started server: bound and ready, not yet serving.
pub struct Server {
    listener: TcpListener,
    data_dir: std::path::PathBuf,
    tls: rustls::ServerConfig,
    app: Arc<AppState>,
    /// SIGHUP's handler, installed at start: before it, a SIGHUP (a `systemctl reload`
    /// right after READY) would end the process, SIGHUP's default.
    hangups: Option<tokio::signal::unix::Signal>,
    /// OTLP export and the local `/metrics` port (`OTEL_*`).
    telemetry: crate::otel::Telemetry,
    prometheus: Option<TcpListener>,
    pub addr: SocketAddr,
}

impl Server {
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Self> {
        let otel = crate::otel::Settings::from_env()?;
        let dir = &config.storage.data_dir;
        create_private_dir(dir)?;
        let pki = Pki::load_or_create(&dir.join("pki"), &config.tls.san)?
            .with_agent_cert_validity(config.tls.agent_cert_validity);
        let state = State::open(&dir.join("state.db"))
            .with_context(|| format!("cannot open {}", dir.join("state.db").display()))?;
        if let Some(token) = state.ensure_admin_token(config.admin.token.as_deref())? {
            // Printed once on purpose: only its hash is kept.
            println!("Admin token (shown once; keep it safe): {token}");
        }
        let store = Arc::new(
            TieredStore::open(
                &dir.join("store.db"),
                config.store_config(),
                Arc::new(SystemClock),
            )
            .with_context(|| format!("cannot open {}", dir.join("store.db").display()))?,
        );
        // Cuts heads into chunks and purges; the thread ends once the store is dropped.
        store.start_maintenance();
        // Before the listener: the forward log must see the first batch.
        let remote_write = Arc::new(
            crate::remote_write::RemoteWrite::open(&config.remote_write, store.clone(), dir)
                .map_err(|e| anyhow::anyhow!(e))?,
        );
        for name in ["state.db", "store.db"] {
            let path = dir.join(name);
            if path.exists() {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            }
        }
        let rules = Arc::new(
            RuleEngine::open(
                config.rule_engine_config(),
                Box::new(StoreStorage::new(store.clone())),
                &dir.join("state.db"),
                Arc::new(SystemClock),
            )
            .context("cannot open the rules' state")?,
        );
        rules.hosts().sync(&approved_agents(&state)?);
        let notifier = Arc::new(
            crate::notify::Notifier::open(
                config.notify.clone(),
                &dir.join("state.db"),
                Arc::new(SystemClock),
                config.external_url(),
                rules.outbox_signal(),
            )
            .context("cannot open the notifier's state")?,
        );
        let tls = tls::server_config(&pki)?;
        let listener = TcpListener::bind(config.listen.address)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen.address))?;
        let addr = listener.local_addr()?;
        let grafana =
            crate::grafana::Grafana::new(config.grafana.clone(), &config.public_url(), &pki.ca_pem);
        let app = Arc::new(AppState {
            store,
            state: Arc::new(state),
            pki: Arc::new(pki),
            limits: config.limits.to_limits(),
            ingest_permits: Semaphore::new(config.limits.max_concurrent_ingests),
            ingest_slots: config.limits.max_concurrent_ingests,
            metrics: ServerMetrics::default(),
            query: config.query.clone(),
            query_permits: Arc::new(Semaphore::new(config.query.max_concurrent)),
            rules,
            notifier,
            grafana,
            config_path: config.source.clone(),
            health: Arc::new(crate::health::HealthMonitor::default()),
            health_config: config.health.clone(),
            disk_guard: Arc::new(crate::health::DiskGuard::new(
                dir.clone(),
                config.storage.min_free,
            )),
            foreign: Default::default(),
            remote_write,
            ui: config.ui.clone(),
            sign_ins: crate::session::SignInLimiter::new(crate::session::LimiterConfig::of(
                &config.ui,
            )),
            password_checks: Semaphore::new(api::PASSWORD_CHECKS),
            public_url: config.public_url(),
            join_token_ttl: config.admin.join_token_ttl,
            public_evaluations: Semaphore::new(api::PUBLIC_EVALUATIONS),
        });
        info!(%addr, pin = app.pki.ca_pin(), "Listening.");
        let prometheus = match &otel.prometheus {
            Some((host, port)) => Some(crate::otel::prometheus::bind(host, *port).await?),
            None => None,
        };
        let telemetry = crate::otel::Telemetry::start(&otel, metrics_page(&app))?;
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        if let Err(error) = &hangups {
            warn!(%error, "Cannot listen for SIGHUP; rules reload only through the API.");
        }
        Ok(Self {
            listener,
            data_dir: dir.clone(),
            tls,
            app,
            hangups: hangups.ok(),
            telemetry,
            prometheus,
            addr,
        })
    }

    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let router = crate::otel::layer(api::router(self.app.clone()), &self.telemetry);
        let prometheus = self.prometheus.map(|listener| {
            tokio::spawn(crate::otel::prometheus::serve(
                listener,
                Arc::new(metrics_page(&self.app)),
            ))
        });
        let engine = self.app.rules.clone();
        let rules_thread = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || engine.run())?;
        let reloads = tokio::spawn(reload_on_hangup(self.hangups, self.app.clone()));
        let agents = tokio::spawn(follow_agents(self.app.clone()));
        let probes = tokio::spawn(health::run_probes(self.app.clone(), self.data_dir.clone()));
        let own_metrics = tokio::spawn(health::write_own_metrics(self.app.clone()));
        let grafana = tokio::spawn(self.app.grafana.clone().run());
        let (stop_notifier, notifier_stopped) = tokio::sync::oneshot::channel::<()>();
        let notifier = tokio::spawn(self.app.notifier.clone().run(async {
            let _ = notifier_stopped.await;
        }));
        let (stop_remote_write, remote_write_stopped) = tokio::sync::watch::channel(false);
        let remote_write = tokio::spawn(self.app.remote_write.clone().run(remote_write_stopped));
        let served = tls::serve(self.listener, self.tls, router, shutdown).await;
        let _ = stop_remote_write.send(true);
        let _ = remote_write.await;
        reloads.abort();
        agents.abort();
        probes.abort();
        own_metrics.abort();
        grafana.abort();
        if let Some(task) = prometheus {
            task.abort();
        }
        let _ = stop_notifier.send(());
        let _ = notifier.await;
        self.app.rules.stop();
        if rules_thread.join().is_err() {
            warn!("The rules thread panicked.");
        }
        let telemetry = self.telemetry;
        let _ = tokio::task::spawn_blocking(move || {
            telemetry.shutdown(std::time::Duration::from_secs(5))
        })
        .await;
        served?;
        let m = &self.app.metrics;
        info!(
            accepted = m.batches_accepted.get(),
            duplicate = m.batches_duplicate.get(),
            refused = m.batches_refused.get(),
            samples = m.samples_ingested.get(),
            "Stopped."
        );
        Ok(())
    }
}

/// Renders the `/metrics` page, for OTLP export and the local port.
fn metrics_page(app: &Arc<AppState>) -> impl Fn() -> String + Send + Sync + 'static {
    let app = app.clone();
    move || api::metrics_text(&app)
}

/// The approved agents as the rules' host tracker takes them.
fn approved_agents(state: &State) -> anyhow::Result<Vec<(String, String, Option<i64>)>> {
    Ok(state
        .list_agents()?
        .into_iter()
        .filter(|a| a.status == crate::state::AgentStatus::Approved)
        .map(|a| (a.id, a.hostname, a.last_seen_ms))
        .collect())
}

/// Agents are approved and revoked by commands on the state database, beside the running
/// server: once a minute the host tracker catches up, so that a revoked host stops being
/// "down".
async fn follow_agents(app: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        let app = app.clone();
        let synced = tokio::task::spawn_blocking(move || {
            approved_agents(&app.state).map(|list| app.rules.hosts().sync(&list))
        })
        .await;
        if let Ok(Err(e)) = synced {
            warn!(error = %e, "Cannot read the agents for the rules' host tracker.");
        }
    }
}

/// Reads `[notify]` and `[grafana]` of the config file again; a bad file keeps the running
/// settings.
pub fn reload_notify(app: &AppState) {
    let Some(path) = &app.config_path else {
        return;
    };
    match ServerConfig::load(path) {
        Ok(c) => {
            match app.notifier.reload(c.notify.clone()) {
                Ok(()) => info!("Notification settings reloaded."),
                Err(e) => warn!(error = %e, "Notification settings not reloaded."),
            }
            // `[grafana]` too: the sync starts over with the file's settings.
            app.grafana.reload(c.grafana.clone(), &c.public_url());
        }
        Err(e) => {
            warn!(error = %e, "Config file refused; the running notification settings go on.")
        }
    }
}

/// Reloads the rules and the notification settings on SIGHUP (`systemctl reload`), telling systemd while it does.
async fn reload_on_hangup(hangups: Option<tokio::signal::unix::Signal>, app: Arc<AppState>) {
    let Some(mut hangups) = hangups else {
        return;
    };
    while hangups.recv().await.is_some() {
        // systemd orders the reload by the monotonic time that comes with RELOADING=1.
        let mut reloading = vec![sd_notify::NotifyState::Reloading];
        reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
        notify(&reloading);
        reload_notify(&app);
        let engine = app.rules.clone();
        let outcome = tokio::task::spawn_blocking(move || engine.reload()).await;
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(errors)) => {
                for e in errors {
                    warn!(error = %e, "Rules not reloaded; the running rules go on.");
                }
            }
            Err(e) => warn!(error = %e, "The rule reload failed."),
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("Shutdown requested.");
}
