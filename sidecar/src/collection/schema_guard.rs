//! Only the schema Anki itself creates is kept in a collection that comes from outside (a full
//! upload, the collection inside an imported package); see docs/operations.md, "What an
//! uploaded collection may contain".
//!
//! A collection is an SQLite file, and SQLite files can carry triggers and views. A trigger
//! would fire on the server's own writes, and would be shipped in every full download to the
//! user's other devices, where it fires on theirs (one that deletes cards after each new note
//! destroys a collection). Anki never creates triggers or views, and no add-on needs them to
//! sync, so they are dropped rather than the upload refused: the user's data is fine, only
//! the extra objects go. The same holds for tables and indexes schema 11 does not have.

use rusqlite::Connection;

use super::schema11::SCHEMA11_INDEXES;

/// The tables of schema 11.
pub const SCHEMA11_TABLE_NAMES: [&str; 5] = ["col", "notes", "cards", "revlog", "graves"];

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn objects(conn: &Connection, kinds: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare(&format!(
        "SELECT type, name FROM sqlite_master WHERE type IN ({kinds}) ORDER BY type, name"
    ))?
    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
    .collect()
}

/// Drops one object of the schema and adds it to `dropped` as `type name`. `kind` is a type
/// [`objects`] read from `sqlite_master`: `trigger`, `view`, `table` or `index`.
fn drop_object(
    conn: &Connection,
    kind: &str,
    name: &str,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<()> {
    conn.execute_batch(&format!("DROP {} {}", kind.to_uppercase(), quoted(name)))?;
    dropped.push(format!("{kind} {name}"));
    Ok(())
}

/// Drops every trigger and view. Runs before anything writes to the file, so no trigger
/// fires on the server's own writes (the schema conversion included). Returns what it dropped,
/// as `type name`.
pub fn drop_triggers_and_views(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut dropped = Vec::new();
    for (kind, name) in objects(conn, "'trigger', 'view'")? {
        drop_object(conn, &kind, &name, &mut dropped)?;
    }
    Ok(dropped)
}

/// After conversion to schema 11: drops every table and index that schema 11 does not have
/// (SQLite's own `sqlite_*` tables and the indexes behind constraints stay). Returns what it
/// dropped, as `type name`.
pub fn drop_unknown_tables_and_indexes(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut dropped = Vec::new();
    // Indexes first: dropping a table drops its indexes too, and they would then be missing.
    for (kind, name) in objects(conn, "'index', 'table'")? {
        let known = match kind.as_str() {
            "table" => SCHEMA11_TABLE_NAMES.contains(&name.as_str()) || name.starts_with("sqlite_"),
            "index" => {
                SCHEMA11_INDEXES.iter().any(|(known, _)| *known == name)
                    || name.starts_with("sqlite_autoindex_")
            }
            _ => true,
        };
        if known {
            continue;
        }
        let exists: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = ?1 AND name = ?2",
            [&kind, &name],
            |row| row.get(0),
        )?;
        if !exists {
            continue;
        }
        drop_object(conn, &kind, &name, &mut dropped)?;
    }
    Ok(dropped)
}

/// Whether the file still has any trigger or view (for tests and checks).
pub fn has_triggers_or_views(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(!objects(conn, "'trigger', 'view'")?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::test_support::{open_new_collection, query_column};

    /// Issue 11, defect 8: an uploaded trigger deleted cards on every note insert.
    #[test]
    fn triggers_views_and_foreign_objects_are_dropped() {
        let (_dir, conn) = open_new_collection();
        conn.execute_batch(
            "CREATE TRIGGER wipe AFTER INSERT ON notes BEGIN DELETE FROM cards WHERE nid != new.id; END;
             CREATE VIEW \"odd \"\"name\" AS SELECT id FROM cards;
             CREATE TABLE planted (x);
             CREATE INDEX ix_planted ON planted (x);
             CREATE INDEX ix_cards_odd ON cards (data);",
        )
        .unwrap();

        let dropped = drop_triggers_and_views(&conn).unwrap();
        assert_eq!(dropped, ["trigger wipe", "view odd \"name"]);
        assert!(!has_triggers_or_views(&conn).unwrap());
        let dropped = drop_unknown_tables_and_indexes(&conn).unwrap();
        assert_eq!(
            dropped,
            ["index ix_cards_odd", "index ix_planted", "table planted"]
        );

        let names: Vec<String> = query_column(
            &conn,
            "SELECT name FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        );
        let mut expected: Vec<String> = SCHEMA11_TABLE_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(SCHEMA11_INDEXES.iter().map(|(name, _)| name.to_string()))
            .collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}
