//! Deletions: the server's graves sent at `start`, the client's applied by `applyGraves`
//! (docs/sync-protocol.md#start, docs/sync-protocol.md#graves). Deletions always win and do not
//! cascade. The `graves` table itself is read and written by `collection::graves`.

use rusqlite::Connection;

use super::OpResult;
use super::rows::grave_id;
use super::wire::{Graves, IncomingGraves};
pub use crate::collection::graves::{GRAVES_INDEXES, drop_graves_indexes, ensure_graves_indexes};
use crate::collection::graves::{GraveKind, graves_since, record_grave};
use crate::collection::json::ColObjects;
use crate::collection::rows::{CardRow, NoteRow};

/// The server's graves with `usn >= min_usn`: deletions the client has not seen.
pub fn pending_graves(conn: &Connection, min_usn: i32) -> OpResult<Graves> {
    let mut graves = Graves::default();
    for (oid, kind) in graves_since(conn, min_usn)? {
        match kind {
            GraveKind::Card => graves.cards.push(oid),
            GraveKind::Note => graves.notes.push(oid),
            GraveKind::Deck => graves.decks.push(oid),
        }
    }
    Ok(graves)
}

/// The client's grave ids, each checked to be an id the client's types can hold.
pub fn read_graves(incoming: &IncomingGraves) -> OpResult<Graves> {
    let ids = |values: &[serde_json::Value], list: &str| -> OpResult<Vec<i64>> {
        values.iter().map(|value| grave_id(value, list)).collect()
    };
    Ok(Graves {
        cards: ids(&incoming.cards, "cards")?,
        notes: ids(&incoming.notes, "notes")?,
        decks: ids(&incoming.decks, "decks")?,
    })
}

/// Deletes the objects and records graves with the server's usn. A grave that exists already
/// keeps its usn ("insert or ignore" on (oid, type)).
pub fn apply_graves(conn: &Connection, graves: &Graves, server_usn: i32) -> OpResult<()> {
    for &card_id in &graves.cards {
        CardRow::delete(conn, card_id)?;
        record_grave(conn, server_usn, card_id, GraveKind::Card)?;
    }
    for &note_id in &graves.notes {
        NoteRow::delete(conn, note_id)?;
        record_grave(conn, server_usn, note_id, GraveKind::Note)?;
    }
    if !graves.decks.is_empty() {
        let mut objects = ColObjects::load(conn)?;
        for &deck_id in &graves.decks {
            objects.decks.remove(&deck_id.to_string());
            record_grave(conn, server_usn, deck_id, GraveKind::Deck)?;
        }
        objects.save(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::test_support::{open_new_collection, query_plan, query_value};

    /// Issue 11, defect 4: 200,000 card ids in one applyGraves took 780 s, because each
    /// grave insert scanned the unindexed table. Now each is an index lookup: the statement
    /// steps through no full table scan, however many graves there are.
    #[test]
    fn graves_are_looked_up_by_index_not_scanned() {
        let (_dir, conn) = open_new_collection();
        ensure_graves_indexes(&conn);
        let lookup = query_plan(&conn, "SELECT 1 FROM graves WHERE oid = 1 AND type = 0", []);
        assert!(
            lookup.contains("USING COVERING INDEX ix_sidecar_graves_oid"),
            "{lookup}"
        );
        let pending = query_plan(&conn, "SELECT oid, type FROM graves WHERE usn >= 3", []);
        assert!(
            pending.contains("USING INDEX ix_sidecar_graves_usn"),
            "{pending}"
        );

        conn.execute_batch("BEGIN").unwrap();
        let many = Graves {
            cards: (1..=20_000).collect(),
            notes: (1..=5_000).collect(),
            decks: vec![],
        };
        apply_graves(&conn, &many, 4).unwrap();
        // Applying them again inserts nothing and scans nothing.
        apply_graves(&conn, &many, 5).unwrap();
        let statement = conn
            .prepare_cached(
                "INSERT INTO graves (usn, oid, type) SELECT ?1, ?2, ?3 \
                 WHERE NOT EXISTS (SELECT 1 FROM graves WHERE oid = ?2 AND type = ?3)",
            )
            .unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::FullscanStep),
            0,
            "no full-scan steps over {} graves",
            25_000
        );
        drop(statement);
        let (count, max_usn): (i64, i64) = conn
            .query_row("SELECT COUNT(*), MAX(usn) FROM graves", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (count, max_usn),
            (25_000, 4),
            "existing graves keep their usn"
        );
        assert_eq!(pending_graves(&conn, 4).unwrap().cards.len(), 20_000);

        drop_graves_indexes(&conn).unwrap();
        let indexes: i64 = query_value(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'graves' AND type = 'index'",
        );
        assert_eq!(indexes, 0);
    }
}
