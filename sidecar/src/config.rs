//! Settings, read from the command line or the environment (clap's `env` support).
//!
//! Every variable here is listed in the README with its default; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::limits::Limits;

/// Where the client address of a request comes from. Behind nginx the socket address is the
/// proxy's, so a trusted header has to be named explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IpSource {
    /// The TCP peer address.
    None,
    /// `X-Real-IP`, as set by nginx's `proxy_set_header X-Real-IP $remote_addr`.
    XRealIp,
    /// The rightmost entry of `X-Forwarded-For`, which is the one our own proxy appended.
    XForwardedFor,
}

/// The names of Django's user table and columns, configurable for custom user models.
#[derive(Clone, Debug, Args)]
pub struct UserTableSettings {
    #[arg(long, env = "SIDECAR_USER_TABLE", default_value = "auth_user")]
    pub user_table: String,
    #[arg(long, env = "SIDECAR_USER_ID_COLUMN", default_value = "id")]
    pub user_id_column: String,
    #[arg(long, env = "SIDECAR_USERNAME_COLUMN", default_value = "username")]
    pub username_column: String,
    #[arg(long, env = "SIDECAR_PASSWORD_COLUMN", default_value = "password")]
    pub password_column: String,
    #[arg(long, env = "SIDECAR_ACTIVE_COLUMN", default_value = "is_active")]
    pub active_column: String,
}

#[derive(Clone, Args)]
pub struct Settings {
    /// Address of the public listener (`/sync/`, `/msync/`, `/health`).
    #[arg(long, env = "SIDECAR_PUBLIC_ADDR", default_value = "0.0.0.0:8080")]
    pub public_addr: SocketAddr,

    /// Address of the internal listener (import and admin API, metrics). Keep it private.
    #[arg(long, env = "SIDECAR_INTERNAL_ADDR", default_value = "127.0.0.1:8081")]
    pub internal_addr: SocketAddr,

    /// Bearer token that every internal API call must carry. Unset: the internal API refuses all.
    #[arg(long, env = "SIDECAR_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,

    /// Django's database, in dj-database-url form (`sqlite:////abs/db.sqlite3`,
    /// `postgres://user:pass@host/db`). Falls back to `DATABASE_URL`.
    #[arg(long, env = "SIDECAR_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Folder holding `users/<django id>/` with each user's collection and media.
    #[arg(long, env = "SIDECAR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Path prefix the public routes are served under, e.g. `/anki`.
    #[arg(long, env = "SIDECAR_BASE_PATH", default_value = "")]
    pub base_path: String,

    /// Trusted source of the client IP, for throttling and logs.
    #[arg(long, env = "SIDECAR_IP_HEADER", value_enum, default_value = "none")]
    pub ip_header: IpSource,

    /// Failed logins allowed per username, and per client IP, within the window.
    #[arg(long, env = "SIDECAR_LOGIN_MAX_FAILURES", default_value_t = 10)]
    pub login_max_failures: u32,

    /// Length of the login throttling window, in seconds.
    #[arg(long, env = "SIDECAR_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// A normal sync left idle this long is rolled back, so a vanished client cannot hold a
    /// user's collection hostage.
    #[arg(long, env = "SIDECAR_SYNC_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub sync_idle_timeout_secs: u64,

    /// How long an import waits for the user's active normal sync to end before answering
    /// 503; imports never break a sync in progress.
    #[arg(long, env = "SIDECAR_IMPORT_WAIT_SECS", default_value_t = 60)]
    pub import_wait_secs: u64,

    // --- auth: revocation sweep -------------------------------------------------------------
    /// How often the keys of inactive or deleted users are revoked and old login-throttling
    /// rows expire, in seconds.
    #[arg(long, env = "SIDECAR_AUTH_SWEEP_SECS", default_value_t = 60)]
    pub auth_sweep_secs: u64,
    // store: per-user files.
    /// At start, temporary files a crash left in user folders are removed once they have not
    /// been written to for this long. Fresh ones may belong to a request of another server
    /// process on the same folder.
    #[arg(long, env = "SIDECAR_TEMP_CLEANUP_AGE_SECS", default_value_t = 3600)]
    pub temp_cleanup_age_secs: u64,

    /// For the fault-injection tests only: the process aborts when it reaches the named point
    /// (see `sidecar/src/fault.rs`). Never set it in production.
    #[arg(long, env = "SIDECAR_FAULT_POINT", hide = true)]
    pub fault_point: Option<String>,

    // cluster: several nodes on one PostgreSQL and one shared data folder.
    /// This node's name; setting it turns on cluster mode (docs/operations.md#cluster-mode).
    /// Cluster mode needs a PostgreSQL database. Unset: one process owns every user.
    #[arg(long, env = "SIDECAR_NODE_ID")]
    pub node_id: Option<String>,

    /// Cluster mode: PostgreSQL connections kept for the per-user locks. Each open normal sync
    /// keeps one between its requests, and each running operation holds one.
    #[arg(long, env = "SIDECAR_CLUSTER_LOCK_CONNECTIONS", default_value_t = 32)]
    pub cluster_lock_connections: u32,

