//! The user's media store: flat `media/` plus `media.db` (docs/design.md#media,
//! docs/sync-protocol.md#media-sync).

pub mod cached;
pub mod db;
pub mod download_zip;
pub mod names;
pub mod upload_zip;

pub use db::{MediaDb, last_usn};

use anyhow::Context;

use crate::storage::UserFiles;
use upload_zip::UploadEntry;

/// Applies validated upload entries in one transaction of `db`, the user's open media.db.
/// Each file is moved into place by rename before it is recorded, so a crash never records a
/// half-written file. Returns how many entries were processed and the media USN afterwards.
pub fn apply_upload(
    files: &UserFiles,
    db: &mut MediaDb,
    entries: Vec<UploadEntry>,
) -> anyhow::Result<(usize, i64)> {
    let media_dir = files.media_dir();
    let now = crate::clock::now_secs();
    let processed = entries.len();
    let tx = db.transaction()?;
    for entry in entries {
        let path = media_dir.join(&entry.name);
        match entry.data {
            None => {
                if tx.record_deletion(&entry.name, now)?.is_some() {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err).context("deleting a media file"),
                    }
                    tracing::debug!(name = %entry.name, "media removed");
                }
            }
            Some(staged) => {
                if tx
                    .live_entry(&entry.name)?
                    .is_some_and(|existing| existing.sha1 == staged.sha1)
                {
                    continue;
                }
                staged
                    .file
                    .persist(&path)
                    .map_err(|err| err.error)
                    .context("moving a media file into place")?;
                tx.record_file(&entry.name, &staged.sha1, staged.size as i64, now)?;
                tracing::debug!(name = %entry.name, "media added or replaced");
            }
        }
    }
    crate::fault::point("media:files-placed");
    tx.commit()?;
    crate::fault::point("media:committed");
    std::fs::File::open(&media_dir)
        .and_then(|dir| dir.sync_all())
        .context("syncing the media folder")?;
    Ok((processed, db.totals()?.last_usn))
}
