//! Exact row counts of `cards`, `notes`, `revlog` and `graves`, read in constant time on a
//! connection that is kept open (docs/performance.md, "Row counts kept by temporary
//! triggers").
//!
//! `sanityCheck2` compares both sides' row counts at every sync, and SQLite keeps no row count:
//! `COUNT(*)` reads every row (of the narrowest index), so a small sync's cost grew with the
//! collection. Instead, the first read on a connection counts once, into a temporary table,
//! and installs temporary triggers that keep those counts up to date as the connection inserts
//! and deletes rows. Every later read is one row of that table.
//!
//! Why they stay exact:
//! - The triggers write the counts in the statement that changes the rows, so in the same
//!   transaction: a rolled-back sync (or statement) rolls the counts back with the rows. The
//!   counting and the installing run in the caller's transaction too, or in a savepoint.
//! - `INSERT OR REPLACE` removes the row it replaces without firing DELETE triggers unless
//!   `recursive_triggers` is on; it is switched on with the triggers (the collection itself has
//!   no triggers, `schema_guard` drops any an upload brings). The sync writes cards and notes
//!   with upserts, whose update of an existing row fires no trigger; a replace by any other
//!   path stays counted. `INSERT OR IGNORE` of an existing row fires no trigger, and SQLite
//!   does not truncate a table with triggers in one step on a `DELETE` without `WHERE`: each
//!   row fires its trigger.
//! - Other connections' writes fire none of them. The counts remember the connection's
//!   `PRAGMA data_version`, which changes whenever another connection commits to the file, and
//!   are counted again when it moved. They are counted again, too, when any of the triggers or
//!   the table is gone (dropping a table drops the triggers on it).
//!
//! Temporary objects belong to the connection: nothing is written into the collection file,
//! so full downloads and clients never see them, and they vanish when the connection closes.

use rusqlite::Connection;

use super::sqlite::CachedQuery;

/// The rows of a collection's synced tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub cards: i64,
    pub notes: i64,
    pub revlog: i64,
    pub graves: i64,
}

/// The tables counted, which are also the count columns of [`COUNTS_TABLE`].
const TABLES: [&str; 4] = ["cards", "notes", "revlog", "graves"];

/// The temporary table holding the counts: one row.
const COUNTS_TABLE: &str = "sidecar_row_counts";

/// Every temporary object this module makes has a name starting with this.
const PREFIX: &str = "sidecar_row_count";

/// The table and one INSERT and one DELETE trigger per counted table.
const OBJECTS: i64 = 1 + 2 * TABLES.len() as i64;

/// The collection's row counts, exact for the state this connection sees (inside its open
/// transaction, if any). Constant time once installed on the connection; the first call on a
/// connection, and the first after another connection committed to the file, count.
pub fn row_counts(conn: &Connection) -> rusqlite::Result<RowCounts> {
    if let Some(counts) = kept_counts(conn)? {
        return Ok(counts);
    }
    in_savepoint(conn, || install(conn))
}

/// The kept counts, if they are installed whole and no other connection committed since.
fn kept_counts(conn: &Connection) -> rusqlite::Result<Option<RowCounts>> {
    let objects: i64 = conn.cached_row(
        &format!("SELECT COUNT(*) FROM temp.sqlite_master WHERE name GLOB '{PREFIX}*'"),
        [],
        |row| row.get(0),
    )?;
    if objects != OBJECTS {
        return Ok(None);
    }
    let (seen, counts) = conn.cached_row(
        &format!("SELECT data_version, cards, notes, revlog, graves FROM temp.{COUNTS_TABLE}"),
        [],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                RowCounts {
                    cards: row.get(1)?,
                    notes: row.get(2)?,
                    revlog: row.get(3)?,
                    graves: row.get(4)?,
                },
            ))
        },
    )?;
    Ok((seen == data_version(conn)?).then_some(counts))
}

/// Changes when another connection commits to the main database (not at this one's commits).
fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.cached_row("PRAGMA main.data_version", [], |row| row.get(0))
}

