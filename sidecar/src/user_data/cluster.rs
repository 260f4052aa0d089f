//! Cluster mode's half of the user's lock: a PostgreSQL session-level advisory lock per user,
//! so that several nodes on one database and one shared data folder never touch one user's
//! files at the same time (docs/design.md#cluster-mode).
//!
//! The lock is taken on a connection of a small pool of its own and held by that connection;
//! whoever holds it keeps the connection (an open normal sync keeps it in the user's slot
//! between requests). Unlocking returns the connection to the pool. A node that dies closes
//! its connections, and PostgreSQL releases their locks by itself.
//!
//! A `start` (or anything else that ends an open sync) that finds the lock taken asks the
//! holder to give it up: it `NOTIFY`s [`CHANNEL`] with the user id and then waits. Every node
//! `LISTEN`s there and ends the user's open sync, if it holds one, as a local new start would.
//!
//! Nothing here runs in single-process mode, where the registry has no `ClusterLocks`.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::time::Instant;

use crate::config::redact_url;

/// The first key of every user lock: the sidecar's namespace, so that the user id (the second
/// key) collides with no other application's advisory locks on the same database. "ANKI".
pub const LOCK_NAMESPACE: i32 = 0x414E_4B49;

/// The channel on which a node asks the holder of a user's lock to end that user's open sync.
/// The payload is `<user id> <node>`: a node hears its own notifications too, and ignores them.
pub const CHANNEL: &str = "sidecar_user_lock";

/// How a node waits for a user's lock that another connection holds.
#[derive(Clone, Copy, Debug)]
pub enum Acquire {
    /// Waits as long as it takes (operations that leave an open sync alone, such as media).
    Wait,
    /// Asks the holder to end its open sync (NOTIFY), then waits: `meta`, `start`, full
    /// up- and download, reset, removal.
    Supersede,
    /// Waits until the deadline at most (PostgreSQL's `lock_timeout`, no polling); imports.
    Until(Instant),
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum AcquireError {
    /// `Acquire::Until`'s deadline passed first.
    TimedOut,
    Database(anyhow::Error),
}

/// The lock pool of one node.
pub struct ClusterLocks {
    pub node: String,
    pool: PgPool,
}

impl ClusterLocks {
    /// Opens the lock pool: `connections` for held locks, plus one for the listener.
    pub async fn connect(url: &str, node: String, connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid PostgreSQL URL {}", redact_url(url)))?
            .application_name(&format!("anki-sidecar-locks-{node}"));
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1) + 1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            // A returned connection holds no lock (unlocking is checked, and a connection whose
            // unlock failed is closed instead), so it needs no reset here.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect the lock pool to {}", redact_url(url)))?;
        Ok(Self { node, pool })
    }

