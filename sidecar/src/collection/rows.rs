//! Typed rows of a collection's revlog, cards and notes, and the SQL that reads and writes
//! them. Their JSON form on the wire, and the checks on what clients send, are in
//! `normal_sync::rows`.

use std::collections::HashSet;

use super::sqlite::CachedQuery;
use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};

use super::query::from_row;

/// The `INSERT` of a whole card row, as a literal for `concat!`.
macro_rules! insert_card {
    () => {
        "INSERT INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, reps, \
         lapses, left, odue, odid, flags, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    };
}

/// The `INSERT` of a whole note row, as a literal for `concat!`.
macro_rules! insert_note {
    () => {
        "INSERT INTO notes (id, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    };
}

/// A review log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevlogRow {
    pub id: i64,
    pub cid: i64,
    pub usn: i64,
    pub ease: i64,
    pub ivl: i64,
    pub last_ivl: i64,
    pub factor: i64,
    pub time: i64,
    pub kind: i64,
}

/// A card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    pub id: i64,
    pub nid: i64,
    pub did: i64,
    pub ord: i64,
    pub modified: i64,
    pub usn: i64,
    pub kind: i64,
    pub queue: i64,
    pub due: i64,
    pub ivl: i64,
    pub factor: i64,
    pub reps: i64,
    pub lapses: i64,
    pub left: i64,
    pub odue: i64,
    pub odid: i64,
    pub flags: i64,
    pub data: String,
}

/// A note. `sfld` and `csum` are derived from the fields whenever a note is written, so they
/// are not part of the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRow {
    pub id: i64,
    pub guid: String,
    pub mid: i64,
    pub modified: i64,
    pub usn: i64,
    pub tags: String,
    pub fields: String,
    pub flags: i64,
    pub data: String,
}

/// A table whose rows carry `mod` and `usn`.
#[derive(Clone, Copy, Debug)]
pub enum Synced {
    Cards,
    Notes,
}

/// A table of rows that a sync exchanges.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    Revlog,
    Cards,
    Notes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Revlog => "revlog",
            Self::Cards => "cards",
            Self::Notes => "notes",
        }
    }
}

/// Ids of the rows with `usn >= min_usn`, in id order.
///
/// Sorted here, not by `ORDER BY id`: with an `ORDER BY id`, SQLite may walk the whole table
/// in id order instead of searching the `usn` index, and does so when the file carries
/// statistics from Anki's `ANALYZE` saying that every row has the same usn (a small sync then
/// read every row; issue 13). Without it, the covering `ix_*_usn` index is searched and only
/// the pending rows are read. The unary `+` keeps the bound value out of the plan: with
/// `sqlite_stat4` samples in the file, SQLite would otherwise compile the statement again for
/// every new value compared with an indexed column (docs/performance.md, "Statements that
/// stay compiled").
pub fn ids_since(conn: &Connection, table: Table, min_usn: i32) -> rusqlite::Result<Vec<i64>> {
    let mut statement = conn.prepare_cached(&ids_since_sql(table))?;
    let mut ids = statement
        .query_map([min_usn], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

fn ids_since_sql(table: Table) -> String {
    format!("SELECT id FROM {} WHERE usn >= +?1", table.name())
}

/// Ids of all rows, in no order.
pub fn all_ids(conn: &Connection, table: Table) -> rusqlite::Result<HashSet<i64>> {
    let mut statement = conn.prepare_cached(&format!("SELECT id FROM {}", table.name()))?;
    statement.query_map([], |row| row.get(0))?.collect()
}

pub fn count(conn: &Connection, table: Table) -> rusqlite::Result<i64> {
    conn.cached_row(
        &format!("SELECT COUNT(*) FROM {}", table.name()),
        [],
        |row| row.get(0),
    )
}

/// Whether the collection has any card.
pub fn has_cards(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn
        .cached_row("SELECT 1 FROM cards LIMIT 1", [], |row| {
            row.get::<_, i64>(0)
        })
        .optional()?
        .is_some())
}

/// `mod` and `usn` of the row with this id, if there is one.
pub fn mod_and_usn(
    conn: &Connection,
    table: Synced,
    id: i64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    let sql = match table {
        Synced::Cards => "SELECT mod, usn FROM cards WHERE id = ?1",
        Synced::Notes => "SELECT mod, usn FROM notes WHERE id = ?1",
    };
    conn.prepare_cached(sql)?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// `columns` with the one at `index`, the row's `usn`, set to `usn`.
fn with_usn<const N: usize>(mut columns: [i64; N], index: usize, usn: i32) -> [i64; N] {
    columns[index] = i64::from(usn);
    columns
}

impl RevlogRow {
    /// The columns in table order: id, cid, usn, ease, ivl, lastIvl, factor, time, type.
    pub fn columns(&self) -> [i64; 9] {
        [
            self.id,
            self.cid,
            self.usn,
            self.ease,
            self.ivl,
            self.last_ivl,
            self.factor,
            self.time,
            self.kind,
        ]
    }

    pub fn read(conn: &Connection, id: i64) -> rusqlite::Result<Self> {
        let mut statement = conn.prepare_cached(
            "SELECT id, cid, usn, ease, ivl, lastIvl, factor, time, type FROM revlog WHERE id = ?1",
        )?;
        statement.query_row(
            [id],
            from_row!(Self: id, cid, usn, ease, ivl, last_ivl, factor, time, kind),
        )
    }

    /// Inserts the entry with `usn`, unless one with its id exists: entries never change.
    pub fn insert_if_new(&self, conn: &Connection, usn: i32) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params_from_iter(with_usn(self.columns(), 2, usn)))?;
        Ok(())
    }
}

