//! One user's collection connection, kept open between requests and between syncs.
//!
//! Opening a collection costs more than a small request's own work: SQLite parses the schema
//! at the first statement, every statement is compiled again (the statement cache belongs to
//! the connection), and with WAL the first opener rebuilds the log's index and dirties the
//! `-shm` file. So `meta` and `start` take the connection kept in the user's slot
//! (`user_data::registry::UserSlot`), the normal sync holds it from `start` to `finish` or
//! its rollback, and gives it back afterwards.
//!
//! Bounded: at most [`MAX_OPEN`] are kept across all users, fewer under a low open-files
//! limit ([`limit_kept`]); past that, a request opens and closes its own, as before. One unused for [`IDLE_CLOSE`] is closed by the idle
//! housekeeping (`user_data::Users::spawn_idle_expiry`).
//!
//! Never stale: every path that replaces, deletes, moves aside or writes the file outside
//! this connection (full upload and download, reset, removal, import, recovery) closes it
//! first, under the user's lock (`UserSlot::close_files`). As a second guard, a kept
//! connection is used only while the path still names the file it was opened on (same device
//! and inode); otherwise it is closed and the file opened afresh.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::census::ColumnMemos;
use super::kept::{Places, Tenancy};
use super::sqlite::open_collection;

/// How many collection connections are kept open at most, across all users. Each holds a
/// file handle for the collection and one for its log, the parsed schema, compiled statements
/// and up to [`PAGE_CACHE_KIB`] of pages.
pub const MAX_OPEN: usize = 64;

/// A kept connection unused for this long is closed by the idle housekeeping.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// The page cache of a kept connection, KiB (SQLite's default is 2,000). A small sync touches a
/// few dozen pages; the rest come from the operating system's cache.
const PAGE_CACHE_KIB: i64 = 1024;

/// How many compiled statements a connection keeps (rusqlite's default is 16; a normal sync
/// uses about 30 distinct ones).
const STATEMENT_CACHE: usize = 64;

/// How many pages the log may hold before a commit on a kept connection folds it into the
/// file (SQLite's automatic checkpoint, run after the commit that passes it): SQLite's
/// default. A review sync rewrites the same few dozen pages (the `col` row, the cards' leaves);
/// each fold copies every page changed since the last one into the file, so folding every 64
/// pages wrote those pages again every few syncs, and folding every 1,000 writes them once per
/// few dozen syncs (docs/performance.md, "SQLite settings"). A kept connection keeps the
/// log's index in memory, so a long log costs nothing per request; the next opening after the
/// connection is closed folds it ([`super::sqlite::WAL_FOLD_PAGES`]).
const AUTOCHECKPOINT_PAGES: u64 = 1000;

/// Kept connections across all users, at most [`MAX_OPEN`].
static PLACES: Places = Places::new(MAX_OPEN);

/// Lowers the cap of kept connections to `max` (never above [`MAX_OPEN`]); a connection opened
/// past it is closed after its request.
pub fn limit_kept(max: usize) {
    PLACES.limit(max);
}

/// How many connections are kept open right now, across all users.
pub fn open_count() -> usize {
    PLACES.taken()
}

/// An open collection connection, outside any transaction when it is kept in a slot.
pub struct CachedCollection {
    conn: Connection,
    /// Its file, and one of the [`PLACES`] unless it was opened past the cap.
    tenancy: Tenancy,
    /// The one-time checks of `storage::status` (WAL mode, the graves indexes) were done on
    /// this connection.
    pub checked: bool,
    /// The last scan of each JSON column of `col` on this connection (`census::ColumnMemos`).
    column_memos: ColumnMemos,
}

