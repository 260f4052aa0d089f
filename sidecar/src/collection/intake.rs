//! Taking in a collection file that came from outside: a full upload or the collection inside
//! an `.apkg` package. Both are checked the same way before anything of the user's is touched
//! (an SQLite file, intact, no planted triggers or views, a supported schema) and converted to
//! schema 11 in place.

use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

use super::convert::{self, ConvertError};
use super::{schema_guard, sqlite};

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Where the file came from; decides how thoroughly it is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A full upload: it replaces the user's collection, so it gets SQLite's full integrity
    /// check and must have exactly one `col` row.
    Upload,
    /// A package's collection: it is only read by the merge, so the quick check suffices.
    Package,
}

impl Source {
    fn integrity_pragma(self) -> &'static str {
        match self {
            Self::Upload => "PRAGMA integrity_check",
            Self::Package => "PRAGMA quick_check",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Upload => "an upload",
            Self::Package => "a package",
        }
    }
}

/// Why a file was refused, by the step that refused it. `Display` gives a short reason for the
/// log; callers that answer a client word it themselves.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("file is too short to be SQLite")]
    TooShort,
    #[error("not an SQLite file")]
    NotSqlite,
    /// SQLite itself failed at `step`.
    #[error("{}: {error}", step.failure())]
    Sqlite { step: Step, error: rusqlite::Error },
    /// What the integrity check reported instead of `ok`.
    #[error("integrity check: {0}")]
    Integrity(String),
    #[error("col has {0} rows")]
    ColRows(i64),
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(i64),
    #[error("conversion failed: {0}")]
    Conversion(ConvertError),
}

/// The steps of the check that run SQL, for [`IntakeError::Sqlite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Open,
    IntegrityQuery,
    /// Dropping triggers, views and unknown tables or indexes.
    Cleaning,
    CountColRows,
}

impl Step {
    fn failure(self) -> &'static str {
        match self {
            Self::Open => "cannot open",
            Self::IntegrityQuery => "integrity check failed",
            Self::Cleaning => "cleaning",
            Self::CountColRows => "no col table",
        }
    }

    /// The error of this step.
    fn failed(self) -> impl FnOnce(rusqlite::Error) -> IntakeError {
        move |error| IntakeError::Sqlite { step: self, error }
    }
}

/// Checks the collection file at `path` and converts it to schema 11 in place. Returns the
/// open connection, so that the caller can finish the file for its own use.
pub fn check_and_convert(path: &Path, source: Source) -> Result<Connection, IntakeError> {
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map_err(|_| IntakeError::TooShort)?;
    if &magic != SQLITE_MAGIC {
        return Err(IntakeError::NotSqlite);
    }
    let conn = sqlite::open_collection(path).map_err(Step::Open.failed())?;
    work_without_journal(&conn).map_err(Step::Open.failed())?;
    let integrity: String = conn
        .query_row(source.integrity_pragma(), [], |row| row.get(0))
        .map_err(Step::IntegrityQuery.failed())?;
    if integrity != "ok" {
        return Err(IntakeError::Integrity(integrity));
    }
    // Before anything writes to the file, so that no planted trigger fires.
    let mut dropped =
        schema_guard::drop_triggers_and_views(&conn).map_err(Step::Cleaning.failed())?;
    if source == Source::Upload {
        let col_rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM col", [], |row| row.get(0))
            .map_err(Step::CountColRows.failed())?;
        if col_rows != 1 {
            return Err(IntakeError::ColRows(col_rows));
        }
    }
    convert::convert_to_schema11(&conn).map_err(|err| match err {
        ConvertError::UnsupportedVersion(version) => IntakeError::UnsupportedVersion(version),
        other => IntakeError::Conversion(other),
    })?;
    dropped.extend(
        schema_guard::drop_unknown_tables_and_indexes(&conn).map_err(Step::Cleaning.failed())?,
    );
    if !dropped.is_empty() {
        tracing::warn!(
            ?dropped,
            "dropped objects Anki does not create from {}",
            source.description()
        );
    }
    Ok(conn)
}

/// The file taken in is a private scratch copy: if any step fails it is thrown away (so a
/// failed conversion's rollback need not restore it), and what is kept is synced once by the
/// caller before it is renamed into place. So it is checked and converted without a journal
/// and without syncs, which would only write and flush the whole file once more. This also
/// takes a file the client sent in WAL mode out of it, so that no `-wal` is left beside it.
fn work_without_journal(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA journal_mode = OFF", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous = OFF")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::test_support::temp_file;

    #[test]
    fn files_that_are_not_sqlite_are_refused_before_opening() {
        let (dir, short) = temp_file("short", b"SQLite");
        let text = dir.path().join("text");
        std::fs::write(&text, b"just some text, not a database").unwrap();
        for source in [Source::Upload, Source::Package] {
            assert!(matches!(
                check_and_convert(&short, source),
                Err(IntakeError::TooShort)
            ));
            assert!(matches!(
                check_and_convert(&text, source),
                Err(IntakeError::NotSqlite)
            ));
        }
    }

    #[test]
    fn an_sqlite_failure_names_its_step() {
        let mut bytes = SQLITE_MAGIC.to_vec();
        bytes.extend([0xff; 4096]);
        let (_dir, garbage) = temp_file("garbage", &bytes);
        let err = check_and_convert(&garbage, Source::Package).unwrap_err();
        assert!(
            matches!(
                err,
                IntakeError::Sqlite {
                    step: Step::Open,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot open: "), "{err}");
    }

    #[test]
    fn only_uploads_need_exactly_one_col_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two-rows.anki2");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE col (id integer PRIMARY KEY, ver integer);
             INSERT INTO col VALUES (1, 99), (2, 99);",
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            check_and_convert(&path, Source::Upload),
            Err(IntakeError::ColRows(2))
        ));
        assert!(matches!(
            check_and_convert(&path, Source::Package),
            Err(IntakeError::UnsupportedVersion(99))
        ));
    }

    #[test]
    fn a_file_sent_in_wal_mode_is_taken_out_of_it_and_left_without_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.anki2");
        crate::collection::schema11::create_new_collection(&path, 1_795_336_565_177, 1_795_320_000)
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let conn = check_and_convert(&path, Source::Upload).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "off");
        conn.execute("UPDATE col SET usn = 3", []).unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            assert!(!std::path::PathBuf::from(name).exists(), "{suffix}");
        }
        drop(conn);
        let conn = Connection::open(&path).unwrap();
        let usn: i64 = conn
            .query_row("SELECT usn FROM col", [], |r| r.get(0))
            .unwrap();
        assert_eq!(usn, 3);
    }
}
