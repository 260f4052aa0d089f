//! The media store's operations (docs/sync-protocol.md#media-sync). They run beside a normal sync:
//! a client syncs its media after the collection, and they leave an open sync alone.

use std::time::Instant;

use super::{OpenSync, Received, UserData, UserDataError, UserDataResult, blocking};
use crate::media::db::{MediaChange, MediaTotals};
use crate::media::download_zip::{DownloadError, build_download};
use crate::media::upload_zip::{UploadError, read_upload};
use crate::media::{MediaDb, apply_upload};
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine};

/// At most this many changes go into one `mediaChanges` answer.
const MAX_CHANGES_PER_CALL: usize = 1000;

impl UserData {
    /// The server's media USN, for `begin`. Reads only, so it takes no lock (but in cluster
    /// mode).
    pub async fn media_usn(&self) -> UserDataResult<i64> {
        self.beside_the_lock(crate::media::last_usn).await
    }

    /// Changes after the client's last media USN, oldest first.
    pub async fn media_changes(&self, last_usn: i64) -> UserDataResult<Vec<MediaChange>> {
        self.exclusive(OpenSync::Keep, move |files| {
            MediaDb::open(files)?.changes_since(last_usn, MAX_CHANGES_PER_CALL)
        })
        .await
    }

    /// The number of live files and the rest of the media store's totals.
    pub async fn media_totals(&self) -> UserDataResult<MediaTotals> {
        self.exclusive(OpenSync::Keep, |files| MediaDb::open(files)?.totals())
            .await
    }

    /// Opens (creating or repairing) the media store, before an upload is received.
    pub async fn prepare_media(&self) -> UserDataResult<()> {
        self.beside_the_lock(|files| MediaDb::open(files).map(|_| ()))
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
            .exclusive(OpenSync::Keep, move |files| {
                let mut db = MediaDb::open(files)?;
                let before = db.totals()?.last_usn;
                anyhow::Ok((before, apply_upload(files, &mut db, entries)?))
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
            .exclusive(OpenSync::Keep, move |files| {
                let mut db = MediaDb::open(files).map_err(DownloadError::Other)?;
                build_download(files, &mut db, &names)
            })
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
