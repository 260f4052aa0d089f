//! What every SQLite connection kept open between requests shares, whatever its file (the
//! collection, `media.db`): a bounded number of places across all users, and the identity of
//! the file it was opened on, checked before each reuse (docs/operations.md, section 5a).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    changed: (i64, i64),
    modified: (i64, i64),
}

impl FileId {
    fn of(path: &Path) -> Option<Self> {
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
    const NONE: Self = Self {
        dev: 0,
        ino: 0,
        size: 0,
        changed: (0, 0),
        modified: (0, 0),
    };
}

/// What a kept connection notes about itself besides the connection: its file, that file's
/// state when it was last put away, when that was, and whether it holds one of its kind's
/// places (given back when it is dropped).
pub struct Tenancy {
    path: PathBuf,
    file: FileId,
    last_used: Instant,
    /// Holds one of `places` (false for one opened past the cap: it is closed after its
    /// request).
    place: Option<&'static Places>,
}

impl Tenancy {
    /// For a connection just opened on `path`; `None` if the file is gone already. Read after
    /// opening, so that a file replaced in between is caught at the next use.
    pub fn begin(path: &Path, places: &'static Places) -> Option<Self> {
        let file = FileId::of(path)?;
        Some(Self {
            path: path.to_path_buf(),
            file,
            last_used: Instant::now(),
            place: places.claim().then_some(places),
        })
    }

    /// Whether `path` still names the file, unchanged since it was put away.
    pub fn serves(&self, path: &Path) -> bool {
        self.path == path && FileId::of(path) == Some(self.file)
    }

    /// Whether it holds a place, so that its connection may be kept.
    pub fn has_place(&self) -> bool {
        self.place.is_some()
    }

    /// Notes the time and the file's state after the connection's own writes, as its request
    /// ends; false if the file is gone.
    pub fn put_away(&mut self) -> bool {
        self.last_used = Instant::now();
        match FileId::of(&self.path) {
            Some(file) => {
                self.file = file;
                true
            }
            None => false,
        }
    }

    /// Notes the time as a request that only read ends: the file is as the check before its
    /// use found it ([`Self::serves`]), so it is not read again; a change made meanwhile by
    /// another writer is caught at the next use.
    pub fn put_away_unchanged(&mut self) {
        self.last_used = Instant::now();
    }

    /// The file's size as last checked ([`Self::begin`], [`Self::serves`] or
    /// [`Self::put_away`]).
    pub fn size(&self) -> u64 {
        self.file.size
    }

    pub fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    /// For a connection that is never kept.
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            path: PathBuf::new(),
            file: FileId::NONE,
            last_used: Instant::now(),
            place: None,
        }
    }
}

impl Drop for Tenancy {
    fn drop(&mut self) {
        if let Some(places) = self.place {
            places.release();
        }
    }
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
    fn a_tenancy_holds_its_place_until_it_is_dropped() {
        static PLACES: Places = Places::new(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"one").unwrap();
        let first = Tenancy::begin(&path, &PLACES).unwrap();
        let second = Tenancy::begin(&path, &PLACES).unwrap();
        assert!(first.has_place());
        assert!(!second.has_place(), "past the cap");
        drop(second);
        assert_eq!(PLACES.taken(), 1, "one without a place gives none back");
        drop(first);
        assert_eq!(PLACES.taken(), 0);
        assert!(Tenancy::begin(&dir.path().join("missing"), &PLACES).is_none());
    }

    #[test]
    fn a_tenancy_serves_its_file_until_it_changes_by_other_means() {
        static PLACES: Places = Places::new(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"one").unwrap();
        let mut tenancy = Tenancy::begin(&path, &PLACES).unwrap();
        assert!(tenancy.serves(&path));
        assert!(!tenancy.serves(&dir.path().join("b")));
        // Its own writes, noted when it is put away.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&path, b"one and two").unwrap();
        assert!(!tenancy.serves(&path));
        assert!(tenancy.put_away());
        assert!(tenancy.serves(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(!tenancy.put_away(), "the file is gone");
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
