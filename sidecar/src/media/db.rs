//! `media.db`: one row per file name ever seen, and a meta row with the media USN and totals
//! (docs/sync-protocol.md#the-media-database). The database is the authority: a file in `media/`
//! that it does not list as live does not exist for clients.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use sha1::{Digest, Sha1};

use crate::collection::query::{from_row, open_read_write};
use crate::storage::{UserFiles, recovery};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media (
    fname TEXT PRIMARY KEY NOT NULL,
    csum BLOB NOT NULL,
    size INTEGER NOT NULL,
    usn INTEGER NOT NULL,
    mtime INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_media_usn ON media (usn);
CREATE TABLE IF NOT EXISTS meta (
    last_usn INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    total_nonempty_files INTEGER NOT NULL
);
INSERT INTO meta (last_usn, total_bytes, total_nonempty_files)
    SELECT 0, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM meta);
PRAGMA user_version = 4;
";

/// A change as listed by `mediaChanges`: the SHA-1 is None for a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChange {
    pub name: String,
    pub usn: i64,
    pub sha1: Option<[u8; 20]>,
}

/// A live file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEntry {
    pub sha1: [u8; 20],
    pub size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaTotals {
    pub last_usn: i64,
    pub total_bytes: i64,
    pub total_files: i64,
}

pub struct MediaDb {
    conn: Connection,
}

/// The user's current media USN without creating anything. A user who never synced media
/// has none yet: 0. An empty or damaged `media.db` is rebuilt first (see [`MediaDb::open`]),
/// so `meta` never fails on it.
pub fn last_usn(files: &UserFiles) -> anyhow::Result<i64> {
    let path = files.media_db();
    if !path.exists() {
        return Ok(0);
    }
    let read = || -> anyhow::Result<i64> {
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .context("opening media.db")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.query_row("SELECT last_usn FROM meta", [], |row| row.get(0))
            .context("reading the media USN")
    };
    match read() {
        Ok(usn) => Ok(usn),
        Err(err) if recovery::is_damage(&err) || recovery::is_empty_file(&path) => {
            Ok(MediaDb::open(files)?.totals()?.last_usn)
        }
        Err(err) => Err(err),
    }
}

fn to_sha1(bytes: Vec<u8>) -> Option<[u8; 20]> {
    bytes.try_into().ok()
}

impl MediaDb {
    /// Opens the user's media database, creating it and the media folder if needed. A missing
    /// `media.db` next to existing media files, an empty one, or a damaged one is rebuilt from
    /// the files in `media/` (docs/operations.md, "Recovery of per-user files").
    pub fn open(files: &UserFiles) -> anyhow::Result<Self> {
        files.ensure_dir()?;
        std::fs::create_dir_all(files.media_dir()).context("creating the media folder")?;
        let path = files.media_db();
        if !path.exists() {
            if has_media_files(&files.media_dir())? {
                tracing::warn!(path = %path.display(), "media.db is missing; rebuilding it");
                recovery::count_recovery(recovery::UserFile::MediaDb);
                rebuild(files, None)?;
            } else {
                create_atomically(&path)?;
            }
            return Self::open_existing(&path);
        }
        if recovery::is_empty_file(&path) {
            recovery::move_aside(&path, recovery::UserFile::MediaDb, "empty file")?;
            rebuild(files, None)?;
            return Self::open_existing(&path);
        }
        match Self::open_existing(&path) {
            Ok(db) => Ok(db),
            Err(err) if recovery::is_damage(&err) => {
                let previous = readable_last_usn(&path);
                recovery::move_aside(&path, recovery::UserFile::MediaDb, &format!("{err:#}"))?;
                rebuild(files, previous)?;
                Self::open_existing(&path)
            }
            Err(err) => Err(err),
        }
    }

