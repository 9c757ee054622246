//! `mysql`: MariaDB and MySQL servers' status, named as mysqld_exporter names it.
//!
//! Off by default; nothing connects until `[[collectors.mysql.servers]]` names a server.
//! One collector holds every server: each is queried concurrently on the collector's own
//! runtime ([`crate::database`]), each sample labelled `server` with the configured name.
//! A connection is kept from run to run and made again after an error; the connection
//! attempt is bounded by `connect_timeout` and the run's budget, each statement by
//! `query_timeout` (also set on a MariaDB server as `max_statement_time`).
//!
//! Statements go over the text protocol and every value is read from its text: a NULL
//! sends no sample, a value that is not a number is reported as a partial error; nothing
//! that a server sends can panic the collector. One run is three statements: `SHOW GLOBAL
//! STATUS` and `SHOW GLOBAL VARIABLES`, each restricted to a fixed list of variables
//! ([`STATUS`], [`VARIABLES`]) so that the series are bounded (not the server's ~500), and
//! the replica's status (`SHOW REPLICA STATUS` on MariaDB 10.5 and MySQL 8.0.22 and later,
//! `SHOW SLAVE STATUS` before), which may fail alone (a user without `SLAVE MONITOR`).
//!
//! Names are mysqld_exporter 0.14's, checked against its output for MariaDB 10.11:
//! `mysql_global_status_<variable, lower-cased>`, the buffer pool's pages by `state`,
//! `mysql_global_variables_<variable>`, `mysql_slave_status_<column, lower-cased>` (MySQL
//! 8's `Replica_*`/`Source_*` columns read as the `Slave_*`/`Master_*` ones); the exporter
//! sends the status values untyped, the collector types them. What it lacks is
//! `sysward_mysql_*`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde::Deserialize;

use crate::database;
use crate::settings::{self, HumanDuration};
use crate::{CollectError, Collector, Kind, Output, Sample};

const NAME: &str = "mysql";

/// 1 when the server answered this run, else 0 (gauge; label `server`).
pub const UP: &str = "mysql_up";
/// 1, labelled `version`, `version_comment` and `innodb_version` (gauge).
pub const VERSION_INFO: &str = "mysql_version_info";
/// Buffer pool pages by `state`: `data`, `free`, `misc`, `old` (gauge).
pub const BUFFER_POOL_PAGES: &str = "mysql_global_status_buffer_pool_pages";
/// Dirty pages of the buffer pool (gauge).
pub const BUFFER_POOL_DIRTY_PAGES: &str = "mysql_global_status_buffer_pool_dirty_pages";
/// Pages of the buffer pool in all, which mysqld_exporter leaves out (gauge).
pub const BUFFER_POOL_PAGES_TOTAL: &str =
    "sysward_mysql_global_status_innodb_buffer_pool_pages_total";
/// `max_connections` (gauge).
pub const MAX_CONNECTIONS: &str = "mysql_global_variables_max_connections";
/// On a replica, seconds behind its primary; no sample while the SQL thread is stopped.
pub const SECONDS_BEHIND_MASTER: &str = "mysql_slave_status_seconds_behind_master";
/// On a replica, 1 when the I/O thread runs, 0 when stopped or connecting.
pub const SLAVE_IO_RUNNING: &str = "mysql_slave_status_slave_io_running";
/// On a replica, 1 when the SQL thread runs.
pub const SLAVE_SQL_RUNNING: &str = "mysql_slave_status_slave_sql_running";

/// The global status variables sent, with their kind, as
/// `mysql_global_status_<lower-cased name>`.
pub const STATUS: [(&str, Kind); 30] = [
    ("Aborted_clients", Kind::Counter),
    ("Aborted_connects", Kind::Counter),
    ("Bytes_received", Kind::Counter),
    ("Bytes_sent", Kind::Counter),
    ("Connections", Kind::Counter),
    ("Created_tmp_disk_tables", Kind::Counter),
    ("Created_tmp_tables", Kind::Counter),
    ("Innodb_buffer_pool_bytes_data", Kind::Gauge),
    ("Innodb_buffer_pool_bytes_dirty", Kind::Gauge),
    ("Innodb_buffer_pool_read_requests", Kind::Counter),
    ("Innodb_buffer_pool_reads", Kind::Counter),
    ("Innodb_buffer_pool_wait_free", Kind::Counter),
    ("Innodb_buffer_pool_write_requests", Kind::Counter),
    ("Innodb_page_size", Kind::Gauge),
    ("Innodb_row_lock_current_waits", Kind::Gauge),
    ("Innodb_row_lock_time", Kind::Counter),
    ("Innodb_row_lock_waits", Kind::Counter),
    ("Max_used_connections", Kind::Gauge),
    ("Open_tables", Kind::Gauge),
    ("Opened_tables", Kind::Counter),
    ("Queries", Kind::Counter),
    ("Questions", Kind::Counter),
    ("Select_full_join", Kind::Counter),
    ("Slow_queries", Kind::Counter),
    ("Table_locks_waited", Kind::Counter),
    ("Threads_cached", Kind::Gauge),
    ("Threads_connected", Kind::Gauge),
    ("Threads_created", Kind::Counter),
    ("Threads_running", Kind::Gauge),
    ("Uptime", Kind::Gauge),
];

