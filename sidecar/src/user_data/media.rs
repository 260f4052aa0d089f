//! The media store's operations (docs/sync-protocol.md#media-sync). They run beside a normal sync:
//! a client syncs its media after the collection, and they leave an open sync alone.

use std::time::Instant;

use super::cluster::Acquire;
use super::registry::UserGuard;
use super::{Received, UserData, UserDataError, UserDataResult, blocking};
use crate::media::cached::CachedMediaDb;
use crate::media::db::{MediaChange, MediaTotals};
use crate::media::download_zip::build_download;
use crate::media::upload_zip::{UploadError, read_upload};
use crate::media::{MediaDb, apply_upload};
use crate::storage::UserFiles;
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine};

/// At most this many changes go into one `mediaChanges` answer.
const MAX_CHANGES_PER_CALL: usize = 1000;

impl UserData {
    /// The server's media USN, for `begin`, on the kept `media.db` connection. In
    /// single-process mode a user whose lock is held right now (a request in flight) is
    /// answered beside the lock, through a connection of its own, as SQLite's locking allows;
    /// in cluster mode it waits for the lock, leaving an open sync alone.
    pub async fn media_usn(&self) -> UserDataResult<i64> {
        let slot = match self.registry.cluster() {
            Some(_) => Some(self.registry.lock(self.user_id).await),
            None => self.registry.try_lock(self.user_id),
        };
        let Some(slot) = slot else {
            let files = self.files.clone();
            return blocking(move || crate::media::last_usn(&files)).await;
        };
        self.on_kept_media(slot, media_usn_on).await
    }

    /// Changes after the client's last media USN, oldest first.
    pub async fn media_changes(&self, last_usn: i64) -> UserDataResult<Vec<MediaChange>> {
        self.with_media(move |_, db| db.changes_since(last_usn, MAX_CHANGES_PER_CALL))
            .await
    }

    /// The number of live files and the rest of the media store's totals.
    pub async fn media_totals(&self) -> UserDataResult<MediaTotals> {
        self.with_media(|_, db| db.totals()).await
    }

    /// Makes the folders an upload needs (the user's, where its body is spooled, and
    /// `media/`, where its files go) before it is received. The store itself is opened,
    /// created or repaired under the lock, when the upload is applied.
    pub async fn prepare_media(&self) -> UserDataResult<()> {
        let files = self.files.clone();
        blocking(move || {
            files.ensure_dir()?;
            std::fs::create_dir_all(files.media_dir())
        })
        .await
    }

    /// `uploadChanges`: applies a zip of added, changed and deleted files. The zip is checked
    /// and its files staged before the user's lock is taken. Returns the number of entries
    /// processed and the media USN afterwards.
    pub async fn media_upload(
        &self,
        received: Received,
        client: &ClientTag,
        started: Instant,
    ) -> UserDataResult<(usize, i64)> {
        let user_id = self.user_id;
        let refused = |reason: &str| {
            SyncLine {
                kind: Kind::Media,
                user_id,
                client,
                outcome: reason,
                usn_before: None,
                usn_after: None,
                received: Counts::default(),
                sent: Counts::default(),
                started,
            }
            .emit()
        };
        let zip = match received {
            Received::File(zip) => zip,
            Received::TooLarge => {
                refused("upload_refused_too_large");
                return Err(UserDataError::TooLarge("media upload too large".into()));
            }
        };
        let max_total = self.settings.limits.media_max_bytes();
        let staging = self.files.clone();
        let entries = blocking(move || read_upload(zip.path(), staging.dir(), max_total))
            .await
            .inspect_err(|err| {
                if let UserDataError::MediaUpload(UploadError::Invalid(message)) = err {
                    tracing::info!(user_id, reason = %message, "media upload refused");
                    refused("upload_refused");
                }
            })?;
        let (usn_before, (processed, usn)) = self
            .with_media(move |files, db| {
                let before = db.totals()?.last_usn;
                anyhow::Ok((before, apply_upload(files, db, entries)?))
            })
            .await?;
        SyncLine {
            kind: Kind::Media,
            user_id,
            client,
            outcome: "uploaded",
            usn_before: Some(usn_before),
            usn_after: Some(usn),
            received: Counts::default().with("files", processed),
            sent: Counts::default(),
            started,
        }
        .emit();
        Ok((processed, usn))
    }

    /// `downloadFiles`: a zip holding a prefix of the requested files.
    pub async fn media_download(
        &self,
        names: Vec<String>,
        client: &ClientTag,
        started: Instant,
    ) -> UserDataResult<tempfile::NamedTempFile> {
        let requested = names.len();
        let zip = self
            .with_media(move |files, db| build_download(files, db, &names))
            .await?;
        SyncLine {
            kind: Kind::Media,
            user_id: self.user_id,
            client,
            outcome: "downloaded",
            usn_before: None,
            usn_after: None,
            received: Counts::default(),
            sent: Counts::default().with("files_requested", requested).with(
                "zip_bytes",
                zip.as_file().metadata().map(|m| m.len()).unwrap_or(0),
            ),
            started,
        }
        .emit();
        Ok(zip)
    }
}

