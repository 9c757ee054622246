//! `postgres`: PostgreSQL servers' statistics, named as postgres_exporter names them.
//!
//! Off by default; nothing connects until `[[collectors.postgres.servers]]` names a
//! server. One collector holds every server: each is queried concurrently on the
//! collector's own runtime ([`crate::database`]), each sample labelled `server` with the
//! configured name. A connection is kept from run to run and made again after an error;
//! the connection attempt is bounded by `connect_timeout` and the run's budget, each
//! statement by `statement_timeout` (set on the server, so that it also stops there).
//!
//! Statements are sent as simple queries and every value is read from its text: a column
//! that is NULL sends no sample, one that is not a number is reported as a partial error,
//! whatever type the server chose (an `int8`, a `numeric` or a `float8`); nothing that
//! a server sends can panic the collector. The statistics of one run are one round trip:
//! the core statements go as one batch, `pg_stat_statements` (when the extension is in
//! the database connected to) as a second one that may fail alone.
//!
//! Names and labels are postgres_exporter's (its built-in queries and its
//! `pg_stat_statements` collector), with `server` for the exporter's DSN label and without
//! `datid`; what it lacks is `sysward_pg_*`. Labels that name objects are bounded:
//! databases, standbys and replication slots by `max_objects` each, statements by
//! `statements_top`; the objects past a limit are counted in
//! `sysward_pg_objects_dropped_total{server,kind}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use crate::database::{self, Dropped};
use crate::settings::{self, Count, HumanDuration};
use crate::{CollectError, Collector, Kind, Output, Sample};

const NAME: &str = "postgres";

/// 1 when the server answered this run, else 0 (gauge; label `server`).
pub const UP: &str = "pg_up";
/// 1, labelled with the server's `version()` and `short_version` (gauge).
pub const STATIC: &str = "pg_static";
/// When the postmaster started, Unix seconds (gauge).
pub const POSTMASTER_START: &str = "pg_postmaster_start_time_seconds";
/// `max_connections` (gauge).
pub const MAX_CONNECTIONS: &str = "pg_settings_max_connections";
/// 1 on a server in recovery (a replica), else 0 (gauge).
pub const IS_REPLICA: &str = "pg_replication_is_replica";
/// On a replica, seconds since the last transaction replayed, 0 on a primary (gauge).
pub const REPLICATION_LAG: &str = "pg_replication_lag_seconds";
/// On a replica, WAL received but not yet replayed, in bytes (gauge).
pub const REPLAY_PENDING: &str = "sysward_pg_replication_replay_pending_bytes";
/// Sessions by database and state (gauge; labels `datname`, `state`).
pub const ACTIVITY_COUNT: &str = "pg_stat_activity_count";
/// Age of the oldest transaction by database and state, seconds (gauge).
pub const ACTIVITY_MAX_TX: &str = "pg_stat_activity_max_tx_duration";
/// Locks held or awaited by database and mode (gauge; labels `datname`, `mode`).
pub const LOCKS: &str = "pg_locks_count";
/// Size of a database in bytes (gauge; label `datname`).
pub const DATABASE_SIZE: &str = "pg_database_size_bytes";
/// Standby's replay position behind the primary's WAL, bytes (gauge; labels
/// `application_name`, `client_addr`, `state`).
pub const STANDBY_LAG_BYTES: &str = "pg_stat_replication_pg_wal_lsn_diff";
/// A standby's write, flush and replay lag in seconds, as the primary measured it.
pub const STANDBY_WRITE_LAG: &str = "pg_stat_replication_write_lag_seconds";
/// See [`STANDBY_WRITE_LAG`].
pub const STANDBY_FLUSH_LAG: &str = "pg_stat_replication_flush_lag_seconds";
/// See [`STANDBY_WRITE_LAG`].
pub const STANDBY_REPLAY_LAG: &str = "pg_stat_replication_replay_lag_seconds";
/// 1 when a replication slot is in use (gauge; labels `slot_name`, `slot_type`).
pub const SLOT_ACTIVE: &str = "pg_replication_slot_slot_is_active";
/// WAL a slot keeps from removal: the current position less its `restart_lsn`, bytes.
pub const SLOT_RETAINED: &str = "sysward_pg_replication_slot_retained_wal_bytes";
/// `safe_wal_size` of a slot (PostgreSQL 13 and later), bytes.
pub const SLOT_SAFE_WAL: &str = "pg_replication_slot_safe_wal_size_bytes";
/// pg_stat_statements: calls of a statement (counter; labels `user`, `datname`, `queryid`).
pub const STATEMENT_CALLS: &str = "pg_stat_statements_calls_total";
/// pg_stat_statements: execution time in seconds (counter).
pub const STATEMENT_SECONDS: &str = "pg_stat_statements_seconds_total";
/// pg_stat_statements: rows returned or affected (counter).
pub const STATEMENT_ROWS: &str = "pg_stat_statements_rows_total";
/// 1, labelled `queryid` and its normalised `query` text, cut to 120 bytes (gauge).
pub const STATEMENT_QUERY: &str = "pg_stat_statements_query_id";
/// Objects past a limit, counted over the collector's life (counter; labels `server`,
/// `kind`: `databases`, `standbys`, `slots`, `statements`).
pub const DROPPED: &str = "sysward_pg_objects_dropped_total";

/// `pg_stat_database` columns sent, as `pg_stat_database_<column>` (label `datname`).
const DATABASE_COLUMNS: [&str; 14] = [
    "numbackends",
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "conflicts",
    "temp_files",
    "temp_bytes",
    "deadlocks",
];

/// `pg_stat_database_conflicts` columns, as `pg_stat_database_conflicts_<column>`.
const CONFLICT_COLUMNS: [&str; 5] = [
    "confl_tablespace",
    "confl_lock",
    "confl_snapshot",
    "confl_bufferpin",
    "confl_deadlock",
];

/// The session states postgres_exporter zero-fills.
const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// The lock modes postgres_exporter zero-fills, lower-cased as it sends them.
const LOCK_MODES: [&str; 9] = [
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
];

/// Bytes of a statement's text kept in [`STATEMENT_QUERY`]'s `query` label
/// (postgres_exporter's default `query_length`).
const QUERY_TEXT_BYTES: usize = 120;

/// The most `max_objects` and `statements_top` may be.
pub const MAX_LIMIT: usize = 10_000;

/// Where one server is and how to log in.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `server` label of its samples; unique within the collector.
    pub name: String,
    /// Host or socket directory, port, user, database and options.
    pub connect: tokio_postgres::Config,
    /// A file holding the password, read at each connection.
    pub password_file: Option<PathBuf>,
}

/// How the `postgres` collector reaches its servers and what it sends.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The servers; none: the collector does nothing.
    pub servers: Vec<ServerConfig>,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// `statement_timeout` of the collector's sessions.
    pub statement_timeout: Duration,
    /// The longest one run may take for one server, connection included.
    pub run_budget: Duration,
    /// The most databases, standbys and slots listed per server, each.
    pub max_objects: usize,
    /// Statements of `pg_stat_statements` sent, the slowest by mean time first.
    pub statements_top: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(2),
            run_budget: Duration::from_secs(8),
            max_objects: 100,
            statements_top: 10,
        }
    }
}

/// `[collectors.postgres]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSettings {
    servers: Option<Vec<ServerSettings>>,
    connect_timeout: Option<HumanDuration>,
    statement_timeout: Option<HumanDuration>,
    run_budget: Option<HumanDuration>,
    max_objects: Option<Count>,
    statements_top: Option<Count>,
}

/// One `[[collectors.postgres.servers]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSettings {
    name: String,
    url: Option<String>,
    socket_dir: Option<PathBuf>,
    port: Option<u16>,
    user: Option<String>,
    dbname: Option<String>,
    password_file: Option<PathBuf>,
}

