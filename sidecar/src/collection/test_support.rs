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

/// What `EXPLAIN QUERY PLAN` says of `sql` with `params` bound, its steps joined by "; ".
pub fn query_plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("; ")
}

/// Replaces the planner statistics with those Anki's `ANALYZE` leaves in a 200,000-note
/// collection whose rows all have the same usn (from a full upload of the bench's
/// collection), plus the server's graves indexes.
pub fn use_statistics_of_200k_notes(conn: &Connection) {
    conn.execute_batch(
        "ANALYZE;
         DELETE FROM sqlite_stat1;
         INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
             ('notes', 'ix_notes_csum', '200000 1'), ('notes', 'ix_notes_usn', '200000 200000'),
             ('cards', 'ix_cards_sched', '200000 200000 100000 1'),
             ('cards', 'ix_cards_nid', '200000 1'), ('cards', 'ix_cards_usn', '200000 200000'),
             ('revlog', 'ix_revlog_cid', '200000 1'),
             ('revlog', 'ix_revlog_usn', '200000 200000'),
             ('graves', 'ix_sidecar_graves_usn', '200000 200000'),
             ('graves', 'ix_sidecar_graves_oid', '200000 1 1');
         ANALYZE sqlite_schema;",
    )
    .unwrap();
}

/// Marks a connection, to tell later whether a kept connection was reused: temporary tables
/// belong to the connection that made them.
pub fn mark_connection(conn: &Connection) {
    conn.execute_batch("CREATE TEMP TABLE marker (x)").unwrap();
}

/// Whether [`mark_connection`] marked this connection.
pub fn is_marked(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'marker'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}
