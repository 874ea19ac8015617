//! The directory: accounts, conferences and address books, in SQL.
//!
//! SQLite (WAL, foreign keys on, a busy timeout so that several writers —
//! the daemon and any number of CLI processes — wait for each other instead
//! of failing) in `server.data_dir`. The SQL is kept portable so that the same
//! statements run on PostgreSQL. Every write is one transaction: a crash
//! (even `kill -9`) leaves either the old or the new state.
//!
//! The daemon reads the directory on every decision (no cache), so a change
//! made by the CLI or the REST API takes effect at once.
//!
//! Validation happens here, before anything is written, and every
//! [`DirectoryError::Invalid`] names the field and the rule.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "directory", include_str!("../migrations/0001_directory.sql")),
    (2, "sip", include_str!("../migrations/0002_sip.sql")),
    (3, "chat", include_str!("../migrations/0003_chat.sql")),
];

/// Highest conference size accepted.
pub const MAX_PARTICIPANTS_LIMIT: u32 = 10_000;
/// Default conference size.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 100;

/// Directory failures, split by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Bad input: which field, which rule.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`pin`, `user`, `max_participants`, ...).
        field: &'static str,
        /// The rule broken.
        message: String,
    },
    /// No such object.
    #[error("{what} '{id}' does not exist")]
    NotFound {
        /// `account`, `conference`, `address book entry`.
        what: &'static str,
        /// The id looked for.
        id: String,
    },
    /// The object exists already, or clashes with another.
    #[error("{what} '{id}' {why}")]
    Conflict {
        /// The kind of object.
        what: &'static str,
        /// Its id.
        id: String,
        /// Why it clashes.
        why: &'static str,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Creating the state directory failed.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Password hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid {
        field,
        message: message.into(),
    }
}

/// The kind of endpoint an account stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// Web client (browser) user.
    Ws,
    /// SIP phone or softphone.
    Sip,
    /// H.323 endpoint.
    H323,
    /// An external endpoint reached through a gateway route.
    Loop,
}

impl AccountType {
    /// The stored token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sip => "sip",
            Self::H323 => "h323",
            Self::Loop => "loop",
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountType {
    type Err = DirectoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ws" => Ok(Self::Ws),
            "sip" => Ok(Self::Sip),
            "h323" => Ok(Self::H323),
            "loop" => Ok(Self::Loop),
            _ => Err(invalid(
                "type",
                format!("'{s}' is not an account type: use ws, sip, h323 or loop"),
            )),
        }
    }
}

/// An account, as the directory returns it (never with its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Full id, `user@server`.
    pub id: String,
    /// The user part (lowercase).
    pub user: String,
    /// Account type.
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// Display name.
    pub display_name: String,
    /// Whether a password is set.
    pub has_password: bool,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Bare user or full id on this server.
    pub user: String,
    /// Account type.
    pub account_type: AccountType,
    /// Display name; empty: the user name.
    pub display_name: String,
    /// Password, if any.
    pub password: Option<String>,
}

/// Changes to an account.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    /// New type.
    pub account_type: Option<AccountType>,
    /// New display name.
    pub display_name: Option<String>,
    /// New password.
    pub password: Option<String>,
}

/// A conference's settings and member lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conference {
    /// Conference id (lowercase).
    pub id: String,
    /// Name shown to participants.
    pub name: String,
    /// Owner's full id.
    pub owner: Option<String>,
    /// Closed: only listed participants, the PIN or the lobby get in.
    pub closed: bool,
    /// Guests without an account may join.
    pub allow_anonymous: bool,
    /// The PIN; only in trusted views (see [`Conference::redacted`]).
    pub pin: Option<String>,
    /// Unlisted callers wait in the lobby for a moderator.
    pub lobby: bool,
    /// Participants may send chat lines to everyone (web client).
    pub chat: bool,
    /// Most participants at once.
    pub max_participants: u32,
    /// Runs always. A temporary conference runs while someone is in it and
    /// is removed from the directory when it stops.
    pub permanent: bool,
    /// Moderators' full ids.
    pub moderators: Vec<String>,
    /// Participants' full ids.
    pub participants: Vec<String>,
}

impl Conference {
    /// Whether `user` (bare, lowercase) is the owner.
    pub fn is_owner(&self, id: &str) -> bool {
        self.owner.as_deref() == Some(id)
    }
}

/// A new conference or the full settings of an update.
#[derive(Debug, Clone)]
pub struct ConferenceSpec {
    /// Conference id.
    pub id: String,
    /// Name; empty: the id.
    pub name: String,
    /// Owner (user or full id).
    pub owner: Option<String>,
    /// Closed or open.
    pub closed: bool,
    /// Anonymous guests allowed.
    pub allow_anonymous: bool,
    /// PIN.
    pub pin: Option<String>,
    /// Lobby on.
    pub lobby: bool,
    /// Chat on.
    pub chat: bool,
    /// Maximum participants.
    pub max_participants: u32,
    /// Permanent.
    pub permanent: bool,
    /// Moderators (users or full ids).
    pub moderators: Vec<String>,
    /// Participants (users or full ids).
    pub participants: Vec<String>,
}

impl ConferenceSpec {
    /// A spec with the defaults: open, anonymous allowed, no PIN, no lobby,
    /// chat on, permanent.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            name: String::new(),
            owner: None,
            closed: false,
            allow_anonymous: true,
            pin: None,
            lobby: false,
            chat: true,
            max_participants: DEFAULT_MAX_PARTICIPANTS,
            permanent: true,
            moderators: Vec::new(),
            participants: Vec::new(),
        }
    }

    fn from_conference(c: &Conference) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            owner: c.owner.clone(),
            closed: c.closed,
            allow_anonymous: c.allow_anonymous,
            pin: c.pin.clone(),
            lobby: c.lobby,
            chat: c.chat,
            max_participants: c.max_participants,
            permanent: c.permanent,
            moderators: c.moderators.clone(),
            participants: c.participants.clone(),
        }
    }
}

/// Changes to a conference; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConferencePatch {
    /// Name.
    pub name: Option<String>,
    /// Owner (`Some(None)` clears it).
    pub owner: Option<Option<String>>,
    /// Closed.
    pub closed: Option<bool>,
    /// Anonymous allowed.
    pub allow_anonymous: Option<bool>,
    /// PIN (`Some(None)` clears it).
    pub pin: Option<Option<String>>,
    /// Lobby.
    pub lobby: Option<bool>,
    /// Chat.
    pub chat: Option<bool>,
    /// Maximum participants.
    pub max_participants: Option<u32>,
    /// Permanent.
    pub permanent: Option<bool>,
    /// Replaces the moderators.
    pub moderators: Option<Vec<String>>,
    /// Replaces the participants.
    pub participants: Option<Vec<String>>,
}

/// One address book entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressBookEntry {
    /// An account id or a call string.
    pub target: String,
    /// Name to show.
    pub display_name: String,
    /// Whether the target is an account of this server.
    pub is_account: bool,
}

