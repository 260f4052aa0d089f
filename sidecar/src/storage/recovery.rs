//! Recovery of per-user files that are missing, empty or damaged (docs/operations.md,
//! "Recovery of per-user files").
//!
//! A damaged file must never lock a user out: the client stops at the first failing call and
//! nothing it does can repair the server. So every per-user database is checked where it is
//! opened, and a damaged one is moved aside (kept for the operator as `<name>.corrupt-<ms>`)
//! and replaced:
//!
//! - `media.db` is rebuilt from the files in `media/`;
//! - the collection is replaced by a new empty one, whose new schema time makes every client
//!   full-sync, and the server being empty makes them offer an upload;
//! - `imports.db` is rebuilt from the packages still kept in `imports/`.
//!
//! Each recovery is logged at error level and counted in `sidecar_storage_recoveries_total`.
//! Transient failures (disk full, I/O errors, a busy database) are not damage: they answer a
//! 5xx and leave the file alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::ErrorCode;

use super::status::{CollectionStatus, ensure_collection, read_status_on};
use super::{UserFiles, remove_stale_journals};
use crate::clock::now_millis;
use crate::collection::cached::CachedCollection;

/// Which per-user file was recovered, for the log and the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserFile {
    Collection,
    MediaDb,
    ImportLedger,
}

impl UserFile {
    pub fn label(self) -> &'static str {
        match self {
            Self::Collection => "collection",
            Self::MediaDb => "media_db",
            Self::ImportLedger => "import_ledger",
        }
    }
}

/// Whether `err` says the database file itself is unusable, as opposed to a transient failure.
/// A 0-byte or truncated file opens as an empty database and fails with "no such table".
pub fn is_damage(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let Some(err) = cause.downcast_ref::<rusqlite::Error>() else {
            return false;
        };
        match err {
            rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => true,
                ErrorCode::Unknown => message.as_deref().is_some_and(|message| {
                    message.contains("no such table")
                        || message.contains("no such column")
                        || message.contains("malformed")
                }),
                _ => false,
            },
            // The single row a file must have (`col`, media `meta`) is missing.
            rusqlite::Error::QueryReturnedNoRows => true,
            // A column of the wrong type where the file's own schema fixes it.
            rusqlite::Error::InvalidColumnType(..) => true,
            _ => false,
        }
    })
}

/// Whether SQLite itself reported the file corrupt or not a database: the narrow test used in
/// the middle of a sync, where "no such table" or a missing row could have other causes.
pub fn is_corruption(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(failure.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        )
    })
}

/// Moves a damaged database (and its journals) aside, or deletes it when it is empty (there
/// is nothing to keep). Logs at error level and counts the recovery. Returns where the file
/// went, if it was kept.
pub fn move_aside(path: &Path, file: UserFile, reason: &str) -> anyhow::Result<Option<PathBuf>> {
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => 0,
        Err(err) => return Err(err).context("inspecting a damaged file"),
    };
    let kept = if size == 0 {
        remove_if_present(path)?;
        remove_stale_journals(path)?;
        None
    } else {
        let target = sibling(path, &format!(".corrupt-{}", now_millis()));
        // The journals go first, with the file's new name: a crash in between leaves the
        // damaged file without them (it is replaced anyway), never a journal that a new
        // file at `path` would pick up.
        for suffix in ["-wal", "-shm", "-journal"] {
            let journal = sibling(path, suffix);
            if journal.exists() {
                fs::rename(&journal, sibling(&target, suffix))
                    .context("moving a damaged file's journal aside")?;
            }
        }
        fs::rename(path, &target).context("moving a damaged file aside")?;
        Some(target)
    };
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    count_recovery(file);
    tracing::error!(
        file = file.label(),
        path = %path.display(),
        bytes = size,
        kept = ?kept.as_ref().map(|p| p.display().to_string()),
        reason,
        "damaged per-user file replaced"
    );
    Ok(kept)
}

