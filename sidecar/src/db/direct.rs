//! The host-key lookup on Django's SQLite file, read where the request runs instead of through
//! sqlx's worker thread (docs/performance.md, "The key lookup without sqlx's thread").
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query costs two thread
//! wake-ups, more than the indexed read itself. Every lookup of a host key (`meta` begins every
//! sync with one) reads here instead: on a read-only connection kept open, which never waits
//! for a lock (busy timeout 0). When the read cannot go ahead at once (Django holds its
//! write lock, a journal left by a crash must be rolled back, the file is gone) this answers
//! nothing and the caller asks sqlx, which waits on its own thread as before. So this path
//! answers only what it can read at once, and every other case behaves as it did without it.
//!
//! PostgreSQL needs none of this: its client is asynchronous, with no thread to cross.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::host_keys::StoredHostKey;
use super::users::DjangoUser;

/// Connections kept at most. A lookup holds one only while it runs, without awaiting, so no
/// more run at once than the runtime has worker threads; a lookup that finds none free asks
/// sqlx.
const MAX_CONNECTIONS: usize = 8;

/// Read-only connections to Django's SQLite file, for the host-key lookup.
pub struct DirectReads {
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for DirectReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReads")
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl DirectReads {
    /// One connection per worker thread of the runtime (at most [`MAX_CONNECTIONS`]), opened
    /// now, at start-up, so that no request ever opens a file on a worker. None when the file
    /// cannot be opened this way: every lookup then goes through sqlx.
    pub fn open(path: &Path) -> Option<Self> {
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_CONNECTIONS);
        let connections = (0..count)
            .map(|_| open_read_only(path))
            .collect::<rusqlite::Result<Vec<_>>>();
        match connections {
            Ok(connections) => Some(Self {
                idle: Mutex::new(connections),
            }),
            Err(err) => {
                tracing::warn!(error = %err, "host keys will be looked up through sqlx only");
                None
            }
        }
    }

    /// The key and its owner as `sql` (the statement of `Database::find_host_key`) reads them
    /// for `key_hash`, or None when the read could not go ahead at once (the caller then asks
    /// sqlx).
    pub fn find_host_key(&self, sql: &str, key_hash: &str) -> Option<Option<StoredHostKey>> {
        let conn = self.lock().pop()?;
        let found = read_host_key(&conn, sql, key_hash);
        // Only what was taken comes back: the list never grows past what `open` made.
        self.lock().push(conn);
        match found {
            Ok(found) => Some(found),
            Err(err) => {
                tracing::debug!(error = %err, "host key read directly failed; asking sqlx");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The list holds no invariant a panic could break halfway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // Never wait for Django's write lock here: the caller falls back to sqlx, which does.
    conn.busy_timeout(Duration::ZERO)?;
    Ok(conn)
}

fn read_host_key(
    conn: &Connection,
    sql: &str,
    key_hash: &str,
) -> rusqlite::Result<Option<StoredHostKey>> {
    conn.prepare_cached(sql)?
        .query_row([key_hash], |row| {
            Ok(StoredHostKey {
                password_fingerprint: row.get("password_fingerprint")?,
                last_used_at: row.get("last_used_at")?,
                user: DjangoUser {
                    id: row.get("id")?,
                    username: row.get("username")?,
                    password: row.get("password")?,
                    is_active: row.get::<_, i64>("is_active")? != 0,
                },
            })
        })
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, UserTable};

    /// Django's SQLite file with one active user and the sidecar's tables, and one host key.
    async fn database() -> (tempfile::TempDir, std::path::PathBuf, Database) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE auth_user (id integer PRIMARY KEY, password text, \
                 username text, is_active bool); \
                 INSERT INTO auth_user VALUES (7, 'pbkdf2_sha256$1$s$h', 'alice', 1);",
            )
            .unwrap();
        let url = format!("sqlite:///{}", path.display());
        let settings = crate::config::Settings::from_args([format!("--database-url={url}")]);
        let users = UserTable::from_settings(&settings.user_table).unwrap();
        let db = Database::connect(&url, users).await.unwrap();
        db.insert_host_key("digest-1", 7, "fp", "test", 100)
            .await
            .unwrap();
        (dir, path, db)
    }

    #[tokio::test]
    async fn reads_what_sqlx_reads() {
        let (_dir, path, db) = database().await;
        let direct = DirectReads::open(&path).unwrap();
        let sql = &db.users.statements.find_host_key;
        let found = direct.find_host_key(sql, "digest-1").unwrap().unwrap();
        assert_eq!(found.password_fingerprint, "fp");
        assert_eq!(found.last_used_at, 100);
        assert_eq!((found.user.id, found.user.username.as_str()), (7, "alice"));
        assert_eq!(found.user.password, "pbkdf2_sha256$1$s$h");
        assert!(found.user.is_active);
        assert!(direct.find_host_key(sql, "digest-2").unwrap().is_none());
        // What sqlx reads for the same key.
        let through_sqlx = db.find_host_key_through_sqlx("digest-1").await.unwrap();
        assert_eq!(through_sqlx.unwrap().user.id, found.user.id);
    }

    /// While a writer holds Django's file, this path answers nothing at once, and keeps its
    /// connection. The writer lets go half a second later: a read that waited for it would
    /// answer the key instead.
    #[tokio::test]
    async fn never_waits_for_a_write_lock() {
        let (_dir, path, db) = database().await;
        let direct = DirectReads::open(&path).unwrap();
        let opened = direct.lock().len();
        let (holder, locked) = hold_write_lock(&path, Duration::from_millis(500));
        locked.recv().unwrap();
        let sql = &db.users.statements.find_host_key;
        assert!(direct.find_host_key(sql, "digest-1").is_none());
        assert_eq!(direct.lock().len(), opened);
        holder.join().unwrap();
        assert!(direct.find_host_key(sql, "digest-1").unwrap().is_some());
    }

    /// A thread holding Django's write lock on `path` for `how_long`; the receiver hears once
    /// it holds it.
    fn hold_write_lock(
        path: &Path,
        how_long: Duration,
    ) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>) {
        let writer = Connection::open(path).unwrap();
        let (locked, heard) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(how_long);
            writer.execute_batch("COMMIT").unwrap();
        });
        (holder, heard)
    }

    /// The database's lookup, when the direct read cannot go ahead, asks sqlx, which waits for
    /// the writer and answers.
    #[tokio::test]
    async fn the_lookup_falls_back_to_sqlx_under_a_write_lock() {
        let (_dir, path, db) = database().await;
        let (holder, locked) = hold_write_lock(&path, Duration::from_millis(300));
        locked.recv().unwrap();
        let found = db.find_host_key("digest-1").await.unwrap();
        assert_eq!(found.unwrap().user.id, 7);
        holder.join().unwrap();
    }
}