/// Checks a PIN: 1–15 digits, not starting with 0.
pub fn validate_pin(pin: &str) -> Result<(), DirectoryError> {
    if pin.is_empty() || pin.len() > 15 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "pin",
            format!("'{pin}' is not allowed: a PIN is 1 to 15 digits"),
        ));
    }
    if pin.starts_with('0') {
        return Err(invalid(
            "pin",
            format!("'{pin}' is not allowed: a PIN must not start with 0"),
        ));
    }
    Ok(())
}

fn validate_display_name(field: &'static str, name: &str) -> Result<(), DirectoryError> {
    if name.chars().count() > 128 || name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            field,
            "a display name is at most 128 characters, without control characters",
        ));
    }
    Ok(())
}

fn validate_password(pw: &str) -> Result<(), DirectoryError> {
    if pw.len() < 4 || pw.len() > 256 {
        return Err(invalid("password", "a password is 4 to 256 bytes"));
    }
    Ok(())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hash_password(pw: &str) -> Result<String, DirectoryError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DirectoryError::Hash(e.to_string()))
}

fn verify_hash(pw: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// The directory, over a connection pool.
#[derive(Debug, Clone)]
pub struct Directory {
    pool: SqlitePool,
    server: String,
}

impl Directory {
    /// Opens (creating if needed) the database in `data_dir` and applies
    /// pending migrations.
    pub async fn open(data_dir: &Path, server: &str) -> Result<Self, DirectoryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DirectoryError::StateDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(data_dir.join("confgate.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // Two processes creating the same new database at once can see SQLITE_BUSY
        // while the journal mode changes, before the busy timeout applies: retry briefly.
        let mut attempt = 0;
        loop {
            let result = async {
                // Migrations run on a connection of their own, closed before the
                // pool opens: a connection that read the schema before a migration
                // changed it would expand `SELECT *` to the old columns.
                let migrator = Self {
                    pool: SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts.clone())
                        .await?,
                    server: server.to_ascii_lowercase(),
                };
                let migrated = migrator.migrate().await;
                migrator.pool.close().await;
                migrated?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts.clone())
                    .await?;
                Ok::<_, DirectoryError>(Self {
                    pool,
                    server: server.to_ascii_lowercase(),
                })
            }
            .await;
            match result {
                Err(DirectoryError::Database(e)) if is_busy(&e) && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 + 10 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Begins a transaction that holds the write lock from its first statement,
    /// so that concurrent writers queue on the busy timeout instead of failing
    /// when a read-then-write transaction would have to upgrade its lock.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, DirectoryError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE settings SET value = value WHERE name = 'write_lock'")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// The server name (`@server` of local ids).
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn migrate(&self) -> Result<(), DirectoryError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            // Claiming the version first takes the write lock: a concurrent migrator
            // waits, then finds the row and skips.
            let claimed = sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(name)
            .bind(now_secs())
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 0 {
                continue;
            }
            for statement in sql
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty() && !is_comment_only(s))
            {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Parses a bare user or a full id of this server into the stored user part.
    pub fn local_user(&self, field: &'static str, s: &str) -> Result<String, DirectoryError> {
        let id = call::TrueConfId::parse(s.trim(), &self.server).map_err(|e| invalid(field, e.to_string()))?;
        if !id.is_local(&self.server) {
            return Err(invalid(
                field,
                format!("'{s}' is not an account of this server ({})", self.server),
            ));
        }
        Ok(id.user().to_string())
    }

    fn full_id(&self, user: &str) -> String {
        format!("{user}@{}", self.server)
    }

    fn account_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> Result<Account, DirectoryError> {
        let user: String = row.try_get("user_name")?;
        let t: String = row.try_get("account_type")?;
        Ok(Account {
            id: self.full_id(&user),
            account_type: t.parse()?,
            display_name: row.try_get("display_name")?,
            has_password: row.try_get::<Option<String>, _>("password_hash")?.is_some(),
            user,
        })
    }

    /// Adds an account.
    pub async fn add_account(&self, new: NewAccount) -> Result<Account, DirectoryError> {
        let user = self.local_user("user", &new.user)?;
        validate_display_name("display_name", &new.display_name)?;
        let hash = match &new.password {
            Some(pw) => {
                validate_password(pw)?;
                Some(hash_blocking(pw.clone()).await?)
            }
            None => None,
        };
        let digests = new.password.as_deref().map(|pw| self.digests(&user, pw));
        let display = if new.display_name.trim().is_empty() {
            user.clone()
        } else {
            new.display_name.trim().into()
        };
        let mut tx = self.write_tx().await?;
        if sqlx::query("SELECT 1 FROM conferences WHERE id = $1")
            .bind(&user)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(DirectoryError::Conflict {
                what: "account",
                id: user,
                why: "has the same id as a conference (dialing it would be ambiguous)",
            });
        }
        let now = now_secs();
        let r = sqlx::query(
            "INSERT INTO accounts (user_name, account_type, display_name, password_hash, created_at, updated_at, \
             digest_md5, digest_sha256) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7) ON CONFLICT (user_name) DO NOTHING",
        )
        .bind(&user)
        .bind(new.account_type.as_str())
        .bind(&display)
        .bind(&hash)
        .bind(now)
        .bind(digests.as_ref().map(|d| &d.0))
        .bind(digests.as_ref().map(|d| &d.1))
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(DirectoryError::Conflict {
                what: "account",
                id: self.full_id(&user),
                why: "exists already",
            });
        }
        tx.commit().await?;
        Ok(Account {
            id: self.full_id(&user),
            user,
            account_type: new.account_type,
            display_name: display,
            has_password: hash.is_some(),
        })
    }

    /// Lists accounts, ordered by user.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, DirectoryError> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY user_name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.account_from_row(r)).collect()
    }

    /// One account, by bare user or full id.
    pub async fn get_account(&self, user: &str) -> Result<Account, DirectoryError> {
        let u = self.local_user("user", user)?;
        self.find_account(&u).await?.ok_or(DirectoryError::NotFound {
            what: "account",
            id: self.full_id(&u),
        })
    }

    async fn find_account(&self, user: &str) -> Result<Option<Account>, DirectoryError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE user_name = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| self.account_from_row(r)).transpose()
    }

    /// Looks up an account without validation errors: `None` if `user` is
    /// not a well-formed local id or does not exist.
    pub async fn lookup_account(&self, user: &str) -> Result<Option<Account>, DirectoryError> {
        match self.local_user("user", user) {
            Ok(u) => self.find_account(&u).await,
            Err(_) => Ok(None),
        }
    }

    /// Changes an account.
    pub async fn update_account(&self, user: &str, patch: AccountPatch) -> Result<Account, DirectoryError> {
        let u = self.local_user("user", user)?;
        if let Some(d) = &patch.display_name {
            validate_display_name("display_name", d)?;
            if d.trim().is_empty() {
                return Err(invalid("display_name", "must not be empty"));
            }
        }
        let hash = match &patch.password {
            Some(pw) => {
                validate_password(pw)?;
                Some(hash_blocking(pw.clone()).await?)
            }
            None => None,
        };
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM accounts WHERE user_name = $1")
            .bind(&u)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(DirectoryError::NotFound {
                what: "account",
                id: self.full_id(&u),
            });
        }
        let now = now_secs();
        if let Some(t) = patch.account_type {
            sqlx::query("UPDATE accounts SET account_type = $1, updated_at = $2 WHERE user_name = $3")
                .bind(t.as_str())
                .bind(now)
                .bind(&u)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(d) = &patch.display_name {
            sqlx::query("UPDATE accounts SET display_name = $1, updated_at = $2 WHERE user_name = $3")
                .bind(d.trim())
                .bind(now)
                .bind(&u)
                .execute(&mut *tx)
                .await?;
        }
        if let (Some(h), Some(pw)) = (&hash, &patch.password) {
            let (md5, sha256) = self.digests(&u, pw);
            sqlx::query(
                "UPDATE accounts SET password_hash = $1, digest_md5 = $2, digest_sha256 = $3, updated_at = $4 \
                 WHERE user_name = $5",
            )
            .bind(h)
            .bind(md5)
            .bind(sha256)
            .bind(now)
            .bind(&u)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_account(&u).await
    }

    /// The SIP digest credentials of a password: HA1 for MD5 and for SHA-256
    /// (RFC 7616 §3.4.2), realm = the server name.
    fn digests(&self, user: &str, password: &str) -> (String, String) {
        use sip::digest::{ha1, Algorithm};
        (
            ha1(Algorithm::Md5, user, &self.server, password),
            ha1(Algorithm::Sha256, user, &self.server, password),
        )
    }

    /// The stored digest HA1 of `user` for `algorithm`, if the account has
    /// a password (set since digest credentials were kept).
    pub async fn digest_ha1(
        &self,
        user: &str,
        algorithm: sip::digest::Algorithm,
    ) -> Result<Option<String>, DirectoryError> {
        let (md5, sha256) = self.digest_ha1s(user).await?;
        Ok(match algorithm {
            sip::digest::Algorithm::Md5 => md5,
            _ => sha256,
        })
    }

    /// Both stored digest HA1s of `user` (MD5, SHA-256), in one query.
    pub async fn digest_ha1s(&self, user: &str) -> Result<(Option<String>, Option<String>), DirectoryError> {
        let Ok(u) = self.local_user("user", user) else {
            return Ok((None, None));
        };
        let row = sqlx::query("SELECT digest_md5, digest_sha256 FROM accounts WHERE user_name = $1")
            .bind(&u)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => (r.try_get("digest_md5")?, r.try_get("digest_sha256")?),
            None => (None, None),
        })
    }

    /// The SIP registrations of `user` that have not expired at `now_unix`.
    pub async fn sip_bindings(
        &self,
        user: &str,
        now_unix: u64,
    ) -> Result<Vec<sip::registrar::Binding>, DirectoryError> {
        let Ok(u) = self.local_user("user", user) else {
            return Ok(Vec::new());
        };
        let rows =
            sqlx::query("SELECT * FROM sip_bindings WHERE user_name = $1 AND expires_at > $2 ORDER BY expires_at DESC")
                .bind(&u)
                .bind(now_unix as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(sip::registrar::Binding {
                    contact: r.try_get("contact")?,
                    expires_at: r.try_get::<i64, _>("expires_at")?.max(0) as u64,
                    call_id: r.try_get("call_id")?,
                    cseq: r.try_get::<i64, _>("cseq")?.clamp(0, i64::from(u32::MAX)) as u32,
                    q: r.try_get::<Option<i64>, _>("q_milli")?.map(|q| q as f32 / 1000.0),
                    source: r.try_get::<Option<String>, _>("source")?.and_then(|s| s.parse().ok()),
                    transport: r.try_get("transport")?,
                    user_agent: r.try_get("user_agent")?,
                    instance: r.try_get("instance")?,
                })
            })
            .collect()
    }

    /// Replaces the SIP registrations of `user` (the registrar's result for
    /// one REGISTER), so that they survive a restart.
    pub async fn set_sip_bindings(
        &self,
        user: &str,
        bindings: &[sip::registrar::Binding],
    ) -> Result<(), DirectoryError> {
        let u = self.local_user("user", user)?;
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sip_bindings WHERE user_name = $1")
            .bind(&u)
            .execute(&mut *tx)
            .await?;
        for b in bindings {
            sqlx::query(
                "INSERT INTO sip_bindings (user_name, contact, expires_at, call_id, cseq, q_milli, source, transport, \
                 user_agent, instance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (user_name, contact) DO NOTHING",
            )
            .bind(&u)
            .bind(&b.contact)
            .bind(b.expires_at.min(i64::MAX as u64) as i64)
            .bind(&b.call_id)
            .bind(i64::from(b.cseq))
            .bind(b.q.map(|q| (q * 1000.0).round() as i64))
            .bind(b.source.map(|s| s.to_string()))
            .bind(&b.transport)
            .bind(&b.user_agent)
            .bind(&b.instance)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The SIP registrar's handle on the directory for its batches
    /// ([`SipRegistrarStore::register_batch`]), with a connection of its own.
    pub fn sip_registrar_store(&self) -> SipRegistrarStore {
        SipRegistrarStore {
            directory: self.clone(),
            conn: None,
        }
    }

    /// Deletes registrations that expired before `now_unix`; returns how many.
    pub async fn purge_expired_bindings(&self, now_unix: u64) -> Result<u64, DirectoryError> {
        let r = sqlx::query("DELETE FROM sip_bindings WHERE expires_at <= $1")
            .bind(now_unix as i64)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Removes an account (and its memberships and address book).
    pub async fn remove_account(&self, user: &str) -> Result<(), DirectoryError> {
        let u = self.local_user("user", user)?;
        let r = sqlx::query("DELETE FROM accounts WHERE user_name = $1")
            .bind(&u)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(DirectoryError::NotFound {
                what: "account",
                id: self.full_id(&u),
            });
        }
        Ok(())
    }

    /// Checks a password. `Ok(None)` for an unknown user or a wrong password
    /// (the same answer, so that callers do not reveal which).
    pub async fn verify_password(&self, user: &str, password: &str) -> Result<Option<Account>, DirectoryError> {
        let Ok(u) = self.local_user("user", user) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT * FROM accounts WHERE user_name = $1")
            .bind(&u)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            // Spend the same time as a real check.
            let _ = hash_blocking(password.to_string()).await;
            return Ok(None);
        };
        let hash: Option<String> = row.try_get("password_hash")?;
        let Some(hash) = hash else { return Ok(None) };
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_hash(&pw, &hash))
            .await
            .unwrap_or(false);
        if ok {
            Ok(Some(self.account_from_row(&row)?))
        } else {
            Ok(None)
        }
    }

    fn validate_conference(&self, spec: &ConferenceSpec) -> Result<ConferenceSpec, DirectoryError> {
        let id = spec.id.trim().to_ascii_lowercase();
        call::validate_conference_id(&id).map_err(|e| invalid("id", e.to_string()))?;
        validate_display_name("name", &spec.name)?;
        if let Some(pin) = &spec.pin {
            validate_pin(pin)?;
        }
        if !(1..=MAX_PARTICIPANTS_LIMIT).contains(&spec.max_participants) {
            return Err(invalid(
                "max_participants",
                format!(
                    "{} is not allowed: 1 to {MAX_PARTICIPANTS_LIMIT}",
                    spec.max_participants
                ),
            ));
        }
        let owner = spec.owner.as_deref().map(|o| self.local_user("owner", o)).transpose()?;
        let mut moderators = Vec::new();
        for m in &spec.moderators {
            let u = self.local_user("moderators", m)?;
            if !moderators.contains(&u) {
                moderators.push(u);
            }
        }
        let mut participants = Vec::new();
        for p in &spec.participants {
            let u = self.local_user("participants", p)?;
            if !participants.contains(&u) && !moderators.contains(&u) {
                participants.push(u);
            }
        }
        Ok(ConferenceSpec {
            name: if spec.name.trim().is_empty() {
                id.clone()
            } else {
                spec.name.trim().into()
            },
            id,
            owner,
            moderators,
            participants,
            ..spec.clone()
        })
    }

    async fn write_conference(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        spec: &ConferenceSpec,
        create: bool,
    ) -> Result<(), DirectoryError> {
        for (field, users) in [
            ("owner", spec.owner.iter().cloned().collect::<Vec<_>>()),
            ("moderators", spec.moderators.clone()),
            ("participants", spec.participants.clone()),
        ] {
            for u in users {
                let found = sqlx::query("SELECT 1 FROM accounts WHERE user_name = $1")
                    .bind(&u)
                    .fetch_optional(&mut **tx)
                    .await?;
                if found.is_none() {
                    return Err(invalid(field, format!("account '{}' does not exist", self.full_id(&u))));
                }
            }
        }
        let now = now_secs();
        if create {
            let clash = sqlx::query("SELECT 1 FROM accounts WHERE user_name = $1")
                .bind(&spec.id)
                .fetch_optional(&mut **tx)
                .await?;
            if clash.is_some() {
                return Err(DirectoryError::Conflict {
                    what: "conference",
                    id: spec.id.clone(),
                    why: "has the same id as an account (dialing it would be ambiguous)",
                });
            }
        }
        // Both statements take the settings as $1 to $11, bound below.
        let sql = if create {
            "INSERT INTO conferences (id, name, owner, closed, allow_anonymous, pin, lobby, max_participants, permanent, created_at, updated_at, chat) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) ON CONFLICT (id) DO NOTHING"
        } else {
            "UPDATE conferences SET name = $2, owner = $3, closed = $4, allow_anonymous = $5, pin = $6, lobby = $7, \
             max_participants = $8, permanent = $9, updated_at = $10, chat = $11 WHERE id = $1"
        };
        let r = sqlx::query(sql)
            .bind(&spec.id)
            .bind(&spec.name)
            .bind(&spec.owner)
            .bind(spec.closed)
            .bind(spec.allow_anonymous)
            .bind(&spec.pin)
            .bind(spec.lobby)
            .bind(spec.max_participants as i64)
            .bind(spec.permanent)
            .bind(now)
            .bind(spec.chat)
            .execute(&mut **tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(if create {
                DirectoryError::Conflict {
                    what: "conference",
                    id: spec.id.clone(),
                    why: "exists already",
                }
            } else {
                DirectoryError::NotFound {
                    what: "conference",
                    id: spec.id.clone(),
                }
            });
        }
        if !create {
            sqlx::query("DELETE FROM conference_members WHERE conference_id = $1")
                .bind(&spec.id)
                .execute(&mut **tx)
                .await?;
        }
        for (role, users) in [("moderator", &spec.moderators), ("participant", &spec.participants)] {
            for u in users {
                sqlx::query("INSERT INTO conference_members (conference_id, user_name, role) VALUES ($1, $2, $3)")
                    .bind(&spec.id)
                    .bind(u)
                    .bind(role)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds a conference.
    pub async fn add_conference(&self, spec: ConferenceSpec) -> Result<Conference, DirectoryError> {
        let spec = self.validate_conference(&spec)?;
        let mut tx = self.write_tx().await?;
        self.write_conference(&mut tx, &spec, true).await?;
        tx.commit().await?;
        self.get_conference(&spec.id).await
    }

    /// Changes a conference.
    pub async fn update_conference(&self, id: &str, patch: ConferencePatch) -> Result<Conference, DirectoryError> {
        let current = self.get_conference(id).await?;
        let mut spec = ConferenceSpec::from_conference(&current);
        macro_rules! apply {
            ($($f:ident),*) => { $( if let Some(v) = patch.$f { spec.$f = v; } )* };
        }
        apply!(
            name,
            owner,
            closed,
            allow_anonymous,
            pin,
            lobby,
            chat,
            max_participants,
            permanent,
            moderators,
            participants
        );
        let spec = self.validate_conference(&spec)?;
        let mut tx = self.write_tx().await?;
        self.write_conference(&mut tx, &spec, false).await?;
        tx.commit().await?;
        self.get_conference(&spec.id).await
    }

    /// Removes a conference.
    pub async fn remove_conference(&self, id: &str) -> Result<(), DirectoryError> {
        let id = id.trim().to_ascii_lowercase();
        let r = sqlx::query("DELETE FROM conferences WHERE id = $1")
            .bind(&id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(DirectoryError::NotFound { what: "conference", id });
        }
        Ok(())
    }

    /// One conference.
    pub async fn get_conference(&self, id: &str) -> Result<Conference, DirectoryError> {
        let id = id.trim().to_ascii_lowercase();
        self.find_conference(&id)
            .await?
            .ok_or(DirectoryError::NotFound { what: "conference", id })
    }

    /// One conference, or `None` (also for an ill-formed id).
    pub async fn find_conference(&self, id: &str) -> Result<Option<Conference>, DirectoryError> {
        let id = id.trim().to_ascii_lowercase();
        if call::validate_conference_id(&id).is_err() {
            return Ok(None);
        }
        let Some(row) = sqlx::query("SELECT * FROM conferences WHERE id = $1")
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rows =
            sqlx::query("SELECT user_name, role FROM conference_members WHERE conference_id = $1 ORDER BY user_name")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
        let mut members = Vec::with_capacity(rows.len());
        for m in &rows {
            members.push((m.try_get("user_name")?, m.try_get("role")?));
        }
        self.conference_from_rows(&row, &members).map(Some)
    }

    fn conference_from_rows(
        &self,
        row: &sqlx::sqlite::SqliteRow,
        members: &[(String, String)],
    ) -> Result<Conference, DirectoryError> {
        let mut moderators = Vec::new();
        let mut participants = Vec::new();
        for (u, role) in members {
            if role == "moderator" {
                moderators.push(self.full_id(u));
            } else {
                participants.push(self.full_id(u));
            }
        }
        let max: i64 = row.try_get("max_participants")?;
        Ok(Conference {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            owner: row.try_get::<Option<String>, _>("owner")?.map(|o| self.full_id(&o)),
            closed: row.try_get("closed")?,
            allow_anonymous: row.try_get("allow_anonymous")?,
            pin: row.try_get("pin")?,
            lobby: row.try_get("lobby")?,
            chat: row.try_get("chat")?,
            max_participants: u32::try_from(max).unwrap_or(DEFAULT_MAX_PARTICIPANTS),
            permanent: row.try_get("permanent")?,
            moderators,
            participants,
        })
    }

    /// All conferences, ordered by id.
    pub async fn list_conferences(&self) -> Result<Vec<Conference>, DirectoryError> {
        let rows = sqlx::query("SELECT * FROM conferences ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let member_rows =
            sqlx::query("SELECT conference_id, user_name, role FROM conference_members ORDER BY user_name")
                .fetch_all(&self.pool)
                .await?;
        let mut members: std::collections::HashMap<String, Vec<(String, String)>> = std::collections::HashMap::new();
        for m in &member_rows {
            members
                .entry(m.try_get("conference_id")?)
                .or_default()
                .push((m.try_get("user_name")?, m.try_get("role")?));
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            out.push(self.conference_from_rows(row, members.get(&id).map_or(&[][..], Vec::as_slice))?);
        }
        Ok(out)
    }

    /// Conferences in which `user` is owner, moderator or participant.
    pub async fn conferences_of(&self, user: &str) -> Result<Vec<Conference>, DirectoryError> {
        let u = self.local_user("user", user)?;
        let full = self.full_id(&u);
        Ok(self
            .list_conferences()
            .await?
            .into_iter()
            .filter(|c| c.is_owner(&full) || c.moderators.contains(&full) || c.participants.contains(&full))
            .collect())
    }

    /// `owner`'s address book.
    pub async fn address_book(&self, owner: &str) -> Result<Vec<AddressBookEntry>, DirectoryError> {
        let u = self.get_account(owner).await?.user;
        let rows =
            sqlx::query("SELECT target, display_name FROM address_book WHERE owner = $1 ORDER BY display_name, target")
                .bind(&u)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let target: String = r.try_get("target")?;
            out.push(AddressBookEntry {
                is_account: self.lookup_account(&target).await?.is_some(),
                display_name: r.try_get("display_name")?,
                target,
            });
        }
        Ok(out)
    }

    /// Adds an entry to `owner`'s address book. `target` is an account of
    /// this server (stored as its full id) or any valid call string.
    pub async fn address_book_add(
        &self,
        owner: &str,
        target: &str,
        display_name: &str,
    ) -> Result<AddressBookEntry, DirectoryError> {
        let u = self.get_account(owner).await?.user;
        validate_display_name("display_name", display_name)?;
        let parsed = call::CallString::parse(target).map_err(|e| invalid("target", e.to_string()))?;
        let (target, account) = match &parsed {
            call::CallString::Empty => return Err(invalid("target", "must not be empty")),
            call::CallString::Account { user, server } if server.as_deref().is_none_or(|s| s == self.server) => {
                match self.find_account(user).await? {
                    Some(a) => (a.id.clone(), Some(a)),
                    None => {
                        return Err(invalid(
                            "target",
                            format!("account '{}' does not exist", self.full_id(user)),
                        ))
                    }
                }
            }
            other => (other.to_string(), None),
        };
        let display = match (display_name.trim(), &account) {
            ("", Some(a)) => a.display_name.clone(),
            ("", None) => target.clone(),
            (d, _) => d.to_string(),
        };
        let r = sqlx::query(
            "INSERT INTO address_book (owner, target, display_name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (owner, target) DO NOTHING",
        )
        .bind(&u)
        .bind(&target)
        .bind(&display)
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(DirectoryError::Conflict {
                what: "address book entry",
                id: target,
                why: "exists already",
            });
        }
        Ok(AddressBookEntry {
            target,
            display_name: display,
            is_account: account.is_some(),
        })
    }

    /// Removes an entry from `owner`'s address book.
    pub async fn address_book_remove(&self, owner: &str, target: &str) -> Result<(), DirectoryError> {
        let u = self.get_account(owner).await?.user;
        let mut keys = vec![target.trim().to_string()];
        if let Ok(call::CallString::Account { user, server: None }) = call::CallString::parse(target) {
            keys.push(self.full_id(&user));
        }
        for key in &keys {
            let r = sqlx::query("DELETE FROM address_book WHERE owner = $1 AND target = $2")
                .bind(&u)
                .bind(key)
                .execute(&self.pool)
                .await?;
            if r.rows_affected() > 0 {
                return Ok(());
            }
        }
        Err(DirectoryError::NotFound {
            what: "address book entry",
            id: target.to_string(),
        })
    }

    /// The admin REST API token, created on first use. Returns the token and
    /// whether it was created now.
    pub async fn admin_token(&self) -> Result<(String, bool), DirectoryError> {
        if let Some(t) = self.setting("admin_token").await? {
            return Ok((t, false));
        }
        let token = new_token();
        let r =
            sqlx::query("INSERT INTO settings (name, value) VALUES ('admin_token', $1) ON CONFLICT (name) DO NOTHING")
                .bind(&token)
                .execute(&self.pool)
                .await?;
        if r.rows_affected() == 0 {
            // Another process created it first.
            return Ok((self.setting("admin_token").await?.unwrap_or(token), false));
        }
        Ok((token, true))
    }

    /// Replaces the admin token; the old one stops working at once.
    pub async fn rotate_admin_token(&self) -> Result<String, DirectoryError> {
        let token = new_token();
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('admin_token', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(&token)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// Checks a bearer token against the current admin token.
    pub async fn check_admin_token(&self, presented: &str) -> Result<bool, DirectoryError> {
        let Some(current) = self.setting("admin_token").await? else {
            return Ok(false);
        };
        Ok(constant_time_eq(current.as_bytes(), presented.as_bytes()))
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, DirectoryError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The SIP registrar's access to the directory: one batch of REGISTERs at a
/// time, each in one write transaction (group commit), on a connection held
/// for the registrar alone (taken out of the pool at the first batch and
/// again after an error), so that a batch costs no pool checks.
///
/// Every exchange with the database's worker thread costs a few thread
/// switches, so a batch is two: `BEGIN IMMEDIATE` with the read, then the
/// write with `COMMIT`. The statements carry a whole batch in one parameter
/// and return it in one row, as JSON (SQLite's `json_each` and
/// `json_group_array`; PostgreSQL has the same functions under other names):
/// a statement's cost does not grow with its parameter count, and a result
/// is not handed over row by row. The transaction is opened and closed by
/// these statements, not by sqlx: after any error the connection is dropped
/// (SQLite rolls back what was not committed when it closes) and the next
/// batch takes a fresh one.
#[derive(Debug)]
pub struct SipRegistrarStore {
    directory: Directory,
    conn: Option<sqlx::SqliteConnection>,
}

/// What the SIP registrar reads of one account in a batch
/// ([`SipRegistrarStore::register_batch`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SipAccountState {
    /// HA1 for MD5 (RFC 7616 §3.4.2), when the account has digest credentials.
    pub digest_md5: Option<String>,
    /// HA1 for SHA-256.
    pub digest_sha256: Option<String>,
    /// The registrations that had not expired, latest expiry first.
    pub bindings: Vec<sip::registrar::Binding>,
}

/// One row of the batch read: the account, its two HA1s, then one binding
/// (all `None` when the account has none).
type SipBatchRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One binding row to write: user, contact, expires_at, call_id, cseq,
/// q_milli, source, transport, user_agent, instance.
type SipBindingRow<'a> = (
    &'a str,
    &'a str,
    i64,
    &'a str,
    i64,
    Option<i64>,
    Option<String>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
);

/// Takes the write lock (`IMMEDIATE`: the read and the write see the same
/// state, and the write never waits for a lock upgrade that could fail),
/// then reads the accounts named in a JSON array with their HA1s and live
/// bindings (`expires_at` above the first parameter), as one JSON array of rows.
const SIP_BATCH_READ: &str =
    "BEGIN IMMEDIATE; SELECT json_group_array(json_array(a.user_name, a.digest_md5, a.digest_sha256, \
     b.contact, b.expires_at, b.call_id, b.cseq, b.q_milli, b.source, b.transport, b.user_agent, b.instance)) \
     FROM accounts a LEFT JOIN sip_bindings b ON b.user_name = a.user_name AND b.expires_at > ? \
     WHERE a.user_name IN (SELECT value FROM json_each(?))";

/// Replaces the bindings of the accounts named in the first parameter (a
/// JSON array) by the rows of the second (a JSON array of [`SipBindingRow`]),
/// and commits.
const SIP_BATCH_WRITE: &str = "DELETE FROM sip_bindings WHERE user_name IN (SELECT value FROM json_each(?)); \
     INSERT INTO sip_bindings (user_name, contact, expires_at, call_id, cseq, q_milli, source, transport, \
     user_agent, instance) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
     value ->> 7, value ->> 8, value ->> 9 FROM json_each(?) WHERE true \
     ON CONFLICT (user_name, contact) DO NOTHING; COMMIT";

impl SipRegistrarStore {
    /// Runs one batch of the SIP registrar in one write transaction: reads
    /// the digest credentials and the registrations still live at `now_unix`
    /// of `users` (stored user parts, see [`Directory::local_user`]; accounts
    /// that do not exist are absent from the map), hands them to `decide`,
    /// writes the new bindings of the accounts it returns (the whole list of
    /// each), and commits. Reading inside the write transaction means that no
    /// other writer changes an account between the read and the write.
    ///
    /// # Errors
    ///
    /// The database failed; nothing of the batch is written then.
    pub async fn register_batch<F>(&mut self, users: &[String], now_unix: u64, decide: F) -> Result<(), DirectoryError>
    where
        F: FnOnce(std::collections::HashMap<String, SipAccountState>) -> Vec<(String, Vec<sip::registrar::Binding>)>,
    {
        let result = self.run_batch(users, now_unix, decide).await;
        if result.is_err() {
            // Whatever state the connection is in, the next batch starts on a fresh one.
            self.conn = None;
        }
        result
    }

    async fn run_batch<F>(&mut self, users: &[String], now_unix: u64, decide: F) -> Result<(), DirectoryError>
    where
        F: FnOnce(std::collections::HashMap<String, SipAccountState>) -> Vec<(String, Vec<sip::registrar::Binding>)>,
    {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.directory.pool.acquire().await?.detach()),
        };
        let mut names: Vec<&str> = users.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let names = serde_json::to_string(&names).map_err(|e| invalid("users", e.to_string()))?;
        let text: String = sqlx::query_scalar(SIP_BATCH_READ)
            .bind(now_unix.min(i64::MAX as u64) as i64)
            .bind(&names)
            .fetch_one(&mut *conn)
            .await?;
        let rows: Vec<SipBatchRow> = serde_json::from_str(&text).map_err(|e| invalid("sip_bindings", e.to_string()))?;
        let mut state: std::collections::HashMap<String, SipAccountState> = std::collections::HashMap::new();
        for (user, md5, sha256, contact, expires_at, call_id, cseq, q_milli, source, transport, user_agent, instance) in
            rows
        {
            let entry = state.entry(user).or_default();
            entry.digest_md5 = md5;
            entry.digest_sha256 = sha256;
            let Some(contact) = contact else { continue };
            entry.bindings.push(sip::registrar::Binding {
                contact,
                expires_at: expires_at.unwrap_or_default().max(0) as u64,
                call_id: call_id.unwrap_or_default(),
                cseq: cseq.unwrap_or_default().clamp(0, i64::from(u32::MAX)) as u32,
                q: q_milli.map(|q| q as f32 / 1000.0),
                source: source.and_then(|s| s.parse().ok()),
                transport: transport.unwrap_or_default(),
                user_agent,
                instance,
            });
        }
        for s in state.values_mut() {
            s.bindings
                .sort_by(|a, b| b.expires_at.cmp(&a.expires_at).then_with(|| a.contact.cmp(&b.contact)));
        }
        let writes = decide(state);
        if !writes.is_empty() {
            let changed: Vec<&str> = writes.iter().map(|(u, _)| u.as_str()).collect();
            let rows: Vec<SipBindingRow<'_>> = writes
                .iter()
                .flat_map(|(u, bs)| {
                    bs.iter().map(move |b| {
                        (
                            u.as_str(),
                            b.contact.as_str(),
                            b.expires_at.min(i64::MAX as u64) as i64,
                            b.call_id.as_str(),
                            i64::from(b.cseq),
                            b.q.map(|q| (q * 1000.0).round() as i64),
                            b.source.map(|s| s.to_string()),
                            b.transport.as_str(),
                            b.user_agent.as_deref(),
                            b.instance.as_deref(),
                        )
                    })
                })
                .collect();
            let changed = serde_json::to_string(&changed).map_err(|e| invalid("users", e.to_string()))?;
            let rows = serde_json::to_string(&rows).map_err(|e| invalid("sip_bindings", e.to_string()))?;
            sqlx::query(SIP_BATCH_WRITE)
                .bind(&changed)
                .bind(&rows)
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
        }
        Ok(())
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn is_comment_only(s: &str) -> bool {
    s.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

async fn hash_blocking(pw: String) -> Result<String, DirectoryError> {
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| DirectoryError::Hash(e.to_string()))?
}

fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn dir() -> (Directory, std::path::PathBuf) {
        let p = std::env::temp_dir().join(format!("confgate-dir-{}-{}", std::process::id(), rand::random::<u64>()));
        (Directory::open(&p, "srv.example").await.unwrap(), p)
    }

    fn acct(user: &str) -> NewAccount {
        NewAccount {
            user: user.into(),
            account_type: AccountType::Ws,
            display_name: String::new(),
            password: None,
        }
    }

    #[test]
    fn pin_rules() {
        assert!(validate_pin("1234").is_ok());
        assert!(validate_pin("123456789012345").is_ok());
        for bad in ["", "0123", "0", "1234567890123456", "12a4", " 123"] {
            let e = validate_pin(bad).unwrap_err();
            assert!(matches!(e, DirectoryError::Invalid { field: "pin", .. }), "{bad}: {e}");
        }
        assert!(validate_pin("0123")
            .unwrap_err()
            .to_string()
            .contains("must not start with 0"));
    }

    #[tokio::test]
    async fn accounts_lifecycle_and_case_insensitivity() {
        let (d, p) = dir().await;
        let a = d
            .add_account(NewAccount {
                user: "Alice".into(),
                account_type: AccountType::Sip,
                display_name: "Alice A".into(),
                password: Some("secret1".into()),
            })
            .await
            .unwrap();
        assert_eq!(a.id, "alice@srv.example");
        assert!(a.has_password);
        assert!(matches!(
            d.add_account(acct("ALICE")).await,
            Err(DirectoryError::Conflict { .. })
        ));
        assert_eq!(d.get_account("alice@SRV.example").await.unwrap().user, "alice");
        assert!(matches!(
            d.get_account("alice@other.example").await,
            Err(DirectoryError::Invalid { field: "user", .. })
        ));
        assert!(d.verify_password("alice", "secret1").await.unwrap().is_some());
        assert!(d.verify_password("alice", "wrong").await.unwrap().is_none());
        assert!(d.verify_password("nobody", "secret1").await.unwrap().is_none());
        d.update_account(
            "alice",
            AccountPatch {
                password: Some("secret2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(d.verify_password("alice", "secret1").await.unwrap().is_none());
        assert!(d
            .verify_password("Alice@srv.example", "secret2")
            .await
            .unwrap()
            .is_some());
        assert!(matches!(
            d.add_account(acct("bad user")).await,
            Err(DirectoryError::Invalid { field: "user", .. })
        ));
        assert!(matches!(
            d.add_account(acct(&"x".repeat(65))).await,
            Err(DirectoryError::Invalid { field: "user", .. })
        ));
        d.add_account(acct(&"x".repeat(64))).await.unwrap();
        d.remove_account("alice").await.unwrap();
        assert!(matches!(
            d.get_account("alice").await,
            Err(DirectoryError::NotFound { .. })
        ));
        std::fs::remove_dir_all(p).ok();
    }

    #[tokio::test]
    async fn conferences_validate_before_writing() {
        let (d, p) = dir().await;
        d.add_account(acct("bob")).await.unwrap();
        let mut spec = ConferenceSpec::new("c1");
        spec.pin = Some("0123".into());
        assert!(matches!(
            d.add_conference(spec.clone()).await,
            Err(DirectoryError::Invalid { field: "pin", .. })
        ));
        assert!(
            d.list_conferences().await.unwrap().is_empty(),
            "nothing written on a bad PIN"
        );
        spec.pin = Some("1234".into());
        spec.moderators = vec!["nobody".into()];
        assert!(matches!(
            d.add_conference(spec.clone()).await,
            Err(DirectoryError::Invalid {
                field: "moderators",
                ..
            })
        ));
        assert!(
            d.list_conferences().await.unwrap().is_empty(),
            "nothing written on a bad member"
        );
        spec.moderators = vec!["bob".into()];
        spec.participants = vec!["bob@srv.example".into()];
        let c = d.add_conference(spec.clone()).await.unwrap();
        assert_eq!(c.pin.as_deref(), Some("1234"));
        assert_eq!(c.moderators, vec!["bob@srv.example"]);
        assert!(c.participants.is_empty(), "a moderator is not listed twice");
        assert!(matches!(
            d.add_conference(spec).await,
            Err(DirectoryError::Conflict { .. })
        ));
        let mut bad = ConferenceSpec::new("has-dash");
        assert!(matches!(
            d.add_conference(bad.clone()).await,
            Err(DirectoryError::Invalid { field: "id", .. })
        ));
        bad.id = "ok".into();
        bad.max_participants = 0;
        assert!(matches!(
            d.add_conference(bad).await,
            Err(DirectoryError::Invalid {
                field: "max_participants",
                ..
            })
        ));
        // id clashes with an account
        assert!(matches!(
            d.add_conference(ConferenceSpec::new("BOB")).await,
            Err(DirectoryError::Conflict { .. })
        ));
        let c = d
            .update_conference(
                "C1",
                ConferencePatch {
                    pin: Some(None),
                    closed: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((c.pin, c.closed), (None, true));
        assert_eq!(d.conferences_of("bob").await.unwrap().len(), 1);
        d.remove_account("bob").await.unwrap();
        assert!(
            d.get_conference("c1").await.unwrap().moderators.is_empty(),
            "membership goes with the account"
        );
        d.remove_conference("c1").await.unwrap();
        assert!(matches!(
            d.remove_conference("c1").await,
            Err(DirectoryError::NotFound { .. })
        ));
        std::fs::remove_dir_all(p).ok();
    }

    #[tokio::test]
    async fn chat_is_on_by_default_and_can_be_turned_off() {
        let (d, p) = dir().await;
        let c = d.add_conference(ConferenceSpec::new("talk")).await.unwrap();
        assert!(c.chat, "chat is on unless turned off");
        let mut quiet = ConferenceSpec::new("quiet");
        quiet.chat = false;
        assert!(!d.add_conference(quiet).await.unwrap().chat);
        let c = d
            .update_conference(
                "talk",
                ConferencePatch {
                    chat: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!c.chat);
        let c = d
            .update_conference(
                "talk",
                ConferencePatch {
                    lobby: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!c.chat && c.lobby, "other changes keep the chat setting");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["chat"], false, "{json}");
        d.close().await;

        std::fs::remove_dir_all(&p).ok();

        // A directory from before the chat migration: its conferences get chat on.
        std::fs::create_dir_all(&p).unwrap();
        let opts = SqliteConnectOptions::new()
            .filename(p.join("confgate.db"))
            .create_if_missing(true);
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .execute(&old)
            .await
            .unwrap();
        for (version, name, sql) in &MIGRATIONS[..2] {
            for statement in sql
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty() && !is_comment_only(s))
            {
                sqlx::query(statement).execute(&old).await.unwrap();
            }
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 0)")
                .bind(version)
                .bind(name)
                .execute(&old)
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO conferences (id, name, closed, allow_anonymous, lobby, max_participants, permanent, created_at, updated_at) \
             VALUES ('old', 'old', FALSE, TRUE, FALSE, 10, TRUE, 0, 0)",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;
        let d = Directory::open(&p, "srv.example").await.unwrap();
        assert!(d.get_conference("old").await.unwrap().chat);
        d.close().await;
        std::fs::remove_dir_all(p).ok();
    }

    #[tokio::test]
    async fn address_book_entries() {
        let (d, p) = dir().await;
        d.add_account(acct("carol")).await.unwrap();
        d.add_account(NewAccount {
            display_name: "Dave D".into(),
            ..acct("dave")
        })
        .await
        .unwrap();
        let e = d.address_book_add("carol", "dave", "").await.unwrap();
        assert_eq!(
            (e.target.as_str(), e.display_name.as_str(), e.is_account),
            ("dave@srv.example", "Dave D", true)
        );
        let e = d.address_book_add("carol", "#tel:+15551234", "Office").await.unwrap();
        assert!(!e.is_account);
        assert!(matches!(
            d.address_book_add("carol", "ghost", "").await,
            Err(DirectoryError::Invalid { field: "target", .. })
        ));
        assert!(matches!(
            d.address_book_add("carol", "#bogus:x", "").await,
            Err(DirectoryError::Invalid { field: "target", .. })
        ));
        assert_eq!(d.address_book("carol").await.unwrap().len(), 2);
        d.address_book_remove("carol", "dave").await.unwrap();
        assert_eq!(d.address_book("carol").await.unwrap().len(), 1);
        std::fs::remove_dir_all(p).ok();
    }

    #[tokio::test]
    async fn admin_token_is_stable_until_rotated_and_reopen_keeps_data() {
        let (d, p) = dir().await;
        let (t1, created) = d.admin_token().await.unwrap();
        assert!(created);
        assert_eq!(d.admin_token().await.unwrap(), (t1.clone(), false));
        assert!(d.check_admin_token(&t1).await.unwrap());
        let t2 = d.rotate_admin_token().await.unwrap();
        assert!(!d.check_admin_token(&t1).await.unwrap());
        assert!(d.check_admin_token(&t2).await.unwrap());
        d.add_account(acct("erin")).await.unwrap();
        d.close().await;
        let d2 = Directory::open(&p, "srv.example").await.unwrap();
        assert_eq!(d2.get_account("erin").await.unwrap().id, "erin@srv.example");
        assert!(d2.check_admin_token(&t2).await.unwrap());
        std::fs::remove_dir_all(p).ok();
    }

    fn binding(contact: &str, expires_at: u64, full: bool) -> sip::registrar::Binding {
        sip::registrar::Binding {
            contact: contact.into(),
            expires_at,
            call_id: format!("cid-{contact}"),
            cseq: 7,
            q: full.then_some(0.5),
            source: full.then(|| "192.0.2.7:5062".parse().unwrap()),
            transport: "udp".into(),
            user_agent: full.then(|| "Phone \"X\" ü/1.0".into()),
            instance: full.then(|| "urn:uuid:00000000-0000-0000-0000-000000000001".into()),
        }
    }

    #[tokio::test]
    async fn sip_register_batches_read_credentials_and_bindings_and_commit_together() {
        let (d, p) = dir().await;
        for user in ["alice", "bob"] {
            let mut a = acct(user);
            a.account_type = AccountType::Sip;
            a.password = Some(format!("pw-{user}-123456"));
            d.add_account(a).await.unwrap();
        }
        d.add_account(acct("carol")).await.unwrap();
        let now = 1_000_000;
        let mut store = d.sip_registrar_store();
        let alice = vec![
            binding("sip:alice@[2001:db8::1]:5060;x=\"q\"", now + 60, true),
            binding("sip:alice@a", now + 30, false),
        ];
        let users: Vec<String> = ["alice", "bob", "carol", "nobody", "alice"].map(String::from).to_vec();
        let mut seen = None;
        store
            .register_batch(&users, now, |state| {
                seen = Some(state.clone());
                vec![
                    ("alice".into(), alice.clone()),
                    (
                        "bob".into(),
                        vec![
                            binding("sip:bob@b", now + 10, false),
                            binding("sip:bob@old", now, false),
                        ],
                    ),
                ]
            })
            .await
            .unwrap();
        let seen = seen.unwrap();
        assert_eq!(seen.len(), 3, "unknown accounts are left out: {seen:?}");
        let (md5, sha) = d.digest_ha1s("alice").await.unwrap();
        assert_eq!(seen["alice"].digest_md5, md5);
        assert_eq!(seen["alice"].digest_sha256, sha);
        assert!(md5.is_some() && sha.is_some());
        assert_eq!(seen["carol"], SipAccountState::default(), "no password, no bindings");
        assert!(seen["alice"].bindings.is_empty());
        // Written and readable by the other functions; the one expiring now is not live.
        assert_eq!(d.sip_bindings("alice", now).await.unwrap(), alice);
        assert_eq!(
            d.sip_bindings("bob", now).await.unwrap(),
            vec![binding("sip:bob@b", now + 10, false)]
        );

        // The next batch sees what the last one wrote, latest expiry first; it replaces whole lists.
        let mut seen = None;
        store
            .register_batch(&["alice".into(), "bob".into()], now, |state| {
                seen = Some(state);
                vec![("alice".into(), vec![binding("sip:alice@c", now + 90, false)])]
            })
            .await
            .unwrap();
        let seen = seen.unwrap();
        assert_eq!(seen["alice"].bindings, alice);
        assert_eq!(seen["bob"].bindings, vec![binding("sip:bob@b", now + 10, false)]);
        assert_eq!(
            d.sip_bindings("alice", now).await.unwrap(),
            vec![binding("sip:alice@c", now + 90, false)]
        );

        // A batch that fails writes nothing, and the next one runs on a fresh connection.
        let failed = store
            .register_batch(&["alice".into()], now, |_| {
                vec![
                    ("alice".into(), Vec::new()),
                    ("nobody".into(), vec![binding("sip:x@y", now + 5, false)]),
                ]
            })
            .await;
        assert!(failed.is_err(), "a binding of no account breaks the foreign key");
        assert_eq!(d.sip_bindings("alice", now).await.unwrap().len(), 1);
        store
            .register_batch(&["alice".into()], now, |state| {
                assert_eq!(state["alice"].bindings.len(), 1);
                vec![("alice".into(), Vec::new())]
            })
            .await
            .unwrap();
        assert!(d.sip_bindings("alice", now).await.unwrap().is_empty());

        // Committed means on disk: a reopened directory has them.
        store
            .register_batch(&["bob".into()], now, |_| vec![("bob".into(), alice.clone())])
            .await
            .unwrap();
        drop(store);
        d.close().await;
        let d2 = Directory::open(&p, "srv.example").await.unwrap();
        assert_eq!(d2.sip_bindings("bob", now).await.unwrap(), alice);
        d2.close().await;
        std::fs::remove_dir_all(p).ok();
    }

    #[tokio::test]
    async fn concurrent_openers_migrate_once() {
        let p = std::env::temp_dir().join(format!("confgate-dir-mig-{}", rand::random::<u64>()));
        let (a, b) = tokio::join!(Directory::open(&p, "s"), Directory::open(&p, "s"));
        let (a, b) = (a.unwrap(), b.unwrap());
        let (r1, r2) = tokio::join!(a.add_account(acct("u1")), b.add_account(acct("u2")));
        r1.unwrap();
        r2.unwrap();
        assert_eq!(a.list_accounts().await.unwrap().len(), 2);
        std::fs::remove_dir_all(p).ok();
    }
}
