//! Opening collection files with rusqlite, as a plain connection or as a [`Collection`].

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::col_row::{ColRow, col};

/// Registers `unicase`, the collation schema-18 tables declare on names. Anki compares with
/// Unicode case folding; without the collation SQLite refuses to touch those tables.
pub fn register_unicase(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_collation("unicase", |a, b| {
        unicase::UniCase::new(a).cmp(&unicase::UniCase::new(b))
    })
}

/// Queries through the connection's statement cache: a statement run again on the same
/// connection is not compiled again. Collection connections are kept open between requests
/// (`collection::cached`), so the hot statements of `meta` and a sync compile once per
/// connection.
pub trait CachedQuery {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;

    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedQuery for Connection {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, map)
    }

    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// Runs `read` in one read transaction when the connection has none open (inside an open
/// transaction it just runs). Its statements then see one state of the file, and in WAL mode
/// the log's read lock is taken and released once, where each statement on its own takes and
/// releases it (two `fcntl` calls, and a look at the log's index, each time). The transaction
/// is ended whatever `read` returns, so a kept connection goes back with none open.
pub fn in_one_read<T>(
    conn: &Connection,
    read: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if !conn.is_autocommit() {
        return read(conn);
    }
    conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
    let result = read(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.prepare_cached(end).and_then(|mut end| end.execute([]));
    match (result, ended) {
        (Ok(value), Ok(_)) => Ok(value),
        (Err(err), _) => Err(err),
        (Ok(_), Err(err)) => Err(err.into()),
    }
}

/// How many pages a stored collection's write-ahead log may reach before opening the
/// collection folds it back into the file and empties it (a checkpoint: two fsyncs and the
/// pages written a second time). A review sync appends about 15 pages, so this folds about
/// every fourth sync.
///
/// Why at opening, and why small: the sidecar opens a collection whenever it has no connection
/// to it kept open (`collection::cached`: after full syncs, imports, resets, an idle minute,
/// or past the cap of kept connections), and the first connection to open a WAL file rebuilds the log's index by reading the whole log (SQLite
/// discards the shared index when no connection has the file open). That rebuild also forgets
/// which pages were already checkpointed, so SQLite's own automatic checkpoint, which leaves
/// the log in place, would copy the whole log into the file again at every commit. Emptying
/// the log (`TRUNCATE`) once it passes this size keeps both the rebuild and the checkpoints
/// small.
pub const WAL_FOLD_PAGES: u64 = 64;

/// Opens an existing collection read-write, with the collation registered. The journal mode
/// the file carries is left alone: uploads arrive in WAL mode and are converted afterwards,
/// and a stored collection is switched to WAL by [`use_wal`].
///
/// For a file in WAL mode: commits are fsynced before they return (`synchronous = FULL`), and
/// closing the connection does not checkpoint the log into the file, which would cost the
/// fsyncs and double writes WAL saves at every close; opening folds a log longer than
/// [`WAL_FOLD_PAGES`] instead, and a kept connection folds it after a commit
/// (`collection::cached`). The `-wal` and `-shm` files therefore stay next to the collection
/// between requests; whatever replaces, moves or deletes the file must deal with them
/// (`storage::fold_wal_and_remove_journals`).
pub fn open_collection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    register_unicase(&conn)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.execute_batch("PRAGMA locking_mode = NORMAL; PRAGMA synchronous = FULL;")?;
    fold_a_long_log(&conn, path);
    Ok(conn)
}

/// Checkpoints the log into the file and empties it when it holds more than
/// [`WAL_FOLD_PAGES`]. Only an optimisation: if another connection is reading, or the
/// checkpoint fails (a full disk), the log stays as it is, complete and valid.
fn fold_a_long_log(conn: &Connection, path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let long = std::fs::metadata(std::path::PathBuf::from(wal))
        .is_ok_and(|meta| meta.len() > WAL_FOLD_PAGES * 4096);
    if !long {
        return;
    }
    // Never wait for a reader here: the fold is retried at the next opening.
    let folded = conn.busy_timeout(Duration::ZERO).and_then(|()| {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    if let Err(err) = conn.busy_timeout(Duration::from_secs(10)) {
        tracing::warn!(error = %err, "restoring the busy timeout failed");
    }
    match folded {
        Ok(0) => {}
        Ok(_) => tracing::debug!(path = %path.display(), "log not folded: the file is in use"),
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "folding the log failed"),
    }
}

static SHARED_STORAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Cluster mode: the data folder is on shared storage, where WAL's shared-memory index (the
/// `-shm` file, mapped into memory) is not safe, so [`use_wal`] keeps stored collections in
/// the rollback journal instead. `locking_mode = EXCLUSIVE` (WAL without `-shm`) does not
/// fit: within one node a collection is not opened one connection at a time (admin stats read
/// it beside an open sync's connection). Set once at start.
pub fn set_shared_storage(shared: bool) {
    SHARED_STORAGE.store(shared, std::sync::atomic::Ordering::Relaxed);
}

fn shared_storage() -> bool {
    SHARED_STORAGE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Puts a stored collection in WAL mode (a setting kept in the file), if it is not already:
/// a commit then appends the changed pages to the log and fsyncs it once, where the rollback
/// journal wrote every page twice and fsynced three times. Needs no other connection to have
/// the file open in the rare case where it switches.
///
/// On shared storage (cluster mode, [`set_shared_storage`]) the collection is put in the
/// rollback journal (`DELETE`) instead, also one a single process left in WAL mode.
pub fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let wanted = if shared_storage() { "delete" } else { "wal" };
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case(wanted) {
        conn.query_row(&format!("PRAGMA journal_mode = {wanted}"), [], |_| Ok(()))?;
    }
    Ok(())
}

/// Copies every committed page of the write-ahead log into the file and empties the log, so
/// that the file alone holds the database. Fails if another connection's read prevented it.
pub fn checkpoint_truncate(conn: &Connection) -> rusqlite::Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    if busy != 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("the write-ahead log could not be checkpointed: the file is in use".into()),
        ));
    }
    Ok(())
}

