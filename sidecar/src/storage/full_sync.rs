//! Full sync on disk: installing an uploaded collection, and snapshotting one for download
//! (docs/sync-protocol.md#full-sync, docs/design.md#schema-11-on-the-server).

use anyhow::Context;

use super::{UserFiles, atomic_replace, fold_wal_and_remove_journals, remove_stale_journals};
use crate::clock::now_millis;
use crate::collection::convert::Finished;
use crate::collection::{convert, intake, sqlite};

/// The official server's sentences; the client shows them verbatim
/// (docs/sync-protocol.md#full-upload).
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

/// Validates an uploaded file, converts it to schema 11 in place (or into a compacted copy),
/// and atomically swaps the result in. Runs on a blocking thread; the caller holds the user's
/// lock and has ended any normal sync.
pub fn install_upload(
    files: &UserFiles,
    upload: tempfile::NamedTempFile,
) -> anyhow::Result<UploadOutcome> {
    // Where a compacted copy goes if the converted file needs one; empty until then.
    let compacted = tempfile::Builder::new()
        .prefix(".upload-compact-")
        .tempfile_in(files.dir())
        .context("creating the file for a compacted copy")?;
    // The disk writes the received file back while the CPU checks it: the sync before the
    // rename then only waits for the pages the conversion changed. Only a head start; what
    // makes the file durable is that sync (`atomic_replace`).
    let checked = std::thread::scope(|scope| {
        let head_start = scope.spawn(|| upload.as_file().sync_data());
        let checked = validate_and_convert(upload.path(), compacted.path());
        if let Ok(Err(err)) = head_start.join() {
            tracing::debug!(%err, "writing the upload back early failed; the final sync retries");
        }
        checked
    });
    let finished = match checked {
        Ok(finished) => finished,
        Err(reason) => {
            tracing::info!(reason = %reason, "uploaded file was corrupt");
            remove_stale_journals(upload.path())?;
            return Ok(UploadOutcome::Corrupt(reason));
        }
    };
    // The temp file was checked without a journal, after leaving the client's WAL mode; no
    // journal of any kind may survive next to the new file.
    remove_stale_journals(upload.path())?;
    let result = match finished {
        Finished::InPlace => upload,
        Finished::Compacted => {
            drop(upload);
            compacted
        }
    };
    crate::fault::point("upload:converted");
    let kept = result
        .into_temp_path()
        .keep()
        .context("keeping the uploaded file")?;
    // The old collection's log is folded into it and removed before the new file takes its
    // name: at no moment does a `-wal` lie next to a file it does not belong to. The new file
    // is synced to disk before the rename (`atomic_replace`): it was written without syncs.
    let target = files.collection();
    if let Err(err) = fold_wal_and_remove_journals(&target) {
        let _ = std::fs::remove_file(&kept);
        return Err(err);
    }
    if let Err(err) = atomic_replace(&kept, &target) {
        let _ = std::fs::remove_file(&kept);
        return Err(err).context("swapping in the uploaded collection");
    }
    remove_stale_journals(&target)?;
    Ok(UploadOutcome::Installed)
}

fn validate_and_convert(
    path: &std::path::Path,
    compacted: &std::path::Path,
) -> Result<Finished, String> {
    let conn =
        intake::check_and_convert(path, intake::Source::Upload).map_err(|err| err.to_string())?;
    crate::collection::graves::ensure_graves_indexes(&conn);
    convert::finish_as_standalone_file(&conn, compacted).map_err(|err| format!("finishing: {err}"))
}