impl CachedCollection {
    /// Opens the collection at `path` (it must exist), tuned to be kept.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = open_collection(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{PAGE_CACHE_KIB}; PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};"
        ))?;
        let tenancy = Tenancy::begin(path, &PLACES).ok_or_else(|| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some("the collection vanished while it was opened".into()),
            )
        })?;
        Ok(Self {
            conn,
            tenancy,
            checked: false,
            column_memos: ColumnMemos::default(),
        })
    }

    /// `kept` if it still serves the file at `path`, else a new connection to that file.
    pub fn reuse_or_open(kept: Option<Self>, path: &Path) -> rusqlite::Result<Self> {
        if let Some(kept) = kept {
            if kept.serves(path) {
                return Ok(kept);
            }
            tracing::debug!(path = %path.display(), "kept collection connection was stale");
        }
        Self::open(path)
    }

    /// Whether the file at `path` is still the one this connection has open, unchanged since
    /// it was put away, with no transaction left on it.
    fn serves(&self, path: &Path) -> bool {
        self.conn.is_autocommit() && self.tenancy.serves(path)
    }

    /// Whether a call may use it on the async worker (`user_data::inline`): it still serves
    /// `path`, with no transaction open, and had its one-time checks, so that using it opens,
    /// converts or repairs nothing.
    pub fn ready(&self, path: &Path) -> bool {
        self.checked && self.serves(path)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection with its memos of the `col` row's JSON columns, for the calls that read them.
    pub fn with_column_memos(&mut self) -> (&Connection, &mut ColumnMemos) {
        (&self.conn, &mut self.column_memos)
    }

    /// Whether it may be kept in a slot after its request (it was opened within the cap and
    /// has no transaction open).
    pub fn keepable(&self) -> bool {
        self.tenancy.has_place() && self.conn.is_autocommit()
    }

    /// Puts it away after a request, on the thread that used it: `None` (and closed) if it may
    /// not be kept ([`Self::keepable`]) or its file is gone. Notes the time, for the idle
    /// housekeeping, and the file's state after this connection's own writes, against which
    /// the next use checks; one put in a slot without this is reopened at its next use.
    pub fn put_away(mut self) -> Option<Self> {
        (self.keepable() && self.tenancy.put_away()).then_some(self)
    }

    /// [`Self::put_away`] after a request that only read, on a connection found
    /// [`Self::ready`] before it: the file is not checked again (`kept::Tenancy`).
    pub fn put_away_unchanged(mut self) -> Option<Self> {
        let keepable = self.keepable();
        self.tenancy.put_away_unchanged();
        keepable.then_some(self)
    }

    /// The file's size, bytes, as last checked: just now when [`Self::ready`] said yes.
    pub fn file_size(&self) -> u64 {
        self.tenancy.size()
    }

    pub fn idle_for(&self) -> Duration {
        self.tenancy.idle_for()
    }
}

impl std::ops::Deref for CachedCollection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
impl CachedCollection {
    /// An in-memory database standing in for a collection, never kept.
    pub fn in_memory() -> Self {
        Self {
            conn: Connection::open_in_memory().expect("an in-memory database opens"),
            tenancy: Tenancy::none(),
            checked: false,
            column_memos: ColumnMemos::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::schema11::create_new_collection;
    use crate::collection::sqlite::use_wal;

    /// A new stored collection, in WAL mode as the server keeps one.
    fn collection() -> (tempfile::TempDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("collection.anki2");
        create_new_collection(&path, 1_700_000_000_000, 1_700_000_000).unwrap();
        use_wal(&open_collection(&path).unwrap()).unwrap();
        (root, path)
    }

    fn mark(kept: &CachedCollection) {
        crate::collection::test_support::mark_connection(kept.conn());
    }

    fn is_marked(kept: &CachedCollection) -> bool {
        crate::collection::test_support::is_marked(kept.conn())
    }

    #[test]
    fn a_connection_to_the_same_file_is_reused() {
        let (_root, path) = collection();
        let first = CachedCollection::open(&path).unwrap();
        mark(&first);
        let again = CachedCollection::reuse_or_open(Some(first), &path).unwrap();
        assert!(is_marked(&again), "the same connection must be reused");
    }

    #[test]
    fn a_file_replaced_behind_the_connection_is_opened_afresh() {
        let (_root, path) = collection();
        let kept = CachedCollection::open(&path).unwrap();
        // Another collection renamed over the path, as a full upload does.
        let other = path.with_extension("other");
        std::fs::copy(&path, &other).unwrap();
        {
            let conn = rusqlite::Connection::open(&other).unwrap();
            conn.execute("UPDATE col SET usn = 77", []).unwrap();
        }
        std::fs::rename(&other, &path).unwrap();
        let fresh = CachedCollection::reuse_or_open(Some(kept), &path).unwrap();
        let usn: i64 = fresh
            .conn()
            .query_row("SELECT usn FROM col", [], |row| row.get(0))
            .unwrap();
        assert_eq!(usn, 77, "the new file must be read, not the old one");
    }

    #[test]
    fn a_file_written_by_other_means_is_opened_afresh() {
        let (_root, path) = collection();
        let kept = CachedCollection::open(&path).unwrap();
        mark(&kept);
        kept.conn()
            .execute("UPDATE col SET usn = usn + 1", [])
            .unwrap();
        // Its own writes do not make it stale.
        let kept = kept.put_away();
        let kept = CachedCollection::reuse_or_open(kept, &path).unwrap();
        assert!(is_marked(&kept), "its own writes must not close it");
        let kept = kept.put_away().expect("kept");
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Bytes written into the file in place, not through SQLite.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0; 4096]);
        std::fs::write(&path, bytes).unwrap();
        let fresh = CachedCollection::reuse_or_open(Some(kept), &path).unwrap();
        assert!(
            !is_marked(&fresh),
            "a file changed in place must be opened again"
        );
    }

