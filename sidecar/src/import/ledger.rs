//! The user's import ledger, `imports.db` beside the collection: which imports were applied,
//! their answers (for `Idempotency-Key` replays), and the packages of those no client has
//! received yet, kept so a full upload cannot erase them (design §7).
//!
//! It lives in the user's folder rather than the shared database because it belongs to the
//! collection: it is backed up, moved and deleted together with it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::storage::{UserFiles, atomic_replace};

const LEDGER_FILE: &str = "imports.db";
const PACKAGES_DIR: &str = "imports";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE,
    package_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    summary TEXT NOT NULL,
    -- NULL until a client completed a sync (or full download) after the import.
    delivered_at INTEGER,
    reapplied INTEGER NOT NULL DEFAULT 0
);
";

/// A previously applied import, found by its idempotency key.
#[derive(Debug, Clone)]
pub struct PastImport {
    pub package_sha256: String,
    pub summary: String,
}

/// An import no client has received yet.
#[derive(Debug, Clone)]
pub struct PendingImport {
    pub id: i64,
    pub package: PathBuf,
}

pub struct Ledger {
    conn: Connection,
    packages_dir: PathBuf,
}

fn ledger_path(files: &UserFiles) -> PathBuf {
    files.dir().join(LEDGER_FILE)
}

impl Ledger {
    /// Opens the ledger, creating it.
    pub fn open(files: &UserFiles) -> anyhow::Result<Self> {
        files.ensure_dir()?;
        let conn = Connection::open(ledger_path(files)).context("opening imports.db")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .context("creating imports.db tables")?;
        Ok(Self {
            conn,
            packages_dir: files.dir().join(PACKAGES_DIR),
        })
    }

    /// Opens the ledger only if the user ever imported anything.
    pub fn open_existing(files: &UserFiles) -> anyhow::Result<Option<Self>> {
        if ledger_path(files).exists() {
            Self::open(files).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn find_by_key(&self, key: &str) -> anyhow::Result<Option<PastImport>> {
        Ok(self
            .conn
            .query_row(
                "SELECT package_sha256, summary FROM imports WHERE idempotency_key = ?1",
                [key],
                |row| {
                    Ok(PastImport {
                        package_sha256: row.get(0)?,
                        summary: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// The id the next import will get, for its summary.
    pub fn next_id(&self) -> anyhow::Result<i64> {
        let next: i64 = self.conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'imports'), 0) + 1",
            [],
            |row| row.get(0),
        )?;
        Ok(next)
    }

    /// Records an applied import and keeps its package until delivery. `summary` is built
    /// with `next_id()`; the returned id is the one really assigned.
    pub fn record(
        &mut self,
        key: Option<&str>,
        package_sha256: &str,
        summary: impl Fn(i64) -> anyhow::Result<String>,
        package: &Path,
    ) -> anyhow::Result<i64> {
        std::fs::create_dir_all(&self.packages_dir).context("creating the imports folder")?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO imports (idempotency_key, package_sha256, created_at, summary) \
             VALUES (?1, ?2, ?3, '')",
            params![key, package_sha256, crate::db::now_secs()],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE imports SET summary = ?2 WHERE id = ?1",
            params![id, summary(id)?],
        )?;
        let kept = self.packages_dir.join(format!("{id}.apkg"));
        let staging = tempfile::Builder::new()
            .prefix(".keep-")
            .tempfile_in(&self.packages_dir)?;
        std::fs::copy(package, staging.path()).context("keeping the package")?;
        let (_, staging_path) = staging.keep().context("keeping the package")?;
        atomic_replace(&staging_path, &kept).context("keeping the package")?;
        tx.commit()?;
        Ok(id)
    }

    pub fn pending(&self) -> anyhow::Result<Vec<PendingImport>> {
        let mut statement = self
            .conn
            .prepare("SELECT id FROM imports WHERE delivered_at IS NULL ORDER BY id")?;
        let ids = statement
            .query_map([], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids
            .into_iter()
            .map(|id| PendingImport {
                id,
                package: self.packages_dir.join(format!("{id}.apkg")),
            })
            .collect())
    }

    pub fn mark_reapplied(&self, id: i64) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE imports SET reapplied = reapplied + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Every pending import reached a client: forget the packages, keep the answers for
    /// idempotent replays. Returns how many were delivered.
    pub fn mark_all_delivered(&self) -> anyhow::Result<usize> {
        let pending = self.pending()?;
        if pending.is_empty() {
            return Ok(0);
        }
        self.conn.execute(
            "UPDATE imports SET delivered_at = ?1 WHERE delivered_at IS NULL",
            [crate::db::now_secs()],
        )?;
        for import in &pending {
            match std::fs::remove_file(&import.package) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(error = %err, path = %import.package.display(), "could not delete a delivered package");
                }
            }
        }
        Ok(pending.len())
    }
}

/// Called once a client holds the whole collection (sync finished, or full download).
pub fn mark_delivered(files: &UserFiles) -> anyhow::Result<()> {
    if let Some(ledger) = Ledger::open_existing(files)? {
        let delivered = ledger.mark_all_delivered()?;
        if delivered > 0 {
            tracing::info!(delivered, "imports delivered to a client");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DataDir;

    #[test]
    fn imports_stay_pending_until_delivered_and_answers_stay_for_replays() {
        let data = DataDir::new(tempfile::tempdir().unwrap().keep()).unwrap();
        let files = data.user(5);
        let package = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(package.path(), b"zip bytes").unwrap();
        let mut ledger = Ledger::open(&files).unwrap();
        assert_eq!(ledger.next_id().unwrap(), 1);
        let id = ledger
            .record(
                Some("k1"),
                "abc",
                |id| Ok(format!("{{\"id\":{id}}}")),
                package.path(),
            )
            .unwrap();
        assert_eq!(id, 1);
        assert_eq!(ledger.next_id().unwrap(), 2);
        let pending = ledger.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(std::fs::read(&pending[0].package).unwrap(), b"zip bytes");

        mark_delivered(&files).unwrap();
        assert!(ledger.pending().unwrap().is_empty());
        assert!(!pending[0].package.exists());
        let past = ledger.find_by_key("k1").unwrap().unwrap();
        assert_eq!(past.summary, "{\"id\":1}");
        assert!(ledger.find_by_key("k2").unwrap().is_none());
    }
}
