//! Django's database, seen from the sidecar: `auth_user` read-only, plus our own `sidecar_*`
//! tables, on SQLite (the embedded default) or PostgreSQL (production).
//!
//! Both backends run the same SQL: it sticks to the common dialect (`$n` placeholders, which
//! SQLite numbers in order of appearance) and casts Django's columns to BIGINT so that one
//! decoding works for both.

pub mod deleted_users;
pub mod direct;
pub mod host_keys;
pub mod login_failures;
mod migrations;
pub mod users;
pub mod verified_keys;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::config::{UserTableSettings, redact_url};

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query code against whichever pool is configured.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The validated, quoted names of Django's user table and columns.
#[derive(Clone, Debug)]
pub struct UserTable {
    pub table: String,
    pub id: String,
    pub username: String,
    pub password: String,
    pub active: String,
    /// The statements that name these and run on every sync or login, written once here
    /// rather than formatted again at each call.
    pub(crate) statements: UserStatements,
}

/// The text of the statements kept in [`UserTable`].
#[derive(Clone, Debug, Default)]
pub(crate) struct UserStatements {
    /// At the start of every sync, and on other calls whose key was not verified moments ago.
    pub(crate) find_host_key: String,
    /// Every login.
    pub(crate) user_by_username: String,
    /// The admin endpoints; kept with the lookup by username, whose text it shares.
    pub(crate) user_by_id: String,
}

impl UserTable {
    pub fn from_settings(settings: &UserTableSettings) -> anyhow::Result<Self> {
        let names = Self {
            table: quote_identifier(&settings.user_table)?,
            id: quote_identifier(&settings.user_id_column)?,
            username: quote_identifier(&settings.username_column)?,
            password: quote_identifier(&settings.password_column)?,
            active: quote_identifier(&settings.active_column)?,
            statements: UserStatements::default(),
        };
        let statements = UserStatements {
            find_host_key: host_keys::find_host_key_sql(&names),
            user_by_username: users::user_where_sql(&names, &names.username),
            user_by_id: users::user_where_sql(&names, &names.id),
        };
        Ok(Self {
            statements,
            ..names
        })
    }
}

/// Only plain identifiers are accepted, because they are pasted into SQL.
fn quote_identifier(name: &str) -> anyhow::Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        bail!("invalid SQL identifier {name:?} in the user table settings");
    }
    Ok(format!("\"{name}\""))
}

#[derive(Clone, Debug)]
pub struct Database {
    pub pool: Pool,
    /// Shared: the state holding it is cloned for every request.
    pub users: std::sync::Arc<UserTable>,
    /// Host keys verified moments ago; every deletion of keys voids them.
    pub verified: std::sync::Arc<verified_keys::VerifiedKeys>,
    /// On SQLite, the host-key lookup read without sqlx's thread when it can go ahead at once.
    pub(crate) direct: Option<std::sync::Arc<direct::DirectReads>>,
}

impl Database {
    /// Connects, checks that Django's user table is there, and runs our migrations.
    pub async fn connect(url: &str, users: UserTable) -> anyhow::Result<Self> {
        let mut direct = None;
        let pool = if let Some(path) = sqlite_path(url) {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(false);
            // No ping before each query: a connection to a local file cannot be lost the way a
            // network one can, and the ping is a round trip to sqlx's worker thread of its own
            // (docs/performance.md, "The last lookups and the ping").
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| {
                    format!("cannot open Django's SQLite database {path} (run `manage.py migrate` first)")
                })?;
            direct =
                direct::DirectReads::open(std::path::Path::new(&path)).map(std::sync::Arc::new);
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .with_context(|| format!("invalid PostgreSQL URL {}", redact_url(url)))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("cannot connect to {}", redact_url(url)))?;
            Pool::Postgres(pool)
        } else {
            bail!(
                "unsupported database URL {} (expected sqlite:// or postgres://)",
                redact_url(url)
            );
        };
        let db = Self {
            pool,
            users: std::sync::Arc::new(users),
            verified: Default::default(),
            direct,
        };
        db.check_user_table().await?;
        db.migrate().await?;
        Ok(db)
    }

    async fn check_user_table(&self) -> anyhow::Result<()> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE 1 = 0", self.users.table);
        let result: Result<i64, sqlx::Error> =
            with_pool!(self, |pool| sqlx::query_scalar(&sql).fetch_one(pool).await);
        result.with_context(|| {
            format!(
                "Django's user table {} is not readable (has `manage.py migrate` run?)",
                self.users.table
            )
        })?;
        Ok(())
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        const CONTEXT: &str = "running the sidecar's database migrations";
        match &self.pool {
            Pool::Sqlite(pool) => migrations::sqlite().await.context(CONTEXT)?.run(pool).await,
            Pool::Postgres(pool) => {
                migrations::postgres()
                    .await
                    .context(CONTEXT)?
                    .run(pool)
                    .await
            }
        }
        .context(CONTEXT)
    }

    /// Cheap liveness probe for `/health`.
    pub async fn ping(&self) -> bool {
        let result: Result<i64, sqlx::Error> =
            with_pool!(self, |pool| sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
                .fetch_one(pool)
                .await);
        result.is_ok()
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Runs one statement with `args` bound to `$1`, `$2`, … in order. Returns how many rows
    /// it changed.
    pub(crate) async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> sqlx::Result<u64> {
        with_pool!(self, |pool| bind(sqlx::query(sql), args)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
    }
}

/// `query` with `args` bound in order, on either backend.
pub(crate) fn bind<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for arg in args {
        query = match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Int(number) => query.bind(number),
        };
    }
    query
}

