//! Per-user files under `SIDECAR_DATA_DIR/users/<django user id>/`
//! (docs/design.md#who-owns-which-data).
//!
//! Folders are keyed by the numeric Django id, never the username: a username is not a safe
//! path, and renaming a user must not lose their data.

pub mod cleanup;
pub mod full_sync;
pub mod recovery;
pub mod scheduler;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
pub mod user_removal;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const COLLECTION_FILE: &str = "collection.anki2";
pub const MEDIA_DIR: &str = "media";
pub const MEDIA_DB: &str = "media.db";
/// The import ledger (`import::ledger`) and the packages it keeps until delivery.
pub const IMPORT_LEDGER: &str = "imports.db";
pub const IMPORT_PACKAGES_DIR: &str = "imports";

/// The data folder. Cloned into every request's state, so its path is shared, not copied.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: std::sync::Arc<Path>,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("users"))?;
        Ok(Self { root: root.into() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn user(&self, user_id: i64) -> UserFiles {
        UserFiles {
            dir: self.root.join("users").join(user_id.to_string()),
        }
    }

    /// Whether the data folder is there and writable, for `/health`.
    /// Writes, fsyncs and removes a probe file in `users/`: on shared storage, a mount that
    /// went away or turned read-only fails here.
    pub fn is_writable(&self) -> bool {
        use std::io::Write;
        let probe = tempfile::Builder::new()
            .prefix(".health-")
            .tempfile_in(self.root.join("users"));
        let Ok(mut probe) = probe else {
            return false;
        };
        let written = probe
            .write_all(b"ok")
            .and_then(|()| probe.as_file().sync_all());
        written.is_ok() && probe.close().is_ok()
    }
}

/// The files of one user. Creating them is idempotent.
#[derive(Clone, Debug)]
pub struct UserFiles {
    dir: PathBuf,
}

impl UserFiles {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn collection(&self) -> PathBuf {
        self.dir.join(COLLECTION_FILE)
    }

    pub fn media_dir(&self) -> PathBuf {
        self.dir.join(MEDIA_DIR)
    }

    pub fn media_db(&self) -> PathBuf {
        self.dir.join(MEDIA_DB)
    }

    pub fn ensure_dir(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }
}

/// Renames `from` over `to` and makes the rename durable, so a crash leaves either the old
/// or the new file, never a mix.
pub fn atomic_replace(from: &Path, to: &Path) -> io::Result<()> {
    fs::File::open(from)?.sync_all()?;
    fs::rename(from, to)?;
    if let Some(parent) = to.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Removes journal files that belonged to a database that is being replaced. A stale `-wal`
/// next to a new main file would be replayed into it and corrupt it
/// (docs/sync-protocol.md#full-upload).
pub fn remove_stale_journals(db_path: &Path) -> io::Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        match fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Makes the database at `db_path` self-contained and removes its journals, before it is
/// replaced: a stored collection in WAL mode keeps committed pages in its `-wal` between
/// requests (`collection::sqlite::open_collection`), and a stale log next to a new file would
/// be replayed into it. The committed pages are checkpointed into the file first, so a crash
/// at any point leaves the old file complete or the new one in place. A file too damaged to
/// open keeps nothing worth folding; its journals are just removed.
pub fn fold_wal_and_remove_journals(db_path: &Path) -> anyhow::Result<()> {
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_has_pages = fs::metadata(PathBuf::from(wal)).is_ok_and(|meta| meta.len() > 0);
    if wal_has_pages && db_path.exists() {
        let folded = crate::collection::sqlite::open_collection(db_path)
            .and_then(|conn| crate::collection::sqlite::checkpoint_truncate(&conn));
        if let Err(err) = folded {
            let err = anyhow::Error::from(err);
            if !recovery::is_damage(&err) {
                return Err(err.context("checkpointing the collection before replacing it"));
            }
            tracing::warn!(error = %format!("{err:#}"), "damaged file replaced without folding its log");
        }
    }
    remove_stale_journals(db_path)?;
    Ok(())
}

/// The most recent 04:00 UTC, in seconds: the day rollover a new collection is created with.
pub fn rollover_crt(now_secs: i64) -> i64 {
    const ROLLOVER_SECS: i64 = 4 * 3600;
    now_secs - (now_secs - ROLLOVER_SECS).rem_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::temp_user;

    #[test]
    fn user_folders_are_keyed_by_numeric_id() {
        let files = temp_user(42);
        assert!(files.collection().ends_with("users/42/collection.anki2"));
        assert!(files.media_dir().ends_with("users/42/media"));
    }

    #[test]
    fn crt_is_the_last_4am() {
        // 2026-11-22 10:30:00 UTC -> 2026-11-22 04:00:00 UTC
        assert_eq!(rollover_crt(1_795_343_400), 1_795_320_000);
        // 03:00 belongs to the previous day's rollover
        assert_eq!(rollover_crt(1_795_316_400), 1_795_233_600);
    }
}
