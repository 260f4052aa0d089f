//! The user's import ledger, `imports.db` beside the collection: which imports were applied,
//! their answers (for `Idempotency-Key` replays), and the packages of those no client has
//! received yet, kept so a full upload cannot erase them (docs/design.md#server-side-import).
//!
//! It lives in the user's folder rather than the shared database because it belongs to the
//! collection: it is backed up, moved and deleted together with it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::collection::query::{from_row, open_read_write};
use crate::storage::{
    IMPORT_LEDGER as LEDGER_FILE, IMPORT_PACKAGES_DIR as PACKAGES_DIR, UserFiles, atomic_replace,
    recovery,
};

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
    /// Opens the ledger, creating it. An empty or damaged ledger is moved aside and rebuilt
    /// from the packages still kept in `imports/` (docs/operations.md, "Recovery of per-user
    /// files"), so a broken ledger never blocks syncs, downloads or imports.
    pub fn open(files: &UserFiles) -> anyhow::Result<Self> {
        files.ensure_dir()?;
        let path = ledger_path(files);
        let packages_dir = files.dir().join(PACKAGES_DIR);
        if !path.exists() {
            build_ledger(&path, &packages_dir, false)?;
        } else if recovery::is_empty_file(&path) {
            recovery::move_aside(&path, recovery::UserFile::ImportLedger, "empty file")?;
            build_ledger(&path, &packages_dir, true)?;
        }
        let conn = match open_existing(&path) {
            Ok(conn) => conn,
            Err(err) if recovery::is_damage(&err) => {
                recovery::move_aside(&path, recovery::UserFile::ImportLedger, &format!("{err:#}"))?;
                build_ledger(&path, &packages_dir, true)?;
                open_existing(&path)?
            }
            Err(err) => return Err(err),
        };
        Ok(Self { conn, packages_dir })
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
                from_row!(PastImport: package_sha256, summary),
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
            params![key, package_sha256, crate::clock::now_secs()],
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
            [crate::clock::now_secs()],
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

/// Opens an existing ledger and checks its table, without writing to it.
fn open_existing(path: &Path) -> anyhow::Result<Connection> {
    let conn = open_read_write(path, "imports.db")?;
    conn.prepare(
        "SELECT id, idempotency_key, package_sha256, created_at, summary, delivered_at, \
         reapplied FROM imports LIMIT 0",
    )
    .context("checking imports.db")?;
    conn.prepare("SELECT seq FROM sqlite_sequence LIMIT 0")
        .context("checking imports.db")?;
    Ok(conn)
}

/// Builds a ledger in a temporary file and renames it into place, so a failure (a full disk)
/// never leaves a file without its table. With `from_packages`, every package still kept in
/// `imports/` (named `<id>.apkg`, kept only until delivery) is listed again as pending, so it
/// is still merged into a later full upload. The answers kept for `Idempotency-Key` replays
/// are lost with the damaged file; a retried import is merged again, which adds nothing that
/// is already there.
fn build_ledger(path: &Path, packages_dir: &Path, from_packages: bool) -> anyhow::Result<()> {
    let dir = path.parent().context("imports.db has no folder")?;
    let staging = tempfile::Builder::new()
        .prefix(".imports-db-")
        .tempfile_in(dir)
        .context("creating a temporary imports.db")?;
    let mut recovered = 0;
    {
        let mut conn = Connection::open(staging.path()).context("creating imports.db")?;
        conn.execute_batch(SCHEMA)
            .context("creating imports.db tables")?;
        if from_packages {
            let tx = conn.transaction()?;
            for (id, package) in kept_packages(packages_dir)? {
                let bytes = std::fs::read(&package).context("reading a kept package")?;
                let created = std::fs::metadata(&package)?
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                tx.execute(
                    "INSERT INTO imports (id, package_sha256, created_at, summary) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        id,
                        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                        created,
                        format!("{{\"id\":{id},\"recovered\":true}}")
                    ],
                )?;
                recovered += 1;
            }
            tx.commit()?;
        }
        conn.close().map_err(|(_, err)| err)?;
    }
    staging.as_file().sync_all()?;
    let (_, staging_path) = staging.keep().context("keeping the new imports.db")?;
    atomic_replace(&staging_path, path).context("moving imports.db into place")?;
    if from_packages {
        tracing::warn!(
            pending = recovered,
            "imports.db rebuilt from the kept packages"
        );
    }
    Ok(())
}

/// `imports/<id>.apkg` files, by id.
fn kept_packages(packages_dir: &Path) -> anyhow::Result<Vec<(i64, PathBuf)>> {
    let entries = match std::fs::read_dir(packages_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).context("listing the kept packages"),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".apkg"))
            .and_then(|stem| stem.parse::<i64>().ok())
            .filter(|id| *id > 0)
        else {
            continue;
        };
        if entry.metadata()?.is_file() {
            found.push((id, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::temp_user;

    /// A stand-in for a received package.
    fn package_file() -> tempfile::NamedTempFile {
        let package = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(package.path(), b"zip bytes").unwrap();
        package
    }

    #[test]
    fn imports_stay_pending_until_delivered_and_answers_stay_for_replays() {
        let files = temp_user(5);
        let package = package_file();
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

    #[test]
    fn a_damaged_ledger_is_rebuilt_from_the_kept_packages() {
        let files = temp_user(6);
        let package = package_file();
        {
            let mut ledger = Ledger::open(&files).unwrap();
            for key in ["a", "b"] {
                ledger
                    .record(Some(key), "abc", |id| Ok(format!("{id}")), package.path())
                    .unwrap();
            }
        }
        std::fs::remove_file(files.dir().join("imports").join("1.apkg")).unwrap();
        std::fs::write(ledger_path(&files), vec![0x42u8; 4096]).unwrap();

        let ledger = Ledger::open(&files).unwrap();
        let pending: Vec<i64> = ledger.pending().unwrap().iter().map(|p| p.id).collect();
        assert_eq!(pending, [2], "the kept package is pending again");
        assert_eq!(ledger.next_id().unwrap(), 3);
        assert!(ledger.find_by_key("b").unwrap().is_none());

        // An empty file (a creation cut short) is rebuilt too.
        drop(ledger);
        std::fs::write(ledger_path(&files), b"").unwrap();
        assert_eq!(Ledger::open(&files).unwrap().pending().unwrap().len(), 1);
        mark_delivered(&files).unwrap();
    }
}
