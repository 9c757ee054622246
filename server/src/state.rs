//! The server's identity state in `data_dir/state.db` (SQLite, WAL): join tokens (hashed),
//! agents and their status, admin tokens (hashed), API tokens (hashed, with a name, a role
//! and an optional expiry; see [`Role`]). The admin CLI opens the same file while
//! the server runs, so every change is one short transaction and revocation is seen by the
//! next request.
//!
//! A join token is named, in lists, by the first 16 hex digits of its hash
//! ([`JoinTokenRow::id`]): enough to delete it by, nothing to enrol with. An agent that
//! asked to join without a token keeps the address it asked from.
//!
//! Each agent row also keeps when its current certificate was signed and when it expires
//! (Unix ms): renewal is rate limited by the first, and the server's health reports the
//! second. Columns added after the table existed are added when the file is opened.
//!
//! Console users (`users`: name, role, Argon2id PHC string, see [`crate::users`]) and their
//! sign-in sessions (`ui_sessions`) came later: their tables are created when the file is
//! opened, as every table is. A session row keeps only the SHA-256 of the session id that
//! the browser holds, with the user, when it was made, last used (written at most every
//! [`SESSION_USE_EVERY_MS`], or a tenth of the idle timeout when that is shorter) and when
//! it expires whatever its use. Removing a user or changing its password deletes its
//! sessions.
//!
//! Console dashboards (`dashboards`, see [`crate::dashboards`]) keep their id (random,
//! the share link), title, owner, editors (a JSON list of user names) and the "all
//! editors" switch, the definition as JSON, the public flag, when made and changed, and a
//! version that each update raises: an update from an older version is refused.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::RngCore;

use crate::users::UserRole;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Why the state database failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("unknown join token")]
    UnknownToken,
    #[error("join token was already used")]
    UsedToken,
    #[error("join token expired")]
    ExpiredToken,
    #[error("no agent with id {0}")]
    NoSuchAgent(String),
    #[error("an API token named {0:?} exists already")]
    TokenExists(String),
    #[error("no API token named {0:?}")]
    NoSuchToken(String),
    #[error("a user named {0:?} exists already")]
    UserExists(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("no join token with id {0}")]
    NoSuchJoinToken(String),
    #[error("no dashboard with id {0:?}")]
    NoSuchDashboard(String),
    #[error("the server keeps at most {0} dashboards; delete one first")]
    TooManyDashboards(usize),
    #[error("the dashboard was changed since version {given}: it is at version {current}")]
    StaleDashboard { given: i64, current: i64 },
    #[error("a dashboard's stored JSON cannot be read: {0}")]
    BadDashboardJson(String),
}

/// What an API token may do. `Read` is for the query APIs, `Write` for remote write in,
/// `Admin` for everything `Read` may plus the admin endpoints. A write token cannot read:
/// a sender of samples learns nothing of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a token of this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self == needed || (self == Role::Admin && needed == Role::Read)
    }
}

/// One row of `api-token list`: never the secret, which is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

/// How often a token's `last_used` is written at most: an operator reads it to the
/// minute, and a dashboard sends a request per panel.
const TOKEN_USE_EVERY_MS: i64 = 60_000;

/// How often a session's `last_used` is written at most (less when the idle timeout is
/// short: a tenth of it).
pub const SESSION_USE_EVERY_MS: i64 = 60_000;

/// One row of `user list`: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub role: UserRole,
    pub created_ms: i64,
    pub password_changed_ms: i64,
}

/// A signed-in session, as [`State::session`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user: String,
    pub role: UserRole,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Where an agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Pending,
    Approved,
    Revoked,
}

impl AgentStatus {
    fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Pending => "pending",
            AgentStatus::Approved => "approved",
            AgentStatus::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "approved" => AgentStatus::Approved,
            "pending" => AgentStatus::Pending,
            // Anything unexpected is treated as the safe choice.
            _ => AgentStatus::Revoked,
        }
    }
}

/// One row of `agents list`.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub hostname: String,
    pub status: AgentStatus,
    pub last_seen_ms: Option<i64>,
    pub csr_pem: Option<String>,
    /// When its current certificate expires, Unix ms; `None` before it has one.
    pub cert_not_after_ms: Option<i64>,
    /// When it enrolled or asked to, Unix ms.
    pub created_ms: i64,
    /// The address it asked to join from (agents that asked without a token); `None` for
    /// the others, and for requests older than this column.
    pub address: Option<String>,
}

/// One join token as listed: never its secret. `id` is the start of the secret's hash,
/// enough to name it and nothing to enrol with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRow {
    pub id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
    /// The agent that enrolled with it.
    pub used_by: Option<String>,
}

/// Hex digits of a join token's hash that name it ([`JoinTokenRow::id`]).
const JOIN_TOKEN_ID_LEN: usize = 16;

/// The most join tokens [`State::list_join_tokens`] answers, newest first: `token create
/// --count` makes fleets of them.
pub const MAX_LISTED_JOIN_TOKENS: usize = 1000;

/// An approved agent whose certificate expires before some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCert {
    pub agent_id: String,
    pub hostname: String,
    /// Unix ms.
    pub not_after_ms: i64,
}

/// Whether an agent may have a new certificate signed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalSlot {
    /// Yes: the slot is taken, and the next one opens `min_gap` from now.
    Granted,
    /// Not yet: a certificate was signed for it less than `min_gap` ago.
    TooSoon { wait_ms: i64 },
    /// The agent is unknown or not approved.
    NotApproved,
}

/// Columns the `agents` table gained after its first release, with their declarations.
const AGENT_COLUMNS: &[(&str, &str)] = &[
    ("cert_issued_at", "INTEGER"),
    ("cert_not_after", "INTEGER"),
    ("address", "TEXT"),
];