    /// Opens a media database file, creating it (atomically) if it does not exist.
    pub fn open_path(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            create_atomically(path)?;
        }
        Self::open_existing(path)
    }

    /// Opens an existing file and checks that it has its tables and the meta row, without
    /// writing to it.
    fn open_existing(path: &Path) -> anyhow::Result<Self> {
        let conn = open_read_write(path, "media.db")?;
        conn.query_row(
            "SELECT last_usn, total_bytes, total_nonempty_files FROM meta",
            [],
            |_| Ok(()),
        )
        .context("checking media.db")?;
        conn.prepare("SELECT fname, csum, size, usn, mtime FROM media LIMIT 0")
            .context("checking media.db")?;
        Ok(Self { conn })
    }

    /// Caps the pages this connection caches, for one kept between requests.
    pub fn limit_page_cache(&self, kib: u32) -> anyhow::Result<()> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
        Ok(())
    }

    /// Whether no transaction is open on it, so that it may be kept for the next request.
    pub fn in_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }

    #[cfg(test)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn totals(&self) -> anyhow::Result<MediaTotals> {
        let sql = "SELECT last_usn, total_bytes, total_nonempty_files FROM meta";
        Ok(self.conn.prepare_cached(sql)?.query_row(
            [],
            from_row!(MediaTotals: last_usn, total_bytes, total_files),
        )?)
    }

    /// Changes after `after_usn`, oldest first: the client resumes from the last row's usn.
    pub fn changes_since(&self, after_usn: i64, limit: usize) -> anyhow::Result<Vec<MediaChange>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT fname, usn, csum, size FROM media WHERE usn > ?1 ORDER BY usn, fname LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after_usn, limit as i64], |row| {
            let size: i64 = row.get(3)?;
            let csum: Vec<u8> = row.get(2)?;
            Ok(MediaChange {
                name: row.get(0)?,
                usn: row.get(1)?,
                sha1: if size > 0 { to_sha1(csum) } else { None },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn live_entry(&self, name: &str) -> anyhow::Result<Option<MediaEntry>> {
        live_entry(&self.conn, name)
    }

    /// Starts a write transaction; every change of one request goes through it.
    pub fn transaction(&mut self) -> anyhow::Result<MediaTransaction<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(MediaTransaction { tx })
    }
}

/// The file's entry, unless it is missing or marked deleted.
fn live_entry(conn: &rusqlite::Connection, name: &str) -> anyhow::Result<Option<MediaEntry>> {
    let row: Option<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT csum, size FROM media WHERE fname = ?1 AND size > 0")?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(csum, size)| to_sha1(csum).map(|sha1| MediaEntry { sha1, size })))
}

pub struct MediaTransaction<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl MediaTransaction<'_> {
    fn next_usn(&self) -> anyhow::Result<i64> {
        self.tx
            .prepare_cached("UPDATE meta SET last_usn = last_usn + 1")?
            .execute([])?;
        Ok(self
            .tx
            .prepare_cached("SELECT last_usn FROM meta")?
            .query_row([], |row| row.get(0))?)
    }

    pub fn live_entry(&self, name: &str) -> anyhow::Result<Option<MediaEntry>> {
        live_entry(&self.tx, name)
    }

    /// Records a new or changed live file under the next media USN.
    pub fn record_file(
        &self,
        name: &str,
        sha1: &[u8; 20],
        size: i64,
        now: i64,
    ) -> anyhow::Result<i64> {
        let previous = self.live_entry(name)?;
        let usn = self.next_usn()?;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO media (fname, csum, size, usn, mtime) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![name, &sha1[..], size, usn, now])?;
        let (bytes_delta, files_delta) = match previous {
            Some(old) => (size - old.size, 0),
            None => (size, 1),
        };
        self.tx
            .prepare_cached(
                "UPDATE meta SET total_bytes = total_bytes + ?1, total_nonempty_files = total_nonempty_files + ?2",
            )?
            .execute(params![bytes_delta, files_delta])?;
        Ok(usn)
    }

    /// Marks a live file deleted under the next media USN. The SHA-1 is kept, as upstream.
    pub fn record_deletion(&self, name: &str, now: i64) -> anyhow::Result<Option<i64>> {
        let Some(previous) = self.live_entry(name)? else {
            return Ok(None);
        };
        let usn = self.next_usn()?;
        self.tx.execute(
            "UPDATE media SET size = 0, usn = ?2, mtime = ?3 WHERE fname = ?1",
            params![name, usn, now],
        )?;
        self.tx.execute(
            "UPDATE meta SET total_bytes = total_bytes - ?1, total_nonempty_files = total_nonempty_files - 1",
            [previous.size],
        )?;
        Ok(Some(usn))
    }

    /// Drops a row whose file vanished from disk, without recording a deletion for clients
    /// (what the official server does when a download finds the file missing).
    pub fn forget(&self, name: &str) -> anyhow::Result<()> {
        if let Some(previous) = self.live_entry(name)? {
            self.tx
                .execute("DELETE FROM media WHERE fname = ?1", [name])?;
            self.tx.execute(
                "UPDATE meta SET total_bytes = total_bytes - ?1, total_nonempty_files = total_nonempty_files - 1",
                [previous.size],
            )?;
        }
        Ok(())
    }

    pub fn commit(self) -> anyhow::Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