impl CardRow {
    /// Deletes the card with this id, if there is one.
    pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM cards WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// The integer columns in table order, i.e. all but `data`, the last: id, nid, did, ord,
    /// mod, usn, type, queue, due, ivl, factor, reps, lapses, left, odue, odid, flags.
    pub fn integer_columns(&self) -> [i64; 17] {
        [
            self.id,
            self.nid,
            self.did,
            self.ord,
            self.modified,
            self.usn,
            self.kind,
            self.queue,
            self.due,
            self.ivl,
            self.factor,
            self.reps,
            self.lapses,
            self.left,
            self.odue,
            self.odid,
            self.flags,
        ]
    }

    pub fn read(conn: &Connection, id: i64) -> rusqlite::Result<Self> {
        let mut statement = conn.prepare_cached(
            "SELECT id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, reps, lapses, \
             left, odue, odid, flags, data FROM cards WHERE id = ?1",
        )?;
        statement.query_row(
            [id],
            from_row!(Self: id, nid, did, ord, modified, usn, kind, queue, due, ivl, factor,
                reps, lapses, left, odue, odid, flags, data),
        )
    }

    /// Writes the card with `usn`, replacing any card with its id. An upsert, not `INSERT OR
    /// REPLACE`: an existing card is updated in place, where a replace deletes the row and
    /// its index entries, inserts them again, and fires the row counts' DELETE and INSERT
    /// triggers (`row_counts`) for a count that does not change.
    pub fn upsert(&self, conn: &Connection, usn: i32) -> rusqlite::Result<()> {
        const UPSERT: &str = concat!(
            insert_card!(),
            " ON CONFLICT (id) DO UPDATE SET nid = excluded.nid, did = excluded.did, \
             ord = excluded.ord, mod = excluded.mod, usn = excluded.usn, type = excluded.type, \
             queue = excluded.queue, due = excluded.due, ivl = excluded.ivl, \
             factor = excluded.factor, reps = excluded.reps, lapses = excluded.lapses, \
             left = excluded.left, odue = excluded.odue, odid = excluded.odid, \
             flags = excluded.flags, data = excluded.data"
        );
        self.write(conn, UPSERT, with_usn(self.integer_columns(), 5, usn))
    }

