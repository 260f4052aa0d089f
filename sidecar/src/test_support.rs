//! Setup that the unit tests share.

use std::path::PathBuf;

use rusqlite::Connection;
use rusqlite::types::FromSql;
use tempfile::TempDir;

use crate::collection::query::all_rows;
use crate::collection::schema11::create_new_collection;
use crate::collection::sqlite::open_collection;
use crate::storage::{DataDir, UserFiles};

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

/// A data folder in a new temporary folder, which is kept after the test for inspection.
pub fn temp_data_dir() -> DataDir {
    DataDir::new(tempfile::tempdir().unwrap().keep()).unwrap()
}

/// The files of user `user_id` in a new [`temp_data_dir`].
pub fn temp_user(user_id: i64) -> UserFiles {
    temp_data_dir().user(user_id)
}

/// The one value that `sql` selects.
pub fn query_value<T: FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The first column of every row that `sql` selects.
pub fn query_column<T: FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
    all_rows(conn, sql, [], |row| row.get(0)).unwrap()
}