impl ServerSettings {
    fn into_config(self) -> Result<ServerConfig, String> {
        let bad = |why: String| settings::bad(NAME, "servers", format!("{}: {why}", self.name));
        if self.name.is_empty() {
            return Err(settings::bad(
                NAME,
                "servers",
                "a server needs a non-empty name",
            ));
        }
        let mut connect = match (&self.url, &self.socket_dir) {
            (Some(url), None) => {
                if self.port.is_some() || self.user.is_some() || self.dbname.is_some() {
                    return Err(bad(
                        "give port, user and dbname in the url, or socket_dir without url".into(),
                    ));
                }
                url.parse::<tokio_postgres::Config>()
                    .map_err(|error| bad(format!("bad url: {error}")))?
            }
            (None, Some(dir)) => {
                if !dir.is_absolute() {
                    return Err(bad("socket_dir must be an absolute path".into()));
                }
                let mut config = tokio_postgres::Config::new();
                config
                    .host_path(dir)
                    .port(self.port.unwrap_or(5432))
                    .user(self.user.as_deref().unwrap_or("postgres"))
                    .dbname(self.dbname.as_deref().unwrap_or("postgres"));
                config
            }
            _ => return Err(bad("give either url or socket_dir".into())),
        };
        if connect.get_application_name().is_none() {
            connect.application_name("sysward-agent");
        }
        if let Some(path) = &self.password_file
            && !path.is_absolute()
        {
            return Err(bad("password_file must be an absolute path".into()));
        }
        Ok(ServerConfig {
            name: self.name,
            connect,
            password_file: self.password_file,
        })
    }
}

fn limit(key: &str, value: Option<Count>, default: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(Count(n)) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_LIMIT)
            .ok_or_else(|| {
                settings::bad(NAME, key, format!("expected at most {MAX_LIMIT}, got {n}"))
            }),
    }
}

impl PostgresConfig {
    /// The configuration a `[collectors.postgres]` table asks for, the agent's own keys
    /// left out: `servers` (an array of tables with `name` and either `url` or
    /// `socket_dir` with `port`, `user`, `dbname`; `password_file`), `connect_timeout`,
    /// `statement_timeout`, `run_budget`, `max_objects`, `statements_top`.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: PostgresSettings = settings::parse(NAME, table)?;
        let default = Self::default();
        let mut servers: Vec<ServerConfig> = Vec::new();
        for server in s.servers.unwrap_or_default() {
            let server = server.into_config()?;
            if servers.iter().any(|s| s.name == server.name) {
                return Err(settings::bad(
                    NAME,
                    "servers",
                    format!("two servers are named {:?}", server.name),
                ));
            }
            servers.push(server);
        }
        let config = Self {
            servers,
            connect_timeout: settings::positive(
                NAME,
                "connect_timeout",
                s.connect_timeout,
                default.connect_timeout,
            )?,
            statement_timeout: settings::positive(
                NAME,
                "statement_timeout",
                s.statement_timeout,
                default.statement_timeout,
            )?,
            run_budget: settings::positive(NAME, "run_budget", s.run_budget, default.run_budget)?,
            max_objects: limit("max_objects", s.max_objects, default.max_objects)?,
            statements_top: limit("statements_top", s.statements_top, default.statements_top)?,
        };
        if config.connect_timeout > config.run_budget {
            return Err(settings::bad(
                NAME,
                "connect_timeout",
                "must not be more than run_budget",
            ));
        }
        Ok(config)
    }
}

/// What is known of a server's connection.
struct Session {
    client: tokio_postgres::Client,
    /// `server_version_num`, which picks the statements.
    version: u32,
    /// Whether `pg_stat_statements` is in the database connected to.
    statements: bool,
}

/// One server's state, moved into its task for a run and back.
struct ServerState {
    config: Arc<ServerConfig>,
    session: Option<Session>,
    dropped: Dropped,
}

/// Reads the configured PostgreSQL servers.
pub struct PostgresCollector {
    config: Arc<PostgresConfig>,
    runtime: Option<tokio::runtime::Runtime>,
    /// One per server, in configuration order; `None` only while a run holds it.
    servers: Vec<Option<ServerState>>,
}

impl std::fmt::Debug for PostgresCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCollector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PostgresCollector {
    /// A collector for the given servers.
    pub fn with_config(config: PostgresConfig) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|server| {
                Some(ServerState {
                    config: Arc::new(server.clone()),
                    session: None,
                    dropped: Dropped::default(),
                })
            })
            .collect();
        Self {
            config: Arc::new(config),
            runtime: None,
            servers,
        }
    }
}

impl Collector for PostgresCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&mut self, out: &mut Output) -> Result<(), CollectError> {
        let budget = self.config.run_budget;
        database::collect_all(
            &mut self.runtime,
            &mut self.servers,
            &self.config,
            budget,
            out,
        );
        Ok(())
    }
}

impl database::Server for ServerState {
    type Config = PostgresConfig;
    const COLLECTOR: &'static str = NAME;
    const UP: &'static str = UP;

    fn name(&self) -> &str {
        &self.config.name
    }

    fn fresh(&self) -> Self {
        ServerState {
            config: self.config.clone(),
            session: None,
            dropped: Dropped::default(),
        }
    }

    fn read(
        &mut self,
        config: &PostgresConfig,
        deadline: tokio::time::Instant,
        out: &mut Output,
    ) -> impl Future<Output = Result<(), String>> + Send {
        run_server(self, config, deadline, out)
    }

    fn disconnect(&mut self) {
        self.session = None;
    }

    fn finish(&self, out: &mut Output) {
        out.samples
            .extend(self.dropped.samples(DROPPED, &self.config.name));
    }
}

/// One run against one server: connects when it must and sends the statistics.
async fn run_server(
    state: &mut ServerState,
    config: &PostgresConfig,
    deadline: tokio::time::Instant,
    out: &mut Output,
) -> Result<(), String> {
    if state.session.as_ref().is_some_and(|s| s.client.is_closed()) {
        state.session = None;
    }
    let reused = state.session.is_some();
    if !reused {
        state.session = Some(connect(&state.config, config, deadline).await?);
    }
    let Some(mut session) = state.session.take() else {
        return Ok(());
    };
    let mut batch = core_statements(session.version, config.max_objects);
    let messages = match session.client.simple_query(&batch).await {
        Ok(messages) => messages,
        // A kept connection the server closed since the last run (a restart, an
        // administrator's pg_terminate_backend): connect again at once, so that a
        // server that is back is not reported down.
        Err(error) if reused && connection_lost(&session.client, &error) => {
            session = connect(&state.config, config, deadline).await?;
            batch = core_statements(session.version, config.max_objects);
            session
                .client
                .simple_query(&batch)
                .await
                .map_err(|error| describe(&error))?
        }
        Err(error) => return Err(describe(&error)),
    };
    let session = state.session.insert(session);
    let results = split_results(&messages);
    let mut emit = Emit::new(&state.config.name, out, config);
    emit.map_core(&results);
    let dropped: Vec<(&'static str, u64)> = std::mem::take(&mut emit.dropped);
    for (kind, n) in dropped {
        state.dropped.add(kind, n);
    }
    if session.statements && config.statements_top > 0 {
        let sql = statements_query(session.version, config.statements_top);
        match session.client.simple_query(&sql).await {
            Ok(messages) => {
                let results = split_results(&messages);
                let mut emit = Emit::new(&state.config.name, out, config);
                if let Some(rows) = results.first() {
                    emit.map_statements(rows);
                }
                for (kind, n) in std::mem::take(&mut emit.dropped) {
                    state.dropped.add(kind, n);
                }
            }
            Err(error) => {
                out.error(format!(
                    "postgres server {}: pg_stat_statements: {}",
                    state.config.name,
                    describe(&error)
                ));
                // Dropped, or its library unloaded: look for it again at the next
                // connection rather than failing every run.
                session.statements = false;
            }
        }
    }
    Ok(())
}

/// Whether `error` ended the session rather than one statement: the socket closed, or
/// the server's FATAL message before it closes it (`pg_terminate_backend`, a shutdown).
fn connection_lost(client: &tokio_postgres::Client, error: &tokio_postgres::Error) -> bool {
    client.is_closed()
        || error.is_closed()
        || error
            .as_db_error()
            .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

/// A driver error with the server's own message and code when it sent one.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => error.to_string(),
    }
}