    /// Inserts the card as it is; fails if a card has its id.
    pub fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        self.write(conn, insert_card!(), self.integer_columns())
    }

    fn write(&self, conn: &Connection, sql: &str, columns: [i64; 17]) -> rusqlite::Result<()> {
        conn.prepare_cached(sql)?.execute(params_from_iter(
            columns
                .iter()
                .map(|value| value as &dyn ToSql)
                .chain([&self.data as &dyn ToSql]),
        ))?;
        Ok(())
    }
}

impl NoteRow {
    /// Deletes the note with this id, if there is one; its cards are left alone.
    pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM notes WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// The columns a sync sends. The server never sends a note's `flags` or `data`, so they
    /// are not read: the row has 0 and "" there.
    pub fn read_for_sync(conn: &Connection, id: i64) -> rusqlite::Result<Self> {
        let mut statement = conn.prepare_cached(
            "SELECT id, guid, mid, mod, usn, tags, flds FROM notes WHERE id = ?1",
        )?;
        statement.query_row(
            [id],
            from_row!(Self: id, guid, mid, modified, usn, tags, fields;
                flags: 0, data: String::new()),
        )
    }

    /// Writes the note with `usn` and the given fields (the row's, cleaned by the caller) and
    /// derived columns, replacing any note with its id.
    pub fn upsert(
        &self,
        conn: &Connection,
        usn: i32,
        fields: &str,
        sort_text: &str,
        checksum: u32,
    ) -> rusqlite::Result<()> {
        // An upsert, for the reasons given at `CardRow::upsert`.
        const UPSERT: &str = concat!(
            insert_note!(),
            " ON CONFLICT (id) DO UPDATE SET guid = excluded.guid, mid = excluded.mid, \
             mod = excluded.mod, usn = excluded.usn, tags = excluded.tags, \
             flds = excluded.flds, sfld = excluded.sfld, csum = excluded.csum, \
             flags = excluded.flags, data = excluded.data"
        );
        let derived = (fields, sort_text, checksum);
        self.write(conn, UPSERT, i64::from(usn), derived)
    }

    /// Inserts the note as it is, with its derived columns; fails if a note has its id.
    pub fn insert(
        &self,
        conn: &Connection,
        sort_text: &str,
        checksum: u32,
    ) -> rusqlite::Result<()> {
        let derived = (self.fields.as_str(), sort_text, checksum);
        self.write(conn, insert_note!(), self.usn, derived)
    }

