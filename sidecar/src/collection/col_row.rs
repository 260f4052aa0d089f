//! The `col` row: the one row of collection-wide state in a schema-11 collection (its usn,
//! modification, schema, creation and last-sync times, and the JSON objects). Every read and
//! write of it in the crate goes through [`ColRow`], so its rules live in one place.
//!
//! The conversion of an uploaded file (`convert`) is the exception: it reads `col` of files
//! that are not yet known to be schema 11.

use super::sqlite::CachedQuery;
use rusqlite::Connection;

use super::query::from_row;

/// A view of the `col` row of an open collection, or of one inside a transaction
/// (`Transaction` dereferences to `Connection`).
#[derive(Clone, Copy)]
pub struct ColRow<'a> {
    conn: &'a Connection,
}

/// The `col` row of the collection open on `conn`.
pub fn col(conn: &Connection) -> ColRow<'_> {
    ColRow { conn }
}

/// `usn`, `mod` and `ls`: where the collection stands for sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTimes {
    pub usn: i32,
    pub modified_ms: i64,
    pub last_sync_ms: i64,
}

/// `mod`, `scm` and `usn`: what `meta` tells a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaTimes {
    pub modified_ms: i64,
    pub schema_ms: i64,
    pub usn: i32,
}

/// The five JSON columns, as stored text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectColumns {
    pub models: String,
    pub decks: String,
    pub dconf: String,
    pub conf: String,
    pub tags: String,
}

/// One of the five JSON columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectColumn {
    Models,
    Decks,
    Dconf,
    Conf,
    Tags,
}

impl ObjectColumn {
    fn name(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Decks => "decks",
            Self::Dconf => "dconf",
            Self::Conf => "conf",
            Self::Tags => "tags",
        }
    }
}

impl ColRow<'_> {
    /// The collection's update sequence number: the usn every change of this sync gets.
    pub fn usn(self) -> rusqlite::Result<i32> {
        self.conn
            .cached_row("SELECT usn FROM col WHERE id = 1", [], |row| row.get(0))
    }

    /// `crt`: the collection's creation time, in seconds; scheduling days count from it.
    pub fn creation_time(self) -> rusqlite::Result<i64> {
        self.conn
            .cached_row("SELECT crt FROM col WHERE id = 1", [], |row| row.get(0))
    }

    pub fn set_creation_time(self, crt: i64) -> rusqlite::Result<()> {
        self.conn
            .cached_execute("UPDATE col SET crt = ?1 WHERE id = 1", [crt])?;
        Ok(())
    }

    /// Sets `mod`, in milliseconds.
    pub fn set_modified(self, now_ms: i64) -> rusqlite::Result<()> {
        self.conn
            .cached_execute("UPDATE col SET mod = ?1 WHERE id = 1", [now_ms])?;
        Ok(())
    }

    /// The end of a normal sync: `ls` and `mod` become now, `usn` becomes `next_usn`.
    pub fn record_sync(self, now_ms: i64, next_usn: i32) -> rusqlite::Result<()> {
        self.conn.cached_execute(
            "UPDATE col SET ls = ?1, mod = ?1, usn = ?2 WHERE id = 1",
            (now_ms, next_usn),
        )?;
        Ok(())
    }

    /// Before a full download: advances `usn` by one and sets `mod`, as the official server
    /// does.
    pub fn bump_usn_and_modified(self, now_ms: i64) -> rusqlite::Result<()> {
        self.conn.cached_execute(
            "UPDATE col SET usn = usn + 1, mod = ?1 WHERE id = 1",
            [now_ms],
        )?;
        Ok(())
    }

    pub fn sync_times(self) -> rusqlite::Result<SyncTimes> {
        let sql = "SELECT usn, mod, ls FROM col WHERE id = 1";
        self.conn.cached_row(
            sql,
            [],
            from_row!(SyncTimes: usn, modified_ms, last_sync_ms),
        )
    }

    pub fn meta_times(self) -> rusqlite::Result<MetaTimes> {
        let sql = "SELECT mod, scm, usn FROM col WHERE id = 1";
        self.conn
            .cached_row(sql, [], from_row!(MetaTimes: modified_ms, schema_ms, usn))
    }

    /// `conf` as stored text.
    pub fn conf_text(self) -> rusqlite::Result<String> {
        self.conn
            .cached_row("SELECT conf FROM col WHERE id = 1", [], |row| row.get(0))
    }

    pub fn object_columns(self) -> rusqlite::Result<ObjectColumns> {
        let sql = "SELECT models, decks, dconf, conf, tags FROM col WHERE id = 1";
        self.conn.cached_row(
            sql,
            [],
            from_row!(ObjectColumns: models, decks, dconf, conf, tags),
        )
    }

    pub fn set_object_columns(self, columns: &ObjectColumns) -> rusqlite::Result<()> {
        self.conn.cached_execute(
            "UPDATE col SET models = ?1, decks = ?2, dconf = ?3, conf = ?4, tags = ?5 WHERE id = 1",
            [
                &columns.models,
                &columns.decks,
                &columns.dconf,
                &columns.conf,
                &columns.tags,
            ],
        )?;
        Ok(())
    }

    /// Writes the JSON columns given, and leaves the stored text of the others alone.
    pub fn set_some_object_columns(
        self,
        columns: &[(ObjectColumn, String)],
    ) -> rusqlite::Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        let assignments: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!("{} = ?{}", column.name(), i + 1))
            .collect();
        self.conn.cached_execute(
            &format!("UPDATE col SET {} WHERE id = 1", assignments.join(", ")),
            rusqlite::params_from_iter(columns.iter().map(|(_, text)| text)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE col (id integer PRIMARY KEY, crt integer, mod integer, scm integer,
                 ver integer, dty integer, usn integer, ls integer, conf text, models text,
                 decks text, dconf text, tags text);
             INSERT INTO col VALUES (1, 100, 200, 300, 11, 0, 7, 400, '{}', '{}', '{}', '{}', '{}');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn reads_and_writes_the_row() {
        let conn = collection();
        let row = col(&conn);
        assert_eq!(row.usn().unwrap(), 7);
        assert_eq!(row.creation_time().unwrap(), 100);
        row.set_creation_time(150).unwrap();
        assert_eq!(row.creation_time().unwrap(), 150);
        row.set_modified(250).unwrap();
        assert_eq!(
            row.meta_times().unwrap(),
            MetaTimes {
                modified_ms: 250,
                schema_ms: 300,
                usn: 7
            }
        );
        let assert_sync_times = |usn, modified_ms, last_sync_ms| {
            let expected = SyncTimes {
                usn,
                modified_ms,
                last_sync_ms,
            };
            assert_eq!(row.sync_times().unwrap(), expected);
        };
        row.record_sync(500, 8).unwrap();
        assert_sync_times(8, 500, 500);
        row.bump_usn_and_modified(600).unwrap();
        assert_sync_times(9, 600, 500);
        let mut columns = row.object_columns().unwrap();
        assert_eq!(row.conf_text().unwrap(), "{}");
        columns.conf = r#"{"a":1}"#.into();
        row.set_object_columns(&columns).unwrap();
        assert_eq!(row.conf_text().unwrap(), r#"{"a":1}"#);
        assert_eq!(row.object_columns().unwrap(), columns);
    }
}
