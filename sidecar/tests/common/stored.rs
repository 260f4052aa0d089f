//! What the server stored on disk, read directly by a test: the user's collection and folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::TestApp;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// genanki writes notetype ids as strings; Anki accepts both.
pub fn id_of(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        .unwrap_or_else(|| panic!("not an id: {value}"))
}

impl TestApp {
    pub fn collection_path(&self, user: i64) -> PathBuf {
        self.user_dir(user).join("collection.anki2")
    }

    /// The user's stored collection, read-only.
    pub fn collection(&self, user: i64) -> Connection {
        Connection::open_with_flags(self.collection_path(user), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// The bytes of the user's stored collection as it is on disk, the file and its
    /// write-ahead log, to show that something left it unchanged.
    pub fn collection_bytes(&self, user: i64) -> Vec<u8> {
        let path = self.collection_path(user);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut wal = path.into_os_string();
        wal.push("-wal");
        if let Ok(log) = std::fs::read(PathBuf::from(wal)) {
            bytes.extend(log);
        }
        bytes
    }

    /// The number of rows of `table` in the user's stored collection.
    pub fn count_rows(&self, user: i64, table: &str) -> i64 {
        // Opened as the server opens it, so that closing does not checkpoint the log into the
        // file and change its bytes.
        let conn =
            anki_sidecar::collection::sqlite::open_collection(&self.collection_path(user)).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }
}

pub fn col_json(conn: &Connection, column: &str) -> Value {
    let text: String = conn
        .query_row(&format!("SELECT {column} FROM col"), [], |row| row.get(0))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn col_int(conn: &Connection, column: &str) -> i64 {
    conn.query_row(&format!("SELECT {column} FROM col"), [], |row| row.get(0))
        .unwrap()
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[derive(Debug)]
pub struct StoredNote {
    pub id: i64,
    pub mid: i64,
    pub mtime: i64,
    pub usn: i64,
    pub tags: String,
    pub flds: String,
    pub sfld: String,
    pub csum: i64,
}

pub fn stored_note(conn: &Connection, guid: &str) -> StoredNote {
    conn.query_row(
        "SELECT id, mid, mod, usn, tags, flds, CAST(sfld AS TEXT), csum FROM notes WHERE guid = ?1",
        [guid],
        |row| {
            Ok(StoredNote {
                id: row.get(0)?,
                mid: row.get(1)?,
                mtime: row.get(2)?,
                usn: row.get(3)?,
                tags: row.get(4)?,
                flds: row.get(5)?,
                sfld: row.get(6)?,
                csum: row.get(7)?,
            })
        },
    )
    .unwrap_or_else(|err| panic!("note {guid}: {err}"))
}

pub fn guids(conn: &Connection) -> BTreeSet<String> {
    let mut statement = conn.prepare("SELECT guid FROM notes").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn deck_named<'a>(decks: &'a Value, name: &str) -> Option<&'a Value> {
    decks
        .as_object()
        .unwrap()
        .values()
        .find(|deck| deck["name"] == name)
}

/// Every object the import may write must carry the server's usn, never the client-side -1.
pub fn assert_nothing_pending(conn: &Connection) {
    let usn = col_int(conn, "usn");
    for table in ["notes", "cards", "revlog"] {
        let wrong = count(
            conn,
            &format!("SELECT COUNT(*) FROM {table} WHERE usn < 0 OR usn > {usn}"),
        );
        assert_eq!(wrong, 0, "{table} rows with a usn other than 0..={usn}");
    }
    for column in ["models", "decks", "dconf"] {
        for object in col_json(conn, column).as_object().unwrap().values() {
            let object_usn = object["usn"].as_i64().unwrap();
            assert!(
                (0..=usn).contains(&object_usn),
                "{column}: usn {object_usn}: {object}"
            );
        }
    }
    for (tag, tag_usn) in col_json(conn, "tags").as_object().unwrap() {
        let tag_usn = tag_usn.as_i64().unwrap();
        assert!((0..=usn).contains(&tag_usn), "tag {tag}: usn {tag_usn}");
    }
}

/// What a client that holds exactly the server's collection reports in `sanityCheck2`.
pub fn server_counts(conn: &Connection) -> [i64; 6] {
    let keys = |column: &str| col_json(conn, column).as_object().unwrap().len() as i64;
    [
        count(conn, "SELECT COUNT(*) FROM cards"),
        count(conn, "SELECT COUNT(*) FROM notes"),
        count(conn, "SELECT COUNT(*) FROM revlog"),
        keys("models"),
        keys("decks"),
        keys("dconf"),
    ]
}

/// Every file below `root` (none if it does not exist), relative and sorted, so a test can
/// show that a refused request wrote nothing and nothing escaped.
pub fn all_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}
