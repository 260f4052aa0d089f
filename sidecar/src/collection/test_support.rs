//! Setup that the unit tests of the collection file share (and those of the layers above).

use std::path::PathBuf;

use rusqlite::Connection;
use rusqlite::types::FromSql;
use tempfile::TempDir;

use super::query::all_rows;
use super::schema11::create_new_collection;
use super::sqlite::open_collection;

/// A new, empty collection in a fresh temporary folder, open. The folder is removed when the
/// `TempDir` is dropped.
pub fn open_new_collection() -> (TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.anki2");
    create_new_collection(&path, 1_795_336_565_177, 1_795_320_000).unwrap();
    let conn = open_collection(&path).unwrap();
    (dir, conn)
}

/// A fresh temporary folder holding one file, `name`, with `bytes`.
pub fn temp_file(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// The one value that `sql` selects.
pub fn query_value<T: FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The first column of every row that `sql` selects.
pub fn query_column<T: FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
    all_rows(conn, sql, [], |row| row.get(0)).unwrap()
}