    /// Updates what an import may change of an existing note: `mod`, `usn`, tags and fields
    /// with their derived columns.
    pub fn update_content(
        &self,
        conn: &Connection,
        sort_text: &str,
        checksum: u32,
    ) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "UPDATE notes SET mod = ?2, usn = ?3, tags = ?4, flds = ?5, sfld = ?6, csum = ?7 \
             WHERE id = ?1",
        )?
        .execute(params![
            self.id,
            self.modified,
            self.usn,
            self.tags,
            self.fields,
            sort_text,
            checksum,
        ])?;
        Ok(())
    }

    fn write(
        &self,
        conn: &Connection,
        sql: &str,
        usn: i64,
        (fields, sort_text, checksum): (&str, &str, u32),
    ) -> rusqlite::Result<()> {
        conn.prepare_cached(sql)?.execute(params![
            self.id,
            self.guid,
            self.mid,
            self.modified,
            usn,
            self.tags,
            fields,
            sort_text,
            i64::from(checksum),
            self.flags,
            self.data,
        ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::test_support::{
        open_new_collection, query_plan, use_statistics_of_200k_notes,
    };

    #[test]
    fn rows_round_trip_through_their_tables() {
        let (_dir, conn) = open_new_collection();

        let entry = RevlogRow {
            id: 1,
            cid: 2,
            usn: 5,
            ease: 3,
            ivl: 10,
            last_ivl: -600,
            factor: 2500,
            time: 6000,
            kind: 1,
        };
        entry.insert_if_new(&conn, 5).unwrap();
        RevlogRow {
            ease: 1,
            ..entry.clone()
        }
        .insert_if_new(&conn, 6)
        .unwrap();
        assert_eq!(
            RevlogRow::read(&conn, 1).unwrap(),
            entry,
            "entries never change"
        );

        let card = CardRow {
            id: 10,
            nid: 20,
            did: 1,
            ord: 0,
            modified: 100,
            usn: 7,
            kind: 2,
            queue: 2,
            due: 30,
            ivl: 4,
            factor: 2500,
            reps: 3,
            lapses: 1,
            left: 0,
            odue: 0,
            odid: 0,
            flags: 1,
            data: "{}".into(),
        };
        card.upsert(&conn, 7).unwrap();
        assert_eq!(CardRow::read(&conn, 10).unwrap(), card);
        assert_eq!(
            mod_and_usn(&conn, Synced::Cards, 10).unwrap(),
            Some((100, 7))
        );
        assert_eq!(mod_and_usn(&conn, Synced::Cards, 11).unwrap(), None);

        let note = NoteRow {
            id: 20,
            guid: "abc".into(),
            mid: 3,
            modified: 200,
            usn: 7,
            tags: " t ".into(),
            fields: "front\u{1f}back".into(),
            flags: 2,
            data: "x".into(),
        };
        note.upsert(&conn, 8, &note.fields, "front", 42).unwrap();
        assert_eq!(
            NoteRow::read_for_sync(&conn, 20).unwrap(),
            NoteRow {
                usn: 8,
                flags: 0,
                data: String::new(),
                ..note.clone()
            }
        );
        assert_eq!(
            mod_and_usn(&conn, Synced::Notes, 20).unwrap(),
            Some((200, 8))
        );

        let imported = NoteRow {
            id: 21,
            usn: 9,
            guid: "def".into(),
            ..note.clone()
        };
        imported.insert(&conn, "front", 42).unwrap();
        assert!(
            imported.insert(&conn, "front", 42).is_err(),
            "the id is taken"
        );
        NoteRow {
            modified: 300,
            tags: " u ".into(),
            ..imported.clone()
        }
        .update_content(&conn, "front", 42)
        .unwrap();
        let read = NoteRow::read_for_sync(&conn, 21).unwrap();
        assert_eq!((read.modified, read.tags.as_str()), (300, " u "));
        let new_card = CardRow { id: 12, ..card };
        new_card.insert(&conn).unwrap();
        assert!(new_card.insert(&conn).is_err(), "the id is taken");
        assert_eq!(CardRow::read(&conn, 12).unwrap(), new_card);

        assert_eq!(ids_since(&conn, Table::Cards, 7).unwrap(), [10, 12]);
        assert_eq!(ids_since(&conn, Table::Notes, 9).unwrap(), [21]);
        assert_eq!(
            ids_since(&conn, Table::Revlog, 6).unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(
            all_ids(&conn, Table::Notes).unwrap(),
            HashSet::from([20, 21])
        );
        assert_eq!(count(&conn, Table::Revlog).unwrap(), 1);
        assert!(has_cards(&conn).unwrap());
        conn.execute_batch("DELETE FROM cards").unwrap();
        assert!(!has_cards(&conn).unwrap());
    }

    /// Issue 13: the rows a small sync sends are found through the `usn` index, not by reading
    /// every row, also when the file carries Anki's planner statistics saying that every row
    /// has the same usn; and they still come in id order.
    #[test]
    fn pending_ids_are_searched_in_the_usn_index() {
        let (_dir, conn) = open_new_collection();
        conn.execute_batch(
            "INSERT INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
             VALUES (30, 1, 5, 1, 1, 1, 1, 1, 1), (10, 1, 5, 1, 1, 1, 1, 1, 1), \
             (20, 1, 0, 1, 1, 1, 1, 1, 1);",
        )
        .unwrap();
        use_statistics_of_200k_notes(&conn);
        for table in [Table::Cards, Table::Notes, Table::Revlog] {
            let plan = query_plan(&conn, &ids_since_sql(table), [5]);
            let name = table.name();
            assert_eq!(
                plan,
                format!("SEARCH {name} USING COVERING INDEX ix_{name}_usn (usn>?)"),
                "{name}"
            );
        }
        assert_eq!(ids_since(&conn, Table::Revlog, 5).unwrap(), [10, 30]);
    }
}