    /// A read-only request puts its connection away without reading the file's state again:
    /// a change made by another writer while it read is caught at the next use, where
    /// [`CachedCollection::put_away`] would have taken the changed file for its own writes.
    #[test]
    fn a_change_during_a_read_is_caught_after_putting_away_unchanged() {
        let (_root, path) = collection();
        let mut kept = CachedCollection::open(&path).unwrap();
        kept.checked = true;
        mark(&kept);
        assert!(kept.ready(&path));
        assert_eq!(kept.file_size(), std::fs::metadata(&path).unwrap().len());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0; 4096]);
        std::fs::write(&path, bytes).unwrap();
        let kept = kept.put_away_unchanged().expect("kept");
        assert!(!kept.ready(&path));
        let fresh = CachedCollection::reuse_or_open(Some(kept), &path).unwrap();
        assert!(!is_marked(&fresh), "the changed file must be opened again");
    }

    #[test]
    fn a_connection_inside_a_transaction_is_neither_reused_nor_kept() {
        let (_root, path) = collection();
        let kept = CachedCollection::open(&path).unwrap();
        mark(&kept);
        kept.conn().execute_batch("BEGIN").unwrap();
        assert!(!kept.keepable());
        let fresh = CachedCollection::reuse_or_open(Some(kept), &path).unwrap();
        assert!(fresh.conn().is_autocommit());
        assert!(
            !is_marked(&fresh),
            "a connection in a transaction must not be reused"
        );
    }

    /// Issue 13: a kept connection's row counts survive its own commits, the log's automatic
    /// checkpoints and being put away between syncs: they are read, never counted again.
    #[test]
    fn row_counts_are_kept_across_syncs() {
        use crate::collection::row_counts::row_counts;
        let (_root, path) = collection();
        let mut kept = Some(CachedCollection::open(&path).unwrap());
        let mut offset = None;
        for round in 0..120i64 {
            let conn = CachedCollection::reuse_or_open(kept.take(), &path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            for i in 0..10 {
                conn.execute(
                    "INSERT INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
                     VALUES (?1, 1, 1, 1, 1, 1, 1, 1, 1)",
                    [round * 10 + i],
                )
                .unwrap();
                // Enough pages per round for the log to pass its checkpoint size often.
                conn.execute(
                    "INSERT OR REPLACE INTO cards (id, nid, did, ord, mod, usn, type, queue, \
                     due, ivl, factor, reps, lapses, left, odue, odid, flags, data) \
                     VALUES (?1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?2)",
                    (i, "x".repeat(3000)),
                )
                .unwrap();
            }
            let counts = row_counts(&conn).unwrap();
            match offset {
                None => {
                    // Marks the kept counts: a recount would lose the mark.
                    conn.execute(
                        "UPDATE temp.sidecar_row_counts SET revlog = revlog + 1000",
                        [],
                    )
                    .unwrap();
                    offset = Some(1000);
                }
                Some(offset) => {
                    assert_eq!(counts.revlog, (round + 1) * 10 + offset, "round {round}");
                    assert_eq!(counts.cards, 10, "round {round}");
                }
            }
            conn.execute_batch("COMMIT").unwrap();
            kept = conn.put_away();
            assert!(kept.is_some());
        }
    }
}