/// Counts every table and (re)creates the counts table and its triggers.
fn install(conn: &Connection) -> rusqlite::Result<RowCounts> {
    // Before the triggers exist, so that REPLACE fires their DELETE half from the start.
    conn.execute_batch("PRAGMA recursive_triggers = ON")?;
    let mut sql = String::new();
    for table in TABLES {
        for (event, _) in EVENTS {
            sql += &format!("DROP TRIGGER IF EXISTS temp.{PREFIX}_{table}_{event};\n");
        }
    }
    sql += &format!("DROP TABLE IF EXISTS temp.{COUNTS_TABLE};\n");
    sql += &format!(
        "CREATE TEMP TABLE {COUNTS_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), \
         data_version INTEGER NOT NULL, {});\n",
        TABLES
            .map(|table| format!("{table} INTEGER NOT NULL"))
            .join(", ")
    );
    sql += &format!(
        "INSERT INTO temp.{COUNTS_TABLE} VALUES (1, 0, {});\n",
        TABLES
            .map(|table| format!("(SELECT COUNT(*) FROM main.{table})"))
            .join(", ")
    );
    for table in TABLES {
        for (event, step) in EVENTS {
            sql += &format!(
                "CREATE TEMP TRIGGER {PREFIX}_{table}_{event} AFTER {event} ON main.{table} \
                 BEGIN UPDATE {COUNTS_TABLE} SET {table} = {table} {step}; END;\n"
            );
        }
    }
    conn.execute_batch(&sql)?;
    // Read in the same transaction as the counts: a commit by another connection after it is
    // seen as a change at the next read.
    conn.execute(
        &format!("UPDATE temp.{COUNTS_TABLE} SET data_version = ?1"),
        [data_version(conn)?],
    )?;
    kept_counts(conn)?.ok_or_else(|| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
            Some("the row counts were not kept after installing them".into()),
        )
    })
}

/// The trigger events and what each does to the count.
const EVENTS: [(&str, &str); 2] = [("insert", "+ 1"), ("delete", "- 1")];

