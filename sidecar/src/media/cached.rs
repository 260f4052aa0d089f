//! One user's `media.db` connection, kept open between requests like the collection's
//! (`collection::cached`). A media sync makes up to seven calls, and every sync of a real
//! client ends with at least a `begin` and a `mediaChanges`; opening the file for each call
//! parsed its schema and compiled its statements again, which was a fifth of the sidecar's CPU
//! in a media sync (docs/performance.md, "The media store kept open").
//!
//! Bounded: at most [`MAX_OPEN`] are kept across all users, fewer under a low open-files
//! limit ([`limit_kept`]); past that, a request opens and closes its own. One unused for
//! `collection::cached::IDLE_CLOSE` is closed by the same idle housekeeping as collections.
//!
//! Never stale: whatever removes or replaces the file (a reset, the removal of a user, the
//! release of the cluster lock) closes it first, under the user's lock
//! (`UserSlot::close_files`). As a second guard, it is reused only while the path names the
//! file it was opened on, unchanged since it was put away; a file written by another
//! connection since (an import, a repair) is opened afresh.

use std::time::Duration;

use crate::collection::kept::{Places, Tenancy};
use crate::storage::UserFiles;

use super::MediaDb;

/// How many `media.db` connections are kept open at most, across all users: as many as
/// collection connections, since the same users sync both.
pub const MAX_OPEN: usize = crate::collection::cached::MAX_OPEN;

static PLACES: Places = Places::new(MAX_OPEN);

/// The page cache of a kept connection, KiB (SQLite's default is 2,000). The media calls look
/// files up by name and changes by USN through indexes, a few pages each; the rest come from
/// the operating system's cache. So 64 kept connections hold at most 16 MiB of pages.
const PAGE_CACHE_KIB: u32 = 256;

/// Lowers the cap of kept connections to `max` (never above [`MAX_OPEN`]).
pub fn limit_kept(max: usize) {
    PLACES.limit(max);
}

/// An open media store, outside any transaction when it is kept in a slot.
pub struct CachedMediaDb {
    db: MediaDb,
    /// Its file, and one of the [`PLACES`] unless it was opened past the cap.
    tenancy: Tenancy,
}

impl CachedMediaDb {
    /// `kept` if it still serves the user's `media.db`; otherwise the store opened as
    /// [`MediaDb::open`] opens it, creating or repairing it.
    pub fn reuse_or_open(kept: Option<Self>, files: &UserFiles) -> anyhow::Result<Self> {
        match Self::reuse(kept, files) {
            Some(kept) => Ok(kept),
            None => Self::wrap(MediaDb::open(files)?, files),
        }
    }

    /// Like [`Self::reuse_or_open`], but creates nothing: `None` for a user without a
    /// `media.db`. An empty or damaged one is repaired, as [`MediaDb::open`] does.
    pub fn reuse_or_open_existing(
        kept: Option<Self>,
        files: &UserFiles,
    ) -> anyhow::Result<Option<Self>> {
        if let Some(kept) = Self::reuse(kept, files) {
            return Ok(Some(kept));
        }
        if !files.media_db().exists() {
            return Ok(None);
        }
        Self::wrap(MediaDb::open(files)?, files).map(Some)
    }

    fn reuse(kept: Option<Self>, files: &UserFiles) -> Option<Self> {
        let kept = kept?;
        if kept.ready(files) {
            return Some(kept);
        }
        let path = files.media_db();
        tracing::debug!(path = %path.display(), "kept media.db connection was stale");
        None
    }

    /// Whether it still serves the user's `media.db`, unchanged since it was put away and
    /// with no transaction open, so that it may be used again as it is.
    pub fn ready(&self, files: &UserFiles) -> bool {
        self.db.in_autocommit() && self.tenancy.serves(&files.media_db())
    }

    fn wrap(db: MediaDb, files: &UserFiles) -> anyhow::Result<Self> {
        db.limit_page_cache(PAGE_CACHE_KIB)?;
        let tenancy = Tenancy::begin(&files.media_db(), &PLACES)
            .ok_or_else(|| anyhow::anyhow!("media.db vanished while it was opened"))?;
        Ok(Self { db, tenancy })
    }

    /// Puts it away after a request, on the thread that used it: `None` (and closed) if it may
    /// not be kept (opened past the cap, or a transaction left open) or its file is gone.
    /// Notes the time, for the idle housekeeping, and the file's state after this
    /// connection's own writes, against which the next use checks.
    pub fn put_away(mut self) -> Option<Self> {
        (self.keepable() && self.tenancy.put_away()).then_some(self)
    }