/// Bumps `usn` and `mod` as the official server does before a download
/// (docs/sync-protocol.md#full-download), and returns a private copy of the file to stream, so the
/// user's lock need not be held while a slow client reads it.
pub fn snapshot_for_download(files: &UserFiles) -> anyhow::Result<tempfile::NamedTempFile> {
    let path = files.collection();
    let snapshot = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(files.dir())?;
    {
        let collection = sqlite::Collection::open(&path).context("opening the collection")?;
        collection.col().bump_usn_and_modified(now_millis())?;
        let conn = collection.conn();
        // In WAL mode the file alone is not the database: fold the log into it first (a
        // no-op in DELETE mode). Then a read transaction that began with the log empty keeps
        // any other connection from checkpointing into the file while it is copied, so the
        // copy is one consistent state.
        sqlite::checkpoint_truncate(conn).context("checkpointing before the download")?;
        conn.execute_batch("BEGIN")?;
        collection.col().usn()?;
        std::fs::copy(&path, snapshot.path()).context("copying the collection for download")?;
        conn.execute_batch("COMMIT")?;
    }
    {
        // A standalone file in DELETE mode, as clients have always received it; then exactly
        // Anki's schema, without the server's own indexes.
        let conn = sqlite::open_collection(snapshot.path()).context("opening the snapshot")?;
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .context("preparing the snapshot")?;
        crate::collection::graves::drop_graves_indexes(&conn).context("preparing the snapshot")?;
    }
    remove_stale_journals(snapshot.path())?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::collection::schema11;
    use crate::collection::test_support::query_value;
    use crate::storage::recovery::sibling;
    use crate::storage::status::{ensure_collection, read_status};
    use crate::storage::test_support::temp_user;

    fn user() -> UserFiles {
        let files = temp_user(5);
        files.ensure_dir().unwrap();
        files
    }

    /// A stored collection whose last commit (`usn`) is still only in its write-ahead log.
    fn stored_with_pages_in_the_log(files: &UserFiles, usn: i64) {
        ensure_collection(files).unwrap();
        let conn = sqlite::open_collection(&files.collection()).unwrap();
        conn.execute("UPDATE col SET usn = ?1", [usn]).unwrap();
        drop(conn);
        let wal = sibling(&files.collection(), "-wal");
        assert!(
            wal.metadata().unwrap().len() > 0,
            "closing a connection leaves the commit in the log"
        );
    }

    /// What the main file says on its own, without the log next to it.
    fn usn_of_the_file_alone(path: &Path) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("alone.anki2");
        std::fs::copy(path, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        conn.query_row("SELECT usn FROM col", [], |r| r.get(0))
            .unwrap()
    }

    fn upload_with_usn(files: &UserFiles, usn: i64) -> tempfile::NamedTempFile {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("upload.anki2");
        schema11::create_new_collection(&made, 1_795_336_565_177, 1_795_320_000).unwrap();
        rusqlite::Connection::open(&made)
            .unwrap()
            .execute("UPDATE col SET usn = ?1", [usn])
            .unwrap();
        let upload = tempfile::NamedTempFile::new_in(files.dir()).unwrap();
        std::fs::copy(&made, upload.path()).unwrap();
        upload
    }

    #[test]
    fn stored_collections_are_in_wal_mode_and_keep_commits_in_the_log() {
        let files = user();
        stored_with_pages_in_the_log(&files, 41);
        assert_eq!(read_status(&files).unwrap().usn, 41);
        let conn = sqlite::open_collection(&files.collection()).unwrap();
        assert_eq!(query_value::<String>(&conn, "PRAGMA journal_mode"), "wal");
    }

    #[test]
    fn folding_the_log_leaves_a_complete_file_and_no_journal() {
        let files = user();
        stored_with_pages_in_the_log(&files, 41);
        fold_wal_and_remove_journals(&files.collection()).unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!sibling(&files.collection(), suffix).exists(), "{suffix}");
        }
        assert_eq!(usn_of_the_file_alone(&files.collection()), 41);
    }

    #[test]
    fn an_upload_over_a_collection_with_pages_in_its_log_is_not_corrupted_by_them() {
        let files = user();
        stored_with_pages_in_the_log(&files, 41);
        let upload = upload_with_usn(&files, 7);
        assert_eq!(
            install_upload(&files, upload).unwrap(),
            UploadOutcome::Installed
        );
        assert!(!sibling(&files.collection(), "-wal").exists());
        assert_eq!(usn_of_the_file_alone(&files.collection()), 7);
        let status = read_status(&files).unwrap();
        assert_eq!(status.usn, 7);
        // And it is in WAL mode from the first meta on, with its commits intact.
        stored_with_pages_in_the_log(&files, 8);
        assert_eq!(read_status(&files).unwrap().usn, 8);
    }

    #[test]
    fn a_download_is_one_consistent_standalone_file_after_writes_in_the_log() {
        let files = user();
        stored_with_pages_in_the_log(&files, 41);
        let snapshot = snapshot_for_download(&files).unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!sibling(snapshot.path(), suffix).exists(), "{suffix}");
        }
        // The download bumps the usn, as the official server does.
        assert_eq!(usn_of_the_file_alone(snapshot.path()), 42);
        let conn = rusqlite::Connection::open(snapshot.path()).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        assert_eq!(read_status(&files).unwrap().usn, 42);
    }

    #[test]
    fn a_new_collection_ignores_a_stray_log_of_a_deleted_one() {
        let files = user();
        // Another database's log, with pages of its own, where the new collection will be.
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.anki2");
        schema11::create_new_collection(&other, 1_795_336_565_177, 1_795_320_000).unwrap();
        {
            let conn = sqlite::open_collection(&other).unwrap();
            sqlite::use_wal(&conn).unwrap();
            conn.execute_batch(
                "CREATE TABLE filler (x); INSERT INTO filler VALUES (randomblob(20000));
                 UPDATE col SET usn = 99, scm = 5;",
            )
            .unwrap();
        }
        std::fs::copy(
            sibling(&other, "-wal"),
            sibling(&files.collection(), "-wal"),
        )
        .unwrap();
        ensure_collection(&files).unwrap();
        let status = read_status(&files).unwrap();
        assert_eq!(status.usn, 0);
        assert_ne!(status.schema_ms, 5);
        let conn = sqlite::open_collection(&files.collection()).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    /// The temporary files an upload leaves in the user's folder: none, whatever happened.
    fn leftovers(files: &UserFiles) -> Vec<String> {
        std::fs::read_dir(files.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".upload") || name.starts_with(".tmp"))
            .collect()
    }

    #[test]
    fn an_upload_sent_in_wal_mode_is_installed_in_delete_mode_without_its_log() {
        let files = user();
        ensure_collection(&files).unwrap();
        let upload = upload_with_usn(&files, 9);
        let conn = rusqlite::Connection::open(upload.path()).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        drop(conn);
        assert_eq!(
            install_upload(&files, upload).unwrap(),
            UploadOutcome::Installed
        );
        assert!(leftovers(&files).is_empty(), "{:?}", leftovers(&files));
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!sibling(&files.collection(), suffix).exists(), "{suffix}");
        }
        let conn = rusqlite::Connection::open(files.collection()).unwrap();
        assert_eq!(
            query_value::<String>(&conn, "PRAGMA journal_mode"),
            "delete"
        );
        assert_eq!(usn_of_the_file_alone(&files.collection()), 9);
    }

    #[test]
    fn a_mostly_free_upload_is_installed_compacted() {
        let files = user();
        let upload = upload_with_usn(&files, 4);
        let conn = rusqlite::Connection::open(upload.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE filler (x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO filler SELECT randomblob(4000) FROM n;
             DROP TABLE filler;",
        )
        .unwrap();
        let free: i64 = query_value(&conn, "PRAGMA freelist_count");
        assert!(free >= 500, "{free}");
        drop(conn);
        assert_eq!(
            install_upload(&files, upload).unwrap(),
            UploadOutcome::Installed
        );
        assert!(leftovers(&files).is_empty(), "{:?}", leftovers(&files));
        let conn = rusqlite::Connection::open(files.collection()).unwrap();
        assert_eq!(query_value::<i64>(&conn, "PRAGMA freelist_count"), 0);
        assert_eq!(
            query_value::<String>(&conn, "PRAGMA journal_mode"),
            "delete"
        );
        assert_eq!(usn_of_the_file_alone(&files.collection()), 4);
    }

    #[test]
    fn a_refused_upload_leaves_the_stored_collection_and_no_temporary_file() {
        let files = user();
        stored_with_pages_in_the_log(&files, 41);
        let upload = tempfile::NamedTempFile::new_in(files.dir()).unwrap();
        std::fs::write(upload.path(), b"SQLite format 3\0 but nothing after").unwrap();
        assert!(matches!(
            install_upload(&files, upload).unwrap(),
            UploadOutcome::Corrupt(_)
        ));
        assert!(leftovers(&files).is_empty(), "{:?}", leftovers(&files));
        assert_eq!(read_status(&files).unwrap().usn, 41);
    }
}