/// What agents enrolled before `cert_not_after` existed were given: their certificates were
/// signed at enrollment and lasted two years.
const LEGACY_CERT_MS: i64 = 2 * 365 * 86_400_000;

impl AgentRow {
    pub fn status_str(&self) -> &'static str {
        self.status.as_str()
    }
}

pub struct State {
    conn: Mutex<Connection>,
    /// Per agent, when it was last seen and what was last written of that (see
    /// [`State::touch`]).
    touches: Mutex<HashMap<String, Touch>>,
}

/// How often an agent's `last_seen` is written at most, unless its hostname changes. A
/// write per batch was an fsync per batch (`synchronous = FULL`) for a value that an
/// operator reads to the minute; the admin CLI, reading the file, lags by up to this.
const TOUCH_EVERY_MS: i64 = 30_000;

struct Touch {
    seen_ms: i64,
    written_ms: i64,
    hostname: Option<String>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl State {
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS join_tokens(
                 hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                 used_at INTEGER, used_by TEXT);
             CREATE TABLE IF NOT EXISTS agents(
                 id TEXT PRIMARY KEY, hostname TEXT NOT NULL, status TEXT NOT NULL,
                 csr_pem TEXT, created_at INTEGER NOT NULL, last_seen INTEGER);
             CREATE TABLE IF NOT EXISTS admin_tokens(hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS api_tokens(
                 name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
                 created_at INTEGER NOT NULL, expires_at INTEGER, last_used INTEGER);
             CREATE TABLE IF NOT EXISTS users(
                 name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
                 created_at INTEGER NOT NULL, password_changed_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS ui_sessions(
                 hash TEXT PRIMARY KEY, user TEXT NOT NULL, created_at INTEGER NOT NULL,
                 last_used INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS ui_sessions_user ON ui_sessions(user);
             CREATE TABLE IF NOT EXISTS dashboards(
                 id TEXT PRIMARY KEY, title TEXT NOT NULL, owner TEXT NOT NULL,
                 editors TEXT NOT NULL, all_editors INTEGER NOT NULL, definition TEXT NOT NULL,
                 public INTEGER NOT NULL, created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL, version INTEGER NOT NULL);",
        )?;
        add_agent_columns(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            touches: Mutex::new(HashMap::new()),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back),
        // so the poisoned guard is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a join token's secret and stores its hash. Returns the secret and expiry (Unix s).
    pub fn create_join_token(&self, ttl: Duration) -> Result<(String, i64), StateError> {
        let secret = random_hex(24);
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_ms = now.saturating_add(ttl_ms);
        self.conn().execute(
            "INSERT INTO join_tokens(hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
            params![hash_secret(&secret), now, expires_ms],
        )?;
        Ok((secret, expires_ms / 1000))
    }

    /// Join tokens, newest first, at most [`MAX_LISTED_JOIN_TOKENS`].
    pub fn list_join_tokens(&self) -> Result<Vec<JoinTokenRow>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT substr(hash, 1, ?1), created_at, expires_at, used_at, used_by FROM join_tokens
             ORDER BY created_at DESC, hash LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(
                params![JOIN_TOKEN_ID_LEN as i64, MAX_LISTED_JOIN_TOKENS as i64],
                |r| {
                    Ok(JoinTokenRow {
                        id: r.get(0)?,
                        created_ms: r.get(1)?,
                        expires_ms: r.get(2)?,
                        used_ms: r.get(3)?,
                        used_by: r.get(4)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The id [`State::list_join_tokens`] gives the token with this secret.
    pub fn join_token_id(secret: &str) -> String {
        hash_secret(secret)[..JOIN_TOKEN_ID_LEN].to_string()
    }

    /// Deletes a join token by its id: an unused one can no longer enrol anything.
    pub fn delete_join_token(&self, id: &str) -> Result<(), StateError> {
        let valid = id.len() == JOIN_TOKEN_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit());
        let n = if valid {
            self.conn().execute(
                "DELETE FROM join_tokens WHERE substr(hash, 1, ?1) = ?2",
                params![JOIN_TOKEN_ID_LEN as i64, id.to_ascii_lowercase()],
            )?
        } else {
            0
        };
        if n == 0 {
            return Err(StateError::NoSuchJoinToken(id.to_string()));
        }
        Ok(())
    }

    /// Uses a join token once and registers the agent as approved with the certificate
    /// signed for it (expiring at `cert_not_after_ms`), in one transaction.
    pub fn enroll_with_token(
        &self,
        secret: &str,
        agent_id: &str,
        hostname: &str,
        cert_not_after_ms: i64,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let hash = hash_secret(secret);
        let now = now_ms();
        let row: Option<(i64, Option<i64>)> = tx
            .query_row(
                "SELECT expires_at, used_at FROM join_tokens WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => return Err(StateError::UnknownToken),
            Some((_, Some(_))) => return Err(StateError::UsedToken),
            Some((expires, None)) if expires <= now => return Err(StateError::ExpiredToken),
            Some(_) => {}
        }
        tx.execute(
            "UPDATE join_tokens SET used_at = ?1, used_by = ?2 WHERE hash = ?3",
            params![now, agent_id, hash],
        )?;
        tx.execute(
            "INSERT INTO agents(id, hostname, status, created_at, cert_issued_at, cert_not_after)
             VALUES (?1, ?2, 'approved', ?3, ?3, ?4)",
            params![agent_id, hostname, now, cert_not_after_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Registers an agent that asked to join without a token from `address`; it waits for
    /// approval.
    pub fn register_pending(
        &self,
        agent_id: &str,
        hostname: &str,
        csr_pem: &str,
        address: &str,
    ) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO agents(id, hostname, status, csr_pem, created_at, address)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
            params![agent_id, hostname, csr_pem, now_ms(), address],
        )?;
        Ok(())
    }

    pub fn agent(&self, id: &str) -> Result<Option<AgentRow>, StateError> {
        let mut row = self
            .conn()
            .query_row(
                "SELECT id, hostname, status, last_seen, csr_pem, cert_not_after, created_at, address
                 FROM agents WHERE id = ?1",
                params![id],
                row_to_agent,
            )
            .optional()?;
        if let Some(row) = &mut row {
            self.newest_seen(std::slice::from_mut(row));
        }
        Ok(row)
    }

    pub fn list_agents(&self) -> Result<Vec<AgentRow>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, hostname, status, last_seen, csr_pem, cert_not_after, created_at, address
             FROM agents ORDER BY created_at, id",
        )?;
        let mut rows = stmt
            .query_map([], row_to_agent)?
            .collect::<Result<Vec<_>, _>>()?;
        self.newest_seen(&mut rows);
        Ok(rows)
    }

    /// Replaces the stored `last_seen` with a newer one not written yet.
    fn newest_seen(&self, rows: &mut [AgentRow]) {
        let touches = self.touches.lock().unwrap_or_else(PoisonError::into_inner);
        for row in rows {
            if let Some(touch) = touches.get(&row.id) {
                row.last_seen_ms = row.last_seen_ms.max(Some(touch.seen_ms));
            }
        }
    }

    pub fn set_status(&self, id: &str, status: AgentStatus) -> Result<(), StateError> {
        let n = self.conn().execute(
            "UPDATE agents SET status = ?1 WHERE id = ?2",
            params![status.as_str(), id],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchAgent(id.to_string()));
        }
        Ok(())
    }

    /// Records that agent `id` sent a batch now, under `hostname` if it said. Written to
    /// the database at most every [`TOUCH_EVERY_MS`] per agent, or at once when the
    /// hostname changes; this server's own reads ([`State::agent`],
    /// [`State::list_agents`]) see every touch.
    pub fn touch(&self, id: &str, hostname: Option<&str>) -> Result<(), StateError> {
        self.touch_at(id, hostname, now_ms())
    }

    fn touch_at(&self, id: &str, hostname: Option<&str>, now: i64) -> Result<(), StateError> {
        {
            let mut touches = self.touches.lock().unwrap_or_else(PoisonError::into_inner);
            let touch = touches.entry(id.to_owned()).or_insert(Touch {
                seen_ms: now,
                written_ms: i64::MIN,
                hostname: None,
            });
            touch.seen_ms = touch.seen_ms.max(now);
            let same_name = hostname.is_none_or(|name| touch.hostname.as_deref() == Some(name));
            if same_name && now.saturating_sub(touch.written_ms) < TOUCH_EVERY_MS {
                return Ok(());
            }
            touch.written_ms = now;
            if let Some(name) = hostname {
                touch.hostname = Some(name.to_owned());
            }
        }
        self.conn().execute(
            "UPDATE agents SET last_seen = ?1, hostname = COALESCE(?2, hostname) WHERE id = ?3",
            params![now, hostname, id],
        )?;
        Ok(())
    }

    /// Records the certificate just signed for agent `id`, expiring at `not_after_ms`.
    pub fn record_cert(&self, id: &str, not_after_ms: i64) -> Result<(), StateError> {
        let n = self.conn().execute(
            "UPDATE agents SET cert_issued_at = ?1, cert_not_after = ?2 WHERE id = ?3",
            params![now_ms(), not_after_ms, id],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchAgent(id.to_string()));
        }
        Ok(())
    }

    /// Takes agent `id`'s renewal slot when it is approved and its last certificate was
    /// signed `min_gap` ago or more: a looping agent cannot make the server sign endlessly.
    pub fn begin_renewal(&self, id: &str, min_gap: Duration) -> Result<RenewalSlot, StateError> {
        let gap_ms = i64::try_from(min_gap.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let conn = self.conn();
        let taken = conn.execute(
            "UPDATE agents SET cert_issued_at = ?1
             WHERE id = ?2 AND status = 'approved'
               AND (cert_issued_at IS NULL OR cert_issued_at <= ?1 - ?3)",
            params![now, id, gap_ms],
        )?;
        if taken == 1 {
            return Ok(RenewalSlot::Granted);
        }
        let row: Option<(String, Option<i64>)> = conn
            .query_row(
                "SELECT status, cert_issued_at FROM agents WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((status, Some(issued)))
                if AgentStatus::parse(&status) == AgentStatus::Approved =>
            {
                RenewalSlot::TooSoon {
                    wait_ms: issued.saturating_add(gap_ms).saturating_sub(now).max(0),
                }
            }
            _ => RenewalSlot::NotApproved,
        })
    }

    /// Approved agents whose certificate expires before `before_ms` (Unix ms), soonest
    /// first: what the server's health reports as expiring soon. An expired one is listed
    /// too, until the agent enrolls again or is revoked.
    pub fn agent_certs_expiring(&self, before_ms: i64) -> Result<Vec<ExpiringCert>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, hostname, cert_not_after FROM agents
             WHERE status = 'approved' AND cert_not_after < ?1
             ORDER BY cert_not_after, id",
        )?;
        let rows = stmt
            .query_map(params![before_ms], |r| {
                Ok(ExpiringCert {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    not_after_ms: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Makes sure an admin token exists. Stores the configured one, or makes one when there
    /// is none yet and returns it so that the caller can print it once.
    pub fn ensure_admin_token(
        &self,
        configured: Option<&str>,
    ) -> Result<Option<String>, StateError> {
        let conn = self.conn();
        if let Some(token) = configured {
            conn.execute(
                "INSERT OR IGNORE INTO admin_tokens(hash, created_at) VALUES (?1, ?2)",
                params![hash_secret(token), now_ms()],
            )?;
            return Ok(None);
        }
        let count: i64 = conn.query_row("SELECT count(*) FROM admin_tokens", [], |r| r.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        let token = format!("swadm_{}", random_hex(24));
        conn.execute(
            "INSERT INTO admin_tokens(hash, created_at) VALUES (?1, ?2)",
            params![hash_secret(&token), now_ms()],
        )?;
        Ok(Some(token))
    }

    pub fn is_admin_token(&self, token: &str) -> Result<bool, StateError> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM admin_tokens WHERE hash = ?1",
                params![hash_secret(token)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Makes an API token and stores its hash; returns the secret, which is shown once.
    pub fn create_api_token(
        &self,
        name: &str,
        role: Role,
        ttl: Option<Duration>,
    ) -> Result<String, StateError> {
        let secret = format!("swapi_{}", random_hex(24));
        let now = now_ms();
        let expires =
            ttl.map(|t| now.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)));
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO api_tokens(name, hash, role, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, hash_secret(&secret), role.as_str(), now, expires],
        )?;
        if inserted == 0 {
            return Err(StateError::TokenExists(name.to_string()));
        }
        Ok(secret)
    }

    /// Every API token, by name.
    pub fn list_api_tokens(&self) -> Result<Vec<ApiTokenRow>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, role, created_at, expires_at, last_used FROM api_tokens ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(ApiTokenRow {
                    name: r.get(0)?,
                    // An unknown role (a newer server's) reads as the least one.
                    role: Role::parse(&role).unwrap_or(Role::Write),
                    created_ms: r.get(2)?,
                    expires_ms: r.get(3)?,
                    last_used_ms: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes an API token: the next request with it is refused.
    pub fn revoke_api_token(&self, name: &str) -> Result<(), StateError> {
        let n = self
            .conn()
            .execute("DELETE FROM api_tokens WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(StateError::NoSuchToken(name.to_string()));
        }
        Ok(())
    }

    /// The role of a bearer secret: an admin token is `Admin`; an API token its role while
    /// it has not expired (its use is recorded); anything else `None`.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Role>, StateError> {
        Ok(self.authenticate_named(secret)?.map(|(_, role)| role))
    }

    /// As [`State::authenticate`], with the token's name (`admin` for an admin token): what
    /// foreign ingest attributes series to.
    pub fn authenticate_named(&self, secret: &str) -> Result<Option<(String, Role)>, StateError> {
        if self.is_admin_token(secret)? {
            return Ok(Some(("admin".to_string(), Role::Admin)));
        }
        let hash = hash_secret(secret);
        let conn = self.conn();
        let row: Option<(String, String, Option<i64>, Option<i64>)> = conn
            .query_row(
                "SELECT name, role, expires_at, last_used FROM api_tokens WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((name, role, expires, last_used)) = row else {
            return Ok(None);
        };
        let now = now_ms();
        if expires.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        if last_used.is_none_or(|t| now.saturating_sub(t) >= TOKEN_USE_EVERY_MS) {
            conn.execute(
                "UPDATE api_tokens SET last_used = ?1 WHERE hash = ?2",
                params![now, hash],
            )?;
        }
        Ok(Role::parse(&role).map(|role| (name, role)))
    }
}

/// Console users and their sessions.
impl State {
    /// Adds a user with an already hashed password (a PHC string).
    pub fn add_user(&self, name: &str, role: UserRole, hash: &str) -> Result<(), StateError> {
        let now = now_ms();
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO users(name, role, password, created_at, password_changed_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![name, role.as_str(), hash, now],
        )?;
        if inserted == 0 {
            return Err(StateError::UserExists(name.to_string()));
        }
        Ok(())
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<UserRow>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, role, created_at, password_changed_at FROM users ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(UserRow {
                    name: r.get(0)?,
                    // An unknown role (a newer server's) reads as the least one.
                    role: UserRole::parse(&role).unwrap_or(UserRole::Viewer),
                    created_ms: r.get(2)?,
                    password_changed_ms: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes a user and its sessions, in one transaction.
    pub fn remove_user(&self, name: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM users WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(StateError::NoSuchUser(name.to_string()));
        }
        tx.execute("DELETE FROM ui_sessions WHERE user = ?1", params![name])?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces a user's password hash and ends its sessions, in one transaction.
    pub fn set_password(&self, name: &str, hash: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE users SET password = ?1, password_changed_at = ?2 WHERE name = ?3",
            params![hash, now_ms(), name],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchUser(name.to_string()));
        }
        tx.execute("DELETE FROM ui_sessions WHERE user = ?1", params![name])?;
        tx.commit()?;
        Ok(())
    }

    /// Gives a user another role; their sessions carry the new one from their next request.
    pub fn set_role(&self, name: &str, role: UserRole) -> Result<(), StateError> {
        let n = self.conn().execute(
            "UPDATE users SET role = ?1 WHERE name = ?2",
            params![role.as_str(), name],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// A user's password hash and role, for a sign-in.
    pub fn user_credentials(&self, name: &str) -> Result<Option<(String, UserRole)>, StateError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT password, role FROM users WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(hash, role)| (hash, UserRole::parse(&role).unwrap_or(UserRole::Viewer))))
    }

    /// Stores a new session of `user` under the hash of its id, valid for `lifetime` at
    /// most; deletes the sessions that have expired by `lifetime` or by `idle`.
    pub fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        lifetime: Duration,
        idle: Duration,
    ) -> Result<(), StateError> {
        let now = now_ms();
        let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let conn = self.conn();
        conn.execute(
            "DELETE FROM ui_sessions WHERE expires_at <= ?1 OR last_used <= ?1 - ?2",
            params![now, idle_ms],
        )?;
        conn.execute(
            "INSERT INTO ui_sessions(hash, user, created_at, last_used, expires_at)
             VALUES (?1, ?2, ?3, ?3, ?4)",
            params![id_hash, user, now, now.saturating_add(lifetime_ms)],
        )?;
        Ok(())
    }

    /// The session stored under `id_hash` while it is valid: not past its expiry, used
    /// within `idle`, its user still there (with the user's current role). Its use is
    /// recorded; an expired session is deleted.
    pub fn session(&self, id_hash: &str, idle: Duration) -> Result<Option<SessionRow>, StateError> {
        self.session_at(id_hash, idle, now_ms())
    }

    fn session_at(
        &self,
        id_hash: &str,
        idle: Duration,
        now: i64,
    ) -> Result<Option<SessionRow>, StateError> {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let conn = self.conn();
        let row: Option<(String, Option<String>, i64, i64, i64)> = conn
            .query_row(
                "SELECT s.user, u.role, s.created_at, s.last_used, s.expires_at
                 FROM ui_sessions s LEFT JOIN users u ON u.name = s.user WHERE s.hash = ?1",
                params![id_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((user, role, created_ms, last_used, expires_ms)) = row else {
            return Ok(None);
        };
        let role = role.as_deref().and_then(UserRole::parse);
        let idle_over = now.saturating_sub(last_used) >= idle_ms;
        let (Some(role), false, false) = (role, idle_over, now >= expires_ms) else {
            conn.execute("DELETE FROM ui_sessions WHERE hash = ?1", params![id_hash])?;
            return Ok(None);
        };
        if now.saturating_sub(last_used) >= SESSION_USE_EVERY_MS.min(idle_ms / 10) {
            conn.execute(
                "UPDATE ui_sessions SET last_used = ?1 WHERE hash = ?2",
                params![now, id_hash],
            )?;
        }
        Ok(Some(SessionRow {
            user,
            role,
            created_ms,
            expires_ms,
        }))
    }

    /// Deletes a session (signing out); whether there was one.
    pub fn delete_session(&self, id_hash: &str) -> Result<bool, StateError> {
        let n = self
            .conn()
            .execute("DELETE FROM ui_sessions WHERE hash = ?1", params![id_hash])?;
        Ok(n > 0)
    }
}

/// A dashboard as stored: the definition still as JSON text for lists and as a value
/// once read (see [`State::dashboard`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardRow {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub editors: Vec<String>,
    pub all_editors: bool,
    pub public: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
    /// `None` in lists, which do not read definitions.
    pub definition: Option<crate::dashboards::Definition>,
}

/// What a create or an update stores.
#[derive(Debug, Clone)]
pub struct DashboardChange {
    pub title: String,
    pub editors: Vec<String>,
    pub all_editors: bool,
    pub definition: crate::dashboards::Definition,
}

const DASHBOARD_COLUMNS: &str =
    "id, title, owner, editors, all_editors, public, created_at, updated_at, version";

fn row_to_dashboard(r: &rusqlite::Row<'_>) -> rusqlite::Result<(DashboardRow, String)> {
    let editors: String = r.get(3)?;
    let row = DashboardRow {
        id: r.get(0)?,
        title: r.get(1)?,
        owner: r.get(2)?,
        // Written by us from a Vec<String>; should it be damaged, nobody is an editor.
        editors: serde_json::from_str(&editors).unwrap_or_default(),
        all_editors: r.get(4)?,
        public: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
        version: r.get(8)?,
        definition: None,
    };
    let definition: String = r.get(9).unwrap_or_default();
    Ok((row, definition))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StateError> {
    serde_json::to_string(v).map_err(|e| StateError::BadDashboardJson(e.to_string()))
}

impl State {
    /// Stores a new dashboard owned by `owner`, unless `max` exist already. Its id is 16
    /// random bytes in hex: unguessable, so that it can be a link.
    pub fn create_dashboard(
        &self,
        owner: &str,
        change: &DashboardChange,
        max: usize,
    ) -> Result<DashboardRow, StateError> {
        let id = random_hex(16);
        let (editors, definition) = (to_json(&change.editors)?, to_json(&change.definition)?);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM dashboards", [], |r| r.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(StateError::TooManyDashboards(max));
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO dashboards(id, title, owner, editors, all_editors, definition, public,
                 created_at, updated_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, 1)",
            params![
                id,
                change.title,
                owner,
                editors,
                change.all_editors,
                definition,
                now
            ],
        )?;
        tx.commit()?;
        drop(conn);
        self.dashboard(&id)?.ok_or(StateError::NoSuchDashboard(id))
    }

    /// One dashboard with its definition.
    pub fn dashboard(&self, id: &str) -> Result<Option<DashboardRow>, StateError> {
        let found = self
            .conn()
            .query_row(
                &format!("SELECT {DASHBOARD_COLUMNS}, definition FROM dashboards WHERE id = ?1"),
                params![id],
                row_to_dashboard,
            )
            .optional()?;
        let Some((mut row, text)) = found else {
            return Ok(None);
        };
        row.definition = Some(
            serde_json::from_str(&text).map_err(|e| StateError::BadDashboardJson(e.to_string()))?,
        );
        Ok(Some(row))
    }

    /// Every dashboard without its definition, by title.
    pub fn list_dashboards(&self) -> Result<Vec<DashboardRow>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DASHBOARD_COLUMNS} FROM dashboards ORDER BY title COLLATE NOCASE, id"
        ))?;
        let rows = stmt
            .query_map([], row_to_dashboard)?
            .map(|r| r.map(|(row, _)| row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Replaces a dashboard's title, editors and definition when it is still at
    /// `version`; the version goes up by one.
    pub fn update_dashboard(
        &self,
        id: &str,
        version: i64,
        change: &DashboardChange,
    ) -> Result<DashboardRow, StateError> {
        let (editors, definition) = (to_json(&change.editors)?, to_json(&change.definition)?);
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE dashboards SET title = ?1, editors = ?2, all_editors = ?3, definition = ?4,
                 updated_at = ?5, version = version + 1
             WHERE id = ?6 AND version = ?7",
            params![
                change.title,
                editors,
                change.all_editors,
                definition,
                now_ms(),
                id,
                version
            ],
        )?;
        if n == 0 {
            let current: Option<i64> = conn
                .query_row(
                    "SELECT version FROM dashboards WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            return Err(match current {
                Some(current) => StateError::StaleDashboard {
                    given: version,
                    current,
                },
                None => StateError::NoSuchDashboard(id.into()),
            });
        }
        drop(conn);
        self.dashboard(id)?
            .ok_or_else(|| StateError::NoSuchDashboard(id.into()))
    }

    /// Makes a dashboard public or not; its version goes up (a save from before the
    /// change is refused).
    pub fn set_dashboard_public(&self, id: &str, public: bool) -> Result<DashboardRow, StateError> {
        let n = self.conn().execute(
            "UPDATE dashboards SET public = ?1, updated_at = ?2, version = version + 1 WHERE id = ?3",
            params![public, now_ms(), id],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchDashboard(id.into()));
        }
        self.dashboard(id)?
            .ok_or_else(|| StateError::NoSuchDashboard(id.into()))
    }

    /// Deletes a dashboard; whether there was one.
    pub fn delete_dashboard(&self, id: &str) -> Result<bool, StateError> {
        let n = self
            .conn()
            .execute("DELETE FROM dashboards WHERE id = ?1", params![id])?;
        Ok(n > 0)
    }
}

fn row_to_agent(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    let status: String = r.get(2)?;
    Ok(AgentRow {
        id: r.get(0)?,
        hostname: r.get(1)?,
        status: AgentStatus::parse(&status),
        last_seen_ms: r.get(3)?,
        csr_pem: r.get(4)?,
        cert_not_after_ms: r.get(5)?,
        created_ms: r.get(6)?,
        address: r.get(7)?,
    })
}

/// Adds the columns an older `agents` table lacks. Agents that had a certificate then get
/// the expiry it was signed with (two years from enrollment), so that they are not missed
/// by [`State::agent_certs_expiring`]. Immediate, so that a CLI opening the file at the
/// same moment waits rather than adding the same column twice.
fn add_agent_columns(conn: &Connection) -> Result<(), StateError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let have = conn
            .prepare("SELECT name FROM pragma_table_info('agents')")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for (name, decl) in AGENT_COLUMNS {
            if !have.iter().any(|h| h == name) {
                conn.execute_batch(&format!("ALTER TABLE agents ADD COLUMN {name} {decl};"))?;
            }
        }
        if !have.iter().any(|h| h == "cert_not_after") {
            conn.execute(
                "UPDATE agents SET cert_issued_at = created_at, cert_not_after = created_at + ?1
                 WHERE status != 'pending'",
                params![LEGACY_CERT_MS],
            )?;
        }
        Ok::<_, rusqlite::Error>(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("state.db")).unwrap();
        (dir, s)
    }