/// Buffer pool page variables read besides [`STATUS`]: `Innodb_buffer_pool_pages_<state>`.
const PAGE_STATES: [&str; 6] = ["data", "free", "misc", "old", "dirty", "total"];

/// The global variables sent as `mysql_global_variables_<name>` (gauges).
pub const VARIABLES: [&str; 4] = [
    "innodb_buffer_pool_size",
    "long_query_time",
    "max_connections",
    "read_only",
];

/// Variables read for [`VERSION_INFO`].
const VERSION_VARIABLES: [&str; 3] = ["innodb_version", "version", "version_comment"];

/// Replica status columns sent as `mysql_slave_status_<lower-cased column>` (gauges).
const REPLICA_COLUMNS: [&str; 8] = [
    "Slave_IO_Running",
    "Slave_SQL_Running",
    "Seconds_Behind_Master",
    "Last_IO_Errno",
    "Last_SQL_Errno",
    "Read_Master_Log_Pos",
    "Exec_Master_Log_Pos",
    "Relay_Log_Space",
];

/// Where one server is and how to log in.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `server` label of its samples; unique within the collector.
    pub name: String,
    /// Socket or host and port, user; TLS off, statements cached none.
    pub connect: mysql_async::OptsBuilder,
    /// A file holding the password, read at each connection.
    pub password_file: Option<PathBuf>,
}

/// How the `mysql` collector reaches its servers.
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// The servers; none: the collector does nothing.
    pub servers: Vec<ServerConfig>,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// The longest one statement may take.
    pub query_timeout: Duration,
    /// The longest one run may take for one server, connection included.
    pub run_budget: Duration,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            query_timeout: Duration::from_secs(2),
            run_budget: Duration::from_secs(8),
        }
    }
}

/// `[collectors.mysql]` in `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MysqlSettings {
    servers: Option<Vec<ServerSettings>>,
    connect_timeout: Option<HumanDuration>,
    query_timeout: Option<HumanDuration>,
    run_budget: Option<HumanDuration>,
}

/// One `[[collectors.mysql.servers]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSettings {
    name: String,
    url: Option<String>,
    socket: Option<PathBuf>,
    user: Option<String>,
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
        let connect = match (&self.url, &self.socket) {
            (Some(url), None) => {
                if self.user.is_some() {
                    return Err(bad("give the user in the url".into()));
                }
                let opts = mysql_async::Opts::from_url(url)
                    .map_err(|error| bad(format!("bad url: {error}")))?;
                mysql_async::OptsBuilder::from_opts(opts)
            }
            (None, Some(socket)) => {
                if !socket.is_absolute() {
                    return Err(bad("socket must be an absolute path".into()));
                }
                mysql_async::OptsBuilder::default()
                    .socket(Some(socket.to_string_lossy()))
                    .user(Some(self.user.as_deref().unwrap_or("root")))
            }
            _ => return Err(bad("give either url or socket".into())),
        };
        if let Some(path) = &self.password_file
            && !path.is_absolute()
        {
            return Err(bad("password_file must be an absolute path".into()));
        }
        Ok(ServerConfig {
            name: self.name,
            // Over TCP, stay on TCP: the driver would otherwise move to the server's socket.
            connect: connect.prefer_socket(false).stmt_cache_size(0),
            password_file: self.password_file,
        })
    }
}

impl MysqlConfig {
    /// The configuration a `[collectors.mysql]` table asks for, the agent's own keys left
    /// out: `servers` (an array of tables with `name` and either `url`
    /// (`mysql://user@host:port`) or `socket` with `user`; `password_file`),
    /// `connect_timeout`, `query_timeout`, `run_budget`.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: MysqlSettings = settings::parse(NAME, table)?;
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
            query_timeout: settings::positive(
                NAME,
                "query_timeout",
                s.query_timeout,
                default.query_timeout,
            )?,
            run_budget: settings::positive(NAME, "run_budget", s.run_budget, default.run_budget)?,
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
    conn: mysql_async::Conn,
    /// The statement that shows the replica's status; `None` once refused.
    replica_status: Option<&'static str>,
}

/// One server's state, moved into its task for a run and back.
struct ServerState {
    config: Arc<ServerConfig>,
    session: Option<Session>,
}

/// Reads the configured MariaDB and MySQL servers.
pub struct MysqlCollector {
    config: Arc<MysqlConfig>,
    /// One per server, in configuration order; `None` only while a run holds it.
    servers: Vec<Option<ServerState>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for MysqlCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlCollector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MysqlCollector {
    /// A collector for the given servers.
    pub fn with_config(config: MysqlConfig) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|server| {
                Some(ServerState {
                    config: Arc::new(server.clone()),
                    session: None,
                })
            })
            .collect();
        Self {
            config: Arc::new(config),
            servers,
            runtime: None,
        }
    }
}

impl Collector for MysqlCollector {
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
    type Config = MysqlConfig;
    const COLLECTOR: &'static str = NAME;
    const UP: &'static str = UP;

    fn name(&self) -> &str {
        &self.config.name
    }

    fn fresh(&self) -> Self {
        ServerState {
            config: self.config.clone(),
            session: None,
        }
    }

    fn read(
        &mut self,
        config: &MysqlConfig,
        deadline: tokio::time::Instant,
        out: &mut Output,
    ) -> impl Future<Output = Result<(), String>> + Send {
        run_server(self, config, deadline, out)
    }

    fn disconnect(&mut self) {
        self.session = None;
    }
}

