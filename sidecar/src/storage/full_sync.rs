//! Full sync on disk: installing an uploaded collection, and snapshotting one for download
//! (protocol §5, design §4).

use std::io::Read;

use anyhow::Context;

use super::{UserFiles, atomic_replace, remove_stale_journals};
use crate::clock::now_millis;
use crate::collection::{convert, schema_guard, sqlite};

/// The official server's sentences; the client shows them verbatim (protocol §5.1).
pub const UPLOAD_OK: &str = "OK";
pub const UPLOAD_CORRUPT: &str =
    "Your upload was corrupt. Please use Check Database, or restore from backup.";
pub const UPLOAD_TOO_LARGE: &str = "collection exceeds size limit";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

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
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map_err(|_| "file is too short to be SQLite".to_string())?;
    if &magic != SQLITE_MAGIC {
        return Err("not an SQLite file".into());
    }
    let conn = sqlite::open_collection(path).map_err(|err| format!("cannot open: {err}"))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|err| format!("integrity check failed: {err}"))?;
    if integrity != "ok" {
        return Err(format!("integrity check: {integrity}"));
    }
    // Before anything writes to the file, so that no planted trigger fires.
    let dropped =
        schema_guard::drop_triggers_and_views(&conn).map_err(|err| format!("cleaning: {err}"))?;
    let col_rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM col", [], |row| row.get(0))
        .map_err(|err| format!("no col table: {err}"))?;
    if col_rows != 1 {
        return Err(format!("col has {col_rows} rows"));
    }
    let version = convert::schema_version(&conn).map_err(|err| err.to_string())?;
    if !(version == 11 || (14..=18).contains(&version)) {
        return Err(format!("unsupported schema version {version}"));
    }
    convert::convert_to_schema11(&conn).map_err(|err| format!("conversion failed: {err}"))?;
    let mut dropped = dropped;
    dropped.extend(
        schema_guard::drop_unknown_tables_and_indexes(&conn)
            .map_err(|err| format!("cleaning: {err}"))?,
    );
    if !dropped.is_empty() {
        tracing::warn!(
            ?dropped,
            "dropped objects Anki does not create from an upload"
        );
    }
    crate::normal_sync::graves::ensure_graves_indexes(&conn);
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
        let conn = sqlite::open_collection(&path).context("opening the collection")?;
        conn.execute(
            "UPDATE col SET usn = usn + 1, mod = ?1 WHERE id = 1",
            [now_millis()],
        )?;
        // A no-op in DELETE mode; guarantees a self-contained main file otherwise.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let snapshot = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(files.dir())?;
    std::fs::copy(&path, snapshot.path()).context("copying the collection for download")?;
    {
        // Clients get exactly Anki's schema, without the server's own indexes.
        let conn = sqlite::open_collection(snapshot.path()).context("opening the snapshot")?;
        crate::normal_sync::graves::drop_graves_indexes(&conn).context("preparing the snapshot")?;
    }
    Ok(snapshot)
}