impl UserData {
    /// Runs `work` on the user's media store under the user's lock, leaving an open normal
    /// sync alone (media calls run beside one), in one blocking hop. The store's connection is
    /// the one kept in the slot if it still serves, else it is opened (created or repaired);
    /// it goes back to the slot afterwards, unless the work failed.
    async fn with_media<T, E, F>(&self, work: F) -> UserDataResult<T>
    where
        T: Send + 'static,
        E: From<anyhow::Error> + Into<UserDataError> + Send + 'static,
        F: FnOnce(&UserFiles, &mut MediaDb) -> Result<T, E> + Send + 'static,
    {
        let slot = self.registry.lock(self.user_id).await;
        self.on_kept_media(slot, move |kept, files| {
            let mut db = match CachedMediaDb::reuse_or_open(kept, files) {
                Ok(db) => db,
                Err(err) => return (Err(E::from(err)), None),
            };
            let result = work(files, &mut db);
            // A failure may have come from the file itself: the next request opens it
            // afresh, which repairs a damaged one.
            let kept = if result.is_ok() { db.put_away() } else { None };
            (result, kept)
        })
        .await
    }

    /// With the user's lock (`slot`) held, leaving an open normal sync alone: runs `step` on
    /// a blocking thread with the slot's kept `media.db` connection, keeps the connection
    /// `step` gives back, and releases the lock.
    async fn on_kept_media<T, E, F>(&self, mut slot: UserGuard, step: F) -> UserDataResult<T>
    where
        T: Send + 'static,
        E: Into<UserDataError> + Send + 'static,
        F: FnOnce(Option<CachedMediaDb>, &UserFiles) -> (Result<T, E>, Option<CachedMediaDb>)
            + Send
            + 'static,
    {
        slot.hold_cluster(Acquire::Wait).await?;
        let kept = slot.cached_media();
        let files = self.files.clone();
        let (result, kept) = blocking(move || Ok::<_, UserDataError>(step(kept, &files))).await?;
        if let Some(kept) = kept {
            slot.keep_media(kept);
        }
        slot.unlock().await;
        result.map_err(Into::into)
    }
}

/// The media USN on `kept` if it still serves, else on the store opened afresh (repaired if
/// damaged); 0 for a user without one, for whom nothing is created. Gives back the connection
/// to keep. Runs on a blocking thread, under the user's lock.
pub(super) fn media_usn_on(
    kept: Option<CachedMediaDb>,
    files: &UserFiles,
) -> (anyhow::Result<i64>, Option<CachedMediaDb>) {
    match CachedMediaDb::reuse_or_open_existing(kept, files) {
        Ok(None) => (Ok(0), None),
        Ok(Some(db)) => match db.totals() {
            Ok(totals) => (Ok(totals.last_usn), db.put_away()),
            Err(err) => (Err(err), None),
        },
        Err(err) => (Err(err), None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::DataDir;
    use crate::user_data::Users;
    use crate::user_data::admin::MediaOnReset;

    fn users(root: &std::path::Path) -> Users {
        let settings =
            crate::config::Settings::from_args([format!("--data-dir={}", root.display())]);
        Users::new(DataDir::new(root).unwrap(), Arc::new(settings), None)
    }

    async fn record(user: &UserData, name: &'static str) -> i64 {
        user.with_media(move |_, db| {
            let tx = db.transaction()?;
            let usn = tx.record_file(name, &[7; 20], 5, 1)?;
            tx.commit()?;
            anyhow::Ok(usn)
        })
        .await
        .unwrap()
    }

    async fn kept_media(user: &UserData) -> bool {
        user.registry
            .lock(user.user_id)
            .await
            .media_idle_for()
            .is_some()
    }

    /// The media calls share one kept connection; `begin` reads the USN on it.
    #[tokio::test]
    async fn media_calls_keep_the_store_open_between_requests() {
        let root = tempfile::tempdir().unwrap();
        let user = users(root.path()).user(1);
        assert_eq!(user.media_usn().await.unwrap(), 0);
        assert!(!user.files.media_db().exists(), "begin creates nothing");
        assert_eq!(record(&user, "a.png").await, 1);
        assert!(kept_media(&user).await);
        assert_eq!(user.media_usn().await.unwrap(), 1);
        assert_eq!(user.media_totals().await.unwrap().total_files, 1);
        assert!(kept_media(&user).await);
    }

    /// A reset closes the kept connection before it deletes `media.db`, and the next media
    /// call sees the empty store, not the one the connection had open.
    #[tokio::test]
    async fn a_reset_closes_the_kept_store() {
        let root = tempfile::tempdir().unwrap();
        let user = users(root.path()).user(2);
        crate::storage::status::ensure_collection(&user.files).unwrap();
        record(&user, "a.png").await;
        record(&user, "b.png").await;
        assert!(kept_media(&user).await);
        user.reset(false, MediaOnReset::Delete).await.unwrap();
        assert!(!kept_media(&user).await, "the reset must close it");
        assert_eq!(user.media_usn().await.unwrap(), 0);
        assert_eq!(user.media_totals().await.unwrap(), MediaTotals::default());
    }

    /// A failed call does not put its connection back: the next one opens the file afresh,
    /// which repairs a damaged store.
    #[tokio::test]
    async fn a_failed_call_does_not_keep_its_connection() {
        let root = tempfile::tempdir().unwrap();
        let user = users(root.path()).user(3);
        record(&user, "a.png").await;
        let failed = user
            .with_media(|_, _| Err::<(), _>(anyhow::anyhow!("broken")))
            .await;
        assert!(failed.is_err());
        assert!(!kept_media(&user).await);
        assert_eq!(user.media_totals().await.unwrap().total_files, 1);
    }
}
