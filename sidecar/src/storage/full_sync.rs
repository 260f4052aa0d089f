//! Full sync on disk: installing an uploaded collection, and snapshotting one for download
//! (protocol §5, design §4).

use anyhow::Context;

use super::{UserFiles, atomic_replace, now_millis, remove_stale_journals};
use crate::collection::{convert, intake, sqlite};

/// The official server's sentences; the client shows them verbatim (protocol §5.1).
pub const UPLOAD_OK: &str = "OK";
pub const UPLOAD_CORRUPT: &str =
    "Your upload was corrupt. Please use Check Database, or restore from backup.";
pub const UPLOAD_TOO_LARGE: &str = "collection exceeds size limit";

#[derive(Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    Installed,
    /// The upload was refused; the stored collection was not touched.
    Corrupt(String),
}

/// Validates an uploaded file, converts it to schema 11 in place, and atomically swaps it in.
/// Runs on a blocking thread; the caller holds the user's lock and has ended any normal sync.
pub fn install_upload(
    files: &UserFiles,
    upload: tempfile::NamedTempFile,
) -> anyhow::Result<UploadOutcome> {
    if let Err(reason) = validate_and_convert(upload.path()) {
        tracing::info!(reason = %reason, "uploaded file was corrupt");
        remove_stale_journals(upload.path())?;
        return Ok(UploadOutcome::Corrupt(reason));
    }
    let target = files.collection();
    // The temp file's own journal was folded in when it switched to DELETE mode; any journal
    // of the old collection must not survive next to the new file.
    remove_stale_journals(upload.path())?;
    crate::fault::point("upload:converted");
    let kept = upload
        .into_temp_path()
        .keep()
        .context("keeping the uploaded file")?;
    if let Err(err) = atomic_replace(&kept, &target) {
        let _ = std::fs::remove_file(&kept);
        return Err(err).context("swapping in the uploaded collection");
    }
    remove_stale_journals(&target)?;
    Ok(UploadOutcome::Installed)
}

fn validate_and_convert(path: &std::path::Path) -> Result<(), String> {
    let conn =
        intake::check_and_convert(path, intake::Source::Upload).map_err(|err| err.to_string())?;
    crate::collection::graves::ensure_graves_indexes(&conn);
    convert::finish_as_standalone_file(&conn).map_err(|err| format!("finishing: {err}"))?;
    drop(conn);
    Ok(())
}

/// Bumps `usn` and `mod` as the official server does before a download (protocol §5.2), and
/// returns a private copy of the file to stream, so the user's lock need not be held while
/// a slow client reads it.
pub fn snapshot_for_download(files: &UserFiles) -> anyhow::Result<tempfile::NamedTempFile> {
    let path = files.collection();
    {
        let collection = sqlite::Collection::open(&path).context("opening the collection")?;
        collection.col().bump_usn_and_modified(now_millis())?;
        // A no-op in DELETE mode; guarantees a self-contained main file otherwise.
        collection
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let snapshot = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(files.dir())?;
    std::fs::copy(&path, snapshot.path()).context("copying the collection for download")?;
    {
        // Clients get exactly Anki's schema, without the server's own indexes.
        let conn = sqlite::open_collection(snapshot.path()).context("opening the snapshot")?;
        crate::collection::graves::drop_graves_indexes(&conn).context("preparing the snapshot")?;
    }
    Ok(snapshot)
}