/// A value for a `$n` placeholder of [`Database::execute`]: our tables hold text and integers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// Maps dj-database-url's SQLite forms to a file path, exactly as Django reads them:
/// `sqlite:////abs/db.sqlite3` is absolute and `sqlite:///db.sqlite3` is relative to the cwd.
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.strip_prefix('/').unwrap_or(rest);
    // Query options (`?mode=rwc`) are ours to choose, not the caller's.
    Some(path.split('?').next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understands_dj_database_url_sqlite_forms() {
        assert_eq!(
            sqlite_path("sqlite:////tmp/db.sqlite3").unwrap(),
            "/tmp/db.sqlite3"
        );
        assert_eq!(sqlite_path("sqlite:///db.sqlite3").unwrap(), "db.sqlite3");
        assert_eq!(
            sqlite_path("sqlite:///d/db.sqlite3?mode=ro").unwrap(),
            "d/db.sqlite3"
        );
        assert!(sqlite_path("postgres://x").is_none());
    }

    fn user_table(names: [&str; 5]) -> UserTable {
        let [table, id, username, password, active] = names.map(str::to_string);
        UserTable::from_settings(&UserTableSettings {
            user_table: table,
            user_id_column: id,
            username_column: username,
            password_column: password,
            active_column: active,
        })
        .unwrap()
    }

    /// The statements are built once from the configured names; the text is what each call
    /// used to format for itself.
    #[test]
    fn kept_statements_are_the_ones_formatted_at_each_call() {
        // Django's own names (the defaults of the settings), and those of a custom user model.
        let django = user_table(["auth_user", "id", "username", "password", "is_active"]);
        let custom = user_table(["accounts_member", "member_id", "email", "pw", "enabled"]);
        assert_eq!(
            custom.statements.find_host_key,
            "SELECT k.password_fingerprint AS password_fingerprint, \
             k.last_used_at AS last_used_at, CAST(u.\"member_id\" AS BIGINT) AS id, \
             u.\"email\" AS username, u.\"pw\" AS password, \
             CAST(CASE WHEN u.\"enabled\" THEN 1 ELSE 0 END AS BIGINT) AS is_active \
             FROM sidecar_host_keys k JOIN \"accounts_member\" u ON u.\"member_id\" = k.user_id \
             WHERE k.key_hash = $1"
        );
        assert_eq!(
            custom.statements.user_by_id,
            "SELECT CAST(\"member_id\" AS BIGINT) AS id, \"email\" AS username, \
             \"pw\" AS password, \
             CAST(CASE WHEN \"enabled\" THEN 1 ELSE 0 END AS BIGINT) AS is_active \
             FROM \"accounts_member\" WHERE \"member_id\" = $1"
        );
        assert_eq!(
            django.statements.find_host_key,
            "SELECT k.password_fingerprint AS password_fingerprint, \
             k.last_used_at AS last_used_at, CAST(u.\"id\" AS BIGINT) AS id, \
             u.\"username\" AS username, u.\"password\" AS password, \
             CAST(CASE WHEN u.\"is_active\" THEN 1 ELSE 0 END AS BIGINT) AS is_active \
             FROM sidecar_host_keys k JOIN \"auth_user\" u ON u.\"id\" = k.user_id \
             WHERE k.key_hash = $1"
        );
        assert_eq!(
            django.statements.user_by_username,
            "SELECT CAST(\"id\" AS BIGINT) AS id, \"username\" AS username, \
             \"password\" AS password, \
             CAST(CASE WHEN \"is_active\" THEN 1 ELSE 0 END AS BIGINT) AS is_active \
             FROM \"auth_user\" WHERE \"username\" = $1"
        );
    }

    #[test]
    fn refuses_identifiers_that_could_inject_sql() {
        assert_eq!(quote_identifier("auth_user").unwrap(), "\"auth_user\"");
        for bad in ["", "a b", "x\"; DROP TABLE y", "1abc", "a-b"] {
            assert!(quote_identifier(bad).is_err(), "{bad}");
        }
    }
}