    fn change(title: &str) -> DashboardChange {
        DashboardChange {
            title: title.into(),
            editors: vec!["eve".into()],
            all_editors: false,
            definition: crate::dashboards::Definition {
                refresh_seconds: 30,
                time_range: "1h".into(),
                pages: vec![],
            },
        }
    }

    #[test]
    fn dashboards_are_versioned_and_bounded() {
        let (_d, s) = state();
        let a = s.create_dashboard("ann", &change("B"), 2).unwrap();
        assert_eq!((a.owner.as_str(), a.version, a.public), ("ann", 1, false));
        assert_eq!(a.id.len(), 32);
        assert_eq!(a.editors, vec!["eve".to_string()]);
        let b = s.create_dashboard("bob", &change("a"), 2).unwrap();
        assert!(matches!(
            s.create_dashboard("bob", &change("c"), 2),
            Err(StateError::TooManyDashboards(2))
        ));
        let titles: Vec<String> = s
            .list_dashboards()
            .unwrap()
            .into_iter()
            .map(|d| d.title)
            .collect();
        assert_eq!(titles, ["a", "B"]);
        let a2 = s.update_dashboard(&a.id, 1, &change("B2")).unwrap();
        assert_eq!((a2.version, a2.title.as_str()), (2, "B2"));
        assert!(matches!(
            s.update_dashboard(&a.id, 1, &change("B3")),
            Err(StateError::StaleDashboard {
                given: 1,
                current: 2
            })
        ));
        assert!(matches!(
            s.update_dashboard("nope", 1, &change("x")),
            Err(StateError::NoSuchDashboard(_))
        ));
        let p = s.set_dashboard_public(&b.id, true).unwrap();
        assert!(p.public && p.version == 2);
        assert_eq!(
            s.dashboard(&b.id)
                .unwrap()
                .unwrap()
                .definition
                .unwrap()
                .refresh_seconds,
            30
        );
        assert!(s.delete_dashboard(&b.id).unwrap());
        assert!(!s.delete_dashboard(&b.id).unwrap());
        assert!(s.dashboard(&b.id).unwrap().is_none());
    }

