//! Removing temporary files left behind by a crash, at start (docs/operations.md, "Temporary
//! files").
//!
//! Every temporary file the server writes sits in the folder it will end up in (so the final
//! rename is atomic) and has a name starting with one of [`TEMP_PREFIXES`]. A request that
//! ends normally removes or renames its file; a kill -9, an out-of-memory kill or a power loss
//! leaves it. Only files not modified for the configured age are removed: a second server
//! process on the same data folder (e.g. during a rolling restart) may still be using fresh
//! ones. A live upload writes to its file continuously and a conversion rewrites it, so an
//! hour without a write means the request is gone. Removing a file that another process still
//! reads does not disturb the reader on Unix: the data stays until it closes the file.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{IMPORT_PACKAGES_DIR as PACKAGES_DIR, MEDIA_DIR};

/// Name prefixes of the server's own temporary files. No valid media file name and no name
/// the server keeps starts with a dot.
pub const TEMP_PREFIXES: &[&str] = &[
    ".upload-",         // full upload body, compressed (`.upload-zst-`), compacted copy
    ".download-",       // full download snapshot
    ".import-",         // import package, its collection, staged media
    ".media-upload-",   // a file of a media upload, before it is moved into place
    ".media-download-", // a media download zip
    ".media-db-",       // a media.db being created or rebuilt
    ".imports-db-",     // an imports.db being rebuilt
    ".keep-",           // an import package being kept until delivery
    ".new-collection-", // a new collection being created
    ".health-",         // the health check's write probe
];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanupReport {
    pub files: u64,
    pub bytes: u64,
}

fn is_temp_name(name: &str) -> bool {
    TEMP_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Removes the server's temporary files not modified for `max_age`, in `users/`, each user's
/// folder, its `media/` and its `imports/`. Errors on single files are logged and skipped.
pub fn remove_stale_temp_files(data_root: &Path, max_age: Duration) -> CleanupReport {
    let mut report = CleanupReport::default();
    let now = SystemTime::now();
    let users = data_root.join("users");
    sweep(&users, now, max_age, &mut report);
    let Ok(entries) = fs::read_dir(&users) else {
        return report;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let dir = entry.path();
        sweep(&dir, now, max_age, &mut report);
        sweep(&dir.join(MEDIA_DIR), now, max_age, &mut report);
        sweep(&dir.join(PACKAGES_DIR), now, max_age, &mut report);
    }
    report
}

fn sweep(dir: &Path, now: SystemTime, max_age: Duration, report: &mut CleanupReport) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or_default();
        if age < max_age {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                report.files += 1;
                report.bytes += meta.len();
            }
            Err(err) => {
                tracing::warn!(path = %entry.path().display(), error = %err, "could not remove a stale temporary file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11, defect 9: temp files of interrupted requests stayed for ever.
    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let user = root.path().join("users").join("4");
        fs::create_dir_all(user.join("media")).unwrap();
        fs::create_dir_all(user.join("imports")).unwrap();
        // Paths below the data folder, each written with `bytes`.
        let files = |paths: &[&str], bytes: &[u8]| -> Vec<std::path::PathBuf> {
            let paths: Vec<_> = paths.iter().map(|path| root.path().join(path)).collect();
            for path in &paths {
                fs::write(path, bytes).unwrap();
            }
            paths
        };
        let stale = files(
            &[
                "users/4/.upload-abc",
                "users/4/.upload-zst-abc",
                "users/4/.upload-compact-abc",
                "users/4/.import-xyz.apkg",
                "users/4/.import-col-1",
                "users/4/.download-q",
                "users/4/media/.media-upload-1",
                "users/4/media/.import-media-2",
                "users/4/imports/.keep-3",
                "users/.health-4",
            ],
            b"12345",
        );
        let kept = files(
            &[
                "users/4/collection.anki2",
                "users/4/collection.anki2-journal",
                "users/4/media.db",
                "users/4/imports.db",
                "users/4/media/photo.jpg",
                "users/4/imports/1.apkg",
                "users/4/collection.anki2.corrupt-17",
            ],
            b"keep",
        );

        // Everything is fresh: a live request elsewhere may own it.
        let report = remove_stale_temp_files(root.path(), Duration::from_secs(3600));
        assert_eq!(report, CleanupReport::default());
        assert!(stale.iter().all(|p| p.exists()));

        let report = remove_stale_temp_files(root.path(), Duration::ZERO);
        assert_eq!(
            report,
            CleanupReport {
                files: stale.len() as u64,
                bytes: 5 * stale.len() as u64
            }
        );
        assert!(stale.iter().all(|p| !p.exists()));
        assert!(kept.iter().all(|p| p.exists()));
    }
}
