//! Opening collection files with rusqlite, as a plain connection or as a [`Collection`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::col_row::{ColRow, col};

/// Registers `unicase`, the collation schema-18 tables declare on names. Anki compares with
/// Unicode case folding; without the collation SQLite refuses to touch those tables.
pub fn register_unicase(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_collation("unicase", |a, b| {
        unicase::UniCase::new(a).cmp(&unicase::UniCase::new(b))
    })
}

/// Opens an existing collection read-write, with the collation registered. The journal mode
/// the file carries is left alone: uploads arrive in WAL mode and are converted afterwards.
pub fn open_collection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    register_unicase(&conn)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA locking_mode = NORMAL")?;
    Ok(conn)
}

/// An open collection: its connection, and typed access to its `col` row.
pub struct Collection {
    conn: Connection,
}

impl Collection {
    /// Opens an existing collection file with [`open_collection`].
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        Ok(Self {
            conn: open_collection(path)?,
        })
    }

    pub fn col(&self) -> ColRow<'_> {
        col(&self.conn)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicase_compares_unicode_case_insensitively() {
        let conn = Connection::open_in_memory().unwrap();
        register_unicase(&conn).unwrap();
        let equal: bool = conn
            .query_row(
                "SELECT 'ÄRGER::Straße' = 'ärger::straße' COLLATE unicase",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(equal);
        let before: bool = conn
            .query_row("SELECT 'apple' < 'Banana' COLLATE unicase", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(before);
    }

    #[test]
    fn opening_never_creates_a_file_and_keeps_the_journal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.anki2");
        assert!(open_collection(&missing).is_err());
        assert!(!missing.exists());

        let path = dir.path().join("wal.anki2");
        {
            let conn = Connection::open(&path).unwrap();
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .unwrap();
            // A plain connection does not know the collation the schema-18 tables use.
            conn.execute_batch("CREATE TABLE t (name text COLLATE unicase)")
                .unwrap_err();
        }
        let conn = open_collection(&path).unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        conn.execute_batch("CREATE TABLE t (name text COLLATE unicase)")
            .unwrap();
    }
}