    #[command(flatten)]
    pub user_table: UserTableSettings,

    // net: every body cap, count cap, timeout and the connection cap live in `limits.rs`
    // (SIDECAR_MAX_BODY_MB and SIDECAR_MAX_UNCOMPRESSED_MB included).
    #[command(flatten)]
    pub limits: Limits,
}

impl Settings {
    /// The full-upload cap on a compressed body.
    pub fn max_body_bytes(&self) -> u64 {
        self.limits.full_upload_max_compressed()
    }

    /// The full-upload cap on a decompressed body (also bounds collections built by imports).
    pub fn max_uncompressed_bytes(&self) -> u64 {
        self.limits.full_upload_max_uncompressed()
    }

    /// The base path without a trailing slash, and with a leading one when non-empty.
    pub fn normalized_base_path(&self) -> String {
        let trimmed = self.base_path.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        }
    }

    pub fn resolved_database_url(&self) -> Option<String> {
        self.database_url
            .clone()
            .filter(|url| !url.is_empty())
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
            })
    }
}

/// The node id of cluster mode, checked against the database URL: `Ok(None)` in single-process
/// mode, `Ok(Some(id))` in cluster mode, and the one-line reason to refuse to start otherwise.
pub fn cluster_node(
    node_id: Option<&str>,
    database_url: Option<&str>,
) -> Result<Option<String>, String> {
    // An empty value counts as unset, as compose and .env files write an unset variable.
    let Some(node) = node_id.filter(|node| !node.is_empty()) else {
        return Ok(None);
    };
    let valid = node.len() <= 64
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(format!(
            "SIDECAR_NODE_ID {node:?} is not a valid node name (1-64 of A-Z a-z 0-9 - _ .)"
        ));
    }
    let postgres = database_url
        .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"));
    if !postgres {
        return Err(
            "cluster mode (SIDECAR_NODE_ID) needs PostgreSQL: set DATABASE_URL to a postgres:// URL; SQLite serves one process only"
                .to_string(),
        );
    }
    Ok(Some(node.to_string()))
}

/// Written by hand so that the database URL (it may hold a password) and the internal token
/// never reach a log line.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Settings");
        // The fields shown as they are, under their own names.
        macro_rules! plain_fields {
            ($($field:ident),+) => {
                $(out.field(stringify!($field), &self.$field);)+
            };
        }
        plain_fields!(public_addr, internal_addr);
        out.field(
            "internal_token",
            &self.internal_token.as_ref().map(|_| "<redacted>"),
        );
        out.field(
            "database_url",
            &self.resolved_database_url().map(|u| redact_url(&u)),
        );
        plain_fields!(
            data_dir,
            base_path,
            ip_header,
            login_max_failures,
            login_window_secs,
            sync_idle_timeout_secs,
            import_wait_secs,
            auth_sweep_secs,
            temp_cleanup_age_secs,
            fault_point,
            node_id,
            cluster_lock_connections,
            user_table,
            limits
        );
        out.finish()
    }
}

/// Replaces the password part of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let credentials = &rest[..at];
    match credentials.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &credentials[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
impl Settings {
    /// The settings these command-line arguments give (without the program's name), with
    /// every other setting at its default; for tests.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        Cli::parse_from(std::iter::once("test".to_string()).chain(args)).settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(
            redact_url("sqlite:////tmp/db.sqlite3"),
            "sqlite:////tmp/db.sqlite3"
        );
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
    }

    #[test]
    fn single_mode_without_a_node_id_accepts_any_database() {
        assert_eq!(
            cluster_node(None, Some("sqlite:////tmp/db.sqlite3")),
            Ok(None)
        );
        assert_eq!(cluster_node(None, None), Ok(None));
        assert_eq!(cluster_node(Some(""), None), Ok(None), "empty is unset");
    }

    #[test]
    fn cluster_mode_refuses_sqlite_and_a_missing_database() {
        for url in [Some("sqlite:////tmp/db.sqlite3"), None, Some("")] {
            let refusal = cluster_node(Some("n1"), url).unwrap_err();
            assert!(refusal.contains("needs PostgreSQL"), "{refusal}");
            assert!(!refusal.contains('\n'), "one line: {refusal}");
        }
    }

    #[test]
    fn cluster_mode_accepts_postgres_and_checks_the_name() {
        assert_eq!(
            cluster_node(Some("node-1"), Some("postgres://u:p@db/app")),
            Ok(Some("node-1".to_string()))
        );
        assert_eq!(
            cluster_node(Some("b.2"), Some("postgresql://db/app")),
            Ok(Some("b.2".to_string()))
        );
        for bad in ["a b", "x\r\ny", &"n".repeat(65)] {
            assert!(
                cluster_node(Some(bad), Some("postgres://db/app")).is_err(),
                "{bad:?}"
            );
        }
    }
}