/// Creates an empty media database with its schema in a temporary file and renames it into
/// place, so a failure (a full disk) never leaves a file without tables.
fn create_atomically(path: &Path) -> anyhow::Result<()> {
    let staging = new_staging_file(path)?;
    {
        let conn = Connection::open(staging.path()).context("creating media.db")?;
        conn.execute_batch(SCHEMA)
            .context("creating media.db tables")?;
        conn.close().map_err(|(_, err)| err)?;
    }
    install_staging_file(staging, path)
}

fn new_staging_file(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".media-db-")
        .tempfile_in(dir)
        .context("creating a temporary media.db")
}

fn install_staging_file(staging: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    staging.as_file().sync_all()?;
    staging
        .persist(path)
        .map_err(|err| err.error)
        .context("moving media.db into place")?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The media USN of a damaged file, if its meta row can still be read.
fn readable_last_usn(path: &Path) -> Option<i64> {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT last_usn FROM meta", [], |row| row.get(0))
        .ok()
}

/// The live files in `media/`: regular, non-empty files with a valid name, sorted. Our own
/// temporary files start with a dot, which no valid media name does.
fn live_media_files(media_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(media_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err).context("listing the media folder"),
    };
    for entry in entries {
        let entry = entry.context("listing the media folder")?;
        let meta = entry.metadata()?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if meta.is_file()
            && meta.len() > 0
            && !name.starts_with('.')
            && crate::media::names::validate(&name).is_ok()
        {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

fn has_media_files(media_dir: &Path) -> anyhow::Result<bool> {
    Ok(!live_media_files(media_dir)?.is_empty())
}

/// The media USN a rebuilt database starts after. Clients compare their last media USN with
/// the server's and ask for the changes after theirs, so the rebuilt entries must come after
/// any USN a client may hold. The old value is used when the damaged file still tells it;
/// otherwise the seconds since 2020-09-13 serve as a floor: a media USN grows by one per file
/// change, so no client is near it, and it keeps growing, so a second rebuild also lands above
/// the first. It stays inside the client's 32-bit USN for decades.
fn rebuilt_usn_base(previous: Option<i64>) -> i64 {
    let floor = crate::clock::now_secs() - 1_600_000_000;
    previous.unwrap_or(0).max(floor).max(0)
}

/// Builds a new `media.db` listing every live file in `media/`, each under a new media USN
/// after [`rebuilt_usn_base`], and swaps it in. The history of deletions is lost: a client
/// that still holds a file deleted elsewhere keeps it. The media sanity check that ends the
/// client's next media sync compares counts and, on a mismatch, makes the client start over
/// from USN 0, which reconciles both sides. Returns how many files it listed.
pub fn rebuild(files: &UserFiles, previous_usn: Option<i64>) -> anyhow::Result<usize> {
    let path = files.media_db();
    let media_dir = files.media_dir();
    let live = live_media_files(&media_dir)?;
    let staging = new_staging_file(&path)?;
    let now = crate::clock::now_secs();
    {
        let mut conn = Connection::open(staging.path()).context("creating media.db")?;
        conn.execute_batch(SCHEMA)
            .context("creating media.db tables")?;
        let tx = conn.transaction()?;
        let mut usn = if live.is_empty() && previous_usn.is_none() {
            0
        } else {
            rebuilt_usn_base(previous_usn)
        };
        let mut total_bytes: i64 = 0;
        for name in &live {
            let mut hasher = Sha1::new();
            let mut file = std::fs::File::open(media_dir.join(name))
                .with_context(|| format!("reading media file {name}"))?;
            let size = std::io::copy(&mut file, &mut hasher)? as i64;
            let sha1: [u8; 20] = hasher.finalize().into();
            usn += 1;
            tx.execute(
                "INSERT INTO media (fname, csum, size, usn, mtime) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, &sha1[..], size, usn, now],
            )?;
            total_bytes += size;
        }
        tx.execute(
            "UPDATE meta SET last_usn = ?1, total_bytes = ?2, total_nonempty_files = ?3",
            params![usn, total_bytes, live.len() as i64],
        )?;
        tx.commit()?;
        conn.close().map_err(|(_, err)| err)?;
    }
    install_staging_file(staging, &path)?;
    tracing::warn!(
        path = %path.display(),
        files = live.len(),
        "media.db rebuilt from the media folder"
    );
    Ok(live.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usn_advances_once_per_effective_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = MediaDb::open_path(&dir.path().join("media.db")).unwrap();
        let tx = db.transaction().unwrap();
        assert_eq!(tx.record_file("a.png", &[1; 20], 10, 0).unwrap(), 1);
        assert_eq!(tx.record_file("b.png", &[2; 20], 5, 0).unwrap(), 2);
        assert_eq!(tx.record_deletion("a.png", 0).unwrap(), Some(3));
        assert_eq!(
            tx.record_deletion("a.png", 0).unwrap(),
            None,
            "already deleted"
        );
        tx.commit().unwrap();
        assert_eq!(
            db.totals().unwrap(),
            MediaTotals {
                last_usn: 3,
                total_bytes: 5,
                total_files: 1
            }
        );
        let changes = db.changes_since(1, 1000).unwrap();
        assert_eq!(
            changes,
            vec![
                MediaChange {
                    name: "b.png".into(),
                    usn: 2,
                    sha1: Some([2; 20])
                },
                MediaChange {
                    name: "a.png".into(),
                    usn: 3,
                    sha1: None
                },
            ]
        );
        assert_eq!(db.changes_since(3, 1000).unwrap(), vec![]);
    }

    fn user_with_media(files: &[(&str, &[u8])]) -> (tempfile::TempDir, UserFiles) {
        let dir = tempfile::tempdir().unwrap();
        let user = crate::storage::DataDir::new(dir.path()).unwrap().user(1);
        std::fs::create_dir_all(user.media_dir()).unwrap();
        for (name, data) in files {
            std::fs::write(user.media_dir().join(name), data).unwrap();
        }
        (dir, user)
    }

    /// Issue 11, defect 3: a first media upload on a full disk left `media.db` at 0 bytes, and
    /// every later `meta` failed with "no such table". Now `meta`'s read rebuilds it.
    #[test]
    fn an_empty_media_db_is_rebuilt_from_the_media_folder() {
        let (_dir, user) = user_with_media(&[("a.png", b"abcd"), ("b.mp3", b"xyz")]);
        std::fs::write(user.media_db(), b"").unwrap();
        std::fs::write(user.media_dir().join(".media-upload-x"), b"partial").unwrap();

        let usn = last_usn(&user).unwrap();
        assert!(usn >= 2, "rebuilt entries come after a fresh floor: {usn}");
        let db = MediaDb::open(&user).unwrap();
        let totals = db.totals().unwrap();
        assert_eq!((totals.total_files, totals.total_bytes), (2, 7));
        let changes = db.changes_since(0, 1000).unwrap();
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a.png", "b.mp3"]);
        assert_eq!(changes[1].usn, totals.last_usn);
        let sha1: [u8; 20] = Sha1::digest(b"abcd").into();
        assert_eq!(changes[0].sha1, Some(sha1));
    }

    #[test]
    fn a_damaged_media_db_keeps_its_usn_and_is_kept_aside() {
        let (_dir, user) = user_with_media(&[("a.png", b"abcd")]);
        let before = {
            let mut db = MediaDb::open(&user).unwrap();
            let tx = db.transaction().unwrap();
            tx.record_file("a.png", &[1; 20], 4, 0).unwrap();
            tx.commit().unwrap();
            let before = db.totals().unwrap().last_usn;
            db.conn.execute_batch("DROP TABLE media").unwrap();
            before
        };
        let db = MediaDb::open(&user).unwrap();
        assert_eq!(
            db.totals().unwrap().last_usn,
            before + 1,
            "the rebuilt entry comes after the USN the damaged file still told"
        );
        let kept: Vec<_> = std::fs::read_dir(user.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("media.db.corrupt-"))
            .collect();
        assert_eq!(kept.len(), 1, "the damaged file is kept for the operator");

        // Garbage instead of SQLite: rebuilt as well.
        drop(db);
        std::fs::write(user.media_db(), vec![0x55u8; 4096]).unwrap();
        assert_eq!(
            MediaDb::open(&user).unwrap().totals().unwrap().total_files,
            1
        );
    }

    #[test]
    fn a_new_user_starts_at_usn_zero_and_creation_leaves_no_temp_file() {
        let (_dir, user) = user_with_media(&[]);
        assert_eq!(last_usn(&user).unwrap(), 0);
        let db = MediaDb::open(&user).unwrap();
        assert_eq!(db.totals().unwrap(), MediaTotals::default());
        let names: Vec<_> = std::fs::read_dir(user.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "left over: {names:?}"
        );
    }
}