async fn connect(
    server: &ServerConfig,
    config: &PostgresConfig,
    deadline: tokio::time::Instant,
) -> Result<Session, String> {
    let mut connect = server.connect.clone();
    if let Some(path) = &server.password_file {
        connect.password(database::read_password(path)?);
    }
    let wait = database::within(deadline, config.connect_timeout);
    connect.connect_timeout(wait);
    let (client, connection) = tokio::time::timeout(wait, connect.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("cannot connect within {wait:?}"))?
        .map_err(|error| format!("cannot connect: {}", describe(&error)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes; the next run sees
        // `is_closed` and connects again.
        let _ = connection.await;
    });
    let setup = format!(
        "SET statement_timeout = {}; SET lock_timeout = {}; \
         SELECT current_setting('server_version_num'), \
         EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
        config.statement_timeout.as_millis(),
        config.statement_timeout.as_millis(),
    );
    let messages = client
        .simple_query(&setup)
        .await
        .map_err(|error| format!("cannot set up the session: {}", describe(&error)))?;
    let results = split_results(&messages);
    let row = results
        .last()
        .and_then(|rows| rows.first())
        .ok_or("the server sent no version")?;
    let version = row
        .first()
        .copied()
        .flatten()
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or("the server sent no version number")?;
    let statements = row.get(1).copied().flatten() == Some("t");
    Ok(Session {
        client,
        version,
        statements,
    })
}

/// One statement's rows, each a list of values as text (`None` for NULL).
type Rows<'a> = Vec<Vec<Option<&'a str>>>;

/// The rows of each statement of a simple query, in order.
fn split_results(messages: &[SimpleQueryMessage]) -> Vec<Rows<'_>> {
    let mut results = Vec::new();
    let mut current: Rows<'_> = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => current.push(values(row)),
            SimpleQueryMessage::CommandComplete(_) => results.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    results
}

fn values(row: &SimpleQueryRow) -> Vec<Option<&str>> {
    (0..row.len())
        .map(|i| row.try_get(i).ok().flatten())
        .collect()
}

/// The current WAL position as a byte count, on a primary or a replica.
const CURRENT_LSN: &str = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                           ELSE pg_current_wal_lsn() END";

/// The statements of one run, in the order [`Emit::map_core`] reads them. PostgreSQL 10
/// and later; `version` is `server_version_num`.
fn core_statements(version: u32, max_objects: usize) -> String {
    let limit = max_objects + 1;
    let mut sql = String::with_capacity(3000);
    // 0: the server.
    sql.push_str(
        "SELECT version(), current_setting('server_version'), \
         extract(epoch FROM pg_postmaster_start_time()), current_setting('max_connections'), \
         pg_is_in_recovery(), \
         CASE WHEN NOT pg_is_in_recovery() THEN 0 \
         ELSE GREATEST(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END, \
         CASE WHEN pg_is_in_recovery() \
         THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END;",
    );
    // 1: databases, the first by name up to the limit, with their total count.
    sql.push_str(&format!(
        "SELECT d.datname, s.numbackends, s.xact_commit, s.xact_rollback, s.blks_read, \
         s.blks_hit, s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, \
         s.tup_deleted, s.conflicts, s.temp_files, s.temp_bytes, s.deadlocks, \
         c.confl_tablespace, c.confl_lock, c.confl_snapshot, c.confl_bufferpin, \
         c.confl_deadlock, \
         CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END, \
         count(*) OVER () \
         FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid \
         LEFT JOIN pg_stat_database_conflicts c ON c.datid = d.oid \
         ORDER BY d.datname LIMIT {limit};"
    ));
    // 2: sessions by database and state.
    sql.push_str(
        "SELECT datname, state, count(*), max(extract(epoch FROM now() - xact_start)) \
         FROM pg_stat_activity WHERE datname IS NOT NULL AND state IS NOT NULL \
         GROUP BY datname, state;",
    );
    // 3: locks by database and mode.
    sql.push_str(
        "SELECT d.datname, lower(l.mode), count(*) FROM pg_locks l \
         JOIN pg_database d ON d.oid = l.database GROUP BY d.datname, l.mode;",
    );
    // 4: standbys, as the primary sees them.
    sql.push_str(&format!(
        "SELECT application_name, coalesce(client_addr::text, ''), state, \
         pg_wal_lsn_diff({CURRENT_LSN}, replay_lsn), extract(epoch FROM write_lag), \
         extract(epoch FROM flush_lag), extract(epoch FROM replay_lag), count(*) OVER () \
         FROM pg_stat_replication ORDER BY application_name, client_addr LIMIT {limit};"
    ));
    // 5: replication slots.
    let safe_wal = if version >= 130000 {
        "safe_wal_size"
    } else {
        "NULL"
    };
    sql.push_str(&format!(
        "SELECT slot_name, slot_type, active, pg_wal_lsn_diff({CURRENT_LSN}, restart_lsn), \
         {safe_wal}, count(*) OVER () FROM pg_replication_slots ORDER BY slot_name \
         LIMIT {limit};"
    ));
    // 6: checkpoints and the background writer; PostgreSQL 17 moved checkpoints out.
    if version >= 170000 {
        sql.push_str(
            "SELECT c.num_timed, c.num_requested, c.write_time, c.sync_time, \
             c.buffers_written, b.buffers_clean, b.maxwritten_clean, NULL, NULL, \
             b.buffers_alloc FROM pg_stat_checkpointer c, pg_stat_bgwriter b;",
        );
    } else {
        sql.push_str(
            "SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, \
             checkpoint_sync_time, buffers_checkpoint, buffers_clean, maxwritten_clean, \
             buffers_backend, buffers_backend_fsync, buffers_alloc FROM pg_stat_bgwriter;",
        );
    }
    // 7: WAL, PostgreSQL 14 and later.
    if version >= 140000 {
        sql.push_str(
            "SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, wal_write, wal_sync, \
             wal_write_time / 1000, wal_sync_time / 1000 FROM pg_stat_wal;",
        );
    }
    sql
}

/// The slowest statements by mean time, with their total count.
fn statements_query(version: u32, top: usize) -> String {
    let (total, mean) = if version >= 130000 {
        ("total_exec_time", "mean_exec_time")
    } else {
        ("total_time", "mean_time")
    };
    format!(
        "SELECT s.queryid, coalesce(d.datname, ''), coalesce(pg_get_userbyid(s.userid), ''), \
         s.calls, s.{total} / 1000, s.rows, left(s.query, 400), count(*) OVER () \
         FROM pg_stat_statements s LEFT JOIN pg_database d ON d.oid = s.dbid \
         ORDER BY s.{mean} DESC LIMIT {top}"
    )
}

/// `pg_stat_bgwriter` (or, from 17, `pg_stat_checkpointer`) columns in statement 6's
/// order, as postgres_exporter names them; times are milliseconds, as it sends them.
const BGWRITER: [&str; 10] = [
    "pg_stat_bgwriter_checkpoints_timed_total",
    "pg_stat_bgwriter_checkpoints_req_total",
    "pg_stat_bgwriter_checkpoint_write_time_total",
    "pg_stat_bgwriter_checkpoint_sync_time_total",
    "pg_stat_bgwriter_buffers_checkpoint_total",
    "pg_stat_bgwriter_buffers_clean_total",
    "pg_stat_bgwriter_maxwritten_clean_total",
    "pg_stat_bgwriter_buffers_backend_total",
    "pg_stat_bgwriter_buffers_backend_fsync_total",
    "pg_stat_bgwriter_buffers_alloc_total",
];