/// An open collection: its connection, and typed access to its `col` row.
pub struct Collection {
    conn: Connection,
}

impl Collection {
    /// Opens an existing collection file with [`open_collection`].
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        Ok(Self {
            conn: open_collection(path)?,
        })
    }

    pub fn col(&self) -> ColRow<'_> {
        col(&self.conn)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` sets how libsqlite3-sys compiles SQLite; a build that missed it
    /// (another working directory, a Dockerfile without the file) would lose the option.
    #[test]
    fn sqlite_is_built_without_memory_statistics() {
        let conn = Connection::open_in_memory().unwrap();
        let mut statement = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    #[test]
    fn unicase_compares_unicode_case_insensitively() {
        let conn = Connection::open_in_memory().unwrap();
        register_unicase(&conn).unwrap();
        let equal: bool = conn
            .query_row(
                "SELECT 'ÄRGER::Straße' = 'ärger::straße' COLLATE unicase",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(equal);
        let before: bool = conn
            .query_row("SELECT 'apple' < 'Banana' COLLATE unicase", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(before);
    }

    #[test]
    fn the_log_of_a_file_opened_for_each_commit_stays_short_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("col.anki2");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE t (id integer primary key, v blob)")
                .unwrap();
        }
        let wal = dir.path().join("col.anki2-wal");
        let frame = 4096 + 24;
        for round in 0..60i64 {
            let conn = open_collection(&path).unwrap();
            use_wal(&conn).unwrap();
            // About five pages per commit, like a small sync.
            conn.execute(
                "INSERT INTO t (id, v) VALUES (?1, randomblob(16000))",
                [round],
            )
            .unwrap();
            drop(conn);
            let len = std::fs::metadata(&wal).map_or(0, |meta| meta.len());
            assert!(
                len <= (WAL_FOLD_PAGES + 10) * frame + 32,
                "round {round}: the log grew to {len} bytes"
            );
        }
        let conn = open_collection(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 60);
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    #[test]
    fn opening_never_creates_a_file_and_keeps_the_journal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.anki2");
        assert!(open_collection(&missing).is_err());
        assert!(!missing.exists());

        let path = dir.path().join("wal.anki2");
        {
            let conn = Connection::open(&path).unwrap();
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .unwrap();
            // A plain connection does not know the collation the schema-18 tables use.
            conn.execute_batch("CREATE TABLE t (name text COLLATE unicase)")
                .unwrap_err();
        }
        let conn = open_collection(&path).unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        conn.execute_batch("CREATE TABLE t (name text COLLATE unicase)")
            .unwrap();
    }

    /// A file in WAL mode with one row, and a second connection to it.
    fn two_connections() -> (tempfile::TempDir, Connection, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("col.anki2");
        let writer = Connection::open(&path).unwrap();
        writer
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        writer
            .execute_batch("CREATE TABLE t (v integer); INSERT INTO t VALUES (1);")
            .unwrap();
        let reader = open_collection(&path).unwrap();
        (dir, writer, reader)
    }

    fn value(conn: &Connection) -> i64 {
        conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn one_read_sees_one_state_of_the_file() {
        let (_dir, writer, reader) = two_connections();
        let (before, after) = in_one_read(&reader, |conn| {
            let before = value(conn);
            // Another connection commits between the two statements.
            writer.execute_batch("UPDATE t SET v = 2").unwrap();
            Ok((before, value(conn)))
        })
        .unwrap();
        assert_eq!((before, after), (1, 1), "both statements read one snapshot");
        assert!(reader.is_autocommit(), "the read transaction was ended");
        assert_eq!(value(&reader), 2, "the next read sees the commit");
    }

    #[test]
    fn one_read_ends_its_transaction_when_the_read_fails() {
        let (_dir, _writer, reader) = two_connections();
        let failed: anyhow::Result<()> = in_one_read(&reader, |conn| {
            value(conn);
            anyhow::bail!("the read failed")
        });
        assert_eq!(failed.unwrap_err().to_string(), "the read failed");
        assert!(reader.is_autocommit());
    }

    #[test]
    fn one_read_inside_an_open_transaction_leaves_it_open() {
        let (_dir, _writer, reader) = two_connections();
        reader
            .execute_batch("BEGIN IMMEDIATE; UPDATE t SET v = 3;")
            .unwrap();
        assert_eq!(in_one_read(&reader, |conn| Ok(value(conn))).unwrap(), 3);
        assert!(
            !reader.is_autocommit(),
            "the caller's transaction is still open"
        );
        reader.execute_batch("ROLLBACK").unwrap();
        assert_eq!(value(&reader), 1);
    }
}