/// One statement's rows, each a list of values as text (`None` for NULL), with the
/// column names.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

async fn query(
    conn: &mut mysql_async::Conn,
    sql: &str,
    config: &MysqlConfig,
    deadline: tokio::time::Instant,
) -> Result<Rows, String> {
    let wait = database::within(deadline, config.query_timeout);
    let rows: Vec<mysql_async::Row> = tokio::time::timeout(wait, conn.query(sql))
        .await
        .map_err(|_| format!("no answer to {sql:?} within {wait:?}"))?
        .map_err(|error| format!("{sql}: {error}"))?;
    let columns = rows
        .first()
        .map(|row| {
            row.columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| text(row.as_ref(i))).collect())
        .collect();
    Ok(Rows { columns, rows })
}

/// A value as the text protocol sends it; the other variants are formatted the same way.
fn text(value: Option<&mysql_async::Value>) -> Option<String> {
    use mysql_async::Value;
    match value? {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// One run against one server: connects when it must and reads the status.
async fn run_server(
    state: &mut ServerState,
    config: &MysqlConfig,
    deadline: tokio::time::Instant,
    out: &mut Output,
) -> Result<(), String> {
    let reused = state.session.is_some();
    if !reused {
        state.session = Some(connect(&state.config, config, deadline).await?);
    }
    let Some(mut session) = state.session.take() else {
        return Ok(());
    };
    let status = match query(&mut session.conn, &status_query(), config, deadline).await {
        Ok(rows) => rows,
        // A kept connection the server closed since the last run (a restart, a KILL, its
        // wait_timeout): connect again at once, so that a server that is back is not
        // reported down.
        Err(_) if reused => {
            session = connect(&state.config, config, deadline).await?;
            query(&mut session.conn, &status_query(), config, deadline).await?
        }
        Err(error) => return Err(error),
    };
    let variables = query(&mut session.conn, &variables_query(), config, deadline).await?;
    let session = state.session.insert(session);
    let mut emit = Emit {
        server: &state.config.name,
        out,
    };
    emit.map_status(&status);
    emit.map_variables(&variables);
    if let Some(sql) = session.replica_status {
        match query(&mut session.conn, sql, config, deadline).await {
            Ok(rows) => emit.map_replica(&rows),
            Err(error) => {
                emit.out
                    .error(format!("mysql server {}: {error}", state.config.name));
                // Refused (no SLAVE MONITOR): do not ask again on this connection. A
                // timeout leaves the connection unusable: connect again next run.
                session.replica_status = None;
                if error.starts_with("no answer") {
                    state.session = None;
                }
            }
        }
    }
    Ok(())
}

async fn connect(
    server: &ServerConfig,
    config: &MysqlConfig,
    deadline: tokio::time::Instant,
) -> Result<Session, String> {
    let mut opts = server.connect.clone();
    if let Some(path) = &server.password_file {
        opts = opts.pass(Some(database::read_password(path)?));
    }
    let wait = database::within(deadline, config.connect_timeout);
    let mut conn = tokio::time::timeout(wait, mysql_async::Conn::new(opts))
        .await
        .map_err(|_| format!("cannot connect within {wait:?}"))?
        .map_err(|error| format!("cannot connect: {error}"))?;
    let (major, minor, patch) = conn.server_version();
    let version = query(&mut conn, "SELECT @@version", config, deadline).await?;
    let mariadb = version
        .rows
        .first()
        .and_then(|row| row.first().cloned().flatten())
        .is_some_and(|v| v.contains("MariaDB"));
    if mariadb {
        let seconds = config.query_timeout.as_secs_f64();
        query(
            &mut conn,
            &format!("SET SESSION max_statement_time = {seconds}"),
            config,
            deadline,
        )
        .await?;
    }
    let replica = if (mariadb && (major, minor) >= (10, 5))
        || (!mariadb && (major, minor, patch) >= (8, 0, 22))
    {
        "SHOW REPLICA STATUS"
    } else {
        "SHOW SLAVE STATUS"
    };
    Ok(Session {
        conn,
        replica_status: Some(replica),
    })
}

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",")
}

fn status_query() -> String {
    let pages = PAGE_STATES
        .iter()
        .map(|state| format!("Innodb_buffer_pool_pages_{state}"))
        .collect::<Vec<_>>();
    let names = STATUS
        .iter()
        .map(|(n, _)| *n)
        .chain(pages.iter().map(String::as_str));
    format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        quoted_list(names)
    )
}

fn variables_query() -> String {
    let names = VARIABLES.iter().chain(&VERSION_VARIABLES).copied();
    format!(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})",
        quoted_list(names)
    )
}

/// A number from a status value: `database::number`, with mysqld_exporter's reading of
/// `Connecting` (a replica's I/O thread not running yet) as 0.
fn number(column: &str, value: Option<&str>) -> Result<Option<f64>, String> {
    match value.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("connecting") => Ok(Some(0.0)),
        value => database::number(column, value),
    }
}

/// Turns the rows of one server's statements into samples: pure, tested on rows written
/// by hand.
struct Emit<'a> {
    server: &'a str,
    out: &'a mut Output,
}

