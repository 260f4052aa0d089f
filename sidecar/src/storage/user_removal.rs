//! Removing what the server keeps for a user: the whole folder of a user deleted in Django,
//! and the leftovers a reset clears (temp files, packages the import ledger no longer needs).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{DataDir, UserFiles, remove_stale_journals};

/// The numeric ids of the folders under `users/`.
pub fn folder_user_ids(data: &DataDir) -> io::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(data.root().join("users"))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        {
            // Only canonical names: "042" is not the folder of user 42.
            if id.to_string() == entry.file_name().to_string_lossy() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Deletes the user's whole folder. It is first renamed out of the way (one atomic step, made
/// durable), so a crash halfway never leaves a half-deleted folder under the user's id.
/// Returns whether there was a folder. The caller holds the user's lock.
pub fn remove_user_folder(files: &UserFiles) -> anyhow::Result<bool> {
    let dir = files.dir();
    if !dir.exists() {
        return Ok(false);
    }
    let parent = dir.parent().context("user folder without a parent")?;
    let name = dir.file_name().context("user folder without a name")?;
    let doomed = parent.join(format!(
        ".deleted-{}-{}",
        name.to_string_lossy(),
        rand::random::<u32>()
    ));
    fs::rename(dir, &doomed).with_context(|| format!("moving {} aside", dir.display()))?;
    fs::File::open(parent)?.sync_all()?;
    fs::remove_dir_all(&doomed).with_context(|| format!("deleting {}", doomed.display()))?;
    Ok(true)
}

/// Deletes the media database (and its journals), keeping the files in `media/`. With no
/// media database the server starts an empty one; the client's media sanity check then finds
/// the counts differ and uploads its files again, which rebuilds the record of them. A
/// recovery that rebuilds a missing media database from `media/` when it is opened gives the
/// same end state sooner.
pub fn delete_media_db(files: &UserFiles) -> anyhow::Result<()> {
    let path = files.media_db();
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("deleting {}", path.display())),
    }
    remove_stale_journals(&path)?;
    Ok(())
}

/// Names of the temp files the server writes into a user's folder: every one starts with a
/// dot (spooled uploads, download snapshots, media zips, staged imports).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
}

/// Removes the user's temp files and the packages in `imports/` that no pending import
/// refers to. `keep` lists the packages still pending. Returns how many files went (or, with
/// `dry_run`, would go). The caller holds the user's lock, so no request of this user is
/// writing one of them.
pub fn remove_leftovers(
    files: &UserFiles,
    keep: &[PathBuf],
    dry_run: bool,
) -> anyhow::Result<usize> {
    let remove = |path: &Path| if dry_run { Ok(1) } else { remove_file(path) };
    let mut removed = 0;
    if files.dir().exists() {
        for entry in fs::read_dir(files.dir())? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_file() && is_temp_name(&name.to_string_lossy()) {
                removed += remove(&entry.path())?;
            }
        }
    }
    let packages = files.dir().join("imports");
    if packages.is_dir() {
        let keep: HashSet<&Path> = keep.iter().map(PathBuf::as_path).collect();
        for entry in fs::read_dir(&packages)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_file() && !keep.contains(path.as_path()) {
                removed += remove(&path)?;
            }
        }
    }
    if removed > 0 && !dry_run {
        fs::File::open(files.dir())?.sync_all()?;
    }
    Ok(removed)
}

fn remove_file(path: &Path) -> anyhow::Result<usize> {
    match fs::remove_file(path) {
        Ok(()) => Ok(1),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err).with_context(|| format!("deleting {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{temp_data_dir, temp_user};

    #[test]
    fn folders_are_listed_by_canonical_id_and_removed_whole() {
        let data = temp_data_dir();
        for name in ["7", "42", "042", "notes"] {
            fs::create_dir_all(data.root().join("users").join(name)).unwrap();
        }
        fs::write(data.root().join("users/9"), b"a file, not a folder").unwrap();
        assert_eq!(folder_user_ids(&data).unwrap(), vec![7, 42]);

        let files = data.user(42);
        fs::create_dir_all(files.media_dir()).unwrap();
        fs::write(files.media_dir().join("a.png"), b"x").unwrap();
        assert!(remove_user_folder(&files).unwrap());
        assert!(!files.dir().exists());
        assert!(!remove_user_folder(&files).unwrap());
        assert_eq!(folder_user_ids(&data).unwrap(), vec![7]);
        let hidden: Vec<_> = fs::read_dir(data.root().join("users"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".deleted-"))
            .collect();
        assert!(hidden.is_empty(), "the moved-aside folder is gone too");
    }

    #[test]
    fn leftovers_are_temp_files_and_packages_no_import_needs() {
        let files = temp_user(3);
        fs::create_dir_all(files.dir().join("imports")).unwrap();
        fs::create_dir_all(files.media_dir()).unwrap();
        for name in [
            ".upload-zst-abc",
            ".download-x",
            ".import-col-y",
            "collection.anki2",
        ] {
            fs::write(files.dir().join(name), b"x").unwrap();
        }
        let pending = files.dir().join("imports/5.apkg");
        fs::write(&pending, b"pending").unwrap();
        fs::write(files.dir().join("imports/4.apkg"), b"delivered long ago").unwrap();
        fs::write(files.media_dir().join(".hidden-media"), b"a user's file").unwrap();

        assert_eq!(
            remove_leftovers(&files, std::slice::from_ref(&pending), true).unwrap(),
            4
        );
        assert!(files.dir().join(".download-x").exists());
        assert_eq!(
            remove_leftovers(&files, std::slice::from_ref(&pending), false).unwrap(),
            4
        );
        assert!(files.collection().exists());
        assert!(pending.exists());
        assert!(files.media_dir().join(".hidden-media").exists());
        assert_eq!(remove_leftovers(&files, &[pending], false).unwrap(), 0);
    }

    #[test]
    fn deleting_the_media_db_keeps_the_files() {
        let files = temp_user(5);
        fs::create_dir_all(files.media_dir()).unwrap();
        fs::write(files.media_db(), b"db").unwrap();
        fs::write(files.dir().join("media.db-wal"), b"wal").unwrap();
        fs::write(files.media_dir().join("a.png"), b"x").unwrap();

        delete_media_db(&files).unwrap();
        delete_media_db(&files).unwrap();

        assert!(!files.media_db().exists());
        assert!(!files.dir().join("media.db-wal").exists());
        assert!(files.media_dir().join("a.png").exists());
    }
}