    /// [`Self::put_away`] after a request that only read, on a connection found
    /// [`Self::ready`] before it: the file is not checked again (`collection::kept::Tenancy`).
    pub fn put_away_unchanged(mut self) -> Option<Self> {
        let keepable = self.keepable();
        self.tenancy.put_away_unchanged();
        keepable.then_some(self)
    }

    /// Whether it may be kept in a slot after its request: opened within the cap, with no
    /// transaction left open.
    fn keepable(&self) -> bool {
        self.tenancy.has_place() && self.db.in_autocommit()
    }

    pub fn idle_for(&self) -> Duration {
        self.tenancy.idle_for()
    }
}

impl std::ops::Deref for CachedMediaDb {
    type Target = MediaDb;

    fn deref(&self) -> &MediaDb {
        &self.db
    }
}

impl std::ops::DerefMut for CachedMediaDb {
    fn deref_mut(&mut self) -> &mut MediaDb {
        &mut self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DataDir;

    fn user() -> (tempfile::TempDir, UserFiles) {
        let root = tempfile::tempdir().unwrap();
        let files = DataDir::new(root.path().to_path_buf()).unwrap().user(1);
        (root, files)
    }

    fn record(db: &mut MediaDb, name: &str) -> i64 {
        let tx = db.transaction().unwrap();
        let usn = tx.record_file(name, &[1; 20], 3, 1).unwrap();
        tx.commit().unwrap();
        usn
    }

    fn mark(db: &CachedMediaDb) {
        crate::collection::test_support::mark_connection(db.connection());
    }

    fn is_marked(db: &CachedMediaDb) -> bool {
        crate::collection::test_support::is_marked(db.connection())
    }

    #[test]
    fn the_same_connection_serves_the_next_request_after_its_own_writes() {
        let (_root, files) = user();
        let mut db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        mark(&db);
        assert_eq!(record(&mut db, "a.jpg"), 1);
        let kept = db.put_away().expect("within the cap");
        let mut again = CachedMediaDb::reuse_or_open(Some(kept), &files).unwrap();
        assert!(is_marked(&again), "its own writes must not close it");
        assert_eq!(record(&mut again, "b.jpg"), 2);
    }

    #[test]
    fn a_store_written_by_another_connection_is_opened_afresh() {
        let (_root, files) = user();
        let db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        mark(&db);
        let kept = db.put_away().unwrap();
        // An import writes through its own connection.
        std::thread::sleep(Duration::from_millis(5));
        record(&mut MediaDb::open(&files).unwrap(), "imported.jpg");
        let fresh = CachedMediaDb::reuse_or_open(Some(kept), &files).unwrap();
        assert!(
            !is_marked(&fresh),
            "a store changed by others is opened again"
        );
        assert_eq!(fresh.totals().unwrap().last_usn, 1);
    }

    #[test]
    fn a_store_replaced_behind_the_connection_is_opened_afresh() {
        let (_root, files) = user();
        let mut db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        record(&mut db, "a.jpg");
        let kept = db.put_away().unwrap();
        // Another store renamed over the path, as a repair does.
        let other = files.dir().join("other.db");
        {
            let mut replacement = MediaDb::open_path(&other).unwrap();
            for name in ["x.jpg", "y.jpg", "z.jpg"] {
                record(&mut replacement, name);
            }
        }
        std::fs::rename(&other, files.media_db()).unwrap();
        let fresh = CachedMediaDb::reuse_or_open(Some(kept), &files).unwrap();
        assert_eq!(fresh.totals().unwrap().last_usn, 3, "the new file is read");
    }

    #[test]
    fn without_a_store_nothing_is_created() {
        let (_root, files) = user();
        assert!(
            CachedMediaDb::reuse_or_open_existing(None, &files)
                .unwrap()
                .is_none()
        );
        assert!(!files.media_db().exists());
        let db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        let kept = db.put_away();
        let again = CachedMediaDb::reuse_or_open_existing(kept, &files).unwrap();
        assert_eq!(again.unwrap().totals().unwrap().last_usn, 0);
    }

    #[test]
    fn a_kept_connection_caches_few_pages() {
        let (_root, files) = user();
        let db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        let cache: i64 = db
            .connection()
            .query_row("PRAGMA cache_size", [], |row| row.get(0))
            .unwrap();
        assert_eq!(cache, -i64::from(PAGE_CACHE_KIB));
    }

    #[test]
    fn a_connection_inside_a_transaction_is_not_kept() {
        let (_root, files) = user();
        let db = CachedMediaDb::reuse_or_open(None, &files).unwrap();
        db.connection().execute_batch("BEGIN").unwrap();
        assert!(db.put_away().is_none());
    }
}