    /// Takes the user's advisory lock on a connection of the pool, waiting as `how` says.
    pub async fn acquire(&self, user_id: i64, how: Acquire) -> Result<HeldLock, AcquireError> {
        let key = lock_key(user_id).map_err(AcquireError::Database)?;
        let conn = self
            .pool
            .acquire()
            .await
            .context("no lock connection")
            .map_err(AcquireError::Database)?;
        // Until the lock is ours, a dropped future (a client that went away) must not return
        // a connection that may still be waiting for, or holding, the lock: `Pending` closes it.
        let mut pending = Pending(Some(conn));
        let conn = pending.0.as_mut().expect("set above");
        let db = |err: sqlx::Error| AcquireError::Database(err.into());
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(key)
            .fetch_one(&mut **conn)
            .await
            .map_err(db)?;
        if !taken {
            match how {
                Acquire::Wait => wait(conn, key).await.map_err(db)?,
                Acquire::Supersede => {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(format!("{user_id} {}", self.node))
                        .execute(&mut **conn)
                        .await
                        .map_err(db)?;
                    tracing::info!(
                        user_id,
                        "user busy on another node; asked it to end its sync"
                    );
                    wait(conn, key).await.map_err(db)?;
                }
                Acquire::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let ms = left.as_millis().clamp(1, i32::MAX as u128);
                    sqlx::query(&format!("SET lock_timeout = {ms}"))
                        .execute(&mut **conn)
                        .await
                        .map_err(db)?;
                    let waited = wait(conn, key).await;
                    sqlx::query("SET lock_timeout = 0")
                        .execute(&mut **conn)
                        .await
                        .map_err(db)?;
                    match waited {
                        Ok(()) => {}
                        Err(err) if is_lock_timeout(&err) => return Err(AcquireError::TimedOut),
                        Err(err) => return Err(db(err)),
                    }
                }
            }
        }
        Ok(HeldLock {
            conn: pending.0.take(),
            user_id,
            key,
            acquired: std::time::Instant::now(),
        })
    }

    /// Listens on [`CHANNEL`] for as long as the process runs, calling `on_request` with the
    /// user id of each other node's request to end a sync, and when it was heard (a lock taken
    /// after that is not the one the request was about). Reconnects after a lost connection;
    /// requests sent meanwhile are lost, and their senders wait until the sync ends by itself
    /// (its `finish`, or the idle timeout).
    pub fn spawn_listener<F, Fut>(&self, on_request: F)
    where
        F: Fn(i64, std::time::Instant) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let pool = self.pool.clone();
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::warn!(error = %err, "cluster listener cannot connect; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "cluster listener cannot LISTEN; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                loop {
                    match listener.recv().await {
                        Ok(notification) => match parse_request(notification.payload()) {
                            Some((_, sender)) if sender == node => {}
                            Some((user_id, _)) => {
                                tokio::spawn(on_request(user_id, std::time::Instant::now()));
                            }
                            None => tracing::warn!(
                                payload = notification.payload(),
                                "ignoring a malformed cluster notification"
                            ),
                        },
                        Err(err) => {
                            tracing::warn!(error = %err, "cluster listener lost its connection");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// `<user id> <node>`, as sent by [`ClusterLocks::acquire`].
fn parse_request(payload: &str) -> Option<(i64, &str)> {
    let (user_id, node) = payload.split_once(' ')?;
    Some((user_id.parse().ok()?, node))
}

async fn wait(conn: &mut PoolConnection<Postgres>, key: i32) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(key)
        .execute(&mut **conn)
        .await
        .map(|_| ())
}

fn is_lock_timeout(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|err| err.code())
        .is_some_and(|code| code == "55P03")
}

/// The second lock key: Django's user ids are `integer` (auth_user.id is an AutoField).
fn lock_key(user_id: i64) -> anyhow::Result<i32> {
    i32::try_from(user_id).with_context(|| format!("user id {user_id} does not fit a lock key"))
}

/// A connection that is acquiring a lock; dropped before it is done, it is closed.
struct Pending(Option<PoolConnection<Postgres>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// The user's advisory lock, held by its connection. [`HeldLock::release`] unlocks it and
/// returns the connection to the pool; dropped without that, the connection is closed, which
/// releases the lock too.
pub struct HeldLock {
    conn: Option<PoolConnection<Postgres>>,
    user_id: i64,
    key: i32,
    acquired: std::time::Instant,
}

impl HeldLock {
    /// When this node took the lock: a request to end a sync heard before that was about an
    /// earlier holder.
    pub fn acquired(&self) -> std::time::Instant {
        self.acquired
    }

    /// Whether the lock's connection is still alive, and so the lock still held. A node cut
    /// off from PostgreSQL loses its locks to the next node that asks, so an open sync checks
    /// this before every call instead of writing on as if it still owned the user.
    pub async fn is_alive(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let alive = sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok();
        if !alive {
            // Closed rather than returned to the pool.
            drop(self.conn.take().map(PoolConnection::detach));
        }
        alive
    }

    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_advisory_unlock($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await;
        match unlocked {
            Ok(true) => drop(conn),
            other => {
                tracing::warn!(
                    user_id = self.user_id,
                    result = ?other.map_err(|err| err.to_string()),
                    "unlocking a user failed; closing its lock connection"
                );
                drop(conn.detach());
            }
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_the_user_ids_and_never_wrap() {
        assert_eq!(lock_key(42).unwrap(), 42);
        assert_eq!(lock_key(i64::from(i32::MAX)).unwrap(), i32::MAX);
        assert!(lock_key(i64::from(i32::MAX) + 1).is_err());
    }

    #[test]
    fn requests_name_the_user_and_the_sender() {
        assert_eq!(parse_request("42 node-a"), Some((42, "node-a")));
        assert_eq!(parse_request("42"), None);
        assert_eq!(parse_request("x node-a"), None);
    }
}