/// Runs `work` in a savepoint: inside the caller's transaction, or as its own transaction
/// when there is none, so that the counts and the triggers appear together or not at all.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch(&format!("SAVEPOINT {PREFIX}"))?;
    match work() {
        Ok(value) => {
            conn.execute_batch(&format!("RELEASE {PREFIX}"))?;
            Ok(value)
        }
        Err(err) => {
            if let Err(undo) =
                conn.execute_batch(&format!("ROLLBACK TO {PREFIX}; RELEASE {PREFIX}"))
            {
                tracing::warn!(error = %undo, "could not roll back installing the row counts");
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rusqlite::Connection;

    use super::*;
    use crate::collection::graves::{GraveKind, record_grave};
    use crate::collection::rows::{CardRow, NoteRow, RevlogRow};
    use crate::collection::sqlite::{open_collection, use_wal};
    use crate::collection::test_support::{open_new_collection, query_value};

    fn card(id: i64) -> CardRow {
        CardRow {
            id,
            nid: id,
            did: 1,
            ord: 0,
            modified: 1,
            usn: 0,
            kind: 0,
            queue: 0,
            due: 0,
            ivl: 0,
            factor: 0,
            reps: 0,
            lapses: 0,
            left: 0,
            odue: 0,
            odid: 0,
            flags: 0,
            data: String::new(),
        }
    }

    fn note(id: i64) -> NoteRow {
        NoteRow {
            id,
            guid: format!("g{id}"),
            mid: 1,
            modified: 1,
            usn: 0,
            tags: String::new(),
            fields: "a\u{1f}b".into(),
            flags: 0,
            data: String::new(),
        }
    }

    fn revlog(id: i64) -> RevlogRow {
        RevlogRow {
            id,
            cid: 1,
            usn: 0,
            ease: 3,
            ivl: 1,
            last_ivl: 0,
            factor: 2500,
            time: 1000,
            kind: 1,
        }
    }

    /// What `COUNT(*)` says, the reference the kept counts must match.
    fn counted(conn: &Connection) -> RowCounts {
        let count = |table: &str| query_value(conn, &format!("SELECT COUNT(*) FROM {table}"));
        RowCounts {
            cards: count("cards"),
            notes: count("notes"),
            revlog: count("revlog"),
            graves: count("graves"),
        }
    }

    fn assert_exact(conn: &Connection, after: &str) {
        assert_eq!(row_counts(conn).unwrap(), counted(conn), "after {after}");
    }

    /// Sets the kept count of cards by hand: a later read returning it shows the counts were
    /// read from the table, not counted again.
    fn tamper(conn: &Connection, cards: i64) {
        conn.execute(
            &format!("UPDATE temp.{COUNTS_TABLE} SET cards = ?1"),
            [cards],
        )
        .unwrap();
    }

    #[test]
    fn counts_follow_every_kind_of_write() {
        let (_dir, conn) = open_new_collection();
        assert_exact(&conn, "installing");
        for id in 1..=5 {
            card(id).insert(&conn).unwrap();
            note(id).upsert(&conn, 1, "a\u{1f}b", "a", 7).unwrap();
            revlog(id).insert_if_new(&conn, 1).unwrap();
        }
        assert_exact(&conn, "inserts");
        // Upserts over existing rows (updated in place) and of a new card.
        card(3).upsert(&conn, 2).unwrap();
        note(3).upsert(&conn, 2, "c\u{1f}d", "c", 8).unwrap();
        card(9).upsert(&conn, 2).unwrap();
        assert_exact(&conn, "upserts");
        // INSERT OR REPLACE over an existing row: a DELETE and an INSERT.
        conn.execute_batch(
            "INSERT OR REPLACE INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, \
             factor, reps, lapses, left, odue, odid, flags, data) \
             SELECT id, nid, did, ord, mod, 3, type, queue, due, ivl, factor, reps, lapses, \
             left, odue, odid, flags, data FROM cards WHERE id = 3",
        )
        .unwrap();
        assert_exact(&conn, "replaces");
        // INSERT OR IGNORE of an existing entry, and a plain INSERT that fails.
        revlog(2).insert_if_new(&conn, 2).unwrap();
        assert!(card(1).insert(&conn).is_err());
        assert_exact(&conn, "ignored and failed inserts");
        // Graves, recorded once per (oid, type).
        record_grave(&conn, 1, 10, GraveKind::Card).unwrap();
        record_grave(&conn, 2, 10, GraveKind::Card).unwrap();
        record_grave(&conn, 2, 10, GraveKind::Note).unwrap();
        assert_exact(&conn, "graves");
        CardRow::delete(&conn, 2).unwrap();
        CardRow::delete(&conn, 404).unwrap();
        NoteRow::delete(&conn, 4).unwrap();
        assert_exact(&conn, "deletes");
        // An upsert's update path, a multi-row insert and a DELETE without WHERE.
        conn.execute_batch(
            "INSERT INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
             VALUES (1, 1, 0, 1, 1, 1, 1, 1, 1) ON CONFLICT (id) DO UPDATE SET usn = 5;
             INSERT INTO graves (usn, oid, type) SELECT usn, id, 0 FROM cards;
             DELETE FROM cards;",
        )
        .unwrap();
        assert_exact(&conn, "upsert, INSERT ... SELECT and DELETE without WHERE");
        assert_eq!(counted(&conn).cards, 0);
    }

    #[test]
    fn graves_applied_by_a_sync_are_counted() {
        use crate::normal_sync::graves::apply_graves;
        use crate::normal_sync::wire::Graves;
        let (_dir, conn) = open_new_collection();
        for id in 1..=4 {
            card(id).insert(&conn).unwrap();
            note(id).upsert(&conn, 1, "a", "a", 1).unwrap();
        }
        assert_exact(&conn, "inserts");
        let graves = Graves {
            cards: vec![1, 2, 77],
            notes: vec![1],
            decks: vec![],
        };
        apply_graves(&conn, &graves, 3).unwrap();
        apply_graves(&conn, &graves, 4).unwrap();
        assert_exact(&conn, "applyGraves, twice");
        assert_eq!(row_counts(&conn).unwrap().graves, 4);
    }

    #[test]
    fn a_rollback_rolls_the_counts_back() {
        let (_dir, conn) = open_new_collection();
        card(1).insert(&conn).unwrap();
        assert_exact(&conn, "installing outside a transaction");
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        card(2).insert(&conn).unwrap();
        NoteRow::delete(&conn, 1).unwrap();
        record_grave(&conn, 1, 1, GraveKind::Card).unwrap();
        assert_exact(&conn, "writes inside the transaction");
        conn.execute_batch("SAVEPOINT inner").unwrap();
        card(3).insert(&conn).unwrap();
        conn.execute_batch("ROLLBACK TO inner; RELEASE inner")
            .unwrap();
        assert_exact(&conn, "a savepoint rolled back");
        conn.execute_batch("ROLLBACK").unwrap();
        assert_exact(&conn, "the transaction rolled back");
        assert_eq!(row_counts(&conn).unwrap().cards, 1);
    }

    #[test]
    fn counts_installed_in_a_rolled_back_transaction_are_installed_again() {
        let (_dir, conn) = open_new_collection();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        card(1).insert(&conn).unwrap();
        assert_eq!(row_counts(&conn).unwrap().cards, 1);
        conn.execute_batch("ROLLBACK").unwrap();
        card(2).insert(&conn).unwrap();
        card(3).insert(&conn).unwrap();
        assert_exact(&conn, "the installing transaction rolled back");
        assert_eq!(row_counts(&conn).unwrap().cards, 2);
    }

    #[test]
    fn kept_counts_are_read_not_counted_again() {
        let (_dir, conn) = open_new_collection();
        card(1).insert(&conn).unwrap();
        row_counts(&conn).unwrap();
        tamper(&conn, 40);
        card(2).insert(&conn).unwrap();
        assert_eq!(
            row_counts(&conn).unwrap().cards,
            41,
            "the kept count, moved by the trigger"
        );
        // Its own commits do not make it count again.
        conn.execute_batch("BEGIN; DELETE FROM cards WHERE id = 2; COMMIT")
            .unwrap();
        assert_eq!(row_counts(&conn).unwrap().cards, 40);
    }

    #[test]
    fn a_dropped_trigger_makes_it_count_again() {
        let (_dir, conn) = open_new_collection();
        row_counts(&conn).unwrap();
        conn.execute_batch(&format!("DROP TRIGGER temp.{PREFIX}_notes_delete"))
            .unwrap();
        note(1).upsert(&conn, 1, "a", "a", 1).unwrap();
        tamper(&conn, 40);
        assert_exact(&conn, "a trigger went missing");
        // A table dropped and made again loses its triggers with it.
        conn.execute_batch(
            "CREATE TABLE graves2 AS SELECT * FROM graves; DROP TABLE graves; \
             ALTER TABLE graves2 RENAME TO graves; INSERT INTO graves VALUES (1, 1, 1);",
        )
        .unwrap();
        assert_exact(&conn, "the graves table was made again");
    }

    #[test]
    fn another_connections_commit_makes_it_count_again() {
        let (dir, conn) = open_new_collection();
        use_wal(&conn).unwrap();
        card(1).insert(&conn).unwrap();
        assert_exact(&conn, "installing");
        let other = open_collection(&dir.path().join("c.anki2")).unwrap();
        card(2).insert(&other).unwrap();
        note(2).upsert(&other, 1, "a", "a", 1).unwrap();
        assert_exact(&conn, "another connection's commit");
        assert_eq!(row_counts(&conn).unwrap().cards, 2);
        // Inside a transaction begun after the other commit, too.
        card(3).insert(&other).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert_exact(&conn, "another connection's commit, read in a transaction");
        conn.execute_batch("ROLLBACK").unwrap();
    }

    #[test]
    fn nothing_is_written_into_the_file() {
        let (dir, conn) = open_new_collection();
        row_counts(&conn).unwrap();
        card(1).insert(&conn).unwrap();
        let other = open_collection(&dir.path().join("c.anki2")).unwrap();
        let objects: i64 = query_value(
            &other,
            &format!("SELECT COUNT(*) FROM sqlite_master WHERE name GLOB '{PREFIX}*'"),
        );
        assert_eq!(objects, 0);
        assert_eq!(
            query_value::<i64>(&other, "SELECT COUNT(*) FROM sqlite_temp_master"),
            0,
            "another connection has no temporary objects"
        );
        assert_eq!(query_value::<i64>(&other, "SELECT COUNT(*) FROM cards"), 1);
    }

    /// One step of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        InsertCard(i64),
        UpsertCard(i64),
        DeleteCard(i64),
        UpsertNote(i64),
        DeleteNote(i64),
        Revlog(i64),
        Grave(i64, i64),
        DeleteAllCards,
        Begin,
        Commit,
        Rollback,
        Savepoint,
        RollbackToSavepoint,
        OtherConnectionInsertsCard(i64),
        Read,
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 1..12i64;
        prop_oneof![
            4 => id.clone().prop_map(Op::InsertCard),
            4 => id.clone().prop_map(Op::UpsertCard),
            3 => id.clone().prop_map(Op::DeleteCard),
            4 => id.clone().prop_map(Op::UpsertNote),
            3 => id.clone().prop_map(Op::DeleteNote),
            3 => id.clone().prop_map(Op::Revlog),
            3 => (id.clone(), 0..3i64).prop_map(|(oid, kind)| Op::Grave(oid, kind)),
            1 => Just(Op::DeleteAllCards),
            2 => Just(Op::Begin),
            2 => Just(Op::Commit),
            2 => Just(Op::Rollback),
            1 => Just(Op::Savepoint),
            1 => Just(Op::RollbackToSavepoint),
            1 => id.prop_map(Op::OtherConnectionInsertsCard),
            3 => Just(Op::Read),
        ]
    }

    fn kind(kind: i64) -> GraveKind {
        match kind {
            0 => GraveKind::Card,
            1 => GraveKind::Note,
            _ => GraveKind::Deck,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the writes, transactions and rollbacks, the counts read on the connection
        /// are those `COUNT(*)` gives.
        #[test]
        fn counts_match_count_star(ops in proptest::collection::vec(op(), 1..60)) {
            let (dir, conn) = open_new_collection();
            use_wal(&conn).unwrap();
            let other = open_collection(&dir.path().join("c.anki2")).unwrap();
            let mut savepoints = 0;
            for op in &ops {
                match *op {
                    // A plain INSERT over an existing id fails; that is part of the test.
                    Op::InsertCard(id) => {
                        let _ = card(id).insert(&conn);
                    }
                    Op::UpsertCard(id) => card(id).upsert(&conn, 1).unwrap(),
                    Op::DeleteCard(id) => CardRow::delete(&conn, id).unwrap(),
                    Op::UpsertNote(id) => note(id).upsert(&conn, 1, "a", "a", 1).unwrap(),
                    Op::DeleteNote(id) => NoteRow::delete(&conn, id).unwrap(),
                    Op::Revlog(id) => revlog(id).insert_if_new(&conn, 1).unwrap(),
                    Op::Grave(oid, k) => record_grave(&conn, 1, oid, kind(k)).unwrap(),
                    Op::DeleteAllCards => conn.execute_batch("DELETE FROM cards").unwrap(),
                    Op::Begin if conn.is_autocommit() => {
                        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    }
                    Op::Commit if !conn.is_autocommit() => {
                        conn.execute_batch("COMMIT").unwrap();
                        savepoints = 0;
                    }
                    Op::Rollback if !conn.is_autocommit() => {
                        conn.execute_batch("ROLLBACK").unwrap();
                        savepoints = 0;
                    }
                    Op::Savepoint if !conn.is_autocommit() => {
                        conn.execute_batch("SAVEPOINT step").unwrap();
                        savepoints += 1;
                    }
                    Op::RollbackToSavepoint if savepoints > 0 => {
                        conn.execute_batch("ROLLBACK TO step").unwrap();
                    }
                    // Another writer only while this connection holds no write lock.
                    Op::OtherConnectionInsertsCard(id) if conn.is_autocommit() => {
                        other.execute(
                            "INSERT OR IGNORE INTO cards (id, nid, did, ord, mod, usn, type, \
                             queue, due, ivl, factor, reps, lapses, left, odue, odid, flags, \
                             data) VALUES (?1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '')",
                            [id],
                        ).unwrap();
                    }
                    Op::Read => {}
                    _ => continue,
                }
                prop_assert_eq!(row_counts(&conn).unwrap(), counted(&conn), "after {:?}", op);
            }
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").unwrap();
            }
            prop_assert_eq!(row_counts(&conn).unwrap(), counted(&conn), "at the end");
        }
    }
}