/// Counts one recovery in `sidecar_storage_recoveries_total{file}`.
pub fn count_recovery(file: UserFile) {
    metrics::counter!("sidecar_storage_recoveries_total", "file" => file.label()).increment(1);
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// The collection's state for `meta`, creating the collection if there is none, and replacing
/// it with a new empty one if it is empty or damaged. The new collection has a new schema time,
/// so every client must full-sync; the server being empty makes the client offer to upload.
/// Imports not yet delivered are merged into that upload again (the import ledger).
pub fn collection_status_or_recover(files: &UserFiles) -> anyhow::Result<CollectionStatus> {
    collection_status_or_recover_on(files, None).map(|(status, _)| status)
}

/// [`collection_status_or_recover`] on the user's kept connection `kept` if it still serves
/// the file, else on a new one; returns the connection that read the status, to be kept.
/// A damaged file's connection is closed before the file is moved aside.
pub fn collection_status_or_recover_on(
    files: &UserFiles,
    kept: Option<CachedCollection>,
) -> anyhow::Result<(CollectionStatus, CachedCollection)> {
    ensure_collection(files)?;
    let path = files.collection();
    let read = |kept: Option<CachedCollection>| -> anyhow::Result<_> {
        let mut conn = CachedCollection::reuse_or_open(kept, &path)?;
        let status = read_status_on(files, &mut conn)?;
        Ok((status, conn))
    };
    match read(kept) {
        Ok(read) => Ok(read),
        Err(err) if is_damage(&err) || is_empty_file(&path) => {
            replace_damaged_collection(files, &format!("{err:#}"))?;
            read(None)
        }
        Err(err) => Err(err),
    }
}

/// Moves a damaged collection aside and creates a new empty one in its place.
pub fn replace_damaged_collection(files: &UserFiles, reason: &str) -> anyhow::Result<()> {
    move_aside(&files.collection(), UserFile::Collection, reason)?;
    ensure_collection(files)
}

/// Whether the file exists with a length of 0 (a creation that never got its schema).
pub fn is_empty_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::temp_user;

    #[test]
    fn damage_is_told_apart_from_transient_failures() {
        let (dir, empty) = crate::collection::test_support::temp_file("empty.db", b"");
        let conn = rusqlite::Connection::open(&empty).unwrap();
        let err = conn
            .query_row("SELECT last_usn FROM meta", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(is_damage(&anyhow::Error::from(err).context("reading")));

        let garbage = dir.path().join("garbage.db");
        fs::write(&garbage, vec![7u8; 8192]).unwrap();
        let conn = rusqlite::Connection::open(&garbage).unwrap();
        let err = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_err();
        assert!(is_damage(&err.into()));

        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        assert!(!is_damage(&busy.into()));
        assert!(!is_damage(&anyhow::anyhow!(
            "no such table, but not from SQLite"
        )));
    }

    #[test]
    fn a_damaged_file_is_kept_aside_and_an_empty_one_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("media.db");
        fs::write(&path, b"junk").unwrap();
        fs::write(sibling(&path, "-journal"), b"j").unwrap();
        let kept = move_aside(&path, UserFile::MediaDb, "test")
            .unwrap()
            .unwrap();
        assert!(!path.exists());
        assert_eq!(fs::read(&kept).unwrap(), b"junk");
        assert!(sibling(&kept, "-journal").exists());
        assert!(!sibling(&path, "-journal").exists());

        fs::write(&path, b"").unwrap();
        assert!(is_empty_file(&path));
        assert_eq!(move_aside(&path, UserFile::MediaDb, "empty").unwrap(), None);
        assert!(!path.exists());
    }

    #[test]
    fn a_damaged_or_empty_collection_is_replaced_by_a_new_one() {
        let files = temp_user(9);
        let first = collection_status_or_recover(&files).unwrap();
        {
            let conn = rusqlite::Connection::open(files.collection()).unwrap();
            conn.execute_batch("DELETE FROM col").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = collection_status_or_recover(&files).unwrap();
        assert!(second.empty);
        assert_ne!(second.schema_ms, first.schema_ms, "clients must full-sync");

        std::fs::write(files.collection(), b"").unwrap();
        assert!(collection_status_or_recover(&files).unwrap().empty);
        std::fs::write(files.collection(), vec![9u8; 8192]).unwrap();
        assert!(collection_status_or_recover(&files).unwrap().empty);
        let kept: Vec<String> = std::fs::read_dir(files.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("collection.anki2.corrupt-"))
            .collect();
        let main_files = kept
            .iter()
            .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
            .count();
        assert_eq!(
            main_files, 2,
            "the two non-empty damaged files are kept: {kept:?}"
        );
        // Each with its write-ahead log, under its new name; none is left at the old one.
        assert!(kept.iter().any(|name| name.ends_with("-wal")), "{kept:?}");
        let status = collection_status_or_recover(&files).unwrap();
        assert!(status.empty);
    }
}