    #[test]
    fn token_is_single_use() {
        let (_d, s) = state();
        let (secret, _) = s.create_join_token(Duration::from_secs(60)).unwrap();
        s.enroll_with_token(&secret, "ag-1", "h", 0).unwrap();
        assert!(matches!(
            s.enroll_with_token(&secret, "ag-2", "h", 0),
            Err(StateError::UsedToken)
        ));
        assert!(matches!(
            s.enroll_with_token("nope", "ag-3", "h", 0),
            Err(StateError::UnknownToken)
        ));
        assert_eq!(
            s.agent("ag-1").unwrap().unwrap().status,
            AgentStatus::Approved
        );
        assert!(s.agent("ag-2").unwrap().is_none());
    }

    #[test]
    fn expired_token_is_refused() {
        let (_d, s) = state();
        let (secret, _) = s.create_join_token(Duration::ZERO).unwrap();
        assert!(matches!(
            s.enroll_with_token(&secret, "ag-1", "h", 0),
            Err(StateError::ExpiredToken)
        ));
    }

    /// `last_seen` as stored in the file.
    fn stored_last_seen(s: &State, id: &str) -> Option<i64> {
        s.conn()
            .query_row(
                "SELECT last_seen FROM agents WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn last_seen_is_written_at_most_every_30_s_but_read_fresh() {
        let (_d, s) = state();
        let (secret, _) = s.create_join_token(Duration::from_secs(60)).unwrap();
        s.enroll_with_token(&secret, "ag-1", "h", 0).unwrap();
        let t0 = now_ms();
        s.touch_at("ag-1", Some("h"), t0).unwrap();
        assert_eq!(
            stored_last_seen(&s, "ag-1"),
            Some(t0),
            "written on the first batch"
        );
        s.touch_at("ag-1", Some("h"), t0 + 1).unwrap();
        s.touch_at("ag-1", None, t0 + TOUCH_EVERY_MS - 1).unwrap();
        assert_eq!(stored_last_seen(&s, "ag-1"), Some(t0), "not written again");
        // Read fresh all the same.
        let seen = s.agent("ag-1").unwrap().unwrap().last_seen_ms;
        assert_eq!(seen, Some(t0 + TOUCH_EVERY_MS - 1));
        assert_eq!(s.list_agents().unwrap()[0].last_seen_ms, seen);
        // Written again once the interval has passed.
        s.touch_at("ag-1", Some("h"), t0 + TOUCH_EVERY_MS).unwrap();
        assert_eq!(stored_last_seen(&s, "ag-1"), Some(t0 + TOUCH_EVERY_MS));
        // A new hostname is written at once.
        s.touch_at("ag-1", Some("renamed"), t0 + TOUCH_EVERY_MS + 1)
            .unwrap();
        let row = s.agent("ag-1").unwrap().unwrap();
        assert_eq!(row.hostname, "renamed");
        assert_eq!(stored_last_seen(&s, "ag-1"), Some(t0 + TOUCH_EVERY_MS + 1));
    }

    #[test]
    fn admin_token_made_once() {
        let (_d, s) = state();
        let t = s.ensure_admin_token(None).unwrap().unwrap();
        assert!(s.ensure_admin_token(None).unwrap().is_none());
        assert!(s.is_admin_token(&t).unwrap());
        assert!(!s.is_admin_token("other").unwrap());
        assert_eq!(s.authenticate(&t).unwrap(), Some(Role::Admin));
    }

    #[test]
    fn api_tokens_authenticate_until_revoked_or_expired() {
        let (_d, s) = state();
        let read = s.create_api_token("grafana", Role::Read, None).unwrap();
        assert!(matches!(
            s.create_api_token("grafana", Role::Admin, None),
            Err(StateError::TokenExists(_))
        ));
        let gone = s
            .create_api_token("old", Role::Write, Some(Duration::ZERO))
            .unwrap();
        assert_eq!(s.authenticate(&read).unwrap(), Some(Role::Read));
        assert_eq!(s.authenticate(&gone).unwrap(), None, "expired");
        assert_eq!(s.authenticate("swapi_nothing").unwrap(), None);
        let rows = s.list_api_tokens().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "grafana");
        assert!(rows[0].last_used_ms.is_some() && rows[0].expires_ms.is_none());
        assert_eq!(rows[1].role, Role::Write);
        assert!(rows[1].last_used_ms.is_none());
        s.revoke_api_token("grafana").unwrap();
        assert_eq!(s.authenticate(&read).unwrap(), None);
        assert!(matches!(
            s.revoke_api_token("grafana"),
            Err(StateError::NoSuchToken(_))
        ));
    }