/// `pg_stat_wal` columns in statement 7's order.
const WAL: [&str; 8] = [
    "pg_stat_wal_records_total",
    "pg_stat_wal_fpi_total",
    "pg_stat_wal_bytes_total",
    "pg_stat_wal_buffers_full_total",
    "pg_stat_wal_write_total",
    "pg_stat_wal_sync_total",
    "pg_stat_wal_write_time_seconds_total",
    "pg_stat_wal_sync_time_seconds_total",
];

/// Turns the rows of one server's statements into samples: pure, tested on rows
/// written by hand.
struct Emit<'a> {
    server: &'a str,
    out: &'a mut Output,
    max_objects: usize,
    statements_top: usize,
    /// The databases sent, for the zero-filled activity and lock series.
    databases: Vec<String>,
    dropped: Vec<(&'static str, u64)>,
}

impl<'a> Emit<'a> {
    fn new(server: &'a str, out: &'a mut Output, config: &PostgresConfig) -> Self {
        Self {
            server,
            out,
            max_objects: config.max_objects,
            statements_top: config.statements_top,
            databases: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn sample(&self, name: &'static str, kind: Kind, value: f64) -> Sample {
        Sample::new(name, kind, value).label("server", self.server)
    }

    /// Pushes `name` with `labels` when the value is a number; reports a value that
    /// is not.
    fn push(
        &mut self,
        name: &'static str,
        kind: Kind,
        value: Option<&str>,
        labels: &[(&'static str, &str)],
    ) {
        match database::number(name, value) {
            Ok(Some(value)) => {
                let mut sample = self.sample(name, kind, value);
                for (label, v) in labels {
                    sample = sample.label(*label, *v);
                }
                self.out.push(sample);
            }
            Ok(None) => {}
            Err(error) => self
                .out
                .error(format!("postgres server {}: {error}", self.server)),
        }
    }

    /// Counts the rows past the limit from the `count(*) OVER ()` column.
    fn count_dropped(&mut self, kind: &'static str, rows: &[Vec<Option<&str>>], shown: usize) {
        let total = rows
            .first()
            .and_then(|row| row.last().copied().flatten())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let dropped = total.saturating_sub(shown as u64);
        if dropped > 0 {
            self.dropped.push((kind, dropped));
        }
    }

    fn map_core(&mut self, results: &[Rows<'_>]) {
        let empty = Vec::new();
        let result = |i: usize| results.get(i).unwrap_or(&empty);
        self.map_server(result(0));
        self.map_databases(result(1));
        self.map_activity(result(2));
        self.map_locks(result(3));
        self.map_standbys(result(4));
        self.map_slots(result(5));
        if let Some(row) = result(6).first() {
            for (name, value) in BGWRITER.iter().zip(row) {
                self.push(name, Kind::Counter, *value, &[]);
            }
        }
        if let Some(row) = result(7).first() {
            for (name, value) in WAL.iter().zip(row) {
                self.push(name, Kind::Counter, *value, &[]);
            }
        }
    }

    fn map_server(&mut self, rows: &[Vec<Option<&str>>]) {
        let Some(row) = rows.first() else {
            self.out
                .error(format!("postgres server {}: no server row", self.server));
            return;
        };
        let at = |i: usize| row.get(i).copied().flatten();
        if let (Some(version), Some(setting)) = (at(0), at(1)) {
            let sample = self
                .sample(STATIC, Kind::Gauge, 1.0)
                .label("short_version", short_version(setting))
                .label("version", version);
            self.out.push(sample);
        }
        self.push(POSTMASTER_START, Kind::Gauge, at(2), &[]);
        self.push(MAX_CONNECTIONS, Kind::Gauge, at(3), &[]);
        self.push(IS_REPLICA, Kind::Gauge, at(4), &[]);
        self.push(REPLICATION_LAG, Kind::Gauge, at(5), &[]);
        self.push(REPLAY_PENDING, Kind::Gauge, at(6), &[]);
    }

    fn map_databases(&mut self, rows: &[Vec<Option<&str>>]) {
        let shown = rows.len().min(self.max_objects);
        self.count_dropped("databases", rows, shown);
        for row in &rows[..shown] {
            let Some(datname) = row.first().copied().flatten() else {
                continue;
            };
            self.databases.push(datname.to_owned());
            let labels = [("datname", datname)];
            for (i, column) in DATABASE_COLUMNS.iter().enumerate() {
                let kind = if *column == "numbackends" {
                    Kind::Gauge
                } else {
                    Kind::Counter
                };
                self.push(
                    database_metric(column),
                    kind,
                    row.get(1 + i).copied().flatten(),
                    &labels,
                );
            }
            for (i, column) in CONFLICT_COLUMNS.iter().enumerate() {
                self.push(
                    conflict_metric(column),
                    Kind::Counter,
                    row.get(1 + DATABASE_COLUMNS.len() + i).copied().flatten(),
                    &labels,
                );
            }
            let size = row.get(1 + DATABASE_COLUMNS.len() + CONFLICT_COLUMNS.len());
            self.push(DATABASE_SIZE, Kind::Gauge, size.copied().flatten(), &labels);
        }
    }

    fn map_activity(&mut self, rows: &[Vec<Option<&str>>]) {
        let databases = std::mem::take(&mut self.databases);
        for datname in &databases {
            for state in STATES {
                let row = rows
                    .iter()
                    .find(|r| cell(r, 0) == Some(datname.as_str()) && cell(r, 1) == Some(state));
                let at = |i: usize| row.and_then(|r| r.get(i).copied().flatten()).or(Some("0"));
                let labels = [("datname", datname.as_str()), ("state", state)];
                self.push(ACTIVITY_COUNT, Kind::Gauge, at(2), &labels);
                self.push(ACTIVITY_MAX_TX, Kind::Gauge, at(3), &labels);
            }
        }
        self.databases = databases;
    }

    fn map_locks(&mut self, rows: &[Vec<Option<&str>>]) {
        let databases = std::mem::take(&mut self.databases);
        for datname in &databases {
            for mode in LOCK_MODES {
                let count = rows
                    .iter()
                    .find(|r| cell(r, 0) == Some(datname.as_str()) && cell(r, 1) == Some(mode))
                    .and_then(|r| r.get(2).copied().flatten())
                    .or(Some("0"));
                let labels = [("datname", datname.as_str()), ("mode", mode)];
                self.push(LOCKS, Kind::Gauge, count, &labels);
            }
        }
        self.databases = databases;
    }

    fn map_standbys(&mut self, rows: &[Vec<Option<&str>>]) {
        let shown = rows.len().min(self.max_objects);
        self.count_dropped("standbys", rows, shown);
        for row in &rows[..shown] {
            let at = |i: usize| row.get(i).copied().flatten();
            let labels = [
                ("application_name", at(0).unwrap_or("")),
                ("client_addr", at(1).unwrap_or("")),
                ("state", at(2).unwrap_or("")),
            ];
            self.push(STANDBY_LAG_BYTES, Kind::Gauge, at(3), &labels);
            // NULL until the standby has replied once since it was idle: no sample.
            self.push(STANDBY_WRITE_LAG, Kind::Gauge, at(4), &labels);
            self.push(STANDBY_FLUSH_LAG, Kind::Gauge, at(5), &labels);
            self.push(STANDBY_REPLAY_LAG, Kind::Gauge, at(6), &labels);
        }
    }

    fn map_slots(&mut self, rows: &[Vec<Option<&str>>]) {
        let shown = rows.len().min(self.max_objects);
        self.count_dropped("slots", rows, shown);
        for row in &rows[..shown] {
            let at = |i: usize| row.get(i).copied().flatten();
            let labels = [
                ("slot_name", at(0).unwrap_or("")),
                ("slot_type", at(1).unwrap_or("")),
            ];
            self.push(SLOT_ACTIVE, Kind::Gauge, at(2), &labels);
            self.push(SLOT_RETAINED, Kind::Gauge, at(3), &labels);
            self.push(SLOT_SAFE_WAL, Kind::Gauge, at(4), &labels);
        }
    }

    fn map_statements(&mut self, rows: &[Vec<Option<&str>>]) {
        let shown = rows.len().min(self.statements_top);
        self.count_dropped("statements", rows, shown);
        for row in &rows[..shown] {
            let at = |i: usize| row.get(i).copied().flatten();
            let Some(queryid) = at(0) else {
                // Statements of other users, hidden from a role without pg_read_all_stats.
                continue;
            };
            let labels = [
                ("user", at(2).unwrap_or("")),
                ("datname", at(1).unwrap_or("")),
                ("queryid", queryid),
            ];
            self.push(STATEMENT_CALLS, Kind::Counter, at(3), &labels);
            self.push(STATEMENT_SECONDS, Kind::Counter, at(4), &labels);
            self.push(STATEMENT_ROWS, Kind::Counter, at(5), &labels);
            let text = database::label_text(at(6).unwrap_or(""), QUERY_TEXT_BYTES);
            let sample = self
                .sample(STATEMENT_QUERY, Kind::Gauge, 1.0)
                .label("queryid", queryid)
                .label("query", text);
            self.out.push(sample);
        }
    }
}

/// The value in column `i` of `row`; `None` for NULL or a missing column.
fn cell<'r>(row: &[Option<&'r str>], i: usize) -> Option<&'r str> {
    row.get(i).copied().flatten()
}

/// `15.18.0` from `server_version` `15.18 (Debian 15.18-0+deb12u1)`, as
/// postgres_exporter's `short_version` reads it (three parts).
fn short_version(setting: &str) -> String {
    let number: String = setting
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parts = number.split('.').filter(|p| !p.is_empty()).count();
    match parts {
        0 => setting.to_owned(),
        1 => format!("{number}.0.0"),
        2 => format!("{number}.0"),
        _ => number,
    }
}

fn database_metric(column: &str) -> &'static str {
    match column {
        "numbackends" => "pg_stat_database_numbackends",
        "xact_commit" => "pg_stat_database_xact_commit",
        "xact_rollback" => "pg_stat_database_xact_rollback",
        "blks_read" => "pg_stat_database_blks_read",
        "blks_hit" => "pg_stat_database_blks_hit",
        "tup_returned" => "pg_stat_database_tup_returned",
        "tup_fetched" => "pg_stat_database_tup_fetched",
        "tup_inserted" => "pg_stat_database_tup_inserted",
        "tup_updated" => "pg_stat_database_tup_updated",
        "tup_deleted" => "pg_stat_database_tup_deleted",
        "conflicts" => "pg_stat_database_conflicts",
        "temp_files" => "pg_stat_database_temp_files",
        "temp_bytes" => "pg_stat_database_temp_bytes",
        _ => "pg_stat_database_deadlocks",
    }
}

fn conflict_metric(column: &str) -> &'static str {
    match column {
        "confl_tablespace" => "pg_stat_database_conflicts_confl_tablespace",
        "confl_lock" => "pg_stat_database_conflicts_confl_lock",
        "confl_snapshot" => "pg_stat_database_conflicts_confl_snapshot",
        "confl_bufferpin" => "pg_stat_database_conflicts_confl_bufferpin",
        _ => "pg_stat_database_conflicts_confl_deadlock",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::value;

    fn config() -> PostgresConfig {
        PostgresConfig {
            max_objects: 2,
            statements_top: 1,
            ..PostgresConfig::default()
        }
    }

    fn row<'a>(values: &[Option<&'a str>]) -> Vec<Option<&'a str>> {
        values.to_vec()
    }

    #[test]
    fn rows_map_to_postgres_exporter_names_with_limits_counted() {
        let mut db = vec![Some("app")];
        db.extend(std::iter::repeat_n(Some("7"), 19));
        db.push(Some("8192"));
        db.push(Some("3"));
        let mut other = db.clone();
        other[0] = Some("other");
        let results: Vec<Rows<'_>> = vec![
            vec![row(&[
                Some("PostgreSQL 15.18 (Debian) on x86_64"),
                Some("15.18 (Debian 15.18-0+deb12u1)"),
                Some("1700000000.5"),
                Some("100"),
                Some("f"),
                Some("0"),
                None,
            ])],
            vec![db, other],
            vec![row(&[
                Some("app"),
                Some("idle in transaction"),
                Some("2"),
                Some("12.5"),
            ])],
            vec![row(&[Some("app"), Some("accessexclusivelock"), Some("1")])],
            vec![row(&[
                Some("walreceiver"),
                Some("127.0.0.1/32"),
                Some("streaming"),
                Some("0"),
                None,
                None,
                None,
                Some("1"),
            ])],
            vec![],
            vec![row(&[
                Some("5"),
                Some("1"),
                Some("10.5"),
                Some("2"),
                None,
                None,
                None,
                None,
                None,
                None,
            ])],
        ];
        let mut out = Output::default();
        let config = config();
        let mut emit = Emit::new("main", &mut out, &config);
        emit.map_core(&results);
        let dropped = std::mem::take(&mut emit.dropped);
        assert_eq!(dropped, [("databases", 1)]);
        assert_eq!(out.errors, Vec::<String>::new());
        let static_labels = [("server", "main"), ("short_version", "15.18.0")];
        assert_eq!(value(&out.samples, STATIC, &static_labels), Some(1.0));
        assert_eq!(value(&out.samples, MAX_CONNECTIONS, &[]), Some(100.0));
        assert_eq!(value(&out.samples, IS_REPLICA, &[]), Some(0.0));
        assert_eq!(
            value(&out.samples, REPLAY_PENDING, &[]),
            None,
            "NULL sends nothing"
        );
        let app = [("datname", "app")];
        assert_eq!(
            value(&out.samples, "pg_stat_database_xact_commit", &app),
            Some(7.0)
        );
        assert_eq!(value(&out.samples, DATABASE_SIZE, &app), Some(8192.0));
        assert_eq!(
            value(&out.samples, "pg_stat_database_conflicts_confl_lock", &app),
            Some(7.0)
        );
        let idle = [("datname", "app"), ("state", "idle in transaction")];
        assert_eq!(value(&out.samples, ACTIVITY_COUNT, &idle), Some(2.0));
        assert_eq!(value(&out.samples, ACTIVITY_MAX_TX, &idle), Some(12.5));
        // Zero-filled, as postgres_exporter does, for every database sent.
        let other_active = [("datname", "other"), ("state", "active")];
        assert_eq!(
            value(&out.samples, ACTIVITY_COUNT, &other_active),
            Some(0.0)
        );
        let lock = [("datname", "app"), ("mode", "accessexclusivelock")];
        assert_eq!(value(&out.samples, LOCKS, &lock), Some(1.0));
        let counted = out.samples.iter().filter(|s| s.name == LOCKS).count();
        assert_eq!(counted, 2 * LOCK_MODES.len());
        let standby = [("application_name", "walreceiver"), ("state", "streaming")];
        assert_eq!(value(&out.samples, STANDBY_LAG_BYTES, &standby), Some(0.0));
        assert_eq!(value(&out.samples, STANDBY_REPLAY_LAG, &standby), None);
        assert_eq!(
            value(
                &out.samples,
                "pg_stat_bgwriter_checkpoints_timed_total",
                &[]
            ),
            Some(5.0)
        );
        assert!(
            out.samples
                .iter()
                .all(|s| s.labels[0] == ("server".into(), "main".into()))
        );
    }

    #[test]
    fn null_and_unexpected_values_are_skipped_and_reported_not_a_panic() {
        let results: Vec<Rows<'_>> = vec![
            vec![row(&[
                None,
                None,
                Some("soon"),
                Some("1e400x"),
                Some("t"),
                None,
                None,
            ])],
            vec![row(&[None, Some("1")]), row(&[Some("short")])],
            vec![row(&[Some("short")])],
        ];
        let mut out = Output::default();
        let config = config();
        Emit::new("main", &mut out, &config).map_core(&results);
        assert_eq!(value(&out.samples, IS_REPLICA, &[]), Some(1.0));
        assert_eq!(value(&out.samples, STATIC, &[]), None);
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(
            out.errors[0].contains("\"soon\" is not a number"),
            "{:?}",
            out.errors
        );
        // A database row with too few columns sends what it has: the zero-filled series.
        assert_eq!(
            value(
                &out.samples,
                ACTIVITY_COUNT,
                &[("datname", "short"), ("state", "idle")]
            ),
            Some(0.0)
        );
        // No rows at all: an error, not a panic.
        let mut out = Output::default();
        Emit::new("main", &mut out, &config).map_core(&[]);
        assert_eq!(out.errors, ["postgres server main: no server row"]);
    }

    #[test]
    fn statements_keep_the_top_n_with_their_text_as_an_info_series() {
        let rows = vec![
            row(&[
                Some("-42"),
                Some("app"),
                Some("alice"),
                Some("3"),
                Some("0.6"),
                Some("3"),
                Some("SELECT pg_sleep($1)\n  FROM x"),
                Some("5"),
            ]),
            row(&[
                None,
                None,
                None,
                Some("1"),
                Some("1"),
                Some("1"),
                None,
                Some("5"),
            ]),
        ];
        let mut out = Output::default();
        let config = config();
        let mut emit = Emit::new("main", &mut out, &config);
        emit.map_statements(&rows);
        assert_eq!(emit.dropped, [("statements", 4)]);
        let labels = [("user", "alice"), ("datname", "app"), ("queryid", "-42")];
        assert_eq!(value(&out.samples, STATEMENT_CALLS, &labels), Some(3.0));
        assert_eq!(value(&out.samples, STATEMENT_SECONDS, &labels), Some(0.6));
        let text = [("queryid", "-42"), ("query", "SELECT pg_sleep($1) FROM x")];
        assert_eq!(value(&out.samples, STATEMENT_QUERY, &text), Some(1.0));
        assert_eq!(out.samples.len(), 4);
    }

    #[test]
    fn short_versions_have_three_parts() {
        assert_eq!(short_version("15.18 (Debian 15.18-0+deb12u1)"), "15.18.0");
        assert_eq!(short_version("9.6.24"), "9.6.24");
        assert_eq!(short_version("17devel"), "17.0.0");
        assert_eq!(short_version("odd"), "odd");
    }

    fn settings(text: &str) -> Result<PostgresConfig, String> {
        PostgresConfig::from_table(&toml::from_str(text).expect("valid TOML"))
    }

    #[test]
    fn settings_read_servers_and_refuse_bad_ones() {
        let config = settings(
            "statements_top = 5\nmax_objects = 50\n\
             [[servers]]\nname = \"main\"\nurl = \"postgresql://mon@127.0.0.1:5433/app\"\n\
             password_file = \"/etc/sysward/pg.pass\"\n\
             [[servers]]\nname = \"local\"\nsocket_dir = \"/run/postgresql\"\nuser = \"mon\"\n",
        )
        .expect("valid");
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.statements_top, 5);
        assert_eq!(config.max_objects, 50);
        assert_eq!(config.servers[0].connect.get_ports(), [5433]);
        assert_eq!(config.servers[0].connect.get_dbname(), Some("app"));
        assert_eq!(config.servers[1].connect.get_user(), Some("mon"));
        assert_eq!(config.servers[1].connect.get_ports(), [5432]);
        assert!(settings("").expect("empty").servers.is_empty());
        let cases = [
            (
                "[[servers]]\nname = \"a\"\n",
                "bad setting `servers` for collector postgres: a: give either url or socket_dir",
            ),
            (
                "[[servers]]\nname = \"a\"\nurl = \"x://\"\n",
                "bad setting `servers` for collector postgres: a: bad url: ",
            ),
            (
                "[[servers]]\nname = \"a\"\nsocket_dir = \"run\"\n",
                "bad setting `servers` for collector postgres: a: socket_dir must be an absolute path",
            ),
            (
                "[[servers]]\nname = \"a\"\nsocket_dir = \"/run\"\n[[servers]]\nname = \"a\"\nsocket_dir = \"/run\"\n",
                "bad setting `servers` for collector postgres: two servers are named \"a\"",
            ),
            (
                "[[servers]]\nurl = \"postgresql://x\"\n",
                "bad setting `servers` for collector postgres: missing field `name`",
            ),
            (
                "statements_top = 10001",
                "bad setting `statements_top` for collector postgres: expected at most 10000, got 10001",
            ),
            (
                "connect_timeout = \"9s\"",
                "bad setting `connect_timeout` for collector postgres: must not be more than run_budget",
            ),
        ];
        for (text, expected) in cases {
            let error = settings(text).expect_err(text);
            assert!(error.starts_with(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_collector_without_servers_does_nothing() {
        let mut collector = PostgresCollector::with_config(PostgresConfig::default());
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert!(out.samples.is_empty() && out.errors.is_empty());
        assert!(collector.runtime.is_none());
    }

    /// Against real PostgreSQL 15 servers, a primary and a streaming replica, started by
    /// the test as the `postgres` user. Under `CI` a missing program or privilege fails
    /// the test; elsewhere it is skipped, saying why.
    #[cfg(target_os = "linux")]
    mod real {
        use std::io::Write;
        use std::path::{Path, PathBuf};
        use std::process::{Child, ChildStdin, Command, Stdio};
        use std::time::{Duration, Instant};

        use super::*;

        const BIN: &str = "/usr/lib/postgresql/15/bin";

        fn skip(why: &str) -> bool {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run the PostgreSQL test: {why}");
            }
            eprintln!("skipping the PostgreSQL test: {why}");
            true
        }

        fn uid_of(user: &str) -> Option<String> {
            let out = Command::new("id").args(["-u", user]).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }

        /// A command run as the `postgres` user.
        fn as_postgres(program: &str) -> Command {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
                program,
            ]);
            command
        }

        fn free_port() -> u16 {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        }

        /// A running server, stopped (fast shutdown, then killed) on drop, even on panic.
        struct Server {
            child: Child,
            port: u16,
        }

        impl Drop for Server {
            fn drop(&mut self) {
                let _ = Command::new("kill")
                    .args(["-INT", &self.child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        /// The scratch directory, owned by `postgres`, removed on drop.
        struct Scratch(PathBuf);

        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        fn start(data: &Path, sock: &Path, port: u16) -> Server {
            let child = as_postgres(&format!("{BIN}/postgres"))
                .arg("-D")
                .arg(data)
                .arg("-k")
                .arg(sock)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "shared_preload_libraries=pg_stat_statements"])
                .args(["-c", "fsync=off", "-c", "deadlock_timeout=100ms"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("postgres starts");
            let server = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ready = Command::new(format!("{BIN}/pg_isready"))
                    .arg("-h")
                    .arg(sock)
                    .args(["-p", &port.to_string(), "-q"])
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return server;
                }
                assert!(Instant::now() < deadline, "postgres on {port} never ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// `psql` over the socket as the superuser, returning its unaligned output.
        fn psql(sock: &Path, port: u16, sql: &str) -> String {
            let out = as_postgres(&format!("{BIN}/psql"))
                .arg("-h")
                .arg(sock)
                .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output()
                .expect("psql runs");
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }

        /// A psql session fed statement by statement, for transactions kept open.
        struct Session(Child);

        impl Session {
            fn open(sock: &Path, port: u16) -> Self {
                let child = as_postgres(&format!("{BIN}/psql"))
                    .arg("-h")
                    .arg(sock)
                    .args([
                        "-p",
                        &port.to_string(),
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-Xq",
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("psql starts");
                Self(child)
            }

            fn send(&mut self, sql: &str) {
                let stdin: &mut ChildStdin = self.0.stdin.as_mut().expect("stdin");
                writeln!(stdin, "{sql}").expect("psql reads");
                stdin.flush().expect("flush");
            }

            /// Ends the session and waits for psql, so that its backend's statistics
            /// are flushed (PostgreSQL 15 flushes at exit).
            fn close(mut self) {
                drop(self.0.stdin.take());
                let _ = self.0.wait();
            }
        }

        impl Drop for Session {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }

        fn poll(what: &str, mut done: impl FnMut() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !done() {
                assert!(Instant::now() < deadline, "never: {what}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        fn run(collector: &mut PostgresCollector) -> Output {
            let mut out = Output::default();
            collector
                .collect(&mut out)
                .expect("a run never fails whole");
            out
        }

        fn of(out: &Output, server: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let mut all = vec![("server", server)];
            all.extend_from_slice(labels);
            value(&out.samples, name, &all)
        }

        /// CPU of a process (user + system), in seconds.
        fn cpu_of(pid: &str) -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
            let after = &stat[stat.rfind(')').expect("comm") + 2..];
            let fields: Vec<&str> = after.split(' ').collect();
            let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
            (ticks(11) + ticks(12)) / 100.0
        }

        /// A measurement, not a check: `SYSWARD_PG_BENCH=SOCKET_DIR:PORT cargo test
        /// --release -p sysward-collectors --lib cpu_per_run -- --ignored --nocapture`.
        #[test]
        #[ignore = "a measurement against a server of your own"]
        fn cpu_per_run() {
            let Some((dir, port)) = std::env::var("SYSWARD_PG_BENCH").ok().and_then(|v| {
                v.rsplit_once(':')
                    .map(|(d, p)| (d.to_owned(), p.to_owned()))
            }) else {
                panic!("set SYSWARD_PG_BENCH=SOCKET_DIR:PORT");
            };
            let toml =
                format!("[[servers]]\nname = \"bench\"\nsocket_dir = \"{dir}\"\nport = {port}\n");
            let mut collector =
                PostgresCollector::with_config(settings(&toml).expect("valid settings"));
            let first = run(&mut collector);
            assert_eq!(
                of(&first, "bench", UP, &[]),
                Some(1.0),
                "{:?}",
                first.errors
            );
            let backend = psql(
                Path::new(&dir),
                port.parse().expect("a port"),
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'sysward-agent'",
            );
            let runs = 200;
            let (cpu, server, wall) = (cpu_of("self"), cpu_of(&backend), Instant::now());
            let mut samples = 0;
            for _ in 0..runs {
                samples += run(&mut collector).samples.len();
            }
            let (cpu, server) = (cpu_of("self") - cpu, cpu_of(&backend) - server);
            eprintln!(
                "{runs} runs, {} samples each: {:.3} ms CPU, server backend {:.3} ms, \
                 {:.3} ms wall per run",
                samples / runs,
                cpu * 1000.0 / runs as f64,
                server * 1000.0 / runs as f64,
                wall.elapsed().as_secs_f64() * 1000.0 / runs as f64
            );
        }

        #[test]
        fn a_real_primary_and_replica_report_what_the_load_did() {
            let started = Instant::now();
            if !Path::new(&format!("{BIN}/initdb")).exists() {
                skip("PostgreSQL 15 is not installed (Debian package postgresql-15)");
                return;
            }
            let Some(uid) = uid_of("postgres") else {
                skip("no postgres user");
                return;
            };
            if !as_postgres("true").status().is_ok_and(|s| s.success()) {
                skip("cannot run programs as the postgres user (needs root and setpriv)");
                return;
            }
            let dir =
                Scratch(std::env::temp_dir().join(format!("sysward-pg-{}", std::process::id())));
            let _ = std::fs::remove_dir_all(&dir.0);
            std::fs::create_dir_all(dir.0.join("sock")).expect("mkdir");
            let owned = Command::new("chown")
                .args(["-R", &uid, dir.0.to_str().expect("utf-8")])
                .status()
                .is_ok_and(|s| s.success());
            if !owned {
                skip("cannot give the scratch directory to postgres");
                return;
            }
            let (data, sock) = (dir.0.join("primary"), dir.0.join("sock"));
            let init = as_postgres(&format!("{BIN}/initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                ])
                .stdout(Stdio::null())
                .output()
                .expect("initdb runs");
            assert!(
                init.status.success(),
                "initdb: {}",
                String::from_utf8_lossy(&init.stderr)
            );
            let primary = start(&data, &sock, free_port());
            let port = primary.port;
            psql(&sock, port, "CREATE EXTENSION pg_stat_statements");
            psql(
                &sock,
                port,
                "CREATE ROLE monitor LOGIN PASSWORD 'right' IN ROLE pg_monitor",
            );
            psql(&sock, port, "CREATE TABLE t (id int PRIMARY KEY, v int)");
            psql(&sock, port, "INSERT INTO t VALUES (1, 0), (2, 0)");
            psql(
                &sock,
                port,
                "SELECT pg_create_physical_replication_slot('idle_slot', true)",
            );

            let replica_data = dir.0.join("replica");
            let backup = as_postgres(&format!("{BIN}/pg_basebackup"))
                .arg("-h")
                .arg(&sock)
                .args(["-p", &port.to_string(), "-U", "postgres", "-D"])
                .arg(&replica_data)
                .args([
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    "replica_slot",
                    "--no-sync",
                ])
                .output()
                .expect("pg_basebackup runs");
            assert!(
                backup.status.success(),
                "{}",
                String::from_utf8_lossy(&backup.stderr)
            );
            let replica = start(&replica_data, &sock, free_port());
            // Accepting connections comes before streaming, and streaming before the first
            // replay position: wait until the primary sees both, or the standby's lag (NULL
            // until then, so not sent) may not be there yet.
            crate::test_servers::wait_until(
                Duration::from_secs(30),
                "the standby to stream",
                || {
                    psql(
                        &sock,
                        port,
                        "SELECT count(*) FROM pg_stat_replication \
                         WHERE state = 'streaming' AND replay_lsn IS NOT NULL",
                    ) == "1"
                },
            );

            std::fs::write(dir.0.join("right.pass"), "right\n").expect("write");
            std::fs::write(dir.0.join("wrong.pass"), "wrong\n").expect("write");
            let slow = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let slow_port = slow.local_addr().expect("addr").port();
            let closed_port = free_port();
            let toml = format!(
                "statements_top = 3\nconnect_timeout = \"1s\"\nrun_budget = \"5s\"\n\
                 [[servers]]\nname = \"primary\"\nsocket_dir = \"{sock}\"\nport = {port}\n\
                 [[servers]]\nname = \"replica\"\nsocket_dir = \"{sock}\"\nport = {rport}\n\
                 [[servers]]\nname = \"tcp\"\nurl = \"postgresql://monitor@127.0.0.1:{port}/postgres\"\n\
                 password_file = \"{dir}/right.pass\"\n\
                 [[servers]]\nname = \"refused\"\nurl = \"postgresql://monitor@127.0.0.1:{port}/postgres\"\n\
                 password_file = \"{dir}/wrong.pass\"\n\
                 [[servers]]\nname = \"down\"\nurl = \"postgresql://monitor@127.0.0.1:{closed_port}/postgres\"\n\
                 [[servers]]\nname = \"slow\"\nurl = \"postgresql://monitor@127.0.0.1:{slow_port}/postgres\"\n",
                sock = sock.display(),
                rport = replica.port,
                dir = dir.0.display(),
            );
            let mut collector =
                PostgresCollector::with_config(settings(&toml).expect("valid settings"));

            // Bad input: each failing server is named, reported down, and costs the
            // others nothing; the one that never answers is bounded by connect_timeout.
            let before_run = Instant::now();
            let out = run(&mut collector);
            let took = before_run.elapsed();
            assert!(took < Duration::from_secs(3), "a run took {took:?}");
            for (server, up) in [
                ("primary", 1.0),
                ("replica", 1.0),
                ("tcp", 1.0),
                ("refused", 0.0),
                ("down", 0.0),
                ("slow", 0.0),
            ] {
                assert_eq!(
                    of(&out, server, UP, &[]),
                    Some(up),
                    "{server}: {:?}",
                    out.errors
                );
            }
            let error = |server: &str| {
                out.errors
                    .iter()
                    .find(|e| e.starts_with(&format!("postgres server {server}: ")))
                    .cloned()
                    .unwrap_or_default()
            };
            assert!(
                error("refused").contains("password authentication failed for user \"monitor\""),
                "{}",
                error("refused")
            );
            assert!(
                error("down").contains("cannot connect"),
                "{}",
                error("down")
            );
            assert!(error("slow").contains("within"), "{}", error("slow"));
            assert_eq!(out.errors.len(), 3, "{:?}", out.errors);

            assert_eq!(of(&out, "primary", IS_REPLICA, &[]), Some(0.0));
            assert_eq!(of(&out, "replica", IS_REPLICA, &[]), Some(1.0));
            assert_eq!(of(&out, "primary", MAX_CONNECTIONS, &[]), Some(100.0));
            assert!(of(&out, "replica", REPLICATION_LAG, &[]).is_some());
            let version = out
                .samples
                .iter()
                .find(|s| s.name == STATIC)
                .and_then(|s| s.labels.iter().find(|(k, _)| k == "short_version"))
                .map(|(_, v)| v.clone());
            assert!(version.is_some_and(|v| v.starts_with("15.")));
            let streaming = [("state", "streaming")];
            assert!(
                of(&out, "primary", STANDBY_LAG_BYTES, &streaming).is_some(),
                "no standby"
            );
            let slot = |name| [("slot_name", name), ("slot_type", "physical")];
            assert_eq!(
                of(&out, "primary", SLOT_ACTIVE, &slot("replica_slot")),
                Some(1.0)
            );
            assert_eq!(
                of(&out, "primary", SLOT_ACTIVE, &slot("idle_slot")),
                Some(0.0)
            );
            let retained_before =
                of(&out, "primary", SLOT_RETAINED, &slot("idle_slot")).expect("retained");
            let wal_before = of(&out, "primary", "pg_stat_wal_records_total", &[]).expect("wal");
            let db = [("datname", "postgres")];
            let inserted_before =
                of(&out, "primary", "pg_stat_database_tup_inserted", &db).expect("tup");
            let deadlocks_before =
                of(&out, "primary", "pg_stat_database_deadlocks", &db).expect("deadlocks");
            assert!(of(&out, "primary", DATABASE_SIZE, &db).is_some_and(|b| b > 1e6));

            // Load: 500 rows in one transaction, a slow statement three times, a
            // deadlock, and a session left idle in a transaction that holds a lock.
            psql(
                &sock,
                port,
                "INSERT INTO t SELECT g, 0 FROM generate_series(3, 502) g",
            );
            for _ in 0..3 {
                psql(&sock, port, "SELECT pg_sleep(0.05)");
            }
            let mut a = Session::open(&sock, port);
            let mut b = Session::open(&sock, port);
            a.send("BEGIN; UPDATE t SET v = 1 WHERE id = 1;");
            let idle_in_tx =
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'";
            poll("a holds its row", || psql(&sock, port, idle_in_tx) == "1");
            b.send("BEGIN; UPDATE t SET v = 2 WHERE id = 2; UPDATE t SET v = 2 WHERE id = 1;");
            poll("b waits on a's row", || {
                psql(
                    &sock,
                    port,
                    "SELECT count(*) FROM pg_locks WHERE NOT granted",
                ) == "1"
            });
            a.send("UPDATE t SET v = 1 WHERE id = 2; COMMIT;");
            b.send("COMMIT;");
            a.close();
            b.close();
            let mut idle = Session::open(&sock, port);
            idle.send("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;");
            poll("the lock is held", || {
                psql(
                    &sock,
                    port,
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'",
                ) == "1"
            });

            let mut out = Output::default();
            poll("the statistics show the load", || {
                out = run(&mut collector);
                of(&out, "primary", "pg_stat_database_deadlocks", &db)
                    == Some(deadlocks_before + 1.0)
                    && of(&out, "primary", "pg_stat_database_tup_inserted", &db)
                        >= Some(inserted_before + 500.0)
            });
            // Exactly the rows inserted: the collector writes nothing.
            assert_eq!(
                of(&out, "primary", "pg_stat_database_tup_inserted", &db),
                Some(inserted_before + 500.0)
            );
            let idle_tx = [("datname", "postgres"), ("state", "idle in transaction")];
            assert_eq!(of(&out, "primary", ACTIVITY_COUNT, &idle_tx), Some(1.0));
            assert!(of(&out, "primary", ACTIVITY_MAX_TX, &idle_tx).is_some_and(|s| s > 0.0));
            let exclusive = [("datname", "postgres"), ("mode", "accessexclusivelock")];
            assert_eq!(of(&out, "primary", LOCKS, &exclusive), Some(1.0));
            assert!(of(&out, "primary", "pg_stat_wal_records_total", &[]) > Some(wal_before));
            poll("the idle slot retains the new WAL", || {
                let out = run(&mut collector);
                of(&out, "primary", SLOT_RETAINED, &slot("idle_slot")) > Some(retained_before)
            });
            let sleep = out
                .samples
                .iter()
                .find(|s| {
                    s.name == STATEMENT_QUERY
                        && s.labels.iter().any(|(_, v)| v.contains("pg_sleep"))
                })
                .expect("pg_sleep among the slowest statements");
            let queryid = sleep
                .labels
                .iter()
                .find(|(k, _)| k == "queryid")
                .map(|(_, v)| v.as_str())
                .expect("queryid");
            assert_eq!(
                of(&out, "primary", STATEMENT_CALLS, &[("queryid", queryid)]),
                Some(3.0)
            );
            assert_eq!(
                out.samples
                    .iter()
                    .filter(|s| s.name == STATEMENT_CALLS && s.labels[0].1 == "primary")
                    .count(),
                3
            );
            assert!(
                of(&out, "primary", DROPPED, &[("kind", "statements")]).is_some_and(|n| n > 0.0)
            );
            idle.close();

            // One kept connection per server, and a new one at once when it is cut.
            let ours =
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sysward-agent'";
            assert_eq!(
                psql(&sock, port, ours),
                "2",
                "primary over the socket and over TCP"
            );
            psql(
                &sock,
                port,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sysward-agent'",
            );
            let out = run(&mut collector);
            assert_eq!(of(&out, "primary", UP, &[]), Some(1.0), "{:?}", out.errors);
            assert_eq!(of(&out, "tcp", UP, &[]), Some(1.0), "{:?}", out.errors);
            assert_eq!(psql(&sock, port, ours), "2");

            drop(replica);
            let out = run(&mut collector);
            assert_eq!(of(&out, "replica", UP, &[]), Some(0.0));
            drop(primary);
            eprintln!("PostgreSQL test: {:?}", started.elapsed());
        }
    }
}
