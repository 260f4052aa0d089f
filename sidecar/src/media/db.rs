//! `media.db`: one row per file name ever seen, and a meta row with the media USN and totals
//! (protocol §6.9). The database is the authority: a file in `media/` that it does not list
//! as live does not exist for clients.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::storage::UserFiles;

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
/// has none yet: 0.
pub fn last_usn(files: &UserFiles) -> anyhow::Result<i64> {
    let path = files.media_db();
    if !path.exists() {
        return Ok(0);
    }
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("opening media.db")?;
    let usn: Option<i64> = conn
        .query_row("SELECT last_usn FROM meta", [], |row| row.get(0))
        .optional()
        .context("reading the media USN")?;
    Ok(usn.unwrap_or(0))
}

fn to_sha1(bytes: Vec<u8>) -> Option<[u8; 20]> {
    bytes.try_into().ok()
}

impl MediaDb {
    /// Opens (creating if needed) the user's media database and media folder.
    pub fn open(files: &UserFiles) -> anyhow::Result<Self> {
        files.ensure_dir()?;
        std::fs::create_dir_all(files.media_dir()).context("creating the media folder")?;
        Self::open_path(&files.media_db())
    }

    pub fn open_path(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path).context("opening media.db")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .context("creating media.db tables")?;
        Ok(Self { conn })
    }

    pub fn totals(&self) -> anyhow::Result<MediaTotals> {
        Ok(self.conn.query_row(
            "SELECT last_usn, total_bytes, total_nonempty_files FROM meta",
            [],
            |row| {
                Ok(MediaTotals {
                    last_usn: row.get(0)?,
                    total_bytes: row.get(1)?,
                    total_files: row.get(2)?,
                })
            },
        )?)
    }

    /// Changes after `after_usn`, oldest first: the client resumes from the last row's usn.
    pub fn changes_since(&self, after_usn: i64, limit: usize) -> anyhow::Result<Vec<MediaChange>> {
        let mut statement = self.conn.prepare(
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
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT csum, size FROM media WHERE fname = ?1 AND size > 0",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(csum, size)| to_sha1(csum).map(|sha1| MediaEntry { sha1, size })))
    }

    /// Starts a write transaction; every change of one request goes through it.
    pub fn transaction(&mut self) -> anyhow::Result<MediaTransaction<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(MediaTransaction { tx })
    }
}

pub struct MediaTransaction<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl MediaTransaction<'_> {
    fn next_usn(&self) -> anyhow::Result<i64> {
        self.tx
            .execute("UPDATE meta SET last_usn = last_usn + 1", [])?;
        Ok(self
            .tx
            .query_row("SELECT last_usn FROM meta", [], |row| row.get(0))?)
    }

    pub fn live_entry(&self, name: &str) -> anyhow::Result<Option<MediaEntry>> {
        let row: Option<(Vec<u8>, i64)> = self
            .tx
            .query_row(
                "SELECT csum, size FROM media WHERE fname = ?1 AND size > 0",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(csum, size)| to_sha1(csum).map(|sha1| MediaEntry { sha1, size })))
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
        self.tx.execute(
            "INSERT OR REPLACE INTO media (fname, csum, size, usn, mtime) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, &sha1[..], size, usn, now],
        )?;
        let (bytes_delta, files_delta) = match previous {
            Some(old) => (size - old.size, 0),
            None => (size, 1),
        };
        self.tx.execute(
            "UPDATE meta SET total_bytes = total_bytes + ?1, total_nonempty_files = total_nonempty_files + ?2",
            params![bytes_delta, files_delta],
        )?;
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
}