    #[test]
    fn roles_allow_what_the_docs_say() {
        assert!(Role::Admin.allows(Role::Read) && Role::Admin.allows(Role::Admin));
        assert!(!Role::Admin.allows(Role::Write));
        assert!(!Role::Read.allows(Role::Admin) && !Role::Write.allows(Role::Read));
        for r in [Role::Read, Role::Write, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn users_are_added_listed_changed_and_removed_with_their_sessions() {
        let (_d, s) = state();
        s.add_user("ann", UserRole::Editor, "$argon2id$h1").unwrap();
        assert!(matches!(
            s.add_user("ann", UserRole::Admin, "$argon2id$h2"),
            Err(StateError::UserExists(_))
        ));
        s.add_user("bob", UserRole::Viewer, "$argon2id$h3").unwrap();
        let rows = s.list_users().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].role),
            ("ann", UserRole::Editor)
        );
        assert_eq!(
            s.user_credentials("ann").unwrap(),
            Some(("$argon2id$h1".into(), UserRole::Editor))
        );
        assert_eq!(s.user_credentials("nobody").unwrap(), None);

        let hour = Duration::from_secs(3600);
        s.create_session("sess-ann", "ann", hour, hour).unwrap();
        s.create_session("sess-bob", "bob", hour, hour).unwrap();
        assert_eq!(
            s.session("sess-ann", hour).unwrap().unwrap().role,
            UserRole::Editor
        );
        // A new password ends the user's sessions, not others'.
        s.set_password("ann", "$argon2id$h4").unwrap();
        assert_eq!(s.session("sess-ann", hour).unwrap(), None);
        assert!(s.session("sess-bob", hour).unwrap().is_some());
        assert_eq!(
            s.user_credentials("ann").unwrap().unwrap().0,
            "$argon2id$h4"
        );
        // So does removing the user.
        s.remove_user("bob").unwrap();
        assert_eq!(s.session("sess-bob", hour).unwrap(), None);
        assert!(matches!(
            s.remove_user("bob"),
            Err(StateError::NoSuchUser(_))
        ));
        assert!(matches!(
            s.set_password("bob", "x"),
            Err(StateError::NoSuchUser(_))
        ));
    }

    #[test]
    fn sessions_end_when_idle_or_past_their_lifetime() {
        let (_d, s) = state();
        s.add_user("ann", UserRole::Viewer, "$argon2id$h").unwrap();
        let idle = Duration::from_secs(600);
        s.create_session("a", "ann", Duration::from_secs(3600), idle)
            .unwrap();
        let t0 = now_ms();
        // Used within the idle timeout, it goes on, and each use counts.
        assert!(s.session_at("a", idle, t0 + 500_000).unwrap().is_some());
        assert!(s.session_at("a", idle, t0 + 1_000_000).unwrap().is_some());
        // Idle too long: gone, and deleted.
        assert!(s.session_at("a", idle, t0 + 1_700_000).unwrap().is_none());
        assert!(!s.delete_session("a").unwrap());
        // Past its lifetime however busy.
        s.create_session("b", "ann", Duration::from_secs(1), idle)
            .unwrap();
        assert!(s.session_at("b", idle, now_ms() + 1_000).unwrap().is_none());
        // Signed out.
        s.create_session("c", "ann", Duration::from_secs(3600), idle)
            .unwrap();
        assert!(s.delete_session("c").unwrap());
        assert!(s.session("c", idle).unwrap().is_none());
    }

    fn enrolled(s: &State, id: &str, host: &str, not_after_ms: i64) {
        let (secret, _) = s.create_join_token(Duration::from_secs(60)).unwrap();
        s.enroll_with_token(&secret, id, host, not_after_ms)
            .unwrap();
    }

    #[test]
    fn an_older_agents_table_gains_the_certificate_columns_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE agents(
                     id TEXT PRIMARY KEY, hostname TEXT NOT NULL, status TEXT NOT NULL,
                     csr_pem TEXT, created_at INTEGER NOT NULL, last_seen INTEGER);
                 INSERT INTO agents VALUES ('ag-old', 'web-1', 'approved', NULL, 1000, NULL);
                 INSERT INTO agents VALUES ('ag-wait', 'web-2', 'pending', 'csr', 2000, NULL);",
            )
            .unwrap();
        }
        let s = State::open(&path).unwrap();
        let old = s.agent("ag-old").unwrap().unwrap();
        assert_eq!(old.cert_not_after_ms, Some(1000 + LEGACY_CERT_MS));
        assert_eq!(s.agent("ag-wait").unwrap().unwrap().cert_not_after_ms, None);
        s.record_cert("ag-old", 5).unwrap();
        drop(s);
        // Opening again neither fails nor fills the column a second time.
        let s = State::open(&path).unwrap();
        assert_eq!(
            s.agent("ag-old").unwrap().unwrap().cert_not_after_ms,
            Some(5)
        );
    }

    #[test]
    fn certificates_expiring_are_the_approved_agents_before_the_moment_soonest_first() {
        let (_d, s) = state();
        enrolled(&s, "ag-late", "h-late", 9_000);
        enrolled(&s, "ag-soon", "h-soon", 2_000);
        enrolled(&s, "ag-mid", "h-mid", 5_000);
        enrolled(&s, "ag-gone", "h-gone", 1_000);
        s.set_status("ag-gone", AgentStatus::Revoked).unwrap();
        s.register_pending("ag-wait", "h-wait", "csr", "192.0.2.1:5000")
            .unwrap();
        let ids = |before| {
            s.agent_certs_expiring(before)
                .unwrap()
                .into_iter()
                .map(|e| (e.agent_id, e.not_after_ms))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(6_000),
            [("ag-soon".into(), 2_000), ("ag-mid".into(), 5_000)]
        );
        assert_eq!(ids(2_000), []);
        let all = s.agent_certs_expiring(i64::MAX).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].hostname, "h-soon");
        // A renewal moves the agent out of the list.
        s.record_cert("ag-soon", 20_000).unwrap();
        assert_eq!(ids(6_000), [("ag-mid".into(), 5_000)]);
        assert!(matches!(
            s.record_cert("ag-none", 1),
            Err(StateError::NoSuchAgent(_))
        ));
    }

    #[test]
    fn renewal_is_granted_once_per_gap_and_only_to_approved_agents() {
        let (_d, s) = state();
        let hour = Duration::from_secs(3600);
        enrolled(&s, "ag-1", "h", 1);
        // Enrollment signed a certificate just now.
        assert!(matches!(
            s.begin_renewal("ag-1", hour).unwrap(),
            RenewalSlot::TooSoon { wait_ms } if wait_ms > 3_500_000 && wait_ms <= 3_600_000
        ));
        assert_eq!(
            s.begin_renewal("ag-1", Duration::ZERO).unwrap(),
            RenewalSlot::Granted
        );
        s.conn()
            .execute("UPDATE agents SET cert_issued_at = 0 WHERE id = 'ag-1'", [])
            .unwrap();
        assert_eq!(s.begin_renewal("ag-1", hour).unwrap(), RenewalSlot::Granted);
        assert!(matches!(
            s.begin_renewal("ag-1", hour).unwrap(),
            RenewalSlot::TooSoon { .. }
        ));
        s.set_status("ag-1", AgentStatus::Revoked).unwrap();
        assert_eq!(
            s.begin_renewal("ag-1", Duration::ZERO).unwrap(),
            RenewalSlot::NotApproved
        );
        s.register_pending("ag-2", "h", "csr", "192.0.2.1:5000")
            .unwrap();
        assert_eq!(
            s.begin_renewal("ag-2", Duration::ZERO).unwrap(),
            RenewalSlot::NotApproved
        );
        assert_eq!(
            s.begin_renewal("ag-3", Duration::ZERO).unwrap(),
            RenewalSlot::NotApproved
        );
    }
}
