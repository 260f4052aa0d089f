//! What every SQLite connection kept open between requests shares, whatever its file (the
//! collection, `media.db`): a bounded number of places across all users, and the identity of
//! the file it was opened on, checked before each reuse (docs/performance.md, "Kept
//! connections").

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A bounded number of kept connections of one kind, across all users.
pub struct Places {
    open: AtomicUsize,
    /// The cap in force: the one given at creation, or less when the open-files limit is low
    /// (`connections::fit_to_open_files`).
    max: AtomicUsize,
    ceiling: usize,
}

impl Places {
    pub const fn new(max: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            ceiling: max,
        }
    }

    /// Lowers the cap to `max` (never above the one given at creation); a connection opened
    /// past it is closed after its request.
    pub fn limit(&self, max: usize) {
        self.max.store(max.min(self.ceiling), Ordering::Relaxed);
    }

    /// Takes a place, if one is free. Whoever got one gives it back with [`Self::release`].
    pub fn claim(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// How many places are taken right now.
    pub fn taken(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Which file a connection was opened on, and its state when the connection was last put
/// away: a file replaced (another inode) or written by other means (another size or change
/// time) since then is not what the connection's page cache holds. While the connection is
/// open its file's inode stays allocated, so a file created at the same path later cannot
/// take the same inode number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    changed: (i64, i64),
    modified: (i64, i64),
}

impl FileId {
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            changed: (meta.ctime(), meta.ctime_nsec()),
            modified: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    /// An identity no file has, for a connection that is never kept.
    #[cfg(test)]
    pub const NONE: Self = Self {
        dev: 0,
        ino: 0,
        size: 0,
        changed: (0, 0),
        modified: (0, 0),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_limited() {
        let places = Places::new(2);
        assert!(places.claim());
        assert!(places.claim());
        assert!(!places.claim(), "a third connection must not be kept");
        assert_eq!(places.taken(), 2);
        places.release();
        assert!(places.claim(), "a released place is free again");
    }

    #[test]
    fn a_lower_limit_holds_and_the_ceiling_stays() {
        let places = Places::new(3);
        places.limit(1);
        assert!(places.claim());
        assert!(!places.claim());
        places.limit(100);
        assert!(places.claim());
        assert!(places.claim());
        assert!(!places.claim(), "never above the cap given at creation");
    }

    #[test]
    fn a_file_renamed_over_the_path_has_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"one").unwrap();
        let kept = std::fs::File::open(&path).unwrap();
        let before = FileId::of(&path).unwrap();
        assert_eq!(FileId::of(&path), Some(before));
        let other = dir.path().join("b");
        std::fs::write(&other, b"one").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(FileId::of(&path), Some(before));
        drop(kept);
        assert_eq!(FileId::of(&dir.path().join("missing")), None);
    }
}
