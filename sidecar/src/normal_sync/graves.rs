//! Deletions: the server's graves sent at `start`, the client's applied by `applyGraves`
//! (protocol §4.2, §4.3). Deletions always win and do not cascade.

use rusqlite::Connection;

use super::OpResult;
use super::rows::grave_id;
use super::wire::{Graves, IncomingGraves};
use crate::collection_json::ColObjects;

#[derive(Clone, Copy)]
#[repr(i64)]
enum GraveKind {
    Card = 0,
    Note = 1,
    Deck = 2,
}

/// The server's graves with `usn >= min_usn`: deletions the client has not seen.
pub fn pending_graves(conn: &Connection, min_usn: i32) -> OpResult<Graves> {
    let mut graves = Graves::default();
    let mut statement = conn.prepare("SELECT oid, type FROM graves WHERE usn >= ?1")?;
    let rows = statement.query_map([min_usn], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (oid, kind) = row?;
        match kind {
            0 => graves.cards.push(oid),
            1 => graves.notes.push(oid),
            2 => graves.decks.push(oid),
            _ => {}
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
    let mut add_grave = conn.prepare_cached(
        "INSERT INTO graves (usn, oid, type) SELECT ?1, ?2, ?3 \
         WHERE NOT EXISTS (SELECT 1 FROM graves WHERE oid = ?2 AND type = ?3)",
    )?;
    let mut delete_card = conn.prepare_cached("DELETE FROM cards WHERE id = ?1")?;
    let mut delete_note = conn.prepare_cached("DELETE FROM notes WHERE id = ?1")?;
    for &card_id in &graves.cards {
        delete_card.execute([card_id])?;
        add_grave.execute((server_usn, card_id, GraveKind::Card as i64))?;
    }
    for &note_id in &graves.notes {
        delete_note.execute([note_id])?;
        add_grave.execute((server_usn, note_id, GraveKind::Note as i64))?;
    }
    if !graves.decks.is_empty() {
        let mut objects = ColObjects::load(conn)?;
        for &deck_id in &graves.decks {
            objects.decks.remove(&deck_id.to_string());
            add_grave.execute((server_usn, deck_id, GraveKind::Deck as i64))?;
        }
        objects.save(conn)?;
    }
    Ok(())
}
