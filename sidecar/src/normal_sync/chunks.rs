//! Row exchange: `chunk` sends the server's pending revlog, cards and notes; `applyChunk`
//! merges the client's (docs/sync-protocol.md#chunks). The rows are read and written by
//! `collection::rows`, and turned into JSON and back by `rows`.

use std::collections::VecDeque;

use rusqlite::Connection;

use super::rows::{CardRow, NoteRow, RevlogRow, WireRow};
use super::wire::Chunk;
use super::{OpResult, SyncCounters, SyncOpError};
use crate::collection::json::{ColObjects, as_i64_lenient};
use crate::collection::rows::{Synced, Table, ids_since, mod_and_usn};
use crate::note_text::{FIELD_SEPARATOR, derived_columns, remove_invalid_chars};

/// Rows per chunk, counted over all three tables together.
pub const CHUNK_SIZE: usize = 250;

/// Ids of the server rows still to be sent, gathered once at the first `chunk` call, i.e.
/// after the client's graves and changes were applied.
#[derive(Debug, Default)]
pub struct PendingRows {
    revlog: VecDeque<i64>,
    cards: VecDeque<i64>,
    notes: VecDeque<i64>,
}

impl PendingRows {
    pub fn gather(conn: &Connection, client_usn: i32) -> OpResult<Self> {
        let ids = |table: Table| -> OpResult<VecDeque<i64>> {
            Ok(ids_since(conn, table, client_usn)?.into())
        };
        Ok(Self {
            revlog: ids(Table::Revlog)?,
            cards: ids(Table::Cards)?,
            notes: ids(Table::Notes)?,
        })
    }
}

/// The next chunk: round-robin revlog, note, card, until full or drained.
pub fn next_chunk(
    conn: &Connection,
    pending: &mut PendingRows,
    counters: &mut SyncCounters,
) -> OpResult<Chunk> {
    let mut chunk = Chunk::default();
    let mut taken = 0;
    while taken < CHUNK_SIZE {
        let before = taken;
        if let Some(id) = pending.revlog.pop_front() {
            chunk.revlog.push(RevlogRow::read(conn, id)?.to_wire());
            taken += 1;
        }
        if taken < CHUNK_SIZE
            && let Some(id) = pending.notes.pop_front()
        {
            chunk
                .notes
                .push(NoteRow::read_for_sync(conn, id)?.to_wire());
            taken += 1;
        }
        if taken < CHUNK_SIZE
            && let Some(id) = pending.cards.pop_front()
        {
            chunk.cards.push(CardRow::read(conn, id)?.to_wire());
            taken += 1;
        }
        if taken == before {
            break;
        }
    }
    chunk.done = taken < CHUNK_SIZE;
    counters.revlog_sent += chunk.revlog.len();
    counters.cards_sent += chunk.cards.len();
    counters.notes_sent += chunk.notes.len();
    Ok(chunk)
}

pub struct ApplyContext {
    pub server_usn: i32,
    pub client_usn: i32,
}

/// Whether the server keeps its own row: only when it changed since the client's last sync
/// (`usn >= minUsn`) and is at least as new. Otherwise the incoming row wins.
fn server_copy_wins(existing: Option<(i64, i64)>, incoming_mod: i64, client_usn: i32) -> bool {
    existing.is_some_and(|(existing_mod, existing_usn)| {
        existing_usn >= i64::from(client_usn) && existing_mod >= incoming_mod
    })
}

/// Applies one chunk of the client's rows. Every row is checked against the client's types
/// (see `rows`) before anything is written, so a refused chunk changes nothing.
pub fn apply_chunk(
    conn: &Connection,
    context: &ApplyContext,
    chunk: &Chunk,
    counters: &mut SyncCounters,
) -> OpResult<()> {
    let revlog: Vec<RevlogRow> = WireRow::parse_all(&chunk.revlog)?;
    let cards: Vec<CardRow> = WireRow::parse_all(&chunk.cards)?;
    let notes: Vec<NoteRow> = WireRow::parse_all(&chunk.notes)?;
    let usn = context.server_usn;

    for row in &revlog {
        row.insert_if_new(conn, usn)?;
    }
    counters.revlog_received += revlog.len();

    for row in &cards {
        let existing = mod_and_usn(conn, Synced::Cards, row.id)?;
        if server_copy_wins(existing, row.modified, context.client_usn) {
            continue;
        }
        row.upsert(conn, usn)?;
    }
    counters.cards_received += cards.len();

    if !notes.is_empty() {
        apply_notes(conn, context, &notes)?;
    }
    counters.notes_received += notes.len();
    Ok(())
}

/// Per notetype: the field count a note must have, and the sort field index.
fn notetype_shape(objects: &ColObjects, notetype_id: i64) -> Option<(usize, usize)> {
    let notetype = objects.models.get(&notetype_id.to_string())?.as_object()?;
    let field_count = notetype.get("flds")?.as_array()?.len();
    let sort_field = notetype
        .get("sortf")
        .and_then(as_i64_lenient)
        .unwrap_or(0)
        .max(0) as usize;
    Some((field_count, sort_field))
}

fn apply_notes(conn: &Connection, context: &ApplyContext, rows: &[NoteRow]) -> OpResult<()> {
    if rows.is_empty() {
        // A review sync sends no notes: the notetypes need not be parsed.
        return Ok(());
    }
    let objects = ColObjects::load(conn)?;
    for row in rows {
        let (id, notetype_id) = (row.id, row.mid);
        let (field_count, sort_field) = notetype_shape(&objects, notetype_id).ok_or_else(|| {
            SyncOpError::invalid(format!("note {id} is missing notetype {notetype_id}"))
        })?;
        let fields = remove_invalid_chars(&row.fields);
        let actual_fields = fields.split(FIELD_SEPARATOR).count();
        if actual_fields != field_count {
            return Err(SyncOpError::invalid(format!(
                "note {id} has {actual_fields} fields, its notetype has {field_count}"
            )));
        }
        let existing = mod_and_usn(conn, Synced::Notes, id)?;
        if server_copy_wins(existing, row.modified, context.client_usn) {
            continue;
        }
        let (sort_text, checksum) = derived_columns(&fields, sort_field);
        row.upsert(conn, context.server_usn, &fields, &sort_text, checksum)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_server_copy_wins_only_when_newer_or_equal() {
        // Server changed it this round (usn 5 >= minUsn 5) and it is newer: keep server copy.
        assert!(server_copy_wins(Some((100, 5)), 99, 5));
        assert!(server_copy_wins(Some((100, 5)), 100, 5));
        // Incoming is newer: replace.
        assert!(!server_copy_wins(Some((100, 5)), 101, 5));
        // Server copy not changed since the client's last sync: always replace.
        assert!(!server_copy_wins(Some((200, 4)), 100, 5));
        // No server copy: insert.
        assert!(!server_copy_wins(None, 100, 5));
    }
}
