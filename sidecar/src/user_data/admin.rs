//! What the Django admin sees and does for one user: what the server holds (stats), wiping
//! it (reset), and removing the data of a user deleted in Django.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{OpenSync, UserData, UserDataError, UserDataResult, Users};
use crate::collection::rows::{self, Table};
use crate::media::MediaDb;
use crate::storage::user_removal::{
    delete_media_db, folder_user_ids, remove_leftovers, remove_user_folder,
};
use crate::storage::{UserFiles, remove_stale_journals};

impl Users {
    /// The ids of every user with a folder, whether Django still knows them or not.
    pub async fn with_folders(&self) -> UserDataResult<Vec<i64>> {
        let data = self.data.clone();
        super::blocking(move || folder_user_ids(&data)).await
    }

    /// Whether the data folder is there and writable, for `/health`.
    pub async fn writable(&self) -> bool {
        let data = self.data.clone();
        tokio::task::spawn_blocking(move || data.is_writable())
            .await
            .unwrap_or(false)
    }
}

impl UserData {
    /// What the server holds for the user, and whether a sync is open (or the user is busy).
    pub async fn stats(&self) -> UserDataResult<(UserDataStats, bool)> {
        if self.registry.cluster().is_some() {
            return self.stats_in_cluster().await;
        }
        let files = self.files.clone();
        let stats = super::blocking(move || user_stats(&files)).await?;
        let sync_in_progress = match self.registry.try_lock(self.user_id) {
            Some(slot) => slot.session.is_some(),
            None => true,
        };
        Ok((stats, sync_in_progress))
    }

    /// Cluster mode: the files are read under the user's lock, since another node may be
    /// writing them. A sync open on this node is read beside, as in single-process mode; one
    /// open on another node is waited for as an import waits, up to `RETRY_AFTER`, and then
    /// the answer is `Syncing` (503 with Retry-After).
    async fn stats_in_cluster(&self) -> UserDataResult<(UserDataStats, bool)> {
        let mut slot = self.registry.lock(self.user_id).await;
        let deadline = tokio::time::Instant::now() + super::RETRY_AFTER;
        slot.hold_cluster(super::Acquire::Until(deadline)).await?;
        let sync_in_progress = slot.session.is_some();
        let files = self.files.clone();
        let stats = super::blocking(move || user_stats(&files)).await;
        slot.unlock().await;
        Ok((stats?, sync_in_progress))
    }

    /// Wipes the user's data (see `reset_user_data`); a real reset first ends an open sync.
    pub async fn reset(&self, dry_run: bool, media: MediaOnReset) -> UserDataResult<ResetReport> {
        let open_sync = if dry_run {
            OpenSync::Keep
        } else {
            OpenSync::End("reset by an admin")
        };
        self.exclusive(open_sync, move |files| {
            reset_user_data(files, dry_run, media)
        })
        .await
    }