impl Emit<'_> {
    fn push(
        &mut self,
        name: &str,
        kind: Kind,
        value: Option<&str>,
        labels: &[(&'static str, &str)],
    ) {
        match number(name, value) {
            Ok(Some(value)) => {
                let mut sample =
                    Sample::new(name.to_owned(), kind, value).label("server", self.server);
                for (label, v) in labels {
                    sample = sample.label(*label, *v);
                }
                self.out.push(sample);
            }
            Ok(None) => {}
            Err(error) => self
                .out
                .error(format!("mysql server {}: {error}", self.server)),
        }
    }

    /// `SHOW GLOBAL STATUS` rows: `Variable_name`, `Value`.
    fn map_status(&mut self, rows: &Rows) {
        for row in &rows.rows {
            let (Some(Some(name)), value) = (row.first(), row.get(1).cloned().flatten()) else {
                continue;
            };
            let value = value.as_deref();
            let lower = name.to_ascii_lowercase();
            if let Some(state) = lower.strip_prefix("innodb_buffer_pool_pages_") {
                match state {
                    "dirty" => self.push(BUFFER_POOL_DIRTY_PAGES, Kind::Gauge, value, &[]),
                    "total" => self.push(BUFFER_POOL_PAGES_TOTAL, Kind::Gauge, value, &[]),
                    state if PAGE_STATES.contains(&state) => {
                        self.push(BUFFER_POOL_PAGES, Kind::Gauge, value, &[("state", state)])
                    }
                    _ => {}
                }
                continue;
            }
            let Some((_, kind)) = STATUS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
                continue;
            };
            self.push(&format!("mysql_global_status_{lower}"), *kind, value, &[]);
        }
    }

    /// `SHOW GLOBAL VARIABLES` rows: `Variable_name`, `Value`.
    fn map_variables(&mut self, rows: &Rows) {
        let mut version = [""; 3];
        for row in &rows.rows {
            let (Some(Some(name)), value) = (row.first(), row.get(1).cloned().flatten()) else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if let Some(i) = VERSION_VARIABLES.iter().position(|v| *v == lower) {
                version[i] = match row.get(1) {
                    Some(Some(v)) => v.as_str(),
                    _ => "",
                };
            } else if VARIABLES.contains(&lower.as_str()) {
                self.push(
                    &format!("mysql_global_variables_{lower}"),
                    Kind::Gauge,
                    value.as_deref(),
                    &[],
                );
            }
        }
        if !version[1].is_empty() {
            let labels = [
                ("innodb_version", version[0]),
                ("version", version[1]),
                ("version_comment", version[2]),
            ];
            self.push(VERSION_INFO, Kind::Gauge, Some("1"), &labels);
        }
    }

    /// The replica's status: one row per replication channel, none on a primary.
    fn map_replica(&mut self, rows: &Rows) {
        let columns: Vec<String> = rows.columns.iter().map(|c| exporter_column(c)).collect();
        let index = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        for row in &rows.rows {
            let at = |name: &str| index(name).and_then(|i| row.get(i).cloned().flatten());
            let labels = [
                ("channel_name", at("Channel_Name").unwrap_or_default()),
                ("connection_name", at("Connection_name").unwrap_or_default()),
                ("master_host", at("Master_Host").unwrap_or_default()),
                ("master_uuid", at("Master_UUID").unwrap_or_default()),
            ];
            let labels: Vec<(&'static str, &str)> =
                labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            for column in REPLICA_COLUMNS {
                let lower = column.to_ascii_lowercase();
                self.push(
                    &format!("mysql_slave_status_{lower}"),
                    Kind::Gauge,
                    at(column).as_deref(),
                    &labels,
                );
            }
        }
    }
}

/// MySQL 8's replica column names as the `SHOW SLAVE STATUS` ones mysqld_exporter names.
fn exporter_column(column: &str) -> String {
    column
        .replace("Replica", "Slave")
        .replace("Source", "Master")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::value;

    fn rows(columns: &[&str], rows: &[&[Option<&str>]]) -> Rows {
        Rows {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
                .collect(),
        }
    }

    #[test]
    fn status_rows_map_to_mysqld_exporter_names_and_only_the_allowlist() {
        let status = rows(
            &["Variable_name", "Value"],
            &[
                &[Some("Threads_connected"), Some("3")],
                &[Some("Queries"), Some("120")],
                &[Some("Innodb_buffer_pool_pages_data"), Some("169")],
                &[Some("Innodb_buffer_pool_pages_dirty"), Some("18")],
                &[Some("Innodb_buffer_pool_pages_total"), Some("1014")],
                &[Some("Innodb_row_lock_time"), Some("250")],
                &[Some("Com_select"), Some("9")],
                &[Some("Slow_queries"), Some("lots")],
                &[Some("Uptime"), None],
                &[None, Some("1")],
                &[Some("Open_tables")],
            ],
        );
        let variables = rows(
            &["Variable_name", "Value"],
            &[
                &[Some("max_connections"), Some("151")],
                &[Some("read_only"), Some("OFF")],
                &[Some("version"), Some("10.11.14-MariaDB-0+deb12u2")],
                &[Some("version_comment"), Some("Debian 12")],
            ],
        );
        let mut out = Output::default();
        let mut emit = Emit {
            server: "main",
            out: &mut out,
        };
        emit.map_status(&status);
        emit.map_variables(&variables);
        assert_eq!(
            value(&out.samples, "mysql_global_status_threads_connected", &[]),
            Some(3.0)
        );
        assert_eq!(
            value(&out.samples, "mysql_global_status_queries", &[]),
            Some(120.0)
        );
        assert_eq!(
            value(&out.samples, BUFFER_POOL_PAGES, &[("state", "data")]),
            Some(169.0)
        );
        assert_eq!(
            value(&out.samples, BUFFER_POOL_DIRTY_PAGES, &[]),
            Some(18.0)
        );
        assert_eq!(
            value(&out.samples, BUFFER_POOL_PAGES_TOTAL, &[]),
            Some(1014.0)
        );
        assert_eq!(value(&out.samples, MAX_CONNECTIONS, &[]), Some(151.0));
        assert_eq!(
            value(&out.samples, "mysql_global_variables_read_only", &[]),
            Some(0.0)
        );
        let version = [
            ("version", "10.11.14-MariaDB-0+deb12u2"),
            ("innodb_version", ""),
        ];
        assert_eq!(value(&out.samples, VERSION_INFO, &version), Some(1.0));
        assert_eq!(
            value(&out.samples, "mysql_global_status_com_select", &[]),
            None
        );
        assert_eq!(
            out.errors,
            [
                "mysql server main: column mysql_global_status_slow_queries: \"lots\" is not a number"
            ]
        );
        assert_eq!(out.samples.len(), 9);
        assert!(
            out.samples
                .iter()
                .all(|s| s.labels[0] == ("server".into(), "main".into()))
        );
        let kind = |name: &str| out.samples.iter().find(|s| s.name == name).map(|s| s.kind);
        assert_eq!(kind("mysql_global_status_queries"), Some(Kind::Counter));
        assert_eq!(
            kind("mysql_global_status_threads_connected"),
            Some(Kind::Gauge)
        );
    }

    #[test]
    fn replica_status_reads_mysql_8_columns_and_connecting_as_not_running() {
        let replica = rows(
            &[
                "Source_Host",
                "Replica_IO_Running",
                "Replica_SQL_Running",
                "Seconds_Behind_Source",
                "Channel_Name",
            ],
            &[&[
                Some("10.0.0.1"),
                Some("Connecting"),
                Some("Yes"),
                None,
                Some(""),
            ]],
        );
        let mut out = Output::default();
        Emit {
            server: "r",
            out: &mut out,
        }
        .map_replica(&replica);
        let labels = [("master_host", "10.0.0.1")];
        assert_eq!(value(&out.samples, SLAVE_IO_RUNNING, &labels), Some(0.0));
        assert_eq!(value(&out.samples, SLAVE_SQL_RUNNING, &labels), Some(1.0));
        assert_eq!(value(&out.samples, SECONDS_BEHIND_MASTER, &[]), None);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let mut out = Output::default();
        Emit {
            server: "p",
            out: &mut out,
        }
        .map_replica(&rows(&[], &[]));
        assert!(out.samples.is_empty() && out.errors.is_empty());
    }

    fn settings(text: &str) -> Result<MysqlConfig, String> {
        MysqlConfig::from_table(&toml::from_str(text).expect("valid TOML"))
    }

    #[test]
    fn settings_read_servers_and_refuse_bad_ones() {
        let config = settings(
            "query_timeout = \"1s\"\n\
             [[servers]]\nname = \"main\"\nurl = \"mysql://mon@127.0.0.1:3307\"\n\
             password_file = \"/etc/sysward/my.pass\"\n\
             [[servers]]\nname = \"local\"\nsocket = \"/run/mysqld/mysqld.sock\"\n",
        )
        .expect("valid");
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.query_timeout, Duration::from_secs(1));
        let opts = mysql_async::Opts::from(config.servers[0].connect.clone());
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(opts.user(), Some("mon"));
        assert!(!opts.prefer_socket());
        let opts = mysql_async::Opts::from(config.servers[1].connect.clone());
        assert_eq!(opts.socket(), Some("/run/mysqld/mysqld.sock"));
        assert_eq!(opts.user(), Some("root"));
        assert!(settings("").expect("empty").servers.is_empty());
        let cases = [
            (
                "[[servers]]\nname = \"a\"\n",
                "bad setting `servers` for collector mysql: a: give either url or socket",
            ),
            (
                "[[servers]]\nname = \"a\"\nurl = \"postgres://x\"\n",
                "bad setting `servers` for collector mysql: a: bad url: ",
            ),
            (
                "[[servers]]\nname = \"a\"\nsocket = \"run/sock\"\n",
                "bad setting `servers` for collector mysql: a: socket must be an absolute path",
            ),
            (
                "[[servers]]\nname = \"a\"\nsocket = \"/s\"\n[[servers]]\nname = \"a\"\nsocket = \"/s\"\n",
                "bad setting `servers` for collector mysql: two servers are named \"a\"",
            ),
            (
                "connect_timeout = \"9s\"",
                "bad setting `connect_timeout` for collector mysql: must not be more than run_budget",
            ),
        ];
        for (text, expected) in cases {
            let error = settings(text).expect_err(text);
            assert!(error.starts_with(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_collector_without_servers_does_nothing() {
        let mut collector = MysqlCollector::with_config(MysqlConfig::default());
        let mut out = Output::default();
        collector.collect(&mut out).expect("collects");
        assert!(out.samples.is_empty() && out.errors.is_empty());
        assert!(collector.runtime.is_none());
    }

    /// Against real MariaDB servers started by the test, a primary and a replica of it
    /// (as the `mysql` user, so as root). Under `CI` a missing program or privilege fails the test; elsewhere it is
    /// skipped, saying why.
    #[cfg(target_os = "linux")]
    mod real {
        use std::path::{Path, PathBuf};
        use std::process::Command;
        use std::time::{Duration, Instant};

        use super::*;
        use crate::test_servers::{Running, free_port, have, wait_until};

        const SERVER: &str = "/usr/sbin/mariadbd";
        const INSTALL: &str = "/usr/bin/mariadb-install-db";
        const CLIENT: &str = "/usr/bin/mariadb";

        fn skip(why: &str) -> bool {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the MariaDB test: {why}"
            );
            eprintln!("skipping the MariaDB test: {why}");
            true
        }

        /// The scratch directory, removed on drop (after the servers, declared later).
        struct Scratch(PathBuf);

        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        /// `mariadb` over the socket as root, returning its tab-separated output.
        fn sql(sock: &Path, statements: &str) -> String {
            let out = Command::new(CLIENT)
                .arg("--no-defaults")
                .arg("-S")
                .arg(sock)
                .args(["-uroot", "-N", "-B", "-e", statements])
                .output()
                .expect("mariadb runs");
            assert!(
                out.status.success(),
                "{statements}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }

        /// A connection of the test's own over the socket as root, with its runtime.
        fn client(sock: &Path) -> (tokio::runtime::Runtime, mysql_async::Conn) {
            let runtime = database::runtime().expect("a runtime");
            let opts = mysql_async::OptsBuilder::default()
                .socket(Some(sock.to_string_lossy()))
                .user(Some("root"))
                .db_name(Some("test"));
            let conn = runtime
                .block_on(mysql_async::Conn::new(opts))
                .expect("root connects");
            (runtime, conn)
        }

        fn run(collector: &mut MysqlCollector) -> Output {
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

        fn status(out: &Output, server: &str, variable: &str) -> f64 {
            of(out, server, &format!("mysql_global_status_{variable}"), &[])
                .unwrap_or_else(|| panic!("{server}: no {variable}: {:?}", out.errors))
        }

        /// CPU of a process (user + system), in seconds.
        fn cpu_of(pid: &str) -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
            let after = &stat[stat.rfind(')').expect("comm") + 2..];
            let fields: Vec<&str> = after.split(' ').collect();
            let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
            (ticks(11) + ticks(12)) / 100.0
        }

        /// A measurement, not a check: `SYSWARD_MY_BENCH=SOCKET:SERVER_PID cargo test
        /// --release -p sysward-collectors --lib mysql_cpu_per_run -- --ignored
        /// --nocapture`, root over the socket; the server's CPU is the whole mariadbd's.
        #[test]
        #[ignore = "a measurement against a server of your own"]
        fn mysql_cpu_per_run() {
            let Some((sock, pid)) = std::env::var("SYSWARD_MY_BENCH").ok().and_then(|v| {
                v.rsplit_once(':')
                    .map(|(s, p)| (s.to_owned(), p.to_owned()))
            }) else {
                panic!("set SYSWARD_MY_BENCH=SOCKET:SERVER_PID");
            };
            let toml = format!("[[servers]]\nname = \"bench\"\nsocket = \"{sock}\"\n");
            let mut collector = MysqlCollector::with_config(settings(&toml).expect("valid"));
            let first = run(&mut collector);
            assert_eq!(
                of(&first, "bench", UP, &[]),
                Some(1.0),
                "{:?}",
                first.errors
            );
            let runs = 200;
            let (cpu, server, wall) = (cpu_of("self"), cpu_of(&pid), Instant::now());
            let mut samples = 0;
            for _ in 0..runs {
                samples += run(&mut collector).samples.len();
            }
            let (cpu, server) = (cpu_of("self") - cpu, cpu_of(&pid) - server);
            eprintln!(
                "{runs} runs, {} samples each: {:.3} ms CPU, server {:.3} ms, \
                 {:.3} ms wall per run",
                samples / runs,
                cpu * 1000.0 / runs as f64,
                server * 1000.0 / runs as f64,
                wall.elapsed().as_secs_f64() * 1000.0 / runs as f64
            );
        }

        #[test]
        fn a_real_mariadb_reports_what_the_load_did() {
            let started = Instant::now();
            if !have(SERVER, "mariadb-server")
                || !have(INSTALL, "mariadb-server")
                || !have(CLIENT, "mariadb-client-core")
            {
                return;
            }
            if !nix::unistd::geteuid().is_root() {
                skip("mariadbd runs as the mysql user: the test needs root");
                return;
            }
            let dir =
                Scratch(std::env::temp_dir().join(format!("sysward-my-{}", std::process::id())));
            let _ = std::fs::remove_dir_all(&dir.0);
            std::fs::create_dir_all(&dir.0).expect("mkdir");
            let owned = Command::new("chown")
                .args(["mysql:", dir.0.to_str().expect("utf-8")])
                .status()
                .is_ok_and(|s| s.success());
            if !owned {
                skip("no mysql user to own the data directory");
                return;
            }
            // The primary, with a binary log, and a replica of it.
            let start = |name: &str, id: u32| {
                let data = dir.0.join(name);
                let install = Command::new(INSTALL)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .args([
                        "--user=mysql",
                        "--auth-root-authentication-method=normal",
                        "--skip-test-db",
                    ])
                    .output()
                    .expect("mariadb-install-db runs");
                assert!(
                    install.status.success(),
                    "mariadb-install-db: {}",
                    String::from_utf8_lossy(&install.stderr)
                );
                let (sock, port) = (dir.0.join(format!("{name}.sock")), free_port());
                let mut command = Command::new(SERVER);
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--socket={}", sock.display()))
                    .arg(format!(
                        "--pid-file={}",
                        dir.0.join(format!("{name}.pid")).display()
                    ))
                    .arg(format!(
                        "--log-error={}",
                        dir.0.join(format!("{name}.log")).display()
                    ))
                    .arg(format!(
                        "--log-bin={}",
                        dir.0.join(format!("{name}-bin")).display()
                    ))
                    .arg(format!("--port={port}"))
                    .arg(format!("--server-id={id}"))
                    .args([
                        "--bind-address=127.0.0.1",
                        "--user=mysql",
                        "--innodb-buffer-pool-size=16M",
                        "--innodb-flush-log-at-trx-commit=0",
                        "--long-query-time=0.1",
                        "--innodb-lock-wait-timeout=10",
                    ]);
                (Running::start(command, port), sock, port)
            };
            let (server, sock, port) = start("primary", 1);
            let (replica, replica_sock, _) = start("replica", 2);
            sql(
                &sock,
                "CREATE USER repl@'127.0.0.1' IDENTIFIED BY 'repl'; \
                 GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'",
            );
            sql(
                &replica_sock,
                &format!(
                    "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
                     MASTER_USER = 'repl', MASTER_PASSWORD = 'repl', \
                     MASTER_USE_GTID = slave_pos; START SLAVE"
                ),
            );
            sql(
                &sock,
                "CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
                 INSERT INTO test.t VALUES (1, 0), (2, 0); \
                 CREATE USER sysward@'127.0.0.1' IDENTIFIED BY 'right'; \
                 GRANT SLAVE MONITOR ON *.* TO sysward@'127.0.0.1'",
            );

            std::fs::write(dir.0.join("right.pass"), "right\n").expect("write");
            std::fs::write(dir.0.join("wrong.pass"), "wrong\n").expect("write");
            let slow = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let slow_port = slow.local_addr().expect("addr").port();
            let closed_port = free_port();
            let toml = format!(
                "connect_timeout = \"1s\"\nrun_budget = \"5s\"\n\
                 [[servers]]\nname = \"socket\"\nsocket = \"{sock}\"\n\
                 [[servers]]\nname = \"replica\"\nsocket = \"{replica_sock}\"\n\
                 [[servers]]\nname = \"tcp\"\nurl = \"mysql://sysward@127.0.0.1:{port}\"\n\
                 password_file = \"{dir}/right.pass\"\n\
                 [[servers]]\nname = \"refused\"\nurl = \"mysql://sysward@127.0.0.1:{port}\"\n\
                 password_file = \"{dir}/wrong.pass\"\n\
                 [[servers]]\nname = \"down\"\nurl = \"mysql://sysward@127.0.0.1:{closed_port}\"\n\
                 [[servers]]\nname = \"slow\"\nurl = \"mysql://sysward@127.0.0.1:{slow_port}\"\n",
                sock = sock.display(),
                replica_sock = replica_sock.display(),
                dir = dir.0.display(),
            );
            let mut collector = MysqlCollector::with_config(settings(&toml).expect("valid"));

            // Bad input: each failing server is named, reported down, and costs the
            // others nothing; the one that never answers is bounded by connect_timeout.
            let before_run = Instant::now();
            let out = run(&mut collector);
            let took = before_run.elapsed();
            assert!(took < Duration::from_secs(3), "a run took {took:?}");
            for (name, up) in [
                ("socket", 1.0),
                ("replica", 1.0),
                ("tcp", 1.0),
                ("refused", 0.0),
                ("down", 0.0),
                ("slow", 0.0),
            ] {
                assert_eq!(
                    of(&out, name, UP, &[]),
                    Some(up),
                    "{name}: {:?}",
                    out.errors
                );
            }
            let error = |name: &str| {
                out.errors
                    .iter()
                    .find(|e| e.starts_with(&format!("mysql server {name}: ")))
                    .cloned()
                    .unwrap_or_default()
            };
            assert!(
                error("refused").contains("Access denied for user 'sysward'"),
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

            assert_eq!(of(&out, "tcp", MAX_CONNECTIONS, &[]), Some(151.0));
            assert!(status(&out, "tcp", "threads_connected") >= 2.0);
            assert!(status(&out, "tcp", "threads_running") >= 1.0);
            for state in ["data", "free"] {
                assert!(
                    of(&out, "tcp", BUFFER_POOL_PAGES, &[("state", state)])
                        .is_some_and(|p| p > 0.0),
                    "{state}"
                );
            }
            assert!(of(&out, "tcp", BUFFER_POOL_PAGES_TOTAL, &[]).is_some_and(|p| p > 0.0));
            assert!(status(&out, "tcp", "innodb_buffer_pool_bytes_data") > 0.0);
            assert!(status(&out, "tcp", "innodb_buffer_pool_read_requests") > 0.0);
            assert!(
                of(
                    &out,
                    "tcp",
                    "mysql_global_variables_innodb_buffer_pool_size",
                    &[]
                ) == Some(16.0 * 1024.0 * 1024.0)
            );
            let version = out
                .samples
                .iter()
                .find(|s| s.name == VERSION_INFO)
                .and_then(|s| s.labels.iter().find(|(k, _)| k == "version"))
                .map(|(_, v)| v.clone());
            assert!(version.is_some_and(|v| v.contains("MariaDB")));
            // A primary: no replica series.
            assert_eq!(of(&out, "tcp", SLAVE_IO_RUNNING, &[]), None);

            // Load: 50 queries, a slow one, a row lock wait.
            let queries = status(&out, "tcp", "queries");
            let slow_queries = status(&out, "tcp", "slow_queries");
            let lock_waits = status(&out, "tcp", "innodb_row_lock_waits");
            sql(&sock, &"SELECT 1;".repeat(50));
            sql(&sock, "SELECT SLEEP(0.2)");
            let out = run(&mut collector);
            assert!(status(&out, "tcp", "queries") >= queries + 51.0);
            assert_eq!(status(&out, "tcp", "slow_queries"), slow_queries + 1.0);
            let (a_runtime, mut a) = client(&sock);
            a_runtime
                .block_on(a.query_drop("BEGIN; UPDATE t SET v = 1 WHERE id = 1"))
                .expect("a takes the row");
            let b_sock = sock.clone();
            let b = std::thread::spawn(move || {
                let (runtime, mut b) = client(&b_sock);
                runtime
                    .block_on(b.query_drop("UPDATE t SET v = 2 WHERE id = 1"))
                    .expect("b gets the row once a commits");
            });
            let mut out = Output::default();
            // b must wait longer than long_query_time (0.1 s) to be a slow query: keep a's
            // lock until b has been seen waiting for 0.3 s.
            let mut seen_waiting: Option<Instant> = None;
            wait_until(Duration::from_secs(10), "b waits on a's row", || {
                out = run(&mut collector);
                let waiting = of(
                    &out,
                    "tcp",
                    "mysql_global_status_innodb_row_lock_current_waits",
                    &[],
                ) == Some(1.0);
                if waiting {
                    let since = *seen_waiting.get_or_insert_with(Instant::now);
                    return since.elapsed() >= Duration::from_millis(300);
                }
                false
            });
            a_runtime
                .block_on(a.query_drop("COMMIT"))
                .expect("a commits");
            b.join().expect("b ends");
            drop(a);
            wait_until(Duration::from_secs(10), "the status shows the load", || {
                out = run(&mut collector);
                status(&out, "tcp", "innodb_row_lock_waits") >= lock_waits + 1.0
            });
            // The update that waited on the lock for longer than long_query_time is slow too.
            assert_eq!(status(&out, "tcp", "slow_queries"), slow_queries + 2.0);
            assert_eq!(
                status(&out, "tcp", "innodb_row_lock_waits"),
                lock_waits + 1.0
            );
            assert!(status(&out, "tcp", "innodb_row_lock_time") > 0.0);
            assert_eq!(
                of(
                    &out,
                    "tcp",
                    "mysql_global_status_innodb_row_lock_current_waits",
                    &[]
                ),
                Some(0.0)
            );

            // One kept connection per server, and a new one at once when it is cut.
            let ours = "SELECT count(*) FROM information_schema.processlist WHERE user = 'sysward'";
            assert_eq!(sql(&sock, ours), "1");
            let id = sql(
                &sock,
                "SELECT id FROM information_schema.processlist WHERE user = 'sysward'",
            );
            sql(&sock, &format!("KILL {id}"));
            let out = run(&mut collector);
            assert_eq!(of(&out, "tcp", UP, &[]), Some(1.0), "{:?}", out.errors);
            assert_eq!(sql(&sock, ours), "1");

            // The replica, once streaming, and its threads stopped.
            let host = [("master_host", "127.0.0.1")];
            let mut out = Output::default();
            wait_until(Duration::from_secs(10), "the replica to stream", || {
                out = run(&mut collector);
                of(&out, "replica", SLAVE_IO_RUNNING, &host) == Some(1.0)
                    && of(&out, "replica", SLAVE_SQL_RUNNING, &host) == Some(1.0)
                    && of(&out, "replica", SECONDS_BEHIND_MASTER, &host) == Some(0.0)
            });
            assert!(
                of(
                    &out,
                    "replica",
                    "mysql_slave_status_read_master_log_pos",
                    &host
                )
                .is_some_and(|p| p > 0.0),
                "{:?}",
                out.errors
            );
            assert_eq!(
                of(&out, "replica", "mysql_slave_status_last_io_errno", &host),
                Some(0.0)
            );
            sql(&replica_sock, "STOP SLAVE");
            let out = run(&mut collector);
            assert_eq!(of(&out, "replica", SLAVE_IO_RUNNING, &host), Some(0.0));
            assert_eq!(of(&out, "replica", SLAVE_SQL_RUNNING, &host), Some(0.0));
            assert_eq!(of(&out, "replica", SECONDS_BEHIND_MASTER, &host), None);
            assert!(
                !out.errors.iter().any(|e| e.contains("replica")),
                "{:?}",
                out.errors
            );

            drop(replica);
            drop(server);
            let out = run(&mut collector);
            assert_eq!(of(&out, "socket", UP, &[]), Some(0.0));
            assert_eq!(of(&out, "tcp", UP, &[]), Some(0.0));
            eprintln!("MariaDB test: {:?}", started.elapsed());
        }
    }
}