    /// Removes the data of a user deleted in Django: under the user's lock, ends an open sync,
    /// runs `forget_keys` (the deletion of the user's host keys), then removes the folder.
    /// Returns whether there was a folder, and what `forget_keys` returned.
    pub async fn remove<T, E>(
        &self,
        forget_keys: impl std::future::Future<Output = Result<T, E>>,
    ) -> UserDataResult<(bool, T)>
    where
        UserDataError: From<E>,
    {
        let mut slot = self.registry.lock(self.user_id).await;
        slot.hold_cluster(super::Acquire::Supersede).await?;
        super::end_session(&mut slot, "user deleted").await?;
        // The kept connections are closed before their files go.
        slot.close_files();
        let forgotten = forget_keys.await?;
        let files = self.files.clone();
        let folder_removed = super::blocking(move || remove_user_folder(&files)).await?;
        slot.unlock().await;
        Ok((folder_removed, forgotten))
    }
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct UserDataStats {
    pub has_collection: bool,
    pub cards: i64,
    pub notes: i64,
    pub revlog: i64,
    /// The collection's `col.usn`.
    pub usn: i64,
    /// `col.mod` in milliseconds.
    pub modified_ms: i64,
    /// `col.ls`: when a client last completed a sync (ms), 0 if never.
    pub last_sync_ms: i64,
    pub collection_bytes: u64,
    pub media_files: i64,
    pub media_bytes: i64,
    pub media_usn: i64,
}

/// Counts rows and files without creating anything for a user who never synced.
pub fn user_stats(files: &UserFiles) -> anyhow::Result<UserDataStats> {
    let mut stats = UserDataStats::default();
    add_collection_stats(files, &mut stats)?;
    add_media_stats(files, &mut stats)?;
    Ok(stats)
}

/// What a reset reports as deleted. A reset must also work on a broken collection or media
/// database (that is often why it is run), so what cannot be read is counted as nothing.
fn stats_for_reset(files: &UserFiles) -> UserDataStats {
    let mut stats = UserDataStats::default();
    if let Err(err) = add_collection_stats(files, &mut stats) {
        tracing::warn!(error = %format!("{err:#}"), "collection unreadable; resetting anyway");
        stats = UserDataStats::default();
    }
    if let Err(err) = add_media_stats(files, &mut stats) {
        tracing::warn!(error = %format!("{err:#}"), "media database unreadable; resetting anyway");
    }
    stats
}

fn add_collection_stats(files: &UserFiles, stats: &mut UserDataStats) -> anyhow::Result<()> {
    let collection = files.collection();
    if collection.exists() {
        let conn = rusqlite::Connection::open_with_flags(
            &collection,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .context("opening the collection")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        stats.has_collection = true;
        stats.cards = rows::count(&conn, Table::Cards)?;
        stats.notes = rows::count(&conn, Table::Notes)?;
        stats.revlog = rows::count(&conn, Table::Revlog)?;
        let times = crate::collection::col_row::col(&conn).sync_times()?;
        stats.usn = i64::from(times.usn);
        stats.modified_ms = times.modified_ms;
        stats.last_sync_ms = times.last_sync_ms;
        stats.collection_bytes = std::fs::metadata(&collection)?.len();
    }
    Ok(())
}

fn add_media_stats(files: &UserFiles, stats: &mut UserDataStats) -> anyhow::Result<()> {
    if files.media_db().exists() {
        let totals = MediaDb::open_path(&files.media_db())?.totals()?;
        stats.media_files = totals.total_files;
        stats.media_bytes = totals.total_bytes;
        stats.media_usn = totals.last_usn;
    }
    Ok(())
}

/// What a reset does with the user's media (docs/operations.md, "Resetting a user").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaOnReset {
    /// Delete the media files and the media database.
    Delete,
    /// Keep both: the media stay exactly as they are.
    Keep,
    /// Keep the files, delete the media database (the older server's `--keep-media-files`):
    /// the record of the files is rebuilt, which repairs a broken `media.db`.
    KeepFiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResetReport {
    pub dry_run: bool,
    /// True unless the media files were (or would be) deleted.
    pub keep_media: bool,
    pub media: MediaOnReset,
    /// What was (or, in a dry run, would be) deleted.
    pub deleted: UserDataStats,
    /// Temp files and unneeded import packages removed (counted in a dry run too).
    pub leftovers: usize,
}

/// Deletes the user's collection, their temp files and the import packages no pending
/// import needs, and does with their media what `media` says. Afterwards the user's next
/// sync finds an empty server and is offered a clean full upload. A dry run only reports.
/// The caller holds the user's lock and has ended any normal sync.
///
/// The import ledger stays: imports no device has received are merged again after the full
/// upload that follows.
pub fn reset_user_data(
    files: &UserFiles,
    dry_run: bool,
    media: MediaOnReset,
) -> anyhow::Result<ResetReport> {
    let mut deleted = stats_for_reset(files);
    if media != MediaOnReset::Delete {
        deleted.media_files = 0;
        deleted.media_bytes = 0;
        deleted.media_usn = 0;
    }
    let pending: Vec<std::path::PathBuf> =
        match crate::import::ledger::Ledger::open_existing(files)? {
            Some(ledger) => ledger.pending()?.into_iter().map(|p| p.package).collect(),
            None => Vec::new(),
        };
    let leftovers = remove_leftovers(files, &pending, dry_run)?;
    if !dry_run {
        let collection = files.collection();
        // Journals first: a crash in between must not leave a `-wal` for the next new
        // collection at this path (creating one removes strays as well).
        remove_stale_journals(&collection)?;
        remove_if_present(&collection)?;
        match media {
            MediaOnReset::Delete => {
                if files.media_dir().exists() {
                    std::fs::remove_dir_all(files.media_dir())
                        .context("deleting the media folder")?;
                }
                delete_media_db(files)?;
            }
            MediaOnReset::KeepFiles => delete_media_db(files)?,
            MediaOnReset::Keep => {}
        }
        if files.dir().exists() {
            std::fs::File::open(files.dir())?.sync_all()?;
        }
    }
    Ok(ResetReport {
        dry_run,
        keep_media: media != MediaOnReset::Delete,
        media,
        deleted,
        leftovers,
    })
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::status::ensure_collection;
    use crate::storage::test_support::temp_user;

    /// A collection, and `a.png` both on disk and recorded in `media.db`.
    fn with_collection_and_one_media_file(files: &UserFiles) {
        ensure_collection(files).unwrap();
        let mut media = MediaDb::open(files).unwrap();
        let tx = media.transaction().unwrap();
        tx.record_file("a.png", &[1; 20], 4, 0).unwrap();
        tx.commit().unwrap();
        std::fs::write(files.media_dir().join("a.png"), b"abcd").unwrap();
    }

    #[test]
    fn a_dry_run_deletes_nothing_and_a_real_reset_can_keep_media() {
        let files = temp_user(3);
        with_collection_and_one_media_file(&files);
        let report = reset_user_data(&files, true, MediaOnReset::Delete).unwrap();
        assert!(report.dry_run);
        assert_eq!(report.deleted.media_files, 1);
        assert!(files.collection().exists());

        let report = reset_user_data(&files, false, MediaOnReset::Keep).unwrap();
        assert_eq!(report.deleted.media_files, 0);
        assert!(!files.collection().exists());
        assert!(files.media_dir().join("a.png").exists());
        assert_eq!(user_stats(&files).unwrap().media_files, 1);

        reset_user_data(&files, false, MediaOnReset::Delete).unwrap();
        assert!(!files.media_dir().exists());
        assert_eq!(user_stats(&files).unwrap(), UserDataStats::default());
    }

    #[test]
    fn keeping_the_media_files_deletes_the_media_db_and_leftovers_go() {
        let files = temp_user(4);
        with_collection_and_one_media_file(&files);
        std::fs::write(files.dir().join(".upload-zst-left"), b"half an upload").unwrap();

        let dry = reset_user_data(&files, true, MediaOnReset::KeepFiles).unwrap();
        assert_eq!(dry.leftovers, 1);
        assert!(files.dir().join(".upload-zst-left").exists());

        let report = reset_user_data(&files, false, MediaOnReset::KeepFiles).unwrap();
        assert!(report.keep_media);
        assert_eq!(report.media, MediaOnReset::KeepFiles);
        assert_eq!(report.leftovers, 1);
        assert!(!files.collection().exists());
        assert!(!files.media_db().exists());
        assert!(files.media_dir().join("a.png").exists());
        assert!(!files.dir().join(".upload-zst-left").exists());
    }
}
